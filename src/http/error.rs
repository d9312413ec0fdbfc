//! The API's error type: every failure a client can cause becomes
//! `{"error":{"code":N,"message":"..."}}` with `Content-Type: application/json`
//! (SSER's shape, without ever echoing a token back).

use axum::Json;
use axum::http::StatusCode;
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
