//! The signer: claims, life capped at the proof's expiry, and the cache (reuse until a quarter of
//! the life is left; one entry per identity × token × audience; a key rotation re-signs).

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use iam_join_assertion::{AssertionConfig, AssertionSigner, KeySet, SignError, SigningAlgorithm};
use iam_join_core::BindingKind;
use time::OffsetDateTime;

fn signer(lifetime_secs: u64) -> AssertionSigner {
    let config = AssertionConfig::new("https://iam-join.example", ["orders-api"])
        .unwrap()
        .with_lifetime(Duration::from_secs(lifetime_secs))
        .unwrap();
    AssertionSigner::new(config, KeySet::generate(SigningAlgorithm::Es256).unwrap())
}

fn at(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000 + secs).unwrap()
}

#[test]
fn life_is_the_configured_one_but_never_past_the_proof_expiry() {
    let signer = signer(300);
    let long = signer
        .sign(&support::identity("s", at(900)), at(0))
        .unwrap()
        .claims;
    assert_eq!(
        (long.iat, long.nbf, long.exp),
        (
            at(0).unix_timestamp(),
            at(0).unix_timestamp(),
            at(300).unix_timestamp()
        )
    );
    let short = signer
        .sign(&support::identity("s", at(42)), at(0))
        .unwrap()
        .claims;
    assert_eq!(short.exp, at(42).unix_timestamp());
    for expired in [at(0), at(-1)] {
        let err = signer
            .sign(&support::identity("s", expired), at(0))
            .unwrap_err();
        assert!(matches!(err, SignError::ProofExpired));
        assert_eq!(err.code(), "proof_expired");
    }
}

#[test]
fn a_cached_assertion_is_reused_until_a_quarter_of_its_life_is_left() {
    let signer = signer(400);
    let identity = support::identity("s", at(900));
    let first = signer.assertion_for(&identity, at(0)).unwrap();
    for t in [1, 150, 299] {
        assert_eq!(
            signer.assertion_for(&identity, at(t)).unwrap(),
            first,
            "t={t}"
        );
    }
    let renewed = signer.assertion_for(&identity, at(300)).unwrap();
    assert_ne!(renewed, first, "a quarter of the life left: re-signed");
    assert_eq!(signer.assertion_for(&identity, at(301)).unwrap(), renewed);
}

#[test]
fn a_short_lived_proof_is_renewed_within_its_own_shorter_life() {
    let signer = signer(300);
    let identity = support::identity("s", at(40));
    let first = signer.assertion_for(&identity, at(0)).unwrap();
    assert_eq!(signer.assertion_for(&identity, at(29)).unwrap(), first);
    assert_ne!(signer.assertion_for(&identity, at(30)).unwrap(), first);
    assert!(
        signer.assertion_for(&identity, at(40)).is_err(),
        "proof expired"
    );
}

#[test]
fn each_identity_token_roles_and_binding_gets_its_own_assertion() {
    let signer = signer(300);
    let base = support::identity("s", at(900));
    let mut other_session = support::identity("t", at(900));
    other_session.token = base.token.clone();
    let mut other_token = base.clone();
    other_token.token = "other-token".into();
    let mut other_roles = base.clone();
    other_roles.roles = vec!["Node".into()];
    let mut other_binding = base.clone();
    other_binding.binding = BindingKind::Challenge;
    let mut other_expiry = base.clone();
    other_expiry.expires_at = at(800);
    let first = signer.assertion_for(&base, at(0)).unwrap();
    let variants = [
        other_session,
        other_token,
        other_roles,
        other_binding,
        other_expiry,
    ];
    for variant in &variants {
        assert_ne!(
            signer.assertion_for(variant, at(0)).unwrap(),
            first,
            "{variant:?}"
        );
    }
    assert_eq!(signer.assertion_for(&base, at(1)).unwrap(), first);
    assert_eq!(signer.cached_entries(), 1 + variants.len() as u64);
}

#[test]
fn a_new_signing_key_takes_effect_at_once_and_the_jwks_follows() {
    let signer = signer(300);
    let identity = support::identity("s", at(900));
    let old_kid = signer.keys().signing_key().kid().to_owned();
    let first = signer.assertion_for(&identity, at(0)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let new_file = support::write_key(dir.path(), "new.pem", "EdDSA", true);
    let old_file = support::write_key(dir.path(), "old.pem", "ES256", false);
    let rotated = KeySet::load(&[new_file, old_file]).unwrap();
    let new_kid = rotated.signing_key().kid().to_owned();
    signer.replace_keys(rotated);
    let second = signer.assertion_for(&identity, at(1)).unwrap();
    assert_ne!(second, first);
    let header = jsonwebtoken::decode_header(second.to_str().unwrap()).unwrap();
    assert_eq!(header.kid.as_deref(), Some(new_kid.as_str()));
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    let jwks: serde_json::Value = serde_json::from_slice(&signer.jwks_json()).unwrap();
    let kids: Vec<_> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kids.len(), 2);
    assert_eq!(kids[0], new_kid);
    assert!(
        !kids.contains(&old_kid),
        "the generated key was replaced, not kept"
    );
}
