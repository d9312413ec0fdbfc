//! `/admin/stop`: an admin account stops the server gracefully, as goSSE's
//! did (streams are told, the store flushed, exit 0). goSSE skipped the
//! admin check when the URL had a query string (`/admin/stop?x`); here the
//! role comes from the token's account, whatever the URL: any other
//! account gets 403 and nothing stops.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use super::Gosse;
use super::accounts::Role;
use super::error::GosseError;
use super::token;

/// `GET` or `POST /admin/stop` → 200, then the server shuts down.
pub async fn stop(
    State(gosse): State<Arc<Gosse>>,
    headers: HeaderMap,
) -> Result<StatusCode, GosseError> {
    let jwt = token::bearer(&headers).ok_or_else(|| {
        GosseError::unauthorized("Token not found: send Authorization: Bearer <an admin's token>")
    })?;
    let caller = token::verify(&gosse, jwt).await?;
    if caller.role != Role::Admin {
        return Err(GosseError::forbidden(format!(
            "User not allowed: account {:?} is a {}, and only admin accounts may stop the server",
            caller.username,
            caller.role.name()
        )));
    }
    tracing::warn!("goSSE admin asked the server to stop (/admin/stop)");
    gosse.shutdown.cancel();
    Ok(StatusCode::OK)
}
