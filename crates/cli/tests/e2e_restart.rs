//! Restarts and crashes of a real `cairn start` (issue 3, items 1 and 6).
//!
//! * A clean stop (SIGTERM) and a start on the same data directory resume the
//!   same network: root key, canisters, their memories, controllers, module
//!   hashes and certified request statuses. `--clean` starts afresh.
//! * `kill -9` while concurrent v4 updates stream in, at several moments
//!   (early, around a checkpoint, right after a restart, later),
//!   loses no certified result: every `(request id, reply)` the client got a
//!   certificate for before the kill is read back unchanged through
//!   read_state after the restart, and the counter is at least as high as
//!   the number of certified increments.

use cairn_e2e::LocalNetwork;
use cairn_e2e::mgmt::{self, InstallMode};
use candid::{Decode, Encode, Principal};
use ic_agent::agent::{CallResponse, RequestStatusResponse};
use ic_agent::identity::BasicIdentity;
use ic_agent::{Agent, AgentError, RequestId};
use serde_bytes::ByteBuf;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CYCLES: u128 = 100_000_000_000_000;

fn identity() -> Box<dyn ic_agent::Identity> {
    Box::new(BasicIdentity::from_raw_key(&[3; 32]))
}

async fn install(agent: &Agent, wasm: &[u8]) -> Principal {
    let id = mgmt::create_canister(agent, CYCLES, None).await.unwrap();
    mgmt::install_code(agent, id, InstallMode::Install, wasm, &Encode!().unwrap()).await.unwrap();
    id
}

async fn query_u64(agent: &Agent, id: Principal, method: &str) -> u64 {
    Decode!(&agent.query(&id, method).with_arg(Encode!().unwrap()).await.unwrap(), u64).unwrap()
}

/// A v4 call signed here (so its request id is known), answered with a certificate.
async fn certified_call(
    agent: &Agent,
    id: Principal,
    method: &str,
    arg: Vec<u8>,
) -> Result<(RequestId, Vec<u8>), AgentError> {
    let signed = agent.update(&id, method).with_arg(arg).sign()?;
    match agent.update_signed(id, signed.signed_update).await? {
        CallResponse::Response(reply) => Ok((signed.request_id, reply)),
        CallResponse::Poll(rid) => Err(AgentError::MessageError(format!("no certificate in the v4 reply for {rid}"))),
    }
}

/// Reads `rid`'s status through read_state and checks it is `replied` with `reply`.
async fn assert_replied(agent: &Agent, id: Principal, rid: &RequestId, reply: &[u8]) {
    let (status, _) = agent.request_status_raw(rid, id).await.unwrap();
    match status {
        RequestStatusResponse::Replied(r) => assert_eq!(r.arg, reply, "request {rid} has another reply"),
        other => panic!("request {rid}, certified before the restart, now reads {other:?}"),
    }
}

fn root_key(agent: &Agent) -> Vec<u8> {
    agent.read_root_key()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_restart_resumes_the_same_network() {
    let mut net = LocalNetwork::start(env!("CARGO_BIN_EXE_cairn")).unwrap();
    let agent = net.agent(Some(identity())).await.unwrap();
    let me = agent.get_principal().unwrap();
    let key = root_key(&agent);
    let counter = install(&agent, cairn_test_canisters::COUNTER).await;
    let stable = install(&agent, cairn_test_canisters::STABLE).await;
    let empty = mgmt::create_canister(&agent, CYCLES, None).await.unwrap();
    let mut last = None;
    for _ in 0..5 {
        last = Some(certified_call(&agent, counter, "inc", Encode!().unwrap()).await.unwrap());
    }
    let (rid, reply) = last.unwrap();
    assert_eq!(Decode!(&reply, u64).unwrap(), 5);
    let put = Encode!(&7u64, &ByteBuf::from(b"seven".to_vec())).unwrap();
    agent.update(&stable, "put").with_arg(put).await.unwrap();
    for _ in 0..2 {
        agent.update(&stable, "bump_heap").with_arg(Encode!().unwrap()).await.unwrap();
    }

    let status = net.stop().expect("cairn exits after SIGTERM");
    assert!(status.success(), "cairn exited with {status} after SIGTERM");
    net.spawn(&[]).unwrap();
    let agent = net.agent(Some(identity())).await.unwrap();
    assert_eq!(root_key(&agent), key, "the root key changed across a restart");

    assert_eq!(query_u64(&agent, counter, "get").await, 5);
    assert_replied(&agent, counter, &rid, &reply).await;
    let hash = cairn_crypto::sha256(cairn_test_canisters::COUNTER).to_vec();
    assert_eq!(agent.read_state_canister_module_hash(counter).await.unwrap(), hash);
    assert_eq!(agent.read_state_canister_controllers(counter).await.unwrap(), vec![me]);
    // Stable memory and the heap (orthogonal persistence) both survive.
    let reply = agent.query(&stable, "get").with_arg(Encode!(&7u64).unwrap()).await.unwrap();
    assert_eq!(Decode!(&reply, Option<ByteBuf>).unwrap().map(|b| b.into_vec()), Some(b"seven".to_vec()));
    assert_eq!(query_u64(&agent, stable, "heap_counter").await, 2);
    assert!(matches!(agent.read_state_canister_module_hash(empty).await, Err(AgentError::LookupPathAbsent(_))));
    assert_eq!(agent.read_state_canister_controllers(empty).await.unwrap(), vec![me]);
    // The network carries on: updates, and new canisters get new ids.
    assert_eq!(Decode!(&agent.update(&counter, "inc").with_arg(Encode!().unwrap()).await.unwrap(), u64).unwrap(), 6);
    let fresh = mgmt::create_canister(&agent, CYCLES, None).await.unwrap();
    assert!(![counter, stable, empty].contains(&fresh), "canister id {fresh} was handed out twice");

    // A second clean restart right away, then `--clean`: a new network.
    assert!(net.stop().is_some_and(|s| s.success()));
    net.spawn(&[]).unwrap();
    let agent = net.agent(Some(identity())).await.unwrap();
    assert_eq!(query_u64(&agent, counter, "get").await, 6);
    assert!(net.stop().is_some_and(|s| s.success()));
    net.spawn(&["--clean"]).unwrap();
    let agent = net.agent(Some(identity())).await.unwrap();
    assert_ne!(root_key(&agent), key, "--clean kept the old network");
    let gone = agent.query(&counter, "get").with_arg(Encode!().unwrap()).await;
    match gone {
        Err(AgentError::UncertifiedReject { reject, .. }) => assert_eq!(reject.error_code.as_deref(), Some("IC0301")),
        other => panic!("the counter survived --clean: {other:?}"),
    }
}

/// Every certified `(request id, reply)` the clients received.
type Certified = Arc<Mutex<Vec<(RequestId, Vec<u8>)>>>;

/// Runs `clients` concurrent loops of certified `inc` calls until a call fails
/// (the node was killed); returns their handles.
fn stream_updates(
    agent: &Agent,
    id: Principal,
    clients: usize,
    certified: &Certified,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..clients)
        .map(|_| {
            let (agent, certified) = (agent.clone(), certified.clone());
            tokio::spawn(async move {
                while let Ok(record) = certified_call(&agent, id, "inc", Encode!().unwrap()).await {
                    certified.lock().unwrap().push(record);
                }
            })
        })
        .collect()
}

/// Checks, a few at a time, that every `(request id, reply)` reads back as replied with that reply.
async fn verify_replies(agent: &Agent, id: Principal, records: &[(RequestId, Vec<u8>)]) {
    const PARALLEL: usize = 4;
    let checks: Vec<_> = records
        .chunks(records.len().div_ceil(PARALLEL).max(1))
        .map(|chunk| {
            let (agent, chunk) = (agent.clone(), chunk.to_vec());
            tokio::spawn(async move {
                for (rid, reply) in &chunk {
                    assert_replied(&agent, id, rid, reply).await;
                }
            })
        })
        .collect();
    for check in checks {
        check.await.unwrap();
    }
}

async fn certified_height(net: &LocalNetwork) -> Option<u64> {
    let r = net.get("/api/v2/status").await.ok()?;
    let mut value: ciborium::Value = ciborium::from_reader(r.body.as_slice()).ok()?;
    while let ciborium::Value::Tag(_, inner) = value {
        value = *inner;
    }
    let map = value.into_map().ok()?;
    let (_, height) = map.into_iter().find(|(k, _)| k.as_text() == Some("certified_height"))?;
    u64::try_from(height.into_integer().ok()?).ok()
}

/// When to pull the plug in one round.
#[derive(Clone, Copy, Debug)]
enum Moment {
    /// After this long of streaming.
    After(Duration),
    /// Just after the certified height passes a multiple of the checkpoint
    /// interval (500): the background checkpoint is being written or has
    /// just been, so recovery starts from it (or from the one before).
    DuringCheckpoint,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_update_stream_loses_no_certified_result() {
    const CLIENTS: usize = 8;
    const CHECKPOINT_INTERVAL: u64 = 500;
    let mut net = LocalNetwork::start(env!("CARGO_BIN_EXE_cairn")).unwrap();
    let agent = net.agent(Some(identity())).await.unwrap();
    let id = install(&agent, cairn_test_canisters::COUNTER).await;
    let certified: Certified = Arc::default();

    let moments = [
        Moment::After(Duration::from_millis(300)),
        Moment::DuringCheckpoint,
        Moment::After(Duration::ZERO),
        Moment::After(Duration::from_millis(700)),
    ];
    for (round, moment) in moments.into_iter().enumerate() {
        let agent = net.agent(Some(identity())).await.unwrap();
        let before = certified.lock().unwrap().len();
        // Reaching the next checkpoint height takes a few hundred blocks; few
        // clients keep the number of replies to verify afterwards small.
        let clients = if matches!(moment, Moment::DuringCheckpoint) { 2 } else { CLIENTS };
        let clients = stream_updates(&agent, id, clients, &certified);
        let started = Instant::now();
        match moment {
            Moment::After(delay) => tokio::time::sleep(delay).await,
            Moment::DuringCheckpoint => loop {
                let height = certified_height(&net).await.unwrap_or(0);
                if height % CHECKPOINT_INTERVAL >= 1
                    && height % CHECKPOINT_INTERVAL <= 10
                    && height > CHECKPOINT_INTERVAL
                {
                    break;
                }
                assert!(started.elapsed() < Duration::from_secs(60), "no checkpoint height reached (at {height})");
                tokio::time::sleep(Duration::from_millis(1)).await;
            },
        }
        let height = certified_height(&net).await;
        net.kill();
        for client in clients {
            client.await.unwrap();
        }
        let got = certified.lock().unwrap().len() - before;
        let checkpoints: Vec<String> = std::fs::read_dir(net.data_dir.join("node-0").join("checkpoints"))
            .map(|dir| dir.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        eprintln!(
            "round {round} ({moment:?}): killed at height {height:?} after {:?}, {got} certified replies; checkpoints {checkpoints:?}",
            started.elapsed()
        );

        net.spawn(&[]).unwrap();
        let agent = net.agent(Some(identity())).await.unwrap();
        let records = certified.lock().unwrap().clone();
        // The replies certified in this round read back the same; so do all
        // earlier ones after the checkpoint round (the checkpoint replaces
        // the blocks they were in) and after the last round.
        let last = round + 1 == moments.len();
        let from = if last || matches!(moment, Moment::DuringCheckpoint) { 0 } else { before };
        let verify_started = Instant::now();
        verify_replies(&agent, id, &records[from..]).await;
        eprintln!("  {} statuses verified in {:?}", records.len() - from, verify_started.elapsed());
        // Each certified increment is a distinct value, and none is lost.
        let values: BTreeSet<u64> = records.iter().map(|(_, r)| Decode!(r, u64).unwrap()).collect();
        assert_eq!(values.len(), records.len(), "two certified increments returned the same value");
        let value = query_u64(&agent, id, "get").await;
        assert!(value >= records.len() as u64, "counter {value} < {} certified increments", records.len());
        assert!(value >= values.last().copied().unwrap_or(0), "counter {value} is below a certified reply");
    }
    let total = certified.lock().unwrap().len();
    assert!(total >= 100, "only {total} certified replies over all rounds: the test exercised too little");
}
