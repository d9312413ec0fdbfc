//! `pubsub.*`: the API and metrics tokens, stream timing, history and
//! buffer sizes, and the topics defined in configuration.
//!
//! Tokens are required outside development; in development a missing one is
//! generated for the run (and printed once by `main`).

use serde::{Deserialize, Serialize};

use super::load::ConfigError;
use super::values::{Count, Span};
use crate::secret::Secret;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PubSubConfig {
    /// Token for create, delete and publish (and for tailing any topic).
    pub api_access_token: Option<Secret>,
    /// Token for reading metrics.
    pub metrics_access_token: Option<Secret>,
    /// Interval of the keep-alive comment on every stream.
    pub tick_frequency: Span,
    /// Reconnect delay suggested to clients in the stream's `retry:` field.
    pub retry: Span,
    /// Events each in-memory topic keeps for `Last-Event-ID` replay.
    pub history_size: Count,
    /// Events a connection may fall behind a stream before it has to catch
    /// up from history (see `broker::followers`).
    pub subscriber_buffer: Count,
    /// Most topics one connection may follow (`GET /api/v1/events?topic=…`).
    /// Each adds a few bytes to every event id on such a connection.
    pub max_topics_per_connection: Count,
    /// Topics defined in configuration: fixed id and token, never deleted.
    pub static_pub_subs: Vec<StaticPubSub>,
}

impl Default for PubSubConfig {
    fn default() -> Self {
        PubSubConfig {
            api_access_token: None,
            metrics_access_token: None,
            tick_frequency: Span(std::time::Duration::from_secs(15)),
            retry: Span(std::time::Duration::from_secs(3)),
            history_size: Count(1000),
            subscriber_buffer: Count(1024),
            max_topics_per_connection: Count(32),
            static_pub_subs: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StaticPubSub {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    pub token: Secret,
}

impl PubSubConfig {
    /// Fills in a missing token when `app_env` is development (returning
    /// what it generated, by environment name); elsewhere a missing token is
    /// an error.
    pub(super) fn fill_tokens(
        &mut self,
        app_env: &str,
    ) -> Result<Vec<(&'static str, Secret)>, ConfigError> {
        let dev = app_env == "development";
        let mut generated = Vec::new();
        for (key, var, slot) in [
            (
                "pubsub.apiAccessToken",
                "SSER_API_ACCESS_TOKEN",
                &mut self.api_access_token,
            ),
            (
                "pubsub.metricsAccessToken",
                "SSER_METRICS_ACCESS_TOKEN",
                &mut self.metrics_access_token,
            ),
        ] {
            if slot.as_ref().is_none_or(Secret::is_empty) {
                if !dev {
                    return Err(ConfigError(format!(
                        "{key} ({var}) is required when APP_ENV={app_env}: there are no default tokens"
                    )));
                }
                let token = Secret::generate();
                *slot = Some(token.clone());
                generated.push((var, token));
            }
        }
        Ok(generated)
    }

    /// Checks what types alone cannot.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if self.tick_frequency.0.is_zero() {
            return Err(ConfigError(
                "pubsub.tickFrequency (SSER_TICK_FREQUENCY) must be above zero".into(),
            ));
        }
        let buffer = self.subscriber_buffer.0;
        if !(1..=1 << 20).contains(&buffer) {
            return Err(ConfigError(format!(
                "pubsub.subscriberBuffer (SSER_SUBSCRIBER_BUFFER) must be between 1 and 1048576, got {buffer}"
            )));
        }
        let max_topics = self.max_topics_per_connection.0;
        if !(1..=1024).contains(&max_topics) {
            return Err(ConfigError(format!(
                "pubsub.maxTopicsPerConnection (SSER_MAX_TOPICS_PER_CONNECTION) must be between 1 and 1024, got {max_topics}"
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, topic) in self.static_pub_subs.iter().enumerate() {
            if !crate::model::TopicId::is_valid(&topic.id) {
                return Err(ConfigError(format!(
                    "pubsub.staticPubSubs[{i}].id {:?} must be 1-64 characters of A-Z a-z 0-9 _ -",
                    topic.id
                )));
            }
            if topic.token.is_empty() {
                return Err(ConfigError(format!(
                    "pubsub.staticPubSubs[{i}].token must not be empty"
                )));
            }
            if !seen.insert(topic.id.as_str()) {
                return Err(ConfigError(format!(
                    "pubsub.staticPubSubs[{i}].id {:?} appears twice",
                    topic.id
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, env};

    #[test]
    fn defaults_generate_tokens_in_development() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::from_sources(dir.path(), &env(&[])).unwrap();
        assert_eq!(c.server.addr.0.port(), 8889);
        assert_eq!(c.generated_tokens.len(), 2);
        assert!(c.pubsub.api_access_token.is_some());
    }

    #[test]
    fn production_requires_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let err = Config::from_sources(dir.path(), &env(&[("APP_ENV", "production")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("SSER_API_ACCESS_TOKEN"), "{err}");
    }
}
