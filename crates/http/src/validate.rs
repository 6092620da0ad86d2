//! Request checks that depend on the endpoint, the clock and the state:
//! ingress expiry, effective canister id, subnet membership and
//! authentication.

use crate::envelope::{CanisterCall, Envelope};
use crate::error::HttpError;
use cairn_crypto::user_sig::{AuthError, AuthOutcome, authenticate};
use cairn_execution::management::effective_canister_id;
use cairn_state::ReplicatedState;
use cairn_types::{CanisterId, Principal, SubnetId, Time};
use std::time::Duration;

/// How far ahead of `now` an `ingress_expiry` may lie: the IC's
/// `MAX_INGRESS_TTL` (5 min) plus `PERMITTED_DRIFT_AT_VALIDATOR` (30 s).
pub const DEFAULT_MAX_INGRESS_EXPIRY_AHEAD: Duration = Duration::from_secs(5 * 60 + 30);

/// Management methods that create a canister: any ECID on the subnet is fine.
const CREATION_METHODS: &[&str] = &["create_canister", "provisional_create_canister_with_cycles"];

/// Which endpoint family a request arrived at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// `/api/vN/canister/<ecid>/...`.
    Canister(CanisterId),
    /// `/api/vN/subnet/<esid>/...`.
    Subnet(SubnetId),
}

impl Target {
    /// The effective principal (ECID or ESID) as recorded with ingress and
    /// compared by read_state `request_status` permissions.
    pub fn principal(&self) -> Principal {
        match self {
            Target::Canister(c) => c.get(),
            Target::Subnet(s) => s.get(),
        }
    }
}

fn secs(nanos: u64) -> String {
    format!("{}.{:03} s", nanos / 1_000_000_000, (nanos % 1_000_000_000) / 1_000_000)
}

/// Checks `ingress_expiry` against `now`.
///
/// A request is refused if it expired (`now > expiry`) or expires further
/// ahead than `max_ahead`. Anonymous queries and read_state requests may
/// carry any expiry (spec §4.4): pass `any_expiry = true` for them.
pub fn check_expiry(expiry: u64, now: u64, max_ahead: Duration, any_expiry: bool) -> Result<(), HttpError> {
    if any_expiry {
        return Ok(());
    }
    if now > expiry {
        return Err(HttpError::BadRequest(format!(
            "Invalid request expiry: the request expired {} ago (ingress_expiry {expiry} ns, replica time {now} ns). \
             Check that the client's clock is correct.",
            secs(now - expiry)
        )));
    }
    let max = Time::from_nanos(now).saturating_add(max_ahead).as_nanos();
    if expiry > max {
        return Err(HttpError::BadRequest(format!(
            "Invalid request expiry: ingress_expiry {expiry} ns is {} ahead of the replica's time {now} ns; \
             at most {} ahead is accepted. Check that the client's clock is correct.",
            secs(expiry - now),
            secs(max - now)
        )));
    }
    Ok(())
}

/// Checks the effective canister id rules (spec §2.5) for a call or query
/// addressed through `/canister/<ecid>/`.
///
/// * a normal canister: `canister_id == ecid`;
/// * an update to `aaaaa-aa`: creation methods take any ECID,
///   `install_chunked_code` needs `target_canister == ecid`, every other
///   method whose argument names a `canister_id` needs it to be `ecid`
///   (methods whose argument names no canister are left to admission,
///   which rejects them with the IC's own error);
/// * a query to `aaaaa-aa`: `list_canisters` takes any ECID, others need
///   `canister_id == ecid`.
pub fn check_canister_ecid(call: &CanisterCall, ecid: CanisterId, is_query: bool) -> Result<(), HttpError> {
    if !call.canister_id.is_management() {
        if call.canister_id != ecid {
            return Err(HttpError::BadRequest(format!(
                "The request's canister_id {} does not match the effective canister id {ecid} in the URL.",
                call.canister_id
            )));
        }
        return Ok(());
    }
    let method = call.method_name.as_str();
    let any_ecid = if is_query { method == "list_canisters" } else { CREATION_METHODS.contains(&method) };
    if any_ecid {
        return Ok(());
    }
    match effective_canister_id(method, &call.arg) {
        Some(id) if id == ecid => Ok(()),
        Some(id) => Err(HttpError::BadRequest(format!(
            "The management canister call {method} is about canister {id}, but the effective canister id in the URL is {ecid}."
        ))),
        // No canister in the argument (`raw_rand`, an unknown method, an
        // undecodable argument): the call cannot touch any canister, so the
        // URL's ECID does not matter; admission or execution rejects it
        // with the IC's own error (e.g. "cannot be called via ingress").
        None => Ok(()),
    }
}

/// Checks a call or query sent to a subnet endpoint: only the management
/// canister's creation methods (calls) or `list_canisters` (queries).
pub fn check_subnet_request(call: &CanisterCall, is_query: bool) -> Result<(), HttpError> {
    let allowed: &[&str] = if is_query { &["list_canisters"] } else { CREATION_METHODS };
    if call.canister_id.is_management() && allowed.contains(&call.method_name.as_str()) {
        return Ok(());
    }
    Err(HttpError::BadRequest(format!(
        "Subnet endpoints only accept {} of the management canister aaaaa-aa, not {} of {}.",
        allowed.join(" or "),
        call.method_name,
        call.canister_id
    )))
}

/// Checks that the endpoint's ECID or ESID belongs to this subnet
/// (404 otherwise: the request must be sent to another subnet).
///
/// The management canister's id `aaaaa-aa` is accepted as an ECID: every
/// subnet hosts the management canister, and ic-py addresses canister
/// creation (and the polling of its status) to `/api/v2/canister/aaaaa-aa/`.
/// The ECID rules still apply, so it only admits management calls that take
/// any ECID, and read_state requests.
pub fn check_target_on_subnet(target: Target, state: &ReplicatedState) -> Result<(), HttpError> {
    let own = state.metadata.own_subnet_id;
    match target {
        Target::Canister(ecid) if ecid.is_management() => Ok(()),
        Target::Canister(ecid) => match state.metadata.routing_table.route(&ecid) {
            Some(subnet) if subnet == own => Ok(()),
            Some(subnet) => Err(HttpError::NotFound(format!(
                "Canister {ecid} belongs to subnet {subnet}, not to this node's subnet {own}."
            ))),
            None => Err(HttpError::NotFound(format!(
                "Canister {ecid} is not in the canister ranges of any subnet (this node's subnet is {own})."
            ))),
        },
        Target::Subnet(esid) if esid == own => Ok(()),
        Target::Subnet(esid) => Err(HttpError::NotFound(format!("Subnet {esid} is not this node's subnet {own}."))),
    }
}

/// Maps an authentication failure to its HTTP class: delegation scope
/// violations are 403 (the request is well-formed but not allowed), every
/// other failure is a malformed or unauthenticated request (400).
pub fn auth_error(request_id: &cairn_types::MessageId, e: AuthError) -> HttpError {
    match e {
        AuthError::TargetNotAllowed(_) | AuthError::QueriesOnly => {
            HttpError::Forbidden(format!("Request {request_id} is not allowed: {e}."))
        }
        _ => HttpError::BadRequest(format!("Failed to authenticate request {request_id}: {e}.")),
    }
}

/// Verifies sender, signature, delegations and sender info (spec §4).
pub fn authenticate_envelope(envelope: &Envelope, now: u64, root_key_der: &[u8]) -> Result<AuthOutcome, HttpError> {
    authenticate(&envelope.auth(), &envelope.request_id, &envelope.sender, Time::from_nanos(now), root_key_der)
        .map_err(|e| auth_error(&envelope.request_id, e))
}

/// Validates a signed update call as a block validator does: decodes the
/// envelope, applies the effective-id and size rules, and authenticates it
/// at the block's `time` (delegations must not have expired by then). The
/// request's own expiry is left to the caller (consensus checks it against
/// the block time). Deterministic: the same bytes and time always give the
/// same answer on every node.
///
/// Also returns the earliest expiry of the request's delegations
/// (`u64::MAX` without delegations): until then the verdict holds for any
/// later block time, so a caller may cache it without decoding again.
pub fn ingress_from_signed(
    signed: &crate::SignedIngress,
    time: Time,
    root_key_der: &[u8],
    max_payload_bytes: usize,
) -> Result<(cairn_types::messages::Ingress, Time), HttpError> {
    let envelope =
        crate::envelope::decode_envelope(&signed.envelope).map_err(|e| HttpError::BadRequest(e.to_string()))?;
    let crate::envelope::RequestBody::Call(call) = &envelope.body else {
        return Err(HttpError::BadRequest(format!("expected a call, found a {}", envelope.request_type().as_str())));
    };
    let size = call.method_name.len() + call.arg.len();
    if size > max_payload_bytes {
        return Err(HttpError::PayloadTooLarge(format!("method name and argument take {size} bytes")));
    }
    if signed.subnet_target {
        check_subnet_request(call, false)?;
    } else {
        check_canister_ecid(call, CanisterId(signed.effective_principal), false)?;
    }
    let outcome = authenticate_envelope(&envelope, time.as_nanos(), root_key_der)?;
    outcome.check_target(&call.canister_id.get(), true).map_err(|e| auth_error(&envelope.request_id, e))?;
    let valid_until = delegations_valid_until(&envelope);
    let ingress = cairn_types::messages::Ingress {
        source: envelope.sender,
        receiver: call.canister_id,
        effective_canister_id: CanisterId(signed.effective_principal),
        method_name: call.method_name.clone(),
        method_payload: call.arg.clone(),
        message_id: envelope.request_id,
        expiry_time: Time::from_nanos(envelope.ingress_expiry),
        sender_info: outcome.sender_info,
    };
    Ok((ingress, valid_until))
}

/// The earliest expiry of a request's delegations (`u64::MAX` nanoseconds
/// without delegations): the end of the window in which a verdict on its
/// signature holds.
pub fn delegations_valid_until(envelope: &Envelope) -> Time {
    Time::from_nanos(envelope.sender_delegation.iter().map(|d| d.delegation.expiration).min().unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_state::{SubnetType, SystemMetadata};
    use cairn_types::{CanisterIdRange, RoutingTable};

    const NOW: u64 = 1_700_000_000_000_000_000;
    const MAX: Duration = DEFAULT_MAX_INGRESS_EXPIRY_AHEAD;

    #[test]
    fn expiry_rules() {
        // Inside the window, including both ends.
        check_expiry(NOW, NOW, MAX, false).unwrap();
        check_expiry(NOW + 180_000_000_000, NOW, MAX, false).unwrap();
        check_expiry(NOW + 330_000_000_000, NOW, MAX, false).unwrap();
        // Expired by 1 ns.
        let e = check_expiry(NOW - 1, NOW, MAX, false).unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e.message().contains("expired"), "{e}");
        // Too far ahead by 1 ns.
        let e = check_expiry(NOW + 330_000_000_001, NOW, MAX, false).unwrap_err();
        assert!(e.message().contains("at most 330.000 s ahead"), "{e}");
        // Anonymous query/read_state: anything goes.
        check_expiry(0, NOW, MAX, true).unwrap();
        check_expiry(u64::MAX, NOW, MAX, true).unwrap();
        // No overflow near the end of time.
        check_expiry(u64::MAX, u64::MAX - 1, MAX, false).unwrap();
    }

    fn call(canister: CanisterId, method: &str, arg: Vec<u8>) -> CanisterCall {
        CanisterCall { canister_id: canister, method_name: method.into(), arg, sender_info: None }
    }

    fn record_arg(field: &str, id: CanisterId) -> Vec<u8> {
        #[derive(candid::CandidType)]
        struct A {
            canister_id: candid::Principal,
        }
        #[derive(candid::CandidType)]
        struct B {
            target_canister: candid::Principal,
        }
        let p = candid::Principal::from_slice(id.as_slice());
        if field == "canister_id" {
            candid::encode_one(A { canister_id: p }).unwrap()
        } else {
            candid::encode_one(B { target_canister: p }).unwrap()
        }
    }

    #[test]
    fn ecid_rules() {
        let a = CanisterId::from_u64(1);
        let b = CanisterId::from_u64(2);
        let mgmt = CanisterId::MANAGEMENT;
        check_canister_ecid(&call(a, "m", vec![]), a, false).unwrap();
        let e = check_canister_ecid(&call(a, "m", vec![]), b, true).unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e.message().contains("does not match the effective canister id"), "{e}");
        // Creation: any ECID.
        check_canister_ecid(&call(mgmt, "create_canister", vec![]), b, false).unwrap();
        check_canister_ecid(&call(mgmt, "provisional_create_canister_with_cycles", vec![]), a, false).unwrap();
        assert!(check_canister_ecid(&call(mgmt, "canister_status", record_arg("canister_id", a)), b, true).is_err());
        // canister_id in the argument.
        check_canister_ecid(&call(mgmt, "install_code", record_arg("canister_id", a)), a, false).unwrap();
        assert!(check_canister_ecid(&call(mgmt, "install_code", record_arg("canister_id", a)), b, false).is_err());
        check_canister_ecid(&call(mgmt, "canister_status", record_arg("canister_id", b)), b, true).unwrap();
        // install_chunked_code uses target_canister.
        check_canister_ecid(&call(mgmt, "install_chunked_code", record_arg("target_canister", a)), a, false).unwrap();
        assert!(
            check_canister_ecid(&call(mgmt, "install_chunked_code", record_arg("target_canister", b)), a, false)
                .is_err()
        );
        // list_canisters: any ECID as a query.
        check_canister_ecid(&call(mgmt, "list_canisters", vec![]), b, true).unwrap();
        // No canister in the argument: left to admission and execution.
        check_canister_ecid(&call(mgmt, "stop_canister", b"junk".to_vec()), a, false).unwrap();
        check_canister_ecid(&call(mgmt, "raw_rand", vec![]), a, false).unwrap();
    }

    #[test]
    fn subnet_endpoint_rules() {
        let mgmt = CanisterId::MANAGEMENT;
        check_subnet_request(&call(mgmt, "create_canister", vec![]), false).unwrap();
        check_subnet_request(&call(mgmt, "provisional_create_canister_with_cycles", vec![]), false).unwrap();
        check_subnet_request(&call(mgmt, "list_canisters", vec![]), true).unwrap();
        assert!(check_subnet_request(&call(mgmt, "list_canisters", vec![]), false).is_err());
        assert!(check_subnet_request(&call(mgmt, "install_code", vec![]), false).is_err());
        assert!(check_subnet_request(&call(CanisterId::from_u64(1), "create_canister", vec![]), false).is_err());
    }

    #[test]
    fn subnet_membership() {
        let own = SubnetId(Principal::self_authenticating(b"own"));
        let other = SubnetId(Principal::self_authenticating(b"other"));
        let mut meta = SystemMetadata::single_subnet(own, SubnetType::Application, 1, vec![]);
        let mut table = RoutingTable::new();
        table.insert(CanisterIdRange { start: CanisterId::from_u64(0), end: CanisterId::from_u64(99) }, own).unwrap();
        table
            .insert(CanisterIdRange { start: CanisterId::from_u64(100), end: CanisterId::from_u64(199) }, other)
            .unwrap();
        meta.routing_table = table;
        let state = ReplicatedState::new(meta);
        check_target_on_subnet(Target::Canister(CanisterId::from_u64(5)), &state).unwrap();
        let e = check_target_on_subnet(Target::Canister(CanisterId::from_u64(150)), &state).unwrap_err();
        assert_eq!(e.status(), 404);
        assert_eq!(
            check_target_on_subnet(Target::Canister(CanisterId::from_u64(500)), &state).unwrap_err().status(),
            404
        );
        check_target_on_subnet(Target::Canister(CanisterId::MANAGEMENT), &state).unwrap();
        check_target_on_subnet(Target::Subnet(own), &state).unwrap();
        assert_eq!(check_target_on_subnet(Target::Subnet(other), &state).unwrap_err().status(), 404);
    }
}
