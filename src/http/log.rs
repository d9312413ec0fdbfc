//! One log line per request: method, path (never the query, which may hold
//! a token), status, latency, request id, and the topic and subscriber
//! connection where handlers record them.
//!
//! Unlike tower-http's `TraceLayer`, this wraps only the handler's future,
//! not the response body: an SSE body is polled once per event for hours, and
//! entering a span and reading the clock on every frame was measurable on the
//! fan-out path. Lines a stream logs while it runs carry `topic` and `conn`
//! themselves (see `hub::feed`); this request line ties `conn` to the
//! request id.

use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use tower_http::request_id::RequestId;
use tracing::Instrument;

pub async fn log_request(req: Request, next: Next) -> Response {
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or("-")
        .to_string();
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        path = %req.uri().path(),
        request_id,
        topic = tracing::field::Empty,
        conn = tracing::field::Empty,
    );
    let started = Instant::now();
    let response = next.run(req).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let _entered = span.enter();
    if status >= 500 {
        tracing::error!(status, latency_ms, "finished processing request");
    } else {
        tracing::info!(status, latency_ms, "finished processing request");
    }
    response
}
