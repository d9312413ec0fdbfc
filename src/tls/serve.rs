//! The TLS handshake step of the shared accept loop (`crate::serve`, which
//! bounds it with `server.handshakeTimeout`), and tls-alpn-01 validations
//! answered by the handshake itself.

use std::net::SocketAddr;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::ACME_TLS_ALPN;
use crate::serve::Handshake;

#[derive(Clone)]
pub struct TlsHandshake(pub TlsAcceptor);

impl Handshake for TlsHandshake {
    type Io = TlsStream<TcpStream>;
    const PLAIN_HTTP: bool = false;

    async fn handshake(&self, tcp: TcpStream, peer: SocketAddr) -> Option<Self::Io> {
        let mut tls = match self.0.accept(tcp).await {
            Ok(tls) => tls,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "TLS handshake refused");
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
