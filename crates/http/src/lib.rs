//! The Internet Computer's public HTTP interface, served by a Cairn node.
//!
//! Unmodified IC clients talk to this crate: `ic-agent` (v4 sync calls, v3
//! queries and read_state, v2 status, signed queries), the JS agent
//! `@icp-sdk/core` (v4 calls with a v2 fallback) and `ic-py` (v2 only).
//! The node is reached only through the [`NodeApi`] trait.
//!
//! # Use
//!
//! ```no_run
//! # async fn run(node: std::sync::Arc<dyn cairn_http::NodeApi>, node_metrics: impl Fn(&mut prometheus_client::registry::Registry)) -> std::io::Result<()> {
//! let mut metrics = cairn_http::Metrics::new();
//! node_metrics(metrics.registry_mut()); // the node adds its own metrics
//! let app = cairn_http::router(node, cairn_http::HttpConfig::default(), metrics);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:4943").await?;
//! axum::serve(listener, app).await
//! # }
//! ```
//!
//! # Endpoints
//!
//! | endpoint | answer |
//! |---|---|
//! | `GET /api/v2/status` | CBOR `{ic_api_version, impl_version, root_key, replica_health_status, certified_height?}` |
//! | `POST /api/v2/canister/<ecid>/call` | `202` accepted; `200 {reject_code, reject_message, error_code}` if refused before consensus |
//! | `POST /api/v3/canister/<ecid>/call`, `/api/v4/canister/<ecid>/call` | `200 {status: "replied", certificate}` once certified (any final state); `200 {status: "non_replicated_rejection", reject_code, reject_message, error_code}`; `202` after [`HttpConfig::sync_call_timeout`] |
//! | `POST /api/v4/subnet/<esid>/call` | as v4, for the management canister's `create_canister` / `provisional_create_canister_with_cycles` |
//! | `POST /api/v2/canister/<ecid>/query`, `/api/v3/...` | `200 {status: "replied", reply: {arg}, signatures}` or `200 {status: "rejected", reject_code, reject_message, error_code, signatures}` |
//! | `POST /api/v3/subnet/<esid>/query` | as above, for `list_canisters` only |
//! | `POST /api/v2/canister/<ecid>/read_state`, `/api/v3/...`, `/api/v3/subnet/<esid>/read_state` | `200 {certificate}` |
//! | `GET /metrics` | Prometheus (OpenMetrics) text |
//!
//! CBOR responses carry the self-describe tag and `Content-Type:
//! application/cbor`; query responses are signed with the node key
//! ([`NodeApi::sign`], spec §5.6). Every response allows CORS from any origin.
//!
//! # Failures
//!
//! Requests refused by the HTTP layer get a plain-text body saying what is
//! wrong, with the status of [`HttpError`]: 400 malformed (bad CBOR, missing
//! or mistyped field, expiry out of range, bad signature, ECID mismatch), 403
//! forbidden (delegation scope, read_state path), 404 (ECID or ESID not on
//! this subnet, unknown endpoint), 413 too large, 429 ingress pool full, 503
//! node starting or stopping. Execution outcomes are never HTTP errors.
//!
//! # Modules
//!
//! * [`envelope`]: decoding untrusted CBOR into an [`envelope::Envelope`] and the request id.
//! * [`validate`]: expiry, effective canister id, subnet membership, authentication.
//! * [`permissions`]: read_state path permissions (spec §5.5).
//! * [`cbor`]: bounded CBOR decoding and tagged encoding.
//! * [`metrics`]: the registry and the HTTP metrics.

pub mod cbor;
pub mod config;
pub mod envelope;
pub mod error;
mod handlers;
pub mod metrics;
pub mod node_api;
pub mod permissions;
pub mod validate;

pub use config::{HttpConfig, IC_API_VERSION};
pub use error::HttpError;
pub use metrics::Metrics;
pub use node_api::{BoxFuture, NodeApi, NodeInfo, SignedIngress, SubmitError};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use handlers::AppState;
use std::sync::Arc;

/// Builds the HTTP interface of a node.
///
/// `metrics` holds the process's metrics registry: register the node's own
/// metrics through [`Metrics::registry_mut`] first; `GET /metrics` serves
/// everything in it. The router is ready for `axum::serve` (or
/// `tower::ServiceExt::oneshot` in tests).
pub fn router(node: Arc<dyn NodeApi>, config: HttpConfig, metrics: Metrics) -> Router {
    let (registry, http_metrics) = metrics.into_parts();
    let root_subnet = permissions::root_subnet(&node.info().root_key_der).get();
    let body_limit = config.max_request_body_bytes;
    let state = AppState { node, config: Arc::new(config), metrics: http_metrics.clone(), registry, root_subnet };
    Router::new()
        .route("/api/v2/status", get(handlers::status))
        .route("/api/v2/canister/{ecid}/call", post(handlers::call_v2))
        .route("/api/v3/canister/{ecid}/call", post(handlers::call_sync))
        .route("/api/v4/canister/{ecid}/call", post(handlers::call_sync))
        .route("/api/v4/subnet/{esid}/call", post(handlers::subnet_call))
        .route("/api/v2/canister/{ecid}/query", post(handlers::query))
        .route("/api/v3/canister/{ecid}/query", post(handlers::query))
        .route("/api/v3/subnet/{esid}/query", post(handlers::subnet_query))
        .route("/api/v2/canister/{ecid}/read_state", post(handlers::read_state_v2))
        .route("/api/v3/canister/{ecid}/read_state", post(handlers::read_state_v3))
        .route("/api/v3/subnet/{esid}/read_state", post(handlers::subnet_read_state))
        .route("/metrics", get(handlers::metrics))
        .fallback(handlers::fallback)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
        .layer(axum::middleware::from_fn(handlers::cors))
        .layer(axum::middleware::from_fn_with_state(http_metrics, metrics::track))
}
