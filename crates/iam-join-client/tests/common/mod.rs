//! Shared test helpers: send a proof to the STS emulator as a verifier would, the real
//! verifying layer (`IamJoinLayer`) on 127.0.0.1 for `whoami`, and running the `iam-join`
//! binary with a controlled environment.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use iam_join_client::{
    ProofFormat, SignedStsRequest, SignedStsRequestExt, VerifierClient, decode_proof_token,
};
use iam_join_core::VerifiedIdentity;
use iam_join_testkit::policy::seed_policy;
use iam_join_tower::{ClientAddr, IamJoinLayer, RateLimits};
use sts_emulator::{Emulator, EmulatorHandle, TestIdentity};
use tokio::net::TcpListener;
use tower::{Layer, ServiceBuilder};

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

/// The audience the test verifier is configured with.
pub(crate) const AUDIENCE: &str = "teleport.example.com";

/// The real verifier: `iam_join_tower::IamJoinLayer` (seed policy, default token `iam-token`,
/// every STS host sent to its own sts-emulator, no rate limits) around an inner service that
/// answers 200 with the ARN of the identity the layer handed it. Served by hyper-util on
/// 127.0.0.1; the accept loop stops when this is dropped.
pub(crate) struct TestVerifier {
    /// The emulator the layer sends proofs to.
    pub(crate) sts: EmulatorHandle,
    /// Where the layer listens.
    pub(crate) addr: SocketAddr,
    accept_loop: tokio::task::JoinHandle<()>,
}

impl TestVerifier {
    /// Base URL for `iam-join whoami --proxy` and [`iam_join_client::VerifierClient`].
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A client for the layer's endpoints.
    pub(crate) fn client(&self) -> VerifierClient {
        VerifierClient::new(&self.url()).expect("loopback verifier URL")
    }
}

impl Drop for TestVerifier {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

/// Starts an emulator and the layer in front of it, bound to `audience`.
pub(crate) async fn start_verifier(audience: &str) -> TestVerifier {
    let sts = Emulator::start().await.expect("emulator");
    let policy = seed_policy();
    let layer = IamJoinLayer::builder()
        .audience(audience)
        .default_token("iam-token")
        .policy(policy)
        .sts_override_all(sts.url())
        .sts_timeouts(Duration::from_secs(2), Duration::from_secs(5))
        .rate_limits(RateLimits::none())
        .build()
        .expect("layer");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accept_loop = tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            let service = ServiceBuilder::new()
                .map_request(move |mut req: Request<Incoming>| {
                    req.extensions_mut().insert(ClientAddr(peer));
                    req
                })
                .service(layer.layer(tower::service_fn(admitted)));
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                    .await;
            });
        }
    });
    TestVerifier {
        sts,
        addr,
        accept_loop,
    }
}

/// The inner service: reached only by admitted requests; answers with the verified ARN.
async fn admitted(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let arn = req
        .extensions()
        .get::<VerifiedIdentity>()
        .map_or_else(String::new, |id| id.identity.arn().to_owned());
    Ok(Response::new(Full::new(Bytes::from(arn))))
}

/// Sends `proof` as `Authorization: Bearer` to `path` behind the layer (not one of its own
/// endpoints): `(status, body)`, where an admitted request's body is the verified ARN.
pub(crate) async fn send_to_app(verifier: &TestVerifier, path: &str, proof: &str) -> (u16, String) {
    let request = Request::builder()
        .uri(format!("{}{path}", verifier.url()))
        .header("authorization", format!("Bearer {proof}"))
        .body(Full::new(Bytes::new()))
        .expect("request");
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
        .await
        .expect("the layer answers in time")
        .expect("layer reachable");
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The JSON `iam-join whoami --json` printed, asserting it succeeded.
pub(crate) fn whoami_json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "iam-join whoami failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

/// Asserts a `whoami` answer names exactly `identity` as the emulator knows it.
pub(crate) fn assert_is_identity(whoami: &serde_json::Value, identity: &TestIdentity) {
    assert_eq!(whoami["account"], identity.account.as_str(), "{whoami}");
    assert_eq!(whoami["arn"], identity.arn.as_str(), "{whoami}");
    assert_eq!(whoami["user_id"], identity.user_id.as_str(), "{whoami}");
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
