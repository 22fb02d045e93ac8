//! The one error type of verification and its mapping to HTTP (DESIGN §8).

use std::borrow::Cow;
use std::fmt;

/// A stable error code with its HTTP status (DESIGN §8).
///
/// The string form ([`ErrorCode::as_str`]) is part of the wire contract: clients match on it.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorCode {
    /// No proof in `Authorization: Bearer` or `X-IAM-Join-Proof`.
    MissingProof,
    /// The proof is not a well-formed token or signed request.
    MalformedProof,
    /// The proof's URL names a host that is not an allowed STS endpoint.
    HostNotAllowed,
    /// The signed request is not exactly `GetCallerIdentity`, version `2011-06-15`.
    WrongAction,
    /// No (signed) binding header in the proof.
    BindingMissing,
    /// The proof is bound to another audience.
    AudienceMismatch,
    /// The proof is too old, dated in the future, or past its presigned expiry.
    ProofExpired,
    /// The challenge is forged, tampered with or stale.
    ChallengeInvalid,
    /// The challenge was already redeemed.
    ChallengeReused,
    /// STS refused the signed request (bad signature, unknown key, expired credentials).
    StsRejected,
    /// The named join token does not exist (or is not an `iam` token).
    UnknownToken,
    /// The named join token has expired.
    TokenExpired,
    /// The verified identity matches no allow rule of the token.
    NotAllowed,
    /// Too many requests; retry after the `Retry-After` delay.
    RateLimited,
    /// STS could not be reached or throttled us; retryable.
    StsUnavailable,
    /// The replay store (memory or Redis) could not record the challenge; retryable.
    ReplayStoreUnavailable,
}

impl ErrorCode {
    /// Every code, in declaration order (for tests, docs and metric pre-registration).
    pub const ALL: [ErrorCode; 16] = [
        Self::MissingProof,
        Self::MalformedProof,
        Self::HostNotAllowed,
        Self::WrongAction,
        Self::BindingMissing,
        Self::AudienceMismatch,
        Self::ProofExpired,
        Self::ChallengeInvalid,
        Self::ChallengeReused,
        Self::StsRejected,
        Self::UnknownToken,
        Self::TokenExpired,
        Self::NotAllowed,
        Self::RateLimited,
        Self::StsUnavailable,
        Self::ReplayStoreUnavailable,
    ];

    /// The stable wire code, e.g. `"malformed_proof"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::MissingProof => "missing_proof",
            Self::MalformedProof => "malformed_proof",
            Self::HostNotAllowed => "host_not_allowed",
            Self::WrongAction => "wrong_action",
            Self::BindingMissing => "binding_missing",
            Self::AudienceMismatch => "audience_mismatch",
            Self::ProofExpired => "proof_expired",
            Self::ChallengeInvalid => "challenge_invalid",
            Self::ChallengeReused => "challenge_reused",
            Self::StsRejected => "sts_rejected",
            Self::UnknownToken => "unknown_token",
            Self::TokenExpired => "token_expired",
            Self::NotAllowed => "not_allowed",
            Self::RateLimited => "rate_limited",
            Self::StsUnavailable => "sts_unavailable",
            Self::ReplayStoreUnavailable => "replay_store_unavailable",
        }
    }

    /// The HTTP status that goes with the code.
    pub const fn http_status(self) -> u16 {
        match self {
            Self::MalformedProof
            | Self::HostNotAllowed
            | Self::WrongAction
            | Self::BindingMissing => 400,
            Self::MissingProof
            | Self::AudienceMismatch
            | Self::ProofExpired
            | Self::ChallengeInvalid
            | Self::ChallengeReused
            | Self::StsRejected => 401,
            Self::UnknownToken | Self::TokenExpired | Self::NotAllowed => 403,
            Self::RateLimited => 429,
            Self::StsUnavailable | Self::ReplayStoreUnavailable => 503,
        }
    }

    /// Whether the caller may simply retry later (the response carries `Retry-After`).
    pub const fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::RateLimited | Self::StsUnavailable | Self::ReplayStoreUnavailable
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A denial: a stable [`ErrorCode`] and a short message that helps the caller fix the proof.
///
/// Messages never contain secrets (signatures, session tokens, whole proofs); they may name
/// header or parameter names and non-secret values such as a host or a region.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct VerifyError {
    code: ErrorCode,
    message: Cow<'static, str>,
}

impl VerifyError {
    /// A denial with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The human message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The JSON body of DESIGN §8: `{"error": {"code": "...", "message": "..."}}`.
    pub fn to_json(&self) -> String {
        serde_json::json!({"error": {"code": self.code.as_str(), "message": self.message}})
            .to_string()
    }
}

pub(crate) fn malformed(message: impl Into<Cow<'static, str>>) -> VerifyError {
    VerifyError::new(ErrorCode::MalformedProof, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_distinct_string_and_a_4xx_or_5xx_status() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()));
            assert!((400..600).contains(&code.http_status()));
        }
    }

    #[test]
    fn json_body_has_code_and_message() {
        let e = VerifyError::new(ErrorCode::NotAllowed, "no rule matched");
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["error"]["code"], "not_allowed");
        assert_eq!(v["error"]["message"], "no rule matched");
    }
}
