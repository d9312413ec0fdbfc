//! Raw HTTP/1.1 over TCP, for request shapes no well-behaved client will
//! send: conflicting framing headers, bad chunk sizes, obs-fold, bytes that
//! are not ASCII, malformed request lines. The request goes out byte for byte
//! as given; the response is read with `httparse` until its framing says it
//! is complete or the server closes the connection.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::DEADLINE;

/// One response as read off the socket.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whatever arrived after this response: a second response means the
    /// server read a second request out of the bytes sent.
    pub trailing: Vec<u8>,
    /// The server closed the connection (within `linger` of the response).
    pub closed: bool,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The API's error body, `{"error":{"code":N,"message":"..."}}`, when
    /// the response is JSON with a code equal to its status.
    pub fn json_error(&self) -> Option<serde_json::Value> {
        if !self
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json"))
        {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        let ok = v["error"]["code"] == self.status && v["error"]["message"].is_string();
        ok.then_some(v)
    }
}

/// Sends `request` as it is on a new connection and reads one response.
/// After it, waits up to `linger` for more bytes or for the server to close.
pub async fn send(addr: &str, request: &[u8], linger: Duration) -> RawResponse {
    let mut tcp = tokio::time::timeout(DEADLINE, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    // A server may answer and close before reading everything (413 on a
    // large declared body): a failed write is not the test's verdict, the
    // response is.
    let _ = tokio::time::timeout(DEADLINE, tcp.write_all(request)).await;
    read_response(&mut tcp, linger).await
}

/// Reads one response from `tcp` (see [`send`]).
pub async fn read_response(tcp: &mut TcpStream, linger: Duration) -> RawResponse {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut buf = Vec::with_capacity(4096);
    let mut closed = false;
    let (status, headers, head_len) = loop {
        if let Some(head) = parse_head(&buf) {
            break head;
        }
        assert!(
            !closed,
            "connection closed before a full response head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        closed = fill(tcp, &mut buf, deadline)
            .await
            .expect("a response in time");
    };
    let framing = body_framing(&headers);
    let body_end = loop {
        if let Some(end) = body_end(&buf[head_len..], framing) {
            break head_len + end;
        }
        if closed {
            assert!(
                framing == Framing::UntilClose,
                "connection closed inside a response body"
            );
            break buf.len();
        }
        closed = fill(tcp, &mut buf, deadline)
            .await
            .expect("a whole body in time");
    };
    let until = tokio::time::Instant::now() + linger;
    while !closed {
        match fill(tcp, &mut buf, until).await {
            Some(eof) => closed = eof,
            None => break,
        }
    }
    let body = decode_body(&buf[head_len..body_end], framing);
    RawResponse {
        status,
        headers,
        body,
        trailing: buf[body_end..].to_vec(),
        closed,
    }
}

/// Reads more bytes: `Some(true)` when the connection is closed (EOF or
/// reset), `Some(false)` when bytes arrived, `None` at `deadline`.
async fn fill(
    tcp: &mut TcpStream,
    buf: &mut Vec<u8>,
    deadline: tokio::time::Instant,
) -> Option<bool> {
    let mut chunk = [0u8; 8192];
    match tokio::time::timeout_at(deadline, tcp.read(&mut chunk)).await {
        Ok(Ok(0)) | Ok(Err(_)) => Some(true),
        Ok(Ok(n)) => {
            buf.extend_from_slice(&chunk[..n]);
            Some(false)
        }
        Err(_) => None,
    }
}

type Head = (u16, Vec<(String, String)>, usize);

fn parse_head(buf: &[u8]) -> Option<Head> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => Some((
            resp.code.unwrap_or(0),
            resp.headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_string(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect(),
            len,
        )),
        Ok(httparse::Status::Partial) => None,
        Err(e) => panic!(
            "malformed response head ({e}): {:?}",
            String::from_utf8_lossy(buf)
        ),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

fn body_framing(headers: &[(String, String)]) -> Framing {
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    };
    if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        Framing::Chunked
    } else if let Some(len) = get("content-length").and_then(|v| v.parse().ok()) {
        Framing::Length(len)
    } else {
        Framing::UntilClose
    }
}

/// Where the body ends within `rest`, once all of it has arrived.
fn body_end(rest: &[u8], framing: Framing) -> Option<usize> {
    match framing {
        Framing::Length(n) => (rest.len() >= n).then_some(n),
        Framing::UntilClose => None,
        Framing::Chunked => {
            let mut at = 0;
            loop {
                let line_end = find_crlf(&rest[at..])? + at;
                let size_text = std::str::from_utf8(&rest[at..line_end]).ok()?;
                let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
                at = line_end + 2;
                if size == 0 {
                    // No trailers from our server: the final CRLF.
                    return (rest.len() >= at + 2).then_some(at + 2);
                }
                at += size + 2;
                if rest.len() < at {
                    return None;
                }
            }
        }
    }
}

fn decode_body(raw: &[u8], framing: Framing) -> Vec<u8> {
    if framing != Framing::Chunked {
        return raw.to_vec();
    }
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(end) = find_crlf(&raw[at..]).map(|e| e + at) {
        let size = std::str::from_utf8(&raw[at..end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&raw[end + 2..end + 2 + size]);
        at = end + 2 + size + 2;
    }
    out
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}
