//! `POST /api/v1/tokens`: a back-end (holding the API token) asks for an
//! identity token for one of its users, to hand to that user's browser or
//! app, so it need not sign JWTs itself.
//!
//! Body `{user, app?, device?, topics?, ttl?}` (`ttl` in seconds) → 201
//! `{token, expires_at, exp}`: the token, its expiry as RFC 3339 and as Unix
//! seconds (the token's own `exp` claim). Fields follow the rules claims do
//! (see `identity::mint`): a bad one gets 400 naming it; 501 when the server
//! has no key to sign with (or identity is off).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::body::JsonBody;
use super::error::ApiError;
use super::principal::Principal;
use crate::identity::{MintError, MintRequest};
use crate::model::rfc3339;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MintBody {
    user: String,
    #[serde(default)]
    app: Option<String>,
    #[serde(default)]
    device: Option<String>,
    #[serde(default)]
    topics: Option<Vec<String>>,
    /// Seconds.
    #[serde(default)]
    ttl: Option<u64>,
}

/// `POST /api/v1/tokens` → 201 `{token, expires_at, exp}`.
pub async fn mint(
    principal: Principal,
    State(state): State<Arc<AppState>>,
    body: Result<JsonBody<MintBody>, ApiError>,
) -> Result<Response, ApiError> {
    principal.operator()?;
    let identity = state.identity.as_ref().ok_or_else(ApiError::identity_off)?;
    let JsonBody(body) = body?;
    let request = MintRequest {
        user: body.user,
        app: body.app,
        device: body.device,
        topics: body.topics,
        ttl: body.ttl.map(Duration::from_secs),
        extra: Default::default(),
    };
    let minted = identity.tokens.mint(request).map_err(|e| match e {
        MintError::NoSigningKey => ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            format!("{e} (identity.secret, or an identity.keys entry with a privateKey)"),
        ),
        MintError::Signing => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        MintError::Ttl { .. } | MintError::InvalidField { .. } => {
            ApiError::bad_request(e.to_string())
        }
    })?;
    let mut response = (
        StatusCode::CREATED,
        Json(json!({
            "token": minted.token.expose(),
            "expires_at": rfc3339(minted.expires_at.saturating_mul(1000)),
            "exp": minted.expires_at,
        })),
    )
        .into_response();
    // A credential: no cache may keep it.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
