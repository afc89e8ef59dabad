//! The `peerstore` file (SPEC §2): one `<multiaddr>/p2p/<peer id>` per line, written as the
//! peer learns its cluster's members and read at start to reconnect without `--bootstrap`.
//! It lives apart from `service.json`, which the program never rewrites. DNS multiaddrs are
//! kept as written, never resolved.
//!
//! It only grows while the peer runs: every line already there stays (a person may have
//! written it), in its place; every address learned for a member (from a bootstrap address,
//! the membership, or what the member itself says over identify) is added after them, DNS
//! names first. So a member whose address changed is found again after a restart.

use std::collections::BTreeMap;
use std::path::Path;

use libp2p::{Multiaddr, PeerId};

/// Reads the file; bad lines are skipped with a warning (the file is ours, but hand edits
/// happen). A missing file is an empty peerstore.
pub fn read(path: &Path) -> BTreeMap<PeerId, Vec<Multiaddr>> {
    let mut out: BTreeMap<PeerId, Vec<Multiaddr>> = BTreeMap::new();
    let Ok(text) = std::fs::read_to_string(path) else {
        return out;
    };
    for (n, line) in entries(&text) {
        match line
            .parse::<Multiaddr>()
            .ok()
            .and_then(|a| crate::net::split_p2p(&a))
        {
            Some((peer, addr)) => out.entry(peer).or_default().push(addr),
            None => tracing::warn!(
                "{}:{n}: ignoring {line:?}: expected a multiaddr ending in /p2p/<peer id>",
                path.display(),
            ),
        }
    }
    out
}

/// The entries of a file of one entry per line that people may edit (the peerstore, the
/// bans): each line trimmed with its number (from 1), blank lines and `#` comments left out.
pub(crate) fn entries(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

/// Adds to the file every address of `peers` it does not list yet, keeping its lines as
/// they are; rewrites it only when something was added: a temporary file, flushed to disk,
/// renamed over the old one, and the folder flushed, so that a crash leaves the old file or
/// the new one, never a torn or empty one. Blocking: call it off the runtime.
pub fn merge(path: &Path, peers: &BTreeMap<PeerId, Vec<Multiaddr>>) -> std::io::Result<()> {
    let old = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let listed: std::collections::HashSet<String> =
        old.lines().map(|l| l.trim().to_string()).collect();
    let mut text = old.clone();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    for (peer, addrs) in peers {
        let mut addrs: Vec<&Multiaddr> = addrs.iter().collect();
        // DNS names first: they survive address changes.
        addrs.sort_by_key(|a| !is_dns(a));
        for a in addrs {
            let line = format!("{a}/p2p/{peer}");
            if !listed.contains(&line) {
                text.push_str(&line);
                text.push('\n');
            }
        }
    }
    if text == old {
        return Ok(());
    }
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn is_dns(a: &Multiaddr) -> bool {
    use libp2p::multiaddr::Protocol;
    a.iter().any(|p| {
        matches!(
            p,
            Protocol::Dns(_) | Protocol::Dns4(_) | Protocol::Dns6(_) | Protocol::Dnsaddr(_)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_keeps_dns_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("peerstore");
        assert!(read(&path).is_empty());
        let peer = libp2p::identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id();
        let addrs: Vec<Multiaddr> = vec![
            "/ip4/127.0.0.1/tcp/9096".parse().unwrap(),
            "/dns4/cluster.example/tcp/9096".parse().unwrap(),
        ];
        merge(&path, &BTreeMap::from([(peer, addrs.clone())])).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("/dns4/cluster.example/tcp/9096/p2p/"),
            "DNS names first: {text}"
        );
        std::fs::write(&path, format!("{text}garbage\n/ip4/1.2.3.4/tcp/1\n")).unwrap();
        let mut want = addrs.clone();
        want.sort_by_key(|a| !is_dns(a));
        assert_eq!(read(&path), BTreeMap::from([(peer, want.clone())]));

        // A hand-written line stays where it is; a newly learned address is added after it.
        let moved: Multiaddr = "/ip4/127.0.0.1/tcp/19096".parse().unwrap();
        let before = std::fs::read_to_string(&path).unwrap();
        merge(&path, &BTreeMap::from([(peer, vec![moved.clone()])])).unwrap();
        let after = std::fs::read_to_string(&path).unwrap();
        assert!(
            after.starts_with(&before),
            "nothing written by hand is dropped"
        );
        assert!(after.ends_with(&format!("{moved}/p2p/{peer}\n")), "{after}");
        // Nothing new: the file is left alone.
        merge(&path, &BTreeMap::from([(peer, want)])).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), after);
    }
}
