//! Server-capacity load (`--mode raw`): every request is encoded and signed
//! before the clock starts, then sent by the light client in [`super::http`].
//!
//! Envelopes follow the interface spec (§2.3, §3, §4): the content map is
//! hashed with `hash_of_map` (Cairn's `cairn-crypto`, not ic-agent's code)
//! into the request id, which the sender signs with Ed25519 after the
//! `"\x0Aic-request"` domain separator. Queries are one envelope replayed;
//! updates each get their own nonce, so every call is a distinct message.
//! Responses are checked minimally: HTTP 200 and a CBOR map whose `status`
//! is `replied`; signatures and certificates are not verified.

use super::http::{Conn, Endpoint};
use super::stats::{Plan, Recorder};
use super::{Identity, Kind};
use anyhow::{Result, bail};
use bytes::Bytes;
use cairn_crypto::node_key::NodeSigningKey;
use cairn_crypto::request_id::Value;
use cairn_crypto::{domain, hash_of_map};
use ciborium::Value as Cbor;
use hyper::{Method, StatusCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// CBOR self-describe tag.
const SELF_DESCRIBE: u64 = 55799;
/// How far ahead prepared requests expire (the server accepts up to 5.5 min).
pub const EXPIRY_AHEAD: Duration = Duration::from_secs(240);

/// What to send.
pub struct RequestSpec<'a> {
    pub kind: Kind,
    pub canister: &'a [u8],
    pub method: &'a str,
    pub arg: &'a [u8],
    pub identity: Identity,
    /// Seed of the Ed25519 sender key.
    pub seed: [u8; 32],
}

/// The signer of prepared envelopes (or none: anonymous).
struct Signer {
    key: NodeSigningKey,
    der: Vec<u8>,
    principal: Vec<u8>,
}

impl Signer {
    fn new(identity: Identity, seed: [u8; 32]) -> Option<Signer> {
        match identity {
            Identity::Anonymous => None,
            Identity::Ed25519 => {
                let key = NodeSigningKey::from_seed(seed);
                let der = key.public_key_der().to_vec();
                let principal = key.node_id().get().as_slice().to_vec();
                Some(Signer { key, der, principal })
            }
        }
    }
}

fn text(s: &str) -> Cbor {
    Cbor::Text(s.to_string())
}

/// One envelope: `tag55799({content, sender_pubkey?, sender_sig?})`.
fn envelope(spec: &RequestSpec<'_>, signer: Option<&Signer>, expiry: u64, nonce: Option<&[u8]>) -> Vec<u8> {
    let request_type = match spec.kind {
        Kind::Query => "query",
        Kind::Update => "call",
    };
    let sender = signer.map_or_else(|| vec![4u8], |s| s.principal.clone());
    // The request id over the hashing model, and the same fields as CBOR.
    let mut fields: Vec<(&str, Value)> = vec![
        ("request_type", Value::text(request_type)),
        ("sender", Value::blob(&sender)),
        ("ingress_expiry", Value::Nat(expiry)),
        ("canister_id", Value::blob(spec.canister)),
        ("method_name", Value::text(spec.method)),
        ("arg", Value::blob(spec.arg)),
    ];
    if let Some(nonce) = nonce {
        fields.push(("nonce", Value::blob(nonce)));
    }
    let request_id = hash_of_map(fields.iter().map(|(k, v)| (*k, v)));
    let content: Vec<(Cbor, Cbor)> = fields
        .iter()
        .map(|(k, v)| {
            let value = match v {
                Value::Text(t) => text(t),
                Value::Blob(b) => Cbor::Bytes(b.clone()),
                Value::Nat(n) => Cbor::Integer((*n).into()),
                _ => unreachable!("only text, blob and nat fields are built"),
            };
            (text(k), value)
        })
        .collect();
    let mut env = vec![(text("content"), Cbor::Map(content))];
    if let Some(s) = signer {
        let signature = s.key.sign(&domain::with_separator(domain::REQUEST, &request_id));
        env.push((text("sender_pubkey"), Cbor::Bytes(s.der.clone())));
        env.push((text("sender_sig"), Cbor::Bytes(signature.to_vec())));
    }
    let mut out = Vec::with_capacity(256);
    ciborium::into_writer(&Cbor::Tag(SELF_DESCRIBE, Box::new(Cbor::Map(env))), &mut out).expect("CBOR to a Vec");
    out
}

/// Prepared request bodies.
pub struct Prepared {
    pub bodies: Vec<Bytes>,
    /// Queries: the bodies are replayed round-robin; updates: each is sent once.
    pub replay: bool,
    pub took: Duration,
}

/// Encodes and signs `count` requests (one for queries), on all cores.
pub fn prepare(spec: &RequestSpec<'_>, count: usize) -> Prepared {
    let started = Instant::now();
    let signer = Signer::new(spec.identity, spec.seed);
    let expiry = (SystemTime::now() + EXPIRY_AHEAD).duration_since(UNIX_EPOCH).expect("after 1970").as_nanos() as u64;
    if spec.kind == Kind::Query {
        let body = Bytes::from(envelope(spec, signer.as_ref(), expiry, None));
        return Prepared { bodies: vec![body], replay: true, took: started.elapsed() };
    }
    // Nonces: 8 random bytes for this invocation, then the request number.
    let run_tag: [u8; 8] = rand::random();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(count.max(1));
    let chunk = count.div_ceil(threads);
    let mut bodies = Vec::with_capacity(count);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let signer = signer.as_ref();
                scope.spawn(move || {
                    let range = (t * chunk)..((t + 1) * chunk).min(count);
                    range
                        .map(|i| {
                            let mut nonce = [0u8; 16];
                            nonce[..8].copy_from_slice(&run_tag);
                            nonce[8..].copy_from_slice(&(i as u64).to_be_bytes());
                            Bytes::from(envelope(spec, signer, expiry, Some(&nonce)))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            bodies.extend(h.join().expect("signing thread"));
        }
    });
    Prepared { bodies, replay: false, took: started.elapsed() }
}

/// The outcome of one response, as an error kind (`None` = success).
fn classify(kind: Kind, status: StatusCode, body: &[u8]) -> Option<String> {
    if status == StatusCode::ACCEPTED && kind == Kind::Update {
        return Some("http 202 (sync call not certified before the server's timeout)".into());
    }
    if status != StatusCode::OK {
        let text = String::from_utf8_lossy(&body[..body.len().min(80)]).replace('\n', " ");
        return Some(format!("http {}: {text}", status.as_u16()));
    }
    let Ok(value) = ciborium::from_reader::<Cbor, _>(body) else {
        return Some("200 with undecodable CBOR".into());
    };
    let mut value = &value;
    while let Cbor::Tag(_, inner) = value {
        value = inner;
    }
    let Cbor::Map(entries) = value else {
        return Some("200 with a non-map body".into());
    };
    let field = |name: &str| entries.iter().find(|(k, _)| k.as_text() == Some(name)).map(|(_, v)| v);
    match field("status").and_then(Cbor::as_text) {
        Some("replied") => None,
        Some(other) => {
            let code = field("error_code").and_then(Cbor::as_text).unwrap_or("");
            Some(format!("status {other} {code}").trim_end().to_string())
        }
        None => Some("200 without a status field".into()),
    }
}

/// Shared between the workers.
pub struct Shared {
    pub endpoint: Endpoint,
    pub path: String,
    pub kind: Kind,
    pub prepared: Prepared,
    pub next: AtomicU64,
    /// Set when an update worker ran out of prepared requests.
    pub exhausted: AtomicU64,
}

/// One connection's loop: take the next request, wait for its slot (fixed
/// rate), send it, record the result; until the plan ends.
pub async fn worker(shared: Arc<Shared>, plan: Plan) -> Recorder {
    let mut rec = Recorder::new(plan.runs);
    let end = plan.end();
    let mut conn: Option<Conn> = None;
    loop {
        let i = shared.next.fetch_add(1, Ordering::Relaxed);
        let slot = plan.slot(i);
        if let Some(slot) = slot {
            if slot >= end {
                break;
            }
            tokio::time::sleep_until(slot.into()).await;
        } else if Instant::now() >= end {
            break;
        }
        let body = if shared.prepared.replay {
            shared.prepared.bodies[i as usize % shared.prepared.bodies.len()].clone()
        } else if let Some(b) = shared.prepared.bodies.get(i as usize) {
            b.clone()
        } else {
            shared.exhausted.fetch_max(Instant::now().duration_since(plan.start).as_millis() as u64, Ordering::Relaxed);
            break;
        };
        if conn.is_none() {
            match Conn::open(&shared.endpoint).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    if let Some(w) = plan.window_of(Instant::now()) {
                        rec.error(w, format!("connect: {e}"));
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let c = conn.as_mut().expect("connected above");
        let sent = Instant::now();
        let result = c.request(Method::POST, &shared.path, body).await;
        let latency = sent.elapsed();
        let window = plan.window_of(sent);
        let outcome = match result {
            Ok((status, body)) => classify(shared.kind, status, &body),
            Err(e) => {
                conn = None;
                Some(format!("transport: {e}"))
            }
        };
        if let Some(w) = window {
            if let Some(slot) = slot {
                rec.lag(w, sent.saturating_duration_since(slot));
            }
            match outcome {
                None => rec.ok(w, latency),
                Some(kind) => rec.error(w, kind),
            }
        }
    }
    rec
}

/// How many update requests to prepare for a plan when none is given.
pub fn default_update_count(plan: &Plan, concurrency: usize) -> Result<usize> {
    let total = (plan.warmup + plan.window * plan.runs as u32).as_secs_f64();
    if total > EXPIRY_AHEAD.as_secs_f64() - 30.0 {
        bail!(
            "raw mode signs requests ahead with a {} s expiry: keep warm-up + runs × duration under {} s",
            EXPIRY_AHEAD.as_secs(),
            EXPIRY_AHEAD.as_secs() - 30
        );
    }
    Ok(match plan.rate {
        Some(r) => (r * total * 1.05) as usize + concurrency,
        // Unlimited: enough for 10,000 updates/s (3.3× the target).
        None => (10_000.0 * total) as usize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_crypto::request_id::request_id_of_cbor;

    #[test]
    fn envelopes_carry_a_valid_request_id_and_signature() {
        let canister = [0u8, 0, 0, 0, 0, 0, 0, 1, 1, 1];
        let spec = RequestSpec {
            kind: Kind::Update,
            canister: &canister,
            method: "inc",
            arg: b"DIDL\x00\x00",
            identity: Identity::Ed25519,
            seed: [7; 32],
        };
        let signer = Signer::new(Identity::Ed25519, [7; 32]).unwrap();
        let bytes = envelope(&spec, Some(&signer), 1_700_000_000_000_000_000, Some(&[1, 2, 3]));
        let value: Cbor = ciborium::from_reader(&bytes[..]).unwrap();
        let Cbor::Tag(SELF_DESCRIBE, inner) = value else { panic!("untagged") };
        let Cbor::Map(env) = *inner else { panic!("not a map") };
        let get = |k: &str| env.iter().find(|(key, _)| key.as_text() == Some(k)).map(|(_, v)| v.clone()).unwrap();
        let rid = request_id_of_cbor(&get("content")).unwrap();
        let msg = domain::with_separator(domain::REQUEST, &rid.0);
        let sig = get("sender_sig").into_bytes().unwrap();
        let der = get("sender_pubkey").into_bytes().unwrap();
        cairn_crypto::node_key::verify_ed25519_der(&der, &msg, &sig).unwrap();
        // Distinct nonces give distinct request ids.
        let other = envelope(&spec, Some(&signer), 1_700_000_000_000_000_000, Some(&[1, 2, 4]));
        assert_ne!(bytes, other);
    }

    #[test]
    fn classifies_responses() {
        let mut ok = Vec::new();
        let body = Cbor::Tag(SELF_DESCRIBE, Box::new(Cbor::Map(vec![(text("status"), text("replied"))])));
        ciborium::into_writer(&body, &mut ok).unwrap();
        assert_eq!(classify(Kind::Query, StatusCode::OK, &ok), None);
        let mut rejected = Vec::new();
        let body = Cbor::Map(vec![(text("status"), text("rejected")), (text("error_code"), text("IC0301"))]);
        ciborium::into_writer(&body, &mut rejected).unwrap();
        assert_eq!(classify(Kind::Query, StatusCode::OK, &rejected).unwrap(), "status rejected IC0301");
        assert!(classify(Kind::Update, StatusCode::ACCEPTED, b"").unwrap().starts_with("http 202"));
        assert!(classify(Kind::Query, StatusCode::BAD_REQUEST, b"bad").unwrap().starts_with("http 400"));
    }
}
