//! Who may read which state-tree paths through `read_state` (spec §5.5).
//!
//! | path | canister endpoint | subnet endpoint |
//! |---|---|---|
//! | `/time` | ✓ | ✓ |
//! | `/api_boundary_nodes[/<nid>[/domain\|ipv4_address\|ipv6_address]]` | ✓ | ✓ |
//! | `/subnet`, `/subnet/<sid>`, `…/public_key`, `…/type`, `…/node[/<nid>[/public_key]]` | ✓ | ✓ |
//! | `/subnet/<sid>/canister_ranges` | root subnet, or any on v2 | root subnet only |
//! | `/subnet/<sid>/metrics` | `sid` = the ECID's subnet | `sid == esid` |
//! | `/canister_ranges/<sid>[/<shard>]` | ✗ | ✓, one `sid` per request |
//! | `/request_status/<rid>[/status\|reply\|reject_code\|reject_message\|error_code]` | unknown rid, or same sender and same ECID | same, with the ESID |
//! | `/canister/<cid>/{module_hash, controllers, canister_creation_timestamp, last_install_timestamp}` | `cid == ECID` | ✗ |
//! | `/canister/<cid>/metadata/<name>` | `cid == ECID`; private sections only for controllers | ✗ |
//!
//! A `request_status` of a known request whose callee is outside the
//! sender's delegation targets is refused, and at most one request id may
//! appear per request. Anything else (including the empty path, which would
//! reveal the whole tree, and `/canister/<cid>/certified_data`) is refused
//! with 403.

use crate::error::HttpError;
use crate::validate::Target;
use cairn_crypto::user_sig::AuthOutcome;
use cairn_state::ReplicatedState;
use cairn_types::{CanisterId, MessageId, Principal, SubnetId};

/// The API version of a canister read_state endpoint; decides whether a
/// non-root subnet's legacy `/subnet/<sid>/canister_ranges` is readable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiVersion {
    /// `/api/v2/...`.
    V2,
    /// `/api/v3/...`.
    V3,
}

/// Everything the permission check needs to know about a request.
pub struct ReadStateRequest<'a> {
    /// The endpoint's ECID or ESID.
    pub target: Target,
    /// The endpoint's version.
    pub version: ApiVersion,
    /// `content.sender`.
    pub sender: Principal,
    /// The authenticated sender's delegation scope.
    pub auth: &'a AuthOutcome,
    /// The root subnet (`self_auth(root key)`): its ranges are always public.
    pub root_subnet: Principal,
    /// The certified state the certificate will be built from.
    pub state: &'a ReplicatedState,
}

/// A label for messages: text if printable, else a principal or hex.
fn show(label: &[u8]) -> String {
    match std::str::from_utf8(label) {
        Ok(s) if !s.is_empty() && s.chars().all(|c| c.is_ascii_graphic() || c == ' ') => s.to_string(),
        _ => format!("0x{}", hex::encode(label)),
    }
}

/// A path for messages, e.g. `/canister/0x0000…/metadata/candid:service`.
pub fn show_path(path: &[Vec<u8>]) -> String {
    if path.is_empty() {
        return "the empty path".to_string();
    }
    path.iter().map(|l| format!("/{}", show(l))).collect()
}

fn principal(label: &[u8], what: &str, path: &[Vec<u8>]) -> Result<Principal, HttpError> {
    Principal::try_from_slice(label).map_err(|e| {
        HttpError::BadRequest(format!("The {what} in the read_state path {} is not a principal: {e}.", show_path(path)))
    })
}

fn forbidden(path: &[Vec<u8>], why: &str) -> HttpError {
    HttpError::Forbidden(format!("The read_state path {} is not readable: {why}.", show_path(path)))
}

/// Checks every path; the first refusal is returned.
pub fn check_paths(paths: &[Vec<Vec<u8>>], req: &ReadStateRequest<'_>) -> Result<(), HttpError> {
    let mut request_id: Option<MessageId> = None;
    let mut ranges_subnet: Option<Principal> = None;
    for path in paths {
        let labels: Vec<&[u8]> = path.iter().map(Vec::as_slice).collect();
        match labels.as_slice() {
            [] => return Err(forbidden(path, "it would reveal the entire state tree")),
            [b"time"] => {}
            [b"api_boundary_nodes"]
            | [b"api_boundary_nodes", _]
            | [b"api_boundary_nodes", _, b"domain" | b"ipv4_address" | b"ipv6_address"] => {}
            [b"subnet"] | [b"subnet", _] | [b"subnet", _, b"public_key" | b"type" | b"node"] => {}
            [b"subnet", _, b"node", _] | [b"subnet", _, b"node", _, b"public_key"] => {}
            [b"subnet", sid, b"canister_ranges"] => {
                let sid = principal(sid, "subnet id", path)?;
                let legacy_ok = matches!((req.target, req.version), (Target::Canister(_), ApiVersion::V2));
                if sid != req.root_subnet && !legacy_ok {
                    return Err(forbidden(
                        path,
                        "the canister ranges of a non-root subnet are served at /canister_ranges/<subnet_id> \
                         through /api/v3/subnet/<subnet_id>/read_state (or here only through /api/v2 endpoints)",
                    ));
                }
            }
            [b"subnet", sid, b"metrics"] => {
                let sid = principal(sid, "subnet id", path)?;
                let allowed = match req.target {
                    Target::Subnet(esid) => esid.get() == sid,
                    Target::Canister(_) => sid == req.state.metadata.own_subnet_id.get(),
                };
                if !allowed {
                    return Err(forbidden(
                        path,
                        "subnet metrics are readable only through the subnet's own endpoint \
                         /api/v3/subnet/<subnet_id>/read_state or the endpoint of one of its canisters",
                    ));
                }
            }
            [b"canister_ranges", sid] | [b"canister_ranges", sid, _] => {
                if matches!(req.target, Target::Canister(_)) {
                    return Err(forbidden(
                        path,
                        "/canister_ranges is served only through subnet endpoints /api/v3/subnet/<subnet_id>/read_state",
                    ));
                }
                let sid = principal(sid, "subnet id", path)?;
                match ranges_subnet {
                    Some(previous) if previous != sid => {
                        return Err(HttpError::BadRequest(format!(
                            "A read_state request may ask for the /canister_ranges of one subnet only, \
                             but it names both {previous} and {sid}."
                        )));
                    }
                    _ => ranges_subnet = Some(sid),
                }
            }
            [b"request_status", rid]
            | [b"request_status", rid, b"status" | b"reply" | b"reject_code" | b"reject_message" | b"error_code"] => {
                let id = MessageId(<[u8; 32]>::try_from(*rid).map_err(|_| {
                    HttpError::BadRequest(format!(
                        "The request id in the read_state path {} must be 32 bytes long, not {}.",
                        show_path(path),
                        rid.len()
                    ))
                })?);
                match request_id {
                    Some(previous) if previous != id => {
                        return Err(HttpError::BadRequest(format!(
                            "A read_state request may ask for the status of one request only, but it names both \
                             {previous} and {id}."
                        )));
                    }
                    _ => request_id = Some(id),
                }
                check_request_status(&id, path, req)?;
            }
            [b"canister", cid, field] | [b"canister", cid, field, _] => {
                let Target::Canister(ecid) = req.target else {
                    return Err(forbidden(
                        path,
                        "canister information is served only through /api/v3/canister/<canister_id>/read_state",
                    ));
                };
                let cid = CanisterId(principal(cid, "canister id", path)?);
                if cid != ecid {
                    return Err(forbidden(
                        path,
                        &format!(
                            "it is about canister {cid}, but the request was sent to the endpoint of canister {ecid}"
                        ),
                    ));
                }
                match (*field, labels.len()) {
                    (
                        b"module_hash" | b"controllers" | b"canister_creation_timestamp" | b"last_install_timestamp",
                        3,
                    ) => {}
                    (b"metadata", 4) => check_metadata(&cid, labels[3], path, req)?,
                    (b"certified_data", 3) => {
                        return Err(forbidden(
                            path,
                            "certified data is delivered only inside the data certificate of a query",
                        ));
                    }
                    _ => return Err(forbidden(path, "it is not a path of the state tree that read_state serves")),
                }
            }
            _ => return Err(forbidden(path, "it is not a path of the state tree that read_state serves")),
        }
    }
    Ok(())
}

/// `/request_status/<rid>`: readable if the request is unknown, or was
/// sent by the same sender to the same ECID/ESID and (under a delegation)
/// to a callee within the targets.
fn check_request_status(id: &MessageId, path: &[Vec<u8>], req: &ReadStateRequest<'_>) -> Result<(), HttpError> {
    let Some(status) = req.state.metadata.ingress_history.get(id) else {
        return Ok(());
    };
    if status.user != req.sender {
        return Err(forbidden(path, &format!("request {id} was not sent by {}", req.sender)));
    }
    if status.effective_canister_id.get() != req.target.principal() {
        return Err(forbidden(
            path,
            &format!(
                "request {id} was sent to the endpoint of {}, not {}",
                status.effective_canister_id,
                req.target.principal()
            ),
        ));
    }
    if !req.auth.allows(&status.receiver.get()) {
        return Err(forbidden(
            path,
            &format!("request {id} called canister {}, which the sender's delegation does not cover", status.receiver),
        ));
    }
    Ok(())
}

/// `/canister/<cid>/metadata/<name>`: public sections for everyone, private
/// ones for controllers; absent sections (or canisters) for everyone, so
/// that absence can be proven.
fn check_metadata(
    cid: &CanisterId,
    name: &[u8],
    path: &[Vec<u8>],
    req: &ReadStateRequest<'_>,
) -> Result<(), HttpError> {
    let name = std::str::from_utf8(name).map_err(|_| {
        HttpError::BadRequest(format!("The metadata section name in {} is not valid UTF-8.", show_path(path)))
    })?;
    let Some(canister) = req.state.canisters.get(cid) else { return Ok(()) };
    let Some(exec) = &canister.execution_state else { return Ok(()) };
    let Some(section) = exec.metadata.get(name) else { return Ok(()) };
    if !section.public && !canister.system_state.is_controller(&req.sender) {
        return Err(forbidden(
            path,
            &format!("the metadata section {name:.100} is private and {} is not a controller of {cid}", req.sender),
        ));
    }
    Ok(())
}

/// The subnet whose root key signs certificates when there is no delegation.
pub fn root_subnet(root_key_der: &[u8]) -> SubnetId {
    SubnetId(Principal::self_authenticating(root_key_der))
}
