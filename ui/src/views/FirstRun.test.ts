import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

const calls = vi.hoisted(() => ({ joinCluster: vi.fn(), newCluster: vi.fn(), readQr: vi.fn() }));
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
    render(FirstRun, { onstarted });
    expect(document.getElementById('join-from-link')).toBeNull();
    const link = 'ipfs-cluster-invite:' + btoa(JSON.stringify({ bootstrap: ['/ip4/192.0.2.7/tcp/9096/p2p/12D3KooWabc'], secret: 'x' }))
      .replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    app.inviteLink = link;
    const field = (await screen.findByLabelText('Invitation or peer address')) as HTMLTextAreaElement;
    await waitFor(() => expect(field.value).toBe(link));
    expect(app.inviteLink).toBeNull();
    const note = screen.getByRole('status').textContent!;
    expect(note).toContain('This invitation came from a link');
    expect(note).toContain('/ip4/192.0.2.7/tcp/9096/p2p/12D3KooWabc');
    // Nothing joined yet, and no stray key joins: the focus is on the invitation.
    await waitFor(() => expect(document.activeElement?.id).toBe('join-invitation'));
    expect(calls.joinCluster).not.toHaveBeenCalled();
    calls.joinCluster.mockResolvedValue({ configured: true });
    await fireEvent.click(screen.getByRole('button', { name: 'Join' }));
    expect(calls.joinCluster).toHaveBeenCalledWith(link, null, false);
    await waitFor(() => expect(onstarted).toHaveBeenCalled());
  });
});
