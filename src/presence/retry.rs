//! When a webhook attempt failed: whether to try again, and how long to
//! wait first.
//!
//! Worth retrying: no answer (connection refused, reset, timeout), 5xx, 408
//! and 429, since each may pass on its own. Any other answer outside 2xx
//! (400, 401, 404, a redirect, which is not followed) is the receiver's
//! decision and would be the same next time, so it fails at once.
//!
//! The wait doubles from `first` up to `max`, with "equal jitter": half
//! the delay fixed, half random, so a receiver that comes back after an
//! outage is not hit by every queued retry in the same instant, and no
//! retry comes sooner than half its step. A `Retry-After` in seconds (429,
//! 503) is honoured, capped at `max`.

use std::time::Duration;

use rand::Rng;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// The exponential back-off between attempts.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The wait after failed attempt number `attempt` (1 for the first).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(20);
        let step = self.first.saturating_mul(factor).min(self.max);
        let half = step / 2;
        let jitter =
            rand::thread_rng().gen_range(0..=half.as_micros().min(u128::from(u64::MAX)) as u64);
        half + Duration::from_micros(jitter)
    }

    /// `Retry-After` when the receiver sent one (in seconds), else
    /// [`Backoff::delay`]; never more than `max`.
    pub fn after(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        retry_after
            .unwrap_or_else(|| self.delay(attempt))
            .min(self.max)
    }
}

/// What one attempt came to.
#[derive(Debug)]
pub enum Attempt {
    Delivered,
    /// Failed in a way that may pass: try again after the back-off (or the
    /// receiver's `Retry-After`).
    Retry {
        why: String,
        retry_after: Option<Duration>,
    },
    /// Failed for good.
    Fail {
        why: String,
    },
}

impl Attempt {
    /// Classifies an answer.
    pub fn from_response(status: StatusCode, headers: &HeaderMap) -> Attempt {
        if status.is_success() {
            return Attempt::Delivered;
        }
        let why = format!("answered {status}");
        if status.is_server_error()
            || status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS
        {
            let retry_after = headers
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            Attempt::Retry { why, retry_after }
        } else {
            Attempt::Fail { why }
        }
    }

    /// Classifies a request that got no answer. The error's text is the
    /// client's and holds the URL: callers log the redacted URL, and this
    /// keeps only the kind of failure.
    pub fn from_error(e: &reqwest::Error) -> Attempt {
        let why = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "could not connect"
        } else if e.is_body() || e.is_decode() {
            "the answer broke off"
        } else {
            "the request failed"
        };
        Attempt::Retry {
            why: why.to_string(),
            retry_after: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_bounded_jitter_and_a_cap() {
        let b = Backoff {
            first: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        for _ in 0..200 {
            let d1 = b.delay(1);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
            let d3 = b.delay(3);
            assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400));
            let d9 = b.delay(9);
            assert!(d9 >= Duration::from_millis(500) && d9 <= Duration::from_secs(1));
        }
        assert!(b.delay(u32::MAX) <= Duration::from_secs(1));
        let told = Some(Duration::from_secs(3600));
        assert_eq!(b.after(1, told), Duration::from_secs(1));
    }

    #[test]
    fn classifies_answers() {
        let h = HeaderMap::new();
        assert!(matches!(
            Attempt::from_response(StatusCode::NO_CONTENT, &h),
            Attempt::Delivered
        ));
        for s in [500, 502, 503, 408, 429] {
            let s = StatusCode::from_u16(s).unwrap();
            assert!(
                matches!(Attempt::from_response(s, &h), Attempt::Retry { .. }),
                "{s}"
            );
        }
        for s in [400, 401, 404, 301, 410] {
            let s = StatusCode::from_u16(s).unwrap();
            assert!(
                matches!(Attempt::from_response(s, &h), Attempt::Fail { .. }),
                "{s}"
            );
        }
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        match Attempt::from_response(StatusCode::TOO_MANY_REQUESTS, &h) {
            Attempt::Retry { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(7)))
            }
            other => panic!("{other:?}"),
        }
    }
}
