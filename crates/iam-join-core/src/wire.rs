//! What goes over the wire between a client, the verifier and an upstream, defined once: header
//! names, the JSON of the layer's own endpoints (DESIGN §3) and of denials (DESIGN §8), and the
//! one map from a denial to its HTTP status and headers.
//!
//! The server serializes these types and the client deserializes the same ones, so the two
//! cannot drift. The HTTP plumbing (building a `Response`) stays with the layer and the proxy:
//! [`ErrorResponse`] is plain data they copy into their response type.
//!
//! ```
//! use iam_join_core::wire::{ErrorBody, ErrorResponse};
//! use iam_join_core::{ErrorCode, VerifyError};
//!
//! let denial = VerifyError::new(ErrorCode::StsUnavailable, "STS is unavailable; retry later");
//! let resp = ErrorResponse::new(&denial, None);
//! assert_eq!(resp.status, 503);
//! assert_eq!(resp.retry_after_secs, Some(1));
//! let body: ErrorBody = serde_json::from_str(&resp.body).unwrap();
//! assert_eq!(body.code(), Some(ErrorCode::StsUnavailable));
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, VerifyError};
use crate::identity::VerifiedIdentity;

/// Carries a proof token (the other carrier is `Authorization: Bearer`).
pub const PROOF_HEADER: &str = "x-iam-join-proof";
/// Names the join token to match; also the identity header with the token that matched.
pub const TOKEN_HEADER: &str = "x-iam-join-token";
/// The audience binding header of `iam-join-v1.` proofs.
pub const AUDIENCE_HEADER: &str = "x-iam-join-audience";
/// The audience binding header of `k8s-aws-v1.` proofs (the EKS cluster id).
pub const K8S_AUDIENCE_HEADER: &str = "x-k8s-aws-id";
/// The challenge binding header (Teleport's name for it).
pub const CHALLENGE_HEADER: &str = "x-teleport-challenge";
/// Every header the verifier sets starts with this; incoming ones are removed first.
pub const IDENTITY_HEADER_PREFIX: &str = "x-iam-join-";
/// The verified AWS account id.
pub const ACCOUNT_HEADER: &str = "x-iam-join-account";
/// The verified caller ARN.
pub const ARN_HEADER: &str = "x-iam-join-arn";
/// The verified STS `UserId`.
pub const USER_ID_HEADER: &str = "x-iam-join-user-id";
/// The roles the matched join token grants, comma-separated.
pub const ROLES_HEADER: &str = "x-iam-join-roles";
/// The STS region the proof was signed for.
pub const REGION_HEADER: &str = "x-iam-join-region";
/// The optional signed assertion (a JWT) about the identity.
pub const ASSERTION_HEADER: &str = "x-iam-join-assertion";
/// The header names of [`identity_headers`], in its order.
pub const IDENTITY_HEADERS: [&str; 6] = [
    ACCOUNT_HEADER,
    ARN_HEADER,
    USER_ID_HEADER,
    TOKEN_HEADER,
    ROLES_HEADER,
    REGION_HEADER,
];

/// The identity headers of DESIGN §4 step 11 for an admitted request, as (name, value) pairs.
/// Values come from STS and the token policy; a caller that cannot put a value into a header
/// skips that header rather than sending something else.
pub fn identity_headers(id: &VerifiedIdentity) -> [(&'static str, String); 6] {
    [
        (ACCOUNT_HEADER, id.identity.account().to_owned()),
        (ARN_HEADER, id.identity.arn().to_owned()),
        (USER_ID_HEADER, id.identity.user_id().to_owned()),
        (TOKEN_HEADER, id.token.clone()),
        (ROLES_HEADER, id.roles.join(",")),
        (REGION_HEADER, id.identity.region().to_owned()),
    ]
}

/// The answer of `POST {prefix}/challenge`:
/// `{"challenge": "...", "header": "x-teleport-challenge", "expires_in_seconds": 60}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeBody {
    /// The value to sign into the binding header.
    pub challenge: String,
    /// The header to sign it into ([`CHALLENGE_HEADER`]).
    pub header: String,
    /// How long the verifier accepts a proof for it.
    pub expires_in_seconds: u64,
}

impl ChallengeBody {
    /// A freshly issued challenge, to be signed into [`CHALLENGE_HEADER`].
    pub fn new(challenge: String, ttl: Duration) -> Self {
        Self {
            challenge,
            header: CHALLENGE_HEADER.to_owned(),
            expires_in_seconds: ttl.as_secs(),
        }
    }

    /// Whether the verifier asks for the header this protocol defines (compared ignoring case).
    pub fn uses_challenge_header(&self) -> bool {
        self.header.eq_ignore_ascii_case(CHALLENGE_HEADER)
    }
}

/// The answer of `GET {prefix}/whoami` (DESIGN §3): the identity a proof was verified as.
///
/// Readers ignore fields they do not know, so a newer verifier can add some.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoAmIBody {
    /// AWS account id.
    pub account: String,
    /// Caller ARN as STS reported it.
    pub arn: String,
    /// STS `UserId`.
    pub user_id: String,
    /// `assumed-role`, `user`, `root`, `federated-user`, ...
    pub principal: String,
    /// The role or user name.
    pub name: String,
    /// The session name of an assumed role.
    #[serde(default)]
    pub session_name: Option<String>,
    /// Region of the STS endpoint the proof was signed for.
    pub region: String,
    /// The join token that matched.
    pub token: String,
    /// The roles the token grants.
    pub roles: Vec<String>,
    /// `audience` or `challenge`.
    pub binding: String,
    /// When the proof expires, RFC 3339.
    pub expires_at: String,
}

impl From<&VerifiedIdentity> for WhoAmIBody {
    fn from(id: &VerifiedIdentity) -> Self {
        Self {
            account: id.identity.account().to_owned(),
            arn: id.identity.arn().to_owned(),
            user_id: id.identity.user_id().to_owned(),
            principal: id.identity.principal_type().as_str().to_owned(),
            name: id.identity.name().to_owned(),
            session_name: id.identity.session_name().map(str::to_owned),
            region: id.identity.region().to_owned(),
            token: id.token.clone(),
            roles: id.roles.clone(),
            binding: id.binding.as_str().to_owned(),
            expires_at: id
                .expires_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        }
    }
}

/// A denial's body (DESIGN §8): `{"error": {"code": "...", "message": "..."}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The code and message.
    pub error: ErrorDetail,
}

/// The inside of an [`ErrorBody`]. The code is kept as a string so a reader can show codes it
/// does not know yet; [`ErrorBody::code`] maps it to an [`ErrorCode`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// The stable code, e.g. `malformed_proof`.
    pub code: String,
    /// A short message that helps the caller; never a secret.
    #[serde(default)]
    pub message: String,
}

impl ErrorBody {
    /// The body for `code` with `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code: code.as_str().to_owned(),
                message: message.into(),
            },
        }
    }

    /// The code, if it is one this version knows.
    pub fn code(&self) -> Option<ErrorCode> {
        self.error.code.parse().ok()
    }

    /// The JSON text.
    pub fn to_json(&self) -> String {
        // A struct of two strings always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// `Content-Type` of every body here.
pub const JSON_CONTENT_TYPE: &str = "application/json";
/// The `WWW-Authenticate` challenge sent with `missing_proof`.
pub const WWW_AUTHENTICATE: &str = "Bearer realm=\"iam-join\"";
/// The header naming a denial's code on every error response. A gateway that drops the body
/// (nginx `auth_request`) can still render the exact code from it.
pub const ERROR_HEADER: &str = "x-iam-join-error";
/// The `Retry-After` used when a retryable denial does not say how long to wait.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Everything an HTTP layer needs to answer a denial: the one map from [`ErrorCode`] to status,
/// headers and body (DESIGN §8), as plain data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorResponse {
    /// The HTTP status.
    pub status: u16,
    /// `Retry-After` in whole seconds (at least 1), for retryable codes only.
    pub retry_after_secs: Option<u64>,
    /// `WWW-Authenticate`, for `missing_proof` only.
    pub www_authenticate: Option<&'static str>,
    /// The code, also sent in [`ERROR_HEADER`].
    pub code: ErrorCode,
    /// The JSON [`ErrorBody`].
    pub body: String,
}

impl ErrorResponse {
    /// The response for `error`; `retry_after` is how long to wait, for retryable codes
    /// (default [`DEFAULT_RETRY_AFTER`], rounded up to whole seconds).
    pub fn new(error: &VerifyError, retry_after: Option<Duration>) -> Self {
        let code = error.code();
        let retry_after_secs = code.is_retryable().then(|| {
            let wait = retry_after.unwrap_or(DEFAULT_RETRY_AFTER);
            (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
        });
        Self {
            status: code.http_status(),
            retry_after_secs,
            www_authenticate: (code == ErrorCode::MissingProof).then_some(WWW_AUTHENTICATE),
            code,
            body: error.to_json(),
        }
    }

    /// The response headers, names lowercase: `content-type`, `cache-control: no-store`,
    /// [`ERROR_HEADER`], and `retry-after` / `www-authenticate` where they apply.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            ("content-type", JSON_CONTENT_TYPE.to_owned()),
            ("cache-control", "no-store".to_owned()),
            (ERROR_HEADER, self.code.as_str().to_owned()),
        ];
        if let Some(secs) = self.retry_after_secs {
            headers.push(("retry-after", secs.to_string()));
        }
        if let Some(challenge) = self.www_authenticate {
            headers.push(("www-authenticate", challenge.to_owned()));
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn every_code_round_trips_through_the_error_body() {
        for code in ErrorCode::ALL {
            let json = ErrorBody::new(code, "why").to_json();
            let back: ErrorBody = serde_json::from_str(&json).unwrap();
            assert_eq!(back.code(), Some(code));
            assert_eq!(back.error.message, "why");
            let v: serde_json::Value = serde_json::from_str(&json).unwrap();
            assert_eq!(v["error"]["code"], code.as_str());
        }
    }

    #[test]
    fn an_unknown_code_is_kept_as_text() {
        let body: ErrorBody = serde_json::from_str(r#"{"error":{"code":"brand_new"}}"#).unwrap();
        assert_eq!(body.code(), None);
        assert_eq!(body.error.code, "brand_new");
        assert_eq!(body.error.message, "");
    }

    #[test]
    fn retry_after_only_on_retryable_codes_and_rounded_up() {
        for code in ErrorCode::ALL {
            let r = ErrorResponse::new(
                &VerifyError::new(code, "m"),
                Some(Duration::from_millis(1500)),
            );
            assert_eq!(r.status, code.http_status());
            assert_eq!(r.retry_after_secs.is_some(), code.is_retryable(), "{code}");
            let names: Vec<&str> = r.headers().iter().map(|(n, _)| *n).collect();
            assert_eq!(
                names.contains(&"retry-after"),
                code.is_retryable(),
                "{code}"
            );
            let named = r.headers().into_iter().find(|(n, _)| *n == ERROR_HEADER);
            assert_eq!(named.map(|(_, v)| v), Some(code.as_str().to_owned()));
            assert_eq!(
                names.contains(&"www-authenticate"),
                code == ErrorCode::MissingProof
            );
        }
        let r = |d| ErrorResponse::new(&VerifyError::new(ErrorCode::RateLimited, "m"), d);
        assert_eq!(
            r(Some(Duration::from_millis(1500))).retry_after_secs,
            Some(2)
        );
        assert_eq!(r(Some(Duration::ZERO)).retry_after_secs, Some(1));
        assert_eq!(r(Some(Duration::from_secs(7))).retry_after_secs, Some(7));
        assert_eq!(r(None).retry_after_secs, Some(1));
    }

    #[test]
    fn organizations_unavailable_is_a_retryable_503() {
        let r = ErrorResponse::new(
            &VerifyError::new(ErrorCode::OrganizationsUnavailable, "m"),
            Some(Duration::from_secs(5)),
        );
        assert_eq!((r.status, r.retry_after_secs), (503, Some(5)));
    }

    #[test]
    fn challenge_body_has_the_design_shape() {
        let body = ChallengeBody::new("abc".into(), Duration::from_secs(60));
        let v = serde_json::to_value(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"challenge": "abc", "header": "x-teleport-challenge", "expires_in_seconds": 60})
        );
        assert!(body.uses_challenge_header());
        let upper = ChallengeBody {
            header: "X-Teleport-Challenge".into(),
            ..body.clone()
        };
        assert!(upper.uses_challenge_header());
        let other = ChallengeBody {
            header: "x-other".into(),
            ..body
        };
        assert!(!other.uses_challenge_header());
    }

    #[test]
    fn identity_header_names_share_the_prefix() {
        for name in IDENTITY_HEADERS
            .into_iter()
            .chain([ASSERTION_HEADER, PROOF_HEADER])
        {
            assert!(name.starts_with(IDENTITY_HEADER_PREFIX), "{name}");
            assert_eq!(name, name.to_ascii_lowercase());
        }
    }
}
