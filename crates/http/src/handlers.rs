//! The endpoint handlers: status, call (async and sync), query, read_state.

use crate::cbor::{encode_tagged, nat, text_map};
use crate::config::{HttpConfig, IC_API_VERSION};
use crate::envelope::{CanisterCall, Envelope, RequestType, decode_envelope};
use crate::error::HttpError;
use crate::metrics::{HttpMetrics, encode as encode_metrics};
use crate::node_api::{NodeApi, SignedIngress, SubmitError};
use crate::permissions::{ApiVersion, ReadStateRequest, check_paths};
use crate::validate::{
    Target, auth_error, authenticate_envelope, check_canister_ecid, check_expiry, check_subnet_request,
    check_target_on_subnet,
};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use cairn_crypto::node_key::ED25519_DER_PREFIX;
use cairn_crypto::query_sig::{QueryResponse, query_response_message};
use cairn_crypto::user_sig::AuthOutcome;
use cairn_execution::Query;
use cairn_state_manager::CertifiedState;
use cairn_types::messages::{Ingress, WasmResult};
use cairn_types::{CanisterId, ErrorCode, MessageId, Principal, RejectCode, SubnetId, Time, UserError};
use ciborium::Value as Cbor;
use prometheus_client::registry::Registry;
use std::sync::Arc;

/// Everything a handler needs; cloned per request (all `Arc`s).
#[derive(Clone)]
pub(crate) struct AppState {
    pub node: Arc<dyn NodeApi>,
    pub config: Arc<HttpConfig>,
    pub metrics: HttpMetrics,
    pub registry: Arc<Registry>,
    pub root_subnet: Principal,
}

/// Whether a call answers at once (v2) or waits for the certified result (v3/v4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CallMode {
    Async,
    Sync,
}

/// A `200` (or other) CBOR response with the self-describe tag.
fn cbor_response(status: StatusCode, value: Cbor) -> Response {
    let mut response = (status, encode_tagged(value)).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/cbor"));
    response
}

/// The body bytes, or 413 / 400 if they could not be read.
fn body_bytes(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, HttpError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            HttpError::PayloadTooLarge(format!("The request body is larger than the limit of {limit} bytes."))
        } else {
            HttpError::BadRequest(format!("Could not read the request body: {}", rejection.body_text()))
        }
    })
}

fn parse_principal(text: &str, what: &str) -> Result<Principal, HttpError> {
    Principal::from_text(text)
        .map_err(|e| HttpError::BadRequest(format!("The {what} {text:?} in the URL is not a valid principal: {e}.")))
}

fn canister_target(text: &str) -> Result<Target, HttpError> {
    parse_principal(text, "effective canister id").map(|p| Target::Canister(CanisterId(p)))
}

fn subnet_target(text: &str) -> Result<Target, HttpError> {
    parse_principal(text, "effective subnet id").map(|p| Target::Subnet(SubnetId(p)))
}

/// Decodes a body and checks that it has the endpoint's request type.
fn decode(body: &[u8], expected: RequestType) -> Result<Envelope, HttpError> {
    let envelope = decode_envelope(body).map_err(|e| HttpError::BadRequest(format!("Malformed request: {e}.")))?;
    if envelope.request_type() != expected {
        return Err(HttpError::BadRequest(format!(
            "This endpoint takes requests with request_type \"{}\", but this request has \"{}\".",
            expected.as_str(),
            envelope.request_type().as_str()
        )));
    }
    Ok(envelope)
}

/// The `reject_code`, `reject_message`, `error_code` triple of a user error.
fn reject_fields(code: RejectCode, message: &str, error_code: ErrorCode) -> Vec<(&'static str, Cbor)> {
    vec![
        ("reject_code", nat(u64::from(code.as_u32()))),
        ("reject_message", Cbor::Text(message.to_string())),
        ("error_code", Cbor::Text(error_code.to_string())),
    ]
}

impl AppState {
    /// The latest certified state, or 503 while the node is not healthy.
    fn certified(&self) -> Result<Arc<CertifiedState>, HttpError> {
        let health = self.node.health();
        let unavailable = || {
            HttpError::Unavailable(format!(
                "The replica is not ready to serve requests (replica_health_status: {health}); \
                 see /api/v2/status and retry later."
            ))
        };
        if health != "healthy" {
            return Err(unavailable());
        }
        self.node.certified_state().ok_or_else(unavailable)
    }

    /// Verifies signatures. A single Ed25519 signature (the common case, tens
    /// of microseconds) is checked in place: handing it to the blocking pool
    /// would cost more than the check. Delegation chains and other schemes
    /// (canister signatures need pairings: milliseconds) run off the async
    /// workers.
    async fn authenticate(&self, envelope: Envelope, now: u64) -> Result<(Envelope, AuthOutcome), HttpError> {
        let root_key = self.node.info().root_key_der.clone();
        let anonymous = envelope.sender.is_anonymous() && envelope.sender_pubkey.is_none();
        let cheap = envelope.sender_delegation.is_empty()
            && envelope.sender_pubkey.as_deref().is_some_and(|k| k.starts_with(&ED25519_DER_PREFIX));
        if anonymous || cheap {
            let outcome = authenticate_envelope(&envelope, now, &root_key)?;
            return Ok((envelope, outcome));
        }
        tokio::task::spawn_blocking(move || {
            let outcome = authenticate_envelope(&envelope, now, &root_key)?;
            Ok((envelope, outcome))
        })
        .await
        .map_err(|e| HttpError::Internal(format!("Request verification failed unexpectedly: {e}.")))?
    }
}

/// `GET /api/v2/status`.
pub(crate) async fn status(State(app): State<AppState>) -> Response {
    let info = app.node.info();
    let mut fields = vec![
        ("ic_api_version", Cbor::Text(IC_API_VERSION.to_string())),
        ("impl_version", Cbor::Text(info.impl_version.clone())),
        ("root_key", Cbor::Bytes(info.root_key_der.clone())),
        ("replica_health_status", Cbor::Text(app.node.health().to_string())),
    ];
    if let Some(certified) = app.node.certified_state() {
        fields.push(("certified_height", nat(certified.height.0)));
    }
    cbor_response(StatusCode::OK, text_map(fields))
}

/// `GET /metrics`.
pub(crate) async fn metrics(State(app): State<AppState>) -> Response {
    let mut response = encode_metrics(&app.registry).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

/// Any unknown route.
pub(crate) async fn fallback(method: Method, uri: Uri) -> HttpError {
    HttpError::NotFound(format!("There is no endpoint {method} {}.", uri.path()))
}

/// `POST /api/v2/canister/<ecid>/call`.
pub(crate) async fn call_v2(
    State(app): State<AppState>,
    Path(ecid): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, HttpError> {
    let body = body_bytes(body, app.config.max_request_body_bytes)?;
    call(&app, canister_target(&ecid)?, CallMode::Async, &body).await
}

/// `POST /api/v3/canister/<ecid>/call` and `/api/v4/canister/<ecid>/call`.
pub(crate) async fn call_sync(
    State(app): State<AppState>,
    Path(ecid): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, HttpError> {
    let body = body_bytes(body, app.config.max_request_body_bytes)?;
    call(&app, canister_target(&ecid)?, CallMode::Sync, &body).await
}

/// `POST /api/v4/subnet/<esid>/call`.
pub(crate) async fn subnet_call(
    State(app): State<AppState>,
    Path(esid): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, HttpError> {
    let body = body_bytes(body, app.config.max_request_body_bytes)?;
    call(&app, subnet_target(&esid)?, CallMode::Sync, &body).await
}

/// `POST /api/v2|v3/canister/<ecid>/query`.
pub(crate) async fn query(
    State(app): State<AppState>,
    Path(ecid): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, HttpError> {
    let body = body_bytes(body, app.config.max_request_body_bytes)?;
    run_query(&app, canister_target(&ecid)?, &body).await
}

/// `POST /api/v3/subnet/<esid>/query`.
pub(crate) async fn subnet_query(
    State(app): State<AppState>,
    Path(esid): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, HttpError> {
    let body = body_bytes(body, app.config.max_request_body_bytes)?;
    run_query(&app, subnet_target(&esid)?, &body).await
}

/// `POST /api/v2/canister/<ecid>/read_state`.
pub(crate) async fn read_state_v2(
    State(app): State<AppState>,
    Path(ecid): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, HttpError> {
    let body = body_bytes(body, app.config.max_request_body_bytes)?;
    read_state(&app, canister_target(&ecid)?, ApiVersion::V2, &body).await
}

/// `POST /api/v3/canister/<ecid>/read_state`.
pub(crate) async fn read_state_v3(
    State(app): State<AppState>,
    Path(ecid): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, HttpError> {
    let body = body_bytes(body, app.config.max_request_body_bytes)?;
    read_state(&app, canister_target(&ecid)?, ApiVersion::V3, &body).await
}

/// `POST /api/v3/subnet/<esid>/read_state`.
pub(crate) async fn subnet_read_state(
    State(app): State<AppState>,
    Path(esid): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, HttpError> {
    let body = body_bytes(body, app.config.max_request_body_bytes)?;
    read_state(&app, subnet_target(&esid)?, ApiVersion::V3, &body).await
}

/// Checks that the endpoint accepts this call or query and that its
/// ECID/ESID is on this subnet.
fn check_call_target(
    call: &CanisterCall,
    target: Target,
    is_query: bool,
    state: &CertifiedState,
) -> Result<(), HttpError> {
    match target {
        Target::Canister(ecid) => check_canister_ecid(call, ecid, is_query)?,
        Target::Subnet(_) => check_subnet_request(call, is_query)?,
    }
    check_target_on_subnet(target, &state.state)
}

/// The shared update-call pipeline.
async fn call(app: &AppState, target: Target, mode: CallMode, body: &[u8]) -> Result<Response, HttpError> {
    let certified = app.certified()?;
    let envelope = decode(body, RequestType::Call)?;
    let rid = envelope.request_id;
    {
        let call =
            envelope.canister_call().ok_or_else(|| HttpError::Internal("call without a canister call".into()))?;
        let size = call.method_name.len() + call.arg.len();
        if size > app.config.max_ingress_payload_bytes {
            return Err(HttpError::PayloadTooLarge(format!(
                "Request {rid} is too large: its method name and argument take {size} bytes, the maximum is {}.",
                app.config.max_ingress_payload_bytes
            )));
        }
        check_call_target(call, target, false, &certified)?;
    }
    let now = app.node.now_nanos();
    check_expiry(envelope.ingress_expiry, now, app.config.max_ingress_expiry_ahead, false)?;
    let (envelope, outcome) = app.authenticate(envelope, now).await?;
    let Some(call) = envelope.canister_call() else {
        return Err(HttpError::Internal("call without a canister call".into()));
    };
    outcome.check_target(&call.canister_id.get(), true).map_err(|e| auth_error(&rid, e))?;

    // Subscribe before submitting, so no certification can slip through
    // between checking the state and waiting for the next one.
    let updates = app.node.subscribe_certified();
    let known = app.node.certified_state().is_some_and(|s| s.state.metadata.ingress_history.contains(&rid));
    if known {
        tracing::debug!(request_id = %rid, "call already known; answering from its status");
    } else {
        let ingress = Ingress {
            source: envelope.sender,
            receiver: call.canister_id,
            effective_canister_id: CanisterId(target.principal()),
            method_name: call.method_name.clone(),
            method_payload: call.arg.clone(),
            message_id: rid,
            expiry_time: Time::from_nanos(envelope.ingress_expiry),
            sender_info: outcome.sender_info,
        };
        if let Err(error) = app.node.check_ingress(ingress.clone()).await {
            tracing::debug!(request_id = %rid, %error, "call refused before consensus");
            return Ok(match mode {
                CallMode::Async => cbor_response(
                    StatusCode::OK,
                    text_map(reject_fields(error.reject_code(), &error.description, error.code)),
                ),
                CallMode::Sync => {
                    app.metrics.sync_call("non_replicated_rejection");
                    let mut fields = vec![("status", Cbor::Text("non_replicated_rejection".into()))];
                    fields.extend(reject_fields(error.reject_code(), &error.description, error.code));
                    cbor_response(StatusCode::OK, text_map(fields))
                }
            });
        }
        let signed = SignedIngress {
            envelope: body.to_vec(),
            effective_principal: target.principal(),
            subnet_target: matches!(target, Target::Subnet(_)),
        };
        app.node.submit_ingress(ingress, signed).map_err(|e| match e {
            SubmitError::PoolFull => {
                HttpError::TooManyRequests(format!("The node's ingress pool is full; retry request {rid} later."))
            }
            SubmitError::ShuttingDown => HttpError::Unavailable("The node is shutting down.".into()),
        })?;
        tracing::debug!(request_id = %rid, "call submitted");
    }
    match mode {
        CallMode::Async => Ok(StatusCode::ACCEPTED.into_response()),
        CallMode::Sync => Ok(await_certified_status(app, rid, updates).await),
    }
}

/// Waits until a certified state shows `rid` in a final state and answers
/// with a certificate for `/request_status/<rid>`, or `202` at the timeout.
async fn await_certified_status(
    app: &AppState,
    rid: MessageId,
    mut updates: tokio::sync::watch::Receiver<cairn_types::Height>,
) -> Response {
    let deadline = tokio::time::Instant::now() + app.config.sync_call_timeout;
    loop {
        if let Some(certified) = app.node.certified_state()
            && certified.state.metadata.ingress_history.get(&rid).is_some_and(|s| s.state.is_terminal())
        {
            let certificate = certified.certificate(&[vec![b"request_status".to_vec(), rid.0.to_vec()]]);
            app.metrics.sync_call("certified");
            tracing::debug!(request_id = %rid, height = certified.height.0, "call answered with a certificate");
            return cbor_response(
                StatusCode::OK,
                text_map([("status", Cbor::Text("replied".into())), ("certificate", Cbor::Bytes(certificate))]),
            );
        }
        match tokio::time::timeout_at(deadline, updates.changed()).await {
            Ok(Ok(())) => {}
            // Timed out, or the node stopped certifying: the client polls.
            Ok(Err(_)) | Err(_) => {
                app.metrics.sync_call("timeout");
                tracing::debug!(request_id = %rid, "call not certified in time; answering 202");
                return StatusCode::ACCEPTED.into_response();
            }
        }
    }
}

/// The query pipeline.
async fn run_query(app: &AppState, target: Target, body: &[u8]) -> Result<Response, HttpError> {
    let certified = app.certified()?;
    let envelope = decode(body, RequestType::Query)?;
    let rid = envelope.request_id;
    {
        let call =
            envelope.canister_call().ok_or_else(|| HttpError::Internal("query without a canister call".into()))?;
        check_call_target(call, target, true, &certified)?;
    }
    let now = app.node.now_nanos();
    check_expiry(envelope.ingress_expiry, now, app.config.max_ingress_expiry_ahead, envelope.sender.is_anonymous())?;
    let (envelope, outcome) = app.authenticate(envelope, now).await?;
    let Some(call) = envelope.canister_call() else {
        return Err(HttpError::Internal("query without a canister call".into()));
    };
    outcome.check_target(&call.canister_id.get(), false).map_err(|e| auth_error(&rid, e))?;
    let query = Query {
        source: envelope.sender,
        receiver: call.canister_id,
        method_name: call.method_name.clone(),
        method_payload: call.arg.clone(),
    };
    let result = app.node.query(query, certified).await;
    let timestamp = app.node.now_nanos();
    let (status, fields, signed): (&str, Vec<(&str, Cbor)>, Vec<u8>) = match &result {
        Ok(WasmResult::Reply(arg)) => {
            let signed = query_response_message(&QueryResponse::Replied { arg }, timestamp, &rid);
            ("replied", vec![("reply", text_map([("arg", Cbor::Bytes(arg.clone()))]))], signed)
        }
        Ok(WasmResult::Reject(message)) => {
            let (code, error_code) = (RejectCode::CanisterReject, ErrorCode::CanisterRejectedMessage);
            rejected(code, message, error_code, timestamp, &rid)
        }
        Err(UserError { code, description }) => rejected(code.reject_code(), description, *code, timestamp, &rid),
    };
    tracing::debug!(request_id = %rid, status, "query answered");
    let signature = app.node.sign(&signed);
    let node_signature = text_map([
        ("timestamp", nat(timestamp)),
        ("signature", Cbor::Bytes(signature.to_vec())),
        ("identity", Cbor::Bytes(app.node.info().node_id.as_slice().to_vec())),
    ]);
    let mut all = vec![("status", Cbor::Text(status.into()))];
    all.extend(fields);
    all.push(("signatures", Cbor::Array(vec![node_signature])));
    Ok(cbor_response(StatusCode::OK, text_map(all)))
}

/// The fields and signed bytes of a rejected query.
fn rejected(
    code: RejectCode,
    message: &str,
    error_code: ErrorCode,
    timestamp: u64,
    rid: &MessageId,
) -> (&'static str, Vec<(&'static str, Cbor)>, Vec<u8>) {
    let error_text = error_code.to_string();
    let response = QueryResponse::Rejected {
        reject_code: u64::from(code.as_u32()),
        reject_message: message,
        error_code: Some(&error_text),
    };
    ("rejected", reject_fields(code, message, error_code), query_response_message(&response, timestamp, rid))
}

/// The read_state pipeline.
async fn read_state(app: &AppState, target: Target, version: ApiVersion, body: &[u8]) -> Result<Response, HttpError> {
    let certified = app.certified()?;
    let envelope = decode(body, RequestType::ReadState)?;
    check_target_on_subnet(target, &certified.state)?;
    let now = app.node.now_nanos();
    check_expiry(envelope.ingress_expiry, now, app.config.max_ingress_expiry_ahead, envelope.sender.is_anonymous())?;
    let (envelope, outcome) = app.authenticate(envelope, now).await?;
    let crate::envelope::RequestBody::ReadState { paths } = &envelope.body else {
        return Err(HttpError::Internal("read_state without paths".into()));
    };
    let request = ReadStateRequest {
        target,
        version,
        sender: envelope.sender,
        auth: &outcome,
        root_subnet: app.root_subnet,
        state: &certified.state,
    };
    check_paths(paths, &request)?;
    let certificate = certified.certificate(paths);
    tracing::debug!(request_id = %envelope.request_id, paths = paths.len(), height = certified.height.0, "read_state answered");
    Ok(cbor_response(StatusCode::OK, text_map([("certificate", Cbor::Bytes(certificate))])))
}

/// Browser clients (the JS agent in a dapp) need CORS: every response
/// allows any origin, and preflight requests are answered directly.
pub(crate) async fn cors(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let preflight = request.method() == Method::OPTIONS;
    let mut response = if preflight { StatusCode::NO_CONTENT.into_response() } else { next.run(request).await };
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    if preflight {
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, HEAD, OPTIONS"));
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("*"));
        headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("7200"));
    }
    response
}
