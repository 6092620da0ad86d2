//! Rule-level tests: a handful of nodes driven by hand (who receives what,
//! at which time), to check each consensus rule in isolation.

use crate::*;
use cairn_types::{Height, NodeId, Principal, RegistryVersion, Time};
use std::sync::Arc;

const MS: u64 = 1_000_000;

/// Payloads of at most one message, which must be `[0xC0, …]`.
#[derive(Default)]
struct TestPayload;

impl PayloadHandler for TestPayload {
    fn build(&mut self, _: &PayloadContext<'_>) -> Payload {
        Payload::default()
    }
    fn validate(&mut self, _: &PayloadContext<'_>, p: &Payload) -> Result<(), PayloadError> {
        if p.len() > 1 || p.messages.iter().any(|m| m.first() != Some(&0xC0)) {
            return Err(PayloadError::Invalid("test rule".into()));
        }
        Ok(())
    }
}

struct Node {
    engine: Consensus<FakeCrypto, TestPayload>,
    pool: ArtifactPool,
    delivered: Vec<Batch>,
    last: StepOutput,
    /// Heights of every finalization share this node ever made.
    finalization_votes: Vec<Height>,
}

struct Cluster {
    nodes: Vec<Node>,
    genesis: Genesis,
    membership: Arc<Membership>,
    params: ConsensusParams,
}

fn node_id(i: usize) -> NodeId {
    NodeId(Principal::try_from_slice(&[i as u8 + 1; 29]).unwrap())
}

impl Cluster {
    fn new(n: usize) -> Cluster {
        Self::with_params(n, ConsensusParams::default())
    }

    fn with_params(n: usize, params: ConsensusParams) -> Cluster {
        let membership = Arc::new(Membership::new((0..n).map(node_id)).unwrap());
        let genesis = Genesis {
            time: Time::from_secs(1000),
            registry_version: RegistryVersion(1),
            random_seed: [7; 32],
            summary: FakeCrypto::genesis_summary(&membership),
        };
        let mut c = Cluster { nodes: Vec::new(), genesis, membership, params };
        for i in 0..n {
            let pool = ArtifactPool::new(&c.genesis);
            c.nodes.push(Node {
                engine: c.engine(i, Height(1)),
                pool,
                delivered: Vec::new(),
                last: StepOutput::default(),
                finalization_votes: Vec::new(),
            });
        }
        c
    }

    fn engine(&self, i: usize, next: Height) -> Consensus<FakeCrypto, TestPayload> {
        let cfg = ConsensusConfig {
            node_id: node_id(i),
            registry: Arc::new(crate::FixedMembers(self.membership.nodes().to_vec())),
            params: self.params.clone(),
            genesis: self.genesis.clone(),
        };
        Consensus::new(cfg, FakeCrypto::new(node_id(i), self.membership.clone()), TestPayload, next)
    }

    fn crypto(&self, i: usize) -> FakeCrypto {
        FakeCrypto::new(node_id(i), self.membership.clone())
    }

    fn time(&self, ms: u64) -> Time {
        Time::from_nanos(self.genesis.time.as_nanos() + ms * MS)
    }

    fn index(&self, id: &NodeId) -> usize {
        (0..self.nodes.len()).find(|i| node_id(*i) == *id).unwrap()
    }

    /// Steps node `i` at `ms` after genesis (certified = delivered height).
    fn step(&mut self, i: usize, ms: u64) -> StepOutput {
        let t = self.time(ms);
        let n = &mut self.nodes[i];
        let local =
            LocalState { certified_height: Height(n.delivered.len() as u64), registry_version: RegistryVersion(1) };
        n.last = n.engine.step(&mut n.pool, t, &local);
        n.delivered.extend(n.last.batches.iter().cloned());
        for e in &n.last.events {
            if let PoolEvent::Validated { message: ConsensusMessage::FinalizationShare(s), own: true, .. } = e {
                n.finalization_votes.push(s.content.height);
            }
        }
        self.nodes[i].last.clone()
    }

    fn give(&mut self, to: usize, m: &ConsensusMessage) {
        self.nodes[to].pool.insert_unvalidated(m.clone());
    }

    /// Copies every validated artifact of `from` (except genesis) to `to`.
    fn sync(&mut self, from: usize, to: usize) {
        let msgs: Vec<ConsensusMessage> =
            self.nodes[from].pool.validated().filter(|(id, _)| id.height.0 > 0).map(|(_, m)| m.clone()).collect();
        for m in msgs {
            self.give(to, &m);
        }
    }

    fn sync_all(&mut self) {
        for a in 0..self.nodes.len() {
            for b in 0..self.nodes.len() {
                if a != b {
                    self.sync(a, b);
                }
            }
        }
    }

    /// Steps everyone every 10 ms, fully connected, until all delivered `h`.
    fn run_to(&mut self, mut ms: u64, h: u64) -> u64 {
        while self.nodes.iter().any(|n| (n.delivered.len() as u64) < h) {
            for i in 0..self.nodes.len() {
                self.step(i, ms);
            }
            self.sync_all();
            ms += 10;
            assert!(ms < 10_000_000, "no progress");
        }
        ms
    }

    fn round(&self, h: u64) -> RoundCommittee {
        let pool = &self.nodes[0].pool;
        self.membership.round(&pool.beacon(Height(h - 1)).unwrap().hash())
    }

    fn maker(&self, h: u64, rank: usize) -> usize {
        self.index(&self.round(h).makers()[rank])
    }

    /// Gives every node the rank-0 block of height 1 and lets each sign its
    /// notarization share (at 300 ms, past the notary delay). Returns a node
    /// other than the block's maker and the other three.
    fn notarization_shares_for_height_1(&mut self) -> (usize, Vec<usize>) {
        let n = self.nodes.len();
        let r0 = self.maker(1, 0);
        for i in 0..n {
            self.sync(r0, i);
        }
        for i in 0..n {
            self.step(i, 300);
        }
        let target = (0..n).find(|i| *i != r0).unwrap();
        (target, (0..n).filter(|i| *i != target).collect())
    }

    fn own(&self, i: usize, kind: ArtifactKind, h: u64) -> Vec<&ConsensusMessage> {
        self.nodes[i].pool.validated_at(kind, Height(h)).filter(|m| m.signer() == Some(node_id(i))).collect()
    }

    fn proposal_of(&self, i: usize, h: u64) -> ConsensusMessage {
        self.own(i, ArtifactKind::BlockProposal, h).first().copied().cloned().expect("node proposed")
    }

    fn invalid(&self, i: usize) -> Vec<InvalidArtifact> {
        self.nodes[i]
            .last
            .events
            .iter()
            .filter_map(|e| match e {
                PoolEvent::Invalid(_, r) => Some(r.clone()),
                _ => None,
            })
            .collect()
    }
}

fn hash_of(m: &ConsensusMessage) -> CryptoHash {
    match m {
        ConsensusMessage::BlockProposal(p) => p.hash(),
        _ => panic!("not a proposal"),
    }
}

/// The rank-0 maker proposes at once, the rank-1 maker only after
/// `unit_delay`, and not at all if it saw the rank-0 proposal.
#[test]
fn block_maker_delays_and_lower_rank_rule() {
    let mut c = Cluster::new(4);
    let r0 = c.maker(1, 0);
    let r1 = c.maker(1, 1);
    c.step(r0, 0);
    assert_eq!(c.own(r0, ArtifactKind::BlockProposal, 1).len(), 1);
    c.step(r1, 0); // the round starts when the node sees height 0 notarized
    let out = c.step(r1, 999);
    assert_eq!(out.wake_at, Some(c.time(1000)), "wakes when its delay expires");
    assert!(c.own(r1, ArtifactKind::BlockProposal, 1).is_empty());
    c.step(r1, 1000);
    assert_eq!(c.own(r1, ArtifactKind::BlockProposal, 1).len(), 1);

    // Fresh cluster: rank 1 sees rank 0's block first and stays quiet.
    let mut c = Cluster::new(4);
    let (r0, r1) = (c.maker(1, 0), c.maker(1, 1));
    c.step(r0, 0);
    c.step(r1, 0);
    c.sync(r0, r1);
    c.step(r1, 2000);
    assert!(c.own(r1, ArtifactKind::BlockProposal, 1).is_empty());
}

/// Notaries wait the initial notary delay for rank 0, and
/// `initial + unit × rank` for higher ranks.
#[test]
fn notary_delays() {
    let mut c = Cluster::new(4);
    let (r0, r1) = (c.maker(1, 0), c.maker(1, 1));
    let x = (0..4).find(|i| *i != r0 && *i != r1).unwrap();
    c.step(x, 0);
    c.step(r0, 0);
    c.sync(r0, x);
    let out = c.step(x, 299);
    assert_eq!(out.wake_at, Some(c.time(300)));
    assert!(c.own(x, ArtifactKind::NotarizationShare, 1).is_empty());
    c.step(x, 300);
    assert_eq!(c.own(x, ArtifactKind::NotarizationShare, 1).len(), 1);

    // Only a rank-1 block: 300 + 1000 ms.
    let mut c = Cluster::new(4);
    let r1 = c.maker(1, 1);
    let x = (0..4).find(|i| *i != c.maker(1, 0) && *i != r1).unwrap();
    c.step(x, 0);
    c.step(r1, 0);
    c.step(r1, 1000);
    c.sync(r1, x);
    let out = c.step(x, 1200);
    assert_eq!(out.wake_at, Some(c.time(1300)));
    c.step(x, 1300);
    assert_eq!(c.own(x, ArtifactKind::NotarizationShare, 1).len(), 1);
}

/// Beacons need f+1 shares, notarizations and finalizations 2f+1.
#[test]
fn aggregation_thresholds() {
    let mut c = Cluster::new(4); // f = 1: beacon 2, notarization 3
    for i in 0..4 {
        c.step(i, 0);
    }
    // Each node signed its beacon share for height 1 (height 0 is notarized).
    assert!(c.nodes[0].pool.beacon(Height(1)).is_none(), "one share is not enough");
    c.sync(1, 0);
    c.step(0, 1);
    assert!(c.nodes[0].pool.beacon(Height(1)).is_some(), "two shares are");

    let (target, others) = c.notarization_shares_for_height_1();
    c.sync(others[0], target);
    c.step(target, 301);
    assert_eq!(c.nodes[target].pool.notarized_height(), Height(0), "two notarization shares are not enough");
    c.sync(others[1], target);
    c.step(target, 302);
    assert_eq!(c.nodes[target].pool.notarized_height(), Height(1), "three are");
}

/// Shares are checked together: a group that reaches its threshold is
/// combined and the one combined signature checked; the aggregate enters
/// the pool and the peers' shares are dropped. A group with a bad share
/// falls back to one check per share, rejects the bad one, and aggregates
/// once enough good ones are there.
#[test]
fn shares_are_combined_before_they_are_checked() {
    let mut c = Cluster::new(4); // f = 1: beacon 2, notarization 3
    for i in 0..4 {
        c.step(i, 0);
    }
    let beacon_share = c.own(1, ArtifactKind::RandomBeaconShare, 1)[0].clone();
    c.give(0, &beacon_share);
    c.step(0, 1);
    assert!(c.nodes[0].pool.beacon(Height(1)).is_some());
    assert!(c.invalid(0).is_empty());
    assert!(
        !c.nodes[0].pool.beacon_shares_at(Height(1)).any(|s| s.signer == node_id(1)),
        "the peer's share was combined, not checked and kept"
    );

    let (target, others) = c.notarization_shares_for_height_1();
    let share = |c: &Cluster, i: usize| c.own(i, ArtifactKind::NotarizationShare, 1)[0].clone();
    let (good_a, good_b) = (share(&c, others[0]), share(&c, others[1]));
    let ConsensusMessage::NotarizationShare(s) = &good_a else { unreachable!() };
    let mut bad = s.clone();
    bad.signature[0] ^= 1;
    c.give(target, &ConsensusMessage::NotarizationShare(bad));
    c.give(target, &good_b);
    c.step(target, 301);
    assert!(matches!(c.invalid(target).as_slice(), [InvalidArtifact::Signature(_)]), "{:?}", c.invalid(target));
    assert_eq!(c.nodes[target].pool.notarized_height(), Height(0), "own share and one good share are not enough");
    assert_eq!(c.nodes[target].pool.notarization_shares_at(Height(1)).count(), 2, "the good share was checked alone");
    c.give(target, &good_a);
    c.step(target, 302);
    assert_eq!(c.nodes[target].pool.notarized_height(), Height(1));
}

/// A node that signed a notarization share for another block at a height
/// must not sign a finalization share there, even if only one block got
/// notarized; not even after a restart.
#[test]
fn finalization_rule_respects_own_votes() {
    for restart in [false, true] {
        let mut c = Cluster::new(4);
        let (r0, r1) = (c.maker(1, 0), c.maker(1, 1));
        let x = (0..4).find(|i| *i != r0 && *i != r1).unwrap();
        for i in 0..4 {
            c.step(i, 0); // r0 proposes B0
        }
        c.step(r1, 1000); // r1 hasn't seen B0: proposes B1
        let b1 = c.proposal_of(r1, 1);
        c.give(x, &b1);
        c.step(x, 1300); // x only knows B1 and votes for it
        assert_eq!(c.own(x, ArtifactKind::NotarizationShare, 1).len(), 1);
        if restart {
            let persisted: Vec<ConsensusMessage> = c.nodes[x].pool.validated().map(|(_, m)| m.clone()).collect();
            c.nodes[x].pool = ArtifactPool::restore(&c.genesis, persisted);
            c.nodes[x].engine = c.engine(x, Height(1));
        }
        // Everyone gets B0 and votes for it (lower rank); x too.
        let b0 = c.proposal_of(r0, 1);
        for i in 0..4 {
            c.give(i, &b0);
        }
        for i in 0..4 {
            c.step(i, 1400);
            c.step(i, 1750); // a restarted node's round starts anew at 1400
        }
        assert_eq!(c.own(x, ArtifactKind::NotarizationShare, 1).len(), 2, "x now voted for both");
        c.sync_all();
        for i in 0..4 {
            c.step(i, 1760);
        }
        c.sync_all();
        for i in 0..4 {
            c.step(i, 1770);
        }
        let notarized: Vec<CryptoHash> = c.nodes[x].pool.notarizations_at(Height(1)).map(|n| n.content.block).collect();
        assert_eq!(notarized, vec![hash_of(&b0)], "only B0 is notarized");
        assert!(!c.nodes[x].finalization_votes.contains(&Height(1)), "x voted for B1: no finalization share");
        for i in (0..4).filter(|i| *i != x) {
            assert!(c.nodes[i].finalization_votes.contains(&Height(1)), "node {i} voted only for B0");
        }
        for n in &c.nodes {
            assert_eq!(n.pool.finalized_height(), Height(1), "3 of 4 finalization shares suffice");
        }
    }
}

/// Two notarized blocks at a height: nobody finalizes that height
/// directly; it becomes final through a finalized child.
#[test]
fn two_notarized_blocks_are_resolved_by_the_next_height() {
    let mut c = Cluster::new(4);
    let (r0, r1) = (c.maker(1, 0), c.maker(1, 1));
    for i in 0..4 {
        c.step(i, 0);
    }
    c.step(r1, 1000);
    let (b0, b1) = (c.proposal_of(r0, 1), c.proposal_of(r1, 1));
    for i in 0..4 {
        c.give(i, &b1);
        c.step(i, 1300); // everyone votes B1 (the only block they know)
    }
    for i in 0..4 {
        c.give(i, &b0);
        c.step(i, 1310); // then B0, a lower rank
    }
    c.sync_all();
    for i in 0..4 {
        c.step(i, 1320);
    }
    for i in 0..4 {
        let notarized: std::collections::BTreeSet<_> =
            c.nodes[i].pool.notarizations_at(Height(1)).map(|n| n.content.block).collect();
        assert_eq!(notarized.len(), 2);
        assert!(c.nodes[i].finalization_votes.is_empty());
    }
    c.run_to(1330, 2);
    for n in &c.nodes {
        assert_eq!(n.delivered[0].block_hash, hash_of(&b0), "the child was built on the lowest-ranked notarized block");
        assert!(!n.finalization_votes.contains(&Height(1)), "nobody finalized height 1 directly");
    }
}

/// Two blocks by one maker at one height: a proof is made and gossiped,
/// and the maker's blocks get no more votes.
#[test]
fn equivocation_is_proven_and_disqualifies() {
    let mut c = Cluster::new(4);
    let r0 = c.maker(1, 0);
    let x = (0..4).find(|i| *i != r0).unwrap();
    let y = (0..4).find(|i| *i != r0 && *i != x).unwrap();
    c.step(r0, 0);
    c.step(x, 0);
    let b0 = c.proposal_of(r0, 1);
    let ConsensusMessage::BlockProposal(p) = &b0 else { unreachable!() };
    let mut twin = p.block().clone();
    twin.context.time = twin.context.time.saturating_add(std::time::Duration::from_nanos(1));
    let twin = ConsensusMessage::BlockProposal(BlockProposal::sign(twin, &c.crypto(r0)));
    c.give(x, &b0);
    c.give(x, &twin);
    c.step(x, 500);
    let proofs: Vec<_> = c.nodes[x].pool.equivocation_proofs_at(Height(1)).cloned().collect();
    assert_eq!(proofs.len(), 1);
    assert_eq!(proofs[0].signer, node_id(r0));
    assert!(c.own(x, ArtifactKind::NotarizationShare, 1).is_empty(), "no vote for a disqualified maker");
    // The proof convinces another node, which then also refuses b0.
    c.step(y, 0);
    c.give(y, &ConsensusMessage::EquivocationProof(proofs[0].clone()));
    c.give(y, &b0);
    c.step(y, 500);
    assert_eq!(c.nodes[y].pool.equivocation_proofs_at(Height(1)).count(), 1);
    assert!(c.own(y, ArtifactKind::NotarizationShare, 1).is_empty());
    // A forged proof (second signature wrong) is rejected.
    let mut forged = proofs[0].clone();
    forged.signature2 = vec![0; 32];
    let mut c2 = Cluster::new(4);
    c2.step(y, 0);
    c2.give(y, &ConsensusMessage::EquivocationProof(forged));
    c2.step(y, 1);
    assert!(matches!(c2.invalid(y).as_slice(), [InvalidArtifact::Signature(_)]));
}

/// Block context and signature checks on proposals.
#[test]
fn proposal_validation() {
    let c0 = Cluster::new(4);
    let r0 = c0.maker(1, 0);
    let x = (0..4).find(|i| *i != r0).unwrap();
    let genesis_hash = c0.genesis.block().hash();
    let base = Block {
        parent: genesis_hash,
        height: Height(1),
        rank: Rank(0),
        context: BlockContext { time: c0.time(100), registry_version: RegistryVersion(1), certified_height: Height(0) },
        payload: Payload::default(),
        dkg: Default::default(),
    };
    let signed =
        |c: &Cluster, b: Block, by: usize| ConsensusMessage::BlockProposal(BlockProposal::sign(b, &c.crypto(by)));
    let check = |b: ConsensusMessage, at_ms: u64| -> (Vec<InvalidArtifact>, bool) {
        let mut c = Cluster::new(4);
        c.give(x, &b);
        c.step(x, at_ms);
        let valid = c.nodes[x].pool.proposals_at(Height(1)).count() == 1;
        (c.invalid(x), valid)
    };

    assert_eq!(check(signed(&c0, base.clone(), r0), 200), (vec![], true));

    let mut b = base.clone();
    b.context.time = c0.genesis.time;
    assert!(matches!(check(signed(&c0, b, r0), 200).0.as_slice(), [InvalidArtifact::TimeNotIncreasing { .. }]));

    let mut b = base.clone();
    b.context.certified_height = Height(1);
    assert!(matches!(check(signed(&c0, b, r0), 200).0.as_slice(), [InvalidArtifact::CertifiedHeightTooHigh { .. }]));

    let mut b = base.clone();
    b.rank = Rank(1);
    assert!(matches!(check(signed(&c0, b, r0), 200).0.as_slice(), [InvalidArtifact::WrongRank { .. }]));

    let mut b = base.clone();
    b.payload = Payload::new(vec![vec![1]]);
    assert!(matches!(check(signed(&c0, b, r0), 200).0.as_slice(), [InvalidArtifact::Payload(_)]));
    let mut b = base.clone();
    b.payload = Payload::new(vec![vec![0xC0]]);
    assert_eq!(check(signed(&c0, b, r0), 200), (vec![], true));

    let ConsensusMessage::BlockProposal(p) = signed(&c0, base.clone(), r0) else { unreachable!() };
    let bad = ConsensusMessage::BlockProposal(BlockProposal::new(p.block().clone(), p.signer(), vec![0; 32]));
    assert!(matches!(check(bad, 200).0.as_slice(), [InvalidArtifact::Signature(_)]));
    // Signed by someone else than the claimed signer.
    let stolen = ConsensusMessage::BlockProposal(BlockProposal::new(
        p.block().clone(),
        node_id(r0),
        c0.crypto(x).sign_basic(&BlockProposal::signing_bytes(Height(1), &p.hash())),
    ));
    assert!(matches!(check(stolen, 200).0.as_slice(), [InvalidArtifact::Signature(_)]));

    // From the future: deferred (not invalid) until the local clock passes it.
    let mut c = Cluster::new(4);
    let mut b = base.clone();
    b.context.time = c.time(5_000);
    c.give(x, &signed(&c0, b, r0));
    let out = c.step(x, 200);
    assert_eq!(out.wake_at, Some(c.time(5_000)));
    assert!(c.invalid(x).is_empty());
    assert_eq!(c.nodes[x].pool.proposals_at(Height(1)).count(), 0);
    c.step(x, 5_000);
    assert_eq!(c.nodes[x].pool.proposals_at(Height(1)).count(), 1);

    // A registry version this node doesn't know yet: deferred.
    let mut c = Cluster::new(4);
    let mut b = base.clone();
    b.context.registry_version = RegistryVersion(2);
    c.give(x, &signed(&c0, b, r0));
    c.step(x, 200);
    assert!(c.invalid(x).is_empty());
    assert_eq!(c.nodes[x].pool.proposals_at(Height(1)).count(), 0);
    assert_eq!(c.nodes[x].pool.unvalidated_len(), 1);
}

/// Shares from non-members or with bad signatures are rejected; beacons
/// must chain.
#[test]
fn share_validation() {
    let mut c = Cluster::new(4);
    c.step(1, 0);
    let share = c.own(1, ArtifactKind::RandomBeaconShare, 1)[0].clone();
    let ConsensusMessage::RandomBeaconShare(s) = &share else { unreachable!() };
    let mut bad = s.clone();
    bad.signature[0] ^= 1;
    c.give(0, &ConsensusMessage::RandomBeaconShare(bad));
    let mut outsider = s.clone();
    outsider.signer = node_id(9);
    c.give(0, &ConsensusMessage::RandomBeaconShare(outsider));
    let mut wrong_parent = s.clone();
    wrong_parent.content.parent = CryptoHash([9; 32]);
    c.give(0, &ConsensusMessage::RandomBeaconShare(wrong_parent));
    c.step(0, 1);
    let mut reasons = c.invalid(0);
    reasons.sort_by_key(|r| r.to_string());
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons.iter().any(|r| matches!(r, InvalidArtifact::Signature(_))));
    assert!(reasons.iter().any(|r| matches!(r, InvalidArtifact::NotEntitled(_))));
    assert!(reasons.iter().any(|r| matches!(r, InvalidArtifact::BeaconParentMismatch)));
    assert!(c.nodes[0].pool.beacon(Height(1)).is_none());
    // The genuine share completes the beacon with node 0's own.
    c.give(0, &share);
    c.step(0, 2);
    assert!(c.nodes[0].pool.beacon(Height(1)).is_some());
}

/// Batches come in height order with distinct tape randomness; a single
/// node subnet makes progress alone; old artifacts are purged.
#[test]
fn delivery_order_and_purging() {
    let params = ConsensusParams { purge_margin: 5, interval_length: 5, ..ConsensusParams::default() };
    let mut c = Cluster::with_params(1, params.clone());
    c.run_to(0, 30);
    let d = &c.nodes[0].delivered;
    for (i, b) in d.iter().enumerate() {
        assert_eq!(b.height, Height(i as u64 + 1));
        if i > 0 {
            assert_eq!(b.block.parent, d[i - 1].block_hash);
            assert_ne!(b.randomness, d[i - 1].randomness);
            assert!(b.block.context.time > d[i - 1].block.context.time);
        }
    }
    let pool = &c.nodes[0].pool;
    let f = pool.finalized_height();
    // Nobody makes catch-up packages here (no state hashes): everything of
    // the last two intervals stays, nothing older.
    assert!(pool.min_validated_height().unwrap() >= Height(f.0.min(d.len() as u64) - 2 * params.interval_length));
    assert_eq!(pool.validated_between(ArtifactKind::NotarizationShare, Height(0), f).count(), 0);
    assert_eq!(pool.validated_between(ArtifactKind::FinalizationShare, Height(0), f).count(), 0);

    // Four nodes, and the same chain on all of them.
    let mut c = Cluster::with_params(4, params);
    c.run_to(0, 12);
    let chain = |n: &Node| n.delivered[..12].iter().map(|b| b.block_hash).collect::<Vec<_>>();
    for n in &c.nodes[1..] {
        assert_eq!(chain(n), chain(&c.nodes[0]));
    }
}

/// A restarted node (new engine, pool from its persisted artifacts) picks up
/// where it left off and delivers only new heights.
#[test]
fn restart_from_persisted_artifacts() {
    let mut c = Cluster::new(4);
    let ms = c.run_to(0, 5);
    let persisted: Vec<ConsensusMessage> = c.nodes[2].pool.validated().map(|(_, m)| m.clone()).collect();
    let next = Height(c.nodes[2].delivered.len() as u64 + 1);
    c.nodes[2].pool = ArtifactPool::restore(&c.genesis, persisted);
    c.nodes[2].engine = c.engine(2, next);
    let before = c.nodes[2].delivered.len();
    c.run_to(ms, 10);
    let d = &c.nodes[2].delivered;
    for (i, b) in d.iter().enumerate() {
        assert_eq!(b.height, Height(i as u64 + 1), "no height delivered twice after restart (had {before})");
    }
}

/// Catch-up packages: the live nodes certify block, beacon and state hash at
/// each interval start and purge what lies below; a node that was down the
/// whole time gets nothing but the package and the artifacts above it, and
/// resumes from there (reporting the package so the node can fetch the
/// state), then takes part again.
#[test]
fn a_node_far_behind_resumes_from_a_catch_up_package() {
    let params = ConsensusParams { interval_length: 5, purge_margin: 2, ..ConsensusParams::default() };
    let mut c = Cluster::with_params(4, params.clone());
    let state_hash = |h: Height| CryptoHash([h.0 as u8; 32]);
    let mut ms = 0;
    let live = [0usize, 1, 2];
    // Node 3 is down; the other three (n − f = 3) make catch-up packages.
    while live.iter().any(|i| c.nodes[*i].delivered.len() < 23) {
        for &i in &live {
            let out = c.step(i, ms);
            for b in out.batches.iter().filter(|b| params.is_interval_start(b.height)) {
                c.nodes[i].engine.note_state_hash(b.height, state_hash(b.height));
            }
            assert!(out.catch_up.is_none(), "an up-to-date node never needs a package");
        }
        for &a in &live {
            for &b in &live {
                if a != b {
                    c.sync(a, b);
                }
            }
        }
        ms += 10;
        assert!(ms < 1_000_000, "no progress");
    }
    let cup = c.nodes[0].pool.latest_catch_up().cloned().expect("catch-up packages were made");
    assert!(cup.content.height() >= Height(20));
    assert_eq!(cup.content.state_hash, state_hash(cup.content.height()));
    let crypto = c.crypto(3);
    assert_eq!(
        crypto.verify_threshold(
            crate::KeyId { kind: ThresholdKey::High, interval: cup.content.height() },
            &cup.content.share_content().signing_bytes(),
            &cup.signature
        ),
        Ok(())
    );
    assert!(
        c.nodes[0].pool.validated_between(ArtifactKind::BlockProposal, Height(1), Height(10)).next().is_none(),
        "blocks of old intervals are purged"
    );

    // Node 3 gets what node 0 has: the package and what follows it.
    c.sync(0, 3);
    let out = c.step(3, ms);
    let adopted = out.catch_up.expect("node 3 resumes from the package");
    assert_eq!(adopted.content.height(), cup.content.height());
    // Batches continue right above the package (in this very step, since
    // node 0 sent the blocks above it too).
    assert_eq!(out.batches.first().map(|b| b.height), Some(cup.content.height().increment()));
    // It delivers the heights above the package and joins the subnet again.
    let target = c.nodes[0].delivered.len() + 10;
    while c.nodes.iter().enumerate().any(|(i, n)| i != 3 && n.delivered.len() < target) {
        for i in 0..4 {
            let out = c.step(i, ms);
            for b in out.batches.iter().filter(|b| params.is_interval_start(b.height)) {
                c.nodes[i].engine.note_state_hash(b.height, state_hash(b.height));
            }
        }
        c.sync_all();
        ms += 10;
        assert!(ms < 2_000_000, "no progress after the catch-up");
    }
    let top = c.nodes[0].delivered.last().unwrap().height;
    let got3: Vec<Height> = c.nodes[3].delivered.iter().map(|b| b.height).collect();
    assert_eq!(got3.first().copied(), Some(cup.content.height().increment()));
    assert!(*got3.last().unwrap() >= Height(top.0 - 2));
    for b in &c.nodes[3].delivered {
        let same = c.nodes[0].delivered.iter().find(|x| x.height == b.height).unwrap();
        assert_eq!(same.block_hash, b.block_hash, "the same chain at {}", b.height);
    }
    // Node 3 signs packages again, and a restart keeps the newest as the root.
    let newest = c.nodes[3].pool.latest_catch_up().unwrap().content.height();
    assert!(newest > cup.content.height());
    let persisted: Vec<ConsensusMessage> = c.nodes[3].pool.validated().map(|(_, m)| m.clone()).collect();
    let restored = ArtifactPool::restore(&c.genesis, persisted);
    assert_eq!(restored.latest_catch_up().map(|c| c.content.height()), Some(newest));
    assert!(restored.is_notarized(newest, &restored.latest_catch_up().unwrap().content.block.hash()));
}
