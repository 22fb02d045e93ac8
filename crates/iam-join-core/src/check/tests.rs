//! One table per step of `check_request`. The proofs here are built by hand with a placeholder
//! signature: the local checks look at shape only (STS checks signatures), and
//! `tests/check.rs` runs the whole pipeline on proofs really signed with aws-sigv4.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::challenge::issue_challenge;

const SIG: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const AUDIENCE: &str = "test-cluster";
const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";

fn now() -> OffsetDateTime {
    // Whole seconds, as X-Amz-Date has no fractions.
    OffsetDateTime::now_utc().replace_nanosecond(0).unwrap()
}

fn key() -> ChallengeKey {
    ChallengeKey::from_bytes(&[7u8; 32]).unwrap()
}

fn rules() -> ProofRules {
    ProofRules {
        audience: Some(AUDIENCE.to_owned()),
        challenge_key: Some(key()),
        ..ProofRules::default()
    }
}

fn scope(at: OffsetDateTime, region: &str) -> String {
    format!(
        "{KEY_ID}/{}/{region}/sts/aws4_request",
        &format_amz_date(at)[..8]
    )
}

/// A signed POST to `sts.us-west-2.amazonaws.com`, audience-bound, signed at `at`.
fn post_at(at: OffsetDateTime) -> RawSignedRequest {
    let signed = "content-type;host;x-amz-date;x-iam-join-audience";
    RawSignedRequest {
        format: ProofFormat::IamJoinV1,
        method: "POST".into(),
        url: "https://sts.us-west-2.amazonaws.com/".into(),
        headers: vec![
            (
                "authorization".into(),
                format!(
                    "{ALGORITHM} Credential={}, SignedHeaders={signed}, Signature={SIG}",
                    scope(at, "us-west-2")
                ),
            ),
            (
                "content-type".into(),
                "application/x-www-form-urlencoded; charset=utf-8".into(),
            ),
            ("x-amz-date".into(), format_amz_date(at)),
            (AUDIENCE_HEADER.into(), AUDIENCE.into()),
        ],
        body: GET_CALLER_IDENTITY_BODY.into(),
    }
}

fn post() -> RawSignedRequest {
    post_at(now())
}

fn auth_of(raw: &RawSignedRequest) -> AuthParams {
    let url = split_url(&raw.url).unwrap();
    auth_params(raw, signing_form(raw).unwrap(), url.query).unwrap()
}

fn auth(signed: &[&str], date: &str, expires_secs: Option<u64>) -> AuthParams {
    AuthParams {
        credential: format!("{KEY_ID}/{}/us-west-2/sts/aws4_request", &date[..8]),
        signed_headers: signed.iter().map(|s| (*s).to_owned()).collect(),
        date: date.to_owned(),
        expires_secs,
    }
}

fn us_west_2() -> StsHost {
    StsHostAllowList::new()
        .resolve("sts.us-west-2.amazonaws.com")
        .unwrap()
        .clone()
}

#[test]
fn signing_form_follows_method_and_format() {
    let cases = [
        (ProofFormat::IamJoinV1, "POST", Ok(SigningForm::SignedPost)),
        (ProofFormat::IamJoinV1, "GET", Ok(SigningForm::PresignedGet)),
        (ProofFormat::K8sAwsV1, "GET", Ok(SigningForm::PresignedGet)),
        (
            ProofFormat::K8sAwsV1,
            "POST",
            Err(ErrorCode::MalformedProof),
        ),
        (
            ProofFormat::IamJoinV1,
            "post",
            Err(ErrorCode::MalformedProof),
        ),
        (
            ProofFormat::IamJoinV1,
            "PUT",
            Err(ErrorCode::MalformedProof),
        ),
        (ProofFormat::IamJoinV1, "", Err(ErrorCode::MalformedProof)),
    ];
    for (format, method, want) in cases {
        let raw = RawSignedRequest {
            format,
            method: method.into(),
            ..post()
        };
        assert_eq!(
            signing_form(&raw).map_err(|e| e.code()),
            want,
            "{format:?} {method}"
        );
    }
}

#[test]
fn split_url_accepts_only_https_root_urls() {
    let ok = [
        ("https://sts.amazonaws.com/", "sts.amazonaws.com", None),
        ("https://h/?a=b", "h", Some("a=b")),
        ("https://h/?", "h", Some("")),
    ];
    for (url, host, query) in ok {
        let split = split_url(url).unwrap();
        assert_eq!((split.host, split.query), (host, query), "{url}");
    }
    let bad = [
        ("http://sts.amazonaws.com/", ErrorCode::MalformedProof),
        ("https://sts.amazonaws.com", ErrorCode::MalformedProof),
        ("https://sts.amazonaws.com/x", ErrorCode::MalformedProof),
        ("https://sts.amazonaws.com//", ErrorCode::MalformedProof),
        ("https://sts.amazonaws.com/#f", ErrorCode::MalformedProof),
        ("https://sts.amazonaws.com/?a#f", ErrorCode::MalformedProof),
        ("https://u@sts.amazonaws.com/", ErrorCode::HostNotAllowed),
        ("https://sts.amazonaws.com:443/", ErrorCode::HostNotAllowed),
        ("https:///", ErrorCode::HostNotAllowed),
        ("", ErrorCode::MalformedProof),
    ];
    for (url, code) in bad {
        assert_eq!(
            split_url(url).map(|_| ()).unwrap_err().code(),
            code,
            "{url}"
        );
    }
}

#[test]
fn allowed_host_is_the_allow_list() {
    let hosts = StsHostAllowList::new();
    assert_eq!(
        allowed_host(&hosts, "sts.us-west-2.amazonaws.com")
            .unwrap()
            .region(),
        "us-west-2"
    );
    for bad in [
        "STS.amazonaws.com",
        "sts.amazonaws.com.",
        "sts.amazonaws.com.evil.example",
    ] {
        assert_eq!(
            allowed_host(&hosts, bad).unwrap_err().code(),
            ErrorCode::HostNotAllowed,
            "{bad}"
        );
    }
}

#[test]
fn auth_params_of_a_signed_post() {
    let a = auth_of(&post());
    assert_eq!(
        a.signed_headers,
        ["content-type", "host", "x-amz-date", "x-iam-join-audience"]
    );
    assert_eq!(a.expires_secs, None);
    assert_eq!(a.date.len(), 16);

    type Edit = fn(&mut RawSignedRequest);
    let cases: [(&str, Edit, ErrorCode); 5] = [
        (
            "query on a POST",
            |r| r.url.push_str("?Action=GetCallerIdentity"),
            ErrorCode::MalformedProof,
        ),
        (
            "other body",
            |r| r.body = "Action=AssumeRole&Version=2011-06-15".into(),
            ErrorCode::WrongAction,
        ),
        (
            "no authorization",
            |r| r.headers.retain(|(n, _)| n != "authorization"),
            ErrorCode::MalformedProof,
        ),
        (
            "no x-amz-date",
            |r| r.headers.retain(|(n, _)| n != "x-amz-date"),
            ErrorCode::MalformedProof,
        ),
        (
            "x-amz-date not signed",
            |r| {
                let a = &mut r.headers[0].1;
                *a = a.replace(";x-amz-date;", ";");
            },
            ErrorCode::MalformedProof,
        ),
    ];
    for (what, edit, code) in cases {
        let mut raw = post();
        edit(&mut raw);
        let url = split_url(&raw.url).unwrap();
        let got = auth_params(&raw, SigningForm::SignedPost, url.query).map(|_| ());
        assert_eq!(got.unwrap_err().code(), code, "{what}");
    }
}

#[test]
fn auth_params_of_a_presigned_get() {
    let date = format_amz_date(now());
    let query = format!(
        "Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm={ALGORITHM}\
         &X-Amz-Credential={KEY_ID}%2F{}%2Fus-west-2%2Fsts%2Faws4_request&X-Amz-Date={date}\
         &X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-iam-join-audience&X-Amz-Signature={SIG}",
        &date[..8]
    );
    let raw = RawSignedRequest {
        method: "GET".into(),
        body: String::new(),
        headers: vec![(AUDIENCE_HEADER.into(), AUDIENCE.into())],
        ..post()
    };
    let a = auth_params(&raw, SigningForm::PresignedGet, Some(&query)).unwrap();
    assert_eq!(a.signed_headers, ["host", "x-iam-join-audience"]);
    assert_eq!(a.expires_secs, Some(60));
    assert_eq!(a.date, date);

    let no_query = auth_params(&raw, SigningForm::PresignedGet, None).map(|_| ());
    assert_eq!(no_query.unwrap_err().code(), ErrorCode::MalformedProof);
    let with_body = RawSignedRequest {
        body: GET_CALLER_IDENTITY_BODY.into(),
        ..raw
    };
    let got = auth_params(&with_body, SigningForm::PresignedGet, Some(&query)).map(|_| ());
    assert_eq!(got.unwrap_err().code(), ErrorCode::WrongAction);
}

#[test]
fn check_scope_ties_the_credential_to_host_and_date() {
    let host = us_west_2();
    let date = format_amz_date(now());
    let good = ["host", "x-amz-date", "x-iam-join-audience"];
    let scope = check_scope(&auth(&good, &date, None), &host).unwrap();
    assert_eq!(scope.access_key_id, KEY_ID);

    let mut other_region = auth(&good, &date, None);
    other_region.credential = other_region.credential.replace("us-west-2", "us-east-1");
    let mut other_day = auth(&good, &date, None);
    other_day.credential = other_day.credential.replace(&date[..8], "20000101");
    let short_date = auth(&good, &date, None);
    let short_date = AuthParams {
        date: "2026".into(),
        ..short_date
    };
    let cases = [
        ("region of another host", other_region, "region"),
        ("scope date is not X-Amz-Date's", other_day, "date"),
        ("X-Amz-Date shorter than a date", short_date, "date"),
        (
            "host not signed",
            auth(&["x-amz-date", "x-iam-join-audience"], &date, None),
            "host",
        ),
        (
            "authorization signed",
            auth(
                &["authorization", "host", "x-iam-join-audience"],
                &date,
                None,
            ),
            "authorization",
        ),
        (
            "connection-level header signed",
            auth(
                &["host", "transfer-encoding", "x-iam-join-audience"],
                &date,
                None,
            ),
            "transfer-encoding",
        ),
    ];
    for (what, a, mentions) in cases {
        let e = check_scope(&a, &host).map(|_| ()).unwrap_err();
        assert_eq!(e.code(), ErrorCode::MalformedProof, "{what}");
        assert!(e.message().contains(mentions), "{what}: {e}");
    }
}

#[test]
fn check_time_window_allows_skew_and_caps_age_at_15_minutes() {
    let now = now();
    let minutes = time::Duration::minutes;
    let window = |offset: time::Duration, expires: Option<u64>, rules: &ProofRules| {
        let date = format_amz_date(now + offset);
        check_time_window(&auth(&["host"], &date, expires), rules, now).map_err(|e| e.code())
    };
    let r = rules();
    let w = window(minutes(0), None, &r).unwrap();
    assert_eq!(w.signed_at, now);
    assert_eq!(w.expires_at, now + minutes(15));
    assert!(window(minutes(4), None, &r).is_ok());
    assert!(window(minutes(-14), None, &r).is_ok());
    assert_eq!(window(minutes(6), None, &r), Err(ErrorCode::ProofExpired));
    assert_eq!(window(minutes(-16), None, &r), Err(ErrorCode::ProofExpired));
    // Presigned: the sooner of X-Amz-Expires and max_age.
    let w = window(minutes(0), Some(60), &r).unwrap();
    assert_eq!(w.expires_at, now + minutes(1));
    assert_eq!(
        window(minutes(-2), Some(60), &r),
        Err(ErrorCode::ProofExpired)
    );
    // A configured max_age above STS's own 15 minutes is capped.
    let lenient = ProofRules {
        max_age: Duration::from_secs(3600),
        ..rules()
    };
    assert_eq!(
        window(minutes(-16), None, &lenient),
        Err(ErrorCode::ProofExpired)
    );
    let bad_date = check_time_window(&auth(&["host"], "2026-01-01T000000Z", None), &r, now);
    assert_eq!(bad_date.unwrap_err().code(), ErrorCode::MalformedProof);
}

#[test]
fn resolve_binding_needs_exactly_one_signed_binding() {
    let raw = post();
    let r = rules();
    let bound = resolve_binding(&raw, &auth_of(&raw), &r, now()).unwrap();
    assert_eq!(bound.binding, Binding::Audience);
    assert_eq!(bound.header, AUDIENCE_HEADER);
    assert_eq!(bound.value, AUDIENCE);

    let date = format_amz_date(now());
    let cases = [
        (&["host"][..], ErrorCode::BindingMissing),
        (
            &["host", "x-iam-join-audience", "x-teleport-challenge"][..],
            ErrorCode::MalformedProof,
        ),
        (&["host", "x-k8s-aws-id"][..], ErrorCode::BindingMissing),
    ];
    for (signed, code) in cases {
        let got = resolve_binding(&raw, &auth(signed, &date, None), &r, now()).map(|_| ());
        assert_eq!(got.unwrap_err().code(), code, "{signed:?}");
    }
    let e = resolve_binding(&raw, &auth(&["host"], &date, None), &r, now()).unwrap_err();
    assert!(e.message().contains("present but not signed"), "{e}");
}

#[test]
fn resolve_binding_checks_the_audience_value() {
    let mut raw = post();
    raw.headers[3].1 = "another-cluster".into();
    let a = auth_of(&raw);
    let e = resolve_binding(&raw, &a, &rules(), now()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::AudienceMismatch);
    let no_audience = ProofRules {
        audience: None,
        ..rules()
    };
    let e = resolve_binding(&post(), &auth_of(&post()), &no_audience, now()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::AudienceMismatch);
}

#[test]
fn resolve_binding_supplies_the_cluster_id_of_a_k8s_token() {
    let raw = RawSignedRequest {
        format: ProofFormat::K8sAwsV1,
        headers: Vec::new(),
        ..post()
    };
    let date = format_amz_date(now());
    let bound = resolve_binding(
        &raw,
        &auth(&["host", "x-k8s-aws-id"], &date, None),
        &rules(),
        now(),
    )
    .unwrap();
    assert_eq!(bound.header, K8S_AUDIENCE_HEADER);
    assert_eq!(bound.value, AUDIENCE);
}

#[test]
fn resolve_binding_verifies_a_challenge() {
    let challenge = issue_challenge(&key(), [3; 16], now());
    let mut raw = post();
    raw.headers[3] = (CHALLENGE_HEADER.into(), challenge.clone());
    let date = format_amz_date(now());
    let a = auth(&["host", CHALLENGE_HEADER], &date, None);
    let bound = resolve_binding(&raw, &a, &rules(), now()).unwrap();
    assert!(matches!(bound.binding, Binding::Challenge(_)));
    assert_eq!(bound.value, challenge);

    let no_key = ProofRules {
        challenge_key: None,
        ..rules()
    };
    let e = resolve_binding(&raw, &a, &no_key, now()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::ChallengeInvalid);
    raw.headers[3].1 = "x".repeat(200);
    let e = resolve_binding(&raw, &a, &rules(), now()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::ChallengeInvalid);
    assert!(e.message().contains("too long"), "{e}");
}

#[test]
fn forwardable_headers_are_the_signed_ones_and_drop_the_rest() {
    let mut raw = post();
    // Unsigned headers of any size are dropped, never a reason to reject (issue 10 finding 7).
    raw.headers
        .push(("x-unsigned-padding".into(), "p".repeat(12 * 1024)));
    raw.headers.push(("host".into(), "evil.example".into()));
    let a = auth_of(&raw);
    let bound = resolve_binding(&raw, &a, &rules(), now()).unwrap();
    let headers = forwardable_headers(&raw, SigningForm::SignedPost, &a, &bound).unwrap();
    let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "authorization",
            "content-type",
            "x-amz-date",
            "x-iam-join-audience"
        ]
    );
}

#[test]
fn forwardable_headers_send_the_verifiers_binding_value() {
    let raw = post();
    let a = auth_of(&raw);
    let bound = BoundBy {
        binding: Binding::Audience,
        header: AUDIENCE_HEADER,
        value: "the-verifiers-own".into(),
    };
    let headers = forwardable_headers(&raw, SigningForm::SignedPost, &a, &bound).unwrap();
    assert!(headers.contains(&(AUDIENCE_HEADER.into(), "the-verifiers-own".into())));
}

#[test]
fn forwardable_headers_need_every_signed_header_and_a_true_content_length() {
    let raw = post();
    let bound = resolve_binding(&raw, &auth_of(&raw), &rules(), now()).unwrap();
    let date = format_amz_date(now());
    let missing = auth(&["host", "x-custom", "x-iam-join-audience"], &date, None);
    let e = forwardable_headers(&raw, SigningForm::SignedPost, &missing, &bound).unwrap_err();
    assert!(e.message().contains("x-custom"), "{e}");

    let mut lying = post();
    lying.headers.push(("content-length".into(), "1".into()));
    let a = auth(
        &["content-length", "host", "x-iam-join-audience"],
        &date,
        None,
    );
    let e = forwardable_headers(&lying, SigningForm::SignedPost, &a, &bound).unwrap_err();
    assert_eq!(e.code(), ErrorCode::MalformedProof);
    lying.headers.last_mut().unwrap().1 = GET_CALLER_IDENTITY_BODY.len().to_string();
    assert!(forwardable_headers(&lying, SigningForm::SignedPost, &a, &bound).is_ok());
}

#[test]
fn check_request_runs_every_step_on_a_good_proof() {
    let raw = post();
    let checked = check_request(&raw, &rules(), now()).unwrap();
    assert_eq!(checked.method(), "POST");
    assert_eq!(checked.path_and_query(), "/");
    assert_eq!(checked.access_key_id(), KEY_ID);
    assert_eq!(checked.binding(), &Binding::Audience);
    let mut later = post();
    later
        .headers
        .push(("x-unsigned".into(), "changes nothing".into()));
    assert_eq!(
        check_request(&later, &rules(), now()).unwrap().cache_key(),
        checked.cache_key(),
        "unsigned headers are not sent, so they are not part of the cache key"
    );
}
