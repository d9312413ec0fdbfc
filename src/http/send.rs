//! `POST /api/v1/send`: targeted delivery. A back-end (holding the API
//! token) sends one event to some users, some devices, or a whole
//! application:
//!
//! ```json
//! {"users": ["u1", "u2"], "devices": [{"user": "u3", "device": "phone"}],
//!  "app": "shop", "type": "order", "id": "o-17", "message": {"total": 12}}
//! ```
//!
//! Each named user's inbox and each named device's inbox gets the event
//! (devices are `{user, device}` objects: names may hold any character, so
//! no separator could be safe). With neither `users` nor `devices`, the
//! application's broadcast gets it; an empty list is refused rather than
//! taken for "everyone". `app` defaults to `identity.defaultApp`. The event
//! is validated exactly as a publish is (`id`, `type`, the message's depth).
//!
//! 201 `{app, events: [{to, user?, device?, id}], reached}`: one entry per
//! inbox (`to` is `user`, `device` or `app`; `id` the event's id in that
//! inbox's history), and how many connections it reached in all (a
//! connection following two of the inboxes counts twice). Work is
//! O(targets): inboxes are streams, never a walk over connections. What a
//! user misses while offline waits in the inbox (`identity.inbox.*`).

use std::collections::HashSet;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::AppState;
use super::body::JsonBody;
use super::error::ApiError;
use super::principal::Principal;
use super::pubsubs::validated_event;
use crate::hub::HubError;
use crate::identity::claims::check_name;
use crate::model::StreamKey;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendBody {
    #[serde(default)]
    users: Option<Vec<String>>,
    #[serde(default)]
    devices: Option<Vec<DeviceTarget>>,
    #[serde(default)]
    app: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    id: Option<String>,
    message: Box<RawValue>,
}

#[derive(Debug, Deserialize, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
struct DeviceTarget {
    user: String,
    device: String,
}

/// `POST /api/v1/send` → 201 `{app, events, reached}`.
pub async fn send(
    principal: Principal,
    State(state): State<Arc<AppState>>,
    body: Result<JsonBody<SendBody>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    principal.operator()?;
    let identity = state.identity.as_ref().ok_or_else(ApiError::identity_off)?;
    let JsonBody(body) = body?;
    let app = match body.app {
        Some(app) => {
            check_name(&app).map_err(|reason| ApiError::bad_request(format!("app {reason}")))?;
            app
        }
        None => identity.tokens.settings().default_app.clone(),
    };
    let streams = targets(&app, body.users, body.devices, identity.max_send_targets)?;
    let event = validated_event(body.id, body.kind, &body.message, state.max_json_depth, "")?;
    let sent = state.hub.send(streams, event).await.map_err(|e| match e {
        HubError::Store(e) => {
            tracing::error!(error = %e, "storage failure during a send");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage is unavailable; the event may have reached some of its targets and not others",
            )
        }
        e => ApiError::from(e),
    })?;
    let reached: usize = sent.iter().map(|s| s.reached).sum();
    let events: Vec<Value> = sent
        .iter()
        .map(|s| match &s.stream {
            StreamKey::User(key) => json!({"to": "user", "user": &*key.user, "id": &*s.id}),
            StreamKey::Device(key) => {
                json!({"to": "device", "user": &*key.user, "device": &*key.device, "id": &*s.id})
            }
            _ => json!({"to": "app", "id": &*s.id}),
        })
        .collect();
    Ok((
        StatusCode::CREATED,
        Json(json!({ "app": app, "events": events, "reached": reached })),
    ))
}

/// The inboxes a send goes to: each named user's and device's (in the
/// order given, duplicates dropped), or the application's broadcast when
/// neither list is given.
fn targets(
    app: &str,
    users: Option<Vec<String>>,
    devices: Option<Vec<DeviceTarget>>,
    max: usize,
) -> Result<Vec<StreamKey>, ApiError> {
    if users.is_none() && devices.is_none() {
        return Ok(vec![StreamKey::app(app)]);
    }
    let users = users.unwrap_or_default();
    let devices = devices.unwrap_or_default();
    if users.is_empty() && devices.is_empty() {
        return Err(ApiError::bad_request(
            "users and devices are both empty: name at least one target, or leave both out to send to the whole application",
        ));
    }
    if users.len() + devices.len() > max {
        return Err(ApiError::bad_request(format!(
            "too many targets: at most {max} users plus devices per send (identity.maxSendTargets), got {}",
            users.len() + devices.len()
        )));
    }
    let bad =
        |what: &str, i: usize, reason: &str| ApiError::bad_request(format!("{what}[{i}] {reason}"));
    let mut streams = Vec::with_capacity(users.len() + devices.len());
    let mut seen = HashSet::new();
    for (i, user) in users.iter().enumerate() {
        check_name(user).map_err(|r| bad("users", i, r))?;
        let key = StreamKey::user(app, user);
        if seen.insert(key.clone()) {
            streams.push(key);
        }
    }
    for (i, target) in devices.iter().enumerate() {
        check_name(&target.user).map_err(|r| bad("devices", i, &format!("user {r}")))?;
        check_name(&target.device).map_err(|r| bad("devices", i, &format!("device {r}")))?;
        let key = StreamKey::device(app, &target.user, &target.device);
        if seen.insert(key.clone()) {
            streams.push(key);
        }
    }
    Ok(streams)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(user: &str, device: &str) -> DeviceTarget {
        DeviceTarget {
            user: user.into(),
            device: device.into(),
        }
    }

    #[test]
    fn targets_are_inboxes_in_order_without_duplicates() {
        let keys = targets(
            "shop",
            Some(vec!["u1".into(), "u2".into(), "u1".into()]),
            Some(vec![device("u1", "phone"), device("u1", "phone")]),
            10,
        )
        .unwrap();
        assert_eq!(
            keys,
            [
                StreamKey::user("shop", "u1"),
                StreamKey::user("shop", "u2"),
                StreamKey::device("shop", "u1", "phone"),
            ]
        );
        assert_eq!(
            targets("shop", None, None, 10).unwrap(),
            [StreamKey::app("shop")]
        );
    }

    #[test]
    fn refuses_empty_lists_bad_names_and_too_many() {
        let message = |r: Result<Vec<StreamKey>, ApiError>| r.unwrap_err().message;
        assert!(message(targets("a", Some(vec![]), None, 10)).contains("both empty"));
        assert!(message(targets("a", Some(vec![]), Some(vec![]), 10)).contains("both empty"));
        assert!(message(targets("a", Some(vec!["".into()]), None, 10)).starts_with("users[0]"));
        assert!(
            message(targets("a", None, Some(vec![device("u", "a\nb")]), 10))
                .starts_with("devices[0] device")
        );
        let many = Some(vec!["x".into(); 3]);
        assert!(message(targets("a", many, None, 2)).contains("identity.maxSendTargets"));
    }
}
