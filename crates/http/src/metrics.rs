//! Prometheus metrics of the HTTP layer, and the registry `/metrics` serves.
//!
//! [`Metrics`] owns the one [`Registry`] of the process. The node registers
//! its own metrics through [`Metrics::registry_mut`] *before* handing it to
//! [`crate::router`], which freezes it and serves it at `GET /metrics`
//! (prometheus-client registries cannot take registrations once shared, but
//! the registered metrics themselves stay live: they are `Arc`s inside).
//!
//! HTTP metrics, all prefixed `cairn_http_`:
//! * `requests_total{endpoint, status_class}`: requests by route template
//!   (e.g. `/api/v4/canister/{ecid}/call`) and `2xx`/`4xx`/`5xx`;
//! * `request_duration_seconds{endpoint}`: latency histograms;
//! * `requests_in_flight`: requests being handled now;
//! * `sync_calls_total{outcome}`: how v3/v4 calls ended (`certified`,
//!   `non_replicated_rejection`, `timeout`).

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Instant;

/// Labels of `requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: String,
    status_class: &'static str,
}

/// Labels of `request_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: String,
}

/// Labels of `sync_calls_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms .. ~16 s: queries are fast, sync calls wait up to the timeout.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The HTTP layer's metric handles (cheap to clone: all `Arc`s).
#[derive(Clone)]
pub(crate) struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<EndpointLabels, Histogram, fn() -> Histogram>,
    in_flight: Gauge,
    sync_calls: Family<OutcomeLabels, Counter>,
}

impl HttpMetrics {
    fn register(registry: &mut Registry) -> HttpMetrics {
        let m = HttpMetrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            in_flight: Gauge::default(),
            sync_calls: Family::default(),
        };
        let r = registry.sub_registry_with_prefix("cairn_http");
        r.register("requests", "HTTP requests by endpoint and status class", m.requests.clone());
        r.register("request_duration_seconds", "HTTP request latency by endpoint", m.latency.clone());
        r.register("requests_in_flight", "HTTP requests being handled", m.in_flight.clone());
        r.register("sync_calls", "How synchronous (v3/v4) calls ended", m.sync_calls.clone());
        m
    }

    /// Counts a synchronous call's outcome.
    pub(crate) fn sync_call(&self, outcome: &'static str) {
        self.sync_calls.get_or_create(&OutcomeLabels { outcome }).inc();
    }
}

/// The process's metrics registry, with the HTTP metrics already in it.
pub struct Metrics {
    registry: Registry,
    pub(crate) http: HttpMetrics,
}

impl Metrics {
    /// A fresh registry holding the HTTP metrics.
    pub fn new() -> Metrics {
        Metrics::with_registry(Registry::default())
    }

    /// Adds the HTTP metrics to a registry the caller already filled.
    pub fn with_registry(mut registry: Registry) -> Metrics {
        let http = HttpMetrics::register(&mut registry);
        Metrics { registry, http }
    }

    /// The registry, for the node to register its own metrics before the
    /// router is built.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Splits into the frozen registry (served at `/metrics`) and the handles.
    pub(crate) fn into_parts(self) -> (Arc<Registry>, HttpMetrics) {
        (Arc::new(self.registry), self.http)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// The OpenMetrics text exposition of a registry.
pub(crate) fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    // Encoding into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

/// Keeps `requests_in_flight` right even when a client disconnects and the
/// request future is dropped midway.
struct InFlight(Gauge);

impl InFlight {
    fn enter(gauge: &Gauge) -> InFlight {
        gauge.inc();
        InFlight(gauge.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Tower middleware: counts, times and logs every request.
pub(crate) async fn track(State(metrics): State<HttpMetrics>, request: Request, next: Next) -> Response {
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = request.method().clone();
    let uri = request.uri().path().to_string();
    let started = Instant::now();
    let in_flight = InFlight::enter(&metrics.in_flight);
    let response = next.run(request).await;
    drop(in_flight);
    let elapsed = started.elapsed();
    let status = response.status();
    let status_class = match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics.requests.get_or_create(&RequestLabels { endpoint: endpoint.clone(), status_class }).inc();
    metrics.latency.get_or_create(&EndpointLabels { endpoint }).observe(elapsed.as_secs_f64());
    tracing::debug!(%method, path = %uri, status = status.as_u16(), elapsed_ms = elapsed.as_secs_f64() * 1e3, "http request");
    response
}
