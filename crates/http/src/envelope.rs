//! Decoding request envelopes (interface spec "Request encoding").
//!
//! A body is `tag55799?({content, sender_pubkey?, sender_sig?,
//! sender_delegation?})`. [`decode_envelope`] turns untrusted bytes into an
//! [`Envelope`]: it checks the CBOR structure first (bounded memory), reads
//! every field the request type needs with an error that names the field,
//! enforces the per-field limits (nonce ≤ 32 bytes, ≤ 1000 paths of ≤ 127
//! labels), and computes the request id by representation-independent
//! hashing over *all* content fields the client sent, so that it matches the
//! id the client signed.
//!
//! Nothing here looks at the clock, the state or signatures; see
//! [`crate::validate`] for that.

use crate::cbor::{self, CborError, StructureLimits, kind, untag};
use cairn_crypto::request_id::{ValueError, request_id_of_cbor};
use cairn_crypto::user_sig::{Delegation, EnvelopeAuth, SignedDelegation, SignedSenderInfo};
use cairn_types::{CanisterId, MessageId, Principal};
use ciborium::Value as Cbor;
use std::collections::HashSet;

/// Maximum length of `nonce` in bytes.
pub const MAX_NONCE_LEN: usize = 32;
/// Maximum number of `paths` in a read_state request.
pub const MAX_PATHS: usize = 1000;
/// Maximum number of labels in one read_state path.
pub const MAX_PATH_LABELS: usize = 127;
/// Maximum number of entries of any map inside `content`. Real content maps
/// have at most a dozen fields; the bound keeps hashing and duplicate-key
/// checks cheap on hostile input.
pub const MAX_CONTENT_MAP_ENTRIES: usize = 256;

/// The three kinds of requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestType {
    /// An update call (`/call`).
    Call,
    /// A query (`/query`).
    Query,
    /// A state read (`/read_state`).
    ReadState,
}

impl RequestType {
    /// The `request_type` text on the wire.
    pub fn as_str(&self) -> &'static str {
        match self {
            RequestType::Call => "call",
            RequestType::Query => "query",
            RequestType::ReadState => "read_state",
        }
    }
}

/// The canister-call part of a `call` or `query` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanisterCall {
    /// `canister_id`: the callee (`aaaaa-aa` for the management canister).
    pub canister_id: CanisterId,
    /// `method_name`.
    pub method_name: String,
    /// `arg`: the Candid (or raw) argument bytes.
    pub arg: Vec<u8>,
    /// `sender_info`, verified later together with the sender's key.
    pub sender_info: Option<SignedSenderInfo>,
}

/// What a request asks for, by type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestBody {
    /// `request_type: "call"`.
    Call(CanisterCall),
    /// `request_type: "query"`.
    Query(CanisterCall),
    /// `request_type: "read_state"`: the requested paths (each a list of labels).
    ReadState { paths: Vec<Vec<Vec<u8>>> },
}

/// A decoded, not yet authenticated request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// `hash_of_map(content)` over every field the client sent.
    pub request_id: MessageId,
    /// `content.sender`.
    pub sender: Principal,
    /// `content.ingress_expiry`, ns since the epoch.
    pub ingress_expiry: u64,
    /// `content.nonce` (≤ 32 bytes).
    pub nonce: Option<Vec<u8>>,
    /// The type-specific fields.
    pub body: RequestBody,
    /// `sender_pubkey` (DER).
    pub sender_pubkey: Option<Vec<u8>>,
    /// `sender_sig`.
    pub sender_sig: Option<Vec<u8>>,
    /// `sender_delegation` (empty when absent).
    pub sender_delegation: Vec<SignedDelegation>,
}

impl Envelope {
    /// The request type.
    pub fn request_type(&self) -> RequestType {
        match self.body {
            RequestBody::Call(_) => RequestType::Call,
            RequestBody::Query(_) => RequestType::Query,
            RequestBody::ReadState { .. } => RequestType::ReadState,
        }
    }

    /// The called canister and method, for calls and queries.
    pub fn canister_call(&self) -> Option<&CanisterCall> {
        match &self.body {
            RequestBody::Call(c) | RequestBody::Query(c) => Some(c),
            RequestBody::ReadState { .. } => None,
        }
    }

    /// The authentication fields, as [`cairn_crypto::user_sig::authenticate`] takes them.
    pub fn auth(&self) -> EnvelopeAuth<'_> {
        EnvelopeAuth {
            sender_pubkey: self.sender_pubkey.as_deref(),
            sender_sig: self.sender_sig.as_deref(),
            sender_delegation: (!self.sender_delegation.is_empty()).then_some(self.sender_delegation.as_slice()),
            sender_info: self.canister_call().and_then(|c| c.sender_info.as_ref()),
        }
    }
}

/// Why a body is not a well-formed envelope. Every message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("the request body is not valid CBOR: {0}")]
    Cbor(#[from] CborError),
    #[error("{what} must be a CBOR map, found {found}")]
    NotAMap { what: String, found: &'static str },
    #[error("{what} has a map key that is not a text string")]
    NonTextKey { what: String },
    #[error("{what} has the key {key:?} more than once")]
    DuplicateKey { what: String, key: String },
    #[error("{what} has {count} entries, more than the maximum of {MAX_CONTENT_MAP_ENTRIES}")]
    MapTooLarge { what: String, count: usize },
    #[error("the request has no {0} field")]
    Missing(String),
    #[error("{field} must be {expected}, found {found}")]
    WrongType { field: String, expected: &'static str, found: &'static str },
    #[error("unknown request_type {0:?} (expected \"call\", \"query\" or \"read_state\")")]
    UnknownRequestType(String),
    #[error("{field} is not a valid principal: {reason}")]
    InvalidPrincipal { field: String, reason: String },
    #[error("{field} does not fit in 64 bits")]
    NatTooLarge { field: String },
    #[error("content.nonce is {0} bytes long, the maximum is {MAX_NONCE_LEN}")]
    NonceTooLong(usize),
    #[error("content.paths has {0} paths, the maximum is {MAX_PATHS}")]
    TooManyPaths(usize),
    #[error("content.paths[{index}] has {labels} labels, the maximum is {MAX_PATH_LABELS}")]
    PathTooLong { index: usize, labels: usize },
    #[error("{field} has the unknown field {key:?}, which cannot be verified")]
    UnknownField { field: String, key: String },
    #[error("the request id cannot be computed from the content: {0}")]
    Hash(#[from] ValueError),
}

/// A map's entries after checking that keys are unique text strings.
struct Fields<'a> {
    what: String,
    entries: Vec<(&'a str, &'a Cbor)>,
}

impl<'a> Fields<'a> {
    fn of(value: &'a Cbor, what: impl Into<String>) -> Result<Fields<'a>, EnvelopeError> {
        let what = what.into();
        let Cbor::Map(raw) = untag(value) else {
            return Err(EnvelopeError::NotAMap { found: kind(untag(value)), what });
        };
        let mut seen = HashSet::with_capacity(raw.len());
        let mut entries = Vec::with_capacity(raw.len());
        for (k, v) in raw {
            let Cbor::Text(key) = k else {
                return Err(EnvelopeError::NonTextKey { what });
            };
            if !seen.insert(key.as_str()) {
                return Err(EnvelopeError::DuplicateKey { what, key: key.clone() });
            }
            entries.push((key.as_str(), v));
        }
        Ok(Fields { what, entries })
    }

    fn name(&self, key: &str) -> String {
        if self.what == "the envelope" { key.to_string() } else { format!("{}.{key}", self.what) }
    }

    /// A present field; CBOR `null` counts as absent.
    fn get(&self, key: &str) -> Option<&'a Cbor> {
        self.entries.iter().find(|(k, _)| *k == key).map(|(_, v)| *v).filter(|v| !matches!(v, Cbor::Null))
    }

    fn required(&self, key: &str) -> Result<&'a Cbor, EnvelopeError> {
        self.get(key).ok_or_else(|| EnvelopeError::Missing(self.name(key)))
    }

    fn bytes(&self, key: &str) -> Result<Option<&'a [u8]>, EnvelopeError> {
        self.get(key).map(|v| as_bytes(v, &self.name(key))).transpose()
    }

    fn required_bytes(&self, key: &str) -> Result<&'a [u8], EnvelopeError> {
        as_bytes(self.required(key)?, &self.name(key))
    }

    fn required_text(&self, key: &str) -> Result<&'a str, EnvelopeError> {
        let field = self.name(key);
        match untag(self.required(key)?) {
            Cbor::Text(t) => Ok(t),
            other => Err(EnvelopeError::WrongType { field, expected: "a text string", found: kind(other) }),
        }
    }

    fn required_nat(&self, key: &str) -> Result<u64, EnvelopeError> {
        as_nat(self.required(key)?, &self.name(key))
    }

    fn required_principal(&self, key: &str) -> Result<Principal, EnvelopeError> {
        as_principal(self.required(key)?, &self.name(key))
    }

    /// Refuses keys outside `known` (for signed structures whose hash only
    /// covers known fields).
    fn only(&self, known: &[&str]) -> Result<(), EnvelopeError> {
        match self.entries.iter().find(|(k, _)| !known.contains(k)) {
            Some((k, _)) => Err(EnvelopeError::UnknownField { field: self.what.clone(), key: k.to_string() }),
            None => Ok(()),
        }
    }
}

fn as_bytes<'a>(value: &'a Cbor, field: &str) -> Result<&'a [u8], EnvelopeError> {
    match untag(value) {
        Cbor::Bytes(b) => Ok(b),
        other => {
            Err(EnvelopeError::WrongType { field: field.to_string(), expected: "a byte string", found: kind(other) })
        }
    }
}

fn as_nat(value: &Cbor, field: &str) -> Result<u64, EnvelopeError> {
    match untag(value) {
        Cbor::Integer(i) => {
            if i128::from(*i) < 0 {
                return Err(EnvelopeError::WrongType {
                    field: field.to_string(),
                    expected: "a natural number",
                    found: "a negative integer",
                });
            }
            u64::try_from(*i).map_err(|_| EnvelopeError::NatTooLarge { field: field.to_string() })
        }
        // A positive bignum (tag 2) that happens to be small.
        Cbor::Tag(2, inner) => match inner.as_ref() {
            Cbor::Bytes(be) => {
                let start = be.iter().position(|&b| b != 0).unwrap_or(be.len());
                let digits = &be[start..];
                if digits.len() > 8 {
                    return Err(EnvelopeError::NatTooLarge { field: field.to_string() });
                }
                Ok(digits.iter().fold(0u64, |n, &b| (n << 8) | u64::from(b)))
            }
            other => Err(EnvelopeError::WrongType {
                field: field.to_string(),
                expected: "a natural number",
                found: kind(other),
            }),
        },
        other => {
            Err(EnvelopeError::WrongType { field: field.to_string(), expected: "a natural number", found: kind(other) })
        }
    }
}

fn as_principal(value: &Cbor, field: &str) -> Result<Principal, EnvelopeError> {
    let bytes = as_bytes(value, field)?;
    Principal::try_from_slice(bytes)
        .map_err(|e| EnvelopeError::InvalidPrincipal { field: field.to_string(), reason: e.to_string() })
}

fn as_array<'a>(value: &'a Cbor, field: &str) -> Result<&'a [Cbor], EnvelopeError> {
    match untag(value) {
        Cbor::Array(items) => Ok(items),
        other => Err(EnvelopeError::WrongType { field: field.to_string(), expected: "an array", found: kind(other) }),
    }
}

/// Refuses oversized maps anywhere inside `content` before it is hashed.
fn check_content_maps(value: &Cbor, what: &str) -> Result<(), EnvelopeError> {
    match value {
        Cbor::Map(entries) => {
            if entries.len() > MAX_CONTENT_MAP_ENTRIES {
                return Err(EnvelopeError::MapTooLarge { what: what.to_string(), count: entries.len() });
            }
            for (k, v) in entries {
                let name = match k {
                    Cbor::Text(t) => format!("{what}.{t}"),
                    _ => what.to_string(),
                };
                check_content_maps(v, &name)?;
            }
            Ok(())
        }
        Cbor::Array(items) => items.iter().try_for_each(|i| check_content_maps(i, what)),
        Cbor::Tag(_, inner) => check_content_maps(inner, what),
        _ => Ok(()),
    }
}

/// Decodes and checks an envelope (see the module docs).
pub fn decode_envelope(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
    let value = cbor::decode(bytes, StructureLimits::ENVELOPE)?;
    let envelope = Fields::of(&value, "the envelope")?;
    let content_value = envelope.required("content")?;
    check_content_maps(untag(content_value), "content")?;
    let content = Fields::of(content_value, "content")?;

    let request_type = content.required_text("request_type")?;
    let sender = content.required_principal("sender")?;
    let ingress_expiry = content.required_nat("ingress_expiry")?;
    let nonce = content.bytes("nonce")?.map(<[u8]>::to_vec);
    if let Some(n) = &nonce
        && n.len() > MAX_NONCE_LEN
    {
        return Err(EnvelopeError::NonceTooLong(n.len()));
    }
    let body = match request_type {
        "call" => RequestBody::Call(canister_call(&content)?),
        "query" => RequestBody::Query(canister_call(&content)?),
        "read_state" => RequestBody::ReadState { paths: paths(&content)? },
        other => return Err(EnvelopeError::UnknownRequestType(other.to_string())),
    };

    let sender_pubkey = envelope.bytes("sender_pubkey")?.map(<[u8]>::to_vec);
    let sender_sig = envelope.bytes("sender_sig")?.map(<[u8]>::to_vec);
    let sender_delegation = match envelope.get("sender_delegation") {
        None => Vec::new(),
        Some(v) => as_array(v, "sender_delegation")?
            .iter()
            .enumerate()
            .map(|(i, d)| signed_delegation(d, i))
            .collect::<Result<_, _>>()?,
    };
    let request_id = request_id_of_cbor(untag(content_value))?;
    Ok(Envelope { request_id, sender, ingress_expiry, nonce, body, sender_pubkey, sender_sig, sender_delegation })
}

fn canister_call(content: &Fields<'_>) -> Result<CanisterCall, EnvelopeError> {
    let canister_id = CanisterId(content.required_principal("canister_id")?);
    let method_name = content.required_text("method_name")?.to_string();
    let arg = content.required_bytes("arg")?.to_vec();
    let sender_info = match content.get("sender_info") {
        None => None,
        Some(v) => {
            let f = Fields::of(v, "content.sender_info")?;
            f.only(&["info", "signer", "sig"])?;
            Some(SignedSenderInfo {
                info: f.required_bytes("info")?.to_vec(),
                signer: f.required_principal("signer")?,
                sig: f.required_bytes("sig")?.to_vec(),
            })
        }
    };
    Ok(CanisterCall { canister_id, method_name, arg, sender_info })
}

fn paths(content: &Fields<'_>) -> Result<Vec<Vec<Vec<u8>>>, EnvelopeError> {
    let list = as_array(content.required("paths")?, "content.paths")?;
    if list.len() > MAX_PATHS {
        return Err(EnvelopeError::TooManyPaths(list.len()));
    }
    list.iter()
        .enumerate()
        .map(|(i, path)| {
            let field = format!("content.paths[{i}]");
            let labels = as_array(path, &field)?;
            if labels.len() > MAX_PATH_LABELS {
                return Err(EnvelopeError::PathTooLong { index: i, labels: labels.len() });
            }
            labels
                .iter()
                .enumerate()
                .map(|(j, label)| match untag(label) {
                    // Text labels hash exactly like their UTF-8 bytes.
                    Cbor::Bytes(b) => Ok(b.clone()),
                    Cbor::Text(t) => Ok(t.as_bytes().to_vec()),
                    other => Err(EnvelopeError::WrongType {
                        field: format!("{field}[{j}]"),
                        expected: "a byte string",
                        found: kind(other),
                    }),
                })
                .collect()
        })
        .collect()
}

fn signed_delegation(value: &Cbor, index: usize) -> Result<SignedDelegation, EnvelopeError> {
    let what = format!("sender_delegation[{index}]");
    let outer = Fields::of(value, what.clone())?;
    let inner = Fields::of(outer.required("delegation")?, format!("{what}.delegation"))?;
    inner.only(&["pubkey", "expiration", "targets", "permissions"])?;
    let targets = match inner.get("targets") {
        None => None,
        Some(v) => Some(
            as_array(v, &inner.name("targets"))?
                .iter()
                .enumerate()
                .map(|(j, t)| as_principal(t, &format!("{what}.delegation.targets[{j}]")))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let permissions = match inner.get("permissions") {
        None => None,
        Some(_) => Some(inner.required_text("permissions")?.to_string()),
    };
    Ok(SignedDelegation {
        delegation: Delegation {
            pubkey: inner.required_bytes("pubkey")?.to_vec(),
            expiration: inner.required_nat("expiration")?,
            targets,
            permissions,
        },
        signature: outer.required_bytes("signature")?.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cbor::{SELF_DESCRIBE_TAG, nat, text_map};

    fn enc(v: &Cbor) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::ser::into_writer(v, &mut out).unwrap();
        out
    }

    fn spec_content() -> Vec<(&'static str, Cbor)> {
        vec![
            ("request_type", Cbor::Text("call".into())),
            ("sender", Cbor::Bytes(vec![0x04])),
            ("ingress_expiry", nat(1_685_570_400_000_000_000)),
            ("canister_id", Cbor::Bytes(hex::decode("00000000000004D2").unwrap())),
            ("method_name", Cbor::Text("hello".into())),
            ("arg", Cbor::Bytes(b"DIDL\x00\xFD*".to_vec())),
        ]
    }

    fn envelope(content: Vec<(&'static str, Cbor)>) -> Vec<u8> {
        enc(&Cbor::Tag(SELF_DESCRIBE_TAG, Box::new(text_map([("content", text_map(content))]))))
    }

    fn with(mut content: Vec<(&'static str, Cbor)>, key: &'static str, value: Cbor) -> Vec<(&'static str, Cbor)> {
        content.retain(|(k, _)| *k != key);
        content.push((key, value));
        content
    }

    fn without(mut content: Vec<(&'static str, Cbor)>, key: &str) -> Vec<(&'static str, Cbor)> {
        content.retain(|(k, _)| *k != key);
        content
    }

    #[test]
    fn spec_request_id_vector() {
        let e = decode_envelope(&envelope(spec_content())).unwrap();
        assert_eq!(hex::encode(e.request_id.0), "1d1091364d6bb8a6c16b203ee75467d59ead468f523eb058880ae8ec80e2b101");
        assert_eq!(e.request_type(), RequestType::Call);
        assert_eq!(e.sender, Principal::ANONYMOUS);
        assert_eq!(e.ingress_expiry, 1_685_570_400_000_000_000);
        let call = e.canister_call().unwrap();
        assert_eq!(call.method_name, "hello");
        assert_eq!(call.canister_id.as_slice(), hex::decode("00000000000004D2").unwrap());
        assert!(e.sender_pubkey.is_none() && e.sender_delegation.is_empty());
    }

    #[test]
    fn tag_is_optional_and_field_order_and_widths_do_not_matter() {
        let tagged = decode_envelope(&envelope(spec_content())).unwrap();
        let mut reversed = spec_content();
        reversed.reverse();
        let untagged = enc(&text_map([("content", text_map(reversed))]));
        assert_eq!(decode_envelope(&untagged).unwrap().request_id, tagged.request_id);
        // ingress_expiry as a bignum hashes like the plain integer.
        let big = with(
            spec_content(),
            "ingress_expiry",
            Cbor::Tag(2, Box::new(Cbor::Bytes(1_685_570_400_000_000_000u64.to_be_bytes().to_vec()))),
        );
        let e = decode_envelope(&envelope(big)).unwrap();
        assert_eq!(e.request_id, tagged.request_id);
        assert_eq!(e.ingress_expiry, 1_685_570_400_000_000_000);
    }

    #[test]
    fn unknown_content_fields_are_hashed() {
        let base = decode_envelope(&envelope(spec_content())).unwrap();
        let extra = decode_envelope(&envelope(with(spec_content(), "future_field", nat(1)))).unwrap();
        assert_ne!(base.request_id, extra.request_id);
        let nonce = decode_envelope(&envelope(with(spec_content(), "nonce", Cbor::Bytes(vec![1; 32])))).unwrap();
        assert_ne!(base.request_id, nonce.request_id);
        assert_eq!(nonce.nonce, Some(vec![1; 32]));
    }

    fn err(content: Vec<(&'static str, Cbor)>) -> String {
        decode_envelope(&envelope(content)).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(err(without(spec_content(), "sender")), "the request has no content.sender field");
        assert_eq!(err(without(spec_content(), "arg")), "the request has no content.arg field");
        assert_eq!(
            err(with(spec_content(), "arg", Cbor::Text("x".into()))),
            "content.arg must be a byte string, found a text string"
        );
        assert_eq!(
            err(with(spec_content(), "ingress_expiry", Cbor::Integer((-1).into()))),
            "content.ingress_expiry must be a natural number, found a negative integer"
        );
        assert_eq!(
            err(with(
                spec_content(),
                "ingress_expiry",
                Cbor::Tag(2, Box::new(Cbor::Bytes(vec![1, 0, 0, 0, 0, 0, 0, 0, 0])))
            )),
            "content.ingress_expiry does not fit in 64 bits"
        );
        assert_eq!(
            err(with(spec_content(), "request_type", Cbor::Text("update".into()))),
            "unknown request_type \"update\" (expected \"call\", \"query\" or \"read_state\")"
        );
        assert!(
            err(with(spec_content(), "sender", Cbor::Bytes(vec![1; 30])))
                .starts_with("content.sender is not a valid principal")
        );
        assert_eq!(
            err(with(spec_content(), "nonce", Cbor::Bytes(vec![0; 33]))),
            "content.nonce is 33 bytes long, the maximum is 32"
        );
        assert_eq!(err(with(spec_content(), "sender", Cbor::Null)), "the request has no content.sender field");
        let no_content = enc(&text_map([("sender_sig", Cbor::Bytes(vec![]))]));
        assert_eq!(decode_envelope(&no_content).unwrap_err().to_string(), "the request has no content field");
        let not_map = enc(&Cbor::Array(vec![]));
        assert_eq!(
            decode_envelope(&not_map).unwrap_err().to_string(),
            "the envelope must be a CBOR map, found an array"
        );
        assert!(
            decode_envelope(b"\xff\x00").unwrap_err().to_string().starts_with("the request body is not valid CBOR")
        );
        assert!(decode_envelope(b"").unwrap_err().to_string().contains("empty"));
    }

    #[test]
    fn duplicate_and_non_text_keys() {
        let dup = Cbor::Map(vec![
            (Cbor::Text("content".into()), text_map(spec_content())),
            (Cbor::Text("content".into()), text_map(spec_content())),
        ]);
        assert_eq!(
            decode_envelope(&enc(&dup)).unwrap_err().to_string(),
            "the envelope has the key \"content\" more than once"
        );
        let mut entries: Vec<(Cbor, Cbor)> =
            spec_content().into_iter().map(|(k, v)| (Cbor::Text(k.into()), v)).collect();
        entries.push((Cbor::Text("sender".into()), Cbor::Bytes(vec![4])));
        let dup_content = Cbor::Map(vec![(Cbor::Text("content".into()), Cbor::Map(entries))]);
        assert_eq!(
            decode_envelope(&enc(&dup_content)).unwrap_err().to_string(),
            "content has the key \"sender\" more than once"
        );
        let non_text = Cbor::Map(vec![(nat(1), nat(2))]);
        assert_eq!(
            decode_envelope(&enc(&non_text)).unwrap_err().to_string(),
            "the envelope has a map key that is not a text string"
        );
        let big_map = Cbor::Map((0..300).map(|i| (Cbor::Text(format!("k{i}")), nat(i))).collect());
        assert_eq!(err(with(spec_content(), "x", big_map)), "content.x has 300 entries, more than the maximum of 256");
    }

    fn read_state(paths: Cbor) -> Vec<(&'static str, Cbor)> {
        vec![
            ("request_type", Cbor::Text("read_state".into())),
            ("sender", Cbor::Bytes(vec![0x04])),
            ("ingress_expiry", nat(1)),
            ("paths", paths),
        ]
    }

    #[test]
    fn read_state_paths() {
        let p = Cbor::Array(vec![
            Cbor::Array(vec![Cbor::Bytes(b"time".to_vec())]),
            Cbor::Array(vec![Cbor::Text("request_status".into()), Cbor::Bytes(vec![7; 32])]),
        ]);
        let e = decode_envelope(&envelope(read_state(p))).unwrap();
        assert_eq!(
            e.body,
            RequestBody::ReadState {
                paths: vec![vec![b"time".to_vec()], vec![b"request_status".to_vec(), vec![7; 32]]]
            }
        );
        // Text and byte labels hash the same.
        let as_bytes = Cbor::Array(vec![
            Cbor::Array(vec![Cbor::Bytes(b"time".to_vec())]),
            Cbor::Array(vec![Cbor::Bytes(b"request_status".to_vec()), Cbor::Bytes(vec![7; 32])]),
        ]);
        assert_eq!(decode_envelope(&envelope(read_state(as_bytes))).unwrap().request_id, e.request_id);

        let one = || Cbor::Array(vec![Cbor::Bytes(b"time".to_vec())]);
        decode_envelope(&envelope(read_state(Cbor::Array(vec![one(); 1000])))).unwrap();
        assert_eq!(
            err(read_state(Cbor::Array(vec![one(); 1001]))),
            "content.paths has 1001 paths, the maximum is 1000"
        );
        let long = |n| Cbor::Array(vec![Cbor::Array(vec![Cbor::Bytes(vec![]); n])]);
        decode_envelope(&envelope(read_state(long(127)))).unwrap();
        assert_eq!(err(read_state(long(128))), "content.paths[0] has 128 labels, the maximum is 127");
        assert_eq!(
            err(read_state(Cbor::Array(vec![Cbor::Array(vec![nat(1)])]))),
            "content.paths[0][0] must be a byte string, found an integer"
        );
        assert_eq!(err(without(read_state(Cbor::Array(vec![])), "paths")), "the request has no content.paths field");
    }

    #[test]
    fn delegations_and_sender_info() {
        let delegation = text_map([
            (
                "delegation",
                text_map([
                    ("pubkey", Cbor::Bytes(vec![1, 2])),
                    ("expiration", nat(99)),
                    ("targets", Cbor::Array(vec![Cbor::Bytes(vec![0, 1])])),
                    ("permissions", Cbor::Text("queries".into())),
                ]),
            ),
            ("signature", Cbor::Bytes(vec![3])),
        ]);
        let body = enc(&text_map([
            ("content", text_map(spec_content())),
            ("sender_pubkey", Cbor::Bytes(vec![9])),
            ("sender_sig", Cbor::Bytes(vec![8])),
            ("sender_delegation", Cbor::Array(vec![delegation.clone()])),
        ]));
        let e = decode_envelope(&body).unwrap();
        assert_eq!(e.sender_delegation.len(), 1);
        let d = &e.sender_delegation[0].delegation;
        assert_eq!((d.expiration, d.permissions.as_deref()), (99, Some("queries")));
        assert_eq!(d.targets.as_ref().unwrap()[0].as_slice(), &[0, 1]);
        assert_eq!(e.auth().sender_delegation.unwrap().len(), 1);

        let bad = text_map([
            ("delegation", text_map([("pubkey", Cbor::Bytes(vec![1])), ("expiration", nat(1)), ("extra", nat(1))])),
            ("signature", Cbor::Bytes(vec![3])),
        ]);
        let body =
            enc(&text_map([("content", text_map(spec_content())), ("sender_delegation", Cbor::Array(vec![bad]))]));
        assert_eq!(
            decode_envelope(&body).unwrap_err().to_string(),
            "sender_delegation[0].delegation has the unknown field \"extra\", which cannot be verified"
        );
        let no_sig = text_map([("delegation", text_map([("pubkey", Cbor::Bytes(vec![1])), ("expiration", nat(1))]))]);
        let body =
            enc(&text_map([("content", text_map(spec_content())), ("sender_delegation", Cbor::Array(vec![no_sig]))]));
        assert_eq!(
            decode_envelope(&body).unwrap_err().to_string(),
            "the request has no sender_delegation[0].signature field"
        );

        let info =
            text_map([("info", Cbor::Bytes(vec![1])), ("signer", Cbor::Bytes(vec![2])), ("sig", Cbor::Bytes(vec![3]))]);
        let e = decode_envelope(&envelope(with(spec_content(), "sender_info", info))).unwrap();
        assert_eq!(e.auth().sender_info.unwrap().info, vec![1]);
        // Null optional envelope fields are treated as absent.
        let body = enc(&text_map([
            ("content", text_map(spec_content())),
            ("sender_pubkey", Cbor::Null),
            ("sender_delegation", Cbor::Null),
        ]));
        assert!(decode_envelope(&body).unwrap().sender_pubkey.is_none());
    }
}
