//! Why an assertion is refused, and the one map from refusal to response.

use bytes::Bytes;
use http::{Response, StatusCode, header};

/// Why the upstream refuses a request's assertion.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    /// No assertion header.
    #[error("no identity assertion in the request")]
    Missing,
    /// Not a compact JWS of the expected shape.
    #[error("the identity assertion is malformed: {0}")]
    Malformed(&'static str),
    /// The `kid` is not in the key set, even after a refresh.
    #[error("the identity assertion is signed by an unknown key")]
    UnknownKey,
    /// The signature does not verify (tampered, or signed by another key with the same id).
    #[error("the identity assertion's signature is invalid")]
    SignatureInvalid,
    /// Past `exp` (plus leeway).
    #[error("the identity assertion has expired")]
    Expired,
    /// Before `nbf` or `iat` (minus leeway).
    #[error("the identity assertion is not valid yet")]
    NotYetValid,
    /// `aud` does not name this upstream.
    #[error("the identity assertion is for another audience")]
    WrongAudience,
    /// `iss` is not the trusted issuer.
    #[error("the identity assertion is from another issuer")]
    WrongIssuer,
    /// The key set could not be fetched and no cached copy holds the key.
    #[error("the key set to verify identity assertions is unavailable")]
    JwksUnavailable,
}

impl AssertionError {
    /// A stable error code.
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Missing => "assertion_missing",
            Self::Malformed(_) => "assertion_malformed",
            Self::UnknownKey => "assertion_unknown_key",
            Self::SignatureInvalid => "assertion_signature_invalid",
            Self::Expired => "assertion_expired",
            Self::NotYetValid => "assertion_not_yet_valid",
            Self::WrongAudience => "assertion_wrong_audience",
            Self::WrongIssuer => "assertion_wrong_issuer",
            Self::JwksUnavailable => "jwks_unavailable",
        }
    }

    /// 401, or 503 when the key set is unavailable (retryable).
    pub const fn status(&self) -> StatusCode {
        match self {
            Self::JwksUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The response: status and `{"error": {"code", "message"}}`. The message never contains
    /// the assertion.
    pub fn to_response<B: From<Bytes>>(&self) -> Response<B> {
        let body = serde_json::json!({
            "error": {"code": self.code(), "message": self.to_string()}
        });
        let mut response = Response::new(B::from(Bytes::from(body.to_string())));
        *response.status_mut() = self.status();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        if matches!(self, Self::JwksUnavailable) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, http::HeaderValue::from_static("5"));
        }
        response
    }
}
