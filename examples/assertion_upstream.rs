//! An upstream that trusts only the signed identity assertion, not the network path.
//!
//! Behind an iam-join verifier that signs assertions (`x-iam-join-assertion`), point it at the
//! verifier's JWKS:
//!
//! ```sh
//! IAM_JOIN_JWKS_URL=http://127.0.0.1:8080/.well-known/jwks.json \
//! IAM_JOIN_ISSUER=https://iam-join.example.internal IAM_JOIN_ASSERTION_AUDIENCE=orders-api \
//!   cargo run -p iam-join-examples --example assertion_upstream
//! ```
//!
//! Without `IAM_JOIN_JWKS_URL` it runs on its own: it generates a key, serves the JWKS itself
//! and prints a `curl` command with an assertion signed for a demo identity.

use std::sync::Arc;
use std::time::Duration;

use axum::{Router, routing::get};
use iam_join_assertion::{
    AssertionConfig, AssertionLayer, AssertionSigner, AssertionVerifier, KeySet, SigningAlgorithm,
    VerifiedAssertion,
};
use iam_join_core::{BindingKind, CallerIdentity, StsAnswer, StsHostAllowList, VerifiedIdentity};
use time::OffsetDateTime;

async fn hello(assertion: VerifiedAssertion) -> String {
    let claims = &assertion.claims;
    format!(
        "hello {} (account {}, token {}, roles {}, assertion key {})\n",
        claims.aws_arn,
        claims.aws_account,
        claims.join_token,
        claims.roles.join(","),
        assertion.kid,
    )
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// A demo identity, as the verifier would hand it over after STS vouched for it.
fn demo_identity() -> Result<VerifiedIdentity, Box<dyn std::error::Error>> {
    let hosts = StsHostAllowList::new();
    let identity = CallerIdentity::from_answer(
        StsAnswer {
            account: "333333333333".into(),
            arn: "arn:aws:sts::333333333333:assumed-role/teleport-node-role/i-0demo".into(),
            user_id: "AROADEMO:i-0demo".into(),
        },
        hosts.resolve("sts.us-west-2.amazonaws.com")?,
    )?;
    Ok(VerifiedIdentity {
        identity,
        token: "iam-token".into(),
        roles: vec!["Node".into()],
        binding: BindingKind::Audience,
        expires_at: OffsetDateTime::now_utc() + Duration::from_secs(900),
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let issuer = env_or("IAM_JOIN_ISSUER", "https://iam-join.example.internal");
    let audience = env_or("IAM_JOIN_ASSERTION_AUDIENCE", "orders-api");
    let listener = tokio::net::TcpListener::bind(env_or("LISTEN", "127.0.0.1:3001")).await?;
    let addr = listener.local_addr()?;

    let (jwks_url, demo) = match std::env::var("IAM_JOIN_JWKS_URL") {
        Ok(url) => (url, None),
        Err(_) => {
            let config = AssertionConfig::new(issuer.clone(), [audience.clone()])?;
            let signer = AssertionSigner::new(config, KeySet::generate(SigningAlgorithm::Es256)?);
            (
                format!("http://{addr}/.well-known/jwks.json"),
                Some(Arc::new(signer)),
            )
        }
    };
    let verifier = Arc::new(AssertionVerifier::from_jwks_url(
        issuer, audience, &jwks_url,
    )?);
    let mut app = Router::new()
        .route("/", get(hello))
        .layer(AssertionLayer::new(verifier));
    if let Some(signer) = demo {
        let assertion = signer.assertion_for(&demo_identity()?, OffsetDateTime::now_utc())?;
        println!(
            "curl -H 'x-iam-join-assertion: {}' http://{addr}/",
            assertion.to_str()?
        );
        // Outside the layer: the key set is public.
        app = app.route(
            "/.well-known/jwks.json",
            get(move || {
                let signer = signer.clone();
                async move { signer.jwks_response::<axum::body::Body>() }
            }),
        );
    }
    println!("listening on http://{addr}, trusting keys from {jwks_url}");
    axum::serve(listener, app).await?;
    Ok(())
}
