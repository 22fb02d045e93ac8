//! The STS host allow-list (DESIGN §5).
//!
//! An exact list, not a pattern: a host is allowed only if it is one of the names built from the
//! region table below (plus configured `extra_regions`). Look-alikes such as
//! `sts.amazonaws.com.evil.example`, `evil.us-west-2.amazonaws.com`, upper case, a trailing dot,
//! a port or userinfo all fail.

use std::collections::BTreeMap;
use std::fmt;

/// An AWS partition.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Partition {
    /// Commercial regions (`aws`).
    Aws,
    /// China (`aws-cn`).
    AwsCn,
    /// GovCloud (`aws-us-gov`).
    AwsUsGov,
    /// ISO (`aws-iso`, `c2s.ic.gov`).
    AwsIso,
    /// ISO-B (`aws-iso-b`, `sc2s.sgov.gov`).
    AwsIsoB,
}

impl Partition {
    /// The partition as it appears in ARNs (`aws`, `aws-cn`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Aws => "aws",
            Self::AwsCn => "aws-cn",
            Self::AwsUsGov => "aws-us-gov",
            Self::AwsIso => "aws-iso",
            Self::AwsIsoB => "aws-iso-b",
        }
    }

    /// The DNS suffix of the partition's regional endpoints.
    pub const fn dns_suffix(self) -> &'static str {
        match self {
            Self::Aws | Self::AwsUsGov => "amazonaws.com",
            Self::AwsCn => "amazonaws.com.cn",
            Self::AwsIso => "c2s.ic.gov",
            Self::AwsIsoB => "sc2s.sgov.gov",
        }
    }

    /// The partition a region name belongs to, from its prefix.
    pub fn of_region(region: &str) -> Partition {
        if region.starts_with("cn-") {
            Self::AwsCn
        } else if region.starts_with("us-gov-") {
            Self::AwsUsGov
        } else if region.starts_with("us-isob-") {
            Self::AwsIsoB
        } else if region.starts_with("us-iso-") {
            Self::AwsIso
        } else {
            Self::Aws
        }
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The regions whose STS endpoints are known. Data in one place; extend at run time with
/// [`StsHostAllowList::with_extra_regions`] so a new AWS region needs no release.
pub const KNOWN_REGIONS: &[&str] = &[
    // aws
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    // aws-us-gov
    "us-gov-east-1",
    "us-gov-west-1",
    // aws-cn
    "cn-north-1",
    "cn-northwest-1",
    // aws-iso, aws-iso-b
    "us-iso-east-1",
    "us-iso-west-1",
    "us-isob-east-1",
];

/// An allowed STS endpoint, resolved from a host name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StsHost {
    name: String,
    region: String,
    partition: Partition,
    fips: bool,
}

impl StsHost {
    /// The host name exactly as signed (lowercase, no port).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The region of the endpoint (`us-east-1` for the global `sts.amazonaws.com`).
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The partition of the endpoint.
    pub fn partition(&self) -> Partition {
        self.partition
    }

    /// Whether this is a FIPS endpoint (`sts-fips.*`, or any GovCloud endpoint).
    pub fn is_fips(&self) -> bool {
        self.fips
    }
}

impl fmt::Display for StsHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// A region name given in configuration was not plausible.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid region name {0:?}: expected lowercase letters, digits and dashes like \"eu-west-4\""
)]
pub struct InvalidRegion(pub String);

/// Why a host is not allowed.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// Not an STS endpoint of a known region.
    #[error("{0:?} is not an allowed AWS STS endpoint")]
    NotSts(String),
    /// A valid STS endpoint, but FIPS mode accepts only FIPS endpoints.
    #[error("{0:?} is not a FIPS endpoint; this verifier accepts only FIPS STS endpoints")]
    NotFips(String),
}

/// The exact set of STS hosts a proof may name.
#[derive(Clone, Debug)]
pub struct StsHostAllowList {
    hosts: BTreeMap<String, StsHost>,
    fips_only: bool,
}

impl Default for StsHostAllowList {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether `region` follows the [`Region`](crate::names::Region) rule (`eu-west-4`).
pub fn is_plausible_region(region: &str) -> bool {
    region.parse::<crate::names::Region>().is_ok()
}

impl StsHostAllowList {
    /// The allow-list of every [`KNOWN_REGIONS`] endpoint, FIPS mode off.
    pub fn new() -> Self {
        let mut list = Self {
            hosts: BTreeMap::new(),
            fips_only: false,
        };
        list.insert(StsHost {
            name: "sts.amazonaws.com".to_owned(),
            region: "us-east-1".to_owned(),
            partition: Partition::Aws,
            fips: false,
        });
        for region in KNOWN_REGIONS {
            list.add_region(region);
        }
        list
    }

    /// Accept only FIPS endpoints (`sts-fips.*`, and GovCloud's `sts.us-gov-*`).
    #[must_use]
    pub fn fips_only(mut self, on: bool) -> Self {
        self.fips_only = on;
        self
    }

    /// Whether FIPS mode is on.
    pub fn is_fips_only(&self) -> bool {
        self.fips_only
    }

    /// Adds regions that are not in [`KNOWN_REGIONS`] (a new AWS region, without a release).
    /// The partition is taken from the name's prefix (`cn-`, `us-gov-`, `us-iso-`, `us-isob-`).
    pub fn with_extra_regions<I, S>(mut self, regions: I) -> Result<Self, InvalidRegion>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for region in regions {
            let region = region.as_ref();
            if !is_plausible_region(region) {
                return Err(InvalidRegion(region.to_owned()));
            }
            self.add_region(region);
        }
        Ok(self)
    }

    fn add_region(&mut self, region: &str) {
        let partition = Partition::of_region(region);
        let suffix = partition.dns_suffix();
        self.insert(StsHost {
            name: format!("sts.{region}.{suffix}"),
            region: region.to_owned(),
            partition,
            fips: partition == Partition::AwsUsGov,
        });
        if matches!(partition, Partition::Aws | Partition::AwsUsGov) {
            self.insert(StsHost {
                name: format!("sts-fips.{region}.{suffix}"),
                region: region.to_owned(),
                partition,
                fips: true,
            });
        }
    }

    fn insert(&mut self, host: StsHost) {
        self.hosts.insert(host.name.clone(), host);
    }

    /// Resolves a host name exactly as it appears in the proof's URL (no normalisation: upper
    /// case, a trailing dot or a port are not the same host).
    pub fn resolve(&self, host: &str) -> Result<&StsHost, HostError> {
        let found = self
            .hosts
            .get(host)
            .ok_or_else(|| HostError::NotSts(printable(host)))?;
        if self.fips_only && !found.fips {
            return Err(HostError::NotFips(found.name.clone()));
        }
        Ok(found)
    }

    /// Every allowed host, in name order.
    pub fn hosts(&self) -> impl Iterator<Item = &StsHost> {
        self.hosts
            .values()
            .filter(move |h| !self.fips_only || h.fips)
    }
}

/// A bounded, printable rendering of untrusted text for error messages.
pub(crate) fn printable(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(80)
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect();
    if s.chars().count() > 80 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> StsHostAllowList {
        StsHostAllowList::new()
    }

    #[test]
    fn global_host_is_us_east_1() {
        let h = list().resolve("sts.amazonaws.com").unwrap().clone();
        assert_eq!(h.region(), "us-east-1");
        assert_eq!(h.partition(), Partition::Aws);
        assert!(!h.is_fips());
    }

    #[test]
    fn regional_host_is_allowed() {
        let l = list();
        let h = l.resolve("sts.us-west-2.amazonaws.com").unwrap();
        assert_eq!(h.region(), "us-west-2");
    }

    #[test]
    fn fips_host_is_allowed_and_fips() {
        let l = list();
        let h = l.resolve("sts-fips.us-east-1.amazonaws.com").unwrap();
        assert!(h.is_fips());
        assert_eq!(h.region(), "us-east-1");
    }

    #[test]
    fn china_host_is_allowed_in_aws_cn() {
        let l = list();
        let h = l.resolve("sts.cn-north-1.amazonaws.com.cn").unwrap();
        assert_eq!(h.partition(), Partition::AwsCn);
        assert!(l.resolve("sts.cn-north-1.amazonaws.com").is_err());
    }

    #[test]
    fn govcloud_host_is_allowed_and_counts_as_fips() {
        let l = list();
        let h = l.resolve("sts.us-gov-west-1.amazonaws.com").unwrap();
        assert_eq!(h.partition(), Partition::AwsUsGov);
        assert!(h.is_fips());
    }

    #[test]
    fn iso_hosts_are_allowed() {
        let l = list();
        assert_eq!(
            l.resolve("sts.us-iso-east-1.c2s.ic.gov")
                .unwrap()
                .partition(),
            Partition::AwsIso
        );
        assert_eq!(
            l.resolve("sts.us-isob-east-1.sc2s.sgov.gov")
                .unwrap()
                .partition(),
            Partition::AwsIsoB
        );
    }

    #[test]
    fn suffix_look_alike_is_rejected() {
        assert!(list().resolve("sts.amazonaws.com.evil.example").is_err());
    }

    #[test]
    fn other_domain_with_region_is_rejected() {
        assert!(list().resolve("sts.us-west-2.example.com").is_err());
    }

    #[test]
    fn non_sts_service_prefix_is_rejected() {
        assert!(list().resolve("evil.us-west-2.amazonaws.com").is_err());
    }

    #[test]
    fn unknown_region_is_rejected() {
        assert!(list().resolve("sts.not-a-region.amazonaws.com").is_err());
    }

    #[test]
    fn upper_case_host_is_rejected() {
        assert!(list().resolve("STS.us-west-2.amazonaws.com").is_err());
        assert!(list().resolve("sts.US-WEST-2.amazonaws.com").is_err());
    }

    #[test]
    fn trailing_dot_is_rejected() {
        assert!(list().resolve("sts.amazonaws.com.").is_err());
    }

    #[test]
    fn explicit_port_is_rejected() {
        assert!(list().resolve("sts.amazonaws.com:443").is_err());
    }

    #[test]
    fn userinfo_is_rejected() {
        assert!(list().resolve("user@sts.amazonaws.com").is_err());
    }

    #[test]
    fn fips_mode_rejects_non_fips_hosts() {
        let l = list().fips_only(true);
        assert!(matches!(
            l.resolve("sts.us-west-2.amazonaws.com"),
            Err(HostError::NotFips(_))
        ));
        assert!(l.resolve("sts.amazonaws.com").is_err());
        assert!(l.resolve("sts-fips.us-west-2.amazonaws.com").is_ok());
        assert!(l.resolve("sts.us-gov-east-1.amazonaws.com").is_ok());
    }

    #[test]
    fn extra_regions_extend_the_list() {
        let l = list().with_extra_regions(["eu-west-9"]).unwrap();
        assert_eq!(
            l.resolve("sts.eu-west-9.amazonaws.com").unwrap().region(),
            "eu-west-9"
        );
        assert!(list().with_extra_regions(["EU-west-9"]).is_err());
        assert!(list().with_extra_regions(["eu-west-9.evil"]).is_err());
    }
}
