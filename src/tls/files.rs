//! Manual certificates: a PEM chain (`server.ssl.certFile`, leaf first) and
//! its key (`server.ssl.keyFile`), re-read when either file changes.
//!
//! The files are polled every `server.ssl.reloadInterval` (size and mtime);
//! polling works the same on every filesystem, bind mounts and Kubernetes
//! secret volumes included, where change notifications are unreliable. A
//! reload that fails (a half-written file, a key that does not match the
//! chain) keeps the previous certificate, logs why once, and is retried on
//! the next tick until it succeeds. With no valid certificate at all the
//! listener refuses handshakes and `/readyz` says why; the process stays up.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::RwLock;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_util::sync::CancellationToken;

use super::{READINESS_CHECK, TlsSettings, format_time, not_after, provider};
use crate::readiness::Readiness;

#[derive(Debug)]
pub struct FileCerts {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Option<Arc<CertifiedKey>>>,
}

/// What identifies one version of the two files.
type Stamp = Option<[(u64, Option<SystemTime>); 2]>;

impl FileCerts {
    /// Loads the files once; failure is logged and reported, not fatal.
    pub fn open(ssl: &TlsSettings, readiness: &Readiness) -> Arc<FileCerts> {
        let certs = Arc::new(FileCerts {
            cert_path: ssl.cert_file.clone().unwrap_or_default(),
            key_path: ssl.key_file.clone().unwrap_or_default(),
            current: RwLock::new(None),
        });
        if let Err(e) = certs.reload(readiness) {
            tracing::error!(error = %e, "TLS: no usable certificate; HTTPS handshakes will fail until the files are fixed");
        }
        certs
    }

    /// Polls the files until `shutdown`, reloading on change.
    pub async fn watch(
        self: Arc<Self>,
        interval: Duration,
        readiness: Arc<Readiness>,
        shutdown: CancellationToken,
    ) {
        let mut loaded = self.stamp().await;
        let mut failed: Stamp = None;
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let stamp = self.stamp().await;
            if stamp == loaded && self.current.read().is_some() {
                continue;
            }
            match self.reload(&readiness) {
                Ok(()) => {
                    loaded = stamp;
                    failed = None;
                }
                Err(e) => {
                    // Log each broken version once, but keep retrying: the
                    // writer may not have finished.
                    if failed != stamp {
                        tracing::warn!(error = %e, "TLS: certificate files changed but cannot be loaded; keeping the previous certificate");
                        failed = stamp;
                    }
                }
            }
        }
    }

    async fn stamp(&self) -> Stamp {
        let one = |m: std::fs::Metadata| (m.len(), m.modified().ok());
        let cert = tokio::fs::metadata(&self.cert_path).await.ok()?;
        let key = tokio::fs::metadata(&self.key_path).await.ok()?;
        Some([one(cert), one(key)])
    }

    fn reload(&self, readiness: &Readiness) -> Result<(), String> {
        match load(&self.cert_path, &self.key_path) {
            Ok((key, expiry)) => {
                let until = expiry.map(format_time).unwrap_or_else(|| "unknown".into());
                tracing::info!(cert = %self.cert_path.display(), valid_until = %until, "TLS: certificate loaded");
                *self.current.write() = Some(Arc::new(key));
                readiness.set(
                    READINESS_CHECK,
                    true,
                    format!(
                        "certificate from {}, valid until {until}",
                        self.cert_path.display()
                    ),
                );
                Ok(())
            }
            Err(e) => {
                // A broken update leaves the previous certificate serving.
                if self.current.read().is_some() {
                    readiness.set(
                        READINESS_CHECK,
                        true,
                        format!(
                            "serving the previous certificate; the new files cannot be loaded: {e}"
                        ),
                    );
                } else {
                    readiness.set(READINESS_CHECK, false, format!("no certificate: {e}"));
                }
                Err(e)
            }
        }
    }
}

impl ResolvesServerCert for FileCerts {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().clone()
    }
}

/// Reads and checks a chain and key; the message names the config key.
pub fn load(
    cert_path: &Path,
    key_path: &Path,
) -> Result<(CertifiedKey, Option<SystemTime>), String> {
    let cert_err = |e: String| {
        format!(
            "server.ssl.certFile (SSER_SSL_CERT_FILE) {}: {e}",
            cert_path.display()
        )
    };
    let key_err = |e: String| {
        format!(
            "server.ssl.keyFile (SSER_SSL_KEY_FILE) {}: {e}",
            key_path.display()
        )
    };
    let chain = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| cert_err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    let Some(leaf) = chain.first() else {
        return Err(cert_err("no PEM certificate in the file".into()));
    };
    let expiry = not_after(leaf);
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| key_err(e.to_string()))?;
    let certified = CertifiedKey::from_der(chain, key, &provider())
        .map_err(|e| key_err(format!("does not fit the certificate: {e}")))?;
    Ok((certified, expiry))
}
