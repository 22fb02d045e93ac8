//! The upstream side: assertions are checked against the JWKS fetched over HTTP from where the
//! verifier serves it; every kind of bad assertion is refused with its own code; key rotation
//! keeps old and new assertions valid during the overlap and ends the old ones after it.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use iam_join_assertion::{
    AssertionConfig, AssertionError, AssertionLayer, AssertionSigner, AssertionVerifier, KeySet,
    SigningAlgorithm, StaticJwks, VerifiedAssertion,
};
use time::OffsetDateTime;
use tower::ServiceExt as _;

const ISSUER: &str = "https://iam-join.example.internal";

fn signer_with(keys: KeySet) -> Arc<AssertionSigner> {
    let config = AssertionConfig::new(ISSUER, ["orders-api"]).unwrap();
    Arc::new(AssertionSigner::new(config, keys))
}

fn new_signer(algorithm: SigningAlgorithm) -> Arc<AssertionSigner> {
    signer_with(KeySet::generate(algorithm).unwrap())
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn assertion_at(signer: &AssertionSigner, at: OffsetDateTime) -> String {
    let identity = support::identity("i-0abc", at + Duration::from_secs(900));
    let signed = signer.sign(&identity, at).unwrap();
    signed.value.to_str().unwrap().to_owned()
}

/// Re-encodes one part of a compact JWS (0 header, 1 claims) after `edit`, keeping the
/// signature: what an attacker who can only rewrite bytes produces.
fn tamper(token: &str, part: usize, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut json: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[part]).unwrap()).unwrap();
    edit(&mut json);
    parts[part] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&json).unwrap());
    parts.join(".")
}

#[tokio::test]
async fn bad_assertions_are_refused_each_with_its_own_error() {
    let signer = new_signer(SigningAlgorithm::Es256);
    let other = new_signer(SigningAlgorithm::Es256);
    let base = support::serve_jwks(signer.clone()).await;
    let jwks_url = format!("{base}/.well-known/jwks.json");
    let verifier = AssertionVerifier::from_jwks_url(ISSUER, "orders-api", &jwks_url).unwrap();
    let good = assertion_at(&signer, now());
    verifier.verify(&good, now()).await.unwrap();

    let kid = signer.keys().signing_key().kid().to_owned();
    let mut flipped_signature = good.clone();
    let last = flipped_signature.pop().unwrap();
    flipped_signature.push(if last == 'A' { 'Q' } else { 'A' });
    let jwk_as_hmac_secret = {
        let header =
            URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"HS256","typ":"JWT","kid":"{kid}"}}"#));
        let claims = good.split('.').nth(1).unwrap();
        format!("{header}.{claims}.c2lnbmF0dXJl")
    };
    let none_alg = {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let claims = good.split('.').nth(1).unwrap();
        format!("{header}.{claims}.")
    };
    let cases: Vec<(&str, String, AssertionError)> = vec![
        (
            "claims rewritten (sub)",
            tamper(&good, 1, |c| {
                c["sub"] = "arn:aws:iam::999999999999:root".into()
            }),
            AssertionError::SignatureInvalid,
        ),
        (
            "claims rewritten (roles)",
            tamper(&good, 1, |c| c["roles"] = serde_json::json!(["Admin"])),
            AssertionError::SignatureInvalid,
        ),
        (
            "signature changed",
            flipped_signature,
            AssertionError::SignatureInvalid,
        ),
        (
            "signed by a key not in the JWKS",
            assertion_at(&other, now()),
            AssertionError::UnknownKey,
        ),
        (
            "kid rewritten to one that does not exist",
            tamper(&good, 0, |h| h["kid"] = "no-such-key".into()),
            AssertionError::UnknownKey,
        ),
        (
            "kid of a real key on another key's signature",
            tamper(&assertion_at(&other, now()), 0, |h| {
                h["kid"] = kid.clone().into()
            }),
            AssertionError::SignatureInvalid,
        ),
        (
            "expired (past exp plus 30 s leeway)",
            assertion_at(&signer, now() - Duration::from_secs(300 + 45)),
            AssertionError::Expired,
        ),
        (
            "not yet valid (nbf 2 minutes ahead)",
            assertion_at(&signer, now() + Duration::from_secs(120)),
            AssertionError::NotYetValid,
        ),
        (
            "HS256 with the public key as secret",
            jwk_as_hmac_secret,
            AssertionError::Malformed("alg is not ES256 or EdDSA"),
        ),
        (
            "alg none",
            none_alg,
            AssertionError::Malformed("not a JWS compact serialization"),
        ),
        (
            "typ is not JWT",
            tamper(&good, 0, |h| h["typ"] = "at+jwt".into()),
            AssertionError::Malformed("typ is not JWT"),
        ),
        (
            "no kid",
            tamper(&good, 0, |h| {
                h.as_object_mut().unwrap().remove("kid");
            }),
            AssertionError::Malformed("no kid"),
        ),
        (
            "EdDSA named on an ES256 key",
            tamper(&good, 0, |h| h["alg"] = "EdDSA".into()),
            AssertionError::Malformed("alg does not match the key"),
        ),
        (
            "not a JWT",
            "hello".into(),
            AssertionError::Malformed("not a JWS compact serialization"),
        ),
        (
            "empty",
            String::new(),
            AssertionError::Malformed("not a JWS compact serialization"),
        ),
        (
            "too long",
            "a".repeat(9000),
            AssertionError::Malformed("too long"),
        ),
    ];
    for (name, token, expected) in cases {
        let err = verifier.verify(&token, now()).await.unwrap_err();
        assert_eq!(err, expected, "{name}");
        assert_eq!(err.status(), StatusCode::UNAUTHORIZED, "{name}");
    }

    let leeway_ok = assertion_at(&signer, now() - Duration::from_secs(300 + 15));
    verifier.verify(&leeway_ok, now()).await.unwrap();

    let billing = AssertionVerifier::from_jwks_url(ISSUER, "billing", &jwks_url).unwrap();
    assert_eq!(
        billing.verify(&good, now()).await.unwrap_err(),
        AssertionError::WrongAudience
    );
    let elsewhere =
        AssertionVerifier::from_jwks_url("https://other.example", "orders-api", &jwks_url).unwrap();
    assert_eq!(
        elsewhere.verify(&good, now()).await.unwrap_err(),
        AssertionError::WrongIssuer
    );
}

#[tokio::test]
async fn a_correctly_signed_token_without_the_identity_claims_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = support::write_key(dir.path(), "k.pem", "ES256", false);
    let keys = KeySet::load(std::slice::from_ref(&path)).unwrap();
    let kid = keys.signing_key().kid().to_owned();
    let verifier = AssertionVerifier::new(
        ISSUER,
        "orders-api",
        StaticJwks(signer_with(keys).jwks_json()),
    );
    let pem = std::fs::read(&path).unwrap();
    let key = jsonwebtoken::EncodingKey::from_ec_der(pem::parse(pem).unwrap().contents());
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(kid);
    let t = now().unix_timestamp();
    let bare = serde_json::json!({"iss": ISSUER, "aud": "orders-api", "sub": "x", "iat": t, "nbf": t, "exp": t + 60});
    let token = jsonwebtoken::encode(&header, &bare, &key).unwrap();
    assert_eq!(
        verifier.verify(&token, now()).await.unwrap_err(),
        AssertionError::Malformed("claims are not an identity assertion")
    );
}

#[tokio::test]
async fn rotation_old_and_new_keys_verify_during_the_overlap_and_the_old_fails_after_removal() {
    let dir = tempfile::tempdir().unwrap();
    let old = support::write_key(dir.path(), "old.pem", "ES256", false);
    let new = support::write_key(dir.path(), "new.pem", "EdDSA", true);
    let signer = signer_with(KeySet::load(std::slice::from_ref(&old)).unwrap());
    let base = support::serve_jwks(signer.clone()).await;
    let jwks_url = format!("{base}/v1/iam-join/jwks.json");
    // The upstream keeps the key set for 5 minutes and refetches on an unknown kid.
    let verifier = AssertionVerifier::from_jwks_url(ISSUER, "orders-api", &jwks_url)
        .unwrap()
        .with_refresh(Duration::from_secs(300), Duration::ZERO);

    let by_old = assertion_at(&signer, now());
    verifier.verify(&by_old, now()).await.unwrap();

    // Step 1: the new key is published next to the old one, then becomes the signing key.
    signer.replace_keys(KeySet::load(&[new.clone(), old.clone()]).unwrap());
    let by_new = assertion_at(&signer, now());
    let verified = verifier.verify(&by_new, now()).await.unwrap();
    assert_eq!(verified.algorithm, SigningAlgorithm::EdDsa);
    verifier.verify(&by_old, now()).await.unwrap();

    // Step 2: the old key is removed. Once the upstream's copy is refreshed, old assertions fail.
    signer.replace_keys(KeySet::load(std::slice::from_ref(&new)).unwrap());
    let refreshed = AssertionVerifier::from_jwks_url(ISSUER, "orders-api", &jwks_url)
        .unwrap()
        .with_refresh(Duration::ZERO, Duration::ZERO);
    refreshed.verify(&by_new, now()).await.unwrap();
    assert_eq!(
        refreshed.verify(&by_old, now()).await.unwrap_err(),
        AssertionError::UnknownKey
    );
    let stale_then_refreshed = verifier.with_refresh(Duration::ZERO, Duration::ZERO);
    assert_eq!(
        stale_then_refreshed
            .verify(&by_old, now())
            .await
            .unwrap_err(),
        AssertionError::UnknownKey
    );
}

#[tokio::test]
async fn an_unreachable_jwks_is_a_retryable_503_not_a_401() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = listener.local_addr().unwrap();
    drop(listener);
    let signer = new_signer(SigningAlgorithm::Es256);
    let verifier = AssertionVerifier::from_jwks_url(
        ISSUER,
        "orders-api",
        &format!("http://{closed}/.well-known/jwks.json"),
    )
    .unwrap();
    let err = verifier
        .verify(&assertion_at(&signer, now()), now())
        .await
        .unwrap_err();
    assert_eq!(err, AssertionError::JwksUnavailable);
    let response = err.to_response::<Body>();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key(http::header::RETRY_AFTER));
    for bad in ["", "ftp://x/jwks.json", "/jwks.json", "http:///x"] {
        assert!(
            AssertionVerifier::from_jwks_url(ISSUER, "a", bad).is_err(),
            "{bad}"
        );
    }
}

fn upstream(verifier: Arc<AssertionVerifier>) -> axum::Router {
    async fn whoami(assertion: VerifiedAssertion) -> String {
        format!(
            "{} {} {}",
            assertion.arn(),
            assertion.token(),
            assertion.roles().join(",")
        )
    }
    axum::Router::new()
        .route("/whoami", axum::routing::get(whoami))
        .layer(AssertionLayer::new(verifier))
}

async fn call(app: &axum::Router, assertions: &[&str]) -> (StatusCode, String) {
    let mut request = Request::get("/whoami");
    for a in assertions {
        request = request.header("x-iam-join-assertion", *a);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn the_layer_admits_valid_assertions_and_answers_refusals_with_json_codes() {
    let signer = new_signer(SigningAlgorithm::EdDsa);
    let verifier = Arc::new(AssertionVerifier::new(
        ISSUER,
        "orders-api",
        StaticJwks(signer.jwks_json()),
    ));
    let app = upstream(verifier);
    let good = assertion_at(&signer, now());
    let (status, body) = call(&app, &[&good]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        "arn:aws:sts::333333333333:assumed-role/teleport-node-role/i-0abc iam-token Node,Bot"
    );
    let expired = assertion_at(&signer, now() - Duration::from_secs(1000));
    let cases = [
        (vec![], "assertion_missing"),
        (vec![good.as_str(), good.as_str()], "assertion_malformed"),
        (vec![expired.as_str()], "assertion_expired"),
        (vec!["x.y.z"], "assertion_malformed"),
    ];
    for (headers, code) in cases {
        let (status, body) = call(&app, &headers).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{code}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["error"]["code"], code, "{body}");
        assert!(!body.contains(&good), "the body never echoes an assertion");
    }
}

#[tokio::test]
async fn the_extractor_without_the_layer_refuses_rather_than_admits() {
    async fn whoami(assertion: VerifiedAssertion) -> String {
        assertion.arn().to_owned()
    }
    let app = axum::Router::new().route("/whoami", axum::routing::get(whoami));
    let signer = new_signer(SigningAlgorithm::Es256);
    let (status, body) = call(&app, &[&assertion_at(&signer, now())]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("assertion_missing"), "{body}");
}
