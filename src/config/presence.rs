//! `presence.*`: the grace period before a user or device is reported
//! offline, and the webhooks presence events are POSTed to.
//!
//! Configuration's own types; `lib.rs` turns them into the presence
//! component's `PresenceSettings` and `WebhookSettings`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::load::ConfigError;
use super::values::{Count, Span, StringList};
use crate::secret::Secret;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PresenceConfig {
    /// How long a user/device without connections still counts as online;
    /// a reconnect within it makes no offline/online pair
    /// (`SSER_PRESENCE_GRACE`). `0` reports offlines at once.
    pub grace: Span,
    pub webhooks: WebhooksConfig,
}

/// `presence.webhooks.*`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct WebhooksConfig {
    /// Where presence events are POSTed (`SSER_WEBHOOK_URLS`); none: off.
    pub urls: StringList,
    /// Key of the `X-SSER-Signature` HMAC (`SSER_WEBHOOK_SECRET`); required
    /// with `urls`.
    pub secret: Option<Secret>,
    /// Bound on one attempt (`SSER_WEBHOOK_TIMEOUT`).
    pub timeout: Span,
    /// Attempts per event and URL, the first included
    /// (`SSER_WEBHOOK_MAX_ATTEMPTS`).
    pub max_attempts: Count,
    /// Give up on an event this long after it was queued; `0`: only
    /// `maxAttempts` limits (`SSER_WEBHOOK_MAX_AGE`).
    pub max_age: Span,
    /// Wait after the first failure, doubled each time
    /// (`SSER_WEBHOOK_BACKOFF`).
    pub backoff: Span,
    /// Longest wait between attempts (`SSER_WEBHOOK_MAX_BACKOFF`).
    pub max_backoff: Span,
    /// Events queued per URL before new ones are dropped (and counted)
    /// (`SSER_WEBHOOK_QUEUE`).
    pub queue: Count,
    /// Requests in flight per URL (`SSER_WEBHOOK_CONCURRENCY`).
    pub concurrency: Count,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        PresenceConfig {
            grace: Span(Duration::from_secs(5)),
            webhooks: WebhooksConfig::default(),
        }
    }
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            urls: StringList::default(),
            secret: None,
            timeout: Span(Duration::from_secs(5)),
            max_attempts: Count(8),
            max_age: Span(Duration::from_secs(600)),
            backoff: Span(Duration::from_secs(1)),
            max_backoff: Span(Duration::from_secs(60)),
            queue: Count(10_000),
            concurrency: Count(4),
        }
    }
}

impl PresenceConfig {
    /// Checks what types alone cannot.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        let w = &self.webhooks;
        if w.urls.0.is_empty() {
            return Ok(());
        }
        for (i, url) in w.urls.0.iter().enumerate() {
            if let Err(why) = check_url(url) {
                // The URL itself is not echoed: it may carry credentials.
                return Err(ConfigError(format!(
                    "presence.webhooks.urls (SSER_WEBHOOK_URLS): entry {} is not an http(s) URL with a host: {why}",
                    i + 1
                )));
            }
        }
        if w.secret.as_ref().is_none_or(Secret::is_empty) {
            return Err(ConfigError(
                "presence.webhooks.secret (SSER_WEBHOOK_SECRET) is required when presence.webhooks.urls is set: receivers verify the signature with it".into(),
            ));
        }
        let positive = [
            ("timeout", "SSER_WEBHOOK_TIMEOUT", !w.timeout.0.is_zero()),
            (
                "maxAttempts",
                "SSER_WEBHOOK_MAX_ATTEMPTS",
                w.max_attempts.0 > 0,
            ),
            ("backoff", "SSER_WEBHOOK_BACKOFF", !w.backoff.0.is_zero()),
            ("queue", "SSER_WEBHOOK_QUEUE", w.queue.0 > 0),
            (
                "concurrency",
                "SSER_WEBHOOK_CONCURRENCY",
                w.concurrency.0 > 0,
            ),
        ];
        if let Some((key, var, _)) = positive.iter().find(|(_, _, ok)| !ok) {
            return Err(ConfigError(format!(
                "presence.webhooks.{key} ({var}) must be above zero"
            )));
        }
        if w.max_backoff.0 < w.backoff.0 {
            return Err(ConfigError(
                "presence.webhooks.maxBackoff (SSER_WEBHOOK_MAX_BACKOFF) must be at least presence.webhooks.backoff".into(),
            ));
        }
        Ok(())
    }
}

/// The same rule as the webhook component's: absolute, http or https, a host.
fn check_url(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| e.to_string())?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("scheme {:?}", parsed.scheme()));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("no host".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, env};

    #[test]
    fn presence_keys_from_env() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::from_sources(
            dir.path(),
            &env(&[
                ("SSER_PRESENCE_GRACE", "2s"),
                (
                    "SSER_WEBHOOK_URLS",
                    "https://a.example/hook, http://127.0.0.1:9000/p",
                ),
                ("SSER_WEBHOOK_SECRET", "whsec#1"),
                ("SSER_WEBHOOK_TIMEOUT", "3s"),
                ("SSER_WEBHOOK_MAX_ATTEMPTS", "4"),
                ("SSER_WEBHOOK_MAX_AGE", "0"),
                ("SSER_WEBHOOK_BACKOFF", "250ms"),
                ("SSER_WEBHOOK_MAX_BACKOFF", "10s"),
                ("SSER_WEBHOOK_QUEUE", "100"),
                ("SSER_WEBHOOK_CONCURRENCY", "2"),
            ]),
        )
        .unwrap();
        let p = &c.presence;
        assert_eq!(p.grace.0.as_secs(), 2);
        assert_eq!(p.webhooks.urls.0.len(), 2);
        assert!(p.webhooks.secret.as_ref().unwrap().matches("whsec#1"));
        assert_eq!(p.webhooks.max_attempts.0, 4);
        assert!(p.webhooks.max_age.0.is_zero());
        assert_eq!(p.webhooks.concurrency.0, 2);
    }

    #[test]
    fn bad_webhook_settings_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let err = |pairs: &[(&str, &str)]| {
            Config::from_sources(dir.path(), &env(pairs))
                .unwrap_err()
                .to_string()
        };
        let e = err(&[("SSER_WEBHOOK_URLS", "https://ok.example/, ftp://user:pw@x/")]);
        assert!(
            e.contains("presence.webhooks.urls (SSER_WEBHOOK_URLS): entry 2"),
            "{e}"
        );
        assert!(!e.contains("pw"), "the URL is not echoed: {e}");
        let e = err(&[("SSER_WEBHOOK_URLS", "https://ok.example/")]);
        assert!(
            e.contains("presence.webhooks.secret (SSER_WEBHOOK_SECRET)"),
            "{e}"
        );
        let e = err(&[
            ("SSER_WEBHOOK_URLS", "https://ok.example/"),
            ("SSER_WEBHOOK_SECRET", "s"),
            ("SSER_WEBHOOK_QUEUE", "0"),
        ]);
        assert!(
            e.contains("presence.webhooks.queue (SSER_WEBHOOK_QUEUE)"),
            "{e}"
        );
        let e = err(&[("SSER_PRESENCE_GRACE", "soon")]);
        assert!(e.contains("presence.grace (SSER_PRESENCE_GRACE)"), "{e}");
        // No URLs: webhooks are off and need no secret.
        assert!(Config::from_sources(dir.path(), &env(&[])).is_ok());
    }
}
