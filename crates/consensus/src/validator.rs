//! Validation of received artifacts: each one is found valid (moved to the
//! validated section), invalid (dropped, with a reason), irrelevant
//! (duplicate or stale; dropped silently) or not decidable yet (left in the
//! unvalidated section until what it depends on arrives).
//!
//! Validity depends only on the validated pool, the local clock and the
//! local certified height; the latter two only ever *defer* a decision,
//! never make an artifact invalid, so honest nodes with different clocks
//! never disagree about validity.

use crate::consensus::{Consensus, View};
use crate::crypto::{ConsensusCrypto, CryptoError, ThresholdKey};
use crate::dkg::{DkgPayload, DkgPayloadError, DkgSummary, IntervalContents, SignedComplaint, SignedDealing};
use crate::hash::{CryptoHash, Encoder};
use crate::payload::{PayloadContext, PayloadError, PayloadHandler};
use crate::pool::{ArtifactPool, ChangeAction};
use crate::types::{
    ArtifactId, ArtifactKind, Block, BlockProposal, ConsensusMessage, EquivocationProof, FinalizationContent,
    MultiSignature, NotarizationContent, RandomBeaconContent, RandomTapeContent, Rank, Share, SignedContent,
    ThresholdSignature,
};
use crate::{ConsensusMessage as M, LocalState};
use cairn_types::{Height, NodeId, Time};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Why a received artifact was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidArtifact {
    /// The signer has no right to sign this at this height.
    #[error("node {0} is not entitled to sign this artifact")]
    NotEntitled(NodeId),
    /// The block's rank is not its maker's rank.
    #[error("block claims rank {claimed:?} but its maker's rank is {actual:?}")]
    WrongRank {
        /// Rank in the block.
        claimed: Rank,
        /// The maker's rank per the beacon (None: not a maker).
        actual: Option<Rank>,
    },
    /// A signature does not verify.
    #[error("bad signature: {0}")]
    Signature(#[from] CryptoError),
    /// A beacon (share) that does not chain to the previous beacon.
    #[error("random beacon does not chain to the previous beacon")]
    BeaconParentMismatch,
    /// Block time not after the parent's.
    #[error("block time {time:?} is not after the parent's {parent:?}")]
    TimeNotIncreasing {
        /// The block's time.
        time: Time,
        /// The parent's time.
        parent: Time,
    },
    /// Registry version below the parent's.
    #[error("registry version decreases from the parent")]
    RegistryVersionDecreasing,
    /// Certified height below the parent's.
    #[error("certified height decreases from the parent")]
    CertifiedHeightDecreasing,
    /// Certified height at or above the block's own height.
    #[error("certified height {certified} is not below the block height {height}")]
    CertifiedHeightTooHigh {
        /// Claimed certified height.
        certified: Height,
        /// Block height.
        height: Height,
    },
    /// Payload bytes above the hard cap.
    #[error("payload of {0} bytes exceeds the block size limit")]
    PayloadTooLarge(u64),
    /// The payload handler rejected the payload.
    #[error("payload: {0}")]
    Payload(String),
    /// An aggregate with too few signers.
    #[error("{got} signers, {needed} needed")]
    NotEnoughSigners {
        /// Signers present.
        got: usize,
        /// Threshold.
        needed: usize,
    },
    /// An aggregate whose signer list is not sorted and distinct.
    #[error("signers are not sorted and distinct")]
    UnsortedSigners,
    /// An equivocation proof whose two blocks are the same or unordered.
    #[error("equivocation proof does not show two different blocks")]
    ProofNotConflicting,
    /// A catch-up package whose beacon is of another height, or whose
    /// height does not start an interval.
    #[error("catch-up package is inconsistent")]
    CatchUpInconsistent,
    /// A dealing, complaint or summary that breaks a key-generation rule.
    #[error("key generation: {0}")]
    Dkg(String),
}

/// The decision about one artifact.
enum Verdict {
    Valid,
    Invalid(InvalidArtifact),
    Irrelevant,
    Defer,
}

impl From<InvalidArtifact> for Verdict {
    fn from(e: InvalidArtifact) -> Verdict {
        Verdict::Invalid(e)
    }
}

fn sig(r: Result<(), CryptoError>) -> Result<(), Verdict> {
    r.map_err(|e| match e {
        // The interval's summary is not finalized here yet.
        CryptoError::KeyNotLoaded(_) => Verdict::Defer,
        e => Verdict::Invalid(InvalidArtifact::Signature(e)),
    })
}

/// What this pass already accepted (the pool does not show it yet), so one
/// pass never accepts two artifacts that exclude each other.
#[derive(Default)]
struct Pass<'a> {
    /// (kind, height, signer, content hash) of accepted shares.
    shares: BTreeSet<(ArtifactKind, Height, NodeId, CryptoHash)>,
    /// (kind, height, content hash) of accepted aggregates.
    aggregates: BTreeSet<(ArtifactKind, Height, CryptoHash)>,
    /// Accepted proposals per (height, signer).
    proposals: BTreeMap<(Height, NodeId), Vec<&'a BlockProposal>>,
    /// Equivocation proofs known or emitted, per (height, signer).
    proofs: BTreeSet<(Height, NodeId)>,
    /// Share groups (share kind, height, content key) the combine-first step
    /// had enough shares for, and how combining them went.
    groups: BTreeMap<GroupKey, Combined>,
    /// Unvalidated artifacts the combine-first step already decided.
    decided: BTreeSet<ArtifactId>,
}

/// Shares that sign the same thing: (share kind, height, content key).
type GroupKey = (ArtifactKind, Height, CryptoHash);

/// The outcome of combining a group of unvalidated shares.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Combined {
    /// The combination verified and is now in the pool; the group's other
    /// shares are not needed.
    Verified,
    /// It did not verify: some share is bad, so each is checked on its own.
    Failed,
}

/// Whether a share's own signature is worth checking in this pass. Shares
/// are checked together by combining them (one signature check per group
/// instead of one per share); one by one only where that failed, to find
/// the bad ones. A group too small to combine waits for more shares.
fn individual_check(pass: &Pass<'_>, key: GroupKey) -> Result<(), Verdict> {
    match pass.groups.get(&key) {
        Some(Combined::Failed) => Ok(()),
        Some(Combined::Verified) => Err(Verdict::Irrelevant),
        None => Err(Verdict::Defer),
    }
}

/// Takes a verified combination: the aggregate goes into the pool (and
/// counts as known for the rest of the pass), the shares it was made of
/// leave the unvalidated section.
fn accept_combined(
    aggregate_key: (ArtifactKind, Height, CryptoHash),
    aggregate: ConsensusMessage,
    used: Vec<ArtifactId>,
    pass: &mut Pass<'_>,
    out: &mut Vec<ChangeAction>,
) -> Combined {
    pass.aggregates.insert(aggregate_key);
    out.push(ChangeAction::AddToValidated(aggregate));
    for id in used {
        pass.decided.insert(id);
        out.push(ChangeAction::RemoveFromUnvalidated(id));
    }
    Combined::Verified
}

/// A hash identifying a share's content within its kind and height.
fn content_key<T: SignedContent>(c: &T) -> CryptoHash {
    crate::hash::Encoder::new("content-key").bytes(&c.signing_bytes()).digest()
}

impl<C: ConsensusCrypto, P: PayloadHandler> Consensus<C, P> {
    /// Validates what can be validated in the unvalidated section.
    pub(crate) fn validate(
        &mut self,
        pool: &ArtifactPool,
        v: &View,
        now: Time,
        local: &LocalState,
    ) -> Vec<ChangeAction> {
        let memo = (pool.generation(), now, *local, self.next_batch_height);
        if self.validation_memo == Some(memo) {
            // Nothing changed since the last fruitless pass; keep its timer.
            if let Some(w) = self.validation_wake {
                self.wake(w);
            }
            return Vec::new();
        }
        self.validation_wake = None;
        let limit = Height(v.finalized.0.saturating_add(self.cfg.params.max_heights_ahead));
        let mut out = Vec::new();
        let mut pass = Pass::default();
        self.combine_shares(pool, v, limit, &mut pass, &mut out);
        for (id, msg) in pool.unvalidated() {
            // A catch-up package is how a node far behind gets going again,
            // so it is validated however far ahead it is.
            let catch_up = id.kind == ArtifactKind::CatchUpPackage;
            if (id.height > limit && !catch_up) || pass.decided.contains(id) {
                continue;
            }
            let verdict = if id.height.0 == 0 && !id.kind.is_dkg() {
                Verdict::Irrelevant
            } else {
                let r = match msg {
                    M::RandomBeacon(b) => self.check_beacon(pool, b, &mut pass),
                    M::RandomBeaconShare(s) => self.check_beacon_share(pool, s, &mut pass),
                    M::RandomTape(t) => self.check_tape(pool, t, &mut pass),
                    M::RandomTapeShare(s) => self.check_tape_share(pool, s, &mut pass),
                    M::NotarizationShare(s) => self.check_multi_share(pool, v, s, &mut pass),
                    M::FinalizationShare(s) => self.check_multi_share(pool, v, s, &mut pass),
                    M::Notarization(n) => {
                        let irrelevant =
                            n.content.height.0 + 1 < self.next_batch_height.0 || pool.has_notarization(&n.content);
                        self.check_multi(pool, n, irrelevant, &mut pass)
                    }
                    M::Finalization(f) => {
                        let irrelevant = f.content.height < self.next_batch_height || pool.has_finalization(&f.content);
                        self.check_multi(pool, f, irrelevant, &mut pass)
                    }
                    M::EquivocationProof(p) => self.check_proof(pool, v, p, &mut pass),
                    M::CatchUpPackage(c) => self.check_catch_up(pool, c, &mut pass),
                    M::CatchUpPackageShare(s) => self.check_catch_up_share(pool, s, &mut pass),
                    M::BlockProposal(p) => self.check_proposal(pool, v, p, now, local, &mut pass, &mut out),
                    M::Dealing(d) => self.check_dealing(pool, d, &mut pass),
                    M::Complaint(c) => self.check_complaint(pool, c, &mut pass),
                };
                match r {
                    Ok(()) => Verdict::Valid,
                    Err(v) => v,
                }
            };
            match verdict {
                Verdict::Valid => out.push(ChangeAction::MoveToValidated(*id)),
                Verdict::Invalid(reason) => out.push(ChangeAction::HandleInvalid(*id, reason)),
                Verdict::Irrelevant => out.push(ChangeAction::RemoveFromUnvalidated(*id)),
                Verdict::Defer => {}
            }
        }
        if out.is_empty() {
            self.validation_memo = Some(memo);
        }
        out
    }

    /// Combine-then-verify: groups the unvalidated shares by what they
    /// sign and, where a group (with the validated shares on the same
    /// content) reaches the threshold, combines it and checks the one
    /// combined signature. If it verifies, the aggregate goes straight into
    /// the pool and the shares are dropped: a valid aggregate is all that
    /// consensus needs of them, whichever individual shares it came from.
    /// This replaces n - 1 pairing checks per kind and round with one.
    fn combine_shares<'a>(
        &mut self,
        pool: &'a ArtifactPool,
        v: &View,
        limit: Height,
        pass: &mut Pass<'a>,
        out: &mut Vec<ChangeAction>,
    ) {
        let mut groups: BTreeMap<GroupKey, Vec<(ArtifactId, &ConsensusMessage)>> = BTreeMap::new();
        for (id, m) in pool.unvalidated() {
            if id.height > limit || id.height.0 == 0 {
                continue;
            }
            let ck = match m {
                M::RandomBeaconShare(s) => content_key(&s.content),
                M::RandomTapeShare(s) => content_key(&s.content),
                M::NotarizationShare(s) => content_key(&s.content),
                M::FinalizationShare(s) => content_key(&s.content),
                _ => continue,
            };
            groups.entry((id.kind, id.height, ck)).or_default().push((*id, m));
        }
        for (key, members) in groups {
            let (kind, h, ck) = key;
            let outcome = match kind {
                ArtifactKind::RandomBeaconShare => {
                    if pool.beacon(h).is_some() {
                        continue;
                    }
                    let Some(prev) = self.beacon_hash(pool, Height(h.0 - 1)) else { continue };
                    let content = RandomBeaconContent { height: h, parent: prev };
                    if content_key(&content) != ck {
                        continue; // a wrong parent: invalid, found one by one
                    }
                    let share = |m: &'a ConsensusMessage| match m {
                        M::RandomBeaconShare(s) => Some(s),
                        _ => None,
                    };
                    self.combine_threshold_group(pool, content, &members, share, M::RandomBeacon, pass, out)
                }
                ArtifactKind::RandomTapeShare => {
                    if h < self.next_batch_height || pool.tape(h).is_some() {
                        continue;
                    }
                    let share = |m: &'a ConsensusMessage| match m {
                        M::RandomTapeShare(s) => Some(s),
                        _ => None,
                    };
                    let content = RandomTapeContent { height: h };
                    self.combine_threshold_group(pool, content, &members, share, M::RandomTape, pass, out)
                }
                ArtifactKind::NotarizationShare => {
                    let share = |m: &'a ConsensusMessage| match m {
                        M::NotarizationShare(s) => Some(s),
                        _ => None,
                    };
                    let exists = |c: &NotarizationContent| pool.has_notarization(c);
                    self.combine_multi_group(pool, v, &members, share, exists, M::Notarization, pass, out)
                }
                ArtifactKind::FinalizationShare => {
                    let share = |m: &'a ConsensusMessage| match m {
                        M::FinalizationShare(s) => Some(s),
                        _ => None,
                    };
                    let exists = |c: &FinalizationContent| pool.has_finalization(c);
                    self.combine_multi_group(pool, v, &members, share, exists, M::Finalization, pass, out)
                }
                _ => None,
            };
            if let Some(outcome) = outcome {
                pass.groups.insert(key, outcome);
            }
        }
    }

    /// Combines threshold shares (beacon, tape) on `content`: the validated
    /// ones first, then unvalidated ones from distinct members up to the
    /// threshold. `None`: not enough shares yet.
    #[allow(clippy::too_many_arguments)]
    fn combine_threshold_group<'a, T: SignedContent + 'a>(
        &mut self,
        pool: &'a ArtifactPool,
        content: T,
        members: &[(ArtifactId, &'a ConsensusMessage)],
        share: impl Fn(&'a ConsensusMessage) -> Option<&'a Share<T>>,
        wrap: fn(ThresholdSignature<T>) -> ConsensusMessage,
        pass: &mut Pass<'_>,
        out: &mut Vec<ChangeAction>,
    ) -> Option<Combined> {
        let membership = self.membership(content.height())?;
        let threshold = membership.beacon_threshold();
        let mut chosen: BTreeMap<NodeId, &[u8]> = pool
            .validated_at(T::SHARE_KIND, content.height())
            .filter_map(&share)
            .filter(|s| s.content == content)
            .map(|s| (s.signer, &s.signature[..]))
            .collect();
        let mut used = Vec::new();
        for (id, s) in members.iter().filter_map(|(id, m)| share(m).map(|s| (*id, s))) {
            if chosen.len() >= threshold {
                break;
            }
            if s.content != content || !membership.contains(&s.signer) || chosen.contains_key(&s.signer) {
                continue;
            }
            chosen.insert(s.signer, &s.signature);
            used.push(id);
        }
        if chosen.len() < threshold {
            return None;
        }
        let shares: Vec<(NodeId, &[u8])> = chosen.into_iter().collect();
        let bytes = content.signing_bytes();
        let key = self.key(ThresholdKey::Low, content.height());
        let combined = self
            .crypto
            .combine_threshold(key, threshold, &bytes, &shares)
            .and_then(|signature| self.crypto.verify_threshold(key, &bytes, &signature).map(|()| signature));
        let Ok(signature) = combined else { return Some(Combined::Failed) };
        let key = (T::AGGREGATE_KIND, content.height(), CryptoHash::ZERO);
        Some(accept_combined(key, wrap(ThresholdSignature { content, signature }), used, pass, out))
    }

    /// Combines notarization or finalization shares on one content: every
    /// validated share and every unvalidated one from a distinct notary of
    /// the round. `None`: not enough shares yet, or not decidable yet.
    #[allow(clippy::too_many_arguments)]
    fn combine_multi_group<'a, T: SignedContent + 'a>(
        &mut self,
        pool: &'a ArtifactPool,
        v: &View,
        members: &[(ArtifactId, &'a ConsensusMessage)],
        share: impl Fn(&'a ConsensusMessage) -> Option<&'a Share<T>>,
        exists: impl Fn(&T) -> bool,
        wrap: fn(MultiSignature<T>) -> ConsensusMessage,
        pass: &mut Pass<'_>,
        out: &mut Vec<ChangeAction>,
    ) -> Option<Combined> {
        let candidates: Vec<(ArtifactId, &Share<T>)> =
            members.iter().filter_map(|(id, m)| share(m).map(|s| (*id, s))).collect();
        let content = candidates.first()?.1.content.clone();
        let h = content.height();
        let ck = content_key(&content);
        if h <= v.finalized || exists(&content) || pass.aggregates.contains(&(T::AGGREGATE_KIND, h, ck)) {
            return None;
        }
        let round = self.round(pool, h)?;
        let mut chosen: BTreeMap<NodeId, &[u8]> = pool
            .validated_at(T::SHARE_KIND, h)
            .filter_map(&share)
            .filter(|s| s.content == content)
            .map(|s| (s.signer, &s.signature[..]))
            .collect();
        let mut used = Vec::new();
        for (id, s) in candidates {
            if !round.is_notary(&s.signer) || chosen.contains_key(&s.signer) {
                continue;
            }
            chosen.insert(s.signer, &s.signature);
            used.push(id);
        }
        if chosen.len() < self.membership(h)?.notarization_threshold() {
            return None;
        }
        let shares: Vec<(NodeId, &[u8])> = chosen.into_iter().collect();
        let signers: Vec<NodeId> = shares.iter().map(|(n, _)| *n).collect();
        let bytes = content.signing_bytes();
        let combined = self
            .crypto
            .aggregate_multi(&bytes, &shares)
            .and_then(|signature| self.crypto.verify_multi(&signers, &bytes, &signature).map(|()| signature));
        let Ok(signature) = combined else { return Some(Combined::Failed) };
        Some(accept_combined(
            (T::AGGREGATE_KIND, h, ck),
            wrap(MultiSignature { content, signers, signature }),
            used,
            pass,
            out,
        ))
    }

    fn check_beacon(
        &mut self,
        pool: &ArtifactPool,
        b: &ThresholdSignature<crate::types::RandomBeaconContent>,
        pass: &mut Pass<'_>,
    ) -> Result<(), Verdict> {
        let h = b.content.height;
        let key = (ArtifactKind::RandomBeacon, h, CryptoHash::ZERO);
        if pool.beacon(h).is_some() || pass.aggregates.contains(&key) {
            return Err(Verdict::Irrelevant);
        }
        let prev = self.beacon_hash(pool, Height(h.0 - 1)).ok_or(Verdict::Defer)?;
        if b.content.parent != prev {
            return Err(InvalidArtifact::BeaconParentMismatch.into());
        }
        sig(self.crypto.verify_threshold(self.key(ThresholdKey::Low, h), &b.content.signing_bytes(), &b.signature))?;
        pass.aggregates.insert(key);
        Ok(())
    }

    fn check_beacon_share(
        &mut self,
        pool: &ArtifactPool,
        s: &Share<crate::types::RandomBeaconContent>,
        pass: &mut Pass<'_>,
    ) -> Result<(), Verdict> {
        let h = s.content.height;
        if pool.beacon(h).is_some() {
            return Err(Verdict::Irrelevant);
        }
        let prev = self.beacon_hash(pool, Height(h.0 - 1)).ok_or(Verdict::Defer)?;
        if s.content.parent != prev {
            return Err(InvalidArtifact::BeaconParentMismatch.into());
        }
        if !self.membership(h).ok_or(Verdict::Defer)?.contains(&s.signer) {
            return Err(InvalidArtifact::NotEntitled(s.signer).into());
        }
        let key = (ArtifactKind::RandomBeaconShare, h, s.signer, CryptoHash::ZERO);
        if pass.shares.contains(&key) || pool.beacon_shares_at(h).any(|x| x.signer == s.signer) {
            return Err(Verdict::Irrelevant);
        }
        individual_check(pass, (ArtifactKind::RandomBeaconShare, h, content_key(&s.content)))?;
        sig(self.crypto.verify_threshold_share(
            self.key(ThresholdKey::Low, h),
            &s.signer,
            &s.content.signing_bytes(),
            &s.signature,
        ))?;
        pass.shares.insert(key);
        Ok(())
    }

    /// A catch-up package is valid when the subnet key signed it; nothing
    /// else about it needs checking (n − f members, at least f + 1 of them
    /// honest, vouched for block, beacon and state hash).
    fn check_catch_up(
        &mut self,
        pool: &ArtifactPool,
        c: &crate::types::CatchUpPackage,
        pass: &mut Pass<'_>,
    ) -> Result<(), Verdict> {
        let h = c.content.height();
        let key = (ArtifactKind::CatchUpPackage, h, CryptoHash::ZERO);
        if h <= self.catch_up_height || pool.has_catch_up_from(h) || pass.aggregates.contains(&key) {
            return Err(Verdict::Irrelevant);
        }
        if c.content.beacon.content.height != h || !self.cfg.params.is_interval_start(h) {
            return Err(InvalidArtifact::CatchUpInconsistent.into());
        }
        let bytes = c.content.share_content().signing_bytes();
        sig(self.crypto.verify_threshold(self.key(ThresholdKey::High, h), &bytes, &c.signature))?;
        pass.aggregates.insert(key);
        Ok(())
    }

    fn check_catch_up_share(
        &mut self,
        pool: &ArtifactPool,
        s: &Share<crate::types::CatchUpShareContent>,
        pass: &mut Pass<'_>,
    ) -> Result<(), Verdict> {
        let h = s.content.height;
        if h <= self.catch_up_height || pool.has_catch_up_from(h) {
            return Err(Verdict::Irrelevant);
        }
        if !self.membership(h).ok_or(Verdict::Defer)?.contains(&s.signer) {
            return Err(InvalidArtifact::NotEntitled(s.signer).into());
        }
        let key = (ArtifactKind::CatchUpPackageShare, h, s.signer, CryptoHash::ZERO);
        let known = pool.validated_at(ArtifactKind::CatchUpPackageShare, h).any(|m| m.signer() == Some(s.signer));
        if pass.shares.contains(&key) || known {
            return Err(Verdict::Irrelevant);
        }
        sig(self.crypto.verify_threshold_share(
            self.key(ThresholdKey::High, h),
            &s.signer,
            &s.content.signing_bytes(),
            &s.signature,
        ))?;
        pass.shares.insert(key);
        Ok(())
    }

    fn check_tape(
        &mut self,
        pool: &ArtifactPool,
        t: &ThresholdSignature<crate::types::RandomTapeContent>,
        pass: &mut Pass<'_>,
    ) -> Result<(), Verdict> {
        let h = t.content.height;
        let key = (ArtifactKind::RandomTape, h, CryptoHash::ZERO);
        if h < self.next_batch_height || pool.tape(h).is_some() || pass.aggregates.contains(&key) {
            return Err(Verdict::Irrelevant);
        }
        sig(self.crypto.verify_threshold(self.key(ThresholdKey::Low, h), &t.content.signing_bytes(), &t.signature))?;
        pass.aggregates.insert(key);
        Ok(())
    }

    fn check_tape_share(
        &mut self,
        pool: &ArtifactPool,
        s: &Share<crate::types::RandomTapeContent>,
        pass: &mut Pass<'_>,
    ) -> Result<(), Verdict> {
        let h = s.content.height;
        if h < self.next_batch_height || pool.tape(h).is_some() {
            return Err(Verdict::Irrelevant);
        }
        if !self.membership(h).ok_or(Verdict::Defer)?.contains(&s.signer) {
            return Err(InvalidArtifact::NotEntitled(s.signer).into());
        }
        let key = (ArtifactKind::RandomTapeShare, h, s.signer, CryptoHash::ZERO);
        if pass.shares.contains(&key) || pool.tape_shares_at(h).any(|x| x.signer == s.signer) {
            return Err(Verdict::Irrelevant);
        }
        individual_check(pass, (ArtifactKind::RandomTapeShare, h, content_key(&s.content)))?;
        sig(self.crypto.verify_threshold_share(
            self.key(ThresholdKey::Low, h),
            &s.signer,
            &s.content.signing_bytes(),
            &s.signature,
        ))?;
        pass.shares.insert(key);
        Ok(())
    }

    /// Notarization and finalization shares.
    fn check_multi_share<T: SignedContent>(
        &mut self,
        pool: &ArtifactPool,
        v: &View,
        s: &Share<T>,
        pass: &mut Pass<'_>,
    ) -> Result<(), Verdict> {
        let h = s.content.height();
        let ck = content_key(&s.content);
        if h <= v.finalized || pass.aggregates.contains(&(T::AGGREGATE_KIND, h, ck)) {
            return Err(Verdict::Irrelevant);
        }
        let exists = pool.validated_at(T::AGGREGATE_KIND, h).any(|m| match m {
            M::Notarization(n) => content_key(&n.content) == ck,
            M::Finalization(f) => content_key(&f.content) == ck,
            _ => false,
        });
        if exists {
            return Err(Verdict::Irrelevant);
        }
        let round = self.round(pool, h).ok_or(Verdict::Defer)?;
        if !round.is_notary(&s.signer) {
            return Err(InvalidArtifact::NotEntitled(s.signer).into());
        }
        let key = (T::SHARE_KIND, h, s.signer, ck);
        let dup = pool.validated_at(T::SHARE_KIND, h).any(|m| match m {
            M::NotarizationShare(x) => x.signer == s.signer && content_key(&x.content) == ck,
            M::FinalizationShare(x) => x.signer == s.signer && content_key(&x.content) == ck,
            _ => false,
        });
        if dup || pass.shares.contains(&key) {
            return Err(Verdict::Irrelevant);
        }
        individual_check(pass, (T::SHARE_KIND, h, ck))?;
        sig(self.crypto.verify_multi_share(&s.signer, &s.content.signing_bytes(), &s.signature))?;
        pass.shares.insert(key);
        Ok(())
    }

    /// Notarizations and finalizations.
    fn check_multi<T: SignedContent>(
        &mut self,
        pool: &ArtifactPool,
        m: &MultiSignature<T>,
        irrelevant: bool,
        pass: &mut Pass<'_>,
    ) -> Result<(), Verdict> {
        let h = m.content.height();
        let key = (T::AGGREGATE_KIND, h, content_key(&m.content));
        if irrelevant || pass.aggregates.contains(&key) {
            return Err(Verdict::Irrelevant);
        }
        let round = self.round(pool, h).ok_or(Verdict::Defer)?;
        if m.signers.windows(2).any(|w| w[0] >= w[1]) {
            return Err(InvalidArtifact::UnsortedSigners.into());
        }
        if let Some(s) = m.signers.iter().find(|s| !round.is_notary(s)) {
            return Err(InvalidArtifact::NotEntitled(*s).into());
        }
        let needed = self.membership(h).ok_or(Verdict::Defer)?.notarization_threshold();
        if m.signers.len() < needed {
            return Err(InvalidArtifact::NotEnoughSigners { got: m.signers.len(), needed }.into());
        }
        sig(self.crypto.verify_multi(&m.signers, &m.content.signing_bytes(), &m.signature))?;
        pass.aggregates.insert(key);
        Ok(())
    }

    fn check_proof(
        &mut self,
        pool: &ArtifactPool,
        v: &View,
        p: &EquivocationProof,
        pass: &mut Pass<'_>,
    ) -> Result<(), Verdict> {
        let h = p.height;
        if h <= v.finalized
            || pass.proofs.contains(&(h, p.signer))
            || pool.equivocation_proofs_at(h).any(|x| x.signer == p.signer)
        {
            return Err(Verdict::Irrelevant);
        }
        if p.hash1 >= p.hash2 {
            return Err(InvalidArtifact::ProofNotConflicting.into());
        }
        let round = self.round(pool, h).ok_or(Verdict::Defer)?;
        if round.rank_of(&p.signer).is_none() {
            return Err(InvalidArtifact::NotEntitled(p.signer).into());
        }
        sig(self.crypto.verify_basic(&p.signer, &BlockProposal::signing_bytes(h, &p.hash1), &p.signature1))?;
        sig(self.crypto.verify_basic(&p.signer, &BlockProposal::signing_bytes(h, &p.hash2), &p.signature2))?;
        pass.proofs.insert((h, p.signer));
        Ok(())
    }

    /// Block proposals: parent notarized, maker's rank, signature,
    /// equivocation, then (unless already notarized) context and payload.
    #[allow(clippy::too_many_arguments)]
    fn check_proposal<'a>(
        &mut self,
        pool: &'a ArtifactPool,
        v: &View,
        p: &'a BlockProposal,
        now: Time,
        local: &LocalState,
        pass: &mut Pass<'a>,
        out: &mut Vec<ChangeAction>,
    ) -> Result<(), Verdict> {
        let h = p.height();
        let hash = p.hash();
        let block = p.block();
        if h < self.next_batch_height {
            return Err(Verdict::Irrelevant);
        }
        let notarized = pool.is_notarized(h, &hash);
        if h <= v.finalized && !notarized {
            // Only the finalized chain matters below the finalized height,
            // and its blocks come with notarizations.
            return Err(Verdict::Defer);
        }
        let prev = Height(h.0 - 1);
        let parent = pool.proposal(prev, &block.parent).ok_or(Verdict::Defer)?;
        if !pool.is_notarized(prev, &block.parent) {
            return Err(Verdict::Defer);
        }
        let round = self.round(pool, h).ok_or(Verdict::Defer)?;
        let actual = round.rank_of(&p.signer());
        if actual != Some(block.rank) {
            return Err(InvalidArtifact::WrongRank { claimed: block.rank, actual }.into());
        }
        sig(self.crypto.verify_basic(&p.signer(), &BlockProposal::signing_bytes(h, &hash), p.signature()))?;

        // Equivocation: a second block by the same maker at this height.
        let signer = p.signer();
        let earlier: Option<&BlockProposal> = pool
            .proposals_at(h)
            .find(|x| x.signer() == signer && x.hash() != hash)
            .or_else(|| pass.proposals.get(&(h, signer)).and_then(|v| v.iter().copied().find(|x| x.hash() != hash)));
        if let Some(other) = earlier
            && !notarized
        {
            let known =
                pass.proofs.contains(&(h, signer)) || pool.equivocation_proofs_at(h).any(|x| x.signer == signer);
            if known {
                // Two blocks of a disqualified maker are kept (enough to show
                // the equivocation); more only if notarized.
                return Err(Verdict::Defer);
            }
            if let Some(proof) = EquivocationProof::from_proposals(other, p) {
                pass.proofs.insert((h, signer));
                out.push(ChangeAction::AddToValidated(ConsensusMessage::EquivocationProof(proof)));
            }
        }

        if !notarized {
            self.check_context(pool, p, parent, now, local)?;
        }
        pass.proposals.entry((h, signer)).or_default().push(p);
        Ok(())
    }

    /// Context and payload of a proposal that is not yet notarized.
    fn check_context(
        &mut self,
        pool: &ArtifactPool,
        p: &BlockProposal,
        parent: &BlockProposal,
        now: Time,
        local: &LocalState,
    ) -> Result<(), Verdict> {
        let block = p.block();
        let h = block.height;
        let c = &block.context;
        let pc = &parent.block().context;
        if c.time <= pc.time {
            return Err(InvalidArtifact::TimeNotIncreasing { time: c.time, parent: pc.time }.into());
        }
        if c.registry_version < pc.registry_version {
            return Err(InvalidArtifact::RegistryVersionDecreasing.into());
        }
        if c.certified_height < pc.certified_height {
            return Err(InvalidArtifact::CertifiedHeightDecreasing.into());
        }
        if c.certified_height >= h {
            return Err(InvalidArtifact::CertifiedHeightTooHigh { certified: c.certified_height, height: h }.into());
        }
        let bytes = block.payload.byte_size();
        if bytes > self.cfg.params.max_block_payload_bytes {
            return Err(InvalidArtifact::PayloadTooLarge(bytes).into());
        }
        // Not wrong, just not yet acceptable here: wait for the local clock,
        // registry and certification to catch up.
        if c.time > now {
            self.wake(c.time);
            self.validation_wake = Some(self.validation_wake.map_or(c.time, |w| w.min(c.time)));
            return Err(Verdict::Defer);
        }
        if c.registry_version > local.registry_version || c.certified_height > local.certified_height {
            return Err(Verdict::Defer);
        }
        self.check_dkg_payload(pool, block, parent)?;
        // Only undelivered ancestors: the handler heard of the rest.
        let past = Self::ancestors(pool, parent.height(), parent.hash(), self.next_batch_height);
        match self.payload.validate(&PayloadContext { height: h, context: c, past: &past }, &block.payload) {
            Ok(()) => Ok(()),
            Err(PayloadError::Invalid(e)) => Err(InvalidArtifact::Payload(e).into()),
            Err(PayloadError::NotYet(_)) => Err(Verdict::Defer),
        }
    }

    /// A summary block must carry exactly the summary the chain
    /// determines; other blocks valid dealings and complaints.
    fn check_dkg_payload(&mut self, pool: &ArtifactPool, block: &Block, parent: &BlockProposal) -> Result<(), Verdict> {
        let h = block.height;
        let l = self.cfg.params.interval_length.max(1);
        if self.cfg.params.is_interval_start(h) {
            let expected = self.summary_on(pool, parent, block.context.registry_version).ok_or(Verdict::Defer)?;
            return match block.dkg.summary() {
                Some(summary) if *summary == *expected => Ok(()),
                _ => Err(InvalidArtifact::Dkg(DkgPayloadError::WrongSummary.to_string()).into()),
            };
        }
        let DkgPayload::Data { dealings, complaints } = &block.dkg else {
            return Err(InvalidArtifact::Dkg(DkgPayloadError::WrongSummary.to_string()).into());
        };
        if dealings.is_empty() && complaints.is_empty() {
            return Ok(());
        }
        let s = crate::dkg::interval_start(h, l);
        let (summary, blocks) = Self::interval_on(pool, parent, s).ok_or(Verdict::Defer)?;
        let contents = IntervalContents::collect(blocks);
        crate::dkg::validate_data(&self.crypto, summary, &contents, h, l, dealings, complaints)
            .map_err(|e| InvalidArtifact::Dkg(e.to_string()).into())
    }

    /// The summary of interval `s` if it is the latest finalized one;
    /// `Irrelevant` for older intervals, `Defer` for newer ones.
    fn dkg_summary_for(&self, s: Height) -> Result<Arc<DkgSummary>, Verdict> {
        match self.dkg.summaries.last_key_value() {
            Some((latest, summary)) if *latest == s => Ok(summary.clone()),
            Some((latest, _)) if *latest > s => Err(Verdict::Irrelevant),
            _ => Err(Verdict::Defer),
        }
    }

    /// `dealer`'s dealing of `kind` with this hash in the finalized blocks
    /// of interval `s`.
    fn chain_dealing(
        &self,
        pool: &ArtifactPool,
        s: Height,
        kind: ThresholdKey,
        dealer: &NodeId,
        hash: &CryptoHash,
    ) -> Option<SignedDealing> {
        let top = pool.finalized_height();
        let fin = pool.finalizations_at(top).next()?;
        Self::ancestors(pool, top, fin.content.block, s.increment()).into_iter().find_map(|b| match &b.block.dkg {
            DkgPayload::Data { dealings, .. } => dealings
                .iter()
                .find(|d| d.signer == *dealer && d.content.kind == kind && d.content.hash(dealer) == *hash)
                .cloned(),
            DkgPayload::Summary(_) => None,
        })
    }

    /// A dealing artifact: from a dealer of the current interval, the first
    /// of its dealer for its key, signed, and publicly valid.
    fn check_dealing(&mut self, pool: &ArtifactPool, d: &SignedDealing, pass: &mut Pass<'_>) -> Result<(), Verdict> {
        let s = d.content.interval;
        let summary = self.dkg_summary_for(s)?;
        let kind = d.content.kind;
        let key = (ArtifactKind::Dealing, s, d.signer, CryptoHash([kind as u8; 32]));
        if pool.has_dealing(s, &d.signer, kind) || pass.shares.contains(&key) {
            return Err(Verdict::Irrelevant);
        }
        let config = summary.config(kind);
        if config.dealer_index(&d.signer).is_none() {
            return Err(InvalidArtifact::NotEntitled(d.signer).into());
        }
        sig(self.crypto.verify_basic(&d.signer, &d.content.signing_bytes(&d.signer), &d.signature))?;
        self.crypto
            .verify_dealing(&config, &d.signer, &d.content.dealing)
            .map_err(|e| Verdict::from(InvalidArtifact::Dkg(e.to_string())))?;
        pass.shares.insert(key);
        Ok(())
    }

    /// A complaint artifact: from a receiver of the current interval,
    /// against a dealing this node has, and proving it wrong.
    fn check_complaint(
        &mut self,
        pool: &ArtifactPool,
        c: &SignedComplaint,
        pass: &mut Pass<'_>,
    ) -> Result<(), Verdict> {
        let s = c.content.interval;
        let summary = self.dkg_summary_for(s)?;
        let (kind, dealer) = (c.content.kind, c.content.dealer);
        let key =
            (ArtifactKind::Complaint, s, c.signer, Encoder::new("complaint").u8(kind as u8).node(&dealer).digest());
        let known =
            pool.complaints_at(s).any(|x| x.signer == c.signer && x.content.kind == kind && x.content.dealer == dealer);
        if known || pass.shares.contains(&key) {
            return Err(Verdict::Irrelevant);
        }
        let config = summary.config(kind);
        if config.receiver_index(&c.signer).is_none() {
            return Err(InvalidArtifact::NotEntitled(c.signer).into());
        }
        // The dealing from the pool, or from the finalized blocks of the
        // interval (a dealer may put a dealing into its own block without
        // ever gossiping it).
        let in_pool = pool
            .dealings_at(s)
            .find(|x| x.signer == dealer && x.content.hash(&dealer) == c.content.dealing_hash)
            .cloned();
        let dealing = match in_pool {
            Some(d) => d,
            None => self.chain_dealing(pool, s, kind, &dealer, &c.content.dealing_hash).ok_or(Verdict::Defer)?,
        };
        sig(self.crypto.verify_basic(&c.signer, &c.content.signing_bytes(&c.signer), &c.signature))?;
        self.crypto
            .verify_complaint(&config, &dealer, &dealing.content.dealing, &c.signer, &c.content.complaint)
            .map_err(|e| Verdict::from(InvalidArtifact::Dkg(e.to_string())))?;
        pass.shares.insert(key);
        Ok(())
    }
}
