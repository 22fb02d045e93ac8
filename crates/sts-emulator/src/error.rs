//! STS error answers: one place that knows each code's HTTP status and fault type.

use http::StatusCode;

/// An STS error code the emulator answers with, as real STS spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StsErrorCode {
    /// 403: no `Authorization` header and no `X-Amz-Algorithm` query parameter.
    MissingAuthenticationToken,
    /// 400: the authorization header or query parameters are malformed or incomplete.
    IncompleteSignature,
    /// 403: unknown access key, or a session token missing, unexpected or wrong.
    InvalidClientTokenId,
    /// 403: the temporary key's session was marked expired.
    ExpiredToken,
    /// 403: signature mismatch, wrong scope, or `X-Amz-Date` outside the 15-minute window.
    SignatureDoesNotMatch,
    /// 403: a presigned request past `X-Amz-Date + X-Amz-Expires`.
    AccessDenied,
    /// 400: action other than `GetCallerIdentity` or version other than `2011-06-15`.
    InvalidAction,
    /// 400: injected fault.
    Throttling,
    /// 500: injected fault.
    InternalFailure,
    /// 413: request body over the cap.
    RequestEntityTooLarge,
    /// 400: the request body could not be read.
    MalformedInput,
    /// 404: a path other than `/`.
    NotFound,
}

impl StsErrorCode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::MissingAuthenticationToken => "MissingAuthenticationToken",
            Self::IncompleteSignature => "IncompleteSignature",
            Self::InvalidClientTokenId => "InvalidClientTokenId",
            Self::ExpiredToken => "ExpiredToken",
            Self::SignatureDoesNotMatch => "SignatureDoesNotMatch",
            Self::AccessDenied => "AccessDenied",
            Self::InvalidAction => "InvalidAction",
            Self::Throttling => "Throttling",
            Self::InternalFailure => "InternalFailure",
            Self::RequestEntityTooLarge => "RequestEntityTooLarge",
            Self::MalformedInput => "MalformedInput",
            Self::NotFound => "NotFound",
        }
    }

    pub(crate) fn status(self) -> StatusCode {
        match self {
            Self::IncompleteSignature
            | Self::InvalidAction
            | Self::Throttling
            | Self::MalformedInput => StatusCode::BAD_REQUEST,
            Self::MissingAuthenticationToken
            | Self::InvalidClientTokenId
            | Self::ExpiredToken
            | Self::SignatureDoesNotMatch
            | Self::AccessDenied => StatusCode::FORBIDDEN,
            Self::InternalFailure => StatusCode::INTERNAL_SERVER_ERROR,
            Self::RequestEntityTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotFound => StatusCode::NOT_FOUND,
        }
    }

    /// STS's `<Type>`: `Receiver` for server-side failures, `Sender` otherwise.
    pub(crate) fn fault_type(self) -> &'static str {
        if self.status().is_server_error() {
            "Receiver"
        } else {
            "Sender"
        }
    }
}

/// A rejected request: the code and a message in STS's wording (never a secret).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub(crate) struct StsError {
    pub(crate) code: StsErrorCode,
    pub(crate) message: String,
}

impl StsError {
    pub(crate) fn new(code: StsErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn incomplete(message: impl Into<String>) -> Self {
        Self::new(StsErrorCode::IncompleteSignature, message)
    }

    pub(crate) fn invalid_token() -> Self {
        Self::new(
            StsErrorCode::InvalidClientTokenId,
            "The security token included in the request is invalid.",
        )
    }

    pub(crate) fn signature_mismatch() -> Self {
        Self::new(
            StsErrorCode::SignatureDoesNotMatch,
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method. Consult the service \
             documentation for details.",
        )
    }
}
