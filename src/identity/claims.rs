//! Claims ↔ [`Identity`]: which claim carries the user, the application, the
//! device and the topics (configurable, see [`ClaimNames`]), and the rules
//! their values must meet. Minting writes the same claims back, so a minted
//! token reads as the identity it was minted for.

use serde_json::{Map, Value};

use super::error::TokenError;
use super::selector::TopicSelector;
use super::settings::ClaimNames;

/// Longest user, application or device name (bytes).
pub const MAX_NAME_LEN: usize = 256;
/// Most topic selectors one token may carry.
pub const MAX_TOPIC_SELECTORS: usize = 256;

/// Who a verified token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The application (tenant): the application claim, or the configured
    /// default when the token has none.
    pub app: String,
    /// Whether the token itself named the application (`false`: `app` is
    /// the configured default). APIs whose tokens must name it (a
    /// compatibility profile's) refuse tokens without.
    pub app_claimed: bool,
    /// The user (the user claim, `sub` by default; always present).
    pub user: String,
    /// The device, when the token names one.
    pub device: Option<String>,
    /// Topics this identity may follow (empty: none, only its own streams).
    pub topics: Vec<TopicSelector>,
    /// The token's `exp` in Unix seconds; `None` only when tokens without
    /// expiry are allowed and this one has none.
    pub expires_at: Option<u64>,
}

impl Identity {
    /// Whether one of this identity's selectors allows the topic.
    pub fn may_follow(&self, topic: &str) -> bool {
        self.topics.iter().any(|s| s.matches(topic))
    }
}

/// Reads the identity out of verified claims.
pub(crate) fn identity_from_claims(
    claims: &Value,
    names: &ClaimNames,
    default_app: &str,
    expires_at: Option<u64>,
) -> Result<Identity, TokenError> {
    let user = match name_claim(claims, &names.user)? {
        Some(user) => user,
        None => {
            return Err(TokenError::MissingUser {
                claim: names.user.clone(),
            });
        }
    };
    let claimed_app = name_claim(claims, &names.app)?;
    let app_claimed = claimed_app.is_some();
    let app = claimed_app.unwrap_or_else(|| default_app.to_string());
    let device = name_claim(claims, &names.device)?;
    let topics = match lookup(claims, &names.topics) {
        None | Some(Value::Null) => Vec::new(),
        Some(value) => topics_claim(value).map_err(|reason| TokenError::InvalidClaim {
            claim: names.topics.clone(),
            reason,
        })?,
    };
    Ok(Identity {
        app,
        app_claimed,
        user,
        device,
        topics,
        expires_at,
    })
}

/// A claim by name: a plain name is a top-level key taken literally; a
/// name starting with `/` is a JSON Pointer.
fn lookup<'v>(claims: &'v Value, name: &str) -> Option<&'v Value> {
    if name.starts_with('/') {
        claims.pointer(name)
    } else {
        claims.get(name)
    }
}

/// A user, application or device name: a string, or an integer (many
/// systems number their users), that is a usable stream name. Missing,
/// `null` and (for the application's sake) `""` read as absent.
fn name_claim(claims: &Value, claim: &str) -> Result<Option<String>, TokenError> {
    let invalid = |reason| TokenError::InvalidClaim {
        claim: claim.to_string(),
        reason,
    };
    let text = match lookup(claims, claim) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.is_empty() => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
        Some(_) => return Err(invalid("must be a string or an integer")),
    };
    check_name(&text).map_err(invalid)?;
    Ok(Some(text))
}

/// The rule for user, application and device names, in tokens and in mint
/// requests alike.
pub(crate) fn check_name(text: &str) -> Result<(), &'static str> {
    if text.is_empty() {
        return Err("must not be empty");
    }
    if text.len() > MAX_NAME_LEN {
        return Err("must be at most 256 bytes");
    }
    if text.chars().any(char::is_control) {
        return Err("must not contain control characters");
    }
    Ok(())
}

/// An array of selectors, or one string of space-separated selectors (the
/// way OAuth writes `scope`).
fn topics_claim(value: &Value) -> Result<Vec<TopicSelector>, &'static str> {
    let texts: Vec<&str> = match value {
        Value::String(s) => s.split_whitespace().collect(),
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().ok_or("must be an array of strings"))
            .collect::<Result<_, _>>()?,
        _ => return Err("must be an array of topic selectors"),
    };
    parse_selectors(&texts)
}

pub(crate) fn parse_selectors<S: AsRef<str>>(
    texts: &[S],
) -> Result<Vec<TopicSelector>, &'static str> {
    if texts.len() > MAX_TOPIC_SELECTORS {
        return Err("holds more than 256 topic selectors");
    }
    texts
        .iter()
        .map(|t| TopicSelector::parse(t.as_ref()))
        .collect::<Result<_, _>>()
        .map_err(
            |_| "holds an invalid topic selector (a topic id, optionally ending in *, or * alone)",
        )
}

/// Sets a claim by the same naming rule [`lookup`] reads it with, creating
/// the objects a JSON Pointer passes through.
pub(crate) fn insert_claim(claims: &mut Map<String, Value>, name: &str, value: Value) {
    let Some(pointer) = name.strip_prefix('/') else {
        claims.insert(name.to_string(), value);
        return;
    };
    let parts: Vec<String> = pointer
        .split('/')
        .map(|p| p.replace("~1", "/").replace("~0", "~"))
        .collect();
    let Some((last, path)) = parts.split_last() else {
        return;
    };
    let mut map = claims;
    for part in path {
        let entry = map
            .entry(part.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let Value::Object(inner) = entry else { return };
        map = inner;
    }
    map.insert(last.clone(), value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(claims: Value) -> Result<Identity, TokenError> {
        identity_from_claims(&claims, &ClaimNames::default(), "default", Some(9))
    }

    #[test]
    fn maps_the_standard_claims() {
        let id = read(json!({"sub":"u1","iss":"shop","device":"phone","topics":["news-*","a"]}))
            .unwrap();
        assert_eq!(id.user, "u1");
        assert_eq!(id.app, "shop");
        assert!(id.app_claimed);
        assert_eq!(id.device.as_deref(), Some("phone"));
        assert!(id.may_follow("news-eu") && id.may_follow("a") && !id.may_follow("b"));
        assert_eq!(id.expires_at, Some(9));
        let id = read(json!({"sub": 42, "iss": "", "topics": "x y*"})).unwrap();
        assert_eq!(id.user, "42");
        assert_eq!(id.app, "default");
        assert!(!id.app_claimed);
        assert!(id.may_follow("y1") && id.may_follow("x") && !id.may_follow("z"));
    }

    #[test]
    fn refuses_bad_values_naming_the_claim() {
        assert_eq!(
            read(json!({"iss":"a"})),
            Err(TokenError::MissingUser {
                claim: "sub".into()
            })
        );
        for (claims, claim) in [
            (json!({"sub": {"id": 1}}), "sub"),
            (json!({"sub": "a\nb"}), "sub"),
            (json!({"sub": "u", "iss": 1.5}), "iss"),
            (json!({"sub": "u", "device": "x".repeat(257)}), "device"),
            (json!({"sub": "u", "topics": ["a/b"]}), "topics"),
            (json!({"sub": "u", "topics": [1]}), "topics"),
            (json!({"sub": "u", "topics": vec!["a"; 257]}), "topics"),
        ] {
            match read(claims) {
                Err(TokenError::InvalidClaim { claim: c, .. }) => assert_eq!(c, claim),
                other => panic!("{claim}: {other:?}"),
            }
        }
    }

    #[test]
    fn pointers_and_namespaced_names() {
        let names = ClaimNames {
            user: "uid".into(),
            app: "/org/id".into(),
            device: "https://example.com/device".into(),
            topics: "topics".into(),
        };
        let claims = json!({"uid":"u","org":{"id":"acme"},"https://example.com/device":"d"});
        let id = identity_from_claims(&claims, &names, "default", None).unwrap();
        assert_eq!((id.user.as_str(), id.app.as_str()), ("u", "acme"));
        assert_eq!(id.device.as_deref(), Some("d"));

        let mut built = Map::new();
        insert_claim(&mut built, "uid", json!("u"));
        insert_claim(&mut built, "/org/id", json!("acme"));
        insert_claim(&mut built, "/a~1b/c~0d", json!(1));
        assert_eq!(
            Value::Object(built),
            json!({"uid":"u","org":{"id":"acme"},"a/b":{"c~d":1}})
        );
    }
}
