//! go-sse-broker's response envelope: every answer of `/token`, `/send`,
//! `/info` and `/kick` (and every refusal of `/events`) is
//! `{"code":1,"msg":"success","micro":<µs>,"result":…}`, `micro` being the
//! time the handler took. Its clients branch on `code` (1 is success), so
//! that stays; unlike the original, a failure also gets the matching HTTP
//! status (it answered 200 with `code: 400`), and `code` is that status.

use std::time::Instant;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::http::error::ApiError;

/// A refusal: its HTTP status (also its `code`) and the message, which names
/// what was wrong and never echoes a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub status: StatusCode,
    pub msg: String,
}

impl Failure {
    pub fn new(status: StatusCode, msg: impl Into<String>) -> Failure {
        Failure {
            status,
            msg: msg.into(),
        }
    }

    pub fn bad_request(msg: impl Into<String>) -> Failure {
        Failure::new(StatusCode::BAD_REQUEST, msg)
    }

    pub fn unauthorized(msg: impl Into<String>) -> Failure {
        Failure::new(StatusCode::UNAUTHORIZED, msg)
    }
}

/// The native error's status and message, in this envelope.
impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Failure {
        Failure::new(e.status, e.message)
    }
}

/// One answer, timed from when the handler started.
pub struct Envelope {
    started: Instant,
    outcome: Result<Value, Failure>,
    /// `Cache-Control: no-store` (the answer holds a credential).
    no_store: bool,
}

impl Envelope {
    pub fn new(started: Instant, outcome: Result<Value, Failure>) -> Envelope {
        Envelope {
            started,
            outcome,
            no_store: false,
        }
    }

    /// Marks the answer as a credential no cache may keep.
    pub fn no_store(mut self) -> Envelope {
        self.no_store = true;
        self
    }
}

impl IntoResponse for Envelope {
    fn into_response(self) -> Response {
        let micro = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let (status, body) = match self.outcome {
            Ok(result) => (
                StatusCode::OK,
                json!({"code": 1, "msg": "success", "micro": micro, "result": result}),
            ),
            Err(f) => (
                f.status,
                json!({"code": f.status.as_u16(), "msg": f.msg, "micro": micro, "result": ""}),
            ),
        };
        let mut response = (status, Json(body)).into_response();
        if self.no_store {
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(response: Response) -> (StatusCode, Value) {
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        (status, serde_json::from_slice(&bytes).expect("json"))
    }

    #[tokio::test]
    async fn success_and_failure_keep_the_originals_keys() {
        let (status, v) = body(Envelope::new(Instant::now(), Ok(json!(2))).into_response()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            (v["code"].clone(), v["msg"].clone()),
            (json!(1), json!("success"))
        );
        assert_eq!(v["result"], 2);
        assert!(v["micro"].is_u64());

        let failure = Failure::bad_request("data cannot be empty");
        let (status, v) = body(Envelope::new(Instant::now(), Err(failure)).into_response()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(v["code"], 400);
        assert_eq!(v["msg"], "data cannot be empty");
        assert_eq!(v["result"], "");
    }
}
