//! HTTPS: certificates from Let's Encrypt (or any ACME CA) through
//! `rustls-acme`, or from PEM files; HTTP/2 and HTTP/1.1 over one TLS
//! listener; and the plain listener's job when TLS is on (ACME http-01,
//! health checks, 308 redirects to https).
//!
//! Shape: [`Tls::bind`] binds `server.sslAddr` and builds one rustls
//! `ServerConfig` whose certificate resolver is either ACME's
//! ([`acme`]) or the file watcher's ([`files`]), wrapped in [`SniGuard`] so a
//! handshake for a name we do not serve is refused. [`Tls::start`] spawns the
//! certificate upkeep (ordering, renewal, reloading) and the accept loop
//! ([`serve`]). Neither path can take the process down: with no certificate
//! the listener refuses handshakes, logs why, and `/readyz` reports the `tls`
//! check as false until a certificate arrives.
//!
//! Why our own accept loop rather than `axum-server`: it is ~60 lines, keeps
//! the same TCP options and graceful shutdown as the plain listener, and lets
//! the server config offer `h2` by ALPN (rustls-acme's own config offers
//! none) next to `acme-tls/1` for tls-alpn-01 validations.

pub mod acme;
pub mod files;
pub mod redirect;
pub mod serve;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::readiness::Readiness;

/// The ALPN name of tls-alpn-01 validation connections (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The readiness check this module owns.
pub const READINESS_CHECK: &str = "tls";

/// HTTPS settings (`server.sslAddr` and `server.ssl.*`; `lib.rs` builds them
/// from the configuration, which has already checked them).
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub addr: SocketAddr,
    /// The names the certificate covers and the only SNI names answered.
    pub domain_names: Vec<String>,
    pub letsencrypt_email: String,
    pub cache_dir: std::path::PathBuf,
    /// `production`, `staging` or a directory URL.
    pub acme_directory: String,
    /// Use ACME's http-01 challenge instead of tls-alpn-01.
    pub acme_http01: bool,
    pub acme_ca_root: Option<std::path::PathBuf>,
    pub cert_file: Option<std::path::PathBuf>,
    pub key_file: Option<std::path::PathBuf>,
    pub reload_interval: Duration,
    pub api_over_http: bool,
}

impl TlsSettings {
    /// True when certificates come from files rather than ACME.
    pub fn manual(&self) -> bool {
        self.cert_file.is_some() || self.key_file.is_some()
    }
}

/// Why TLS could not be set up. Each message names the configuration key.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot listen on {addr} (server.sslAddr / SSLPORT): {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Setup(String),
}

/// The crypto provider for everything TLS here: ring, the one reqwest also
/// uses, with rustls' defaults, which are TLS 1.3 and TLS 1.2 with
/// forward-secret AEAD suites only.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Where certificates come from.
enum Source {
    Acme(Box<acme::Acme>),
    Files(Arc<files::FileCerts>),
}

/// A bound TLS listener with its certificate source, not yet serving.
pub struct Tls {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    source: Source,
    redirect: redirect::Redirect,
    api_over_http: bool,
    reload_interval: Duration,
}

impl Tls {
    pub async fn bind(ssl: &TlsSettings, readiness: &Readiness) -> Result<Tls, TlsError> {
        let addr = ssl.addr;
        let listener =
            crate::serve::listen(addr).map_err(|source| TlsError::Bind { addr, source })?;
        let https_port = listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or(addr.port());
        readiness.set(READINESS_CHECK, false, "no certificate yet");

        let (source, resolver, acme_alpn): (Source, Arc<dyn ResolvesServerCert>, bool) =
            if ssl.manual() {
                let certs = files::FileCerts::open(ssl, readiness);
                (Source::Files(certs.clone()), certs, false)
            } else {
                let acme = acme::Acme::new(ssl)?;
                let resolver = acme.resolver();
                let tls_alpn = !acme.uses_http01();
                (Source::Acme(Box::new(acme)), resolver, tls_alpn)
            };
        let guard = Arc::new(SniGuard::new(resolver, &ssl.domain_names));

        let mut server_config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(format!("TLS setup: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(guard);
        server_config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        if acme_alpn {
            server_config.alpn_protocols.push(ACME_TLS_ALPN.to_vec());
        }

        let http01 = match &source {
            Source::Acme(acme) if acme.uses_http01() => Some(acme.resolver()),
            _ => None,
        };
        Ok(Tls {
            listener,
            acceptor: TlsAcceptor::from(Arc::new(server_config)),
            source,
            redirect: redirect::Redirect::new(&ssl.domain_names, https_port, http01),
            api_over_http: ssl.api_over_http,
            reload_interval: ssl.reload_interval,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// What the plain listener serves while TLS is on: the API itself if
    /// `server.ssl.apiOverHttp`, otherwise only ACME http-01 answers,
    /// `/healthz`, `/readyz` and 308 redirects to https.
    pub fn plain_router(&self, api: Router) -> Router {
        self.redirect.router(api, self.api_over_http)
    }

    /// Spawns the certificate upkeep and the TLS accept loop; the returned
    /// task ends when `shutdown` is cancelled and open connections finished.
    pub fn start(
        self,
        app: Router,
        readiness: Arc<Readiness>,
        shutdown: CancellationToken,
        conns: Arc<crate::serve::Connections>,
    ) -> JoinHandle<std::io::Result<()>> {
        match self.source {
            Source::Acme(acme) => {
                tokio::spawn(acme.run(readiness, shutdown.clone()));
            }
            Source::Files(certs) => {
                tokio::spawn(certs.watch(self.reload_interval, readiness, shutdown.clone()));
            }
        }
        tokio::spawn(crate::serve::serve(
            self.listener,
            app,
            serve::TlsHandshake(self.acceptor),
            shutdown,
            conns,
        ))
    }
}

/// Refuses handshakes whose SNI names none of `server.ssl.domainName`
/// (rustls answers with a handshake_failure alert), so a scanner asking for
/// another name learns nothing and a misdirected client fails fast. A hello
/// without SNI (a client that dialled an IP address) gets the certificate.
#[derive(Debug)]
pub struct SniGuard {
    inner: Arc<dyn ResolvesServerCert>,
    names: Vec<String>,
}

impl SniGuard {
    pub fn new(inner: Arc<dyn ResolvesServerCert>, names: &[String]) -> SniGuard {
        SniGuard {
            inner,
            names: names.iter().map(|n| n.to_ascii_lowercase()).collect(),
        }
    }

    fn allows(&self, sni: &str) -> bool {
        self.names.is_empty() || self.names.iter().any(|n| name_matches(n, sni))
    }
}

impl ResolvesServerCert for SniGuard {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(sni) = hello.server_name()
            && !self.allows(sni)
        {
            tracing::debug!(sni, "TLS handshake for a name we do not serve refused");
            return None;
        }
        self.inner.resolve(hello)
    }
}

/// `pattern` is a configured name, lower case, possibly `*.example.com`
/// (which matches exactly one more label).
pub fn name_matches(pattern: &str, name: &str) -> bool {
    let name = name.trim_end_matches('.');
    match pattern.strip_prefix("*.") {
        Some(suffix) => name
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest.eq_ignore_ascii_case(suffix)),
        None => pattern.eq_ignore_ascii_case(name),
    }
}

/// The leaf certificate's notAfter, for readiness messages.
pub fn not_after(leaf: &[u8]) -> Option<SystemTime> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).ok()?;
    let secs = cert.validity().not_after.timestamp();
    let secs = u64::try_from(secs).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

pub fn format_time(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::name_matches;

    #[test]
    fn names_and_wildcards() {
        assert!(name_matches("sser.example.com", "SSER.example.com"));
        assert!(name_matches("sser.example.com", "sser.example.com."));
        assert!(!name_matches("sser.example.com", "example.com"));
        assert!(name_matches("*.example.com", "a.example.com"));
        assert!(!name_matches("*.example.com", "example.com"));
        assert!(!name_matches("*.example.com", "a.b.example.com"));
        assert!(!name_matches("*.example.com", ".example.com"));
    }
}
