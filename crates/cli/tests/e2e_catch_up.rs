//! Resumability (issue 5) with real `cairn node` processes: catch-up
//! packages, purging and state sync, seen through the real `ic-agent` and
//! the nodes' `/metrics`.
//!
//! A 4-node subnet with 20-height intervals. One node is stopped while the
//! others run many intervals; meanwhile they certify a catch-up package at
//! every interval start and purge the blocks below, so the stopped node can
//! no longer replay history. Restarted, it takes the newest package, fetches
//! the checkpoint by state sync, and takes part again. Disk use of a running
//! node stays flat.

use cairn_e2e::subnet::LocalSubnet;
use cairn_e2e::subnet::counter::{self, agent, inc, read};
use std::path::Path;
use std::time::Duration;

const INTERVAL: u64 = 20;

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_rejoins_by_catch_up_package_and_state_sync() {
    let interval = INTERVAL.to_string();
    let mut subnet =
        LocalSubnet::init_with_args(env!("CARGO_BIN_EXE_cairn"), 4, &["--interval-length", &interval]).unwrap();
    subnet.spawn_all().unwrap();
    subnet.wait_all_healthy(Duration::from_secs(60)).unwrap();
    let a0 = agent(&subnet, 0).await;
    let root_key = a0.read_root_key();
    let id = counter::install(&a0, cairn_test_canisters::COUNTER).await;
    let mut expected = 0;
    for _ in 0..3 {
        expected += 1;
        assert_eq!(inc(&a0, id).await.unwrap(), expected);
    }
    let metric = |s: &LocalSubnet, i: usize, name: &str| s.metric(i, name).unwrap_or(0.0) as u64;
    subnet
        .wait_for("a catch-up package", Duration::from_secs(60), |s| metric(s, 0, "cairn_catch_up_height") >= INTERVAL)
        .unwrap();

    // Node 3 stops; the others go on for many intervals (and keep serving).
    subnet.stop(3);
    let stopped_at = metric(&subnet, 0, "cairn_certified_height");
    let a1 = agent(&subnet, 1).await;
    for _ in 0..3 {
        expected += 1;
        assert_eq!(inc(&a1, id).await.unwrap(), expected);
    }
    let far = stopped_at + 12 * INTERVAL;
    subnet
        .wait_for("many intervals without node 3", Duration::from_secs(120), |s| {
            metric(s, 0, "cairn_certified_height") >= far
        })
        .unwrap();
    let disk_before = dir_size(&subnet.node_dir(1));
    let certified_before = metric(&subnet, 0, "cairn_certified_height");

    // Node 3 comes back: it cannot replay (the blocks are purged everywhere),
    // so it resumes from the newest package and syncs the state.
    subnet.spawn(3).unwrap();
    subnet
        .wait_for("node 3 to catch up", Duration::from_secs(90), |s| {
            metric(s, 3, "cairn_certified_height") >= metric(s, 0, "cairn_certified_height").saturating_sub(2)
                && metric(s, 3, "cairn_certified_height") > far
        })
        .unwrap_or_else(|e| {
            subnet.dump_logs();
            panic!("{e}")
        });
    if metric(&subnet, 3, "cairn_state_syncs_total") == 0 {
        let log = std::fs::read_to_string(subnet.node_dir(3).join("node.log")).unwrap_or_default();
        panic!("node 3 did not catch up by state sync; its log:\n{log}");
    }
    let executed_by_3 = metric(&subnet, 3, "cairn_blocks_total");
    assert!(
        executed_by_3 < far - stopped_at,
        "node 3 executed {executed_by_3} blocks since its restart: it replayed history instead of syncing"
    );
    assert!(
        metric(&subnet, 0, "cairn_state_sync_chunks_served_total")
            + metric(&subnet, 1, "cairn_state_sync_chunks_served_total")
            + metric(&subnet, 2, "cairn_state_sync_chunks_served_total")
            >= 1
    );

    // It serves the same state with the same root key, and takes part again.
    let a3 = agent(&subnet, 3).await;
    assert_eq!(a3.read_root_key(), root_key);
    assert_eq!(read(&a3, id).await, expected);
    expected += 1;
    assert_eq!(inc(&a3, id).await.unwrap(), expected, "an update through the node that caught up");
    subnet.stop(0);
    expected += 1;
    assert_eq!(inc(&a1, id).await.unwrap(), expected, "node 3 counts towards 2f + 1 once node 0 is down");
    subnet.spawn(0).unwrap();

    // Disk use stays flat: many more intervals add (almost) nothing.
    let later = certified_before + 15 * INTERVAL;
    subnet
        .wait_for("more intervals", Duration::from_secs(120), |s| metric(s, 1, "cairn_certified_height") >= later)
        .unwrap();
    let disk_after = dir_size(&subnet.node_dir(1));
    let disk_before_1 = disk_before.max(1);
    eprintln!("node data dir: {disk_before} bytes at height {certified_before}, {disk_after} bytes at {later}");
    assert!(
        disk_after < disk_before_1 * 2 + (4 << 20),
        "disk use grew from {disk_before} to {disk_after} bytes over {} heights",
        later - certified_before
    );
    for i in [1, 2, 3] {
        assert_eq!(subnet.metric(i, "cairn_state_diverged"), Some(0.0), "node {i}");
    }
    // Keys were made in the chain every interval (a fresh beacon key, the
    // subnet key reshared) while certificates kept verifying with the same
    // root key; none had to be kept for lack of dealings.
    let made = metric(&subnet, 1, "cairn_keys_made_total");
    assert!(made >= 10, "only {made} intervals made new keys");
    assert_eq!(metric(&subnet, 1, "cairn_keys_kept_total"), 0);
    assert_eq!(a1.read_root_key(), root_key);
    assert_eq!(read(&a1, id).await, expected, "a certified read after many resharings");

    // The whole subnet crashes and restarts long after its early blocks were
    // purged: every node finds its keys in the blocks and packages it kept.
    for i in 0..4 {
        subnet.kill(i);
    }
    subnet.spawn_all().unwrap();
    subnet.wait_all_healthy(Duration::from_secs(90)).unwrap();
    let a2 = agent(&subnet, 2).await;
    expected += 1;
    assert_eq!(inc(&a2, id).await.unwrap(), expected, "an update after the whole subnet restarted");
}

/// The determinism guard's other half: a node whose state diverged stops
/// executing, and at the next catch-up package it replaces its state with
/// the certified one (state sync) and takes part again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diverged_node_recovers_at_the_next_catch_up_package() {
    let interval = INTERVAL.to_string();
    let mut subnet =
        LocalSubnet::init_with_args(env!("CARGO_BIN_EXE_cairn"), 4, &["--interval-length", &interval]).unwrap();
    // Node 3 computes wrong state roots for heights 3 to 7 (as if its
    // execution had been non-deterministic for a while).
    subnet.set_config(3, "wrong_state_hash_from", serde_json::json!(3)).unwrap();
    subnet.set_config(3, "wrong_state_hash_until", serde_json::json!(8)).unwrap();
    subnet.spawn_all().unwrap();
    let metric = |s: &LocalSubnet, i: usize, name: &str| s.metric(i, name).unwrap_or(0.0) as u64;
    subnet
        .wait_for("node 3 to report the divergence", Duration::from_secs(60), |s| {
            metric(s, 3, "cairn_state_diverged") == 1
        })
        .unwrap();
    subnet
        .wait_for("node 3 to recover", Duration::from_secs(90), |s| {
            metric(s, 3, "cairn_state_diverged") == 0
                && metric(s, 3, "cairn_state_syncs_total") >= 1
                && metric(s, 3, "cairn_certified_height") > INTERVAL
        })
        .unwrap_or_else(|e| {
            subnet.dump_logs();
            panic!("{e}")
        });
    // It serves the subnet's state and counts towards 2f + 1 again.
    let a3 = agent(&subnet, 3).await;
    let id = counter::install(&a3, cairn_test_canisters::COUNTER).await;
    assert_eq!(inc(&a3, id).await.unwrap(), 1);
    subnet.stop(0);
    let a1 = agent(&subnet, 1).await;
    assert_eq!(inc(&a1, id).await.unwrap(), 2, "node 3 is one of the three live nodes");
    assert_eq!(read(&a3, id).await, 2);
    for i in 1..4 {
        assert_eq!(subnet.metric(i, "cairn_state_diverged"), Some(0.0), "node {i}");
    }
}
