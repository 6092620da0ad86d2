//! The management canister `aaaaa-aa`: canister lifecycle, settings, code,
//! cycles, randomness, logs and snapshots.
//!
//! Calls arrive as ingress or as requests from canisters; each is executed
//! here against the replicated state and answered like any call (a reply is
//! Candid-encoded, errors carry the IC's error codes and texts).

pub mod types;

use crate::config::{MAX_CHUNK_SIZE, MAX_CHUNKS, MAX_SNAPSHOTS_PER_CANISTER, STOP_CANISTER_TIMEOUT_NANOS};
use crate::cycles;
use crate::environment::{ExecutionEnvironment, costs};
use crate::install::InstallRequest;
use crate::messages::{Output, reject_origin};
use cairn_state::canister_state::{
    CanisterChange, CanisterSettings, CanisterStatus, ChangeDetails, ChangeOrigin, InstallMode, StopContext,
    SystemState, Visibility, WasmChunkStore,
};
use cairn_state::replicated_state::CanisterSnapshot;
use cairn_state::{CallOrigin, CanisterState, ReplicatedState};
use cairn_types::messages::{IngressState, Payload, RejectContext, Response, WasmResult};
use cairn_types::{CanisterId, Cycles, ErrorCode, Principal, RejectCode, Time, UserError};
use candid::{CandidType, Decode, Encode, Nat};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::sync::Arc;
use types::*;

/// A call to the management canister.
pub(crate) struct ManagementCall {
    pub origin: CallOrigin,
    pub caller: Principal,
    pub method: String,
    pub arg: Vec<u8>,
    /// Cycles attached by a calling canister.
    pub cycles: Cycles,
}

/// How a management call ended.
pub(crate) enum Outcome {
    /// Reply with these Candid bytes, refunding `refund` of the attached cycles.
    Reply(Vec<u8>, Cycles),
    Error(UserError),
    /// A reject with an explicit reject code (routing failures).
    Reject(RejectCode, String),
    /// The answer comes later (`stop_canister`).
    Deferred,
}

/// Methods that only canisters may call (never ingress).
const CANISTER_ONLY: &[&str] = &[
    "create_canister",
    "canister_info",
    "canister_metadata",
    "deposit_cycles",
    "raw_rand",
    "http_request",
    "ecdsa_public_key",
    "sign_with_ecdsa",
    "schnorr_public_key",
    "sign_with_schnorr",
    "vetkd_public_key",
    "vetkd_derive_key",
    "bitcoin_get_balance",
    "bitcoin_get_utxos",
    "bitcoin_send_transaction",
    "bitcoin_get_current_fee_percentiles",
    "bitcoin_get_block_headers",
    "node_metrics_history",
    "subnet_info",
];

/// Whether `method` may be called by ingress (creation only by subnet admins).
pub fn is_ingress_method(method: &str, sender_is_admin: bool) -> bool {
    if method == "create_canister" {
        return sender_is_admin;
    }
    !CANISTER_ONLY.contains(&method)
}

/// Methods that need features this subnet does not have yet.
const NOT_YET_SUPPORTED: &[(&str, &str)] = &[
    ("http_request", "HTTPS outcalls"),
    ("ecdsa_public_key", "threshold ECDSA keys"),
    ("sign_with_ecdsa", "threshold ECDSA keys"),
    ("schnorr_public_key", "threshold Schnorr keys"),
    ("sign_with_schnorr", "threshold Schnorr keys"),
    ("vetkd_public_key", "vetKD keys"),
    ("vetkd_derive_key", "vetKD keys"),
    ("bitcoin_get_balance", "the Bitcoin integration"),
    ("bitcoin_get_utxos", "the Bitcoin integration"),
    ("bitcoin_send_transaction", "the Bitcoin integration"),
    ("bitcoin_get_current_fee_percentiles", "the Bitcoin integration"),
    ("bitcoin_get_block_headers", "the Bitcoin integration"),
    ("node_metrics_history", "node metrics history"),
];

/// Methods callable only as queries.
const QUERY_ONLY: &[&str] = &["fetch_canister_logs", "list_canisters"];

/// The canister a management call is about (its *effective canister id*,
/// spec §2.5): `canister_id`, or `target_canister` for chunked installs;
/// `None` for calls not about an existing canister (creation, `raw_rand`...).
pub fn effective_canister_id(method: &str, arg: &[u8]) -> Option<CanisterId> {
    #[derive(CandidType, candid::Deserialize)]
    struct WithCanisterId {
        canister_id: candid::Principal,
    }
    #[derive(CandidType, candid::Deserialize)]
    struct WithTarget {
        target_canister: candid::Principal,
    }
    match method {
        "create_canister" | "provisional_create_canister_with_cycles" | "raw_rand" | "list_canisters" => None,
        "install_chunked_code" => {
            Decode!(arg, WithTarget).ok().map(|a| CanisterId::from(to_principal(&a.target_canister)))
        }
        _ => Decode!(arg, WithCanisterId).ok().map(|a| CanisterId::from(to_principal(&a.canister_id))),
    }
}

fn decode_error(method: &str, e: impl std::fmt::Display) -> UserError {
    UserError::new(ErrorCode::InvalidManagementPayload, format!("Error decoding candid for method {method}: {e}"))
}

fn not_found(id: &CanisterId) -> UserError {
    UserError::new(ErrorCode::CanisterNotFound, format!("Canister {id} not found."))
}

fn invalid_settings(msg: impl Into<String>) -> UserError {
    UserError::new(ErrorCode::CanisterContractViolation, format!("Could not validate the settings: {}", msg.into()))
}

/// The controller check, worded as the IC words it.
pub(crate) fn check_controller(canister: &CanisterState, sender: &Principal) -> Result<(), UserError> {
    if canister.system_state.is_controller(sender) {
        return Ok(());
    }
    let controllers: Vec<String> = canister.system_state.controllers.iter().map(|c| c.to_string()).collect();
    Err(UserError::new(
        ErrorCode::CanisterInvalidController,
        format!(
            "Only the controllers of the canister {} can control it.\nCanister's controllers: {}\nSender's ID: {sender}",
            canister.id(),
            controllers.join(" ")
        ),
    ))
}

fn nat_u64(n: &Nat, field: &str) -> Result<u64, UserError> {
    u64::try_from(n.0.clone())
        .map_err(|_| invalid_settings(format!("Invalid settings: '{field}' must fit in 64 bits.")))
}

fn nat_u128(n: &Nat) -> u128 {
    u128::try_from(n.0.clone()).unwrap_or(u128::MAX)
}

fn to_principal(p: &candid::Principal) -> Principal {
    Principal::try_from_slice(p.as_slice()).expect("candid principals are at most 29 bytes")
}

fn to_candid(p: &Principal) -> candid::Principal {
    candid::Principal::from_slice(p.as_slice())
}

fn visibility_from(v: &VisibilityArg) -> Result<Visibility, UserError> {
    Ok(match v {
        VisibilityArg::Controllers => Visibility::Controllers,
        VisibilityArg::Public => Visibility::Public,
        VisibilityArg::AllowedViewers(list) => {
            if list.len() > 10 {
                return Err(invalid_settings(
                    "Invalid settings: 'allowed_viewers' length exceeds maximum size allowed of 10.",
                ));
            }
            Visibility::AllowedViewers(list.iter().map(to_principal).collect())
        }
    })
}

fn visibility_to(v: &Visibility) -> VisibilityArg {
    match v {
        Visibility::Controllers => VisibilityArg::Controllers,
        Visibility::Public => VisibilityArg::Public,
        Visibility::AllowedViewers(l) => VisibilityArg::AllowedViewers(l.iter().map(to_candid).collect()),
    }
}

/// Applies `args` on top of `settings` (and `controllers`), validating every field.
pub(crate) fn apply_settings(
    args: &CanisterSettingsArgs,
    settings: &mut CanisterSettings,
    controllers: &mut BTreeSet<Principal>,
) -> Result<(), UserError> {
    if let Some(c) = &args.controllers {
        if c.len() > cairn_state::canister_state::MAX_CONTROLLERS {
            return Err(invalid_settings("Invalid settings: 'controllers' length exceeds maximum size allowed of 10."));
        }
        *controllers = c.iter().map(to_principal).collect();
    }
    if let Some(v) = &args.compute_allocation {
        let v = nat_u64(v, "compute_allocation")?;
        if v > 100 {
            return Err(invalid_settings(format!("ComputeAllocation expected to be in the range [0..100], got {v}")));
        }
        settings.compute_allocation = v;
    }
    if let Some(v) = &args.memory_allocation {
        let v = nat_u64(v, "memory_allocation")?;
        if v > 1 << 48 {
            return Err(invalid_settings(format!("MemoryAllocation expected to be in the range [0..2^48], got {v}")));
        }
        settings.memory_allocation = v;
    }
    if let Some(v) = &args.freezing_threshold {
        settings.freezing_threshold = nat_u64(v, "freezing_threshold")?;
    }
    if let Some(v) = &args.reserved_cycles_limit {
        settings.reserved_cycles_limit = Cycles::new(nat_u128(v));
    }
    if let Some(v) = &args.log_visibility {
        settings.log_visibility = visibility_from(v)?;
    }
    if let Some(v) = &args.snapshot_visibility {
        settings.snapshot_visibility = visibility_from(v)?;
    }
    if let Some(v) = &args.status_visibility {
        settings.status_visibility = visibility_from(v)?;
    }
    if let Some(v) = &args.wasm_memory_limit {
        let v = nat_u64(v, "wasm_memory_limit")?;
        if v > 1 << 48 {
            return Err(invalid_settings(format!("Wasm memory limit expected to be in the range [0..2^48], got {v}")));
        }
        settings.wasm_memory_limit = v;
    }
    if let Some(v) = &args.wasm_memory_threshold {
        let v = nat_u64(v, "wasm_memory_threshold")?;
        if v > 1 << 48 {
            return Err(invalid_settings(format!(
                "Wasm memory threshold expected to be in the range [0..2^48], got {v}"
            )));
        }
        settings.wasm_memory_threshold = v;
    }
    if let Some(vars) = &args.environment_variables {
        if vars.len() > 20 {
            return Err(UserError::new(
                ErrorCode::InvalidManagementPayload,
                format!("Too many environment variables: {} (max: 20)", vars.len()),
            ));
        }
        let mut map = std::collections::BTreeMap::new();
        for v in vars {
            if v.name.len() > 128 || v.value.len() > 128 {
                return Err(UserError::new(
                    ErrorCode::InvalidManagementPayload,
                    format!(
                        "Environment variable '{}' is too long (names and values are limited to 128 bytes)",
                        v.name
                    ),
                ));
            }
            if map.insert(v.name.clone(), v.value.clone()).is_some() {
                return Err(UserError::new(
                    ErrorCode::InvalidManagementPayload,
                    format!("Duplicate environment variable '{}'", v.name),
                ));
            }
        }
        settings.environment_variables = map;
    }
    if let Some(v) = &args.minimum_incoming_canister_call_cycles {
        settings.minimum_incoming_canister_call_cycles = Cycles::new(nat_u128(v));
    }
    Ok(())
}

fn change_origin(origin: &CallOrigin, caller: Principal) -> ChangeOrigin {
    match origin {
        CallOrigin::Canister { caller, .. } => ChangeOrigin::FromCanister(*caller, None),
        _ => ChangeOrigin::FromUser(caller),
    }
}

fn encode<T: CandidType>(value: &T) -> Vec<u8> {
    Encode!(value).expect("management results always encode")
}

fn empty_reply() -> Vec<u8> {
    Encode!().expect("empty candid")
}

/// The snapshot id: `u64 local id (big-endian) ‖ canister id`.
fn snapshot_id(local: u64, canister: &CanisterId) -> Vec<u8> {
    let mut id = local.to_be_bytes().to_vec();
    id.extend_from_slice(canister.as_slice());
    id
}

fn snapshot_owner(id: &[u8]) -> Option<CanisterId> {
    if id.len() < 8 {
        return None;
    }
    Principal::try_from_slice(&id[8..]).ok().map(CanisterId::from)
}

impl ExecutionEnvironment {
    /// Executes a management call and answers it (now or, for `stop_canister`, later).
    pub(crate) fn execute_management(
        &mut self,
        state: &mut ReplicatedState,
        call: ManagementCall,
        randomness: &[u8; 32],
        outputs: &mut Vec<Output>,
    ) -> u64 {
        let is_ingress = matches!(call.origin, CallOrigin::Ingress { .. });
        let outcome =
            if is_ingress && CANISTER_ONLY.contains(&call.method.as_str()) && !self.is_admin_create(state, &call) {
                Outcome::Error(UserError::new(
                    ErrorCode::CanisterMethodNotFound,
                    format!("Only canisters can call the management canister method {}", call.method),
                ))
            } else {
                self.dispatch(state, &call, randomness)
            };
        let me = CanisterId::MANAGEMENT;
        match outcome {
            Outcome::Reply(bytes, refund) => match &call.origin {
                CallOrigin::Ingress { message_id, .. } => {
                    outputs.push(Output::Ingress(*message_id, IngressState::Completed(WasmResult::Reply(bytes))))
                }
                CallOrigin::Canister { caller, callback, deadline } => outputs.push(Output::Response(Response {
                    originator: *caller,
                    respondent: me,
                    originator_reply_callback: *callback,
                    refund,
                    response_payload: Payload::Data(bytes),
                    deadline: *deadline,
                })),
                CallOrigin::SystemTask => {}
            },
            Outcome::Error(err) => reject_origin(&call.origin, me, err, call.cycles, outputs),
            Outcome::Reject(code, message) => match &call.origin {
                CallOrigin::Canister { caller, callback, deadline } => outputs.push(Output::Response(Response {
                    originator: *caller,
                    respondent: me,
                    originator_reply_callback: *callback,
                    refund: call.cycles,
                    response_payload: Payload::Reject(RejectContext::new(code, message)),
                    deadline: *deadline,
                })),
                other => reject_origin(
                    other,
                    me,
                    UserError::new(ErrorCode::CanisterMethodNotFound, message),
                    call.cycles,
                    outputs,
                ),
            },
            Outcome::Deferred => {}
        }
        0
    }

    fn is_admin_create(&self, state: &ReplicatedState, call: &ManagementCall) -> bool {
        call.method == "create_canister" && state.metadata.subnet_admins.contains(&call.caller)
    }

    fn dispatch(&mut self, state: &mut ReplicatedState, call: &ManagementCall, randomness: &[u8; 32]) -> Outcome {
        let m = call.method.as_str();
        if let Some((_, feature)) = NOT_YET_SUPPORTED.iter().find(|(name, _)| *name == m) {
            return Outcome::Reject(
                RejectCode::DestinationInvalid,
                format!(
                    "Management canister method '{m}' is not yet supported on this subnet: {feature} are not available yet."
                ),
            );
        }
        if QUERY_ONLY.contains(&m) {
            return Outcome::Error(UserError::new(
                ErrorCode::CanisterContractViolation,
                format!("{m} API is only accessible in non-replicated mode"),
            ));
        }
        let result = match m {
            "create_canister" => self.create_canister(state, call),
            "provisional_create_canister_with_cycles" => self.provisional_create(state, call),
            "provisional_top_up_canister" => self.top_up(state, call),
            "update_settings" => self.update_settings(state, call),
            "install_code" => self.install_code_call(state, call),
            "install_chunked_code" => self.install_chunked_code_call(state, call),
            "upload_chunk" => self.upload_chunk(state, call),
            "clear_chunk_store" => self.clear_chunk_store(state, call),
            "stored_chunks" => self.stored_chunks(state, call),
            "uninstall_code" => self.uninstall_code_call(state, call),
            "start_canister" => self.start_canister(state, call),
            "stop_canister" => return self.stop_canister(state, call),
            "delete_canister" => self.delete_canister(state, call),
            "canister_status" => self.canister_status_call(state, call),
            "canister_info" => self.canister_info(state, call),
            "canister_metadata" => self.canister_metadata(state, call),
            "deposit_cycles" => self.deposit_cycles(state, call),
            "raw_rand" => Ok(self.raw_rand(state, randomness)),
            "take_canister_snapshot" => self.take_snapshot(state, call),
            "load_canister_snapshot" => self.load_snapshot(state, call),
            "list_canister_snapshots" => self.list_snapshots(state, call),
            "delete_canister_snapshot" => self.delete_snapshot(state, call),
            "subnet_info" => self.subnet_info(state, call),
            _ => Err(UserError::new(
                ErrorCode::CanisterMethodNotFound,
                format!("Management canister has no method '{m}'"),
            )),
        };
        match result {
            Ok((bytes, refund)) => Outcome::Reply(bytes, refund),
            Err(e) => Outcome::Error(e),
        }
    }

    /// Finds a canister and checks that `caller` controls it.
    fn controlled<'a>(
        state: &'a mut ReplicatedState,
        id: &candid::Principal,
        caller: &Principal,
    ) -> Result<&'a mut CanisterState, UserError> {
        let id = CanisterId::from(to_principal(id));
        let canister = state.canisters.get_mut(&id).ok_or_else(|| not_found(&id))?;
        check_controller(canister, caller)?;
        Ok(canister)
    }

    fn new_canister_id(state: &mut ReplicatedState) -> Result<CanisterId, UserError> {
        let meta = &mut state.metadata;
        loop {
            let id = CanisterId::from_u64(meta.next_canister_index);
            if !meta.canister_allocation_range.contains(&id) {
                return Err(UserError::new(
                    ErrorCode::MaxNumberOfCanistersReached,
                    "The subnet has no canister ids left",
                ));
            }
            meta.next_canister_index += 1;
            if !state.canisters.contains_key(&id) {
                return Ok(id);
            }
        }
    }

    fn insert_new_canister(
        state: &mut ReplicatedState,
        id: CanisterId,
        call: &ManagementCall,
        settings: Option<&CanisterSettingsArgs>,
        cycles: Cycles,
    ) -> Result<(), UserError> {
        let now = state.metadata.batch_time;
        let mut controllers: BTreeSet<Principal> = [call.caller].into();
        let mut s = CanisterSettings::default();
        if let Some(args) = settings {
            apply_settings(args, &mut s, &mut controllers)?;
        }
        let mut system = SystemState::new(id, controllers.clone(), cycles, s, now);
        system.history.add(CanisterChange {
            timestamp_nanos: now.as_nanos(),
            canister_version: 0,
            origin: change_origin(&call.origin, call.caller),
            details: ChangeDetails::Creation {
                controllers: controllers.into_iter().collect(),
                environment_variables_hash: None,
            },
        });
        state.canisters.insert(id, CanisterState { system_state: system, execution_state: None });
        Ok(())
    }

    fn create_canister(
        &mut self,
        state: &mut ReplicatedState,
        call: &ManagementCall,
    ) -> Result<(Vec<u8>, Cycles), UserError> {
        let args = Decode!(&call.arg, CreateCanisterArgs).map_err(|e| decode_error(&call.method, e))?;
        let fee = costs(&state.metadata).canister_creation_fee();
        let is_admin = state.metadata.subnet_admins.contains(&call.caller);
        let cycles = if is_admin && matches!(call.origin, CallOrigin::Ingress { .. }) {
            Cycles::ZERO
        } else if call.cycles < fee {
            return Err(UserError::new(
                ErrorCode::InsufficientCyclesForCreateCanister,
                format!(
                    "Creating a canister requires a fee of {fee} that is deducted from the canister's initial balance but only {} cycles were received with the create_canister request.",
                    call.cycles
                ),
            ));
        } else {
            call.cycles - fee
        };
        let id = Self::new_canister_id(state)?;
        Self::insert_new_canister(state, id, call, args.settings.as_ref(), cycles)?;
        if let Some(c) = state.canisters.get_mut(&id) {
            c.system_state.consumed_cycles.canister_creation += fee.min(call.cycles);
        }
        state.metadata.consumed_cycles_total += fee.min(call.cycles);
        Ok((encode(&CanisterIdResult { canister_id: to_candid(&id.get()) }), Cycles::ZERO))
    }

    fn provisional_create(
        &mut self,
        state: &mut ReplicatedState,
        call: &ManagementCall,
    ) -> Result<(Vec<u8>, Cycles), UserError> {
        let args = Decode!(&call.arg, ProvisionalCreateCanisterArgs).map_err(|e| decode_error(&call.method, e))?;
        let cycles = args.amount.as_ref().map_or(self.config.default_provisional_cycles, |a| Cycles::new(nat_u128(a)));
        let id = match args.specified_id {
            Some(p) => {
                let id = CanisterId::from(to_principal(&p));
                if state.canisters.contains_key(&id) {
                    return Err(UserError::new(
                        ErrorCode::CanisterAlreadyInstalled,
                        format!("Canister {id} is already installed."),
                    ));
                }
                if state.metadata.routing_table.route(&id) != Some(state.metadata.own_subnet_id) {
                    return Err(UserError::new(
                        ErrorCode::CanisterNotHostedBySubnet,
                        format!(
                            "Unsuccessful validation of specified ID: Specified CanisterId {id} is not hosted by subnet {}.",
                            state.metadata.own_subnet_id
                        ),
                    ));
                }
                if state.metadata.canister_allocation_range.contains(&id) {
                    return Err(UserError::new(
                        ErrorCode::InvalidManagementPayload,
                        format!(
                            "The `specified_id` {id} is invalid because it belongs to the canister allocation ranges of the test environment.\nUse a `specified_id` that matches a canister ID on the ICP mainnet and a test environment that supports canister creation with `specified_id` (e.g., PocketIC)."
                        ),
                    ));
                }
                id
            }
            None => Self::new_canister_id(state)?,
        };
        Self::insert_new_canister(state, id, call, args.settings.as_ref(), cycles)?;
        // Cycles attached by a calling canister are returned: the new balance is minted.
        Ok((encode(&CanisterIdResult { canister_id: to_candid(&id.get()) }), call.cycles))
    }

    fn top_up(&mut self, state: &mut ReplicatedState, call: &ManagementCall) -> Result<(Vec<u8>, Cycles), UserError> {
        let args = Decode!(&call.arg, ProvisionalTopUpArgs).map_err(|e| decode_error(&call.method, e))?;
        let id = CanisterId::from(to_principal(&args.canister_id));
        let canister = state.canisters.get_mut(&id).ok_or_else(|| not_found(&id))?;
        canister.system_state.cycles_balance += Cycles::new(nat_u128(&args.amount));
        Ok((empty_reply(), call.cycles))
    }

    fn update_settings(
        &mut self,
        state: &mut ReplicatedState,
        call: &ManagementCall,
    ) -> Result<(Vec<u8>, Cycles), UserError> {
        let args = Decode!(&call.arg, UpdateSettingsArgs).map_err(|e| decode_error(&call.method, e))?;
        let now = state.metadata.batch_time;
        let canister = Self::controlled(state, &args.canister_id, &call.caller)?;
        let mut settings = canister.system_state.settings.clone();
        let mut controllers = canister.system_state.controllers.clone();
        apply_settings(&args.settings, &mut settings, &mut controllers)?;
        if settings.reserved_cycles_limit < canister.system_state.reserved_balance {
            return Err(UserError::new(
                ErrorCode::ReservedCyclesLimitIsTooLow,
                format!(
                    "Cannot set the reserved cycles limit {} below the reserved cycles balance of the canister {}.",
                    settings.reserved_cycles_limit, canister.system_state.reserved_balance
                ),
            ));
        }
        let s = &mut canister.system_state;
        s.settings = settings;
        s.canister_version += 1;
        if args.settings.controllers.is_some() {
            s.controllers = controllers.clone();
            s.history.add(CanisterChange {
                timestamp_nanos: now.as_nanos(),
                canister_version: s.canister_version,
                origin: change_origin(&call.origin, call.caller),
                details: ChangeDetails::ControllersChange { controllers: controllers.into_iter().collect() },
            });
        }
        Ok((empty_reply(), call.cycles))
    }

    fn install_code_call(
        &mut self,
        state: &mut ReplicatedState,
        call: &ManagementCall,
    ) -> Result<(Vec<u8>, Cycles), UserError> {
        let args = Decode!(&call.arg, InstallCodeArgs).map_err(|e| decode_error(&call.method, e))?;
        Self::controlled(state, &args.canister_id, &call.caller)?;
        let request = InstallRequest {
            canister_id: CanisterId::from(to_principal(&args.canister_id)),
            mode: args.mode,
            wasm: args.wasm_module.into_vec(),
            arg: args.arg.into_vec(),
            caller: call.caller,
            origin: change_origin(&call.origin, call.caller),
        };
        self.install(state, request)?;
        Ok((empty_reply(), call.cycles))
    }

    fn install_chunked_code_call(
        &mut self,
        state: &mut ReplicatedState,
        call: &ManagementCall,
    ) -> Result<(Vec<u8>, Cycles), UserError> {
        let args = Decode!(&call.arg, InstallChunkedCodeArgs).map_err(|e| decode_error(&call.method, e))?;
        let target = CanisterId::from(to_principal(&args.target_canister));
        Self::controlled(state, &args.target_canister, &call.caller)?;
        let store_id = args.store_canister.map(|p| CanisterId::from(to_principal(&p))).unwrap_or(target);
        let store = state.canisters.get(&store_id).ok_or_else(|| not_found(&store_id))?;
        if store_id != target && !store.system_state.is_controller(&call.caller) && call.caller != store_id.get() {
            check_controller(store, &call.caller)?;
        }
        let chunk_store = &store.system_state.wasm_chunk_store;
        let mut wasm = Vec::new();
        for h in &args.chunk_hashes_list {
            let key: [u8; 32] =
                h.hash.as_slice().try_into().map_err(|_| chunk_error("a chunk hash must be 32 bytes"))?;
            let chunk = chunk_store
                .chunks
                .get(&key)
                .ok_or_else(|| chunk_error(&format!("Chunk with hash {} is not in the chunk store", hex_str(&key))))?;
            wasm.extend_from_slice(chunk);
        }
        let actual: [u8; 32] = Sha256::digest(&wasm).into();
        if actual.as_slice() != args.wasm_module_hash.as_slice() {
            return Err(chunk_error(&format!(
                "Wasm module hash {} does not match given hash {}",
                hex_str(&actual),
                hex_str(&args.wasm_module_hash)
            )));
        }
        let request = InstallRequest {
            canister_id: target,
            mode: args.mode,
            wasm,
            arg: args.arg.into_vec(),
            caller: call.caller,
            origin: change_origin(&call.origin, call.caller),
        };
        self.install(state, request)?;
        Ok((empty_reply(), call.cycles))
    }

    fn chunk_store_access<'a>(
        state: &'a mut ReplicatedState,
        id: &candid::Principal,
        caller: &Principal,
    ) -> Result<&'a mut CanisterState, UserError> {
        let cid = CanisterId::from(to_principal(id));
        let canister = state.canisters.get_mut(&cid).ok_or_else(|| not_found(&cid))?;
        if cid.get() != *caller {
            check_controller(canister, caller)?;
        }
        Ok(canister)
    }

    fn upload_chunk(
        &mut self,
        state: &mut ReplicatedState,
        call: &ManagementCall,
    ) -> Result<(Vec<u8>, Cycles), UserError> {
        let args = Decode!(&call.arg, UploadChunkArgs).map_err(|e| decode_error(&call.method, e))?;
        let canister = Self::chunk_store_access(state, &args.canister_id, &call.caller)?;
        if args.chunk.len() > MAX_CHUNK_SIZE {
            return Err(chunk_error(&format!(
                "Chunk of {} bytes exceeds the maximum chunk size of {MAX_CHUNK_SIZE} bytes",
                args.chunk.len()
            )));
        }
        let hash: [u8; 32] = Sha256::digest(&args.chunk).into();
        let store = &mut canister.system_state.wasm_chunk_store;
        if !store.chunks.contains_key(&hash) && store.chunks.len() >= MAX_CHUNKS {
            return Err(chunk_error(&format!("The chunk store is full ({MAX_CHUNKS} chunks)")));
        }
        store.chunks.insert(hash, Arc::new(args.chunk));
        Ok((encode(&ChunkHash { hash: ByteBuf::from(hash.to_vec()) }), call.cycles))
    }

    fn clear_chunk_store(
        &mut self,
        state: &mut ReplicatedState,
        call: &ManagementCall,
    ) -> Result<(Vec<u8>, Cycles), UserError> {
        let args = Decode!(&call.arg, CanisterIdRecord).map_err(|e| decode_error(&call.method, e))?;
        let canister = Self::chunk_store_access(state, &args.canister_id, &call.caller)?;
        canister.system_state.wasm_chunk_store = WasmChunkStore::default();
        Ok((empty_reply(), call.cycles))
    }

    fn stored_chunks(
        &mut self,
        state: &mut ReplicatedState,
        call: &ManagementCall,
    ) -> Result<(Vec<u8>, Cycles), UserError> {
        let args = Decode!(&call.arg, CanisterIdRecord).map_err(|e| decode_error(&call.method, e))?;
        let canister = Self::chunk_store_access(state, &args.canister_id, &call.caller)?;
        let hashes: Vec<ChunkHash> = canister
            .system_state
            .wasm_chunk_store
            .chunks
            .keys()
            .map(|h| ChunkHash { hash: ByteBuf::from(h.to_vec()) })
            .collect();
        Ok((encode(&hashes), call.cycles))
    }

    fn uninstall_code_call(
        &mut self,
        state: &mut ReplicatedState,
        call: &ManagementCall,
    ) -> Result<(Vec<u8>, Cycles), UserError> {
        let args = Decode!(&call.arg, UninstallCodeArgs).map_err(|e| decode_error(&call.method, e))?;
        let now = state.metadata.batch_time;
        let canister = Self::controlled(state, &args.canister_id, &call.caller)?;
        let mut outputs = Vec::new();
        self.uninstall(canister, now, change_origin(&call.origin, call.caller), &mut outputs);
        self.route_local(state, outputs);
        Ok((empty_reply(), call.cycles))
    }

    /// Removes the code of a canister, rejecting every call it still owed an answer.
    pub(crate) fn uninstall(
        &mut self,
        canister: &mut CanisterState,
        now: Time,
        origin: ChangeOrigin,
        outputs: &mut Vec<Output>,
    ) {
        let id = canister.id();
        let s = &mut canister.system_state;
        let (open, callbacks) = s.call_context_manager.delete_all();
        for cb in callbacks {
            s.cycles_balance += cb.prepayment_for_response_execution + cb.prepayment_for_response_transmission;
        }
        for ctx in open {
            let err = UserError::new(ErrorCode::CanisterRejectedMessage, "Canister has been uninstalled.");
            reject_origin(&ctx.origin, id, err, ctx.available_cycles, outputs);
        }
        canister.execution_state = None;
        let s = &mut canister.system_state;
        s.certified_data.clear();
        s.global_timer = None;
        s.canister_version += 1;
        s.history.add(CanisterChange {
            timestamp_nanos: now.as_nanos(),
            canister_version: s.canister_version,
            origin,
            details: ChangeDetails::CodeUninstall,
        });
        self.drop_sandbox(&id);
    }

    fn start_canister(
        &mut self,
        state: &mut ReplicatedState,
        call: &ManagementCall,
    ) -> Result<(Vec<u8>, Cycles), UserError> {
        let args = Decode!(&call.arg, CanisterIdRecord).map_err(|e| decode_error(&call.method, e))?;
        let canister = Self::controlled(state, &args.canister_id, &call.caller)?;
        let id = canister.id();
        let previous = std::mem::replace(&mut canister.system_state.status, CanisterStatus::Running);
        let mut outputs = Vec::new();
        match previous {
            CanisterStatus::Stopping { stop_contexts, .. } => {
                for ctx in stop_contexts {
                    answer_stop(
                        ctx,
                        id,
                        Err(UserError::new(
                            ErrorCode::CanisterStoppingCancelled,
                            format!("Canister {id}'s stop request was cancelled."),
                        )),
                        &mut outputs,
                    );
                }
                canister.system_state.canister_version += 1;
            }
            CanisterStatus::Stopped => canister.system_state.canister_version += 1,
            CanisterStatus::Running => {}
        }
        self.route_local(state, outputs);
        Ok((empty_reply(), call.cycles))
    }

    fn stop_canister(&mut self, state: &mut ReplicatedState, call: &ManagementCall) -> Outcome {
        let args = match Decode!(&call.arg, CanisterIdRecord) {
            Ok(a) => a,
            Err(e) => return Outcome::Error(decode_error(&call.method, e)),
        };
        let now = state.metadata.batch_time;
        let canister = match Self::controlled(state, &args.canister_id, &call.caller) {
            Ok(c) => c,
            Err(e) => return Outcome::Error(e),
        };
        let ctx = match &call.origin {
            CallOrigin::Ingress { user, message_id } => StopContext::Ingress { sender: *user, message_id: *message_id },
            CallOrigin::Canister { caller, callback, deadline } => StopContext::Canister {
                sender: *caller,
                reply_callback: *callback,
                cycles: call.cycles,
                deadline: *deadline,
            },
            CallOrigin::SystemTask => {
                return Outcome::Error(UserError::new(ErrorCode::CanisterContractViolation, "invalid origin"));
            }
        };
        match &mut canister.system_state.status {
            CanisterStatus::Stopped => Outcome::Reply(empty_reply(), call.cycles),
            CanisterStatus::Stopping { stop_contexts, .. } => {
                stop_contexts.push(ctx);
                Outcome::Deferred
            }
            status @ CanisterStatus::Running => {
                *status = CanisterStatus::Stopping { stop_contexts: vec![ctx], since: now };
                Outcome::Deferred
            }
        }
    }

    /// Moves stopping canisters without open calls to stopped, answering the
    /// stop requests, and times out stop requests older than five minutes.
    pub(crate) fn complete_stops(&mut self, state: &mut ReplicatedState, outputs: &mut Vec<Output>) {
        let now = state.metadata.batch_time;
        for canister in state.canisters.values_mut() {
            let id = canister.id();
            let open = canister.system_state.call_context_manager.has_open_contexts();
            let CanisterStatus::Stopping { stop_contexts, since } = &mut canister.system_state.status else {
                continue;
            };
            if !open {
                let contexts = std::mem::take(stop_contexts);
                canister.system_state.status = CanisterStatus::Stopped;
                canister.system_state.canister_version += 1;
                for ctx in contexts {
                    answer_stop(ctx, id, Ok(()), outputs);
                }
            } else if now.nanos_since(*since) >= STOP_CANISTER_TIMEOUT_NANOS && !stop_contexts.is_empty() {
                *since = now;
                for ctx in std::mem::take(stop_contexts) {
                    let err = UserError::new(
                        ErrorCode::StopCanisterRequestTimeout,
                        format!("Stop canister request timed out for canister {id}."),
                    );
                    answer_stop(ctx, id, Err(err), outputs);
                }
            }
        }
    }

    fn delete_canister(
        &mut self,
        state: &mut ReplicatedState,
        call: &ManagementCall,
    ) -> Result<(Vec<u8>, Cycles), UserError> {
        let args = Decode!(&call.arg, CanisterIdRecord).map_err(|e| decode_error(&call.method, e))?;
        let id = CanisterId::from(to_principal(&args.canister_id));
        let canister = Self::controlled(state, &args.canister_id, &call.caller)?;
        if call.caller == id.get() {
            return Err(UserError::new(
                ErrorCode::CanisterInvalidController,
                format!("Canister {id} cannot delete itself."),
            ));
        }
        if canister.system_state.status != CanisterStatus::Stopped {
            return Err(UserError::new(
                ErrorCode::CanisterNotStopped,
                format!("Canister {id} must be stopped before it is deleted."),
            ));
        }
        if !canister.system_state.queues.is_empty() {
            return Err(UserError::new(
                ErrorCode::CanisterQueueNotEmpty,
                format!(
                    "Canister {id} has messages in its queues and cannot be deleted now. Please retry after some time."
                ),
            ));
        }
        let removed = state.canisters.remove(&id).expect("checked above");
        state.metadata.consumed_cycles_total += removed.system_state.cycles_balance;
        state.snapshots.retain(|sid, _| snapshot_owner(sid) != Some(id));
        self.drop_sandbox(&id);
        Ok((empty_reply(), call.cycles))
    }

    /// `canister_status`, shared by the update and the query path.
    pub(crate) fn canister_status(
        state: &ReplicatedState,
        target: &candid::Principal,
        caller: &Principal,
    ) -> Result<Vec<u8>, UserError> {
        let id = CanisterId::from(to_principal(target));
        let canister = state.canisters.get(&id).ok_or_else(|| not_found(&id))?;
        let s = &canister.system_state;
        let allowed = *caller == id.get()
            || state.metadata.subnet_admins.contains(caller)
            || s.settings.status_visibility.allows(caller, &s.controllers);
        if !allowed {
            check_controller(canister, caller)?;
        }
        let costs = costs(&state.metadata);
        let exec = canister.execution_state.as_ref();
        let wasm_memory = exec.map_or(0, |e| e.wasm_memory.size_bytes());
        let stable = exec.map_or(0, |e| e.stable_memory.size_bytes());
        let snapshots: u64 =
            state.snapshots.iter().filter(|(k, _)| snapshot_owner(k) == Some(id)).map(|(_, s)| s.size_bytes()).sum();
        let settings = &s.settings;
        let result = CanisterStatusResult {
            status: match s.status {
                CanisterStatus::Running => CanisterStatusType::Running,
                CanisterStatus::Stopping { .. } => CanisterStatusType::Stopping,
                CanisterStatus::Stopped => CanisterStatusType::Stopped,
            },
            ready_for_migration: false,
            version: s.canister_version,
            settings: DefiniteCanisterSettings {
                controllers: s.controllers.iter().map(to_candid).collect(),
                compute_allocation: Nat::from(settings.compute_allocation),
                memory_allocation: Nat::from(settings.memory_allocation),
                freezing_threshold: Nat::from(settings.freezing_threshold),
                reserved_cycles_limit: Nat::from(settings.reserved_cycles_limit.get()),
                log_visibility: visibility_to(&settings.log_visibility),
                snapshot_visibility: visibility_to(&settings.snapshot_visibility),
                status_visibility: visibility_to(&settings.status_visibility),
                wasm_memory_limit: Nat::from(settings.wasm_memory_limit),
                wasm_memory_threshold: Nat::from(settings.wasm_memory_threshold),
                environment_variables: settings
                    .environment_variables
                    .iter()
                    .map(|(k, v)| EnvironmentVariable { name: k.clone(), value: v.clone() })
                    .collect(),
            },
            module_hash: canister.module_hash().map(|h| ByteBuf::from(h.to_vec())),
            memory_size: Nat::from(canister.memory_usage() + snapshots),
            memory_metrics: MemoryMetrics {
                wasm_memory_size: Nat::from(wasm_memory),
                stable_memory_size: Nat::from(stable),
                global_memory_size: Nat::from(exec.map_or(0, |e| e.globals_size())),
                wasm_binary_size: Nat::from(exec.map_or(0, |e| e.wasm_binary.bytes.len() as u64)),
                custom_sections_size: Nat::from(exec.map_or(0, |e| e.custom_sections_size())),
                canister_history_size: Nat::from(s.history.changes.len() as u64 * 100),
                wasm_chunk_store_size: Nat::from(s.wasm_chunk_store.size_bytes()),
                snapshots_size: Nat::from(snapshots),
            },
            cycles: Nat::from(s.cycles_balance.get()),
            reserved_cycles: Nat::from(s.reserved_balance.get()),
            idle_cycles_burned_per_day: Nat::from(cycles::idle_cycles_burned_per_day(&costs, canister).get()),
            query_stats: QueryStatsResult {
                num_calls_total: Nat::from(s.query_stats.num_calls_total),
                num_instructions_total: Nat::from(s.query_stats.num_instructions_total),
                request_payload_bytes_total: Nat::from(s.query_stats.request_payload_bytes_total),
                response_payload_bytes_total: Nat::from(s.query_stats.response_payload_bytes_total),
            },
        };
        Ok(encode(&result))
    }

    fn canister_status_call(
        &mut self,
        state: &mut ReplicatedState,
        call: &ManagementCall,
    ) -> Result<(Vec<u8>, Cycles), UserError> {
        let args = Decode!(&call.arg, CanisterIdRecord).map_err(|e| decode_error(&call.method, e))?;
        Ok((Self::canister_status(state, &args.canister_id, &call.caller)?, call.cycles))
    }

    fn canister_info(
        &mut self,
        state: &mut ReplicatedState,
        call: &ManagementCall,
    ) -> Result<(Vec<u8>, Cycles), UserError> {
        let args = Decode!(&call.arg, CanisterInfoArgs).map_err(|e| decode_error(&call.method, e))?;
        let id = CanisterId::from(to_principal(&args.canister_id));
        let canister = state.canisters.get(&id).ok_or_else(|| not_found(&id))?;
        let h = &canister.system_state.history;
        let n = args.num_requested_changes.unwrap_or(0) as usize;
        let recent: Vec<ChangeArg> =
            h.changes.iter().skip(h.changes.len().saturating_sub(n)).map(change_to_arg).collect();
        let result = CanisterInfoResult {
            total_num_changes: h.total_num_changes,
            recent_changes: recent,
            module_hash: canister.module_hash().map(|m| ByteBuf::from(m.to_vec())),
            controllers: canister.system_state.controllers.iter().map(to_candid).collect(),
        };
        Ok((encode(&result), call.cycles))
    }

    fn canister_metadata(
        &mut self,
        state: &mut ReplicatedState,
        call: &ManagementCall,
    ) -> Result<(Vec<u8>, Cycles), UserError> {
        let args = Decode!(&call.arg, CanisterMetadataArgs).map_err(|e| decode_error(&call.method, e))?;
        let id = CanisterId::from(to_principal(&args.canister_id));
        let canister = state.canisters.get(&id).ok_or_else(|| not_found(&id))?;
        let exec = canister.execution_state.as_ref().ok_or_else(|| HypervisorErrorExt::module_not_found(&id))?;
        let section = exec.metadata.get(&args.name).ok_or_else(|| {
            UserError::new(
                ErrorCode::CanisterContractViolation,
                format!("The canister {id} has no metadata section '{}'", args.name),
            )
        })?;
        if !section.public {
            check_controller(canister, &call.caller)?;
        }
        Ok((encode(&CanisterMetadataResult { value: ByteBuf::from(section.content.clone()) }), call.cycles))
    }

    fn deposit_cycles(
        &mut self,
        state: &mut ReplicatedState,
        call: &ManagementCall,
    ) -> Result<(Vec<u8>, Cycles), UserError> {
        let args = Decode!(&call.arg, CanisterIdRecord).map_err(|e| decode_error(&call.method, e))?;
        let id = CanisterId::from(to_principal(&args.canister_id));
        let canister = state.canisters.get_mut(&id).ok_or_else(|| not_found(&id))?;
        canister.system_state.cycles_balance += call.cycles;
        Ok((empty_reply(), Cycles::ZERO))
    }

    fn raw_rand(&mut self, state: &mut ReplicatedState, randomness: &[u8; 32]) -> (Vec<u8>, Cycles) {
        let counter = state.metadata.raw_rand_counter;
        state.metadata.raw_rand_counter += 1;
        let mut h = Sha256::new();
        h.update(b"\x0ccairn-rawrand");
        h.update(randomness);
        h.update(counter.to_be_bytes());
        let bytes: [u8; 32] = h.finalize().into();
        (encode(&ByteBuf::from(bytes.to_vec())), Cycles::ZERO)
    }

    fn take_snapshot(
        &mut self,
        state: &mut ReplicatedState,
        call: &ManagementCall,
    ) -> Result<(Vec<u8>, Cycles), UserError> {
        let args = Decode!(&call.arg, TakeCanisterSnapshotArgs).map_err(|e| decode_error(&call.method, e))?;
        let now = state.metadata.batch_time;
        let id = CanisterId::from(to_principal(&args.canister_id));
        let canister = Self::controlled(state, &args.canister_id, &call.caller)?.clone();
        let exec = canister.execution_state.clone().ok_or_else(|| {
            UserError::new(
                ErrorCode::CanisterRejectedMessage,
                format!("Failed to create snapshot for empty canister {id}:"),
            )
        })?;
        if let Some(old) = &args.replace_snapshot {
            if snapshot_owner(old) != Some(id) || !state.snapshots.contains_key(old.as_slice()) {
                return Err(snapshot_not_found(old, &id));
            }
            state.snapshots.remove(old.as_slice());
        }
        let count = state.snapshots.keys().filter(|k| snapshot_owner(k) == Some(id)).count();
        if count >= MAX_SNAPSHOTS_PER_CANISTER {
            return Err(UserError::new(
                ErrorCode::CanisterRejectedMessage,
                format!(
                    "Canister {id} has reached the maximum number of snapshots allowed: {MAX_SNAPSHOTS_PER_CANISTER}."
                ),
            ));
        }
        let local = state.metadata.next_snapshot_local_id;
        state.metadata.next_snapshot_local_id += 1;
        let sid = snapshot_id(local, &id);
        let snapshot = CanisterSnapshot {
            canister_id: id,
            taken_at: now,
            canister_version: canister.system_state.canister_version,
            wasm_binary: exec.wasm_binary.clone(),
            wasm_memory: exec.wasm_memory.clone(),
            stable_memory: exec.stable_memory.clone(),
            exported_globals: exec.exported_globals.clone(),
            certified_data: canister.system_state.certified_data.clone(),
            wasm_chunk_store: canister.system_state.wasm_chunk_store.clone(),
            global_timer: canister.system_state.global_timer,
            execution_state_meta: exec,
        };
        let result = SnapshotResult {
            id: ByteBuf::from(sid.clone()),
            taken_at_timestamp: now.as_nanos(),
            total_size: snapshot.size_bytes(),
        };
        state.snapshots.insert(sid, snapshot);
        if args.uninstall_code == Some(true) {
            let canister = state.canisters.get_mut(&id).expect("exists");
            let mut outputs = Vec::new();
            self.uninstall(canister, now, change_origin(&call.origin, call.caller), &mut outputs);
            self.route_local(state, outputs);
        }
        Ok((encode(&result), call.cycles))
    }

    fn load_snapshot(
        &mut self,
        state: &mut ReplicatedState,
        call: &ManagementCall,
    ) -> Result<(Vec<u8>, Cycles), UserError> {
        let args = Decode!(&call.arg, LoadCanisterSnapshotArgs).map_err(|e| decode_error(&call.method, e))?;
        let now = state.metadata.batch_time;
        let id = CanisterId::from(to_principal(&args.canister_id));
        Self::controlled(state, &args.canister_id, &call.caller)?;
        let snapshot = state
            .snapshots
            .get(args.snapshot_id.as_slice())
            .cloned()
            .ok_or_else(|| snapshot_not_found(&args.snapshot_id, &id))?;
        if snapshot.canister_id != id {
            let owner =
                state.canisters.get(&snapshot.canister_id).ok_or_else(|| snapshot_not_found(&args.snapshot_id, &id))?;
            if !owner.system_state.is_controller(&call.caller) {
                return Err(UserError::new(
                    ErrorCode::CanisterInvalidController,
                    "Only a controller of the canister that the snapshot belongs to can load it.",
                ));
            }
        }
        let canister = state.canisters.get_mut(&id).expect("checked");
        let mut exec = snapshot.execution_state_meta.clone();
        exec.wasm_memory = snapshot.wasm_memory.clone();
        exec.stable_memory = snapshot.stable_memory.clone();
        exec.exported_globals = snapshot.exported_globals.clone();
        canister.execution_state = Some(exec);
        let s = &mut canister.system_state;
        s.certified_data = snapshot.certified_data.clone();
        s.wasm_chunk_store = snapshot.wasm_chunk_store.clone();
        s.global_timer = snapshot.global_timer;
        s.canister_version += 1;
        s.history.add(CanisterChange {
            timestamp_nanos: now.as_nanos(),
            canister_version: s.canister_version,
            origin: change_origin(&call.origin, call.caller),
            details: ChangeDetails::LoadSnapshot {
                canister_version: snapshot.canister_version,
                snapshot_id: args.snapshot_id.to_vec(),
                taken_at_timestamp: snapshot.taken_at.as_nanos(),
                from_canister_id: (snapshot.canister_id != id).then_some(snapshot.canister_id),
            },
        });
        Ok((empty_reply(), call.cycles))
    }

    fn list_snapshots(
        &mut self,
        state: &mut ReplicatedState,
        call: &ManagementCall,
    ) -> Result<(Vec<u8>, Cycles), UserError> {
        let args = Decode!(&call.arg, CanisterIdRecord).map_err(|e| decode_error(&call.method, e))?;
        let id = CanisterId::from(to_principal(&args.canister_id));
        let canister = state.canisters.get(&id).ok_or_else(|| not_found(&id))?;
        let s = &canister.system_state;
        if !s.settings.snapshot_visibility.allows(&call.caller, &s.controllers) {
            check_controller(canister, &call.caller)?;
        }
        let list: Vec<SnapshotResult> = state
            .snapshots
            .iter()
            .filter(|(k, _)| snapshot_owner(k) == Some(id))
            .map(|(k, s)| SnapshotResult {
                id: ByteBuf::from(k.clone()),
                taken_at_timestamp: s.taken_at.as_nanos(),
                total_size: s.size_bytes(),
            })
            .collect();
        Ok((encode(&list), call.cycles))
    }

    fn delete_snapshot(
        &mut self,
        state: &mut ReplicatedState,
        call: &ManagementCall,
    ) -> Result<(Vec<u8>, Cycles), UserError> {
        let args = Decode!(&call.arg, DeleteCanisterSnapshotArgs).map_err(|e| decode_error(&call.method, e))?;
        let id = CanisterId::from(to_principal(&args.canister_id));
        Self::controlled(state, &args.canister_id, &call.caller)?;
        if snapshot_owner(&args.snapshot_id) != Some(id)
            || state.snapshots.remove(args.snapshot_id.as_slice()).is_none()
        {
            return Err(snapshot_not_found(&args.snapshot_id, &id));
        }
        Ok((empty_reply(), call.cycles))
    }

    fn subnet_info(
        &mut self,
        state: &mut ReplicatedState,
        call: &ManagementCall,
    ) -> Result<(Vec<u8>, Cycles), UserError> {
        let args = Decode!(&call.arg, SubnetInfoArgs).map_err(|e| decode_error(&call.method, e))?;
        if to_principal(&args.subnet_id) != state.metadata.own_subnet_id.get() {
            return Err(UserError::new(ErrorCode::SubnetNotFound, format!("Subnet {} not found", args.subnet_id)));
        }
        let result = SubnetInfoResult {
            replica_version: env!("CARGO_PKG_VERSION").to_string(),
            registry_version: state.metadata.registry_version.0,
        };
        Ok((encode(&result), call.cycles))
    }

    /// `fetch_canister_logs` (query only).
    pub(crate) fn fetch_canister_logs(
        state: &ReplicatedState,
        arg: &[u8],
        caller: &Principal,
    ) -> Result<Vec<u8>, UserError> {
        let args = Decode!(arg, CanisterIdRecord).map_err(|e| decode_error("fetch_canister_logs", e))?;
        let id = CanisterId::from(to_principal(&args.canister_id));
        let canister = state.canisters.get(&id).ok_or_else(|| not_found(&id))?;
        let s = &canister.system_state;
        if !s.settings.log_visibility.allows(caller, &s.controllers) {
            return Err(UserError::new(
                ErrorCode::CanisterRejectedMessage,
                format!("Caller {caller} is not allowed to query ic00 method fetch_canister_logs"),
            ));
        }
        let records = s
            .log
            .records
            .iter()
            .map(|r| CanisterLogRecordArg {
                idx: r.idx,
                timestamp_nanos: r.timestamp_nanos,
                content: ByteBuf::from(r.content.clone()),
            })
            .collect();
        Ok(encode(&FetchCanisterLogsResult { canister_log_records: records }))
    }

    /// `list_canisters` (query only, subnet admins).
    pub(crate) fn list_canisters(state: &ReplicatedState, caller: &Principal) -> Result<Vec<u8>, UserError> {
        if !state.metadata.subnet_admins.contains(caller) {
            return Err(UserError::new(
                ErrorCode::CanisterRejectedMessage,
                format!("Caller {caller} is not a subnet admin"),
            ));
        }
        let canisters = state
            .canisters
            .keys()
            .map(|id| CanisterIdRange { start: to_candid(&id.get()), end: to_candid(&id.get()) })
            .collect();
        Ok(encode(&ListCanistersResult { canisters }))
    }

    /// Delivers outputs produced outside the scheduler's loop (e.g. rejects from uninstall).
    pub(crate) fn route_local(&mut self, state: &mut ReplicatedState, outputs: Vec<Output>) {
        crate::scheduler::route_outputs(state, outputs);
    }
}

fn answer_stop(ctx: StopContext, id: CanisterId, result: Result<(), UserError>, outputs: &mut Vec<Output>) {
    match ctx {
        StopContext::Ingress { message_id, .. } => {
            let state = match result {
                Ok(()) => IngressState::Completed(WasmResult::Reply(empty_reply())),
                Err(e) => IngressState::Failed(e),
            };
            outputs.push(Output::Ingress(message_id, state));
        }
        StopContext::Canister { sender, reply_callback, cycles, deadline } => {
            let payload = match result {
                Ok(()) => Payload::Data(empty_reply()),
                Err(e) => Payload::Reject(RejectContext::new(e.reject_code(), e.to_string())),
            };
            let _ = id;
            outputs.push(Output::Response(Response {
                originator: sender,
                respondent: CanisterId::MANAGEMENT,
                originator_reply_callback: reply_callback,
                refund: cycles,
                response_payload: payload,
                deadline,
            }));
        }
    }
}

fn chunk_error(msg: &str) -> UserError {
    UserError::new(ErrorCode::CanisterContractViolation, format!("Error from Wasm chunk store: {msg}."))
}

fn snapshot_not_found(sid: &[u8], id: &CanisterId) -> UserError {
    let shown = if sid.len() >= 8 {
        format!("{}-{}", id, u64::from_be_bytes(sid[..8].try_into().expect("8 bytes")))
    } else {
        hex_str(sid)
    };
    UserError::new(
        ErrorCode::CanisterSnapshotNotFound,
        format!("Could not find the snapshot ID {shown} for canister {id}."),
    )
}

fn hex_str(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

struct HypervisorErrorExt;
impl HypervisorErrorExt {
    fn module_not_found(id: &CanisterId) -> UserError {
        cairn_wasm::HypervisorError::WasmModuleNotFound.into_user_error(id)
    }
}

fn change_to_arg(c: &CanisterChange) -> ChangeArg {
    ChangeArg {
        timestamp_nanos: c.timestamp_nanos,
        canister_version: c.canister_version,
        origin: match &c.origin {
            ChangeOrigin::FromUser(u) => ChangeOriginArg::FromUser(FromUser { user_id: to_candid(u) }),
            ChangeOrigin::FromCanister(id, v) => {
                ChangeOriginArg::FromCanister(FromCanister { canister_id: to_candid(&id.get()), canister_version: *v })
            }
        },
        details: match &c.details {
            ChangeDetails::Creation { controllers, environment_variables_hash } => {
                ChangeDetailsArg::Creation(CreationRecord {
                    controllers: controllers.iter().map(to_candid).collect(),
                    environment_variables_hash: environment_variables_hash.map(|h| ByteBuf::from(h.to_vec())),
                })
            }
            ChangeDetails::CodeUninstall => ChangeDetailsArg::CodeUninstall,
            ChangeDetails::CodeDeployment { mode, module_hash } => {
                ChangeDetailsArg::CodeDeployment(CodeDeploymentRecord {
                    mode: match mode {
                        InstallMode::Install => CodeDeploymentMode::Install,
                        InstallMode::Reinstall => CodeDeploymentMode::Reinstall,
                        InstallMode::Upgrade => CodeDeploymentMode::Upgrade,
                    },
                    module_hash: ByteBuf::from(module_hash.to_vec()),
                })
            }
            ChangeDetails::LoadSnapshot { canister_version, snapshot_id, taken_at_timestamp, .. } => {
                ChangeDetailsArg::LoadSnapshot(LoadSnapshotRecord {
                    canister_version: *canister_version,
                    snapshot_id: ByteBuf::from(snapshot_id.clone()),
                    taken_at_timestamp: *taken_at_timestamp,
                })
            }
            ChangeDetails::ControllersChange { controllers } => {
                ChangeDetailsArg::ControllersChange(ControllersChangeRecord {
                    controllers: controllers.iter().map(to_candid).collect(),
                })
            }
        },
    }
}
