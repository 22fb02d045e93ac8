//! Issue 10 finding 7, through the layer and the sts-emulator: an unsigned header in a proof is
//! dropped, never a reason to reject (DESIGN §3), whatever its length up to the 16 KiB token
//! limit; past the limit the answer says the token is too long.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use http::StatusCode;
use http_body_util::Full;
use iam_join_client::{Binding, ProofBuilder, SigningForm, sts_endpoint};
use iam_join_core::token::{MAX_PROOF_TOKEN_BYTES, decode_proof_token};
use iam_join_testkit::http::{get, request, send};
use iam_join_testkit::identities::node;
use iam_join_testkit::policy::seed_policy;
use iam_join_tower::{IamJoinLayer, RateLimits};
use sts_emulator::{Emulator, EmulatorHandle};

const AUDIENCE: &str = "teleport.example.com";

async fn harness() -> (EmulatorHandle, IamJoinLayer) {
    let emulator = Emulator::start().await.unwrap();
    let layer = IamJoinLayer::builder()
        .audience(AUDIENCE)
        .default_token("iam-token")
        .policy(seed_policy())
        .identity_headers(true)
        .sts_override_all(emulator.url())
        .sts_timeouts(Duration::from_secs(1), Duration::from_millis(500))
        .rate_limits(RateLimits::none())
        .build()
        .unwrap();
    (emulator, layer)
}

fn proof(form: SigningForm) -> String {
    ProofBuilder::new(
        sts_endpoint("us-west-2", false).unwrap(),
        Binding::Audience(AUDIENCE.into()),
    )
    .form(form)
    .time(SystemTime::now())
    .build(&node().credentials())
    .unwrap()
}

/// `token` with an unsigned `x-padding` header of `len` bytes.
fn padded(token: &str, len: usize) -> String {
    let mut raw = decode_proof_token(token).unwrap();
    raw.headers.push(("x-padding".into(), "p".repeat(len)));
    raw.to_iam_join_v1_token()
}

#[tokio::test]
async fn unsigned_header_over_8_kib_is_admitted_in_both_forms() {
    let (emulator, layer) = harness().await;
    for form in [SigningForm::Post, SigningForm::presigned_get()] {
        for len in [8 * 1024 + 1, 10 * 1024] {
            let token = padded(&proof(form), len);
            assert!(token.len() <= MAX_PROOF_TOKEN_BYTES);
            let r = get(&layer, "/app", Some(&token)).await;
            assert_eq!(r.status, StatusCode::OK, "{form:?} {len}: {}", r.json);
            assert_eq!(r.arn(), Some(node().arn.as_str()));
        }
    }
    // Every proof reached STS (the emulator checks SigV4 over the headers it was sent), so the
    // padding did not travel: it is not signed.
    assert!(emulator.calls() >= 2, "{}", emulator.calls());
}

#[tokio::test]
async fn padded_proof_in_x_iam_join_proof_is_admitted() {
    let (_emulator, layer) = harness().await;
    let token = padded(&proof(SigningForm::Post), 10 * 1024);
    let req = request("/app", None)
        .header("x-iam-join-proof", token)
        .body(Full::default())
        .unwrap();
    let r = send(&layer, req).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert!(r.json["headers"].get("x-iam-join-proof").is_none());
}

#[tokio::test]
async fn token_over_16_kib_is_malformed_and_says_too_long() {
    let (emulator, layer) = harness().await;
    let token = padded(&proof(SigningForm::Post), 13 * 1024);
    assert!(token.len() > MAX_PROOF_TOKEN_BYTES);
    let r = get(&layer, "/app", Some(&token)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "malformed_proof");
    assert!(r.message().contains("too long"), "{}", r.message());
    assert_eq!(emulator.calls(), 0, "an oversized token never reaches STS");
}
