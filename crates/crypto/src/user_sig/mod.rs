//! Ingress authentication: who sent a request, and may they send it?
//!
//! The HTTP layer calls [`authenticate`] with the envelope's auth fields, the
//! request id, the claimed `sender` and the current time. It checks, as the
//! interface spec requires:
//!
//! * anonymous senders carry no credentials; anyone else carries
//!   `sender_pubkey` and `sender_sig`, and `sender = self_auth(sender_pubkey)`;
//! * the delegation chain: at most 20 links, each signed by the previous key
//!   (`"\x1Aic-request-auth-delegation" · hash_of_map(delegation)`), none
//!   expired, at most 1000 targets each, no key used twice, `permissions`
//!   `"queries"`, `"all"` or absent;
//! * `sender_sig` on `"\x0Aic-request" · request_id` by the last key;
//! * `sender_info` (if any) signed by a canister-signature `sender_pubkey`.
//!
//! Supported key schemes: Ed25519, ECDSA P-256 and secp256k1 (raw `r‖s`),
//! WebAuthn (COSE ECDSA P-256, Ed25519, RSA PKCS#1 v1.5), and canister
//! signatures (whose certificates chain to the root key).
//!
//! The caller still checks what depends on the request type: that the
//! target canister is in [`AuthOutcome::targets`] and that a `/call` is not
//! sent with a queries-only chain (see [`AuthOutcome::check_target`]), and
//! the ingress expiry.

mod canister_sig;
mod keys;
mod webauthn;

pub use canister_sig::{canister_sig_public_key_der, verify_canister_signature};
pub use keys::{UserPublicKey, verify_user_signature};
pub use webauthn::CoseKey;

use crate::certificate::CertificateError;
use crate::request_id::{Value, hash_of_map};
use crate::{Digest, domain};
use cairn_types::messages::SenderInfo;
use cairn_types::{MessageId, Principal, Time};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashSet};
use std::fmt;

/// Maximum number of delegations in a chain.
pub const MAX_DELEGATIONS: usize = 20;
/// Maximum number of targets of one delegation.
pub const MAX_TARGETS_PER_DELEGATION: usize = 1000;

/// Why a public key is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublicKeyError {
    #[error("malformed DER: {0}")]
    Der(String),
    #[error("unsupported public key algorithm {0}")]
    UnsupportedAlgorithm(String),
    #[error("unsupported ECDSA curve {0} (only P-256 and secp256k1 are accepted)")]
    UnsupportedCurve(String),
    #[error("{scheme} public key must be {expected} bytes, got {got}")]
    Length { scheme: &'static str, expected: usize, got: usize },
    #[error("ECDSA public keys must be uncompressed SEC1 points (65 bytes starting with 04)")]
    NotUncompressed,
    #[error("{0} public key is not a valid curve point")]
    InvalidPoint(&'static str),
    #[error("invalid WebAuthn COSE key: {0}")]
    Cose(String),
    #[error("invalid canister signature public key: {0}")]
    CanisterKey(String),
}

/// Why a signature does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("{scheme} signature must be {expected} bytes, got {got}")]
    Length { scheme: &'static str, expected: usize, got: usize },
    #[error("malformed {scheme} signature: {reason}")]
    Encoding { scheme: &'static str, reason: String },
    #[error("{scheme} signature verification failed")]
    Invalid { scheme: &'static str },
    #[error("malformed WebAuthn signature: {0}")]
    WebAuthn(String),
    #[error("WebAuthn challenge is 0x{got}, but the signed payload is 0x{expected}")]
    ChallengeMismatch { expected: String, got: String },
    #[error("malformed canister signature: {0}")]
    CanisterSignature(String),
    #[error("canister signature certificate is invalid: {0}")]
    Certificate(CertificateError),
    #[error("canister signature certificate is delegated to cloud-engine subnet {0}")]
    CloudEngineSubnet(Principal),
    #[error("canister certified data 0x{certified} differs from the signature tree root 0x{tree_root}")]
    CertifiedDataMismatch { certified: String, tree_root: String },
    #[error("the canister signature tree does not sign this message: its sig leaf {lookup}")]
    NotSigned { lookup: &'static str },
}

/// A key or signature problem, for [`verify_user_signature`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserSigError {
    #[error(transparent)]
    Key(#[from] PublicKeyError),
    #[error(transparent)]
    Signature(#[from] SignatureError),
}

/// Which key of the envelope an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRole {
    /// `sender_pubkey`.
    SenderPubkey,
    /// `sender_delegation[i].delegation.pubkey`.
    Delegation(usize),
}

impl fmt::Display for KeyRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyRole::SenderPubkey => f.write_str("sender_pubkey"),
            KeyRole::Delegation(i) => write!(f, "the pubkey of delegation {i}"),
        }
    }
}

/// Why a request's authentication was refused. Messages name the link,
/// key and check that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("anonymous requests must not carry {0}")]
    AnonymousWithCredentials(&'static str),
    #[error("sender {0} is not anonymous, but sender_pubkey is missing")]
    MissingPublicKey(Principal),
    #[error("sender_pubkey is present, but sender_sig is missing")]
    MissingSignature,
    #[error("sender {sender} does not match sender_pubkey, whose principal is {derived}")]
    SenderMismatch { sender: Principal, derived: Principal },
    #[error("{role} is not an acceptable public key: {source}")]
    InvalidPublicKey { role: KeyRole, source: PublicKeyError },
    #[error("{count} delegations exceed the maximum of {MAX_DELEGATIONS}")]
    TooManyDelegations { count: usize },
    #[error("delegation {index} has {count} targets, more than the maximum of {MAX_TARGETS_PER_DELEGATION}")]
    TooManyTargets { index: usize, count: usize },
    #[error("delegation {index} expired at {expiration} ns; now is {now} ns")]
    DelegationExpired { index: usize, expiration: u64, now: u64 },
    #[error("delegation {index} delegates to a public key that already appears earlier in the chain")]
    RepeatedKey { index: usize },
    #[error("delegation {index} has invalid permissions {value:?} (expected \"queries\" or \"all\")")]
    InvalidPermissions { index: usize, value: String },
    #[error("the signature on delegation {index} by {signer} is invalid: {source}")]
    InvalidDelegationSignature { index: usize, signer: KeyRole, source: SignatureError },
    #[error("sender_sig by {signer} is invalid: {source}")]
    InvalidSenderSignature { signer: KeyRole, source: SignatureError },
    #[error("sender_info requires a canister-signature sender_pubkey, but it is {scheme}")]
    SenderInfoNeedsCanisterKey { scheme: &'static str },
    #[error("sender_info signer {signer} is not canister {canister} of sender_pubkey")]
    SenderInfoSignerMismatch { signer: Principal, canister: Principal },
    #[error("sender_info signature is invalid: {0}")]
    InvalidSenderInfoSignature(SignatureError),
    #[error("the delegation targets do not include canister {0}")]
    TargetNotAllowed(Principal),
    #[error("the delegation chain allows only queries, so this call is refused")]
    QueriesOnly,
}

/// The content of a delegation, as hashed and signed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delegation {
    /// The delegated-to key (DER).
    #[serde(with = "serde_bytes")]
    pub pubkey: Vec<u8>,
    /// Expiry, nanoseconds since the epoch.
    pub expiration: u64,
    /// If present, only these canisters may be called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<Principal>>,
    /// `"queries"` restricts the chain to queries; `"all"` or absent does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<String>,
}

impl Delegation {
    /// `hash_of_map` over the present fields.
    pub fn hash(&self) -> Digest {
        let mut fields = vec![("pubkey", Value::blob(&self.pubkey)), ("expiration", Value::Nat(self.expiration))];
        if let Some(targets) = &self.targets {
            fields.push(("targets", Value::Array(targets.iter().map(|t| Value::blob(t.as_slice())).collect())));
        }
        if let Some(p) = &self.permissions {
            fields.push(("permissions", Value::text(p.clone())));
        }
        hash_of_map(fields.iter().map(|(k, v)| (*k, v)))
    }

    /// The bytes the delegating key signs.
    pub fn signed_bytes(&self) -> Vec<u8> {
        domain::with_separator(domain::REQUEST_AUTH_DELEGATION, &self.hash())
    }
}

/// One element of `sender_delegation`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedDelegation {
    /// The delegation.
    pub delegation: Delegation,
    /// Its signature by the previous key in the chain.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

/// The `sender_info` field of a call or query.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedSenderInfo {
    /// Arbitrary bytes vouched for by the signer canister.
    #[serde(with = "serde_bytes")]
    pub info: Vec<u8>,
    /// The canister that signed (must be the canister of `sender_pubkey`).
    pub signer: Principal,
    /// Signature by `sender_pubkey` on `"\x0Eic-sender-info" · info`.
    #[serde(with = "serde_bytes")]
    pub sig: Vec<u8>,
}

/// The authentication fields of an envelope, borrowed from the decoded request.
#[derive(Clone, Copy, Debug, Default)]
pub struct EnvelopeAuth<'a> {
    /// `sender_pubkey` (DER).
    pub sender_pubkey: Option<&'a [u8]>,
    /// `sender_sig`.
    pub sender_sig: Option<&'a [u8]>,
    /// `sender_delegation` (an empty list is the same as none).
    pub sender_delegation: Option<&'a [SignedDelegation]>,
    /// `content.sender_info`.
    pub sender_info: Option<&'a SignedSenderInfo>,
}

/// What a successfully authenticated request may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthOutcome {
    /// The canisters the request may target: `None` means any.
    pub targets: Option<BTreeSet<Principal>>,
    /// Whether a delegation restricted the chain to queries.
    pub queries_only: bool,
    /// The verified sender info, to hand to the canister.
    pub sender_info: Option<SenderInfo>,
}

impl AuthOutcome {
    /// An outcome with no restrictions (anonymous or undelegated senders).
    fn unrestricted() -> AuthOutcome {
        AuthOutcome { targets: None, queries_only: false, sender_info: None }
    }

    /// Whether `canister` is within the delegation targets.
    pub fn allows(&self, canister: &Principal) -> bool {
        self.targets.as_ref().is_none_or(|t| t.contains(canister))
    }

    /// Checks the target canister and, for `/call` requests
    /// (`is_update_call`), that the chain is not queries-only.
    pub fn check_target(&self, canister: &Principal, is_update_call: bool) -> Result<(), AuthError> {
        if !self.allows(canister) {
            return Err(AuthError::TargetNotAllowed(*canister));
        }
        if is_update_call && self.queries_only {
            return Err(AuthError::QueriesOnly);
        }
        Ok(())
    }
}

/// Authenticates a request (see the module docs for the checks).
///
/// `root_key_der` is the 133-byte DER root key; it is needed whenever a
/// canister signature appears (e.g. Internet Identity delegations).
pub fn authenticate(
    auth: &EnvelopeAuth<'_>,
    request_id: &MessageId,
    sender: &Principal,
    now: Time,
    root_key_der: &[u8],
) -> Result<AuthOutcome, AuthError> {
    let delegations = auth.sender_delegation.unwrap_or(&[]);
    if sender.is_anonymous() {
        let present = [
            (auth.sender_pubkey.is_some(), "sender_pubkey"),
            (auth.sender_sig.is_some(), "sender_sig"),
            (!delegations.is_empty(), "sender_delegation"),
            (auth.sender_info.is_some(), "sender_info"),
        ];
        if let Some((_, name)) = present.iter().find(|(p, _)| *p) {
            return Err(AuthError::AnonymousWithCredentials(name));
        }
        return Ok(AuthOutcome::unrestricted());
    }
    let pubkey = auth.sender_pubkey.ok_or(AuthError::MissingPublicKey(*sender))?;
    let sender_sig = auth.sender_sig.ok_or(AuthError::MissingSignature)?;
    let derived = Principal::self_authenticating(pubkey);
    if derived != *sender {
        return Err(AuthError::SenderMismatch { sender: *sender, derived });
    }
    if delegations.len() > MAX_DELEGATIONS {
        return Err(AuthError::TooManyDelegations { count: delegations.len() });
    }
    let sender_key = UserPublicKey::from_der(pubkey)
        .map_err(|source| AuthError::InvalidPublicKey { role: KeyRole::SenderPubkey, source })?;

    let mut seen: HashSet<&[u8]> = HashSet::from([pubkey]);
    let mut outcome = AuthOutcome::unrestricted();
    let mut signer_role = KeyRole::SenderPubkey;
    let mut signer_key = sender_key.clone();
    for (index, signed) in delegations.iter().enumerate() {
        let d = &signed.delegation;
        if d.expiration < now.as_nanos() {
            return Err(AuthError::DelegationExpired { index, expiration: d.expiration, now: now.as_nanos() });
        }
        match d.permissions.as_deref() {
            None | Some("all") => {}
            Some("queries") => outcome.queries_only = true,
            Some(other) => {
                return Err(AuthError::InvalidPermissions { index, value: other.to_string() });
            }
        }
        if let Some(targets) = &d.targets {
            if targets.len() > MAX_TARGETS_PER_DELEGATION {
                return Err(AuthError::TooManyTargets { index, count: targets.len() });
            }
            let these: BTreeSet<Principal> = targets.iter().copied().collect();
            outcome.targets = Some(match outcome.targets.take() {
                None => these,
                Some(previous) => previous.intersection(&these).copied().collect(),
            });
        }
        signer_key
            .verify(&d.signed_bytes(), &signed.signature, root_key_der)
            .map_err(|source| AuthError::InvalidDelegationSignature { index, signer: signer_role, source })?;
        if !seen.insert(&d.pubkey) {
            return Err(AuthError::RepeatedKey { index });
        }
        signer_role = KeyRole::Delegation(index);
        signer_key = UserPublicKey::from_der(&d.pubkey)
            .map_err(|source| AuthError::InvalidPublicKey { role: signer_role, source })?;
    }

    let message = domain::with_separator(domain::REQUEST, request_id.as_bytes());
    signer_key
        .verify(&message, sender_sig, root_key_der)
        .map_err(|source| AuthError::InvalidSenderSignature { signer: signer_role, source })?;

    if let Some(info) = auth.sender_info {
        let UserPublicKey::CanisterSignature { canister_id, .. } = &sender_key else {
            return Err(AuthError::SenderInfoNeedsCanisterKey { scheme: sender_key.scheme() });
        };
        if info.signer != canister_id.get() {
            return Err(AuthError::SenderInfoSignerMismatch { signer: info.signer, canister: canister_id.get() });
        }
        let message = domain::with_separator(domain::SENDER_INFO, &info.info);
        sender_key.verify(&message, &info.sig, root_key_der).map_err(AuthError::InvalidSenderInfoSignature)?;
        outcome.sender_info = Some(SenderInfo { info: info.info.clone(), signer: info.signer });
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests;
