// The shapes the backend sends (serde types in src-tauri/src/types.rs and
// src-tauri/src/desktop/mod.rs). Kept by hand for now; see README "Desktop UI".

export type TrackerStatus =
  | 'undefined' | 'cluster_error' | 'pin_error' | 'unpin_error' | 'error' | 'pinned'
  | 'pinning' | 'unpinning' | 'unpinned' | 'remote' | 'pin_queued' | 'unpin_queued'
  | 'queued' | 'sharded' | 'unexpectedly_unpinned';

export type PeerRole = 'voter' | 'follower';

export interface IpfsId {
  id: string;
  addresses: string[];
  error: string;
}

export interface Id {
  id: string;
  addresses: string[];
  cluster_peers: string[];
  cluster_peers_addresses: string[];
  version: string;
  commit: string;
  rpc_protocol_version: string;
  error: string;
  ipfs: IpfsId;
  peername: string;
  role?: PeerRole | null;
  leader?: string | null;
}

export interface IpfsStatus {
  source: 'running' | 'embedded' | 'unavailable';
  address: string;
  message: string;
}

export interface Snapshot {
  folder: string;
  configured: boolean;
  running: boolean;
  ready: boolean;
  paused: boolean;
  id: Id | null;
  ipfs: IpfsStatus | null;
  secret_location: string;
  rest_api: string | null;
  pins: number | null;
  queued: number;
  consensus_stopped: boolean;
}

export interface PinInfoShort {
  peername: string;
  ipfs_peer_id: string;
  ipfs_peer_addresses: string[];
  status: TrackerStatus;
  timestamp: string;
  error: string;
  attempt_count: number;
  priority_pin: boolean;
}

export interface GlobalPinInfo {
  cid: string;
  name: string;
  allocations: string[];
  origins: string[];
  created?: string;
  metadata: Record<string, string>;
  peer_map: Record<string, PinInfoShort>;
}

export interface PinsQuery {
  search: string;
  filter: string;
  after: string | null;
  limit: number;
}

export interface PinsPage {
  pins: GlobalPinInfo[];
  next: string | null;
}

export interface Pin {
  cid: string;
  name: string;
  allocations: string[];
}

export interface Metric {
  name: string;
  peer: string;
  value: string;
  expire: number;
  valid: boolean;
}

export interface Alert {
  name: string;
  peer: string;
  triggered_at: string;
}

export interface Health {
  freespace: Metric[];
  numpin: Metric[];
  alerts: Alert[];
}

export interface InvitationView {
  text: string;
  qr_size: number;
  qr_path: string;
  bootstrap: string[];
}

/** An error from a command: `kind` says what the user can do (bad_input, not_found, …). */
export interface UiError {
  kind: string;
  message: string;
}
