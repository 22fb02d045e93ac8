//! The layer's own endpoints: `POST {prefix}/challenge`, `GET {prefix}/whoami` and
//! `{prefix}/verify` (DESIGN §3).

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, header};
use http_body_util::Full;
use iam_join_core::challenge::issue_challenge;
use iam_join_core::wire::{ChallengeBody, JSON_CONTENT_TYPE};
use iam_join_core::{ErrorCode, VerifiedIdentity};
use time::OffsetDateTime;

use crate::error::Denial;
use crate::service::routes::Endpoint;
use crate::verifier::Verifier;

/// The answer to a request that needs no proof (`/challenge`) or uses a method the endpoint
/// does not serve; `None` when the request must be verified first.
pub(crate) fn answer_before_verifying(
    endpoint: Endpoint,
    method: &Method,
    verifier: &Verifier,
) -> Option<Response<Full<Bytes>>> {
    match endpoint {
        Endpoint::Challenge if method == Method::POST => Some(challenge(verifier)),
        Endpoint::Challenge => Some(method_not_allowed("POST")),
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
) -> Response<Full<Bytes>> {
    match endpoint {
        Endpoint::WhoAmI => {
            let mut resp = json_response(StatusCode::OK, identity.to_json().to_string());
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        // `/challenge` is answered before verifying; an empty 200 is all it could mean here.
        Endpoint::Verify | Endpoint::Challenge => {
            let mut resp = Response::new(Full::new(Bytes::new()));
            set_identity_headers(resp.headers_mut(), identity);
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

fn method_not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Denial::new(ErrorCode::MethodNotAllowed, format!("use {allow}")).to_response();
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}

fn challenge(verifier: &Verifier) -> Response<Full<Bytes>> {
    let rules = &verifier.rules;
    let Some(key) = &rules.challenge_key else {
        return Denial::new(
            ErrorCode::NotFound,
            "this verifier does not issue challenges",
        )
        .to_response();
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
