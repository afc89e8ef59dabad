import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

const calls = vi.hoisted(() => ({ joinCluster: vi.fn(), newCluster: vi.fn(), readQr: vi.fn(), followCluster: vi.fn() }));
vi.mock('../lib/api', () => ({ api: calls }));

import { app } from '../lib/app.svelte';
import FirstRun from './FirstRun.svelte';

describe('First run', () => {
  afterEach(cleanup);
  beforeEach(() => {
    vi.resetAllMocks();
    app.inviteLink = null;
  });

  it('fills the Join form from an invitation link, and joins only once Join is pressed', async () => {
    const onstarted = vi.fn();
    // (jsdom lays nothing out: the scroll that brings Join into sight is recorded.)
    const scrolled = vi.fn();
    HTMLElement.prototype.scrollIntoView = function (this: HTMLElement, arg?: boolean | ScrollIntoViewOptions) {
      scrolled(this.id, arg);
    };
    render(FirstRun, { onstarted });
    expect(document.getElementById('join-from-link')).toBeNull();
    const link = 'ipfs-cluster-invite:' + btoa(JSON.stringify({ bootstrap: ['/ip4/192.0.2.7/tcp/9096/p2p/12D3KooWabc'], secret: 'x' }))
      .replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    app.inviteLink = { text: link, from: 'link' };
    const field = (await screen.findByLabelText('Invitation or peer address')) as HTMLTextAreaElement;
    await waitFor(() => expect(field.value).toBe(link));
    expect(app.inviteLink).toBeNull();
    const note = screen.getByRole('status').textContent!;
    expect(note).toContain('This invitation came from a link');
    expect(note).toContain('/ip4/192.0.2.7/tcp/9096/p2p/12D3KooWabc');
    // Nothing joined yet, and no stray key joins: the focus is on the invitation.
    await waitFor(() => expect(document.activeElement?.id).toBe('join-invitation'));
    expect(scrolled).toHaveBeenCalledWith('btn-join', { block: 'nearest' });
    expect(calls.joinCluster).not.toHaveBeenCalled();
    calls.joinCluster.mockResolvedValue({ configured: true });
    await fireEvent.click(screen.getByRole('button', { name: 'Join' }));
    expect(calls.joinCluster).toHaveBeenCalledWith(link, null, false);
    await waitFor(() => expect(onstarted).toHaveBeenCalled());
  });

  it('follows a cluster by its follow link, and shows why when it cannot', async () => {
    const onstarted = vi.fn();
    render(FirstRun, { onstarted });
    const field = screen.getByLabelText('Follow link') as HTMLInputElement;
    await fireEvent.input(field, { target: { value: '  https://example.org/cluster.json ' } });
    calls.followCluster.mockRejectedValueOnce({ kind: 'bad_input', message: 'only CRDT clusters can be followed' });
    await fireEvent.click(screen.getByRole('button', { name: 'Follow' }));
    expect(calls.followCluster).toHaveBeenCalledWith('https://example.org/cluster.json');
    // Said beside the field, which has the focus back.
    await waitFor(() => expect(document.getElementById('follow-error')!.textContent).toContain('only CRDT clusters'));
    expect(field.getAttribute('aria-invalid')).toBe('true');
    expect(field.getAttribute('aria-describedby')).toContain('follow-error');
    await waitFor(() => expect(document.activeElement).toBe(field));
    expect(onstarted).not.toHaveBeenCalled();
    // Not a link: said at once, nothing asked.
    await fireEvent.input(field, { target: { value: 'example.org' } });
    await fireEvent.click(screen.getByRole('button', { name: 'Follow' }));
    expect(document.getElementById('follow-error')!.textContent).toContain('http://');
    expect(calls.followCluster).toHaveBeenCalledTimes(1);
    await fireEvent.input(field, { target: { value: 'https://example.org/cluster.json' } });
    calls.followCluster.mockResolvedValue({ configured: true, read_only: true });
    await fireEvent.click(screen.getByRole('button', { name: 'Follow' }));
    await waitFor(() => expect(onstarted).toHaveBeenCalled());
    expect(app.snapshot?.read_only).toBe(true);
  });

  it('reads an invitation from a picture pasted on the screen', async () => {
    render(FirstRun, { onstarted: vi.fn() });
    calls.readQr.mockResolvedValue('ipfs-cluster-invite:eyJiIjpbXX0');
    // (jsdom's files cannot be read: a picture as the webview's clipboard hands one over.)
    const picture = { type: 'image/png', arrayBuffer: async () => new Uint8Array([137, 80, 78, 71]).buffer };
    const paste = new Event('paste', { bubbles: true, cancelable: true }) as ClipboardEvent;
    Object.defineProperty(paste, 'clipboardData', {
      value: { items: [{ type: 'image/png', getAsFile: () => picture }] },
    });
    document.dispatchEvent(paste);
    expect(paste.defaultPrevented).toBe(true);
    const field = screen.getByLabelText('Invitation or peer address') as HTMLTextAreaElement;
    await waitFor(() => expect(field.value).toBe('ipfs-cluster-invite:eyJiIjpbXX0'));
    expect(calls.readQr).toHaveBeenCalledWith([137, 80, 78, 71]);
    expect(screen.getByRole('status').textContent).toContain('This invitation came from a picture');
    // A text paste is left to the field.
    const text = new Event('paste', { bubbles: true, cancelable: true }) as ClipboardEvent;
    Object.defineProperty(text, 'clipboardData', { value: { items: [{ type: 'text/plain', getAsFile: () => null }] } });
    document.dispatchEvent(text);
    expect(text.defaultPrevented).toBe(false);
  });
});
