//! OpenTelemetry instruments with the names of DESIGN §9. The caller passes a `Meter`; this
//! library installs no exporter. Labels never carry ARNs, keys or proofs.

use std::sync::Arc;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter, ObservableGauge};

/// The instruments the layer records.
#[derive(Clone)]
pub struct Metrics {
    requests: Counter<u64>,
    verify_duration: Histogram<f64>,
    sts_requests: Counter<u64>,
    sts_duration: Histogram<f64>,
    cache_lookups: Counter<u64>,
    rate_limited: Counter<u64>,
    challenges: Counter<u64>,
    policy_reloads: Counter<u64>,
    assertions_issued: Counter<u64>,
    key_reloads: Counter<u64>,
    org_lookups: Counter<u64>,
    _cache_entries: Option<Arc<ObservableGauge<u64>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Creates the instruments on `meter`. `cache_entries` is read when a reader collects.
    pub fn new(meter: &Meter, cache_entries: Option<Arc<dyn Fn() -> u64 + Send + Sync>>) -> Self {
        let gauge = cache_entries.map(|f| {
            Arc::new(
                meter
                    .u64_observable_gauge("iam_join_cache_entries")
                    .with_description("Entries in the STS answer cache")
                    .with_callback(move |o| o.observe(f(), &[]))
                    .build(),
            )
        });
        Self {
            requests: meter
                .u64_counter("iam_join_requests_total")
                .with_description("Requests decided by the IAM join layer")
                .build(),
            verify_duration: meter
                .f64_histogram("iam_join_verify_duration_seconds")
                .with_description("Time to verify a proof, STS call included")
                .with_boundaries(vec![
                    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ])
                .build(),
            sts_requests: meter
                .u64_counter("iam_join_sts_requests_total")
                .with_description("Calls to STS by region and outcome")
                .build(),
            sts_duration: meter
                .f64_histogram("iam_join_sts_duration_seconds")
                .with_description("STS call latency by region")
                .with_boundaries(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ])
                .build(),
            cache_lookups: meter
                .u64_counter("iam_join_cache_lookups_total")
                .with_description("STS cache lookups: hit, miss or coalesced")
                .build(),
            rate_limited: meter
                .u64_counter("iam_join_rate_limited_total")
                .with_description("Requests refused or let through by a rate limit decision")
                .build(),
            challenges: meter
                .u64_counter("iam_join_challenges_total")
                .with_description("Challenges issued and redeemed")
                .build(),
            policy_reloads: meter
                .u64_counter("iam_join_policy_reloads_total")
                .with_description("Token policy reloads")
                .build(),
            assertions_issued: meter
                .u64_counter("iam_join_assertions_issued_total")
                .with_description("Signed identity assertions attached to admitted requests")
                .build(),
            key_reloads: meter
                .u64_counter("iam_join_key_reloads_total")
                .with_description("Assertion signing key reloads")
                .build(),
            org_lookups: meter
                .u64_counter("iam_join_org_lookups_total")
                .with_description("AWS Organizations lookups: member, not_member or unavailable")
                .build(),
            _cache_entries: gauge,
        }
    }

    /// A request decision.
    pub fn request(&self, outcome: &'static str, code: &'static str, binding: &'static str) {
        self.requests.add(
            1,
            &[
                KeyValue::new("outcome", outcome),
                KeyValue::new("code", code),
                KeyValue::new("binding", binding),
            ],
        );
    }

    /// Verification latency.
    pub fn verify_duration(&self, secs: f64) {
        self.verify_duration.record(secs, &[]);
    }

    /// An STS call: `status` is the HTTP status or `error` / `timeout`.
    pub fn sts_call(&self, region: &str, status: String, secs: f64) {
        let region = KeyValue::new("region", region.to_owned());
        self.sts_requests
            .add(1, &[region.clone(), KeyValue::new("status", status)]);
        self.sts_duration.record(secs, &[region]);
    }

    /// A cache lookup: `hit`, `miss` or `coalesced`.
    pub fn cache_lookup(&self, result: &'static str) {
        self.cache_lookups
            .add(1, &[KeyValue::new("result", result)]);
    }

    /// A rate limit decision that refused, or could not be made and let the request through:
    /// `scope` is a [`crate::LimitScope::metric_label`] or
    /// [`crate::ratelimit::REJECTED_KEY_ID_LABEL`].
    pub fn rate_limited(&self, scope: &'static str) {
        self.rate_limited.add(1, &[KeyValue::new("scope", scope)]);
    }

    /// A challenge event: `issued`, `redeemed`, `reused`, `invalid`, `store_unavailable`.
    pub fn challenge(&self, result: &'static str) {
        self.challenges.add(1, &[KeyValue::new("result", result)]);
    }

    /// A policy reload: `ok` or `error`.
    pub fn policy_reload(&self, result: &'static str) {
        self.policy_reloads
            .add(1, &[KeyValue::new("result", result)]);
    }

    /// An assertion attached to an admitted request (signed or reused from the cache).
    pub fn assertion_issued(&self) {
        self.assertions_issued.add(1, &[]);
    }

    /// An assertion key reload: `ok` or `error`.
    pub fn key_reload(&self, result: &'static str) {
        self.key_reloads.add(1, &[KeyValue::new("result", result)]);
    }

    /// An AWS Organizations lookup the policy needed: `member`, `not_member` or `unavailable`
    /// (never the account).
    pub fn org_lookup(&self, result: &'static str) {
        self.org_lookups.add(1, &[KeyValue::new("result", result)]);
    }
}
