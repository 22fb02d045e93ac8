//! Reads the estimates criterion saved under `target/criterion` and prints them as a Markdown
//! table, with the ratios RESULTS.md reports (all from the same run of the benchmarks).
//!
//! `cargo run --release -p iam-join-benches --bin report [-- target/criterion]`

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

struct Estimate {
    /// Criterion's headline estimate (the slope of the linear fit; the mean when there is none),
    /// nanoseconds per iteration.
    ns: f64,
    lower: f64,
    upper: f64,
    bytes: Option<u64>,
}

fn read_json(path: &Path) -> Option<serde_json::Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn collect(dir: &Path, out: &mut BTreeMap<String, Estimate>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let new = path.join("new");
        if let (Some(bench), Some(est)) = (
            read_json(&new.join("benchmark.json")),
            read_json(&new.join("estimates.json")),
        ) {
            let stat = if est["slope"].is_object() {
                &est["slope"]
            } else {
                &est["mean"]
            };
            if let (Some(id), Some(ns)) =
                (bench["full_id"].as_str(), stat["point_estimate"].as_f64())
            {
                let ci = &stat["confidence_interval"];
                out.insert(
                    id.to_owned(),
                    Estimate {
                        ns,
                        lower: ci["lower_bound"].as_f64().unwrap_or(ns),
                        upper: ci["upper_bound"].as_f64().unwrap_or(ns),
                        bytes: bench["throughput"]["Bytes"].as_u64(),
                    },
                );
            }
        } else if path
            .file_name()
            .is_some_and(|n| n != "report" && n != "new" && n != "base")
        {
            collect(&path, out);
        }
    }
}

fn human(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

fn main() {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "target/criterion".to_owned()),
    );
    let mut all = BTreeMap::new();
    collect(&dir, &mut all);
    if all.is_empty() {
        eprintln!(
            "no criterion estimates under {}; run `cargo bench -p iam-join-benches` first",
            dir.display()
        );
        std::process::exit(1);
    }
    println!("| benchmark | time (95% CI) | proof / body bytes |");
    println!("|---|---|---:|");
    for (id, e) in &all {
        println!(
            "| `{id}` | {} ({} – {}) | {} |",
            human(e.ns),
            human(e.lower),
            human(e.upper),
            e.bytes.map_or_else(String::new, |b| b.to_string())
        );
    }
    println!();
    println!("| ratio (same run) | no session token | session token |");
    println!("|---|---:|---:|");
    let ratio = |a: &str, b: &str, kind: &str| -> String {
        match (
            all.get(&format!("{a}/{kind}")),
            all.get(&format!("{b}/{kind}")),
        ) {
            (Some(x), Some(y)) => format!("{:.1}x", x.ns / y.ns),
            _ => "–".to_owned(),
        }
    };
    for (label, a, b) in [
        (
            "whole layer, cache hit / SHA-256 of the proof",
            "cache_hit/layer",
            "cache_hit/sha256",
        ),
        (
            "verifier alone, cache hit / SHA-256",
            "cache_hit/verifier",
            "cache_hit/sha256",
        ),
        (
            "local checks (`check_proof`) / SHA-256",
            "cache_hit/check_proof",
            "cache_hit/sha256",
        ),
        (
            "same request without the layer / SHA-256",
            "cache_hit/no_layer",
            "cache_hit/sha256",
        ),
        (
            "cache miss via sts-emulator / cache hit",
            "cache_miss/emulator",
            "cache_hit/layer",
        ),
        (
            "cache miss via in-process stub / cache hit",
            "cache_miss/stub",
            "cache_hit/layer",
        ),
    ] {
        println!(
            "| {label} | {} | {} |",
            ratio(a, b, "no_session_token"),
            ratio(a, b, "session_token")
        );
    }
}
