//! The token resource exactly as written, before validation.
//!
//! Every struct denies unknown fields, so a misspelt key (`aws_acount`) is an error naming it
//! rather than a silently missing restriction. These types only describe shape; the rules live in
//! the `TryFrom` conversions into the validated types. They are plain serde and do not know which
//! format (YAML) they are read from.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Visitor};

/// A token document whose `spec.join_method` is `iam`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawToken {
    pub(super) kind: String,
    pub(super) version: String,
    pub(super) metadata: RawMetadata,
    pub(super) spec: RawSpec,
}

/// `metadata`. Besides `name` and `expires`, Teleport's standard `description`, `labels` and
/// `revision` are accepted (they do not affect who may join).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetadata {
    pub(super) name: String,
    #[serde(default)]
    pub(super) expires: Option<String>,
    #[serde(default)]
    pub(super) description: Option<String>,
    #[serde(default)]
    #[expect(
        dead_code,
        reason = "accepted for compatibility with Teleport, not used"
    )]
    pub(super) labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    #[expect(
        dead_code,
        reason = "accepted for compatibility with Teleport, not used"
    )]
    pub(super) revision: Option<String>,
}

/// `spec` of an `iam` token.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSpec {
    pub(super) roles: Vec<String>,
    pub(super) join_method: String,
    #[serde(default)]
    pub(super) allow: Option<Vec<RawAllowRule>>,
    #[serde(default)]
    pub(super) bot_name: Option<String>,
}

/// One entry of `spec.allow`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAllowRule {
    #[serde(default)]
    pub(super) aws_account: Option<StringScalar>,
    #[serde(default)]
    pub(super) aws_arn: Option<String>,
    #[serde(default)]
    pub(super) aws_regions: Option<Vec<String>>,
}

/// A scalar the document gives as a string, never as a number.
///
/// An unquoted `111111111111` is a YAML integer. Reading it back as text would accept it, but an
/// account ID with a leading zero, or one a tool rewrites as a float, would then silently change;
/// so account IDs must be quoted, and the error says so.
#[derive(Debug)]
pub(super) struct StringScalar(pub(super) String);

impl<'de> Deserialize<'de> for StringScalar {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StringOnly;

        impl Visitor<'_> for StringOnly {
            type Value = StringScalar;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a quoted string of 12 digits such as \"111111111111\" \
                     (account IDs must be quoted: unquoted, YAML reads them as numbers)",
                )
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<StringScalar, E> {
                Ok(StringScalar(v.to_owned()))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<StringScalar, E> {
                Ok(StringScalar(v))
            }
        }

        // `deserialize_any` so the format reports what the scalar resolved to: with
        // `deserialize_str`, YAML would hand over the digits of an unquoted number as text.
        deserializer.deserialize_any(StringOnly)
    }
}
