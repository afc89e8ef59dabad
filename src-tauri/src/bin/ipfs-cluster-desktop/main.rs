//! `ipfs-cluster-desktop`: the Tauri shell around [`ipfs_cluster::desktop::Desktop`]. Every
//! command is a one-line call into the core; live state reaches the UI as events.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipfs_cluster::desktop::invite;
use ipfs_cluster::desktop::logfiles;
use ipfs_cluster::desktop::logs::{LogLine, LogRing, RingLayer};
use ipfs_cluster::desktop::notify;
use ipfs_cluster::desktop::settings::{LogLevel, Settings};
use ipfs_cluster::desktop::tray;
use ipfs_cluster::desktop::{
    Desktop, Health, InvitationView, PinsPage, PinsQuery, SettingsView, Snapshot, UiError,
};
use ipfs_cluster::error::Error;
use ipfs_cluster::types::{GlobalPinInfo, Id, Pin};
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Emitter, Manager, RunEvent, State};
use tauri_plugin_autostart::ManagerExt;

type App = Arc<Desktop>;

#[tauri::command]
async fn status(d: State<'_, App>) -> Result<Snapshot, UiError> {
    Ok(d.snapshot().await)
}

#[tauri::command]
async fn new_cluster(d: State<'_, App>) -> Result<Snapshot, UiError> {
    d.new_cluster().await.map_err(UiError::from)
}

#[tauri::command]
async fn join_cluster(
    app: AppHandle,
    d: State<'_, App>,
    invitation: String,
    secret: Option<String>,
    voter: bool,
) -> Result<Snapshot, UiError> {
    let joined = d
        .join(&invitation, secret.as_deref(), voter)
        .await
        .map_err(UiError::from)?;
    let others = d.seen().await.map_or(0, |s| s.members.len());
    tell(&app, &d, &notify::joined(others));
    Ok(joined)
}

#[tauri::command]
async fn follow_cluster(d: State<'_, App>, url: String) -> Result<Snapshot, UiError> {
    d.follow(&url).await.map_err(UiError::from)
}

/// Shows a notice through the system's notifications, if Settings want its kind. A desktop
/// without a notification service loses it (logged), nothing else.
fn tell(app: &AppHandle, d: &Desktop, notice: &notify::Notice) {
    use tauri_plugin_notification::NotificationExt;
    let wanted = Settings::load(d.folder()).map_or(true, |s| notice.kind.wanted(&s.notify));
    if !wanted {
        return;
    }
    tracing::info!(title = %notice.title, "notification");
    if let Err(e) = app
        .notification()
        .builder()
        .title(&notice.title)
        .body(&notice.body)
        .show()
    {
        tracing::warn!("the notification {:?} was not shown: {e}", notice.title);
    }
}

/// Every few seconds, window open or not: what changed since the last look, as notices
/// ([`notify::Notifier`]); peers' names refreshed once a minute.
fn notify_loop(app: AppHandle, d: App) {
    tauri::async_runtime::spawn(async move {
        let mut notifier = notify::Notifier::default();
        let mut names = std::collections::BTreeMap::new();
        let mut named_at: Option<tokio::time::Instant> = None;
        loop {
            tokio::time::sleep(NOTIFY_EVERY).await;
            let Some(seen) = d.seen().await else {
                // Stopped: a later start begins from a new baseline.
                notifier = notify::Notifier::default();
                continue;
            };
            if notify::names_due(&seen, &names, named_at.map(|t| t.elapsed())) {
                if let Ok(peers) = d.peers().await {
                    for p in peers.into_iter().filter(|p| !p.peername.is_empty()) {
                        names.insert(p.id, p.peername);
                    }
                }
                named_at = Some(tokio::time::Instant::now());
            }
            for notice in notifier.step(&seen, &names) {
                tell(&app, &d, &notice);
            }
        }
    });
}

const NOTIFY_EVERY: Duration = Duration::from_secs(5);

/// A picture of an invitation's QR code → the invitation text (the user checks it, then joins).
#[tauri::command]
fn read_qr(bytes: Vec<u8>) -> Result<String, UiError> {
    ipfs_cluster::desktop::Invitation::from_qr_image(&bytes)
        .map(|i| i.to_text())
        .map_err(|e| UiError::from(Error::from(e)))
}

/// A picture file dropped on the first-run screen → the invitation in its QR code.
#[tauri::command]
fn read_qr_file(path: String) -> Result<String, UiError> {
    ipfs_cluster::desktop::Invitation::from_qr_file(std::path::Path::new(&path))
        .map(|i| i.to_text())
        .map_err(|e| UiError::from(Error::from(e)))
}

#[tauri::command]
async fn invitation(d: State<'_, App>) -> Result<InvitationView, UiError> {
    d.invitation().await.map_err(UiError::from)
}

#[tauri::command]
async fn peers(d: State<'_, App>) -> Result<Vec<Id>, UiError> {
    d.peers().await.map_err(UiError::from)
}

#[tauri::command]
async fn health(d: State<'_, App>) -> Result<Health, UiError> {
    d.health().await.map_err(UiError::from)
}

#[tauri::command]
async fn graph(d: State<'_, App>) -> Result<ipfs_cluster::types::ConnectGraph, UiError> {
    d.graph().await.map_err(UiError::from)
}

#[tauri::command]
async fn remove_peer(d: State<'_, App>, id: String) -> Result<(), UiError> {
    d.remove_peer(&id).await.map_err(UiError::from)
}

#[tauri::command]
async fn pins_page(d: State<'_, App>, query: PinsQuery) -> Result<PinsPage, UiError> {
    d.pins_page(query).await.map_err(UiError::from)
}

#[tauri::command]
async fn pin(
    d: State<'_, App>,
    what: String,
    name: String,
    replication: Option<i32>,
) -> Result<Pin, UiError> {
    d.pin(&what, &name, replication)
        .await
        .map_err(UiError::from)
}

#[tauri::command]
async fn unpin(d: State<'_, App>, cid: String) -> Result<Pin, UiError> {
    d.unpin(&cid).await.map_err(UiError::from)
}

/// Pins again, with every option it had, a pin the user just unpinned (Undo).
#[tauri::command]
async fn repin(d: State<'_, App>, pin: Pin) -> Result<Pin, UiError> {
    d.repin(pin).await.map_err(UiError::from)
}

#[tauri::command]
async fn pin_info(d: State<'_, App>, cid: String) -> Result<Pin, UiError> {
    d.pin_info(&cid).await.map_err(UiError::from)
}

/// Opens a pin in the system's browser through this computer's IPFS gateway; the address
/// opened (the window shows it, so it can be copied when no browser opens).
#[tauri::command]
async fn open_in_gateway(
    app: tauri::AppHandle,
    d: State<'_, App>,
    cid: String,
) -> Result<String, UiError> {
    use tauri_plugin_opener::OpenerExt;
    let url = d.gateway_link(&cid).await.map_err(UiError::from)?;
    app.opener()
        .open_url(&url, None::<&str>)
        .map_err(|e| UiError::unavailable(format!("No browser opened {url}: {e}")))?;
    Ok(url)
}

/// What the window is to do (an invitation link the app was opened with, a view or files
/// the tray asked for), once: the window asks as it opens, and when told `pending`.
#[tauri::command]
fn take_pending(d: State<'_, App>) -> ipfs_cluster::desktop::Pending {
    d.take_pending()
}

/// Opens the window (or brings it forward) with something to do: an open window is told at
/// once, a new one asks as it opens.
fn show_pending(app: &AppHandle, change: impl FnOnce(&mut ipfs_cluster::desktop::Pending)) {
    app.state::<App>().set_pending(change);
    show_main(app);
    let _ = app.emit("pending", ());
}

#[tauri::command]
async fn recover(d: State<'_, App>, cid: String) -> Result<GlobalPinInfo, UiError> {
    d.recover(&cid).await.map_err(UiError::from)
}

#[tauri::command]
async fn settings(d: State<'_, App>) -> Result<SettingsView, UiError> {
    d.settings().await.map_err(UiError::from)
}

/// Saves the Settings view's choices; the log level applies at once.
#[tauri::command]
async fn save_settings(
    d: State<'_, App>,
    level: State<'_, LevelHandle>,
    settings: Settings,
) -> Result<SettingsView, UiError> {
    let view = d.save_settings(settings).await.map_err(UiError::from)?;
    level.set(view.settings.log_level);
    Ok(view)
}

/// Stops the peer and starts it again (a new peer name applies).
#[tauri::command]
async fn restart(d: State<'_, App>) -> Result<Snapshot, UiError> {
    d.restart().await.map_err(UiError::from)
}

/// The log lines kept after `after` (all with none), oldest first; a `logs` event tells of
/// new ones.
#[tauri::command]
fn logs(after: Option<u64>) -> Vec<LogLine> {
    LogRing::global().after(after, ipfs_cluster::desktop::logs::CAPACITY)
}

/// Changes the log filter of the running app.
struct LevelHandle(
    tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>,
);

impl LevelHandle {
    fn set(&self, level: LogLevel) {
        // RUST_LOG, when set, decides (as for the daemon).
        if std::env::var_os("RUST_LOG").is_none() {
            let _ = self
                .0
                .reload(tracing_subscriber::EnvFilter::new(level.filter()));
        }
    }
}

/// Tells the window that log lines came (`logs`, their last number), at most twice a
/// second, while the window is open.
fn logs_loop(app: AppHandle) {
    tauri::async_runtime::spawn(async move {
        let mut lines = LogRing::global().changes();
        while lines.changed().await.is_ok() {
            if app.get_webview_window("main").is_some() {
                let seq = *lines.borrow_and_update();
                let _ = app.emit("logs", seq);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
}

/// The system's file chooser, for those who do not drag (or cannot: WCAG 2.1.1 asks for a
/// keyboard way): files, or folders, to add; none when the user cancels. The paths go back
/// to the window's Add view, as a drop's would.
#[tauri::command]
async fn pick_paths(window: tauri::Window, folders: bool) -> Result<Vec<String>, UiError> {
    use tauri_plugin_dialog::DialogExt;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let chooser = window
        .dialog()
        .file()
        .set_parent(&window)
        .set_title(if folders {
            "Choose folders to add"
        } else {
            "Choose files to add"
        });
    let done = move |picked: Option<Vec<tauri_plugin_dialog::FilePath>>| {
        let _ = tx.send(chosen_paths(picked));
    };
    if folders {
        chooser.pick_folders(done);
    } else {
        chooser.pick_files(done);
    }
    Ok(rx.await.unwrap_or_default())
}

/// What the system's file chooser answered, as paths (none when the user cancelled).
fn chosen_paths(picked: Option<Vec<tauri_plugin_dialog::FilePath>>) -> Vec<String> {
    picked
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| p.into_path().ok())
        .map(|p| p.to_string_lossy().into_owned())
        .collect()
}

/// Adds dropped or picked files and folders as one DAG and pins it (see
/// [`Desktop::add`]); `add-progress` events follow it a few times a second until it ends.
#[tauri::command]
async fn add_paths(
    app: AppHandle,
    d: State<'_, App>,
    paths: Vec<String>,
    name: Option<String>,
    replication: Option<i32>,
) -> Result<ipfs_cluster::desktop::add::Added, UiError> {
    let paths: Vec<PathBuf> = paths.into_iter().map(PathBuf::from).collect();
    let desktop = d.inner().clone();
    let ticker = tauri::async_runtime::spawn(async move {
        loop {
            tokio::time::sleep(PROGRESS_EVERY).await;
            if let Some(p) = desktop.add_progress() {
                let _ = app.emit("add-progress", p);
            }
        }
    });
    let added = d
        .add(&paths, name.as_deref().unwrap_or(""), replication)
        .await
        .map_err(UiError::from);
    ticker.abort();
    added
}

/// The overview's charts: samples of the last hour and day.
#[tauri::command]
fn charts(d: State<'_, App>) -> ipfs_cluster::desktop::history::Charts {
    d.charts()
}

/// Stops the running add before anything is pinned; whether one was running.
#[tauri::command]
fn cancel_add(d: State<'_, App>) -> bool {
    d.cancel_add()
}

/// How often a running add's progress is sent to the window.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

#[tauri::command]
async fn set_paused(d: State<'_, App>, paused: bool) -> Result<(), UiError> {
    d.set_paused(paused).await.map_err(UiError::from)
}

/// Whether the built-in IPFS node also joins the public IPFS network (`enable` sets it).
#[tauri::command]
fn public_network(d: State<'_, App>, enable: Option<bool>) -> Result<bool, UiError> {
    match enable {
        Some(on) => d.set_public_network(on),
        None => d.public_network(),
    }
    .map_err(UiError::from)
}

#[tauri::command]
fn autostart(app: AppHandle, enable: Option<bool>) -> Result<bool, String> {
    let a = app.autolaunch();
    match enable {
        Some(true) => a.enable().map_err(|e| e.to_string())?,
        Some(false) => a.disable().map_err(|e| e.to_string())?,
        None => {}
    }
    a.is_enabled().map_err(|e| e.to_string())
}

/// Shows the window, making it again when it was closed to the tray (closing releases the
/// webview and its memory; the peer keeps running).
fn show_main(app: &AppHandle) {
    if let Some(w) = app.get_webview_window("main") {
        let _ = w.show();
        let _ = w.unminimize();
        let _ = w.set_focus();
        return;
    }
    let Some(cfg) = app.config().app.windows.first().cloned() else {
        return;
    };
    match tauri::WebviewWindowBuilder::from_config(app, &cfg).and_then(|b| b.build()) {
        Ok(w) => {
            let _ = w.set_focus();
        }
        Err(e) => tracing::error!("cannot open the window: {e}"),
    }
}

/// The tray's menu items that change, and the state its icon shows.
struct TrayItems {
    status: MenuItem<tauri::Wry>,
    pause: MenuItem<tauri::Wry>,
    shown: Mutex<Option<tray::TrayState>>,
}

/// The app's icon with the badge of `state`.
fn tray_icon(app: &AppHandle, state: tray::TrayState) -> tauri::image::Image<'static> {
    let icon = app.default_window_icon().cloned().expect("bundled icon");
    let rgba = tray::badge(icon.rgba(), icon.width(), icon.height(), state);
    tauri::image::Image::new_owned(rgba, icon.width(), icon.height())
}

/// Shows how the peer is doing in the tray: its icon's badge, its status line (menu and
/// tooltip), and Pause or Resume as it is.
fn show_tray(app: &AppHandle, snap: &Snapshot, peers: Option<&[Id]>) {
    let v = tray::view(snap, peers);
    let items = app.state::<TrayItems>();
    let text = v.menu_text();
    let _ = items.status.set_text(&text);
    let _ = items.pause.set_text(pause_label(snap.paused));
    let Some(tray) = app.tray_by_id("main") else {
        return;
    };
    let _ = tray.set_tooltip(Some(format!("IPFS Cluster Desktop · {text}")));
    let mut shown = items.shown.lock().unwrap();
    if *shown != Some(v.state) {
        tracing::debug!(state = ?v.state, "tray");
        let _ = tray.set_icon(Some(tray_icon(app, v.state)));
        *shown = Some(v.state);
    }
}

/// The tray's pause item as it reads while pinning is `paused` or not.
fn pause_label(paused: bool) -> &'static str {
    if paused {
        "Resume pinning"
    } else {
        "Pause pinning"
    }
}

/// Pins what the clipboard holds (a CID, an `ipfs://` link or an `/ipfs/` path), and says
/// how it went in a notification.
fn pin_from_clipboard(app: &AppHandle, d: &App) {
    use tauri_plugin_clipboard_manager::ClipboardExt;
    let text = app.clipboard().read_text().unwrap_or_default();
    let (app, d) = (app.clone(), d.clone());
    tauri::async_runtime::spawn(async move {
        let what = text.trim().to_string();
        let notice = if what.is_empty() || what.len() > 4096 {
            notify::action("Nothing to pin", "The clipboard holds no CID or IPFS link.")
        } else {
            match d.pin(&what, "", None).await {
                Ok(pin) => notify::action(
                    "Pinned from the clipboard",
                    &format!("{}: copies are being made.", pin.cid),
                ),
                Err(e) => notify::action("Could not pin from the clipboard", &e.to_string()),
            }
        };
        tell(&app, &d, &notice);
    });
}

/// Files chosen from the tray open in the Add view, as if dropped on the window.
fn add_from_tray(app: &AppHandle) {
    use tauri_plugin_dialog::DialogExt;
    let handle = app.clone();
    app.dialog()
        .file()
        .set_title("Choose files to add")
        .pick_files(move |picked| {
            let paths = chosen_paths(picked);
            if !paths.is_empty() {
                show_pending(&handle, |p| p.add = paths);
            }
        });
}

/// Keeps the UI and the tray in step with the peer (in-process; no REST round trip). The
/// summary of this peer's pins goes out as the tracker tells of changes, at most every
/// [`SUMMARY_QUIET`] however fast they come (the watch coalesces what happens meanwhile).
/// What has no events runs on a clock, and only while cheap: the snapshot (readiness, IPFS)
/// every second, peers and health every few seconds, and only while the window is open.
/// With the window closed, the tooltip is renewed every few seconds and nothing else runs.
fn emit_loop(app: AppHandle, d: App) {
    tauri::async_runtime::spawn(async move {
        let mut tick: u64 = 0;
        let mut peers: Option<Vec<Id>> = None;
        let mut changes: Option<tokio::sync::watch::Receiver<u64>> = None;
        let mut next_tick = tokio::time::Instant::now();
        // What the window was last sent (snapshot, peers, health, summary): an unchanged
        // state is not sent again, so a window at rest redraws nothing.
        let mut sent: [String; 4] = Default::default();
        loop {
            let window = app.get_webview_window("main").is_some();
            // A change of the pins here, or the clock.
            let changed = match changes.as_mut().filter(|_| window) {
                Some(rx) => tokio::select! {
                    r = rx.changed() => Some(r.is_ok()),
                    _ = tokio::time::sleep_until(next_tick) => None,
                },
                None => {
                    tokio::time::sleep_until(next_tick).await;
                    None
                }
            };
            if changed == Some(false) {
                // That peer stopped; the clock finds the next one.
                changes = None;
                continue;
            }
            if changed == Some(true) {
                if let Ok(summary) = d.summary().await {
                    send_changed(&app, &mut sent[3], "summary", &summary);
                }
                tokio::time::sleep(SUMMARY_QUIET).await;
                continue;
            }
            next_tick += Duration::from_secs(1);
            if !window {
                // A window opened later gets everything.
                sent = Default::default();
            }
            let slow = tick.is_multiple_of(5);
            // The charts' samples, window open or not (so they are there when it opens).
            if tick.is_multiple_of(ipfs_cluster::desktop::history::HOUR_STEP as u64) {
                if let Ok(s) = d.sample().await {
                    if window {
                        let _ = app.emit("sample", s);
                    }
                }
            }
            if slow {
                // After the peer starts, and again after a restart (a new tracker).
                changes = d.changes().await;
            }
            if window || slow {
                let snap = d.snapshot().await;
                if snap.running && slow {
                    peers = d.peers().await.ok();
                }
                if window {
                    // None once the peer stops: the window shows no stale counts.
                    send_changed(&app, &mut sent[3], "summary", &snap.summary);
                    send_changed(&app, &mut sent[0], "snapshot", &snap);
                    if snap.running && slow {
                        if let Some(p) = &peers {
                            send_changed(&app, &mut sent[1], "peers", p);
                        }
                        if let Ok(h) = d.health().await {
                            send_changed(&app, &mut sent[2], "health", &h);
                        }
                    }
                }
                if slow {
                    show_tray(&app, &snap, peers.as_deref());
                }
            }
            tick += 1;
            // Behind (a slow snapshot): the next tick a second from now, not a burst.
            let now = tokio::time::Instant::now();
            if next_tick < now {
                next_tick = now + Duration::from_secs(1);
            }
        }
    });
}

/// The shortest time between two summaries sent to the window while pins change.
const SUMMARY_QUIET: Duration = Duration::from_millis(250);

/// Emits `value` unless it is what was last sent under `last`.
fn send_changed<T: serde::Serialize + Clone>(
    app: &AppHandle,
    last: &mut String,
    event: &str,
    value: &T,
) {
    let text = serde_json::to_string(value).unwrap_or_default();
    if *last != text {
        let _ = app.emit(event, value.clone());
        *last = text;
    }
}

/// Ends the app cleanly: the peer stops, the run is marked ended, then the process exits.
fn quit(app: &AppHandle, d: &App, quitting: &Arc<AtomicBool>) {
    if quitting.swap(true, Ordering::SeqCst) {
        return;
    }
    let d = d.clone();
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        // A stop waits for a start under way; past this, the app ends anyway, and the next
        // start tells it did not end cleanly.
        match tokio::time::timeout(Duration::from_secs(45), d.stop()).await {
            Ok(()) => {
                if let Some(dir) = d.log_folder() {
                    logfiles::end_run(&dir);
                }
            }
            Err(_) => tracing::warn!("the peer did not stop within 45 s: ending anyway"),
        }
        app.exit(0);
    });
}

/// Opens the folder of the app's log files in the system's file manager.
#[tauri::command]
fn open_log_folder(app: AppHandle, d: State<'_, App>) -> Result<String, UiError> {
    use tauri_plugin_opener::OpenerExt;
    let dir = d.log_folder().ok_or_else(|| {
        UiError::unavailable("the app writes no log files (its folder could not be made)")
    })?;
    let shown = dir.display().to_string();
    app.opener()
        .open_path(&shown, None::<&str>)
        .map_err(|e| UiError::unavailable(format!("No file manager opened {shown}: {e}")))?;
    Ok(shown)
}

/// `ipfs-cluster-desktop --hidden`: start in the tray, without a window (start at login).
const HIDDEN: &str = "--hidden";

fn main() {
    // `--version` as the command lines answer it, before anything starts (no window, no peer).
    if std::env::args()
        .nth(1)
        .is_some_and(|a| a == "--version" || a == "-V")
    {
        println!(
            "ipfs-cluster-desktop {}",
            ipfs_cluster::types::full_version()
        );
        return;
    }
    // Started in the tray, the process has no window to draw, yet GDK loads the GL driver
    // as it opens the display (about 30 MB resident: Mesa and LLVM; `bench/`). Without GDK's
    // GL, a window opened later is drawn by cairo in this process (WebKit's web process
    // renders as before); GDK_GL set by the user decides instead. Before any thread starts:
    // the environment is not safe to change once there are others.
    if std::env::args().any(|a| a == HIDDEN) && std::env::var_os("GDK_GL").is_none() {
        std::env::set_var("GDK_GL", "disable");
    }
    let limits = ipfs_cluster::process::raise_open_files_limit();
    let folder = ipfs_cluster::config::folder(None);
    // To stderr and to the Logs view's ring, at the level of Settings (RUST_LOG, when set,
    // decides instead); the level changes without a restart.
    let level = Settings::load(&folder)
        .map(|s| s.log_level)
        .unwrap_or_default();
    let (filter, level_handle) = tracing_subscriber::reload::Layer::new(
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level.filter())),
    );
    // And to rotating files in the state folder, for a bug report.
    let log_files = logfiles::default_dir().and_then(|d| match logfiles::LogFiles::open(&d) {
        Ok(f) => Some(f),
        Err(e) => {
            eprintln!("no log files in {}: {e}", d.display());
            None
        }
    });
    {
        use tracing_subscriber::prelude::*;
        tracing_subscriber::registry()
            .with(filter)
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout())),
            )
            .with(log_files.clone().map(|files| {
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(files)
            }))
            .with(RingLayer)
            .init();
    }
    if limits.is_none() {
        tracing::warn!("the open files limit could not be raised");
    }
    let desktop: App = Arc::new(Desktop::new(folder));
    // Opened for an invitation link: the window shows it, even when started hidden.
    let link = invite::link_in(std::env::args().skip(1));
    if let Some(l) = &link {
        tracing::info!("opened with an invitation link");
        desktop.set_pending(|p| p.link = Some(l.clone()));
    }
    let quitting = Arc::new(AtomicBool::new(false));

    let app = tauri::Builder::default()
        // A second launch (the desktop entry, or an invitation link the desktop opens with
        // this app) brings the running app's window forward, with the link for the window.
        .plugin(tauri_plugin_single_instance::init(|app, args, _cwd| {
            if let Some(link) = invite::link_in(args) {
                tracing::info!("an invitation link came from another launch");
                show_pending(app, |p| p.link = Some(link));
            } else {
                show_main(app);
            }
        }))
        // Started at login: in the tray, without a window.
        .plugin(tauri_plugin_dialog::init())
        .plugin(tauri_plugin_notification::init())
        .plugin(tauri_plugin_opener::init())
        .plugin(tauri_plugin_clipboard_manager::init())
        .plugin(tauri_plugin_autostart::init(
            tauri_plugin_autostart::MacosLauncher::LaunchAgent,
            Some(vec![HIDDEN]),
        ))
        .manage(desktop.clone())
        .manage(LevelHandle(level_handle))
        .invoke_handler(tauri::generate_handler![
            status,
            new_cluster,
            join_cluster,
            follow_cluster,
            read_qr,
            read_qr_file,
            invitation,
            peers,
            health,
            remove_peer,
            pins_page,
            pick_paths,
            settings,
            save_settings,
            restart,
            logs,
            pin,
            unpin,
            recover,
            add_paths,
            cancel_add,
            graph,
            charts,
            pin_info,
            open_in_gateway,
            take_pending,
            open_log_folder,
            repin,
            set_paused,
            autostart,
            public_network
        ])
        .setup({
            let desktop = desktop.clone();
            let quitting = quitting.clone();
            move |app| {
                // Logout and `kill` end the app as Quit does (a second signal at once). The
                // signals are taken before anything else starts, so none ends it abruptly.
                {
                    use tokio::signal::unix::{signal, SignalKind};
                    let signals = tauri::async_runtime::block_on(async {
                        Ok::<_, std::io::Error>((
                            signal(SignalKind::terminate())?,
                            signal(SignalKind::interrupt())?,
                        ))
                    });
                    match signals {
                        Ok((mut term, mut int)) => {
                            let app = app.handle().clone();
                            let d = desktop.clone();
                            let quitting = quitting.clone();
                            tauri::async_runtime::spawn(async move {
                                tokio::select! {
                                    _ = term.recv() => {}
                                    _ = int.recv() => {}
                                }
                                tracing::info!("asked to stop: stopping the peer");
                                quit(&app, &d, &quitting);
                                tokio::select! {
                                    _ = term.recv() => {}
                                    _ = int.recv() => {}
                                }
                                tracing::warn!("asked to stop again: ending now");
                                std::process::exit(1);
                            });
                        }
                        Err(e) => tracing::warn!("cannot take SIGTERM and SIGINT: {e}"),
                    }
                }
                // The tray: a status line (also the tooltip), then what people do from it.
                let status = MenuItem::with_id(app, "status", "Starting…", false, None::<&str>)?;
                let open = MenuItem::with_id(app, "open", "Open", true, None::<&str>)?;
                let pin_clip = MenuItem::with_id(
                    app,
                    "pin-clipboard",
                    "Pin CID from clipboard",
                    true,
                    None::<&str>,
                )?;
                let add = MenuItem::with_id(app, "add-files", "Add files…", true, None::<&str>)?;
                let invite = MenuItem::with_id(app, "invite", "Invite…", true, None::<&str>)?;
                let pause = MenuItem::with_id(app, "pause", "Pause pinning", true, None::<&str>)?;
                let quit_item = MenuItem::with_id(app, "quit", "Quit", true, None::<&str>)?;
                let line = PredefinedMenuItem::separator(app)?;
                let line2 = PredefinedMenuItem::separator(app)?;
                let menu = Menu::with_items(
                    app,
                    &[
                        &status, &line, &open, &pin_clip, &add, &invite, &pause, &line2, &quit_item,
                    ],
                )?;
                app.manage(TrayItems {
                    status,
                    pause,
                    shown: Mutex::new(None),
                });
                let d = desktop.clone();
                let quitting_tray = quitting.clone();
                TrayIconBuilder::with_id("main")
                    .icon(tray_icon(app.handle(), tray::TrayState::Offline))
                    .tooltip("IPFS Cluster Desktop")
                    .menu(&menu)
                    .on_menu_event(move |app, event| match event.id.as_ref() {
                        "open" => show_main(app),
                        "pin-clipboard" => pin_from_clipboard(app, &d),
                        "add-files" => add_from_tray(app),
                        "invite" => show_pending(app, |p| p.view = Some("invite".into())),
                        "pause" => {
                            let (d, app) = (d.clone(), app.clone());
                            tauri::async_runtime::spawn(async move {
                                let paused = !d.snapshot().await.paused;
                                // Told at once, not at the tray's next look.
                                if d.set_paused(paused).await.is_ok() {
                                    let items = app.state::<TrayItems>();
                                    let _ = items.pause.set_text(pause_label(paused));
                                }
                            });
                        }
                        "quit" => quit(app, &d, &quitting_tray),
                        _ => {}
                    })
                    .build(app)?;
                // A configured peer starts with the app.
                if desktop.is_configured() {
                    let d = desktop.clone();
                    tauri::async_runtime::spawn(async move {
                        if let Err(e) = d.start(Default::default()).await {
                            tracing::error!("could not start the cluster peer: {e}");
                        }
                    });
                }
                // This run is marked under way (the primary instance only: a second launch
                // has ended in the single-instance plugin before this); a mark left by the last
                // run means it did not end cleanly, and the window and a notice say so.
                if let Some(files) = &log_files {
                    let unclean = match logfiles::begin_run(files.dir()) {
                        Ok(u) => u.is_some(),
                        Err(e) => {
                            tracing::warn!(
                                "cannot mark this run in {}: {e}",
                                files.dir().display()
                            );
                            false
                        }
                    };
                    desktop.set_log_folder(files.dir().to_path_buf(), unclean);
                    if unclean {
                        tracing::warn!(
                            "the last run did not end cleanly; its log: {}",
                            files.path().display()
                        );
                        tell(
                            app.handle(),
                            &desktop,
                            &notify::unclean_exit(&files.path().display().to_string()),
                        );
                    }
                }
                emit_loop(app.handle().clone(), desktop.clone());
                logs_loop(app.handle().clone());
                notify_loop(app.handle().clone(), desktop.clone());
                // The window is made here, not from the config at start (`create: false`):
                // started in the tray (`--hidden`), no webview, and so no WebKit process,
                // exists until the window is opened.
                if link.is_some() || !std::env::args().any(|a| a == HIDDEN) {
                    show_main(app.handle());
                }
                Ok(())
            }
        })
        // Closing the window destroys it (the webview's memory goes back to the system);
        // the peer keeps running in the tray, and Open makes a new window.
        .build(tauri::generate_context!())
        .expect("the app starts");
    app.run(move |_app, event| {
        if let RunEvent::ExitRequested { api, code, .. } = event {
            // Only Quit (which passes a code once the peer stopped) ends the process: the
            // last window closed (during a Quit too) does not.
            if code.is_none() {
                api.prevent_exit();
            }
        }
    });
}
