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
//! The directory of identity connections ([`super::directory`]): a hash
//! `<p>conn:<id>` per connection (node, app, user, device, remote, since,
//! streams); sorted sets of connection ids, all scored 0 so that they page
//! by id with `ZRANGEBYLEX`: `<p>conns` (every one), `<p>conns:app:<app>`,
//! `<p>conns:user:<app>:<user>`, and a plain set per node
//! `<p>conns:node:<node>` (with `<p>conns:nodes`, the nodes that have
//! some); `<p>device:<app>:<user>:<device>` (the device's
//! owner, `"<node> <conn>"`); `<p>block:<app>:<user>[:<device>]` (a kick's
//! block, with a TTL); `<p>ctl:<node>` (the channel of commands to one
//! node). App, user and device are the client's strings and may hold `:`,
//! so each is written as one [`part`], `"<len>.<text>"`: no two different
//! tuples give the same key.

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

    /// A directory entry: one identity connection's record.
    pub(super) fn conn(&self, id: &str) -> String {
        format!("{}conn:{id}", self.prefix)
    }

    /// Every identity connection of the cluster, by id.
    pub(super) fn conns(&self) -> String {
        format!("{}conns", self.prefix)
    }

    pub(super) fn app_conns(&self, app: &str) -> String {
        format!("{}conns:app:{}", self.prefix, part(app))
    }

    pub(super) fn user_conns(&self, app: &str, user: &str) -> String {
        format!("{}conns:user:{}:{}", self.prefix, part(app), part(user))
    }

    /// The connections a node recorded (so a dead node's can be swept).
    pub(super) fn node_conns(&self, node: &str) -> String {
        format!("{}conns:node:{node}", self.prefix)
    }

    /// The nodes that have recorded connections (for the sweep of dead
    /// ones).
    pub(super) fn directory_nodes(&self) -> String {
        format!("{}conns:nodes", self.prefix)
    }

    pub(super) fn device_owner(&self, app: &str, user: &str, device: &str) -> String {
        format!(
            "{}device:{}:{}:{}",
            self.prefix,
            part(app),
            part(user),
            part(device)
        )
    }

    /// A block on a user (`device: None`) or on one device of a user.
    pub(super) fn block(&self, app: &str, user: &str, device: Option<&str>) -> String {
        match device {
            None => format!("{}block:{}:{}", self.prefix, part(app), part(user)),
            Some(d) => format!(
                "{}block:{}:{}:{}",
                self.prefix,
                part(app),
                part(user),
                part(d)
            ),
        }
    }

    /// The channel of commands to one node.
    pub(super) fn control(&self, node: &str) -> String {
        format!("{}ctl:{node}", self.prefix)
    }

    /// The topic a live channel is for, if it is one of ours.
    pub(super) fn topic_of_channel<'a>(&self, channel: &'a str) -> Option<&'a str> {
        channel
            .strip_prefix(self.prefix.as_str())
            .and_then(|rest| rest.strip_prefix("live:"))
    }
}

/// A client-chosen string as one unambiguous key part: its length in
/// bytes, a dot, the text (`"shop"` → `"4.shop"`), so that `:` inside it
/// can never be read as a separator.
pub(super) fn part(text: &str) -> String {
    format!("{}.{text}", text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_parts_never_collide() {
        let keys = Keys::new("p:");
        assert_eq!(keys.user_conns("shop", "u1"), "p:conns:user:4.shop:2.u1");
        assert_ne!(keys.user_conns("a:b", "c"), keys.user_conns("a", "b:c"));
        assert_ne!(
            keys.device_owner("a", "b:1.c", "d"),
            keys.device_owner("a", "b", "c:1.d")
        );
        assert_ne!(keys.block("a", "b", None), keys.block("a", "", Some("b")));
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
