//! Subnet membership, fault tolerance, thresholds and the beacon-seeded
//! rankings of block makers and notaries.
//!
//! With `n` nodes the subnet tolerates `f = ⌊(n−1)/3⌋` faulty ones. Per
//! height:
//! * block makers are ranked by a ChaCha20 shuffle of the sorted node ids,
//!   seeded by the previous height's random beacon; only ranks `0..=f` make
//!   blocks (f+1 makers guarantee an honest one);
//! * the notary committee (notarization and finalization) is the first
//!   `3f+1` nodes of a second shuffle (all nodes when `n = 3f+1`), and needs
//!   `committee − f = 2f+1` shares;
//! * the random beacon and tape need `f+1` threshold shares from all members.
//!
//! Using the beacon of `h−1` (not `h`) lets the beacon and proposals of `h`
//! be produced in parallel.

use crate::hash::{CryptoHash, Encoder, domain};
use crate::types::Rank;
use cairn_types::NodeId;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use std::collections::BTreeSet;

/// Why a membership can't be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    /// A subnet needs at least one node.
    #[error("a subnet needs at least one node")]
    Empty,
    /// Every node id must appear once.
    #[error("node {0} is listed twice")]
    Duplicate(NodeId),
}

/// The number of faulty nodes `n` nodes tolerate: `⌊(n−1)/3⌋`.
pub fn faults_tolerated(n: usize) -> usize {
    n.saturating_sub(1) / 3
}

/// What a shuffle is for: distinct purposes give independent orders from
/// the same beacon.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ShufflePurpose {
    /// Ranking block makers.
    BlockMakerRanking,
    /// Sampling the notary committee.
    CommitteeSampling,
}

impl ShufflePurpose {
    fn tag(self) -> u8 {
        match self {
            ShufflePurpose::BlockMakerRanking => 1,
            ShufflePurpose::CommitteeSampling => 2,
        }
    }
}

/// A uniform integer in `0..bound` from a ChaCha20 stream, by rejection
/// sampling (no modulo bias, no dependence on `rand`'s algorithms, so the
/// order is fixed forever).
fn uniform(rng: &mut ChaCha20Rng, bound: u64) -> u64 {
    debug_assert!(bound > 0);
    let zone = u64::MAX - (u64::MAX % bound);
    loop {
        let x = rng.next_u64();
        if x < zone {
            return x % bound;
        }
    }
}

/// Shuffles the (sorted) node ids with Fisher–Yates driven by ChaCha20
/// seeded from `beacon_hash` and `purpose`. Every node computes the same
/// order from the same beacon.
pub fn shuffle(nodes: &[NodeId], beacon_hash: &CryptoHash, purpose: ShufflePurpose) -> Vec<NodeId> {
    let seed = Encoder::new(domain::SHUFFLE_SEED).u8(purpose.tag()).hash(beacon_hash).digest();
    let mut rng = ChaCha20Rng::from_seed(seed.0);
    let mut v = nodes.to_vec();
    for i in (1..v.len()).rev() {
        let j = uniform(&mut rng, i as u64 + 1) as usize;
        v.swap(i, j);
    }
    v
}

/// Where consensus learns who the subnet's members are at a registry
/// version (the node's registry; later the NNS registry canister).
pub trait SubnetRegistry: Send + Sync + std::fmt::Debug {
    /// The members at `version`, or `None` if this node does not know that
    /// version yet (consensus then waits).
    fn members_at(&self, version: cairn_types::RegistryVersion) -> Option<Vec<NodeId>>;
}

/// Members that never change (tests and simulations without membership
/// changes).
#[derive(Clone, Debug)]
pub struct FixedMembers(pub Vec<NodeId>);

impl SubnetRegistry for FixedMembers {
    fn members_at(&self, _: cairn_types::RegistryVersion) -> Option<Vec<NodeId>> {
        Some(self.0.clone())
    }
}

/// The members of a subnet (sorted node ids) and the sizes derived from
/// their number.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Membership {
    nodes: Vec<NodeId>,
}

impl Membership {
    /// A membership of these nodes (any order; stored sorted).
    pub fn new(nodes: impl IntoIterator<Item = NodeId>) -> Result<Membership, MembershipError> {
        let mut v: Vec<NodeId> = nodes.into_iter().collect();
        if v.is_empty() {
            return Err(MembershipError::Empty);
        }
        v.sort();
        for w in v.windows(2) {
            if w[0] == w[1] {
                return Err(MembershipError::Duplicate(w[0]));
            }
        }
        Ok(Membership { nodes: v })
    }

    /// The node ids, sorted ascending.
    pub fn nodes(&self) -> &[NodeId] {
        &self.nodes
    }

    /// Number of nodes `n`.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always false (a membership has at least one node); for clippy.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Whether `node` is a member.
    pub fn contains(&self, node: &NodeId) -> bool {
        self.nodes.binary_search(node).is_ok()
    }

    /// Position of `node` in the sorted list: its index in the threshold
    /// key (share `index + 1`).
    pub fn index_of(&self, node: &NodeId) -> Option<usize> {
        self.nodes.binary_search(node).ok()
    }

    /// Faults tolerated, `f`.
    pub fn f(&self) -> usize {
        faults_tolerated(self.len())
    }

    /// Number of block makers per height, `f + 1`.
    pub fn block_maker_count(&self) -> usize {
        self.f() + 1
    }

    /// Size of the notary committee, `3f + 1`.
    pub fn notary_committee_size(&self) -> usize {
        3 * self.f() + 1
    }

    /// Shares needed for a notarization or finalization: `committee − f`.
    pub fn notarization_threshold(&self) -> usize {
        self.notary_committee_size() - self.f()
    }

    /// Shares needed for a catch-up package (the high-threshold key, which
    /// also certifies states): `n − f`.
    pub fn catch_up_threshold(&self) -> usize {
        self.len() - self.f()
    }

    /// Shares needed for a random beacon or tape: `f + 1`.
    pub fn beacon_threshold(&self) -> usize {
        self.f() + 1
    }

    /// The committees of the height after the beacon with this hash.
    pub fn round(&self, previous_beacon: &CryptoHash) -> RoundCommittee {
        let ranking = shuffle(&self.nodes, previous_beacon, ShufflePurpose::BlockMakerRanking);
        let size = self.notary_committee_size();
        let notaries: BTreeSet<NodeId> = if size >= self.len() {
            self.nodes.iter().copied().collect()
        } else {
            shuffle(&self.nodes, previous_beacon, ShufflePurpose::CommitteeSampling).into_iter().take(size).collect()
        };
        RoundCommittee { makers: ranking.into_iter().take(self.block_maker_count()).collect(), notaries }
    }
}

/// Who makes blocks (by rank) and who notarizes at one height.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RoundCommittee {
    makers: Vec<NodeId>,
    notaries: BTreeSet<NodeId>,
}

impl RoundCommittee {
    /// The block maker of each rank, rank 0 first (`f + 1` entries).
    pub fn makers(&self) -> &[NodeId] {
        &self.makers
    }

    /// `node`'s block-maker rank, if it has one at this height.
    pub fn rank_of(&self, node: &NodeId) -> Option<Rank> {
        self.makers.iter().position(|n| n == node).map(|r| Rank(r as u64))
    }

    /// Whether `node` is on the notary committee.
    pub fn is_notary(&self, node: &NodeId) -> bool {
        self.notaries.contains(node)
    }

    /// The notary committee.
    pub fn notaries(&self) -> &BTreeSet<NodeId> {
        &self.notaries
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_types::Principal;

    fn nodes(n: usize) -> Vec<NodeId> {
        (0..n).map(|i| NodeId(Principal::try_from_slice(&[i as u8 + 1; 10]).unwrap())).collect()
    }

    #[test]
    fn thresholds() {
        // (n, f, makers, committee, notarization threshold, beacon threshold)
        let table = [
            (1, 0, 1, 1, 1, 1),
            (2, 0, 1, 1, 1, 1),
            (3, 0, 1, 1, 1, 1),
            (4, 1, 2, 4, 3, 2),
            (5, 1, 2, 4, 3, 2),
            (7, 2, 3, 7, 5, 3),
            (13, 4, 5, 13, 9, 5),
            (28, 9, 10, 28, 19, 10),
            (40, 13, 14, 40, 27, 14),
        ];
        for (n, f, makers, committee, nt, bt) in table {
            let m = Membership::new(nodes(n)).unwrap();
            assert_eq!(m.f(), f, "n={n}");
            assert_eq!(m.block_maker_count(), makers, "n={n}");
            assert_eq!(m.notary_committee_size(), committee, "n={n}");
            assert_eq!(m.notarization_threshold(), nt, "n={n}");
            assert_eq!(m.beacon_threshold(), bt, "n={n}");
            // Two notarization quorums overlap in at least f+1 nodes, so in an honest one.
            assert!(2 * nt - committee > f, "n={n}");
        }
    }

    #[test]
    fn membership_rejects_empty_and_duplicates() {
        assert_eq!(Membership::new(vec![]), Err(MembershipError::Empty));
        let mut v = nodes(3);
        v.push(v[1]);
        assert!(matches!(Membership::new(v), Err(MembershipError::Duplicate(_))));
    }

    #[test]
    fn ranking_is_deterministic_and_seed_dependent() {
        let m = Membership::new(nodes(13)).unwrap();
        let a = m.round(&CryptoHash([1; 32]));
        let b = Membership::new(nodes(13).into_iter().rev()).unwrap().round(&CryptoHash([1; 32]));
        assert_eq!(a, b, "input order must not matter");
        assert_eq!(a.makers().len(), 5);
        let c = m.round(&CryptoHash([2; 32]));
        assert_ne!(a.makers(), c.makers());
        // Pinned: the shuffle algorithm must never change (it decides who leads).
        let s = shuffle(&nodes(5), &CryptoHash([7; 32]), ShufflePurpose::BlockMakerRanking);
        let idx: Vec<u8> = s.iter().map(|n| n.as_slice()[0]).collect();
        assert_eq!(idx, vec![5, 4, 3, 1, 2]);
        let again = shuffle(&nodes(5), &CryptoHash([7; 32]), ShufflePurpose::BlockMakerRanking);
        assert_eq!(s, again);
        let mut sorted = idx.clone();
        sorted.sort();
        assert_eq!(sorted, vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn ranks_are_roughly_uniform() {
        // Over many beacons every node leads about equally often.
        let m = Membership::new(nodes(4)).unwrap();
        let mut leads = [0u32; 4];
        for i in 0..4000u32 {
            let mut h = [0u8; 32];
            h[..4].copy_from_slice(&i.to_be_bytes());
            let r = m.round(&CryptoHash(h));
            leads[(r.makers()[0].as_slice()[0] - 1) as usize] += 1;
        }
        for l in leads {
            assert!((850..1150).contains(&l), "{leads:?}");
        }
    }

    #[test]
    fn rank_of_and_committee() {
        let m = Membership::new(nodes(5)).unwrap();
        let r = m.round(&CryptoHash([3; 32]));
        assert_eq!(r.rank_of(&r.makers()[0]), Some(Rank(0)));
        assert_eq!(r.rank_of(&r.makers()[1]), Some(Rank(1)));
        let non_makers = nodes(5).into_iter().filter(|n| r.rank_of(n).is_none()).count();
        assert_eq!(non_makers, 3);
        // n = 5 ⇒ f = 1 ⇒ committee of 4 sampled from 5.
        assert_eq!(r.notaries().len(), 4);
        assert!(r.notaries().iter().all(|n| m.contains(n)));
    }
}
