//! The one error type of the client library.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while loading credentials, building a proof or talking to a
/// verifier.
///
/// Messages are written for the person running the client: they say what was wrong and what to
/// do. They never contain secret keys, session tokens, signatures or proof tokens.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// An argument was unusable (region, audience, challenge, expiry, URL, ...).
    #[error("invalid {what}: {reason}")]
    InvalidInput {
        /// Which input was wrong, e.g. `region`.
        what: &'static str,
        /// Why it was rejected.
        reason: String,
    },

    /// aws-sigv4 refused to sign the request.
    #[error("signing the sts:GetCallerIdentity request failed: {0}")]
    Signing(String),

    /// No AWS credentials could be loaded.
    #[error("{0}")]
    Credentials(String),

    /// A proof token could not be decoded (see [`decode_proof_token`](crate::decode_proof_token)).
    #[error("malformed proof token: {0}")]
    MalformedProof(String),

    /// The HTTP request to the verifier could not be made (DNS, connect, TLS, ...).
    #[error("request to {url} failed: {reason}")]
    Http {
        /// The URL that was requested (never contains a proof).
        url: String,
        /// What went wrong.
        reason: String,
    },

    /// The verifier did not answer in time.
    #[error("request to {url} timed out after {}s", after.as_secs_f32())]
    Timeout {
        /// The URL that was requested.
        url: String,
        /// The timeout that expired.
        after: Duration,
    },

    /// The verifier answered with an error (`{"error": {"code": ..., "message": ...}}`, DESIGN §8).
    #[error("{url} answered {status} {code}: {message}")]
    Server {
        /// The URL that was requested.
        url: String,
        /// HTTP status code.
        status: u16,
        /// The verifier's error code, e.g. `audience_mismatch`; `http_<status>` if the answer
        /// carried no error code.
        code: String,
        /// The verifier's message.
        message: String,
    },

    /// The verifier answered 200 but the body was not what the protocol says.
    #[error("unexpected answer from {url}: {reason}")]
    InvalidResponse {
        /// The URL that was requested.
        url: String,
        /// What was wrong with the answer.
        reason: String,
    },

    /// A Teleport configuration file could not be used.
    #[error("{}: {message}", path.as_ref().map_or_else(|| "teleport config".to_owned(), |p| p.display().to_string()))]
    TeleportConfig {
        /// The file, when read from disk.
        path: Option<PathBuf>,
        /// What is wrong and how to fix it.
        message: String,
    },
}

/// The decoder's refusal, so `?` works after [`decode_proof_token`](crate::decode_proof_token).
impl From<iam_join_core::VerifyError> for ClientError {
    fn from(e: iam_join_core::VerifyError) -> Self {
        // The decoder's messages never quote the token, so they are safe to show.
        Self::MalformedProof(e.message().to_owned())
    }
}

impl ClientError {
    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            what,
            reason: reason.into(),
        }
    }

    /// The verifier's error code when this is a [`ClientError::Server`] answer.
    ///
    /// ```
    /// # use iam_join_client::ClientError;
    /// let err = ClientError::Server {
    ///     url: "https://proxy.example/v1/iam-join/whoami".into(),
    ///     status: 401,
    ///     code: "audience_mismatch".into(),
    ///     message: "the proof is bound to another audience".into(),
    /// };
    /// assert_eq!(err.server_code(), Some("audience_mismatch"));
    /// ```
    pub fn server_code(&self) -> Option<&str> {
        match self {
            Self::Server { code, .. } => Some(code),
            _ => None,
        }
    }
}
