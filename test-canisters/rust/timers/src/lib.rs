//! `timers`: ic-cdk-timers 1.0. Every timer fires through the global timer
//! (`canister_global_timer`), which makes a self-call to the internal method
//! `<ic-cdk internal> timer_executor` that runs the task.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use ic_cdk_timers::TimerId;

thread_local! {
    static TICKS: Cell<u64> = const { Cell::new(0) };
    static TIMERS: RefCell<Vec<TimerId>> = const { RefCell::new(Vec::new()) };
}

fn tick() {
    TICKS.with(|t| t.set(t.get() + 1));
}

/// One-shot timer: increments `ticks` once, `seconds` from now.
#[ic_cdk::update]
fn set_timer(seconds: u64) {
    let id = ic_cdk_timers::set_timer(Duration::from_secs(seconds), async { tick() });
    TIMERS.with_borrow_mut(|t| t.push(id));
}

/// Interval timer: increments `ticks` every `seconds`.
#[ic_cdk::update]
fn set_interval(seconds: u64) {
    let id = ic_cdk_timers::set_timer_interval(Duration::from_secs(seconds), || async { tick() });
    TIMERS.with_borrow_mut(|t| t.push(id));
}

/// Cancels every timer set so far.
#[ic_cdk::update]
fn clear_all() {
    for id in TIMERS.with_borrow_mut(std::mem::take) {
        ic_cdk_timers::clear_timer(id);
    }
}

#[ic_cdk::query]
fn ticks() -> u64 {
    TICKS.with(Cell::get)
}

ic_cdk::export_candid!();

#[cfg(test)]
#[path = "../../../shared/did_check.rs"]
mod did_check;
