//! The token policy behind an atomically swappable handle: a reload applies to the next request.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use iam_join_core::policy::{PolicyError, TokenPolicy};

/// A shared, atomically swappable [`TokenPolicy`].
#[derive(Clone, Debug)]
pub struct PolicyHandle(Arc<ArcSwap<TokenPolicy>>);

impl PolicyHandle {
    /// A handle holding `policy`.
    pub fn new(policy: TokenPolicy) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(policy)))
    }

    /// The current policy.
    pub fn load(&self) -> Arc<TokenPolicy> {
        self.0.load_full()
    }

    /// Replaces the policy; the next request sees the new one.
    pub fn store(&self, policy: TokenPolicy) {
        self.0.store(Arc::new(policy));
    }

    /// Loads a file or directory and swaps it in only if it loads without error; on error the
    /// old policy stays.
    pub fn reload(&self, path: &Path) -> Result<Arc<TokenPolicy>, PolicyError> {
        let policy = Arc::new(TokenPolicy::load(path)?);
        self.0.store(Arc::clone(&policy));
        Ok(policy)
    }
}
