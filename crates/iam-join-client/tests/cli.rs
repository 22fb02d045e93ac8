//! The `iam-join` binary: what it prints, what it never prints, and `whoami` against the real
//! verifying layer (`IamJoinLayer` in front of the sts-emulator, on 127.0.0.1).
#![cfg(all(feature = "cli", feature = "aws-config"))]

mod common;

use std::path::Path;
use std::process::Command;

use iam_join_client::{SignedStsRequestExt, decode_proof_token};
use sts_emulator::{Emulator, TestIdentity, default_identities};

use common::{
    AUDIENCE, assert_is_identity, assert_no_secrets, iam_join, run, send_presigned, send_to_app,
    single_line, start_verifier, verify_at_emulator, whoami_json,
};

/// `iam-join` with `identity`'s keys in the environment.
fn with_env_credentials(home: &Path, identity: &TestIdentity) -> Command {
    let mut cmd = iam_join(home);
    cmd.env("AWS_ACCESS_KEY_ID", &identity.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &identity.secret_access_key);
    if let Some(token) = &identity.session_token {
        cmd.env("AWS_SESSION_TOKEN", token);
    }
    cmd
}

fn secrets(id: &TestIdentity) -> Vec<&str> {
    let mut s = vec![id.secret_access_key.as_str()];
    s.extend(id.session_token.as_deref());
    s
}

#[tokio::test]
async fn token_verb_prints_only_a_token_and_no_secrets_even_when_verbose() {
    let sts = Emulator::start().await.expect("emulator");
    let home = tempfile::tempdir().unwrap();
    let node = &default_identities()[1];
    for verbose in [false, true] {
        let mut cmd = with_env_credentials(home.path(), node);
        cmd.env("AWS_REGION", "us-west-2")
            .args(["token", "--audience", "teleport.example.com"]);
        if verbose {
            cmd.arg("--verbose");
        }
        let out = run(cmd).await;
        let token = single_line(&out);
        assert!(token.starts_with("iam-join-v1."), "{token}");
        assert_no_secrets(&out, &secrets(node), Some(&token));
        // Neither the signature nor the token itself shows up in the logs.
        let req = decode_proof_token(&token).unwrap();
        let auth = req.header("authorization").unwrap();
        let signature = auth.rsplit("Signature=").next().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains(signature));
        assert!(!stderr.contains(&token[..40]));
        if verbose {
            assert!(stderr.contains("sts.us-west-2.amazonaws.com"), "{stderr}");
        }
        assert_eq!(
            verify_at_emulator(&sts, &token).await.identity(),
            (node.account.clone(), node.arn.clone())
        );
    }
}

#[tokio::test]
async fn token_verb_makes_get_and_challenge_proofs_that_verify() {
    let sts = Emulator::start().await.expect("emulator");
    let home = tempfile::tempdir().unwrap();
    let alice = &default_identities()[0];
    let mut cmd = with_env_credentials(home.path(), alice);
    cmd.args([
        "token",
        "--challenge",
        "abc123",
        "--form",
        "get",
        "--expires",
        "900",
        "--region",
        "us-west-1",
        "--fips",
    ]);
    let token = single_line(&run(cmd).await);
    let req = decode_proof_token(&token).unwrap();
    assert_eq!(req.method, "GET");
    assert_eq!(req.host(), Some("sts-fips.us-west-1.amazonaws.com"));
    assert_eq!(req.header("x-teleport-challenge"), Some("abc123"));
    assert!(req.url.contains("X-Amz-Expires=900&"));
    assert_eq!(
        verify_at_emulator(&sts, &token).await.identity(),
        (alice.account.clone(), alice.arn.clone())
    );
}

#[tokio::test]
async fn audience_comes_from_iam_join_audience_when_no_binding_is_given() {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = with_env_credentials(home.path(), &default_identities()[0]);
    cmd.env("AWS_REGION", "us-west-2")
        .env("IAM_JOIN_AUDIENCE", "from-env")
        .args(["token"]);
    let token = single_line(&run(cmd).await);
    let req = decode_proof_token(&token).unwrap();
    assert_eq!(req.header("x-iam-join-audience"), Some("from-env"));

    let mut cmd = with_env_credentials(home.path(), &default_identities()[0]);
    cmd.env("AWS_REGION", "us-west-2").args(["token"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("IAM_JOIN_AUDIENCE"));
}

#[tokio::test]
async fn a_missing_region_falls_back_to_us_east_1_with_a_warning_on_stderr() {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = with_env_credentials(home.path(), &default_identities()[0]);
    cmd.args(["token", "--audience", "a"]);
    let out = run(cmd).await;
    let token = single_line(&out);
    let req = decode_proof_token(&token).unwrap();
    assert_eq!(req.host(), Some("sts.us-east-1.amazonaws.com"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no AWS region found"), "{stderr}");
}

#[tokio::test]
async fn k8s_tokens_from_both_spellings_verify_with_the_cluster_id() {
    let sts = Emulator::start().await.expect("emulator");
    let home = tempfile::tempdir().unwrap();
    let node = &default_identities()[1];
    for args in [
        &["token", "--k8s", "--cluster-id", "prod-eks"][..],
        &["k8s-token", "--cluster-id", "prod-eks"][..],
    ] {
        let mut cmd = with_env_credentials(home.path(), node);
        cmd.env("AWS_REGION", "us-west-2").args(args);
        let out = run(cmd).await;
        let token = single_line(&out);
        assert!(token.starts_with("k8s-aws-v1."), "{token}");
        assert_no_secrets(&out, &secrets(node), Some(&token));
        let url = decode_proof_token(&token).unwrap().url;
        assert!(url.starts_with(
            "https://sts.us-west-2.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&"
        ));
        let answer = send_presigned(&sts, &url, &[("x-k8s-aws-id", "prod-eks")]).await;
        assert_eq!(answer.identity(), (node.account.clone(), node.arn.clone()));
    }
}

#[tokio::test]
async fn k8s_token_verb_output_is_admitted_by_the_layer_whose_audience_is_the_cluster_id() {
    let verifier = start_verifier("prod-eks").await;
    let home = tempfile::tempdir().unwrap();
    let node = &default_identities()[1];
    let mut cmd = with_env_credentials(home.path(), node);
    cmd.env("AWS_REGION", "us-west-2")
        .args(["k8s-token", "--cluster-id", "prod-eks"]);
    let token = single_line(&run(cmd).await);
    assert!(token.starts_with("k8s-aws-v1."), "{token}");
    let me = verifier
        .client()
        .whoami(&token, None)
        .await
        .expect("admitted");
    assert_eq!(
        (me.account.as_str(), me.arn.as_str()),
        (node.account.as_str(), node.arn.as_str())
    );
    assert_eq!(me.raw["binding"], "audience", "{}", me.raw);
    assert_eq!(
        send_to_app(&verifier, "/app", &token).await,
        (200, node.arn.clone())
    );
}

#[tokio::test]
async fn conflicting_or_misplaced_options_are_usage_errors() {
    let home = tempfile::tempdir().unwrap();
    for args in [
        &["token", "--audience", "a", "--challenge", "c"][..],
        &["token", "--audience", "a", "--expires", "60"][..],
        &[
            "token",
            "--audience",
            "a",
            "--form",
            "get",
            "--expires",
            "901",
        ][..],
        &["token", "--k8s"][..],
        &["whoami", "--audience", "a"][..],
    ] {
        let mut cmd = with_env_credentials(home.path(), &default_identities()[0]);
        cmd.env("AWS_REGION", "us-west-2").args(args);
        let out = run(cmd).await;
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[tokio::test]
async fn every_verb_has_help() {
    let home = tempfile::tempdir().unwrap();
    for verb in ["token", "k8s-token", "whoami"] {
        let mut cmd = iam_join(home.path());
        cmd.args([verb, "--help"]);
        let out = run(cmd).await;
        assert!(out.status.success());
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("--region"), "{verb}: {help}");
        assert!(help.contains("--verbose"), "{verb}: {help}");
    }
}

#[tokio::test]
async fn whoami_with_audience_prints_the_verified_identity() {
    let verifier = start_verifier(AUDIENCE).await;
    let home = tempfile::tempdir().unwrap();
    let node = &default_identities()[1];
    let mut cmd = with_env_credentials(home.path(), node);
    cmd.env("AWS_REGION", "us-west-2").args([
        "whoami",
        "--proxy",
        &verifier.url(),
        "--audience",
        AUDIENCE,
        "--token",
        "iam-token",
    ]);
    let out = run(cmd).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_no_secrets(&out, &secrets(node), None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("account:") && lines[0].ends_with("333333333333"),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("arn:") && lines[1].ends_with(&node.arn),
        "{stdout}"
    );
    assert!(stdout.contains("iam-token"), "{stdout}");
    assert!(stdout.contains("audience"), "{stdout}");
    assert!(!stdout.contains("iam-join-v1."));
    assert_eq!(verifier.sts.calls(), 1, "the proof was checked at STS");
}

#[tokio::test]
async fn whoami_with_challenge_and_teleport_config_prints_json() {
    let verifier = start_verifier("unused").await;
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("teleport.yaml");
    std::fs::write(
        &config,
        format!(
            "teleport:\n  join_params:\n    token_name: iam-token\n    method: iam\n  proxy_server: {}\nssh_service:\n  enabled: yes\n",
            verifier.url()
        ),
    )
    .unwrap();
    let alice = &default_identities()[0];
    let mut cmd = with_env_credentials(home.path(), alice);
    cmd.env("AWS_REGION", "eu-west-1").args([
        "--config",
        config.to_str().unwrap(),
        "whoami",
        "--challenge",
        "--json",
        "--form",
        "get",
    ]);
    let out = run(cmd).await;
    let v = whoami_json(&out);
    assert_eq!(v["account"], "111111111111");
    assert_eq!(v["arn"], alice.arn.as_str());
    assert_is_identity(&v, alice);
    assert_eq!(v["token"], "iam-token");
    assert_eq!(v["binding"], "challenge");
    assert_eq!(v["region"], "eu-west-1");
    assert_no_secrets(&out, &secrets(alice), None);
}

#[tokio::test]
async fn whoami_with_challenge_succeeds_once_per_challenge_and_a_replayed_proof_is_refused() {
    let verifier = start_verifier(AUDIENCE).await;
    let home = tempfile::tempdir().unwrap();
    let node = &default_identities()[1];

    // Each `whoami --challenge` fetches its own challenge, so running it again works.
    for _ in 0..2 {
        let mut cmd = with_env_credentials(home.path(), node);
        cmd.env("AWS_REGION", "us-west-2").args([
            "whoami",
            "--proxy",
            &verifier.url(),
            "--challenge",
            "--json",
        ]);
        let v = whoami_json(&run(cmd).await);
        assert_is_identity(&v, node);
        assert_eq!(v["binding"], "challenge");
    }

    // Capture one proof: challenge from the library, proof from the binary.
    let client = verifier.client();
    let challenge = client.fetch_challenge().await.expect("challenge");
    assert_eq!(challenge.header, "x-teleport-challenge");
    let mut cmd = with_env_credentials(home.path(), node);
    cmd.env("AWS_REGION", "us-west-2")
        .args(["token", "--challenge", &challenge.challenge]);
    let out = run(cmd).await;
    let proof = single_line(&out);
    assert_no_secrets(&out, &secrets(node), Some(&proof));
    assert_eq!(
        decode_proof_token(&proof)
            .unwrap()
            .header("x-teleport-challenge"),
        Some(challenge.challenge.as_str())
    );

    let first = client
        .whoami(&proof, Some("iam-token"))
        .await
        .expect("first use of the challenge is admitted");
    assert_eq!(
        (first.account.as_str(), first.arn.as_str()),
        (node.account.as_str(), node.arn.as_str())
    );
    let calls = verifier.sts.calls();
    let replay = client
        .whoami(&proof, Some("iam-token"))
        .await
        .expect_err("a replayed challenge proof is refused");
    assert_eq!(replay.server_code(), Some("challenge_reused"), "{replay}");
    // Refused before any STS work.
    assert_eq!(verifier.sts.calls(), calls);
    // Nor does it get past the layer to the application.
    let (status, body) = send_to_app(&verifier, "/app", &proof).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("challenge_reused"), "{body}");
}

#[tokio::test]
async fn whoami_refusal_shows_the_verifiers_code_and_message() {
    let verifier = start_verifier(AUDIENCE).await;
    let home = tempfile::tempdir().unwrap();
    for (audience, token, code) in [
        (AUDIENCE, "unknown", "unknown_token"),
        ("other.example.com", "iam-token", "audience_mismatch"),
    ] {
        let mut cmd = with_env_credentials(home.path(), &default_identities()[0]);
        cmd.env("AWS_REGION", "us-west-2").args([
            "whoami",
            "--proxy",
            &verifier.url(),
            "--audience",
            audience,
            "--token",
            token,
        ]);
        let out = run(cmd).await;
        assert_eq!(out.status.code(), Some(1));
        assert!(out.stdout.is_empty());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(code), "{stderr}");
    }
}

#[tokio::test]
async fn whoami_with_a_token_method_teleport_config_fails_clearly() {
    let home = tempfile::tempdir().unwrap();
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/teleport-token-method.yaml");
    let mut cmd = with_env_credentials(home.path(), &default_identities()[0]);
    cmd.args([
        "--config",
        fixture.to_str().unwrap(),
        "whoami",
        "--challenge",
    ]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            r#"join_params.method is "token"; iam-join only makes IAM join proofs (method: iam)"#
        ),
        "{stderr}"
    );
}

#[tokio::test]
async fn whoami_over_plain_http_to_a_remote_host_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = with_env_credentials(home.path(), &default_identities()[0]);
    cmd.env("AWS_REGION", "us-west-2").args([
        "whoami",
        "--proxy",
        "http://proxy.example.invalid",
        "--audience",
        "a",
    ]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("plain http"));
}
