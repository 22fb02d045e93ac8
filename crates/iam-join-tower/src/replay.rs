//! Replay stores: where challenge redemptions are recorded so each challenge is single-use.

use std::sync::Arc;
use std::time::{Duration, Instant};

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
}

impl<T: ReplayStore + ?Sized> ReplayStore for Arc<T> {
    fn redeem<'a>(
        &'a self,
        id: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, ReplayStoreError>> {
        (**self).redeem(id, ttl)
    }
}

/// A bounded, expiring in-memory replay store for a single replica.
///
/// Bounded by entry count. An evicted redemption could be replayed while its challenge is still
/// valid, so a full store fails closed (`replay_store_unavailable`) instead of evicting: size it
/// for the redemptions of one challenge TTL (the STS budget limit bounds that rate).
pub struct MemoryReplayStore {
    seen: Cache<String, Instant>,
    capacity: u64,
}

impl MemoryReplayStore {
    /// A store holding at most `capacity` redemptions, each kept for `max_ttl`.
    pub fn new(capacity: u64, max_ttl: Duration) -> Self {
        Self {
            capacity,
            // moka may evict before it reports full: leave head-room above `capacity`.
            seen: Cache::builder()
                .max_capacity(capacity.saturating_mul(2))
                .time_to_live(max_ttl)
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
        _ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, ReplayStoreError>> {
        let now = Instant::now();
        if self.seen.entry_count() >= self.capacity && !self.seen.contains_key(id) {
            return Box::pin(async {
                Err(ReplayStoreError("in-memory replay store is full".into()))
            });
        }
        // entry().or_insert_with is atomic per key: exactly one caller sees a fresh entry.
        let entry = self.seen.entry(id.to_owned()).or_insert_with(|| now);
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
}
