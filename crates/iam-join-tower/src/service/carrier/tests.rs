use http::{HeaderMap, HeaderValue, header};
use proptest::prelude::*;

use super::*;

const PROOF: &str = "iam-join-v1.eyJtZXRob2QiOiJQT1NUIn0";

fn headers(list: &[(&str, &[u8])]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in list {
        h.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(value).unwrap(),
        );
    }
    h
}

/// Whether anything left in `h` still holds `proof` (what the upstream would see).
fn leaks(h: &HeaderMap, proof: &str) -> bool {
    let needle = proof.to_ascii_lowercase();
    h.values().any(|v| {
        String::from_utf8_lossy(v.as_bytes())
            .to_ascii_lowercase()
            .contains(&needle)
    })
}

/// `Authorization` spellings an upstream could read as `Bearer <proof>`.
fn bearer_spellings(proof: &str) -> Vec<String> {
    vec![
        format!("Bearer {proof}"),
        format!("bearer {proof}"),
        format!("BEARER {proof}"),
        format!("BeArEr {proof}"),
        format!("Bearer  {proof}"),
        format!("Bearer\t{proof}"),
        format!("Bearer \t {proof}"),
        format!(" Bearer {proof}"),
        format!("\tBearer {proof} "),
        format!("Bearer {proof}\t"),
    ]
}

#[test]
fn every_bearer_spelling_is_read_and_removed() {
    for proof in [PROOF, "k8s-aws-v1.aHR0cHM6Ly9zdHM"] {
        for spelling in bearer_spellings(proof) {
            let mut h = headers(&[("authorization", spelling.as_bytes())]);
            let got = take_presented(&mut h, Some("t"));
            assert_eq!(got.proof.as_deref().ok(), Some(proof), "{spelling:?}");
            assert!(!leaks(&h, proof), "{spelling:?} reached the upstream");
        }
    }
}

#[test]
fn a_proof_with_an_altered_prefix_is_still_never_forwarded() {
    let altered = PROOF.replace("iam-join-v1.", "IAM-JOIN-V1.");
    let mut h = headers(&[("authorization", format!("Bearer {altered}").as_bytes())]);
    let got = take_presented(&mut h, Some("t"));
    assert!(
        got.proof.is_ok(),
        "read as a proof, for the verifier to refuse"
    );
    assert!(!leaks(&h, &altered));
}

#[test]
fn several_authorization_headers_keep_only_the_upstreams_own() {
    let mut h = headers(&[
        ("authorization", b"Bearer upstream-token"),
        ("authorization", format!("bearer\t{PROOF}").as_bytes()),
        ("authorization", b"Basic dXNlcjpwYXNz"),
    ]);
    let got = take_presented(&mut h, Some("t"));
    assert_eq!(got.proof.as_deref().ok(), Some(PROOF));
    let left: Vec<&[u8]> = h
        .get_all(header::AUTHORIZATION)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    assert_eq!(left, [&b"Bearer upstream-token"[..], b"Basic dXNlcjpwYXNz"]);
}

#[test]
fn proofs_are_refused_unless_exactly_one_is_sent() {
    for (list, code) in [
        (vec![], ErrorCode::MissingProof),
        (
            vec![("authorization", b"Bearer upstream-token".as_slice())],
            ErrorCode::MissingProof,
        ),
        (
            vec![("authorization", b"Bearer".as_slice())],
            ErrorCode::MissingProof,
        ),
        (
            vec![("authorization", b"Bearer ".as_slice())],
            ErrorCode::MissingProof,
        ),
        (
            vec![("authorization", b"Bearerx iam-join-v1.a".as_slice())],
            ErrorCode::MissingProof,
        ),
        (
            vec![
                ("authorization", b"Bearer iam-join-v1.a".as_slice()),
                ("x-iam-join-proof", b"iam-join-v1.b"),
            ],
            ErrorCode::MalformedProof,
        ),
        (
            vec![
                ("authorization", b"Bearer iam-join-v1.a".as_slice()),
                ("authorization", b"bearer  iam-join-v1.b"),
            ],
            ErrorCode::MalformedProof,
        ),
        (
            vec![
                ("x-iam-join-proof", b"iam-join-v1.a".as_slice()),
                ("x-iam-join-proof", b"iam-join-v1.a"),
            ],
            ErrorCode::MalformedProof,
        ),
        (
            vec![("authorization", b"Bearer iam-join-v1.\xff".as_slice())],
            ErrorCode::MalformedProof,
        ),
    ] {
        let mut h = headers(&list);
        let got = take_presented(&mut h, Some("t"));
        assert_eq!(got.proof.unwrap_err().code(), code, "{list:?}");
        if code == ErrorCode::MalformedProof {
            assert!(!leaks(&h, "iam-join-v1."), "{list:?}");
        }
    }
}

#[test]
fn the_proof_header_is_read_trimmed_and_removed_in_every_spelling() {
    let mut h = headers(&[("x-iam-join-proof", format!(" {PROOF}\t").as_bytes())]);
    assert_eq!(
        take_presented(&mut h, None).proof.as_deref().ok(),
        Some(PROOF)
    );
    assert!(h.is_empty());
    let mut h = headers(&[
        ("x_iam_join_proof", PROOF.as_bytes()),
        ("X-IAM-JOIN-ARN", b"a"),
    ]);
    take_presented(&mut h, None);
    assert!(h.is_empty(), "{h:?}");
}

#[test]
fn token_names_come_from_the_header_or_the_default() {
    for (list, default, want) in [
        (vec![], Some("dflt"), Ok("dflt")),
        (
            vec![("x-iam-join-token", b" tok ".as_slice())],
            Some("dflt"),
            Ok("tok"),
        ),
        (vec![], None, Err(())),
        (
            vec![("x-iam-join-token", b"a b".as_slice())],
            Some("dflt"),
            Err(()),
        ),
        (
            vec![
                ("x-iam-join-token", b"a".as_slice()),
                ("x-iam-join-token", b"b"),
            ],
            None,
            Err(()),
        ),
    ] {
        let mut h = headers(&list);
        let got = take_presented(&mut h, default).token;
        match want {
            Ok(name) => assert_eq!(got.unwrap(), name),
            Err(()) => assert_eq!(got.unwrap_err().code(), ErrorCode::UnknownToken),
        }
    }
}

fn ows() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec![' ', '\t']), 0..4)
        .prop_map(|v| v.into_iter().collect())
}

fn case_of(word: &'static str) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<bool>(), word.len()).prop_map(move |upper| {
        word.chars()
            .zip(upper)
            .map(|(c, u)| if u { c.to_ascii_uppercase() } else { c })
            .collect()
    })
}

proptest! {
    #[test]
    fn no_bearer_spelling_of_a_proof_reaches_the_upstream(
        lead in ows(),
        scheme in case_of("bearer"),
        first in prop::sample::select(vec![" ", "\t"]),
        gap in ows(),
        prefix in prop::sample::select(vec!["iam-join-v1.", "k8s-aws-v1."]),
        body in "[A-Za-z0-9_-]{1,40}",
        trail in ows(),
        own_first in any::<bool>(),
    ) {
        let proof = format!("{prefix}{body}");
        let value = format!("{lead}{scheme}{first}{gap}{proof}{trail}");
        let mut h = HeaderMap::new();
        let own = HeaderValue::from_static("Bearer upstream-token");
        if own_first { h.append(header::AUTHORIZATION, own.clone()); }
        h.append(header::AUTHORIZATION, HeaderValue::from_str(&value).unwrap());
        if !own_first { h.append(header::AUTHORIZATION, own.clone()); }
        let got = take_presented(&mut h, Some("t"));
        prop_assert_eq!(got.proof.as_deref().ok(), Some(proof.as_str()), "{:?}", value);
        prop_assert!(!leaks(&h, &proof));
        let left: Vec<&HeaderValue> = h.get_all(header::AUTHORIZATION).iter().collect();
        prop_assert_eq!(left, vec![&own]);
    }
}
