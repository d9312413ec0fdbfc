//! `POST /broadcast {"content","type"?,"user"?}` with a broadcaster's or
//! an admin's token → 201. goSSE's routing, first rule that applies:
//!
//! - `user`: that user's connections (whatever their type) — a send to
//!   the user's inbox (`hub::Hub::send`);
//! - `type`: the connections that subscribed with `?type=<type>` — a
//!   publish on that type's topic (see `types`); nobody subscribed, no
//!   topic, nothing to do;
//! - neither: everyone — a send to the goSSE application's broadcast.
//!
//! The event is named by `type` (or unnamed: a `message` event), its data
//! is `content`, split into `data:` lines (goSSE wrote a multi-line content
//! as one broken frame). Unlike goSSE, a client's token cannot broadcast
//! (403), and a bad body is a 400 that leaves the server running.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

use super::Gosse;
use super::body;
use super::error::GosseError;
use super::token;
use super::types;
use crate::http::body::JsonBody;
use crate::http::error::ApiError;
use crate::hub::NewEvent;
use crate::identity::claims::check_name;
use crate::model::StreamKey;

/// `POST /broadcast` → 201, empty body.
pub async fn broadcast(
    State(gosse): State<Arc<Gosse>>,
    headers: HeaderMap,
    body: Result<JsonBody<Value>, ApiError>,
) -> Result<StatusCode, GosseError> {
    let caller = token::broadcaster(&gosse, &headers).await?;
    if !caller.role.may_broadcast() {
        return Err(GosseError::forbidden(format!(
            "account {:?} is a {} and may not broadcast: only broadcaster and admin accounts may",
            caller.username,
            caller.role.name()
        )));
    }
    let body = body::object(body)?;
    let content = body::string(&body, "content")?.unwrap_or_default();
    let kind = body::string(&body, "type")?;
    let user = body::string(&body, "user")?;
    let event = NewEvent::new(None, kind.clone(), content)
        .map_err(|e| GosseError::bad_request(format!("{} {}", e.field, e.reason)))?;
    let app = gosse.settings.app.as_str();

    let reached = match (user, kind) {
        (Some(user), _) => {
            check_name(&user)
                .map_err(|reason| GosseError::bad_request(format!("user {reason}")))?;
            send(&gosse, StreamKey::user(app, &user), event).await?
        }
        (None, Some(kind)) => {
            let id = types::topic_id(&gosse.settings.type_topic_prefix, &kind)?;
            match gosse.hub.get(&id) {
                Some(topic) => {
                    gosse.hub.publish(&topic, event).await?;
                    topic.subscriber_count()
                }
                None => 0,
            }
        }
        (None, None) => send(&gosse, StreamKey::app(app), event).await?,
    };
    tracing::debug!(reached, role = caller.role.name(), "goSSE broadcast");
    Ok(StatusCode::CREATED)
}

/// A send to one inbox; how many connections it reached.
async fn send(gosse: &Gosse, stream: StreamKey, event: NewEvent) -> Result<usize, GosseError> {
    let sent = gosse.hub.send(vec![stream], event).await?;
    Ok(sent.iter().map(|s| s.reached).sum())
}
