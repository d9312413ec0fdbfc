//! Value types for configuration that accept both YAML's typed values and the
//! plain strings that environment variables and SSER's `${VAR:default}`
//! placeholders produce (`"true"`, `"16000"`, `"4s"`, `"a.example, b.example"`).
//!
//! Environment values are taken literally: they are never re-parsed as YAML,
//! so a `#` inside a token stays part of the token and `007` stays `007`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::secret::Secret;

/// A boolean that also accepts `"true"`, `"false"`, `"1"`, `"0"`, `"yes"`, `"no"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flag(pub bool);

impl FromStr for Flag {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Flag(true)),
            "false" | "0" | "no" | "off" | "" => Ok(Flag(false)),
            other => Err(format!("expected true or false, got {other:?}")),
        }
    }
}

/// A length of time: `15s`, `500ms`, `1m`, or a bare number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span(pub Duration);

impl FromStr for Span {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Ok(secs) = s.parse::<u64>() {
            return Ok(Span(Duration::from_secs(secs)));
        }
        humantime::parse_duration(s)
            .map(Span)
            .map_err(|e| format!("expected a duration such as 15s or 500ms, got {s:?} ({e})"))
    }
}

/// A size in bytes: `16000`, `64KiB`, `1MiB`, `2GB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bytes(pub u64);

impl FromStr for Bytes {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (digits, unit) = s.split_at(split);
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("expected a size such as 16000 or 1MiB, got {s:?}"))?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1_000,
            "kib" => 1 << 10,
            "m" | "mb" => 1_000_000,
            "mib" => 1 << 20,
            "g" | "gb" => 1_000_000_000,
            "gib" => 1 << 30,
            other => return Err(format!("unknown size unit {other:?} in {s:?}")),
        };
        n.checked_mul(mult)
            .map(Bytes)
            .ok_or_else(|| format!("size {s:?} is too large"))
    }
}

/// Where to listen: `8889`, `:8889`, `127.0.0.1:8889` or `[::1]:8889`.
/// A bare port listens on all interfaces, as SSER's `PORT` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddr(pub SocketAddr);

impl FromStr for ListenAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let port_only = s.strip_prefix(':').unwrap_or(s);
        if let Ok(port) = port_only.parse::<u16>() {
            return Ok(ListenAddr(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                port,
            )));
        }
        s.parse::<SocketAddr>().map(ListenAddr).map_err(|_| {
            format!("expected a port (8889, :8889) or host:port (127.0.0.1:8889), got {s:?}")
        })
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Deserializes any of the types above from a string, or from a YAML number or
/// bool rendered as its text.
macro_rules! from_str_or_scalar {
    ($ty:ty, $what:literal) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($what)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$ty, E> {
                        v.parse().map_err(E::custom)
                    }
                    fn visit_bool<E: de::Error>(self, v: bool) -> Result<$ty, E> {
                        self.visit_str(if v { "true" } else { "false" })
                    }
                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<$ty, E> {
                        self.visit_str(&v.to_string())
                    }
                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<$ty, E> {
                        self.visit_str(&v.to_string())
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
}

from_str_or_scalar!(Flag, "true or false");
from_str_or_scalar!(Span, "a duration such as 15s");
from_str_or_scalar!(Bytes, "a size such as 1MiB");
from_str_or_scalar!(ListenAddr, "a port or host:port");

/// A count that also accepts its decimal text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count(pub u64);

impl FromStr for Count {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim()
            .parse()
            .map(Count)
            .map_err(|_| format!("expected a whole number, got {s:?}"))
    }
}
from_str_or_scalar!(Count, "a whole number");

// Serialization is only used to print the effective configuration; secrets
// are redacted by `Secret`'s own impl.
impl Serialize for Flag {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bool(self.0)
    }
}
impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}
impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}
impl Serialize for ListenAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}
impl Serialize for Count {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

/// Secrets deserialize from any scalar, taken as literal text.
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a token string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret::new(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Secret, E> {
                Ok(Secret::new(&v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Secret, E> {
                Ok(Secret::new(&v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A list that may also be written as one comma-separated string, as
/// environment variables must be.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct StringList(pub Vec<String>);

impl<'de> Deserialize<'de> for StringList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<String>),
        }
        let items = match Raw::deserialize(d)? {
            Raw::One(s) => s.split(',').map(str::to_string).collect(),
            Raw::Many(v) => v,
        };
        Ok(StringList(
            items
                .into_iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addr_forms() {
        assert_eq!(
            "8889".parse::<ListenAddr>().unwrap().0,
            "0.0.0.0:8889".parse().unwrap()
        );
        assert_eq!(
            ":8889".parse::<ListenAddr>().unwrap().0,
            "0.0.0.0:8889".parse().unwrap()
        );
        assert_eq!(
            "127.0.0.1:8889".parse::<ListenAddr>().unwrap().0,
            "127.0.0.1:8889".parse().unwrap()
        );
        assert!("localhost:x".parse::<ListenAddr>().is_err());
    }

    #[test]
    fn sizes_and_spans() {
        assert_eq!("16000".parse::<Bytes>().unwrap().0, 16000);
        assert_eq!("1MiB".parse::<Bytes>().unwrap().0, 1 << 20);
        assert!("1XB".parse::<Bytes>().is_err());
        assert_eq!("4s".parse::<Span>().unwrap().0, Duration::from_secs(4));
        assert_eq!("15".parse::<Span>().unwrap().0, Duration::from_secs(15));
        assert_eq!(
            "500ms".parse::<Span>().unwrap().0,
            Duration::from_millis(500)
        );
        assert!("soon".parse::<Span>().is_err());
        assert!("maybe".parse::<Flag>().is_err());
    }
}
