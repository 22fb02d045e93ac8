//! AWS credentials and region through aws-config's default chain (feature `aws-config`).

use aws_config::BehaviorVersion;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;

use iam_join_core::error::error_chain;

use crate::ClientError;

/// The sources of the default chain, in order, with what sets each up. Shown when none worked.
const SOURCES_TRIED: &[&str] = &[
    "1. environment: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN)",
    "2. shared files: ~/.aws/credentials and ~/.aws/config (or AWS_SHARED_CREDENTIALS_FILE / \
     AWS_CONFIG_FILE), profile from --profile or AWS_PROFILE, else [default]",
    "3. web identity (EKS IRSA): AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN",
    "4. container credentials (ECS task role, EKS Pod Identity): \
     AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "5. EC2 instance metadata (IMDSv2): an instance profile on this instance (not with \
     AWS_EC2_METADATA_DISABLED=true)",
];

/// Loads AWS credentials and the region, as the AWS CLI and SDKs do.
///
/// Without `profile`, credentials come from aws-config's default chain, first source that has
/// them wins:
/// 1. environment variables `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`;
/// 2. the shared credentials and config files, profile `AWS_PROFILE` or `default` (static keys,
///    `role_arn` + `source_profile`, `credential_process`, SSO);
/// 3. web identity (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`, i.e. EKS IRSA);
/// 4. container credentials (ECS task roles, EKS Pod Identity);
/// 5. EC2 instance metadata (IMDSv2).
///
/// With `profile`, only that profile of the shared files is used, as `aws --profile` does
/// (environment credentials do not override an explicit profile).
///
/// The region comes from `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile, or instance metadata;
/// `None` when none has one (see [`region_or_default`](crate::region_or_default)).
///
/// The returned credentials are a snapshot: temporary ones expire, so load again for each proof
/// in a long-running process. The error, when nothing was found, lists the sources tried and
/// how to set each up.
///
/// ```no_run
/// # async fn f() -> Result<(), iam_join_client::ClientError> {
/// use iam_join_client::{Binding, ProofBuilder, load_credentials, region_or_default, sts_endpoint};
///
/// let (creds, region) = load_credentials(None).await?;
/// let region = region_or_default(None, region.as_deref());
/// let token = ProofBuilder::new(sts_endpoint(&region, false)?, Binding::Audience("my-proxy".into()))
///     .build(&creds)?;
/// # let _ = token; Ok(()) }
/// ```
pub async fn load_credentials(
    profile: Option<&str>,
) -> Result<(Credentials, Option<String>), ClientError> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(name) = profile {
        loader = loader.profile_name(name).credentials_provider(
            ProfileFileCredentialsProvider::builder()
                .profile_name(name)
                .build(),
        );
    }
    let config = loader.load().await;
    let region = config.region().map(|r| r.as_ref().to_owned());
    let provider = config.credentials_provider().ok_or_else(|| {
        ClientError::Credentials("aws-config was built without a credentials provider".to_owned())
    })?;
    match provider.provide_credentials().await {
        Ok(creds) => {
            tracing::debug!(
                temporary = creds.session_token().is_some(),
                region = region.as_deref().unwrap_or("(none)"),
                "loaded AWS credentials"
            );
            Ok((creds, region))
        }
        Err(err) => Err(ClientError::Credentials(match profile {
            Some(name) => format!(
                "profile {name:?} gave no AWS credentials: {}\nCheck that [profile {name}] exists in \
                 ~/.aws/config (or [{name}] in ~/.aws/credentials, or the files named by \
                 AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE) and that it sets credentials.",
                error_chain(&err)
            ),
            None => format!(
                "no AWS credentials found ({}).\nThe sources, in the order they are tried:\n  {}\n\
                 Set up one of them (e.g. `aws configure`, export AWS_PROFILE, or attach an \
                 instance profile) and try again.",
                error_chain(&err),
                SOURCES_TRIED.join("\n  ")
            ),
        })),
    }
}
