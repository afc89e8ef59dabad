import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { SettingsView } from '../lib/types';

const calls = vi.hoisted(() => ({
  settings: vi.fn(), saveSettings: vi.fn(), restart: vi.fn(), autostart: vi.fn(), openLogFolder: vi.fn(),
}));
vi.mock('../lib/api', () => ({ api: calls }));

import { app } from '../lib/app.svelte';
import Settings from './Settings.svelte';

function view(over: Partial<SettingsView['settings']> = {}, now = 'laptop'): SettingsView {
  return {
    settings: {
      ipfs_network: 'lan', peer_name: '', default_copies: null, log_level: 'info',
      notify: { pin_failed: true, peers: true, joined: true }, ...over,
    },
    peer_name_now: now, rest_api: 'http://127.0.0.1:9094', api_user: 'desktop', api_password: 's3cret', folder: '/home/u/.ipfs-cluster',
    version: '0.1.0+git0123456789ab', commit: '0123456789abcdef0123456789abcdef01234567',
  };
}

describe('Settings view', () => {
  afterEach(cleanup);
  beforeEach(() => {
    vi.resetAllMocks();
    calls.autostart.mockResolvedValue(false);
    app.message = { text: '', bad: false };
  });

  it('saves what was chosen, then offers to restart for a new name', async () => {
    calls.settings.mockResolvedValue(view());
    calls.saveSettings.mockImplementation(async (s) => view(s));
    render(Settings);
    const name = await screen.findByLabelText("This peer's name in the cluster");
    expect(name.getAttribute('placeholder')).toBe('laptop');
    await fireEvent.input(name, { target: { value: 'Ada laptop' } });
    await fireEvent.input(screen.getByLabelText('Copies of what you pin or add'), { target: { value: '2' } });
    await fireEvent.click(screen.getByLabelText(/public IPFS network/));
    await fireEvent.change(screen.getByLabelText('Log level'), { target: { value: 'debug' } });
    await fireEvent.click(screen.getByLabelText('a peer is lost or comes back'));
    expect(screen.queryByRole('button', { name: 'Restart the peer now' })).toBeNull();
    await fireEvent.submit(screen.getByRole('form', { name: 'Settings' }));
    await waitFor(() => expect(calls.saveSettings).toHaveBeenCalledWith({
      ipfs_network: 'public', peer_name: 'Ada laptop', default_copies: 2, log_level: 'debug',
      notify: { pin_failed: true, peers: false, joined: true },
    }));
    await waitFor(() => expect(screen.getByRole('status').textContent).toBe('Settings saved.'));
    calls.restart.mockResolvedValue({ running: true });
    calls.settings.mockResolvedValue(view({ peer_name: 'Ada laptop' }, 'Ada laptop'));
    await fireEvent.click(await screen.findByRole('button', { name: 'Restart the peer now' }));
    await waitFor(() => expect(calls.restart).toHaveBeenCalled());
    await waitFor(() => expect(screen.queryByRole('button', { name: 'Restart the peer now' })).toBeNull());
  });

  it('tells a refusal as it is and keeps the form', async () => {
    calls.settings.mockResolvedValue(view());
    calls.saveSettings.mockRejectedValue({ kind: 'bad_input', message: 'default copies 0: -1 (every peer) or 1 and more' });
    render(Settings);
    await fireEvent.input(await screen.findByLabelText('Copies of what you pin or add'), { target: { value: '0' } });
    await fireEvent.submit(screen.getByRole('form', { name: 'Settings' }));
    await waitFor(() => expect(screen.getByRole('status').textContent).toContain('default copies 0'));
    expect(screen.getByRole('status').className).toBe('error');
    expect((screen.getByLabelText('Copies of what you pin or add') as HTMLInputElement).value).toBe('0');
  });

  it('shows the API credential only when asked', async () => {
    calls.settings.mockResolvedValue(view());
    render(Settings);
    const password = await screen.findByText('••••••••••••');
    expect(screen.queryByText('s3cret')).toBeNull();
    await fireEvent.click(screen.getByRole('button', { name: 'Show' }));
    expect(password.textContent).toBe('s3cret');
    expect(screen.getByText('http://127.0.0.1:9094')).toBeTruthy();
  });

  it('says which build this is (version and commit) in About', async () => {
    calls.settings.mockResolvedValue(view());
    render(Settings);
    expect((await screen.findByText('0.1.0+git0123456789ab')).id).toBe('about-version');
    expect(screen.getByText('0123456789abcdef0123456789abcdef01234567').id).toBe('about-commit');
  });

  it('shows where the log files are and opens their folder', async () => {
    calls.settings.mockResolvedValue(view());
    app.snapshot = { log_folder: '/home/u/.local/state/ipfs-cluster-desktop/logs' } as typeof app.snapshot;
    calls.openLogFolder.mockResolvedValue('/home/u/.local/state/ipfs-cluster-desktop/logs');
    render(Settings);
    await screen.findByText('/home/u/.local/state/ipfs-cluster-desktop/logs');
    await fireEvent.click(screen.getByRole('button', { name: 'Open folder' }));
    await waitFor(() => expect(app.message.text).toBe('Opened /home/u/.local/state/ipfs-cluster-desktop/logs.'));
    app.snapshot = null;
  });
});
