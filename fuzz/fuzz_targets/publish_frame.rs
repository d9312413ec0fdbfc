//! Publish body → validated event → SSE bytes, for any body.
//!
//! The input is a request body as a client would POST it to
//! `/api/v1/pubsubs/:id/events`. It runs through exactly the server's code
//! (`http::pubsubs::event_from_body`, then `NewEvent::encode`, which the
//! broker calls when it assigns the event its position) and must end in one
//! of two ways:
//!
//! - a clean rejection: a 4xx `ApiError`, never a panic or a 5xx;
//! - a frame that an independent SSE parser (`eventsource-stream`) reads back
//!   as exactly one event carrying the published id, type and data, and
//!   nothing else: no `retry:`, no second event, no stray line.
//!
//! What "the published id/type/data" are is read from the body with
//! `serde_json::Value`, independently of the server's own parsing. The one
//! difference SSE itself imposes: a line break inside a string message
//! (`\r\n`, `\r`, `\n`) arrives as `\n`. A non-string message arrives as JSON
//! equal to what was sent, on one line.
#![no_main]

use std::pin::pin;
use std::task::{Context, Poll, Waker};

use eventsource_stream::{Event, Eventsource};
use futures_util::Stream;
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// The sequence a topic would assign; an event without an id gets it.
const SEQ: u64 = 41;

/// `server.maxJsonDepth` as a server without configuration has it.
static MAX_DEPTH: std::sync::LazyLock<usize> =
    std::sync::LazyLock::new(|| sser::config::Config::default().server.max_json_depth.0 as usize);

fuzz_target!(|body: &[u8]| {
    let event = match sser::http::pubsubs::event_from_body(body, *MAX_DEPTH) {
        Ok(event) => event,
        Err(e) => {
            assert!(
                e.status.is_client_error(),
                "rejection must be 4xx, got {}: {}",
                e.status,
                e.message
            );
            assert!(!e.message.is_empty(), "a rejection says why");
            return;
        }
    };
    let (id, frame) = event.encode(&SEQ.to_string());
    let expected = Expected::from_body(body);
    assert_eq!(&*id, expected.id, "the id the publisher is told");

    check_shape(&frame);
    let events = parse(&frame);
    assert_eq!(events.len(), 1, "exactly one event in {frame:?}");
    let got = &events[0];
    assert_eq!(got.id, expected.id, "id read back");
    assert_eq!(got.event, expected.kind, "type read back");
    assert_eq!(got.retry, None, "no retry field injected");
    match &expected.message {
        Some(Value::String(text)) => {
            assert_eq!(got.data, normalise_breaks(text), "string message read back");
        }
        Some(sent) => {
            assert!(!got.data.contains(['\r', '\n']), "JSON data is one line");
            let back = parse_value(got.data.as_bytes());
            assert_eq!(back.as_ref(), Some(sent), "JSON read back: {:?}", got.data);
        }
        // A number `Value` cannot hold: the data must still be one line of
        // JSON.
        None => {
            assert!(!got.data.contains(['\r', '\n']), "JSON data is one line");
            assert!(
                serde_json::from_str::<Box<RawValue>>(&got.data).is_ok(),
                "data is JSON: {:?}",
                got.data
            );
        }
    }
});

/// What the body says was published, read by serde's derive rather than the
/// server's code. The message stays raw here: `Value` cannot hold every
/// number JSON can spell (1e999), and the comparison below handles that.
#[derive(serde::Deserialize)]
struct Body {
    event: EventFields,
}

#[derive(serde::Deserialize)]
struct EventFields {
    id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    message: Box<RawValue>,
}

struct Expected {
    id: String,
    kind: String,
    message: Option<Value>,
}

impl Expected {
    fn from_body(body: &[u8]) -> Expected {
        let text = if body.iter().all(u8::is_ascii_whitespace) {
            b"null" as &[u8]
        } else {
            body
        };
        let body: Body = serde_json::from_slice(text).expect("an accepted body parses");
        let event = body.event;
        Expected {
            id: event.id.unwrap_or_else(|| SEQ.to_string()),
            // An event without `event:` is dispatched as "message".
            kind: event.kind.unwrap_or_else(|| "message".to_string()),
            message: parse_value(event.message.get().as_bytes()),
        }
    }
}

/// JSON of any depth as `Value`, or `None` where `Value` cannot hold it
/// (a number out of range).
fn parse_value(text: &[u8]) -> Option<Value> {
    let mut de = serde_json::Deserializer::from_slice(text);
    de.disable_recursion_limit();
    let value = Value::deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(value)
}

fn normalise_breaks(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

/// Every line of the frame is one of the three fields the encoder may
/// write, and the frame ends with the blank line that dispatches it.
fn check_shape(frame: &[u8]) {
    assert!(frame.ends_with(b"\n\n"), "frame ends with a blank line");
    let body = &frame[..frame.len() - 1];
    assert!(!body.contains(&b'\r'), "no CR anywhere in the frame");
    for line in body[..body.len() - 1].split(|&b| b == b'\n') {
        assert!(
            line.starts_with(b"id: ")
                || line.starts_with(b"event: ")
                || line.starts_with(b"data: "),
            "unexpected line {:?}",
            String::from_utf8_lossy(line)
        );
    }
}

/// Everything `eventsource-stream` reads from `frame`, fed as one chunk.
fn parse(frame: &bytes::Bytes) -> Vec<Event> {
    let chunks = futures_util::stream::iter([Ok::<_, std::convert::Infallible>(frame.clone())]);
    let mut events = pin!(chunks.eventsource());
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = Vec::new();
    // An in-memory stream is always ready: this loop never waits.
    loop {
        match events.as_mut().poll_next(&mut cx) {
            Poll::Ready(Some(Ok(event))) => out.push(event),
            Poll::Ready(Some(Err(e))) => panic!("SSE parse error: {e}"),
            Poll::Ready(None) => return out,
            Poll::Pending => panic!("an in-memory stream is never pending"),
        }
    }
}
