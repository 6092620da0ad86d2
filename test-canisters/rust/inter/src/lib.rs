//! `inter`: inter-canister calls, rejects, traps and rollbacks. Two
//! instances are used as caller and callee of each other.
//!
//! Blobs use `serde_bytes::ByteBuf` so Candid encodes them as `blob` in one go
//! (a `Vec<u8>` is typed `blob` too, but is encoded byte by byte).

use candid::{CandidType, Deserialize, Nat, Principal};
use ic_cdk::call::{Call, CallFailed, Response};
use serde_bytes::ByteBuf;
use std::cell::{Cell, RefCell};
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::Poll;

thread_local! {
    /// Incremented by `forward`, `echo`, `increment_then_trap`, `trap_after_call`.
    static COUNTER: Cell<u64> = const { Cell::new(0) };
    /// Arguments of the `record_seq` calls received, in arrival order.
    static SEQS: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

fn bump() -> u64 {
    COUNTER.with(|c| {
        let v = c.get() + 1;
        c.set(v);
        v
    })
}

#[derive(CandidType, Deserialize)]
struct ForwardArgs {
    callee: Principal,
    method: String,
    arg: ByteBuf,
    cycles: Nat,
    timeout_seconds: Option<u32>,
}

#[derive(CandidType, Deserialize)]
struct RejectInfo {
    code: u32,
    message: String,
}

#[derive(CandidType, Deserialize)]
enum ForwardResult {
    Ok(ByteBuf),
    Err(RejectInfo),
}

fn to_u128(n: Nat) -> u128 {
    u128::try_from(n.0).unwrap_or_else(|_| ic_cdk::trap("amount does not fit in 128 bits"))
}

/// Makes a raw call: bounded-wait when `timeout_seconds` is set, unbounded
/// otherwise. Returns the raw reply, or the reject code and message. A call
/// that ic-cdk refuses to make (`call_perform` failed, or the liquid balance is
/// below the call's cost) is reported as `Err` with code 0.
#[ic_cdk::update]
async fn forward(args: ForwardArgs) -> ForwardResult {
    bump();
    let call = match args.timeout_seconds {
        Some(t) => Call::bounded_wait(args.callee, &args.method).change_timeout(t),
        None => Call::unbounded_wait(args.callee, &args.method),
    };
    let result = call
        .with_raw_args(&args.arg)
        .with_cycles(to_u128(args.cycles))
        .await;
    match result {
        Ok(reply) => ForwardResult::Ok(ByteBuf::from(reply.into_bytes())),
        Err(CallFailed::CallRejected(r)) => ForwardResult::Err(RejectInfo {
            code: r.raw_reject_code(),
            message: r.reject_message().to_string(),
        }),
        Err(e) => ForwardResult::Err(RejectInfo {
            code: 0,
            message: e.to_string(),
        }),
    }
}

/// Returns its argument; increments the counter.
#[ic_cdk::update]
fn echo(data: ByteBuf) -> ByteBuf {
    bump();
    data
}

/// Rejects the call explicitly (`msg_reject`, reject code 4 CANISTER_REJECT).
#[ic_cdk::update(manual_reply = true)]
fn reject_with(message: String) {
    ic_cdk::api::msg_reject(message);
}

#[ic_cdk::update]
fn trap_with(message: String) {
    ic_cdk::trap(message);
}

/// Accepts up to `max` of the attached cycles; returns the amount accepted.
#[ic_cdk::update]
fn accept_cycles(max: Nat) -> Nat {
    Nat::from(ic_cdk::api::msg_cycles_accept(to_u128(max)))
}

#[ic_cdk::query]
fn cycles_balance() -> Nat {
    Nat::from(ic_cdk::api::canister_cycle_balance())
}

/// Increments the counter (kept: committed when the call is made), calls
/// `echo` on `callee`, then in the reply handler increments the counter again
/// and traps: the second increment rolls back, the callee's effect stays.
#[ic_cdk::update]
async fn trap_after_call(callee: Principal) {
    bump();
    let reply = Call::unbounded_wait(callee, "echo")
        .with_arg(ByteBuf::from(b"trap_after_call".to_vec()))
        .await;
    bump();
    ic_cdk::trap(format!(
        "trap_after_call: trapping in the reply handler (call ok: {})",
        reply.is_ok()
    ));
}

/// Changes heap state, then traps: the change must roll back.
#[ic_cdk::update]
fn increment_then_trap() {
    bump();
    ic_cdk::trap("increment_then_trap");
}

#[ic_cdk::query]
fn counter() -> u64 {
    COUNTER.with(Cell::get)
}

/// A CPU loop of `n` iterations; returns a checksum that depends on every one.
#[ic_cdk::update]
fn busy(n: u64) -> u64 {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..std::hint::black_box(n) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x = x.wrapping_add(std::hint::black_box(i));
    }
    x
}

/// Sends `n` calls `record_seq(0..n)` to `callee` before awaiting any of
/// them (each future is polled once, in order, which performs its call), then
/// waits for all. Traps if any failed.
#[ic_cdk::update]
async fn sequence(callee: Principal, n: u32) {
    type CallFut = Pin<Box<dyn Future<Output = Result<Response, CallFailed>>>>;
    let mut calls: Vec<(CallFut, Option<Result<Response, CallFailed>>)> = (0..n)
        .map(|i| {
            let fut: CallFut = Box::pin(
                Call::unbounded_wait(callee, "record_seq")
                    .with_arg(i)
                    .into_future(),
            );
            (fut, None)
        })
        .collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (fut, result) in calls.iter_mut().filter(|(_, r)| r.is_none()) {
            match fut.as_mut().poll(cx) {
                Poll::Ready(r) => *result = Some(r),
                Poll::Pending => pending = true,
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    for (i, (_, result)) in calls.into_iter().enumerate() {
        if let Some(Err(e)) = result {
            ic_cdk::trap(format!("sequence: call {i} failed: {e}"));
        }
    }
}

#[ic_cdk::update]
fn record_seq(i: u32) {
    SEQS.with_borrow_mut(|s| s.push(i));
}

#[ic_cdk::query]
fn seqs() -> Vec<u32> {
    SEQS.with_borrow(Clone::clone)
}

/// Composite query: returns `callee`'s `counter` query.
#[ic_cdk::query(composite = true)]
async fn composite(callee: Principal) -> u64 {
    match Call::unbounded_wait(callee, "counter").await {
        Ok(reply) => reply
            .candid()
            .unwrap_or_else(|e| ic_cdk::trap(format!("composite: bad reply: {e}"))),
        Err(e) => ic_cdk::trap(format!("composite: call failed: {e}")),
    }
}

/// Calls its own `echo` (which increments the counter) and returns the
/// counter afterwards.
#[ic_cdk::update]
async fn self_call() -> u64 {
    let arg = ByteBuf::from(b"self_call".to_vec());
    let reply: ByteBuf = Call::unbounded_wait(ic_cdk::api::canister_self(), "echo")
        .with_arg(&arg)
        .await
        .unwrap_or_else(|e| ic_cdk::trap(format!("self_call: call failed: {e}")))
        .candid()
        .unwrap_or_else(|e| ic_cdk::trap(format!("self_call: bad reply: {e}")));
    if reply != arg {
        ic_cdk::trap("self_call: echo returned something else");
    }
    COUNTER.with(Cell::get)
}

ic_cdk::export_candid!();

#[cfg(test)]
#[path = "../../../shared/did_check.rs"]
mod did_check;
