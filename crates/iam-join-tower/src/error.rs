//! Denials and the one place that turns them into HTTP responses (DESIGN §8).

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use iam_join_core::wire::ErrorResponse;
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

    /// A denial that is not retried (method, path and request-shape refusals).
    pub fn new(code: ErrorCode, message: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        Self::from(VerifyError::new(code, message))
    }

    /// The JSON error response, from core's one map of code to status, headers and body
    /// ([`ErrorResponse`]), so the layer, the proxy and `/verify` answer alike.
    pub fn to_response(&self) -> Response<Full<Bytes>> {
        let plain = ErrorResponse::new(&self.error, self.retry_after);
        let mut resp = Response::new(Full::new(Bytes::from(plain.body.clone())));
        *resp.status_mut() = StatusCode::from_u16(plain.status).unwrap_or(StatusCode::FORBIDDEN);
        let h = resp.headers_mut();
        for (name, value) in plain.headers() {
            if let Ok(value) = HeaderValue::from_str(&value) {
                h.insert(HeaderName::from_static(name), value);
            }
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
    /// A rate has a zero field, or the reserved share is out of range.
    #[error("rate limit {0}")]
    BadRate(crate::ratelimit::InvalidLimit),
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
