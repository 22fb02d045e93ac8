//! What the shared Redis costs per operation, next to the in-memory equivalent, against a real
//! `redis-server` on loopback (plain, and TLS with the test CA): a challenge redemption
//! (`ReplayStore::redeem`: a fresh id each time, `SET NX PX`) and a shared-cache lookup
//! (`SharedCache::get` of a stored STS answer: what a replica pays when another one already
//! asked STS). A cache hit in a replica's own memory never reaches Redis; see `layer`.
//! Then whole challenge joins (issue a challenge, sign a proof bound to it, redeem it through
//! the layer, one STS call to the sts-emulator each) with the layer's in-memory replay store
//! and with Redis (plain) as replicas would use it: `challenge_join_store/{memory,redis}`.
//!
//! `cargo bench -p iam-join-benches --features redis --bench redis -- --warm-up-time 1 --measurement-time 3`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::Criterion;
use http_body_util::Full;
use iam_join_benches::{ProofKind, bench_challenge_joins, ok_service};
use iam_join_core::StsAnswer;
use iam_join_testkit::redis_server::{RedisOptions, RedisServer, ServerTls, TestPki};
use iam_join_tower::cache::{SharedCache, SharedOutcome};
use iam_join_tower::redis::{RedisBackend, RedisConfig};
use iam_join_tower::{MemoryReplayStore, RateLimits, ReplayStore};
use sts_emulator::Emulator;
use tower::{Layer, service_fn};

const TTL: Duration = Duration::from_secs(120);
const KEY: &str = "3f1c0a4b9d2e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"))
}

async fn backend(url: String, ca_pem: Option<Vec<u8>>) -> RedisBackend {
    let mut config = RedisConfig::primary(url);
    config.tls.ca_pem = ca_pem;
    config.key_prefix = "bench:".to_owned();
    RedisBackend::connect(config, RateLimits::none())
        .await
        .unwrap_or_else(|e| panic!("redis: {e}"))
}

/// A stored STS answer, as a replica writes it after asking STS.
fn stored_answer() -> SharedOutcome {
    SharedOutcome::Identity(StsAnswer {
        account: "333333333333".to_owned(),
        arn: "arn:aws:sts::333333333333:assumed-role/teleport-node-role/i-0abc123def4567890"
            .to_owned(),
        user_id: "AROAEMULATORNODE0001:i-0abc123def4567890".to_owned(),
    })
}

/// `iters` redemptions of fresh ids; the in-memory store is made per sample, big enough to
/// never be full (a full store refuses, by design).
fn redeem_bench(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
    name: &str,
    shared: Option<Arc<dyn ReplayStore>>,
) {
    let next = AtomicU64::new(0);
    c.bench_function(format!("redeem/{name}"), |b| {
        b.iter_custom(|iters| {
            let store = shared.clone().unwrap_or_else(|| {
                Arc::new(MemoryReplayStore::new(iters.max(1), TTL)) as Arc<dyn ReplayStore>
            });
            let first = next.fetch_add(iters, Ordering::Relaxed);
            rt.block_on(async move {
                let start = Instant::now();
                for n in first..first + iters {
                    let fresh = store
                        .redeem(&format!("challenge-{n}"), TTL)
                        .await
                        .unwrap_or_else(|e| panic!("redeem: {e}"));
                    assert!(fresh);
                }
                start.elapsed()
            })
        });
    });
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let rt = runtime();
    let pki = Arc::new(TestPki::generate());
    let plain = RedisServer::start();
    let tls = RedisServer::start_with(RedisOptions {
        tls: Some(ServerTls {
            pki: Arc::clone(&pki),
            cert: "server",
            require_client_cert: false,
        }),
        ..RedisOptions::default()
    });
    let (plain_redis, tls_redis) = rt.block_on(async {
        (
            backend(plain.url(), None).await,
            backend(tls.url(), Some(pki.read("ca.pem"))).await,
        )
    });

    let mut group = c.benchmark_group("redis");
    redeem_bench(&mut group, &rt, "memory", None);
    redeem_bench(&mut group, &rt, "plain", Some(plain_redis.replay_store()));
    redeem_bench(&mut group, &rt, "tls", Some(tls_redis.replay_store()));

    // The in-memory equivalent of a shared-cache lookup: a hit in a moka cache of the same
    // outcome type (what the layer's own cache is).
    let answer = stored_answer();
    let memory: moka::future::Cache<String, SharedOutcome> = moka::future::Cache::new(1000);
    rt.block_on(memory.insert(KEY.to_owned(), answer.clone()));
    group.bench_function("shared_cache_get/memory", |b| {
        b.to_async(&rt).iter(|| async {
            assert!(memory.get(KEY).await.is_some());
        });
    });
    for (name, cache) in [
        ("plain", plain_redis.shared_cache()),
        ("tls", tls_redis.shared_cache()),
    ] {
        rt.block_on(cache.put(KEY, &answer, TTL));
        group.bench_function(format!("shared_cache_get/{name}"), |b| {
            b.to_async(&rt).iter(|| {
                let cache = Arc::clone(&cache);
                async move {
                    assert_eq!(cache.get(KEY).await, Some(stored_answer()));
                }
            });
        });
    }
    group.finish();
    challenge_join(&mut c, &rt, &plain_redis);
    c.final_summary();
}

/// Challenge joins through the layer with the emulator as STS: the in-memory replay store
/// against Redis (plain; what replicas share). Every join is one STS call and one redemption.
fn challenge_join(c: &mut Criterion, rt: &tokio::runtime::Runtime, redis: &RedisBackend) {
    let id = ProofKind::SessionToken.identity(0);
    let emulator = rt.block_on(async {
        Emulator::builder()
            .identities(vec![id.clone()])
            .start()
            .await
            .unwrap_or_else(|e| panic!("sts-emulator: {e}"))
    });
    let mut group = c.benchmark_group("challenge_join_store");
    group.sample_size(20);
    for (name, store) in [("memory", None), ("redis", Some(redis.replay_store()))] {
        let _guard = rt.enter();
        let mut builder = iam_join_benches::layer_builder()
            .sts_override_all(emulator.url())
            .challenge_paths(["/join"]);
        if let Some(store) = store {
            builder = builder.replay_store(store);
        }
        let layer = builder.build().unwrap_or_else(|e| panic!("{e}"));
        let svc = layer.layer(service_fn(ok_service::<Full<Bytes>>));
        bench_challenge_joins(&mut group, rt, name, &svc, &id, || emulator.calls());
    }
    group.finish();
    rt.block_on(emulator.shutdown());
}
