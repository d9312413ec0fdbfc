//! A lean HTTP/1.1 client over a bare `TcpStream`: one request at a time per
//! connection, keep-alive, `Content-Length` and chunked bodies.
//!
//! Why not reqwest: a subscriber here is one task and one socket, and the
//! benchmark holds tens of thousands of them; a full client per connection
//! costs more memory and CPU than the server's side of the same connection,
//! which would make the tool the bottleneck. Only `http://` is supported:
//! load goes to loopback.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::fd::AsRawFd;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A parsed `http://host:port/path?query` URL.
#[derive(Debug, Clone)]
pub struct Url {
    pub addr: SocketAddr,
    /// The `Host` header value.
    pub host: String,
    pub path: String,
}

impl Url {
    pub fn parse(url: &str) -> Result<Url, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("only http:// URLs are supported: {url}"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let with_port = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {authority}: {e}"))?
            .find(|a| a.is_ipv4())
            .or_else(|| with_port.to_socket_addrs().ok()?.next())
            .ok_or_else(|| format!("no address for {authority}"))?;
        Ok(Url {
            addr,
            host: authority.to_string(),
            path: path.to_string(),
        })
    }
}

/// Opens a TCP connection, optionally from a given source address (the
/// kernel picks the port at `connect`, thanks to `IP_BIND_ADDRESS_NO_PORT`,
/// so each source address has its own ephemeral port range per destination).
pub async fn connect(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = source {
        set_bind_no_port(&socket);
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

fn set_bind_no_port(socket: &TcpSocket) {
    let one: libc::c_int = 1;
    // SAFETY: a valid socket fd and a correctly sized int option value.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Builds a request head (and body) into one buffer, so it goes out in one write.
pub fn build_request(
    method: &str,
    url: &Url,
    path: &str,
    headers: &[(String, String)],
    body: Option<&[u8]>,
) -> Vec<u8> {
    let mut req = Vec::with_capacity(256 + body.map_or(0, <[u8]>::len));
    req.extend_from_slice(method.as_bytes());
    req.push(b' ');
    req.extend_from_slice(path.as_bytes());
    req.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    req.extend_from_slice(url.host.as_bytes());
    req.extend_from_slice(b"\r\n");
    for (k, v) in headers {
        req.extend_from_slice(k.as_bytes());
        req.extend_from_slice(b": ");
        req.extend_from_slice(v.as_bytes());
        req.extend_from_slice(b"\r\n");
    }
    if let Some(body) = body {
        req.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        req.extend_from_slice(body);
    } else {
        req.extend_from_slice(b"\r\n");
    }
    req
}

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Length(u64),
    Chunked,
    /// Until the server closes the connection.
    Close,
}

#[derive(Debug)]
pub struct Head {
    pub status: u16,
    pub framing: Framing,
    pub keep_alive: bool,
    pub content_type: String,
}

/// One client connection with its read buffer.
pub struct Conn {
    pub stream: TcpStream,
    pub buf: BytesMut,
}

impl Conn {
    pub fn new(stream: TcpStream, capacity: usize) -> Conn {
        Conn {
            stream,
            buf: BytesMut::with_capacity(capacity),
        }
    }

    /// Reads more bytes into `buf`; `Ok(0)` is end of stream.
    pub async fn fill(&mut self) -> io::Result<usize> {
        if self.buf.capacity() - self.buf.len() < 512 {
            self.buf.reserve(4096);
        }
        self.stream.read_buf(&mut self.buf).await
    }

    /// Reads and parses a response head, leaving any body bytes in `buf`.
    pub async fn read_head(&mut self) -> io::Result<Head> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&self.buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let status = resp.code.unwrap_or(0);
                    let mut framing = Framing::Close;
                    let mut keep_alive = resp.version == Some(1);
                    let mut content_type = String::new();
                    for h in resp.headers.iter() {
                        let v = std::str::from_utf8(h.value).unwrap_or("").trim();
                        if h.name.eq_ignore_ascii_case("transfer-encoding") {
                            if v.to_ascii_lowercase().contains("chunked") {
                                framing = Framing::Chunked;
                            }
                        } else if h.name.eq_ignore_ascii_case("content-length") {
                            if framing != Framing::Chunked {
                                framing = Framing::Length(v.parse().map_err(|_| {
                                    io::Error::new(io::ErrorKind::InvalidData, "bad content-length")
                                })?);
                            }
                        } else if h.name.eq_ignore_ascii_case("connection") {
                            let v = v.to_ascii_lowercase();
                            if v.contains("close") {
                                keep_alive = false;
                            } else if v.contains("keep-alive") {
                                keep_alive = true;
                            }
                        } else if h.name.eq_ignore_ascii_case("content-type") {
                            content_type = v.to_string();
                        }
                    }
                    // These never have a body, whatever the headers say.
                    if status == 204 || status == 304 {
                        framing = Framing::Length(0);
                    }
                    if framing == Framing::Close {
                        keep_alive = false;
                    }
                    self.buf.advance(len);
                    // 1xx responses carry no body; skip them.
                    if (100..200).contains(&status) {
                        continue;
                    }
                    return Ok(Head {
                        status,
                        framing,
                        keep_alive,
                        content_type,
                    });
                }
                Ok(httparse::Status::Partial) => {
                    if self.buf.len() > 64 * 1024 {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "response head too large",
                        ));
                    }
                    if self.fill().await? == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                }
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
        }
    }

    /// Reads a whole (small) response body.
    pub async fn read_body(&mut self, framing: Framing) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        match framing {
            Framing::Length(n) => {
                let n = n as usize;
                while self.buf.len() < n {
                    if self.fill().await? == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                }
                out.extend_from_slice(&self.buf[..n]);
                self.buf.advance(n);
            }
            Framing::Chunked => {
                let mut dec = Dechunker::default();
                loop {
                    dec.decode(&mut self.buf, &mut out)?;
                    if dec.is_done() {
                        break;
                    }
                    if self.fill().await? == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                }
            }
            Framing::Close => {
                while self.fill().await? != 0 {}
                out.extend_from_slice(&self.buf);
                self.buf.clear();
            }
        }
        Ok(out)
    }

    /// Sends a request and reads the whole response.
    pub async fn roundtrip(&mut self, request: &[u8]) -> io::Result<(Head, Vec<u8>)> {
        self.stream.write_all(request).await?;
        let head = self.read_head().await?;
        let body = self.read_body(head.framing).await?;
        Ok((head, body))
    }
}

/// Incremental decoder for `Transfer-Encoding: chunked`.
#[derive(Debug, Default)]
pub struct Dechunker {
    state: ChunkState,
    size: u64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading hex digits of the chunk size.
    #[default]
    Size,
    /// Skipping a chunk extension up to CRLF.
    Ext,
    /// Expecting the LF after the size line's CR.
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// After the last (zero) chunk: trailer lines until an empty one.
    TrailerStart,
    TrailerLine,
    TrailerLf,
    EndLf,
    Done,
}

impl Dechunker {
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Consumes what it can from `input`, appending decoded bytes to `out`.
    pub fn decode(&mut self, input: &mut BytesMut, out: &mut Vec<u8>) -> io::Result<()> {
        use ChunkState::*;
        let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, format!("chunked: {m}"));
        let mut i = 0;
        let data = &input[..];
        while i < data.len() && self.state != Done {
            let b = data[i];
            match self.state {
                Size => {
                    match b {
                        b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                            let d = (b as char).to_digit(16).unwrap_or(0) as u64;
                            self.size = self
                                .size
                                .checked_mul(16)
                                .and_then(|s| s.checked_add(d))
                                .ok_or_else(|| bad("size overflow"))?;
                        }
                        b';' | b' ' | b'\t' => self.state = Ext,
                        b'\r' => self.state = SizeLf,
                        b'\n' => self.end_size(),
                        _ => return Err(bad("bad size")),
                    }
                    i += 1;
                }
                Ext => {
                    if b == b'\r' {
                        self.state = SizeLf;
                    } else if b == b'\n' {
                        self.end_size();
                    }
                    i += 1;
                }
                SizeLf => {
                    if b != b'\n' {
                        return Err(bad("expected LF after size"));
                    }
                    self.end_size();
                    i += 1;
                }
                Data => {
                    let take = (self.size as usize).min(data.len() - i);
                    out.extend_from_slice(&data[i..i + take]);
                    i += take;
                    self.size -= take as u64;
                    if self.size == 0 {
                        self.state = DataCr;
                    }
                }
                DataCr => {
                    self.state = match b {
                        b'\r' => DataLf,
                        b'\n' => Size,
                        _ => return Err(bad("expected CRLF after data")),
                    };
                    i += 1;
                }
                DataLf => {
                    if b != b'\n' {
                        return Err(bad("expected LF after data"));
                    }
                    self.state = Size;
                    i += 1;
                }
                TrailerStart => {
                    self.state = match b {
                        b'\r' => EndLf,
                        b'\n' => Done,
                        _ => TrailerLine,
                    };
                    i += 1;
                }
                TrailerLine => {
                    if b == b'\n' {
                        self.state = TrailerStart;
                    } else if b == b'\r' {
                        self.state = TrailerLf;
                    }
                    i += 1;
                }
                TrailerLf => {
                    self.state = TrailerStart;
                    i += 1;
                }
                EndLf => {
                    self.state = Done;
                    i += 1;
                }
                Done => {}
            }
        }
        input.advance(i);
        Ok(())
    }

    fn end_size(&mut self) {
        self.state = if self.size == 0 {
            ChunkState::TrailerStart
        } else {
            ChunkState::Data
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(wire: &[u8], piece: usize) -> (Vec<u8>, bool) {
        let mut dec = Dechunker::default();
        let mut out = Vec::new();
        let mut input = BytesMut::new();
        for part in wire.chunks(piece) {
            input.extend_from_slice(part);
            dec.decode(&mut input, &mut out).unwrap();
        }
        (out, dec.is_done())
    }

    #[test]
    fn dechunks_across_any_split() {
        let wire = b"5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n";
        for piece in 1..wire.len() {
            let (out, done) = decode_in_pieces(wire, piece);
            assert_eq!(out, b"hello 0123456789", "piece {piece}");
            assert!(done);
        }
    }

    #[test]
    fn open_stream_is_not_done() {
        let (out, done) = decode_in_pieces(b"3\r\nabc\r\n2\r\nde", 4);
        assert_eq!(out, b"abcde");
        assert!(!done);
    }

    #[test]
    fn parses_urls() {
        let u = Url::parse("http://127.0.0.1:8889/sub/a?x=1").unwrap();
        assert_eq!(u.addr.port(), 8889);
        assert_eq!(u.path, "/sub/a?x=1");
        assert_eq!(u.host, "127.0.0.1:8889");
        assert!(Url::parse("https://x").is_err());
    }
}
