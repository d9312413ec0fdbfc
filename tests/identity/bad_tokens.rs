//! Every way a token can be wrong gets its own error, whose message names
//! the problem and never repeats the token.

use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;
use sser::identity::{IdentitySettings, TokenError};

use super::*;

/// Verifies and checks the error's message is safe to show the client.
async fn refused(tokens: &Tokens, token: &str) -> TokenError {
    let err = tokens.verify(token).await.expect_err("token refused");
    let message = err.to_string();
    for part in token.split('.').filter(|p| p.len() > 3) {
        assert!(!message.contains(part), "{message} echoes the token");
    }
    assert!(!message.contains(SECRET));
    err
}

#[tokio::test]
async fn a_good_token_reads_as_its_identity() {
    let tokens = start(hs_settings()).await;
    let mut c = claims();
    c["device"] = json!("phone-1");
    c["topics"] = json!(["news-*", "alerts"]);
    let id = tokens.verify(&sign_hs(&c)).await.unwrap();
    assert_eq!((id.app.as_str(), id.user.as_str()), ("shop", "u1"));
    assert_eq!(id.device.as_deref(), Some("phone-1"));
    assert!(id.may_follow("news-eu") && id.may_follow("alerts") && !id.may_follow("admin"));
    assert_eq!(id.expires_at, c["exp"].as_u64());
    // HS384 and HS512 with the same secret are accepted too.
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let key = EncodingKey::from_secret(SECRET.as_bytes()).unwrap();
        assert!(tokens.verify(&sign(alg, None, &key, &c)).await.is_ok());
    }
}

#[tokio::test]
async fn bad_signature() {
    let tokens = start(hs_settings()).await;
    let other = EncodingKey::from_secret(b"another secret entirely, 32 bytes+").unwrap();
    let token = sign(Algorithm::HS256, None, &other, &claims());
    assert_eq!(refused(&tokens, &token).await, TokenError::BadSignature);
    // A valid signature over other claims: the payload was edited.
    let good = sign_hs(&claims());
    let mut edited = claims();
    edited["sub"] = json!("admin");
    let forged = sign_hs(&edited);
    let parts: Vec<&str> = good.split('.').collect();
    let forged_parts: Vec<&str> = forged.split('.').collect();
    let spliced = format!("{}.{}.{}", parts[0], forged_parts[1], parts[2]);
    assert_eq!(refused(&tokens, &spliced).await, TokenError::BadSignature);
}

#[tokio::test]
async fn alg_none_in_any_spelling() {
    let tokens = start(hs_settings()).await;
    for alg in ["none", "None", "NONE"] {
        let token = forge(json!({"alg": alg, "typ": "JWT"}), &claims(), b"");
        assert_eq!(
            refused(&tokens, &token).await,
            TokenError::Unsigned,
            "{alg}"
        );
    }
}

#[tokio::test]
async fn algorithms_not_configured() {
    let tokens = start(hs_settings()).await;
    // An RS256 token where only the secret is configured.
    let rsa = EncodingKey::from_rsa_pem(&std::fs::read(fixture("rsa-a.pem")).unwrap()).unwrap();
    let token = sign(Algorithm::RS256, None, &rsa, &claims());
    assert_eq!(
        refused(&tokens, &token).await,
        TokenError::AlgorithmNotAllowed {
            alg: Some(Algorithm::RS256)
        }
    );
    // A name no JWT library knows: not repeated in the message.
    let token = forge(json!({"alg": "XS999<script>"}), &claims(), b"sig");
    let err = refused(&tokens, &token).await;
    assert_eq!(err, TokenError::AlgorithmNotAllowed { alg: None });
    assert!(!err.to_string().contains("script"));
    // Narrowed to HS256: an HS512 token signed with the right secret is refused.
    let tokens = start(IdentitySettings {
        algorithms: vec![Algorithm::HS256],
        ..hs_settings()
    })
    .await;
    let key = EncodingKey::from_secret(SECRET.as_bytes()).unwrap();
    let token = sign(Algorithm::HS512, None, &key, &claims());
    assert_eq!(
        refused(&tokens, &token).await,
        TokenError::AlgorithmNotAllowed {
            alg: Some(Algorithm::HS512)
        }
    );
}

#[tokio::test]
async fn expiry_with_leeway() {
    let tokens = start(hs_settings()).await; // leeway 30 s
    let mut c = claims();
    c["exp"] = json!(now() - 120);
    assert_eq!(refused(&tokens, &sign_hs(&c)).await, TokenError::Expired);
    c["exp"] = json!(now() - 5);
    assert!(tokens.verify(&sign_hs(&c)).await.is_ok(), "within leeway");
    let c = json!({"sub": "u1"});
    assert_eq!(
        refused(&tokens, &sign_hs(&c)).await,
        TokenError::MissingExpiry
    );
    let lax = start(IdentitySettings {
        require_exp: false,
        ..hs_settings()
    })
    .await;
    assert_eq!(lax.verify(&sign_hs(&c)).await.unwrap().expires_at, None);
}

#[tokio::test]
async fn not_yet_valid() {
    let tokens = start(hs_settings()).await;
    let mut c = claims();
    c["nbf"] = json!(now() + 300);
    assert_eq!(
        refused(&tokens, &sign_hs(&c)).await,
        TokenError::NotYetValid
    );
    c["nbf"] = json!(now() + 5);
    assert!(tokens.verify(&sign_hs(&c)).await.is_ok(), "within leeway");
    let mut c = claims();
    c["iat"] = json!(now() + 300);
    assert_eq!(
        refused(&tokens, &sign_hs(&c)).await,
        TokenError::NotYetValid
    );
}

#[tokio::test]
async fn missing_user_and_missing_app() {
    let tokens = start(hs_settings()).await;
    let c = json!({"iss": "shop", "exp": now() + 60});
    assert_eq!(
        refused(&tokens, &sign_hs(&c)).await,
        TokenError::MissingUser {
            claim: "sub".into()
        }
    );
    let c = json!({"sub": "u1", "exp": now() + 60});
    assert_eq!(tokens.verify(&sign_hs(&c)).await.unwrap().app, "default");
    let tokens = start(IdentitySettings {
        default_app: "main-site".into(),
        ..hs_settings()
    })
    .await;
    assert_eq!(tokens.verify(&sign_hs(&c)).await.unwrap().app, "main-site");
}

#[tokio::test]
async fn audience_when_configured() {
    let tokens = start(IdentitySettings {
        audience: vec!["sser".into()],
        ..hs_settings()
    })
    .await;
    let mut c = claims();
    assert_eq!(
        refused(&tokens, &sign_hs(&c)).await,
        TokenError::WrongAudience
    );
    c["aud"] = json!("billing");
    assert_eq!(
        refused(&tokens, &sign_hs(&c)).await,
        TokenError::WrongAudience
    );
    c["aud"] = json!(["billing", "sser"]);
    assert!(tokens.verify(&sign_hs(&c)).await.is_ok());
    // Not configured: any aud passes.
    let open = start(hs_settings()).await;
    assert!(open.verify(&sign_hs(&c)).await.is_ok());
}

#[tokio::test]
async fn malformed_and_oversized() {
    let tokens = start(hs_settings()).await;
    for token in ["", "abc", "a.b", "a.b.c.d", "!!!.e30.x", "e30.e30.sig"] {
        assert_eq!(
            refused(&tokens, token).await,
            TokenError::Malformed,
            "{token}"
        );
    }
    // A header that is JSON but not an object with an alg.
    for header in [json!(["alg", "HS256"]), json!("HS256"), json!({"alg": 256})] {
        let token = forge(header, &claims(), b"x");
        assert_eq!(refused(&tokens, &token).await, TokenError::Malformed);
    }
    let long = format!("{}.{}.x", "a".repeat(20_000), "b");
    assert!(matches!(
        refused(&tokens, &long).await,
        TokenError::TooLong { .. }
    ));
    // Claims of the wrong type after a good signature.
    let c = json!({"sub": 1.5, "exp": now() + 60});
    assert!(matches!(
        refused(&tokens, &sign_hs(&c)).await,
        TokenError::InvalidClaim { claim, .. } if claim == "sub"
    ));
    let c = json!({"sub": "u1", "exp": "tomorrow"});
    assert!(matches!(
        refused(&tokens, &sign_hs(&c)).await,
        TokenError::InvalidClaim { claim, .. } if claim == "exp"
    ));
}

#[tokio::test]
async fn error_codes_are_distinct() {
    use std::collections::HashSet;
    let all = [
        TokenError::Malformed,
        TokenError::TooLong { max: 1 },
        TokenError::Unsigned,
        TokenError::AlgorithmNotAllowed { alg: None },
        TokenError::UnknownKey,
        TokenError::BadSignature,
        TokenError::Expired,
        TokenError::NotYetValid,
        TokenError::MissingExpiry,
        TokenError::MissingUser {
            claim: "sub".into(),
        },
        TokenError::InvalidClaim {
            claim: "sub".into(),
            reason: "x",
        },
        TokenError::WrongAudience,
        TokenError::KeysUnavailable,
    ];
    let codes: HashSet<&str> = all.iter().map(TokenError::code).collect();
    assert_eq!(codes.len(), all.len());
    assert!(all.iter().filter(|e| e.is_server_side()).count() == 1);
}
