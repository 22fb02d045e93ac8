//! The STS answer cache (DESIGN §6): moka, keyed by the SHA-256 of the canonical signed
//! request, identities kept until the proof expires, definitive rejections for a short negative
//! TTL, "unavailable" never cached. An optional shared second level lets replicas reuse each
//! other's answers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use iam_join_core::{CallerIdentity, StsAnswer};
use moka::Expiry;
use time::OffsetDateTime;

use crate::sts::BoxFuture;

/// Never keep an answer longer than STS accepts a proof.
pub const MAX_IDENTITY_TTL: Duration = Duration::from_secs(15 * 60);

/// A cached STS outcome.
#[derive(Clone, Debug)]
pub enum CachedOutcome {
    /// STS vouched for this identity; valid until `expires_at` (the proof's expiry).
    Identity {
        /// The identity.
        identity: Arc<CallerIdentity>,
        /// The proof's expiry.
        expires_at: OffsetDateTime,
    },
    /// STS definitively refused the proof with this code.
    Rejected {
        /// STS's error code.
        code: Arc<str>,
        /// How long the rejection is kept.
        ttl: Duration,
    },
}

impl CachedOutcome {
    /// How long the entry may live from `now`.
    pub fn ttl(&self, now: OffsetDateTime) -> Duration {
        match self {
            Self::Identity { expires_at, .. } => {
                let left = *expires_at - now;
                Duration::try_from(left)
                    .unwrap_or(Duration::ZERO)
                    .min(MAX_IDENTITY_TTL)
            }
            Self::Rejected { ttl, .. } => *ttl,
        }
    }
}

pub(crate) struct OutcomeExpiry;

impl Expiry<[u8; 32], CachedOutcome> for OutcomeExpiry {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &CachedOutcome,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.ttl(OffsetDateTime::now_utc()))
    }
}

/// A token that passed the local checks (audience-bound only): where its STS outcome is cached
/// and when it expires. Keyed by the SHA-256 of the token's bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CheckedToken {
    pub(crate) cache_key: [u8; 32],
    pub(crate) expires_at: OffsetDateTime,
}

pub(crate) struct CheckedTokenExpiry;

impl Expiry<[u8; 32], CheckedToken> for CheckedTokenExpiry {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &CheckedToken,
        _created_at: Instant,
    ) -> Option<Duration> {
        let left = value.expires_at - OffsetDateTime::now_utc();
        Some(
            Duration::try_from(left)
                .unwrap_or(Duration::ZERO)
                .min(MAX_IDENTITY_TTL),
        )
    }
}

/// What the shared second level stores: STS's answer or rejection code, never the proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SharedOutcome {
    /// STS's answer fields.
    Identity(StsAnswer),
    /// STS's rejection code.
    Rejected(String),
}

/// A second-level cache shared by replicas (Redis). Failures are treated as misses.
pub trait SharedCache: Send + Sync + 'static {
    /// Looks up a key (hex SHA-256 of the canonical request).
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Option<SharedOutcome>>;
    /// Stores an outcome for `ttl`.
    fn put<'a>(
        &'a self,
        key: &'a str,
        value: &'a SharedOutcome,
        ttl: Duration,
    ) -> BoxFuture<'a, ()>;
    /// Called when a miss returned by [`SharedCache::get`] will not be followed by a `put` (STS
    /// unavailable, budget exhausted), so an implementation that made other replicas wait for
    /// this one can release them at once.
    fn abandon<'a>(&'a self, _key: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

impl<T: SharedCache + ?Sized> SharedCache for Arc<T> {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Option<SharedOutcome>> {
        (**self).get(key)
    }
    fn put<'a>(
        &'a self,
        key: &'a str,
        value: &'a SharedOutcome,
        ttl: Duration,
    ) -> BoxFuture<'a, ()> {
        (**self).put(key, value, ttl)
    }
    fn abandon<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ()> {
        (**self).abandon(key)
    }
}
