use super::*;

/// A peer id (Ed25519, identity multihash: 38 bytes).
fn peer() -> (String, Vec<u8>) {
    let id = libp2p_identity::Keypair::ed25519_from_bytes([7u8; 32])
        .unwrap()
        .public()
        .to_peer_id();
    (id.to_string(), id.to_bytes())
}

/// What IPFS Cluster's pubsub monitor publishes for a ping, written out by hand from
/// ugorji's msgpack rules (map of the codec names in declaration order, zero values left
/// out, legacy raw strings, smallest signed integers).
fn ping_vector(peer: &[u8], value: &str) -> Vec<u8> {
    let mut v = vec![0x85]; // five fields
    v.extend_from_slice(b"\xa1n\xa4ping");
    v.extend_from_slice(b"\xa1p\xda\x00");
    v.push(peer.len() as u8); // 38 bytes: str16, never str8
    v.extend_from_slice(peer);
    v.extend_from_slice(b"\xa1v");
    v.push(0xa0 | value.len() as u8);
    v.extend_from_slice(value.as_bytes());
    v.extend_from_slice(b"\xa1e\xd3");
    v.extend_from_slice(&1_700_000_000_123_456_789i64.to_be_bytes());
    v.extend_from_slice(b"\xa1d\xc3");
    v
}

#[test]
fn a_ping_is_written_as_ipfs_cluster_writes_it_and_read_back() {
    let (id, bytes) = peer();
    assert_eq!(bytes.len(), 38);
    let m = Metric {
        name: "ping".into(),
        peer: id.clone(),
        value: "{}".into(),
        expire: 1_700_000_000_123_456_789,
        valid: true,
        ..Default::default()
    };
    let wire = encode(&m).unwrap();
    assert_eq!(wire, ping_vector(&bytes, "{}"));
    assert_eq!(decode(&wire).unwrap(), m);
}

#[test]
fn every_field_and_integer_form_round_trips() {
    let (id, _) = peer();
    for n in [
        0i64,
        1,
        127,
        128,
        32_767,
        32_768,
        2_147_483_647,
        2_147_483_648,
        -1,
        -32,
        -33,
        -128,
        -129,
        -32_769,
        -2_147_483_649,
        i64::MIN,
        i64::MAX,
    ] {
        let m = Metric {
            name: "freespace".into(),
            peer: id.clone(),
            value: "x".repeat(40), // str16
            expire: n,
            valid: true,
            weight: n,
            partitionable: true,
            received_at: n,
        };
        assert_eq!(decode(&encode(&m).unwrap()).unwrap(), m, "{n}");
    }
    // The integer forms ugorji picks (signed, smallest).
    let weight = |w: i64| {
        let wire = encode(&Metric {
            weight: w,
            ..Default::default()
        })
        .unwrap();
        wire[3..].to_vec() // fixmap, "w" key
    };
    assert_eq!(weight(5), vec![0x05]);
    assert_eq!(weight(-5), vec![0xfb]);
    assert_eq!(weight(200), vec![0xd1, 0x00, 0xc8]);
    assert_eq!(weight(-100), vec![0xd0, 0x9c]);
    assert_eq!(weight(70_000), vec![0xd2, 0x00, 0x01, 0x11, 0x70]);
}

#[test]
fn other_encoders_forms_and_the_old_multicodec_prefix_are_read() {
    let (id, bytes) = peer();
    // str8 and bin8 for strings and the peer, unsigned integers, a nil, an unknown key
    // holding nested containers: as another msgpack encoder might write them.
    let mut v = vec![0x86];
    v.extend_from_slice(b"\xa1n\xd9\x04ping");
    v.extend_from_slice(b"\xa1p\xc4");
    v.push(bytes.len() as u8);
    v.extend_from_slice(&bytes);
    v.extend_from_slice(b"\xa1e\xcf\x00\x00\x00\x00\x00\x00\x01\x00");
    v.extend_from_slice(b"\xa1v\xc0");
    v.extend_from_slice(b"\xa1x\x92\x81\xa1a\xcb\x00\x00\x00\x00\x00\x00\x00\x00\xd4\x01\x02");
    v.extend_from_slice(b"\xa1d\xc3");
    let m = decode(&v).unwrap();
    assert_eq!(m.name, "ping");
    assert_eq!(m.peer, id);
    assert_eq!(m.expire, 256);
    assert!(m.valid);
    assert_eq!(m.value, "");
    let mut old = b"\x09/msgpack\n".to_vec();
    old.extend_from_slice(&ping_vector(&bytes, "{}"));
    assert_eq!(decode(&old).unwrap().peer, id);
}

#[test]
fn hostile_messages_get_an_error() {
    let (_, bytes) = peer();
    let good = ping_vector(&bytes, "{}");
    // Every cut of a good message.
    for n in 0..good.len() {
        assert!(decode(&good[..n]).is_err(), "cut at {n}");
    }
    let mut trailing = good.clone();
    trailing.push(0x00);
    assert!(decode(&trailing).is_err());
    // Lengths far beyond the message.
    assert!(decode(b"\xdf\xff\xff\xff\xff").is_err());
    assert!(decode(b"\x81\xa1v\xdb\xff\xff\xff\xff").is_err());
    // Nesting beyond the bound.
    let mut deep = b"\x81\xa1x".to_vec();
    deep.extend(std::iter::repeat_n(0x91u8, 100));
    deep.push(0x00);
    let e = decode(&deep).unwrap_err();
    assert!(e.0.contains("nested too deep"), "{e}");
    // Not a map, a key that is not a string, fields of the wrong kind, a bad peer.
    assert!(decode(b"\x93\x01\x02\x03").is_err());
    assert!(decode(b"\x81\x01\x02").is_err());
    assert!(decode(b"\x81\xa1n\x05").is_err());
    assert!(decode(b"\x81\xa1e\xa1x").is_err());
    assert!(decode(b"\x81\xa1d\x01").is_err());
    assert!(decode(b"\x81\xa1p\xa3abc").is_err());
    assert!(decode(b"\x81\xa1n\xa2\xff\xfe").is_err(), "not UTF-8");
    assert!(decode(b"\x81\xa1e\xcf\xff\xff\xff\xff\xff\xff\xff\xff").is_err());
    assert!(decode(&vec![0x80; MAX_MESSAGE + 1]).is_err());
    let long = Metric {
        value: "x".repeat(MAX_VALUE + 1),
        ..Default::default()
    };
    assert!(decode(&encode(&long).unwrap())
        .unwrap_err()
        .0
        .contains("value"));
    // Names: IPFS Cluster's informers' only.
    for n in [
        "ping",
        "freespace",
        "reposize",
        "numpin",
        "pinqueue",
        "tag:group",
    ] {
        assert!(known_name(n), "{n}");
    }
    for n in [
        "",
        "junk",
        "tag:",
        "ping2",
        &format!("tag:{}", "x".repeat(65)),
    ] {
        assert!(!known_name(n), "{n}");
    }
    // A peer that is not a peer id is never written.
    assert!(encode(&Metric {
        peer: "not a peer".into(),
        ..Default::default()
    })
    .is_err());
}
