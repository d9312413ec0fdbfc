//! Ending connections on purpose (API token only):
//!
//! - `DELETE /api/v1/connections/:id[?reason=…][&block_seconds=…]`: one
//!   connection, topic or identity;
//! - `POST /api/v1/kick {app?, users?, devices?, reason?, block_seconds?}`:
//!   every connection of the named users (all their devices) and devices
//!   (`{user, device}` objects, as `POST /api/v1/send` names them).
//!
//! Both answer `{ended: n}`. A kicked stream gets `sser.kicked` with the
//! reason, then ends. Kicking is not revoking: the client may reconnect at
//! once with the same token (revocation is the token issuer's business),
//! unless `block_seconds` is given: then the user (or that device, for a
//! device or a connection that has one) is refused with 403 and
//! `Retry-After` until the block runs out. A block is recorded before the
//! connections are ended, so none can slip back in between.
//!
//! In a cluster both reach every node: blocks are recorded in Redis (they
//! hold on every node), connections on other nodes are ended by their own
//! node. When Redis is away, a kick that needs it answers 503.

use std::collections::HashSet;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::body::JsonBody;
use super::error::ApiError;
use super::principal::Principal;
use crate::hub::{BlockScope, EndError, EndReason, Selector};
use crate::identity::claims::check_name;
use crate::model::now_ms;

/// Longest block: a day. Longer bans are the token issuer's to enforce.
pub const MAX_BLOCK_SECONDS: u64 = 24 * 3600;
/// Most users plus devices one kick may name.
pub const MAX_KICK_TARGETS: usize = 1000;
/// Longest reason, in bytes.
pub const MAX_REASON_LEN: usize = 1024;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    reason: Option<String>,
    block_seconds: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KickBody {
    #[serde(default)]
    app: Option<String>,
    #[serde(default)]
    users: Option<Vec<String>>,
    #[serde(default)]
    devices: Option<Vec<DeviceTarget>>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    block_seconds: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
struct DeviceTarget {
    user: String,
    device: String,
}

/// `DELETE /api/v1/connections/:id` → `{ended: 1}`, or 404.
pub async fn delete(
    principal: Principal,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(query): Query<DeleteQuery>,
) -> Result<Json<Value>, ApiError> {
    principal.operator()?;
    let reason = checked_reason(query.reason)?;
    let block = match query.block_seconds.as_deref() {
        None => None,
        Some(text) => Some(block_until(text.parse().map_err(|_| {
            ApiError::bad_request("block_seconds must be a whole number of seconds")
        })?)?),
    };
    state
        .hub
        .end_connection(&id, EndReason::Kicked { reason }, block)
        .await
        .map_err(|e| match e {
            EndError::NotFound => ApiError::not_found("connection not found"),
            EndError::NoIdentity => ApiError::bad_request(
                "block_seconds needs an identity connection; this one was opened with a topic token, so there is no one to block",
            ),
            EndError::Unavailable(why) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, why),
        })?;
    Ok(Json(json!({ "ended": 1 })))
}

/// `POST /api/v1/kick` → `{ended: n}`.
pub async fn kick(
    principal: Principal,
    State(state): State<Arc<AppState>>,
    body: Result<JsonBody<KickBody>, ApiError>,
) -> Result<Json<Value>, ApiError> {
    principal.operator()?;
    let identity = state.identity.as_ref().ok_or_else(ApiError::identity_off)?;
    let JsonBody(body) = body?;
    let app = match body.app {
        Some(app) => {
            check_name(&app).map_err(|why| ApiError::bad_request(format!("app {why}")))?;
            app
        }
        None => identity.tokens.settings().default_app.clone(),
    };
    let users = dedup(body.users.unwrap_or_default());
    let devices = dedup(body.devices.unwrap_or_default());
    if users.is_empty() && devices.is_empty() {
        return Err(ApiError::bad_request(
            "name whom to kick: \"users\": [...] and/or \"devices\": [{\"user\", \"device\"}, ...]",
        ));
    }
    if users.len() + devices.len() > MAX_KICK_TARGETS {
        return Err(ApiError::bad_request(format!(
            "too many targets: at most {MAX_KICK_TARGETS} users plus devices per kick"
        )));
    }
    for user in &users {
        check_name(user).map_err(|why| ApiError::bad_request(format!("users: a name {why}")))?;
    }
    for d in &devices {
        check_name(&d.user)
            .map_err(|why| ApiError::bad_request(format!("devices: a user {why}")))?;
        check_name(&d.device)
            .map_err(|why| ApiError::bad_request(format!("devices: a device {why}")))?;
    }
    let reason = checked_reason(body.reason)?;
    let until = body.block_seconds.map(block_until).transpose()?;

    let mut selectors = Vec::with_capacity(users.len() + devices.len());
    selectors.extend(users.iter().map(|u| Selector::User(&app, u)));
    selectors.extend(
        devices
            .iter()
            .map(|d| Selector::Device(&app, &d.user, &d.device)),
    );
    let blocks: Vec<(BlockScope, u64)> = match until {
        None => Vec::new(),
        Some(until) => {
            let app: Arc<str> = Arc::from(app.as_str());
            let scope = |user: &str, device: Option<&str>| BlockScope {
                app: app.clone(),
                user: Arc::from(user),
                device: device.map(Arc::from),
            };
            users
                .iter()
                .map(|u| (scope(u, None), until))
                .chain(
                    devices
                        .iter()
                        .map(|d| (scope(&d.user, Some(&d.device)), until)),
                )
                .collect()
        }
    };
    let ended = state
        .hub
        .kick(&selectors, blocks, &EndReason::Kicked { reason })
        .await?;
    tracing::info!(ended, users = users.len(), devices = devices.len(), "kick");
    Ok(Json(json!({ "ended": ended })))
}

/// `items` in their order, each once.
fn dedup<T: Eq + std::hash::Hash + Clone>(items: Vec<T>) -> Vec<T> {
    let mut seen = HashSet::new();
    items
        .into_iter()
        .filter(|item| seen.insert(item.clone()))
        .collect()
}

fn checked_reason(reason: Option<String>) -> Result<Option<String>, ApiError> {
    match reason {
        Some(r) if r.len() > MAX_REASON_LEN => Err(ApiError::bad_request(format!(
            "reason must be at most {MAX_REASON_LEN} bytes"
        ))),
        reason => Ok(reason.filter(|r| !r.is_empty())),
    }
}

/// When a block of `seconds` from now ends (Unix ms).
fn block_until(seconds: u64) -> Result<u64, ApiError> {
    if !(1..=MAX_BLOCK_SECONDS).contains(&seconds) {
        return Err(ApiError::bad_request(format!(
            "block_seconds must be from 1 to {MAX_BLOCK_SECONDS}"
        )));
    }
    Ok(now_ms().saturating_add(seconds * 1000))
}
