//! The token policy: which verified AWS identities may use which join token.
//!
//! Tokens are Teleport's `token` resources (`kind: token`, `version: v2`) with
//! `join_method: iam`, read from YAML:
//!
//! ```yaml
//! kind: token
//! version: v2
//! metadata:
//!   name: iam-token                  # not a secret
//!   expires: 2027-01-01T00:00:00Z    # optional, RFC 3339
//! spec:
//!   roles: [Node]
//!   join_method: iam
//!   allow:
//!     - aws_account: "111111111111"
//!     - aws_account: "333333333333"
//!       aws_arn: "arn:aws:sts::333333333333:assumed-role/teleport-node-role/i-*"
//!       aws_regions: ["us-west-1", "us-west-2"]   # optional
//! ```
//!
//! Everything is checked when the policy is loaded, and any error rejects the whole policy, with a
//! message naming the source, the document and the field:
//!
//! - every field name is checked against Teleport's token resource (the table in `schema.rs`):
//!   unknown names are errors, so a typo such as `aws_acount` can never widen access; fields
//!   Teleport knows that cannot change an `iam` decision here (`metadata.labels`,
//!   `spec.suggested_labels`, other join methods' blocks, ...) are accepted and listed as
//!   [ignored](JoinToken::ignored_fields); `aws_role` (an ec2 setting Teleport refuses on `iam`
//!   tokens) is an error;
//! - `kind` is `token` with `version: v2` (Teleport's resource, as `tctl get tokens` prints it),
//!   or `TeleportProvisionToken` with `apiVersion: resources.teleport.dev/v2` (the Kubernetes
//!   operator's manifest, same `spec`, Kubernetes `metadata`); `spec.join_method` must be
//!   present. Documents with another join method (`token`, `ec2`, `kubernetes`, ...) are skipped
//!   with a [warning](TokenPolicy::warnings), and their fields are not checked;
//! - `metadata.name` is 1 to 256 ASCII letters, digits, `-`, `_`, `.`, `:` or `@`, and names are
//!   unique across all documents and files (skipped tokens included);
//! - `metadata.expires`, if present, is an RFC 3339 date and time. An expired token still
//!   loads; it just never admits anyone ([`PolicyDenial::TokenExpired`]);
//! - `spec.roles` is a non-empty list of Teleport system roles ([`Role`]), case-insensitive,
//!   without duplicates; with `Bot` among them `spec.bot_name` is required, and without it
//!   `bot_name` is refused (as Teleport does);
//! - `spec.allow` has at least one rule; each rule sets `aws_account` (a **quoted** string of
//!   exactly 12 digits), `aws_arn` (an [`ArnGlob`](crate::glob::ArnGlob) starting with `arn:`),
//!   `aws_organization_id` (`o-` + 10 to 32 lower-case letters or digits), or several, and
//!   optionally `aws_regions` (a non-empty list of region names) and
//!   `aws_organizational_units` (`include`: OU or root IDs, or `["*"]`; optional `exclude`;
//!   needs `aws_organization_id`) — see [`OrgCondition`].
//!
//! YAML is read as YAML 1.2: `yes`, `on` and the like are strings, not booleans. A file may hold
//! several documents separated by `---`; empty documents are ignored (but counted, so document
//! numbers in messages match what an editor shows).
//!
//! A token admits a [`Subject`] when it is not expired and **any** of its rules matches; a rule
//! matches when **every** field it sets matches ([`AllowRule`]). Organization conditions need
//! what AWS Organizations says about the subject's account ([`OrgInfo`]), which this crate does
//! not fetch: ask [`TokenPolicy::needs_org_lookup`] first, look the account up only then, and
//! pass the answer to [`TokenPolicy::authorize_with_org`]. Without it such rules never match.
//!
//! ```
//! use iam_join_core::policy::{PolicyDenial, Subject, TokenPolicy};
//! use time::macros::datetime;
//!
//! let policy = TokenPolicy::from_yaml_str(
//!     r#"
//! kind: token
//! version: v2
//! metadata:
//!   name: iam-token
//! spec:
//!   roles: [Node]
//!   join_method: iam
//!   allow:
//!     - aws_account: "333333333333"
//!       aws_arn: "arn:aws:sts::333333333333:assumed-role/teleport-node-role/i-*"
//! "#,
//!     "example",
//! )?;
//! let now = datetime!(2026-11-23 10:15 UTC);
//! let subject = Subject {
//!     account: "333333333333",
//!     arn: "arn:aws:sts::333333333333:assumed-role/teleport-node-role/i-0abc123def4567890",
//!     region: "us-west-2",
//! };
//! let token = policy.authorize("iam-token", &subject, now)?;
//! assert_eq!(token.roles()[0].as_str(), "Node");
//!
//! let other_role = Subject {
//!     arn: "arn:aws:sts::333333333333:assumed-role/teleport-node-role2/i-0abc123def4567890",
//!     ..subject
//! };
//! assert_eq!(
//!     policy.authorize("iam-token", &other_role, now).unwrap_err(),
//!     PolicyDenial::NotAllowed
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod load;
mod org;
mod raw;
mod role;
mod rule;
mod schema;
mod token;
mod yaml;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use time::OffsetDateTime;

pub use self::error::{DocumentLocation, PolicyDenial, PolicyError, PolicyWarning};
pub use self::org::{OrgCondition, OrgInfo};
pub use self::role::{Role, UnknownRole};
pub use self::rule::{AllowRule, Subject};
pub use self::schema::{IgnoredField, TokenForm};
pub use self::token::JoinToken;

use self::load::PolicyBuilder;

/// A loaded, validated set of `iam` join tokens.
///
/// Immutable once loaded; to reload, load a new one and swap it in only if it loaded without
/// error (e.g. behind an `ArcSwap`), so a broken file never replaces a working policy.
#[derive(Debug, Clone, Default)]
pub struct TokenPolicy {
    /// In load order.
    entries: Vec<Entry>,
    /// Token name → index in `entries`.
    by_name: HashMap<String, usize>,
    warnings: Vec<PolicyWarning>,
}

/// A token and where it was defined.
#[derive(Debug, Clone)]
struct Entry {
    token: JoinToken,
    location: DocumentLocation,
}

impl TokenPolicy {
    /// Loads the tokens of a YAML stream (one or more documents). `source` names it in error
    /// messages and warnings, like a file path would.
    ///
    /// # Errors
    ///
    /// Any document breaking a rule of the [module documentation](self); see [`PolicyError`].
    pub fn from_yaml_str(src: &str, source: &str) -> Result<Self, PolicyError> {
        let mut builder = PolicyBuilder::default();
        builder.add_yaml(src, source)?;
        Ok(builder.finish(source))
    }

    /// Loads a file, or every `*.yaml` and `*.yml` file of a directory.
    ///
    /// A directory is read in file-name order (byte order), not recursively. Names starting with
    /// `.` are ignored: hidden files, and the `..data` entries of a mounted Kubernetes ConfigMap.
    /// Extensions are matched case-sensitively. Symbolic links to files are followed. A file path
    /// is read whatever its extension.
    ///
    /// A directory without YAML files, or sources without any `iam` token, load as an empty
    /// policy (which denies everything) with a [warning](Self::warnings).
    ///
    /// # Errors
    ///
    /// A path that cannot be read or is not UTF-8 ([`PolicyError::Read`]), or any document
    /// breaking a rule; token names must be unique across all the files of a directory.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let mut builder = PolicyBuilder::default();
        builder.add_path(path)?;
        Ok(builder.finish(&path.display().to_string()))
    }

    /// The token named `name`, if it is loaded.
    pub fn get(&self, name: &str) -> Option<&JoinToken> {
        self.entry(name).map(|entry| &entry.token)
    }

    /// The tokens, in the order they were loaded.
    pub fn tokens(&self) -> impl ExactSizeIterator<Item = &JoinToken> + '_ {
        self.entries.iter().map(|entry| &entry.token)
    }

    /// Where the token named `name` was defined, if it is loaded.
    pub fn location(&self, name: &str) -> Option<&DocumentLocation> {
        self.entry(name).map(|entry| &entry.location)
    }

    fn entry(&self, name: &str) -> Option<&Entry> {
        self.by_name.get(name).and_then(|&i| self.entries.get(i))
    }

    /// The number of tokens.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no token is loaded (then every request is denied).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// What an operator should know about the loaded policy: skipped tokens of other join
    /// methods, rules that look wrong, an empty policy. Each was also logged at load.
    pub fn warnings(&self) -> &[PolicyWarning] {
        &self.warnings
    }

    /// Decides whether the verified identity `subject` may use the token `token_name` at `now`.
    ///
    /// The token must be loaded (an `iam` token), not expired at `now`, and have at least one
    /// allow rule that `subject` satisfies. Returns the token, whose [roles](JoinToken::roles)
    /// the caller is granted.
    ///
    /// # Errors
    ///
    /// [`PolicyDenial::UnknownToken`], [`PolicyDenial::TokenExpired`] or
    /// [`PolicyDenial::NotAllowed`], checked in that order.
    pub fn authorize(
        &self,
        token_name: &str,
        subject: &Subject<'_>,
        now: OffsetDateTime,
    ) -> Result<&JoinToken, PolicyDenial> {
        self.authorize_with_org(token_name, subject, None, now)
    }

    /// Whether deciding whether `subject` may use `token_name` at `now` needs an AWS
    /// Organizations lookup of its account ([`JoinToken::needs_org_lookup`]); `false` for an
    /// unknown or expired token, whose answer needs no lookup.
    pub fn needs_org_lookup(
        &self,
        token_name: &str,
        subject: &Subject<'_>,
        now: OffsetDateTime,
    ) -> bool {
        self.get(token_name)
            .is_some_and(|token| !token.is_expired(now) && token.needs_org_lookup(subject))
    }

    /// [`authorize`](Self::authorize), with what AWS Organizations says about the subject's
    /// account, if it was looked up (rules with an organization condition match only with it).
    ///
    /// # Errors
    ///
    /// As [`authorize`](Self::authorize).
    pub fn authorize_with_org(
        &self,
        token_name: &str,
        subject: &Subject<'_>,
        org: Option<&OrgInfo>,
        now: OffsetDateTime,
    ) -> Result<&JoinToken, PolicyDenial> {
        let token = self.get(token_name).ok_or(PolicyDenial::UnknownToken)?;
        token.authorize_with_org(subject, org, now)?;
        Ok(token)
    }

    /// A description for humans of every token and what it allows, followed by the warnings;
    /// for a `check-config` command.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        if self.entries.is_empty() {
            out.push_str("no iam join tokens: every proof will be denied\n");
        }
        for (i, entry) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            // Writing to a String cannot fail.
            let _ = write!(out, "{}", entry.token);
            let _ = writeln!(out, "  defined in {}", entry.location);
        }
        if !self.warnings.is_empty() {
            out.push_str("\nwarnings:\n");
            for warning in &self.warnings {
                let _ = writeln!(out, "  - {warning}");
            }
        }
        out
    }
}
