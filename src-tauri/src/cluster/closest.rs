//! Which trusted peer looks after a pin when there is no leader (the CRDT): IPFS Cluster's
//! `distanceChecker` (`util.go`). Each peer id and each CID is hashed with BLAKE2b-256 (the
//! peer id's bytes, the CID's binary form) and the peer whose hash is nearest the pin's by
//! XOR acts: it repins the pin away from a dead peer, or unpins it once expired. Every peer
//! that sees the same trusted peers agrees, the work spreads over them, and Go peers of the
//! same cluster make the same choice.

use blake2::{Blake2b, Digest};

use crate::types::Cid;

type Hash = [u8; 32];

fn hash(bytes: &[u8]) -> Hash {
    Blake2b::<blake2::digest::consts::U32>::digest(bytes).into()
}

/// This peer and the other trusted peers that could act.
pub(crate) struct Closeness {
    me: Hash,
    others: Vec<Hash>,
}

impl Closeness {
    /// `me` and `others` are peer ids as text; one that does not parse is left out.
    pub(crate) fn new(me: &str, others: impl IntoIterator<Item = String>) -> Closeness {
        let of = |p: &str| {
            p.parse::<libp2p::PeerId>()
                .ok()
                .map(|p| hash(&p.to_bytes()))
        };
        Closeness {
            me: of(me).unwrap_or([0xff; 32]),
            others: others.into_iter().filter_map(|p| of(&p)).collect(),
        }
    }

    /// Whether this peer is the nearest to `cid` (or as near as any other).
    pub(crate) fn is_closest(&self, cid: &Cid) -> bool {
        let c = hash(&cid.0.to_bytes());
        let distance = |p: &Hash| -> Hash { std::array::from_fn(|i| p[i] ^ c[i]) };
        let mine = distance(&self.me);
        self.others.iter().all(|o| mine <= distance(o))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blake2b_256_as_go_computes_it() {
        // Python's hashlib.blake2b(b"ipfs-cluster", digest_size=32), as Go's blake2b.Sum256.
        let want = "d301c4ab79ead5eb20116b82400c755ac8c8ce09fd536967cae1a5748f9d0d86";
        let got: String = hash(b"ipfs-cluster")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn exactly_one_of_the_trusted_peers_is_closest_to_each_pin() {
        let peers: Vec<String> = (0..4)
            .map(|_| {
                libp2p::identity::Keypair::generate_ed25519()
                    .public()
                    .to_peer_id()
                    .to_string()
            })
            .collect();
        let mut acted = vec![0; peers.len()];
        for n in 0..400u32 {
            let cid = crate::ipfsconn::fake::test_cid(n);
            let closest: Vec<usize> = (0..peers.len())
                .filter(|&i| {
                    let others = peers.iter().enumerate().filter(|(j, _)| *j != i);
                    Closeness::new(&peers[i], others.map(|(_, p)| p.clone())).is_closest(&cid)
                })
                .collect();
            assert_eq!(closest.len(), 1, "{cid:?}");
            acted[closest[0]] += 1;
        }
        // The work is spread: each of 4 peers acts for some of 400 pins.
        assert!(acted.iter().all(|&n| n > 40), "{acted:?}");
        // Alone, a peer is closest to everything.
        let alone = Closeness::new(&peers[0], Vec::new());
        assert!(alone.is_closest(&crate::ipfsconn::fake::test_cid(1)));
    }
}
