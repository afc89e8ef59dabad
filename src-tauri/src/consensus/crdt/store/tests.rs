//! The set and the DAG on disk: what one peer's writes do, and that replicas receiving the
//! same blocks in any order (children before parents, a sync cut short and resumed) end with
//! the same pinset and heads, removes losing to concurrent adds.

use std::collections::BTreeMap;
use std::str::FromStr;

use rand::{Rng, SeedableRng};

use super::*;
use crate::state::feed::{feed, FeedReceiver};
use crate::types::{Cid, PinOptions};

struct Replica {
    store: CrdtStore,
    feed: FeedReceiver,
    _dir: tempfile::TempDir,
}

async fn replica() -> Replica {
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx) = feed(1 << 16);
    let store = CrdtStore::open(&db_path(dir.path()), tx).await.unwrap();
    Replica {
        store,
        feed: rx,
        _dir: dir,
    }
}

fn cid_n(n: u32) -> Cid {
    let bytes = n.to_be_bytes();
    Cid(super::wire::block_cid(&bytes))
}

fn pin_n(n: u32, name: &str) -> Pin {
    let mut p = Pin::new(
        cid_n(n),
        PinOptions {
            name: name.into(),
            replication_factor_min: -1,
            replication_factor_max: -1,
            ..PinOptions::default()
        },
    );
    p.timestamp = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    p
}

fn add(pin: &Pin) -> Delta {
    Delta {
        elements: vec![Element {
            key: wire::pin_key(&pin.cid),
            id: String::new(),
            value: wire::pin_to_bytes(pin).unwrap(),
        }],
        ..Delta::default()
    }
}

async fn rmv(store: &CrdtStore, c: &Cid) -> Delta {
    Delta {
        tombstones: store.tombstones(&wire::pin_key(c)).await.unwrap(),
        ..Delta::default()
    }
}

/// The pinset as the `pins` table holds it: CID → name.
async fn pinset(store: &CrdtStore) -> BTreeMap<String, String> {
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT cid, pin FROM pins ORDER BY cid")
        .fetch_all(store.pool())
        .await
        .unwrap();
    rows.into_iter()
        .map(|(c, p)| (c, serde_json::from_str::<Pin>(&p).unwrap().options.name))
        .collect()
}

async fn sorted_heads(store: &CrdtStore) -> Vec<String> {
    let mut h: Vec<String> = store
        .heads()
        .await
        .unwrap()
        .0
        .iter()
        .map(|c| c.to_string())
        .collect();
    h.sort();
    h
}

async fn all_blocks(store: &CrdtStore) -> Vec<(cid::Cid, Vec<u8>)> {
    let rows: Vec<(String, Vec<u8>)> = sqlx::query_as("SELECT cid, data FROM crdt_blocks")
        .fetch_all(store.pool())
        .await
        .unwrap();
    rows.into_iter()
        .map(|(c, d)| (cid::Cid::from_str(&c).unwrap(), d))
        .collect()
}

/// Syncs `to` from `from` as the network does: `to` hears `from`'s heads and fetches what
/// it wants until it wants nothing.
async fn sync(from: &CrdtStore, to: &CrdtStore) {
    for h in from.heads().await.unwrap().0 {
        to.want(&h).await.unwrap();
    }
    loop {
        let wanted = to.wanted(16).await.unwrap();
        if wanted.is_empty() {
            return;
        }
        for c in wanted {
            let bytes = from.block(&c).await.unwrap().expect("the sender holds it");
            to.put_block(&c, &bytes).await.unwrap();
        }
    }
}

#[tokio::test]
async fn a_write_is_a_block_over_the_heads_and_is_in_the_pinset_at_once() {
    let mut r = replica().await;
    let p1 = pin_n(1, "one");
    let c1 = r.store.publish(add(&p1)).await.unwrap().unwrap();
    assert_eq!(sorted_heads(&r.store).await, vec![c1.to_string()]);
    assert_eq!(r.store.heads().await.unwrap().1, 1);
    assert_eq!(
        pinset(&r.store).await,
        BTreeMap::from([(p1.cid.to_string(), "one".to_string())])
    );
    assert!(matches!(r.feed.try_recv(), Some(StateChange::Pinned(p)) if p == p1));

    let p2 = pin_n(2, "two");
    let c2 = r.store.publish(add(&p2)).await.unwrap().unwrap();
    assert_eq!(sorted_heads(&r.store).await, vec![c2.to_string()]);
    assert_eq!(r.store.heads().await.unwrap().1, 2);
    let node = wire::Node::from_bytes(&r.store.block(&c2).await.unwrap().unwrap()).unwrap();
    assert_eq!(node.links, vec![c1]);
    assert_eq!(Delta::from_bytes(&node.data).unwrap().priority, 2);
    r.feed.try_recv().unwrap();

    // Removing: tombstones of what this peer saw; the pin leaves the pinset.
    let gone = rmv(&r.store, &p1.cid).await;
    assert_eq!(gone.tombstones.len(), 1);
    assert_eq!(gone.tombstones[0].id, wire::block_id(&c1));
    r.store.publish(gone).await.unwrap().unwrap();
    assert_eq!(pinset(&r.store).await.len(), 1);
    assert!(matches!(r.feed.try_recv(), Some(StateChange::Unpinned(c)) if c == p1.cid));
    // Nothing to remove, nothing published.
    let none = rmv(&r.store, &p1.cid).await;
    assert!(r.store.publish(none).await.unwrap().is_none());
    assert_eq!(r.store.wanted_count().await.unwrap(), 0);
}

#[tokio::test]
async fn an_update_of_a_pin_replaces_it_and_a_later_one_wins() {
    let r = replica().await;
    r.store.publish(add(&pin_n(1, "first"))).await.unwrap();
    r.store.publish(add(&pin_n(1, "second"))).await.unwrap();
    assert_eq!(
        pinset(&r.store).await.into_values().collect::<Vec<_>>(),
        vec!["second".to_string()]
    );
    // Removing it takes both elements.
    let gone = rmv(&r.store, &cid_n(1)).await;
    assert_eq!(gone.tombstones.len(), 2);
    r.store.publish(gone).await.unwrap();
    assert!(pinset(&r.store).await.is_empty());
}

#[tokio::test]
async fn a_remove_loses_to_an_add_it_did_not_see() {
    let a = replica().await;
    let b = replica().await;
    let p = pin_n(7, "seen");
    a.store.publish(add(&p)).await.unwrap();
    sync(&a.store, &b.store).await;
    assert_eq!(pinset(&b.store).await.len(), 1);
    // Concurrently: b removes what it saw, a adds the pin again (another element).
    let gone = rmv(&b.store, &p.cid).await;
    b.store.publish(gone).await.unwrap();
    a.store.publish(add(&pin_n(7, "again"))).await.unwrap();
    assert!(pinset(&b.store).await.is_empty());
    sync(&a.store, &b.store).await;
    sync(&b.store, &a.store).await;
    let want = BTreeMap::from([(p.cid.to_string(), "again".to_string())]);
    assert_eq!(pinset(&a.store).await, want);
    assert_eq!(pinset(&b.store).await, want);
    // Both now build on the same two heads (a's add and b's remove).
    assert_eq!(sorted_heads(&a.store).await, sorted_heads(&b.store).await);
    assert_eq!(sorted_heads(&a.store).await.len(), 2);
}

#[tokio::test]
async fn concurrent_values_of_equal_priority_resolve_the_same_everywhere() {
    let a = replica().await;
    let b = replica().await;
    a.store.publish(add(&pin_n(3, "from a"))).await.unwrap();
    b.store.publish(add(&pin_n(3, "from b"))).await.unwrap();
    sync(&a.store, &b.store).await;
    sync(&b.store, &a.store).await;
    let on_a = pinset(&a.store).await;
    assert_eq!(on_a, pinset(&b.store).await);
    // The greater value wins (go-ds-crdt's rule): the serialized pins compare at the name.
    assert_eq!(on_a.into_values().next().unwrap(), "from b");
}

#[tokio::test]
async fn a_block_that_is_not_what_its_cid_names_is_refused_and_changes_nothing() {
    let a = replica().await;
    let b = replica().await;
    let c = a.store.publish(add(&pin_n(1, "x"))).await.unwrap().unwrap();
    let mut bytes = a.store.block(&c).await.unwrap().unwrap();
    b.store.want(&c).await.unwrap();
    bytes[3] ^= 0xff;
    let err = b.store.put_block(&c, &bytes).await.unwrap_err();
    assert!(matches!(err, ConsensusError::BadInput(_)), "{err}");
    // A block whose hash matches but that is not a delta's node.
    let junk = b"\xff\xff".to_vec();
    let junk_cid = wire::block_cid(&junk);
    assert!(matches!(
        b.store.put_block(&junk_cid, &junk).await,
        Err(ConsensusError::BadInput(_))
    ));
    assert!(pinset(&b.store).await.is_empty());
    assert!(all_blocks(&b.store).await.is_empty());
    assert_eq!(b.store.wanted(10).await.unwrap(), vec![c]);
}

#[tokio::test]
async fn a_head_whose_history_is_missing_wants_it_and_a_sync_cut_short_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let a = replica().await;
    let mut written = Vec::new();
    for n in 0..20 {
        let p = pin_n(n, &format!("p{n}"));
        written.push(a.store.publish(add(&p)).await.unwrap().unwrap());
    }
    let top = *written.last().unwrap();
    {
        let (tx, _rx) = feed(1 << 10);
        let b = CrdtStore::open(&db_path(dir.path()), tx).await.unwrap();
        b.want(&top).await.unwrap();
        // Half the chain, then the peer stops.
        for _ in 0..10 {
            let c = b.wanted(1).await.unwrap()[0];
            let stored = b
                .put_block(&c, &a.store.block(&c).await.unwrap().unwrap())
                .await
                .unwrap();
            assert!(stored.new);
            assert_eq!(stored.wanted.len(), 1);
        }
        assert_eq!(pinset(&b).await.len(), 10);
        // Its head is the top block already: new writes build on the newest height.
        assert_eq!(b.heads().await.unwrap(), (vec![top], 20));
        b.pool().close().await;
    }
    let (tx, _rx) = feed(1 << 10);
    let b = CrdtStore::open(&db_path(dir.path()), tx).await.unwrap();
    assert_eq!(b.wanted_count().await.unwrap(), 1);
    sync(&a.store, &b).await;
    assert_eq!(pinset(&b).await, pinset(&a.store).await);
    assert_eq!(pinset(&b).await.len(), 20);
    assert_eq!(b.heads().await.unwrap(), (vec![top], 20));
    // A known block again changes nothing.
    let again = b
        .put_block(&top, &a.store.block(&top).await.unwrap().unwrap())
        .await
        .unwrap();
    assert_eq!(again, Stored::default());
}

/// Replicas writing at random, and blocks delivered in random order (children before
/// parents, duplicates), converge: every replica ends with the same pinset and heads, and
/// the pinset is what an observed-remove set says (a key is in it when an add of it was not
/// seen by every remove of it).
#[tokio::test]
async fn replicas_receiving_blocks_in_any_order_converge() {
    for seed in 0..6u64 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let replicas = [replica().await, replica().await, replica().await];
        for _round in 0..30 {
            let w = rng.gen_range(0..replicas.len());
            let key = rng.gen_range(0..6u32);
            let store = &replicas[w].store;
            if rng.gen_bool(0.65) {
                let name = format!("{seed}-{}", rng.gen_range(0..1000u32));
                store.publish(add(&pin_n(key, &name))).await.unwrap();
            } else {
                let d = rmv(store, &cid_n(key)).await;
                store.publish(d).await.unwrap();
            }
            // Sometimes a replica gets some of another's blocks, in a random order.
            if rng.gen_bool(0.4) {
                let from = rng.gen_range(0..replicas.len());
                let to = rng.gen_range(0..replicas.len());
                let mut blocks = all_blocks(&replicas[from].store).await;
                blocks.retain(|_| rng.gen_bool(0.5));
                for (c, bytes) in blocks {
                    replicas[to].store.put_block(&c, &bytes).await.unwrap();
                }
            }
        }
        // Everyone gets everything, in a shuffled order.
        let mut everything = Vec::new();
        for r in &replicas {
            everything.extend(all_blocks(&r.store).await);
        }
        for r in &replicas {
            let mut mine = everything.clone();
            for i in (1..mine.len()).rev() {
                mine.swap(i, rng.gen_range(0..=i));
            }
            for (c, bytes) in mine {
                r.store.put_block(&c, &bytes).await.unwrap();
            }
            assert_eq!(r.store.wanted_count().await.unwrap(), 0, "seed {seed}");
        }
        let first = pinset(&replicas[0].store).await;
        let heads = sorted_heads(&replicas[0].store).await;
        for r in &replicas[1..] {
            assert_eq!(pinset(&r.store).await, first, "seed {seed}");
            assert_eq!(sorted_heads(&r.store).await, heads, "seed {seed}");
        }
        // The observed-remove rule, from the blocks themselves.
        let mut added: BTreeMap<(String, String), ()> = BTreeMap::new();
        let mut removed: BTreeMap<(String, String), ()> = BTreeMap::new();
        for (c, bytes) in all_blocks(&replicas[0].store).await {
            let d = Delta::from_bytes(&wire::Node::from_bytes(&bytes).unwrap().data).unwrap();
            for e in d.elements {
                added.insert((e.key, wire::block_id(&c)), ());
            }
            for t in d.tombstones {
                removed.insert((t.key, t.id), ());
            }
        }
        let alive: std::collections::BTreeSet<String> = added
            .keys()
            .filter(|k| !removed.contains_key(*k))
            .map(|(k, _)| wire::key_cid(k).unwrap().to_string())
            .collect();
        assert_eq!(
            first
                .keys()
                .cloned()
                .collect::<std::collections::BTreeSet<_>>(),
            alive,
            "seed {seed}"
        );
    }
}

/// A batch is kept on disk until published: writes queued and then a crash (the store
/// dropped without a flush) go out with the first flush after the restart, as one block, in
/// order (a remove drops the key's earlier adds in the batch and tombstones what was live).
#[tokio::test]
async fn a_batch_survives_a_crash_and_goes_out_as_one_block_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let live = pin_n(1, "live");
    {
        let (tx, _rx) = feed(1 << 10);
        let s = CrdtStore::open(&path, tx).await.unwrap();
        s.publish(add(&live)).await.unwrap();
        for (n, name) in [(2, "a"), (3, "b"), (2, "a2")] {
            let p = pin_n(n, name);
            s.queue(
                &wire::pin_key(&p.cid),
                Some(&wire::pin_to_bytes(&p).unwrap()),
            )
            .await
            .unwrap();
        }
        s.queue(&wire::pin_key(&cid_n(3)), None).await.unwrap();
        let n = s.queue(&wire::pin_key(&live.cid), None).await.unwrap();
        assert_eq!(n, 5);
        // Queued is not published: the pinset has only the first pin.
        assert_eq!(pinset(&s).await.len(), 1);
        drop(s);
    }
    let (tx, _rx) = feed(1 << 10);
    let s = CrdtStore::open(&path, tx).await.unwrap();
    assert_eq!(s.queued().await.unwrap(), 5);
    let c = s.flush().await.unwrap().unwrap();
    assert_eq!(s.queued().await.unwrap(), 0);
    assert!(s.flush().await.unwrap().is_none());
    assert_eq!(
        pinset(&s).await,
        BTreeMap::from([(cid_n(2).to_string(), "a2".to_string())])
    );
    let d = Delta::from_bytes(
        &wire::Node::from_bytes(&s.block(&c).await.unwrap().unwrap())
            .unwrap()
            .data,
    )
    .unwrap();
    assert_eq!(d.elements.len(), 1);
    assert_eq!(d.tombstones.len(), 1);
    assert_eq!(d.priority, 2);
    // A batch of only removes of pins nobody has publishes nothing, and is emptied.
    s.queue(&wire::pin_key(&cid_n(9)), None).await.unwrap();
    assert!(s.flush().await.unwrap().is_none());
    assert_eq!(s.queued().await.unwrap(), 0);
}
