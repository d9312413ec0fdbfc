//! The goSSE profile, walked as goSSE's README and its clients use it, on
//! real sockets with a real SSE parser: `POST /login`, the `sse_token`
//! cookie and `?token=`, `GET /events?type=`, `POST /broadcast` routed to
//! a user, a type or everyone, CORS for the one allowed origin, and
//! `/admin/stop`. Then each of goSSE's defects, shown fixed: malformed
//! bodies are 400s and the server lives on, a client's token cannot
//! broadcast, `/admin/stop?x` checks the role, an empty key is refused at
//! start-up, a CORS preflight works, the user is the signed one. The cookie
//! flow in a real browser is `gosse_cookie_flow_in_headless_chromium`.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sser::config::{Config, Flag, GosseAccount, GosseRole};
use sser::secret::Secret;

const GOSSE: &str = "goSSE";
const KEY: &str = "gosse-test-key-0123456789abcdef0123456789";
const USER_ID: &str = "a99d4b4e-e5c4-42b4-888d-651862c599f6";
const ORIGIN: &str = "https://app.example.com";

/// The accounts every test logs in with: (username, password, role).
const ACCOUNTS: [(&str, &str, GosseRole); 3] = [
    ("my_user", "my_password", GosseRole::Client),
    ("sender", "sender-pw", GosseRole::Broadcaster),
    ("root", "root-pw", GosseRole::Admin),
];

/// Turns the profile on with `ACCOUNTS` (argon2 and bcrypt hashes) and the
/// signing key, on a listener of its own unless `tweak` says otherwise.
fn gosse_config(c: &mut Config) {
    c.identity.secret = Some(Secret::new(KEY));
    let g = &mut c.compat.gosse;
    g.addr = Some("127.0.0.1:0".parse().expect("literal"));
    g.allowed_origin = Some(ORIGIN.into());
    g.accounts = ACCOUNTS
        .iter()
        .enumerate()
        .map(|(i, (username, password, role))| GosseAccount {
            username: username.to_string(),
            password_hash: match i {
                1 => Secret::new(&bcrypt::hash(password, 4).expect("bcrypt")),
                _ => sser::compat::gosse::hash_password(password).expect("argon2"),
            },
            role: *role,
        })
        .collect();
}

async fn start() -> (TestServer, String) {
    start_with(|_| {}).await
}

async fn start_with(tweak: impl FnOnce(&mut Config)) -> (TestServer, String) {
    let server = TestServer::start_with(|c| {
        gosse_config(c);
        tweak(c);
    })
    .await;
    let base = match server.compat.iter().any(|(name, _)| *name == GOSSE) {
        true => server.compat_base(GOSSE),
        false => server.base.clone(),
    };
    (server, base)
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

/// `POST /login` with a JSON body; the response.
async fn login_raw(base: &str, body: Value) -> reqwest::Response {
    http()
        .post(format!("{base}/login"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("login request")
}

/// Logs in; the response's `{"token","id"}` text and its cookie value.
async fn login(base: &str, username: &str, password: &str, id: &str) -> (String, String) {
    let resp = login_raw(
        base,
        json!({"username": username, "password": password, "id": id}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .expect("cookie text")
        .to_string();
    let value = cookie
        .split(';')
        .next()
        .and_then(|kv| kv.strip_prefix("sse_token="))
        .expect("sse_token cookie")
        .to_string();
    (resp.text().await.expect("login body"), value)
}

/// A broadcaster's (or any account's) JWT.
async fn token_of(base: &str, username: &str, password: &str) -> String {
    let (body, _) = login(base, username, password, "").await;
    let v: Value = serde_json::from_str(&body).expect("login JSON");
    v["token"].as_str().expect("token").to_string()
}

async fn broadcast(base: &str, token: &str, body: Value) -> reqwest::Response {
    http()
        .post(format!("{base}/broadcast"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("broadcast request")
}

/// `GET /events` as `EventSource` sends it.
fn events(base: &str, query: &str) -> reqwest::RequestBuilder {
    http()
        .get(format!("{base}/events{query}"))
        .header("accept", "text/event-stream")
}

/// The JSON error of a refused request: (status, `error` text).
async fn error_of(resp: reqwest::Response) -> (StatusCode, String) {
    let status = resp.status();
    assert_eq!(resp.headers()["content-type"], "application/json");
    let v: Value = resp.json().await.expect("error JSON");
    (
        status,
        v["error"].as_str().expect("error is a string").to_string(),
    )
}

/// Reads a token's claims (checking its signature with `key`).
fn claims(token: &str, key: &str) -> Value {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.validate_aud = false;
    jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(key.as_bytes()).expect("key"),
        &validation,
    )
    .expect("token verifies with the key")
    .claims
}

/// A JWT with `header`, `claims`, signed HS256 with `key` (which may be
/// empty, as goSSE's could be).
fn hs256(key: &[u8], header: &str, claims: &Value) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use hmac::{KeyInit, Mac};
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

#[tokio::test]
async fn login_answers_gosses_token_and_cookie() {
    let (server, base) = start().await;
    let (body, cookie) = login(&base, "my_user", "my_password", USER_ID).await;
    let v: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(v["id"], USER_ID);
    let token = v["token"].as_str().expect("token");
    // The cookie is the same JSON, base64 (standard alphabet).
    let decoded = STANDARD.decode(&cookie).expect("base64");
    assert_eq!(String::from_utf8(decoded).expect("utf-8"), body);
    assert!(
        body.starts_with(r#"{"token":"#),
        "goSSE's field order: {body}"
    );

    // An HS256 JWT with goSSE's username and a one-hour expiry, signed with
    // the key; its user is the login's id, its application goSSE's.
    let c = claims(token, KEY);
    assert_eq!(c["username"], "my_user");
    assert_eq!(c["sub"], USER_ID);
    assert_eq!(c["iss"], "gosse");
    let exp = c["exp"].as_u64().expect("exp");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    assert!((now + 3590..=now + 3610).contains(&exp), "{exp} vs {now}");

    let resp = login_raw(
        &base,
        json!({"username": "my_user", "password": "my_password"}),
    )
    .await;
    let set_cookie = resp.headers()["set-cookie"]
        .to_str()
        .expect("text")
        .to_string();
    for attribute in ["Path=/", "Max-Age=3600", "HttpOnly", "SameSite=Lax"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let v: Value = resp.json().await.expect("JSON");
    assert_eq!(v["id"], "", "no id given: goSSE answers an empty one");
    assert_eq!(
        claims(v["token"].as_str().expect("token"), KEY)["sub"],
        "my_user"
    );

    // Go's decoder matched keys in any case.
    let resp = login_raw(
        &base,
        json!({"Username": "sender", "PASSWORD": "sender-pw", "Id": "x"}),
    )
    .await;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "bcrypt account, any-case keys"
    );

    // Wrong credentials: goSSE's exact 401.
    for body in [
        json!({"username": "my_user", "password": "nope"}),
        json!({"username": "nobody", "password": "my_password"}),
        json!({"username": "my_user"}),
        json!({}),
    ] {
        let resp = login_raw(&base, body).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            resp.text().await.expect("body"),
            r#"{"error":"Invalid creds"}"#
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn broadcasts_reach_a_user_a_type_or_everyone() {
    let (server, base) = start().await;
    let (_, cookie) = login(&base, "my_user", "my_password", USER_ID).await;
    let (_, other) = login(&base, "my_user", "my_password", "someone-else").await;
    let sender = token_of(&base, "sender", "sender-pw").await;

    // The README's client: type `sse`, token in the cookie.
    let mut sse =
        SseStream::open(events(&base, "?type=sse").header("cookie", format!("sse_token={cookie}")))
            .await;
    assert_eq!(sse.status, StatusCode::OK);
    assert_eq!(sse.headers["content-type"], "text/event-stream");
    // Another user, type `news`, token in the query.
    let mut news = SseStream::open(events(&base, &format!("?type=news&token={other}"))).await;
    // A third with no type (goSSE's `all`), same user as the first.
    let mut plain = SseStream::open(events(&base, &format!("?token={cookie}"))).await;
    assert_eq!(plain.status, StatusCode::OK);

    // The README's broadcast: both optional fields, and its request's
    // repeated Content-Type header.
    let resp = http()
        .post(format!("{base}/broadcast"))
        .header("content-type", "application/json")
        .bearer_auth(&sender)
        .header("content-type", "application/json")
        .body(
            json!({"content": "Awesome test message", "type": "sse", "user": USER_ID}).to_string(),
        )
        .send()
        .await
        .expect("broadcast");
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(resp.text().await.expect("body"), "", "201, empty body");
    for (body, what) in [
        (json!({"content": "to sse", "type": "sse"}), "a type"),
        (
            json!({"content": "to news", "type": "news"}),
            "another type",
        ),
        (json!({"content": "line 1\nline 2"}), "everyone"),
    ] {
        let resp = broadcast(&base, &sender, body).await;
        assert_eq!(resp.status(), StatusCode::CREATED, "{what}");
    }

    // First rule wins: `user` → only that user's streams, whatever their
    // type; then `type`; then everyone. Events are named by type (or are
    // plain `message`s), multi-line content arrives whole, every event has
    // an id.
    let got = |s: &Vec<eventsource_stream::Event>| -> Vec<(String, String)> {
        s.iter()
            .map(|e| (e.event.clone(), e.data.clone()))
            .collect()
    };
    let sse_events = sse.take(3).await;
    assert_eq!(
        got(&sse_events),
        [
            ("sse".into(), "Awesome test message".into()),
            ("sse".into(), "to sse".into()),
            ("message".into(), "line 1\nline 2".into()),
        ]
    );
    assert!(
        sse_events.iter().all(|e| !e.id.is_empty()),
        "ids for resume"
    );
    assert_eq!(
        got(&news.take(2).await),
        [
            ("news".into(), "to news".into()),
            ("message".into(), "line 1\nline 2".into()),
        ]
    );
    assert_eq!(
        got(&plain.take(2).await),
        [
            ("sse".into(), "Awesome test message".into()),
            ("message".into(), "line 1\nline 2".into()),
        ]
    );

    // A reconnecting EventSource resumes after its Last-Event-ID: what was
    // broadcast while it was away arrives (goSSE lost it).
    let last = sse_events[2].id.clone();
    drop(sse);
    let resp = broadcast(
        &base,
        &sender,
        json!({"content": "while away", "type": "sse"}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let mut back = SseStream::open(
        events(&base, "?type=sse")
            .header("cookie", format!("sse_token={cookie}"))
            .header("last-event-id", last),
    )
    .await;
    let again = back.expect_event().await;
    assert_eq!(
        (again.event.as_str(), again.data.as_str()),
        ("sse", "while away")
    );
    server.stop().await;
}

#[tokio::test]
async fn tokens_come_in_the_query_the_cookie_or_the_header() {
    let (server, base) = start().await;
    let (body, blob) = login(&base, "my_user", "my_password", USER_ID).await;
    let jwt = serde_json::from_str::<Value>(&body).expect("JSON")["token"]
        .as_str()
        .expect("token")
        .to_string();
    let sender = token_of(&base, "sender", "sender-pw").await;

    // goSSE's own client puts the base64 in the URL unencoded: each `+`
    // arrives as a space (goSSE answered 400).
    let unencoded = format!("?type=t&token={}", blob.replace('+', "%20"));
    let headers = [
        ("query", events(&base, &format!("?type=t&token={blob}"))),
        ("unencoded query", events(&base, &unencoded)),
        (
            "cookie",
            events(&base, "?type=t").header("cookie", format!("a=b; sse_token={blob}")),
        ),
        ("bearer", events(&base, "?type=t").bearer_auth(&jwt)),
    ];
    let mut streams = Vec::new();
    for (what, request) in headers {
        let stream = SseStream::open(request).await;
        assert_eq!(stream.status, StatusCode::OK, "{what}");
        streams.push(stream);
    }
    let resp = broadcast(&base, &sender, json!({"content": "hi", "user": USER_ID})).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    for stream in &mut streams {
        assert_eq!(stream.expect_event().await.data, "hi");
    }

    // No token; a token that is not goSSE's base64; a forged one.
    let (status, error) = error_of(events(&base, "?type=t").send().await.expect("request")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(error.contains("No cookie with token"), "{error}");
    let (status, error) =
        error_of(events(&base, "?token=!!!").send().await.expect("request")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error.contains("Token decoding failed"), "{error}");
    assert!(!error.contains("!!!"));
    server.stop().await;
}

#[tokio::test]
async fn cors_for_the_allowed_origin_with_credentials() {
    let (server, base) = start().await;
    for path in ["/login", "/broadcast", "/events", "/admin/stop"] {
        let resp = http()
            .request(reqwest::Method::OPTIONS, format!("{base}{path}"))
            .header("origin", ORIGIN)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
            .await
            .expect("preflight");
        assert_eq!(resp.status(), StatusCode::NO_CONTENT, "{path}");
        let h = resp.headers();
        assert_eq!(h["access-control-allow-origin"], ORIGIN, "{path}");
        assert_eq!(h["access-control-allow-credentials"], "true");
        let methods = h["access-control-allow-methods"].to_str().expect("text");
        assert!(
            methods.contains("POST") && methods.contains("GET"),
            "{methods}"
        );
        let headers = h["access-control-allow-headers"].to_str().expect("text");
        assert!(headers.contains("Authorization") && headers.contains("Content-Type"));
    }
    // The answers themselves carry it, for that origin only.
    let resp = http()
        .post(format!("{base}/login"))
        .header("origin", ORIGIN)
        .body(json!({"username": "my_user", "password": "my_password"}).to_string())
        .send()
        .await
        .expect("login");
    assert_eq!(resp.headers()["access-control-allow-origin"], ORIGIN);
    assert_eq!(resp.headers()["access-control-allow-credentials"], "true");
    let resp = http()
        .request(reqwest::Method::OPTIONS, format!("{base}/login"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("preflight");
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(!resp.headers().contains_key("access-control-allow-origin"));
    assert!(
        !resp
            .headers()
            .contains_key("access-control-allow-credentials")
    );
    server.stop().await;
}

#[tokio::test]
async fn malformed_bodies_are_400s_and_the_server_lives_on() {
    let (server, base) = start().await;
    let sender = token_of(&base, "sender", "sender-pw").await;
    for body in ["{", "not json", "[1,2]", r#"{"username": 7}"#, "\"x\""] {
        let resp = http()
            .post(format!("{base}/login"))
            .body(body)
            .send()
            .await
            .expect("login");
        let (status, error) = error_of(resp).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {error}");
    }
    for (body, needle) in [
        ("{", "invalid JSON"),
        (r#"{"content": 1}"#, "content must be a string"),
        (
            r#"{"content": "x", "type": ["a"]}"#,
            "type must be a string",
        ),
        (r#"{"content": "x", "type": "a\nb"}"#, "type"),
        (r#"{"content": "x", "user": "a\u0000b"}"#, "user"),
        (
            r#"{"content": "x", "type": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#,
            "too long",
        ),
    ] {
        let resp = http()
            .post(format!("{base}/broadcast"))
            .bearer_auth(&sender)
            .body(body)
            .send()
            .await
            .expect("broadcast");
        let (status, error) = error_of(resp).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(error.contains(needle), "{body}: {error}");
    }
    // Still serving.
    let resp = broadcast(&base, &sender, json!({"content": "still here"})).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    server.stop().await;
}

#[tokio::test]
async fn roles_are_enforced_and_tokens_are_checked() {
    let (server, base) = start().await;
    let client = token_of(&base, "my_user", "my_password").await;
    let sender = token_of(&base, "sender", "sender-pw").await;

    // A client's token may not broadcast (goSSE let it).
    let (status, error) = error_of(broadcast(&base, &client, json!({"content": "x"})).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(error.contains("may not broadcast"), "{error}");

    // Only an admin may stop the server, whatever the URL (goSSE skipped
    // the check for `/admin/stop?x`).
    for token in [&client, &sender] {
        for path in ["/admin/stop", "/admin/stop?x", "/admin/stop?"] {
            let resp = http()
                .post(format!("{base}{path}"))
                .bearer_auth(token)
                .send()
                .await
                .expect("stop");
            assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{path}");
        }
    }
    let resp = http()
        .get(format!("{base}/admin/stop?x"))
        .send()
        .await
        .expect("stop");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // Tokens that are not this server's goSSE logins.
    let claims = json!({"username": "root", "sub": "x", "iss": "gosse", "exp": 4_000_000_000u64});
    let forged_empty = hs256(b"", r#"{"alg":"HS256","typ":"JWT"}"#, &claims);
    let unsigned = {
        let jwt = hs256(b"", r#"{"alg":"none","typ":"JWT"}"#, &claims);
        format!("{}.", &jwt[..jwt.rfind('.').expect("dots")])
    };
    let native: Value = http()
        .post(server.url("/api/v1/tokens"))
        .bearer_auth(API_TOKEN)
        .json(&json!({"user": "x", "app": "gosse"}))
        .send()
        .await
        .expect("mint")
        .json()
        .await
        .expect("JSON");
    let native = native["token"].as_str().expect("token").to_string();
    for (token, what) in [
        (forged_empty.as_str(), "signed with an empty key"),
        (unsigned.as_str(), "alg none"),
        (native.as_str(), "a native token without username"),
        ("garbage", "not a JWT"),
    ] {
        let (status, _) = error_of(broadcast(&base, token, json!({"content": "x"})).await).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
    }
    let (status, error) = error_of(
        http()
            .post(format!("{base}/broadcast"))
            .body("{}")
            .send()
            .await
            .expect("broadcast"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(error.contains("Token not found"), "{error}");

    // The user is the signed one: a stream whose base64 JSON names another
    // id than its token's is refused (goSSE took the id from the JSON).
    let (body, _) = login(&base, "my_user", "my_password", USER_ID).await;
    let mut v: Value = serde_json::from_str(&body).expect("JSON");
    v["id"] = json!("victim");
    let spoofed = STANDARD.encode(v.to_string());
    let resp = events(&base, &format!("?token={spoofed}"))
        .send()
        .await
        .expect("events");
    let (status, error) = error_of(resp).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(error.contains("not the user"), "{error}");
    server.stop().await;
}

#[tokio::test]
async fn an_admin_stops_the_server_gracefully() {
    let (server, base) = start().await;
    let root = token_of(&base, "root", "root-pw").await;
    let (_, cookie) = login(&base, "my_user", "my_password", USER_ID).await;
    let mut stream =
        SseStream::open(events(&base, "").header("cookie", format!("sse_token={cookie}"))).await;
    let resp = http()
        .post(format!("{base}/admin/stop"))
        .bearer_auth(&root)
        .send()
        .await
        .expect("stop");
    assert_eq!(resp.status(), StatusCode::OK);
    // The stream is told and ends; the server stops accepting.
    while stream.next().await.is_some() {}
    wait_until("the listener to close", || async {
        http().get(server.url("/healthz")).send().await.is_err()
    })
    .await;
    server.stop().await;
}

#[tokio::test]
async fn served_under_a_prefix_beside_the_native_api() {
    let (server, _) = start_with(|c| {
        c.compat.gosse.addr = None;
        c.compat.gosse.enabled = Flag(true);
        c.compat.gosse.prefix = "/gosse".into();
    })
    .await;
    let base = server.url("/gosse");
    assert!(server.compat.is_empty());
    let (_, cookie) = login(&base, "my_user", "my_password", USER_ID).await;
    let sender = token_of(&base, "sender", "sender-pw").await;
    let mut stream =
        SseStream::open(events(&base, "?type=sse").header("cookie", format!("sse_token={cookie}")))
            .await;
    assert_eq!(stream.status, StatusCode::OK);
    // The profile's CORS answers its preflights on the main listener too.
    let resp = http()
        .request(reqwest::Method::OPTIONS, format!("{base}/broadcast"))
        .header("origin", ORIGIN)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("preflight");
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(resp.headers()["access-control-allow-origin"], ORIGIN);

    // One model: a native send to the goSSE application's user reaches the
    // goSSE stream, and a native publish on a type's topic its type.
    let resp = http()
        .post(server.url("/api/v1/send"))
        .bearer_auth(API_TOKEN)
        .json(&json!({"app": "gosse", "users": [USER_ID], "message": "from the native API"}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(stream.expect_event().await.data, "from the native API");
    let resp = server
        .publish("gosse-sse", json!({"message": "on the type's topic"}))
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(stream.expect_event().await.data, "on the type's topic");
    let resp = broadcast(&base, &sender, json!({"content": "and goSSE's own"})).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(stream.expect_event().await.data, "and goSSE's own");
    // The goSSE token is a native identity token of that user.
    let (body, _) = login(&base, "my_user", "my_password", USER_ID).await;
    let jwt = serde_json::from_str::<Value>(&body).expect("JSON")["token"]
        .as_str()
        .expect("token")
        .to_string();
    let whoami = SseStream::open(http().get(server.url("/api/v1/stream")).bearer_auth(&jwt)).await;
    assert_eq!(whoami.status, StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn gosses_own_variables_configure_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<std::collections::HashMap<_, _>>()
    };
    let base_env = [
        ("PORT", "127.0.0.1:0"),
        ("SSER_API_ACCESS_TOKEN", API_TOKEN),
        ("SSER_METRICS_ACCESS_TOKEN", METRICS_TOKEN),
        ("SSER_COMPAT_GOSSE_ADDR", "127.0.0.1:0"),
        ("SSE_CLIENT_USERNAME", "front"),
        ("SSE_CLIENT_PASSWORD", "front-pw"),
        ("SSE_BROADCASTER_USERNAME", "back"),
        ("SSE_BROADCASTER_PASSWORD", "back-pw"),
        ("ALLOWED_ORIGIN", ORIGIN),
    ];
    // An empty SSE_APP_KEY (goSSE then signed forgeable tokens) stops
    // start-up, naming it.
    let mut pairs = base_env.to_vec();
    pairs.push(("SSE_APP_KEY", ""));
    let err = Config::from_sources(dir.path(), &env(&pairs))
        .expect_err("refused")
        .to_string();
    assert!(err.contains("SSE_APP_KEY is set but empty"), "{err}");
    // No key at all, outside development: refused too.
    let mut pairs = base_env.to_vec();
    pairs.push(("APP_ENV", "production"));
    let err = Config::from_sources(dir.path(), &env(&pairs))
        .expect_err("refused")
        .to_string();
    assert!(err.contains("SSE_APP_KEY"), "{err}");

    let mut pairs = base_env.to_vec();
    pairs.push(("SSE_APP_KEY", KEY));
    let config = Config::from_sources(dir.path(), &env(&pairs)).expect("config");
    let server = TestServer::start_config(config).await;
    let base = server.compat_base(GOSSE);
    let (body, _) = login(&base, "front", "front-pw", "u1").await;
    let token = serde_json::from_str::<Value>(&body).expect("JSON")["token"]
        .as_str()
        .expect("token")
        .to_string();
    claims(&token, KEY);
    let back = token_of(&base, "back", "back-pw").await;
    let resp = broadcast(&base, &back, json!({"content": "x"})).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    server.stop().await;
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gosse_cookie_flow_in_headless_chromium() {
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        chromium.exists(),
        "Chromium not found at {}: install it with `apt-get install chromium` (scripts/test-deps.sh does), or set CHROMIUM",
        chromium.display()
    );
    let dir = repo().join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "tests/browser/node_modules is missing: run `npm ci` in tests/browser (scripts/test-deps.sh does)"
    );
    let artifacts = repo().join("tests/artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifacts dir");

    // The page is served by the driver on another port of the same host: a
    // cross-origin page, as goSSE's users have, on the same site (so the
    // default SameSite=Lax cookie goes with its requests).
    let page_port = free_port();
    let (server, base) = start_with(|c| {
        c.compat.gosse.allowed_origin = Some(format!("http://127.0.0.1:{page_port}"))
    })
    .await;
    let child = tokio::process::Command::new("node")
        .arg("gosse.e2e.mjs")
        .current_dir(&dir)
        .env("GOSSE_URL", &base)
        .env("PAGE_PORT", page_port.to_string())
        .env("CLIENT_USER", "my_user")
        .env("CLIENT_PASSWORD", "my_password")
        .env("BROADCASTER_USER", "sender")
        .env("BROADCASTER_PASSWORD", "sender-pw")
        .env("ARTIFACTS_DIR", &artifacts)
        .env("CHROMIUM", &chromium)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs (install Node.js to run the browser test)");
    let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("the browser test finished within 2 minutes")
        .expect("node exit status");
    server.stop().await;
    assert!(
        output.status.success(),
        "the goSSE browser test failed ({}); see its output above and tests/artifacts/gosse-failure.png",
        output.status
    );
}
