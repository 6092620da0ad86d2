//! Property tests: hostile bodies never panic the decoder or the handlers.
//!
//! * `decoder_survives_100k_hostile_bodies`: 100 000 inputs (random bytes,
//!   byte-level mutations of valid envelopes, random CBOR trees shaped like
//!   envelopes, and envelopes whose fields are mostly well-typed) through
//!   [`decode_envelope`]; a decoded envelope must also re-decode to the same
//!   request id.
//! * `router_survives_hostile_bodies`: 10 000 such bodies through the full
//!   router (call, query, read_state endpoints): never a 5xx, never a panic.

mod common;

use cairn_http::envelope::decode_envelope;
use cairn_types::{CanisterId, Principal};
use ciborium::Value as Cbor;
use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Valid envelopes of every shape the decoder knows.
fn bases() -> Vec<Vec<u8>> {
    let id = Identity::new(1);
    let signed = Signer::Key(id.clone());
    let delegated = Signer::Delegated {
        identity: id.clone(),
        session: Identity::new(2),
        targets: Some(vec![canister().get()]),
        permissions: Some("queries".into()),
    };
    let mut with_info = call_content("call", Principal::ANONYMOUS, canister(), "m", b"DIDL\x00\x00", NOW);
    with_info.push((
        "sender_info",
        map(vec![("info", Cbor::Bytes(vec![1])), ("signer", Cbor::Bytes(vec![2])), ("sig", Cbor::Bytes(vec![3]))]),
    ));
    vec![
        anonymous("call", canister(), "inc", b"DIDL\x00\x00").0,
        anonymous("query", CanisterId::MANAGEMENT, "list_canisters", b"DIDL\x00\x00").0,
        envelope(call_content("call", id.principal(), canister(), "m", b"x", NOW), &signed).0,
        envelope(call_content("query", id.principal(), canister(), "m", b"x", NOW), &delegated).0,
        envelope(
            read_state_content(
                id.principal(),
                vec![vec![b"time".to_vec()], vec![b"request_status".to_vec(), vec![1; 32], b"status".to_vec()]],
                NOW,
            ),
            &signed,
        )
        .0,
        envelope(with_info, &Signer::Anonymous).0,
    ]
}

/// A byte-level edit of a valid body.
#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Set(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Delete),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(mut body: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = body.len().max(1);
        match *m {
            Mutation::Flip(i, b) if !body.is_empty() => body[i % len] ^= b,
            Mutation::Set(i, b) if !body.is_empty() => body[i % len] = b,
            Mutation::Insert(i, b) => body.insert(i % (body.len() + 1), b),
            Mutation::Delete(i) if !body.is_empty() => {
                body.remove(i % len);
            }
            Mutation::Truncate(i) => body.truncate(i % (body.len() + 1)),
            _ => {}
        }
    }
    body
}

const FIELDS: &[&str] = &[
    "content",
    "request_type",
    "sender",
    "ingress_expiry",
    "nonce",
    "canister_id",
    "method_name",
    "arg",
    "paths",
    "sender_pubkey",
    "sender_sig",
    "sender_delegation",
    "sender_info",
    "delegation",
    "pubkey",
    "expiration",
    "targets",
    "permissions",
    "signature",
    "info",
    "signer",
    "sig",
];

/// Random CBOR trees whose map keys are mostly the envelope's field names,
/// so the typed decoding gets deep rather than failing on the first key.
fn cbor_value() -> impl Strategy<Value = Cbor> {
    let leaf = prop_oneof![
        any::<u64>().prop_map(|n| Cbor::Integer(n.into())),
        any::<i64>().prop_map(|n| Cbor::Integer(n.into())),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Cbor::Bytes),
        prop_oneof![
            Just("call".to_string()),
            Just("query".to_string()),
            Just("read_state".to_string()),
            Just("queries".to_string()),
            ".{0,12}"
        ]
        .prop_map(Cbor::Text),
        any::<bool>().prop_map(Cbor::Bool),
        Just(Cbor::Null),
        any::<f64>().prop_map(Cbor::Float),
        Just(Cbor::Bytes(vec![4])),
        Just(Cbor::Bytes(canister().as_slice().to_vec())),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        let key = prop_oneof![4 => proptest::sample::select(FIELDS).prop_map(|k| Cbor::Text(k.to_string())), 1 => inner.clone()];
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Cbor::Array),
            proptest::collection::vec((key, inner.clone()), 0..8).prop_map(Cbor::Map),
            (prop_oneof![Just(55799u64), Just(2u64), any::<u64>()], inner).prop_map(|(t, v)| Cbor::Tag(t, Box::new(v))),
        ]
    })
}

/// A field that is usually well-typed, sometimes random, sometimes absent.
fn field_value(good: BoxedStrategy<Cbor>) -> impl Strategy<Value = Option<Cbor>> {
    prop_oneof![20 => good.prop_map(Some), 1 => cbor_value().prop_map(Some), 1 => Just(None)]
}

fn blob(max: usize) -> BoxedStrategy<Cbor> {
    proptest::collection::vec(any::<u8>(), 0..max).prop_map(Cbor::Bytes).boxed()
}

/// Envelopes with mostly well-typed fields, so that decoding usually gets
/// all the way to the request id and the handlers to their later checks.
fn structured_envelope() -> impl Strategy<Value = Vec<u8>> {
    let request_type =
        prop_oneof![Just("call"), Just("query"), Just("read_state")].prop_map(|t| Cbor::Text(t.to_string())).boxed();
    let principal = prop_oneof![
        3 => Just(Cbor::Bytes(vec![4])),
        3 => Just(Cbor::Bytes(canister().as_slice().to_vec())),
        1 => Just(Cbor::Bytes(vec![])),
        1 => blob(31),
    ]
    .boxed();
    let expiry =
        prop_oneof![Just(NOW), Just(NOW + 60_000_000_000), any::<u64>()].prop_map(|n| Cbor::Integer(n.into())).boxed();
    let label = prop_oneof![
        Just(Cbor::Bytes(b"time".to_vec())),
        Just(Cbor::Bytes(b"subnet".to_vec())),
        Just(Cbor::Bytes(b"request_status".to_vec())),
        Just(Cbor::Bytes(b"canister".to_vec())),
        Just(Cbor::Bytes(b"canister_ranges".to_vec())),
        Just(Cbor::Bytes(canister().as_slice().to_vec())),
        blob(33),
    ];
    let paths = proptest::collection::vec(proptest::collection::vec(label, 0..5).prop_map(Cbor::Array), 0..4)
        .prop_map(Cbor::Array)
        .boxed();
    let content = (
        field_value(request_type),
        field_value(principal.clone()),
        field_value(expiry),
        field_value(blob(40)),
        field_value(principal.clone()),
        field_value(
            prop_oneof![Just("inc"), Just("list_canisters"), Just("create_canister")]
                .prop_map(|m| Cbor::Text(m.into()))
                .boxed(),
        ),
        field_value(blob(16)),
        field_value(paths),
    )
        .prop_map(|(t, s, e, n, c, m, a, p)| {
            let names =
                ["request_type", "sender", "ingress_expiry", "nonce", "canister_id", "method_name", "arg", "paths"];
            let values = [t, s, e, n, c, m, a, p];
            Cbor::Map(names.iter().zip(values).filter_map(|(k, v)| v.map(|v| (Cbor::Text(k.to_string()), v))).collect())
        });
    let auth = (
        proptest::option::weighted(0.15, blob(50)),
        proptest::option::weighted(0.15, blob(70)),
        proptest::option::weighted(0.1, cbor_value()),
    );
    (content, auth).prop_map(|(content, (pubkey, sig, delegation))| {
        let mut fields = vec![(Cbor::Text("content".into()), content)];
        if let Some(k) = pubkey {
            fields.push((Cbor::Text("sender_pubkey".into()), k));
        }
        if let Some(s) = sig {
            fields.push((Cbor::Text("sender_sig".into()), s));
        }
        if let Some(d) = delegation {
            fields.push((Cbor::Text("sender_delegation".into()), Cbor::Array(vec![d])));
        }
        encode_raw(&Cbor::Tag(55799, Box::new(Cbor::Map(fields))))
    })
}

fn encode_raw(value: &Cbor) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(value, &mut out).unwrap();
    out
}

fn hostile_body() -> impl Strategy<Value = Vec<u8>> {
    let bases = bases();
    let n = bases.len();
    prop_oneof![
        // Random bytes, sometimes behind a plausible envelope prefix.
        1 => proptest::collection::vec(any::<u8>(), 0..256),
        1 => proptest::collection::vec(any::<u8>(), 0..128).prop_map(|tail| {
            let mut b = vec![0xd9, 0xd9, 0xf7, 0xa1, 0x67];
            b.extend_from_slice(b"content");
            b.extend(tail);
            b
        }),
        // Mutated valid envelopes.
        3 => (0..n, proptest::collection::vec(mutation(), 1..6)).prop_map(move |(i, m)| apply(bases[i].clone(), &m)),
        // Envelope-shaped random trees.
        2 => cbor_value().prop_map(|v| encode_raw(&Cbor::Tag(55799, Box::new(Cbor::Map(vec![(Cbor::Text("content".into()), v)]))))),
        1 => cbor_value().prop_map(|v| encode_raw(&v)),
        3 => structured_envelope(),
    ]
}

#[test]
fn decoder_survives_100k_hostile_bodies() {
    const CASES: u32 = 100_000;
    let mut runner = TestRunner::new(Config { cases: CASES, failure_persistence: None, ..Config::default() });
    let tried = AtomicUsize::new(0);
    let decoded = AtomicUsize::new(0);
    runner
        .run(&hostile_body(), |body| {
            tried.fetch_add(1, Ordering::Relaxed);
            if let Ok(envelope) = decode_envelope(&body) {
                decoded.fetch_add(1, Ordering::Relaxed);
                // Decoding is deterministic.
                prop_assert_eq!(decode_envelope(&body).unwrap().request_id, envelope.request_id);
            }
            Ok(())
        })
        .unwrap();
    let tried = tried.into_inner();
    println!("decoder fuzz: {tried} inputs, {} decoded as envelopes", decoded.into_inner());
    assert!(tried >= CASES as usize);
}

#[test]
fn router_survives_hostile_bodies() {
    const CASES: u32 = 10_000;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let node = FakeNode::new();
    let config =
        cairn_http::HttpConfig { sync_call_timeout: std::time::Duration::from_millis(2), ..Default::default() };
    let app = rt.block_on(async { app_with(&node, config) });
    let sid = node.subnet_id();
    let urls = [
        format!("/api/v2/canister/{}/call", canister()),
        format!("/api/v4/canister/{}/call", canister()),
        format!("/api/v3/canister/{}/query", canister()),
        format!("/api/v3/canister/{}/read_state", canister()),
        format!("/api/v4/subnet/{sid}/call"),
        format!("/api/v3/subnet/{sid}/read_state"),
    ];
    let mut runner = TestRunner::new(Config { cases: CASES, failure_persistence: None, ..Config::default() });
    let tried = AtomicUsize::new(0);
    let succeeded = AtomicUsize::new(0);
    runner
        .run(&(hostile_body(), 0..urls.len(), any::<bool>()), |(body, mut u, aligned)| {
            tried.fetch_add(1, Ordering::Relaxed);
            // Often send a decodable body to an endpoint of its own type, so
            // that it gets past the type check to the later ones.
            if aligned && let Ok(e) = decode_envelope(&body) {
                u = match e.request_type() {
                    cairn_http::envelope::RequestType::Call => u % 2,
                    cairn_http::envelope::RequestType::Query => 2,
                    cairn_http::envelope::RequestType::ReadState => 3 + 2 * (u % 2),
                };
            }
            let reply = rt.block_on(post(&app, &urls[u], body));
            if reply.status.is_success() {
                succeeded.fetch_add(1, Ordering::Relaxed);
            } else if std::env::var("FUZZ_DEBUG").is_ok() {
                println!("{} {}", reply.status, reply.text().trim());
            }
            prop_assert!(!reply.status.is_server_error(), "{} on {}: {}", reply.status, urls[u], reply.text());
            Ok(())
        })
        .unwrap();
    println!("router fuzz: {} inputs, {} answered 2xx", tried.into_inner(), succeeded.into_inner());
}
