//! The HTTP layer: the axum router, its middleware (request ids, one log line
//! per request, CORS, body limit, panic guard) and the handlers. It talks to
//! the hub only; it knows nothing of storage engines.

pub mod body;
mod cors;
pub mod dashboard;
pub mod error;
pub mod log;
pub mod ops;
pub mod principal;
pub mod prometheus;
pub mod pubsubs;
pub mod stats;
pub mod subscribe;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Request, header};
use axum::response::IntoResponse;
use axum::routing::get;
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
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn router(state: Arc<AppState>, settings: &HttpSettings) -> Router {
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
        .route("/api/v1/metrics", get(ops::metrics))
        .route("/api/v1/metrics/stream", get(stats::stream))
        .route("/metrics", get(prometheus::metrics))
        .route("/api/v1/whoami", get(dashboard::whoami))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .fallback(error::not_found)
        .with_state(state);
    let api = if settings.dashboard {
        api.route("/", get(dashboard::index))
            .route("/favicon.ico", get(dashboard::favicon))
            .route("/assets/{file}", get(dashboard::asset))
    } else {
        api
    };

    api.layer(axum::middleware::map_response(error::json_errors))
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
