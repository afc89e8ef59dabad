import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

const calls = vi.hoisted(() => ({ logs: vi.fn() }));
const events = vi.hoisted(() => ({ handlers: {} as Record<string, () => void> }));
vi.mock('../lib/api', () => ({
  api: calls,
  on: (name: string, h: () => void) => {
    events.handlers[name] = h;
    return Promise.resolve(() => {});
  },
}));

import Logs from './Logs.svelte';

const line = (seq: number, level: string, message: string) => ({
  seq, time: '2026-12-03T12:00:01.234Z', level, target: 'ipfs_cluster::peer', message,
});

describe('Logs view', () => {
  afterEach(cleanup);
  beforeEach(() => vi.resetAllMocks());

  it('shows the lines kept, asks for the new ones when told, and filters them', async () => {
    calls.logs.mockResolvedValueOnce([line(1, 'INFO', 'peer ready'), line(2, 'WARN', 'IPFS is slow')]);
    render(Logs);
    await screen.findByText(/peer ready/);
    expect(calls.logs).toHaveBeenLastCalledWith(null);
    calls.logs.mockResolvedValueOnce([line(3, 'ERROR', 'pin failed')]);
    events.handlers.logs!();
    await screen.findByText(/pin failed/);
    expect(calls.logs).toHaveBeenLastCalledWith(2);
    await fireEvent.change(screen.getByLabelText('Show'), { target: { value: 'warn' } });
    await waitFor(() => expect(screen.queryByText(/peer ready/)).toBeNull());
    expect(screen.getByRole('button', { name: 'Copy 2 lines' })).toBeTruthy();
    await fireEvent.input(screen.getByLabelText('Containing'), { target: { value: 'nothing like it' } });
    await screen.findByText('No line matches.');
  });
});
