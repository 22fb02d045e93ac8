//! The IamJoinLayer against the sts-emulator on 127.0.0.1:0 (issue 3's "must show").
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use iam_join_client::{Binding, ProofBuilder, SigningForm, sts_endpoint};
use iam_join_core::VerifiedIdentity;
use iam_join_core::policy::TokenPolicy;
use iam_join_core::token::decode_proof_token;
use iam_join_testkit::http::{get, request, send};
use iam_join_testkit::identities::{alice, node, node2, other_account};
use iam_join_testkit::policy::{EXPIRED_TOKEN_YAML, SEED_TOKEN_YAML, seed_policy_with};
use iam_join_tower::{IamJoinLayer, IamJoinLayerBuilder, Rate, RateLimits};
use sts_emulator::{Emulator, EmulatorHandle, Fault, TestIdentity};
use tower::ServiceExt;

const AUDIENCE: &str = "teleport.example.com";

/// Added to the seed with [`EXPIRED_TOKEN_YAML`].
const OTHER_ACCOUNT_TOKEN: &str = r#"---
kind: token
version: v2
metadata:
  name: other-account
spec:
  roles: [Node, App]
  join_method: iam
  allow:
    - aws_account: "444444444444"
"#;

fn seed_policy() -> TokenPolicy {
    seed_policy_with(
        &format!("{EXPIRED_TOKEN_YAML}{OTHER_ACCOUNT_TOKEN}"),
        "test-policy",
    )
}

struct Harness {
    emulator: EmulatorHandle,
    layer: IamJoinLayer,
}

async fn harness(configure: impl FnOnce(IamJoinLayerBuilder) -> IamJoinLayerBuilder) -> Harness {
    let emulator = Emulator::start().await.unwrap();
    let builder = IamJoinLayer::builder()
        .audience(AUDIENCE)
        .default_token("iam-token")
        .policy(seed_policy())
        .identity_headers(true)
        .sts_override_all(emulator.url())
        .sts_timeouts(Duration::from_secs(1), Duration::from_millis(500))
        .rate_limits(RateLimits::none());
    let layer = configure(builder).build().unwrap();
    Harness { emulator, layer }
}

fn proof_with(id: &TestIdentity, binding: Binding, form: SigningForm, at: SystemTime) -> String {
    ProofBuilder::new(sts_endpoint("us-west-2", false).unwrap(), binding)
        .form(form)
        .time(at)
        .build(&id.credentials())
        .unwrap()
}

fn proof(id: &TestIdentity) -> String {
    proof_with(
        id,
        Binding::Audience(AUDIENCE.into()),
        SigningForm::Post,
        SystemTime::now(),
    )
}

fn reencode(token: &str, edit: impl FnOnce(&mut iam_join_core::RawSignedRequest)) -> String {
    let mut raw = decode_proof_token(token).unwrap();
    edit(&mut raw);
    raw.to_iam_join_v1_token()
}

#[tokio::test]
async fn admitted_proof_reaches_an_axum_handler_with_the_identity() {
    use axum::{Extension, Router, routing::get as axum_get};
    let h = harness(|b| b).await;
    let app: Router = Router::new()
        .route(
            "/hello",
            axum_get(|Extension(id): Extension<VerifiedIdentity>| async move {
                format!("{} {}", id.identity.arn(), id.roles.join(","))
            }),
        )
        .layer(h.layer.clone());
    let req = Request::builder()
        .uri("/hello")
        .header("authorization", format!("Bearer {}", proof(&node())))
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = app.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        std::str::from_utf8(&body).unwrap(),
        format!("{} Node", node().arn)
    );
}

#[tokio::test]
async fn upstream_sees_trusted_headers_but_not_the_proof_or_spoofed_headers() {
    let h = harness(|b| b).await;
    let req = request("/app", Some(&proof(&alice())))
        .header("x-iam-join-arn", "arn:aws:iam::999999999999:user/mallory")
        .header("x-iam-join-roles", "Admin")
        .body(Full::default())
        .unwrap();
    let r = send(&h.layer, req).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let headers = &r.json["headers"];
    assert_eq!(headers["x-iam-join-arn"], alice().arn);
    assert_eq!(headers["x-iam-join-account"], "111111111111");
    assert_eq!(headers["x-iam-join-roles"], "Node");
    assert_eq!(headers["x-iam-join-token"], "iam-token");
    assert_eq!(headers["x-iam-join-region"], "us-west-2");
    assert!(headers.get("authorization").is_none());
    assert_eq!(r.json["identity"]["arn"], alice().arn);
}

#[tokio::test]
async fn proof_in_x_iam_join_proof_is_accepted_and_not_forwarded() {
    let h = harness(|b| b).await;
    let req = request("/app", None)
        .header("x-iam-join-proof", proof(&alice()))
        .header("authorization", "Bearer upstream-session-token")
        .body(Full::default())
        .unwrap();
    let r = send(&h.layer, req).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.json["headers"].get("x-iam-join-proof").is_none());
    // The upstream's own bearer token is not ours and passes through.
    assert_eq!(
        r.json["headers"]["authorization"],
        "Bearer upstream-session-token"
    );
}

#[tokio::test]
async fn missing_proof_is_401_missing_proof() {
    let h = harness(|b| b).await;
    let r = get(&h.layer, "/app", None).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "missing_proof")
    );
    assert!(r.headers.contains_key("www-authenticate"));
}

#[tokio::test]
async fn malformed_proof_is_400_malformed_proof() {
    let h = harness(|b| b).await;
    let r = get(&h.layer, "/app", Some("iam-join-v1.!!!")).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "malformed_proof")
    );
    assert_eq!(h.emulator.calls(), 0);
}

#[tokio::test]
async fn proof_for_a_non_sts_host_is_400_host_not_allowed() {
    let h = harness(|b| b).await;
    let t = reencode(&proof(&alice()), |r| {
        r.url = "https://sts.us-west-2.amazonaws.com.evil.example/".into()
    });
    let r = get(&h.layer, "/app", Some(&t)).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "host_not_allowed")
    );
    assert_eq!(h.emulator.calls(), 0);
}

#[tokio::test]
async fn other_action_is_400_wrong_action() {
    let h = harness(|b| b).await;
    let t = reencode(&proof(&alice()), |r| {
        r.body = "Action=AssumeRole&Version=2011-06-15".into()
    });
    let r = get(&h.layer, "/app", Some(&t)).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "wrong_action")
    );
}

#[tokio::test]
async fn audience_proof_on_a_challenge_path_is_400_binding_missing() {
    let h = harness(|b| b.challenge_paths(["/join"])).await;
    let r = get(&h.layer, "/join", Some(&proof(&alice()))).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "binding_missing")
    );
}

#[tokio::test]
async fn proof_for_another_audience_is_401_audience_mismatch() {
    let h = harness(|b| b).await;
    let t = proof_with(
        &alice(),
        Binding::Audience("other.example.com".into()),
        SigningForm::Post,
        SystemTime::now(),
    );
    let r = get(&h.layer, "/app", Some(&t)).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "audience_mismatch")
    );
}

#[tokio::test]
async fn audience_value_edited_after_signing_is_refused_by_sts() {
    let h = harness(|b| b).await;
    let t = proof_with(
        &alice(),
        Binding::Audience("other.example.com".into()),
        SigningForm::Post,
        SystemTime::now(),
    );
    let t = reencode(&t, |r| {
        for (n, v) in r.headers.iter_mut() {
            if n == "x-iam-join-audience" {
                *v = AUDIENCE.into();
            }
        }
    });
    let r = get(&h.layer, "/app", Some(&t)).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "sts_rejected")
    );
    assert_eq!(h.emulator.calls(), 1);
}

#[tokio::test]
async fn proof_twenty_minutes_old_is_401_proof_expired() {
    let h = harness(|b| b).await;
    let t = proof_with(
        &alice(),
        Binding::Audience(AUDIENCE.into()),
        SigningForm::Post,
        SystemTime::now() - Duration::from_secs(20 * 60),
    );
    let r = get(&h.layer, "/app", Some(&t)).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "proof_expired")
    );
}

#[tokio::test]
async fn wrong_secret_is_401_sts_rejected() {
    let h = harness(|b| b).await;
    let mut forged = alice();
    forged.secret_access_key = "x".repeat(40);
    let r = get(&h.layer, "/app", Some(&proof(&forged))).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "sts_rejected")
    );
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("SignatureDoesNotMatch")
    );
}

#[tokio::test]
async fn unknown_token_is_403_unknown_token() {
    let h = harness(|b| b).await;
    let req = request("/app", Some(&proof(&alice())))
        .header("x-iam-join-token", "no-such-token")
        .body(Full::default())
        .unwrap();
    let r = send(&h.layer, req).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "unknown_token")
    );
}

#[tokio::test]
async fn expired_token_is_403_token_expired() {
    let h = harness(|b| b).await;
    let req = request("/app", Some(&proof(&alice())))
        .header("x-iam-join-token", "old-token")
        .body(Full::default())
        .unwrap();
    let r = send(&h.layer, req).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "token_expired")
    );
}

#[tokio::test]
async fn identity_matching_no_rule_is_403_not_allowed() {
    let h = harness(|b| b).await;
    let r = get(&h.layer, "/app", Some(&proof(&other_account()))).await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "not_allowed"));
    let similar = node2(); // teleport-node-role2
    let r = get(&h.layer, "/app", Some(&proof(&similar))).await;
    assert_eq!(r.code(), "not_allowed");
}

#[tokio::test]
async fn per_client_limit_gives_429_with_retry_after() {
    let h = harness(|b| {
        b.rate_limits(RateLimits {
            per_client: Some(Rate {
                per_second: 1,
                burst: 1,
            }),
            ..RateLimits::none()
        })
    })
    .await;
    let first = get(&h.layer, "/app", Some(&proof(&alice()))).await;
    assert_eq!(first.status, StatusCode::OK);
    let second = get(&h.layer, "/app", Some(&proof(&node()))).await;
    assert_eq!(
        (second.status, second.code()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
    );
    assert!(second.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn cache_hits_are_not_limited_per_client() {
    let h = harness(|b| {
        b.rate_limits(RateLimits {
            per_client: Some(Rate {
                per_second: 1,
                burst: 1,
            }),
            ..RateLimits::none()
        })
    })
    .await;
    let t = proof(&alice());
    for _ in 0..5 {
        let r = get(&h.layer, "/app", Some(&t)).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    assert_eq!(h.emulator.calls(), 1);
}

async fn assert_unavailable_then_recovers(fault: Fault) {
    let h = harness(|b| b).await;
    h.emulator.set_fault(fault);
    let t = proof(&alice());
    let r = get(&h.layer, "/app", Some(&t)).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "sts_unavailable"),
        "{fault:?}"
    );
    assert!(r.headers.contains_key("retry-after"));
    h.emulator.set_fault(Fault::None);
    let r = get(&h.layer, "/app", Some(&t)).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "a cached failure blocked a good answer"
    );
}

#[tokio::test]
async fn sts_throttling_is_503_and_not_cached() {
    assert_unavailable_then_recovers(Fault::Throttle).await;
}

#[tokio::test]
async fn sts_server_error_is_503_and_not_cached() {
    assert_unavailable_then_recovers(Fault::ServerError).await;
}

#[tokio::test]
async fn sts_hang_past_the_timeout_is_503_and_not_cached() {
    assert_unavailable_then_recovers(Fault::Hang).await;
}

#[tokio::test]
async fn thousand_concurrent_requests_with_one_new_proof_make_one_sts_call() {
    let h = harness(|b| b).await;
    h.emulator.set_latency(Duration::from_millis(100));
    let t = Arc::new(proof(&node()));
    let round = |layer: IamJoinLayer, t: Arc<String>| async move {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..1000 {
            let (layer, t) = (layer.clone(), Arc::clone(&t));
            tasks.spawn(async move { get(&layer, "/app", Some(&t)).await.status });
        }
        let mut ok = 0;
        while let Some(s) = tasks.join_next().await {
            if s.unwrap() == StatusCode::OK {
                ok += 1;
            }
        }
        ok
    };
    assert_eq!(round(h.layer.clone(), Arc::clone(&t)).await, 1000);
    assert_eq!(h.emulator.calls(), 1);
    assert_eq!(round(h.layer.clone(), Arc::clone(&t)).await, 1000);
    assert_eq!(
        h.emulator.calls(),
        1,
        "second round within the TTL must not call STS"
    );
}

#[tokio::test]
async fn definitive_rejection_is_cached_only_for_the_negative_ttl() {
    let h = harness(|b| b.negative_ttl(Duration::from_millis(300))).await;
    let mut forged = alice();
    forged.secret_access_key = "y".repeat(40);
    let t = proof(&forged);
    assert_eq!(get(&h.layer, "/app", Some(&t)).await.code(), "sts_rejected");
    assert_eq!(get(&h.layer, "/app", Some(&t)).await.code(), "sts_rejected");
    assert_eq!(
        h.emulator.calls(),
        1,
        "rejection is cached within the negative TTL"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(get(&h.layer, "/app", Some(&t)).await.code(), "sts_rejected");
    assert_eq!(
        h.emulator.calls(),
        2,
        "rejection expired after the negative TTL"
    );
}

#[tokio::test]
async fn cached_proof_is_not_admitted_after_its_own_expiry() {
    let h = harness(|b| b).await;
    let t = proof_with(
        &alice(),
        Binding::Audience(AUDIENCE.into()),
        SigningForm::PresignedGet {
            expires_in: Duration::from_secs(2),
        },
        SystemTime::now(),
    );
    assert_eq!(get(&h.layer, "/app", Some(&t)).await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let r = get(&h.layer, "/app", Some(&t)).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "proof_expired")
    );
    assert_eq!(h.emulator.calls(), 1);
}

async fn challenge(layer: &IamJoinLayer) -> String {
    let req = request("/v1/iam-join/challenge", None)
        .method("POST")
        .body(Full::default())
        .unwrap();
    let r = send(layer, req).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["header"], "x-teleport-challenge");
    r.json["challenge"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn challenge_is_single_use() {
    let h = harness(|b| b.challenge_paths(["/join"])).await;
    let c = challenge(&h.layer).await;
    let t = proof_with(
        &node(),
        Binding::Challenge(c),
        SigningForm::Post,
        SystemTime::now(),
    );
    let r = get(&h.layer, "/join", Some(&t)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let r = get(&h.layer, "/join", Some(&t)).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "challenge_reused")
    );
    assert_eq!(h.emulator.calls(), 1);
}

#[tokio::test]
async fn tampered_challenge_is_challenge_invalid() {
    let h = harness(|b| b).await;
    let mut c = challenge(&h.layer).await.into_bytes();
    c[10] = if c[10] == b'A' { b'B' } else { b'A' };
    let c = String::from_utf8(c).unwrap();
    let t = proof_with(
        &node(),
        Binding::Challenge(c),
        SigningForm::Post,
        SystemTime::now(),
    );
    let r = get(&h.layer, "/app", Some(&t)).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "challenge_invalid")
    );
    assert_eq!(h.emulator.calls(), 0);
}

#[tokio::test]
async fn stale_challenge_is_challenge_invalid() {
    let h = harness(|b| b.challenge_ttl(Duration::from_secs(1))).await;
    let c = challenge(&h.layer).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let t = proof_with(
        &node(),
        Binding::Challenge(c),
        SigningForm::Post,
        SystemTime::now(),
    );
    let r = get(&h.layer, "/app", Some(&t)).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "challenge_invalid")
    );
}

#[tokio::test]
async fn policy_swap_applies_to_the_next_request() {
    let h = harness(|b| b).await;
    let t = proof(&other_account());
    assert_eq!(get(&h.layer, "/app", Some(&t)).await.code(), "not_allowed");
    let widened = TokenPolicy::from_yaml_str(
        &SEED_TOKEN_YAML.replace("\"222222222222\"", "\"444444444444\""),
        "swapped",
    )
    .unwrap();
    h.layer.policy().store(widened);
    assert_eq!(get(&h.layer, "/app", Some(&t)).await.status, StatusCode::OK);
    // The STS answer came from the cache: the policy is applied after it.
    assert_eq!(h.emulator.calls(), 1);
}

#[tokio::test]
async fn verify_endpoint_answers_200_with_identity_headers_or_the_error() {
    let h = harness(|b| b).await;
    let r = get(&h.layer, "/v1/iam-join/verify", Some(&proof(&alice()))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["x-iam-join-account"], "111111111111");
    assert_eq!(r.headers["x-iam-join-arn"], alice().arn.as_str());
    assert!(r.json.is_null(), "empty body");
    let r = get(
        &h.layer,
        "/v1/iam-join/verify",
        Some(&proof(&other_account())),
    )
    .await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "not_allowed"));
}

#[tokio::test]
async fn whoami_answers_the_verified_identity_as_json() {
    let h = harness(|b| b).await;
    let r = get(&h.layer, "/v1/iam-join/whoami", Some(&proof(&node()))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["account"], "333333333333");
    assert_eq!(r.json["arn"], node().arn);
    assert_eq!(r.json["user_id"], node().user_id);
    assert_eq!(r.json["principal"], "assumed-role");
    assert_eq!(r.json["region"], "us-west-2");
    assert_eq!(r.json["token"], "iam-token");
    assert_eq!(r.json["roles"], serde_json::json!(["Node"]));
    assert_eq!(r.json["binding"], "audience");
    assert!(r.json["expires_at"].as_str().is_some());
}

#[tokio::test]
async fn public_paths_pass_without_proof_but_lose_spoofed_headers() {
    let h = harness(|b| b.public_paths(["/healthz"])).await;
    let req = request("/healthz", None)
        .header("x-iam-join-account", "111111111111")
        .body(Full::default())
        .unwrap();
    let r = send(&h.layer, req).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.json["headers"].get("x-iam-join-account").is_none());
}

#[tokio::test]
async fn metrics_of_design_section_9_are_recorded() {
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();
    let meter = provider.meter("iam-join-test");
    let h = harness(|b| {
        b.meter(meter).rate_limits(RateLimits {
            per_client: Some(Rate {
                per_second: 1,
                burst: 2,
            }),
            ..RateLimits::none()
        })
    })
    .await;
    let t = proof(&alice());
    get(&h.layer, "/app", Some(&t)).await;
    get(&h.layer, "/app", Some(&t)).await;
    get(&h.layer, "/app", None).await;
    get(&h.layer, "/app", Some(&proof(&node()))).await;
    get(&h.layer, "/app", Some(&proof(&other_account()))).await;
    challenge(&h.layer).await;
    let tmp = std::env::temp_dir().join(format!("iam-join-missing-{}", std::process::id()));
    assert!(h.layer.reload_policy(&tmp).is_err());
    provider.force_flush().unwrap();
    let names: std::collections::BTreeSet<String> = exporter
        .get_finished_metrics()
        .unwrap()
        .iter()
        .flat_map(|rm| rm.scope_metrics())
        .flat_map(|sm| sm.metrics())
        .map(|m| m.name().to_owned())
        .collect();
    for expected in [
        "iam_join_requests_total",
        "iam_join_verify_duration_seconds",
        "iam_join_sts_requests_total",
        "iam_join_sts_duration_seconds",
        "iam_join_cache_lookups_total",
        "iam_join_cache_entries",
        "iam_join_rate_limited_total",
        "iam_join_challenges_total",
        "iam_join_policy_reloads_total",
    ] {
        assert!(
            names.contains(expected),
            "{expected} missing from {names:?}"
        );
    }
}

#[tokio::test]
async fn builder_rejects_bad_configuration_with_typed_errors() {
    use iam_join_tower::BuildError;
    assert!(matches!(
        IamJoinLayer::builder().build(),
        Err(BuildError::MissingPolicy)
    ));
    assert!(matches!(
        IamJoinLayer::builder()
            .policy(seed_policy())
            .prefix("no-slash")
            .build(),
        Err(BuildError::BadPrefix(_))
    ));
    assert!(matches!(
        IamJoinLayer::builder()
            .policy(seed_policy())
            .challenges(false)
            .build(),
        Err(BuildError::NoBinding)
    ));
    assert!(matches!(
        IamJoinLayer::builder()
            .policy(seed_policy())
            .sts_override("sts.amazonaws.com", "ftp://x")
            .build(),
        Err(BuildError::BadOverride(_))
    ));
    assert!(matches!(
        IamJoinLayer::builder()
            .policy(seed_policy())
            .extra_regions(["Bad Region"])
            .build(),
        Err(BuildError::BadRegion(_))
    ));
}

/// Token names and audiences the builder must judge exactly as core's `TokenName` and
/// `Audience` do (the proxy's config has the same table): one rule, one place.
const NAME_SPELLINGS: &[&str] = &[
    "iam-token",
    "bot:ci",
    "ci@example.com",
    "a.b_c-d",
    "",
    "has space",
    " lead",
    "trail ",
    "tab\there",
    "slash/no",
    "caf\u{e9}",
    "x\n",
];

#[tokio::test]
async fn builder_judges_token_names_and_audiences_by_cores_rule() {
    use iam_join_core::{Audience, TokenName};
    use iam_join_tower::BuildError;
    let long = "a".repeat(TokenName::MAX_LEN + 1);
    let max = "a".repeat(TokenName::MAX_LEN);
    for name in NAME_SPELLINGS
        .iter()
        .copied()
        .chain([long.as_str(), max.as_str()])
    {
        let built = IamJoinLayer::builder()
            .policy(seed_policy())
            .default_token(name)
            .build();
        assert_eq!(
            built.is_ok(),
            name.parse::<TokenName>().is_ok(),
            "default_token {name:?}"
        );
        if built.is_err() {
            assert!(
                matches!(built, Err(BuildError::BadTokenName(_))),
                "{name:?}"
            );
        }
        let built = IamJoinLayer::builder()
            .policy(seed_policy())
            .audience(name)
            .build();
        assert_eq!(
            built.is_ok(),
            name.parse::<Audience>().is_ok(),
            "audience {name:?}"
        );
    }
    assert!(
        IamJoinLayer::builder()
            .policy(seed_policy())
            .default_token("bot:ci")
            .build()
            .is_ok()
    );
}

#[tokio::test]
async fn coalesced_requests_are_not_charged_to_the_per_client_limit() {
    let h = harness(|b| b.rate_limits(RateLimits::default())).await;
    h.emulator.set_latency(Duration::from_millis(100));
    let t = Arc::new(proof(&node()));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..500 {
        let (layer, t) = (h.layer.clone(), Arc::clone(&t));
        tasks.spawn(async move { get(&layer, "/app", Some(&t)).await.status });
    }
    let mut ok = 0;
    while let Some(s) = tasks.join_next().await {
        if s.unwrap() == StatusCode::OK {
            ok += 1;
        }
    }
    assert_eq!(
        ok, 500,
        "one client, one proof: only the STS call is charged"
    );
    assert_eq!(h.emulator.calls(), 1);
}

#[tokio::test]
async fn a_reused_audience_proof_is_still_refused_on_a_challenge_path() {
    let h = harness(|b| b.challenge_paths(["/join"])).await;
    let t = proof(&alice());
    assert_eq!(get(&h.layer, "/app", Some(&t)).await.status, StatusCode::OK);
    assert_eq!(get(&h.layer, "/app", Some(&t)).await.status, StatusCode::OK);
    let r = get(&h.layer, "/join", Some(&t)).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "binding_missing")
    );
    let r = send(
        &h.layer,
        request("/app", Some(&t))
            .header("x-iam-join-token", "other-account")
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(
        r.code(),
        "not_allowed",
        "the policy is applied on every hit"
    );
}
