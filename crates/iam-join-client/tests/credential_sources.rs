//! Proofs from each source of the AWS default credential chain, through the `iam-join` binary
//! (a child process per test, so environment variables stay per test): each proof verifies at the
//! STS emulator as the identity the source holds, is admitted by the real layer
//! (`IamJoinLayer` on 127.0.0.1), and `iam-join whoami` prints that identity.
#![cfg(all(feature = "cli", feature = "aws-config"))]

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use iam_join_client::{SignedStsRequestExt, decode_proof_token};
use sts_emulator::{TestIdentity, default_identities};
use tokio::net::TcpListener;

use common::{
    AUDIENCE, TestVerifier, assert_is_identity, assert_no_secrets, iam_join, run, send_to_app,
    single_line, start_verifier, verify_at_emulator, whoami_json,
};

fn secrets(id: &TestIdentity) -> Vec<&str> {
    let mut s = vec![id.secret_access_key.as_str()];
    s.extend(id.session_token.as_deref());
    s
}

/// Adds `whoami --proxy <verifier> --audience <AUDIENCE> --json <extra>` to `cmd` (which
/// carries the credential source), runs it and returns the printed identity, checking that it
/// is `identity` and that nothing secret leaked.
async fn whoami_with_audience(
    mut cmd: Command,
    extra: &[&str],
    verifier: &TestVerifier,
    identity: &TestIdentity,
) -> serde_json::Value {
    cmd.args([
        "whoami",
        "--proxy",
        &verifier.url(),
        "--audience",
        AUDIENCE,
        "--json",
    ])
    .args(extra);
    let out = run(cmd).await;
    assert_no_secrets(&out, &secrets(identity), None);
    let v = whoami_json(&out);
    assert_is_identity(&v, identity);
    assert_eq!(v["binding"], "audience", "{v}");
    assert_eq!(v["token"], "iam-token", "{v}");
    v
}

#[tokio::test]
async fn proof_from_environment_credentials_verifies_as_that_identity() {
    let verifier = start_verifier(AUDIENCE).await;
    let home = tempfile::tempdir().unwrap();
    let node = &default_identities()[1];
    let env_credentials = || {
        let mut cmd = iam_join(home.path());
        cmd.env("AWS_ACCESS_KEY_ID", &node.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &node.secret_access_key)
            .env("AWS_SESSION_TOKEN", node.session_token.as_deref().unwrap())
            .env("AWS_REGION", "us-west-2");
        cmd
    };
    let mut cmd = env_credentials();
    cmd.args(["token", "--audience", AUDIENCE]);
    let out = run(cmd).await;
    let token = single_line(&out);
    assert_no_secrets(&out, &secrets(node), Some(&token));
    let req = decode_proof_token(&token).unwrap();
    assert_eq!(req.host(), Some("sts.us-west-2.amazonaws.com"));
    let answer = verify_at_emulator(&verifier.sts, &token).await;
    assert_eq!(answer.identity(), (node.account.clone(), node.arn.clone()));
    // The layer admits it and hands the application that identity.
    assert_eq!(
        send_to_app(&verifier, "/app", &token).await,
        (200, node.arn.clone())
    );

    let v = whoami_with_audience(env_credentials(), &[], &verifier, node).await;
    assert_eq!(v["region"], "us-west-2", "{v}");
}

#[tokio::test]
async fn proof_from_a_shared_files_profile_verifies_as_that_identity() {
    let verifier = start_verifier(AUDIENCE).await;
    let sts = &verifier.sts;
    let home = tempfile::tempdir().unwrap();
    let alice = &default_identities()[0];
    let node = &default_identities()[1];
    let credentials = home.path().join("credentials");
    let config = home.path().join("config");
    std::fs::write(
        &credentials,
        format!(
            "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n\n[node]\naws_access_key_id = {}\naws_secret_access_key = {}\naws_session_token = {}\n",
            alice.access_key_id,
            alice.secret_access_key,
            node.access_key_id,
            node.secret_access_key,
            node.session_token.as_deref().unwrap()
        ),
    )
    .unwrap();
    std::fs::write(&config, "[profile node]\nregion = eu-west-1\n").unwrap();
    let shared_files = || {
        let mut cmd = iam_join(home.path());
        cmd.env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
            .env("AWS_CONFIG_FILE", &config);
        cmd
    };

    // AWS_PROFILE selects the profile; its region comes from the config file.
    let mut cmd = shared_files();
    cmd.env("AWS_PROFILE", "node")
        .args(["token", "--audience", AUDIENCE, "--form", "get"]);
    let out = run(cmd).await;
    let token = single_line(&out);
    assert_no_secrets(&out, &secrets(node), Some(&token));
    let req = decode_proof_token(&token).unwrap();
    assert_eq!(req.host(), Some("sts.eu-west-1.amazonaws.com"));
    assert_eq!(
        verify_at_emulator(sts, &token).await.identity(),
        (node.account.clone(), node.arn.clone())
    );
    assert_eq!(
        send_to_app(&verifier, "/app", &token).await,
        (200, node.arn.clone())
    );
    let mut cmd = shared_files();
    cmd.env("AWS_PROFILE", "node");
    let v = whoami_with_audience(cmd, &[], &verifier, node).await;
    assert_eq!(v["region"], "eu-west-1", "{v}");

    // --profile wins over environment credentials, like `aws --profile`.
    let profile_over_env = || {
        let mut cmd = shared_files();
        cmd.env("AWS_ACCESS_KEY_ID", &alice.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &alice.secret_access_key);
        cmd
    };
    let mut cmd = profile_over_env();
    cmd.args([
        "token",
        "--audience",
        "a",
        "--profile",
        "node",
        "--region",
        "us-east-2",
    ]);
    let token = single_line(&run(cmd).await);
    assert_eq!(
        decode_proof_token(&token).unwrap().host(),
        Some("sts.us-east-2.amazonaws.com")
    );
    assert_eq!(
        verify_at_emulator(sts, &token).await.identity(),
        (node.account.clone(), node.arn.clone())
    );
    let v = whoami_with_audience(
        profile_over_env(),
        &["--profile", "node", "--region", "us-east-2"],
        &verifier,
        node,
    )
    .await;
    assert_eq!(v["region"], "us-east-2", "{v}");

    // Without AWS_PROFILE, the default profile is used.
    let mut cmd = shared_files();
    cmd.env("AWS_REGION", "us-west-2")
        .args(["token", "--audience", "a"]);
    let token = single_line(&run(cmd).await);
    assert_eq!(
        verify_at_emulator(sts, &token).await.identity(),
        (alice.account.clone(), alice.arn.clone())
    );
    let mut cmd = shared_files();
    cmd.env("AWS_REGION", "us-west-2");
    whoami_with_audience(cmd, &[], &verifier, alice).await;
}

/// Counts what the fake instance metadata service saw.
#[derive(Default)]
struct ImdsStats {
    tokens_issued: AtomicU64,
    credential_reads: AtomicU64,
    refused_without_token: AtomicU64,
}

const IMDS_TOKEN: &str = "imds-session-token-for-tests";
const ROLE: &str = "teleport-node-role";

/// An IMDSv2 on 127.0.0.1: `PUT /latest/api/token` (with the TTL header) gives a token; every
/// GET must carry it. Serves the role name, the role's credentials and the region.
async fn start_fake_imds(
    identity: TestIdentity,
    region: &'static str,
) -> (SocketAddr, Arc<ImdsStats>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stats = Arc::new(ImdsStats::default());
    let shared = stats.clone();
    let identity = Arc::new(identity);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let stats = shared.clone();
            let identity = identity.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let answer = imds(&req, &identity, region, &stats);
                    async move { Ok::<_, Infallible>(answer) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, stats)
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .body(Full::new(Bytes::from(body)))
        .expect("response")
}

fn imds(
    req: &Request<Incoming>,
    identity: &TestIdentity,
    region: &str,
    stats: &ImdsStats,
) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if req.method() == http::Method::PUT && path == "/latest/api/token" {
        if !req
            .headers()
            .contains_key("x-aws-ec2-metadata-token-ttl-seconds")
        {
            return text(StatusCode::BAD_REQUEST, String::new());
        }
        stats.tokens_issued.fetch_add(1, Ordering::SeqCst);
        let mut response = text(StatusCode::OK, IMDS_TOKEN.to_owned());
        response.headers_mut().insert(
            "x-aws-ec2-metadata-token-ttl-seconds",
            http::HeaderValue::from_static("21600"),
        );
        return response;
    }
    if req.method() != http::Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, String::new());
    }
    let has_token = req
        .headers()
        .get("x-aws-ec2-metadata-token")
        .is_some_and(|v| v == IMDS_TOKEN);
    if !has_token {
        stats.refused_without_token.fetch_add(1, Ordering::SeqCst);
        return text(StatusCode::UNAUTHORIZED, String::new());
    }
    let role_path = format!("/latest/meta-data/iam/security-credentials/{ROLE}");
    match path {
        "/latest/meta-data/iam/security-credentials/" => text(StatusCode::OK, ROLE.to_owned()),
        "/latest/meta-data/placement/region" => text(StatusCode::OK, region.to_owned()),
        p if p == role_path => {
            stats.credential_reads.fetch_add(1, Ordering::SeqCst);
            let body = serde_json::json!({
                "Code": "Success",
                "LastUpdated": "2026-01-01T00:00:00Z",
                "Type": "AWS-HMAC",
                "AccessKeyId": identity.access_key_id,
                "SecretAccessKey": identity.secret_access_key,
                "Token": identity.session_token,
                "Expiration": "2099-01-01T00:00:00Z",
            });
            text(StatusCode::OK, body.to_string())
        }
        _ => text(StatusCode::NOT_FOUND, String::new()),
    }
}

#[tokio::test]
async fn proof_from_instance_metadata_verifies_as_the_instance_role() {
    let verifier = start_verifier(AUDIENCE).await;
    let node = default_identities()[1].clone();
    let (imds_addr, stats) = start_fake_imds(node.clone(), "us-east-2").await;
    let home = tempfile::tempdir().unwrap();
    let empty_credentials = home.path().join("credentials");
    let empty_config = home.path().join("config");
    std::fs::write(&empty_credentials, "").unwrap();
    std::fs::write(&empty_config, "").unwrap();
    let instance_metadata = || {
        let mut cmd = iam_join(home.path());
        cmd.env_remove("AWS_EC2_METADATA_DISABLED")
            .env(
                "AWS_EC2_METADATA_SERVICE_ENDPOINT",
                format!("http://{imds_addr}"),
            )
            .env("AWS_SHARED_CREDENTIALS_FILE", &empty_credentials)
            .env("AWS_CONFIG_FILE", &empty_config);
        cmd
    };

    // A proof for a challenge the layer issued.
    let challenge = verifier
        .client()
        .fetch_challenge()
        .await
        .expect("challenge")
        .challenge;
    let mut cmd = instance_metadata();
    cmd.args([
        "token",
        "--challenge",
        &challenge,
        "--form",
        "get",
        "--expires",
        "60",
    ]);
    let out = run(cmd).await;
    let token = single_line(&out);
    assert_no_secrets(&out, &secrets(&node), Some(&token));

    let req = decode_proof_token(&token).unwrap();
    // The region came from instance metadata too.
    assert_eq!(req.host(), Some("sts.us-east-2.amazonaws.com"));
    assert!(req.url.contains("X-Amz-Expires=60&"));
    assert_eq!(req.header("x-teleport-challenge"), Some(challenge.as_str()));
    assert_eq!(
        verify_at_emulator(&verifier.sts, &token).await.identity(),
        (node.account.clone(), node.arn.clone())
    );
    assert_eq!(
        send_to_app(&verifier, "/app", &token).await,
        (200, node.arn.clone())
    );

    // `whoami --challenge` end to end: challenge, instance-role proof, verified identity.
    let mut cmd = instance_metadata();
    cmd.args([
        "whoami",
        "--proxy",
        &verifier.url(),
        "--challenge",
        "--json",
        "--form",
        "get",
        "--expires",
        "60",
    ]);
    let out = run(cmd).await;
    assert_no_secrets(&out, &secrets(&node), None);
    let v = whoami_json(&out);
    assert_is_identity(&v, &node);
    assert_eq!(v["binding"], "challenge", "{v}");
    assert_eq!(v["region"], "us-east-2", "{v}");

    assert!(stats.tokens_issued.load(Ordering::SeqCst) >= 2);
    assert!(stats.credential_reads.load(Ordering::SeqCst) >= 2);
    assert_eq!(stats.refused_without_token.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn no_credentials_anywhere_is_an_error_listing_the_sources_tried() {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = iam_join(home.path());
    cmd.args(["token", "--audience", "a", "--region", "us-west-2"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for source in [
        "no AWS credentials found",
        "AWS_ACCESS_KEY_ID",
        "AWS_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS",
        "IMDSv2",
    ] {
        assert!(stderr.contains(source), "missing {source:?} in: {stderr}");
    }
}

#[tokio::test]
async fn a_missing_profile_is_an_error_naming_it() {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = iam_join(home.path());
    cmd.args([
        "token",
        "--audience",
        "a",
        "--profile",
        "nope",
        "--region",
        "us-west-2",
    ]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("profile \"nope\""), "{stderr}");
}
