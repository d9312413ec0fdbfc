//! Minting: a back-end asks for a token for one of its users, and gets one
//! that this server (and anything sharing its key) verifies as exactly that
//! identity. Requests are held to the same rules as verified claims, and to
//! the configured longest lifetime.

use std::time::Duration;

use jsonwebtoken::Header;
use serde_json::{Map, Value};

use super::claims::{check_name, insert_claim, parse_selectors};
use super::error::MintError;
use super::keys::SigningKey;
use super::settings::IdentitySettings;
use super::verify::unix_now;
use crate::secret::Secret;

/// What a back-end asks a token for (`POST /api/v1/tokens`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MintRequest {
    pub user: String,
    /// The application; the configured default when absent.
    pub app: Option<String>,
    pub device: Option<String>,
    /// Topic selectors (see [`TopicSelector`](super::TopicSelector)).
    pub topics: Option<Vec<String>>,
    /// Lifetime; the configured default when absent, at most the maximum.
    pub ttl: Option<Duration>,
    /// More claims, beside the identity's (a compatibility profile's own,
    /// such as goSSE's `username`). They never replace a claim the
    /// identity or JWT itself writes: those are written after them.
    pub extra: Map<String, Value>,
}

/// A minted token and when it expires.
#[derive(Debug, Clone)]
pub struct Minted {
    /// The token. A `Secret`, so it cannot reach a log by accident.
    pub token: Secret,
    /// Unix seconds (the token's `exp`).
    pub expires_at: u64,
}

pub(crate) fn mint(
    request: MintRequest,
    signer: &SigningKey,
    settings: &IdentitySettings,
) -> Result<Minted, MintError> {
    let max_secs = settings.max_ttl.as_secs();
    let ttl = request.ttl.unwrap_or(settings.default_ttl).as_secs();
    if ttl == 0 || ttl > max_secs {
        return Err(MintError::Ttl { max_secs });
    }
    let field = |field: &'static str| move |reason| MintError::InvalidField { field, reason };
    check_name(&request.user).map_err(field("user"))?;
    let app = match request.app {
        Some(app) => {
            check_name(&app).map_err(field("app"))?;
            app
        }
        None => settings.default_app.clone(),
    };
    if let Some(device) = &request.device {
        check_name(device).map_err(field("device"))?;
    }
    let topics = match &request.topics {
        Some(topics) => Some(parse_selectors(topics).map_err(field("topics"))?),
        None => None,
    };

    let now = unix_now();
    let expires_at = now + ttl;
    let names = &settings.claims;
    let mut claims = request.extra;
    insert_claim(&mut claims, &names.user, Value::String(request.user));
    insert_claim(&mut claims, &names.app, Value::String(app));
    if let Some(device) = request.device {
        insert_claim(&mut claims, &names.device, Value::String(device));
    }
    if let Some(topics) = topics {
        let texts = topics
            .iter()
            .map(|t| Value::String(t.to_string()))
            .collect();
        insert_claim(&mut claims, &names.topics, Value::Array(texts));
    }
    if let Some(aud) = settings.audience.first() {
        claims.insert("aud".into(), Value::String(aud.clone()));
    }
    claims.insert("iat".into(), now.into());
    claims.insert("exp".into(), expires_at.into());

    let mut header = Header::new(signer.alg);
    header.kid = signer.kid.clone();
    let token = jsonwebtoken::encode(&header, &claims, &signer.key).map_err(|e| {
        tracing::error!(error = %e, "signing a minted token failed");
        MintError::Signing
    })?;
    Ok(Minted {
        token: Secret::new(&token),
        expires_at,
    })
}
