//! Key generation in the chain: every interval, the subnet's two threshold
//! keys are made anew by the members themselves.
//!
//! The chain is cut into intervals of `interval_length` heights; the block
//! at an interval start `s` is a **summary block** whose [`DkgSummary`]
//! fixes, for everyone:
//! * `current`: the key transcripts used at heights `[s, s + L)`;
//! * `next`: the transcripts for `[s + L, s + 2L)`, made from the dealings
//!   in the blocks of the previous interval;
//! * who deals in this interval (the holders of the current keys) and to
//!   whom (`receivers`, the members two intervals on).
//!
//! In the blocks of the interval (the first half of it), every dealer's
//! dealing for each key travels in a block: the **low-threshold key**
//! (f + 1 of n; random beacon and tape) is dealt afresh, so the next
//! interval's beacon key is unknown to anyone today; the **high-threshold
//! key** (n − f of n; certification and catch-up packages) is *reshared*:
//! each dealer deals its own share of the current key, and interpolating
//! `t` such dealings gives new shares of the same secret, so the subnet's
//! public key never changes while shares (and, later, members) do.
//!
//! Invalid dealings are kept out in two ways: what anyone can check (shape,
//! and for resharing that the dealing deals the dealer's public share) is
//! checked before a block may carry the dealing; a receiver whose encrypted
//! share is wrong publishes a **complaint** that anyone can check, and a
//! dealing with a valid complaint in the chain is not used. The next summary
//! then takes the first dealings needed in chain order from dealers without
//! complaints; if too few remain for either key, both keys of the summary
//! before are kept for one more interval (liveness over freshness).
//!
//! Everything here is a deterministic function of the chain: every replica
//! computes the same summary, and a proposer's summary is accepted only if
//! it is exactly that. The cryptography sits behind [`DkgCrypto`] (real
//! keys in [`crate::BlsCrypto`], cheap stand-ins in [`crate::FakeCrypto`]),
//! so another scheme (the IC's non-interactive DKG) can replace it.

use crate::committee::faults_tolerated;
use crate::crypto::{ConsensusCrypto, KeyId, ThresholdKey};
use crate::hash::{CryptoHash, Encoder, StreamHasher, domain};
use crate::types::Share;
use cairn_types::{Height, NodeId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Why a DKG operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DkgCryptoError {
    /// The dealing, complaint or transcript is malformed or does not verify.
    #[error("invalid: {0}")]
    Invalid(String),
    /// This node lacks a key it needs (not a dealer, or shares not loaded).
    #[error("missing key: {0}")]
    MissingKey(String),
    /// A node has no key-generation encryption key.
    #[error("node {0} has no key-generation encryption key")]
    UnknownReceiver(NodeId),
}

/// A dealing that a transcript was made from, kept in the transcript so a
/// receiver can open its share from the summary alone (after a restart or a
/// catch-up, when the blocks that carried the dealings are gone).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Debug)]
pub struct IncludedDealing {
    /// Who dealt.
    pub dealer: NodeId,
    /// The dealer's index among the interval's dealers (its share index of
    /// the key it reshared).
    pub dealer_index: u32,
    /// The dealing, as the crypto encodes it.
    #[serde(with = "serde_bytes")]
    pub dealing: Vec<u8>,
}

/// A threshold key as the chain knows it: who holds shares, how many sign,
/// the public key material, and the dealings its shares come from.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Debug)]
pub struct KeyTranscript {
    /// Low (beacon) or high (subnet) key.
    pub kind: ThresholdKey,
    /// Start of the interval whose dealings made it (genesis keys: 0 and no
    /// dealings; their shares come from the node's genesis secrets).
    pub dealt_in: Height,
    /// Share holders, sorted; share `i` belongs to `receivers[i]`.
    pub receivers: Vec<NodeId>,
    /// Shares needed to sign.
    pub threshold: u32,
    /// Public key material (the crypto's public coefficients).
    #[serde(with = "serde_bytes")]
    pub public_key: Vec<u8>,
    /// The dealings combined.
    pub dealings: Vec<IncludedDealing>,
    /// For a reshared key: the threshold of the key that was reshared (the
    /// dealings are interpolated with it). `None` for a fresh key.
    pub reshared_threshold: Option<u32>,
}

impl KeyTranscript {
    fn encode(&self, e: Encoder) -> Encoder {
        let mut e = e
            .u8(self.kind as u8)
            .height(self.dealt_in)
            .u64(self.receivers.len() as u64)
            .u64(u64::from(self.threshold))
            .bytes(&self.public_key)
            .u64(self.reshared_threshold.map_or(0, |t| u64::from(t) + 1))
            .u64(self.dealings.len() as u64);
        for r in &self.receivers {
            e = e.node(r);
        }
        for d in &self.dealings {
            e = e.node(&d.dealer).u64(u64::from(d.dealer_index)).bytes(&d.dealing);
        }
        e
    }

    /// The dealers whose dealings made this key.
    pub fn dealers(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.dealings.iter().map(|d| d.dealer)
    }
}

/// The two keys of one interval.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Debug)]
pub struct KeyPair {
    /// f + 1 of n: random beacon and random tape.
    pub low: KeyTranscript,
    /// n − f of n: certification and catch-up packages.
    pub high: KeyTranscript,
}

impl KeyPair {
    /// The transcript of one kind.
    pub fn get(&self, kind: ThresholdKey) -> &KeyTranscript {
        match kind {
            ThresholdKey::Low => &self.low,
            ThresholdKey::High => &self.high,
        }
    }
}

/// What a summary block fixes for its interval (see the module docs).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Debug)]
pub struct DkgSummary {
    /// The summary block's height (an interval start; genesis: 0).
    pub height: Height,
    /// Keys used at `[height, height + L)`.
    pub current: KeyPair,
    /// Keys used at `[height + L, height + 2L)`.
    pub next: KeyPair,
    /// Who receives this interval's dealings (sorted).
    pub receivers: Vec<NodeId>,
}

impl DkgSummary {
    /// The genesis summary: the trusted-dealer keys serve the first two
    /// intervals, and their holders deal to themselves.
    pub fn genesis(low: KeyTranscript, high: KeyTranscript) -> DkgSummary {
        let receivers = high.receivers.clone();
        let pair = KeyPair { low, high };
        DkgSummary { height: Height(0), current: pair.clone(), next: pair, receivers }
    }

    /// Who deals in this interval: the holders of the current high key
    /// (they reshare it).
    pub fn dealers(&self) -> &[NodeId] {
        &self.current.high.receivers
    }

    /// What a dealing of `kind` in this interval must be.
    pub fn config(&self, kind: ThresholdKey) -> DealingConfig<'_> {
        let f = faults_tolerated(self.receivers.len());
        let threshold = match kind {
            ThresholdKey::Low => f + 1,
            ThresholdKey::High => self.receivers.len() - f,
        };
        DealingConfig {
            interval: self.height,
            kind,
            dealers: self.dealers(),
            receivers: &self.receivers,
            threshold,
            resharing: (kind == ThresholdKey::High).then_some(&self.current.high),
        }
    }

    /// Canonical hash (folded into the block hash).
    pub fn hash(&self) -> CryptoHash {
        let mut e = Encoder::new(domain::DKG_SUMMARY).height(self.height);
        for t in [&self.current.low, &self.current.high, &self.next.low, &self.next.high] {
            e = t.encode(e);
        }
        e = e.u64(self.receivers.len() as u64);
        for r in &self.receivers {
            e = e.node(r);
        }
        e.digest()
    }
}

/// The parameters of one key's dealings in one interval.
#[derive(Clone, Copy, Debug)]
pub struct DealingConfig<'a> {
    /// Start of the interval the dealings are made in.
    pub interval: Height,
    /// Which key.
    pub kind: ThresholdKey,
    /// Who may deal (sorted); a dealer's index is its position here.
    pub dealers: &'a [NodeId],
    /// Who receives shares (sorted).
    pub receivers: &'a [NodeId],
    /// The new key's threshold.
    pub threshold: usize,
    /// The key that is reshared (its shares are the dealers' secrets), or
    /// `None` for a fresh key.
    pub resharing: Option<&'a KeyTranscript>,
}

impl DealingConfig<'_> {
    /// How many dealings make the key: for a fresh key, `f + 1` of the
    /// dealers (so at least one honest dealer's randomness is in it); for a
    /// resharing, the threshold of the reshared key.
    pub fn dealings_needed(&self) -> usize {
        match self.resharing {
            Some(t) => t.threshold as usize,
            None => faults_tolerated(self.dealers.len()) + 1,
        }
    }

    /// A dealer's index.
    pub fn dealer_index(&self, dealer: &NodeId) -> Option<u32> {
        self.dealers.binary_search(dealer).ok().map(|i| i as u32)
    }

    /// A receiver's index.
    pub fn receiver_index(&self, receiver: &NodeId) -> Option<u32> {
        self.receivers.binary_search(receiver).ok().map(|i| i as u32)
    }

    /// Bytes binding ciphertexts to this interval and key.
    pub fn tag(&self) -> Vec<u8> {
        dealing_tag(self.interval, self.kind)
    }
}

/// Bytes binding a dealing's ciphertexts to the interval it is dealt in and
/// its key (so a ciphertext cannot be replayed in another key generation).
pub fn dealing_tag(interval: Height, kind: ThresholdKey) -> Vec<u8> {
    Encoder::new(domain::DKG_TAG).height(interval).u8(kind as u8).finish()
}

/// The cryptography of key generation, behind a trait so the scheme can be
/// replaced (see the module docs).
pub trait DkgCrypto {
    /// This node's dealing for `config` (deterministic per node and config,
    /// so a restarted node deals the same again).
    fn create_dealing(&self, config: &DealingConfig<'_>) -> Result<Vec<u8>, DkgCryptoError>;
    /// What anyone can check of `dealer`'s dealing.
    fn verify_dealing(&self, config: &DealingConfig<'_>, dealer: &NodeId, dealing: &[u8])
    -> Result<(), DkgCryptoError>;
    /// A complaint against `dealer`'s dealing if this node is a receiver and
    /// its share is wrong; `None` otherwise.
    fn complaint_against(&self, config: &DealingConfig<'_>, dealer: &NodeId, dealing: &[u8]) -> Option<Vec<u8>>;
    /// `Ok` if `complainer`'s complaint proves `dealer`'s dealing wrong.
    fn verify_complaint(
        &self,
        config: &DealingConfig<'_>,
        dealer: &NodeId,
        dealing: &[u8],
        complainer: &NodeId,
        complaint: &[u8],
    ) -> Result<(), DkgCryptoError>;
    /// The public key material of the key made from `dealings` (dealer,
    /// bytes), which are exactly [`DealingConfig::dealings_needed`] valid,
    /// uncomplained dealings in chain order.
    fn create_transcript(
        &self,
        config: &DealingConfig<'_>,
        dealings: &[(NodeId, &[u8])],
    ) -> Result<Vec<u8>, DkgCryptoError>;
    /// Makes `transcript` the key `id`: its public shares for verifying, and
    /// this node's share (opened from the dealings) for signing.
    fn load_transcript(&self, id: KeyId, transcript: &KeyTranscript) -> Result<(), DkgCryptoError>;
    /// Whether key `id` is loaded.
    fn has_key(&self, id: KeyId) -> bool;
    /// Forgets keys of intervals before `interval`.
    fn retain_keys_from(&self, interval: Height);
}

/// "Here is my dealing of this key for this interval" (signed by the dealer
/// with its basic signature).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug)]
pub struct DealingContent {
    /// Start of the interval it is dealt in.
    pub interval: Height,
    /// Which key.
    pub kind: ThresholdKey,
    /// The dealing.
    #[serde(with = "serde_bytes")]
    pub dealing: Vec<u8>,
}

impl DealingContent {
    /// The bytes the dealer signs.
    pub fn signing_bytes(&self, dealer: &NodeId) -> Vec<u8> {
        Encoder::new(domain::DKG_DEALING)
            .height(self.interval)
            .u8(self.kind as u8)
            .node(dealer)
            .bytes(&self.dealing)
            .finish()
    }

    /// Hash of the dealing (what complaints name).
    pub fn hash(&self, dealer: &NodeId) -> CryptoHash {
        let mut h = StreamHasher::new(domain::DKG_DEALING);
        h.bytes(&self.signing_bytes(dealer));
        h.finish()
    }
}

/// "The dealing with this hash gave me a wrong share; here is the proof."
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug)]
pub struct ComplaintContent {
    /// Start of the interval of the dealing.
    pub interval: Height,
    /// Which key.
    pub kind: ThresholdKey,
    /// Who dealt.
    pub dealer: NodeId,
    /// [`DealingContent::hash`] of the dealing.
    pub dealing_hash: CryptoHash,
    /// The proof, as the crypto encodes it.
    #[serde(with = "serde_bytes")]
    pub complaint: Vec<u8>,
}

impl ComplaintContent {
    /// The bytes the complainer signs.
    pub fn signing_bytes(&self, complainer: &NodeId) -> Vec<u8> {
        Encoder::new(domain::DKG_COMPLAINT)
            .height(self.interval)
            .u8(self.kind as u8)
            .node(&self.dealer)
            .hash(&self.dealing_hash)
            .node(complainer)
            .bytes(&self.complaint)
            .finish()
    }
}

/// A signed dealing (an artifact, and part of a block).
pub type SignedDealing = Share<DealingContent>;
/// A signed complaint (an artifact, and part of a block).
pub type SignedComplaint = Share<ComplaintContent>;

/// The key-generation part of a block.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Debug)]
pub enum DkgPayload {
    /// In the blocks of an interval: dealings and complaints.
    Data {
        /// New dealings (at most one per dealer and key per interval).
        dealings: Vec<SignedDealing>,
        /// New complaints against dealings already in the chain.
        complaints: Vec<SignedComplaint>,
    },
    /// At an interval start.
    Summary(Box<DkgSummary>),
}

impl Default for DkgPayload {
    fn default() -> Self {
        DkgPayload::Data { dealings: Vec::new(), complaints: Vec::new() }
    }
}

impl DkgPayload {
    /// Canonical hash (folded into the block hash).
    pub fn hash(&self) -> CryptoHash {
        match self {
            DkgPayload::Summary(s) => Encoder::new(domain::DKG_PAYLOAD).u8(1).hash(&s.hash()).digest(),
            DkgPayload::Data { dealings, complaints } => {
                let mut e = Encoder::new(domain::DKG_PAYLOAD).u8(0).u64(dealings.len() as u64);
                for d in dealings {
                    e = e.bytes(&d.content.signing_bytes(&d.signer)).bytes(&d.signature);
                }
                e = e.u64(complaints.len() as u64);
                for c in complaints {
                    e = e.bytes(&c.content.signing_bytes(&c.signer)).bytes(&c.signature);
                }
                e.digest()
            }
        }
    }

    /// The summary, if this is a summary block's payload.
    pub fn summary(&self) -> Option<&DkgSummary> {
        match self {
            DkgPayload::Summary(s) => Some(s),
            DkgPayload::Data { .. } => None,
        }
    }

    /// Whether it carries nothing.
    pub fn is_empty(&self) -> bool {
        matches!(self, DkgPayload::Data { dealings, complaints } if dealings.is_empty() && complaints.is_empty())
    }
}

/// The last height of an interval at which a block may carry dealings: the
/// second half is left for complaints.
pub fn dealing_deadline(interval: Height, interval_length: u64) -> Height {
    Height(interval.0 + (interval_length / 2).max(1))
}

/// What the blocks of one interval (after its summary) carried, in chain
/// order.
#[derive(Clone, Debug, Default)]
pub struct IntervalContents<'a> {
    /// Dealings by (kind, dealer), with their hash, in chain order.
    pub dealings: Vec<(&'a SignedDealing, CryptoHash)>,
    /// (kind, dealer) of dealings with a complaint in the chain.
    pub complained: BTreeSet<(ThresholdKey, NodeId)>,
    /// (kind, dealer, complainer) of complaints in the chain.
    pub complaints: BTreeSet<(ThresholdKey, NodeId, NodeId)>,
}

impl<'a> IntervalContents<'a> {
    /// Collects the DKG payloads of `blocks` (any order; sorted here by
    /// height).
    pub fn collect(mut blocks: Vec<&'a crate::types::Block>) -> IntervalContents<'a> {
        blocks.sort_by_key(|b| b.height);
        let mut out = IntervalContents::default();
        for b in blocks {
            if let DkgPayload::Data { dealings, complaints } = &b.dkg {
                for d in dealings {
                    out.dealings.push((d, d.content.hash(&d.signer)));
                }
                for c in complaints {
                    out.complained.insert((c.content.kind, c.content.dealer));
                    out.complaints.insert((c.content.kind, c.content.dealer, c.signer));
                }
            }
        }
        out
    }

    /// The dealing of `dealer` for `kind`, if the chain has one.
    pub fn dealing(&self, kind: ThresholdKey, dealer: &NodeId) -> Option<(&'a SignedDealing, CryptoHash)> {
        self.dealings.iter().find(|(d, _)| d.content.kind == kind && d.signer == *dealer).copied()
    }
}

/// The summary of the interval starting at `height`, from the previous
/// summary and what the previous interval's blocks carried.
pub fn next_summary(
    crypto: &dyn ConsensusCrypto,
    previous: &DkgSummary,
    contents: &IntervalContents<'_>,
    height: Height,
    receivers: Vec<NodeId>,
) -> DkgSummary {
    let mut made = BTreeMap::new();
    for kind in [ThresholdKey::Low, ThresholdKey::High] {
        let config = previous.config(kind);
        let chosen: Vec<&SignedDealing> = contents
            .dealings
            .iter()
            .map(|(d, _)| *d)
            .filter(|d| d.content.kind == kind && !contents.complained.contains(&(kind, d.signer)))
            .take(config.dealings_needed())
            .collect();
        let transcript = if chosen.len() == config.dealings_needed() {
            let refs: Vec<(NodeId, &[u8])> = chosen.iter().map(|d| (d.signer, d.content.dealing.as_slice())).collect();
            crypto.create_transcript(&config, &refs).ok().map(|public_key| KeyTranscript {
                kind,
                dealt_in: previous.height,
                receivers: config.receivers.to_vec(),
                threshold: config.threshold as u32,
                public_key,
                dealings: chosen
                    .iter()
                    .map(|d| IncludedDealing {
                        dealer: d.signer,
                        dealer_index: config.dealer_index(&d.signer).unwrap_or(u32::MAX),
                        dealing: d.content.dealing.clone(),
                    })
                    .collect(),
                reshared_threshold: config.resharing.map(|t| t.threshold),
            })
        } else {
            None
        };
        made.insert(kind, transcript);
    }
    // Too few good dealings for either key: keep both keys one more
    // interval (the two keys always have the same holders, who make up the
    // interval's committee).
    let next = match (made.remove(&ThresholdKey::Low).flatten(), made.remove(&ThresholdKey::High).flatten()) {
        (Some(low), Some(high)) => KeyPair { low, high },
        _ => previous.next.clone(),
    };
    DkgSummary { height, current: previous.next.clone(), next, receivers }
}

/// Why a block's DKG payload is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DkgPayloadError {
    /// A summary block without the expected summary, or a data block with one.
    #[error("the block's key-generation summary is not the one the chain determines")]
    WrongSummary,
    /// A dealing or complaint that breaks a rule.
    #[error("{0}")]
    Invalid(String),
}

/// Checks the dealings and complaints of a data block at `height` in the
/// interval of `summary`, given what the interval's earlier blocks carried.
pub fn validate_data(
    crypto: &dyn ConsensusCrypto,
    summary: &DkgSummary,
    earlier: &IntervalContents<'_>,
    height: Height,
    interval_length: u64,
    dealings: &[SignedDealing],
    complaints: &[SignedComplaint],
) -> Result<(), DkgPayloadError> {
    let bad = |m: String| Err(DkgPayloadError::Invalid(m));
    if !dealings.is_empty() && height > dealing_deadline(summary.height, interval_length) {
        return bad(format!("dealings after the dealing deadline at height {height}"));
    }
    let mut seen = BTreeSet::new();
    for d in dealings {
        let (kind, dealer) = (d.content.kind, d.signer);
        if d.content.interval != summary.height {
            return bad(format!("a dealing of interval {} in interval {}", d.content.interval, summary.height));
        }
        let config = summary.config(kind);
        if config.dealer_index(&dealer).is_none() {
            return bad(format!("{dealer} is not a dealer of this interval"));
        }
        if earlier.dealing(kind, &dealer).is_some() || !seen.insert((kind, dealer)) {
            return bad(format!("a second dealing of {dealer} for the {kind:?} key"));
        }
        crypto
            .verify_basic(&dealer, &d.content.signing_bytes(&dealer), &d.signature)
            .map_err(|e| DkgPayloadError::Invalid(format!("dealing signature: {e}")))?;
        crypto
            .verify_dealing(&config, &dealer, &d.content.dealing)
            .map_err(|e| DkgPayloadError::Invalid(format!("dealing of {dealer}: {e}")))?;
    }
    let mut seen = BTreeSet::new();
    for c in complaints {
        let (kind, dealer, complainer) = (c.content.kind, c.content.dealer, c.signer);
        if c.content.interval != summary.height {
            return bad("a complaint of another interval".into());
        }
        let config = summary.config(kind);
        if config.receiver_index(&complainer).is_none() {
            return bad(format!("{complainer} receives nothing in this interval"));
        }
        let Some((dealing, hash)) = earlier.dealing(kind, &dealer) else {
            return bad(format!("a complaint against a dealing of {dealer} that the chain does not carry"));
        };
        if hash != c.content.dealing_hash {
            return bad("a complaint against another dealing than the chain's".into());
        }
        if earlier.complaints.contains(&(kind, dealer, complainer)) || !seen.insert((kind, dealer, complainer)) {
            return bad(format!("a second complaint of {complainer} against {dealer}"));
        }
        crypto
            .verify_basic(&complainer, &c.content.signing_bytes(&complainer), &c.signature)
            .map_err(|e| DkgPayloadError::Invalid(format!("complaint signature: {e}")))?;
        crypto
            .verify_complaint(&config, &dealer, &dealing.content.dealing, &complainer, &c.content.complaint)
            .map_err(|e| DkgPayloadError::Invalid(format!("complaint of {complainer}: {e}")))?;
    }
    Ok(())
}

/// The interval start at or below `h`.
pub fn interval_start(h: Height, interval_length: u64) -> Height {
    Height(h.0 - h.0 % interval_length.max(1))
}

/// The key signing at height `h`.
pub fn key_at(kind: ThresholdKey, h: Height, interval_length: u64) -> KeyId {
    KeyId { kind, interval: interval_start(h, interval_length) }
}
