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
    hb.dial
        .send(ha.addr.with(libp2p::multiaddr::Protocol::P2p(a_id)))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(20), hb.connected.wait_for(|n| *n > 0))
        .await
        .expect("connected in time")
        .unwrap();
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
