//! `GET /health` → `{"status":"ok"}`, and `/` → 301 to it, as the original
//! answers them (its load balancers and compose files probe these).

use axum::Json;
use axum::extract::OriginalUri;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// `GET /health`
pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /`: a permanent redirect to `/health`, under the profile's prefix
/// when it has one (`/ns` → `/ns/health`).
pub async fn root(OriginalUri(uri): OriginalUri) -> Response {
    let location = format!("{}/health", uri.path().trim_end_matches('/'));
    match HeaderValue::from_str(&location) {
        Ok(location) => (
            StatusCode::MOVED_PERMANENTLY,
            [(header::LOCATION, location)],
        )
            .into_response(),
        // A path axum routed is always a valid header value.
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}
