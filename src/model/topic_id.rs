//! Topic ids: what SSER and our own generator produce, and what is safe in a
//! URL path, a log line, a storage key and an SSE `event:` name.
//!
//! A string becomes a [`TopicId`] only through [`TopicId::parse`], so every
//! layer above can rely on the rule without checking it again.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

/// A valid topic id: 1-64 characters of `A-Z a-z 0-9 _ -`. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicId(Arc<str>);

/// Why a string is not a topic id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} must be 1-64 characters of A-Z a-z 0-9 _ -")]
pub struct InvalidTopicId(pub String);

impl TopicId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(id: &str) -> Result<TopicId, InvalidTopicId> {
        if Self::is_valid(id) {
            Ok(TopicId(Arc::from(id)))
        } else {
            Err(InvalidTopicId(id.to_string()))
        }
    }

    /// The rule, for callers that only need a yes or no.
    pub fn is_valid(id: &str) -> bool {
        (1..=Self::MAX_LEN).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for TopicId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for TopicId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for TopicId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl PartialEq<str> for TopicId {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for TopicId {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_sser_and_we_generate_and_nothing_else() {
        for ok in ["a", "0LH9qxjS218", "news_1-b", &"x".repeat(64)] {
            assert_eq!(
                TopicId::parse(ok).map(|t| t.to_string()),
                Ok(ok.to_string())
            );
        }
        for bad in ["", "a b", "a/b", "a.b", "a:b", "é", &"x".repeat(65)] {
            assert!(TopicId::parse(bad).is_err(), "{bad:?}");
        }
    }
}
