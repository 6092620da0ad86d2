//! The cryptography consensus needs, behind one trait.
//!
//! Three schemes, as in the IC:
//! * **basic signatures** (Ed25519 node keys) on block proposals;
//! * **multi-signatures** (per-node BLS keys, aggregated) on notarizations
//!   and finalizations;
//! * **threshold signatures** (BLS, `f+1` of `n`) on random beacons and
//!   tapes; unique per message, so nobody can bias them.
//!
//! Two implementations: [`BlsCrypto`] (real keys from `cairn_crypto`) and
//! [`FakeCrypto`] (cheap hashes for simulations, which still rejects any
//! signature that its honest counterpart would not have produced, so
//! Byzantine tests stay meaningful).

use crate::committee::Membership;
use crate::dkg::{DealingConfig, DkgCrypto, DkgCryptoError, KeyTranscript};
use cairn_crypto::bls;
use cairn_crypto::node_key::{NodeSigningKey, verify_ed25519};
use cairn_types::NodeId;
use sha2::Digest as _;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Why a signature or share was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The signer has no key of the needed kind.
    #[error("node {0} has no key for this scheme")]
    UnknownSigner(NodeId),
    /// This node holds no key of the needed kind.
    #[error("this node holds no key for this scheme")]
    NoSecretKey,
    /// The bytes don't decode as a signature.
    #[error("malformed signature: {0}")]
    Malformed(String),
    /// The signature doesn't verify.
    #[error("signature verification failed")]
    VerificationFailed,
    /// Too few shares to combine.
    #[error("need {needed} shares, got {got}")]
    NotEnoughShares {
        /// The threshold.
        needed: usize,
        /// Shares given.
        got: usize,
    },
    /// A signer appears twice among the shares.
    #[error("share from {0} given twice")]
    DuplicateShare(NodeId),
    /// The key of that interval is not known here yet (its summary block
    /// is not finalized): try again later.
    #[error("key {0:?} is not loaded")]
    KeyNotLoaded(KeyId),
}

/// Which of the subnet's two threshold keys signs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum ThresholdKey {
    /// The low-threshold key (f + 1 of n): random beacon and random tape.
    Low,
    /// The high-threshold key (n − f of n): state certification and
    /// catch-up packages; its group key is the subnet's public key.
    High,
}

/// One interval's instance of a threshold key: keys are made anew every
/// interval (see [`crate::dkg`]), so a signature names the interval whose
/// key signs. The high key's group key is the same in every interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId {
    /// Low or high.
    pub kind: ThresholdKey,
    /// Start of the interval in which the key signs.
    pub interval: cairn_types::Height,
}

/// Signing and verification for consensus artifacts. All messages passed in
/// are already domain-separated canonical bytes. Key generation is part of
/// it ([`DkgCrypto`]).
pub trait ConsensusCrypto: DkgCrypto {
    /// The node these secret keys belong to.
    fn node_id(&self) -> NodeId;

    /// Signs with this node's basic-signature key (block proposals).
    fn sign_basic(&self, msg: &[u8]) -> Vec<u8>;
    /// Verifies `signer`'s basic signature.
    fn verify_basic(&self, signer: &NodeId, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError>;

    /// Signs a multi-signature share with this node's BLS key.
    fn sign_multi_share(&self, msg: &[u8]) -> Vec<u8>;
    /// Verifies `signer`'s multi-signature share.
    fn verify_multi_share(&self, signer: &NodeId, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError>;
    /// Aggregates verified shares (sorted by signer, distinct) into one signature.
    fn aggregate_multi(&self, msg: &[u8], shares: &[(NodeId, &[u8])]) -> Result<Vec<u8>, CryptoError>;
    /// Verifies an aggregate by exactly `signers`.
    fn verify_multi(&self, signers: &[NodeId], msg: &[u8], sig: &[u8]) -> Result<(), CryptoError>;

    /// Signs a threshold share; fails if this node holds no share.
    fn sign_threshold_share(&self, key: KeyId, msg: &[u8]) -> Result<Vec<u8>, CryptoError>;
    /// Verifies `signer`'s threshold share.
    fn verify_threshold_share(&self, key: KeyId, signer: &NodeId, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError>;
    /// Combines `threshold` verified shares into the unique group signature.
    fn combine_threshold(
        &self,
        key: KeyId,
        threshold: usize,
        msg: &[u8],
        shares: &[(NodeId, &[u8])],
    ) -> Result<Vec<u8>, CryptoError>;
    /// Verifies a combined threshold signature under the group key.
    fn verify_threshold(&self, key: KeyId, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError>;
}

impl<T: ConsensusCrypto + ?Sized> ConsensusCrypto for Box<T> {
    fn node_id(&self) -> NodeId {
        (**self).node_id()
    }
    fn sign_basic(&self, msg: &[u8]) -> Vec<u8> {
        (**self).sign_basic(msg)
    }
    fn verify_basic(&self, signer: &NodeId, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        (**self).verify_basic(signer, msg, sig)
    }
    fn sign_multi_share(&self, msg: &[u8]) -> Vec<u8> {
        (**self).sign_multi_share(msg)
    }
    fn verify_multi_share(&self, signer: &NodeId, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        (**self).verify_multi_share(signer, msg, sig)
    }
    fn aggregate_multi(&self, msg: &[u8], shares: &[(NodeId, &[u8])]) -> Result<Vec<u8>, CryptoError> {
        (**self).aggregate_multi(msg, shares)
    }
    fn verify_multi(&self, signers: &[NodeId], msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        (**self).verify_multi(signers, msg, sig)
    }
    fn sign_threshold_share(&self, key: KeyId, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        (**self).sign_threshold_share(key, msg)
    }
    fn verify_threshold_share(&self, key: KeyId, signer: &NodeId, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        (**self).verify_threshold_share(key, signer, msg, sig)
    }
    fn combine_threshold(
        &self,
        key: KeyId,
        threshold: usize,
        msg: &[u8],
        shares: &[(NodeId, &[u8])],
    ) -> Result<Vec<u8>, CryptoError> {
        (**self).combine_threshold(key, threshold, msg, shares)
    }
    fn verify_threshold(&self, key: KeyId, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        (**self).verify_threshold(key, msg, sig)
    }
}

impl<T: DkgCrypto + ?Sized> DkgCrypto for Box<T> {
    fn create_dealing(&self, config: &DealingConfig<'_>) -> Result<Vec<u8>, DkgCryptoError> {
        (**self).create_dealing(config)
    }
    fn verify_dealing(
        &self,
        config: &DealingConfig<'_>,
        dealer: &NodeId,
        dealing: &[u8],
    ) -> Result<(), DkgCryptoError> {
        (**self).verify_dealing(config, dealer, dealing)
    }
    fn complaint_against(&self, config: &DealingConfig<'_>, dealer: &NodeId, dealing: &[u8]) -> Option<Vec<u8>> {
        (**self).complaint_against(config, dealer, dealing)
    }
    fn verify_complaint(
        &self,
        config: &DealingConfig<'_>,
        dealer: &NodeId,
        dealing: &[u8],
        complainer: &NodeId,
        complaint: &[u8],
    ) -> Result<(), DkgCryptoError> {
        (**self).verify_complaint(config, dealer, dealing, complainer, complaint)
    }
    fn create_transcript(
        &self,
        config: &DealingConfig<'_>,
        dealings: &[(NodeId, &[u8])],
    ) -> Result<Vec<u8>, DkgCryptoError> {
        (**self).create_transcript(config, dealings)
    }
    fn load_transcript(&self, id: KeyId, transcript: &KeyTranscript) -> Result<(), DkgCryptoError> {
        (**self).load_transcript(id, transcript)
    }
    fn has_key(&self, id: KeyId) -> bool {
        (**self).has_key(id)
    }
    fn retain_keys_from(&self, interval: cairn_types::Height) {
        (**self).retain_keys_from(interval)
    }
}

fn check_distinct(shares: &[(NodeId, &[u8])]) -> Result<(), CryptoError> {
    let mut seen = std::collections::BTreeSet::new();
    for (n, _) in shares {
        if !seen.insert(*n) {
            return Err(CryptoError::DuplicateShare(*n));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Fake crypto
// ---------------------------------------------------------------------------

/// Deterministic hash-based "signatures" for simulations.
///
/// A signature is `SHA-256(scheme · key · signer · msg)`; an aggregate is a
/// hash of the message and the sorted signers; a threshold signature is a
/// hash of the key and the message alone (unique, like the real one). Anyone
/// could forge these, so they only model honest-but-faulty and Byzantine
/// nodes that produce *wrong* signatures (which are detected exactly like
/// real ones), not key theft. Aggregation and combination verify their
/// inputs, as a real aggregate of bad shares would fail verification.
///
/// Key generation is modelled too: a dealing is a commitment and one share
/// tag per receiver, a receiver whose tag is wrong complains with its index,
/// a fresh low key's public key hashes its dealers, and a reshared high key
/// keeps the public key of the key it reshares. A node holds a share of a
/// key only if it is a receiver and every dealing gave it a correct tag.
#[derive(Clone, Debug)]
pub struct FakeCrypto {
    me: NodeId,
    members: Arc<Membership>,
    keys: Arc<std::sync::RwLock<BTreeMap<KeyId, FakeKey>>>,
}

#[derive(Clone, Debug)]
struct FakeKey {
    public: Vec<u8>,
    receivers: Vec<NodeId>,
    threshold: usize,
    mine: bool,
}

const FAKE_SUBNET_KEY: &[u8] = b"fake-subnet-key";

impl FakeCrypto {
    /// Fake keys for `me` in a subnet of `members`.
    pub fn new(me: NodeId, members: Arc<Membership>) -> FakeCrypto {
        FakeCrypto { me, members, keys: Default::default() }
    }

    /// The genesis key transcripts of a subnet using fake crypto.
    pub fn genesis_summary(members: &Membership) -> crate::dkg::DkgSummary {
        let transcript = |kind, threshold: usize, public: &[u8]| KeyTranscript {
            kind,
            dealt_in: cairn_types::Height(0),
            receivers: members.nodes().to_vec(),
            threshold: threshold as u32,
            public_key: public.to_vec(),
            dealings: Vec::new(),
            reshared_threshold: None,
        };
        crate::dkg::DkgSummary::genesis(
            transcript(ThresholdKey::Low, members.beacon_threshold(), b"fake-genesis-low"),
            transcript(ThresholdKey::High, members.catch_up_threshold(), FAKE_SUBNET_KEY),
        )
    }

    fn hash(parts: &[&[u8]]) -> Vec<u8> {
        let mut h = sha2::Sha256::new();
        for p in parts {
            h.update((p.len() as u64).to_be_bytes());
            h.update(p);
        }
        h.finalize().to_vec()
    }

    fn sig(scheme: u8, key: &[u8], signer: &NodeId, msg: &[u8]) -> Vec<u8> {
        Self::hash(&[&[scheme], key, signer.as_slice(), msg])
    }

    fn check(&self, scheme: u8, signer: &NodeId, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        if !self.members.contains(signer) {
            return Err(CryptoError::UnknownSigner(*signer));
        }
        if sig.len() != 32 {
            return Err(CryptoError::Malformed(format!("fake signature of {} bytes", sig.len())));
        }
        if Self::sig(scheme, b"", signer, msg) == sig { Ok(()) } else { Err(CryptoError::VerificationFailed) }
    }

    fn multi(signers: &[NodeId], msg: &[u8]) -> Vec<u8> {
        let mut h = sha2::Sha256::new();
        h.update(b"multi");
        for s in signers {
            h.update([s.as_slice().len() as u8]);
            h.update(s.as_slice());
        }
        h.update(msg);
        h.finalize().to_vec()
    }

    fn key(&self, id: KeyId) -> Result<FakeKey, CryptoError> {
        self.keys.read().expect("fake key lock").get(&id).cloned().ok_or(CryptoError::KeyNotLoaded(id))
    }

    /// The group key: the high key's never changes; the low key's is the
    /// interval's transcript.
    fn group(&self, id: KeyId) -> Result<Vec<u8>, CryptoError> {
        match id.kind {
            ThresholdKey::High => Ok(FAKE_SUBNET_KEY.to_vec()),
            ThresholdKey::Low => Ok(self.key(id)?.public),
        }
    }

    fn threshold(group: &[u8], msg: &[u8]) -> Vec<u8> {
        Self::hash(&[b"threshold", group, msg])
    }

    fn share_tag(tag: &[u8], dealer: &NodeId, receiver: usize) -> Vec<u8> {
        Self::hash(&[b"fake-share", tag, dealer.as_slice(), &(receiver as u64).to_be_bytes()])
    }

    fn commitment(tag: &[u8], dealer: &NodeId) -> Vec<u8> {
        Self::hash(&[b"fake-dealing", tag, dealer.as_slice()])
    }

    /// The receiver's 32-byte tag in a dealing.
    fn tag_of(dealing: &[u8], receiver: usize) -> Option<&[u8]> {
        dealing.get(32 * (receiver + 1)..32 * (receiver + 2))
    }
}

const BASIC: u8 = 1;
const MULTI: u8 = 2;
const THRESHOLD_SHARE: u8 = 3;

impl ConsensusCrypto for FakeCrypto {
    fn node_id(&self) -> NodeId {
        self.me
    }
    fn sign_basic(&self, msg: &[u8]) -> Vec<u8> {
        Self::sig(BASIC, b"", &self.me, msg)
    }
    fn verify_basic(&self, signer: &NodeId, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        self.check(BASIC, signer, msg, sig)
    }
    fn sign_multi_share(&self, msg: &[u8]) -> Vec<u8> {
        Self::sig(MULTI, b"", &self.me, msg)
    }
    fn verify_multi_share(&self, signer: &NodeId, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        self.check(MULTI, signer, msg, sig)
    }
    fn aggregate_multi(&self, msg: &[u8], shares: &[(NodeId, &[u8])]) -> Result<Vec<u8>, CryptoError> {
        check_distinct(shares)?;
        for (n, s) in shares {
            self.verify_multi_share(n, msg, s)?;
        }
        let mut signers: Vec<NodeId> = shares.iter().map(|(n, _)| *n).collect();
        signers.sort();
        Ok(Self::multi(&signers, msg))
    }
    fn verify_multi(&self, signers: &[NodeId], msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        if let Some(s) = signers.iter().find(|s| !self.members.contains(s)) {
            return Err(CryptoError::UnknownSigner(*s));
        }
        if Self::multi(signers, msg) == sig { Ok(()) } else { Err(CryptoError::VerificationFailed) }
    }
    fn sign_threshold_share(&self, key: KeyId, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let k = self.key(key)?;
        if !k.mine {
            return Err(CryptoError::NoSecretKey);
        }
        Ok(Self::sig(THRESHOLD_SHARE, &k.public, &self.me, msg))
    }
    fn verify_threshold_share(&self, key: KeyId, signer: &NodeId, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        let k = self.key(key)?;
        if !k.receivers.contains(signer) {
            return Err(CryptoError::UnknownSigner(*signer));
        }
        if sig.len() != 32 {
            return Err(CryptoError::Malformed(format!("fake signature of {} bytes", sig.len())));
        }
        let ok = Self::sig(THRESHOLD_SHARE, &k.public, signer, msg) == sig;
        if ok { Ok(()) } else { Err(CryptoError::VerificationFailed) }
    }
    fn combine_threshold(
        &self,
        key: KeyId,
        threshold: usize,
        msg: &[u8],
        shares: &[(NodeId, &[u8])],
    ) -> Result<Vec<u8>, CryptoError> {
        check_distinct(shares)?;
        // As with real keys: fewer shares than the key's threshold make no
        // signature, whatever the caller thinks the threshold is.
        let threshold = threshold.max(self.key(key)?.threshold);
        if shares.len() < threshold {
            return Err(CryptoError::NotEnoughShares { needed: threshold, got: shares.len() });
        }
        for (n, s) in &shares[..threshold] {
            self.verify_threshold_share(key, n, msg, s)?;
        }
        Ok(Self::threshold(&self.group(key)?, msg))
    }
    fn verify_threshold(&self, key: KeyId, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        if Self::threshold(&self.group(key)?, msg) == sig { Ok(()) } else { Err(CryptoError::VerificationFailed) }
    }
}

impl DkgCrypto for FakeCrypto {
    fn create_dealing(&self, config: &DealingConfig<'_>) -> Result<Vec<u8>, DkgCryptoError> {
        if config.dealer_index(&self.me).is_none() {
            return Err(DkgCryptoError::MissingKey("not a dealer".into()));
        }
        let tag = config.tag();
        let mut out = Self::commitment(&tag, &self.me);
        for j in 0..config.receivers.len() {
            out.extend(Self::share_tag(&tag, &self.me, j));
        }
        Ok(out)
    }
    fn verify_dealing(
        &self,
        config: &DealingConfig<'_>,
        dealer: &NodeId,
        dealing: &[u8],
    ) -> Result<(), DkgCryptoError> {
        if dealing.len() != 32 * (config.receivers.len() + 1) {
            return Err(DkgCryptoError::Invalid("wrong length".into()));
        }
        if dealing[..32] != Self::commitment(&config.tag(), dealer)[..] {
            return Err(DkgCryptoError::Invalid("wrong commitment".into()));
        }
        Ok(())
    }
    fn complaint_against(&self, config: &DealingConfig<'_>, dealer: &NodeId, dealing: &[u8]) -> Option<Vec<u8>> {
        let j = config.receiver_index(&self.me)? as usize;
        let ok = Self::tag_of(dealing, j) == Some(&Self::share_tag(&config.tag(), dealer, j)[..]);
        (!ok).then(|| (j as u32).to_be_bytes().to_vec())
    }
    fn verify_complaint(
        &self,
        config: &DealingConfig<'_>,
        dealer: &NodeId,
        dealing: &[u8],
        complainer: &NodeId,
        complaint: &[u8],
    ) -> Result<(), DkgCryptoError> {
        let j = config.receiver_index(complainer).ok_or(DkgCryptoError::UnknownReceiver(*complainer))?;
        if complaint != j.to_be_bytes() {
            return Err(DkgCryptoError::Invalid("the complaint names another receiver".into()));
        }
        let j = j as usize;
        if Self::tag_of(dealing, j) == Some(&Self::share_tag(&config.tag(), dealer, j)[..]) {
            return Err(DkgCryptoError::Invalid("the complained-about share is correct".into()));
        }
        Ok(())
    }
    fn create_transcript(
        &self,
        config: &DealingConfig<'_>,
        dealings: &[(NodeId, &[u8])],
    ) -> Result<Vec<u8>, DkgCryptoError> {
        if dealings.len() != config.dealings_needed() {
            return Err(DkgCryptoError::Invalid("wrong number of dealings".into()));
        }
        match config.resharing {
            Some(current) => Ok(current.public_key.clone()),
            None => {
                let tag = config.tag();
                let mut parts: Vec<&[u8]> = vec![b"fake-low", &tag];
                for (dealer, _) in dealings {
                    parts.push(dealer.as_slice());
                }
                Ok(Self::hash(&parts))
            }
        }
    }
    fn load_transcript(&self, id: KeyId, transcript: &KeyTranscript) -> Result<(), DkgCryptoError> {
        let tag = crate::dkg::dealing_tag(transcript.dealt_in, transcript.kind);
        let mine = transcript.receivers.binary_search(&self.me).is_ok_and(|j| {
            transcript
                .dealings
                .iter()
                .all(|d| Self::tag_of(&d.dealing, j) == Some(&Self::share_tag(&tag, &d.dealer, j)[..]))
        });
        let key = FakeKey {
            public: transcript.public_key.clone(),
            receivers: transcript.receivers.clone(),
            threshold: transcript.threshold as usize,
            mine,
        };
        self.keys.write().expect("fake key lock").insert(id, key);
        Ok(())
    }
    fn has_key(&self, id: KeyId) -> bool {
        self.keys.read().expect("fake key lock").contains_key(&id)
    }
    fn retain_keys_from(&self, interval: cairn_types::Height) {
        self.keys.write().expect("fake key lock").retain(|id, _| id.interval >= interval);
    }
}

// ---------------------------------------------------------------------------
// Real crypto
// ---------------------------------------------------------------------------

/// Why subnet keys could not be assembled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeySetupError {
    /// A BLS operation failed.
    #[error("BLS: {0}")]
    Bls(#[from] bls::BlsError),
    /// The node list is unusable.
    #[error("membership: {0}")]
    Membership(#[from] crate::committee::MembershipError),
    /// A member lacks a key.
    #[error("node {0} has no {1} key")]
    MissingKey(NodeId, &'static str),
    /// A key's proof of possession failed (rogue-key defence).
    #[error("proof of possession of node {0}'s BLS key does not verify")]
    BadProofOfPossession(NodeId),
    /// The threshold key does not match the membership.
    #[error("threshold key needs {expected} shares, has threshold {actual}")]
    WrongThreshold {
        /// `f + 1` for the membership.
        expected: usize,
        /// The key's threshold.
        actual: usize,
    },
}

/// The public keys of a subnet, as the registry publishes them: node
/// signing keys, multi-signature keys and key-generation encryption keys
/// (both PoP-checked), and the genesis threshold keys (a trusted dealer's;
/// later intervals' keys come from the chain). Nodes that join later are
/// added with [`SubnetPublicKeys::add_node`].
#[derive(Debug)]
pub struct SubnetPublicKeys {
    membership: Membership,
    nodes: std::sync::RwLock<NodeKeys>,
    low: bls::PublicCoefficients,
    high: bls::PublicCoefficients,
}

/// Every known node's public keys.
#[derive(Debug, Default)]
struct NodeKeys {
    signing: BTreeMap<NodeId, [u8; 32]>,
    multisig: BTreeMap<NodeId, bls::PublicKey>,
    encryption: BTreeMap<NodeId, bls::PublicKey>,
}

impl SubnetPublicKeys {
    /// Assembles and checks the subnet's public keys. Threshold share `i`
    /// belongs to the `i`-th node in sorted order; the low threshold must be
    /// `f + 1`, the high one `n − f`.
    pub fn new(
        membership: Membership,
        signing_keys: BTreeMap<NodeId, [u8; 32]>,
        multisig_keys: BTreeMap<NodeId, (bls::PublicKey, bls::Signature)>,
        encryption_keys: BTreeMap<NodeId, (bls::PublicKey, bls::Signature)>,
        low_threshold_key: &bls::PublicCoefficients,
        high_threshold_key: &bls::PublicCoefficients,
    ) -> Result<SubnetPublicKeys, KeySetupError> {
        for (key, expected) in
            [(low_threshold_key, membership.beacon_threshold()), (high_threshold_key, membership.catch_up_threshold())]
        {
            if key.threshold() != expected {
                return Err(KeySetupError::WrongThreshold { expected, actual: key.threshold() });
            }
        }
        // Keys of every node given (members and nodes that may join later);
        // every genesis member must have them.
        let checked = |keys: &BTreeMap<NodeId, (bls::PublicKey, bls::Signature)>, what: &'static str| {
            if let Some(node) = membership.nodes().iter().find(|n| !keys.contains_key(n)) {
                return Err(KeySetupError::MissingKey(*node, what));
            }
            let mut out = BTreeMap::new();
            for (node, (pk, pop)) in keys {
                bls::verify_pop(pk, pop).map_err(|_| KeySetupError::BadProofOfPossession(*node))?;
                out.insert(*node, *pk);
            }
            Ok::<_, KeySetupError>(out)
        };
        let multisig_keys = checked(&multisig_keys, "multi-signature")?;
        let encryption_keys = checked(&encryption_keys, "key-generation encryption")?;
        if let Some(node) = membership.nodes().iter().find(|n| !signing_keys.contains_key(n)) {
            return Err(KeySetupError::MissingKey(*node, "signing"));
        }
        let nodes = NodeKeys { signing: signing_keys, multisig: multisig_keys, encryption: encryption_keys };
        Ok(SubnetPublicKeys {
            membership,
            nodes: std::sync::RwLock::new(nodes),
            low: low_threshold_key.clone(),
            high: high_threshold_key.clone(),
        })
    }

    /// Adds (or replaces) a node's public keys after checking the proofs of
    /// possession: a node that joins the subnet by a registry change.
    pub fn add_node(
        &self,
        node: NodeId,
        signing: [u8; 32],
        multisig: (bls::PublicKey, bls::Signature),
        encryption: (bls::PublicKey, bls::Signature),
    ) -> Result<(), KeySetupError> {
        for (pk, pop) in [&multisig, &encryption] {
            bls::verify_pop(pk, pop).map_err(|_| KeySetupError::BadProofOfPossession(node))?;
        }
        let mut nodes = self.nodes.write().expect("node keys lock");
        nodes.signing.insert(node, signing);
        nodes.multisig.insert(node, multisig.0);
        nodes.encryption.insert(node, encryption.0);
        Ok(())
    }

    fn signing_key(&self, node: &NodeId) -> Option<[u8; 32]> {
        self.nodes.read().expect("node keys lock").signing.get(node).copied()
    }

    fn multisig_key(&self, node: &NodeId) -> Option<bls::PublicKey> {
        self.nodes.read().expect("node keys lock").multisig.get(node).copied()
    }

    fn encryption_key(&self, node: &NodeId) -> Option<bls::PublicKey> {
        self.nodes.read().expect("node keys lock").encryption.get(node).copied()
    }

    /// The members these keys are for.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// The subnet's public key (the high-threshold group key; resharing
    /// keeps it in every interval).
    pub fn subnet_public_key(&self) -> bls::PublicKey {
        self.high.group_public_key()
    }

    /// The genesis summary: the trusted dealer's keys for the first two
    /// intervals.
    pub fn genesis_summary(&self) -> crate::dkg::DkgSummary {
        let transcript = |kind, key: &bls::PublicCoefficients| KeyTranscript {
            kind,
            dealt_in: cairn_types::Height(0),
            receivers: self.membership.nodes().to_vec(),
            threshold: key.threshold() as u32,
            public_key: key.to_bytes(),
            dealings: Vec::new(),
            reshared_threshold: None,
        };
        crate::dkg::DkgSummary::genesis(
            transcript(ThresholdKey::Low, &self.low),
            transcript(ThresholdKey::High, &self.high),
        )
    }
}

/// One node's secret keys.
#[derive(Clone, Debug)]
pub struct NodeSecretKeys {
    /// Ed25519 node signing key (proposals).
    pub signing: NodeSigningKey,
    /// BLS multi-signature key (notarization, finalization).
    pub multisig: bls::SecretKey,
    /// Decrypts this node's shares in dealings.
    pub encryption: bls::SecretKey,
    /// Share of the genesis low-threshold key (beacon, tape), if a member.
    pub threshold_share: Option<bls::SecretKey>,
    /// Share of the genesis high-threshold key (certification, catch-up
    /// packages), if a member.
    pub high_threshold_share: Option<bls::SecretKey>,
}

/// A whole subnet's keys from a trusted dealer: genesis of a local network
/// and tests. `secrets[i]` belongs to `public.membership().nodes()[i]`.
#[derive(Clone, Debug)]
pub struct SubnetKeys {
    /// The public keys everyone verifies with.
    pub public: Arc<SubnetPublicKeys>,
    /// Each node's secret keys, in sorted node-id order.
    pub secrets: Vec<NodeSecretKeys>,
}

/// Derives a subnet of `n` nodes and all its keys from `seed`
/// (deterministic: the same seed gives the same node ids and keys).
pub fn generate_subnet_keys(seed: [u8; 32], n: usize) -> Result<SubnetKeys, KeySetupError> {
    generate_subnet_keys_with(seed, n, n)
}

/// Like [`generate_subnet_keys`], but only the first `members` nodes (in
/// node-id order) are genesis members with shares of the genesis keys; the
/// others have node keys only (they can join later).
pub fn generate_subnet_keys_with(seed: [u8; 32], n: usize, members: usize) -> Result<SubnetKeys, KeySetupError> {
    let derive = |tag: &[u8], i: usize| -> [u8; 32] {
        let mut h = sha2::Sha256::new();
        h.update(b"cairn-consensus-test-keys");
        h.update(seed);
        h.update(tag);
        h.update((i as u64).to_be_bytes());
        h.finalize().into()
    };
    let mut signing: Vec<NodeSigningKey> = (0..n).map(|i| NodeSigningKey::from_seed(derive(b"node", i))).collect();
    signing.sort_by_key(|k| k.node_id());
    let members = members.clamp(1, n);
    let membership = Membership::new(signing.iter().take(members).map(|k| k.node_id()))?;
    let (coefficients, shares) =
        bls::generate_threshold_keys(derive(b"threshold", 0), membership.beacon_threshold(), members)?;
    let (high_coefficients, high_shares) =
        bls::generate_threshold_keys(derive(b"high-threshold", 0), membership.catch_up_threshold(), members)?;
    let mut shares = shares.into_iter().map(Some).chain(std::iter::repeat(None));
    let mut high_shares = high_shares.into_iter().map(Some).chain(std::iter::repeat(None));
    let mut signing_keys = BTreeMap::new();
    let mut multisig_keys = BTreeMap::new();
    let mut encryption_keys = BTreeMap::new();
    let mut secrets = Vec::with_capacity(n);
    for (i, key) in signing.into_iter().enumerate() {
        let (share, high) = (shares.next().flatten(), high_shares.next().flatten());
        let multisig = bls::SecretKey::from_seed(derive(b"multisig", i));
        let encryption = bls::SecretKey::from_seed(derive(b"encryption", i));
        signing_keys.insert(key.node_id(), key.public_key_bytes());
        multisig_keys.insert(key.node_id(), (multisig.public_key(), bls::create_pop(&multisig)));
        encryption_keys.insert(key.node_id(), (encryption.public_key(), bls::create_pop(&encryption)));
        secrets.push(NodeSecretKeys {
            signing: key,
            multisig,
            encryption,
            threshold_share: share,
            high_threshold_share: high,
        });
    }
    let public = SubnetPublicKeys::new(
        membership,
        signing_keys,
        multisig_keys,
        encryption_keys,
        &coefficients,
        &high_coefficients,
    )?;
    Ok(SubnetKeys { public: Arc::new(public), secrets })
}

/// One interval's threshold key as a node holds it.
#[derive(Debug)]
pub struct LoadedKey {
    /// Shares needed.
    pub threshold: usize,
    /// The group key.
    pub group: bls::PublicKey,
    /// Share holders in share-index order.
    pub receivers: Vec<NodeId>,
    /// Each holder's public share.
    pub public_shares: BTreeMap<NodeId, bls::PublicKey>,
    /// This node's share, if it holds one.
    pub share: Option<bls::SecretKey>,
    coefficients: bls::PublicCoefficients,
}

/// The threshold keys of recent intervals, shared between consensus (which
/// loads them from summary blocks) and certification (which signs state
/// with the high key of each height's interval).
#[derive(Debug)]
pub struct ThresholdKeyStore {
    subnet_key: bls::PublicKey,
    keys: std::sync::RwLock<BTreeMap<KeyId, Arc<LoadedKey>>>,
}

impl ThresholdKeyStore {
    /// The key of `id`, if loaded.
    pub fn get(&self, id: KeyId) -> Option<Arc<LoadedKey>> {
        self.keys.read().expect("key store lock").get(&id).cloned()
    }

    /// The subnet's public key (constant across intervals).
    pub fn subnet_key(&self) -> bls::PublicKey {
        self.subnet_key
    }
}

/// Consensus crypto with real keys: Ed25519 proposals, BLS multi-signatures,
/// threshold BLS beacons and tapes, and key generation with
/// `cairn_crypto::dkg` (all via `cairn_crypto`).
#[derive(Clone, Debug)]
pub struct BlsCrypto {
    me: NodeId,
    secrets: NodeSecretKeys,
    public: Arc<SubnetPublicKeys>,
    keys: Arc<ThresholdKeyStore>,
}

impl BlsCrypto {
    /// Crypto for the node owning `secrets`.
    pub fn new(secrets: NodeSecretKeys, public: Arc<SubnetPublicKeys>) -> BlsCrypto {
        let keys = Arc::new(ThresholdKeyStore { subnet_key: public.subnet_public_key(), keys: Default::default() });
        BlsCrypto { me: secrets.signing.node_id(), secrets, public, keys }
    }

    /// The subnet's public keys (nodes that join are added here).
    pub fn public_keys(&self) -> &Arc<SubnetPublicKeys> {
        &self.public
    }

    /// The interval keys this node loaded (for certification).
    pub fn key_store(&self) -> Arc<ThresholdKeyStore> {
        self.keys.clone()
    }

    fn bls_sig(sig: &[u8]) -> Result<bls::Signature, CryptoError> {
        bls::Signature::from_bytes(sig).map_err(|e| CryptoError::Malformed(e.to_string()))
    }

    fn key(&self, id: KeyId) -> Result<Arc<LoadedKey>, CryptoError> {
        self.keys.get(id).ok_or(CryptoError::KeyNotLoaded(id))
    }

    fn encryption_keys(&self, receivers: &[NodeId]) -> Result<Vec<bls::PublicKey>, DkgCryptoError> {
        receivers.iter().map(|r| self.public.encryption_key(r).ok_or(DkgCryptoError::UnknownReceiver(*r))).collect()
    }

    /// Randomness for this node's dealings and proofs: derived from its
    /// secret keys (unknown to anyone else) and what it is for, so it needs
    /// no random source and a restarted node deals the same again.
    fn secret_seed(&self, purpose: &[u8], tag: &[u8], other: &NodeId) -> [u8; 32] {
        let mut h = sha2::Sha256::new();
        h.update(b"cairn-dkg-seed");
        h.update(self.secrets.encryption.to_bytes());
        h.update(self.secrets.multisig.to_bytes());
        for part in [purpose, tag, other.as_slice()] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        h.finalize().into()
    }

    fn coefficients(&self, transcript: &KeyTranscript) -> Result<bls::PublicCoefficients, DkgCryptoError> {
        bls::PublicCoefficients::from_bytes(&transcript.public_key)
            .map_err(|e| DkgCryptoError::Invalid(format!("transcript key: {e}")))
    }

    fn parse_dealing(dealing: &[u8]) -> Result<cairn_crypto::dkg::Dealing, DkgCryptoError> {
        cairn_crypto::dkg::Dealing::from_bytes(dealing).map_err(|e| DkgCryptoError::Invalid(e.to_string()))
    }

    /// This node's share of `transcript`, opened from its dealings (or the
    /// genesis secrets); `None` if it is no receiver or a dealing gave it a
    /// wrong share.
    fn open_share(
        &self,
        transcript: &KeyTranscript,
        coefficients: &bls::PublicCoefficients,
    ) -> Result<Option<bls::SecretKey>, DkgCryptoError> {
        let Ok(me) = transcript.receivers.binary_search(&self.me) else { return Ok(None) };
        let share = if transcript.dealings.is_empty() {
            let genesis = match transcript.kind {
                ThresholdKey::Low => &self.secrets.threshold_share,
                ThresholdKey::High => &self.secrets.high_threshold_share,
            };
            genesis.clone()
        } else {
            let tag = crate::dkg::dealing_tag(transcript.dealt_in, transcript.kind);
            let receivers = self.encryption_keys(&transcript.receivers)?;
            let mut shares = Vec::with_capacity(transcript.dealings.len());
            for d in &transcript.dealings {
                let ctx = cairn_crypto::dkg::DealingContext {
                    tag: &tag,
                    dealer: d.dealer_index,
                    receivers: &receivers,
                    threshold: transcript.threshold as usize,
                };
                let dealing = Self::parse_dealing(&d.dealing)?;
                let seed = self.secret_seed(b"open", &tag, &d.dealer);
                match cairn_crypto::dkg::open_share(&ctx, &dealing, me as u32, &self.secrets.encryption, seed) {
                    Ok(s) => shares.push((d.dealer_index, s)),
                    Err(_) => return Ok(None),
                }
            }
            let how = match transcript.reshared_threshold {
                Some(t) => cairn_crypto::dkg::Combination::Resharing { current_threshold: t as usize },
                None => cairn_crypto::dkg::Combination::Fresh,
            };
            cairn_crypto::dkg::combine_shares(&shares, how).ok()
        };
        // A share that does not match the public key is no share.
        Ok(share.filter(|s| s.public_key() == coefficients.public_share(me as bls::NodeIndex)))
    }

    fn dealing_context<'a>(
        config: &DealingConfig<'_>,
        dealer: &NodeId,
        tag: &'a [u8],
        receivers: &'a [bls::PublicKey],
    ) -> Result<cairn_crypto::dkg::DealingContext<'a>, DkgCryptoError> {
        let dealer = config.dealer_index(dealer).ok_or(DkgCryptoError::Invalid(format!("{dealer} is no dealer")))?;
        Ok(cairn_crypto::dkg::DealingContext { tag, dealer, receivers, threshold: config.threshold })
    }
}

fn bls_result(r: Result<(), bls::BlsError>) -> Result<(), CryptoError> {
    r.map_err(|_| CryptoError::VerificationFailed)
}

impl ConsensusCrypto for BlsCrypto {
    fn node_id(&self) -> NodeId {
        self.me
    }

    fn sign_basic(&self, msg: &[u8]) -> Vec<u8> {
        self.secrets.signing.sign(msg).to_vec()
    }

    fn verify_basic(&self, signer: &NodeId, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        let key = self.public.signing_key(signer).ok_or(CryptoError::UnknownSigner(*signer))?;
        verify_ed25519(&key, msg, sig).map_err(|_| CryptoError::VerificationFailed)
    }

    fn sign_multi_share(&self, msg: &[u8]) -> Vec<u8> {
        self.secrets.multisig.sign(msg).to_bytes().to_vec()
    }

    fn verify_multi_share(&self, signer: &NodeId, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        let key = self.public.multisig_key(signer).ok_or(CryptoError::UnknownSigner(*signer))?;
        bls_result(key.verify(msg, &Self::bls_sig(sig)?))
    }

    fn aggregate_multi(&self, _msg: &[u8], shares: &[(NodeId, &[u8])]) -> Result<Vec<u8>, CryptoError> {
        check_distinct(shares)?;
        let sigs = shares.iter().map(|(_, s)| Self::bls_sig(s)).collect::<Result<Vec<_>, _>>()?;
        let agg = bls::aggregate_signatures(&sigs).map_err(|e| CryptoError::Malformed(e.to_string()))?;
        Ok(agg.to_bytes().to_vec())
    }

    fn verify_multi(&self, signers: &[NodeId], msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        let keys = signers
            .iter()
            .map(|s| self.public.multisig_key(s).ok_or(CryptoError::UnknownSigner(*s)))
            .collect::<Result<Vec<_>, _>>()?;
        bls_result(bls::verify_multi(&keys, msg, &Self::bls_sig(sig)?))
    }

    fn sign_threshold_share(&self, key: KeyId, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let key = self.key(key)?;
        let share = key.share.as_ref().ok_or(CryptoError::NoSecretKey)?;
        Ok(bls::sign_share(share, msg).to_bytes().to_vec())
    }

    fn verify_threshold_share(&self, key: KeyId, signer: &NodeId, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        let key = self.key(key)?;
        let public = key.public_shares.get(signer).ok_or(CryptoError::UnknownSigner(*signer))?;
        bls_result(public.verify(msg, &Self::bls_sig(sig)?))
    }

    fn combine_threshold(
        &self,
        key: KeyId,
        threshold: usize,
        _msg: &[u8],
        shares: &[(NodeId, &[u8])],
    ) -> Result<Vec<u8>, CryptoError> {
        check_distinct(shares)?;
        let key = self.key(key)?;
        // Interpolating fewer shares than the key's threshold gives a wrong
        // signature: refuse rather than produce it.
        let threshold = threshold.max(key.threshold);
        if shares.len() < threshold {
            return Err(CryptoError::NotEnoughShares { needed: threshold, got: shares.len() });
        }
        let indexed = shares
            .iter()
            .map(|(n, s)| {
                let i = key.receivers.binary_search(n).map_err(|_| CryptoError::UnknownSigner(*n))?;
                Ok((i as bls::NodeIndex, Self::bls_sig(s)?))
            })
            .collect::<Result<Vec<_>, CryptoError>>()?;
        let sig = bls::combine(threshold, &indexed).map_err(|e| CryptoError::Malformed(e.to_string()))?;
        Ok(sig.to_bytes().to_vec())
    }

    fn verify_threshold(&self, key: KeyId, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        let group = match key.kind {
            ThresholdKey::High => self.keys.subnet_key,
            ThresholdKey::Low => self.key(key)?.group,
        };
        bls_result(group.verify(msg, &Self::bls_sig(sig)?))
    }
}

impl DkgCrypto for BlsCrypto {
    fn create_dealing(&self, config: &DealingConfig<'_>) -> Result<Vec<u8>, DkgCryptoError> {
        let tag = config.tag();
        let receivers = self.encryption_keys(config.receivers)?;
        let ctx = Self::dealing_context(config, &self.me, &tag, &receivers)?;
        let secret = match config.resharing {
            Some(_) => {
                let current = self
                    .keys
                    .get(KeyId { kind: config.kind, interval: config.interval })
                    .and_then(|k| k.share.clone())
                    .ok_or(DkgCryptoError::MissingKey("no share of the key to reshare".into()))?;
                Some(current)
            }
            None => None,
        };
        let seed = self.secret_seed(b"deal", &tag, &self.me);
        let dealing =
            cairn_crypto::dkg::deal(&ctx, secret.as_ref(), seed).map_err(|e| DkgCryptoError::Invalid(e.to_string()))?;
        Ok(dealing.to_bytes())
    }

    fn verify_dealing(
        &self,
        config: &DealingConfig<'_>,
        dealer: &NodeId,
        dealing: &[u8],
    ) -> Result<(), DkgCryptoError> {
        let tag = config.tag();
        let receivers = self.encryption_keys(config.receivers)?;
        let ctx = Self::dealing_context(config, dealer, &tag, &receivers)?;
        let current = match config.resharing {
            Some(t) => match self.keys.get(KeyId { kind: config.kind, interval: config.interval }) {
                Some(k) if k.receivers == t.receivers => Some(k.coefficients.clone()),
                _ => Some(self.coefficients(t)?),
            },
            None => None,
        };
        cairn_crypto::dkg::verify_dealing(&ctx, &Self::parse_dealing(dealing)?, current.as_ref())
            .map_err(|e| DkgCryptoError::Invalid(e.to_string()))
    }

    fn complaint_against(&self, config: &DealingConfig<'_>, dealer: &NodeId, dealing: &[u8]) -> Option<Vec<u8>> {
        let me = config.receiver_index(&self.me)?;
        let tag = config.tag();
        let receivers = self.encryption_keys(config.receivers).ok()?;
        let ctx = Self::dealing_context(config, dealer, &tag, &receivers).ok()?;
        let dealing = Self::parse_dealing(dealing).ok()?;
        let seed = self.secret_seed(b"complain", &tag, dealer);
        match cairn_crypto::dkg::open_share(&ctx, &dealing, me, &self.secrets.encryption, seed) {
            Ok(_) => None,
            Err(complaint) => Some(complaint.to_bytes()),
        }
    }

    fn verify_complaint(
        &self,
        config: &DealingConfig<'_>,
        dealer: &NodeId,
        dealing: &[u8],
        complainer: &NodeId,
        complaint: &[u8],
    ) -> Result<(), DkgCryptoError> {
        let tag = config.tag();
        let receivers = self.encryption_keys(config.receivers)?;
        let ctx = Self::dealing_context(config, dealer, &tag, &receivers)?;
        let complaint =
            cairn_crypto::dkg::Complaint::from_bytes(complaint).map_err(|e| DkgCryptoError::Invalid(e.to_string()))?;
        if Some(complaint.receiver) != config.receiver_index(complainer) {
            return Err(DkgCryptoError::Invalid("the complaint names another receiver".into()));
        }
        match cairn_crypto::dkg::verify_complaint(&ctx, &Self::parse_dealing(dealing)?, &complaint) {
            Ok(true) => Ok(()),
            Ok(false) => Err(DkgCryptoError::Invalid("the complained-about share is correct".into())),
            Err(e) => Err(DkgCryptoError::Invalid(e.to_string())),
        }
    }

    fn create_transcript(
        &self,
        config: &DealingConfig<'_>,
        dealings: &[(NodeId, &[u8])],
    ) -> Result<Vec<u8>, DkgCryptoError> {
        let parsed = dealings
            .iter()
            .map(|(dealer, d)| {
                let i = config.dealer_index(dealer).ok_or(DkgCryptoError::Invalid(format!("{dealer} is no dealer")))?;
                Ok((i, Self::parse_dealing(d)?))
            })
            .collect::<Result<Vec<_>, DkgCryptoError>>()?;
        let refs: Vec<(bls::NodeIndex, &cairn_crypto::dkg::Dealing)> = parsed.iter().map(|(i, d)| (*i, d)).collect();
        let how = match config.resharing {
            Some(t) => cairn_crypto::dkg::Combination::Resharing { current_threshold: t.threshold as usize },
            None => cairn_crypto::dkg::Combination::Fresh,
        };
        let coefficients =
            cairn_crypto::dkg::combine_commitments(&refs, how).map_err(|e| DkgCryptoError::Invalid(e.to_string()))?;
        Ok(coefficients.to_bytes())
    }

    fn load_transcript(&self, id: KeyId, transcript: &KeyTranscript) -> Result<(), DkgCryptoError> {
        if self.keys.get(id).is_some() {
            return Ok(());
        }
        let coefficients = self.coefficients(transcript)?;
        // The public part is loaded whatever happens to this node's share
        // (without it the node could not even verify the interval).
        let share = self.open_share(transcript, &coefficients).ok().flatten();
        let public_shares = transcript
            .receivers
            .iter()
            .enumerate()
            .map(|(i, n)| (*n, coefficients.public_share(i as bls::NodeIndex)))
            .collect();
        let key = LoadedKey {
            threshold: transcript.threshold as usize,
            group: coefficients.group_public_key(),
            receivers: transcript.receivers.clone(),
            public_shares,
            share,
            coefficients,
        };
        self.keys.keys.write().expect("key store lock").insert(id, Arc::new(key));
        Ok(())
    }

    fn has_key(&self, id: KeyId) -> bool {
        self.keys.get(id).is_some()
    }

    fn retain_keys_from(&self, interval: cairn_types::Height) {
        self.keys.keys.write().expect("key store lock").retain(|id, _| id.interval >= interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dkg::DkgSummary;
    use cairn_types::Height;

    const LOW: KeyId = KeyId { kind: ThresholdKey::Low, interval: Height(0) };
    const HIGH: KeyId = KeyId { kind: ThresholdKey::High, interval: Height(0) };

    fn load(all: &[Box<dyn ConsensusCrypto>], summary: &DkgSummary, interval: Height) {
        for c in all {
            for kind in [ThresholdKey::Low, ThresholdKey::High] {
                c.load_transcript(KeyId { kind, interval }, summary.current.get(kind)).unwrap();
            }
        }
    }

    fn check_scheme(all: &[Box<dyn ConsensusCrypto>], threshold: usize) {
        let msg = b"message";
        let a = &all[0];
        let b = &all[1];
        // Basic.
        let s = a.sign_basic(msg);
        assert_eq!(b.verify_basic(&a.node_id(), msg, &s), Ok(()));
        assert!(b.verify_basic(&b.node_id(), msg, &s).is_err(), "wrong signer");
        assert!(b.verify_basic(&a.node_id(), b"other", &s).is_err(), "wrong message");
        // Multi.
        let shares: Vec<(NodeId, Vec<u8>)> = all.iter().map(|c| (c.node_id(), c.sign_multi_share(msg))).collect();
        for (n, s) in &shares {
            assert_eq!(b.verify_multi_share(n, msg, s), Ok(()));
        }
        assert!(b.verify_multi_share(&shares[0].0, msg, &shares[1].1).is_err());
        let mut sorted: Vec<(NodeId, &[u8])> = shares.iter().map(|(n, s)| (*n, s.as_slice())).collect();
        sorted.sort_by_key(|(n, _)| *n);
        let agg = a.aggregate_multi(msg, &sorted).unwrap();
        let signers: Vec<NodeId> = sorted.iter().map(|(n, _)| *n).collect();
        assert_eq!(b.verify_multi(&signers, msg, &agg), Ok(()));
        assert!(b.verify_multi(&signers[1..], msg, &agg).is_err(), "signer set must match");
        assert!(b.verify_multi(&signers, b"other", &agg).is_err());
        // Threshold: any `threshold` shares give the same signature.
        for (key, threshold) in [(LOW, threshold), (HIGH, all.len() - (all.len() - 1) / 3)] {
            let tshares: Vec<(NodeId, Vec<u8>)> =
                all.iter().map(|c| (c.node_id(), c.sign_threshold_share(key, msg).unwrap())).collect();
            for (n, s) in &tshares {
                assert_eq!(b.verify_threshold_share(key, n, msg, s), Ok(()));
            }
            assert!(b.verify_threshold_share(key, &tshares[0].0, msg, &tshares[1].1).is_err());
            let refs: Vec<(NodeId, &[u8])> = tshares.iter().map(|(n, s)| (*n, s.as_slice())).collect();
            let s1 = a.combine_threshold(key, threshold, msg, &refs[..threshold]).unwrap();
            let s2 = b.combine_threshold(key, threshold, msg, &refs[refs.len() - threshold..]).unwrap();
            assert_eq!(s1, s2, "threshold signatures are unique");
            assert_eq!(b.verify_threshold(key, msg, &s1), Ok(()));
            assert!(b.verify_threshold(key, b"other", &s1).is_err());
            let other_key = if key == LOW { HIGH } else { LOW };
            assert!(b.verify_threshold(other_key, msg, &s1).is_err(), "the two keys are independent");
            assert!(matches!(
                a.combine_threshold(key, threshold, msg, &refs[..threshold - 1]),
                Err(CryptoError::NotEnoughShares { .. })
            ));
        }
        // Keys of an interval not loaded can't sign or verify yet.
        let later = KeyId { kind: ThresholdKey::Low, interval: Height(100) };
        assert_eq!(a.sign_threshold_share(later, msg), Err(CryptoError::KeyNotLoaded(later)));
    }

    /// One interval of key generation among `all`: every node deals both
    /// keys, one dealer (if `cheat`) gives the last receiver a wrong share,
    /// the receiver's complaint convicts it, and the transcripts made from
    /// the others' dealings load; returns the next summary.
    fn run_interval(all: &[Box<dyn ConsensusCrypto>], summary: &DkgSummary, cheat: Option<usize>) -> DkgSummary {
        let mut next = summary.clone();
        next.height = Height(summary.height.0 + 10);
        next.current = summary.next.clone();
        for kind in [ThresholdKey::Low, ThresholdKey::High] {
            let config = summary.config(kind);
            let mut dealings = Vec::new();
            for (i, c) in all.iter().enumerate() {
                let mut d = c.create_dealing(&config).unwrap();
                if cheat == Some(i) {
                    *d.last_mut().unwrap() ^= 1;
                }
                for v in all {
                    v.verify_dealing(&config, &c.node_id(), &d).unwrap();
                }
                dealings.push((c.node_id(), d));
            }
            let last = all.last().unwrap();
            let mut excluded = Vec::new();
            for (dealer, d) in &dealings {
                if let Some(complaint) = last.complaint_against(&config, dealer, d) {
                    all[0].verify_complaint(&config, dealer, d, &last.node_id(), &complaint).unwrap();
                    // Someone else can't reuse the complaint.
                    assert!(all[0].verify_complaint(&config, dealer, d, &all[0].node_id(), &complaint).is_err());
                    excluded.push(*dealer);
                }
            }
            assert_eq!(excluded.len(), usize::from(cheat.is_some()), "exactly the cheater is convicted");
            for (dealer, d) in &dealings {
                if !excluded.contains(dealer) {
                    assert!(all[1].complaint_against(&config, dealer, d).is_none());
                }
            }
            let chosen: Vec<(NodeId, &[u8])> = dealings
                .iter()
                .filter(|(n, _)| !excluded.contains(n))
                .take(config.dealings_needed())
                .map(|(n, d)| (*n, d.as_slice()))
                .collect();
            let public_key = all[0].create_transcript(&config, &chosen).unwrap();
            assert_eq!(all[1].create_transcript(&config, &chosen).unwrap(), public_key, "deterministic");
            let transcript = KeyTranscript {
                kind,
                dealt_in: summary.height,
                receivers: config.receivers.to_vec(),
                threshold: config.threshold as u32,
                public_key,
                dealings: chosen
                    .iter()
                    .map(|(n, d)| crate::dkg::IncludedDealing {
                        dealer: *n,
                        dealer_index: config.dealer_index(n).unwrap(),
                        dealing: d.to_vec(),
                    })
                    .collect(),
                reshared_threshold: config.resharing.map(|t| t.threshold),
            };
            match kind {
                ThresholdKey::Low => next.next.low = transcript,
                ThresholdKey::High => next.next.high = transcript,
            }
        }
        next
    }

    fn check_key_generation(all: &[Box<dyn ConsensusCrypto>], genesis: DkgSummary) {
        load(all, &genesis, Height(0));
        let msg = b"certified state";
        let sign = |key: KeyId| {
            let shares: Vec<(NodeId, Vec<u8>)> =
                all.iter().map(|c| (c.node_id(), c.sign_threshold_share(key, msg).unwrap())).collect();
            let refs: Vec<(NodeId, &[u8])> = shares.iter().map(|(n, s)| (*n, s.as_slice())).collect();
            let threshold = all[0].has_key(key).then(|| if key.kind == ThresholdKey::Low { 2 } else { 3 }).unwrap();
            all[0].combine_threshold(key, threshold, msg, &refs[refs.len() - threshold..]).unwrap()
        };
        let genesis_high = sign(HIGH);
        let genesis_low = sign(LOW);
        let mut summary = genesis;
        for (round, cheat) in [None, Some(2), None].into_iter().enumerate() {
            // As consensus does: a summary's current keys sign in its own
            // interval (and are reshared there), its next ones after.
            load(all, &summary, summary.height);
            let next = run_interval(all, &summary, cheat);
            let interval = Height(10 * (round as u64 + 2));
            for c in all {
                for kind in [ThresholdKey::Low, ThresholdKey::High] {
                    c.load_transcript(KeyId { kind, interval }, next.next.get(kind)).unwrap();
                }
            }
            let high = KeyId { kind: ThresholdKey::High, interval };
            let low = KeyId { kind: ThresholdKey::Low, interval };
            // Resharing: new shares, the same subnet key and signature.
            assert_eq!(sign(high), genesis_high, "the subnet key survives resharing");
            assert_eq!(all[1].verify_threshold(high, msg, &genesis_high), Ok(()));
            // Fresh low key: a different signature.
            let low_sig = sign(low);
            assert_ne!(low_sig, genesis_low, "the beacon key is new");
            assert!(all[1].verify_threshold(LOW, msg, &low_sig).is_err());
            assert_eq!(all[1].verify_threshold(low, msg, &low_sig), Ok(()));
            if let Some(i) = cheat {
                assert!(next.next.high.dealers().all(|d| d != all[i].node_id()), "the cheater's dealing is out");
            }
            summary = next;
        }
        all[0].retain_keys_from(Height(40));
        assert!(!all[0].has_key(LOW));
        assert!(all[0].has_key(KeyId { kind: ThresholdKey::Low, interval: Height(40) }));
    }

    #[test]
    fn fake_crypto_behaves_like_a_signature_scheme() {
        let keys = generate_subnet_keys([1; 32], 4).unwrap();
        let m = Arc::new(keys.public.membership().clone());
        let all: Vec<Box<dyn ConsensusCrypto>> =
            m.nodes().iter().map(|n| Box::new(FakeCrypto::new(*n, m.clone())) as Box<dyn ConsensusCrypto>).collect();
        load(&all, &FakeCrypto::genesis_summary(&m), Height(0));
        check_scheme(&all, 2);
        // A bad share poisons the combination, as it would with real BLS.
        let msg = b"m";
        let good = all[0].sign_threshold_share(LOW, msg).unwrap();
        let bad = vec![0u8; 32];
        let shares = [(all[0].node_id(), good.as_slice()), (all[1].node_id(), bad.as_slice())];
        assert!(all[2].combine_threshold(LOW, 2, msg, &shares).is_err());
    }

    #[test]
    fn bls_crypto_behaves_like_a_signature_scheme() {
        let keys = generate_subnet_keys([2; 32], 4).unwrap();
        let all: Vec<Box<dyn ConsensusCrypto>> = keys
            .secrets
            .iter()
            .map(|s| Box::new(BlsCrypto::new(s.clone(), keys.public.clone())) as Box<dyn ConsensusCrypto>)
            .collect();
        assert_eq!(all.iter().map(|c| c.node_id()).collect::<Vec<_>>(), keys.public.membership().nodes());
        load(&all, &keys.public.genesis_summary(), Height(0));
        check_scheme(&all, 2);
        assert!(all[0].verify_threshold_share(LOW, &all[0].node_id(), b"m", &[1, 2, 3]).is_err());
    }

    #[test]
    fn fake_key_generation_reshares_the_high_key_and_convicts_a_cheating_dealer() {
        let keys = generate_subnet_keys([4; 32], 4).unwrap();
        let m = Arc::new(keys.public.membership().clone());
        let all: Vec<Box<dyn ConsensusCrypto>> =
            m.nodes().iter().map(|n| Box::new(FakeCrypto::new(*n, m.clone())) as Box<dyn ConsensusCrypto>).collect();
        check_key_generation(&all, FakeCrypto::genesis_summary(&m));
    }

    #[test]
    fn bls_key_generation_reshares_the_high_key_and_convicts_a_cheating_dealer() {
        let keys = generate_subnet_keys([5; 32], 4).unwrap();
        let all: Vec<Box<dyn ConsensusCrypto>> = keys
            .secrets
            .iter()
            .map(|s| Box::new(BlsCrypto::new(s.clone(), keys.public.clone())) as Box<dyn ConsensusCrypto>)
            .collect();
        check_key_generation(&all, keys.public.genesis_summary());
    }

    #[test]
    fn key_generation_is_deterministic_and_checks_pops() {
        let a = generate_subnet_keys([3; 32], 4).unwrap();
        let b = generate_subnet_keys([3; 32], 4).unwrap();
        assert_eq!(a.public.membership(), b.public.membership());
        assert_eq!(a.public.subnet_public_key(), b.public.subnet_public_key());
        // A rogue key without a valid proof of possession is refused.
        let m = a.public.membership().clone();
        let mut multi = BTreeMap::new();
        let mut signing = BTreeMap::new();
        let mut encryption = BTreeMap::new();
        for (i, s) in a.secrets.iter().enumerate() {
            signing.insert(m.nodes()[i], s.signing.public_key_bytes());
            let pop = if i == 2 { bls::create_pop(&a.secrets[0].multisig) } else { bls::create_pop(&s.multisig) };
            multi.insert(m.nodes()[i], (s.multisig.public_key(), pop));
            encryption.insert(m.nodes()[i], (s.encryption.public_key(), bls::create_pop(&s.encryption)));
        }
        let (coeff, _) = bls::generate_threshold_keys([9; 32], 2, 4).unwrap();
        let (high, _) = bls::generate_threshold_keys([9; 32], 3, 4).unwrap();
        assert!(matches!(
            SubnetPublicKeys::new(m.clone(), signing.clone(), multi, encryption.clone(), &coeff, &high),
            Err(KeySetupError::BadProofOfPossession(_))
        ));
        let (coeff3, _) = bls::generate_threshold_keys([9; 32], 3, 4).unwrap();
        let multi: BTreeMap<_, _> = a
            .secrets
            .iter()
            .enumerate()
            .map(|(i, s)| (m.nodes()[i], (s.multisig.public_key(), bls::create_pop(&s.multisig))))
            .collect();
        assert!(matches!(
            SubnetPublicKeys::new(m, signing, multi, encryption, &coeff3, &high),
            Err(KeySetupError::WrongThreshold { expected: 2, actual: 3 })
        ));
    }
}
