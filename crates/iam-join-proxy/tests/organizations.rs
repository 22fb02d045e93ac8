//! The real `iam-join-proxy` binary with an `organizations:` section: it finds its AWS
//! credentials through the standard chain (here: the environment), signs DescribeAccount /
//! ListParents with them, and admits by organization and OU. The sts-emulator plays both STS
//! and AWS Organizations and checks every SigV4 signature, so wrong credentials are refused there.
#![cfg(feature = "organizations")]

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::SystemTime;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use iam_join_client::{Binding, ProofBuilder, sts_endpoint};
use sts_emulator::{Emulator, EmulatorHandle, OrgTree, TestIdentity, default_identities};

const BIN: &str = env!("CARGO_BIN_EXE_iam-join-proxy");
const AUDIENCE: &str = "teleport.example.com";
const ROOT: &str = "r-ab12";
const OU_PROD: &str = "ou-ab12-11111111";
const OU_SANDBOX: &str = "ou-ab12-22222222";

/// Teleport's YAML: the organization, the production OU and everything under it, but not the
/// sandbox OU nested in it.
const TOKENS: &str = "\
kind: token
version: v2
metadata: {name: org-token}
spec:
  roles: [Node]
  join_method: iam
  allow:
    - aws_organization_id: o-a1b2c3d4e5
      aws_organizational_units:
        include: [ou-ab12-11111111]
        exclude: [ou-ab12-22222222]
";

/// alice (111111111111) is the management account; node (333333333333) is in the sandbox OU
/// under production; other (444444444444) in production; bob (222222222222) outside.
fn tree() -> OrgTree {
    OrgTree::new("o-a1b2c3d4e5", "111111111111", ROOT)
        .with_ou(OU_PROD, ROOT)
        .with_ou(OU_SANDBOX, OU_PROD)
        .with_account("111111111111", ROOT)
        .with_account("333333333333", OU_SANDBOX)
        .with_account("444444444444", OU_PROD)
}

fn who(account: &str) -> TestIdentity {
    default_identities()
        .into_iter()
        .find(|i| i.account == account)
        .expect("emulator identity")
}

/// The proxy binary, with `key` as the only credentials its standard chain can find.
struct Running {
    child: Child,
    base: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_proxy(dir: &Path, aws: &EmulatorHandle, upstream: &str, key: (&str, &str)) -> Running {
    let tokens = dir.join("tokens.yaml");
    std::fs::write(&tokens, TOKENS).expect("write tokens");
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\nupstream: {{url: \"http://{upstream}\"}}\naudience: {AUDIENCE}\n\
             default_token: org-token\ntokens: {}\n\
             sts: {{overrides: {{sts.us-west-2.amazonaws.com: \"{url}\"}}}}\n\
             organizations: {{endpoint_url: \"{url}\", region: us-east-1}}\n\
             log: {{format: json}}\n",
            tokens.display(),
            url = aws.url(),
        ),
    )
    .expect("write config");
    let mut child = Command::new(BIN)
        .args(["run", "--config", config.to_str().expect("utf-8")])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_ACCESS_KEY_ID", key.0)
        .env("AWS_SECRET_ACCESS_KEY", key.1)
        // Nothing else in the chain: no profile files, no instance metadata.
        .env("AWS_CONFIG_FILE", dir.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            dir.join("no-aws-credentials"),
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn iam-join-proxy");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut listen = None;
    for line in lines.by_ref().take(50) {
        let line = line.expect("log line");
        if line.contains("iam-join-proxy ready") {
            let event: serde_json::Value = serde_json::from_str(&line).expect("JSON log");
            listen = event["fields"]["listen"]
                .as_str()
                .or_else(|| event["listen"].as_str())
                .map(str::to_owned);
            break;
        }
    }
    // Keep draining the log so the proxy never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    let listen = listen.expect("the proxy reported ready with its address");
    Running {
        child,
        base: format!("http://{listen}"),
    }
}

async fn join(base: &str, id: &TestIdentity) -> (StatusCode, http::HeaderMap, serde_json::Value) {
    let proof = ProofBuilder::new(
        sts_endpoint("us-west-2", false).expect("endpoint"),
        Binding::Audience(AUDIENCE.into()),
    )
    .time(SystemTime::now())
    .build(&id.credentials())
    .expect("proof");
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let req = http::Request::get(format!("{base}/webapi/sites"))
        .header("authorization", format!("Bearer {proof}"))
        .body(Full::default())
        .expect("request");
    let resp = tokio::time::timeout(std::time::Duration::from_secs(20), client.request(req))
        .await
        .expect("answer in time")
        .expect("answer");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    (status, headers, json)
}

#[tokio::test]
async fn proxy_admits_by_organization_and_ou_with_credentials_from_the_standard_chain() {
    let aws = Emulator::start().await.expect("emulator");
    aws.set_org_tree(tree());
    let (upstream, _task) = iam_join_proxy::demo::start_echo_upstream()
        .await
        .expect("upstream");
    let dir = tempfile::tempdir().expect("tempdir");
    let management = who("111111111111");
    let proxy = start_proxy(
        dir.path(),
        &aws,
        &upstream.to_string(),
        (&management.access_key_id, &management.secret_access_key),
    );

    let (status, _, echo) = join(&proxy.base, &who("444444444444")).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a member of the production OU: {echo}"
    );
    assert_eq!(echo["headers"]["x-iam-join-account"], "444444444444");
    assert_eq!(echo["headers"]["x-iam-join-token"], "org-token");
    assert!(aws.org_calls() >= 2, "DescribeAccount and ListParents");

    for (account, why) in [
        ("333333333333", "in the excluded sandbox OU"),
        ("222222222222", "outside the organization"),
    ] {
        let (status, _, body) = join(&proxy.base, &who(account)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{account} {why}: {body}");
        assert_eq!(body["error"]["code"], "not_allowed", "{account}: {body}");
    }
}

#[tokio::test]
async fn organizations_refusing_the_proxys_credentials_is_a_retryable_503_never_an_admission() {
    let aws = Emulator::start().await.expect("emulator");
    aws.set_org_tree(tree());
    let (upstream, _task) = iam_join_proxy::demo::start_echo_upstream()
        .await
        .expect("upstream");
    let dir = tempfile::tempdir().expect("tempdir");
    // A key the emulator does not know: every Organizations call fails its SigV4 check.
    let proxy = start_proxy(
        dir.path(),
        &aws,
        &upstream.to_string(),
        ("AKIAUNKNOWNKEY000001", "not-the-secret-of-any-identity"),
    );
    let (status, headers, body) = join(&proxy.base, &who("444444444444")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "organizations_unavailable", "{body}");
    assert!(headers.contains_key("retry-after"), "{headers:?}");
    assert!(
        !body.to_string().contains("not-the-secret"),
        "a secret reached the error body: {body}"
    );
}
