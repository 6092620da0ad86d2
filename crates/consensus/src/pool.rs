//! The artifact pool: what a node knows, split into *unvalidated* (received,
//! not yet checked) and *validated* (checked, or made by this node).
//!
//! Consensus never mutates the pool directly. It returns [`ChangeAction`]s;
//! [`ArtifactPool::apply`] performs them and reports [`PoolEvent`]s, which
//! are exactly what the node must persist (validated artifacts in, purged
//! ones out) and gossip. Because the validated section alone determines
//! every decision, a node restarts by rebuilding the pool from its persisted
//! validated artifacts ([`ArtifactPool::restore`]); its own past shares come
//! back with it, so it never signs conflicting statements after a crash.
//!
//! Artifacts are keyed by [`ArtifactId`] (kind, height, hash) in `BTreeMap`s,
//! so "all notarizations at height h" is a range scan and iteration order is
//! deterministic.

use crate::hash::CryptoHash;
use crate::types::{
    ArtifactId, ArtifactKind, BlockProposal, CatchUpPackage, ConsensusMessage, EquivocationProof, Finalization,
    FinalizationContent, FinalizationShare, Genesis, MultiSignature, Notarization, NotarizationContent,
    NotarizationShare, RandomBeacon, RandomBeaconShare, RandomTape, RandomTapeShare,
};
use crate::validator::InvalidArtifact;
use cairn_types::{Height, NodeId};
use std::collections::BTreeMap;
use std::ops::RangeInclusive;

/// One change to the pool, decided by consensus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeAction {
    /// An artifact this node made (a share, an aggregate, a proposal, a
    /// proof) enters the validated section.
    AddToValidated(ConsensusMessage),
    /// A received artifact passed validation.
    MoveToValidated(ArtifactId),
    /// A received artifact is useless (duplicate, stale); dropped silently.
    RemoveFromUnvalidated(ArtifactId),
    /// A received artifact is invalid; dropped, with the reason.
    HandleInvalid(ArtifactId, InvalidArtifact),
    /// A validated artifact is no longer needed.
    RemoveFromValidated(ArtifactId),
    /// Every validated artifact below this height is no longer needed.
    PurgeValidatedBelow(Height),
    /// Every unvalidated artifact below this height is no longer needed.
    PurgeUnvalidatedBelow(Height),
    /// Start over from this (validated) catch-up package: everything below
    /// its height goes, and its block and beacon become the chain's root.
    CatchUp(Box<CatchUpPackage>),
}

/// What applying a change did; the node persists and gossips from these.
// Events are short-lived (one step's worth); boxing every artifact to keep
// `Removed` small would cost an allocation per validated artifact.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PoolEvent {
    /// An artifact entered the validated section: persist it, then gossip
    /// it (`own`: made by this node; otherwise relayed).
    Validated {
        /// The artifact's id (the store key).
        id: ArtifactId,
        /// The artifact.
        message: ConsensusMessage,
        /// Whether this node made it.
        own: bool,
    },
    /// A validated artifact was removed: delete it from the store.
    Removed(ArtifactId),
    /// A received artifact was invalid (for logs and metrics).
    Invalid(ArtifactId, InvalidArtifact),
}

/// The validated and unvalidated artifacts of one node.
#[derive(Clone, Debug, Default)]
pub struct ArtifactPool {
    validated: BTreeMap<ArtifactId, ConsensusMessage>,
    unvalidated: BTreeMap<ArtifactId, ConsensusMessage>,
    /// Which peer sent each unvalidated artifact (those added with
    /// [`ArtifactPool::insert_from_peer`]) ...
    origin: BTreeMap<ArtifactId, NodeId>,
    /// ... and how many each peer has there, so one flooding peer can be
    /// refused without refusing the others.
    per_peer: BTreeMap<NodeId, usize>,
    generation: u64,
}

/// The outcome of [`ArtifactPool::insert_from_peer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// Added to the unvalidated section.
    Added,
    /// Already in the pool.
    Known,
    /// Refused: the peer already has `quota` artifacts waiting here.
    OverQuota,
}

fn kind_range(kind: ArtifactKind) -> RangeInclusive<ArtifactId> {
    ArtifactId::min(kind, Height(0))..=ArtifactId::max(kind, Height(u64::MAX))
}

macro_rules! typed_at {
    ($(#[$m:meta])* $name:ident, $kind:ident, $ty:ty) => {
        $(#[$m])*
        pub fn $name(&self, h: Height) -> impl Iterator<Item = &$ty> {
            self.validated_at(ArtifactKind::$kind, h).filter_map(|m| match m {
                ConsensusMessage::$kind(x) => Some(x),
                _ => None,
            })
        }
    };
}

impl ArtifactPool {
    /// A pool holding only the genesis artifacts: block 0, its
    /// notarization and finalization, and the genesis beacon.
    pub fn new(genesis: &Genesis) -> ArtifactPool {
        let mut pool = ArtifactPool::default();
        for m in genesis_artifacts(genesis) {
            pool.validated.insert(m.id(), m);
        }
        pool
    }

    /// A pool rebuilt after a restart from the persisted validated artifacts
    /// (trusted: this node validated or made them). The unvalidated section
    /// starts empty; peers resend what is missing.
    pub fn restore(genesis: &Genesis, validated: impl IntoIterator<Item = ConsensusMessage>) -> ArtifactPool {
        let mut pool = ArtifactPool::new(genesis);
        for m in validated {
            pool.validated.insert(m.id(), m);
        }
        if let Some(cup) = pool.latest_catch_up().cloned() {
            pool.insert_root(&cup);
        }
        pool
    }

    /// The highest validated catch-up package.
    pub fn latest_catch_up(&self) -> Option<&CatchUpPackage> {
        self.validated.range(kind_range(ArtifactKind::CatchUpPackage)).next_back().and_then(|(_, m)| match m {
            ConsensusMessage::CatchUpPackage(c) => Some(c),
            _ => None,
        })
    }

    /// Whether a validated catch-up package at `h` or above exists.
    pub fn has_catch_up_from(&self, h: Height) -> bool {
        self.latest_catch_up().is_some_and(|c| c.content.height() >= h)
    }

    /// Makes a catch-up package's block (notarized and finalized) and beacon
    /// part of the validated section, like the genesis artifacts: the chain
    /// continues from them. They are not reported as events (nothing to
    /// persist or gossip: the package itself is).
    fn insert_root(&mut self, cup: &CatchUpPackage) {
        for m in root_artifacts(&cup.content.block, cup.content.beacon.clone()) {
            let present = match &m {
                ConsensusMessage::BlockProposal(p) => self.proposal(p.height(), &p.hash()).is_some(),
                ConsensusMessage::Notarization(n) => self.has_notarization(&n.content),
                ConsensusMessage::Finalization(f) => self.has_finalization(&f.content),
                ConsensusMessage::RandomBeacon(b) => self.beacon(b.content.height).is_some(),
                _ => false,
            };
            if !present {
                self.validated.insert(m.id(), m);
            }
        }
    }

    /// Adds a received artifact to the unvalidated section; `false` if the
    /// pool already has it (in either section).
    pub fn insert_unvalidated(&mut self, message: ConsensusMessage) -> bool {
        let id = message.id();
        self.insert_unvalidated_with_id(id, message)
    }

    /// [`ArtifactPool::insert_unvalidated`] with a precomputed id (the
    /// caller vouches that `id == message.id()`).
    pub fn insert_unvalidated_with_id(&mut self, id: ArtifactId, message: ConsensusMessage) -> bool {
        if self.validated.contains_key(&id) || self.unvalidated.contains_key(&id) {
            return false;
        }
        self.unvalidated.insert(id, message);
        self.generation += 1;
        true
    }

    /// Adds an artifact received from `peer`, unless that peer already has
    /// `quota` artifacts waiting in the unvalidated section. An honest peer
    /// has a few per height of the validation window; a peer that floods
    /// distinct artifacts (each one costs memory and a validation attempt)
    /// is refused beyond its quota while other peers are not affected.
    pub fn insert_from_peer(&mut self, peer: NodeId, message: ConsensusMessage, quota: usize) -> Received {
        let id = message.id();
        if self.contains(&id) {
            return Received::Known;
        }
        let count = self.per_peer.entry(peer).or_default();
        if *count >= quota {
            return Received::OverQuota;
        }
        *count += 1;
        self.origin.insert(id, peer);
        self.unvalidated.insert(id, message);
        self.generation += 1;
        Received::Added
    }

    /// Artifacts from `peer` waiting in the unvalidated section.
    pub fn unvalidated_from(&self, peer: &NodeId) -> usize {
        self.per_peer.get(peer).copied().unwrap_or(0)
    }

    /// Removes an unvalidated artifact, releasing its sender's quota.
    fn take_unvalidated(&mut self, id: &ArtifactId) -> Option<ConsensusMessage> {
        let m = self.unvalidated.remove(id)?;
        if let Some(peer) = self.origin.remove(id)
            && let Some(count) = self.per_peer.get_mut(&peer)
        {
            *count -= 1;
            if *count == 0 {
                self.per_peer.remove(&peer);
            }
        }
        Some(m)
    }

    /// Whether the pool has the artifact (in either section).
    pub fn contains(&self, id: &ArtifactId) -> bool {
        self.validated.contains_key(id) || self.unvalidated.contains_key(id)
    }

    /// A validated artifact by id.
    pub fn get_validated(&self, id: &ArtifactId) -> Option<&ConsensusMessage> {
        self.validated.get(id)
    }

    /// An unvalidated artifact by id.
    pub fn get_unvalidated(&self, id: &ArtifactId) -> Option<&ConsensusMessage> {
        self.unvalidated.get(id)
    }

    /// All validated artifacts, by id (what a peer needs to catch up).
    pub fn validated(&self) -> impl Iterator<Item = (&ArtifactId, &ConsensusMessage)> {
        self.validated.iter()
    }

    /// All unvalidated artifacts, by id.
    pub fn unvalidated(&self) -> impl Iterator<Item = (&ArtifactId, &ConsensusMessage)> {
        self.unvalidated.iter()
    }

    /// Number of validated artifacts.
    pub fn validated_len(&self) -> usize {
        self.validated.len()
    }

    /// Number of unvalidated artifacts.
    pub fn unvalidated_len(&self) -> usize {
        self.unvalidated.len()
    }

    /// Increases on every mutation; lets consensus skip work when nothing
    /// changed.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Applies one change, appending what happened to `events`.
    pub fn apply(&mut self, change: ChangeAction, events: &mut Vec<PoolEvent>) {
        self.generation += 1;
        match change {
            ChangeAction::AddToValidated(m) => {
                let id = m.id();
                self.take_unvalidated(&id);
                if let std::collections::btree_map::Entry::Vacant(e) = self.validated.entry(id) {
                    e.insert(m.clone());
                    events.push(PoolEvent::Validated { id, message: m, own: true });
                }
            }
            ChangeAction::MoveToValidated(id) => {
                if let Some(m) = self.take_unvalidated(&id) {
                    self.validated.insert(id, m.clone());
                    events.push(PoolEvent::Validated { id, message: m, own: false });
                }
            }
            ChangeAction::RemoveFromUnvalidated(id) => {
                self.take_unvalidated(&id);
            }
            ChangeAction::HandleInvalid(id, reason) => {
                if self.take_unvalidated(&id).is_some() {
                    events.push(PoolEvent::Invalid(id, reason));
                }
            }
            ChangeAction::RemoveFromValidated(id) => {
                if self.validated.remove(&id).is_some() {
                    events.push(PoolEvent::Removed(id));
                }
            }
            ChangeAction::PurgeValidatedBelow(h) => {
                for kind in ArtifactKind::ALL {
                    let doomed: Vec<ArtifactId> = self
                        .validated
                        .range(ArtifactId::min(kind, Height(0))..ArtifactId::min(kind, h))
                        .map(|(id, _)| *id)
                        .collect();
                    for id in doomed {
                        self.validated.remove(&id);
                        events.push(PoolEvent::Removed(id));
                    }
                }
            }
            ChangeAction::PurgeUnvalidatedBelow(h) => {
                // Key-generation artifacts are named by their interval's
                // start and stay until validation finds them outdated.
                let doomed: Vec<ArtifactId> =
                    self.unvalidated.keys().filter(|id| id.height < h && !id.kind.is_dkg()).copied().collect();
                for id in doomed {
                    self.take_unvalidated(&id);
                }
            }
            ChangeAction::CatchUp(cup) => {
                let h = cup.content.height();
                self.apply(ChangeAction::PurgeValidatedBelow(h), events);
                self.apply(ChangeAction::PurgeUnvalidatedBelow(h.increment()), events);
                // What was validated at the package's height may belong to a
                // chain the subnet did not finalize: keep only the package.
                let doomed: Vec<ArtifactId> = self
                    .validated
                    .keys()
                    .filter(|id| id.height == h && id.kind != ArtifactKind::CatchUpPackage && !id.kind.is_dkg())
                    .copied()
                    .collect();
                for id in doomed {
                    self.validated.remove(&id);
                    events.push(PoolEvent::Removed(id));
                }
                let cup = ConsensusMessage::CatchUpPackage(*cup);
                let id = cup.id();
                self.take_unvalidated(&id);
                if let std::collections::btree_map::Entry::Vacant(e) = self.validated.entry(id) {
                    e.insert(cup.clone());
                    events.push(PoolEvent::Validated { id, message: cup.clone(), own: false });
                }
                if let ConsensusMessage::CatchUpPackage(c) = &cup {
                    self.insert_root(c);
                }
            }
        }
    }

    /// Lowest height of any validated artifact.
    pub fn min_validated_height(&self) -> Option<Height> {
        ArtifactKind::ALL
            .iter()
            .filter_map(|k| self.validated.range(kind_range(*k)).next().map(|(id, _)| id.height))
            .min()
    }

    /// Lowest height of any unvalidated artifact.
    pub fn min_unvalidated_height(&self) -> Option<Height> {
        ArtifactKind::ALL
            .iter()
            .filter_map(|k| self.unvalidated.range(kind_range(*k)).next().map(|(id, _)| id.height))
            .min()
    }

    /// Validated artifacts of `kind` at height `h`.
    pub fn validated_at(&self, kind: ArtifactKind, h: Height) -> impl Iterator<Item = &ConsensusMessage> {
        self.validated.range(ArtifactId::min(kind, h)..=ArtifactId::max(kind, h)).map(|(_, m)| m)
    }

    /// Validated artifacts of `kind` with heights in `from..=to`.
    pub fn validated_between(
        &self,
        kind: ArtifactKind,
        from: Height,
        to: Height,
    ) -> impl Iterator<Item = (&ArtifactId, &ConsensusMessage)> {
        let range = if from <= to {
            ArtifactId::min(kind, from)..=ArtifactId::max(kind, to)
        } else {
            // An empty range that BTreeMap accepts.
            ArtifactId::max(kind, to)..=ArtifactId::max(kind, to)
        };
        let empty = from > to;
        self.validated.range(range).filter(move |_| !empty)
    }

    /// Highest height with a validated artifact of `kind`.
    pub fn max_height(&self, kind: ArtifactKind) -> Option<Height> {
        self.validated.range(kind_range(kind)).next_back().map(|(id, _)| id.height)
    }

    typed_at!(
        /// Validated block proposals at `h`.
        proposals_at, BlockProposal, BlockProposal
    );
    typed_at!(
        /// Validated dealings of the interval starting at `h`.
        dealings_at, Dealing, crate::dkg::SignedDealing
    );
    typed_at!(
        /// Validated complaints about dealings of the interval starting at `h`.
        complaints_at, Complaint, crate::dkg::SignedComplaint
    );

    /// Whether `dealer`'s dealing of `kind` for the interval starting at
    /// `s` is validated here (a dealer deals each key once per interval).
    pub fn has_dealing(&self, s: Height, dealer: &NodeId, kind: crate::crypto::ThresholdKey) -> bool {
        self.dealings_at(s).any(|d| d.signer == *dealer && d.content.kind == kind)
    }
    typed_at!(
        /// Validated notarizations at `h`.
        notarizations_at, Notarization, Notarization
    );
    typed_at!(
        /// Validated finalizations at `h`.
        finalizations_at, Finalization, Finalization
    );
    typed_at!(
        /// Validated notarization shares at `h`.
        notarization_shares_at, NotarizationShare, NotarizationShare
    );
    typed_at!(
        /// Validated finalization shares at `h`.
        finalization_shares_at, FinalizationShare, FinalizationShare
    );
    typed_at!(
        /// Validated random beacon shares at `h`.
        beacon_shares_at, RandomBeaconShare, RandomBeaconShare
    );
    typed_at!(
        /// Validated random tape shares at `h`.
        tape_shares_at, RandomTapeShare, RandomTapeShare
    );
    typed_at!(
        /// Validated equivocation proofs at `h`.
        equivocation_proofs_at, EquivocationProof, EquivocationProof
    );
    typed_at!(
        /// Validated random beacons at `h` (at most one: they are unique).
        beacons_at, RandomBeacon, RandomBeacon
    );
    typed_at!(
        /// Validated random tapes at `h` (at most one).
        tapes_at, RandomTape, RandomTape
    );

    /// The validated random beacon at `h`.
    pub fn beacon(&self, h: Height) -> Option<&RandomBeacon> {
        self.beacons_at(h).next()
    }

    /// The validated random tape at `h`.
    pub fn tape(&self, h: Height) -> Option<&RandomTape> {
        self.tapes_at(h).next()
    }

    /// The validated proposal of the block with this hash at `h`.
    pub fn proposal(&self, h: Height, hash: &CryptoHash) -> Option<&BlockProposal> {
        self.proposals_at(h).find(|p| p.hash() == *hash)
    }

    /// The validated notarization of this block, if any.
    pub fn notarization(&self, h: Height, hash: &CryptoHash) -> Option<&Notarization> {
        self.notarizations_at(h).find(|n| n.content.block == *hash)
    }

    /// Whether the block with this hash at `h` has a validated notarization.
    pub fn is_notarized(&self, h: Height, hash: &CryptoHash) -> bool {
        self.notarization(h, hash).is_some()
    }

    /// The validated finalization of this block, if any.
    pub fn finalization(&self, h: Height, hash: &CryptoHash) -> Option<&Finalization> {
        self.finalizations_at(h).find(|n| n.content.block == *hash)
    }

    /// Whether a validated aggregate on this notarization content exists.
    pub(crate) fn has_notarization(&self, c: &NotarizationContent) -> bool {
        self.notarizations_at(c.height).any(|n| n.content == *c)
    }

    /// Whether a validated aggregate on this finalization content exists.
    pub(crate) fn has_finalization(&self, c: &FinalizationContent) -> bool {
        self.finalizations_at(c.height).any(|n| n.content == *c)
    }

    /// Highest height with a validated finalization (0 at genesis).
    pub fn finalized_height(&self) -> Height {
        self.max_height(ArtifactKind::Finalization).unwrap_or_default()
    }

    /// Highest height with a validated notarization *and* its block.
    pub fn notarized_height(&self) -> Height {
        for (id, m) in self.validated.range(kind_range(ArtifactKind::Notarization)).rev() {
            if let ConsensusMessage::Notarization(n) = m
                && self.proposal(id.height, &n.content.block).is_some()
            {
                return id.height;
            }
        }
        Height(0)
    }

    /// Highest height with a validated random beacon.
    pub fn beacon_height(&self) -> Height {
        self.max_height(ArtifactKind::RandomBeacon).unwrap_or_default()
    }
}

/// The artifacts every pool starts with. They are never validated or
/// gossiped; peers already have them.
pub fn genesis_artifacts(genesis: &Genesis) -> Vec<ConsensusMessage> {
    root_artifacts(&genesis.block(), genesis.beacon())
}

/// A chain root: the block as proposed, notarized and finalized (without
/// signatures: the genesis or a catch-up package vouches for it) and the
/// beacon of its height.
fn root_artifacts(block: &crate::types::Block, beacon: RandomBeacon) -> Vec<ConsensusMessage> {
    let block = block.clone();
    let hash = block.hash();
    let height = block.height;
    vec![
        ConsensusMessage::BlockProposal(BlockProposal::new(block, NodeId::default(), Vec::new())),
        ConsensusMessage::Notarization(MultiSignature {
            content: NotarizationContent { height, block: hash },
            signers: Vec::new(),
            signature: Vec::new(),
        }),
        ConsensusMessage::Finalization(MultiSignature {
            content: FinalizationContent { height, block: hash },
            signers: Vec::new(),
            signature: Vec::new(),
        }),
        ConsensusMessage::RandomBeacon(beacon),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Share;
    use cairn_types::{Principal, RegistryVersion, Time};

    fn genesis() -> Genesis {
        let members = crate::Membership::new([NodeId::default()]).unwrap();
        Genesis {
            time: Time::from_secs(1),
            registry_version: RegistryVersion(1),
            random_seed: [5; 32],
            summary: crate::FakeCrypto::genesis_summary(&members),
        }
    }

    fn share(h: u64, signer: u8) -> ConsensusMessage {
        ConsensusMessage::NotarizationShare(Share {
            content: NotarizationContent { height: Height(h), block: CryptoHash([1; 32]) },
            signer: NodeId(Principal::try_from_slice(&[signer]).unwrap()),
            signature: vec![signer],
        })
    }

    #[test]
    fn genesis_pool() {
        let p = ArtifactPool::new(&genesis());
        assert_eq!(p.finalized_height(), Height(0));
        assert_eq!(p.notarized_height(), Height(0));
        assert_eq!(p.beacon_height(), Height(0));
        let g = genesis().block().hash();
        assert!(p.is_notarized(Height(0), &g));
        assert!(p.proposal(Height(0), &g).is_some());
    }

    /// A peer's artifacts waiting for validation are capped; the cap is per
    /// peer and is released as they are validated, rejected or purged.
    #[test]
    fn per_peer_quota_of_unvalidated_artifacts() {
        let mut p = ArtifactPool::new(&genesis());
        let (flooder, other) =
            (NodeId(Principal::try_from_slice(&[1]).unwrap()), NodeId(Principal::try_from_slice(&[2]).unwrap()));
        let mut ev = Vec::new();
        assert_eq!(p.insert_from_peer(flooder, share(1, 1), 2), Received::Added);
        assert_eq!(p.insert_from_peer(flooder, share(1, 1), 2), Received::Known);
        assert_eq!(p.insert_from_peer(flooder, share(2, 1), 2), Received::Added);
        assert_eq!(p.insert_from_peer(flooder, share(3, 1), 2), Received::OverQuota);
        assert!(!p.contains(&share(3, 1).id()));
        assert_eq!(p.insert_from_peer(other, share(3, 2), 2), Received::Added, "other peers are not affected");
        // Validation releases quota ...
        p.apply(ChangeAction::MoveToValidated(share(1, 1).id()), &mut ev);
        assert_eq!(p.unvalidated_from(&flooder), 1);
        assert_eq!(p.insert_from_peer(flooder, share(3, 1), 2), Received::Added);
        // ... and so do rejection and purging.
        p.apply(ChangeAction::HandleInvalid(share(3, 1).id(), InvalidArtifact::UnsortedSigners), &mut ev);
        p.apply(ChangeAction::PurgeUnvalidatedBelow(Height(10)), &mut ev);
        assert_eq!((p.unvalidated_from(&flooder), p.unvalidated_from(&other), p.unvalidated_len()), (0, 0, 0));
    }

    #[test]
    fn insert_apply_and_purge() {
        let mut p = ArtifactPool::new(&genesis());
        let mut ev = Vec::new();
        assert!(p.insert_unvalidated(share(3, 1)));
        assert!(!p.insert_unvalidated(share(3, 1)), "duplicates are ignored");
        assert!(p.insert_unvalidated(share(4, 2)));
        assert!(p.insert_unvalidated(share(5, 3)));
        p.apply(ChangeAction::MoveToValidated(share(3, 1).id()), &mut ev);
        assert!(matches!(&ev[0], PoolEvent::Validated { own: false, .. }));
        assert_eq!(p.notarization_shares_at(Height(3)).count(), 1);
        assert!(!p.insert_unvalidated(share(3, 1)), "validated artifacts are known too");
        p.apply(ChangeAction::AddToValidated(share(6, 9)), &mut ev);
        assert!(matches!(&ev[1], PoolEvent::Validated { own: true, .. }));
        p.apply(ChangeAction::HandleInvalid(share(4, 2).id(), InvalidArtifact::UnsortedSigners), &mut ev);
        assert!(matches!(&ev[2], PoolEvent::Invalid(..)));
        assert_eq!(p.unvalidated_len(), 1);
        p.apply(ChangeAction::PurgeValidatedBelow(Height(4)), &mut ev);
        // Genesis (4 artifacts) and the share at 3 went.
        assert_eq!(ev.iter().filter(|e| matches!(e, PoolEvent::Removed(_))).count(), 5);
        assert_eq!(p.min_validated_height(), Some(Height(6)));
        p.apply(ChangeAction::PurgeUnvalidatedBelow(Height(6)), &mut ev);
        assert_eq!(p.unvalidated_len(), 0);
        // Restore brings the persisted artifacts back.
        let persisted: Vec<ConsensusMessage> = p.validated().map(|(_, m)| m.clone()).collect();
        let q = ArtifactPool::restore(&genesis(), persisted);
        assert_eq!(q.notarization_shares_at(Height(6)).count(), 1);
        assert_eq!(q.finalized_height(), Height(0));
    }

    #[test]
    fn between_handles_empty_ranges() {
        let mut p = ArtifactPool::new(&genesis());
        let mut ev = Vec::new();
        p.apply(ChangeAction::AddToValidated(share(6, 9)), &mut ev);
        assert_eq!(p.validated_between(ArtifactKind::NotarizationShare, Height(7), Height(3)).count(), 0);
        assert_eq!(p.validated_between(ArtifactKind::NotarizationShare, Height(1), Height(6)).count(), 1);
    }
}
