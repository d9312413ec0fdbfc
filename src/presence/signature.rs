//! Webhook signatures: `X-SSER-Signature: sha256=<hex>`, the HMAC-SHA256,
//! keyed with the shared secret, of `<X-SSER-Timestamp> + "." + <body>`.
//!
//! Why the timestamp is signed too: the signature alone proves the body came
//! from us, but a captured request could be replayed forever. With the
//! timestamp inside the MAC, a receiver that refuses timestamps older than a
//! few minutes refuses replays, and an attacker cannot freshen the timestamp
//! without the secret. Each attempt (retries included) is signed anew with
//! the time it is sent, so a retry an hour later still verifies.
//!
//! [`Signer::verify`] is the reference receiver-side check (the README shows
//! the same steps for receivers in other languages).

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::secret::Secret;

/// `sha256=<hex HMAC-SHA256 of timestamp + "." + body>`.
pub const SIGNATURE_HEADER: &str = "x-sser-signature";
/// Unix seconds when the request was sent (signed).
pub const TIMESTAMP_HEADER: &str = "x-sser-timestamp";
/// The event's id, the same on every attempt and every URL: receivers
/// deduplicate on it (a retry may repeat an event whose answer was lost).
pub const DELIVERY_HEADER: &str = "x-sser-delivery";
/// The event's kind (`user_online`, ...), to route without parsing.
pub const EVENT_HEADER: &str = "x-sser-event";

const PREFIX: &str = "sha256=";

/// Signs with one secret. Cloning copies the keyed state, not the secret
/// text; `Debug` shows nothing of either.
#[derive(Clone)]
pub struct Signer {
    mac: Hmac<Sha256>,
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the timestamp is not a number of seconds")]
    BadTimestamp,
    #[error("the timestamp is outside the accepted window (a replay, or a skewed clock)")]
    Stale,
    #[error("the signature does not match")]
    Mismatch,
}

impl Signer {
    pub fn new(secret: &Secret) -> Signer {
        // HMAC takes a key of any length (long ones are hashed first), so
        // this cannot fail; an empty key is refused by configuration.
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.expose().as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        Signer { mac }
    }

    /// The `X-SSER-Signature` value for a request sent at `timestamp`.
    pub fn sign(&self, timestamp: u64, body: &[u8]) -> String {
        let tag = self.tag(timestamp.to_string().as_bytes(), body);
        let mut out = String::with_capacity(PREFIX.len() + 64);
        out.push_str(PREFIX);
        for byte in tag {
            out.push(hex_digit(byte >> 4));
            out.push(hex_digit(byte & 0xf));
        }
        out
    }

    /// Checks a received request: the timestamp within `tolerance_secs` of
    /// `now_secs` (either side, for clock skew) and the signature in
    /// constant time.
    pub fn verify(
        &self,
        timestamp: &str,
        body: &[u8],
        signature: &str,
        now_secs: u64,
        tolerance_secs: u64,
    ) -> Result<(), VerifyError> {
        let sent: u64 = timestamp
            .trim()
            .parse()
            .map_err(|_| VerifyError::BadTimestamp)?;
        if sent.abs_diff(now_secs) > tolerance_secs {
            return Err(VerifyError::Stale);
        }
        let tag = signature
            .trim()
            .strip_prefix(PREFIX)
            .and_then(decode_hex)
            .ok_or(VerifyError::Mismatch)?;
        let mut mac = self.mac.clone();
        mac.update(timestamp.trim().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.verify_slice(&tag).map_err(|_| VerifyError::Mismatch)
    }

    fn tag(&self, timestamp: &[u8], body: &[u8]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(timestamp);
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signer(<redacted>)")
    }
}

fn hex_digit(n: u8) -> char {
    char::from(b"0123456789abcdef"[usize::from(n & 0xf)])
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    s.as_bytes()
        .chunks(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_known_vector_and_verifies() {
        let signer = Signer::new(&Secret::new("whsec"));
        let body = br#"{"kind":"user_online"}"#;
        let sig = signer.sign(1_700_000_000, body);
        // Computed independently: printf '1700000000.{"kind":"user_online"}'
        //   | openssl dgst -sha256 -hmac whsec
        assert_eq!(
            sig,
            "sha256=dbef6554711be2c36715eb335410100338702c9c26ade748cc161c3e0ff15f03"
        );
        let ok = signer.verify("1700000000", body, &sig, 1_700_000_100, 300);
        assert_eq!(ok, Ok(()));
    }

    #[test]
    fn refuses_tampering_replays_and_garbage() {
        let signer = Signer::new(&Secret::new("whsec"));
        let body = b"{}";
        let sig = signer.sign(1_700_000_000, body);
        let verify =
            |ts: &str, body: &[u8], sig: &str| signer.verify(ts, body, sig, 1_700_000_000, 300);
        assert_eq!(
            verify("1700000000", b"{ }", &sig),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(verify("1700000001", body, &sig), Err(VerifyError::Mismatch));
        assert_eq!(verify("soon", body, &sig), Err(VerifyError::BadTimestamp));
        assert_eq!(
            verify("1700000000", body, "sha256=zz"),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify("1700000000", body, &sig[7..]),
            Err(VerifyError::Mismatch)
        );
        let other = Signer::new(&Secret::new("other")).sign(1_700_000_000, body);
        assert_eq!(
            verify("1700000000", body, &other),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            signer.verify("1700000000", body, &sig, 1_700_000_301, 300),
            Err(VerifyError::Stale)
        );
        assert!(!format!("{signer:?}").contains("whsec"));
    }
}
