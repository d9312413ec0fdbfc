//! goSSE's event types as native topics.
//!
//! A goSSE client subscribes to one type (`GET /events?type=news`, `all`
//! when it names none) and gets the broadcasts of that type. Here each type
//! is a topic, `<prefix><type>` (`gosse-news`), that the client's
//! connection follows beside its user's inbox and the application's
//! broadcast: delivery by type is ordinary fan-out on a stream, with
//! history and resume, and a native publisher reaches goSSE clients of a
//! type by publishing on that topic.
//!
//! Topic ids allow `A-Z a-z 0-9 - _`; other bytes of a type (and `_`
//! itself) are written `_XX` (hex), so every type has its own topic and a
//! type such as `user.created` works. A type whose topic id would pass 64
//! characters is refused. Clients make types by naming them, so the topics
//! are opened on demand, at most `compat.gosse.maxTypes` of them.

use std::fmt::Write;
use std::sync::Arc;

use axum::http::StatusCode;

use super::Gosse;
use super::error::GosseError;
use crate::hub::Topic;
use crate::model::TopicId;

/// The type of a connection that names none (goSSE's `allEventType`).
pub const DEFAULT_TYPE: &str = "all";

/// The topic of goSSE type `kind`.
pub fn topic_id(prefix: &str, kind: &str) -> Result<TopicId, GosseError> {
    let mut id = String::with_capacity(prefix.len() + kind.len());
    id.push_str(prefix);
    for byte in kind.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' {
            id.push(char::from(byte));
        } else {
            let _ = write!(id, "_{byte:02X}");
        }
    }
    TopicId::parse(&id).map_err(|_| {
        GosseError::bad_request(format!(
            "type is too long: its topic id {id:?} would pass {} characters",
            TopicId::MAX_LEN
        ))
    })
}

/// The topic a connection of type `kind` follows, opened if need be.
pub async fn topic_for(gosse: &Gosse, kind: &str) -> Result<Arc<Topic>, GosseError> {
    let prefix = &gosse.settings.type_topic_prefix;
    let id = topic_id(prefix, kind)?;
    gosse
        .hub
        .topic_on_demand(id, prefix, gosse.settings.max_types)
        .await?
        .ok_or_else(|| {
            GosseError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "too many event types in use: at most {} (compat.gosse.maxTypes)",
                    gosse.settings.max_types
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_has_its_own_valid_topic() {
        let id = |kind: &str| topic_id("gosse-", kind).map(|t| t.as_str().to_string());
        assert_eq!(id("sse").unwrap(), "gosse-sse");
        assert_eq!(id("user.created").unwrap(), "gosse-user_2Ecreated");
        assert_eq!(id("a_b").unwrap(), "gosse-a_5Fb");
        assert_ne!(id("a_5Fb").unwrap(), id("a_b").unwrap());
        assert_eq!(id("é").unwrap(), "gosse-_C3_A9");
        assert_eq!(id(&"x".repeat(58)).unwrap().len(), 64);
        assert!(id(&"x".repeat(59)).is_err());
    }
}
