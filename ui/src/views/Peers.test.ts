import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

const calls = vi.hoisted(() => ({ graph: vi.fn(), removePeer: vi.fn() }));
vi.mock('../lib/api', () => ({ api: calls }));

import { app } from '../lib/app.svelte';
import type { Id } from '../lib/types';
import Peers from './Peers.svelte';

const peer = (id: string, peername: string, error = ''): Id => ({
  id, peername, error, addresses: [], cluster_peers: [], cluster_peers_addresses: [], version: '', commit: '',
  rpc_protocol_version: '', ipfs: { id: '', addresses: [], error: '' }, role: 'voter', leader: null,
});

describe('Peers view', () => {
  afterEach(cleanup);
  beforeEach(() => {
    vi.resetAllMocks();
    app.peers = [peer('12D3KooWlaptop', 'laptop'), peer('12D3KooWserver', 'server'), peer('12D3KooWpi', 'pi', 'dial failed')];
    app.snapshot = null;
    app.message = { text: '', bad: false };
  });

  it('pictures who reaches whom, and says it in words', async () => {
    calls.graph.mockResolvedValue({
      cluster_id: '12D3KooWlaptop', id_to_peername: { '12D3KooWlaptop': 'laptop', '12D3KooWserver': 'server', '12D3KooWpi': 'pi' },
      ipfs_links: { Qlaptop: ['Qserver'], Qserver: ['Qlaptop'] }, cluster_trust_links: {},
      cluster_to_ipfs: { '12D3KooWlaptop': 'Qlaptop', '12D3KooWserver': 'Qserver', '12D3KooWpi': 'Qpi' },
      cluster_links: { '12D3KooWlaptop': ['12D3KooWserver', '12D3KooWpi'], '12D3KooWserver': ['12D3KooWlaptop'], '12D3KooWpi': [] },
    });
    render(Peers);
    const pic = await screen.findByRole('img', { name: /^3 peers\./ });
    expect(pic.getAttribute('aria-label')).toContain('laptop reaches server, pi, its IPFS node those of server');
    expect(pic.getAttribute('aria-label')).toContain('pi (unreachable) reaches no peer, its IPFS node no other of the cluster');
    expect(pic.querySelectorAll('path.ipfs-link').length).toBe(1);
    expect(pic.querySelectorAll('line').length).toBe(2);
    expect(pic.querySelectorAll('line.one-way').length).toBe(1);
    expect(pic.querySelectorAll('.node.down').length).toBe(1);
  });

  it("shows each peer's free space against the roomiest, and when it was last heard", async () => {
    calls.graph.mockResolvedValue(null);
    const now = Date.now();
    const metric = (name: string, peer: string, value: string, agoMs = 0) => ({
      name, peer, value, expire: (now + 60_000) * 1e6, valid: true, weight: 0, partitionable: false, received_at: (now - agoMs) * 1e6,
    });
    app.health = {
      freespace: [metric('freespace', '12D3KooWlaptop', '50000000000'), metric('freespace', '12D3KooWserver', '200000000000')],
      numpin: [],
      pings: [metric('ping', '12D3KooWserver', '', 12_000)],
      alerts: [],
      latency_ms: { '12D3KooWserver': 3.25, '12D3KooWpi': 120.4 },
    };
    render(Peers);
    const server = document.querySelector('tr[data-peer="12D3KooWserver"]')!;
    const laptop = document.querySelector('tr[data-peer="12D3KooWlaptop"]')!;
    expect(server.textContent).toContain('12 s ago');
    expect(server.textContent).toContain('3.3 ms');
    expect(document.querySelector('tr[data-peer="12D3KooWpi"]')!.textContent).toContain('120 ms');
    expect((server.querySelector('.bar > span') as HTMLElement).style.width).toBe('100%');
    expect((laptop.querySelector('.bar > span') as HTMLElement).style.width).toBe('25%');
    expect(laptop.textContent).toContain('—');
    app.health = null;
  });

  it('removes a peer only once confirmed', async () => {
    calls.graph.mockResolvedValue(null);
    calls.removePeer.mockResolvedValue(undefined);
    render(Peers);
    await fireEvent.click(screen.getByRole('button', { name: 'Remove peer pi' }));
    await fireEvent.click(screen.getByRole('button', { name: 'Keep pi' }));
    expect(calls.removePeer).not.toHaveBeenCalled();
    await waitFor(() => expect(document.activeElement?.id).toBe('remove-12D3KooWpi'));
    await fireEvent.click(screen.getByRole('button', { name: 'Remove peer pi' }));
    await fireEvent.click(screen.getByRole('button', { name: 'Yes, remove pi' }));
    expect(calls.removePeer).toHaveBeenCalledWith('12D3KooWpi');
    await waitFor(() => expect(screen.getByRole('status').textContent).toBe('Removed pi from the cluster.'));
  });

  it('says that in a CRDT cluster removing a peer bans it here', async () => {
    calls.graph.mockResolvedValue(null);
    calls.removePeer.mockResolvedValue(undefined);
    app.snapshot = { crdt: true } as typeof app.snapshot;
    render(Peers);
    await fireEvent.click(screen.getByRole('button', { name: 'Remove peer pi' }));
    expect(screen.getByText(/Ban from this computer's peers/)).toBeTruthy();
    await fireEvent.click(screen.getByRole('button', { name: 'Yes, remove pi' }));
    expect(calls.removePeer).toHaveBeenCalledWith('12D3KooWpi');
    await waitFor(() => expect(screen.getByRole('status').textContent).toBe('Banned pi: this computer no longer hears it or gives it pins.'));
  });
});
