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
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
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
/// Answers to one peer being sent or waiting for a turn to it, at most: a peer that takes
/// our streams slowly (or never) holds a few answering slots, never all of them.
const ANSWERS_PER_PEER: usize = 3;
/// Peers asked for one block in one round at most.
const ASK_AT_MOST: usize = 8;
/// Peers asked for one block by one fetch at most (rounds of [`ASK_AT_MOST`] as those asked
/// say they lack it): a block nobody has costs a bounded number of wants.
const ASK_IN_ALL: usize = 64;
/// Wants answered from one message at most (a wantlist longer than this is cut).
pub const MAX_WANTS: usize = 256;
/// How long reading a message or opening a stream back may take.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Streams this peer opens to one peer at once (wants and answers together): below the
/// others' [`MAX_INBOUND_PER_PEER`], so that they seldom refuse one of ours (a turn is given
/// back when our side is closed, the other's may still be reading).
const SENDING_PER_PEER: usize = 2;
/// How soon a fetch not answered yet asks again (doubling each round, up to 16 s). A want
/// or an answer can be lost without an error (a stream on a connection that is closing, one
/// dropped by a peer over its limits): short, so that such a loss costs a sync little.
pub const RESEND: Duration = Duration::from_millis(500);

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

/// The first [`ASK_AT_MOST`] of `peers` (the caller orders them: the network shuffles the
/// peers connected, so that many do not each get every want).
fn ask_some(mut peers: Vec<PeerId>) -> Vec<PeerId> {
    peers.truncate(ASK_AT_MOST);
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
    /// Inbound streams open, by peer ([`MAX_INBOUND_PER_PEER`] at most).
    open_streams: PerPeer,
    /// Answers being sent.
    answering: Arc<Semaphore>,
    /// Answers being sent, by peer ([`ANSWERS_PER_PEER`] at most).
    answers_to: PerPeer,
    /// Wants waiting to go to each peer: those asked while a message to it is on its way go
    /// together in the next one (as Bitswap's message queues), not a stream each.
    outbox: Mutex<HashMap<PeerId, Outbox>>,
    /// Streams being opened to each peer ([`SENDING_PER_PEER`] at most).
    sending: Mutex<HashMap<PeerId, Arc<Semaphore>>>,
    /// Inbound streams taken and refused (over a limit) since the start.
    accepted: AtomicU64,
    refused: AtomicU64,
    tasks: Tasks,
}

/// Things under way with each peer, at most `max` a peer: one is taken with
/// [`PerPeer::try_take`] and given back when its [`Taken`] is dropped (the peer's entry goes
/// with its last one).
struct PerPeer {
    max: usize,
    counts: Arc<Mutex<HashMap<PeerId, usize>>>,
}

/// One thing under way with `peer`, counted until dropped.
struct Taken {
    counts: Arc<Mutex<HashMap<PeerId, usize>>>,
    peer: PeerId,
}

impl PerPeer {
    fn new(max: usize) -> PerPeer {
        PerPeer {
            max,
            counts: Default::default(),
        }
    }

    /// One more with `peer`, unless it has `max` under way.
    fn try_take(&self, peer: PeerId) -> Option<Taken> {
        let mut counts = self.counts.lock().unwrap();
        let n = counts.entry(peer).or_default();
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Taken {
            counts: self.counts.clone(),
            peer,
        })
    }
}

impl Drop for Taken {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap();
        if let Some(n) = counts.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.peer);
            }
        }
    }
}

/// Wants for one peer not sent yet, and the fetches to tell once they are.
#[derive(Default)]
struct Outbox {
    wants: Vec<cid::Cid>,
    sent: Vec<oneshot::Sender<Result<(), FetchError>>>,
}

/// Inbound streams taken and refused since the start.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamCounts {
    pub accepted: u64,
    pub refused: u64,
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
            open_streams: PerPeer::new(MAX_INBOUND_PER_PEER),
            answering: Arc::new(Semaphore::new(MAX_ANSWERING)),
            answers_to: PerPeer::new(ANSWERS_PER_PEER),
            outbox: Mutex::new(HashMap::new()),
            sending: Mutex::new(HashMap::new()),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
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
                    server.refused.fetch_add(1, Relaxed);
                    continue;
                };
                let Some(of_peer) = server.open_streams.try_take(peer) else {
                    tracing::debug!(%peer, "Bitswap stream refused: too many from this peer");
                    server.refused.fetch_add(1, Relaxed);
                    continue;
                };
                server.accepted.fetch_add(1, Relaxed);
                let (server, blocks) = (server.clone(), blocks.clone());
                inner.spawn(async move {
                    let _ = tokio::time::timeout(
                        STREAM_LIFETIME,
                        server.inbound(peer, stream, blocks.as_ref()),
                    )
                    .await;
                    drop((of_peer, slot));
                });
            }
        });
        Ok(me)
    }

    #[cfg(test)]
    pub fn stream_counts(&self) -> StreamCounts {
        StreamCounts {
            accepted: self.accepted.load(Relaxed),
            refused: self.refused.load(Relaxed),
        }
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
    /// closed. With every answering slot taken, or [`ANSWERS_PER_PEER`] to this peer under
    /// way, the answer is dropped (the peer asks again).
    fn answer(self: &Arc<Self>, peer: PeerId, answer: Message) {
        let Some(to_peer) = self.answers_to.try_take(peer) else {
            tracing::debug!(%peer, "Bitswap answer dropped: too many to this peer");
            return;
        };
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
            drop((to_peer, permit));
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

    /// Sends `m` to `peer` on a new stream, once one of the [`SENDING_PER_PEER`] turns to
    /// it is free.
    async fn send(&self, peer: PeerId, m: &Message) -> Result<(), FetchError> {
        let turns = self
            .sending
            .lock()
            .unwrap()
            .entry(peer)
            .or_insert_with(|| Arc::new(Semaphore::new(SENDING_PER_PEER)))
            .clone();
        let sent = match turns.acquire().await {
            Ok(_turn) => self.send_now(peer, m).await,
            Err(_) => Err(FetchError::Network("closed".into())),
        };
        // The last sender to a peer takes its entry away (peers come and go).
        let mut sending = self.sending.lock().unwrap();
        if Arc::strong_count(&turns) == 2 && turns.available_permits() == SENDING_PER_PEER {
            sending.remove(&peer);
        }
        sent
    }

    async fn send_now(&self, peer: PeerId, m: &Message) -> Result<(), FetchError> {
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

    /// Sends a want of `c` to `peer` with the others waiting for it: one task per peer
    /// sends what is waiting, a message at a time, until nothing is.
    async fn ask(self: &Arc<Self>, peer: PeerId, c: &cid::Cid) -> Result<(), FetchError> {
        let (tx, rx) = oneshot::channel();
        {
            let mut outbox = self.outbox.lock().unwrap();
            let first = !outbox.contains_key(&peer);
            let o = outbox.entry(peer).or_default();
            if !o.wants.contains(c) {
                o.wants.push(*c);
            }
            o.sent.push(tx);
            if first {
                let me = self.clone();
                self.tasks.spawn(async move { me.send_wants(peer).await });
            }
        }
        rx.await
            .unwrap_or_else(|_| Err(FetchError::Network("stopped".into())))
    }

    /// Sends the wants waiting for `peer` until none is left (then its outbox goes).
    async fn send_wants(self: Arc<Self>, peer: PeerId) {
        loop {
            let o = {
                let mut outbox = self.outbox.lock().unwrap();
                let Some(o) = outbox.get_mut(&peer) else {
                    return;
                };
                if o.sent.is_empty() {
                    outbox.remove(&peer);
                    return;
                }
                std::mem::take(o)
            };
            let mut sent = Ok(());
            for wants in o.wants.chunks(MAX_WANTS) {
                sent = self.send(peer, &want(wants)).await;
                if sent.is_err() {
                    break;
                }
            }
            for tx in o.sent {
                let _ = tx.send(sent.clone());
            }
        }
    }

    /// Block `c` from the first of the peers `peers` names that has it (at most
    /// [`ASK_AT_MOST`] asked at once, and asked again after [`RESEND`], doubling, of the
    /// peers connected then: an answer lost with a connection, or a peer met meanwhile, does
    /// not leave the fetch waiting). When every peer asked says it lacks the block, those not
    /// asked yet are asked (up to [`ASK_IN_ALL`] in all); it fails once none is left;
    /// otherwise it is bounded by the caller's timeout. The bytes are those `c` names.
    pub async fn fetch(
        self: &Arc<Self>,
        c: &cid::Cid,
        peers: &(dyn Fn() -> Vec<PeerId> + Send + Sync),
    ) -> Result<Vec<u8>, FetchError> {
        let mut round = ask_some(peers());
        if round.is_empty() {
            return Err(FetchError::NoPeer);
        }
        let id = self.next.fetch_add(1, Relaxed);
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
        let mut asked_ever: std::collections::HashSet<PeerId> = round.iter().copied().collect();
        let mut rx = self.wait_for(c, id, round.clone());
        let mut pause = RESEND;
        loop {
            // The wants go out while the answer is awaited: a peer slow to take a stream
            // does not hold up the block another sends at once.
            let lacked = {
                let sends = futures::future::join_all(
                    round.iter().map(|p| async { (*p, self.ask(*p, c).await) }),
                );
                tokio::pin!(sends);
                let resend = tokio::time::sleep(pause);
                tokio::pin!(resend);
                let mut sent = false;
                loop {
                    tokio::select! {
                        got = &mut rx => {
                            match got.map_err(|_| FetchError::Network("the fetch was dropped".into()))? {
                                Ok(data) => {
                                    wire::verify_block(c, &data).map_err(|e| FetchError::Invalid(e.0))?;
                                    return Ok(data);
                                }
                                Err(FetchError::Lacking) => break true,
                                Err(e) => return Err(e),
                            }
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
                        _ = &mut resend, if sent => break false,
                    }
                }
            };
            if lacked {
                // Everyone asked lacks it: the peers connected not asked yet, if any.
                let rest: Vec<PeerId> = peers()
                    .into_iter()
                    .filter(|p| !asked_ever.contains(p))
                    .take(ASK_IN_ALL.saturating_sub(asked_ever.len()))
                    .collect();
                round = ask_some(rest);
                if round.is_empty() {
                    return Err(FetchError::Lacking);
                }
                asked_ever.extend(round.iter().copied());
                rx = self.wait_for(c, id, round.clone());
                continue;
            }
            pause = (pause * 2).min(Duration::from_secs(16));
            // Asked again: those that have not answered and are still connected (a want or
            // its answer may have been lost), and peers not asked yet up to the round's size
            // (one met meanwhile). A peer that said it lacks the block is not asked again by
            // this fetch; one gone counts as lacking it.
            let connected = peers();
            let gone: Vec<PeerId> = {
                let mut waiting = self.waiting.lock().unwrap();
                let Some(w) = waiting
                    .get_mut(c)
                    .and_then(|l| l.iter_mut().find(|w| w.id == id))
                else {
                    continue;
                };
                let (kept, gone): (Vec<PeerId>, Vec<PeerId>) =
                    w.asked.iter().partition(|p| connected.contains(p));
                let room = ASK_AT_MOST
                    .saturating_sub(kept.len())
                    .min(ASK_IN_ALL.saturating_sub(asked_ever.len()));
                let new: Vec<PeerId> = connected
                    .iter()
                    .filter(|p| !asked_ever.contains(p))
                    .take(room)
                    .copied()
                    .collect();
                asked_ever.extend(new.iter().copied());
                w.asked.extend(new.iter().copied());
                round = kept.into_iter().chain(new).collect();
                gone
            };
            for p in gone {
                self.lacks(p, c);
            }
        }
    }

    /// Registers fetch `id`'s waiter for `c`, `asked` the peers whose answers it waits for
    /// (replacing one it had).
    fn wait_for(
        &self,
        c: &cid::Cid,
        id: u64,
        asked: Vec<PeerId>,
    ) -> oneshot::Receiver<Result<Vec<u8>, FetchError>> {
        let (tx, rx) = oneshot::channel();
        let mut waiting = self.waiting.lock().unwrap();
        let list = waiting.entry(*c).or_default();
        list.retain(|w| w.id != id);
        list.push(Waiter { id, tx, asked });
        rx
    }
}

#[cfg(test)]
mod tests;
