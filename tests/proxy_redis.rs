//! Two real `iam-join-proxy` instances (A and B, built with the `redis` feature) sharing one real
//! `redis-server` through their YAML configuration (issue 6): challenges issued by one are
//! redeemed once across both, a per-client rate limit holds across both together, and a Redis
//! outage fails challenge joins closed, keeps audience-bound proofs working, and heals without
//! restarting the proxies.
//!
//! client → proxy A or B → sts-emulator, → echo upstream; proxies ↔ redis-server; all on
//! 127.0.0.1. Each test starts its own `redis-server` on a free port and fails (never skips) if
//! there is none on `PATH`.
//!
//! Run with `cargo test -p iam-join-e2e --features redis --test proxy_redis`.
#![cfg(feature = "redis")]

mod redis_support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use iam_join_e2e::{JOIN_PATH, request};
use redis_support::{
    RedisServer, Replicas, alice, assert_forwarded_by, audience_proof, challenge_proof, get_app,
    join, node_role,
};

/// Per-client limits high enough never to interfere.
const GENEROUS: &str = "{per_client: {per_second: 10000, burst: 10000}, \
                        sts_budget: {per_second: 10000, burst: 10000}}";

/// Bounded polling after Redis restarts: attempts and the pause between them.
const RECOVERY_ATTEMPTS: u32 = 300;
const RECOVERY_PAUSE: Duration = Duration::from_millis(100);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenge_issued_by_a_is_redeemed_once_at_b_and_its_replay_fails_at_both() {
    let redis = RedisServer::start();
    let r = Replicas::start(&redis.url(), GENEROUS).await;
    let creds = node_role();

    let proof = challenge_proof(&r.a, &creds).await;
    let first = join(&r.b, &proof).await;
    assert_forwarded_by(&first, &r.b);
    assert_eq!(
        first.body["headers"]["x-iam-join-account"][0].as_str(),
        Some("333333333333"),
        "{first:?}"
    );
    assert_eq!(first.body["path"], JOIN_PATH);

    for (replica, again) in [(&r.a, 1), (&r.b, 2), (&r.a, 3)] {
        let replay = join(replica, &proof).await;
        assert_eq!(
            replay.status,
            StatusCode::UNAUTHORIZED,
            "replay {again} at {}: {replay:?}",
            replica.name
        );
        assert_eq!(
            replay.code(),
            Some("challenge_reused"),
            "replay {again} at {}: {replay:?}",
            replica.name
        );
    }

    // And the other way round: issued by B, redeemed at A, replayed at B.
    let proof = challenge_proof(&r.b, &creds).await;
    assert_forwarded_by(&join(&r.a, &proof).await, &r.a);
    let replay = join(&r.b, &proof).await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED, "{replay:?}");
    assert_eq!(replay.code(), Some("challenge_reused"), "{replay:?}");
    // The proofs that were admitted made one STS call each; replays made none.
    assert_eq!(r.sts.calls(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_client_limit_from_the_yaml_holds_across_both_proxies_together() {
    const PER_SECOND: u32 = 1;
    const BURST: u32 = 5;
    const REQUESTS: u32 = 14;
    let redis = RedisServer::start();
    let r = Replicas::start(
        &redis.url(),
        &format!("{{per_client: {{per_second: {PER_SECOND}, burst: {BURST}}}}}"),
    )
    .await;
    // Fresh proofs, all signed beforehand: each one signed a second earlier than the last, and
    // by two identities, so none is a cache hit (in either proxy or in Redis).
    let (alice, node) = (alice(), node_role());
    let proofs: Vec<String> = (0..REQUESTS)
        .map(|i| {
            let creds = if i % 2 == 0 { &alice } else { &node };
            audience_proof(creds, u64::from(i))
        })
        .collect();

    let start = Instant::now();
    let mut admitted = 0u32;
    let mut admitted_at = Vec::new();
    let mut limited_at = Vec::new();
    for (i, proof) in proofs.iter().enumerate() {
        // Same client address (127.0.0.1), alternating proxies.
        let replica = if i % 2 == 0 { &r.a } else { &r.b };
        let answer = get_app(replica, proof).await;
        match answer.status {
            StatusCode::OK => {
                assert_forwarded_by(&answer, replica);
                admitted += 1;
                admitted_at.push(replica.name);
            }
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(answer.code(), Some("rate_limited"), "{answer:?}");
                assert!(
                    answer.headers.contains_key(http::header::RETRY_AFTER),
                    "429 without Retry-After: {answer:?}"
                );
                limited_at.push(replica.name);
            }
            other => panic!(
                "request {i} at {}: unexpected {other}: {answer:?}",
                replica.name
            ),
        }
    }
    let elapsed = start.elapsed();

    // GCRA: the burst at once, then one more per 1/per_second of elapsed time. The bound is
    // computed from the measured time, so a slow machine loosens it instead of failing.
    let allowance = u32::try_from(elapsed.as_micros() * u128::from(PER_SECOND) / 1_000_000 + 1)
        .unwrap_or(u32::MAX);
    let summary = format!(
        "admitted {admitted} of {REQUESTS} in {elapsed:?} (admitted at {admitted_at:?}, \
         limited at {limited_at:?})"
    );
    assert!(admitted >= BURST, "the burst must be admitted: {summary}");
    assert!(
        admitted <= BURST + allowance,
        "{summary}; a limit shared by both proxies allows at most {}",
        BURST + allowance
    );
    assert!(
        admitted < 2 * BURST,
        "{summary}; per-proxy limits would admit {} (a burst at each)",
        2 * BURST
    );
    assert_eq!(
        admitted + u32::try_from(limited_at.len()).expect("count"),
        REQUESTS
    );
    // Both proxies admitted some of the burst and both refused once it was spent.
    for name in ["A", "B"] {
        assert!(
            admitted_at.contains(&name),
            "{name} admitted none: {summary}"
        );
        assert!(limited_at.contains(&name), "{name} limited none: {summary}");
    }
    // Only admitted proofs reached STS: limited ones were refused before any STS work.
    assert_eq!(r.sts.calls(), u64::from(admitted), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_fails_challenge_joins_closed_keeps_audience_proofs_working_and_recovers() {
    let mut redis = RedisServer::start();
    let r = Replicas::start(&redis.url(), GENEROUS).await;
    let creds = node_role();

    // Healthy: a challenge join works across the proxies.
    let proof = challenge_proof(&r.a, &creds).await;
    assert_forwarded_by(&join(&r.b, &proof).await, &r.b);

    tokio::task::block_in_place(|| redis.kill());

    // Challenge joins fail closed, at both proxies (issuing a challenge needs no Redis: it is
    // self-verifying; redeeming it does). `request` gives up after PATIENCE, so a hang fails.
    for (issuer, redeemer) in [(&r.a, &r.b), (&r.b, &r.a)] {
        let proof = challenge_proof(issuer, &creds).await;
        let answer = join(redeemer, &proof).await;
        assert_eq!(
            answer.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "issued by {}, redeemed at {}: {answer:?}",
            issuer.name,
            redeemer.name
        );
        assert_eq!(
            answer.code(),
            Some("replay_store_unavailable"),
            "{answer:?}"
        );
        assert!(
            answer.headers.contains_key(http::header::RETRY_AFTER),
            "503 without Retry-After: {answer:?}"
        );
    }

    // Audience-bound proofs keep working: limits fail open, the shared cache is bypassed.
    let fresh = audience_proof(&alice(), 1);
    for replica in [&r.a, &r.b, &r.a] {
        let answer = get_app(replica, &fresh).await;
        assert_forwarded_by(&answer, replica);
        assert_eq!(
            answer.body["headers"]["x-iam-join-account"][0].as_str(),
            Some("111111111111"),
            "{answer:?}"
        );
    }
    // The failed-open limit check is counted.
    let (status, _, metrics) = request(
        "GET",
        &format!("http://{}/metrics", r.a.admin),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("iam_join_rate_limited_total")
                && l.contains("client_failed_open")),
        "no failed-open rate limit counted:\n{metrics}"
    );

    tokio::task::block_in_place(|| redis.restart());

    // Recovery without restarting the proxies: each reconnects on its own. Poll a bounded
    // number of times with fresh challenges; until then the only acceptable answer is the
    // fail-closed 503.
    for (issuer, redeemer) in [(&r.b, &r.a), (&r.a, &r.b)] {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let proof = challenge_proof(issuer, &creds).await;
            let answer = join(redeemer, &proof).await;
            if answer.status == StatusCode::OK {
                assert_forwarded_by(&answer, redeemer);
                break;
            }
            assert_eq!(
                answer.code(),
                Some("replay_store_unavailable"),
                "while {} reconnects: {answer:?}",
                redeemer.name
            );
            assert!(
                attempt < RECOVERY_ATTEMPTS,
                "{} did not recover after {RECOVERY_ATTEMPTS} attempts since Redis restarted",
                redeemer.name
            );
            tokio::time::sleep(RECOVERY_PAUSE).await;
        }
    }

    // Shared again: issued by A, redeemed once at B, replay refused at both.
    let proof = challenge_proof(&r.a, &creds).await;
    assert_forwarded_by(&join(&r.b, &proof).await, &r.b);
    for replica in [&r.a, &r.b] {
        let replay = join(replica, &proof).await;
        assert_eq!(replay.status, StatusCode::UNAUTHORIZED, "{replay:?}");
        assert_eq!(
            replay.code(),
            Some("challenge_reused"),
            "at {}: {replay:?}",
            replica.name
        );
    }
}
