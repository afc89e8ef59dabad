import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { GlobalPinInfo, PinsPage } from '../lib/types';

const calls = vi.hoisted(() => ({
  pinsPage: vi.fn(),
  pin: vi.fn(),
  unpin: vi.fn(),
  recover: vi.fn(),
  pinInfo: vi.fn(),
  repin: vi.fn(),
  openInGateway: vi.fn(),
}));
vi.mock('../lib/api', () => ({ api: calls }));

import { app } from '../lib/app.svelte';
import Pins from './Pins.svelte';

function pin(cid: string, name: string, status: GlobalPinInfo['peer_map'][string]['status']): GlobalPinInfo {
  return {
    cid, name, allocations: [], origins: [], metadata: {}, created: '2026-01-01T00:00:00Z',
    peer_map: {
      '12D3KooWpeerAAAAAAAAAAAAAAAA': {
        peername: 'laptop', ipfs_peer_id: '', ipfs_peer_addresses: [], status,
        timestamp: '2026-01-01T00:00:00Z', error: '', attempt_count: 0, priority_pin: false,
      },
    },
  };
}

describe('Pins view', () => {
  afterEach(cleanup);
  beforeEach(() => {
    vi.resetAllMocks();
    app.snapshot = {
      folder: '', configured: true, running: true, ready: true, paused: false, id: null,
      ipfs: null, secret_location: '', rest_api: null, pins: 2, summary: null, queued: 0, consensus_stopped: false, starting: false, adding: null, log_folder: null, last_run: null, following: null, read_only: false, will_sync: false, crdt: false,
    };
    app.message = { text: '', bad: false };
  });

  it('shows the page the peer answers, each row named for its actions', async () => {
    const page: PinsPage = { pins: [pin('bafyone', 'holiday photos', 'pinned'), pin('bafytwo', '', 'pin_error')], next: 'bafytwo' };
    calls.pinsPage.mockResolvedValue(page);
    render(Pins);
    await screen.findByText('holiday photos');
    expect(screen.getByText('laptop: pinned').className).toContain('ok');
    expect(screen.getByText('laptop: pin_error').className).toContain('bad');
    expect(screen.getByRole('button', { name: 'Unpin holiday photos' })).toBeTruthy();
    expect(screen.getByRole('button', { name: 'Recover bafytwo' })).toBeTruthy();
    // More after this page, and the viewport not full: the next page is asked by itself,
    // after the cursor the peer gave.
    calls.pinsPage.mockResolvedValue({ pins: [pin('bafythree', 'third', 'pinning')], next: null });
    await screen.findByText('third');
    expect(calls.pinsPage).toHaveBeenLastCalledWith({
      search: '', search_in: 'name', filter: '', order: 'cid', after: 'bafytwo', limit: 100,
    });
    expect(document.getElementById('pins-count')!.textContent).toContain('3 shown');
    // Recover says what came of it.
    calls.recover.mockResolvedValue(pin('bafytwo', '', 'pinned'));
    await fireEvent.click(screen.getByRole('button', { name: 'Recover bafytwo' }));
    expect(calls.recover).toHaveBeenCalledWith('bafytwo');
    await waitFor(() => expect(app.message.text).toBe('Asked every peer to retry bafytwo: pinned on 1 of 1.'));
  });

  it('offers a follower of a cluster no pin or unpin, and says why', async () => {
    app.snapshot = { ...app.snapshot!, read_only: true, following: 'https://example.org/cluster.json' };
    calls.pinsPage.mockResolvedValue({ pins: [pin('bafyone', 'holiday photos', 'pinned')], next: null });
    render(Pins);
    await screen.findByText('holiday photos');
    const note = screen.getByRole('note').textContent!;
    expect(note).toContain('read-only');
    expect(note).toContain('https://example.org/cluster.json');
    expect(screen.queryByRole('form', { name: 'Pin a CID' })).toBeNull();
    expect(screen.queryByRole('button', { name: 'Unpin holiday photos' })).toBeNull();
    expect(screen.getByRole('button', { name: 'Recover holiday photos' })).toBeTruthy();
    expect(note).toContain('follows a cluster (https://');
    expect(screen.queryByText(/Tip: drop a CID/)).toBeNull();
  });

  it('says that a CRDT peer alone keeps its pins and will sync, and still pins', async () => {
    app.snapshot = { ...app.snapshot!, will_sync: true };
    calls.pinsPage.mockResolvedValue({ pins: [pin('bafyone', 'holiday photos', 'pinned')], next: null });
    render(Pins);
    await screen.findByText('holiday photos');
    expect(screen.getByText(/will sync/).closest('p')!.textContent).toContain('No other peer of the cluster is reachable now');
    expect(screen.getByRole('form', { name: 'Pin a CID' })).toBeTruthy();
    expect(screen.getByRole('button', { name: 'Unpin holiday photos' })).toBeTruthy();
  });

  it('says nothing of syncing when other peers are heard', async () => {
    calls.pinsPage.mockResolvedValue({ pins: [pin('bafyone', 'holiday photos', 'pinned')], next: null });
    render(Pins);
    await screen.findByText('holiday photos');
    expect(screen.queryByText(/will sync/)).toBeNull();
  });

  it('searches names, or CIDs once what is typed looks like one, and orders as chosen', async () => {
    calls.pinsPage.mockResolvedValue({ pins: [], next: null });
    render(Pins);
    await screen.findByText('No pins yet.');
    const box = screen.getByLabelText('Starting with');
    await fireEvent.input(box, { target: { value: 'Holiday' } });
    await waitFor(() => expect(calls.pinsPage).toHaveBeenLastCalledWith(expect.objectContaining({ search: 'Holiday', search_in: 'name' })));
    await fireEvent.input(box, { target: { value: 'bafybeig' } });
    await waitFor(() => expect(calls.pinsPage).toHaveBeenLastCalledWith(expect.objectContaining({ search: 'bafybeig', search_in: 'cid' })));
    expect((screen.getByLabelText('Search in') as HTMLSelectElement).value).toBe('cid');
    // Chosen by the user, where to look stays as chosen.
    await fireEvent.change(screen.getByLabelText('Search in'), { target: { value: 'name' } });
    await fireEvent.input(box, { target: { value: 'QmYwAP' } });
    await waitFor(() => expect(calls.pinsPage).toHaveBeenLastCalledWith(expect.objectContaining({ search: 'QmYwAP', search_in: 'name' })));
    await fireEvent.change(screen.getByLabelText('Order'), { target: { value: 'name' } });
    await waitFor(() => expect(calls.pinsPage).toHaveBeenLastCalledWith(expect.objectContaining({ order: 'name', after: null })));
    expect(document.getElementById('pins-empty')!.textContent).toBe('No pin matches.');
    // A search's outcome is said in the live region too.
    await fireEvent.input(box, { target: { value: 'Holiday' } });
    await waitFor(() => expect(screen.getByRole('status').textContent).toBe('No pin matches.'));
  });

  it('draws only the rows in view and holds only a few pages of a long listing', async () => {
    // An endless listing, a page of 100 rows at a time.
    calls.pinsPage.mockImplementation(async (q: { after: string | null }) => {
      const n = q.after ? Number(q.after.slice(1)) + 1 : 0;
      return {
        pins: Array.from({ length: 100 }, (_, i) => pin(`bafy${n}x${i}`, `pin ${n}.${i}`, 'pinned')),
        next: `p${n}`,
      };
    });
    render(Pins);
    await screen.findByText('pin 0.0');
    const scroller = document.getElementById('pins-scroll')!;
    const drawn = () => document.querySelectorAll('#pins-body tr[data-cid]').length;
    expect(drawn()).toBeLessThan(40);
    // Scrolled far down, page after page: pages come, the first ones go.
    for (let k = 1; k <= 12; k++) {
      scroller.scrollTop = k * 100 * 41;
      await fireEvent.scroll(scroller);
      await screen.findByText(`pin ${k}.0`);
    }
    expect(drawn()).toBeLessThan(40);
    expect(screen.queryByText('pin 0.0')).toBeNull();
    // Back to the top: the first page is fetched again from the start.
    calls.pinsPage.mockClear();
    for (let k = 11; k >= 0; k--) {
      scroller.scrollTop = k * 100 * 41;
      await fireEvent.scroll(scroller);
      await waitFor(() => expect(document.querySelector(`tr[data-cid="bafy${k}x0"]`)).toBeTruthy());
    }
    expect(calls.pinsPage).toHaveBeenCalledWith(expect.objectContaining({ after: null }));
  });

  it('keeps the row holding the focus drawn while the table scrolls away from it', async () => {
    calls.pinsPage.mockImplementation(async (q: { after: string | null }) => {
      const n = q.after ? Number(q.after.slice(1)) + 1 : 0;
      return {
        pins: Array.from({ length: 100 }, (_, i) => pin(`bafy${n}x${i}`, `pin ${n}.${i}`, 'pinned')),
        next: n < 3 ? `p${n}` : null,
      };
    });
    render(Pins);
    const details = await screen.findByRole('button', { name: 'Details of pin 0.2' });
    details.focus();
    expect(document.activeElement).toBe(details);
    const scroller = document.getElementById('pins-scroll')!;
    scroller.scrollTop = 150 * 41;
    await fireEvent.scroll(scroller);
    await screen.findByText('pin 1.50');
    // Still drawn, still focused; the rows between are drawn too (bounded by the pages held).
    expect(document.activeElement).toBe(details);
    expect(details.isConnected).toBe(true);
    // Focus elsewhere: the far rows are let go again.
    screen.getByLabelText('Starting with').focus();
    await waitFor(() => expect(screen.queryByRole('button', { name: 'Details of pin 0.2' })).toBeNull());
  });

  it('pins with the name and copies typed, and says so', async () => {
    calls.pinsPage.mockResolvedValue({ pins: [], next: null });
    calls.pin.mockResolvedValue({ cid: 'bafynew', name: 'n', allocations: [] });
    render(Pins);
    await screen.findByText('No pins yet.');
    await fireEvent.input(screen.getByLabelText('CID, ipfs:// link or /ipfs/ path'), { target: { value: ' bafynew ' } });
    await fireEvent.input(screen.getByLabelText('Name (optional)'), { target: { value: 'n' } });
    await fireEvent.input(screen.getByLabelText('Copies (empty: the default)'), { target: { value: '2' } });
    await fireEvent.submit(screen.getByRole('form', { name: 'Pin a CID' }));
    await waitFor(() => expect(calls.pin).toHaveBeenCalledWith('bafynew', 'n', 2));
    await waitFor(() => expect(screen.getByRole('status').textContent).toContain('Pinned bafynew'));
  });

  it('tells an error from the peer as it is', async () => {
    calls.pinsPage.mockResolvedValue({ pins: [], next: null });
    calls.pin.mockRejectedValue({ kind: 'bad_input', message: 'invalid CID "x"' });
    render(Pins);
    await fireEvent.input(screen.getByLabelText('CID, ipfs:// link or /ipfs/ path'), { target: { value: 'x' } });
    await fireEvent.submit(screen.getByRole('form', { name: 'Pin a CID' }));
    await waitFor(() => expect(screen.getByRole('status').textContent).toBe('invalid CID "x"'));
    expect(screen.getByRole('status').className).toBe('error');
  });

  it('fetches its rows again when the pins here change, once per change told', async () => {
    calls.pinsPage.mockResolvedValue({ pins: [pin('bafyone', 'one', 'pinning')], next: null });
    render(Pins);
    await screen.findByText('laptop: pinning');
    const asked = calls.pinsPage.mock.calls.length;
    calls.pinsPage.mockResolvedValue({ pins: [pin('bafyone', 'one', 'pinned')], next: null });
    app.summary = {
      peer: 'p', peername: 'laptop', pins: 1, allocated_here: 1, pinned: 1, remote: 0, pin_queued: 0,
      pinning: 0, pin_error: 0, unpin_queued: 0, unpinning: 0, unpin_error: 0, cluster_error: 0,
    };
    await screen.findByText('laptop: pinned');
    expect(calls.pinsPage.mock.calls.length).toBe(asked + 1);
  });

  it("opens a pin's details: options, allocations, each peer's status and error", async () => {
    const g = pin('bafyone', 'holiday photos', 'pin_error');
    g.peer_map['12D3KooWpeerAAAAAAAAAAAAAAAA']!.error = 'context deadline exceeded';
    g.metadata = { album: '2026' };
    calls.pinsPage.mockResolvedValue({ pins: [g], next: null });
    calls.pinInfo.mockResolvedValue({
      cid: 'bafyone', name: 'holiday photos', replication_factor_min: 2, replication_factor_max: 3,
      expire_at: '0001-01-01T00:00:00Z', allocations: [],
    });
    render(Pins);
    const details = await screen.findByRole('button', { name: 'Details of holiday photos' });
    expect(details.getAttribute('aria-expanded')).toBe('false');
    await fireEvent.click(details);
    expect(calls.pinInfo).toHaveBeenCalledWith('bafyone');
    await screen.findByText('2 to 3');
    expect(details.getAttribute('aria-expanded')).toBe('true');
    const facts = document.querySelector('.facts')!.textContent!;
    expect(facts).toContain('every peer');
    expect(facts).toContain('album2026');
    expect(screen.getByText('context deadline exceeded')).toBeTruthy();
    expect(screen.getByRole('table', { name: 'Status of holiday photos on each peer' })).toBeTruthy();
    // Opened through this computer's gateway, the address said; a node without one, said so.
    calls.openInGateway.mockResolvedValueOnce('http://127.0.0.1:8080/ipfs/bafyone');
    const open = screen.getByRole('button', { name: 'Open in browser: holiday photos' });
    await fireEvent.click(open);
    expect(calls.openInGateway).toHaveBeenCalledWith('bafyone');
    await waitFor(() => expect(app.message.text).toBe('Opened http://127.0.0.1:8080/ipfs/bafyone in your browser.'));
    calls.openInGateway.mockRejectedValueOnce({ kind: 'unavailable', message: 'this computer has no gateway' });
    await fireEvent.click(open);
    await waitFor(() => expect(app.message.bad).toBe(true));
    expect(app.message.text).toContain('this computer has no gateway');
    await fireEvent.click(details);
    expect(screen.queryByText('2 to 3')).toBeNull();
  });

  it('unpins only once confirmed, and an undo pins it again with every option it had', async () => {
    calls.pinsPage.mockResolvedValue({ pins: [pin('bafyone', 'holiday photos', 'pinned')], next: null });
    const gone = { cid: 'bafyone', name: 'holiday photos', replication_factor_min: -1, replication_factor_max: -1, mode: 'direct', metadata: { a: 'b' } };
    calls.unpin.mockResolvedValue(gone);
    calls.repin.mockResolvedValue(gone);
    render(Pins);
    await fireEvent.click(await screen.findByRole('button', { name: 'Unpin holiday photos' }));
    expect(calls.unpin).not.toHaveBeenCalled();
    // Keep: nothing happens.
    await fireEvent.click(screen.getByRole('button', { name: 'Keep holiday photos' }));
    expect(calls.unpin).not.toHaveBeenCalled();
    await waitFor(() => expect(document.activeElement?.getAttribute('aria-label')).toBe('Unpin holiday photos'));
    await fireEvent.click(screen.getByRole('button', { name: 'Unpin holiday photos' }));
    await fireEvent.click(screen.getByRole('button', { name: 'Yes, unpin holiday photos' }));
    expect(calls.unpin).toHaveBeenCalledWith('bafyone');
    await waitFor(() => expect(screen.getByRole('status').textContent).toContain('Unpinned holiday photos'));
    await waitFor(() => expect(document.activeElement?.id).toBe('pin-message'));
    await fireEvent.click(screen.getByRole('button', { name: 'Undo' }));
    // Every option as it was: on every peer, direct, its metadata.
    expect(calls.repin).toHaveBeenCalledWith(gone);
    expect(calls.pin).not.toHaveBeenCalled();
    await waitFor(() => expect(screen.getByRole('status').textContent).toContain('Pinned holiday photos again.'));
    expect(screen.queryByRole('button', { name: 'Undo' })).toBeNull();
  });

  it("offers no undo once another message replaced the unpin's", async () => {
    calls.pinsPage.mockResolvedValue({ pins: [pin('bafyone', 'one', 'pinned')], next: null });
    calls.unpin.mockResolvedValue({ cid: 'bafyone', name: 'one' });
    render(Pins);
    await fireEvent.click(await screen.findByRole('button', { name: 'Unpin one' }));
    await fireEvent.click(screen.getByRole('button', { name: 'Yes, unpin one' }));
    await screen.findByRole('button', { name: 'Undo' });
    app.message = { text: 'Pinned something else.', bad: false };
    await waitFor(() => expect(screen.queryByRole('button', { name: 'Undo' })).toBeNull());
  });
});
