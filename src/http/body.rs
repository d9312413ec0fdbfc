//! A JSON body extractor that accepts any `Content-Type` (SSER clients and
//! `curl -d` often send none, or a form type) and turns every failure into the
//! API's JSON error: 413 over the size limit, 400 for anything unparsable.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
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
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            let status = rejection.status();
            let message = if status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                "request body is larger than server.maxRequestBodySize".to_string()
            } else {
                format!("could not read the request body: {rejection}")
            };
            ApiError::new(status, message)
        })?;
        parse_json(&bytes).map(JsonBody)
    }
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
