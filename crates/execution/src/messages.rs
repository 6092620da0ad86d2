//! Executing one message on one canister: an incoming call (ingress or
//! request), a response (reply/reject callback, then cleanup if it trapped),
//! or a system task (heartbeat, global timer, low-memory hook).
//!
//! Every execution is all-or-nothing: the System API only records effects,
//! and they are applied here only if the execution returned normally. A trap
//! still pays for the instructions it used and leaves its log lines.

use crate::cycles::{self, execution_cost, out_of_cycles_message};
use crate::environment::{ExecutionEnvironment, Run, RunOutcome, append_logs, apply_committed, costs};
use cairn_state::canister_state::{CanisterStatus, LowMemoryHookStatus};
use cairn_state::{CallOrigin, Callback, CanisterState, SystemMetadata, SystemTask};
use cairn_types::messages::{
    CallContextId, IngressState, MessageId, Payload, RejectContext, Request, Response, SenderInfo, WasmResult,
};
use cairn_types::{CanisterId, Cycles, ErrorCode, Principal, RejectCode, Time, UserError};
use cairn_wasm::{ApiInputs, ApiResponse, Context, FuncRef, HypervisorError, SystemApi};

/// Something an execution produced for the rest of the subnet.
#[derive(Debug)]
pub(crate) enum Output {
    Request(Request),
    Response(Response),
    /// A new state of an ingress message.
    Ingress(MessageId, IngressState),
}

/// An incoming call, from a user or a canister.
pub(crate) struct CallInput {
    pub origin: CallOrigin,
    pub caller: Principal,
    pub method: String,
    pub arg: Vec<u8>,
    pub cycles: Cycles,
    pub sender_info: Option<SenderInfo>,
}

/// Tells the originator of `origin` that its call failed.
pub(crate) fn reject_origin(
    origin: &CallOrigin,
    respondent: CanisterId,
    err: UserError,
    refund: Cycles,
    outputs: &mut Vec<Output>,
) {
    match origin {
        CallOrigin::Ingress { message_id, .. } => outputs.push(Output::Ingress(*message_id, IngressState::Failed(err))),
        CallOrigin::Canister { caller, callback, deadline } => outputs.push(Output::Response(Response {
            originator: *caller,
            respondent,
            originator_reply_callback: *callback,
            refund,
            response_payload: Payload::Reject(RejectContext::new(err.reject_code(), err.to_string())),
            deadline: *deadline,
        })),
        CallOrigin::SystemTask => {}
    }
}

/// Answers `origin` with a reply or a canister reject.
fn answer_origin(
    origin: &CallOrigin,
    respondent: CanisterId,
    answer: ApiResponse,
    refund: Cycles,
    outputs: &mut Vec<Output>,
) {
    match origin {
        CallOrigin::Ingress { message_id, .. } => {
            let result = match answer {
                ApiResponse::Reply(data) => WasmResult::Reply(data),
                ApiResponse::Reject(msg) => WasmResult::Reject(msg),
            };
            outputs.push(Output::Ingress(*message_id, IngressState::Completed(result)));
        }
        CallOrigin::Canister { caller, callback, deadline } => {
            let payload = match answer {
                ApiResponse::Reply(data) => Payload::Data(data),
                ApiResponse::Reject(msg) => Payload::Reject(RejectContext::new(RejectCode::CanisterReject, msg)),
            };
            outputs.push(Output::Response(Response {
                originator: *caller,
                respondent,
                originator_reply_callback: *callback,
                refund,
                response_payload: payload,
                deadline: *deadline,
            }));
        }
        CallOrigin::SystemTask => {}
    }
}

fn origin_caller(origin: &CallOrigin) -> Principal {
    match origin {
        CallOrigin::Ingress { user, .. } => *user,
        CallOrigin::Canister { caller, .. } => caller.get(),
        CallOrigin::SystemTask => Principal::MANAGEMENT,
    }
}

fn origin_deadline(origin: &CallOrigin) -> Option<Time> {
    match origin {
        CallOrigin::Canister { deadline, .. } => *deadline,
        _ => None,
    }
}

impl ExecutionEnvironment {
    /// Executes an incoming call. Returns the instructions used.
    pub(crate) fn execute_call(
        &mut self,
        meta: &mut SystemMetadata,
        canister: &mut CanisterState,
        call: CallInput,
        outputs: &mut Vec<Output>,
    ) -> u64 {
        let id = canister.id();
        let costs = costs(meta);
        // Status and code checks.
        let status_error = match canister.system_state.status {
            CanisterStatus::Running => None,
            CanisterStatus::Stopping { .. } => {
                Some(UserError::new(ErrorCode::CanisterStopping, format!("Canister {id} is stopping")))
            }
            CanisterStatus::Stopped => {
                Some(UserError::new(ErrorCode::CanisterStopped, format!("Canister {id} is stopped")))
            }
        };
        if let Some(err) = status_error {
            reject_origin(&call.origin, id, err, call.cycles, outputs);
            return 0;
        }
        let Some(exec) = canister.execution_state.as_ref() else {
            reject_origin(
                &call.origin,
                id,
                HypervisorError::WasmModuleNotFound.into_user_error(&id),
                call.cycles,
                outputs,
            );
            return 0;
        };
        let wasm64 = exec.memory64;
        let (context, export, commit) = if exec.exports.updates.contains(&call.method) {
            (Context::Update, format!("canister_update {}", call.method), true)
        } else if exec.exports.queries.contains(&call.method) {
            (Context::ReplicatedQuery, format!("canister_query {}", call.method), false)
        } else if exec.exports.composite_queries.contains(&call.method) {
            let err = UserError::new(
                ErrorCode::CompositeQueryCalledInReplicatedMode,
                "Composite query cannot be called in replicated mode",
            );
            reject_origin(&call.origin, id, err, call.cycles, outputs);
            return 0;
        } else {
            let err =
                HypervisorError::MethodNotFound { kind: "update", name: call.method.clone() }.into_user_error(&id);
            reject_origin(&call.origin, id, err, call.cycles, outputs);
            return 0;
        };
        // Bounded-wait requests whose deadline passed are not started.
        if let CallOrigin::Canister { caller, .. } = &call.origin {
            let min = canister.system_state.settings.minimum_incoming_canister_call_cycles;
            if *caller != id && call.cycles < min {
                let err = UserError::new(
                    ErrorCode::InsufficientCyclesInCall,
                    format!(
                        "Canister {id} requires at least {min} cycles attached to incoming calls, but only {} were attached",
                        call.cycles
                    ),
                );
                reject_origin(&call.origin, id, err, call.cycles, outputs);
                return 0;
            }
        }
        let limit = self.config.max_instructions_per_update;
        let prepay = execution_cost(&costs, limit, wasm64);
        let liquid = cycles::liquid_balance(&costs, canister);
        if liquid < prepay {
            let reveal = canister.system_state.is_controller(&call.caller);
            let err =
                UserError::new(ErrorCode::CanisterOutOfCycles, out_of_cycles_message(canister, prepay, liquid, reveal));
            reject_origin(&call.origin, id, err, call.cycles, outputs);
            return 0;
        }
        if context == Context::Update {
            let limit = canister.system_state.settings.wasm_memory_limit;
            let used = canister.wasm_memory_size();
            if limit > 0 && used > limit {
                let err = HypervisorError::WasmMemoryLimitExceeded { used, limit }.into_user_error(&id);
                reject_origin(&call.origin, id, err, call.cycles, outputs);
                return 0;
            }
        }
        let time = meta.batch_time;
        canister.system_state.cycles_balance -= prepay;
        let deadline = origin_deadline(&call.origin);
        let ctx_id =
            canister.system_state.call_context_manager.new_call_context(call.origin.clone(), call.cycles, time);
        let inputs = ApiInputs {
            caller: call.caller,
            arg: call.arg,
            available: call.cycles,
            deadline,
            sender_info: call.sender_info,
            ..Default::default()
        };
        let run = Run { context, inputs, func: FuncRef::Export(export), limit, commit, call_context_instructions: 0 };
        let outcome = self.run(meta, canister, canister.system_state.cycles_balance, run);
        self.finish(meta, canister, ctx_id, outcome, prepay, wasm64, outputs)
    }

    /// Applies an execution's outcome: charges instructions, applies or drops
    /// its effects, answers the call context when due, and closes it when done.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &mut self,
        meta: &mut SystemMetadata,
        canister: &mut CanisterState,
        ctx_id: CallContextId,
        outcome: RunOutcome,
        prepaid: Cycles,
        wasm64: bool,
        outputs: &mut Vec<Output>,
    ) -> u64 {
        let id = canister.id();
        let costs = costs(meta);
        let time = meta.batch_time;
        let RunOutcome { api, result, instructions, committed } = outcome;
        let cost = execution_cost(&costs, instructions, wasm64).min(prepaid);
        canister.system_state.consumed_cycles.instructions += cost;
        meta.consumed_cycles_total += cost;
        append_logs(canister, time, &api, result.as_ref().err());
        match result {
            Ok(()) => {
                canister.system_state.cycles_balance = api.balance + (prepaid - cost);
                if let Some(c) = committed {
                    apply_committed(canister, c);
                }
                self.apply_effects(meta, canister, ctx_id, api, outputs);
            }
            Err(err) => {
                canister.system_state.cycles_balance += prepaid - cost;
                let user_error = err.into_user_error(&id);
                let ccm = &mut canister.system_state.call_context_manager;
                if let Some(ctx) = ccm.call_context_mut(ctx_id)
                    && !ctx.responded
                    && ccm.outstanding_callbacks(ctx_id) == 0
                {
                    let ctx = ccm.call_context_mut(ctx_id).expect("exists");
                    ctx.responded = true;
                    let refund = std::mem::take(&mut ctx.available_cycles);
                    let origin = ctx.origin.clone();
                    reject_origin(&origin, id, user_error, refund, outputs);
                }
            }
        }
        self.close_context(canister, ctx_id, outputs);
        instructions
    }

    /// Applies the recorded effects of a successful execution.
    fn apply_effects(
        &mut self,
        meta: &mut SystemMetadata,
        canister: &mut CanisterState,
        ctx_id: CallContextId,
        api: SystemApi,
        outputs: &mut Vec<Output>,
    ) {
        let id = canister.id();
        let time = meta.batch_time;
        let s = &mut canister.system_state;
        s.canister_version += 1;
        s.last_observed_time = s.last_observed_time.max(time);
        if let Some(data) = api.certified_data {
            s.certified_data = data;
        }
        if api.global_timer_changed {
            s.global_timer = api.global_timer;
        }
        s.consumed_cycles.burned_cycles += api.burned;
        meta.consumed_cycles_total += api.burned;
        if let Some(ctx) = s.call_context_manager.call_context_mut(ctx_id) {
            ctx.available_cycles -= api.accepted;
            if let Some(answer) = api.response {
                ctx.responded = true;
                let refund = std::mem::take(&mut ctx.available_cycles);
                let origin = ctx.origin.clone();
                answer_origin(&origin, id, answer, refund, outputs);
            }
        }
        for call in api.performed_calls {
            s.consumed_cycles.request_and_response_transmission += call.transmission_fee;
            meta.consumed_cycles_total += call.transmission_fee;
            let deadline = call.timeout_seconds.map(|t| time.saturating_add(std::time::Duration::from_secs(t as u64)));
            let callback = s.call_context_manager.register_callback(Callback {
                call_context_id: ctx_id,
                originator: id,
                respondent: call.callee,
                cycles_sent: call.cycles,
                prepayment_for_response_execution: call.prepayment_for_response_execution,
                prepayment_for_response_transmission: call.prepayment_for_response_transmission,
                on_reply: call.on_reply,
                on_reject: call.on_reject,
                on_cleanup: call.on_cleanup,
                deadline,
            });
            outputs.push(Output::Request(Request {
                receiver: call.callee,
                sender: id,
                sender_reply_callback: callback,
                payment: call.cycles,
                method_name: call.method_name,
                method_payload: call.payload,
                deadline,
            }));
        }
    }

    /// Closes a call context whose work is done; tells the caller if it never answered.
    pub(crate) fn close_context(
        &mut self,
        canister: &mut CanisterState,
        ctx_id: CallContextId,
        outputs: &mut Vec<Output>,
    ) {
        let id = canister.id();
        let ccm = &mut canister.system_state.call_context_manager;
        if let Some(ctx) = ccm.call_context(ctx_id)
            && !ctx.responded
            && ccm.outstanding_callbacks(ctx_id) > 0
            && let CallOrigin::Ingress { message_id, .. } = &ctx.origin
        {
            outputs.push(Output::Ingress(*message_id, IngressState::Processing));
        }
        if let Some(ctx) = ccm.close_if_finished(ctx_id) {
            let err =
                UserError::new(ErrorCode::CanisterDidNotReply, format!("Canister {id} did not reply to the call"));
            reject_origin(&ctx.origin, id, err, ctx.available_cycles, outputs);
        }
    }

    /// Executes a response: refunds, then the reply or reject callback, then
    /// the cleanup callback if that trapped.
    pub(crate) fn execute_response(
        &mut self,
        meta: &mut SystemMetadata,
        canister: &mut CanisterState,
        response: Response,
        outputs: &mut Vec<Output>,
    ) -> u64 {
        let costs = costs(meta);
        let Some(callback) =
            canister.system_state.call_context_manager.take_callback(response.originator_reply_callback)
        else {
            // A late response to an expired bounded-wait call: dropped, but its cycles are kept.
            canister.system_state.cycles_balance += response.refund;
            return 0;
        };
        let transmission = costs.xnet_transmission_cost(response.response_payload.size_bytes());
        let s = &mut canister.system_state;
        s.cycles_balance +=
            response.refund + callback.prepayment_for_response_transmission.saturating_sub(transmission);
        s.consumed_cycles.request_and_response_transmission +=
            transmission.min(callback.prepayment_for_response_transmission);
        let ctx_id = callback.call_context_id;
        let Some(ctx) = s.call_context_manager.call_context(ctx_id).cloned() else {
            s.cycles_balance += callback.prepayment_for_response_execution;
            return 0;
        };
        let Some(exec) = canister.execution_state.as_ref().filter(|_| !ctx.deleted) else {
            canister.system_state.cycles_balance += callback.prepayment_for_response_execution;
            self.close_context(canister, ctx_id, outputs);
            return 0;
        };
        let wasm64 = exec.memory64;
        let (context, closure, arg, reject) = match response.response_payload {
            Payload::Data(data) => (Context::ReplyCallback, callback.on_reply, data, None),
            Payload::Reject(r) => (Context::RejectCallback, callback.on_reject, Vec::new(), Some(r)),
        };
        let inputs = ApiInputs {
            caller: origin_caller(&ctx.origin),
            arg,
            reject: reject.clone(),
            refunded: response.refund,
            available: ctx.available_cycles,
            deadline: origin_deadline(&ctx.origin),
            responded: ctx.responded,
            ..Default::default()
        };
        let limit = self.config.max_instructions_per_update;
        let prepaid = callback.prepayment_for_response_execution;
        let balance = canister.system_state.cycles_balance;
        let run = Run {
            context,
            inputs,
            func: FuncRef::Closure(closure),
            limit,
            commit: true,
            call_context_instructions: ctx.instructions_executed,
        };
        let outcome = self.run(meta, canister, balance, run);
        let mut used = outcome.instructions;
        if let Some(c) = canister.system_state.call_context_manager.call_context_mut(ctx_id) {
            c.instructions_executed += used;
        }
        match (&outcome.result, callback.on_cleanup) {
            (Err(callback_error), Some(cleanup)) => {
                // Run the cleanup on what is left of the prepaid budget, then report the callback's error.
                let callback_error = callback_error.clone();
                let RunOutcome { api, instructions, .. } = outcome;
                append_logs(canister, meta.batch_time, &api, Some(&callback_error));
                let inputs = ApiInputs {
                    caller: origin_caller(&ctx.origin),
                    reject,
                    deadline: origin_deadline(&ctx.origin),
                    responded: true,
                    ..Default::default()
                };
                let cleanup_run = Run {
                    context: Context::Cleanup,
                    inputs,
                    func: FuncRef::Closure(cleanup),
                    limit: limit.saturating_sub(instructions).max(limit / 20),
                    commit: true,
                    call_context_instructions: 0,
                };
                let balance = canister.system_state.cycles_balance;
                let cleanup_outcome = self.run(meta, canister, balance, cleanup_run);
                used += cleanup_outcome.instructions;
                let cost = execution_cost(&costs, used, wasm64).min(prepaid);
                canister.system_state.consumed_cycles.instructions += cost;
                meta.consumed_cycles_total += cost;
                let RunOutcome { api: cleanup_api, result: cleanup_result, committed, .. } = cleanup_outcome;
                append_logs(canister, meta.batch_time, &cleanup_api, cleanup_result.as_ref().err());
                if cleanup_result.is_ok() {
                    canister.system_state.cycles_balance = cleanup_api.balance;
                    if let Some(c) = committed {
                        apply_committed(canister, c);
                    }
                    if cleanup_api.global_timer_changed {
                        canister.system_state.global_timer = cleanup_api.global_timer;
                    }
                }
                canister.system_state.cycles_balance += prepaid - cost;
                let id = canister.id();
                let error = match cleanup_result {
                    Ok(()) => callback_error.into_user_error(&id),
                    Err(cleanup_error) => {
                        let a = callback_error.into_user_error(&id);
                        let b = cleanup_error.into_user_error(&id);
                        UserError::new(
                            a.code,
                            format!("{}\n\ncall_on_cleanup also failed:\n\n{}", a.description, b.description),
                        )
                    }
                };
                self.fail_context(canister, ctx_id, error, outputs);
                used
            }
            _ => self.finish(meta, canister, ctx_id, outcome, prepaid, wasm64, outputs),
        }
    }

    /// Answers a context with an error if it still owes an answer and nothing else will answer it.
    fn fail_context(
        &mut self,
        canister: &mut CanisterState,
        ctx_id: CallContextId,
        error: UserError,
        outputs: &mut Vec<Output>,
    ) {
        let id = canister.id();
        let ccm = &mut canister.system_state.call_context_manager;
        if ccm.outstanding_callbacks(ctx_id) == 0
            && let Some(ctx) = ccm.call_context_mut(ctx_id)
            && !ctx.responded
        {
            ctx.responded = true;
            let refund = std::mem::take(&mut ctx.available_cycles);
            let origin = ctx.origin.clone();
            reject_origin(&origin, id, error, refund, outputs);
        }
        self.close_context(canister, ctx_id, outputs);
    }

    /// Runs a heartbeat, global timer or low-memory hook. Returns instructions used.
    pub(crate) fn execute_task(
        &mut self,
        meta: &mut SystemMetadata,
        canister: &mut CanisterState,
        task: SystemTask,
        outputs: &mut Vec<Output>,
    ) -> u64 {
        let costs = costs(meta);
        let Some(exec) = canister.execution_state.as_ref() else {
            return 0;
        };
        if canister.system_state.status != CanisterStatus::Running {
            return 0;
        }
        let (context, export, exported) = match task {
            SystemTask::Heartbeat => (Context::Heartbeat, "canister_heartbeat", exec.exports.heartbeat),
            SystemTask::GlobalTimer => (Context::GlobalTimer, "canister_global_timer", exec.exports.global_timer),
            SystemTask::OnLowWasmMemory => {
                (Context::OnLowWasmMemory, "canister_on_low_wasm_memory", exec.exports.on_low_wasm_memory)
            }
        };
        if !exported {
            return 0;
        }
        let wasm64 = exec.memory64;
        let limit = self.config.max_instructions_per_update;
        let prepay = execution_cost(&costs, limit, wasm64);
        if cycles::liquid_balance(&costs, canister) < prepay {
            if task == SystemTask::OnLowWasmMemory {
                canister.system_state.low_memory_hook = LowMemoryHookStatus::Ready;
            }
            return 0;
        }
        match task {
            // The timer is deactivated when it fires; the handler may set it again.
            SystemTask::GlobalTimer => canister.system_state.global_timer = None,
            SystemTask::OnLowWasmMemory => canister.system_state.low_memory_hook = LowMemoryHookStatus::Executed,
            SystemTask::Heartbeat => {}
        }
        canister.system_state.cycles_balance -= prepay;
        let ctx_id = canister.system_state.call_context_manager.new_call_context(
            CallOrigin::SystemTask,
            Cycles::ZERO,
            meta.batch_time,
        );
        let inputs = ApiInputs { caller: Principal::MANAGEMENT, responded: true, ..Default::default() };
        let run = Run {
            context,
            inputs,
            func: FuncRef::Export(export.to_string()),
            limit,
            commit: true,
            call_context_instructions: 0,
        };
        let outcome = self.run(meta, canister, canister.system_state.cycles_balance, run);
        self.finish(meta, canister, ctx_id, outcome, prepay, wasm64, outputs)
    }
}

/// The reject a caller gets when its bounded-wait call's deadline passes.
pub(crate) fn deadline_expired_response(
    callback: &Callback,
    callback_id: cairn_types::messages::CallbackId,
) -> Response {
    Response {
        originator: callback.originator,
        respondent: callback.respondent,
        originator_reply_callback: callback_id,
        refund: Cycles::ZERO,
        response_payload: Payload::Reject(RejectContext::new(RejectCode::SysUnknown, "Call deadline has expired.")),
        deadline: callback.deadline,
    }
}
