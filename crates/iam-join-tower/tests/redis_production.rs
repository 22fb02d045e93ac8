//! Redis as it runs in production (issue 11): TLS (`rediss://`, a CA made by the test, mutual
//! TLS), ACL users with only the commands the backend needs, Redis Cluster, and a
//! Sentinel-managed primary that fails over. Every server is a real `redis-server` started by
//! the test on free 127.0.0.1 ports and killed at the end.
//!
//! Run with `cargo test -p iam-join-tower --features redis --test redis_production`.
#![cfg(feature = "redis")]

mod support_redis;

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;
use iam_join_tower::redis::{
    RedisBackend, RedisClientIdentity, RedisConfig, RedisSecret, RedisServers,
};
use iam_join_tower::{Rate, RateLimits};
use sts_emulator::Emulator;
use support_redis::{
    RedisCluster, RedisOptions, RedisSentinelSet, RedisServer, Replica, SENTINEL_MASTER, ServerTls,
    TestPki, alice, audience_proof, challenge_proof, client, replica, servers_config,
};

/// The minimal ACL rule the backend needs (deploy/README.md repeats it), for keys under
/// `prefix`.
fn minimal_acl_rule(user: &str, password: &str, prefix: &str) -> String {
    format!(
        "{user} on >{password} resetkeys ~{prefix}* resetchannels -@all \
         +get +set +del +evalsha +script|load +time +ping"
    )
}

fn generous() -> RateLimits {
    let lots = Rate {
        per_second: 10_000,
        burst: 10_000,
    };
    RateLimits {
        per_client: Some(lots),
        sts_budget: Some(lots),
        per_account: None,
    }
}

/// A challenge issued by `a` is redeemed once at `b` and refused at both afterwards.
async fn challenge_is_shared(a: &Replica, b: &Replica, from: u8) {
    let proof = challenge_proof(&alice(), &a.challenge(client(from)).await);
    let first = b.join(&proof, client(from)).await;
    assert_eq!(
        first.status,
        StatusCode::OK,
        "redeemed at {}: {first:?}",
        b.name
    );
    for r in [a, b] {
        let again = r.join(&proof, client(from)).await;
        assert_eq!(
            again.code.as_deref(),
            Some("challenge_reused"),
            "{}: {again:?}",
            r.name
        );
    }
}

/// Retries a challenge join (fresh challenge each time) until it is admitted; every failure
/// must be the documented fail-closed answer.
async fn until_challenges_work(a: &Replica, b: &Replica, within: Duration, what: &str) {
    let deadline = Instant::now() + within;
    loop {
        let proof = challenge_proof(&alice(), &a.challenge(client(40)).await);
        let answer = b.join(&proof, client(40)).await;
        if answer.status == StatusCode::OK {
            return;
        }
        assert_eq!(
            answer.code.as_deref(),
            Some("replay_store_unavailable"),
            "{what}: {answer:?}"
        );
        assert!(
            Instant::now() < deadline,
            "{what}: no recovery within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn tls_server(pki: &Arc<TestPki>, cert: &'static str, require_client_cert: bool) -> RedisServer {
    RedisServer::start_with(RedisOptions {
        tls: Some(ServerTls {
            pki: Arc::clone(pki),
            cert,
            require_client_cert,
        }),
        ..RedisOptions::default()
    })
}

fn tls_config(server: &RedisServer, pki: &TestPki, ca: &str, prefix: &str) -> RedisConfig {
    let mut config = servers_config(RedisServers::Primary(server.url()), prefix);
    config.tls.ca_pem = Some(pki.read(ca));
    config
}

fn client_identity(pki: &TestPki) -> RedisClientIdentity {
    RedisClientIdentity {
        cert_pem: pki.read("client.crt"),
        key_pem: RedisSecret::new(String::from_utf8(pki.read("client.key")).expect("PEM")),
    }
}

/// The reason a backend cannot use Redis, once the first attempt has been made.
async fn refusal(config: RedisConfig) -> String {
    let backend = RedisBackend::connect(config, generous())
        .await
        .expect("setup");
    let err = backend.ping().await.expect_err("Redis must be refused");
    err.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_the_given_ca_shares_challenges_between_replicas() {
    let pki = Arc::new(TestPki::generate());
    let server = tls_server(&pki, "server", false);
    let sts = Emulator::start().await.expect("emulator");
    let config = tls_config(&server, &pki, "ca.pem", "tls1:");
    let a = replica("A", config.clone(), generous(), &sts.url()).await;
    let b = replica("B", config, generous(), &sts.url()).await;
    assert_eq!(a.backend.ping().await, Ok(()));
    challenge_is_shared(&a, &b, 1).await;
    let keys = server.cli(&["--scan", "--pattern", "tls1:*"]);
    assert!(keys.contains("tls1:challenge:{"), "{keys}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_refuses_a_wrong_ca_the_system_roots_and_a_certificate_for_another_name() {
    let pki = Arc::new(TestPki::generate());
    let server = tls_server(&pki, "server", false);
    let wrong_name = tls_server(&pki, "wrong-name", false);

    let other_ca = refusal(tls_config(&server, &pki, "other-ca.pem", "tls2:")).await;
    assert!(other_ca.contains("certificate"), "wrong CA: {other_ca}");
    let mut system_roots = tls_config(&server, &pki, "ca.pem", "tls2:");
    system_roots.tls.ca_pem = None;
    let system = refusal(system_roots).await;
    assert!(system.contains("certificate"), "system roots: {system}");
    let name = refusal(tls_config(&wrong_name, &pki, "ca.pem", "tls2:")).await;
    assert!(
        name.contains("certificate") && name.contains("Name"),
        "server name: {name}"
    );

    // Refused means fail closed for challenges.
    let sts = Emulator::start().await.expect("emulator");
    let r = replica(
        "A",
        tls_config(&server, &pki, "other-ca.pem", "tls2:"),
        generous(),
        &sts.url(),
    )
    .await;
    let proof = challenge_proof(&alice(), &r.challenge(client(2)).await);
    let answer = r.join(&proof, client(2)).await;
    assert_eq!(
        answer.code.as_deref(),
        Some("replay_store_unavailable"),
        "{answer:?}"
    );
    assert_eq!(
        r.join(&audience_proof(&alice(), 0), client(2)).await.status,
        StatusCode::OK,
        "audience proofs do not need Redis"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_is_accepted_with_the_client_certificate_and_refused_without() {
    let pki = Arc::new(TestPki::generate());
    let server = tls_server(&pki, "server", true);

    let without = refusal(tls_config(&server, &pki, "ca.pem", "mtls:")).await;
    assert!(!without.is_empty());

    let sts = Emulator::start().await.expect("emulator");
    let mut config = tls_config(&server, &pki, "ca.pem", "mtls:");
    config.tls.client_identity = Some(client_identity(&pki));
    let a = replica("A", config.clone(), generous(), &sts.url()).await;
    let b = replica("B", config, generous(), &sts.url()).await;
    assert_eq!(a.backend.ping().await, Ok(()));
    challenge_is_shared(&a, &b, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_user_with_the_minimal_rule_runs_every_backend_operation() {
    let password = "acl-Pa55-word-for-test";
    let server = RedisServer::start_with(RedisOptions {
        users: vec![minimal_acl_rule("iam-join", password, "acl:")],
        default_password: Some("admin-only".into()),
        ..RedisOptions::default()
    });
    let sts = Emulator::start().await.expect("emulator");
    let mut config = servers_config(RedisServers::Primary(server.url()), "acl:");
    config.username = Some("iam-join".into());
    config.password = Some(RedisSecret::new(password));
    let a = replica("A", config.clone(), generous(), &sts.url()).await;
    let b = replica("B", config, generous(), &sts.url()).await;
    assert_eq!(a.backend.ping().await, Ok(()));

    // Replay store (SET NX), shared cache (scripts, SET, DEL, GET) and limits (a script that
    // reads TIME) all work under the rule.
    challenge_is_shared(&a, &b, 4).await;
    let proof = audience_proof(&alice(), 0);
    for r in [&a, &b] {
        assert_eq!(r.join(&proof, client(4)).await.status, StatusCode::OK);
    }
    assert_eq!(
        sts.calls(),
        2,
        "one challenge join, one shared audience answer"
    );
    let decision = a
        .backend
        .rate_limiter()
        .check(iam_join_tower::LimitScope::Client, "198.51.100.4")
        .await;
    assert_eq!(decision, iam_join_tower::ratelimit::RateDecision::Allow);
    let keys = server.cli(&["--scan", "--pattern", "acl:*"]);
    // (Limit states of these generous rates expire at once: the decision above is the proof
    // that the GCRA script ran, a denied script would fail open as `Unavailable`.)
    for kind in ["acl:challenge:{", "acl:sts:{"] {
        assert!(keys.contains(kind), "no {kind} key in {keys}");
    }
    // Nothing the backend relies on was denied. (redis-rs announces itself with
    // `CLIENT SETINFO` and ignores the answer: the one denial the minimal rule allows.)
    let log = server.cli(&["ACL", "LOG"]);
    let lines: Vec<&str> = log.lines().collect();
    for pair in lines.windows(2) {
        if pair[0] == "object" {
            assert_eq!(
                pair[1], "client|setinfo",
                "denied under the minimal rule: {log}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_refused_without_printing_it() {
    let server = RedisServer::start_with(RedisOptions {
        users: vec![minimal_acl_rule("iam-join", "the-right-one", "acl2:")],
        default_password: Some("admin-only".into()),
        ..RedisOptions::default()
    });
    let mut config = servers_config(RedisServers::Primary(server.url()), "acl2:");
    config.username = Some("iam-join".into());
    config.password = Some(RedisSecret::new("Wr0ng-Secret-Value"));
    let printed = format!("{config:?}");
    let why = refusal(config.clone()).await;
    assert!(why.to_lowercase().contains("authentication"), "{why}");
    for text in [&why, &printed] {
        assert!(!text.contains("Wr0ng-Secret-Value"), "{text}");
    }
    let backend = RedisBackend::connect(config, generous())
        .await
        .expect("setup");
    assert!(!format!("{backend:?}").contains("Wr0ng-Secret-Value"));
    assert!(
        backend
            .replay_store()
            .redeem("00", Duration::from_secs(60))
            .await
            .is_err(),
        "fails closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_shares_challenges_limits_and_cache_and_survives_a_master_restart() {
    let mut cluster = RedisCluster::start(&RedisOptions::default());
    let sts = Emulator::start().await.expect("emulator");
    sts.set_latency(Duration::from_millis(150));
    // A configuration endpoint alone is enough: the other masters are discovered.
    let config = servers_config(
        RedisServers::Cluster(vec![cluster.urls()[0].clone()]),
        "cl:",
    );
    let a = replica("A", config.clone(), generous(), &sts.url()).await;
    let b = replica("B", config, generous(), &sts.url()).await;
    for r in [&a, &b] {
        assert_eq!(r.backend.ping().await, Ok(()), "{}", r.name);
    }

    // Many challenges: their keys spread over all three masters.
    for i in 0..12 {
        challenge_is_shared(&a, &b, 50 + i).await;
    }

    // 1000 concurrent requests with one new proof across both replicas: one STS call (the
    // answer and its fill lock share a hash tag, so the lock script runs in one slot).
    let proof = audience_proof(&alice(), 0);
    let tasks: Vec<_> = (0..1000u32)
        .map(|i| {
            let r = if i % 2 == 0 { a.clone() } else { b.clone() };
            let proof = proof.clone();
            let from = client(u8::try_from(10 + i % 200).unwrap_or(10));
            tokio::spawn(async move { r.join(&proof, from).await })
        })
        .collect();
    for task in tasks {
        let answer = task.await.expect("task");
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    }
    assert_eq!(
        sts.calls(),
        12 + 1,
        "12 challenge joins and one shared audience answer"
    );
    sts.set_latency(Duration::ZERO);

    // The per-client limit is one budget across replicas and masters.
    let tight = RateLimits {
        per_client: Some(Rate {
            per_second: 1,
            burst: 3,
        }),
        sts_budget: None,
        per_account: None,
    };
    let limited = RedisBackend::connect(
        servers_config(RedisServers::Cluster(cluster.urls()), "cl:"),
        tight,
    )
    .await
    .expect("backend")
    .rate_limiter();
    let mut allowed = 0u64;
    let start = Instant::now();
    for _ in 0..6 {
        if limited
            .check(iam_join_tower::LimitScope::Client, "203.0.113.7")
            .await
            == iam_join_tower::ratelimit::RateDecision::Allow
        {
            allowed += 1;
        }
    }
    // GCRA: the burst, plus one per whole second elapsed (measured, so a slow machine loosens
    // the bound instead of failing it).
    let elapsed = start.elapsed().as_secs();
    assert!(
        allowed >= 3 && allowed <= 3 + elapsed + 1,
        "burst 3 in {elapsed} s, shared by all masters: {allowed} allowed"
    );

    // A master dies: challenge joins whose key lives there fail closed, audience proofs keep
    // working (limits fail open, the shared cache is bypassed).
    cluster.nodes[1].kill();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut refused = 0;
    while refused == 0 {
        let proof = challenge_proof(&alice(), &a.challenge(client(60)).await);
        let answer = b.join(&proof, client(60)).await;
        match answer.status {
            StatusCode::OK => {}
            _ => {
                assert_eq!(
                    answer.code.as_deref(),
                    Some("replay_store_unavailable"),
                    "{answer:?}"
                );
                refused += 1;
            }
        }
        let fresh = audience_proof(&alice(), 1 + u64::try_from(refused).unwrap_or(0));
        assert_eq!(a.join(&fresh, client(61)).await.status, StatusCode::OK);
        assert!(
            Instant::now() < deadline,
            "no challenge hit the dead master"
        );
    }

    // It comes back (same node id): everything works again without rebuilding the replicas.
    cluster.nodes[1].restart();
    cluster.wait_until_ok();
    for _ in 0..12 {
        until_challenges_work(&a, &b, Duration::from_secs(60), "after the master restart").await;
    }
    challenge_is_shared(&b, &a, 70).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_is_followed_without_a_restart() {
    let set = RedisSentinelSet::start();
    let sts = Emulator::start().await.expect("emulator");
    let servers = RedisServers::Sentinel {
        master_name: SENTINEL_MASTER.to_owned(),
        sentinels: vec![set.sentinel_url()],
    };
    let config = servers_config(servers, "sn:");
    let a = replica("A", config.clone(), generous(), &sts.url()).await;
    let b = replica("B", config, generous(), &sts.url()).await;
    challenge_is_shared(&a, &b, 80).await;
    assert_eq!(set.current_primary_port(), set.primary.port());

    set.failover();
    assert_eq!(set.current_primary_port(), set.replica.port());

    until_challenges_work(&a, &b, Duration::from_secs(60), "after the failover").await;
    until_challenges_work(&b, &a, Duration::from_secs(60), "after the failover").await;
    challenge_is_shared(&a, &b, 81).await;
    // Every redemption is on the new primary: the one from before (replicated) and the three
    // or more since (none lost to the old primary).
    let keys = set.replica.cli(&["--scan", "--pattern", "sn:challenge:*"]);
    assert!(keys.lines().count() >= 4, "{keys}");
}
