//! A scripted [`NodeApi`] over a hand-built, really certified state, plus
//! helpers to build signed request envelopes the way clients do.

#![allow(dead_code)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use cairn_crypto::bls;
use cairn_crypto::certificate::state_root_message;
use cairn_crypto::node_key::NodeSigningKey;
use cairn_crypto::request_id::request_id_of_cbor;
use cairn_crypto::user_sig::Delegation;
use cairn_execution::Query;
use cairn_http::{BoxFuture, HttpConfig, Metrics, NodeApi, NodeInfo, SubmitError};
use cairn_state::canister_state::{CanisterSettings, CustomSection, ExecutionState, ExportedMethods, WasmBinary};
use cairn_state::{CanisterState, Memory, ReplicatedState, SubnetType, SystemMetadata, SystemState};
use cairn_state_manager::{CertifiedState, StateTreeBuilder, SubnetTreeInfo};
use cairn_types::messages::{Ingress, IngressState, IngressStatus, WasmResult};
use cairn_types::{CanisterId, Cycles, Height, MessageId, NodeId, Principal, SubnetId, Time, UserError};
use ciborium::Value as Cbor;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::ServiceExt;

/// The fake node's clock: 2023-11-14.
pub const NOW: u64 = 1_700_000_000_000_000_000;

/// What the fake node does with a submitted message.
#[derive(Clone, Debug)]
pub enum OnSubmit {
    /// Nothing (the sync call times out).
    Nothing,
    /// After a short delay, the message completes with this result and a
    /// new state is certified.
    Complete(Result<WasmResult, UserError>),
    /// The pool refuses it.
    Refuse(SubmitError),
}

pub struct FakeNode {
    me: std::sync::Weak<FakeNode>,
    info: NodeInfo,
    root_key: bls::SecretKey,
    node_key: NodeSigningKey,
    inner: Mutex<Inner>,
    tx: tokio::sync::watch::Sender<Height>,
    pub now: AtomicU64,
    pub submitted: Mutex<Vec<Ingress>>,
    pub checked: Mutex<Vec<Ingress>>,
    pub queries: Mutex<Vec<Query>>,
    pub on_submit: Mutex<OnSubmit>,
    pub check_result: Mutex<Result<(), UserError>>,
    pub query_result: Mutex<Result<WasmResult, UserError>>,
    pub starting: std::sync::atomic::AtomicBool,
}

struct Inner {
    state: ReplicatedState,
    builder: StateTreeBuilder,
    certified: Option<Arc<CertifiedState>>,
}

/// The canister with code, a public and a private metadata section.
pub fn canister() -> CanisterId {
    CanisterId::from_u64(7)
}

/// The controller of [`canister`] (an Ed25519 identity, seed 42).
pub fn controller() -> Identity {
    Identity::new(42)
}

impl FakeNode {
    pub fn new() -> Arc<FakeNode> {
        let root_key = bls::SecretKey::from_seed([1; 32]);
        let root_der = root_key.public_key().to_der().to_vec();
        let subnet_id = SubnetId(Principal::self_authenticating(&root_der));
        let node_key = NodeSigningKey::from_seed([2; 32]);
        let node_id = node_key.node_id();
        let mut state = ReplicatedState::new(SystemMetadata::single_subnet(
            subnet_id,
            SubnetType::Application,
            13,
            root_der.clone(),
        ));
        state.metadata.batch_time = Time::from_nanos(NOW);
        let mut metadata = BTreeMap::new();
        metadata.insert("candid:service".to_string(), CustomSection { public: true, content: b"service {}".to_vec() });
        metadata.insert("secret".to_string(), CustomSection { public: false, content: b"hidden".to_vec() });
        let exec = ExecutionState {
            wasm_binary: Arc::new(WasmBinary { bytes: b"\0asm".to_vec(), hash: [5; 32] }),
            wasm_memory: Memory::default(),
            stable_memory: Memory::default(),
            exported_globals: vec![],
            exports: ExportedMethods::default(),
            metadata,
            memory64: false,
        };
        let system = SystemState::new(
            canister(),
            [controller().principal()].into(),
            Cycles::new(1 << 40),
            CanisterSettings::default(),
            Time::from_nanos(NOW - 1),
        );
        state.canisters.insert(canister(), CanisterState { system_state: system, execution_state: Some(exec) });
        let info = SubnetTreeInfo {
            subnet_id,
            public_key_der: root_der.clone(),
            subnet_type: SubnetType::Application,
            canister_ranges: state.metadata.routing_table.ranges_of(&subnet_id),
            nodes: vec![(node_id, node_key.public_key_der().to_vec())],
        };
        let (tx, _) = tokio::sync::watch::channel(Height(0));
        let node = Arc::new_cyclic(|me| FakeNode {
            me: me.clone(),
            info: NodeInfo { root_key_der: root_der, subnet_id, node_id, impl_version: "cairn-test".into() },
            root_key,
            node_key,
            inner: Mutex::new(Inner { state, builder: StateTreeBuilder::new(info), certified: None }),
            tx,
            now: AtomicU64::new(NOW),
            submitted: Mutex::new(vec![]),
            checked: Mutex::new(vec![]),
            queries: Mutex::new(vec![]),
            on_submit: Mutex::new(OnSubmit::Nothing),
            check_result: Mutex::new(Ok(())),
            query_result: Mutex::new(Ok(WasmResult::Reply(b"DIDL\x00\x00".to_vec()))),
            starting: false.into(),
        });
        node.certify();
        node
    }

    pub fn subnet_id(&self) -> SubnetId {
        self.info.subnet_id
    }

    pub fn node_id(&self) -> NodeId {
        self.info.node_id
    }

    pub fn node_key_der(&self) -> Vec<u8> {
        self.node_key.public_key_der().to_vec()
    }

    pub fn root_key_der(&self) -> Vec<u8> {
        self.info.root_key_der.clone()
    }

    /// Certifies the current state at the next height.
    pub fn certify(&self) {
        let mut inner = self.inner.lock().unwrap();
        let height = inner.certified.as_ref().map_or(Height(1), |c| c.height.increment());
        let Inner { state, builder, .. } = &mut *inner;
        let tree = builder.update(state);
        let signature = self.root_key.sign(&state_root_message(&tree.hash())).to_bytes().to_vec();
        inner.certified =
            Some(Arc::new(CertifiedState { height, state: Arc::new(inner.state.clone()), tree, signature }));
        drop(inner);
        self.tx.send_replace(height);
    }

    /// Records a status for a message and certifies.
    pub fn set_status(&self, id: MessageId, status: IngressStatus) {
        self.inner.lock().unwrap().state.metadata.ingress_history.set(id, status);
        self.certify();
    }

    fn complete(&self, ingress: &Ingress, result: Result<WasmResult, UserError>) {
        let state = match result {
            Ok(r) => IngressState::Completed(r),
            Err(e) => IngressState::Failed(e),
        };
        self.set_status(
            ingress.message_id,
            IngressStatus {
                receiver: ingress.receiver,
                effective_canister_id: ingress.effective_canister_id,
                user: ingress.source,
                time: Time::from_nanos(NOW),
                state,
                expiry_time: ingress.expiry_time,
            },
        );
    }
}

impl NodeApi for FakeNode {
    fn info(&self) -> &NodeInfo {
        &self.info
    }

    fn certified_state(&self) -> Option<Arc<CertifiedState>> {
        if self.starting.load(Ordering::SeqCst) {
            return None;
        }
        self.inner.lock().unwrap().certified.clone()
    }

    fn subscribe_certified(&self) -> tokio::sync::watch::Receiver<Height> {
        self.tx.subscribe()
    }

    fn health(&self) -> &'static str {
        if self.starting.load(Ordering::SeqCst) { "starting" } else { "healthy" }
    }

    fn check_ingress(&self, ingress: Ingress) -> BoxFuture<'static, Result<(), UserError>> {
        self.checked.lock().unwrap().push(ingress);
        let result = self.check_result.lock().unwrap().clone();
        Box::pin(async move { result })
    }

    fn submit_ingress(&self, ingress: Ingress, _signed: cairn_http::SignedIngress) -> Result<(), SubmitError> {
        let action = self.on_submit.lock().unwrap().clone();
        match action {
            OnSubmit::Refuse(e) => return Err(e),
            OnSubmit::Nothing => {}
            OnSubmit::Complete(result) => {
                let me = self.me.clone();
                let ingress = ingress.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    if let Some(node) = me.upgrade() {
                        node.complete(&ingress, result);
                    }
                });
            }
        }
        self.submitted.lock().unwrap().push(ingress);
        Ok(())
    }

    fn query(&self, query: Query, _state: Arc<CertifiedState>) -> BoxFuture<'static, Result<WasmResult, UserError>> {
        self.queries.lock().unwrap().push(query);
        let result = self.query_result.lock().unwrap().clone();
        Box::pin(async move { result })
    }

    fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.node_key.sign(message)
    }

    fn node_public_key_der(&self) -> Vec<u8> {
        self.node_key.public_key_der().to_vec()
    }

    fn now_nanos(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }
}

/// A router over `node` with `config`.
pub fn app_with(node: &Arc<FakeNode>, config: HttpConfig) -> Router {
    cairn_http::router(node.clone(), config, Metrics::new())
}

/// A router with a short sync-call timeout.
pub fn app(node: &Arc<FakeNode>) -> Router {
    app_with(node, HttpConfig { sync_call_timeout: Duration::from_millis(500), ..HttpConfig::default() })
}

/// A finished response: status, headers and body.
pub struct Reply {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as CBOR, checking the self-describe tag.
    pub fn cbor(&self) -> Cbor {
        assert_eq!(&self.body[..3], &[0xd9, 0xd9, 0xf7], "missing self-describe tag");
        assert_eq!(self.content_type.as_deref(), Some("application/cbor"));
        let v: Cbor = ciborium::de::from_reader(&self.body[..]).unwrap();
        match v {
            Cbor::Tag(55799, inner) => *inner,
            other => other,
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }
}

/// A field of a CBOR map with text keys.
pub fn field<'a>(map: &'a Cbor, key: &str) -> Option<&'a Cbor> {
    match map {
        Cbor::Map(entries) => entries.iter().find(|(k, _)| matches!(k, Cbor::Text(t) if t == key)).map(|(_, v)| v),
        _ => None,
    }
}

pub fn text_field(map: &Cbor, key: &str) -> String {
    match field(map, key) {
        Some(Cbor::Text(t)) => t.clone(),
        other => panic!("{key}: expected text, got {other:?}"),
    }
}

pub fn bytes_field(map: &Cbor, key: &str) -> Vec<u8> {
    match field(map, key) {
        Some(Cbor::Bytes(b)) => b.clone(),
        other => panic!("{key}: expected bytes, got {other:?}"),
    }
}

pub fn nat_field(map: &Cbor, key: &str) -> u64 {
    match field(map, key) {
        Some(Cbor::Integer(i)) => u64::try_from(*i).unwrap(),
        other => panic!("{key}: expected a nat, got {other:?}"),
    }
}

/// Sends one request through the router.
pub async fn send(app: &Router, method: &str, path: &str, body: Vec<u8>) -> Reply {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/cbor")
        .body(Body::from(body))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let content_type = headers.get("content-type").map(|v| v.to_str().unwrap().to_string());
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap().to_vec();
    Reply { status, content_type, headers, body }
}

pub async fn post(app: &Router, path: &str, body: Vec<u8>) -> Reply {
    send(app, "POST", path, body).await
}

/// A CBOR map with text keys.
pub fn map(entries: Vec<(&str, Cbor)>) -> Cbor {
    Cbor::Map(entries.into_iter().map(|(k, v)| (Cbor::Text(k.into()), v)).collect())
}

pub fn nat(n: u64) -> Cbor {
    Cbor::Integer(n.into())
}

pub fn encode(value: &Cbor) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(&Cbor::Tag(55799, Box::new(value.clone())), &mut out).unwrap();
    out
}

/// An Ed25519 user identity.
#[derive(Clone)]
pub struct Identity {
    key: Arc<NodeSigningKey>,
}

impl Identity {
    pub fn new(seed: u8) -> Identity {
        Identity { key: Arc::new(NodeSigningKey::from_seed([seed; 32])) }
    }

    pub fn der(&self) -> Vec<u8> {
        self.key.public_key_der().to_vec()
    }

    pub fn principal(&self) -> Principal {
        Principal::self_authenticating(&self.der())
    }

    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        self.key.sign(msg).to_vec()
    }
}

/// Who signs a request.
#[derive(Clone)]
pub enum Signer {
    Anonymous,
    Key(Identity),
    /// `identity` delegates to `session` with these delegation fields.
    Delegated {
        identity: Identity,
        session: Identity,
        targets: Option<Vec<Principal>>,
        permissions: Option<String>,
    },
}

impl Signer {
    pub fn principal(&self) -> Principal {
        match self {
            Signer::Anonymous => Principal::ANONYMOUS,
            Signer::Key(i) | Signer::Delegated { identity: i, .. } => i.principal(),
        }
    }
}

/// Content of a call or query.
pub fn call_content(
    kind: &str,
    sender: Principal,
    canister: CanisterId,
    method: &str,
    arg: &[u8],
    expiry: u64,
) -> Vec<(&'static str, Cbor)> {
    vec![
        ("request_type", Cbor::Text(kind.into())),
        ("sender", Cbor::Bytes(sender.as_slice().to_vec())),
        ("ingress_expiry", nat(expiry)),
        ("canister_id", Cbor::Bytes(canister.as_slice().to_vec())),
        ("method_name", Cbor::Text(method.into())),
        ("arg", Cbor::Bytes(arg.to_vec())),
        ("nonce", Cbor::Bytes(vec![1, 2, 3])),
    ]
}

/// Content of a read_state.
pub fn read_state_content(sender: Principal, paths: Vec<Vec<Vec<u8>>>, expiry: u64) -> Vec<(&'static str, Cbor)> {
    let paths = paths.into_iter().map(|p| Cbor::Array(p.into_iter().map(Cbor::Bytes).collect())).collect();
    vec![
        ("request_type", Cbor::Text("read_state".into())),
        ("sender", Cbor::Bytes(sender.as_slice().to_vec())),
        ("ingress_expiry", nat(expiry)),
        ("paths", Cbor::Array(paths)),
    ]
}

/// A signed envelope and its request id.
pub fn envelope(content: Vec<(&'static str, Cbor)>, signer: &Signer) -> (Vec<u8>, MessageId) {
    let content = map(content);
    let rid = request_id_of_cbor(&content).unwrap();
    let mut message = b"\x0Aic-request".to_vec();
    message.extend_from_slice(&rid.0);
    let mut fields = vec![("content", content)];
    match signer {
        Signer::Anonymous => {}
        Signer::Key(i) => {
            fields.push(("sender_pubkey", Cbor::Bytes(i.der())));
            fields.push(("sender_sig", Cbor::Bytes(i.sign(&message))));
        }
        Signer::Delegated { identity, session, targets, permissions } => {
            let delegation = Delegation {
                pubkey: session.der(),
                expiration: NOW + 3_600_000_000_000,
                targets: targets.clone(),
                permissions: permissions.clone(),
            };
            let signature = identity.sign(&delegation.signed_bytes());
            let mut d =
                vec![("pubkey", Cbor::Bytes(delegation.pubkey.clone())), ("expiration", nat(delegation.expiration))];
            if let Some(t) = targets {
                d.push(("targets", Cbor::Array(t.iter().map(|p| Cbor::Bytes(p.as_slice().to_vec())).collect())));
            }
            if let Some(p) = permissions {
                d.push(("permissions", Cbor::Text(p.clone())));
            }
            fields.push(("sender_pubkey", Cbor::Bytes(identity.der())));
            fields.push(("sender_sig", Cbor::Bytes(session.sign(&message))));
            fields.push((
                "sender_delegation",
                Cbor::Array(vec![map(vec![("delegation", map(d)), ("signature", Cbor::Bytes(signature))])]),
            ));
        }
    }
    (encode(&map(fields)), rid)
}

/// An anonymous call/query envelope expiring in 3 minutes.
pub fn anonymous(kind: &str, canister: CanisterId, method: &str, arg: &[u8]) -> (Vec<u8>, MessageId) {
    envelope(call_content(kind, Principal::ANONYMOUS, canister, method, arg, NOW + 180_000_000_000), &Signer::Anonymous)
}
