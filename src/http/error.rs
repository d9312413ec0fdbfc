//! The API's error type: every failure a client can cause becomes
//! `{"error":{"code":N,"message":"..."}}` with `Content-Type: application/json`
//! (SSER's shape, without ever echoing a token back). Identity-token
//! failures add a stable `"reason"` (`token_expired`, `token_missing`, …)
//! that clients can branch on, and the `WWW-Authenticate` header of RFC 6750.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::hub::{HubError, Refusal};
use crate::identity::TokenError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// More keys of the `error` object, for a client to act on (which
    /// limit, until when); boxed so the common error stays small.
    fields: Option<Box<Map<String, Value>>>,
    /// `Retry-After`, in seconds.
    retry_after: Option<u64>,
    /// A stable machine-readable reason, for identity-token failures.
    pub reason: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            fields: None,
            retry_after: None,
            reason: None,
        }
    }

    /// Adds `key` to the `error` object (`code` and `message` stay).
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.fields
            .get_or_insert_with(Default::default)
            .insert(key.to_string(), value.into());
        self
    }

    /// Sends `Retry-After: <secs>`.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// A refused identity token: 401 with the error's code as `reason`
    /// (503 when the keys to check it are not loaded yet).
    pub fn token(e: &TokenError) -> Self {
        let status = if e.is_server_side() {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::UNAUTHORIZED
        };
        ApiError {
            reason: Some(e.code()),
            ..Self::new(status, e.to_string())
        }
    }

    /// No identity token in the request.
    pub fn token_missing(message: impl Into<String>) -> Self {
        ApiError {
            reason: Some("token_missing"),
            ..Self::new(StatusCode::UNAUTHORIZED, message)
        }
    }

    /// Identity tokens are not configured on this server.
    pub fn identity_off() -> Self {
        Self::new(
            StatusCode::NOT_IMPLEMENTED,
            "identity tokens are not enabled on this server: configure identity.secret (SSER_JWT_SECRET), identity.keys or identity.jwks",
        )
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = Map::new();
        error.insert("code".into(), json!(self.status.as_u16()));
        error.insert("message".into(), json!(self.message));
        if let Some(reason) = self.reason {
            error.insert("reason".into(), json!(reason));
        }
        if let Some(fields) = self.fields {
            for (key, value) in *fields {
                error.entry(key).or_insert(value);
            }
        }
        let mut response = (self.status, Json(json!({ "error": error }))).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.reason.is_some() && self.status == StatusCode::UNAUTHORIZED {
            let challenge = if self.reason == Some("token_missing") {
                HeaderValue::from_static("Bearer")
            } else {
                HeaderValue::from_static("Bearer error=\"invalid_token\"")
            };
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

impl From<HubError> for ApiError {
    fn from(e: HubError) -> Self {
        match e {
            HubError::NotFound => ApiError::not_found("topic not found"),
            HubError::Stopping => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is shutting down; retry on another node or later",
            ),
            HubError::StaticTopic(_) => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            HubError::Refused(refusal) => refused(refusal),
            HubError::PersistenceUnavailable => ApiError::bad_request(
                "Persistent store is not available: start the server with SSER_PERSISTENT_STORE_ENABLED=true",
            ),
            HubError::Unavailable(why) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, why),
            HubError::Store(e) => {
                tracing::error!(error = %e, "storage failure");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage is unavailable; the request was not applied",
                )
            }
        }
    }
}

/// An identity connection that was not admitted: what stopped it, named as
/// its configuration key where it is a limit.
fn refused(refusal: Refusal) -> ApiError {
    let limit = |key: &str, what: &str, limit: usize| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("too many {what}: at most {limit} ({key})"),
        )
        .with("limit", key)
        .with("max", limit)
    };
    match refusal {
        Refusal::Stopping => HubError::Stopping.into(),
        Refusal::Blocked { until_ms } => {
            let until = crate::model::rfc3339(until_ms);
            let secs = until_ms
                .saturating_sub(crate::model::now_ms())
                .div_ceil(1000);
            ApiError::forbidden(format!(
                "this identity was kicked and may not reconnect before {until}"
            ))
            .with("blocked_until", until)
            .retry_after(secs)
        }
        Refusal::DeviceBusy => ApiError::new(
            StatusCode::CONFLICT,
            "this device already has a live connection and identity.takeover is reject: close that one first",
        ),
        Refusal::TakenOver => ApiError::new(
            StatusCode::CONFLICT,
            "this connection's device was taken over by a newer connection; open a new stream to take it back",
        ),
        Refusal::UserLimit { limit: n } => limit(
            "identity.limits.maxConnectionsPerUser",
            "connections for this user",
            n,
        ),
        Refusal::IpLimit { limit: n } => limit(
            "identity.limits.maxConnectionsPerIp",
            "identity connections from this address",
            n,
        ),
        Refusal::StreamLimit { limit: n } => limit(
            "identity.limits.maxStreamsPerConnection",
            "streams for one connection",
            n,
        ),
    }
}

/// JSON for unknown paths, instead of an empty 404.
pub async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

/// Axum answers some failures itself, before any handler runs: 405 with an
/// empty body, or a plain-text 400 for a malformed path or query string.
/// This rewraps every error response that is not already JSON in the API's
/// error shape, keeping axum's explanation and its headers (a 405 still
/// carries `Allow`).
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    } else {
        text
    };
    let mut wrapped = ApiError::new(status, message).into_response();
    parts.headers.remove(header::CONTENT_TYPE);
    parts.headers.remove(header::CONTENT_LENGTH);
    wrapped.headers_mut().extend(parts.headers);
    wrapped
}
