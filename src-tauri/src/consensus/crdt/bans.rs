//! The peers a CRDT peer was told to remove (`peers rm`): a CRDT cluster has no membership to
//! take a peer out of (IPFS Cluster refuses `peers rm` in CRDT mode), so this peer bans it
//! instead. A banned peer's metrics are not heard (it leaves this peer's peerset and gets no
//! new allocations from it), its connections are closed as they open, it is not dialed, and
//! its calls are refused. Its deltas, if it is trusted, still reach this peer through the
//! others: what a trusted peer wrote stays the cluster's (leave it out of `trusted_peers` to
//! stop that). The ban is this peer's alone (each peer decides whom it talks to) and lasts
//! across restarts: the file `banned_peers` in the peer's folder, one peer id per line,
//! written as the peerstore is (temporary file renamed over the old one). Taking a line out
//! while the peer is stopped lifts that ban.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use crate::components::ConsensusError;

/// The file's name in the peer's folder.
pub const FILE: &str = "banned_peers";

/// The most peers banned at once (each is one line read at every start).
pub const MAX_BANNED: usize = 10_000;

pub struct Bans {
    path: PathBuf,
    set: RwLock<HashSet<String>>,
    /// One writer of the file at a time; readers of `set` (the swarm, for every metric and
    /// connection) never wait on the disk.
    writing: std::sync::Mutex<()>,
}

impl Bans {
    /// The bans kept in `folder` (none if there is no file). A line that is not a peer id
    /// is skipped with a warning (the file may be edited by hand).
    pub fn load(folder: &Path) -> Result<Bans, ConsensusError> {
        let path = folder.join(FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                return Err(ConsensusError::Storage(format!(
                    "cannot read {}: {e}",
                    path.display()
                )))
            }
        };
        let mut set = HashSet::new();
        for (n, line) in crate::rpc::peerstore::entries(&text) {
            match line.parse::<libp2p::PeerId>() {
                Ok(p) => {
                    set.insert(p.to_string());
                }
                Err(_) => {
                    tracing::warn!("{}:{n}: ignoring {line:?}: not a peer id", path.display())
                }
            }
        }
        if !set.is_empty() {
            tracing::info!(
                peers = set.len(),
                "peers banned by `peers rm` stay banned ({})",
                path.display()
            );
        }
        Ok(Bans {
            path,
            set: RwLock::new(set),
            writing: std::sync::Mutex::new(()),
        })
    }

    pub fn contains(&self, peer: &str) -> bool {
        self.set.read().unwrap().contains(peer)
    }

    /// Bans `peer` for good (written to disk before it returns). Blocking: call it off the
    /// runtime. `false` if it was banned already.
    pub fn add(&self, peer: &str) -> Result<bool, ConsensusError> {
        let _writing = self.writing.lock().unwrap();
        let mut all: Vec<String> = {
            let set = self.set.read().unwrap();
            if set.contains(peer) {
                return Ok(false);
            }
            if set.len() >= MAX_BANNED {
                return Err(ConsensusError::Refused(format!(
                    "{MAX_BANNED} peers are banned already: lift some bans ({}) first",
                    self.path.display()
                )));
            }
            set.iter().cloned().collect()
        };
        all.push(peer.to_string());
        all.sort();
        let mut text = String::from(
            "# Peers banned by `peers rm` (one peer id per line). Remove a line while the peer\n\
             # is stopped to lift that ban.\n",
        );
        for p in &all {
            text.push_str(p);
            text.push('\n');
        }
        crate::config::write_private(&self.path, text.as_bytes()).map_err(|e| {
            ConsensusError::Storage(format!("cannot write {}: {e}", self.path.display()))
        })?;
        self.set.write().unwrap().insert(peer.to_string());
        Ok(true)
    }

    /// How many peers are banned.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.set.read().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> String {
        libp2p::identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id()
            .to_string()
    }

    #[test]
    fn a_ban_is_kept_on_disk_and_a_hand_edited_line_is_read_or_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let bans = Bans::load(dir.path()).unwrap();
        assert_eq!(bans.len(), 0);
        let (a, b) = (peer(), peer());
        assert!(bans.add(&a).unwrap());
        assert!(!bans.add(&a).unwrap(), "banned already");
        assert!(bans.contains(&a) && !bans.contains(&b));
        let again = Bans::load(dir.path()).unwrap();
        assert!(again.contains(&a), "kept across a restart");
        // A line added by hand, and one that is not a peer id.
        let path = dir.path().join(FILE);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(&format!("{b}\nnot-a-peer\n"));
        std::fs::write(&path, text).unwrap();
        let edited = Bans::load(dir.path()).unwrap();
        assert!(edited.contains(&a) && edited.contains(&b));
        assert_eq!(edited.len(), 2);
        // A line taken out lifts that ban.
        std::fs::write(&path, format!("{b}\n")).unwrap();
        assert!(!Bans::load(dir.path()).unwrap().contains(&a));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            edited.add(&peer()).unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
