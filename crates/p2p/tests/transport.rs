//! Real QUIC transports on 127.0.0.1 with ephemeral ports.

use cairn_crypto::NodeSigningKey;
use cairn_p2p::{P2pError, Transport, TransportConfig};
use cairn_types::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::Receiver;
use tokio::time::timeout;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Msg {
    Text(String),
    Blob(Vec<u8>),
}

type Node = (Transport<Msg>, Receiver<(NodeId, Msg)>);

const WAIT: Duration = Duration::from_secs(5);

fn key(seed: u32) -> NodeSigningKey {
    let mut s = [0u8; 32];
    s[..4].copy_from_slice(&seed.to_le_bytes());
    NodeSigningKey::from_seed(s)
}

/// A free loopback UDP port (bound and released; good enough for tests).
fn free_addr() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// Configs for a full mesh of `keys`, all members of each other.
fn mesh(keys: &[NodeSigningKey]) -> Vec<TransportConfig> {
    let addrs: Vec<SocketAddr> = keys.iter().map(|_| free_addr()).collect();
    let members: BTreeSet<NodeId> = keys.iter().map(|k| k.node_id()).collect();
    keys.iter()
        .zip(&addrs)
        .map(|(k, &addr)| {
            let peers = keys.iter().zip(&addrs).filter(|(o, _)| o.node_id() != k.node_id());
            let peers = peers.map(|(o, &a)| (o.node_id(), a)).collect();
            fast(TransportConfig::new(addr, k.clone(), peers, members.clone()))
        })
        .collect()
}

fn fast(mut config: TransportConfig) -> TransportConfig {
    config.backoff_initial = Duration::from_millis(20);
    config.backoff_max = Duration::from_millis(300);
    config.idle_timeout = Duration::from_secs(3);
    config.keep_alive = Duration::from_millis(500);
    config
}

/// Starts a transport, retrying while a just-closed predecessor still holds the port.
async fn start(config: &TransportConfig) -> Node {
    let deadline = Instant::now() + WAIT;
    loop {
        match Transport::start(config.clone()) {
            Ok(node) => return node,
            Err(P2pError::Io(e)) if Instant::now() < deadline => {
                eprintln!("retrying bind: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("start failed: {e}"),
        }
    }
}

async fn wait_connected(t: &Transport<Msg>, peers: &[NodeId]) {
    let want: BTreeSet<NodeId> = peers.iter().copied().collect();
    timeout(WAIT, async {
        while !want.is_subset(&t.connected_peers()) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{} not connected to {want:?}: {:?}", t.node_id(), t.connected_peers()));
}

async fn recv(rx: &mut Receiver<(NodeId, Msg)>) -> (NodeId, Msg) {
    timeout(WAIT, rx.recv()).await.expect("timed out waiting for a message").expect("transport gone")
}

async fn recv_n(rx: &mut Receiver<(NodeId, Msg)>, n: usize) -> BTreeSet<(NodeId, String)> {
    let mut got = BTreeSet::new();
    for _ in 0..n {
        match recv(rx).await {
            (from, Msg::Text(t)) => assert!(got.insert((from, t))),
            other => panic!("unexpected {other:?}"),
        }
    }
    got
}

fn text(s: impl Into<String>) -> Msg {
    Msg::Text(s.into())
}

/// The consensus artifacts are what this transport will carry.
#[test]
fn consensus_messages_fit_the_transport() {
    fn transportable<M: Serialize + serde::de::DeserializeOwned + Send + 'static>() {}
    transportable::<cairn_consensus::types::ConsensusMessage>();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_exchange_and_broadcast() {
    let keys = [key(1), key(2), key(3)];
    let ids: Vec<NodeId> = keys.iter().map(|k| k.node_id()).collect();
    let configs = mesh(&keys);
    let mut nodes = Vec::new();
    for c in &configs {
        nodes.push(start(c).await);
    }
    // Sent before any connection exists: queued, then delivered.
    for (i, (t, _)) in nodes.iter().enumerate() {
        assert_eq!(t.broadcast(&text(format!("bcast {i}"))).unwrap(), 2);
        t.send(ids[(i + 1) % 3], &text(format!("direct {i}"))).unwrap();
    }
    for (i, (_, rx)) in nodes.iter_mut().enumerate() {
        let got = recv_n(rx, 3).await;
        let (prev, next) = ((i + 2) % 3, (i + 1) % 3);
        let want: BTreeSet<(NodeId, String)> = [
            (ids[prev], format!("bcast {prev}")),
            (ids[next], format!("bcast {next}")),
            (ids[prev], format!("direct {prev}")),
        ]
        .into();
        assert_eq!(got, want, "node {i}");
    }
    for (i, (t, _)) in nodes.iter().enumerate() {
        let others: Vec<NodeId> = ids.iter().copied().filter(|&id| id != ids[i]).collect();
        wait_connected(t, &others).await;
        // Exactly one connection per pair.
        assert_eq!(t.metrics().connections_established, 2, "node {i}");
    }
    // Many messages in flight at once all arrive.
    for n in 0..200 {
        nodes[0].0.broadcast(&text(format!("m{n}"))).unwrap();
    }
    for (_, rx) in &mut nodes[1..] {
        assert_eq!(recv_n(rx, 200).await.len(), 200);
    }
    assert!(matches!(nodes[0].0.send(key(99).node_id(), &text("x")), Err(P2pError::NotAMember(_))));
    for (t, _) in nodes {
        t.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_members_are_refused_in_both_directions() {
    let a_key = key(10);
    let b_key = key(11);
    let a = a_key.node_id();
    // One stranger that `a` dials (larger id) and one that dials `a` (smaller id).
    let stranger = |above: bool| (1000..).map(key).find(|k| (k.node_id() > a) == above).unwrap();
    let (s_hi, s_lo) = (stranger(true), stranger(false));

    let mut configs = mesh(&[a_key.clone(), b_key.clone()]);
    let hi_addr = free_addr();
    let lo_addr = free_addr();
    // `a` has the stranger's address (say, a stale address book) but not its membership.
    configs[0].peers.insert(s_hi.node_id(), hi_addr);
    let a_addr = configs[0].listen_addr;
    let stranger_config = |k: &NodeSigningKey, addr| {
        let members = [a, k.node_id()].into();
        fast(TransportConfig::new(addr, k.clone(), BTreeMap::from([(a, a_addr)]), members))
    };
    let (ta, mut ra) = start(&configs[0]).await;
    let (tb, mut rb) = start(&configs[1]).await;
    let (thi, mut rhi) = start(&stranger_config(&s_hi, hi_addr)).await;
    let (tlo, mut rlo) = start(&stranger_config(&s_lo, lo_addr)).await;

    // The strangers believe `a` is a fellow member and try to talk to it.
    thi.send(a, &text("from hi")).unwrap();
    tlo.send(a, &text("from lo")).unwrap();
    assert!(matches!(ta.send(s_hi.node_id(), &text("to hi")), Err(P2pError::NotAMember(_))));
    assert_eq!(ta.broadcast(&text("members only")).unwrap(), 1);

    // Members are unaffected.
    assert_eq!(recv(&mut rb).await, (a, text("members only")));
    tb.send(a, &text("hello a")).unwrap();
    assert_eq!(recv(&mut ra).await, (b_key.node_id(), text("hello a")));

    // Give the strangers several reconnection attempts.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(ra.try_recv().is_err(), "a received a stranger's message");
    assert!(rhi.try_recv().is_err() && rlo.try_recv().is_err(), "a stranger received a message");
    assert_eq!(ta.connected_peers(), BTreeSet::from([b_key.node_id()]));
    assert!(thi.connected_peers().is_empty());
    let m = ta.metrics();
    assert!(m.handshake_failures >= 2, "{m:?}");
    assert_eq!(m.connections_established, 1, "{m:?}");
    assert_eq!(thi.metrics().messages_received + tlo.metrics().messages_received, 0);

    // Admitting the stranger later lets it in (membership is updatable) ...
    ta.set_members([a, b_key.node_id(), s_lo.node_id()].into());
    // (Its first message may have been written into a refused handshake and
    // lost: the dialer learns of the refusal only after it could send.)
    tlo.send(a, &text("admitted")).unwrap();
    timeout(WAIT, async { while recv(&mut ra).await != (s_lo.node_id(), text("admitted")) {} })
        .await
        .expect("admitted stranger cannot reach a");
    // ... and removing it again closes its connection.
    ta.set_members([a, b_key.node_id()].into());
    timeout(WAIT, async {
        while ta.connected_peers().contains(&s_lo.node_id()) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    for t in [ta, tb, thi, tlo] {
        t.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_peers_are_reconnected() {
    let keys = [key(20), key(21)];
    let configs = mesh(&keys);
    let ids: Vec<NodeId> = keys.iter().map(|k| k.node_id()).collect();
    let mut nodes = vec![start(&configs[0]).await, start(&configs[1]).await];
    // Index of the node that dials (smaller id) and the one that accepts.
    let (dialer, acceptor) = if ids[0] < ids[1] { (0, 1) } else { (1, 0) };

    for (round, restart) in [(1, acceptor), (2, dialer)] {
        let other = 1 - restart;
        nodes[0].0.send(ids[1], &text(format!("before {round}"))).unwrap();
        assert_eq!(recv(&mut nodes[1].1).await, (ids[0], text(format!("before {round}"))));

        let (t, rx) = nodes.remove(restart);
        t.shutdown().await;
        drop(rx);
        let started = Instant::now();
        nodes.insert(restart, start(&configs[restart]).await);

        // Both directions work again.
        nodes[restart].0.send(ids[other], &text(format!("after {round} a"))).unwrap();
        nodes[other].0.send(ids[restart], &text(format!("after {round} b"))).unwrap();
        assert_eq!(recv(&mut nodes[other].1).await, (ids[restart], text(format!("after {round} a"))));
        assert_eq!(recv(&mut nodes[restart].1).await, (ids[other], text(format!("after {round} b"))));
        eprintln!("round {round}: reconnected after {:?}", started.elapsed());
    }
    for (t, _) in nodes {
        t.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_delay_delays_delivery() {
    const DELAY: Duration = Duration::from_millis(250);
    let keys = [key(30), key(31)];
    let ids: Vec<NodeId> = keys.iter().map(|k| k.node_id()).collect();
    let mut configs = mesh(&keys);
    configs[1].link_delay = DELAY;
    let (t0, mut r0) = start(&configs[0]).await;
    let (t1, mut r1) = start(&configs[1]).await;
    wait_connected(&t0, &ids[1..]).await;
    wait_connected(&t1, &ids[..1]).await;

    // Into node 1: delayed.
    for n in 0..3 {
        let sent = Instant::now();
        t0.send(ids[1], &text(format!("slow {n}"))).unwrap();
        assert_eq!(recv(&mut r1).await, (ids[0], text(format!("slow {n}"))));
        let took = sent.elapsed();
        assert!(took >= DELAY, "delivered after {took:?}");
        assert!(took < DELAY + Duration::from_secs(1), "delivered after {took:?}");
    }
    // A burst is delayed once, not once per message.
    let sent = Instant::now();
    for n in 0..50 {
        t0.send(ids[1], &text(format!("burst {n}"))).unwrap();
    }
    assert_eq!(recv_n(&mut r1, 50).await.len(), 50);
    let took = sent.elapsed();
    assert!(took >= DELAY && took < DELAY + Duration::from_secs(1), "burst took {took:?}");

    // Out of node 1: not delayed.
    let sent = Instant::now();
    t1.send(ids[0], &text("fast")).unwrap();
    assert_eq!(recv(&mut r0).await, (ids[1], text("fast")));
    assert!(sent.elapsed() < DELAY, "undelayed link took {:?}", sent.elapsed());
    t0.shutdown().await;
    t1.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_malformed_frames_are_rejected() {
    let keys = [key(40), key(41), key(42)];
    let ids: Vec<NodeId> = keys.iter().map(|k| k.node_id()).collect();
    let mut configs = mesh(&keys);
    configs[0].max_frame_size = 1 << 20;
    configs[1].max_frame_size = 1024;
    let (big, _rbig) = start(&configs[0]).await;
    let (small, mut rsmall) = start(&configs[1]).await;
    // Node 2 speaks another message type: its frames do not decode as `Msg`.
    let (odd, _rodd) = Transport::<(u64, u64)>::start(configs[2].clone()).unwrap();

    // The sender refuses what exceeds its own limit.
    let blob = Msg::Blob(vec![7; 4096]);
    assert!(matches!(small.send(ids[0], &blob), Err(P2pError::FrameTooLarge { max: 1024, .. })));

    // The receiver refuses what exceeds its limit, and the connection survives.
    big.send(ids[1], &blob).unwrap();
    odd.send(ids[1], &(u64::MAX, u64::MAX)).unwrap();
    timeout(WAIT, async {
        while small.metrics().frames_oversized < 1 || small.metrics().frames_malformed < 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("frames not rejected: {:?}", small.metrics()));
    big.send(ids[1], &text("small enough")).unwrap();
    assert_eq!(recv(&mut rsmall).await, (ids[0], text("small enough")));
    assert!(rsmall.try_recv().is_err());
    let m = small.metrics();
    assert_eq!((m.frames_oversized, m.frames_malformed, m.messages_received), (1, 1, 1), "{m:?}");
    assert_eq!(m.connections_established, 2, "{m:?}");
    big.shutdown().await;
    small.shutdown().await;
    odd.shutdown().await;
}

/// A registry change: a third node joins two running ones (whichever side
/// dials), exchanges messages, and leaves again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_join_and_leave_at_runtime() {
    let keys = [key(40), key(41), key(42)];
    let ids: Vec<NodeId> = keys.iter().map(|k| k.node_id()).collect();
    let all = mesh(&keys);
    // Nodes 0 and 1 start as a two-node subnet; node 2 already knows all three.
    let two: BTreeSet<NodeId> = ids[..2].iter().copied().collect();
    let mut first = all[0].clone();
    first.peers.remove(&ids[2]);
    first.members = two.clone();
    let mut second = all[1].clone();
    second.peers.remove(&ids[2]);
    second.members = two;
    let (t0, mut r0) = start(&first).await;
    let (t1, mut r1) = start(&second).await;
    wait_connected(&t0, &ids[1..2]).await;
    assert!(matches!(t0.send(ids[2], &text("too early")), Err(P2pError::NotAMember(_))));

    // Node 2 joins.
    let (t2, mut r2) = start(&all[2]).await;
    let everyone: BTreeSet<NodeId> = ids.iter().copied().collect();
    t0.set_peers(all[0].peers.clone(), everyone.clone());
    t1.set_peers(all[1].peers.clone(), everyone.clone());
    wait_connected(&t2, &ids[..2]).await;
    wait_connected(&t0, &ids[1..]).await;
    t0.send(ids[2], &text("welcome")).unwrap();
    assert_eq!(recv(&mut r2).await, (ids[0], text("welcome")));
    assert_eq!(t2.broadcast(&text("hi all")).unwrap(), 2);
    assert_eq!(recv(&mut r0).await, (ids[2], text("hi all")));
    assert_eq!(recv(&mut r1).await, (ids[2], text("hi all")));

    // Node 2 leaves: its connections close and nobody dials it any more.
    let without: BTreeMap<NodeId, SocketAddr> =
        all[0].peers.iter().filter(|(id, _)| **id != ids[2]).map(|(i, a)| (*i, *a)).collect();
    t0.set_peers(without, ids[..2].iter().copied().collect());
    let without: BTreeMap<NodeId, SocketAddr> =
        all[1].peers.iter().filter(|(id, _)| **id != ids[2]).map(|(i, a)| (*i, *a)).collect();
    t1.set_peers(without, ids[..2].iter().copied().collect());
    timeout(WAIT, async {
        while !t2.connected_peers().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the removed node is still connected");
    assert!(matches!(t0.send(ids[2], &text("gone")), Err(P2pError::NotAMember(_))));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(t2.connected_peers().is_empty(), "a removed node got back in");
    t0.send(ids[1], &text("still here")).unwrap();
    assert_eq!(recv(&mut r1).await, (ids[0], text("still here")));
    for t in [t0, t1, t2] {
        t.shutdown().await;
    }
}
