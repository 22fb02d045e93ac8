//! AWS Organizations conditions of an allow rule: Teleport's `aws_organization_id` and
//! `aws_organizational_units` (`include` / `exclude`), matched against what an Organizations
//! lookup (`DescribeAccount`, `ListParents`) says about the caller's account.

use std::fmt;

use super::error::FieldError;
use super::raw::RawOrganizationalUnits;

/// What AWS Organizations says about one account: the organization it belongs to and the path
/// from its parent up to the organization's root, e.g. `["ou-ab12-11111111",
/// "ou-ab12-22222222", "r-ab12"]` (nearest first; the order does not matter for matching).
///
/// The caller fetches it (this crate does no I/O) only when
/// [`JoinToken::needs_org_lookup`](super::JoinToken::needs_org_lookup) says so.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrgInfo {
    /// `o-` followed by 10 to 32 lower-case letters or digits.
    pub organization_id: String,
    /// The IDs of the OUs (`ou-...`) and the root (`r-...`) above the account.
    pub ou_path: Vec<String>,
}

/// The organization condition of one rule: the account must be in `organization_id`, and, when
/// OUs are given, under one of `include` (somewhere on its path to the root) and under none of
/// `exclude` (exclude wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgCondition {
    organization_id: String,
    units: Option<UnitFilter>,
}

/// `aws_organizational_units`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct UnitFilter {
    /// `None` for Teleport's wildcard `["*"]`: any OU of the organization.
    include: Option<Vec<String>>,
    exclude: Vec<String>,
}

impl OrgCondition {
    /// `aws_organization_id`.
    pub fn organization_id(&self) -> &str {
        &self.organization_id
    }

    /// `aws_organizational_units.include`, or `None` when any OU is included (no filter, or
    /// the wildcard `*`).
    pub fn include(&self) -> Option<&[String]> {
        self.units.as_ref().and_then(|u| u.include.as_deref())
    }

    /// `aws_organizational_units.exclude` (empty when not set).
    pub fn exclude(&self) -> &[String] {
        self.units.as_ref().map_or(&[], |u| u.exclude.as_slice())
    }

    /// Whether the account described by `org` satisfies this condition.
    pub fn matches(&self, org: &OrgInfo) -> bool {
        if org.organization_id != self.organization_id {
            return false;
        }
        let on_path = |ids: &[String]| ids.iter().any(|id| org.ou_path.contains(id));
        if on_path(self.exclude()) {
            return false;
        }
        self.include().is_none_or(on_path)
    }

    /// Validates the two raw fields of a rule. `Ok(None)` when neither is set.
    pub(super) fn from_raw(
        organization_id: Option<String>,
        units: Option<RawOrganizationalUnits>,
    ) -> Result<Option<Self>, FieldError> {
        let Some(organization_id) = organization_id else {
            return match units {
                None => Ok(None),
                Some(_) => Err(FieldError::new(
                    "aws_organizational_units",
                    "needs aws_organization_id in the same rule (Teleport refuses OU filters \
                     without it)",
                )),
            };
        };
        if !is_organization_id(&organization_id) {
            return Err(FieldError::new(
                "aws_organization_id",
                format!(
                    "{organization_id:?} is not an AWS organization ID: `o-` followed by 10 to \
                     32 lower-case letters or digits, e.g. \"o-a1b2c3d4e5\""
                ),
            ));
        }
        let units = units.map(UnitFilter::from_raw).transpose()?;
        Ok(Some(Self {
            organization_id,
            units,
        }))
    }
}

impl UnitFilter {
    fn from_raw(raw: RawOrganizationalUnits) -> Result<Self, FieldError> {
        const FIELD: &str = "aws_organizational_units";
        let include = match raw.include {
            None => {
                return Err(FieldError::new(
                    format!("{FIELD}.include"),
                    "missing: list the OUs (or roots) to admit, or `[\"*\"]` for every OU; \
                     Teleport refuses OU filters without include",
                ));
            }
            Some(list) if list.len() == 1 && list[0] == "*" => None,
            Some(list) => {
                if list.iter().any(|id| id == "*") {
                    return Err(FieldError::new(
                        format!("{FIELD}.include"),
                        "the wildcard `*` must be the only entry",
                    ));
                }
                Some(check_unit_list(list, &format!("{FIELD}.include"))?)
            }
        };
        let exclude = match raw.exclude {
            None => Vec::new(),
            Some(list) => {
                if list.iter().any(|id| id == "*") {
                    return Err(FieldError::new(
                        format!("{FIELD}.exclude"),
                        "the wildcard `*` is not allowed here (it would exclude everything)",
                    ));
                }
                check_unit_list(list, &format!("{FIELD}.exclude"))?
            }
        };
        Ok(Self { include, exclude })
    }
}

/// A non-empty list of OU or root IDs without duplicates.
fn check_unit_list(list: Vec<String>, field: &str) -> Result<Vec<String>, FieldError> {
    if list.is_empty() {
        return Err(FieldError::new(
            field,
            "must list at least one OU or root ID when present",
        ));
    }
    for (i, id) in list.iter().enumerate() {
        let item = format!("{field}[{i}]");
        if !is_unit_id(id) {
            return Err(FieldError::new(
                item,
                format!(
                    "{id:?} is not an OU ID (`ou-` + 4 to 32 and then 8 to 32 lower-case letters \
                     or digits, e.g. \"ou-ab12-cd34ef56\") or a root ID (`r-` + 4 to 32, e.g. \
                     \"r-ab12\")"
                ),
            ));
        }
        if list[..i].contains(id) {
            return Err(FieldError::new(item, format!("duplicate ID {id:?}")));
        }
    }
    Ok(list)
}

fn is_lower_alnum(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// `o-` + 10 to 32 lower-case letters or digits (AWS's documented pattern).
pub(super) fn is_organization_id(s: &str) -> bool {
    s.strip_prefix("o-")
        .is_some_and(|rest| is_lower_alnum(rest, 10, 32))
}

/// `ou-` + 4..=32 + `-` + 8..=32, or `r-` + 4..=32 (AWS's documented patterns).
pub(super) fn is_unit_id(s: &str) -> bool {
    if let Some(rest) = s.strip_prefix("ou-") {
        return rest.split_once('-').is_some_and(|(root, unit)| {
            is_lower_alnum(root, 4, 32) && is_lower_alnum(unit, 8, 32)
        });
    }
    s.strip_prefix("r-")
        .is_some_and(|rest| is_lower_alnum(rest, 4, 32))
}

/// Plain words, e.g. `whose account is in AWS organization o-... under OU ou-... but not under
/// ou-...`.
impl fmt::Display for OrgCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "in AWS organization {}", self.organization_id)?;
        if let Some(include) = self.include() {
            write!(f, " under {}", or_list(include))?;
        }
        if !self.exclude().is_empty() {
            write!(f, " but not under {}", or_list(self.exclude()))?;
        }
        Ok(())
    }
}

fn or_list(ids: &[String]) -> String {
    match ids {
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
        [] => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condition(include: Option<&[&str]>, exclude: Option<&[&str]>) -> OrgCondition {
        let owned = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect();
        let units = (include.is_some() || exclude.is_some()).then(|| RawOrganizationalUnits {
            include: include.map(owned),
            exclude: exclude.map(owned),
        });
        OrgCondition::from_raw(Some("o-a1b2c3d4e5".to_owned()), units)
            .unwrap()
            .unwrap()
    }

    fn org(id: &str, path: &[&str]) -> OrgInfo {
        OrgInfo {
            organization_id: id.to_owned(),
            ou_path: path.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn id_shapes_follow_aws_patterns() {
        for ok in ["o-a1b2c3d4e5", &format!("o-{}", "a".repeat(32))] {
            assert!(is_organization_id(ok), "{ok}");
        }
        for bad in [
            "o-a1b2c3d4e",
            "o-A1B2C3D4E5",
            "a1b2c3d4e5",
            "o-a1b2c3d4e5-",
            &format!("o-{}", "a".repeat(33)),
            "o-a1b2c3d4é5",
        ] {
            assert!(!is_organization_id(bad), "{bad}");
        }
        for ok in ["ou-ab12-cd34ef56", "r-ab12", "ou-abcd-12345678901234567890"] {
            assert!(is_unit_id(ok), "{ok}");
        }
        for bad in [
            "ou-ab1-cd34ef56",
            "ou-ab12-cd34ef5",
            "ou-ab12",
            "OU-ab12-cd34ef56",
            "r-ab1",
            "r-AB12",
            "root",
            "*",
            "",
        ] {
            assert!(!is_unit_id(bad), "{bad}");
        }
    }

    #[test]
    fn an_ou_anywhere_on_the_path_matches_and_exclude_wins() {
        let path = ["ou-ab12-22222222", "ou-ab12-11111111", "r-ab12"];
        let account = org("o-a1b2c3d4e5", &path);
        assert!(condition(None, None).matches(&account));
        assert!(condition(Some(&["ou-ab12-11111111"]), None).matches(&account));
        assert!(condition(Some(&["r-ab12"]), None).matches(&account));
        assert!(condition(Some(&["*"]), None).matches(&account));
        assert!(!condition(Some(&["ou-ab12-33333333"]), None).matches(&account));
        assert!(
            !condition(Some(&["r-ab12"]), Some(&["ou-ab12-22222222"])).matches(&account),
            "exclude wins over include"
        );
        assert!(!condition(None, None).matches(&org("o-zzzzzzzzzz", &path)));
    }

    #[test]
    fn malformed_filters_are_refused_naming_the_field() {
        let raw = |include: Option<Vec<&str>>, exclude: Option<Vec<&str>>| {
            let owned = |l: Vec<&str>| l.into_iter().map(str::to_owned).collect();
            OrgCondition::from_raw(
                Some("o-a1b2c3d4e5".to_owned()),
                Some(RawOrganizationalUnits {
                    include: include.map(owned),
                    exclude: exclude.map(owned),
                }),
            )
            .unwrap_err()
            .field
        };
        assert_eq!(raw(None, None), "aws_organizational_units.include");
        assert_eq!(raw(Some(vec![]), None), "aws_organizational_units.include");
        assert_eq!(
            raw(Some(vec!["*", "r-ab12"]), None),
            "aws_organizational_units.include"
        );
        assert_eq!(
            raw(Some(vec!["r-ab12"]), Some(vec![])),
            "aws_organizational_units.exclude"
        );
        assert_eq!(
            raw(Some(vec!["r-ab12"]), Some(vec!["*"])),
            "aws_organizational_units.exclude"
        );
        assert_eq!(
            raw(Some(vec!["r-ab12", "ou-x"]), None),
            "aws_organizational_units.include[1]"
        );
        assert_eq!(
            raw(Some(vec!["r-ab12", "r-ab12"]), None),
            "aws_organizational_units.include[1]"
        );
        let no_org = OrgCondition::from_raw(None, Some(RawOrganizationalUnits::default()));
        assert_eq!(no_org.unwrap_err().field, "aws_organizational_units");
        let bad_org = OrgCondition::from_raw(Some("o-123".to_owned()), None);
        assert_eq!(bad_org.unwrap_err().field, "aws_organization_id");
    }

    #[test]
    fn display_names_the_organization_and_the_units() {
        assert_eq!(
            condition(
                Some(&["ou-ab12-11111111", "r-ab12"]),
                Some(&["ou-ab12-22222222"])
            )
            .to_string(),
            "in AWS organization o-a1b2c3d4e5 under ou-ab12-11111111 or r-ab12 but not under \
             ou-ab12-22222222"
        );
        assert_eq!(
            condition(None, None).to_string(),
            "in AWS organization o-a1b2c3d4e5"
        );
    }
}
