//! The registry's change log, so that a node that was cut off from Redis
//! catches up on topics created and deleted meanwhile in proportion to the
//! changes, not to the number of topics.
//!
//! Every registry write ([`super::registry`]) appends `c <id>` or `d <id>`
//! to the Redis Stream `<p>topics:log` (capped at [`LOG_CAP`], about) and
//! names the entry in its notice. A node remembers the newest entry it has
//! applied (from a full read of the registry, a notice, or a catch-up). On
//! a reconnect it reads the entries after it; only when the log no longer
//! reaches back that far (more than [`LOG_CAP`] changes meanwhile) or the
//! node never read the registry does it read the whole registry again.

use redis::aio::ConnectionManager;

use super::Keys;
use super::unavailable;
use crate::broker::BrokerError;

/// About how many registry changes the log keeps.
pub(super) const LOG_CAP: u64 = 10_000;

/// A log entry's id (`<ms>-<seq>`), ordered as Redis orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct LogId(u64, u64);

impl LogId {
    /// Before every entry.
    pub(super) const START: LogId = LogId(0, 0);

    pub(super) fn parse(text: &str) -> Option<LogId> {
        let (ms, seq) = text.split_once('-')?;
        let number = |t: &str| {
            (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                .then(|| t.parse().ok())
                .flatten()
        };
        Some(LogId(number(ms)?, number(seq)?))
    }

    fn after(self) -> String {
        format!("({}-{}", self.0, self.1)
    }
}

/// One change read from the log.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Change {
    Created(String),
    Deleted(String),
}

pub(super) type RawEntry = (String, Vec<(String, String)>);

/// The changes after `seen`, oldest first, with the newest entry's id; or
/// `None` when the log no longer reaches back to `seen` (read the whole
/// registry instead).
pub(super) async fn since(
    conn: &ConnectionManager,
    keys: &Keys,
    seen: LogId,
) -> Result<Option<(Vec<Change>, LogId)>, BrokerError> {
    const PAGE: usize = 1000;
    let mut conn = conn.clone();
    let oldest: Vec<RawEntry> = redis::cmd("XRANGE")
        .arg(keys.registry_log())
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut conn)
        .await
        .map_err(unavailable)?;
    match oldest.first().and_then(|(id, _)| LogId::parse(id)) {
        // Entries after `seen` may have been trimmed unread.
        Some(first) if first > seen => return Ok(None),
        None if seen != LogId::START => return Ok(None),
        _ => {}
    }
    let (mut changes, mut last) = (Vec::new(), seen);
    loop {
        let page: Vec<RawEntry> = redis::cmd("XRANGE")
            .arg(keys.registry_log())
            .arg(last.after())
            .arg("+")
            .arg("COUNT")
            .arg(PAGE)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let read = page.len();
        for (id, fields) in page {
            let Some(id) = LogId::parse(&id) else {
                continue;
            };
            last = id;
            for (kind, topic) in fields {
                match kind.as_str() {
                    "c" => changes.push(Change::Created(topic)),
                    "d" => changes.push(Change::Deleted(topic)),
                    _ => {}
                }
            }
        }
        if read < PAGE {
            return Ok(Some((changes, last)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LogId;

    #[test]
    fn log_ids_parse_and_order_as_redis_orders_them() {
        let a = LogId::parse("1700000000000-0").expect("id");
        let b = LogId::parse("1700000000000-12").expect("id");
        let c = LogId::parse("1700000000001-0").expect("id");
        assert!(LogId::START < a && a < b && b < c);
        assert_eq!(b.after(), "(1700000000000-12");
        for bad in ["", "1", "1-", "-1", "a-1", "1-1-1", "+"] {
            assert_eq!(LogId::parse(bad), None, "{bad:?}");
        }
    }
}
