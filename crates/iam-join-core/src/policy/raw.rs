//! The token resource exactly as written, before validation.
//!
//! These types read only the fields iam-join uses. Which field names are allowed at all is
//! decided before they are read, by the table in [`schema`](super::schema): unknown names are
//! errors there (so a misspelt `aws_acount` never silently drops a restriction), and fields
//! Teleport knows but that do not matter here are accepted and reported there. So these structs
//! do not deny unknown fields themselves; they would otherwise refuse the ignored ones.
//!
//! These types only describe shape; the rules live in the `TryFrom` conversions into the
//! validated types. They are plain serde and do not know which format (YAML) they are read from.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Visitor};

/// A token document whose `spec.join_method` is `iam`: Teleport's resource (`kind: token`,
/// `version: v2`) or the Kubernetes operator's (`kind: TeleportProvisionToken`,
/// `apiVersion: resources.teleport.dev/v2`).
#[derive(Debug, Deserialize)]
pub(super) struct RawToken {
    pub(super) kind: String,
    #[serde(default)]
    pub(super) version: Option<String>,
    #[serde(default, rename = "apiVersion")]
    pub(super) api_version: Option<String>,
    pub(super) metadata: RawMetadata,
    pub(super) spec: RawSpec,
}

/// `metadata`: the fields used (the rest are listed in the schema).
#[derive(Debug, Deserialize)]
pub(super) struct RawMetadata {
    pub(super) name: String,
    #[serde(default)]
    pub(super) expires: Option<String>,
    #[serde(default)]
    pub(super) description: Option<String>,
}

/// `spec` of an `iam` token: the fields used.
#[derive(Debug, Deserialize)]
pub(super) struct RawSpec {
    pub(super) roles: Vec<String>,
    pub(super) join_method: String,
    #[serde(default)]
    pub(super) allow: Option<Vec<RawAllowRule>>,
    #[serde(default)]
    pub(super) bot_name: Option<String>,
}

/// One entry of `spec.allow`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct RawAllowRule {
    #[serde(default)]
    pub(super) aws_account: Option<StringScalar>,
    #[serde(default)]
    pub(super) aws_arn: Option<String>,
    #[serde(default)]
    pub(super) aws_regions: Option<Vec<String>>,
    #[serde(default)]
    pub(super) aws_organization_id: Option<String>,
    #[serde(default)]
    pub(super) aws_organizational_units: Option<RawOrganizationalUnits>,
}

/// `spec.allow[].aws_organizational_units`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct RawOrganizationalUnits {
    #[serde(default)]
    pub(super) include: Option<Vec<String>>,
    #[serde(default)]
    pub(super) exclude: Option<Vec<String>>,
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
