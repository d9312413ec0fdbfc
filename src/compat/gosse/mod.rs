//! The goSSE profile: goSSE's API (`POST /login`, `POST /broadcast`,
//! `GET /events`, `/admin/stop`) over the native model, so that goSSE's
//! clients (`tinyClientSSE`, its PHP and cURL back-ends) work unchanged.
//!
//! Mapping: a goSSE login is an identity token for user `id` of the
//! configured application ([`token`]); a stream is an identity connection
//! on that application's broadcast, the user's inbox and the event type's
//! topic ([`events`], [`types`]); a broadcast is a send to an inbox or a
//! publish on a type's topic ([`broadcast`]). No hub or delivery logic of
//! its own.
//!
//! What goSSE got wrong is fixed, not copied: accounts hold password
//! hashes ([`accounts`]); the signing key cannot be empty (configuration
//! refuses it); roles are enforced (only broadcasters and admins
//! broadcast, only admins stop the server, whatever the URL); the user is
//! the signed one, not the one the client's JSON names; a malformed body
//! is a 400, never a crash; a CORS preflight works ([`cors`]); events have
//! ids, replay and heartbeats.

pub mod accounts;
mod admin;
mod body;
mod broadcast;
mod cors;
pub mod error;
mod events;
mod login;
pub mod token;
pub mod types;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;

use super::{About, Context};
use crate::hub::Hub;
use crate::identity::Tokens;
use accounts::Accounts;
pub use accounts::{Account, Role, hash_password};

/// Who this profile is, and the paths it routes.
pub const ABOUT: About = About {
    name: "goSSE",
    key: "compat.gosse",
    env: "SSER_COMPAT_GOSSE",
    paths: &["/login", "/broadcast", "/events", "/admin/stop"],
    own_cors: true,
};

/// The profile's tunables (`compat.gosse.*`; `lib.rs` converts).
#[derive(Debug, Clone)]
pub struct GosseSettings {
    /// The native application goSSE's users belong to.
    pub app: String,
    pub accounts: Vec<Account>,
    /// The one browser origin allowed, with credentials.
    pub allowed_origin: Option<String>,
    /// Lifetime of a login's token and cookie.
    pub token_ttl: Duration,
    pub cookie_secure: bool,
    pub cookie_same_site: SameSite,
    /// Topic id prefix of the event types' topics.
    pub type_topic_prefix: String,
    /// Most event types' topics open at once.
    pub max_types: usize,
}

/// The `sse_token` cookie's `SameSite`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    Lax,
    Strict,
    None,
}

/// What the handlers share.
pub struct Gosse {
    hub: Arc<Hub>,
    tokens: Arc<Tokens>,
    accounts: Accounts,
    settings: GosseSettings,
    /// The server's own: `/admin/stop` cancels it.
    shutdown: CancellationToken,
}

/// goSSE's routes, with its CORS. Configuration turns identity tokens on
/// with the profile; were they off, every route would answer 503.
pub fn router(ctx: Context, mut settings: GosseSettings) -> Router {
    let Some(identity) = ctx.state.identity.as_ref() else {
        return unavailable();
    };
    let accounts = Accounts::new(std::mem::take(&mut settings.accounts));
    let gosse = Arc::new(Gosse {
        hub: ctx.state.hub.clone(),
        tokens: identity.tokens.clone(),
        accounts,
        settings,
        shutdown: ctx.shutdown.clone(),
    });
    Router::new()
        .route("/login", post(login::login))
        .route("/broadcast", post(broadcast::broadcast))
        .route("/events", get(events::events))
        .route("/admin/stop", get(admin::stop).post(admin::stop))
        .layer(axum::middleware::from_fn_with_state(
            gosse.clone(),
            cors::cors,
        ))
        .with_state(gosse)
}

/// Every path answers 503 (identity tokens off: cannot happen through
/// configuration, which turns them on with the profile).
fn unavailable() -> Router {
    let answer = || async {
        error::GosseError::unavailable(
            "goSSE needs identity tokens: set SSE_APP_KEY or identity.secret (SSER_JWT_SECRET)",
        )
    };
    ABOUT.paths.iter().fold(Router::new(), |router, path| {
        router.route(path, axum::routing::any(answer))
    })
}
