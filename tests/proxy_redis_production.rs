//! Two real `iam-join-proxy` instances configured through YAML for Redis as it runs in
//! production (issue 11): `rediss://` with the CA and a client certificate from files, an ACL
//! user whose password comes from `password_file`, and Redis Cluster. `/readyz` reports whether
//! Redis answers without taking the proxy out of rotation; `check-config` names the field at
//! fault.
//!
//! Run with `cargo test -p iam-join-e2e --features redis --test proxy_redis_production`.
#![cfg(feature = "redis")]

mod redis_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use iam_join_e2e::request;
use redis_support::{
    RedisCluster, RedisOptions, RedisServer, Replica, Replicas, ServerTls, TestPki,
    assert_forwarded_by, audience_proof, challenge_proof, get_app, join, node_role,
};

const GENEROUS: &str = "{per_client: {per_second: 10000, burst: 10000}, \
                        sts_budget: {per_second: 10000, burst: 10000}}";
const PASSWORD: &str = "e2e-acl-Pa55word";
/// The minimal rule of deploy/README.md, for the test's key prefix.
const ACL_RULE: &str = "iam-join on >e2e-acl-Pa55word resetkeys ~e2e-replicas:* resetchannels \
                        -@all +get +set +del +evalsha +script|load +time +ping";

/// `/readyz` of `replica`: status and body.
async fn readyz(replica: &Replica) -> (StatusCode, String) {
    let (status, _, body) = request(
        "GET",
        &format!("http://{}/readyz", replica.admin),
        &[],
        Bytes::new(),
    )
    .await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Waits (bounded) until `/readyz` of `replica` mentions `what`; it must stay 200 throughout.
async fn readyz_says(replica: &Replica, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = readyz(replica).await;
        assert_eq!(status, StatusCode::OK, "{}: {body}", replica.name);
        if body.contains(what) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}: /readyz never said {what:?}: {body}",
            replica.name
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Issued by `issuer`, redeemed once at `redeemer`, replays refused at both.
async fn challenge_is_shared(issuer: &Replica, redeemer: &Replica) {
    let proof = challenge_proof(issuer, &node_role()).await;
    assert_forwarded_by(&join(redeemer, &proof).await, redeemer);
    for r in [issuer, redeemer] {
        let replay = join(r, &proof).await;
        assert_eq!(
            replay.code(),
            Some("challenge_reused"),
            "{}: {replay:?}",
            r.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_share_challenges_over_mutual_tls_with_an_acl_user_from_a_password_file() {
    let pki = Arc::new(TestPki::generate());
    let redis = RedisServer::start_with(RedisOptions {
        tls: Some(ServerTls {
            pki: Arc::clone(&pki),
            cert: "server",
            require_client_cert: true,
        }),
        users: vec![ACL_RULE.to_owned()],
        default_password: Some("admin-only".into()),
        ..RedisOptions::default()
    });
    let servers = format!(
        "url: \"{}\"\nusername: iam-join\npassword_file: redis-password\n\
         tls: {{ca_file: redis-ca.pem, cert: redis-client.crt, key: redis-client.key}}",
        redis.url()
    );
    let (password, ca, cert, key) = (
        format!("{PASSWORD}\n"),
        pki.read("ca.pem"),
        pki.read("client.crt"),
        pki.read("client.key"),
    );
    let files: [(&str, &[u8]); 4] = [
        ("redis-password", password.as_bytes()),
        ("redis-ca.pem", &ca),
        ("redis-client.crt", &cert),
        ("redis-client.key", &key),
    ];
    let r = Replicas::start_with(&servers, GENEROUS, &files).await;

    readyz_says(&r.a, "redis reachable").await;
    challenge_is_shared(&r.a, &r.b).await;
    challenge_is_shared(&r.b, &r.a).await;
    // The shared cache: B reuses A's answer.
    let proof = audience_proof(&node_role(), 0);
    let before = r.sts.calls();
    assert_forwarded_by(&get_app(&r.a, &proof).await, &r.a);
    assert_forwarded_by(&get_app(&r.b, &proof).await, &r.b);
    assert_eq!(r.sts.calls() - before, 1);
    let keys = redis.cli(&["--scan", "--pattern", "e2e-replicas:*"]);
    assert!(keys.contains("e2e-replicas:challenge:{"), "{keys}");
    assert!(keys.contains("e2e-replicas:sts:{"), "{keys}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_redis_keeps_the_proxy_ready_fails_challenges_closed_and_hides_the_password() {
    let redis = RedisServer::start_with(RedisOptions {
        users: vec![ACL_RULE.to_owned()],
        default_password: Some("admin-only".into()),
        ..RedisOptions::default()
    });
    let servers = format!(
        "url: \"{}\"\nusername: iam-join\npassword_file: redis-password",
        redis.url()
    );
    let files: [(&str, &[u8]); 1] = [("redis-password", b"Not-The-Password-42\n")];
    let r = Replicas::start_with(&servers, GENEROUS, &files).await;

    readyz_says(&r.a, "redis unreachable").await;
    let proof = challenge_proof(&r.a, &node_role()).await;
    let answer = join(&r.b, &proof).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{answer:?}");
    assert_eq!(answer.code(), Some("replay_store_unavailable"));
    assert!(!answer.body.to_string().contains("Not-The-Password-42"));
    // Audience-bound proofs do not need Redis.
    let fresh = audience_proof(&node_role(), 0);
    assert_forwarded_by(&get_app(&r.a, &fresh).await, &r.a);
}

#[test]
fn check_config_reads_the_redis_files_and_names_the_field_at_fault() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("tokens")).expect("mkdir");
    std::fs::write(
        dir.path().join("tokens/token.yaml"),
        iam_join_e2e::SEED_TOKENS,
    )
    .expect("tokens");
    std::fs::write(dir.path().join("challenge.key"), "k".repeat(64)).expect("key");
    let base = "listen: 127.0.0.1:0\nupstream: {url: \"http://127.0.0.1:9\"}\n\
                audience: a.example\ntokens: tokens/token.yaml\nchallenge_key_file: challenge.key\n";
    for (redis, field) in [
        (
            "{url: \"rediss://localhost:6380\", password_file: missing}",
            "redis.password_file",
        ),
        (
            "{url: \"rediss://localhost:6380\", tls: {ca_file: missing.pem}}",
            "redis.tls.ca_file",
        ),
        (
            "{url: \"rediss://localhost:6380\", tls: {cert: tokens/token.yaml, key: challenge.key}}",
            "redis.tls.cert",
        ),
        (
            "{url: \"redis://localhost:6380\", password_env: IAM_JOIN_E2E_SURELY_UNSET}",
            "redis.password_env",
        ),
    ] {
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, format!("{base}redis: {redis}\n")).expect("config");
        let config = iam_join_proxy::Config::load(&path).expect("the shape is valid");
        let err = iam_join_proxy::check_config(&config).expect_err(redis);
        match err {
            iam_join_proxy::ProxyError::Config(e) => {
                assert_eq!(e.field(), Some(field), "{redis}: {e}");
            }
            other => panic!("{redis}: {other}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_share_challenges_limits_and_cache_through_a_redis_cluster() {
    let cluster = tokio::task::block_in_place(|| RedisCluster::start(&RedisOptions::default()));
    let servers = format!("cluster: [\"{}\"]", cluster.urls()[0]);
    let r = Replicas::start_with(&servers, GENEROUS, &[]).await;
    readyz_says(&r.b, "redis reachable").await;
    for _ in 0..6 {
        challenge_is_shared(&r.a, &r.b).await;
    }
    // 200 concurrent requests with one new proof over both proxies: one STS call.
    let proof = audience_proof(&node_role(), 0);
    let before = r.sts.calls();
    let (a, b) = (Arc::new(r.a), Arc::new(r.b));
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let replica = if i % 2 == 0 {
                Arc::clone(&a)
            } else {
                Arc::clone(&b)
            };
            let proof = proof.clone();
            tokio::spawn(async move {
                let answer = get_app(&replica, &proof).await;
                assert_forwarded_by(&answer, &replica);
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("request");
    }
    assert_eq!(r.sts.calls() - before, 1);
}
