//! Threshold keys made by dealings instead of a trusted dealer, and reshared
//! to a new committee without changing the group key.
//!
//! A *dealing* is Feldman verifiable secret sharing with the shares
//! encrypted to the receivers:
//!
//! * the dealer picks a polynomial `g` of degree `t − 1` — with a random
//!   constant term for a fresh key, or with **its own share of the current
//!   key** as constant term when resharing;
//! * it publishes commitments `C_k = a_k · G2` to the coefficients, and for
//!   each receiver `j` the share `g(j + 1)` masked with a key derived from
//!   a Diffie–Hellman secret `r · PK_j` (hashed ElGamal in G2; `R = r · G2`
//!   travels with the ciphertext).
//!
//! Anyone can check a dealing's shape and, when resharing, that its
//! constant-term commitment is the dealer's public share of the current
//! key. A receiver checks its decrypted share against the commitments; if
//! it does not match, its *complaint* reveals the Diffie–Hellman secret
//! with a Chaum–Pedersen proof that it is the right one, so anyone can
//! decrypt that one share, see that it is wrong, and exclude the dealer.
//!
//! Combining: a fresh key sums the dealings (shares and commitments);
//! resharing interpolates `t_old` dealings at 0 with the Lagrange
//! coefficients of their dealers, so the new group key equals the old one
//! while the threshold and the committee may change.
//!
//! Unlike the IC's non-interactive DKG, shares are encrypted to static keys
//! (no forward secrecy) and bad dealings are found by complaints rather than
//! by zero-knowledge proofs in the dealing. The data model (dealings per
//! dealer, transcripts of commitments) is the same, so the scheme can be
//! replaced behind the same calls.

use crate::bls::{NodeIndex, PublicCoefficients, PublicKey, SecretKey, random_scalar};
use ic_bls12_381::{G2Affine, G2Projective, Scalar};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

const MASK_DOMAIN: &[u8] = b"\x0fcairn-dkg-mask";
const DLEQ_DOMAIN: &[u8] = b"\x0fcairn-dkg-dleq";

/// Why a dealing, share or complaint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DkgError {
    #[error("the dealing commits to {got} coefficients, {expected} expected")]
    WrongThreshold { expected: usize, got: usize },
    #[error("the dealing has {got} ciphertexts for {expected} receivers")]
    WrongReceiverCount { expected: usize, got: usize },
    #[error("a point of the dealing is not a valid G2 point")]
    InvalidPoint,
    #[error("the dealing does not reshare the dealer's share of the current key")]
    NotAResharing,
    #[error("receiver {0} is not in the committee")]
    UnknownReceiver(NodeIndex),
    #[error("the complaint's proof does not verify")]
    BadProof,
    #[error("need {needed} dealings, got {got}")]
    NotEnoughDealings { needed: usize, got: usize },
    #[error("dealer {0} appears twice")]
    DuplicateDealer(NodeIndex),
    #[error("the bytes do not encode a dealing or complaint")]
    Malformed,
}

/// One receiver's encrypted share.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareCiphertext {
    /// `R = r · G2` (compressed).
    #[serde(with = "serde_bytes")]
    pub ephemeral: Vec<u8>,
    /// The share (32 bytes, big-endian) XOR the mask derived from `r · PK`.
    pub masked: [u8; 32],
}

/// A dealer's contribution to a key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dealing {
    /// Commitments to the polynomial's coefficients (`C_0` first).
    #[serde(with = "serde_bytes")]
    pub commitments: Vec<u8>,
    /// One ciphertext per receiver, in receiver order.
    pub ciphertexts: Vec<ShareCiphertext>,
}

/// Who deals to whom, for what: every party must use the same context.
#[derive(Clone, Copy, Debug)]
pub struct DealingContext<'a> {
    /// Binds the masks to one key generation (e.g. subnet id, interval
    /// start, key purpose), so a ciphertext cannot be replayed elsewhere.
    pub tag: &'a [u8],
    /// The dealer's index (in the current committee when resharing).
    pub dealer: NodeIndex,
    /// The receivers' encryption keys, in receiver order.
    pub receivers: &'a [PublicKey],
    /// The new key's threshold.
    pub threshold: usize,
}

/// A receiver's proof that a dealer sent it a wrong share.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Complaint {
    pub receiver: NodeIndex,
    /// The Diffie–Hellman secret `sk · R` (compressed G2).
    #[serde(with = "serde_bytes")]
    pub shared: Vec<u8>,
    /// Chaum–Pedersen proof that `log_G2(PK) = log_R(shared)`: challenge and response.
    pub challenge: [u8; 32],
    pub response: [u8; 32],
}

/// Bytes of one G2 point (compressed).
const POINT_LEN: usize = 96;

impl Dealing {
    /// Canonical bytes: commitment bytes (length-prefixed), then every
    /// ciphertext as its ephemeral point and masked share. Blocks carry
    /// dealings in this form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.commitments.len() + self.ciphertexts.len() * (POINT_LEN + 32));
        out.extend_from_slice(&(self.commitments.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.commitments);
        out.extend_from_slice(&(self.ciphertexts.len() as u32).to_be_bytes());
        for c in &self.ciphertexts {
            out.extend_from_slice(&c.ephemeral);
            out.extend_from_slice(&c.masked);
        }
        out
    }

    /// Parses [`Dealing::to_bytes`]; points are checked later by
    /// [`verify_dealing`], lengths here.
    pub fn from_bytes(bytes: &[u8]) -> Result<Dealing, DkgError> {
        let mut r = Reader(bytes);
        let len = r.u32()? as usize;
        let commitments = r.take(len)?.to_vec();
        let count = r.u32()? as usize;
        if count > bytes.len() / (POINT_LEN + 32) {
            return Err(DkgError::Malformed);
        }
        let mut ciphertexts = Vec::with_capacity(count);
        for _ in 0..count {
            let ephemeral = r.take(POINT_LEN)?.to_vec();
            let masked = r.take(32)?.try_into().map_err(|_| DkgError::Malformed)?;
            ciphertexts.push(ShareCiphertext { ephemeral, masked });
        }
        r.end()?;
        Ok(Dealing { commitments, ciphertexts })
    }
}

impl Complaint {
    /// Canonical bytes: receiver, the revealed secret (length-prefixed: it
    /// is empty for a malformed ciphertext), challenge, response.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + 4 + self.shared.len() + 64);
        out.extend_from_slice(&self.receiver.to_be_bytes());
        out.extend_from_slice(&(self.shared.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.shared);
        out.extend_from_slice(&self.challenge);
        out.extend_from_slice(&self.response);
        out
    }

    /// Parses [`Complaint::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Complaint, DkgError> {
        let mut r = Reader(bytes);
        let receiver = r.u32()?;
        let len = r.u32()? as usize;
        let shared = r.take(len)?.to_vec();
        let challenge = r.take(32)?.try_into().map_err(|_| DkgError::Malformed)?;
        let response = r.take(32)?.try_into().map_err(|_| DkgError::Malformed)?;
        r.end()?;
        Ok(Complaint { receiver, shared, challenge, response })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DkgError> {
        if self.0.len() < n {
            return Err(DkgError::Malformed);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u32(&mut self) -> Result<u32, DkgError> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().map_err(|_| DkgError::Malformed)?))
    }
    fn end(&self) -> Result<(), DkgError> {
        if self.0.is_empty() { Ok(()) } else { Err(DkgError::Malformed) }
    }
}

fn to_point(pk: &PublicKey) -> G2Projective {
    let affine = Option::<G2Affine>::from(G2Affine::from_compressed(&pk.to_bytes())).expect("valid public key");
    G2Projective::from(affine)
}

fn from_point(p: &G2Projective) -> Result<PublicKey, DkgError> {
    PublicKey::from_bytes(&G2Affine::from(p).to_compressed()).map_err(|_| DkgError::InvalidPoint)
}

fn decode_point(bytes: &[u8]) -> Result<G2Projective, DkgError> {
    let arr: &[u8; 96] = bytes.try_into().map_err(|_| DkgError::InvalidPoint)?;
    let affine = Option::<G2Affine>::from(G2Affine::from_compressed(arr)).ok_or(DkgError::InvalidPoint)?;
    if bool::from(affine.is_identity()) {
        return Err(DkgError::InvalidPoint);
    }
    Ok(G2Projective::from(affine))
}

fn scalar_from_be(bytes: &[u8; 32]) -> Option<Scalar> {
    let mut le = *bytes;
    le.reverse();
    let s = Option::<Scalar>::from(Scalar::from_bytes(&le));
    le.zeroize();
    s
}

fn scalar_to_be(s: &Scalar) -> [u8; 32] {
    let mut b = s.to_bytes();
    b.reverse();
    b
}

fn hash_to_scalar(parts: &[&[u8]]) -> Scalar {
    let mut wide = [0u8; 64];
    for (i, half) in wide.chunks_mut(32).enumerate() {
        let mut h = Sha256::new();
        h.update(DLEQ_DOMAIN);
        h.update([i as u8]);
        for p in parts {
            h.update((p.len() as u64).to_be_bytes());
            h.update(p);
        }
        half.copy_from_slice(&h.finalize());
    }
    Scalar::from_bytes_wide(&wide)
}

fn mask(ctx: &DealingContext<'_>, receiver: NodeIndex, ephemeral: &[u8], shared: &G2Projective) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(MASK_DOMAIN);
    h.update((ctx.tag.len() as u64).to_be_bytes());
    h.update(ctx.tag);
    h.update(ctx.dealer.to_be_bytes());
    h.update(receiver.to_be_bytes());
    h.update(ephemeral);
    h.update(G2Affine::from(shared).to_compressed());
    h.finalize().into()
}

fn commitments_of(dealing: &Dealing) -> Result<PublicCoefficients, DkgError> {
    PublicCoefficients::from_bytes(&dealing.commitments).map_err(|_| DkgError::InvalidPoint)
}

/// Makes a dealing: of `secret` (resharing this dealer's share of the
/// current key) or, with `None`, of a fresh random secret. `seed` must be
/// fresh randomness (it determines the polynomial and the ephemeral keys).
pub fn deal(ctx: &DealingContext<'_>, secret: Option<&SecretKey>, seed: [u8; 32]) -> Result<Dealing, DkgError> {
    if ctx.threshold == 0 || ctx.threshold > ctx.receivers.len() {
        return Err(DkgError::WrongThreshold { expected: ctx.receivers.len(), got: ctx.threshold });
    }
    let mut rng = ChaCha20Rng::from_seed(seed);
    let mut coefficients: Vec<Scalar> = (0..ctx.threshold).map(|_| random_scalar(&mut rng)).collect();
    if let Some(s) = secret {
        coefficients[0] = *s.scalar();
    }
    let commitments: Vec<PublicKey> = coefficients.iter().map(|a| SecretKey::from_scalar(*a).public_key()).collect();
    let mut ciphertexts = Vec::with_capacity(ctx.receivers.len());
    for (j, pk) in ctx.receivers.iter().enumerate() {
        let x = Scalar::from(j as u64 + 1);
        let mut share = Scalar::zero();
        for a in coefficients.iter().rev() {
            share = share * x + a;
        }
        let r = random_scalar(&mut rng);
        let ephemeral = G2Affine::from(G2Projective::generator() * r).to_compressed().to_vec();
        let shared = to_point(pk) * r;
        let m = mask(ctx, j as NodeIndex, &ephemeral, &shared);
        let mut masked = scalar_to_be(&share);
        for (b, k) in masked.iter_mut().zip(m) {
            *b ^= k;
        }
        ciphertexts.push(ShareCiphertext { ephemeral, masked });
        share.zeroize();
    }
    coefficients.iter_mut().for_each(Zeroize::zeroize);
    Ok(Dealing { commitments: PublicCoefficients::from_keys(commitments).to_bytes(), ciphertexts })
}

/// What everyone can check of a dealing: its shape, its points, and (when
/// resharing `current`) that it deals the dealer's share of that key.
pub fn verify_dealing(
    ctx: &DealingContext<'_>,
    dealing: &Dealing,
    current: Option<&PublicCoefficients>,
) -> Result<(), DkgError> {
    let commitments = commitments_of(dealing)?;
    if commitments.threshold() != ctx.threshold {
        return Err(DkgError::WrongThreshold { expected: ctx.threshold, got: commitments.threshold() });
    }
    if dealing.ciphertexts.len() != ctx.receivers.len() {
        return Err(DkgError::WrongReceiverCount { expected: ctx.receivers.len(), got: dealing.ciphertexts.len() });
    }
    for c in &dealing.ciphertexts {
        decode_point(&c.ephemeral)?;
    }
    if let Some(current) = current
        && commitments.group_public_key() != current.public_share(ctx.dealer)
    {
        return Err(DkgError::NotAResharing);
    }
    Ok(())
}

/// Decrypts this receiver's share and checks it against the commitments.
/// A wrong share gives a [`Complaint`] anyone can check.
pub fn open_share(
    ctx: &DealingContext<'_>,
    dealing: &Dealing,
    receiver: NodeIndex,
    secret: &SecretKey,
    proof_seed: [u8; 32],
) -> Result<SecretKey, Box<Complaint>> {
    let c = dealing.ciphertexts.get(receiver as usize);
    let ephemeral = c.and_then(|c| decode_point(&c.ephemeral).ok());
    let (Some(c), Some(r_point)) = (c, ephemeral) else {
        // A malformed ciphertext: verify_dealing already rejects these, so
        // a complaint with an empty secret is only for the record.
        return Err(Box::new(Complaint { receiver, shared: Vec::new(), challenge: [0; 32], response: [0; 32] }));
    };
    let shared = r_point * secret.scalar();
    match recover_share(ctx, dealing, receiver, &c.ephemeral, &c.masked, &shared) {
        Some(share) => Ok(share),
        None => Err(Box::new(complaint(receiver, secret, &r_point, &shared, proof_seed))),
    }
}

/// The share from a Diffie–Hellman secret, if it matches the commitments.
fn recover_share(
    ctx: &DealingContext<'_>,
    dealing: &Dealing,
    receiver: NodeIndex,
    ephemeral: &[u8],
    masked: &[u8; 32],
    shared: &G2Projective,
) -> Option<SecretKey> {
    let m = mask(ctx, receiver, ephemeral, shared);
    let mut bytes = *masked;
    for (b, k) in bytes.iter_mut().zip(m) {
        *b ^= k;
    }
    let share = scalar_from_be(&bytes).map(SecretKey::from_scalar);
    bytes.zeroize();
    let share = share?;
    let commitments = commitments_of(dealing).ok()?;
    (share.public_key() == commitments.public_share(receiver)).then_some(share)
}

fn complaint(
    receiver: NodeIndex,
    secret: &SecretKey,
    r_point: &G2Projective,
    shared: &G2Projective,
    proof_seed: [u8; 32],
) -> Complaint {
    let pk = G2Projective::generator() * secret.scalar();
    let mut w = random_scalar(&mut ChaCha20Rng::from_seed(proof_seed));
    let a1 = G2Projective::generator() * w;
    let a2 = r_point * w;
    let enc = |p: &G2Projective| G2Affine::from(p).to_compressed();
    let c = hash_to_scalar(&[&enc(&pk), &enc(r_point), &enc(shared), &enc(&a1), &enc(&a2)]);
    let z = w + c * secret.scalar();
    w.zeroize();
    Complaint { receiver, shared: enc(shared).to_vec(), challenge: scalar_to_be(&c), response: scalar_to_be(&z) }
}

/// Checks a complaint: `Ok(true)` if it proves that the dealer sent the
/// receiver a wrong share (the dealer is excluded), `Ok(false)` if the
/// share was in fact right, an error if the complaint itself is bogus.
pub fn verify_complaint(ctx: &DealingContext<'_>, dealing: &Dealing, complaint: &Complaint) -> Result<bool, DkgError> {
    let pk = ctx.receivers.get(complaint.receiver as usize).ok_or(DkgError::UnknownReceiver(complaint.receiver))?;
    let c =
        dealing.ciphertexts.get(complaint.receiver as usize).ok_or(DkgError::UnknownReceiver(complaint.receiver))?;
    let r_point = decode_point(&c.ephemeral)?;
    let shared = decode_point(&complaint.shared)?;
    let challenge = scalar_from_be(&complaint.challenge).ok_or(DkgError::BadProof)?;
    let response = scalar_from_be(&complaint.response).ok_or(DkgError::BadProof)?;
    let pk_point = to_point(pk);
    // A1 = z·G2 − c·PK, A2 = z·R − c·shared; the challenge must hash them.
    let a1 = G2Projective::generator() * response - pk_point * challenge;
    let a2 = r_point * response - shared * challenge;
    let enc = |p: &G2Projective| G2Affine::from(p).to_compressed();
    let expected = hash_to_scalar(&[&enc(&pk_point), &enc(&r_point), &enc(&shared), &enc(&a1), &enc(&a2)]);
    if expected != challenge {
        return Err(DkgError::BadProof);
    }
    Ok(recover_share(ctx, dealing, complaint.receiver, &c.ephemeral, &c.masked, &shared).is_none())
}

fn check_distinct(indices: &[NodeIndex]) -> Result<(), DkgError> {
    let mut seen = std::collections::BTreeSet::new();
    match indices.iter().find(|i| !seen.insert(**i)) {
        Some(i) => Err(DkgError::DuplicateDealer(*i)),
        None => Ok(()),
    }
}

/// Lagrange coefficients at 0 for the given dealer indices (`x = index + 1`).
fn lagrange_at_zero(indices: &[NodeIndex]) -> Result<Vec<Scalar>, DkgError> {
    check_distinct(indices)?;
    let xs: Vec<Scalar> = indices.iter().map(|i| Scalar::from(u64::from(*i) + 1)).collect();
    Ok(xs
        .iter()
        .enumerate()
        .map(|(i, xi)| {
            let (mut num, mut den) = (Scalar::one(), Scalar::one());
            for (j, xj) in xs.iter().enumerate() {
                if i != j {
                    num *= xj;
                    den *= xj - xi;
                }
            }
            num * Option::<Scalar>::from(den.invert()).expect("distinct indices")
        })
        .collect())
}

/// How dealings combine into the new key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Combination {
    /// A fresh key: the sum of every dealing (any number ≥ 1).
    Fresh,
    /// A resharing of a key with this threshold: exactly that many
    /// dealings, interpolated at 0 (the group key stays the same).
    Resharing { current_threshold: usize },
}

fn weights(dealers: &[NodeIndex], how: Combination) -> Result<Vec<Scalar>, DkgError> {
    match how {
        Combination::Fresh if dealers.is_empty() => Err(DkgError::NotEnoughDealings { needed: 1, got: 0 }),
        Combination::Fresh => {
            check_distinct(dealers)?;
            Ok(vec![Scalar::one(); dealers.len()])
        }
        Combination::Resharing { current_threshold } if dealers.len() != current_threshold => {
            Err(DkgError::NotEnoughDealings { needed: current_threshold, got: dealers.len() })
        }
        Combination::Resharing { .. } => lagrange_at_zero(dealers),
    }
}

/// The new key's public coefficients from the chosen (verified,
/// uncomplained) dealings, by dealer index.
pub fn combine_commitments(
    dealings: &[(NodeIndex, &Dealing)],
    how: Combination,
) -> Result<PublicCoefficients, DkgError> {
    let dealers: Vec<NodeIndex> = dealings.iter().map(|(i, _)| *i).collect();
    let w = weights(&dealers, how)?;
    let all: Vec<PublicCoefficients> = dealings.iter().map(|(_, d)| commitments_of(d)).collect::<Result<_, _>>()?;
    let threshold = all[0].threshold();
    if all.iter().any(|c| c.threshold() != threshold) {
        return Err(DkgError::WrongThreshold { expected: threshold, got: 0 });
    }
    let mut keys = Vec::with_capacity(threshold);
    for k in 0..threshold {
        let mut acc = G2Projective::identity();
        for (c, wi) in all.iter().zip(&w) {
            acc += to_point(&c.keys()[k]) * wi;
        }
        keys.push(from_point(&acc)?);
    }
    Ok(PublicCoefficients::from_keys(keys))
}

/// This receiver's share of the new key from its shares of the chosen
/// dealings (same dealers, same order of weights as the commitments).
pub fn combine_shares(shares: &[(NodeIndex, SecretKey)], how: Combination) -> Result<SecretKey, DkgError> {
    let dealers: Vec<NodeIndex> = shares.iter().map(|(i, _)| *i).collect();
    let w = weights(&dealers, how)?;
    let mut acc = Scalar::zero();
    for ((_, s), wi) in shares.iter().zip(&w) {
        acc += s.scalar() * wi;
    }
    Ok(SecretKey::from_scalar(acc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bls;

    fn encryption_keys(n: usize, salt: u8) -> (Vec<SecretKey>, Vec<PublicKey>) {
        let secrets: Vec<SecretKey> =
            (0..n).map(|i| SecretKey::from_seed([salt, i as u8, 7, 7].repeat(8).try_into().unwrap())).collect();
        let public = secrets.iter().map(SecretKey::public_key).collect();
        (secrets, public)
    }

    fn seed(a: u8, b: u8) -> [u8; 32] {
        let mut s = [0u8; 32];
        s[0] = a;
        s[1] = b;
        s
    }

    /// Every receiver opens its shares of the chosen dealings and combines them.
    fn receive(
        tag: &[u8],
        dealings: &[(NodeIndex, Dealing)],
        receivers: &[PublicKey],
        secrets: &[SecretKey],
        threshold: usize,
        how: Combination,
    ) -> Vec<SecretKey> {
        (0..receivers.len())
            .map(|j| {
                let shares: Vec<(NodeIndex, SecretKey)> = dealings
                    .iter()
                    .map(|(dealer, d)| {
                        let ctx = DealingContext { tag, dealer: *dealer, receivers, threshold };
                        (*dealer, open_share(&ctx, d, j as NodeIndex, &secrets[j], seed(9, 9)).unwrap())
                    })
                    .collect();
                combine_shares(&shares, how).unwrap()
            })
            .collect()
    }

    fn signs_under(key: &PublicCoefficients, shares: &[SecretKey], pick: &[usize]) {
        let msg = b"certify this";
        let sigs: Vec<(NodeIndex, bls::Signature)> =
            pick.iter().map(|i| (*i as NodeIndex, bls::sign_share(&shares[*i], msg))).collect();
        for (i, s) in &sigs {
            bls::verify_share(key, *i, msg, s).unwrap();
        }
        let combined = bls::combine(key.threshold(), &sigs).unwrap();
        key.group_public_key().verify(msg, &combined).unwrap();
    }

    #[test]
    fn a_fresh_key_from_dealings_then_resharing_to_a_larger_committee_keeps_the_group_key() {
        // Four nodes make a key with threshold 3, no dealer knowing it.
        let (secrets, receivers) = encryption_keys(4, 1);
        let tag = b"subnet-x/interval-0/high";
        let dealings: Vec<(NodeIndex, Dealing)> = (0..4)
            .map(|i| {
                let ctx = DealingContext { tag, dealer: i, receivers: &receivers, threshold: 3 };
                let d = deal(&ctx, None, seed(1, i as u8)).unwrap();
                verify_dealing(&ctx, &d, None).unwrap();
                (i, d)
            })
            .collect();
        let refs: Vec<(NodeIndex, &Dealing)> = dealings.iter().map(|(i, d)| (*i, d)).collect();
        let key = combine_commitments(&refs, Combination::Fresh).unwrap();
        let shares = receive(tag, &dealings, &receivers, &secrets, 3, Combination::Fresh);
        signs_under(&key, &shares, &[0, 2, 3]);

        // Resharing to five nodes (one joins) with threshold 4: three old
        // holders (the current threshold) each deal their share.
        let (new_secrets, new_receivers) = encryption_keys(5, 2);
        let tag = b"subnet-x/interval-1/high";
        let reshared: Vec<(NodeIndex, Dealing)> = [0u32, 1, 3]
            .iter()
            .map(|&i| {
                let ctx = DealingContext { tag, dealer: i, receivers: &new_receivers, threshold: 4 };
                let d = deal(&ctx, Some(&shares[i as usize]), seed(2, i as u8)).unwrap();
                verify_dealing(&ctx, &d, Some(&key)).unwrap();
                (i, d)
            })
            .collect();
        let how = Combination::Resharing { current_threshold: 3 };
        let refs: Vec<(NodeIndex, &Dealing)> = reshared.iter().map(|(i, d)| (*i, d)).collect();
        let new_key = combine_commitments(&refs, how).unwrap();
        assert_eq!(new_key.group_public_key(), key.group_public_key(), "the subnet key survives");
        assert_eq!(new_key.threshold(), 4);
        let new_shares = receive(tag, &reshared, &new_receivers, &new_secrets, 4, how);
        signs_under(&new_key, &new_shares, &[1, 2, 3, 4]);
        // Three new shares are not enough any more (interpolating them as if
        // the threshold were still 3 gives no valid signature).
        let sigs: Vec<(NodeIndex, bls::Signature)> =
            (0..3).map(|i| (i as NodeIndex, bls::sign_share(&new_shares[i], b"m"))).collect();
        assert!(bls::combine(4, &sigs).is_err());
        assert!(key.group_public_key().verify(b"m", &bls::combine(3, &sigs).unwrap()).is_err());
        // Resharing needs exactly the current threshold of dealings.
        assert!(matches!(combine_commitments(&refs[..2], how), Err(DkgError::NotEnoughDealings { needed: 3, got: 2 })));
    }

    #[test]
    fn a_dealing_of_something_else_than_the_dealers_share_is_rejected() {
        let (_, receivers) = encryption_keys(4, 3);
        let (current, shares) = bls::generate_threshold_keys([5; 32], 2, 4).unwrap();
        let ctx = DealingContext { tag: b"t", dealer: 1, receivers: &receivers, threshold: 2 };
        let wrong = deal(&ctx, Some(&shares[2]), seed(3, 0)).unwrap();
        assert_eq!(verify_dealing(&ctx, &wrong, Some(&current)), Err(DkgError::NotAResharing));
        let right = deal(&ctx, Some(&shares[1]), seed(3, 1)).unwrap();
        verify_dealing(&ctx, &right, Some(&current)).unwrap();
        // Shape checks.
        let other = DealingContext { threshold: 3, ..ctx };
        assert!(matches!(verify_dealing(&other, &right, None), Err(DkgError::WrongThreshold { .. })));
        let mut short = right.clone();
        short.ciphertexts.pop();
        assert!(matches!(verify_dealing(&ctx, &short, None), Err(DkgError::WrongReceiverCount { .. })));
        let mut bad_point = right.clone();
        bad_point.ciphertexts[0].ephemeral[5] ^= 1;
        assert!(verify_dealing(&ctx, &bad_point, None).is_err());
    }

    #[test]
    fn a_wrong_share_gives_a_complaint_anyone_can_check() {
        let (secrets, receivers) = encryption_keys(4, 4);
        let ctx = DealingContext { tag: b"t", dealer: 0, receivers: &receivers, threshold: 2 };
        let honest = deal(&ctx, None, seed(4, 0)).unwrap();
        let mut cheating = honest.clone();
        cheating.ciphertexts[2].masked[31] ^= 1; // receiver 2 gets garbage
        verify_dealing(&ctx, &cheating, None).unwrap(); // invisible from outside
        assert!(open_share(&ctx, &cheating, 1, &secrets[1], seed(0, 1)).is_ok());
        let complaint = open_share(&ctx, &cheating, 2, &secrets[2], seed(0, 2)).unwrap_err();
        assert_eq!(verify_complaint(&ctx, &cheating, &complaint), Ok(true), "the dealer is excluded");
        // The same complaint against the honest dealing proves nothing.
        assert_eq!(verify_complaint(&ctx, &honest, &complaint), Ok(false));
        // A forged secret or proof is refused.
        let mut forged = (*complaint).clone();
        forged.response[31] ^= 1;
        assert_eq!(verify_complaint(&ctx, &cheating, &forged), Err(DkgError::BadProof));
        let mut forged = (*complaint).clone();
        forged.receiver = 3;
        assert_eq!(verify_complaint(&ctx, &cheating, &forged), Err(DkgError::BadProof));
        // Masks are bound to the context: another tag decrypts nothing.
        let elsewhere = DealingContext { tag: b"other", ..ctx };
        assert!(open_share(&elsewhere, &honest, 1, &secrets[1], seed(0, 3)).is_err());
    }

    #[test]
    fn dealings_and_complaints_round_trip_through_bytes_and_truncations_are_refused() {
        let (secrets, receivers) = encryption_keys(3, 5);
        let ctx = DealingContext { tag: b"t", dealer: 1, receivers: &receivers, threshold: 2 };
        let mut dealing = deal(&ctx, None, seed(5, 0)).unwrap();
        let bytes = dealing.to_bytes();
        assert_eq!(Dealing::from_bytes(&bytes).unwrap(), dealing);
        for cut in [0, 3, 10, bytes.len() - 1] {
            assert_eq!(Dealing::from_bytes(&bytes[..cut]), Err(DkgError::Malformed));
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(Dealing::from_bytes(&long), Err(DkgError::Malformed));
        // An absurd ciphertext count is refused before allocating.
        let mut absurd = bytes[..4 + dealing.commitments.len()].to_vec();
        absurd.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(Dealing::from_bytes(&absurd), Err(DkgError::Malformed));
        dealing.ciphertexts[0].masked[0] ^= 1;
        let complaint = open_share(&ctx, &dealing, 0, &secrets[0], seed(0, 9)).unwrap_err();
        let bytes = complaint.to_bytes();
        assert_eq!(Complaint::from_bytes(&bytes).unwrap(), *complaint);
        assert_eq!(Complaint::from_bytes(&bytes[..bytes.len() - 1]), Err(DkgError::Malformed));
    }
}
