//! The command line of `exec-bench` (and of `cargo bench -p cairn-bench`).
//!
//! ```text
//!   --runs N        samples (runs) per case; default 5
//!   --quick         small sizes and few iterations (a smoke test, not numbers)
//!   --only LIST     comma-separated subset of: throughput,persistence,metering,install
//! ```

use crate::stats::{loadavg, print_table};
use crate::{Row, install, metering, persistence, throughput};

/// Parses the process arguments, runs the selected benchmarks on one
/// execution thread and prints the table.
pub fn main() {
    let mut runs = 5usize;
    let mut quick = false;
    let mut only: Option<Vec<String>> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().and_then(|v| v.parse().ok()).expect("--runs N"),
            "--quick" => quick = true,
            "--only" => only = Some(args.next().expect("--only LIST").split(',').map(str::to_string).collect()),
            "--bench" => {} // passed by `cargo bench`
            other => panic!("unknown argument {other}; see the source for usage"),
        }
    }
    let selected = move |name: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == name));
    let load_before = loadavg();
    let started = std::time::Instant::now();
    // Everything runs on one execution thread (big native stack), as a node would.
    let rows = cairn_wasm::spawn_execution_thread("exec-bench".into(), move || {
        let mut rows: Vec<Row> = Vec::new();
        let mut section = |name: &str, f: &dyn Fn() -> Vec<Row>| {
            if selected(name) {
                eprintln!("running {name} (load {})...", loadavg());
                let t = std::time::Instant::now();
                rows.extend(f());
                eprintln!("  {name} took {:.1} s", t.elapsed().as_secs_f64());
            }
        };
        section("throughput", &|| throughput::run(runs, quick));
        section("persistence", &|| persistence::run(runs, quick));
        section("metering", &|| metering::run(runs, quick));
        section("install", &|| install::run(runs, quick));
        rows
    })
    .expect("spawns the execution thread")
    .join()
    .expect("benchmarks ran");
    println!(
        "cairn exec-bench: {} runs per case{}; {} CPUs; load average before {} / after {}; {:.0} s",
        runs,
        if quick { " (--quick: smoke sizes)" } else { "" },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_before,
        loadavg(),
        started.elapsed().as_secs_f64()
    );
    println!();
    print_table(&rows);
}
