//! The API's error type: every failure a client can cause becomes
//! `{"error":{"code":N,"message":"..."}}` with `Content-Type: application/json`
//! (SSER's shape, without ever echoing a token back). Identity-token
//! failures add a stable `"reason"` (`token_expired`, `token_missing`, …)
//! that clients can branch on, and the `WWW-Authenticate` header of RFC 6750.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::hub::HubError;
use crate::identity::TokenError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// A stable machine-readable reason, for identity-token failures.
    pub reason: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            reason: None,
        }
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
            status,
            message: e.to_string(),
            reason: Some(e.code()),
        }
    }

    /// No identity token in the request.
    pub fn token_missing(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: message.into(),
            reason: Some("token_missing"),
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
        let mut error = json!({ "code": self.status.as_u16(), "message": self.message });
        if let Some(reason) = self.reason {
            error["reason"] = json!(reason);
        }
        let mut response = (self.status, Json(json!({ "error": error }))).into_response();
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
            HubError::PersistenceUnavailable => ApiError::bad_request(
                "Persistent store is not available: start the server with SSER_PERSISTENT_STORE_ENABLED=true",
            ),
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
