//! A JSON body extractor that accepts any `Content-Type` (SSER clients and
//! `curl -d` often send none, or a form type) and turns every failure into the
//! API's JSON error: 413 over the size limit, 408 for a body that did not
//! arrive in time, 400 for anything unparsable; and the depth check for JSON
//! that is passed on to subscribers as it is.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;

pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Why a body could not be read: 413 over the size limit, 408 when it did
/// not arrive in time, else the rejection's own status and reason.
pub(crate) fn body_error(rejection: BytesRejection) -> ApiError {
    let status = rejection.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            status,
            "request body is larger than server.maxRequestBodySize",
        );
    }
    if let Some(timeout) = timed_out(&rejection) {
        return ApiError::new(StatusCode::REQUEST_TIMEOUT, timeout.to_string());
    }
    ApiError::new(
        status,
        format!("could not read the request body: {rejection}"),
    )
}

/// Parses a request body as the extractor does, once it has been read within
/// the size limit: an empty (or all-whitespace) body means "all defaults", as
/// SSER's `{}` does; anything unparsable is a 400 that says why.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"null"
    } else {
        bytes
    };
    serde_json::from_slice(text)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// The time-out error somewhere in a body error's chain: the accept loop
/// (`crate::serve`) ends a request body that misses its deadline with an
/// `io::Error` of kind `TimedOut` that names the setting.
fn timed_out<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return Some(io);
        }
        next = e.source();
    }
    None
}

/// How deeply `raw` (valid JSON text) nests arrays and objects, counting no
/// further than `limit + 1`. A scan, not a recursive parse, so a hostile
/// document cannot exhaust the stack: serde_json checks no depth when it
/// keeps a value as `RawValue`, and a message is passed on untouched.
pub fn json_depth_exceeds(raw: &str, limit: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for b in raw.bytes() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::json_depth_exceeds;

    #[test]
    fn counts_nesting_outside_strings() {
        assert!(!json_depth_exceeds("1", 0));
        assert!(json_depth_exceeds("[]", 0));
        assert!(!json_depth_exceeds(r#"{"a":[1,{"b":2}]}"#, 3));
        assert!(json_depth_exceeds(r#"{"a":[1,{"b":2}]}"#, 2));
        // Brackets and escaped quotes inside strings do not count.
        assert!(!json_depth_exceeds(r#"["[[[[\"{{{{"]"#, 1));
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(json_depth_exceeds(&deep, 128));
        let ok = format!("{}{}", "[".repeat(128), "]".repeat(128));
        assert!(!json_depth_exceeds(&ok, 128));
    }
}
