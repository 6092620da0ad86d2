//! Motoko actors: wasm64 modules with enhanced orthogonal persistence.

use super::*;
use cairn_execution::management::types::InstallModeArg;
use cairn_state_machine::StateMachine;
use cairn_test_canisters as tc;

#[test]
fn motoko_counter_runs_and_keeps_memory_across_upgrades() {
    let mut sm = StateMachine::new();
    let m = install(&mut sm, tc::MO_COUNTER);
    assert!(sm.canister(&m).unwrap().execution_state.as_ref().unwrap().memory64);
    for i in 1..=3u64 {
        let (v,): (Nat,) = sm.update_candid(user(), m, "inc", ()).unwrap();
        assert_eq!(v, Nat::from(i));
    }
    let (who,): (candid::Principal,) = sm.query_candid(user(), m, "whoami", ()).unwrap();
    assert_eq!(who.as_slice(), user().as_slice());
    // EOP canisters must say how to treat their memory.
    let err = sm.install_code(user(), m, tc::MO_COUNTER, args(()), InstallModeArg::Upgrade(None)).unwrap_err();
    assert!(
        err.to_string()
            .contains("Enhanced orthogonal persistence requires the `wasm_memory_persistence` upgrade option"),
        "{err}"
    );
    // A non-EOP module cannot keep memory.
    let err = sm.upgrade(user(), m, tc::COUNTER, args(()), true).unwrap_err();
    assert!(
        err.to_string().contains("requires that the new canister module supports enhanced orthogonal persistence"),
        "{err}"
    );
    sm.upgrade(user(), m, tc::MO_COUNTER, args(()), true).unwrap();
    let (v,): (Nat,) = sm.query_candid(user(), m, "get", ()).unwrap();
    assert_eq!(v, Nat::from(3u64), "stable state kept across the upgrade");
    let (v,): (Nat,) = sm.update_candid(user(), m, "inc", ()).unwrap();
    assert_eq!(v, Nat::from(4u64));
}

#[test]
fn motoko_calls_a_rust_canister() {
    let mut sm = StateMachine::new();
    let rust = install(&mut sm, tc::COUNTER);
    let m = install(&mut sm, tc::MO_INTER);
    sm.update(user(), m, "put", args(("a".to_string(), Nat::from(7u64)))).unwrap();
    let (v,): (Option<Nat>,) = sm.query_candid(user(), m, "lookup", ("a".to_string(),)).unwrap();
    assert_eq!(v, Some(Nat::from(7u64)));
    let (n,): (u64,) = sm.update_candid(user(), m, "call_counter", (cp(rust),)).unwrap();
    assert_eq!(n, 1);
    let (n,): (u64,) = sm.update_candid(user(), m, "call_counter", (cp(rust),)).unwrap();
    assert_eq!(n, 2);
    let (v,): (u64,) = sm.query_candid(user(), rust, "get", ()).unwrap();
    assert_eq!(v, 2);
    let (calls,): (Nat,) = sm.query_candid(user(), m, "calls_made", ()).unwrap();
    assert_eq!(calls, Nat::from(2u64));
}
