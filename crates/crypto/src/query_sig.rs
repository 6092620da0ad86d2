//! Node signatures over query responses.
//!
//! Query responses are not certified by the subnet, so the answering node
//! signs them with its Ed25519 key; ic-agent and the JS agent check these
//! signatures by default against the node keys in the `/subnet` state tree.
//! The signed bytes are `"\x0Bic-response" · hash_of_map(m)` where `m` is
//!
//! * replied: `{status: "replied", reply: {arg}, timestamp, request_id}`,
//! * rejected: `{status: "rejected", reject_code, reject_message,
//!   error_code (only if present), timestamp, request_id}`.

use crate::node_key::{Ed25519Error, NodeSigningKey, verify_ed25519_der};
use crate::request_id::{Value, hash_of_map};
use crate::{Digest, domain};
use cairn_types::MessageId;

/// The part of a query response that gets signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryResponse<'a> {
    /// The canister replied with `arg`.
    Replied {
        /// The reply bytes (`reply.arg`).
        arg: &'a [u8],
    },
    /// The query was rejected.
    Rejected {
        /// The reject code (1–6).
        reject_code: u64,
        /// Human-readable message.
        reject_message: &'a str,
        /// `IC%04d` error code, omitted from the hash when absent.
        error_code: Option<&'a str>,
    },
}

/// `hash_of_map` of the response map described in the module docs.
pub fn query_response_hash(response: &QueryResponse<'_>, timestamp: u64, request_id: &MessageId) -> Digest {
    let mut fields: Vec<(&str, Value)> =
        vec![("timestamp", Value::Nat(timestamp)), ("request_id", Value::blob(request_id.as_bytes()))];
    match response {
        QueryResponse::Replied { arg } => {
            fields.push(("status", Value::text("replied")));
            fields.push(("reply", Value::map([("arg", Value::blob(arg))])));
        }
        QueryResponse::Rejected { reject_code, reject_message, error_code } => {
            fields.push(("status", Value::text("rejected")));
            fields.push(("reject_code", Value::Nat(*reject_code)));
            fields.push(("reject_message", Value::text(*reject_message)));
            if let Some(code) = error_code {
                fields.push(("error_code", Value::text(*code)));
            }
        }
    }
    hash_of_map(fields.iter().map(|(k, v)| (*k, v)))
}

/// The exact bytes a node signs for a query response.
pub fn query_response_message(response: &QueryResponse<'_>, timestamp: u64, request_id: &MessageId) -> Vec<u8> {
    domain::with_separator(domain::RESPONSE, &query_response_hash(response, timestamp, request_id))
}

/// Signs a query response with the node's key (64-byte Ed25519 signature).
pub fn sign_query_response(
    key: &NodeSigningKey,
    response: &QueryResponse<'_>,
    timestamp: u64,
    request_id: &MessageId,
) -> [u8; 64] {
    key.sign(&query_response_message(response, timestamp, request_id))
}

/// Verifies a node's query-response signature with its DER public key.
pub fn verify_query_response(
    node_key_der: &[u8],
    response: &QueryResponse<'_>,
    timestamp: u64,
    request_id: &MessageId,
    signature: &[u8],
) -> Result<(), Ed25519Error> {
    verify_ed25519_der(node_key_der, &query_response_message(response, timestamp, request_id), signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify_both_forms() {
        let key = NodeSigningKey::from_seed([3; 32]);
        let der = key.public_key_der();
        let rid = MessageId([9; 32]);
        let replied = QueryResponse::Replied { arg: b"DIDL\x00\x00" };
        let sig = sign_query_response(&key, &replied, 1_700_000_000_000_000_000, &rid);
        verify_query_response(&der, &replied, 1_700_000_000_000_000_000, &rid, &sig).unwrap();
        assert!(verify_query_response(&der, &replied, 1, &rid, &sig).is_err());
        assert!(verify_query_response(&der, &replied, 1_700_000_000_000_000_000, &MessageId([8; 32]), &sig).is_err());
        let rejected =
            QueryResponse::Rejected { reject_code: 5, reject_message: "trapped", error_code: Some("IC0503") };
        let sig = sign_query_response(&key, &rejected, 7, &rid);
        verify_query_response(&der, &rejected, 7, &rid, &sig).unwrap();
        let without_code = QueryResponse::Rejected { reject_code: 5, reject_message: "trapped", error_code: None };
        assert!(verify_query_response(&der, &without_code, 7, &rid, &sig).is_err());
    }

    #[test]
    fn hash_matches_hand_computed_map() {
        // The replied hash equals hash_of_map over the spec's field list,
        // independent of the order we assemble it in.
        let rid = MessageId([1; 32]);
        let expected = crate::request_id::hash_value(&Value::map([
            ("status", Value::text("replied")),
            ("reply", Value::map([("arg", Value::blob(b"x"))])),
            ("timestamp", Value::Nat(5)),
            ("request_id", Value::blob([1; 32])),
        ]));
        assert_eq!(query_response_hash(&QueryResponse::Replied { arg: b"x" }, 5, &rid), expected);
        let msg = query_response_message(&QueryResponse::Replied { arg: b"x" }, 5, &rid);
        assert_eq!(&msg[..12], b"\x0Bic-response");
        assert_eq!(&msg[12..], &expected);
    }
}
