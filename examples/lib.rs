//! Shared set-up of the examples: a layer configured from environment variables.
//!
//! - `IAM_JOIN_AUDIENCE` (default `example.local`): this verifier's audience.
//! - `IAM_JOIN_TOKENS`: a token file or directory (default: the seed token, embedded).
//! - `IAM_JOIN_STS_OVERRIDE`: send every proof to this base URL instead of AWS (for example
//!   the `sts-emulator` binary's `http://127.0.0.1:9443`), keeping the signed `Host`.

use iam_join_core::policy::TokenPolicy;
use iam_join_tower::IamJoinLayer;

/// The seed token: accounts 111111111111 and 222222222222, and node roles of 333333333333.
pub const SEED_TOKEN: &str = r#"kind: token
version: v2
metadata:
  name: iam-token
spec:
  roles: [Node]
  join_method: iam
  allow:
  - aws_account: "111111111111"
  - aws_account: "222222222222"
  - aws_account: "333333333333"
    aws_arn: "arn:aws:sts::333333333333:assumed-role/teleport-node-role/i-*"
"#;

/// Builds the layer from the environment.
pub fn layer_from_env() -> Result<IamJoinLayer, Box<dyn std::error::Error>> {
    let policy = match std::env::var("IAM_JOIN_TOKENS") {
        Ok(path) => TokenPolicy::load(path.as_ref())?,
        Err(_) => TokenPolicy::from_yaml_str(SEED_TOKEN, "embedded seed token")?,
    };
    let audience = std::env::var("IAM_JOIN_AUDIENCE").unwrap_or_else(|_| "example.local".into());
    let mut builder = IamJoinLayer::builder()
        .audience(audience)
        .default_token("iam-token")
        .policy(policy);
    if let Ok(url) = std::env::var("IAM_JOIN_STS_OVERRIDE") {
        builder = builder.sts_override_all(url);
    }
    Ok(builder.build()?)
}
