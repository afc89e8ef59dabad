// The only way the window talks to the peer: Tauri commands (invoke) and events (listen).
import { invoke } from '@tauri-apps/api/core';
import { listen, type UnlistenFn } from '@tauri-apps/api/event';
import type {
  Added, AddProgress, Charts, Pending, ConnectGraph, GlobalPinInfo, Health, Id, InvitationView, LogLine, Pin, PinsPage, PinsQuery, Sample,
  Settings, SettingsView, Snapshot, StatusSummary,
} from './types';

export const api = {
  status: () => invoke<Snapshot>('status'),
  newCluster: () => invoke<Snapshot>('new_cluster'),
  joinCluster: (invitation: string, secret: string | null, voter: boolean) =>
    invoke<Snapshot>('join_cluster', { invitation, secret, voter }),
  followCluster: (url: string) => invoke<Snapshot>('follow_cluster', { url }),
  readQr: (bytes: number[]) => invoke<string>('read_qr', { bytes }),
  readQrFile: (path: string) => invoke<string>('read_qr_file', { path }),
  invitation: () => invoke<InvitationView>('invitation'),
  peers: () => invoke<Id[]>('peers'),
  health: () => invoke<Health>('health'),
  removePeer: (id: string) => invoke<void>('remove_peer', { id }),
  pinsPage: (query: PinsQuery) => invoke<PinsPage>('pins_page', { query }),
  pin: (what: string, name: string, replication: number | null) =>
    invoke<Pin>('pin', { what, name, replication }),
  unpin: (cid: string) => invoke<Pin>('unpin', { cid }),
  pinInfo: (cid: string) => invoke<Pin>('pin_info', { cid }),
  recover: (cid: string) => invoke<GlobalPinInfo>('recover', { cid }),
  openInGateway: (cid: string) => invoke<string>('open_in_gateway', { cid }),
  takePending: () => invoke<Pending>('take_pending'),
  openLogFolder: () => invoke<string>('open_log_folder'),
  addPaths: (paths: string[], name: string, replication: number | null) =>
    invoke<Added>('add_paths', { paths, name, replication }),
  repin: (pin: Pin) => invoke<Pin>('repin', { pin }),
  cancelAdd: () => invoke<boolean>('cancel_add'),
  pickPaths: (folders: boolean) => invoke<string[]>('pick_paths', { folders }),
  settings: () => invoke<SettingsView>('settings'),
  saveSettings: (settings: Settings) => invoke<SettingsView>('save_settings', { settings }),
  restart: () => invoke<Snapshot>('restart'),
  logs: (after: number | null) => invoke<LogLine[]>('logs', { after }),
  charts: () => invoke<Charts>('charts'),
  graph: () => invoke<ConnectGraph>('graph'),
  setPaused: (paused: boolean) => invoke<void>('set_paused', { paused }),
  autostart: (enable?: boolean) => invoke<boolean>('autostart', enable === undefined ? {} : { enable }),
  publicNetwork: (enable?: boolean) =>
    invoke<boolean>('public_network', enable === undefined ? {} : { enable }),
};

/** The events the backend pushes when what they carry changes. */
export interface Events {
  snapshot: Snapshot;
  peers: Id[];
  health: Health;
  summary: StatusSummary | null;
  'add-progress': AddProgress;
  sample: Sample;
  logs: number;
  /** The window has something to do (a link, a view, files from the tray): `takePending`. */
  pending: null;
}

export function on<K extends keyof Events>(
  event: K,
  handler: (payload: Events[K]) => void,
): Promise<UnlistenFn> {
  return listen<Events[K]>(event, (e) => handler(e.payload));
}

/** Files dropped on the window (Tauri knows their paths; the page does not). */
export function onDrag(handlers: {
  enter: () => void;
  leave: () => void;
  drop: (paths: string[]) => void;
}): Promise<UnlistenFn[]> {
  return Promise.all([
    listen('tauri://drag-enter', handlers.enter),
    listen('tauri://drag-leave', handlers.leave),
    listen<{ paths?: string[] }>('tauri://drag-drop', (e) => handlers.drop(e.payload.paths ?? [])),
  ]);
}
