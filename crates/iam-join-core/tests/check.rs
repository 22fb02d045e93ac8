//! Local checks on proofs really signed with aws-sigv4 (DESIGN §4 steps 1-6).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use base64::Engine as _;
use iam_join_core::challenge::{ChallengeKey, issue_challenge};
use iam_join_core::check::{ProofRules, check_proof, check_request};
use iam_join_core::token::{ProofFormat, RawSignedRequest, decode_proof_token};
use iam_join_core::{Binding, ErrorCode, SigningForm};
use iam_join_testkit::sign::HandSigned;
use time::OffsetDateTime;

const AUDIENCE: &str = "test-cluster";

fn creds(session: bool) -> Credentials {
    Credentials::new(
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        session.then(|| "FwoGZXIvYXdzEXAMPLESESSIONTOKEN".to_owned()),
        None,
        "test",
    )
}

fn key() -> ChallengeKey {
    ChallengeKey::from_bytes(&[42u8; 32]).unwrap()
}

fn rules() -> ProofRules {
    ProofRules {
        audience: Some(AUDIENCE.to_owned()),
        challenge_key: Some(key()),
        ..ProofRules::default()
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// A signed POST proof bound by `binding` (header name, value).
fn signed_post(
    host: &str,
    region: &str,
    binding: (&str, &str),
    at: SystemTime,
    session: bool,
) -> RawSignedRequest {
    let mut signer = HandSigned::new(creds(session), AUDIENCE).bound_by(binding);
    signer.host = host;
    signer.region = region;
    signer.at = at;
    signer.post()
}

fn presigned_url(
    host: &str,
    region: &str,
    binding: (&str, &str),
    at: SystemTime,
    expires: u64,
) -> String {
    let mut signer = HandSigned::new(creds(true), AUDIENCE);
    signer.host = host;
    signer.region = region;
    signer.headers = vec![binding];
    signer.at = at;
    signer.presign(expires).url
}

fn presigned_get(host: &str, region: &str, at: SystemTime, expires: u64) -> RawSignedRequest {
    let binding = ("x-iam-join-audience", AUDIENCE);
    RawSignedRequest {
        format: ProofFormat::IamJoinV1,
        method: "GET".into(),
        url: presigned_url(host, region, binding, at, expires),
        headers: vec![(binding.0.into(), binding.1.into())],
        body: String::new(),
    }
}

fn audience_post() -> RawSignedRequest {
    signed_post(
        "sts.us-west-2.amazonaws.com",
        "us-west-2",
        ("x-iam-join-audience", AUDIENCE),
        SystemTime::now(),
        true,
    )
}

fn code_of(raw: &RawSignedRequest) -> ErrorCode {
    check_request(raw, &rules(), now()).unwrap_err().code()
}

#[test]
fn signed_post_with_audience_passes_local_checks() {
    let raw = audience_post();
    let token = raw.to_iam_join_v1_token();
    let checked = check_proof(&token, &rules(), now()).unwrap();
    assert_eq!(checked.form(), SigningForm::SignedPost);
    assert_eq!(checked.region(), "us-west-2");
    assert_eq!(checked.binding(), &Binding::Audience);
    let names: Vec<&str> = checked.headers().iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"authorization"));
    assert!(names.contains(&"x-amz-security-token"));
    assert!(names.contains(&"x-iam-join-audience"));
    assert!(!names.contains(&"host"));
    assert!(checked.expires_at() <= checked.signed_at() + time::Duration::minutes(15));
}

#[test]
fn presigned_get_with_audience_passes_local_checks() {
    let raw = presigned_get(
        "sts.us-west-2.amazonaws.com",
        "us-west-2",
        SystemTime::now(),
        300,
    );
    let checked = check_request(&raw, &rules(), now()).unwrap();
    assert_eq!(checked.form(), SigningForm::PresignedGet);
    assert!(
        checked
            .path_and_query()
            .starts_with("/?Action=GetCallerIdentity")
    );
    assert!(checked.expires_at() <= checked.signed_at() + time::Duration::seconds(300));
}

#[test]
fn k8s_token_binds_to_the_verifier_audience() {
    let url = presigned_url(
        "sts.us-west-2.amazonaws.com",
        "us-west-2",
        ("x-k8s-aws-id", AUDIENCE),
        SystemTime::now(),
        60,
    );
    let token = format!(
        "k8s-aws-v1.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(url)
    );
    let checked = check_proof(&token, &rules(), now()).unwrap();
    assert!(
        checked
            .headers()
            .iter()
            .any(|(n, v)| n == "x-k8s-aws-id" && v == AUDIENCE)
    );
}

#[test]
fn challenge_bound_post_passes_and_carries_claims() {
    let challenge = issue_challenge(&key(), [9; 16], now());
    let raw = signed_post(
        "sts.amazonaws.com",
        "us-east-1",
        ("x-teleport-challenge", &challenge),
        SystemTime::now(),
        false,
    );
    let checked = check_request(&raw, &rules(), now()).unwrap();
    assert!(matches!(checked.binding(), Binding::Challenge(c) if c.replay_id() == hex_of([9; 16])));
}

fn hex_of(b: [u8; 16]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn look_alike_hosts_are_not_allowed() {
    for host in [
        "sts.amazonaws.com.evil.example",
        "sts.us-west-2.example.com",
        "evil.us-west-2.amazonaws.com",
        "sts.not-a-region.amazonaws.com",
        "STS.US-WEST-2.AMAZONAWS.COM",
        "sts.us-west-2.amazonaws.com.",
        "sts.us-west-2.amazonaws.com:443",
        "user@sts.us-west-2.amazonaws.com",
        "user:pw@sts.us-west-2.amazonaws.com",
    ] {
        let mut raw = audience_post();
        raw.url = format!("https://{host}/");
        assert_eq!(code_of(&raw), ErrorCode::HostNotAllowed, "{host}");
    }
}

#[test]
fn fips_mode_rejects_a_non_fips_proof() {
    let raw = audience_post();
    let mut r = rules();
    r.hosts = r.hosts.fips_only(true);
    assert_eq!(
        check_request(&raw, &r, now()).unwrap_err().code(),
        ErrorCode::HostNotAllowed
    );
}

#[test]
fn url_shape_is_strict() {
    for url in [
        "http://sts.us-west-2.amazonaws.com/",
        "https://sts.us-west-2.amazonaws.com",
        "https://sts.us-west-2.amazonaws.com/x",
        "https://sts.us-west-2.amazonaws.com//",
        "https://sts.us-west-2.amazonaws.com/#frag",
        "https://sts.us-west-2.amazonaws.com/?Action=GetCallerIdentity",
    ] {
        let mut raw = audience_post();
        raw.url = url.to_owned();
        assert_eq!(code_of(&raw), ErrorCode::MalformedProof, "{url}");
    }
}

#[test]
fn body_variants_are_wrong_action() {
    for body in [
        "Version=2011-06-15&Action=GetCallerIdentity",
        "Action=GetCallerIdentity&Version=2011-06-15&Extra=1",
        "Action=GetCallerIdentity&Version=2011-06-15\n",
        "",
        "Action=AssumeRole&Version=2011-06-15",
        "%41ction=GetCallerIdentity&Version=2011-06-15",
        "Action=GetCallerIdentity&Version=2011-06-15\0",
    ] {
        let mut raw = audience_post();
        raw.body = body.to_owned();
        assert_eq!(code_of(&raw), ErrorCode::WrongAction, "{body:?}");
    }
}

#[test]
fn case_variant_duplicate_credential_is_rejected() {
    let mut raw = presigned_get(
        "sts.us-west-2.amazonaws.com",
        "us-west-2",
        SystemTime::now(),
        300,
    );
    raw.url
        .push_str("&x-amz-credential=AKIAEVIL%2F20261123%2Fus-west-2%2Fsts%2Faws4_request");
    let e = check_request(&raw, &rules(), now()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::MalformedProof);
    assert!(e.message().contains("more than once"), "{e}");
}

#[test]
fn exact_duplicate_and_encoded_parameters_are_rejected() {
    let base = presigned_get(
        "sts.us-west-2.amazonaws.com",
        "us-west-2",
        SystemTime::now(),
        300,
    );
    let mut dup = base.clone();
    dup.url.push_str("&Action=GetCallerIdentity");
    assert_eq!(code_of(&dup), ErrorCode::MalformedProof);
    let mut enc = base.clone();
    enc.url = enc.url.replacen("Action=", "%41ction=", 1);
    assert_ne!(check_request(&enc, &rules(), now()).map(|_| ()), Ok(()));
    let mut other = base;
    other.url.push_str("&Foo=bar");
    assert_eq!(code_of(&other), ErrorCode::WrongAction);
}

#[test]
fn other_action_in_query_is_wrong_action() {
    let mut raw = presigned_get(
        "sts.us-west-2.amazonaws.com",
        "us-west-2",
        SystemTime::now(),
        300,
    );
    raw.url = raw
        .url
        .replace("Action=GetCallerIdentity", "Action=AssumeRole");
    assert_eq!(code_of(&raw), ErrorCode::WrongAction);
}

#[test]
fn proof_twenty_minutes_old_is_expired() {
    let raw = signed_post(
        "sts.us-west-2.amazonaws.com",
        "us-west-2",
        ("x-iam-join-audience", AUDIENCE),
        SystemTime::now() - Duration::from_secs(20 * 60),
        true,
    );
    assert_eq!(code_of(&raw), ErrorCode::ProofExpired);
}

#[test]
fn future_dated_proof_is_expired() {
    let raw = signed_post(
        "sts.us-west-2.amazonaws.com",
        "us-west-2",
        ("x-iam-join-audience", AUDIENCE),
        SystemTime::now() + Duration::from_secs(10 * 60),
        true,
    );
    assert_eq!(code_of(&raw), ErrorCode::ProofExpired);
}

#[test]
fn presigned_proof_past_its_expiry_is_expired() {
    let raw = presigned_get(
        "sts.us-west-2.amazonaws.com",
        "us-west-2",
        SystemTime::now() - Duration::from_secs(120),
        60,
    );
    assert_eq!(code_of(&raw), ErrorCode::ProofExpired);
}

#[test]
fn presign_expiry_out_of_range_is_malformed() {
    for (from, to) in [
        ("X-Amz-Expires=300", "X-Amz-Expires=901"),
        ("X-Amz-Expires=300", "X-Amz-Expires=0"),
        ("X-Amz-Expires=300", "X-Amz-Expires=-5"),
        ("X-Amz-Expires=300", "X-Amz-Expires=3e2"),
    ] {
        let mut raw = presigned_get(
            "sts.us-west-2.amazonaws.com",
            "us-west-2",
            SystemTime::now(),
            300,
        );
        raw.url = raw.url.replace(from, to);
        assert_eq!(code_of(&raw), ErrorCode::MalformedProof, "{to}");
    }
}

#[test]
fn scope_region_must_be_the_host_region() {
    let raw = signed_post(
        "sts.us-west-2.amazonaws.com",
        "us-east-1",
        ("x-iam-join-audience", AUDIENCE),
        SystemTime::now(),
        true,
    );
    let e = check_request(&raw, &rules(), now()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::MalformedProof);
    assert!(e.message().contains("region"));
}

#[test]
fn scope_service_must_be_sts() {
    let mut raw = audience_post();
    for (n, v) in raw.headers.iter_mut() {
        if n == "authorization" {
            *v = v.replace("/sts/aws4_request", "/iam/aws4_request");
        }
    }
    let e = check_request(&raw, &rules(), now()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::MalformedProof);
    assert!(e.message().contains("service"));
}

#[test]
fn unsigned_binding_header_is_binding_missing() {
    let mut raw = signed_post(
        "sts.us-west-2.amazonaws.com",
        "us-west-2",
        ("x-unrelated", "1"),
        SystemTime::now(),
        true,
    );
    assert_eq!(code_of(&raw), ErrorCode::BindingMissing);
    raw.headers
        .push(("x-iam-join-audience".into(), AUDIENCE.into()));
    let e = check_request(&raw, &rules(), now()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::BindingMissing);
    assert!(e.message().contains("not signed"));
}

#[test]
fn audience_of_another_verifier_is_a_mismatch() {
    let raw = signed_post(
        "sts.us-west-2.amazonaws.com",
        "us-west-2",
        ("x-iam-join-audience", "other-cluster"),
        SystemTime::now(),
        true,
    );
    assert_eq!(code_of(&raw), ErrorCode::AudienceMismatch);
}

#[test]
fn forged_challenge_is_invalid() {
    let other = ChallengeKey::from_bytes(&[1u8; 32]).unwrap();
    let challenge = issue_challenge(&other, [9; 16], now());
    let raw = signed_post(
        "sts.amazonaws.com",
        "us-east-1",
        ("x-teleport-challenge", &challenge),
        SystemTime::now(),
        false,
    );
    assert_eq!(code_of(&raw), ErrorCode::ChallengeInvalid);
}

#[test]
fn missing_signed_header_is_malformed() {
    let mut raw = audience_post();
    raw.headers.retain(|(n, _)| n != "content-type");
    assert_eq!(code_of(&raw), ErrorCode::MalformedProof);
}

#[test]
fn unsigned_extra_headers_are_dropped_not_rejected() {
    let mut raw = audience_post();
    raw.headers
        .push(("x-forwarded-for".into(), "1.2.3.4".into()));
    let checked = check_request(&raw, &rules(), now()).unwrap();
    assert!(
        checked
            .headers()
            .iter()
            .all(|(n, _)| n != "x-forwarded-for")
    );
}

#[test]
fn cache_key_depends_on_every_signed_byte() {
    let a = check_request(&audience_post(), &rules(), now()).unwrap();
    let again = check_request(&audience_post(), &rules(), now()).unwrap();
    let b = check_request(
        &signed_post(
            "sts.us-west-2.amazonaws.com",
            "us-west-2",
            ("x-iam-join-audience", AUDIENCE),
            SystemTime::now(),
            false,
        ),
        &rules(),
        now(),
    )
    .unwrap();
    assert_ne!(a.cache_key(), b.cache_key());
    // Same signing second and inputs give the same signature, hence the same key.
    if a.signed_at() == again.signed_at() {
        assert_eq!(a.cache_key(), again.cache_key());
    }
}

#[test]
fn debug_output_never_contains_signature_or_session_token() {
    let raw = audience_post();
    let checked = check_request(&raw, &rules(), now()).unwrap();
    let text = format!("{raw:?} {checked:?}");
    assert!(!text.contains("Signature="));
    assert!(!text.contains("FwoGZXIvYXdzEXAMPLESESSIONTOKEN"));
    let decoded = decode_proof_token(&raw.to_iam_join_v1_token()).unwrap();
    assert!(!format!("{decoded:?}").contains("Signature="));
}

#[test]
fn signed_connection_level_headers_are_malformed() {
    for header in ["transfer-encoding", "connection", "upgrade", "te"] {
        let raw = signed_post(
            "sts.us-west-2.amazonaws.com",
            "us-west-2",
            ("x-iam-join-audience", AUDIENCE),
            SystemTime::now(),
            true,
        );
        // Re-sign with the extra header to make it part of SignedHeaders.
        let mut signer = HandSigned::new(creds(true), AUDIENCE);
        signer.headers.push((header, "chunked"));
        let mut r = raw.clone();
        r.headers = signer.post().headers;
        let e = check_request(&r, &rules(), now()).unwrap_err();
        assert_eq!(e.code(), ErrorCode::MalformedProof, "{header}");
        assert!(e.message().contains(header), "{e}");
    }
}

/// `raw` with an unsigned `x-padding` header of `len` bytes, encoded.
fn padded_token(raw: &RawSignedRequest, len: usize) -> String {
    let mut padded = raw.clone();
    padded.headers.push(("x-padding".into(), "p".repeat(len)));
    padded.to_iam_join_v1_token()
}

/// Issue 10 finding 7: an unsigned header over 8 KiB was refused as "not a valid HTTP header
/// value". Unsigned headers are dropped, never a reason to reject (DESIGN §3).
#[test]
fn unsigned_header_over_8_kib_is_dropped_not_rejected() {
    let raw = audience_post();
    for len in [8 * 1024 + 1, 9 * 1024, 10 * 1024] {
        let token = padded_token(&raw, len);
        assert!(token.len() <= iam_join_core::token::MAX_PROOF_TOKEN_BYTES);
        let checked = check_proof(&token, &rules(), now()).unwrap();
        assert!(
            checked.headers().iter().all(|(n, _)| n != "x-padding"),
            "unsigned header sent to STS"
        );
        assert_eq!(
            checked.cache_key(),
            check_request(&raw, &rules(), now()).unwrap().cache_key()
        );
    }
}

/// The 16 KiB limit is inclusive; past it the message says the token is too long.
#[test]
fn token_of_exactly_16_kib_passes_and_a_longer_one_is_too_long() {
    let limit = iam_join_core::token::MAX_PROOF_TOKEN_BYTES;
    let raw = audience_post();
    let base = padded_token(&raw, 0).len();
    // Each padding byte adds 4/3 of a base64 character: search the few lengths around the limit.
    let exact = (((limit - base) * 3 / 4).saturating_sub(8)..(limit - base) * 3 / 4 + 8)
        .map(|len| padded_token(&raw, len))
        .find(|t| t.len() == limit)
        .expect("some padding makes the token exactly 16 KiB");
    check_proof(&exact, &rules(), now()).unwrap();

    let over = (0..8)
        .map(|extra| padded_token(&raw, (limit - base) * 3 / 4 + extra))
        .find(|t| t.len() > limit)
        .unwrap();
    let e = check_proof(&over, &rules(), now()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::MalformedProof);
    assert!(e.message().contains("too long"), "{e}");
}
