//! What the signer produces is standard: an independent JOSE implementation (jwt-compact, on
//! the RustCrypto p256 / ed25519-compact crates, sharing no code with jsonwebtoken / aws-lc-rs)
//! verifies the assertions with keys taken from the JWKS as served over HTTP, and recomputes
//! each `kid` as the RFC 7638 thumbprint.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use iam_join_assertion::{AssertionConfig, AssertionSigner, KeySet, SigningAlgorithm};
use jwt_compact::alg::{Ed25519, Es256};
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::prelude::*;
use serde_json::Value;
use time::OffsetDateTime;

fn signer(algorithm: SigningAlgorithm) -> Arc<AssertionSigner> {
    let config = AssertionConfig::new("https://iam-join.example.internal", ["orders-api"]).unwrap();
    Arc::new(AssertionSigner::new(
        config,
        KeySet::generate(algorithm).unwrap(),
    ))
}

/// Fetches the JWKS without any HTTP library and returns the key whose `kid` is `kid`.
async fn served_jwk(base: &str, path: &str, kid: &str) -> Value {
    let (status, headers, body) = support::raw_get(base, path).await;
    assert!(status.contains(" 200 "), "{status}");
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("content-type").as_deref(), Some("application/json"));
    assert_eq!(
        header("cache-control").as_deref(),
        Some("public, max-age=300")
    );
    let jwks: Value = serde_json::from_slice(&body).unwrap();
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .cloned()
        .unwrap_or_else(|| panic!("kid {kid} not in {jwks}"));
    assert!(key.get("d").is_none(), "the JWKS must hold no private part");
    key
}

fn verify_independently(algorithm: SigningAlgorithm, token: &str, jwk_json: &Value) -> Value {
    let jwk: JsonWebKey<'_> = serde_json::from_value(jwk_json.clone()).unwrap();
    let thumbprint = URL_SAFE_NO_PAD.encode(jwk.thumbprint::<sha2::Sha256>());
    assert_eq!(
        jwk_json["kid"], thumbprint,
        "kid is the RFC 7638 thumbprint"
    );
    let untrusted = UntrustedToken::new(token).unwrap();
    assert_eq!(untrusted.header().token_type.as_deref(), Some("JWT"));
    assert_eq!(
        untrusted.header().key_id.as_deref(),
        Some(thumbprint.as_str())
    );
    assert_eq!(untrusted.algorithm(), algorithm.as_str());
    let token: Token<Value> = match algorithm {
        SigningAlgorithm::Es256 => {
            let key = <Es256 as jwt_compact::Algorithm>::VerifyingKey::try_from(&jwk).unwrap();
            Es256.validator(&key).validate(&untrusted).unwrap()
        }
        SigningAlgorithm::EdDsa => {
            let key = <Ed25519 as jwt_compact::Algorithm>::VerifyingKey::try_from(&jwk).unwrap();
            Ed25519.validator(&key).validate(&untrusted).unwrap()
        }
        other => panic!("unexpected {other}"),
    };
    let claims = token.claims();
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let (exp, nbf, iat) = (
        claims.expiration.unwrap().timestamp(),
        claims.not_before.unwrap().timestamp(),
        claims.issued_at.unwrap().timestamp(),
    );
    assert!(
        nbf <= now && iat <= now && now < exp,
        "{nbf} {iat} {now} {exp}"
    );
    claims.custom.clone()
}

#[tokio::test]
async fn es256_and_eddsa_assertions_verify_with_an_independent_jose_library_and_the_served_jwks() {
    for algorithm in [SigningAlgorithm::Es256, SigningAlgorithm::EdDsa] {
        let signer = signer(algorithm);
        let base = support::serve_jwks(signer.clone()).await;
        let now = OffsetDateTime::now_utc();
        let identity = support::identity("i-0abc", now + Duration::from_secs(900));
        let token = signer.assertion_for(&identity, now).unwrap();
        let token = token.to_str().unwrap();
        let kid = signer.keys().signing_key().kid().to_owned();
        for path in ["/.well-known/jwks.json", "/v1/iam-join/jwks.json"] {
            let jwk = served_jwk(&base, path, &kid).await;
            assert_eq!(jwk["alg"], algorithm.as_str());
            let claims = verify_independently(algorithm, token, &jwk);
            assert_eq!(claims["iss"], "https://iam-join.example.internal");
            assert_eq!(claims["aud"], "orders-api");
            let arn = "arn:aws:sts::333333333333:assumed-role/teleport-node-role/i-0abc";
            assert_eq!(claims["sub"], arn);
            assert_eq!(claims["aws_arn"], arn);
            assert_eq!(claims["aws_account"], "333333333333");
            assert_eq!(claims["aws_user_id"], "AROAEXAMPLE:i-0abc");
            assert_eq!(claims["aws_region"], "us-west-2");
            assert_eq!(claims["join_token"], "iam-token");
            assert_eq!(claims["roles"], serde_json::json!(["Node", "Bot"]));
            assert_eq!(claims["binding"], "audience");
            assert_eq!(claims["jti"].as_str().unwrap().len(), 22);
        }
    }
}

#[tokio::test]
async fn keys_from_pem_files_sign_assertions_an_independent_library_verifies() {
    let dir = tempfile::tempdir().unwrap();
    // ES256 (PKCS#8 v1, as openssl writes), Ed25519 in both PKCS#8 versions.
    let cases = [
        ("ES256", false, SigningAlgorithm::Es256),
        ("EdDSA", true, SigningAlgorithm::EdDsa),
        ("EdDSA", false, SigningAlgorithm::EdDsa),
    ];
    for (i, (name, v1, algorithm)) in cases.into_iter().enumerate() {
        let path = support::write_key(dir.path(), &format!("k{i}.pem"), name, v1);
        let keys = KeySet::load(&[path]).unwrap();
        assert_eq!(keys.signing_key().algorithm(), algorithm);
        let config = AssertionConfig::new("https://iam-join.example.internal", ["a", "b"])
            .unwrap()
            .with_lifetime(Duration::from_secs(60))
            .unwrap();
        let signer = Arc::new(AssertionSigner::new(config, keys));
        let base = support::serve_jwks(signer.clone()).await;
        let now = OffsetDateTime::now_utc();
        let signed = signer
            .sign(
                &support::identity("pem", now + Duration::from_secs(900)),
                now,
            )
            .unwrap();
        let jwk = served_jwk(
            &base,
            "/.well-known/jwks.json",
            signer.keys().signing_key().kid(),
        )
        .await;
        let claims = verify_independently(algorithm, signed.value.to_str().unwrap(), &jwk);
        assert_eq!(claims["aud"], serde_json::json!(["a", "b"]));
        assert_eq!(signed.claims.exp - signed.claims.iat, 60);
    }
}
