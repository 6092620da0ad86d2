//! Execution benchmarks for Cairn (issue: canister execution).
//!
//! Everything here *measures*; nothing asserts a target. The binary
//! `exec-bench` (`cargo run --release -p cairn-bench --bin exec-bench`) runs
//! every benchmark and prints medians; `docs/benchmarks.md` records results.
//!
//! - [`throughput`]: the counter's `inc` through the state machine (1,000
//!   and 1 message per round) and, to split the cost, through a bare
//!   [`Sandbox`] (real counter, WAT counter, no-op, k dirty pages) and plain
//!   wasmtime.
//! - [`persistence`]: writing one 4 KiB page in a 1 MiB vs a 1 GiB heap,
//!   with a WAT module on the engine and the `stable` canister on the state
//!   machine.
//! - [`metering`]: a CPU-bound loop on Cairn's engine (fuel metering) vs
//!   plain wasmtime 48 without fuel (and with default fuel).
//! - [`install`]: installing a generated ~2 MiB module (compile + init), then
//!   the same module on a second canister (compilation cache).
//!
//! All functions that execute Wasm must run on a thread made by
//! [`cairn_wasm::spawn_execution_thread`].

pub mod cli;
pub mod harness;
pub mod install;
pub mod metering;
pub mod modules;
pub mod persistence;
pub mod stats;
pub mod throughput;

pub use stats::{Row, Summary};
