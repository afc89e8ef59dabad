//! Hosts for multi-machine tests: network namespaces joined by veth links to one bridge, with
//! private test addresses that the test creates and removes itself. Nothing outside them is
//! ever addressed: the bridge is the root namespace's only way in, and the namespaces have no
//! route beyond their own subnet.
//!
//! Needs root (CI runs as root). [`Net::create`] returns `None`, with a message, where that is
//! not available, so the tests skip rather than fail on a developer's machine.

use std::process::Command;

use anyhow::{bail, Context, Result};

/// One test host: a network namespace with one address on the test subnet.
#[derive(Clone, Debug)]
pub struct Host {
    pub ns: String,
    pub ip: String,
    /// Its veth's end on the bridge: down, the host is cut off from every other.
    link: String,
}

impl Host {
    /// `program args…` run inside this host's namespace.
    pub fn command(&self, program: &std::path::Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns]).arg(program);
        c
    }
}

/// One multi-host test at a time: each starts several peers and IPFS nodes, and CI's two
/// cores are shared by all of them.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A bridge and its hosts; removed on drop.
pub struct Net {
    _turn: std::sync::MutexGuard<'static, ()>,
    bridge: String,
    pub hosts: Vec<Host>,
    /// The bridge's own address (the root namespace's end), where relays listen.
    pub gateway: String,
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl Net {
    /// `n` hosts on a fresh /24, or `None` (after saying why) when namespaces cannot be made
    /// here (not root, no iproute2).
    pub fn create(n: usize) -> Result<Option<Net>> {
        if !is_root() || Command::new("ip").arg("-V").output().is_err() {
            eprintln!("SKIPPED: multi-host tests need root and iproute2 (CI runs them)");
            return Ok(None);
        }
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n_net = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pid = std::process::id();
        // A subnet of our own: pick one no interface of this machine is on.
        let used =
            String::from_utf8_lossy(&Command::new("ip").args(["-4", "addr"]).output()?.stdout)
                .into_owned();
        let third = (0..200u32)
            .map(|k| 16 + (pid + 37 * n_net + k) % 200)
            .find(|t| !used.contains(&format!("10.213.{t}.")))
            .context("no free test subnet")?;
        let tag = format!("{:x}{n_net}", pid % 0xffff);
        let bridge = format!("icbr{tag}");
        let gateway = format!("10.213.{third}.254");
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let mut net = Net {
            _turn: turn,
            bridge: bridge.clone(),
            hosts: Vec::new(),
            gateway: gateway.clone(),
        };
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        ip(&["addr", "add", &format!("{gateway}/24"), "dev", &bridge])?;
        ip(&["link", "set", &bridge, "up"])?;
        for i in 0..n {
            let ns = format!("ic{tag}h{i}");
            let outer = format!("ic{tag}v{i}");
            let inner = format!("ic{tag}p{i}");
            let addr = format!("10.213.{third}.{}", i + 1);
            ip(&["netns", "add", &ns])?;
            net.hosts.push(Host {
                ns: ns.clone(),
                ip: addr.clone(),
                link: outer.clone(),
            });
            ip(&[
                "link", "add", &outer, "type", "veth", "peer", "name", &inner,
            ])?;
            ip(&["link", "set", &inner, "netns", &ns])?;
            ip(&["link", "set", &outer, "master", &bridge])?;
            ip(&["link", "set", &outer, "up"])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                &inner,
            ])?;
            ip(&["-n", &ns, "link", "set", &inner, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(Some(net))
    }
}

impl Host {
    /// Cuts this host off from the others (a partition: its peer keeps running).
    pub fn cut_off(&self) -> Result<()> {
        ip(&["link", "set", &self.link, "down"])
    }

    /// Ends [`Host::cut_off`].
    pub fn reconnect(&self) -> Result<()> {
        ip(&["link", "set", &self.link, "up"])
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for h in &self.hosts {
            let _ = Command::new("ip").args(["netns", "del", &h.ns]).output();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
    }
}
