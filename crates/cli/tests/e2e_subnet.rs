//! Multi-node subnets of real `cairn node` processes (issue 4): IC consensus
//! over QUIC, certification by threshold signature shares, and the
//! determinism guard — all seen only through the real `ic-agent` and the
//! nodes' `/metrics`.
//!
//! * A 4-node subnet serves ic-agent updates and queries through every node;
//!   certificates verify with the root key every node reports.
//! * `kill -9` of one node: calls through the others keep succeeding; the
//!   node restarts and catches up.
//! * All four crash (`kill -9`) and restart: no certified result is lost.
//! * A node computing a wrong state root is caught by the determinism guard
//!   (log and `/metrics`), while the honest three stay live.
//! * `cairn start --nodes 4` runs such a subnet and stops it on SIGTERM.

use cairn_e2e::subnet::LocalSubnet;
use cairn_e2e::subnet::counter::{self, agent, inc, read};
use candid::{Encode, Principal};
use ic_agent::agent::{CallResponse, RequestStatusResponse};
use ic_agent::identity::BasicIdentity;
use ic_agent::{Agent, RequestId};
use std::time::Duration;

async fn install_counter(agent: &Agent) -> Principal {
    counter::install(agent, cairn_test_canisters::COUNTER).await
}

/// A v4 call signed here (so its request id is known), answered with a certificate.
async fn certified_inc(agent: &Agent, id: Principal) -> (RequestId, Vec<u8>) {
    let signed = agent.update(&id, "inc").with_arg(Encode!().unwrap()).sign().unwrap();
    match agent.update_signed(id, signed.signed_update).await.unwrap() {
        CallResponse::Response(reply) => (signed.request_id, reply),
        CallResponse::Poll(rid) => panic!("no certificate in the v4 reply for {rid}"),
    }
}

/// Waits until the given nodes have all certified the height the most
/// advanced of them had certified: each node admits calls against its own
/// latest certified state, which may trail another node's by a height.
fn settle(subnet: &LocalSubnet, nodes: std::ops::Range<usize>) {
    let height = |i: usize| subnet.metric(i, "cairn_certified_height").unwrap_or(0.0);
    let target = nodes.clone().map(height).fold(0.0, f64::max);
    subnet
        .wait_for("the nodes to certify the same height", Duration::from_secs(30), |_| {
            nodes.clone().all(|i| height(i) >= target)
        })
        .unwrap();
}

fn root_key(agent: &Agent) -> Vec<u8> {
    agent.read_root_key()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_nodes_serve_every_client_and_survive_a_crash() {
    let mut subnet = LocalSubnet::start(env!("CARGO_BIN_EXE_cairn"), 4).unwrap();
    let mut agents = Vec::new();
    for i in 0..4 {
        agents.push(agent(&subnet, i).await);
    }
    // One subnet, one root key, whichever node answers.
    for a in &agents[1..] {
        assert_eq!(root_key(a), root_key(&agents[0]));
    }
    let id = install_counter(&agents[1]).await;
    settle(&subnet, 0..4);

    // Updates through every node, each answered with a certificate ic-agent
    // verified; queries through every node see all of them.
    let mut expected = 0;
    for a in &agents {
        expected += 1;
        assert_eq!(inc(a, id).await.unwrap(), expected);
    }
    settle(&subnet, 0..4);
    for a in &agents {
        assert_eq!(read(a, id).await, expected);
    }

    // Crash one node (f = 1): the other three keep finalizing and certifying.
    subnet.kill(3);
    for round in 0..3 {
        for a in &agents[..3] {
            expected += 1;
            let got = inc(a, id).await.unwrap_or_else(|e| panic!("update {round} after the crash failed: {e}"));
            assert_eq!(got, expected);
        }
    }

    // The crashed node comes back, catches up from its peers and serves the same state.
    subnet.spawn(3).unwrap();
    let height = |s: &LocalSubnet, i: usize| s.metric(i, "cairn_certified_height").unwrap_or(0.0);
    let target = height(&subnet, 0);
    subnet.wait_for("node 3 to catch up", Duration::from_secs(60), |s| height(s, 3) >= target).unwrap();
    settle(&subnet, 0..4);
    let a3 = agent(&subnet, 3).await;
    assert_eq!(read(&a3, id).await, expected);
    expected += 1;
    assert_eq!(inc(&a3, id).await.unwrap(), expected);
    for i in 0..4 {
        assert_eq!(subnet.metric(i, "cairn_state_diverged"), Some(0.0), "node {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_nodes_crash_and_restart_without_losing_certified_results() {
    let mut subnet = LocalSubnet::start(env!("CARGO_BIN_EXE_cairn"), 4).unwrap();
    let a0 = agent(&subnet, 0).await;
    let key = root_key(&a0);
    let id = install_counter(&a0).await;
    settle(&subnet, 0..4);
    let mut certified = Vec::new();
    for i in 0..8 {
        let a = agent(&subnet, i % 4).await;
        certified.push(certified_inc(&a, id).await);
    }
    for i in 0..4 {
        subnet.kill(i);
    }
    subnet.spawn_all().unwrap();
    subnet.wait_all_healthy(Duration::from_secs(60)).unwrap();
    for i in 0..4 {
        let a = agent(&subnet, i).await;
        assert_eq!(root_key(&a), key, "node {i} has another root key after the restart");
        assert_eq!(read(&a, id).await, 8, "node {i}");
        for (rid, reply) in &certified {
            let (status, _) = a.request_status_raw(rid, id).await.unwrap();
            match status {
                RequestStatusResponse::Replied(r) => assert_eq!(&r.arg, reply, "request {rid} on node {i}"),
                other => panic!("request {rid}, certified before the crash, reads {other:?} on node {i}"),
            }
        }
    }
    // And the subnet moves on.
    assert_eq!(inc(&agent(&subnet, 2).await, id).await.unwrap(), 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diverging_node_is_detected_and_the_honest_nodes_stay_live() {
    let mut subnet = LocalSubnet::init(env!("CARGO_BIN_EXE_cairn"), 4).unwrap();
    // Node 3 computes a wrong state root from height 1 on (as if its
    // execution were non-deterministic), and signs shares on it.
    subnet.set_config(3, "wrong_state_hash_from", serde_json::json!(1)).unwrap();
    subnet.spawn_all().unwrap();
    subnet
        .wait_for("the honest nodes to certify", Duration::from_secs(60), |s| (0..3).all(|i| s.is_healthy(i)))
        .unwrap();
    subnet
        .wait_for("node 3 to report the divergence", Duration::from_secs(30), |s| {
            s.metric(3, "cairn_state_diverged") == Some(1.0)
        })
        .unwrap();
    let log = std::fs::read_to_string(subnet.node_dir(3).join("node.log")).unwrap();
    if !log.contains("STATE DIVERGED") {
        subnet.dump_logs();
        panic!("node 3's log does not say it diverged");
    }
    assert!(subnet.metric(3, "cairn_diverged_height").unwrap() >= 1.0);
    // Node 3 stops executing: its height stays put while the others move on.
    let stuck = subnet.metric(3, "cairn_block_height").unwrap();
    let a0 = agent(&subnet, 0).await;
    let id = install_counter(&a0).await;
    settle(&subnet, 0..3);
    for expected in 1..=3 {
        assert_eq!(inc(&agent(&subnet, expected as usize % 3).await, id).await.unwrap(), expected);
    }
    assert_eq!(subnet.metric(3, "cairn_block_height").unwrap(), stuck);
    assert!(subnet.metric(0, "cairn_block_height").unwrap() > stuck);
    for i in 0..3 {
        assert_eq!(subnet.metric(i, "cairn_state_diverged"), Some(0.0), "honest node {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cairn_start_with_nodes_runs_a_subnet_of_processes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let port = cairn_e2e::subnet::free_port_block(4);
    let mut supervisor = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["start", "--nodes", "4", "--port", &port.to_string(), "--log-level", "warn"])
        .args(["--unit-delay-ms", "200", "--notary-delay-ms", "30", "--data-dir"])
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let healthy = |i: u16| {
        cairn_e2e::raw_request_to("127.0.0.1".parse().unwrap(), port + i, "GET", "/api/v2/status", &[])
            .is_ok_and(|r| r.text().contains("healthy"))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !(0..4).all(healthy) {
        assert!(std::time::Instant::now() < deadline, "the 4 nodes did not become healthy");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut a2 = Agent::builder().with_url(format!("http://127.0.0.1:{}", port + 2)).build().unwrap();
    a2.fetch_root_key().await.unwrap();
    a2.set_identity(BasicIdentity::from_raw_key(&[5; 32]));
    let id = install_counter(&a2).await;
    assert_eq!(inc(&a2, id).await.unwrap(), 1);
    // SIGTERM to the supervisor stops every node.
    let _ = std::process::Command::new("kill").arg("-TERM").arg(supervisor.id().to_string()).status();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = supervisor.try_wait().unwrap() {
            assert!(status.success(), "cairn start exited with {status}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "cairn start did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    for i in 0..4 {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port + i)).is_err(),
            "node {i} still listens after the supervisor stopped"
        );
    }
}
