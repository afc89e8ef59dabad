//! Golden messages for the compatibility tests of later versions: with
//! `IPFS_CLUSTER_RECORD_RPC=<folder>` in its environment, a peer also writes each cluster RPC
//! message it sends (the requests it makes, the answers it gives) to that folder, as the
//! bytes that went on the stream, a few of each kind. A later version's tests decode them as
//! a peer of this version sent them (`tests/fixtures/upgrade/`). Off unless asked for; nothing
//! is read back.

use std::collections::HashMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::AsyncWrite;

/// The environment variable naming the folder.
pub const RECORD_ENV: &str = "IPFS_CLUSTER_RECORD_RPC";

/// Messages of one kind kept at most (of different lengths: heartbeats repeat).
const PER_KIND: usize = 8;

pub(crate) struct Recorder {
    dir: PathBuf,
    /// The lengths recorded so far, by kind.
    seen: Mutex<HashMap<String, Vec<usize>>>,
}

impl Recorder {
    /// The recorder the environment asks for, if it does.
    pub(crate) fn from_env() -> Option<Arc<Recorder>> {
        let dir = PathBuf::from(std::env::var_os(RECORD_ENV)?);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            tracing::warn!("{RECORD_ENV}={}: {e}; nothing recorded", dir.display());
            return None;
        }
        tracing::warn!("recording cluster RPC messages in {}", dir.display());
        Some(Arc::new(Recorder {
            dir,
            seen: Mutex::default(),
        }))
    }

    /// Keeps `bytes`, a `direction` ("request" or "response") message whose `Debug` text is
    /// `debug`, unless enough of its kind are kept.
    pub(crate) fn record(&self, direction: &str, debug: &str, bytes: &[u8]) {
        let kind = kind(debug);
        let n = {
            let mut seen = self.seen.lock().unwrap();
            let lengths = seen.entry(format!("{direction}-{kind}")).or_default();
            if lengths.len() >= PER_KIND || lengths.contains(&bytes.len()) {
                return;
            }
            lengths.push(bytes.len());
            lengths.len()
        };
        let path = self.dir.join(format!("{direction}-{kind}-{n}.cbor"));
        if let Err(e) = std::fs::write(&path, bytes) {
            tracing::warn!("{}: {e}", path.display());
        }
    }
}

/// A message's kind from its `Debug` text: its variant and the inner one
/// (`Raft(AppendEntries(…))` → `Raft.AppendEntries`, `Raft(Join { … })` → `Raft.Join`,
/// `Id` → `Id`).
fn kind(debug: &str) -> String {
    debug
        .split(['(', ')', ' ', '{'])
        .filter(|t| !t.is_empty())
        .take_while(|t| t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .take(2)
        .collect::<Vec<_>>()
        .join(".")
}

/// A stream that keeps a copy of what is written through it.
pub(crate) struct Tee<'a, T> {
    pub io: &'a mut T,
    pub copy: Vec<u8>,
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tee<'_, T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let r = Pin::new(&mut *this.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            this.copy.extend_from_slice(&buf[..n]);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.io).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.io).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kind_is_the_variant_and_the_inner_one() {
        assert_eq!(
            kind("Raft(AppendEntries(AppendEntriesRequest { vote: …"),
            "Raft.AppendEntries"
        );
        assert_eq!(kind("Id"), "Id");
        assert_eq!(kind("Metrics([Metric { name: …"), "Metrics");
        assert_eq!(kind("Node(IpfsRepoStat(Ok((1, 2))))"), "Node.IpfsRepoStat");
        assert_eq!(kind("Pins([PinInfo { …"), "Pins");
        assert_eq!(kind("Raft(Join { node: ClusterNode { …"), "Raft.Join");
        assert_eq!(kind("Pins(StatusPage { listing: 1, …"), "Pins.StatusPage");
        assert_eq!(kind("Err(\"refused\")"), "Err");
        assert_eq!(kind("Raft(Members)"), "Raft.Members");
    }

    #[test]
    fn keeps_a_few_of_each_kind_of_different_lengths() {
        let dir = tempfile::tempdir().unwrap();
        let r = Recorder {
            dir: dir.path().to_path_buf(),
            seen: Mutex::default(),
        };
        r.record("request", "Id", b"a");
        r.record("request", "Id", b"b"); // the same length: a repeat
        for n in 2..20 {
            r.record("response", "Ok", &vec![0u8; n]);
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names.len(), 1 + PER_KIND, "{names:?}");
        assert_eq!(
            std::fs::read(dir.path().join("request-Id-1.cbor")).unwrap(),
            b"a"
        );
    }
}
