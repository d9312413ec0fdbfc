//! An incremental Server-Sent Events parser (the WHATWG algorithm, minus
//! `retry:` handling): feed it body bytes in any split, get events back.

/// One dispatched event. `data` lines are joined with `\n`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Event {
    pub event: Option<String>,
    pub id: Option<String>,
    pub data: String,
}

#[derive(Debug, Default)]
pub struct Parser {
    line: Vec<u8>,
    /// The previous byte was CR, so a following LF belongs to the same break.
    after_cr: bool,
    data: String,
    has_data: bool,
    event: Option<String>,
    id: Option<String>,
    /// Comment lines seen (heartbeats and the like).
    pub comments: u64,
}

impl Parser {
    /// Parses `input`, calling `on_event` for each complete event.
    pub fn feed(&mut self, input: &[u8], mut on_event: impl FnMut(Event)) {
        let mut start = 0;
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            if b == b'\n' && self.after_cr {
                self.after_cr = false;
                i += 1;
                start = i;
                continue;
            }
            self.after_cr = false;
            if b == b'\n' || b == b'\r' {
                self.after_cr = b == b'\r';
                if self.line.is_empty() {
                    self.line_done(&input[start..i], &mut on_event);
                } else {
                    self.line.extend_from_slice(&input[start..i]);
                    let line = std::mem::take(&mut self.line);
                    self.line_done(&line, &mut on_event);
                    self.line = line;
                    self.line.clear();
                }
                i += 1;
                start = i;
            } else {
                i += 1;
            }
        }
        self.line.extend_from_slice(&input[start..]);
    }

    fn line_done(&mut self, line: &[u8], on_event: &mut impl FnMut(Event)) {
        if line.is_empty() {
            if self.has_data || self.event.is_some() {
                let mut data = std::mem::take(&mut self.data);
                if data.ends_with('\n') {
                    data.pop();
                }
                on_event(Event {
                    event: self.event.take(),
                    id: self.id.clone(),
                    data,
                });
            }
            self.has_data = false;
            self.event = None;
            self.data.clear();
            return;
        }
        if line[0] == b':' {
            self.comments += 1;
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(p) => {
                let v = &line[p + 1..];
                (&line[..p], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        let value = String::from_utf8_lossy(value);
        match field {
            b"data" => {
                self.data.push_str(&value);
                self.data.push('\n');
                self.has_data = true;
            }
            b"event" => self.event = Some(value.into_owned()),
            b"id" => self.id = Some(value.into_owned()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_in_any_split() {
        let wire = b"retry: 3000\n: ok\n\nid: 1\r\ndata: a\r\ndata: b\r\n\r\nevent: x\rdata:c\r\rid: 2\ndata: d\n\n";
        for piece in 1..wire.len() {
            let mut p = Parser::default();
            let mut got = Vec::new();
            for part in wire.chunks(piece) {
                p.feed(part, |e| got.push(e));
            }
            assert_eq!(got.len(), 3, "piece {piece}");
            assert_eq!(got[0].data, "a\nb");
            assert_eq!(got[0].id.as_deref(), Some("1"));
            assert_eq!(got[1].event.as_deref(), Some("x"));
            assert_eq!(got[1].data, "c");
            assert_eq!(got[2].id.as_deref(), Some("2"));
            assert_eq!(got[2].data, "d");
            assert_eq!(p.comments, 1);
        }
    }
}
