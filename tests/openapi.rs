//! Keeps `sdks/openapi/sser.yaml` true to the server.
//!
//! - The spec parses as OpenAPI 3.1 (typed, with `oas3`), every `$ref`
//!   resolves, every example validates against its own schema.
//! - The spec documents exactly the routes the router serves: [`ROUTES`] is
//!   checked against the spec, against `src/http/mod.rs`, and against the
//!   running server (none of them may answer with the fallback 404 or a 405).
//! - Real responses from a real server (in-process, real sockets, no mocks)
//!   have a documented status, the documented headers and content type, and a
//!   body that validates against the documented schema.
//!
//! Schemas are checked by [`validate`], a small JSON Schema evaluator for the
//! keywords the spec uses. It refuses any keyword it does not know, so the
//! spec cannot silently grow a constraint this test skips.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sser::config::StaticPubSub;
use sser::secret::Secret;

const SPEC_TEXT: &str = include_str!("../sdks/openapi/sser.yaml");
const ROUTER_SOURCE: &str = include_str!("../src/http/mod.rs");

/// Every route `src/http/mod.rs` serves, as (method, OpenAPI path).
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/v1/pubsubs"),
    ("POST", "/api/v1/pubsubs"),
    ("GET", "/api/v1/pubsubs/{id}"),
    ("DELETE", "/api/v1/pubsubs/{id}"),
    ("GET", "/api/v1/pubsubs/{id}/events"),
    ("POST", "/api/v1/pubsubs/{id}/events"),
    ("GET", "/api/v1/events"),
    ("GET", "/api/v1/stream"),
    ("POST", "/api/v1/send"),
    ("POST", "/api/v1/tokens"),
    ("GET", "/api/v1/connections"),
    ("DELETE", "/api/v1/connections/{id}"),
    ("POST", "/api/v1/kick"),
    ("GET", "/api/v1/apps/{app}/users/{user}"),
    ("GET", "/api/v1/presence/stream"),
    ("GET", "/api/v1/metrics"),
    ("GET", "/api/v1/metrics/stream"),
    ("GET", "/metrics"),
    ("GET", "/api/v1/whoami"),
    ("GET", "/"),
    ("GET", "/favicon.ico"),
    ("GET", "/assets/{file}"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
];

/// Tags of the compatibility profiles' operations: documented under a
/// prefix and checked against the profile's own routes (see
/// `gosse_operations_match_the_spec`), not against `ROUTES`.
const PROFILE_TAGS: &[&str] = &["goSSE", "sse-notification-service", "go-sse-broker"];

/// The go-sse-broker profile's routes, as documented (under the prefix
/// `/go-sse-broker`).
const GO_SSE_BROKER_ROUTES: &[(&str, &str)] = &[
    ("GET", "/go-sse-broker/token"),
    ("POST", "/go-sse-broker/token"),
    ("GET", "/go-sse-broker/send"),
    ("POST", "/go-sse-broker/send"),
    ("GET", "/go-sse-broker/events"),
    ("GET", "/go-sse-broker/info"),
    ("POST", "/go-sse-broker/info"),
    ("GET", "/go-sse-broker/kick"),
    ("POST", "/go-sse-broker/kick"),
];

/// The goSSE profile's routes, as documented (under the prefix `/gosse`).
const GOSSE_ROUTES: &[(&str, &str)] = &[
    ("POST", "/gosse/login"),
    ("OPTIONS", "/gosse/login"),
    ("POST", "/gosse/broadcast"),
    ("GET", "/gosse/events"),
    ("GET", "/gosse/admin/stop"),
    ("POST", "/gosse/admin/stop"),
];

/// The sse-notification-service profile's routes, as documented (under the
/// prefix `/ns`; its `/` is `/ns` itself).
const NS_ROUTES: &[(&str, &str)] = &[
    ("GET", "/ns"),
    ("GET", "/ns/health"),
    ("GET", "/ns/sse"),
    ("GET", "/ns/connections/{app}"),
    ("GET", "/ns/connections/{app}/{user}"),
];

const STATIC_ID: &str = "status";
const JWT_SECRET: &str = "openapi-test-identity-secret-32-bytes!";
const STATIC_TOKEN: &str = "static-topic-token";
const BODY_LIMIT: u64 = 4096;

// ---------------------------------------------------------------------------
// The spec
// ---------------------------------------------------------------------------

struct Spec {
    typed: oas3::Spec,
    raw: Value,
}

fn spec() -> Spec {
    let typed = oas3::from_yaml(SPEC_TEXT).expect("sser.yaml parses as an OpenAPI document");
    let raw: Value = yaml_serde::from_str(SPEC_TEXT).expect("sser.yaml is YAML");
    Spec { typed, raw }
}

impl Spec {
    /// Follows `$ref`s (`#/...` JSON pointers into this document).
    fn deref<'a>(&'a self, mut v: &'a Value) -> &'a Value {
        for _ in 0..16 {
            match v.get("$ref").and_then(Value::as_str) {
                Some(r) => v = self.pointer(r),
                None => return v,
            }
        }
        panic!("$ref chain too long")
    }

    fn pointer(&self, r: &str) -> &Value {
        let p = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("only local $refs are used: {r}"));
        self.raw
            .pointer(p)
            .unwrap_or_else(|| panic!("$ref {r} does not resolve"))
    }

    fn operation(&self, method: &str, path: &str) -> &Value {
        self.raw["paths"]
            .get(path)
            .and_then(|item| item.get(method.to_ascii_lowercase()))
            .unwrap_or_else(|| panic!("{method} {path} is not in sser.yaml"))
    }

    fn response(&self, method: &str, path: &str, status: StatusCode) -> &Value {
        let op = self.operation(method, path);
        let r = op["responses"]
            .get(status.as_str())
            .unwrap_or_else(|| {
                panic!(
                    "{method} {path} answered {status}, which sser.yaml does not document (documented: {:?})",
                    op["responses"].as_object().map(|m| m.keys().collect::<Vec<_>>())
                )
            });
        self.deref(r)
    }

    /// The compatibility profile an operation belongs to (its tag in
    /// [`PROFILE_TAGS`]), if any.
    fn profile(&self, method: &str, path: &str) -> Option<&'static str> {
        let tags = &self.operation(method, path)["tags"];
        PROFILE_TAGS
            .iter()
            .find(|t| tags.as_array().is_some_and(|a| a.contains(&json!(t))))
            .copied()
    }

    /// (method, path, planned) for every operation.
    fn operations(&self) -> Vec<(String, String, bool)> {
        self.typed
            .operations()
            .map(|(path, method, _)| {
                let planned = self.operation(method.as_str(), &path)["x-sser-planned"] == true;
                (method.as_str().to_string(), path, planned)
            })
            .collect()
    }

    fn schema(&self, name: &str) -> &Value {
        &self.raw["components"]["schemas"][name]
    }
}

// ---------------------------------------------------------------------------
// A small JSON Schema (2020-12 subset) evaluator
// ---------------------------------------------------------------------------

/// Keywords that only annotate, so they constrain nothing.
const ANNOTATIONS: &[&str] = &[
    "description",
    "title",
    "example",
    "examples",
    "format",
    "default",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$comment",
];

fn validate(spec: &Spec, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let Some(obj) = schema.as_object() else {
        if schema == &Value::Bool(false) {
            errors.push(format!("{at}: no value is allowed here"));
        }
        return;
    };
    for (key, arg) in obj {
        match key.as_str() {
            "$ref" => validate(
                spec,
                spec.pointer(arg.as_str().expect("$ref")),
                value,
                at,
                errors,
            ),
            "type" => {
                let types: Vec<&str> = match arg {
                    Value::String(t) => vec![t.as_str()],
                    Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                    _ => panic!("{at}: bad type keyword"),
                };
                if !types.iter().any(|t| has_type(value, t)) {
                    errors.push(format!("{at}: expected {types:?}, got {value}"));
                }
            }
            "const" => {
                if value != arg {
                    errors.push(format!("{at}: expected {arg}, got {value}"));
                }
            }
            "enum" => {
                if !arg.as_array().expect("enum").contains(value) {
                    errors.push(format!("{at}: {value} is not one of {arg}"));
                }
            }
            "required" => {
                if let Some(o) = value.as_object() {
                    for name in arg.as_array().expect("required") {
                        let name = name.as_str().expect("required name");
                        if !o.contains_key(name) {
                            errors.push(format!("{at}: required field `{name}` is missing"));
                        }
                    }
                }
            }
            "properties" => {
                if let Some(o) = value.as_object() {
                    for (name, sub) in arg.as_object().expect("properties") {
                        if let Some(v) = o.get(name) {
                            validate(spec, sub, v, &format!("{at}.{name}"), errors);
                        }
                    }
                }
            }
            "additionalProperties" => {
                if let Some(o) = value.as_object() {
                    let known = obj.get("properties").and_then(Value::as_object);
                    for (name, v) in o {
                        if known.is_some_and(|k| k.contains_key(name)) {
                            continue;
                        }
                        validate(spec, arg, v, &format!("{at}.{name}"), errors);
                    }
                }
            }
            "items" => {
                if let Some(items) = value.as_array() {
                    for (i, v) in items.iter().enumerate() {
                        validate(spec, arg, v, &format!("{at}[{i}]"), errors);
                    }
                }
            }
            "minLength" | "maxLength" => {
                if let Some(s) = value.as_str() {
                    let n = s.chars().count() as u64;
                    let limit = arg.as_u64().expect("length");
                    let ok = if key == "minLength" {
                        n >= limit
                    } else {
                        n <= limit
                    };
                    if !ok {
                        errors.push(format!("{at}: length {n} breaks {key} {limit}"));
                    }
                }
            }
            "minimum" => {
                if let (Some(v), Some(min)) = (value.as_f64(), arg.as_f64())
                    && v < min
                {
                    errors.push(format!("{at}: {v} is below the minimum {min}"));
                }
            }
            "oneOf" | "anyOf" | "allOf" => {
                let branches = arg.as_array().expect("combinator");
                let mut failures = Vec::new();
                let passing = branches
                    .iter()
                    .filter(|b| {
                        let mut e = Vec::new();
                        validate(spec, b, value, at, &mut e);
                        failures.extend(e.iter().cloned());
                        e.is_empty()
                    })
                    .count();
                let ok = match key.as_str() {
                    "oneOf" => passing == 1,
                    "anyOf" => passing >= 1,
                    _ => passing == branches.len(),
                };
                if !ok {
                    errors.push(format!(
                        "{at}: {passing} of {} {key} branches match ({failures:?})",
                        branches.len()
                    ));
                }
            }
            k if ANNOTATIONS.contains(&k) || k.starts_with("x-") => {}
            k => panic!(
                "{at}: sser.yaml uses the JSON Schema keyword `{k}`, which tests/openapi.rs does not check; teach `validate` about it"
            ),
        }
    }
}

fn has_type(v: &Value, t: &str) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        other => panic!("unknown JSON Schema type {other}"),
    }
}

fn assert_valid(spec: &Spec, schema: &Value, value: &Value, what: &str) {
    let mut errors = Vec::new();
    validate(spec, schema, value, "$", &mut errors);
    assert!(
        errors.is_empty(),
        "{what} does not match sser.yaml:\n  {}\nvalue: {value}",
        errors.join("\n  ")
    );
}

#[test]
fn the_schema_checker_catches_mismatches() {
    let spec = spec();
    let errors = |schema: &str, value: Value| {
        let mut e = Vec::new();
        validate(&spec, spec.schema(schema), &value, "$", &mut e);
        e
    };
    assert!(errors("CreatePubSubResponse", json!({"pubsub": {"id": "x", "token": "t", "persist": false, "created_at": "2026-11-22T16:00:00.000Z"}})).is_empty());
    assert_eq!(
        errors("CreatePubSubResponse", json!({"pubsub": {"id": "x"}})).len(),
        3
    );
    assert_eq!(
        errors(
            "ErrorResponse",
            json!({"error": {"code": "400", "message": "m"}})
        )
        .len(),
        1
    );
    assert_eq!(
        errors(
            "ErrorResponse",
            json!({"error": {"code": 200, "message": "m"}})
        )
        .len(),
        1
    );
    assert_eq!(errors("Health", json!({"status": "bad"})).len(), 1);
    assert_eq!(
        errors(
            "Readiness",
            json!({"status": "ready", "checks": {"hub": {"ok": 1, "message": "m"}}})
        )
        .len(),
        1
    );
    assert_eq!(
        errors("PublishRequest", json!({"event": {"id": "", "message": 1}})).len(),
        1
    );
    assert!(
        errors(
            "PublishRequest",
            json!({"event": {"id": null, "message": null}})
        )
        .is_empty()
    );
    assert!(errors("CreatePubSubRequest", json!(null)).is_empty());
    assert_eq!(
        errors("CreatePubSubRequest", json!({"pubsub": {"persits": true}})).len(),
        1
    );
    assert_eq!(
        errors("CreatePubSubRequest", json!({"pubsub": {"retention": 5}})).len(),
        1
    );
}

// ---------------------------------------------------------------------------
// The spec on its own
// ---------------------------------------------------------------------------

#[test]
fn spec_is_openapi_3_1_and_self_consistent() {
    let spec = spec();
    let version = spec.typed.validate_version().expect("openapi: 3.1.x");
    assert_eq!((version.major, version.minor), (3, 1));

    // Every $ref resolves (deref panics otherwise).
    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(o) => {
                if let Some(Value::String(r)) = o.get("$ref") {
                    out.push(r);
                }
                o.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&spec.raw, &mut all);
    assert!(!all.is_empty());
    for r in all {
        spec.pointer(r);
    }

    // The three token kinds, and the query form of the topic token.
    use oas3::spec::SecurityScheme;
    let components = spec.typed.components.as_ref().expect("components");
    let scheme = |name: &str| {
        components
            .security_schemes
            .get(name)
            .unwrap_or_else(|| panic!("security scheme {name}"))
            .resolve(&spec.typed)
            .expect("security scheme resolves")
    };
    for name in ["apiToken", "metricsToken", "topicToken"] {
        assert!(
            matches!(scheme(name), SecurityScheme::Http { ref scheme, .. } if scheme == "bearer"),
            "{name} is an HTTP bearer scheme"
        );
    }
    assert!(matches!(
        scheme("topicTokenQuery"),
        SecurityScheme::ApiKey { ref name, ref location, .. } if name == "access_token" && location == "query"
    ));

    let mut ids = BTreeSet::new();
    for (path, method, op) in spec.typed.operations() {
        let what = format!("{method} {path}");
        let id = op
            .operation_id
            .clone()
            .unwrap_or_else(|| panic!("{what}: operationId"));
        assert!(ids.insert(id), "{what}: duplicate operationId");
        let raw = spec.operation(method.as_str(), &path);
        // Security is stated on every operation, and names defined schemes.
        let security = raw["security"]
            .as_array()
            .unwrap_or_else(|| panic!("{what}: states its security (use [] for none)"));
        for requirement in security {
            for name in requirement.as_object().expect("requirement").keys() {
                scheme(name);
            }
        }
        let responses = op
            .responses
            .as_ref()
            .unwrap_or_else(|| panic!("{what}: responses"));
        assert!(!responses.is_empty(), "{what}: responses");
        for (status, response) in responses {
            let response = response.resolve(&spec.typed).expect("response resolves");
            assert!(
                response.description.is_some(),
                "{what} {status}: description"
            );
            assert!(
                response.headers.contains_key("X-Request-Id"),
                "{what} {status}: documents X-Request-Id"
            );
            if status.starts_with('4') || status.starts_with('5') {
                if path == "/readyz" {
                    continue;
                }
                let schema = &spec
                    .deref(&spec.operation(method.as_str(), &path)["responses"][status])["content"]
                    ["application/json"]["schema"];
                // A profile keeps its original's error shape (goSSE's
                // `{"error":"..."}`, `GosseError`).
                let shape = match spec.profile(method.as_str(), &path) {
                    Some("goSSE") => "#/components/schemas/GosseError",
                    // go-sse-broker's envelope with `code` ≠ 1.
                    Some("go-sse-broker") => "#/components/schemas/GsbError",
                    _ => "#/components/schemas/ErrorResponse",
                };
                assert_eq!(schema["$ref"], shape, "{what} {status}: errors use {shape}");
            }
        }
        if !security.is_empty() {
            assert!(responses.contains_key("401"), "{what}: documents 401");
        }
    }
}

#[test]
fn spec_examples_match_their_schemas() {
    let spec = spec();
    // Anything that has a `schema` and examples: media types, parameters.
    fn walk<'a>(v: &'a Value, at: String, out: &mut Vec<(String, &'a Value, &'a Value)>) {
        match v {
            Value::Object(o) => {
                if let Some(schema) = o.get("schema") {
                    if let Some(e) = o.get("example") {
                        out.push((format!("{at}.example"), schema, e));
                    }
                    if let Some(Value::Object(es)) = o.get("examples") {
                        for (name, e) in es {
                            out.push((format!("{at}.examples.{name}"), schema, e));
                        }
                    }
                }
                for (k, v) in o {
                    if k != "schema" {
                        walk(v, format!("{at}.{k}"), out);
                    }
                }
            }
            Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    walk(v, format!("{at}[{i}]"), out);
                }
            }
            _ => {}
        }
    }
    let mut found = Vec::new();
    walk(&spec.raw["paths"], "paths".into(), &mut found);
    walk(
        &spec.raw["components"]["responses"],
        "responses".into(),
        &mut found,
    );
    walk(
        &spec.raw["components"]["parameters"],
        "parameters".into(),
        &mut found,
    );
    assert!(found.len() > 10, "the spec has examples");
    for (at, schema, example) in found {
        let example = spec.deref(example);
        // An Example Object holds its value in `value`; a bare example is the value.
        let value = if at.contains(".examples.") {
            &example["value"]
        } else {
            example
        };
        assert_valid(&spec, schema, value, &at);
    }
    // Schema-level examples.
    for (name, schema) in spec.raw["components"]["schemas"]
        .as_object()
        .expect("schemas")
    {
        if let Some(e) = schema.get("example") {
            assert_valid(&spec, schema, e, &format!("schemas.{name}.example"));
        }
        for (i, e) in schema["examples"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            assert_valid(&spec, schema, e, &format!("schemas.{name}.examples[{i}]"));
        }
    }
}

// ---------------------------------------------------------------------------
// Routes: the spec, the router source and the running server agree
// ---------------------------------------------------------------------------

fn route_set() -> BTreeSet<(String, String)> {
    ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect()
}

/// The `.route(path, get(..).post(..))` calls in `src/http/mod.rs`.
fn router_source_routes() -> BTreeSet<(String, String)> {
    for construct in [".nest(", ".nest_service(", ".merge(", ".route_service("] {
        assert!(
            !ROUTER_SOURCE.contains(construct),
            "src/http/mod.rs now uses `{construct}`: extend router_source_routes in tests/openapi.rs to read it"
        );
    }
    // `any` comes out as "ANY", which no spec operation matches.
    const METHODS: &[&str] = &[
        "get", "post", "put", "delete", "patch", "head", "options", "trace", "any",
    ];
    let mut out = BTreeSet::new();
    let mut rest = ROUTER_SOURCE;
    while let Some(i) = rest.find(".route(") {
        rest = &rest[i + ".route(".len()..];
        let mut depth = 1;
        let end = rest
            .char_indices()
            .find_map(|(j, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                (depth == 0).then_some(j)
            })
            .expect("balanced .route(...)");
        let args = &rest[..end];
        let open = args.find('"').expect("route path literal");
        let close = open + 1 + args[open + 1..].find('"').expect("route path literal");
        let path = &args[open + 1..close];
        let handlers = &args[close + 1..];
        for m in METHODS {
            let needle = format!("{m}(");
            let mut from = 0;
            while let Some(k) = handlers[from..].find(&needle) {
                let at = from + k;
                let before = handlers[..at].chars().next_back();
                if !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                    out.insert((m.to_ascii_uppercase(), path.to_string()));
                }
                from = at + needle.len();
            }
        }
    }
    out
}

#[test]
fn spec_documents_exactly_the_routes_the_router_serves() {
    let spec = spec();
    let routes = route_set();
    let source = router_source_routes();
    assert_eq!(
        source, routes,
        "src/http/mod.rs and ROUTES in tests/openapi.rs disagree: update ROUTES and sser.yaml"
    );

    let ops: Vec<_> = spec
        .operations()
        .into_iter()
        .filter(|(m, p, _)| spec.profile(m, p).is_none())
        .collect();
    let documented: BTreeSet<_> = ops
        .iter()
        .filter(|(_, _, planned)| !planned)
        .map(|(m, p, _)| (m.clone(), p.clone()))
        .collect();
    let missing: Vec<_> = routes.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&routes).collect();
    assert!(
        missing.is_empty(),
        "served but not in sser.yaml: {missing:?}"
    );
    assert!(extra.is_empty(), "in sser.yaml but not served: {extra:?}");

    for (m, p, planned) in &ops {
        if *planned {
            assert!(
                !routes.contains(&(m.clone(), p.clone())),
                "{m} {p} is served now: remove `x-sser-planned: true` from it in sser.yaml and check its description"
            );
        }
    }
}

#[tokio::test]
async fn every_documented_route_is_served() {
    let spec = spec();
    let server = start().await;
    for (method, path) in ROUTES {
        let url = server.url(&path.replace("{id}", "no-such-topic"));
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let resp = server
            .http
            .request(method.clone(), url)
            .send()
            .await
            .expect("request");
        let status = resp.status();
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        // Without a token: the route's own 401, or its 200 when it is public.
        let body = check(&spec, method.as_str(), path, resp).await;
        assert_ne!(
            body["error"]["message"], "no such endpoint",
            "{method} {path} fell through to the router's fallback"
        );
    }
    server.stop().await;
}

// ---------------------------------------------------------------------------
// Real responses against the spec
// ---------------------------------------------------------------------------

async fn start() -> TestServer {
    TestServer::start_with(|c| {
        c.server.max_request_body_size = sser::config::Bytes(BODY_LIMIT);
        c.pubsub.static_pub_subs = vec![StaticPubSub {
            id: STATIC_ID.into(),
            name: Some("Status".into()),
            token: Secret::new(STATIC_TOKEN),
        }];
        c.identity.secret = Some(Secret::new(JWT_SECRET));
        c.identity.default_app = "shop".into();
    })
    .await
}

/// Checks status, documented headers and content type; returns the response
/// object from the spec.
fn check_head<'a>(
    spec: &'a Spec,
    method: &str,
    path: &str,
    status: StatusCode,
    headers: &HeaderMap,
) -> &'a Value {
    let what = format!("{method} {path} -> {status}");
    let response = spec.response(method, path, status);
    for (name, header) in response["headers"].as_object().into_iter().flatten() {
        let header = spec.deref(header);
        match headers.get(name.as_str()) {
            None => assert!(
                header["required"] != true,
                "{what}: header {name} is missing"
            ),
            Some(v) => {
                let v = Value::String(v.to_str().expect("header text").to_string());
                assert_valid(
                    spec,
                    &header["schema"],
                    &v,
                    &format!("{what}: header {name}"),
                );
            }
        }
    }
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_string());
    match response["content"].as_object() {
        Some(content) => {
            let ct = content_type.unwrap_or_else(|| panic!("{what}: no Content-Type"));
            assert!(
                content.contains_key(&ct),
                "{what}: Content-Type {ct} is not documented ({:?})",
                content.keys().collect::<Vec<_>>()
            );
        }
        None => assert!(content_type.is_none(), "{what}: undocumented body"),
    }
    response
}

/// Checks a whole (finite) response against the spec; returns its JSON body
/// (`Null` when it has none).
async fn check(spec: &Spec, method: &str, path: &str, resp: reqwest::Response) -> Value {
    let status = resp.status();
    let headers = resp.headers().clone();
    let response = check_head(spec, method, path, status, &headers);
    let body = resp.bytes().await.expect("body");
    let what = format!("{method} {path} -> {status}");
    let Some(content) = response["content"].as_object() else {
        assert!(body.is_empty(), "{what}: undocumented body");
        return Value::Null;
    };
    match content.get("application/json") {
        Some(media) => {
            let value: Value = serde_json::from_slice(&body)
                .unwrap_or_else(|e| panic!("{what}: body is not JSON ({e})"));
            assert_valid(spec, &media["schema"], &value, &what);
            value
        }
        None => Value::Null,
    }
}

/// Reads a stream's raw bytes until `needle` appears.
async fn read_until(resp: &mut reqwest::Response, needle: &str) -> String {
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !text.contains(needle) {
        let chunk = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} in stream: {text:?}"))
            .expect("stream read")
            .unwrap_or_else(|| panic!("stream ended before {needle:?}: {text:?}"));
        text.push_str(std::str::from_utf8(&chunk).expect("utf-8 stream"));
    }
    text
}

#[tokio::test]
async fn responses_match_the_spec() {
    let spec = spec();
    let server = start().await;
    let http = &server.http;
    const PUBSUBS: &str = "/api/v1/pubsubs";
    const PUBSUB: &str = "/api/v1/pubsubs/{id}";
    const EVENTS: &str = "/api/v1/pubsubs/{id}/events";
    let url = |tmpl: &str, id: &str| server.url(&tmpl.replace("{id}", id));

    // Create: defaults, bare Authorization, the error cases.
    let created = check(
        &spec,
        "POST",
        PUBSUBS,
        http.post(url(PUBSUBS, ""))
            .bearer_auth(API_TOKEN)
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(created["pubsub"]["persist"], false);
    let id = created["pubsub"]["id"].as_str().expect("id").to_string();
    let token = created["pubsub"]["token"]
        .as_str()
        .expect("token")
        .to_string();
    assert_eq!(id.len(), 11, "ids are 11 base62 characters");
    assert_eq!(token.len(), 64, "topic tokens are 64 base62 characters");

    let cases: Vec<(reqwest::RequestBuilder, u16)> = vec![
        // Bare token, empty body.
        (http.post(url(PUBSUBS, "")).header("Authorization", API_TOKEN), 201),
        (
            http.post(url(PUBSUBS, ""))
                .bearer_auth(API_TOKEN)
                .json(&json!({"pubsub": {"persist": false, "retention": {"max_events": 10, "max_age": 60000}}})),
            201,
        ),
        (http.post(url(PUBSUBS, "")).json(&json!({})), 401),
        (http.post(url(PUBSUBS, "")).bearer_auth("wrong").json(&json!({})), 401),
        // The metrics token may not create.
        (http.post(url(PUBSUBS, "")).bearer_auth(METRICS_TOKEN).json(&json!({})), 401),
        (http.post(url(PUBSUBS, "")).bearer_auth(API_TOKEN).body("{"), 400),
        (
            http.post(url(PUBSUBS, ""))
                .bearer_auth(API_TOKEN)
                .json(&json!({"pubsub": {"persits": true}})),
            400,
        ),
        // No persistent store in this server.
        (
            http.post(url(PUBSUBS, ""))
                .bearer_auth(API_TOKEN)
                .json(&json!({"pubsub": {"persist": true}})),
            400,
        ),
        (
            http.post(url(PUBSUBS, ""))
                .bearer_auth(API_TOKEN)
                .body("x".repeat(BODY_LIMIT as usize + 1)),
            413,
        ),
    ];
    for (req, want) in cases {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), want, "POST {PUBSUBS}");
        check(&spec, "POST", PUBSUBS, resp).await;
    }

    // Publish.
    let message = json!({"order_id": 9001, "status": "shipped"});
    let published = check(
        &spec,
        "POST",
        EVENTS,
        server
            .publish(
                &id,
                json!({"id": "order-update-456", "type": "ORDER_SHIPPED", "message": message}),
            )
            .await,
    )
    .await;
    assert_eq!(published["event"]["id"], "order-update-456");
    let cases: Vec<(&str, Value, u16)> = vec![
        (id.as_str(), json!({"message": "text"}), 201),
        (id.as_str(), json!({"message": null}), 201),
        (id.as_str(), json!({"id": "a\nb", "message": "x"}), 400),
        (id.as_str(), json!({"type": "", "message": "x"}), 400),
        (
            id.as_str(),
            json!({"id": "x".repeat(257), "message": "x"}),
            400,
        ),
        (id.as_str(), json!({"id": "x"}), 400),
        ("no-such-topic", json!({"message": "x"}), 404),
        (STATIC_ID, json!({"message": "x"}), 201),
    ];
    for (topic, event, want) in cases {
        let resp = server.publish(topic, event.clone()).await;
        assert_eq!(resp.status().as_u16(), want, "publish {event}");
        check(&spec, "POST", EVENTS, resp).await;
    }
    let resp = http
        .post(url(EVENTS, &id))
        .json(&json!({"event": {"message": "x"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    check(&spec, "POST", EVENTS, resp).await;
    let resp = http
        .post(url(EVENTS, &id))
        .bearer_auth(API_TOKEN)
        .json(&json!({"event": {"message": "x".repeat(BODY_LIMIT as usize)}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    check(&spec, "POST", EVENTS, resp).await;

    // List and show, with either token.
    for token in [METRICS_TOKEN, API_TOKEN] {
        let list = check(
            &spec,
            "GET",
            PUBSUBS,
            http.get(url(PUBSUBS, ""))
                .bearer_auth(token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert!(list["pubsubs"].as_array().expect("list").len() >= 4);
    }
    let shown = check(
        &spec,
        "GET",
        PUBSUB,
        http.get(url(PUBSUB, STATIC_ID))
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(shown["pubsub"]["static"], true);
    assert_eq!(shown["pubsub"]["name"], "Status");
    for (req, want) in [
        (http.get(url(PUBSUB, &id)).bearer_auth(METRICS_TOKEN), 200),
        (
            http.get(url(PUBSUB, "no-such-topic"))
                .bearer_auth(METRICS_TOKEN),
            404,
        ),
        (http.get(url(PUBSUB, &id)), 401),
        (http.get(url(PUBSUB, &id)).bearer_auth(&token), 401),
        (http.get(url(PUBSUBS, "")), 401),
    ] {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), want);
        let path = if resp.url().path() == PUBSUBS {
            PUBSUBS
        } else {
            PUBSUB
        };
        check(&spec, "GET", path, resp).await;
    }

    // Metrics: SSER's seven names first, every name documented.
    let metrics = check(
        &spec,
        "GET",
        "/api/v1/metrics",
        http.get(server.url("/api/v1/metrics"))
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let names: Vec<&str> = metrics["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .map(|m| m["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names[..7],
        [
            "topics",
            "static_topics",
            "active_topics",
            "subscribers",
            "active_subscribers",
            "message_received",
            "message_sent"
        ]
    );
    let op = spec.operation("GET", "/api/v1/metrics");
    let documented = op["description"].as_str().expect("description");
    for name in &names {
        assert!(
            documented.contains(&format!("`{name}`")),
            "metric {name} is not described in sser.yaml"
        );
    }
    let example: Vec<&str> =
        op["responses"]["200"]["content"]["application/json"]["example"]["metrics"]
            .as_array()
            .expect("metrics example")
            .iter()
            .map(|m| m["name"].as_str().expect("name"))
            .collect();
    assert_eq!(
        example, names,
        "the metrics example lists every metric, in order"
    );
    for req in [
        http.get(server.url("/api/v1/metrics"))
            .bearer_auth(API_TOKEN),
        http.get(server.url("/api/v1/metrics")),
        http.get(server.url("/api/v1/metrics")).bearer_auth(&token),
    ] {
        check(&spec, "GET", "/api/v1/metrics", req.send().await.unwrap()).await;
    }

    // Health and readiness.
    let health = check(
        &spec,
        "GET",
        "/healthz",
        http.get(server.url("/healthz")).send().await.unwrap(),
    )
    .await;
    assert_eq!(health, json!({"status": "ok"}));
    let ready = check(
        &spec,
        "GET",
        "/readyz",
        http.get(server.url("/readyz")).send().await.unwrap(),
    )
    .await;
    assert_eq!(ready["status"], "ready");

    // Subscribe: header token, query token, API token; 401 before 404.
    for req in [
        http.get(url(EVENTS, &id)).bearer_auth(&token),
        http.get(url(EVENTS, &id)).header("Authorization", &token),
        http.get(url(EVENTS, &id))
            .query(&[("access_token", &token)]),
        http.get(url(EVENTS, &id)).bearer_auth(API_TOKEN),
        http.get(url(EVENTS, STATIC_ID))
            .query(&[("access_token", STATIC_TOKEN)]),
    ] {
        let mut resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        check_head(&spec, "GET", EVENTS, resp.status(), resp.headers());
        assert_eq!(resp.headers()[CONTENT_TYPE], "text/event-stream");
        let opening = read_until(&mut resp, "\n\n").await;
        assert_eq!(
            opening, "retry: 3000\n: ok\n\n",
            "the documented opening frame"
        );
        assert!(resp.headers().get("x-sser-history-truncated").is_none());
    }
    for (req, want) in [
        (http.get(url(EVENTS, &id)), 401),
        (http.get(url(EVENTS, &id)).bearer_auth("wrong"), 401),
        (http.get(url(EVENTS, &id)).bearer_auth(METRICS_TOKEN), 401),
        (http.get(url(EVENTS, STATIC_ID)).bearer_auth(&token), 401),
        // A wrong header is not rescued by a right query token.
        (
            http.get(url(EVENTS, &id))
                .bearer_auth("wrong")
                .query(&[("access_token", &token)]),
            401,
        ),
        // 401 before 404: only the API token learns that a topic is missing.
        (
            http.get(url(EVENTS, "no-such-topic")).bearer_auth(&token),
            401,
        ),
        (http.get(url(EVENTS, "no-such-topic")), 401),
        (
            http.get(url(EVENTS, "no-such-topic"))
                .bearer_auth(API_TOKEN),
            404,
        ),
    ] {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), want, "{}", resp.url());
        check(&spec, "GET", EVENTS, resp).await;
    }

    // Resuming: a known id replays after it; an unknown one is truncated.
    let mut resp = http
        .get(url(EVENTS, &id))
        .bearer_auth(&token)
        .query(&[("last_event_id", "order-update-456")])
        .send()
        .await
        .unwrap();
    check_head(&spec, "GET", EVENTS, resp.status(), resp.headers());
    let text = read_until(&mut resp, "data: text\n\n").await;
    assert!(text.starts_with("retry: 3000\n: ok\n\nid: "), "{text:?}");
    assert!(
        !text.contains("order_id"),
        "replay starts after the given id"
    );
    drop(resp);

    let mut resp = http
        .get(url(EVENTS, &id))
        .bearer_auth(&token)
        .header("Last-Event-ID", "no-such-event")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    check_head(&spec, "GET", EVENTS, resp.status(), resp.headers());
    assert_eq!(resp.headers()["x-sser-history-truncated"], "true");
    let text = read_until(&mut resp, "event: ORDER_SHIPPED").await;
    let notice = text
        .split("\n\n")
        .find(|frame| frame.starts_with("event: sser.history_truncated\n"))
        .unwrap_or_else(|| panic!("a truncation notice: {text:?}"));
    let data = notice
        .strip_prefix("event: sser.history_truncated\ndata: ")
        .expect("one data line");
    let data: Value = serde_json::from_str(data).expect("notice data is JSON");
    assert_valid(
        &spec,
        spec.schema("SseNotice"),
        &data,
        "sser.history_truncated data",
    );
    drop(resp);

    // Delete: 204, then 404; a static topic is 409; tokens are checked first.
    let mut sub = http
        .get(url(EVENTS, &id))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    read_until(&mut sub, ": ok\n\n").await;
    for (req, want) in [
        (http.delete(url(PUBSUB, &id)), 401),
        (
            http.delete(url(PUBSUB, &id)).bearer_auth(METRICS_TOKEN),
            401,
        ),
        (http.delete(url(PUBSUB, &id)).bearer_auth(API_TOKEN), 204),
        (http.delete(url(PUBSUB, &id)).bearer_auth(API_TOKEN), 404),
        (
            http.delete(url(PUBSUB, STATIC_ID)).bearer_auth(API_TOKEN),
            409,
        ),
    ] {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), want);
        check(&spec, "DELETE", PUBSUB, resp).await;
    }
    // The documented last frame of a deleted topic's stream.
    let text = read_until(&mut sub, "data: {\"status\": \"closed\"}\n\n").await;
    assert!(
        text.ends_with("data: {\"status\": \"closed\"}\n\n"),
        "{text:?}"
    );
    let rest = tokio::time::timeout(Duration::from_secs(5), sub.chunk())
        .await
        .expect("the stream ends")
        .expect("clean end");
    assert!(rest.is_none(), "nothing after the closed frame");

    server.stop().await;
}

/// What the spec's top-level description promises beyond the operations:
/// JSON 404 for unknown paths, CORS preflight everywhere, X-Request-Id on
/// every response, and the framework's own 405.
#[tokio::test]
async fn described_behaviour_holds() {
    let spec = spec();
    let server = start().await;
    let http = &server.http;
    let description = spec.raw["info"]["description"]
        .as_str()
        .expect("description");

    let resp = http.get(server.url("/no/such/path")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert!(resp.headers().contains_key("x-request-id"));
    assert_eq!(resp.headers()[CONTENT_TYPE], "application/json");
    let body: Value = resp.json().await.unwrap();
    assert_valid(
        &spec,
        spec.schema("ErrorResponse"),
        &body,
        "unknown path 404",
    );

    let resp = http
        .get(server.url("/healthz"))
        .header("X-Request-Id", "mine-123")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["x-request-id"],
        "mine-123",
        "a client's request id is kept"
    );

    for path in [
        "/api/v1/pubsubs",
        "/api/v1/pubsubs/x/events",
        "/no/such/path",
    ] {
        let resp = http
            .request(Method::OPTIONS, server.url(path))
            .header("Origin", "https://app.example")
            .header("Access-Control-Request-Method", "DELETE")
            .header("Access-Control-Request-Headers", "authorization")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "preflight {path}");
        let h = resp.headers();
        assert_eq!(h["access-control-allow-origin"], "https://app.example");
        assert!(
            !h.contains_key("access-control-allow-credentials"),
            "`*` grants no credentials"
        );
        assert_eq!(h["access-control-max-age"], "86400");
        let methods = h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .replace(' ', "");
        assert!(description.contains(&format!("Access-Control-Allow-Methods: {methods}")));
        assert!(h.contains_key("x-request-id"));
    }

    let resp = http.put(server.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert!(resp.headers().contains_key("allow"));
    assert!(resp.headers().contains_key("x-request-id"));
    assert_eq!(resp.headers()["content-type"], "application/json");
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], 405);
    assert!(description.contains("405 with\nthat body and an `Allow` header"));

    server.stop().await;
}

#[tokio::test]
async fn multi_topic_stream_matches_the_spec() {
    const TOPICS: &str = "/api/v1/events";
    let spec = spec();
    let server = start().await;
    let http = &server.http;
    let (a, token_a) = server.create_topic(json!({})).await;
    let (b, _) = server.create_topic(json!({})).await;
    let url = server.url(TOPICS);

    for req in [
        http.get(&url)
            .query(&[("topic", a.as_str()), ("topic", b.as_str())])
            .bearer_auth(API_TOKEN),
        http.get(&url)
            .query(&[("topic", a.as_str()), ("access_token", token_a.as_str())]),
    ] {
        let mut resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        check_head(&spec, "GET", TOPICS, resp.status(), resp.headers());
        assert!(resp.headers().contains_key("x-connection-id"));
        let opening = read_until(&mut resp, "\n\n").await;
        assert_eq!(opening, "retry: 3000\n: ok\n\n");
    }
    let pair = [("topic", a.as_str()), ("topic", b.as_str())];
    for (req, want) in [
        (http.get(&url).query(&pair), 401),
        (http.get(&url).query(&pair).bearer_auth(&token_a), 401),
        (http.get(&url).query(&pair).bearer_auth("wrong"), 401),
        (
            http.get(&url)
                .query(&[("topic", "no-such-topic")])
                .bearer_auth(API_TOKEN),
            404,
        ),
        (
            http.get(&url)
                .query(&[("topic", "no-such-topic")])
                .bearer_auth(&token_a),
            401,
        ),
        (http.get(&url).bearer_auth(API_TOKEN), 400),
        (
            http.get(&url)
                .query(&[("topic", "not a topic")])
                .bearer_auth(API_TOKEN),
            400,
        ),
    ] {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), want, "{}", resp.url());
        check(&spec, "GET", TOPICS, resp).await;
    }
    server.stop().await;
}

/// Mints an identity token through the API (so the test depends on no JWT
/// library of its own).
async fn mint(server: &TestServer, body: Value) -> reqwest::Response {
    server
        .http
        .post(server.url("/api/v1/tokens"))
        .bearer_auth(API_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn identity_endpoints_match_the_spec() {
    const STREAM: &str = "/api/v1/stream";
    const SEND: &str = "/api/v1/send";
    const TOKENS: &str = "/api/v1/tokens";
    let spec = spec();
    let server = start().await;
    let http = &server.http;

    // Minting, and its errors.
    let minted = check(
        &spec,
        "POST",
        TOKENS,
        mint(
            &server,
            json!({"user": "u-42", "device": "phone-1", "topics": [STATIC_ID], "ttl": 60}),
        )
        .await,
    )
    .await;
    let token = minted["token"].as_str().expect("token").to_string();
    for (body, want) in [
        (json!({"user": "u", "ttl": 0}), 400),
        (json!({"user": ""}), 400),
        (json!({"user": "u", "nope": 1}), 400),
    ] {
        let resp = mint(&server, body).await;
        assert_eq!(resp.status().as_u16(), want);
        check(&spec, "POST", TOKENS, resp).await;
    }
    let resp = http
        .post(server.url(TOKENS))
        .json(&json!({"user": "u"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    check(&spec, "POST", TOKENS, resp).await;

    // The stream: header, query and cookie tokens; the documented frames.
    let url = server.url(STREAM);
    for req in [
        http.get(&url).bearer_auth(&token),
        http.get(&url).query(&[("access_token", &token)]),
        http.get(&url)
            .header("Cookie", format!("sser_token={token}")),
    ] {
        let mut resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        check_head(&spec, "GET", STREAM, resp.status(), resp.headers());
        assert!(resp.headers().contains_key("x-connection-id"));
        assert_eq!(read_until(&mut resp, "\n\n").await, "retry: 3000\n: ok\n\n");
    }
    let mut resp = http
        .get(&url)
        .query(&[("topic", STATIC_ID)])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    read_until(&mut resp, ": ok\n\n").await;

    // Sending, and its errors.
    let sent = check(
        &spec,
        "POST",
        SEND,
        http.post(server.url(SEND))
            .bearer_auth(API_TOKEN)
            .json(&json!({"users": ["u-42"], "type": "order", "message": {"total": 12}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(sent["reached"], 1);
    let text = read_until(&mut resp, "event: @user:order\ndata: {\"total\":12}\n\n").await;
    assert!(text.starts_with("id: "), "a cursor id: {text:?}");
    for (body, want) in [
        (json!({"users": [], "message": 1}), 400),
        (json!({"id": "a\nb", "message": 1}), 400),
        (
            json!({"devices": [{"user": "u-42", "device": "phone-1"}], "message": "ring"}),
            201,
        ),
        (json!({"app": "shop", "message": "all"}), 201),
    ] {
        let resp = http
            .post(server.url(SEND))
            .bearer_auth(API_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), want, "{body}");
        check(&spec, "POST", SEND, resp).await;
    }
    let resp = http
        .post(server.url(SEND))
        .bearer_auth(&token)
        .json(&json!({"message": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    check(&spec, "POST", SEND, resp).await;

    // The stream's errors, in the documented order.
    for (req, want, reason) in [
        (http.get(&url), 401, Some("token_missing")),
        (
            http.get(&url).bearer_auth("x.y.z"),
            401,
            Some("token_malformed"),
        ),
        (
            http.get(&url)
                .query(&[("topic", "no-such-topic")])
                .bearer_auth("bad"),
            401,
            Some("token_malformed"),
        ),
        (
            http.get(&url)
                .query(&[("topic", "other")])
                .bearer_auth(&token),
            403,
            None,
        ),
        (
            http.get(&url)
                .query(&[("topic", "a b")])
                .bearer_auth(&token),
            400,
            None,
        ),
    ] {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), want, "{}", resp.url());
        let body = check(&spec, "GET", STREAM, resp).await;
        if let Some(reason) = reason {
            assert_eq!(body["error"]["reason"], reason);
        }
    }
    let any = mint(&server, json!({"user": "u", "topics": ["*"]})).await;
    let any: Value = any.json().await.unwrap();
    let resp = http
        .get(&url)
        .query(&[("topic", "no-such-topic")])
        .bearer_auth(any["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    check(&spec, "GET", STREAM, resp).await;
    server.stop().await;

    // Identity off: 501 on all three.
    let off = TestServer::start().await;
    for (method, path) in [("GET", STREAM), ("POST", SEND), ("POST", TOKENS)] {
        let req = match method {
            "GET" => off.http.get(off.url(path)).bearer_auth("a.b.c"),
            _ => off
                .http
                .post(off.url(path))
                .bearer_auth(API_TOKEN)
                .json(&json!({"user": "u", "message": 1})),
        };
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 501, "{path}");
        check(&spec, method, path, resp).await;
    }
    off.stop().await;
}

#[tokio::test]
async fn registry_endpoints_match_the_spec() {
    const LIST: &str = "/api/v1/connections";
    const ONE: &str = "/api/v1/connections/{id}";
    const KICK: &str = "/api/v1/kick";
    const USER: &str = "/api/v1/apps/{app}/users/{user}";
    const PRESENCE: &str = "/api/v1/presence/stream";
    let spec = spec();
    let server = TestServer::start_with(|c| {
        c.identity.secret = Some(Secret::new(JWT_SECRET));
        c.identity.limits.max_connections_per_user = sser::config::Count(2);
    })
    .await;
    let http = &server.http;
    let token_of = |user: &'static str, device: &'static str| {
        let server = &server;
        async move {
            let minted: Value = mint(server, json!({"user": user, "device": device}))
                .await
                .json()
                .await
                .unwrap();
            minted["token"].as_str().unwrap().to_string()
        }
    };
    let phone = token_of("u-42", "phone-1").await;

    // The presence stream, then an identity connection it reports.
    let mut presence = http
        .get(server.url(PRESENCE))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(presence.status(), 200);
    check_head(
        &spec,
        "GET",
        PRESENCE,
        presence.status(),
        presence.headers(),
    );
    let mut stream = http
        .get(server.url("/api/v1/stream"))
        .bearer_auth(&phone)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let id = stream.headers()["x-connection-id"]
        .to_str()
        .unwrap()
        .to_string();
    let text = read_until(&mut presence, "event: device_online\n").await;
    let data = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("a data line");
    assert_valid(
        &spec,
        spec.schema("PresenceEvent"),
        &serde_json::from_str(data).unwrap(),
        "presence event",
    );

    // Listing, with every token kind, and its errors.
    for (token, path) in [
        (API_TOKEN, format!("{LIST}?app=default&limit=1")),
        (METRICS_TOKEN, format!("{LIST}?app=default&user=u-42")),
        (phone.as_str(), LIST.to_string()),
    ] {
        let resp = http
            .get(server.url(&path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let page = check(&spec, "GET", LIST, resp).await;
        assert_eq!(page["connections"][0]["id"], id.as_str());
    }
    for (token, query, want) in [
        (API_TOKEN, "?limit=0", 400),
        ("wrong", "", 401),
        (phone.as_str(), "?user=someone-else", 403),
    ] {
        let resp = http
            .get(server.url(&format!("{LIST}{query}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), want, "{query}");
        check(&spec, "GET", LIST, resp).await;
    }

    // A user's presence.
    for (token, path, want) in [
        (METRICS_TOKEN, "/api/v1/apps/default/users/u-42", 200),
        (phone.as_str(), "/api/v1/apps/default/users/u-42", 200),
        (API_TOKEN, "/api/v1/apps/default/users/nobody", 200),
        (phone.as_str(), "/api/v1/apps/default/users/nobody", 403),
    ] {
        let resp = http
            .get(server.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), want, "{path}");
        check(&spec, "GET", USER, resp).await;
    }

    // Admission refusals on the identity stream: the limit (429).
    let _second = http
        .get(server.url("/api/v1/stream"))
        .bearer_auth(token_of("u-42", "laptop").await)
        .send()
        .await
        .unwrap();
    let resp = http
        .get(server.url("/api/v1/stream"))
        .bearer_auth(token_of("u-42", "tablet").await)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    check(&spec, "GET", "/api/v1/stream", resp).await;

    // Kicks: by id (with a block: 403 on the way back in), by user.
    let resp = http
        .delete(server.url(&format!("/api/v1/connections/{id}")))
        .query(&[("reason", "maintenance"), ("block_seconds", "60")])
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(check(&spec, "DELETE", ONE, resp).await, json!({"ended": 1}));
    let text = read_until(&mut stream, "event: sser.kicked\n").await;
    let notice = text.rsplit("data: ").next().unwrap().trim();
    assert_valid(
        &spec,
        spec.schema("SseNotice"),
        &serde_json::from_str(notice).unwrap(),
        "sser.kicked",
    );
    let resp = http
        .get(server.url("/api/v1/stream"))
        .bearer_auth(&phone)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(resp.headers().contains_key("retry-after"));
    check(&spec, "GET", "/api/v1/stream", resp).await;
    for (token, want) in [(API_TOKEN, 404), (METRICS_TOKEN, 401)] {
        let resp = http
            .delete(server.url(&format!("/api/v1/connections/{id}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), want);
        check(&spec, "DELETE", ONE, resp).await;
    }
    for (body, want) in [
        (json!({"users": ["u-42"], "reason": "bye"}), 200),
        (json!({"devices": [{"user": "u-42", "device": "x"}]}), 200),
        (json!({}), 400),
        (json!({"users": ["u"], "block_seconds": 0}), 400),
    ] {
        let resp = http
            .post(server.url(KICK))
            .bearer_auth(API_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), want, "{body}");
        check(&spec, "POST", KICK, resp).await;
    }
    server.stop().await;

    // Kicks need identity on.
    let server = start_plain().await;
    let resp = server
        .http
        .post(server.url(KICK))
        .bearer_auth(API_TOKEN)
        .json(&json!({"users": ["u"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 501);
    check(&spec, "POST", KICK, resp).await;
    server.stop().await;
}

/// A server without identity tokens.
async fn start_plain() -> TestServer {
    TestServer::start().await
}

// ---------------------------------------------------------------------------
// The goSSE profile (tag goSSE), served under the prefix /gosse
// ---------------------------------------------------------------------------

#[tokio::test]
async fn gosse_operations_match_the_spec() {
    use sser::config::{Flag, GosseAccount, GosseRole};
    let spec = spec();
    let documented: BTreeSet<(String, String)> = spec
        .operations()
        .into_iter()
        .filter(|(m, p, _)| spec.profile(m, p) == Some("goSSE"))
        .map(|(m, p, _)| (m, p))
        .collect();
    let expected: BTreeSet<(String, String)> = GOSSE_ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, expected, "goSSE operations in sser.yaml");
    let paths: BTreeSet<String> = expected.iter().map(|(_, p)| p.clone()).collect();
    let routed: BTreeSet<String> = sser::compat::gosse::ABOUT
        .paths
        .iter()
        .map(|p| format!("/gosse{p}"))
        .collect();
    assert_eq!(
        paths, routed,
        "the profile's paths (ABOUT.paths) and sser.yaml"
    );

    let server = TestServer::start_with(|c| {
        c.identity.secret = Some(Secret::new(JWT_SECRET));
        c.server.max_request_body_size = sser::config::Bytes(BODY_LIMIT);
        let g = &mut c.compat.gosse;
        g.enabled = Flag(true);
        g.prefix = "/gosse".into();
        g.allowed_origin = Some("https://app.example.com".into());
        g.accounts = [("client", GosseRole::Client), ("admin", GosseRole::Admin)]
            .into_iter()
            .map(|(name, role)| GosseAccount {
                username: name.into(),
                password_hash: sser::compat::gosse::hash_password("pw").expect("hash"),
                role,
            })
            .collect();
    })
    .await;
    let http = &server.http;
    let url = |p: &str| server.url(p);
    const LOGIN: &str = "/gosse/login";
    const BROADCAST: &str = "/gosse/broadcast";
    const EVENTS: &str = "/gosse/events";
    const STOP: &str = "/gosse/admin/stop";
    let login = |username: &str, password: &str| {
        http.post(url(LOGIN))
            .json(&json!({"username": username, "password": password, "id": "u1"}))
    };

    let body = check(
        &spec,
        "POST",
        LOGIN,
        login("client", "pw").send().await.unwrap(),
    )
    .await;
    let client = body["token"].as_str().expect("token").to_string();
    let body = check(
        &spec,
        "POST",
        LOGIN,
        login("admin", "pw").send().await.unwrap(),
    )
    .await;
    let admin = body["token"].as_str().expect("token").to_string();
    check(
        &spec,
        "POST",
        LOGIN,
        login("client", "no").send().await.unwrap(),
    )
    .await;
    check(
        &spec,
        "POST",
        LOGIN,
        http.post(url(LOGIN)).body("{").send().await.unwrap(),
    )
    .await;
    let preflight = http
        .request(Method::OPTIONS, url(LOGIN))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), StatusCode::NO_CONTENT);
    check(&spec, "OPTIONS", LOGIN, preflight).await;

    let broadcast = |token: &str, body: &str| {
        http.post(url(BROADCAST))
            .bearer_auth(token)
            .body(body.to_string())
    };
    for (token, body, status) in [
        (admin.as_str(), r#"{"content":"x"}"#, StatusCode::CREATED),
        (client.as_str(), r#"{"content":"x"}"#, StatusCode::FORBIDDEN),
        ("nope", r#"{"content":"x"}"#, StatusCode::UNAUTHORIZED),
        (admin.as_str(), r#"{"content":1}"#, StatusCode::BAD_REQUEST),
    ] {
        let resp = broadcast(token, body).send().await.unwrap();
        assert_eq!(resp.status(), status, "{body}");
        check(&spec, "POST", BROADCAST, resp).await;
    }
    let big = format!(r#"{{"content":"{}"}}"#, "x".repeat(BODY_LIMIT as usize));
    let resp = broadcast(&admin, &big).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    check(&spec, "POST", BROADCAST, resp).await;

    let stream = http
        .get(url(EVENTS))
        .query(&[("type", "sse")])
        .bearer_auth(&client)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    check_head(&spec, "GET", EVENTS, stream.status(), stream.headers());
    drop(stream);
    for (query, status) in [
        ("?token=!!", StatusCode::BAD_REQUEST),
        ("", StatusCode::UNAUTHORIZED),
    ] {
        let resp = http
            .get(url(&format!("{EVENTS}{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{query}");
        check(&spec, "GET", EVENTS, resp).await;
    }

    for method in [Method::GET, Method::POST] {
        let resp = http
            .request(method.clone(), url(STOP))
            .send()
            .await
            .unwrap();
        check(&spec, method.as_str(), STOP, resp).await;
        let resp = http
            .request(method.clone(), url(STOP))
            .bearer_auth(&client)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        check(&spec, method.as_str(), STOP, resp).await;
    }
    let resp = http
        .post(url(STOP))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    check(&spec, "POST", STOP, resp).await;
    server.stop().await;
}

// ---------------------------------------------------------------------------
// The sse-notification-service profile (tag sse-notification-service), under /ns
// ---------------------------------------------------------------------------

#[tokio::test]
async fn notification_service_profile_matches_the_spec() {
    const APP: &str = "app-id-1";
    let spec = spec();
    let documented: BTreeSet<(String, String)> = spec
        .operations()
        .into_iter()
        .filter(|(m, p, _)| spec.profile(m, p) == Some("sse-notification-service"))
        .map(|(m, p, _)| (m, p))
        .collect();
    let expected: BTreeSet<(String, String)> = NS_ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        documented, expected,
        "sse-notification-service operations in sser.yaml"
    );
    let paths: BTreeSet<String> = expected.iter().map(|(_, p)| p.clone()).collect();
    let routed: BTreeSet<String> = sser::compat::notification_service::ABOUT
        .paths
        .iter()
        .map(|p| match *p {
            "/" => "/ns".to_string(),
            p => format!("/ns{p}"),
        })
        .collect();
    assert_eq!(
        paths, routed,
        "the profile's paths (ABOUT.paths) and sser.yaml"
    );

    let server = TestServer::start_with(|c| {
        c.identity.secret = Some(Secret::new(JWT_SECRET));
        c.compat.notification_service.enabled = sser::config::Flag(true);
        c.compat.notification_service.prefix = "/ns".into();
    })
    .await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let token_for = |app: &'static str, user: &'static str| {
        let server = &server;
        async move {
            let minted: Value = mint(server, json!({"user": user, "app": app}))
                .await
                .json()
                .await
                .unwrap();
            minted["token"].as_str().expect("token").to_string()
        }
    };
    let token = token_for(APP, "user-id-1").await;
    let other_app = token_for("app-id-2", "v").await;

    let resp = http.get(server.url("/ns")).send().await.unwrap();
    check(&spec, "GET", "/ns", resp).await;
    let health = check(
        &spec,
        "GET",
        "/ns/health",
        http.get(server.url("/ns/health")).send().await.unwrap(),
    )
    .await;
    assert_eq!(health, json!({"status": "ok"}));

    // Nobody connected yet: 204.
    let by_app = format!("/ns/connections/{APP}");
    let by_user = format!("/ns/connections/{APP}/user-id-1");
    for (path, documented) in [
        (&by_app, "/ns/connections/{app}"),
        (&by_user, "/ns/connections/{app}/{user}"),
    ] {
        let resp = http
            .get(server.url(path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        check(&spec, "GET", documented, resp).await;
    }

    // The stream, with the query token.
    let mut stream = http
        .get(server.url(&format!("/ns/sse?Authorization={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    check_head(&spec, "GET", "/ns/sse", stream.status(), stream.headers());
    let conn_id = stream.headers()["x-connection-id"]
        .to_str()
        .unwrap()
        .to_string();
    let resp = http
        .post(server.url("/api/v1/send"))
        .bearer_auth(API_TOKEN)
        .json(&json!({"app": APP, "users": ["user-id-1"], "type": "event", "message": {"hello": "world"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let text = read_until(&mut stream, "data: {\"hello\":\"world\"}").await;
    assert!(text.contains("\nevent: event\n"), "{text:?}");

    let all = check(
        &spec,
        "GET",
        "/ns/connections/{app}",
        http.get(server.url(&by_app))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(all["user-id-1"][&conn_id]["id"], conn_id);
    let one = check(
        &spec,
        "GET",
        "/ns/connections/{app}/{user}",
        http.get(server.url(&by_user))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(one[&conn_id]["user"], json!({"id": "user-id-1"}));

    // Errors: no token, another application's token.
    check(
        &spec,
        "GET",
        "/ns/sse",
        http.get(server.url("/ns/sse"))
            .header("Authorization", "Bearer")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let resp = http
        .get(server.url(&by_app))
        .bearer_auth(&other_app)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    check(&spec, "GET", "/ns/connections/{app}", resp).await;
    drop(stream);
    server.stop().await;
}

// ---------------------------------------------------------------------------
// The go-sse-broker profile (tag go-sse-broker), served under /go-sse-broker
// ---------------------------------------------------------------------------

/// The go-sse-broker profile, served where the spec shows it
/// (`/go-sse-broker/...`): every route answers, and real answers (success
/// and refusal, both request forms) match their documented shapes.
#[tokio::test]
async fn go_sse_broker_matches_the_spec() {
    let spec = spec();
    let documented: BTreeSet<(String, String)> = spec
        .operations()
        .into_iter()
        .filter(|(m, p, _)| spec.profile(m, p) == Some("go-sse-broker"))
        .map(|(m, p, _)| (m, p))
        .collect();
    let expected: BTreeSet<(String, String)> = GO_SSE_BROKER_ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        documented, expected,
        "go-sse-broker operations in sser.yaml"
    );
    let paths: BTreeSet<String> = expected.iter().map(|(_, p)| p.clone()).collect();
    let routed: BTreeSet<String> = sser::compat::go_sse_broker::ABOUT
        .paths
        .iter()
        .map(|p| format!("/go-sse-broker{p}"))
        .collect();
    assert_eq!(
        paths, routed,
        "the profile's paths (ABOUT.paths) and sser.yaml"
    );
    let server = TestServer::start_with(|c| {
        c.identity.secret = Some(Secret::new(JWT_SECRET));
        c.compat.go_sse_broker.enabled = sser::config::Flag(true);
        c.compat.go_sse_broker.prefix = "/go-sse-broker".into();
    })
    .await;
    let http = &server.http;
    // Without a token, every route says so in the documented shape.
    for (method, path) in GO_SSE_BROKER_ROUTES {
        let m = Method::from_bytes(method.as_bytes()).expect("method");
        let resp = http
            .request(m, server.url(path))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
        let body = check(&spec, method, path, resp).await;
        assert_eq!(body["code"], 401, "{method} {path}");
    }
    const TOKEN: &str = "/go-sse-broker/token";
    const SEND: &str = "/go-sse-broker/send";
    const EVENTS: &str = "/go-sse-broker/events";
    const INFO: &str = "/go-sse-broker/info";
    const KICK: &str = "/go-sse-broker/kick";
    let get = |path: &str, query: &str| {
        http.get(server.url(&format!("{path}?{query}")))
            .bearer_auth(API_TOKEN)
    };
    let post = |path: &str, body: Value| {
        http.post(server.url(path))
            .bearer_auth(API_TOKEN)
            .json(&body)
    };

    let token = check(
        &spec,
        "GET",
        TOKEN,
        get(TOKEN, "uid=1965&device=d1").send().await.unwrap(),
    )
    .await;
    let token = token["result"].as_str().expect("token").to_string();
    let posted = check(
        &spec,
        "POST",
        TOKEN,
        post(TOKEN, json!({"uid": "1986"})).send().await.unwrap(),
    )
    .await;
    assert_eq!(posted["code"], 1);
    let refused = check(
        &spec,
        "GET",
        TOKEN,
        get(TOKEN, "ttl=5").send().await.unwrap(),
    )
    .await;
    assert_eq!(refused["code"], 400);
    let multipart = http
        .post(server.url(TOKEN))
        .bearer_auth(API_TOKEN)
        .header(CONTENT_TYPE, "multipart/form-data; boundary=x")
        .body("--x--")
        .send()
        .await
        .unwrap();
    assert_eq!(check(&spec, "POST", TOKEN, multipart).await["code"], 415);

    // The stream: documented head, then the body as described.
    let mut stream = http
        .get(server.url(&format!("{EVENTS}?token={token}&device=d1")))
        .send()
        .await
        .unwrap();
    check_head(&spec, "GET", EVENTS, stream.status(), stream.headers());
    read_until(&mut stream, "event: sys_connected\ndata: 127.0.0.1\n\n").await;
    let sent = check(
        &spec,
        "GET",
        SEND,
        get(SEND, "uid=1965&data=hello").send().await.unwrap(),
    )
    .await;
    assert_eq!(sent["result"], 1);
    read_until(&mut stream, "data: hello\n\n").await;
    let sent = check(
        &spec,
        "POST",
        SEND,
        post(
            SEND,
            json!({"device": "d1", "event": "custom-event", "data": "hi"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(sent["result"], 1);
    read_until(&mut stream, "event: custom-event\ndata: hi\n\n").await;
    let empty = check(
        &spec,
        "GET",
        SEND,
        get(SEND, "uid=1965").send().await.unwrap(),
    )
    .await;
    assert_eq!(empty["msg"], "data cannot be empty");
    let denied = http
        .get(server.url(&format!("{EVENTS}?token={token}&device=d2")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        check(&spec, "GET", EVENTS, denied).await["msg"],
        "Invalid device"
    );

    // Every shape /info has.
    for query in [
        "",
        "uid=1965",
        "device=d1",
        "device=d1&uid=1965",
        "address=127.0.0.1",
        "uid=nobody",
    ] {
        let v = check(&spec, "GET", INFO, get(INFO, query).send().await.unwrap()).await;
        assert_eq!(v["code"], 1, "{query}: {v}");
    }
    let v = check(
        &spec,
        "POST",
        INFO,
        post(INFO, json!({"uid": "1965"})).send().await.unwrap(),
    )
    .await;
    assert_eq!(v["result"]["online"], true);

    let kicked = check(
        &spec,
        "POST",
        KICK,
        post(KICK, json!({"device": "d1"})).send().await.unwrap(),
    )
    .await;
    assert_eq!(kicked["result"], 1);
    read_until(&mut stream, "event: sys_kick_offline\n").await;
    let nobody = check(&spec, "GET", KICK, get(KICK, "").send().await.unwrap()).await;
    assert_eq!(nobody["code"], 400);
    server.stop().await;
}
