//! The proxy's error type.

use std::io;
use std::net::SocketAddr;

use crate::config::ConfigError;

/// Why the proxy could not start or serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The configuration, or a file it names, is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The token policy could not be loaded.
    #[error("tokens: {0}")]
    Policy(#[from] iam_join_core::policy::PolicyError),
    /// A listener could not be bound.
    #[error("{field}: cannot listen on {addr}: {error}")]
    Bind {
        /// `listen` or `admin.listen`.
        field: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        error: io::Error,
    },
    /// The metrics exporter could not be set up.
    #[error("metrics: {0}")]
    Metrics(String),
    /// The Redis backend could not be reached or set up.
    #[error("redis: {0}")]
    Redis(String),
    /// Watching the token files failed.
    #[error("tokens: cannot watch for changes: {0}")]
    Watch(String),
}

impl ProxyError {
    /// A [`ConfigError::Invalid`] about `field`.
    pub fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Config(ConfigError::invalid(field, message))
    }
}
