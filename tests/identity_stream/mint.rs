//! `POST /api/v1/tokens`: a back-end mints a token for its user, and the
//! token opens that user's stream; bad fields are 400s naming them; no
//! signing key is a 501.

use super::*;

async fn mint(server: &Api, body: Value) -> reqwest::Response {
    server
        .http
        .post(server.url("/api/v1/tokens"))
        .bearer_auth(API_TOKEN)
        .json(&body)
        .send()
        .await
        .expect("mint request")
}

#[tokio::test]
async fn a_minted_token_opens_its_identity_stream() {
    let server = start().await;
    let (topic, _) = server.create_topic(json!({})).await;
    let resp = mint(
        &server,
        json!({"user": "u1", "app": "shop", "device": "tab", "topics": [topic], "ttl": 600}),
    )
    .await;
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let minted: Value = resp.json().await.unwrap();
    let exp = minted["exp"].as_u64().expect("exp");
    assert!((now() + 599..=now() + 601).contains(&exp), "{minted}");
    let at = humantime::parse_rfc3339(minted["expires_at"].as_str().expect("expires_at"))
        .expect("RFC 3339");
    let at = at.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert_eq!(at, exp);

    let tok = minted["token"].as_str().expect("token");
    let mut stream = open(&server, tok, &[("topic", &topic)]).await;
    send(
        &server,
        json!({"app": "shop", "devices": [{"user": "u1", "device": "tab"}], "message": "hi"}),
    )
    .await;
    server.publish_ok(&topic, json!({"message": "t"})).await;
    let got = stream.take(2).await;
    assert_eq!(
        (got[0].event.as_str(), got[0].data.as_str()),
        ("@device", "hi")
    );
    assert_eq!(got[1].event, topic);

    // Defaults: the default app, `identity.mint.defaultTtl` (1 h).
    let minted: Value = mint(&server, json!({"user": "u2"}))
        .await
        .json()
        .await
        .unwrap();
    let exp = minted["exp"].as_u64().unwrap();
    assert!((now() + 3599..=now() + 3601).contains(&exp));
    let mut stream = open(&server, minted["token"].as_str().unwrap(), &[]).await;
    send(&server, json!({"users": ["u2"], "message": "default app"})).await;
    assert_eq!(stream.expect_event().await.data, "default app");
    server.stop().await;
}

#[tokio::test]
async fn bad_mint_requests_name_the_field() {
    let server = start().await;
    for (body, needle) in [
        (json!({"user": "u", "ttl": 0}), "ttl"),
        (json!({"user": "u", "ttl": 999_999_999}), "ttl"),
        (json!({"user": ""}), "user"),
        (json!({"user": "u", "device": "a\nb"}), "device"),
        (json!({"user": "u", "app": ""}), "app"),
        (json!({"user": "u", "topics": ["a/b"]}), "topics"),
        (json!({"user": "u", "scope": "x"}), "unknown field"),
        (json!({"app": "a"}), "user"),
        (json!({"user": 5}), "invalid type"),
    ] {
        let err = error_of(mint(&server, body.clone()).await, 400).await;
        let message = err["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{body}: {message}");
    }
    server.stop().await;
}

#[tokio::test]
async fn no_signing_key_is_501() {
    // Only a public key: tokens can be checked, not minted.
    let server = TestServer::start_with(|c| {
        c.identity.keys = vec![sser::config::IdentityKeyConfig {
            alg: "RS256".into(),
            kid: None,
            public_key: Some(format!(
                "{}/tests/fixtures/identity/rsa-a.pub.pem",
                env!("CARGO_MANIFEST_DIR")
            )),
            private_key: None,
        }];
    })
    .await;
    let err = error_of(mint(&server, json!({"user": "u"})).await, 501).await;
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("signing key")
    );
    server.stop().await;
}
