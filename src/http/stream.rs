//! `GET /api/v1/stream`: one connection per identity. With an identity
//! token (header, `?access_token=` or the identity cookie) it delivers, on
//! one SSE stream, what is sent to the token's application (`@app`), its
//! user (`@user`) and its device (`@device`, when the token names one),
//! and the topics asked for with `?topic=` that the token's `topics`
//! selectors allow.
//!
//! Order of checks, so a caller learns nothing it may not know: the token
//! first (401), then each topic's id (400), whether the token allows it
//! (403, naming the topic), and only then whether it exists (404).
//!
//! Ids are resume cursors over all the connection's streams, so
//! `Last-Event-ID` (or `?last_event_id=`, or `earliest`) resumes every
//! inbox and topic exactly, including what was sent while the user was
//! offline. The stream ends with `sser.token_expired` when the token
//! expires (at the end of its `exp` second, plus the `identity.leeway` that
//! admitted it: the moment it would be refused), so the client reconnects
//! with a fresh one.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;

use super::AppState;
use super::error::ApiError;
use super::principal::Principal;
use super::remote::Remote;
use super::subscribe::{StreamQuery, cursor_from, stream_response};
use crate::hub::{ConnectSpec, Naming, Owner};
use crate::identity::Identity;
use crate::model::TopicId;

/// When an identity stream must end, with `sser.token_expired`: the first
/// instant its token no longer verifies. Verification accepts it through
/// the whole `exp` second, plus the leeway, so ending the stream any
/// earlier would let the same token straight back in.
pub fn token_end(state: &AppState, identity: &Identity) -> Option<SystemTime> {
    let leeway = state
        .identity
        .as_ref()
        .map_or(Duration::ZERO, |i| i.tokens.settings().leeway);
    identity
        .expires_at
        .map(|exp| SystemTime::UNIX_EPOCH + Duration::from_secs(exp.saturating_add(1)) + leeway)
}

/// `GET /api/v1/stream[?topic=…][&last_event_id=…][&access_token=…]`
pub async fn stream(
    principal: Principal,
    Remote(remote): Remote,
    State(state): State<Arc<AppState>>,
    Query(pairs): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let identity = principal.identity(&state).await?;
    let StreamQuery {
        topics: ids,
        last_event_id: query_last_event_id,
    } = StreamQuery::read(pairs, state.hub.settings().max_topics_per_connection)?;
    let mut topics = Vec::with_capacity(ids.len());
    for id in &ids {
        let id = TopicId::parse(id).map_err(|e| ApiError::bad_request(format!("topic {e}")))?;
        if !identity.may_follow(&id) {
            return Err(ApiError::forbidden(format!(
                "this identity may not follow topic {id}: no selector in its token's topics claim matches it"
            )));
        }
        match state.hub.find(&id).await {
            Some(topic) => topics.push(topic),
            None => return Err(ApiError::not_found(format!("topic not found: {id}"))),
        }
    }

    let expires_at = token_end(&state, &identity);
    let owner = Owner::new(&identity.app, &identity.user, identity.device.as_deref());
    let span = tracing::Span::current();
    if !ids.is_empty() {
        span.record("topic", ids.join(",").as_str());
    }
    let subscription = state
        .hub
        .connect(ConnectSpec {
            owner: Some(owner),
            topics,
            last_event_id: cursor_from(&headers, query_last_event_id),
            expires_at,
            remote,
            naming: Naming::ByStream,
            heartbeat: None,
            farewell: None,
        })
        .await?;
    span.record("conn", &*subscription.conn_id);
    tracing::debug!(
        topics = ids.len(),
        conn = %subscription.conn_id,
        device = identity.device.is_some(),
        "identity stream connected"
    );
    Ok(stream_response(subscription))
}
