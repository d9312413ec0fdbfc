//! Certificates from an ACME CA (Let's Encrypt by default) via `rustls-acme`.
//!
//! `rustls-acme`'s [`AcmeState`] is a stream: polling it loads the cached
//! certificate and account, orders a certificate when there is none, renews
//! at two thirds of the lifetime, and retries failed orders with exponential
//! backoff (1 s doubling up to ~18 h). Its resolver answers tls-alpn-01
//! validations and serves the current certificate; its http-01 answers are
//! served by the plain listener ([`super::redirect`]). We poll the stream in
//! one task, log every event, and keep the `tls` readiness check honest:
//!
//! - no certificate yet → false, with the last error;
//! - certificate served, renewal failing → true while it has more than
//!   [`EXPIRY_MARGIN`] left (the server serves fine; the message says why
//!   renewal fails), false after that;
//! - certificate deployed → true, with its expiry.
//!
//! Account key and certificates are cached in `server.ssl.cacheDir` (created
//! 0700: the files hold private keys), keyed by domains and directory URL, so
//! a restart reuses them without a new order.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures_util::StreamExt;
use parking_lot::Mutex;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls_acme::caches::DirCache;
use rustls_acme::{
    AccountCache, AcmeConfig, AcmeState, CertCache, EventOk, ResolvesServerCertAcme, UseChallenge,
};
use tokio_util::sync::CancellationToken;

use super::{READINESS_CHECK, TlsError, TlsSettings, format_time, not_after, provider};
use crate::readiness::Readiness;

/// Below this much validity left, failing renewals make the server unready.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(7 * 24 * 3600);

pub struct Acme {
    state: AcmeState<std::io::Error, std::io::Error>,
    domains: Vec<String>,
    directory: String,
    http01: bool,
    expiry: Arc<Mutex<Option<SystemTime>>>,
}

/// `production`, `staging` or a URL → the directory URL.
pub fn directory_url(setting: &str) -> String {
    match setting.trim() {
        "production" => rustls_acme::acme::LETS_ENCRYPT_PRODUCTION_DIRECTORY.to_string(),
        "staging" => rustls_acme::acme::LETS_ENCRYPT_STAGING_DIRECTORY.to_string(),
        url => url.to_string(),
    }
}

impl Acme {
    pub fn new(ssl: &TlsSettings) -> Result<Acme, TlsError> {
        prepare_cache_dir(&ssl.cache_dir)?;
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = &ssl.acme_ca_root {
            add_roots(&mut roots, path)?;
        }
        let client = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(format!("TLS setup: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();

        // rustls-acme compares the challenge name with the SNI byte for
        // byte, and clients send SNI in lower case.
        let domains: Vec<String> = ssl
            .domain_names
            .iter()
            .map(|d| d.trim_end_matches('.').to_ascii_lowercase())
            .collect();
        let directory = directory_url(&ssl.acme_directory);
        let http01 = ssl.acme_http01;
        let expiry = Arc::new(Mutex::new(None));
        let mut acme = AcmeConfig::new_with_client_config(&domains, Arc::new(client))
            .directory(&directory)
            .challenge_type(if http01 {
                UseChallenge::Http01
            } else {
                UseChallenge::TlsAlpn01
            })
            .cache(TrackedCache {
                dir: DirCache::new(ssl.cache_dir.clone()),
                expiry: expiry.clone(),
            });
        let email = ssl.letsencrypt_email.trim();
        let email = email.strip_prefix("mailto:").unwrap_or(email);
        if !email.is_empty() {
            acme = acme.contact_push(format!("mailto:{email}"));
        }
        Ok(Acme {
            state: acme.state(),
            domains,
            directory,
            http01,
            expiry,
        })
    }

    pub fn resolver(&self) -> Arc<ResolvesServerCertAcme> {
        self.state.resolver()
    }

    pub fn uses_http01(&self) -> bool {
        self.http01
    }

    /// Drives ordering and renewal until `shutdown`.
    pub async fn run(mut self, readiness: Arc<Readiness>, shutdown: CancellationToken) {
        tracing::info!(
            domains = ?self.domains,
            directory = %self.directory,
            challenge = if self.http01 { "http-01" } else { "tls-alpn-01" },
            "ACME: looking for a cached certificate, ordering one if there is none"
        );
        let mut failures: u32 = 0;
        let mut has_cert = false;
        loop {
            let event = tokio::select! {
                () = shutdown.cancelled() => return,
                event = self.state.next() => event,
            };
            let Some(event) = event else { return };
            let expiry = *self.expiry.lock();
            let until = expiry.map(format_time).unwrap_or_else(|| "unknown".into());
            match event {
                Ok(EventOk::DeployedCachedCert) => {
                    has_cert = true;
                    // An expired cached certificate is still served while a
                    // new one is ordered, but the server is not ready.
                    let valid = expiry.is_none_or(|t| t > SystemTime::now());
                    if valid {
                        tracing::info!(valid_until = %until, "ACME: serving the cached certificate");
                    } else {
                        tracing::warn!(expired = %until, "ACME: the cached certificate has expired; ordering a new one");
                    }
                    readiness.set(
                        READINESS_CHECK,
                        valid,
                        if valid {
                            format!("cached certificate, valid until {until}")
                        } else {
                            format!("cached certificate expired {until}; ordering a new one")
                        },
                    );
                }
                Ok(EventOk::DeployedNewCert) => {
                    has_cert = true;
                    failures = 0;
                    tracing::info!(domains = ?self.domains, "ACME: new certificate deployed");
                    readiness.set(READINESS_CHECK, true, "new certificate deployed");
                }
                Ok(EventOk::CertCacheStore) => {
                    tracing::debug!("ACME: certificate cached");
                    if has_cert && failures == 0 {
                        readiness.set(
                            READINESS_CHECK,
                            true,
                            format!("certificate valid until {until}"),
                        );
                    }
                }
                Ok(EventOk::AccountCacheStore) => tracing::debug!("ACME: account key cached"),
                Err(e) => {
                    failures += 1;
                    tracing::warn!(
                        error = %e,
                        attempt = failures,
                        "ACME: certificate order failed; retrying with backoff"
                    );
                    let (ok, message) = if !has_cert {
                        (
                            false,
                            format!("no certificate yet ({failures} failed attempts): {e}"),
                        )
                    } else {
                        let left = expiry
                            .and_then(|t| t.duration_since(SystemTime::now()).ok())
                            .unwrap_or_default();
                        (
                            left > EXPIRY_MARGIN,
                            format!(
                                "certificate valid until {until}; renewal failing ({failures} attempts): {e}"
                            ),
                        )
                    };
                    readiness.set(READINESS_CHECK, ok, message);
                }
            }
        }
    }
}

/// Creates the cache folder (0700) or says which key is wrong.
fn prepare_cache_dir(dir: &Path) -> Result<(), TlsError> {
    let fail = |e: std::io::Error| {
        TlsError::Setup(format!(
            "server.ssl.cacheDir (SSER_SSL_CACHE_DIR) {}: {e}",
            dir.display()
        ))
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    #[cfg(unix)]
    {
        // Only the owner may change the mode; a folder someone else made
        // for us is used as it is.
        use std::os::unix::fs::PermissionsExt;
        if let Err(e) = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot make the certificate cache private (0700)");
        }
    }
    Ok(())
}

fn add_roots(roots: &mut RootCertStore, path: &PathBuf) -> Result<(), TlsError> {
    let fail = |what: String| {
        TlsError::Setup(format!(
            "server.ssl.acmeCaRoot (SSER_ACME_CA_ROOT) {}: {what}",
            path.display()
        ))
    };
    let mut added = 0;
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| fail(e.to_string()))? {
        let cert = cert.map_err(|e| fail(e.to_string()))?;
        roots.add(cert).map_err(|e| fail(e.to_string()))?;
        added += 1;
    }
    if added == 0 {
        return Err(fail("no PEM certificate in the file".into()));
    }
    Ok(())
}

/// `DirCache`, noting the expiry of each certificate loaded or stored.
struct TrackedCache {
    dir: DirCache<PathBuf>,
    expiry: Arc<Mutex<Option<SystemTime>>>,
}

impl TrackedCache {
    fn note(&self, pem: &[u8]) {
        let leaf = CertificateDer::pem_slice_iter(pem)
            .next()
            .and_then(Result::ok);
        if let Some(t) = leaf.and_then(|c| not_after(&c)) {
            *self.expiry.lock() = Some(t);
        }
    }
}

#[async_trait]
impl CertCache for TrackedCache {
    type EC = std::io::Error;
    async fn load_cert(
        &self,
        domains: &[String],
        directory_url: &str,
    ) -> Result<Option<Vec<u8>>, Self::EC> {
        let pem = self.dir.load_cert(domains, directory_url).await?;
        if let Some(pem) = &pem {
            self.note(pem);
        }
        Ok(pem)
    }
    async fn store_cert(
        &self,
        domains: &[String],
        directory_url: &str,
        cert: &[u8],
    ) -> Result<(), Self::EC> {
        self.note(cert);
        self.dir.store_cert(domains, directory_url, cert).await
    }
}

#[async_trait]
impl AccountCache for TrackedCache {
    type EA = std::io::Error;
    async fn load_account(
        &self,
        contact: &[String],
        directory_url: &str,
    ) -> Result<Option<Vec<u8>>, Self::EA> {
        self.dir.load_account(contact, directory_url).await
    }
    async fn store_account(
        &self,
        contact: &[String],
        directory_url: &str,
        account: &[u8],
    ) -> Result<(), Self::EA> {
        self.dir
            .store_account(contact, directory_url, account)
            .await
    }
}
