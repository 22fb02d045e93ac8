//! Which STS host a proof is signed for.
//!
//! The verifier only accepts hosts from its allow-list (DESIGN §5) and checks that the credential
//! scope's region is the host's region, so the client must pick the host and the signing region
//! together. [`sts_endpoint`] does that for a region, with or without FIPS.

use std::fmt;

use iam_join_core::{Partition, Region};

use crate::ClientError;

/// The region used when none can be found (the same fallback Teleport uses).
pub const DEFAULT_REGION: &str = "us-east-1";

/// Regions of the `aws` partition that have a FIPS STS endpoint (`sts-fips.<region>.amazonaws.com`).
const FIPS_COMMERCIAL_REGIONS: &[&str] = &["us-east-1", "us-east-2", "us-west-1", "us-west-2"];

/// An STS host and the region a request to it is signed for.
///
/// Build one with [`sts_endpoint`], [`StsEndpoint::global`] or [`StsEndpoint::custom`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StsEndpoint {
    host: String,
    region: String,
    fips: bool,
    fips_fallback_from: Option<String>,
}

impl StsEndpoint {
    /// The global endpoint `sts.amazonaws.com`, signed for `us-east-1`.
    ///
    /// Prefer a regional endpoint ([`sts_endpoint`]): AWS recommends them and the verifier's
    /// `aws_regions` rules can only tell regions apart through them.
    pub fn global() -> Self {
        Self {
            host: "sts.amazonaws.com".to_owned(),
            region: DEFAULT_REGION.to_owned(),
            fips: false,
            fips_fallback_from: None,
        }
    }

    /// Any host with an explicit signing region, for partitions or endpoints [`sts_endpoint`]
    /// does not know. The verifier still has to allow the host.
    ///
    /// The host must be a plain lowercase DNS name: no scheme, port, path or userinfo.
    ///
    /// ```
    /// # use iam_join_client::StsEndpoint;
    /// let ep = StsEndpoint::custom("sts.eu-west-1.amazonaws.com", "eu-west-1").unwrap();
    /// assert_eq!(ep.url(), "https://sts.eu-west-1.amazonaws.com/");
    /// assert!(StsEndpoint::custom("sts.example.com:8443", "eu-west-1").is_err());
    /// ```
    pub fn custom(host: &str, region: &str) -> Result<Self, ClientError> {
        validate_region(region)?;
        validate_host(host)?;
        Ok(Self {
            host: host.to_owned(),
            region: region.to_owned(),
            fips: host.starts_with("sts-fips.") || region.starts_with("us-gov-"),
            fips_fallback_from: None,
        })
    }

    /// The host name, e.g. `sts.us-west-2.amazonaws.com`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The region the request is signed for (the credential scope's region).
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Whether the host is a FIPS endpoint (`sts-fips.*`, or any GovCloud host).
    pub fn is_fips(&self) -> bool {
        self.fips
    }

    /// The region that was asked for when FIPS had to fall back to `us-east-1` because that
    /// region has no FIPS STS endpoint.
    pub fn fips_fallback_from(&self) -> Option<&str> {
        self.fips_fallback_from.as_deref()
    }

    /// The request URL, `https://<host>/`.
    pub fn url(&self) -> String {
        format!("https://{}/", self.host)
    }
}

impl fmt::Display for StsEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (region {})", self.host, self.region)
    }
}

/// The STS endpoint for a region.
///
/// - `aws` partition: `sts.<region>.amazonaws.com`; with `fips`, `sts-fips.<region>.amazonaws.com`
///   in us-east-1, us-east-2, us-west-1 and us-west-2.
/// - `aws-us-gov`: `sts.<region>.amazonaws.com`, which is FIPS already.
/// - `aws-cn` (`cn-*`): `sts.<region>.amazonaws.com.cn`.
/// - ISO partitions: `sts.<region>.c2s.ic.gov` (`us-iso-*`), `sts.<region>.sc2s.sgov.gov`
///   (`us-isob-*`).
///
/// **FIPS in other commercial regions** falls back to `sts-fips.us-east-1.amazonaws.com`, signed
/// for us-east-1, with a warning, as Teleport's IAM join does: STS answers for any account there,
/// but a verifier whose rules restrict `aws_regions` sees us-east-1. FIPS in the China and ISO
/// partitions is an error: they have no FIPS STS endpoint, and a us-east-1 fallback could only
/// fail there.
///
/// ```
/// # use iam_join_client::sts_endpoint;
/// assert_eq!(sts_endpoint("us-west-2", false)?.host(), "sts.us-west-2.amazonaws.com");
/// assert_eq!(sts_endpoint("us-west-2", true)?.host(), "sts-fips.us-west-2.amazonaws.com");
/// assert_eq!(sts_endpoint("cn-north-1", false)?.host(), "sts.cn-north-1.amazonaws.com.cn");
/// let fallback = sts_endpoint("eu-west-1", true)?;
/// assert_eq!(fallback.host(), "sts-fips.us-east-1.amazonaws.com");
/// assert_eq!(fallback.region(), "us-east-1");
/// assert_eq!(fallback.fips_fallback_from(), Some("eu-west-1"));
/// # Ok::<(), iam_join_client::ClientError>(())
/// ```
pub fn sts_endpoint(region: &str, fips: bool) -> Result<StsEndpoint, ClientError> {
    let partition = validate_region(region)?.partition();
    let suffix = partition.dns_suffix();
    let regional = |host: String, fips: bool| StsEndpoint {
        host,
        region: region.to_owned(),
        fips,
        fips_fallback_from: None,
    };
    if !fips {
        return Ok(regional(
            format!("sts.{region}.{suffix}"),
            region.starts_with("us-gov-"),
        ));
    }
    match partition {
        Partition::AwsUsGov => Ok(regional(format!("sts.{region}.{suffix}"), true)),
        Partition::Aws if FIPS_COMMERCIAL_REGIONS.contains(&region) => {
            Ok(regional(format!("sts-fips.{region}.{suffix}"), true))
        }
        Partition::Aws => {
            tracing::warn!(
                region,
                "region {region} has no FIPS STS endpoint; signing for sts-fips.us-east-1.amazonaws.com \
                 (region us-east-1) instead, as Teleport does"
            );
            Ok(StsEndpoint {
                host: "sts-fips.us-east-1.amazonaws.com".to_owned(),
                region: DEFAULT_REGION.to_owned(),
                fips: true,
                fips_fallback_from: Some(region.to_owned()),
            })
        }
        // China, the ISO partitions and any partition added later have no FIPS STS endpoint.
        _ => Err(ClientError::invalid(
            "region",
            format!("{region} has no FIPS STS endpoint; drop --fips for this partition"),
        )),
    }
}

/// Checks that `region` looks like an AWS region name (`us-west-2`, `us-gov-east-1`, ...), so it
/// can be put into a host name safely: the core's [`Region`] rule.
pub(crate) fn validate_region(region: &str) -> Result<Region, ClientError> {
    region.parse::<Region>().map_err(|e| {
        ClientError::invalid(
            "region",
            format!(
                "{:?} is not an AWS region name like us-west-2: {e}",
                truncate(region, 64)
            ),
        )
    })
}

fn validate_host(host: &str) -> Result<(), ClientError> {
    let ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').count() >= 2
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(ClientError::invalid(
            "STS host",
            format!(
                "{:?} is not a lowercase DNS name (no scheme, port, path or trailing dot)",
                truncate(host, 64)
            ),
        ))
    }
}

pub(crate) fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regional_hosts_follow_the_partition() {
        let host = |r| sts_endpoint(r, false).unwrap().host().to_owned();
        assert_eq!(host("us-west-2"), "sts.us-west-2.amazonaws.com");
        assert_eq!(host("eu-central-2"), "sts.eu-central-2.amazonaws.com");
        assert_eq!(
            host("cn-northwest-1"),
            "sts.cn-northwest-1.amazonaws.com.cn"
        );
        assert_eq!(host("us-gov-west-1"), "sts.us-gov-west-1.amazonaws.com");
        assert_eq!(host("us-iso-east-1"), "sts.us-iso-east-1.c2s.ic.gov");
        assert_eq!(host("us-isob-east-1"), "sts.us-isob-east-1.sc2s.sgov.gov");
    }

    #[test]
    fn fips_uses_sts_fips_in_us_commercial_regions() {
        for r in FIPS_COMMERCIAL_REGIONS {
            let ep = sts_endpoint(r, true).unwrap();
            assert_eq!(ep.host(), format!("sts-fips.{r}.amazonaws.com"));
            assert_eq!(ep.region(), *r);
            assert!(ep.is_fips());
            assert_eq!(ep.fips_fallback_from(), None);
        }
    }

    #[test]
    fn fips_in_govcloud_uses_the_regional_host() {
        let ep = sts_endpoint("us-gov-east-1", true).unwrap();
        assert_eq!(ep.host(), "sts.us-gov-east-1.amazonaws.com");
        assert!(ep.is_fips());
        assert!(sts_endpoint("us-gov-east-1", false).unwrap().is_fips());
    }

    #[test]
    fn fips_without_a_regional_fips_host_falls_back_to_us_east_1() {
        let ep = sts_endpoint("ap-southeast-2", true).unwrap();
        assert_eq!(ep.host(), "sts-fips.us-east-1.amazonaws.com");
        assert_eq!(ep.region(), "us-east-1");
        assert_eq!(ep.fips_fallback_from(), Some("ap-southeast-2"));
    }

    #[test]
    fn fips_in_china_or_iso_is_an_error() {
        assert!(sts_endpoint("cn-north-1", true).is_err());
        assert!(sts_endpoint("us-iso-east-1", true).is_err());
    }

    #[test]
    fn malformed_regions_are_rejected() {
        for r in [
            "",
            "us",
            "us-west",
            "US-WEST-2",
            "us-west-2.evil.com",
            "us-west-2/",
            "us--2",
            "evil.com/x-y-1",
            "us-west-2 ",
        ] {
            assert!(sts_endpoint(r, false).is_err(), "{r:?} accepted");
        }
    }

    #[test]
    fn custom_hosts_must_be_plain_dns_names() {
        assert!(StsEndpoint::custom("sts.us-west-2.amazonaws.com", "us-west-2").is_ok());
        for h in [
            "",
            "STS.amazonaws.com",
            "sts.amazonaws.com.",
            "sts.amazonaws.com:443",
            "user@sts.amazonaws.com",
            "https://sts.amazonaws.com",
            "sts.amazonaws.com/x",
            "localhost",
        ] {
            assert!(
                StsEndpoint::custom(h, "us-east-1").is_err(),
                "{h:?} accepted"
            );
        }
    }
}
