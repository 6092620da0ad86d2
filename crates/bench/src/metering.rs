//! Benchmark 3: metering overhead. The same CPU-bound loop ([`cpu_loop_wat`],
//! loads, stores, branches, calls) on:
//!
//! - Cairn's engine (instrumented module, fuel metering with IC-like costs,
//!   NaN canonicalization, tracked memory), through `Sandbox::execute`;
//! - plain wasmtime 48 with `Config::default()` (no fuel);
//! - plain wasmtime with only `consume_fuel(true)` (default operator costs),
//!   to separate the cost of fuel from the rest of Cairn's configuration.
//!
//! The three run interleaved in one process, `runs` times each.

use crate::harness::{DirectCanister, engine};
use crate::modules::{CPU_LOOP_OPS_PER_ITERATION, cpu_loop_wat_with};
use crate::stats::{Row, Summary, fmt};
use std::time::Instant;

const B: &str = "3 metering";
const EXPORT: &str = "canister_update run";

struct Plain {
    store: wasmtime::Store<()>,
    func: wasmtime::TypedFunc<(), ()>,
    fuel: bool,
}

impl Plain {
    fn new(wasm: &[u8], fuel: bool) -> Plain {
        let mut config = wasmtime::Config::default();
        if fuel {
            config.consume_fuel(true);
        }
        let engine = wasmtime::Engine::new(&config).expect("engine");
        let module = wasmtime::Module::new(&engine, wasm).expect("compiles");
        let mut store = wasmtime::Store::new(&engine, ());
        if fuel {
            store.set_fuel(u64::MAX / 2).expect("fuel");
        }
        let instance = wasmtime::Instance::new(&mut store, &module, &[]).expect("instantiates");
        let func = instance.get_typed_func::<(), ()>(&mut store, EXPORT).expect("export");
        Plain { store, func, fuel }
    }

    /// Seconds for one call, and the fuel it consumed (0 without fuel).
    fn call(&mut self) -> (f64, u64) {
        let before = if self.fuel { self.store.get_fuel().unwrap() } else { 0 };
        let t = Instant::now();
        self.func.call(&mut self.store, ()).expect("runs");
        let dt = t.elapsed().as_secs_f64();
        let used = if self.fuel { before - self.store.get_fuel().unwrap() } else { 0 };
        (dt, used)
    }
}

pub fn run(runs: usize, quick: bool) -> Vec<Row> {
    let iterations: u32 = if quick { 1_000_000 } else { 6_000_000 };
    // A run takes well under a second: take 4× the samples to beat the noise.
    let runs = runs * 4;
    let mut rows = one(runs, iterations, true);
    rows.extend(one(runs, iterations, false));
    rows
}

fn one(runs: usize, iterations: u32, call: bool) -> Vec<Row> {
    // Inlining `mix` replaces call + 5 callee operators + local.set by 3 operators.
    let ops = iterations as u64 * (CPU_LOOP_OPS_PER_ITERATION - if call { 0 } else { 3 });
    let wasm = wat::parse_str(cpu_loop_wat_with(iterations, call)).expect("loop WAT parses");
    let variant = if call { "loop with a call per iteration" } else { "same loop, call inlined by hand" };

    let engine = engine();
    let mut cairn = DirectCanister::install(&engine, &wasm);
    let mut plain = Plain::new(&wasm, false);
    let mut fueled = Plain::new(&wasm, true);

    // Warm-up: one call each.
    cairn.update("run", &[]).result.expect("runs on Cairn");
    plain.call();
    fueled.call();

    let (mut tc, mut tp, mut tf, mut r_cp, mut r_fp) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut cairn_instr, mut plain_fuel) = (0, 0);
    for _ in 0..runs {
        let t = Instant::now();
        let out = cairn.update("run", &[]);
        let c = t.elapsed().as_secs_f64();
        out.result.expect("runs on Cairn");
        cairn_instr = out.instructions;
        let (p, _) = plain.call();
        let (f, fuel) = fueled.call();
        plain_fuel = fuel;
        tc.push(c * 1e3);
        tp.push(p * 1e3);
        tf.push(f * 1e3);
        r_cp.push(c / p);
        r_fp.push(f / p);
    }
    let (sc, sp, sf) = (Summary::of(&tc), Summary::of(&tp), Summary::of(&tf));
    let mops = |s: &Summary| fmt(ops as f64 / (s.median / 1e3) / 1e6);
    vec![
        Row::new(
            B,
            format!("{variant}: Cairn engine (fuel, IC costs), {iterations} iterations ≈ {ops} Wasm ops"),
            sc,
            "ms",
            format!("{} M ops/s; {cairn_instr} instructions charged", mops(&sc)),
        ),
        Row::new(
            B,
            format!("{variant}: plain wasmtime 48, Config::default() (no fuel)"),
            sp,
            "ms",
            format!("{} M ops/s", mops(&sp)),
        ),
        Row::new(
            B,
            format!("{variant}: plain wasmtime 48, consume_fuel(true) only"),
            sf,
            "ms",
            format!("{} M ops/s; {plain_fuel} fuel", mops(&sf)),
        ),
        Row::new(
            B,
            format!("{variant}: ratio Cairn / plain (per run)"),
            Summary::of(&r_cp),
            "×",
            format!("ratio of medians {} (target ≤ 1.3×)", fmt(sc.median / sp.median)),
        ),
        Row::new(
            B,
            format!("{variant}: ratio plain+fuel / plain (per run)"),
            Summary::of(&r_fp),
            "×",
            format!("ratio of medians {}", fmt(sf.median / sp.median)),
        ),
    ]
}
