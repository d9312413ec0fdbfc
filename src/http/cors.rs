//! CORS: which browser origins may call the API ([`layer`]), and keeping
//! CORS-only headers off long-lived streams that are not CORS.
//!
//! tower-http's `CorsLayer` adds `Access-Control-Expose-Headers` to every
//! response; it means something only to a browser's cross-origin request,
//! which always carries `Origin`. On an SSE stream it costs memory: hyper
//! keeps each connection's response header map for the connection's life
//! (cleared, not shrunk, for reuse), a stream is one response held open for
//! hours, and a map holding more than six headers doubles, about 600 bytes
//! more per idle stream. So a stream ([`LongLived`]) answering a request
//! without `Origin` (servers, curl, same-origin pages) goes without it and
//! carries six headers. Short responses keep it: it costs them nothing.
//!
//! Both are one layer, so axum wraps (and clones, per request) one service
//! rather than two.
//!
//! A compatibility profile with CORS rules of its own (goSSE: one origin,
//! with credentials, its own preflight answers) names its paths in
//! [`HttpSettings::cors_exempt`]: requests to them pass this layer
//! untouched. (`CorsLayer` answers every `OPTIONS` itself, so the profile's
//! own rules could not otherwise be reached.)

use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, Request, Response, header};
use futures_util::FutureExt;
use futures_util::future::{Either, Map};
use tower::layer::util::Stack;
use tower::{Layer, Service};
use tower_http::cors::{AllowCredentials, AllowHeaders, AllowOrigin, CorsLayer};

use super::HttpSettings;

/// Marks a response as a long-lived stream (a response extension).
#[derive(Debug, Clone, Copy)]
pub struct LongLived;

/// CORS for the whole API, with the stream rule above, except on the
/// exempt paths; `expose` are the response headers scripts on other origins
/// may read.
pub fn layer(settings: &HttpSettings, expose: [HeaderName; 4]) -> ExemptLayer {
    ExemptLayer {
        cors: Stack::new(cors(settings, expose), ExposeOnlyForCorsLayer),
        exempt: settings.cors_exempt.iter().cloned().collect(),
    }
}

/// [`layer`]'s layer.
#[derive(Clone)]
pub struct ExemptLayer {
    cors: Stack<CorsLayer, ExposeOnlyForCorsLayer>,
    exempt: std::sync::Arc<[String]>,
}

impl<S: Clone> Layer<S> for ExemptLayer {
    type Service = Exempt<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Exempt {
            with: self.cors.layer(inner.clone()),
            without: inner,
            exempt: self.exempt.clone(),
        }
    }
}

/// The inner service with CORS, or (on an exempt path) without.
#[derive(Clone)]
pub struct Exempt<S> {
    with: <Stack<CorsLayer, ExposeOnlyForCorsLayer> as Layer<S>>::Service,
    without: S,
    exempt: std::sync::Arc<[String]>,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for Exempt<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone,
    ResB: Default,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = Either<
        <<Stack<CorsLayer, ExposeOnlyForCorsLayer> as Layer<S>>::Service as Service<
            Request<ReqB>,
        >>::Future,
        S::Future,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self.with.poll_ready(cx) {
            Poll::Ready(Ok(())) => self.without.poll_ready(cx),
            other => other,
        }
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let path = req.uri().path();
        if !self.exempt.is_empty() && self.exempt.iter().any(|p| p == path) {
            Either::Right(self.without.call(req))
        } else {
            Either::Left(self.with.call(req))
        }
    }
}

#[derive(Clone, Copy)]
pub struct ExposeOnlyForCorsLayer;

impl<S> Layer<S> for ExposeOnlyForCorsLayer {
    type Service = ExposeOnlyForCors<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ExposeOnlyForCors { inner }
    }
}

#[derive(Clone)]
pub struct ExposeOnlyForCors<S> {
    inner: S,
}

type Strip<B, E> = fn(Result<Response<B>, E>) -> Result<Response<B>, E>;

fn strip<B, E>(result: Result<Response<B>, E>) -> Result<Response<B>, E> {
    result.map(|mut response| {
        if response.extensions().get::<LongLived>().is_some() {
            response
                .headers_mut()
                .remove(header::ACCESS_CONTROL_EXPOSE_HEADERS);
        }
        response
    })
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for ExposeOnlyForCors<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = Either<S::Future, Map<S::Future, Strip<ResB, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let cors = req.headers().contains_key(header::ORIGIN);
        let response = self.inner.call(req);
        if cors {
            Either::Left(response)
        } else {
            Either::Right(response.map(strip as Strip<ResB, S::Error>))
        }
    }
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
fn cors(settings: &HttpSettings, expose: [HeaderName; 4]) -> CorsLayer {
    let origins = &settings.cors_allowed_origins;
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
        .expose_headers(expose)
        .max_age(Duration::from_secs(86400))
}
