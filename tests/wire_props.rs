//! Property test of the wire format, end to end: whatever `id`, `type` and
//! `message` a publisher sends, an independent SSE parser
//! (`eventsource-stream`) reads back exactly what was published, or the
//! publish was refused with 400 and nothing reached the stream.
//!
//! "Exactly" has one documented exception that SSE itself imposes: a line
//! break inside a string message (`\r\n`, `\r` or `\n`) arrives as `\n`,
//! because SSE parsers split data lines on all three.

mod common;

use common::*;
use proptest::prelude::*;
use serde_json::{Value, json};

/// Strings that stress framing: unicode, line breaks of every kind, NUL,
/// colons and leading spaces, empty, and sizes around the 256-byte field limit.
fn tricky_string(max: usize) -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("\n".to_string()),
        Just("\r".to_string()),
        Just("\r\n".to_string()),
        Just("\0".to_string()),
        Just(" ".to_string()),
        Just(":".to_string()),
        Just("data: x".to_string()),
        Just("é🦀中".to_string()),
        "[a-zA-Z0-9 ]{1,8}",
        any::<char>().prop_map(String::from),
    ];
    prop_oneof![
        prop::collection::vec(piece, 0..12).prop_map(|v| v.concat()),
        Just("x".repeat(256)),
        Just("x".repeat(257)),
        prop::collection::vec(any::<char>(), 0..max).prop_map(|v| v.into_iter().collect()),
    ]
}

fn message() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        tricky_string(64).prop_map(Value::from),
    ];
    let json = leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(tricky_string(8), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    prop_oneof![
        tricky_string(4096).prop_map(Value::from),
        Just(Value::from("x\n".repeat(20_000))),
        json,
    ]
}

fn valid_field(s: &str) -> bool {
    !s.is_empty() && s.len() <= 256 && !s.contains(['\r', '\n', '\0'])
}

/// An id must also come back intact through an HTTP `Last-Event-ID` header,
/// which strips edge spaces and tabs, and must not be the reserved value.
fn valid_id(s: &str) -> bool {
    valid_field(s) && s != "earliest" && !s.starts_with([' ', '\t']) && !s.ends_with([' ', '\t'])
}

#[test]
fn whatever_is_published_reads_back_exactly_or_is_refused() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(TestServer::start());
    let (topic, token) = rt.block_on(server.create_topic(json!({})));
    // proptest's body is an `Fn`, so the one shared stream sits in a RefCell.
    let stream = std::cell::RefCell::new(rt.block_on(server.subscribe(&topic, &token)));

    let config = ProptestConfig {
        cases: 300,
        ..ProptestConfig::default()
    };
    proptest!(config, |(
        id in proptest::option::of(tricky_string(300)),
        kind in proptest::option::of(tricky_string(300)),
        message in message(),
    )| {
        let mut event = json!({ "message": message });
        if let Some(id) = &id { event["id"] = json!(id); }
        if let Some(kind) = &kind { event["type"] = json!(kind); }
        let resp = rt.block_on(server.publish(&topic, event));
        let valid = id.as_deref().is_none_or(valid_id) && kind.as_deref().is_none_or(valid_field);
        if !valid {
            prop_assert_eq!(resp.status().as_u16(), 400);
            // Nothing reached the stream: a marker publish is the next event.
            let marker = rt.block_on(server.publish_ok(&topic, json!({"message": "marker"})));
            let got = rt.block_on(stream.borrow_mut().expect_event());
            prop_assert_eq!(got.id, marker);
            return Ok(());
        }
        prop_assert_eq!(resp.status().as_u16(), 201);
        let body: Value = rt.block_on(resp.json()).unwrap();
        let got = rt.block_on(stream.borrow_mut().expect_event());
        prop_assert_eq!(Some(got.id.as_str()), body["event"]["id"].as_str());
        if let Some(id) = &id {
            prop_assert_eq!(&got.id, id);
        }
        prop_assert_eq!(got.event.as_str(), kind.as_deref().unwrap_or("message"));
        match &message {
            Value::String(text) => {
                let normalized = text.replace("\r\n", "\n").replace('\r', "\n");
                prop_assert_eq!(got.data, normalized);
            }
            other => {
                // The client sent compact JSON; the server forwards that text
                // byte for byte (same key order, same number spelling).
                prop_assert_eq!(got.data, serde_json::to_string(other).unwrap());
            }
        }
    });
    rt.block_on(server.stop());
}
