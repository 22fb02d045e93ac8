//! Replicas sharing challenges, rate limits and the STS cache through a real Redis (issue 6).
//!
//! Each test starts its own `redis-server` on a free 127.0.0.1 port and an STS emulator, and
//! drives two layers ("replicas" A and B, each with its own `RedisBackend`) with `oneshot`.
//! Run with `cargo test -p iam-join-tower --features redis --test redis`.
#![cfg(feature = "redis")]

mod support_redis;

use std::time::{Duration, Instant};

use http::StatusCode;
use iam_join_tower::{Rate, RateLimits};
use sts_emulator::Emulator;
use support_redis::{
    RedisServer, alice, assert_all_keys_expire, audience_proof, challenge_proof, client,
    redis_config, replica,
};

/// Limits high enough not to interfere.
fn generous() -> RateLimits {
    RateLimits {
        per_client: Some(Rate {
            per_second: 10_000,
            burst: 10_000,
        }),
        sts_budget: Some(Rate {
            per_second: 10_000,
            burst: 10_000,
        }),
        per_account: None,
        ..RateLimits::none()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenge_issued_by_a_is_redeemed_once_at_b_then_reused_everywhere() {
    let redis = RedisServer::start();
    let sts = Emulator::start().await.expect("emulator");
    let prefix = "t1:";
    let a = replica(
        "A",
        redis_config(&redis.url(), prefix),
        generous(),
        &sts.url(),
    )
    .await;
    let b = replica(
        "B",
        redis_config(&redis.url(), prefix),
        generous(),
        &sts.url(),
    )
    .await;
    let who = alice();

    let challenge = a.challenge(client(1)).await;
    let proof = challenge_proof(&who, &challenge);
    let first = b.join(&proof, client(1)).await;
    assert_eq!(first.status, StatusCode::OK, "redeemed at B: {first:?}");
    for replica in [&a, &b] {
        let again = replica.join(&proof, client(1)).await;
        assert_eq!(
            again.status,
            StatusCode::UNAUTHORIZED,
            "{}: {again:?}",
            replica.name
        );
        assert_eq!(
            again.code.as_deref(),
            Some("challenge_reused"),
            "{}",
            replica.name
        );
    }

    // The redemption key is namespaced and expires with the challenge (60 s + 60 s margin).
    let keys = assert_all_keys_expire(&redis, prefix).await;
    assert!(
        keys.iter().any(|k| k.starts_with("t1:challenge:")),
        "no challenge key in {keys:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_redemptions_of_one_challenge_at_both_replicas_admit_exactly_one() {
    let redis = RedisServer::start();
    let sts = Emulator::start().await.expect("emulator");
    let a = replica(
        "A",
        redis_config(&redis.url(), "t2:"),
        generous(),
        &sts.url(),
    )
    .await;
    let b = replica(
        "B",
        redis_config(&redis.url(), "t2:"),
        generous(),
        &sts.url(),
    )
    .await;
    let proof = challenge_proof(&alice(), &b.challenge(client(2)).await);

    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let replica = if i % 2 == 0 { a.clone() } else { b.clone() };
            let proof = proof.clone();
            tokio::spawn(async move { replica.join(&proof, client(2)).await })
        })
        .collect();
    let mut admitted = 0;
    for task in tasks {
        let answer = task.await.expect("task");
        if answer.status == StatusCode::OK {
            admitted += 1;
        } else {
            assert_eq!(
                answer.code.as_deref(),
                Some("challenge_reused"),
                "{answer:?}"
            );
        }
    }
    assert_eq!(admitted, 1, "one challenge, one admission across replicas");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_client_limit_holds_across_both_replicas_together() {
    let redis = RedisServer::start();
    let sts = Emulator::start().await.expect("emulator");
    let rate = Rate {
        per_second: 1,
        burst: 5,
    };
    let limits = RateLimits {
        per_client: Some(rate),
        sts_budget: None,
        per_account: None,
        ..RateLimits::none()
    };
    let a = replica("A", redis_config(&redis.url(), "t3:"), limits, &sts.url()).await;
    let b = replica("B", redis_config(&redis.url(), "t3:"), limits, &sts.url()).await;
    let who = alice();
    // Fresh proofs (each signed a second earlier than the last), so none is a cache hit.
    let proofs: Vec<String> = (0..12).map(|age| audience_proof(&who, age)).collect();

    let start = Instant::now();
    let mut admitted = 0u32;
    let mut limited_at = Vec::new();
    for (i, proof) in proofs.iter().enumerate() {
        let replica = if i % 2 == 0 { &a } else { &b };
        let answer = replica.join(proof, client(3)).await;
        match answer.status {
            StatusCode::OK => admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(answer.code.as_deref(), Some("rate_limited"), "{answer:?}");
                assert!(
                    answer.retry_after.is_some(),
                    "429 without Retry-After: {answer:?}"
                );
                limited_at.push(replica.name);
            }
            other => panic!("{}: unexpected {other}: {answer:?}", replica.name),
        }
    }
    let elapsed = start.elapsed();

    // GCRA: the burst at once, then one more per 1/per_second of elapsed time. The bound is
    // computed from the measured time, so a slow machine loosens it instead of failing.
    let allowance =
        u32::try_from(elapsed.as_micros() * u128::from(rate.per_second) / 1_000_000 + 1)
            .unwrap_or(u32::MAX);
    assert!(
        admitted >= rate.burst,
        "the burst must be admitted: {admitted}"
    );
    assert!(
        admitted <= rate.burst + allowance,
        "admitted {admitted} of 12 in {elapsed:?}; a shared limit allows at most {} \
         (per-replica limits would allow {} and more)",
        rate.burst + allowance,
        2 * rate.burst
    );
    if admitted < 12 {
        // Once the burst is spent, the next request is limited whichever replica it reaches.
        assert!(!limited_at.is_empty());
    }

    let keys = assert_all_keys_expire(&redis, "t3:").await;
    assert!(
        keys.iter()
            .any(|k| k.starts_with("t3:rl:client:{192.0.2.3}")),
        "no per-client key in {keys:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_requests_with_one_new_proof_make_one_sts_call() {
    let redis = RedisServer::start();
    let sts = Emulator::start().await.expect("emulator");
    // A slow STS widens the window in which both replicas miss at once.
    sts.set_latency(Duration::from_millis(150));
    let config = redis_config(&redis.url(), "t4:");
    let a = replica("A", config.clone(), generous(), &sts.url()).await;
    let b = replica("B", config, generous(), &sts.url()).await;
    // Both backends connected, so neither replica's first command is a connect.
    for r in [&a, &b] {
        assert!(
            r.backend.is_reachable().await,
            "{} cannot reach Redis",
            r.name
        );
    }
    let proof = audience_proof(&alice(), 0);

    let tasks: Vec<_> = (0..500u32)
        .map(|i| {
            let replica = if i % 2 == 0 { a.clone() } else { b.clone() };
            let proof = proof.clone();
            let from = client(u8::try_from(10 + i % 200).unwrap_or(10));
            tokio::spawn(async move { replica.join(&proof, from).await })
        })
        .collect();
    for task in tasks {
        let answer = task.await.expect("task");
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    }
    assert_eq!(
        sts.calls(),
        1,
        "500 requests over two replicas, one STS call"
    );

    // The shared answer and no lock remain; the answer expires with the proof.
    let keys = assert_all_keys_expire(&redis, "t4:").await;
    assert!(
        keys.iter().any(|k| k.starts_with("t4:sts:")),
        "no shared answer in {keys:?}"
    );
    assert!(
        !keys.iter().any(|k| k.starts_with("t4:sts-lock:")),
        "fill lock left behind: {keys:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_fails_challenges_closed_keeps_audience_proofs_working_and_recovers() {
    let mut redis = RedisServer::start();
    let sts = Emulator::start().await.expect("emulator");
    let a = replica(
        "A",
        redis_config(&redis.url(), "t5:"),
        generous(),
        &sts.url(),
    )
    .await;
    let b = replica(
        "B",
        redis_config(&redis.url(), "t5:"),
        generous(),
        &sts.url(),
    )
    .await;
    let who = alice();
    let bounded = Duration::from_secs(30);

    // Healthy: a challenge join works across replicas.
    let proof = challenge_proof(&who, &a.challenge(client(5)).await);
    assert_eq!(b.join(&proof, client(5)).await.status, StatusCode::OK);

    redis.kill();

    // Challenge joins fail closed, promptly.
    for (issuer, redeemer) in [(&a, &b), (&b, &a)] {
        let proof = challenge_proof(&who, &issuer.challenge(client(5)).await);
        let answer = tokio::time::timeout(bounded, redeemer.join(&proof, client(5)))
            .await
            .expect("a challenge join must not hang while Redis is down");
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{answer:?}");
        assert_eq!(answer.code.as_deref(), Some("replay_store_unavailable"));
        assert!(answer.retry_after.is_some());
    }

    // Audience-bound proofs keep working: limits fail open, the shared cache is bypassed.
    let fresh = audience_proof(&who, 1);
    for replica in [&a, &b, &a] {
        let answer = tokio::time::timeout(bounded, replica.join(&fresh, client(5)))
            .await
            .expect("an audience join must not hang while Redis is down");
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{}: {answer:?}",
            replica.name
        );
    }

    redis.restart();

    // Recovery without rebuilding the layers: the first command after the restart may still
    // see the old connection fail; retry with fresh challenges for a bounded time.
    let deadline = Instant::now() + bounded;
    loop {
        let proof = challenge_proof(&who, &b.challenge(client(5)).await);
        let answer = a.join(&proof, client(5)).await;
        if answer.status == StatusCode::OK {
            break;
        }
        assert_eq!(
            answer.code.as_deref(),
            Some("replay_store_unavailable"),
            "{answer:?}"
        );
        assert!(
            Instant::now() < deadline,
            "no recovery within {bounded:?} of Redis restarting"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Everything is shared again: replay protection across replicas...
    let proof = challenge_proof(&who, &a.challenge(client(5)).await);
    assert_eq!(b.join(&proof, client(5)).await.status, StatusCode::OK);
    let reused = a.join(&proof, client(5)).await;
    assert_eq!(
        reused.code.as_deref(),
        Some("challenge_reused"),
        "{reused:?}"
    );
    // ...the shared cache (B reuses A's answer; B must also be reconnected)...
    while !b.backend.is_reachable().await {
        assert!(Instant::now() < deadline, "B did not reconnect");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = sts.calls();
    // Another identity: certainly a proof neither replica has seen.
    let bob = sts_emulator::default_identities().remove(4);
    let new_proof = audience_proof(&bob, 0);
    assert_eq!(a.join(&new_proof, client(5)).await.status, StatusCode::OK);
    assert_eq!(b.join(&new_proof, client(5)).await.status, StatusCode::OK);
    assert_eq!(
        sts.calls() - before,
        1,
        "B should reuse A's answer from Redis"
    );
    // ...and the limits (decided by Redis again, not failing open).
    for r in [&a, &b] {
        let decision = r
            .backend
            .rate_limiter()
            .check(iam_join_tower::LimitScope::Client, "198.51.100.9")
            .await;
        assert_eq!(
            decision,
            iam_join_tower::ratelimit::RateDecision::Allow,
            "{}",
            r.name
        );
    }
    let keys = assert_all_keys_expire(&redis, "t5:").await;
    assert!(
        keys.iter().any(|k| k.starts_with("t5:sts:")),
        "no shared answer after recovery: {keys:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_redis_times_out_instead_of_hanging_and_recovers_when_it_answers_again() {
    let redis = RedisServer::start();
    let sts = Emulator::start().await.expect("emulator");
    // The production default: a hung Redis costs a request at most 250 ms per command.
    let mut config = redis_config(&redis.url(), "t7:");
    config.command_timeout = Duration::from_millis(250);
    let a = replica("A", config.clone(), generous(), &sts.url()).await;
    let b = replica("B", config, generous(), &sts.url()).await;
    let who = alice();
    let bounded = Duration::from_secs(30);
    assert!(a.backend.is_reachable().await && b.backend.is_reachable().await);

    redis.pause();
    let proof = challenge_proof(&who, &a.challenge(client(7)).await);
    let answer = tokio::time::timeout(bounded, b.join(&proof, client(7)))
        .await
        .expect("a challenge join must not hang while Redis does not answer");
    assert_eq!(
        answer.code.as_deref(),
        Some("replay_store_unavailable"),
        "{answer:?}"
    );
    let fresh = audience_proof(&who, 0);
    for replica in [&a, &b] {
        let answer = tokio::time::timeout(bounded, replica.join(&fresh, client(7)))
            .await
            .expect("an audience join must not hang while Redis does not answer");
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{}: {answer:?}",
            replica.name
        );
    }

    redis.resume();
    let deadline = Instant::now() + bounded;
    loop {
        let proof = challenge_proof(&who, &a.challenge(client(7)).await);
        let answer = b.join(&proof, client(7)).await;
        if answer.status == StatusCode::OK {
            let reused = a.join(&proof, client(7)).await;
            assert_eq!(
                reused.code.as_deref(),
                Some("challenge_reused"),
                "{reused:?}"
            );
            break;
        }
        assert_eq!(
            answer.code.as_deref(),
            Some("replay_store_unavailable"),
            "{answer:?}"
        );
        assert!(
            Instant::now() < deadline,
            "no recovery within {bounded:?} of Redis answering again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_starts_while_redis_is_down_and_connects_when_it_comes_up() {
    let mut redis = RedisServer::start();
    let port = redis.port();
    redis.kill();
    let sts = Emulator::start().await.expect("emulator");
    let a = replica(
        "A",
        redis_config(&format!("redis://127.0.0.1:{port}"), "t6:"),
        generous(),
        &sts.url(),
    )
    .await;

    let proof = challenge_proof(&alice(), &a.challenge(client(6)).await);
    let answer = a.join(&proof, client(6)).await;
    assert_eq!(
        answer.code.as_deref(),
        Some("replay_store_unavailable"),
        "{answer:?}"
    );
    assert_eq!(
        a.join(&audience_proof(&alice(), 0), client(6)).await.status,
        StatusCode::OK
    );

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let proof = challenge_proof(&alice(), &a.challenge(client(6)).await);
        if a.join(&proof, client(6)).await.status == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "no recovery after Redis came up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitive_sts_rejections_are_shared_too() {
    let redis = RedisServer::start();
    let sts = Emulator::start().await.expect("emulator");
    let a = replica(
        "A",
        redis_config(&redis.url(), "t8:"),
        generous(),
        &sts.url(),
    )
    .await;
    let b = replica(
        "B",
        redis_config(&redis.url(), "t8:"),
        generous(),
        &sts.url(),
    )
    .await;
    let stranger = sts_emulator::TestIdentity {
        access_key_id: "AKIAUNKNOWNKEY000001".into(),
        secret_access_key: "UnknownSecret/DoNotUse+000000000000000001".into(),
        session_token: None,
        account: "111111111111".into(),
        arn: "arn:aws:iam::111111111111:user/stranger".into(),
        user_id: "AIDAUNKNOWN".into(),
    };
    let proof = audience_proof(&stranger, 0);
    for replica in [&a, &b, &a] {
        let answer = replica.join(&proof, client(8)).await;
        assert_eq!(
            answer.code.as_deref(),
            Some("sts_rejected"),
            "{}: {answer:?}",
            replica.name
        );
    }
    assert_eq!(sts.calls(), 1, "B reuses A's rejection");
    let keys = assert_all_keys_expire(&redis, "t8:").await;
    assert!(keys.iter().any(|k| k.starts_with("t8:sts:")), "{keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_limiter_decides_like_the_in_memory_limiter() {
    use iam_join_tower::LimitScope;
    use iam_join_tower::ratelimit::{MemoryRateLimiter, RateDecision, RateLimiterBackend};

    let redis = RedisServer::start();
    let limits = RateLimits {
        per_client: Some(Rate {
            per_second: 1,
            burst: 3,
        }),
        sts_budget: None,
        per_account: Some(Rate {
            per_second: 1,
            burst: 1,
        }),
        ..RateLimits::none()
    };
    let backend =
        iam_join_tower::redis::RedisBackend::connect(redis_config(&redis.url(), "t9:"), limits)
            .await
            .expect("backend");
    let shared = backend.rate_limiter();
    let memory = MemoryRateLimiter::new(limits);
    for (scope, key, n) in [
        (LimitScope::Client, "198.51.100.1", 4),
        (LimitScope::Account, "111111111111", 2),
        (LimitScope::StsBudget, "sts", 50),
    ] {
        for i in 0..n {
            let (s, m) = (
                shared.check(scope, key).await,
                memory.check(scope, key).await,
            );
            match (s, m) {
                (RateDecision::Allow, RateDecision::Allow) => {}
                (RateDecision::Limited(ws), RateDecision::Limited(wm)) => {
                    let per =
                        Duration::from_secs(1) / limits.rate(scope).map_or(1, |r| r.per_second);
                    assert!(ws > Duration::ZERO && ws <= per, "{scope:?} wait {ws:?}");
                    assert!(wm <= per, "{scope:?} in-memory wait {wm:?}");
                }
                other => panic!("{scope:?} check {i}: shared and in-memory differ: {other:?}"),
            }
        }
    }
    // Another key has its own budget.
    assert_eq!(
        shared.check(LimitScope::Client, "198.51.100.2").await,
        RateDecision::Allow
    );
    assert_all_keys_expire(&redis, "t9:").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fill_lock_makes_other_replicas_wait_for_the_answer_but_never_its_owner() {
    use iam_join_core::StsAnswer;
    use iam_join_tower::cache::SharedOutcome;
    use iam_join_tower::redis::RedisBackend;

    let redis = RedisServer::start();
    let connect = |wait: Duration| {
        let cfg = redis_config(&redis.url(), "t10:");
        async move {
            RedisBackend::connect(cfg, generous())
                .await
                .expect("backend")
                .with_fill_wait(wait)
        }
    };
    let a = connect(Duration::from_secs(30)).await.shared_cache();
    let b = connect(Duration::from_secs(30)).await.shared_cache();
    let impatient = connect(Duration::from_millis(300)).await.shared_cache();
    let answer = SharedOutcome::Identity(StsAnswer {
        account: "111111111111".into(),
        arn: "arn:aws:iam::111111111111:user/alice".into(),
        user_id: "AIDAEMULATORALICE0001".into(),
    });
    let bounded = Duration::from_secs(10);

    // A misses and takes the lock; B waits until A stores the answer.
    assert_eq!(a.get("k1").await, None);
    let waiter = {
        let b = b.clone();
        tokio::spawn(async move { b.get("k1").await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiter.is_finished(), "B must wait while A fills");
    a.put("k1", &answer, Duration::from_secs(60)).await;
    let got = tokio::time::timeout(bounded, waiter)
        .await
        .expect("B gets the answer once A stores it")
        .expect("task");
    assert_eq!(got, Some(answer.clone()));

    // A's fill of k2 ends without an answer (STS unavailable): A's next miss is not held up by
    // its own lock; another replica gives up after its fill wait and reports a miss.
    assert_eq!(a.get("k2").await, None);
    let again = tokio::time::timeout(bounded, a.get("k2")).await;
    assert_eq!(again, Ok(None), "A must not wait for its own lock");
    assert_eq!(
        tokio::time::timeout(bounded, impatient.get("k2")).await,
        Ok(None),
        "a waiter gives up after its fill wait"
    );

    let keys = assert_all_keys_expire(&redis, "t10:").await;
    assert!(keys.contains(&"t10:sts-lock:{k2}".to_owned()), "{keys:?}");
    assert!(
        !keys.contains(&"t10:sts-lock:{k1}".to_owned()),
        "a put releases the lock: {keys:?}"
    );
}
