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
    /// AWS Organizations could not be asked which organization an account belongs to; retryable.
    OrganizationsUnavailable,
    /// The request itself (not the proof) is unusable, e.g. a header the proxy cannot read.
    BadRequest,
    /// A method the endpoint does not serve; the response names the right one in `Allow`.
    MethodNotAllowed,
    /// An endpoint this verifier does not serve (e.g. `/challenge` with challenges off).
    NotFound,
    /// The proxy could not reach the upstream.
    UpstreamUnavailable,
    /// The upstream did not answer in time.
    UpstreamTimeout,
    /// The proxy already has its limit of requests in flight to the upstream; retryable.
    UpstreamBusy,
    /// The client paused its request body for too long.
    RequestTimeout,
    /// The signed identity assertion for the upstream could not be made; retryable.
    AssertionUnavailable,
}

impl ErrorCode {
    /// Every code, in declaration order (for tests, docs and metric pre-registration).
    pub const ALL: [ErrorCode; 25] = [
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
        Self::OrganizationsUnavailable,
        Self::BadRequest,
        Self::MethodNotAllowed,
        Self::NotFound,
        Self::UpstreamUnavailable,
        Self::UpstreamTimeout,
        Self::UpstreamBusy,
        Self::RequestTimeout,
        Self::AssertionUnavailable,
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
            Self::OrganizationsUnavailable => "organizations_unavailable",
            Self::BadRequest => "bad_request",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::NotFound => "not_found",
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::UpstreamBusy => "upstream_busy",
            Self::RequestTimeout => "request_timeout",
            Self::AssertionUnavailable => "assertion_unavailable",
        }
    }

    /// The HTTP status that goes with the code.
    pub const fn http_status(self) -> u16 {
        match self {
            Self::MalformedProof
            | Self::HostNotAllowed
            | Self::WrongAction
            | Self::BindingMissing
            | Self::BadRequest => 400,
            Self::MissingProof
            | Self::AudienceMismatch
            | Self::ProofExpired
            | Self::ChallengeInvalid
            | Self::ChallengeReused
            | Self::StsRejected => 401,
            Self::UnknownToken | Self::TokenExpired | Self::NotAllowed => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::RequestTimeout => 408,
            Self::RateLimited => 429,
            Self::UpstreamUnavailable => 502,
            Self::StsUnavailable
            | Self::ReplayStoreUnavailable
            | Self::OrganizationsUnavailable
            | Self::UpstreamBusy
            | Self::AssertionUnavailable => 503,
            Self::UpstreamTimeout => 504,
        }
    }

    /// Whether the caller may simply retry later (the response carries `Retry-After`).
    pub const fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::RateLimited
                | Self::StsUnavailable
                | Self::ReplayStoreUnavailable
                | Self::OrganizationsUnavailable
                | Self::UpstreamBusy
                | Self::AssertionUnavailable
        )
    }
}

/// A string that is not one of the wire codes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown error code")]
pub struct UnknownErrorCode;

impl std::str::FromStr for ErrorCode {
    type Err = UnknownErrorCode;

    /// The code of a wire string such as `"malformed_proof"` (what a client reads back).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or(UnknownErrorCode)
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
        crate::wire::ErrorBody::new(self.code, self.message()).to_json()
    }
}

/// An error and its sources on one line, `outer: inner: …`, skipping a source whose text the
/// line already holds (hyper and aws-config errors often repeat their cause). For logs and CLI
/// messages; the errors chained here (I/O, TLS, HTTP, credential sources) carry no secrets.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

pub(crate) fn malformed(message: impl Into<Cow<'static, str>>) -> VerifyError {
    VerifyError::new(ErrorCode::MalformedProof, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_those_of_design_section_8() {
        let table = [
            ("missing_proof", 401),
            ("malformed_proof", 400),
            ("host_not_allowed", 400),
            ("wrong_action", 400),
            ("binding_missing", 400),
            ("audience_mismatch", 401),
            ("proof_expired", 401),
            ("challenge_invalid", 401),
            ("challenge_reused", 401),
            ("sts_rejected", 401),
            ("unknown_token", 403),
            ("token_expired", 403),
            ("not_allowed", 403),
            ("rate_limited", 429),
            ("sts_unavailable", 503),
            ("replay_store_unavailable", 503),
            ("organizations_unavailable", 503),
            ("bad_request", 400),
            ("method_not_allowed", 405),
            ("not_found", 404),
            ("upstream_unavailable", 502),
            ("upstream_timeout", 504),
            ("upstream_busy", 503),
            ("request_timeout", 408),
            ("assertion_unavailable", 503),
        ];
        assert_eq!(table.len(), ErrorCode::ALL.len());
        for (code, (name, status)) in ErrorCode::ALL.into_iter().zip(table) {
            assert_eq!((code.as_str(), code.http_status()), (name, status));
            assert_eq!(name.parse::<ErrorCode>(), Ok(code));
        }
        assert!("no_such_code".parse::<ErrorCode>().is_err());
    }

    #[test]
    fn every_code_has_a_distinct_string_and_a_4xx_or_5xx_status() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()));
            assert!((400..600).contains(&code.http_status()));
        }
    }

    #[test]
    fn error_chain_joins_sources_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(error_chain(&e), "outer: inner");
        #[derive(Debug, thiserror::Error)]
        #[error("connect failed: inner")]
        struct Repeats(#[source] std::io::Error);
        let e = Repeats(std::io::Error::other("inner"));
        assert_eq!(error_chain(&e), "connect failed: inner");
    }

    #[test]
    fn json_body_has_code_and_message() {
        let e = VerifyError::new(ErrorCode::NotAllowed, "no rule matched");
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["error"]["code"], "not_allowed");
        assert_eq!(v["error"]["message"], "no rule matched");
    }
}
