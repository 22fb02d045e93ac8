//! Rate limits (DESIGN §7): GCRA per client address and per access key id on requests that need
//! STS work, a global budget on STS calls with a share reserved for recently admitted clients,
//! and optionally per verified AWS account.
//!
//! Why a reserved share: before STS answers, a junk proof looks like a genuine one, so a flood
//! from many addresses (each inside its per-client limit) can spend the whole budget. What tells
//! a genuine client apart is history: its access key id or address was admitted by the policy a
//! moment ago. [`RecentVerdicts`] remembers that, and remembers key ids STS called
//! `InvalidClientTokenId`, so fresh junk with a key id STS already refused costs no STS call.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use sha2::{Digest, Sha256};

use crate::sts::BoxFuture;

/// Which limit a request hit (the `scope` label of `iam_join_rate_limited_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LimitScope {
    /// Per client address, on requests that need STS work.
    Client,
    /// Per access key id (from the proof's credential scope), on requests that need STS work.
    KeyId,
    /// The open share of the STS budget, for every request that reaches STS.
    StsBudget,
    /// The share of the STS budget reserved for key ids and addresses admitted recently.
    StsReserved,
    /// Per verified AWS account, on admitted requests.
    Account,
}

impl LimitScope {
    /// Every scope, in the order of [`LimitScope::index`].
    pub const ALL: [Self; 5] = [
        Self::Client,
        Self::KeyId,
        Self::StsBudget,
        Self::StsReserved,
        Self::Account,
    ];

    /// `client`, `key_id`, `sts_budget`, `sts_budget_reserved` or `account`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::KeyId => "key_id",
            Self::StsBudget => "sts_budget",
            Self::StsReserved => "sts_budget_reserved",
            Self::Account => "account",
        }
    }

    /// The `scope` label of `iam_join_rate_limited_total`: the scope, or `<scope>_failed_open`
    /// when the backend could not decide and the request went ahead.
    pub const fn metric_label(self, failed_open: bool) -> &'static str {
        if !failed_open {
            return self.as_str();
        }
        match self {
            Self::Client => "client_failed_open",
            Self::KeyId => "key_id_failed_open",
            Self::StsBudget => "sts_budget_failed_open",
            Self::StsReserved => "sts_budget_reserved_failed_open",
            Self::Account => "account_failed_open",
        }
    }

    const fn index(self) -> usize {
        match self {
            Self::Client => 0,
            Self::KeyId => 1,
            Self::StsBudget => 2,
            Self::StsReserved => 3,
            Self::Account => 4,
        }
    }
}

/// The `scope` label counted when a key id STS recently called invalid is refused locally.
pub const REJECTED_KEY_ID_LABEL: &str = "rejected_key_id";

/// A GCRA rate: `per_second` sustained, bursts up to `burst`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Sustained requests per second (> 0).
    pub per_second: u32,
    /// Burst size (> 0).
    pub burst: u32,
}

impl Rate {
    /// `per_second` with a burst of the same size.
    pub const fn per_second(n: u32) -> Self {
        Self {
            per_second: n,
            burst: n,
        }
    }

    /// The governor quota, `None` if a field is zero.
    pub fn quota(self) -> Option<Quota> {
        Some(
            Quota::per_second(NonZeroU32::new(self.per_second)?)
                .allow_burst(NonZeroU32::new(self.burst)?),
        )
    }

    /// `percent` of this rate, rounded down but at least 1 (so a share is never "no limit").
    pub fn share(self, percent: u8) -> Self {
        let part = |n: u32| {
            u32::try_from(u64::from(n) * u64::from(percent.min(100)) / 100)
                .unwrap_or(n)
                .max(1)
        };
        Self {
            per_second: part(self.per_second),
            burst: part(self.burst),
        }
    }

    /// The GCRA emission interval (time per request).
    pub fn interval(self) -> Duration {
        Duration::from_secs(1) / self.per_second.max(1)
    }
}

/// The configured limits. `None` disables a limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimits {
    /// Per client address, on cache misses and challenge proofs. Default 20/s, burst 40.
    pub per_client: Option<Rate>,
    /// Per access key id, on cache misses and challenge proofs. Default 20/s, burst 40: one
    /// workload makes a fresh proof every few minutes, so this only bites floods on one key.
    pub per_key_id: Option<Rate>,
    /// Global STS calls. Default 200/s, burst 400 (well under STS's default quota).
    pub sts_budget: Option<Rate>,
    /// Percent of `sts_budget` reserved for access key ids and client addresses the policy
    /// admitted within the last hour (1..=90, default 50). They may also use the rest; clients
    /// not seen before use only the rest, so a junk flood cannot spend the reserved part.
    pub sts_reserved_percent: u8,
    /// Per AWS account, on admitted requests. Default off.
    pub per_account: Option<Rate>,
}

/// The default share of the STS budget reserved for recently admitted clients.
pub const DEFAULT_STS_RESERVED_PERCENT: u8 = 50;

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            per_client: Some(Rate {
                per_second: 20,
                burst: 40,
            }),
            per_key_id: Some(Rate {
                per_second: 20,
                burst: 40,
            }),
            sts_budget: Some(Rate {
                per_second: 200,
                burst: 400,
            }),
            sts_reserved_percent: DEFAULT_STS_RESERVED_PERCENT,
            per_account: None,
        }
    }
}

/// A limit that cannot be built: which field of [`RateLimits`] (the proxy's `rate_limits:`
/// section uses the same names) and why. The one wording of the rule, for the builder's error
/// and the proxy's configuration alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field} {reason}")]
pub struct InvalidLimit {
    field: &'static str,
    reason: &'static str,
}

impl InvalidLimit {
    /// The field, e.g. `per_client` or `sts_reserved_percent`.
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// What the rule is, e.g. `must be 1 to 90 (...)`.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl RateLimits {
    /// No limits at all.
    pub const fn none() -> Self {
        Self {
            per_client: None,
            per_key_id: None,
            sts_budget: None,
            sts_reserved_percent: DEFAULT_STS_RESERVED_PERCENT,
            per_account: None,
        }
    }

    /// The rate of a scope. The two shares of `sts_budget` add up to it (each at least 1/s).
    pub fn rate(&self, scope: LimitScope) -> Option<Rate> {
        let reserved = self.sts_reserved_percent;
        match scope {
            LimitScope::Client => self.per_client,
            LimitScope::KeyId => self.per_key_id,
            LimitScope::StsBudget => self.sts_budget.map(|r| r.share(100 - reserved.min(100))),
            LimitScope::StsReserved => self.sts_budget.map(|r| r.share(reserved)),
            LimitScope::Account => self.per_account,
        }
    }

    /// Checks every rate has a non-zero rate and burst and the reserved share is 1..=90 (some
    /// budget must stay open, or a workload's first join could never reach STS).
    ///
    /// # Errors
    /// The first invalid field.
    pub fn validate(&self) -> Result<(), InvalidLimit> {
        for (name, rate) in [
            ("per_client", self.per_client),
            ("per_key_id", self.per_key_id),
            ("sts_budget", self.sts_budget),
            ("per_account", self.per_account),
        ] {
            if rate.is_some_and(|r| r.quota().is_none()) {
                return Err(InvalidLimit {
                    field: name,
                    reason: "must have per_second and burst of at least 1 (write null to disable the limit)",
                });
            }
        }
        if !(1..=90).contains(&self.sts_reserved_percent) {
            return Err(InvalidLimit {
                field: "sts_reserved_percent",
                reason: "must be 1 to 90 (some of the budget stays open to clients not seen before)",
            });
        }
        Ok(())
    }
}

/// The outcome of a limit check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateDecision {
    /// Go ahead.
    Allow,
    /// Limited; retry after this long.
    Limited(Duration),
    /// The backend could not decide (e.g. Redis down); callers fail open and count it.
    Unavailable,
}

/// Decides rate limits. The in-memory [`MemoryRateLimiter`] is the default; a Redis backend
/// shares limits between replicas.
pub trait RateLimiterBackend: Send + Sync + 'static {
    /// Checks and consumes one cell of `scope` for `key`.
    fn check<'a>(&'a self, scope: LimitScope, key: &'a str) -> BoxFuture<'a, RateDecision>;
}

impl<T: RateLimiterBackend + ?Sized> RateLimiterBackend for Arc<T> {
    fn check<'a>(&'a self, scope: LimitScope, key: &'a str) -> BoxFuture<'a, RateDecision> {
        (**self).check(scope, key)
    }
}

type Keyed = RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock>;

/// In-memory GCRA limits with governor. Stale keys are dropped every few thousand checks
/// (`retain_recent`), so memory stays bounded by the number of recently active keys.
pub struct MemoryRateLimiter {
    limiters: [Option<Keyed>; LimitScope::ALL.len()],
    checks: AtomicU64,
    clock: DefaultClock,
}

impl MemoryRateLimiter {
    /// Limiters for `limits`.
    pub fn new(limits: RateLimits) -> Self {
        Self {
            limiters: LimitScope::ALL.map(|scope| {
                limits
                    .rate(scope)
                    .and_then(Rate::quota)
                    .map(RateLimiter::keyed)
            }),
            checks: AtomicU64::new(0),
            clock: DefaultClock::default(),
        }
    }

    /// Synchronous check (the in-memory limiter never waits).
    pub fn check_now(&self, scope: LimitScope, key: &str) -> RateDecision {
        let Some(limiter) = &self.limiters[scope.index()] else {
            return RateDecision::Allow;
        };
        if self.checks.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            for l in self.limiters.iter().flatten() {
                l.retain_recent();
                l.shrink_to_fit();
            }
        }
        match limiter.check_key(&key.to_owned()) {
            Ok(()) => RateDecision::Allow,
            Err(not_until) => RateDecision::Limited(not_until.wait_time_from(self.clock.now())),
        }
    }
}

impl RateLimiterBackend for MemoryRateLimiter {
    fn check<'a>(&'a self, scope: LimitScope, key: &'a str) -> BoxFuture<'a, RateDecision> {
        let d = self.check_now(scope, key);
        Box::pin(async move { d })
    }
}

/// Remembered verdicts live at most this many entries per kind (about 100 bytes each).
const VERDICT_CAPACITY: u64 = 100_000;

/// How long an admitted key id or address keeps its claim on the reserved STS share: longer
/// than a proof lives (15 minutes), so a workload renewing its proof stays known, and about as
/// long as temporary credentials last.
pub const ADMITTED_TTL: Duration = Duration::from_secs(60 * 60);

/// The digest of an access key id: what limits and verdicts are keyed by, so neither memory
/// nor Redis keys hold key ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyIdDigest([u8; 16]);

impl KeyIdDigest {
    /// The digest of `access_key_id`.
    pub fn of(access_key_id: &str) -> Self {
        Self::of_parts(access_key_id, "")
    }

    /// The digest of a key id with its session token (empty for long-term keys): what STS's
    /// `InvalidClientTokenId` is remembered against.
    pub fn of_credentials(access_key_id: &str, session_token: &str) -> Self {
        Self::of_parts(access_key_id, session_token)
    }

    fn of_parts(access_key_id: &str, session_token: &str) -> Self {
        let mut h = Sha256::new();
        h.update(access_key_id.as_bytes());
        if !session_token.is_empty() {
            h.update([0u8]);
            h.update(session_token.as_bytes());
        }
        let full = h.finalize();
        let mut d = [0u8; 16];
        d.copy_from_slice(&full[..16]);
        Self(d)
    }

    /// Lower-case hex, the rate-limit key of [`LimitScope::KeyId`].
    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Admitted {
    Key(KeyIdDigest),
    Client(IpAddr),
}

/// What this replica saw recently: access key ids and client addresses the policy admitted
/// (they may use the reserved STS share), and key ids STS answered `InvalidClientTokenId`
/// (refused locally for the negative TTL, unless admitted: anyone who knows a key id can get
/// that answer for it by sending a made-up session token). `SignatureDoesNotMatch` is not
/// remembered: anyone who knows a key id can cause it, so it says nothing against the key.
/// Both sets are bounded moka caches with a time to live.
pub struct RecentVerdicts {
    admitted: moka::sync::Cache<Admitted, ()>,
    invalid_key_ids: moka::sync::Cache<KeyIdDigest, ()>,
}

impl std::fmt::Debug for RecentVerdicts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecentVerdicts")
            .field("admitted", &self.admitted.entry_count())
            .field("invalid_key_ids", &self.invalid_key_ids.entry_count())
            .finish()
    }
}

impl RecentVerdicts {
    /// Admissions remembered for `admitted_ttl`, invalid key ids for `invalid_ttl`.
    pub fn new(admitted_ttl: Duration, invalid_ttl: Duration) -> Self {
        Self {
            admitted: bounded_set(admitted_ttl),
            invalid_key_ids: bounded_set(invalid_ttl),
        }
    }

    /// The policy admitted a request with this key id from this address.
    pub fn record_admitted(&self, key: KeyIdDigest, client: Option<IpAddr>) {
        self.admitted.insert(Admitted::Key(key), ());
        // Requests without an address all share one per-client bucket; none of them vouches
        // for the others.
        if let Some(ip) = client {
            self.admitted.insert(Admitted::Client(ip), ());
        }
    }

    /// Whether the key id, or the address, was admitted recently.
    pub fn admitted_recently(&self, key: KeyIdDigest, client: Option<IpAddr>) -> bool {
        self.admitted.contains_key(&Admitted::Key(key))
            || client.is_some_and(|ip| self.admitted.contains_key(&Admitted::Client(ip)))
    }

    /// STS answered `InvalidClientTokenId` for this key id.
    pub fn record_invalid_key_id(&self, key: KeyIdDigest) {
        self.invalid_key_ids.insert(key, ());
    }

    /// Whether to refuse this key id without asking STS: STS called it invalid within the
    /// negative TTL and the policy has not admitted it since.
    ///
    /// `credentials` is the digest of the key id *and* session token STS called invalid: a
    /// made-up session token on a real key id only blocks itself, never the workload's own
    /// temporary credentials (anyone can read a key id off a proof).
    pub fn refuses(&self, credentials: KeyIdDigest, key: KeyIdDigest) -> bool {
        self.invalid_key_ids.contains_key(&credentials)
            && !self.admitted.contains_key(&Admitted::Key(key))
    }
}

fn bounded_set<K>(ttl: Duration) -> moka::sync::Cache<K, ()>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
{
    moka::sync::Cache::builder()
        .max_capacity(VERDICT_CAPACITY)
        .time_to_live(ttl)
        .build()
}

/// Whether `ip` is one of the trusted proxies: the one rule for believing what a peer says
/// about others (`X-Forwarded-For`, trace context).
pub fn is_trusted(ip: IpAddr, trusted: &[ipnet::IpNet]) -> bool {
    trusted.iter().any(|n| n.contains(&ip))
}

/// The client address used as the per-client key: the peer, or with trusted proxies the
/// right-most untrusted address of `X-Forwarded-For`.
pub fn client_ip(
    peer: Option<IpAddr>,
    forwarded_for: Option<&str>,
    trusted: &[ipnet::IpNet],
) -> Option<IpAddr> {
    let peer = peer?;
    if !is_trusted(peer, trusted) {
        return Some(peer);
    }
    let mut candidate = peer;
    if let Some(xff) = forwarded_for {
        for part in xff.rsplit(',') {
            match part.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    candidate = ip;
                    if !is_trusted(ip, trusted) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    }
    Some(candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_limited_with_retry_after() {
        let l = MemoryRateLimiter::new(RateLimits {
            per_client: Some(Rate {
                per_second: 1,
                burst: 2,
            }),
            ..RateLimits::none()
        });
        assert_eq!(l.check_now(LimitScope::Client, "a"), RateDecision::Allow);
        assert_eq!(l.check_now(LimitScope::Client, "a"), RateDecision::Allow);
        assert!(matches!(
            l.check_now(LimitScope::Client, "a"),
            RateDecision::Limited(_)
        ));
        assert_eq!(l.check_now(LimitScope::Client, "b"), RateDecision::Allow);
        assert_eq!(l.check_now(LimitScope::Account, "a"), RateDecision::Allow);
    }

    #[test]
    fn forwarded_for_is_used_only_behind_trusted_proxies() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        let other: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            client_ip(Some(proxy), Some("198.51.100.7, 10.9.9.9"), &trusted),
            Some("198.51.100.7".parse().unwrap())
        );
        assert_eq!(
            client_ip(Some(other), Some("198.51.100.7"), &trusted),
            Some(other)
        );
        assert_eq!(client_ip(Some(proxy), Some("junk"), &trusted), Some(proxy));
    }

    #[test]
    fn the_two_shares_of_the_sts_budget_add_up_to_it() {
        for per_second in (1..=50).chain([199, 200, 1_000, u32::MAX]) {
            for burst in [1, 2, 3, 7, 40, 400, u32::MAX] {
                for percent in 1..=90 {
                    let limits = RateLimits {
                        sts_budget: Some(Rate { per_second, burst }),
                        sts_reserved_percent: percent,
                        ..RateLimits::none()
                    };
                    let open = limits.rate(LimitScope::StsBudget).unwrap();
                    let reserved = limits.rate(LimitScope::StsReserved).unwrap();
                    assert!(open.quota().is_some() && reserved.quota().is_some());
                    let sum = |a: u32, b: u32| u64::from(a) + u64::from(b);
                    // Rounding down never overspends, except that each share is at least 1.
                    let slack = |total: u32| u64::from(total) + u64::from(total < 100);
                    assert!(sum(open.per_second, reserved.per_second) <= slack(per_second));
                    assert!(sum(open.burst, reserved.burst) <= slack(burst));
                    assert!(open.per_second <= per_second && reserved.per_second <= per_second);
                }
            }
        }
    }

    #[test]
    fn invalid_limits_name_their_field() {
        let zero = Some(Rate {
            per_second: 0,
            burst: 1,
        });
        let cases: [(RateLimits, Result<(), &str>); 8] = [
            (RateLimits::default(), Ok(())),
            (RateLimits::none(), Ok(())),
            (
                RateLimits {
                    per_client: zero,
                    ..RateLimits::none()
                },
                Err("per_client"),
            ),
            (
                RateLimits {
                    per_key_id: zero,
                    ..RateLimits::none()
                },
                Err("per_key_id"),
            ),
            (
                RateLimits {
                    sts_budget: zero,
                    ..RateLimits::none()
                },
                Err("sts_budget"),
            ),
            (
                RateLimits {
                    per_account: zero,
                    ..RateLimits::none()
                },
                Err("per_account"),
            ),
            (
                RateLimits {
                    sts_reserved_percent: 0,
                    ..RateLimits::default()
                },
                Err("sts_reserved_percent"),
            ),
            (
                RateLimits {
                    sts_reserved_percent: 91,
                    ..RateLimits::default()
                },
                Err("sts_reserved_percent"),
            ),
        ];
        for (limits, expected) in cases {
            assert_eq!(
                limits.validate().map_err(|e| e.field()),
                expected,
                "{limits:?}"
            );
        }
    }

    #[test]
    fn every_scope_has_its_own_metric_labels() {
        let mut labels: Vec<&str> = LimitScope::ALL
            .iter()
            .flat_map(|s| [s.metric_label(false), s.metric_label(true)])
            .chain([REJECTED_KEY_ID_LABEL])
            .collect();
        let n = labels.len();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), n, "{labels:?}");
        for (i, scope) in LimitScope::ALL.iter().enumerate() {
            assert_eq!(scope.index(), i);
        }
    }

    #[test]
    fn key_id_limits_are_keyed_by_a_digest_not_the_key_id() {
        let key = "AKIAIOSFODNN7EXAMPLE";
        let hex = KeyIdDigest::of(key).to_hex();
        assert_eq!(hex.len(), 32);
        assert!(!hex.contains(&key.to_ascii_lowercase()));
        assert_ne!(
            KeyIdDigest::of(key),
            KeyIdDigest::of("AKIAIOSFODNN7EXAMPLF")
        );
    }

    #[test]
    fn invalid_key_ids_are_refused_until_admitted_and_addresses_vouch_only_for_themselves() {
        let v = RecentVerdicts::new(ADMITTED_TTL, Duration::from_secs(60));
        let (bad, good) = (
            KeyIdDigest::of("AKIABAD0000000000000"),
            KeyIdDigest::of("AKIAGOOD000000000000"),
        );
        let home: IpAddr = "192.0.2.1".parse().unwrap();
        let elsewhere: IpAddr = "198.51.100.1".parse().unwrap();
        assert!(!v.refuses(bad, bad) && !v.admitted_recently(bad, Some(home)));
        v.record_invalid_key_id(bad);
        assert!(v.refuses(bad, bad));
        v.record_admitted(good, Some(home));
        assert!(v.admitted_recently(good, Some(elsewhere)));
        assert!(
            v.admitted_recently(bad, Some(home)),
            "the address was admitted"
        );
        assert!(!v.admitted_recently(bad, Some(elsewhere)));
        assert!(!v.admitted_recently(bad, None));
        v.record_invalid_key_id(good);
        assert!(
            !v.refuses(good, good),
            "an admitted key id is never refused locally"
        );
        v.record_admitted(bad, None);
        assert!(!v.refuses(bad, bad));
    }
}
