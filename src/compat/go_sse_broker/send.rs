//! `/send {data, event?, uid?, device?}` → `result: <connections reached>`.
//!
//! To every user in `uid` and every device in `device` (comma lists; a
//! device named alone means that device of each user who has one), or, with
//! neither, to the whole application. It is one native send to those
//! inboxes: what a device misses while it reconnects waits in its inboxes
//! and is replayed when it comes back with its last id (there it was lost).
//! `data` is sent as text (several lines become several `data:` lines, where
//! the original broke the frame); `event` becomes the SSE event name.
//!
//! `result` counts the connections the event reached now. The original
//! counted the devices it was meant for, offline ones included.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Broker;
use super::auth::Need;
use super::envelope::{Envelope, Failure};
use super::params::Params;
use super::targets::Targets;
use crate::http::error::ApiError;
use crate::http::remote::Remote;
use crate::hub::{HubError, NewEvent};
use crate::model::StreamKey;

pub(super) async fn send(
    State(b): State<Arc<Broker>>,
    Remote(peer): Remote,
    request: Request,
) -> Response {
    let started = Instant::now();
    let params = match b.admit(Need::Operator, peer, request, started).await {
        Ok(params) => params,
        Err(answer) => return answer,
    };
    let outcome = b.send(&params).await;
    Envelope::new(started, outcome).into_response()
}

impl Broker {
    async fn send(&self, params: &Params) -> Result<Value, Failure> {
        let identity = self.identity()?;
        let data = params
            .get("data")
            .ok_or_else(|| Failure::bad_request("data cannot be empty"))?;
        let event = NewEvent::new(
            None,
            params.get("event").map(str::to_string),
            data.to_string(),
        )
        .map_err(|e| {
            let field = if e.field == "type" { "event" } else { e.field };
            Failure::bad_request(format!("{field} {}", e.reason))
        })?;
        let streams = if params.given("uid") || params.given("device") {
            let targets = Targets::read(params, &self.devices, identity.max_send_targets)?;
            let mut streams: Vec<StreamKey> = targets
                .users
                .iter()
                .map(|user| StreamKey::user(&self.app, user))
                .collect();
            streams.extend(
                targets
                    .devices
                    .iter()
                    .map(|(user, device)| StreamKey::device(&self.app, user, device)),
            );
            if streams.is_empty() {
                // Only device names nobody has: nothing to send to.
                return Ok(json!(0));
            }
            streams
        } else {
            vec![StreamKey::app(&self.app)]
        };
        let sent = self
            .state
            .hub
            .send(streams, event)
            .await
            .map_err(|e| match e {
                HubError::Store(e) => {
                    tracing::error!(error = %e, "storage failure during a go-sse-broker send");
                    Failure::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "storage is unavailable; the event may have reached some of its targets and not others",
                    )
                }
                e => Failure::from(ApiError::from(e)),
            })?;
        Ok(json!(sent.iter().map(|s| s.reached).sum::<usize>()))
    }
}
