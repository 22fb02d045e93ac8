//! Replay stores: where challenge redemptions are recorded so each challenge is single-use.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;

use crate::sts::BoxFuture;

/// The replay store could not record a redemption (e.g. Redis is down). Challenge joins fail
/// closed with `replay_store_unavailable`.
#[derive(Clone, Debug, thiserror::Error)]
#[error("replay store unavailable: {0}")]
pub struct ReplayStoreError(pub String);

/// Records challenge redemptions. `redeem` must be atomic: of concurrent calls with the same id,
/// exactly one returns `Ok(true)`.
pub trait ReplayStore: Send + Sync + 'static {
    /// Records `id` as redeemed for `ttl`. `Ok(true)` on first use, `Ok(false)` if already
    /// redeemed.
    fn redeem<'a>(
        &'a self,
        id: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, ReplayStoreError>>;

    /// Whether every process that verifies with the same challenge key sees this store's
    /// redemptions (Redis). Only then may a challenge key be shared between processes: with a
    /// per-process store each of them would accept every challenge once. Default `false`.
    fn is_shared(&self) -> bool {
        false
    }
}

impl<T: ReplayStore + ?Sized> ReplayStore for Arc<T> {
    fn redeem<'a>(
        &'a self,
        id: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, ReplayStoreError>> {
        (**self).redeem(id, ttl)
    }

    fn is_shared(&self) -> bool {
        (**self).is_shared()
    }
}

/// A bounded, expiring in-memory replay store for a single process (not shared: see
/// [`ReplayStore::is_shared`]).
///
/// Each redemption is kept until the `ttl` it was redeemed with passes (a store that forgot it
/// earlier would accept the challenge again). Bounded by entry count: an evicted redemption
/// could be replayed while its challenge is still valid, so a full store fails closed
/// (`replay_store_unavailable`) instead of evicting: size it for the redemptions of one
/// challenge TTL (the STS budget limit bounds that rate).
pub struct MemoryReplayStore {
    /// Redemption id → when it may be forgotten.
    seen: Cache<String, Instant>,
    capacity: u64,
    min_ttl: Duration,
}

/// Expires each redemption at the instant stored with it.
struct UntilStored;

impl Expiry<String, Instant> for UntilStored {
    fn expire_after_create(
        &self,
        _id: &String,
        until: &Instant,
        created_at: Instant,
    ) -> Option<Duration> {
        Some(until.saturating_duration_since(created_at))
    }
}

impl MemoryReplayStore {
    /// A store holding at most `capacity` redemptions, each kept for the `ttl` it is redeemed
    /// with, and at least `min_ttl`.
    pub fn new(capacity: u64, min_ttl: Duration) -> Self {
        Self {
            capacity,
            min_ttl,
            // moka may evict before it reports full: leave head-room above `capacity`.
            seen: Cache::builder()
                .max_capacity(capacity.saturating_mul(2))
                .expire_after(UntilStored)
                .build(),
        }
    }
}

impl Default for MemoryReplayStore {
    fn default() -> Self {
        Self::new(1_000_000, Duration::from_secs(10 * 60))
    }
}

impl ReplayStore for MemoryReplayStore {
    fn redeem<'a>(
        &'a self,
        id: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, ReplayStoreError>> {
        let now = Instant::now();
        let until = now + ttl.max(self.min_ttl);
        if self.seen.entry_count() >= self.capacity && !self.seen.contains_key(id) {
            return Box::pin(async {
                Err(ReplayStoreError("in-memory replay store is full".into()))
            });
        }
        // entry().or_insert_with is atomic per key: exactly one caller sees a fresh entry.
        let entry = self.seen.entry(id.to_owned()).or_insert_with(|| until);
        Box::pin(async move { Ok(entry.is_fresh()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn second_redemption_is_refused() {
        let s = MemoryReplayStore::default();
        assert!(s.redeem("a", Duration::from_secs(60)).await.unwrap());
        assert!(!s.redeem("a", Duration::from_secs(60)).await.unwrap());
        assert!(s.redeem("b", Duration::from_secs(60)).await.unwrap());
    }

    #[tokio::test]
    async fn a_redemption_is_kept_for_the_ttl_it_was_given() {
        // A store built for short TTLs must still keep a redemption asked to live longer.
        let s = MemoryReplayStore::new(100, Duration::from_millis(20));
        assert!(s.redeem("a", Duration::from_secs(600)).await.unwrap());
        std::thread::sleep(Duration::from_millis(200));
        s.seen.run_pending_tasks();
        assert!(!s.redeem("a", Duration::from_secs(600)).await.unwrap());
    }

    #[tokio::test]
    async fn a_redemption_is_forgotten_once_its_ttl_has_passed() {
        let s = MemoryReplayStore::new(100, Duration::ZERO);
        assert!(s.redeem("a", Duration::from_millis(20)).await.unwrap());
        std::thread::sleep(Duration::from_millis(200));
        s.seen.run_pending_tasks();
        assert!(s.redeem("a", Duration::from_millis(20)).await.unwrap());
    }

    #[tokio::test]
    async fn a_full_store_fails_closed() {
        let s = MemoryReplayStore::new(2, Duration::from_secs(60));
        assert!(s.redeem("a", Duration::from_secs(60)).await.unwrap());
        assert!(s.redeem("b", Duration::from_secs(60)).await.unwrap());
        s.seen.run_pending_tasks();
        assert!(s.redeem("c", Duration::from_secs(60)).await.is_err());
        assert!(!s.redeem("a", Duration::from_secs(60)).await.unwrap());
    }

    #[test]
    fn the_memory_store_is_not_shared() {
        assert!(!MemoryReplayStore::default().is_shared());
        assert!(!Arc::new(MemoryReplayStore::default()).is_shared());
    }
}
