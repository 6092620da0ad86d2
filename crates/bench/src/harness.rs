//! A canister driven directly through the engine ([`Sandbox::execute`]),
//! without the execution layer: the state is kept here exactly as the
//! execution layer keeps it (heap page map, stable memory, globals), and
//! committed executions replace it.

use cairn_state::PageMap;
use cairn_state::canister_state::GlobalValue;
use cairn_state::page_map::Memory;
use cairn_types::{CanisterId, CostSchedule, Cycles, Principal, SubnetId, Time};
use cairn_wasm::{
    ApiEnvironment, ApiInputs, ApiResponse, CanisterMemories, CommitStats, CompiledModule, Context, ExecutionInput,
    FuncRef, HypervisorError, Sandbox, SystemApi, WasmEngine,
};
use cairn_wasm_module::ModuleLimits;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The instruction limit of an update message on the IC.
pub const UPDATE_LIMIT: u64 = 40_000_000_000;

/// A new engine with Cairn's default limits.
pub fn engine() -> WasmEngine {
    WasmEngine::new(ModuleLimits::default()).expect("the engine starts")
}

fn environment() -> ApiEnvironment {
    ApiEnvironment {
        canister_id: CanisterId::from_u64(1),
        subnet_id: SubnetId(Principal::self_authenticating(b"cairn-bench-subnet")),
        controllers: Default::default(),
        time: Time::from_secs(1_750_000_000),
        status: 1,
        canister_version: 1,
        root_key: vec![],
        environment_variables: Default::default(),
        costs: CostSchedule::for_subnet_size(13),
        freezing_limit: Cycles::ZERO,
        reserved_balance: Cycles::ZERO,
        max_reply_size: 2 << 20,
        global_timer: None,
        call_context_instructions: 0,
    }
}

/// What one execution did.
#[derive(Debug)]
pub struct Outcome {
    pub result: Result<(), HypervisorError>,
    pub instructions: u64,
    pub reply: Option<Vec<u8>>,
    /// Commit statistics (dirty pages) if the execution was committed.
    pub commit: Option<CommitStats>,
}

/// One canister: a sandbox plus the state the execution layer would keep.
pub struct DirectCanister {
    pub module: Arc<CompiledModule>,
    sandbox: Sandbox,
    heap: Memory,
    stable: Memory,
    globals: Vec<GlobalValue>,
}

impl DirectCanister {
    /// Compiles (or takes from the cache) `wasm`, builds the initial state the
    /// way `install_code` does (data segments written host-side), and runs
    /// the start function and `canister_init` if present.
    pub fn install(engine: &WasmEngine, wasm: &[u8]) -> DirectCanister {
        let hash: [u8; 32] = Sha256::digest(wasm).into();
        let module = engine.compile(wasm, hash).expect("module compiles");
        let mut page_map = PageMap::new();
        for (offset, bytes) in &module.instrumented.data_segments {
            page_map.write(*offset, bytes);
        }
        let heap = Memory { page_map, size_wasm_pages: module.info.memory.map_or(0, |m| m.initial_pages) };
        let globals = module.initial_globals.clone();
        let sandbox = engine.new_sandbox(module.clone()).expect("sandbox");
        let mut c = DirectCanister { module: module.clone(), sandbox, heap, stable: Memory::default(), globals };
        if module.instrumented.has_start {
            c.execute(Context::Start, FuncRef::Start, &[], true).result.expect("start runs");
        }
        if module.exported_methods().init {
            c.execute(Context::Init, FuncRef::Export("canister_init".into()), &candid_empty(), true)
                .result
                .expect("canister_init runs");
        }
        c
    }

    /// Runs `canister_update <method>` with `arg`, committing on success.
    pub fn update(&mut self, method: &str, arg: &[u8]) -> Outcome {
        self.execute(Context::Update, FuncRef::Export(format!("canister_update {method}")), arg, true)
    }

    /// Runs one function with a fresh System API, like the execution layer's `run`.
    pub fn execute(&mut self, context: Context, func: FuncRef, arg: &[u8], commit: bool) -> Outcome {
        let inputs = ApiInputs { caller: Principal::ANONYMOUS, arg: arg.to_vec(), ..Default::default() };
        let api = SystemApi::new(context, inputs, environment(), Cycles::new(1 << 60), self.stable.clone());
        let memories = CanisterMemories { wasm_memory: &self.heap, globals: &self.globals };
        let out = self.sandbox.execute(
            &memories,
            ExecutionInput { api, func, instruction_limit: UPDATE_LIMIT, wasm_memory_limit: Some(3 << 30), commit },
        );
        let mut stats = None;
        if let Some(c) = out.committed {
            stats = Some(c.stats);
            self.heap = c.wasm_memory;
            self.stable = c.stable_memory;
            self.globals = c.globals;
        }
        let reply = match &out.api.response {
            Some(ApiResponse::Reply(bytes)) => Some(bytes.clone()),
            _ => None,
        };
        Outcome { result: out.result, instructions: out.instructions_used, reply, commit: stats }
    }

    /// Pages stored in the heap's page map.
    pub fn stored_heap_pages(&self) -> usize {
        self.heap.page_map.num_stored_pages()
    }

    /// The heap as the execution layer would store it.
    pub fn heap(&self) -> &Memory {
        &self.heap
    }

    /// The saved globals (for a Rust canister, the first is `__stack_pointer`).
    pub fn globals(&self) -> &[GlobalValue] {
        &self.globals
    }

    /// Heap size in bytes.
    pub fn heap_bytes(&self) -> u64 {
        self.heap.size_bytes()
    }
}

/// The Candid encoding of no arguments (`DIDL\0\0`).
pub fn candid_empty() -> Vec<u8> {
    candid::encode_args(()).expect("encodes")
}
