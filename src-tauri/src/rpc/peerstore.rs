//! The `peerstore` file (SPEC §2): one `<multiaddr>/p2p/<peer id>` per line, written as the
//! peer learns its cluster's members and read at start to reconnect without `--bootstrap`.
//! It lives apart from `service.json`, which the program never rewrites. DNS multiaddrs are
//! kept as written, never resolved.

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
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line
            .parse::<Multiaddr>()
            .ok()
            .and_then(|a| crate::net::split_p2p(&a))
        {
            Some((peer, addr)) => out.entry(peer).or_default().push(addr),
            None => tracing::warn!(
                "{}:{}: ignoring {line:?}: expected a multiaddr ending in /p2p/<peer id>",
                path.display(),
                i + 1
            ),
        }
    }
    out
}

/// Rewrites the file (atomically) when its content changes.
pub fn write(path: &Path, peers: &BTreeMap<PeerId, Vec<Multiaddr>>) -> std::io::Result<()> {
    let mut text = String::new();
    for (peer, addrs) in peers {
        for a in addrs {
            text.push_str(&format!("{a}/p2p/{peer}\n"));
        }
    }
    if std::fs::read_to_string(path).ok().as_deref() == Some(text.as_str()) {
        return Ok(());
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, path)
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
        write(&path, &BTreeMap::from([(peer, addrs.clone())])).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("/dns4/cluster.example/tcp/9096/p2p/"),
            "{text}"
        );
        std::fs::write(&path, format!("{text}garbage\n/ip4/1.2.3.4/tcp/1\n")).unwrap();
        assert_eq!(read(&path), BTreeMap::from([(peer, addrs)]));
    }
}
