//! The SSE streams of topics:
//!
//! - `GET /api/v1/pubsubs/:id/events`: SSER's stream of one topic, frames
//!   exactly as published;
//! - `GET /api/v1/events?topic=A&topic=B`: one connection on one or several
//!   topics, each event named by its topic, ids being resume cursors over
//!   all of them (see `hub::framing`).
//!
//! Who may read comes from [`Principal::subscriber`]: the API token in the
//! header reads any topic; any other token (header, or `?access_token=`) only
//! the topics whose own token it is. Authentication comes before the topic
//! lookup, so a request without a valid token learns nothing about which
//! topics exist (401 before 404).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper::body::Frame;
use serde::Deserialize;

use super::AppState;
use super::error::ApiError;
use super::principal::Principal;
use super::remote::Remote;
use crate::hub::{FeedStream, Resume, Subscription};
use crate::model::TopicId;

/// Set when the requested `Last-Event-ID` was no longer in history.
pub const TRUNCATED_HEADER: &str = "x-sser-history-truncated";

/// The connection's id in the registry (and in logs as `conn`).
pub const CONNECTION_ID_HEADER: &str = "x-connection-id";

#[derive(Debug, Default, Deserialize)]
pub struct SubscribeQuery {
    pub last_event_id: Option<String>,
    /// Read by [`Principal`]; declared so that a repeated one is a 400, like
    /// any repeated parameter.
    #[serde(rename = "access_token")]
    _access_token: Option<String>,
}

/// `GET /api/v1/pubsubs/:id/events`
pub async fn subscribe(
    principal: Principal,
    Remote(remote): Remote,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(query): Query<SubscribeQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let who = principal.subscriber()?;
    let span = tracing::Span::current();
    let topic = match state.hub.find(&id).await {
        Some(topic) if who.may_read(&topic) => topic,
        None if who.is_operator() => return Err(ApiError::not_found("topic not found")),
        _ => return Err(ApiError::unauthorized("invalid topic token")),
    };
    span.record("topic", topic.id.as_str());

    let resume = resume_from(&headers, query.last_event_id.as_deref());
    let subscription = state.hub.subscribe(topic, resume, remote).await?;

    span.record("conn", &*subscription.conn_id);
    tracing::debug!(topic = %id, conn = %subscription.conn_id, operator = who.is_operator(), "subscriber connected");
    Ok(stream_response(subscription))
}

/// `GET /api/v1/events?topic=A&topic=B[&last_event_id=…][&access_token=…]`
pub async fn subscribe_topics(
    principal: Principal,
    Remote(remote): Remote,
    State(state): State<Arc<AppState>>,
    Query(pairs): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let who = principal.subscriber()?;
    let StreamQuery {
        topics: ids,
        last_event_id: query_last_event_id,
    } = StreamQuery::read(pairs, state.hub.settings().max_topics_per_connection)?;
    if ids.is_empty() {
        return Err(ApiError::bad_request(
            "name at least one topic: ?topic=<id>&topic=<id>",
        ));
    }
    let mut topics = Vec::with_capacity(ids.len());
    for id in &ids {
        let id = TopicId::parse(id).map_err(|e| ApiError::bad_request(format!("topic {e}")))?;
        match state.hub.find(&id).await {
            Some(topic) if who.may_read(&topic) => topics.push(topic),
            // Only the API token learns which topics exist.
            None if who.is_operator() => {
                return Err(ApiError::not_found(format!("topic not found: {id}")));
            }
            _ => return Err(ApiError::unauthorized("invalid topic token")),
        }
    }
    let span = tracing::Span::current();
    span.record("topic", ids.join(",").as_str());

    let resume = cursor_from(&headers, query_last_event_id);
    let subscription = state
        .hub
        .subscribe_topics(topics, resume.as_deref(), remote)
        .await?;
    span.record("conn", &*subscription.conn_id);
    tracing::debug!(topics = ids.len(), conn = %subscription.conn_id, operator = who.is_operator(), "subscriber connected");
    Ok(stream_response(subscription))
}

/// The query of a stream that follows several streams: its `?topic=`s
/// (sorted, duplicates dropped; at most `max_topics`) and
/// `?last_event_id=`. A repeated `last_event_id` or `access_token` is a 400.
pub(crate) struct StreamQuery {
    pub topics: Vec<String>,
    pub last_event_id: Option<String>,
}

impl StreamQuery {
    pub(crate) fn read(
        pairs: Vec<(String, String)>,
        max_topics: usize,
    ) -> Result<StreamQuery, ApiError> {
        let mut topics = Vec::new();
        let mut last_event_id = None;
        let mut tokens = 0;
        for (key, value) in pairs {
            match key.as_str() {
                "topic" => topics.push(value),
                "last_event_id" if last_event_id.is_some() => {
                    return Err(ApiError::bad_request(
                        "repeated query parameter: last_event_id",
                    ));
                }
                "last_event_id" => last_event_id = Some(value),
                "access_token" if tokens > 0 => {
                    return Err(ApiError::bad_request(
                        "repeated query parameter: access_token",
                    ));
                }
                "access_token" => tokens += 1,
                _ => {}
            }
        }
        topics.sort();
        topics.dedup();
        if topics.len() > max_topics {
            return Err(ApiError::bad_request(format!(
                "too many topics: at most {max_topics} per connection (pubsub.maxTopicsPerConnection), got {}",
                topics.len()
            )));
        }
        Ok(StreamQuery {
            topics,
            last_event_id,
        })
    }
}

/// The SSE response of a connection: its body, its id, and whether its
/// resume point was truncated.
pub fn stream_response(subscription: Subscription) -> Response {
    let truncated = subscription.truncated;
    let conn_id = subscription.conn_id.clone();
    let body = Body::new(FeedBody(subscription.into_stream()));
    with_connection_headers(&conn_id, truncated, sse_headers(body.into_response()))
}

/// A connection's stream as an HTTP body, written straight from
/// [`FeedStream::poll_frame`]: `Body::from_stream` would pass every event
/// through four adapters (and keep their state) on the way.
struct FeedBody(FeedStream);

impl hyper::body::Body for FeedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.get_mut()
            .0
            .poll_frame(cx)
            .map(|frame| frame.map(|data| Ok(Frame::data(data))))
    }
}

/// The SSE response of connection `conn_id` whose body is `stream` (its
/// subscription's stream, perhaps with a compatibility profile's frames
/// around it): the SSE headers, its id, and whether its resume point was
/// truncated.
pub(crate) fn connection_response<S>(conn_id: &str, truncated: bool, stream: S) -> Response
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, std::convert::Infallible>> + Send + 'static,
{
    with_connection_headers(conn_id, truncated, sse_response(stream))
}

/// Adds a connection's id, and whether its resume point was truncated.
fn with_connection_headers(conn_id: &str, truncated: bool, mut response: Response) -> Response {
    let conn_id = HeaderValue::from_str(conn_id).ok();
    let h = response.headers_mut();
    if truncated {
        h.insert(TRUNCATED_HEADER, HeaderValue::from_static("true"));
    }
    if let Some(id) = conn_id {
        h.insert(CONNECTION_ID_HEADER, id);
    }
    response
}

/// Where the stream starts. A reconnecting EventSource sends the
/// `Last-Event-ID` header; it is fresher than a query parameter left in the
/// URL from the first connection. Browsers send the header as UTF-8 bytes,
/// which `HeaderValue::to_str` (visible ASCII only) would refuse: decode
/// them as UTF-8, and answer bytes that are not UTF-8 explicitly.
pub fn resume_from(headers: &HeaderMap, query: Option<&str>) -> Resume {
    match headers.get("last-event-id") {
        Some(value) => match std::str::from_utf8(value.as_bytes()) {
            Ok(id) => Resume::from_last_event_id(Some(id)),
            Err(_) => Resume::Unreadable,
        },
        None => Resume::from_last_event_id(query),
    }
}

/// The cursor a multi-topic stream resumes from, header first as in
/// [`resume_from`]. Bytes that are not UTF-8 cannot be a cursor: they are
/// kept (lossily) so that they are answered as an unknown cursor, with the
/// truncation notice, never as a fresh live-only stream.
pub(crate) fn cursor_from(headers: &HeaderMap, query: Option<String>) -> Option<String> {
    match headers.get("last-event-id") {
        Some(value) => Some(String::from_utf8_lossy(value.as_bytes()).into_owned()),
        None => query,
    }
}

/// A `text/event-stream` response around `stream`, with the headers every
/// SSE endpoint sends.
pub(crate) fn sse_response<S>(stream: S) -> Response
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, std::convert::Infallible>> + Send + 'static,
{
    sse_headers(Body::from_stream(stream).into_response())
}

/// The headers (and the CORS marker) of every SSE response.
fn sse_headers(mut response: Response) -> Response {
    response.extensions_mut().insert(super::cors::LongLived);
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
