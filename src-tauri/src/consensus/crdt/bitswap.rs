//! The CRDT's blocks between peers by Bitswap 1.2.0 (`/ipfs/bitswap/1.2.0`, boxo's
//! `bitswap/message/pb/message.proto`), on the cluster's own libp2p host, as IPFS Cluster's
//! ipfs-lite fetches them: a peer that wants blocks opens a stream and sends a wantlist; the
//! peer that has them opens a stream back and sends them (or says it does not have them).
//! Each message on a stream is its length (unsigned varint) and the protobuf, at most 4 MiB
//! (libp2p's `network.MessageSizeMax`).
//!
//! This is the part of Bitswap the CRDT needs, and no more: it serves only the CRDT's own
//! blocks (never the IPFS node's), asks only the peers it is told to ask (a few at a time),
//! holds at most [`MAX_INBOUND`] inbound streams at once ([`MAX_INBOUND_PER_PEER`] of one
//! peer, each for a bounded time), answers a bounded number of wants per message within one
//! message's size, sends answers on their own bounded tasks, and takes only blocks whose
//! bytes hash to the CID wanted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, StreamProtocol};
use prost::Message as _;
use tokio::sync::{oneshot, Semaphore};

use super::sync::FetchError;
use super::wire;
use crate::tasks::Tasks;

pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/ipfs/bitswap/1.2.0");
/// The largest message read (libp2p's `network.MessageSizeMax`).
pub const MAX_MESSAGE: usize = 4 << 20;
/// Inbound streams handled at once; one over it is dropped at once (the accept loop never
/// waits, so it never makes libp2p-stream drop the streams behind it).
pub const MAX_INBOUND: usize = 64;
/// Inbound streams of one peer at once: no peer takes every slot.
pub const MAX_INBOUND_PER_PEER: usize = 4;
/// How long one inbound stream is read at most (a peer keeping one open reopens it).
const STREAM_LIFETIME: Duration = Duration::from_secs(120);
/// Answers being sent at once; a want that finds none free goes unanswered (its fetch asks
/// again).
const MAX_ANSWERING: usize = 32;
/// Peers asked for one block in one round at most.
const ASK_AT_MOST: usize = 8;
/// Wants answered from one message at most (a wantlist longer than this is cut).
pub const MAX_WANTS: usize = 256;
/// How long reading a message or opening a stream back may take.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// How soon a fetch not answered yet asks again (doubling each round, up to 16 s).
pub const RESEND: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------------------
// Messages (message.proto)

#[derive(Clone, PartialEq, prost::Message)]
pub struct Message {
    #[prost(message, optional, tag = "1")]
    pub wantlist: Option<Wantlist>,
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub blocks: Vec<Vec<u8>>,
    #[prost(message, repeated, tag = "3")]
    pub payload: Vec<Block>,
    #[prost(message, repeated, tag = "4")]
    pub block_presences: Vec<BlockPresence>,
    #[prost(int32, tag = "5")]
    pub pending_bytes: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Wantlist {
    #[prost(message, repeated, tag = "1")]
    pub entries: Vec<Entry>,
    #[prost(bool, tag = "2")]
    pub full: bool,
}

/// `WantType`: 0 block, 1 have.
pub const WANT_BLOCK: i32 = 0;
pub const WANT_HAVE: i32 = 1;
/// `BlockPresenceType`: 0 have, 1 don't have.
pub const HAVE: i32 = 0;
pub const DONT_HAVE: i32 = 1;

#[derive(Clone, PartialEq, prost::Message)]
pub struct Entry {
    #[prost(bytes = "vec", tag = "1")]
    pub block: Vec<u8>,
    #[prost(int32, tag = "2")]
    pub priority: i32,
    #[prost(bool, tag = "3")]
    pub cancel: bool,
    #[prost(int32, tag = "4")]
    pub want_type: i32,
    #[prost(bool, tag = "5")]
    pub send_dont_have: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Block {
    #[prost(bytes = "vec", tag = "1")]
    pub prefix: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub data: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BlockPresence {
    #[prost(bytes = "vec", tag = "1")]
    pub cid: Vec<u8>,
    #[prost(int32, tag = "2")]
    pub r#type: i32,
}

/// A wantlist asking for `cids` (want-block, and say so when you do not have it).
pub fn want(cids: &[cid::Cid]) -> Message {
    Message {
        wantlist: Some(Wantlist {
            entries: cids
                .iter()
                .map(|c| Entry {
                    block: c.to_bytes(),
                    priority: 1,
                    cancel: false,
                    want_type: WANT_BLOCK,
                    send_dont_have: true,
                })
                .collect(),
            full: false,
        }),
        ..Message::default()
    }
}

/// A CID's prefix as Bitswap 1.1 sends it with a block: version, codec, hash function and
/// digest length, each an unsigned varint.
pub fn prefix(c: &cid::Cid) -> Vec<u8> {
    let mut out = Vec::with_capacity(8);
    for n in [
        u64::from(c.version()),
        c.codec(),
        c.hash().code(),
        u64::from(c.hash().size()),
    ] {
        prost::encoding::encode_varint(n, &mut out);
    }
    out
}

/// The CID of a block sent with `prefix`: its bytes hashed as the prefix says (sha2-256,
/// the only hash the CRDT's blocks use). `None` for a prefix this peer cannot follow.
pub fn cid_of(prefix: &[u8], data: &[u8]) -> Option<cid::Cid> {
    let mut p = prefix;
    let mut next = || prost::encoding::decode_varint(&mut p).ok();
    let (version, codec, code, len) = (next()?, next()?, next()?, next()?);
    if code != 0x12 || len != 32 {
        return None;
    }
    let c = wire::block_cid(data);
    match version {
        0 if codec == wire::DAG_PB => cid::Cid::new_v0(*c.hash()).ok(),
        1 => Some(cid::Cid::new_v1(codec, *c.hash())),
        _ => None,
    }
}

/// Writes one message: its length, then it.
pub async fn write_message<W: futures::AsyncWrite + Unpin>(
    w: &mut W,
    m: &Message,
) -> std::io::Result<()> {
    let bytes = m.encode_length_delimited_to_vec();
    w.write_all(&bytes).await?;
    w.flush().await
}

/// Reads one message; `None` at the end of the stream. A length above [`MAX_MESSAGE`] or
/// bytes that are not a message are an error (the stream is then dropped).
pub async fn read_message<R: futures::AsyncRead + Unpin + Send>(
    r: &mut R,
) -> std::io::Result<Option<Message>> {
    let invalid = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
    let mut len: u64 = 0;
    for i in 0..10 {
        let mut b = [0u8; 1];
        match r.read(&mut b).await? {
            0 if i == 0 => return Ok(None),
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            _ => {}
        }
        len |= u64::from(b[0] & 0x7f) << (7 * i);
        if b[0] & 0x80 == 0 {
            if len as usize > MAX_MESSAGE {
                return Err(invalid(format!(
                    "a Bitswap message of {len} bytes (at most {MAX_MESSAGE})"
                )));
            }
            // Read as the bytes come (not allocated up front from what the peer announced).
            let mut buf = Vec::new();
            r.take(len).read_to_end(&mut buf).await?;
            if buf.len() as u64 != len {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            return Message::decode(buf.as_slice())
                .map(Some)
                .map_err(|e| invalid(format!("not a Bitswap message: {e}")));
        }
    }
    Err(invalid("a Bitswap length longer than a varint".into()))
}

// ---------------------------------------------------------------------------------------
// The service

/// At most [`ASK_AT_MOST`] of `peers`, picked at random (so that many connected peers do not
/// each get every want).
fn ask_some(mut peers: Vec<PeerId>) -> Vec<PeerId> {
    use rand::seq::SliceRandom;
    if peers.len() > ASK_AT_MOST {
        peers.shuffle(&mut rand::thread_rng());
        peers.truncate(ASK_AT_MOST);
    }
    peers
}

/// The blocks this peer serves (the CRDT store's).
#[async_trait]
pub trait LocalBlocks: Send + Sync + 'static {
    async fn get(&self, c: &cid::Cid) -> Option<Vec<u8>>;
}

/// Bitswap on one host: answers others' wants from [`LocalBlocks`], and fetches blocks.
pub struct Bitswap {
    control: libp2p_stream::Control,
    /// Fetches waiting for a block, by CID.
    waiting: Mutex<HashMap<cid::Cid, Vec<Waiter>>>,
    /// Names the next fetch's waiter.
    next: std::sync::atomic::AtomicU64,
    /// Inbound streams open, by peer.
    open_streams: Mutex<HashMap<PeerId, usize>>,
    /// Answers being sent.
    answering: Arc<Semaphore>,
    tasks: Tasks,
}

/// A fetch waiting: where its block goes, and the peers asked that have not said they lack
/// it (when none is left, the fetch fails at once instead of waiting out its timeout).
struct Waiter {
    id: u64,
    tx: oneshot::Sender<Result<Vec<u8>, FetchError>>,
    asked: Vec<PeerId>,
}

impl Bitswap {
    /// Starts serving on `control`'s host (accepting [`PROTOCOL`] streams).
    pub fn start(
        mut control: libp2p_stream::Control,
        blocks: Arc<dyn LocalBlocks>,
        tasks: &Tasks,
    ) -> Result<Arc<Bitswap>, libp2p_stream::AlreadyRegistered> {
        let mut incoming = control.accept(PROTOCOL)?;
        let me = Arc::new(Bitswap {
            control,
            waiting: Mutex::new(HashMap::new()),
            next: Default::default(),
            open_streams: Mutex::new(HashMap::new()),
            answering: Arc::new(Semaphore::new(MAX_ANSWERING)),
            tasks: tasks.clone(),
        });
        let server = me.clone();
        let slots = Arc::new(Semaphore::new(MAX_INBOUND));
        let inner = tasks.clone();
        tasks.spawn(async move {
            while let Some((peer, stream)) = incoming.next().await {
                // Over a limit the stream is dropped (the peer may open another later).
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    tracing::debug!(%peer, "Bitswap stream refused: every slot taken");
                    continue;
                };
                {
                    let mut open = server.open_streams.lock().unwrap();
                    let n = open.entry(peer).or_default();
                    if *n >= MAX_INBOUND_PER_PEER {
                        tracing::debug!(%peer, "Bitswap stream refused: too many from this peer");
                        continue;
                    }
                    *n += 1;
                }
                let (server, blocks) = (server.clone(), blocks.clone());
                inner.spawn(async move {
                    let _ = tokio::time::timeout(
                        STREAM_LIFETIME,
                        server.inbound(peer, stream, blocks.as_ref()),
                    )
                    .await;
                    let mut open = server.open_streams.lock().unwrap();
                    if let Some(n) = open.get_mut(&peer) {
                        *n -= 1;
                        if *n == 0 {
                            open.remove(&peer);
                        }
                    }
                    drop(slot);
                });
            }
        });
        Ok(me)
    }

    /// Reads messages from `peer` until the stream ends: wants are answered on a stream of
    /// this peer's, blocks go to the fetches waiting for them.
    async fn inbound(
        self: &Arc<Self>,
        peer: PeerId,
        mut stream: libp2p::Stream,
        blocks: &dyn LocalBlocks,
    ) {
        loop {
            let m = match tokio::time::timeout(IO_TIMEOUT, read_message(&mut stream)).await {
                Ok(Ok(Some(m))) => m,
                Ok(Ok(None)) | Err(_) => return,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "Bitswap stream dropped");
                    return;
                }
            };
            for p in m.block_presences.iter().filter(|p| p.r#type == DONT_HAVE) {
                if let Ok(c) = cid::Cid::try_from(p.cid.as_slice()) {
                    self.lacks(peer, &c);
                }
            }
            for b in &m.payload {
                if let Some(c) = cid_of(&b.prefix, &b.data) {
                    self.deliver(&c, &b.data);
                }
            }
            for data in &m.blocks {
                // Bitswap 1.0: a CIDv0 block (dag-pb, sha2-256).
                if let Some(c) = cid_of(&[0, 0x70, 0x12, 0x20], data) {
                    self.deliver(&c, data);
                }
            }
            let Some(wl) = m.wantlist else { continue };
            let mut answer = Message::default();
            let mut seen = std::collections::HashSet::new();
            let mut bytes = 0usize;
            for e in wl.entries.iter().filter(|e| !e.cancel).take(MAX_WANTS) {
                let Ok(c) = cid::Cid::try_from(e.block.as_slice()) else {
                    continue;
                };
                if !seen.insert(c) {
                    continue;
                }
                match blocks.get(&c).await {
                    Some(_) if e.want_type == WANT_HAVE => {
                        answer.block_presences.push(BlockPresence {
                            cid: e.block.clone(),
                            r#type: HAVE,
                        })
                    }
                    // An answer stays within one message; blocks past it are not sent (their
                    // fetches ask again).
                    Some(data) if bytes + data.len() + 64 <= MAX_MESSAGE => {
                        bytes += data.len() + 64;
                        answer.payload.push(Block {
                            prefix: prefix(&c),
                            data,
                        })
                    }
                    Some(_) => {}
                    None if e.send_dont_have => answer.block_presences.push(BlockPresence {
                        cid: e.block.clone(),
                        r#type: DONT_HAVE,
                    }),
                    None => {}
                }
            }
            if answer != Message::default() {
                self.answer(peer, answer);
            }
        }
    }

    /// Sends `answer` to `peer` on a task of its own (the inbound stream's slot is not held
    /// while it goes), once more after 200 ms if the first try fails: of two connections to
    /// a peer that dialed while it was dialed, the one the stream went on may have just
    /// closed. With every answering slot taken, the answer is dropped.
    fn answer(self: &Arc<Self>, peer: PeerId, answer: Message) {
        let Ok(permit) = self.answering.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "Bitswap answer dropped: too many being sent");
            return;
        };
        let me = self.clone();
        self.tasks.spawn(async move {
            let mut sent = me.send(peer, &answer).await;
            if sent.is_err() {
                tokio::time::sleep(Duration::from_millis(200)).await;
                sent = me.send(peer, &answer).await;
            }
            if let Err(e) = sent {
                tracing::debug!(%peer, error = %e, "Bitswap answer not sent");
            }
            drop(permit);
        });
    }

    fn deliver(&self, c: &cid::Cid, data: &[u8]) {
        let waiters = self.waiting.lock().unwrap().remove(c);
        for w in waiters.into_iter().flatten() {
            let _ = w.tx.send(Ok(data.to_vec()));
        }
    }

    /// `peer` says it does not have `c`: fetches that have no one else to hear from fail.
    fn lacks(&self, peer: PeerId, c: &cid::Cid) {
        let mut waiting = self.waiting.lock().unwrap();
        let Some(list) = waiting.get_mut(c) else {
            return;
        };
        let mut kept = Vec::with_capacity(list.len());
        for mut w in list.drain(..) {
            w.asked.retain(|p| *p != peer);
            if w.asked.is_empty() {
                let _ = w.tx.send(Err(FetchError::Lacking));
            } else {
                kept.push(w);
            }
        }
        if kept.is_empty() {
            waiting.remove(c);
        } else {
            *list = kept;
        }
    }

    /// Sends `m` to `peer` on a new stream.
    async fn send(&self, peer: PeerId, m: &Message) -> Result<(), FetchError> {
        let net = |e: String| FetchError::Network(e);
        let mut control = self.control.clone();
        let mut s = tokio::time::timeout(IO_TIMEOUT, control.open_stream(peer, PROTOCOL))
            .await
            .map_err(|_| net("opening a stream timed out".into()))?
            .map_err(|e| net(e.to_string()))?;
        tokio::time::timeout(IO_TIMEOUT, async {
            write_message(&mut s, m).await?;
            s.close().await
        })
        .await
        .map_err(|_| net("sending timed out".into()))?
        .map_err(|e| net(e.to_string()))
    }

    /// Block `c` from the first of the peers `peers` names that has it (at most
    /// [`ASK_AT_MOST`] asked at once, and asked again after [`RESEND`], doubling, of the
    /// peers connected then: an answer lost with a connection, or a peer met meanwhile, does
    /// not leave the fetch waiting). Fails at once when every peer asked says it lacks the
    /// block; otherwise bounded by the caller's timeout. The bytes are those `c` names.
    pub async fn fetch(
        &self,
        c: &cid::Cid,
        peers: &(dyn Fn() -> Vec<PeerId> + Send + Sync),
    ) -> Result<Vec<u8>, FetchError> {
        let first = ask_some(peers());
        if first.is_empty() {
            return Err(FetchError::NoPeer);
        }
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, mut rx) = oneshot::channel();
        self.waiting
            .lock()
            .unwrap()
            .entry(*c)
            .or_default()
            .push(Waiter {
                id,
                tx,
                asked: first.clone(),
            });
        // However the fetch ends (answered, failed, or dropped at the caller's timeout), its
        // waiter goes.
        struct Forget<'a>(&'a Bitswap, cid::Cid, u64);
        impl Drop for Forget<'_> {
            fn drop(&mut self) {
                let mut w = self.0.waiting.lock().unwrap();
                if let Some(list) = w.get_mut(&self.1) {
                    list.retain(|w| w.id != self.2);
                    if list.is_empty() {
                        w.remove(&self.1);
                    }
                }
            }
        }
        let _forget = Forget(self, *c, id);
        let m = want(&[*c]);
        let mut round = first;
        let mut pause = RESEND;
        loop {
            // The wants go out while the answer is awaited: a peer slow to take a stream
            // does not hold up the block another sends at once.
            {
                let sends = futures::future::join_all(
                    round
                        .iter()
                        .map(|p| async { (*p, self.send(*p, &m).await) }),
                );
                tokio::pin!(sends);
                let resend = tokio::time::sleep(pause);
                tokio::pin!(resend);
                let mut sent = false;
                loop {
                    tokio::select! {
                        got = &mut rx => {
                            let data = got.map_err(|_| FetchError::Network("the fetch was dropped".into()))??;
                            wire::verify_block(c, &data).map_err(|e| FetchError::Invalid(e.0))?;
                            return Ok(data);
                        }
                        results = &mut sends, if !sent => {
                            sent = true;
                            // A peer that could not be asked will not answer: it lacks it.
                            for (p, r) in results {
                                if let Err(e) = r {
                                    tracing::debug!(peer = %p, error = %e, "Bitswap want not sent");
                                    self.lacks(p, c);
                                }
                            }
                        }
                        _ = &mut resend, if sent => break,
                    }
                }
            }
            pause = (pause * 2).min(RESEND * 8);
            round = ask_some(peers());
            let mut waiting = self.waiting.lock().unwrap();
            if let Some(w) = waiting
                .get_mut(c)
                .and_then(|l| l.iter_mut().find(|w| w.id == id))
            {
                for p in &round {
                    if !w.asked.contains(p) {
                        w.asked.push(*p);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
