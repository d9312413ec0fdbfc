//! Topic selectors: which topics an identity may follow, as its token's
//! `topics` claim lists them.
//!
//! The grammar is deliberately small, so that what a token allows is obvious
//! from reading it:
//!
//! | selector | matches |
//! |---|---|
//! | `*` | every topic |
//! | `news-*` | every topic whose id starts with `news-` |
//! | `news` | the topic `news` only |
//!
//! A selector is a topic id (1-64 characters of `A-Z a-z 0-9 _ -`),
//! optionally followed by one `*`, which is only allowed at the end. Nothing
//! else is a wildcard, and matching is case-sensitive, like topic ids.

use std::fmt;

/// One entry of a token's `topics` claim.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TopicSelector {
    /// `*`: every topic.
    Any,
    /// `prefix*`: topics whose id starts with the prefix.
    Prefix(String),
    /// A topic id: that topic only.
    Exact(String),
}

/// Why a string is not a topic selector.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a topic selector is a topic id (1-64 characters of A-Z a-z 0-9 _ -), optionally ending in *"
)]
pub struct InvalidSelector;

/// Longest topic id, and so the longest selector (plus its `*`).
const MAX_TOPIC_LEN: usize = 64;

impl TopicSelector {
    pub fn parse(text: &str) -> Result<TopicSelector, InvalidSelector> {
        match text.strip_suffix('*') {
            Some("") => Ok(TopicSelector::Any),
            Some(prefix) if is_topic_text(prefix) => Ok(TopicSelector::Prefix(prefix.to_string())),
            Some(_) => Err(InvalidSelector),
            None if is_topic_text(text) => Ok(TopicSelector::Exact(text.to_string())),
            None => Err(InvalidSelector),
        }
    }

    /// Whether the topic `topic` is one this selector allows.
    pub fn matches(&self, topic: &str) -> bool {
        match self {
            TopicSelector::Any => true,
            TopicSelector::Prefix(prefix) => topic.starts_with(prefix.as_str()),
            TopicSelector::Exact(id) => topic == id,
        }
    }
}

/// The topic-id alphabet and length (the rule every topic id obeys; a
/// selector that could match no topic is refused rather than kept).
fn is_topic_text(text: &str) -> bool {
    (1..=MAX_TOPIC_LEN).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The selector as written in a token.
impl fmt::Display for TopicSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopicSelector::Any => f.write_str("*"),
            TopicSelector::Prefix(prefix) => write!(f, "{prefix}*"),
            TopicSelector::Exact(id) => f.write_str(id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar() {
        assert_eq!(TopicSelector::parse("*"), Ok(TopicSelector::Any));
        assert_eq!(
            TopicSelector::parse("news-*"),
            Ok(TopicSelector::Prefix("news-".into()))
        );
        assert_eq!(
            TopicSelector::parse("news"),
            Ok(TopicSelector::Exact("news".into()))
        );
        for bad in ["", "**", "a*b", "*a", "news/*", "a b", "é", &"x".repeat(65)] {
            assert_eq!(TopicSelector::parse(bad), Err(InvalidSelector), "{bad:?}");
        }
        assert!(TopicSelector::parse(&"x".repeat(64)).is_ok());
        assert!(TopicSelector::parse(&format!("{}*", "x".repeat(64))).is_ok());
        for text in ["*", "news-*", "news"] {
            assert_eq!(TopicSelector::parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn matching() {
        let any = TopicSelector::Any;
        let prefix = TopicSelector::parse("news-*").unwrap();
        let exact = TopicSelector::parse("news").unwrap();
        assert!(any.matches("anything"));
        assert!(prefix.matches("news-eu"));
        assert!(prefix.matches("news-"));
        assert!(!prefix.matches("news"));
        assert!(!prefix.matches("News-eu"));
        assert!(exact.matches("news"));
        assert!(!exact.matches("news-eu"));
        assert!(!exact.matches("new"));
    }
}
