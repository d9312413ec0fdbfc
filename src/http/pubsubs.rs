//! Topic management and publishing: SSER's `/api/v1/pubsubs` endpoints, plus
//! read-only listing for dashboards and operators.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::AppState;
use super::body::{JsonBody, json_depth_exceeds};
use super::error::ApiError;
use super::principal::Principal;
use crate::hub::{NewEvent, NewTopic, Topic};
use crate::model::Retention;
use crate::sse;

#[derive(Debug, Default, Deserialize)]
pub struct CreateBody {
    #[serde(default)]
    pubsub: Option<PubSubSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PubSubSpec {
    #[serde(default)]
    persist: Option<bool>,
    #[serde(default)]
    retention: Option<RetentionSpec>,
}

/// `pubsub.retention` as the API takes it: a misspelt limit is refused by
/// name rather than silently left at its default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetentionSpec {
    #[serde(default)]
    max_events: Option<u64>,
    /// Milliseconds.
    #[serde(default)]
    max_age: Option<u64>,
    #[serde(default)]
    max_bytes: Option<u64>,
}

impl From<RetentionSpec> for Retention {
    fn from(spec: RetentionSpec) -> Self {
        Retention {
            max_events: spec.max_events,
            max_age: spec.max_age.map(std::time::Duration::from_millis),
            max_bytes: spec.max_bytes,
        }
    }
}

/// `POST /api/v1/pubsubs` → 201 `{"pubsub":{id, token, persist, created_at}}`.
pub async fn create(
    principal: Principal,
    State(state): State<Arc<AppState>>,
    body: Result<JsonBody<Option<CreateBody>>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    principal.operator()?;
    let JsonBody(body) = body?;
    let spec = body.and_then(|b| b.pubsub).unwrap_or_default();
    let topic = state
        .hub
        .create_topic(NewTopic {
            persist: spec.persist.unwrap_or(false),
            retention: spec.retention.map(Retention::from),
        })
        .await?;
    tracing::info!(topic = %topic.id, persist = topic.persist, "topic created");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "pubsub": {
                "id": &*topic.id,
                "token": topic.token().expose(),
                "persist": topic.persist,
                "created_at": rfc3339(topic.created_at_ms),
            }
        })),
    ))
}

/// `DELETE /api/v1/pubsubs/:id` → 204.
pub async fn delete(
    principal: Principal,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.operator()?;
    state.hub.delete_topic(&id).await?;
    tracing::info!(topic = %id, "topic deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/pubsubs` → every topic with its live numbers (no tokens).
pub async fn list(
    principal: Principal,
    State(state): State<Arc<AppState>>,
) -> Result<Json<Value>, ApiError> {
    principal.monitor()?;
    let mut topics = state.hub.topics();
    topics.sort_by_key(|t| std::cmp::Reverse(t.created_at_ms));
    Ok(Json(
        json!({ "pubsubs": topics.iter().map(|t| describe(t)).collect::<Vec<_>>() }),
    ))
}

/// `GET /api/v1/pubsubs/:id` → one topic.
pub async fn show(
    principal: Principal,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.monitor()?;
    let topic = state
        .hub
        .find(&id)
        .await
        .ok_or_else(|| ApiError::not_found("topic not found"))?;
    Ok(Json(json!({ "pubsub": describe(&topic) })))
}

pub(crate) fn describe(topic: &Topic) -> Value {
    let (history_events, history_bytes) = topic.history_usage();
    json!({
        "id": &*topic.id,
        "name": topic.name,
        "persist": topic.persist,
        "static": topic.is_static,
        "created_at": rfc3339(topic.created_at_ms),
        "subscribers": topic.subscriber_count(),
        "events_published": topic.published_count(),
        "last_publish_at": topic.last_publish_ms().map(rfc3339),
        "history_events": history_events,
        "history_bytes": history_bytes,
    })
}

#[derive(Debug, Deserialize)]
pub struct PublishBody {
    event: EventSpec,
}

#[derive(Debug, Deserialize)]
struct EventSpec {
    #[serde(default)]
    id: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    message: Box<RawValue>,
}

/// `POST /api/v1/pubsubs/:id/events` → 201 `{"event":{"id"}}`, where `id` is
/// the SSE id subscribers receive.
pub async fn publish(
    principal: Principal,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    body: Result<JsonBody<PublishBody>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    principal.operator()?;
    let JsonBody(body) = body?;
    tracing::Span::current().record("topic", id.as_str());
    let topic = state
        .hub
        .find(&id)
        .await
        .ok_or_else(|| ApiError::not_found("topic not found"))?;
    let spec = body.event;
    let event = validated_event(
        spec.id,
        spec.kind,
        &spec.message,
        state.max_json_depth,
        "event.",
    )?;
    let published = state.hub.publish(&topic, event).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "event": { "id": &*published.id } })),
    ))
}

/// The publish handler's path from a request body (already read within the
/// size limit) to a validated event, without a topic, `max_depth` being
/// `server.maxJsonDepth`: public so that the fuzz target
/// (`fuzz/fuzz_targets/publish_frame.rs`) drives exactly this code.
pub fn event_from_body(body: &[u8], max_depth: usize) -> Result<NewEvent, ApiError> {
    let body: PublishBody = super::body::parse_json(body)?;
    let spec = body.event;
    validated_event(spec.id, spec.kind, &spec.message, max_depth, "event.")
}

/// An event from a request body (a publish, a send), with the same rules
/// everywhere: a string message goes out as its raw text; any other JSON
/// value as compact JSON, keys in the publisher's order, if it nests no
/// deeper than `server.maxJsonDepth`; `id` and `type` must fit on one SSE
/// line. Errors name the field as the body spells it (`prefix` + field).
pub(crate) fn validated_event(
    id: Option<String>,
    kind: Option<String>,
    message: &RawValue,
    max_depth: usize,
    prefix: &str,
) -> Result<NewEvent, ApiError> {
    let raw = message.get();
    if json_depth_exceeds(raw, max_depth) {
        return Err(ApiError::bad_request(format!(
            "{prefix}message nests arrays/objects deeper than {max_depth} levels (server.maxJsonDepth)"
        )));
    }
    let data = if raw.starts_with('"') {
        serde_json::from_str::<String>(raw)
            .map_err(|e| ApiError::bad_request(format!("{prefix}message: {e}")))?
    } else {
        sse::compact_json(raw)
    };
    NewEvent::new(id, kind, data)
        .map_err(|e| ApiError::bad_request(format!("{prefix}{} {}", e.field, e.reason)))
}

pub use crate::model::rfc3339;
