//! Fills the layer's STS cache with distinct identities and reports the resident-set growth per
//! cache entry.
//!
//! `cargo run --release -p iam-join-benches --bin memory [-- ENTRIES]` (default 100 000)
//!
//! The proofs are real (signed with the iam-join client, each by its own temporary key with a
//! 1000-character session token) and go through the whole verifier (`Verifier::verify`: local
//! checks, cache, policy). STS is the in-process [`StubSts`], which answers every proof with a
//! distinct assumed-role identity without checking the signature: the point is the cache, not
//! STS. Each proof is signed, verified and dropped before the next, so only the cache grows.
//! RSS is `VmRSS` of `/proc/self/status` (the same number as the resident field of
//! `/proc/self/statm`, in bytes), read after a warm-up of 1 000 entries and after the fill.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use iam_join_benches::{
    Form, ProofKind, StubSts, client_layer, machine_description, rss_bytes, sign_proof,
};
use iam_join_tower::{Verifier, VerifyRequest};

const WARM_UP: u64 = 1_000;

async fn verify(verifier: &Verifier, proof: &str) {
    let result = verifier
        .verify(VerifyRequest {
            proof,
            token: "iam-token",
            client: None,
            require_challenge: false,
            audit: None,
        })
        .await;
    if let Err(denial) = result {
        panic!(
            "a memory-benchmark proof was denied: {}",
            denial.code().as_str()
        );
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() {
    let entries: u64 = match std::env::args().nth(1) {
        Some(n) => n
            .parse()
            .unwrap_or_else(|_| panic!("ENTRIES must be a number, got {n:?}")),
        None => 100_000,
    };
    // One thread: no per-thread allocator arenas to blur the measurement.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("tokio runtime: {e}"));
    rt.block_on(async {
        let rss_start = rss_bytes().unwrap_or(0);
        let stub = Arc::new(StubSts::new());
        let layer = client_layer(Arc::clone(&stub) as _, (entries + WARM_UP) * 2);
        let verifier = Arc::clone(layer.verifier());
        // One signing time for every proof: each key makes its own distinct proof, and a proof
        // signed again at the same time is byte-identical (the hit check below relies on it).
        let at = SystemTime::now();
        let kind = ProofKind::SessionToken;

        for n in 0..WARM_UP {
            verify(&verifier, &sign_proof(&kind.identity(n), Form::Post, at)).await;
        }
        let rss_before = rss_bytes().unwrap_or(0);
        let entries_before = verifier.cache_entries();

        let start = Instant::now();
        for n in WARM_UP..WARM_UP + entries {
            verify(&verifier, &sign_proof(&kind.identity(n), Form::Post, at)).await;
        }
        let fill = start.elapsed();

        // Re-verify a few proofs: these must be cache hits (no STS call), and the lookups let
        // moka apply its pending writes so the entry count is exact.
        let calls = stub.calls();
        for n in [0, 1, WARM_UP, WARM_UP + entries / 2, WARM_UP + entries - 1] {
            verify(&verifier, &sign_proof(&kind.identity(n), Form::Post, at)).await;
        }
        assert_eq!(stub.calls(), calls, "a re-sent proof missed the cache");
        let rss_after = rss_bytes().unwrap_or(0);
        let entries_after = verifier.cache_entries();

        let added = entries_after.saturating_sub(entries_before);
        let grown = rss_after.saturating_sub(rss_before);
        println!("machine: {}", machine_description());
        println!("stub STS calls: {}", stub.calls());
        println!(
            "cache entries: {entries_before} after warm-up, {entries_after} after the fill ({added} added in {:.1} s, signing included)",
            fill.as_secs_f64()
        );
        println!(
            "RSS: {:.1} MiB at start, {:.1} MiB after warm-up, {:.1} MiB after the fill",
            mib(rss_start),
            mib(rss_before),
            mib(rss_after)
        );
        if added > 0 {
            println!(
                "RSS growth per cache entry: {:.0} bytes ({:.1} MiB for {added} entries)",
                grown as f64 / added as f64,
                mib(grown)
            );
        }
        drop(layer);
    });
}
