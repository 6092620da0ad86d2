//! `hooks`: the system entry points other than update/query. Exports
//! `canister_heartbeat` (counts only while enabled, so it is cheap otherwise,
//! but the export is always there), `canister_inspect_message` (refuses
//! `forbidden`), `canister_global_timer` (a raw export: ic-cdk 0.20 has no
//! macro for it; ic-cdk-timers would bring its own) and
//! `canister_on_low_wasm_memory`. Also wraps assorted System API queries.

use candid::Principal;
use std::cell::{Cell, RefCell};

thread_local! {
    static HEARTBEAT_ENABLED: Cell<bool> = const { Cell::new(false) };
    static HEARTBEATS: Cell<u64> = const { Cell::new(0) };
    static GLOBAL_TIMER_RUNS: Cell<u64> = const { Cell::new(0) };
    static LOW_MEMORY_HOOK_RUNS: Cell<u64> = const { Cell::new(0) };
    static ALLOWED_CALLS: Cell<u64> = const { Cell::new(0) };
    static BALLAST: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

fn incr(c: &'static std::thread::LocalKey<Cell<u64>>) {
    c.with(|c| c.set(c.get() + 1));
}

#[ic_cdk::heartbeat]
fn heartbeat() {
    if HEARTBEAT_ENABLED.with(Cell::get) {
        incr(&HEARTBEATS);
    }
}

#[ic_cdk::update]
fn enable_heartbeat(enabled: bool) {
    HEARTBEAT_ENABLED.with(|e| e.set(enabled));
}

#[ic_cdk::query]
fn heartbeats() -> u64 {
    HEARTBEATS.with(Cell::get)
}

/// Accepts every ingress message except calls to `forbidden`.
#[ic_cdk::inspect_message]
fn inspect_message() {
    if ic_cdk::api::msg_method_name() != "forbidden" {
        ic_cdk::api::accept_message();
    }
}

/// Never reached by ingress (refused by `canister_inspect_message`);
/// inter-canister calls are not inspected and do reach it.
#[ic_cdk::update]
fn forbidden() {}

#[ic_cdk::update]
fn allowed() {
    incr(&ALLOWED_CALLS);
}

#[ic_cdk::query]
fn allowed_calls() -> u64 {
    ALLOWED_CALLS.with(Cell::get)
}

/// `ic0.global_timer_set(timestamp_ns)`; returns the previous deadline.
/// 0 deactivates the timer.
#[ic_cdk::update]
fn set_global_timer(timestamp_ns: u64) -> u64 {
    ic_cdk::api::global_timer_set(timestamp_ns)
}

#[unsafe(export_name = "canister_global_timer")]
extern "C" fn global_timer() {
    incr(&GLOBAL_TIMER_RUNS);
}

#[ic_cdk::query]
fn global_timer_runs() -> u64 {
    GLOBAL_TIMER_RUNS.with(Cell::get)
}

#[ic_cdk::on_low_wasm_memory]
fn on_low_wasm_memory() {
    incr(&LOW_MEMORY_HOOK_RUNS);
}

#[ic_cdk::query]
fn low_memory_hook_runs() -> u64 {
    LOW_MEMORY_HOOK_RUNS.with(Cell::get)
}

/// Allocates and keeps `mib` MiB of heap (to reach a `wasm_memory_threshold`);
/// returns the wasm memory size in 64 KiB pages.
#[ic_cdk::update]
fn allocate(mib: u64) -> u64 {
    let len = usize::try_from(mib)
        .ok()
        .and_then(|m| m.checked_mul(1 << 20))
        .unwrap_or_else(|| ic_cdk::trap("allocate: size too large"));
    let mut block = vec![0u8; len];
    for byte in block.iter_mut().step_by(4096) {
        *byte = 1;
    }
    BALLAST.with_borrow_mut(|b| b.push(std::hint::black_box(block)));
    wasm_memory_pages()
}

fn wasm_memory_pages() -> u64 {
    #[cfg(target_arch = "wasm32")]
    {
        core::arch::wasm32::memory_size::<0>() as u64
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        0
    }
}

/// `ic0.time`, in nanoseconds since the epoch.
#[ic_cdk::query]
fn time_now() -> u64 {
    ic_cdk::api::time()
}

#[ic_cdk::query]
fn canister_version() -> u64 {
    ic_cdk::api::canister_version()
}

/// The canister environment variable `name`, if set (`ic0.env_var_*`).
#[ic_cdk::query]
fn env_var(name: String) -> Option<String> {
    ic_cdk::api::env_var_name_exists(&name).then(|| ic_cdk::api::env_var_value(&name))
}

/// All canister environment variables, in the order the System API lists them.
#[ic_cdk::query]
fn env_vars() -> Vec<(String, String)> {
    (0..ic_cdk::api::env_var_count())
        .map(|i| {
            let name = ic_cdk::api::env_var_name(i);
            let value = ic_cdk::api::env_var_value(&name);
            (name, value)
        })
        .collect()
}

/// `ic0.performance_counter(0)`: instructions executed so far in this message.
#[ic_cdk::query]
fn performance_counter() -> u64 {
    ic_cdk::api::performance_counter(0)
}

#[ic_cdk::query]
fn is_controller(principal: Principal) -> bool {
    ic_cdk::api::is_controller(&principal)
}

/// `ic0.in_replicated_execution`, from an update call (true).
#[ic_cdk::update]
fn in_replicated() -> bool {
    ic_cdk::api::in_replicated_execution()
}

/// `ic0.in_replicated_execution`, from a query: false when called as a query,
/// true when the query method is called as an update.
#[ic_cdk::query]
fn in_replicated_query() -> bool {
    ic_cdk::api::in_replicated_execution()
}

ic_cdk::export_candid!();

#[cfg(test)]
#[path = "../../../shared/did_check.rs"]
mod did_check;
