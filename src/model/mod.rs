//! The shared vocabulary, at the bottom of the house: every other layer may
//! use these types and this module uses none of them.
//!
//! - [`TopicId`]: a topic's name, validated once ([`TopicId::parse`]), so no
//!   other layer re-checks a string;
//! - [`StreamKey`]: anything a connection can follow (a topic, or a user's,
//!   device's or application's inbox), each with its own ordered history;
//! - [`Position`]: where an event stands in its stream, opaque outside the
//!   broker that assigns it;
//! - [`cursor`]: one SSE id holding a position in each of several streams;
//! - [`Retention`]: how much history a stream keeps (no serde: the HTTP body
//!   and the disk codec each have their own wire type);
//! - [`now_ms`]: the wall clock, in one place.

mod clock;
pub mod cursor;
mod position;
mod retention;
mod stream;
mod topic_id;

pub use clock::{now_ms, rfc3339};
pub use position::{InvalidPosition, Position};
pub use retention::Retention;
pub use stream::{DeviceKey, StreamKey, UserKey};
pub use topic_id::{InvalidTopicId, TopicId};
