//! Execution tests: real ic-cdk and Motoko canisters (built from source by
//! `cairn-test-canisters`) and hand-written modules, driven through the
//! state machine.

mod canisters;
mod cycles;
mod determinism;
mod hostile;
mod management;
mod motoko;
mod system_api;

use cairn_state_machine::{CallError, StateMachine};
use cairn_types::{CanisterId, Cycles, ErrorCode, Principal};
use candid::{CandidType, Deserialize, Nat};
use serde_bytes::ByteBuf;

/// Cycles given to most test canisters.
pub const CYCLES: Cycles = Cycles::new(100_000_000_000_000);

/// The user driving the tests.
pub fn user() -> Principal {
    Principal::self_authenticating(b"cairn-test-user")
}

/// Installs `wasm` in a fresh canister controlled by [`user`].
pub fn install(sm: &mut StateMachine, wasm: &[u8]) -> CanisterId {
    sm.install_new(user(), wasm, CYCLES).expect("install succeeds")
}

/// Candid principal of a canister id.
pub fn cp(id: CanisterId) -> candid::Principal {
    candid::Principal::from_slice(id.as_slice())
}

/// Encodes Candid arguments.
pub fn args<A: candid::utils::ArgumentEncoder>(a: A) -> Vec<u8> {
    candid::encode_args(a).unwrap()
}

/// The error code of a failed call.
pub fn code<T: std::fmt::Debug>(r: Result<T, CallError>) -> ErrorCode {
    r.expect_err("the call should fail").code().expect("a system error")
}

/// The argument of `inter.forward`.
#[derive(CandidType)]
pub struct ForwardArgs {
    pub callee: candid::Principal,
    pub method: String,
    pub arg: ByteBuf,
    pub cycles: Nat,
    pub timeout_seconds: Option<u32>,
}

#[derive(CandidType, Deserialize, Debug, PartialEq)]
pub struct RejectInfo {
    pub code: u32,
    pub message: String,
}

/// The result of `inter.forward`.
#[derive(CandidType, Deserialize, Debug, PartialEq)]
pub enum ForwardResult {
    Ok(ByteBuf),
    Err(RejectInfo),
}

/// Has `caller` (an `inter` canister) call `callee.method(arg)`.
pub fn forward(
    sm: &mut StateMachine,
    caller: CanisterId,
    callee: CanisterId,
    method: &str,
    arg: Vec<u8>,
    cycles: u128,
    timeout: Option<u32>,
) -> ForwardResult {
    let a = ForwardArgs {
        callee: cp(callee),
        method: method.into(),
        arg: ByteBuf::from(arg),
        cycles: Nat::from(cycles),
        timeout_seconds: timeout,
    };
    let (r,): (ForwardResult,) = sm.update_candid(user(), caller, "forward", (a,)).unwrap();
    r
}
