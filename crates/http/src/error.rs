//! HTTP-level failures and how they are answered.
//!
//! Everything that goes wrong *before* a request reaches execution is an
//! [`HttpError`]: a status code plus a plain-text explanation meant for the
//! developer reading it. Execution outcomes (traps, rejects, a canister that
//! refuses a message) are never HTTP errors: they are `200` responses with a
//! CBOR reject, built by the handlers.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// A request the HTTP layer refuses, by class.
///
/// | variant | status | when |
/// |---|---|---|
/// | `BadRequest` | 400 | malformed CBOR or envelope, bad field, expiry out of range, invalid signature, ECID mismatch |
/// | `Forbidden` | 403 | delegation targets or `queries` permissions exclude the request, read_state path not allowed |
/// | `NotFound` | 404 | ECID outside this subnet's canister ranges, unknown subnet, unknown endpoint |
/// | `PayloadTooLarge` | 413 | body over the HTTP limit, or ingress payload over 2 MiB |
/// | `TooManyRequests` | 429 | the ingress pool is full |
/// | `Unavailable` | 503 | node starting (no certified state yet) or shutting down |
/// | `Internal` | 500 | a bug (e.g. a verification task panicked) |
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    TooManyRequests(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl HttpError {
    /// The HTTP status code of this class.
    pub fn status(&self) -> StatusCode {
        match self {
            HttpError::BadRequest(_) => StatusCode::BAD_REQUEST,
            HttpError::Forbidden(_) => StatusCode::FORBIDDEN,
            HttpError::NotFound(_) => StatusCode::NOT_FOUND,
            HttpError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            HttpError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            HttpError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            HttpError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The plain-text message sent as the body.
    pub fn message(&self) -> &str {
        match self {
            HttpError::BadRequest(m)
            | HttpError::Forbidden(m)
            | HttpError::NotFound(m)
            | HttpError::PayloadTooLarge(m)
            | HttpError::TooManyRequests(m)
            | HttpError::Unavailable(m)
            | HttpError::Internal(m) => m,
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut body = match self {
            HttpError::BadRequest(m)
            | HttpError::Forbidden(m)
            | HttpError::NotFound(m)
            | HttpError::PayloadTooLarge(m)
            | HttpError::TooManyRequests(m)
            | HttpError::Unavailable(m)
            | HttpError::Internal(m) => m,
        };
        if !body.ends_with('\n') {
            body.push('\n');
        }
        let mut response = (status, body).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        response
    }
}
