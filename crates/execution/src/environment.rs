//! The execution environment: the Wasm engine plus the node-local cache of
//! sandboxes, and the one primitive everything else is built on — running a
//! function of a canister with a System API.

use crate::config::ExecutionConfig;
use crate::cycles;
use cairn_state::{CanisterState, SystemMetadata};
use cairn_types::fees::{MAX_QUERY_REPLY_SIZE, MAX_REPLY_SIZE};
use cairn_types::{CanisterId, CostSchedule, Cycles, Time};
use cairn_wasm::{
    ApiEnvironment, ApiInputs, CanisterMemories, CommittedState, Context, ExecutionInput, FuncRef, HypervisorError,
    Sandbox, SystemApi, WasmEngine,
};
use std::collections::HashMap;
use std::sync::Arc;

/// Live sandboxes kept at most. Each reserves about 10 GiB of address space
/// (heap reservation plus guard), so the cache is bounded; an evicted
/// canister gets a new sandbox on its next message (instantiation plus a
/// full copy of its heap from the page map).
pub const MAX_SANDBOXES: usize = 1_000;

/// Runs canister code. One per node; holds no replicated state itself.
pub struct ExecutionEnvironment {
    pub(crate) engine: Arc<WasmEngine>,
    /// Sandboxes with the tick of their last use (node-local, never hashed).
    sandboxes: HashMap<CanisterId, (Sandbox, u64)>,
    use_counter: u64,
    pub(crate) config: ExecutionConfig,
}

/// One function to run.
pub(crate) struct Run {
    pub context: Context,
    pub inputs: ApiInputs,
    pub func: FuncRef,
    pub limit: u64,
    /// Keep memory changes (false for queries and replicated queries).
    pub commit: bool,
    pub call_context_instructions: u64,
}

/// What running a function produced.
pub(crate) struct RunOutcome {
    pub api: SystemApi,
    pub result: Result<(), HypervisorError>,
    pub instructions: u64,
    pub committed: Option<CommittedState>,
}

/// The fee schedule of a subnet.
pub(crate) fn costs(meta: &SystemMetadata) -> CostSchedule {
    CostSchedule::for_subnet_size(meta.cost_subnet_size)
}

impl ExecutionEnvironment {
    /// A new environment with its own engine.
    pub fn new(config: ExecutionConfig) -> Result<Self, HypervisorError> {
        let engine = Arc::new(WasmEngine::new(config.module_limits.clone())?);
        Ok(Self::with_engine(config, engine))
    }

    /// An environment sharing another's engine (and so its compiled-module
    /// cache): the node runs one for replicated execution and one per query
    /// thread, each with its own sandboxes.
    pub fn with_engine(config: ExecutionConfig, engine: Arc<WasmEngine>) -> Self {
        ExecutionEnvironment { engine, sandboxes: HashMap::new(), use_counter: 0, config }
    }

    /// The shared engine.
    pub fn shared_engine(&self) -> Arc<WasmEngine> {
        self.engine.clone()
    }

    /// The limits in force.
    pub fn config(&self) -> &ExecutionConfig {
        &self.config
    }

    /// The Wasm engine (for its compilation cache statistics).
    pub fn engine(&self) -> &WasmEngine {
        &self.engine
    }

    /// Forgets a canister's sandbox (after uninstall or delete).
    pub(crate) fn drop_sandbox(&mut self, id: &CanisterId) {
        self.sandboxes.remove(id);
    }

    /// The sandbox for a canister's installed module, created if missing or outdated.
    pub(crate) fn sandbox(&mut self, canister: &CanisterState) -> Result<&mut Sandbox, HypervisorError> {
        let exec = canister.execution_state.as_ref().ok_or(HypervisorError::WasmModuleNotFound)?;
        let id = canister.id();
        self.use_counter += 1;
        let fresh = match self.sandboxes.get(&id) {
            Some((sb, _)) => sb.module().hash != exec.wasm_binary.hash,
            None => true,
        };
        if fresh {
            let module = self.engine.compile(&exec.wasm_binary.bytes, exec.wasm_binary.hash)?;
            let sandbox = self.engine.new_sandbox(module)?;
            if self.sandboxes.len() >= MAX_SANDBOXES && !self.sandboxes.contains_key(&id) {
                let oldest = self.sandboxes.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| *k);
                if let Some(oldest) = oldest {
                    self.sandboxes.remove(&oldest);
                }
            }
            self.sandboxes.insert(id, (sandbox, 0));
        }
        let entry = self.sandboxes.get_mut(&id).expect("just inserted");
        entry.1 = self.use_counter;
        Ok(&mut entry.0)
    }

    /// The System API environment of a canister.
    pub(crate) fn api_environment(
        meta: &SystemMetadata,
        canister: &CanisterState,
        context: Context,
        call_context_instructions: u64,
    ) -> ApiEnvironment {
        let s = &canister.system_state;
        let costs = costs(meta);
        ApiEnvironment {
            canister_id: canister.id(),
            subnet_id: meta.own_subnet_id,
            controllers: s.controllers.clone(),
            time: meta.batch_time.max(s.last_observed_time),
            status: s.status.as_ic0(),
            canister_version: s.canister_version,
            root_key: meta.root_key.clone(),
            environment_variables: s.settings.environment_variables.clone(),
            costs,
            freezing_limit: cycles::freezing_limit(&costs, canister) + s.reserved_balance,
            reserved_balance: s.reserved_balance,
            max_reply_size: if context.is_replicated() { MAX_REPLY_SIZE } else { MAX_QUERY_REPLY_SIZE },
            global_timer: s.global_timer,
            call_context_instructions,
        }
    }

    /// Runs one function of `canister`, with `balance` as the balance the code sees.
    pub(crate) fn run(
        &mut self,
        meta: &SystemMetadata,
        canister: &CanisterState,
        balance: Cycles,
        run: Run,
    ) -> RunOutcome {
        let env = Self::api_environment(meta, canister, run.context, run.call_context_instructions);
        let stable = canister.execution_state.as_ref().map(|e| e.stable_memory.clone()).unwrap_or_default();
        let api = SystemApi::new(run.context, run.inputs, env, balance, stable);
        let wasm_memory_limit = match run.context {
            Context::Update | Context::Init | Context::PostUpgrade => {
                Some(canister.system_state.settings.wasm_memory_limit).filter(|l| *l > 0)
            }
            _ => None,
        };
        let sandbox = match self.sandbox(canister) {
            Ok(sb) => sb,
            Err(e) => {
                return RunOutcome { api, result: Err(e), instructions: 0, committed: None };
            }
        };
        let exec = canister.execution_state.as_ref().expect("sandbox exists only with a module");
        let memories = CanisterMemories { wasm_memory: &exec.wasm_memory, globals: &exec.exported_globals };
        let out = sandbox.execute(
            &memories,
            ExecutionInput { api, func: run.func, instruction_limit: run.limit, wasm_memory_limit, commit: run.commit },
        );
        RunOutcome { api: out.api, result: out.result, instructions: out.instructions_used, committed: out.committed }
    }
}

/// Applies a committed execution's memories and globals to the canister.
pub(crate) fn apply_committed(canister: &mut CanisterState, committed: CommittedState) {
    if let Some(exec) = canister.execution_state.as_mut() {
        exec.wasm_memory = committed.wasm_memory;
        exec.stable_memory = committed.stable_memory;
        exec.exported_globals = committed.globals;
    }
}

/// Appends log records of an execution, plus the trap record if it failed.
pub(crate) fn append_logs(canister: &mut CanisterState, time: Time, api: &SystemApi, error: Option<&HypervisorError>) {
    for line in &api.logs {
        canister.system_state.log.append(time.as_nanos(), line.clone());
    }
    if let Some(text) = error.and_then(|e| e.log_text()) {
        canister.system_state.log.append(time.as_nanos(), text.into_bytes());
    }
}
