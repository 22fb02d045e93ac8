//! Test support for the Redis backend: a real `redis-server` on a free loopback port, proofs
//! signed with aws-sigv4 for the STS emulator, and "replicas" (layers) to drive with `oneshot`.
#![allow(dead_code, unreachable_pub, unused_imports)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use iam_join_core::challenge::ChallengeKey;
pub use iam_join_testkit::identities::alice;
pub use iam_join_testkit::policy::seed_policy;
pub use iam_join_testkit::redis_server::{
    RedisCluster, RedisOptions, RedisSentinelSet, RedisServer, SENTINEL_MASTER, ServerTls, TestPki,
};
use iam_join_testkit::sign::HandSigned;
use iam_join_tower::redis::{RedisBackend, RedisConfig, RedisServers};
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

/// The challenge key all replicas share.
pub fn shared_challenge_key() -> ChallengeKey {
    ChallengeKey::from_bytes(&[7u8; 32]).expect("32 bytes")
}

/// A signed POST proof token for `identity`, bound by `binding` (header, value), signed at `at`.
pub fn signed_post(identity: &TestIdentity, binding: (&str, &str), at: SystemTime) -> String {
    let mut signer = HandSigned::new(identity.credentials(), AUDIENCE).bound_by(binding);
    signer.host = STS_HOST;
    signer.region = STS_REGION;
    signer.at = at;
    signer.post().to_iam_join_v1_token()
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
    servers_config(RedisServers::Primary(url.to_owned()), prefix)
}

/// [`redis_config`] for any kind of servers.
pub fn servers_config(servers: RedisServers, prefix: &str) -> RedisConfig {
    let mut config = RedisConfig::primary("redis://unused");
    config.servers = servers;
    config.key_prefix = prefix.to_owned();
    config.connect_timeout = Duration::from_millis(500);
    config.command_timeout = Duration::from_secs(2);
    config
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

/// A plain connection to `server` for inspecting keys.
pub async fn inspect(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to the test redis-server")
}

/// Every key in Redis is under `prefix` and has a TTL; returns the keys.
pub async fn assert_all_keys_expire(server: &RedisServer, prefix: &str) -> Vec<String> {
    let mut conn = inspect(server).await;
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
