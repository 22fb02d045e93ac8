//! The whole `IamJoinLayer` around a trivial `service_fn`.
//!
//! - `cache_hit`: one proof, verified once before measuring, then sent again and again (the
//!   steady state of a workload reusing its audience-bound proof). In the same group, the
//!   physical floor (SHA-256 of the same proof bytes), the local checks alone, the verifier
//!   alone, the layer recording the proxy's OpenTelemetry metrics, and the same request to the
//!   bare service without the layer, so the ratios read directly from one run. Then the layer
//!   and SHA-256 are timed again in alternating batches (printed as `cache_hit interleaved`),
//!   so that ratio is taken under the same machine load.
//! - `cache_miss`: every request carries a proof never seen before, verified by the
//!   sts-emulator on loopback (a real SigV4 recomputation behind a real HTTP hop), or by an
//!   in-process STS stub (the layer's own miss path without the network).
//!
//! `cargo bench -p iam-join-benches --bench layer -- --warm-up-time 1 --measurement-time 3`

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput};
use http::{HeaderValue, Request, StatusCode, header};
use http_body_util::Full;
use iam_join_benches::{
    AUDIENCE, Form, ProofKind, StubSts, client_addr, client_layer, emulator_layer, ok_service,
    sign_proof,
};
use iam_join_core::{ProofRules, check_proof};
use iam_join_tower::{HyperStsClient, IamJoinLayer, StsClient, StsClientConfig, VerifyRequest};
use sha2::{Digest, Sha256};
use sts_emulator::{Emulator, EmulatorHandle};
use tower::{Layer, ServiceExt, service_fn};

/// Distinct identities per kind the emulator knows, for distinct miss-path proofs: proof `j`
/// of a sample is signed by identity `j % IDENTITIES`, `j / IDENTITIES` seconds in the past.
const IDENTITIES: u64 = 256;
/// How far back miss-path proofs are dated (well inside STS's and the verifier's 15 minutes).
const MAX_BACKDATE_SECS: u64 = 600;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("tokio runtime: {e}"))
}

async fn start_emulator() -> EmulatorHandle {
    let identities = ProofKind::ALL
        .iter()
        .flat_map(|kind| (0..IDENTITIES).map(|n| kind.identity(n)))
        .collect();
    Emulator::builder()
        .identities(identities)
        .start()
        .await
        .unwrap_or_else(|e| panic!("sts-emulator: {e}"))
}

fn request(bearer: &HeaderValue) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::default());
    *req.uri_mut() = http::Uri::from_static("/app/resource");
    req.headers_mut()
        .insert(header::AUTHORIZATION, bearer.clone());
    req.extensions_mut().insert(client_addr());
    req
}

fn bearer(proof: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("Bearer {proof}")).unwrap_or_else(|e| panic!("{e}"))
}

fn cache_hit(c: &mut Criterion) {
    let rt = runtime();
    let emulator = rt.block_on(start_emulator());
    let layer = emulator_layer(&emulator.url());
    let svc = layer.layer(service_fn(ok_service::<Full<Bytes>>));
    let bare = service_fn(ok_service::<Full<Bytes>>);
    // The same layer recording the proxy's OpenTelemetry metrics (Prometheus exporter), as
    // iam-join-proxy runs it; it shares nothing with `layer` but the emulator.
    let metrics = iam_join_proxy::telemetry::Metrics::new().unwrap_or_else(|e| panic!("{e}"));
    let metered = iam_join_benches::layer_builder()
        .sts_override_all(emulator.url())
        .meter(metrics.meter())
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let metered_svc = metered.layer(service_fn(ok_service::<Full<Bytes>>));
    // The same layer signing an identity assertion for each admitted request (ES256, the
    // default); a hit reuses the assertion cached with the identity.
    let signed = iam_join_benches::layer_builder()
        .sts_override_all(emulator.url())
        .assertion(assertion_signer())
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let signed_svc = signed.layer(service_fn(ok_service::<Full<Bytes>>));
    // The same layer recording every request's spans (100 % sampling) through the batch
    // processor the proxy uses; the exporter drops them, so what is measured is the request
    // path's share (span creation, attributes, queueing), not a collector.
    let (traced, _provider) = traced_layer(&emulator.url(), 1.0);
    let traced_svc = traced.layer(service_fn(ok_service::<Full<Bytes>>));
    // And sampling 1 % of new traces: what every request pays when tracing is on but the
    // request is not recorded.
    let (sampled, _sampled_provider) = traced_layer(&emulator.url(), 0.01);
    let sampled_svc = sampled.layer(service_fn(ok_service::<Full<Bytes>>));
    let rules = ProofRules {
        audience: Some(AUDIENCE.to_owned()),
        ..ProofRules::default()
    };

    let mut interleaved = Vec::new();
    let mut group = c.benchmark_group("cache_hit");
    for kind in ProofKind::ALL {
        let proof = sign_proof(&kind.identity(0), Form::Post, SystemTime::now());
        let auth = bearer(&proof);
        // Warm both caches: the only STS calls of this benchmark.
        let before = emulator.calls();
        let status = rt
            .block_on(svc.clone().oneshot(request(&auth)))
            .map(|r| r.status())
            .unwrap_or_else(|e| match e {});
        assert_eq!(
            status,
            StatusCode::OK,
            "warm-up request for {kind:?} was denied"
        );
        let status = rt
            .block_on(metered_svc.clone().oneshot(request(&auth)))
            .map(|r| r.status())
            .unwrap_or_else(|e| match e {});
        assert_eq!(
            status,
            StatusCode::OK,
            "warm-up request for {kind:?} was denied"
        );
        let resp = rt
            .block_on(signed_svc.clone().oneshot(request(&auth)))
            .unwrap_or_else(|e| match e {});
        assert_eq!(resp.status(), StatusCode::OK, "warm-up for {kind:?} denied");
        for warm in [&traced_svc, &sampled_svc] {
            let resp = rt
                .block_on(warm.clone().oneshot(request(&auth)))
                .unwrap_or_else(|e| match e {});
            assert_eq!(resp.status(), StatusCode::OK, "warm-up for {kind:?} denied");
        }
        // One STS call per layer (each has its own cache).
        assert_eq!(emulator.calls(), before + 5);
        println!("proof size post/{}: {} bytes", kind.label(), proof.len());

        let label = kind.label();
        group.throughput(Throughput::Bytes(proof.len() as u64));
        group.bench_function(format!("sha256/{label}"), |b| {
            b.iter(|| Sha256::digest(black_box(proof.as_bytes())));
        });
        group.bench_function(format!("check_proof/{label}"), |b| {
            b.iter(|| check_proof(black_box(&proof), &rules, time::OffsetDateTime::now_utc()));
        });
        let verifier = Arc::clone(layer.verifier());
        group.bench_function(format!("verifier/{label}"), |b| {
            b.to_async(&rt).iter(|| {
                let verifier = Arc::clone(&verifier);
                let proof = proof.as_str();
                async move {
                    let id = verifier
                        .verify(VerifyRequest {
                            proof: black_box(proof),
                            token: "iam-token",
                            client: Some(client_addr().0.ip()),
                            require_challenge: false,
                            audit: None,
                        })
                        .await;
                    assert!(id.is_ok());
                }
            });
        });
        group.bench_function(format!("layer/{label}"), |b| {
            b.to_async(&rt).iter(|| {
                let svc = svc.clone();
                let req = request(&auth);
                async move {
                    let resp = svc.oneshot(req).await.unwrap_or_else(|e| match e {});
                    assert_eq!(resp.status(), StatusCode::OK);
                }
            });
        });
        group.bench_function(format!("layer_with_metrics/{label}"), |b| {
            b.to_async(&rt).iter(|| {
                let svc = metered_svc.clone();
                let req = request(&auth);
                async move {
                    let resp = svc.oneshot(req).await.unwrap_or_else(|e| match e {});
                    assert_eq!(resp.status(), StatusCode::OK);
                }
            });
        });
        group.bench_function(format!("layer_with_assertion/{label}"), |b| {
            b.to_async(&rt).iter(|| {
                let svc = signed_svc.clone();
                let req = request(&auth);
                async move {
                    let resp = svc.oneshot(req).await.unwrap_or_else(|e| match e {});
                    assert_eq!(resp.status(), StatusCode::OK);
                }
            });
        });
        group.bench_function(format!("layer_with_traces/{label}"), |b| {
            b.to_async(&rt).iter(|| {
                let svc = traced_svc.clone();
                let req = request(&auth);
                async move {
                    let resp = svc.oneshot(req).await.unwrap_or_else(|e| match e {});
                    assert_eq!(resp.status(), StatusCode::OK);
                }
            });
        });
        group.bench_function(format!("no_layer/{label}"), |b| {
            b.to_async(&rt).iter(|| {
                let svc = bare;
                let req = request(&auth);
                async move {
                    let resp = svc.oneshot(req).await.unwrap_or_else(|e| match e {});
                    assert_eq!(resp.status(), StatusCode::OK);
                }
            });
        });
        assert_eq!(
            emulator.calls(),
            before + 5,
            "a cache-hit benchmark called STS"
        );
        interleaved.push((kind, proof, auth));
    }
    group.finish();

    // Criterion measures one function after the other; on a busy machine the load may change
    // in between. Here both are timed in alternating batches, so each ratio compares the two
    // under the same load.
    for (kind, proof, auth) in interleaved {
        const BATCH: u32 = 2_000;
        const ROUNDS: usize = 15;
        let mut ratios = Vec::with_capacity(ROUNDS);
        let mut signed_ratios = Vec::with_capacity(ROUNDS);
        let mut traced_ratios = Vec::with_capacity(ROUNDS);
        let mut sampled_ratios = Vec::with_capacity(ROUNDS);
        let (mut sha_total, mut layer_total) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..ROUNDS {
            let t = Instant::now();
            for _ in 0..BATCH {
                black_box(Sha256::digest(black_box(proof.as_bytes())));
            }
            let sha = t.elapsed();
            let t = Instant::now();
            rt.block_on(hits(&svc, &auth, BATCH));
            let layer = t.elapsed();
            let t = Instant::now();
            rt.block_on(hits(&signed_svc, &auth, BATCH));
            signed_ratios.push(t.elapsed().as_secs_f64() / layer.as_secs_f64());
            let t = Instant::now();
            rt.block_on(hits(&traced_svc, &auth, BATCH));
            traced_ratios.push(t.elapsed().as_secs_f64() / layer.as_secs_f64());
            let t = Instant::now();
            rt.block_on(hits(&sampled_svc, &auth, BATCH));
            sampled_ratios.push(t.elapsed().as_secs_f64() / layer.as_secs_f64());
            ratios.push(layer.as_secs_f64() / sha.as_secs_f64());
            sha_total += sha;
            layer_total += layer;
        }
        ratios.sort_by(f64::total_cmp);
        let per = |d: Duration| d.as_secs_f64() * 1e9 / f64::from(BATCH) / ROUNDS as f64;
        println!(
            "cache_hit interleaved/{}: layer {:.0} ns, sha256 {:.0} ns per request; layer/sha256 median {:.1}x (min {:.1}x, max {:.1}x, {ROUNDS} alternating batches of {BATCH})",
            kind.label(),
            per(layer_total),
            per(sha_total),
            ratios[ROUNDS / 2],
            ratios[0],
            ratios[ROUNDS - 1]
        );
        signed_ratios.sort_by(f64::total_cmp);
        println!(
            "cache_hit interleaved/{}: layer with assertions / without median {:.2}x (min {:.2}x, max {:.2}x)",
            kind.label(),
            signed_ratios[ROUNDS / 2],
            signed_ratios[0],
            signed_ratios[ROUNDS - 1]
        );
        traced_ratios.sort_by(f64::total_cmp);
        println!(
            "cache_hit interleaved/{}: layer with traces (100 % sampled) / without median {:.2}x (min {:.2}x, max {:.2}x)",
            kind.label(),
            traced_ratios[ROUNDS / 2],
            traced_ratios[0],
            traced_ratios[ROUNDS - 1]
        );
        sampled_ratios.sort_by(f64::total_cmp);
        println!(
            "cache_hit interleaved/{}: layer with traces (1 % sampled) / without median {:.2}x (min {:.2}x, max {:.2}x)",
            kind.label(),
            sampled_ratios[ROUNDS / 2],
            sampled_ratios[0],
            sampled_ratios[ROUNDS - 1]
        );
    }
    assert_eq!(emulator.calls(), 10, "a cache-hit benchmark called STS");
    rt.block_on(emulator.shutdown());
}

/// `count` cache hits through `svc`, one after the other.
async fn hits<S, B>(svc: &S, auth: &HeaderValue, count: u32)
where
    S: tower::Service<
            Request<Full<Bytes>>,
            Response = http::Response<B>,
            Error = std::convert::Infallible,
        > + Clone,
{
    for _ in 0..count {
        let resp = svc
            .clone()
            .oneshot(request(auth))
            .await
            .unwrap_or_else(|e| match e {});
        assert_eq!(resp.status(), StatusCode::OK);
    }
}

type RawClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

/// A pooled HTTP/1 client, as bare as the floor should be.
fn raw_client(rt: &tokio::runtime::Runtime) -> RawClient {
    let _guard = rt.enter();
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

/// `n` fresh proofs of `kind`, parsed (outside the timing) into the HTTP requests they sign,
/// addressed to the emulator at `base`, exactly as the verifier's STS client would send them.
fn raw_requests(kind: ProofKind, n: u64, base: &str) -> Vec<Request<Full<Bytes>>> {
    let rules = ProofRules {
        audience: Some(AUDIENCE.to_owned()),
        ..ProofRules::default()
    };
    let now = time::OffsetDateTime::now_utc();
    fresh_proofs(kind, n)
        .iter()
        .map(|auth| {
            let proof = auth
                .to_str()
                .ok()
                .and_then(|a| a.strip_prefix("Bearer "))
                .unwrap_or_else(|| panic!("a bearer proof"));
            let signed = check_proof(proof, &rules, now).unwrap_or_else(|e| panic!("{e}"));
            let mut req = Request::builder()
                .method(signed.method())
                .uri(format!("{base}{}", signed.path_and_query()))
                .header(header::HOST, signed.host().name());
            if !signed.accept_is_signed() {
                req = req.header(header::ACCEPT, "application/json");
            }
            for (name, value) in signed.headers() {
                req = req.header(name.as_str(), value.as_str());
            }
            req.body(Full::new(Bytes::copy_from_slice(signed.body().as_bytes())))
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect()
}

/// Sends each request and reads its answer; returns the time taken.
async fn run_raw(client: &RawClient, requests: Vec<Request<Full<Bytes>>>) -> Duration {
    use http_body_util::BodyExt as _;
    let start = Instant::now();
    for req in requests {
        let resp = client
            .request(req)
            .await
            .unwrap_or_else(|e| panic!("raw round trip: {e}"));
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "the emulator refused a raw request"
        );
        black_box(
            resp.into_body()
                .collect()
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .to_bytes(),
        );
    }
    start.elapsed()
}

/// A layer with a tracer sampling `ratio` of new traces, as the proxy does, into a batch processor whose exporter drops
/// the spans; the provider is returned so it lives as long as the layer.
fn traced_layer(
    sts_url: &str,
    ratio: f64,
) -> (IamJoinLayer, opentelemetry_sdk::trace::SdkTracerProvider) {
    use opentelemetry::trace::TracerProvider as _;
    #[derive(Debug)]
    struct Dropped;
    impl opentelemetry_sdk::trace::SpanExporter for Dropped {
        async fn export(
            &self,
            batch: Vec<opentelemetry_sdk::trace::SpanData>,
        ) -> opentelemetry_sdk::error::OTelSdkResult {
            black_box(batch);
            Ok(())
        }
    }
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_sampler(opentelemetry_sdk::trace::Sampler::ParentBased(Box::new(
            opentelemetry_sdk::trace::Sampler::TraceIdRatioBased(ratio),
        )))
        .with_batch_exporter(Dropped)
        .build();
    let layer = iam_join_benches::layer_builder()
        .sts_override_all(sts_url)
        .tracer(provider.tracer("bench"))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    (layer, provider)
}

/// An ES256 signer with a key made for the benchmark.
fn assertion_signer() -> Arc<iam_join_assertion::AssertionSigner> {
    let config = iam_join_assertion::AssertionConfig::new("https://iam-join.bench", ["bench-app"])
        .unwrap_or_else(|e| panic!("{e}"));
    let keys = iam_join_assertion::KeySet::generate(iam_join_assertion::SigningAlgorithm::Es256)
        .unwrap_or_else(|e| panic!("{e}"));
    Arc::new(iam_join_assertion::AssertionSigner::new(config, keys))
}

/// Signs `n` distinct proofs of `kind`, none older than [`MAX_BACKDATE_SECS`].
fn fresh_proofs(kind: ProofKind, n: u64) -> Vec<HeaderValue> {
    let now = SystemTime::now();
    (0..n)
        .map(|j| {
            let back = (j / IDENTITIES) % MAX_BACKDATE_SECS;
            let at = now - Duration::from_secs(back);
            bearer(&sign_proof(&kind.identity(j % IDENTITIES), Form::Post, at))
        })
        .collect()
}

/// Sends each of `proofs` once through a layer with an empty cache; returns the time taken.
async fn run_misses(layer: &IamJoinLayer, proofs: &[HeaderValue]) -> Duration {
    let svc = layer.layer(service_fn(ok_service::<Full<Bytes>>));
    let start = Instant::now();
    let mut denied = 0u64;
    for auth in proofs {
        let resp = svc
            .clone()
            .oneshot(request(auth))
            .await
            .unwrap_or_else(|e| match e {});
        if resp.status() != StatusCode::OK {
            denied += 1;
        }
    }
    let took = start.elapsed();
    assert_eq!(denied, 0, "miss-path proofs were denied");
    took
}

fn cache_miss(c: &mut Criterion) {
    let rt = runtime();
    let emulator = rt.block_on(start_emulator());
    // One STS client (one connection pool) for every sample; each sample gets a fresh cache.
    let hyper_sts = emulator_sts(&rt, &emulator);
    let stub = Arc::new(StubSts::new());

    let mut group = c.benchmark_group("cache_miss");
    group.sample_size(20);
    for kind in ProofKind::ALL {
        let label = kind.label();
        for (name, sts) in [
            ("emulator", Arc::clone(&hyper_sts)),
            ("stub", Arc::clone(&stub) as Arc<dyn StsClient>),
        ] {
            let calls_before = emulator.calls() + stub.calls();
            let mut requests = 0u64;
            group.bench_function(format!("{name}/{label}"), |b| {
                b.to_async(&rt).iter_custom(|iters| {
                    requests += iters;
                    let proofs = fresh_proofs(kind, iters);
                    let layer = client_layer(Arc::clone(&sts), iters.max(1) * 2);
                    async move { run_misses(&layer, &proofs).await }
                });
            });
            // Every request was a miss: exactly one STS call each.
            assert_eq!(emulator.calls() + stub.calls() - calls_before, requests);
        }
    }
    // The floor: the same kind of presigned requests, already parsed, sent straight to the
    // emulator by a bare pooled client (no checks, no cache, no policy, no layer).
    let raw_client = raw_client(&rt);
    for kind in ProofKind::ALL {
        let label = kind.label();
        let calls_before = emulator.calls();
        let mut requests = 0u64;
        group.bench_function(format!("raw_round_trip/{label}"), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                requests += iters;
                let raw = raw_requests(kind, iters, &emulator.url());
                let client = raw_client.clone();
                async move { run_raw(&client, raw).await }
            });
        });
        assert_eq!(emulator.calls() - calls_before, requests);
    }
    // For context: what signing one proof costs the client (not part of any verifier path).
    group.bench_function("client_signs_a_proof/session_token", |b| {
        let id = ProofKind::SessionToken.identity(0);
        b.iter_batched(
            SystemTime::now,
            |at| sign_proof(&id, Form::Post, at),
            BatchSize::SmallInput,
        );
    });
    group.finish();

    // Miss path against the floor in alternating batches, so the ratio compares the two under
    // the same load: verifications per second of the layer / raw round trips per second.
    for kind in ProofKind::ALL {
        const BATCH: u64 = 200;
        const ROUNDS: usize = 9;
        let mut ratios = Vec::with_capacity(ROUNDS);
        let (mut layer_total, mut raw_total) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..ROUNDS {
            let proofs = fresh_proofs(kind, BATCH);
            let layer = client_layer(Arc::clone(&hyper_sts), BATCH * 2);
            let misses = rt.block_on(run_misses(&layer, &proofs));
            let raw = raw_requests(kind, BATCH, &emulator.url());
            let floor = rt.block_on(run_raw(&raw_client, raw));
            ratios.push(floor.as_secs_f64() / misses.as_secs_f64());
            layer_total += misses;
            raw_total += floor;
        }
        ratios.sort_by(f64::total_cmp);
        let per = |d: Duration| d.as_secs_f64() * 1e6 / (BATCH as f64 * ROUNDS as f64);
        println!(
            "cache_miss interleaved/{}: layer miss {:.1} µs, raw round trip {:.1} µs per request; miss/raw throughput median {:.2}x (min {:.2}x, max {:.2}x, {ROUNDS} alternating batches of {BATCH})",
            kind.label(),
            per(layer_total),
            per(raw_total),
            ratios[ROUNDS / 2],
            ratios[0],
            ratios[ROUNDS - 1]
        );
    }

    rt.block_on(emulator.shutdown());
}

/// Challenge-bound joins (Teleport's flow, never cached): `POST {prefix}/challenge`, then the
/// request with a proof bound to that challenge. Timed: the two requests through the layer
/// (issue, then redeem + STS call + policy); not timed: the client reading the challenge and
/// signing. The replay store is the in-memory one; STS the emulator (a real round trip with
/// SigV4 verification) or the in-process stub (the layer's own work).
fn challenge_join(c: &mut Criterion) {
    let rt = runtime();
    let emulator = rt.block_on(start_emulator());
    let hyper_sts = emulator_sts(&rt, &emulator);
    let stub = Arc::new(StubSts::new());
    let id = ProofKind::SessionToken.identity(0);
    let mut group = c.benchmark_group("challenge_join");
    group.sample_size(20);
    for (name, sts) in [
        ("emulator", Arc::clone(&hyper_sts)),
        ("stub", Arc::clone(&stub) as Arc<dyn StsClient>),
    ] {
        let layer = iam_join_benches::layer_builder()
            .sts_client(sts)
            .challenge_paths(["/join"])
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let svc = layer.layer(service_fn(ok_service::<Full<Bytes>>));
        iam_join_benches::bench_challenge_joins(&mut group, &rt, name, &svc, &id, || {
            emulator.calls() + stub.calls()
        });
    }
    group.finish();
    rt.block_on(emulator.shutdown());
}

/// The verifier's own STS client, pointed at the emulator (one connection pool).
fn emulator_sts(rt: &tokio::runtime::Runtime, emulator: &EmulatorHandle) -> Arc<dyn StsClient> {
    let _guard = rt.enter();
    Arc::new(
        HyperStsClient::new(StsClientConfig {
            overrides: HashMap::from([("sts.us-west-2.amazonaws.com".to_owned(), emulator.url())]),
            ..StsClientConfig::default()
        })
        .unwrap_or_else(|e| panic!("{e}")),
    )
}

fn main() {
    // Modest defaults so a full run takes a few minutes; the command line overrides them
    // (`-- --warm-up-time 1 --measurement-time 3`, a filter, `--list`, ...).
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
        .configure_from_args();
    cache_hit(&mut c);
    cache_miss(&mut c);
    challenge_join(&mut c);
    c.final_summary();
}
