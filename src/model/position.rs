//! Where an event stands in its stream.
//!
//! Positions are totally ordered within one stream and mean nothing across
//! streams. Outside the broker that assigns them they are opaque: compared,
//! stored in cursors, printed and parsed back, never computed with. The
//! in-process broker uses dense per-stream sequences (`1`, `2`, …); a broker
//! backed by Redis streams can use their ids (`1700000000000-0`) unchanged,
//! which is why a position has two parts.

use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    major: u64,
    minor: u64,
}

/// Why a string is not a position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a stream position")]
pub struct InvalidPosition;

impl Position {
    /// Before every event of a stream.
    pub const ZERO: Position = Position { major: 0, minor: 0 };

    /// The position of the `seq`-th event of a stream numbered densely from 1
    /// (the in-process broker's scheme).
    pub const fn from_seq(seq: u64) -> Position {
        Position {
            major: seq,
            minor: 0,
        }
    }

    /// A two-part position, as Redis stream ids are (`<ms>-<n>`).
    pub const fn from_parts(major: u64, minor: u64) -> Position {
        Position { major, minor }
    }

    /// The sequence of a position made by [`Position::from_seq`].
    pub const fn seq(self) -> u64 {
        self.major
    }

    pub const fn parts(self) -> (u64, u64) {
        (self.major, self.minor)
    }

    /// Appends the text [`Display`](fmt::Display) gives, without the
    /// formatting machinery: cursors are written once per event per
    /// multi-topic connection.
    pub fn append_to(self, out: &mut Vec<u8>) {
        append_decimal(self.major, out);
        if self.minor != 0 {
            out.push(b'-');
            append_decimal(self.minor, out);
        }
    }
}

fn append_decimal(mut n: u64, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

fn parse_part(s: &str) -> Result<u64, InvalidPosition> {
    // Digits only: no sign, no spaces, so that printing what was parsed
    // gives back the same text.
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(InvalidPosition);
    }
    s.parse().map_err(|_| InvalidPosition)
}

impl FromStr for Position {
    type Err = InvalidPosition;

    /// `<n>` or `<n>-<m>`.
    fn from_str(s: &str) -> Result<Position, InvalidPosition> {
        match s.split_once('-') {
            None => Ok(Position::from_seq(parse_part(s)?)),
            Some((major, minor)) => {
                Ok(Position::from_parts(parse_part(major)?, parse_part(minor)?))
            }
        }
    }
}

/// `<major>` when the minor part is zero (every in-process position), else
/// `<major>-<minor>`.
impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.minor {
            0 => write!(f, "{}", self.major),
            minor => write!(f, "{}-{minor}", self.major),
        }
    }
}

impl fmt::Debug for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_and_parses_back() {
        for p in [
            Position::ZERO,
            Position::from_seq(42),
            Position::from_parts(1_700_000_000_000, 3),
            Position::from_parts(u64::MAX, u64::MAX),
        ] {
            assert_eq!(p.to_string().parse::<Position>(), Ok(p));
        }
        assert_eq!(Position::from_seq(7).to_string(), "7");
        for p in [
            Position::ZERO,
            Position::from_seq(10),
            Position::from_parts(1_700_000_000_000, 3),
            Position::from_parts(u64::MAX, u64::MAX),
        ] {
            let mut fast = Vec::new();
            p.append_to(&mut fast);
            assert_eq!(String::from_utf8(fast).unwrap(), p.to_string());
        }
        assert_eq!(
            "1700000000000-0".parse(),
            Ok(Position::from_seq(1_700_000_000_000))
        );
        for bad in [
            "",
            "-",
            "1-",
            "-1",
            "+1",
            " 1",
            "1-2-3",
            "x",
            "99999999999999999999999",
        ] {
            assert!(bad.parse::<Position>().is_err(), "{bad:?}");
        }
        assert!(Position::from_parts(1, 9) < Position::from_parts(2, 0));
    }
}
