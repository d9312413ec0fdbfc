//! go-sse-broker's own config terms (`[jwt] secret`, `[jwt] expire`,
//! `[sse] heartbeat_interval`) given under `compat.goSseBroker`, mapped
//! onto ours, and served: the token lives `expire`, the stream's
//! `:heartbeat` comes every `heartbeat_interval` (a native stream keeps
//! its own beat).

use std::collections::HashMap;
use std::time::Duration;

use super::*;
use base64::Engine;
use futures_util::StreamExt;
use sser::Server;

fn load(yaml: &str, env: &[(&str, &str)]) -> Result<Config, String> {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("base.yaml"), yaml).expect("base.yaml");
    let mut vars: HashMap<String, String> = [
        ("SSER_API_ACCESS_TOKEN", API_TOKEN),
        ("SSER_METRICS_ACCESS_TOKEN", METRICS_TOKEN),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Config::from_sources(dir.path(), &vars).map_err(|e| e.to_string())
}

const ORIGINAL_TERMS: &str = "
compat:
  goSseBroker:
    enabled: true
    jwt:
      secret: a-secret-only-we-know-of-32-bytes
      expire: 45
    sse:
      heartbeat_interval: 1
";

#[test]
fn the_originals_terms_map_onto_ours() {
    let c = load(ORIGINAL_TERMS, &[]).expect("loads");
    assert_eq!(
        c.identity.secret.as_ref().map(|s| s.expose().to_string()),
        Some("a-secret-only-we-know-of-32-bytes".into()),
        "[jwt] secret is the identity secret"
    );
    assert!(c.identity.is_on(), "the profile turns identity tokens on");
    assert_eq!(
        c.compat.go_sse_broker.heartbeat_interval(),
        Some(Duration::from_secs(1)),
        "[sse] heartbeat_interval"
    );
    assert_eq!(
        c.pubsub.tick_frequency.0,
        Duration::from_secs(15),
        "the native heartbeat is left alone"
    );
    assert_eq!(
        c.compat.go_sse_broker.token_ttl(),
        Some(Duration::from_secs(45))
    );

    // The same through the environment.
    let c = load(
        "{}",
        &[
            ("SSER_COMPAT_GO_SSE_BROKER_ENABLED", "true"),
            (
                "SSER_COMPAT_GO_SSE_BROKER_JWT_SECRET",
                "env-secret-env-secret-env-secret",
            ),
            ("SSER_COMPAT_GO_SSE_BROKER_JWT_EXPIRE", "60"),
            ("SSER_COMPAT_GO_SSE_BROKER_HEARTBEAT_INTERVAL", "20"),
            (
                "SSER_COMPAT_GO_SSE_BROKER_UNAUTHENTICATED_FROM",
                "10.0.0.0/8, 192.168.1.7",
            ),
        ],
    )
    .expect("loads from the environment");
    assert_eq!(
        c.compat.go_sse_broker.token_ttl(),
        Some(Duration::from_secs(60))
    );
    assert_eq!(
        c.compat.go_sse_broker.heartbeat_interval(),
        Some(Duration::from_secs(20))
    );
    assert_eq!(
        c.compat.go_sse_broker.unauthenticated_from.0,
        ["10.0.0.0/8", "192.168.1.7"]
    );
}

#[test]
fn a_placeholder_a_clash_or_no_key_stops_start_up_naming_the_keys() {
    let cases = [
        (
            "compat: {goSseBroker: {enabled: true, jwt: {secret: please_modify}}}",
            vec![],
            "compat.goSseBroker.jwt.secret",
        ),
        (
            "compat: {goSseBroker: {enabled: true, jwt: {secret: one-secret-one-secret-one-secret}}}",
            vec![("SSER_JWT_SECRET", "another-secret-another-secret-xx")],
            "identity.secret",
        ),
        (
            "compat: {goSseBroker: {enabled: true, jwt: {secret: one-secret-one-secret-one-secret, expire: 99999999}}}",
            vec![],
            "identity.mint.maxTtl",
        ),
        (
            "compat: {goSseBroker: {enabled: true}}",
            vec![("APP_ENV", "production")],
            "compat.goSseBroker.jwt.secret",
        ),
        (
            "compat: {goSseBroker: {enabled: true, jwt: {secret: one-secret-one-secret-one-secret, secert: x}}}",
            vec![],
            "secert",
        ),
    ];
    for (yaml, env, needle) in cases {
        let err = load(yaml, &env).expect_err(yaml);
        assert!(err.contains(needle), "{yaml}: {err}");
    }
}

#[tokio::test]
async fn a_server_from_the_originals_terms_keeps_them() {
    let mut config = load(ORIGINAL_TERMS, &[]).expect("loads");
    config.server.addr = "127.0.0.1:0".parse().expect("addr");
    let server = Server::bind(config).await.expect("binds");
    let base = format!("http://{}", server.local_addr());
    let shutdown = server.shutdown_token();
    let task = tokio::spawn(server.run());
    let http = reqwest::Client::new();

    // /token without ttl lives [jwt] expire.
    let v: Value = http
        .get(format!("{base}/token?uid=u"))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let token = v["result"].as_str().expect("token").to_string();
    let payload = token.split('.').nth(1).expect("payload");
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64"),
    )
    .expect("claims");
    let life = claims["exp"].as_u64().unwrap_or(0) - claims["iat"].as_u64().unwrap_or(0);
    assert_eq!(life, 45, "{claims}");
    assert_eq!(
        claims["uid"], "u",
        "go-sse-broker's own claim too: {claims}"
    );

    // The stream's heartbeat is go-sse-broker's comment, every second.
    let resp = http
        .get(format!("{base}/events?token={token}&device=d"))
        .send()
        .await
        .expect("events");
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    let found = tokio::time::timeout(DEADLINE, async {
        while let Some(Ok(chunk)) = body.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if text.contains("\n:heartbeat\n\n") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "{text}");
    shutdown.cancel();
    let _ = tokio::time::timeout(DEADLINE, task).await;
}
