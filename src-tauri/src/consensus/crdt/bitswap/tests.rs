//! Bitswap's messages against vectors written from boxo's `message.proto` by the independent
//! writer (`tests/fixtures/crdt/make_vectors.py`), its limits on what it reads, and two real
//! libp2p hosts (TCP on localhost, noise, yamux) fetching blocks from each other.

use std::collections::HashMap;
use std::str::FromStr;

use libp2p::{noise, tcp, yamux, Multiaddr, Swarm};

use super::*;

use super::super::testing::vector;

fn block_cid() -> cid::Cid {
    cid::Cid::from_str(vector("block_cid")).unwrap()
}

#[tokio::test]
async fn messages_are_those_of_boxos_message_proto() {
    let block = ::hex::decode(vector("block")).unwrap();
    let c = block_cid();
    let mut out = Vec::new();
    write_message(&mut out, &want(&[c])).await.unwrap();
    assert_eq!(::hex::encode(&out), vector("bitswap_want"));
    let answer = Message {
        payload: vec![Block {
            prefix: prefix(&c),
            data: block.clone(),
        }],
        ..Message::default()
    };
    out.clear();
    write_message(&mut out, &answer).await.unwrap();
    assert_eq!(::hex::encode(&out), vector("bitswap_block"));
    let bytes = ::hex::decode(vector("bitswap_dont_have")).unwrap();
    let m = read_message(&mut bytes.as_slice()).await.unwrap().unwrap();
    assert_eq!(m.block_presences[0].r#type, DONT_HAVE);
    assert_eq!(m.block_presences[0].cid, c.to_bytes());
    // A block's CID from its prefix and bytes, v1 and v0.
    assert_eq!(cid_of(&prefix(&c), &block), Some(c));
    let v0 = cid::Cid::new_v0(*c.hash()).unwrap();
    assert_eq!(cid_of(&prefix(&v0), &block), Some(v0));
    assert_eq!(cid_of(&[1, 0x70, 0x13, 64], &block), None, "sha2-512");
    assert_eq!(cid_of(&[1], &block), None);
}

#[tokio::test]
async fn what_is_read_is_bounded() {
    // The end of a stream, a cut message, a length over 4 MiB, garbage.
    assert!(read_message(&mut &[][..]).await.unwrap().is_none());
    assert!(read_message(&mut &[5u8, 1, 2][..]).await.is_err());
    let mut huge = Vec::new();
    prost::encoding::encode_varint((MAX_MESSAGE + 1) as u64, &mut huge);
    let err = read_message(&mut huge.as_slice()).await.unwrap_err();
    assert!(err.to_string().contains("at most"), "{err}");
    assert!(read_message(&mut &[0xffu8; 11][..]).await.is_err());
    assert!(read_message(&mut &[2u8, 0xff, 0xff][..]).await.is_err());
}

struct Blocks(HashMap<cid::Cid, Vec<u8>>);

#[async_trait]
impl LocalBlocks for Blocks {
    async fn get(&self, c: &cid::Cid) -> Option<Vec<u8>> {
        self.0.get(c).cloned()
    }
}

/// A host with only the stream behaviour, driven by `tasks`; its address once listening.
/// A host: its id, address, stream control, a way to dial, and its connection count.
struct Host {
    id: PeerId,
    addr: Multiaddr,
    control: libp2p_stream::Control,
    dial: tokio::sync::mpsc::Sender<Multiaddr>,
    connected: tokio::sync::watch::Receiver<usize>,
}

async fn host(tasks: &Tasks) -> Host {
    let mut swarm: Swarm<libp2p_stream::Behaviour> = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| libp2p_stream::Behaviour::new())
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    swarm
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .unwrap();
    let addr = loop {
        if let libp2p::swarm::SwarmEvent::NewListenAddr { address, .. } =
            swarm.select_next_some().await
        {
            break address;
        }
    };
    let id = *swarm.local_peer_id();
    let control = swarm.behaviour().new_control();
    let (dial_tx, mut dial_rx) = tokio::sync::mpsc::channel::<Multiaddr>(4);
    let (count_tx, connected) = tokio::sync::watch::channel(0usize);
    tasks.spawn(async move {
        loop {
            tokio::select! {
                Some(a) = dial_rx.recv() => { let _ = swarm.dial(a); }
                e = swarm.select_next_some() => {
                    if let libp2p::swarm::SwarmEvent::ConnectionEstablished { .. } = e {
                        count_tx.send_modify(|n| *n += 1);
                    }
                }
            }
        }
    });
    Host {
        id,
        addr,
        control,
        dial: dial_tx,
        connected,
    }
}

/// Dials `to` (at `addr`) through `dial` and waits until `connected` counts `n` connections.
async fn connect(
    dial: &tokio::sync::mpsc::Sender<Multiaddr>,
    connected: &mut tokio::sync::watch::Receiver<usize>,
    to: PeerId,
    addr: &Multiaddr,
    n: usize,
) {
    dial.send(addr.clone().with(libp2p::multiaddr::Protocol::P2p(to)))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(20), connected.wait_for(|c| *c >= n))
        .await
        .expect("connected in time")
        .unwrap();
}

#[tokio::test]
async fn a_host_fetches_a_block_from_another_and_hears_at_once_when_nobody_has_one() {
    let tasks = Tasks::new();
    let block = ::hex::decode(vector("block")).unwrap();
    let c = block_cid();
    let ha = host(&tasks).await;
    let mut hb = host(&tasks).await;
    let a_id = ha.id;
    let a = Bitswap::start(
        ha.control,
        Arc::new(Blocks(HashMap::from([(c, block.clone())]))),
        &tasks,
    )
    .unwrap();
    let b = Bitswap::start(hb.control, Arc::new(Blocks(HashMap::new())), &tasks).unwrap();
    connect(&hb.dial, &mut hb.connected, a_id, &ha.addr, 1).await;
    let got = tokio::time::timeout(Duration::from_secs(20), b.fetch(&c, &move || vec![a_id]))
        .await
        .expect("fetched in time")
        .unwrap();
    assert_eq!(got, block);
    // A block nobody asked has: a fails the fetch at once (a said it does not have it).
    let missing = wire::block_cid(b"missing");
    let err = tokio::time::timeout(
        Duration::from_secs(20),
        b.fetch(&missing, &move || vec![a_id]),
    )
    .await
    .expect("answered in time, not by timeout")
    .unwrap_err();
    assert_eq!(err, FetchError::Lacking);
    assert!(b.fetch(&c, &Vec::new).await.is_err());
    // Nothing left waiting.
    assert!(b.waiting.lock().unwrap().is_empty());
    drop(a);
    tasks.shutdown().await;
}

#[tokio::test]
async fn many_fetches_at_once_go_in_few_streams_and_none_is_refused() {
    let tasks = Tasks::new();
    let blocks: HashMap<cid::Cid, Vec<u8>> = (0..100u32)
        .map(|n| {
            let data = format!("block {n}").into_bytes();
            (wire::block_cid(&data), data)
        })
        .collect();
    let ha = host(&tasks).await;
    let mut hb = host(&tasks).await;
    let a_id = ha.id;
    let a = Bitswap::start(ha.control, Arc::new(Blocks(blocks.clone())), &tasks).unwrap();
    let b = Bitswap::start(hb.control, Arc::new(Blocks(HashMap::new())), &tasks).unwrap();
    connect(&hb.dial, &mut hb.connected, a_id, &ha.addr, 1).await;
    // A sync's 50 workers at once, twice over.
    let got = futures::stream::iter(blocks.keys().copied())
        .map(|c| {
            let b = b.clone();
            async move { (c, b.fetch(&c, &move || vec![a_id]).await) }
        })
        .buffer_unordered(50)
        .collect::<Vec<_>>();
    let got = tokio::time::timeout(Duration::from_secs(60), got)
        .await
        .expect("fetched in time");
    for (c, r) in got {
        assert_eq!(r.unwrap(), blocks[&c]);
    }
    // Wants to one peer go together: a never had to refuse a stream of b's (over its
    // per-peer limit) and took far fewer streams than there were blocks.
    let s = a.stream_counts();
    assert_eq!(s.refused, 0, "{s:?}");
    assert!(s.accepted < 50, "{s:?}");
    assert_eq!(b.stream_counts().refused, 0);
    tasks.shutdown().await;
}

/// A peer that opens streams and never writes on them takes its own share of the slots
/// ([`MAX_INBOUND_PER_PEER`]) and no more: its streams over it are refused at once, and
/// another peer is still served. Once it lets them go, its share is free again.
#[tokio::test]
async fn a_peer_hoarding_streams_gets_its_share_and_others_are_still_served() {
    let tasks = Tasks::new();
    let block = ::hex::decode(vector("block")).unwrap();
    let c = block_cid();
    let ha = host(&tasks).await;
    let a_id = ha.id;
    let a_base = ha.addr.clone();
    let a = Bitswap::start(
        ha.control,
        Arc::new(Blocks(HashMap::from([(c, block.clone())]))),
        &tasks,
    )
    .unwrap();
    let mut hostile = host(&tasks).await;
    let mut honest = host(&tasks).await;
    for h in [&mut hostile, &mut honest] {
        connect(&h.dial, &mut h.connected, a_id, &a_base, 1).await;
    }
    // Ten streams opened and held, nothing written.
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(
            hostile
                .control
                .open_stream(a_id, PROTOCOL)
                .await
                .expect("stream opened"),
        );
    }
    let seen = |n: u64| {
        let a = a.clone();
        async move {
            tokio::time::timeout(Duration::from_secs(20), async {
                loop {
                    let s = a.stream_counts();
                    if s.accepted + s.refused >= n {
                        return s;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
            .await
            .expect("the streams reached a in time")
        }
    };
    let s = seen(10).await;
    assert_eq!(s.accepted, MAX_INBOUND_PER_PEER as u64, "{s:?}");
    assert_eq!(s.refused, 10 - MAX_INBOUND_PER_PEER as u64, "{s:?}");
    // Another peer is served meanwhile.
    let b = Bitswap::start(honest.control, Arc::new(Blocks(HashMap::new())), &tasks).unwrap();
    let got = tokio::time::timeout(Duration::from_secs(20), b.fetch(&c, &move || vec![a_id]))
        .await
        .expect("served in time")
        .unwrap();
    assert_eq!(got, block);
    // Let go (closed), the hoarder's share is free again: a new stream of its is taken.
    for mut s in held.drain(..) {
        let _ = futures::AsyncWriteExt::close(&mut s).await;
    }
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let before = a.stream_counts();
            let mut s = hostile
                .control
                .open_stream(a_id, PROTOCOL)
                .await
                .expect("stream opened");
            let after = seen(before.accepted + before.refused + 1).await;
            let _ = futures::AsyncWriteExt::close(&mut s).await;
            if after.accepted > before.accepted {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the hoarder's share came back");
    tasks.shutdown().await;
}

/// When the peers asked first all lack a block, those not asked yet are asked before the
/// fetch gives up: the block of the ninth peer (past the first round's eight) is had.
#[tokio::test]
async fn a_block_past_the_first_peers_asked_is_still_had() {
    let tasks = Tasks::new();
    let block = ::hex::decode(vector("block")).unwrap();
    let c = block_cid();
    let mut b = host(&tasks).await;
    let mut order = Vec::new();
    let mut servers = Vec::new();
    for n in 0..=ASK_AT_MOST {
        let h = host(&tasks).await;
        let blocks = match n == ASK_AT_MOST {
            true => HashMap::from([(c, block.clone())]),
            false => HashMap::new(),
        };
        order.push(h.id);
        b.dial
            .send(h.addr.clone().with(libp2p::multiaddr::Protocol::P2p(h.id)))
            .await
            .unwrap();
        servers.push(Bitswap::start(h.control, Arc::new(Blocks(blocks)), &tasks).unwrap());
    }
    tokio::time::timeout(
        Duration::from_secs(20),
        b.connected.wait_for(|n| *n > ASK_AT_MOST),
    )
    .await
    .expect("connected in time")
    .unwrap();
    let fetcher = Bitswap::start(b.control, Arc::new(Blocks(HashMap::new())), &tasks).unwrap();
    let peers = order.clone();
    let got = tokio::time::timeout(
        Duration::from_secs(20),
        fetcher.fetch(&c, &move || peers.clone()),
    )
    .await
    .expect("answered in time")
    .unwrap();
    assert_eq!(got, block);
    // And a block nobody has fails once all nine have said so.
    let peers = order.clone();
    let err = tokio::time::timeout(
        Duration::from_secs(20),
        fetcher.fetch(&wire::block_cid(b"nobody"), &move || peers.clone()),
    )
    .await
    .expect("answered in time")
    .unwrap_err();
    assert_eq!(err, FetchError::Lacking);
    tasks.shutdown().await;
}

/// Streams that arrive together wait to be accepted (the patched libp2p-stream's backlog,
/// `third_party/README.md`): upstream dropped every one that came while the one before it
/// was not taken yet, and Bitswap's wants and answers were lost with them.
#[tokio::test]
async fn streams_arriving_together_are_all_accepted() {
    let tasks = Tasks::new();
    let mut ha = host(&tasks).await;
    let mut hb = host(&tasks).await;
    let proto = StreamProtocol::new("/test/backlog/1");
    let mut incoming = ha.control.accept(proto.clone()).unwrap();
    connect(&hb.dial, &mut hb.connected, ha.id, &ha.addr, 1).await;
    // Twenty streams opened at once, each with a byte written, before a takes any.
    let opened = futures::future::join_all((0..20).map(|_| {
        let mut control = hb.control.clone();
        let proto = proto.clone();
        let a = ha.id;
        async move {
            let mut s = control.open_stream(a, proto).await.unwrap();
            s.write_all(b"x").await.unwrap();
            s.flush().await.unwrap();
            s
        }
    }))
    .await;
    let mut taken = 0;
    while taken < opened.len() {
        match tokio::time::timeout(Duration::from_secs(5), incoming.next()).await {
            Ok(Some(_)) => taken += 1,
            _ => break,
        }
    }
    assert_eq!(taken, 20, "streams dropped before they were accepted");
    drop(opened);
    tasks.shutdown().await;
}

/// A peer asked that goes away without answering counts as lacking the block at the next
/// re-send: the fetch fails then, instead of waiting out the caller's timeout.
#[tokio::test]
async fn a_peer_gone_without_answering_counts_as_lacking() {
    let tasks = Tasks::new();
    let mut silent = host(&tasks).await;
    let mut b = host(&tasks).await;
    let silent_id = silent.id;
    // It takes Bitswap streams and never answers.
    let mut incoming = silent.control.accept(PROTOCOL).unwrap();
    let (heard_tx, mut heard) = tokio::sync::mpsc::channel::<()>(16);
    tasks.spawn(async move {
        let mut held = Vec::new();
        while let Some((_, s)) = incoming.next().await {
            held.push(s);
            let _ = heard_tx.try_send(());
        }
    });
    connect(&b.dial, &mut b.connected, silent_id, &silent.addr, 1).await;
    let fetcher = Bitswap::start(b.control, Arc::new(Blocks(HashMap::new())), &tasks).unwrap();
    let connected = Arc::new(Mutex::new(vec![silent_id]));
    let peers = {
        let connected = connected.clone();
        move || connected.lock().unwrap().clone()
    };
    let fetch = {
        let fetcher = fetcher.clone();
        tokio::spawn(async move { fetcher.fetch(&block_cid(), &peers).await })
    };
    // Once the want has reached it, it "disconnects" (the network lists it no more).
    tokio::time::timeout(Duration::from_secs(20), heard.recv())
        .await
        .expect("the want arrived");
    connected.lock().unwrap().clear();
    let err = tokio::time::timeout(Duration::from_secs(20), fetch)
        .await
        .expect("failed at the re-send, not at the caller's timeout")
        .unwrap()
        .unwrap_err();
    assert_eq!(err, FetchError::Lacking);
    assert!(fetcher.waiting.lock().unwrap().is_empty());
    tasks.shutdown().await;
}
