//! Every field of Teleport's token resource, and what iam-join does with it: the one place that
//! says which names are known.
//!
//! The lists follow Teleport's `ProvisionTokenV2` (api/proto/teleport/legacy/types/types.proto:
//! `ProvisionTokenSpecV2`, `TokenRule` and their json tags; `Metadata`), the validation Teleport
//! adds for `iam` tokens (`aws_organizational_units`), and the Kubernetes operator's
//! `TeleportProvisionToken` (`apiVersion: resources.teleport.dev/v2`, Kubernetes object metadata,
//! the same `spec`).
//!
//! A field is one of:
//! - [`Treatment::Used`]: it takes part in the decision (or names the token);
//! - [`Treatment::Ignored`]: Teleport knows it but it cannot change who may join with an `iam`
//!   token here; it is accepted, and listed by `check-tokens`, never silently dropped;
//! - [`Treatment::Refused`]: it would change a decision in Teleport and iam-join does not
//!   implement it, or Teleport itself refuses it on an `iam` token: an error, so nothing is
//!   admitted that Teleport would refuse.
//!
//! Any other name is unknown, and an error naming the field: a typo must never widen access.
//! The blocks of other join methods (`github`, `kubernetes`, ...) are accepted whole: their
//! contents are Teleport's business for those methods and never read here.

use serde_norway::{Mapping, Value};

use super::error::FieldError;

/// What iam-join does with a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Treatment {
    /// Read and enforced (or shown, for `description`).
    Used,
    /// Accepted and reported, with why it does not matter here.
    Ignored(&'static str),
    /// An error, with why.
    Refused(&'static str),
}

/// What a field's value holds that is checked further.
#[derive(Debug, Clone, Copy)]
enum Nested {
    /// Nothing further is checked here (scalars, label maps, other join methods' blocks).
    Leaf,
    /// A mapping with these fields.
    Map(&'static Schema),
    /// A list of mappings with these fields.
    ListOfMaps(&'static Schema),
}

/// One known field.
#[derive(Debug)]
struct Field {
    name: &'static str,
    treatment: Treatment,
    nested: Nested,
}

/// The fields of one mapping, and what to call it in messages.
#[derive(Debug)]
pub(super) struct Schema {
    what: &'static str,
    fields: &'static [Field],
}

const fn used(name: &'static str) -> Field {
    Field {
        name,
        treatment: Treatment::Used,
        nested: Nested::Leaf,
    }
}

const fn ignored(name: &'static str, why: &'static str) -> Field {
    Field {
        name,
        treatment: Treatment::Ignored(why),
        nested: Nested::Leaf,
    }
}

const fn map(name: &'static str, schema: &'static Schema) -> Field {
    Field {
        name,
        treatment: Treatment::Used,
        nested: Nested::Map(schema),
    }
}

const fn list(name: &'static str, schema: &'static Schema) -> Field {
    Field {
        name,
        treatment: Treatment::Used,
        nested: Nested::ListOfMaps(schema),
    }
}

const OTHER_METHOD: &str = "settings of another join method, never read for an iam token";
const K8S_METADATA: &str = "Kubernetes object metadata";

/// `kind: token`, `version: v2`: what `tctl get tokens` prints and `tctl create` reads.
static RESOURCE: Schema = Schema {
    what: "token resource",
    fields: &[
        used("kind"),
        used("version"),
        ignored("sub_kind", "tokens have no sub kind that changes joining"),
        map("metadata", &RESOURCE_METADATA),
        map("spec", &SPEC),
        ignored("status", "written by Teleport, not a setting"),
    ],
};

/// `apiVersion: resources.teleport.dev/v2`, `kind: TeleportProvisionToken`: the Teleport
/// Kubernetes operator's resource.
static OPERATOR: Schema = Schema {
    what: "TeleportProvisionToken",
    fields: &[
        used("apiVersion"),
        used("kind"),
        map("metadata", &OPERATOR_METADATA),
        map("spec", &SPEC),
        ignored(
            "status",
            "written by Kubernetes and the operator, not a setting",
        ),
    ],
};

static RESOURCE_METADATA: Schema = Schema {
    what: "metadata",
    fields: &[
        used("name"),
        used("expires"),
        used("description"),
        ignored(
            "labels",
            "labels of the token resource, not of the joining identity",
        ),
        ignored("namespace", "always `default` in Teleport"),
        ignored("revision", "a version stamp written by Teleport"),
        ignored("id", "a version stamp written by older Teleport versions"),
    ],
};

static OPERATOR_METADATA: Schema = Schema {
    what: "metadata",
    fields: &[
        used("name"),
        ignored("namespace", "the Kubernetes namespace of the manifest"),
        ignored("labels", K8S_METADATA),
        ignored("annotations", K8S_METADATA),
        ignored("uid", K8S_METADATA),
        ignored("resourceVersion", K8S_METADATA),
        ignored("generation", K8S_METADATA),
        ignored("creationTimestamp", K8S_METADATA),
        ignored("deletionTimestamp", K8S_METADATA),
        ignored("deletionGracePeriodSeconds", K8S_METADATA),
        ignored("finalizers", K8S_METADATA),
        ignored("managedFields", K8S_METADATA),
        ignored("ownerReferences", K8S_METADATA),
        ignored("generateName", K8S_METADATA),
        ignored("selfLink", K8S_METADATA),
    ],
};

static SPEC: Schema = Schema {
    what: "spec",
    fields: &[
        used("roles"),
        used("join_method"),
        list("allow", &ALLOW_RULE),
        used("bot_name"),
        ignored(
            "suggested_labels",
            "labels Teleport suggests to joining agents; not a condition",
        ),
        ignored(
            "suggested_agent_matcher_labels",
            "matchers Teleport suggests to joining agents; not a condition",
        ),
        ignored("aws_iid_ttl", "used by the ec2 join method only"),
        ignored(
            "integration",
            "names the Teleport AWS integration whose credentials look up organizations; \
             iam-join uses its own credentials",
        ),
        ignored("github", OTHER_METHOD),
        ignored("circleci", OTHER_METHOD),
        ignored("kubernetes", OTHER_METHOD),
        ignored("azure", OTHER_METHOD),
        ignored("azure_devops", OTHER_METHOD),
        ignored("gitlab", OTHER_METHOD),
        ignored("gcp", OTHER_METHOD),
        ignored("spacelift", OTHER_METHOD),
        ignored("tpm", OTHER_METHOD),
        ignored("terraform_cloud", OTHER_METHOD),
        ignored("bitbucket", OTHER_METHOD),
        ignored("oracle", OTHER_METHOD),
        ignored("bound_keypair", OTHER_METHOD),
    ],
};

static ALLOW_RULE: Schema = Schema {
    what: "allow rule",
    fields: &[
        used("aws_account"),
        used("aws_arn"),
        used("aws_regions"),
        used("aws_organization_id"),
        map("aws_organizational_units", &ORGANIZATIONAL_UNITS),
        Field {
            name: "aws_role",
            treatment: Treatment::Refused(
                "is a setting of the ec2 join method; Teleport refuses it on an iam token",
            ),
            nested: Nested::Leaf,
        },
    ],
};

static ORGANIZATIONAL_UNITS: Schema = Schema {
    what: "aws_organizational_units",
    fields: &[used("include"), used("exclude")],
};

/// The two ways a token is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenForm {
    /// Teleport's resource: `kind: token`, `version: v2` (`tctl get tokens`, `tctl create`).
    Resource,
    /// The Teleport Kubernetes operator's manifest: `apiVersion: resources.teleport.dev/v2`,
    /// `kind: TeleportProvisionToken`.
    Operator,
}

/// `kind` of Teleport's token resource.
const RESOURCE_KIND: &str = "token";
/// The only `version` of it.
const RESOURCE_VERSION: &str = "v2";
/// `kind` of the operator's manifest.
const OPERATOR_KIND: &str = "TeleportProvisionToken";
/// The only `apiVersion` of it.
const OPERATOR_API_VERSION: &str = "resources.teleport.dev/v2";

impl TokenForm {
    /// The form a document's `kind` and `version` / `apiVersion` name.
    ///
    /// # Errors
    ///
    /// Another kind, or a missing or other version for the kind, naming the field.
    pub(super) fn detect(
        kind: &str,
        version: Option<&str>,
        api_version: Option<&str>,
    ) -> Result<Self, FieldError> {
        match kind {
            RESOURCE_KIND => match version {
                Some(RESOURCE_VERSION) => Ok(Self::Resource),
                Some(other) => Err(FieldError::new(
                    "version",
                    format!(
                        "must be `{RESOURCE_VERSION}` (the only token version supported), got \
                         {other:?}"
                    ),
                )),
                None => Err(FieldError::new(
                    "version",
                    format!("missing: write `version: {RESOURCE_VERSION}`"),
                )),
            },
            OPERATOR_KIND => match api_version {
                Some(OPERATOR_API_VERSION) => Ok(Self::Operator),
                Some(other) => Err(FieldError::new(
                    "apiVersion",
                    format!(
                        "must be `{OPERATOR_API_VERSION}` for a {OPERATOR_KIND}, got {other:?}"
                    ),
                )),
                None => Err(FieldError::new(
                    "apiVersion",
                    format!("missing: write `apiVersion: {OPERATOR_API_VERSION}`"),
                )),
            },
            other => Err(FieldError::new(
                "kind",
                format!(
                    "must be `{RESOURCE_KIND}` (Teleport's token resource) or `{OPERATOR_KIND}` \
                     (the Teleport Kubernetes operator's), got {other:?}"
                ),
            )),
        }
    }

    /// The fields this form may have.
    pub(super) fn schema(self) -> &'static Schema {
        match self {
            Self::Resource => &RESOURCE,
            Self::Operator => &OPERATOR,
        }
    }

    /// `token` or `TeleportProvisionToken`.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Resource => RESOURCE_KIND,
            Self::Operator => OPERATOR_KIND,
        }
    }
}

/// Checks every field name of `document` against `schema`, recursively, and returns the paths
/// of the [ignored](Treatment::Ignored) fields present, in document order, each with why.
///
/// Values of the wrong shape (a list where a mapping belongs) are left for the typed reader,
/// which reports them with their line.
///
/// # Errors
///
/// The first unknown or [refused](Treatment::Refused) field, with its path.
pub(super) fn check_fields(
    document: &Mapping,
    schema: &'static Schema,
) -> Result<Vec<IgnoredField>, FieldError> {
    let mut ignored = Vec::new();
    check_mapping(document, schema, "", &mut ignored)?;
    Ok(ignored)
}

/// Which mapping [`unknown_fields_note`] looks at.
#[derive(Debug, Clone, Copy)]
pub(super) enum Level {
    /// The document itself, before its form is known.
    Document,
    /// `spec`.
    Spec,
}

/// When a required field is missing, a misspelling of it is the likely cause, but the full
/// check of names waits for the form and join method. This names, as paths, the fields at
/// `level` that no form knows, e.g. ` (unknown field here: `spec.join_metod`)`, or is empty.
pub(super) fn unknown_fields_note(map: &Mapping, level: Level) -> String {
    let (schemas, prefix): (&[&Schema], &str) = match level {
        Level::Document => (&[&RESOURCE, &OPERATOR], ""),
        Level::Spec => (&[&SPEC], "spec"),
    };
    let unknown: Vec<String> = map
        .keys()
        .map(|key| match key {
            Value::String(name) => name.clone(),
            other => format!("{other:?}"),
        })
        .filter(|name| {
            !schemas
                .iter()
                .any(|schema| schema.fields.iter().any(|f| f.name == name))
        })
        .map(|name| format!("`{}`", join(prefix, &name)))
        .collect();
    if unknown.is_empty() {
        String::new()
    } else {
        format!(" (unknown field here: {})", unknown.join(", "))
    }
}

/// A field that is present, known to Teleport, and ignored here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoredField {
    path: String,
    why: &'static str,
}

impl IgnoredField {
    /// The field's path from the document root, e.g. `spec.suggested_labels`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Why it does not matter to an `iam` decision here.
    pub fn reason(&self) -> &str {
        self.why
    }
}

fn check_mapping(
    mapping: &Mapping,
    schema: &'static Schema,
    prefix: &str,
    ignored: &mut Vec<IgnoredField>,
) -> Result<(), FieldError> {
    for (key, value) in mapping {
        let name = match key {
            Value::String(name) => name.as_str(),
            other => {
                return Err(FieldError::new(
                    join(prefix, &format!("{other:?}")),
                    format!(
                        "field names are strings; the {} has none like this",
                        schema.what
                    ),
                ));
            }
        };
        let path = join(prefix, name);
        let Some(field) = schema.fields.iter().find(|f| f.name == name) else {
            return Err(FieldError::new(&path, unknown_field_message(name, schema)));
        };
        match field.treatment {
            Treatment::Used => {}
            Treatment::Ignored(why) => {
                ignored.push(IgnoredField { path, why });
                continue;
            }
            Treatment::Refused(why) => {
                return Err(FieldError::new(&path, format!("`{name}` {why}")));
            }
        }
        match (field.nested, value) {
            (Nested::Map(inner), Value::Mapping(m)) => check_mapping(m, inner, &path, ignored)?,
            (Nested::ListOfMaps(inner), Value::Sequence(items)) => {
                for (i, item) in items.iter().enumerate() {
                    if let Value::Mapping(m) = item {
                        check_mapping(m, inner, &format!("{path}[{i}]"), ignored)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

fn unknown_field_message(name: &str, schema: &Schema) -> String {
    let known: Vec<&str> = schema.fields.iter().map(|f| f.name).collect();
    format!(
        "unknown field `{name}`: Teleport's {} has no such field (known: {})",
        schema.what,
        known.join(", ")
    )
}

/// Every field path of a schema with its treatment, for documentation and tests.
#[cfg(test)]
fn all_fields(schema: &'static Schema, prefix: &str, out: &mut Vec<(String, Treatment)>) {
    for field in schema.fields {
        let path = join(prefix, field.name);
        out.push((path.clone(), field.treatment));
        match field.nested {
            Nested::Map(inner) => all_fields(inner, &path, out),
            Nested::ListOfMaps(inner) => all_fields(inner, &format!("{path}[]"), out),
            Nested::Leaf => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(yaml: &str) -> Mapping {
        match serde_norway::from_str::<Value>(yaml).unwrap() {
            Value::Mapping(m) => m,
            other => panic!("not a mapping: {other:?}"),
        }
    }

    /// `leaf` placed under `segments` (`name` a mapping, `name[]` a list of one mapping).
    fn nest(segments: &[&str], leaf: Mapping) -> Mapping {
        let Some((first, rest)) = segments.split_first() else {
            return leaf;
        };
        let inner = Value::Mapping(nest(rest, leaf));
        let mut outer = Mapping::new();
        match first.strip_suffix("[]") {
            Some(list) => {
                outer.insert(Value::String(list.to_owned()), Value::Sequence(vec![inner]))
            }
            None => outer.insert(Value::String((*first).to_owned()), inner),
        };
        outer
    }

    #[test]
    fn every_schema_lists_each_name_once() {
        for schema in [&RESOURCE, &OPERATOR] {
            let mut fields = Vec::new();
            all_fields(schema, "", &mut fields);
            let mut names: Vec<&String> = fields.iter().map(|(p, _)| p).collect();
            let before = names.len();
            names.sort();
            names.dedup();
            assert_eq!(before, names.len(), "{:?}", schema.what);
        }
    }

    #[test]
    fn a_misspelling_of_any_known_field_is_unknown_and_named_with_its_path() {
        let mut fields = Vec::new();
        all_fields(&RESOURCE, "", &mut fields);
        for (path, _) in fields {
            let leaf = path.rsplit('.').next().unwrap().trim_end_matches("[]");
            let typo = format!("{leaf}x");
            let segments: Vec<&str> = path.split('.').collect();
            let mut leaf = Mapping::new();
            leaf.insert(Value::String(typo.clone()), Value::String("x".to_owned()));
            let doc = nest(&segments[..segments.len() - 1], leaf);
            let err = check_fields(&doc, &RESOURCE).expect_err(&path);
            assert!(err.field.ends_with(&typo), "{} for {path}", err.field);
            assert!(err.message.contains("unknown field"), "{}", err.message);
        }
    }

    #[test]
    fn ignored_fields_are_reported_with_their_paths_and_refused_ones_fail() {
        let doc = mapping(
            "kind: token\nmetadata: {name: a, labels: {x: y}}\nspec:\n  suggested_labels: {a: [b]}\n  \
             allow: [{aws_account: '1'}]\n",
        );
        let ignored = check_fields(&doc, &RESOURCE).unwrap();
        let paths: Vec<&str> = ignored.iter().map(IgnoredField::path).collect();
        assert_eq!(paths, ["metadata.labels", "spec.suggested_labels"]);

        let doc = mapping("spec:\n  allow:\n    - aws_account: '1'\n    - aws_role: r\n");
        let err = check_fields(&doc, &RESOURCE).unwrap_err();
        assert_eq!(err.field, "spec.allow[1].aws_role");
        assert!(err.message.contains("ec2"), "{}", err.message);
    }
}
