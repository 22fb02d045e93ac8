//! The local checks of DESIGN §4, steps 2 to 6, in order: URL, action, SigV4 shape, time,
//! binding. Their output, a [`SignedStsRequest`], is exactly what may be sent to STS.

use std::fmt;
use std::time::Duration;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::challenge::{CHALLENGE_HEADER, ChallengeClaims, ChallengeKey, verify_challenge};
use crate::error::{ErrorCode, VerifyError, malformed};
use crate::hosts::{StsHost, StsHostAllowList, printable};
use crate::token::{ProofFormat, RawSignedRequest, decode_proof_token};

mod sigv4;
#[cfg(test)]
mod tests;

use sigv4::{
    AuthParams, CredentialScope, parse_authorization, parse_credential, parse_presigned_query,
};
pub use sigv4::{format_amz_date, parse_amz_date};

pub use crate::wire::{AUDIENCE_HEADER, K8S_AUDIENCE_HEADER};
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

impl SigningForm {
    /// The HTTP method of the form: `POST` or `GET`.
    pub const fn method(self) -> &'static str {
        match self {
            Self::SignedPost => "POST",
            Self::PresignedGet => "GET",
        }
    }
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
        self.form.method()
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

/// Checks a decoded proof: DESIGN §4 steps 2 to 6, one named step each, cheapest first.
pub fn check_request(
    raw: &RawSignedRequest,
    rules: &ProofRules,
    now: OffsetDateTime,
) -> Result<SignedStsRequest, VerifyError> {
    let form = signing_form(raw)?;
    let url = split_url(&raw.url)?;
    let host = allowed_host(&rules.hosts, url.host)?;
    let auth = auth_params(raw, form, url.query)?;
    let scope = check_scope(&auth, host)?;
    let window = check_time_window(&auth, rules, now)?;
    let bound = resolve_binding(raw, &auth, rules, now)?;
    let headers = forwardable_headers(raw, form, &auth, &bound)?;
    let path_and_query = match url.query {
        Some(q) => format!("/?{q}"),
        None => "/".to_owned(),
    };
    let method = form.method();
    let cache_key = canonical_digest(method, host.name(), &path_and_query, &headers, &raw.body);
    Ok(SignedStsRequest {
        format: raw.format,
        form,
        host: host.clone(),
        path_and_query,
        headers,
        body: raw.body.clone(),
        access_key_id: scope.access_key_id,
        signed_at: window.signed_at,
        expires_at: window.expires_at,
        binding: bound.binding,
        cache_key,
    })
}

/// The signing form from the method: a `k8s-aws-v1.` token can only be a presigned GET.
fn signing_form(raw: &RawSignedRequest) -> Result<SigningForm, VerifyError> {
    match raw.method.as_str() {
        "POST" if raw.format == ProofFormat::IamJoinV1 => Ok(SigningForm::SignedPost),
        "GET" => Ok(SigningForm::PresignedGet),
        other => Err(malformed(format!(
            "method {:?} is not allowed; use POST (signed) or GET (presigned)",
            printable(other)
        ))),
    }
}

/// The host and query of an `https://` URL whose path is exactly `/` (step 2).
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

/// Step 2: the host must be on the allow-list (FIPS mode included).
fn allowed_host<'a>(hosts: &'a StsHostAllowList, host: &str) -> Result<&'a StsHost, VerifyError> {
    hosts
        .resolve(host)
        .map_err(|e| VerifyError::new(ErrorCode::HostNotAllowed, e.to_string()))
}

/// Steps 2-4 per form: no query and the exact body for a signed POST, an empty body and only
/// the presigning parameters for a presigned GET; then the SigV4 parameters of that form.
fn auth_params(
    raw: &RawSignedRequest,
    form: SigningForm,
    query: Option<&str>,
) -> Result<AuthParams, VerifyError> {
    match form {
        SigningForm::SignedPost => {
            if query.is_some() {
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
            if !auth.signs("x-amz-date") {
                return Err(malformed("x-amz-date must be a signed header"));
            }
            Ok(auth)
        }
        SigningForm::PresignedGet => {
            if !raw.body.is_empty() {
                return Err(VerifyError::new(
                    ErrorCode::WrongAction,
                    "a presigned GET proof must have an empty body",
                ));
            }
            let query =
                query.ok_or_else(|| malformed("a presigned GET proof needs its query string"))?;
            parse_presigned_query(query)
        }
    }
}

/// Step 4: the credential scope names this host's region and the date of `X-Amz-Date`; `host`
/// is signed; nothing signed describes the connection rather than the request.
fn check_scope(auth: &AuthParams, host: &StsHost) -> Result<CredentialScope, VerifyError> {
    let scope = parse_credential(&auth.credential)?;
    if scope.region != host.region() {
        return Err(malformed(format!(
            "credential scope region {:?} does not match the region of {} ({})",
            scope.region.as_str(),
            host.name(),
            host.region()
        )));
    }
    if auth.date.get(..8) != Some(scope.date.as_str()) {
        return Err(malformed(
            "credential scope date does not match the date of X-Amz-Date",
        ));
    }
    if !auth.signs("host") {
        return Err(malformed("host must be a signed header"));
    }
    if auth.signs("authorization") {
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
    Ok(scope)
}

/// When a proof was signed and when STS stops accepting it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TimeWindow {
    signed_at: OffsetDateTime,
    expires_at: OffsetDateTime,
}

/// Step 5: not dated beyond the allowed clock skew, not older than `max_age` (never more than
/// 15 minutes) and, presigned, not past `X-Amz-Expires`.
fn check_time_window(
    auth: &AuthParams,
    rules: &ProofRules,
    now: OffsetDateTime,
) -> Result<TimeWindow, VerifyError> {
    let signed_at = parse_amz_date(&auth.date)?;
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
    Ok(TimeWindow {
        signed_at,
        expires_at,
    })
}

/// The binding a proof carries: which header, and the value to send to STS in it.
#[derive(Debug)]
struct BoundBy {
    binding: Binding,
    header: &'static str,
    /// The verifier's own audience, or the challenge as given.
    value: String,
}

/// Step 6: exactly one binding header is signed, and its value is this verifier's audience or
/// a challenge it issued.
fn resolve_binding(
    raw: &RawSignedRequest,
    auth: &AuthParams,
    rules: &ProofRules,
    now: OffsetDateTime,
) -> Result<BoundBy, VerifyError> {
    let header = signed_binding_header(raw, auth)?;
    if header == CHALLENGE_HEADER {
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
        return Ok(BoundBy {
            binding: Binding::Challenge(claims),
            header,
            value: value.to_owned(),
        });
    }
    let expected = rules.audience.as_deref().ok_or_else(|| {
        VerifyError::new(
            ErrorCode::AudienceMismatch,
            "this verifier accepts no audience-bound proofs; use a challenge",
        )
    })?;
    // A k8s-aws-v1 token carries no headers: the verifier supplies the cluster id itself.
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
    Ok(BoundBy {
        binding: Binding::Audience,
        header,
        value: expected.to_owned(),
    })
}

/// The one signed binding header of the proof's format.
fn signed_binding_header(
    raw: &RawSignedRequest,
    auth: &AuthParams,
) -> Result<&'static str, VerifyError> {
    let candidates: &[&'static str] = match raw.format {
        ProofFormat::IamJoinV1 => &[AUDIENCE_HEADER, CHALLENGE_HEADER],
        ProofFormat::K8sAwsV1 => &[K8S_AUDIENCE_HEADER],
    };
    let signed: Vec<&'static str> = candidates
        .iter()
        .copied()
        .filter(|b| auth.signs(b))
        .collect();
    match signed.as_slice() {
        [one] => Ok(*one),
        [] => Err(VerifyError::new(
            ErrorCode::BindingMissing,
            match candidates.iter().find(|b| raw.header(b).is_some()) {
                Some(b) => format!("binding header {b} is present but not signed"),
                None => format!(
                    "no binding header is signed; sign one of {}",
                    candidates.join(", ")
                ),
            },
        )),
        _ => Err(malformed(
            "more than one binding header is signed; sign exactly one",
        )),
    }
}

/// The headers to send to STS, `host` excluded, sorted by name: every signed header (the
/// binding header with the verifier's own value) and, for a signed POST, `authorization`.
/// Unsigned headers are dropped here, never a reason to reject (DESIGN §3).
fn forwardable_headers(
    raw: &RawSignedRequest,
    form: SigningForm,
    auth: &AuthParams,
    bound: &BoundBy,
) -> Result<Vec<(String, String)>, VerifyError> {
    if let Some(len) = raw.header("content-length")
        && auth.signs("content-length")
        && len != raw.body.len().to_string()
    {
        return Err(malformed("signed content-length does not match the body"));
    }
    let mut headers = Vec::with_capacity(auth.signed_headers.len() + 1);
    for name in auth.signed_headers.iter().filter(|n| *n != "host") {
        let value = if name == bound.header {
            bound.value.clone()
        } else {
            raw.header(name)
                .ok_or_else(|| {
                    malformed(format!("signed header {name} is missing from the proof"))
                })?
                .to_owned()
        };
        headers.push((name.clone(), value));
    }
    if form == SigningForm::SignedPost
        && let Some(a) = raw.header("authorization")
    {
        headers.push(("authorization".to_owned(), a.to_owned()));
        headers.sort_by(|a, b| a.0.cmp(&b.0));
    }
    Ok(headers)
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
