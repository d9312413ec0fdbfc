//! `GET /api/v1/pubsubs/:id/events`: the SSE stream of one topic.
//!
//! Authentication comes before the topic lookup, so a request without a valid
//! token learns nothing about which topics exist (401 before 404). The topic's
//! own token or (in the header only) the API token is accepted: the latter
//! lets an operator tail any topic.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::auth::header_token;
use super::error::ApiError;
use crate::hub::Resume;

/// Set when the requested `Last-Event-ID` was no longer in history.
pub const TRUNCATED_HEADER: &str = "x-sser-history-truncated";

#[derive(Debug, Default, Deserialize)]
pub struct SubscribeQuery {
    access_token: Option<String>,
    last_event_id: Option<String>,
}

pub async fn subscribe(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(query): Query<SubscribeQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let header = header_token(&headers);
    let token = match header {
        Some(t) => t,
        None => query.access_token.as_deref().filter(|t| !t.is_empty()).ok_or_else(|| {
            ApiError::unauthorized(
                "missing topic token: send Authorization: Bearer <token> or ?access_token=<token>",
            )
        })?,
    };
    // The API token is honoured only in the header: a query string ends up
    // in proxy logs and browser history, and that token can do everything.
    let is_operator = header.is_some() && state.api_token.matches(token);
    let span = tracing::Span::current();
    let topic = match state.hub.get(&id) {
        Some(topic) if is_operator || topic.token_matches(token) => topic,
        None if is_operator => return Err(ApiError::not_found("topic not found")),
        _ => return Err(ApiError::unauthorized("invalid topic token")),
    };
    span.record("topic", &*topic.id);

    let resume = resume_from(&headers, query.last_event_id.as_deref());
    let subscription = state.hub.subscribe(topic, resume).await?;

    span.record("conn", &*subscription.conn_id);
    tracing::debug!(topic = %id, conn = %subscription.conn_id, operator = is_operator, "subscriber connected");
    let truncated = subscription.truncated;
    let mut response = sse_response(subscription.into_stream());
    if truncated {
        response
            .headers_mut()
            .insert(TRUNCATED_HEADER, HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// Where the stream starts. A reconnecting EventSource sends the
/// `Last-Event-ID` header; it is fresher than a query parameter left in the
/// URL from the first connection. Browsers send the header as UTF-8 bytes,
/// which `HeaderValue::to_str` (visible ASCII only) would refuse: decode
/// them as UTF-8, and answer bytes that are not UTF-8 explicitly.
fn resume_from(headers: &HeaderMap, query: Option<&str>) -> Resume {
    match headers.get("last-event-id") {
        Some(value) => match std::str::from_utf8(value.as_bytes()) {
            Ok(id) => Resume::from_last_event_id(Some(id)),
            Err(_) => Resume::Unreadable,
        },
        None => Resume::from_last_event_id(query),
    }
}

/// A `text/event-stream` response around `stream`, with the headers every
/// SSE endpoint sends.
pub(crate) fn sse_response<S>(stream: S) -> Response
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, std::convert::Infallible>> + Send + 'static,
{
    let mut response = Body::from_stream(stream).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Tells nginx (and compatible proxies) not to buffer the stream.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}
