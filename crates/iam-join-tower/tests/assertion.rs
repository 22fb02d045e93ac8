//! Signed identity assertions from the layer, against the sts-emulator: the header handed on,
//! `/verify` and `/whoami`, the JWKS routes, and what a client cannot smuggle in.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use iam_join_assertion::{
    AssertionConfig, AssertionSigner, AssertionVerifier, KeySet, SigningAlgorithm, StaticJwks,
    VerifiedAssertion,
};
use iam_join_client::{Binding, ProofBuilder, SigningForm, sts_endpoint};
use iam_join_testkit::http::{get, request, send};
use iam_join_testkit::identities::{alice, node};
use iam_join_testkit::policy::seed_policy_with;
use iam_join_tower::{IamJoinLayer, IamJoinLayerBuilder, RateLimits};
use sts_emulator::{Emulator, EmulatorHandle, TestIdentity};
use time::OffsetDateTime;

const AUDIENCE: &str = "teleport.example.com";
const ISSUER: &str = "https://iam-join.test";
const UPSTREAM: &str = "orders-api";

struct Harness {
    _emulator: EmulatorHandle,
    layer: IamJoinLayer,
    signer: Arc<AssertionSigner>,
}

fn signer() -> Arc<AssertionSigner> {
    let config = AssertionConfig::new(ISSUER, [UPSTREAM]).unwrap();
    Arc::new(AssertionSigner::new(
        config,
        KeySet::generate(SigningAlgorithm::Es256).unwrap(),
    ))
}

async fn harness(with_signer: bool) -> Harness {
    let emulator = Emulator::start().await.unwrap();
    let signer = signer();
    let mut builder: IamJoinLayerBuilder = IamJoinLayer::builder()
        .audience(AUDIENCE)
        .default_token("iam-token")
        .policy(seed_policy_with("", "test-policy"))
        .identity_headers(true)
        .sts_override_all(emulator.url())
        .rate_limits(RateLimits::none());
    if with_signer {
        builder = builder.assertion(Arc::clone(&signer));
    }
    Harness {
        layer: builder.build().unwrap(),
        _emulator: emulator,
        signer,
    }
}

fn proof(id: &TestIdentity) -> String {
    ProofBuilder::new(
        sts_endpoint("us-west-2", false).unwrap(),
        Binding::Audience(AUDIENCE.into()),
    )
    .form(SigningForm::Post)
    .time(SystemTime::now())
    .build(&id.credentials())
    .unwrap()
}

/// Verifies `jws` the way an upstream would: against the JWKS the layer serves.
async fn verify_against_served_jwks(layer: &IamJoinLayer, jws: &str) -> VerifiedAssertion {
    let jwks = get(layer, "/.well-known/jwks.json", None).await;
    assert_eq!(jwks.status, StatusCode::OK);
    let bytes = Bytes::from(serde_json::to_vec(&jwks.json).unwrap());
    AssertionVerifier::new(ISSUER, UPSTREAM, StaticJwks(bytes))
        .verify(jws, OffsetDateTime::now_utc())
        .await
        .unwrap()
}

#[tokio::test]
async fn upstream_receives_an_assertion_whose_claims_equal_the_identity_headers() {
    let h = harness(true).await;
    let r = send(
        &h.layer,
        request("/app", Some(&proof(&alice())))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let headers = &r.json["headers"];
    let jws = headers["x-iam-join-assertion"].as_str().unwrap();
    let verified = verify_against_served_jwks(&h.layer, jws).await;
    let c = &verified.claims;
    assert_eq!(headers["x-iam-join-account"], c.aws_account.as_str());
    assert_eq!(headers["x-iam-join-arn"], c.aws_arn.as_str());
    assert_eq!(headers["x-iam-join-user-id"], c.aws_user_id.as_str());
    assert_eq!(headers["x-iam-join-token"], c.join_token.as_str());
    assert_eq!(headers["x-iam-join-roles"], c.roles.join(",").as_str());
    assert_eq!(headers["x-iam-join-region"], c.aws_region.as_str());
    assert_eq!(c.sub, alice().arn);
    assert!(c.exp > c.iat);
}

#[tokio::test]
async fn client_sent_assertion_is_replaced_and_never_reaches_the_upstream() {
    let forged = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.";
    for with_signer in [false, true] {
        let h = harness(with_signer).await;
        for proof in [None, Some(proof(&alice()))] {
            let req = request("/app", proof.as_deref())
                .header("x-iam-join-assertion", forged)
                .header("X-IAM-Join-Assertion", forged)
                .body(Full::default())
                .unwrap();
            let r = send(&h.layer, req).await;
            let seen = r.json["headers"]["x-iam-join-assertion"].as_str();
            assert_ne!(seen, Some(forged), "signer={with_signer} proof={proof:?}");
            assert_eq!(seen.is_some(), with_signer && proof.is_some());
        }
    }
}

/// With a header name outside `x-iam-join-*`, a client's copy is still removed in every
/// spelling, on public paths too (where the layer verifies nothing and signs nothing), so a
/// captured assertion cannot be replayed to the upstream.
#[tokio::test]
async fn a_custom_assertion_header_is_cleared_in_every_spelling_even_on_public_paths() {
    let emulator = Emulator::start().await.unwrap();
    let config = AssertionConfig::new(ISSUER, [UPSTREAM])
        .unwrap()
        .with_header("x-goog-iap-jwt-assertion")
        .unwrap();
    let signer = Arc::new(AssertionSigner::new(
        config,
        KeySet::generate(SigningAlgorithm::Es256).unwrap(),
    ));
    let layer = IamJoinLayer::builder()
        .audience(AUDIENCE)
        .default_token("iam-token")
        .policy(seed_policy_with("", "test-policy"))
        .public_paths(["/public/*"])
        .sts_override_all(emulator.url())
        .rate_limits(RateLimits::none())
        .assertion(signer)
        .build()
        .unwrap();
    let captured = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2ln";
    for (path, proof) in [("/public/x", None), ("/app", Some(proof(&alice())))] {
        let req = request(path, proof.as_deref())
            .header("x-goog-iap-jwt-assertion", captured)
            .header("X_Goog_Iap_Jwt_Assertion", captured)
            .header("connection", "x_goog_iap_jwt_assertion")
            .body(Full::default())
            .unwrap();
        let r = send(&layer, req).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.json);
        let text = r.json.to_string();
        assert!(!text.contains(captured), "{path}: {text}");
        let signed = r.json["headers"]["x-goog-iap-jwt-assertion"].as_str();
        assert_eq!(signed.is_some(), proof.is_some(), "{path}: {text}");
    }
}

#[tokio::test]
async fn a_cache_hit_reuses_the_signed_assertion() {
    let h = harness(true).await;
    let p = proof(&node());
    let first = send(
        &h.layer,
        request("/app", Some(&p)).body(Full::default()).unwrap(),
    )
    .await;
    let second = send(
        &h.layer,
        request("/app", Some(&p)).body(Full::default()).unwrap(),
    )
    .await;
    let a = first.json["headers"]["x-iam-join-assertion"]
        .as_str()
        .unwrap();
    assert_eq!(
        Some(a),
        second.json["headers"]["x-iam-join-assertion"].as_str()
    );
}

#[tokio::test]
async fn verify_returns_the_assertion_header_and_whoami_the_assertion_field() {
    let h = harness(true).await;
    let p = proof(&alice());
    let r = get(&h.layer, "/v1/iam-join/verify", Some(&p)).await;
    assert_eq!(r.status, StatusCode::OK);
    let jws = r.headers["x-iam-join-assertion"].to_str().unwrap();
    assert_eq!(
        verify_against_served_jwks(&h.layer, jws).await.arn(),
        alice().arn
    );
    let r = get(&h.layer, "/v1/iam-join/whoami", Some(&p)).await;
    assert_eq!(r.status, StatusCode::OK);
    let jws = r.json["assertion"].as_str().unwrap();
    let verified = verify_against_served_jwks(&h.layer, jws).await;
    assert_eq!(r.json["arn"], verified.arn());
    assert_eq!(r.json["token"], verified.token());
}

#[tokio::test]
async fn jwks_is_served_publicly_on_both_paths_only_with_a_signer() {
    let h = harness(true).await;
    for path in ["/v1/iam-join/jwks.json", "/.well-known/jwks.json"] {
        let r = get(&h.layer, path, None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(r.headers["content-type"], "application/json");
        assert_eq!(r.headers["cache-control"], "public, max-age=300");
        let signer_jwks: serde_json::Value = serde_json::from_slice(&h.signer.jwks_json()).unwrap();
        assert_eq!(r.json, signer_jwks, "{path}");
        let post = Request::builder()
            .method(Method::POST)
            .uri(path)
            .body(Full::default())
            .unwrap();
        let r = send(&h.layer, post).await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
    }
    let h = harness(false).await;
    for path in ["/v1/iam-join/jwks.json", "/.well-known/jwks.json"] {
        // No signer: the path is the inner service's, behind a proof like any other.
        let r = get(&h.layer, path, None).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::UNAUTHORIZED, "missing_proof")
        );
    }
}

#[tokio::test]
async fn rotated_keys_sign_new_assertions_and_the_jwks_follows() {
    let h = harness(true).await;
    let before = get(&h.layer, "/v1/iam-join/verify", Some(&proof(&alice()))).await;
    let old = before.headers["x-iam-join-assertion"]
        .to_str()
        .unwrap()
        .to_owned();
    h.signer
        .replace_keys(KeySet::generate(SigningAlgorithm::EdDsa).unwrap());
    let after = get(&h.layer, "/v1/iam-join/verify", Some(&proof(&alice()))).await;
    let new = after.headers["x-iam-join-assertion"].to_str().unwrap();
    assert_ne!(old, new, "a rotation re-signs");
    assert_eq!(
        verify_against_served_jwks(&h.layer, new).await.algorithm,
        SigningAlgorithm::EdDsa
    );
}
