//! The go-sse-broker profile: its API (`/token`, `/send`, `/events`,
//! `/info`, `/kick`, each endpoint but `/events` by `GET` with a query or
//! `POST` with JSON or a form, answers in its `{"code":1,…}` envelope),
//! served by the native hub so that its back-ends and browser clients
//! switch to sser by changing a host name.
//!
//! It is a mapping, not a second server. A go-sse-broker user is a user of
//! one application (`compat.goSseBroker.app`), its token an identity token
//! minted and checked by `crate::identity`, a stream an identity connection
//! on that user's and device's inboxes (`hub::Hub::connect`), `/send` a send
//! to inboxes (`hub::Hub::send`), `/kick` a registry kick, `/info` a
//! registry read; the one-connection-per-device take-over, presence and
//! webhooks are the native ones. So what its users lost there they get here:
//! `id` really resumes (what a device missed waits in its inboxes), a device
//! belongs to its user, malformed requests are refused instead of exiting
//! the process, and the four back-end endpoints take the API token.
//!
//! Files: [`envelope`] (the response shape), [`params`] (query, JSON and
//! form), [`auth`] (the API token and the opt-in address allow-list),
//! [`targets`] and [`devices`] (whom a uid or device list names),
//! [`system`] (its `sys_*` events), [`presence`] (its presence callbacks
//! on Redis channels, in a cluster), and one file per endpoint.

pub mod auth;
pub mod devices;
pub mod envelope;
mod events;
mod info;
mod kick;
pub mod params;
pub mod presence;
mod send;
pub mod system;
pub mod targets;
mod token;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;

use super::{About, Context};
use crate::http::{AppState, IdentityState};
pub use auth::AddrRange;
use auth::{Gate, Need};
use devices::Devices;
use envelope::{Envelope, Failure};
use params::Params;
use system::BrokerFarewell;

/// Who the profile is and what it routes.
pub const ABOUT: About = About {
    name: "go-sse-broker",
    key: "compat.goSseBroker",
    env: "SSER_COMPAT_GO_SSE_BROKER",
    paths: PATHS,
    own_cors: false,
};

/// Every path the profile routes (its README's).
pub const PATHS: &[&str] = &["/token", "/send", "/events", "/info", "/kick"];

/// The profile's settings (`compat.goSseBroker.*`; `lib.rs` converts).
#[derive(Debug, Clone)]
pub struct GoSseBrokerSettings {
    /// The application its users live in; `None`: `identity.defaultApp`.
    pub app: Option<String>,
    /// A `/token` without `ttl` lives this long (go-sse-broker's
    /// `[jwt] expire`); `None`: `identity.mint.defaultTtl`.
    pub token_ttl: Option<Duration>,
    /// Back-end addresses that may call `/token`, `/send`, `/info` and
    /// `/kick` without the API token. Empty (the default): none may.
    pub unauthenticated_from: Vec<AddrRange>,
    /// This node's address, as `/info` and `sys_instance_close` name it.
    pub instance_address: String,
    /// The `:heartbeat` period (go-sse-broker's `[sse] heartbeat_interval`).
    pub heartbeat_interval: Duration,
    /// How long a device name is remembered after its stream ended
    /// (`identity.inbox.maxAge`: as long as its inbox keeps what it missed).
    pub device_memory: Duration,
}

/// What the handlers share.
struct Broker {
    state: Arc<AppState>,
    app: String,
    settings: GoSseBrokerSettings,
    gate: Gate,
    devices: Arc<Devices>,
    farewell: Arc<BrokerFarewell>,
    /// When this node started serving the profile (`/info`), Unix ms.
    started_ms: u64,
}

/// The profile's routes, to be mounted at the root of its listener (or
/// under its prefix).
pub fn router(ctx: Context, settings: GoSseBrokerSettings) -> Router {
    let state = ctx.state;
    if !settings.unauthenticated_from.is_empty() {
        let list: Vec<String> = settings
            .unauthenticated_from
            .iter()
            .map(ToString::to_string)
            .collect();
        tracing::warn!(
            addresses = %list.join(", "),
            "compat.goSseBroker.unauthenticatedFrom is set: requests from these addresses may mint tokens for any user, send to anyone and kick anyone WITHOUT the API token; use it only while their back-ends learn to send it"
        );
    }
    let app = settings.app.clone().unwrap_or_else(|| {
        state
            .identity
            .as_ref()
            .map(|i| i.tokens.settings().default_app.clone())
            .unwrap_or_else(|| "default".to_string())
    });
    let broker = Arc::new(Broker {
        gate: Gate {
            api_token: state.api_token.clone(),
            metrics_token: state.metrics_token.clone(),
            unauthenticated_from: settings.unauthenticated_from.clone(),
        },
        devices: Devices::new(settings.device_memory),
        farewell: Arc::new(BrokerFarewell {
            instance_address: settings.instance_address.clone(),
        }),
        started_ms: crate::model::now_ms(),
        app,
        settings,
        state,
    });
    Router::new()
        .route("/token", any(token::token))
        .route("/send", any(send::send))
        .route("/events", any(events::events))
        .route("/info", any(info::info))
        .route("/kick", any(kick::kick))
        .with_state(broker)
}

impl Broker {
    /// Identity tokens, which every endpoint needs.
    fn identity(&self) -> Result<&IdentityState, Failure> {
        self.state.identity.as_ref().ok_or_else(|| {
            Failure::new(
                StatusCode::NOT_IMPLEMENTED,
                "identity tokens are not enabled on this server: configure identity.secret (SSER_JWT_SECRET) or compat.goSseBroker.jwt.secret",
            )
        })
    }

    /// How every back-end endpoint (`/token`, `/send`, `/info`, `/kick`)
    /// starts: a method it takes, a caller it lets in, then the request's
    /// parameters. `Err` is the whole answer (a preflight, a 405, or the
    /// refusal in the envelope, timed from `started`).
    async fn admit(
        &self,
        need: Need,
        peer: Option<SocketAddr>,
        request: Request,
        started: Instant,
    ) -> Result<Params, Response> {
        if let Some(early) = method_check(&request, GET_POST, started) {
            return Err(early);
        }
        let admitted = match self
            .gate
            .check(need, request.headers(), peer.map(|a| a.ip()))
        {
            Ok(()) => Params::read(request).await,
            Err(e) => Err(e),
        };
        admitted.map_err(|e| Envelope::new(started, Err(e)).into_response())
    }
}

/// The methods an endpoint takes: `OPTIONS` is answered at once (a CORS
/// preflight, when CORS is configured, never gets here), any other method
/// but these is a 405 in the envelope.
fn method_check(
    request: &Request,
    allowed: &'static [Method],
    started: Instant,
) -> Option<Response> {
    let method = request.method();
    if allowed.contains(method) {
        return None;
    }
    let allow = allowed
        .iter()
        .map(Method::as_str)
        .chain(["OPTIONS"])
        .collect::<Vec<_>>()
        .join(", ");
    let mut response = if method == Method::OPTIONS {
        StatusCode::NO_CONTENT.into_response()
    } else {
        let failure = Failure::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method not allowed: {method} (use {allow})"),
        );
        Envelope::new(started, Err(failure)).into_response()
    };
    if let Ok(value) = HeaderValue::from_str(&allow) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    Some(response)
}

/// The back-end endpoints' methods.
const GET_POST: &[Method] = &[Method::GET, Method::POST];
