//! Allow rules (`spec.allow[]`) and the verified identity they are matched against.

use std::fmt;

use super::error::FieldError;
use super::org::{OrgCondition, OrgInfo};
use super::raw::RawAllowRule;
use crate::glob::ArnGlob;

/// The verified AWS identity a policy is checked against: what STS answered for the proof, plus
/// the region the proof was signed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Subject<'a> {
    /// The 12-digit AWS account ID from STS (`Account`).
    pub account: &'a str,
    /// The caller's ARN from STS (`Arn`), e.g.
    /// `arn:aws:sts::333333333333:assumed-role/teleport-node-role/i-0abc123def4567890`.
    pub arn: &'a str,
    /// The region of the proof's SigV4 credential scope, which is the region of the STS endpoint
    /// it was signed for (`us-east-1` for the global endpoint `sts.amazonaws.com`). It is not the
    /// region the workload runs in.
    pub region: &'a str,
}

/// One `spec.allow` rule. It matches a [`Subject`] when **every** field it sets matches; it sets
/// at least one of `aws_account`, `aws_arn` and `aws_organization_id`.
///
/// - `aws_account`: the subject's account equals it exactly.
/// - `aws_arn`: the subject's ARN matches the [`ArnGlob`] (anchored, case-sensitive).
/// - `aws_regions`: the subject's region is one of them. This is the region of the **STS
///   endpoint the proof was signed for** (the SigV4 credential scope), which a workload chooses
///   freely; it restricts which STS endpoint may vouch for the identity, not where the workload
///   runs. Teleport rejects this field for `iam` tokens; iam-join accepts it with this meaning.
/// - `aws_organization_id` and `aws_organizational_units`: the subject's account is in that AWS
///   organization (and under the OUs), as an Organizations lookup reports ([`OrgCondition`]).
///   Without that report ([`OrgInfo`]) such a rule never matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowRule {
    aws_account: Option<String>,
    aws_arn: Option<ArnGlob>,
    aws_regions: Option<Vec<String>>,
    organization: Option<OrgCondition>,
}

impl AllowRule {
    /// The account the subject must be in, if the rule restricts it.
    pub fn aws_account(&self) -> Option<&str> {
        self.aws_account.as_deref()
    }

    /// The pattern the subject's ARN must match, if the rule restricts it.
    pub fn aws_arn(&self) -> Option<&ArnGlob> {
        self.aws_arn.as_ref()
    }

    /// The STS regions the proof must be signed for, if the rule restricts them (never an
    /// empty slice).
    pub fn aws_regions(&self) -> Option<&[String]> {
        self.aws_regions.as_deref()
    }

    /// The AWS Organizations condition, if the rule sets one.
    pub fn organization(&self) -> Option<&OrgCondition> {
        self.organization.as_ref()
    }

    /// Whether matching this rule needs to know the subject account's organization.
    pub fn needs_org(&self) -> bool {
        self.organization.is_some()
    }

    /// Whether `subject` satisfies every field this rule sets. A rule with an organization
    /// condition never matches here: use [`matches_with_org`](Self::matches_with_org).
    pub fn matches(&self, subject: &Subject<'_>) -> bool {
        self.matches_with_org(subject, None)
    }

    /// Whether `subject`, whose account AWS Organizations describes as `org` (if looked up),
    /// satisfies every field this rule sets. An organization condition without `org` fails.
    pub fn matches_with_org(&self, subject: &Subject<'_>, org: Option<&OrgInfo>) -> bool {
        self.matches_identity(subject)
            && self
                .organization
                .as_ref()
                .is_none_or(|condition| org.is_some_and(|org| condition.matches(org)))
    }

    /// Whether the fields read from the verified identity alone (account, ARN, region) match.
    pub(super) fn matches_identity(&self, subject: &Subject<'_>) -> bool {
        self.aws_account
            .as_deref()
            .is_none_or(|account| account == subject.account)
            && self
                .aws_arn
                .as_ref()
                .is_none_or(|glob| glob.matches(subject.arn))
            && self
                .aws_regions
                .as_deref()
                .is_none_or(|regions| regions.iter().any(|r| r == subject.region))
    }

    /// Problems that do not make the rule invalid but probably make it wrong: `(field, message)`
    /// with the field relative to the rule.
    pub(super) fn lints(&self) -> Vec<(&'static str, String)> {
        let mut lints = Vec::new();
        let Some(glob) = &self.aws_arn else {
            return lints;
        };
        match (
            &self.aws_account,
            arn_field(glob, 4).filter(|a| is_account_id(a)),
        ) {
            (Some(account), Some(in_arn)) if account != in_arn => lints.push((
                "aws_arn",
                format!(
                    "the ARN pattern names account {in_arn} but aws_account is {account}: \
                     this rule can never match"
                ),
            )),
            (None, None) if self.organization.is_none() => lints.push((
                "aws_arn",
                "the ARN pattern does not fix the account and the rule sets no aws_account: \
                 it admits matching identities from any AWS account"
                    .to_owned(),
            )),
            _ => {}
        }
        let names_iam_role = arn_field(glob, 2) == Some("iam")
            && glob
                .as_str()
                .split(':')
                .nth(5)
                .is_some_and(|resource| resource.starts_with("role/"));
        if names_iam_role {
            lints.push((
                "aws_arn",
                "STS reports a role session as \
                 `arn:<partition>:sts::<account>:assumed-role/<role>/<session>`, never as an IAM \
                 role ARN (`:iam::<account>:role/...`): this pattern matches no role session"
                    .to_owned(),
            ));
        }
        lints
    }
}

/// Field `n` (0-based, colon-separated) of an ARN pattern, if the pattern fixes it: no wildcard
/// in it or before it, since a `*` can span colons.
fn arn_field(glob: &ArnGlob, n: usize) -> Option<&str> {
    let mut fields = glob.as_str().split(':');
    for _ in 0..n {
        let field = fields.next()?;
        if field.contains(['*', '?']) {
            return None;
        }
    }
    fields.next().filter(|f| !f.contains(['*', '?']))
}

impl TryFrom<RawAllowRule> for AllowRule {
    /// The field in the error is relative to the rule (`aws_account`, or empty for the rule as
    /// a whole).
    type Error = FieldError;

    fn try_from(raw: RawAllowRule) -> Result<Self, Self::Error> {
        let aws_account = raw
            .aws_account
            .map(|account| {
                let account = account.0;
                if is_account_id(&account) {
                    Ok(account)
                } else {
                    Err(FieldError::new(
                        "aws_account",
                        format!(
                            "must be exactly 12 digits, got {account:?} ({} characters)",
                            account.chars().count()
                        ),
                    ))
                }
            })
            .transpose()?;
        let aws_arn = raw.aws_arn.map(|arn| parse_arn_pattern(&arn)).transpose()?;
        let aws_regions = raw.aws_regions.map(validate_regions).transpose()?;
        let organization =
            OrgCondition::from_raw(raw.aws_organization_id, raw.aws_organizational_units)?;
        if aws_account.is_none() && aws_arn.is_none() && organization.is_none() {
            return Err(FieldError::new(
                "",
                "the rule sets neither aws_account nor aws_arn nor aws_organization_id (an empty \
                 rule would admit any AWS identity)",
            ));
        }
        Ok(Self {
            aws_account,
            aws_arn,
            aws_regions,
            organization,
        })
    }
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

fn parse_arn_pattern(arn: &str) -> Result<ArnGlob, FieldError> {
    let invalid = |message: String| FieldError::new("aws_arn", message);
    if !arn.starts_with("arn:") {
        return Err(invalid(format!(
            "must be an ARN pattern starting with `arn:`, got {arn:?}"
        )));
    }
    if let Some(c) = arn.chars().find(|c| c.is_whitespace()) {
        return Err(invalid(format!(
            "ARNs never contain whitespace, but the pattern contains {c:?}"
        )));
    }
    ArnGlob::new(arn).map_err(|e| invalid(e.to_string()))
}

fn validate_regions(regions: Vec<String>) -> Result<Vec<String>, FieldError> {
    if regions.is_empty() {
        return Err(FieldError::new(
            "aws_regions",
            "must list at least one region when present (omit it to allow every region)",
        ));
    }
    for (i, region) in regions.iter().enumerate() {
        let field = format!("aws_regions[{i}]");
        if !is_plausible_region(region) {
            return Err(FieldError::new(
                field,
                format!("{region:?} is not an AWS region name such as \"us-west-2\""),
            ));
        }
        if regions[..i].contains(region) {
            return Err(FieldError::new(
                field,
                format!("duplicate region {region:?}"),
            ));
        }
    }
    Ok(regions)
}

/// `us-west-2`, `us-gov-west-1`, `cn-north-1`, `us-isob-east-1`, ...: lower-case ASCII
/// letters and digits in at least three dash-separated parts, the first all letters, the last all
/// digits. A real region list is the STS host allow-list's business; this only catches typos.
fn is_plausible_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    s.len() <= 32
        && parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && parts
            .first()
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts
            .last()
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

/// Plain words, e.g. `any identity in AWS account 111111111111` or `an identity in AWS account
/// 333333333333 whose ARN matches `arn:...:i-*`, proof signed for STS region us-west-2`.
impl fmt::Display for AllowRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.aws_account, &self.aws_arn) {
            (Some(account), None) => write!(f, "any identity in AWS account {account}")?,
            (None, None) if self.organization.is_some() => f.write_str("any identity")?,
            (account, Some(glob)) => {
                f.write_str("an identity")?;
                match account {
                    Some(account) => write!(f, " in AWS account {account}")?,
                    // When the pattern spells the account out, the ARN says it all.
                    None if arn_field(glob, 4).is_some_and(is_account_id) => {}
                    // The organization condition, written below, bounds the accounts.
                    None if self.organization.is_some() => {}
                    None => f.write_str(" in any AWS account")?,
                }
                if glob.has_wildcards() {
                    write!(f, " whose ARN matches `{glob}`")?;
                } else {
                    write!(f, " whose ARN is exactly `{glob}`")?;
                }
            }
            // Unreachable for a validated rule; say so rather than print something misleading.
            (None, None) => f.write_str("no identity")?,
        }
        if let Some(organization) = &self.organization {
            write!(f, " whose account is {organization}")?;
        }
        if let Some(regions) = &self.aws_regions {
            f.write_str(", proof signed for STS region ")?;
            for (i, region) in regions.iter().enumerate() {
                match i {
                    0 => {}
                    i if i + 1 == regions.len() => f.write_str(" or ")?,
                    _ => f.write_str(", ")?,
                }
                f.write_str(region)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::raw::StringScalar;

    fn rule(account: Option<&str>, arn: Option<&str>, regions: Option<&[&str]>) -> AllowRule {
        AllowRule::try_from(RawAllowRule {
            aws_account: account.map(|a| StringScalar(a.to_owned())),
            aws_arn: arn.map(str::to_owned),
            aws_regions: regions.map(|r| r.iter().map(|s| (*s).to_owned()).collect()),
            ..RawAllowRule::default()
        })
        .unwrap()
    }

    fn subject<'a>(account: &'a str, arn: &'a str, region: &'a str) -> Subject<'a> {
        Subject {
            account,
            arn,
            region,
        }
    }

    #[test]
    fn every_set_field_must_match() {
        let r = rule(
            Some("333333333333"),
            Some("arn:aws:sts::333333333333:assumed-role/r/*"),
            Some(&["us-west-2"]),
        );
        let arn = "arn:aws:sts::333333333333:assumed-role/r/s";
        assert!(r.matches(&subject("333333333333", arn, "us-west-2")));
        assert!(!r.matches(&subject("333333333333", arn, "us-east-1")));
        assert!(!r.matches(&subject("444444444444", arn, "us-west-2")));
        assert!(!r.matches(&subject(
            "333333333333",
            "arn:aws:sts::333333333333:assumed-role/q/s",
            "us-west-2"
        )));
    }

    #[test]
    fn region_plausibility() {
        for ok in [
            "us-west-2",
            "us-gov-west-1",
            "cn-north-1",
            "us-isob-east-1",
            "eu-isoe-west-1",
        ] {
            assert!(is_plausible_region(ok), "{ok}");
        }
        for bad in [
            "",
            "us-west",
            "US-WEST-2",
            "us_west_2",
            "us--west-2",
            "-us-west-2",
            "us-west-2-",
            "1s-west-2",
            "us-west-x",
        ] {
            assert!(!is_plausible_region(bad), "{bad}");
        }
    }

    #[test]
    fn lints_flag_account_mismatch_any_account_and_iam_role_arns() {
        let mismatch = rule(
            Some("111111111111"),
            Some("arn:aws:sts::222222222222:assumed-role/r/*"),
            None,
        );
        assert_eq!(mismatch.lints().len(), 1);
        let any_account = rule(None, Some("arn:aws:sts::*:assumed-role/r/*"), None);
        assert_eq!(any_account.lints().len(), 1);
        let iam_role = rule(
            Some("111111111111"),
            Some("arn:aws:iam::111111111111:role/r"),
            None,
        );
        assert_eq!(iam_role.lints().len(), 1);
        let fine = rule(
            None,
            Some("arn:aws:sts::333333333333:assumed-role/r/*"),
            None,
        );
        assert!(fine.lints().is_empty());
        let star_before_account = rule(
            Some("111111111111"),
            Some("arn:*:111111111111:user/x"),
            None,
        );
        assert!(star_before_account.lints().is_empty());
    }

    #[test]
    fn display_describes_the_rule_in_words() {
        assert_eq!(
            rule(Some("111111111111"), None, None).to_string(),
            "any identity in AWS account 111111111111"
        );
        assert_eq!(
            rule(
                Some("3".repeat(12).as_str()),
                Some("arn:aws:sts::333333333333:assumed-role/r/i-*"),
                Some(&["us-west-1", "us-west-2", "eu-west-1"])
            )
            .to_string(),
            "an identity in AWS account 333333333333 whose ARN matches `arn:aws:sts::333333333333:assumed-role/r/i-*`, \
             proof signed for STS region us-west-1, us-west-2 or eu-west-1"
        );
        assert_eq!(
            rule(None, Some("arn:aws:iam::111111111111:user/alice"), None).to_string(),
            "an identity whose ARN is exactly `arn:aws:iam::111111111111:user/alice`"
        );
        assert_eq!(
            rule(None, Some("arn:aws:sts::*:assumed-role/r/*"), None).to_string(),
            "an identity in any AWS account whose ARN matches `arn:aws:sts::*:assumed-role/r/*`"
        );
    }
}
