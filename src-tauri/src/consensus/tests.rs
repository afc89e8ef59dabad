use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use libp2p_identity::PeerId;

use super::store;
use super::typ::node_id;
use super::*;
use crate::components::{Consensus, ConsensusError, Pinset, StateChange};
use crate::config::{Identity, RaftConfig};
use crate::ipfsconn::fake::test_cid;
use crate::tasks::Tasks;
use crate::types::{Cid, Pin, PinOptions};

type Changes = tokio::sync::mpsc::UnboundedReceiver<StateChange>;

/// A single voter in `folder`, over no network.
async fn try_start(
    folder: &Path,
    peer: PeerId,
) -> Result<(RaftConsensus, Changes), ConsensusError> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let c = RaftConsensus::start(
        ConsensusOptions {
            folder: folder.to_path_buf(),
            config: RaftConfig::default(),
            peer_id: peer,
            addrs: Vec::new(),
            transport: Arc::new(NoTransport),
            changes: tx,
            bootstrap: Bootstrap::SingleVoter,
            learner_is_ready: true,
        },
        &Tasks::new(),
    )
    .await?;
    Ok((c, rx))
}

async fn start(folder: &Path, peer: PeerId) -> (RaftConsensus, Changes) {
    try_start(folder, peer).await.unwrap()
}

async fn ready(c: &RaftConsensus) {
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while !c.is_ready() {
        assert!(std::time::Instant::now() < end, "never ready");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_single_voter_commits_and_keeps_its_pinset_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let me = Identity::generate().peer_id();
    let (c, mut changes) = start(dir.path(), me).await;
    ready(&c).await;
    assert_eq!(c.leader(), Some(me.to_string()));
    assert_eq!(c.peers(), vec![me.to_string()]);
    let a = Pin::new(test_cid(1), PinOptions::default());
    let b = Pin::new(test_cid(2), PinOptions::default());
    c.log_pin(a.clone()).await.unwrap();
    c.log_pin(b.clone()).await.unwrap();
    c.log_unpin(a.cid).await.unwrap();
    assert_eq!(changes.recv().await, Some(StateChange::Pinned(a.clone())));
    assert_eq!(changes.recv().await, Some(StateChange::Pinned(b.clone())));
    assert_eq!(changes.recv().await, Some(StateChange::Unpinned(a.cid)));
    assert_eq!(list(&*c.state()).await, vec![b.clone()]);
    assert_eq!(c.unpins_to_replay().await, vec![a.cid]);
    c.shutdown().await;
    drop(c);

    // The pinset is readable at once from SQLite, before Raft even elects.
    let (c, _changes) = start(dir.path(), me).await;
    assert_eq!(list(&*c.state()).await, vec![b.clone()]);
    ready(&c).await;
    c.log_pin(a.clone()).await.unwrap();
    assert_eq!(list(&*c.state()).await.len(), 2);
    assert!(
        c.unpins_to_replay().await.is_empty(),
        "a re-pin cancels the replay"
    );
    c.shutdown().await;
}

#[tokio::test]
async fn a_corrupt_database_is_an_error_naming_the_file_and_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_path(dir.path());
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    std::fs::write(
        &db,
        b"this is not sqlite, it is a text file of a decent length.........",
    )
    .unwrap();
    let before = std::fs::read(&db).unwrap();
    let err = try_start(dir.path(), Identity::generate().peer_id())
        .await
        .err()
        .expect("a corrupt database is refused");
    assert!(err.to_string().contains("raft.sqlite"), "{err}");
    assert_eq!(std::fs::read(&db).unwrap(), before);
}

#[test]
fn node_ids_are_stable_and_distinct() {
    let a = Identity::generate().peer_id();
    let b = Identity::generate().peer_id();
    assert_eq!(node_id(&a), node_id(&a));
    assert_ne!(node_id(&a), node_id(&b));
}

#[tokio::test]
async fn a_snapshot_install_unpins_what_disappeared_while_away() {
    use openraft::storage::RaftStateMachine;
    let dir = tempfile::tempdir().unwrap();
    let db = db_path(dir.path());
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let pool = store::open(&db).await.unwrap();
    let state = store::PinsTable::new(pool.clone());
    let (tx, mut changes) = tokio::sync::mpsc::unbounded_channel();
    let mut sm = store::StateMachine::new(pool.clone(), tx);
    // Before sleeping, this peer had a and b; meanwhile a was unpinned and c pinned.
    let a = Pin::new(test_cid(1), PinOptions::default());
    let b = Pin::new(test_cid(2), PinOptions::default());
    let c = Pin::new(test_cid(3), PinOptions::default());
    store::replace_pins(&pool, &[a.clone(), b.clone()])
        .await
        .unwrap();
    let data = serde_json::to_vec(&serde_json::json!({ "pins": [b, c] })).unwrap();
    let meta = openraft::SnapshotMeta::default();
    sm.install_snapshot(&meta, Box::new(std::io::Cursor::new(data)))
        .await
        .unwrap();
    assert_eq!(changes.recv().await, Some(StateChange::Unpinned(a.cid)));
    assert_eq!(changes.recv().await, Some(StateChange::Reset));
    let now: Vec<Cid> = list(&state).await.into_iter().map(|p| p.cid).collect();
    assert_eq!(now, vec![test_cid(2), test_cid(3)]);
}

#[tokio::test]
async fn a_batch_of_pins_and_unpins_applies_in_log_order() {
    use super::typ::{Op, TypeConfig};
    use openraft::storage::RaftStateMachine;
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
    let dir = tempfile::tempdir().unwrap();
    let db = db_path(dir.path());
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let pool = store::open(&db).await.unwrap();
    let state = store::PinsTable::new(pool.clone());
    let (tx, _changes) = tokio::sync::mpsc::unbounded_channel();
    let mut sm = store::StateMachine::new(pool.clone(), tx);
    let pin = |n: u32, name: &str| {
        let mut p = Pin::new(test_cid(n), PinOptions::default());
        p.options.name = name.into();
        Op::Pin(p)
    };
    // Same CIDs pinned, unpinned and pinned again within one batch; the log's order decides.
    let ops = vec![
        pin(1, "first"),
        pin(2, "b"),
        Op::Unpin(test_cid(1)),
        pin(1, "second"),
        pin(1, "third"),
        Op::Unpin(test_cid(2)),
        Op::Unpin(test_cid(3)),
        pin(3, "c"),
    ];
    let entries: Vec<Entry<TypeConfig>> = ops
        .into_iter()
        .enumerate()
        .map(|(i, op)| Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 0), i as u64 + 1),
            payload: EntryPayload::Normal(op),
        })
        .collect();
    assert_eq!(sm.apply(entries).await.unwrap().len(), 8);
    let now: Vec<(Cid, String)> = list(&state)
        .await
        .into_iter()
        .map(|p| (p.cid, p.options.name))
        .collect();
    assert_eq!(
        now,
        vec![(test_cid(1), "third".into()), (test_cid(3), "c".into())]
    );
    let (applied, _) = sm.applied_state().await.unwrap();
    assert_eq!(applied.map(|l| l.index), Some(8));
}

/// The whole pinset, for assertions (CID order).
async fn list(state: &dyn Pinset) -> Vec<Pin> {
    use futures::TryStreamExt;
    state.stream().try_collect().await.unwrap()
}
