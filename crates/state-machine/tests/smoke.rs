use cairn_state_machine::StateMachine;
use cairn_test_canisters as tc;
use cairn_types::{Cycles, Principal};

#[test]
fn counter_increments_and_queries() {
    let mut sm = StateMachine::new();
    let user = Principal::self_authenticating(b"user");
    let id = sm.install_new(user, tc::COUNTER, Cycles::new(100_000_000_000_000)).unwrap();
    for i in 1..=3u64 {
        let (v,): (u64,) = sm.update_candid(user, id, "inc", ()).unwrap();
        assert_eq!(v, i);
    }
    let (v,): (u64,) = sm.query_candid(user, id, "get", ()).unwrap();
    assert_eq!(v, 3);
    let (who,): (candid::Principal,) = sm.query_candid(user, id, "whoami", ()).unwrap();
    assert_eq!(who.as_slice(), user.as_slice());
}
