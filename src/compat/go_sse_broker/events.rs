//! `GET /events`: a client's stream, as go-sse-broker's browsers open it:
//! `?token=…&device=…[&id=…]`, or the `X-SSE-Token`, `X-SSE-Device` and
//! `X-SSE-ID` headers (the query wins where both are given, as there).
//!
//! The stream is a native identity connection of the token's user with
//! `device` as its device: it follows the application's, the user's and
//! the device's inboxes, one connection per device (a newer one takes the
//! device over, and the older gets `sys_extrude_offline`). Devices belong
//! to their user: another user's device of the same name is another device.
//!
//! It starts with `sys_connected`; events carry their own name and, as
//! `id:`, a resume cursor. The last id resumes exactly: the browser's own
//! `Last-Event-ID` on a reconnect (newest, so it wins), else `id`, else
//! `X-SSE-ID`. An id the server does not know (an old numeric one from
//! go-sse-broker, or one whose events aged out) gets the explicit
//! `sser.history_truncated` notice and everything retained; `0`, as there,
//! means none. A token for another device is refused; the token is checked
//! when the stream opens, and an open stream outlives it (there, tokens
//! lived 30 s by default).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use super::envelope::{Envelope, Failure};
use super::params::Params;
use super::{Broker, method_check, system};
use crate::http::error::ApiError;
use crate::http::remote::Remote;
use crate::http::subscribe::connection_response;
use crate::hub::{ConnectSpec, Farewell, Heartbeat, Naming, Owner};
use crate::identity::claims::check_name;

const GET: &[Method] = &[Method::GET];

pub(super) async fn events(
    State(b): State<Arc<Broker>>,
    Remote(peer): Remote,
    request: Request,
) -> Response {
    let started = Instant::now();
    if let Some(early) = method_check(&request, GET, started) {
        return early;
    }
    let query = match Params::from_query(request.uri().query().unwrap_or_default()) {
        Ok(query) => query,
        Err(e) => return Envelope::new(started, Err(e)).into_response(),
    };
    match b.open(&query, request.headers(), peer).await {
        Ok(response) => response,
        Err(e) => Envelope::new(started, Err(e)).into_response(),
    }
}

/// A parameter from the query, else its header.
fn param<'a>(
    query: &'a Params,
    name: &str,
    headers: &'a HeaderMap,
    header: &str,
) -> Option<&'a str> {
    query.get(name).or_else(|| {
        headers
            .get(header)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    })
}

impl Broker {
    async fn open(
        &self,
        query: &Params,
        headers: &HeaderMap,
        peer: Option<std::net::SocketAddr>,
    ) -> Result<Response, Failure> {
        let identity = self.identity()?;
        let token = param(query, "token", headers, "x-sse-token");
        let device = param(query, "device", headers, "x-sse-device");
        let (Some(token), Some(device)) = (token, device) else {
            return Err(Failure::unauthorized("token and device is required"));
        };
        check_name(device).map_err(|why| Failure::bad_request(format!("device {why}")))?;
        let who = identity.tokens.verify(token).await.map_err(|e| {
            let e = ApiError::token(&e);
            match e.status {
                StatusCode::UNAUTHORIZED => {
                    Failure::unauthorized(format!("Invalid token: {}", e.message))
                }
                _ => Failure::from(e),
            }
        })?;
        if who.app != self.app {
            return Err(Failure::unauthorized(
                "Invalid token: it was issued for another application than compat.goSseBroker.app",
            ));
        }
        if who.device.as_deref().is_some_and(|bound| bound != device) {
            return Err(Failure::unauthorized("Invalid device"));
        }
        let last_event_id = last_event_id(query, headers);
        let farewell: Arc<dyn Farewell> = self.farewell.clone();
        let subscription = self
            .state
            .hub
            .connect(ConnectSpec {
                owner: Some(Owner::new(&who.app, &who.user, Some(device))),
                topics: Vec::new(),
                last_event_id,
                // Checked at the door only, as there (see the module doc).
                expires_at: None,
                remote: peer,
                naming: Naming::AsPublished,
                heartbeat: Some(Heartbeat {
                    every: self.settings.heartbeat_interval,
                    frame: system::heartbeat(),
                }),
                farewell: Some(farewell),
            })
            .await
            .map_err(|e| Failure::from(ApiError::from(e)))?;
        let lease = self.devices.open(device, &who.user);
        tracing::debug!(conn = %subscription.conn_id, "go-sse-broker stream connected");
        let conn_id = subscription.conn_id.clone();
        let truncated = subscription.truncated;
        let body = futures_util::stream::once(async move { Ok(system::connected(peer)) })
            .chain(subscription.into_stream())
            .map(move |frame| {
                // The device is remembered as connected until the body is
                // dropped, however the stream ends.
                let _held = &lease;
                frame
            });
        Ok(connection_response(&conn_id, truncated, body))
    }
}

/// Where the stream resumes: `Last-Event-ID`, `id`, `X-SSE-ID`, in that
/// order; `0` (go-sse-broker's "none") and empty mean live only.
fn last_event_id(query: &Params, headers: &HeaderMap) -> Option<String> {
    let id = match headers.get("last-event-id") {
        Some(value) => Some(String::from_utf8_lossy(value.as_bytes()).into_owned()),
        None => param(query, "id", headers, "x-sse-id").map(str::to_string),
    };
    id.filter(|id| !id.trim().is_empty() && id.trim() != "0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_browsers_last_event_id_wins_and_zero_means_none() {
        let mut headers = HeaderMap::new();
        headers.insert("x-sse-id", "h".parse().expect("value"));
        let q = Params::from_query("id=q").expect("query");
        assert_eq!(last_event_id(&q, &headers).as_deref(), Some("q"));
        let none = Params::default();
        assert_eq!(last_event_id(&none, &headers).as_deref(), Some("h"));
        headers.insert("last-event-id", "l".parse().expect("value"));
        assert_eq!(last_event_id(&q, &headers).as_deref(), Some("l"));
        let zero = Params::from_query("id=0").expect("query");
        assert_eq!(last_event_id(&zero, &HeaderMap::new()), None);
    }
}
