//! The second consensus, `consensus: crdt`: the pinset as an add-wins observed-remove set
//! replicated by a Merkle-CRDT, as IPFS Cluster's CRDT mode (go-ds-crdt) keeps it, with the
//! same formats on the wire ([`wire`]).
pub(crate) mod bitswap;
pub(crate) mod component;
pub(crate) mod net;
pub(crate) mod store;
pub(crate) mod sync;
pub(crate) mod wire;
