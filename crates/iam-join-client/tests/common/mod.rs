//! Shared test helpers: send a proof to the STS emulator as a verifier would, a minimal
//! verifier for `whoami`, and running the `iam-join` binary with a controlled environment.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use iam_join_client::{ProofFormat, SignedStsRequest, SignedStsRequestExt, decode_proof_token};
use sts_emulator::EmulatorHandle;
use tokio::net::TcpListener;

/// What STS (the emulator) said about a request.
#[derive(Debug)]
pub(crate) struct StsAnswer {
    pub(crate) status: u16,
    pub(crate) body: String,
}

impl StsAnswer {
    /// `(Account, Arn)` from a 200 JSON answer.
    pub(crate) fn identity(&self) -> (String, String) {
        assert_eq!(self.status, 200, "STS refused the proof: {}", self.body);
        let v: serde_json::Value = serde_json::from_str(&self.body).expect("JSON answer");
        let result = &v["GetCallerIdentityResponse"]["GetCallerIdentityResult"];
        (
            result["Account"].as_str().expect("Account").to_owned(),
            result["Arn"].as_str().expect("Arn").to_owned(),
        )
    }
}

/// Sends a decoded proof to the emulator the way a verifier does: connect to the emulator, keep
/// the signed `Host`, send the proof's headers and body plus `accept: application/json`.
pub(crate) async fn send_signed(sts: SocketAddr, req: &SignedStsRequest) -> StsAnswer {
    let host = req.host().expect("https URL");
    let path = req.path_and_query().expect("path");
    let mut builder = Request::builder()
        .method(req.method.as_str())
        .uri(format!("http://{sts}{path}"))
        .header("host", host)
        .header("accept", "application/json");
    for (name, value) in &req.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let request = builder
        .body(Full::new(Bytes::from(req.body.clone())))
        .expect("request");
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let response = client.request(request).await.expect("emulator reachable");
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    StsAnswer {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// Decodes an `iam-join-v1.` token and sends it to the emulator.
pub(crate) async fn verify_at_emulator(sts: &EmulatorHandle, token: &str) -> StsAnswer {
    let req = decode_proof_token(token).expect("decodable proof");
    send_signed(sts.addr(), &req).await
}

/// Sends a presigned GET URL (e.g. from a `k8s-aws-v1.` token) with extra headers.
pub(crate) async fn send_presigned(
    sts: &EmulatorHandle,
    url: &str,
    headers: &[(&str, &str)],
) -> StsAnswer {
    let req = SignedStsRequest {
        format: ProofFormat::K8sAwsV1,
        method: "GET".into(),
        url: url.to_owned(),
        headers: headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect(),
        body: String::new(),
    };
    send_signed(sts.addr(), &req).await
}

/// A minimal verifier with the layer's endpoints: `POST /v1/iam-join/challenge` hands out
/// `challenge-<n>`, `GET /v1/iam-join/whoami` forwards the bearer proof to the emulator and
/// answers with the identity (or the §8 error shape). Token name `unknown` gets 403
/// `unknown_token`.
pub(crate) async fn start_fake_verifier(sts: SocketAddr, audience: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let issued = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let issued = issued.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let issued = issued.clone();
                    async move { Ok::<_, Infallible>(fake_verifier(req, sts, audience, &issued).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(value.to_string())))
        .expect("response")
}

fn refuse(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    json(
        status,
        &serde_json::json!({"error": {"code": code, "message": message}}),
    )
}

async fn fake_verifier(
    req: Request<Incoming>,
    sts: SocketAddr,
    audience: &str,
    issued: &std::sync::atomic::AtomicU64,
) -> Response<Full<Bytes>> {
    match (req.method().as_str(), req.uri().path()) {
        ("POST", "/v1/iam-join/challenge") => {
            let n = issued.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            json(
                StatusCode::OK,
                &serde_json::json!({"challenge": format!("challenge-{n}"),
                    "header": "x-teleport-challenge", "expires_in_seconds": 60}),
            )
        }
        ("GET", "/v1/iam-join/whoami") => {
            let token_name = req
                .headers()
                .get("x-iam-join-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("default-token")
                .to_owned();
            let Some(proof) = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
            else {
                return refuse(StatusCode::UNAUTHORIZED, "missing_proof", "no proof");
            };
            let Ok(signed) = decode_proof_token(proof) else {
                return refuse(StatusCode::BAD_REQUEST, "malformed_proof", "bad proof");
            };
            let binding = if let Some(a) = signed.header("x-iam-join-audience") {
                if a != audience {
                    return refuse(
                        StatusCode::UNAUTHORIZED,
                        "audience_mismatch",
                        "wrong audience",
                    );
                }
                "audience"
            } else if signed.header("x-teleport-challenge").is_some() {
                "challenge"
            } else {
                return refuse(StatusCode::BAD_REQUEST, "binding_missing", "no binding");
            };
            if token_name == "unknown" {
                return refuse(
                    StatusCode::FORBIDDEN,
                    "unknown_token",
                    "no token named unknown",
                );
            }
            let answer = send_signed(sts, &signed).await;
            if answer.status != 200 {
                return refuse(StatusCode::UNAUTHORIZED, "sts_rejected", &answer.body);
            }
            let (account, arn) = answer.identity();
            let region = signed
                .host()
                .unwrap_or_default()
                .split('.')
                .nth(1)
                .unwrap_or_default()
                .to_owned();
            json(
                StatusCode::OK,
                &serde_json::json!({"account": account, "arn": arn, "user_id": "AIDAFAKE",
                    "principal": "user", "region": region, "token": token_name,
                    "roles": ["Node"], "binding": binding, "expires_at": "2099-01-01T00:00:00Z"}),
            )
        }
        _ => refuse(StatusCode::NOT_FOUND, "not_found", "no such endpoint"),
    }
}

/// The `iam-join` binary with an empty environment: `HOME` is `home` (so no real `~/.aws` is
/// read) and instance metadata is off unless the caller turns it back on.
pub(crate) fn iam_join(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_iam-join"));
    cmd.env_clear()
        .env("HOME", home)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", home.join("no-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("no-credentials"));
    cmd
}

/// Runs a command without blocking the async runtime.
pub(crate) async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("iam-join runs"))
        .await
        .expect("join")
}

/// stdout as text, asserting it is exactly one line.
pub(crate) fn single_line(out: &Output) -> String {
    let stdout = String::from_utf8(out.stdout.clone()).expect("utf-8 stdout");
    assert!(
        out.status.success(),
        "iam-join failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "stdout is not one line: {stdout:?}");
    lines[0].to_owned()
}

/// Asserts none of `secrets` appears in stdout or stderr (except `allowed_stdout`, the token
/// the user asked for, which contains the session token by design).
pub(crate) fn assert_no_secrets(out: &Output, secrets: &[&str], allowed_stdout: Option<&str>) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stdout = allowed_stdout.map_or(stdout.to_string(), |t| stdout.replace(t, ""));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for secret in secrets {
        assert!(!stdout.contains(secret), "stdout leaks a secret");
        assert!(!stderr.contains(secret), "stderr leaks a secret: {stderr}");
    }
}
