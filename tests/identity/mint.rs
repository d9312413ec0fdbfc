//! Minting: round trip, limits, field rules, and custom claim names (the
//! shape go-sse-broker's clients carry: `uid` and `device_name`).

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};
use sser::identity::{ClaimNames, IdentitySettings, MintError, MintRequest};

use super::*;

#[tokio::test]
async fn mint_then_verify() {
    let tokens = start(IdentitySettings {
        audience: vec!["sser".into()],
        ..hs_settings()
    })
    .await;
    assert!(tokens.can_mint());
    let before = now();
    let minted = tokens
        .mint(MintRequest {
            user: "u7".into(),
            app: Some("shop".into()),
            device: Some("tablet".into()),
            topics: Some(vec!["orders-*".into(), "news".into()]),
            ttl: Some(Duration::from_secs(600)),
            ..MintRequest::default()
        })
        .unwrap();
    assert!((before + 600..=now() + 600).contains(&minted.expires_at));
    assert!(
        !format!("{minted:?}").contains(minted.token.expose()),
        "redacted"
    );
    let id = tokens.verify(minted.token.expose()).await.unwrap();
    assert_eq!((id.app.as_str(), id.user.as_str()), ("shop", "u7"));
    assert_eq!(id.device.as_deref(), Some("tablet"));
    assert!(id.may_follow("orders-1") && id.may_follow("news") && !id.may_follow("news-2"));
    assert_eq!(id.expires_at, Some(minted.expires_at));
    // Defaults: the default app, the default lifetime (1 h), no topics.
    let minted = tokens
        .mint(MintRequest {
            user: "u8".into(),
            ..MintRequest::default()
        })
        .unwrap();
    assert!(minted.expires_at >= before + 3600);
    let id = tokens.verify(minted.token.expose()).await.unwrap();
    assert_eq!(id.app, "default");
    assert!(id.topics.is_empty() && !id.may_follow("news"));
}

#[tokio::test]
async fn mint_limits_and_field_rules() {
    let tokens = start(IdentitySettings {
        max_ttl: Duration::from_secs(3600),
        default_ttl: Duration::from_secs(60),
        ..hs_settings()
    })
    .await;
    let request = |f: fn(&mut MintRequest)| {
        let mut r = MintRequest {
            user: "u".into(),
            ..MintRequest::default()
        };
        f(&mut r);
        tokens.mint(r)
    };
    assert_eq!(
        request(|r| r.ttl = Some(Duration::from_secs(3601))).unwrap_err(),
        MintError::Ttl { max_secs: 3600 }
    );
    assert_eq!(
        request(|r| r.ttl = Some(Duration::ZERO)).unwrap_err(),
        MintError::Ttl { max_secs: 3600 }
    );
    assert!(request(|r| r.ttl = Some(Duration::from_secs(3600))).is_ok());
    for (f, field) in [
        (
            (|r: &mut MintRequest| r.user = String::new()) as fn(&mut MintRequest),
            "user",
        ),
        (|r| r.app = Some("a\u{0}b".into()), "app"),
        (|r| r.device = Some("d".repeat(300)), "device"),
        (|r| r.topics = Some(vec!["bad topic".into()]), "topics"),
    ] {
        match request(f) {
            Err(MintError::InvalidField { field: got, .. }) => assert_eq!(got, field),
            other => panic!("{field}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn custom_claim_names() {
    let tokens = start(IdentitySettings {
        claims: ClaimNames {
            user: "uid".into(),
            app: "/tenant/id".into(),
            device: "device_name".into(),
            topics: "scope".into(),
        },
        ..hs_settings()
    })
    .await;
    // A token as another system writes it.
    let c =
        json!({"uid": 1001, "device_name": "ipad", "scope": "news alerts-*", "exp": now() + 60});
    let id = tokens.verify(&sign_hs(&c)).await.unwrap();
    assert_eq!((id.user.as_str(), id.app.as_str()), ("1001", "default"));
    assert_eq!(id.device.as_deref(), Some("ipad"));
    assert!(id.may_follow("alerts-x") && id.may_follow("news"));
    // `sub` means nothing now.
    let c = json!({"sub": "u1", "exp": now() + 60});
    assert!(tokens.verify(&sign_hs(&c)).await.is_err());
    // Minting writes the same names.
    let minted = tokens
        .mint(MintRequest {
            user: "u1".into(),
            app: Some("acme".into()),
            device: Some("ipad".into()),
            ..MintRequest::default()
        })
        .unwrap();
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_aud = false;
    let raw = jsonwebtoken::decode::<Value>(
        minted.token.expose(),
        &DecodingKey::from_secret(SECRET.as_bytes()).unwrap(),
        &validation,
    )
    .unwrap()
    .claims;
    assert_eq!(raw["uid"], "u1");
    assert_eq!(raw["tenant"]["id"], "acme");
    assert_eq!(raw["device_name"], "ipad");
    assert!(raw.get("sub").is_none() && raw.get("iss").is_none());
}

/// `lib.rs` turns `identity.*` into settings, and development generates a
/// secret when identity is enabled without one.
#[tokio::test]
async fn server_starts_identity_from_config() {
    let dir = tempfile::tempdir().unwrap();
    let env: std::collections::HashMap<String, String> = [
        ("SSER_IDENTITY_ENABLED", "true"),
        ("PORT", "127.0.0.1:0"),
        ("SSER_JWT_MAX_TTL", "2h"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let config = sser::config::Config::from_sources(dir.path(), &env).unwrap();
    let (_, secret) = config
        .generated_tokens
        .iter()
        .find(|(var, _)| *var == "SSER_JWT_SECRET")
        .cloned()
        .unwrap();
    let server = sser::Server::bind(config).await.unwrap();
    let tokens = server.identity().expect("identity is on");
    assert_eq!(
        tokens.settings().max_ttl,
        Duration::from_secs(7200),
        "converted from config"
    );
    let key = jsonwebtoken::EncodingKey::from_secret(secret.expose().as_bytes()).unwrap();
    let token = sign(Algorithm::HS256, None, &key, &claims());
    assert_eq!(tokens.verify(&token).await.unwrap().user, "u1");

    let config = sser::config::Config::from_sources(
        dir.path(),
        &[("PORT".to_string(), "127.0.0.1:0".to_string())].into(),
    )
    .unwrap();
    let server = sser::Server::bind(config).await.unwrap();
    assert!(server.identity().is_none(), "off unless enabled or keyed");
}
