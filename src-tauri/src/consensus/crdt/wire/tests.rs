//! The wire formats against vectors written from the published `.proto` files and the dag-pb
//! spec by an independent writer (`tests/fixtures/crdt/make_vectors.py`, its output in
//! `vectors.txt`), and against dag-pb's own compatibility vectors (boxo's
//! `ipld/merkledag/pb/compat_test.go`, mirrored by js-dag-pb).

use super::*;

use super::super::testing::vector;

fn hex(name: &str) -> Vec<u8> {
    ::hex::decode(vector(name)).unwrap()
}

fn cid(text: &str) -> cid::Cid {
    cid::Cid::from_str(text).unwrap()
}

#[test]
fn topic_is_the_md5_multihash_of_the_cluster_name_in_base58() {
    assert_eq!(topic("ipfs-cluster"), vector("topic ipfs-cluster"));
    assert_ne!(topic("ipfs-cluster"), topic("ipfs-cluster2"));
}

#[test]
fn a_pins_key_is_its_cids_bytes_in_base32() {
    let (c, key) = vector("pin_key").split_once(' ').unwrap();
    let c = Cid(cid(c));
    assert_eq!(pin_key(&c), key);
    assert_eq!(key_cid(key), Some(c));
    assert_eq!(key_cid("/not base32!"), None);
    assert_eq!(key_cid("CIQ"), None);
}

#[test]
fn a_node_hashes_as_dag_pb_cid_v1() {
    let node = Node {
        links: vec![],
        data: vec![8, 1],
    };
    assert_eq!(
        block_cid(&node.to_bytes()).to_string(),
        vector("dagpb empty_dir")
    );
}

#[test]
fn a_delta_encodes_as_go_ds_crdt_writes_it() {
    let delta = Delta {
        elements: vec![Element {
            key: "/K".into(),
            id: String::new(),
            value: vec![1, 2],
        }],
        tombstones: vec![Element {
            key: "/K".into(),
            id: "/B".into(),
            value: vec![],
        }],
        priority: 3,
        dag_name: String::new(),
    };
    assert_eq!(delta.to_bytes(), hex("delta"));
    assert_eq!(Delta::from_bytes(&hex("delta")).unwrap(), delta);

    let head = cid(vector("dagpb empty_dir"));
    let (c, bytes) = delta_block(&delta, &[head]);
    assert_eq!(bytes, hex("block"));
    assert_eq!(c.to_string(), vector("block_cid"));
    assert_eq!(block_id(&c), vector("block_id"));
    let node = Node::from_bytes(&bytes).unwrap();
    assert_eq!(node.links, vec![head]);
    assert_eq!(Delta::from_bytes(&node.data).unwrap(), delta);
    verify_block(&c, &bytes).unwrap();
    let mut tampered = bytes.clone();
    *tampered.last_mut().unwrap() ^= 1;
    assert!(verify_block(&c, &tampered).is_err());
}

#[test]
fn a_broadcast_encodes_as_go_ds_crdt_writes_it() {
    let head = cid(vector("dagpb empty_dir"));
    assert_eq!(Broadcast::of(&[head]).to_bytes(), hex("broadcast"));
    assert_eq!(
        Broadcast::heads_from_bytes(&hex("broadcast")).unwrap(),
        vec![head]
    );
    // Heads of other DAGs (go-ds-crdt's multi-DAG mode) are not this cluster's pinset.
    let other = Broadcast {
        heads: vec![BroadcastHead {
            cid: head.to_bytes(),
            dag_name: "other".into(),
        }],
        ..Broadcast::default()
    };
    assert!(Broadcast::heads_from_bytes(&other.to_bytes())
        .unwrap()
        .is_empty());
    let garbage = Broadcast {
        heads: vec![BroadcastHead {
            cid: vec![1, 2, 3],
            dag_name: String::new(),
        }],
        ..Broadcast::default()
    };
    assert!(Broadcast::heads_from_bytes(&garbage.to_bytes()).is_err());
    assert!(Broadcast::heads_from_bytes(&[0xff, 0xff]).is_err());
}

/// The checkpoint a broadcast offers (field 15) leaves go-ds-crdt's part as it was: Go peers
/// read the heads and skip the field; a broadcast without one is go-ds-crdt's, byte for byte.
#[test]
fn a_broadcast_offering_a_checkpoint_keeps_go_ds_crdts_heads() {
    let head = cid(vector("dagpb empty_dir"));
    let ckpt = crate::consensus::crdt::checkpoint::raw_cid(b"a checkpoint");
    assert_eq!(
        Broadcast::with_checkpoint(&[head], None).to_bytes(),
        hex("broadcast")
    );
    let offered = Broadcast::with_checkpoint(&[head], Some(&ckpt)).to_bytes();
    assert!(offered.starts_with(&hex("broadcast")));
    assert_eq!(Broadcast::heads_from_bytes(&offered).unwrap(), vec![head]);
    assert_eq!(
        Broadcast::parse(&offered).unwrap(),
        Announced {
            heads: vec![head],
            checkpoint: Some(ckpt),
            complete: false
        }
    );
    assert_eq!(
        Broadcast::parse(&hex("broadcast")).unwrap(),
        Announced {
            heads: vec![head],
            checkpoint: None,
            complete: false
        }
    );
    // Saying it holds every block its heads descend from: one more field, skipped by Go.
    let complete = Broadcast {
        complete: true,
        ..Broadcast::with_checkpoint(&[head], None)
    }
    .to_bytes();
    assert!(complete.starts_with(&hex("broadcast")));
    assert_eq!(complete.len(), hex("broadcast").len() + 3);
    assert!(Broadcast::parse(&complete).unwrap().complete);
}

#[test]
fn dag_pb_compatibility_vectors_decode() {
    // From boxo's compat_test.go: (bytes, data, number of links).
    let raw = cid::Cid::try_from(&[1u8, 85, 0, 5, 0, 1, 2, 3, 4][..]).unwrap();
    for (bytes, data, links) in [
        ("", &[][..], vec![]),
        ("0a00", &[], vec![]),
        ("0a050001020304", &[0, 1, 2, 3, 4], vec![]),
        ("120b0a09015500050001020304", &[], vec![raw]),
        ("120d0a090155000500010203041200", &[], vec![raw]),
        (
            "12160a090155000500010203041209736f6d65206e616d65",
            &[],
            vec![raw],
        ),
        (
            "12140a0901550005000102030418ffffffffffffff0f",
            &[],
            vec![raw],
        ),
        ("0a0500010203041200", &[0, 1, 2, 3, 4], vec![]),
    ] {
        let b = ::hex::decode(bytes).unwrap();
        match Node::from_bytes(&b) {
            Ok(n) => {
                assert_eq!(n.data, data, "{bytes}");
                assert_eq!(n.links, links, "{bytes}");
            }
            // A link without a hash is not a link the CRDT can follow.
            Err(e) => assert!(bytes.ends_with("1200") && links.is_empty(), "{bytes}: {e}"),
        }
    }
    // Our links carry an empty name and a size of 0, as go-ds-crdt's do.
    let ours = Node {
        links: vec![raw],
        data: vec![0, 1, 2, 3, 4],
    };
    assert_eq!(
        ::hex::encode(ours.to_bytes()),
        "120f0a09015500050001020304120018000a050001020304"
    );
    for bad in ["ff", "0a05", "1a00", "12021a00"] {
        assert!(
            Node::from_bytes(&::hex::decode(bad).unwrap()).is_err(),
            "{bad}"
        );
    }
}

fn sample_pin() -> Pin {
    let (c, _) = vector("pin_key").split_once(' ').unwrap();
    let mut options = PinOptions {
        replication_factor_min: -1,
        replication_factor_max: -1,
        name: "n".into(),
        expire_at: chrono::DateTime::from_timestamp(2_000_000_000, 0),
        ..PinOptions::default()
    };
    options.metadata.insert("b".into(), "2".into());
    options.metadata.insert("a".into(), "1".into());
    Pin {
        cid: Cid(cid(c)),
        pin_type: PinType::Pin,
        allocations: vec!["12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA".into()],
        max_depth: -1,
        reference: None,
        timestamp: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        options,
    }
}

#[test]
fn a_pin_encodes_as_ipfs_cluster_writes_it() {
    let pin = sample_pin();
    assert_eq!(pin_to_bytes(&pin).unwrap(), hex("pin"));
    assert_eq!(pin_from_bytes(&hex("pin")).unwrap(), pin);
}

#[test]
fn what_ipfs_clusters_pin_format_does_not_carry() {
    let mut pin = sample_pin();
    pin.max_depth = 0;
    pin.options.mode = PinMode::Direct;
    pin.options.user_allocations = vec!["x".into()];
    pin.timestamp = chrono::DateTime::from_timestamp(1_700_000_000, 999_000_000).unwrap();
    let back = pin_from_bytes(&pin_to_bytes(&pin).unwrap()).unwrap();
    assert_eq!(back.options.mode, PinMode::Direct);
    assert!(back.options.user_allocations.is_empty());
    assert_eq!(back.timestamp.timestamp(), 1_700_000_000);
    assert_eq!(back.timestamp.timestamp_subsec_nanos(), 0);
}

#[test]
fn a_pin_that_cannot_be_written_or_read_is_an_error() {
    let mut pin = sample_pin();
    pin.allocations = vec!["not a peer".into()];
    assert!(pin_to_bytes(&pin).is_err());
    let mut pin = sample_pin();
    pin.options.origins = vec!["nope".into()];
    assert!(pin_to_bytes(&pin).is_err());
    // Type 0 (IPFS Cluster's BadType) and unknown types are refused.
    let mut bytes = hex("pin");
    let at = bytes.windows(2).position(|w| w == [0x10, 0x01]).unwrap();
    bytes[at + 1] = 0;
    assert!(pin_from_bytes(&bytes).is_err());
    assert!(pin_from_bytes(&[0x0a, 0x01, 0x00]).is_err());
    assert!(pin_from_bytes(&[0xff]).is_err());
}
