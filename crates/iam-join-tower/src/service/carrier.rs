//! Carriers: finding the proof and the join token name in a request, and removing every header
//! an upstream must not see (proofs in any spelling, client-sent `x-iam-join-*` headers).

use http::{HeaderMap, HeaderName, HeaderValue, header};
use iam_join_core::token::{IAM_JOIN_V1_PREFIX, K8S_AWS_V1_PREFIX};
use iam_join_core::{ErrorCode, TokenName, VerifyError};

use crate::error::Denial;
use crate::hop_by_hop::connection_tokens;

/// The proof carrier header besides `Authorization: Bearer`.
pub const PROOF_HEADER: &str = "x-iam-join-proof";
/// The header naming the join token.
pub const TOKEN_HEADER: &str = "x-iam-join-token";
/// Every header with this prefix is removed from incoming requests.
pub const IDENTITY_HEADER_PREFIX: &str = "x-iam-join-";

/// What a request presented, read before its carriers were removed.
#[derive(Debug)]
pub(crate) struct Presented {
    /// The proof token, or why there is no usable one.
    pub(crate) proof: Result<String, Denial>,
    /// The join token name, or why there is no usable one.
    pub(crate) token: Result<String, Denial>,
}

/// Reads the proof and token name, then removes every proof and `x-iam-join-*` header, so
/// whatever happens next, nothing the client sent as a credential or identity reaches the
/// upstream.
pub(crate) fn take_presented(headers: &mut HeaderMap, default_token: Option<&str>) -> Presented {
    let presented = Presented {
        proof: find_proof(headers),
        token: token_name(headers, default_token),
    };
    strip_identity_headers(headers);
    remove_bearer_proofs(headers);
    presented
}

fn malformed(msg: &'static str) -> Denial {
    VerifyError::new(ErrorCode::MalformedProof, msg).into()
}

const fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = v
        && is_ows(*first)
    {
        v = rest;
    }
    while let [rest @ .., last] = v
        && is_ows(*last)
    {
        v = rest;
    }
    v
}

/// The token of an `Authorization` value in any spelling an upstream could read as
/// `Bearer <token>`: the scheme in any case (RFC 9110 §11.1), followed by one or more spaces or
/// tabs, the whole value possibly padded with whitespace.
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let value = trim_ows(value);
    let split = value.iter().position(|b| is_ows(*b))?;
    let (scheme, rest) = value.split_at(split);
    let token = trim_ows(rest);
    (scheme.eq_ignore_ascii_case(b"bearer") && !token.is_empty()).then_some(token)
}

/// Whether a bearer token is one of our proof formats (compared in any case: a proof with an
/// altered prefix is still a signed request that must not reach the upstream).
fn is_proof_token(token: &[u8]) -> bool {
    [IAM_JOIN_V1_PREFIX, K8S_AWS_V1_PREFIX]
        .iter()
        .any(|prefix| {
            token
                .get(..prefix.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
        })
}

/// The proof in an `Authorization` value, if it carries one.
fn bearer_proof(value: &HeaderValue) -> Option<&[u8]> {
    bearer_token(value.as_bytes()).filter(|t| is_proof_token(t))
}

/// `X-IAM-Join-Proof`, else `Authorization: Bearer` when it holds one of our token formats (an
/// upstream's own bearer tokens are left alone). Exactly one proof may be sent.
fn find_proof(headers: &HeaderMap) -> Result<String, Denial> {
    let mut found = headers
        .get_all(PROOF_HEADER)
        .iter()
        .map(|v| trim_ows(v.as_bytes()))
        .chain(
            headers
                .get_all(header::AUTHORIZATION)
                .iter()
                .filter_map(bearer_proof),
        );
    match (found.next(), found.next()) {
        (Some(proof), None) => std::str::from_utf8(proof)
            .ok()
            .filter(|p| p.is_ascii())
            .map(str::to_owned)
            .ok_or_else(|| malformed("the proof is not ASCII")),
        (Some(_), Some(_)) => Err(malformed("send exactly one proof")),
        (None, _) => Err(VerifyError::new(
            ErrorCode::MissingProof,
            "no proof: send Authorization: Bearer <iam-join-v1 token> or X-IAM-Join-Proof",
        )
        .into()),
    }
}

fn token_name(headers: &HeaderMap, default: Option<&str>) -> Result<String, Denial> {
    let unknown = |msg| -> Denial { VerifyError::new(ErrorCode::UnknownToken, msg).into() };
    let mut values = headers.get_all(TOKEN_HEADER).iter();
    match (values.next(), values.next()) {
        (Some(_), Some(_)) => Err(unknown("send at most one X-IAM-Join-Token header")),
        (Some(v), None) => match v.to_str().map(str::trim) {
            Ok(name) if name.parse::<TokenName>().is_ok() => Ok(name.to_owned()),
            _ => Err(unknown("X-IAM-Join-Token is not a valid token name")),
        },
        (None, _) => default
            .map(str::to_owned)
            .ok_or_else(|| unknown("no join token named: send X-IAM-Join-Token")),
    }
}

/// Removes the `Authorization` values that carry one of our proofs; an upstream's own
/// credentials stay.
fn remove_bearer_proofs(headers: &mut HeaderMap) {
    let values: Vec<HeaderValue> = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .cloned()
        .collect();
    if values.iter().any(|v| bearer_proof(v).is_some()) {
        headers.remove(header::AUTHORIZATION);
        for v in values.into_iter().filter(|v| bearer_proof(v).is_none()) {
            headers.append(header::AUTHORIZATION, v);
        }
    }
}

/// Whether `name` starts with `prefix` (lower case, `-`) in any spelling an upstream could read
/// as it: any case, `_` for `-` (CGI/WSGI/Rack map `x_iam_join_arn` and `x-iam-join-arn` alike).
fn spelt_as(name: &str, prefix: &str) -> bool {
    name.len() >= prefix.len()
        && name.as_bytes()[..prefix.len()]
            .iter()
            .zip(prefix.as_bytes())
            .all(|(a, b)| a.to_ascii_lowercase() == *b || (*a == b'_' && *b == b'-'))
}

fn is_identity_header_name(name: &str) -> bool {
    spelt_as(name, IDENTITY_HEADER_PREFIX)
}

/// Removes every incoming `x-iam-join-*` header (also spelt with `_`), and every mention of one
/// in `Connection` (a proxy would otherwise drop the verified headers as hop-by-hop): only this
/// layer may set them.
pub fn strip_identity_headers(headers: &mut HeaderMap) {
    strip_matching(headers, is_identity_header_name);
}

/// Removes the header `name` (a configured assertion header outside `x-iam-join-*`) in every
/// spelling, and its mentions in `Connection`: a client must not hand the upstream a captured
/// assertion on a path the layer does not verify.
pub(crate) fn strip_header_spellings(headers: &mut HeaderMap, name: &HeaderName) {
    let target = name.as_str();
    strip_matching(headers, |n| n.len() == target.len() && spelt_as(n, target));
}

fn strip_matching(headers: &mut HeaderMap, matches: impl Fn(&str) -> bool) {
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|n| matches(n.as_str()))
        .cloned()
        .collect();
    for n in names {
        headers.remove(n);
    }
    let connection: Vec<String> = connection_tokens(headers).map(str::to_owned).collect();
    if connection.iter().any(|t| matches(t)) {
        headers.remove(header::CONNECTION);
        let kept: Vec<String> = connection.into_iter().filter(|t| !matches(t)).collect();
        if !kept.is_empty()
            && let Ok(v) = HeaderValue::from_str(&kept.join(", "))
        {
            headers.insert(header::CONNECTION, v);
        }
    }
}

#[cfg(test)]
mod tests;
