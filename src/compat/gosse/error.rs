//! goSSE's error shape: `{"error":"<message>"}` (its login's 401 is
//! exactly `{"error":"Invalid creds"}`), with a status that says whose
//! fault it was and a message that says what to change. Never a token.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::http::error::ApiError;

#[derive(Debug)]
pub struct GosseError {
    pub status: StatusCode,
    pub message: String,
}

impl GosseError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        GosseError {
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

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

/// The native layer's errors (a body over the size limit, a refused
/// connection, a storage failure) in goSSE's shape, same status.
impl From<ApiError> for GosseError {
    fn from(e: ApiError) -> Self {
        GosseError::new(e.status, e.message)
    }
}

impl From<crate::hub::HubError> for GosseError {
    fn from(e: crate::hub::HubError) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for GosseError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}
