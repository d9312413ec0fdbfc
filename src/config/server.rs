//! `server.*`: the listeners, request limits, CORS and HTTPS, with the
//! checks that keep a bad value from reaching a socket (header limits, the
//! ACME and certificate settings). The connection limits' checks and the
//! `http2` section are in `connections`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::load::ConfigError;
use super::values::{Bytes, Count, Flag, ListenAddr, Span, StringList};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServerConfig {
    /// Plain HTTP listener. A bare port listens on all interfaces.
    pub addr: ListenAddr,
    /// HTTPS listener, used when `ssl.enabled`.
    pub ssl_addr: ListenAddr,
    /// Largest accepted request body; larger ones get 413.
    pub max_request_body_size: Bytes,
    /// Deepest nesting of arrays and objects an event's `message` may have;
    /// deeper ones get 400, since many subscribers' JSON parsers fail on them.
    pub max_json_depth: Count,
    /// Each connection's read buffer, and so the limit on a request head
    /// (request line and headers; larger ones get 431). It is the biggest
    /// part of what an idle subscriber costs, so it stays small; hyper needs
    /// at least 8 KiB.
    pub max_header_size: Bytes,
    /// How long a graceful shutdown may take before open connections are cut.
    pub shutdown_timeout: Span,
    /// From accept to a new connection's first complete request head: TLS
    /// handshake, HTTP/2 preface and request line and headers included. A
    /// client that connects and says nothing is cut after this.
    pub handshake_timeout: Span,
    /// HTTP/1.1: a later request's head must arrive within this once the
    /// connection is ready for it, so it is also the keep-alive idle limit.
    pub header_read_timeout: Span,
    /// A request body must arrive in full within this of its head (a body
    /// trickled to hold the connection is cut with 408).
    pub request_body_timeout: Span,
    /// A connection with no request in progress (HTTP/2: no open stream) is
    /// closed after this. Streams being served are requests in progress:
    /// they are never cut for being quiet.
    pub connection_idle_timeout: Span,
    /// Connections open at once on both listeners; `0` means automatic (the
    /// open-file limit less a reserve). At the limit a new connection closes
    /// the longest-idle one, or is refused when none is idle.
    pub max_connections: Count,
    /// Connections open at once from one client address (IPv6: one /64);
    /// `0` means no limit. Behind a reverse proxy every connection comes
    /// from the proxy: use 0 there.
    pub max_connections_per_ip: Count,
    pub http2: Http2Config,
    pub cors: CorsConfig,
    pub ssl: SslConfig,
    /// Serve the dashboard at `/`. It holds no data of its own: everything
    /// it shows needs the metrics or API token.
    pub dashboard: Flag,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            addr: ListenAddr("0.0.0.0:8889".parse().expect("literal address")),
            ssl_addr: ListenAddr("0.0.0.0:8888".parse().expect("literal address")),
            max_request_body_size: Bytes(1 << 20),
            max_json_depth: Count(128),
            max_header_size: Bytes(8 << 10),
            shutdown_timeout: Span(std::time::Duration::from_secs(10)),
            handshake_timeout: Span(std::time::Duration::from_secs(10)),
            header_read_timeout: Span(std::time::Duration::from_secs(10)),
            request_body_timeout: Span(std::time::Duration::from_secs(30)),
            connection_idle_timeout: Span(std::time::Duration::from_secs(60)),
            max_connections: Count(0),
            max_connections_per_ip: Count(0),
            http2: Http2Config::default(),
            cors: CorsConfig::default(),
            ssl: SslConfig::default(),
            dashboard: Flag(true),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CorsConfig {
    /// Origins allowed to call the API from a browser. `*` allows any origin
    /// (the request's origin is reflected, so credentials work).
    pub allowed_origins: StringList,
}

impl Default for CorsConfig {
    fn default() -> Self {
        CorsConfig {
            allowed_origins: StringList(vec!["*".to_string()]),
        }
    }
}

/// HTTPS (see `crate::tls` and the README's HTTPS section). With `enabled`, `server.sslAddr`
/// serves the API over TLS (HTTP/2 and HTTP/1.1) and `server.addr` serves ACME
/// http-01 challenges, `/healthz`, `/readyz` and 308 redirects to https.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SslConfig {
    pub enabled: Flag,
    /// One or more domains, comma-separated: the names the ACME certificate
    /// covers and the only SNI names the TLS listener answers (a handshake
    /// for any other name is refused). The first is the redirect target
    /// when a request's Host is not one of them.
    pub domain_name: StringList,
    /// Contact for the ACME account (optional; Let's Encrypt no longer mails
    /// expiry notices, but uses it for account problems).
    pub letsencrypt_email: String,
    /// Where ACME account keys and certificates are cached (created 0700).
    pub cache_dir: PathBuf,
    /// ACME directory: `production` (Let's Encrypt, default), `staging`
    /// (Let's Encrypt's staging CA, untrusted certificates, generous limits),
    /// or the directory URL of any ACME CA.
    pub acme_directory: String,
    /// `tls-alpn-01` (default; only `sslAddr`, public port 443, must be
    /// reachable) or `http-01` (`addr`, public port 80, must be reachable;
    /// use it when something in front terminates TLS).
    pub acme_challenge: String,
    /// A PEM file of extra root certificates trusted when talking to the ACME
    /// directory (a private CA, or a local test CA such as pebble).
    pub acme_ca_root: Option<PathBuf>,
    /// Manual certificates: PEM certificate chain (leaf first). With
    /// `keyFile`, replaces ACME; both files are re-read when they change.
    pub cert_file: Option<PathBuf>,
    /// Manual certificates: PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// How often `certFile`/`keyFile` are checked for changes.
    pub reload_interval: Span,
    /// Also serve the API over plain HTTP on `addr` instead of redirecting
    /// (for a trusted network behind a proxy; SSE then has HTTP/1.1's limit
    /// of six connections per origin in browsers).
    pub api_over_http: Flag,
}

impl Default for SslConfig {
    fn default() -> Self {
        SslConfig {
            enabled: Flag(false),
            domain_name: StringList::default(),
            letsencrypt_email: String::new(),
            cache_dir: PathBuf::from("./_config/certs"),
            acme_directory: "production".to_string(),
            acme_challenge: "tls-alpn-01".to_string(),
            acme_ca_root: None,
            cert_file: None,
            key_file: None,
            reload_interval: Span(std::time::Duration::from_secs(10)),
            api_over_http: Flag(false),
        }
    }
}

impl ServerConfig {
    /// Checks the request limits (`server.ssl` has its own [`SslConfig::check`]).
    pub(super) fn check_limits(&self) -> Result<(), ConfigError> {
        let header = self.max_header_size.0;
        if !(8192..=1 << 20).contains(&header) {
            return Err(ConfigError(format!(
                "server.maxHeaderSize (SSER_MAX_HEADER_SIZE) must be between 8KiB and 1MiB, got {header} bytes"
            )));
        }
        let depth = self.max_json_depth.0;
        if !(1..=10_000).contains(&depth) {
            return Err(ConfigError(format!(
                "server.maxJsonDepth (SSER_MAX_JSON_DEPTH) must be between 1 and 10000, got {depth}"
            )));
        }
        self.check_connections()
    }
}

impl SslConfig {
    /// True when certificates come from files rather than ACME.
    pub fn manual(&self) -> bool {
        self.cert_file.is_some() || self.key_file.is_some()
    }

    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if !self.enabled.0 {
            return Ok(());
        }
        match (&self.cert_file, &self.key_file) {
            (Some(_), None) => {
                return Err(ConfigError(
                    "server.ssl.keyFile (SSER_SSL_KEY_FILE) is required with server.ssl.certFile"
                        .into(),
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError(
                    "server.ssl.certFile (SSER_SSL_CERT_FILE) is required with server.ssl.keyFile"
                        .into(),
                ));
            }
            _ => {}
        }
        if self.manual() {
            // The SNI check uses domainName when given; manual certificates
            // need no list of names otherwise.
        } else if self.domain_name.0.is_empty() {
            return Err(ConfigError(
                "server.ssl.domainName (SSER_DOMAIN_NAME) is required when server.ssl.enabled (SSER_SSL_ENABLED) is true and no server.ssl.certFile is set".into(),
            ));
        }
        for name in &self.domain_name.0 {
            let bare = name.strip_prefix("*.").unwrap_or(name);
            let ok = !bare.is_empty()
                && bare.len() <= 253
                && bare.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if !ok {
                return Err(ConfigError(format!(
                    "server.ssl.domainName (SSER_DOMAIN_NAME): {name:?} is not a DNS name"
                )));
            }
        }
        if !self.manual()
            && let Some(name) = self.domain_name.0.iter().find(|n| n.starts_with("*."))
        {
            return Err(ConfigError(format!(
                "server.ssl.domainName (SSER_DOMAIN_NAME): {name:?} is a wildcard, which ACME issues only by dns-01 (not supported); name each host or use server.ssl.certFile/keyFile"
            )));
        }
        let dir = self.acme_directory.trim();
        if !(dir == "production"
            || dir == "staging"
            || dir.starts_with("https://")
            || dir.starts_with("http://"))
        {
            return Err(ConfigError(format!(
                "server.ssl.acmeDirectory (SSER_ACME_DIRECTORY) must be production, staging or a directory URL, got {dir:?}"
            )));
        }
        if !["tls-alpn-01", "http-01"].contains(&self.acme_challenge.trim()) {
            return Err(ConfigError(format!(
                "server.ssl.acmeChallenge (SSER_ACME_CHALLENGE) must be tls-alpn-01 or http-01, got {:?}",
                self.acme_challenge
            )));
        }
        if self.reload_interval.0.is_zero() {
            return Err(ConfigError(
                "server.ssl.reloadInterval (SSER_SSL_RELOAD_INTERVAL) must be above zero".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, env};

    #[test]
    fn ssl_settings_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let load = |pairs: &[(&str, &str)]| {
            let mut all = vec![("SSER_SSL_ENABLED", "true")];
            all.extend_from_slice(pairs);
            Config::from_sources(dir.path(), &env(&all)).map_err(|e| e.to_string())
        };
        let err = load(&[]).unwrap_err();
        assert!(err.contains("SSER_DOMAIN_NAME"), "{err}");
        let c = load(&[
            ("SSER_DOMAIN_NAME", "a.example.com, b.example.com"),
            ("SSER_ACME_DIRECTORY", "staging"),
            ("SSLPORT", "8443"),
        ])
        .unwrap();
        assert_eq!(
            c.server.ssl.domain_name.0,
            ["a.example.com", "b.example.com"]
        );
        assert_eq!(c.server.ssl_addr.0.port(), 8443);
        let err = load(&[
            ("SSER_DOMAIN_NAME", "x.test"),
            ("SSER_ACME_DIRECTORY", "prod"),
        ])
        .unwrap_err();
        assert!(
            err.contains("server.ssl.acmeDirectory (SSER_ACME_DIRECTORY)"),
            "{err}"
        );
        let err = load(&[
            ("SSER_DOMAIN_NAME", "x.test"),
            ("SSER_ACME_CHALLENGE", "dns-01"),
        ])
        .unwrap_err();
        assert!(err.contains("SSER_ACME_CHALLENGE"), "{err}");
        let err = load(&[("SSER_DOMAIN_NAME", "*.example.com")]).unwrap_err();
        assert!(err.contains("wildcard"), "{err}");
        let err = load(&[("SSER_DOMAIN_NAME", "bad name")]).unwrap_err();
        assert!(err.contains("not a DNS name"), "{err}");
        let err = load(&[("SSER_SSL_CERT_FILE", "cert.pem")]).unwrap_err();
        assert!(err.contains("SSER_SSL_KEY_FILE"), "{err}");
        let c = load(&[
            ("SSER_SSL_CERT_FILE", "c.pem"),
            ("SSER_SSL_KEY_FILE", "k.pem"),
        ])
        .unwrap();
        assert!(c.server.ssl.manual());
        // Disabled: nothing is required.
        Config::from_sources(dir.path(), &env(&[("SSER_ACME_DIRECTORY", "nonsense")])).unwrap();
    }
}

/// HTTP/2 connections (cleartext prior knowledge, or ALPN `h2` over TLS).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Http2Config {
    /// A PING is sent after this long without a frame from the client;
    /// `0` turns pings off.
    pub keep_alive_interval: Span,
    /// A client that does not answer a PING within this is cut.
    pub keep_alive_timeout: Span,
    /// Streams (requests, SSE subscriptions) one connection may have open.
    pub max_concurrent_streams: Count,
}

impl Default for Http2Config {
    fn default() -> Self {
        Http2Config {
            keep_alive_interval: Span(std::time::Duration::from_secs(30)),
            keep_alive_timeout: Span(std::time::Duration::from_secs(20)),
            max_concurrent_streams: Count(100),
        }
    }
}
