//! A validated `iam` join token.

use std::fmt;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::error::{FieldError, PolicyDenial};
use super::raw::RawToken;
use super::role::Role;
use super::rule::{AllowRule, Subject};

/// The only `kind` accepted.
pub(super) const KIND: &str = "token";
/// The only `version` accepted.
pub(super) const VERSION: &str = "v2";
/// The join method this crate verifies.
pub(super) const JOIN_METHOD: &str = "iam";
/// Longest token name accepted.
const MAX_NAME_LEN: usize = 256;

/// A join token with `join_method: iam`, validated: a non-empty name, at least one role without
/// duplicates, at least one allow rule, and an optional expiry.
///
/// Its [`Display`](fmt::Display) describes in plain words what it allows, for humans (e.g. a
/// `check-config` command).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinToken {
    name: String,
    description: Option<String>,
    roles: Vec<Role>,
    bot_name: Option<String>,
    expires: Option<OffsetDateTime>,
    allow: Vec<AllowRule>,
}

impl JoinToken {
    /// `metadata.name`: what clients name in `X-IAM-Join-Token`. Not a secret.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `metadata.description`, if set.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// `spec.roles`, normalised, in the order written, never empty.
    pub fn roles(&self) -> &[Role] {
        &self.roles
    }

    /// `spec.bot_name`, if set (Teleport's Machine ID tokens name their bot).
    pub fn bot_name(&self) -> Option<&str> {
        self.bot_name.as_deref()
    }

    /// `metadata.expires`, if set.
    pub fn expires(&self) -> Option<OffsetDateTime> {
        self.expires
    }

    /// `spec.allow`, never empty.
    pub fn allow(&self) -> &[AllowRule] {
        &self.allow
    }

    /// Whether the token has expired at `now`: it has an expiry and `now` is at or after it.
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expires.is_some_and(|expires| now >= expires)
    }

    /// The first allow rule that `subject` satisfies, ignoring expiry.
    pub fn matching_rule(&self, subject: &Subject<'_>) -> Option<&AllowRule> {
        self.allow.iter().find(|rule| rule.matches(subject))
    }

    /// Checks `subject` against this token at `now`: not expired, and **any** allow rule
    /// matches.
    ///
    /// # Errors
    ///
    /// [`PolicyDenial::TokenExpired`] or [`PolicyDenial::NotAllowed`].
    pub fn authorize(
        &self,
        subject: &Subject<'_>,
        now: OffsetDateTime,
    ) -> Result<(), PolicyDenial> {
        if self.is_expired(now) {
            return Err(PolicyDenial::TokenExpired);
        }
        match self.matching_rule(subject) {
            Some(_) => Ok(()),
            None => Err(PolicyDenial::NotAllowed),
        }
    }
}

pub(super) fn check_kind(kind: &str) -> Result<(), String> {
    if kind == KIND {
        Ok(())
    } else {
        Err(format!("must be `{KIND}`, got {kind:?}"))
    }
}

pub(super) fn check_version(version: &str) -> Result<(), String> {
    if version == VERSION {
        Ok(())
    } else {
        Err(format!(
            "must be `{VERSION}` (the only token version supported), got {version:?}"
        ))
    }
}

fn check_name(name: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@');
    if name.is_empty() {
        Err("must not be empty".to_owned())
    } else if name.len() > MAX_NAME_LEN || !name.chars().all(allowed) {
        Err(format!(
            "{name:?} is not a valid token name: use 1 to {MAX_NAME_LEN} ASCII letters, digits, \
             `-`, `_`, `.`, `:` or `@` (it is sent in an HTTP header)"
        ))
    } else {
        Ok(())
    }
}

impl TryFrom<RawToken> for JoinToken {
    /// The field in the error is the path from the document root, e.g. `spec.allow[1].aws_arn`.
    type Error = FieldError;

    fn try_from(raw: RawToken) -> Result<Self, Self::Error> {
        check_kind(&raw.kind).map_err(|m| FieldError::new("kind", m))?;
        check_version(&raw.version).map_err(|m| FieldError::new("version", m))?;
        check_name(&raw.metadata.name).map_err(|m| FieldError::new("metadata.name", m))?;
        if raw.spec.join_method != JOIN_METHOD {
            return Err(FieldError::new(
                "spec.join_method",
                format!("must be `{JOIN_METHOD}`, got {:?}", raw.spec.join_method),
            ));
        }

        let expires = raw
            .metadata
            .expires
            .map(|text| {
                OffsetDateTime::parse(&text, &Rfc3339).map_err(|e| {
                    FieldError::new(
                        "metadata.expires",
                        format!(
                            "{text:?} is not an RFC 3339 date and time such as \
                             2027-01-01T00:00:00Z: {e}"
                        ),
                    )
                })
            })
            .transpose()?;

        if raw.spec.roles.is_empty() {
            return Err(FieldError::new(
                "spec.roles",
                "at least one role is required",
            ));
        }
        let mut roles: Vec<Role> = Vec::with_capacity(raw.spec.roles.len());
        for (i, text) in raw.spec.roles.iter().enumerate() {
            let field = format!("spec.roles[{i}]");
            let role: Role = text
                .parse()
                .map_err(|e| FieldError::new(&field, format!("{e}")))?;
            if let Some(first) = roles.iter().position(|r| *r == role) {
                return Err(FieldError::new(
                    field,
                    format!("duplicate role `{role}` (already given as spec.roles[{first}])"),
                ));
            }
            roles.push(role);
        }

        if let Some(bot_name) = &raw.spec.bot_name
            && bot_name.trim().is_empty()
        {
            return Err(FieldError::new(
                "spec.bot_name",
                "must not be empty when present",
            ));
        }

        let raw_rules = raw.spec.allow.unwrap_or_default();
        if raw_rules.is_empty() {
            return Err(FieldError::new(
                "spec.allow",
                "an `iam` token needs at least one allow rule, each with aws_account and/or \
                 aws_arn",
            ));
        }
        let allow = raw_rules
            .into_iter()
            .enumerate()
            .map(|(i, raw_rule)| {
                AllowRule::try_from(raw_rule).map_err(|e| FieldError {
                    field: rule_field(i, &e.field),
                    message: e.message,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;

        Ok(Self {
            name: raw.metadata.name,
            description: raw.metadata.description.filter(|d| !d.trim().is_empty()),
            roles,
            bot_name: raw.spec.bot_name,
            expires,
            allow,
        })
    }
}

/// `spec.allow[i]` or `spec.allow[i].<field>`.
pub(super) fn rule_field(index: usize, field: &str) -> String {
    if field.is_empty() {
        format!("spec.allow[{index}]")
    } else {
        format!("spec.allow[{index}].{field}")
    }
}

/// Several lines: name, description, roles, bot, expiry, then each rule numbered from 1.
impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "token `{}` (join_method: iam)", self.name)?;
        if let Some(description) = &self.description {
            writeln!(f, "  description: {description}")?;
        }
        f.write_str("  roles: ")?;
        for (i, role) in self.roles.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(role.as_str())?;
        }
        writeln!(f)?;
        if let Some(bot_name) = &self.bot_name {
            writeln!(f, "  bot: {bot_name}")?;
        }
        match self.expires {
            None => writeln!(f, "  expires: never")?,
            Some(expires) => match expires.format(&Rfc3339) {
                Ok(text) => writeln!(f, "  expires: {text}")?,
                Err(_) => writeln!(f, "  expires: {expires}")?,
            },
        }
        writeln!(f, "  admits, when any of these rules matches:")?;
        for (i, rule) in self.allow.iter().enumerate() {
            writeln!(f, "    {}. {rule}", i + 1)?;
        }
        Ok(())
    }
}
