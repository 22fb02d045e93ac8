//! [`OrgLookup`] against AWS Organizations: `DescribeAccount` gives the account's ARN, which
//! names its organization; `ListParents`, repeated up to the root, gives its OU path.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_organizations::Client;
use aws_sdk_organizations::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_organizations::types::ParentType;
use futures_util::future::BoxFuture;
use iam_join_core::policy::OrgInfo;

use super::{OrgAnswer, OrgLookup, OrgLookupError};

/// One retry, soon: a request waits for the answer, and the caller's retry (after
/// `Retry-After`) is the better place to wait longer.
const MAX_ATTEMPTS: u32 = 2;
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// Per attempt, connection included.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);

fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(MAX_ATTEMPTS)
        .with_initial_backoff(INITIAL_BACKOFF)
}

fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .build()
}

/// Organizations nests OUs at most five deep under the root; a longer walk is a bad reply.
const MAX_DEPTH: usize = 8;

/// Where and as whom to call AWS Organizations.
#[derive(Clone, Debug, Default)]
pub struct AwsOrgConfig {
    /// The region of the Organizations endpoint (`us-east-1` for the commercial partition).
    pub region: String,
    /// A role to assume (with the standard-chain credentials) before calling; it needs
    /// `organizations:DescribeAccount` and `organizations:ListParents`.
    pub role_arn: Option<String>,
    /// An endpoint instead of AWS's (tests, VPC endpoints).
    pub endpoint_url: Option<String>,
}

/// Looks accounts up in AWS Organizations with the proxy's own credentials.
#[derive(Clone, Debug)]
pub struct AwsOrgLookup {
    client: Client,
}

impl AwsOrgLookup {
    /// A lookup with credentials from the standard chain (environment, profile, web identity,
    /// container or instance role), optionally assuming `config.role_arn`.
    pub async fn from_config(config: &AwsOrgConfig) -> Self {
        let region = aws_config::Region::new(config.region.clone());
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(region.clone())
            .retry_config(retry_config())
            .timeout_config(timeout_config());
        if let Some(url) = &config.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some(role) = &config.role_arn {
            let provider = AssumeRoleProvider::builder(role)
                .session_name("iam-join-organizations")
                .region(region)
                .build()
                .await;
            loader = loader.credentials_provider(provider);
        }
        Self::from_client(Client::new(&loader.load().await))
    }

    /// A lookup with fixed credentials against `endpoint_url` (tests against an emulator).
    pub fn with_credentials(
        endpoint_url: &str,
        region: &str,
        credentials: aws_credential_types::Credentials,
    ) -> Self {
        let conf = aws_sdk_organizations::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_owned()))
            .endpoint_url(endpoint_url)
            .credentials_provider(credentials)
            .retry_config(retry_config())
            .timeout_config(timeout_config())
            .build();
        Self::from_client(Client::from_conf(conf))
    }

    /// A lookup with a client built elsewhere.
    pub fn from_client(client: Client) -> Self {
        Self { client }
    }

    async fn find(&self, account: &str) -> Result<OrgAnswer, OrgLookupError> {
        let described = match self
            .client
            .describe_account()
            .account_id(account)
            .send()
            .await
        {
            Ok(out) => out,
            Err(SdkError::ServiceError(e)) if e.err().is_account_not_found_exception() => {
                return Ok(None);
            }
            Err(e) => return Err(unavailable("DescribeAccount", &e)),
        };
        let organization_id = described
            .account()
            .and_then(|a| a.arn())
            .and_then(organization_of_account_arn)
            .ok_or_else(|| {
                OrgLookupError("DescribeAccount gave no account ARN with an organization".into())
            })?;
        let ou_path = self.path_to_root(account).await?;
        Ok(Some(OrgInfo {
            organization_id,
            ou_path,
        }))
    }

    /// The parents of `account`, nearest first, up to and including the root.
    async fn path_to_root(&self, account: &str) -> Result<Vec<String>, OrgLookupError> {
        let mut path = Vec::new();
        let mut child = account.to_owned();
        while path.len() < MAX_DEPTH {
            let out = self
                .client
                .list_parents()
                .child_id(&child)
                .send()
                .await
                .map_err(|e| unavailable("ListParents", &e))?;
            // An account or OU has exactly one parent.
            let parent = out
                .parents()
                .first()
                .and_then(|p| Some((p.id()?.to_owned(), p.r#type()?.clone())))
                .ok_or_else(|| OrgLookupError("ListParents gave no parent".into()))?;
            let (id, kind) = parent;
            path.push(id.clone());
            if kind == ParentType::Root {
                return Ok(path);
            }
            child = id;
        }
        Err(OrgLookupError(
            "ListParents did not reach the root".to_owned(),
        ))
    }
}

impl OrgLookup for AwsOrgLookup {
    fn lookup<'a>(&'a self, account: &'a str) -> BoxFuture<'a, Result<OrgAnswer, OrgLookupError>> {
        Box::pin(self.find(account))
    }
}

/// `arn:aws:organizations::<management>:account/o-xxxx/<account>` → `o-xxxx`.
pub(super) fn organization_of_account_arn(arn: &str) -> Option<String> {
    let resource = arn.strip_prefix("arn:")?.split(':').nth(4)?;
    let mut parts = resource.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("account"), Some(org), Some(_), None) if org.starts_with("o-") => {
            Some(org.to_owned())
        }
        _ => None,
    }
}

/// A failed call as an error that names the operation and AWS's error code (never the account
/// or the request).
fn unavailable<E: ProvideErrorMetadata, R>(op: &str, e: &SdkError<E, R>) -> OrgLookupError {
    let reason = match e {
        SdkError::ServiceError(s) => s.err().code().unwrap_or("unknown error").to_owned(),
        SdkError::TimeoutError(_) => "timeout".to_owned(),
        SdkError::DispatchFailure(_) => "connection failed".to_owned(),
        _ => "bad response".to_owned(),
    };
    OrgLookupError(format!("{op}: {reason}"))
}

#[cfg(test)]
mod tests {
    use super::organization_of_account_arn;

    #[test]
    fn organization_id_comes_from_the_account_arn() {
        let cases = [
            (
                "arn:aws:organizations::111111111111:account/o-a1b2c3d4e5/444444444444",
                Some("o-a1b2c3d4e5"),
            ),
            (
                "arn:aws-us-gov:organizations::111111111111:account/o-zz99/444444444444",
                Some("o-zz99"),
            ),
            ("arn:aws:organizations::111111111111:root/o-a1/r-ab12", None),
            ("arn:aws:organizations::111111111111:account/x-a1/4", None),
            ("arn:aws:organizations::111111111111:account/o-a1", None),
            ("arn:aws:organizations::111111111111:account/o-a1/4/5", None),
            ("not an arn", None),
            ("", None),
        ];
        for (arn, want) in cases {
            assert_eq!(organization_of_account_arn(arn).as_deref(), want, "{arn}");
        }
    }
}
