//! The desktop app at rest: the real release binary under Xvfb and a D-Bus session, its peer
//! holding an imported pinset, measured in the tray (`--hidden`, no webview) and with its
//! window open. PSS counts shared pages once across the app and its WebKit processes.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cluster_tests::*;

/// The app's process group: the session bus, the app, its WebKit processes and IPFS node.
struct App {
    child: Child,
}

impl App {
    fn start(app: &Path, env: &[(String, String)], hidden: bool) -> Result<App> {
        let mut cmd = Command::new("dbus-run-session");
        cmd.arg("--").arg(app);
        if hidden {
            cmd.arg("--hidden");
        }
        cmd.envs(env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        Ok(App {
            child: cmd.spawn().context("dbus-run-session")?,
        })
    }

    fn pgid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Processes of the group: (pid, command name).
    fn processes(&self) -> Vec<(u32, String)> {
        let mut out = Vec::new();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let Some(close) = stat.rfind(')') else {
                continue;
            };
            let name = stat[stat.find('(').unwrap_or(0) + 1..close].to_string();
            let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
            if fields.get(2).and_then(|g| g.parse::<i32>().ok()) == Some(self.pgid()) {
                out.push((pid, name));
            }
        }
        out
    }

    /// (app and WebKit PSS in MB, the IPFS node's PSS in MB)
    fn pss(&self) -> (f64, f64) {
        let (mut app, mut ipfs) = (0.0, 0.0);
        for (pid, name) in self.processes() {
            let mb = pss_kb(pid).unwrap_or(0.0) / 1024.0;
            match name.as_str() {
                "ipfs-local-node" => ipfs += mb,
                n if is_apps(n) => app += mb,
                _ => {}
            }
        }
        (app, ipfs)
    }

    /// CPU (% of one core) of the app and its WebKit processes over `window`.
    async fn cpu(&self, window: Duration) -> f64 {
        let sum = |this: &App| -> f64 {
            this.processes()
                .into_iter()
                .filter(|(_, n)| is_apps(n))
                .filter_map(|(pid, _)| cpu_seconds(pid))
                .sum()
        };
        let before = sum(self);
        tokio::time::sleep(window).await;
        (sum(self) - before) / window.as_secs_f64() * 100.0
    }

    fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([sig, "--", &format!("-{}", self.pgid())])
            .status();
    }

    fn stop(mut self) {
        self.signal("-TERM");
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                if self.processes().is_empty() {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.signal("-KILL");
        let _ = self.child.wait();
    }
}

async fn wait_rest(port: u16) -> Result<()> {
    // `/health` answers without the app's REST credential (every other route asks for it).
    let url = format!("http://127.0.0.1:{port}/health");
    wait_for("the app's peer", Duration::from_secs(120), || async {
        reqwest::get(&url)
            .await
            .ok()
            .filter(|r| r.status().is_success())
            .map(|_| ())
    })
    .await
}

pub struct DesktopFigures {
    pub pins: usize,
    pub tray_pss: f64,
    pub tray_ipfs_pss: f64,
    pub tray_cpu: f64,
    pub open_pss: f64,
    pub open_cpu: f64,
}

/// Runs the app twice (tray, then window open) with `pins` pins in its peer's pinset.
pub async fn measure(app: PathBuf, pins: usize, import: &Path) -> Result<DesktopFigures> {
    let work = tempfile::tempdir()?;
    let display = format!(":{}", 150 + std::process::id() % 50);
    let mut xvfb = Command::new("Xvfb")
        .args([
            display.as_str(),
            "-screen",
            "0",
            "1280x800x24",
            "-nolisten",
            "tcp",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("Xvfb (apt-get install xvfb)")?;
    let socket = format!("/tmp/.X11-unix/X{}", &display[1..]);
    wait_for("Xvfb", Duration::from_secs(30), || async {
        Path::new(&socket).exists().then_some(())
    })
    .await?;
    let folder = work.path().join("app-peer");
    let home = work.path().join("home");
    std::fs::create_dir_all(&home)?;
    let rest = free_port();
    let env: Vec<(String, String)> = [
        ("DISPLAY", display.clone()),
        ("HOME", home.display().to_string()),
        ("IPFS_CLUSTER_PATH", folder.display().to_string()),
        (
            "CLUSTER_IPFSHTTP_NODEMULTIADDRESS",
            format!("/ip4/127.0.0.1/tcp/{}", free_port()),
        ),
        (
            "CLUSTER_RESTAPI_HTTPLISTENMULTIADDRESS",
            format!("/ip4/127.0.0.1/tcp/{rest}"),
        ),
        (
            "CLUSTER_LISTENMULTIADDRESS",
            format!("/ip4/127.0.0.1/tcp/{}", free_port()),
        ),
        (
            "CLUSTER_IPFSPROXY_LISTENMULTIADDRESS",
            "/ip4/127.0.0.1/tcp/0".to_string(),
        ),
        (
            "CLUSTER_PINSVCAPI_HTTPLISTENMULTIADDRESS",
            "/ip4/127.0.0.1/tcp/0".to_string(),
        ),
        ("IPFS_CLUSTER_IPFS_NETWORK", "loopback".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let result = async {
        // A peer made by `ipfs-cluster-service init` (the app runs it as it finds it), its
        // pinset put in by `state import`.
        let out = service(&folder, &["init"]);
        anyhow::ensure!(out.status.success(), "init: {}", text(&out));
        let out = service(
            &folder,
            &["state", "import", "--force", import.to_str().unwrap()],
        );
        anyhow::ensure!(out.status.success(), "import: {}", text(&out));

        let settle = Duration::from_secs(20);
        let window = Duration::from_secs(30);
        let tray = App::start(&app, &env, true)?;
        wait_rest(rest).await?;
        tokio::time::sleep(settle).await;
        let tray_cpu = tray.cpu(window).await;
        let (tray_pss, tray_ipfs_pss) = tray.pss();
        if std::env::var_os("BENCH_VERBOSE").is_some() {
            for (pid, name) in tray.processes() {
                let kb = pss_kb(pid).unwrap_or(0.0);
                eprintln!("tray process {pid} {name}: PSS {kb} kB");
                if is_apps(&name) {
                    for (kb, what) in largest_mappings(pid, 25) {
                        eprintln!("  {kb:>8} kB  {what}");
                    }
                }
            }
        }
        tray.stop();

        let open = App::start(&app, &env, false)?;
        wait_rest(rest).await?;
        tokio::time::sleep(settle).await;
        let open_cpu = open.cpu(window).await;
        let (open_pss, _) = open.pss();
        open.stop();
        Ok(DesktopFigures {
            pins,
            tray_pss,
            tray_ipfs_pss,
            tray_cpu,
            open_pss,
            open_cpu,
        })
    }
    .await;
    let _ = xvfb.kill();
    let _ = xvfb.wait();
    result
}

/// Whether a process of the app's group (by its command name) is the app's own: the app and
/// its WebKit processes, not its IPFS node (counted apart) nor the session's services (the
/// bus and the keyring it starts when the app asks for its secret: every desktop runs them).
fn is_apps(name: &str) -> bool {
    !(name == "ipfs-local-node" || name == "gnome-keyring-d" || name.starts_with("dbus"))
}

/// Process `pid`'s proportional set size in kB.
fn pss_kb(pid: u32) -> Option<f64> {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()?
        .lines()
        .find(|l| l.starts_with("Pss:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The `n` mappings of process `pid` with the most PSS (kB, and what is mapped), anonymous
/// mappings summed as one: where the tray's memory goes.
fn largest_mappings(pid: u32, n: usize) -> Vec<(u64, String)> {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut by: std::collections::HashMap<String, u64> = Default::default();
    let mut current = String::new();
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            current = line
                .split_whitespace()
                .nth(5)
                .unwrap_or("[anonymous]")
                .to_string();
        } else if let Some(v) = line.strip_prefix("Pss:") {
            let kb: u64 = v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
            *by.entry(current.clone()).or_default() += kb;
        }
    }
    let mut v: Vec<(u64, String)> = by.into_iter().map(|(k, kb)| (kb, k)).collect();
    v.sort_by(|a, b| b.cmp(a));
    v.truncate(n);
    v
}
