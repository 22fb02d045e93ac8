//! Issue 10 regressions through the whole layer (sts-emulator behind it): every spelling of a
//! challenge path needs a challenge, also as `/verify` names it; every bearer spelling of a
//! proof is read and never reaches the upstream; a shared challenge key needs a shared store.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use iam_join_client::{Binding, ProofBuilder, SigningForm, sts_endpoint};
use iam_join_core::challenge::ChallengeKey;
use iam_join_testkit::identities::node;
use iam_join_testkit::policy::seed_policy;
use iam_join_tower::sts::BoxFuture;
use iam_join_tower::{
    BuildError, ClientAddr, IamJoinLayer, IamJoinLayerBuilder, MemoryReplayStore, RateLimits,
    ReplayStore, ReplayStoreError,
};
use sts_emulator::{Emulator, EmulatorHandle};
use tower::{Layer, ServiceExt, service_fn};

const AUDIENCE: &str = "teleport.example.com";

/// Spellings of (something under) `/v1/webapi/host/` that an upstream may normalise onto it.
const HOST_SPELLINGS: &[&str] = &[
    "/v1/webapi/host/",
    "/v1/webapi/host//",
    "/V1/WebApi/Host/",
    "//v1/webapi/host/",
    "/x/../v1/webapi/host/",
    "/v1/webapi/host",
    "/v1/webapi/%68ost/",
    "/%76%31/webapi/host/join",
    "/x/%2e%2e/v1/webapi/host/",
    "/v1/webapi/host/join",
    "/v1/webapi/host/./join",
];

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
        .sts_override_all(emulator.url())
        .rate_limits(RateLimits::none());
    let layer = configure(builder).build().unwrap();
    Harness { emulator, layer }
}

fn proof(binding: Binding) -> String {
    ProofBuilder::new(sts_endpoint("us-west-2", false).unwrap(), binding)
        .form(SigningForm::Post)
        .time(SystemTime::now())
        .build(&node().credentials())
        .unwrap()
}

fn audience_proof() -> String {
    proof(Binding::Audience(AUDIENCE.into()))
}

/// What came back, and what the upstream saw (`None` if it was not called).
struct Outcome {
    status: StatusCode,
    code: String,
    upstream_headers: Option<Vec<(String, Vec<u8>)>>,
}

impl Outcome {
    fn upstream_saw(&self, needle: &str) -> bool {
        let needle = needle.to_ascii_lowercase();
        self.upstream_headers.iter().flatten().any(|(_, v)| {
            String::from_utf8_lossy(v)
                .to_ascii_lowercase()
                .contains(&needle)
        })
    }

    fn upstream_values(&self, name: &str) -> Vec<Vec<u8>> {
        self.upstream_headers
            .iter()
            .flatten()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

async fn send(layer: &IamJoinLayer, req: http::request::Builder) -> Outcome {
    let seen = Arc::new(std::sync::Mutex::new(None));
    let calls = Arc::new(AtomicUsize::new(0));
    let inner = {
        let (seen, calls) = (Arc::clone(&seen), Arc::clone(&calls));
        service_fn(move |req: Request<Full<Bytes>>| {
            let (seen, calls) = (Arc::clone(&seen), Arc::clone(&calls));
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                let headers: Vec<(String, Vec<u8>)> = req
                    .headers()
                    .iter()
                    .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
                    .collect();
                *seen.lock().unwrap() = Some(headers);
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
            }
        })
    };
    let req = req
        .extension(ClientAddr("127.0.0.1:40000".parse().unwrap()))
        .body(Full::default())
        .unwrap();
    let resp = layer.layer(inner).oneshot(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let upstream_headers = seen.lock().unwrap().take();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        usize::from(upstream_headers.is_some())
    );
    Outcome {
        status,
        code: json["error"]["code"].as_str().unwrap_or("").to_owned(),
        upstream_headers,
    }
}

fn get(path: &str) -> http::request::Builder {
    Request::builder().uri(path)
}

async fn challenge(layer: &IamJoinLayer) -> String {
    let resp = layer
        .layer(service_fn(|_: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
        }))
        .oneshot(
            Request::post("/v1/iam-join/challenge")
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    json["challenge"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_audience_proof_is_refused_on_every_spelling_of_a_challenge_prefix() {
    let h = harness(|b| b.challenge_paths(["/v1/webapi/host/*"])).await;
    let t = audience_proof();
    for path in HOST_SPELLINGS {
        let r = send(
            &h.layer,
            get(path).header("authorization", format!("Bearer {t}")),
        )
        .await;
        assert_eq!(
            (r.status, r.code.as_str()),
            (StatusCode::BAD_REQUEST, "binding_missing"),
            "{path} must need a challenge"
        );
        assert!(r.upstream_headers.is_none(), "{path} reached the upstream");
    }
    let r = send(
        &h.layer,
        get("/v1/webapi/hostile").header("authorization", format!("Bearer {t}")),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "a sibling path is not a challenge path"
    );
    assert_eq!(h.emulator.calls(), 1);
}

#[tokio::test]
async fn a_challenge_bound_proof_is_admitted_on_the_challenge_prefix() {
    let h = harness(|b| b.challenge_paths(["/v1/webapi/host/*"])).await;
    let c = challenge(&h.layer).await;
    let t = proof(Binding::Challenge(c));
    let r = send(
        &h.layer,
        get("/v1/webapi/host/").header("authorization", format!("Bearer {t}")),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.code);
    assert!(!r.upstream_saw(&t));
}

#[tokio::test]
async fn verify_needs_a_challenge_for_a_challenge_path_named_in_any_way() {
    let h = harness(|b| b.challenge_paths(["/v1/webapi/host/*"])).await;
    let t = audience_proof();
    for path in HOST_SPELLINGS {
        for header in ["x-original-uri", "x-forwarded-uri"] {
            let r = send(
                &h.layer,
                get("/v1/iam-join/verify")
                    .header("authorization", format!("Bearer {t}"))
                    .header(header, *path),
            )
            .await;
            assert_eq!(r.code, "binding_missing", "{header}: {path}");
        }
        // Envoy ext_authz (HTTP service) with `path_prefix: /v1/iam-join/verify`.
        let envoy = format!("/v1/iam-join/verify{path}");
        let r = send(
            &h.layer,
            get(&envoy).header("authorization", format!("Bearer {t}")),
        )
        .await;
        assert_eq!(r.code, "binding_missing", "{envoy}");
        assert!(r.upstream_headers.is_none());
    }
    for allowed in [
        "/v1/iam-join/verify/app",
        "/v1/iam-join/verify/v1/webapi/hostile",
    ] {
        let r = send(
            &h.layer,
            get(allowed).header("authorization", format!("Bearer {t}")),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{allowed}: {}", r.code);
        assert!(r.upstream_headers.is_none(), "/verify answers itself");
    }
}

fn bearer_spellings(t: &str) -> Vec<String> {
    vec![
        format!("Bearer {t}"),
        format!("Bearer  {t}"),
        format!("Bearer\t{t}"),
        format!("bearer {t}"),
        format!("BEARER {t}"),
        format!(" Bearer {t} "),
        format!("bEaReR \t{t}\t"),
    ]
}

#[tokio::test]
async fn no_bearer_spelling_of_a_proof_reaches_a_public_path() {
    let h = harness(|b| b.public_paths(["/public/*"])).await;
    let t = audience_proof();
    for spelling in bearer_spellings(&t) {
        let r = send(
            &h.layer,
            get("/public/health")
                .header("authorization", &spelling)
                .header("authorization", "Bearer upstream-own-token"),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(!r.upstream_saw(&t), "{spelling:?} reached the upstream");
        assert_eq!(
            r.upstream_values("authorization"),
            [b"Bearer upstream-own-token".to_vec()]
        );
    }
    assert_eq!(h.emulator.calls(), 0, "public paths verify nothing");
}

#[tokio::test]
async fn every_bearer_spelling_is_verified_and_stripped_on_protected_paths() {
    let h = harness(|b| b).await;
    let t = audience_proof();
    for spelling in bearer_spellings(&t) {
        let r = send(&h.layer, get("/app").header("authorization", &spelling)).await;
        assert_eq!(r.status, StatusCode::OK, "{spelling:?}: {}", r.code);
        assert!(!r.upstream_saw(&t), "{spelling:?} reached the upstream");
    }
    let r = send(
        &h.layer,
        get("/app")
            .header("authorization", format!("Bearer {t}"))
            .header("authorization", format!("bearer  {t}")),
    )
    .await;
    assert_eq!(r.code, "malformed_proof", "two proofs");
}

/// A replay store that claims to be shared, standing in for Redis (the Redis test suite builds
/// the real one with a shared key).
struct SharedStandIn(MemoryReplayStore);

impl ReplayStore for SharedStandIn {
    fn redeem<'a>(
        &'a self,
        id: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, ReplayStoreError>> {
        self.0.redeem(id, ttl)
    }

    fn is_shared(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn a_challenge_key_needs_a_shared_replay_store() {
    let key = || ChallengeKey::from_bytes(&[7u8; 32]).unwrap();
    let builder = || {
        IamJoinLayer::builder()
            .audience(AUDIENCE)
            .policy(seed_policy())
    };
    let err = builder().challenge_key(key()).build().unwrap_err();
    assert!(
        matches!(err, BuildError::ChallengeKeyNeedsSharedStore),
        "{err}"
    );
    assert!(err.to_string().contains("shared replay store"), "{err}");
    assert!(matches!(
        builder()
            .challenge_key(key())
            .replay_store(Arc::new(MemoryReplayStore::default()))
            .build(),
        Err(BuildError::ChallengeKeyNeedsSharedStore)
    ));
    builder()
        .challenge_key(key())
        .replay_store(Arc::new(SharedStandIn(MemoryReplayStore::default())))
        .build()
        .unwrap();
    builder()
        .replay_store(Arc::new(MemoryReplayStore::default()))
        .build()
        .unwrap();
}

#[tokio::test]
async fn another_process_refuses_this_process_challenges() {
    let a = harness(|b| b).await;
    let b = harness(|b| b).await;
    let t = proof(Binding::Challenge(challenge(&a.layer).await));
    let r = send(
        &b.layer,
        get("/app").header("authorization", format!("Bearer {t}")),
    )
    .await;
    assert_eq!(
        (r.status, r.code.as_str()),
        (StatusCode::UNAUTHORIZED, "challenge_invalid")
    );
    let r = send(
        &a.layer,
        get("/app").header("authorization", format!("Bearer {t}")),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.code);
}

#[tokio::test]
async fn invalid_path_patterns_are_build_errors_naming_the_field() {
    for (public, challenge, field) in [
        (vec!["public/*"], vec![], "public_paths"),
        (vec![], vec!["/a/../b"], "challenge_paths"),
        (vec![], vec!["/a*b"], "challenge_paths"),
    ] {
        let err = IamJoinLayer::builder()
            .audience(AUDIENCE)
            .policy(seed_policy())
            .public_paths(public)
            .challenge_paths(challenge)
            .build()
            .unwrap_err();
        match err {
            BuildError::BadPathPattern { field: f, .. } => assert_eq!(f, field),
            other => panic!("{other}"),
        }
    }
}
