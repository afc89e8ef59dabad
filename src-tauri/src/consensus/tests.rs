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

type Changes = crate::state::feed::FeedReceiver;

/// A single voter in `folder`, over no network.
async fn try_start(
    folder: &Path,
    peer: PeerId,
) -> Result<(RaftConsensus, Changes), ConsensusError> {
    try_start_with_feed(folder, peer, 1024).await
}

/// [`try_start`] with a state feed that holds `capacity` changes.
async fn try_start_with_feed(
    folder: &Path,
    peer: PeerId,
    capacity: usize,
) -> Result<(RaftConsensus, Changes), ConsensusError> {
    let (tx, rx) = crate::state::feed::feed(capacity);
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
async fn writes_that_arrive_together_are_committed_as_one_entry_and_each_answered() {
    // One thread: every write below is queued before the leader's batcher runs.
    let dir = tempfile::tempdir().unwrap();
    let me = Identity::generate().peer_id();
    let (c, _changes) = start(dir.path(), me).await;
    ready(&c).await;
    let before = c.stats().await.last_log_index;
    let pins: Vec<Pin> = (0..300)
        .map(|n| Pin::new(test_cid(n), PinOptions::default()))
        .collect();
    let answers = futures::future::join_all(pins.iter().cloned().map(|p| c.log_pin(p))).await;
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    // join_all lets the thread go every 32 futures it polls: at most 10 entries.
    let entries = c.stats().await.last_log_index - before;
    assert!(entries <= 10, "300 pins in {entries} entries");
    assert_eq!(list(&*c.state()).await, pins);
    let before = c.stats().await.last_log_index;

    // In one entry, a pin and then an unpin of the same CID apply in that order, and the
    // unpin is found in the log for the replay after a crash.
    let gone = pins[7].clone();
    let (pinned, unpinned) = futures::join!(c.log_pin(gone.clone()), c.log_unpin(gone.cid));
    pinned.unwrap();
    unpinned.unwrap();
    assert_eq!(c.stats().await.last_log_index - before, 1, "one entry");
    assert_eq!(c.state().get(&gone.cid).await.unwrap(), None);
    assert_eq!(c.state().count().await.unwrap(), 299);
    assert_eq!(c.unpins_to_replay().await, vec![gone.cid]);
    c.shutdown().await;
}

#[tokio::test]
async fn heavy_pins_are_committed_in_groups_that_stay_within_their_size() {
    let dir = tempfile::tempdir().unwrap();
    let me = Identity::generate().peer_id();
    let (c, _changes) = start(dir.path(), me).await;
    ready(&c).await;
    let before = c.stats().await.last_log_index;
    // 40 pins of about 60 KiB each: about 2.4 MB, more than a group may carry.
    let pins: Vec<Pin> = (0..40)
        .map(|n| {
            let mut p = Pin::new(test_cid(n), PinOptions::default());
            p.options.name = "x".repeat(60 * 1024);
            p
        })
        .collect();
    let answers = c.log_pins(pins.clone()).await;
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    let entries = c.stats().await.last_log_index - before;
    assert!(
        (5..=10).contains(&entries),
        "40 pins of 60 KiB in {entries} entries of at most 512 KiB"
    );
    assert_eq!(c.state().count().await.unwrap(), 40);
    c.shutdown().await;
}

#[tokio::test]
async fn more_unpins_to_replay_than_the_feed_holds_do_not_hold_up_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let me = Identity::generate().peer_id();
    let (c, _changes) = start(dir.path(), me).await;
    ready(&c).await;
    for n in 0..5 {
        c.log_pin(Pin::new(test_cid(n), PinOptions::default()))
            .await
            .unwrap();
        c.log_unpin(test_cid(n)).await.unwrap();
    }
    c.shutdown().await;
    drop(c);
    // The tracker follows the feed only once the consensus has started.
    let (c, mut changes) = tokio::time::timeout(
        Duration::from_secs(20),
        try_start_with_feed(dir.path(), me, 1),
    )
    .await
    .expect("started although the feed holds one change")
    .unwrap();
    let mut replayed = Vec::new();
    while replayed.len() < 5 {
        match tokio::time::timeout(Duration::from_secs(10), changes.recv()).await {
            Ok(Some(StateChange::Unpinned(cid))) => replayed.push(cid),
            other => panic!("expected the replayed unpins, got {other:?}"),
        }
    }
    replayed.sort_by_key(Cid::key);
    let mut want: Vec<_> = (0..5).map(test_cid).collect();
    want.sort_by_key(Cid::key);
    assert_eq!(replayed, want);
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

#[tokio::test]
async fn a_truncated_database_is_refused_before_it_is_opened_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_path(dir.path());
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    {
        // A real database of a few dozen pages.
        let pool = super::store::open(&db).await.unwrap();
        for i in 0..2000 {
            sqlx::query("INSERT INTO kv (key, value) VALUES (?, ?)")
                .bind(format!("key {i}"))
                .bind("a value long enough to fill pages ".repeat(4))
                .execute(&pool)
                .await
                .unwrap();
        }
        super::store::checkpoint(&pool).await.unwrap();
        pool.close().await;
    }
    let whole = std::fs::read(&db).unwrap();
    // The damaged copy goes where no connection of the pool above ever was (its threads
    // may still be closing the original).
    let elsewhere = tempfile::tempdir().unwrap();
    let db = db_path(elsewhere.path());
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let half = whole[..whole.len() / 2].to_vec();
    std::fs::write(&db, &half).unwrap();
    let err = super::store::open(&db).await.expect_err("refused");
    let msg = err.to_string();
    assert!(
        msg.contains("raft.sqlite") && msg.contains("shorter"),
        "{msg}"
    );
    assert!(
        std::fs::read(&db).unwrap() == half,
        "the damaged file was changed"
    );
    // Whole again, it opens.
    std::fs::write(&db, &whole).unwrap();
    super::store::open(&db).await.unwrap().close().await;
}

/// A database a newer version has migrated further than this one knows is refused before
/// anything writes to it, naming the version that wrote it and this one, and left exactly as
/// it was; one of this version's own schema opens, and says which version last opened it.
#[tokio::test]
async fn a_database_of_a_newer_version_is_refused_naming_both_versions_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_path(dir.path());
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let pool = super::store::open(&db).await.unwrap();
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(applied, (1..=store::schema_version()).collect::<Vec<_>>());
    let by: String = sqlx::query_scalar("SELECT value FROM kv WHERE key = 'written_by'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(by, format!("\"{}\"", crate::types::full_version()));
    // As a later version would leave it: one more migration, its name in `written_by`.
    let newer = store::schema_version() + 1;
    sqlx::query("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (?, 'later', TRUE, x'00', 0)")
        .bind(newer)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE kv SET value = '\"9.9.9+gitfeedfacecafe\"' WHERE key = 'written_by'")
        .execute(&pool)
        .await
        .unwrap();
    store::checkpoint(&pool).await.unwrap();
    pool.close().await;
    // The copy goes where no connection of the pool above ever was (its threads may still
    // be closing the original, and removing its side files).
    let whole = std::fs::read(&db).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = db_path(dir.path());
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    std::fs::write(&db, whole).unwrap();
    let files = || {
        let mut names: Vec<_> = std::fs::read_dir(db.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
            .collect();
        names.sort();
        names
    };
    let before = files();
    let err = try_start(dir.path(), Identity::generate().peer_id())
        .await
        .err()
        .expect("a newer database is refused");
    let msg = err.to_string();
    assert!(
        msg.contains("raft.sqlite")
            && msg.contains(&format!("9.9.9+gitfeedfacecafe, storage schema {newer}"))
            && msg.contains(&format!(
                "this is {} (storage schema {})",
                crate::types::full_version(),
                store::schema_version()
            ))
            && msg.contains("Nothing was changed"),
        "{msg}"
    );
    let after = files();
    assert_eq!(
        after.iter().map(|(p, b)| (p, b.len())).collect::<Vec<_>>(),
        before.iter().map(|(p, b)| (p, b.len())).collect::<Vec<_>>()
    );
    assert!(after == before, "the newer database was changed");
}

#[test]
fn node_ids_are_stable_and_distinct() {
    let a = Identity::generate().peer_id();
    let b = Identity::generate().peer_id();
    assert_eq!(node_id(&a), node_id(&a));
    assert_ne!(node_id(&a), node_id(&b));
}

/// A state machine on its own database in `folder`, holding `pins`.
async fn machine(folder: &Path, pins: &[Pin]) -> (sqlx::SqlitePool, store::StateMachine, Changes) {
    let db = db_path(folder);
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let pool = store::open(&db).await.unwrap();
    store::replace_pins(&pool, pins).await.unwrap();
    let snapshots = super::snapshot::dir(db.parent().unwrap());
    store::ensure_snapshot(&pool, &snapshots).await.unwrap();
    let (tx, changes) = crate::state::feed::feed(1024);
    (
        pool.clone(),
        store::StateMachine::new(pool, snapshots, tx),
        changes,
    )
}

/// A snapshot built by `sm` from its pins table.
async fn build(
    sm: &mut store::StateMachine,
) -> openraft::storage::Snapshot<super::typ::TypeConfig> {
    use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
    sm.get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap()
}

/// Sends `from`'s bytes into a receiving file of `to`, as openraft's chunks would.
async fn receive(
    to: &mut store::StateMachine,
    from: &mut super::snapshot::SnapshotFile,
) -> Box<super::snapshot::SnapshotFile> {
    use openraft::storage::RaftStateMachine;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut bytes = Vec::new();
    from.read_to_end(&mut bytes).await.unwrap();
    let mut into = to.begin_receiving_snapshot().await.unwrap();
    for chunk in bytes.chunks(1000) {
        into.write_all(chunk).await.unwrap();
    }
    into.shutdown().await.unwrap();
    into
}

#[tokio::test]
async fn a_snapshot_is_built_into_a_file_sent_and_installed_and_unpins_what_disappeared() {
    use openraft::storage::RaftStateMachine;
    let (leader_dir, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Pin::new(test_cid(1), PinOptions::default());
    let b = Pin::new(test_cid(2), PinOptions::default());
    let c = Pin::new(test_cid(3), PinOptions::default());
    // Meanwhile on the leader, a was unpinned and c pinned.
    let (_, mut leader, _) = machine(leader_dir.path(), &[b.clone(), c.clone()]).await;
    let mut built = build(&mut leader).await;
    let on_disk: Vec<_> = std::fs::read_dir(super::snapshot::dir(&leader_dir.path().join("raft")))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(on_disk.len(), 1, "one snapshot file: {on_disk:?}");
    assert!(on_disk[0].ends_with(".snap"));
    // Before sleeping, this peer had a and b.
    let (pool, mut sm, mut changes) = machine(dir.path(), &[a.clone(), b.clone()]).await;
    let state = store::PinsTable::new(pool.clone());
    let received = receive(&mut sm, &mut built.snapshot).await;
    sm.install_snapshot(&built.meta, received).await.unwrap();
    assert_eq!(changes.recv().await, Some(StateChange::Unpinned(a.cid)));
    assert_eq!(changes.recv().await, Some(StateChange::Reset));
    let now: Vec<Cid> = list(&state).await.into_iter().map(|p| p.cid).collect();
    assert_eq!(now, vec![test_cid(2), test_cid(3)]);
    let current = sm.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta, built.meta);
    // A crash right after the install still unpins a from IPFS at the next start.
    assert_eq!(store::logged_unpins(&pool).await.unwrap(), vec![a.cid]);
}

#[tokio::test]
async fn a_damaged_snapshot_is_refused_and_changes_nothing() {
    use openraft::storage::RaftStateMachine;
    use tokio::io::AsyncWriteExt;
    let (leader_dir, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let pins: Vec<Pin> = (0..3000)
        .map(|n| Pin::new(test_cid(n), PinOptions::default()))
        .collect();
    let (_, mut leader, _) = machine(leader_dir.path(), &pins).await;
    let mut built = build(&mut leader).await;
    let mine = vec![Pin::new(test_cid(9999), PinOptions::default())];
    let (pool, mut sm, mut changes) = machine(dir.path(), &mine).await;
    let state = store::PinsTable::new(pool.clone());
    let received = receive(&mut sm, &mut built.snapshot).await;
    // Truncated in transit.
    let len = std::fs::metadata(received.path()).unwrap().len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(received.path())
        .unwrap();
    f.set_len(len - 100).unwrap();
    drop(f);
    let mut received = received;
    received.flush().await.unwrap();
    assert!(sm.install_snapshot(&built.meta, received).await.is_err());
    assert_eq!(list(&state).await, mine);
    assert!(changes.try_recv().is_none(), "no change was announced");
    assert!(sm.get_current_snapshot().await.unwrap().is_none());
    let (applied, _) = sm.applied_state().await.unwrap();
    assert_eq!(applied, None);
}

#[tokio::test]
async fn a_database_with_a_purged_log_and_no_snapshot_file_gets_one_before_raft_starts() {
    use openraft::storage::RaftStateMachine;
    let dir = tempfile::tempdir().unwrap();
    let db = db_path(dir.path());
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let pool = store::open(&db).await.unwrap();
    let pins = vec![Pin::new(test_cid(5), PinOptions::default())];
    store::replace_pins(&pool, &pins).await.unwrap();
    // As an older version left it: the snapshot as one JSON value, the log purged.
    for (key, value) in [
        ("snapshot", r#"{"meta":{},"data":"{\"pins\":[]}"}"#),
        (
            "last_purged",
            r#"{"leader_id":{"term":1,"node_id":0},"index":3}"#,
        ),
    ] {
        sqlx::query("INSERT INTO kv (key, value) VALUES (?, ?)")
            .bind(key)
            .bind(value)
            .execute(&pool)
            .await
            .unwrap();
    }
    let snapshots = super::snapshot::dir(db.parent().unwrap());
    std::fs::create_dir_all(&snapshots).unwrap();
    std::fs::write(snapshots.join("receive-1.part"), b"half").unwrap();
    store::ensure_snapshot(&pool, &snapshots).await.unwrap();
    let files: Vec<String> = std::fs::read_dir(&snapshots)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].ends_with(".snap"));
    let legacy: Option<(String,)> = sqlx::query_as("SELECT value FROM kv WHERE key = 'snapshot'")
        .fetch_optional(&pool)
        .await
        .unwrap();
    assert!(legacy.is_none());
    let (tx, _changes) = crate::state::feed::feed(1024);
    let mut sm = store::StateMachine::new(pool, snapshots, tx);
    let current = sm.get_current_snapshot().await.unwrap().unwrap();
    let mut records = current.snapshot.records().await.unwrap();
    assert_eq!(records.next().await.unwrap().unwrap().0, pins[0]);
    assert!(records.next().await.unwrap().is_none());
}

#[tokio::test]
async fn a_snapshot_whose_file_went_missing_is_forgotten_or_rebuilt_never_fatal() {
    use openraft::storage::RaftStateMachine;
    let dir = tempfile::tempdir().unwrap();
    let pins = vec![Pin::new(test_cid(8), PinOptions::default())];
    let (pool, mut sm, _changes) = machine(dir.path(), &pins).await;
    build(&mut sm).await;
    let snapshots = super::snapshot::dir(&dir.path().join("raft"));
    let remove_files = || {
        for e in std::fs::read_dir(&snapshots).unwrap() {
            std::fs::remove_file(e.unwrap().path()).unwrap();
        }
    };
    // Deleted behind the peer's back: asking for it is no error.
    remove_files();
    assert!(sm.get_current_snapshot().await.unwrap().is_none());
    // At the next start, with the log not purged, the record is dropped.
    store::ensure_snapshot(&pool, &snapshots).await.unwrap();
    assert!(sm.get_current_snapshot().await.unwrap().is_none());
    // With the log purged, a new one is built.
    build(&mut sm).await;
    remove_files();
    sqlx::query("INSERT INTO kv (key, value) VALUES ('last_purged', ?)")
        .bind(r#"{"leader_id":{"term":1,"node_id":0},"index":3}"#)
        .execute(&pool)
        .await
        .unwrap();
    store::ensure_snapshot(&pool, &snapshots).await.unwrap();
    let current = sm.get_current_snapshot().await.unwrap().unwrap();
    let mut records = current.snapshot.records().await.unwrap();
    assert_eq!(records.next().await.unwrap().unwrap().0, pins[0]);
}

#[tokio::test]
async fn a_batch_of_pins_and_unpins_applies_in_log_order() {
    use super::typ::{Op, TypeConfig};
    use openraft::storage::RaftStateMachine;
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
    let dir = tempfile::tempdir().unwrap();
    let (pool, mut sm, _changes) = machine(dir.path(), &[]).await;
    let state = store::PinsTable::new(pool.clone());
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

/// The counts as a walk of the whole pinset finds them, for `peer`.
async fn walked(state: &dyn Pinset, peer: &str) -> crate::components::PinCounts {
    let pins = list(state).await;
    crate::components::PinCounts {
        total: pins.len() as u64,
        allocated_here: pins.iter().filter(|p| p.is_allocated_to(peer)).count() as u64,
    }
}

#[tokio::test]
async fn the_pinsets_counts_stay_true_through_applies_imports_snapshots_and_another_peer_id() {
    use super::typ::{Op, TypeConfig};
    use openraft::storage::RaftStateMachine;
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
    let (me, other) = ("12D3KooWMe", "12D3KooWOther");
    let allocated = |n: u32, to: &[&str]| {
        let mut p = Pin::new(test_cid(n), PinOptions::default());
        p.allocations = to.iter().map(|s| s.to_string()).collect();
        p
    };
    let imported = vec![
        allocated(1, &[]),
        allocated(2, &[me]),
        allocated(3, &[other]),
        allocated(4, &[other, me]),
        // A peer id that contains this one's is not this one.
        allocated(5, &["12D3KooWMeToo"]),
    ];
    let dir = tempfile::tempdir().unwrap();
    let (pool, mut sm, _changes) = machine(dir.path(), &imported).await;
    store::count_for(&pool, me).await.unwrap();
    let state = store::PinsTable::new(pool.clone());
    let expect = |total, allocated_here| crate::components::PinCounts {
        total,
        allocated_here,
    };
    assert_eq!(state.counts().await.unwrap(), expect(5, 3));
    assert_eq!(state.counts().await.unwrap(), walked(&state, me).await);

    // Applied entries: a new pin here, one moved away, one moved here, one unpinned, one
    // pinned and unpinned in the same batch, one unpinned that never was.
    let ops = vec![
        Op::Pin(allocated(6, &[me])),
        Op::Pin(allocated(2, &[other])),
        Op::Pin(allocated(3, &[me])),
        Op::Unpin(test_cid(1)),
        Op::Pin(allocated(7, &[])),
        Op::Unpin(test_cid(7)),
        Op::Unpin(test_cid(8)),
        Op::Pin(allocated(4, &[other, me])),
    ];
    let entries: Vec<Entry<TypeConfig>> = ops
        .into_iter()
        .enumerate()
        .map(|(i, op)| Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 0), i as u64 + 1),
            payload: EntryPayload::Normal(op),
        })
        .collect();
    sm.apply(entries).await.unwrap();
    assert_eq!(state.counts().await.unwrap(), expect(5, 3));
    assert_eq!(state.counts().await.unwrap(), walked(&state, me).await);

    // A snapshot from a leader whose pinset differs replaces the table and its counts.
    let leader_dir = tempfile::tempdir().unwrap();
    let theirs = vec![
        allocated(10, &[me]),
        allocated(11, &[other]),
        allocated(12, &[]),
    ];
    let (_, mut leader, _) = machine(leader_dir.path(), &theirs).await;
    let mut built = build(&mut leader).await;
    let received = receive(&mut sm, &mut built.snapshot).await;
    sm.install_snapshot(&built.meta, received).await.unwrap();
    assert_eq!(state.counts().await.unwrap(), expect(3, 2));
    // And the triggers came with the new table: applies after it are counted too.
    let more = vec![Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 0), 100),
        payload: EntryPayload::Normal(Op::Pin(allocated(13, &[me]))),
    }];
    sm.apply(more).await.unwrap();
    assert_eq!(state.counts().await.unwrap(), expect(4, 3));
    assert_eq!(state.counts().await.unwrap(), walked(&state, me).await);

    // The same database kept for another peer id is counted again for it.
    store::count_for(&pool, other).await.unwrap();
    assert_eq!(state.counts().await.unwrap(), walked(&state, other).await);
    assert_eq!(state.counts().await.unwrap(), expect(4, 2));

    // A database from before the counts gets them when it is opened.
    for stmt in [
        "DROP TRIGGER pins_counted_insert_v1",
        "DROP TRIGGER pins_counted_update_v1",
        "DROP TRIGGER pins_counted_delete_v1",
        "DROP TABLE pin_counts",
        // Made before versions were recorded (0.1.0): every migration runs on it.
        "DROP TABLE _sqlx_migrations",
        "DROP TABLE crdt_blocks",
        "DROP TABLE crdt_links",
        "DROP TABLE crdt_heads",
        "DROP TABLE crdt_wanted",
        "DROP TABLE crdt_elems",
        "DROP TABLE crdt_tombs",
        "DROP TABLE crdt_batch",
        "DROP TABLE crdt_ckpt_blocks",
    ] {
        sqlx::query(stmt).execute(&pool).await.unwrap();
    }
    drop((sm, state));
    pool.close().await;
    let pool = store::open(&db_path(dir.path())).await.unwrap();
    store::count_for(&pool, me).await.unwrap();
    let state = store::PinsTable::new(pool.clone());
    assert_eq!(state.counts().await.unwrap(), expect(4, 3));
    sqlx::query("DELETE FROM pins WHERE cid = ?")
        .bind(test_cid(13).to_string())
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        state.counts().await.unwrap(),
        expect(3, 2),
        "counted from then on"
    );
}

/// The whole pinset, for assertions (CID order).
async fn list(state: &dyn Pinset) -> Vec<Pin> {
    use futures::TryStreamExt;
    state.stream().try_collect().await.unwrap()
}

/// Column `col` of every row `sql` answers, as text.
async fn text_column(pool: &sqlx::SqlitePool, sql: &str, col: usize) -> Vec<String> {
    use sqlx::Row;
    sqlx::query(sql)
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>(col))
        .collect()
}

/// The pinset's expiry indexes, and the query plan of [`Pinset::expired`]'s query.
async fn expiry_indexes(pool: &sqlx::SqlitePool) -> Vec<String> {
    text_column(pool, "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'pins' AND name GLOB '*_expiry-*'", 0).await
}

#[tokio::test]
async fn expired_pins_are_found_through_an_index_that_survives_imports_and_snapshots() {
    use openraft::storage::RaftStateMachine;
    let expiring = |n: u32, secs: i64| {
        Pin::new(
            test_cid(n),
            PinOptions {
                expire_at: Some(chrono::Utc::now() + chrono::Duration::seconds(secs)),
                ..Default::default()
            },
        )
    };
    let pins = vec![
        expiring(1, -60),
        expiring(2, 3600),
        Pin::new(test_cid(3), PinOptions::default()),
        expiring(4, -1),
    ];
    let (leader_dir, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // An import (stage + swap) keeps an index on the new table.
    let (pool, mut sm, _changes) = machine(dir.path(), &pins).await;
    assert_eq!(expiry_indexes(&pool).await.len(), 1);
    let state = store::PinsTable::new(pool.clone());
    let mut want = vec![test_cid(1), test_cid(4)];
    want.sort_by_key(Cid::key);
    let found = state.expired(chrono::Utc::now(), None, 10).await.unwrap();
    assert_eq!(found, want, "in CID order");
    let first = state.expired(chrono::Utc::now(), None, 1).await.unwrap();
    assert_eq!(first, vec![want[0]], "limit");
    let next = state
        .expired(chrono::Utc::now(), Some(want[0].key()), 10)
        .await
        .unwrap();
    assert_eq!(next, vec![want[1]], "after a cursor");
    use sqlx::Row;
    let plan: Vec<String> = sqlx::query(
        "EXPLAIN QUERY PLAN SELECT cid FROM pins WHERE json_extract(pin, '$.expire_at') <> '0001-01-01T00:00:00Z' AND julianday(json_extract(pin, '$.expire_at')) <= julianday(?) LIMIT 10",
    )
    .bind("2030-01-01T00:00:00Z")
    .fetch_all(&pool)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get::<String, _>(3))
    .collect();
    assert!(plan.iter().any(|p| p.contains("USING INDEX")), "{plan:?}");
    // So does installing a snapshot (the incoming table replaces the pins table).
    let (_, mut leader, _) = machine(leader_dir.path(), &pins[1..]).await;
    let mut built = build(&mut leader).await;
    let received = receive(&mut sm, &mut built.snapshot).await;
    sm.install_snapshot(&built.meta, received).await.unwrap();
    assert_eq!(expiry_indexes(&pool).await.len(), 1);
    assert_eq!(
        state.expired(chrono::Utc::now(), None, 10).await.unwrap(),
        vec![test_cid(4)]
    );
}

/// Holding the secret is not membership: a peer that is not a member cannot commit, remove,
/// change roles or tell a member it was removed, nor join for another peer; it may still
/// ask what joining needs.
#[tokio::test]
async fn a_stranger_with_the_secret_can_only_ask_to_join() {
    use super::network::{LeaderOp, RaftRequest, RaftResponse, RaftService};
    use super::typ::{ClusterNode, Op};
    let dir = tempfile::tempdir().unwrap();
    let me = Identity::generate().peer_id();
    let (c, _changes) = start(dir.path(), me).await;
    ready(&c).await;
    let stranger = Identity::generate().peer_id().to_string();
    assert!(c.is_member(&me.to_string()) && !c.is_member(&stranger));
    let pin = Pin::new(test_cid(5), PinOptions::default());
    let refused = [
        RaftRequest::Leader(LeaderOp::Commit(Op::Pin(pin))),
        RaftRequest::Leader(LeaderOp::Remove {
            peer_id: me.to_string(),
        }),
        RaftRequest::Leader(LeaderOp::SetRole {
            peer_id: me.to_string(),
            voter: false,
        }),
        RaftRequest::Leader(LeaderOp::ReadIndex),
        RaftRequest::Removed(None),
        // A join in another peer's name (the member's own, to demote it).
        RaftRequest::Join {
            node: ClusterNode {
                peer_id: me.to_string(),
                addrs: Vec::new(),
                history: None,
            },
            follower: true,
        },
    ];
    for req in refused {
        let what = format!("{req:?}");
        match c.serve(&stranger, req).await {
            RaftResponse::Done(Err(ConsensusError::Refused(why))) => {
                assert!(why.contains(&stranger), "{what}: {why}")
            }
            other => panic!("{what}: {other:?}"),
        }
    }
    assert!(c.is_ready(), "the member was told nothing");
    assert_eq!(c.peers(), vec![me.to_string()]);
    assert!(list(&*c.state()).await.is_empty(), "nothing committed");
    // What joining needs stays open.
    assert!(matches!(
        c.serve(&stranger, RaftRequest::Members).await,
        RaftResponse::Members(..)
    ));
    assert!(matches!(
        c.serve(&stranger, RaftRequest::State).await,
        RaftResponse::State(_)
    ));
}

/// Raft's own messages from a holder of the secret that is no member: a vote request with a
/// huge term, a leader's heartbeat, one in a member's name. All refused before Raft sees
/// them: the term does not move, the leader stays.
#[tokio::test]
async fn a_stranger_cannot_depose_the_leader_or_feed_a_log() {
    use super::network::{RaftRequest, RaftResponse, RaftService};
    use openraft::raft::{AppendEntriesRequest, VoteRequest};
    use openraft::Vote;
    let dir = tempfile::tempdir().unwrap();
    let me = Identity::generate().peer_id();
    let (c, _changes) = start(dir.path(), me).await;
    ready(&c).await;
    let term = c.raft().metrics().borrow().current_term;
    let stranger = Identity::generate().peer_id();
    let (sid, mid) = (node_id(&stranger), node_id(&me));
    let heartbeat = |id| AppendEntriesRequest {
        vote: Vote::new_committed(term + 100, id),
        prev_log_id: None,
        entries: Vec::new(),
        leader_commit: None,
    };
    let requests = [
        RaftRequest::Vote(VoteRequest::new(Vote::new(term + 100, sid), None), None),
        RaftRequest::AppendEntries(heartbeat(sid), None),
        // In the member's own name.
        RaftRequest::AppendEntries(heartbeat(mid), None),
        RaftRequest::Vote(VoteRequest::new(Vote::new(term + 100, mid), None), None),
    ];
    for req in requests {
        let what = format!("{req:?}");
        match c.serve(&stranger.to_string(), req).await {
            RaftResponse::Refused(why) => assert!(why.contains(&stranger.to_string()), "{why}"),
            other => panic!("{what}: {other:?}"),
        }
    }
    let m = c.raft().metrics().borrow().clone();
    assert_eq!(m.current_term, term, "the term did not move");
    assert_eq!(m.current_leader, Some(mid), "the leader stayed");
}

/// Found by nemesis seed 16: a wiped peer rejoining had been the leader, and a member that
/// still took it for one forwarded a join to it. A peer that knows no membership yet cannot
/// tell members from strangers: it must answer as a non-leader (which the member retries
/// elsewhere), not refuse for good, which ended the join and the daemon.
#[tokio::test]
async fn a_peer_that_knows_no_membership_does_not_refuse_members_for_good() {
    use super::network::{LeaderOp, RaftRequest, RaftResponse, RaftService};
    let dir = tempfile::tempdir().unwrap();
    let (tx, _rx) = crate::state::feed::feed(1024);
    let c = RaftConsensus::start(
        ConsensusOptions {
            folder: dir.path().to_path_buf(),
            config: RaftConfig::default(),
            peer_id: Identity::generate().peer_id(),
            addrs: Vec::new(),
            transport: Arc::new(NoTransport),
            changes: tx,
            bootstrap: Bootstrap::Join,
            learner_is_ready: true,
        },
        &Tasks::new(),
    )
    .await
    .unwrap();
    let member = Identity::generate().peer_id().to_string();
    match c
        .serve(&member, RaftRequest::Leader(LeaderOp::ReadIndex))
        .await
    {
        RaftResponse::Done(Err(e)) => assert!(
            !matches!(e, ConsensusError::Refused(_)),
            "refused for good: {e:?}"
        ),
        other => panic!("{other:?}"),
    }
}

/// What a listing of the pinset sends: a row written in this version's format exactly as it
/// is stored (not parsed and encoded again), a row of another format (or from a database
/// from before rows carried one) read and encoded anew; a type filter matched on the stored
/// text; and a received snapshot stored in this version's format whatever the sender's.
#[tokio::test]
async fn listings_pass_stored_pins_through_and_encode_rows_of_other_formats_anew() {
    use crate::types::PinType;
    use futures::TryStreamExt;
    use openraft::storage::RaftStateMachine;
    let named = |n: u32, name: &str| {
        Pin::new(
            test_cid(n),
            PinOptions {
                name: name.into(),
                ..Default::default()
            },
        )
    };
    let mut meta = named(2, "meta");
    meta.pin_type = PinType::MetaPin;
    let pins = vec![named(1, "one"), meta.clone(), named(3, "three")];
    let (leader_dir, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (pool, sm, _changes) = machine(dir.path(), &pins).await;
    let state = store::PinsTable::new(pool.clone());
    let json = |types: Vec<PinType>| {
        let state = state.clone();
        async move {
            let items = state
                .stream_json(&types)
                .try_collect::<Vec<String>>()
                .await
                .unwrap();
            items
                .iter()
                .flat_map(|i| i.split('\n'))
                .map(String::from)
                .collect::<Vec<String>>()
        }
    };
    // A page of rows in this version's format comes as one item, its pins one per line.
    let items: Vec<String> = state.stream_json(&[]).try_collect().await.unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0].lines().count(), 3);
    let encoded = |p: &Pin| serde_json::to_string(p).unwrap();
    let listed = list(&state).await;
    assert_eq!(
        json(vec![]).await,
        listed.iter().map(encoded).collect::<Vec<_>>()
    );
    assert_eq!(json(vec![PinType::MetaPin]).await, vec![encoded(&meta)]);
    // The same pin, spaced otherwise: passed through while its row says this format…
    let one = test_cid(1).to_string();
    let spaced = encoded(&pins[0]).replacen('{', "{ ", 1);
    sqlx::query("UPDATE pins SET pin = ? WHERE cid = ?")
        .bind(&spaced)
        .bind(&one)
        .execute(&pool)
        .await
        .unwrap();
    assert!(
        json(vec![]).await.contains(&spaced),
        "passed through as stored"
    );
    // …encoded anew when it says another.
    sqlx::query("UPDATE pins SET fmt = 0 WHERE cid = ?")
        .bind(&one)
        .execute(&pool)
        .await
        .unwrap();
    let anew = json(vec![]).await;
    assert!(anew.contains(&encoded(&pins[0])) && !anew.contains(&spaced));
    // A database from before the format column: opened, its rows are of format 0.
    drop((sm, state));
    sqlx::query("ALTER TABLE pins DROP COLUMN fmt")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let pool = store::open(&db_path(dir.path())).await.unwrap();
    let state = store::PinsTable::new(pool.clone());
    let formats: Vec<i64> = sqlx::query_scalar("SELECT fmt FROM pins ORDER BY cid")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(formats, vec![0, 0, 0]);
    let listed: Vec<String> = state.stream_json(&[]).try_collect().await.unwrap();
    let listed: Vec<&str> = listed.iter().flat_map(|i| i.split('\n')).collect();
    assert_eq!(
        listed,
        list(&state).await.iter().map(encoded).collect::<Vec<_>>()
    );
    // A snapshot whose rows are not in this format (here: spaced, format 0) is stored in it.
    let (leader_pool, mut leader, _) = machine(leader_dir.path(), &pins).await;
    sqlx::query("UPDATE pins SET pin = ?, fmt = 0 WHERE cid = ?")
        .bind(&spaced)
        .bind(&one)
        .execute(&leader_pool)
        .await
        .unwrap();
    let snapshots = super::snapshot::dir(db_path(dir.path()).parent().unwrap());
    let (tx, _changes) = crate::state::feed::feed(1024);
    let mut sm = store::StateMachine::new(pool.clone(), snapshots, tx);
    let mut built = build(&mut leader).await;
    let received = receive(&mut sm, &mut built.snapshot).await;
    sm.install_snapshot(&built.meta, received).await.unwrap();
    let rows: Vec<(String, i64)> = sqlx::query_as("SELECT pin, fmt FROM pins ORDER BY cid")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        rows,
        pins.iter()
            .map(|p| (encoded(p), store::PIN_FORMAT))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_listing_of_several_pages_hands_over_a_page_at_a_time_in_order() {
    use futures::TryStreamExt;
    let pins: Vec<Pin> = (0..2345)
        .map(|n| Pin::new(test_cid(n), PinOptions::default()))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let (pool, _sm, _changes) = machine(dir.path(), &pins).await;
    let state = store::PinsTable::new(pool.clone());
    let want: Vec<String> = list(&state)
        .await
        .iter()
        .map(|p| serde_json::to_string(p).unwrap())
        .collect();
    // A row of another format on the second page: that page is read row by row.
    sqlx::query("UPDATE pins SET fmt = 0 WHERE cid = (SELECT cid FROM pins ORDER BY cid LIMIT 1 OFFSET 1500)")
        .execute(&pool)
        .await
        .unwrap();
    let items: Vec<String> = state.stream_json(&[]).try_collect().await.unwrap();
    assert_eq!(
        items.iter().map(|i| i.lines().count()).collect::<Vec<_>>(),
        vec![1000, 1000, 345],
        "a page per item"
    );
    let listed: Vec<&str> = items.iter().flat_map(|i| i.split('\n')).collect();
    assert_eq!(listed.len(), want.len());
    assert!(
        listed.iter().zip(&want).all(|(a, b)| a == b),
        "every pin once, in order"
    );
}

/// The stored rows of [`store::PIN_FORMAT`] are sent as they are: a change to how a pin
/// serializes must come with a new format number (raise it, then update this text).
#[test]
fn the_stored_pin_format_is_the_apis() {
    let mut pin = Pin::new(
        test_cid(7),
        PinOptions {
            name: "n".into(),
            metadata: [("k".to_string(), "v".to_string())].into(),
            ..Default::default()
        },
    );
    pin.timestamp = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    pin.allocations = vec!["12D3KooWPeer".into()];
    assert_eq!(
        (
            store::PIN_FORMAT,
            serde_json::to_string(&pin).unwrap().as_str()
        ),
        (
            1,
            r#"{"cid":"QmNLei7TRXHpF9em5YMdhgKqZcxzRoAwKmYpXLzsCMsZod","type":"pin","allocations":["12D3KooWPeer"],"max_depth":-1,"reference":null,"timestamp":"2023-11-14T22:13:20Z","replication_factor_min":0,"replication_factor_max":0,"name":"n","mode":"recursive","shard_size":0,"user_allocations":[],"expire_at":"0001-01-01T00:00:00Z","metadata":{"k":"v"},"pin_update":null,"origins":[]}"#
        )
    );
}

/// SQLite's plan for `sql`, a line per step.
async fn query_plan(pool: &sqlx::SqlitePool, sql: &str) -> Vec<String> {
    text_column(pool, &format!("EXPLAIN QUERY PLAN {sql}"), 3).await
}

/// Every page of `q` from `state`, `limit` at a time, by following `next`.
async fn browse_all(state: &dyn Pinset, mut q: crate::components::Browse) -> Vec<String> {
    let mut seen = Vec::new();
    for _ in 0..100 {
        let page = state.browse(&q).await.unwrap();
        seen.extend(page.pins.iter().map(|p| match p.options.name.as_str() {
            "" => p.cid.to_string(),
            n => n.to_string(),
        }));
        match page.next {
            Some(next) => q.after = Some(next),
            None => return seen,
        }
    }
    panic!("browsing never ended");
}

#[tokio::test]
async fn browsing_orders_and_searches_through_indexes_page_by_page_as_the_model_does() {
    use crate::components::{Browse, PinMatch, PinOrder};
    use openraft::storage::RaftStateMachine;
    let names = [
        "Beta",
        "alpha",
        "",
        "alphabet",
        "zed",
        "",
        "Alpha",
        "ALPHA-2",
        "",
        "été",
        "same",
        "same",
        "same",
        "a\u{10FFFF}z",
    ];
    let pins: Vec<Pin> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            Pin::new(
                test_cid(i as u32 + 1),
                PinOptions {
                    name: n.to_string(),
                    ..Default::default()
                },
            )
        })
        .collect();
    let (leader_dir, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (pool, mut sm, _changes) = machine(dir.path(), &pins).await;
    let state = store::PinsTable::new(pool.clone());
    let model = crate::state::StateHandle::new(pins.clone());
    let cid3 = test_cid(3).to_string();
    let asks = [
        (PinOrder::Cid, PinMatch::All),
        (PinOrder::CidDesc, PinMatch::All),
        (PinOrder::Name, PinMatch::All),
        (PinOrder::Cid, PinMatch::NamePrefix("ALP".into())),
        (PinOrder::Name, PinMatch::NamePrefix("alpha".into())),
        (PinOrder::Name, PinMatch::NamePrefix("nobody".into())),
        (
            PinOrder::Cid,
            PinMatch::CidPrefix(cid3[..cid3.len() - 1].into()),
        ),
        (PinOrder::Cid, PinMatch::CidPrefix(cid3.clone())),
        (PinOrder::Name, PinMatch::NamePrefix("SAME".into())),
        (PinOrder::Name, PinMatch::NamePrefix("a\u{10FFFF}".into())),
    ];
    for (order, matching) in asks {
        for limit in [1, 2, 3, 100] {
            let q = Browse {
                order,
                matching: matching.clone(),
                after: None,
                limit,
            };
            let got = browse_all(&state, q.clone()).await;
            assert_eq!(
                got,
                browse_all(&model, q).await,
                "{order:?} {matching:?} by {limit}"
            );
        }
    }
    // What the model says, spelled out once.
    let by_name = browse_all(
        &state,
        Browse {
            order: PinOrder::Name,
            limit: 4,
            ..Default::default()
        },
    )
    .await;
    let mut alphas = by_name[..4].to_vec();
    alphas.sort();
    assert_eq!(alphas, ["ALPHA-2", "Alpha", "alpha", "alphabet"]);
    assert_eq!(
        &by_name[4..11],
        ["a\u{10FFFF}z", "Beta", "same", "same", "same", "zed", "été"]
    );
    assert_eq!(by_name.len(), 14, "the three unnamed pins come last");
    // A name prefix ending in the last character there is still a range.
    let top = Browse {
        matching: PinMatch::NamePrefix("a\u{10FFFF}".into()),
        limit: 5,
        ..Default::default()
    };
    assert_eq!(browse_all(&state, top).await, ["a\u{10FFFF}z"]);
    // A cursor of one listing is refused by another.
    let first = state
        .browse(&Browse {
            order: PinOrder::Cid,
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    let other = Browse {
        order: PinOrder::CidDesc,
        after: first.next,
        limit: 2,
        ..Default::default()
    };
    assert!(matches!(
        state.browse(&other).await,
        Err(ConsensusError::BadInput(_))
    ));
    let prefix = Browse {
        order: PinOrder::Cid,
        matching: PinMatch::CidPrefix(cid3.clone()),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(browse_all(&state, prefix).await, [cid3]);
    // A cursor from elsewhere is refused as bad input.
    let bad = Browse {
        after: Some("{".into()),
        limit: 5,
        ..Default::default()
    };
    assert!(matches!(
        state.browse(&bad).await,
        Err(ConsensusError::BadInput(_))
    ));
    // The searches go through indexes, not the whole table.
    let name = store::pins_name_sql();
    let named = store::pins_named_sql();
    // (Each seeks to where it starts and ends: SQLite's plan names both bounds.)
    for (sql, seek) in [
        (format!("SELECT cid FROM pins WHERE {named} AND {name} >= 'a' AND {name} < 'b' ORDER BY {name}, cid LIMIT 5"), "(<expr>>? AND <expr><?)"),
        (format!("SELECT cid FROM pins WHERE {named} AND {name} > 'a' ORDER BY {name}, cid LIMIT 5"), "(<expr>>?)"),
        (format!("SELECT cid FROM pins WHERE {named} AND {name} = 'a' AND cid > 'b' ORDER BY cid LIMIT 5"), "(<expr>=? AND cid>?)"),
        ("SELECT cid FROM pins WHERE cid >= 'bafy' AND cid < 'bafz' ORDER BY cid LIMIT 5".to_string(), "(cid>? AND cid<?)"),
    ] {
        let plan = query_plan(&pool, &sql).await;
        assert!(
            plan.iter().all(|p| !p.contains("TEMP B-TREE"))
                && plan.iter().any(|p| p.starts_with("SEARCH") && p.ends_with(seek)),
            "{sql}: {plan:?}"
        );
    }
    // A pin applied later is in the index; after a snapshot is installed there is still one.
    let later = Pin::new(
        test_cid(42),
        PinOptions {
            name: "aardvark".into(),
            ..Default::default()
        },
    );
    let (_, mut leader, _) = machine(leader_dir.path(), std::slice::from_ref(&later)).await;
    let mut built = build(&mut leader).await;
    let received = receive(&mut sm, &mut built.snapshot).await;
    sm.install_snapshot(&built.meta, received).await.unwrap();
    let indexes: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'pins' AND name GLOB '*_names-*'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(indexes, 1);
    let q = Browse {
        matching: PinMatch::NamePrefix("AARD".into()),
        limit: 5,
        ..Default::default()
    };
    assert_eq!(browse_all(&state, q.clone()).await, ["aardvark"]);
    // A database from before the index gets it when it is opened.
    let index: String = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'pins' AND name GLOB '*_names-*'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    sqlx::query(&format!("DROP INDEX \"{index}\""))
        .execute(&pool)
        .await
        .unwrap();
    drop((sm, state));
    pool.close().await;
    let _writer = store::open(&db_path(dir.path())).await.unwrap();
    // (The readers, as the peer's: `EXPLAIN` on a connection opened before the index was
    // made would plan with the schema it read then.)
    let pool = store::open_readers(&db_path(dir.path())).await.unwrap();
    let plan = query_plan(
        &pool,
        &format!(
            "SELECT cid FROM pins WHERE {named} AND {name} > 'a' ORDER BY {name}, cid LIMIT 5"
        ),
    )
    .await;
    assert!(
        plan.iter()
            .any(|p| p.contains("SEARCH pins USING INDEX") && p.contains("_names-")),
        "{plan:?}"
    );
    assert_eq!(
        browse_all(&store::PinsTable::new(pool), q).await,
        ["aardvark"]
    );
}

#[test]
fn the_end_of_a_prefix_range_is_its_successor() {
    use crate::components::prefix_end;
    assert_eq!(prefix_end("bafy").as_deref(), Some("bafz"));
    assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
    assert_eq!(prefix_end("\u{D7FF}").as_deref(), Some("\u{E000}"));
    assert_eq!(prefix_end("\u{10FFFF}"), None);
    assert_eq!(prefix_end(""), None);
}

#[tokio::test]
async fn the_unnamed_pins_of_a_listing_by_name_come_in_bounded_looks() {
    use crate::components::{Browse, PinOrder};
    // More named pins than one look covers, and the unnamed ones among them by CID.
    let n = 20_005u32;
    let pins: Vec<Pin> = (0..n)
        .map(|i| {
            Pin::new(
                test_cid(i),
                PinOptions {
                    name: if i % 10_000 == 7 {
                        String::new()
                    } else {
                        format!("n{i}")
                    },
                    ..Default::default()
                },
            )
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let (pool, _sm, _changes) = machine(dir.path(), &pins).await;
    let state = store::PinsTable::new(pool);
    let mut q = Browse {
        order: PinOrder::Name,
        limit: 1000,
        ..Default::default()
    };
    let (mut seen, mut looks, mut max_looked) = (Vec::new(), 0, 0);
    loop {
        let page = state.browse(&q).await.unwrap();
        looks += 1;
        max_looked = max_looked.max(page.looked);
        seen.extend(page.pins.into_iter().map(|p| p.options.name));
        match page.next {
            Some(next) => q.after = Some(next),
            None => break,
        }
        assert!(looks < 100, "never ended");
    }
    assert_eq!(seen.len(), n as usize, "every pin once");
    let unnamed = seen.iter().filter(|s| s.is_empty()).count();
    assert_eq!(unnamed, 2);
    assert!(
        seen[seen.len() - 2..].iter().all(String::is_empty),
        "unnamed last"
    );
    assert!(
        max_looked <= 20_000 + 1000,
        "each look bounded: {max_looked}"
    );
}

/// What release 0.1.0 left on disk (`tests/fixtures/upgrade/0.1.0`, made by its binaries).
fn fixture_of_0_1_0() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/upgrade/0.1.0")
}

/// Every pin 0.1.0 acknowledged (`pins.json`), by CID.
fn acknowledged_by_0_1_0() -> std::collections::BTreeMap<String, Pin> {
    let text = std::fs::read_to_string(fixture_of_0_1_0().join("pins.json")).unwrap();
    let pins: Vec<Pin> = serde_json::from_str(&text).unwrap();
    pins.into_iter().map(|p| (p.cid.to_string(), p)).collect()
}

/// The tables and columns of a database (what a migration must make the same for a database
/// of an older release and a new one).
async fn tables(pool: &sqlx::SqlitePool) -> Vec<String> {
    let names = text_column(
        pool,
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
        0,
    )
    .await;
    let mut out = Vec::new();
    for t in names {
        let cols = text_column(pool, &format!("SELECT name || ' ' || type || ' ' || \"notnull\" || ' ' || COALESCE(dflt_value, '') || ' ' || pk FROM pragma_table_info('{t}')"), 0).await;
        out.push(format!("{t}({})", cols.join(", ")));
    }
    out
}

/// Each migration on a copy of a real database of 0.1.0 (its voter's `raft.sqlite`, as the
/// release left it at a stop): the database ends at this version's schema, with the tables
/// and columns of a new one, and every pin, log entry and snapshot 0.1.0 wrote reads back.
#[tokio::test]
async fn the_migrations_bring_a_database_of_0_1_0_to_this_schema_with_everything_in_it() {
    use openraft::storage::RaftLogReader;
    let dir = tempfile::tempdir().unwrap();
    let raft_dir = dir.path().join("raft");
    std::fs::create_dir_all(raft_dir.join("snapshots")).unwrap();
    let from = fixture_of_0_1_0().join("peer1/raft");
    for f in ["raft.sqlite", "raft.sqlite-wal"] {
        std::fs::copy(from.join(f), raft_dir.join(f)).unwrap();
    }
    for e in std::fs::read_dir(from.join("snapshots")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), raft_dir.join("snapshots").join(e.file_name())).unwrap();
    }
    let db = db_path(dir.path());
    let pool = store::open(&db).await.unwrap();
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(applied, (1..=store::schema_version()).collect::<Vec<_>>());
    let fresh_dir = tempfile::tempdir().unwrap();
    let fresh_db = db_path(fresh_dir.path());
    std::fs::create_dir_all(fresh_db.parent().unwrap()).unwrap();
    let fresh = store::open(&fresh_db).await.unwrap();
    assert_eq!(tables(&pool).await, tables(&fresh).await);
    // Every pin, with its options.
    let state = store::PinsTable::new(pool.clone());
    let have: std::collections::BTreeMap<String, Pin> = list(&state)
        .await
        .into_iter()
        .map(|p| (p.cid.to_string(), p))
        .collect();
    assert_eq!(have, acknowledged_by_0_1_0());
    // Every log entry decodes (the log after the last snapshot, as openraft reads it).
    let (first, last): (i64, i64) = sqlx::query_as("SELECT MIN(idx), MAX(idx) FROM log")
        .fetch_one(&pool)
        .await
        .unwrap();
    let mut log = store::LogStore::new(pool.clone());
    let entries = log
        .try_get_log_entries(first as u64..=last as u64)
        .await
        .unwrap();
    assert_eq!(entries.len() as i64, last - first + 1);
    assert!(entries.len() > 5, "{} entries", entries.len());
    // The snapshot it recorded, and its file, hold pins of the pinset.
    let file: String = sqlx::query_scalar("SELECT file FROM snapshot WHERE id = 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    let mut records = snapshot::SnapshotFile::open(raft_dir.join("snapshots").join(&file))
        .await
        .unwrap()
        .records()
        .await
        .unwrap();
    let mut in_snapshot = 0;
    while let Some((pin, _)) = records.next().await.unwrap() {
        assert!(have.contains_key(&pin.cid.to_string()), "{}", pin.cid);
        in_snapshot += 1;
    }
    assert!(in_snapshot > 30, "{in_snapshot} pins in the snapshot");
    // Opened again, nothing more to do.
    pool.close().await;
    let pool = store::open(&db).await.unwrap();
    let again: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(again, store::schema_version());
}

/// 0.1.0's snapshot file on its own, and its `state export`, read with every pin.
#[tokio::test]
async fn a_snapshot_file_and_a_state_export_of_0_1_0_read_with_every_pin() {
    let want = acknowledged_by_0_1_0();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("s.snap");
    std::fs::copy(fixture_of_0_1_0().join("snapshot.icdsnap"), &copy).unwrap();
    let mut records = snapshot::SnapshotFile::open(copy)
        .await
        .unwrap()
        .records()
        .await
        .unwrap();
    let mut n = 0;
    while let Some((pin, _)) = records.next().await.unwrap() {
        assert!(want.contains_key(&pin.cid.to_string()), "{}", pin.cid);
        n += 1;
    }
    assert!(n > 30, "{n}");
    let export = std::fs::File::open(fixture_of_0_1_0().join("state-export.ndjson")).unwrap();
    let read: std::collections::BTreeMap<String, Pin> =
        crate::state::read_pins(std::io::BufReader::new(export))
            .map(|p| p.unwrap())
            .map(|p| (p.cid.to_string(), p))
            .collect();
    assert_eq!(read, want);
}
