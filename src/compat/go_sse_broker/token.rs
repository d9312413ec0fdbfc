//! `/token {uid, device?, ttl?}` → `result: "<token>"`: an identity token
//! for user `uid` of the profile's application, bound to `device` when one
//! is given (then `/events` accepts it for that device only), living `ttl`
//! seconds (none, or ≤ 0: `compat.goSseBroker.jwt.expire`, else
//! `identity.mint.defaultTtl`; at most `identity.mint.maxTtl`).
//!
//! The token is a native identity token, so it also opens
//! `GET /api/v1/stream`: sser's claims (`sub`, `iss`, `device`, per
//! `identity.claims.*`), plus go-sse-broker's own `uid` and `device_name`
//! for back-ends that decoded its tokens.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Broker;
use super::auth::Need;
use super::envelope::{Envelope, Failure};
use super::params::Params;
use crate::http::remote::Remote;
use crate::identity::{MintError, MintRequest};

pub(super) async fn token(
    State(b): State<Arc<Broker>>,
    Remote(peer): Remote,
    request: Request,
) -> Response {
    let started = Instant::now();
    let params = match b.admit(Need::Operator, peer, request, started).await {
        Ok(params) => params,
        Err(answer) => return answer,
    };
    let outcome = b.mint(&params);
    Envelope::new(started, outcome).no_store().into_response()
}

impl Broker {
    fn mint(&self, params: &Params) -> Result<Value, Failure> {
        let identity = self.identity()?;
        let uid = params
            .get("uid")
            .ok_or_else(|| Failure::bad_request("uid is required"))?;
        for (what, value) in [("uid", Some(uid)), ("device", params.get("device"))] {
            if value.is_some_and(|v| v.contains(',')) {
                return Err(Failure::bad_request(format!(
                    "{what} must not contain a comma: /send and /kick read their {what} lists split at commas, so it could never be named there"
                )));
            }
        }
        let ttl = match params.get("ttl") {
            None => None,
            Some(text) => match text.trim().parse::<i64>() {
                Ok(secs) if secs > 0 => Some(Duration::from_secs(secs.unsigned_abs())),
                Ok(_) => None,
                Err(_) => {
                    return Err(Failure::bad_request(format!(
                        "ttl must be a whole number of seconds, got {text:?}"
                    )));
                }
            },
        };
        // go-sse-broker's own claims too, for back-ends that read them.
        let mut extra = serde_json::Map::new();
        extra.insert("uid".into(), json!(uid));
        if let Some(device) = params.get("device") {
            extra.insert("device_name".into(), json!(device));
        }
        let request = MintRequest {
            user: uid.to_string(),
            app: Some(self.app.clone()),
            device: params.get("device").map(str::to_string),
            topics: None,
            ttl: ttl.or(self.settings.token_ttl),
            extra,
        };
        let minted = identity.tokens.mint(request).map_err(|e| match e {
            MintError::NoSigningKey => Failure::new(
                StatusCode::NOT_IMPLEMENTED,
                format!("{e} (identity.secret or compat.goSseBroker.jwt.secret)"),
            ),
            MintError::Signing => Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            MintError::Ttl { .. } => Failure::bad_request(e.to_string()),
            // This API calls the user `uid`.
            MintError::InvalidField { field, reason } => Failure::bad_request(format!(
                "{} {reason}",
                if field == "user" { "uid" } else { field }
            )),
        })?;
        Ok(json!(minted.token.expose()))
    }
}
