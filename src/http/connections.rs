//! Who is connected, read from the registry:
//!
//! - `GET /api/v1/connections[?app=&user=&device=][&limit=][&cursor=]`: open
//!   connections, one page at a time, in connection id order;
//! - `GET /api/v1/apps/:app/users/:user`: whether a user is online, since
//!   when, and on which devices.
//!
//! The API and metrics tokens see everything (a listing without `app` is
//! every connection, topic connections included). An identity token sees
//! only its own user's connections: naming another user or application is
//! a 403, never an empty answer that would confirm nothing exists.
//!
//! Paging is by cursor (the last id of the previous page), not by offset:
//! connections come and go between requests, and an offset would then skip
//! or repeat some. With a cursor a page starts exactly after the last one
//! seen, in O(log n + limit), and a connection that stays open is listed
//! exactly once; one that opens meanwhile may or may not be.
//!
//! In a cluster both read every node (this node's registry merged with the
//! directory in Redis): a connection on another node is listed without
//! `last_event_id` (only its own node knows it), and Redis being away is a
//! 503 rather than a listing that silently leaves the other nodes out.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::principal::{Principal, Viewer};
use crate::hub::{Listed, Selector};
use crate::identity::claims::check_name;
use crate::model::rfc3339;

/// Connections per page unless `limit` says otherwise.
pub const DEFAULT_PAGE: usize = 100;
/// The largest `limit`.
pub const MAX_PAGE: usize = 1000;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    app: Option<String>,
    user: Option<String>,
    device: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
    /// Read by [`Principal`].
    #[serde(rename = "access_token")]
    _access_token: Option<String>,
}

/// `GET /api/v1/connections` → `{connections: [...], next_cursor}`.
pub async fn list(
    principal: Principal,
    State(state): State<Arc<AppState>>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let viewer = principal.viewer(&state).await?;
    for (name, value) in [
        ("app", &query.app),
        ("user", &query.user),
        ("device", &query.device),
    ] {
        if let Some(value) = value {
            check_name(value).map_err(|why| ApiError::bad_request(format!("{name} {why}")))?;
        }
    }
    let limit = page_limit(query.limit.as_deref())?;
    let (app, user) = match &viewer {
        Viewer::Monitor => (query.app.as_deref(), query.user.as_deref()),
        Viewer::Identity(identity) => {
            own_only(identity, query.app.as_deref(), query.user.as_deref())?;
            (Some(identity.app.as_str()), Some(identity.user.as_str()))
        }
    };
    let selector = match (app, user, query.device.as_deref()) {
        (None, None, None) => None,
        (Some(app), None, None) => Some(Selector::App(app)),
        (Some(app), Some(user), None) => Some(Selector::User(app, user)),
        (Some(app), Some(user), Some(device)) => Some(Selector::Device(app, user, device)),
        (None, _, _) => {
            return Err(ApiError::bad_request(
                "name the application too: ?app=<app>&user=<user> (users belong to an application)",
            ));
        }
        (Some(_), None, Some(_)) => {
            return Err(ApiError::bad_request(
                "name the user too: ?app=<app>&user=<user>&device=<device> (devices belong to a user)",
            ));
        }
    };
    let page = state
        .hub
        .connection_page(selector, query.cursor.as_deref(), limit)
        .await?;
    let connections: Vec<Value> = page.connections.iter().map(describe).collect();
    Ok(Json(json!({
        "connections": connections,
        "next_cursor": page.next,
    })))
}

/// `GET /api/v1/apps/:app/users/:user` → `{app, user, online, since, devices}`.
pub async fn user(
    principal: Principal,
    State(state): State<Arc<AppState>>,
    Path((app, user)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let viewer = principal.viewer(&state).await?;
    check_name(&app).map_err(|why| ApiError::bad_request(format!("app {why}")))?;
    check_name(&user).map_err(|why| ApiError::bad_request(format!("user {why}")))?;
    if let Viewer::Identity(identity) = &viewer {
        own_only(identity, Some(&app), Some(&user))?;
    }
    let summary = state.hub.user_summary(&app, &user).await?;
    let devices: Vec<Value> = summary
        .iter()
        .flat_map(|s| &s.devices)
        .map(|d| {
            json!({
                "device": d.device.as_deref(),
                "connections": d.connections,
                "since": rfc3339(d.since_ms),
            })
        })
        .collect();
    Ok(Json(json!({
        "app": app,
        "user": user,
        "online": summary.is_some(),
        "since": summary.map(|s| rfc3339(s.since_ms)),
        "devices": devices,
    })))
}

/// An identity may ask only about itself.
fn own_only(
    identity: &crate::identity::Identity,
    app: Option<&str>,
    user: Option<&str>,
) -> Result<(), ApiError> {
    if app.is_some_and(|a| a != identity.app) || user.is_some_and(|u| u != identity.user) {
        return Err(ApiError::forbidden(
            "an identity token may see only its own user's connections: leave out app and user, or name its own",
        ));
    }
    Ok(())
}

fn page_limit(text: Option<&str>) -> Result<usize, ApiError> {
    let Some(text) = text else {
        return Ok(DEFAULT_PAGE);
    };
    match text.parse::<usize>() {
        Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        _ => Err(ApiError::bad_request(format!(
            "limit must be a whole number from 1 to {MAX_PAGE}"
        ))),
    }
}

/// One connection as the API lists it.
fn describe(conn: &Listed) -> Value {
    let owner = conn.owner();
    json!({
        "id": conn.id(),
        "app": owner.map(|o| o.0),
        "user": owner.map(|o| o.1),
        "device": owner.and_then(|o| o.2),
        "remote_addr": conn.remote(),
        "connected_at": rfc3339(conn.opened_at_ms()),
        "streams": conn.streams(),
        "last_event_id": conn.last_event_id(),
    })
}
