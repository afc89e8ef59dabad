//! Checkpoints between real stores on disk: a new peer loads one and then fetches only the
//! deltas after it (and not the history below a concurrent delta); a load cut short resumes
//! after a restart fetching only what it lacked; checkpoints not signed by a trusted peer,
//! of another cluster or tampered with change nothing.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;

use super::*;
use crate::consensus::crdt::store::db_path;
use crate::consensus::crdt::sync::{self, FetchError, SyncOptions};
use crate::consensus::crdt::testing::FromStore;
use crate::consensus::crdt::wire::{Delta, Element};
use crate::state::feed::feed;
use crate::types::{Cid, Pin, PinOptions};

const TOPIC: &str = "the-topic";
const LONG: Duration = Duration::from_secs(10);

async fn open(dir: &Path) -> Arc<CrdtStore> {
    let (tx, _rx) = feed(1 << 12);
    Arc::new(CrdtStore::open(&db_path(dir), tx).await.unwrap())
}

fn pin_n(n: u32) -> Pin {
    let mut p = Pin::new(
        Cid(wire::block_cid(&n.to_be_bytes())),
        PinOptions {
            name: format!("pin {n}"),
            ..PinOptions::default()
        },
    );
    p.timestamp = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    p
}

fn add(p: &Pin) -> Delta {
    Delta {
        elements: vec![Element {
            key: wire::pin_key(&p.cid),
            id: String::new(),
            value: wire::pin_to_bytes(p).unwrap(),
        }],
        ..Delta::default()
    }
}

async fn remove(s: &CrdtStore, p: &Pin) -> cid::Cid {
    let tombstones = s.tombstones(&wire::pin_key(&p.cid)).await.unwrap();
    s.publish(Delta {
        tombstones,
        ..Delta::default()
    })
    .await
    .unwrap()
    .unwrap()
}

/// The pinset as (cid, pin JSON) rows.
async fn pins(s: &CrdtStore) -> Vec<(String, String)> {
    sqlx::query_as("SELECT cid, pin FROM pins ORDER BY cid")
        .fetch_all(s.pool())
        .await
        .unwrap()
}

async fn table(s: &CrdtStore, sql: &str) -> Vec<(String, String)> {
    sqlx::query_as(sql).fetch_all(s.pool()).await.unwrap()
}

/// Trusts the signer of key `k` only.
fn trusting(k: &Keypair) -> impl Fn(&PeerId) -> bool + Send + Sync {
    let signer = k.public().to_peer_id();
    move |p: &PeerId| *p == signer
}

/// Peer A: 40 pins, one block each, 6 of them removed, then a checkpoint in chunks of 2 KiB.
async fn a_with_checkpoint(dir: &Path, key: &Keypair) -> (Arc<CrdtStore>, Made) {
    let a = open(dir).await;
    for n in 0..40 {
        a.publish(add(&pin_n(n))).await.unwrap();
    }
    for n in 0..6 {
        remove(&a, &pin_n(n * 5)).await;
    }
    let made = make_cut_at(&a, TOPIC, key, 2048).await.unwrap().unwrap();
    (a, made)
}

#[tokio::test]
async fn a_new_peer_loads_a_checkpoint_and_fetches_only_the_deltas_after_it() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let key = Keypair::generate_ed25519();
    let (a, made) = a_with_checkpoint(da.path(), &key).await;
    assert_eq!(made.blocks, 46);
    assert_eq!(made.elems, 34);
    assert!(made.chunks > 2, "{made:?}");
    assert_eq!(current(&a).await.unwrap(), Some(made.cid));
    let at_checkpoint = pins(&a).await;
    assert_eq!(at_checkpoint.len(), 34);
    // After it: two pins, and a remove of a pin the checkpoint holds.
    for n in 100..102 {
        a.publish(add(&pin_n(n))).await.unwrap();
    }
    remove(&a, &pin_n(1)).await;

    let b = open(db.path()).await;
    let source = FromStore::new(a.clone());
    let loaded = load(&b, &made.cid, &source, TOPIC, &trusting(&key), LONG)
        .await
        .unwrap();
    assert_eq!(
        loaded,
        Loaded::Applied {
            pins: 34,
            blocks: 46
        }
    );
    assert_eq!(pins(&b).await, at_checkpoint);
    // A's heads at the checkpoint are B's.
    let (b_heads, b_height) = b.heads().await.unwrap();
    assert_eq!(b_height, 46);
    assert_eq!(b_heads.len(), 1);
    assert_eq!(
        table(&b, "SELECT cid, CAST(height AS TEXT) FROM crdt_heads").await,
        vec![(b_heads[0].to_string(), "46".to_string())]
    );
    // It serves the checkpoint on, and offers it.
    assert_eq!(current(&b).await.unwrap(), Some(made.cid));
    assert!(b.block(&made.cid).await.unwrap().is_some());
    // No block below the checkpoint was asked for: only its own blocks.
    assert_eq!(source.asked.lock().unwrap().len(), made.chunks + 1);

    // Then the deltas after it, and nothing below.
    source.asked.lock().unwrap().clear();
    for h in a.heads().await.unwrap().0 {
        b.want(&h).await.unwrap();
    }
    let opts = SyncOptions {
        workers: 4,
        fetch_timeout: LONG,
    };
    let r = sync::sync(&b, &source, opts).await.unwrap();
    assert_eq!((r.stored, r.failed, r.wanted), (3, 0, 0));
    assert_eq!(source.asked.lock().unwrap().len(), 3);
    assert_eq!(pins(&b).await, pins(&a).await);
    assert_eq!(b.heads().await.unwrap(), a.heads().await.unwrap());
    // A peer's delta made concurrently, on a block the checkpoint covers (a peer back from
    // a partition): fetched alone, the walk stops at the covered block.
    let mut late = add(&pin_n(200));
    late.priority = 3;
    let (late_cid, late_bytes) = wire::delta_block(&late, &[cid_of_block(&a, 2).await]);
    a.put_block(&late_cid, &late_bytes).await.unwrap();
    source.asked.lock().unwrap().clear();
    b.want(&late_cid).await.unwrap();
    let r = sync::sync(&b, &source, opts).await.unwrap();
    assert_eq!((r.stored, r.wanted), (1, 0));
    assert_eq!(*source.asked.lock().unwrap(), vec![late_cid]);
    assert_eq!(pins(&b).await, pins(&a).await);
    assert_eq!(pins(&b).await.len(), 36);
}

/// The CID of A's block of height `h`.
async fn cid_of_block(s: &CrdtStore, h: i64) -> cid::Cid {
    let c: String = sqlx::query_scalar("SELECT cid FROM crdt_blocks WHERE height = ?")
        .bind(h)
        .fetch_one(s.pool())
        .await
        .unwrap();
    cid::Cid::from_str(&c).unwrap()
}

#[tokio::test]
async fn a_load_cut_short_resumes_after_a_restart_fetching_only_what_it_lacked() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let key = Keypair::generate_ed25519();
    let (a, made) = a_with_checkpoint(da.path(), &key).await;
    let signed = ckpt_block(&a, &made.cid).await.unwrap().unwrap();
    let (m, _) = open_manifest(&signed, TOPIC, &trusting(&key)).unwrap();
    let chunks: Vec<cid::Cid> = m
        .chunks
        .iter()
        .map(|b| cid::Cid::try_from(b.as_slice()).unwrap())
        .collect();
    let source = FromStore::new(a.clone());
    source
        .missing
        .lock()
        .unwrap()
        .extend([chunks[1], chunks[chunks.len() - 1]]);
    {
        let b = open(db.path()).await;
        let err = load(&b, &made.cid, &source, TOPIC, &trusting(&key), LONG)
            .await
            .unwrap_err();
        assert!(matches!(err, LoadError::Fetch(_)), "{err}");
        assert!(err.to_string().contains("2 of"), "{err}");
        // Nothing of the set is written before every chunk is in.
        assert!(pins(&b).await.is_empty());
        assert!(!b.holds_blocks().await.unwrap());
        assert_eq!(loading(&b).await.unwrap(), Some(made.cid));
    }
    // Restarted: the load is found, and only the two chunks it lacked are fetched.
    source.missing.lock().unwrap().clear();
    source.asked.lock().unwrap().clear();
    let b = open(db.path()).await;
    let resumed = loading(&b).await.unwrap().unwrap();
    let loaded = load(&b, &resumed, &source, TOPIC, &trusting(&key), LONG)
        .await
        .unwrap();
    assert!(matches!(loaded, Loaded::Applied { pins: 34, .. }));
    let mut asked = source.asked.lock().unwrap().clone();
    asked.sort_by_key(|c| c.to_bytes());
    let mut lacked = vec![chunks[1], chunks[chunks.len() - 1]];
    lacked.sort_by_key(|c| c.to_bytes());
    assert_eq!(asked, lacked);
    assert_eq!(pins(&b).await, pins(&a).await);
    assert_eq!(loading(&b).await.unwrap(), None);
}

#[tokio::test]
async fn checkpoints_not_signed_by_a_trusted_peer_of_this_cluster_or_tampered_change_nothing() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let key = Keypair::generate_ed25519();
    let (a, made) = a_with_checkpoint(da.path(), &key).await;
    let b = open(db.path()).await;
    let source = FromStore::new(a.clone());
    let stranger = Keypair::generate_ed25519();
    // Signed by a peer B does not trust.
    let err = load(&b, &made.cid, &source, TOPIC, &trusting(&stranger), LONG)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LoadError::Refused(e) if e.contains("does not trust")),
        "{err}"
    );
    // Of another cluster.
    let err = load(&b, &made.cid, &source, "other", &trusting(&key), LONG)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LoadError::Refused(e) if e.contains("another cluster")),
        "{err}"
    );
    // A signature that does not match the manifest: another manifest under A's key.
    let mut signed =
        Signed::decode(ckpt_block(&a, &made.cid).await.unwrap().unwrap().as_slice()).unwrap();
    let mut m = Manifest::decode(signed.manifest.as_slice()).unwrap();
    m.elems += 1;
    signed.manifest = m.encode_to_vec();
    let forged = signed.encode_to_vec();
    let forged_cid = raw_cid(&forged);
    put_ckpt_block(&a, &forged_cid, &forged).await.unwrap();
    let err = load(&b, &forged_cid, &source, TOPIC, &trusting(&key), LONG)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LoadError::Refused(e) if e.contains("does not verify")),
        "{err}"
    );
    // Bytes that are not the chunk asked for: not kept, asked again later.
    struct Liar(FromStore, cid::Cid);
    #[async_trait]
    impl BlockSource for Liar {
        async fn get(&self, c: &cid::Cid) -> Result<Vec<u8>, FetchError> {
            if *c == self.1 {
                return Ok(b"something else".to_vec());
            }
            self.0.get(c).await
        }
    }
    let signed = ckpt_block(&a, &made.cid).await.unwrap().unwrap();
    let (m, _) = open_manifest(&signed, TOPIC, &trusting(&key)).unwrap();
    let chunk = cid::Cid::try_from(m.chunks[0].as_slice()).unwrap();
    let liar = Liar(FromStore::new(a.clone()), chunk);
    let err = load(&b, &made.cid, &liar, TOPIC, &trusting(&key), LONG)
        .await
        .unwrap_err();
    assert!(matches!(err, LoadError::Fetch(_)), "{err}");
    assert!(ckpt_block(&b, &chunk).await.unwrap().is_none());
    assert!(pins(&b).await.is_empty());
    assert!(!b.holds_blocks().await.unwrap());
    // Given up: its blocks are dropped.
    abandon(&b).await.unwrap();
    assert_eq!(loading(&b).await.unwrap(), None);
    let kept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM crdt_ckpt_blocks")
        .fetch_one(b.pool())
        .await
        .unwrap();
    assert_eq!(kept, 0);
}

/// A peer that holds blocks by the time a checkpoint is in keeps its own set (it syncs the
/// deltas instead); a peer wanting blocks makes no checkpoint.
#[tokio::test]
async fn a_peer_holding_blocks_loads_no_checkpoint_and_a_peer_wanting_blocks_makes_none() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let key = Keypair::generate_ed25519();
    let (a, made) = a_with_checkpoint(da.path(), &key).await;
    let b = open(db.path()).await;
    b.publish(add(&pin_n(500))).await.unwrap();
    let before = pins(&b).await;
    let source = FromStore::new(a.clone());
    let loaded = load(&b, &made.cid, &source, TOPIC, &trusting(&key), LONG)
        .await
        .unwrap();
    assert_eq!(loaded, Loaded::NotEmpty);
    assert_eq!(pins(&b).await, before);
    assert_eq!(loading(&b).await.unwrap(), None);
    // B wants A's heads: it holds a block whose history it lacks, and makes no checkpoint.
    for h in a.heads().await.unwrap().0 {
        b.want(&h).await.unwrap();
    }
    let mut link = add(&pin_n(501));
    link.priority = 99;
    let (c, bytes) = wire::delta_block(&link, &a.heads().await.unwrap().0);
    b.put_block(&c, &bytes).await.unwrap();
    assert!(b.wants_any().await.unwrap());
    assert_eq!(make(&b, TOPIC, &key).await.unwrap(), None);
}

/// A checkpoint made while the peer writes (its chunks and records are written beside the
/// writes) fails none of them: every write transaction takes the write lock as it begins,
/// so none finds its snapshot outdated when it comes to write ("database is locked").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_go_on_while_a_checkpoint_is_made() {
    let da = tempfile::tempdir().unwrap();
    let key = Keypair::generate_ed25519();
    let a = open(da.path()).await;
    for n in 0..100 {
        a.publish(add(&pin_n(n))).await.unwrap();
    }
    let writer = {
        let a = a.clone();
        tokio::spawn(async move {
            let mut tasks = Vec::new();
            for k in 0..8u32 {
                let a = a.clone();
                tasks.push(tokio::spawn(async move {
                    for n in 0..40 {
                        a.publish(add(&pin_n(1000 + k * 100 + n))).await?;
                    }
                    Ok::<_, ConsensusError>(())
                }));
            }
            for t in tasks {
                t.await.unwrap()?;
            }
            Ok::<_, ConsensusError>(())
        })
    };
    let mut made = 0;
    while !writer.is_finished() {
        if make_cut_at(&a, TOPIC, &key, 64).await.unwrap().is_some() {
            made += 1;
        }
    }
    writer.await.unwrap().unwrap();
    assert!(made > 0);
    assert_eq!(pins(&a).await.len(), 420);
}

/// Checkpoint `made` of A with its manifest changed by `change`, signed again with `key`
/// (a signer that is trusted, and wrong), stored at A; its CID.
async fn forged(
    a: &CrdtStore,
    made: &Made,
    key: &Keypair,
    change: impl FnOnce(&mut Manifest),
) -> cid::Cid {
    let signed =
        Signed::decode(ckpt_block(a, &made.cid).await.unwrap().unwrap().as_slice()).unwrap();
    let mut m = Manifest::decode(signed.manifest.as_slice()).unwrap();
    change(&mut m);
    let manifest = m.encode_to_vec();
    let signature = key.sign(&[SIGNING, &manifest].concat()).unwrap();
    let bytes = Signed {
        manifest,
        public_key: key.public().encode_protobuf(),
        signature,
    }
    .encode_to_vec();
    let c = raw_cid(&bytes);
    put_ckpt_block(a, &c, &bytes).await.unwrap();
    c
}

/// A checkpoint whose manifest does not add up (no head, heads below its elements'
/// priorities, counts that are not what its chunks hold) is refused whole, even from a
/// trusted signer: nothing of it is written.
#[tokio::test]
async fn a_checkpoint_that_does_not_add_up_is_refused_and_changes_nothing() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let key = Keypair::generate_ed25519();
    let (a, made) = a_with_checkpoint(da.path(), &key).await;
    let b = open(db.path()).await;
    let source = FromStore::new(a.clone());
    type Change = Box<dyn FnOnce(&mut Manifest)>;
    let cases: [(&str, Change); 3] = [
        ("names no head", Box::new(|m| m.heads.clear())),
        (
            "above its heads",
            Box::new(|m| m.heads.iter_mut().for_each(|h| h.height = 1)),
        ),
        ("where its manifest says", Box::new(|m| m.tombs += 1)),
    ];
    for (why, change) in cases {
        let c = forged(&a, &made, &key, change).await;
        let err = load(&b, &c, &source, TOPIC, &trusting(&key), LONG)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, LoadError::Refused(e) if e.contains(why)),
            "{why}: {err}"
        );
        assert!(pins(&b).await.is_empty());
        assert!(!b.holds_blocks().await.unwrap());
        assert!(b.heads().await.unwrap().0.is_empty());
        abandon(&b).await.unwrap();
    }
    // The true one loads.
    let loaded = load(&b, &made.cid, &source, TOPIC, &trusting(&key), LONG)
        .await
        .unwrap();
    assert!(matches!(loaded, Loaded::Applied { pins: 34, .. }));
}

/// A peer that loaded a checkpoint fills in the history it covers afterwards; then a peer
/// that syncs the whole DAG from it alone (IPFS Cluster's way) gets every pin.
#[tokio::test]
async fn a_peer_that_loaded_a_checkpoint_fills_in_the_history_and_gives_it_on() {
    let (da, db, dc) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let key = Keypair::generate_ed25519();
    let (a, made) = a_with_checkpoint(da.path(), &key).await;
    let b = open(db.path()).await;
    let from_a = FromStore::new(a.clone());
    load(&b, &made.cid, &from_a, TOPIC, &trusting(&key), LONG)
        .await
        .unwrap();
    // One block cannot be had now: it stays to fill in at the next pass.
    let one = cid_of_block(&a, 7).await;
    from_a.missing.lock().unwrap().insert(one);
    let pass = fill_in_history(&b, &from_a, 4, LONG).await.unwrap();
    assert_eq!(
        pass,
        FilledIn {
            filled: 45,
            missing: 1
        }
    );
    from_a.missing.lock().unwrap().clear();
    let pass = fill_in_history(&b, &from_a, 4, LONG).await.unwrap();
    assert_eq!(
        pass,
        FilledIn {
            filled: 1,
            missing: 0
        }
    );
    assert_eq!(
        fill_in_history(&b, &from_a, 4, LONG).await.unwrap(),
        FilledIn::default()
    );
    // The set is what it was; C syncs the whole DAG from B alone.
    assert_eq!(pins(&b).await, pins(&a).await);
    let c = open(dc.path()).await;
    for h in b.heads().await.unwrap().0 {
        c.want(&h).await.unwrap();
    }
    let r = sync::sync(
        &c,
        &FromStore::new(b.clone()),
        SyncOptions {
            workers: 4,
            fetch_timeout: LONG,
        },
    )
    .await
    .unwrap();
    assert_eq!((r.stored, r.wanted), (46, 0));
    assert_eq!(pins(&c).await, pins(&a).await);
}

/// The one head of `s`.
async fn head_cid(s: &CrdtStore) -> cid::Cid {
    let (heads, _) = s.heads().await.unwrap();
    assert_eq!(heads.len(), 1, "{heads:?}");
    heads[0]
}

#[tokio::test]
async fn old_deltas_go_only_once_a_peer_is_heard_above_the_checkpoint_and_their_cids_stay() {
    let (da, dx) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let key = Keypair::generate_ed25519();
    let a = open(da.path()).await;
    for n in 0..10 {
        a.publish(add(&pin_n(n))).await.unwrap();
    }
    let first = cid_of_block(&a, 1).await;
    let made = make(&a, TOPIC, &key).await.unwrap().unwrap();
    let fr = frontier(&a).await.unwrap().unwrap();
    assert!(fr.to_drop());
    let f = fr.heads.clone();
    assert_eq!(f, vec![head_cid(&a).await]);
    // Heads at the frontier, or above it, reach it.
    assert!(reached_by(&a, &f, &f).await.unwrap());
    let after = a.publish(add(&pin_n(10))).await.unwrap().unwrap();
    assert!(reached_by(&a, &f, &[after]).await.unwrap());
    // Heads this peer does not hold, none, or a branch made apart from the frontier do not.
    let x = open(dx.path()).await;
    let apart = x.publish(add(&pin_n(50))).await.unwrap().unwrap();
    assert!(!reached_by(&a, &f, &[apart]).await.unwrap());
    assert!(!reached_by(&a, &f, &[]).await.unwrap());
    a.put_block(&apart, &x.block(&apart).await.unwrap().unwrap())
        .await
        .unwrap();
    assert!(!reached_by(&a, &f, &[apart]).await.unwrap());
    // A peer with a head above it holds all it covers, whatever else it holds.
    assert!(reached_by(&a, &f, &[after, apart]).await.unwrap());

    let before = pins(&a).await;
    assert_eq!(drop_covered(&a, &fr).await.unwrap(), made.blocks);
    let fr = frontier(&a).await.unwrap().unwrap();
    assert!(!fr.to_drop(), "dropped once");
    assert_eq!(drop_covered(&a, &fr).await.unwrap(), 0);
    // The bytes below are gone, their CIDs (and the set) stay; what came after is kept.
    assert_eq!(a.block(&first).await.unwrap(), None);
    assert!(a.has_block(&first).await.unwrap());
    assert!(a.block(&after).await.unwrap().is_some());
    assert!(a.block(&apart).await.unwrap().is_some());
    assert_eq!(pins(&a).await, before);
    // The checkpoint is still given, and a new peer loads it as before.
    let db = tempfile::tempdir().unwrap();
    let b = open(db.path()).await;
    let source = FromStore::new(a.clone());
    let loaded = load(&b, &made.cid, &source, TOPIC, &trusting(&key), LONG)
        .await
        .unwrap();
    assert_eq!(
        loaded,
        Loaded::Applied {
            pins: 10,
            blocks: 10
        }
    );
    // What a loaded checkpoint covers came without bytes: nothing to drop below it.
    assert!(!frontier(&b).await.unwrap().unwrap().to_drop());
    // A late block linking to a dropped one (made apart, back now) is taken: the walk stops
    // at the dropped block's CID.
    let mut link = add(&pin_n(11));
    link.priority = 2;
    let (late, bytes) = wire::delta_block(&link, &[first]);
    a.put_block(&late, &bytes).await.unwrap();
    assert!(!a.wants_any().await.unwrap());
    b.want(&late).await.unwrap();
    let opts = SyncOptions {
        workers: 4,
        fetch_timeout: LONG,
    };
    sync::sync(&b, &source, opts).await.unwrap();
    assert!(!b.wants_any().await.unwrap());
    assert_eq!(pins(&b).await.len(), 11);
}

#[tokio::test]
async fn a_peer_wanting_dropped_blocks_merges_a_checkpoint_keeping_its_own_writes() {
    let (da, df) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let key = Keypair::generate_ed25519();
    let a = open(da.path()).await;
    for n in 0..10 {
        a.publish(add(&pin_n(n))).await.unwrap();
    }
    let f = open(df.path()).await;
    let source = FromStore::new(a.clone());
    let opts = SyncOptions {
        workers: 4,
        fetch_timeout: LONG,
    };
    f.want(&head_cid(&a).await).await.unwrap();
    sync::sync(&f, &source, opts).await.unwrap();
    assert_eq!(pins(&f).await.len(), 10);
    // Apart: F pins 100 and unpins 3; A unpins 4, pins 3 again (a new element: add wins
    // over F's tombstone, which names only the one F saw) and 10..30, makes a checkpoint
    // and drops what it covers.
    let own = f.publish(add(&pin_n(100))).await.unwrap().unwrap();
    remove(&f, &pin_n(3)).await;
    remove(&a, &pin_n(4)).await;
    let mut again = pin_n(3);
    again.options.metadata.insert("again".into(), "yes".into());
    a.publish(add(&again)).await.unwrap();
    for n in 10..30 {
        a.publish(add(&pin_n(n))).await.unwrap();
    }
    let made = make(&a, TOPIC, &key).await.unwrap().unwrap();
    let fr = frontier(&a).await.unwrap().unwrap();
    assert!(drop_covered(&a, &fr).await.unwrap() > 0);
    // F can no longer sync A's history: it wants blocks no peer gives.
    f.want(&head_cid(&a).await).await.unwrap();
    sync::sync(&f, &source, opts).await.unwrap();
    assert!(f.wants_any().await.unwrap());
    // A load refuses a peer holding blocks; a merge takes the checkpoint in.
    assert_eq!(
        load(&f, &made.cid, &source, TOPIC, &trusting(&key), LONG)
            .await
            .unwrap(),
        Loaded::NotEmpty
    );
    begin_merge(&f, &made.cid).await.unwrap();
    // A merge begun is resumed after a restart (kept on disk, as a load).
    drop(f);
    let f = open(df.path()).await;
    assert!(merging(&f).await.unwrap());
    assert_eq!(loading(&f).await.unwrap(), Some(made.cid));
    let merged_keys = match load(&f, &made.cid, &source, TOPIC, &trusting(&key), LONG)
        .await
        .unwrap()
    {
        Loaded::Merged { keys } => keys,
        other => panic!("not merged: {other:?}"),
    };
    // The 29 keys A holds and pin 4's, which it removed.
    assert_eq!(merged_keys, 30);
    assert!(!f.wants_any().await.unwrap());
    assert!(!merging(&f).await.unwrap());
    assert_eq!(merged(&f).await.unwrap(), Some(made.cid));
    // Not F's checkpoint to offer (its set holds more than the checkpoint).
    assert_eq!(current(&f).await.unwrap(), None);
    let got: Vec<String> = pins(&f).await.into_iter().map(|(c, _)| c).collect();
    let mut want: Vec<String> = (0..30)
        .chain([100])
        .filter(|n| *n != 4)
        .map(|n| pin_n(n).cid.to_string())
        .collect();
    want.sort();
    assert_eq!(got, want);
    let three: String = sqlx::query_scalar("SELECT pin FROM pins WHERE cid = ?")
        .bind(pin_n(3).cid.to_string())
        .fetch_one(f.pool())
        .await
        .unwrap();
    assert!(three.contains("again"), "{three}");
    // F's heads: its own last write and A's head; its next delta links both.
    let (heads, _) = f.heads().await.unwrap();
    assert_eq!(heads.len(), 2, "{heads:?}");
    assert!(heads.contains(&head_cid(&a).await));
    assert!(f.block(&own).await.unwrap().is_some());
    let next = f.publish(add(&pin_n(101))).await.unwrap().unwrap();
    assert_eq!(f.heads().await.unwrap().0, vec![next]);
    // A checkpoint that covers nothing F wants is not merged (the set is not rewritten).
    a.publish(add(&pin_n(200))).await.unwrap();
    let newer = make(&a, TOPIC, &key).await.unwrap().unwrap();
    let before = pins(&f).await;
    begin_merge(&f, &newer.cid).await.unwrap();
    assert_eq!(
        load(&f, &newer.cid, &source, TOPIC, &trusting(&key), LONG)
            .await
            .unwrap(),
        Loaded::Unneeded
    );
    assert_eq!(pins(&f).await, before);
    assert_eq!(merged(&f).await.unwrap(), Some(newer.cid));
    assert!(!merging(&f).await.unwrap());
    // A takes F's writes: F's blocks have their bytes.
    a.want(&next).await.unwrap();
    sync::sync(&a, &FromStore::new(f.clone()), opts)
        .await
        .unwrap();
    assert!(!a.wants_any().await.unwrap());
    // A holds what F holds, and pin 200, which F has not heard of.
    let (in_a, in_f) = (pins(&a).await, pins(&f).await);
    assert_eq!(in_a.len(), in_f.len() + 1);
    assert!(
        in_f.iter().all(|p| in_a.contains(p)),
        "A lacks some of F's pins"
    );
}
