//! The two body wrappers of the accept loop's service: a request body that
//! must arrive in full by a deadline (`server.requestBodyTimeout`), and a
//! response body that keeps its request counted as "in progress" until it is
//! sent or abandoned, which is what tells an idle connection from a busy one
//! (an SSE stream is a response body that never ends).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

use super::registry::ConnState;
use crate::metrics::{Cut, Metrics};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body that fails with an [`std::io::ErrorKind::TimedOut`] error
/// once its deadline passes before its end. The HTTP layer turns that error
/// into a 408 (it knows only the error kind, not this type).
pub struct DeadlineBody {
    inner: Incoming,
    deadline: Instant,
    limit: Duration,
    /// Made on the first wait only: most bodies are empty or arrive at once.
    sleep: Option<Pin<Box<Sleep>>>,
    metrics: Arc<Metrics>,
    expired: bool,
}

impl DeadlineBody {
    pub fn new(inner: Incoming, limit: Duration, metrics: Arc<Metrics>) -> DeadlineBody {
        DeadlineBody {
            inner,
            deadline: Instant::now() + limit,
            limit,
            sleep: None,
            metrics,
            expired: false,
        }
    }

    fn expire(&mut self) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if !self.expired {
            self.expired = true;
            self.metrics.connections.cut(Cut::RequestBody);
        }
        Poll::Ready(Some(Err(Box::new(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "the request body did not arrive within {} (server.requestBodyTimeout)",
                humantime::format_duration(self.limit)
            ),
        )))))
    }
}

impl Body for DeadlineBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.expired {
            return self.expire();
        }
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
        }
        let deadline = self.deadline;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        ready!(sleep.as_mut().poll(cx));
        self.expire()
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Keeps its connection's request count up while it lives.
pub struct InProgress(Arc<ConnState>);

impl InProgress {
    pub fn start(conn: &Arc<ConnState>, http2: bool) -> InProgress {
        conn.request_started(http2);
        InProgress(conn.clone())
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

/// A response body that holds its request's [`InProgress`].
pub struct TrackedBody {
    inner: axum::body::Body,
    _request: InProgress,
}

impl TrackedBody {
    pub fn new(inner: axum::body::Body, request: InProgress) -> TrackedBody {
        TrackedBody {
            inner,
            _request: request,
        }
    }
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
