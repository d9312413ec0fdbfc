//! The HTTP layer: the axum router, its middleware (request ids, one log line
//! per request, CORS, body limit, panic guard) and the handlers. It talks to
//! the hub only; it knows nothing of storage engines.

pub mod auth;
pub mod body;
pub mod dashboard;
pub mod error;
pub mod log;
pub mod ops;
pub mod prometheus;
pub mod pubsubs;
pub mod stats;
pub mod subscribe;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, Request, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowCredentials, AllowHeaders, AllowOrigin, CorsLayer};
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};

use crate::config::Config;
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

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn router(state: Arc<AppState>, config: &Config) -> Router {
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
        .route("/api/v1/metrics", get(ops::metrics))
        .route("/api/v1/metrics/stream", get(stats::stream))
        .route("/metrics", get(prometheus::metrics))
        .route("/api/v1/whoami", get(dashboard::whoami))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .fallback(error::not_found)
        .with_state(state);
    let api = if config.server.dashboard.0 {
        api.route("/", get(dashboard::index))
            .route("/favicon.ico", get(dashboard::favicon))
            .route("/assets/{file}", get(dashboard::asset))
    } else {
        api
    };

    api.layer(axum::middleware::map_response(error::json_errors))
        .layer(DefaultBodyLimit::max(
            config.server.max_request_body_size.0 as usize,
        ))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; the request may not have been applied",
            )
            .into_response()
        }))
        .layer(cors(config))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(axum::middleware::from_fn(log::log_request))
        .layer(SetRequestIdLayer::new(REQUEST_ID, NanoRequestId))
}

/// CORS for browsers on other origins.
///
/// `*` lets a page on any origin call the API and read streams, but never
/// with credentials: were every origin (including `null`, which sandboxed
/// frames and local files send) reflected with
/// `Access-Control-Allow-Credentials: true`, any web page a user visits could
/// act with that user's cookies. Credentials are granted only to origins
/// listed by name, never to `null`. `*` still reflects the caller's origin
/// (as SSER did) rather than sending a literal `*`, so a list may mix `*`
/// with named, credentialed origins.
fn cors(config: &Config) -> CorsLayer {
    let origins = &config.server.cors.allowed_origins.0;
    let named: Vec<HeaderValue> = origins
        .iter()
        .filter(|o| o.as_str() != "*")
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    let credentialed: Vec<HeaderValue> = named
        .iter()
        .filter(|o| o.as_bytes() != b"null")
        .cloned()
        .collect();
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::mirror_request()
    } else {
        AllowOrigin::list(named)
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
        .allow_headers(AllowHeaders::mirror_request())
        .allow_credentials(AllowCredentials::predicate(move |origin, _| {
            credentialed.contains(origin)
        }))
        .expose_headers([
            REQUEST_ID,
            HeaderName::from_static(subscribe::TRUNCATED_HEADER),
            header::CONTENT_TYPE,
        ])
        .max_age(Duration::from_secs(86400))
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
