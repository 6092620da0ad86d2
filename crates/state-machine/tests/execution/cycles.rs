//! Cycles are charged as the fee table says.

use super::*;
use cairn_state_machine::StateMachine;
use cairn_test_canisters as tc;
use cairn_types::CostSchedule;

#[test]
fn an_update_costs_ingress_plus_execution() {
    let mut sm = StateMachine::new();
    let c = install(&mut sm, tc::COUNTER);
    let before = sm.cycle_balance(&c);
    let consumed_before = sm.canister(&c).unwrap().system_state.consumed_cycles.clone();
    sm.update(user(), c, "inc", args(())).unwrap();
    let after = sm.cycle_balance(&c);
    let consumed = &sm.canister(&c).unwrap().system_state.consumed_cycles;
    let costs = CostSchedule::for_subnet_size(13);
    let arg_len = args(()).len() as u64;
    let ingress = costs.ingress_induction_cost("inc".len() as u64 + arg_len);
    assert_eq!(consumed.ingress_induction - consumed_before.ingress_induction, ingress);
    let exec = consumed.instructions - consumed_before.instructions;
    assert!(exec > costs.update_message_execution_fee(), "execution charged {exec:?}");
    assert!(
        exec < costs.update_message_execution_fee() + cairn_types::Cycles::new(1_000_000),
        "a counter increment is cheap: {exec:?}"
    );
    assert_eq!(before - after, ingress + exec);
}

#[test]
fn fees_scale_with_subnet_size() {
    let mut small = StateMachine::new();
    let mut big = StateMachine::builder().with_cost_subnet_size(34).build();
    let a = install(&mut small, tc::COUNTER);
    let b = install(&mut big, tc::COUNTER);
    let ca = small.cycle_balance(&a);
    let cb = big.cycle_balance(&b);
    small.update(user(), a, "inc", args(())).unwrap();
    big.update(user(), b, "inc", args(())).unwrap();
    let spent_small = (ca - small.cycle_balance(&a)).get();
    let spent_big = (cb - big.cycle_balance(&b)).get();
    // Same instructions, fees × 34/13 (up to rounding).
    let expected = spent_small * 34 / 13;
    assert!(spent_big.abs_diff(expected) <= 2, "{spent_big} vs {expected}");
}

#[test]
fn out_of_cycles_canisters_refuse_work_with_ic0207() {
    let mut sm = StateMachine::new();
    // Too poor to pay for the install's prepayment (300 B instructions).
    let poor = sm.create_canister(user(), cairn_types::Cycles::new(20_000_000_000), None).unwrap();
    let err = sm
        .install_code(user(), poor, tc::COUNTER, args(()), cairn_execution::management::types::InstallModeArg::Install)
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::CanisterOutOfCycles));
    assert!(err.to_string().contains("Canister installation failed with `Canister"), "{err}");
    assert!(err.to_string().contains("additional cycles"), "controllers see the shortfall: {err}");
    // A wallet that burns everything it can spend cannot pay for its next update.
    let w = sm.create_canister(user(), cairn_types::Cycles::new(1_000_000_000_000), None).unwrap();
    sm.install_code(user(), w, tc::WALLET, args(()), cairn_execution::management::types::InstallModeArg::Install)
        .unwrap();
    let (burnt,): (Nat,) = sm.update_candid(user(), w, "burn", (Nat::from(u128::MAX),)).unwrap();
    assert!(burnt > 100_000_000_000u64, "burnt {burnt}");
    let err = sm.update(user(), w, "balance", args(())).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::CanisterOutOfCycles), "{err}");
    // Queries still work: they are free.
    sm.query(user(), w, "balance", args(())).unwrap();
}

#[test]
fn frozen_canisters_refuse_updates_and_queries() {
    let mut sm = StateMachine::new();
    let id = sm.create_canister(user(), cairn_types::Cycles::new(2_000_000_000_000), None).unwrap();
    sm.install_code(user(), id, tc::COUNTER, args(()), cairn_execution::management::types::InstallModeArg::Install)
        .unwrap();
    // A huge freezing threshold freezes the canister.
    let settings = cairn_execution::management::types::UpdateSettingsArgs {
        canister_id: cp(id),
        settings: cairn_execution::management::types::CanisterSettingsArgs {
            freezing_threshold: Some(Nat::from(u64::MAX / 4)),
            ..Default::default()
        },
        sender_canister_version: None,
    };
    sm.management(user(), "update_settings", &settings).unwrap();
    let err = sm.update(user(), id, "inc", args(())).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::CanisterOutOfCycles), "{err}");
    let err = sm.query(user(), id, "get", args(())).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::CanisterOutOfCycles), "{err}");
    assert!(err.to_string().contains("frozen"));
}

#[test]
fn inter_canister_calls_pay_the_call_fee() {
    let mut sm = StateMachine::new();
    let a = install(&mut sm, tc::INTER);
    let b = install(&mut sm, tc::INTER);
    let consumed =
        |sm: &StateMachine| sm.canister(&a).unwrap().system_state.consumed_cycles.request_and_response_transmission;
    let before = consumed(&sm);
    let payload = args((ByteBuf::from(vec![7u8; 1000]),));
    forward(&mut sm, a, b, "echo", payload.clone(), 0, None);
    let costs = CostSchedule::for_subnet_size(13);
    let request = costs.xnet_call_performed_fee(("echo".len() + payload.len()) as u64);
    // Reply: candid of the same blob.
    let response = costs.xnet_transmission_cost(payload.len() as u64);
    assert_eq!(consumed(&sm) - before, request + response);
}
