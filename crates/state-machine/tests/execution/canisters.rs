//! Real ic-cdk canisters: messaging, timers, stable structures, hooks.

use super::*;
use cairn_state_machine::StateMachine;
use cairn_test_canisters as tc;
use std::time::Duration;

fn counter(sm: &mut StateMachine, id: CanisterId) -> u64 {
    let (v,): (u64,) = sm.query_candid(user(), id, "counter", ()).unwrap();
    v
}

#[test]
fn calls_between_canisters_with_replies_rejects_and_traps() {
    let mut sm = StateMachine::new();
    let a = install(&mut sm, tc::INTER);
    let b = install(&mut sm, tc::INTER);
    let payload = args((ByteBuf::from(b"hello".to_vec()),));
    match forward(&mut sm, a, b, "echo", payload.clone(), 0, None) {
        ForwardResult::Ok(bytes) => assert_eq!(bytes.as_slice(), payload.as_slice()),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(counter(&mut sm, b), 1);
    // An explicit reject arrives as CANISTER_REJECT (4) with the canister's text.
    let r = forward(&mut sm, a, b, "reject_with", args(("nope".to_string(),)), 0, None);
    assert_eq!(r, ForwardResult::Err(RejectInfo { code: 4, message: "nope".into() }));
    // A trap arrives as CANISTER_ERROR (5) naming the trap.
    let ForwardResult::Err(e) = forward(&mut sm, a, b, "trap_with", args(("boom".to_string(),)), 0, None) else {
        panic!()
    };
    assert_eq!(e.code, 5);
    assert!(e.message.starts_with("IC0503: Error from Canister"), "{}", e.message);
    assert!(e.message.contains("boom"));
    // A missing method is CANISTER_ERROR with IC0536.
    let ForwardResult::Err(e) = forward(&mut sm, a, b, "no_such_method", args(()), 0, None) else { panic!() };
    assert_eq!(e.code, 5);
    assert!(
        e.message.contains("IC0536") && e.message.contains("has no update method 'no_such_method'"),
        "{}",
        e.message
    );
    // A call to a canister that does not exist is DESTINATION_INVALID.
    let ForwardResult::Err(e) = forward(&mut sm, a, CanisterId::from_u64(77), "echo", args(()), 0, None) else {
        panic!()
    };
    assert_eq!(e.code, 3);
}

#[test]
fn trap_in_reply_handler_keeps_callee_effects_and_rolls_back_caller() {
    let mut sm = StateMachine::new();
    let a = install(&mut sm, tc::INTER);
    let b = install(&mut sm, tc::INTER);
    let err = sm.update(user(), a, "trap_after_call", args((cp(b),))).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::CanisterCalledTrap));
    assert!(err.to_string().contains("trapping in the reply handler"));
    assert_eq!(counter(&mut sm, b), 1, "the callee's echo committed");
    assert_eq!(
        counter(&mut sm, a),
        1,
        "the caller's first increment (before the await) committed, the one in the handler rolled back"
    );
    let err = sm.update(user(), a, "increment_then_trap", args(())).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::CanisterCalledTrap));
    assert_eq!(counter(&mut sm, a), 1);
}

#[test]
fn cycles_attached_to_calls_are_accepted_or_refunded() {
    let mut sm = StateMachine::new();
    let a = install(&mut sm, tc::INTER);
    let b = install(&mut sm, tc::INTER);
    let before_b = sm.cycle_balance(&b);
    let r = forward(&mut sm, a, b, "accept_cycles", args((Nat::from(3_000u64),)), 10_000, None);
    let ForwardResult::Ok(bytes) = r else { panic!("{r:?}") };
    let (accepted,): (Nat,) = candid::decode_args(&bytes).unwrap();
    assert_eq!(accepted, Nat::from(3_000u64));
    // B got the accepted part (minus what it paid to execute); A got the rest back.
    let gained = sm.cycle_balance(&b).get() as i128 - before_b.get() as i128;
    assert!(gained < 3_000, "B pays for its own execution, gained {gained}");
    let (bal,): (Nat,) = sm.query_candid(user(), a, "cycles_balance", ()).unwrap();
    assert_eq!(bal, Nat::from(sm.cycle_balance(&a).get()));
}

#[test]
fn requests_between_two_canisters_arrive_in_send_order() {
    let mut sm = StateMachine::new();
    let a = install(&mut sm, tc::INTER);
    let b = install(&mut sm, tc::INTER);
    sm.update(user(), a, "sequence", args((cp(b), 20u32))).unwrap();
    let (seqs,): (Vec<u32>,) = sm.query_candid(user(), b, "seqs", ()).unwrap();
    assert_eq!(seqs, (0..20).collect::<Vec<_>>());
}

#[test]
fn self_calls_and_composite_queries() {
    let mut sm = StateMachine::new();
    let a = install(&mut sm, tc::INTER);
    let b = install(&mut sm, tc::INTER);
    let (n,): (u64,) = sm.update_candid(user(), a, "self_call", ()).unwrap();
    assert_eq!(n, 1);
    sm.update(user(), b, "echo", args((ByteBuf::from(vec![1]),))).unwrap();
    sm.update(user(), b, "echo", args((ByteBuf::from(vec![1]),))).unwrap();
    let (n,): (u64,) = sm.query_candid(user(), a, "composite", (cp(b),)).unwrap();
    assert_eq!(n, 2);
    // A composite query through an update call is refused.
    let err = sm.update(user(), a, "composite", args((cp(b),))).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::CompositeQueryCalledInReplicatedMode));
}

#[test]
fn bounded_wait_call_times_out_with_sys_unknown() {
    let mut sm = StateMachine::new();
    let a = install(&mut sm, tc::INTER);
    let b = install(&mut sm, tc::INTER);
    // B forwards A's call to B's own stop, which cannot finish while that call is open.
    let stop_self = ForwardArgs {
        callee: candid::Principal::management_canister(),
        method: "stop_canister".into(),
        arg: ByteBuf::from(args((cairn_execution::management::types::CanisterIdRecord { canister_id: cp(b) },))),
        cycles: Nat::from(0u8),
        timeout_seconds: None,
    };
    super::management::make_self_controlled(&mut sm, b);
    let outer = ForwardArgs {
        callee: cp(b),
        method: "forward".into(),
        arg: ByteBuf::from(args((stop_self,))),
        cycles: Nat::from(0u8),
        timeout_seconds: Some(10),
    };
    let id = sm.submit_ingress(user(), a, "forward", args((outer,)));
    for _ in 0..3 {
        sm.tick();
    }
    assert!(sm.ingress_state(&id).is_some_and(|s| !s.is_terminal()), "still waiting");
    sm.advance_time(Duration::from_secs(11));
    let reply = sm.await_ingress(id, 5).unwrap();
    let cairn_types::messages::WasmResult::Reply(bytes) = reply else { panic!() };
    let (r,): (ForwardResult,) = candid::decode_args(&bytes).unwrap();
    assert_eq!(r, ForwardResult::Err(RejectInfo { code: 6, message: "Call deadline has expired.".into() }));
}

#[test]
fn timers_fire_through_self_calls() {
    let mut sm = StateMachine::new();
    let t = install(&mut sm, tc::TIMERS);
    sm.update(user(), t, "set_timer", args((5u64,))).unwrap();
    for _ in 0..3 {
        sm.tick();
    }
    let ticks = |sm: &mut StateMachine| -> u64 { sm.query_candid::<_, (u64,)>(user(), t, "ticks", ()).unwrap().0 };
    assert_eq!(ticks(&mut sm), 0, "not before its time");
    sm.advance_time(Duration::from_secs(6));
    for _ in 0..3 {
        sm.tick();
    }
    assert_eq!(ticks(&mut sm), 1);
    sm.update(user(), t, "set_interval", args((2u64,))).unwrap();
    for _ in 0..5 {
        sm.advance_time(Duration::from_secs(2));
        sm.tick();
        sm.tick();
    }
    let n = ticks(&mut sm);
    assert!((4..=7).contains(&n), "interval fired {n} times");
    sm.update(user(), t, "clear_all", args(())).unwrap();
    sm.advance_time(Duration::from_secs(10));
    sm.tick();
    sm.tick();
    assert_eq!(ticks(&mut sm), n, "cleared timers do not fire");
}

#[test]
fn stable_structures_survive_upgrade_and_reinstall_wipes() {
    let mut sm = StateMachine::new();
    let s = install(&mut sm, tc::STABLE);
    for k in 0..50u64 {
        sm.update(user(), s, "put", args((k, ByteBuf::from(vec![k as u8; 100])))).unwrap();
    }
    sm.update(user(), s, "bump_heap", args(())).unwrap();
    sm.update(user(), s, "bump_heap", args(())).unwrap();
    sm.upgrade(user(), s, tc::STABLE, args(()), false).unwrap();
    let (len,): (u64,) = sm.query_candid(user(), s, "len", ()).unwrap();
    assert_eq!(len, 50);
    let (v,): (Option<ByteBuf>,) = sm.query_candid(user(), s, "get", (7u64,)).unwrap();
    assert_eq!(v.unwrap().as_slice(), &[7u8; 100]);
    let (heap,): (u64,) = sm.query_candid(user(), s, "heap_counter", ()).unwrap();
    assert_eq!(heap, 2, "pre_upgrade saved and post_upgrade restored the heap counter");
    sm.install_code(user(), s, tc::STABLE, args(()), cairn_execution::management::types::InstallModeArg::Reinstall)
        .unwrap();
    let (len,): (u64,) = sm.query_candid(user(), s, "len", ()).unwrap();
    assert_eq!(len, 0);
}

#[test]
fn heap_grows_and_persists_large_writes() {
    let mut sm = StateMachine::new();
    let s = install(&mut sm, tc::STABLE);
    let (pages,): (u64,) = sm.update_candid(user(), s, "grow_heap", (80u64,)).unwrap();
    assert!(pages >= 80 * 16, "heap is {pages} pages");
    sm.update(user(), s, "bump_heap", args(())).unwrap();
    let (heap,): (u64,) = sm.query_candid(user(), s, "heap_counter", ()).unwrap();
    assert_eq!(heap, 1);
}

#[test]
fn heartbeat_inspect_message_env_vars_and_low_memory_hook() {
    let mut sm = StateMachine::new();
    let h = install(&mut sm, tc::HOOKS);
    let q = |sm: &mut StateMachine, m: &str| -> u64 { sm.query_candid::<_, (u64,)>(user(), h, m, ()).unwrap().0 };
    sm.update(user(), h, "enable_heartbeat", args((true,))).unwrap();
    for _ in 0..5 {
        sm.tick();
    }
    assert!(q(&mut sm, "heartbeats") >= 4);
    sm.update(user(), h, "enable_heartbeat", args((false,))).unwrap();

    // inspect_message refuses `forbidden` before it reaches a block.
    let err = sm.check_ingress(user(), h, "forbidden", args(())).unwrap_err();
    assert_eq!(err.code, ErrorCode::CanisterRejectedMessage);
    sm.check_ingress(user(), h, "allowed", args(())).unwrap();

    // The raw global timer.
    let now = sm.time().as_nanos();
    sm.update(user(), h, "set_global_timer", args((now + 2_000_000_000,))).unwrap();
    sm.tick();
    assert_eq!(q(&mut sm, "global_timer_runs"), 0);
    sm.advance_time(Duration::from_secs(3));
    sm.tick();
    assert_eq!(q(&mut sm, "global_timer_runs"), 1);

    // Environment variables set by a controller are visible to the canister.
    let settings = cairn_execution::management::types::UpdateSettingsArgs {
        canister_id: cp(h),
        settings: cairn_execution::management::types::CanisterSettingsArgs {
            environment_variables: Some(vec![cairn_execution::management::types::EnvironmentVariable {
                name: "MODE".into(),
                value: "test".into(),
            }]),
            wasm_memory_limit: Some(Nat::from(64u64 << 20)),
            wasm_memory_threshold: Some(Nat::from(32u64 << 20)),
            ..Default::default()
        },
        sender_canister_version: None,
    };
    sm.management(user(), "update_settings", &settings).unwrap();
    let (v,): (Option<String>,) = sm.query_candid(user(), h, "env_var", ("MODE".to_string(),)).unwrap();
    assert_eq!(v.as_deref(), Some("test"));

    // Growing past limit − threshold runs the low-memory hook once.
    sm.update(user(), h, "allocate", args((40u64,))).unwrap();
    for _ in 0..3 {
        sm.tick();
    }
    assert_eq!(q(&mut sm, "low_memory_hook_runs"), 1);

    let (r,): (bool,) = sm.update_candid(user(), h, "in_replicated", ()).unwrap();
    assert!(r);
    let (r,): (bool,) = sm.query_candid(user(), h, "in_replicated_query", ()).unwrap();
    assert!(!r);
    let (c,): (bool,) =
        sm.query_candid(user(), h, "is_controller", (candid::Principal::from_slice(user().as_slice()),)).unwrap();
    assert!(c);
    // Every successful execution bumps the version (heartbeats too, since the export exists).
    let v1 = q(&mut sm, "canister_version");
    sm.update(user(), h, "allowed", args(())).unwrap();
    assert!(q(&mut sm, "canister_version") > v1);
}
