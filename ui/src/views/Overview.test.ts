import { cleanup, fireEvent, render, screen } from '@testing-library/svelte';
import { afterEach, describe, expect, it } from 'vitest';
import { app } from '../lib/app.svelte';
import Overview from './Overview.svelte';

describe('Overview', () => {
  afterEach(() => {
    cleanup();
    app.summary = null;
  });

  it('shows the pins here by group as the summary is pushed', async () => {
    render(Overview);
    expect(screen.queryByRole('heading', { name: 'Pins on this peer' })).toBeNull();
    app.summary = {
      peer: 'p', peername: 'laptop', pins: 1200, allocated_here: 1000, pinned: 990, remote: 200,
      pin_queued: 4, pinning: 2, pin_error: 1, unpin_queued: 0, unpinning: 0, unpin_error: 0,
      cluster_error: 3,
    };
    await screen.findByRole('heading', { name: 'Pins on this peer' });
    const text = (id: string) => document.getElementById(id)?.textContent?.replace(/\s+/g, ' ').trim();
    expect(text('ov-here-pinned')).toBe(`Pinned here ${(990).toLocaleString()}`);
    expect(text('ov-here-pinning')).toBe('Being pinned 6');
    expect(text('ov-here-errors')).toBe('In error 4');
    expect(text('ov-here-remote')).toBe('On other peers 200');
    // The tile above agrees with the list, whatever the last snapshot said.
    expect(text('ov-pins')).toBe((1200).toLocaleString());
    expect(text('ov-pins-sub')).toBe('6 being pinned or unpinned here');
    // The bar is for the eye only: what is read out is the list.
    expect(document.querySelector('.bar')?.getAttribute('aria-hidden')).toBe('true');
  });

  it('says that a CRDT peer alone will sync, and that a follower is read-only', () => {
    app.snapshot = { running: true, will_sync: true, read_only: false, crdt: false } as typeof app.snapshot;
    const { unmount } = render(Overview);
    expect(document.getElementById('ov-role')?.textContent).toContain('offline, will sync');
    expect(document.getElementById('ov-leader')?.textContent).toBe('—');
    unmount();
    app.snapshot = { running: true, will_sync: false, read_only: true, crdt: true } as typeof app.snapshot;
    render(Overview);
    const role = document.getElementById('ov-role')?.textContent;
    expect(role).toContain('read-only');
    expect(role).not.toContain('will sync');
    // A CRDT cluster has no leader, and the tile says why rather than a dash.
    expect(document.getElementById('ov-leader')?.textContent).toBe('none');
    expect(document.getElementById('ov-leader-sub')?.textContent).toContain('CRDT');
    app.snapshot = null;
  });

  it('draws the samples of the hour, or of the day, and says the latest values', async () => {
    const at = 1_800_000_000;
    const sample = (k: number) => ({
      at: at + k * 10, pinned: 100 + k, in_progress: 2, errors: 1, remote: 5, bytes_in: 2000, bytes_out: 1000,
      free: 5_000_000_000, used: 1_000_000, ipfs_in: k ? 3000 : null, ipfs_out: k ? 500 : null,
      peers_free: { '12D3KooWpi': 2_000_000_000 - k, '12D3KooWserver': 9_000_000_000 },
    });
    app.peers = [
      { id: '12D3KooWpi', peername: 'pi' }, { id: '12D3KooWserver', peername: 'server' },
    ] as typeof app.peers;
    app.charts = { hour: [sample(0), sample(1), sample(2)], day: [sample(0)] };
    render(Overview);
    const pins = screen.getByRole('img', { name: /^Pins on this peer, last hour: now Pinned 102, In progress 2, Errors 1, Remote 5/ });
    expect(pins.querySelectorAll('path').length).toBe(4);
    expect(screen.getByRole('img', { name: /^Cluster traffic, last hour: now In 2.0 kB\/s, Out 1.0 kB\/s/ })).toBeTruthy();
    expect(screen.getByRole('img', { name: /^IPFS traffic, last hour: now In 3.0 kB\/s, Out 500 B\/s/ })).toBeTruthy();
    expect(screen.getByRole('img', { name: /^Storage of this peer's IPFS, last hour: now Used 1.0 MB, Free 5.0 GB/ })).toBeTruthy();
    // Each of the peers with the least free space, by name, the least first.
    expect(screen.getByRole('img', { name: /^Free space, peers with the least, last hour: now pi 2.0 GB, server 9.0 GB/ })).toBeTruthy();
    await fireEvent.click(screen.getByLabelText('Last day'));
    await screen.findByRole('img', { name: /^Pins on this peer, last day: now Pinned 100/ });
    // The day's one sample came before the node told its traffic.
    expect(screen.getByRole('img', { name: "IPFS traffic: not reported by this peer's IPFS node" })).toBeTruthy();
    app.charts = { hour: [], day: [] };
    app.peers = [];
  });
});
