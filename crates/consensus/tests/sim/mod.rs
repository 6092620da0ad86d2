//! A deterministic discrete-event simulation of a whole subnet in one
//! process.
//!
//! Every node runs the real [`Consensus`] state machine over its own
//! [`ArtifactPool`]. The simulated network delivers each message after a
//! random per-link delay, drops messages before GST (the sender retransmits
//! them, as a reliable transport would after reconnecting), cuts links
//! during partitions (a healed link resends the sender's whole validated
//! pool, like the IC's gossip re-advertising its slot table), and crashes
//! nodes (a restarted node rebuilds its pool from the artifacts it
//! persisted and its peers resend theirs). Before GST some messages are
//! also delayed by seconds, so artifacts arrive after every timeout and out
//! of order. Byzantine nodes run the honest engine plus deviations:
//! equivocating block maker, invalid proposals, invalid shares, withheld
//! shares, proposals held back past the next rank's timeout, and "reckless"
//! notarization and finalization votes for every block they see.
//!
//! Everything is driven by one ChaCha8 stream from the seed, so a run is
//! replayed exactly from its seed.

#![allow(dead_code)]

use cairn_consensus::dkg::{DealingConfig, DkgCrypto, DkgCryptoError, KeyTranscript};
use cairn_consensus::*;
use cairn_types::messages::MessageId;
use cairn_types::{Height, NodeId, Principal, RegistryVersion, Time};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::fmt::Write as _;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

const MS: u64 = 1_000_000;

// ---------------------------------------------------------------------------
// Randomness
// ---------------------------------------------------------------------------

/// The simulation's only source of randomness.
pub struct Rng(ChaCha8Rng);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(ChaCha8Rng::seed_from_u64(seed))
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let x = self.0.next_u64();
            if x < zone {
                return x % n;
            }
        }
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
    pub fn bytes32(&mut self) -> [u8; 32] {
        let mut b = [0u8; 32];
        self.0.fill_bytes(&mut b);
        b
    }
}

// ---------------------------------------------------------------------------
// Scenario
// ---------------------------------------------------------------------------

/// Which crypto the nodes use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CryptoKind {
    Fake,
    Real,
}

/// Deviations of a Byzantine node (any combination).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Byzantine {
    /// Sends a different block to half of its peers whenever it proposes.
    pub equivocate: bool,
    /// Sends a correctly signed but invalid block instead of its proposal.
    pub invalid_blocks: bool,
    /// All its shares carry signatures that don't verify.
    pub bad_shares: bool,
    /// Never sends its shares.
    pub withhold_shares: bool,
    /// Signs notarization and finalization shares for every block it sees.
    pub reckless: bool,
    /// Holds its proposals back until after the next rank's timeout, so
    /// competing blocks get notarized at the same height.
    pub late_proposals: bool,
    /// Its dealings give one receiver a wrong share (publicly well-formed;
    /// only the receiver's complaint shows it).
    pub bad_dealings: bool,
}

impl Byzantine {
    fn random(rng: &mut Rng) -> Byzantine {
        loop {
            let b = Byzantine {
                equivocate: rng.chance(500),
                invalid_blocks: rng.chance(250),
                bad_shares: rng.chance(300),
                withhold_shares: rng.chance(300),
                reckless: rng.chance(400),
                late_proposals: rng.chance(300),
                bad_dealings: rng.chance(300),
            };
            if b != Byzantine::default() {
                return b;
            }
        }
    }
}

#[derive(Clone, Debug)]
pub struct Partition {
    pub from_ms: u64,
    pub to_ms: u64,
    /// Which side each node is on.
    pub side: Vec<bool>,
}

#[derive(Clone, Debug)]
pub struct Crash {
    pub node: usize,
    pub at_ms: u64,
    /// `None`: never comes back (counts as faulty).
    pub restart_ms: Option<u64>,
}

/// Everything that defines one run.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub n: usize,
    pub seed: u64,
    pub crypto: CryptoKind,
    pub params: ConsensusParams,
    /// Per-link delay range.
    pub link_delay_ms: (u64, u64),
    /// Message loss before GST, per mille.
    pub drop_per_mille: u64,
    /// Messages delayed by 0.3–3 s before GST, per mille.
    pub slow_per_mille: u64,
    /// Maximum clock offset of a node.
    pub clock_skew_ms: u64,
    pub partitions: Vec<Partition>,
    pub crashes: Vec<Crash>,
    pub byzantine: BTreeMap<usize, Byzantine>,
    /// From here on: no drops, partitions or crashes.
    pub gst_ms: u64,
    pub end_ms: u64,
    /// A new ingress message every this many ms (0: none).
    pub ingress_every_ms: u64,
    /// Every correct node must deliver this many heights beyond the highest
    /// delivered height at GST.
    pub min_progress: u64,
    /// The genesis members (node indices); all nodes if empty. The others
    /// run from the start as observers until a change adds them.
    pub genesis_members: Vec<usize>,
    /// Registry changes: at this time, a new registry version with these
    /// members (node indices).
    pub membership_changes: Vec<(u64, Vec<usize>)>,
    /// Nodes process arrivals in batches, at multiples of this.
    pub step_granularity_ms: u64,
}

/// Knobs for random scenarios.
#[derive(Clone, Debug)]
pub struct Faults {
    pub byzantine: bool,
    pub crashes: bool,
    pub partitions: bool,
    pub drops: bool,
}

impl Faults {
    pub const NONE: Faults = Faults { byzantine: false, crashes: false, partitions: false, drops: false };
    pub const ALL: Faults = Faults { byzantine: true, crashes: true, partitions: true, drops: true };
}

impl Scenario {
    /// A calm subnet: no faults, small delays.
    pub fn calm(n: usize, seed: u64) -> Scenario {
        Scenario {
            n,
            seed,
            crypto: CryptoKind::Fake,
            params: ConsensusParams { purge_margin: 30, ..ConsensusParams::default() },
            link_delay_ms: (1, 30),
            drop_per_mille: 0,
            slow_per_mille: 0,
            clock_skew_ms: 0,
            partitions: Vec::new(),
            crashes: Vec::new(),
            byzantine: BTreeMap::new(),
            gst_ms: 0,
            end_ms: 8_000,
            ingress_every_ms: 100,
            min_progress: 5,
            step_granularity_ms: 10,
            genesis_members: Vec::new(),
            membership_changes: Vec::new(),
        }
    }

    /// A random scenario from the seed: up to `f` Byzantine or permanently
    /// crashed nodes, any number of crash-restarts, partitions and drops
    /// before GST.
    pub fn random(n: usize, seed: u64, faults: &Faults) -> Scenario {
        let mut rng = Rng::new(seed ^ 0x5ce7_a210);
        let f = faults_tolerated(n);
        let mut s = Scenario::calm(n, seed);
        let lo = rng.range(1, 20);
        s.link_delay_ms = (lo, lo + rng.range(0, 80));
        s.clock_skew_ms = rng.range(0, 20);
        s.gst_ms = rng.range(2_000, 6_000);
        s.end_ms = s.gst_ms + 10_000;
        s.ingress_every_ms = [0, 50, 200][rng.below(3) as usize];
        if faults.drops && rng.chance(600) {
            s.drop_per_mille = rng.range(10, 300);
        }
        if faults.drops && rng.chance(600) {
            s.slow_per_mille = rng.range(10, 200);
        }
        // Faulty nodes: Byzantine or crashed for good.
        let mut nodes: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            nodes.swap(i, j);
        }
        let faulty = if f > 0 && (faults.byzantine || faults.crashes) { rng.range(0, f as u64) as usize } else { 0 };
        for &node in &nodes[..faulty] {
            if faults.byzantine && (!faults.crashes || rng.chance(700)) {
                s.byzantine.insert(node, Byzantine::random(&mut rng));
            } else {
                s.crashes.push(Crash { node, at_ms: rng.range(0, s.gst_ms), restart_ms: None });
            }
        }
        // Crash-restarts of correct nodes (any number, all back before GST).
        if faults.crashes {
            for &node in &nodes[faulty..] {
                if rng.chance(250) {
                    let at = rng.range(0, s.gst_ms - 500);
                    let back = (at + rng.range(100, 3_000)).min(s.gst_ms - 1);
                    s.crashes.push(Crash { node, at_ms: at, restart_ms: Some(back) });
                }
            }
        }
        if faults.partitions && n > 1 {
            for _ in 0..rng.range(0, 2) {
                let from = rng.range(0, s.gst_ms - 200);
                let to = (from + rng.range(200, 4_000)).min(s.gst_ms - 1);
                let side = (0..n).map(|_| rng.chance(500)).collect();
                s.partitions.push(Partition { from_ms: from, to_ms: to, side });
            }
        }
        // Byzantine leaders slow rounds down (unit delay per rank, back-off),
        // so ask for less progress when they are around.
        s.min_progress = if s.byzantine.is_empty() { 5 } else { 3 };
        s
    }

    /// The nodes expected to be correct and live after GST.
    pub fn correct_nodes(&self) -> Vec<usize> {
        (0..self.n)
            .filter(|i| !self.byzantine.contains_key(i))
            .filter(|i| !self.crashes.iter().any(|c| c.node == *i && c.restart_ms.is_none()))
            .collect()
    }

    pub fn describe(&self) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            "n={} seed={} crypto={:?} delay={:?}ms drop={}‰ slow={}‰ skew≤{}ms gst={}ms end={}ms ingress/{}ms",
            self.n,
            self.seed,
            self.crypto,
            self.link_delay_ms,
            self.drop_per_mille,
            self.slow_per_mille,
            self.clock_skew_ms,
            self.gst_ms,
            self.end_ms,
            self.ingress_every_ms
        );
        for (i, b) in &self.byzantine {
            let _ = write!(s, "\n  byzantine node {i}: {b:?}");
        }
        for c in &self.crashes {
            let _ = write!(s, "\n  crash node {} at {}ms, restart {:?}", c.node, c.at_ms, c.restart_ms);
        }
        for p in &self.partitions {
            let _ = write!(s, "\n  partition {}..{}ms sides {:?}", p.from_ms, p.to_ms, p.side);
        }
        s
    }
}

// ---------------------------------------------------------------------------
// Ingress
// ---------------------------------------------------------------------------

/// Ingress messages are `id (32) · expiry nanos (8) · padding`.
pub fn ingress_message(id: [u8; 32], expiry: Time, pad: usize) -> Vec<u8> {
    let mut v = id.to_vec();
    v.extend_from_slice(&expiry.as_nanos().to_be_bytes());
    v.extend(std::iter::repeat_n(0xabu8, pad));
    v
}

/// The ingress pool of one simulated node.
#[derive(Default)]
pub struct SimIngress {
    pending: BTreeMap<MessageId, Vec<u8>>,
}

impl SimIngress {
    pub fn add(&mut self, msg: Vec<u8>) {
        if let Ok(info) = self.inspect(&msg, Time::from_nanos(0)) {
            self.pending.insert(info.id, msg);
        }
    }
}

impl IngressSource for SimIngress {
    fn inspect(&self, m: &[u8], _time: Time) -> Result<IngressInfo, String> {
        if m.len() < 40 {
            return Err(format!("ingress message of {} bytes", m.len()));
        }
        Ok(IngressInfo {
            id: MessageId(m[..32].try_into().unwrap()),
            expiry: Time::from_nanos(u64::from_be_bytes(m[32..40].try_into().unwrap())),
        })
    }
    fn candidates(&mut self, time: Time) -> Vec<std::sync::Arc<Vec<u8>>> {
        // Forget expired messages, offer the rest (in id order).
        let expired: Vec<MessageId> = self
            .pending
            .iter()
            .filter(|(_, m)| self.inspect(m, time).map(|i| i.expiry < time).unwrap_or(true))
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.pending.remove(&id);
        }
        self.pending.values().cloned().map(std::sync::Arc::new).collect()
    }
    fn on_delivered(&mut self, ids: &[MessageId]) {
        for id in ids {
            self.pending.remove(id);
        }
    }
}

// ---------------------------------------------------------------------------
// Byzantine crypto
// ---------------------------------------------------------------------------

/// Honest crypto with a Byzantine node's deviations: with `bad_shares` it
/// signs every share over the wrong message (well-formed, never verifies);
/// with `bad_dealings` its dealings give the last receiver a wrong share
/// (the last byte of a dealing belongs to the last receiver's encrypted
/// share with both the real and the fake scheme).
struct Deviant {
    inner: Box<dyn ConsensusCrypto>,
    bad_shares: bool,
    bad_dealings: bool,
}

impl Deviant {
    /// The message this node's shares sign.
    fn share_message(&self, msg: &[u8]) -> Vec<u8> {
        if self.bad_shares { [msg, b"corrupt"].concat() } else { msg.to_vec() }
    }
}

impl DkgCrypto for Deviant {
    fn create_dealing(&self, config: &DealingConfig<'_>) -> Result<Vec<u8>, DkgCryptoError> {
        let mut d = self.inner.create_dealing(config)?;
        if self.bad_dealings
            && let Some(b) = d.last_mut()
        {
            *b ^= 1;
        }
        Ok(d)
    }
    fn verify_dealing(&self, c: &DealingConfig<'_>, dealer: &NodeId, d: &[u8]) -> Result<(), DkgCryptoError> {
        self.inner.verify_dealing(c, dealer, d)
    }
    fn complaint_against(&self, c: &DealingConfig<'_>, dealer: &NodeId, d: &[u8]) -> Option<Vec<u8>> {
        self.inner.complaint_against(c, dealer, d)
    }
    fn verify_complaint(
        &self,
        c: &DealingConfig<'_>,
        dealer: &NodeId,
        d: &[u8],
        complainer: &NodeId,
        complaint: &[u8],
    ) -> Result<(), DkgCryptoError> {
        self.inner.verify_complaint(c, dealer, d, complainer, complaint)
    }
    fn create_transcript(&self, c: &DealingConfig<'_>, d: &[(NodeId, &[u8])]) -> Result<Vec<u8>, DkgCryptoError> {
        self.inner.create_transcript(c, d)
    }
    fn load_transcript(&self, id: KeyId, t: &KeyTranscript) -> Result<(), DkgCryptoError> {
        self.inner.load_transcript(id, t)
    }
    fn has_key(&self, id: KeyId) -> bool {
        self.inner.has_key(id)
    }
    fn retain_keys_from(&self, interval: Height) {
        self.inner.retain_keys_from(interval)
    }
}

impl ConsensusCrypto for Deviant {
    fn node_id(&self) -> NodeId {
        self.inner.node_id()
    }
    fn sign_basic(&self, msg: &[u8]) -> Vec<u8> {
        self.inner.sign_basic(msg)
    }
    fn verify_basic(&self, signer: &NodeId, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        self.inner.verify_basic(signer, msg, sig)
    }
    fn sign_multi_share(&self, msg: &[u8]) -> Vec<u8> {
        self.inner.sign_multi_share(&self.share_message(msg))
    }
    fn verify_multi_share(&self, signer: &NodeId, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        self.inner.verify_multi_share(signer, msg, sig)
    }
    fn aggregate_multi(&self, msg: &[u8], shares: &[(NodeId, &[u8])]) -> Result<Vec<u8>, CryptoError> {
        self.inner.aggregate_multi(msg, shares)
    }
    fn verify_multi(&self, signers: &[NodeId], msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        self.inner.verify_multi(signers, msg, sig)
    }
    fn sign_threshold_share(&self, key: KeyId, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.inner.sign_threshold_share(key, &self.share_message(msg))
    }
    fn verify_threshold_share(&self, key: KeyId, signer: &NodeId, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        self.inner.verify_threshold_share(key, signer, msg, sig)
    }
    fn combine_threshold(
        &self,
        key: KeyId,
        t: usize,
        msg: &[u8],
        shares: &[(NodeId, &[u8])],
    ) -> Result<Vec<u8>, CryptoError> {
        self.inner.combine_threshold(key, t, msg, shares)
    }
    fn verify_threshold(&self, key: KeyId, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        self.inner.verify_threshold(key, msg, sig)
    }
}

// ---------------------------------------------------------------------------
// Nodes and events
// ---------------------------------------------------------------------------

/// A message on the wire, with its precomputed id.
type Wire = (ArtifactId, Rc<ConsensusMessage>);

type Engine = Consensus<Box<dyn ConsensusCrypto>, IngressPayloadHandler<SimIngress>>;

struct Node {
    id: NodeId,
    engine: Option<Engine>,
    pool: ArtifactPool,
    /// The node's durable store: its validated artifacts.
    persisted: BTreeMap<ArtifactId, ConsensusMessage>,
    /// The node's durable log of executed batches.
    delivered: Vec<Batch>,
    skew_ns: u64,
    byz: Option<Byzantine>,
    /// Local times at which a step is scheduled.
    wakes: BTreeSet<u64>,
    /// Byzantine: the twin sent instead of / alongside each own proposal.
    twins: BTreeMap<ArtifactId, ConsensusMessage>,
    /// Byzantine reckless votes already cast.
    reckless_votes: BTreeSet<(Height, CryptoHash)>,
    /// Whether the node ever restarted (for reporting).
    restarts: u32,
}

enum Ev {
    Msg {
        to: usize,
        from: usize,
        id: ArtifactId,
        msg: Rc<ConsensusMessage>,
    },
    /// A message a node sends later (held-back proposals).
    Send {
        from: usize,
        to: usize,
        id: ArtifactId,
        msg: Rc<ConsensusMessage>,
    },
    Step(usize),
    Crash(usize),
    Restart(usize),
    PartitionStart(usize),
    PartitionEnd(usize),
    Retransmit,
    Ingress,
    Gst,
    /// A new registry version with these members.
    Registry(Vec<usize>),
}

/// The registry the simulated nodes share: subnet members per version.
#[derive(Debug, Default)]
pub struct SimRegistry(std::sync::RwLock<Vec<Vec<NodeId>>>);

impl SimRegistry {
    fn latest(&self) -> RegistryVersion {
        RegistryVersion(self.0.read().unwrap().len() as u64)
    }
}

impl SubnetRegistry for SimRegistry {
    fn members_at(&self, version: RegistryVersion) -> Option<Vec<NodeId>> {
        let versions = self.0.read().unwrap();
        versions.get((version.0 as usize).checked_sub(1)?).cloned()
    }
}

struct Entry {
    time: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        (self.time, self.seq) == (o.time, o.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.time, self.seq).cmp(&(o.time, o.seq))
    }
}

/// What a run produced (for assertions and reporting).
#[derive(Debug, Default)]
pub struct Report {
    /// Delivered height per node at the end.
    pub delivered: Vec<u64>,
    /// Highest delivered height among correct nodes at GST.
    pub height_at_gst: u64,
    /// Hash of the finalized chain (heights 1..=min delivered of correct nodes).
    pub chain_digest: Vec<CryptoHash>,
    pub messages: u64,
    pub steps: u64,
    pub invalid_seen: u64,
    pub equivocation_proofs: u64,
    pub ingress_delivered: u64,
    /// Times a node resumed from a catch-up package (state sync).
    pub catch_ups: u64,
    /// Key-generation summaries of the longest delivered chain of a
    /// correct node, in height order.
    pub summaries: Vec<cairn_consensus::dkg::DkgSummary>,
    /// (node, highest delivered height of any node) at each crash.
    pub delivered_at_crash: Vec<(usize, u64)>,
}

/// The simulated state hash after executing the block with this hash: the
/// same on every node that delivered the same chain.
fn sim_state_hash(block_hash: &CryptoHash) -> CryptoHash {
    use sha2::Digest;
    CryptoHash(sha2::Sha256::digest([b"sim-state".as_slice(), block_hash.as_bytes()].concat()).into())
}

/// Global safety bookkeeping across all correct nodes.
#[derive(Default)]
struct Checker {
    /// Finalized block per height, as first seen by any correct node.
    finalized: BTreeMap<Height, CryptoHash>,
    /// Blocks with a finalization artifact at their own height.
    explicit: BTreeMap<Height, CryptoHash>,
    /// Notarized blocks per height seen by correct nodes.
    notarized: BTreeMap<Height, BTreeSet<CryptoHash>>,
    /// Delivered batch per height: (block hash, randomness).
    batches: BTreeMap<Height, (CryptoHash, [u8; 32])>,
    /// Height at which each ingress message was delivered.
    ingress: BTreeMap<MessageId, Height>,
    violations: Vec<String>,
    /// Every share, aggregate and proposal made by any node, per height (for
    /// explaining a violation).
    log: BTreeMap<Height, Vec<String>>,
}

impl Checker {
    /// A block is final at `h` (explicitly or as an ancestor of a final block).
    fn finalized(&mut self, node: usize, h: Height, hash: CryptoHash) {
        match self.finalized.get(&h) {
            Some(x) if *x != hash => self
                .violations
                .push(format!("SAFETY: node {node} finalized {hash:?} at height {h}, another node finalized {x:?}")),
            Some(_) => {}
            None => {
                self.finalized.insert(h, hash);
            }
        }
    }

    /// A finalization artifact for `hash` at `h`: besides agreeing with the
    /// chain, the block must never have a notarized sibling (an honest
    /// finalizer never backed a competitor; two notarized blocks at a
    /// height are fine as long as neither is explicitly finalized there).
    fn explicitly_finalized(&mut self, node: usize, h: Height, hash: CryptoHash) {
        self.finalized(node, h, hash);
        self.explicit.insert(h, hash);
        self.no_notarized_sibling(h);
    }

    fn notarized(&mut self, h: Height, hash: CryptoHash) {
        self.notarized.entry(h).or_default().insert(hash);
        self.no_notarized_sibling(h);
    }

    fn no_notarized_sibling(&mut self, h: Height) {
        if let (Some(f), Some(ns)) = (self.explicit.get(&h), self.notarized.get(&h))
            && let Some(other) = ns.iter().find(|n| *n != f)
        {
            self.violations
                .push(format!("SAFETY: block {other:?} at height {h} is notarized although {f:?} was finalized there"));
        }
    }

    fn batch(&mut self, node: usize, prev: Option<&Batch>, b: &Batch, genesis_hash: CryptoHash, src: &SimIngress) {
        let expected = prev.map_or(1, |p| p.height.0 + 1);
        if b.height.0 != expected {
            self.violations.push(format!("node {node} delivered height {} after {}", b.height, expected - 1));
        }
        let parent = prev.map_or(genesis_hash, |p| p.block_hash);
        if b.block.parent != parent || b.block.hash() != b.block_hash {
            self.violations.push(format!("node {node}: delivered block {} does not extend its chain", b.height));
        }
        if let Some(p) = prev
            && b.block.context.time <= p.block.context.time
        {
            self.violations.push(format!("node {node}: block time not increasing at height {}", b.height));
        }
        self.finalized(node, b.height, b.block_hash);
        match self.batches.get(&b.height) {
            Some((hash, rand)) => {
                if *hash != b.block_hash || *rand != b.randomness {
                    self.violations.push(format!("SAFETY: node {node} delivered a different batch at {}", b.height));
                }
            }
            None => {
                self.batches.insert(b.height, (b.block_hash, b.randomness));
                if b.block.payload.len() > 1000 || b.block.payload.byte_size() > 4 * 1024 * 1024 {
                    self.violations.push(format!("block {} exceeds payload limits", b.height));
                }
                for m in &b.block.payload.messages {
                    match src.inspect(m, b.block.context.time) {
                        Ok(info) => {
                            if info.expiry < b.block.context.time {
                                self.violations.push(format!("expired ingress delivered at {}", b.height));
                            }
                            if let Some(h) = self.ingress.insert(info.id, b.height) {
                                self.violations.push(format!(
                                    "ingress {} delivered twice (heights {h} and {})",
                                    info.id, b.height
                                ));
                            }
                        }
                        Err(e) => self.violations.push(format!("undecodable ingress at {}: {e}", b.height)),
                    }
                }
            }
        }
    }
}

pub struct Sim {
    sc: Scenario,
    rng: Rng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<Entry>>,
    nodes: Vec<Node>,
    membership: Arc<Membership>,
    keys: Option<SubnetKeys>,
    genesis: Genesis,
    registry: Arc<SimRegistry>,
    /// Active partitions (indices into `sc.partitions`).
    active_partitions: BTreeSet<usize>,
    /// Messages dropped on a link, to retransmit: (from, to) → messages.
    retransmit: BTreeMap<(usize, usize), Vec<Wire>>,
    checker: Checker,
    report: Report,
    gst_reached: bool,
    /// Record every vote for the failure report (`CAIRN_SIM_TRACE`).
    trace: bool,
}

fn sim_node_id(i: usize) -> NodeId {
    let mut b = [0u8; 29];
    b[0] = 0x5a;
    b[1..9].copy_from_slice(&(i as u64).to_be_bytes());
    b[28] = 0x02;
    NodeId(Principal::try_from_slice(&b).unwrap())
}

impl Sim {
    pub fn new(sc: Scenario) -> Sim {
        let mut rng = Rng::new(sc.seed);
        let keys = match sc.crypto {
            CryptoKind::Real => {
                let mut seed = [0u8; 32];
                seed[..8].copy_from_slice(&sc.seed.to_be_bytes());
                let members = if sc.genesis_members.is_empty() { sc.n } else { sc.genesis_members.len() };
                Some(generate_subnet_keys_with(seed, sc.n, members).expect("keys"))
            }
            CryptoKind::Fake => None,
        };
        let ids: Vec<NodeId> = match &keys {
            Some(k) => k.secrets.iter().map(|s| s.signing.node_id()).collect(),
            None => (0..sc.n).map(sim_node_id).collect(),
        };
        let membership = Arc::new(Membership::new(ids.clone()).unwrap());
        // With real keys the first nodes (in id order) are the genesis
        // members; scenarios name them by index.
        let genesis_ids: Vec<NodeId> = if sc.genesis_members.is_empty() {
            ids.clone()
        } else {
            let mut m: Vec<NodeId> = sc.genesis_members.iter().map(|i| ids[*i]).collect();
            m.sort();
            m
        };
        let registry = Arc::new(SimRegistry(std::sync::RwLock::new(vec![genesis_ids.clone()])));
        let genesis = Genesis {
            time: Time::from_secs(1_700_000_000),
            registry_version: RegistryVersion(1),
            random_seed: rng.bytes32(),
            summary: match &keys {
                Some(k) => k.public.genesis_summary(),
                None => FakeCrypto::genesis_summary(&Membership::new(genesis_ids.clone()).unwrap()),
            },
        };
        let nodes = ids
            .iter()
            .enumerate()
            .map(|(i, id)| Node {
                id: *id,
                engine: None,
                pool: ArtifactPool::new(&genesis),
                persisted: BTreeMap::new(),
                delivered: Vec::new(),
                skew_ns: rng.range(0, sc.clock_skew_ms) * MS,
                byz: sc.byzantine.get(&i).cloned(),
                wakes: BTreeSet::new(),
                twins: BTreeMap::new(),
                reckless_votes: BTreeSet::new(),
                restarts: 0,
            })
            .collect();
        let mut sim = Sim {
            rng,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes,
            membership,
            keys,
            genesis,
            registry,
            active_partitions: BTreeSet::new(),
            retransmit: BTreeMap::new(),
            checker: Checker::default(),
            report: Report::default(),
            gst_reached: false,
            trace: std::env::var_os("CAIRN_SIM_TRACE").is_some(),
            sc,
        };
        for i in 0..sim.sc.n {
            sim.start_node(i);
        }
        for c in sim.sc.crashes.clone() {
            sim.schedule(c.at_ms * MS, Ev::Crash(c.node));
            if let Some(r) = c.restart_ms {
                sim.schedule(r * MS, Ev::Restart(c.node));
            }
        }
        for (i, p) in sim.sc.partitions.clone().into_iter().enumerate() {
            sim.schedule(p.from_ms * MS, Ev::PartitionStart(i));
            sim.schedule(p.to_ms * MS, Ev::PartitionEnd(i));
        }
        sim.schedule(sim.sc.gst_ms * MS, Ev::Gst);
        for (at, members) in sim.sc.membership_changes.clone() {
            sim.schedule(at * MS, Ev::Registry(members));
        }
        sim.schedule(200 * MS, Ev::Retransmit);
        if sim.sc.ingress_every_ms > 0 {
            sim.schedule(sim.sc.ingress_every_ms * MS, Ev::Ingress);
        }
        sim
    }

    /// The id of node `i`.
    pub fn node_id(&self, i: usize) -> NodeId {
        self.nodes[i].id
    }

    fn schedule(&mut self, time: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse(Entry { time, seq: self.seq, ev }));
    }

    fn crypto_for(&self, i: usize) -> Box<dyn ConsensusCrypto> {
        let base: Box<dyn ConsensusCrypto> = match &self.keys {
            Some(k) => Box::new(BlsCrypto::new(k.secrets[i].clone(), k.public.clone())),
            None => Box::new(FakeCrypto::new(self.nodes[i].id, self.membership.clone())),
        };
        match &self.nodes[i].byz {
            Some(b) if b.bad_shares || b.bad_dealings => {
                Box::new(Deviant { inner: base, bad_shares: b.bad_shares, bad_dealings: b.bad_dealings })
            }
            _ => base,
        }
    }

    /// (Re)starts node `i` from its durable state.
    fn start_node(&mut self, i: usize) {
        let cfg = ConsensusConfig {
            node_id: self.nodes[i].id,
            registry: self.registry.clone(),
            params: self.sc.params.clone(),
            genesis: self.genesis.clone(),
        };
        let mut handler = IngressPayloadHandler::new(SimIngress::default(), IngressLimits::default());
        // Rebuild the handler's memory of finalized ingress from the durable
        // batch log (the node would use its ingress history).
        for b in &self.nodes[i].delivered {
            handler.on_delivered(b);
        }
        let next = Height(self.nodes[i].delivered.len() as u64 + 1);
        let engine = Consensus::new(cfg, self.crypto_for(i), handler, next);
        let node = &mut self.nodes[i];
        node.pool = ArtifactPool::restore(&self.genesis, node.persisted.values().cloned());
        node.engine = Some(engine);
        node.wakes.clear();
        let t = self.now;
        self.schedule_step(i, t);
    }

    fn alive(&self, i: usize) -> bool {
        self.nodes[i].engine.is_some()
    }

    fn link_up(&self, a: usize, b: usize) -> bool {
        self.alive(a)
            && self.alive(b)
            && self.active_partitions.iter().all(|p| self.sc.partitions[*p].side[a] == self.sc.partitions[*p].side[b])
    }

    /// Schedules a step of node `i` at global time `t`, rounded up to the
    /// step granularity (a node's event loop handles what arrived meanwhile
    /// in one go).
    fn schedule_step(&mut self, i: usize, t: u64) {
        let g = self.sc.step_granularity_ms * MS;
        let t = t.div_ceil(g) * g;
        if self.nodes[i].wakes.insert(t) {
            self.schedule(t, Ev::Step(i));
        }
    }

    /// Sends a message over a link (or loses it).
    fn send(&mut self, from: usize, to: usize, id: ArtifactId, msg: Rc<ConsensusMessage>) {
        if from == to || !self.link_up(from, to) {
            return;
        }
        if !self.gst_reached && self.sc.drop_per_mille > 0 && self.rng.chance(self.sc.drop_per_mille) {
            self.retransmit.entry((from, to)).or_default().push((id, msg));
            return;
        }
        let (lo, hi) = self.sc.link_delay_ms;
        let mut delay = self.rng.range(lo * MS, hi * MS);
        if !self.gst_reached && self.sc.slow_per_mille > 0 && self.rng.chance(self.sc.slow_per_mille) {
            // Asynchrony before GST: some messages take very long, so
            // artifacts arrive out of order and after every timeout.
            delay += self.rng.range(300, 3_000) * MS;
        }
        self.report.messages += 1;
        self.schedule(self.now + delay, Ev::Msg { to, from, id, msg });
    }

    /// What node `from` actually puts on the wire for one of its validated
    /// artifacts, per peer (Byzantine deviations apply here).
    fn outgoing(&mut self, from: usize, msg: &ConsensusMessage, own: bool) -> Vec<(usize, ConsensusMessage)> {
        let peers: Vec<usize> = (0..self.sc.n).filter(|p| *p != from).collect();
        let Some(byz) = self.nodes[from].byz.clone() else {
            if !own && msg.kind().is_share() {
                return Vec::new();
            }
            return peers.into_iter().map(|p| (p, msg.clone())).collect();
        };
        if msg.kind().is_share() && (byz.withhold_shares || !own) {
            return Vec::new();
        }
        if let ConsensusMessage::BlockProposal(p) = msg
            && own
        {
            let id = msg.id();
            let twin = match self.nodes[from].twins.get(&id) {
                Some(t) => t.clone(),
                None => {
                    let t = self.make_twin(from, p, &byz);
                    self.nodes[from].twins.insert(id, t.clone());
                    t
                }
            };
            if byz.invalid_blocks {
                return peers.into_iter().map(|p| (p, twin.clone())).collect();
            }
            if byz.equivocate {
                return peers
                    .into_iter()
                    .enumerate()
                    .map(|(k, p)| (p, if k % 2 == 0 { msg.clone() } else { twin.clone() }))
                    .collect();
            }
        }
        peers.into_iter().map(|p| (p, msg.clone())).collect()
    }

    /// A second, correctly signed block for the same height and rank:
    /// invalid (certified height = its own height) or a valid equivocation
    /// (different payload or time).
    fn make_twin(&mut self, from: usize, p: &BlockProposal, byz: &Byzantine) -> ConsensusMessage {
        let mut block = p.block().clone();
        if byz.invalid_blocks {
            if self.rng.chance(500) {
                block.context.certified_height = block.height;
            } else {
                block.payload.messages.push(vec![1, 2, 3]); // undecodable ingress
            }
        } else if !block.payload.messages.is_empty() && self.rng.chance(500) {
            block.payload.messages.pop();
        } else {
            block.context.time = block.context.time.saturating_add(Duration::from_nanos(1));
        }
        let crypto = self.crypto_for(from);
        ConsensusMessage::BlockProposal(BlockProposal::sign(block, crypto.as_ref()))
    }

    /// A reckless Byzantine node votes for every block it knows above the
    /// finalized height: notarization and finalization shares alike.
    fn reckless_votes(&mut self, i: usize) {
        let crypto = self.crypto_for(i);
        let node = &self.nodes[i];
        let fin = node.pool.finalized_height();
        let mut votes = Vec::new();
        let mut h = fin.increment();
        while let Some(_) = node.pool.proposals_at(h).next() {
            for p in node.pool.proposals_at(h) {
                if !node.reckless_votes.contains(&(h, p.hash())) {
                    votes.push((h, p.hash()));
                }
            }
            h = h.increment();
        }
        for (h, hash) in votes {
            self.nodes[i].reckless_votes.insert((h, hash));
            let n = NotarizationContent { height: h, block: hash };
            let f = FinalizationContent { height: h, block: hash };
            let msgs = [
                ConsensusMessage::NotarizationShare(Share {
                    content: n,
                    signer: crypto.node_id(),
                    signature: crypto.sign_multi_share(&n.signing_bytes()),
                }),
                ConsensusMessage::FinalizationShare(Share {
                    content: f,
                    signer: crypto.node_id(),
                    signature: crypto.sign_multi_share(&f.signing_bytes()),
                }),
            ];
            for m in msgs {
                let id = m.id();
                let m = Rc::new(m);
                for p in 0..self.sc.n {
                    self.send(i, p, id, m.clone());
                }
            }
        }
    }

    fn gossip(&mut self, from: usize, id: ArtifactId, msg: &ConsensusMessage, own: bool) {
        if self.nodes[from].byz.is_none() {
            // Like the IC's gossip, every validated artifact is passed on
            // (so what a crashed node sent to some peers still reaches the
            // others), except that shares travel only from their signer.
            if !own && msg.kind().is_share() {
                return;
            }
            let m = Rc::new(msg.clone());
            for to in 0..self.sc.n {
                self.send(from, to, id, m.clone());
            }
            return;
        }
        let late = own
            && msg.kind() == ArtifactKind::BlockProposal
            && self.nodes[from].byz.as_ref().is_some_and(|b| b.late_proposals);
        for (to, m) in self.outgoing(from, msg, own) {
            let id = m.id();
            if late {
                // Released just after the next rank's notary delay.
                let hold = self.sc.params.unit_delay + self.sc.params.initial_notary_delay;
                let at = self.now + hold.as_nanos() as u64 + self.rng.range(50, 400) * MS;
                self.schedule(at, Ev::Send { from, to, id, msg: Rc::new(m) });
            } else {
                self.send(from, to, id, Rc::new(m));
            }
        }
    }

    /// Sends node `from`'s whole validated pool to `to` (reconnection).
    fn resync(&mut self, from: usize, to: usize) {
        if !self.link_up(from, to) {
            return;
        }
        let msgs: Vec<ConsensusMessage> =
            self.nodes[from].pool.validated().filter(|(id, _)| id.height.0 > 0).map(|(_, m)| m.clone()).collect();
        let me = self.nodes[from].id;
        for m in msgs {
            // On reconnection everything is resent, except that shares only
            // ever travel from their signer.
            let own = m.signer().is_none_or(|s| s == me);
            for (peer, out) in self.outgoing(from, &m, own) {
                if peer == to {
                    let id = out.id();
                    self.send(from, to, id, Rc::new(out));
                }
            }
        }
    }

    /// One line per node: what its pool looks like (for liveness failures).
    fn node_states(&self) -> String {
        let mut s = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let p = &n.pool;
            let _ = write!(
                s,
                "\n  node {i}: alive={} notarized={} finalized={} beacon={} delivered={} validated={} unvalidated={}",
                n.engine.is_some(),
                p.notarized_height(),
                p.finalized_height(),
                p.beacon_height(),
                n.delivered.len(),
                p.validated_len(),
                p.unvalidated_len()
            );
            let next = Height(n.delivered.len() as u64 + 1);
            let _ = write!(
                s,
                "\n    next undelivered {next}: tape={} blocks={} finalizations={} tape shares={} cup={:?} cup shares={}",
                p.tape(next).is_some(),
                p.proposals_at(next).count(),
                p.finalizations_at(next).count(),
                p.tape_shares_at(next).count(),
                p.latest_catch_up().map(|c| c.content.height()),
                p.validated_between(ArtifactKind::CatchUpPackageShare, Height(0), Height(u64::MAX)).count(),
            );
            let top = p.notarized_height().increment();
            for (id, m) in p.unvalidated().filter(|(id, _)| id.height <= top.increment()).take(12) {
                let _ = write!(
                    s,
                    "\n    unvalidated {:?} h={} signer={:?}",
                    id.kind,
                    id.height,
                    m.signer().map(|x| self.index_of(&x))
                );
                if let ConsensusMessage::BlockProposal(b) = m {
                    let ph = Height(b.height().0 - 1);
                    let parent = b.block().parent;
                    let _ = write!(
                        s,
                        " rank={} parent present={} notarized={} ctx={:?} now={:?} same-signer-validated={}",
                        b.rank().0,
                        p.proposal(ph, &parent).is_some(),
                        p.is_notarized(ph, &parent),
                        b.block().context,
                        Time::from_nanos(self.genesis.time.as_nanos() + self.now + n.skew_ns),
                        p.proposals_at(b.height()).filter(|x| x.signer() == b.signer()).count(),
                    );
                }
            }
            for (id, m) in p.validated().filter(|(id, _)| id.height >= top).take(20) {
                let _ = write!(
                    s,
                    "\n    validated {:?} h={} signer={:?}",
                    id.kind,
                    id.height,
                    m.signer().map(|x| self.index_of(&x))
                );
            }
        }
        s
    }

    fn index_of(&self, id: &NodeId) -> usize {
        self.nodes.iter().position(|n| n.id == *id).unwrap_or(usize::MAX)
    }

    /// Node `i` resumes from a catch-up package: the "state" it fetches is
    /// the finalized chain up to the package's height, taken from any node
    /// that delivered it; the package must certify exactly that chain.
    fn state_sync(&mut self, i: usize, cup: &CatchUpPackage) {
        let h = cup.content.height().0 as usize;
        self.report.catch_ups += 1;
        let donor = (0..self.nodes.len())
            .find(|j| *j != i && self.nodes[*j].delivered.len() >= h && self.nodes[*j].byz.is_none());
        let Some(donor) = donor else {
            self.checker.violations.push(format!("node {i}: no node has the state of the catch-up package at {h}"));
            return;
        };
        let chain = self.nodes[donor].delivered[..h].to_vec();
        let top = &chain[h - 1];
        if top.block_hash != cup.content.block.hash() || sim_state_hash(&top.block_hash) != cup.content.state_hash {
            self.checker.violations.push(format!(
                "SAFETY: the catch-up package at {h} certifies a block or state off the finalized chain"
            ));
        }
        if self.nodes[i].delivered.len() > h {
            self.checker.violations.push(format!("node {i} caught up to {h} below what it had delivered"));
        }
        let node = &mut self.nodes[i];
        node.delivered = chain;
        let engine = node.engine.as_mut().unwrap();
        for b in &node.delivered {
            engine.payload_mut().on_delivered(b);
        }
    }

    fn local_state(&self, i: usize) -> LocalState {
        // Execution and certification are instantaneous here: the certified
        // height is the delivered height.
        LocalState {
            certified_height: Height(self.nodes[i].delivered.len() as u64),
            registry_version: self.registry.latest(),
        }
    }

    fn step_node(&mut self, i: usize) {
        if !self.alive(i) {
            return;
        }
        self.report.steps += 1;
        let local = self.local_state(i);
        let skew = self.nodes[i].skew_ns;
        let now = Time::from_nanos(self.genesis.time.as_nanos() + self.now + skew);
        let node = &mut self.nodes[i];
        let engine = node.engine.as_mut().unwrap();
        let out = engine.step(&mut node.pool, now, &local);
        let honest = node.byz.is_none();
        let genesis_hash = self.genesis.block().hash();
        for e in &out.events {
            match e {
                PoolEvent::Validated { id, message, .. } => {
                    node.persisted.insert(*id, message.clone());
                }
                PoolEvent::Removed(id) => {
                    node.persisted.remove(id);
                }
                PoolEvent::Invalid(..) => self.report.invalid_seen += 1,
            }
        }
        if let Some(cup) = &out.catch_up {
            self.state_sync(i, cup);
        }
        let interval_starts: Vec<(Height, CryptoHash)> = out
            .batches
            .iter()
            .filter(|b| self.sc.params.is_interval_start(b.height))
            .map(|b| (b.height, sim_state_hash(&b.block_hash)))
            .collect();
        for (h, x) in interval_starts {
            self.nodes[i].engine.as_mut().unwrap().note_state_hash(h, x);
        }
        for b in &out.batches {
            if honest {
                let src = self.nodes[i].engine.as_ref().unwrap().payload().source();
                self.checker.batch(i, self.nodes[i].delivered.last(), b, genesis_hash, src);
            }
            self.report.ingress_delivered += b.block.payload.len() as u64;
            self.nodes[i].delivered.push(b.clone());
        }
        for e in out.events {
            if let PoolEvent::Validated { id, message, own } = e {
                if self.trace && (own || matches!(message, ConsensusMessage::EquivocationProof(_))) {
                    let what = match &message {
                        ConsensusMessage::NotarizationShare(x) => format!("N-share {:?}", x.content.block),
                        ConsensusMessage::FinalizationShare(x) => format!("F-share {:?}", x.content.block),
                        ConsensusMessage::Notarization(x) => format!(
                            "Notarization {:?} by {:?}",
                            x.content.block,
                            x.signers.iter().map(|s| self.index_of(s)).collect::<Vec<_>>()
                        ),
                        ConsensusMessage::Finalization(x) => format!(
                            "Finalization {:?} by {:?}",
                            x.content.block,
                            x.signers.iter().map(|s| self.index_of(s)).collect::<Vec<_>>()
                        ),
                        ConsensusMessage::BlockProposal(p) => format!("{p:?}"),
                        ConsensusMessage::EquivocationProof(p) => {
                            format!("proof against {:?} own={own}", self.index_of(&p.signer))
                        }
                        _ => String::new(),
                    };
                    if !what.is_empty() {
                        let line = format!("t={}ms node {i}: {what}", self.now / MS);
                        self.checker.log.entry(message.height()).or_default().push(line);
                    }
                }
                if honest {
                    match &message {
                        ConsensusMessage::Finalization(f) => {
                            self.checker.explicitly_finalized(i, f.content.height, f.content.block)
                        }
                        ConsensusMessage::Notarization(n) => self.checker.notarized(n.content.height, n.content.block),
                        ConsensusMessage::EquivocationProof(_) => self.report.equivocation_proofs += 1,
                        _ => {}
                    }
                }
                self.gossip(i, id, &message, own);
            }
        }
        if self.nodes[i].byz.as_ref().is_some_and(|b| b.reckless) {
            self.reckless_votes(i);
        }
        if !out.batches.is_empty() {
            // Execution and certification advanced: blocks that waited for a
            // higher certified height may be acceptable now.
            let t = self.now + 1;
            self.schedule_step(i, t);
        }
        if let Some(w) = out.wake_at {
            let global = w.as_nanos().saturating_sub(self.genesis.time.as_nanos() + skew).max(self.now);
            self.schedule_step(i, global);
        }
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Msg { to, from, id, msg } => {
                if !self.link_up(from, to) {
                    return; // lost; the link's resync will cover it
                }
                let m = Rc::unwrap_or_clone(msg);
                if self.nodes[to].pool.insert_unvalidated_with_id(id, m) {
                    let t = self.now;
                    self.schedule_step(to, t);
                }
            }
            Ev::Send { from, to, id, msg } => {
                if self.alive(from) {
                    self.send(from, to, id, msg);
                }
            }
            Ev::Step(i) => {
                let t = self.now;
                if self.nodes[i].wakes.remove(&t) {
                    self.step_node(i);
                }
            }
            Ev::Crash(i) => {
                let top = self.nodes.iter().map(|n| n.delivered.len() as u64).max().unwrap_or(0);
                self.report.delivered_at_crash.push((i, top));
                let node = &mut self.nodes[i];
                node.engine = None;
                node.pool = ArtifactPool::new(&self.genesis);
                node.wakes.clear();
                self.retransmit.retain(|(from, _), _| *from != i);
            }
            Ev::Restart(i) => {
                self.nodes[i].restarts += 1;
                self.start_node(i);
                for p in 0..self.sc.n {
                    self.resync(p, i);
                    self.resync(i, p);
                }
            }
            Ev::PartitionStart(p) => {
                self.active_partitions.insert(p);
            }
            Ev::PartitionEnd(p) => {
                let side = self.sc.partitions[p].side.clone();
                self.active_partitions.remove(&p);
                for a in 0..self.sc.n {
                    for b in 0..self.sc.n {
                        if side[a] != side[b] {
                            self.resync(a, b);
                        }
                    }
                }
            }
            Ev::Retransmit => {
                let pending = std::mem::take(&mut self.retransmit);
                for ((from, to), msgs) in pending {
                    if self.link_up(from, to) {
                        for (id, m) in msgs {
                            self.send(from, to, id, m);
                        }
                    } else if self.alive(from) {
                        // Keep them until the link is back.
                        self.retransmit.entry((from, to)).or_default().extend(msgs);
                    }
                }
                if self.now < self.sc.end_ms * MS {
                    self.schedule(self.now + 200 * MS, Ev::Retransmit);
                }
            }
            Ev::Ingress => {
                let expiry = self.genesis.time.as_nanos() + self.now + self.rng.range(30_000, 240_000) * MS;
                let pad = self.rng.range(0, 64) as usize;
                let msg = ingress_message(self.rng.bytes32(), Time::from_nanos(expiry), pad);
                for i in 0..self.sc.n {
                    if let Some(e) = self.nodes[i].engine.as_mut() {
                        e.payload_mut().source_mut().add(msg.clone());
                    }
                }
                self.schedule(self.now + self.sc.ingress_every_ms * MS, Ev::Ingress);
            }
            Ev::Registry(members) => {
                let mut ids: Vec<NodeId> = members.iter().map(|i| self.nodes[*i].id).collect();
                ids.sort();
                self.registry.0.write().unwrap().push(ids);
                for i in 0..self.sc.n {
                    let t = self.now;
                    self.schedule_step(i, t);
                }
            }
            Ev::Gst => {
                self.gst_reached = true;
                self.report.height_at_gst =
                    self.sc.correct_nodes().iter().map(|i| self.nodes[*i].delivered.len() as u64).max().unwrap_or(0);
            }
        }
    }

    /// Processes events up to `ms` (simulated milliseconds); `false` once a
    /// safety violation was seen.
    pub fn run_until(&mut self, ms: u64) -> bool {
        let end = ms * MS;
        while let Some(Reverse(e)) = self.queue.peek() {
            if e.time > end {
                break;
            }
            let Reverse(e) = self.queue.pop().unwrap();
            self.now = e.time;
            self.handle(e.ev);
            if !self.checker.violations.is_empty() {
                return false;
            }
        }
        self.now = self.now.max(end);
        true
    }

    /// Delivered height of each node now.
    pub fn delivered_heights(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.delivered.len() as u64).collect()
    }

    /// Runs to the end; `Err` describes the first violated property.
    pub fn run(mut self) -> Result<Report, String> {
        self.run_until(self.sc.end_ms);
        self.report.delivered = self.nodes.iter().map(|n| n.delivered.len() as u64).collect();
        if !self.checker.violations.is_empty() {
            let mut e = self.checker.violations.join("\n");
            if self.trace {
                for (h, lines) in &self.checker.log {
                    for l in lines {
                        e.push_str(&format!("\n  h={h} {l}"));
                    }
                }
            }
            return Err(e);
        }
        // Liveness: after GST every correct node keeps finalizing.
        let correct = self.sc.correct_nodes();
        let target = self.report.height_at_gst + self.sc.min_progress;
        for i in &correct {
            let d = self.nodes[*i].delivered.len() as u64;
            if d < target {
                return Err(format!(
                    "LIVENESS: node {i} delivered {d} heights by the end, expected ≥ {target} \
                     (highest at GST {}); delivered per node {:?}; finalized per node {:?}",
                    self.report.height_at_gst,
                    self.report.delivered,
                    self.nodes.iter().map(|n| n.pool.finalized_height().0).collect::<Vec<_>>(),
                ) + &self.node_states());
            }
        }
        if let Some(longest) = correct.iter().max_by_key(|i| self.nodes[**i].delivered.len()) {
            self.report.summaries =
                self.nodes[*longest].delivered.iter().filter_map(|b| b.block.dkg.summary().cloned()).collect();
        }
        // Prefix property of the delivered chains.
        let min = correct.iter().map(|i| self.nodes[*i].delivered.len()).min().unwrap_or(0);
        if let Some(first) = correct.first() {
            self.report.chain_digest = self.nodes[*first].delivered[..min].iter().map(|b| b.block_hash).collect();
            for i in &correct {
                let mine: Vec<CryptoHash> = self.nodes[*i].delivered[..min].iter().map(|b| b.block_hash).collect();
                if mine != self.report.chain_digest {
                    return Err(format!("SAFETY: node {i}'s chain differs from node {first}'s"));
                }
            }
        }
        Ok(self.report)
    }
}

/// Runs one scenario, panicking with the seed and scenario on failure.
pub fn run_or_panic(sc: Scenario) -> Report {
    let desc = sc.describe();
    let seed = sc.seed;
    match Sim::new(sc).run() {
        Ok(r) => r,
        Err(e) => panic!(
            "simulation failed: {e}\nscenario: {desc}\nreplay: CAIRN_SIM_SEED={seed} cargo test -p cairn-consensus \
             --test simulation <this test> (CAIRN_SIM_TRACE=1 prints every vote)"
        ),
    }
}
