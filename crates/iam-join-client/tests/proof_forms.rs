//! Every proof form the client makes verifies at the STS emulator (a real SigV4 check) and
//! passes the verifier's local checks in iam-join-core; `k8s-aws-v1.` tokens are admitted by the
//! real layer (`IamJoinLayer` on 127.0.0.1) whose audience is the cluster id.

mod common;

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use iam_join_client::{
    Binding, ProofBuilder, SigningForm, decode_proof_token, k8s_token, sts_endpoint,
};
use iam_join_core::challenge::issue_challenge;
use iam_join_core::{ChallengeKey, ProofRules, StsHostAllowList, check_proof};
use sts_emulator::{Emulator, default_identities};
use time::OffsetDateTime;

use common::{send_presigned, send_signed, send_to_app, start_verifier, verify_at_emulator};

const AUDIENCE: &str = "teleport.example.com";

fn forms() -> [SigningForm; 2] {
    [
        SigningForm::Post,
        SigningForm::PresignedGet {
            expires_in: Duration::from_secs(300),
        },
    ]
}

fn challenge_key() -> ChallengeKey {
    ChallengeKey::from_bytes(&[7u8; 32]).expect("strong key")
}

#[tokio::test]
async fn both_forms_with_both_bindings_verify_at_sts_for_each_identity() {
    let sts = Emulator::start().await.expect("emulator");
    let challenge = issue_challenge(&challenge_key(), [1u8; 16], OffsetDateTime::now_utc());
    for identity in &default_identities()[..2] {
        let creds = identity.credentials();
        for form in forms() {
            for binding in [
                Binding::Audience(AUDIENCE.into()),
                Binding::Challenge(challenge.clone()),
            ] {
                let token =
                    ProofBuilder::new(sts_endpoint("us-west-2", false).unwrap(), binding.clone())
                        .form(form)
                        .build(&creds)
                        .expect("proof");
                let answer = verify_at_emulator(&sts, &token).await;
                assert_eq!(
                    answer.identity(),
                    (identity.account.clone(), identity.arn.clone()),
                    "{form:?} {binding:?}"
                );
            }
        }
    }
    assert_eq!(sts.calls(), 8);
}

#[tokio::test]
async fn proofs_pass_the_verifiers_local_checks() {
    let rules = ProofRules {
        hosts: StsHostAllowList::new(),
        audience: Some(AUDIENCE.into()),
        challenge_key: Some(challenge_key()),
        ..ProofRules::default()
    };
    let now = OffsetDateTime::now_utc();
    let challenge = issue_challenge(&challenge_key(), [2u8; 16], now);
    let creds = default_identities()[1].credentials();
    for (region, fips) in [
        ("us-west-2", false),
        ("us-west-2", true),
        ("eu-central-1", false),
        ("us-gov-west-1", true),
        ("cn-north-1", false),
    ] {
        for form in forms() {
            for binding in [
                Binding::Audience(AUDIENCE.into()),
                Binding::Challenge(challenge.clone()),
            ] {
                let endpoint = sts_endpoint(region, fips).unwrap();
                let token = ProofBuilder::new(endpoint.clone(), binding.clone())
                    .form(form)
                    .build(&creds)
                    .unwrap();
                let checked = check_proof(&token, &rules, now).unwrap_or_else(|e| {
                    panic!(
                        "{endpoint} {form:?} {binding:?} refused locally: {}",
                        e.message()
                    )
                });
                assert_eq!(checked.host().name(), endpoint.host());
                assert_eq!(checked.region(), endpoint.region());
            }
        }
    }
}

#[tokio::test]
async fn a_proof_sent_with_another_audience_fails_at_sts() {
    let sts = Emulator::start().await.expect("emulator");
    let creds = default_identities()[0].credentials();
    for form in forms() {
        let token = ProofBuilder::new(
            sts_endpoint("us-west-2", false).unwrap(),
            Binding::Audience(AUDIENCE.into()),
        )
        .form(form)
        .build(&creds)
        .unwrap();
        let mut req = decode_proof_token(&token).unwrap();
        for (name, value) in &mut req.headers {
            if name == "x-iam-join-audience" {
                *value = "evil.example.com".into();
            }
        }
        let answer = send_signed(sts.addr(), &req).await;
        assert_eq!(answer.status, 403, "{form:?}: {}", answer.body);
        assert!(
            answer.body.contains("SignatureDoesNotMatch"),
            "{}",
            answer.body
        );
    }
}

#[tokio::test]
async fn a_proof_signed_with_a_wrong_secret_fails_at_sts() {
    let sts = Emulator::start().await.expect("emulator");
    let alice = &default_identities()[0];
    let forged = Credentials::from_keys(alice.access_key_id.clone(), "not-the-secret", None);
    let token = ProofBuilder::new(
        sts_endpoint("us-east-1", false).unwrap(),
        Binding::Audience(AUDIENCE.into()),
    )
    .build(&forged)
    .unwrap();
    assert_eq!(verify_at_emulator(&sts, &token).await.status, 403);
}

#[tokio::test]
async fn k8s_token_verifies_at_sts_when_the_cluster_id_is_sent() {
    let sts = Emulator::start().await.expect("emulator");
    for identity in &default_identities()[..2] {
        let token = k8s_token(
            &identity.credentials(),
            "us-west-2",
            "my-cluster",
            SystemTime::now(),
        )
        .expect("token");
        let url = decode_proof_token(&token).unwrap().url;
        assert!(url.contains("X-Amz-Expires=60&"));
        assert_eq!(
            identity.session_token.is_some(),
            url.contains("X-Amz-Security-Token=")
        );
        let ok = send_presigned(&sts, &url, &[("x-k8s-aws-id", "my-cluster")]).await;
        assert_eq!(
            ok.identity(),
            (identity.account.clone(), identity.arn.clone())
        );
        let wrong = send_presigned(&sts, &url, &[("x-k8s-aws-id", "other-cluster")]).await;
        assert_eq!(wrong.status, 403, "{}", wrong.body);
        let missing = send_presigned(&sts, &url, &[]).await;
        assert_eq!(missing.status, 403, "{}", missing.body);
    }
}

#[tokio::test]
async fn k8s_token_passes_the_verifiers_local_checks_for_its_cluster_id() {
    let rules = ProofRules {
        audience: Some("my-cluster".into()),
        ..ProofRules::default()
    };
    let token = k8s_token(
        &default_identities()[1].credentials(),
        "eu-west-1",
        "my-cluster",
        SystemTime::now(),
    )
    .unwrap();
    let checked = check_proof(&token, &rules, OffsetDateTime::now_utc())
        .unwrap_or_else(|e| panic!("refused locally: {}", e.message()));
    assert_eq!(checked.region(), "eu-west-1");
}

#[tokio::test]
async fn an_old_proof_is_refused_by_sts() {
    let sts = Emulator::start().await.expect("emulator");
    let token = ProofBuilder::new(
        sts_endpoint("us-west-2", false).unwrap(),
        Binding::Audience(AUDIENCE.into()),
    )
    .time(SystemTime::now() - Duration::from_secs(3600))
    .build(&default_identities()[0].credentials())
    .unwrap();
    assert_eq!(verify_at_emulator(&sts, &token).await.status, 403);
}

#[tokio::test]
async fn k8s_token_is_admitted_by_the_layer_whose_audience_is_the_cluster_id() {
    let verifier = start_verifier("my-cluster").await;
    let client = verifier.client();
    for identity in &default_identities()[..2] {
        // Built as `aws eks get-token --cluster-name my-cluster` builds it; the client sends
        // only the token, the layer adds its own audience as x-k8s-aws-id.
        let token = k8s_token(
            &identity.credentials(),
            "us-west-2",
            "my-cluster",
            SystemTime::now(),
        )
        .expect("token");
        assert!(token.starts_with("k8s-aws-v1."), "{token}");
        let me = client.whoami(&token, None).await.expect("admitted");
        assert_eq!(
            (me.account.as_str(), me.arn.as_str()),
            (identity.account.as_str(), identity.arn.as_str())
        );
        assert_eq!(me.token.as_deref(), Some("iam-token"));
        assert_eq!(me.raw["binding"], "audience", "{}", me.raw);
        assert_eq!(
            send_to_app(&verifier, "/app", &token).await,
            (200, identity.arn.clone())
        );
    }

    // Signed for another cluster: STS refuses it, since the layer sends its own cluster id.
    let other = k8s_token(
        &default_identities()[1].credentials(),
        "us-west-2",
        "other-cluster",
        SystemTime::now(),
    )
    .unwrap();
    let refused = client
        .whoami(&other, None)
        .await
        .expect_err("a token for another cluster is refused");
    assert_eq!(refused.server_code(), Some("sts_rejected"), "{refused}");
}
