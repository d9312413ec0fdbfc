//! The plain-HTTP listener while TLS is on: answers ACME http-01
//! challenges (when that challenge is configured), `/healthz` and `/readyz`
//! (so a container health check or load balancer can probe without TLS), and
//! redirects everything else to https with 308 Permanent Redirect, which
//! keeps the method and body (a POST stays a POST; 301 lets clients turn it
//! into a GET). With `server.ssl.apiOverHttp` it serves the whole API instead.
//!
//! The redirect goes to the request's host when it is one of
//! `server.ssl.domainName`, otherwise to the first configured domain, so a
//! forged `Host` header cannot send clients elsewhere.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rustls_acme::ResolvesServerCertAcme;

use super::name_matches;

#[derive(Clone)]
pub struct Redirect {
    inner: Arc<Inner>,
}

struct Inner {
    domains: Vec<String>,
    https_port: u16,
    http01: Option<Arc<ResolvesServerCertAcme>>,
}

impl Redirect {
    pub fn new(
        domains: &[String],
        https_port: u16,
        http01: Option<Arc<ResolvesServerCertAcme>>,
    ) -> Redirect {
        Redirect {
            inner: Arc::new(Inner {
                domains: domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
                https_port,
                http01,
            }),
        }
    }

    pub fn router(&self, api: Router, api_over_http: bool) -> Router {
        let router = if api_over_http {
            api
        } else {
            Router::new()
                .route_service("/healthz", api.clone())
                .route_service("/readyz", api)
                .fallback(redirect)
                .with_state(self.inner.clone())
        };
        match &self.inner.http01 {
            Some(resolver) => {
                let resolver = resolver.clone();
                router.route(
                    "/.well-known/acme-challenge/{token}",
                    get(move |Path(token): Path<String>| async move {
                        match resolver.get_http_01_key_auth(&token) {
                            Some(key_auth) => (StatusCode::OK, key_auth).into_response(),
                            None => StatusCode::NOT_FOUND.into_response(),
                        }
                    }),
                )
            }
            None => router,
        }
    }
}

async fn redirect(State(inner): State<Arc<Inner>>, headers: HeaderMap, uri: Uri) -> Response {
    let requested = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .map(strip_port);
    let Some(host) = target_host(&inner.domains, requested) else {
        return (
            StatusCode::BAD_REQUEST,
            "use https with one of this server's names\n",
        )
            .into_response();
    };
    let port = match inner.https_port {
        443 => String::new(),
        p => format!(":{p}"),
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let location = format!("https://{host}{port}{path}");
    (
        StatusCode::PERMANENT_REDIRECT,
        [(header::LOCATION, location)],
    )
        .into_response()
}

/// `host:port` or `[v6]:port` → the host part.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// The host to redirect to: the requested one if we serve it, else the
/// first configured non-wildcard name; with no names configured (manual
/// certificates), the requested host if it looks like a host name.
fn target_host(domains: &[String], requested: Option<&str>) -> Option<String> {
    if let Some(host) = requested {
        let host = host.to_ascii_lowercase();
        let plausible = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b));
        if plausible && (domains.is_empty() || domains.iter().any(|d| name_matches(d, &host))) {
            return Some(host);
        }
    }
    domains.iter().find(|d| !d.starts_with("*.")).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let domains = vec!["a.example.com".to_string(), "*.example.org".to_string()];
        assert_eq!(strip_port("a.example.com:80"), "a.example.com");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(
            target_host(&domains, Some("A.example.com")).as_deref(),
            Some("a.example.com")
        );
        assert_eq!(
            target_host(&domains, Some("x.example.org")).as_deref(),
            Some("x.example.org")
        );
        assert_eq!(
            target_host(&domains, Some("evil.test")).as_deref(),
            Some("a.example.com")
        );
        assert_eq!(target_host(&[], Some("evil/path")), None);
        assert_eq!(target_host(&[], Some("h.test")).as_deref(), Some("h.test"));
    }
}
