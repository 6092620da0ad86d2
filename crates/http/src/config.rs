//! Tunables of the HTTP layer.

use crate::validate::DEFAULT_MAX_INGRESS_EXPIRY_AHEAD;
use std::time::Duration;

/// Interface spec version reported as `ic_api_version` by `/api/v2/status`.
pub const IC_API_VERSION: &str = "0.66.0";

/// How the HTTP layer behaves. `HttpConfig::default()` matches the
/// DFINITY replica's behaviour that clients rely on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpConfig {
    /// How long a v3/v4 call waits for a certified result before answering
    /// `202 Accepted` (the client then polls `read_state`). Default 10 s.
    pub sync_call_timeout: Duration,
    /// Largest accepted request body; larger bodies get 413. Default 4 MiB,
    /// enough for a 2 MiB ingress payload plus signatures and delegations.
    pub max_request_body_bytes: usize,
    /// Largest `method_name` + `arg` of an ingress message (spec §9: 2 MiB);
    /// larger calls get 413. Queries are bounded only by the body limit.
    pub max_ingress_payload_bytes: usize,
    /// How far in the future `ingress_expiry` may lie (5 min + 30 s drift).
    pub max_ingress_expiry_ahead: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            sync_call_timeout: Duration::from_secs(10),
            max_request_body_bytes: 4 * 1024 * 1024,
            max_ingress_payload_bytes: 2 * 1024 * 1024,
            max_ingress_expiry_ahead: DEFAULT_MAX_INGRESS_EXPIRY_AHEAD,
        }
    }
}
