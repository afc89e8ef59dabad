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
    app.inviteLink = 'ipfs-cluster-invite:eyJib290c3RyYXAiOltdfQ';
    const field = (await screen.findByLabelText('Invitation or peer address')) as HTMLTextAreaElement;
    await waitFor(() => expect(field.value).toBe('ipfs-cluster-invite:eyJib290c3RyYXAiOltdfQ'));
    expect(app.inviteLink).toBeNull();
    expect(screen.getByRole('status').textContent).toContain('This invitation came from a link');
    // Nothing joined yet: the user confirms with Join, which has the focus.
    await waitFor(() => expect(document.activeElement?.id).toBe('btn-join'));
    expect(calls.joinCluster).not.toHaveBeenCalled();
    calls.joinCluster.mockResolvedValue({ configured: true });
    await fireEvent.click(screen.getByRole('button', { name: 'Join' }));
    expect(calls.joinCluster).toHaveBeenCalledWith('ipfs-cluster-invite:eyJib290c3RyYXAiOltdfQ', null, false);
    await waitFor(() => expect(onstarted).toHaveBeenCalled());
  });
});
