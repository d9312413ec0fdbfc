//! `GET /events?type=<t>`: the stream goSSE's clients (`tinyClientSSE`,
//! a page's `EventSource`) hold. The token comes as goSSE sends it: the
//! `?token=` query parameter or the `sse_token` cookie (base64 of
//! `{"token","id"}`), or `Authorization: Bearer`.
//!
//! One identity connection (`hub::Hub::connect`) follows the goSSE
//! application's broadcast, the user's inbox and the type's topic, so it
//! gets exactly what goSSE sent it: untyped broadcasts, messages to its
//! user, broadcasts of its type. Events keep goSSE's names (the type, or
//! none: `onmessage`); unlike goSSE's, they have ids, so a reconnecting
//! `EventSource` resumes with `Last-Event-ID` and misses nothing; headers
//! go out at once and heartbeats keep proxies from closing an idle stream.
//!
//! As in goSSE, the token is checked when the stream opens; the stream is
//! not ended when it expires later (goSSE's clients cannot renew it).

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;

use super::Gosse;
use super::error::GosseError;
use super::token::{self, Blob, COOKIE};
use super::types;
use crate::http::principal::cookie_token;
use crate::http::remote::Remote;
use crate::http::subscribe::{cursor_from, stream_response};
use crate::hub::{ConnectSpec, Naming, Owner};

/// `GET /events[?type=…][&token=…][&last_event_id=…]`
pub async fn events(
    State(gosse): State<Arc<Gosse>>,
    Remote(remote): Remote,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, GosseError> {
    // Read leniently, as Go's `URL.Query()` does: a malformed query string
    // is no reason to refuse a stream.
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let param = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let (jwt, claimed_id) = match token::bearer(&headers) {
        Some(jwt) => (jwt.to_string(), None),
        None => {
            let raw = match param("token") {
                Some(raw) => raw.to_string(),
                None => cookie_token(&headers, COOKIE).ok_or_else(|| {
                    GosseError::unauthorized(
                        "No cookie with token: log in first (POST /login sets the sse_token cookie), or pass ?token=",
                    )
                })?,
            };
            let blob = Blob::decode(&raw)?;
            (blob.token, Some(blob.id).filter(|id| !id.is_empty()))
        }
    };
    let caller = token::verify(&gosse, &jwt).await?;
    if let Some(id) = claimed_id
        && id != caller.identity.user
    {
        return Err(GosseError::unauthorized(
            "Invalid token: its id is not the user the token was issued for (log in with that id)",
        ));
    }
    let kind = param("type").unwrap_or(types::DEFAULT_TYPE);
    let topic = types::topic_for(&gosse, kind).await?;
    let identity = &caller.identity;
    let subscription = gosse
        .hub
        .connect(ConnectSpec {
            owner: Some(Owner::new(&identity.app, &identity.user, None)),
            topics: vec![topic],
            last_event_id: cursor_from(&headers, param("last_event_id").map(str::to_string)),
            expires_at: None,
            remote,
            naming: Naming::AsPublished,
            heartbeat: None,
            farewell: None,
        })
        .await?;
    tracing::debug!(
        conn = %subscription.conn_id,
        role = caller.role.name(),
        "goSSE stream connected"
    );
    Ok(stream_response(subscription))
}
