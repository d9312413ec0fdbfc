//! The profile's credentials: an HS256 JWT whose `iss` names the
//! application and `sub` the user, from `Authorization: Bearer <jwt>` or,
//! for browsers (an `EventSource` cannot set headers), the query parameter
//! literally named `Authorization`. Checked with the identity key, like
//! every identity token.
//!
//! The original crashed its handler on a signed token without `iss` or
//! `sub`, and on `Bearer` with nothing after it: here each is a 401 naming
//! what was wrong. A token never appears in a response or a log line.

use axum::extract::Query;
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, Uri};

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::identity::{Identity, TokenError};

/// The query parameter the original reads a token from.
const QUERY: &str = "Authorization";

/// Who the request is: the API token (operators, for the listings) or an
/// identity.
pub enum Caller {
    Operator,
    Identity(Identity),
}

/// The verified identity of the request's token; 401 without one.
pub async fn identity(
    state: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<Identity, ApiError> {
    let token = token(headers, uri)?;
    verify(state, &token).await
}

/// As [`identity`], and the API token in the header is an operator.
pub async fn caller(state: &AppState, headers: &HeaderMap, uri: &Uri) -> Result<Caller, ApiError> {
    let token = token(headers, uri)?;
    if headers.contains_key(AUTHORIZATION) && state.api_token.matches(&token) {
        return Ok(Caller::Operator);
    }
    Ok(Caller::Identity(verify(state, &token).await?))
}

async fn verify(state: &AppState, token: &str) -> Result<Identity, ApiError> {
    let Some(tokens) = &state.identity else {
        return Err(ApiError::identity_off());
    };
    let identity = tokens
        .tokens
        .verify(token)
        .await
        .map_err(|e| ApiError::token(&e))?;
    if !identity.app_claimed {
        // "the token's "iss" claim is missing: it names the application".
        return Err(ApiError::token(&TokenError::InvalidClaim {
            claim: tokens.tokens.settings().claims.app.clone(),
            reason: "is missing: it names the application",
        }));
    }
    Ok(identity)
}

/// The token's text: the header's, else the query parameter's. Present but
/// empty (`Bearer` alone) is a 401 of its own.
fn token(headers: &HeaderMap, uri: &Uri) -> Result<String, ApiError> {
    let raw = match headers.get(AUTHORIZATION) {
        Some(value) => value
            .to_str()
            .map_err(|_| ApiError::token_missing("the Authorization header is not readable text"))?
            .to_string(),
        None => from_query(uri)?.ok_or_else(|| {
            ApiError::token_missing(
                "missing token: send Authorization: Bearer <jwt>, or ?Authorization=<jwt> from a browser",
            )
        })?,
    };
    let raw = raw.trim();
    let token = match raw.split_once(char::is_whitespace) {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ if raw.eq_ignore_ascii_case("bearer") => "",
        _ => raw,
    };
    if token.is_empty() {
        return Err(ApiError::token_missing(
            "empty token: send Authorization: Bearer <jwt>",
        ));
    }
    Ok(token.to_string())
}

/// `?Authorization=`: the first, and only, one.
fn from_query(uri: &Uri) -> Result<Option<String>, ApiError> {
    let Ok(Query(pairs)) = Query::<Vec<(String, String)>>::try_from_uri(uri) else {
        return Err(ApiError::bad_request("the query string is not readable"));
    };
    let mut found = pairs
        .into_iter()
        .filter(|(k, _)| k == QUERY)
        .map(|(_, v)| v);
    let first = found.next();
    if found.next().is_some() {
        return Err(ApiError::bad_request(
            "repeated query parameter: Authorization",
        ));
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(header: Option<&str>, uri: &str) -> Result<String, u16> {
        let mut headers = HeaderMap::new();
        if let Some(h) = header {
            headers.insert(AUTHORIZATION, h.parse().unwrap());
        }
        token(&headers, &uri.parse().unwrap()).map_err(|e| e.status.as_u16())
    }

    #[test]
    fn header_then_query_and_empty_bearers_refused() {
        assert_eq!(read(Some("Bearer a.b.c"), "/sse"), Ok("a.b.c".into()));
        assert_eq!(read(Some("bearer   a.b.c "), "/sse"), Ok("a.b.c".into()));
        assert_eq!(read(Some("a.b.c"), "/sse"), Ok("a.b.c".into()));
        assert_eq!(read(None, "/sse?Authorization=a.b.c"), Ok("a.b.c".into()));
        assert_eq!(
            read(None, "/sse?Authorization=Bearer%20a.b.c"),
            Ok("a.b.c".into())
        );
        // The header wins over the query.
        assert_eq!(
            read(Some("Bearer h"), "/sse?Authorization=q"),
            Ok("h".into())
        );
        for empty in ["Bearer", "Bearer ", "bearer    "] {
            assert_eq!(read(Some(empty), "/sse"), Err(401), "{empty:?}");
        }
        assert_eq!(read(None, "/sse?Authorization="), Err(401));
        assert_eq!(read(None, "/sse"), Err(401));
        assert_eq!(read(None, "/sse?Authorization=a&Authorization=b"), Err(400));
    }
}
