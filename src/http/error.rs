//! The API's error type: every failure a client can cause becomes
//! `{"error":{"code":N,"message":"..."}}` with `Content-Type: application/json`
//! (SSER's shape, without ever echoing a token back).

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::hub::HubError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
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
        let body = json!({
            "error": { "code": self.status.as_u16(), "message": self.message }
        });
        (self.status, Json(body)).into_response()
    }
}

impl From<HubError> for ApiError {
    fn from(e: HubError) -> Self {
        match e {
            HubError::NotFound => ApiError::not_found("topic not found"),
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
