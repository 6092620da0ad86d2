//! Benchmark 4: installing a ~2 MiB module through `install_code` on the
//! state machine.
//!
//! Each run uses a fresh state machine (so a fresh engine and an empty
//! compilation cache): `install_code` on canister A (validation,
//! instrumentation, compilation, instantiation, `canister_init`), then the
//! same module on canister B, which must hit the cache. The evidence that
//! it does: `WasmEngine::cached_modules()` before/after, and the cached
//! `CompiledModule` (same `Arc`, same `compile_time`) looked up afterwards.

use crate::harness::candid_empty;
use crate::modules::{BigModule, big_module};
use crate::stats::{Row, Summary, fmt, process_cpu_secs, time};
use cairn_execution::management::types::InstallModeArg;
use cairn_state_machine::StateMachine;
use cairn_types::{Cycles, Principal};
use sha2::{Digest, Sha256};
use std::sync::Arc;

const B: &str = "4 install";

/// Measurements of one run.
#[derive(Clone, Debug)]
pub struct InstallRun {
    pub first: f64,
    pub compile_time: f64,
    pub second: f64,
    pub cached_before: usize,
    pub cached_after_first: usize,
    pub cached_after_second: usize,
    pub same_module: bool,
}

pub fn one_run(wasm: &[u8]) -> InstallRun {
    let mut sm = StateMachine::new();
    let sender = Principal::self_authenticating(b"cairn-bench-user");
    let cycles = Cycles::new(10_000_000_000_000_000);
    let a = sm.create_canister(sender, cycles, None).expect("create A");
    let b = sm.create_canister(sender, cycles, None).expect("create B");
    let hash: [u8; 32] = Sha256::digest(wasm).into();
    let cached_before = sm.environment().engine().cached_modules();

    let (r, first) = time(|| sm.install_code(sender, a, wasm, candid_empty(), InstallModeArg::Install));
    r.expect("install on A");
    let cached_after_first = sm.environment().engine().cached_modules();
    // A cache hit: returns the module compiled by the first install.
    let m1 = sm.environment().engine().compile(wasm, hash).expect("cached");
    assert_eq!(sm.environment().engine().cached_modules(), cached_after_first);

    let (r, second) = time(|| sm.install_code(sender, b, wasm, candid_empty(), InstallModeArg::Install));
    r.expect("install on B");
    let cached_after_second = sm.environment().engine().cached_modules();
    let m2 = sm.environment().engine().compile(wasm, hash).expect("cached");
    // Both canisters have the module installed and its init ran (it wrote the heap).
    for id in [a, b] {
        let exec = sm.canister(&id).and_then(|c| c.execution_state.as_ref()).expect("installed");
        assert!(exec.wasm_memory.page_map.num_stored_pages() > 16);
    }
    InstallRun {
        first,
        compile_time: m1.compile_time.as_secs_f64(),
        second,
        cached_before,
        cached_after_first,
        cached_after_second,
        same_module: Arc::ptr_eq(&m1, &m2) && m1.compile_time == m2.compile_time,
    }
}

pub fn run(runs: usize, quick: bool) -> Vec<Row> {
    let target = if quick { 512 * 1024 } else { 2 * 1024 * 1024 };
    let (wasm, info): (Vec<u8>, BigModule) = big_module(target, 7);
    // Warm-up (page cache, allocator, rayon pool).
    one_run(&wasm);
    let results: Vec<InstallRun> = (0..runs).map(|_| one_run(&wasm)).collect();
    let ms = |f: fn(&InstallRun) -> f64| Summary::of(&results.iter().map(|r| f(r) * 1e3).collect::<Vec<_>>());
    let first = ms(|r| r.first);
    let compile = ms(|r| r.compile_time);
    let second = ms(|r| r.second);
    let r0 = &results[0];

    // Where the compile time goes: Cairn's engine alone (validate +
    // instrument + compile), with CPU time to show parallelism, vs plain
    // wasmtime (default config) compiling the same bytes.
    let hash: [u8; 32] = Sha256::digest(&wasm).into();
    let (mut cairn_ms, mut cairn_cpu, mut plain_ms, mut plain_cpu, mut prep_ms) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut fuel_ms, mut fuel_cpu) = (Vec::new(), Vec::new());
    let limits = cairn_wasm_module::ModuleLimits::default();
    for _ in 0..runs {
        let (p, wall) = time(|| cairn_wasm_module::prepare(&wasm, &limits).expect("prepares"));
        drop(p);
        prep_ms.push(wall * 1e3);
        let engine = crate::harness::engine();
        let cpu0 = process_cpu_secs();
        let (m, wall) = time(|| engine.compile(&wasm, hash).expect("compiles"));
        cairn_cpu.push((process_cpu_secs() - cpu0) * 1e3);
        drop(m);
        cairn_ms.push(wall * 1e3);
        let plain = wasmtime::Engine::default();
        let cpu0 = process_cpu_secs();
        let (m, wall) = time(|| wasmtime::Module::new(&plain, &wasm).expect("compiles"));
        plain_cpu.push((process_cpu_secs() - cpu0) * 1e3);
        drop(m);
        plain_ms.push(wall * 1e3);
        let mut config = wasmtime::Config::default();
        config.consume_fuel(true);
        let fueled = wasmtime::Engine::new(&config).expect("engine");
        let cpu0 = process_cpu_secs();
        let (m, wall) = time(|| wasmtime::Module::new(&fueled, &wasm).expect("compiles"));
        fuel_cpu.push((process_cpu_secs() - cpu0) * 1e3);
        drop(m);
        fuel_ms.push(wall * 1e3);
    }
    let cairn_c = Summary::of(&cairn_ms);
    let plain_c = Summary::of(&plain_ms);
    let cache_ok = results.iter().all(|r| {
        r.same_module && r.cached_after_first == r.cached_before + 1 && r.cached_after_second == r.cached_after_first
    });
    let size = format!(
        "{} bytes ({} KiB code in {} functions, {} KiB data)",
        info.total_bytes,
        info.code_bytes / 1024,
        info.functions,
        info.data_bytes / 1024
    );
    let mut rows = vec![
        Row::new(
            B,
            format!("first install_code (compile + init), module {size}"),
            first,
            "ms",
            "target < 1 s; wall time of StateMachine::install_code (ingress, round, everything)",
        ),
        Row::new(
            B,
            "  of which CompiledModule::compile_time (validate + instrument + cranelift + instantiate_pre)",
            compile,
            "ms",
            format!("{}% of the first install", fmt(compile.median / first.median * 100.0)),
        ),
        Row::new(
            B,
            "second install_code, same module, other canister (cached)",
            second,
            "ms",
            format!(
                "cached_modules: {} before, {} after 1st, {} after 2nd; same Arc<CompiledModule> and compile_time: {}",
                r0.cached_before,
                r0.cached_after_first,
                r0.cached_after_second,
                if cache_ok { "yes (every run)" } else { "NO" }
            ),
        ),
        Row::new(
            B,
            "WasmEngine::compile alone, same module, fresh engine",
            cairn_c,
            "ms",
            format!(
                "{} ms CPU (all threads; CPU/wall = {} on 2 shared cores)",
                fmt(Summary::of(&cairn_cpu).median),
                fmt(Summary::of(&cairn_cpu).median / cairn_c.median)
            ),
        ),
        Row::new(
            B,
            "  of which cairn_wasm_module::prepare (decode + validate + instrument)",
            Summary::of(&prep_ms),
            "ms",
            "single-threaded",
        ),
        Row::new(
            B,
            "plain wasmtime 48 Module::new (Config::default()), same bytes",
            plain_c,
            "ms",
            format!(
                "{} ms CPU; Cairn / plain wall = {}",
                fmt(Summary::of(&plain_cpu).median),
                fmt(cairn_c.median / plain_c.median)
            ),
        ),
    ];
    rows.push(Row::new(
        B,
        "plain wasmtime 48 Module::new with consume_fuel(true) only, same bytes",
        Summary::of(&fuel_ms),
        "ms",
        format!(
            "{} ms CPU; fuel / no fuel wall = {}",
            fmt(Summary::of(&fuel_cpu).median),
            fmt(Summary::of(&fuel_ms).median / plain_c.median)
        ),
    ));
    // Real canisters for scale: compile time per KiB of module.
    for c in cairn_test_canisters::ALL.iter().filter(|c| !quick || c.name == "counter") {
        let hash: [u8; 32] = Sha256::digest(c.wasm).into();
        let mut cpu = Vec::new();
        let times: Vec<f64> = (0..runs)
            .map(|_| {
                let engine = crate::harness::engine();
                let cpu0 = process_cpu_secs();
                let m = engine.compile(c.wasm, hash).expect("compiles");
                cpu.push((process_cpu_secs() - cpu0) * 1e3);
                m.compile_time.as_secs_f64() * 1e3
            })
            .collect();
        let s = Summary::of(&times);
        rows.push(Row::new(
            B,
            format!("compile real canister `{}` ({} KiB, {:?})", c.name, c.wasm.len() / 1024, c.toolchain),
            s,
            "ms",
            format!(
                "{} ms CPU; {} KiB/s wall (2 MiB at this rate: {} ms)",
                fmt(Summary::of(&cpu).median),
                fmt(c.wasm.len() as f64 / 1024.0 / (s.median / 1e3)),
                fmt(2048.0 / (c.wasm.len() as f64 / 1024.0) * s.median)
            ),
        ));
    }
    rows
}
