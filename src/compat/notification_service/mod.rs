//! The sse-notification-service profile (README, "Moving from
//! sse-notification-service"): its clients' `GET /sse` ([`stream`]), its
//! `GET /connections/{app}[/{user}]` listings ([`connections`]) and its
//! `GET /health` ([`health`]), with its tokens ([`auth`]) read as identity
//! tokens: `iss` is the application, `sub` the user.
//!
//! A stream is an identity connection on the user's and the application's
//! inboxes, so what its producers sent with Redis `PUBLISH
//! {app}:channel:{user}` is, here, `POST /api/v1/send` to that user; in a
//! cluster, sser consumes those Redis channels itself ([`producers`]).

mod auth;
mod connections;
mod health;
pub mod producers;
mod stream;

use std::time::Duration;

use axum::Router;
use axum::routing::get;

use super::{About, Context};

pub use stream::ping_frame;

/// Who the profile is and what it routes.
pub const ABOUT: About = About {
    name: "sse-notification-service",
    key: "compat.notificationService",
    env: "SSER_COMPAT_NOTIFICATION_SERVICE",
    paths: PATHS,
    own_cors: false,
};

/// Every path the profile routes (its README's, and its `/` redirect).
pub const PATHS: &[&str] = &[
    "/",
    "/health",
    "/sse",
    "/connections/{app}",
    "/connections/{app}/{user}",
];

/// The profile's tunables (`compat.notificationService.*`; `lib.rs`
/// converts).
#[derive(Debug, Clone)]
pub struct NotificationServiceSettings {
    /// How often each stream gets the `ping` event.
    pub ping_interval: Duration,
}

impl Default for NotificationServiceSettings {
    fn default() -> Self {
        NotificationServiceSettings {
            ping_interval: Duration::from_secs(30),
        }
    }
}

/// What the handlers share.
#[derive(Clone)]
struct NsState {
    ctx: Context,
    settings: std::sync::Arc<NotificationServiceSettings>,
}

/// The profile's routes.
pub fn router(ctx: Context, settings: NotificationServiceSettings) -> Router {
    Router::new()
        .route("/", get(health::root))
        .route("/health", get(health::health))
        .route("/sse", get(stream::sse))
        .route("/connections/{app}", get(connections::by_app))
        .route("/connections/{app}/{user}", get(connections::by_user))
        .with_state(NsState {
            ctx,
            settings: std::sync::Arc::new(settings),
        })
}
