//! The HTTP layer: the axum router, its middleware (request ids, one log line
//! per request, CORS, body limit, panic guard) and the handlers. It talks to
//! the hub only; it knows nothing of storage engines.

pub mod body;
pub mod connections;
mod cors;
pub mod dashboard;
pub mod error;
pub mod kick;
pub mod log;
pub mod ops;
pub mod presence;
pub mod principal;
pub mod prometheus;
pub mod pubsubs;
pub mod remote;
pub mod send;
pub mod stats;
pub mod stream;
pub mod subscribe;
pub mod tokens;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Request, header};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};

use crate::hub::Hub;
use crate::readiness::Readiness;
use crate::secret::Secret;
use error::ApiError;

/// What every handler can reach.
pub struct AppState {
    pub hub: Arc<Hub>,
    pub api_token: Secret,
    pub metrics_token: Secret,
    pub readiness: Arc<Readiness>,
    /// The dashboard's once-a-second feed (`/api/v1/metrics/stream`).
    pub stats: Arc<stats::StatsFeed>,
    pub prometheus: prometheus::PrometheusSettings,
    /// `server.maxJsonDepth`: deepest nesting of a published message.
    pub max_json_depth: usize,
    /// Identity tokens and what goes with them, when `identity.*` is on.
    pub identity: Option<IdentityState>,
    /// Who is online (counts for `/metrics`).
    pub presence: crate::presence::PresenceTracker,
}

/// What the identity endpoints need (`identity.*`; `lib.rs` converts).
pub struct IdentityState {
    pub tokens: Arc<crate::identity::Tokens>,
    /// The cookie an identity token may come in (`identity.cookie`).
    pub cookie: String,
    /// Most users plus devices one send may name.
    pub max_send_targets: usize,
}

/// How the router is built (from `server.*`; `lib.rs` converts).
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Serve the dashboard at `/`.
    pub dashboard: bool,
    /// Largest accepted request body, in bytes.
    pub max_request_body_size: usize,
    /// Origins allowed from browsers; `*` reflects any origin.
    pub cors_allowed_origins: Vec<String>,
    /// Request paths whose routes answer CORS themselves (a compatibility
    /// profile's, with its prefix): the API's CORS leaves them alone.
    pub cors_exempt: Vec<String>,
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole API: [`routes`] wrapped in [`layers`].
pub fn router(state: Arc<AppState>, settings: &HttpSettings) -> Router {
    layers(routes(state, settings), settings)
}

/// The paths [`routes`] serves (axum syntax), for `compat`'s check that
/// no compatibility profile claims one of them on the main listener. Keep
/// in step with [`routes`]; a test checks that each one is really routed.
pub fn paths(settings: &HttpSettings) -> Vec<&'static str> {
    let mut paths = vec![
        "/api/v1/pubsubs",
        "/api/v1/pubsubs/{id}",
        "/api/v1/pubsubs/{id}/events",
        "/api/v1/events",
        "/api/v1/stream",
        "/api/v1/send",
        "/api/v1/tokens",
        "/api/v1/connections",
        "/api/v1/connections/{id}",
        "/api/v1/kick",
        "/api/v1/apps/{app}/users/{user}",
        "/api/v1/presence/stream",
        "/api/v1/metrics",
        "/api/v1/metrics/stream",
        "/metrics",
        "/api/v1/whoami",
        "/healthz",
        "/readyz",
    ];
    if settings.dashboard {
        paths.extend(["/", "/favicon.ico", "/assets/{file}"]);
    }
    paths
}

/// The API's routes and its JSON 404 fallback, without the middleware:
/// `compat` nests profiles into it before [`layers`] wraps the whole.
pub fn routes(state: Arc<AppState>, settings: &HttpSettings) -> Router {
    let api = Router::new()
        .route("/api/v1/pubsubs", get(pubsubs::list).post(pubsubs::create))
        .route(
            "/api/v1/pubsubs/{id}",
            get(pubsubs::show).delete(pubsubs::delete),
        )
        .route(
            "/api/v1/pubsubs/{id}/events",
            get(subscribe::subscribe).post(pubsubs::publish),
        )
        .route("/api/v1/events", get(subscribe::subscribe_topics))
        .route("/api/v1/stream", get(stream::stream))
        .route("/api/v1/send", post(send::send))
        .route("/api/v1/tokens", post(tokens::mint))
        .route("/api/v1/connections", get(connections::list))
        .route("/api/v1/connections/{id}", delete(kick::delete))
        .route("/api/v1/kick", post(kick::kick))
        .route("/api/v1/apps/{app}/users/{user}", get(connections::user))
        .route("/api/v1/presence/stream", get(presence::stream))
        .route("/api/v1/metrics", get(ops::metrics))
        .route("/api/v1/metrics/stream", get(stats::stream))
        .route("/metrics", get(prometheus::metrics))
        .route("/api/v1/whoami", get(dashboard::whoami))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .fallback(error::not_found)
        .with_state(state);
    if settings.dashboard {
        api.route("/", get(dashboard::index))
            .route("/favicon.ico", get(dashboard::favicon))
            .route("/assets/{file}", get(dashboard::asset))
    } else {
        api
    }
}

/// The middleware every listener's router gets (request ids, one log line
/// per request, CORS, panic guard, body limit, JSON errors): the main
/// listener's, and a compatibility profile's own.
pub fn layers(router: Router, settings: &HttpSettings) -> Router {
    router
        .layer(axum::middleware::map_response(error::json_errors))
        .layer(DefaultBodyLimit::max(settings.max_request_body_size))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; the request may not have been applied",
            )
            .into_response()
        }))
        .layer(cors::layer(
            settings,
            [
                REQUEST_ID,
                HeaderName::from_static(subscribe::TRUNCATED_HEADER),
                HeaderName::from_static(subscribe::CONNECTION_ID_HEADER),
                header::CONTENT_TYPE,
            ],
        ))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(axum::middleware::from_fn(log::log_request))
        .layer(SetRequestIdLayer::new(REQUEST_ID, NanoRequestId))
}

/// Request ids: short, URL-safe, unique enough to find one request in logs.
#[derive(Clone, Copy)]
struct NanoRequestId;

impl MakeRequestId for NanoRequestId {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&crate::secret::new_id())
            .ok()
            .map(RequestId::new)
    }
}
