//! `POST /login {"username","password","id"}`: one of the configured
//! accounts logs in for user `id` and gets goSSE's answer, `{"token","id"}`,
//! and the same JSON (base64) in the `sse_token` cookie for the token's
//! lifetime, so that a page's `EventSource` opened `withCredentials` is
//! let in. Wrong credentials: 401 `{"error":"Invalid creds"}`, as goSSE.
//!
//! The token's user is `id`, or the username when the request has none
//! (goSSE's own client always sends one). Unlike goSSE's, the cookie is
//! `HttpOnly` (no script can read the token) and `SameSite`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::body;
use super::error::GosseError;
use super::token::{self, Blob, COOKIE};
use super::{Gosse, SameSite};
use crate::http::body::JsonBody;
use crate::http::error::ApiError;
use crate::identity::claims::check_name;

/// `POST /login`
pub async fn login(
    State(gosse): State<Arc<Gosse>>,
    body: Result<JsonBody<Value>, ApiError>,
) -> Result<Response, GosseError> {
    let body = body::object(body)?;
    let username = body::string(&body, "username")?.unwrap_or_default();
    let password = body::string(&body, "password")?.unwrap_or_default();
    let id = body::string(&body, "id")?.unwrap_or_default();
    if username.is_empty() || password.is_empty() {
        return Err(invalid_creds());
    }
    let Some(role) = gosse.accounts.check(&username, &password).await else {
        tracing::info!(role = "none", "goSSE login refused");
        return Err(invalid_creds());
    };
    let user = if id.is_empty() { &username } else { &id };
    check_name(user).map_err(|reason| GosseError::bad_request(format!("id {reason}")))?;
    let token = token::mint(&gosse, user, &username)?;
    tracing::debug!(role = role.name(), "goSSE login");

    let blob = Blob { token, id };
    let json = serde_json::to_string(&blob)
        .map_err(|_| GosseError::internal("Token generation failed"))?;
    let cookie = cookie(&gosse, &Blob::encode(&json))?;
    let mut response = (StatusCode::OK, json).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::SET_COOKIE, cookie);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

fn invalid_creds() -> GosseError {
    GosseError::unauthorized("Invalid creds")
}

/// `sse_token=<value>` for the token's lifetime, on every path of the host.
fn cookie(gosse: &Gosse, value: &str) -> Result<HeaderValue, GosseError> {
    let settings = &gosse.settings;
    let same_site = match settings.cookie_same_site {
        SameSite::Lax => "Lax",
        SameSite::Strict => "Strict",
        SameSite::None => "None",
    };
    let secure = if settings.cookie_secure {
        "; Secure"
    } else {
        ""
    };
    let text = format!(
        "{COOKIE}={value}; Path=/; Max-Age={}; HttpOnly; SameSite={same_site}{secure}",
        settings.token_ttl.as_secs()
    );
    HeaderValue::from_str(&text).map_err(|_| GosseError::internal("Token generation failed"))
}
