//! Certificates: a hash tree plus a BLS signature on its root, optionally
//! with a subnet delegation.
//!
//! Wire format: `tag55799({tree, signature, delegation?: {subnet_id,
//! certificate}})`, where the delegation's certificate is itself a CBOR
//! certificate signed by the root subnet that reveals the delegated subnet's
//! `public_key` and canister ranges. Verification follows what `ic-agent`
//! does: check the delegation (at most one level, signature only, no time
//! check), check that the scope (canister or subnet) is covered by it, then
//! check `BLS(key, "\x0Dic-state-root" · reconstruct(tree))`.

use crate::bls::{self, BlsError, PublicKey};
use crate::cbor;
use crate::hash_tree::{HashTree, HashTreeError, LookupResult, SubtreeLookup};
use crate::request_id::decode_leb128;
use crate::{Digest, domain};
use cairn_types::{CanisterId, CanisterIdRange, Principal, SubnetId, Time};
use ciborium::Value as Cbor;
use std::time::Duration;

/// A certificate as served by `read_state` and embedded in canister signatures.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Certificate {
    /// The (pruned) state tree.
    pub tree: HashTree,
    /// BLS signature (48 bytes) on `"\x0Dic-state-root" · tree.digest()`.
    pub signature: Vec<u8>,
    /// Present when a non-root subnet signed the tree.
    pub delegation: Option<CertificateDelegation>,
}

/// A root-subnet certificate that vouches for a subnet's key and ranges.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CertificateDelegation {
    /// The delegated subnet.
    pub subnet_id: Principal,
    /// CBOR of a [`Certificate`] signed by the root key.
    pub certificate: Vec<u8>,
}

/// What a certificate must be valid for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// A canister: a delegation must list it in the subnet's canister ranges
    /// (either `/subnet/<sid>/canister_ranges` or `/canister_ranges/<sid>/*`).
    Canister(CanisterId),
    /// A subnet endpoint: a delegation must be for this subnet.
    Subnet(SubnetId),
    /// No scope check on the delegation (the caller checks what it needs).
    Unchecked,
}

/// Why a certificate was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error("certificate is not valid CBOR: {0}")]
    Cbor(String),
    #[error("certificate is malformed: {0}")]
    Malformed(String),
    #[error("certificate tree is malformed: {0}")]
    Tree(#[from] HashTreeError),
    #[error("the delegation certificate itself has a delegation (at most one level is allowed)")]
    NestedDelegation,
    #[error("invalid {which} public key: {source}")]
    Key { which: &'static str, source: BlsError },
    #[error("{which} signature does not verify: {source}")]
    Signature { which: &'static str, source: BlsError },
    #[error("delegation certificate has no {path} (lookup: {lookup})")]
    DelegationPathMissing { path: String, lookup: &'static str },
    #[error("delegation canister ranges are malformed: {0}")]
    MalformedRanges(String),
    #[error("canister {canister} is not in the canister ranges of delegated subnet {subnet}")]
    CanisterNotInRanges { canister: CanisterId, subnet: Principal },
    #[error("certificate is delegated to subnet {actual}, but subnet {expected} was addressed")]
    SubnetMismatch { expected: SubnetId, actual: Principal },
    #[error("certificate has no readable /time")]
    MissingTime,
    #[error("certificate is too old: /time is {time:?}, now is {now:?}, maximum age {max_age:?}")]
    Outdated { time: Time, now: Time, max_age: Duration },
}

fn lookup_name(r: LookupResult<'_>) -> &'static str {
    match r {
        LookupResult::Found(_) => "found",
        LookupResult::Absent => "absent",
        LookupResult::Unknown => "unknown (pruned)",
        LookupResult::Error => "not a leaf",
    }
}

impl Certificate {
    /// The CBOR value of the certificate map (untagged).
    fn to_cbor_value(&self) -> Cbor {
        let mut entries = vec![
            (Cbor::Text("tree".into()), self.tree.to_cbor_value()),
            (Cbor::Text("signature".into()), Cbor::Bytes(self.signature.clone())),
        ];
        if let Some(d) = &self.delegation {
            entries.push((
                Cbor::Text("delegation".into()),
                Cbor::Map(vec![
                    (Cbor::Text("subnet_id".into()), Cbor::Bytes(d.subnet_id.as_slice().to_vec())),
                    (Cbor::Text("certificate".into()), Cbor::Bytes(d.certificate.clone())),
                ]),
            ));
        }
        Cbor::Map(entries)
    }

    /// CBOR bytes with the self-describe tag.
    pub fn to_cbor(&self) -> Vec<u8> {
        cbor::encode_tagged(self.to_cbor_value())
    }

    /// Parses CBOR bytes; the self-describe tag is optional and unknown map
    /// fields are ignored.
    pub fn from_cbor(bytes: &[u8]) -> Result<Certificate, CertificateError> {
        let value = cbor::decode(bytes).map_err(CertificateError::Cbor)?;
        let bad = |m: &str| CertificateError::Malformed(m.to_string());
        let map = cbor::as_map(&value).map_err(CertificateError::Malformed)?;
        let tree = HashTree::from_cbor_value(cbor::field(map, "tree").ok_or_else(|| bad("missing tree"))?)?;
        let signature = cbor::field(map, "signature")
            .and_then(cbor::bytes)
            .ok_or_else(|| bad("missing or non-bytes signature"))?
            .to_vec();
        let delegation = match cbor::field(map, "delegation") {
            None | Some(Cbor::Null) => None,
            Some(d) => {
                let d = cbor::as_map(d).map_err(|e| CertificateError::Malformed(format!("delegation: {e}")))?;
                let subnet_id = cbor::field(d, "subnet_id")
                    .and_then(cbor::bytes)
                    .ok_or_else(|| bad("delegation without subnet_id bytes"))?;
                let subnet_id = Principal::try_from_slice(subnet_id)
                    .map_err(|e| CertificateError::Malformed(format!("delegation subnet_id: {e}")))?;
                let certificate = cbor::field(d, "certificate")
                    .and_then(cbor::bytes)
                    .ok_or_else(|| bad("delegation without certificate bytes"))?
                    .to_vec();
                Some(CertificateDelegation { subnet_id, certificate })
            }
        };
        Ok(Certificate { tree, signature, delegation })
    }

    /// Certifies `tree` with `key`: the replica-side constructor (the BLS
    /// signature may equally come from a combined threshold signature, see
    /// [`state_root_message`]).
    pub fn sign(tree: HashTree, key: &bls::SecretKey, delegation: Option<CertificateDelegation>) -> Certificate {
        let signature = key.sign(&state_root_message(&tree.digest())).to_bytes().to_vec();
        Certificate { tree, signature, delegation }
    }

    /// `/time` in the certified tree, if revealed.
    pub fn time(&self) -> Option<Time> {
        match self.tree.lookup_path(&["time"]) {
            LookupResult::Found(v) => decode_leb128(v).map(Time::from_nanos),
            _ => None,
        }
    }

    /// The leaf at `path`, if the tree reveals one.
    pub fn lookup<L: AsRef<[u8]>>(&self, path: &[L]) -> LookupResult<'_> {
        self.tree.lookup_path(path)
    }
}

/// The message a certificate signature covers: `"\x0Dic-state-root" · root`.
pub fn state_root_message(root_hash: &Digest) -> Vec<u8> {
    domain::with_separator(domain::STATE_ROOT, root_hash)
}

/// The state-tree encoding of canister ranges: `tag55799([[lo, hi], …])`
/// with principals as byte strings (for `/subnet/<sid>/canister_ranges` and
/// each `/canister_ranges/<sid>/<shard>` leaf).
pub fn encode_canister_ranges(ranges: &[CanisterIdRange]) -> Vec<u8> {
    cbor::encode_tagged(Cbor::Array(
        ranges
            .iter()
            .map(|r| {
                Cbor::Array(vec![Cbor::Bytes(r.start.as_slice().to_vec()), Cbor::Bytes(r.end.as_slice().to_vec())])
            })
            .collect(),
    ))
}

/// Parses the canister-ranges encoding (tag optional).
pub fn decode_canister_ranges(bytes: &[u8]) -> Result<Vec<CanisterIdRange>, CertificateError> {
    let bad = |m: String| CertificateError::MalformedRanges(m);
    let value = cbor::decode(bytes).map_err(bad)?;
    let Cbor::Array(items) = cbor::untag(&value) else {
        return Err(bad("not an array".into()));
    };
    items
        .iter()
        .map(|item| match cbor::untag(item) {
            Cbor::Array(pair) if pair.len() == 2 => {
                let p = |v: &Cbor| -> Result<CanisterId, CertificateError> {
                    let b = cbor::bytes(v).ok_or_else(|| bad("range bound is not bytes".into()))?;
                    Principal::try_from_slice(b).map(CanisterId).map_err(|e| bad(e.to_string()))
                };
                Ok(CanisterIdRange { start: p(&pair[0])?, end: p(&pair[1])? })
            }
            _ => Err(bad("range is not a pair".into())),
        })
        .collect()
}

/// The canister ranges a delegation certificate grants to `subnet`:
/// `/subnet/<sid>/canister_ranges` if present, otherwise the union of the
/// visible shards under `/canister_ranges/<sid>`.
pub fn delegated_canister_ranges(
    delegation_cert: &Certificate,
    subnet: &Principal,
) -> Result<Vec<CanisterIdRange>, CertificateError> {
    let legacy = [b"subnet".as_slice(), subnet.as_slice(), b"canister_ranges"];
    match delegation_cert.tree.lookup_path(&legacy) {
        LookupResult::Found(bytes) => decode_canister_ranges(bytes),
        legacy_result => {
            let sharded = [b"canister_ranges".as_slice(), subnet.as_slice()];
            match delegation_cert.tree.lookup_subtree(&sharded) {
                SubtreeLookup::Found(shards) => {
                    let mut out = Vec::new();
                    for (_, shard) in shards.children() {
                        if let HashTree::Leaf(bytes) = shard {
                            out.extend(decode_canister_ranges(bytes)?);
                        }
                    }
                    Ok(out)
                }
                _ => Err(CertificateError::DelegationPathMissing {
                    path: format!("/subnet/{subnet}/canister_ranges or /canister_ranges/{subnet}"),
                    lookup: lookup_name(legacy_result),
                }),
            }
        }
    }
}

/// Verifies a certificate against the root key (133-byte DER).
///
/// With a delegation: the inner certificate must have no delegation of its
/// own, must verify under the root key (its time is not checked, as in
/// ic-agent), must satisfy `scope`, and must reveal
/// `/subnet/<sid>/public_key`, which then verifies the outer signature.
/// If `freshness = Some((now, max_age))`, `/time` must be present and no
/// older than `max_age` (future times are accepted).
pub fn verify_certificate(
    cert: &Certificate,
    root_key_der: &[u8],
    scope: Scope,
    freshness: Option<(Time, Duration)>,
) -> Result<(), CertificateError> {
    verify_certificate_detailed(cert, root_key_der, scope, freshness).map(|_| ())
}

/// [`verify_certificate`], also returning the parsed delegation certificate
/// (for callers that need more from it, e.g. the subnet type).
pub(crate) fn verify_certificate_detailed(
    cert: &Certificate,
    root_key_der: &[u8],
    scope: Scope,
    freshness: Option<(Time, Duration)>,
) -> Result<Option<Certificate>, CertificateError> {
    let root_key =
        PublicKey::from_der(root_key_der).map_err(|source| CertificateError::Key { which: "root", source })?;
    let (key, delegation_cert) = match &cert.delegation {
        None => (root_key, None),
        Some(d) => {
            let inner = Certificate::from_cbor(&d.certificate)?;
            if inner.delegation.is_some() {
                return Err(CertificateError::NestedDelegation);
            }
            check_signature(&inner, &root_key, "delegation certificate")?;
            match scope {
                Scope::Canister(canister) => {
                    let ranges = delegated_canister_ranges(&inner, &d.subnet_id)?;
                    if !ranges.iter().any(|r| r.contains(&canister)) {
                        return Err(CertificateError::CanisterNotInRanges { canister, subnet: d.subnet_id });
                    }
                }
                Scope::Subnet(expected) => {
                    if expected.get() != d.subnet_id {
                        return Err(CertificateError::SubnetMismatch { expected, actual: d.subnet_id });
                    }
                }
                Scope::Unchecked => {}
            }
            let path = [b"subnet".as_slice(), d.subnet_id.as_slice(), b"public_key"];
            let der = match inner.tree.lookup_path(&path) {
                LookupResult::Found(der) => der,
                other => {
                    return Err(CertificateError::DelegationPathMissing {
                        path: format!("/subnet/{}/public_key", d.subnet_id),
                        lookup: lookup_name(other),
                    });
                }
            };
            let key = PublicKey::from_der(der)
                .map_err(|source| CertificateError::Key { which: "delegated subnet", source })?;
            (key, Some(inner))
        }
    };
    check_signature(cert, &key, "certificate")?;
    if let Some((now, max_age)) = freshness {
        let time = cert.time().ok_or(CertificateError::MissingTime)?;
        if now.nanos_since(time) > max_age.as_nanos().min(u64::MAX as u128) as u64 {
            return Err(CertificateError::Outdated { time, now, max_age });
        }
    }
    Ok(delegation_cert)
}

fn check_signature(cert: &Certificate, key: &PublicKey, which: &'static str) -> Result<(), CertificateError> {
    let sig =
        bls::Signature::from_bytes(&cert.signature).map_err(|source| CertificateError::Signature { which, source })?;
    key.verify(&state_root_message(&cert.tree.digest()), &sig)
        .map_err(|source| CertificateError::Signature { which, source })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::labeled_tree::LabeledTree;
    use crate::request_id::leb128;

    /// A real certificate with a subnet delegation, generated on an IC testnet
    /// with Internet Identity on an application subnet (dfinity/ic,
    /// `rs/certification` tests, `should_validate_subnet_delegation_test_vector`).
    pub const TESTNET_CERT: &str = "D9D9F7A3647472656583018301830183024863616E6973746572830183018301830183024A000000000010000001018301830183024E6365727469666965645F6461746182035820619D02453B55BA8EA01DA1D26DF7083644EBE84A97AFC8D4ECE7F82453548EAA82045820D598630C2C94E80F8EDD451F3B7E942ACE5680B60FB5897A96A466D2F8FCF6F882045820FD96014A4A0368DBD8BD4BD05806C0F8C6BDFBDFBE6F6182B9E4963F18ADD55B8204582072379FD63D4B0A8E7D0C9F87316613DC1ADED56B7311F83213FF213F8B802F1C820458208079C8D69F2C1813E63B2488CD1C7D0BAA73ECE24AEAAD48348D7A1F9B8E868F82045820F7251F6708258AA9E995EE4A923E615908D40E9D4C57DFA84640B77B76D016D0820458205D38A89DDE470A2252C2F4060C42AD6EBCBE5C689CA68241C2858D1149B13386820458200BDF772535F123B48C553D3AE0B6B464277B8E2DDF887CDFE5F54B595352BD658204582055A1F078E350F151DDDE43AEDFBAC8647AC4B392F7141917824EFB1A956B79DB8301820458205C9ABFBA1DFE4D188D30474AF0A1BB796D8EFA15353973A0EEC3427675789C1783024474696D6582034980EFCBB1A5FEF5E616697369676E61747572655830A754B5AE47F254B23420F17E71265CDAF64D34BA002BA88578FDF3CD9B2436FE5A3B7A2245E6DCF4A574169EB72DD4DF6A64656C65676174696F6EA2697375626E65745F6964581DCF9D54E35F653FD0FD4FF05E9C020923B719429C9A3139BEAAF4871B026B6365727469666963617465590199D9D9F7A26474726565830182045820E82F4E336F033E15D337975AF1617E1030F4C6F9F53FCF89A48E861F75C5C98483018302467375626E6574830182045820FB286DDA6CB7FE72AF261F5C896D51CBF82F233679907A1CB7E7299B44F5E23D8302581DCF9D54E35F653FD0FD4FF05E9C020923B719429C9A3139BEAAF4871B02830183024F63616E69737465725F72616E6765738203581BD9D9F781824A000000000010000001014A00000000001FFFFF010183024A7075626C69635F6B657982035885308182301D060D2B0601040182DC7C0503010201060C2B0601040182DC7C0503020103610088EB824FC43459023B08806C56AC224EDEA54AF7A656D96F6E909906B7442AC65A60D2C0B831425B0376674430E48F1D09658CD3F86BDD8607199401422C8B641C43F58740F52B497136E70B62522AEF12A6DB95ECBA58123D44D9B2E852B40883024474696D6582034987A5E7EB83F2E3E416697369676E6174757265583091EC641476446FFA0AB613BE624664BFEC32F7AC20B7E943EA7DACE1B7247101CA5B3CD6DFF38E6276BD6A7AF6C0587F";
    /// The testnet's root key for [`TESTNET_CERT`].
    pub const TESTNET_ROOT_KEY: &str = "308182301D060D2B0601040182DC7C0503010201060C2B0601040182DC7C05030201036100923A67B791270CD8F5320212AE224377CF407D3A8A2F44F11FED5915A97EE67AD0E90BC382A44A3F14C363AD2006640417B4BBB3A304B97088EC6B4FC87A25558494FC239B47E129260232F79973945253F5036FD520DDABD1E2DE57ABFB40CB";

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn real_testnet_certificate_with_delegation() {
        let cert = Certificate::from_cbor(&unhex(TESTNET_CERT)).unwrap();
        let root = unhex(TESTNET_ROOT_KEY);
        let canister: CanisterId = "5v3p4-iyaaa-aaaaa-qaaaa-cai".parse().unwrap();
        verify_certificate(&cert, &root, Scope::Canister(canister), None).unwrap();
        // The certified data the IC test expects.
        let certified_data: [u8; 32] = [
            97, 157, 2, 69, 59, 85, 186, 142, 160, 29, 161, 210, 109, 247, 8, 54, 68, 235, 232, 74, 151, 175, 200, 212,
            236, 231, 248, 36, 83, 84, 142, 170,
        ];
        assert_eq!(
            cert.lookup(&[b"canister".as_slice(), canister.as_slice(), b"certified_data"]),
            LookupResult::Found(&certified_data)
        );
        assert!(cert.time().is_some());
        // Outside the delegated ranges, or for another subnet: rejected.
        let outside = CanisterId::from_u64(0);
        assert!(matches!(
            verify_certificate(&cert, &root, Scope::Canister(outside), None),
            Err(CertificateError::CanisterNotInRanges { .. })
        ));
        let other_subnet = SubnetId(Principal::self_authenticating(b"x"));
        assert!(matches!(
            verify_certificate(&cert, &root, Scope::Subnet(other_subnet), None),
            Err(CertificateError::SubnetMismatch { .. })
        ));
        let delegated = SubnetId(cert.delegation.as_ref().unwrap().subnet_id);
        verify_certificate(&cert, &root, Scope::Subnet(delegated), None).unwrap();
        // Freshness: fine right at /time, too old a day later.
        let t = cert.time().unwrap();
        verify_certificate(&cert, &root, Scope::Unchecked, Some((t, Duration::from_secs(300)))).unwrap();
        assert!(matches!(
            verify_certificate(
                &cert,
                &root,
                Scope::Unchecked,
                Some((t.saturating_add(Duration::from_secs(86_400)), Duration::from_secs(300)))
            ),
            Err(CertificateError::Outdated { .. })
        ));
        // Wrong root key.
        let other_root = bls::SecretKey::from_seed([5; 32]).public_key().to_der();
        assert!(matches!(
            verify_certificate(&cert, &other_root, Scope::Unchecked, None),
            Err(CertificateError::Signature { which: "delegation certificate", .. })
        ));
        // Round trip through our encoder gives the same certificate.
        assert_eq!(Certificate::from_cbor(&cert.to_cbor()).unwrap(), cert);
    }

    /// Builds a two-level setup: root key signs a delegation for `subnet`
    /// (with the given range encoding), subnet key signs `tree`.
    pub fn delegated_certificate(
        tree: LabeledTree,
        subnet_key: &bls::SecretKey,
        root_key: &bls::SecretKey,
        subnet: SubnetId,
        ranges: &[CanisterIdRange],
        sharded: bool,
        subnet_type: Option<&str>,
    ) -> Certificate {
        let mut subnet_info =
            LabeledTree::from_children([("public_key", LabeledTree::leaf(subnet_key.public_key().to_der().to_vec()))]);
        if let Some(t) = subnet_type {
            subnet_info.insert("type", LabeledTree::leaf(t));
        }
        let mut root_tree = LabeledTree::new();
        if sharded {
            root_tree
                .insert_path(
                    &[b"canister_ranges".as_slice(), subnet.as_slice(), ranges[0].start.as_slice()],
                    LabeledTree::leaf(encode_canister_ranges(ranges)),
                )
                .unwrap();
        } else {
            subnet_info.insert("canister_ranges", LabeledTree::leaf(encode_canister_ranges(ranges)));
        }
        root_tree.insert_path(&[b"subnet".as_slice(), subnet.as_slice()], subnet_info).unwrap();
        root_tree.insert("time", LabeledTree::leaf(leb128(1)));
        let delegation = Certificate::sign(root_tree.to_hash_tree(), root_key, None);
        Certificate::sign(
            tree.to_hash_tree(),
            subnet_key,
            Some(CertificateDelegation { subnet_id: subnet.get(), certificate: delegation.to_cbor() }),
        )
    }

    #[test]
    fn both_range_forms_and_nested_delegations() {
        let root = bls::SecretKey::from_seed([1; 32]);
        let subnet_key = bls::SecretKey::from_seed([2; 32]);
        let subnet = SubnetId(Principal::self_authenticating(&subnet_key.public_key().to_der()));
        let ranges = [
            CanisterIdRange { start: CanisterId::from_u64(10), end: CanisterId::from_u64(19) },
            CanisterIdRange { start: CanisterId::from_u64(30), end: CanisterId::from_u64(39) },
        ];
        let tree = LabeledTree::from_children([("time", LabeledTree::leaf(leb128(42)))]);
        let root_der = root.public_key().to_der();
        for sharded in [false, true] {
            let cert = delegated_certificate(tree.clone(), &subnet_key, &root, subnet, &ranges, sharded, None);
            let cert = Certificate::from_cbor(&cert.to_cbor()).unwrap();
            for inside in [10, 19, 30, 35] {
                verify_certificate(&cert, &root_der, Scope::Canister(CanisterId::from_u64(inside)), None)
                    .unwrap_or_else(|e| panic!("sharded={sharded} {inside}: {e}"));
            }
            for outside in [9, 20, 29, 40] {
                assert!(matches!(
                    verify_certificate(&cert, &root_der, Scope::Canister(CanisterId::from_u64(outside)), None),
                    Err(CertificateError::CanisterNotInRanges { .. })
                ));
            }
        }
        // A delegation certificate that itself has a delegation is refused.
        let inner = delegated_certificate(tree.clone(), &subnet_key, &root, subnet, &ranges, false, None);
        let nested = Certificate::sign(
            tree.to_hash_tree(),
            &subnet_key,
            Some(CertificateDelegation { subnet_id: subnet.get(), certificate: inner.to_cbor() }),
        );
        assert_eq!(
            verify_certificate(&nested, &root_der, Scope::Unchecked, None),
            Err(CertificateError::NestedDelegation)
        );
        // No delegation: signed directly by the root key; tampering breaks it.
        let mut direct = Certificate::sign(tree.to_hash_tree(), &root, None);
        verify_certificate(&direct, &root_der, Scope::Canister(CanisterId::from_u64(1)), None).unwrap();
        direct.tree = LabeledTree::from_children([("time", LabeledTree::leaf(leb128(43)))]).to_hash_tree();
        assert!(matches!(
            verify_certificate(&direct, &root_der, Scope::Unchecked, None),
            Err(CertificateError::Signature { which: "certificate", .. })
        ));
        assert!(matches!(
            verify_certificate(&direct, &root_der, Scope::Unchecked, None),
            Err(CertificateError::Signature { .. })
        ));
        let no_time = Certificate::sign(HashTree::Empty, &root, None);
        assert_eq!(
            verify_certificate(&no_time, &root_der, Scope::Unchecked, Some((Time::EPOCH, Duration::ZERO))),
            Err(CertificateError::MissingTime)
        );
    }

    #[test]
    fn encoding_details() {
        let cert = Certificate::sign(HashTree::Empty, &bls::SecretKey::from_seed([1; 32]), None);
        let bytes = cert.to_cbor();
        assert_eq!(&bytes[..3], &[0xd9, 0xd9, 0xf7]);
        // The tag is optional on input.
        assert_eq!(Certificate::from_cbor(&bytes[3..]).unwrap(), cert);
        assert!(Certificate::from_cbor(&[0xa0]).is_err());
        let ranges = [CanisterIdRange { start: CanisterId::from_u64(0), end: CanisterId::from_u64(0xfffff) }];
        let enc = encode_canister_ranges(&ranges);
        assert_eq!(hex::encode(&enc), "d9d9f781824a000000000000000001014a00000000000fffff0101");
        assert_eq!(decode_canister_ranges(&enc).unwrap(), ranges);
    }
}
