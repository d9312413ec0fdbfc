//! Stream keys: the name of anything a connection can follow. Each stream
//! has its own ordered history and its own positions.
//!
//! A stream is a topic, or one of an identity's inboxes: its application's
//! broadcast ([`StreamKey::App`]), its user's inbox ([`StreamKey::User`]),
//! or its device's inbox ([`StreamKey::Device`]). Targeted delivery is
//! ordinary fan-out on an inbox, so one connection can follow a topic and
//! its inboxes at once, with one resume cursor over all of them. The
//! presence feed ([`StreamKey::Presence`]: every identity's online and
//! offline changes, for API-token holders) is a stream too, opened once at
//! start-up.
//!
//! Names of applications, users and devices are any text the identity layer
//! accepts (1-256 bytes, no control characters); this layer takes them as
//! they come and never interprets them.
//!
//! A key is 24 bytes: a user's or a device's names sit behind one pointer,
//! so that the topic keys every topic connection holds stay small (this is
//! per-connection memory).

use std::fmt;
use std::sync::Arc;

use super::TopicId;

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StreamKey {
    Topic(TopicId),
    /// Everything sent to a whole application.
    App(Arc<str>),
    /// Everything sent to one user of an application, on all their devices.
    User(Arc<UserKey>),
    /// Everything sent to one device of one user.
    Device(Arc<DeviceKey>),
    /// Presence events (`user_online`, …), for `GET /api/v1/presence/stream`.
    Presence,
}

/// The names of a [`StreamKey::User`].
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserKey {
    pub app: Arc<str>,
    pub user: Arc<str>,
}

/// The names of a [`StreamKey::Device`].
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceKey {
    pub app: Arc<str>,
    pub user: Arc<str>,
    pub device: Arc<str>,
}

impl StreamKey {
    /// The topic this stream is, if it is one.
    pub fn topic(&self) -> Option<&TopicId> {
        match self {
            StreamKey::Topic(id) => Some(id),
            _ => None,
        }
    }

    /// Whether this is an identity's inbox (opened on first use, kept with
    /// the inbox retention) rather than a topic.
    pub fn is_inbox(&self) -> bool {
        matches!(
            self,
            StreamKey::App(_) | StreamKey::User(_) | StreamKey::Device(_)
        )
    }

    pub fn app(app: &str) -> StreamKey {
        StreamKey::App(Arc::from(app))
    }

    pub fn user(app: &str, user: &str) -> StreamKey {
        StreamKey::User(Arc::new(UserKey {
            app: Arc::from(app),
            user: Arc::from(user),
        }))
    }

    pub fn device(app: &str, user: &str, device: &str) -> StreamKey {
        StreamKey::Device(Arc::new(DeviceKey {
            app: Arc::from(app),
            user: Arc::from(user),
            device: Arc::from(device),
        }))
    }
}

impl From<TopicId> for StreamKey {
    fn from(id: TopicId) -> Self {
        StreamKey::Topic(id)
    }
}

/// Writes a name with `%` and `/` escaped (`%25`, `%2F`), so that the `/`
/// between names is unambiguous whatever the names hold.
fn escaped(f: &mut fmt::Formatter<'_>, name: &str) -> fmt::Result {
    let mut rest = name;
    while let Some(at) = rest.find(['%', '/']) {
        f.write_str(&rest[..at])?;
        f.write_str(if rest.as_bytes()[at] == b'%' {
            "%25"
        } else {
            "%2F"
        })?;
        rest = &rest[at + 1..];
    }
    f.write_str(rest)
}

/// `topic:<id>`, `app:<app>`, `user:<app>/<user>`,
/// `device:<app>/<user>/<device>` (names escaped, see [`escaped`]),
/// `presence:`.
///
/// Stable across versions and nodes: resume cursors hash it, and the disk
/// store names an inbox's log with it. Different keys always print
/// differently, and no key prints as a bare topic id (they all hold `:`).
impl fmt::Display for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamKey::Topic(id) => write!(f, "topic:{id}"),
            StreamKey::App(app) => {
                f.write_str("app:")?;
                escaped(f, app)
            }
            StreamKey::User(key) => {
                f.write_str("user:")?;
                escaped(f, &key.app)?;
                f.write_str("/")?;
                escaped(f, &key.user)
            }
            StreamKey::Device(key) => {
                f.write_str("device:")?;
                escaped(f, &key.app)?;
                f.write_str("/")?;
                escaped(f, &key.user)?;
                f.write_str("/")?;
                escaped(f, &key.device)
            }
            StreamKey::Presence => f.write_str("presence:"),
        }
    }
}

impl fmt::Debug for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_three_words() {
        // Every connection holds its keys: the identity variants' names
        // stay behind one pointer.
        assert!(std::mem::size_of::<StreamKey>() <= 24);
    }

    #[test]
    fn names_print_stably_and_unambiguously() {
        // Cursors and disk log names depend on this text: it must not change.
        let topic = StreamKey::Topic(TopicId::parse("news").unwrap());
        assert_eq!(topic.to_string(), "topic:news");
        assert_eq!(StreamKey::app("shop").to_string(), "app:shop");
        assert_eq!(StreamKey::user("shop", "u1").to_string(), "user:shop/u1");
        assert_eq!(
            StreamKey::device("shop", "u1", "phone").to_string(),
            "device:shop/u1/phone"
        );
        // A `/` inside a name cannot pass for the separator.
        assert_eq!(
            StreamKey::user("a/b", "c").to_string(),
            "user:a%2Fb/c",
            "escaped"
        );
        assert_ne!(
            StreamKey::user("a/b", "c").to_string(),
            StreamKey::user("a", "b/c").to_string()
        );
        assert_eq!(
            StreamKey::device("100%", "é ü", "x").to_string(),
            "device:100%25/é ü/x"
        );
        assert!(topic.topic().is_some() && !topic.is_inbox());
        assert!(StreamKey::app("a").is_inbox() && StreamKey::app("a").topic().is_none());
        assert_eq!(StreamKey::Presence.to_string(), "presence:");
        assert!(!StreamKey::Presence.is_inbox());
    }
}
