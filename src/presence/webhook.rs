//! Presence webhooks: every [`PresenceEvent`] POSTed as JSON to each
//! configured URL, signed (see [`super::signature`]), retried with back-off
//! (see [`super::retry`]).
//!
//! Presence must never wait for a receiver: [`Webhooks::enqueue`] serializes
//! the event once and `try_send`s it into each URL's own bounded queue. A
//! full queue drops the event for that URL and counts it
//! (`webhooks_dropped`), so a dead or slow receiver costs a counter, not
//! latency or memory, and never delays another URL. Behind each queue one
//! worker runs at most `concurrency` deliveries at a time; a delivery keeps
//! its slot through its retries, so a failing receiver stops taking new
//! work instead of being hammered, and its queue fills and drops.
//!
//! Order is not guaranteed with `concurrency` above 1 or after a retry:
//! receivers order by the event's `at` and deduplicate on
//! `X-SSER-Delivery` (a retry may repeat an event whose answer was lost).
//!
//! URLs are logged without credentials or query (`scheme://host/path`); the
//! secret and the bodies are never logged.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use super::event::PresenceEvent;
use super::retry::{Attempt, Backoff};
use super::signature::{DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, Signer, TIMESTAMP_HEADER};
use super::sink::PresenceSink;
use crate::metrics::Metrics;
use crate::secret::Secret;

/// The webhook component's settings (`presence.webhooks.*`).
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Where to POST; `http` or `https`.
    pub urls: Vec<String>,
    /// Key of the HMAC signature. Required, never logged.
    pub secret: Secret,
    /// Bound on one attempt: connecting, sending, and the answer's head.
    pub timeout: Duration,
    /// Attempts per event and URL, the first included.
    pub max_attempts: u32,
    /// An event not delivered this long after it was queued is given up
    /// (zero: only `max_attempts` limits retries).
    pub max_age: Duration,
    /// The back-off after the first failed attempt; it doubles each time.
    pub backoff: Duration,
    /// The longest back-off (and the most a `Retry-After` is honoured).
    pub max_backoff: Duration,
    /// Events each URL's queue holds before new ones are dropped.
    pub queue: usize,
    /// Deliveries in flight per URL.
    pub concurrency: usize,
}

impl WebhookSettings {
    /// `urls` signed with `secret`, and the defaults `_config/base.yaml`
    /// documents for everything else.
    pub fn new(urls: Vec<String>, secret: Secret) -> WebhookSettings {
        WebhookSettings {
            urls,
            secret,
            timeout: Duration::from_secs(5),
            max_attempts: 8,
            max_age: Duration::from_secs(600),
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            queue: 10_000,
            concurrency: 4,
        }
    }
}

/// Why the webhooks could not start (configuration checks the same things
/// first, naming the key).
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("webhook URL number {index} is not an http(s) URL with a host: {reason}")]
    BadUrl { index: usize, reason: String },
    #[error("webhook URLs are set but the signing secret is empty")]
    MissingSecret,
    #[error("cannot build the webhook HTTP client: {0}")]
    Client(String),
}

/// The running webhook deliveries. Implements [`PresenceSink`].
pub struct Webhooks {
    queues: Vec<mpsc::Sender<Job>>,
    shared: Arc<Shared>,
    stop: CancellationToken,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

/// One event on its way to one URL.
struct Job {
    body: Bytes,
    kind: &'static str,
    delivery: Arc<str>,
    queued: Instant,
}

struct Shared {
    client: reqwest::Client,
    signer: Signer,
    backoff: Backoff,
    max_attempts: u32,
    max_age: Duration,
    metrics: Arc<Metrics>,
    /// Accepted into a queue and not yet delivered or failed. Signed: an
    /// `enqueue` racing `drain` may take it below zero for a moment.
    pending: AtomicI64,
    /// Delivery ids are `<random per start>-<count>`: unique across
    /// restarts, and cheaper than a random id per event.
    delivery_prefix: String,
    deliveries: AtomicU64,
}

impl Webhooks {
    /// Checks the settings and starts one worker per URL. Must be called
    /// inside a Tokio runtime.
    pub fn start(
        settings: WebhookSettings,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Webhooks>, WebhookError> {
        let urls = settings
            .urls
            .iter()
            .enumerate()
            .map(|(index, url)| {
                parse_url(url).map_err(|reason| WebhookError::BadUrl { index, reason })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if settings.secret.is_empty() {
            return Err(WebhookError::MissingSecret);
        }
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("sser/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| WebhookError::Client(e.to_string()))?;
        let shared = Arc::new(Shared {
            client,
            signer: Signer::new(&settings.secret),
            backoff: Backoff {
                first: settings.backoff,
                max: settings.max_backoff,
            },
            max_attempts: settings.max_attempts.max(1),
            max_age: settings.max_age,
            metrics,
            pending: AtomicI64::new(0),
            delivery_prefix: crate::secret::new_id(),
            deliveries: AtomicU64::new(0),
        });
        let stop = CancellationToken::new();
        let mut queues = Vec::with_capacity(urls.len());
        let mut workers = Vec::with_capacity(urls.len());
        for url in urls {
            let (tx, rx) = mpsc::channel(settings.queue.max(1));
            queues.push(tx);
            let worker = Worker {
                label: Arc::from(redacted(&url)),
                url,
                shared: shared.clone(),
                slots: Arc::new(Semaphore::new(settings.concurrency.max(1))),
            };
            workers.push(tokio::spawn(worker.run(rx, stop.clone())));
        }
        Ok(Arc::new(Webhooks {
            queues,
            shared,
            stop,
            workers: Mutex::new(workers),
        }))
    }

    /// Queues `event` for every URL without waiting: where a queue is full
    /// (or the webhooks are draining) the event is dropped for that URL and
    /// counted. Returns how many URLs took it.
    pub fn enqueue(&self, event: &PresenceEvent) -> usize {
        let shared = &self.shared;
        if self.stop.is_cancelled() || self.queues.iter().all(|q| q.capacity() == 0) {
            // Nowhere to go: drop without serializing.
            for _ in &self.queues {
                shared.metrics.webhook_dropped();
            }
            return 0;
        }
        let body = match serde_json::to_vec(event) {
            Ok(body) => Bytes::from(body),
            Err(e) => {
                tracing::error!(error = %e, "cannot serialize a presence event");
                return 0;
            }
        };
        let n = shared.deliveries.fetch_add(1, Ordering::Relaxed);
        let delivery: Arc<str> = Arc::from(format!("{}-{n}", shared.delivery_prefix));
        let mut taken = 0;
        for queue in &self.queues {
            let job = Job {
                body: body.clone(),
                kind: event.kind.as_str(),
                delivery: delivery.clone(),
                queued: Instant::now(),
            };
            // Counted before it can be picked up, so it never goes negative.
            shared.pending.fetch_add(1, Ordering::Relaxed);
            if queue.try_send(job).is_err() {
                shared.pending.fetch_sub(1, Ordering::Relaxed);
                shared.metrics.webhook_dropped();
            } else {
                taken += 1;
            }
        }
        taken
    }

    /// Events queued or being delivered (all URLs).
    pub fn pending(&self) -> u64 {
        self.shared.pending.load(Ordering::Relaxed).max(0) as u64
    }

    /// At shutdown: stops taking events, then gives those already queued
    /// (retries included) `within` to be delivered. What is left after that
    /// is abandoned and counted as failed. True when nothing was abandoned.
    pub async fn drain(&self, within: Duration) -> bool {
        self.stop.cancel();
        let mut workers = std::mem::take(&mut *self.workers.lock());
        let finished = tokio::time::timeout(within, async {
            for worker in &mut workers {
                let _ = worker.await;
            }
        })
        .await
        .is_ok();
        if !finished {
            for worker in &workers {
                worker.abort();
            }
            for worker in workers {
                let _ = worker.await;
            }
        }
        let abandoned = self.shared.pending.swap(0, Ordering::Relaxed).max(0) as u64;
        if abandoned > 0 {
            self.shared.metrics.webhooks_failed(abandoned);
            tracing::warn!(abandoned, "presence webhooks still undelivered at shutdown");
        }
        abandoned == 0
    }
}

impl PresenceSink for Webhooks {
    fn emit(&self, event: PresenceEvent) {
        self.enqueue(&event);
    }
}

/// The deliveries to one URL.
struct Worker {
    url: Url,
    /// `url` without credentials or query, for logs.
    label: Arc<str>,
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
}

impl Worker {
    async fn run(self, mut queue: mpsc::Receiver<Job>, stop: CancellationToken) {
        let this = Arc::new(self);
        let mut deliveries = JoinSet::new();
        let mut draining = false;
        loop {
            // A free slot first, then a job: a job waiting for a slot stays
            // in the queue, where it counts against the queue's bound.
            let Ok(slot) = this.slots.clone().acquire_owned().await else {
                break;
            };
            let next = loop {
                tokio::select! {
                    job = queue.recv() => break job,
                    () = stop.cancelled(), if !draining => {
                        // Refuse new events; what is queued is still delivered.
                        draining = true;
                        queue.close();
                    }
                }
            };
            let Some(job) = next else { break };
            while deliveries.try_join_next().is_some() {}
            deliveries.spawn(this.clone().deliver(job, slot));
        }
        while deliveries.join_next().await.is_some() {}
    }

    async fn deliver(self: Arc<Self>, job: Job, _slot: OwnedSemaphorePermit) {
        let shared = &self.shared;
        let mut attempt = 1;
        loop {
            let outcome = self.attempt(&job).await;
            // No await between an outcome's counter and `pending`: an abort
            // at shutdown cannot count an event twice.
            match outcome {
                Attempt::Delivered => {
                    shared.metrics.webhook_delivered();
                    break;
                }
                Attempt::Fail { why } => {
                    self.give_up(&job, attempt, &why);
                    break;
                }
                Attempt::Retry { why, retry_after } => {
                    let wait = shared.backoff.after(attempt, retry_after);
                    let too_old =
                        !shared.max_age.is_zero() && job.queued.elapsed() + wait > shared.max_age;
                    if attempt >= shared.max_attempts || too_old {
                        self.give_up(&job, attempt, &why);
                        break;
                    }
                    tracing::debug!(url = %self.label, attempt, reason = %why, ?wait, "retrying a presence webhook");
                    shared.metrics.webhook_retried();
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
            }
        }
        shared.pending.fetch_sub(1, Ordering::Relaxed);
    }

    /// One signed POST, and what it came to.
    async fn attempt(&self, job: &Job) -> Attempt {
        let timestamp = crate::store::now_ms() / 1000;
        let signature = self.shared.signer.sign(timestamp, &job.body);
        let sent = self
            .shared
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(TIMESTAMP_HEADER, timestamp)
            .header(SIGNATURE_HEADER, signature)
            .header(DELIVERY_HEADER, &*job.delivery)
            .header(EVENT_HEADER, job.kind)
            .body(job.body.clone())
            .send()
            .await;
        match sent {
            Ok(mut response) => {
                let outcome = Attempt::from_response(response.status(), response.headers());
                // Read (a bounded part of) the answer so the connection can
                // be reused; what it says does not matter.
                let mut read = 0;
                while read < 64 * 1024 {
                    match response.chunk().await {
                        Ok(Some(chunk)) => read += chunk.len(),
                        _ => break,
                    }
                }
                outcome
            }
            Err(e) => Attempt::from_error(&e),
        }
    }

    fn give_up(&self, job: &Job, attempts: u32, why: &str) {
        self.shared.metrics.webhooks_failed(1);
        tracing::warn!(
            url = %self.label,
            attempts,
            reason = %why,
            event = job.kind,
            delivery = %job.delivery,
            "presence webhook failed"
        );
    }
}

/// An absolute `http`/`https` URL with a host.
pub fn parse_url(url: &str) -> Result<Url, String> {
    let parsed = Url::parse(url.trim()).map_err(|e| e.to_string())?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("scheme {:?} is not http or https", parsed.scheme()));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("no host".to_string());
    }
    Ok(parsed)
}

/// `scheme://host[:port]/path`: what a log may show of a URL (user info
/// and query may hold credentials).
fn redacted(url: &Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port() {
        Some(port) => format!("{}://{host}:{port}{}", url.scheme(), url.path()),
        None => format!("{}://{host}{}", url.scheme(), url.path()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_redacted() {
        assert!(parse_url("https://hooks.example/presence").is_ok());
        assert!(parse_url("ftp://hooks.example/").is_err());
        assert!(parse_url("hooks.example/presence").is_err());
        assert!(parse_url("http://").is_err());
        assert!(parse_url("mailto:ops@example.com").is_err());
        let url = parse_url("https://user:pw@hooks.example:8443/p?token=abc").unwrap();
        assert_eq!(redacted(&url), "https://hooks.example:8443/p");
    }
}
