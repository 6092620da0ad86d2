//! `wallet`: a minimal cycles wallet. Uses `ic-cdk-management-canister` for
//! `deposit_cycles` and `raw_rand`, and a raw call for `create_canister` so the
//! test decides exactly how many cycles are attached.

use candid::{CandidType, Deserialize, Nat, Principal};
use ic_cdk::call::{Call, CallFailed};
use ic_cdk_management_canister::{CanisterIdRecord, CanisterSettings, CreateCanisterResult};
use serde_bytes::ByteBuf;

fn to_u128(n: Nat) -> u128 {
    u128::try_from(n.0).unwrap_or_else(|_| ic_cdk::trap("amount does not fit in 128 bits"))
}

/// `canister_cycle_balance128`.
#[ic_cdk::query]
fn balance() -> Nat {
    Nat::from(ic_cdk::api::canister_cycle_balance())
}

/// `canister_liquid_cycle_balance128`.
#[ic_cdk::query]
fn liquid_balance() -> Nat {
    Nat::from(ic_cdk::api::canister_liquid_cycle_balance())
}

/// Accepts all attached cycles; returns the amount accepted.
#[ic_cdk::update]
fn receive() -> Nat {
    let available = ic_cdk::api::msg_cycles_available();
    Nat::from(ic_cdk::api::msg_cycles_accept(available))
}

/// Sends `amount` cycles to `to` with the management canister's
/// `deposit_cycles`. Traps if the call fails.
#[ic_cdk::update]
async fn send(to: Principal, amount: Nat) {
    let arg = CanisterIdRecord { canister_id: to };
    if let Err(e) = ic_cdk_management_canister::deposit_cycles(&arg, to_u128(amount)).await {
        ic_cdk::trap(format!("send: deposit_cycles failed: {e}"));
    }
}

#[derive(CandidType)]
struct CreateCanisterArgs {
    settings: Option<CanisterSettings>,
    sender_canister_version: Option<u64>,
}

/// Calls the management canister's `create_canister` with exactly `cycles`
/// attached (creation fee included); returns the new canister's id. Traps if
/// the call fails.
#[ic_cdk::update]
async fn create(cycles: Nat) -> Principal {
    let arg = CreateCanisterArgs {
        settings: None,
        sender_canister_version: Some(ic_cdk::api::canister_version()),
    };
    let result: Result<CreateCanisterResult, String> =
        match Call::unbounded_wait(Principal::management_canister(), "create_canister")
            .with_arg(&arg)
            .with_cycles(to_u128(cycles))
            .await
        {
            Ok(reply) => reply.candid().map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
    match result {
        Ok(r) => r.canister_id,
        Err(e) => ic_cdk::trap(format!("create: create_canister failed: {e}")),
    }
}

#[derive(CandidType, Deserialize)]
struct CallReply {
    reply: ByteBuf,
    refunded: Nat,
}

#[derive(CandidType, Deserialize)]
enum CallResult {
    Ok(CallReply),
    Err(String),
}

/// Unbounded-wait raw call with `cycles` attached. On success returns the
/// raw reply and the cycles refunded (`msg_cycles_refunded128`); on failure
/// `"<reject code>: <message>"` (code 0: the call was not made).
#[ic_cdk::update]
async fn call_with_cycles(
    callee: Principal,
    method: String,
    arg: ByteBuf,
    cycles: Nat,
) -> CallResult {
    let result = Call::unbounded_wait(callee, &method)
        .with_raw_args(&arg)
        .with_cycles(to_u128(cycles))
        .await;
    match result {
        Ok(reply) => CallResult::Ok(CallReply {
            reply: ByteBuf::from(reply.into_bytes()),
            refunded: Nat::from(ic_cdk::api::msg_cycles_refunded()),
        }),
        Err(CallFailed::CallRejected(r)) => {
            CallResult::Err(format!("{}: {}", r.raw_reject_code(), r.reject_message()))
        }
        Err(e) => CallResult::Err(format!("0: {e}")),
    }
}

/// `cycles_burn128`: burns up to `amount`; returns the amount burned.
#[ic_cdk::update]
fn burn(amount: Nat) -> Nat {
    Nat::from(ic_cdk::api::cycles_burn(to_u128(amount)))
}

/// The management canister's `raw_rand` (32 bytes). Traps if the call fails.
#[ic_cdk::update]
async fn raw_rand() -> ByteBuf {
    match ic_cdk_management_canister::raw_rand().await {
        Ok(bytes) => ByteBuf::from(bytes),
        Err(e) => ic_cdk::trap(format!("raw_rand failed: {e}")),
    }
}

ic_cdk::export_candid!();

#[cfg(test)]
#[path = "../../../shared/did_check.rs"]
mod did_check;
