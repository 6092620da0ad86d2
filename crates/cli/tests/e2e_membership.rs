//! Membership changes of a running subnet by registry changes: a fifth node
//! joins and a genesis member leaves while ic-agent calls keep succeeding
//! (a client updates without pause throughout) and certificates keep
//! verifying with the same root key. The new node has no genesis key
//! shares: it receives its shares by resharing, and once the removed node
//! and one more are stopped, the subnet runs on the remaining three, the new
//! node among them.

use cairn_e2e::subnet::LocalSubnet;
use cairn_e2e::subnet::counter::{self, agent, inc, read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const INTERVAL: u64 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joins_and_another_leaves_a_running_subnet() {
    let interval = INTERVAL.to_string();
    let mut subnet =
        LocalSubnet::init_with_args(env!("CARGO_BIN_EXE_cairn"), 4, &["--interval-length", &interval]).unwrap();
    subnet.spawn_all().unwrap();
    subnet.wait_all_healthy(Duration::from_secs(60)).unwrap();
    let metric = |s: &LocalSubnet, i: usize, name: &str| s.metric(i, name).unwrap_or(-1.0) as i64;
    let a0 = agent(&subnet, 0).await;
    let root_key = a0.read_root_key();
    let id = counter::install(&a0, cairn_test_canisters::COUNTER).await;
    let mut last = inc(&a0, id).await.unwrap();
    let mut count = 1;

    // A client updates through node 2 (which stays) during both changes;
    // every call must succeed and see the counter grow.
    let stop = Arc::new(AtomicBool::new(false));
    let background = {
        let (stop, a2) = (stop.clone(), agent(&subnet, 2).await);
        assert_eq!(a2.read_root_key(), root_key);
        tokio::spawn(async move {
            let (mut calls, mut seen) = (0u64, 0u64);
            while !stop.load(Ordering::Acquire) {
                let v = inc(&a2, id).await.map_err(|e| format!("call {calls} failed: {e}"))?;
                if v <= seen {
                    return Err(format!("the counter went from {seen} to {v}"));
                }
                (calls, seen) = (calls + 1, v);
            }
            Ok::<u64, String>(calls)
        })
    };

    // Let the subnet run until the blocks of its first intervals are purged:
    // the new node cannot replay the chain, it must start from a catch-up
    // package and fetch its state (state sync).
    subnet
        .wait_for("purged history", Duration::from_secs(120), |s| {
            metric(s, 1, "cairn_certified_height") >= 4 * INTERVAL as i64
        })
        .unwrap();

    // A fifth node joins: a new registry version, then its process.
    let started = Instant::now();
    let new = subnet.add_node().unwrap();
    subnet.spawn(new).unwrap();
    let joined = subnet.wait_for("the new node to join the committee", Duration::from_secs(180), |s| {
        metric(s, 1, "cairn_subnet_members") == 5
            && metric(s, new, "cairn_member") == 1
            && metric(s, new, "cairn_certification_shares_signed_total") > 0
    });
    if joined.is_err() {
        subnet.dump_logs();
    }
    joined.unwrap();
    eprintln!(
        "the new node signed with reshared shares {:.1} s after the registry change",
        started.elapsed().as_secs_f64()
    );
    assert!(metric(&subnet, new, "cairn_state_syncs_total") >= 1, "the new node started from a state sync");
    // It serves calls with the subnet's root key (its key is in the state
    // tree: ic-agent checks its query signatures against it).
    let a_new = agent(&subnet, new).await;
    assert_eq!(a_new.read_root_key(), root_key);
    let v = inc(&a_new, id).await.unwrap();
    assert!(v > last, "an update through the new node");
    (last, count) = (v, count + 1);
    assert!(read(&a_new, id).await >= last);

    // The four genesis nodes certify on their own with the five-node key
    // (threshold 4 of 5) while the new node is down; it restarts (no genesis
    // shares: its shares come from the chain again) and catches up.
    subnet.stop(new);
    let a1 = agent(&subnet, 1).await;
    let v = inc(&a1, id).await.unwrap();
    assert!(v > last, "an update certified by the four genesis nodes of a five-node subnet");
    (last, count) = (v, count + 1);
    subnet.spawn(new).unwrap();
    subnet
        .wait_for("the new node to certify again", Duration::from_secs(120), |s| {
            s.is_healthy(new)
                && metric(s, new, "cairn_certified_height") >= metric(s, 1, "cairn_certified_height") - 2
                && metric(s, new, "cairn_certification_shares_signed_total") > 0
        })
        .unwrap();
    let a_new = agent(&subnet, new).await;

    // Node 0 leaves.
    let started = Instant::now();
    subnet.remove_node(0).unwrap();
    let left = subnet.wait_for("node 0 to leave the committee", Duration::from_secs(180), |s| {
        metric(s, 1, "cairn_subnet_members") == 4
            && metric(s, new, "cairn_subnet_members") == 4
            && metric(s, 0, "cairn_member") == 0
    });
    if left.is_err() {
        subnet.dump_logs();
    }
    left.unwrap();
    eprintln!("node 0 was out of the committee {:.1} s after the registry change", started.elapsed().as_secs_f64());
    assert!(inc(&a1, id).await.unwrap() > last);
    count += 1;
    stop.store(true, Ordering::Release);
    let background_calls = background.await.unwrap().unwrap();
    assert!(background_calls > 0);
    eprintln!("{background_calls} updates through node 2 during the changes, all certified");
    count += background_calls;

    // Without node 0 (removed) and node 1, three of the four members remain:
    // the new node's shares (from resharing) make the quorum.
    subnet.stop(0);
    subnet.stop(1);
    for (i, a) in [(2, agent(&subnet, 2).await), (new, a_new)] {
        assert_eq!(a.read_root_key(), root_key, "node {i}");
        let v = inc(&a, id).await.unwrap_or_else(|e| panic!("an update through node {i} with nodes 0 and 1 gone: {e}"));
        count += 1;
        assert_eq!(v, count, "every update counted once");
        assert_eq!(read(&a, id).await, count);
    }
    assert_eq!(metric(&subnet, new, "cairn_keys_kept_total"), 0);
    for i in [2, 3, new] {
        assert_eq!(metric(&subnet, i, "cairn_state_diverged"), 0, "node {i}");
    }
}
