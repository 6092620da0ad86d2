//! Benchmark 2: the cost of persisting a message that writes one 4 KiB page,
//! in a canister whose heap is 1 MiB vs 1 GiB (every page resident and
//! stored in the page map).
//!
//! - Engine level: [`heap_wat`] on a bare sandbox. `fill` writes every page
//!   once (setup); `write_page` then fills one whole page per message, a
//!   different page each time; the time is `Sandbox::execute` (sync, call,
//!   commit of the dirty page into the page map, re-protect).
//! - Full path: the Rust `stable` canister on the state machine, its heap
//!   grown with `grow_heap` (which writes every 4 KiB of what it allocates),
//!   then one `bump_heap` (a heap counter) per round; the time is `tick()`.

use crate::harness::{DirectCanister, candid_empty, engine};
use crate::modules::heap_wat;
use crate::stats::{Row, Summary, fmt, time};
use cairn_state_machine::{INGRESS_TTL, StateMachine};
use cairn_types::messages::{IngressState, WasmResult};
use cairn_types::{CanisterId, Cycles, Principal};
use std::time::Instant;

const B: &str = "2 persistence";

/// A WAT canister with `wasm_pages` of heap, filled.
pub fn filled_wat_canister(wasm_pages: u32) -> (DirectCanister, f64) {
    let wasm = wat::parse_str(heap_wat(wasm_pages)).expect("heap WAT parses");
    // The sandbox holds its own handle to the wasmtime engine.
    let mut c = DirectCanister::install(&engine(), &wasm);
    let (out, secs) = time(|| c.update("fill", &[]));
    out.result.expect("fill runs");
    assert_eq!(c.stored_heap_pages(), wasm_pages as usize * 16);
    (c, secs)
}

fn wat_samples(c: &mut DirectCanister, iterations: usize) -> (f64, f64) {
    let mut times = Vec::with_capacity(iterations);
    let mut dirty = 0usize;
    for _ in 0..iterations {
        let t = Instant::now();
        let out = c.update("write_page", &[]);
        times.push(t.elapsed().as_secs_f64());
        out.result.expect("write_page runs");
        dirty += out.commit.expect("committed").dirty_pages;
    }
    (Summary::of(&times).median, dirty as f64 / iterations as f64)
}

/// The `stable` canister with its heap grown by `grow_mib` MiB.
struct SmHeap {
    sm: StateMachine,
    id: CanisterId,
    sender: Principal,
}

impl SmHeap {
    fn new(grow_mib: u64) -> SmHeap {
        let mut sm = StateMachine::new();
        let sender = Principal::self_authenticating(b"cairn-bench-user");
        let id = sm
            .install_new(sender, cairn_test_canisters::STABLE, Cycles::new(10_000_000_000_000_000))
            .expect("stable installs");
        // Grow in steps of at most 256 MiB.
        let mut left = grow_mib;
        while left > 0 {
            let step = left.min(256);
            let _: (u64,) = sm.update_candid(sender, id, "grow_heap", (step,)).expect("grow_heap");
            left -= step;
        }
        SmHeap { sm, id, sender }
    }

    fn heap(&self) -> (u64, usize) {
        let exec = self.sm.canister(&self.id).and_then(|c| c.execution_state.as_ref()).expect("installed");
        (exec.wasm_memory.size_bytes(), exec.wasm_memory.page_map.num_stored_pages())
    }

    /// Median seconds of a round with one `bump_heap`.
    fn bump_rounds(&mut self, rounds: usize) -> f64 {
        let arg = candid_empty();
        let mut times = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            // Keep the ingress history tiny (untimed): its per-round prune is
            // O(history) and would swamp the signal (see benchmark 1).
            if self.sm.state().metadata.ingress_history.len() >= 10 {
                self.sm.advance_time(INGRESS_TTL + std::time::Duration::from_secs(60));
                self.sm.tick();
            }
            let id = self.sm.submit_ingress(self.sender, self.id, "bump_heap", arg.clone());
            let t = Instant::now();
            self.sm.tick();
            times.push(t.elapsed().as_secs_f64());
            assert!(matches!(self.sm.ingress_state(&id), Some(IngressState::Completed(WasmResult::Reply(_)))));
        }
        Summary::of(&times).median
    }
}

pub fn run(runs: usize, quick: bool) -> Vec<Row> {
    let mut rows = Vec::new();
    let (iters, rounds) = if quick { (2_000, 300) } else { (20_000, 2_000) };
    let big_pages: u32 = if quick { 4096 } else { 16384 };
    let big_label = if quick { "256 MiB" } else { "1 GiB" };

    // Engine level, WAT.
    let (mut small, fill_small) = filled_wat_canister(16);
    let (mut big, fill_big) = filled_wat_canister(big_pages);
    wat_samples(&mut small, iters / 4);
    wat_samples(&mut big, iters / 4);
    let (mut ms, mut mb, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let (mut ds, mut db) = (0.0, 0.0);
    for _ in 0..runs {
        // Interleaved so that machine noise hits both alike.
        let (s, d1) = wat_samples(&mut small, iters);
        let (b, d2) = wat_samples(&mut big, iters);
        ms.push(s * 1e6);
        mb.push(b * 1e6);
        ratios.push(b / s);
        ds = d1;
        db = d2;
    }
    rows.push(Row::new(
        B,
        "WAT, 1 MiB heap (256 pages stored): write one page + commit",
        Summary::of(&ms),
        "µs/msg",
        format!("{} dirty pages/msg; setup fill {} ms", fmt(ds), fmt(fill_small * 1e3)),
    ));
    rows.push(Row::new(
        B,
        format!("WAT, {big_label} heap ({} pages stored): write one page + commit", big.stored_heap_pages()),
        Summary::of(&mb),
        "µs/msg",
        format!("{} dirty pages/msg; setup fill {} s", fmt(db), fmt(fill_big)),
    ));
    rows.push(Row::new(
        B,
        format!("WAT ratio {big_label} / 1 MiB (per run)"),
        Summary::of(&ratios),
        "×",
        format!("ratio of medians {} (target ≤ 1.2×)", fmt(Summary::of(&mb).median / Summary::of(&ms).median)),
    ));
    drop(small);
    drop(big);

    // The page map alone: replacing one page in a map of 256 vs N pages.
    let page = [7u8; 4096];
    let mut pm_ms = Vec::new();
    let mut pm_mb = Vec::new();
    let mut small_pm = cairn_state::PageMap::new();
    small_pm.update((0..256u64).map(|i| (i, &page)));
    let mut big_pm = cairn_state::PageMap::new();
    big_pm.update((0..big_pages as u64 * 16).map(|i| (i, &page)));
    for _ in 0..runs {
        for (pm, out) in [(&mut small_pm, &mut pm_ms), (&mut big_pm, &mut pm_mb)] {
            let n = pm.num_stored_pages() as u64;
            let mut times = Vec::with_capacity(iters);
            for i in 0..iters as u64 {
                let mut version = pm.clone();
                let t = Instant::now();
                version.update([((i * 7919) % n, &page)]);
                times.push(t.elapsed().as_secs_f64() * 1e6);
                *pm = version;
            }
            out.push(Summary::of(&times).median);
        }
    }
    rows.push(Row::new(
        B,
        "PageMap::update of one page, 256 pages stored",
        Summary::of(&pm_ms),
        "µs",
        "data structure only (imbl OrdMap path copy + 4 KiB copy)",
    ));
    rows.push(Row::new(
        B,
        format!("PageMap::update of one page, {} pages stored", big_pages * 16),
        Summary::of(&pm_mb),
        "µs",
        format!("difference to 256 pages: {} µs", fmt(Summary::of(&pm_mb).median - Summary::of(&pm_ms).median)),
    ));
    drop((small_pm, big_pm));

    // Full path, the Rust `stable` canister.
    let big_mib: u64 = if quick { 256 } else { 1024 };
    let (mut small, t_small) = time(|| SmHeap::new(0));
    let (mut big, t_big) = time(|| SmHeap::new(big_mib));
    small.bump_rounds(rounds / 4);
    big.bump_rounds(rounds / 4);
    let (mut ms, mut mb, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let s = small.bump_rounds(rounds);
        let b = big.bump_rounds(rounds);
        ms.push(s * 1e6);
        mb.push(b * 1e6);
        ratios.push(b / s);
    }
    let (sb, sp) = small.heap();
    let (bb, bp) = big.heap();
    rows.push(Row::new(
        B,
        format!(
            "`stable` canister, {:.1} MiB heap ({sp} pages stored): 1 `bump_heap` per round, tick()",
            sb as f64 / (1 << 20) as f64
        ),
        Summary::of(&ms),
        "µs/round",
        format!("setup {} s", fmt(t_small)),
    ));
    rows.push(Row::new(
        B,
        format!(
            "`stable` canister, {:.0} MiB heap ({bp} pages stored): 1 `bump_heap` per round, tick()",
            bb as f64 / (1 << 20) as f64
        ),
        Summary::of(&mb),
        "µs/round",
        format!("setup (grow_heap) {} s", fmt(t_big)),
    ));
    rows.push(Row::new(
        B,
        "`stable` canister ratio big / small (per run)",
        Summary::of(&ratios),
        "×",
        format!("ratio of medians {} (target ≤ 1.2×)", fmt(Summary::of(&mb).median / Summary::of(&ms).median)),
    ));
    rows
}
