//! `GET /sse`: the original's one stream per client, as an identity
//! connection on the token's application and user (`hub::Hub::connect`,
//! exactly as `GET /api/v1/stream`), spelt the way its clients read it:
//!
//! - events named by their own type (`event: <type>`), not by stream;
//! - the `id:` is sser's resume cursor, so a reconnecting `EventSource`
//!   (its `Last-Event-ID` header) gets what it missed, from the user's and
//!   the application's inboxes;
//! - the `ping` event every `compat.notificationService.pingInterval`
//!   (30 s), as `event: ping` / `data: null` *without* an `id:` line: the
//!   original sent `id: 1` with it, which reset every browser's last event
//!   id to 1, so a reconnect could not resume;
//! - `X-Connection-Id`: the connection's id (the keys of `/connections`);
//! - the stream ends with `sser.token_expired` when the token expires (the
//!   original checked expiry only at connect).

use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;

use super::{NsState, auth};
use crate::http::error::ApiError;
use crate::http::remote::Remote;
use crate::http::stream::token_end;
use crate::http::subscribe::{cursor_from, stream_response};
use crate::hub::{ConnectSpec, Heartbeat, Naming, Owner};

/// The original's heartbeat event, minus its `id: 1`.
pub fn ping_frame() -> bytes::Bytes {
    crate::sse::encode_notice("ping", "null")
}

/// `GET /sse`
pub async fn sse(
    State(ns): State<NsState>,
    Remote(remote): Remote,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let state = &ns.ctx.state;
    let identity = auth::identity(state, &headers, &uri).await?;
    let owner = Owner::new(&identity.app, &identity.user, identity.device.as_deref());
    let subscription = state
        .hub
        .connect(ConnectSpec {
            owner: Some(owner),
            topics: Vec::new(),
            last_event_id: cursor_from(&headers, None),
            expires_at: token_end(state, &identity),
            remote,
            naming: Naming::AsPublished,
            heartbeat: Some(Heartbeat {
                every: ns.settings.ping_interval,
                frame: ping_frame(),
            }),
            farewell: None,
        })
        .await?;
    tracing::Span::current().record("conn", &*subscription.conn_id);
    Ok(stream_response(subscription))
}
