//! Engine tests with hand-written modules: persistence, rollback, limits.

use cairn_state::canister_state::GlobalValue;
use cairn_state::page_map::Memory;
use cairn_types::{CanisterId, CostSchedule, Cycles, Principal, SubnetId, Time};
use cairn_wasm::{
    ApiEnvironment, ApiInputs, ApiResponse, CanisterMemories, Context, ExecutionInput, FuncRef, HypervisorError,
    Sandbox, SystemApi, WasmEngine,
};
use cairn_wasm_module::ModuleLimits;
use sha2::{Digest, Sha256};

fn env() -> ApiEnvironment {
    ApiEnvironment {
        canister_id: CanisterId::from_u64(1),
        subnet_id: SubnetId(Principal::self_authenticating(b"subnet")),
        controllers: Default::default(),
        time: Time::from_secs(1_700_000_000),
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

fn api(context: Context, arg: &[u8]) -> SystemApi {
    let inputs = ApiInputs { arg: arg.to_vec(), ..Default::default() };
    SystemApi::new(context, inputs, env(), Cycles::new(1 << 60), Memory::default())
}

/// A canister state as the execution layer keeps it.
struct State {
    heap: Memory,
    stable: Memory,
    globals: Vec<GlobalValue>,
}

struct Harness {
    sandbox: Sandbox,
    state: State,
}

impl Harness {
    fn new(engine: &WasmEngine, wat: &str) -> Self {
        let wasm = wat::parse_str(wat).unwrap();
        let module = engine.compile(&wasm, Sha256::digest(&wasm).into()).unwrap();
        // The initial state, built as install builds it: data segments written host-side.
        let mut page_map = cairn_state::PageMap::new();
        for (offset, bytes) in &module.instrumented.data_segments {
            page_map.write(*offset, bytes);
        }
        let heap = Memory { page_map, size_wasm_pages: module.info.memory.unwrap().initial_pages };
        let globals = module.initial_globals.clone();
        let sandbox = engine.new_sandbox(module).unwrap();
        Harness { sandbox, state: State { heap, stable: Memory::default(), globals } }
    }

    fn run(
        &mut self,
        method: &str,
        arg: &[u8],
        limit: u64,
        commit: bool,
    ) -> (Result<Option<ApiResponse>, HypervisorError>, u64) {
        let mut api = api(Context::Update, arg);
        api.stable.memory = self.state.stable.clone();
        let memories = CanisterMemories { wasm_memory: &self.state.heap, globals: &self.state.globals };
        let out = self.sandbox.execute(
            &memories,
            ExecutionInput {
                api,
                func: FuncRef::Export(format!("canister_update {method}")),
                instruction_limit: limit,
                wasm_memory_limit: Some(1 << 30),
                commit,
            },
        );
        if let Some(c) = out.committed {
            self.state = State { heap: c.wasm_memory, stable: c.stable_memory, globals: c.globals };
        }
        (out.result.map(|_| out.api.response.clone()), out.instructions_used)
    }
}

const COUNTER: &str = r#"
(module
  (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))
  (import "ic0" "msg_reply" (func $reply))
  (import "ic0" "trap" (func $trap (param i32 i32)))
  (import "ic0" "stable64_grow" (func $sgrow (param i64) (result i64)))
  (import "ic0" "stable64_write" (func $swrite (param i64 i64 i64)))
  (memory 2)
  (global $calls (mut i32) (i32.const 100))
  (data (i32.const 8) "seed")
  (func (export "canister_init"))
  ;; Increments the 4-byte counter at address 0 and a global, replies with the counter.
  (func (export "canister_update inc")
    (i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (i32.const 1)))
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (call $append (i32.const 0) (i32.const 4))
    (call $reply))
  (func (export "canister_update read")
    (i32.store (i32.const 100) (global.get $calls))
    (call $append (i32.const 0) (i32.const 12))
    (call $append (i32.const 100) (i32.const 4))
    (call $reply))
  ;; Writes heap, globals and stable memory, then traps: nothing may persist.
  (func (export "canister_update write_then_trap")
    (i32.store (i32.const 0) (i32.const 999))
    (i32.store (i32.const 70000) (i32.const 999))
    (global.set $calls (i32.const 0))
    (drop (memory.grow (i32.const 3)))
    (i32.store (i32.const 200000) (i32.const 7))
    (drop (call $sgrow (i64.const 1)))
    (call $swrite (i64.const 0) (i64.const 0) (i64.const 4))
    (call $trap (i32.const 8) (i32.const 4)))
  (func (export "canister_update loop") (loop $l (br $l)))
  (func $rec (param i32) (result i32) (i32.add (call $rec (local.get 0)) (i32.const 1)))
  (func (export "canister_update recurse") (drop (call $rec (i32.const 0))))
  (func (export "canister_update grow_big") (drop (memory.grow (i32.const 20000))))
  (func (export "canister_update fill") (memory.fill (i32.const 0) (i32.const 1) (i32.const 100000)))
  (func (export "canister_update div0") (drop (i32.div_u (i32.const 1) (i32.const 0))))
)"#;

fn engine() -> WasmEngine {
    WasmEngine::new(ModuleLimits::default()).unwrap()
}

fn reply(r: Result<Option<ApiResponse>, HypervisorError>) -> Vec<u8> {
    match r.unwrap() {
        Some(ApiResponse::Reply(b)) => b,
        other => panic!("expected a reply, got {other:?}"),
    }
}

#[test]
fn memory_and_globals_persist_between_messages() {
    let e = engine();
    let mut h = Harness::new(&e, COUNTER);
    for i in 1..=3u32 {
        assert_eq!(reply(h.run("inc", &[], 1 << 30, true).0), i.to_le_bytes());
    }
    let r = reply(h.run("read", &[], 1 << 30, true).0);
    assert_eq!(&r[8..12], b"seed", "data segment applied once at install");
    assert_eq!(&r[12..16], &103u32.to_le_bytes(), "global persisted");
}

#[test]
fn trap_rolls_back_everything() {
    let e = engine();
    let mut h = Harness::new(&e, COUNTER);
    h.run("inc", &[], 1 << 30, true).0.unwrap();
    let before_heap = h.state.heap.page_map.content_hash();
    let (r, _) = h.run("write_then_trap", &[], 1 << 30, true);
    assert_eq!(r.unwrap_err(), HypervisorError::CalledTrap("seed".into()));
    assert_eq!(h.state.heap.page_map.content_hash(), before_heap);
    assert_eq!(h.state.stable.size_wasm_pages, 0);
    // The live sandbox was rolled back too: the next message sees the old values.
    assert_eq!(reply(h.run("inc", &[], 1 << 30, true).0), 2u32.to_le_bytes());
    let r = reply(h.run("read", &[], 1 << 30, true).0);
    assert_eq!(&r[12..16], &102u32.to_le_bytes());
    assert_eq!(h.state.heap.size_wasm_pages, 2);
}

#[test]
fn queries_leave_no_trace() {
    let e = engine();
    let mut h = Harness::new(&e, COUNTER);
    assert_eq!(reply(h.run("inc", &[], 1 << 30, false).0), 1u32.to_le_bytes());
    assert_eq!(reply(h.run("inc", &[], 1 << 30, false).0), 1u32.to_le_bytes());
    assert_eq!(reply(h.run("inc", &[], 1 << 30, true).0), 1u32.to_le_bytes());
}

#[test]
fn infinite_loop_stops_at_instruction_limit() {
    let e = engine();
    let mut h = Harness::new(&e, COUNTER);
    let (r, used) = h.run("loop", &[], 10_000_000, true);
    assert_eq!(r.unwrap_err(), HypervisorError::InstructionLimitExceeded(10_000_000));
    assert_eq!(used, 10_000_000);
    // Still serves afterwards.
    assert_eq!(reply(h.run("inc", &[], 1 << 30, true).0), 1u32.to_le_bytes());
}

#[test]
fn deep_recursion_is_a_stack_overflow_trap() {
    let e = engine();
    let mut h = Harness::new(&e, COUNTER);
    let (r, _) = h.run("recurse", &[], 1 << 40, true);
    assert_eq!(r.unwrap_err(), HypervisorError::Trapped("stack overflow".into()));
    assert_eq!(reply(h.run("inc", &[], 1 << 30, true).0), 1u32.to_le_bytes());
}

#[test]
fn memory_limit_traps_growth() {
    let e = engine();
    let mut h = Harness::new(&e, COUNTER);
    let (r, _) = h.run("grow_big", &[], 1 << 30, true);
    assert!(matches!(r.unwrap_err(), HypervisorError::WasmMemoryLimitExceeded { limit, .. } if limit == 1 << 30));
}

#[test]
fn bulk_memory_is_charged_by_length() {
    let e = engine();
    let mut h = Harness::new(&e, COUNTER);
    let (r, used) = h.run("fill", &[], 1 << 30, true);
    r.unwrap();
    assert!(used >= 100_000, "memory.fill of 100000 bytes charged {used}");
    assert!(used < 110_000, "charged {used}");
}

#[test]
fn wasm_traps_have_ic_texts() {
    let e = engine();
    let mut h = Harness::new(&e, COUNTER);
    assert_eq!(
        h.run("div0", &[], 1 << 30, true).0.unwrap_err(),
        HypervisorError::Trapped("integer division by 0".into())
    );
    assert_eq!(
        h.run("nope", &[], 1 << 30, true).0.unwrap_err(),
        HypervisorError::MethodNotFound { kind: "update", name: "nope".into() }
    );
}

#[test]
fn cached_module_is_not_recompiled() {
    let e = engine();
    let wasm = wat::parse_str(COUNTER).unwrap();
    let hash = Sha256::digest(&wasm).into();
    let a = e.compile(&wasm, hash).unwrap();
    let b = e.compile(&wasm, hash).unwrap();
    assert!(std::sync::Arc::ptr_eq(&a, &b));
    assert_eq!(e.cached_modules(), 1);
}

/// `memory.size` must report the committed size after a rolled-back grow, and
/// a fresh sandbox synced to a grown memory must see all of it.
#[test]
fn memory_size_is_exact_after_rollback_and_fresh_sync() {
    const GROWER: &str = r#"
(module
  (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))
  (import "ic0" "msg_reply" (func $reply))
  (import "ic0" "trap" (func $trap (param i32 i32)))
  (memory 1)
  (func (export "canister_update grow") (drop (memory.grow (i32.const 2))))
  (func (export "canister_update grow_then_trap") (drop (memory.grow (i32.const 5))) (call $trap (i32.const 0) (i32.const 0)))
  (func (export "canister_update size")
    (i32.store (i32.const 0) (memory.size))
    ;; Touch the last byte of memory: out of bounds if the engine's view is stale.
    (i32.store8 (i32.sub (i32.mul (memory.size) (i32.const 65536)) (i32.const 1)) (i32.const 1))
    (call $append (i32.const 0) (i32.const 4)) (call $reply)))"#;
    let e = engine();
    let mut h = Harness::new(&e, GROWER);
    h.run("grow", &[], 1 << 30, true).0.unwrap();
    assert_eq!(reply(h.run("size", &[], 1 << 30, true).0), 3u32.to_le_bytes());
    assert!(h.run("grow_then_trap", &[], 1 << 30, true).0.is_err());
    assert_eq!(reply(h.run("size", &[], 1 << 30, true).0), 3u32.to_le_bytes());
    // Rolled back by a query.
    h.run("grow", &[], 1 << 30, false).0.unwrap();
    assert_eq!(reply(h.run("size", &[], 1 << 30, true).0), 3u32.to_le_bytes());
    // A brand-new sandbox synced to the 3-page state.
    let wasm = wat::parse_str(GROWER).unwrap();
    let module = e.compile(&wasm, Sha256::digest(&wasm).into()).unwrap();
    h.sandbox = e.new_sandbox(module).unwrap();
    assert_eq!(reply(h.run("size", &[], 1 << 30, true).0), 3u32.to_le_bytes());
}
