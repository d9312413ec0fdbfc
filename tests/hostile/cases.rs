//! The hostile requests, by kind, each with what it must get. Built as raw
//! bytes: most of these shapes are ones no HTTP client library will send.

use crate::common::API_TOKEN;

/// What a hostile request must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Refused by our handlers or axum: this status and the API's JSON error.
    Json(u16),
    /// Refused by hyper's HTTP/1 parser before the request exists: this
    /// status, and the connection closed (it cannot be trusted to carry a
    /// second request).
    Hyper(u16),
    /// Harmless and served: this status.
    Served(u16),
}

pub struct Case {
    pub what: String,
    pub request: Vec<u8>,
    pub expect: Expect,
}

/// A request with `Host` and `Connection: close`; `Content-Length` is added
/// for a body unless `headers` frame it themselves.
pub fn request(method: &str, target: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for h in headers {
        out.push_str(h);
        out.push_str("\r\n");
    }
    let framed = headers.iter().any(|h| {
        let h = h.to_ascii_lowercase();
        h.starts_with("content-length") || h.starts_with("transfer-encoding")
    });
    if !body.is_empty() && !framed {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

pub fn bearer() -> String {
    format!("Authorization: Bearer {API_TOKEN}")
}

pub fn publish_case(what: &str, topic: &str, body: &[u8], expect: Expect) -> Case {
    Case {
        what: what.to_string(),
        request: request(
            "POST",
            &format!("/api/v1/pubsubs/{topic}/events"),
            &[&bearer()],
            body,
        ),
        expect,
    }
}

pub fn nested(depth: usize) -> String {
    format!(
        r#"{{"event":{{"message":{}{}}}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    )
}

/// Bodies that are not a publish request at all.
pub fn malformed_bodies(topic: &str) -> Vec<Case> {
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("not JSON", b"not json".to_vec()),
        ("unterminated object", b"{".to_vec()),
        ("truncated", br#"{"event":{"message":"#.to_vec()),
        ("array", b"[]".to_vec()),
        ("null", b"null".to_vec()),
        ("string", br#""event""#.to_vec()),
        ("trailing garbage", br#"{"event":{"message":1}} x"#.to_vec()),
        (
            "invalid UTF-8",
            b"{\"event\":{\"message\":\"\xff\xfe\"}}".to_vec(),
        ),
        (
            "byte order mark",
            b"\xef\xbb\xbf{\"event\":{\"message\":1}}".to_vec(),
        ),
        ("NaN", br#"{"event":{"message":NaN}}"#.to_vec()),
        (
            "duplicate field",
            br#"{"event":{"message":1,"message":2}}"#.to_vec(),
        ),
        (
            "lone surrogate",
            br#"{"event":{"message":"\ud800"}}"#.to_vec(),
        ),
        (
            "unescaped control character",
            b"{\"event\":{\"message\":\"a\x01b\"}}".to_vec(),
        ),
        ("message missing", br#"{"event":{"id":"x"}}"#.to_vec()),
        ("event not an object", br#"{"event":"x"}"#.to_vec()),
        (
            "nested 100,000 deep outside the message",
            format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
        ),
    ];
    bodies
        .into_iter()
        .map(|(what, body)| publish_case(what, topic, &body, Expect::Json(400)))
        .collect()
}

/// `id` and `type` values that would break SSE framing or resumption.
pub fn bad_fields(topic: &str) -> Vec<Case> {
    let huge = "x".repeat(64 * 1024);
    let values: Vec<(&str, String)> = vec![
        ("CRLF", r"a\r\nretry: 1".to_string()),
        ("LF", r"a\ndata: injected".to_string()),
        ("CR", r"a\rb".to_string()),
        ("NUL", r"a\u0000b".to_string()),
        ("empty", String::new()),
        ("257 bytes", "x".repeat(257)),
        ("64 KiB", huge),
    ];
    let mut cases = Vec::new();
    for field in ["id", "type"] {
        for (what, value) in &values {
            let body = format!(r#"{{"event":{{"{field}":"{value}","message":"x"}}}}"#);
            cases.push(publish_case(
                &format!("{field}: {what}"),
                topic,
                body.as_bytes(),
                Expect::Json(400),
            ));
        }
        for (what, value) in [("number", "5"), ("object", "{}"), ("array", "[]")] {
            let body = format!(r#"{{"event":{{"{field}":{value},"message":"x"}}}}"#);
            cases.push(publish_case(
                &format!("{field}: {what}"),
                topic,
                body.as_bytes(),
                Expect::Json(400),
            ));
        }
    }
    cases.push(publish_case(
        "id: reserved",
        topic,
        br#"{"event":{"id":"earliest","message":"x"}}"#,
        Expect::Json(400),
    ));
    cases
}

/// Missing, malformed, huge and misplaced tokens.
pub fn bad_tokens(topic: &str) -> Vec<Case> {
    let publish = format!("/api/v1/pubsubs/{topic}/events");
    let body = br#"{"event":{"message":"x"}}"#;
    let huge = format!("Authorization: Bearer {}", "t".repeat(7_000));
    let mut cases: Vec<Case> = [
        ("no token", String::new()),
        ("empty bearer", "Authorization: Bearer".to_string()),
        ("empty header", "Authorization:".to_string()),
        (
            "basic scheme",
            "Authorization: Basic dXNlcjpwYXNz".to_string(),
        ),
        ("7,000-byte token", huge),
        ("wrong token", "Authorization: Bearer wrong".to_string()),
        (
            "API token with a suffix",
            format!("Authorization: Bearer {API_TOKEN}x"),
        ),
    ]
    .into_iter()
    .map(|(what, header)| {
        let headers: Vec<&str> = [header.as_str()]
            .into_iter()
            .filter(|h| !h.is_empty())
            .collect();
        Case {
            what: format!("publish, {what}"),
            request: request("POST", &publish, &headers, body),
            expect: Expect::Json(401),
        }
    })
    .collect();
    // A token that is not ASCII cannot be a token at all.
    let mut utf8 = b"POST ".to_vec();
    utf8.extend_from_slice(publish.as_bytes());
    utf8.extend_from_slice(
        " HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer t\u{e9}\u{1f980}\r\n"
            .as_bytes(),
    );
    utf8.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    utf8.extend_from_slice(body);
    cases.push(Case {
        what: "publish, UTF-8 token".into(),
        request: utf8,
        expect: Expect::Json(401),
    });
    let long_query = format!("{publish}?access_token={}", "q".repeat(7_000));
    for (what, target, expect) in [
        (
            "subscribe, 7,000-byte query token",
            long_query.as_str(),
            401,
        ),
        // Decoded lossily, so simply a wrong token.
        (
            "subscribe, query token not UTF-8",
            &*format!("{publish}?access_token=%ff%fe"),
            401,
        ),
        (
            "subscribe, two query tokens",
            &*format!("{publish}?access_token=a&access_token=b"),
            400,
        ),
    ] {
        cases.push(Case {
            what: what.into(),
            request: request("GET", target, &[], b""),
            expect: Expect::Json(expect),
        });
    }
    cases
}

/// Shapes that make two parsers disagree on where a request ends.
pub fn smuggling(topic: &str) -> Vec<Case> {
    let publish = format!("/api/v1/pubsubs/{topic}/events");
    let auth = bearer();
    let body = br#"{"event":{"message":"x"}}"#;
    let mut cases = Vec::new();
    let mut add = |what: &str, headers: &[&str], body: &[u8], expect: Expect| {
        let mut headers: Vec<&str> = headers.to_vec();
        headers.insert(0, &auth);
        cases.push(Case {
            what: what.into(),
            request: request("POST", &publish, &headers, body),
            expect,
        });
    };
    add(
        "two different Content-Lengths",
        &["Content-Length: 3", "Content-Length: 25"],
        body,
        Expect::Hyper(400),
    );
    add(
        "Content-Length list with different values",
        &["Content-Length: 25, 3"],
        body,
        Expect::Hyper(400),
    );
    for value in ["-1", "+25", "0x19", "25 25", "99999999999999999999999"] {
        add(
            &format!("Content-Length: {value}"),
            &[&format!("Content-Length: {value}")],
            body,
            Expect::Hyper(400),
        );
    }
    for value in ["gzip", "chunked, gzip", "identity", "xchunked"] {
        add(
            &format!("Transfer-Encoding: {value}"),
            &[&format!("Transfer-Encoding: {value}")],
            b"0\r\n\r\n",
            Expect::Hyper(400),
        );
    }
    for (what, chunked) in [
        ("chunk size not hex", b"zz\r\nabc\r\n0\r\n\r\n".to_vec()),
        ("negative chunk size", b"-1\r\nabc\r\n0\r\n\r\n".to_vec()),
        (
            "chunk size overflows",
            b"fffffffffffffffffffffff\r\nabc\r\n0\r\n\r\n".to_vec(),
        ),
        (
            "chunk longer than its size",
            b"2\r\nabcdef\r\n0\r\n\r\n".to_vec(),
        ),
        (
            "chunk extension that never ends",
            format!("1;{}\r\na\r\n0\r\n\r\n", "e".repeat(10_000)).into_bytes(),
        ),
    ] {
        add(
            what,
            &["Transfer-Encoding: chunked"],
            &chunked,
            Expect::Json(400),
        );
    }
    // obs-fold (a header continued on the next line) and other broken heads.
    add("obs-fold", &["X-Folded: a", " b"], body, Expect::Hyper(400));
    add(
        "obs-fold inside Transfer-Encoding",
        &["Transfer-Encoding:", " chunked"],
        b"0\r\n\r\n",
        Expect::Hyper(400),
    );
    add(
        "space before the colon",
        &["Content-Length : 25"],
        body,
        Expect::Hyper(400),
    );
    cases
}

/// Request lines, methods, paths and header bytes no client should send.
pub fn broken_heads(topic: &str) -> Vec<Case> {
    let raw = |what: &str, bytes: &[u8], expect: Expect| Case {
        what: what.into(),
        request: bytes.to_vec(),
        expect,
    };
    let long_path = format!("/{}", "p".repeat(7_000));
    let too_long_path = format!("/{}", "p".repeat(10_000));
    vec![
        raw("not HTTP at all", b"hello\r\n\r\n", Expect::Hyper(400)),
        raw(
            "a TLS ClientHello on the plain port",
            b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",
            Expect::Hyper(400),
        ),
        raw(
            "two spaces in the request line",
            b"GET  /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
            Expect::Hyper(400),
        ),
        raw(
            "no HTTP version",
            b"GET /healthz\r\nHost: x\r\n\r\n",
            Expect::Hyper(400),
        ),
        raw(
            "method with a bad character",
            b"G@T /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
            Expect::Hyper(400),
        ),
        // Read as an authority-form target: no such endpoint.
        Case {
            what: "target without a slash".into(),
            request: request("GET", "healthz", &[], b""),
            expect: Expect::Json(404),
        },
        raw(
            "non-ASCII header name",
            "GET /healthz HTTP/1.1\r\nHost: x\r\nX-\u{e9}: 1\r\n\r\n".as_bytes(),
            Expect::Hyper(400),
        ),
        raw(
            "NUL in a header value",
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n",
            Expect::Hyper(400),
        ),
        raw(
            "bare CR in a header",
            b"GET /healthz HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n",
            Expect::Hyper(400),
        ),
        Case {
            what: "unknown method".into(),
            request: request("BREW", "/healthz", &[], b""),
            expect: Expect::Json(405),
        },
        Case {
            what: "lower-case method".into(),
            request: request("get", "/healthz", &[], b""),
            expect: Expect::Json(405),
        },
        Case {
            what: "DELETE on the events path".into(),
            request: request(
                "DELETE",
                &format!("/api/v1/pubsubs/{topic}/events"),
                &[&bearer()],
                b"",
            ),
            expect: Expect::Json(405),
        },
        Case {
            what: "dot segments".into(),
            request: request("GET", "/api/v1/../../etc/passwd", &[], b""),
            expect: Expect::Json(404),
        },
        Case {
            what: "percent-encoded bytes that are not UTF-8 in a path parameter".into(),
            request: request("DELETE", "/api/v1/pubsubs/%ff%fe", &[&bearer()], b""),
            expect: Expect::Json(400),
        },
        Case {
            what: "invalid percent-encoding".into(),
            request: request("DELETE", "/api/v1/pubsubs/%zz", &[&bearer()], b""),
            expect: Expect::Json(404),
        },
        Case {
            what: "encoded NUL and slash in a topic id".into(),
            request: request("DELETE", "/api/v1/pubsubs/a%00%2fb", &[&bearer()], b""),
            expect: Expect::Json(404),
        },
        Case {
            what: "7,000-byte path".into(),
            request: request("GET", &long_path, &[], b""),
            expect: Expect::Json(404),
        },
        Case {
            what: "request head over server.maxHeaderSize".into(),
            request: request("GET", &too_long_path, &[], b""),
            expect: Expect::Hyper(431),
        },
        Case {
            what: "UTF-8 header value (ignored)".into(),
            request: request("GET", "/healthz", &["X-Name: \u{e9}\u{1f980}"], b""),
            expect: Expect::Served(200),
        },
        Case {
            what: "absolute-form target (served as its path)".into(),
            request: request("GET", "http://elsewhere.example/healthz", &[], b""),
            expect: Expect::Served(200),
        },
    ]
}
