//! End to end through the real `ic-agent` 0.49 against a real `cairn start`:
//! canister creation with cycles, installs (plain and chunked), v4 sync
//! updates, signed queries (verified, the agent's default), read_state of
//! request statuses and canister information, upgrades that keep stable
//! memory, controllers, and the reject codes of failed calls.

use cairn_e2e::LocalNetwork;
use cairn_e2e::mgmt::{self, CanisterSettings, InstallMode, RunningStatus};
use cairn_e2e::outcome::{Rejection, rejection};
use candid::{Decode, Encode, Nat, Principal};
use ic_agent::agent::{CallResponse, RejectCode, RequestStatusResponse};
use ic_agent::identity::BasicIdentity;
use ic_agent::{Agent, AgentError, RequestId};
use serde_bytes::ByteBuf;

const CYCLES: u128 = 100_000_000_000_000;

fn identity(seed: u8) -> Box<dyn ic_agent::Identity> {
    Box::new(BasicIdentity::from_raw_key(&[seed; 32]))
}

async fn start() -> (LocalNetwork, Agent) {
    let net = LocalNetwork::start(env!("CARGO_BIN_EXE_cairn")).unwrap();
    let agent = net.agent(Some(identity(1))).await.unwrap();
    (net, agent)
}

/// Creates a canister with [`CYCLES`] and installs `wasm` into it.
async fn canister_with(agent: &Agent, wasm: &[u8]) -> Principal {
    let id = mgmt::create_canister(agent, CYCLES, None).await.unwrap();
    mgmt::install_code(agent, id, InstallMode::Install, wasm, &Encode!().unwrap()).await.unwrap();
    id
}

async fn query_u64(agent: &Agent, id: Principal, method: &str) -> u64 {
    let reply = agent.query(&id, method).with_arg(Encode!().unwrap()).await.unwrap();
    Decode!(&reply, u64).unwrap()
}

/// The error code of a reject, checking its reject code and whether it was certified.
fn assert_reject<T: std::fmt::Debug>(
    what: &str,
    result: Result<T, AgentError>,
    certified: Rejection,
    code: RejectCode,
    error_code: &str,
) -> String {
    let (kind, reject) = rejection(what, result);
    assert_eq!(kind, certified, "{what}: {reject:?}");
    assert_eq!(reject.reject_code, code, "{what}: {reject:?}");
    assert_eq!(reject.error_code.as_deref(), Some(error_code), "{what}: {reject:?}");
    assert!(!reject.reject_message.is_empty(), "{what}: empty reject message");
    reject.reject_message
}

/// A new network serves verified reads at once: the very first requests
/// are a read_state and a signed query, before any update made a block.
/// (ic-agent refuses certificates whose `/time` is minutes old.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_network_serves_verified_reads_at_once() {
    let net = LocalNetwork::start(env!("CARGO_BIN_EXE_cairn")).unwrap();
    let agent = net.agent(None).await.unwrap();
    let any = Principal::from_text(mgmt::ANY_ECID).unwrap();
    let (status, _) = agent.request_status_raw(&RequestId::new(&[1; 32]), any).await.unwrap();
    assert!(matches!(status, RequestStatusResponse::Unknown), "{status:?}");
    let result = agent.query(&any, "get").with_arg(Encode!().unwrap()).await;
    assert_reject(
        "query to a canister not yet created",
        result,
        Rejection::Uncertified,
        RejectCode::DestinationInvalid,
        "IC0301",
    );
}

/// Create with cycles, install, v4 update, verified query, read_state of
/// the request status and of the canister's module hash and controllers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_install_update_query_and_read_state() {
    let (net, agent) = start().await;
    let me = agent.get_principal().unwrap();

    let id = mgmt::create_canister(&agent, CYCLES, None).await.unwrap();
    let status = mgmt::canister_status(&agent, id).await.unwrap();
    assert_eq!(status.status, RunningStatus::Running);
    assert_eq!(status.module_hash, None);
    assert_eq!(status.settings.controllers, vec![me]);
    let cycles = u128::try_from(status.cycles.0).unwrap();
    assert!(cycles > CYCLES / 2 && cycles <= CYCLES, "{cycles}");
    // An empty canister has no module hash in the state tree (provably absent).
    match agent.read_state_canister_module_hash(id).await {
        Err(AgentError::LookupPathAbsent(_)) => {}
        other => panic!("module_hash of an empty canister: {other:?}"),
    }
    assert_eq!(agent.read_state_canister_controllers(id).await.unwrap(), vec![me]);

    mgmt::install_code(&agent, id, InstallMode::Install, cairn_test_canisters::COUNTER, &Encode!().unwrap())
        .await
        .unwrap();
    let hash = cairn_crypto::sha256(cairn_test_canisters::COUNTER);
    assert_eq!(agent.read_state_canister_module_hash(id).await.unwrap(), hash.to_vec());
    let status = mgmt::canister_status(&agent, id).await.unwrap();
    assert_eq!(status.module_hash.map(|h| h.into_vec()), Some(hash.to_vec()));
    // A second `install` is refused: the canister is not empty.
    let again =
        mgmt::install_code(&agent, id, InstallMode::Install, cairn_test_canisters::COUNTER, &Encode!().unwrap()).await;
    assert_reject("install twice", again, Rejection::Certified, RejectCode::CanisterError, "IC0514");

    // A v4 sync call, signed here so the test knows its request id.
    let signed = agent.update(&id, "inc").with_arg(Encode!().unwrap()).sign().unwrap();
    let reply = match agent.update_signed(id, signed.signed_update.clone()).await.unwrap() {
        CallResponse::Response(reply) => reply,
        CallResponse::Poll(rid) => panic!("the v4 call was not answered with a certificate ({rid})"),
    };
    assert_eq!(Decode!(&reply, u64).unwrap(), 1);
    // Its certified status, read back through read_state.
    let (status, certificate) = agent.request_status_raw(&signed.request_id, id).await.unwrap();
    match status {
        RequestStatusResponse::Replied(r) => assert_eq!(r.arg, reply),
        other => panic!("request status of a replied call: {other:?}"),
    }
    let time = certificate.tree.lookup_path([b"time".as_ref()]);
    assert!(matches!(time, ic_agent::hash_tree::LookupResult::Found(_)), "no /time in the certificate");
    // A request id nobody sent is provably unknown.
    let (status, _) = agent.request_status_raw(&RequestId::new(&[7; 32]), id).await.unwrap();
    assert!(matches!(status, RequestStatusResponse::Unknown), "{status:?}");

    // The agent's default update path (v4 call) and a verified query.
    let reply = agent.update(&id, "inc").with_arg(Encode!().unwrap()).await.unwrap();
    assert_eq!(Decode!(&reply, u64).unwrap(), 2);
    let reply = agent.query(&id, "get").with_arg(Encode!().unwrap()).call_with_verification().await.unwrap();
    assert_eq!(Decode!(&reply, u64).unwrap(), 2);
    // Query and update see the caller the node authenticated.
    let reply = agent.query(&id, "whoami").with_arg(Encode!().unwrap()).await.unwrap();
    assert_eq!(Decode!(&reply, Principal).unwrap(), me);

    // The node saw the endpoints ic-agent 0.49 uses, and only those.
    let metrics = net.get("/metrics").await.unwrap();
    assert_eq!(metrics.status, 200);
    let metrics = metrics.text();
    let count = |endpoint: &str| -> u64 {
        let prefix = format!("cairn_http_requests_total{{endpoint=\"{endpoint}\",status_class=\"2xx\"}} ");
        metrics.lines().filter_map(|l| l.strip_prefix(&prefix)).map(|v| v.trim().parse::<u64>().unwrap()).sum()
    };
    for endpoint in [
        "/api/v2/status",
        "/api/v4/canister/{ecid}/call",
        "/api/v3/canister/{ecid}/query",
        "/api/v3/canister/{ecid}/read_state",
    ] {
        assert!(count(endpoint) > 0, "no successful {endpoint} requests in /metrics:\n{metrics}");
    }
    for endpoint in ["/api/v2/canister/{ecid}/call", "/api/v3/canister/{ecid}/call", "/api/v2/canister/{ecid}/query"] {
        assert_eq!(count(endpoint), 0, "ic-agent 0.49 does not use {endpoint}");
    }
    assert!(metrics.contains("cairn_http_sync_calls_total{outcome=\"certified\"}"), "{metrics}");
}

/// `upload_chunk` + `install_chunked_code`, then upgrades (plain and
/// chunked) that keep stable memory, then a reinstall that wipes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_install_and_upgrades_keep_stable_memory() {
    let (_net, agent) = start().await;
    let wasm = cairn_test_canisters::STABLE;
    let id = mgmt::create_canister(&agent, CYCLES, None).await.unwrap();

    // Three chunks (each well under the 1 MiB chunk limit).
    let size = wasm.len().div_ceil(3);
    let mut hashes = Vec::new();
    for chunk in wasm.chunks(size) {
        let hash = mgmt::upload_chunk(&agent, id, chunk).await.unwrap();
        assert_eq!(hash, cairn_crypto::sha256(chunk).to_vec(), "upload_chunk returns the chunk's SHA-256");
        hashes.push(hash);
    }
    assert_eq!(hashes.len(), 3);
    let mut stored = mgmt::stored_chunks(&agent, id).await.unwrap();
    stored.sort();
    let mut expected = hashes.clone();
    expected.sort();
    assert_eq!(stored, expected);

    let module_hash = cairn_crypto::sha256(wasm);
    // A wrong module hash is refused and installs nothing.
    let wrong =
        mgmt::install_chunked_code(&agent, id, InstallMode::Install, &hashes, &[0; 32], &Encode!().unwrap()).await;
    let message = assert_reject("wrong module hash", wrong, Rejection::Certified, RejectCode::CanisterError, "IC0504");
    assert!(message.contains("does not match"), "{message}");
    assert!(matches!(agent.read_state_canister_module_hash(id).await, Err(AgentError::LookupPathAbsent(_))));

    mgmt::install_chunked_code(&agent, id, InstallMode::Install, &hashes, &module_hash, &Encode!().unwrap())
        .await
        .unwrap();
    assert_eq!(agent.read_state_canister_module_hash(id).await.unwrap(), module_hash.to_vec());

    // State in stable memory (the map) and on the heap (saved to stable
    // memory by pre_upgrade and restored by post_upgrade).
    for (key, value) in [(1u64, "one"), (2, "two")] {
        let arg = Encode!(&key, &ByteBuf::from(value.as_bytes().to_vec())).unwrap();
        agent.update(&id, "put").with_arg(arg).await.unwrap();
    }
    for _ in 0..3 {
        agent.update(&id, "bump_heap").with_arg(Encode!().unwrap()).await.unwrap();
    }
    let check = |expect_len: u64, expect_heap: u64| {
        let agent = &agent;
        async move {
            assert_eq!(query_u64(agent, id, "len").await, expect_len);
            assert_eq!(query_u64(agent, id, "heap_counter").await, expect_heap);
            let reply = agent.query(&id, "get").with_arg(Encode!(&1u64).unwrap()).await.unwrap();
            let one = Decode!(&reply, Option<ByteBuf>).unwrap().map(|b| b.into_vec());
            assert_eq!(one, (expect_len > 0).then(|| b"one".to_vec()));
        }
    };
    check(2, 3).await;

    mgmt::install_code(&agent, id, InstallMode::Upgrade(None), wasm, &Encode!().unwrap()).await.unwrap();
    check(2, 3).await;
    assert!(query_u64(&agent, id, "stable_size_pages").await > 0);

    agent.update(&id, "bump_heap").with_arg(Encode!().unwrap()).await.unwrap();
    mgmt::install_chunked_code(&agent, id, InstallMode::Upgrade(None), &hashes, &module_hash, &Encode!().unwrap())
        .await
        .unwrap();
    check(2, 4).await;
    assert_eq!(agent.read_state_canister_module_hash(id).await.unwrap(), module_hash.to_vec());

    // Reinstall wipes stable memory and the heap.
    mgmt::install_code(&agent, id, InstallMode::Reinstall, wasm, &Encode!().unwrap()).await.unwrap();
    check(0, 0).await;
}

/// Controllers: visible in read_state and canister_status, changed by
/// update_settings; a non-controller is refused with IC0512.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controllers_and_non_controllers() {
    let net = LocalNetwork::start(env!("CARGO_BIN_EXE_cairn")).unwrap();
    let alice = net.agent(Some(identity(1))).await.unwrap();
    let bob = net.agent(Some(identity(2))).await.unwrap();
    let anonymous = net.agent(None).await.unwrap();
    let (a, b) = (alice.get_principal().unwrap(), bob.get_principal().unwrap());
    let id = canister_with(&alice, cairn_test_canisters::COUNTER).await;

    // Bob controls nothing yet.
    let only_bob = CanisterSettings { controllers: Some(vec![b]), ..Default::default() };
    let refused = |what: &'static str, result: Result<(), AgentError>| {
        let message = assert_reject(what, result, Rejection::Uncertified, RejectCode::CanisterError, "IC0512");
        assert!(message.contains("controllers"), "{what}: {message}");
    };
    refused("bob update_settings", mgmt::update_settings(&bob, id, only_bob.clone()).await);
    refused(
        "bob install_code",
        mgmt::install_code(&bob, id, InstallMode::Reinstall, cairn_test_canisters::COUNTER, &Encode!().unwrap()).await,
    );
    refused("bob stop_canister", mgmt::canister_call(&bob, "stop_canister", id).await);
    refused("bob uninstall_code", mgmt::canister_call(&bob, "uninstall_code", id).await);
    // Chunk uploads are charged to the canister: only its controllers may make them.
    refused("bob upload_chunk", mgmt::upload_chunk(&bob, id, b"chunk").await.map(drop));
    let status = mgmt::canister_status(&bob, id).await.map(drop);
    assert_reject("bob canister_status", status, Rejection::Uncertified, RejectCode::CanisterError, "IC0512");
    assert_eq!(anonymous.read_state_canister_controllers(id).await.unwrap(), vec![a]);
    // Nothing bob tried changed anything: the canister runs its code.
    assert_eq!(Decode!(&bob.update(&id, "inc").with_arg(Encode!().unwrap()).await.unwrap(), u64).unwrap(), 1);

    // Alice adds bob.
    let both = CanisterSettings { controllers: Some(vec![a, b]), ..Default::default() };
    mgmt::update_settings(&alice, id, both).await.unwrap();
    let mut controllers = anonymous.read_state_canister_controllers(id).await.unwrap();
    controllers.sort();
    let mut expected = vec![a, b];
    expected.sort();
    assert_eq!(controllers, expected);
    let mut listed = mgmt::canister_status(&bob, id).await.unwrap().settings.controllers;
    listed.sort();
    assert_eq!(listed, expected);

    // Bob removes alice, who is then refused.
    mgmt::update_settings(&bob, id, only_bob).await.unwrap();
    assert_eq!(anonymous.read_state_canister_controllers(id).await.unwrap(), vec![b]);
    let only_alice = CanisterSettings { controllers: Some(vec![a]), ..Default::default() };
    refused("alice update_settings", mgmt::update_settings(&alice, id, only_alice).await);
    // Bob, now the only controller, can stop and start it.
    mgmt::canister_call(&bob, "stop_canister", id).await.unwrap();
    mgmt::canister_call(&bob, "start_canister", id).await.unwrap();
    assert_eq!(query_u64(&alice, id, "get").await, 1);
}

/// Reject codes and error codes of failed calls and queries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_carry_the_right_codes() {
    let (_net, agent) = start().await;
    let inter = canister_with(&agent, cairn_test_canisters::INTER).await;
    let counter = canister_with(&agent, cairn_test_canisters::COUNTER).await;
    let update = |id: Principal, method: &'static str, arg: Vec<u8>| agent.update(&id, method).with_arg(arg);

    // A trap: CANISTER_ERROR, IC0503, with the canister's message; its changes roll back.
    let trap = update(inter, "trap_with", Encode!(&"boom".to_string()).unwrap()).await;
    let message = assert_reject("trap", trap, Rejection::Certified, RejectCode::CanisterError, "IC0503");
    assert!(message.contains("boom"), "{message}");
    let trap = update(inter, "increment_then_trap", Encode!().unwrap()).await;
    assert_reject("increment_then_trap", trap, Rejection::Certified, RejectCode::CanisterError, "IC0503");
    assert_eq!(query_u64(&agent, inter, "counter").await, 0);

    // An explicit reject: CANISTER_REJECT, IC0406, the canister's text.
    let reject = update(inter, "reject_with", Encode!(&"no thanks".to_string()).unwrap()).await;
    let message = assert_reject("reject", reject, Rejection::Certified, RejectCode::CanisterReject, "IC0406");
    assert_eq!(message, "no thanks");

    // A method the canister does not export: IC0536 (update and query).
    let missing = update(counter, "no_such_method", Encode!().unwrap()).await;
    let message = assert_reject("missing update", missing, Rejection::Certified, RejectCode::CanisterError, "IC0536");
    assert!(message.contains("no_such_method"), "{message}");
    let missing = agent.query(&counter, "no_such_method").with_arg(Encode!().unwrap()).await;
    assert_reject("missing query", missing, Rejection::Uncertified, RejectCode::CanisterError, "IC0536");
    // An update method called as a query is not a query method.
    let not_query = agent.query(&counter, "inc").with_arg(Encode!().unwrap()).await;
    assert_reject("update as query", not_query, Rejection::Uncertified, RejectCode::CanisterError, "IC0536");

    // A canister that does not exist: DESTINATION_INVALID, IC0301.
    let nobody = Principal::from_slice(&[0, 0, 0, 0, 0, 0, 0x30, 0x39, 1, 1]);
    let unknown = update(nobody, "inc", Encode!().unwrap()).await;
    let message =
        assert_reject("unknown update", unknown, Rejection::Uncertified, RejectCode::DestinationInvalid, "IC0301");
    assert!(message.contains(&nobody.to_text()), "{message}");
    let unknown = agent.query(&nobody, "get").with_arg(Encode!().unwrap()).await;
    assert_reject("unknown query", unknown, Rejection::Uncertified, RejectCode::DestinationInvalid, "IC0301");
    let unknown = mgmt::canister_status(&agent, nobody).await;
    assert_reject("unknown canister_status", unknown, Rejection::Uncertified, RejectCode::DestinationInvalid, "IC0301");

    // An empty canister: IC0537.
    let empty = mgmt::create_canister(&agent, CYCLES, None).await.unwrap();
    let result = update(empty, "inc", Encode!().unwrap()).await;
    assert_reject("empty update", result, Rejection::Uncertified, RejectCode::CanisterError, "IC0537");
    let result = agent.query(&empty, "get").with_arg(Encode!().unwrap()).await;
    assert_reject("empty query", result, Rejection::Uncertified, RejectCode::CanisterError, "IC0537");

    // A stopped canister: IC0508 (update and query); it works again once started.
    mgmt::canister_call(&agent, "stop_canister", counter).await.unwrap();
    assert_eq!(mgmt::canister_status(&agent, counter).await.unwrap().status, RunningStatus::Stopped);
    let stopped = update(counter, "inc", Encode!().unwrap()).await;
    let message = assert_reject("stopped update", stopped, Rejection::Uncertified, RejectCode::CanisterError, "IC0508");
    assert!(message.contains("stopped"), "{message}");
    let stopped = agent.query(&counter, "get").with_arg(Encode!().unwrap()).await;
    assert_reject("stopped query", stopped, Rejection::Uncertified, RejectCode::CanisterError, "IC0508");
    mgmt::canister_call(&agent, "start_canister", counter).await.unwrap();
    assert_eq!(Decode!(&update(counter, "inc", Encode!().unwrap()).await.unwrap(), u64).unwrap(), 1);

    // A frozen canister (its balance is below the freezing limit of a huge
    // freezing threshold): SYS_TRANSIENT, IC0207, for updates and queries.
    let frozen =
        CanisterSettings { freezing_threshold: Some(Nat::from(1_000_000_000_000_000u64)), ..Default::default() };
    mgmt::update_settings(&agent, counter, frozen).await.unwrap();
    let result = update(counter, "inc", Encode!().unwrap()).await;
    let message = assert_reject("frozen update", result, Rejection::Uncertified, RejectCode::SysTransient, "IC0207");
    assert!(message.contains("out of cycles"), "{message}");
    let result = agent.query(&counter, "get").with_arg(Encode!().unwrap()).await;
    assert_reject("frozen query", result, Rejection::Uncertified, RejectCode::SysTransient, "IC0207");
    // Topping it up thaws it; nothing ran while it was frozen.
    #[derive(candid::CandidType)]
    struct TopUp {
        canister_id: Principal,
        amount: Nat,
    }
    let arg = Encode!(&TopUp { canister_id: counter, amount: Nat::from(10u128.pow(19)) }).unwrap();
    agent
        .update(&Principal::management_canister(), "provisional_top_up_canister")
        .with_effective_canister_id(counter)
        .with_arg(arg)
        .await
        .unwrap();
    assert_eq!(Decode!(&update(counter, "inc", Encode!().unwrap()).await.unwrap(), u64).unwrap(), 2);

    // Management canister methods that ingress may not call: IC0406 at admission.
    let result = agent
        .update(&Principal::management_canister(), "raw_rand")
        .with_effective_canister_id(counter)
        .with_arg(Encode!().unwrap())
        .await;
    assert_reject("raw_rand via ingress", result, Rejection::Uncertified, RejectCode::CanisterReject, "IC0406");
}
