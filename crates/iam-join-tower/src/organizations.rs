//! AWS Organizations lookups for organization rules (`aws_organization_id`,
//! `aws_organizational_units`): which organization an account belongs to and the OUs above it.
//!
//! [`OrgLookup`] is the seam the verifier calls; [`CachedOrgLookup`] puts a TTL cache (concurrent
//! misses for one account coalesced into one lookup) and a call-rate limit in front of any
//! lookup; `AwsOrgLookup` (feature `organizations`) asks AWS with `DescribeAccount` and
//! `ListParents`. Only definitive answers are cached: a failure is never remembered, and never
//! becomes a match.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use iam_join_core::policy::OrgInfo;
use moka::Expiry;
use moka::future::Cache;

#[cfg(feature = "organizations")]
mod aws;
#[cfg(feature = "organizations")]
pub use aws::{AwsOrgConfig, AwsOrgLookup};

/// What AWS Organizations says about an account: `Some` with its organization and OU path, or
/// `None` when the account is not in the organization the lookup can see (a definitive "no").
pub type OrgAnswer = Option<OrgInfo>;

/// A lookup that gave no definitive answer (throttled, 5xx, network, rate limit, bad reply).
/// The message is for logs and names no account.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("AWS Organizations is unavailable: {0}")]
pub struct OrgLookupError(pub String);

/// Looks up an account in AWS Organizations.
pub trait OrgLookup: Send + Sync + 'static {
    /// The organization and OU path of `account` (12 digits), or `None` when it is not in the
    /// organization.
    fn lookup<'a>(&'a self, account: &'a str) -> BoxFuture<'a, Result<OrgAnswer, OrgLookupError>>;
}

/// Default time a found account is remembered.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(600);
/// Default time "not in the organization" is remembered.
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(60);
/// Default lookups per second sent on to the inner lookup (AWS Organizations allows a few per
/// second per account; bursts beyond it are throttled).
pub const DEFAULT_CALLS_PER_SECOND: u32 = 5;
const MAX_ACCOUNTS_CACHED: u64 = 100_000;

/// A cache and a call-rate limit in front of another [`OrgLookup`].
pub struct CachedOrgLookup {
    inner: Arc<dyn OrgLookup>,
    cache: Cache<String, OrgAnswer>,
    limiter: DefaultDirectRateLimiter,
}

impl std::fmt::Debug for CachedOrgLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedOrgLookup")
            .field("entries", &self.cache.entry_count())
            .finish_non_exhaustive()
    }
}

/// Per-entry TTL: members for `positive`, non-members for `negative`.
struct AnswerExpiry {
    positive: Duration,
    negative: Duration,
}

impl Expiry<String, OrgAnswer> for AnswerExpiry {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &OrgAnswer,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(if value.is_some() {
            self.positive
        } else {
            self.negative
        })
    }
}

impl CachedOrgLookup {
    /// `inner` behind a cache with the default TTLs and call rate.
    pub fn new(inner: Arc<dyn OrgLookup>) -> Self {
        Self::with_settings(
            inner,
            DEFAULT_CACHE_TTL,
            DEFAULT_NEGATIVE_TTL,
            DEFAULT_CALLS_PER_SECOND,
        )
    }

    /// `inner` behind a cache: members remembered for `ttl`, non-members for `negative_ttl`, at
    /// most `calls_per_second` lookups passed on (more are answered "unavailable" at once:
    /// waiting would only hold requests open).
    pub fn with_settings(
        inner: Arc<dyn OrgLookup>,
        ttl: Duration,
        negative_ttl: Duration,
        calls_per_second: u32,
    ) -> Self {
        let rate = NonZeroU32::new(calls_per_second).unwrap_or(NonZeroU32::MIN);
        Self {
            inner,
            cache: Cache::builder()
                .max_capacity(MAX_ACCOUNTS_CACHED)
                .expire_after(AnswerExpiry {
                    positive: ttl,
                    negative: negative_ttl,
                })
                .build(),
            limiter: RateLimiter::direct(Quota::per_second(rate)),
        }
    }

    /// Accounts cached (approximate).
    pub fn entries(&self) -> u64 {
        self.cache.entry_count()
    }

    async fn fetch(&self, account: &str) -> Result<OrgAnswer, OrgLookupError> {
        if self.limiter.check().is_err() {
            return Err(OrgLookupError(
                "lookup rate limit reached; retry later".to_owned(),
            ));
        }
        self.inner.lookup(account).await
    }
}

impl OrgLookup for CachedOrgLookup {
    fn lookup<'a>(&'a self, account: &'a str) -> BoxFuture<'a, Result<OrgAnswer, OrgLookupError>> {
        Box::pin(async move {
            // `try_get_with` runs one fetch per account at a time and caches only `Ok`.
            self.cache
                .try_get_with_by_ref(account, self.fetch(account))
                .await
                .map_err(|e| (*e).clone())
        })
    }
}
