//! Canister signatures (e.g. Internet Identity delegations).
//!
//! A canister "signs" `message` under seed `s` by putting
//! `["sig", SHA256(s), SHA256(message)] = ""` into a tree whose root it sets
//! as its certified data. The signature is `tag55799({certificate, tree})`;
//! it is valid if the certificate verifies with the root key (and any subnet
//! delegation covers the canister), the certified data of the canister equals
//! `reconstruct(tree)`, and the tree contains that empty leaf.

use super::SignatureError;
use crate::certificate::{Certificate, Scope, verify_certificate_detailed};
use crate::der::{self, oid};
use crate::hash_tree::{HashTree, LookupResult};
use crate::{cbor, sha256};
use cairn_types::CanisterId;

/// The DER public key of canister `canister_id` with `seed`
/// (`BIT STRING = len(cid) · cid · seed`).
pub fn canister_sig_public_key_der(canister_id: &CanisterId, seed: &[u8]) -> Vec<u8> {
    let cid = canister_id.as_slice();
    let mut key = Vec::with_capacity(1 + cid.len() + seed.len());
    key.push(cid.len() as u8);
    key.extend_from_slice(cid);
    key.extend_from_slice(seed);
    der::encode_spki(oid::CANISTER_SIG, None, &key)
}

fn lookup_name(r: LookupResult<'_>) -> &'static str {
    match r {
        LookupResult::Found(_) => "has a non-empty value",
        LookupResult::Absent => "is absent",
        LookupResult::Unknown => "is pruned",
        LookupResult::Error => "is not a leaf",
    }
}

/// Verifies a canister signature on `message`.
pub fn verify_canister_signature(
    canister_id: CanisterId,
    seed: &[u8],
    message: &[u8],
    signature: &[u8],
    root_key_der: &[u8],
) -> Result<(), SignatureError> {
    let bad = |m: String| SignatureError::CanisterSignature(m);
    let value = cbor::decode(signature).map_err(|e| bad(format!("signature is not CBOR: {e}")))?;
    let map = cbor::as_map(&value).map_err(|e| bad(format!("signature: {e}")))?;
    let cert_bytes = cbor::field(map, "certificate")
        .and_then(cbor::bytes)
        .ok_or_else(|| bad("signature has no certificate bytes".into()))?;
    let tree = HashTree::from_cbor_value(cbor::field(map, "tree").ok_or_else(|| bad("signature has no tree".into()))?)
        .map_err(|e| bad(format!("signature tree: {e}")))?;
    let certificate = Certificate::from_cbor(cert_bytes).map_err(SignatureError::Certificate)?;
    let delegation = verify_certificate_detailed(&certificate, root_key_der, Scope::Canister(canister_id), None)
        .map_err(SignatureError::Certificate)?;

    // Spec v0.66 also requires /subnet/<sid>/type to be present and not
    // cloud_engine. Real delegation certificates from before certification
    // version 25 (and those that prune the type) do not reveal it, so only a
    // certified cloud_engine type is refused here.
    if let (Some(inner), Some(d)) = (delegation, &certificate.delegation)
        && inner.lookup(&[b"subnet".as_slice(), d.subnet_id.as_slice(), b"type"])
            == LookupResult::Found(b"cloud_engine")
    {
        return Err(SignatureError::CloudEngineSubnet(d.subnet_id));
    }

    let path = [b"canister".as_slice(), canister_id.as_slice(), b"certified_data"];
    match certificate.lookup(&path) {
        LookupResult::Found(data) if data == tree.digest() => {}
        LookupResult::Found(data) => {
            return Err(SignatureError::CertifiedDataMismatch {
                certified: hex::encode(data),
                tree_root: hex::encode(tree.digest()),
            });
        }
        other => {
            return Err(bad(format!(
                "certificate has no certified data for canister {canister_id} (path {})",
                lookup_name(other)
            )));
        }
    }
    if !tree.is_well_formed() {
        return Err(bad("signature tree is not well formed".into()));
    }
    let sig_path = [b"sig".as_slice(), &sha256(seed), &sha256(message)];
    match tree.lookup_path(&sig_path) {
        LookupResult::Found([]) => Ok(()),
        other => Err(SignatureError::NotSigned { lookup: lookup_name(other) }),
    }
}
