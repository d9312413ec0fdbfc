//! Reading a request's parameters the way go-sse-broker's back-ends send
//! them: `GET` with a query string, `POST` with a JSON object or a
//! urlencoded form. All values end up as text (`{"uid": 1986}` is the
//! user `"1986"`), since every parameter of this API is a string or a
//! number of seconds.
//!
//! The original exited the whole process on any parse failure (malformed
//! JSON, `application/json; charset=utf-8`, a preflight, `ttl=abc`); here
//! each is a 400 or 415 naming what was wrong, and nothing else happens.
//! `uid` and `device` are comma lists; given several times (`uid=a&uid=b`,
//! or a JSON array) they are joined into one list. Any other parameter
//! given twice is refused rather than guessed at.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{Method, StatusCode, header};
use serde_json::Value;

use super::envelope::Failure;
use crate::http::body::body_error;

/// Parameters that are comma-separated lists.
const LISTS: [&str; 2] = ["uid", "device"];

/// One request's parameters, by name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Params(HashMap<String, String>);

impl Params {
    /// Reads `request`'s parameters: its query for `GET`, its body for
    /// `POST` (a `POST` without a body falls back to its query, so
    /// `curl -X POST '/send?uid=1&data=x'` works). The body is bounded by
    /// `server.maxRequestBodySize`, as every native body is.
    pub async fn read(request: Request) -> Result<Params, Failure> {
        let query = request.uri().query().unwrap_or_default().to_string();
        if request.method() != Method::POST {
            return Params::from_query(&query);
        }
        let media = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            });
        let bytes = read_body(request).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Params::from_query(&query);
        }
        match media.as_deref() {
            // No type: JSON is what this API's examples send.
            None | Some("application/json") => Params::from_json(&bytes),
            Some(t) if t.ends_with("+json") => Params::from_json(&bytes),
            Some("application/x-www-form-urlencoded") => {
                let text = std::str::from_utf8(&bytes)
                    .map_err(|_| Failure::bad_request("the form body is not UTF-8"))?;
                Params::from_query(text)
            }
            Some(other) => Err(Failure::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "unsupported Content-Type {other}: send application/json or application/x-www-form-urlencoded"
                ),
            )),
        }
    }

    /// A query string or urlencoded form.
    pub fn from_query(text: &str) -> Result<Params, Failure> {
        let mut params = Params::default();
        for (key, value) in url::form_urlencoded::parse(text.as_bytes()) {
            params.add(key.into_owned(), value.into_owned())?;
        }
        Ok(params)
    }

    /// A JSON object whose values are strings, numbers, booleans, null
    /// (left out) or, for the list parameters, arrays of those.
    pub fn from_json(bytes: &[u8]) -> Result<Params, Failure> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| Failure::bad_request(format!("invalid JSON body: {e}")))?;
        let Value::Object(object) = value else {
            return Err(Failure::bad_request(
                "the JSON body must be an object, such as {\"uid\": \"1986\"}",
            ));
        };
        let mut params = Params::default();
        for (key, value) in object {
            let text = match value {
                Value::Null => continue,
                Value::Array(items) if LISTS.contains(&key.as_str()) => items
                    .iter()
                    .map(|item| scalar(&key, item))
                    .collect::<Result<Vec<_>, _>>()?
                    .join(","),
                other => scalar(&key, &other)?,
            };
            params.add(key, text)?;
        }
        Ok(params)
    }

    fn add(&mut self, key: String, value: String) -> Result<(), Failure> {
        match self.0.get_mut(&key) {
            None => {
                self.0.insert(key, value);
            }
            Some(list) if LISTS.contains(&key.as_str()) => {
                list.push(',');
                list.push_str(&value);
            }
            Some(_) => {
                return Err(Failure::bad_request(format!("repeated parameter: {key}")));
            }
        }
        Ok(())
    }

    /// The parameter's value; an empty one counts as absent.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A comma list, without its empty items (`"a,,b,"` is `a`, `b`), in
    /// order, each once.
    pub fn list(&self, key: &str) -> Vec<&str> {
        let mut seen = std::collections::HashSet::new();
        self.get(key)
            .into_iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|item| !item.is_empty() && seen.insert(*item))
            .collect()
    }

    /// Whether the parameter was given at all (even empty, or only commas).
    pub fn given(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
}

/// One JSON value as parameter text.
fn scalar(key: &str, value: &Value) -> Result<String, Failure> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(Failure::bad_request(format!(
            "{key} must be a string or a number"
        ))),
    }
}

/// The body, within the router's body limit (`server.maxRequestBodySize`).
async fn read_body(request: Request) -> Result<Bytes, Failure> {
    Bytes::from_request(request, &())
        .await
        .map_err(|rejection| Failure::from(body_error(rejection)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_forms_and_json_give_the_same_text() {
        let q = Params::from_query("uid=1935,1936&data=hello&event=").expect("query");
        assert_eq!(q.list("uid"), ["1935", "1936"]);
        assert_eq!(q.get("data"), Some("hello"));
        assert_eq!(q.get("event"), None, "empty counts as absent");

        let j = Params::from_json(
            br#"{"uid": 1986, "device": ["ax001", "ax002"], "ttl": 60, "x": null}"#,
        )
        .expect("json");
        assert_eq!(j.get("uid"), Some("1986"));
        assert_eq!(j.list("device"), ["ax001", "ax002"]);
        assert_eq!(j.get("ttl"), Some("60"));
        assert_eq!(j.get("x"), None);
    }

    #[test]
    fn lists_join_repeats_and_drop_empty_items() {
        let q = Params::from_query("uid=a&uid=b,,a,&device=").expect("query");
        assert_eq!(q.list("uid"), ["a", "b"]);
        assert!(q.list("device").is_empty());
        assert!(!q.given("device"));
        let only_commas = Params::from_query("uid=,,").expect("query");
        assert!(only_commas.given("uid"));
        assert!(only_commas.list("uid").is_empty());
    }

    #[test]
    fn what_crashed_the_original_is_a_clear_400() {
        for bad in [&b"{"[..], b"[1,2]", b"\"x\"", br#"{"uid": {"a": 1}}"#] {
            let e = Params::from_json(bad).expect_err("refused");
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad:?}");
        }
        let e = Params::from_query("data=a&data=b").expect_err("repeated");
        assert!(e.msg.contains("repeated parameter: data"), "{}", e.msg);
    }
}
