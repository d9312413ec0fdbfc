//! The client's address, as the accept loop saw it: `serve` puts the peer
//! of each TCP connection into every request's extensions (axum's
//! [`ConnectInfo`]), and [`Remote`] reads it back. The registry lists it
//! and counts identity connections per IP with it.
//!
//! It is the TCP peer: behind a reverse proxy, the proxy's address. (Trusting
//! `X-Forwarded-For` would let any client choose the address it is limited
//! and listed by.) A request that came through no listener, such as one
//! made in-process, has none.

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

/// The peer's address, when the request came through a listener.
#[derive(Debug, Clone, Copy)]
pub struct Remote(pub Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Remote {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Remote(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0),
        ))
    }
}
