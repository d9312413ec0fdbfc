//! goSSE's credentials on the wire, mapped onto identity tokens.
//!
//! A login's token is an ordinary identity token (signed with the identity
//! key, which goSSE's `SSE_APP_KEY` may set): its user is the login's `id`
//! (or the username when no id was given), its application the configured
//! goSSE application, and it carries goSSE's own `username` claim, by
//! which each request finds the account and so the role. A token from the
//! native minting endpoint has no `username` and is no goSSE credential.
//!
//! Browsers carry it in goSSE's shape: the JSON `{"token","id"}`, base64
//! (standard alphabet), in the `sse_token` cookie or the `?token=` query
//! parameter. goSSE took the user from that JSON's `id`, so any holder of a
//! token could read any user's messages; here the user is the signed one,
//! and an `id` that names someone else is refused.

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Gosse;
use super::accounts::Role;
use super::error::GosseError;
use crate::identity::{Identity, MintRequest, TokenError};

/// goSSE's claim naming the account.
pub const USERNAME_CLAIM: &str = "username";

/// The cookie a login sets.
pub const COOKIE: &str = "sse_token";

/// What a login answers, and (base64) what the cookie and `?token=` hold.
/// Field order is goSSE's.
#[derive(Debug, Serialize, Deserialize)]
pub struct Blob {
    pub token: String,
    #[serde(default)]
    pub id: String,
}

/// A verified goSSE caller.
#[derive(Debug)]
pub struct Caller {
    pub identity: Identity,
    pub username: String,
    pub role: Role,
}

impl Blob {
    /// The cookie's (and `?token=`'s) encoding of this JSON text.
    pub fn encode(json: &str) -> String {
        STANDARD.encode(json)
    }

    /// Reads `?token=` or the cookie: base64 of `{"token","id"}`. goSSE's
    /// own client puts it in the URL unencoded, so a `+` arrives as a
    /// space: taken back as `+` (goSSE answered 400). URL-safe base64 and
    /// missing padding are read too.
    pub fn decode(raw: &str) -> Result<Blob, GosseError> {
        let text: String = raw
            .trim()
            .chars()
            .map(|c| if c == ' ' { '+' } else { c })
            .filter(|c| *c != '=')
            .collect();
        let padded = format!("{text}{}", "=".repeat((4 - text.len() % 4) % 4));
        let bytes = STANDARD
            .decode(&padded)
            .or_else(|_| URL_SAFE.decode(&padded))
            .map_err(|_| {
                GosseError::bad_request(
                    "Token decoding failed: the token is not base64 of {\"token\",\"id\"} as POST /login returns it",
                )
            })?;
        serde_json::from_slice::<Blob>(&bytes).map_err(|_| {
            GosseError::bad_request(
                "Token decoding failed: the token is not base64 of {\"token\",\"id\"} as POST /login returns it",
            )
        })
    }
}

/// Signs a login's token for `user` of account `username`.
pub fn mint(gosse: &Gosse, user: &str, username: &str) -> Result<String, GosseError> {
    let mut extra = Map::new();
    extra.insert(USERNAME_CLAIM.into(), Value::String(username.to_string()));
    let minted = gosse
        .tokens
        .mint(MintRequest {
            user: user.to_string(),
            app: Some(gosse.settings.app.clone()),
            ttl: Some(gosse.settings.token_ttl),
            extra,
            ..MintRequest::default()
        })
        .map_err(|e| {
            tracing::error!(error = %e, "signing a goSSE login's token failed");
            GosseError::internal("Token generation failed")
        })?;
    Ok(minted.token.expose().to_string())
}

/// Checks a token and finds its account: 401 for a token that does not
/// verify, is for another application, or names no current account.
pub async fn verify(gosse: &Gosse, token: &str) -> Result<Caller, GosseError> {
    let (identity, claims) = gosse
        .tokens
        .verify_with_claims(token)
        .await
        .map_err(|e| match e {
            e @ TokenError::KeysUnavailable => GosseError::unavailable(e.to_string()),
            e => GosseError::unauthorized(format!("Invalid token: {e}")),
        })?;
    if identity.app != gosse.settings.app {
        return Err(GosseError::unauthorized(
            "Invalid token: it is not for this server's goSSE application",
        ));
    }
    let username = claims
        .get(USERNAME_CLAIM)
        .and_then(Value::as_str)
        .ok_or_else(|| {
            GosseError::unauthorized(
                "Invalid token: it has no username claim (log in with POST /login)",
            )
        })?
        .to_string();
    let role = gosse
        .accounts
        .role_of(&username)
        .ok_or_else(|| GosseError::unauthorized("Invalid token: its account no longer exists"))?;
    Ok(Caller {
        identity,
        username,
        role,
    })
}

/// The bearer token of `Authorization: Bearer <jwt>`, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    Some(token.trim()).filter(|t| scheme.eq_ignore_ascii_case("bearer") && !t.is_empty())
}

/// A caller with a role that may broadcast, from `Authorization: Bearer`.
pub async fn broadcaster(gosse: &Gosse, headers: &HeaderMap) -> Result<Caller, GosseError> {
    let token = bearer(headers).ok_or_else(|| {
        GosseError::unauthorized(
            "Token not found: send Authorization: Bearer <token from POST /login>",
        )
    })?;
    verify(gosse, token).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_read_as_gosse_and_its_client_write_them() {
        let json = r#"{"token":"a.b+c/d","id":"u1"}"#;
        let encoded = Blob::encode(json);
        let blob = Blob::decode(&encoded).unwrap();
        assert_eq!((blob.token.as_str(), blob.id.as_str()), ("a.b+c/d", "u1"));
        // An unencoded `+` in a query string arrives as a space.
        let spaced = Blob::encode(r#"{"token":"x>>>","id":"u?"}"#);
        assert!(spaced.contains('+'), "{spaced}");
        assert_eq!(
            Blob::decode(&spaced.replace('+', " ")).unwrap().token,
            "x>>>"
        );
        assert_eq!(Blob::decode(spaced.trim_end_matches('=')).unwrap().id, "u?");
        let no_id = Blob::decode(&Blob::encode(r#"{"token":"t"}"#)).unwrap();
        assert_eq!(no_id.id, "");
        assert!(Blob::decode("not base64!").is_err());
        assert!(Blob::decode(&Blob::encode("[1]")).is_err());
    }
}
