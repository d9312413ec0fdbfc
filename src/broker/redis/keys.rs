//! The names sser gives its keys and channels in Redis, all under the
//! configured prefix (`cluster.redis.prefix`), so several clusters can share
//! one Redis and an operator can tell sser's keys at a glance.
//!
//! Per topic `<id>`: `<p>stream:<id>` (the Redis Stream holding its history,
//! entries `<seq>-0`), `<p>seq:<id>` (the counter positions come from) and
//! `<p>live:<id>` (the pub/sub channel new events go out on). One hash
//! `<p>topics` holds the topic records, and `<p>topics:changes` carries
//! create/delete notices. Node liveness ([`super::nodes`]): `<p>node:<id>`
//! (a node's heartbeat record, with a TTL), the sorted set `<p>nodes` and
//! the channel `<p>nodes:changes`.
//!
//! Presence ledger ([`super::presence`]): `<p>presence:u:<app>:<user>` and
//! `<p>presence:d:<app>:<user>:<device>` (hashes: node id → what that node
//! holds), `<p>presence:node:<id>:u` / `:d` (the hashes one node has a
//! field in, so a dead node's share can be found), `<p>presence:nodes` (the
//! nodes that wrote any) and `<p>presence:lost:<id>` (the claim of the
//! survivor cleaning up after a dead node). `<p>lease:<name>`: a lease one
//! node holds at a time ([`super::lease`]).
//!
//! App, user and device names are the clients' own strings and may hold
//! `:`, so each is written as one [`owner_part`] (`<len>.<text>`): no two
//! triples give the same key.

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

    pub(super) fn live_channel(&self, topic: &TopicId) -> String {
        format!("{}live:{topic}", self.prefix)
    }

    /// The presence hash of a user (`device: None`) or of a device.
    pub(super) fn presence(&self, app: &str, user: &str, device: Option<&str>) -> String {
        let (app, user) = (owner_part(app), owner_part(user));
        match device {
            None => format!("{}presence:u:{app}:{user}", self.prefix),
            Some(device) => format!(
                "{}presence:d:{app}:{user}:{}",
                self.prefix,
                owner_part(device)
            ),
        }
    }

    /// The presence hashes `node` has a field in: users or devices.
    pub(super) fn presence_of_node(&self, node: &str, devices: bool) -> String {
        let kind = if devices { "d" } else { "u" };
        format!("{}presence:node:{node}:{kind}", self.prefix)
    }

    /// Every node that wrote presence (and may leave a share behind).
    pub(super) fn presence_nodes(&self) -> String {
        format!("{}presence:nodes", self.prefix)
    }

    /// The claim of the survivor that cleans up after dead `node`.
    pub(super) fn presence_lost(&self, node: &str) -> String {
        format!("{}presence:lost:{node}", self.prefix)
    }

    /// A lease held by one node at a time.
    pub(super) fn lease(&self, name: &str) -> String {
        format!("{}lease:{name}", self.prefix)
    }

    /// The topic a live channel is for, if it is one of ours.
    pub(super) fn topic_of_channel<'a>(&self, channel: &'a str) -> Option<&'a str> {
        channel
            .strip_prefix(self.prefix.as_str())
            .and_then(|rest| rest.strip_prefix("live:"))
    }
}

/// One client-chosen name inside a key: `<byte length>.<text>`, so a name
/// holding `:` cannot be mistaken for two (`"a:b"` + `"c"` and `"a"` +
/// `"b:c"` give different keys).
pub(super) fn owner_part(text: &str) -> String {
    format!("{}.{text}", text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_colons_stay_apart() {
        let keys = Keys::new("sser:");
        assert_eq!(
            keys.presence("shop", "u:1", None),
            "sser:presence:u:4.shop:3.u:1"
        );
        assert_ne!(
            keys.presence("a:b", "c", None),
            keys.presence("a", "b:c", None)
        );
        assert_ne!(
            keys.presence("a", "b", Some("c:d")),
            keys.presence("a", "b:c", Some("d"))
        );
    }

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
