//! The wasmtime embedding: deterministic configuration, a compiled-module
//! cache, and per-canister sandboxes that keep an instance alive between
//! messages.
//!
//! A [`Sandbox`] holds a live instance whose memory and globals equal some
//! version of a canister's state. Executing a message on that same version
//! needs no instantiation and no copying; executing on another version first
//! applies the difference ([`PageMap::diff`]). Successful executions are
//! committed into a new version (O(pages touched)); failed ones, and all
//! queries, are rolled back.

use crate::error::HypervisorError;
use crate::linker::add_system_api;
use crate::memory::{CairnMemoryCreator, CommitStats, TrackedMemory, reuse_next, take_last_created};
use crate::system_api::SystemApi;
use cairn_state::WasmClosure;
use cairn_state::canister_state::{CustomSection, ExportedMethods, GlobalValue};
use cairn_state::page_map::{Memory, PageMap, WASM_PAGE_SIZE};
use cairn_wasm_module::{InstrumentedModule, ModuleInfo, ModuleLimits, SystemMethod, ValType, Visibility};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::{
    Config, Engine, Extern, Global, Instance, InstancePre, Linker, OptLevel, ResourceLimiter, Store, Table, Trap, Val,
};

/// Largest Wasm stack a canister may use (the IC's 5 MiB).
pub const MAX_WASM_STACK: usize = 5 * 1024 * 1024;
/// Largest heap of a wasm32 canister.
pub const MAX_WASM32_HEAP: u64 = 4 << 30;
/// Largest heap of a wasm64 canister.
pub const MAX_WASM64_HEAP: u64 = 6 << 30;
/// Native stack the execution thread needs: the Wasm stack plus room for host code.
pub const EXECUTION_THREAD_STACK: usize = MAX_WASM_STACK + 16 * 1024 * 1024;

thread_local! {
    /// Set on threads whose native stack is large enough for Wasm execution.
    static EXECUTION_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Spawns a thread with a native stack large enough to run canister code
/// (the Wasm stack limit plus headroom for host functions).
pub fn spawn_execution_thread<F, T>(name: String, f: F) -> std::io::Result<std::thread::JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    std::thread::Builder::new().name(name).stack_size(EXECUTION_THREAD_STACK).spawn(move || {
        EXECUTION_THREAD.set(true);
        f()
    })
}

/// Runs `f` on a thread with an execution-sized stack: directly if the
/// current thread is one, otherwise on a temporary scoped thread (slower, but
/// callers such as tests need not care about stack sizes).
pub fn with_execution_stack<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if EXECUTION_THREAD.get() {
        return f();
    }
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .stack_size(EXECUTION_THREAD_STACK)
            .spawn_scoped(scope, || {
                EXECUTION_THREAD.set(true);
                f()
            })
            .expect("spawning an execution thread");
        handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Which function an execution runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FuncRef {
    /// An exported function, e.g. `canister_update inc`.
    Export(String),
    /// The module's former start function.
    Start,
    /// A callback: a function in table 0 called with its environment value.
    Closure(WasmClosure),
}

/// The part of a canister's execution state the sandbox must match.
pub struct CanisterMemories<'a> {
    pub wasm_memory: &'a Memory,
    pub globals: &'a [GlobalValue],
}

/// What to run and with which limits.
pub struct ExecutionInput {
    pub api: SystemApi,
    pub func: FuncRef,
    pub instruction_limit: u64,
    /// `wasm_memory_limit` in bytes, enforced on growth (`None` = only the engine maximum).
    pub wasm_memory_limit: Option<u64>,
    /// Keep the changes (false for queries: everything is rolled back).
    pub commit: bool,
}

/// The new memories and globals of a committed execution.
#[derive(Clone, Debug)]
pub struct CommittedState {
    pub wasm_memory: Memory,
    pub stable_memory: Memory,
    pub globals: Vec<GlobalValue>,
    pub stats: CommitStats,
}

/// The result of one execution.
pub struct ExecutionOutput {
    /// The System API state with everything the execution did.
    pub api: SystemApi,
    pub result: Result<(), HypervisorError>,
    pub instructions_used: u64,
    /// Present iff the execution succeeded and `commit` was set.
    pub committed: Option<CommittedState>,
    /// Peak Wasm memory size in bytes during the execution.
    pub wasm_memory_size: u64,
}

/// Data wasmtime keeps in each store.
pub struct HostState {
    pub(crate) api: Option<SystemApi>,
    pub(crate) memory: Option<wasmtime::Memory>,
    pub(crate) instruction_limit: u64,
    max_heap: u64,
    wasm_memory_limit: Option<u64>,
}

impl HostState {
    pub(crate) fn api(&mut self) -> &mut SystemApi {
        self.api.as_mut().expect("an execution is in progress")
    }
}

impl ResourceLimiter for HostState {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let desired = desired as u64;
        if desired > self.max_heap {
            return Ok(false);
        }
        if let Some(limit) = self.wasm_memory_limit
            && desired > limit
        {
            return Err(HypervisorError::WasmMemoryLimitExceeded { used: desired, limit }.into());
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// A validated, instrumented and compiled module, shared by every canister running it.
pub struct CompiledModule {
    pub hash: [u8; 32],
    pub info: ModuleInfo,
    pub instrumented: InstrumentedModuleMeta,
    instance_pre: InstancePre<HostState>,
    /// Values of the saved globals right after instantiation (their initializers).
    pub initial_globals: Vec<GlobalValue>,
    /// How long compilation took (for metrics and benchmarks).
    pub compile_time: Duration,
}

/// What the engine needs from [`InstrumentedModule`] after compilation.
pub struct InstrumentedModuleMeta {
    pub data_segments: Vec<(u64, Vec<u8>)>,
    pub exported_globals: Vec<(String, ValType)>,
    pub has_start: bool,
    pub memory64: bool,
    pub has_memory: bool,
}

impl CompiledModule {
    /// The methods the module exports.
    pub fn exported_methods(&self) -> ExportedMethods {
        let s = &self.info.system_methods;
        ExportedMethods {
            updates: self.info.update_methods.clone(),
            queries: self.info.query_methods.clone(),
            composite_queries: self.info.composite_query_methods.clone(),
            init: s.contains(&SystemMethod::Init),
            pre_upgrade: s.contains(&SystemMethod::PreUpgrade),
            post_upgrade: s.contains(&SystemMethod::PostUpgrade),
            inspect_message: s.contains(&SystemMethod::InspectMessage),
            heartbeat: s.contains(&SystemMethod::Heartbeat),
            global_timer: s.contains(&SystemMethod::GlobalTimer),
            on_low_wasm_memory: s.contains(&SystemMethod::OnLowWasmMemory),
        }
    }

    /// The module's `icp:` custom sections, keyed by name without the visibility prefix.
    pub fn metadata(&self) -> BTreeMap<String, CustomSection> {
        self.info
            .custom_sections
            .iter()
            .map(|(name, s)| {
                (name.clone(), CustomSection { public: s.visibility == Visibility::Public, content: s.content.clone() })
            })
            .collect()
    }

    /// Whether the module uses 64-bit memory.
    pub fn memory64(&self) -> bool {
        self.instrumented.memory64
    }
}

/// The engine: one per node.
pub struct WasmEngine {
    engine: Engine,
    linker32: Linker<HostState>,
    linker64: Linker<HostState>,
    modules: Mutex<HashMap<[u8; 32], Arc<CompiledModule>>>,
    limits: ModuleLimits,
}

/// Fuel costs approximating the IC's instruction costs per operator.
fn operator_costs() -> wasmtime::OperatorCost {
    let mut c = wasmtime::OperatorCost::new();
    for div in [&mut c.I32DivS, &mut c.I32DivU, &mut c.I32RemS, &mut c.I32RemU] {
        *div = 10;
    }
    for div in [&mut c.I64DivS, &mut c.I64DivU, &mut c.I64RemS, &mut c.I64RemU] {
        *div = 10;
    }
    c.GlobalGet = 2;
    c.GlobalSet = 2;
    c.If = 2;
    c.Br = 2;
    c.BrIf = 2;
    c.BrTable = 2;
    c.Call = 5;
    c.CallIndirect = 10;
    c.MemoryGrow = 255;
    c.MemorySize = 20;
    c.TableGrow = 255;
    c.TableSize = 100;
    c.DataDrop = 255;
    c.ElemDrop = 255;
    c.RefFunc = 130;
    for bulk in
        [&mut c.MemoryCopy, &mut c.MemoryFill, &mut c.MemoryInit, &mut c.TableCopy, &mut c.TableFill, &mut c.TableInit]
    {
        *bulk = 100;
    }
    c
}

impl WasmEngine {
    /// An engine with Cairn's deterministic configuration.
    pub fn new(limits: ModuleLimits) -> Result<Self, HypervisorError> {
        let mut config = Config::new();
        config
            .consume_fuel(true)
            .operator_cost(operator_costs())
            .cranelift_nan_canonicalization(true)
            .cranelift_opt_level(OptLevel::Speed)
            .wasm_simd(true)
            .wasm_relaxed_simd(false)
            .wasm_bulk_memory(true)
            .wasm_multi_value(true)
            .wasm_memory64(true)
            .wasm_multi_memory(false)
            .wasm_tail_call(false)
            .wasm_extended_const(false)
            .wasm_wide_arithmetic(false)
            .wasm_custom_page_sizes(false)
            .wasm_backtrace_max_frames(None)
            .async_stack_size(MAX_WASM_STACK + (1 << 20))
            .max_wasm_stack(MAX_WASM_STACK)
            .memory_reservation(MAX_WASM64_HEAP.next_power_of_two())
            .memory_guard_size(2 << 30)
            .memory_may_move(false)
            .memory_init_cow(false)
            .parallel_compilation(true)
            .with_host_memory(Arc::new(CairnMemoryCreator));
        let engine = Engine::new(&config).map_err(|e| HypervisorError::EngineError(e.to_string()))?;
        let mut linker32 = Linker::new(&engine);
        let mut linker64 = Linker::new(&engine);
        add_system_api(&mut linker32, false).map_err(|e| HypervisorError::EngineError(e.to_string()))?;
        add_system_api(&mut linker64, true).map_err(|e| HypervisorError::EngineError(e.to_string()))?;
        Ok(WasmEngine { engine, linker32, linker64, modules: Mutex::new(HashMap::new()), limits })
    }

    /// Validates, instruments and compiles a module as uploaded (raw or gzipped),
    /// or returns the cached result for the same bytes.
    pub fn compile(&self, wasm: &[u8], hash: [u8; 32]) -> Result<Arc<CompiledModule>, HypervisorError> {
        if let Some(m) = self.modules.lock().get(&hash) {
            return Ok(m.clone());
        }
        let started = Instant::now();
        let (info, instrumented) =
            cairn_wasm_module::prepare(wasm, &self.limits).map_err(|e| HypervisorError::InvalidWasm(e.to_string()))?;
        let module = wasmtime::Module::new(&self.engine, &instrumented.bytes)
            .map_err(|e| HypervisorError::InvalidWasm(format!("compilation failed: {e}")))?;
        let linker = if instrumented.memory64 { &self.linker64 } else { &self.linker32 };
        let instance_pre = linker.instantiate_pre(&module).map_err(|e| HypervisorError::InvalidWasm(e.to_string()))?;
        let meta = meta_of(&instrumented);
        let initial_globals = Self::initial_globals(&self.engine, &instance_pre, &meta)?;
        let compiled = Arc::new(CompiledModule {
            hash,
            info,
            instrumented: meta,
            instance_pre,
            initial_globals,
            compile_time: started.elapsed(),
        });
        self.modules.lock().insert(hash, compiled.clone());
        Ok(compiled)
    }

    /// Instantiates once in a throwaway store to read the globals' initial values.
    fn initial_globals(
        engine: &Engine,
        instance_pre: &InstancePre<HostState>,
        meta: &InstrumentedModuleMeta,
    ) -> Result<Vec<GlobalValue>, HypervisorError> {
        let mut store = Store::new(
            engine,
            HostState {
                api: None,
                memory: None,
                instruction_limit: 0,
                max_heap: MAX_WASM64_HEAP,
                wasm_memory_limit: None,
            },
        );
        store.set_fuel(u64::MAX / 2).map_err(engine_error)?;
        let instance = instance_pre.instantiate(&mut store).map_err(|e| HypervisorError::InvalidWasm(e.to_string()))?;
        let _ = take_last_created();
        let mut values = Vec::with_capacity(meta.exported_globals.len());
        for (name, _) in &meta.exported_globals {
            let g =
                instance.get_global(&mut store, name).ok_or_else(|| engine_error(format!("global {name} missing")))?;
            values.push(global_value(g.get(&mut store)));
        }
        Ok(values)
    }

    /// Number of modules in the compilation cache.
    pub fn cached_modules(&self) -> usize {
        self.modules.lock().len()
    }

    /// A new sandbox for a module: a fresh instance with zeroed memory.
    pub fn new_sandbox(&self, module: Arc<CompiledModule>) -> Result<Sandbox, HypervisorError> {
        Sandbox::new(&self.engine, module)
    }
}

fn meta_of(m: &InstrumentedModule) -> InstrumentedModuleMeta {
    InstrumentedModuleMeta {
        data_segments: m.data_segments.clone(),
        exported_globals: m.exported_globals.iter().map(|g| (g.export_name.clone(), g.ty)).collect(),
        has_start: m.has_start,
        memory64: m.memory64,
        has_memory: m.has_memory,
    }
}

/// The version of canister state a sandbox currently holds.
struct Synced {
    heap: PageMap,
    heap_pages: u64,
    globals: Vec<GlobalValue>,
}

/// A live instance of a module, bound to one canister.
pub struct Sandbox {
    engine: Engine,
    module: Arc<CompiledModule>,
    store: Store<HostState>,
    instance: Instance,
    memory: Option<TrackedMemory>,
    globals: Vec<Global>,
    table: Option<Table>,
    synced: Option<Synced>,
    funcs: HashMap<String, wasmtime::TypedFunc<(), ()>>,
}

fn engine_error(e: impl std::fmt::Display) -> HypervisorError {
    HypervisorError::EngineError(e.to_string())
}

impl Sandbox {
    fn new(engine: &Engine, module: Arc<CompiledModule>) -> Result<Self, HypervisorError> {
        Self::instantiate(engine, module, None)
    }

    /// A new store and instance of `module`; with `reuse`, around an existing
    /// memory instead of a fresh one (its contents and size are kept).
    fn instantiate(
        engine: &Engine,
        module: Arc<CompiledModule>,
        reuse: Option<TrackedMemory>,
    ) -> Result<Self, HypervisorError> {
        let max_heap = if module.instrumented.memory64 { MAX_WASM64_HEAP } else { MAX_WASM32_HEAP };
        let mut store = Store::new(
            engine,
            HostState { api: None, memory: None, instruction_limit: 0, max_heap, wasm_memory_limit: None },
        );
        store.limiter(|s| s as &mut dyn ResourceLimiter);
        store.set_fuel(u64::MAX / 2).map_err(engine_error)?;
        let _ = take_last_created();
        if let Some(m) = reuse {
            reuse_next(m);
        }
        let instance =
            module.instance_pre.instantiate(&mut store).map_err(|e| HypervisorError::InvalidWasm(e.to_string()))?;
        let memory = take_last_created();
        let wasm_memory = instance.get_memory(&mut store, cairn_wasm_module::MEMORY_EXPORT);
        if module.instrumented.has_memory != wasm_memory.is_some() || wasm_memory.is_some() != memory.is_some() {
            return Err(engine_error("the module's memory was not created by Cairn's memory creator"));
        }
        store.data_mut().memory = wasm_memory;
        if let Some(tracked) = memory.clone() {
            let inner = tracked.0.clone();
            // SAFETY: the handler only inspects the fault address and adjusts
            // the protection of pages inside this store's own memory.
            unsafe {
                wasmtime::unix::StoreExt::set_signal_handler(&mut store, move |signum, info, _context| {
                    if signum != libc::SIGSEGV && signum != libc::SIGBUS {
                        return false;
                    }
                    let addr = (*info).si_addr() as usize;
                    inner.handle_fault(addr)
                });
            }
        }
        let mut globals = Vec::with_capacity(module.instrumented.exported_globals.len());
        for (name, _) in &module.instrumented.exported_globals {
            globals.push(
                instance.get_global(&mut store, name).ok_or_else(|| engine_error(format!("global {name} missing")))?,
            );
        }
        let table = instance.get_table(&mut store, TABLE_EXPORT);
        Ok(Sandbox {
            engine: engine.clone(),
            module,
            store,
            instance,
            memory,
            globals,
            table,
            synced: None,
            funcs: HashMap::new(),
        })
    }

    /// Re-instantiates around the same memory so wasmtime learns its current
    /// size. Needed after the size changed outside Wasm (syncing to another
    /// version, rolling back a grow): wasmtime has no way to shrink a memory
    /// and reads the size only at instantiation and after its own growth.
    /// Costs one instantiation; the memory's contents are not copied.
    fn rebind(&mut self) -> Result<(), HypervisorError> {
        let fresh = Self::instantiate(&self.engine, self.module.clone(), self.memory.clone())?;
        let synced = self.synced.take();
        *self = Sandbox { synced, ..fresh };
        if let Some(globals) = self.synced.as_ref().map(|s| s.globals.clone()) {
            self.write_globals(&globals)?;
        }
        Ok(())
    }

    fn engine_view_is_stale(&self) -> bool {
        self.memory.as_ref().is_some_and(|m| m.engine_view_is_stale())
    }

    /// The module this sandbox runs.
    pub fn module(&self) -> &Arc<CompiledModule> {
        &self.module
    }

    /// Current values of all saved globals.
    pub fn read_globals(&mut self) -> Vec<GlobalValue> {
        self.globals.iter().map(|g| global_value(g.get(&mut self.store))).collect()
    }

    fn write_globals(&mut self, values: &[GlobalValue]) -> Result<(), HypervisorError> {
        if values.len() != self.globals.len() {
            return Err(engine_error(format!("state has {} globals, module {}", values.len(), self.globals.len())));
        }
        for (g, v) in self.globals.iter().zip(values) {
            let val = match *v {
                GlobalValue::I32(x) => Val::I32(x),
                GlobalValue::I64(x) => Val::I64(x),
                GlobalValue::F32(x) => Val::F32(x),
                GlobalValue::F64(x) => Val::F64(x),
                GlobalValue::V128(x) => Val::V128(x.into()),
            };
            g.set(&mut self.store, val).map_err(engine_error)?;
        }
        Ok(())
    }

    /// Makes the sandbox hold exactly `state`.
    fn sync(&mut self, state: &CanisterMemories) -> Result<(), HypervisorError> {
        let target = state.wasm_memory;
        if let Some(s) = &self.synced
            && s.heap.generation() == target.page_map.generation()
            && s.heap_pages == target.size_wasm_pages
            && s.globals == state.globals
        {
            return Ok(());
        }
        if let Some(mem) = &self.memory {
            let current = self.synced.as_ref().map(|s| &s.heap);
            mem.sync(current, &target.page_map, (target.size_wasm_pages * WASM_PAGE_SIZE) as usize)
                .map_err(engine_error)?;
        }
        self.synced = Some(Synced {
            heap: target.page_map.clone(),
            heap_pages: target.size_wasm_pages,
            globals: state.globals.to_vec(),
        });
        if self.engine_view_is_stale() {
            // rebind() also restores the globals.
            return self.rebind();
        }
        self.write_globals(state.globals)
    }

    /// Runs one execution on `state`: the sandbox first makes its instance
    /// hold exactly that memory and those globals.
    pub fn execute(&mut self, state: &CanisterMemories, input: ExecutionInput) -> ExecutionOutput {
        let ExecutionInput { api, func, instruction_limit, wasm_memory_limit, commit } = input;
        if let Err(e) = self.sync(state) {
            return ExecutionOutput { api, result: Err(e), instructions_used: 0, committed: None, wasm_memory_size: 0 };
        }
        {
            let data = self.store.data_mut();
            data.api = Some(api);
            data.instruction_limit = instruction_limit;
            data.wasm_memory_limit = wasm_memory_limit;
        }
        let fuel_ok = self.store.set_fuel(instruction_limit);
        let result = match fuel_ok {
            Ok(()) => with_execution_stack(|| self.call(&func)),
            Err(e) => Err(engine_error(e)),
        };
        let remaining = self.store.get_fuel().unwrap_or(0);
        let instructions_used = instruction_limit.saturating_sub(remaining);
        let wasm_memory_size = self.memory.as_ref().map_or(0, |m| m.size() as u64);
        let mut api = self.store.data_mut().api.take().expect("api present");
        let synced = self.synced.as_ref().expect("synced before execution");
        let mut committed = None;
        if result.is_ok() && commit {
            let mut heap = synced.heap.clone();
            let stats = self.memory.as_ref().map(|m| m.commit(&mut heap)).unwrap_or_default();
            let size_wasm_pages = wasm_memory_size / WASM_PAGE_SIZE;
            let globals = self.read_globals();
            let stable = std::mem::take(&mut api.stable.memory);
            self.synced = Some(Synced { heap: heap.clone(), heap_pages: size_wasm_pages, globals: globals.clone() });
            committed = Some(CommittedState {
                wasm_memory: Memory { page_map: heap, size_wasm_pages },
                stable_memory: stable,
                globals,
                stats,
            });
        } else {
            let (heap, pages, globals) = (synced.heap.clone(), synced.heap_pages, synced.globals.clone());
            let rollback =
                self.memory.as_ref().map_or(Ok(()), |m| m.rollback(&heap, (pages * WASM_PAGE_SIZE) as usize));
            let restore = match self.engine_view_is_stale() {
                // The rolled-back message grew the memory: wasmtime must relearn its size.
                true => self.rebind(),
                false => self.write_globals(&globals),
            };
            if let Err(e) = rollback.map_err(engine_error).and(restore) {
                // The sandbox is unusable; force a full resync next time.
                self.synced = None;
                tracing::error!("sandbox rollback failed: {e}");
            }
        }
        ExecutionOutput { api, result, instructions_used, committed, wasm_memory_size }
    }

    fn call(&mut self, func: &FuncRef) -> Result<(), HypervisorError> {
        let outcome = match func {
            FuncRef::Export(name) => {
                let f = match self.funcs.get(name) {
                    Some(f) => f.clone(),
                    None => {
                        let f = self.instance.get_typed_func::<(), ()>(&mut self.store, name).map_err(|_| {
                            HypervisorError::MethodNotFound { kind: kind_of(name), name: method_of(name) }
                        })?;
                        self.funcs.insert(name.clone(), f.clone());
                        f
                    }
                };
                f.call(&mut self.store, ())
            }
            FuncRef::Start => {
                let f = self
                    .instance
                    .get_typed_func::<(), ()>(&mut self.store, cairn_wasm_module::START_EXPORT)
                    .map_err(engine_error)?;
                f.call(&mut self.store, ())
            }
            FuncRef::Closure(closure) => {
                let table = self.table.ok_or(HypervisorError::FunctionNotFound(closure.func_idx))?;
                let f = table
                    .get(&mut self.store, closure.func_idx)
                    .and_then(|r| r.as_func().flatten().copied())
                    .ok_or(HypervisorError::FunctionNotFound(closure.func_idx))?;
                let signature_error =
                    || HypervisorError::ContractViolation("function invocation does not match its signature".into());
                if self.module.instrumented.memory64 {
                    f.typed::<u64, ()>(&self.store).map_err(|_| signature_error())?.call(&mut self.store, closure.env)
                } else {
                    let env = u32::try_from(closure.env).map_err(|_| signature_error())?;
                    f.typed::<u32, ()>(&self.store).map_err(|_| signature_error())?.call(&mut self.store, env)
                }
            }
        };
        outcome.map_err(|e| self.map_error(e))
    }

    fn map_error(&mut self, e: wasmtime::Error) -> HypervisorError {
        if let Some(h) = e.downcast_ref::<HypervisorError>() {
            return h.clone();
        }
        match e.downcast_ref::<Trap>() {
            Some(Trap::OutOfFuel) => HypervisorError::InstructionLimitExceeded(self.store.data().instruction_limit),
            Some(Trap::StackOverflow) => HypervisorError::Trapped("stack overflow".into()),
            Some(Trap::MemoryOutOfBounds) => HypervisorError::Trapped("heap out of bounds".into()),
            Some(Trap::TableOutOfBounds) => HypervisorError::Trapped("table out of bounds".into()),
            Some(Trap::IntegerDivisionByZero) => HypervisorError::Trapped("integer division by 0".into()),
            Some(Trap::UnreachableCodeReached) => HypervisorError::Trapped("unreachable".into()),
            Some(Trap::IntegerOverflow) => HypervisorError::Trapped("integer overflow".into()),
            Some(Trap::BadConversionToInteger) => HypervisorError::Trapped("invalid conversion to integer".into()),
            Some(Trap::IndirectCallToNull) => HypervisorError::Trapped("indirect call to null".into()),
            Some(Trap::BadSignature) => {
                HypervisorError::ContractViolation("function invocation does not match its signature".into())
            }
            Some(other) => HypervisorError::Trapped(format!("unknown ({other})")),
            None => HypervisorError::EngineError(format!("{e:#}")),
        }
    }

    /// Whether the module exports `name`.
    pub fn has_export(&mut self, name: &str) -> bool {
        matches!(self.instance.get_export(&mut self.store, name), Some(Extern::Func(_)))
    }
}

/// The export name under which the instrumentation exposes table 0.
pub use cairn_wasm_module::TABLE_EXPORT;

fn global_value(v: Val) -> GlobalValue {
    match v {
        Val::I32(x) => GlobalValue::I32(x),
        Val::I64(x) => GlobalValue::I64(x),
        Val::F32(x) => GlobalValue::F32(x),
        Val::F64(x) => GlobalValue::F64(x),
        Val::V128(x) => GlobalValue::V128(x.as_u128()),
        other => unreachable!("validation rejects reference-typed globals, got {other:?}"),
    }
}

fn kind_of(export: &str) -> &'static str {
    if export.starts_with("canister_update ") {
        "update"
    } else if export.starts_with("canister_query ") {
        "query"
    } else if export.starts_with("canister_composite_query ") {
        "composite_query"
    } else {
        "system"
    }
}

fn method_of(export: &str) -> String {
    export.split_once(' ').map_or(export, |(_, m)| m).to_string()
}
