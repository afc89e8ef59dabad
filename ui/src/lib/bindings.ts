// Generated from the Rust types by src-tauri/src/desktop/ui_types.rs: do not edit.
// UPDATE_UI_TYPES=1 cargo test -p ipfs-cluster --lib ui_types writes it anew.

/**
 * A content identifier, (de)serialized as its string form ("Qm…", "bafy…").
 *
 * The `cid` crate's own serde impl writes binary (IPLD links); the API needs strings.
 *
 * It has no order of its own: pins are listed in one order, that of [`PinKey`].
 */
export type Cid = string;

/**
 * A pin's place in the pinset's one order: its CID's text, compared as text (the order of
 * the `pins` table's primary key, which every peer shares). Every listing is in this order
 * and resumes after one (the store's pages, each member's status pages, the merged global
 * status, the desktop's pins view); as a cursor from a client it may be any text.
 */
export type PinKey = string;

/**
 * Per-CID state of the pin tracker on one peer.
 */
export type TrackerStatus = "undefined" | "cluster_error" | "pin_error" | "unpin_error" | "error" | "pinned" | "pinning" | "unpinning" | "unpinned" | "remote" | "pin_queued" | "unpin_queued" | "queued" | "sharded" | "unexpectedly_unpinned";

/**
 * A peer's raft role (this project's addition to ID; ignored by older clients).
 */
export type PeerRole = "voter" | "follower";

export type PinType = "pin" | "meta-pin" | "clusterdag-pin" | "shard-pin";

export type PinMode = "recursive" | "direct";

/**
 * Options a user sets on a pin; inlined into [`Pin`] as in IPFS Cluster.
 */
export type PinOptions = { replication_factor_min: number, replication_factor_max: number, name: string, mode: PinMode, shard_size: number, user_allocations: Array<string>, expire_at: string, metadata: { [key in string]: string }, pin_update: Cid | null, origins: Array<string>, };

/**
 * An item of the shared pinset: what the cluster keeps and where.
 */
export type Pin = { cid: Cid, type: PinType, 
/**
 * Peer ids holding the pin; empty means every peer.
 */
allocations: Array<string>, max_depth: number, reference: Cid | null, timestamp: string, replication_factor_min: number, replication_factor_max: number, name: string, mode: PinMode, shard_size: number, user_allocations: Array<string>, expire_at: string, metadata: { [key in string]: string }, pin_update: Cid | null, origins: Array<string>, };

/**
 * Status of one CID on one peer.
 */
export type PinInfoShort = { peername: string, ipfs_peer_id: string, ipfs_peer_addresses: Array<string>, status: TrackerStatus, timestamp: string, error: string, attempt_count: number, priority_pin: boolean, };

/**
 * What a status report says of the pin itself (shared by [`PinInfo`] and [`GlobalPinInfo`],
 * whose JSON has these fields at the top level).
 */
export type PinSummary = { cid: Cid, name: string, allocations: Array<string>, origins: Array<string>, created: string, metadata: { [key in string]: string }, };

/**
 * Status of one CID across the cluster.
 */
export type GlobalPinInfo = { peer_map: { [key in string]: PinInfoShort }, cid: Cid, name: string, allocations: Array<string>, origins: Array<string>, created: string, metadata: { [key in string]: string }, };

/**
 * One peer's pins by status (`GET /pins/summary`; not in IPFS Cluster's API). Read from
 * counts the peer keeps as its pinset and its operations change, so it costs the same at ten
 * pins or ten million; a status walk (`GET /pins?local=true`) finds the same numbers, except
 * that IPFS is not asked: a pin removed from IPFS behind the cluster's back counts as
 * pinned here until the next state sync queues it again.
 */
export type StatusSummary = { peer: string, peername: string, 
/**
 * Pins in the cluster's pinset.
 */
pins: number, 
/**
 * Of them, those allocated to this peer (pins on every peer included).
 */
allocated_here: number, 
/**
 * Allocated here with nothing left to do.
 */
pinned: number, 
/**
 * Allocated to other peers only.
 */
remote: number, pin_queued: number, pinning: number, pin_error: number, unpin_queued: number, unpinning: number, unpin_error: number, 
/**
 * Allocated here with nothing left to do, while this peer's IPFS daemon does not
 * answer (counted here instead of as pinned).
 */
cluster_error: number, };

export type IpfsId = { id: string, addresses: Array<string>, error: string, };

/**
 * A cluster peer's identity and view (`GET /id`, `GET /peers`).
 */
export type Id = { id: string, addresses: Array<string>, cluster_peers: Array<string>, cluster_peers_addresses: Array<string>, version: string, commit: string, rpc_protocol_version: string, error: string, ipfs: IpfsId, peername: string, role?: PeerRole | null, 
/**
 * The Raft leader as this peer sees it (this project's addition, like `role`).
 */
leader?: string | null, };

/**
 * A peer's measurement with a time to live (`GET /monitor/metrics/{name}`); the allocator
 * only trusts valid, unexpired metrics.
 */
export type Metric = { name: string, peer: string, value: string, 
/**
 * Unix time in nanoseconds after which the metric is stale.
 */
expire: number, valid: boolean, weight: number, partitionable: boolean, received_at: number, };

/**
 * Raised when a peer's metric expires (`GET /health/alerts`).
 */
export type Alert = { triggered_at: string, name: string, peer: string, value: string, 
/**
 * Unix time in nanoseconds after which the metric is stale.
 */
expire: number, valid: boolean, weight: number, partitionable: boolean, received_at: number, };

/**
 * `GET /health/graph`: who is connected to whom, cluster peers and IPFS nodes.
 */
export type ConnectGraph = { cluster_id: string, id_to_peername: { [key in string]: string }, 
/**
 * IPFS peer → the IPFS peers it is connected to.
 */
ipfs_links: { [key in string]: Array<string> }, 
/**
 * Cluster peer → the cluster peers it reaches.
 */
cluster_links: { [key in string]: Array<string> }, 
/**
 * Cluster peer → whether it is trusted (every Raft member is).
 */
cluster_trust_links: { [key in string]: boolean }, 
/**
 * Cluster peer → its IPFS peer.
 */
cluster_to_ipfs: { [key in string]: string }, };

/**
 * Where this peer's IPFS node comes from, as the app tells the user.
 */
export type IpfsSource = "running" | "embedded" | "unavailable";

export type IpfsStatus = { source: IpfsSource, address: string, message: string, };

/**
 * Everything the overview shows.
 */
export type Snapshot = { folder: string, configured: boolean, running: boolean, ready: boolean, paused: boolean, id: Id | null, ipfs: IpfsStatus | null, secret_location: string, rest_api: string | null, 
/**
 * Pins in the pinset (when running).
 */
pins: number | null, 
/**
 * This peer's pins by status (when running), from counts kept as they change.
 */
summary: StatusSummary | null, 
/**
 * Operations queued or running on this peer.
 */
queued: number, 
/**
 * Raft stopped for good on a storage error (a full disk): the peer must be restarted.
 */
consensus_stopped: boolean, 
/**
 * The peer is starting (its store opening, joining, its IPFS node coming up).
 */
starting: boolean, 
/**
 * The add running now, if any (a window opened meanwhile shows it).
 */
adding: AddProgress | null, 
/**
 * Where the app's log files are (none: not written, the folder could not be made).
 */
log_folder: string | null, 
/**
 * The last run did not end cleanly (a crash, or killed): what to tell, with the log's place.
 */
last_run: string | null, 
/**
 * The template URL of the cluster this peer follows ("Follow a cluster"), if it does.
 */
following: string | null, 
/**
 * The peer refuses pins and unpins (a follower of a CRDT cluster): the views say so
 * instead of offering what would fail.
 */
read_only: boolean, 
/**
 * A CRDT peer that writes hears no other peer now: its pins, unpins and adds are taken
 * here and reach the others when it meets them again ("will sync").
 */
will_sync: boolean, 
/**
 * The peer runs the CRDT consensus: removing a peer bans it from this peer's peerset
 * (there is no membership to take it out of), and the Peers view says so.
 */
crdt: boolean, };

/**
 * What the window is to do as it opens, or at once (see [`Desktop::set_pending`]).
 */
export type Pending = { 
/**
 * An invitation link the app was opened with: the Join form shows it.
 */
link: string | null, 
/**
 * A view to show (`invite`, …).
 */
view: string | null, 
/**
 * Files and folders to open in the Add view.
 */
add: Array<string>, };

/**
 * What the pins view asks for: pins whose name (`search_in` name) or CID starts with
 * `search` and whose status on some peer matches `filter` (IPFS Cluster's filter names;
 * empty: all), in `order`, after the cursor `after`, at most `limit` (default 50). A search
 * by name lists by name, a search by CID by CID, whatever `order` says.
 */
export type PinsQuery = { search: string, search_in: SearchIn, filter: string, order: PinsOrder, after: string | null, limit: number | null, };

/**
 * Where the pins view's search looks.
 */
export type SearchIn = "name" | "cid";

/**
 * How the pins view is ordered.
 */
export type PinsOrder = "cid" | "cid_desc" | "name";

/**
 * A page of the pins view; `next` is where the following page starts (none at the end),
 * a cursor to give back as it is.
 */
export type PinsPage = { pins: Array<GlobalPinInfo>, next: string | null, };

export type InvitationView = { text: string, svg: string, 
/**
 * The QR code's width in modules, quiet zone included, and the SVG path of its dark
 * modules (see [`Invitation::qr_modules`]).
 */
qr_size: number, qr_path: string, 
/**
 * The addresses in it, best first, for `--bootstrap`.
 */
bootstrap: Array<string>, };

/**
 * Metrics and alerts for the peers view.
 */
export type Health = { freespace: Array<Metric>, numpin: Array<Metric>, 
/**
 * Each peer's last `ping` (when it was last heard from: `received_at`).
 */
pings: Array<Metric>, alerts: Array<Alert>, 
/**
 * The last round trip to each connected peer (libp2p's ping), in milliseconds.
 */
latency_ms: { [key in string]: number }, };

/**
 * How far an add has gone, as the window shows it. Totals are 0 while the walk runs.
 */
export type AddProgress = { name: string, bytes_done: number, bytes_total: number, files_done: number, files_total: number, };

/**
 * What an add made: the pin, and what it left out of the dropped folders.
 */
export type Added = { pin: Pin, skipped_hidden: number, skipped_links: number, };

/**
 * One moment of the peer.
 */
export type Sample = { 
/**
 * Unix time, seconds.
 */
at: number, pinned: number, 
/**
 * Queued or running, pins and unpins.
 */
in_progress: number, 
/**
 * Pin, unpin and cluster errors.
 */
errors: number, remote: number, 
/**
 * Cluster traffic since the last sample, bytes per second.
 */
bytes_in: number, bytes_out: number, 
/**
 * Free space of this peer's IPFS node (its `freespace` metric), bytes; none unknown.
 */
free: number | null, 
/**
 * Storage its IPFS node uses (`repo/stat`'s size), bytes; none unknown.
 */
used: number | null, 
/**
 * Its IPFS node's traffic with other IPFS nodes since the last sample (`stats/bw`),
 * bytes per second; none when the node does not say.
 */
ipfs_in: number | null, ipfs_out: number | null, 
/**
 * Free space of the [`PEERS_FREE`] peers with the least (their `freespace` metrics), by
 * peer id: who runs out first.
 */
peers_free: { [key in string]: number }, };

/**
 * The two windows the charts show.
 */
export type Charts = { hour: Array<Sample>, day: Array<Sample>, };

/**
 * What the Settings view shows.
 */
export type SettingsView = { settings: Settings, 
/**
 * The running peer's name (none while it is not running).
 */
peer_name_now: string | null, rest_api: string | null, 
/**
 * The credential of the peer's APIs (REST, proxy, pinning service), for other tools.
 */
api_user: string, api_password: string, 
/**
 * The app's folder (`service.json`, the peer's state).
 */
folder: string, 
/**
 * This build's version (the release and the commit, see [`crate::types::full_version`]).
 */
version: string, 
/**
 * The commit it was built from (empty when built without git).
 */
commit: string, };

export type Settings = { ipfs_network: "lan" | "public" | "loopback", 
/**
 * This peer's name in the cluster (empty: the one `service.json` gives); applies when
 * the peer starts.
 */
peer_name: string, 
/**
 * Copies of what is pinned or added here when none are chosen (none: the cluster's
 * default).
 */
default_copies: number | null, log_level: LogLevel, notify: Notify, };

/**
 * How much the app logs (to stderr and to its Logs view).
 */
export type LogLevel = "error" | "warn" | "info" | "debug";

/**
 * Which desktop notifications the user wants.
 */
export type Notify = { 
/**
 * A pin of this peer's failed.
 */
pin_failed: boolean, 
/**
 * A peer of the cluster stopped answering, or came back.
 */
peers: boolean, 
/**
 * Joining a cluster finished.
 */
joined: boolean, };

/**
 * One event as the Logs view shows it.
 */
export type LogLine = { 
/**
 * Counts every line since the app started: where the window asks to go on from.
 */
seq: number, 
/**
 * RFC 3339, UTC.
 */
time: string, 
/**
 * ERROR, WARN, INFO, DEBUG or TRACE.
 */
level: string, 
/**
 * The module that logged it.
 */
target: string, 
/**
 * The message and its fields (`key=value`).
 */
message: string, };

/**
 * An error as the app shows it: what kind of problem it is (so the page can tell a bad CID
 * from a lost connection) and a sentence for the user. The one place errors become UI text.
 */
export type UiError = { 
/**
 * `bad_input`, `not_found`, `refused`, `unavailable`, `ipfs` or `internal`.
 */
kind: 'bad_input' | 'not_found' | 'refused' | 'unavailable' | 'ipfs' | 'internal', message: string, };
