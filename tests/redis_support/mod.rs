//! Support for the Redis end-to-end tests: a real `redis-server` on a free loopback port (killed
//! on drop), and two real `iam-join-proxy` instances ("replicas" A and B) configured through one
//! YAML file to share that Redis, one sts-emulator, one test upstream, one token policy and one
//! challenge key.
//!
//! The `redis-server` guard is `iam_join_testkit::redis_server::RedisServer`, shared with the
//! tower crate's Redis tests.

#![allow(dead_code)] // each test file uses its own part

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use iam_join_client::{Binding, ProofBuilder, SigningForm, VerifierClient, sts_endpoint};
use serde_json::Value;

use iam_join_e2e::{
    AUDIENCE, JOIN_PATH, PUBLIC_PATH, REGION, SEED_TOKENS, Upstream, bearer, request,
};
use iam_join_proxy::{Config, Proxy, ProxyError};
#[allow(unused_imports)] // each test file uses its own part
pub(crate) use iam_join_testkit::redis_server::{
    RedisCluster, RedisOptions, RedisServer, ServerTls, TestPki,
};
use sts_emulator::EmulatorHandle;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The challenge HMAC key both replicas read (>= 32 bytes, like `openssl rand -hex 32`).
const CHALLENGE_KEY: &str = "4f1c8e2a9b7d6c5e3f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f67\n";

/// One running `iam-join-proxy`.
pub(crate) struct Replica {
    /// "A" or "B", for messages.
    pub(crate) name: &'static str,
    /// The proxy listener.
    pub(crate) addr: SocketAddr,
    /// The admin listener (`/metrics`).
    pub(crate) admin: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    served: Option<JoinHandle<Result<(), ProxyError>>>,
}

impl Replica {
    async fn start(name: &'static str, config: Config) -> Self {
        let proxy = Proxy::bind(config)
            .await
            .unwrap_or_else(|e| panic!("proxy {name} binds: {e}"));
        let addr = proxy.local_addr();
        let admin = proxy.admin_addr().expect("admin listener");
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(proxy.serve(async {
            let _ = stopped.await;
        }));
        Self {
            name,
            addr,
            admin,
            stop: Some(stop),
            served: Some(served),
        }
    }

    /// `http://<proxy><path>`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(served) = self.served.take() {
            served.abort();
        }
    }
}

/// Two proxies sharing one Redis, one emulator, one upstream, one token file and one challenge
/// key file, both started from the same YAML configuration file.
pub(crate) struct Replicas {
    /// Holds `config.yaml`, `tokens/token.yaml` and `challenge.key`.
    _dir: tempfile::TempDir,
    /// The emulator both proxies send proofs to.
    pub(crate) sts: EmulatorHandle,
    /// The echo upstream both proxies forward to.
    _upstream: Upstream,
    /// Replica A.
    pub(crate) a: Replica,
    /// Replica B.
    pub(crate) b: Replica,
}

impl Replicas {
    /// Starts the emulator, the upstream and both proxies against the Redis at `redis_url`.
    /// `rate_limits` is the YAML flow mapping of the `rate_limits` key.
    pub(crate) async fn start(redis_url: &str, rate_limits: &str) -> Self {
        Self::start_with(&format!("url: \"{redis_url}\""), rate_limits, &[]).await
    }

    /// As [`start`](Self::start), with `redis_servers` as the lines of the `redis:` section
    /// that say where Redis is and how to reach it (`url: …`, `cluster: […]`, `username: …`,
    /// `password_file: …`, `tls: {…}`; one line each, unindented), and `files` written next to
    /// the configuration first (relative paths in it are relative to that directory).
    pub(crate) async fn start_with(
        redis_servers: &str,
        rate_limits: &str,
        files: &[(&str, &[u8])],
    ) -> Self {
        let sts = sts_emulator::Emulator::start().await.expect("emulator");
        let upstream = Upstream::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("tokens")).expect("mkdir tokens");
        std::fs::write(dir.path().join("tokens/token.yaml"), SEED_TOKENS).expect("write tokens");
        std::fs::write(dir.path().join("challenge.key"), CHALLENGE_KEY).expect("write key");
        for (name, bytes) in files {
            std::fs::write(dir.path().join(name), bytes).expect("write a file");
        }
        let redis_servers: String = redis_servers
            .lines()
            .map(|line| format!("  {line}\n"))
            .collect();
        // Redis command timeout longer than the production 250 ms so that a loaded test machine
        // does not turn a slow answer into the (correct, but here unexpected) fault path.
        let yaml = format!(
            "listen: 127.0.0.1:0\n\
             upstream: {{url: \"http://{upstream}\", timeout: 20s, connect_timeout: 2s}}\n\
             audience: {AUDIENCE}\n\
             default_token: iam-token\n\
             tokens: tokens/token.yaml\n\
             public_paths: [\"{PUBLIC_PATH}\"]\n\
             challenge_paths: [\"{JOIN_PATH}\"]\n\
             sts: {{overrides: {{sts.{REGION}.amazonaws.com: \"{sts}\"}}}}\n\
             rate_limits: {rate_limits}\n\
             admin: {{listen: 127.0.0.1:0}}\n\
             challenge_key_file: challenge.key\n\
             drain_timeout: 2s\n\
             redis:\n\
             {redis_servers}  \
               key_prefix: \"e2e-replicas:\"\n  \
               connect_timeout: 500ms\n  \
               command_timeout: 2s\n",
            upstream = upstream.addr,
            sts = sts.url(),
        );
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, yaml).expect("write config");
        // Each replica reads the file itself, as two deployed processes would.
        let a = Replica::start("A", Config::load(&path).expect("valid config")).await;
        let b = Replica::start("B", Config::load(&path).expect("valid config")).await;
        Self {
            _dir: dir,
            sts,
            _upstream: upstream,
            a,
            b,
        }
    }
}

/// Emulator identity 0: IAM user alice in 111111111111, allowed by the seed token.
pub(crate) fn alice() -> aws_credential_types::Credentials {
    sts_emulator::default_identities()[0].credentials()
}

/// Emulator identity 1: `teleport-node-role` in 333333333333, allowed by the seed token.
pub(crate) fn node_role() -> aws_credential_types::Credentials {
    sts_emulator::default_identities()[1].credentials()
}

/// A signed POST proof bound by `binding`, signed `age_secs` seconds ago (distinct ages give
/// distinct proofs, so each is a cache miss).
pub(crate) fn signed_proof(
    creds: &aws_credential_types::Credentials,
    binding: Binding,
    age_secs: u64,
) -> String {
    ProofBuilder::new(sts_endpoint(REGION, false).expect("region"), binding)
        .form(SigningForm::Post)
        .time(SystemTime::now() - Duration::from_secs(age_secs))
        .build(creds)
        .expect("proof")
}

pub(crate) fn audience_proof(creds: &aws_credential_types::Credentials, age_secs: u64) -> String {
    signed_proof(creds, Binding::Audience(AUDIENCE.to_owned()), age_secs)
}

/// `POST /v1/iam-join/challenge` at `issuer`, then a proof bound to that challenge.
pub(crate) async fn challenge_proof(
    issuer: &Replica,
    creds: &aws_credential_types::Credentials,
) -> String {
    let challenge = VerifierClient::new(&issuer.url(""))
        .expect("client")
        .fetch_challenge()
        .await
        .unwrap_or_else(|e| panic!("{}: challenge endpoint: {e}", issuer.name));
    assert_eq!(challenge.header, "x-teleport-challenge");
    signed_proof(
        creds,
        Binding::for_challenge(&challenge).expect("binding"),
        0,
    )
}

/// What a proxy answered.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Value,
}

impl Answer {
    pub(crate) fn code(&self) -> Option<&str> {
        self.body["error"]["code"].as_str()
    }
}

pub(crate) async fn send(replica: &Replica, method: &str, path: &str, proof: &str) -> Answer {
    let (k, v) = bearer(proof);
    let (status, headers, body) =
        request(method, &replica.url(path), &[(k, &v)], Bytes::new()).await;
    Answer {
        status,
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    }
}

/// A challenge join: `POST` the join path with `proof`.
pub(crate) async fn join(replica: &Replica, proof: &str) -> Answer {
    send(replica, "POST", JOIN_PATH, proof).await
}

/// An ordinary request with an audience-bound proof.
pub(crate) async fn get_app(replica: &Replica, proof: &str) -> Answer {
    send(replica, "GET", "/app", proof).await
}

/// The upstream answered (not the layer): its echo, forwarded by `replica`.
pub(crate) fn assert_forwarded_by(answer: &Answer, replica: &Replica) {
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "{}: {answer:?}",
        replica.name
    );
    assert_eq!(
        answer.body["headers"]["x-forwarded-host"][0].as_str(),
        Some(replica.addr.to_string().as_str()),
        "{}: not the upstream's echo via this proxy: {answer:?}",
        replica.name
    );
}
