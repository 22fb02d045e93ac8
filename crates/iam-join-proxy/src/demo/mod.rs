//! `iam-join-proxy demo`: the whole flow on one machine, with nothing to configure.
//!
//! Starts, all on 127.0.0.1 with free ports: the sts-emulator (a loopback STS that really
//! verifies SigV4 for its test identities), a small upstream that echoes the `x-iam-join-*`
//! headers it receives, and the proxy in front of it with the seed's join token embedded. Then,
//! with the client library and the emulator's test identities, it shows an admitted request, a
//! denied one, a single-use challenge join whose replay is refused, and a join by AWS
//! Organization (the emulator also plays AWS Organizations). Each step checks its outcome; any
//! surprise makes the demo fail.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;

use aws_credential_types::Credentials;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use iam_join_client::{Binding, ProofBuilder, VerifierClient, sts_endpoint};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::{Config, TokenSource};
use crate::proxy::Proxy;

/// The embedded token policy: the seed's `token.yaml`, unchanged.
pub const DEMO_TOKENS: &str = include_str!("token.yaml");
const DEMO_TOKENS_NAME: &str = "embedded token.yaml";
/// A second embedded token that admits by AWS Organization.
pub const DEMO_ORG_TOKEN: &str = include_str!("org-token.yaml");
/// The demo organization: its management account is the emulator's first identity
/// (111111111111); 444444444444, which `iam-token` refuses, is a member.
const DEMO_ORG: &str = "o-a1b2c3d4e5";
const DEMO_ORG_ROOT: &str = "r-ab12";
/// The audience the demo proxy expects.
pub const DEMO_AUDIENCE: &str = "teleport.example.com";
/// The path the demo treats as a join endpoint (challenge-bound proofs only).
pub const DEMO_JOIN_PATH: &str = "/v1/webapi/host/join";
const REGION: &str = "us-west-2";
const STS_HOST: &str = "sts.us-west-2.amazonaws.com";

/// Why the demo failed.
#[derive(Debug, thiserror::Error)]
#[error("demo failed: {0}")]
pub struct DemoError(String);

fn fail(what: impl std::fmt::Display) -> DemoError {
    DemoError(what.to_string())
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Runs the demo, printing the walkthrough to stdout.
///
/// # Errors
///
/// A component could not start, or a step did not end as expected.
pub async fn run() -> Result<(), DemoError> {
    let mut out = String::new();
    let result = run_into(&mut out).await;
    print!("{out}");
    result
}

/// Runs the demo, writing the walkthrough into `out`.
///
/// # Errors
///
/// See [`run`].
pub async fn run_into(out: &mut String) -> Result<(), DemoError> {
    let sts = sts_emulator::Emulator::start()
        .await
        .map_err(|e| fail(format!("sts-emulator: {e}")))?;
    sts.set_org_tree(
        sts_emulator::OrgTree::new(DEMO_ORG, "111111111111", DEMO_ORG_ROOT)
            .with_account("111111111111", DEMO_ORG_ROOT)
            .with_account("444444444444", DEMO_ORG_ROOT),
    );
    let (upstream_addr, upstream_task) = start_echo_upstream()
        .await
        .map_err(|e| fail(format!("echo upstream: {e}")))?;

    let yaml = format!(
        "listen: 127.0.0.1:0\n\
         upstream: {{url: http://{upstream_addr}}}\n\
         audience: {DEMO_AUDIENCE}\n\
         default_token: iam-token\n\
         tokens: embedded\n\
         challenge_paths: [\"{DEMO_JOIN_PATH}\"]\n\
         sts: {{overrides: {{{STS_HOST}: {sts_url}}}}}\n\
         admin: {{listen: 127.0.0.1:0}}\n\
         organizations: {{endpoint_url: \"{sts_url}\"}}\n\
         drain_timeout: 5s\n",
        sts_url = sts.url()
    );
    let mut config =
        Config::from_yaml_str(&yaml, Path::new(".")).map_err(|e| fail(format!("config: {e}")))?;
    config.tokens = TokenSource::Inline {
        yaml: format!("{DEMO_TOKENS}---\n{DEMO_ORG_TOKEN}"),
        name: DEMO_TOKENS_NAME.to_owned(),
    };
    // The emulator's management-account key signs the Organizations calls; a real deployment
    // uses the standard credential chain (see deploy/README.md).
    if let Some(orgs) = config.organizations.as_mut() {
        orgs.static_credentials = Some(identity(0)?.0);
    }
    let proxy = Proxy::bind(config)
        .await
        .map_err(|e| fail(format!("proxy: {e}")))?;
    let proxy_addr = proxy.local_addr();
    let admin_addr = proxy.admin_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let proxy_task = tokio::spawn(proxy.serve(async {
        let _ = stopped.await;
    }));

    let base = format!("http://{proxy_addr}");
    let _ = writeln!(out, "iam-join-proxy demo\n===================\n");
    let _ = writeln!(out, "Started on 127.0.0.1:");
    let _ = writeln!(
        out,
        "  sts-emulator   {}   (a local STS that really checks SigV4 signatures)",
        sts.url()
    );
    let _ = writeln!(
        out,
        "  echo upstream  http://{upstream_addr}   (answers with the x-iam-join-* headers it got)"
    );
    let _ = writeln!(
        out,
        "  iam-join-proxy {base}   (audience {DEMO_AUDIENCE:?}, default token \"iam-token\")"
    );
    if let Some(a) = admin_addr {
        let _ = writeln!(
            out,
            "  admin          http://{a}   (/metrics, /healthz, /readyz)"
        );
    }
    let _ = writeln!(
        out,
        "\nThe embedded join tokens (the seed's token.yaml, and one by AWS Organization):\n"
    );
    let tokens = format!("{DEMO_TOKENS}---\n{DEMO_ORG_TOKEN}");
    for line in crate::describe_tokens(&tokens, DEMO_TOKENS_NAME).lines() {
        let _ = writeln!(out, "  {line}");
    }

    let steps = steps(out, &base).await;

    let _ = writeln!(
        out,
        "\nThe emulator checked {} STS signature(s) and answered {} Organizations call(s).",
        sts.calls(),
        sts.org_calls()
    );
    if let Some(a) = admin_addr {
        let http: HttpClient = Client::builder(TokioExecutor::new()).build_http();
        if let Ok((_, text)) = send(&http, Method::GET, &format!("http://{a}/metrics"), &[]).await {
            let _ = writeln!(out, "A few of the proxy's metrics (http://{a}/metrics):");
            for line in text
                .lines()
                .filter(|l| l.starts_with("iam_join_requests_total"))
            {
                let _ = writeln!(out, "  {line}");
            }
        }
    }

    let _ = stop.send(());
    let _ = proxy_task.await;
    upstream_task.abort();
    sts.shutdown().await;
    if steps.is_ok() {
        let _ = writeln!(
            out,
            "\nAll steps behaved as expected. Next: deploy/README.md."
        );
    }
    steps
}

fn identity(index: usize) -> Result<(Credentials, String), DemoError> {
    let id = sts_emulator::default_identities()
        .into_iter()
        .nth(index)
        .ok_or_else(|| fail("missing emulator identity"))?;
    Ok((id.credentials(), id.arn))
}

async fn steps(out: &mut String, base: &str) -> Result<(), DemoError> {
    let http: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let endpoint = sts_endpoint(REGION, false).map_err(fail)?;

    // 1. Admitted.
    let (node, node_arn) = identity(1)?;
    let proof = ProofBuilder::new(endpoint.clone(), Binding::Audience(DEMO_AUDIENCE.into()))
        .build(&node)
        .map_err(fail)?;
    let _ = writeln!(
        out,
        "\n1. An EC2 node in account 333333333333 calls the cluster through the proxy"
    );
    let _ = writeln!(out, "   as {node_arn}");
    let _ = writeln!(
        out,
        "   with a signed sts:GetCallerIdentity proof bound to {DEMO_AUDIENCE:?}, and a forged"
    );
    let _ = writeln!(out, "   x-iam-join-account: 999999999999 header:");
    let bearer = format!("Bearer {proof}");
    let (status, body) = send(
        &http,
        Method::GET,
        &format!("{base}/webapi/sites"),
        &[
            ("authorization", &bearer),
            ("x-iam-join-account", "999999999999"),
        ],
    )
    .await?;
    let _ = writeln!(out, "   -> {status}; the upstream saw:");
    indent_json(out, &body);
    let echo: serde_json::Value = serde_json::from_str(&body).map_err(fail)?;
    if status != StatusCode::OK
        || echo["headers"]["x-iam-join-account"] != "333333333333"
        || echo["authorization_forwarded"] != false
    {
        return Err(fail(
            "step 1: the request was not admitted with the verified identity",
        ));
    }
    let _ = writeln!(
        out,
        "   The proxy verified the proof with STS, replaced the forged header with the"
    );
    let _ = writeln!(out, "   verified identity, and did not forward the proof.");

    // 2. Denied.
    let (other, other_arn) = identity(3)?;
    let proof = ProofBuilder::new(endpoint.clone(), Binding::Audience(DEMO_AUDIENCE.into()))
        .build(&other)
        .map_err(fail)?;
    let _ = writeln!(
        out,
        "\n2. The same role name in account 444444444444, which the token does not allow:"
    );
    let _ = writeln!(out, "   as {other_arn}");
    let bearer = format!("Bearer {proof}");
    let (status, body) = send(
        &http,
        Method::GET,
        &format!("{base}/webapi/sites"),
        &[("authorization", &bearer)],
    )
    .await?;
    let _ = writeln!(out, "   -> {status} {body}");
    if status != StatusCode::FORBIDDEN || !body.contains("\"not_allowed\"") {
        return Err(fail("step 2: expected 403 not_allowed"));
    }
    let _ = writeln!(
        out,
        "   STS vouched for the caller, but no allow rule of \"iam-token\" matches it."
    );

    // 3. Challenge join, then replay.
    let (alice, alice_arn) = identity(0)?;
    let verifier = VerifierClient::new(base).map_err(fail)?;
    let challenge = verifier.fetch_challenge().await.map_err(fail)?;
    let proof = ProofBuilder::new(endpoint, Binding::for_challenge(&challenge).map_err(fail)?)
        .build(&alice)
        .map_err(fail)?;
    let _ = writeln!(
        out,
        "\n3. A join on {DEMO_JOIN_PATH}, which takes single-use challenge proofs only:"
    );
    let _ = writeln!(
        out,
        "   as {alice_arn}, with a fresh challenge from POST /v1/iam-join/challenge"
    );
    let _ = writeln!(
        out,
        "   (valid {}s, signed into the {} header):",
        challenge.expires_in_seconds, challenge.header
    );
    let bearer = format!("Bearer {proof}");
    let join = format!("{base}{DEMO_JOIN_PATH}");
    let (status, body) = send(&http, Method::POST, &join, &[("authorization", &bearer)]).await?;
    let _ = writeln!(out, "   -> {status}; the upstream saw:");
    indent_json(out, &body);
    let echo: serde_json::Value = serde_json::from_str(&body).map_err(fail)?;
    if status != StatusCode::OK || echo["headers"]["x-iam-join-account"] != "111111111111" {
        return Err(fail("step 3: the challenge join was not admitted"));
    }
    let (status, body) = send(&http, Method::POST, &join, &[("authorization", &bearer)]).await?;
    let _ = writeln!(out, "   Replaying the very same proof:");
    let _ = writeln!(out, "   -> {status} {body}");
    if status != StatusCode::UNAUTHORIZED || !body.contains("\"challenge_reused\"") {
        return Err(fail(
            "step 3: expected the replay to fail with challenge_reused",
        ));
    }
    let _ = writeln!(
        out,
        "   A challenge is redeemed once; a captured join proof is worthless."
    );

    // 4. whoami, the debugging twin of `aws sts get-caller-identity`.
    let proof = ProofBuilder::new(
        sts_endpoint(REGION, false).map_err(fail)?,
        Binding::Audience(DEMO_AUDIENCE.into()),
    )
    .build(&node)
    .map_err(fail)?;
    let me = verifier.whoami(&proof, None).await.map_err(fail)?;
    let _ = writeln!(
        out,
        "\n4. GET /v1/iam-join/whoami asks the proxy who a proof proves:"
    );
    let _ = writeln!(
        out,
        "   -> account {}, token {}, roles [{}], region {}",
        me.account,
        me.token.as_deref().unwrap_or("?"),
        me.roles.join(", "),
        me.region.as_deref().unwrap_or("?")
    );

    join_by_organization(out, &http, base).await
}

/// 5. The account that step 2 refused joins with `org-token`: it is in the organization.
async fn join_by_organization(
    out: &mut String,
    http: &HttpClient,
    base: &str,
) -> Result<(), DemoError> {
    let (other, other_arn) = identity(3)?;
    let proof = ProofBuilder::new(
        sts_endpoint(REGION, false).map_err(fail)?,
        Binding::Audience(DEMO_AUDIENCE.into()),
    )
    .build(&other)
    .map_err(fail)?;
    let _ = writeln!(
        out,
        "\n5. Account 444444444444 again, now naming \"org-token\" (x-iam-join-token), whose rule is"
    );
    let _ = writeln!(
        out,
        "   aws_organization_id: {DEMO_ORG}; the proxy asks AWS Organizations (DescribeAccount)"
    );
    let _ = writeln!(out, "   as {other_arn}");
    let bearer = format!("Bearer {proof}");
    let (status, body) = send(
        http,
        Method::GET,
        &format!("{base}/webapi/sites"),
        &[
            ("authorization", &bearer),
            ("x-iam-join-token", "org-token"),
        ],
    )
    .await?;
    let _ = writeln!(out, "   -> {status}; the upstream saw:");
    indent_json(out, &body);
    let echo: serde_json::Value = serde_json::from_str(&body).map_err(fail)?;
    if status != StatusCode::OK
        || echo["headers"]["x-iam-join-account"] != "444444444444"
        || echo["headers"]["x-iam-join-token"] != "org-token"
    {
        return Err(fail("step 5: the organization member was not admitted"));
    }
    let _ = writeln!(
        out,
        "   No account list to maintain: a new account of the organization joins the same way,"
    );
    let _ = writeln!(
        out,
        "   and one that leaves stops matching when the cached answer expires (10 min)."
    );
    Ok(())
}

fn indent_json(out: &mut String, body: &str) {
    let pretty = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| body.to_owned());
    for line in pretty.lines() {
        let _ = writeln!(out, "     {line}");
    }
}

async fn send(
    http: &HttpClient,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
) -> Result<(StatusCode, String), DemoError> {
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        let mut value = HeaderValue::from_str(v).map_err(fail)?;
        if k.eq_ignore_ascii_case("authorization") {
            value.set_sensitive(true);
        }
        req = req.header(*k, value);
    }
    let req = req.body(Full::new(Bytes::new())).map_err(fail)?;
    let resp = http
        .request(req)
        .await
        .map_err(|e| fail(format!("{url}: {e}")))?;
    let status = resp.status();
    let body = resp.into_body().collect().await.map_err(fail)?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Starts the echo upstream on 127.0.0.1:0: every request is answered with JSON naming its
/// method, path, the `x-iam-join-*` headers received, and whether a proof was forwarded.
///
/// # Errors
///
/// The listener cannot be bound.
pub async fn start_echo_upstream() -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    Ok::<_, Infallible>(echo(&req))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    Ok((addr, task))
}

fn echo<B>(req: &Request<B>) -> Response<Full<Bytes>> {
    let identity: serde_json::Map<String, serde_json::Value> = req
        .headers()
        .iter()
        .filter(|(k, _)| k.as_str().starts_with("x-iam-join-"))
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                serde_json::Value::from(v.to_str().unwrap_or("<not ascii>")),
            )
        })
        .collect();
    let body = serde_json::json!({
        "method": req.method().as_str(),
        "path": req.uri().path(),
        "headers": identity,
        "authorization_forwarded": req.headers().contains_key(header::AUTHORIZATION),
    });
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
