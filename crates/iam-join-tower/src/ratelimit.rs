//! Rate limits (DESIGN §7): GCRA per client address on requests that need STS work, a global
//! budget on STS calls, and optionally per verified AWS account.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::sts::BoxFuture;

/// Which limit a request hit (the `scope` label of `iam_join_rate_limited_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LimitScope {
    /// Per client address, on requests that need STS work.
    Client,
    /// The global budget of STS calls.
    StsBudget,
    /// Per verified AWS account, on admitted requests.
    Account,
}

impl LimitScope {
    /// `client`, `sts_budget` or `account`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::StsBudget => "sts_budget",
            Self::Account => "account",
        }
    }
}

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
    /// Global STS calls. Default 200/s, burst 400 (well under STS's default quota).
    pub sts_budget: Option<Rate>,
    /// Per AWS account, on admitted requests. Default off.
    pub per_account: Option<Rate>,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            per_client: Some(Rate {
                per_second: 20,
                burst: 40,
            }),
            sts_budget: Some(Rate {
                per_second: 200,
                burst: 400,
            }),
            per_account: None,
        }
    }
}

impl RateLimits {
    /// No limits at all.
    pub const fn none() -> Self {
        Self {
            per_client: None,
            sts_budget: None,
            per_account: None,
        }
    }

    /// The rate of a scope.
    pub fn rate(&self, scope: LimitScope) -> Option<Rate> {
        match scope {
            LimitScope::Client => self.per_client,
            LimitScope::StsBudget => self.sts_budget,
            LimitScope::Account => self.per_account,
        }
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
    limiters: [Option<Keyed>; 3],
    checks: AtomicU64,
    clock: DefaultClock,
}

impl MemoryRateLimiter {
    /// Limiters for `limits`.
    pub fn new(limits: RateLimits) -> Self {
        let make = |r: Option<Rate>| r.and_then(Rate::quota).map(RateLimiter::keyed);
        Self {
            limiters: [
                make(limits.per_client),
                make(limits.sts_budget),
                make(limits.per_account),
            ],
            checks: AtomicU64::new(0),
            clock: DefaultClock::default(),
        }
    }

    fn index(scope: LimitScope) -> usize {
        match scope {
            LimitScope::Client => 0,
            LimitScope::StsBudget => 1,
            LimitScope::Account => 2,
        }
    }

    /// Synchronous check (the in-memory limiter never waits).
    pub fn check_now(&self, scope: LimitScope, key: &str) -> RateDecision {
        let Some(limiter) = &self.limiters[Self::index(scope)] else {
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

/// The client address used as the per-client key: the peer, or with trusted proxies the
/// right-most untrusted address of `X-Forwarded-For`.
pub fn client_ip(
    peer: Option<IpAddr>,
    forwarded_for: Option<&str>,
    trusted: &[ipnet::IpNet],
) -> Option<IpAddr> {
    let peer = peer?;
    if !trusted.iter().any(|n| n.contains(&peer)) {
        return Some(peer);
    }
    let mut candidate = peer;
    if let Some(xff) = forwarded_for {
        for part in xff.rsplit(',') {
            match part.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    candidate = ip;
                    if !trusted.iter().any(|n| n.contains(&ip)) {
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
}
