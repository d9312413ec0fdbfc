//! The names sser gives its keys and channels in Redis, all under the
//! configured prefix (`cluster.redis.prefix`), so several clusters can share
//! one Redis and an operator can tell sser's keys at a glance.
//!
//! Every stream `<s>` has `<p>stream:<s>` (the Redis Stream holding its
//! history, entries `<seq>-0`), `<p>seq:<s>` (the counter positions come
//! from) and `<p>live:<s>` (the pub/sub channel new events go out on), where
//! `<s>` is ([`Keys::names`]):
//! - a topic: its id (`news`; topic ids never hold `:`);
//! - an application's broadcast inbox: `app:<app>`;
//! - a user's inbox: `user:<app>:<user>`;
//! - a device's inbox: `device:<app>:<user>:<device>`;
//! - the presence feed: `system:presence`;
//!
//! with every application, user and device name written as an owner part,
//! `<byte length>.<text>` ([`Keys::owner_part`]): names are client-chosen
//! and may hold `:`, so `user:5.a:b:c:1.d` can only be app `a:b:c`, user
//! `d`. So `sser:live:user:4.shop:5.alice` is alice's inbox channel.
//! Inbox streams and counters expire in Redis with the inbox retention's
//! age (see `inboxes`).
//!
//! A topic also has `<p>ids:<id>` (publisher id → oldest position holding
//! it, kept by the publish script, [`super::publish`]). One hash
//! `<p>topics` holds the topic records, `<p>topics:changes` carries
//! create/delete notices and `<p>topics:log` keeps them a while
//! ([`super::changes`]); `<p>epoch` names this life of the Redis data set
//! ([`super::epoch`]). Node liveness ([`super::nodes`]):
//! `<p>node:<id>` (a node's heartbeat record, with a TTL), the sorted set
//! `<p>nodes` and the channel `<p>nodes:changes`.
//!
//! The directory of identity connections ([`super::directory`]): a hash
//! `<p>conn:<id>` per connection (node, app, user, device, remote, since,
//! streams); sorted sets of connection ids, all scored 0 so that they page
//! by id with `ZRANGEBYLEX`: `<p>conns` (every one), `<p>conns:app:<app>`,
//! `<p>conns:user:<app>:<user>`; a plain set per node
//! `<p>conns:node:<node>` (with `<p>conns:nodes`, the nodes that have
//! some); `<p>device:<app>:<user>:<device>` (the device's owner,
//! `"<node> <conn>"`); `<p>block:<app>:<user>[:<device>]` (a kick's block,
//! with a TTL); `<p>ctl:<node>` (the channel of commands to one node).
//! Names are owner parts here too, so no two tuples share a key.
//!
//! Presence ledger ([`super::presence`]): `<p>presence:u:<app>:<user>` and
//! `<p>presence:d:<app>:<user>:<device>` (hashes: node id → what that node
//! holds), `<p>presence:node:<id>:u` / `:d` (the hashes one node has a
//! field in, so a dead node's share can be found), `<p>presence:nodes` (the
//! nodes that wrote any) and `<p>presence:lost:<id>` (the claim of the
//! survivor cleaning up after a dead node), names as owner parts;
//! `<p>lease:<name>`: a lease one node holds at a time ([`super::lease`]).

use std::sync::Arc;

use crate::model::{StreamKey, TopicId};

#[derive(Debug, Clone)]
pub(super) struct Keys {
    prefix: String,
}

/// The three Redis names of one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StreamNames {
    /// The Redis Stream: its history.
    pub(super) stream: String,
    /// The counter its positions come from.
    pub(super) counter: String,
    /// The pub/sub channel its new events go out on.
    pub(super) channel: String,
}

const PRESENCE: &str = "system:presence";

impl Keys {
    pub(super) fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_string(),
        }
    }

    /// Names that embed client-chosen text (application, user, device),
    /// unambiguously whatever the text holds: each part is written as
    /// `<byte length>.<text>` and the parts are joined by `:`, so
    /// `["a:b", "c"]` gives `3.a:b:1.c` and `["a", "b:c"]` gives
    /// `1.a:3.b:c`. Every key naming an identity uses this encoding.
    pub(super) fn owner_part(parts: &[&str]) -> String {
        let mut out = String::with_capacity(parts.iter().map(|p| p.len() + 6).sum());
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                out.push(':');
            }
            out.push_str(&part.len().to_string());
            out.push('.');
            out.push_str(part);
        }
        out
    }

    /// The presence hash of a user (`device: None`) or of a device.
    pub(super) fn presence(&self, app: &str, user: &str, device: Option<&str>) -> String {
        match device {
            None => format!(
                "{}presence:u:{}",
                self.prefix,
                Keys::owner_part(&[app, user])
            ),
            Some(device) => format!(
                "{}presence:d:{}",
                self.prefix,
                Keys::owner_part(&[app, user, device])
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

    /// A topic's Redis Stream (as [`Keys::names`] gives it).
    pub(super) fn stream(&self, topic: &TopicId) -> String {
        format!("{}stream:{topic}", self.prefix)
    }

    /// A topic's counter (as [`Keys::names`] gives it).
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

    /// The stream, counter and channel of any stream.
    pub(super) fn names(&self, key: &StreamKey) -> StreamNames {
        let name = stream_name(key);
        StreamNames {
            stream: format!("{}stream:{name}", self.prefix),
            counter: format!("{}seq:{name}", self.prefix),
            channel: format!("{}live:{name}", self.prefix),
        }
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
        format!("{}conns:app:{}", self.prefix, Keys::owner_part(&[app]))
    }

    pub(super) fn user_conns(&self, app: &str, user: &str) -> String {
        format!(
            "{}conns:user:{}",
            self.prefix,
            Keys::owner_part(&[app, user])
        )
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
            "{}device:{}",
            self.prefix,
            Keys::owner_part(&[app, user, device])
        )
    }

    /// A block on a user (`device: None`) or on one device of a user.
    pub(super) fn block(&self, app: &str, user: &str, device: Option<&str>) -> String {
        let parts = match device {
            None => Keys::owner_part(&[app, user]),
            Some(device) => Keys::owner_part(&[app, user, device]),
        };
        format!("{}block:{parts}", self.prefix)
    }

    /// The channel of commands to one node.
    pub(super) fn control(&self, node: &str) -> String {
        format!("{}ctl:{node}", self.prefix)
    }

    /// The stream a live channel is for, if it is one of ours.
    pub(super) fn stream_of_channel(&self, channel: &str) -> Option<StreamKey> {
        let name = channel
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix("live:")?;
        if name == PRESENCE {
            return Some(StreamKey::Presence);
        }
        let Some((kind, parts)) = name.split_once(':') else {
            return TopicId::parse(name).ok().map(StreamKey::Topic);
        };
        let parts = parse_owner_parts(parts)?;
        match (kind, parts.as_slice()) {
            ("app", [app]) => Some(StreamKey::App(Arc::from(*app))),
            ("user", [app, user]) => Some(StreamKey::user(app, user)),
            ("device", [app, user, device]) => Some(StreamKey::device(app, user, device)),
            _ => None,
        }
    }
}

/// `<s>` in the module doc.
fn stream_name(key: &StreamKey) -> String {
    match key {
        StreamKey::Topic(id) => id.to_string(),
        StreamKey::App(app) => format!("app:{}", Keys::owner_part(&[app])),
        StreamKey::User(user) => format!("user:{}", Keys::owner_part(&[&user.app, &user.user])),
        StreamKey::Device(device) => format!(
            "device:{}",
            Keys::owner_part(&[&device.app, &device.user, &device.device])
        ),
        StreamKey::Presence => PRESENCE.to_string(),
    }
}

/// The parts [`Keys::owner_part`] joined; `None` unless `text` is exactly
/// such a list (lengths without leading zeros, nothing left over).
fn parse_owner_parts(mut text: &str) -> Option<Vec<&str>> {
    let mut parts = Vec::new();
    loop {
        let (len, rest) = text.split_once('.')?;
        let canonical = !len.is_empty()
            && len.bytes().all(|b| b.is_ascii_digit())
            && (len == "0" || !len.starts_with('0'));
        if !canonical {
            return None;
        }
        let len: usize = len.parse().ok()?;
        let part = rest.get(..len)?;
        parts.push(part);
        let rest = &rest[len..];
        if rest.is_empty() {
            return Some(parts);
        }
        text = rest.strip_prefix(':')?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_names_with_colons_stay_apart() {
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
    fn topic_names_are_phase_one_names() {
        let keys = Keys::new("sser:");
        let topic = StreamKey::Topic(TopicId::parse("abc").unwrap());
        assert_eq!(
            keys.names(&topic),
            StreamNames {
                stream: "sser:stream:abc".into(),
                counter: "sser:seq:abc".into(),
                channel: "sser:live:abc".into(),
            }
        );
        let id = TopicId::parse("abc").unwrap();
        assert_eq!(keys.stream(&id), keys.names(&topic).stream);
        assert_eq!(keys.counter(&id), keys.names(&topic).counter);
    }

    #[test]
    fn live_channels_name_their_stream() {
        let keys = Keys::new("sser:");
        let streams = [
            StreamKey::Topic(TopicId::parse("abc").unwrap()),
            StreamKey::app("shop"),
            StreamKey::app("a:1.b"),
            StreamKey::user("shop", "alice"),
            StreamKey::user("a:b", "c"),
            StreamKey::user("a", "b:c"),
            StreamKey::device("shop", "u:1", "phone.2"),
            StreamKey::device("é", "3.x:", ":"),
            StreamKey::Presence,
        ];
        let mut channels = std::collections::HashSet::new();
        for stream in &streams {
            let channel = keys.names(stream).channel;
            assert_eq!(keys.stream_of_channel(&channel).as_ref(), Some(stream));
            assert!(channels.insert(channel), "{stream} names its own channel");
        }
        assert_eq!(
            keys.names(&StreamKey::user("shop", "alice")).channel,
            "sser:live:user:4.shop:5.alice"
        );
        assert_eq!(keys.stream_of_channel("other:live:abc"), None);
        assert_eq!(keys.stream_of_channel(&keys.registry_channel()), None);
    }

    #[test]
    fn directory_keys_never_collide() {
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
    fn only_exact_owner_parts_parse() {
        assert_eq!(Keys::owner_part(&["a:b", "c"]), "3.a:b:1.c");
        assert_eq!(Keys::owner_part(&["a", "b:c"]), "1.a:3.b:c");
        assert_eq!(parse_owner_parts("3.a:b:1.c"), Some(vec!["a:b", "c"]));
        assert_eq!(parse_owner_parts("0."), Some(vec![""]));
        for bad in [
            "", "1.", "2.a", "1.ab", "01.a", "x.a", "1.a:", "1.a:2.b", "1.a;1.b", "1.é",
        ] {
            assert_eq!(parse_owner_parts(bad), None, "{bad:?}");
        }
        let keys = Keys::new("p:");
        for bad in [
            "p:live:app:1.a:1.b",
            "p:live:user:1.a",
            "p:live:nope:1.a",
            "p:live:system:other",
            "p:live:bad topic",
        ] {
            assert_eq!(keys.stream_of_channel(bad), None, "{bad}");
        }
    }
}
