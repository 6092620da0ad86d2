//! Benchmark 1: trivial update throughput (the Rust counter's `inc`).
//!
//! Full path: ingress submitted to the state machine, one `tick()` executes
//! the round (induction, scheduling, System API, commit of dirty pages,
//! ingress history). Only `tick()` is timed; building the ingress messages
//! (`submit_ingress`, which hashes each one) is timed separately.
//!
//! Cost split: the same message directly on a [`Sandbox`](cairn_wasm::Sandbox)
//! (engine only: sync, call, System API, commit), a WAT counter, a no-op, a
//! probe that dirties k pages (the slope is the cost of one dirty page), and
//! an empty function on plain wasmtime (the floor).

use crate::harness::{DirectCanister, candid_empty, engine};
use crate::modules::counter_wat;
use crate::stats::{Row, Summary, fmt, thread_ctx_switches, thread_minflt};
use cairn_state_machine::{INGRESS_TTL, StateMachine};
use cairn_types::messages::{IngressState, IngressStatus, MessageId, WasmResult};
use cairn_types::{CanisterId, Cycles, Principal};
use std::time::{Duration, Instant};

const B: &str = "1 throughput";

/// The counter canister on a state machine.
pub struct SmCounter {
    pub sm: StateMachine,
    pub id: CanisterId,
    arg: Vec<u8>,
    sender: Principal,
}

impl Default for SmCounter {
    fn default() -> Self {
        Self::new()
    }
}

impl SmCounter {
    pub fn new() -> Self {
        let mut sm = StateMachine::new();
        let sender = Principal::self_authenticating(b"cairn-bench-user");
        let id = sm
            .install_new(sender, cairn_test_canisters::COUNTER, Cycles::new(10_000_000_000_000_000))
            .expect("counter installs");
        SmCounter { sm, id, arg: candid_empty(), sender }
    }

    /// Submits `n` `inc` messages; returns the last id and the seconds spent.
    pub fn submit(&mut self, n: usize) -> (MessageId, f64) {
        let t = Instant::now();
        let mut last = None;
        for _ in 0..n {
            last = Some(self.sm.submit_ingress(self.sender, self.id, "inc", self.arg.clone()));
        }
        (last.expect("n > 0"), t.elapsed().as_secs_f64())
    }

    /// Empties the ingress history (time moves past the retention; one empty round).
    pub fn reset_history(&mut self) {
        self.sm.advance_time(INGRESS_TTL + Duration::from_secs(60));
        self.sm.tick();
        assert_eq!(self.history_len(), 0);
    }

    /// Statuses in the ingress history.
    pub fn history_len(&self) -> usize {
        self.sm.state().metadata.ingress_history.len()
    }

    /// Adds `n` terminal statuses to the ingress history cheaply: ingress to
    /// a canister that does not exist fails at induction and is recorded.
    pub fn grow_history(&mut self, n: usize) {
        let missing = CanisterId::from_u64(999_999);
        for chunk in 0..n.div_ceil(10_000) {
            for _ in 0..10_000.min(n - chunk * 10_000) {
                self.sm.submit_ingress(self.sender, missing, "inc", self.arg.clone());
            }
            self.sm.tick();
        }
    }

    /// Median seconds of an empty round (no ingress).
    pub fn empty_rounds(&mut self, rounds: usize) -> f64 {
        let times: Vec<f64> = (0..rounds)
            .map(|_| {
                let t = Instant::now();
                self.sm.tick();
                t.elapsed().as_secs_f64()
            })
            .collect();
        Summary::of(&times).median
    }

    /// The counter's value (a query).
    pub fn value(&mut self) -> u64 {
        let bytes = self.sm.query(self.sender, self.id, "get", candid_empty()).expect("get");
        candid::decode_one(&bytes).expect("nat64")
    }

    fn check_completed(&self, id: &MessageId) {
        match self.sm.ingress_state(id) {
            Some(IngressState::Completed(WasmResult::Reply(_))) => {}
            other => panic!("inc did not complete in its round: {other:?}"),
        }
    }
}

/// Per-message results of one configuration of rounds.
struct RoundSamples {
    /// Seconds per message, one value per round.
    per_msg: Vec<f64>,
    submit_per_msg: Vec<f64>,
    instructions_per_msg: f64,
    minflt_per_msg: f64,
}

/// Runs `rounds` rounds of `per_round` messages. The ingress history is
/// emptied (untimed) whenever it holds `reset_at` statuses or more, so that
/// `IngressHistory::prune` (O(history) per round, measured separately) does
/// not dominate.
fn run_rounds(c: &mut SmCounter, per_round: usize, rounds: usize, reset_at: usize) -> RoundSamples {
    let mut per_msg = Vec::with_capacity(rounds);
    let mut submit_per_msg = Vec::with_capacity(rounds);
    let mut instructions = 0u64;
    let mut messages = 0u64;
    let mut faults = 0u64;
    for _ in 0..rounds {
        if c.history_len() >= reset_at {
            c.reset_history();
        }
        let (last, submit) = c.submit(per_round);
        let f0 = thread_minflt();
        let t = Instant::now();
        let stats = c.sm.tick();
        let dt = t.elapsed().as_secs_f64();
        faults += thread_minflt() - f0;
        assert_eq!(stats.messages_executed, per_round as u64, "{stats:?}");
        c.check_completed(&last);
        instructions += stats.instructions;
        messages += stats.messages_executed;
        per_msg.push(dt / per_round as f64);
        submit_per_msg.push(submit / per_round as f64);
    }
    RoundSamples {
        per_msg,
        submit_per_msg,
        instructions_per_msg: instructions as f64 / messages as f64,
        minflt_per_msg: faults as f64 / messages as f64,
    }
}

/// Per-message seconds of `method` on a direct canister: the median of
/// `iterations` single executions, plus mean dirty pages, instructions and
/// minor faults per message.
pub struct DirectSamples {
    pub median: f64,
    pub dirty_pages: f64,
    pub instructions: f64,
    pub minflt: f64,
    pub ctx_switches: f64,
}

pub fn direct(c: &mut DirectCanister, method: &str, arg: &[u8], iterations: usize) -> DirectSamples {
    let mut times = Vec::with_capacity(iterations);
    let (mut dirty, mut instr) = (0u64, 0u64);
    let f0 = thread_minflt();
    let s0 = thread_ctx_switches();
    for _ in 0..iterations {
        let t = Instant::now();
        let out = c.update(method, arg);
        times.push(t.elapsed().as_secs_f64());
        out.result.expect("executes");
        dirty += out.commit.expect("committed").dirty_pages as u64;
        instr += out.instructions;
    }
    let n = iterations as f64;
    DirectSamples {
        median: Summary::of(&times).median,
        dirty_pages: dirty as f64 / n,
        instructions: instr as f64 / n,
        minflt: (thread_minflt() - f0) as f64 / n,
        ctx_switches: (thread_ctx_switches() - s0) as f64 / n,
    }
}

/// Seconds per call of an empty exported function on plain wasmtime
/// (default config): the floor of any execution.
pub fn plain_wasmtime_call(iterations: usize) -> f64 {
    let engine = wasmtime::Engine::default();
    let wasm = wat::parse_str(r#"(module (func (export "f")))"#).unwrap();
    let module = wasmtime::Module::new(&engine, &wasm).unwrap();
    let mut store = wasmtime::Store::new(&engine, ());
    let instance = wasmtime::Instance::new(&mut store, &module, &[]).unwrap();
    let f = instance.get_typed_func::<(), ()>(&mut store, "f").unwrap();
    let t = Instant::now();
    for _ in 0..iterations {
        f.call(&mut store, ()).unwrap();
    }
    t.elapsed().as_secs_f64() / iterations as f64
}

/// Seconds for one `mprotect(RW)` + `mprotect(R)` pair on one page of a
/// private anonymous mapping: the syscall part of tracking one dirty page
/// (the engine does one in the fault handler and one when re-protecting).
pub fn mprotect_pair(iterations: usize) -> f64 {
    const LEN: usize = 1 << 20;
    // SAFETY: a private anonymous mapping we own, unmapped below.
    unsafe {
        let base = libc::mmap(
            std::ptr::null_mut(),
            LEN,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(base, libc::MAP_FAILED);
        for p in 0..LEN / 4096 {
            *(base as *mut u8).add(p * 4096) = 1;
        }
        libc::mprotect(base, LEN, libc::PROT_READ);
        let t = Instant::now();
        for i in 0..iterations {
            let page = (base as *mut u8).add((i % (LEN / 4096)) * 4096) as *mut libc::c_void;
            libc::mprotect(page, 4096, libc::PROT_READ | libc::PROT_WRITE);
            *(page as *mut u8) = i as u8;
            libc::mprotect(page, 4096, libc::PROT_READ);
        }
        let dt = t.elapsed().as_secs_f64() / iterations as f64;
        libc::munmap(base, LEN);
        dt
    }
}

/// Runs benchmark 1. `runs` samples of each configuration.
pub fn run(runs: usize, quick: bool) -> Vec<Row> {
    let mut rows = Vec::new();
    let (batch_rounds, single_rounds, direct_iters) = if quick { (3, 300, 2_000) } else { (10, 2_000, 20_000) };

    // 1a. 1,000 messages per round through the state machine.
    let mut c = SmCounter::new();
    run_rounds(&mut c, 1_000, 3, 1); // warm-up
    let mut medians = Vec::new();
    let mut submits = Vec::new();
    let (mut instr, mut faults) = (0.0, 0.0);
    for _ in 0..runs {
        let s = run_rounds(&mut c, 1_000, batch_rounds, 1);
        medians.push(Summary::of(&s.per_msg).median);
        submits.push(Summary::of(&s.submit_per_msg).median);
        instr = s.instructions_per_msg;
        faults = s.minflt_per_msg;
    }
    let v = Summary::of(&medians);
    let us = Summary::of(&medians.iter().map(|s| s * 1e6).collect::<Vec<_>>());
    let rate = Summary::of(&medians.iter().map(|s| 1.0 / s).collect::<Vec<_>>());
    rows.push(Row::new(
        B,
        "state machine, 1,000 `inc` per round: tick() time per message",
        us,
        "µs/msg",
        format!(
            "= {} msgs/s (target ≥ 50,000 msgs/s, ≤ 20 µs); ingress history emptied before every round (the round's own prune still walks its 1,000 statuses); {} instructions/msg; {} minor faults/msg",
            fmt(1.0 / v.median),
            fmt(instr),
            fmt(faults)
        ),
    ));
    rows.push(Row::new(
        B,
        "state machine, 1,000 `inc` per round: throughput",
        rate,
        "msgs/s",
        "one execution thread; rounds of 1,000 ingress",
    ));
    let sub = Summary::of(&submits.iter().map(|s| s * 1e6).collect::<Vec<_>>());
    rows.push(Row::new(
        B,
        "submit_ingress per message (not in the tick time)",
        sub,
        "µs/msg",
        "builds the Ingress (SHA-256 message id); what a node's ingress pool would do",
    ));
    let total = c.value();
    assert!(total > 0);

    // 1b. One message per round.
    let mut c = SmCounter::new();
    run_rounds(&mut c, 1, 50, 10);
    let mut medians = Vec::new();
    for _ in 0..runs {
        let s = run_rounds(&mut c, 1, single_rounds, 10);
        medians.push(Summary::of(&s.per_msg).median);
    }
    let us = Summary::of(&medians.iter().map(|s| s * 1e6).collect::<Vec<_>>());
    rows.push(Row::new(
        B,
        "state machine, 1 `inc` per round: tick() time",
        us,
        "µs/round",
        format!("= {} rounds/s; ingress history emptied every 10 rounds (≤ 10 statuses)", fmt(1.0 / us.median * 1e6)),
    ));

    // 1c'. The ingress history's share of a message: two status changes
    // (Received at induction, Completed at the end), each updating two
    // persistent maps, on a history of ~1,000 statuses like a round's.
    let template =
        c.sm.state().metadata.ingress_history.iter().next().map(|(_, s)| s.clone()).expect("a status exists");
    let mut per_msg = Vec::new();
    for _ in 0..runs {
        let mut history = cairn_state::IngressHistory::default();
        let n = 20_000u64;
        let t = Instant::now();
        for i in 0..n {
            let mut id = [0u8; 32];
            id[..8].copy_from_slice(&(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_be_bytes());
            let id = MessageId(id);
            history.set(id, IngressStatus { state: IngressState::Received, ..template.clone() });
            history.set(id, IngressStatus { state: template.state.clone(), ..template.clone() });
            if history.len() >= 1_000 {
                history = cairn_state::IngressHistory::default();
            }
        }
        per_msg.push(t.elapsed().as_secs_f64() / n as f64 * 1e6);
    }
    rows.push(Row::new(
        B,
        "IngressHistory::set ×2 per message (Received, Completed), history ≤ 1,000",
        Summary::of(&per_msg),
        "µs/msg",
        "data structure only; part of the execution-layer share of a message",
    ));

    // 1c. Fixed cost of a round vs the size of the ingress history.
    let sizes: &[usize] = if quick { &[0, 10_000, 50_000] } else { &[0, 10_000, 100_000, 300_000] };
    for &size in sizes {
        let mut medians = Vec::new();
        for _ in 0..runs {
            c.reset_history();
            c.grow_history(size);
            medians.push(c.empty_rounds(if size >= 100_000 { 5 } else { 20 }) * 1e6);
        }
        rows.push(Row::new(
            B,
            format!("state machine, empty round, ingress history of {size} statuses"),
            Summary::of(&medians),
            "µs/round",
            "IngressHistory::prune rebuilds the map every round (imbl OrdMap::split is O(n log n))",
        ));
    }
    drop(c);

    // 1d. The cost split, engine level.
    let engine = engine();
    let mut counter = DirectCanister::install(&engine, cairn_test_canisters::COUNTER);
    let wat = wat::parse_str(counter_wat()).expect("counter WAT parses");
    let mut watc = DirectCanister::install(&engine, &wat);
    let arg = candid_empty();
    let cases: Vec<(String, &str)> = vec![
        ("Rust counter `inc` (ic-cdk), Sandbox::execute".into(), "rust"),
        ("WAT counter `inc`, Sandbox::execute".into(), "inc"),
        ("WAT `noop` (no write, no reply), Sandbox::execute".into(), "noop"),
        ("WAT `touch_1` (1 dirty page)".into(), "touch_1"),
        ("WAT `touch_4` (4 dirty pages)".into(), "touch_4"),
        ("WAT `touch_16` (16 dirty pages)".into(), "touch_16"),
        ("WAT `touch_64` (64 dirty pages)".into(), "touch_64"),
    ];
    let mut slope_points: Vec<(f64, Vec<f64>)> = Vec::new();
    for (label, method) in cases {
        let mut medians = Vec::new();
        let mut last = None;
        for run in 0..=runs {
            let s = if method == "rust" {
                direct(&mut counter, "inc", &arg, direct_iters)
            } else {
                direct(&mut watc, method, &[], direct_iters)
            };
            if run > 0 {
                // run 0 is the warm-up
                medians.push(s.median * 1e6);
            }
            last = Some(s);
        }
        let s = last.expect("ran");
        if let Some(k) = method.strip_prefix("touch_") {
            slope_points.push((k.parse().unwrap(), medians.clone()));
        }
        rows.push(Row::new(
            B,
            label,
            Summary::of(&medians),
            "µs/msg",
            format!(
                "{} dirty pages/msg, {} instructions/msg, {} minor faults/msg, {} ctx switches/msg",
                fmt(s.dirty_pages),
                fmt(s.instructions),
                fmt(s.minflt),
                fmt(s.ctx_switches)
            ),
        ));
    }
    // Which pages does the Rust `inc` dirty, and how many actually change?
    let before = counter.heap().clone();
    let out = counter.update("inc", &arg);
    let dirty = out.commit.expect("committed").dirty_pages;
    let changed: Vec<u64> = before.page_map.diff(&counter.heap().page_map).map(|(i, _)| i).collect();
    rows.push(Row::new(
        B,
        "Rust counter `inc`: pages dirtied vs pages whose content changed",
        Summary::of(&[dirty as f64]),
        "pages",
        format!(
            "content changed in pages {changed:?} (4 KiB page indices); heap {} KiB; saved globals {:?} (the first is __stack_pointer)",
            counter.heap_bytes() / 1024,
            counter.globals()
        ),
    ));
    // Slope of time vs dirty pages, per run (least squares over k = 1, 4, 16, 64).
    let slopes: Vec<f64> = (0..runs)
        .map(|r| {
            let pts: Vec<(f64, f64)> = slope_points.iter().map(|(k, m)| (*k, m[r])).collect();
            let n = pts.len() as f64;
            let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
            let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
            let num: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
            let den: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
            num / den
        })
        .collect();
    rows.push(Row::new(
        B,
        "cost of one dirty page (slope of touch_k over k = 1..64)",
        Summary::of(&slopes),
        "µs/page",
        "write fault (SIGSEGV → handler → mprotect) + copy into the page map + re-protect",
    ));
    let mp: Vec<f64> = (0..runs).map(|_| mprotect_pair(100_000) * 1e6).collect();
    rows.push(Row::new(
        B,
        "mprotect(RW) + write + mprotect(R) on one page, no signal",
        Summary::of(&mp),
        "µs",
        "the syscall floor of tracking one dirty page",
    ));
    let floor: Vec<f64> = (0..runs).map(|_| plain_wasmtime_call(200_000) * 1e6).collect();
    rows.push(Row::new(
        B,
        "plain wasmtime: call an empty export (default config)",
        Summary::of(&floor),
        "µs",
        "the floor of any execution",
    ));
    rows
}
