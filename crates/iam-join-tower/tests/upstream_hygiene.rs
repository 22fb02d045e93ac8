//! What reaches the inner service (upstream): never a forged identity header in any spelling,
//! never a proof, and no way around public or challenge-only paths by path tricks.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::time::SystemTime;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use iam_join_client::{Binding, ProofBuilder, SigningForm, sts_endpoint};
use iam_join_core::policy::TokenPolicy;
use iam_join_tower::{ClientAddr, IamJoinLayer, RateLimits};
use sts_emulator::{Emulator, EmulatorHandle, default_identities};
use tower::{Layer, ServiceExt, service_fn};

const AUDIENCE: &str = "teleport.example.com";

async fn layer() -> (EmulatorHandle, IamJoinLayer) {
    let emulator = Emulator::start().await.unwrap();
    let policy = TokenPolicy::from_yaml_str(
        include_str!("../../iam-join-core/tests/fixtures/token.yaml"),
        "seed",
    )
    .unwrap();
    let layer = IamJoinLayer::builder()
        .audience(AUDIENCE)
        .default_token("iam-token")
        .policy(policy)
        .identity_headers(true)
        .public_paths(["/public/*"])
        .challenge_paths(["/join"])
        .sts_override_all(emulator.url())
        .rate_limits(RateLimits::none())
        .build()
        .unwrap();
    (emulator, layer)
}

fn proof() -> String {
    ProofBuilder::new(
        sts_endpoint("us-west-2", false).unwrap(),
        Binding::Audience(AUDIENCE.into()),
    )
    .form(SigningForm::Post)
    .time(SystemTime::now())
    .build(&default_identities()[0].credentials())
    .unwrap()
}

/// Sends `req` through the layer; returns the status and the headers the inner service saw.
async fn send(
    layer: &IamJoinLayer,
    req: Request<Full<Bytes>>,
) -> (StatusCode, Vec<(String, String)>) {
    let inner = service_fn(|req: Request<Full<Bytes>>| async move {
        let seen: Vec<String> = req
            .headers()
            .iter()
            .map(|(n, v)| format!("{}={}", n, v.to_str().unwrap_or("")))
            .collect();
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(seen.join("\n")))))
    });
    let resp = layer.layer(inner).oneshot(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let seen = std::str::from_utf8(&body)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    (status, seen)
}

fn req(path: &str) -> http::request::Builder {
    Request::builder()
        .uri(path)
        .extension(ClientAddr("127.0.0.1:40000".parse().unwrap()))
}

#[tokio::test]
async fn underscore_spellings_of_identity_headers_are_removed() {
    let (_e, layer) = layer().await;
    let (status, seen) = send(
        &layer,
        req("/app")
            .header("authorization", format!("Bearer {}", proof()))
            .header("x_iam_join_account", "999999999999")
            .header("X_IAM_JOIN_ROLES", "Admin")
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        seen.iter().all(|(n, _)| !n.starts_with("x_iam_join")),
        "{seen:?}"
    );
    assert!(seen.contains(&("x-iam-join-account".into(), "111111111111".into())));
}

#[tokio::test]
async fn connection_cannot_name_identity_headers_as_hop_by_hop() {
    let (_e, layer) = layer().await;
    let (status, seen) = send(
        &layer,
        req("/app")
            .header("authorization", format!("Bearer {}", proof()))
            .header(
                "connection",
                "keep-alive, x-iam-join-account, X_IAM_JOIN_ARN",
            )
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let connection: Vec<&str> = seen
        .iter()
        .filter(|(n, _)| n == "connection")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(connection, ["keep-alive"]);
}

#[tokio::test]
async fn a_proof_sent_to_a_public_path_is_not_forwarded() {
    let (_e, layer) = layer().await;
    let (status, seen) = send(
        &layer,
        req("/public/health")
            .header("authorization", format!("Bearer {}", proof()))
            .header("authorization", "Bearer upstream-own-token")
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let auth: Vec<&str> = seen
        .iter()
        .filter(|(n, _)| n == "authorization")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(auth, ["Bearer upstream-own-token"]);
}

#[tokio::test]
async fn path_parameters_never_make_a_path_public() {
    let (_e, layer) = layer().await;
    for path in ["/public/..;/admin", "/public/x;a=b", "/public/%3b/admin"] {
        let (status, _) = send(&layer, req(path).body(Full::default()).unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
    }
}

#[tokio::test]
async fn challenge_paths_match_whatever_the_case_or_trailing_slash() {
    let (_e, layer) = layer().await;
    let t = proof();
    for path in ["/join", "/join/", "/JOIN", "/Join/", "/join;x=1", "/./join"] {
        let (status, _) = send(
            &layer,
            req(path)
                .header("authorization", format!("Bearer {t}"))
                .body(Full::default())
                .unwrap(),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{path} must need a challenge"
        );
    }
    let (status, _) = send(
        &layer,
        req("/joined")
            .header("authorization", format!("Bearer {t}"))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "/joined is another path");
}

#[tokio::test]
async fn verify_endpoint_applies_challenge_paths_to_the_original_uri() {
    let (_e, layer) = layer().await;
    let t = proof();
    for (header, uri, expected) in [
        ("x-original-uri", "/join?next=1", StatusCode::BAD_REQUEST),
        ("x-forwarded-uri", "/JOIN/", StatusCode::BAD_REQUEST),
        ("x-original-uri", "/app", StatusCode::OK),
    ] {
        let (status, _) = send(
            &layer,
            req("/v1/iam-join/verify")
                .header("authorization", format!("Bearer {t}"))
                .header(header, uri)
                .body(Full::default())
                .unwrap(),
        )
        .await;
        assert_eq!(status, expected, "{header}: {uri}");
    }
}
