//! SigV4 parameter parsing for the local checks: the `authorization` header, the presigned
//! query, the credential scope and `X-Amz-Date`. Shape only; STS checks the signature.

use time::OffsetDateTime;
use time::macros::format_description;

use super::{ALGORITHM, MAX_PRESIGN_EXPIRES_SECS, QUERY_PARAMS};
use crate::error::{ErrorCode, VerifyError, malformed};
use crate::hosts::printable;
use crate::names::Region;

/// The SigV4 parameters of a proof, from the `authorization` header or the presigned query.
#[derive(Default)]
pub(super) struct AuthParams {
    pub(super) credential: String,
    /// Sorted, lowercase, without duplicates.
    pub(super) signed_headers: Vec<String>,
    /// `X-Amz-Date` as given.
    pub(super) date: String,
    /// `X-Amz-Expires` of a presigned GET.
    pub(super) expires_secs: Option<u64>,
}

impl AuthParams {
    pub(super) fn signs(&self, header: &str) -> bool {
        self.signed_headers.iter().any(|h| h == header)
    }
}

pub(super) fn parse_authorization(header: &str) -> Result<AuthParams, VerifyError> {
    let (algorithm, rest) = header
        .split_once(' ')
        .ok_or_else(|| malformed("authorization header is not SigV4"))?;
    if algorithm != ALGORITHM {
        return Err(malformed(format!(
            "authorization algorithm must be {ALGORITHM}"
        )));
    }
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim_start_matches(' ');
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| malformed("authorization header is not SigV4"))?;
        let slot = match k {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut signature,
            _ => {
                return Err(malformed(format!(
                    "unexpected component {:?} in the authorization header",
                    printable(k)
                )));
            }
        };
        if slot.replace(v).is_some() {
            return Err(malformed(format!(
                "component {k} appears twice in the authorization header"
            )));
        }
    }
    let (Some(credential), Some(signed), Some(signature)) = (credential, signed, signature) else {
        return Err(malformed(
            "authorization header needs Credential, SignedHeaders and Signature",
        ));
    };
    check_signature(signature)?;
    Ok(AuthParams {
        credential: credential.to_owned(),
        signed_headers: parse_signed_headers(signed)?,
        ..AuthParams::default()
    })
}

fn check_signature(sig: &str) -> Result<(), VerifyError> {
    if sig.len() == 64 && sig.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(malformed("signature must be 64 lowercase hex digits"))
    }
}

fn parse_signed_headers(list: &str) -> Result<Vec<String>, VerifyError> {
    let names: Vec<String> = list.split(';').map(str::to_owned).collect();
    for n in &names {
        if !crate::token::is_header_name(n) || n.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(malformed(
                "SignedHeaders must be lowercase header names separated by ';'",
            ));
        }
    }
    if names.windows(2).any(|w| w[0] >= w[1]) {
        return Err(malformed(
            "SignedHeaders must be sorted and without duplicates",
        ));
    }
    Ok(names)
}

pub(super) fn parse_presigned_query(query: &str) -> Result<AuthParams, VerifyError> {
    if !query
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=:@/?".contains(&b))
    {
        return Err(malformed(
            "the presigned query has characters that must be percent-encoded",
        ));
    }
    let mut seen: Vec<(String, String)> = Vec::new();
    for pair in query.split('&') {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| malformed("query parameters must be name=value"))?;
        let decoded_name = percent_decode_strict(name)?;
        if seen
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(&decoded_name))
        {
            return Err(malformed(format!(
                "query parameter {:?} appears more than once (names are compared ignoring case)",
                printable(&decoded_name)
            )));
        }
        seen.push((decoded_name, percent_decode_strict(value)?));
        if !QUERY_PARAMS.contains(&name) {
            return Err(VerifyError::new(
                ErrorCode::WrongAction,
                format!(
                    "query parameter {:?} is not allowed; only GetCallerIdentity's presigning parameters are",
                    printable(name)
                ),
            ));
        }
    }
    let get = |name: &str| {
        seen.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    if get("Action") != Some("GetCallerIdentity") || get("Version") != Some("2011-06-15") {
        return Err(VerifyError::new(
            ErrorCode::WrongAction,
            "query must hold Action=GetCallerIdentity and Version=2011-06-15",
        ));
    }
    let need = |name: &'static str| {
        get(name).ok_or_else(|| malformed(format!("presigned URL is missing {name}")))
    };
    if need("X-Amz-Algorithm")? != ALGORITHM {
        return Err(malformed(format!("X-Amz-Algorithm must be {ALGORITHM}")));
    }
    check_signature(need("X-Amz-Signature")?)?;
    let expires = need("X-Amz-Expires")?;
    let expires_secs =
        (!expires.is_empty() && expires.len() <= 3 && expires.bytes().all(|b| b.is_ascii_digit()))
            .then(|| expires.parse::<u64>().ok())
            .flatten()
            .filter(|s| (1..=MAX_PRESIGN_EXPIRES_SECS).contains(s))
            .ok_or_else(|| {
                malformed(format!(
                    "X-Amz-Expires must be an integer from 1 to {MAX_PRESIGN_EXPIRES_SECS}"
                ))
            })?;
    Ok(AuthParams {
        credential: need("X-Amz-Credential")?.to_owned(),
        signed_headers: parse_signed_headers(need("X-Amz-SignedHeaders")?)?,
        date: need("X-Amz-Date")?.to_owned(),
        expires_secs: Some(expires_secs),
    })
}

fn percent_decode_strict(s: &str) -> Result<String, VerifyError> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let ok =
                i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit();
            if !ok {
                return Err(malformed("bad percent-encoding in the query"));
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    let decoded = percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map_err(|_| malformed("query is not UTF-8 after percent-decoding"))?;
    if decoded.chars().any(char::is_control) {
        return Err(malformed("control characters in the query"));
    }
    Ok(decoded.into_owned())
}

/// `<key>/<yyyymmdd>/<region>/sts/aws4_request`.
pub(super) struct CredentialScope {
    pub(super) access_key_id: String,
    pub(super) date: String,
    pub(super) region: Region,
}

pub(super) fn parse_credential(credential: &str) -> Result<CredentialScope, VerifyError> {
    let parts: Vec<&str> = credential.split('/').collect();
    let [key, date, region, service, terminator] = parts.as_slice() else {
        return Err(malformed(
            "credential must be <key>/<yyyymmdd>/<region>/sts/aws4_request",
        ));
    };
    if key.len() > 128 {
        return Err(malformed("credential access key id is too long"));
    }
    if key.len() < 16
        || !key
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return Err(malformed("credential access key id is not well formed"));
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed("credential scope date must be yyyymmdd"));
    }
    let region: Region = region
        .parse()
        .map_err(|_| malformed("credential scope region is not a region name"))?;
    if *service != "sts" {
        return Err(malformed(format!(
            "credential scope service is {:?}; it must be sts",
            printable(service)
        )));
    }
    if *terminator != "aws4_request" {
        return Err(malformed("credential scope must end with aws4_request"));
    }
    Ok(CredentialScope {
        access_key_id: (*key).to_owned(),
        date: (*date).to_owned(),
        region,
    })
}

/// Parses `yyyymmddThhmmssZ`.
pub fn parse_amz_date(s: &str) -> Result<OffsetDateTime, VerifyError> {
    let fmt = format_description!("[year][month][day]T[hour][minute][second]Z");
    if s.len() != 16 {
        return Err(malformed("X-Amz-Date must be yyyymmddThhmmssZ"));
    }
    time::PrimitiveDateTime::parse(s, &fmt)
        .map(time::PrimitiveDateTime::assume_utc)
        .map_err(|_| malformed("X-Amz-Date must be yyyymmddThhmmssZ"))
}

/// Formats a time as `yyyymmddThhmmssZ`.
pub fn format_amz_date(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}
