//! The deterministic scheduler: one call executes one batch (a round).
//!
//! Order within a round is a pure function of the state and the batch:
//! ingress is inducted in block order; canisters are visited in id order,
//! rotated by height for fairness; messages produced during the round are
//! delivered immediately, so a call between two canisters of this subnet can
//! complete within one round; the management canister's queue is drained
//! before every pass.

use crate::config::{ALLOCATION_CHARGE_INTERVAL_NANOS, MAX_INGRESS_HISTORY};
use crate::environment::{ExecutionEnvironment, costs};
use crate::management::ManagementCall;
use crate::messages::{CallInput, Output, deadline_expired_response};
use cairn_state::canister_state::{CanisterStatus, ChangeOrigin, LowMemoryHookStatus};
use cairn_state::{CallOrigin, CanisterInput, ReplicatedState, SystemTask};
use cairn_types::messages::{Ingress, IngressState, IngressStatus, Payload, RejectContext, Response};
use cairn_types::{CanisterId, Cycles, ErrorCode, Height, RejectCode, Time, UserError};

/// Everything consensus decided for one round.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    pub height: Height,
    /// Block time; rounds never go back in time.
    pub time: Time,
    /// Unpredictable randomness for `raw_rand` (from the random tape).
    pub randomness: [u8; 32],
    pub ingress: Vec<Ingress>,
}

/// Counts of one round, for metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoundStats {
    pub messages_executed: u64,
    pub instructions: u64,
    pub ingress_inducted: u64,
}

/// Delivers messages produced by executions to their queues, and records
/// ingress results. Requests to canisters that do not exist here are
/// answered with a reject right away.
pub(crate) fn route_outputs(state: &mut ReplicatedState, outputs: Vec<Output>) {
    let time = state.metadata.batch_time;
    for output in outputs {
        match output {
            Output::Request(req) => {
                if req.receiver.is_management() {
                    // Requests to the management canister cannot be refused for capacity.
                    state.subnet_queues.push_request(req).ok();
                    continue;
                }
                let local = state.metadata.routing_table.route(&req.receiver) == Some(state.metadata.own_subnet_id);
                let error = match state.canisters.get_mut(&req.receiver) {
                    Some(c) => match c.system_state.queues.push_request(req.clone()) {
                        Ok(()) => None,
                        Err(e) => Some(RejectContext::new(RejectCode::SysTransient, e.to_string())),
                    },
                    None if local => Some(RejectContext::new(
                        RejectCode::DestinationInvalid,
                        format!("Canister {} not found", req.receiver),
                    )),
                    None => Some(RejectContext::new(
                        RejectCode::DestinationInvalid,
                        format!("No route to canister {}", req.receiver),
                    )),
                };
                if let Some(reject) = error
                    && let Some(sender) = state.canisters.get_mut(&req.sender)
                {
                    sender.system_state.queues.push_response(Response {
                        originator: req.sender,
                        respondent: req.receiver,
                        originator_reply_callback: req.sender_reply_callback,
                        refund: req.payment,
                        response_payload: Payload::Reject(reject),
                        deadline: req.deadline,
                    });
                }
            }
            Output::Response(resp) => {
                if let Some(c) = state.canisters.get_mut(&resp.originator) {
                    c.system_state.queues.push_response(resp);
                }
            }
            Output::Ingress(id, new_state) => {
                if let Some(status) = state.metadata.ingress_history.get(&id).cloned() {
                    let terminal = new_state.is_terminal();
                    state.metadata.ingress_history.set(id, IngressStatus { state: new_state, time, ..status });
                    if terminal {
                        state.metadata.update_transactions_total += 1;
                    }
                }
            }
        }
    }
}

impl ExecutionEnvironment {
    /// Executes one batch on `state`.
    pub fn execute_round(&mut self, state: &mut ReplicatedState, batch: Batch) -> RoundStats {
        let mut stats = RoundStats::default();
        let time = batch.time.max(state.metadata.batch_time);
        state.metadata.batch_time = time;
        state.metadata.height = batch.height;

        for ingress in batch.ingress {
            stats.ingress_inducted += self.induct_ingress(state, ingress) as u64;
        }
        self.expire_deadlines(state);
        self.schedule_tasks(state);

        let mut budget = self.config.max_instructions_per_round as i128;
        let ids: Vec<CanisterId> = state.canisters.keys().copied().collect();
        let rotation = if ids.is_empty() { 0 } else { (batch.height.0 % ids.len() as u64) as usize };
        let order: Vec<CanisterId> = ids[rotation..].iter().chain(ids[..rotation].iter()).copied().collect();
        loop {
            let mut progress = false;
            while let Some(input) = state.subnet_queues.pop_input() {
                let mut outputs = Vec::new();
                let call = match input {
                    CanisterInput::Ingress(i) => ManagementCall {
                        origin: CallOrigin::Ingress { user: i.source, message_id: i.message_id },
                        caller: i.source,
                        method: i.method_name,
                        arg: i.method_payload,
                        cycles: Cycles::ZERO,
                    },
                    CanisterInput::Request(r) => ManagementCall {
                        origin: CallOrigin::Canister {
                            caller: r.sender,
                            callback: r.sender_reply_callback,
                            deadline: r.deadline,
                        },
                        caller: r.sender.get(),
                        method: r.method_name,
                        arg: r.method_payload,
                        cycles: r.payment,
                    },
                    CanisterInput::Response(_) => continue,
                };
                self.execute_management(state, call, &batch.randomness, &mut outputs);
                route_outputs(state, outputs);
                stats.messages_executed += 1;
                progress = true;
            }
            for id in &order {
                while budget > 0 {
                    let Some(mut canister) = state.canisters.remove(id) else {
                        break;
                    };
                    let mut outputs = Vec::new();
                    let instructions = if let Some(task) = canister.system_state.queues.pop_task() {
                        self.execute_task(&mut state.metadata, &mut canister, task, &mut outputs)
                    } else if let Some(input) = canister.system_state.queues.pop_input() {
                        match input {
                            CanisterInput::Ingress(i) => {
                                let call = CallInput {
                                    origin: CallOrigin::Ingress { user: i.source, message_id: i.message_id },
                                    caller: i.source,
                                    method: i.method_name,
                                    arg: i.method_payload,
                                    cycles: Cycles::ZERO,
                                    sender_info: i.sender_info,
                                };
                                self.execute_call(&mut state.metadata, &mut canister, call, &mut outputs)
                            }
                            CanisterInput::Request(r) => {
                                let call = CallInput {
                                    origin: CallOrigin::Canister {
                                        caller: r.sender,
                                        callback: r.sender_reply_callback,
                                        deadline: r.deadline,
                                    },
                                    caller: r.sender.get(),
                                    method: r.method_name,
                                    arg: r.method_payload,
                                    cycles: r.payment,
                                    sender_info: None,
                                };
                                self.execute_call(&mut state.metadata, &mut canister, call, &mut outputs)
                            }
                            CanisterInput::Response(r) => {
                                self.execute_response(&mut state.metadata, &mut canister, r, &mut outputs)
                            }
                        }
                    } else {
                        state.canisters.insert(*id, canister);
                        break;
                    };
                    self.update_low_memory_hook(&mut canister);
                    state.canisters.insert(*id, canister);
                    route_outputs(state, outputs);
                    budget -= instructions.max(1) as i128;
                    stats.instructions += instructions;
                    stats.messages_executed += 1;
                    progress = true;
                }
            }
            if !progress || budget <= 0 {
                break;
            }
        }

        let mut outputs = Vec::new();
        self.complete_stops(state, &mut outputs);
        route_outputs(state, outputs);
        self.expire_queued_ingress(state);
        self.charge_allocations(state);
        state.metadata.ingress_history.prune(time);
        stats
    }

    /// Accepts an ingress message into its queue (or records why not).
    /// Returns whether it was inducted.
    fn induct_ingress(&mut self, state: &mut ReplicatedState, ingress: Ingress) -> bool {
        let time = state.metadata.batch_time;
        let history = &state.metadata.ingress_history;
        // Replay protection: a known id is never executed again; an expired one never starts.
        if history.contains(&ingress.message_id) || ingress.expiry_time < time {
            return false;
        }
        let status = |s: IngressState| IngressStatus {
            receiver: ingress.receiver,
            effective_canister_id: ingress.effective_canister_id,
            user: ingress.source,
            time,
            state: s,
            expiry_time: ingress.expiry_time,
        };
        if history.len() >= MAX_INGRESS_HISTORY {
            let err = UserError::new(
                ErrorCode::IngressHistoryFull,
                format!("Maximum queue capacity {MAX_INGRESS_HISTORY} reached"),
            );
            state.metadata.ingress_history.set(ingress.message_id, status(IngressState::Failed(err)));
            return false;
        }
        let costs = costs(&state.metadata);
        let bytes = (ingress.method_name.len() + ingress.method_payload.len()) as u64;
        let fee = costs.ingress_induction_cost(bytes);
        let (payer, free) = if ingress.receiver.is_management() {
            (ingress.effective_canister_id, ingress.method_name.starts_with("provisional_"))
        } else {
            (ingress.receiver, false)
        };
        let error = match state.canisters.get_mut(&payer) {
            None if free => None,
            None => Some(UserError::new(ErrorCode::CanisterNotFound, format!("Canister {payer} not found"))),
            Some(c) if !ingress.receiver.is_management() && c.system_state.status != CanisterStatus::Running => {
                Some(match c.system_state.status {
                    CanisterStatus::Stopped => {
                        UserError::new(ErrorCode::CanisterStopped, format!("Canister {payer} is stopped"))
                    }
                    _ => UserError::new(ErrorCode::CanisterStopping, format!("Canister {payer} is stopping")),
                })
            }
            Some(_) if free => None,
            Some(c) => {
                let liquid = crate::cycles::liquid_balance(&costs, c);
                if liquid < fee {
                    let reveal = c.system_state.is_controller(&ingress.source);
                    Some(UserError::new(
                        ErrorCode::CanisterOutOfCycles,
                        crate::cycles::out_of_cycles_message(c, fee, liquid, reveal),
                    ))
                } else {
                    c.system_state.cycles_balance -= fee;
                    c.system_state.consumed_cycles.ingress_induction += fee;
                    state.metadata.consumed_cycles_total += fee;
                    None
                }
            }
        };
        let id = ingress.message_id;
        if let Some(err) = error {
            state.metadata.ingress_history.set(id, status(IngressState::Failed(err)));
            return false;
        }
        state.metadata.ingress_history.set(id, status(IngressState::Received));
        if ingress.receiver.is_management() {
            state.subnet_queues.push_ingress(ingress);
        } else if let Some(c) = state.canisters.get_mut(&ingress.receiver) {
            c.system_state.queues.push_ingress(ingress);
        }
        true
    }

    /// Bounded-wait calls past their deadline: the caller gets `SYS_UNKNOWN`;
    /// requests not yet started are dropped.
    fn expire_deadlines(&mut self, state: &mut ReplicatedState) {
        let now = state.metadata.batch_time;
        for canister in state.canisters.values_mut() {
            let s = &mut canister.system_state;
            for id in s.call_context_manager.expired_callbacks(now) {
                if let Some(cb) = s.call_context_manager.callback_mut(id) {
                    let response = deadline_expired_response(cb, id);
                    cb.deadline = None;
                    s.queues.push_response(response);
                }
            }
            s.queues.drop_expired_requests(now);
        }
    }

    /// Queues due system tasks: the low-memory hook, the global timer, the heartbeat.
    fn schedule_tasks(&mut self, state: &mut ReplicatedState) {
        let now = state.metadata.batch_time;
        for canister in state.canisters.values_mut() {
            let Some(exec) = canister.execution_state.as_ref() else {
                continue;
            };
            let s = &mut canister.system_state;
            if s.status != CanisterStatus::Running {
                continue;
            }
            if exec.exports.on_low_wasm_memory && s.low_memory_hook == LowMemoryHookStatus::Ready {
                s.queues.push_task(SystemTask::OnLowWasmMemory);
            }
            if exec.exports.global_timer && s.global_timer.is_some_and(|t| t <= now) {
                s.queues.push_task(SystemTask::GlobalTimer);
            }
            if exec.exports.heartbeat {
                s.queues.push_task(SystemTask::Heartbeat);
            }
        }
    }

    /// Tracks the low-memory condition (`limit < usage + threshold`), which
    /// fires the hook once until memory drops back below the trigger.
    fn update_low_memory_hook(&mut self, canister: &mut cairn_state::CanisterState) {
        let Some(exec) = canister.execution_state.as_ref() else {
            return;
        };
        if !exec.exports.on_low_wasm_memory {
            return;
        }
        let s = &mut canister.system_state;
        let limit = match s.settings.wasm_memory_limit {
            0 if exec.memory64 => cairn_wasm::engine::MAX_WASM64_HEAP,
            0 => cairn_wasm::engine::MAX_WASM32_HEAP,
            l => l,
        };
        let triggered = limit < exec.wasm_memory.size_bytes() + s.settings.wasm_memory_threshold;
        match (triggered, s.low_memory_hook) {
            (true, LowMemoryHookStatus::NotSatisfied) => {
                s.low_memory_hook = LowMemoryHookStatus::Ready;
                s.queues.push_task(SystemTask::OnLowWasmMemory);
            }
            (false, _) => s.low_memory_hook = LowMemoryHookStatus::NotSatisfied,
            _ => {}
        }
    }

    /// Ingress that waited in a queue past its expiry never runs.
    fn expire_queued_ingress(&mut self, state: &mut ReplicatedState) {
        let now = state.metadata.batch_time;
        let mut expired = Vec::new();
        for canister in state.canisters.values_mut() {
            expired.extend(canister.system_state.queues.take_expired_ingress(now));
        }
        expired.extend(state.subnet_queues.take_expired_ingress(now));
        let outputs = expired
            .into_iter()
            .map(|i| {
                let err = UserError::new(
                    ErrorCode::IngressMessageTimeout,
                    format!("Ingress message {} timed out waiting to start executing.", i.message_id),
                );
                Output::Ingress(i.message_id, IngressState::Failed(err))
            })
            .collect();
        route_outputs(state, outputs);
    }

    /// Charges storage and compute allocation at most every ten seconds; a
    /// canister that cannot pay loses its code.
    fn charge_allocations(&mut self, state: &mut ReplicatedState) {
        let now = state.metadata.batch_time;
        let costs = costs(&state.metadata);
        let mut broke = Vec::new();
        for canister in state.canisters.values_mut() {
            let s = &canister.system_state;
            let elapsed = now.nanos_since(s.time_of_last_allocation_charge);
            if elapsed < ALLOCATION_CHARGE_INTERVAL_NANOS {
                continue;
            }
            let memory = canister.memory_usage().max(s.settings.memory_allocation);
            let storage = costs.storage_cost(memory, elapsed);
            let compute = costs.compute_allocation_cost(s.settings.compute_allocation, elapsed);
            let id = canister.id();
            let s = &mut canister.system_state;
            s.time_of_last_allocation_charge = now;
            let total = storage + compute;
            if s.cycles_balance < total {
                s.cycles_balance = Cycles::ZERO;
                broke.push(id);
            } else {
                s.cycles_balance -= total;
            }
            s.consumed_cycles.memory += storage;
            s.consumed_cycles.compute_allocation += compute;
            state.metadata.consumed_cycles_total += total;
        }
        for id in broke {
            let mut outputs = Vec::new();
            if let Some(canister) = state.canisters.get_mut(&id)
                && canister.execution_state.is_some()
            {
                self.uninstall(canister, now, ChangeOrigin::FromUser(cairn_types::Principal::MANAGEMENT), &mut outputs);
            }
            route_outputs(state, outputs);
        }
    }
}
