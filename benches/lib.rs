//! Fixtures shared by the criterion benchmarks and the `load` and `memory` tools: realistic
//! proofs (long-term keys, and temporary keys with an AWS-sized session token), the seed policy
//! and a large one, STS answers in both formats, an in-process STS stub, and the trivial inner
//! service the layer wraps.
//!
//! Nothing here listens on anything but 127.0.0.1, and nothing here holds a real credential:
//! every key is made up and only works against the sts-emulator.
#![deny(unsafe_code, unreachable_pub)]
#![warn(missing_docs)]

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use iam_join_client::{Binding, ProofBuilder, SigningForm, sts_endpoint};
use iam_join_core::SignedStsRequest;
use iam_join_core::policy::TokenPolicy;
use iam_join_tower::sts::{BoxFuture, StsHttpResponse, StsTransportError};
use iam_join_tower::{IamJoinLayer, IamJoinLayerBuilder, RateLimits, StsClient};
use sts_emulator::TestIdentity;

/// The audience every benchmark verifier is configured with and every proof is bound to.
pub const AUDIENCE: &str = "teleport.example.com";

/// The region proofs are signed for.
pub const REGION: &str = "us-west-2";

/// The seed's `token.yaml` (token `iam-token`: accounts 111111111111 and 222222222222, and the
/// `teleport-node-role` instances of 333333333333).
pub use iam_join_testkit::policy::SEED_TOKEN_YAML as SEED_POLICY_YAML;
/// The seed policy.
pub use iam_join_testkit::policy::seed_policy;

/// Length of the session token of [`ProofKind::SessionToken`] proofs. Session tokens of
/// assumed-role credentials are usually 800 to 1 200 characters (longer with session tags).
pub const SESSION_TOKEN_LEN: usize = 1000;

/// A policy of `tokens` `iam` tokens (`bench-token-0` ..), each with `rules` allow rules; rule
/// `r` of every token allows `arn:aws:sts::<account r>:assumed-role/app-<r>-role/i-*` in
/// account `100000000000 + r`. [`large_policy_subject`] matches only the last rule of a token.
pub fn large_policy(tokens: usize, rules: usize) -> TokenPolicy {
    let mut yaml = String::new();
    for t in 0..tokens {
        let _ = write!(
            yaml,
            "---\nkind: token\nversion: v2\nmetadata:\n  name: bench-token-{t}\nspec:\n  roles: [Node]\n  join_method: iam\n  allow:\n"
        );
        for r in 0..rules {
            let account = 100_000_000_000u64 + r as u64;
            let _ = write!(
                yaml,
                "    - aws_account: \"{account}\"\n      aws_arn: \"arn:aws:sts::{account}:assumed-role/app-{r}-role/i-*\"\n      aws_regions: [\"us-east-1\", \"us-west-2\", \"eu-west-1\"]\n"
            );
        }
    }
    TokenPolicy::from_yaml_str(&yaml, "large-policy.yaml")
        .unwrap_or_else(|e| panic!("large policy does not load: {e}"))
}

/// The account and ARN allowed by only the last rule of a [`large_policy`] token with `rules`
/// rules.
pub fn large_policy_subject(rules: usize) -> (String, String) {
    let r = rules.saturating_sub(1);
    let account = 100_000_000_000u64 + r as u64;
    (
        account.to_string(),
        format!("arn:aws:sts::{account}:assumed-role/app-{r}-role/i-0abc123def4567890"),
    )
}

/// A made-up session token of `len` characters with the shape of an AWS one (base64 of a
/// protobuf-ish blob, starting `IQoJb3JpZ2luX2Vj`), different for each `seed`.
pub fn session_token(len: usize, seed: u64) -> String {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(len);
    out.push_str(&"IQoJb3JpZ2luX2Vj"[..len.min(16)]);
    // xorshift64*: deterministic, no dependency.
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let v = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
        out.push(B64[(v >> 58) as usize] as char);
    }
    out
}

/// The two proof sizes benchmarked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProofKind {
    /// A long-term access key (`AKIA…`), no session token: an IAM user.
    LongTerm,
    /// A temporary key (`ASIA…`) with a [`SESSION_TOKEN_LEN`]-character session token: an
    /// assumed role (EC2 instance profile, IRSA, ECS task role), the common case.
    SessionToken,
}

impl ProofKind {
    /// Both kinds.
    pub const ALL: [ProofKind; 2] = [ProofKind::LongTerm, ProofKind::SessionToken];

    /// A short label for benchmark ids.
    pub const fn label(self) -> &'static str {
        match self {
            Self::LongTerm => "no_session_token",
            Self::SessionToken => "session_token",
        }
    }

    /// Identity number `n` of this kind; every one is admitted by the seed policy.
    pub fn identity(self, n: u64) -> TestIdentity {
        match self {
            Self::LongTerm => TestIdentity {
                access_key_id: format!("AKIABENCH{n:011}"),
                secret_access_key: format!("BenchLongTermSecret/DoNotUse+{n:011}"),
                session_token: None,
                account: "111111111111".to_owned(),
                arn: format!("arn:aws:iam::111111111111:user/bench-user-{n}"),
                user_id: format!("AIDABENCH{n:012}"),
            },
            Self::SessionToken => TestIdentity {
                access_key_id: format!("ASIABENCH{n:011}"),
                secret_access_key: format!("BenchTemporarySecret/DoNotUse+{n:010}"),
                session_token: Some(session_token(SESSION_TOKEN_LEN, n)),
                account: "333333333333".to_owned(),
                arn: format!(
                    "arn:aws:sts::333333333333:assumed-role/teleport-node-role/i-{n:017x}"
                ),
                user_id: format!("AROABENCHNODE{n:08}:i-{n:017x}"),
            },
        }
    }
}

/// The signing form, as a label and a client setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// Signed POST (Teleport's form).
    Post,
    /// Presigned GET (aws-iam-authenticator's form), `X-Amz-Expires=900`.
    PresignedGet,
}

impl Form {
    /// Both forms.
    pub const ALL: [Form; 2] = [Form::Post, Form::PresignedGet];

    /// A short label for benchmark ids.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Post => "post",
            Self::PresignedGet => "presigned_get",
        }
    }

    fn signing_form(self) -> SigningForm {
        match self {
            Self::Post => SigningForm::Post,
            Self::PresignedGet => SigningForm::PresignedGet {
                expires_in: Duration::from_secs(900),
            },
        }
    }
}

/// Signs an audience-bound proof token for `id` at `at` with the iam-join client.
pub fn sign_proof(id: &TestIdentity, form: Form, at: SystemTime) -> String {
    let endpoint = sts_endpoint(REGION, false).unwrap_or_else(|e| panic!("endpoint: {e}"));
    ProofBuilder::new(endpoint, Binding::Audience(AUDIENCE.to_owned()))
        .form(form.signing_form())
        .time(at)
        .build(&id.credentials())
        .unwrap_or_else(|e| panic!("signing a bench proof: {e}"))
}

/// STS's JSON answer for `id`.
pub fn sts_json_answer(id: &TestIdentity) -> String {
    format!(
        r#"{{"GetCallerIdentityResponse":{{"GetCallerIdentityResult":{{"Account":"{}","Arn":"{}","UserId":"{}"}},"ResponseMetadata":{{"RequestId":"4f9c2a0e-6b1d-4c8e-9a7f-0d2e3b4c5a61"}}}}}}"#,
        id.account, id.arn, id.user_id
    )
}

/// STS's XML answer for `id`, as STS formats it.
pub fn sts_xml_answer(id: &TestIdentity) -> String {
    format!(
        "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  \
         <GetCallerIdentityResult>\n    <Arn>{}</Arn>\n    <UserId>{}</UserId>\n    \
         <Account>{}</Account>\n  </GetCallerIdentityResult>\n  <ResponseMetadata>\n    \
         <RequestId>4f9c2a0e-6b1d-4c8e-9a7f-0d2e3b4c5a61</RequestId>\n  </ResponseMetadata>\n\
         </GetCallerIdentityResponse>\n",
        id.arn, id.user_id, id.account
    )
}

/// An in-process STS that answers every proof with 200 and a JSON identity derived from the
/// proof's access key id (account 333333333333, role `teleport-node-role`, one instance per
/// key), without checking the signature. For measurements that must not include a network
/// hop or SigV4 verification (the memory measurement, the layer's own miss path).
#[derive(Debug, Default)]
pub struct StubSts {
    calls: AtomicU64,
}

impl StubSts {
    /// A stub with no calls yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Proofs received so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

impl StsClient for StubSts {
    fn send<'a>(
        &'a self,
        request: &'a SignedStsRequest,
    ) -> BoxFuture<'a, Result<StsHttpResponse, StsTransportError>> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let key = request.access_key_id();
        let body = format!(
            r#"{{"GetCallerIdentityResponse":{{"GetCallerIdentityResult":{{"Account":"333333333333","Arn":"arn:aws:sts::333333333333:assumed-role/teleport-node-role/i-{key}","UserId":"AROASTUBNODE00000001:i-{key}"}},"ResponseMetadata":{{"RequestId":"stub"}}}}}}"#
        );
        Box::pin(std::future::ready(Ok(StsHttpResponse {
            status: 200,
            content_type: Some("application/json".to_owned()),
            body: Bytes::from(body),
        })))
    }
}

/// The layer configuration every benchmark uses: [`AUDIENCE`], default token `iam-token`, the
/// seed policy, identity headers on, and **no rate limits** (they would throttle the miss-path
/// benchmarks, which make hundreds of STS calls a second from one address).
pub fn layer_builder() -> IamJoinLayerBuilder {
    IamJoinLayer::builder()
        .audience(AUDIENCE)
        .default_token("iam-token")
        .policy(seed_policy())
        .identity_headers(true)
        .rate_limits(RateLimits::none())
}

/// A layer whose STS is the emulator at `sts_url` (`http://127.0.0.1:PORT`).
pub fn emulator_layer(sts_url: &str) -> IamJoinLayer {
    layer_builder()
        .sts_override_all(sts_url)
        .sts_timeouts(Duration::from_secs(2), Duration::from_secs(5))
        .build()
        .unwrap_or_else(|e| panic!("building the bench layer: {e}"))
}

/// A layer whose STS is `client`, with room for `capacity` cached outcomes.
pub fn client_layer(client: Arc<dyn StsClient>, capacity: u64) -> IamJoinLayer {
    layer_builder()
        .sts_client(client)
        .cache_capacity(capacity)
        .build()
        .unwrap_or_else(|e| panic!("building the bench layer: {e}"))
}

/// The trivial inner service: 200 with a two-byte body.
pub async fn ok_service<B>(_req: Request<B>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
}

/// The client address the benchmarks' requests carry (what the proxy's server would add).
pub fn client_addr() -> iam_join_tower::ClientAddr {
    iam_join_tower::ClientAddr(std::net::SocketAddr::from(([127, 0, 0, 1], 40_000)))
}

/// `n` challenge joins through `svc` (a layer with `challenge_paths(["/join"])` around a
/// service answering 200): ask `/v1/iam-join/challenge`, sign a proof bound to the challenge
/// with `id`, send it to `/join`. Returns the time spent inside the layer (signing excluded).
pub async fn challenge_joins<S, B>(svc: &S, id: &sts_emulator::TestIdentity, n: u64) -> Duration
where
    S: tower::Service<
            Request<Full<Bytes>>,
            Response = http::Response<B>,
            Error = std::convert::Infallible,
        > + Clone,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;
    let mut inside = Duration::ZERO;
    for _ in 0..n {
        let mut ask = Request::new(Full::default());
        *ask.method_mut() = http::Method::POST;
        *ask.uri_mut() = http::Uri::from_static("/v1/iam-join/challenge");
        ask.extensions_mut().insert(client_addr());
        let t = Instant::now();
        let resp = svc
            .clone()
            .oneshot(ask)
            .await
            .unwrap_or_else(|e| match e {});
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"))
            .to_bytes();
        inside += t.elapsed();
        let answer: serde_json::Value =
            serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{e}"));
        let challenge = answer["challenge"]
            .as_str()
            .unwrap_or_else(|| panic!("no challenge in {answer}"))
            .to_owned();
        let proof = iam_join_client::ProofBuilder::new(
            iam_join_client::sts_endpoint(REGION, false).unwrap_or_else(|e| panic!("{e}")),
            iam_join_client::Binding::Challenge(challenge),
        )
        .time(SystemTime::now())
        .build(&id.credentials())
        .unwrap_or_else(|e| panic!("{e}"));
        let mut join = Request::new(Full::default());
        *join.uri_mut() = http::Uri::from_static("/join");
        join.headers_mut().insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_str(&format!("Bearer {proof}"))
                .unwrap_or_else(|e| panic!("{e}")),
        );
        join.extensions_mut().insert(client_addr());
        let t = Instant::now();
        let resp = svc
            .clone()
            .oneshot(join)
            .await
            .unwrap_or_else(|e| match e {});
        inside += t.elapsed();
        assert_eq!(
            resp.status(),
            http::StatusCode::OK,
            "a challenge join was refused"
        );
    }
    inside
}

/// One criterion benchmark `name` of [`challenge_joins`] through `svc`, then a check that every
/// join made exactly one STS call (`sts_calls` reads the STS's counter): nothing cached, nothing
/// skipped.
pub fn bench_challenge_joins<S, B>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
    name: &str,
    svc: &S,
    id: &TestIdentity,
    sts_calls: impl Fn() -> u64,
) where
    S: tower::Service<
            Request<Full<Bytes>>,
            Response = http::Response<B>,
            Error = std::convert::Infallible,
        > + Clone,
    S::Future: Send,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let before = sts_calls();
    let mut joins = 0u64;
    group.bench_function(name, |b| {
        b.to_async(rt).iter_custom(|iters| {
            joins += iters;
            let svc = svc.clone();
            let id = id.clone();
            async move { challenge_joins(&svc, &id, iters).await }
        });
    });
    assert_eq!(sts_calls() - before, joins, "every join is one STS call");
}

/// Resident set size of this process in bytes (`VmRSS` of `/proc/self/status`; Linux only).
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// `nproc`, the CPU model and the kernel, for result files.
pub fn machine_description() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    format!("{cpus} CPUs ({model}), Linux {kernel}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_tokens_have_the_requested_length_and_alphabet() {
        let t = session_token(SESSION_TOKEN_LEN, 7);
        assert_eq!(t.len(), SESSION_TOKEN_LEN);
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
        );
        assert_ne!(t, session_token(SESSION_TOKEN_LEN, 8));
    }

    #[test]
    fn large_policy_admits_its_last_rule_only() {
        let policy = large_policy(3, 5);
        let (account, arn) = large_policy_subject(5);
        let subject = iam_join_core::policy::Subject {
            account: &account,
            arn: &arn,
            region: "us-west-2",
        };
        let now = time::OffsetDateTime::now_utc();
        assert!(policy.authorize("bench-token-2", &subject, now).is_ok());
        let token = policy.get("bench-token-2").map(|t| t.allow().len());
        assert_eq!(token, Some(5));
    }

    #[test]
    fn bench_identities_are_admitted_by_the_seed_policy() {
        let policy = seed_policy();
        let now = time::OffsetDateTime::now_utc();
        for kind in ProofKind::ALL {
            let id = kind.identity(42);
            let subject = iam_join_core::policy::Subject {
                account: &id.account,
                arn: &id.arn,
                region: REGION,
            };
            assert!(
                policy.authorize("iam-token", &subject, now).is_ok(),
                "{kind:?}"
            );
        }
    }
}
