//! `hostile`: canisters that misbehave, to test limits and rollback:
//! instruction limits, wasm/stable memory limits, stack overflow, reply
//! size, trap rollback of every kind of state, and unbounded self-calls.

use ic_cdk::call::Call;
use serde_bytes::ByteBuf;
use std::cell::{Cell, RefCell};
use std::hint::black_box;

thread_local! {
    /// Changed (then rolled back) by `write_then_trap`.
    static STATE: Cell<u64> = const { Cell::new(0) };
    /// Number of `self_call_loop` executions.
    static SELF_CALLS: Cell<u64> = const { Cell::new(0) };
    static BALLAST: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// Never returns: runs into the instruction limit.
#[ic_cdk::update]
fn infinite_loop() {
    let mut i = 0u64;
    loop {
        i = black_box(i.wrapping_add(1));
    }
}

/// Never returns: runs into the query instruction limit.
#[ic_cdk::query]
fn infinite_loop_query() {
    let mut i = 0u64;
    loop {
        i = black_box(i.wrapping_add(1));
    }
}

/// Allocates heap in 16 MiB steps, writing to every 4 KiB page, until an
/// allocation fails; then traps ("memory_bomb: allocation failed after N MiB").
/// The replica may trap it earlier (memory limit, instruction limit).
#[ic_cdk::update]
fn memory_bomb() {
    const STEP: usize = 16 << 20;
    let mut total_mib = 0usize;
    loop {
        let mut block: Vec<u8> = Vec::new();
        if block.try_reserve_exact(STEP).is_err() {
            ic_cdk::trap(format!(
                "memory_bomb: allocation failed after {total_mib} MiB"
            ));
        }
        block.resize(STEP, 0);
        for byte in block.iter_mut().step_by(4096) {
            *byte = 0xAB;
        }
        BALLAST.with_borrow_mut(|b| b.push(black_box(block)));
        total_mib += STEP >> 20;
    }
}

/// Grows stable memory (1 GiB steps, then smaller) until `stable64_grow`
/// fails even for one page; then traps ("stable_bomb: stable memory full at
/// N pages").
#[ic_cdk::update]
fn stable_bomb() {
    let mut step: u64 = 16384;
    loop {
        if ic_cdk::api::stable_grow(step) == u64::MAX {
            if step == 1 {
                ic_cdk::trap(format!(
                    "stable_bomb: stable memory full at {} pages",
                    ic_cdk::api::stable_size()
                ));
            }
            step /= 2;
        } else {
            // Touch the last new page.
            let end = ic_cdk::api::stable_size() * 65536;
            ic_cdk::api::stable_write(end - 1, &[0xAB]);
        }
    }
}

/// Non-tail recursion `depth` deep with a 256-byte frame; returns `depth`.
/// A large `depth` overflows the stack.
#[ic_cdk::update]
fn deep_recursion(depth: u64) -> u64 {
    recurse(black_box(depth))
}

#[inline(never)]
fn recurse(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let mut frame = [0u8; 256];
    black_box(&mut frame);
    let below = recurse(black_box(n - 1));
    below.wrapping_add(1 + u64::from(black_box(&frame)[(n % 256) as usize]))
}

/// Replies with `len` bytes (`i as u8` at index i).
#[ic_cdk::update]
fn huge_reply(len: u64) -> ByteBuf {
    let len = usize::try_from(len).unwrap_or_else(|_| ic_cdk::trap("huge_reply: too large"));
    ByteBuf::from((0..len).map(|i| i as u8).collect::<Vec<u8>>())
}

/// Increments `STATE` on the heap, writes it to stable memory (growing it
/// to one page if empty) and to certified data, then traps: all three
/// changes must roll back.
#[ic_cdk::update]
fn write_then_trap() {
    let value = STATE.with(|s| {
        s.set(s.get() + 1);
        s.get()
    });
    if ic_cdk::api::stable_size() == 0 && ic_cdk::api::stable_grow(1) == u64::MAX {
        ic_cdk::trap("write_then_trap: stable_grow failed");
    }
    ic_cdk::api::stable_write(0, &value.to_le_bytes());
    ic_cdk::api::certified_data_set(value.to_le_bytes());
    ic_cdk::trap(format!("write_then_trap: wrote {value}, now trapping"));
}

/// The heap value `write_then_trap` tries to change.
#[ic_cdk::query]
fn state() -> u64 {
    STATE.with(Cell::get)
}

/// The stable-memory value `write_then_trap` tries to change (bytes 0..8,
/// little endian; 0 while stable memory is empty).
#[ic_cdk::query]
fn stable_state() -> u64 {
    if ic_cdk::api::stable_size() == 0 {
        return 0;
    }
    let mut bytes = [0u8; 8];
    ic_cdk::api::stable_read(0, &mut bytes);
    u64::from_le_bytes(bytes)
}

/// Calls itself and awaits the reply, forever: every execution makes the
/// next call, so the call tree grows until a call cannot be made (cycles,
/// queue or memory limits), then that execution traps and the rejects unwind.
#[ic_cdk::update]
async fn self_call_loop() {
    SELF_CALLS.with(|c| c.set(c.get() + 1));
    if let Err(e) = Call::unbounded_wait(ic_cdk::api::canister_self(), "self_call_loop").await {
        ic_cdk::trap(format!("self_call_loop: call failed: {e}"));
    }
}

/// Number of `self_call_loop` executions so far.
#[ic_cdk::query]
fn self_calls() -> u64 {
    SELF_CALLS.with(Cell::get)
}

ic_cdk::export_candid!();

#[cfg(test)]
#[path = "../../../shared/did_check.rs"]
mod did_check;
