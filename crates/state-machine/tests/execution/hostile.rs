//! Hostile code: every attack ends in a clear error, and the subnet keeps serving.

use super::*;
use cairn_execution::ExecutionConfig;
use cairn_execution::management::types::{CanisterSettingsArgs, UpdateSettingsArgs};
use cairn_state_machine::StateMachine;
use cairn_test_canisters as tc;

fn machine() -> StateMachine {
    // Lower limits so attacks end quickly; the mechanisms are the same at IC limits.
    let config = ExecutionConfig {
        max_instructions_per_update: 500_000_000,
        max_instructions_per_query: 200_000_000,
        max_instructions_per_composite_query: 300_000_000,
        ..ExecutionConfig::default()
    };
    StateMachine::builder().with_config(config).build()
}

fn still_serving(sm: &mut StateMachine) {
    let c = install(sm, tc::COUNTER);
    let (v,): (u64,) = sm.update_candid(user(), c, "inc", ()).unwrap();
    assert_eq!(v, 1);
}

#[test]
fn infinite_loops_stop_at_the_instruction_limit() {
    let mut sm = machine();
    let h = install(&mut sm, tc::HOSTILE);
    let err = sm.update(user(), h, "infinite_loop", args(())).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::CanisterInstructionLimitExceeded));
    assert!(err.to_string().contains("exceeded the limit of 500000000 instructions"), "{err}");
    let err = sm.query(user(), h, "infinite_loop_query", args(())).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::CanisterInstructionLimitExceeded));
    still_serving(&mut sm);
}

#[test]
fn query_loop_stops_at_the_default_ic_query_limit() {
    let mut sm = StateMachine::new();
    let h = install(&mut sm, tc::HOSTILE);
    let err = sm.query(user(), h, "infinite_loop_query", args(())).unwrap_err();
    assert!(err.to_string().contains("exceeded the limit of 5000000000 instructions"), "{err}");
}

#[test]
fn memory_bombs_stop_at_the_memory_limit() {
    let mut sm = machine();
    let h = install(&mut sm, tc::HOSTILE);
    let settings = UpdateSettingsArgs {
        canister_id: cp(h),
        settings: CanisterSettingsArgs { wasm_memory_limit: Some(Nat::from(256u64 << 20)), ..Default::default() },
        sender_canister_version: None,
    };
    sm.management(user(), "update_settings", &settings).unwrap();
    let before = sm.canister(&h).unwrap().wasm_memory_size();
    let err = sm.update(user(), h, "memory_bomb", args(())).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::CanisterWasmMemoryLimitExceeded), "{err}");
    assert_eq!(sm.canister(&h).unwrap().wasm_memory_size(), before, "the growth was rolled back");
    let err = sm.update(user(), h, "stable_bomb", args(())).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::CanisterCalledTrap), "{err}");
    let (pages,): (u64,) = sm.query_candid(user(), h, "stable_state", ()).unwrap();
    assert_eq!(pages, 0);
    still_serving(&mut sm);
}

#[test]
fn deep_recursion_hits_the_stack_limit() {
    let mut sm = machine();
    let h = install(&mut sm, tc::HOSTILE);
    let (v,): (u64,) = sm.update_candid(user(), h, "deep_recursion", (100u64,)).unwrap();
    assert!(v > 0);
    // Rust keeps its frames on a shadow stack in linear memory, which overflows
    // first (below address 0: "heap out of bounds"); Wasm's own stack limit
    // catches recursion that does not touch it (see the engine's tests).
    let err = sm.update(user(), h, "deep_recursion", args((100_000_000u64,))).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::CanisterTrapped));
    assert!(err.to_string().contains("stack overflow") || err.to_string().contains("heap out of bounds"), "{err}");
    still_serving(&mut sm);
}

#[test]
fn oversized_replies_are_refused() {
    let mut sm = machine();
    let h = install(&mut sm, tc::HOSTILE);
    let (b,): (ByteBuf,) = sm.update_candid(user(), h, "huge_reply", (1_000_000u64,)).unwrap();
    assert_eq!(b.len(), 1_000_000);
    let err = sm.update(user(), h, "huge_reply", args((3_000_000u64,))).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::CanisterContractViolation));
    assert!(err.to_string().contains("cannot be larger than 2097152"), "{err}");
}

#[test]
fn a_trap_rolls_back_heap_stable_memory_and_certified_data() {
    let mut sm = machine();
    let h = install(&mut sm, tc::HOSTILE);
    let before = sm.canister(&h).unwrap().clone();
    let err = sm.update(user(), h, "write_then_trap", args(())).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::CanisterCalledTrap));
    let after = sm.canister(&h).unwrap().clone();
    let (b, a) = (before.execution_state.as_ref().unwrap(), after.execution_state.as_ref().unwrap());
    assert_eq!(a.wasm_memory.page_map.content_hash(), b.wasm_memory.page_map.content_hash());
    assert_eq!(a.stable_memory, b.stable_memory);
    assert_eq!(after.system_state.certified_data, before.system_state.certified_data);
    let (s,): (u64,) = sm.query_candid(user(), h, "state", ()).unwrap();
    assert_eq!(s, 0);
    // The trap is in the canister log.
    let logs = &after.system_state.log.records;
    assert!(logs.iter().any(|r| String::from_utf8_lossy(&r.content).starts_with("[TRAP]")));
}

#[test]
fn endless_self_calls_do_not_starve_other_canisters() {
    let mut sm = machine();
    let h = install(&mut sm, tc::HOSTILE);
    sm.submit_ingress(user(), h, "self_call_loop", args(()));
    for _ in 0..20 {
        sm.tick();
    }
    still_serving(&mut sm);
    let (n,): (u64,) = sm.query_candid(user(), h, "self_calls", ()).unwrap();
    assert!(n > 10, "the loop ran {n} times");
    // The controller can always end it.
    sm.management_on(user(), "uninstall_code", h).unwrap();
    sm.tick();
}

#[test]
fn invalid_modules_are_rejected_with_reasons() {
    let mut sm = machine();
    let id = sm.create_canister(user(), CYCLES, None).unwrap();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"not wasm at all".to_vec(), "magic"),
        (wat::parse_str(r#"(module (import "env" "f" (func)))"#).unwrap(), "env"),
        (wat::parse_str(r#"(module (func (export "canister_foo")))"#).unwrap(), "canister_foo"),
        (wat::parse_str(r#"(module (import "ic0" "msg_reply" (func (param i32))))"#).unwrap(), "msg_reply"),
        (wat::parse_str(r#"(module (memory 1) (memory 1))"#).unwrap(), "memor"),
    ];
    for (wasm, needle) in cases {
        let err = sm
            .install_code(user(), id, &wasm, vec![], cairn_execution::management::types::InstallModeArg::Install)
            .unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::CanisterInvalidWasm), "{err}");
        assert!(err.to_string().to_lowercase().contains(&needle.to_lowercase()), "{needle}: {err}");
    }
    // A gzip bomb is refused without being inflated.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gz, &vec![0u8; 200 << 20]).unwrap();
    let bomb = gz.finish().unwrap();
    let err = sm
        .install_code(user(), id, &bomb, vec![], cairn_execution::management::types::InstallModeArg::Install)
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::CanisterInvalidWasm), "{err}");
}
