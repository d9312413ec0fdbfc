//! `/kick {uid?, device?, data?}` → `result: <connections ended>`.
//!
//! Ends the streams of every user in `uid` and every device in `device`
//! (comma lists, at least one name; a device named alone means that device
//! of each user who has one). Each ends with `sys_kick_offline`, whose data
//! is `data`. It is the native kick (`POST /api/v1/kick`): the registry ends
//! them and presence reports them `kicked`. The client may reconnect at
//! once, as there. In a cluster it reaches every node (503 when Redis is
//! away).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Broker;
use super::auth::Need;
use super::envelope::{Envelope, Failure};
use super::params::Params;
use super::targets::Targets;
use crate::http::error::ApiError;
use crate::http::kick::MAX_REASON_LEN;
use crate::http::remote::Remote;
use crate::hub::{EndReason, Selector};

pub(super) async fn kick(
    State(b): State<Arc<Broker>>,
    Remote(peer): Remote,
    request: Request,
) -> Response {
    let started = Instant::now();
    let params = match b.admit(Need::Operator, peer, request, started).await {
        Ok(params) => params,
        Err(answer) => return answer,
    };
    let outcome = b.kick(&params).await;
    Envelope::new(started, outcome).into_response()
}

impl Broker {
    async fn kick(&self, params: &Params) -> Result<Value, Failure> {
        let identity = self.identity()?;
        if params.list("uid").is_empty() && params.list("device").is_empty() {
            return Err(Failure::bad_request(
                "uid and device cannot be empty at the same time",
            ));
        }
        let data = params.get("data").map(str::to_string);
        if data.as_ref().is_some_and(|d| d.len() > MAX_REASON_LEN) {
            return Err(Failure::bad_request(format!(
                "data must be at most {MAX_REASON_LEN} bytes"
            )));
        }
        let targets = Targets::read(params, &self.devices, identity.max_send_targets)?;
        let mut selectors: Vec<Selector<'_>> = targets
            .users
            .iter()
            .map(|user| Selector::User(&self.app, user))
            .collect();
        selectors.extend(
            targets
                .devices
                .iter()
                .map(|(user, device)| Selector::Device(&self.app, user, device)),
        );
        let ended = self
            .state
            .hub
            .kick(&selectors, Vec::new(), &EndReason::Kicked { reason: data })
            .await
            .map_err(|e| Failure::from(ApiError::from(e)))?;
        tracing::info!(ended, "go-sse-broker kick");
        Ok(json!(ended))
    }
}
