//! `counter`: the smallest useful canister. `inc` is the benchmark message, so
//! it is kept minimal: one `Cell` update and a Candid `nat64` reply.

use candid::Principal;
use std::cell::Cell;

thread_local! {
    static COUNTER: Cell<u64> = const { Cell::new(0) };
}

/// Increments the counter and returns the new value.
#[ic_cdk::update]
fn inc() -> u64 {
    COUNTER.with(|c| {
        let v = c.get() + 1;
        c.set(v);
        v
    })
}

#[ic_cdk::query]
fn get() -> u64 {
    COUNTER.with(Cell::get)
}

#[ic_cdk::update]
fn set(value: u64) {
    COUNTER.with(|c| c.set(value));
}

/// Returns the caller of this query.
#[ic_cdk::query]
fn whoami() -> Principal {
    ic_cdk::api::msg_caller()
}

/// Sets the canister's certified data (at most 32 bytes, or the call traps).
#[ic_cdk::update]
fn set_certified(data: Vec<u8>) {
    ic_cdk::api::certified_data_set(data);
}

/// The data certificate, available only in non-replicated queries.
#[ic_cdk::query]
fn get_data_certificate() -> Option<Vec<u8>> {
    ic_cdk::api::data_certificate()
}

ic_cdk::export_candid!();

#[cfg(test)]
#[path = "../../../shared/did_check.rs"]
mod did_check;
