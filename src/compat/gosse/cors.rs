//! goSSE's CORS: one configured origin (`ALLOWED_ORIGIN`), with
//! credentials, so that a page on that origin can log in (the response
//! sets the cookie) and open an `EventSource` `withCredentials` that
//! sends it. Any `OPTIONS` request is answered 204 at once, as goSSE's
//! login answered it; unlike goSSE's, a preflight for `/broadcast` works
//! too (goSSE asked it for a token).
//!
//! The headers go only to a request from that origin: another origin gets
//! none, so its scripts can neither read the answers nor send the cookie.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Gosse;

/// goSSE's lists, as its clients' preflights expect them.
const METHODS: &str = "POST, GET, OPTIONS, PUT, DELETE";
const HEADERS: &str =
    "Accept, Content-Type, Content-Length, Accept-Encoding, X-CSRF-Token, Authorization";

pub async fn cors(State(gosse): State<Arc<Gosse>>, request: Request, next: Next) -> Response {
    let allowed = match (
        gosse.settings.allowed_origin.as_deref(),
        request.headers().get(header::ORIGIN),
    ) {
        (Some(allowed), Some(origin)) if origin.as_bytes() == allowed.as_bytes() => {
            Some(origin.clone())
        }
        _ => None,
    };
    let preflight = request.method() == Method::OPTIONS;
    let mut response = match preflight {
        true => StatusCode::NO_CONTENT.into_response(),
        false => next.run(request).await,
    };
    let h = response.headers_mut();
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    let Some(origin) = allowed else {
        return response;
    };
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Authorization"),
    );
    if preflight {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(METHODS),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(HEADERS),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("86400"),
        );
    }
    response
}
