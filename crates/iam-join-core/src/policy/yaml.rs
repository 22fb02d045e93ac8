//! Reading token documents from YAML.
//!
//! This is the only module that names the YAML library (`serde_norway`, the maintained fork of
//! the archived `serde_yaml`), so swapping it touches this file alone.
//!
//! Each document is read twice, by two parsers over the same text kept in lock-step: first
//! loosely, as a YAML value, to check `kind` and `version` (or `apiVersion`), find
//! `spec.join_method` and, for `iam` tokens, check every field name against Teleport's
//! [schema](super::schema); then, for `iam` tokens only, into [`RawToken`], so type errors carry
//! the field path and line. Tokens of other join methods are only looked at loosely, so their
//! method-specific fields need no schema here.

use serde::Deserialize;
use serde_norway::{Deserializer, Mapping, Value};

use super::error::FieldError;
use super::raw::RawToken;
use super::schema::{IgnoredField, Level, TokenForm, check_fields, unknown_fields_note};
use super::token::JOIN_METHOD;

/// One non-empty token document.
#[derive(Debug)]
pub(super) enum Document {
    /// A `join_method: iam` token, read but not yet validated, and the Teleport fields it sets
    /// that are ignored here.
    Iam(Box<RawToken>, Vec<IgnoredField>),
    /// A token of another join method, to be skipped.
    Other {
        /// `metadata.name`, if it is a string.
        name: Option<String>,
        /// `spec.join_method`.
        join_method: String,
    },
}

/// Why a document could not be read.
#[derive(Debug)]
pub(super) enum DocumentError {
    /// Not well-formed YAML, or not shaped like a token; the message comes from the reader.
    Yaml(String),
    /// A field breaks a rule.
    Field(FieldError),
}

/// The documents of a YAML stream, in order, with their 1-based index (empty documents are
/// counted but not yielded). Stops after the first error.
pub(super) struct Documents<'a> {
    loose: Deserializer<'a>,
    strict: Deserializer<'a>,
    index: usize,
    failed: bool,
}

impl<'a> Documents<'a> {
    pub(super) fn new(src: &'a str) -> Self {
        Self {
            loose: Deserializer::from_str(src),
            strict: Deserializer::from_str(src),
            index: 0,
            failed: false,
        }
    }
}

impl Iterator for Documents<'_> {
    type Item = Result<(usize, Document), (usize, DocumentError)>;

    fn next(&mut self) -> Option<Self::Item> {
        // After a syntax error the reader repeats it forever; one report is enough.
        if self.failed {
            return None;
        }
        loop {
            let loose = self.loose.next()?;
            let strict = self.strict.next();
            self.index += 1;
            match read_document(loose, strict) {
                Ok(Some(document)) => return Some(Ok((self.index, document))),
                Ok(None) => {}
                Err(e) => {
                    self.failed = true;
                    return Some(Err((self.index, e)));
                }
            }
        }
    }
}

fn read_document(
    loose: Deserializer<'_>,
    strict: Option<Deserializer<'_>>,
) -> Result<Option<Document>, DocumentError> {
    let yaml = |e: serde_norway::Error| DocumentError::Yaml(e.to_string());
    let value = Value::deserialize(loose).map_err(yaml)?;
    let map = match &value {
        // An empty document, e.g. after a trailing `---`, or a file of comments.
        Value::Null => return Ok(None),
        Value::Mapping(map) => map,
        other => {
            return Err(DocumentError::Yaml(format!(
                "expected a token resource (a mapping with kind, version, metadata and spec), \
                 found {}",
                describe(other)
            )));
        }
    };
    let field =
        |field: &str, message: String| DocumentError::Field(FieldError::new(field, message));
    // Errors before the full check of names may stem from a misspelt name: say which.
    let noted = |error: DocumentError, map: &Mapping, level: Level| match error {
        DocumentError::Field(e) => {
            DocumentError::Field(e.with_note(&unknown_fields_note(map, level)))
        }
        other => other,
    };

    let form = read_form(map).map_err(|e| noted(e, map, Level::Document))?;
    let spec = match map.get("spec") {
        Some(Value::Mapping(spec)) => spec,
        Some(other) => {
            return Err(field(
                "spec",
                format!("must be a mapping, found {}", describe(other)),
            ));
        }
        None => {
            let error = field("spec", "missing: a token needs a spec".to_owned());
            return Err(noted(error, map, Level::Document));
        }
    };
    let join_method = required_str(
        spec,
        "join_method",
        "spec.join_method",
        "write `join_method: iam` for an IAM join token",
    )
    .map_err(|e| noted(e, spec, Level::Spec))?;

    if join_method == JOIN_METHOD {
        let ignored = check_fields(map, form.schema()).map_err(DocumentError::Field)?;
        let Some(strict) = strict else {
            return Err(DocumentError::Yaml(
                "the YAML reader lost track of the documents".to_owned(),
            ));
        };
        return RawToken::deserialize(strict)
            .map(|raw| Some(Document::Iam(Box::new(raw), ignored)))
            .map_err(yaml);
    }
    if join_method.eq_ignore_ascii_case(JOIN_METHOD) {
        return Err(field(
            "spec.join_method",
            format!("join methods are lower case: write `{JOIN_METHOD}`, not {join_method:?}"),
        ));
    }
    if join_method.trim().is_empty() {
        return Err(field("spec.join_method", "must not be empty".to_owned()));
    }
    let name = map
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(Some(Document::Other {
        name,
        join_method: join_method.to_owned(),
    }))
}

/// The form named by `kind` and `version` / `apiVersion`.
fn read_form(map: &Mapping) -> Result<TokenForm, DocumentError> {
    let kind = required_str(map, "kind", "kind", "write `kind: token`")?;
    TokenForm::detect(
        kind,
        optional_str(map, "version")?,
        optional_str(map, "apiVersion")?,
    )
    .map_err(DocumentError::Field)
}

/// The string at `key`, or an error naming `path` (with `hint` if the key is missing).
fn required_str<'m>(
    map: &'m Mapping,
    key: &str,
    path: &str,
    hint: &str,
) -> Result<&'m str, DocumentError> {
    let error = |message: String| DocumentError::Field(FieldError::new(path, message));
    match map.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(error(format!(
            "must be a string, found {}",
            describe(other)
        ))),
        None => Err(error(format!("missing: {hint}"))),
    }
}

/// The string at `key`, if present; an error naming it if it is not a string.
fn optional_str<'m>(map: &'m Mapping, key: &str) -> Result<Option<&'m str>, DocumentError> {
    match map.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(DocumentError::Field(FieldError::new(
            key,
            format!("must be a string, found {}", describe(other)),
        ))),
    }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a sequence",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}
