//! The CRDT's formats on the wire, byte for byte those of go-ds-crdt and IPFS Cluster, so
//! that what a peer of this project writes a Go peer reads and the other way round:
//! - a **delta** (`crdt.pb.Delta` of go-ds-crdt's `pb/delta.proto`): the elements added and
//!   the tombstones (elements removed), its priority (its height in the DAG) and DAG name;
//! - a **block**: the delta as the data of a dag-pb node whose links are the heads it was
//!   built on (`makeNode` in go-ds-crdt's `ipld.go`), named by a CIDv1 (dag-pb, sha2-256);
//! - a **broadcast** (`crdt.pb.CRDTBroadcast` of `pb/bcast.proto`): the heads a peer
//!   announces on the cluster's pubsub topic ([`topic`]), with this project's two fields
//!   that Go peers skip (the checkpoint offered, and whether the sender wanted no block);
//! - a **value**: a pin as IPFS Cluster serializes it (`api.pb.Pin` of `api/pb/types.proto`,
//!   `Pin.ProtoMarshal`), under the key IPFS Cluster's `dsstate` gives it ([`pin_key`]).
//!
//! The messages are declared here as their `.proto` files declare them (prost, no code
//! generation); dag-pb is written by hand because its canonical form puts the links
//! (field 2) before the data (field 1), which no protobuf library does by itself.

use std::str::FromStr;

use cid::multihash::Multihash;
use data_encoding::BASE32_NOPAD;
use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use prost::Message;
use sha2::Digest;

use crate::types::{Cid, Pin, PinMode, PinOptions, PinType};

/// The dag-pb codec, as CIDs name it.
pub const DAG_PB: u64 = 0x70;
/// The sha2-256 multihash code.
const SHA2_256: u64 = 0x12;
/// The MD5 multihash code (the topic's name is the MD5 multihash of the cluster's name).
const MD5: u64 = 0xd5;

/// A CRDT delta (`crdt.pb.Delta`).
#[derive(Clone, PartialEq, Message)]
pub struct Delta {
    #[prost(message, repeated, tag = "1")]
    pub elements: Vec<Element>,
    #[prost(message, repeated, tag = "2")]
    pub tombstones: Vec<Element>,
    #[prost(uint64, tag = "3")]
    pub priority: u64,
    #[prost(string, tag = "4")]
    pub dag_name: String,
}

/// An element of a delta (`crdt.pb.Element`): `key` + `id` name it uniquely. An added
/// element travels without `id` (it is the id of the block that carries it); a tombstone
/// names the block of the element it removes.
#[derive(Clone, PartialEq, Message)]
pub struct Element {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub id: String,
    #[prost(bytes = "vec", tag = "3")]
    pub value: Vec<u8>,
}

/// What a peer announces on the pubsub topic (`crdt.pb.CRDTBroadcast`), and this project's
/// two additions, which Go peers skip as unknown fields (absent when empty or false, so a
/// broadcast without them is byte for byte go-ds-crdt's): the CID of the newest checkpoint
/// the peer holds (field 15), and whether it holds every block its heads descend from
/// (field 16: it wanted none as it spoke; what dropping old deltas counts on).
#[derive(Clone, PartialEq, Message)]
pub struct Broadcast {
    #[prost(message, repeated, tag = "1")]
    pub heads: Vec<BroadcastHead>,
    #[prost(bytes = "vec", tag = "15")]
    pub checkpoint: Vec<u8>,
    #[prost(bool, tag = "16")]
    pub complete: bool,
}

/// A broadcast as read: the heads, the checkpoint offered, and whether the sender holds
/// every block its heads descend from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announced {
    pub heads: Vec<cid::Cid>,
    pub checkpoint: Option<cid::Cid>,
    pub complete: bool,
}

/// One announced head (`crdt.pb.Head`): its CID's bytes and DAG name.
#[derive(Clone, PartialEq, Message)]
pub struct BroadcastHead {
    #[prost(bytes = "vec", tag = "1")]
    pub cid: Vec<u8>,
    #[prost(string, tag = "2")]
    pub dag_name: String,
}

/// Why bytes from another peer could not be read: nothing was applied from them.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct WireError(pub String);

fn bad(what: impl std::fmt::Display) -> WireError {
    WireError(what.to_string())
}

impl Delta {
    pub fn to_bytes(&self) -> Vec<u8> {
        self.encode_to_vec()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Delta, WireError> {
        Delta::decode(bytes).map_err(|e| bad(format!("not a CRDT delta: {e}")))
    }

    pub fn is_empty(&self) -> bool {
        self.elements.is_empty() && self.tombstones.is_empty()
    }
}

impl Broadcast {
    pub fn of(heads: &[cid::Cid]) -> Broadcast {
        Broadcast {
            heads: heads
                .iter()
                .map(|c| BroadcastHead {
                    cid: c.to_bytes(),
                    dag_name: String::new(),
                })
                .collect(),
            checkpoint: Vec::new(),
            complete: false,
        }
    }

    /// The broadcast of `heads` offering the checkpoint `checkpoint`.
    pub fn with_checkpoint(heads: &[cid::Cid], checkpoint: Option<&cid::Cid>) -> Broadcast {
        Broadcast {
            checkpoint: checkpoint.map(|c| c.to_bytes()).unwrap_or_default(),
            ..Broadcast::of(heads)
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.encode_to_vec()
    }

    /// The heads announced (of the default DAG, the only one IPFS Cluster uses; a message
    /// that is not a broadcast, or names something that is not a CID, is refused whole) and
    /// the checkpoint offered (`None`: none, or not a CID: a
    /// checkpoint is an optional extra, its absence never refuses the heads).
    pub fn parse(bytes: &[u8]) -> Result<Announced, WireError> {
        let b = Broadcast::decode(bytes).map_err(|e| bad(format!("not a CRDT broadcast: {e}")))?;
        let heads = b
            .heads
            .iter()
            .filter(|h| h.dag_name.is_empty())
            .map(|h| {
                cid::Cid::try_from(h.cid.as_slice())
                    .map_err(|e| bad(format!("a broadcast head is not a CID: {e}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(Announced {
            heads,
            checkpoint: cid::Cid::try_from(b.checkpoint.as_slice()).ok(),
            complete: b.complete,
        })
    }

    /// The heads announced (of the default DAG, the only one IPFS Cluster uses). A message
    /// that is not a broadcast, or names something that is not a CID, is refused whole.
    #[cfg(test)]
    pub fn heads_from_bytes(bytes: &[u8]) -> Result<Vec<cid::Cid>, WireError> {
        Broadcast::parse(bytes).map(|a| a.heads)
    }
}

// ---------------------------------------------------------------------------------------
// dag-pb

/// A dag-pb node as the CRDT uses it: data and the CIDs it links to (links carry an empty
/// name and a size of 0, as go-ds-crdt's `AddRawLink("", …)` writes them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub links: Vec<cid::Cid>,
    pub data: Vec<u8>,
}

fn put_key(out: &mut Vec<u8>, tag: u32, wire_type: prost::encoding::WireType) {
    prost::encoding::encode_key(tag, wire_type, out);
}

fn put_bytes(out: &mut Vec<u8>, tag: u32, bytes: &[u8]) {
    put_key(out, tag, prost::encoding::WireType::LengthDelimited);
    prost::encoding::encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

impl Node {
    /// The node's bytes in dag-pb's canonical form: every link (field 2: hash, name, size),
    /// then the data (field 1).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len() + 48 * self.links.len() + 8);
        for l in &self.links {
            let mut link = Vec::with_capacity(48);
            put_bytes(&mut link, 1, &l.to_bytes());
            put_bytes(&mut link, 2, b"");
            put_key(&mut link, 3, prost::encoding::WireType::Varint);
            prost::encoding::encode_varint(0, &mut link);
            put_bytes(&mut out, 2, &link);
        }
        put_bytes(&mut out, 1, &self.data);
        out
    }

    /// Reads a dag-pb node (fields in any order; unknown fields refused, as dag-pb does).
    pub fn from_bytes(mut bytes: &[u8]) -> Result<Node, WireError> {
        use prost::encoding::{decode_key, decode_varint, WireType};
        let mut node = Node {
            links: Vec::new(),
            data: Vec::new(),
        };
        let field = |buf: &mut &[u8]| -> Result<Vec<u8>, WireError> {
            let len = decode_varint(buf).map_err(bad)? as usize;
            if len > buf.len() {
                return Err(bad("dag-pb: a field is longer than the node"));
            }
            let (v, rest) = buf.split_at(len);
            *buf = rest;
            Ok(v.to_vec())
        };
        while !bytes.is_empty() {
            let (tag, wt) = decode_key(&mut bytes).map_err(bad)?;
            match (tag, wt) {
                (1, WireType::LengthDelimited) => node.data = field(&mut bytes)?,
                (2, WireType::LengthDelimited) => {
                    let mut link = field(&mut bytes)?;
                    let mut l = link.as_slice();
                    let mut hash = None;
                    while !l.is_empty() {
                        let (tag, wt) = decode_key(&mut l).map_err(bad)?;
                        match (tag, wt) {
                            (1, WireType::LengthDelimited) => hash = Some(field(&mut l)?),
                            (2, WireType::LengthDelimited) => {
                                field(&mut l)?;
                            }
                            (3, WireType::Varint) => {
                                decode_varint(&mut l).map_err(bad)?;
                            }
                            _ => return Err(bad(format!("dag-pb: unexpected link field {tag}"))),
                        }
                    }
                    let hash = hash.ok_or_else(|| bad("dag-pb: a link without a hash"))?;
                    let c = cid::Cid::try_from(hash.as_slice())
                        .map_err(|e| bad(format!("dag-pb: a link is not a CID: {e}")))?;
                    node.links.push(c);
                    link.clear();
                }
                _ => return Err(bad(format!("dag-pb: unexpected field {tag}"))),
            }
        }
        Ok(node)
    }
}

/// The CIDv1 (dag-pb, sha2-256) of a block's bytes.
pub fn block_cid(bytes: &[u8]) -> cid::Cid {
    let digest = sha2::Sha256::digest(bytes);
    let mh = Multihash::<64>::wrap(SHA2_256, &digest).expect("a sha2-256 digest fits");
    cid::Cid::new_v1(DAG_PB, mh)
}

/// Whether `bytes` are the block `c` names (its hash matches): a block fetched from
/// another peer is used only when it is.
pub fn verify_block(c: &cid::Cid, bytes: &[u8]) -> Result<(), WireError> {
    if c.hash().code() != SHA2_256 {
        return Err(bad(format!(
            "block {c}: hash function {:#x} is not sha2-256",
            c.hash().code()
        )));
    }
    let digest = sha2::Sha256::digest(bytes);
    if c.hash().digest() != digest.as_slice() {
        return Err(bad(format!("block {c}: its bytes do not match its CID")));
    }
    Ok(())
}

/// A delta's block: the dag-pb node carrying it, linking to `heads`, and its CID.
pub fn delta_block(delta: &Delta, heads: &[cid::Cid]) -> (cid::Cid, Vec<u8>) {
    let bytes = Node {
        links: heads.to_vec(),
        data: delta.to_bytes(),
    }
    .to_bytes();
    (block_cid(&bytes), bytes)
}

/// The id an element added by block `c` has (go-ds-crdt: `dshelp.MultihashToDsKey` of the
/// block's multihash): what tombstones name.
pub fn block_id(c: &cid::Cid) -> String {
    format!("/{}", BASE32_NOPAD.encode(&c.hash().to_bytes()))
}

// ---------------------------------------------------------------------------------------
// Topic and keys

/// The pubsub topic of a cluster's CRDT: the base58 MD5 multihash of `cluster_name`
/// (IPFS Cluster's `consensus/crdt`), so that the names of clusters do not collide with
/// other pubsub applications' topics.
pub fn topic(cluster_name: &str) -> String {
    use md5::Md5;
    let digest = Md5::digest(cluster_name.as_bytes());
    let mh = Multihash::<64>::wrap(MD5, &digest).expect("an MD5 digest fits");
    bs58::encode(mh.to_bytes()).into_string()
}

/// The key of a pin in the CRDT (IPFS Cluster's `dsstate`: `dshelp.NewKeyFromBinary` of the
/// CID's bytes, under the root namespace): `/` and the CID's bytes in base32.
pub fn pin_key(c: &Cid) -> String {
    format!("/{}", BASE32_NOPAD.encode(&c.0.to_bytes()))
}

/// The CID a pin's key names; `None` for a key that names none (not a pin).
pub fn key_cid(key: &str) -> Option<Cid> {
    let b32 = key.strip_prefix('/')?;
    let bytes = BASE32_NOPAD.decode(b32.as_bytes()).ok()?;
    cid::Cid::try_from(bytes.as_slice()).ok().map(Cid)
}

// ---------------------------------------------------------------------------------------
// Pins (IPFS Cluster's api/pb/types.proto)

#[derive(Clone, PartialEq, Message)]
struct PbPin {
    #[prost(bytes = "vec", tag = "1")]
    cid: Vec<u8>,
    /// `PinType`: 0 bad, 1 data, 2 meta, 3 cluster-DAG, 4 shard.
    #[prost(int32, tag = "2")]
    pin_type: i32,
    #[prost(bytes = "vec", repeated, tag = "3")]
    allocations: Vec<Vec<u8>>,
    #[prost(sint32, tag = "4")]
    max_depth: i32,
    #[prost(bytes = "vec", tag = "5")]
    reference: Vec<u8>,
    #[prost(message, optional, tag = "6")]
    options: Option<PbPinOptions>,
    #[prost(uint64, tag = "7")]
    timestamp: u64,
}

#[derive(Clone, PartialEq, Message)]
struct PbPinOptions {
    #[prost(sint32, tag = "1")]
    replication_factor_min: i32,
    #[prost(sint32, tag = "2")]
    replication_factor_max: i32,
    #[prost(string, tag = "3")]
    name: String,
    #[prost(uint64, tag = "4")]
    shard_size: u64,
    /// Deprecated in IPFS Cluster (a map's order is not stable): read, never written.
    #[prost(btree_map = "string, string", tag = "6")]
    metadata: std::collections::BTreeMap<String, String>,
    #[prost(bytes = "vec", tag = "7")]
    pin_update: Vec<u8>,
    #[prost(uint64, tag = "8")]
    expire_at: u64,
    #[prost(bytes = "vec", repeated, tag = "9")]
    origins: Vec<Vec<u8>>,
    #[prost(message, repeated, tag = "10")]
    sorted_metadata: Vec<PbMetadata>,
}

#[derive(Clone, PartialEq, Message)]
struct PbMetadata {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(string, tag = "2")]
    value: String,
}

fn pin_type_number(t: PinType) -> i32 {
    match t {
        PinType::Pin => 1,
        PinType::MetaPin => 2,
        PinType::ClusterdagPin => 3,
        PinType::ShardPin => 4,
    }
}

/// Whole seconds since 1970 of a time after it (0, "unset", for none or one before).
fn unix_secs(t: Option<chrono::DateTime<chrono::Utc>>) -> u64 {
    t.map_or(0, |t| u64::try_from(t.timestamp()).unwrap_or(0))
}

fn from_unix_secs(s: u64) -> Option<chrono::DateTime<chrono::Utc>> {
    if s == 0 {
        return None;
    }
    chrono::DateTime::from_timestamp(i64::try_from(s).ok()?, 0)
}

/// A pin as IPFS Cluster serializes it into the CRDT (`Pin.ProtoMarshal`). What that format
/// has no field for is not carried: `user_allocations`, and the mode, which is read back
/// from `max_depth`; times are whole seconds.
pub fn pin_to_bytes(pin: &Pin) -> Result<Vec<u8>, WireError> {
    let allocations = pin
        .allocations
        .iter()
        .map(|a| {
            PeerId::from_str(a)
                .map(|p| p.to_bytes())
                .map_err(|e| bad(format!("allocation {a:?} is not a peer id: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let o = &pin.options;
    let origins = o
        .origins
        .iter()
        .map(|a| {
            Multiaddr::from_str(a)
                .map(|m| m.to_vec())
                .map_err(|e| bad(format!("origin {a:?} is not a multiaddress: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let pb = PbPin {
        cid: pin.cid.0.to_bytes(),
        pin_type: pin_type_number(pin.pin_type),
        allocations,
        max_depth: pin.max_depth,
        reference: pin
            .reference
            .as_ref()
            .map_or(Vec::new(), |r| r.0.to_bytes()),
        options: Some(PbPinOptions {
            replication_factor_min: o.replication_factor_min,
            replication_factor_max: o.replication_factor_max,
            name: o.name.clone(),
            shard_size: o.shard_size,
            metadata: Default::default(),
            pin_update: o.pin_update.as_ref().map_or(Vec::new(), |c| c.0.to_bytes()),
            expire_at: unix_secs(o.expire_at),
            origins,
            // A BTreeMap iterates in the byte order of its keys, as Go's sort.Strings.
            sorted_metadata: o
                .metadata
                .iter()
                .map(|(k, v)| PbMetadata {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect(),
        }),
        timestamp: unix_secs(Some(pin.timestamp)),
    };
    Ok(pb.encode_to_vec())
}

/// A pin from IPFS Cluster's serialization (`Pin.ProtoUnmarshal`): an unreadable CID,
/// allocation or origin makes the whole value unreadable (IPFS Cluster refuses it too).
pub fn pin_from_bytes(bytes: &[u8]) -> Result<Pin, WireError> {
    let pb = PbPin::decode(bytes).map_err(|e| bad(format!("not an IPFS Cluster pin: {e}")))?;
    let cid = cid::Cid::try_from(pb.cid.as_slice())
        .map_err(|e| bad(format!("the pin's CID is not a CID: {e}")))?;
    let pin_type = match pb.pin_type {
        1 => PinType::Pin,
        2 => PinType::MetaPin,
        3 => PinType::ClusterdagPin,
        4 => PinType::ShardPin,
        n => return Err(bad(format!("pin type {n} is not one this peer knows"))),
    };
    let allocations = pb
        .allocations
        .iter()
        .map(|b| {
            PeerId::from_bytes(b)
                .map(|p| p.to_base58())
                .map_err(|e| bad(format!("an allocation is not a peer id: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let o = pb.options.unwrap_or_default();
    let origins = o
        .origins
        .iter()
        .map(|b| {
            Multiaddr::try_from(b.clone())
                .map(|m| m.to_string())
                .map_err(|e| bad(format!("an origin is not a multiaddress: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut metadata = o.metadata;
    metadata.extend(o.sorted_metadata.into_iter().map(|m| (m.key, m.value)));
    let some_cid = |b: &[u8]| cid::Cid::try_from(b).ok().map(Cid);
    Ok(Pin {
        cid: Cid(cid),
        pin_type,
        allocations,
        max_depth: pb.max_depth,
        reference: some_cid(&pb.reference),
        timestamp: from_unix_secs(pb.timestamp).unwrap_or(chrono::DateTime::UNIX_EPOCH),
        options: PinOptions {
            replication_factor_min: o.replication_factor_min,
            replication_factor_max: o.replication_factor_max,
            name: o.name,
            mode: if pb.max_depth == 0 {
                PinMode::Direct
            } else {
                PinMode::Recursive
            },
            shard_size: o.shard_size,
            user_allocations: Vec::new(),
            expire_at: from_unix_secs(o.expire_at),
            metadata,
            pin_update: some_cid(&o.pin_update),
            origins,
        },
    })
}

#[cfg(test)]
mod tests;
