//! Test support for the Redis backend: a real `redis-server` on a free loopback port, proofs
//! signed with aws-sigv4 for the STS emulator, and "replicas" (layers) to drive with `oneshot`.
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use iam_join_core::challenge::ChallengeKey;
use iam_join_core::policy::TokenPolicy;
use iam_join_core::token::{ProofFormat, RawSignedRequest};
use iam_join_tower::redis::{RedisBackend, RedisConfig};
use iam_join_tower::{ClientAddr, IamJoinLayer, RateLimits};
use sts_emulator::TestIdentity;
use tower::ServiceExt;
use tower_layer::Layer;

/// The audience every replica is configured with.
pub const AUDIENCE: &str = "redis-test-cluster";
/// The STS host proofs are signed for (routed to the emulator).
pub const STS_HOST: &str = "sts.us-west-2.amazonaws.com";
/// Its region.
pub const STS_REGION: &str = "us-west-2";
const BODY: &str = "Action=GetCallerIdentity&Version=2011-06-15";
const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";
const SEED_TOKEN: &str = include_str!("../../../iam-join-core/tests/fixtures/token.yaml");

/// How long to wait for `redis-server` to answer `PING`.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A `redis-server` on `127.0.0.1:<port>`, killed on drop.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free loopback port. Panics (never skips) if `redis-server` is not on
    /// `PATH`.
    pub fn start() -> Self {
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            match spawn_redis(port) {
                Ok(child) => {
                    return Self {
                        port,
                        child: Some(child),
                    };
                }
                // Another process may have taken the port between our probe and the server's bind.
                Err(e) => last = e,
            }
        }
        panic!("could not start redis-server: {last}");
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (SIGKILL: no clean shutdown, like a crash).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open but nothing answers, like a hung or
    /// overloaded Redis.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a [`pause`](Self::pause)d server (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("redis-server is running").id();
        let status = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {sig} {pid} failed");
    }

    /// Starts a fresh, empty server on the same port.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match spawn_redis(self.port) {
                Ok(child) => {
                    self.child = Some(child);
                    return;
                }
                Err(e) if Instant::now() >= deadline => {
                    panic!("could not restart redis-server on port {}: {e}", self.port)
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// A plain connection for inspecting keys.
    pub async fn inspect(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("redis url")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the test redis-server")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A paused server must be thawed to die promptly.
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
        }
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn spawn_redis(port: u16) -> Result<Child, String> {
    let mut child = Command::new("redis-server")
        .args(["--port", &port.to_string()])
        .args(["--bind", "127.0.0.1"])
        .args(["--save", ""])
        .args(["--appendonly", "no"])
        .arg("--dir")
        .arg(std::env::temp_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `redis-server` ({e}): the Redis tests need a real Redis server on PATH \
                 (Debian/Ubuntu: `apt-get install redis-server`); they are never skipped"
            )
        });
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "redis-server exited at start ({status}); port {port} taken?"
            ));
        }
        if answers_ping(port) {
            return Ok(child);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "redis-server did not answer PING on port {port} within {START_TIMEOUT:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn answers_ping(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// The seed token policy (`iam-token`).
pub fn seed_policy() -> TokenPolicy {
    TokenPolicy::from_yaml_str(SEED_TOKEN, "token.yaml").expect("the seed token loads")
}

/// The challenge key all replicas share.
pub fn shared_challenge_key() -> ChallengeKey {
    ChallengeKey::from_bytes(&[7u8; 32]).expect("32 bytes")
}

/// Identity 1 of the emulator: IAM user alice in 111111111111 (allowed by the seed token).
pub fn alice() -> TestIdentity {
    sts_emulator::default_identities().remove(0)
}

/// A signed POST proof token for `identity`, bound by `binding` (header, value), signed at `at`.
pub fn signed_post(identity: &TestIdentity, binding: (&str, &str), at: SystemTime) -> String {
    let signer: Identity = identity.credentials().into();
    let url = format!("https://{STS_HOST}/");
    let headers = [("content-type", FORM), binding];
    let signable = SignableRequest::new(
        "POST",
        &url,
        headers.iter().copied(),
        SignableBody::Bytes(BODY.as_bytes()),
    )
    .expect("signable request");
    let params = v4::SigningParams::builder()
        .identity(&signer)
        .region(STS_REGION)
        .name("sts")
        .time(at)
        .settings(SigningSettings::default())
        .build()
        .expect("signing params")
        .into();
    let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
    let mut out: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    for (n, v) in instructions.headers() {
        out.push((n.to_ascii_lowercase(), v.to_owned()));
    }
    RawSignedRequest {
        format: ProofFormat::IamJoinV1,
        method: "POST".into(),
        url,
        headers: out,
        body: BODY.into(),
    }
    .to_iam_join_v1_token()
}

/// An audience-bound proof signed `age_secs` seconds ago (distinct ages give distinct proofs).
pub fn audience_proof(identity: &TestIdentity, age_secs: u64) -> String {
    signed_post(
        identity,
        ("x-iam-join-audience", AUDIENCE),
        SystemTime::now() - Duration::from_secs(age_secs),
    )
}

/// A challenge-bound proof.
pub fn challenge_proof(identity: &TestIdentity, challenge: &str) -> String {
    signed_post(
        identity,
        ("x-teleport-challenge", challenge),
        SystemTime::now(),
    )
}

/// One proxy replica: a layer wired to its own [`RedisBackend`].
#[derive(Clone)]
pub struct Replica {
    pub name: &'static str,
    pub layer: IamJoinLayer,
    pub backend: RedisBackend,
}

/// Redis settings for tests, with a per-test prefix. The command timeout is longer than the
/// production default (250 ms) so that a loaded test machine does not turn a slow answer into a
/// (correct, but unexpected) fault path; the fault tests assert boundedness, not speed.
pub fn redis_config(url: &str, prefix: &str) -> RedisConfig {
    RedisConfig {
        url: url.to_owned(),
        key_prefix: prefix.to_owned(),
        connect_timeout: Duration::from_millis(500),
        command_timeout: Duration::from_secs(2),
    }
}

/// Builds a replica against `redis_url` and the emulator at `sts_url`.
pub async fn replica(
    name: &'static str,
    config: RedisConfig,
    limits: RateLimits,
    sts_url: &str,
) -> Replica {
    let backend = RedisBackend::connect(config, limits)
        .await
        .expect("the Redis backend sets up");
    let layer = IamJoinLayer::builder()
        .audience(AUDIENCE)
        .default_token("iam-token")
        .policy(seed_policy())
        .sts_override_all(sts_url)
        .challenge_key(shared_challenge_key())
        .rate_limits(limits)
        .replay_store(backend.replay_store())
        .rate_limiter(backend.rate_limiter())
        .shared_cache(backend.shared_cache())
        .build()
        .expect("the layer builds");
    Replica {
        name,
        layer,
        backend,
    }
}

/// What a replica answered.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    /// `error.code` of a denial.
    pub code: Option<String>,
    pub retry_after: Option<String>,
    pub body: serde_json::Value,
}

async fn ok(_req: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"upstream ok"))))
}

impl Replica {
    /// Sends `req` from `client` through this replica's layer around a trivial 200 service.
    pub async fn send(&self, mut req: Request<Full<Bytes>>, client: SocketAddr) -> Answer {
        req.extensions_mut().insert(ClientAddr(client));
        let svc = self.layer.layer(tower::service_fn(ok));
        let resp = svc.oneshot(req).await.expect("infallible");
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let body: serde_json::Value =
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        let code = body["error"]["code"].as_str().map(str::to_owned);
        Answer {
            status,
            code,
            retry_after,
            body,
        }
    }

    /// `GET /app` with `proof` as a bearer token.
    pub async fn join(&self, proof: &str, client: SocketAddr) -> Answer {
        let req = Request::get("/app")
            .header(http::header::AUTHORIZATION, format!("Bearer {proof}"))
            .body(Full::new(Bytes::new()))
            .expect("request");
        self.send(req, client).await
    }

    /// `POST /v1/iam-join/challenge`: a fresh challenge.
    pub async fn challenge(&self, client: SocketAddr) -> String {
        let req = Request::post("/v1/iam-join/challenge")
            .body(Full::new(Bytes::new()))
            .expect("request");
        let answer = self.send(req, client).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{}: challenge endpoint: {answer:?}",
            self.name
        );
        assert_eq!(answer.body["header"], "x-teleport-challenge");
        answer.body["challenge"]
            .as_str()
            .expect("a challenge string")
            .to_owned()
    }
}

/// A client address.
pub fn client(n: u8) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, n], 40_000))
}

/// Every key in Redis is under `prefix` and has a TTL; returns the keys.
pub async fn assert_all_keys_expire(server: &RedisServer, prefix: &str) -> Vec<String> {
    let mut conn = server.inspect().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    for key in &keys {
        assert!(
            key.starts_with(prefix),
            "key {key:?} is outside the prefix {prefix:?}"
        );
        let pttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .expect("PTTL");
        // -1: no expiry. (-2: expired since KEYS; 0: expiring in under a millisecond.)
        assert_ne!(pttl, -1, "key {key:?} does not expire");
    }
    keys
}
