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
/// and when it expires.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CheckedToken {
    pub(crate) cache_key: [u8; 32],
    pub(crate) expires_at: OffsetDateTime,
}

/// Shards of [`CheckedTokens`], so concurrent requests rarely wait on one lock.
const CHECKED_SHARDS: usize = 16;

type CheckedShard = std::sync::Mutex<std::collections::HashMap<[u8; 32], CheckedToken>>;

/// Tokens that passed the local checks, keyed by the SHA-256 of the token's bytes, so a reused
/// token skips them (the cache-hit fast path).
///
/// Not a moka cache: an entry here is its 32-byte key and a [`CheckedToken`] (the 32-byte cache
/// key and the expiry) in a hash table, where a moka entry with its own expiry also carries the cache's bookkeeping (recency
/// deques, timer wheel, `Arc`s), which made this second index the larger part of each cached
/// identity's memory (benches/RESULTS.md, "Memory"). It needs no recency order: an entry is a
/// shortcut, so a full shard first drops its expired entries, then an arbitrary eighth, and a
/// dropped token is simply checked again. The hasher is the std's keyed one: tokens are chosen
/// by clients, and a fixed hash of them could be ground to collide.
pub(crate) struct CheckedTokens {
    shards: Box<[CheckedShard]>,
    per_shard: usize,
}

impl CheckedTokens {
    /// Room for about `capacity` tokens.
    pub(crate) fn new(capacity: u64) -> Self {
        let per_shard = usize::try_from(capacity.div_ceil(CHECKED_SHARDS as u64))
            .unwrap_or(usize::MAX)
            .max(1);
        Self {
            shards: (0..CHECKED_SHARDS).map(|_| Default::default()).collect(),
            per_shard,
        }
    }

    fn shard(
        &self,
        digest: &[u8; 32],
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<[u8; 32], CheckedToken>> {
        self.shards[usize::from(digest[0]) % CHECKED_SHARDS]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The token's entry, unless it has expired at `now` (then it is removed).
    pub(crate) fn get(&self, digest: &[u8; 32], now: OffsetDateTime) -> Option<CheckedToken> {
        let mut shard = self.shard(digest);
        let found = *shard.get(digest)?;
        if now > found.expires_at {
            shard.remove(digest);
            return None;
        }
        Some(found)
    }

    /// Records a checked token, making room first when its shard is full.
    pub(crate) fn insert(&self, digest: [u8; 32], token: CheckedToken, now: OffsetDateTime) {
        let mut shard = self.shard(&digest);
        if shard.len() >= self.per_shard && !shard.contains_key(&digest) {
            shard.retain(|_, t| now <= t.expires_at);
            if shard.len() >= self.per_shard {
                let drop_count = (self.per_shard / 8).max(1);
                let victims: Vec<[u8; 32]> = shard.keys().take(drop_count).copied().collect();
                for k in &victims {
                    shard.remove(k);
                }
            }
        }
        shard.insert(digest, token);
    }

    /// Tokens held (all shards).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(n: u32, expires_at: OffsetDateTime) -> ([u8; 32], CheckedToken) {
        let mut digest = [0u8; 32];
        digest[..4].copy_from_slice(&n.to_le_bytes());
        digest[4] = 1;
        (
            digest,
            CheckedToken {
                cache_key: digest,
                expires_at,
            },
        )
    }

    #[test]
    fn an_expired_token_is_not_returned_and_is_removed() {
        let now = OffsetDateTime::now_utc();
        let tokens = CheckedTokens::new(100);
        let (d, t) = token(1, now + time::Duration::seconds(5));
        tokens.insert(d, t, now);
        assert!(tokens.get(&d, now).is_some());
        assert!(tokens.get(&d, now + time::Duration::seconds(6)).is_none());
        assert_eq!(tokens.len(), 0);
    }

    #[test]
    fn a_full_index_stays_within_its_capacity_and_keeps_the_newest() {
        let now = OffsetDateTime::now_utc();
        let capacity = 1_000;
        let tokens = CheckedTokens::new(capacity);
        for n in 0..20_000 {
            let (d, t) = token(n, now + time::Duration::seconds(60));
            tokens.insert(d, t, now);
            let (d, _) = token(n, now);
            assert!(tokens.get(&d, now).is_some(), "the token just inserted");
        }
        let per_shard = usize::try_from(capacity).unwrap().div_ceil(CHECKED_SHARDS);
        assert!(tokens.len() <= per_shard * CHECKED_SHARDS, "{}", tokens.len());
        assert!(tokens.len() >= capacity as usize / 2, "{}", tokens.len());
    }

    #[test]
    fn expired_entries_make_room_before_live_ones_are_dropped() {
        let now = OffsetDateTime::now_utc();
        let tokens = CheckedTokens::new(CHECKED_SHARDS as u64);
        // One per shard (digest[0] picks the shard), all expiring soon.
        let mut soon = Vec::new();
        for shard in 0..CHECKED_SHARDS {
            let mut d = [0u8; 32];
            d[0] = u8::try_from(shard).unwrap();
            tokens.insert(
                d,
                CheckedToken {
                    cache_key: d,
                    expires_at: now + time::Duration::seconds(1),
                },
                now,
            );
            soon.push(d);
        }
        let later = now + time::Duration::seconds(2);
        let mut fresh = soon[3];
        fresh[1] = 9;
        tokens.insert(
            fresh,
            CheckedToken {
                cache_key: fresh,
                expires_at: later + time::Duration::seconds(60),
            },
            later,
        );
        assert!(tokens.get(&fresh, later).is_some());
        assert!(tokens.get(&soon[4], now).is_some(), "other shards untouched");
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
