//! PEM keys: RS256 from fixture files, ES256 and EdDSA generated here; a
//! token from another key, a `kid` that names another key, and the classic
//! algorithm-confusion forgery.

use jsonwebtoken::{Algorithm, EncodingKey};
use sser::identity::{IdentitySettings, KeySettings, MintRequest, SetupError, TokenError};

use super::*;

fn key(alg: Algorithm, public_key: Option<String>, private_key: Option<String>) -> KeySettings {
    KeySettings {
        label: "identity.keys[0]".into(),
        alg,
        kid: None,
        public_key,
        private_key: private_key.map(|p| Secret::new(&p)),
    }
}

fn with_keys(keys: Vec<KeySettings>) -> IdentitySettings {
    IdentitySettings {
        keys,
        ..IdentitySettings::default()
    }
}

fn rsa_private(name: &str) -> EncodingKey {
    EncodingKey::from_rsa_pem(&std::fs::read(fixture(name)).unwrap()).unwrap()
}

#[tokio::test]
async fn rs256_from_a_pem_file() {
    let tokens = start(with_keys(vec![key(
        Algorithm::RS256,
        Some(fixture("rsa-a.pub.pem")),
        None,
    )]))
    .await;
    let good = sign(Algorithm::RS256, None, &rsa_private("rsa-a.pem"), &claims());
    assert_eq!(tokens.verify(&good).await.unwrap().user, "u1");
    // Signed by another RSA key.
    let other = sign(Algorithm::RS256, None, &rsa_private("rsa-b.pem"), &claims());
    assert_eq!(tokens.verify(&other).await, Err(TokenError::BadSignature));
    // The same key, but the key is pinned to RS256: RS512 is not accepted.
    let rs512 = sign(Algorithm::RS512, None, &rsa_private("rsa-a.pem"), &claims());
    assert_eq!(
        tokens.verify(&rs512).await,
        Err(TokenError::AlgorithmNotAllowed {
            alg: Some(Algorithm::RS512)
        })
    );
    // Algorithm confusion: HS256 "signed" with the public key as the secret.
    let public_pem = std::fs::read(fixture("rsa-a.pub.pem")).unwrap();
    let confused = sign(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(&public_pem).unwrap(),
        &claims(),
    );
    assert_eq!(
        tokens.verify(&confused).await,
        Err(TokenError::AlgorithmNotAllowed {
            alg: Some(Algorithm::HS256)
        })
    );
    assert!(!tokens.can_mint());
    let refused = tokens.mint(MintRequest {
        user: "u".into(),
        ..MintRequest::default()
    });
    assert_eq!(refused.err(), Some(sser::identity::MintError::NoSigningKey));
}

#[tokio::test]
async fn kid_picks_the_key() {
    let mut a = key(Algorithm::RS256, Some(fixture("rsa-a.pub.pem")), None);
    a.kid = Some("a".into());
    let mut b = key(Algorithm::RS256, Some(fixture("rsa-b.pub.pem")), None);
    b.kid = Some("b".into());
    let tokens = start(with_keys(vec![a, b])).await;
    let signed_b = rsa_private("rsa-b.pem");
    assert!(
        tokens
            .verify(&sign(Algorithm::RS256, Some("b"), &signed_b, &claims()))
            .await
            .is_ok()
    );
    // No kid: every RS256 key is tried.
    assert!(
        tokens
            .verify(&sign(Algorithm::RS256, None, &signed_b, &claims()))
            .await
            .is_ok()
    );
    // A kid naming key a, signed by b.
    assert_eq!(
        tokens
            .verify(&sign(Algorithm::RS256, Some("a"), &signed_b, &claims()))
            .await,
        Err(TokenError::BadSignature)
    );
    // A kid nobody has (no JWKS to refresh).
    assert_eq!(
        tokens
            .verify(&sign(Algorithm::RS256, Some("c"), &signed_b, &claims()))
            .await,
        Err(TokenError::UnknownKey)
    );
}

#[tokio::test]
async fn es256_and_eddsa_with_generated_keys() {
    for (alg, rcgen_alg) in [
        (Algorithm::ES256, &rcgen::PKCS_ECDSA_P256_SHA256),
        (Algorithm::EdDSA, &rcgen::PKCS_ED25519),
    ] {
        let pair = rcgen::KeyPair::generate_for(rcgen_alg).unwrap();
        let other = rcgen::KeyPair::generate_for(rcgen_alg).unwrap();
        // Inline PEM text this time, not a path.
        let tokens = start(with_keys(vec![key(alg, Some(pair.public_key_pem()), None)])).await;
        let private = |p: &rcgen::KeyPair| match alg {
            Algorithm::EdDSA => EncodingKey::from_ed_pem(p.serialize_pem().as_bytes()).unwrap(),
            _ => EncodingKey::from_ec_pem(p.serialize_pem().as_bytes()).unwrap(),
        };
        let good = sign(alg, None, &private(&pair), &claims());
        assert_eq!(tokens.verify(&good).await.unwrap().app, "shop", "{alg:?}");
        let forged = sign(alg, None, &private(&other), &claims());
        assert_eq!(
            tokens.verify(&forged).await,
            Err(TokenError::BadSignature),
            "{alg:?}"
        );

        // A private key mints. ES256 derives the public key from it; the
        // PKCS#8 v2 Ed25519 keys ring writes need the public key given.
        let public = (alg == Algorithm::EdDSA).then(|| pair.public_key_pem());
        let tokens = start(with_keys(vec![key(
            alg,
            public,
            Some(pair.serialize_pem()),
        )]))
        .await;
        let minted = tokens
            .mint(MintRequest {
                user: "u2".into(),
                ..MintRequest::default()
            })
            .unwrap();
        let id = tokens.verify(minted.token.expose()).await.unwrap();
        assert_eq!(id.user, "u2", "{alg:?}");
        assert!(tokens.verify(&good).await.is_ok(), "{alg:?}");
    }
    let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let err = try_start(with_keys(vec![key(
        Algorithm::EdDSA,
        None,
        Some(ed.serialize_pem()),
    )]))
    .await
    .err()
    .unwrap();
    assert!(
        err.to_string()
            .contains("identity.keys[0].publicKey: is required"),
        "{err}"
    );
}

#[tokio::test]
async fn unusable_keys_stop_start_up_naming_the_key() {
    let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let cases = [
        (
            key(Algorithm::ES256, Some(p384.public_key_pem()), None),
            "identity.keys[0].publicKey",
        ),
        (
            key(Algorithm::ES256, Some(fixture("rsa-a.pub.pem")), None),
            "identity.keys[0].publicKey",
        ),
        (
            key(Algorithm::RS256, Some("/no/such/key.pem".into()), None),
            "/no/such/key.pem",
        ),
        (
            key(
                Algorithm::RS256,
                None,
                Some("not a pem, maybe a secret".into()),
            ),
            "identity.keys[0].privateKey",
        ),
    ];
    for (settings, expected) in cases {
        let err = try_start(with_keys(vec![settings])).await.err().unwrap();
        let message = err.to_string();
        assert!(message.contains(expected), "{message}");
        assert!(!message.contains("maybe a secret"), "{message}");
    }
    assert!(matches!(
        try_start(IdentitySettings::default()).await,
        Err(SetupError::NoKeys)
    ));
    assert!(matches!(
        try_start(IdentitySettings {
            mint_algorithm: Some(Algorithm::ES256),
            ..hs_settings()
        })
        .await,
        Err(SetupError::NoMintKey { .. })
    ));
}
