//! The names sser gives its keys and channels in Redis, all under the
//! configured prefix (`cluster.redis.prefix`), so several clusters can share
//! one Redis and an operator can tell sser's keys at a glance.
//!
//! Per topic `<id>`: `<p>stream:<id>` (the Redis Stream holding its history,
//! entries `<seq>-0`), `<p>seq:<id>` (the counter positions come from) and
//! `<p>live:<id>` (the pub/sub channel new events go out on). One hash
//! `<p>topics` holds the topic records, and `<p>topics:changes` carries
//! create/delete notices.

use crate::model::TopicId;

#[derive(Debug, Clone)]
pub(super) struct Keys {
    prefix: String,
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_string(),
        }
    }

    pub(super) fn registry(&self) -> String {
        format!("{}topics", self.prefix)
    }

    pub(super) fn registry_channel(&self) -> String {
        format!("{}topics:changes", self.prefix)
    }

    pub(super) fn stream(&self, topic: &TopicId) -> String {
        format!("{}stream:{topic}", self.prefix)
    }

    pub(super) fn counter(&self, topic: &TopicId) -> String {
        format!("{}seq:{topic}", self.prefix)
    }

    pub(super) fn live_channel(&self, topic: &TopicId) -> String {
        format!("{}live:{topic}", self.prefix)
    }

    /// The topic a live channel is for, if it is one of ours.
    pub(super) fn topic_of_channel<'a>(&self, channel: &'a str) -> Option<&'a str> {
        channel
            .strip_prefix(self.prefix.as_str())
            .and_then(|rest| rest.strip_prefix("live:"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_channels_name_their_topic() {
        let keys = Keys::new("sser:");
        let topic = TopicId::parse("abc").unwrap();
        let channel = keys.live_channel(&topic);
        assert_eq!(keys.topic_of_channel(&channel), Some("abc"));
        assert_eq!(keys.topic_of_channel("other:live:abc"), None);
        assert_eq!(keys.topic_of_channel(&keys.registry_channel()), None);
    }
}
