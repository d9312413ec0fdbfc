//! The TLS handshake step of the shared accept loop (`crate::serve`): a
//! deadline on the handshake, and tls-alpn-01 validations answered by the
//! handshake itself.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::ACME_TLS_ALPN;
use crate::serve::Handshake;

/// A client that opens a connection and says nothing is cut after this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct TlsHandshake(pub TlsAcceptor);

impl Handshake for TlsHandshake {
    type Io = TlsStream<TcpStream>;

    async fn handshake(&self, tcp: TcpStream, peer: SocketAddr) -> Option<Self::Io> {
        let mut tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.0.accept(tcp)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake refused");
                return None;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return None;
            }
        };
        if tls.get_ref().1.alpn_protocol() == Some(ACME_TLS_ALPN) {
            // A tls-alpn-01 validation: the handshake itself was the answer.
            tracing::info!(%peer, "ACME tls-alpn-01 validation answered");
            let _ = tls.shutdown().await;
            return None;
        }
        Some(tls)
    }
}
