//! The dashboard's live feed: `GET /api/v1/metrics/stream`, an SSE stream of
//! the hub's numbers.
//!
//! One sampler task reads the counters once a second, keeps the last 15
//! minutes of rates in a ring (so a dashboard opened now draws its chart at
//! once), and encodes each update once into SSE bytes that every open stream
//! shares (the same encode-once rule as topic events). Events on the stream:
//!
//! - `history`: sent first, `{"interval_seconds":1,"points":[[t_ms, events_in/s,
//!   events_out/s, bytes_out/s, connections], ...]}`, oldest first;
//! - `stats`: every second, counters, rates, memory, uptime, version,
//!   publish latency quantiles, streams open by kind and, with identity
//!   tokens on, users and devices online (see [`stats_json`]);
//! - `topics`: every two seconds, the topic table (the 1000 most recently
//!   active topics, and the total count).
//!
//! A stream that falls behind simply skips updates: each one supersedes the
//! last, so nothing is owed to a slow dashboard and the sampler never waits.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::AppState;
use super::error::ApiError;
use super::principal::Principal;
use crate::hub::Hub;
use crate::metrics::process_rss_bytes;
use crate::presence::{PresenceCounts, PresenceTracker};
use crate::sse;

/// Seconds of rate history kept for the chart.
pub const HISTORY_SECONDS: usize = 15 * 60;
/// Most topics listed in one `topics` update.
pub const MAX_TOPICS: usize = 1000;
const INTERVAL: Duration = Duration::from_secs(1);

/// One second of the chart: `[t_ms, events_in/s, events_out/s, bytes_out/s,
/// connections]`.
type Point = [f64; 5];

/// The sampler's shared state; lives in [`AppState`].
pub struct StatsFeed {
    hub: Arc<Hub>,
    /// Who is online, read only when identity tokens are on (`None`
    /// otherwise): the counts then mean something.
    presence: Option<PresenceTracker>,
    history: Mutex<VecDeque<Point>>,
    last: Mutex<Option<Point>>,
    tx: broadcast::Sender<Bytes>,
    shutdown: CancellationToken,
    watchers: AtomicUsize,
}

impl StatsFeed {
    /// Starts the once-a-second sampler; it stops with `shutdown`. Pass
    /// `presence` when identity tokens are on: the `stats` events then carry
    /// users and devices online, and say identity is on.
    pub fn start(
        hub: Arc<Hub>,
        presence: Option<PresenceTracker>,
        shutdown: CancellationToken,
    ) -> Arc<StatsFeed> {
        let (tx, _) = broadcast::channel(8);
        let feed = Arc::new(StatsFeed {
            hub,
            presence,
            history: Mutex::new(VecDeque::with_capacity(HISTORY_SECONDS)),
            last: Mutex::new(None),
            tx,
            shutdown,
            watchers: AtomicUsize::new(0),
        });
        let sampler = feed.clone();
        tokio::spawn(async move { sampler.run().await });
        feed
    }

    async fn run(self: Arc<Self>) {
        let mut interval = tokio::time::interval(INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval.tick().await; // the first tick is immediate
        let mut prev = (Instant::now(), self.totals());
        let mut tick: u64 = 0;
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                () = self.shutdown.cancelled() => return,
            }
            tick += 1;
            let now = (Instant::now(), self.totals());
            let dt = now.0.duration_since(prev.0).as_secs_f64().max(1e-3);
            let rate = |i: usize| (now.1[i].saturating_sub(prev.1[i])) as f64 / dt;
            let point = [
                crate::store::now_ms() as f64,
                round2(rate(0)),
                round2(rate(1)),
                round2(rate(2)),
                self.hub.metrics().active_subscribers() as f64,
            ];
            prev = now;
            {
                let mut history = self.history.lock();
                if history.len() == HISTORY_SECONDS {
                    history.pop_front();
                }
                history.push_back(point);
            }
            *self.last.lock() = Some(point);
            // Encoding is skipped while no dashboard is watching.
            if self.tx.receiver_count() > 0 {
                let _ = self.tx.send(self.stats_frame());
                if tick.is_multiple_of(2) {
                    let _ = self.tx.send(self.topics_frame());
                }
            }
        }
    }

    /// `[events received, events sent, bytes sent]` so far.
    fn totals(&self) -> [u64; 3] {
        let samples = self.hub.metrics().samples(Default::default());
        let get = |name: &str| {
            samples
                .iter()
                .find(|s| s.name == name)
                .map_or(0, |s| s.value)
        };
        [
            get("message_received"),
            get("message_sent"),
            get("bytes_sent"),
        ]
    }

    fn stats_frame(&self) -> Bytes {
        let point = *self.last.lock();
        let value = stats_json(
            &self.hub,
            point,
            self.watchers.load(Ordering::Relaxed) as u64,
            self.presence.as_ref().map(PresenceTracker::counts),
        );
        sse::encode_notice("stats", &value.to_string())
    }

    fn topics_frame(&self) -> Bytes {
        sse::encode_notice("topics", &topics_json(&self.hub).to_string())
    }

    fn history_frame(&self) -> Bytes {
        let points: Vec<Point> = self.history.lock().iter().copied().collect();
        let value = json!({
            "interval_seconds": INTERVAL.as_secs(),
            "points": points,
        });
        sse::encode_notice("history", &value.to_string())
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The `stats` event: SSER's metrics (same names and order as
/// `/api/v1/metrics`), the latest per-second rates, process facts, the
/// streams open by kind, and `identity`: `null` when identity tokens are off,
/// else the users and devices online (`presence`). Every count is a counter
/// the registry or presence already keeps: O(1), never a walk over the
/// connections.
pub fn stats_json(
    hub: &Hub,
    point: Option<Point>,
    watchers: u64,
    presence: Option<PresenceCounts>,
) -> Value {
    let metrics = hub.metrics();
    let streams = hub.connections().counts();
    let latency = metrics.publish_latency.snapshot();
    let [t, events_in, events_out, bytes_out, _] =
        point.unwrap_or([crate::store::now_ms() as f64, 0.0, 0.0, 0.0, 0.0]);
    json!({
        "t": t,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": metrics.uptime_secs(),
        "memory_rss_bytes": process_rss_bytes(),
        "connections": metrics.active_subscribers(),
        "dashboards": watchers,
        "metrics": metrics.samples(hub.topic_counts()),
        "rates": {
            "events_in": events_in,
            "events_out": events_out,
            "bytes_out": bytes_out,
        },
        "publish_latency": {
            "count": latency.count,
            "p50_seconds": latency.quantile(0.5),
            "p99_seconds": latency.quantile(0.99),
        },
        "streams": {
            "topic": streams.topic,
            "identity": streams.identity,
            "presence": streams.presence,
        },
        "identity": presence.map(|p| json!({
            "users_online": p.users,
            "devices_online": p.devices,
        })),
    })
}

/// The `topics` event: the most recently active topics first.
pub fn topics_json(hub: &Hub) -> Value {
    let mut topics = hub.topics();
    let total = topics.len();
    topics.sort_by_key(|t| std::cmp::Reverse((t.last_publish_ms().unwrap_or(0), t.created_at_ms)));
    topics.truncate(MAX_TOPICS);
    json!({
        "total": total,
        "pubsubs": topics.iter().map(|t| super::pubsubs::describe(t)).collect::<Vec<_>>(),
    })
}

/// `GET /api/v1/metrics/stream`: the dashboard's feed, for the metrics token
/// or the API token.
///
/// The dashboard sends the token in the `Authorization` header (it reads the
/// stream with `fetch()`), so its token never appears in a URL. A plain
/// `EventSource` cannot set headers, so, as for topic streams, the metrics
/// token (never the API token) is also accepted as `?access_token=` when the
/// header is absent; the server logs paths only, never queries.
pub async fn stream(
    principal: Principal,
    State(state): State<Arc<AppState>>,
) -> Result<Response, ApiError> {
    // The API token is honoured only in the header, as on topic streams: it
    // can do everything, and a query string ends up in proxy logs.
    principal.monitor_stream()?;
    let feed = state.stats.clone();
    let mut rx = feed.tx.subscribe();
    let retry_ms = state.hub.settings().retry.as_millis() as u64;
    let guard = WatcherGuard::new(feed.clone());
    let body = async_stream::stream! {
        let _guard = guard;
        yield Ok::<_, Infallible>(sse::opening_frame(retry_ms));
        yield Ok(feed.history_frame());
        yield Ok(feed.stats_frame());
        yield Ok(feed.topics_frame());
        loop {
            tokio::select! {
                received = rx.recv() => match received {
                    Ok(frame) => yield Ok(frame),
                    // Updates supersede each other: skip what was missed.
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                () = feed.shutdown.cancelled() => {
                    yield Ok(sse::comment_frame(crate::hub::notice::SHUTDOWN_NOTICE));
                    return;
                }
            }
        }
    };
    Ok(super::subscribe::sse_response(body))
}

/// Counts open dashboard streams while they live.
struct WatcherGuard(Arc<StatsFeed>);

impl WatcherGuard {
    fn new(feed: Arc<StatsFeed>) -> Self {
        feed.watchers.fetch_add(1, Ordering::Relaxed);
        WatcherGuard(feed)
    }
}

impl Drop for WatcherGuard {
    fn drop(&mut self) {
        self.0.watchers.fetch_sub(1, Ordering::Relaxed);
    }
}
