//! `send`: the publishing side of `hold`. It publishes events 0..E to one
//! topic that already exists, `--interval` apart, each payload stamped
//! `sb:<k>:<send time>:<padding>` on the machine's monotonic clock (see
//! [`crate::stats::now_ns`]), and reports each publish's status and round
//! trip. The `hold` processes measure the deliveries.

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::{Value, json};

use crate::http::{Conn, connect};
use crate::stats::now_ns;
use crate::target::Target;
use crate::{Common, Outcome};

#[derive(clap::Args, Debug, Clone)]
pub struct SendArgs {
    /// Id of the topic to publish to.
    #[arg(long)]
    pub topic: String,
    /// Events to publish (numbered 0..E).
    #[arg(long, default_value_t = 1)]
    pub events: u64,
    /// Time between the starts of two publishes (0: back to back).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Payload size in bytes; at least the header `sb:<k>:<ns>:`.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
}

pub async fn run(c: &Common, a: &SendArgs) -> Result<Outcome, String> {
    // Publishing needs no subscriber token.
    let target = Target::existing_topic(&c.target_spec(), &a.topic, "")?;
    let mut rng = StdRng::seed_from_u64(c.seed);
    let padding: String = (0..a.size)
        .map(|_| rng.sample(rand::distributions::Alphanumeric) as char)
        .collect();
    let start = Instant::now();
    let mut conn: Option<Conn> = None;
    let mut last_used = Instant::now();
    let mut sent = Vec::with_capacity(a.events as usize);
    let mut errors = 0u64;
    for k in 0..a.events {
        tokio::time::sleep_until((start + a.interval * k as u32).into()).await;
        let t = now_ns();
        let head = format!("sb:{k}:{t}:");
        let pad = a.size.saturating_sub(head.len());
        let req = target.publish_request(0, &format!("{head}{}", &padding[..pad]));
        // The server closes a keep-alive connection idle for its header
        // timeout (10 s by default): after a long pause, start afresh.
        if last_used.elapsed() > Duration::from_secs(5) {
            conn = None;
        }
        let result = async {
            if conn.is_none() {
                conn = Some(Conn::new(connect(target.pub_url.addr, None).await?, 4096));
            }
            let Some(c) = conn.as_mut() else {
                return Err(std::io::Error::other("no connection"));
            };
            let (head, body) = c.roundtrip(&req).await?;
            if !head.keep_alive {
                conn = None;
            }
            Ok::<_, std::io::Error>((head.status, body))
        }
        .await;
        let rtt_ms = now_ns().saturating_sub(t) as f64 / 1e6;
        last_used = Instant::now();
        let (status, error) = match result {
            Ok((s @ 200..=299, _)) => (Some(s), None),
            Ok((s, body)) => (Some(s), Some(String::from_utf8_lossy(&body).into_owned())),
            Err(e) => {
                conn = None;
                (None, Some(e.to_string()))
            }
        };
        errors += u64::from(error.is_some());
        sent.push(json!({
            "k": k, "sent_ns": t, "status": status, "rtt_ms": rtt_ms, "error": error,
        }));
    }
    let report: Value = json!({
        "scenario": "send",
        "target": c.label(),
        "params": {
            "events": a.events, "interval_secs": a.interval.as_secs_f64(), "size": a.size,
        },
        "publish_errors": errors,
        "per_event": sent,
    });
    Ok(Outcome {
        report,
        failed: errors > 0,
    })
}
