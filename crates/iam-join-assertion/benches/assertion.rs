//! What an assertion costs per admitted request: a cached lookup (the common case, the proof
//! itself being a cache hit) against signing a fresh one, for ES256 and EdDSA; and what the
//! upstream pays to verify one.
#![allow(missing_docs, clippy::unwrap_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use iam_join_assertion::{
    AssertionConfig, AssertionSigner, AssertionVerifier, KeySet, SigningAlgorithm, StaticJwks,
};
use time::OffsetDateTime;

fn signing(c: &mut Criterion) {
    let now = OffsetDateTime::now_utc();
    let identity = support::identity("bench", now + Duration::from_secs(900));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("assertion");
    for algorithm in [SigningAlgorithm::Es256, SigningAlgorithm::EdDsa] {
        let config = AssertionConfig::new("https://iam-join.example", ["orders-api"]).unwrap();
        let signer = AssertionSigner::new(config, KeySet::generate(algorithm).unwrap());
        group.bench_function(format!("sign/{algorithm}"), |b| {
            b.iter(|| signer.sign(black_box(&identity), now).unwrap())
        });
        signer.assertion_for(&identity, now).unwrap();
        group.bench_function(format!("cached/{algorithm}"), |b| {
            b.iter(|| signer.assertion_for(black_box(&identity), now).unwrap())
        });
        let verifier = AssertionVerifier::new(
            "https://iam-join.example",
            "orders-api",
            StaticJwks(signer.jwks_json()),
        );
        let token = signer.sign(&identity, now).unwrap().value;
        let token = token.to_str().unwrap().to_owned();
        group.bench_function(format!("verify/{algorithm}"), |b| {
            b.to_async(&runtime)
                .iter(|| async { verifier.verify(black_box(&token), now).await.unwrap() })
        });
    }
    group.finish();
}

criterion_group!(benches, signing);
criterion_main!(benches);
