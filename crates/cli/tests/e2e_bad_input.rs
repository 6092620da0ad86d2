//! Bad input against a real `cairn start` (issue 3, item 7): each gets the
//! right HTTP status and a clear message, and none of it harms the node.
//!
//! The real `ic-agent` sends everything it can express: bad signatures and
//! a sender that does not match the key (through its `Identity` trait),
//! expired and far-future `ingress_expiry`, oversize arguments, calls to
//! unknown canisters, missing methods, stopped or frozen canisters. Raw
//! HTTP carries only what the agent refuses to produce: malformed CBOR, a
//! request type the endpoint does not take (an envelope the agent signed,
//! posted to the wrong endpoint), and a body over the server's limit.
//!
//! Execution outcomes are never HTTP errors (spec §2.4): an agent
//! `UncertifiedReject` is a `200` with a CBOR reject, a `CertifiedReject` a
//! `200` with a certificate; raw v2 calls show the `200` explicitly.

use cairn_e2e::mgmt::{self, CanisterSettings, InstallMode};
use cairn_e2e::outcome::{Rejection, http_error, rejection};
use cairn_e2e::{LocalNetwork, RawResponse};
use candid::{Decode, Encode, Nat, Principal};
use ic_agent::agent::{CallResponse, EnvelopeContent, RejectCode};
use ic_agent::identity::BasicIdentity;
use ic_agent::{Agent, AgentError, Identity, Signature};
use std::time::{Duration, SystemTime};

const CYCLES: u128 = 100_000_000_000_000;

/// Signs correctly, then flips a bit of the signature.
struct BadSignature(BasicIdentity);

impl Identity for BadSignature {
    fn sender(&self) -> Result<Principal, String> {
        self.0.sender()
    }
    fn public_key(&self) -> Option<Vec<u8>> {
        self.0.public_key()
    }
    fn sign(&self, content: &EnvelopeContent) -> Result<Signature, String> {
        let mut signature = self.0.sign(content)?;
        if let Some(sig) = signature.signature.as_mut() {
            sig[10] ^= 0x01;
        }
        Ok(signature)
    }
}

/// Signs correctly with its own key but claims another sender.
struct WrongSender {
    key: BasicIdentity,
    claimed: Principal,
}

impl Identity for WrongSender {
    fn sender(&self) -> Result<Principal, String> {
        Ok(self.claimed)
    }
    fn public_key(&self) -> Option<Vec<u8>> {
        self.key.public_key()
    }
    fn sign(&self, content: &EnvelopeContent) -> Result<Signature, String> {
        self.key.sign(content)
    }
}

/// Claims a (non-anonymous) sender but sends no key and no signature.
struct Unsigned(Principal);

impl Identity for Unsigned {
    fn sender(&self) -> Result<Principal, String> {
        Ok(self.0)
    }
    fn public_key(&self) -> Option<Vec<u8>> {
        None
    }
    fn sign(&self, _: &EnvelopeContent) -> Result<Signature, String> {
        Ok(Signature { public_key: None, signature: None, delegations: None })
    }
}

fn key(seed: u8) -> BasicIdentity {
    BasicIdentity::from_raw_key(&[seed; 32])
}

/// An ic-agent (root key fetched) that signs with `identity`.
async fn agent_with(net: &LocalNetwork, identity: impl Identity + 'static) -> Agent {
    net.agent(Some(Box::new(identity))).await.unwrap()
}

/// Checks an HTTP error's status and that its plain-text message mentions every one of `words`.
fn assert_http(what: &str, status: u16, content_type: Option<&str>, body: &[u8], expected: u16, words: &[&str]) {
    let text = String::from_utf8_lossy(body);
    assert_eq!(status, expected, "{what}: {text}");
    assert!(content_type.is_some_and(|t| t.starts_with("text/plain")), "{what}: content type {content_type:?}");
    let lower = text.to_lowercase();
    for word in words {
        assert!(lower.contains(&word.to_lowercase()), "{what}: the message does not mention {word:?}: {text}");
    }
}

fn assert_agent_http<T: std::fmt::Debug>(what: &str, result: Result<T, AgentError>, expected: u16, words: &[&str]) {
    let e = http_error(what, result);
    assert_http(what, e.status, e.content_type.as_deref(), &e.content, expected, words);
}

fn assert_raw(what: &str, r: &RawResponse, expected: u16, words: &[&str]) {
    assert_http(what, r.status, r.content_type.as_deref(), &r.body, expected, words);
}

fn assert_reject<T: std::fmt::Debug>(
    what: &str,
    result: Result<T, AgentError>,
    certified: Rejection,
    code: RejectCode,
    error_code: &str,
) {
    let (kind, reject) = rejection(what, result);
    assert_eq!((kind, reject.reject_code), (certified, code), "{what}: {reject:?}");
    assert_eq!(reject.error_code.as_deref(), Some(error_code), "{what}: {reject:?}");
}

/// Decodes a CBOR body (with or without the self-describe tag) into its text-keyed map.
fn cbor_map(body: &[u8]) -> Vec<(String, ciborium::Value)> {
    let mut value: ciborium::Value = ciborium::from_reader(body).expect("a CBOR body");
    while let ciborium::Value::Tag(55799, inner) = value {
        value = *inner;
    }
    let ciborium::Value::Map(entries) = value else { panic!("not a CBOR map: {value:?}") };
    entries.into_iter().map(|(k, v)| (k.into_text().expect("text keys"), v)).collect()
}

fn field<'a>(map: &'a [(String, ciborium::Value)], key: &str) -> &'a ciborium::Value {
    &map.iter().find(|(k, _)| k == key).unwrap_or_else(|| panic!("no {key:?} in {map:?}")).1
}

async fn counter_value(agent: &Agent, id: Principal) -> u64 {
    Decode!(&agent.query(&id, "get").with_arg(Encode!().unwrap()).await.unwrap(), u64).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_errors_and_harms_nothing() {
    let net = LocalNetwork::start(env!("CARGO_BIN_EXE_cairn")).unwrap();
    let agent = net.agent(Some(Box::new(key(1)))).await.unwrap();
    let id = mgmt::create_canister(&agent, CYCLES, None).await.unwrap();
    mgmt::install_code(&agent, id, InstallMode::Install, cairn_test_canisters::COUNTER, &Encode!().unwrap())
        .await
        .unwrap();
    assert_eq!(Decode!(&agent.update(&id, "inc").with_arg(Encode!().unwrap()).await.unwrap(), u64).unwrap(), 1);
    let inc = || agent.update(&id, "inc").with_arg(Encode!().unwrap());
    let (call_v4, call_v2) = (format!("/api/v4/canister/{id}/call"), format!("/api/v2/canister/{id}/call"));
    let (query_v3, read_state_v3) =
        (format!("/api/v3/canister/{id}/query"), format!("/api/v3/canister/{id}/read_state"));

    // --- Malformed CBOR (raw HTTP) ----------------------------------------
    for path in [&call_v4, &call_v2, &query_v3, &read_state_v3] {
        let r = net.post(path, b"\xd9\xd9\xf7\xa1\x67content\xff\x00garbage".to_vec()).await.unwrap();
        assert_raw(&format!("malformed CBOR to {path}"), &r, 400, &["malformed"]);
        let r = net.post(path, b"not cbor at all".to_vec()).await.unwrap();
        assert_raw(&format!("text to {path}"), &r, 400, &["malformed"]);
        let r = net.post(path, Vec::new()).await.unwrap();
        assert_raw(&format!("empty body to {path}"), &r, 400, &["malformed"]);
        // Well-formed CBOR that is not an envelope: a tagged empty map.
        let r = net.post(path, b"\xd9\xd9\xf7\xa0".to_vec()).await.unwrap();
        assert_raw(&format!("empty map to {path}"), &r, 400, &["content"]);
    }
    // A real signed envelope, cut short.
    let signed = inc().sign().unwrap();
    let truncated = signed.signed_update[..signed.signed_update.len() - 9].to_vec();
    let r = net.post(&call_v4, truncated).await.unwrap();
    assert_raw("truncated envelope", &r, 400, &["malformed"]);

    // --- Wrong request type for the endpoint (agent-signed envelopes, raw HTTP) ---
    let query = agent.query(&id, "get").with_arg(Encode!().unwrap()).sign().unwrap();
    let r = net.post(&call_v4, query.signed_query.clone()).await.unwrap();
    assert_raw("query to call", &r, 400, &["request_type", "\"call\"", "\"query\""]);
    let r = net.post(&call_v2, query.signed_query).await.unwrap();
    assert_raw("query to v2 call", &r, 400, &["request_type", "\"call\"", "\"query\""]);
    let r = net.post(&query_v3, signed.signed_update.clone()).await.unwrap();
    assert_raw("call to query", &r, 400, &["request_type", "\"query\"", "\"call\""]);
    let r = net.post(&read_state_v3, signed.signed_update.clone()).await.unwrap();
    assert_raw("call to read_state", &r, 400, &["request_type", "\"read_state\"", "\"call\""]);
    let status = agent.sign_request_status(id, signed.request_id).unwrap();
    let r = net.post(&call_v4, status.signed_request_status).await.unwrap();
    assert_raw("read_state to call", &r, 400, &["request_type", "\"call\"", "\"read_state\""]);

    // --- Bad signature, mismatched sender, missing signature (ic-agent, custom identities) ---
    let bad_sig = agent_with(&net, BadSignature(key(1))).await;
    let result = bad_sig.update(&id, "inc").with_arg(Encode!().unwrap()).await;
    assert_agent_http("bad signature (call)", result, 400, &["signature"]);
    let result = bad_sig.query(&id, "get").with_arg(Encode!().unwrap()).call_without_verification().await;
    assert_agent_http("bad signature (query)", result, 400, &["signature"]);
    let result = bad_sig.read_state_canister_module_hash(id).await;
    assert_agent_http("bad signature (read_state)", result, 400, &["signature"]);

    let impostor = WrongSender { key: key(2), claimed: agent.get_principal().unwrap() };
    let impostor = agent_with(&net, impostor).await;
    let result = impostor.update(&id, "inc").with_arg(Encode!().unwrap()).await;
    assert_agent_http("sender not matching the key (call)", result, 400, &["sender"]);
    let result = impostor.query(&id, "get").with_arg(Encode!().unwrap()).call_without_verification().await;
    assert_agent_http("sender not matching the key (query)", result, 400, &["sender"]);
    // The impostor cannot act as the canister's controller either.
    let stop = mgmt::canister_call(&impostor, "stop_canister", id).await;
    assert_agent_http("impostor stop_canister", stop, 400, &["sender"]);

    let unsigned = agent_with(&net, Unsigned(agent.get_principal().unwrap())).await;
    let result = unsigned.update(&id, "inc").with_arg(Encode!().unwrap()).await;
    assert_agent_http("unsigned non-anonymous call", result, 400, &["sender_pubkey"]);

    // --- Expiry: expired, too far ahead, and just inside the window (ic-agent) ---
    let past = SystemTime::now() - Duration::from_secs(600);
    let result = inc().expire_at(past).await;
    assert_agent_http("expired call", result, 400, &["expir", "ago"]);
    let result = agent.query(&id, "get").with_arg(Encode!().unwrap()).expire_at(past).await;
    assert_agent_http("expired query", result, 400, &["expir", "ago"]);
    let result = inc().expire_after(Duration::from_secs(3600)).await;
    assert_agent_http("far-future call", result, 400, &["expiry", "ahead"]);
    let result = agent.query(&id, "get").with_arg(Encode!().unwrap()).expire_after(Duration::from_secs(3600)).await;
    assert_agent_http("far-future query", result, 400, &["expiry", "ahead"]);
    // Anonymous queries may carry any expiry (spec §4.4).
    let anonymous = net.agent(None).await.unwrap();
    let reply = anonymous.query(&id, "get").with_arg(Encode!().unwrap()).expire_at(past).await.unwrap();
    assert_eq!(Decode!(&reply, u64).unwrap(), 1);

    // --- Oversize: the ingress payload limit (2 MiB, spec §9) and the body limit ---
    // (Sent to a method the counter does not have, so nothing runs either way.)
    const MAX_PAYLOAD: usize = 2 * 1024 * 1024;
    let method = "no_such_method";
    let result = agent.update(&id, method).with_arg(vec![0u8; MAX_PAYLOAD - method.len() + 1]).await;
    assert_agent_http("payload 1 byte over 2 MiB", result, 413, &["too large", "2097152"]);
    // Exactly at the limit is accepted (and then rejected by the canister).
    let result = agent.update(&id, method).with_arg(vec![0u8; MAX_PAYLOAD - method.len()]).await;
    assert_reject("payload of exactly 2 MiB", result, Rejection::Certified, RejectCode::CanisterError, "IC0536");
    // A body over the HTTP limit (4 MiB) is refused before it is read.
    let huge = agent.update(&id, "inc").with_arg(vec![0u8; 5 * 1024 * 1024]).sign().unwrap();
    let r = net.post(&call_v4, huge.signed_update).await.unwrap();
    assert_raw("5 MiB call body", &r, 413, &["larger than the limit"]);
    let huge = agent.query(&id, "get").with_arg(vec![0u8; 5 * 1024 * 1024]).sign().unwrap();
    let r = net.post(&query_v3, huge.signed_query).await.unwrap();
    assert_raw("5 MiB query body", &r, 413, &["larger than the limit"]);

    // --- Other addressing mistakes ---------------------------------------
    // The URL's effective canister id is not the request's canister.
    let other = mgmt::create_canister(&agent, CYCLES, None).await.unwrap();
    let result = agent.update(&id, "inc").with_effective_canister_id(other).with_arg(Encode!().unwrap()).await;
    assert_agent_http("ECID mismatch", result, 400, &["effective canister id"]);
    let r = net.post("/api/v9/canister/aaaaa-aa/call", b"\xd9\xd9\xf7\xa0".to_vec()).await.unwrap();
    assert_raw("unknown endpoint", &r, 404, &["no endpoint"]);
    let r = net.post("/api/v4/canister/not-a-principal/call", signed.signed_update.clone()).await.unwrap();
    assert_raw("bad principal in the URL", &r, 400, &["not a valid principal"]);

    // --- Unknown canister: 200 with DESTINATION_INVALID / IC0301 ----------
    let nobody = Principal::from_slice(&[0, 0, 0, 0, 0, 0, 0x30, 0x39, 1, 1]);
    let result = agent.update(&nobody, "inc").with_arg(Encode!().unwrap()).await;
    assert_reject("unknown canister call", result, Rejection::Uncertified, RejectCode::DestinationInvalid, "IC0301");
    let result = agent.query(&nobody, "get").with_arg(Encode!().unwrap()).await;
    assert_reject("unknown canister query", result, Rejection::Uncertified, RejectCode::DestinationInvalid, "IC0301");
    // The same over v2, where the 200 and its CBOR reject are explicit.
    let signed_unknown = agent.update(&nobody, "inc").with_arg(Encode!().unwrap()).sign().unwrap();
    let r = net.post(&format!("/api/v2/canister/{nobody}/call"), signed_unknown.signed_update).await.unwrap();
    assert_eq!(r.status, 200, "v2 call to an unknown canister: {}", r.text());
    assert_eq!(r.content_type.as_deref(), Some("application/cbor"));
    let body = cbor_map(&r.body);
    assert_eq!(field(&body, "reject_code"), &ciborium::Value::Integer(3.into()));
    assert_eq!(field(&body, "error_code"), &ciborium::Value::Text("IC0301".into()));
    let message = field(&body, "reject_message").as_text().unwrap();
    assert!(message.contains(&nobody.to_text()) && message.contains("not found"), "{message}");

    // --- Method not exported: IC0536 --------------------------------------
    let result = agent.update(&id, "no_such_method").with_arg(Encode!().unwrap()).await;
    assert_reject("missing method call", result, Rejection::Certified, RejectCode::CanisterError, "IC0536");
    let result = agent.query(&id, "no_such_method").with_arg(Encode!().unwrap()).await;
    assert_reject("missing method query", result, Rejection::Uncertified, RejectCode::CanisterError, "IC0536");

    // --- Stopped canister: IC0508 (v4 non_replicated_rejection, v2 200 reject) ---
    mgmt::canister_call(&agent, "stop_canister", other).await.unwrap();
    mgmt::install_code(&agent, other, InstallMode::Install, cairn_test_canisters::COUNTER, &Encode!().unwrap())
        .await
        .unwrap();
    let result = agent.update(&other, "inc").with_arg(Encode!().unwrap()).await;
    assert_reject("stopped canister call", result, Rejection::Uncertified, RejectCode::CanisterError, "IC0508");
    let result = agent.query(&other, "get").with_arg(Encode!().unwrap()).await;
    assert_reject("stopped canister query", result, Rejection::Uncertified, RejectCode::CanisterError, "IC0508");
    let signed_stopped = agent.update(&other, "inc").with_arg(Encode!().unwrap()).sign().unwrap();
    let r = net.post(&format!("/api/v2/canister/{other}/call"), signed_stopped.signed_update).await.unwrap();
    assert_eq!(r.status, 200, "v2 call to a stopped canister: {}", r.text());
    let body = cbor_map(&r.body);
    assert_eq!(field(&body, "reject_code"), &ciborium::Value::Integer(5.into()));
    assert_eq!(field(&body, "error_code"), &ciborium::Value::Text("IC0508".into()));

    // --- Out of cycles (frozen): SYS_TRANSIENT, IC0207 ---------------------
    mgmt::canister_call(&agent, "start_canister", other).await.unwrap();
    let frozen =
        CanisterSettings { freezing_threshold: Some(Nat::from(1_000_000_000_000_000u64)), ..Default::default() };
    mgmt::update_settings(&agent, other, frozen).await.unwrap();
    let result = agent.update(&other, "inc").with_arg(Encode!().unwrap()).await;
    assert_reject("frozen canister call", result, Rejection::Uncertified, RejectCode::SysTransient, "IC0207");
    let result = agent.query(&other, "get").with_arg(Encode!().unwrap()).await;
    assert_reject("frozen canister query", result, Rejection::Uncertified, RejectCode::SysTransient, "IC0207");

    // --- Nothing above harmed the node or ran anything ---------------------
    assert_eq!(counter_value(&agent, id).await, 1, "a refused call was executed");
    let status = net.get("/api/v2/status").await.unwrap();
    assert_eq!(status.status, 200);
    let status = cbor_map(&status.body);
    assert_eq!(field(&status, "replica_health_status"), &ciborium::Value::Text("healthy".into()));
    // Good calls work (every endpoint family), and a replayed request runs once.
    let good = inc().sign().unwrap();
    let first = match agent.update_signed(id, good.signed_update.clone()).await.unwrap() {
        CallResponse::Response(reply) => reply,
        CallResponse::Poll(rid) => panic!("no certified reply for {rid}"),
    };
    assert_eq!(Decode!(&first, u64).unwrap(), 2);
    match agent.update_signed(id, good.signed_update.clone()).await.unwrap() {
        CallResponse::Response(reply) => assert_eq!(reply, first, "a replay got a different reply"),
        CallResponse::Poll(rid) => panic!("no certified reply for the replay of {rid}"),
    }
    let r = net.post(&call_v2, good.signed_update).await.unwrap();
    assert_eq!(r.status, 202, "a v2 replay of a known request: {}", r.text());
    assert_eq!(counter_value(&agent, id).await, 2, "a replayed request was executed twice");
    assert_eq!(Decode!(&inc().await.unwrap(), u64).unwrap(), 3);
    assert_eq!(counter_value(&agent, id).await, 3);
}
