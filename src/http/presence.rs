//! `GET /api/v1/presence/stream` (API token, in the header): every presence
//! change (`user_online`, `device_online`, `device_offline`,
//! `user_offline`) as an SSE event named by its kind, whose data is the
//! event's JSON (see `presence::event`).
//!
//! It is an ordinary stream of the hub, fed by the presence tracker: ids are
//! its positions, `Last-Event-ID` (or `?last_event_id=`) resumes exactly
//! after one, `earliest` replays all that history holds
//! (`pubsub.historySize` events, in memory), and an id no longer held is
//! answered with `sser.history_truncated` and everything retained, as for a
//! topic.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;

use super::AppState;
use super::error::ApiError;
use super::principal::Principal;
use super::remote::Remote;
use super::subscribe::{SubscribeQuery, resume_from, stream_response};
use crate::model::StreamKey;

/// `GET /api/v1/presence/stream[?last_event_id=…]`
pub async fn stream(
    principal: Principal,
    Remote(remote): Remote,
    State(state): State<Arc<AppState>>,
    Query(query): Query<SubscribeQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    principal.operator()?;
    let resume = resume_from(&headers, query.last_event_id.as_deref());
    let subscription = state
        .hub
        .subscribe_system(StreamKey::Presence, resume, remote)
        .await?;
    tracing::Span::current().record("conn", &*subscription.conn_id);
    Ok(stream_response(subscription))
}
