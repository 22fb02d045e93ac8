//! The local checks of DESIGN §4, steps 2 to 6, in order: URL, action, SigV4 shape, time,
//! binding. Their output, a [`SignedStsRequest`], is exactly what may be sent to STS.

use std::fmt;
use std::time::Duration;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::challenge::{CHALLENGE_HEADER, ChallengeClaims, ChallengeKey, verify_challenge};
use crate::error::{ErrorCode, VerifyError, malformed};
use crate::hosts::{HostError, StsHost, StsHostAllowList, is_plausible_region, printable};
use crate::token::{ProofFormat, RawSignedRequest, decode_proof_token};

/// The audience binding header of `iam-join-v1.` proofs.
pub const AUDIENCE_HEADER: &str = "x-iam-join-audience";
/// The audience binding header of `k8s-aws-v1.` proofs (the EKS cluster id).
pub const K8S_AUDIENCE_HEADER: &str = "x-k8s-aws-id";
/// The only body a signed POST may have.
pub const GET_CALLER_IDENTITY_BODY: &str = "Action=GetCallerIdentity&Version=2011-06-15";
/// The only SigV4 algorithm accepted.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// Largest `X-Amz-Expires` accepted on a presigned GET (STS's own limit for this use).
pub const MAX_PRESIGN_EXPIRES_SECS: u64 = 900;

/// Signed headers that describe the connection rather than the request: forwarding them to STS
/// could change how the request is framed, so a proof that signs one is refused.
const UNFORWARDABLE_HEADERS: [&str; 9] = [
    "connection",
    "expect",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

const QUERY_PARAMS: [&str; 9] = [
    "Action",
    "Version",
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
];

/// What the local checks need to know about this verifier.
#[derive(Clone, Debug)]
pub struct ProofRules {
    /// Allowed STS hosts (FIPS mode and extra regions live here).
    pub hosts: StsHostAllowList,
    /// This verifier's audience; `None` accepts no audience-bound proofs.
    pub audience: Option<String>,
    /// The key that signs this verifier's challenges; `None` accepts no challenge-bound proofs.
    pub challenge_key: Option<ChallengeKey>,
    /// How long an issued challenge stays valid.
    pub challenge_ttl: Duration,
    /// How far in the future `X-Amz-Date` may be (clock skew). Default 5 minutes.
    pub max_future_skew: Duration,
    /// How old `X-Amz-Date` may be. Default 15 minutes, STS's own window; never more.
    pub max_age: Duration,
}

impl Default for ProofRules {
    fn default() -> Self {
        Self {
            hosts: StsHostAllowList::new(),
            audience: None,
            challenge_key: None,
            challenge_ttl: Duration::from_secs(60),
            max_future_skew: Duration::from_secs(5 * 60),
            max_age: Duration::from_secs(15 * 60),
        }
    }
}

/// Which SigV4 form the proof uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SigningForm {
    /// Auth in the `authorization` header, body `Action=GetCallerIdentity&Version=2011-06-15`.
    SignedPost,
    /// Auth in the query string, empty body.
    PresignedGet,
}

/// The kind of binding, for metrics and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BindingKind {
    /// Reusable until the proof expires; cacheable.
    Audience,
    /// Single-use.
    Challenge,
}

impl BindingKind {
    /// `audience` or `challenge`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Audience => "audience",
            Self::Challenge => "challenge",
        }
    }
}

impl fmt::Display for BindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the proof is tied to this verifier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Binding {
    /// Bound to this verifier's audience.
    Audience,
    /// Bound to a challenge this verifier issued (not yet checked against the replay store).
    Challenge(ChallengeClaims),
}

impl Binding {
    /// The kind of binding.
    pub fn kind(&self) -> BindingKind {
        match self {
            Self::Audience => BindingKind::Audience,
            Self::Challenge(_) => BindingKind::Challenge,
        }
    }
}

/// A proof that passed every local check: what will be sent to STS, and what it claims.
#[derive(Clone)]
pub struct SignedStsRequest {
    format: ProofFormat,
    form: SigningForm,
    host: StsHost,
    path_and_query: String,
    headers: Vec<(String, String)>,
    body: String,
    access_key_id: String,
    signed_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    binding: Binding,
    cache_key: [u8; 32],
}

impl fmt::Debug for SignedStsRequest {
    // Headers and query hold the signature and the session token: never print them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedStsRequest")
            .field("format", &self.format)
            .field("form", &self.form)
            .field("host", &self.host.name())
            .field("signed_at", &self.signed_at)
            .field("expires_at", &self.expires_at)
            .field("binding", &self.binding.kind())
            .finish_non_exhaustive()
    }
}

impl SignedStsRequest {
    /// The token format.
    pub fn format(&self) -> ProofFormat {
        self.format
    }
    /// The signing form.
    pub fn form(&self) -> SigningForm {
        self.form
    }
    /// `POST` or `GET`.
    pub fn method(&self) -> &'static str {
        match self.form {
            SigningForm::SignedPost => "POST",
            SigningForm::PresignedGet => "GET",
        }
    }
    /// The validated STS host; send it as the `Host` header byte for byte.
    pub fn host(&self) -> &StsHost {
        &self.host
    }
    /// The STS region (credential scope region, equal to the host's region).
    pub fn region(&self) -> &str {
        self.host.region()
    }
    /// `/` or `/?<query as given>`.
    pub fn path_and_query(&self) -> &str {
        &self.path_and_query
    }
    /// The headers to send to STS, `host` excluded: the signed ones (the binding header with the
    /// verifier's own value) and, for a signed POST, `authorization`. Sorted by name.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }
    /// Whether `accept` is among the signed headers (then the verifier must not set it).
    pub fn accept_is_signed(&self) -> bool {
        self.headers.iter().any(|(n, _)| n == "accept")
    }
    /// The body to send.
    pub fn body(&self) -> &str {
        &self.body
    }
    /// The access key id of the signer (not a secret, but keep it out of metric labels).
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }
    /// `X-Amz-Date`.
    pub fn signed_at(&self) -> OffsetDateTime {
        self.signed_at
    }
    /// When STS stops accepting this proof (at most 15 minutes after `signed_at`).
    pub fn expires_at(&self) -> OffsetDateTime {
        self.expires_at
    }
    /// The binding.
    pub fn binding(&self) -> &Binding {
        &self.binding
    }
    /// SHA-256 of the canonical request that will be sent (method, host, path and query, sent
    /// headers, body). Two proofs share a key only if STS would see the same bytes.
    pub fn cache_key(&self) -> [u8; 32] {
        self.cache_key
    }
}

/// Decodes and checks a proof token: DESIGN §4 steps 1 to 6.
pub fn check_proof(
    token: &str,
    rules: &ProofRules,
    now: OffsetDateTime,
) -> Result<SignedStsRequest, VerifyError> {
    let raw = decode_proof_token(token)?;
    check_request(&raw, rules, now)
}

/// Checks a decoded proof: DESIGN §4 steps 2 to 6.
pub fn check_request(
    raw: &RawSignedRequest,
    rules: &ProofRules,
    now: OffsetDateTime,
) -> Result<SignedStsRequest, VerifyError> {
    let form = match raw.method.as_str() {
        "POST" if raw.format == ProofFormat::IamJoinV1 => SigningForm::SignedPost,
        "GET" => SigningForm::PresignedGet,
        other => {
            return Err(malformed(format!(
                "method {:?} is not allowed; use POST (signed) or GET (presigned)",
                printable(other)
            )));
        }
    };

    // Step 2: URL and host.
    let url = split_url(&raw.url)?;
    let host = rules.hosts.resolve(url.host).map_err(|e| match e {
        HostError::NotFips(_) => VerifyError::new(ErrorCode::HostNotAllowed, e.to_string()),
        _ => VerifyError::new(ErrorCode::HostNotAllowed, e.to_string()),
    })?;

    // Steps 2-4 per form: query / body, action, auth parameters.
    let auth = match form {
        SigningForm::SignedPost => {
            if url.query.is_some() {
                return Err(malformed("a signed POST proof must have no query string"));
            }
            if raw.body != GET_CALLER_IDENTITY_BODY {
                return Err(VerifyError::new(
                    ErrorCode::WrongAction,
                    format!("body must be exactly {GET_CALLER_IDENTITY_BODY:?}"),
                ));
            }
            let header = raw
                .header("authorization")
                .ok_or_else(|| malformed("a signed POST proof needs an authorization header"))?;
            let mut auth = parse_authorization(header)?;
            auth.date = raw
                .header("x-amz-date")
                .ok_or_else(|| malformed("a signed POST proof needs an x-amz-date header"))?
                .to_owned();
            if !auth.signed_headers.iter().any(|h| h == "x-amz-date") {
                return Err(malformed("x-amz-date must be a signed header"));
            }
            auth
        }
        SigningForm::PresignedGet => {
            if !raw.body.is_empty() {
                return Err(VerifyError::new(
                    ErrorCode::WrongAction,
                    "a presigned GET proof must have an empty body",
                ));
            }
            let query = url
                .query
                .ok_or_else(|| malformed("a presigned GET proof needs its query string"))?;
            parse_presigned_query(query)?
        }
    };

    // Step 4: SigV4 shape.
    let scope = parse_credential(&auth.credential)?;
    if scope.region != host.region() {
        return Err(malformed(format!(
            "credential scope region {:?} does not match the region of {} ({})",
            scope.region,
            host.name(),
            host.region()
        )));
    }
    if !auth.signed_headers.iter().any(|h| h == "host") {
        return Err(malformed("host must be a signed header"));
    }
    if auth.signed_headers.iter().any(|h| h == "authorization") {
        return Err(malformed("authorization cannot be a signed header"));
    }
    if let Some(h) = auth
        .signed_headers
        .iter()
        .find(|h| UNFORWARDABLE_HEADERS.contains(&h.as_str()))
    {
        return Err(malformed(format!(
            "signed header {h} is a connection-level header and cannot be sent to STS"
        )));
    }

    // Step 5: time.
    let signed_at = parse_amz_date(&auth.date)?;
    if scope.date != auth.date[..8] {
        return Err(malformed(
            "credential scope date does not match the date of X-Amz-Date",
        ));
    }
    let max_age = time::Duration::try_from(rules.max_age.min(Duration::from_secs(15 * 60)))
        .unwrap_or(time::Duration::minutes(15));
    let skew =
        time::Duration::try_from(rules.max_future_skew).unwrap_or(time::Duration::minutes(5));
    if signed_at > now + skew {
        return Err(VerifyError::new(
            ErrorCode::ProofExpired,
            "proof is dated in the future; check the signer's clock",
        ));
    }
    let mut expires_at = signed_at + max_age;
    if let Some(secs) = auth.expires_secs {
        expires_at = expires_at.min(signed_at + time::Duration::seconds(secs as i64));
    }
    if now > expires_at {
        return Err(VerifyError::new(
            ErrorCode::ProofExpired,
            "proof has expired; sign a new one",
        ));
    }

    // Step 4 (signed headers present) and step 6 (binding).
    let binding_candidates: &[&str] = match raw.format {
        ProofFormat::IamJoinV1 => &[AUDIENCE_HEADER, CHALLENGE_HEADER],
        ProofFormat::K8sAwsV1 => &[K8S_AUDIENCE_HEADER],
    };
    let signed_bindings: Vec<&str> = binding_candidates
        .iter()
        .copied()
        .filter(|b| auth.signed_headers.iter().any(|h| h == b))
        .collect();
    let binding_header = match signed_bindings.as_slice() {
        [one] => *one,
        [] => {
            let unsigned = binding_candidates.iter().find(|b| raw.header(b).is_some());
            return Err(VerifyError::new(
                ErrorCode::BindingMissing,
                match unsigned {
                    Some(b) => format!("binding header {b} is present but not signed"),
                    None => format!(
                        "no binding header is signed; sign one of {}",
                        binding_candidates.join(", ")
                    ),
                },
            ));
        }
        _ => {
            return Err(malformed(
                "more than one binding header is signed; sign exactly one",
            ));
        }
    };

    let (binding, binding_value) = match binding_header {
        CHALLENGE_HEADER => {
            let value = raw
                .header(CHALLENGE_HEADER)
                .ok_or_else(|| malformed("signed header x-teleport-challenge is missing"))?;
            let key = rules.challenge_key.as_ref().ok_or_else(|| {
                VerifyError::new(
                    ErrorCode::ChallengeInvalid,
                    "this verifier does not issue challenges",
                )
            })?;
            let claims = verify_challenge(key, value, now, rules.challenge_ttl)?;
            (Binding::Challenge(claims), value.to_owned())
        }
        header => {
            let expected = rules.audience.as_deref().ok_or_else(|| {
                VerifyError::new(
                    ErrorCode::AudienceMismatch,
                    "this verifier accepts no audience-bound proofs; use a challenge",
                )
            })?;
            if raw.format == ProofFormat::IamJoinV1 {
                let given = raw
                    .header(header)
                    .ok_or_else(|| malformed(format!("signed header {header} is missing")))?;
                if given != expected {
                    return Err(VerifyError::new(
                        ErrorCode::AudienceMismatch,
                        format!(
                            "proof is bound to another audience; this verifier's audience is {expected:?}"
                        ),
                    ));
                }
            }
            (Binding::Audience, expected.to_owned())
        }
    };

    if let Some(len) = raw.header("content-length")
        && auth.signed_headers.iter().any(|h| h == "content-length")
        && len != raw.body.len().to_string()
    {
        return Err(malformed("signed content-length does not match the body"));
    }

    let mut headers = Vec::with_capacity(auth.signed_headers.len() + 1);
    for name in &auth.signed_headers {
        if name == "host" {
            continue;
        }
        let value = if name == binding_header {
            binding_value.clone()
        } else {
            raw.header(name)
                .ok_or_else(|| {
                    malformed(format!("signed header {name} is missing from the proof"))
                })?
                .to_owned()
        };
        headers.push((name.clone(), value));
    }
    if form == SigningForm::SignedPost {
        if let Some(a) = raw.header("authorization") {
            headers.push(("authorization".to_owned(), a.to_owned()));
        }
        headers.sort_by(|a, b| a.0.cmp(&b.0));
    }

    let path_and_query = match url.query {
        Some(q) => format!("/?{q}"),
        None => "/".to_owned(),
    };
    let method = match form {
        SigningForm::SignedPost => "POST",
        SigningForm::PresignedGet => "GET",
    };
    let cache_key = canonical_digest(method, host.name(), &path_and_query, &headers, &raw.body);

    Ok(SignedStsRequest {
        format: raw.format,
        form,
        host: host.clone(),
        path_and_query,
        headers,
        body: raw.body.clone(),
        access_key_id: scope.access_key_id,
        signed_at,
        expires_at,
        binding,
        cache_key,
    })
}

fn canonical_digest(
    method: &str,
    host: &str,
    path_and_query: &str,
    headers: &[(String, String)],
    body: &str,
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"iam-join-cache-v1\n");
    for part in [method, host, path_and_query] {
        h.update(part.as_bytes());
        h.update(b"\n");
    }
    for (n, v) in headers {
        h.update(n.as_bytes());
        h.update(b":");
        h.update(v.as_bytes());
        h.update(b"\n");
    }
    h.update(b"\n");
    h.update(body.as_bytes());
    h.finalize().into()
}

struct SplitUrl<'a> {
    host: &'a str,
    query: Option<&'a str>,
}

fn host_error(message: &'static str) -> VerifyError {
    VerifyError::new(ErrorCode::HostNotAllowed, message)
}

fn split_url(url: &str) -> Result<SplitUrl<'_>, VerifyError> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| malformed("proof URL must start with https://"))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, rest) = rest.split_at(end);
    if authority.contains('@') {
        return Err(host_error("proof URL must not contain userinfo"));
    }
    if authority.contains(':') {
        return Err(host_error("proof URL must not name a port"));
    }
    if authority.is_empty() {
        return Err(host_error("proof URL has no host"));
    }
    if rest.contains('#') {
        return Err(malformed("proof URL must not have a fragment"));
    }
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    if path != "/" {
        return Err(malformed("proof URL path must be exactly /"));
    }
    Ok(SplitUrl {
        host: authority,
        query,
    })
}

#[derive(Default)]
struct AuthParams {
    credential: String,
    signed_headers: Vec<String>,
    date: String,
    expires_secs: Option<u64>,
}

fn parse_authorization(header: &str) -> Result<AuthParams, VerifyError> {
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

fn parse_presigned_query(query: &str) -> Result<AuthParams, VerifyError> {
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

struct CredentialScope {
    access_key_id: String,
    date: String,
    region: String,
}

fn parse_credential(credential: &str) -> Result<CredentialScope, VerifyError> {
    let parts: Vec<&str> = credential.split('/').collect();
    let [key, date, region, service, terminator] = parts.as_slice() else {
        return Err(malformed(
            "credential must be <key>/<yyyymmdd>/<region>/sts/aws4_request",
        ));
    };
    if !(16..=128).contains(&key.len())
        || !key
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return Err(malformed("credential access key id is not well formed"));
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed("credential scope date must be yyyymmdd"));
    }
    if !is_plausible_region(region) {
        return Err(malformed("credential scope region is not a region name"));
    }
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
        region: (*region).to_owned(),
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
