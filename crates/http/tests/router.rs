//! The router end to end against a scripted node with a real certified state.

mod common;

use axum::http::StatusCode;
use cairn_crypto::certificate::{Certificate, Scope, verify_certificate};
use cairn_crypto::hash_tree::LookupResult;
use cairn_crypto::query_sig::{QueryResponse, verify_query_response};
use cairn_http::{HttpConfig, SubmitError};
use cairn_types::messages::{IngressState, IngressStatus, WasmResult};
use cairn_types::{CanisterId, ErrorCode, MessageId, Principal, Time, UserError};
use ciborium::Value as Cbor;
use common::*;
use std::sync::atomic::Ordering;

fn candid_canister_arg(id: CanisterId) -> Vec<u8> {
    #[derive(candid::CandidType)]
    struct Arg {
        canister_id: candid::Principal,
    }
    candid::encode_one(Arg { canister_id: candid::Principal::from_slice(id.as_slice()) }).unwrap()
}

fn call_url(version: u8, canister: CanisterId) -> String {
    format!("/api/v{version}/canister/{canister}/call")
}

fn certificate_of(reply: &Reply, node: &FakeNode, scope: Scope) -> Certificate {
    let cert = Certificate::from_cbor(&bytes_field(&reply.cbor(), "certificate")).unwrap();
    verify_certificate(&cert, &node.root_key_der(), scope, None).unwrap();
    assert!(matches!(cert.lookup(&[b"time"]), LookupResult::Found(_)), "every certificate reveals /time");
    cert
}

fn lookup<'a>(cert: &'a Certificate, path: &[&[u8]]) -> LookupResult<'a> {
    cert.lookup(path)
}

// ---------------------------------------------------------------- status

#[tokio::test]
async fn status_reports_root_key_health_and_height() {
    let node = FakeNode::new();
    let app = app(&node);
    let reply = send(&app, "GET", "/api/v2/status", vec![]).await;
    assert_eq!(reply.status, StatusCode::OK);
    let status = reply.cbor();
    assert_eq!(bytes_field(&status, "root_key"), node.root_key_der());
    assert_eq!(bytes_field(&status, "root_key").len(), 133);
    assert_eq!(text_field(&status, "replica_health_status"), "healthy");
    assert_eq!(text_field(&status, "impl_version"), "cairn-test");
    assert_eq!(text_field(&status, "ic_api_version"), cairn_http::IC_API_VERSION);
    assert_eq!(nat_field(&status, "certified_height"), 1);

    node.starting.store(true, Ordering::SeqCst);
    let status = send(&app, "GET", "/api/v2/status", vec![]).await.cbor();
    assert_eq!(text_field(&status, "replica_health_status"), "starting");
    assert!(field(&status, "certified_height").is_none());
    // Everything else waits for a certified state.
    let (body, _) = anonymous("call", canister(), "inc", b"");
    let reply = post(&app, &call_url(4, canister()), body).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(reply.text().contains("starting"), "{}", reply.text());
}

// ---------------------------------------------------------------- calls

#[tokio::test]
async fn v2_call_is_accepted_and_submitted() {
    let node = FakeNode::new();
    let app = app(&node);
    let (body, rid) = anonymous("call", canister(), "inc", b"DIDL\x00\x00");
    let reply = post(&app, &call_url(2, canister()), body).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert!(reply.body.is_empty());
    let submitted = node.submitted.lock().unwrap();
    assert_eq!(submitted.len(), 1);
    let ingress = &submitted[0];
    assert_eq!(ingress.message_id, rid);
    assert_eq!(ingress.source, Principal::ANONYMOUS);
    assert_eq!(ingress.receiver, canister());
    assert_eq!(ingress.effective_canister_id, canister());
    assert_eq!(ingress.method_name, "inc");
    assert_eq!(ingress.method_payload, b"DIDL\x00\x00");
    assert_eq!(ingress.expiry_time, Time::from_nanos(NOW + 180_000_000_000));
    assert_eq!(node.checked.lock().unwrap().len(), 1, "admission ran before submission");
}

#[tokio::test]
async fn v2_call_refused_by_admission_is_a_200_reject() {
    let node = FakeNode::new();
    *node.check_result.lock().unwrap() =
        Err(UserError::new(ErrorCode::CanisterRejectedMessage, "Canister rejected the message"));
    let app = app(&node);
    let (body, _) = anonymous("call", canister(), "inc", b"");
    let reply = post(&app, &call_url(2, canister()), body).await;
    assert_eq!(reply.status, StatusCode::OK);
    let r = reply.cbor();
    assert_eq!(nat_field(&r, "reject_code"), 4);
    assert_eq!(text_field(&r, "reject_message"), "Canister rejected the message");
    assert_eq!(text_field(&r, "error_code"), "IC0406");
    assert!(node.submitted.lock().unwrap().is_empty());
}

#[tokio::test]
async fn sync_call_answers_with_a_certificate() {
    for version in [3, 4] {
        let node = FakeNode::new();
        *node.on_submit.lock().unwrap() = OnSubmit::Complete(Ok(WasmResult::Reply(b"DIDL\x00\x01\x7d\x05".to_vec())));
        let app = app(&node);
        let (body, rid) = anonymous("call", canister(), "inc", b"DIDL\x00\x00");
        let reply = post(&app, &call_url(version, canister()), body).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let r = reply.cbor();
        assert_eq!(text_field(&r, "status"), "replied");
        let cert = certificate_of(&reply, &node, Scope::Canister(canister()));
        assert_eq!(lookup(&cert, &[b"request_status", &rid.0, b"status"]), LookupResult::Found(b"replied"));
        assert_eq!(lookup(&cert, &[b"request_status", &rid.0, b"reply"]), LookupResult::Found(b"DIDL\x00\x01\x7d\x05"));
    }
}

#[tokio::test]
async fn sync_call_certifies_system_rejects_too() {
    let node = FakeNode::new();
    *node.on_submit.lock().unwrap() =
        OnSubmit::Complete(Err(UserError::new(ErrorCode::CanisterCalledTrap, "Canister trapped: boom")));
    let app = app(&node);
    let (body, rid) = anonymous("call", canister(), "boom", b"");
    let reply = post(&app, &call_url(4, canister()), body).await;
    assert_eq!(reply.status, StatusCode::OK);
    let cert = certificate_of(&reply, &node, Scope::Canister(canister()));
    assert_eq!(lookup(&cert, &[b"request_status", &rid.0, b"status"]), LookupResult::Found(b"rejected"));
    assert_eq!(lookup(&cert, &[b"request_status", &rid.0, b"reject_code"]), LookupResult::Found(&[5]));
    assert_eq!(lookup(&cert, &[b"request_status", &rid.0, b"error_code"]), LookupResult::Found(b"IC0503"));
}

#[tokio::test]
async fn sync_call_times_out_with_202() {
    let node = FakeNode::new();
    let app = app_with(
        &node,
        HttpConfig { sync_call_timeout: std::time::Duration::from_millis(150), ..HttpConfig::default() },
    );
    let (body, _) = anonymous("call", canister(), "slow", b"");
    let started = std::time::Instant::now();
    let reply = post(&app, &call_url(4, canister()), body).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert!(reply.body.is_empty());
    assert!(started.elapsed() >= std::time::Duration::from_millis(150));
    // Unrelated certifications do not end the wait early with a wrong answer.
    let node2 = FakeNode::new();
    let app2 = app_with(
        &node2,
        HttpConfig { sync_call_timeout: std::time::Duration::from_millis(300), ..HttpConfig::default() },
    );
    let n = node2.clone();
    let ticker = tokio::spawn(async move {
        for _ in 0..5 {
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
            n.certify();
        }
    });
    let (body, _) = anonymous("call", canister(), "slow", b"");
    assert_eq!(post(&app2, &call_url(4, canister()), body).await.status, StatusCode::ACCEPTED);
    ticker.await.unwrap();
}

#[tokio::test]
async fn sync_call_refused_before_consensus() {
    let node = FakeNode::new();
    *node.check_result.lock().unwrap() = Err(UserError::new(ErrorCode::CanisterStopped, "Canister x is stopped"));
    let app = app(&node);
    let (body, _) = anonymous("call", canister(), "inc", b"");
    let reply = post(&app, &call_url(4, canister()), body).await;
    assert_eq!(reply.status, StatusCode::OK);
    let r = reply.cbor();
    assert_eq!(text_field(&r, "status"), "non_replicated_rejection");
    assert_eq!(nat_field(&r, "reject_code"), 5);
    assert_eq!(text_field(&r, "error_code"), "IC0508");
    assert_eq!(text_field(&r, "reject_message"), "Canister x is stopped");
}

#[tokio::test]
async fn known_request_is_answered_from_its_status() {
    let node = FakeNode::new();
    let app = app(&node);
    let (body, rid) = anonymous("call", canister(), "inc", b"");
    node.set_status(
        rid,
        IngressStatus {
            receiver: canister(),
            effective_canister_id: canister(),
            user: Principal::ANONYMOUS,
            time: Time::from_nanos(NOW),
            state: IngressState::Completed(WasmResult::Reply(b"old".to_vec())),
            expiry_time: Time::from_nanos(NOW + 180_000_000_000),
        },
    );
    let reply = post(&app, &call_url(4, canister()), body.clone()).await;
    assert_eq!(reply.status, StatusCode::OK);
    let cert = certificate_of(&reply, &node, Scope::Canister(canister()));
    assert_eq!(lookup(&cert, &[b"request_status", &rid.0, b"reply"]), LookupResult::Found(b"old"));
    // v2: accepted again, without re-submission.
    assert_eq!(post(&app, &call_url(2, canister()), body).await.status, StatusCode::ACCEPTED);
    assert!(node.submitted.lock().unwrap().is_empty());
    assert!(node.checked.lock().unwrap().is_empty());
}

#[tokio::test]
async fn pool_full_is_429_and_shutdown_503() {
    let node = FakeNode::new();
    let app = app(&node);
    *node.on_submit.lock().unwrap() = OnSubmit::Refuse(SubmitError::PoolFull);
    let (body, _) = anonymous("call", canister(), "inc", b"");
    let reply = post(&app, &call_url(4, canister()), body).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(reply.text().contains("ingress pool is full"));
    assert!(reply.content_type.unwrap().starts_with("text/plain"));
    *node.on_submit.lock().unwrap() = OnSubmit::Refuse(SubmitError::ShuttingDown);
    let (body, _) = anonymous("call", canister(), "inc2", b"");
    assert_eq!(post(&app, &call_url(2, canister()), body).await.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn effective_canister_id_rules() {
    let node = FakeNode::new();
    let app = app(&node);
    // canister_id != ECID.
    let (body, _) = anonymous("call", canister(), "inc", b"");
    let reply = post(&app, &call_url(4, CanisterId::from_u64(8)), body).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.text().contains("does not match the effective canister id"), "{}", reply.text());
    // ECID outside every range (a self-authenticating id is never a canister).
    let outside = CanisterId(Principal::self_authenticating(b"somebody"));
    let (body, _) = anonymous("call", outside, "inc", b"");
    let reply = post(&app, &call_url(4, outside), body).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(reply.text().contains("not in the canister ranges"), "{}", reply.text());
    // Garbage in the URL.
    let (body, _) = anonymous("call", canister(), "inc", b"");
    let reply = post(&app, "/api/v4/canister/not-a-principal/call", body).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.text().contains("not a valid principal"), "{}", reply.text());
    // Management canister: creation at any ECID in range; others by argument.
    let (body, _) =
        anonymous("call", CanisterId::MANAGEMENT, "provisional_create_canister_with_cycles", b"DIDL\x00\x00");
    assert_eq!(post(&app, &call_url(2, CanisterId::from_u64(99)), body).await.status, StatusCode::ACCEPTED);
    let arg = candid_canister_arg(CanisterId::from_u64(99));
    let (body, _) = anonymous("call", CanisterId::MANAGEMENT, "stop_canister", &arg);
    let reply = post(&app, &call_url(2, canister()), body).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.text().contains("is about canister"), "{}", reply.text());
    let (body, _) = anonymous("call", CanisterId::MANAGEMENT, "stop_canister", &arg);
    assert_eq!(post(&app, &call_url(2, CanisterId::from_u64(99)), body).await.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn subnet_call_creates_canisters_only() {
    let node = FakeNode::new();
    *node.on_submit.lock().unwrap() = OnSubmit::Complete(Ok(WasmResult::Reply(b"created".to_vec())));
    let app = app(&node);
    let sid = node.subnet_id();
    let url = format!("/api/v4/subnet/{sid}/call");
    let (body, rid) = anonymous("call", CanisterId::MANAGEMENT, "create_canister", b"DIDL\x00\x00");
    let reply = post(&app, &url, body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let cert = certificate_of(&reply, &node, Scope::Subnet(sid));
    assert_eq!(lookup(&cert, &[b"request_status", &rid.0, b"reply"]), LookupResult::Found(b"created"));
    assert_eq!(node.submitted.lock().unwrap()[0].effective_canister_id.get(), sid.get());
    // The ESID can read the status back through the subnet endpoint.
    let (body, _) = envelope(
        read_state_content(
            Principal::ANONYMOUS,
            vec![vec![b"request_status".to_vec(), rid.0.to_vec()]],
            NOW + 60_000_000_000,
        ),
        &Signer::Anonymous,
    );
    assert_eq!(post(&app, &format!("/api/v3/subnet/{sid}/read_state"), body.clone()).await.status, StatusCode::OK);
    // ...but not through a canister endpoint.
    assert_eq!(
        post(&app, &format!("/api/v3/canister/{}/read_state", canister()), body).await.status,
        StatusCode::FORBIDDEN
    );

    let (body, _) = anonymous("call", CanisterId::MANAGEMENT, "install_code", b"");
    assert_eq!(post(&app, &url, body).await.status, StatusCode::BAD_REQUEST);
    let other = Principal::self_authenticating(b"other subnet");
    let (body, _) = anonymous("call", CanisterId::MANAGEMENT, "create_canister", b"DIDL\x00\x00");
    assert_eq!(post(&app, &format!("/api/v4/subnet/{other}/call"), body).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn size_limits() {
    let node = FakeNode::new();
    let app = app_with(
        &node,
        HttpConfig { max_request_body_bytes: 4096, max_ingress_payload_bytes: 1000, ..HttpConfig::default() },
    );
    let (body, _) = anonymous("call", canister(), "m", &[0; 5000]);
    let reply = post(&app, &call_url(4, canister()), body).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(reply.text().contains("larger than the limit of 4096 bytes"), "{}", reply.text());
    let (body, rid) = anonymous("call", canister(), "m", &[0; 1500]);
    let reply = post(&app, &call_url(4, canister()), body).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(reply.text().contains(&format!("Request {rid} is too large")), "{}", reply.text());
    // A query with the same argument is fine: only ingress has the 2 MiB rule.
    let (body, _) = anonymous("query", canister(), "m", &[0; 1500]);
    assert_eq!(post(&app, &format!("/api/v3/canister/{}/query", canister()), body).await.status, StatusCode::OK);
}

// ---------------------------------------------------------------- malformed

#[tokio::test]
async fn malformed_requests_say_what_is_wrong() {
    let node = FakeNode::new();
    let app = app(&node);
    let url = call_url(4, canister());
    let reply = post(&app, &url, b"\xa1\x67content".to_vec()).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.text().starts_with("Malformed request: the request body is not valid CBOR"), "{}", reply.text());
    let mut content = call_content("call", Principal::ANONYMOUS, canister(), "m", b"", NOW + 1);
    content.retain(|(k, _)| *k != "method_name");
    let (body, _) = envelope(content, &Signer::Anonymous);
    let reply = post(&app, &url, body).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.text().contains("the request has no content.method_name field"), "{}", reply.text());
    // A query sent to /call.
    let (body, _) = anonymous("query", canister(), "m", b"");
    let reply = post(&app, &url, body).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.text().contains("takes requests with request_type \"call\""), "{}", reply.text());
    // Unknown route, wrong method.
    let reply = send(&app, "GET", "/api/v5/nothing", vec![]).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(reply.text().contains("There is no endpoint GET /api/v5/nothing"));
    assert_eq!(send(&app, "GET", &url, vec![]).await.status, StatusCode::METHOD_NOT_ALLOWED);
}

// ---------------------------------------------------------------- expiry

#[tokio::test]
async fn expiry_rules() {
    let node = FakeNode::new();
    let app = app(&node);
    let url = call_url(2, canister());
    let id = Identity::new(9);
    let signed = |kind: &str, expiry: u64| {
        envelope(call_content(kind, id.principal(), canister(), "m", b"", expiry), &Signer::Key(id.clone())).0
    };
    let reply = post(&app, &url, signed("call", NOW - 1)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.text().contains("expired"), "{}", reply.text());
    let reply = post(&app, &url, signed("call", NOW + 331_000_000_000)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.text().contains("ahead"), "{}", reply.text());
    assert_eq!(post(&app, &url, signed("call", NOW + 329_000_000_000)).await.status, StatusCode::ACCEPTED);
    // Anonymous calls are checked too.
    let (body, _) = envelope(call_content("call", Principal::ANONYMOUS, canister(), "m", b"", 0), &Signer::Anonymous);
    assert_eq!(post(&app, &url, body).await.status, StatusCode::BAD_REQUEST);
    // Anonymous queries and read_state may carry any expiry; signed ones may not.
    let query_url = format!("/api/v2/canister/{}/query", canister());
    let (body, _) = envelope(call_content("query", Principal::ANONYMOUS, canister(), "m", b"", 0), &Signer::Anonymous);
    assert_eq!(post(&app, &query_url, body).await.status, StatusCode::OK);
    assert_eq!(post(&app, &query_url, signed("query", 0)).await.status, StatusCode::BAD_REQUEST);
    let (body, _) =
        envelope(read_state_content(Principal::ANONYMOUS, vec![vec![b"time".to_vec()]], u64::MAX), &Signer::Anonymous);
    assert_eq!(post(&app, &format!("/api/v2/canister/{}/read_state", canister()), body).await.status, StatusCode::OK);
}

// ---------------------------------------------------------------- signatures

#[tokio::test]
async fn signatures_and_delegations() {
    let node = FakeNode::new();
    let app = app(&node);
    let url = call_url(2, canister());
    let query_url = format!("/api/v3/canister/{}/query", canister());
    let id = Identity::new(3);
    let session = Identity::new(4);
    let content = |kind: &str, c: CanisterId| call_content(kind, id.principal(), c, "m", b"", NOW + 60_000_000_000);

    let (body, _) = envelope(content("call", canister()), &Signer::Key(id.clone()));
    assert_eq!(post(&app, &url, body).await.status, StatusCode::ACCEPTED);
    assert_eq!(node.submitted.lock().unwrap().last().unwrap().source, id.principal());

    // A signature over another request id.
    let (mut body, _) = envelope(content("call", canister()), &Signer::Key(id.clone()));
    let n = body.len();
    body[n - 1] ^= 1; // last byte of sender_sig
    let reply = post(&app, &url, body).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.text().contains("Failed to authenticate request"), "{}", reply.text());

    // Claimed sender that is not the key's principal.
    let other = Identity::new(5);
    let (body, _) = envelope(content("call", canister()), &Signer::Key(other));
    let reply = post(&app, &url, body).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.text().contains("does not match sender_pubkey"), "{}", reply.text());

    // Delegation with targets: the canister must be among them.
    let scoped = |targets: Vec<Principal>, permissions: Option<&str>| Signer::Delegated {
        identity: id.clone(),
        session: session.clone(),
        targets: Some(targets),
        permissions: permissions.map(str::to_string),
    };
    let (body, _) = envelope(content("call", canister()), &scoped(vec![canister().get()], None));
    assert_eq!(post(&app, &url, body).await.status, StatusCode::ACCEPTED);
    let (body, _) = envelope(content("call", canister()), &scoped(vec![CanisterId::from_u64(1).get()], None));
    let reply = post(&app, &url, body).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(reply.text().contains("targets do not include"), "{}", reply.text());

    // A queries-only delegation: queries pass, calls are forbidden.
    let (body, _) = envelope(content("call", canister()), &scoped(vec![canister().get()], Some("queries")));
    let reply = post(&app, &url, body).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(reply.text().contains("allows only queries"), "{}", reply.text());
    let (body, _) = envelope(content("query", canister()), &scoped(vec![canister().get()], Some("queries")));
    assert_eq!(post(&app, &query_url, body).await.status, StatusCode::OK);
    assert_eq!(node.queries.lock().unwrap().last().unwrap().source, id.principal());

    // Anonymous sender with a signature.
    let (body, _) =
        envelope(call_content("call", Principal::ANONYMOUS, canister(), "m", b"", NOW + 1), &Signer::Key(id));
    let reply = post(&app, &url, body).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.text().contains("anonymous requests must not carry"), "{}", reply.text());
}

// ---------------------------------------------------------------- queries

#[tokio::test]
async fn query_replies_are_signed_by_the_node() {
    let node = FakeNode::new();
    let app = app(&node);
    for url in [format!("/api/v2/canister/{}/query", canister()), format!("/api/v3/canister/{}/query", canister())] {
        let (body, rid) = anonymous("query", canister(), "get", b"DIDL\x00\x00");
        let reply = post(&app, &url, body).await;
        assert_eq!(reply.status, StatusCode::OK);
        let r = reply.cbor();
        assert_eq!(text_field(&r, "status"), "replied");
        let arg = bytes_field(field(&r, "reply").unwrap(), "arg");
        assert_eq!(arg, b"DIDL\x00\x00");
        let Some(Cbor::Array(sigs)) = field(&r, "signatures") else { panic!("no signatures") };
        assert_eq!(sigs.len(), 1);
        let ts = nat_field(&sigs[0], "timestamp");
        assert_eq!(ts, NOW);
        assert_eq!(bytes_field(&sigs[0], "identity"), node.node_id().as_slice());
        let sig = bytes_field(&sigs[0], "signature");
        verify_query_response(&node.node_key_der(), &QueryResponse::Replied { arg: &arg }, ts, &rid, &sig).unwrap();
    }
    let q = node.queries.lock().unwrap().last().unwrap().clone();
    assert_eq!((q.receiver, q.method_name.as_str(), q.source), (canister(), "get", Principal::ANONYMOUS));
}

#[tokio::test]
async fn query_rejections_are_signed_too() {
    let node = FakeNode::new();
    let app = app(&node);
    let url = format!("/api/v3/canister/{}/query", canister());
    for (result, code, error_code, message) in [
        (Err(UserError::new(ErrorCode::CanisterCalledTrap, "trapped: x")), 5, "IC0503", "trapped: x"),
        (Ok(WasmResult::Reject("no".into())), 4, "IC0406", "no"),
    ] {
        *node.query_result.lock().unwrap() = result;
        let (body, rid) = anonymous("query", canister(), "get", b"");
        let reply = post(&app, &url, body).await;
        assert_eq!(reply.status, StatusCode::OK);
        let r = reply.cbor();
        assert_eq!(text_field(&r, "status"), "rejected");
        assert_eq!(nat_field(&r, "reject_code"), code);
        assert_eq!(text_field(&r, "error_code"), error_code);
        assert_eq!(text_field(&r, "reject_message"), message);
        let Some(Cbor::Array(sigs)) = field(&r, "signatures") else { panic!("no signatures") };
        let response =
            QueryResponse::Rejected { reject_code: code, reject_message: message, error_code: Some(error_code) };
        let sig = bytes_field(&sigs[0], "signature");
        verify_query_response(&node.node_key_der(), &response, nat_field(&sigs[0], "timestamp"), &rid, &sig).unwrap();
    }
}

#[tokio::test]
async fn subnet_query_is_list_canisters_only() {
    let node = FakeNode::new();
    let app = app(&node);
    let url = format!("/api/v3/subnet/{}/query", node.subnet_id());
    let (body, _) = anonymous("query", CanisterId::MANAGEMENT, "list_canisters", b"DIDL\x00\x00");
    assert_eq!(post(&app, &url, body).await.status, StatusCode::OK);
    let (body, _) = anonymous("query", canister(), "get", b"");
    assert_eq!(post(&app, &url, body).await.status, StatusCode::BAD_REQUEST);
    // list_canisters through any canister endpoint of the subnet, too.
    let (body, _) = anonymous("query", CanisterId::MANAGEMENT, "list_canisters", b"DIDL\x00\x00");
    assert_eq!(
        post(&app, &format!("/api/v3/canister/{}/query", CanisterId::from_u64(3)), body).await.status,
        StatusCode::OK
    );
}

// ---------------------------------------------------------------- read_state

async fn read(app: &axum::Router, url: &str, signer: &Signer, paths: Vec<Vec<Vec<u8>>>) -> Reply {
    let (body, _) = envelope(read_state_content(signer.principal(), paths, NOW + 60_000_000_000), signer);
    post(app, url, body).await
}

fn p(labels: &[&[u8]]) -> Vec<Vec<u8>> {
    labels.iter().map(|l| l.to_vec()).collect()
}

#[tokio::test]
async fn read_state_certificates_and_subnet_info() {
    let node = FakeNode::new();
    let app = app(&node);
    let url = format!("/api/v3/canister/{}/read_state", canister());
    let reply = read(&app, &url, &Signer::Anonymous, vec![p(&[b"subnet"])]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let cert = certificate_of(&reply, &node, Scope::Canister(canister()));
    let sid = node.subnet_id();
    let nid = node.node_id();
    let key = node.node_key_der();
    assert_eq!(
        lookup(&cert, &[b"subnet", sid.as_slice(), b"node", nid.as_slice(), b"public_key"]),
        LookupResult::Found(&key)
    );
    assert!(matches!(lookup(&cert, &[b"subnet", sid.as_slice(), b"canister_ranges"]), LookupResult::Found(_)));
    // Paths: time alone, and no paths at all (time is always included).
    assert_eq!(read(&app, &url, &Signer::Anonymous, vec![p(&[b"time"])]).await.status, StatusCode::OK);
    let reply = read(&app, &url, &Signer::Anonymous, vec![]).await;
    certificate_of(&reply, &node, Scope::Canister(canister()));
    // Unknown request ids are readable (absence proof).
    let reply = read(&app, &url, &Signer::Anonymous, vec![p(&[b"request_status", &[9; 32]])]).await;
    let cert = certificate_of(&reply, &node, Scope::Canister(canister()));
    assert_eq!(lookup(&cert, &[b"request_status", &[9; 32], b"status"]), LookupResult::Absent);
    // The canister's public information.
    let reply =
        read(&app, &url, &Signer::Anonymous, vec![p(&[b"canister", canister().as_slice(), b"module_hash"])]).await;
    let cert = certificate_of(&reply, &node, Scope::Canister(canister()));
    assert_eq!(lookup(&cert, &[b"canister", canister().as_slice(), b"module_hash"]), LookupResult::Found(&[5; 32]));
    // Sharded ranges through the subnet endpoint.
    let subnet_url = format!("/api/v3/subnet/{sid}/read_state");
    let reply = read(&app, &subnet_url, &Signer::Anonymous, vec![p(&[b"canister_ranges", sid.as_slice()])]).await;
    assert_eq!(reply.status, StatusCode::OK);
    certificate_of(&reply, &node, Scope::Subnet(sid));
    let reply = read(&app, &subnet_url, &Signer::Anonymous, vec![p(&[b"subnet", sid.as_slice(), b"metrics"])]).await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn read_state_permissions() {
    let node = FakeNode::new();
    let app = app(&node);
    let url = format!("/api/v3/canister/{}/read_state", canister());
    let c = canister();
    let forbidden = |r: &Reply| {
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
        assert!(r.text().contains("is not readable"), "{}", r.text());
    };
    // Another canister's information through this canister's endpoint.
    let other = CanisterId::from_u64(8);
    forbidden(&read(&app, &url, &Signer::Anonymous, vec![p(&[b"canister", other.as_slice(), b"controllers"])]).await);
    // certified_data, whole subtrees and unknown paths.
    forbidden(&read(&app, &url, &Signer::Anonymous, vec![p(&[b"canister", c.as_slice(), b"certified_data"])]).await);
    forbidden(&read(&app, &url, &Signer::Anonymous, vec![p(&[b"canister", c.as_slice()])]).await);
    forbidden(&read(&app, &url, &Signer::Anonymous, vec![vec![]]).await);
    forbidden(&read(&app, &url, &Signer::Anonymous, vec![p(&[b"request_status"])]).await);
    forbidden(&read(&app, &url, &Signer::Anonymous, vec![p(&[b"nonsense"])]).await);
    // /canister_ranges only through subnet endpoints.
    let sid = node.subnet_id();
    forbidden(&read(&app, &url, &Signer::Anonymous, vec![p(&[b"canister_ranges", sid.as_slice()])]).await);
    // Public metadata for everyone, private only for controllers.
    let public = p(&[b"canister", c.as_slice(), b"metadata", b"candid:service"]);
    let private = p(&[b"canister", c.as_slice(), b"metadata", b"secret"]);
    assert_eq!(read(&app, &url, &Signer::Anonymous, vec![public]).await.status, StatusCode::OK);
    let reply = read(&app, &url, &Signer::Anonymous, vec![private.clone()]).await;
    forbidden(&reply);
    assert!(reply.text().contains("private"), "{}", reply.text());
    let reply = read(&app, &url, &Signer::Key(controller()), vec![private]).await;
    let cert = certificate_of(&reply, &node, Scope::Canister(c));
    assert_eq!(lookup(&cert, &[b"canister", c.as_slice(), b"metadata", b"secret"]), LookupResult::Found(b"hidden"));
    // Absent sections are readable by anyone (absence proofs).
    let absent = p(&[b"canister", c.as_slice(), b"metadata", b"nothing"]);
    assert_eq!(read(&app, &url, &Signer::Anonymous, vec![absent]).await.status, StatusCode::OK);

    // request_status: same sender and same ECID only; one id per request.
    let alice = Identity::new(11);
    let rid = MessageId([3; 32]);
    node.set_status(
        rid,
        IngressStatus {
            receiver: c,
            effective_canister_id: c,
            user: alice.principal(),
            time: Time::from_nanos(NOW),
            state: IngressState::Processing,
            expiry_time: Time::from_nanos(NOW + 60_000_000_000),
        },
    );
    let status_path = p(&[b"request_status", &rid.0, b"status"]);
    let reply = read(&app, &url, &Signer::Key(alice.clone()), vec![status_path.clone()]).await;
    let cert = certificate_of(&reply, &node, Scope::Canister(c));
    assert_eq!(lookup(&cert, &[b"request_status", &rid.0, b"status"]), LookupResult::Found(b"processing"));
    let reply = read(&app, &url, &Signer::Anonymous, vec![status_path.clone()]).await;
    forbidden(&reply);
    assert!(reply.text().contains("was not sent by"), "{}", reply.text());
    let other_url = format!("/api/v3/canister/{other}/read_state");
    let reply = read(&app, &other_url, &Signer::Key(alice.clone()), vec![status_path.clone()]).await;
    forbidden(&reply);
    let two = vec![status_path.clone(), p(&[b"request_status", &[4; 32]])];
    let reply = read(&app, &url, &Signer::Key(alice.clone()), two).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.text().contains("one request only"), "{}", reply.text());
    let reply = read(&app, &url, &Signer::Anonymous, vec![p(&[b"request_status", &[1; 31]])]).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    // Under a delegation that does not cover the callee.
    let delegated = Signer::Delegated {
        identity: alice,
        session: Identity::new(12),
        targets: Some(vec![other.get()]),
        permissions: None,
    };
    forbidden(&read(&app, &url, &delegated, vec![status_path]).await);

    // Legacy ranges of the root subnet are readable at v2 and v3; metrics only for the own subnet.
    let ranges = p(&[b"subnet", sid.as_slice(), b"canister_ranges"]);
    assert_eq!(read(&app, &url, &Signer::Anonymous, vec![ranges]).await.status, StatusCode::OK);
    let foreign = Principal::self_authenticating(b"foreign subnet");
    let foreign_ranges = p(&[b"subnet", foreign.as_slice(), b"canister_ranges"]);
    forbidden(&read(&app, &url, &Signer::Anonymous, vec![foreign_ranges.clone()]).await);
    let v2_url = format!("/api/v2/canister/{c}/read_state");
    assert_eq!(read(&app, &v2_url, &Signer::Anonymous, vec![foreign_ranges]).await.status, StatusCode::OK);
    forbidden(&read(&app, &url, &Signer::Anonymous, vec![p(&[b"subnet", foreign.as_slice(), b"metrics"])]).await);
    // Canister paths are not served through subnet endpoints.
    let subnet_url = format!("/api/v3/subnet/{sid}/read_state");
    forbidden(
        &read(&app, &subnet_url, &Signer::Anonymous, vec![p(&[b"canister", c.as_slice(), b"module_hash"])]).await,
    );
    let two_subnets = vec![p(&[b"canister_ranges", sid.as_slice()]), p(&[b"canister_ranges", foreign.as_slice()])];
    assert_eq!(read(&app, &subnet_url, &Signer::Anonymous, two_subnets).await.status, StatusCode::BAD_REQUEST);
}

// ---------------------------------------------------------------- metrics, CORS

#[tokio::test]
async fn metrics_count_requests_and_include_node_metrics() {
    let node = FakeNode::new();
    let mut metrics = cairn_http::Metrics::new();
    let gauge = prometheus_client::metrics::gauge::Gauge::<i64>::default();
    gauge.set(42);
    metrics.registry_mut().register("cairn_node_answer", "A node metric", gauge);
    let app = cairn_http::router(node.clone(), HttpConfig::default(), metrics);
    send(&app, "GET", "/api/v2/status", vec![]).await;
    let (body, _) = anonymous("query", canister(), "get", b"");
    post(&app, &format!("/api/v3/canister/{}/query", canister()), body).await;
    post(&app, &format!("/api/v3/canister/{}/query", canister()), b"junk".to_vec()).await;
    let reply = send(&app, "GET", "/metrics", vec![]).await;
    assert_eq!(reply.status, StatusCode::OK);
    let text = reply.text();
    assert!(text.contains("cairn_node_answer 42"), "{text}");
    assert!(text.contains(r#"cairn_http_requests_total{endpoint="/api/v2/status",status_class="2xx"} 1"#), "{text}");
    assert!(
        text.contains(r#"cairn_http_requests_total{endpoint="/api/v3/canister/{ecid}/query",status_class="2xx"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"cairn_http_requests_total{endpoint="/api/v3/canister/{ecid}/query",status_class="4xx"} 1"#),
        "{text}"
    );
    assert!(text.contains("cairn_http_request_duration_seconds_bucket"), "{text}");
    assert!(text.contains("cairn_http_requests_in_flight"), "{text}");
}

#[tokio::test]
async fn cors_preflight_and_headers() {
    let node = FakeNode::new();
    let app = app(&node);
    let reply = send(&app, "OPTIONS", &call_url(4, canister()), vec![]).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(reply.headers.get("access-control-allow-origin").unwrap(), "*");
    assert!(reply.headers.get("access-control-allow-methods").unwrap().to_str().unwrap().contains("POST"));
    let reply = send(&app, "GET", "/api/v2/status", vec![]).await;
    assert_eq!(reply.headers.get("access-control-allow-origin").unwrap(), "*");
}

// ---------------------------------------------------------------- client shapes

/// ic-py 1.0.1: no self-describe tag, `sender_pubkey`/`sender_sig` sent as
/// CBOR null for the anonymous identity, expiry now + 300 s, management
/// calls without a `canister_id` argument addressed to `aaaaa-aa`, and
/// polling through `/api/v2/canister/aaaaa-aa/read_state`.
#[tokio::test]
async fn ic_py_shaped_requests() {
    let node = FakeNode::new();
    *node.on_submit.lock().unwrap() = OnSubmit::Complete(Ok(WasmResult::Reply(b"DIDL\x00\x00".to_vec())));
    let app = app(&node);
    let content = map(call_content(
        "call",
        Principal::ANONYMOUS,
        CanisterId::MANAGEMENT,
        "provisional_create_canister_with_cycles",
        b"DIDL\x00\x00",
        NOW + 300_000_000_000,
    ));
    let rid = cairn_crypto::request_id::request_id_of_cbor(&content).unwrap();
    let envelope = map(vec![("content", content), ("sender_pubkey", Cbor::Null), ("sender_sig", Cbor::Null)]);
    let mut body = Vec::new();
    ciborium::ser::into_writer(&envelope, &mut body).unwrap();
    assert_ne!(&body[..3], &[0xd9, 0xd9, 0xf7]);
    let reply = post(&app, "/api/v2/canister/aaaaa-aa/call", body).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    assert_eq!(node.submitted.lock().unwrap()[0].effective_canister_id, CanisterId::MANAGEMENT);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let content = map(read_state_content(
        Principal::ANONYMOUS,
        vec![vec![b"request_status".to_vec(), rid.0.to_vec()]],
        NOW + 300_000_000_000,
    ));
    let envelope = map(vec![("content", content), ("sender_pubkey", Cbor::Null), ("sender_sig", Cbor::Null)]);
    let mut body = Vec::new();
    ciborium::ser::into_writer(&envelope, &mut body).unwrap();
    let reply = post(&app, "/api/v2/canister/aaaaa-aa/read_state", body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let cert = certificate_of(&reply, &node, Scope::Unchecked);
    assert_eq!(lookup(&cert, &[b"request_status", &rid.0, b"status"]), LookupResult::Found(b"replied"));
}
