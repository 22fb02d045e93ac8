//! The fair STS budget (tests/sts_budget.rs) with the Redis backend: the per-key-id limit and the
//! reserved share are buckets in Redis, shared by replicas, keyed by a digest of the key id.
//! Run with `cargo test -p iam-join-tower --features redis --test sts_budget_redis`.
#![cfg(feature = "redis")]

mod support_redis;

use iam_join_testkit::identities::bob;
use iam_join_tower::{Rate, RateLimits};
use sts_emulator::{Emulator, TestIdentity};
use support_redis::{
    RedisServer, alice, assert_all_keys_expire, audience_proof, client, redis_config, replica,
};

/// `who`'s key id with a secret STS will not accept (`SignatureDoesNotMatch`).
fn with_wrong_secret(who: &TestIdentity) -> TestIdentity {
    TestIdentity {
        secret_access_key: "wrong-secret-wrong-secret-wrong-secret-0".to_owned(),
        ..who.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_key_id_limit_is_shared_by_replicas_under_a_digest_of_the_key_id() {
    let redis = RedisServer::start();
    let sts = Emulator::start().await.expect("emulator");
    let limits = RateLimits {
        per_key_id: Some(Rate {
            per_second: 1,
            burst: 2,
        }),
        ..RateLimits::default()
    };
    let a = replica("A", redis_config(&redis.url(), "t20:"), limits, &sts.url()).await;
    let b = replica("B", redis_config(&redis.url(), "t20:"), limits, &sts.url()).await;
    let junk = with_wrong_secret(&bob());
    let codes = [
        a.join(&audience_proof(&junk, 0), client(1)).await.code,
        b.join(&audience_proof(&junk, 1), client(2)).await.code,
        a.join(&audience_proof(&junk, 2), client(3)).await.code,
        b.join(&audience_proof(&junk, 3), client(4)).await.code,
    ];
    let codes: Vec<&str> = codes.iter().map(|c| c.as_deref().unwrap_or("")).collect();
    assert_eq!(
        codes,
        [
            "sts_rejected",
            "sts_rejected",
            "rate_limited",
            "rate_limited"
        ]
    );
    assert_eq!(sts.calls(), 2);
    let keys = assert_all_keys_expire(&redis, "t20:").await;
    assert!(
        keys.iter().any(|k| k.starts_with("t20:rl:key_id:")),
        "{keys:?}"
    );
    let key_id = bob().access_key_id;
    assert!(
        keys.iter()
            .all(|k| !k.to_ascii_uppercase().contains(&key_id)),
        "a Redis key holds the access key id: {keys:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admitted_client_spends_the_reserved_share_in_redis_when_junk_took_the_rest() {
    let redis = RedisServer::start();
    let sts = Emulator::start().await.expect("emulator");
    // Shares of 1 a second, burst 1, each: one cell for the open share, one reserved.
    let limits = RateLimits {
        sts_budget: Some(Rate {
            per_second: 2,
            burst: 2,
        }),
        ..RateLimits::default()
    };
    let a = replica("A", redis_config(&redis.url(), "t21:"), limits, &sts.url()).await;
    let who = alice();
    // Alice is not yet known: her first join spends the open share's only cell.
    let first = a.join(&audience_proof(&who, 0), client(1)).await;
    assert_eq!(first.code, None, "{:?}", first.body);
    // Junk finds the open share empty.
    let junk = a
        .join(&audience_proof(&with_wrong_secret(&bob()), 0), client(2))
        .await;
    assert_eq!(junk.code.as_deref(), Some("rate_limited"));
    // Alice, admitted a moment ago, has the reserved cell.
    let again = a.join(&audience_proof(&who, 1), client(1)).await;
    assert_eq!(again.code, None, "{:?}", again.body);
    let keys = assert_all_keys_expire(&redis, "t21:").await;
    assert!(
        keys.iter().any(|k| k == "t21:rl:sts_budget_reserved:sts"),
        "{keys:?}"
    );
}
