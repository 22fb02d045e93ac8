//! Denials and the one place that turns them into HTTP responses (DESIGN §8).

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use iam_join_core::{ErrorCode, VerifyError};

/// A denial with, for retryable codes, how long to wait.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    /// The code and message.
    pub error: VerifyError,
    /// `Retry-After` for `rate_limited`, `sts_unavailable` and `replay_store_unavailable`.
    pub retry_after: Option<Duration>,
}

impl Denial {
    /// A denial that may be retried after `after`.
    pub fn retry(
        code: ErrorCode,
        message: impl Into<std::borrow::Cow<'static, str>>,
        after: Duration,
    ) -> Self {
        Self {
            error: VerifyError::new(code, message),
            retry_after: Some(after),
        }
    }

    /// The code.
    pub fn code(&self) -> ErrorCode {
        self.error.code()
    }

    /// The JSON error response.
    pub fn to_response(&self) -> Response<Full<Bytes>> {
        let code = self.error.code();
        let mut resp = Response::new(Full::new(Bytes::from(self.error.to_json())));
        *resp.status_mut() =
            StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::FORBIDDEN);
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if code.is_retryable() {
            let secs = self
                .retry_after
                .unwrap_or(Duration::from_secs(1))
                .as_secs_f64()
                .ceil()
                .max(1.0) as u64;
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if code == ErrorCode::MissingProof {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"iam-join\""),
            );
        }
        resp
    }
}

impl From<VerifyError> for Denial {
    fn from(error: VerifyError) -> Self {
        let retry_after = error.code().is_retryable().then(|| Duration::from_secs(1));
        Self { error, retry_after }
    }
}

/// Errors from [`crate::IamJoinLayerBuilder::build`].
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// No token policy was given.
    #[error("a token policy is required (IamJoinLayerBuilder::policy)")]
    MissingPolicy,
    /// Neither an audience nor challenge support: nothing could ever be admitted.
    #[error("configure an audience, or enable challenges, or both")]
    NoBinding,
    /// The prefix is not an absolute path without a trailing slash.
    #[error("prefix {0:?} must start with '/' and not end with '/'")]
    BadPrefix(String),
    /// The audience is empty or not a valid header value.
    #[error("audience {0:?} must be a non-empty printable ASCII string")]
    BadAudience(String),
    /// An STS override URL is invalid.
    #[error(transparent)]
    BadOverride(#[from] crate::sts::InvalidOverride),
    /// An extra region name is invalid.
    #[error(transparent)]
    BadRegion(#[from] iam_join_core::hosts::InvalidRegion),
    /// A rate has a zero field.
    #[error("rate limit {0} must have per_second and burst above zero")]
    BadRate(&'static str),
    /// The default token name is not a plausible token name.
    #[error("default token name {0:?} is not valid")]
    BadTokenName(String),
    /// A public or challenge path pattern is invalid.
    #[error("{field}: {source}")]
    BadPathPattern {
        /// `public_paths` or `challenge_paths`.
        field: &'static str,
        /// What is wrong with the pattern.
        source: crate::InvalidPathPattern,
    },
    /// An explicit challenge key with a replay store that only this process sees: every
    /// process holding the key would accept each challenge once.
    #[error(
        "a shared challenge key needs a shared replay store (Redis): with an in-memory store \
         each replica would accept every challenge once; configure the shared store, or drop \
         the key so each process makes its own"
    )]
    ChallengeKeyNeedsSharedStore,
}
