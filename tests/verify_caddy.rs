//! /verify mode behind a real Caddy (Debian's package, `forward_auth`), configured with the committed
//! `deploy/caddy/Caddyfile`. Fails (never skips) without `caddy` on PATH.

mod verify_support;

use iam_join_testkit::front_proxy::FrontKind;
use verify_support::Front;

#[tokio::test]
async fn caddy_admitted_request_reaches_the_app_with_the_verified_identity_and_without_the_proof() {
    let front = Front::start(FrontKind::Caddy).await;
    verify_support::admitted_request_reaches_the_app(&front).await;
}

#[tokio::test]
async fn caddy_forged_identity_headers_never_reach_the_app_in_any_spelling() {
    let front = Front::start(FrontKind::Caddy).await;
    verify_support::forged_identity_headers_never_arrive(&front).await;
}

#[tokio::test]
async fn caddy_challenge_path_named_by_the_original_uri_needs_a_challenge() {
    let front = Front::start(FrontKind::Caddy).await;
    verify_support::challenge_path_needs_a_challenge(&front).await;
}

#[tokio::test]
async fn caddy_refusals_pass_through_with_status_retry_after_and_json() {
    let front = Front::start(FrontKind::Caddy).await;
    verify_support::refusals_pass_through(&front).await;
}

#[tokio::test]
async fn caddy_rate_limited_clients_get_429_with_retry_after() {
    verify_support::rate_limit_passes_through(FrontKind::Caddy).await;
}

#[tokio::test]
async fn caddy_app_gets_the_verifiers_signed_assertion_and_never_a_client_sent_one() {
    verify_support::assertion_reaches_the_app(FrontKind::Caddy).await;
}
