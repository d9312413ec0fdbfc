//! Tokens and other secrets.
//!
//! A `Secret` can be compared (in constant time) and handed to a store, but
//! never printed: `Debug` and `Serialize` redact it, so it cannot leak through
//! a log line, an error body or a config dump by accident.

use std::fmt;
use std::sync::Arc;

use serde::{Serialize, Serializer};
use subtle::ConstantTimeEq;

/// Alphabet for ids and tokens: base62 is URL-, header- and filename-safe.
pub const BASE62: [char; 62] = [
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I',
    'J', 'K', 'L', 'M', 'N', 'O', 'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'a', 'b',
    'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', 'p', 'q', 'r', 's', 't', 'u',
    'v', 'w', 'x', 'y', 'z',
];

/// Length of generated topic and API tokens: 64 base62 characters ≈ 381 bits.
pub const TOKEN_LEN: usize = 64;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn new(value: &str) -> Self {
        Secret(Arc::from(value))
    }

    /// A fresh random token from the OS-seeded CSPRNG behind `nanoid`.
    pub fn generate() -> Self {
        Secret::new(&nanoid::nanoid!(TOKEN_LEN, &BASE62))
    }

    /// Constant-time comparison with what a client sent. Only the length can
    /// be learnt from timing, and generated tokens all have the same length.
    pub fn matches(&self, candidate: &str) -> bool {
        bool::from(self.0.as_bytes().ct_eq(candidate.as_bytes()))
    }

    /// The value itself, for the few places that must hand it on: the create
    /// response (which is where a topic's owner learns it) and the store.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

/// A new public id: 11 base62 characters, like SSER's ids.
pub fn new_id() -> String {
    nanoid::nanoid!(11, &BASE62)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_and_redacts() {
        let s = Secret::new("abc#007");
        assert!(s.matches("abc#007"));
        assert!(!s.matches("abc#00"));
        assert!(!s.matches(""));
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert_eq!(Secret::generate().expose().len(), TOKEN_LEN);
        assert_ne!(Secret::generate(), Secret::generate());
        assert_eq!(new_id().len(), 11);
    }
}
