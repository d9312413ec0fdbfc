//! goSSE's request bodies, read as Go's `encoding/json` read them: a JSON
//! object whose keys match case-insensitively (an exact match first),
//! unknown keys ignored, `null` as absent. What Go refused (a body that is
//! not JSON, a number where a string belongs) is a 400 that names the
//! field; unlike goSSE, nothing in a body can bring the server down.

use serde_json::{Map, Value};

use super::error::GosseError;
use crate::http::body::JsonBody;
use crate::http::error::ApiError;

/// The body as a JSON object.
pub fn object(body: Result<JsonBody<Value>, ApiError>) -> Result<Map<String, Value>, GosseError> {
    match body? {
        JsonBody(Value::Object(map)) => Ok(map),
        JsonBody(_) => Err(GosseError::bad_request("the body must be a JSON object")),
    }
}

/// The string field `name`; `None` when absent, `null` or empty.
pub fn string(body: &Map<String, Value>, name: &str) -> Result<Option<String>, GosseError> {
    let value = body.get(name).or_else(|| {
        body.iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    });
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(GosseError::bad_request(format!("{name} must be a string"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_match_as_go_matches_them() {
        let Value::Object(body) =
            json!({"Content": "a", "content": "b", "TYPE": "t", "user": null, "id": "", "n": 1})
        else {
            unreachable!()
        };
        assert_eq!(string(&body, "content").unwrap().as_deref(), Some("b"));
        assert_eq!(string(&body, "type").unwrap().as_deref(), Some("t"));
        assert_eq!(string(&body, "user").unwrap(), None);
        assert_eq!(string(&body, "id").unwrap(), None);
        assert_eq!(string(&body, "missing").unwrap(), None);
        assert!(
            string(&body, "n")
                .unwrap_err()
                .message
                .contains("n must be a string")
        );
        assert!(object(Ok(JsonBody(json!([1])))).is_err());
    }
}
