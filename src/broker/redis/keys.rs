//! The names sser gives its keys and channels in Redis, all under the
//! configured prefix (`cluster.redis.prefix`), so several clusters can share
//! one Redis and an operator can tell sser's keys at a glance.
//!
//! Per topic `<id>`: `<p>stream:<id>` (the Redis Stream holding its history,
//! entries `<seq>-0`), `<p>seq:<id>` (the counter positions come from) and
//! `<p>live:<id>` (the pub/sub channel new events go out on) and
//! `<p>ids:<id>` (publisher id → oldest position holding it, kept by the
//! publish script, [`super::publish`]). One hash
//! `<p>topics` holds the topic records, `<p>topics:changes` carries
//! create/delete notices and `<p>topics:log` keeps them a while. Node liveness ([`super::nodes`]): `<p>node:<id>`
//! (a node's heartbeat record, with a TTL), the sorted set `<p>nodes` and
//! the channel `<p>nodes:changes`. `<p>epoch` names this life of the
//! Redis data set ([`super::epoch`]).

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

    /// The registry's change log ([`super::changes`]).
    pub(super) fn registry_log(&self) -> String {
        format!("{}topics:log", self.prefix)
    }

    pub(super) fn registry_channel(&self) -> String {
        format!("{}topics:changes", self.prefix)
    }

    pub(super) fn nodes(&self) -> String {
        format!("{}nodes", self.prefix)
    }

    pub(super) fn nodes_channel(&self) -> String {
        format!("{}nodes:changes", self.prefix)
    }

    /// A node's heartbeat record (`node("")` is the prefix of them all).
    pub(super) fn node(&self, id: &str) -> String {
        format!("{}node:{id}", self.prefix)
    }

    pub(super) fn stream(&self, topic: &TopicId) -> String {
        format!("{}stream:{topic}", self.prefix)
    }

    pub(super) fn counter(&self, topic: &TopicId) -> String {
        format!("{}seq:{topic}", self.prefix)
    }

    /// The index of a topic's publisher-supplied ids.
    pub(super) fn ids(&self, topic: &TopicId) -> String {
        format!("{}ids:{topic}", self.prefix)
    }

    /// The random value written when this Redis data set was first used:
    /// a different (or missing) one means Redis lost its data.
    pub(super) fn epoch(&self) -> String {
        format!("{}epoch", self.prefix)
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
