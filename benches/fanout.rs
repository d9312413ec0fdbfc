//! Micro-benchmarks of the two things every delivered event goes through:
//! the SSE encoder (once per event) and the hub's fan-out to subscribers
//! (in-process, no sockets). Run: `cargo bench --bench fanout`.

use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::StreamExt;
use sser::hub::{Hub, NewEvent, Resume};
use sser::metrics::Metrics;
use tokio_util::sync::CancellationToken;

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("sse::encode_event");
    for size in [64usize, 1024, 16 * 1024] {
        let one_line = "x".repeat(size);
        let multi_line: String = (0..size)
            .map(|i| if i % 64 == 63 { '\n' } else { 'x' })
            .collect();
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("one_line", size), &one_line, |b, d| {
            b.iter(|| sser::sse::encode_event("1234567", Some("update"), d))
        });
        g.bench_with_input(
            BenchmarkId::new("lines_of_64", size),
            &multi_line,
            |b, d| b.iter(|| sser::sse::encode_event("1234567", None, d)),
        );
    }
    g.finish();
}

/// One publish reaching `subs` subscriber streams of one topic: the time
/// until every stream has yielded the event.
fn fan_out(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("hub::fan_out");
    g.measurement_time(Duration::from_secs(5));
    for subs in [1usize, 100, 1000] {
        let (hub, topic) = rt.block_on(async {
            // The shipped defaults, with heartbeats out of the way.
            let mut settings = sser::hub_settings(&sser::config::Config::default());
            settings.tick = Duration::from_secs(3600);
            let hub = Hub::new(
                settings,
                sser::broker::LocalBroker::in_memory(),
                &[],
                Arc::new(Metrics::default()),
                CancellationToken::new(),
            )
            .await
            .expect("hub");
            let topic = hub
                .create_topic(sser::hub::NewTopic::default())
                .await
                .expect("topic");
            (hub, topic)
        });
        // Each subscriber drains its stream and reports every event on a channel.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let readers: Vec<_> = (0..subs)
            .map(|_| {
                let sub = rt
                    .block_on(hub.subscribe(topic.clone(), Resume::Live))
                    .expect("subscribe");
                let tx = tx.clone();
                rt.spawn(async move {
                    let mut stream = Box::pin(sub.into_stream());
                    // The opening frame is not an event.
                    let _ = stream.next().await;
                    while stream.next().await.is_some() {
                        if tx.send(()).is_err() {
                            break;
                        }
                    }
                })
            })
            .collect();
        g.throughput(Throughput::Elements(subs as u64));
        g.bench_function(BenchmarkId::from_parameter(subs), |b| {
            b.iter(|| {
                let event = NewEvent::new(None, None, "x".repeat(64)).expect("valid");
                rt.block_on(hub.publish(&topic, event)).expect("publish");
                for _ in 0..subs {
                    rx.recv().expect("delivered");
                }
            })
        });
        for r in readers {
            r.abort();
        }
        let id = topic.id.to_string();
        let _ = rt.block_on(hub.delete_topic(&id));
    }
    g.finish();
}

criterion_group!(benches, encode, fan_out);
criterion_main!(benches);
