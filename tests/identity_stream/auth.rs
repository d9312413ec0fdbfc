//! Who may open an identity stream: every way a token can be wrong is a 401
//! JSON error naming it (never echoing the token), from the header, the
//! query or the cookie; the cookie works for browsers; identity off is 501.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::future::join_all;

use super::*;

/// A token with any header and signature, as an attacker writes it.
fn forge(header: Value, claims: &Value, signature: &[u8]) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("json"));
    format!(
        "{}.{}.{}",
        part(&header),
        part(claims),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

/// Every bad shape, with the reason the server must give.
fn bad_tokens() -> Vec<(&'static str, String)> {
    let mut good = claims("shop", "u1", None);
    good["aud"] = json!("sser-tests");
    let with = |key: &str, value: Value| {
        let mut c = good.clone();
        c[key] = value;
        sign(&c)
    };
    let without = |key: &str| {
        let mut c = good.clone();
        c.as_object_mut().expect("object").remove(key);
        sign(&c)
    };
    let other_key = EncodingKey::from_secret(b"not the server's secret, 32 bytes!").expect("key");
    let rsa_pem = std::fs::read(format!(
        "{}/tests/fixtures/identity/rsa-a.pem",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture");
    let rsa = EncodingKey::from_rsa_pem(&rsa_pem).expect("rsa key");
    vec![
        ("token_malformed", "not-a-jwt".to_string()),
        ("token_malformed", API_TOKEN.to_string()),
        (
            "token_too_long",
            format!("{}.x.y", "a".repeat(sser::identity::MAX_TOKEN_LEN)),
        ),
        (
            "token_unsigned",
            forge(json!({"alg": "none", "typ": "JWT"}), &good, b""),
        ),
        (
            "token_algorithm_not_allowed",
            jsonwebtoken::encode(&Header::new(Algorithm::RS256), &good, &rsa).expect("signs"),
        ),
        (
            "token_bad_signature",
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &good, &other_key).expect("signs"),
        ),
        ("token_expired", with("exp", json!(now() - 60))),
        ("token_not_yet_valid", with("nbf", json!(now() + 3600))),
        ("token_missing_exp", without("exp")),
        ("token_missing_user", without("sub")),
        ("token_invalid_claim", with("sub", json!(1.5))),
        ("token_invalid_claim", with("topics", json!(["a/b"]))),
        ("token_wrong_audience", with("aud", json!("someone-else"))),
    ]
}

/// A 401 naming `reason`, with `WWW-Authenticate`, that repeats no part of
/// `token`.
async fn refused(resp: reqwest::Response, reason: &str, token: &str) {
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().expect("text").to_string());
    let text = resp.text().await.expect("body");
    for part in token.split('.').filter(|p| p.len() > 3) {
        assert!(!text.contains(part), "{reason}: the error echoes the token");
    }
    let body: Value = serde_json::from_str(&text).expect("JSON error");
    assert_eq!(body["error"]["code"], 401, "{reason}: {text}");
    assert_eq!(body["error"]["reason"], reason, "{text}");
    assert!(
        challenge.is_some_and(|c| c.starts_with("Bearer")),
        "{reason}"
    );
}

#[tokio::test]
async fn every_bad_token_shape_is_a_401_naming_it() {
    let server = TestServer::start_with(|c| {
        with_identity(c);
        c.identity.audience = sser::config::StringList(vec!["sser-tests".into()]);
        // Room in the request head for a token past the identity layer's limit.
        c.server.max_header_size = sser::config::Bytes(64 << 10);
    })
    .await;
    let url = server.url("/api/v1/stream");
    let mut cases = bad_tokens();
    // Audience configured: a token without `aud` is refused too.
    cases.push(("token_wrong_audience", token("shop", "u1", None)));
    for (reason, token) in &cases {
        let resp = server
            .http
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        refused(resp, reason, token).await;
    }
    // The same refusals from the query and from the cookie.
    for (reason, token) in &cases[3..5] {
        let resp = server
            .http
            .get(&url)
            .query(&[("access_token", token)])
            .send()
            .await
            .unwrap();
        refused(resp, reason, token).await;
        let resp = server
            .http
            .get(&url)
            .header("Cookie", format!("sser_token={token}"))
            .send()
            .await
            .unwrap();
        refused(resp, reason, token).await;
    }
    let resp = server.http.get(&url).send().await.unwrap();
    refused(resp, "token_missing", "").await;
    // With the audience, a good token opens the stream.
    let mut good = claims("shop", "u1", None);
    good["aud"] = json!("sser-tests");
    open(&server, &sign(&good), &[]).await;
    server.stop().await;
}

#[tokio::test]
async fn query_and_cookie_carry_tokens_and_the_header_wins() {
    let server = TestServer::start_with(|c| {
        with_identity(c);
        c.identity.cookie = "app_session".into();
    })
    .await;
    let url = server.url("/api/v1/stream");
    let good = token("shop", "u1", None);
    let by_query = SseStream::open(server.http.get(&url).query(&[("access_token", &good)])).await;
    let by_cookie = SseStream::open(
        server
            .http
            .get(&url)
            .header("Cookie", format!("theme=dark; app_session=\"{good}\"; x=1")),
    )
    .await;
    let mut streams = vec![by_query, by_cookie];
    for s in &streams {
        assert_eq!(s.status, 200);
    }
    let sent = send(
        &server,
        json!({"app": "shop", "users": ["u1"], "message": "hi"}),
    )
    .await;
    assert_eq!(sent["reached"], 2);
    for s in &mut streams {
        let e = s.expect_event().await;
        assert_eq!((e.event.as_str(), e.data.as_str()), ("@user", "hi"));
    }
    // The configured name only; and a wrong header is not rescued by a
    // right cookie (nor a right query token).
    let resp = server
        .http
        .get(&url)
        .header("Cookie", format!("sser_token={good}"))
        .send()
        .await
        .unwrap();
    refused(resp, "token_missing", &good).await;
    let resp = server
        .http
        .get(&url)
        .bearer_auth("wrong")
        .query(&[("access_token", &good)])
        .header("Cookie", format!("app_session={good}"))
        .send()
        .await
        .unwrap();
    refused(resp, "token_malformed", &good).await;
    server.stop().await;
}

#[tokio::test]
async fn identity_endpoints_are_501_when_identity_is_off() {
    let server = TestServer::start().await;
    let requests = [
        server
            .http
            .get(server.url("/api/v1/stream"))
            .bearer_auth(token("a", "u", None)),
        server
            .http
            .post(server.url("/api/v1/send"))
            .bearer_auth(API_TOKEN)
            .json(&json!({"message": 1})),
        server
            .http
            .post(server.url("/api/v1/tokens"))
            .bearer_auth(API_TOKEN)
            .json(&json!({"user": "u"})),
    ];
    for resp in join_all(requests.into_iter().map(|r| r.send())).await {
        let body = error_of(resp.unwrap(), 501).await;
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("SSER_JWT_SECRET")
        );
    }
    // The API token is still checked first on the back-end endpoints.
    let resp = server
        .http
        .post(server.url("/api/v1/send"))
        .json(&json!({"message": 1}))
        .send()
        .await
        .unwrap();
    error_of(resp, 401).await;
    server.stop().await;
}

#[tokio::test]
async fn back_end_endpoints_want_the_api_token() {
    let server = start().await;
    let identity = token("shop", "u1", None);
    for path in ["/api/v1/send", "/api/v1/tokens"] {
        for bearer in [None, Some(identity.as_str()), Some(METRICS_TOKEN)] {
            let mut req = server
                .http
                .post(server.url(path))
                .json(&json!({"user": "u1", "message": 1}));
            if let Some(bearer) = bearer {
                req = req.bearer_auth(bearer);
            }
            error_of(req.send().await.unwrap(), 401).await;
        }
    }
    server.stop().await;
}
