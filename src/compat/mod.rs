//! TEMPORARY stand-in for the compatibility frame (NS lands the real one).
pub mod go_sse_broker;

use std::sync::Arc;

/// What a profile can reach.
#[derive(Clone)]
pub struct Context {
    pub state: Arc<crate::http::AppState>,
}
