//! The same batches from the same start give the same state, bit for bit.

use super::*;
use cairn_state_machine::StateMachine;
use cairn_test_canisters as tc;
use std::time::Duration;

/// A mixed workload: installs, updates, inter-canister calls, timers,
/// stable structures, upgrades, traps, Motoko. Returns the state hash after
/// every round.
fn workload() -> Vec<[u8; 32]> {
    let mut sm = StateMachine::new();
    let mut hashes = Vec::new();
    let counter = install(&mut sm, tc::COUNTER);
    let a = install(&mut sm, tc::INTER);
    let b = install(&mut sm, tc::INTER);
    let t = install(&mut sm, tc::TIMERS);
    let s = install(&mut sm, tc::STABLE);
    let m = install(&mut sm, tc::MO_COUNTER);
    sm.update(user(), t, "set_interval", args((1u64,))).unwrap();
    for round in 0..20u64 {
        sm.submit_ingress(user(), counter, "inc", args(()));
        sm.submit_ingress(user(), a, "sequence", args((cp(b), 3u32)));
        sm.submit_ingress(user(), s, "put", args((round, ByteBuf::from(vec![round as u8; 5000]))));
        sm.submit_ingress(user(), m, "inc", args(()));
        if round % 5 == 0 {
            sm.submit_ingress(user(), a, "increment_then_trap", args(()));
        }
        sm.advance_time(Duration::from_millis(700));
        sm.tick();
        hashes.push(sm.state_hash());
    }
    sm.upgrade(user(), s, tc::STABLE, args(()), false).unwrap();
    hashes.push(sm.state_hash());
    hashes
}

#[test]
fn same_batches_same_state_hashes() {
    let first = workload();
    let second = workload();
    assert_eq!(first, second);
    // The hash follows the state: every round changed something.
    for w in first.windows(2) {
        assert_ne!(w[0], w[1]);
    }
}
