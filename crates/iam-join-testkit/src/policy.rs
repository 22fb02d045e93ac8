//! The seed token policy.

use iam_join_core::policy::TokenPolicy;

/// The seed's `token.yaml`: token `iam-token` allowing accounts 111111111111 and 222222222222,
/// and the `teleport-node-role` instances of 333333333333 (an `aws_arn` glob).
pub const SEED_TOKEN_YAML: &str = include_str!("../../iam-join-core/tests/fixtures/token.yaml");

/// A token `old-token` (account 111111111111) that expired on 2020-01-01, to add to the seed
/// with [`seed_policy_with`].
pub const EXPIRED_TOKEN_YAML: &str = r#"
kind: token
version: v2
metadata:
  name: old-token
  expires: 2020-01-01T00:00:00Z
spec:
  roles: [Node]
  join_method: iam
  allow:
    - aws_account: "111111111111"
"#;

/// The seed policy, loaded under the source name `token.yaml`.
///
/// # Panics
/// If the fixture does not load (it loads in the core crate's own tests).
pub fn seed_policy() -> TokenPolicy {
    TokenPolicy::from_yaml_str(SEED_TOKEN_YAML, "token.yaml")
        .unwrap_or_else(|e| panic!("the seed token policy does not load: {e}"))
}

/// The seed policy followed by the YAML documents of `extra`, loaded under the source name
/// `source`.
///
/// # Panics
/// If the combined YAML does not load.
pub fn seed_policy_with(extra: &str, source: &str) -> TokenPolicy {
    TokenPolicy::from_yaml_str(&format!("{SEED_TOKEN_YAML}\n---\n{extra}"), source)
        .unwrap_or_else(|e| panic!("the seed token policy with extra tokens does not load: {e}"))
}
