//! The `ic0` System API as a plain state machine.
//!
//! One [`SystemApi`] value exists per execution. Each `ic0` function is a
//! method taking Wasm addresses as `u64` (both the wasm32 and the wasm64 form
//! of a function call the same method), checking that it may be called in
//! the current [`Context`], and recording its effect. Nothing here touches the
//! replicated state: the execution layer applies the recorded effects only if
//! the execution completes without trapping, which is what makes every
//! message all-or-nothing.

use crate::error::HypervisorError;
use cairn_state::WasmClosure;
use cairn_state::page_map::{Memory, WASM_PAGE_SIZE};
use cairn_types::fees::{MAX_CALL_TIMEOUT_SECONDS, MAX_INTRA_SUBNET_PAYLOAD};
use cairn_types::messages::{RejectContext, SenderInfo};
use cairn_types::{CanisterId, CostSchedule, Cycles, Principal, SubnetId, Time};
use std::collections::{BTreeMap, BTreeSet};

type HResult<T> = Result<T, HypervisorError>;

/// Largest stable memory, in Wasm pages (500 GiB).
pub const MAX_STABLE_MEMORY_PAGES: u64 = 500 * (1 << 30) / WASM_PAGE_SIZE;
/// Stable memory size the 32-bit functions can address, in Wasm pages (4 GiB).
pub const MAX_STABLE_MEMORY_PAGES_32: u64 = (1 << 32) / WASM_PAGE_SIZE;
/// Longest method name a call may carry.
pub const MAX_METHOD_NAME_SIZE: usize = 20_000;
/// Largest value of `certified_data`.
pub const MAX_CERTIFIED_DATA_SIZE: usize = 32;
/// Longest environment variable name.
pub const MAX_ENV_VAR_NAME_SIZE: usize = 128;

/// The kind of execution, which decides which `ic0` functions are available.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Context {
    /// The Wasm `(start)` function.
    Start,
    Init,
    PreUpgrade,
    PostUpgrade,
    Update,
    ReplicatedQuery,
    NonReplicatedQuery,
    CompositeQuery,
    ReplyCallback,
    RejectCallback,
    CompositeReplyCallback,
    CompositeRejectCallback,
    Cleanup,
    CompositeCleanup,
    InspectMessage,
    Heartbeat,
    GlobalTimer,
    OnLowWasmMemory,
}

impl Context {
    /// How the context is named in error messages (the IC's mode names).
    pub fn name(&self) -> &'static str {
        match self {
            Context::Start => "start",
            Context::Init | Context::PostUpgrade => "init",
            Context::PreUpgrade => "pre upgrade",
            Context::Update => "update",
            Context::ReplicatedQuery => "replicated query",
            Context::NonReplicatedQuery => "non replicated query",
            Context::CompositeQuery => "composite query",
            Context::ReplyCallback => "reply callback",
            Context::RejectCallback => "reject callback",
            Context::CompositeReplyCallback => "composite reply callback",
            Context::CompositeRejectCallback => "composite reject callback",
            Context::Cleanup => "cleanup",
            Context::CompositeCleanup => "composite cleanup",
            Context::InspectMessage => "inspect message",
            Context::Heartbeat => "heartbeat",
            Context::GlobalTimer => "global timer",
            Context::OnLowWasmMemory => "on low Wasm memory",
        }
    }

    fn bit(&self) -> u32 {
        1 << (*self as u32)
    }

    /// Whether execution in this context goes through consensus.
    pub fn is_replicated(&self) -> bool {
        !matches!(
            self,
            Context::NonReplicatedQuery
                | Context::CompositeQuery
                | Context::CompositeReplyCallback
                | Context::CompositeRejectCallback
                | Context::CompositeCleanup
                | Context::InspectMessage
        )
    }
}

/// Sets of contexts, spelled with the spec's letters.
mod ctx {
    use super::Context::*;
    const fn b(c: super::Context) -> u32 {
        1 << (c as u32)
    }
    pub const S: u32 = b(Start);
    pub const I: u32 = b(Init) | b(PostUpgrade);
    pub const G: u32 = b(PreUpgrade);
    pub const U: u32 = b(Update);
    pub const RQ: u32 = b(ReplicatedQuery);
    pub const NRQ: u32 = b(NonReplicatedQuery);
    pub const CQ: u32 = b(CompositeQuery);
    pub const RY: u32 = b(ReplyCallback);
    pub const RT: u32 = b(RejectCallback);
    pub const CRY: u32 = b(CompositeReplyCallback);
    pub const CRT: u32 = b(CompositeRejectCallback);
    pub const C: u32 = b(Cleanup);
    pub const CC: u32 = b(CompositeCleanup);
    pub const F: u32 = b(InspectMessage);
    pub const T: u32 = b(Heartbeat) | b(GlobalTimer) | b(OnLowWasmMemory);
    /// `*`: every context except start.
    pub const ALL: u32 = I | G | U | RQ | NRQ | CQ | RY | RT | CRY | CRT | C | CC | F | T;
    /// `* s`: every context including start.
    pub const ALL_S: u32 = ALL | S;
}

/// The answer an execution gave to its call context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiResponse {
    Reply(Vec<u8>),
    Reject(String),
}

/// A call built with `call_new` … `call_perform`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutgoingCall {
    pub callee: CanisterId,
    pub method_name: String,
    pub payload: Vec<u8>,
    /// Cycles attached to the call.
    pub cycles: Cycles,
    pub on_reply: WasmClosure,
    pub on_reject: WasmClosure,
    pub on_cleanup: Option<WasmClosure>,
    /// Set by `call_with_best_effort_response`.
    pub timeout_seconds: Option<u32>,
    /// Fee and reservations withdrawn by `call_perform`.
    pub prepayment_for_response_execution: Cycles,
    pub prepayment_for_response_transmission: Cycles,
    pub transmission_fee: Cycles,
}

/// Facts about the canister and the subnet that an execution may read.
#[derive(Clone, Debug)]
pub struct ApiEnvironment {
    pub canister_id: CanisterId,
    pub subnet_id: SubnetId,
    pub controllers: BTreeSet<Principal>,
    /// Block time (constant during an execution).
    pub time: Time,
    /// `ic0.canister_status`: 1 running, 2 stopping, 3 stopped.
    pub status: u32,
    pub canister_version: u64,
    pub root_key: Vec<u8>,
    pub environment_variables: BTreeMap<String, String>,
    pub costs: CostSchedule,
    /// Balance below which the canister is frozen.
    pub freezing_limit: Cycles,
    pub reserved_balance: Cycles,
    /// Largest reply this execution may produce.
    pub max_reply_size: u64,
    /// The canister's global timer before this execution (`None` = unset).
    pub global_timer: Option<Time>,
    /// Instructions already executed in this call context (for `performance_counter(1)`).
    pub call_context_instructions: u64,
}

/// The inputs of one execution, by kind.
#[derive(Clone, Debug, Default)]
pub struct ApiInputs {
    pub caller: Principal,
    /// The argument (for calls) or the reply payload (for reply callbacks).
    pub arg: Vec<u8>,
    /// Set in reject callbacks.
    pub reject: Option<RejectContext>,
    /// The method being inspected (inspect_message only).
    pub method_name: String,
    pub sender_info: Option<SenderInfo>,
    pub deadline: Option<Time>,
    /// Cycles refunded by the callee (callbacks).
    pub refunded: Cycles,
    /// Cycles attached to the call and not yet accepted.
    pub available: Cycles,
    /// The data certificate (non-replicated top-level queries only).
    pub data_certificate: Option<Vec<u8>>,
    /// Whether the call context was already answered, or needs no answer.
    pub responded: bool,
}

/// Stable memory as seen during one execution: a private copy-on-write
/// version of the canister's stable memory.
#[derive(Clone, Debug, Default)]
pub struct StableMemory {
    pub memory: Memory,
    pub modified: bool,
    /// Pages written during this execution (each costs extra instructions once).
    pub dirty_pages: BTreeSet<u64>,
}

/// The complete state of one execution's System API.
#[derive(Debug)]
pub struct SystemApi {
    pub context: Context,
    pub inputs: ApiInputs,
    pub env: ApiEnvironment,
    /// The canister's balance as it evolves during the execution.
    pub balance: Cycles,
    pub accepted: Cycles,
    pub burned: Cycles,
    reply_buffer: Vec<u8>,
    pub response: Option<ApiResponse>,
    pending_call: Option<OutgoingCall>,
    pub performed_calls: Vec<OutgoingCall>,
    pub certified_data: Option<Vec<u8>>,
    pub global_timer: Option<Time>,
    pub global_timer_changed: bool,
    /// `debug_print` output in order.
    pub logs: Vec<Vec<u8>>,
    pub message_accepted: bool,
    pub stable: StableMemory,
    /// Instructions executed so far, updated by the engine before calls that read it.
    pub instructions_executed: u64,
}

impl SystemApi {
    /// The System API for one execution.
    pub fn new(context: Context, inputs: ApiInputs, env: ApiEnvironment, balance: Cycles, stable: Memory) -> Self {
        let global_timer = env.global_timer;
        SystemApi {
            context,
            inputs,
            env,
            balance,
            accepted: Cycles::ZERO,
            burned: Cycles::ZERO,
            reply_buffer: Vec::new(),
            response: None,
            pending_call: None,
            performed_calls: Vec::new(),
            certified_data: None,
            global_timer,
            global_timer_changed: false,
            logs: Vec::new(),
            message_accepted: false,
            stable: StableMemory { memory: stable, modified: false, dirty_pages: BTreeSet::new() },
            instructions_executed: 0,
        }
    }

    fn check(&self, name: &str, allowed: u32) -> HResult<()> {
        if allowed & self.context.bit() == 0 {
            return Err(HypervisorError::WrongContext(format!(
                "\"ic0_{name}\" cannot be executed in {} mode",
                self.context.name()
            )));
        }
        Ok(())
    }

    fn violation(msg: impl Into<String>) -> HypervisorError {
        HypervisorError::ContractViolation(msg.into())
    }

    /// Liquid balance: what the canister may spend without becoming frozen.
    pub fn liquid_balance(&self) -> Cycles {
        let frozen_part = self.env.freezing_limit.saturating_sub(self.env.reserved_balance);
        self.balance.saturating_sub(frozen_part)
    }

    // ----- message data -----

    pub fn msg_arg_data_size(&self) -> HResult<u64> {
        self.check("msg_arg_data_size", ctx::I | ctx::U | ctx::RQ | ctx::NRQ | ctx::CQ | ctx::RY | ctx::CRY | ctx::F)?;
        Ok(self.inputs.arg.len() as u64)
    }

    pub fn msg_arg_data_copy(&self, mem: &mut [u8], dst: u64, off: u64, size: u64) -> HResult<()> {
        self.check("msg_arg_data_copy", ctx::I | ctx::U | ctx::RQ | ctx::NRQ | ctx::CQ | ctx::RY | ctx::CRY | ctx::F)?;
        copy_out(mem, dst, off, size, &self.inputs.arg, "msg_arg_data_copy")
    }

    pub fn msg_caller_size(&self) -> HResult<u64> {
        self.check("msg_caller_size", ctx::ALL)?;
        Ok(self.inputs.caller.as_slice().len() as u64)
    }

    pub fn msg_caller_copy(&self, mem: &mut [u8], dst: u64, off: u64, size: u64) -> HResult<()> {
        self.check("msg_caller_copy", ctx::ALL)?;
        copy_out(mem, dst, off, size, self.inputs.caller.as_slice(), "msg_caller_copy")
    }

    const CALLER_INFO: u32 =
        ctx::U | ctx::RQ | ctx::NRQ | ctx::CQ | ctx::RY | ctx::RT | ctx::CRY | ctx::CRT | ctx::C | ctx::CC | ctx::F;

    fn caller_info_data(&self) -> &[u8] {
        self.inputs.sender_info.as_ref().map_or(&[], |s| s.info.as_slice())
    }

    fn caller_info_signer(&self) -> &[u8] {
        self.inputs.sender_info.as_ref().map_or(&[], |s| s.signer.as_slice())
    }

    pub fn msg_caller_info_data_size(&self) -> HResult<u64> {
        self.check("msg_caller_info_data_size", Self::CALLER_INFO)?;
        Ok(self.caller_info_data().len() as u64)
    }

    pub fn msg_caller_info_data_copy(&self, mem: &mut [u8], dst: u64, off: u64, size: u64) -> HResult<()> {
        self.check("msg_caller_info_data_copy", Self::CALLER_INFO)?;
        copy_out(mem, dst, off, size, self.caller_info_data(), "msg_caller_info_data_copy")
    }

    pub fn msg_caller_info_signer_size(&self) -> HResult<u64> {
        self.check("msg_caller_info_signer_size", Self::CALLER_INFO)?;
        Ok(self.caller_info_signer().len() as u64)
    }

    pub fn msg_caller_info_signer_copy(&self, mem: &mut [u8], dst: u64, off: u64, size: u64) -> HResult<()> {
        self.check("msg_caller_info_signer_copy", Self::CALLER_INFO)?;
        copy_out(mem, dst, off, size, self.caller_info_signer(), "msg_caller_info_signer_copy")
    }

    pub fn msg_reject_code(&self) -> HResult<u32> {
        self.check("msg_reject_code", ctx::RY | ctx::RT | ctx::CRY | ctx::CRT | ctx::C | ctx::CC)?;
        Ok(self.inputs.reject.as_ref().map_or(0, |r| r.code.as_u32()))
    }

    fn reject_message(&self, name: &str) -> HResult<&[u8]> {
        self.check(name, ctx::RT | ctx::CRT)?;
        match &self.inputs.reject {
            Some(r) => Ok(r.message.as_bytes()),
            None => Err(Self::violation(format!("\"ic0_{name}\" called with no reject (the reject code is 0)"))),
        }
    }

    pub fn msg_reject_msg_size(&self) -> HResult<u64> {
        Ok(self.reject_message("msg_reject_msg_size")?.len() as u64)
    }

    pub fn msg_reject_msg_copy(&self, mem: &mut [u8], dst: u64, off: u64, size: u64) -> HResult<()> {
        let msg = self.reject_message("msg_reject_msg_copy")?;
        copy_out(mem, dst, off, size, msg, "msg_reject_msg_copy")
    }

    pub fn msg_deadline(&self) -> HResult<u64> {
        self.check("msg_deadline", ctx::U | ctx::RQ | ctx::NRQ | ctx::CQ | ctx::RY | ctx::RT | ctx::CRY | ctx::CRT)?;
        Ok(self.inputs.deadline.map_or(0, |d| d.as_nanos()))
    }

    // ----- replying -----

    const REPLY: u32 = ctx::U | ctx::RQ | ctx::NRQ | ctx::CQ | ctx::RY | ctx::RT | ctx::CRY | ctx::CRT;

    fn check_can_respond(&self, name: &str) -> HResult<()> {
        self.check(name, Self::REPLY)?;
        if self.inputs.responded || self.response.is_some() {
            let dot = if name == "msg_reply_data_append" { "." } else { "" };
            return Err(Self::violation(format!("ic0.{name}: the call is already replied{dot}")));
        }
        Ok(())
    }

    pub fn msg_reply_data_append(&mut self, mem: &[u8], src: u64, size: u64) -> HResult<()> {
        self.check_can_respond("msg_reply_data_append")?;
        let data = read(mem, src, size, "msg_reply_data_append")?;
        let total = self.reply_buffer.len() as u64 + size;
        if total > self.env.max_reply_size {
            return Err(Self::violation(format!(
                "ic0.msg_reply_data_append: application payload size ({total}) cannot be larger than {}.",
                self.env.max_reply_size
            )));
        }
        self.reply_buffer.extend_from_slice(data);
        Ok(())
    }

    pub fn msg_reply(&mut self) -> HResult<()> {
        self.check_can_respond("msg_reply")?;
        self.response = Some(ApiResponse::Reply(std::mem::take(&mut self.reply_buffer)));
        Ok(())
    }

    pub fn msg_reject(&mut self, mem: &[u8], src: u64, size: u64) -> HResult<()> {
        self.check_can_respond("msg_reject")?;
        if size > self.env.max_reply_size {
            return Err(Self::violation(format!(
                "ic0.msg_reject: application payload size ({size}) cannot be larger than {}.",
                self.env.max_reply_size
            )));
        }
        let data = read(mem, src, size, "msg_reject")?;
        let text =
            std::str::from_utf8(data).map_err(|_| Self::violation("ic0.msg_reject: invalid UTF-8 string provided"))?;
        self.response = Some(ApiResponse::Reject(text.to_string()));
        Ok(())
    }

    // ----- cycles -----

    pub fn msg_cycles_available(&self) -> HResult<Cycles> {
        self.check("msg_cycles_available128", ctx::U | ctx::RQ | ctx::RT | ctx::RY)?;
        Ok(self.inputs.available)
    }

    pub fn msg_cycles_refunded(&self) -> HResult<Cycles> {
        self.check("msg_cycles_refunded128", ctx::RT | ctx::RY)?;
        Ok(self.inputs.refunded)
    }

    pub fn msg_cycles_accept(&mut self, max: Cycles) -> HResult<Cycles> {
        self.check("msg_cycles_accept128", ctx::U | ctx::RQ | ctx::RT | ctx::RY)?;
        let amount = max.min(self.inputs.available);
        self.inputs.available -= amount;
        self.accepted += amount;
        self.balance += amount;
        Ok(amount)
    }

    pub fn cycles_burn(&mut self, amount: Cycles) -> HResult<Cycles> {
        self.check("cycles_burn128", ctx::I | ctx::G | ctx::U | ctx::RQ | ctx::RY | ctx::RT | ctx::C | ctx::T)?;
        let burned = amount.min(self.liquid_balance());
        self.balance -= burned;
        self.burned += burned;
        Ok(burned)
    }

    pub fn canister_cycle_balance(&self) -> HResult<Cycles> {
        self.check("canister_cycle_balance128", ctx::ALL)?;
        Ok(self.balance)
    }

    pub fn canister_liquid_cycle_balance(&self) -> HResult<Cycles> {
        self.check("canister_liquid_cycle_balance128", ctx::ALL)?;
        Ok(self.liquid_balance())
    }

    // ----- canister and subnet -----

    pub fn canister_self_size(&self) -> HResult<u64> {
        self.check("canister_self_size", ctx::ALL)?;
        Ok(self.env.canister_id.as_slice().len() as u64)
    }

    pub fn canister_self_copy(&self, mem: &mut [u8], dst: u64, off: u64, size: u64) -> HResult<()> {
        self.check("canister_self_copy", ctx::ALL)?;
        copy_out(mem, dst, off, size, self.env.canister_id.as_slice(), "canister_self_copy")
    }

    pub fn subnet_self_size(&self) -> HResult<u64> {
        self.check("subnet_self_size", ctx::ALL)?;
        Ok(self.env.subnet_id.as_slice().len() as u64)
    }

    pub fn subnet_self_copy(&self, mem: &mut [u8], dst: u64, off: u64, size: u64) -> HResult<()> {
        self.check("subnet_self_copy", ctx::ALL)?;
        copy_out(mem, dst, off, size, self.env.subnet_id.as_slice(), "subnet_self_copy")
    }

    pub fn canister_status(&self) -> HResult<u32> {
        self.check("canister_status", ctx::ALL)?;
        Ok(self.env.status)
    }

    pub fn canister_version(&self) -> HResult<u64> {
        self.check("canister_version", ctx::ALL)?;
        Ok(self.env.canister_version)
    }

    pub fn is_controller(&self, mem: &[u8], src: u64, size: u64) -> HResult<u32> {
        self.check("is_controller", ctx::ALL_S)?;
        let bytes = read(mem, src, size, "is_controller")?;
        let p =
            Principal::try_from_slice(bytes).map_err(|_| Self::violation("Canister provided invalid principal id"))?;
        Ok(self.env.controllers.contains(&p) as u32)
    }

    pub fn in_replicated_execution(&self) -> HResult<u32> {
        self.check("in_replicated_execution", ctx::ALL_S)?;
        Ok(self.context.is_replicated() as u32)
    }

    // ----- inspect_message -----

    pub fn msg_method_name_size(&self) -> HResult<u64> {
        self.check("msg_method_name_size", ctx::F)?;
        Ok(self.inputs.method_name.len() as u64)
    }

    pub fn msg_method_name_copy(&self, mem: &mut [u8], dst: u64, off: u64, size: u64) -> HResult<()> {
        self.check("msg_method_name_copy", ctx::F)?;
        copy_out(mem, dst, off, size, self.inputs.method_name.as_bytes(), "msg_method_name_copy")
    }

    pub fn accept_message(&mut self) -> HResult<()> {
        self.check("accept_message", ctx::F)?;
        if self.message_accepted {
            return Err(Self::violation("ic0.accept_message: the function was already called."));
        }
        self.message_accepted = true;
        Ok(())
    }

    // ----- outgoing calls -----

    const CALL: u32 = ctx::U | ctx::CQ | ctx::RY | ctx::RT | ctx::CRY | ctx::CRT | ctx::T;

    fn pending(&mut self, name: &str) -> HResult<&mut OutgoingCall> {
        self.pending_call
            .as_mut()
            .ok_or_else(|| Self::violation(format!("ic0.{name} called when no call is under construction.")))
    }

    #[allow(clippy::too_many_arguments)]
    pub fn call_new(
        &mut self,
        mem: &[u8],
        callee_src: u64,
        callee_size: u64,
        name_src: u64,
        name_size: u64,
        reply_fun: u64,
        reply_env: u64,
        reject_fun: u64,
        reject_env: u64,
    ) -> HResult<()> {
        self.check("call_new", Self::CALL)?;
        let callee = read(mem, callee_src, callee_size, "call_new")?;
        let callee = Principal::try_from_slice(callee)
            .map_err(|e| Self::violation(format!("ic0.call_new: invalid callee: {e}")))?;
        if name_size as usize > MAX_METHOD_NAME_SIZE {
            return Err(Self::violation(format!(
                "Size of method_name {name_size} exceeds the allowed limit of {MAX_METHOD_NAME_SIZE}."
            )));
        }
        let name = read(mem, name_src, name_size, "call_new")?;
        let method_name = std::str::from_utf8(name)
            .map_err(|_| Self::violation("ic0.call_new: method name is not valid UTF-8"))?
            .to_string();
        // A call that was never performed is discarded and its cycles returned.
        if let Some(old) = self.pending_call.take() {
            self.balance += old.cycles;
        }
        self.pending_call = Some(OutgoingCall {
            callee: CanisterId::from(callee),
            method_name,
            payload: Vec::new(),
            cycles: Cycles::ZERO,
            on_reply: WasmClosure { func_idx: reply_fun, env: reply_env },
            on_reject: WasmClosure { func_idx: reject_fun, env: reject_env },
            on_cleanup: None,
            timeout_seconds: None,
            prepayment_for_response_execution: Cycles::ZERO,
            prepayment_for_response_transmission: Cycles::ZERO,
            transmission_fee: Cycles::ZERO,
        });
        Ok(())
    }

    pub fn call_on_cleanup(&mut self, fun: u64, env: u64) -> HResult<()> {
        self.check("call_on_cleanup", Self::CALL)?;
        let call = self.pending("call_on_cleanup")?;
        if call.on_cleanup.is_some() {
            return Err(Self::violation("ic0.call_on_cleanup: the cleanup closure is already set."));
        }
        call.on_cleanup = Some(WasmClosure { func_idx: fun, env });
        Ok(())
    }

    pub fn call_data_append(&mut self, mem: &[u8], src: u64, size: u64) -> HResult<()> {
        self.check("call_data_append", Self::CALL)?;
        let data = read(mem, src, size, "call_data_append")?.to_vec();
        let call = self.pending("call_data_append")?;
        let total = (call.payload.len() + data.len()) as u64;
        if total > MAX_INTRA_SUBNET_PAYLOAD {
            return Err(Self::violation(format!(
                "Request to {}:{} has a payload size of {total}, which exceeds the allowed limit of {MAX_INTRA_SUBNET_PAYLOAD}.",
                call.callee, call.method_name
            )));
        }
        call.payload.extend_from_slice(&data);
        Ok(())
    }

    pub fn call_with_best_effort_response(&mut self, timeout_seconds: u32) -> HResult<()> {
        self.check("call_with_best_effort_response", Self::CALL)?;
        let call = self.pending("call_with_best_effort_response")?;
        if call.timeout_seconds.is_some() {
            return Err(Self::violation("ic0_call_with_best_effort_response failed because a timeout is already set."));
        }
        call.timeout_seconds = Some(timeout_seconds.min(MAX_CALL_TIMEOUT_SECONDS as u32));
        Ok(())
    }

    pub fn call_cycles_add(&mut self, amount: Cycles) -> HResult<()> {
        self.check("call_cycles_add128", ctx::U | ctx::RY | ctx::RT | ctx::T)?;
        self.pending("call_cycles_add128")?;
        if amount > self.liquid_balance() {
            return Err(Self::violation(format!(
                "Canister {} is out of cycles: please top up the canister with at least {} additional cycles",
                self.env.canister_id,
                amount - self.liquid_balance()
            )));
        }
        self.balance -= amount;
        self.pending("call_cycles_add128")?.cycles += amount;
        Ok(())
    }

    /// Enqueues the call under construction. Returns 0 on success, or a reject
    /// code (2, `SYS_TRANSIENT`) if the canister cannot pay the fees without
    /// freezing, in which case the attached cycles are returned.
    pub fn call_perform(&mut self) -> HResult<u32> {
        self.check("call_perform", Self::CALL)?;
        let mut call = self
            .pending_call
            .take()
            .ok_or_else(|| Self::violation("ic0.call_perform called when no call is under construction."))?;
        let costs = &self.env.costs;
        if self.context.is_replicated() {
            call.transmission_fee = costs.xnet_call_performed_fee((call.method_name.len() + call.payload.len()) as u64);
            call.prepayment_for_response_execution = costs.prepayment_for_response_execution();
            call.prepayment_for_response_transmission = costs.prepayment_for_response_transmission();
        }
        let fees =
            call.transmission_fee + call.prepayment_for_response_execution + call.prepayment_for_response_transmission;
        if fees > self.liquid_balance() {
            self.balance += call.cycles;
            return Ok(2);
        }
        self.balance -= fees;
        self.performed_calls.push(call);
        Ok(0)
    }

    // ----- stable memory -----

    fn stable_pages(&self) -> u64 {
        self.stable.memory.size_wasm_pages
    }

    pub fn stable64_size(&self) -> HResult<u64> {
        self.check("stable64_size", ctx::ALL_S)?;
        Ok(self.stable_pages())
    }

    pub fn stable_size(&self) -> HResult<u32> {
        self.check("stable_size", ctx::ALL_S)?;
        let pages = self.stable_pages();
        if pages > MAX_STABLE_MEMORY_PAGES_32 {
            return Err(trap_32bit_stable());
        }
        Ok(pages as u32)
    }

    fn grow_stable(&mut self, additional: u64, max_pages: u64) -> u64 {
        let old = self.stable_pages();
        match old.checked_add(additional) {
            Some(new) if new <= max_pages => {
                self.stable.memory.size_wasm_pages = new;
                self.stable.modified |= additional > 0;
                old
            }
            _ => u64::MAX,
        }
    }

    pub fn stable64_grow(&mut self, additional: u64) -> HResult<u64> {
        self.check("stable64_grow", ctx::ALL_S)?;
        Ok(self.grow_stable(additional, MAX_STABLE_MEMORY_PAGES))
    }

    pub fn stable_grow(&mut self, additional: u32) -> HResult<i32> {
        self.check("stable_grow", ctx::ALL_S)?;
        if self.stable_pages() > MAX_STABLE_MEMORY_PAGES_32 {
            return Err(trap_32bit_stable());
        }
        let r = self.grow_stable(additional as u64, MAX_STABLE_MEMORY_PAGES_32);
        Ok(if r == u64::MAX { -1 } else { r as i32 })
    }

    fn stable_bounds(&self, name: &str, offset: u64, size: u64) -> HResult<()> {
        let end = offset.checked_add(size).ok_or_else(|| Self::violation(format!("{name}: offset overflow")))?;
        if end > self.stable.memory.size_bytes() {
            return Err(HypervisorError::Trapped("stable memory out of bounds".into()));
        }
        Ok(())
    }

    /// Writes to stable memory; returns how many pages this execution dirtied for the first time.
    pub fn stable_write(
        &mut self,
        mem: &[u8],
        offset: u64,
        src: u64,
        size: u64,
        name: &str,
        allow32: bool,
    ) -> HResult<u64> {
        self.check(name, ctx::ALL_S)?;
        if allow32 && self.stable_pages() > MAX_STABLE_MEMORY_PAGES_32 {
            return Err(trap_32bit_stable());
        }
        let data = read(mem, src, size, name)?;
        self.stable_bounds(name, offset, size)?;
        self.stable.memory.page_map.write(offset, data);
        self.stable.modified = true;
        let mut new_pages = 0;
        if size > 0 {
            let page = cairn_state::PAGE_SIZE as u64;
            for p in offset / page..=(offset + size - 1) / page {
                new_pages += self.stable.dirty_pages.insert(p) as u64;
            }
        }
        Ok(new_pages)
    }

    pub fn stable_read(
        &self,
        mem: &mut [u8],
        dst: u64,
        offset: u64,
        size: u64,
        name: &str,
        allow32: bool,
    ) -> HResult<()> {
        self.check(name, ctx::ALL_S)?;
        if allow32 && self.stable_pages() > MAX_STABLE_MEMORY_PAGES_32 {
            return Err(trap_32bit_stable());
        }
        self.stable_bounds(name, offset, size)?;
        let out = write_slot(mem, dst, size, name)?;
        self.stable.memory.page_map.read(offset, out);
        Ok(())
    }

    // ----- certification, time, timers -----

    pub fn root_key_size(&self) -> HResult<u64> {
        self.check("root_key_size", ctx::I | ctx::G | ctx::U | ctx::RQ | ctx::RY | ctx::RT | ctx::C | ctx::T)?;
        Ok(self.env.root_key.len() as u64)
    }

    pub fn root_key_copy(&self, mem: &mut [u8], dst: u64, off: u64, size: u64) -> HResult<()> {
        self.check("root_key_copy", ctx::I | ctx::G | ctx::U | ctx::RQ | ctx::RY | ctx::RT | ctx::C | ctx::T)?;
        copy_out(mem, dst, off, size, &self.env.root_key, "root_key_copy")
    }

    pub fn certified_data_set(&mut self, mem: &[u8], src: u64, size: u64) -> HResult<()> {
        self.check("certified_data_set", ctx::I | ctx::G | ctx::U | ctx::RY | ctx::RT | ctx::T)?;
        if size as usize > MAX_CERTIFIED_DATA_SIZE {
            return Err(Self::violation(format!(
                "ic0_certified_data_set failed because the passed data must be no larger than {MAX_CERTIFIED_DATA_SIZE} bytes. Found {size} bytes."
            )));
        }
        self.certified_data = Some(read(mem, src, size, "certified_data_set")?.to_vec());
        Ok(())
    }

    pub fn data_certificate_present(&self) -> HResult<u32> {
        self.check("data_certificate_present", ctx::ALL)?;
        Ok(self.inputs.data_certificate.is_some() as u32)
    }

    fn data_certificate(&self, name: &str) -> HResult<&[u8]> {
        self.check(name, ctx::NRQ | ctx::CQ)?;
        self.inputs
            .data_certificate
            .as_deref()
            .ok_or_else(|| Self::violation(format!("\"ic0_{name}\": no data certificate is present")))
    }

    pub fn data_certificate_size(&self) -> HResult<u64> {
        Ok(self.data_certificate("data_certificate_size")?.len() as u64)
    }

    pub fn data_certificate_copy(&self, mem: &mut [u8], dst: u64, off: u64, size: u64) -> HResult<()> {
        let cert = self.data_certificate("data_certificate_copy")?;
        copy_out(mem, dst, off, size, cert, "data_certificate_copy")
    }

    pub fn time(&self) -> HResult<u64> {
        self.check("time", ctx::ALL)?;
        Ok(self.env.time.as_nanos())
    }

    pub fn global_timer_set(&mut self, timestamp: u64) -> HResult<u64> {
        self.check("global_timer_set", ctx::I | ctx::G | ctx::U | ctx::RY | ctx::RT | ctx::C | ctx::T)?;
        let previous = self.global_timer.map_or(0, |t| t.as_nanos());
        self.global_timer = if timestamp == 0 { None } else { Some(Time::from_nanos(timestamp)) };
        self.global_timer_changed = true;
        Ok(previous)
    }

    pub fn performance_counter(&self, counter_type: u32) -> HResult<u64> {
        self.check("performance_counter", ctx::ALL_S)?;
        match counter_type {
            0 => Ok(self.instructions_executed),
            1 => Ok(self.env.call_context_instructions + self.instructions_executed),
            other => Err(Self::violation(format!("ic0.performance_counter: unknown counter type {other}"))),
        }
    }

    // ----- costs -----

    pub fn cost_call(&self, method_name_size: u64, payload_size: u64) -> HResult<Cycles> {
        self.check("cost_call", ctx::ALL_S)?;
        Ok(self.env.costs.cost_call(method_name_size, payload_size))
    }

    pub fn cost_create_canister(&self) -> HResult<Cycles> {
        self.check("cost_create_canister", ctx::ALL_S)?;
        Ok(self.env.costs.canister_creation_fee())
    }

    pub fn cost_http_request(&self, request_size: u64, max_res_bytes: u64) -> HResult<Cycles> {
        self.check("cost_http_request", ctx::ALL_S)?;
        Ok(self.env.costs.http_request_fee(request_size, max_res_bytes))
    }

    /// `cost_sign_with_ecdsa`, `cost_sign_with_schnorr`, `cost_vetkd_derive_key`:
    /// 0 = ok, 1 = unknown curve/algorithm, 2 = unknown key name. No
    /// threshold keys exist on this subnet yet, so a known curve gives 2.
    pub fn cost_threshold_key(
        &self,
        name: &str,
        mem: &[u8],
        src: u64,
        size: u64,
        curve: u32,
        max_curve: u32,
    ) -> HResult<u32> {
        self.check(name, ctx::ALL_S)?;
        read(mem, src, size, name)?;
        Ok(if curve > max_curve { 1 } else { 2 })
    }

    // ----- environment variables -----

    fn env_var_by_index(&self, name: &str, index: u64) -> HResult<(&String, &String)> {
        self.env.environment_variables.iter().nth(index as usize).ok_or_else(|| {
            let _ = name;
            Self::violation(format!(
                "Environment variable index {index} is out of bounds. The number of environment variables is {}.",
                self.env.environment_variables.len()
            ))
        })
    }

    fn env_var_value_of(&self, name: &str, mem: &[u8], src: u64, size: u64) -> HResult<&String> {
        let key = self.env_var_name_arg(name, mem, src, size)?;
        self.env.environment_variables.get(&key).ok_or_else(|| {
            let _ = name;
            Self::violation(format!("Environment variable {key} not found."))
        })
    }

    fn env_var_name_arg(&self, name: &str, mem: &[u8], src: u64, size: u64) -> HResult<String> {
        if size as usize > MAX_ENV_VAR_NAME_SIZE {
            return Err(Self::violation(format!("ic0.{name}: Variable name is too large.")));
        }
        let bytes = read(mem, src, size, name)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| Self::violation(format!("ic0.{name}: name is not valid UTF-8")))
    }

    pub fn env_var_count(&self) -> HResult<u64> {
        self.check("env_var_count", ctx::ALL)?;
        Ok(self.env.environment_variables.len() as u64)
    }

    pub fn env_var_name_size(&self, index: u64) -> HResult<u64> {
        self.check("env_var_name_size", ctx::ALL)?;
        Ok(self.env_var_by_index("env_var_name_size", index)?.0.len() as u64)
    }

    pub fn env_var_name_copy(&self, mem: &mut [u8], index: u64, dst: u64, off: u64, size: u64) -> HResult<()> {
        self.check("env_var_name_copy", ctx::ALL)?;
        let name = self.env_var_by_index("env_var_name_copy", index)?.0.clone();
        copy_out(mem, dst, off, size, name.as_bytes(), "env_var_name_copy")
    }

    pub fn env_var_name_exists(&self, mem: &[u8], src: u64, size: u64) -> HResult<u32> {
        self.check("env_var_name_exists", ctx::ALL)?;
        let key = self.env_var_name_arg("env_var_name_exists", mem, src, size)?;
        Ok(self.env.environment_variables.contains_key(&key) as u32)
    }

    pub fn env_var_value_size(&self, mem: &[u8], src: u64, size: u64) -> HResult<u64> {
        self.check("env_var_value_size", ctx::ALL)?;
        Ok(self.env_var_value_of("env_var_value_size", mem, src, size)?.len() as u64)
    }

    pub fn env_var_value_copy(&self, mem: &mut [u8], src: u64, size: u64, dst: u64, off: u64, len: u64) -> HResult<()> {
        self.check("env_var_value_copy", ctx::ALL)?;
        let value = self.env_var_value_of("env_var_value_copy", mem, src, size)?.clone();
        copy_out(mem, dst, off, len, value.as_bytes(), "env_var_value_copy")
    }

    // ----- debugging -----

    pub fn debug_print(&mut self, mem: &[u8], src: u64, size: u64) -> HResult<()> {
        self.check("debug_print", ctx::ALL_S)?;
        // Never traps: out-of-bounds text is replaced by a note.
        let text = read(mem, src, size.min(cairn_state::canister_state::MAX_LOG_BYTES as u64), "debug_print")
            .map(|b| b.to_vec())
            .unwrap_or_else(|_| b"(debug message out of memory bounds)".to_vec());
        self.logs.push(text);
        Ok(())
    }

    pub fn trap(&self, mem: &[u8], src: u64, size: u64) -> HypervisorError {
        if let Err(e) = self.check("trap", ctx::ALL_S) {
            return e;
        }
        match read(mem, src, size.min(32 * 1024), "trap") {
            Ok(bytes) => HypervisorError::CalledTrap(String::from_utf8_lossy(bytes).into_owned()),
            Err(_) => HypervisorError::CalledTrap("(trap message out of memory bounds)".into()),
        }
    }
}

fn out_of_bounds(name: &str, addr: u64, size: u64, len: usize) -> HypervisorError {
    HypervisorError::ContractViolation(format!(
        "ic0.{name} heap: src={addr} + length={size} exceeds the slice size={len}"
    ))
}

fn trap_32bit_stable() -> HypervisorError {
    HypervisorError::Trapped("32 bit stable memory api used on a memory larger than 4GB".into())
}

/// Bytes `[src, src+size)` of the Wasm memory, or a trap.
pub fn read<'a>(mem: &'a [u8], src: u64, size: u64, name: &str) -> HResult<&'a [u8]> {
    let end = src
        .checked_add(size)
        .filter(|e| *e <= mem.len() as u64)
        .ok_or_else(|| out_of_bounds(name, src, size, mem.len()))?;
    Ok(&mem[src as usize..end as usize])
}

fn write_slot<'a>(mem: &'a mut [u8], dst: u64, size: u64, name: &str) -> HResult<&'a mut [u8]> {
    let len = mem.len();
    let end = dst.checked_add(size).filter(|e| *e <= len as u64).ok_or_else(|| out_of_bounds(name, dst, size, len))?;
    Ok(&mut mem[dst as usize..end as usize])
}

/// Writes bytes to Wasm memory at `dst`, or traps.
pub fn write(mem: &mut [u8], dst: u64, data: &[u8], name: &str) -> HResult<()> {
    write_slot(mem, dst, data.len() as u64, name)?.copy_from_slice(data);
    Ok(())
}

/// Implements the `*_copy(dst, off, size)` pattern: copies `value[off..off+size]` to `dst`.
fn copy_out(mem: &mut [u8], dst: u64, off: u64, size: u64, value: &[u8], name: &str) -> HResult<()> {
    let end = off.checked_add(size).filter(|e| *e <= value.len() as u64).ok_or_else(|| {
        HypervisorError::ContractViolation(format!(
            "ic0.{name} payload: src={off} + length={size} exceeds the slice size={}",
            value.len()
        ))
    })?;
    write(mem, dst, &value[off as usize..end as usize], name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> ApiEnvironment {
        ApiEnvironment {
            canister_id: CanisterId::from_u64(7),
            subnet_id: SubnetId(Principal::self_authenticating(b"subnet")),
            controllers: [Principal::ANONYMOUS].into(),
            time: Time::from_secs(100),
            status: 1,
            canister_version: 3,
            root_key: vec![1, 2, 3],
            environment_variables: [("A".to_string(), "1".to_string())].into(),
            costs: CostSchedule::for_subnet_size(13),
            freezing_limit: Cycles::new(1_000),
            reserved_balance: Cycles::ZERO,
            max_reply_size: 100,
            global_timer: None,
            call_context_instructions: 0,
        }
    }

    fn api(context: Context) -> SystemApi {
        let inputs = ApiInputs { arg: b"hello".to_vec(), available: Cycles::new(500), ..Default::default() };
        SystemApi::new(context, inputs, env(), Cycles::new(1_000_000_000_000_000), Memory::default())
    }

    #[test]
    fn context_rules_trap_with_names() {
        let a = api(Context::NonReplicatedQuery);
        assert_eq!(a.msg_arg_data_size().unwrap(), 5);
        let err = a.msg_cycles_available().unwrap_err();
        assert_eq!(
            err,
            HypervisorError::WrongContext(
                "\"ic0_msg_cycles_available128\" cannot be executed in non replicated query mode".into()
            )
        );
        let start = api(Context::Start);
        assert!(start.msg_caller_size().is_err());
        assert!(start.stable64_size().is_ok());
        assert!(api(Context::PreUpgrade).msg_arg_data_size().is_err());
    }

    #[test]
    fn reply_once_and_size_limit() {
        let mut a = api(Context::Update);
        let mem = vec![7u8; 200];
        a.msg_reply_data_append(&mem, 0, 50).unwrap();
        assert!(a.msg_reply_data_append(&mem, 0, 51).is_err());
        a.msg_reply().unwrap();
        assert_eq!(a.response, Some(ApiResponse::Reply(vec![7; 50])));
        assert!(a.msg_reply().is_err());
        assert!(a.msg_reject(&mem, 0, 1).is_err());
    }

    #[test]
    fn cycles_accept_and_calls() {
        let mut a = api(Context::Update);
        assert_eq!(a.msg_cycles_accept(Cycles::new(300)).unwrap(), Cycles::new(300));
        assert_eq!(a.msg_cycles_accept(Cycles::new(300)).unwrap(), Cycles::new(200));
        assert_eq!(a.msg_cycles_available().unwrap(), Cycles::ZERO);
        let mut mem = vec![0u8; 64];
        mem[..10].copy_from_slice(CanisterId::from_u64(9).as_slice());
        mem[10..13].copy_from_slice(b"foo");
        assert!(a.call_perform().is_err());
        a.call_new(&mem, 0, 10, 10, 3, 1, 2, 3, 4).unwrap();
        a.call_data_append(&mem, 10, 3).unwrap();
        let before = a.balance;
        a.call_cycles_add(Cycles::new(10)).unwrap();
        assert_eq!(a.call_perform().unwrap(), 0);
        let call = &a.performed_calls[0];
        assert_eq!(call.method_name, "foo");
        assert_eq!(call.cycles, Cycles::new(10));
        assert_eq!(before - a.balance, Cycles::new(10) + a.env.costs.cost_call(3, 3));
        // A canister that cannot pay the fees gets 2 and keeps its cycles.
        a.balance = Cycles::new(5_000);
        a.call_new(&mem, 0, 10, 10, 3, 1, 2, 3, 4).unwrap();
        a.call_cycles_add(Cycles::new(100)).unwrap();
        assert_eq!(a.call_perform().unwrap(), 2);
        assert_eq!(a.balance, Cycles::new(5_000));
    }

    #[test]
    fn stable_memory_bounds() {
        let mut a = api(Context::Update);
        let mut mem = vec![1u8; 100];
        assert!(a.stable_write(&mem, 0, 0, 10, "stable64_write", false).is_err());
        assert_eq!(a.stable64_grow(1).unwrap(), 0);
        a.stable_write(&mem, 65_530, 0, 6, "stable64_write", false).unwrap();
        assert!(a.stable_write(&mem, 65_531, 0, 6, "stable64_write", false).is_err());
        a.stable_read(&mut mem, 50, 65_530, 6, "stable64_read", false).unwrap();
        assert_eq!(&mem[50..56], &[1; 6]);
        assert_eq!(a.stable64_grow(MAX_STABLE_MEMORY_PAGES).unwrap(), u64::MAX);
        assert_eq!(a.stable_grow(70_000).unwrap(), -1);
    }

    #[test]
    fn copy_checks_source_and_destination() {
        let a = api(Context::Update);
        let mut mem = vec![0u8; 8];
        assert!(a.msg_arg_data_copy(&mut mem, 0, 2, 3).is_ok());
        assert_eq!(&mem[..3], b"llo");
        assert!(matches!(a.msg_arg_data_copy(&mut mem, 0, 3, 3), Err(HypervisorError::ContractViolation(_))));
        assert!(matches!(a.msg_arg_data_copy(&mut mem, 6, 0, 3), Err(HypervisorError::ContractViolation(_))));
    }

    #[test]
    fn env_vars_and_timer() {
        let mut a = api(Context::Update);
        let mut mem = vec![0u8; 16];
        mem[0] = b'A';
        assert_eq!(a.env_var_count().unwrap(), 1);
        assert_eq!(a.env_var_name_exists(&mem, 0, 1).unwrap(), 1);
        assert_eq!(a.env_var_value_size(&mem, 0, 1).unwrap(), 1);
        assert!(a.env_var_name_size(1).is_err());
        assert_eq!(a.global_timer_set(5).unwrap(), 0);
        assert_eq!(a.global_timer_set(0).unwrap(), 5);
        assert_eq!(a.global_timer, None);
    }
}
