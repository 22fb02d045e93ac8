//! Signed identity assertions through the proxy (DESIGN §4 step 11): the upstream gets a JWT it
//! can check against the JWKS the proxy serves, whose claims are the identity headers; keys
//! rotate on reload. client → iam-join-proxy (`assertion:` with PEM key files) → test upstream.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http::StatusCode;
use iam_join_assertion::AssertionError;
use iam_join_e2e::{
    Stack, StackOptions, Who, assert_claims_match_headers, assertion_config, audience_proof,
    bearer, get_json, request, verify_assertion, write_assertion_key,
};
use serde_json::Value;

/// An assertion a client made up; the upstream must never see it.
const FORGED: &str = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.";

async fn stack_with_keys(keys: &[&Path]) -> Stack {
    Stack::start_with(StackOptions {
        extra_config: assertion_config(keys),
        ..StackOptions::default()
    })
    .await
}

/// An admitted request (with a forged assertion alongside); returns the one assertion the
/// upstream received, and the echo.
async fn admitted_assertion(stack: &Stack, proof: &str) -> (String, Value) {
    let (k, v) = bearer(proof);
    let (status, echo) = get_json(
        &stack.url("/webapi/sites"),
        &[(k, &v), ("x-iam-join-assertion", FORGED)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{echo}");
    let values = echo["headers"]["x-iam-join-assertion"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(values.len(), 1, "exactly one assertion: {echo}");
    let jws = values[0].as_str().expect("assertion").to_owned();
    assert_ne!(jws, FORGED);
    assert!(!echo.to_string().contains(FORGED), "{echo}");
    (jws, echo)
}

async fn reload(stack: &Stack) {
    let handle = stack.handle.clone();
    let loaded = tokio::task::spawn_blocking(move || handle.reload_policy("test"))
        .await
        .expect("reload task");
    assert!(matches!(loaded, Some(Ok(_))), "{loaded:?}");
}

fn key_paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("signing.pem"), dir.join("published.pem"))
}

#[tokio::test]
async fn upstream_gets_an_assertion_that_verifies_against_the_served_jwks_and_equals_the_headers() {
    let keys = tempfile::tempdir().unwrap();
    let (signing, _) = key_paths(keys.path());
    write_assertion_key(&signing);
    let stack = stack_with_keys(&[&signing]).await;
    let proof = audience_proof(Who::NodeRole);
    let (jws, echo) = admitted_assertion(&stack, &proof).await;

    for path in ["/.well-known/jwks.json", "/v1/iam-join/jwks.json"] {
        let verified = verify_assertion(&stack.url(path), &jws)
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_claims_match_headers(&echo, &verified.claims);
        assert_eq!(verified.claims.binding, "audience");

        let (status, headers, body) = request("GET", &stack.url(path), &[], Bytes::new()).await;
        assert_eq!(status, StatusCode::OK);
        let cache = headers["cache-control"].to_str().unwrap();
        assert!(
            cache.contains("public") && cache.contains("max-age="),
            "{cache}"
        );
        let jwks: Value = serde_json::from_slice(&body).unwrap();
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1, "{jwks}");
        assert_eq!(keys[0]["kid"], verified.kid.as_str());
        assert!(
            keys[0].get("d").is_none(),
            "a private key was published: {jwks}"
        );
    }
    // The proof never reaches the upstream, inside the assertion or beside it.
    assert!(!echo.to_string().contains(&proof));

    // The same caller again: admitted from the cache, with an assertion that still verifies.
    let (again, _) = admitted_assertion(&stack, &proof).await;
    verify_assertion(&stack.url("/.well-known/jwks.json"), &again)
        .await
        .unwrap();
    assert_eq!(stack.sts.calls(), 1);
    let metrics = stack.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("iam_join_assertions_issued_total") && !l.ends_with(" 0")),
        "{metrics}"
    );
}

#[tokio::test]
async fn key_rotation_on_reload_keeps_old_assertions_valid_during_the_overlap_and_not_after() {
    let keys = tempfile::tempdir().unwrap();
    let (first, second) = key_paths(keys.path());
    let old_key = keys.path().join("old.pem");
    let new_key = keys.path().join("new.pem");
    write_assertion_key(&old_key);
    write_assertion_key(&new_key);
    std::fs::copy(&old_key, &first).unwrap();
    std::fs::copy(&new_key, &second).unwrap();
    let stack = stack_with_keys(&[&first, &second]).await;
    let jwks = stack.url("/.well-known/jwks.json");
    let proof = audience_proof(Who::NodeRole);

    // Before: the old key signs, the new one is already published.
    let (by_old, _) = admitted_assertion(&stack, &proof).await;
    let old_kid = verify_assertion(&jwks, &by_old).await.unwrap().kid;

    // Swap: the new key signs, the old one is still published.
    std::fs::copy(&new_key, &first).unwrap();
    std::fs::copy(&old_key, &second).unwrap();
    reload(&stack).await;
    let (by_new, echo) = admitted_assertion(&stack, &proof).await;
    let verified = verify_assertion(&jwks, &by_new).await.unwrap();
    assert_ne!(
        verified.kid, old_kid,
        "the cached assertion of the old key was reused"
    );
    assert_claims_match_headers(&echo, &verified.claims);
    verify_assertion(&jwks, &by_old)
        .await
        .expect("an old assertion verifies during the overlap");

    // Retire the old key: its assertions fail, the new key's still verify.
    write_assertion_key(&second);
    reload(&stack).await;
    let refused = verify_assertion(&jwks, &by_old).await.unwrap_err();
    assert!(matches!(refused, AssertionError::UnknownKey), "{refused:?}");
    verify_assertion(&jwks, &by_new).await.unwrap();

    // A broken key file on reload keeps the keys in use, and says so in the metrics.
    std::fs::write(
        &first,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    reload(&stack).await;
    let (still, _) = admitted_assertion(&stack, &proof).await;
    assert_eq!(
        verify_assertion(&jwks, &still).await.unwrap().kid,
        verified.kid
    );
    let metrics = stack.metrics().await;
    for result in ["ok", "error"] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("iam_join_key_reloads_total")
                    && l.contains(&format!("result=\"{result}\""))
                    && !l.ends_with(" 0")),
            "{result}: {metrics}"
        );
    }
}
