//! Every real test canister (ic-cdk wasm32 and Motoko wasm64) validates, instruments,
//! compiles and installs; plus hand-written modules that mimic what real-clients.md §1
//! lists, so the shapes stay covered even if the canister set changes.

use std::time::Instant;

use cairn_test_canisters::{ALL, Toolchain, gzipped};
use cairn_wasm_module::{
    InstrumentedModule, MEMORY_EXPORT, ModuleInfo, ModuleLimits, START_EXPORT, SystemMethod, TABLE_EXPORT, Visibility,
    decode_module, instrument, prepare, validate,
};
use wasmparser::{Parser, Payload};
use wasmtime::{Config, Engine, Linker, Module, Store};

fn engine() -> Engine {
    let mut config = Config::new();
    config.wasm_memory64(true);
    Engine::new(&config).unwrap()
}

/// The contents of the code section.
fn code_section(wasm: &[u8]) -> &[u8] {
    Parser::new(0)
        .parse_all(wasm)
        .find_map(|p| match p.unwrap() {
            Payload::CodeSectionStart { range, .. } => Some(&wasm[range]),
            _ => None,
        })
        .expect("a code section")
}

/// Compiles the instrumented module, instantiates it with every `ic0` import trapping,
/// writes the data segments and checks memory, table and globals are reachable by their
/// exports.
fn install(engine: &Engine, m: &InstrumentedModule) {
    let module = Module::new(engine, &m.bytes).unwrap();
    let mut linker: Linker<()> = Linker::new(engine);
    linker.define_unknown_imports_as_traps(&module).unwrap();
    let mut store = Store::new(engine, ());
    let instance = linker.instantiate(&mut store, &module).unwrap();
    let memory = instance.get_memory(&mut store, MEMORY_EXPORT).unwrap();
    for (offset, bytes) in &m.data_segments {
        memory.write(&mut store, *offset as usize, bytes).unwrap();
    }
    for g in &m.exported_globals {
        assert!(instance.get_global(&mut store, &g.export_name).is_some());
    }
    // Every module here has a table: Rust's `__indirect_function_table`, Motoko's `table`.
    assert!(instance.get_table(&mut store, TABLE_EXPORT).is_some());
    assert_eq!(instance.get_func(&mut store, START_EXPORT).is_some(), m.has_start);
}

#[test]
fn every_real_canister_validates_and_instruments() {
    let engine = engine();
    println!(
        "{:<12} {:>8} {:>8} {:>8} {:>8} {:>5} {:>7} {:>6} {:>8} {:>8}",
        "canister", "bytes", "instr.", "+data", "growth", "segs", "globals", "table", "total", "instr."
    );
    for c in ALL {
        let upload = gzipped(c.wasm);
        let started = Instant::now();
        let wasm = decode_module(&upload).unwrap();
        assert_eq!(wasm, c.wasm);
        let info = validate(&wasm, &ModuleLimits::default()).unwrap_or_else(|e| panic!("{}: {e}", c.name));
        let m = instrument(&wasm, &info).unwrap_or_else(|e| panic!("{}: {e}", c.name));
        let elapsed = started.elapsed();
        // Instrumentation alone, best of five.
        let instr_time = (0..5)
            .map(|_| {
                let t = Instant::now();
                instrument(&wasm, &info).unwrap();
                t.elapsed()
            })
            .min()
            .unwrap();

        match c.toolchain {
            Toolchain::Rust => {
                assert!(!info.memory64, "{}", c.name);
                assert!(!m.exported_globals.is_empty(), "{}: __stack_pointer", c.name);
            }
            Toolchain::Motoko => {
                assert!(info.memory64 && info.has_start, "{}", c.name);
                assert!(m.has_start);
                assert!(info.custom_sections.values().all(|s| s.visibility == Visibility::Private));
            }
        }
        assert!(!info.update_methods.is_empty() || !info.query_methods.is_empty());
        assert!(m.has_memory);
        assert_eq!(code_section(&m.bytes), code_section(&wasm), "{}: code is not rewritten", c.name);
        install(&engine, &m);

        // Extracted data now lives beside the module, so growth counts both.
        let data: usize = m.data_segments.iter().map(|(_, d)| d.len()).sum();
        let total = m.bytes.len() + data;
        println!(
            "{:<12} {:>8} {:>8} {:>8} {:>7.2}% {:>5} {:>7} {:>6} {:>8.1?} {:>8.1?}",
            c.name,
            wasm.len(),
            m.bytes.len(),
            data,
            (total as f64 / wasm.len() as f64 - 1.0) * 100.0,
            m.data_segments.len(),
            m.exported_globals.len(),
            if info.mutates_tables { "mut" } else { "-" },
            elapsed,
            instr_time
        );
    }
}

fn prepared(src: &str) -> (ModuleInfo, InstrumentedModule) {
    let wasm = wat::parse_str(src).unwrap();
    prepare(&wasm, &ModuleLimits::default()).unwrap()
}

/// What ic-cdk 0.20 + timers + stable-structures produce (real-clients.md §1): wasm32,
/// 28 `ic0` imports with i32 addresses, `memory`, `__data_end`, `__heap_base`,
/// `get_candid_pointer`, an internal `timer_executor` update, bulk memory ops.
const RUST_LIKE: &str = r#"(module
  (import "ic0" "msg_arg_data_size" (func (result i32)))
  (import "ic0" "msg_arg_data_copy" (func (param i32 i32 i32)))
  (import "ic0" "msg_caller_size" (func (result i32)))
  (import "ic0" "msg_caller_copy" (func (param i32 i32 i32)))
  (import "ic0" "msg_reply_data_append" (func (param i32 i32)))
  (import "ic0" "msg_reply" (func))
  (import "ic0" "debug_print" (func (param i32 i32)))
  (import "ic0" "trap" (func (param i32 i32)))
  (import "ic0" "msg_reject_code" (func (result i32)))
  (import "ic0" "msg_reject_msg_size" (func (result i32)))
  (import "ic0" "msg_reject_msg_copy" (func (param i32 i32 i32)))
  (import "ic0" "canister_self_size" (func (result i32)))
  (import "ic0" "canister_self_copy" (func (param i32 i32 i32)))
  (import "ic0" "time" (func (result i64)))
  (import "ic0" "global_timer_set" (func (param i64) (result i64)))
  (import "ic0" "performance_counter" (func (param i32) (result i64)))
  (import "ic0" "stable64_size" (func (result i64)))
  (import "ic0" "stable64_grow" (func (param i64) (result i64)))
  (import "ic0" "stable64_read" (func (param i64 i64 i64)))
  (import "ic0" "stable64_write" (func (param i64 i64 i64)))
  (import "ic0" "call_new" (func (param i32 i32 i32 i32 i32 i32 i32 i32)))
  (import "ic0" "call_on_cleanup" (func (param i32 i32)))
  (import "ic0" "call_data_append" (func (param i32 i32)))
  (import "ic0" "call_cycles_add128" (func (param i64 i64)))
  (import "ic0" "call_with_best_effort_response" (func (param i32)))
  (import "ic0" "call_perform" (func (result i32)))
  (import "ic0" "cost_call" (func (param i64 i64 i32)))
  (import "ic0" "canister_liquid_cycle_balance128" (func (param i32)))
  (table 4 4 funcref)
  (memory (export "memory") 17)
  (global $__stack_pointer (mut i32) (i32.const 1048576))
  (global (export "__data_end") i32 (i32.const 1049000))
  (global (export "__heap_base") i32 (i32.const 1049008))
  (data (i32.const 1048576) "candid service text")
  (elem (i32.const 1) func $cb $cb)
  (func $cb (param i32))
  (func $copy (param i32 i32 i32) (memory.copy (local.get 0) (local.get 1) (local.get 2)))
  (func (export "canister_init"))
  (func (export "canister_post_upgrade"))
  (func (export "canister_global_timer"))
  (func (export "canister_update inc")
    (global.set $__stack_pointer (i32.sub (global.get $__stack_pointer) (i32.const 16)))
    (call $copy (i32.const 0) (i32.const 1048576) (i32.const 19))
    (memory.fill (i32.const 32) (i32.const 0) (i32.const 16)))
  (func (export "canister_query get"))
  (func (export "canister_update <ic-cdk internal> timer_executor"))
  (func (export "get_candid_pointer") (result i32) (i32.const 1048576)))"#;

/// What Motoko 4.10 produces (real-clients.md §1): wasm64 (memory64 + table64), every
/// address i64, memory exported as `mem`, the table as `table`, a start function, internal
/// updates, and `icp:private` custom sections (added below).
const MOTOKO_LIKE: &str = r#"(module
  (import "ic0" "msg_arg_data_size" (func (result i64)))
  (import "ic0" "msg_arg_data_copy" (func (param i64 i64 i64)))
  (import "ic0" "msg_caller_size" (func (result i64)))
  (import "ic0" "msg_caller_copy" (func (param i64 i64 i64)))
  (import "ic0" "msg_reply_data_append" (func (param i64 i64)))
  (import "ic0" "msg_reply" (func))
  (import "ic0" "msg_reject" (func (param i64 i64)))
  (import "ic0" "debug_print" (func (param i64 i64)))
  (import "ic0" "trap" (func (param i64 i64)))
  (import "ic0" "msg_reject_code" (func (result i32)))
  (import "ic0" "msg_reject_msg_size" (func (result i64)))
  (import "ic0" "msg_reject_msg_copy" (func (param i64 i64 i64)))
  (import "ic0" "msg_cycles_refunded128" (func (param i64)))
  (import "ic0" "canister_self_size" (func (result i64)))
  (import "ic0" "canister_self_copy" (func (param i64 i64 i64)))
  (import "ic0" "canister_status" (func (result i32)))
  (import "ic0" "is_controller" (func (param i64 i64) (result i32)))
  (import "ic0" "time" (func (result i64)))
  (import "ic0" "global_timer_set" (func (param i64) (result i64)))
  (import "ic0" "performance_counter" (func (param i32) (result i64)))
  (import "ic0" "stable64_size" (func (result i64)))
  (import "ic0" "stable64_grow" (func (param i64) (result i64)))
  (import "ic0" "stable64_read" (func (param i64 i64 i64)))
  (import "ic0" "stable64_write" (func (param i64 i64 i64)))
  (import "ic0" "call_new" (func (param i64 i64 i64 i64 i64 i64 i64 i64)))
  (import "ic0" "call_on_cleanup" (func (param i64 i64)))
  (import "ic0" "call_data_append" (func (param i64 i64)))
  (import "ic0" "call_cycles_add128" (func (param i64 i64)))
  (import "ic0" "call_with_best_effort_response" (func (param i32)))
  (import "ic0" "call_perform" (func (result i32)))
  (table (export "table") i64 2 funcref)
  (memory (export "mem") i64 65)
  (global $heap (mut i64) (i64.const 4194304))
  (global $gc (mut i32) (i32.const 0))
  (data (i64.const 65536) "motoko runtime data")
  (elem (table 0) (i64.const 0) func $cb)
  (func $cb (param i64))
  (func $start
    (memory.fill (i64.const 4194304) (i32.const 0) (i64.const 1024))
    (global.set $heap (i64.add (global.get $heap) (i64.const 1024))))
  (start $start)
  (func (export "canister_init"))
  (func (export "canister_pre_upgrade"))
  (func (export "canister_post_upgrade"))
  (func (export "canister_update inc")
    (memory.copy (global.get $heap) (i64.const 65536) (i64.const 19)))
  (func (export "canister_query read"))
  (func (export "canister_update __motoko_async_helper"))
  (func (export "canister_update __motoko_gc_trigger"))
  (func (export "canister_update __motoko_stabilize_before_upgrade")))"#;

fn add_custom_section(wasm: &mut Vec<u8>, name: &str, data: &[u8]) {
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name.as_bytes());
    payload.extend_from_slice(data);
    wasm.push(0);
    assert!(payload.len() < 128);
    wasm.push(payload.len() as u8);
    wasm.extend_from_slice(&payload);
}

#[test]
fn rust_like_module() {
    let (info, m) = prepared(RUST_LIKE);
    assert!(!info.memory64);
    assert_eq!(info.ic0_imports.len(), 28);
    assert_eq!(
        info.system_methods.iter().copied().collect::<Vec<_>>(),
        [SystemMethod::Init, SystemMethod::PostUpgrade, SystemMethod::GlobalTimer]
    );
    assert!(info.update_methods.contains("<ic-cdk internal> timer_executor"));
    assert_eq!(m.data_segments, vec![(1048576, b"candid service text".to_vec())]);
    assert_eq!(m.exported_globals.len(), 1, "__stack_pointer only");
    install(&engine(), &m);
}

#[test]
fn motoko_like_module() {
    let mut wasm = wat::parse_str(MOTOKO_LIKE).unwrap();
    add_custom_section(&mut wasm, "icp:private candid:service", b"service : {}");
    add_custom_section(&mut wasm, "icp:private motoko:stable-types", b"actor {}");
    add_custom_section(&mut wasm, "icp:private enhanced-orthogonal-persistence", b"64-bit, layout version 1");
    let (info, m) = prepare(&wasm, &ModuleLimits::default()).unwrap();
    assert!(info.memory64 && info.has_start);
    assert_eq!(info.ic0_imports.len(), 30);
    assert_eq!(info.custom_sections.len(), 3);
    assert_eq!(info.update_methods.len(), 4);
    assert_eq!(m.data_segments, vec![(65536, b"motoko runtime data".to_vec())]);
    assert_eq!(m.exported_globals.len(), 2);
    assert!(m.has_start && m.memory64);
    install(&engine(), &m);
}

/// Builds a ~2 MiB module shaped like compiled Rust (many functions with arithmetic,
/// loads/stores, calls and bulk memory ops) and times validate + instrument on it.
#[test]
fn two_mib_module_overhead() {
    let mut src = String::from(
        r#"(module
  (import "ic0" "msg_reply" (func $reply))
  (memory (export "memory") 32)
  (global $sp (mut i32) (i32.const 65536))
  (data (i32.const 1024) "some static data for the module")
  (func $leaf (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
"#,
    );
    let mut n = 0;
    while src.len() < 12 << 20 {
        src.push_str(&format!(
            "(func $f{n} (param $a i32) (param $b i32) (result i32) (local $t i32) (local $u i64)
  (local.set $t (i32.load offset=8 (local.get $a)))
  (if (i32.gt_u (local.get $t) (i32.const 100))
    (then (memory.copy (local.get $a) (local.get $b) (local.get $t)))
    (else (memory.fill (local.get $a) (i32.const 0) (i32.const 64))))
  (local.set $u (i64.mul (i64.extend_i32_u (local.get $t)) (i64.const 2654435761)))
  (i64.store offset=16 (local.get $b) (local.get $u))
  (loop $l
    (local.set $t (i32.add (local.get $t) (i32.const 1)))
    (br_if $l (i32.lt_u (local.get $t) (i32.const 8))))
  (global.set $sp (i32.sub (global.get $sp) (i32.const 16)))
  (call $leaf (local.get $t) (i32.wrap_i64 (local.get $u))))
"
        ));
        n += 1;
    }
    src.push_str(r#"(func (export "canister_update go") (call $reply)))"#);
    let wasm = wat::parse_str(&src).unwrap();
    let limits = ModuleLimits::default();

    // Warm up, then take the best of three.
    let _ = prepare(&wasm, &limits).unwrap();
    let mut best = (std::time::Duration::MAX, std::time::Duration::MAX);
    let mut out = None;
    for _ in 0..3 {
        let t0 = Instant::now();
        let info = validate(&wasm, &limits).unwrap();
        let t1 = Instant::now();
        let m = instrument(&wasm, &info).unwrap();
        let t2 = Instant::now();
        best.0 = best.0.min(t1 - t0);
        best.1 = best.1.min(t2 - t1);
        out = Some(m);
    }
    let m = out.unwrap();
    println!(
        "synthetic module: {} functions, {} bytes -> {} bytes ({:+.2}%); \
         validate {:?}, instrument {:?}",
        n + 2,
        wasm.len(),
        m.bytes.len(),
        (m.bytes.len() as f64 / wasm.len() as f64 - 1.0) * 100.0,
        best.0,
        best.1
    );
    assert!(wasm.len() > 2 << 20, "{} bytes", wasm.len());
    assert_eq!(code_section(&m.bytes), code_section(&wasm));
}
