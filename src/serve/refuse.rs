//! Turning connections away at accept, cheaply and visibly: a canned JSON
//! answer where the listener speaks plain HTTP, a spare file descriptor so a
//! process out of descriptors can still accept-and-close instead of leaving
//! clients hanging in the backlog, and log lines whose rate backs off
//! exponentially while a flood lasts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::net::TcpStream;

use crate::metrics::Refusal;

/// The whole answer to a refused plain-HTTP connection. It is written before
/// the request is read, so it must make sense for any request.
fn canned(why: Refusal) -> &'static [u8] {
    match why {
        Refusal::PerIp => concat!(
            "HTTP/1.1 429 Too Many Requests\r\n",
            "content-type: application/json\r\n",
            "retry-after: 5\r\n",
            "connection: close\r\n",
            "content-length: 124\r\n\r\n",
            r#"{"error":{"code":429,"message":"too many connections from your address (server.maxConnectionsPerIp); close some and retry"}}"#,
        )
        .as_bytes(),
        Refusal::Total | Refusal::FdLimit => concat!(
            "HTTP/1.1 503 Service Unavailable\r\n",
            "content-type: application/json\r\n",
            "retry-after: 5\r\n",
            "connection: close\r\n",
            "content-length: 96\r\n\r\n",
            r#"{"error":{"code":503,"message":"the server is at its connection limit; retry in a few seconds"}}"#,
        )
        .as_bytes(),
    }
}

/// Answers (when the listener speaks plain HTTP, with one non-blocking write
/// that the fresh socket's empty send buffer always takes) and closes.
pub fn refuse(tcp: TcpStream, why: Refusal, plain_http: bool) {
    if plain_http {
        let _ = tcp.try_write(canned(why));
    }
    drop(tcp);
}

/// One descriptor held back for the moment the process runs out: releasing
/// it lets the accept loop take the next connection off the backlog and
/// close it, so its client hears "no" at once instead of waiting.
pub struct Spare(SpareState);

enum SpareState {
    /// Kept open only to be closed when needed.
    Held { _file: std::fs::File },
    /// Released; taken back as soon as a descriptor is free.
    Lent,
    /// `/dev/null` cannot be opened for another reason than a shortage
    /// (e.g. a bare container): run without a spare rather than treat every
    /// client as arriving at the limit.
    Unavailable,
}

impl Spare {
    pub fn reserve() -> Spare {
        let mut spare = Spare(SpareState::Lent);
        spare.restore();
        spare
    }

    /// True while the descriptor is out (released and not yet restored).
    pub fn is_lent(&self) -> bool {
        matches!(self.0, SpareState::Lent)
    }

    /// Frees the descriptor; returns false when there was none to free.
    pub fn release(&mut self) -> bool {
        match self.0 {
            SpareState::Held { .. } => {
                self.0 = SpareState::Lent;
                true
            }
            SpareState::Lent | SpareState::Unavailable => false,
        }
    }

    /// Takes it back (stays lent while descriptors are still short).
    pub fn restore(&mut self) {
        if self.is_lent() {
            self.0 = match std::fs::File::open("/dev/null") {
                Ok(file) => SpareState::Held { _file: file },
                Err(e) if out_of_descriptors(&e) => SpareState::Lent,
                Err(_) => SpareState::Unavailable,
            };
        }
    }
}

/// True for "out of file descriptors" (per process or system-wide).
pub fn out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// Lets a log line through now and then while an event keeps happening: the
/// first at once, then after 1 s, 2 s, 4 s ... up to a minute, and again at
/// once after a quiet spell. Each line says how many it stood for.
#[derive(Debug)]
pub struct Throttle {
    state: Mutex<ThrottleState>,
    suppressed: AtomicU64,
}

#[derive(Debug)]
struct ThrottleState {
    next: Option<Instant>,
    interval: Duration,
}

const FIRST_INTERVAL: Duration = Duration::from_secs(1);
const LONGEST_INTERVAL: Duration = Duration::from_secs(60);

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            state: Mutex::new(ThrottleState {
                next: None,
                interval: FIRST_INTERVAL,
            }),
            suppressed: AtomicU64::new(0),
        }
    }
}

impl Throttle {
    /// `Some(n)` when a line should be logged now, standing for this event
    /// and `n` earlier ones that were not.
    pub fn hit(&self) -> Option<u64> {
        let now = Instant::now();
        let mut s = self.state.lock();
        match s.next {
            Some(next) if now < next => {
                drop(s);
                self.suppressed.fetch_add(1, Ordering::Relaxed);
                None
            }
            Some(next) => {
                // Still busy (the last line is recent): back off further.
                // Quiet for longer than the interval: start over.
                s.interval = if now < next + s.interval {
                    (s.interval * 2).min(LONGEST_INTERVAL)
                } else {
                    FIRST_INTERVAL
                };
                s.next = Some(now + s.interval);
                Some(self.suppressed.swap(0, Ordering::Relaxed))
            }
            None => {
                s.next = Some(now + s.interval);
                Some(self.suppressed.swap(0, Ordering::Relaxed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canned_lengths_match_their_bodies() {
        for why in Refusal::ALL {
            let text = std::str::from_utf8(canned(why)).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(len, body.len(), "{why:?}");
            let v: serde_json::Value = serde_json::from_str(body).unwrap();
            assert!(v["error"]["message"].is_string());
        }
    }

    #[test]
    fn the_spare_is_lent_once_and_taken_back() {
        let mut spare = Spare::reserve();
        assert!(!spare.is_lent());
        assert!(spare.release());
        assert!(spare.is_lent());
        assert!(!spare.release(), "lent twice");
        spare.restore();
        assert!(!spare.is_lent());
        assert!(spare.release());
    }

    #[test]
    fn throttle_lets_the_first_through_then_counts() {
        let t = Throttle::default();
        assert_eq!(t.hit(), Some(0));
        assert_eq!(t.hit(), None);
        assert_eq!(t.hit(), None);
        assert_eq!(t.suppressed.load(Ordering::Relaxed), 2);
    }
}
