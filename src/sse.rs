//! The Server-Sent Events wire format, and nothing else.
//!
//! Every frame the server writes is built here, once, into `Bytes` that all
//! subscribers share. Field values that would break framing are refused by
//! [`check_field`] before anything is encoded; message text is split on any
//! line break (`\n`, `\r\n`, `\r`) into `data:` lines, so the SSE parser on the
//! other side reassembles it with `\n` between lines.

use bytes::{BufMut, Bytes, BytesMut};

/// Longest accepted `id` or `event` value, in bytes.
pub const MAX_FIELD_LEN: usize = 256;

/// Why a field value cannot go on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("must not be empty")]
    Empty,
    #[error("must not contain a line break (CR or LF)")]
    LineBreak,
    #[error("must not contain a NUL character")]
    Nul,
    #[error("must be at most {MAX_FIELD_LEN} bytes")]
    TooLong,
    #[error("is reserved: `earliest` asks a stream to replay all history")]
    Reserved,
    #[error(
        "must not start or end with a space or tab: an HTTP Last-Event-ID header cannot carry them back, so the event could never be resumed after"
    )]
    EdgeWhitespace,
}

/// Checks an `id` or `event` value. NUL is refused too: browsers ignore an
/// `id:` that contains one, which would silently break resumption.
pub fn check_field(value: &str) -> Result<(), FieldError> {
    if value.is_empty() {
        return Err(FieldError::Empty);
    }
    if value.len() > MAX_FIELD_LEN {
        return Err(FieldError::TooLong);
    }
    for b in value.bytes() {
        match b {
            b'\r' | b'\n' => return Err(FieldError::LineBreak),
            0 => return Err(FieldError::Nul),
            _ => {}
        }
    }
    Ok(())
}

/// Encodes one event: `id:`, optional `event:`, one `data:` line per line of
/// `data`, and the blank line that dispatches it. `id` and `event` must have
/// passed [`check_field`].
pub fn encode_event(id: &str, event: Option<&str>, data: &str) -> Bytes {
    let lines = data.bytes().filter(|&b| b == b'\n' || b == b'\r').count() + 1;
    let cap = 4 + id.len() + 1 + event.map_or(0, |e| 7 + e.len() + 1) + data.len() + lines * 7 + 1;
    let mut buf = BytesMut::with_capacity(cap);
    buf.put_slice(b"id: ");
    buf.put_slice(id.as_bytes());
    buf.put_u8(b'\n');
    if let Some(event) = event {
        buf.put_slice(b"event: ");
        buf.put_slice(event.as_bytes());
        buf.put_u8(b'\n');
    }
    put_data_lines(&mut buf, data);
    buf.put_u8(b'\n');
    buf.freeze()
}

/// Where the rest of a frame made by [`encode_event`] starts after its `id:`
/// line, and whether that rest begins with an `event:` line. Lets a stream
/// replace the id (and name the event) while sharing the encoded `data:`
/// lines. `None` for a frame that does not start with an `id:` line.
pub fn after_id_line(frame: &[u8]) -> Option<(usize, bool)> {
    if !frame.starts_with(b"id: ") {
        return None;
    }
    let end = frame.iter().position(|&b| b == b'\n')? + 1;
    Some((end, frame[end..].starts_with(b"event: ")))
}

/// The value of the `id:` line a frame starts with, if it starts with one.
pub fn id_of(frame: &[u8]) -> Option<&[u8]> {
    let line = frame.strip_prefix(b"id: ")?;
    let end = line.iter().position(|&b| b == b'\n')?;
    Some(&line[..end])
}

/// Writes `data: <line>\n` for each line, treating `\r\n`, `\r` and `\n` as
/// line breaks (the SSE parser does the same, so this is lossless except that
/// every break comes back as `\n`).
fn put_data_lines(buf: &mut BytesMut, data: &str) {
    let bytes = data.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                put_line(buf, &bytes[start..i]);
                i += 1;
                start = i;
            }
            b'\r' => {
                put_line(buf, &bytes[start..i]);
                i += if bytes.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                start = i;
            }
            _ => i += 1,
        }
    }
    put_line(buf, &bytes[start..]);
}

fn put_line(buf: &mut BytesMut, line: &[u8]) {
    buf.put_slice(b"data: ");
    buf.put_slice(line);
    buf.put_u8(b'\n');
}

/// A named event without an id (so it does not move the client's
/// `Last-Event-ID`), used for the server's own notices.
pub fn encode_notice(event: &str, data: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(event.len() + data.len() + 24);
    buf.put_slice(b"event: ");
    buf.put_slice(event.as_bytes());
    buf.put_u8(b'\n');
    put_data_lines(&mut buf, data);
    buf.put_u8(b'\n');
    buf.freeze()
}

/// SSER's last message on a stream whose topic was deleted (an unnamed event,
/// so `onmessage` sees it).
pub fn closed_frame() -> Bytes {
    Bytes::from_static(b"data: {\"status\": \"closed\"}\n\n")
}

/// SSER's keep-alive: a comment, which EventSource ignores.
pub fn heartbeat_frame() -> Bytes {
    Bytes::from_static(b": {\"status\": \"tick\"}\n\n")
}

/// The opening of every stream: the reconnect delay, and a comment so that
/// proxies and clients see bytes at once.
pub fn opening_frame(retry_ms: u64) -> Bytes {
    Bytes::from(format!("retry: {retry_ms}\n: ok\n\n"))
}

pub fn comment_frame(text: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(text.len() + 4);
    for line in text.lines() {
        buf.put_slice(b": ");
        buf.put_slice(line.as_bytes());
        buf.put_u8(b'\n');
    }
    buf.put_u8(b'\n');
    buf.freeze()
}

/// Removes insignificant whitespace from JSON text, keeping key order and
/// number spelling exactly as the publisher wrote them. The input must be
/// valid JSON (it came through `serde_json::value::RawValue`).
pub fn compact_json(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in raw.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_an_event() {
        let f = encode_event("7", Some("greet"), "hello\nworld");
        assert_eq!(&f[..], b"id: 7\nevent: greet\ndata: hello\ndata: world\n\n");
        let f = encode_event("x", None, "a\r\nb\rc\n");
        assert_eq!(&f[..], b"id: x\ndata: a\ndata: b\ndata: c\ndata: \n\n");
        assert_eq!(&encode_event("1", None, "")[..], b"id: 1\ndata: \n\n");
    }

    #[test]
    fn finds_what_follows_the_id_line() {
        let f = encode_event("7", Some("greet"), "hi");
        assert_eq!(after_id_line(&f), Some((6, true)));
        assert_eq!(&f[6 + 7..], b"greet\ndata: hi\n\n");
        let f = encode_event("12", None, "hi");
        assert_eq!(after_id_line(&f), Some((7, false)));
        assert_eq!(after_id_line(b"data: x\n\n"), None);
    }

    #[test]
    fn refuses_framing_breakers() {
        assert_eq!(check_field("a\nb"), Err(FieldError::LineBreak));
        assert_eq!(check_field("a\rb"), Err(FieldError::LineBreak));
        assert_eq!(check_field(""), Err(FieldError::Empty));
        assert_eq!(check_field("a\0"), Err(FieldError::Nul));
        assert_eq!(check_field(&"x".repeat(257)), Err(FieldError::TooLong));
        assert!(check_field("order-update-456").is_ok());
    }

    #[test]
    fn compacts_json_without_reordering() {
        assert_eq!(
            compact_json("{ \"b\" : 1,\n \"a\": [1, 2], \"s\": \"x y\\\" z\" }"),
            "{\"b\":1,\"a\":[1,2],\"s\":\"x y\\\" z\"}"
        );
    }
}
