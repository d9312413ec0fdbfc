//! Who a request is: the one place that reads credentials.
//!
//! [`Principal`] is an extractor: it reads the request's token once and
//! recognises the server's own tokens (constant-time,
//! [`crate::secret::Secret::matches`]). Each handler then asks it the one
//! question its endpoint needs ([`Principal::operator`],
//! [`Principal::monitor`], [`Principal::subscriber`], …), and gets either an
//! answer or the JSON 401 that names what was missing or wrong. A signed
//! identity token is one more kind of credential here
//! ([`Principal::identity`]), verified only by the endpoints that take one.
//!
//! Where tokens may come from:
//! - `Authorization: Bearer <t>` or SSER's bare `Authorization: <t>`, always;
//! - `?access_token=<t>`, only on streams (what a browser's `EventSource` can
//!   send), only when the header is absent, and never for the API token: a
//!   query string ends up in proxy logs and browser history, and that token
//!   can do everything;
//! - for identity tokens only, the `identity.cookie` cookie (`sser_token`),
//!   when neither of the above has a token: what an `EventSource` opened
//!   `withCredentials` sends. The first place that has a token is the one
//!   used: a wrong header token is refused, never overridden by a cookie.
//!
//! No token is ever logged or put in a response.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Query};
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::{HeaderMap, HeaderValue, request::Parts};

use super::AppState;
use super::error::ApiError;
use crate::hub::Topic;
use crate::identity::Identity;

/// The credentials of one request, recognised.
pub struct Principal {
    header: Option<Credential>,
    /// `?access_token=`, read only when there is no header token.
    query: Option<Credential>,
    /// The identity cookie, read only when identity is on and neither the
    /// header nor the query has a token.
    cookie: Option<String>,
}

/// A token and what the server recognised it as. The text is kept for
/// topics to check against their own tokens.
struct Credential {
    kind: Kind,
    token: Token,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The API token: operators (create, delete, publish, read anything).
    Api,
    /// The metrics token: monitors (read-only numbers and topic listings).
    Metrics,
    /// Any other token: a topic's own token, or a wrong one.
    Other,
}

/// Where the token's text lives: the header value itself (no copy), or the
/// decoded query parameter.
enum Token {
    Header(HeaderValue),
    Query(String),
}

impl Credential {
    fn token(&self) -> &str {
        match &self.token {
            Token::Header(value) => value.to_str().ok().and_then(bearer).unwrap_or_default(),
            Token::Query(text) => text,
        }
    }
}

/// Who may read a topic's stream.
pub enum Subscriber<'a> {
    /// The API token, in the header: any topic.
    Operator,
    /// A token that each topic checks against its own.
    Token(&'a str),
}

/// Who is looking at the registry ([`Principal::viewer`]).
pub enum Viewer {
    /// The API or metrics token: every connection.
    Monitor,
    /// An identity token: only its own application's user.
    Identity(Box<Identity>),
}

/// What `GET /api/v1/whoami` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Operator,
    Monitor,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Monitor => "monitor",
        }
    }
}

impl Subscriber<'_> {
    pub fn is_operator(&self) -> bool {
        matches!(self, Subscriber::Operator)
    }

    /// Whether this subscriber may read `topic` (constant-time for tokens).
    pub fn may_read(&self, topic: &Topic) -> bool {
        match self {
            Subscriber::Operator => true,
            Subscriber::Token(token) => topic.token_matches(token),
        }
    }
}

/// The token in an `Authorization` value: `Bearer <t>` or a bare `<t>`.
fn bearer(value: &str) -> Option<&str> {
    let value = value.trim();
    let token = match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => value,
    };
    Some(token).filter(|t| !t.is_empty())
}

/// The value of cookie `name`, if the request has it (in any of its
/// `Cookie` headers; surrounding double quotes removed, as RFC 6265 allows).
pub(crate) fn cookie_token(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| k.trim() == name)
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
}

/// The `Authorization` header, when it holds a token.
fn header_token(headers: &HeaderMap) -> Option<(&HeaderValue, &str)> {
    let value = headers.get(AUTHORIZATION)?;
    Some((value, bearer(value.to_str().ok()?)?))
}

/// `?access_token=` (the first one), if any.
fn query_token(parts: &Parts) -> Option<String> {
    let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri).ok()?;
    pairs
        .into_iter()
        .find(|(k, _)| k == "access_token")
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

impl FromRequestParts<Arc<AppState>> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let recognise = |token: &str| {
            if state.api_token.matches(token) {
                Kind::Api
            } else if state.metrics_token.matches(token) {
                Kind::Metrics
            } else {
                Kind::Other
            }
        };
        let header = header_token(&parts.headers).map(|(value, token)| Credential {
            kind: recognise(token),
            token: Token::Header(value.clone()),
        });
        let query = match header {
            Some(_) => None,
            None => query_token(parts).map(|token| Credential {
                kind: recognise(&token),
                token: Token::Query(token),
            }),
        };
        let cookie = match (&header, &query, &state.identity) {
            (None, None, Some(identity)) => cookie_token(&parts.headers, &identity.cookie),
            _ => None,
        };
        Ok(Principal {
            header,
            query,
            cookie,
        })
    }
}

impl Principal {
    /// The API token, in the header (create, delete, publish).
    pub fn operator(&self) -> Result<(), ApiError> {
        match self.header_kind() {
            None => Err(ApiError::unauthorized(
                "missing API token: send Authorization: Bearer <token>",
            )),
            Some(Kind::Api) => Ok(()),
            Some(_) => Err(ApiError::unauthorized("invalid API token")),
        }
    }

    /// The metrics token or the API token, in the header (an operator may
    /// do everything a monitor may).
    pub fn monitor(&self) -> Result<(), ApiError> {
        match self.header_kind() {
            None => Err(ApiError::unauthorized(
                "missing metrics token: send Authorization: Bearer <token>",
            )),
            Some(Kind::Api | Kind::Metrics) => Ok(()),
            Some(Kind::Other) => Err(ApiError::unauthorized("invalid metrics token")),
        }
    }

    /// As [`Principal::monitor`], on a stream: the metrics token may also
    /// come as `?access_token=` (never the API token).
    pub fn monitor_stream(&self) -> Result<(), ApiError> {
        let query = self.query.as_ref().map(|c| c.kind);
        match (self.header_kind(), query) {
            (None, None) => Err(ApiError::unauthorized(
                "missing metrics token: send Authorization: Bearer <token> or ?access_token=<token>",
            )),
            (Some(Kind::Api | Kind::Metrics), _) | (None, Some(Kind::Metrics)) => Ok(()),
            _ => Err(ApiError::unauthorized("invalid metrics token")),
        }
    }

    /// Who may read topic streams: the API token in the header, or any
    /// token in the header or the query, for each topic to check.
    pub fn subscriber(&self) -> Result<Subscriber<'_>, ApiError> {
        match (&self.header, &self.query) {
            (
                Some(Credential {
                    kind: Kind::Api, ..
                }),
                _,
            ) => Ok(Subscriber::Operator),
            // Anything else, the API token in the query included, is only
            // as good as a topic's own token.
            (Some(credential), _) | (None, Some(credential)) => {
                Ok(Subscriber::Token(credential.token()))
            }
            (None, None) => Err(ApiError::unauthorized(
                "missing topic token: send Authorization: Bearer <token> or ?access_token=<token>",
            )),
        }
    }

    /// The identity a signed token speaks for: the header token, else
    /// `?access_token=`, else the identity cookie. A refused token gets 401
    /// JSON whose `reason` is the token error's code (503 while the keys to
    /// check it are not loaded yet); 501 when identity is off.
    pub async fn identity(&self, state: &AppState) -> Result<Identity, ApiError> {
        let Some(identity) = &state.identity else {
            return Err(ApiError::identity_off());
        };
        let token = match (&self.header, &self.query, &self.cookie) {
            (Some(credential), _, _) | (None, Some(credential), _) => credential.token(),
            (None, None, Some(cookie)) => cookie.as_str(),
            (None, None, None) => {
                return Err(ApiError::token_missing(format!(
                    "missing identity token: send Authorization: Bearer <token>, ?access_token=<token> or the {} cookie",
                    identity.cookie
                )));
            }
        };
        identity
            .tokens
            .verify(token)
            .await
            .map_err(|e| ApiError::token(&e))
    }

    /// Who may look at the registry: the API or metrics token in the
    /// header sees every connection; an identity token (wherever
    /// [`Principal::identity`] finds it) sees only its own user's.
    pub async fn viewer(&self, state: &AppState) -> Result<Viewer, ApiError> {
        let monitor = match self.monitor() {
            Ok(()) => return Ok(Viewer::Monitor),
            Err(e) => e,
        };
        if state.identity.is_none() {
            return Err(monitor);
        }
        match self.identity(state).await {
            Ok(identity) => Ok(Viewer::Identity(Box::new(identity))),
            // No token at all, or one that is not even a JWT: say what
            // would have worked rather than what JWTs look like.
            Err(e) if matches!(e.reason, Some("token_missing" | "token_malformed")) => {
                Err(ApiError::unauthorized(
                    "missing or invalid token: send the API token, the metrics token or an identity token as Authorization: Bearer <token>",
                ))
            }
            Err(e) => Err(e),
        }
    }

    /// The role of the header token (the dashboard's sign-in).
    pub fn role(&self) -> Result<Role, ApiError> {
        match self.header_kind() {
            Some(Kind::Api) => Ok(Role::Operator),
            Some(Kind::Metrics) => Ok(Role::Monitor),
            Some(Kind::Other) => Err(ApiError::unauthorized("invalid token")),
            None => Err(ApiError::unauthorized(
                "missing token: send Authorization: Bearer <token>",
            )),
        }
    }

    fn header_kind(&self) -> Option<Kind> {
        self.header.as_ref().map(|c| c.kind)
    }
}
