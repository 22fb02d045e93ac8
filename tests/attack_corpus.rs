//! The attack corpus (issue 7): malicious and malformed inputs, each with the exact DESIGN §8
//! code it must get, sent through the real `IamJoinLayer`.
//!
//! Every case has a name; a table runner sends all cases of a group and fails with the list of
//! every case that got another code (or status), so one run shows all regressions at once.
//!
//! - **Proof cases** go through the layer in front of the sts-emulator (127.0.0.1:0, a real SigV4
//!   check, no rate limits). A case rejected by a local check (DESIGN §4 steps 1-6) must also
//!   never reach STS: the emulator's call count must not move.
//! - **STS answer cases** put a stub `StsClient` returning one crafted answer behind the layer,
//!   and send the same (audience-bound, hence cacheable) proof twice, so the cache behaviour of
//!   each outcome is checked too.
//! - **Transport cases** point the layer's STS override at a raw TCP server on 127.0.0.1 that
//!   answers with crafted bytes: redirects, oversize bodies, slow headers or bodies, cut-off
//!   answers, garbage.
//!
//! How a malicious STS answer maps to a code (DESIGN §4 steps 8-9, §6, §8):
//!
//! | STS answer | code | cached |
//! |---|---|---|
//! | 200 that parses strictly (JSON by a JSON content type, XML by an XML one) and cross-checks | admitted or a policy code | until the proof expires |
//! | 200 that fails strict parsing or the cross-checks (non-JSON "JSON", XML embedded in another document, a body in the other format than its content type, duplicate, missing or empty fields, `Account` ≠ the ARN's account, a partition that does not fit the host, a region in the ARN, DOCTYPE/CDATA/entities) | `sts_unavailable` (503, `Retry-After`): the caller did nothing it could fix, and a later answer may be sound | never |
//! | 403, and other 4xx that are not throttling (`SignatureDoesNotMatch`, `InvalidClientTokenId`, `ExpiredToken`, `AccessDenied`, `IncompleteSignature`) | `sts_rejected` (401) | the negative TTL (10 s) |
//! | 400/4xx with a throttling code, 408, 429, 5xx | `sts_unavailable` | never |
//! | 3xx with `Location` (redirects are never followed), 1xx/204 or other statuses | `sts_unavailable` | never |
//! | a body over 64 KiB, a body still arriving at the total timeout, no answer before the timeout, a refused or reset connection, bytes that are not HTTP | `sts_unavailable` | never |
//!
//! Cross-account confusion (CVE-2025-11621 class) has its own tests: the same role and
//! session names in two accounts (emulator identities 2 and 4) never share a cache entry or a
//! decision, in either order and under concurrency.
//!
//! The last section holds the findings of this corpus: tests that failed against the verifier
//! when they were written, each stating the behaviour DESIGN asks for.

#![allow(clippy::unwrap_used)]

mod attack;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use attack::*;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode};
use http_body_util::Full;
use iam_join_client::{Binding, SigningForm};
use iam_join_core::ErrorCode;
use iam_join_core::challenge::{ChallengeKey, issue_challenge};
use iam_join_tower::IamJoinLayer;
use sts_emulator::{EmulatorHandle, TestIdentity, keys};

use ErrorCode::*;

/// What a case must get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// 200 from the inner service.
    Admitted,
    /// This §8 code with its status.
    Denied(ErrorCode),
}

use Expect::{Admitted, Denied};

/// One named input.
struct Case {
    name: String,
    expect: Expect,
    req: Request<Full<Bytes>>,
}

impl Case {
    /// A case whose proof travels as `Authorization: Bearer <token>` to `/app`.
    fn bearer(name: impl Into<String>, expect: Expect, token: &str) -> Self {
        Self::at("/app", name, expect, token)
    }

    /// Like [`Case::bearer`], to `path`.
    fn at(path: &str, name: impl Into<String>, expect: Expect, token: &str) -> Self {
        Self {
            name: name.into(),
            expect,
            req: request(path, Some(token)).body(Full::default()).unwrap(),
        }
    }

    /// A case with exactly these extra request headers (values as raw bytes).
    fn headers(name: impl Into<String>, expect: Expect, headers: &[(&str, &[u8])]) -> Self {
        let mut b = request("/app", None);
        for (n, v) in headers {
            b = b.header(*n, HeaderValue::from_bytes(v).unwrap());
        }
        Self {
            name: name.into(),
            expect,
            req: b.body(Full::default()).unwrap(),
        }
    }

    /// A proof in `X-IAM-Join-Proof` (any bytes), to `/app`.
    fn proof_header(name: impl Into<String>, expect: Expect, token: &[u8]) -> Self {
        Self::headers(name, expect, &[("x-iam-join-proof", token)])
    }
}

/// Codes decided before any STS work (DESIGN §4 steps 1-6, and the replay store).
fn is_local(code: ErrorCode) -> bool {
    matches!(
        code,
        MissingProof
            | MalformedProof
            | HostNotAllowed
            | WrongAction
            | BindingMissing
            | AudienceMismatch
            | ProofExpired
            | ChallengeInvalid
            | ChallengeReused
    )
}

/// Secrets that must never come back in a response body.
fn secrets() -> Vec<String> {
    sts_emulator::default_identities()
        .into_iter()
        .flat_map(|id| [Some(id.secret_access_key), id.session_token])
        .flatten()
        .chain(["Signature=".to_owned(), "X-Amz-Signature=".to_owned()])
        .collect()
}

/// Sends every case and fails with the list of all cases that did not get their code.
async fn run_cases(
    layer: &IamJoinLayer,
    emulator: Option<&EmulatorHandle>,
    audit: Option<&AuditLog>,
    cases: Vec<Case>,
) {
    let total = cases.len();
    let secrets = secrets();
    let mut failures = Vec::new();
    for case in cases {
        let before = emulator.map(EmulatorHandle::calls);
        let r = send(layer, case.req).await;
        if let Some(audit) = audit {
            let events = audit.take();
            let admitted = r.status == StatusCode::OK;
            let code = (!admitted).then(|| r.code());
            match events.as_slice() {
                [e] if e.success == admitted && e.error == code => {
                    let line = serde_json::to_string(e).unwrap();
                    if let Some(s) = secrets.iter().find(|s| line.contains(s.as_str())) {
                        failures.push(format!(
                            "{}: the audit event has a secret ({s:.12}…)",
                            case.name
                        ));
                    }
                }
                other => failures.push(format!(
                    "{}: expected one audit event ({} {code:?}), got {other:?}",
                    case.name, r.status
                )),
            }
        }
        let got = if r.status == StatusCode::OK {
            Admitted
        } else {
            match ErrorCode::ALL.iter().find(|c| c.as_str() == r.code()) {
                Some(c) => Denied(*c),
                None => {
                    failures.push(format!(
                        "{}: unexpected answer {} {}",
                        case.name, r.status, r.json
                    ));
                    continue;
                }
            }
        };
        if got != case.expect {
            failures.push(format!(
                "{}: expected {:?}, got {} {:?} ({})",
                case.name,
                case.expect,
                r.status,
                got,
                r.message()
            ));
            continue;
        }
        if let Denied(code) = got {
            if r.status.as_u16() != code.http_status() {
                failures.push(format!(
                    "{}: {code} came with status {}",
                    case.name, r.status
                ));
            }
            if code.is_retryable() && !r.headers.contains_key("retry-after") {
                failures.push(format!("{}: {code} without Retry-After", case.name));
            }
            let body = r.json.to_string();
            if let Some(s) = secrets.iter().find(|s| body.contains(s.as_str())) {
                failures.push(format!(
                    "{}: the error body echoes a secret ({s:.12}…)",
                    case.name
                ));
            }
            if let (Some(e), Some(before)) = (emulator, before)
                && is_local(code)
                && e.calls() != before
            {
                failures.push(format!(
                    "{}: rejected locally with {code} but STS was called",
                    case.name
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
    eprintln!("{total} cases passed");
}

/// Proofs the cases start from, signed now by the client library.
struct Proofs {
    post: String,
    post_node: String,
    get: String,
    get_node: String,
}

impl Proofs {
    fn new() -> Self {
        Self {
            post: post(&alice()),
            post_node: post(&node()),
            get: get(&alice()),
            get_node: get(&node()),
        }
    }
}

fn with_url(token: &str, url: &str) -> String {
    reencode(token, |r| r.url = url.to_owned())
}

fn with_body(token: &str, body: &str) -> String {
    reencode(token, |r| r.body = body.to_owned())
}

fn map_url(token: &str, f: impl FnOnce(&str) -> String) -> String {
    reencode(token, |r| r.url = f(&r.url))
}

fn map_auth(token: &str, f: impl FnOnce(&str) -> String) -> String {
    reencode(token, |r| map_header(r, "authorization", f))
}

/// Replaces the value of query parameter `name` (exact name) in a presigned URL.
fn set_param(url: &str, name: &str, value: &str) -> String {
    let (base, query) = url.split_once('?').unwrap();
    let pairs: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((n, _)) if n == name => format!("{n}={value}"),
            _ => p.to_owned(),
        })
        .collect();
    format!("{base}?{}", pairs.join("&"))
}

/// Removes query parameter `name` from a presigned URL.
fn drop_param(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').unwrap();
    let pairs: Vec<&str> = query
        .split('&')
        .filter(|p| p.split_once('=').map(|(n, _)| n) != Some(name))
        .collect();
    format!("{base}?{}", pairs.join("&"))
}

fn json_token(json: &str) -> String {
    token_of(json.as_bytes())
}

fn k8s_of(url: &str) -> String {
    format!("k8s-aws-v1.{}", URL_SAFE_NO_PAD.encode(url))
}

// ---------------------------------------------------------------------------------------------
// Carrier and token format (DESIGN §3, §4 step 1).
// ---------------------------------------------------------------------------------------------

fn carrier_cases(p: &Proofs) -> Vec<Case> {
    let v = p.post.as_bytes();
    vec![
        Case::headers("no proof at all", Denied(MissingProof), &[]),
        Case::headers(
            "Authorization: Basic only",
            Denied(MissingProof),
            &[("authorization", b"Basic YWxpY2U6cHc=")],
        ),
        Case::headers(
            "an upstream's own bearer token is not a proof",
            Denied(MissingProof),
            &[("authorization", b"Bearer eyJhbGciOiJIUzI1NiJ9.e30.x")],
        ),
        Case::headers(
            "proof under an unknown auth scheme",
            Denied(MissingProof),
            &[("authorization", &[&b"AWS4 "[..], v].concat())],
        ),
        Case::proof_header("empty X-IAM-Join-Proof", Denied(MissingProof), b""),
        Case::headers(
            "two X-IAM-Join-Proof headers",
            Denied(MalformedProof),
            &[("x-iam-join-proof", v), ("x-iam-join-proof", v)],
        ),
        Case::headers(
            "two bearer proofs",
            Denied(MalformedProof),
            &[
                ("authorization", &[&b"Bearer "[..], v].concat()),
                ("authorization", &[&b"Bearer "[..], v].concat()),
            ],
        ),
        Case::proof_header(
            "X-IAM-Join-Proof with non-ASCII bytes",
            Denied(MalformedProof),
            &[v, "\u{e9}".as_bytes()].concat(),
        ),
        Case::proof_header(
            "unknown token version iam-join-v2.",
            Denied(MalformedProof),
            p.post
                .replacen("iam-join-v1.", "iam-join-v2.", 1)
                .as_bytes(),
        ),
        Case::proof_header(
            "token prefix in upper case",
            Denied(MalformedProof),
            p.post
                .replacen("iam-join-v1.", "IAM-JOIN-V1.", 1)
                .as_bytes(),
        ),
        Case::proof_header(
            "prefix without a payload",
            Denied(MalformedProof),
            b"iam-join-v1.",
        ),
        Case::proof_header(
            "bare base64 without a prefix",
            Denied(MalformedProof),
            &v["iam-join-v1.".len()..],
        ),
        Case::proof_header(
            "k8s prefix without a payload",
            Denied(MalformedProof),
            b"k8s-aws-v1.",
        ),
    ]
}

fn token_format_cases(p: &Proofs) -> Vec<Case> {
    let json = payload_json(&p.post);
    let raw = decode(&p.post);

    // Larger than 16 KiB only because of unsigned padding headers (each value within 8 KiB).
    let oversize = reencode(&p.post, |r| {
        for i in 0..3 {
            r.headers.push((format!("x-pad-{i}"), "a".repeat(6000)));
        }
    });
    assert!(oversize.len() > 16 * 1024);

    // The standard base64 alphabet: pad an unsigned header until '+' or '/' shows up.
    let standard = (1..12)
        .map(|n| {
            let mut r = raw.clone();
            r.headers.push(("x-pad".into(), "~".repeat(n)));
            let json = payload_json(&r.to_iam_join_v1_token());
            format!("iam-join-v1.{}", STANDARD_NO_PAD.encode(json))
        })
        .find(|t| t["iam-join-v1.".len()..].contains(['+', '/']))
        .unwrap();

    // Non-canonical last symbol: same bytes for a lenient decoder, refused by a strict one.
    let mut padded = json.clone();
    while padded.len() % 3 != 1 {
        padded.push(' ');
    }
    let canonical = URL_SAFE_NO_PAD.encode(&padded);
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let last = canonical.as_bytes()[canonical.len() - 1];
    let value = alphabet.iter().position(|c| *c == last).unwrap();
    let mut trailing_bits = canonical.clone();
    trailing_bits.pop();
    trailing_bits.push(alphabet[value | 1] as char);

    let deep = format!(
        r#"{{"method":"POST","url":"https://{HOST}/","headers":{{}},"body":{}{}}}"#,
        "[".repeat(5000),
        "]".repeat(5000)
    );
    // A real k8s token for this audience, re-encoded with padding ('=' where one is due).
    let k8s_url = {
        let t =
            iam_join_client::k8s_token(&alice().credentials(), REGION, AUDIENCE, SystemTime::now())
                .unwrap();
        String::from_utf8(URL_SAFE_NO_PAD.decode(&t["k8s-aws-v1.".len()..]).unwrap()).unwrap()
    };
    let k8s_padded = {
        let t = URL_SAFE.encode(&k8s_url);
        format!(
            "k8s-aws-v1.{}",
            if t.ends_with('=') { t } else { format!("{t}=") }
        )
    };
    let with_dup = |from: &str, to: &str| json_token(&json.replacen(from, to, 1));
    let audience_entry = format!(r#""x-iam-join-audience":"{AUDIENCE}""#);

    vec![
        Case::bearer(
            "token over 16 KiB (unsigned padding headers)",
            Denied(MalformedProof),
            &oversize,
        ),
        Case::bearer(
            "16 KiB + 1 of base64",
            Denied(MalformedProof),
            &format!("iam-join-v1.{}", "A".repeat(16 * 1024 - 11)),
        ),
        Case::bearer(
            "not base64 at all",
            Denied(MalformedProof),
            "iam-join-v1.!!!$$$***",
        ),
        Case::bearer(
            "base64 padding '='",
            Denied(MalformedProof),
            &format!("{}=", p.post),
        ),
        Case::bearer(
            "base64 padding '=='",
            Denied(MalformedProof),
            &format!("{}==", p.post),
        ),
        Case::bearer(
            "padded base64url of the same JSON",
            Denied(MalformedProof),
            &format!("iam-join-v1.{}", URL_SAFE.encode(&padded)),
        ),
        Case::bearer(
            "standard base64 alphabet (+ and /)",
            Denied(MalformedProof),
            &standard,
        ),
        Case::bearer(
            "non-canonical trailing bits",
            Denied(MalformedProof),
            &format!("iam-join-v1.{trailing_bits}"),
        ),
        Case::bearer(
            "canonical encoding of the same JSON (control)",
            Admitted,
            &format!("iam-join-v1.{canonical}"),
        ),
        Case::proof_header(
            "space inside the token",
            Denied(MalformedProof),
            format!("{} {}", &p.post[..40], &p.post[40..]).as_bytes(),
        ),
        Case::bearer(
            "payload is a JSON array",
            Denied(MalformedProof),
            &json_token("[]"),
        ),
        Case::bearer(
            "payload is JSON null",
            Denied(MalformedProof),
            &json_token("null"),
        ),
        Case::bearer(
            "payload is a presigned URL, not JSON",
            Denied(MalformedProof),
            &json_token(&decode(&p.get).url),
        ),
        Case::bearer(
            "duplicate top-level url (the second elsewhere)",
            Denied(MalformedProof),
            &with_dup(r#""url":"#, r#""url":"https://evil.example/","url":"#),
        ),
        Case::bearer(
            "duplicate top-level method",
            Denied(MalformedProof),
            &with_dup(r#""method":"POST""#, r#""method":"GET","method":"POST""#),
        ),
        Case::bearer(
            "duplicate top-level body",
            Denied(MalformedProof),
            &with_dup(r#""body":"#, r#""body":"Action=AssumeRole","body":"#),
        ),
        Case::bearer(
            "case-variant header names X-Amz-Date / x-amz-date",
            Denied(MalformedProof),
            &with_dup(
                r#""headers":{"#,
                r#""headers":{"X-Amz-Date":"20200101T000000Z","#,
            ),
        ),
        Case::bearer(
            "exact duplicate header name",
            Denied(MalformedProof),
            &with_dup(
                r#""headers":{"#,
                r#""headers":{"x-amz-date":"20200101T000000Z","#,
            ),
        ),
        Case::bearer(
            "case-variant duplicate of the audience header",
            Denied(MalformedProof),
            &with_dup(
                &audience_entry,
                &format!(r#""X-IAM-JOIN-AUDIENCE":"other.example.com",{audience_entry}"#),
            ),
        ),
        Case::bearer(
            "case-variant duplicate of authorization",
            Denied(MalformedProof),
            &with_dup(
                r#""headers":{"#,
                r#""headers":{"Authorization":"AWS4-HMAC-SHA256 x","#,
            ),
        ),
        Case::bearer(
            "unknown top-level field",
            Denied(MalformedProof),
            &with_dup(r#""body":"#, r#""extra":1,"body":"#),
        ),
        Case::bearer(
            "top-level field in another case (URL)",
            Denied(MalformedProof),
            &with_dup(r#""url":"#, r#""URL":"#),
        ),
        Case::bearer(
            "missing body field",
            Denied(MalformedProof),
            &json_token(&format!(
                r#"{{"method":"POST","url":"https://{HOST}/","headers":{{}}}}"#
            )),
        ),
        Case::bearer(
            "headers as an array of pairs",
            Denied(MalformedProof),
            &json_token(&format!(
                r#"{{"method":"POST","url":"https://{HOST}/","headers":[["a","b"]],"body":""}}"#
            )),
        ),
        Case::bearer(
            "header value is a number",
            Denied(MalformedProof),
            &with_dup(r#""headers":{"#, r#""headers":{"x-n":1,"#),
        ),
        Case::bearer(
            "header value is an array",
            Denied(MalformedProof),
            &with_dup(r#""headers":{"#, r#""headers":{"x-n":["a","b"],"#),
        ),
        Case::bearer(
            "method is a number",
            Denied(MalformedProof),
            &with_dup(r#""method":"POST""#, r#""method":1"#),
        ),
        Case::bearer(
            "body is null",
            Denied(MalformedProof),
            &json_token(&json.replacen(&format!(r#""body":"{GCI}""#), r#""body":null"#, 1)),
        ),
        Case::bearer(
            "header value with NUL",
            Denied(MalformedProof),
            &with_dup(r#""headers":{"#, r#""headers":{"x-n":"a\u0000b","#),
        ),
        Case::bearer(
            "header value with CRLF injection",
            Denied(MalformedProof),
            &with_dup(
                r#""headers":{"#,
                r#""headers":{"x-n":"a\r\nx-amz-security-token: evil","#,
            ),
        ),
        Case::bearer(
            "header name with a colon",
            Denied(MalformedProof),
            &with_dup(r#""headers":{"#, r#""headers":{"x-n:y":"a","#),
        ),
        Case::bearer(
            "header name with a space",
            Denied(MalformedProof),
            &with_dup(r#""headers":{"#, r#""headers":{"x n":"a","#),
        ),
        Case::bearer(
            "empty header name",
            Denied(MalformedProof),
            &with_dup(r#""headers":{"#, r#""headers":{"":"a","#),
        ),
        Case::bearer(
            "header value with leading space",
            Denied(MalformedProof),
            &with_dup(r#""headers":{"#, r#""headers":{"x-n":" a","#),
        ),
        Case::bearer(
            "header value with non-ASCII",
            Denied(MalformedProof),
            &with_dup(r#""headers":{"#, r#""headers":{"x-n":"\u00e9","#),
        ),
        Case::bearer(
            "trailing garbage after the JSON",
            Denied(MalformedProof),
            &json_token(&format!("{json}{{}}")),
        ),
        Case::bearer(
            "UTF-8 BOM before the JSON",
            Denied(MalformedProof),
            &json_token(&format!("\u{feff}{json}")),
        ),
        Case::bearer(
            "JSON nested 5000 deep",
            Denied(MalformedProof),
            &json_token(&deep),
        ),
        Case::bearer(
            "payload is not UTF-8",
            Denied(MalformedProof),
            &token_of([0xff, 0xfe, b'{', b'}']),
        ),
        Case::bearer(
            "k8s token that is not UTF-8",
            Denied(MalformedProof),
            &format!("k8s-aws-v1.{}", URL_SAFE_NO_PAD.encode([0xff, 0xfe, 0xfd])),
        ),
        Case::bearer(
            "k8s token with padding",
            Denied(MalformedProof),
            &k8s_padded,
        ),
        Case::bearer(
            "method PUT",
            Denied(MalformedProof),
            &reencode(&p.post, |r| r.method = "PUT".into()),
        ),
        Case::bearer(
            "method in lower case",
            Denied(MalformedProof),
            &reencode(&p.post, |r| r.method = "post".into()),
        ),
        Case::bearer(
            "empty method",
            Denied(MalformedProof),
            &reencode(&p.post, |r| r.method = String::new()),
        ),
        Case::bearer(
            "signed POST relabelled as GET",
            Denied(WrongAction),
            &reencode(&p.post, |r| r.method = "GET".into()),
        ),
        Case::bearer(
            "presigned GET relabelled as POST",
            Denied(MalformedProof),
            &reencode(&p.get, |r| r.method = "POST".into()),
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// URL and host (DESIGN §4 step 2, §5).
// ---------------------------------------------------------------------------------------------

fn host_cases(p: &Proofs) -> Vec<Case> {
    let hosts: &[(&str, &str)] = &[
        (
            "look-alike suffix of the regional host",
            "sts.us-west-2.amazonaws.com.evil.example",
        ),
        (
            "look-alike suffix of the global host",
            "sts.amazonaws.com.evil.example",
        ),
        (
            "regional name under another domain",
            "sts.us-west-2.example.com",
        ),
        (
            "another service prefix in the region",
            "evil.us-west-2.amazonaws.com",
        ),
        ("unknown region", "sts.not-a-region.amazonaws.com"),
        ("IAM's host", "iam.amazonaws.com"),
        ("S3's host", "s3.us-west-2.amazonaws.com"),
        ("an unrelated host", "example.com"),
        ("host in upper case", "STS.US-WEST-2.AMAZONAWS.COM"),
        ("host in mixed case", "sts.us-west-2.AmazonAWS.com"),
        ("region in upper case", "sts.US-WEST-2.amazonaws.com"),
        ("trailing dot", "sts.us-west-2.amazonaws.com."),
        ("two trailing dots", "sts.us-west-2.amazonaws.com.."),
        ("leading dot", ".sts.us-west-2.amazonaws.com"),
        ("explicit port 443", "sts.us-west-2.amazonaws.com:443"),
        ("explicit port 8443", "sts.us-west-2.amazonaws.com:8443"),
        ("empty port", "sts.us-west-2.amazonaws.com:"),
        ("userinfo", "user@sts.us-west-2.amazonaws.com"),
        (
            "userinfo with password",
            "user:pw@sts.us-west-2.amazonaws.com",
        ),
        (
            "STS host as userinfo of another host",
            "sts.us-west-2.amazonaws.com@evil.example",
        ),
        (
            "backslash userinfo trick",
            "evil.example\\@sts.us-west-2.amazonaws.com",
        ),
        ("IPv4 loopback literal", "127.0.0.1"),
        ("IPv6 loopback literal", "[::1]"),
        ("instance metadata address", "169.254.169.254"),
        ("decimal IPv4", "2130706433"),
        ("punycode look-alike", "xn--sts-9na.us-west-2.amazonaws.com"),
        ("Cyrillic homoglyph", "sts.us-west-2.am\u{430}zonaws.com"),
        ("fullwidth full stop", "sts\u{ff0e}us-west-2.amazonaws.com"),
        ("percent-encoded dot", "sts%2Eus-west-2.amazonaws.com"),
        ("China region on .com", "sts.cn-north-1.amazonaws.com"),
        ("FIPS host in China", "sts-fips.cn-north-1.amazonaws.com.cn"),
        (
            "commercial region on .com.cn",
            "sts.us-west-2.amazonaws.com.cn",
        ),
        (
            "VPC endpoint name",
            "vpce-0123456789abcdef0-abcdefgh.sts.us-west-2.vpce.amazonaws.com",
        ),
        (
            "NUL inside the host",
            "sts.us-west-2.amazonaws.com\u{0}.evil.example",
        ),
        ("tab inside the host", "sts.us-west-2.amazonaws.com\t"),
    ];
    let mut cases: Vec<Case> = hosts
        .iter()
        .map(|(name, host)| {
            Case::bearer(
                format!("host: {name}"),
                Denied(HostNotAllowed),
                &with_url(&p.post, &format!("https://{host}/")),
            )
        })
        .collect();
    cases.extend([
        Case::bearer(
            "host: empty",
            Denied(HostNotAllowed),
            &with_url(&p.post, "https:///"),
        ),
        Case::bearer(
            "url: fragment hides the real host",
            Denied(MalformedProof),
            &with_url(
                &p.post,
                "https://evil.example#@sts.us-west-2.amazonaws.com/",
            ),
        ),
        Case::bearer(
            "host: presigned GET for a look-alike",
            Denied(HostNotAllowed),
            &map_url(&p.get, |u| {
                u.replacen(HOST, "sts.us-west-2.amazonaws.com.evil.example", 1)
            }),
        ),
        Case::bearer(
            "url: http scheme",
            Denied(MalformedProof),
            &with_url(&p.post, &format!("http://{HOST}/")),
        ),
        Case::bearer(
            "url: scheme in upper case",
            Denied(MalformedProof),
            &with_url(&p.post, &format!("HTTPS://{HOST}/")),
        ),
        Case::bearer(
            "url: protocol-relative",
            Denied(MalformedProof),
            &with_url(&p.post, &format!("//{HOST}/")),
        ),
        Case::bearer(
            "url: other scheme",
            Denied(MalformedProof),
            &with_url(&p.post, &format!("ftp://{HOST}/")),
        ),
        Case::bearer(
            "url: path /x",
            Denied(MalformedProof),
            &with_url(&p.post, &format!("https://{HOST}/x")),
        ),
        Case::bearer(
            "url: path //",
            Denied(MalformedProof),
            &with_url(&p.post, &format!("https://{HOST}//")),
        ),
        Case::bearer(
            "url: no path",
            Denied(MalformedProof),
            &with_url(&p.post, &format!("https://{HOST}")),
        ),
        Case::bearer(
            "url: dot segments",
            Denied(MalformedProof),
            &with_url(&p.post, &format!("https://{HOST}/%2e%2e/")),
        ),
        Case::bearer(
            "url: fragment",
            Denied(MalformedProof),
            &with_url(&p.post, &format!("https://{HOST}/#frag")),
        ),
        Case::bearer(
            "url: signed POST with a query",
            Denied(MalformedProof),
            &with_url(&p.post, &format!("https://{HOST}/?{GCI}")),
        ),
        Case::bearer(
            "url: signed POST with an empty query",
            Denied(MalformedProof),
            &with_url(&p.post, &format!("https://{HOST}/?")),
        ),
        Case::bearer(
            "url: presigned GET without its query",
            Denied(MalformedProof),
            &with_url(&p.get, &format!("https://{HOST}/")),
        ),
    ]);
    cases
}

// ---------------------------------------------------------------------------------------------
// Action, body and query (DESIGN §4 steps 2-3; CVE-2022-2385).
// ---------------------------------------------------------------------------------------------

fn action_cases(p: &Proofs) -> Vec<Case> {
    let bodies: &[(&str, &str)] = &[
        ("AssumeRole", "Action=AssumeRole&Version=2011-06-15"),
        (
            "GetSessionToken",
            "Action=GetSessionToken&Version=2011-06-15",
        ),
        (
            "another version",
            "Action=GetCallerIdentity&Version=2012-01-01",
        ),
        (
            "parameters reordered",
            "Version=2011-06-15&Action=GetCallerIdentity",
        ),
        (
            "extra parameter",
            "Action=GetCallerIdentity&Version=2011-06-15&Extra=1",
        ),
        (
            "second Action",
            "Action=GetCallerIdentity&Version=2011-06-15&Action=AssumeRole",
        ),
        (
            "encoded name %41ction",
            "%41ction=GetCallerIdentity&Version=2011-06-15",
        ),
        (
            "encoded value",
            "Action=GetCallerIdentit%79&Version=2011-06-15",
        ),
        (
            "trailing NUL",
            "Action=GetCallerIdentity&Version=2011-06-15\u{0}",
        ),
        (
            "trailing newline",
            "Action=GetCallerIdentity&Version=2011-06-15\n",
        ),
        ("lower case", "action=getcalleridentity&version=2011-06-15"),
        ("empty", ""),
        (
            "JSON",
            r#"{"Action":"GetCallerIdentity","Version":"2011-06-15"}"#,
        ),
        ("leading &", "&Action=GetCallerIdentity&Version=2011-06-15"),
        (
            "RoleArn smuggled",
            "Action=GetCallerIdentity&Version=2011-06-15&RoleArn=arn:aws:iam::444444444444:role/x",
        ),
    ];
    let mut cases: Vec<Case> = bodies
        .iter()
        .map(|(name, body)| {
            Case::bearer(
                format!("body: {name}"),
                Denied(WrongAction),
                &with_body(&p.post, body),
            )
        })
        .collect();
    cases.extend([
        Case::bearer("query: Action=AssumeRole", Denied(WrongAction), &map_url(&p.get, |u| set_param(u, "Action", "AssumeRole"))),
        Case::bearer("query: another Version", Denied(WrongAction), &map_url(&p.get, |u| set_param(u, "Version", "2012-01-01"))),
        Case::bearer("query: extra parameter", Denied(WrongAction), &map_url(&p.get, |u| format!("{u}&Foo=bar"))),
        Case::bearer("query: DurationSeconds added", Denied(WrongAction), &map_url(&p.get, |u| format!("{u}&DurationSeconds=43200"))),
        Case::bearer("query: Action renamed %41ction", Denied(WrongAction), &map_url(&p.get, |u| u.replacen("?Action=", "?%41ction=", 1))),
        Case::bearer("query: Action in lower case only", Denied(WrongAction), &map_url(&p.get, |u| u.replacen("?Action=", "?action=", 1))),
        Case::bearer("query: Action missing", Denied(WrongAction), &map_url(&p.get, |u| drop_param(u, "Action"))),
        Case::bearer("query: Version missing", Denied(WrongAction), &map_url(&p.get, |u| drop_param(u, "Version"))),
        Case::bearer("presigned GET with a body", Denied(WrongAction), &reencode(&p.get, |r| r.body = GCI.into())),
        // CVE-2022-2385: duplicates, exact or in another case or encoding, are malformed.
        Case::bearer("query: exact duplicate Action", Denied(MalformedProof), &map_url(&p.get, |u| format!("{u}&Action=GetCallerIdentity"))),
        Case::bearer("query: case-variant ACTION=AssumeRole", Denied(MalformedProof), &map_url(&p.get, |u| format!("{u}&ACTION=AssumeRole"))),
        Case::bearer("query: case-variant x-amz-credential (CVE-2022-2385)", Denied(MalformedProof), &map_url(&p.get, |u| format!("{u}&x-amz-credential=AKIAEVILEVILEVIL0001%2F20261123%2Fus-west-2%2Fsts%2Faws4_request"))),
        Case::bearer("query: case-variant x-amz-security-token", Denied(MalformedProof), &map_url(&p.get_node, |u| format!("{u}&x-amz-security-token=evil"))),
        Case::bearer("query: encoded duplicate %41ction=AssumeRole", Denied(MalformedProof), &map_url(&p.get, |u| format!("{u}&%41ction=AssumeRole"))),
        Case::bearer("query: duplicate X-Amz-Signature", Denied(MalformedProof), &map_url(&p.get, |u| format!("{u}&X-Amz-Signature={}", "0".repeat(64)))),
        Case::bearer("query: case-variant X-AMZ-DATE", Denied(MalformedProof), &map_url(&p.get, |u| format!("{u}&X-AMZ-DATE=20200101T000000Z"))),
        Case::bearer("query: bad percent-encoding", Denied(MalformedProof), &map_url(&p.get, |u| set_param(u, "Version", "2011-06-15%zz"))),
        Case::bearer("query: truncated percent-encoding", Denied(MalformedProof), &map_url(&p.get, |u| set_param(u, "Version", "2011-06-15%4"))),
        Case::bearer("query: encoded NUL", Denied(MalformedProof), &map_url(&p.get, |u| set_param(u, "Version", "2011-06-15%00"))),
        Case::bearer("query: encoded newline", Denied(MalformedProof), &map_url(&p.get, |u| set_param(u, "Version", "2011-06-15%0d%0a"))),
        Case::bearer("query: raw tab", Denied(MalformedProof), &map_url(&p.get, |u| set_param(u, "Version", "2011-06-15\t"))),
        Case::bearer("query: encoded non-UTF-8", Denied(MalformedProof), &map_url(&p.get, |u| set_param(u, "Version", "%ff"))),
        Case::bearer("query: parameter without =", Denied(MalformedProof), &map_url(&p.get, |u| format!("{u}&Foo"))),
        Case::bearer("query: empty pair", Denied(MalformedProof), &map_url(&p.get, |u| u.replacen("&Version", "&&Version", 1))),
        Case::bearer("query: trailing &", Denied(MalformedProof), &map_url(&p.get, |u| format!("{u}&"))),
    ]);
    cases
}

// ---------------------------------------------------------------------------------------------
// SigV4 shape (DESIGN §4 step 4).
// ---------------------------------------------------------------------------------------------

fn sigv4_cases(p: &Proofs) -> Vec<Case> {
    let a = &p.post;
    let yesterday = {
        let raw = decode(a);
        let date = raw.header("x-amz-date").unwrap()[..8].to_owned();
        let day: u32 = date[6..].parse().unwrap();
        let other = if day > 1 {
            format!("{}{:02}", &date[..6], day - 1)
        } else {
            format!("{}02", &date[..6])
        };
        (date, other)
    };
    let mut wrong_region = hand_signed(&alice());
    wrong_region.region = "us-east-1";
    let mut global_for_west = hand_signed(&alice());
    global_for_west.host = "sts.amazonaws.com";
    let mut wrong_service = hand_signed(&alice());
    wrong_service.service = "iam";
    let mut get_wrong_region = hand_signed(&alice()).audience_only();
    get_wrong_region.region = "us-east-2";
    let replace =
        |from: &'static str, to: &'static str| map_auth(a, move |v| v.replacen(from, to, 1));
    vec![
        Case::bearer(
            "algorithm AWS4-HMAC-SHA1",
            Denied(MalformedProof),
            &replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1"),
        ),
        Case::bearer(
            "algorithm SigV4a",
            Denied(MalformedProof),
            &replace("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256"),
        ),
        Case::bearer(
            "algorithm in lower case",
            Denied(MalformedProof),
            &replace("AWS4-HMAC-SHA256", "aws4-hmac-sha256"),
        ),
        Case::bearer(
            "authorization without components",
            Denied(MalformedProof),
            &map_auth(a, |_| "AWS4-HMAC-SHA256".into()),
        ),
        Case::bearer(
            "Signature component missing",
            Denied(MalformedProof),
            &map_auth(a, |v| v.split(", Signature=").next().unwrap().to_owned()),
        ),
        Case::bearer(
            "Signature in upper-case hex",
            Denied(MalformedProof),
            &map_auth(a, |v| {
                let (h, s) = v.split_once("Signature=").unwrap();
                format!("{h}Signature={}", s.to_ascii_uppercase())
            }),
        ),
        Case::bearer(
            "Signature of 63 digits",
            Denied(MalformedProof),
            &map_auth(a, |v| v[..v.len() - 1].to_owned()),
        ),
        Case::bearer(
            "Signature with a non-hex digit",
            Denied(MalformedProof),
            &map_auth(a, |v| format!("{}g", &v[..v.len() - 1])),
        ),
        Case::bearer(
            "Credential component twice",
            Denied(MalformedProof),
            &map_auth(a, |v| {
                v.replacen(", SignedHeaders=", ", Credential=AKIAEVILEVILEVIL0001/20261123/us-west-2/sts/aws4_request, SignedHeaders=", 1)
            }),
        ),
        Case::bearer(
            "unknown authorization component",
            Denied(MalformedProof),
            &map_auth(a, |v| format!("{v}, Foo=bar")),
        ),
        Case::bearer(
            "Credential with four parts",
            Denied(MalformedProof),
            &replace("/sts/aws4_request", "/aws4_request"),
        ),
        Case::bearer(
            "Credential with six parts",
            Denied(MalformedProof),
            &replace("/sts/aws4_request", "/sts/x/aws4_request"),
        ),
        Case::bearer(
            "Credential key id in lower case",
            Denied(MalformedProof),
            &replace("Credential=AKIA", "Credential=akia"),
        ),
        Case::bearer(
            "Credential key id too short",
            Denied(MalformedProof),
            &map_auth(a, |v| v.replacen(keys::ALICE_ACCESS_KEY_ID, "AKIA", 1)),
        ),
        Case::bearer(
            "scope date not 8 digits",
            Denied(MalformedProof),
            &map_auth(a, |v| {
                v.replacen(&format!("/{}/", yesterday.0), "/2026-11-23/", 1)
            }),
        ),
        Case::bearer(
            "scope date is not X-Amz-Date's date",
            Denied(MalformedProof),
            &map_auth(a, |v| {
                v.replacen(
                    &format!("/{}/", yesterday.0),
                    &format!("/{}/", yesterday.1),
                    1,
                )
            }),
        ),
        Case::bearer(
            "scope region ≠ host region (really signed)",
            Denied(MalformedProof),
            &wrong_region.post().to_iam_join_v1_token(),
        ),
        Case::bearer(
            "global host signed for us-west-2 (really signed)",
            Denied(MalformedProof),
            &global_for_west.post().to_iam_join_v1_token(),
        ),
        Case::bearer(
            "presigned scope region ≠ host region (really signed)",
            Denied(MalformedProof),
            &get_wrong_region.presign(300).to_iam_join_v1_token(),
        ),
        Case::bearer(
            "scope region in upper case",
            Denied(MalformedProof),
            &replace("/us-west-2/", "/US-WEST-2/"),
        ),
        Case::bearer(
            "scope service iam (really signed)",
            Denied(MalformedProof),
            &wrong_service.post().to_iam_join_v1_token(),
        ),
        Case::bearer(
            "scope service STS in upper case",
            Denied(MalformedProof),
            &replace("/sts/aws4_request", "/STS/aws4_request"),
        ),
        Case::bearer(
            "scope terminator aws4_request2",
            Denied(MalformedProof),
            &replace("/aws4_request", "/aws4_request2"),
        ),
        Case::bearer(
            "SignedHeaders unsorted",
            Denied(MalformedProof),
            &replace("content-type;host", "host;content-type"),
        ),
        Case::bearer(
            "SignedHeaders in upper case",
            Denied(MalformedProof),
            &replace("content-type;host", "Content-Type;Host"),
        ),
        Case::bearer(
            "SignedHeaders with a duplicate",
            Denied(MalformedProof),
            &replace("content-type;host", "content-type;content-type;host"),
        ),
        Case::bearer(
            "SignedHeaders without host",
            Denied(MalformedProof),
            &replace("content-type;host;", "content-type;"),
        ),
        Case::bearer(
            "SignedHeaders empty",
            Denied(MalformedProof),
            &map_auth(a, |v| {
                let (h, rest) = v.split_once("SignedHeaders=").unwrap();
                format!("{h}SignedHeaders={}", &rest[rest.find(',').unwrap()..])
            }),
        ),
        Case::bearer(
            "x-amz-date not signed",
            Denied(MalformedProof),
            &replace("host;x-amz-date;", "host;"),
        ),
        Case::bearer(
            "x-amz-date header missing",
            Denied(MalformedProof),
            &reencode(a, |r| r.headers.retain(|(n, _)| n != "x-amz-date")),
        ),
        Case::bearer(
            "signed content-type missing from the proof",
            Denied(MalformedProof),
            &reencode(a, |r| r.headers.retain(|(n, _)| n != "content-type")),
        ),
        Case::bearer(
            "authorization header missing",
            Denied(MalformedProof),
            &reencode(a, |r| r.headers.retain(|(n, _)| n != "authorization")),
        ),
        Case::bearer(
            "X-Amz-Date in ISO 8601 with dashes",
            Denied(MalformedProof),
            &reencode(a, |r| {
                map_header(r, "x-amz-date", |d| {
                    format!(
                        "{}-{}-{}T{}:{}:{}Z",
                        &d[..4],
                        &d[4..6],
                        &d[6..8],
                        &d[9..11],
                        &d[11..13],
                        &d[13..15]
                    )
                })
            }),
        ),
        Case::bearer(
            "X-Amz-Date without Z",
            Denied(MalformedProof),
            &reencode(a, |r| map_header(r, "x-amz-date", |d| d[..15].to_owned())),
        ),
        Case::bearer(
            "X-Amz-Date month 13",
            Denied(MalformedProof),
            &reencode(a, |r| {
                map_header(r, "x-amz-date", |d| format!("{}13{}", &d[..4], &d[6..]))
            }),
        ),
        Case::bearer(
            "presigned X-Amz-Algorithm SHA1",
            Denied(MalformedProof),
            &map_url(&p.get, |u| {
                set_param(u, "X-Amz-Algorithm", "AWS4-HMAC-SHA1")
            }),
        ),
        Case::bearer(
            "presigned X-Amz-Signature missing",
            Denied(MalformedProof),
            &map_url(&p.get, |u| drop_param(u, "X-Amz-Signature")),
        ),
        Case::bearer(
            "presigned X-Amz-Credential missing",
            Denied(MalformedProof),
            &map_url(&p.get, |u| drop_param(u, "X-Amz-Credential")),
        ),
        Case::bearer(
            "presigned X-Amz-Date missing",
            Denied(MalformedProof),
            &map_url(&p.get, |u| drop_param(u, "X-Amz-Date")),
        ),
        Case::bearer(
            "presigned SignedHeaders unsorted",
            Denied(MalformedProof),
            &map_url(&p.get, |u| {
                set_param(u, "X-Amz-SignedHeaders", "x-iam-join-audience%3Bhost")
            }),
        ),
        Case::bearer(
            "presigned SignedHeaders without host",
            Denied(MalformedProof),
            &map_url(&p.get, |u| {
                set_param(u, "X-Amz-SignedHeaders", "x-iam-join-audience")
            }),
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Time (DESIGN §4 step 5).
// ---------------------------------------------------------------------------------------------

fn time_cases(p: &Proofs) -> Vec<Case> {
    let at = |secs: i64| {
        if secs >= 0 {
            SystemTime::now() + Duration::from_secs(secs as u64)
        } else {
            SystemTime::now() - Duration::from_secs((-secs) as u64)
        }
    };
    let aud = || Binding::Audience(AUDIENCE.into());
    let mut epoch = hand_signed(&alice());
    epoch.at = SystemTime::UNIX_EPOCH + Duration::from_secs(1);
    let long = hand_signed(&alice()).audience_only();
    vec![
        Case::bearer(
            "signed 20 minutes ago",
            Denied(ProofExpired),
            &proof_with(&alice(), aud(), SigningForm::Post, at(-20 * 60)),
        ),
        Case::bearer(
            "signed 16 minutes ago",
            Denied(ProofExpired),
            &proof_with(&alice(), aud(), SigningForm::Post, at(-16 * 60)),
        ),
        Case::bearer(
            "signed 10 minutes in the future",
            Denied(ProofExpired),
            &proof_with(&alice(), aud(), SigningForm::Post, at(10 * 60)),
        ),
        Case::bearer(
            "dated 2099",
            Denied(ProofExpired),
            &proof_with(&alice(), aud(), SigningForm::Post, at(73 * 365 * 86_400)),
        ),
        Case::bearer(
            "dated 1970 (really signed)",
            Denied(ProofExpired),
            &epoch.post().to_iam_join_v1_token(),
        ),
        Case::bearer(
            "presigned GET past X-Amz-Expires",
            Denied(ProofExpired),
            &proof_with(
                &alice(),
                aud(),
                SigningForm::PresignedGet {
                    expires_in: Duration::from_secs(60),
                },
                at(-120),
            ),
        ),
        Case::bearer(
            "presigned GET 20 minutes old within a 900 s expiry",
            Denied(ProofExpired),
            &proof_with(
                &alice(),
                aud(),
                SigningForm::PresignedGet {
                    expires_in: Duration::from_secs(900),
                },
                at(-20 * 60),
            ),
        ),
        Case::bearer(
            "X-Amz-Expires=3600 (really signed)",
            Denied(MalformedProof),
            &long.presign(3600).to_iam_join_v1_token(),
        ),
        Case::bearer(
            "X-Amz-Expires=901",
            Denied(MalformedProof),
            &map_url(&p.get, |u| set_param(u, "X-Amz-Expires", "901")),
        ),
        Case::bearer(
            "X-Amz-Expires=0",
            Denied(MalformedProof),
            &map_url(&p.get, |u| set_param(u, "X-Amz-Expires", "0")),
        ),
        Case::bearer(
            "X-Amz-Expires=-5",
            Denied(MalformedProof),
            &map_url(&p.get, |u| set_param(u, "X-Amz-Expires", "-5")),
        ),
        Case::bearer(
            "X-Amz-Expires=3e2",
            Denied(MalformedProof),
            &map_url(&p.get, |u| set_param(u, "X-Amz-Expires", "3e2")),
        ),
        Case::bearer(
            "X-Amz-Expires=0300",
            Denied(MalformedProof),
            &map_url(&p.get, |u| set_param(u, "X-Amz-Expires", "0300")),
        ),
        Case::bearer(
            "X-Amz-Expires=%2B300",
            Denied(MalformedProof),
            &map_url(&p.get, |u| set_param(u, "X-Amz-Expires", "%2B300")),
        ),
        Case::bearer(
            "X-Amz-Expires=604800",
            Denied(MalformedProof),
            &map_url(&p.get, |u| set_param(u, "X-Amz-Expires", "604800")),
        ),
        Case::bearer(
            "X-Amz-Expires empty",
            Denied(MalformedProof),
            &map_url(&p.get, |u| set_param(u, "X-Amz-Expires", "")),
        ),
        Case::bearer(
            "X-Amz-Expires missing",
            Denied(MalformedProof),
            &map_url(&p.get, |u| drop_param(u, "X-Amz-Expires")),
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Binding (DESIGN §3 "Bindings", §4 step 6).
// ---------------------------------------------------------------------------------------------

async fn binding_cases(h: &Harness, p: &Proofs) -> Vec<Case> {
    let layer = &h.layer;
    let c1 = challenge(layer).await;
    let c2 = challenge(layer).await;
    let c3 = challenge(layer).await;

    let mut unbound = hand_signed(&alice());
    unbound.headers = vec![("content-type", FORM)];
    let unsigned_audience = {
        let mut r = unbound.post();
        r.headers
            .push(("x-iam-join-audience".into(), AUDIENCE.into()));
        r.to_iam_join_v1_token()
    };
    let unsigned_challenge = {
        let mut r = unbound.post();
        r.headers.push(("x-teleport-challenge".into(), c1.clone()));
        r.to_iam_join_v1_token()
    };
    let mut both = hand_signed(&alice());
    both.headers.push(("x-teleport-challenge", &c2));
    let mut k8s_header_in_v1 = hand_signed(&alice());
    k8s_header_in_v1.headers = vec![("content-type", FORM), ("x-k8s-aws-id", AUDIENCE)];
    let k8s_with_audience_header = k8s_of(&hand_signed(&alice()).audience_only().presign(60).url);

    let forged = issue_challenge(
        &ChallengeKey::from_bytes(&[7u8; 32]).unwrap(),
        [1; 16],
        time::OffsetDateTime::now_utc(),
    );
    let mut tampered = c3.clone().into_bytes();
    tampered[5] = if tampered[5] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let other_layer_challenge = challenge(&base_builder().build().unwrap()).await;

    let ch = |id: &TestIdentity, c: &str| {
        proof_with(
            id,
            Binding::Challenge(c.to_owned()),
            SigningForm::Post,
            SystemTime::now(),
        )
    };
    // Redeem one challenge now, so that the cases below replay it.
    let used = challenge(layer).await;
    let first = ch(&alice(), &used);
    let r = get_with(layer, "/join", Some(&first)).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "setup: first use of a challenge: {}",
        r.json
    );

    vec![
        Case::bearer(
            "no binding header at all",
            Denied(BindingMissing),
            &unbound.post().to_iam_join_v1_token(),
        ),
        Case::bearer(
            "audience header present but not signed",
            Denied(BindingMissing),
            &unsigned_audience,
        ),
        Case::bearer(
            "challenge header present but not signed",
            Denied(BindingMissing),
            &unsigned_challenge,
        ),
        Case::bearer(
            "audience and challenge both signed",
            Denied(MalformedProof),
            &both.post().to_iam_join_v1_token(),
        ),
        Case::bearer(
            "iam-join-v1 proof signing only x-k8s-aws-id",
            Denied(BindingMissing),
            &k8s_header_in_v1.post().to_iam_join_v1_token(),
        ),
        Case::bearer(
            "k8s token signing x-iam-join-audience instead of x-k8s-aws-id",
            Denied(BindingMissing),
            &k8s_with_audience_header,
        ),
        Case::bearer(
            "proof for another audience",
            Denied(AudienceMismatch),
            &proof_with(
                &alice(),
                Binding::Audience("other.example.com".into()),
                SigningForm::Post,
                SystemTime::now(),
            ),
        ),
        Case::bearer(
            "audience differing only in case",
            Denied(AudienceMismatch),
            &proof_with(
                &alice(),
                Binding::Audience(AUDIENCE.to_ascii_uppercase()),
                SigningForm::Post,
                SystemTime::now(),
            ),
        ),
        Case::bearer(
            "audience with a trailing dot",
            Denied(AudienceMismatch),
            &proof_with(
                &alice(),
                Binding::Audience(format!("{AUDIENCE}.")),
                SigningForm::Post,
                SystemTime::now(),
            ),
        ),
        Case::bearer(
            "audience prefix of ours",
            Denied(AudienceMismatch),
            &proof_with(
                &alice(),
                Binding::Audience("teleport.example".into()),
                SigningForm::Post,
                SystemTime::now(),
            ),
        ),
        Case::bearer(
            "presigned GET for another audience",
            Denied(AudienceMismatch),
            &proof_with(
                &alice(),
                Binding::Audience("other.example.com".into()),
                SigningForm::presigned_get(),
                SystemTime::now(),
            ),
        ),
        Case::bearer(
            "signed audience header removed from the proof",
            Denied(MalformedProof),
            &reencode(&p.post, |r| {
                r.headers.retain(|(n, _)| n != "x-iam-join-audience")
            }),
        ),
        Case::bearer(
            "audience header with a leading space",
            Denied(MalformedProof),
            &reencode(&p.post, |r| {
                set_header(r, "x-iam-join-audience", &format!(" {AUDIENCE}"))
            }),
        ),
        Case::bearer(
            "challenge forged with another key",
            Denied(ChallengeInvalid),
            &ch(&alice(), &forged),
        ),
        Case::bearer(
            "challenge from another verifier",
            Denied(ChallengeInvalid),
            &ch(&alice(), &other_layer_challenge),
        ),
        Case::bearer(
            "challenge tampered with",
            Denied(ChallengeInvalid),
            &ch(&alice(), &tampered),
        ),
        Case::bearer(
            "challenge that is not base64",
            Denied(ChallengeInvalid),
            &ch(&alice(), "not-a-challenge!"),
        ),
        Case::bearer(
            "challenge of 4 KiB",
            Denied(ChallengeInvalid),
            &ch(&alice(), &"A".repeat(4096)),
        ),
        Case::bearer(
            "challenge reused (same proof)",
            Denied(ChallengeReused),
            &first,
        ),
        Case::at(
            "/join",
            "challenge reused by another identity's proof",
            Denied(ChallengeReused),
            &ch(&node(), &used),
        ),
        Case::at(
            "/join",
            "audience-bound proof on a challenge path",
            Denied(BindingMissing),
            &p.post,
        ),
        Case::at(
            "/join",
            "presigned audience proof on a challenge path",
            Denied(BindingMissing),
            &p.get,
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Proofs that pass every local check and that STS (the emulator) refuses.
// ---------------------------------------------------------------------------------------------

fn sts_refused_cases(h: &Harness, p: &Proofs) -> Vec<Case> {
    let mut forged = alice();
    forged.secret_access_key = "x".repeat(40);
    let mut unknown = alice();
    unknown.access_key_id = "AKIAUNKNOWNKEY000001".into();
    let expired = TestIdentity {
        access_key_id: "ASIAEXPIREDSESSION01".into(),
        secret_access_key: "ExpiredSessionSecret/DoNotUse+0000000000".into(),
        session_token: Some("FwoExpiredSessionToken/DoNotUse==".into()),
        account: "555555555555".into(),
        arn: "arn:aws:iam::555555555555:user/expired".into(),
        user_id: "AIDAEXPIRED".into(),
    };
    h.emulator.add_identity(expired.clone());
    assert!(h.emulator.expire_session(&expired.access_key_id));
    let shifted_date = reencode(&p.post, |r| {
        map_header(r, "x-amz-date", |d| {
            let (head, secs) = d.split_at(13);
            let s: u32 = secs[..2].parse().unwrap();
            format!("{head}{:02}Z", if s > 0 { s - 1 } else { s + 1 })
        });
    });
    let other_cluster = iam_join_client::k8s_token(
        &alice().credentials(),
        REGION,
        "other-cluster",
        SystemTime::now(),
    )
    .unwrap();
    vec![
        Case::bearer(
            "audience value edited after signing",
            Denied(StsRejected),
            &reencode(
                &proof_with(
                    &alice(),
                    Binding::Audience("other.example.com".into()),
                    SigningForm::Post,
                    SystemTime::now(),
                ),
                |r| set_header(r, "x-iam-join-audience", AUDIENCE),
            ),
        ),
        Case::bearer(
            "k8s token minted for another cluster",
            Denied(StsRejected),
            &other_cluster,
        ),
        Case::bearer(
            "signature replaced by other hex",
            Denied(StsRejected),
            &map_auth(&p.post, |v| {
                let (h, _) = v.split_once("Signature=").unwrap();
                format!("{h}Signature={}", "ab".repeat(32))
            }),
        ),
        Case::bearer(
            "presigned signature replaced",
            Denied(StsRejected),
            &map_url(&p.get, |u| {
                set_param(u, "X-Amz-Signature", &"cd".repeat(32))
            }),
        ),
        Case::bearer(
            "session token altered",
            Denied(StsRejected),
            &reencode(&p.post_node, |r| {
                map_header(r, "x-amz-security-token", |t| format!("{t}x"))
            }),
        ),
        Case::bearer(
            "presigned session token altered",
            Denied(StsRejected),
            &map_url(&p.get_node, |u| {
                u.replacen("X-Amz-Security-Token=", "X-Amz-Security-Token=x", 1)
            }),
        ),
        Case::bearer(
            "session token of another identity",
            Denied(StsRejected),
            &reencode(&p.post_node, |r| {
                set_header(r, "x-amz-security-token", keys::NODE_ROLE2_SESSION_TOKEN)
            }),
        ),
        Case::bearer("wrong secret key", Denied(StsRejected), &post(&forged)),
        Case::bearer("unknown access key", Denied(StsRejected), &post(&unknown)),
        Case::bearer("expired session", Denied(StsRejected), &post(&expired)),
        Case::bearer(
            "signed content-type altered",
            Denied(StsRejected),
            &reencode(&p.post, |r| set_header(r, "content-type", "text/plain")),
        ),
        Case::bearer(
            "x-amz-date moved by one second",
            Denied(StsRejected),
            &shifted_date,
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Policy (DESIGN §2, §4 step 10) and controls.
// ---------------------------------------------------------------------------------------------

fn policy_cases(p: &Proofs) -> Vec<Case> {
    let token = |name: &str, value: &[u8]| {
        let mut b = request("/app", Some(&p.post));
        b = b.header("x-iam-join-token", HeaderValue::from_bytes(value).unwrap());
        Case {
            name: name.into(),
            expect: Denied(UnknownToken),
            req: b.body(Full::default()).unwrap(),
        }
    };
    let mut expired = token("expired join token", b"old-token");
    expired.expect = Denied(TokenExpired);
    let two_tokens = Case {
        name: "two X-IAM-Join-Token headers".into(),
        expect: Denied(UnknownToken),
        req: request("/app", Some(&p.post))
            .header("x-iam-join-token", "iam-token")
            .header("x-iam-join-token", "old-token")
            .body(Full::default())
            .unwrap(),
    };
    vec![
        Case::bearer(
            "look-alike role teleport-node-role2",
            Denied(NotAllowed),
            &post(&node2()),
        ),
        Case::bearer(
            "same role and session in another account",
            Denied(NotAllowed),
            &post(&other_account()),
        ),
        token("unknown join token", b"no-such-token"),
        token("join token name with a slash", b"../iam-token"),
        token("join token name with a NUL escape", b"iam-token%00"),
        token("join token name in upper case", b"IAM-TOKEN"),
        token("empty join token name", b""),
        expired,
        two_tokens,
    ]
}

fn control_cases(p: &Proofs) -> Vec<Case> {
    let k8s =
        iam_join_client::k8s_token(&node().credentials(), REGION, AUDIENCE, SystemTime::now())
            .unwrap();
    vec![
        Case::bearer("control: signed POST", Admitted, &p.post),
        Case::bearer(
            "control: presigned GET with a session token",
            Admitted,
            &p.get_node,
        ),
        Case::bearer("control: k8s-aws-v1 token", Admitted, &k8s),
        Case::bearer(
            "control: IAM user in an allowed account",
            Admitted,
            &post(&bob()),
        ),
        Case::proof_header(
            "control: X-IAM-Join-Proof carrier",
            Admitted,
            p.post_node.as_bytes(),
        ),
        Case::headers(
            "control: lower-case bearer scheme",
            Admitted,
            &[("authorization", format!("bearer {}", p.post).as_bytes())],
        ),
        Case::bearer(
            "control: unsigned headers are dropped, not rejected",
            Admitted,
            &reencode(&p.post, |r| {
                r.headers
                    .push(("x-forwarded-for".into(), "10.0.0.1".into()));
                r.headers.push(("host".into(), "evil.example".into()));
                r.headers.push((
                    "x-amz-target".into(),
                    "AWSSecurityTokenServiceV20110615.AssumeRole".into(),
                ));
            }),
        ),
    ]
}

#[tokio::test]
async fn malicious_and_malformed_proofs_get_their_exact_code() {
    let audit = Arc::new(AuditLog::default());
    let sink = Arc::clone(&audit);
    let h = harness(|b| b.challenge_paths(["/join"]).audit(sink)).await;
    let p = Proofs::new();
    let mut cases = Vec::new();
    cases.extend(carrier_cases(&p));
    cases.extend(token_format_cases(&p));
    cases.extend(host_cases(&p));
    cases.extend(action_cases(&p));
    cases.extend(sigv4_cases(&p));
    cases.extend(time_cases(&p));
    cases.extend(binding_cases(&h, &p).await);
    cases.extend(sts_refused_cases(&h, &p));
    cases.extend(policy_cases(&p));
    cases.extend(control_cases(&p));
    assert!(cases.len() >= 80, "the corpus shrank to {}", cases.len());
    let mut names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(before, names.len(), "case names must be unique");
    // Every decision of the corpus is exactly one audit event with its code (challenges the
    // cases fetched while being built are not decisions).
    audit.take();
    run_cases(&h.layer, Some(&h.emulator), Some(&audit), cases).await;
}

#[tokio::test]
async fn fips_verifier_refuses_non_fips_hosts() {
    let h = harness(|b| b.fips(true)).await;
    let fips = proof_with(
        &alice(),
        Binding::Audience(AUDIENCE.into()),
        SigningForm::Post,
        SystemTime::now(),
    );
    let cases = vec![
        Case::bearer(
            "FIPS mode: regional non-FIPS host",
            Denied(HostNotAllowed),
            &fips,
        ),
        Case::bearer("FIPS mode: global host", Denied(HostNotAllowed), &{
            let mut g = hand_signed(&alice());
            g.host = "sts.amazonaws.com";
            g.region = "us-east-1";
            g.post().to_iam_join_v1_token()
        }),
        Case::bearer("FIPS mode: FIPS host (control)", Admitted, &{
            let mut f = hand_signed(&alice());
            f.host = "sts-fips.us-west-2.amazonaws.com";
            f.post().to_iam_join_v1_token()
        }),
    ];
    run_cases(&h.layer, Some(&h.emulator), None, cases).await;
}

// ---------------------------------------------------------------------------------------------
// Malicious STS answers through a stub StsClient.
// ---------------------------------------------------------------------------------------------

struct StsCase {
    name: &'static str,
    status: u16,
    content_type: Option<&'static str>,
    body: String,
    expect: Expect,
}

fn sts(
    name: &'static str,
    status: u16,
    ct: Option<&'static str>,
    body: impl Into<String>,
    expect: Expect,
) -> StsCase {
    StsCase {
        name,
        status,
        content_type: ct,
        body: body.into(),
        expect,
    }
}

const XML: Option<&str> = Some("text/xml");
const JSON: Option<&str> = Some("application/json");

fn sts_answer_cases() -> Vec<StsCase> {
    let x = XML_NODE;
    let j = JSON_NODE;
    let unavailable = Denied(StsUnavailable);
    let rejected = Denied(StsRejected);
    let acct = "<Account>333333333333</Account>";
    let json_acct = r#""Account":"333333333333""#;
    let arn = "arn:aws:sts::333333333333:assumed-role/teleport-node-role/i-0abc123def4567890";
    let inner = x.trim_end();
    vec![
        sts("control: valid XML", 200, XML, x, Admitted),
        sts("control: valid JSON", 200, JSON, j, Admitted),
        sts("control: XML with a charset parameter", 200, Some("text/xml; charset=utf-8"), x, Admitted),
        sts("control: JSON as application/x-amz-json-1.1", 200, Some("application/x-amz-json-1.1"), j, Admitted),
        // JSON look-alikes.
        sts("JSON: truncated", 200, JSON, &j[..j.len() - 2], unavailable),
        sts("JSON: single quotes", 200, JSON, j.replace('"', "'"), unavailable),
        sts("JSON: with a comment", 200, JSON, format!("/* sts */{j}"), unavailable),
        sts("JSON: trailing comma", 200, JSON, j.replacen("}}}", ",}}}", 1), unavailable),
        sts("JSON: trailing garbage", 200, JSON, format!("{j}{j}"), unavailable),
        sts("JSON: byte order mark", 200, JSON, format!("\u{feff}{j}"), unavailable),
        sts("JSON: Account as a number", 200, JSON, j.replacen(json_acct, r#""Account":333333333333"#, 1), unavailable),
        sts("JSON: Account as an array", 200, JSON, j.replacen(json_acct, r#""Account":["333333333333"]"#, 1), unavailable),
        sts("JSON: case-variant key account", 200, JSON, j.replacen(r#""Account""#, r#""account""#, 1), unavailable),
        sts("JSON: duplicate Account (second in another account)", 200, JSON, j.replacen(json_acct, r#""Account":"333333333333","Account":"444444444444""#, 1), unavailable),
        sts("JSON: duplicate Account (first in another account)", 200, JSON, j.replacen(json_acct, r#""Account":"444444444444","Account":"333333333333""#, 1), unavailable),
        sts("JSON: duplicate Arn", 200, JSON, j.replacen(r#""Arn":"#, r#""Arn":"arn:aws:sts::333333333333:assumed-role/admin/x","Arn":"#, 1), unavailable),
        sts("JSON: duplicate result object", 200, JSON, j.replacen(r#""GetCallerIdentityResult":"#, r#""GetCallerIdentityResult":{"Account":"444444444444","Arn":"arn:aws:iam::444444444444:root","UserId":"x"},"GetCallerIdentityResult":"#, 1), unavailable),
        sts("JSON: empty Arn", 200, JSON, j.replacen(&format!(r#""Arn":"{arn}""#), r#""Arn":"""#, 1), unavailable),
        sts("JSON: empty UserId", 200, JSON, j.replacen(r#""UserId":"AROAEMULATORNODE00001:i-0abc123def4567890""#, r#""UserId":"""#, 1), unavailable),
        sts("JSON: UserId missing", 200, JSON, j.replacen(r#","UserId":"AROAEMULATORNODE00001:i-0abc123def4567890""#, "", 1), unavailable),
        sts("JSON: unknown field in the result", 200, JSON, j.replacen(json_acct, r#""Account":"333333333333","Admin":true"#, 1), unavailable),
        sts("JSON: Account ≠ the ARN's account", 200, JSON, j.replacen(json_acct, r#""Account":"111111111111""#, 1), unavailable),
        sts("JSON: answer wrapped in another object", 200, JSON, format!(r#"{{"Other":{j}}}"#), unavailable),
        sts("JSON: XML answer inside a JSON string (CVE-2020-16250)", 200, JSON, serde_json::json!({"Error": x}).to_string(), unavailable),
        sts("JSON body with an XML content type", 200, XML, j, unavailable),
        sts("XML body with a JSON content type", 200, JSON, x, unavailable),
        // XML inside other documents (CVE-2020-16250).
        sts("XML: answer inside an ErrorResponse", 200, XML, format!("<ErrorResponse>{inner}</ErrorResponse>"), unavailable),
        sts("XML: answer inside AssumeRoleResponse", 200, XML, format!("<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">{inner}</AssumeRoleResponse>"), unavailable),
        sts("XML: answer inside an HTML page", 200, XML, format!("<html><body>{inner}</body></html>"), unavailable),
        sts("XML: junk text before the root", 200, XML, format!("junk{x}"), unavailable),
        sts("XML: a second document after the root", 200, XML, format!("{x}{x}"), unavailable),
        sts("XML: text after the root", 200, XML, format!("{x}trailing"), unavailable),
        sts("XML: duplicate Account (second in another account)", 200, XML, x.replacen(acct, "<Account>333333333333</Account><Account>444444444444</Account>", 1), unavailable),
        sts("XML: duplicate Arn", 200, XML, x.replacen("<Arn>", "<Arn>arn:aws:iam::333333333333:root</Arn><Arn>", 1), unavailable),
        sts("XML: duplicate result element", 200, XML, x.replacen("<GetCallerIdentityResult>", "<GetCallerIdentityResult><Account>444444444444</Account><Arn>arn:aws:iam::444444444444:root</Arn><UserId>x</UserId></GetCallerIdentityResult><GetCallerIdentityResult>", 1), unavailable),
        sts("XML: empty Account", 200, XML, x.replacen(acct, "<Account></Account>", 1), unavailable),
        sts("XML: self-closing UserId", 200, XML, x.replacen("<UserId>AROAEMULATORNODE00001:i-0abc123def4567890</UserId>", "<UserId/>", 1), unavailable),
        sts("XML: Arn missing", 200, XML, x.replacen(&format!("<Arn>{arn}</Arn>"), "", 1), unavailable),
        sts("XML: Account ≠ the ARN's account", 200, XML, x.replacen(acct, "<Account>444444444444</Account>", 1), unavailable),
        sts("XML: Arn in another account than Account", 200, XML, x.replacen("arn:aws:sts::333333333333:", "arn:aws:sts::444444444444:", 1), unavailable),
        sts("XML: DOCTYPE with an internal entity (XXE)", 200, XML, format!("<!DOCTYPE r [<!ENTITY a \"333333333333\">]>{}", x.replacen(acct, "<Account>&a;</Account>", 1)), unavailable),
        sts("XML: external entity", 200, XML, format!("<!DOCTYPE r [<!ENTITY a SYSTEM \"file:///etc/passwd\">]>{x}"), unavailable),
        sts("XML: billion laughs", 200, XML, format!("<!DOCTYPE l [<!ENTITY l \"lol\"><!ENTITY l2 \"&l;&l;&l;&l;&l;&l;&l;&l;&l;&l;\"><!ENTITY l3 \"&l2;&l2;&l2;&l2;&l2;&l2;&l2;&l2;&l2;&l2;\">]>{}", x.replacen("<UserId>", "<UserId>&l3;", 1)), unavailable),
        sts("XML: CDATA Account", 200, XML, x.replacen(acct, "<Account><![CDATA[333333333333]]></Account>", 1), unavailable),
        sts("XML: attribute on Account", 200, XML, x.replacen(acct, "<Account real=\"444444444444\">333333333333</Account>", 1), unavailable),
        sts("XML: namespace-prefixed root", 200, XML, x.replacen("<GetCallerIdentityResponse xmlns=", "<sts:GetCallerIdentityResponse xmlns:sts=", 1).replacen("</GetCallerIdentityResponse>", "</sts:GetCallerIdentityResponse>", 1), unavailable),
        sts("XML: another namespace", 200, XML, x.replacen("https://sts.amazonaws.com/doc/2011-06-15/", "https://evil.example/", 1), unavailable),
        sts("XML: element nested inside Account", 200, XML, x.replacen(acct, "<Account><v>333333333333</v></Account>", 1), unavailable),
        sts("XML: Account padded with spaces", 200, XML, x.replacen(acct, "<Account> 333333333333 </Account>", 1), unavailable),
        sts("XML: processing instruction", 200, XML, x.replacen("<GetCallerIdentityResult>", "<GetCallerIdentityResult><?pi x?>", 1), unavailable),
        sts("XML: unknown entity", 200, XML, x.replacen("<UserId>", "<UserId>&foo;", 1), unavailable),
        sts("XML: newline character reference in Arn", 200, XML, x.replacen("i-0abc123def4567890</Arn>", "i-0abc123def4567890&#10;</Arn>", 1), unavailable),
        sts("XML: unknown element in the result", 200, XML, x.replacen(acct, "<Account>333333333333</Account><Admin>true</Admin>", 1), unavailable),
        // Identity cross-checks.
        sts("ARN in partition aws-cn from a commercial host", 200, XML, x.replace("arn:aws:sts::", "arn:aws-cn:sts::"), unavailable),
        sts("ARN in partition aws-us-gov from a commercial host", 200, JSON, j.replace("arn:aws:sts::", "arn:aws-us-gov:sts::"), unavailable),
        sts("ARN with a region", 200, XML, x.replace("arn:aws:sts::", "arn:aws:sts:us-west-2:"), unavailable),
        sts("ARN of an S3 bucket", 200, XML, x.replacen(arn, "arn:aws:s3:::333333333333", 1), unavailable),
        sts("Account of 13 digits", 200, JSON, j.replace("333333333333", "3333333333333"), unavailable),
        sts("assumed-role ARN without a session", 200, XML, x.replacen(arn, "arn:aws:sts::333333333333:assumed-role/teleport-node-role", 1), unavailable),
        // Content types and odd 200s.
        sts("200 without a content type", 200, None, x, unavailable),
        sts("200 text/html with the XML answer", 200, Some("text/html"), x, unavailable),
        sts("200 text/plain with the JSON answer", 200, Some("text/plain"), j, unavailable),
        sts("200 with two content types", 200, Some("application/json, text/xml"), j, unavailable),
        sts("200 with an ErrorResponse body", 200, XML, xml_error("AccessDenied"), unavailable),
        sts("200 with an empty body", 200, XML, "", unavailable),
        sts("200 over 64 KiB", 200, XML, format!("{x}{}", " ".repeat(70 * 1024)), unavailable),
        sts("204 No Content", 204, None, "", unavailable),
        sts("302 without following", 302, None, "", unavailable),
        sts("100 Continue as a final answer", 100, None, "", unavailable),
        // Errors.
        sts("403 SignatureDoesNotMatch", 403, XML, xml_error("SignatureDoesNotMatch"), rejected),
        sts("403 InvalidClientTokenId (JSON)", 403, JSON, json_error("InvalidClientTokenId"), rejected),
        sts("403 ExpiredToken", 403, XML, xml_error("ExpiredToken"), rejected),
        sts("403 AccessDenied", 403, XML, xml_error("AccessDenied"), rejected),
        sts("403 whose body is a valid identity", 403, XML, x, rejected),
        sts("403 without a body", 403, None, "", rejected),
        sts("400 IncompleteSignature", 400, XML, xml_error("IncompleteSignature"), rejected),
        sts("400 Throttling", 400, XML, xml_error("Throttling"), unavailable),
        sts("400 RequestThrottled (JSON)", 400, JSON, json_error("RequestThrottled"), unavailable),
        sts("408 Request Timeout", 408, None, "", unavailable),
        sts("429 Too Many Requests", 429, None, "", unavailable),
        sts("500 InternalFailure", 500, XML, xml_error("InternalFailure"), unavailable),
        sts("503 ServiceUnavailable", 503, None, "", unavailable),
        sts("503 whose body is a valid identity", 503, XML, x, unavailable),
    ]
}

#[tokio::test]
async fn malicious_sts_answers_map_to_their_code_and_are_cached_only_when_definitive() {
    let proof = post(&node());
    let cases = sts_answer_cases();
    let total = cases.len();
    let mut failures = Vec::new();
    for case in cases {
        let stub = StubSts::new(case.status, case.content_type, case.body);
        let layer = stub_layer(&stub);
        for round in 1..=2 {
            let r = get_with(&layer, "/app", Some(&proof)).await;
            let got = if r.status == StatusCode::OK {
                Admitted
            } else {
                ErrorCode::ALL
                    .iter()
                    .find(|c| c.as_str() == r.code())
                    .map_or(Denied(MissingProof), |c| Denied(*c))
            };
            if got != case.expect {
                failures.push(format!(
                    "{} (send {round}): expected {:?}, got {} {}",
                    case.name, case.expect, r.status, r.json
                ));
            }
            if let Denied(code) = case.expect {
                if r.status.as_u16() != code.http_status() {
                    failures.push(format!("{}: status {}", case.name, r.status));
                }
                if code.is_retryable() && !r.headers.contains_key("retry-after") {
                    failures.push(format!("{}: no Retry-After", case.name));
                }
            }
        }
        // Unavailable is never cached; a definitive answer (identity or rejection) is.
        let want = if case.expect == Denied(StsUnavailable) {
            2
        } else {
            1
        };
        if stub.calls() != want {
            failures.push(format!(
                "{}: STS called {} times for two sends, expected {want}",
                case.name,
                stub.calls()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures over {total} STS answers:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
    eprintln!("{total} STS answer cases passed");
}

#[tokio::test]
async fn transport_failures_are_sts_unavailable_and_never_cached() {
    let proof = post(&node());
    let emulator = sts_emulator::Emulator::start().await.unwrap();
    let redirect = |status: &str| {
        Crafted::Raw(http_response(
            status,
            &[
                ("location", &format!("{}/", emulator.url())),
                ("content-type", "text/xml"),
            ],
            b"",
        ))
    };
    let big = format!("{XML_NODE}{}", " ".repeat(70 * 1024));
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        drop(l);
        url
    };
    let cases: Vec<(&str, Option<Crafted>, Expect)> = vec![
        ("control: valid XML over the wire", Some(Crafted::Raw(http_response("200 OK", &[("content-type", "text/xml")], XML_NODE.as_bytes()))), Admitted),
        ("302 redirect to a real STS is not followed", Some(redirect("302 Found")), Denied(StsUnavailable)),
        ("301 redirect", Some(redirect("301 Moved Permanently")), Denied(StsUnavailable)),
        ("307 redirect", Some(redirect("307 Temporary Redirect")), Denied(StsUnavailable)),
        ("308 redirect", Some(redirect("308 Permanent Redirect")), Denied(StsUnavailable)),
        ("200 with a 70 KiB body", Some(Crafted::Raw(http_response("200 OK", &[("content-type", "text/xml")], big.as_bytes()))), Denied(StsUnavailable)),
        ("403 with a 70 KiB body", Some(Crafted::Raw(http_response("403 Forbidden", &[("content-type", "text/xml")], big.as_bytes()))), Denied(StsUnavailable)),
        ("chunked body over 64 KiB", Some(Crafted::Trickle {
            head: b"HTTP/1.1 200 OK\r\ncontent-type: text/xml\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_vec(),
            piece: format!("2000\r\n{}\r\n", " ".repeat(0x2000)).into_bytes(),
            every: Duration::from_millis(1),
            pieces: 10,
        }), Denied(StsUnavailable)),
        ("headers slower than the total timeout", Some(Crafted::Delay(Duration::from_secs(3), http_response("200 OK", &[("content-type", "text/xml")], XML_NODE.as_bytes()))), Denied(StsUnavailable)),
        ("body trickling past the total timeout", Some(Crafted::Trickle {
            head: format!("HTTP/1.1 200 OK\r\ncontent-type: text/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", XML_NODE.len()).into_bytes(),
            piece: b" ".to_vec(),
            every: Duration::from_millis(300),
            pieces: 8,
        }), Denied(StsUnavailable)),
        ("connection closed without an answer", Some(Crafted::Close), Denied(StsUnavailable)),
        ("answer that is not HTTP", Some(Crafted::Raw(b"HELLO\r\n\r\n".to_vec())), Denied(StsUnavailable)),
        ("body shorter than its content-length", Some(Crafted::Raw({
            let mut r = http_response("200 OK", &[("content-type", "text/xml")], XML_NODE.as_bytes());
            r.truncate(r.len() - 10);
            r
        })), Denied(StsUnavailable)),
        ("connection refused", None, Denied(StsUnavailable)),
    ];
    let total = cases.len();
    let mut failures = Vec::new();
    for (name, behavior, expect) in cases {
        let server = match behavior {
            Some(b) => Some(CraftedSts::start(b).await),
            None => None,
        };
        let url = server
            .as_ref()
            .map_or(refused.clone(), |s| s.url().to_owned());
        let layer = override_layer(&url);
        for round in 1..=2 {
            let r = get_with(&layer, "/app", Some(&proof)).await;
            let ok = match expect {
                Admitted => r.status == StatusCode::OK,
                Denied(code) => {
                    r.code() == code.as_str()
                        && r.status.as_u16() == code.http_status()
                        && r.headers.contains_key("retry-after")
                }
            };
            if !ok {
                failures.push(format!(
                    "{name} (send {round}): expected {expect:?}, got {} {}",
                    r.status, r.json
                ));
            }
        }
        if let Some(s) = &server {
            let want = if expect == Admitted { 1 } else { 2 };
            if s.calls() != want {
                failures.push(format!(
                    "{name}: {} requests reached the server for two sends, expected {want}",
                    s.calls()
                ));
            }
        }
    }
    assert_eq!(
        emulator.calls(),
        0,
        "a redirect was followed to the emulator"
    );
    assert!(
        failures.is_empty(),
        "{} failures over {total} transport cases:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
    eprintln!("{total} transport cases passed");
}

#[tokio::test]
async fn only_signed_headers_and_the_verifiers_own_binding_reach_sts() {
    let stub = StubSts::new(200, XML, XML_NODE);
    let layer = stub_layer(&stub);
    let token = reencode(&post(&node()), |r| {
        r.headers
            .push(("x-forwarded-for".into(), "10.0.0.1".into()));
        r.headers.push(("accept".into(), "text/html".into()));
        r.headers.push(("x-amz-target".into(), "AssumeRole".into()));
    });
    assert_eq!(
        get_with(&layer, "/app", Some(&token)).await.status,
        StatusCode::OK
    );
    let k8s =
        iam_join_client::k8s_token(&node().credentials(), REGION, AUDIENCE, SystemTime::now())
            .unwrap();
    assert_eq!(
        get_with(&layer, "/app", Some(&k8s)).await.status,
        StatusCode::OK
    );
    let seen = stub.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let names: Vec<&str> = seen[0].iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "authorization",
            "content-type",
            "x-amz-date",
            "x-amz-security-token",
            "x-iam-join-audience"
        ]
    );
    assert!(
        seen[0]
            .iter()
            .any(|(n, v)| n == "x-iam-join-audience" && v == AUDIENCE)
    );
    // The k8s token carries no header: the verifier supplies its own cluster id.
    assert_eq!(
        seen[1],
        vec![("x-k8s-aws-id".to_owned(), AUDIENCE.to_owned())]
    );
}

// ---------------------------------------------------------------------------------------------
// Cross-account confusion (CVE-2025-11621 class).
// ---------------------------------------------------------------------------------------------

/// Waits (boundedly) until the cache reports `n` entries; moka counts lazily, so each round
/// re-sends `tokens` (cache hits) to let it run its pending work.
async fn cache_entries_settle(layer: &IamJoinLayer, tokens: &[&str], n: u64) -> u64 {
    for _ in 0..50 {
        if layer.verifier().cache_entries() == n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        for t in tokens {
            get_with(layer, "/app", Some(t)).await;
        }
    }
    layer.verifier().cache_entries()
}

#[tokio::test]
async fn same_role_in_two_accounts_never_shares_a_cache_entry_or_a_decision() {
    let h = harness(|b| b).await;
    let (a, b) = (node(), other_account());
    assert_eq!(
        a.arn.split_once(":assumed-role/").unwrap().1,
        b.arn.split_once(":assumed-role/").unwrap().1
    );
    let p333 = post(&a);
    let p444 = post(&b);

    let r = get_with(&h.layer, "/app", Some(&p333)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.account(), Some("333333333333"));
    let r = get_with(&h.layer, "/app", Some(&p444)).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "not_allowed"),
        "{}",
        r.json
    );
    assert!(r.message().contains("444444444444"), "{}", r.message());
    assert_eq!(
        h.emulator.calls(),
        2,
        "the second account's proof must be its own STS call"
    );

    // Again, from the cache: each proof keeps its own answer.
    for _ in 0..3 {
        assert_eq!(
            get_with(&h.layer, "/app", Some(&p333)).await.account(),
            Some("333333333333")
        );
        assert_eq!(
            get_with(&h.layer, "/app", Some(&p444)).await.code(),
            "not_allowed"
        );
    }
    assert_eq!(h.emulator.calls(), 2);
    assert_eq!(cache_entries_settle(&h.layer, &[&p333, &p444], 2).await, 2);

    // whoami names the right account for each.
    let w = get_with(&h.layer, "/v1/iam-join/whoami", Some(&p333)).await;
    assert_eq!(w.json["account"], "333333333333");
}

#[tokio::test]
async fn denial_of_the_other_account_first_does_not_deny_the_allowed_one() {
    let h = harness(|b| b).await;
    let p444 = post(&other_account());
    let p333 = post(&node());
    assert_eq!(
        get_with(&h.layer, "/app", Some(&p444)).await.code(),
        "not_allowed"
    );
    let r = get_with(&h.layer, "/app", Some(&p333)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.account(), Some("333333333333"));
    assert_eq!(
        get_with(&h.layer, "/app", Some(&p444)).await.code(),
        "not_allowed"
    );
    assert_eq!(h.emulator.calls(), 2);
    assert_eq!(cache_entries_settle(&h.layer, &[&p333, &p444], 2).await, 2);
}

#[tokio::test]
async fn concurrent_proofs_of_two_accounts_are_never_coalesced_together() {
    let h = harness(|b| b).await;
    h.emulator.set_latency(Duration::from_millis(100));
    let p333 = Arc::new(post(&node()));
    let p444 = Arc::new(post(&other_account()));
    let presigned333 = Arc::new(get(&node()));
    let presigned444 = Arc::new(get(&other_account()));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let layer = h.layer.clone();
        let (t, allowed) = match i % 4 {
            0 => (Arc::clone(&p333), true),
            1 => (Arc::clone(&p444), false),
            2 => (Arc::clone(&presigned333), true),
            _ => (Arc::clone(&presigned444), false),
        };
        tasks.spawn(async move {
            let r = get_with(&layer, "/app", Some(&t)).await;
            (
                allowed,
                r.status,
                r.account().map(str::to_owned),
                r.code().to_owned(),
            )
        });
    }
    while let Some(res) = tasks.join_next().await {
        let (allowed, status, account, code) = res.unwrap();
        if allowed {
            assert_eq!(
                (status, account.as_deref()),
                (StatusCode::OK, Some("333333333333"))
            );
        } else {
            assert_eq!(
                (status, code.as_str()),
                (StatusCode::FORBIDDEN, "not_allowed")
            );
        }
    }
    assert_eq!(h.emulator.calls(), 4, "one STS call per distinct proof");
}

#[tokio::test]
async fn a_token_allowing_only_the_other_account_admits_only_it() {
    // The mirror image: a policy naming 444444444444 and the same role ARN pattern.
    let policy = iam_join_core::policy::TokenPolicy::from_yaml_str(
        r#"
kind: token
version: v2
metadata:
  name: iam-token
spec:
  roles: [Node]
  join_method: iam
  allow:
    - aws_account: "444444444444"
      aws_arn: "arn:aws:sts::*:assumed-role/teleport-node-role/*"
"#,
        "mirror",
    )
    .unwrap();
    let h = harness(|b| b.policy(policy)).await;
    let p333 = post(&node());
    let p444 = post(&other_account());
    assert_eq!(
        get_with(&h.layer, "/app", Some(&p444)).await.account(),
        Some("444444444444")
    );
    assert_eq!(
        get_with(&h.layer, "/app", Some(&p333)).await.code(),
        "not_allowed"
    );
    assert_eq!(
        get_with(&h.layer, "/app", Some(&p444)).await.account(),
        Some("444444444444")
    );
    assert_eq!(h.emulator.calls(), 2);
}

// ---------------------------------------------------------------------------------------------
// Findings of the corpus (issue 7 report). Each test below failed against the verifier as first
// reviewed; it states the behaviour DESIGN asks for.
// ---------------------------------------------------------------------------------------------

/// A presigned query holding bytes that are not legal in a URI query (RFC 3986) can never be
/// sent as signed: DESIGN §4 "nothing reaches STS that could not succeed". Some (space, `"`,
/// `<`, `>`) made the STS client fail to build the request, so the caller got a retryable
/// `sts_unavailable` 503 (and an STS "error" metric) for a malformed proof; others (`é`, `{`,
/// `|`, `^`, `` ` ``, `\`, `[`, `]`) were sent to STS and came back `sts_rejected`.
#[tokio::test]
async fn query_bytes_illegal_in_a_uri_are_malformed_not_sent_to_sts() {
    let h = harness(|b| b).await;
    let g = get(&node());
    let cases = [
        " ", "\"", "<", ">", "\u{e9}", "{", "}", "|", "^", "`", "\\", "[", "]",
    ]
    .iter()
    .map(|c| {
        let t = map_url(&g, |u| {
            u.replacen(
                "X-Amz-Security-Token=",
                &format!("X-Amz-Security-Token={c}"),
                1,
            )
        });
        Case::bearer(
            format!("raw {c:?} in the presigned query"),
            Denied(MalformedProof),
            &t,
        )
    })
    .collect();
    run_cases(&h.layer, Some(&h.emulator), None, cases).await;
}

/// Signed headers whose signed value can never verify, or that change how the request is
/// framed, are malformed (no STS call). A signed `content-length` equal to the body's length
/// is fine: Vault's and aws-sdk-go's proofs sign it. (The `content-length` cases were fixed in
/// ef8756e while this corpus was written; `authorization` in SignedHeaders is still open.)
#[tokio::test]
async fn signed_framing_headers_that_cannot_verify_are_malformed() {
    let h = harness(|b| b).await;
    let signed_with = |extra: (&'static str, &'static str)| {
        let mut s = hand_signed(&alice());
        s.headers.push(extra);
        s.headers.sort_unstable();
        s.post().to_iam_join_v1_token()
    };
    let cases = vec![
        // Hyper sent 43 bytes under `content-length: 100`; STS waited for the rest until the
        // verifier's total timeout: a retryable 503 after holding an STS connection.
        Case::bearer(
            "signed content-length larger than the body",
            Denied(MalformedProof),
            &signed_with(("content-length", "100")),
        ),
        Case::bearer(
            "signed content-length smaller than the body",
            Denied(MalformedProof),
            &signed_with(("content-length", "10")),
        ),
        Case::bearer(
            "signed content-length that is not a number",
            Denied(MalformedProof),
            &signed_with(("content-length", "43x")),
        ),
        // `authorization` cannot cover itself; it was forwarded twice and STS refused.
        Case::bearer(
            "authorization listed in SignedHeaders",
            Denied(MalformedProof),
            &map_auth(&post(&alice()), |v| {
                v.replacen(
                    "SignedHeaders=content-type",
                    "SignedHeaders=authorization;content-type",
                    1,
                )
            }),
        ),
        Case::bearer(
            "control: signed content-length equal to the body (Vault's form)",
            Admitted,
            &signed_with(("content-length", "43")),
        ),
    ];
    run_cases(&h.layer, Some(&h.emulator), None, cases).await;
}

/// DESIGN §4 step 11: "the proof (its carrier header) is never forwarded". With a proof in
/// `X-IAM-Join-Proof` and another in `Authorization: Bearer`, the layer verified the first and
/// forwarded the second to the upstream, which could replay it to any verifier of this audience
/// for up to 15 minutes. Either refusing the request (two proofs, as for two bearer proofs) or
/// stripping every proof-carrying `Authorization` value is acceptable.
#[tokio::test]
async fn no_proof_is_ever_forwarded_upstream() {
    let h = harness(|b| b).await;
    let alice_proof = post(&alice());
    let bob_proof = post(&bob());
    for (name, bearer) in [
        ("the same proof", &alice_proof),
        ("another identity's proof", &bob_proof),
    ] {
        let req = request("/app", Some(bearer))
            .header("x-iam-join-proof", &alice_proof)
            .body(Full::default())
            .unwrap();
        let r = send(&h.layer, req).await;
        if r.status == StatusCode::OK {
            let leaked: Vec<String> = r.json["headers"]
                .as_object()
                .unwrap()
                .iter()
                .filter(|(_, v)| {
                    let v = v.as_str().unwrap_or("");
                    v.contains("iam-join-v1.") || v.contains("k8s-aws-v1.")
                })
                .map(|(n, _)| n.clone())
                .collect();
            assert!(
                leaked.is_empty(),
                "{name}: the upstream received a proof in {leaked:?}"
            );
        } else {
            assert_eq!(r.code(), "malformed_proof", "{name}: {}", r.json);
        }
    }
}

/// Public and challenge paths are matched on the raw request path, so a path that an upstream
/// normalises (RFC 3986 dot segments, percent-encoded unreserved characters, merged slashes) into
/// another route skipped verification (`/public/../admin` reached the inner service without a
/// proof) or the challenge requirement (`/./join` admitted an audience-bound proof). A path that
/// is not in normal form must never be public, and must be matched against the challenge paths in
/// its normal form.
#[tokio::test]
async fn non_canonical_paths_never_skip_verification_or_the_challenge() {
    let h = harness(|b| {
        b.public_paths(["/public/*", "/healthz"])
            .challenge_paths(["/join"])
    })
    .await;
    let audience_proof = post(&alice());
    let no_proof = |path: &str| Case {
        name: format!("public path trick {path}"),
        expect: Denied(MissingProof),
        req: request(path, None).body(Full::default()).unwrap(),
    };
    let mut cases = vec![
        no_proof("/public/../admin"),
        no_proof("/public/%2e%2e/admin"),
        no_proof("/public/%2E%2E/admin"),
        no_proof("/public/.%2e/admin"),
        no_proof("/public/..%2fadmin"),
        no_proof("/public/..%5cadmin"),
        no_proof("/healthz/../admin"),
    ];
    for path in [
        "/./join",
        "/join/.",
        "/x/../join",
        "/%6aoin",
        "/%6Aoin",
        "//join",
    ] {
        cases.push(Case::at(
            path,
            format!("challenge path trick {path}"),
            Denied(BindingMissing),
            &audience_proof,
        ));
    }
    cases.push(Case {
        name: "control: a public path passes without a proof".into(),
        expect: Admitted,
        req: request("/public/logo.png", None)
            .body(Full::default())
            .unwrap(),
    });
    run_cases(&h.layer, Some(&h.emulator), None, cases).await;
}
