//! Versions of the cluster RPC protocol, so that peers of two releases work together while a
//! cluster is upgraded one peer at a time (`docs/reliability.md`, "Upgrades").
//!
//! Each release speaks its own protocol id and the previous release's. libp2p's
//! multistream-select picks one per stream: the caller proposes its ids newest first and the
//! callee takes the first it knows, so two peers speak the newest protocol both know. The
//! messages keep one encoding across versions (CBOR of the same serde types; a field added
//! later has a default, so an older peer skips it and a newer one fills it in); what a newer
//! protocol adds are calls. A call the chosen protocol does not have is never sent: the codec
//! refuses it, and the caller gets [`RpcError::Unsupported`] naming the peer and the release
//! it runs, which global status and the app show as such (not as `cluster_error`).

use std::io;

use futures::{AsyncRead, AsyncWrite};
use libp2p::request_response::Codec;
use libp2p::StreamProtocol;

use super::{RpcRequest, RpcResponse};
use crate::consensus::RaftRequest;

/// A protocol id and the release that introduced it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Protocol {
    pub id: &'static str,
    pub release: &'static str,
}

/// The protocols this release speaks, newest first: its own and the previous release's.
pub const PROTOCOLS: [Protocol; 2] = [
    // 0.2.0: `Raft(Campaign)`, the leader's hand-over before a planned stop.
    Protocol {
        id: "/ipfs-cluster-desktop/rpc/0.4.0",
        release: "0.2.0",
    },
    // 0.1.0, which spoke only this one.
    Protocol {
        id: "/ipfs-cluster-desktop/rpc/0.3.0",
        release: "0.1.0",
    },
];

/// For tests of mixed versions: the releases whose protocols a peer speaks, when not all of
/// [`PROTOCOLS`] (`IPFS_CLUSTER_RPC_RELEASES=0.1.0` makes a peer of this build speak, and so
/// call, as a peer of 0.1.0 does).
pub const RELEASES_ENV: &str = "IPFS_CLUSTER_RPC_RELEASES";

/// The protocols this peer speaks: all of [`PROTOCOLS`], or those [`RELEASES_ENV`] names.
pub fn spoken() -> Vec<Protocol> {
    let Ok(only) = std::env::var(RELEASES_ENV) else {
        return PROTOCOLS.to_vec();
    };
    let only: Vec<&str> = only.split(',').map(str::trim).collect();
    let spoken: Vec<Protocol> = PROTOCOLS
        .into_iter()
        .filter(|p| only.contains(&p.release))
        .collect();
    if spoken.is_empty() {
        tracing::warn!("{RELEASES_ENV}: no protocol of this build is named; speaking all");
        return PROTOCOLS.to_vec();
    }
    tracing::warn!(
        "{RELEASES_ENV}: speaking only the cluster RPC of {}",
        only.join(", ")
    );
    spoken
}

/// The protocol of `id`, if this build knows it.
fn by_id(id: &str) -> Option<Protocol> {
    PROTOCOLS.into_iter().find(|p| p.id == id)
}

/// The first protocol that has `req` (its place in [`PROTOCOLS`]: later ones are older).
fn since(req: &RpcRequest) -> usize {
    match req {
        RpcRequest::Raft(RaftRequest::Campaign { .. }) => 0,
        _ => PROTOCOLS.len() - 1,
    }
}

/// Whether a peer speaking `protocol` has the call `req`.
pub fn has(protocol: &str, req: &RpcRequest) -> bool {
    PROTOCOLS
        .iter()
        .position(|p| p.id == protocol)
        .is_some_and(|at| at <= since(req))
}

/// The error the codec gives for a call the chosen protocol does not have: `release` is the
/// release that protocol belongs to (what the other peer runs, or the oldest it shares).
#[derive(Debug, thiserror::Error)]
#[error("not a call of the cluster RPC of release {release}")]
pub struct Unsupported {
    pub release: &'static str,
}

/// The release of a failed call's peer, if the call failed because its protocol lacks it.
pub fn unsupported(e: &io::Error) -> Option<&'static str> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<Unsupported>())
        .map(|u| u.release)
}

/// A codec that sends only the calls the stream's protocol has (see the module's text).
#[derive(Clone)]
pub(crate) struct Versioned<C>(pub C);

impl<C> Codec for Versioned<C>
where
    C: Codec<Protocol = StreamProtocol, Request = RpcRequest, Response = RpcResponse>
        + Send
        + Clone,
{
    type Protocol = StreamProtocol;
    type Request = RpcRequest;
    type Response = RpcResponse;

    async fn read_request<T>(&mut self, p: &StreamProtocol, io: &mut T) -> io::Result<RpcRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        self.0.read_request(p, io).await
    }

    async fn read_response<T>(&mut self, p: &StreamProtocol, io: &mut T) -> io::Result<RpcResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        self.0.read_response(p, io).await
    }

    async fn write_request<T>(
        &mut self,
        p: &StreamProtocol,
        io: &mut T,
        req: RpcRequest,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        if !has(p.as_ref(), &req) {
            let release = by_id(p.as_ref()).map_or("unknown", |p| p.release);
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                Unsupported { release },
            ));
        }
        self.0.write_request(p, io, req).await
    }

    async fn write_response<T>(
        &mut self,
        p: &StreamProtocol,
        io: &mut T,
        res: RpcResponse,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        self.0.write_response(p, io, res).await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    use futures::io::Cursor;
    use libp2p::request_response::cbor::codec::Codec as Cbor;

    use super::*;

    /// The messages 0.1.0's peers wrote (`tests/fixtures/upgrade/0.1.0/rpc/`, recorded with
    /// `IPFS_CLUSTER_RECORD_RPC` while a cluster of its binaries did every kind of call).
    fn recorded() -> Vec<(PathBuf, Vec<u8>)> {
        let root =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/upgrade/0.1.0/rpc");
        let mut out = Vec::new();
        for peer in std::fs::read_dir(&root).unwrap() {
            for f in std::fs::read_dir(peer.unwrap().path()).unwrap() {
                let path = f.unwrap().path();
                let bytes = std::fs::read(&path).unwrap();
                out.push((path, bytes));
            }
        }
        out.sort();
        out
    }

    fn kind(path: &Path) -> String {
        let name = path.file_stem().unwrap().to_str().unwrap();
        name[..name.rfind('-').unwrap()].to_string()
    }

    fn codec() -> Cbor<RpcRequest, RpcResponse> {
        Cbor::default()
            .set_request_size_maximum(64 * 1024 * 1024)
            .set_response_size_maximum(256 * 1024 * 1024)
    }

    #[test]
    fn the_newest_protocol_is_the_one_peers_report() {
        assert_eq!(PROTOCOLS[0].id, crate::types::RPC_PROTOCOL);
        assert_eq!(PROTOCOLS[0].release, crate::types::VERSION);
    }

    /// Every request and answer a peer of 0.1.0 sent decodes with this build's types on
    /// 0.1.0's protocol, and encodes back to the very same bytes: what this build sends a
    /// 0.1.0 peer is what that peer reads, and what it answers is understood. Every call of
    /// 0.1.0's protocol is among them, and this build has every one of them on it.
    #[tokio::test]
    async fn the_messages_of_0_1_0_decode_and_encode_to_the_same_bytes() {
        let old = StreamProtocol::new(PROTOCOLS[1].id);
        let mut kinds = BTreeSet::new();
        for (path, bytes) in recorded() {
            let kind = kind(&path);
            let mut again = Vec::new();
            if kind.starts_with("request-") {
                let req = codec()
                    .read_request(&old, &mut Cursor::new(&bytes))
                    .await
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert!(has(old.as_ref(), &req), "{}", path.display());
                codec()
                    .write_request(&old, &mut Cursor::new(&mut again), req)
                    .await
                    .unwrap();
            } else {
                let res = codec()
                    .read_response(&old, &mut Cursor::new(&bytes))
                    .await
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                codec()
                    .write_response(&old, &mut Cursor::new(&mut again), res)
                    .await
                    .unwrap();
            }
            assert!(again == bytes, "{}: encoded differently", path.display());
            kinds.insert(kind);
        }
        for call in [
            "request-Id",
            "request-Metrics",
            "request-Node.IpfsRepoGc",
            "request-Node.IpfsRepoStat",
            "request-Node.IpfsSwarmPeers",
            "request-Node.Peers",
            "request-Pins.Recover",
            "request-Pins.RecoverCids",
            "request-Pins.Status",
            "request-Pins.StatusPage",
            "request-Raft.AppendEntries",
            "request-Raft.InstallSnapshot",
            "request-Raft.Join",
            "request-Raft.Leader",
            "request-Raft.Members",
            "request-Raft.Removed",
            "request-Raft.State",
            "request-Raft.Vote",
            "response-Id.Id",
            "response-Node.IpfsRepoGc",
            "response-Node.IpfsRepoStat",
            "response-Node.IpfsSwarmPeers",
            "response-Node.Peers",
            "response-Ok",
            "response-Err",
            "response-Pins",
            "response-Raft.AppendEntries",
            "response-Raft.Done",
            "response-Raft.InstallSnapshot",
            "response-Raft.Members",
            "response-Raft.State",
            "response-Raft.Vote",
        ] {
            assert!(kinds.contains(call), "no recorded {call}: {kinds:?}");
        }
    }

    /// A call 0.1.0's protocol lacks is refused by the codec before a byte is written, with
    /// the release that protocol belongs to; on this release's protocol it goes out.
    #[tokio::test]
    async fn a_call_the_other_protocol_lacks_is_not_sent() {
        let campaign = || RpcRequest::Raft(RaftRequest::Campaign { term: 3 });
        let mut out = Vec::new();
        let e = Versioned(codec())
            .write_request(
                &StreamProtocol::new(PROTOCOLS[1].id),
                &mut Cursor::new(&mut out),
                campaign(),
            )
            .await
            .unwrap_err();
        assert_eq!(unsupported(&e), Some("0.1.0"));
        assert!(out.is_empty());
        Versioned(codec())
            .write_request(
                &StreamProtocol::new(PROTOCOLS[0].id),
                &mut Cursor::new(&mut out),
                campaign(),
            )
            .await
            .unwrap();
        assert!(!out.is_empty());
        assert!(has(PROTOCOLS[1].id, &RpcRequest::Id));
        assert!(!has("/ipfs-cluster-desktop/rpc/0.2.0", &RpcRequest::Id));
    }
}
