//! The layer's own endpoints: `POST {prefix}/challenge`, `GET {prefix}/whoami`,
//! `{prefix}/verify` (DESIGN §3) and, with a signer, `GET {prefix}/jwks.json`; plus the
//! identity (headers and signed assertion) handed to whoever the request goes to next.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, header};
use http_body_util::Full;
use iam_join_assertion::{AssertionSigner, SignError};
use iam_join_core::challenge::issue_challenge;
use iam_join_core::wire::{ChallengeBody, JSON_CONTENT_TYPE};
use iam_join_core::{ErrorCode, VerifiedIdentity};
use time::OffsetDateTime;

use crate::error::Denial;
use crate::service::routes::Endpoint;
use crate::service::shared::Shared;
use crate::verifier::Verifier;

/// A signed identity assertion and the header it travels in.
#[derive(Clone, Debug)]
pub(crate) struct Assertion {
    name: HeaderName,
    value: HeaderValue,
}

impl Assertion {
    /// The assertion for `identity`, from the signer's cache or freshly signed; `None` when no
    /// signer is configured. Its `exp` never passes the proof's expiry.
    pub(crate) fn for_identity(
        signer: Option<&AssertionSigner>,
        identity: &VerifiedIdentity,
    ) -> Result<Option<Self>, Denial> {
        let Some(signer) = signer else {
            return Ok(None);
        };
        match signer.assertion_for(identity, OffsetDateTime::now_utc()) {
            Ok(value) => Ok(Some(Self {
                name: signer.header_name().clone(),
                value,
            })),
            // The proof ran out between verification and signing.
            Err(SignError::ProofExpired) => Err(Denial::from(iam_join_core::VerifyError::new(
                ErrorCode::ProofExpired,
                "the proof expired while the request was admitted",
            ))),
            Err(_) => Err(Denial::retry(
                ErrorCode::AssertionUnavailable,
                "the identity assertion could not be signed",
                Duration::from_secs(1),
            )),
        }
    }

    /// Puts the assertion in `headers`, next to the identity headers.
    pub(crate) fn insert_into(&self, headers: &mut HeaderMap) {
        headers.insert(self.name.clone(), self.value.clone());
    }
}

/// The answer to a request that needs no proof (`/challenge`) or uses a method the endpoint
/// does not serve; `None` when the request must be verified first.
pub(crate) fn answer_before_verifying(
    endpoint: Endpoint,
    method: &Method,
    shared: &Shared,
) -> Option<Response<Full<Bytes>>> {
    match endpoint {
        Endpoint::Challenge if method == Method::POST => Some(challenge(&shared.verifier)),
        Endpoint::Challenge => Some(method_not_allowed("POST")),
        Endpoint::Jwks if method != Method::GET => Some(method_not_allowed("GET")),
        // Routed only when a signer is set; a 404 if that ever changes.
        Endpoint::Jwks => Some(match &shared.signer {
            Some(signer) => signer.jwks_response(),
            None => not_found("this verifier signs no assertions"),
        }),
        Endpoint::WhoAmI if method != Method::GET => Some(method_not_allowed("GET")),
        // `/verify` answers any method: auth_request, ext_authz and ForwardAuth forward the
        // original one.
        Endpoint::WhoAmI | Endpoint::Verify => None,
    }
}

/// The answer to a verified request.
pub(crate) fn answer_verified(
    endpoint: Endpoint,
    identity: &VerifiedIdentity,
    assertion: Option<&Assertion>,
) -> Response<Full<Bytes>> {
    match endpoint {
        Endpoint::WhoAmI => {
            let mut body = identity.to_json();
            // Readers of the whoami body ignore fields they do not know (core::wire::WhoAmIBody).
            if let (Some(a), Some(fields)) = (assertion, body.as_object_mut())
                && let Ok(jws) = a.value.to_str()
            {
                fields.insert("assertion".to_owned(), jws.into());
            }
            let mut resp = json_response(StatusCode::OK, body.to_string());
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        // `/challenge` and `/jwks.json` are answered before verifying; an empty 200 is all
        // they could mean here.
        Endpoint::Verify | Endpoint::Challenge | Endpoint::Jwks => {
            let mut resp = Response::new(Full::new(Bytes::new()));
            set_identity_headers(resp.headers_mut(), identity);
            if let Some(a) = assertion {
                a.insert_into(resp.headers_mut());
            }
            resp
        }
    }
}

/// Sets `x-iam-join-account`, `-arn`, `-user-id`, `-token`, `-roles`, `-region`.
pub fn set_identity_headers(headers: &mut HeaderMap, id: &VerifiedIdentity) {
    let roles = id.roles.join(",");
    for (name, value) in [
        ("x-iam-join-account", id.identity.account()),
        ("x-iam-join-arn", id.identity.arn()),
        ("x-iam-join-user-id", id.identity.user_id()),
        ("x-iam-join-token", id.token.as_str()),
        ("x-iam-join-roles", roles.as_str()),
        ("x-iam-join-region", id.identity.region()),
    ] {
        if let Ok(v) = HeaderValue::from_bytes(value.as_bytes()) {
            headers.insert(HeaderName::from_static(name), v);
        }
    }
}

fn json_response(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(JSON_CONTENT_TYPE),
    );
    resp
}

fn not_found(message: &'static str) -> Response<Full<Bytes>> {
    Denial::new(ErrorCode::NotFound, message).to_response()
}

fn method_not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Denial::new(ErrorCode::MethodNotAllowed, format!("use {allow}")).to_response();
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}

fn challenge(verifier: &Verifier) -> Response<Full<Bytes>> {
    let rules = &verifier.rules;
    let Some(key) = &rules.challenge_key else {
        return not_found("this verifier does not issue challenges");
    };
    let mut nonce = [0u8; 16];
    if getrandom::fill(&mut nonce).is_err() {
        return Denial::retry(
            ErrorCode::ReplayStoreUnavailable,
            "no randomness for a challenge",
            Duration::from_secs(1),
        )
        .to_response();
    }
    let challenge = issue_challenge(key, nonce, OffsetDateTime::now_utc());
    if let Some(m) = &verifier.metrics {
        m.challenge("issued");
    }
    let body = ChallengeBody::new(challenge, rules.challenge_ttl);
    // A struct of a string and a number always serializes.
    let mut resp = json_response(
        StatusCode::OK,
        serde_json::to_string(&body).unwrap_or_default(),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
