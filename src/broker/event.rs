//! Events on their way through a broker: validated on the way in
//! ([`NewEvent`]), encoded once and shared on the way out ([`Delivery`]).

use std::sync::Arc;

use bytes::Bytes;

use crate::model::{Position, cursor};
use crate::sse;

/// An event that has passed validation and can go on the wire as it is.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub(crate) id: Option<String>,
    pub(crate) kind: Option<String>,
    pub(crate) data: String,
}

/// Which field of an event is unfit for the wire, and why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("event.{field} {reason}")]
pub struct InvalidEvent {
    pub field: &'static str,
    pub reason: sse::FieldError,
}

impl NewEvent {
    /// `id` and `kind` (the SSE `event:` field) must be single-line; `data`
    /// may span lines.
    pub fn new(
        id: Option<String>,
        kind: Option<String>,
        data: String,
    ) -> Result<Self, InvalidEvent> {
        for (field, value) in [("id", &id), ("type", &kind)] {
            if let Some(value) = value {
                sse::check_field(value).map_err(|reason| InvalidEvent { field, reason })?;
            }
        }
        // Events with these ids could never be resumed after: `earliest`
        // means something else, and HTTP strips a header value's edge
        // whitespace on the way back.
        if let Some(id) = id.as_deref() {
            let reason = if id == cursor::EARLIEST {
                Some(sse::FieldError::Reserved)
            } else if id.starts_with([' ', '\t']) || id.ends_with([' ', '\t']) {
                Some(sse::FieldError::EdgeWhitespace)
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(InvalidEvent {
                    field: "id",
                    reason,
                });
            }
        }
        Ok(NewEvent { id, kind, data })
    }

    /// The SSE frame, with the publisher's id or else `fallback_id`. Public
    /// so the fuzz target (`fuzz/fuzz_targets/publish_frame.rs`) checks the
    /// very frames subscribers get.
    pub fn encode(&self, fallback_id: &str) -> (Arc<str>, Bytes) {
        let id: Arc<str> = match &self.id {
            Some(id) => Arc::from(id.as_str()),
            None => Arc::from(fallback_id),
        };
        let frame = sse::encode_event(&id, self.kind.as_deref(), &self.data);
        (id, frame)
    }
}

/// What a publisher learns: the id single-stream subscribers see, and the
/// event's position in its stream.
#[derive(Debug, Clone)]
pub struct Published {
    pub id: Arc<str>,
    pub position: Position,
}

/// An event on its way out: its position and its SSE frame, shared by every
/// connection.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub position: Position,
    pub frame: Bytes,
}
