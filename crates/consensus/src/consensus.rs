//! The consensus driver: a pure, deterministic function from (pool, local
//! time, local certified state) to pool changes and finalized batches.
//!
//! Each call of [`Consensus::on_state_change`] runs the sub-components in a
//! fixed priority order and returns the changes of the first one that has
//! any, so every decision sees the effects of the previous one. The
//! sub-components follow the IC's round (design-deps §1.2):
//!
//! 1. **validation** of received artifacts (see [`crate::validator`]);
//! 2. **aggregation** of shares: beacon (f+1), notarization and finalization
//!    (2f+1), random tape (f+1);
//! 3. **finalization shares** for every height in `(finalized, notarized]`
//!    with exactly one notarized block that this node did not vote against;
//! 4. **notarization shares** for the lowest-ranked valid proposals of the
//!    open round once the notary delay for their rank has passed;
//! 5. the **random beacon share** of the next height;
//! 6. **block making** after `unit_delay × rank`, unless a valid
//!    lower-ranked proposal is already there;
//! 7. **random tape shares** for finalized, undelivered heights;
//! 8. **purging** below the finalized height.
//!
//! [`Consensus::step`] runs the same sub-components, applying each one's
//! changes before the next runs, until nothing changes, and delivers
//! finalized blocks in height order. Time is passed in and randomness comes
//! only from the random beacon, so n nodes in one process under a simulated
//! clock behave exactly as n real nodes.
//!
//! The notary's "only lower or equal rank later" rule is applied among
//! *non-disqualified* makers: after an equivocation proof a notary may vote
//! for a higher rank than before (otherwise an equivocating leader whose
//! block some notaries already backed could stall the height). Safety never
//! depends on the notary rule, only on the finalization rule.

use crate::committee::{Membership, RoundCommittee, SubnetRegistry};
use crate::crypto::{ConsensusCrypto, KeyId, ThresholdKey};
use crate::dkg::{DkgPayload, DkgSummary, IntervalContents, SignedComplaint, SignedDealing};
use crate::hash::CryptoHash;
use crate::params::ConsensusParams;
use crate::payload::{PastBlock, PayloadContext, PayloadHandler};
use crate::pool::{ArtifactPool, ChangeAction, PoolEvent};
use crate::types::{
    ArtifactKind, Batch, Block, BlockContext, BlockProposal, CatchUpContent, CatchUpShareContent, ConsensusMessage,
    FinalizationContent, MultiSignature, NotarizationContent, RandomBeaconContent, RandomTapeContent, Rank, Share,
    SignedContent, ThresholdSignature,
};
use cairn_types::{Height, NodeId, RegistryVersion, Time};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// Static configuration of one node's consensus.
#[derive(Clone, Debug)]
pub struct ConsensusConfig {
    /// This node.
    pub node_id: NodeId,
    /// Who the registry says the subnet's members are, at each registry
    /// version (a summary block's version decides who receives the keys of
    /// two intervals on).
    pub registry: Arc<dyn SubnetRegistry>,
    /// Delays and limits.
    pub params: ConsensusParams,
    /// The genesis every member starts from.
    pub genesis: crate::types::Genesis,
}

/// What the node (execution, certification, registry) tells consensus on
/// each call; consensus never reads it from anywhere else. Proposals whose
/// context is ahead of it wait, so call [`Consensus::step`] again whenever
/// it advances (after executing and certifying delivered batches).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LocalState {
    /// The latest height whose state this node has certified.
    pub certified_height: Height,
    /// The latest registry version this node knows.
    pub registry_version: RegistryVersion,
}

/// Everything one [`Consensus::step`] produced.
#[derive(Clone, Debug, Default)]
pub struct StepOutput {
    /// Pool events in order: validated artifacts to persist and then gossip,
    /// removed artifacts to delete, invalid artifacts to log.
    pub events: Vec<PoolEvent>,
    /// Finalized blocks to execute, in height order.
    pub batches: Vec<Batch>,
    /// Call `step` again at this local time at the latest (a delay expires),
    /// even if no artifact arrives.
    pub wake_at: Option<Time>,
    /// This node fell behind a catch-up package whose blocks it no longer
    /// can get: before executing `batches`, it must load the state the
    /// package certifies (state sync). Batches continue above its height.
    pub catch_up: Option<crate::types::CatchUpPackage>,
}

/// Heights read from the pool once per pass.
#[derive(Clone, Copy, Debug)]
pub(crate) struct View {
    pub(crate) finalized: Height,
    pub(crate) notarized: Height,
    pub(crate) beacon: Height,
}

impl View {
    fn of(pool: &ArtifactPool) -> View {
        View { finalized: pool.finalized_height(), notarized: pool.notarized_height(), beacon: pool.beacon_height() }
    }
}

/// Upper bound on passes per step; a pass that changes nothing ends the
/// step long before (each pass either changes the pool or stops).
const MAX_PASSES: usize = 100_000;

/// How long a node below a catch-up package waits for missing random tapes
/// before it resumes from the package instead.
const TAPE_GRACE: Duration = Duration::from_secs(2);

/// At most this many random tape shares are made per pass (a lagging node
/// may have many finalized heights without tapes).
const TAPE_SHARES_PER_PASS: u64 = 16;

type SubComponent<C, P> = fn(&mut Consensus<C, P>, &ArtifactPool, &View, Time, &LocalState) -> Vec<ChangeAction>;

/// One node's consensus state machine. Holds only what can be rebuilt:
/// after a crash, create a new one with the next undelivered height and a
/// pool restored from the persisted validated artifacts.
pub struct Consensus<C, P> {
    pub(crate) cfg: ConsensusConfig,
    pub(crate) crypto: C,
    pub(crate) payload: P,
    pub(crate) next_batch_height: Height,
    /// Local time at which each round started (notarized block and beacon
    /// of the previous height both present).
    round_start: BTreeMap<Height, Time>,
    /// Committees per height. Keyed by height alone: the beacon of a height
    /// is a unique threshold signature, so it can't change once validated.
    rounds: BTreeMap<Height, Arc<RoundCommittee>>,
    /// Hashes of validated beacons (unique per height, like `rounds`).
    beacon_hashes: BTreeMap<Height, CryptoHash>,
    /// Heights up to which losing blocks were already purged.
    purged_through: Height,
    wake_at: Option<Time>,
    last_purge: Option<(Height, Height, Height)>,
    pub(crate) validation_memo: Option<(u64, Time, LocalState, Height)>,
    /// Earliest block time the last validation pass is waiting for.
    pub(crate) validation_wake: Option<Time>,
    /// Height of the catch-up package the chain currently starts from.
    pub(crate) catch_up_height: Height,
    /// Manifest roots of this node's checkpoints at interval starts, for
    /// catch-up package shares.
    state_hashes: BTreeMap<Height, CryptoHash>,
    /// A catch-up package adopted during the current step.
    adopted: Option<crate::types::CatchUpPackage>,
    /// A newer catch-up package whose blocks are here but not all their
    /// random tapes, and since when.
    tapes_missing: Option<(Height, Time)>,
    /// Resume from the next catch-up package even if its blocks are here
    /// (this node's state diverged; the package's state replaces it).
    resync: bool,
    /// Key generation: finalized summaries, what was dealt and checked.
    pub(crate) dkg: DkgState,
}

/// What consensus remembers of key generation (all rebuildable from the
/// pool: summaries from finalized summary blocks, the rest from artifacts).
#[derive(Debug, Default)]
pub(crate) struct DkgState {
    /// Finalized summaries by interval start (the latest few).
    pub(crate) summaries: BTreeMap<Height, Arc<DkgSummary>>,
    /// Members per interval start (the holders of that interval's keys).
    pub(crate) members: BTreeMap<Height, Arc<Membership>>,
    /// The highest interval whose summary's keys were loaded.
    keys_through: Option<Height>,
    /// Summaries computed for blocks on a parent (by parent hash), so a
    /// summary is built once however many proposals repeat it.
    by_parent: BTreeMap<(CryptoHash, RegistryVersion), Arc<DkgSummary>>,
    /// (interval, kind) this node dealt.
    dealt: BTreeSet<(Height, ThresholdKey)>,
    /// (interval, kind, dealer) of chain dealings whose share this node
    /// checked.
    checked: BTreeSet<(Height, ThresholdKey, NodeId)>,
    /// Finalized heights whose dealings were checked.
    scanned_through: Height,
    /// The last (keys loaded through, finalized height, newest catch-up
    /// package) at which loading keys was tried.
    sync_attempt: Option<(Option<Height>, Height, Option<Height>)>,
}

impl<C: ConsensusCrypto, P: PayloadHandler> Consensus<C, P> {
    /// A consensus instance that will deliver batches from
    /// `next_batch_height` on (1 for a fresh subnet; after a restart, one
    /// above the last height the node executed).
    pub fn new(cfg: ConsensusConfig, crypto: C, payload: P, next_batch_height: Height) -> Self {
        Consensus {
            cfg,
            crypto,
            payload,
            next_batch_height: Height(next_batch_height.0.max(1)),
            round_start: BTreeMap::new(),
            rounds: BTreeMap::new(),
            beacon_hashes: BTreeMap::new(),
            purged_through: Height(0),
            wake_at: None,
            last_purge: None,
            validation_memo: None,
            validation_wake: None,
            catch_up_height: Height(0),
            state_hashes: BTreeMap::new(),
            adopted: None,
            tapes_missing: None,
            resync: false,
            dkg: DkgState::default(),
        }
    }

    /// This node's state is wrong (it diverged from the subnet's): the next
    /// catch-up package is adopted as the chain's root with its state, and
    /// delivery restarts right above it.
    pub fn resync_at_next_catch_up(&mut self) {
        self.resync = true;
    }

    /// Tells consensus the manifest root of this node's checkpoint at an
    /// interval start; it signs a catch-up package share with it.
    pub fn note_state_hash(&mut self, height: Height, hash: CryptoHash) {
        if height > self.catch_up_height {
            self.state_hashes.insert(height, hash);
        }
    }

    /// The latest finalized key-generation summary (keys of its interval
    /// and the next).
    pub fn latest_summary(&self) -> Option<&DkgSummary> {
        self.dkg.summaries.last_key_value().map(|(_, s)| &**s)
    }

    /// Every node that holds keys of an interval in use here (the current
    /// and next intervals' members, and the receivers of this interval's
    /// dealings): the nodes this node must talk to.
    pub fn members_in_use(&self) -> BTreeSet<NodeId> {
        let mut out: BTreeSet<NodeId> = self.dkg.members.values().flat_map(|m| m.nodes().iter().copied()).collect();
        if let Some(s) = self.latest_summary() {
            out.extend(s.receivers.iter().copied());
        }
        out
    }

    /// Height of the catch-up package the chain currently starts from.
    pub fn catch_up_height(&self) -> Height {
        self.catch_up_height
    }

    /// The configuration.
    pub fn config(&self) -> &ConsensusConfig {
        &self.cfg
    }

    /// The crypto.
    pub fn crypto(&self) -> &C {
        &self.crypto
    }

    /// The payload handler.
    pub fn payload(&self) -> &P {
        &self.payload
    }

    /// The payload handler, mutably (the node feeds it ingress).
    pub fn payload_mut(&mut self) -> &mut P {
        &mut self.payload
    }

    /// The next height to deliver.
    pub fn next_batch_height(&self) -> Height {
        self.next_batch_height
    }

    /// The earliest future local time at which a delay noted by the last
    /// pass expires.
    pub fn wake_at(&self) -> Option<Time> {
        self.wake_at
    }

    /// Runs the sub-components until nothing changes, applying each one's
    /// changes before the next runs (so every decision sees the previous
    /// ones, exactly as with repeated [`Consensus::on_state_change`] calls),
    /// delivers finalized blocks, and reports what happened.
    pub fn step(&mut self, pool: &mut ArtifactPool, now: Time, local: &LocalState) -> StepOutput {
        self.wake_at = None;
        let mut out = StepOutput::default();
        let mut view = View::of(pool);
        for _ in 0..MAX_PASSES {
            let mut changed = false;
            self.note_round_start(pool, &view, now);
            self.sync_keys(pool, &view);
            for c in Self::COMPONENTS {
                let changes = c(self, pool, &view, now, local);
                if !changes.is_empty() {
                    changed = true;
                    for ch in changes {
                        pool.apply(ch, &mut out.events);
                    }
                    view = View::of(pool);
                    self.note_round_start(pool, &view, now);
                    self.sync_keys(pool, &view);
                }
            }
            let batches = self.deliver(pool);
            let delivered = !batches.is_empty();
            out.batches.extend(batches);
            if !changed && !delivered {
                break;
            }
        }
        out.wake_at = self.wake_at;
        out.catch_up = self.adopted.take();
        out
    }

    /// The sub-components in priority order.
    const COMPONENTS: [SubComponent<C, P>; 15] = [
        Self::validate,
        Self::catch_up,
        Self::aggregate_catch_up,
        Self::make_catch_up_share,
        Self::aggregate_beacon,
        Self::aggregate_notarizations,
        Self::aggregate_finalizations,
        Self::aggregate_tapes,
        Self::make_finalization_shares,
        Self::make_notarization_shares,
        Self::make_beacon_share,
        Self::make_block,
        Self::make_tape_shares,
        Self::make_dkg_artifacts,
        Self::purge,
    ];

    /// One pass: the changes of the highest-priority sub-component that has
    /// any (empty when there is nothing to do until an artifact arrives or a
    /// delay expires, see [`Consensus::wake_at`]). The caller applies them
    /// to the pool and calls again; [`Consensus::step`] does all of that.
    pub fn on_state_change(&mut self, pool: &ArtifactPool, now: Time, local: &LocalState) -> Vec<ChangeAction> {
        let view = View::of(pool);
        self.note_round_start(pool, &view, now);
        self.sync_keys(pool, &view);
        for c in Self::COMPONENTS {
            let changes = c(self, pool, &view, now, local);
            if !changes.is_empty() {
                return changes;
            }
        }
        Vec::new()
    }

    pub(crate) fn wake(&mut self, t: Time) {
        self.wake_at = Some(self.wake_at.map_or(t, |w| w.min(t)));
    }

    pub(crate) fn me(&self) -> NodeId {
        self.cfg.node_id
    }

    /// The members at height `h`: the holders of its interval's keys (the
    /// committee changes only at interval starts, as the keys do). `None`
    /// until that interval's summary is known.
    pub fn membership(&self, h: Height) -> Option<Arc<Membership>> {
        self.dkg.members.get(&crate::dkg::interval_start(h, self.interval_length())).cloned()
    }

    /// The committees of height `h`, from the beacon of `h − 1`.
    pub(crate) fn round(&mut self, pool: &ArtifactPool, h: Height) -> Option<Arc<RoundCommittee>> {
        if h.0 == 0 {
            return None;
        }
        if let Some(r) = self.rounds.get(&h) {
            return Some(r.clone());
        }
        let bh = self.beacon_hash(pool, Height(h.0 - 1))?;
        let r = Arc::new(self.membership(h)?.round(&bh));
        self.rounds.insert(h, r.clone());
        Some(r)
    }

    /// Hash of the validated beacon at `h`, cached.
    pub(crate) fn beacon_hash(&mut self, pool: &ArtifactPool, h: Height) -> Option<CryptoHash> {
        if let Some(x) = self.beacon_hashes.get(&h) {
            return Some(*x);
        }
        let x = pool.beacon(h)?.hash();
        self.beacon_hashes.insert(h, x);
        Some(x)
    }

    fn note_round_start(&mut self, pool: &ArtifactPool, v: &View, now: Time) {
        let h = v.notarized.increment();
        if pool.beacon(v.notarized).is_some() {
            self.round_start.entry(h).or_insert(now);
        }
    }

    /// Whether `signer`'s proposals at `h` are disqualified (equivocation).
    pub(crate) fn disqualified(pool: &ArtifactPool, h: Height, signer: &NodeId) -> bool {
        pool.equivocation_proofs_at(h).any(|p| p.signer == *signer)
            || pool.proposals_at(h).filter(|p| p.signer() == *signer).nth(1).is_some()
    }

    /// The valid, non-disqualified proposals of the lowest rank at `h`.
    fn lowest_ranked_proposals(pool: &ArtifactPool, h: Height) -> Vec<&BlockProposal> {
        let mut best: Vec<&BlockProposal> = Vec::new();
        for p in pool.proposals_at(h) {
            if Self::disqualified(pool, h, &p.signer()) {
                continue;
            }
            match best.first().map(|b| b.rank()) {
                Some(r) if p.rank() > r => {}
                Some(r) if p.rank() == r => best.push(p),
                _ => best = vec![p],
            }
        }
        best
    }

    /// The notarized block at `h` to build on: lowest rank, then hash.
    fn best_notarized_block(pool: &ArtifactPool, h: Height) -> Option<&BlockProposal> {
        pool.proposals_at(h).filter(|p| pool.is_notarized(h, &p.hash())).min_by_key(|p| (p.rank(), p.hash()))
    }

    /// The ancestors of the block `hash` at `h` (itself first) down to
    /// height `floor`, as far as the pool has them.
    pub(crate) fn ancestors(
        pool: &ArtifactPool,
        mut h: Height,
        mut hash: CryptoHash,
        floor: Height,
    ) -> Vec<PastBlock<'_>> {
        let mut out = Vec::new();
        while h >= floor
            && let Some(p) = pool.proposal(h, &hash)
        {
            out.push(PastBlock { hash, block: p.block() });
            if h.0 == 0 {
                break;
            }
            hash = p.block().parent;
            h = Height(h.0 - 1);
        }
        out
    }

    // -----------------------------------------------------------------------
    // Aggregation
    // -----------------------------------------------------------------------

    fn aggregate_beacon(&mut self, pool: &ArtifactPool, v: &View, _: Time, _: &LocalState) -> Vec<ChangeAction> {
        let h = v.beacon.increment();
        let Some(parent) = self.beacon_hash(pool, v.beacon) else { return Vec::new() };
        let content = RandomBeaconContent { height: h, parent };
        let shares: Vec<(NodeId, &[u8])> = sorted_shares(pool.beacon_shares_at(h).filter(|s| s.content == content));
        let Some(threshold) = self.membership(h).map(|m| m.beacon_threshold()) else { return Vec::new() };
        if shares.len() < threshold {
            return Vec::new();
        }
        match self.crypto.combine_threshold(
            self.key(ThresholdKey::Low, h),
            threshold,
            &content.signing_bytes(),
            &shares,
        ) {
            Ok(signature) => {
                vec![ChangeAction::AddToValidated(ConsensusMessage::RandomBeacon(ThresholdSignature {
                    content,
                    signature,
                }))]
            }
            Err(_) => Vec::new(),
        }
    }

    fn aggregate_tapes(&mut self, pool: &ArtifactPool, _: &View, _: Time, _: &LocalState) -> Vec<ChangeAction> {
        let mut by_height: BTreeMap<Height, Vec<&Share<RandomTapeContent>>> = BTreeMap::new();
        for (_, m) in pool.validated_between(ArtifactKind::RandomTapeShare, self.next_batch_height, Height(u64::MAX)) {
            if let ConsensusMessage::RandomTapeShare(s) = m {
                by_height.entry(s.content.height).or_default().push(s);
            }
        }
        let mut out = Vec::new();
        for (h, shares) in by_height {
            let Some(threshold) = self.membership(h).map(|m| m.beacon_threshold()) else { continue };
            if shares.len() < threshold || pool.tape(h).is_some() {
                continue;
            }
            let content = RandomTapeContent { height: h };
            let refs = sorted_shares(shares.into_iter());
            if let Ok(signature) = self.crypto.combine_threshold(
                self.key(ThresholdKey::Low, h),
                threshold,
                &content.signing_bytes(),
                &refs,
            ) {
                out.push(ChangeAction::AddToValidated(ConsensusMessage::RandomTape(ThresholdSignature {
                    content,
                    signature,
                })));
            }
        }
        out
    }

    fn aggregate_notarizations(&mut self, pool: &ArtifactPool, v: &View, _: Time, _: &LocalState) -> Vec<ChangeAction> {
        let groups = group_shares(pool, ArtifactKind::NotarizationShare, v.finalized.increment(), |m| match m {
            ConsensusMessage::NotarizationShare(s) => Some(s),
            _ => None,
        });
        self.aggregate_multi(groups, |c| pool.has_notarization(c), ConsensusMessage::Notarization)
    }

    fn aggregate_finalizations(&mut self, pool: &ArtifactPool, v: &View, _: Time, _: &LocalState) -> Vec<ChangeAction> {
        let groups = group_shares(pool, ArtifactKind::FinalizationShare, v.finalized.increment(), |m| match m {
            ConsensusMessage::FinalizationShare(s) => Some(s),
            _ => None,
        });
        self.aggregate_multi(groups, |c| pool.has_finalization(c), ConsensusMessage::Finalization)
    }

    fn aggregate_multi<T: SignedContent>(
        &self,
        groups: BTreeMap<T, Vec<&Share<T>>>,
        exists: impl Fn(&T) -> bool,
        wrap: fn(MultiSignature<T>) -> ConsensusMessage,
    ) -> Vec<ChangeAction> {
        let mut out = Vec::new();
        for (content, shares) in groups {
            let Some(threshold) = self.membership(content.height()).map(|m| m.notarization_threshold()) else {
                continue;
            };
            if shares.len() < threshold || exists(&content) {
                continue;
            }
            let refs = sorted_shares(shares.into_iter());
            let signers: Vec<NodeId> = refs.iter().map(|(n, _)| *n).collect();
            if let Ok(signature) = self.crypto.aggregate_multi(&content.signing_bytes(), &refs) {
                out.push(ChangeAction::AddToValidated(wrap(MultiSignature { content, signers, signature })));
            }
        }
        out
    }

    // -----------------------------------------------------------------------
    // Share makers
    // -----------------------------------------------------------------------

    /// The finalization rule: for each height in `(finalized, notarized]`,
    /// sign the block if it is the *only* notarized block there and this
    /// node signed no notarization share for any other block there. An
    /// honest finalizer thus never backed a competitor, so a finalized block
    /// can't have a notarized sibling (2f+1 + 2f+1 > 3f+1 + f).
    fn make_finalization_shares(
        &mut self,
        pool: &ArtifactPool,
        v: &View,
        _: Time,
        _: &LocalState,
    ) -> Vec<ChangeAction> {
        let me = self.me();
        let mut out = Vec::new();
        let mut h = v.finalized.increment();
        while h <= v.notarized {
            let cur = h;
            h = h.increment();
            let Some(round) = self.round(pool, cur) else { continue };
            if !round.is_notary(&me) || pool.finalization_shares_at(cur).any(|s| s.signer == me) {
                continue;
            }
            let Some(block) = finalizable_block(pool, cur, &me) else { continue };
            let content = FinalizationContent { height: cur, block };
            let signature = self.crypto.sign_multi_share(&content.signing_bytes());
            out.push(ChangeAction::AddToValidated(ConsensusMessage::FinalizationShare(Share {
                content,
                signer: me,
                signature,
            })));
        }
        out
    }

    /// Notarization: sign the lowest-ranked non-disqualified proposals of
    /// the open round once the notary delay of their rank has passed. A
    /// node thus only ever adds votes for lower (or equal) ranks than it
    /// voted for before, unless the lower-ranked maker was disqualified.
    fn make_notarization_shares(
        &mut self,
        pool: &ArtifactPool,
        v: &View,
        now: Time,
        local: &LocalState,
    ) -> Vec<ChangeAction> {
        let h = v.notarized.increment();
        let me = self.me();
        let Some(&start) = self.round_start.get(&h) else { return Vec::new() };
        let Some(round) = self.round(pool, h) else { return Vec::new() };
        if !round.is_notary(&me) {
            return Vec::new();
        }
        let candidates = Self::lowest_ranked_proposals(pool, h);
        let Some(rank) = candidates.first().map(|p| p.rank()) else { return Vec::new() };
        let Some(delay) = self.cfg.params.notary_delay(rank, v.notarized, v.finalized, local.certified_height) else {
            return Vec::new();
        };
        let due = start.saturating_add(delay);
        if now < due {
            self.wake(due);
            return Vec::new();
        }
        let mut out = Vec::new();
        for p in candidates {
            let content = NotarizationContent { height: h, block: p.hash() };
            if pool.notarization_shares_at(h).any(|s| s.signer == me && s.content == content) {
                continue;
            }
            let signature = self.crypto.sign_multi_share(&content.signing_bytes());
            out.push(ChangeAction::AddToValidated(ConsensusMessage::NotarizationShare(Share {
                content,
                signer: me,
                signature,
            })));
        }
        out
    }

    /// The beacon share of the next height, once the current height has a
    /// notarized block (the beacon runs at most one height ahead).
    fn make_beacon_share(&mut self, pool: &ArtifactPool, v: &View, _: Time, _: &LocalState) -> Vec<ChangeAction> {
        let h = v.beacon.increment();
        let me = self.me();
        if h > v.notarized.increment() || !self.membership(h).is_some_and(|m| m.contains(&me)) {
            return Vec::new();
        }
        if pool.beacon_shares_at(h).any(|s| s.signer == me) {
            return Vec::new();
        }
        let Some(parent) = self.beacon_hash(pool, v.beacon) else { return Vec::new() };
        let content = RandomBeaconContent { height: h, parent };
        match self.crypto.sign_threshold_share(self.key(ThresholdKey::Low, h), &content.signing_bytes()) {
            Ok(signature) => vec![ChangeAction::AddToValidated(ConsensusMessage::RandomBeaconShare(Share {
                content,
                signer: me,
                signature,
            }))],
            Err(_) => Vec::new(),
        }
    }

    /// Random tape shares for finalized heights not yet delivered: the tape
    /// of a height is revealed only once its block is final, so nobody can
    /// pick a block knowing the randomness it will execute with.
    fn make_tape_shares(&mut self, pool: &ArtifactPool, v: &View, _: Time, _: &LocalState) -> Vec<ChangeAction> {
        let me = self.me();
        let lo = self.next_batch_height;
        let hi = Height(v.finalized.0.min(lo.0 + TAPE_SHARES_PER_PASS - 1));
        let mut out = Vec::new();
        let mut h = lo;
        while h <= hi {
            if !self.membership(h).is_some_and(|m| m.contains(&me)) {
                break;
            }
            if pool.tape(h).is_none() && !pool.tape_shares_at(h).any(|s| s.signer == me) {
                let content = RandomTapeContent { height: h };
                match self.crypto.sign_threshold_share(self.key(ThresholdKey::Low, h), &content.signing_bytes()) {
                    Ok(signature) => out.push(ChangeAction::AddToValidated(ConsensusMessage::RandomTapeShare(Share {
                        content,
                        signer: me,
                        signature,
                    }))),
                    Err(_) => break,
                }
            }
            h = h.increment();
        }
        out
    }

    // -----------------------------------------------------------------------
    // Block making
    // -----------------------------------------------------------------------

    fn make_block(&mut self, pool: &ArtifactPool, v: &View, now: Time, local: &LocalState) -> Vec<ChangeAction> {
        let h = v.notarized.increment();
        let me = self.me();
        let Some(&start) = self.round_start.get(&h) else { return Vec::new() };
        let Some(round) = self.round(pool, h) else { return Vec::new() };
        let Some(rank) = round.rank_of(&me) else { return Vec::new() };
        if pool.proposals_at(h).any(|p| p.signer() == me) {
            return Vec::new();
        }
        if v.notarized.0.saturating_sub(local.certified_height.0) >= self.cfg.params.notarization_certification_gap {
            return Vec::new();
        }
        if Self::lowest_ranked_proposals(pool, h).first().is_some_and(|p| p.rank() < rank) {
            return Vec::new();
        }
        let due = start.saturating_add(self.cfg.params.block_maker_delay(rank));
        if now < due {
            self.wake(due);
            return Vec::new();
        }
        let Some(parent) = Self::best_notarized_block(pool, v.notarized) else { return Vec::new() };
        let Some(block) = self.build_block(pool, parent, rank, now, local) else { return Vec::new() };
        let proposal = BlockProposal::sign(block, &self.crypto);
        vec![ChangeAction::AddToValidated(ConsensusMessage::BlockProposal(proposal))]
    }

    /// A block on `parent` with a context valid by construction: time after
    /// the parent's, versions and certified height never decreasing.
    fn build_block(
        &mut self,
        pool: &ArtifactPool,
        parent: &BlockProposal,
        rank: Rank,
        now: Time,
        local: &LocalState,
    ) -> Option<Block> {
        let pc = parent.block().context;
        let h = parent.height().increment();
        let context = BlockContext {
            time: now.max(pc.time.saturating_add(Duration::from_nanos(1))),
            registry_version: local.registry_version.max(pc.registry_version),
            certified_height: local.certified_height.max(pc.certified_height).min(parent.height()),
        };
        // Only undelivered ancestors: the handler heard of the rest.
        let past = Self::ancestors(pool, parent.height(), parent.hash(), self.next_batch_height);
        let dkg = if self.cfg.params.is_interval_start(h) {
            DkgPayload::Summary(Box::new((*self.summary_on(pool, parent, context.registry_version)?).clone()))
        } else {
            self.dkg_data_on(pool, parent)?
        };
        let payload = self.payload.build(&PayloadContext { height: h, context: &context, past: &past });
        Some(Block { parent: parent.hash(), height: h, rank, context, payload, dkg })
    }

    // -----------------------------------------------------------------------
    // Catch-up packages
    // -----------------------------------------------------------------------

    /// Moves the chain's root to a newer validated catch-up package. A node
    /// that executed past it just notes it; a node that cannot reach it
    /// through blocks (they are purged everywhere, or it never had them)
    /// drops everything below it and resumes from it, after loading the
    /// state it certifies (reported in [`StepOutput::catch_up`]).
    fn catch_up(&mut self, pool: &ArtifactPool, _: &View, now: Time, _: &LocalState) -> Vec<ChangeAction> {
        let Some(cup) = pool.latest_catch_up() else { return Vec::new() };
        let h = cup.content.height();
        if h <= self.catch_up_height {
            return Vec::new();
        }
        let next = self.next_batch_height;
        let blocks = h < next || {
            let need = (h.0 - next.0 + 1) as usize;
            Self::ancestors(pool, h, cup.content.block.hash(), next).len() >= need
        };
        // Below a package, peers may purge anything, random tapes included:
        // blocks without their tapes can't be delivered. Tapes that are
        // merely late get a grace period before the chain is given up.
        let tapes = h < next || (next.0..h.0).all(|g| pool.tape(Height(g)).is_some());
        if !self.resync && blocks && !tapes {
            let since = match self.tapes_missing {
                Some((x, t)) if x == h => t,
                _ => {
                    self.tapes_missing = Some((h, now));
                    now
                }
            };
            let deadline = since.saturating_add(TAPE_GRACE);
            if now < deadline {
                self.wake(deadline);
                return Vec::new();
            }
        }
        self.tapes_missing = None;
        let reachable = !self.resync && blocks && tapes;
        self.catch_up_height = h;
        self.state_hashes = self.state_hashes.split_off(&h.increment());
        if reachable {
            return Vec::new();
        }
        self.resync = false;
        self.next_batch_height = h.increment();
        self.purged_through = h;
        self.round_start = self.round_start.split_off(&h);
        self.rounds = self.rounds.split_off(&h);
        self.beacon_hashes = self.beacon_hashes.split_off(&h);
        self.validation_memo = None;
        self.adopted = Some(cup.clone());
        vec![ChangeAction::CatchUp(Box::new(cup.clone()))]
    }

    /// A share of the catch-up package at each interval start this node
    /// finalized and checkpointed.
    fn make_catch_up_share(&mut self, pool: &ArtifactPool, v: &View, _: Time, _: &LocalState) -> Vec<ChangeAction> {
        let me = self.me();
        let mut out = Vec::new();
        let ready: Vec<(Height, CryptoHash)> = self.state_hashes.range(..=v.finalized).map(|(h, x)| (*h, *x)).collect();
        for (h, state_hash) in ready {
            if pool.has_catch_up_from(h)
                || pool.validated_at(ArtifactKind::CatchUpPackageShare, h).any(|m| m.signer() == Some(me))
            {
                self.state_hashes.remove(&h);
                continue;
            }
            let Some(block) = self.finalized_chain(pool, v.finalized, h).get(&h).copied() else { continue };
            let Some(beacon) = self.beacon_hash(pool, h) else { continue };
            let content = CatchUpShareContent { height: h, block, beacon, state_hash };
            match self.crypto.sign_threshold_share(self.key(ThresholdKey::High, h), &content.signing_bytes()) {
                Ok(signature) => out.push(ChangeAction::AddToValidated(ConsensusMessage::CatchUpPackageShare(Share {
                    content,
                    signer: me,
                    signature,
                }))),
                // The interval's key is not loaded yet: try again later.
                Err(crate::crypto::CryptoError::KeyNotLoaded(_)) => {}
                Err(_) => {
                    self.state_hashes.remove(&h);
                }
            }
        }
        out
    }

    /// Combines n − f matching shares into a catch-up package.
    fn aggregate_catch_up(&mut self, pool: &ArtifactPool, _: &View, _: Time, _: &LocalState) -> Vec<ChangeAction> {
        let from = self.catch_up_height.increment();
        let groups = group_shares(pool, ArtifactKind::CatchUpPackageShare, from, |m| match m {
            ConsensusMessage::CatchUpPackageShare(s) => Some(s),
            _ => None,
        });
        for (content, shares) in groups {
            let Some(threshold) = self.membership(content.height).map(|m| m.catch_up_threshold()) else { continue };
            if shares.len() < threshold || pool.has_catch_up_from(content.height) {
                continue;
            }
            let Some(proposal) = pool.proposal(content.height, &content.block) else { continue };
            let Some(beacon) = pool.beacon(content.height).filter(|b| b.hash() == content.beacon) else { continue };
            let refs = sorted_shares(shares.into_iter());
            let Ok(signature) = self.crypto.combine_threshold(
                self.key(ThresholdKey::High, content.height),
                threshold,
                &content.signing_bytes(),
                &refs,
            ) else {
                continue;
            };
            let full = CatchUpContent {
                block: proposal.block().clone(),
                beacon: beacon.clone(),
                state_hash: content.state_hash,
            };
            return vec![ChangeAction::AddToValidated(ConsensusMessage::CatchUpPackage(ThresholdSignature {
                content: full,
                signature,
            }))];
        }
        Vec::new()
    }

    // -----------------------------------------------------------------------
    // Key generation
    // -----------------------------------------------------------------------

    /// The key that signs `kind` at height `h`: the one of its interval.
    pub(crate) fn key(&self, kind: ThresholdKey, h: Height) -> KeyId {
        crate::dkg::key_at(kind, h, self.interval_length())
    }

    fn interval_length(&self) -> u64 {
        self.cfg.params.interval_length.max(1)
    }

    /// Loads the keys of every newly finalized summary block (and of the
    /// chain's root: genesis or a catch-up package): its current keys, and
    /// its next ones, which sign the following interval. Keys no height
    /// still needs are dropped.
    fn sync_keys(&mut self, pool: &ArtifactPool, v: &View) {
        let l = self.interval_length();
        let top = crate::dkg::interval_start(v.finalized, l);
        if self.dkg.keys_through.is_some_and(|k| k >= top) {
            return;
        }
        // A failed attempt is repeated only once more is finalized.
        let attempt = (self.dkg.keys_through, v.finalized, pool.latest_catch_up().map(|c| c.content.height()));
        if self.dkg.sync_attempt == Some(attempt) {
            return;
        }
        self.dkg.sync_attempt = Some(attempt);
        // From the interval of the next height to deliver (its keys sign the
        // tapes still needed), or on from what is loaded.
        let mut s = match self.dkg.keys_through {
            Some(k) => Height(k.0 + l),
            None => crate::dkg::interval_start(self.next_batch_height.min(v.finalized), l),
        };
        while s <= top {
            let Some(summary) = Self::finalized_block(pool, s, v.finalized).and_then(|b| b.dkg.summary()) else {
                // Not in the pool (purged below a catch-up package): go on
                // from the chain's root, the newest package.
                match pool.latest_catch_up().map(|c| c.content.height()) {
                    Some(root) if root > s => {
                        s = root;
                        continue;
                    }
                    _ => break,
                }
            };
            let summary = Arc::new(summary.clone());
            let next = Height(s.0 + l);
            for (interval, pair) in [(s, &summary.current), (next, &summary.next)] {
                for kind in [ThresholdKey::Low, ThresholdKey::High] {
                    // A key this node cannot open (a dealing gave it a bad
                    // share) is still loaded for verifying; signing fails.
                    let _ = self.crypto.load_transcript(KeyId { kind, interval }, pair.get(kind));
                }
                if let Ok(m) = Membership::new(pair.high.receivers.iter().copied()) {
                    self.dkg.members.insert(interval, Arc::new(m));
                }
            }
            self.dkg.summaries.insert(s, summary);
            self.dkg.keys_through = Some(s);
            s = next;
        }
        if let Some(k) = self.dkg.keys_through {
            let delivering = crate::dkg::interval_start(self.next_batch_height, l);
            let keep = Height(k.0.min(delivering.0).saturating_sub(l));
            self.dkg.summaries = self.dkg.summaries.split_off(&keep);
            self.dkg.members = self.dkg.members.split_off(&keep);
            self.crypto.retain_keys_from(keep);
            self.dkg.dealt = self.dkg.dealt.split_off(&(keep, ThresholdKey::Low));
            self.dkg.checked = self.dkg.checked.split_off(&(keep, ThresholdKey::Low, NodeId::default()));
        }
    }

    /// The finalized block at `h`: the one a finalization at `h` (or the
    /// lowest one above, up to `top`, whose chain the pool has) names. Does
    /// not need the pool to hold the whole finalized chain (a node catching
    /// up has finalizations far above the blocks it has).
    fn finalized_block(pool: &ArtifactPool, h: Height, top: Height) -> Option<&Block> {
        // Usually the height has its own finalization; else the chain of the
        // top one must reach down to it.
        for g in [h, top] {
            if g < h {
                continue;
            }
            for fin in pool.finalizations_at(g) {
                let past = Self::ancestors(pool, g, fin.content.block, h);
                if past.len() as u64 == g.0 - h.0 + 1 {
                    return past.last().map(|p| p.block);
                }
            }
        }
        None
    }

    /// The summary block of interval `s` on the chain ending in `parent`
    /// and the blocks after it, if the pool has the whole stretch.
    pub(crate) fn interval_on<'a>(
        pool: &'a ArtifactPool,
        parent: &BlockProposal,
        s: Height,
    ) -> Option<(&'a DkgSummary, Vec<&'a Block>)> {
        let past = Self::ancestors(pool, parent.height(), parent.hash(), s);
        if past.len() as u64 != parent.height().0.checked_sub(s.0)? + 1 {
            return None;
        }
        let (first, rest) = past.split_last()?;
        Some((first.block.dkg.summary()?, rest.iter().map(|p| p.block).collect()))
    }

    /// The summary a block on `parent` (the last block of an interval)
    /// must carry: computed from the chain, once per parent.
    pub(crate) fn summary_on(
        &mut self,
        pool: &ArtifactPool,
        parent: &BlockProposal,
        registry_version: RegistryVersion,
    ) -> Option<Arc<DkgSummary>> {
        let cache_key = (parent.hash(), registry_version);
        if let Some(x) = self.dkg.by_parent.get(&cache_key) {
            return Some(x.clone());
        }
        let h = parent.height().increment();
        let previous = Height(h.0.checked_sub(self.interval_length())?);
        let (summary, blocks) = Self::interval_on(pool, parent, previous)?;
        let contents = IntervalContents::collect(blocks);
        // Who receives this interval's dealings (the members two intervals
        // on): the subnet's members at the block's registry version.
        let mut receivers = self.cfg.registry.members_at(registry_version)?;
        receivers.sort();
        receivers.dedup();
        if receivers.is_empty() {
            return None;
        }
        let next = Arc::new(crate::dkg::next_summary(&self.crypto, summary, &contents, h, receivers));
        if self.dkg.by_parent.len() >= 8 {
            self.dkg.by_parent.clear();
        }
        self.dkg.by_parent.insert(cache_key, next.clone());
        Some(next)
    }

    /// The dealings and complaints a block on `parent` carries: validated
    /// ones the chain does not have yet (dealings only until the deadline).
    fn dkg_data_on(&self, pool: &ArtifactPool, parent: &BlockProposal) -> Option<DkgPayload> {
        let l = self.interval_length();
        let h = parent.height().increment();
        let s = crate::dkg::interval_start(h, l);
        let (summary, blocks) = Self::interval_on(pool, parent, s)?;
        let contents = IntervalContents::collect(blocks);
        let mut dealings: Vec<SignedDealing> = Vec::new();
        if h <= crate::dkg::dealing_deadline(s, l) {
            let mut seen = BTreeSet::new();
            for d in pool.dealings_at(s) {
                let kind = d.content.kind;
                if d.content.interval == s
                    && summary.config(kind).dealer_index(&d.signer).is_some()
                    && contents.dealing(kind, &d.signer).is_none()
                    && seen.insert((kind, d.signer))
                {
                    dealings.push(d.clone());
                }
            }
        }
        let mut complaints: Vec<SignedComplaint> = Vec::new();
        let mut seen = BTreeSet::new();
        for c in pool.complaints_at(s) {
            let (kind, dealer) = (c.content.kind, c.content.dealer);
            let in_chain = contents.dealing(kind, &dealer).is_some_and(|(_, hash)| hash == c.content.dealing_hash);
            if in_chain
                && !contents.complaints.contains(&(kind, dealer, c.signer))
                && seen.insert((kind, dealer, c.signer))
            {
                complaints.push(c.clone());
            }
        }
        Some(DkgPayload::Data { dealings, complaints })
    }

    /// This node's dealings for the current interval (once, before the
    /// deadline), and complaints against finalized dealings that gave it a
    /// wrong share.
    fn make_dkg_artifacts(&mut self, pool: &ArtifactPool, v: &View, _: Time, _: &LocalState) -> Vec<ChangeAction> {
        let Some((&s, summary)) = self.dkg.summaries.last_key_value() else { return Vec::new() };
        let summary = summary.clone();
        let l = self.interval_length();
        let me = self.me();
        let mut out = Vec::new();
        if v.notarized.increment() <= crate::dkg::dealing_deadline(s, l) {
            for kind in [ThresholdKey::Low, ThresholdKey::High] {
                let config = summary.config(kind);
                if config.dealer_index(&me).is_none() || !self.dkg.dealt.insert((s, kind)) {
                    continue;
                }
                if pool.has_dealing(s, &me, kind) {
                    continue;
                }
                if let Ok(dealing) = self.crypto.create_dealing(&config) {
                    let content = crate::dkg::DealingContent { interval: s, kind, dealing };
                    let signature = self.crypto.sign_basic(&content.signing_bytes(&me));
                    out.push(ChangeAction::AddToValidated(ConsensusMessage::Dealing(Share {
                        content,
                        signer: me,
                        signature,
                    })));
                }
            }
        }
        let from = self.dkg.scanned_through.max(s).increment();
        if !summary.receivers.contains(&me) || v.finalized < from {
            return out;
        }
        let chain = self.finalized_chain(pool, v.finalized, from);
        if chain.contains_key(&from) {
            self.dkg.scanned_through = v.finalized;
        }
        for (h, hash) in chain {
            let Some(p) = pool.proposal(h, &hash) else { continue };
            let DkgPayload::Data { dealings, .. } = &p.block().dkg else { continue };
            for d in dealings {
                let kind = d.content.kind;
                if !self.dkg.checked.insert((s, kind, d.signer)) {
                    continue;
                }
                let Some(complaint) =
                    self.crypto.complaint_against(&summary.config(kind), &d.signer, &d.content.dealing)
                else {
                    continue;
                };
                let content = crate::dkg::ComplaintContent {
                    interval: s,
                    kind,
                    dealer: d.signer,
                    dealing_hash: d.content.hash(&d.signer),
                    complaint,
                };
                let signature = self.crypto.sign_basic(&content.signing_bytes(&me));
                out.push(ChangeAction::AddToValidated(ConsensusMessage::Complaint(Share {
                    content,
                    signer: me,
                    signature,
                })));
            }
        }
        out
    }

    // -----------------------------------------------------------------------
    // Purging
    // -----------------------------------------------------------------------

    /// Drops what finality made useless: everything `purge_margin` heights
    /// below the finalized-and-delivered height, shares and proofs at
    /// finalized heights, and blocks (with their notarizations) that lost
    /// to the finalized chain.
    fn purge(&mut self, pool: &ArtifactPool, v: &View, _: Time, _: &LocalState) -> Vec<ChangeAction> {
        let key = (v.finalized, self.next_batch_height, v.beacon);
        if self.last_purge == Some(key) {
            return Vec::new();
        }
        self.last_purge = Some(key);
        let delivered = Height(self.next_batch_height.0 - 1);
        let settled = v.finalized.min(delivered);
        // The latest catch-up package (genesis before the first) and what
        // follows it stay: they are what a peer that fell behind resumes
        // from (but never more than two intervals, should packages stop
        // being made).
        let oldest_kept = Height(settled.0.saturating_sub(2 * self.cfg.params.interval_length));
        let floor =
            Height(settled.0.saturating_sub(self.cfg.params.purge_margin)).min(self.catch_up_height).max(oldest_kept);
        let mut out = Vec::new();
        if pool.min_validated_height().is_some_and(|m| m < floor) {
            out.push(ChangeAction::PurgeValidatedBelow(floor));
        }
        if pool.min_unvalidated_height().is_some_and(|m| m < settled) {
            out.push(ChangeAction::PurgeUnvalidatedBelow(settled));
        }
        let remove_kind = |out: &mut Vec<ChangeAction>, kind: ArtifactKind, to: Height| {
            for (id, _) in pool.validated_between(kind, floor, to) {
                out.push(ChangeAction::RemoveFromValidated(*id));
            }
        };
        remove_kind(&mut out, ArtifactKind::NotarizationShare, v.finalized);
        remove_kind(&mut out, ArtifactKind::FinalizationShare, v.finalized);
        remove_kind(&mut out, ArtifactKind::EquivocationProof, v.finalized);
        remove_kind(&mut out, ArtifactKind::RandomBeaconShare, v.beacon);
        for (id, _) in pool.validated_between(ArtifactKind::RandomTapeShare, floor, v.finalized) {
            if pool.tape(id.height).is_some() {
                out.push(ChangeAction::RemoveFromValidated(*id));
            }
        }
        // Losing blocks and their notarizations at newly finalized heights.
        let from = Height(floor.0.max(self.purged_through.0 + 1));
        let chain = self.finalized_chain(pool, v.finalized, from);
        if v.finalized > self.purged_through && chain.contains_key(&from) {
            self.purged_through = v.finalized;
        }
        for (id, m) in pool.validated_between(ArtifactKind::BlockProposal, from, v.finalized) {
            if let ConsensusMessage::BlockProposal(p) = m
                && chain.get(&id.height).is_some_and(|h| *h != p.hash())
            {
                out.push(ChangeAction::RemoveFromValidated(*id));
            }
        }
        for (id, m) in pool.validated_between(ArtifactKind::Notarization, from, v.finalized) {
            if let ConsensusMessage::Notarization(n) = m
                && chain.get(&id.height).is_some_and(|h| *h != n.content.block)
            {
                out.push(ChangeAction::RemoveFromValidated(*id));
            }
        }
        // Local bookkeeping.
        let open = v.notarized.increment();
        self.round_start = self.round_start.split_off(&Height(open.0.saturating_sub(1)));
        self.rounds = self.rounds.split_off(&floor);
        self.beacon_hashes = self.beacon_hashes.split_off(&floor);
        out
    }

    /// Hashes of the finalized chain from `top` down to `floor`, as far as
    /// the pool has the blocks.
    fn finalized_chain(&self, pool: &ArtifactPool, top: Height, floor: Height) -> BTreeMap<Height, CryptoHash> {
        let mut chain = BTreeMap::new();
        let Some(fin) = pool.finalizations_at(top).next() else { return chain };
        for b in Self::ancestors(pool, top, fin.content.block, floor) {
            chain.insert(b.block.height, b.hash);
        }
        chain
    }

    // -----------------------------------------------------------------------
    // Delivery
    // -----------------------------------------------------------------------

    /// Finalized blocks from the next undelivered height up, each with its
    /// random tape, in height order; stops at the first missing block or
    /// tape. The payload handler hears of each.
    pub fn deliver(&mut self, pool: &ArtifactPool) -> Vec<Batch> {
        let finalized = pool.finalized_height();
        let next = self.next_batch_height;
        if next > finalized || pool.tape(next).is_none() {
            return Vec::new();
        }
        // The finalized chain from the highest finalization whose block
        // chain reaches down to `next`.
        let mut chain: Vec<(CryptoHash, &BlockProposal)> = Vec::new();
        let mut g = finalized;
        while g >= next && chain.is_empty() {
            for fin in pool.finalizations_at(g) {
                let past = Self::ancestors(pool, g, fin.content.block, next);
                let need = (g.0 - next.0 + 1) as usize;
                if past.len() >= need {
                    chain = past[..need]
                        .iter()
                        .rev()
                        .map(|p| (p.hash, pool.proposal(p.block.height, &p.hash).expect("just found")))
                        .collect();
                    break;
                }
            }
            g = Height(g.0 - 1);
        }
        let mut out = Vec::new();
        for (hash, p) in chain {
            let Some(tape) = pool.tape(p.height()) else { break };
            let batch =
                Batch { height: p.height(), block_hash: hash, block: p.block().clone(), randomness: tape.randomness() };
            self.payload.on_delivered(&batch);
            self.next_batch_height = batch.height.increment();
            out.push(batch);
        }
        out
    }
}

/// The block at `h` this node may finalize, per the finalization rule.
fn finalizable_block(pool: &ArtifactPool, h: Height, me: &NodeId) -> Option<CryptoHash> {
    let notarized: BTreeSet<CryptoHash> = pool.notarizations_at(h).map(|n| n.content.block).collect();
    if notarized.len() != 1 {
        return None;
    }
    let block = *notarized.first()?;
    pool.proposal(h, &block)?;
    if pool.notarization_shares_at(h).any(|s| s.signer == *me && s.content.block != block) {
        return None;
    }
    Some(block)
}

/// `(signer, signature)` pairs sorted by signer, one per signer.
fn sorted_shares<'a, T: 'a>(shares: impl Iterator<Item = &'a Share<T>>) -> Vec<(NodeId, &'a [u8])> {
    let mut v: Vec<(NodeId, &[u8])> = shares.map(|s| (s.signer, s.signature.as_slice())).collect();
    v.sort_by_key(|(n, _)| *n);
    v.dedup_by_key(|(n, _)| *n);
    v
}

/// Validated shares of `kind` from height `from` up, grouped by content.
fn group_shares<'a, T: SignedContent + 'a>(
    pool: &'a ArtifactPool,
    kind: ArtifactKind,
    from: Height,
    get: impl Fn(&'a ConsensusMessage) -> Option<&'a Share<T>>,
) -> BTreeMap<T, Vec<&'a Share<T>>> {
    let mut groups: BTreeMap<T, Vec<&Share<T>>> = BTreeMap::new();
    for (_, m) in pool.validated_between(kind, from, Height(u64::MAX)) {
        if let Some(s) = get(m) {
            groups.entry(s.content.clone()).or_default().push(s);
        }
    }
    groups
}
