//! BLS12-381 signatures as the IC uses them ("min-sig").
//!
//! Signatures live in G1 (48-byte compressed), public keys in G2 (96-byte
//! compressed), messages are hashed to G1 with the standard ciphersuite
//! `BLS_SIG_BLS12381G1_XMD:SHA-256_SSWU_RO_NUL_`. This is what certificates
//! are signed with, so it must match `ic-verify-bls-signature` exactly.
//!
//! On top of single keys the module offers:
//!
//! * **threshold keys** (certification, random beacon): a trusted dealer
//!   derives a degree `t−1` polynomial from a seed; node `i` (0-based
//!   position in the committee) holds the share `f(i+1)`; the public
//!   coefficients (in G2) let anyone compute each node's public share and the
//!   group key `f(0)·G2`. Any `t` valid shares combine, by Lagrange
//!   interpolation at 0, into a signature under the group key;
//! * **multi-signatures** (notarization): individual signatures on the same
//!   message are summed and checked against the summed public keys. Keys must
//!   come with a proof of possession ([`create_pop`]) to rule out rogue-key
//!   attacks.

//!
//! The curve arithmetic on the hot paths (hashing to G1, signing, pairing
//! checks, point decoding, sums and Lagrange combination) runs on `blst`,
//! about three times faster than the pure-Rust `ic_bls12_381`, which is
//! kept only for scalar arithmetic (key derivation, Lagrange coefficients).

use blst::BLST_ERROR;
use blst::min_sig as min;
use ic_bls12_381::Scalar;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::RngCore;
use rand_chacha::rand_core::SeedableRng;
use zeroize::Zeroize;

/// Domain separation tag for signatures (min-sig, basic scheme).
pub const SIGNATURE_DST: &[u8] = b"BLS_SIG_BLS12381G1_XMD:SHA-256_SSWU_RO_NUL_";
/// Domain separation tag for proofs of possession of multi-signature keys.
pub const POP_DST: &[u8] = b"BLS_POP_BLS12381G1_XMD:SHA-256_SSWU_RO_POP_";

/// The exact 37-byte DER prefix of a G2 public key (ic-agent compares it).
///
/// `SEQUENCE { SEQUENCE { OID 1.3.6.1.4.1.44668.5.3.1.2.1,
/// OID 1.3.6.1.4.1.44668.5.3.2.1 }, BIT STRING (96 bytes) }`.
pub const DER_PREFIX: [u8; 37] = [
    0x30, 0x81, 0x82, 0x30, 0x1d, 0x06, 0x0d, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0xdc, 0x7c, 0x05, 0x03, 0x01, 0x02,
    0x01, 0x06, 0x0c, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0xdc, 0x7c, 0x05, 0x03, 0x02, 0x01, 0x03, 0x61, 0x00,
];
/// Length of a DER-encoded public key.
pub const DER_LEN: usize = DER_PREFIX.len() + PUBLIC_KEY_LEN;
/// Length of a compressed public key (G2).
pub const PUBLIC_KEY_LEN: usize = 96;
/// Length of a compressed signature (G1).
pub const SIGNATURE_LEN: usize = 48;

/// Why a BLS operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlsError {
    #[error("public key must be {PUBLIC_KEY_LEN} bytes, got {0}")]
    PublicKeyLength(usize),
    #[error("public key is not a valid compressed G2 point in the prime-order subgroup")]
    InvalidPublicKey,
    #[error("public key is the identity element")]
    IdentityPublicKey,
    #[error("DER public key must be {DER_LEN} bytes, got {0}")]
    DerLength(usize),
    #[error("DER public key does not start with the BLS12-381 G2 prefix")]
    DerPrefix,
    #[error("signature must be {SIGNATURE_LEN} bytes, got {0}")]
    SignatureLength(usize),
    #[error("signature is not a valid compressed G1 point in the prime-order subgroup")]
    InvalidSignatureEncoding,
    #[error("secret key is not a canonical scalar")]
    InvalidSecretKey,
    #[error("signature verification failed")]
    VerificationFailed,
    #[error("threshold must be between 1 and the number of nodes ({nodes}), got {threshold}")]
    InvalidThreshold { threshold: usize, nodes: usize },
    #[error("need {threshold} signature shares, got {got}")]
    NotEnoughShares { threshold: usize, got: usize },
    #[error("signature share from node {0} given twice")]
    DuplicateShare(NodeIndex),
    #[error("node index {0} is too large")]
    IndexOutOfRange(NodeIndex),
    #[error("nothing to aggregate")]
    EmptyAggregate,
    #[error("public coefficients are malformed: {0}")]
    MalformedCoefficients(String),
}

/// Position of a node in a threshold committee, starting at 0; its share is
/// the polynomial evaluated at `index + 1`.
pub type NodeIndex = u32;

/// A BLS secret key (a scalar); also a threshold key share. Zeroized on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(Scalar);

impl Drop for SecretKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// A BLS public key: a point in G2.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PublicKey(min::PublicKey);

/// A BLS signature (or signature share): a point in G1.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Signature(min::Signature);

/// The compressed encoding of the point at infinity (G1 or G2 prefix).
fn is_infinity_encoding(bytes: &[u8]) -> bool {
    bytes[0] == 0xc0 && bytes[1..].iter().all(|b| *b == 0)
}

pub(crate) fn random_scalar(rng: &mut impl RngCore) -> Scalar {
    let mut wide = [0u8; 64];
    rng.fill_bytes(&mut wide);
    let s = Scalar::from_bytes_wide(&wide);
    wide.zeroize();
    s
}

/// Checks `e(sig, G2) == e(H(msg), pk)` (points were subgroup-checked
/// when they were decoded).
fn verify_with_dst(dst: &[u8], pk: &PublicKey, msg: &[u8], sig: &Signature) -> Result<(), BlsError> {
    if is_infinity_encoding(&pk.0.compress()) {
        return Err(BlsError::IdentityPublicKey);
    }
    if is_infinity_encoding(&sig.0.compress()) {
        return Err(BlsError::VerificationFailed);
    }
    match sig.0.verify(false, msg, dst, &[], &pk.0, false) {
        BLST_ERROR::BLST_SUCCESS => Ok(()),
        _ => Err(BlsError::VerificationFailed),
    }
}

impl SecretKey {
    /// A key derived deterministically from a 32-byte seed (ChaCha20).
    pub fn from_seed(seed: [u8; 32]) -> SecretKey {
        SecretKey(random_scalar(&mut ChaCha20Rng::from_seed(seed)))
    }

    /// Parses a 32-byte big-endian scalar (the encoding of
    /// `ic-verify-bls-signature`).
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<SecretKey, BlsError> {
        let mut le = *bytes;
        le.reverse();
        let s = Option::<Scalar>::from(Scalar::from_bytes(&le)).ok_or(BlsError::InvalidSecretKey);
        le.zeroize();
        s.map(SecretKey)
    }

    /// The 32-byte big-endian encoding.
    pub fn to_bytes(&self) -> [u8; 32] {
        let mut b = self.0.to_bytes();
        b.reverse();
        b
    }

    /// The same key as blst holds it.
    fn to_blst(&self) -> min::SecretKey {
        let mut be = self.to_bytes();
        let key = min::SecretKey::from_bytes(&be);
        be.zeroize();
        // Any scalar below the group order is accepted; zero is not (a zero
        // key is worthless anyway and never derived from a seed).
        key.unwrap_or_default()
    }

    pub(crate) fn scalar(&self) -> &Scalar {
        &self.0
    }

    pub(crate) fn from_scalar(s: Scalar) -> SecretKey {
        SecretKey(s)
    }

    /// The matching public key `sk · G2`.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.to_blst().sk_to_pk())
    }

    /// Signs `msg` (also how a node signs its threshold share).
    pub fn sign(&self, msg: &[u8]) -> Signature {
        self.sign_with_dst(SIGNATURE_DST, msg)
    }

    fn sign_with_dst(&self, dst: &[u8], msg: &[u8]) -> Signature {
        Signature(self.to_blst().sign(msg, dst, &[]))
    }
}

impl PublicKey {
    /// Parses a 96-byte compressed G2 point, checking subgroup membership.
    pub fn from_bytes(bytes: &[u8]) -> Result<PublicKey, BlsError> {
        if bytes.len() != PUBLIC_KEY_LEN {
            return Err(BlsError::PublicKeyLength(bytes.len()));
        }
        let key = min::PublicKey::uncompress(bytes).map_err(|_| BlsError::InvalidPublicKey)?;
        // The identity is a well-formed point; verification refuses it.
        if !is_infinity_encoding(bytes) && key.validate().is_err() {
            return Err(BlsError::InvalidPublicKey);
        }
        Ok(PublicKey(key))
    }

    /// The 96-byte compressed encoding.
    pub fn to_bytes(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.0.compress()
    }

    /// The 133-byte DER encoding (`DER_PREFIX · key`), as served in
    /// `/api/v2/status` `root_key` and `/subnet/<id>/public_key`.
    pub fn to_der(&self) -> [u8; DER_LEN] {
        let mut out = [0u8; DER_LEN];
        out[..DER_PREFIX.len()].copy_from_slice(&DER_PREFIX);
        out[DER_PREFIX.len()..].copy_from_slice(&self.to_bytes());
        out
    }

    /// Parses the DER encoding, requiring the exact prefix (as ic-agent does).
    pub fn from_der(der: &[u8]) -> Result<PublicKey, BlsError> {
        if der.len() != DER_LEN {
            return Err(BlsError::DerLength(der.len()));
        }
        if der[..DER_PREFIX.len()] != DER_PREFIX {
            return Err(BlsError::DerPrefix);
        }
        PublicKey::from_bytes(&der[DER_PREFIX.len()..])
    }

    /// Verifies a signature on `msg`.
    pub fn verify(&self, msg: &[u8], sig: &Signature) -> Result<(), BlsError> {
        verify_with_dst(SIGNATURE_DST, self, msg, sig)
    }
}

impl Signature {
    /// Parses a 48-byte compressed G1 point, checking subgroup membership.
    pub fn from_bytes(bytes: &[u8]) -> Result<Signature, BlsError> {
        if bytes.len() != SIGNATURE_LEN {
            return Err(BlsError::SignatureLength(bytes.len()));
        }
        let sig = min::Signature::uncompress(bytes).map_err(|_| BlsError::InvalidSignatureEncoding)?;
        if !sig.subgroup_check() {
            return Err(BlsError::InvalidSignatureEncoding);
        }
        Ok(Signature(sig))
    }

    /// The 48-byte compressed encoding.
    pub fn to_bytes(&self) -> [u8; SIGNATURE_LEN] {
        self.0.compress()
    }
}

/// Verifies a signature given as raw bytes against a 96-byte public key
/// (the `verify_bls_signature(sig, msg, key)` of ic-verify-bls-signature).
pub fn verify(public_key: &[u8], msg: &[u8], signature: &[u8]) -> Result<(), BlsError> {
    let pk = PublicKey::from_bytes(public_key)?;
    let sig = Signature::from_bytes(signature)?;
    pk.verify(msg, &sig)
}

// ---------------------------------------------------------------------------
// Threshold keys
// ---------------------------------------------------------------------------

/// The public commitments `a_k · G2` to the coefficients of the sharing
/// polynomial; `coefficients[0]` is the group public key.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PublicCoefficients(Vec<PublicKey>);

impl PublicCoefficients {
    /// How many shares are needed to sign (the polynomial degree plus one).
    pub fn threshold(&self) -> usize {
        self.0.len()
    }

    /// The group public key under which combined signatures verify.
    pub fn group_public_key(&self) -> PublicKey {
        self.0[0]
    }

    /// The public key of node `index`'s share: `Σ_k A_k · (index+1)^k`
    /// (Horner's rule in G2).
    ///
    /// `x = index + 1` is small and public, so each Horner step multiplies by
    /// it with a short variable-time double-and-add instead of a full
    /// constant-time scalar multiplication.
    pub fn public_share(&self, index: NodeIndex) -> PublicKey {
        let x = (u64::from(index) + 1).to_le_bytes();
        let bits = 64 - (u64::from(index) + 1).leading_zeros() as usize;
        let mut acc = blst::blst_p2::default(); // the point at infinity
        for c in self.0.iter().rev() {
            let affine: &blst::blst_p2_affine = (&c.0).into();
            // SAFETY: blst's point routines on valid, initialized points;
            // output and input may alias.
            unsafe {
                let mut scaled = blst::blst_p2::default();
                blst::blst_p2_mult(&mut scaled, &acc, x.as_ptr(), bits);
                blst::blst_p2_add_or_double_affine(&mut acc, &scaled, affine);
            }
        }
        let mut out = blst::blst_p2_affine::default();
        // SAFETY: as above.
        unsafe { blst::blst_p2_to_affine(&mut out, &acc) };
        PublicKey(min::PublicKey::from(out))
    }

    pub(crate) fn from_keys(keys: Vec<PublicKey>) -> PublicCoefficients {
        PublicCoefficients(keys)
    }

    pub(crate) fn keys(&self) -> &[PublicKey] {
        &self.0
    }

    /// `threshold × 96` bytes: the compressed coefficients in order.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.iter().flat_map(|c| c.to_bytes()).collect()
    }

    /// Parses [`PublicCoefficients::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<PublicCoefficients, BlsError> {
        if bytes.is_empty() || !bytes.len().is_multiple_of(PUBLIC_KEY_LEN) {
            return Err(BlsError::MalformedCoefficients(format!(
                "length {} is not a positive multiple of {PUBLIC_KEY_LEN}",
                bytes.len()
            )));
        }
        bytes.chunks(PUBLIC_KEY_LEN).map(PublicKey::from_bytes).collect::<Result<Vec<_>, _>>().map(PublicCoefficients)
    }
}

/// Trusted-dealer threshold key generation from a seed.
///
/// Draws the `threshold` coefficients of a random polynomial `f` from a
/// ChaCha20 stream seeded with `seed` and returns the public coefficients and
/// the `nodes` secret shares, share `i` being `f(i + 1)` for node index `i`.
/// Deterministic: the same seed always yields the same keys (genesis setup).
pub fn generate_threshold_keys(
    seed: [u8; 32],
    threshold: usize,
    nodes: usize,
) -> Result<(PublicCoefficients, Vec<SecretKey>), BlsError> {
    if threshold == 0 || threshold > nodes || nodes > NodeIndex::MAX as usize {
        return Err(BlsError::InvalidThreshold { threshold, nodes });
    }
    let mut rng = ChaCha20Rng::from_seed(seed);
    let coefficients: Vec<SecretKey> = (0..threshold).map(|_| SecretKey(random_scalar(&mut rng))).collect();
    let public = PublicCoefficients(coefficients.iter().map(SecretKey::public_key).collect());
    let shares = (0..nodes)
        .map(|i| {
            let x = Scalar::from(i as u64 + 1);
            let mut acc = Scalar::zero();
            for a in coefficients.iter().rev() {
                acc = acc * x + a.0;
            }
            SecretKey(acc)
        })
        .collect();
    Ok((public, shares))
}

/// Signs `msg` with a key share (same as [`SecretKey::sign`]).
pub fn sign_share(share: &SecretKey, msg: &[u8]) -> Signature {
    share.sign(msg)
}

/// Verifies node `index`'s signature share against its public share.
pub fn verify_share(
    coefficients: &PublicCoefficients,
    index: NodeIndex,
    msg: &[u8],
    share: &Signature,
) -> Result<(), BlsError> {
    coefficients.public_share(index).verify(msg, share)
}

/// Combines signature shares into a signature under the group key.
///
/// Uses the first `threshold` shares (by position in `shares`) with distinct
/// node indices and interpolates at 0: `σ = Σ λ_i σ_i` with
/// `λ_i = Π_{j≠i} x_j / (x_j − x_i)`, `x = index + 1`. Shares are **not**
/// verified here: combine optimistically, verify the result, and check shares
/// individually only if it fails.
pub fn combine(threshold: usize, shares: &[(NodeIndex, Signature)]) -> Result<Signature, BlsError> {
    if threshold == 0 {
        return Err(BlsError::InvalidThreshold { threshold, nodes: shares.len() });
    }
    let mut chosen: Vec<(Scalar, &Signature)> = Vec::with_capacity(threshold);
    let mut seen = std::collections::BTreeSet::new();
    for (index, sig) in shares {
        if !seen.insert(*index) {
            return Err(BlsError::DuplicateShare(*index));
        }
        if *index == NodeIndex::MAX {
            return Err(BlsError::IndexOutOfRange(*index));
        }
        if chosen.len() < threshold {
            chosen.push((Scalar::from(u64::from(*index) + 1), sig));
        }
    }
    if chosen.len() < threshold {
        return Err(BlsError::NotEnoughShares { threshold, got: chosen.len() });
    }
    if let [(_, sig)] = chosen.as_slice() {
        // Threshold 1: the polynomial is constant, every share is the
        // signature itself (λ = 1); skip a full scalar multiplication.
        return Ok(**sig);
    }
    let mut acc = blst::blst_p1::default(); // the point at infinity
    for (i, (xi, sig)) in chosen.iter().enumerate() {
        let mut num = Scalar::one();
        let mut den = Scalar::one();
        for (j, (xj, _)) in chosen.iter().enumerate() {
            if i != j {
                num *= xj;
                den *= xj - xi;
            }
        }
        let den_inv = Option::<Scalar>::from(den.invert()).expect("distinct x values");
        let mut lambda = (num * den_inv).to_bytes(); // little-endian, as blst wants it
        let affine: &blst::blst_p1_affine = (&sig.0).into();
        // SAFETY: blst's point routines on valid, initialized points;
        // output and input may alias.
        unsafe {
            let mut point = blst::blst_p1::default();
            blst::blst_p1_from_affine(&mut point, affine);
            let mut term = blst::blst_p1::default();
            blst::blst_p1_mult(&mut term, &point, lambda.as_ptr(), 255);
            blst::blst_p1_add_or_double(&mut acc, &acc, &term);
        }
        lambda.zeroize();
    }
    let mut out = blst::blst_p1_affine::default();
    // SAFETY: as above.
    unsafe { blst::blst_p1_to_affine(&mut out, &acc) };
    Ok(Signature(min::Signature::from(out)))
}

// ---------------------------------------------------------------------------
// Multi-signatures
// ---------------------------------------------------------------------------

/// Sums signatures by different keys on the same message.
pub fn aggregate_signatures(signatures: &[Signature]) -> Result<Signature, BlsError> {
    if signatures.is_empty() {
        return Err(BlsError::EmptyAggregate);
    }
    let refs: Vec<&min::Signature> = signatures.iter().map(|s| &s.0).collect();
    let sum = min::AggregateSignature::aggregate(&refs, false).map_err(|_| BlsError::EmptyAggregate)?;
    Ok(Signature(sum.to_signature()))
}

/// Sums public keys, for verifying an aggregated signature.
pub fn aggregate_public_keys(keys: &[PublicKey]) -> Result<PublicKey, BlsError> {
    if keys.is_empty() {
        return Err(BlsError::EmptyAggregate);
    }
    let refs: Vec<&min::PublicKey> = keys.iter().map(|k| &k.0).collect();
    let sum = min::AggregatePublicKey::aggregate(&refs, false).map_err(|_| BlsError::EmptyAggregate)?;
    Ok(PublicKey(sum.to_public_key()))
}

/// Verifies an aggregated signature on `msg` by all of `keys`.
///
/// Only sound if every key's proof of possession was checked when the key
/// was registered ([`verify_pop`]).
pub fn verify_multi(keys: &[PublicKey], msg: &[u8], signature: &Signature) -> Result<(), BlsError> {
    aggregate_public_keys(keys)?.verify(msg, signature)
}

/// A proof of possession: the key's signature over its own compressed bytes
/// under [`POP_DST`].
pub fn create_pop(secret: &SecretKey) -> Signature {
    let pk = secret.public_key().to_bytes();
    secret.sign_with_dst(POP_DST, &pk)
}

/// Checks a proof of possession for `public_key`.
pub fn verify_pop(public_key: &PublicKey, pop: &Signature) -> Result<(), BlsError> {
    verify_with_dst(POP_DST, public_key, &public_key.to_bytes(), pop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(expected: bool, sig: &str, msg: &str, key: &str) {
        let r = verify(&hex::decode(key).unwrap(), &hex::decode(msg).unwrap(), &hex::decode(sig).unwrap());
        assert_eq!(r.is_ok(), expected, "{r:?}");
    }

    const MAINNET_KEY: &str = "814c0e6ec71fab583b08bd81373c255c3c371b2e84863c98a4f1e08b74235d14fb5d9c0cd546d9685f913a0c0b2cc5341583bf4b4392e467db96d65b9bb4cb717112f8472e0d5a4d14505ffd7484b01291091c5f87b98883463f98091a0baaae";

    /// Vectors from dfinity/verify-bls-signatures `tests/tests.rs` (derived
    /// from agent-rs): real state-root signatures under the mainnet root key.
    #[test]
    fn real_world_vectors() {
        check(
            true,
            "ace9fcdd9bc977e05d6328f889dc4e7c99114c737a494653cb27a1f55c06f4555e0f160980af5ead098acc195010b2f7",
            "0d69632d73746174652d726f6f74e6c01e909b4923345ce5970962bcfe3004bfd8474a21dae28f50692502f46d90",
            MAINNET_KEY,
        );
        check(
            true,
            "89a2be21b5fa8ac9fab1527e041327ce899d7da971436a1f2165393947b4d942365bfe5488710e61a619ba48388a21b1",
            "0d69632d73746174652d726f6f74b294b418b11ebe5dd7dd1dcb099e4e0372b9a42aef7a7a37fb4f25667d705ea9",
            "9933e1f89e8a3c4d7fdcccdbd518089e2bd4d8180a261f18d9c247a52768ebce98dc7328a39814a8f911086a1dd50cbe015e2a53b7bf78b55288893daa15c346640e8831d72a12bdedd979d28470c34823b8d1c3f4795d9c3984a247132e94fe",
        );
        // Swapped pairs must fail; so must a non-point signature or key.
        check(
            false,
            "89a2be21b5fa8ac9fab1527e041327ce899d7da971436a1f2165393947b4d942365bfe5488710e61a619ba48388a21b1",
            "0d69632d73746174652d726f6f74e6c01e909b4923345ce5970962bcfe3004bfd8474a21dae28f50692502f46d90",
            MAINNET_KEY,
        );
        check(
            false,
            "ace9fcdd9bc977e05d6328f889dc4e7c99114c737a494653cb27a1f55c06f4555e0f160980af5ead098acc195010b2f8",
            "0d69632d73746174652d726f6f74e6c01e909b4923345ce5970962bcfe3004bfd8474a21dae28f50692502f46d90",
            MAINNET_KEY,
        );
        // Identity key with identity signature is rejected.
        check(
            false,
            &format!("c0{}", "00".repeat(47)),
            "0d69632d73746174652d726f6f74e6c01e909b4923345ce5970962bcfe3004bfd8474a21dae28f50",
            &format!("c0{}", "00".repeat(95)),
        );
        // Generated by the IC's threshold signature implementation.
        check(
            true,
            "98733cc2b312d5787cd4dba6ea0e19a1f1850b9e8c6d5112f12e12db8e7413a4ecb4096c23730566c67d9b2694e4e179",
            "e751fdb69185002b13c8d2954c7d0c39546402ecdde9c2a9a2c624293535a5ca2f560a582f705580448fbe1ccdc0e86af3ba4c487a7f73bc9c312556",
            "87033f48fd8f327ff5d164e85af31433c6a8c73fc5a65bad5d472127205c73c5168a45e862f5af6d0da5676df45d0a5f1293a530d5498f812a34a280f6bef869e4ca9b7c275554456d8770733d72ac4006777382fa541873fe002adb12184268",
        );
    }

    /// Signing vector from dfinity/verify-bls-signatures (`generates_expected_signature`).
    #[test]
    fn signing_is_byte_exact() {
        let sk = SecretKey::from_bytes(
            &hex::decode("6f3977f6051e184b2c412daa1b5c0115ef7ab347cac8d808ffa2c26bd0658243")
                .unwrap()
                .try_into()
                .unwrap(),
        )
        .unwrap();
        let msg = hex::decode("50484522ad8aede64ec7f86b9273b7ed3940481acf93cdd40a2b77f2be2734a14012b2492b6363b12adaeaf055c573e4611b085d2e0fe2153d72453a95eaebf350ac3ba6a26ba0bc79f4c0bf5664dfdf5865f69f7fc6b58ba7d068e8").unwrap();
        assert_eq!(
            hex::encode(sk.sign(&msg).to_bytes()),
            "8f7ad830632657f7b3eae17fd4c3d9ff5c13365eea8d33fd0a1a6d8fbebc5152e066bb0ad61ab64e8a8541c8e3f96de9"
        );
        assert_eq!(SecretKey::from_bytes(&sk.to_bytes()).unwrap(), sk);
    }

    #[test]
    fn der_roundtrip_and_prefix_check() {
        let pk = SecretKey::from_seed([1; 32]).public_key();
        let der = pk.to_der();
        assert_eq!(der.len(), 133);
        assert_eq!(PublicKey::from_der(&der).unwrap(), pk);
        let mut bad = der;
        bad[5] ^= 1;
        assert_eq!(PublicKey::from_der(&bad), Err(BlsError::DerPrefix));
        assert_eq!(PublicKey::from_der(&der[1..]), Err(BlsError::DerLength(132)));
    }

    #[test]
    fn single_key_sign_verify() {
        let sk = SecretKey::from_seed([7; 32]);
        let pk = sk.public_key();
        let sig = sk.sign(b"hello");
        pk.verify(b"hello", &sig).unwrap();
        assert_eq!(pk.verify(b"hellO", &sig), Err(BlsError::VerificationFailed));
        assert_eq!(Signature::from_bytes(&sig.to_bytes()).unwrap(), sig);
        assert_eq!(PublicKey::from_bytes(&pk.to_bytes()).unwrap(), pk);
        assert_ne!(SecretKey::from_seed([8; 32]), sk);
    }

    #[test]
    fn threshold_any_t_shares_combine() {
        let (coeffs, shares) = generate_threshold_keys([3; 32], 3, 5).unwrap();
        assert_eq!(coeffs.threshold(), 3);
        let msg = b"certify me";
        let sigs: Vec<(NodeIndex, Signature)> =
            shares.iter().enumerate().map(|(i, s)| (i as NodeIndex, sign_share(s, msg))).collect();
        for (i, s) in &sigs {
            verify_share(&coeffs, *i, msg, s).unwrap();
            assert_eq!(shares[*i as usize].public_key(), coeffs.public_share(*i));
        }
        assert!(verify_share(&coeffs, 1, msg, &sigs[0].1).is_err());
        let group = coeffs.group_public_key();
        let expected = combine(3, &sigs[..3]).unwrap();
        group.verify(msg, &expected).unwrap();
        // Any subset of size t gives the same (unique) signature.
        for subset in [[0, 1, 2], [4, 2, 0], [1, 3, 4], [2, 3, 4]] {
            let chosen: Vec<_> = subset.iter().map(|&i| sigs[i]).collect();
            assert_eq!(combine(3, &chosen).unwrap(), expected);
        }
        // Extra shares beyond t are ignored; too few or duplicates fail.
        assert_eq!(combine(3, &sigs).unwrap(), expected);
        assert!(matches!(combine(3, &sigs[..2]), Err(BlsError::NotEnoughShares { .. })));
        assert_eq!(combine(3, &[sigs[0], sigs[0], sigs[1]]), Err(BlsError::DuplicateShare(0)));
        // A bad share makes the combined signature fail to verify.
        let mut tampered = sigs[..3].to_vec();
        tampered[1].1 = sign_share(&shares[1], b"other");
        assert!(group.verify(msg, &combine(3, &tampered).unwrap()).is_err());
        // Deterministic from the seed; coefficients round-trip.
        let (again, _) = generate_threshold_keys([3; 32], 3, 5).unwrap();
        assert_eq!(again, coeffs);
        assert_eq!(PublicCoefficients::from_bytes(&coeffs.to_bytes()).unwrap(), coeffs);
        assert!(generate_threshold_keys([0; 32], 0, 3).is_err());
        assert!(generate_threshold_keys([0; 32], 4, 3).is_err());
    }

    #[test]
    fn threshold_one_of_one() {
        let (coeffs, shares) = generate_threshold_keys([9; 32], 1, 1).unwrap();
        let sig = combine(1, &[(0, shares[0].sign(b"m"))]).unwrap();
        coeffs.group_public_key().verify(b"m", &sig).unwrap();
        // Threshold 1 of 4: any single share is the group signature.
        let (coeffs, shares) = generate_threshold_keys([7; 32], 1, 4).unwrap();
        for (i, share) in shares.iter().enumerate() {
            let sig = combine(1, &[(i as NodeIndex, sign_share(share, b"m"))]).unwrap();
            coeffs.group_public_key().verify(b"m", &sig).unwrap();
        }
    }

    #[test]
    fn multi_signatures() {
        let keys: Vec<SecretKey> = (0..4u8).map(|i| SecretKey::from_seed([i; 32])).collect();
        let pks: Vec<PublicKey> = keys.iter().map(SecretKey::public_key).collect();
        for (sk, pk) in keys.iter().zip(&pks) {
            verify_pop(pk, &create_pop(sk)).unwrap();
        }
        assert!(verify_pop(&pks[0], &create_pop(&keys[1])).is_err());
        // A PoP is not a signature on the key bytes under the signing DST.
        assert!(verify_pop(&pks[0], &keys[0].sign(&pks[0].to_bytes())).is_err());
        let sigs: Vec<Signature> = keys.iter().map(|k| k.sign(b"block")).collect();
        let agg = aggregate_signatures(&sigs).unwrap();
        verify_multi(&pks, b"block", &agg).unwrap();
        assert!(verify_multi(&pks[..3], b"block", &agg).is_err());
        assert!(verify_multi(&pks, b"other", &agg).is_err());
        assert_eq!(aggregate_signatures(&[]), Err(BlsError::EmptyAggregate));
    }

    #[test]
    #[ignore = "timing report; run with --ignored --nocapture"]
    fn timings() {
        use std::time::Instant;
        fn time<T>(n: u32, mut f: impl FnMut() -> T) -> std::time::Duration {
            let start = Instant::now();
            for _ in 0..n {
                std::hint::black_box(f());
            }
            start.elapsed() / n
        }
        let sk = SecretKey::from_seed([1; 32]);
        let pk = sk.public_key();
        let msg = [0x42u8; 46];
        let sig = sk.sign(&msg);
        let sign = time(50, || sk.sign(&msg));
        let verify = time(50, || pk.verify(&msg, &sig).unwrap());
        let (coeffs, shares) = generate_threshold_keys([2; 32], 9, 13).unwrap();
        let sigs: Vec<_> = shares.iter().enumerate().map(|(i, s)| (i as NodeIndex, s.sign(&msg))).collect();
        let public_share = time(50, || coeffs.public_share(7));
        let verify_share_t = time(20, || verify_share(&coeffs, 7, &msg, &sigs[7].1).unwrap());
        let combine_t = time(50, || combine(9, &sigs).unwrap());
        let keygen = time(5, || generate_threshold_keys([2; 32], 9, 13).unwrap());
        println!(
            "BLS: sign {sign:?}, verify {verify:?}, public_share(t=9) {public_share:?}, verify_share(t=9) {verify_share_t:?}, combine(9 of 13) {combine_t:?}, keygen(9 of 13) {keygen:?}"
        );
    }
}
