//! Where tokens come from, and the extractors that check them.
//!
//! Tokens are accepted as `Authorization: Bearer <t>` or SSER's bare
//! `Authorization: <t>`. Only subscribing also reads `?access_token=` (what a
//! browser's EventSource can send), and only when the header is absent.
//! Comparison is constant-time ([`crate::secret::Secret::matches`]); no token
//! is ever logged or put in a response.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, request::Parts};

use super::AppState;
use super::error::ApiError;

/// The token in the `Authorization` header, if any.
pub fn header_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let token = match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => value,
    };
    Some(token).filter(|t| !t.is_empty())
}

/// Proof that the request carries the API token (create, delete, publish).
pub struct ApiToken;

impl FromRequestParts<Arc<AppState>> for ApiToken {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        match header_token(&parts.headers) {
            None => Err(ApiError::unauthorized(
                "missing API token: send Authorization: Bearer <token>",
            )),
            Some(t) if state.api_token.matches(t) => Ok(ApiToken),
            Some(_) => Err(ApiError::unauthorized("invalid API token")),
        }
    }
}

/// Proof that the request may read metrics: the metrics token, or the API
/// token (an operator may do everything a monitor may).
pub struct MetricsToken;

impl FromRequestParts<Arc<AppState>> for MetricsToken {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        match header_token(&parts.headers) {
            None => Err(ApiError::unauthorized(
                "missing metrics token: send Authorization: Bearer <token>",
            )),
            Some(t) if state.metrics_token.matches(t) || state.api_token.matches(t) => {
                Ok(MetricsToken)
            }
            Some(_) => Err(ApiError::unauthorized("invalid metrics token")),
        }
    }
}
