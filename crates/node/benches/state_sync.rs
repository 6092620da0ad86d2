//! State sync throughput on loopback: peers serve a checkpoint holding one
//! canister with `MiB` of incompressible memory over QUIC (TLS 1.3), and a
//! fresh node fetches it with the node's real state sync (manifest check,
//! parallel requests to every peer, SHA-256 of every chunk, writes, fsync).
//!
//! ```text
//! cargo bench -p cairn-node --bench state_sync -- [MiB=1024] [peers=3] [runs=3]
//! ```

use cairn_crypto::node_key::NodeSigningKey;
use cairn_node::metrics::NodeMetrics;
use cairn_node::subnet::PeerMessage;
use cairn_node::subnet::state_sync::{Fetch, StateSyncMessage, serve};
use cairn_p2p::{Transport, TransportConfig};
use cairn_state::canister_state::{CanisterSettings, CanisterState, ExecutionState, SystemState, WasmBinary};
use cairn_state::page_map::{Memory, PageMap, WASM_PAGE_SIZE};
use cairn_state::{ReplicatedState, SubnetType, SystemMetadata};
use cairn_state_manager::Checkpoints;
use cairn_types::{CanisterId, Cycles, Height, NodeId, Principal, SubnetId, Time};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Instant;

fn state_with_memory(mib: u64) -> ReplicatedState {
    let mut state = ReplicatedState::new(SystemMetadata::single_subnet(
        SubnetId(Principal::self_authenticating(b"bench")),
        SubnetType::Application,
        13,
        vec![1, 2, 3],
    ));
    let id = CanisterId::from_u64(1);
    let mut memory = PageMap::new();
    // xorshift: incompressible enough, and fast to make.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut buf = vec![0u8; 1 << 20];
    for mb in 0..mib {
        for w in buf.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes());
        }
        memory.write(mb << 20, &buf);
    }
    let execution = ExecutionState {
        wasm_binary: Arc::new(WasmBinary { bytes: vec![0, 97, 115, 109, 1, 0, 0, 0], hash: [0; 32] }),
        wasm_memory: Memory { page_map: memory, size_wasm_pages: (mib << 20) / WASM_PAGE_SIZE },
        stable_memory: Memory::default(),
        exported_globals: Vec::new(),
        exports: Default::default(),
        metadata: BTreeMap::new(),
        memory64: false,
    };
    let system = SystemState::new(
        id,
        BTreeSet::new(),
        Cycles::new(1_000_000_000_000),
        CanisterSettings::default(),
        Time::from_secs(1),
    );
    state.canisters.insert(id, CanisterState { system_state: system, execution_state: Some(execution) });
    state
}

fn main() {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let mib = args.first().copied().unwrap_or(1024);
    let n_peers = args.get(1).copied().unwrap_or(3) as usize;
    let runs = args.get(2).copied().unwrap_or(3) as usize;
    let dir = tempfile::tempdir().unwrap();
    let height = Height(500);
    let started = Instant::now();
    let state = state_with_memory(mib);
    let serving = Arc::new(Checkpoints::open(dir.path().join("serving")).unwrap());
    let root = serving.write(height, [7; 32], &state).unwrap();
    drop(state);
    println!("checkpoint of {mib} MiB written in {:.1} s", started.elapsed().as_secs_f64());

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let _guard = runtime.enter();
    let keys: Vec<NodeSigningKey> = (0..=n_peers).map(|i| NodeSigningKey::from_seed([i as u8 + 1; 32])).collect();
    let ids: Vec<NodeId> = keys.iter().map(|k| k.node_id()).collect();
    let members: BTreeSet<NodeId> = ids.iter().copied().collect();
    let addrs: Vec<SocketAddr> =
        (0..=n_peers).map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap()).collect();
    let metrics = NodeMetrics::default();
    let mut transports = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let peers = (0..=n_peers).filter(|j| *j != i).map(|j| (ids[j], addrs[j])).collect();
        let config = TransportConfig::new(addrs[i], key.clone(), peers, members.clone());
        let (transport, mut inbound) = Transport::<PeerMessage>::start(config).unwrap();
        let (tx, rx) = crossbeam_channel::bounded::<(NodeId, StateSyncMessage)>(10_000);
        runtime.spawn(async move {
            while let Some((from, message)) = inbound.recv().await {
                if let PeerMessage::StateSync(m) = message {
                    let _ = tx.try_send((from, m));
                }
            }
        });
        if i > 0 {
            let (checkpoints, t, m) = (serving.clone(), transport.clone(), metrics.clone());
            std::thread::spawn(move || serve(checkpoints, t, rx, m));
            transports.push((transport, None));
        } else {
            transports.push((transport, Some(rx)));
        }
    }
    let (client, responses) = (&transports[0].0, transports[0].1.as_ref().unwrap());
    while client.connected_peers().len() < n_peers {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let mut rates = Vec::new();
    for run in 0..runs {
        let target = Checkpoints::open(dir.path().join(format!("fetched-{run}"))).unwrap();
        let (shutdown, newest) = (AtomicBool::new(false), AtomicU64::new(0));
        let fetch = Fetch {
            height,
            root,
            peers: ids[1..].to_vec(),
            transport: client,
            responses,
            checkpoints: &target,
            metrics: &metrics,
            shutdown: &shutdown,
            newest: &newest,
        };
        let stats = fetch.run().unwrap();
        let rate = stats.fetched_bytes as f64 / (1 << 20) as f64 / stats.seconds;
        println!(
            "run {run}: {:.0} MiB in {:.2} s = {rate:.0} MiB/s ({} chunks from {n_peers} peers)",
            stats.fetched_bytes as f64 / (1 << 20) as f64,
            stats.seconds,
            stats.chunks
        );
        rates.push(rate);
        drop(target);
        let _ = std::fs::remove_dir_all(dir.path().join(format!("fetched-{run}")));
    }
    rates.sort_by(f64::total_cmp);
    println!("state sync of {mib} MiB: median {:.0} MiB/s over {runs} runs", rates[rates.len() / 2]);
}
