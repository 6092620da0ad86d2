//! Runs Cairn's execution benchmarks and prints a Markdown table of medians.
//!
//! ```text
//! cargo run --release -p cairn-bench --bin exec-bench [-- OPTIONS]
//!   --runs N        samples (runs) per case; default 5
//!   --quick         small sizes and few iterations (a smoke test, not numbers)
//!   --only LIST     comma-separated subset of: throughput,persistence,metering,install
//! ```
//!
//! Every figure is the median over `--runs` runs of a per-run median; the
//! table also shows the spread of the run medians. Nothing is asserted
//! against the targets: the notes quote them for comparison.

fn main() {
    cairn_bench::cli::main();
}
