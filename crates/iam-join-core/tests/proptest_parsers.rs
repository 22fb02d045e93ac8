//! Property tests of the three parsers that read untrusted input (issue 7): the proof-token
//! parser with its local checks, the STS response parsers, and the token-policy loader.
//!
//! Properties: arbitrary input never panics and never admits. "Never admits" is checked
//! against an independent model of the rules in this file (not by calling the code under test
//! again): whenever `check_proof` accepts a mutated proof, the mutated proof must satisfy every
//! local rule of DESIGN §4 steps 2-6 as the model reads them; whenever `parse_sts_response`
//! yields an identity from a mutated answer, that identity must be the one literally written in
//! the answer's single `Account`/`Arn` fields and must be self-consistent; whenever the policy
//! loader accepts mutated YAML, every rule it loaded must be literally present in the text.
//!
//! The case count comes from `PROPTEST_CASES` (proptest's default config reads it; CI's
//! `scripts/test.sh` sets 256, a few seconds). The long run, 1M cases per property, takes about
//! 20 to 30 minutes in release mode on two cores:
//!
//! ```text
//! PROPTEST_CASES=1000000 cargo test --release -p iam-join-core --test proptest_parsers
//! ```
//!
//! Failures are not persisted to `proptest-regressions/` files (the source tree stays clean);
//! proptest prints the minimal failing input, which belongs in a named regression test.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use iam_join_core::check::{ProofRules, check_proof, parse_amz_date};
use iam_join_core::hosts::StsHost;
use iam_join_core::policy::{Subject, TokenPolicy};
use iam_join_core::token::{ProofFormat, RawSignedRequest, decode_proof_token};
use iam_join_core::{
    ErrorCode, SignedStsRequest, SigningForm, StsHostAllowList, parse_sts_response,
};
use iam_join_testkit::sign::HandSigned;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::Config;
use time::OffsetDateTime;

// ---------------------------------------------------------------------------------------------
// Fixtures: real aws-sigv4 proofs signed at a fixed time, checked one minute later.
// ---------------------------------------------------------------------------------------------

const AUDIENCE: &str = "teleport.example.com";
const HOST: &str = "sts.us-west-2.amazonaws.com";
const REGION: &str = "us-west-2";
const GCI_BODY: &str = "Action=GetCallerIdentity&Version=2011-06-15";
const SIGNED_AT_UNIX: u64 = 1_795_428_900; // 2026-11-23T10:15:00Z
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

fn config() -> Config {
    Config {
        failure_persistence: None,
        ..Config::default()
    }
}

fn signed_at() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(SIGNED_AT_UNIX)
}

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(SIGNED_AT_UNIX as i64 + 60).expect("a valid time")
}

fn rules() -> ProofRules {
    ProofRules {
        audience: Some(AUDIENCE.to_owned()),
        challenge_key: None,
        ..ProofRules::default()
    }
}

fn creds() -> Credentials {
    Credentials::new(
        "ASIAEXAMPLEPROPTEST1",
        "PropTestSecret/DoNotUse+00000000000000000",
        Some("FwoPropTestSessionToken/DoNotUse==".to_owned()),
        None,
        "proptest",
    )
}

fn signer() -> HandSigned<'static> {
    let mut signer = HandSigned::new(creds(), AUDIENCE);
    signer.at = signed_at();
    signer
}

fn valid_post() -> RawSignedRequest {
    signer().post()
}

fn valid_get() -> RawSignedRequest {
    signer().audience_only().presign(300)
}

#[test]
fn fixtures_pass_the_local_checks() {
    for raw in [valid_post(), valid_get()] {
        let token = raw.to_iam_join_v1_token();
        let checked = check_proof(&token, &rules(), now()).unwrap();
        model_accepts(&raw, &checked).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// An independent model of the local rules (DESIGN §3, §4 steps 2-6, §5).
// ---------------------------------------------------------------------------------------------

/// Why the model refuses a proof that `check_proof` accepted.
fn refuse(msg: impl Into<String>) -> Result<(), String> {
    Err(msg.into())
}

fn pct_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            if hex.len() != 2 || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

struct ModelAuth {
    credential: String,
    signed_headers: String,
    signature: String,
    date: String,
    expires: Option<i64>,
}

/// Checks that an accepted proof obeys every local rule, reading the raw request independently.
fn model_accepts(raw: &RawSignedRequest, checked: &SignedStsRequest) -> Result<(), String> {
    let hosts = StsHostAllowList::new();
    // URL: https, authority is an allowed host verbatim, path exactly "/", no fragment.
    let Some(rest) = raw.url.strip_prefix("https://") else {
        return refuse("URL is not https");
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, after) = rest.split_at(end);
    if hosts.resolve(authority).is_err() {
        return refuse(format!("host {authority:?} is not allowed"));
    }
    if checked.host().name() != authority {
        return refuse("checked host differs from the URL's host");
    }
    if after.contains('#') {
        return refuse("fragment");
    }
    let (path, query) = match after.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (after, None),
    };
    if path != "/" {
        return refuse("path is not /");
    }
    if checked.body() != raw.body {
        return refuse("sent body differs from the proof's");
    }
    let auth = match raw.method.as_str() {
        "POST" => {
            if raw.format != ProofFormat::IamJoinV1 || checked.form() != SigningForm::SignedPost {
                return refuse("POST form mismatch");
            }
            if query.is_some() {
                return refuse("POST with a query");
            }
            if raw.body != GCI_BODY {
                return refuse("POST body is not exactly GetCallerIdentity");
            }
            if checked.path_and_query() != "/" {
                return refuse("POST path_and_query");
            }
            let Some(a) = raw.header("authorization") else {
                return refuse("no authorization header");
            };
            let Some(rest) = a.strip_prefix("AWS4-HMAC-SHA256 ") else {
                return refuse("algorithm");
            };
            let mut parts = [None, None, None];
            for part in rest.split(',') {
                let part = part.trim_start_matches(' ');
                let Some((k, v)) = part.split_once('=') else {
                    return refuse("auth component without =");
                };
                let slot = match k {
                    "Credential" => 0,
                    "SignedHeaders" => 1,
                    "Signature" => 2,
                    _ => return refuse("unknown auth component"),
                };
                if parts[slot].replace(v.to_owned()).is_some() {
                    return refuse("duplicate auth component");
                }
            }
            let [Some(credential), Some(signed_headers), Some(signature)] = parts else {
                return refuse("auth component missing");
            };
            let Some(date) = raw.header("x-amz-date") else {
                return refuse("no x-amz-date");
            };
            if !signed_headers.split(';').any(|h| h == "x-amz-date") {
                return refuse("x-amz-date not signed");
            }
            ModelAuth {
                credential,
                signed_headers,
                signature,
                date: date.to_owned(),
                expires: None,
            }
        }
        "GET" => {
            if checked.form() != SigningForm::PresignedGet {
                return refuse("GET form mismatch");
            }
            if !raw.body.is_empty() {
                return refuse("GET with a body");
            }
            let Some(query) = query else {
                return refuse("GET without query");
            };
            // RFC 3986 query characters only: anything else cannot be sent as signed.
            if !query
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=:@/?".contains(&b))
            {
                return refuse("query has bytes that are not legal in a URI query");
            }
            if checked.path_and_query() != format!("/?{query}") {
                return refuse("GET path_and_query differs from the proof's");
            }
            let mut seen: Vec<(String, String)> = Vec::new();
            for pair in query.split('&') {
                let Some((n, v)) = pair.split_once('=') else {
                    return refuse("query pair without =");
                };
                if !QUERY_PARAMS.contains(&n) {
                    return refuse(format!("query parameter {n:?} not allowed"));
                }
                let (Some(dn), Some(dv)) = (pct_decode(n), pct_decode(v)) else {
                    return refuse("bad percent-encoding");
                };
                if dv.chars().any(char::is_control) {
                    return refuse("control character in the query");
                }
                if seen.iter().any(|(s, _)| s.eq_ignore_ascii_case(&dn)) {
                    return refuse(format!("duplicate query parameter {dn:?}"));
                }
                seen.push((dn, dv));
            }
            let get = |name: &str| seen.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
            if get("Action").as_deref() != Some("GetCallerIdentity")
                || get("Version").as_deref() != Some("2011-06-15")
            {
                return refuse("query action/version");
            }
            if get("X-Amz-Algorithm").as_deref() != Some("AWS4-HMAC-SHA256") {
                return refuse("query algorithm");
            }
            let expires = get("X-Amz-Expires").unwrap_or_default();
            if expires.is_empty()
                || expires.len() > 3
                || !expires.bytes().all(|b| b.is_ascii_digit())
            {
                return refuse("X-Amz-Expires is not 1 to 3 digits");
            }
            let expires: i64 = expires.parse().map_err(|_| "X-Amz-Expires".to_owned())?;
            if !(1..=900).contains(&expires) {
                return refuse("X-Amz-Expires out of range");
            }
            let (Some(credential), Some(signed_headers), Some(signature), Some(date)) = (
                get("X-Amz-Credential"),
                get("X-Amz-SignedHeaders"),
                get("X-Amz-Signature"),
                get("X-Amz-Date"),
            ) else {
                return refuse("presign parameter missing");
            };
            ModelAuth {
                credential,
                signed_headers,
                signature,
                date,
                expires: Some(expires),
            }
        }
        _ => return refuse("method"),
    };

    // SigV4 shape.
    if auth.signature.len() != 64
        || !auth
            .signature
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return refuse("signature is not 64 lowercase hex digits");
    }
    let scope: Vec<&str> = auth.credential.split('/').collect();
    let [key, date, region, service, terminator] = scope.as_slice() else {
        return refuse("credential does not have five parts");
    };
    if key.len() < 16
        || !key
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return refuse("access key id");
    }
    if *region != checked.host().region() || checked.region() != *region {
        return refuse("scope region is not the host's region");
    }
    if *service != "sts" || *terminator != "aws4_request" {
        return refuse("scope service or terminator");
    }
    if auth.date.len() != 16 || !auth.date.is_ascii() || date != &&auth.date[..8] {
        return refuse("scope date is not X-Amz-Date's date");
    }
    let signed: Vec<&str> = auth.signed_headers.split(';').collect();
    if signed.windows(2).any(|w| w[0] >= w[1]) {
        return refuse("SignedHeaders not sorted and unique");
    }
    if signed
        .iter()
        .any(|h| h.is_empty() || h.bytes().any(|b| b.is_ascii_uppercase()))
    {
        return refuse("SignedHeaders not lowercase names");
    }
    if !signed.contains(&"host") {
        return refuse("host not signed");
    }
    if signed.contains(&"authorization") {
        return refuse("authorization cannot sign itself");
    }
    // Headers that frame the request rather than describe it cannot be forwarded as signed.
    for h in [
        "connection",
        "expect",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        if signed.contains(&h) {
            return refuse(format!("connection-level header {h} is signed"));
        }
    }
    if signed.contains(&"content-length")
        && raw.header("content-length") != Some(raw.body.len().to_string().as_str())
    {
        return refuse("signed content-length differs from the body's length");
    }

    // Time (DESIGN §4 step 5).
    let Ok(at) = parse_amz_date(&auth.date) else {
        return refuse("X-Amz-Date");
    };
    let now = now();
    if at > now + time::Duration::minutes(5) {
        return refuse("dated in the future");
    }
    let mut expiry = at + time::Duration::minutes(15);
    if let Some(e) = auth.expires {
        expiry = expiry.min(at + time::Duration::seconds(e));
    }
    if now > expiry {
        return refuse("expired");
    }
    if checked.expires_at() != expiry || checked.signed_at() != at {
        return refuse("checked times differ from the model's");
    }

    // Binding: exactly one binding header signed, the audience with this verifier's value.
    let bindings: Vec<&&str> = signed
        .iter()
        .filter(|h| **h == "x-iam-join-audience" || **h == "x-teleport-challenge")
        .collect();
    if bindings.len() != 1 || *bindings[0] != "x-iam-join-audience" {
        return refuse("binding");
    }
    if raw.header("x-iam-join-audience") != Some(AUDIENCE) {
        return refuse("audience value");
    }

    // Exactly the signed headers (plus a POST's authorization) are sent.
    for (name, value) in checked.headers() {
        if name == "authorization" && raw.method == "POST" {
            continue;
        }
        if !signed.contains(&name.as_str()) {
            return refuse(format!("unsigned header {name:?} would be sent"));
        }
        if raw.header(name) != Some(value.as_str()) {
            return refuse(format!("sent header {name:?} differs from the proof's"));
        }
    }
    for name in signed.iter().filter(|h| **h != "host") {
        if !checked.headers().iter().any(|(n, _)| n == name) {
            return refuse(format!("signed header {name:?} is not sent"));
        }
    }
    Ok(())
}

/// Found by the attack corpus (tests/attack_corpus.rs, issue 7): a presigned query with bytes
/// that are not legal in a URI query passed the local checks; the STS client then failed to
/// build the request (`sts_unavailable`) or STS refused it.
#[test]
fn presigned_query_with_bytes_illegal_in_a_uri_is_malformed() {
    for c in [
        " ", "\"", "<", ">", "\u{e9}", "{", "}", "|", "^", "`", "\\", "[", "]",
    ] {
        // In the session token's value, which the local checks do not otherwise parse.
        let mut raw = valid_get();
        raw.url = raw.url.replacen(
            "X-Amz-Security-Token=",
            &format!("X-Amz-Security-Token={c}"),
            1,
        );
        let result = check_proof(&raw.to_iam_join_v1_token(), &rules(), now());
        assert_eq!(
            result.map(|_| ()).map_err(|e| e.code()),
            Err(ErrorCode::MalformedProof),
            "{c:?}"
        );
    }
}

/// Found by the attack corpus: `authorization` listed in SignedHeaders cannot verify (a
/// signature cannot cover itself) but was sent to STS, twice.
#[test]
fn authorization_in_signed_headers_is_malformed() {
    let mut raw = valid_post();
    for (n, v) in &mut raw.headers {
        if n == "authorization" {
            *v = v.replacen(
                "SignedHeaders=content-type",
                "SignedHeaders=authorization;content-type",
                1,
            );
        }
    }
    let err = check_proof(&raw.to_iam_join_v1_token(), &rules(), now()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::MalformedProof, "{err}");
}

// ---------------------------------------------------------------------------------------------
// Mutations.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Edit {
    Insert(Index, char),
    Delete(Index),
    Replace(Index, char),
    Truncate(Index),
    Splice(Index, String),
}

impl Edit {
    fn apply(&self, s: &str) -> String {
        let chars: Vec<char> = s.chars().collect();
        let at = |i: &Index, extra: usize| {
            if chars.is_empty() && extra == 0 {
                None
            } else {
                Some(i.index(chars.len() + extra))
            }
        };
        let mut out = chars.clone();
        match self {
            Self::Insert(i, c) => {
                if let Some(p) = at(i, 1) {
                    out.insert(p, *c);
                }
            }
            Self::Delete(i) => {
                if let Some(p) = at(i, 0) {
                    out.remove(p);
                }
            }
            Self::Replace(i, c) => {
                if let Some(p) = at(i, 0) {
                    out[p] = *c;
                }
            }
            Self::Truncate(i) => {
                if let Some(p) = at(i, 0) {
                    out.truncate(p);
                }
            }
            Self::Splice(i, text) => {
                if let Some(p) = at(i, 1) {
                    let tail = out.split_off(p);
                    out.extend(text.chars());
                    out.extend(tail);
                }
            }
        }
        out.into_iter().collect()
    }
}

/// Characters that matter to the parsers, plus anything.
fn interesting_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => select(vec![
            '&', '=', '%', '?', '/', '#', '@', ':', ';', ',', ' ', '.', '-', '_', '\0', '\n', '\r',
            '\t', 'A', 'a', 'Z', '0', '1', '9', 'f', 'F', '+', '*', '"', '\\', '<', '>', '!', '[',
            ']', '{', '}', 'é', '\u{ff0e}', '\u{430}',
        ]),
        1 => any::<char>(),
    ]
}

fn snippet() -> impl Strategy<Value = String> {
    prop_oneof![
        select(vec![
            "%41",
            "%00",
            "%zz",
            "%",
            "&",
            "&Action=AssumeRole",
            "&action=GetCallerIdentity",
            "&x-amz-credential=AKIAEVIL",
            "&Foo=bar",
            "..",
            "//",
            ":443",
            "@evil.example",
            ".evil.example",
            "us-east-1",
            "us-west-1",
            "iam",
            "aws4_request",
            "AWS4-HMAC-SHA1",
            "X-Amz-Date",
            "x-teleport-challenge",
            "x-iam-join-audience",
            ";host",
            "host;",
            "Signature=",
            ", Signature=00",
            "\u{0}",
            "\r\n",
            " ",
            "=",
        ])
        .prop_map(str::to_owned),
        "[ -~]{0,12}",
    ]
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<Index>(), interesting_char()).prop_map(|(i, c)| Edit::Insert(i, c)),
        any::<Index>().prop_map(Edit::Delete),
        (any::<Index>(), interesting_char()).prop_map(|(i, c)| Edit::Replace(i, c)),
        any::<Index>().prop_map(Edit::Truncate),
        (any::<Index>(), snippet()).prop_map(|(i, s)| Edit::Splice(i, s)),
    ]
}

#[derive(Clone, Debug)]
enum Mutation {
    Method(String),
    Url(Edit),
    UrlAppendParam(String, String),
    Body(Edit),
    HeaderValue(Index, Edit),
    HeaderName(Index, Edit),
    HeaderRemove(Index),
    HeaderInsert(String, String),
}

fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        select(vec![
            "x-iam-join-audience",
            "X-IAM-Join-Audience",
            "x-teleport-challenge",
            "x-k8s-aws-id",
            "host",
            "Host",
            "authorization",
            "Authorization",
            "x-amz-date",
            "X-Amz-Date",
            "content-type",
            "x-amz-security-token",
            "accept",
            "x-forwarded-for",
            "transfer-encoding",
            "content-length",
        ])
        .prop_map(str::to_owned),
        "[a-zA-Z0-9-]{1,12}",
    ]
}

fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        select(vec![
            AUDIENCE,
            "other.example.com",
            "",
            " ",
            "20261123T101500Z",
            "chunked",
            "0"
        ])
        .prop_map(str::to_owned),
        "[ -~]{0,20}",
        ".{0,8}",
    ]
}

fn param_name() -> impl Strategy<Value = String> {
    prop_oneof![
        select(vec![
            "Action",
            "action",
            "ACTION",
            "%41ction",
            "Version",
            "X-Amz-Algorithm",
            "x-amz-algorithm",
            "X-Amz-Credential",
            "x-amz-credential",
            "X-Amz-Date",
            "X-Amz-Expires",
            "X-Amz-SignedHeaders",
            "X-Amz-Signature",
            "X-Amz-Security-Token",
            "x-amz-security-token",
            "DurationSeconds",
            "Foo",
            "",
        ])
        .prop_map(str::to_owned),
        "[A-Za-z%0-9-]{1,12}",
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => select(vec!["GET", "POST", "post", "PUT", "", "GET "]).prop_map(|m| Mutation::Method(m.to_owned())),
        4 => edit().prop_map(Mutation::Url),
        2 => (param_name(), "[ -~]{0,16}").prop_map(|(n, v)| Mutation::UrlAppendParam(n, v)),
        2 => edit().prop_map(Mutation::Body),
        4 => (any::<Index>(), edit()).prop_map(|(i, e)| Mutation::HeaderValue(i, e)),
        1 => (any::<Index>(), edit()).prop_map(|(i, e)| Mutation::HeaderName(i, e)),
        1 => any::<Index>().prop_map(Mutation::HeaderRemove),
        2 => (header_name(), header_value()).prop_map(|(n, v)| Mutation::HeaderInsert(n, v)),
    ]
}

fn apply(raw: &mut RawSignedRequest, m: &Mutation) {
    match m {
        Mutation::Method(method) => raw.method.clone_from(method),
        Mutation::Url(e) => raw.url = e.apply(&raw.url),
        Mutation::UrlAppendParam(n, v) => {
            raw.url.push(if raw.url.contains('?') { '&' } else { '?' });
            raw.url.push_str(n);
            raw.url.push('=');
            raw.url.push_str(v);
        }
        Mutation::Body(e) => raw.body = e.apply(&raw.body),
        Mutation::HeaderValue(i, e) => {
            if !raw.headers.is_empty() {
                let n = i.index(raw.headers.len());
                let h = &mut raw.headers[n];
                h.1 = e.apply(&h.1);
            }
        }
        Mutation::HeaderName(i, e) => {
            if !raw.headers.is_empty() {
                let n = i.index(raw.headers.len());
                let h = &mut raw.headers[n];
                h.0 = e.apply(&h.0);
            }
        }
        Mutation::HeaderRemove(i) => {
            if !raw.headers.is_empty() {
                raw.headers.remove(i.index(raw.headers.len()));
            }
        }
        Mutation::HeaderInsert(n, v) => raw.headers.push((n.clone(), v.clone())),
    }
}

/// Runs `check_proof` on `token`; if it accepts, the model must accept the decoded proof too.
fn accepted_only_if_valid(token: &str) -> Result<(), TestCaseError> {
    if let Ok(checked) = check_proof(token, &rules(), now()) {
        let raw = decode_proof_token(token)
            .map_err(|e| TestCaseError::fail(format!("accepted but undecodable: {e}")))?;
        model_accepts(&raw, &checked).map_err(|why| {
            TestCaseError::fail(format!(
                "check_proof accepted a proof the model refuses: {why}"
            ))
        })?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Proof-token parser and local checks.
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_strings_never_panic_and_never_pass(s in ".{0,256}") {
        let _ = decode_proof_token(&s);
        prop_assert!(check_proof(&s, &rules(), now()).is_err());
        let prefixed = format!("iam-join-v1.{s}");
        let _ = decode_proof_token(&prefixed);
        prop_assert!(check_proof(&prefixed, &rules(), now()).is_err());
    }

    #[test]
    fn arbitrary_base64_payloads_never_pass(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        for prefix in ["iam-join-v1.", "k8s-aws-v1."] {
            let token = format!("{prefix}{}", URL_SAFE_NO_PAD.encode(&bytes));
            prop_assert!(check_proof(&token, &rules(), now()).is_err());
        }
    }

    #[test]
    fn arbitrary_json_shaped_payloads_never_pass(
        method in prop_oneof![Just("POST".to_owned()), Just("GET".to_owned()), ".{0,6}"],
        url in prop_oneof![
            Just(format!("https://{HOST}/")),
            Just(format!("https://{HOST}/?{GCI_BODY}")),
            ".{0,64}",
        ],
        headers in proptest::collection::vec((header_name(), header_value()), 0..8),
        body in prop_oneof![Just(GCI_BODY.to_owned()), Just(String::new()), ".{0,64}"],
    ) {
        let raw = RawSignedRequest {
            format: ProofFormat::IamJoinV1,
            method,
            url,
            headers,
            body,
        };
        // Without a well-formed signature shape nothing can pass.
        prop_assert!(check_proof(&raw.to_iam_join_v1_token(), &rules(), now()).is_err());
    }

    #[test]
    fn mutated_signed_post_is_accepted_only_if_still_valid(
        mutations in proptest::collection::vec(mutation(), 1..4)
    ) {
        let mut raw = valid_post();
        for m in &mutations {
            apply(&mut raw, m);
        }
        accepted_only_if_valid(&raw.to_iam_join_v1_token())?;
    }

    #[test]
    fn mutated_presigned_get_is_accepted_only_if_still_valid(
        mutations in proptest::collection::vec(mutation(), 1..4)
    ) {
        let mut raw = valid_get();
        for m in &mutations {
            apply(&mut raw, m);
        }
        accepted_only_if_valid(&raw.to_iam_join_v1_token())?;
    }

    #[test]
    fn mutated_token_text_is_accepted_only_if_still_valid(
        post in any::<bool>(),
        edits in proptest::collection::vec(edit(), 1..4),
    ) {
        let mut token = if post { valid_post() } else { valid_get() }.to_iam_join_v1_token();
        for e in &edits {
            token = e.apply(&token);
        }
        accepted_only_if_valid(&token)?;
    }

    #[test]
    fn mutated_proof_json_is_accepted_only_if_still_valid(
        post in any::<bool>(),
        edits in proptest::collection::vec(edit(), 1..3),
    ) {
        let raw = if post { valid_post() } else { valid_get() };
        let token = raw.to_iam_join_v1_token();
        let json = URL_SAFE_NO_PAD.decode(&token["iam-join-v1.".len()..]).unwrap();
        let mut text = String::from_utf8(json).unwrap();
        for e in &edits {
            text = e.apply(&text);
        }
        accepted_only_if_valid(&format!("iam-join-v1.{}", URL_SAFE_NO_PAD.encode(text)))?;
    }

    #[test]
    fn header_names_equal_ignoring_case_are_always_refused(
        post in any::<bool>(),
        pick in any::<Index>(),
        flips in proptest::collection::vec(any::<bool>(), 32),
        value in header_value(),
    ) {
        let raw = if post { valid_post() } else { valid_get() };
        let (name, _) = &raw.headers[pick.index(raw.headers.len())];
        let variant: String = name
            .chars()
            .zip(flips.iter().cycle())
            .map(|(c, up)| if *up { c.to_ascii_uppercase() } else { c })
            .collect();
        let token = raw.to_iam_join_v1_token();
        let json = String::from_utf8(URL_SAFE_NO_PAD.decode(&token["iam-join-v1.".len()..]).unwrap()).unwrap();
        let entry = serde_json::to_string(&variant).unwrap() + ":" + &serde_json::to_string(&value).unwrap() + ",";
        let text = json.replacen("\"headers\":{", &format!("\"headers\":{{{entry}"), 1);
        let token = format!("iam-join-v1.{}", URL_SAFE_NO_PAD.encode(text));
        let err = check_proof(&token, &rules(), now()).unwrap_err();
        prop_assert_eq!(err.code(), ErrorCode::MalformedProof);
    }

    #[test]
    fn duplicate_or_unknown_top_level_keys_are_always_refused(
        post in any::<bool>(),
        key in prop_oneof![
            select(vec!["method", "url", "headers", "body", "Method", "URL", "extra", "", "format"]).prop_map(str::to_owned),
            "[a-zA-Z_]{1,8}",
        ],
        value in prop_oneof![
            Just("\"POST\"".to_owned()),
            Just(format!("\"https://{HOST}/\"")),
            Just("{}".to_owned()),
            Just("null".to_owned()),
            Just("1".to_owned()),
        ],
    ) {
        let raw = if post { valid_post() } else { valid_get() };
        let token = raw.to_iam_join_v1_token();
        let json = String::from_utf8(URL_SAFE_NO_PAD.decode(&token["iam-join-v1.".len()..]).unwrap()).unwrap();
        let text = format!("{{{}:{value},{}", serde_json::to_string(&key).unwrap(), &json[1..]);
        let token = format!("iam-join-v1.{}", URL_SAFE_NO_PAD.encode(text));
        let err = check_proof(&token, &rules(), now()).unwrap_err();
        prop_assert_eq!(err.code(), ErrorCode::MalformedProof);
    }

    #[test]
    fn any_other_host_is_refused(host in prop_oneof![
        ".{0,40}",
        "[a-z0-9.-]{1,40}",
        (select(vec!["sts.", "STS.", "sts-fips.", "evil.", ""]), "[a-z0-9-]{0,16}", select(vec![".amazonaws.com", ".amazonaws.com.", ".amazonaws.com.cn", ".example.com", ""]))
            .prop_map(|(a, b, c)| format!("{a}{b}{c}")),
    ]) {
        prop_assume!(host != HOST);
        for mut raw in [valid_post(), valid_get()] {
            raw.url = raw.url.replacen(HOST, &host, 1);
            let err = check_proof(&raw.to_iam_join_v1_token(), &rules(), now()).unwrap_err();
            // Another allowed host fails on the scope region instead.
            prop_assert!(
                matches!(err.code(), ErrorCode::HostNotAllowed | ErrorCode::MalformedProof),
                "{host:?}: {err}"
            );
        }
    }

    #[test]
    fn any_other_body_is_refused(body in prop_oneof![".{0,64}", Just(GCI_BODY.to_owned()), Just(String::new())]) {
        let mut raw = valid_post();
        raw.body.clone_from(&body);
        let result = check_proof(&raw.to_iam_join_v1_token(), &rules(), now());
        prop_assert_eq!(result.is_ok(), body == GCI_BODY);
        let mut raw = valid_get();
        raw.body.clone_from(&body);
        let result = check_proof(&raw.to_iam_join_v1_token(), &rules(), now());
        prop_assert_eq!(result.is_ok(), body.is_empty());
    }

    #[test]
    fn any_extra_query_parameter_is_refused(name in param_name(), value in "[A-Za-z0-9%._~-]{0,16}") {
        let mut raw = valid_get();
        raw.url.push_str(&format!("&{name}={value}"));
        let err = check_proof(&raw.to_iam_join_v1_token(), &rules(), now()).unwrap_err();
        let decoded = pct_decode(&name);
        let duplicate = decoded.as_deref().is_some_and(|d| {
            QUERY_PARAMS.iter().any(|p| p.eq_ignore_ascii_case(d))
        });
        if duplicate {
            // CVE-2022-2385: case-variant (and encoded) duplicates are malformed.
            prop_assert_eq!(err.code(), ErrorCode::MalformedProof, "{}", name);
        } else {
            prop_assert!(
                matches!(err.code(), ErrorCode::WrongAction | ErrorCode::MalformedProof),
                "{name}: {err}"
            );
        }
    }

    #[test]
    fn x_amz_date_outside_the_window_is_refused(offset in prop_oneof![
        -100_000i64..-901,
        301i64..100_000,
        -900i64..300,
    ]) {
        // Shift the clock instead of the signature: same proof, checked at another time.
        let token = valid_post().to_iam_join_v1_token();
        let at = OffsetDateTime::from_unix_timestamp(SIGNED_AT_UNIX as i64 - offset).unwrap();
        let result = check_proof(&token, &rules(), at);
        let age = -offset; // how old the proof is at `at`
        if (-300..=900).contains(&age) {
            prop_assert!(result.is_ok(), "age {age}: {:?}", result.err());
        } else {
            prop_assert_eq!(result.unwrap_err().code(), ErrorCode::ProofExpired, "age {}", age);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// STS response parsers.
// ---------------------------------------------------------------------------------------------

const ACCOUNT: &str = "333333333333";
const ARN: &str = "arn:aws:sts::333333333333:assumed-role/teleport-node-role/i-0abc123def4567890";

const XML_OK: &str = "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  \
<GetCallerIdentityResult>\n    <Arn>arn:aws:sts::333333333333:assumed-role/teleport-node-role/i-0abc123def4567890</Arn>\n    \
<UserId>AROAEXAMPLE:i-0abc123def4567890</UserId>\n    <Account>333333333333</Account>\n  </GetCallerIdentityResult>\n  \
<ResponseMetadata>\n    <RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId>\n  </ResponseMetadata>\n\
</GetCallerIdentityResponse>\n";

const JSON_OK: &str = r#"{"GetCallerIdentityResponse":{"GetCallerIdentityResult":{"Account":"333333333333","Arn":"arn:aws:sts::333333333333:assumed-role/teleport-node-role/i-0abc123def4567890","UserId":"AROAEXAMPLE:i-0abc123def4567890"},"ResponseMetadata":{"RequestId":"x"}}}"#;

fn sts_host() -> StsHost {
    StsHostAllowList::new()
        .resolve(HOST)
        .expect("an allowed host")
        .clone()
}

#[test]
fn sts_fixtures_parse() {
    for (ct, body) in [("text/xml", XML_OK), ("application/json", JSON_OK)] {
        let id = parse_sts_response(200, Some(ct), body.as_bytes(), &sts_host()).unwrap();
        assert_eq!((id.account(), id.arn()), (ACCOUNT, ARN));
    }
}

fn strip_xml_comments(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("<!--") {
        out.push_str(&rest[..start]);
        match rest[start..].find("-->") {
            Some(end) => rest = &rest[start + end + 3..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

/// Removes the white space XML allows before a tag's closing `>` (`<Account\n>`).
fn normalize_tags(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                let trimmed = out.trim_end_matches([' ', '\t', '\r', '\n']).len();
                out.truncate(trimmed);
                in_tag = false;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

/// Decodes the five predefined entities and character references (enough for the oracle).
fn xml_unescape(s: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let semi = rest[amp..].find(';')? + amp;
        let name = &rest[amp + 1..semi];
        let c = match name {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let n = if let Some(hex) = name.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()?
                } else {
                    name.strip_prefix('#')?.parse().ok()?
                };
                char::from_u32(n)?
            }
        };
        out.push(c);
        rest = &rest[semi + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// The text of the only `<name>...</name>` element of `doc`, or `None` if there is not exactly
/// one.
fn only_element(doc: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    if doc.matches(&open).count() != 1 || doc.matches(&close).count() != 1 {
        return None;
    }
    let start = doc.find(&open)? + open.len();
    let end = doc.find(&close)?;
    xml_unescape(doc.get(start..end)?)
}

/// If a mutated answer parsed, the identity is what the answer literally says, and consistent.
fn identity_is_literal(ct: &str, body: &str) -> Result<(), TestCaseError> {
    let Ok(id) = parse_sts_response(200, Some(ct), body.as_bytes(), &sts_host()) else {
        return Ok(());
    };
    prop_assert_eq!(id.account().len(), 12);
    prop_assert!(id.account().bytes().all(|b| b.is_ascii_digit()));
    prop_assert!(
        id.arn()
            .starts_with(&format!("arn:aws:sts::{}:", id.account()))
            || id
                .arn()
                .starts_with(&format!("arn:aws:iam::{}:", id.account())),
        "ARN {:?} is not in account {:?} of partition aws",
        id.arn(),
        id.account()
    );
    if ct.contains("xml") {
        let doc = normalize_tags(&strip_xml_comments(body));
        let account = only_element(&doc, "Account");
        let arn = only_element(&doc, "Arn");
        prop_assert_eq!(account.as_deref(), Some(id.account()), "{}", body);
        prop_assert_eq!(arn.as_deref(), Some(id.arn()), "{}", body);
    } else {
        let v: serde_json::Value = serde_json::from_str(body)
            .map_err(|e| TestCaseError::fail(format!("accepted JSON that is not JSON: {e}")))?;
        let r = &v["GetCallerIdentityResponse"]["GetCallerIdentityResult"];
        prop_assert_eq!(r["Account"].as_str(), Some(id.account()));
        prop_assert_eq!(r["Arn"].as_str(), Some(id.arn()));
        // No second copy anywhere (serde_json::Value keeps the last of duplicate keys).
        prop_assert_eq!(body.matches("\"Account\"").count(), 1, "{}", body);
        prop_assert_eq!(body.matches("\"Arn\"").count(), 1, "{}", body);
    }
    Ok(())
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        select(vec![
            "text/xml",
            "application/xml",
            "application/json",
            "application/json; charset=utf-8",
            "APPLICATION/JSON",
            "text/html",
            "application/x-amz-json-1.1",
            "",
            "text/xml, application/json",
        ])
        .prop_map(|s| Some(s.to_owned())),
        ".{0,24}".prop_map(Some),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_sts_answers_never_panic(
        status in prop_oneof![Just(200u16), Just(403u16), Just(400u16), any::<u16>()],
        ct in content_type(),
        body in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..512),
            ".{0,256}".prop_map(String::into_bytes),
        ],
    ) {
        let _ = parse_sts_response(status, ct.as_deref(), &body, &sts_host());
    }

    #[test]
    fn arbitrary_non_200_answers_never_yield_an_identity(
        status in any::<u16>(),
        ct in content_type(),
        body in prop_oneof![Just(XML_OK), Just(JSON_OK)],
    ) {
        prop_assume!(status != 200);
        prop_assert!(parse_sts_response(status, ct.as_deref(), body.as_bytes(), &sts_host()).is_err());
    }

    #[test]
    fn mutated_xml_answers_yield_only_literal_identities(edits in proptest::collection::vec(edit(), 1..4)) {
        let mut body = XML_OK.to_owned();
        for e in &edits {
            body = e.apply(&body);
        }
        identity_is_literal("text/xml", &body)?;
    }

    #[test]
    fn mutated_json_answers_yield_only_literal_identities(edits in proptest::collection::vec(edit(), 1..4)) {
        let mut body = JSON_OK.to_owned();
        for e in &edits {
            body = e.apply(&body);
        }
        identity_is_literal("application/json", &body)?;
    }

    #[test]
    fn answers_in_the_other_format_never_parse(xml in any::<bool>(), ct in select(vec![
        "text/xml", "application/xml", "application/json", "application/x-amz-json-1.0",
    ])) {
        let body = if xml { XML_OK } else { JSON_OK };
        let is_xml_ct = ct.contains("xml");
        let result = parse_sts_response(200, Some(ct), body.as_bytes(), &sts_host());
        prop_assert_eq!(result.is_ok(), xml == is_xml_ct);
    }

    #[test]
    fn answers_embedded_in_other_content_never_parse(
        before in "[ -~\n]{0,24}",
        after in "[ -~\n]{0,24}",
        wrapper in "[A-Za-z]{1,12}",
        xml in any::<bool>(),
    ) {
        // CVE-2020-16250: a valid answer inside another document is not an answer.
        let (ct, body) = if xml { ("text/xml", XML_OK) } else { ("application/json", JSON_OK) };
        let wrapped = if xml {
            format!("<{wrapper}>{before}{body}{after}</{wrapper}>")
        } else {
            format!("{{\"{wrapper}\":{body}}}")
        };
        prop_assert!(parse_sts_response(200, Some(ct), wrapped.as_bytes(), &sts_host()).is_err());
        let padded = format!("{before}{body}{after}");
        let result = parse_sts_response(200, Some(ct), padded.as_bytes(), &sts_host());
        if result.is_ok() {
            // Only white space (and, in XML, comments or a leading declaration) may surround it.
            let strip = |s: &str| if xml { strip_xml_comments(s) } else { s.to_owned() };
            prop_assert!(strip(&after).trim().is_empty(), "{after:?}");
            let b = strip(&before);
            let b = b.trim();
            prop_assert!(b.is_empty() || (xml && b.starts_with("<?xml") && b.ends_with("?>")), "{before:?}");
        }
    }

    #[test]
    fn duplicated_fields_never_parse(field in select(vec!["Account", "Arn", "UserId"]), value in "[0-9a-z:/-]{1,20}", xml in any::<bool>()) {
        let body = if xml {
            let tag = format!("<{field}>");
            XML_OK.replacen(&tag, &format!("<{field}>{value}</{field}>{tag}"), 1)
        } else {
            let key = format!("\"{field}\":");
            JSON_OK.replacen(&key, &format!("\"{field}\":\"{value}\",{key}"), 1)
        };
        let ct = if xml { "text/xml" } else { "application/json" };
        prop_assert!(parse_sts_response(200, Some(ct), body.as_bytes(), &sts_host()).is_err());
    }

    #[test]
    fn account_other_than_the_arn_account_never_parses(account in "[0-9]{12}", xml in any::<bool>()) {
        prop_assume!(account != ACCOUNT);
        let body = if xml {
            XML_OK.replace("<Account>333333333333</Account>", &format!("<Account>{account}</Account>"))
        } else {
            JSON_OK.replace("\"Account\":\"333333333333\"", &format!("\"Account\":\"{account}\""))
        };
        let ct = if xml { "text/xml" } else { "application/json" };
        prop_assert!(parse_sts_response(200, Some(ct), body.as_bytes(), &sts_host()).is_err());
    }
}

// ---------------------------------------------------------------------------------------------
// Token policy loader.
// ---------------------------------------------------------------------------------------------

const SEED: &str = include_str!("fixtures/token.yaml");

fn probes() -> Vec<(&'static str, &'static str)> {
    vec![
        ("111111111111", "arn:aws:iam::111111111111:user/alice"),
        ("222222222222", "arn:aws:iam::222222222222:user/bob"),
        (ACCOUNT, ARN),
        (
            "333333333333",
            "arn:aws:sts::333333333333:assumed-role/teleport-node-role2/i-0abc123def4567890",
        ),
        (
            "444444444444",
            "arn:aws:sts::444444444444:assumed-role/teleport-node-role/i-0abc123def4567890",
        ),
        ("555555555555", "arn:aws:iam::555555555555:root"),
    ]
}

/// Whether `value` is written in `src` as is. YAML escapes (`\\`, `''`) and line folding (which
/// turns a line break inside a quoted scalar into a space) are the only ways around it.
fn literal(src: &str, value: &str) -> bool {
    src.contains(value) || value.contains(' ') || src.contains('\\') || src.contains('\'')
}

/// If a policy loaded, everything it holds is literally in the source text, so a mutation can
/// never invent a rule or drop a restriction that the text still shows.
fn loaded_policy_is_literal(src: &str) -> Result<(), TestCaseError> {
    let Ok(policy) = TokenPolicy::from_yaml_str(src, "proptest") else {
        return Ok(());
    };
    let now = now();
    for token in policy.tokens() {
        prop_assert!(literal(src, token.name()), "name {:?}", token.name());
        prop_assert!(!token.roles().is_empty());
        prop_assert!(!token.allow().is_empty());
        for rule in token.allow() {
            prop_assert!(rule.aws_account().is_some() || rule.aws_arn().is_some());
            if let Some(account) = rule.aws_account() {
                prop_assert!(account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()));
                prop_assert!(literal(src, account), "account {account:?}");
            }
            if let Some(glob) = rule.aws_arn() {
                prop_assert!(literal(src, glob.as_str()), "glob {:?}", glob.as_str());
            }
        }
        // Admission follows the rules as loaded: any admitted probe matches a literal rule.
        for (account, arn) in probes() {
            let subject = Subject {
                account,
                arn,
                region: REGION,
            };
            if policy.authorize(token.name(), &subject, now).is_ok() {
                prop_assert!(token.allow().iter().any(|r| r.matches(&subject)));
                let by_account = token
                    .allow()
                    .iter()
                    .any(|r| r.aws_account() == Some(account));
                let by_glob = token.allow().iter().any(|r| r.aws_arn().is_some());
                prop_assert!(
                    by_account || by_glob,
                    "{account} admitted by no literal rule"
                );
            }
        }
    }
    Ok(())
}

#[test]
fn seed_policy_loads_and_is_literal() {
    loaded_policy_is_literal(SEED).unwrap();
    let policy = TokenPolicy::from_yaml_str(SEED, "seed").unwrap();
    assert_eq!(policy.len(), 1);
}

#[test]
fn yaml_alias_bombs_and_deep_nesting_are_errors_not_hangs() {
    let mut bomb = String::from("a: &a [\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\"]\n");
    for i in 1..10 {
        let prev = (b'a' + i - 1) as char;
        let cur = (b'a' + i) as char;
        bomb.push_str(&format!(
            "{cur}: &{cur} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
        ));
    }
    assert!(TokenPolicy::from_yaml_str(&bomb, "bomb").is_err());
    let deep = "[".repeat(100_000);
    assert!(TokenPolicy::from_yaml_str(&deep, "deep").is_err());
    let deep_map = "a: ".repeat(10_000) + "b";
    assert!(TokenPolicy::from_yaml_str(&deep_map, "deep-map").is_err());
}

fn insert_after(src: &str, anchor: &str, line: &str) -> String {
    let at = src.find(anchor).expect("the anchor is in the seed") + anchor.len();
    let nl = src[at..].find('\n').map_or(src.len(), |i| at + i + 1);
    format!("{}{line}\n{}", &src[..nl], &src[nl..])
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_yaml_never_panics(src in prop_oneof![
        ".{0,256}",
        "[a-z_:\\-\\[\\]{}\"' \n#&*!|>0-9]{0,256}",
    ]) {
        loaded_policy_is_literal(&src)?;
    }

    #[test]
    fn mutated_seed_policy_never_panics_and_stays_literal(edits in proptest::collection::vec(edit(), 1..4)) {
        let mut src = SEED.to_owned();
        for e in &edits {
            src = e.apply(&src);
        }
        loaded_policy_is_literal(&src)?;
    }

    #[test]
    fn unknown_rule_fields_are_always_errors(key in "[a-z_]{1,14}", value in select(vec!["\"x\"", "[]", "1", "null", "\"111111111111\""])) {
        // A typo such as `aws_acount` must never load (it would widen access).
        // `aws_regions: null` is the same as leaving it out.
        prop_assume!(!(key == "aws_regions" && value == "null"));
        let src = insert_after(SEED, "- aws_account: \"333333333333\"", &format!("    {key}: {value}"));
        let result = TokenPolicy::from_yaml_str(&src, "proptest");
        // Known keys are already set in that rule except aws_regions, which needs a region list.
        prop_assert!(result.is_err(), "{key}: {value} loaded");
    }

    #[test]
    fn unknown_spec_and_metadata_fields_are_errors(key in "[a-z_]{1,14}", spec in any::<bool>()) {
        // The fields Teleport knows that load with a string value (README "Join tokens": the
        // ignored ones; `bot_name` is refused without the Bot role).
        let (anchor, line, known) = if spec {
            ("spec:", format!("  {key}: \"x\""), vec![
                "aws_iid_ttl", "integration", "github", "circleci", "kubernetes", "azure",
                "azure_devops", "gitlab", "gcp", "spacelift", "tpm", "bitbucket", "oracle",
                "bound_keypair",
            ])
        } else {
            ("metadata:", format!("  {key}: \"x\""), vec![
                "description", "revision", "labels", "namespace", "id",
            ])
        };
        let src = insert_after(SEED, anchor, &line);
        let result = TokenPolicy::from_yaml_str(&src, "proptest");
        prop_assert_eq!(result.is_ok(), known.contains(&key.as_str()), "{}", key);
    }
}
