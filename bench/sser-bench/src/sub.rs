//! One subscriber: open the stream, then read, decode and account for every
//! event until told to stop or the server ends the stream.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;

use crate::http::{Conn, Dechunker, Framing, connect};
use crate::sse::{Event, Parser};
use crate::stats::{Sharded, now_ns};
use crate::target::Target;

/// An open stream whose response head said 200.
pub struct Stream {
    pub conn: Conn,
    pub framing: Framing,
}

/// Connects and sends the subscribe request of one topic; fails unless the
/// answer is a 200 `text/event-stream`.
pub async fn open(
    target: &Target,
    topic: usize,
    source: Option<IpAddr>,
    buf: usize,
) -> Result<Stream, String> {
    open_request(target, &target.subscribe_request(topic), source, buf).await
}

/// [`open`] with any subscribe request, e.g.
/// [`Target::subscribe_request_many`].
pub async fn open_request(
    target: &Target,
    req: &[u8],
    source: Option<IpAddr>,
    buf: usize,
) -> Result<Stream, String> {
    open_request_at(target.sub_url.addr, req, source, buf).await
}

/// [`open_request`] to `addr` (one node of a cluster).
pub async fn open_request_at(
    addr: std::net::SocketAddr,
    req: &[u8],
    source: Option<IpAddr>,
    buf: usize,
) -> Result<Stream, String> {
    let stream = connect(addr, source)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut conn = Conn::new(stream, buf);
    tokio::io::AsyncWriteExt::write_all(&mut conn.stream, req)
        .await
        .map_err(|e| format!("write: {e}"))?;
    let head = conn
        .read_head()
        .await
        .map_err(|e| format!("response: {e}"))?;
    if head.status != 200 {
        return Err(format!("HTTP {}", head.status));
    }
    if !head.content_type.starts_with("text/event-stream") {
        return Err(format!("content-type {:?}", head.content_type));
    }
    Ok(Stream {
        conn,
        framing: head.framing,
    })
}

/// Parses a bench payload `sb:<k>:<send_ns>:<padding>`.
pub fn parse_payload(data: &str) -> Option<(u64, u64)> {
    let rest = data.strip_prefix("sb:")?;
    let mut it = rest.splitn(3, ':');
    let k = it.next()?.parse().ok()?;
    let t = it.next()?.parse().ok()?;
    Some((k, t))
}

/// Shared counters the drain loop watches.
#[derive(Default)]
pub struct Live {
    pub received: AtomicU64,
    pub ended: AtomicU64,
}

/// What one subscriber saw.
#[derive(Debug, Default, Clone)]
pub struct SubResult {
    pub received: u64,
    pub out_of_order: u64,
    pub lagged: bool,
    pub ended_early: bool,
    pub error: Option<String>,
    pub comments: u64,
    pub bytes: u64,
}

pub struct Accounting {
    pub publishers: usize,
    pub hist: Arc<Sharded>,
    pub live: Arc<Live>,
    /// Per-event delivery counts and times (`hold`); `None` elsewhere.
    pub events: Option<Arc<EventLog>>,
}

/// For each event number k below a bound: how many subscribers got it, its
/// send time (from the payload) and its first and last delivery times, all
/// on [`crate::stats::now_ns`]'s clock so processes' logs merge.
pub struct EventLog {
    pub received: Vec<AtomicU64>,
    pub sent_ns: Vec<AtomicU64>,
    pub first_ns: Vec<AtomicU64>,
    pub last_ns: Vec<AtomicU64>,
}

impl EventLog {
    pub fn new(events: usize) -> EventLog {
        let zeros = |v: u64| (0..events).map(|_| AtomicU64::new(v)).collect();
        EventLog {
            received: zeros(0),
            sent_ns: zeros(0),
            first_ns: zeros(u64::MAX),
            last_ns: zeros(0),
        }
    }

    /// One delivery of event `k`, sent at `sent` and read at `now`; events
    /// past the bound are not logged.
    fn record(&self, k: u64, sent: u64, now: u64) {
        let Some(i) = usize::try_from(k).ok().filter(|&i| i < self.received.len()) else {
            return;
        };
        self.received[i].fetch_add(1, Ordering::Relaxed);
        self.sent_ns[i].store(sent, Ordering::Relaxed);
        self.first_ns[i].fetch_min(now, Ordering::Relaxed);
        self.last_ns[i].fetch_max(now, Ordering::Relaxed);
    }
}

/// Reads until `stop` turns true or the stream ends.
pub async fn run(
    mut s: Stream,
    key: usize,
    acc: Arc<Accounting>,
    mut stop: watch::Receiver<bool>,
) -> SubResult {
    let mut res = SubResult::default();
    let mut parser = Parser::default();
    let mut dechunk = Dechunker::default();
    let mut last_k: Vec<Option<u64>> = vec![None; acc.publishers.max(1)];
    let mut lat: Vec<u64> = Vec::new();
    let mut decoded: Vec<u8> = Vec::new();
    let mut remaining = match s.framing {
        Framing::Length(n) => n,
        _ => u64::MAX,
    };
    loop {
        // Whatever is already buffered (the head's read may have brought
        // body bytes with it) is processed before the next read.
        if !s.conn.buf.is_empty() {
            res.bytes += s.conn.buf.len() as u64;
            decoded.clear();
            let body: &[u8] = match s.framing {
                Framing::Chunked => {
                    if let Err(e) = dechunk.decode(&mut s.conn.buf, &mut decoded) {
                        res.error = Some(e.to_string());
                        break;
                    }
                    &decoded
                }
                _ => {
                    let n = (s.conn.buf.len() as u64).min(remaining) as usize;
                    remaining -= n as u64;
                    decoded.extend_from_slice(&s.conn.buf[..n]);
                    s.conn.buf.clear();
                    &decoded
                }
            };
            let now = now_ns();
            let mut n = 0;
            parser.feed(body, |ev: Event| {
                if ev.event.as_deref() == Some("sser.lagged") {
                    res.lagged = true;
                    return;
                }
                if let Some((k, sent)) = parse_payload(&ev.data) {
                    n += 1;
                    lat.push(now.saturating_sub(sent) / 1000);
                    if let Some(log) = &acc.events {
                        log.record(k, sent, now);
                    }
                    let p = (k as usize) % last_k.len();
                    if last_k[p].is_some_and(|prev| k <= prev) {
                        res.out_of_order += 1;
                    }
                    last_k[p] = Some(k);
                }
            });
            if n > 0 {
                res.received += n;
                acc.live.received.fetch_add(n, Ordering::Relaxed);
                acc.hist.record_many(key, &lat);
                lat.clear();
            }
            if dechunk.is_done() || remaining == 0 {
                res.ended_early = !*stop.borrow();
                break;
            }
        }
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            r = s.conn.fill() => match r {
                Ok(0) => {
                    res.ended_early = !*stop.borrow();
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    if !*stop.borrow() {
                        res.ended_early = true;
                        res.error = Some(e.to_string());
                    }
                    break;
                }
            }
        }
    }
    res.comments = parser.comments;
    acc.live.ended.fetch_add(1, Ordering::Relaxed);
    res
}
