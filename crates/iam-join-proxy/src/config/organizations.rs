//! `organizations:`: AWS Organizations lookups for token rules with `aws_organization_id` /
//! `aws_organizational_units` (cargo feature `organizations`). The proxy's own AWS credentials
//! (standard chain, optionally assuming `role_arn`) need `organizations:DescribeAccount` and
//! `organizations:ListParents`.

use std::time::Duration;

use serde::Deserialize;

use super::raw::RawDuration;
use super::{ConfigError, invalid};

/// `organizations:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOrganizations {
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    role_arn: Option<String>,
    #[serde(default)]
    endpoint_url: Option<String>,
    #[serde(default)]
    cache_ttl: Option<RawDuration>,
    #[serde(default)]
    negative_ttl: Option<RawDuration>,
}

/// Where and how the proxy asks AWS Organizations.
#[derive(Clone, Debug)]
pub struct OrgSettings {
    /// The Organizations endpoint's region (default `us-east-1`, the commercial partition's).
    pub region: String,
    /// A role assumed before calling, e.g. one in the management account.
    pub role_arn: Option<String>,
    /// Another endpoint (tests, the demo's emulator).
    pub endpoint_url: Option<String>,
    /// How long an account's organization and OU path are remembered.
    pub cache_ttl: Duration,
    /// How long "not in the organization" is remembered.
    pub negative_ttl: Duration,
    /// Fixed credentials for `endpoint_url` instead of the standard chain. Only code sets this
    /// (the demo, against its embedded emulator): a config file never holds credentials.
    pub static_credentials: Option<aws_credential_types::Credentials>,
}

const DEFAULT_REGION: &str = "us-east-1";

/// Checks `organizations:`.
#[cfg_attr(not(feature = "organizations"), allow(dead_code))]
pub(crate) fn validate(raw: RawOrganizations) -> Result<OrgSettings, ConfigError> {
    // The same region rule as everywhere else: core's `Region`.
    let region = raw.region.unwrap_or_else(|| DEFAULT_REGION.to_owned());
    if let Err(e) = region.parse::<iam_join_core::Region>() {
        return Err(invalid(
            "organizations.region",
            format!("{region:?} is not an AWS region such as us-east-1: {e}"),
        ));
    }
    if let Some(role) = &raw.role_arn
        && !(role.starts_with("arn:") && role.contains(":role/"))
    {
        return Err(invalid(
            "organizations.role_arn",
            "must be an IAM role ARN (arn:aws:iam::<account>:role/<name>)",
        ));
    }
    if let Some(url) = &raw.endpoint_url
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        return Err(invalid(
            "organizations.endpoint_url",
            "must be an http:// or https:// URL",
        ));
    }
    let ttl = |d: Option<RawDuration>, default: Duration, field: &str| {
        let d = d.map_or(default, |d| d.0);
        if d.is_zero() {
            Err(invalid(field, "must be longer than zero"))
        } else {
            Ok(d)
        }
    };
    Ok(OrgSettings {
        region,
        role_arn: raw.role_arn,
        endpoint_url: raw.endpoint_url,
        cache_ttl: ttl(
            raw.cache_ttl,
            Duration::from_secs(600),
            "organizations.cache_ttl",
        )?,
        negative_ttl: ttl(
            raw.negative_ttl,
            Duration::from_secs(60),
            "organizations.negative_ttl",
        )?,
        static_credentials: None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::Path;

    use crate::config::Config;

    const MINIMAL: &str = "listen: 127.0.0.1:8443\nupstream: {url: http://127.0.0.1:3080}\naudience: my-cluster\ntokens: tokens/\n";

    fn load(extra: &str) -> Result<Config, crate::config::ConfigError> {
        Config::from_yaml_str(
            &format!("{MINIMAL}{extra}"),
            Path::new("/etc/iam-join-proxy"),
        )
    }

    #[cfg(feature = "organizations")]
    #[test]
    fn organizations_fields_parse_with_defaults() {
        use std::time::Duration;
        let c = load("organizations: {}\n").unwrap();
        let o = c.organizations.unwrap();
        assert_eq!(o.region, "us-east-1");
        assert_eq!(o.cache_ttl, Duration::from_secs(600));
        assert_eq!(o.negative_ttl, Duration::from_secs(60));
        let c = load(
            "organizations: {region: us-gov-west-1, role_arn: 'arn:aws:iam::111111111111:role/r', \
             endpoint_url: 'http://127.0.0.1:1', cache_ttl: 5m, negative_ttl: 10s}\n",
        )
        .unwrap();
        let o = c.organizations.unwrap();
        assert_eq!(o.region, "us-gov-west-1");
        assert_eq!(
            o.role_arn.as_deref(),
            Some("arn:aws:iam::111111111111:role/r")
        );
        assert_eq!(o.cache_ttl, Duration::from_secs(300));
        assert_eq!(o.negative_ttl, Duration::from_secs(10));
        assert!(load("").unwrap().organizations.is_none());
    }

    #[cfg(feature = "organizations")]
    #[test]
    fn bad_organizations_fields_name_the_field() {
        let cases = [
            (
                "organizations: {region: 'US East'}\n",
                "organizations.region",
            ),
            (
                "organizations: {role_arn: my-role}\n",
                "organizations.role_arn",
            ),
            (
                "organizations: {endpoint_url: ftp://x}\n",
                "organizations.endpoint_url",
            ),
            (
                "organizations: {cache_ttl: 0s}\n",
                "organizations.cache_ttl",
            ),
            (
                "organizations: {negative_ttl: 0}\n",
                "organizations.negative_ttl",
            ),
        ];
        for (yaml, field) in cases {
            let err = load(yaml).unwrap_err();
            assert_eq!(err.field(), Some(field), "{yaml}");
        }
        assert!(load("organizations: {regoin: us-east-1}\n").is_err());
    }

    #[cfg(not(feature = "organizations"))]
    #[test]
    fn organizations_without_the_feature_is_refused() {
        let err = load("organizations: {}\n").unwrap_err();
        assert_eq!(err.field(), Some("organizations"));
    }
}
