//! A validated `iam` join token.

use std::fmt;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::error::{FieldError, PolicyDenial};
use super::org::OrgInfo;
use super::raw::RawToken;
use super::role::Role;
use super::rule::{AllowRule, Subject};
use super::schema::{IgnoredField, TokenForm};

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
    form: TokenForm,
    description: Option<String>,
    roles: Vec<Role>,
    bot_name: Option<String>,
    expires: Option<OffsetDateTime>,
    allow: Vec<AllowRule>,
    ignored: Vec<IgnoredField>,
}

impl JoinToken {
    /// `metadata.name`: what clients name in `X-IAM-Join-Token`. Not a secret.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How the token was written: Teleport's resource or the Kubernetes operator's manifest.
    pub fn form(&self) -> TokenForm {
        self.form
    }

    /// The fields Teleport knows that were set on this token but cannot change an `iam`
    /// decision here (`metadata.labels`, `spec.suggested_labels`, ...), in document order.
    pub fn ignored_fields(&self) -> &[IgnoredField] {
        &self.ignored
    }

    /// `metadata.description`, if set.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// `spec.roles`, normalised, in the order written, never empty.
    pub fn roles(&self) -> &[Role] {
        &self.roles
    }

    /// `spec.bot_name`: set exactly when the roles include `Bot` (Teleport's Machine ID tokens
    /// name their bot).
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

    /// The first allow rule that `subject` satisfies, ignoring expiry. Rules with an
    /// organization condition never match here (see [`matching_rule_with_org`]).
    ///
    /// [`matching_rule_with_org`]: Self::matching_rule_with_org
    pub fn matching_rule(&self, subject: &Subject<'_>) -> Option<&AllowRule> {
        self.matching_rule_with_org(subject, None)
    }

    /// The first allow rule that `subject`, whose account AWS Organizations describes as
    /// `org`, satisfies, ignoring expiry.
    pub fn matching_rule_with_org(
        &self,
        subject: &Subject<'_>,
        org: Option<&OrgInfo>,
    ) -> Option<&AllowRule> {
        self.allow
            .iter()
            .find(|rule| rule.matches_with_org(subject, org))
    }

    /// Whether deciding for `subject` needs an AWS Organizations lookup of its account: no rule
    /// matches without one, and some rule with an organization condition matches on everything
    /// else. When this is `false`, [`authorize`](Self::authorize) decides alone.
    pub fn needs_org_lookup(&self, subject: &Subject<'_>) -> bool {
        self.matching_rule(subject).is_none()
            && self
                .allow
                .iter()
                .any(|rule| rule.needs_org() && rule.matches_identity(subject))
    }

    /// Checks `subject` against this token at `now`: not expired, and **any** allow rule
    /// matches. Rules with an organization condition never match here.
    ///
    /// # Errors
    ///
    /// [`PolicyDenial::TokenExpired`] or [`PolicyDenial::NotAllowed`].
    pub fn authorize(
        &self,
        subject: &Subject<'_>,
        now: OffsetDateTime,
    ) -> Result<(), PolicyDenial> {
        self.authorize_with_org(subject, None, now)
    }

    /// [`authorize`](Self::authorize), with what AWS Organizations says about the subject's
    /// account (`None` when it was not looked up: then organization rules do not match).
    ///
    /// # Errors
    ///
    /// [`PolicyDenial::TokenExpired`] or [`PolicyDenial::NotAllowed`].
    pub fn authorize_with_org(
        &self,
        subject: &Subject<'_>,
        org: Option<&OrgInfo>,
        now: OffsetDateTime,
    ) -> Result<(), PolicyDenial> {
        if self.is_expired(now) {
            return Err(PolicyDenial::TokenExpired);
        }
        match self.matching_rule_with_org(subject, org) {
            Some(_) => Ok(()),
            None => Err(PolicyDenial::NotAllowed),
        }
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

impl JoinToken {
    /// Validates a token read from a document, whose ignored fields are `ignored`. The field in
    /// the error is the path from the document root, e.g. `spec.allow[1].aws_arn`.
    pub(super) fn from_raw(raw: RawToken, ignored: Vec<IgnoredField>) -> Result<Self, FieldError> {
        let form = TokenForm::detect(
            &raw.kind,
            raw.version.as_deref(),
            raw.api_version.as_deref(),
        )?;
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

        let bot_name = check_bot_name(&roles, raw.spec.bot_name)?;

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
            form,
            description: raw.metadata.description.filter(|d| !d.trim().is_empty()),
            roles,
            bot_name,
            expires,
            allow,
            ignored,
        })
    }
}

/// Teleport's rule (`ProvisionTokenV2.CheckAndSetDefaults`): a token with role `Bot` must name
/// its bot, and only such a token may. An empty `bot_name` counts as unset, as in Teleport.
fn check_bot_name(roles: &[Role], bot_name: Option<String>) -> Result<Option<String>, FieldError> {
    let bot_name = bot_name.filter(|name| !name.is_empty());
    let is_bot = roles.contains(&Role::Bot);
    match (is_bot, bot_name) {
        (true, None) => Err(FieldError::new(
            "spec.bot_name",
            "missing: a token with role `Bot` must set bot_name (Teleport refuses it otherwise)",
        )),
        (false, Some(name)) => Err(FieldError::new(
            "spec.bot_name",
            format!(
                "bot_name {name:?} can only be set on a token with role `Bot` (Teleport refuses \
                 it otherwise)"
            ),
        )),
        (true, Some(name)) if name.trim() != name => Err(FieldError::new(
            "spec.bot_name",
            format!("{name:?} has leading or trailing whitespace"),
        )),
        (_, bot_name) => Ok(bot_name),
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
        if self.form == TokenForm::Operator {
            writeln!(
                f,
                "  written as: {} (Kubernetes operator)",
                self.form.kind()
            )?;
        }
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
        if !self.ignored.is_empty() {
            f.write_str("  ignored here: ")?;
            for (i, field) in self.ignored.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                f.write_str(field.path())?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}
