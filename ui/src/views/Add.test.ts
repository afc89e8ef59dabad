import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

const calls = vi.hoisted(() => ({ addPaths: vi.fn(), cancelAdd: vi.fn(), pickPaths: vi.fn() }));
vi.mock('../lib/api', () => ({ api: calls }));

import { app } from '../lib/app.svelte';
import Add from './Add.svelte';

describe('Add view', () => {
  afterEach(cleanup);
  beforeEach(() => {
    vi.resetAllMocks();
    app.toAdd = [];
    app.adding = null;
    app.addBusy = false;
    app.message = { text: '', bad: false };
  });

  it('shows an add that runs already (started before the window opened), with Cancel', async () => {
    app.adding = { name: 'big.iso', bytes_done: 0, bytes_total: 0, files_done: 0, files_total: 0 };
    render(Add);
    expect(screen.getByText('Looking through the files…')).toBeTruthy();
    await fireEvent.click(screen.getByRole('button', { name: 'Cancel' }));
    expect(calls.cancelAdd).toHaveBeenCalled();
  });

  it('offers a follower of a cluster no add, and says why', () => {
    app.snapshot = { read_only: true, following: 'https://example.org/cluster.json' } as typeof app.snapshot;
    app.toAdd = ['/home/me/photos'];
    render(Add);
    expect(screen.getByRole('note').textContent).toContain('read-only');
    expect(screen.queryByRole('button', { name: 'Add and pin' })).toBeNull();
    expect(screen.queryByRole('button', { name: 'Choose files…' })).toBeNull();
    app.snapshot = null;
  });

  it('lets a CRDT peer alone add, saying it will sync', () => {
    app.snapshot = { read_only: false, will_sync: true } as typeof app.snapshot;
    render(Add);
    expect(screen.getByText(/will sync/)).toBeTruthy();
    expect(screen.getByRole('button', { name: 'Choose files…' })).toBeTruthy();
    app.snapshot = null;
  });

  it('asks for a choice or a drop when nothing waits', () => {
    render(Add);
    expect(screen.getByText(/Choose files or folders, or drop them/)).toBeTruthy();
    expect(screen.queryByRole('button', { name: 'Add and pin' })).toBeNull();
  });

  it("adds what is chosen in the system's file chooser to the list, once each, then asks for a name", async () => {
    calls.pickPaths.mockResolvedValueOnce(['/home/u/a.txt', '/home/u/b.txt']);
    render(Add);
    await fireEvent.click(screen.getByRole('button', { name: 'Choose files…' }));
    expect(calls.pickPaths).toHaveBeenCalledWith(false);
    await screen.findByText('/home/u/b.txt');
    await waitFor(() => expect(document.activeElement?.id).toBe('add-name'));
    calls.pickPaths.mockResolvedValueOnce(['/home/u/photos', '/home/u/a.txt']);
    await fireEvent.click(screen.getByRole('button', { name: 'Choose folders…' }));
    expect(calls.pickPaths).toHaveBeenLastCalledWith(true);
    await screen.findByText('/home/u/photos');
    expect(app.toAdd).toEqual(['/home/u/a.txt', '/home/u/b.txt', '/home/u/photos']);
    // Cancelled: nothing changes.
    calls.pickPaths.mockResolvedValueOnce([]);
    await fireEvent.click(screen.getByRole('button', { name: 'Choose files…' }));
    expect(app.toAdd.length).toBe(3);
  });

  it('adds what was dropped with the name and copies chosen, shows progress, then the pin', async () => {
    let finish: (p: unknown) => void = () => {};
    calls.addPaths.mockReturnValue(new Promise((resolve) => (finish = resolve)));
    app.toAdd = ['/home/u/holiday', '/home/u/notes.txt'];
    render(Add);
    expect(screen.getByLabelText('Name').getAttribute('placeholder')).toBe('holiday and 1 more');
    await fireEvent.input(screen.getByLabelText('Copies (empty: the cluster\'s default)'), { target: { value: '2' } });
    await fireEvent.submit(screen.getByRole('form', { name: 'Add and pin' }));
    expect(calls.addPaths).toHaveBeenCalledWith(['/home/u/holiday', '/home/u/notes.txt'], '', 2);
    // Running: the button waits, Cancel reaches the backend, progress shows as it is pushed.
    expect((screen.getByRole('button', { name: 'Add and pin' }) as HTMLButtonElement).disabled).toBe(true);
    app.adding = { name: 'holiday and 1 more', bytes_done: 500_000, bytes_total: 2_000_000, files_done: 3, files_total: 10 };
    await waitFor(() => expect(screen.getByText(/500 kB of 2.0 MB · 3 of 10 files/)).toBeTruthy());
    const bar = screen.getByRole('progressbar', { name: 'Adding holiday and 1 more' });
    expect(bar.getAttribute('value')).toBe('500000');
    // Cancel has the focus (the button pressed is disabled now) and reaches the backend.
    expect(document.activeElement?.id).toBe('btn-add-cancel');
    await fireEvent.click(screen.getByRole('button', { name: 'Cancel' }));
    expect(calls.cancelAdd).toHaveBeenCalled();
    // Once every byte is sent, IPFS builds the DAG before the pin: said so.
    app.adding = { name: 'holiday and 1 more', bytes_done: 2_000_000, bytes_total: 2_000_000, files_done: 10, files_total: 10 };
    await waitFor(() => expect(screen.getByText(/All 2.0 MB sent: IPFS is building the DAG/)).toBeTruthy());
    // Something dropped meanwhile waits for its own add.
    app.toAdd = ['/home/u/later.txt'];
    finish({ pin: { cid: 'bafyroot', name: 'holiday and 1 more', allocations: [] }, skipped_hidden: 2, skipped_links: 1 });
    await waitFor(() => expect(screen.getByRole('status').textContent).toContain('Added and pinned holiday and 1 more (bafyroot)'));
    expect(screen.getByRole('status').textContent).toContain('Left out: 2 hidden items and 1 link.');
    expect(app.toAdd).toEqual(['/home/u/later.txt']);
    // The focus goes to what was said.
    await waitFor(() => expect(document.activeElement?.id).toBe('add-message'));
    expect(app.addBusy).toBe(false);
    expect(screen.queryByRole('progressbar')).toBeNull();
  });

  it('tells a failed or cancelled add as the backend says, keeping what was dropped', async () => {
    calls.addPaths.mockRejectedValue({ kind: 'bad_input', message: 'the add was cancelled: nothing was pinned' });
    app.toAdd = ['/home/u/big.iso'];
    render(Add);
    await fireEvent.submit(screen.getByRole('form', { name: 'Add and pin' }));
    await waitFor(() => expect(screen.getByRole('status').textContent).toBe('the add was cancelled: nothing was pinned'));
    expect(screen.getByRole('status').className).toBe('error');
    expect(app.toAdd).toEqual(['/home/u/big.iso']);
  });
});
