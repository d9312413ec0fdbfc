//! `GET /connections/{app}` and `GET /connections/{app}/{user}`: who is
//! connected, from the registry, in the original's JSON shape:
//!
//! ```json
//! {"user-1": {"conn-1": {"id": "conn-1", "created_at": 1728135324,
//!   "remote_addr": "", "application": {"id": "app-1"}, "user": {"id": "user-1"}}}}
//! ```
//!
//! (the second drops the outer user level), and `204` with no body when
//! nobody is connected. Every identity connection of the application is
//! listed, whichever API opened it. `remote_addr` stays `""` as in the
//! original: any token of the application may list, and its users'
//! addresses are not theirs to see.
//!
//! Only a token of that application (or the API token) may list it: the
//! original let any valid token list any application.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::NsState;
use super::auth::{self, Caller};
use crate::http::error::ApiError;
use crate::hub::{Listed, Selector};

/// `GET /connections/{app}` → `{user: {conn_id: Connection}}`, or 204.
pub async fn by_app(
    State(ns): State<NsState>,
    Path(app): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    allowed(&ns, &headers, &uri, &app).await?;
    let mut users: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for conn in all(&ns, Selector::App(&app)).await? {
        if let Some((_, user, _)) = conn.owner() {
            users
                .entry(user.to_string())
                .or_default()
                .insert(conn.id().to_string(), entry(&conn));
        }
    }
    Ok(listing(json!(users)))
}

/// `GET /connections/{app}/{user}` → `{conn_id: Connection}`, or 204.
pub async fn by_user(
    State(ns): State<NsState>,
    Path((app, user)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    allowed(&ns, &headers, &uri, &app).await?;
    let conns: Map<String, Value> = all(&ns, Selector::User(&app, &user))
        .await?
        .iter()
        .map(|conn| (conn.id().to_string(), entry(conn)))
        .collect();
    Ok(listing(Value::Object(conns)))
}

/// 200 with the object, or 204 when it is empty.
fn listing(value: Value) -> Response {
    match value.as_object().is_some_and(Map::is_empty) {
        true => StatusCode::NO_CONTENT.into_response(),
        false => Json(value).into_response(),
    }
}

/// A token of `app`, or the API token; 403 for another application's.
async fn allowed(ns: &NsState, headers: &HeaderMap, uri: &Uri, app: &str) -> Result<(), ApiError> {
    match auth::caller(&ns.ctx.state, headers, uri).await? {
        Caller::Operator => Ok(()),
        Caller::Identity(identity) if identity.app == app => Ok(()),
        Caller::Identity(identity) => Err(ApiError::forbidden(format!(
            "this token is for application {:?}: it may list only that application's connections",
            identity.app
        ))),
    }
}

/// Every connection `selector` picks, on every node of a cluster, page by
/// page (no lock held between).
async fn all(ns: &NsState, selector: Selector<'_>) -> Result<Vec<Listed>, ApiError> {
    Ok(ns.ctx.state.hub.all_connections(selector).await?)
}

/// One connection in the original's shape.
fn entry(conn: &Listed) -> Value {
    let (app, user) = conn.owner().map_or(("", ""), |(app, user, _)| (app, user));
    json!({
        "id": conn.id(),
        "created_at": conn.opened_at_ms() / 1000,
        "remote_addr": "",
        "application": {"id": app},
        "user": {"id": user},
    })
}
