//! SigV4 verification of a received `GetCallerIdentity` request: no I/O, no panics on any input.
//!
//! The signature is recomputed with aws-sigv4 from the request exactly as received (the `Host`
//! header byte for byte, only the headers named in `SignedHeaders`) and compared in constant time.
//! aws-sigv4 itself checks nothing about scope or time, so this module does.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use http::HeaderMap;
use percent_encoding::percent_decode_str;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use time::macros::format_description;

use crate::error::{StsError, StsErrorCode};
use crate::identity::TestIdentity;

/// How far `X-Amz-Date` may be from the emulator's clock, as real STS allows.
const MAX_CLOCK_SKEW: time::Duration = time::Duration::minutes(15);
/// The longest `X-Amz-Expires` SigV4 allows (seven days).
const MAX_EXPIRES_SECS: u64 = 604_800;
const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const SERVICE: &str = "sts";
const ACTION: &str = "GetCallerIdentity";
const VERSION: &str = "2011-06-15";
/// The URI handed to aws-sigv4 needs an authority (it panics without one) but the canonical
/// request takes `host` from the header we pass, so this placeholder never reaches the signature.
const PLACEHOLDER_AUTHORITY: &str = "sts-emulator.invalid";

/// Query parameters that carry presigned-request authentication; dropped before re-presigning.
const QUERY_AUTH_PARAMS: [&str; 7] = [
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
];

/// A received request, borrowed from the server's hyper request.
#[derive(Debug)]
pub(crate) struct ReceivedRequest<'a> {
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) query: Option<&'a str>,
    /// URI authority, used when there is no `Host` header (HTTP/2 `:authority`).
    pub(crate) authority: Option<&'a str>,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) body: &'a [u8],
}

/// An access key the emulator knows, with its session state.
#[derive(Clone, Debug)]
pub(crate) struct KeyRecord {
    pub(crate) identity: TestIdentity,
    /// Set by `EmulatorHandle::expire_session`: requests then get `ExpiredToken`.
    pub(crate) session_expired: bool,
}

/// Checks `req` as STS would and returns the caller it was signed by.
pub(crate) fn verify<'k>(
    req: &ReceivedRequest<'_>,
    keys: &'k HashMap<String, KeyRecord>,
    now: OffsetDateTime,
) -> Result<&'k TestIdentity, StsError> {
    let (identity, location) = verify_sigv4(req, keys, now, SERVICE, region_of_sts_host)?;
    let query = parse_query(req.query.unwrap_or_default());
    check_action(req, &query, location)?;
    Ok(identity)
}

/// Checks the SigV4 signature of `req` for `service` (scope, session token, time, signature)
/// and returns the caller it was signed by and where the signature was. `host_region` names
/// the region a host requires, if it requires one. What the request asks for is the caller's
/// business (STS: [`verify`]; Organizations: `organizations.rs`).
pub(crate) fn verify_sigv4<'k>(
    req: &ReceivedRequest<'_>,
    keys: &'k HashMap<String, KeyRecord>,
    now: OffsetDateTime,
    service: &str,
    host_region: impl FnOnce(&str) -> Option<String>,
) -> Result<(&'k TestIdentity, SignatureLocation), StsError> {
    let query = parse_query(req.query.unwrap_or_default());
    let auth = SigV4Auth::from_request(req, &query)?;
    if auth.scope.service != service {
        return Err(StsError::new(
            StsErrorCode::SignatureDoesNotMatch,
            format!("Credential should be scoped to correct service: '{service}'."),
        ));
    }
    let host = received_host(req)?;

    if let Some(expected) = host_region(host)
        && expected != auth.scope.region
    {
        return Err(StsError::new(
            StsErrorCode::SignatureDoesNotMatch,
            "Credential should be scoped to a valid region.",
        ));
    }

    let record = keys
        .get(auth.scope.access_key_id)
        .ok_or_else(StsError::invalid_token)?;
    check_session_token(record, auth.session_token.as_deref())?;

    let signed_at = parse_amz_date(&auth.amz_date)?;
    if auth.scope.date != &auth.amz_date[..8] {
        return Err(StsError::new(
            StsErrorCode::SignatureDoesNotMatch,
            format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
                 from HTTP: '{}' != '{}', from '{}'.",
                auth.scope.date,
                &auth.amz_date[..8],
                auth.amz_date
            ),
        ));
    }
    check_time(signed_at, auth.expires_in, now)?;

    let computed = recompute_signature(req, &auth, host, &record.identity, signed_at)?;
    if !bool::from(computed.as_bytes().ct_eq(auth.signature.as_bytes())) {
        return Err(StsError::signature_mismatch());
    }
    Ok((&record.identity, auth.location))
}

/// One `name=value` pair of the raw query string, kept raw for re-signing and decoded for reading.
#[derive(Debug)]
struct QueryParam<'a> {
    raw: &'a str,
    name: String,
    value: String,
}

fn parse_query(query: &str) -> Vec<QueryParam<'_>> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|raw| {
            let (name, value) = raw.split_once('=').unwrap_or((raw, ""));
            QueryParam {
                raw,
                name: form_decode(name),
                value: form_decode(value),
            }
        })
        .collect()
}

/// `application/x-www-form-urlencoded` decoding, as aws-sigv4 applies to the query it signs.
fn form_decode(s: &str) -> String {
    percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

fn is_query_auth_param(name: &str) -> bool {
    QUERY_AUTH_PARAMS.contains(&name)
}

/// `<access key>/<yyyymmdd>/<region>/<service>/aws4_request`.
#[derive(Debug)]
struct CredentialScope<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    /// Checked by the caller, which knows which service it emulates.
    service: &'a str,
}

impl<'a> CredentialScope<'a> {
    fn parse(credential: &'a str) -> Result<Self, StsError> {
        let parts: Vec<&str> = credential.split('/').collect();
        let [access_key_id, date, region, service, terminator] = parts[..] else {
            return Err(StsError::incomplete(format!(
                "Credential must have exactly 5 slash-delimited elements, e.g. \
                 keyid/date/region/service/term, got '{}'",
                redact_credential(credential)
            )));
        };
        if terminator != "aws4_request" {
            return Err(StsError::new(
                StsErrorCode::SignatureDoesNotMatch,
                format!(
                    "Credential should be scoped with a valid terminator: 'aws4_request', not \
                     '{terminator}'."
                ),
            ));
        }
        let region_ok = !region.is_empty()
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !region_ok {
            return Err(StsError::new(
                StsErrorCode::SignatureDoesNotMatch,
                "Credential should be scoped to a valid region.",
            ));
        }
        if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
            return Err(StsError::incomplete(format!(
                "Credential date must be in the form YYYYMMDD, got '{date}'"
            )));
        }
        if access_key_id.is_empty() {
            return Err(StsError::invalid_token());
        }
        Ok(Self {
            access_key_id,
            date,
            region,
            service,
        })
    }
}

/// Only the key id's first characters go into messages; the rest of a credential is not secret
/// but an attacker-controlled string need not be echoed in full.
fn redact_credential(credential: &str) -> String {
    credential.chars().take(64).collect()
}

/// The SigV4 authentication of a request, from either the header or the query.
#[derive(Debug)]
struct SigV4Auth<'a> {
    location: SignatureLocation,
    scope: CredentialScope<'a>,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
    amz_date: String,
    /// `X-Amz-Expires` of a presigned request.
    expires_in: Option<u64>,
    /// The session token presented, from the header or the query.
    session_token: Option<String>,
    /// Whether the presented token came in the query (aws-sigv4 re-adds it there when presigning).
    token_in_query: bool,
}

impl<'a> SigV4Auth<'a> {
    fn from_request(
        req: &ReceivedRequest<'a>,
        query: &'a [QueryParam<'a>],
    ) -> Result<Self, StsError> {
        let header_auth = single_header(req.headers, "authorization")?;
        let query_auth = query.iter().any(|p| {
            matches!(
                p.name.as_str(),
                "X-Amz-Algorithm" | "X-Amz-Credential" | "X-Amz-Signature"
            )
        });
        match (header_auth, query_auth) {
            (Some(_), true) => Err(StsError::incomplete(
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or \
                 the Authorization header should be specified",
            )),
            (None, false) => Err(StsError::new(
                StsErrorCode::MissingAuthenticationToken,
                "Request is missing Authentication Token",
            )),
            (Some(value), false) => Self::from_header(req, value),
            (None, true) => Self::from_query(req, query),
        }
    }

    fn from_header(req: &ReceivedRequest<'a>, value: &'a str) -> Result<Self, StsError> {
        let (algorithm, rest) = value.split_once(' ').unwrap_or((value, ""));
        if algorithm != ALGORITHM {
            return Err(StsError::incomplete(format!(
                "Unsupported AWS 'algorithm': '{}'",
                algorithm.chars().take(32).collect::<String>()
            )));
        }
        let (mut credential, mut signed_headers, mut signature) = (None, None, None);
        for part in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((name, value)) = part.split_once('=') else {
                return Err(StsError::incomplete(
                    "Authorization header parameters must be of the form name=value",
                ));
            };
            let slot = match name {
                "Credential" => &mut credential,
                "SignedHeaders" => &mut signed_headers,
                "Signature" => &mut signature,
                _ => {
                    return Err(StsError::incomplete(
                        "Authorization header has an unknown parameter",
                    ));
                }
            };
            if slot.replace(value).is_some() {
                return Err(StsError::incomplete(format!(
                    "Authorization header has a duplicate '{name}' parameter"
                )));
            }
        }
        let mut missing = Vec::new();
        for (name, slot) in [
            ("Credential", credential),
            ("Signature", signature),
            ("SignedHeaders", signed_headers),
        ] {
            if slot.is_none() {
                missing.push(format!("Authorization header requires '{name}' parameter."));
            }
        }
        let (Some(credential), Some(signed_headers), Some(signature)) =
            (credential, signed_headers, signature)
        else {
            return Err(StsError::incomplete(missing.join(" ")));
        };
        let amz_date = single_header(req.headers, "x-amz-date")?.ok_or_else(|| {
            StsError::incomplete(
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' \
                 header.",
            )
        })?;
        let session_token = single_header(req.headers, "x-amz-security-token")?;
        Ok(Self {
            location: SignatureLocation::Headers,
            scope: CredentialScope::parse(credential)?,
            signed_headers: parse_signed_headers(signed_headers)?,
            signature,
            amz_date: amz_date.to_owned(),
            expires_in: None,
            session_token: session_token.map(str::to_owned),
            token_in_query: false,
        })
    }

    fn from_query(
        req: &ReceivedRequest<'a>,
        query: &'a [QueryParam<'a>],
    ) -> Result<Self, StsError> {
        let param = |name: &str| -> Result<Option<&'a str>, StsError> {
            let mut found = query.iter().filter(|p| p.name == name);
            match (found.next(), found.next()) {
                (None, _) => Ok(None),
                (Some(p), None) => Ok(Some(p.value.as_str())),
                (Some(_), Some(_)) => Err(StsError::incomplete(format!(
                    "Query parameter '{name}' must appear exactly once"
                ))),
            }
        };
        let required = |name: &str| -> Result<&'a str, StsError> {
            param(name)?.ok_or_else(|| {
                StsError::incomplete(format!(
                    "AWS query-string parameters must include '{name}'. Re-examine the \
                     query-string parameters."
                ))
            })
        };
        let algorithm = required("X-Amz-Algorithm")?;
        if algorithm != ALGORITHM {
            return Err(StsError::incomplete(
                "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"",
            ));
        }
        let credential = required("X-Amz-Credential")?;
        let amz_date = required("X-Amz-Date")?;
        let expires = required("X-Amz-Expires")?;
        let signed_headers = required("X-Amz-SignedHeaders")?;
        let signature = required("X-Amz-Signature")?;
        let expires_in = parse_expires(expires)?;

        let (session_token, token_in_query) = match param("X-Amz-Security-Token")? {
            Some(token) => (Some(token.to_owned()), true),
            None => (
                single_header(req.headers, "x-amz-security-token")?.map(str::to_owned),
                false,
            ),
        };
        Ok(Self {
            location: SignatureLocation::QueryParams,
            scope: CredentialScope::parse(credential)?,
            signed_headers: parse_signed_headers(signed_headers)?,
            signature,
            amz_date: amz_date.to_owned(),
            expires_in: Some(expires_in),
            session_token,
            token_in_query,
        })
    }
}

fn parse_expires(expires: &str) -> Result<u64, StsError> {
    let value = (!expires.is_empty() && expires.bytes().all(|b| b.is_ascii_digit()))
        .then(|| expires.parse::<u64>().ok())
        .flatten()
        .filter(|secs| (1..=MAX_EXPIRES_SECS).contains(secs));
    value.ok_or_else(|| {
        StsError::incomplete(format!(
            "X-Amz-Expires must be an integer between 1 and {MAX_EXPIRES_SECS} (seconds)"
        ))
    })
}

fn parse_signed_headers(list: &str) -> Result<Vec<&str>, StsError> {
    let mut names = Vec::new();
    for name in list.split(';') {
        let valid = !name.is_empty()
            && http::HeaderName::from_bytes(name.as_bytes())
                .is_ok_and(|parsed| parsed.as_str() == name);
        if !valid {
            return Err(StsError::incomplete(
                "SignedHeaders must be a ';'-separated list of lower-case header names",
            ));
        }
        if names.contains(&name) {
            return Err(StsError::incomplete("SignedHeaders lists a header twice"));
        }
        names.push(name);
    }
    if !names.contains(&"host") {
        return Err(StsError::incomplete(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        ));
    }
    Ok(names)
}

/// The value of a header that may appear at most once, as text.
fn single_header<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, StsError> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(value), None) => value
            .to_str()
            .map(Some)
            .map_err(|_| StsError::incomplete(format!("Header '{name}' is not valid text"))),
        (Some(_), Some(_)) => Err(StsError::incomplete(format!(
            "Header '{name}' must appear at most once"
        ))),
    }
}

/// The `Host` as received (no port added or removed), else the URI authority.
fn received_host<'r>(req: &ReceivedRequest<'r>) -> Result<&'r str, StsError> {
    let host = match single_header(req.headers, "host")? {
        Some(host) => Some(host),
        None => req.authority,
    };
    host.filter(|h| !h.is_empty())
        .ok_or_else(|| StsError::incomplete("The request has no Host header"))
}

/// The region an AWS STS hostname serves, so a request scoped to another region is refused as
/// STS refuses it. Other hosts (loopback, test names) accept any region.
fn region_of_sts_host(host: &str) -> Option<String> {
    let host = host.to_ascii_lowercase();
    if host == "sts.amazonaws.com" {
        return Some("us-east-1".to_owned());
    }
    [
        ".amazonaws.com",
        ".amazonaws.com.cn",
        ".c2s.ic.gov",
        ".sc2s.sgov.gov",
    ]
    .iter()
    .find_map(|suffix| host.strip_suffix(suffix))
    .and_then(|rest| rest.strip_prefix("sts.").or(rest.strip_prefix("sts-fips.")))
    .filter(|region| !region.is_empty() && !region.contains('.'))
    .map(str::to_owned)
}

/// Mapping: a temporary key must present exactly its own token; a missing, unexpected or
/// different token is `InvalidClientTokenId` (what STS answers for a token it cannot decode);
/// a session marked expired is `ExpiredToken`.
fn check_session_token(record: &KeyRecord, presented: Option<&str>) -> Result<(), StsError> {
    match (record.identity.session_token.as_deref(), presented) {
        (None, None) => Ok(()),
        (Some(expected), Some(got)) if bool::from(expected.as_bytes().ct_eq(got.as_bytes())) => {
            if record.session_expired {
                Err(StsError::new(
                    StsErrorCode::ExpiredToken,
                    "The security token included in the request is expired",
                ))
            } else {
                Ok(())
            }
        }
        _ => Err(StsError::invalid_token()),
    }
}

fn parse_amz_date(amz_date: &str) -> Result<OffsetDateTime, StsError> {
    let b = amz_date.as_bytes();
    let shape_ok = b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit);
    let malformed = || {
        StsError::incomplete(format!(
            "Date must be in ISO-8601 'basic format'. Got '{}'. See \
             http://en.wikipedia.org/wiki/ISO_8601",
            amz_date.chars().take(32).collect::<String>()
        ))
    };
    if !shape_ok {
        return Err(malformed());
    }
    time::PrimitiveDateTime::parse(
        amz_date,
        format_description!("[year][month][day]T[hour][minute][second]Z"),
    )
    .map(time::PrimitiveDateTime::assume_utc)
    .map_err(|_| malformed())
}

fn format_amz_date(t: OffsetDateTime) -> String {
    t.format(format_description!(
        "[year][month][day]T[hour][minute][second]Z"
    ))
    .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Mapping: outside ±15 minutes is `SignatureDoesNotMatch` "Signature expired" / "not yet
/// current" (STS's answer, and STS reportedly applies it to presigned requests too); a presigned
/// request past `X-Amz-Date + X-Amz-Expires` is `AccessDenied` "Request has expired".
fn check_time(
    signed_at: OffsetDateTime,
    expires_in: Option<u64>,
    now: OffsetDateTime,
) -> Result<(), StsError> {
    // Saturating arithmetic: a shifted clock near the calendar's ends must not panic.
    let latest = now.saturating_add(MAX_CLOCK_SKEW);
    let earliest = now.saturating_sub(MAX_CLOCK_SKEW);
    if signed_at > latest {
        return Err(StsError::new(
            StsErrorCode::SignatureDoesNotMatch,
            format!(
                "Signature not yet current: {} is still later than {} ({} + 15 min.)",
                format_amz_date(signed_at),
                format_amz_date(latest),
                format_amz_date(now)
            ),
        ));
    }
    if let Some(expires_in) = expires_in {
        let secs = i64::try_from(expires_in).unwrap_or(i64::MAX);
        if now > signed_at.saturating_add(time::Duration::seconds(secs)) {
            return Err(StsError::new(
                StsErrorCode::AccessDenied,
                "Request has expired",
            ));
        }
    }
    if signed_at < earliest {
        return Err(StsError::new(
            StsErrorCode::SignatureDoesNotMatch,
            format!(
                "Signature expired: {} is now earlier than {} ({} - 15 min.)",
                format_amz_date(signed_at),
                format_amz_date(earliest),
                format_amz_date(now)
            ),
        ));
    }
    Ok(())
}

/// Recomputes the signature with aws-sigv4 over exactly what was received.
fn recompute_signature(
    req: &ReceivedRequest<'_>,
    auth: &SigV4Auth<'_>,
    host: &str,
    identity: &TestIdentity,
    signed_at: OffsetDateTime,
) -> Result<String, StsError> {
    // For a presigned request aws-sigv4 re-adds the auth parameters itself, the session token
    // included when the credentials carry one; everything else in the query stays byte for byte.
    let (query, token_for_signing) = match auth.location {
        SignatureLocation::QueryParams => {
            let rest: Vec<&str> = parse_query(req.query.unwrap_or_default())
                .into_iter()
                .filter(|p| !is_query_auth_param(&p.name))
                .map(|p| p.raw)
                .collect();
            let token = auth.session_token.clone().filter(|_| auth.token_in_query);
            (rest.join("&"), token)
        }
        _ => (
            req.query.unwrap_or_default().to_owned(),
            auth.session_token.clone(),
        ),
    };
    let uri = if query.is_empty() {
        format!("https://{PLACEHOLDER_AUTHORITY}{}", req.path)
    } else {
        format!("https://{PLACEHOLDER_AUTHORITY}{}?{query}", req.path)
    };

    let mut headers: Vec<(&str, &str)> = Vec::with_capacity(auth.signed_headers.len());
    for &name in &auth.signed_headers {
        if name == "host" {
            headers.push(("host", host));
            continue;
        }
        let mut found = false;
        for value in req.headers.get_all(name) {
            let value = value.to_str().map_err(|_| StsError::signature_mismatch())?;
            headers.push((name, value));
            found = true;
        }
        if !found {
            // A signed header that was not sent cannot reproduce the client's signature.
            return Err(StsError::signature_mismatch());
        }
    }

    let identity: Identity = Credentials::new(
        identity.access_key_id.clone(),
        identity.secret_access_key.clone(),
        token_for_signing,
        None,
        "sts-emulator",
    )
    .into();
    let mut settings = SigningSettings::default();
    settings.excluded_headers = None;
    settings.signature_location = auth.location;
    // Always set for presigning: aws-sigv4 panics on QueryParams without expires_in.
    settings.expires_in = auth.expires_in.map(Duration::from_secs);
    if auth.location == SignatureLocation::QueryParams && settings.expires_in.is_none() {
        return Err(StsError::incomplete("X-Amz-Expires is required"));
    }
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(auth.scope.region)
        .name(auth.scope.service)
        .time(SystemTime::from(signed_at))
        .settings(settings)
        .build()
        .map_err(|_| StsError::signature_mismatch())?
        .into();
    let body = match auth.location {
        SignatureLocation::QueryParams => SignableBody::Bytes(&[]),
        _ => SignableBody::Bytes(req.body),
    };
    let signable = SignableRequest::new(req.method, uri, headers.into_iter(), body)
        .map_err(|_| StsError::incomplete("The request URI cannot be canonicalized"))?;
    let output = sign(signable, &params).map_err(|_| StsError::signature_mismatch())?;
    Ok(output.signature().to_owned())
}

/// Action and Version, from the query (less the auth parameters) and a form-encoded body.
fn check_action(
    req: &ReceivedRequest<'_>,
    query: &[QueryParam<'_>],
    location: SignatureLocation,
) -> Result<(), StsError> {
    let form_body = single_header(req.headers, "content-type")
        .ok()
        .flatten()
        .is_some_and(|ct| {
            ct.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    let body_text = if form_body {
        std::str::from_utf8(req.body).unwrap_or_default()
    } else {
        ""
    };
    let body_params = parse_query(body_text);
    let all = query
        .iter()
        .filter(|p| location != SignatureLocation::QueryParams || !is_query_auth_param(&p.name))
        .chain(&body_params);
    let (mut actions, mut versions) = (Vec::new(), Vec::new());
    for p in all {
        match p.name.as_str() {
            "Action" => actions.push(p.value.as_str()),
            "Version" => versions.push(p.value.as_str()),
            _ => {}
        }
    }
    if actions == [ACTION] && versions == [VERSION] {
        return Ok(());
    }
    let shown = |values: &[&str]| -> String {
        values
            .first()
            .map(|v| v.chars().take(64).collect())
            .unwrap_or_default()
    };
    Err(StsError::new(
        StsErrorCode::InvalidAction,
        format!(
            "Could not find operation {} for version {}",
            shown(&actions),
            shown(&versions)
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sts_host_regions_follow_aws_naming() {
        assert_eq!(
            region_of_sts_host("sts.amazonaws.com").as_deref(),
            Some("us-east-1")
        );
        assert_eq!(
            region_of_sts_host("sts.us-west-2.amazonaws.com").as_deref(),
            Some("us-west-2")
        );
        assert_eq!(
            region_of_sts_host("sts-fips.us-east-2.amazonaws.com").as_deref(),
            Some("us-east-2")
        );
        assert_eq!(
            region_of_sts_host("sts.cn-north-1.amazonaws.com.cn").as_deref(),
            Some("cn-north-1")
        );
        assert_eq!(region_of_sts_host("127.0.0.1:8080"), None);
        assert_eq!(region_of_sts_host("localhost"), None);
        assert_eq!(region_of_sts_host("evil.us-west-2.amazonaws.com"), None);
    }

    #[test]
    fn credential_scope_requires_five_parts_and_names_the_service() {
        let ok = CredentialScope::parse("AKID/20260101/us-west-2/sts/aws4_request").expect("ok");
        assert_eq!(ok.access_key_id, "AKID");
        assert_eq!(ok.region, "us-west-2");
        assert_eq!(ok.service, "sts");
        // The service is checked by `verify_sigv4`, which knows which service it emulates.
        let s3 = CredentialScope::parse("AKID/20260101/us-west-2/s3/aws4_request").expect("s3");
        assert_eq!(s3.service, "s3");
        for bad in [
            "",
            "AKID",
            "AKID/2026/us-west-2/sts/aws4_request",
            "a/b/c/d/e/f",
        ] {
            assert!(CredentialScope::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn amz_date_must_be_iso8601_basic() {
        assert!(parse_amz_date("20261123T101500Z").is_ok());
        for bad in [
            "",
            "20261123T101500",
            "2026-11-23T10:15:00Z",
            "20261323T101500Z",
            "+0261123T101500Z",
            "20261123T10150éZ",
        ] {
            let err = parse_amz_date(bad).expect_err(bad);
            assert_eq!(err.code, StsErrorCode::IncompleteSignature);
        }
    }

    #[test]
    fn time_window_is_fifteen_minutes_and_presigned_expiry() {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        let minutes = time::Duration::minutes;
        assert!(check_time(now - minutes(14), None, now).is_ok());
        assert!(check_time(now + minutes(14), None, now).is_ok());
        let old = check_time(now - minutes(20), None, now).expect_err("old");
        assert_eq!(old.code, StsErrorCode::SignatureDoesNotMatch);
        assert!(
            old.message.starts_with("Signature expired: "),
            "{}",
            old.message
        );
        let future = check_time(now + minutes(20), None, now).expect_err("future");
        assert!(future.message.starts_with("Signature not yet current: "));
        let presigned = check_time(now - minutes(6), Some(300), now).expect_err("presigned");
        assert_eq!(presigned.code, StsErrorCode::AccessDenied);
        assert!(check_time(now - minutes(4), Some(300), now).is_ok());
    }

    #[test]
    fn time_checks_saturate_at_the_ends_of_the_calendar() {
        let (min, max) = (
            time::PrimitiveDateTime::MIN.assume_utc(),
            time::PrimitiveDateTime::MAX.assume_utc(),
        );
        assert!(check_time(max, Some(MAX_EXPIRES_SECS), max).is_ok());
        assert!(check_time(min, Some(MAX_EXPIRES_SECS), min).is_ok());
        assert!(check_time(min, None, max).is_err());
        assert!(check_time(max, None, min).is_err());
    }

    #[test]
    fn expires_must_be_a_plain_integer_in_range() {
        assert_eq!(parse_expires("300").ok(), Some(300));
        for bad in [
            "",
            "0",
            "-1",
            "+5",
            "604801",
            "1e3",
            "99999999999999999999999",
        ] {
            assert!(parse_expires(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn signed_headers_must_be_lowercase_unique_and_include_host() {
        assert!(parse_signed_headers("content-type;host;x-amz-date").is_ok());
        for bad in [
            "",
            "host;;x",
            "Host",
            "x-amz-date",
            "host;host",
            "host;bad header",
        ] {
            assert!(parse_signed_headers(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn query_parsing_decodes_form_encoding_and_keeps_raw_pairs() {
        let q = parse_query("a=b%2Fc&X-Amz-Security-Token=x%2By+z&&flag");
        assert_eq!(q.len(), 3);
        assert_eq!(q[0].value, "b/c");
        assert_eq!(q[1].value, "x+y z");
        assert_eq!(q[1].raw, "X-Amz-Security-Token=x%2By+z");
        assert_eq!((q[2].name.as_str(), q[2].value.as_str()), ("flag", ""));
    }

    #[test]
    fn malformed_requests_are_rejected_without_panicking() {
        let keys = HashMap::new();
        let now = OffsetDateTime::now_utc();
        let header_values = [
            "",
            "AWS4-HMAC-SHA256",
            "AWS4-HMAC-SHA256 ",
            "AWS4-HMAC-SHA256 Credential=",
            "AWS4-HMAC-SHA256 Credential=a/b/c/d/e, SignedHeaders=host, Signature=00",
            "AWS4-HMAC-SHA256 Credential=A/20260101/r/sts/aws4_request,SignedHeaders=,Signature=",
            "AWS4-HMAC-SHA256 Credential=A/20260101/r/sts/aws4_request, Credential=x",
            "AWS4-HMAC-SHA256 ,,,=,==,",
            "AWS4-HMAC-SHA512 Credential=x",
        ];
        for value in header_values {
            let mut headers = HeaderMap::new();
            headers.insert(
                "authorization",
                http::HeaderValue::from_str(value).expect("ascii"),
            );
            headers.insert("x-amz-date", http::HeaderValue::from_static("garbage"));
            let req = ReceivedRequest {
                method: "POST",
                path: "/",
                query: None,
                authority: None,
                headers: &headers,
                body: b"",
            };
            assert!(verify(&req, &keys, now).is_err(), "{value}");
        }
        let queries = [
            "X-Amz-Algorithm=AWS4-HMAC-SHA256",
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Algorithm=AWS4-HMAC-SHA256",
            "X-Amz-Signature=%ff%fe&X-Amz-Credential=%",
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=A%2F20260101%2Fr%2Fsts%2Faws4_request\
             &X-Amz-Date=20260101T000000Z&X-Amz-Expires=0&X-Amz-SignedHeaders=host&X-Amz-Signature=0",
            "Action=GetCallerIdentity&Version=2011-06-15",
        ];
        let headers = HeaderMap::new();
        for query in queries {
            let req = ReceivedRequest {
                method: "GET",
                path: "/",
                query: Some(query),
                authority: Some("sts.us-west-2.amazonaws.com"),
                headers: &headers,
                body: b"",
            };
            assert!(verify(&req, &keys, now).is_err(), "{query}");
        }
    }

    mod never_panics {
        use super::*;
        use proptest::prelude::*;

        fn alice_keys() -> HashMap<String, KeyRecord> {
            crate::identity::default_identities()
                .into_iter()
                .map(|identity| {
                    let key = identity.access_key_id.clone();
                    let record = KeyRecord {
                        identity,
                        session_expired: false,
                    };
                    (key, record)
                })
                .collect()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Requests that pass the shape checks with a known key and a current date reach
            /// aws-sigv4 with arbitrary region, signed headers, path, query and host.
            #[test]
            fn arbitrary_requests_with_a_known_key_reach_aws_sigv4_without_panicking(
                region in "[a-z0-9-]{1,12}",
                signed in "host(;[a-z0-9-]{1,12}){0,3}",
                path in "/[ -~]{0,30}",
                query in "[ -~]{0,60}",
                host in "[ -~]{0,30}",
                body in proptest::collection::vec(any::<u8>(), 0..64),
                presigned in any::<bool>(),
                method in "GET|POST|PUT|[A-Z]{1,8}",
            ) {
                let now = OffsetDateTime::now_utc();
                let date = format_amz_date(now);
                let credential = format!(
                    "{}/{}/{region}/sts/aws4_request",
                    crate::keys::ALICE_ACCESS_KEY_ID,
                    &date[..8]
                );
                let mut headers = HeaderMap::new();
                if let Ok(value) = http::HeaderValue::from_str(&host) {
                    headers.insert("host", value);
                }
                let full_query;
                if presigned {
                    full_query = format!(
                        "{query}&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={}\
                         &X-Amz-Date={date}&X-Amz-Expires=60&X-Amz-SignedHeaders={}\
                         &X-Amz-Signature=00",
                        credential.replace('/', "%2F"),
                        signed.replace(';', "%3B"),
                    );
                } else {
                    full_query = query;
                    let auth = format!(
                        "AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders={signed}, \
                         Signature=00"
                    );
                    headers.insert(
                        "authorization",
                        http::HeaderValue::from_str(&auth).expect("ascii"),
                    );
                    headers.insert(
                        "x-amz-date",
                        http::HeaderValue::from_str(&date).expect("ascii"),
                    );
                }
                let req = ReceivedRequest {
                    method: &method,
                    path: &path,
                    query: Some(&full_query),
                    authority: Some("sts.us-west-2.amazonaws.com"),
                    headers: &headers,
                    body: &body,
                };
                prop_assert!(verify(&req, &alice_keys(), now).is_err());
            }

            #[test]
            fn arbitrary_authorization_headers_never_panic(
                auth in "[ -~]{0,200}",
                date in "[0-9TZ]{0,20}",
                token in proptest::option::of("[ -~]{0,20}"),
            ) {
                let mut headers = HeaderMap::new();
                for (name, value) in [
                    ("authorization", Some(auth.as_str())),
                    ("x-amz-date", Some(date.as_str())),
                    ("x-amz-security-token", token.as_deref()),
                ] {
                    if let Some(value) = value.and_then(|v| http::HeaderValue::from_str(v).ok()) {
                        headers.insert(name, value);
                    }
                }
                let req = ReceivedRequest {
                    method: "POST",
                    path: "/",
                    query: None,
                    authority: None,
                    headers: &headers,
                    body: BODY_FOR_TESTS,
                };
                let _ = verify(&req, &alice_keys(), OffsetDateTime::now_utc());
            }
        }

        const BODY_FOR_TESTS: &[u8] = b"Action=GetCallerIdentity&Version=2011-06-15";
    }
}
