//! Non-replicated queries: run on one node against a state, commit nothing.
//!
//! A composite query may call query methods of other canisters on this
//! subnet; the call graph runs depth-first. Memory changes made by a
//! canister persist across its callbacks within the graph (each canister
//! works on a query-local copy) and are discarded at the end.

use crate::config::MAX_QUERY_CALL_DEPTH;
use crate::cycles;
use crate::environment::{ExecutionEnvironment, Run, apply_committed, costs};
use crate::management::types::CanisterIdRecord;
use cairn_state::canister_state::CanisterStatus;
use cairn_state::{CanisterState, ReplicatedState};
use cairn_types::messages::{RejectContext, WasmResult};
use cairn_types::{CanisterId, Cycles, ErrorCode, Principal, RejectCode, UserError};
use cairn_wasm::{ApiInputs, ApiResponse, Context, FuncRef, HypervisorError, OutgoingCall};
use candid::Decode;
use std::collections::{BTreeMap, VecDeque};

/// A query from a user.
#[derive(Clone, Debug)]
pub struct Query {
    pub source: Principal,
    pub receiver: CanisterId,
    pub method_name: String,
    pub method_payload: Vec<u8>,
}

/// State of one composite query call graph.
struct Graph<'a> {
    state: &'a ReplicatedState,
    /// Query-local copies of the canisters touched so far.
    local: BTreeMap<CanisterId, CanisterState>,
    instructions_left: u64,
    stack: Vec<CanisterId>,
}

impl Graph<'_> {
    fn canister(&mut self, id: &CanisterId) -> Result<CanisterState, UserError> {
        if let Some(c) = self.local.get(id) {
            return Ok(c.clone());
        }
        self.state
            .canisters
            .get(id)
            .cloned()
            .ok_or_else(|| UserError::new(ErrorCode::CanisterNotFound, format!("Canister {id} not found")))
    }

    fn charge(&mut self, used: u64) -> Result<(), UserError> {
        self.instructions_left = self.instructions_left.saturating_sub(used);
        if self.instructions_left == 0 {
            return Err(UserError::new(
                ErrorCode::QueryCallGraphTotalInstructionLimitExceeded,
                "Composite query calls exceeded the instruction limit.",
            ));
        }
        Ok(())
    }
}

fn to_result(r: ApiResponse) -> WasmResult {
    match r {
        ApiResponse::Reply(d) => WasmResult::Reply(d),
        ApiResponse::Reject(m) => WasmResult::Reject(m),
    }
}

impl ExecutionEnvironment {
    /// Answers a query against `state`. `data_certificate` is handed to the
    /// called canister (not to canisters it calls).
    pub fn execute_query(
        &mut self,
        state: &ReplicatedState,
        query: Query,
        data_certificate: Option<Vec<u8>>,
    ) -> Result<WasmResult, UserError> {
        if query.receiver.is_management() {
            return self.management_query(state, &query);
        }
        let mut graph = Graph {
            state,
            local: BTreeMap::new(),
            instructions_left: self.config.max_instructions_per_composite_query,
            stack: Vec::new(),
        };
        self.query_call(
            &mut graph,
            query.receiver,
            &query.method_name,
            query.method_payload,
            query.source,
            data_certificate,
            0,
        )
    }

    fn management_query(&mut self, state: &ReplicatedState, query: &Query) -> Result<WasmResult, UserError> {
        let bytes = match query.method_name.as_str() {
            "canister_status" => {
                let args = Decode!(&query.method_payload, CanisterIdRecord).map_err(|e| {
                    UserError::new(
                        ErrorCode::InvalidManagementPayload,
                        format!("Error decoding candid for method canister_status: {e}"),
                    )
                })?;
                Self::canister_status(state, &args.canister_id, &query.source)?
            }
            "fetch_canister_logs" => Self::fetch_canister_logs(state, &query.method_payload, &query.source)?,
            "list_canisters" => Self::list_canisters(state, &query.source)?,
            m => {
                return Err(UserError::new(
                    ErrorCode::CanisterMethodNotFound,
                    format!("Management canister has no query method '{m}'"),
                ));
            }
        };
        Ok(WasmResult::Reply(bytes))
    }

    /// Checks that a canister can answer queries now.
    fn query_preconditions(&self, state: &ReplicatedState, canister: &CanisterState) -> Result<(), UserError> {
        let id = canister.id();
        if canister.execution_state.is_none() {
            return Err(HypervisorError::WasmModuleNotFound.into_user_error(&id));
        }
        match canister.system_state.status {
            CanisterStatus::Running => {}
            CanisterStatus::Stopping { .. } => {
                return Err(UserError::new(ErrorCode::CanisterStopping, format!("Canister {id} is stopping")));
            }
            CanisterStatus::Stopped => {
                return Err(UserError::new(ErrorCode::CanisterStopped, format!("Canister {id} is stopped")));
            }
        }
        let costs = costs(&state.metadata);
        if canister.system_state.cycles_balance < cycles::freezing_limit(&costs, canister) {
            return Err(UserError::new(
                ErrorCode::CanisterOutOfCycles,
                format!(
                    "Canister {id} is unable to process query calls because it's frozen. Please top up the canister with cycles and try again."
                ),
            ));
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn query_call(
        &mut self,
        graph: &mut Graph,
        id: CanisterId,
        method: &str,
        arg: Vec<u8>,
        caller: Principal,
        data_certificate: Option<Vec<u8>>,
        depth: usize,
    ) -> Result<WasmResult, UserError> {
        if graph.stack.contains(&id) {
            return Err(UserError::new(
                ErrorCode::QueryCallGraphLoopDetected,
                "Query calls re-entering the same canister are not allowed yet.",
            ));
        }
        if depth > MAX_QUERY_CALL_DEPTH {
            return Err(UserError::new(
                ErrorCode::QueryCallGraphTooDeep,
                "Composite query calls exceeded the maximum call depth.",
            ));
        }
        let mut canister = graph.canister(&id)?;
        self.query_preconditions(graph.state, &canister)?;
        let exec = canister.execution_state.as_ref().expect("checked");
        let (context, export) = if exec.exports.queries.contains(method) {
            (Context::NonReplicatedQuery, format!("canister_query {method}"))
        } else if exec.exports.composite_queries.contains(method) {
            (Context::CompositeQuery, format!("canister_composite_query {method}"))
        } else {
            return Err(
                HypervisorError::MethodNotFound { kind: "query", name: method.to_string() }.into_user_error(&id)
            );
        };
        let limit = graph.instructions_left.min(self.config.max_instructions_per_query);
        let inputs = ApiInputs { caller, arg, data_certificate, ..Default::default() };
        let composite = context == Context::CompositeQuery;
        let run = Run {
            context,
            inputs,
            func: FuncRef::Export(export),
            limit,
            commit: composite,
            call_context_instructions: 0,
        };
        let balance = canister.system_state.cycles_balance;
        let meta = &graph.state.metadata;
        let out = self.run(meta, &canister, balance, run);
        out.result.map_err(|e| e.into_user_error(&id))?;
        graph.charge(out.instructions)?;
        let mut response = out.api.response.clone();
        if !composite {
            return response.map(to_result).ok_or_else(|| did_not_respond(&id));
        }
        if let Some(c) = out.committed {
            apply_committed(&mut canister, c);
        }
        graph.local.insert(id, canister);
        graph.stack.push(id);
        let mut pending: VecDeque<OutgoingCall> = out.api.performed_calls.into();
        let result = (|| {
            while let Some(call) = pending.pop_front() {
                let callee_result = if call.callee.is_management() {
                    let q = Query {
                        source: id.get(),
                        receiver: call.callee,
                        method_name: call.method_name.clone(),
                        method_payload: call.payload.clone(),
                    };
                    self.management_query(graph.state, &q)
                } else {
                    self.query_call(
                        graph,
                        call.callee,
                        &call.method_name,
                        call.payload.clone(),
                        id.get(),
                        None,
                        depth + 1,
                    )
                };
                let (ctx, closure, arg, reject) = match callee_result {
                    Ok(WasmResult::Reply(d)) => (Context::CompositeReplyCallback, call.on_reply, d, None),
                    Ok(WasmResult::Reject(m)) => (
                        Context::CompositeRejectCallback,
                        call.on_reject,
                        Vec::new(),
                        Some(RejectContext::new(RejectCode::CanisterReject, m)),
                    ),
                    Err(e) => (
                        Context::CompositeRejectCallback,
                        call.on_reject,
                        Vec::new(),
                        Some(RejectContext::new(e.reject_code(), e.to_string())),
                    ),
                };
                let mut canister = graph.canister(&id)?;
                let inputs = ApiInputs {
                    caller,
                    arg,
                    reject: reject.clone(),
                    responded: response.is_some(),
                    ..Default::default()
                };
                let limit = graph.instructions_left.min(self.config.max_instructions_per_query);
                let run = Run {
                    context: ctx,
                    inputs,
                    func: FuncRef::Closure(closure),
                    limit,
                    commit: true,
                    call_context_instructions: 0,
                };
                let out = self.run(&graph.state.metadata, &canister, Cycles::ZERO, run);
                graph.charge(out.instructions)?;
                match out.result {
                    Ok(()) => {
                        if let Some(c) = out.committed {
                            apply_committed(&mut canister, c);
                        }
                        if response.is_none() {
                            response = out.api.response;
                        }
                        pending.extend(out.api.performed_calls);
                    }
                    Err(e) => {
                        if let Some(cleanup) = call.on_cleanup {
                            let inputs = ApiInputs { caller, reject, responded: true, ..Default::default() };
                            let run = Run {
                                context: Context::CompositeCleanup,
                                inputs,
                                func: FuncRef::Closure(cleanup),
                                limit,
                                commit: true,
                                call_context_instructions: 0,
                            };
                            let out = self.run(&graph.state.metadata, &canister, Cycles::ZERO, run);
                            graph.charge(out.instructions)?;
                            if let (Ok(()), Some(c)) = (out.result, out.committed) {
                                apply_committed(&mut canister, c);
                            }
                        }
                        if response.is_none() {
                            graph.local.insert(id, canister);
                            return Err(e.into_user_error(&id));
                        }
                    }
                }
                graph.local.insert(id, canister);
            }
            response.map(to_result).ok_or_else(|| did_not_respond(&id))
        })();
        graph.stack.pop();
        result
    }
}

fn did_not_respond(id: &CanisterId) -> UserError {
    UserError::new(ErrorCode::CanisterDidNotReply, format!("Canister {id} did not produce a response"))
}
