//! The sse-notification-service profile: its clients' `GET /sse`, its
//! `GET /connections/{app}[/{user}]` listings and its `GET /health`,
//! mapped onto identity connections (README, "Moving from
//! sse-notification-service").

mod health;

use axum::Router;
use axum::routing::get;

use super::{About, Context};

/// Who the profile is and what it routes.
pub const ABOUT: About = About {
    name: "sse-notification-service",
    key: "compat.notificationService",
    env: "SSER_COMPAT_NOTIFICATION_SERVICE",
    paths: PATHS,
    own_cors: false,
};

/// Every path the profile routes (its README's).
pub const PATHS: &[&str] = &["/", "/health"];

/// The profile's tunables (`compat.notificationService.*`; `lib.rs`
/// converts).
#[derive(Debug, Clone, Default)]
pub struct NotificationServiceSettings {}

/// The profile's routes.
pub fn router(ctx: Context, settings: NotificationServiceSettings) -> Router {
    let _ = settings;
    Router::new()
        .route("/", get(health::root))
        .route("/health", get(health::health))
        .with_state(ctx)
}
