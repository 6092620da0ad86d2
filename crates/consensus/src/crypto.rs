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
}

/// Which of the subnet's two threshold keys signs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ThresholdKey {
    /// The low-threshold key (f + 1 of n): random beacon and random tape.
    Low,
    /// The high-threshold key (n − f of n): state certification and
    /// catch-up packages; its group key is the subnet's public key.
    High,
}

/// Signing and verification for consensus artifacts. All messages passed in
/// are already domain-separated canonical bytes.
pub trait ConsensusCrypto {
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
    fn sign_threshold_share(&self, key: ThresholdKey, msg: &[u8]) -> Result<Vec<u8>, CryptoError>;
    /// Verifies `signer`'s threshold share.
    fn verify_threshold_share(
        &self,
        key: ThresholdKey,
        signer: &NodeId,
        msg: &[u8],
        sig: &[u8],
    ) -> Result<(), CryptoError>;
    /// Combines `threshold` verified shares into the unique group signature.
    fn combine_threshold(
        &self,
        key: ThresholdKey,
        threshold: usize,
        msg: &[u8],
        shares: &[(NodeId, &[u8])],
    ) -> Result<Vec<u8>, CryptoError>;
    /// Verifies a combined threshold signature under the group key.
    fn verify_threshold(&self, key: ThresholdKey, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError>;
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
    fn sign_threshold_share(&self, key: ThresholdKey, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        (**self).sign_threshold_share(key, msg)
    }
    fn verify_threshold_share(
        &self,
        key: ThresholdKey,
        signer: &NodeId,
        msg: &[u8],
        sig: &[u8],
    ) -> Result<(), CryptoError> {
        (**self).verify_threshold_share(key, signer, msg, sig)
    }
    fn combine_threshold(
        &self,
        key: ThresholdKey,
        threshold: usize,
        msg: &[u8],
        shares: &[(NodeId, &[u8])],
    ) -> Result<Vec<u8>, CryptoError> {
        (**self).combine_threshold(key, threshold, msg, shares)
    }
    fn verify_threshold(&self, key: ThresholdKey, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        (**self).verify_threshold(key, msg, sig)
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
/// A signature is `SHA-256(scheme · signer · msg)`; an aggregate is a hash of
/// the message and the sorted signers; a threshold signature is a hash of
/// the message alone (unique, like the real one). Anyone could forge these,
/// so they only model honest-but-faulty and Byzantine nodes that produce
/// *wrong* signatures (which are detected exactly like real ones), not key
/// theft. Aggregation and combination verify their inputs, as a real
/// aggregate of bad shares would fail verification.
#[derive(Clone, Debug)]
pub struct FakeCrypto {
    me: NodeId,
    members: Arc<Membership>,
}

impl FakeCrypto {
    /// Fake keys for `me` in a subnet of `members`.
    pub fn new(me: NodeId, members: Arc<Membership>) -> FakeCrypto {
        FakeCrypto { me, members }
    }

    fn sig(scheme: u8, signer: &NodeId, msg: &[u8]) -> Vec<u8> {
        let mut h = sha2::Sha256::new();
        h.update([scheme]);
        h.update([signer.as_slice().len() as u8]);
        h.update(signer.as_slice());
        h.update(msg);
        h.finalize().to_vec()
    }

    fn check(&self, scheme: u8, signer: &NodeId, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        if !self.members.contains(signer) {
            return Err(CryptoError::UnknownSigner(*signer));
        }
        if sig.len() != 32 {
            return Err(CryptoError::Malformed(format!("fake signature of {} bytes", sig.len())));
        }
        if Self::sig(scheme, signer, msg) == sig { Ok(()) } else { Err(CryptoError::VerificationFailed) }
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

    fn threshold(key: ThresholdKey, msg: &[u8]) -> Vec<u8> {
        let mut h = sha2::Sha256::new();
        h.update(if key == ThresholdKey::Low { &b"threshold-low"[..] } else { &b"threshold-high"[..] });
        h.update(msg);
        h.finalize().to_vec()
    }
}

const BASIC: u8 = 1;
const MULTI: u8 = 2;
const THRESHOLD_LOW: u8 = 3;
const THRESHOLD_HIGH: u8 = 4;

fn fake_scheme(key: ThresholdKey) -> u8 {
    match key {
        ThresholdKey::Low => THRESHOLD_LOW,
        ThresholdKey::High => THRESHOLD_HIGH,
    }
}

impl ConsensusCrypto for FakeCrypto {
    fn node_id(&self) -> NodeId {
        self.me
    }
    fn sign_basic(&self, msg: &[u8]) -> Vec<u8> {
        Self::sig(BASIC, &self.me, msg)
    }
    fn verify_basic(&self, signer: &NodeId, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        self.check(BASIC, signer, msg, sig)
    }
    fn sign_multi_share(&self, msg: &[u8]) -> Vec<u8> {
        Self::sig(MULTI, &self.me, msg)
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
    fn sign_threshold_share(&self, key: ThresholdKey, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if !self.members.contains(&self.me) {
            return Err(CryptoError::NoSecretKey);
        }
        Ok(Self::sig(fake_scheme(key), &self.me, msg))
    }
    fn verify_threshold_share(
        &self,
        key: ThresholdKey,
        signer: &NodeId,
        msg: &[u8],
        sig: &[u8],
    ) -> Result<(), CryptoError> {
        self.check(fake_scheme(key), signer, msg, sig)
    }
    fn combine_threshold(
        &self,
        key: ThresholdKey,
        threshold: usize,
        msg: &[u8],
        shares: &[(NodeId, &[u8])],
    ) -> Result<Vec<u8>, CryptoError> {
        check_distinct(shares)?;
        if shares.len() < threshold {
            return Err(CryptoError::NotEnoughShares { needed: threshold, got: shares.len() });
        }
        for (n, s) in &shares[..threshold] {
            self.verify_threshold_share(key, n, msg, s)?;
        }
        Ok(Self::threshold(key, msg))
    }
    fn verify_threshold(&self, key: ThresholdKey, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        if Self::threshold(key, msg) == sig { Ok(()) } else { Err(CryptoError::VerificationFailed) }
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
    /// A multi-signature key's proof of possession failed (rogue-key defence).
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

/// The public keys of a subnet, as the registry would publish them: node
/// signing keys, multi-signature keys (PoP-checked) and the low-threshold
/// key's public coefficients. Public shares are precomputed because share
/// verification is on the hot path.
#[derive(Clone, Debug)]
pub struct SubnetPublicKeys {
    membership: Membership,
    signing_keys: BTreeMap<NodeId, [u8; 32]>,
    multisig_keys: BTreeMap<NodeId, bls::PublicKey>,
    low: ThresholdPublicKey,
    high: ThresholdPublicKey,
}

/// A threshold key's group key and each member's public share.
#[derive(Clone, Debug)]
struct ThresholdPublicKey {
    group: bls::PublicKey,
    shares: BTreeMap<NodeId, bls::PublicKey>,
}

impl ThresholdPublicKey {
    /// Share `i` belongs to the `i`-th node in sorted order.
    fn new(
        membership: &Membership,
        coefficients: &bls::PublicCoefficients,
        expected: usize,
    ) -> Result<Self, KeySetupError> {
        if coefficients.threshold() != expected {
            return Err(KeySetupError::WrongThreshold { expected, actual: coefficients.threshold() });
        }
        let shares = membership
            .nodes()
            .iter()
            .enumerate()
            .map(|(i, node)| (*node, coefficients.public_share(i as bls::NodeIndex)))
            .collect();
        Ok(ThresholdPublicKey { group: coefficients.group_public_key(), shares })
    }
}

impl SubnetPublicKeys {
    /// Assembles and checks the subnet's public keys. Threshold share `i`
    /// belongs to the `i`-th node in sorted order; the low threshold must be
    /// `f + 1`, the high one `n − f`.
    pub fn new(
        membership: Membership,
        signing_keys: BTreeMap<NodeId, [u8; 32]>,
        multisig_keys: BTreeMap<NodeId, (bls::PublicKey, bls::Signature)>,
        low_threshold_key: &bls::PublicCoefficients,
        high_threshold_key: &bls::PublicCoefficients,
    ) -> Result<SubnetPublicKeys, KeySetupError> {
        let low = ThresholdPublicKey::new(&membership, low_threshold_key, membership.beacon_threshold())?;
        let high = ThresholdPublicKey::new(&membership, high_threshold_key, membership.catch_up_threshold())?;
        let mut multi = BTreeMap::new();
        for node in membership.nodes() {
            if !signing_keys.contains_key(node) {
                return Err(KeySetupError::MissingKey(*node, "signing"));
            }
            let (pk, pop) = multisig_keys.get(node).ok_or(KeySetupError::MissingKey(*node, "multi-signature"))?;
            bls::verify_pop(pk, pop).map_err(|_| KeySetupError::BadProofOfPossession(*node))?;
            multi.insert(*node, *pk);
        }
        Ok(SubnetPublicKeys { membership, signing_keys, multisig_keys: multi, low, high })
    }

    fn key(&self, key: ThresholdKey) -> &ThresholdPublicKey {
        match key {
            ThresholdKey::Low => &self.low,
            ThresholdKey::High => &self.high,
        }
    }

    /// The members these keys are for.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// The group key of a threshold key (low: beacons and tapes; high:
    /// certifications and catch-up packages, the subnet's public key).
    pub fn threshold_group_key(&self, key: ThresholdKey) -> bls::PublicKey {
        self.key(key).group
    }
}

/// One node's secret keys.
#[derive(Clone, Debug)]
pub struct NodeSecretKeys {
    /// Ed25519 node signing key (proposals).
    pub signing: NodeSigningKey,
    /// BLS multi-signature key (notarization, finalization).
    pub multisig: bls::SecretKey,
    /// Share of the low-threshold key (beacon, tape), if a member.
    pub threshold_share: Option<bls::SecretKey>,
    /// Share of the high-threshold key (certification, catch-up packages).
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
    let membership = Membership::new(signing.iter().map(|k| k.node_id()))?;
    let (coefficients, shares) =
        bls::generate_threshold_keys(derive(b"threshold", 0), membership.beacon_threshold(), n)?;
    let (high_coefficients, high_shares) =
        bls::generate_threshold_keys(derive(b"high-threshold", 0), membership.catch_up_threshold(), n)?;
    let mut signing_keys = BTreeMap::new();
    let mut multisig_keys = BTreeMap::new();
    let mut secrets = Vec::with_capacity(n);
    for (i, ((key, share), high)) in signing.into_iter().zip(shares).zip(high_shares).enumerate() {
        let multisig = bls::SecretKey::from_seed(derive(b"multisig", i));
        signing_keys.insert(key.node_id(), key.public_key_bytes());
        multisig_keys.insert(key.node_id(), (multisig.public_key(), bls::create_pop(&multisig)));
        secrets.push(NodeSecretKeys {
            signing: key,
            multisig,
            threshold_share: Some(share),
            high_threshold_share: Some(high),
        });
    }
    let public = SubnetPublicKeys::new(membership, signing_keys, multisig_keys, &coefficients, &high_coefficients)?;
    Ok(SubnetKeys { public: Arc::new(public), secrets })
}

/// Consensus crypto with real keys: Ed25519 proposals, BLS multi-signatures,
/// threshold BLS beacons and tapes (all via `cairn_crypto`).
#[derive(Clone, Debug)]
pub struct BlsCrypto {
    me: NodeId,
    secrets: NodeSecretKeys,
    public: Arc<SubnetPublicKeys>,
}

impl BlsCrypto {
    /// Crypto for the node owning `secrets`.
    pub fn new(secrets: NodeSecretKeys, public: Arc<SubnetPublicKeys>) -> BlsCrypto {
        BlsCrypto { me: secrets.signing.node_id(), secrets, public }
    }

    fn bls_sig(sig: &[u8]) -> Result<bls::Signature, CryptoError> {
        bls::Signature::from_bytes(sig).map_err(|e| CryptoError::Malformed(e.to_string()))
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
        let key = self.public.signing_keys.get(signer).ok_or(CryptoError::UnknownSigner(*signer))?;
        verify_ed25519(key, msg, sig).map_err(|_| CryptoError::VerificationFailed)
    }

    fn sign_multi_share(&self, msg: &[u8]) -> Vec<u8> {
        self.secrets.multisig.sign(msg).to_bytes().to_vec()
    }

    fn verify_multi_share(&self, signer: &NodeId, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        let key = self.public.multisig_keys.get(signer).ok_or(CryptoError::UnknownSigner(*signer))?;
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
            .map(|s| self.public.multisig_keys.get(s).copied().ok_or(CryptoError::UnknownSigner(*s)))
            .collect::<Result<Vec<_>, _>>()?;
        bls_result(bls::verify_multi(&keys, msg, &Self::bls_sig(sig)?))
    }

    fn sign_threshold_share(&self, key: ThresholdKey, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let share = match key {
            ThresholdKey::Low => self.secrets.threshold_share.as_ref(),
            ThresholdKey::High => self.secrets.high_threshold_share.as_ref(),
        };
        let share = share.ok_or(CryptoError::NoSecretKey)?;
        Ok(bls::sign_share(share, msg).to_bytes().to_vec())
    }

    fn verify_threshold_share(
        &self,
        key: ThresholdKey,
        signer: &NodeId,
        msg: &[u8],
        sig: &[u8],
    ) -> Result<(), CryptoError> {
        let key = self.public.key(key).shares.get(signer).ok_or(CryptoError::UnknownSigner(*signer))?;
        bls_result(key.verify(msg, &Self::bls_sig(sig)?))
    }

    fn combine_threshold(
        &self,
        _key: ThresholdKey,
        threshold: usize,
        _msg: &[u8],
        shares: &[(NodeId, &[u8])],
    ) -> Result<Vec<u8>, CryptoError> {
        check_distinct(shares)?;
        if shares.len() < threshold {
            return Err(CryptoError::NotEnoughShares { needed: threshold, got: shares.len() });
        }
        let indexed = shares
            .iter()
            .map(|(n, s)| {
                let i = self.public.membership.index_of(n).ok_or(CryptoError::UnknownSigner(*n))?;
                Ok((i as bls::NodeIndex, Self::bls_sig(s)?))
            })
            .collect::<Result<Vec<_>, CryptoError>>()?;
        let sig = bls::combine(threshold, &indexed).map_err(|e| CryptoError::Malformed(e.to_string()))?;
        Ok(sig.to_bytes().to_vec())
    }

    fn verify_threshold(&self, key: ThresholdKey, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        bls_result(self.public.key(key).group.verify(msg, &Self::bls_sig(sig)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        for (key, threshold) in [(ThresholdKey::Low, threshold), (ThresholdKey::High, all.len() - (all.len() - 1) / 3)]
        {
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
            let other_key = if key == ThresholdKey::Low { ThresholdKey::High } else { ThresholdKey::Low };
            assert!(b.verify_threshold(other_key, msg, &s1).is_err(), "the two keys are independent");
            assert!(matches!(
                a.combine_threshold(key, threshold, msg, &refs[..threshold - 1]),
                Err(CryptoError::NotEnoughShares { .. })
            ));
        }
    }

    #[test]
    fn fake_crypto_behaves_like_a_signature_scheme() {
        let keys = generate_subnet_keys([1; 32], 4).unwrap();
        let m = Arc::new(keys.public.membership().clone());
        let all: Vec<Box<dyn ConsensusCrypto>> =
            m.nodes().iter().map(|n| Box::new(FakeCrypto::new(*n, m.clone())) as Box<dyn ConsensusCrypto>).collect();
        check_scheme(&all, 2);
        // A bad share poisons the combination, as it would with real BLS.
        let msg = b"m";
        let good = all[0].sign_threshold_share(ThresholdKey::Low, msg).unwrap();
        let bad = vec![0u8; 32];
        let shares = [(all[0].node_id(), good.as_slice()), (all[1].node_id(), bad.as_slice())];
        assert!(all[2].combine_threshold(ThresholdKey::Low, 2, msg, &shares).is_err());
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
        check_scheme(&all, 2);
        assert!(all[0].verify_threshold_share(ThresholdKey::Low, &all[0].node_id(), b"m", &[1, 2, 3]).is_err());
    }

    #[test]
    fn key_generation_is_deterministic_and_checks_pops() {
        let a = generate_subnet_keys([3; 32], 4).unwrap();
        let b = generate_subnet_keys([3; 32], 4).unwrap();
        assert_eq!(a.public.membership(), b.public.membership());
        assert_eq!(a.public.threshold_group_key(ThresholdKey::High), b.public.threshold_group_key(ThresholdKey::High));
        // A rogue key without a valid proof of possession is refused.
        let m = a.public.membership().clone();
        let mut multi = BTreeMap::new();
        let mut signing = BTreeMap::new();
        for (i, s) in a.secrets.iter().enumerate() {
            signing.insert(m.nodes()[i], s.signing.public_key_bytes());
            let pop = if i == 2 { bls::create_pop(&a.secrets[0].multisig) } else { bls::create_pop(&s.multisig) };
            multi.insert(m.nodes()[i], (s.multisig.public_key(), pop));
        }
        let (coeff, _) = bls::generate_threshold_keys([9; 32], 2, 4).unwrap();
        let (high, _) = bls::generate_threshold_keys([9; 32], 3, 4).unwrap();
        assert!(matches!(
            SubnetPublicKeys::new(m.clone(), signing.clone(), multi, &coeff, &high),
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
            SubnetPublicKeys::new(m, signing, multi, &coeff3, &high),
            Err(KeySetupError::WrongThreshold { expected: 2, actual: 3 })
        ));
    }
}
