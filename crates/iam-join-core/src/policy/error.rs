//! Errors and warnings of policy loading, and the denials of policy checks.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Where a document came from: its source (a file path, or the name given to
/// [`TokenPolicy::from_yaml_str`](super::TokenPolicy::from_yaml_str)) and its 1-based index among
/// the YAML documents of that source. Displays as `tokens/a.yaml: document 2`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DocumentLocation {
    source: String,
    document: usize,
}

impl DocumentLocation {
    pub(super) fn new(source: &str, document: usize) -> Self {
        Self {
            source: source.to_owned(),
            document,
        }
    }

    /// The file path or source name.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The 1-based index of the document in its source, counting every document (`---`),
    /// empty ones included.
    pub fn document(&self) -> usize {
        self.document
    }
}

impl fmt::Display for DocumentLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: document {}", self.source, self.document)
    }
}

/// Why a policy failed to load. Loading is all or nothing: no partial policy is returned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A file or directory could not be read (including a file that is not UTF-8).
    #[error("{}: {error}", .path.display())]
    #[non_exhaustive]
    Read {
        /// The path that could not be read.
        path: PathBuf,
        /// The underlying error.
        error: io::Error,
    },
    /// A document is not well-formed YAML, or does not have the shape of a token resource
    /// (unknown or missing field, wrong type, duplicate key). The message comes from the YAML
    /// reader and starts with the field path when there is one, e.g.
    /// `spec.allow[1]: unknown field `aws_acount`, expected one of ... at line 9 column 5`.
    #[error("{location}: {message}")]
    #[non_exhaustive]
    Yaml {
        /// The document.
        location: DocumentLocation,
        /// What is wrong, from the YAML reader.
        message: String,
    },
    /// A field has a value that breaks a policy rule (wrong `kind`, 11-digit account, unknown
    /// role, ...).
    #[error("{location}: {field}: {message}")]
    #[non_exhaustive]
    Invalid {
        /// The document.
        location: DocumentLocation,
        /// Path of the offending field, e.g. `spec.allow[0].aws_account`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// Two documents define a token with the same `metadata.name`.
    #[error("duplicate token name `{name}`: defined in {first} and again in {second}")]
    #[non_exhaustive]
    DuplicateToken {
        /// The token name.
        name: String,
        /// The first definition.
        first: DocumentLocation,
        /// The second definition.
        second: DocumentLocation,
    },
}

impl PolicyError {
    /// The document at fault, when the error is about one (for a duplicate name, the second
    /// definition).
    pub fn location(&self) -> Option<&DocumentLocation> {
        match self {
            PolicyError::Read { .. } => None,
            PolicyError::Yaml { location, .. } | PolicyError::Invalid { location, .. } => {
                Some(location)
            }
            PolicyError::DuplicateToken { second, .. } => Some(second),
        }
    }
}

/// A problem that does not stop the policy from loading but that an operator should see: a
/// skipped non-`iam` token, a rule that can never match, a policy with no tokens.
///
/// Each warning is also logged with `tracing::warn!` when the policy is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyWarning {
    location: Option<DocumentLocation>,
    source: Option<String>,
    message: String,
}

impl PolicyWarning {
    pub(super) fn at(location: DocumentLocation, message: String) -> Self {
        Self {
            location: Some(location),
            source: None,
            message,
        }
    }

    pub(super) fn for_source(source: &str, message: String) -> Self {
        Self {
            location: None,
            source: Some(source.to_owned()),
            message,
        }
    }

    /// The document the warning is about, if it is about one.
    pub fn location(&self) -> Option<&DocumentLocation> {
        self.location.as_ref()
    }

    /// The warning, without its location.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for PolicyWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.location, &self.source) {
            (Some(location), _) => write!(f, "{location}: {}", self.message),
            (None, Some(source)) => write!(f, "{source}: {}", self.message),
            (None, None) => f.write_str(&self.message),
        }
    }
}

/// Why [`TokenPolicy::authorize`](super::TokenPolicy::authorize) refused a verified identity.
///
/// The messages are safe to show to the caller: they name no rule and no other token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyDenial {
    /// No `iam` join token has this name (tokens of other join methods are not loaded, so
    /// naming one gives this answer too).
    #[error("unknown join token")]
    UnknownToken,
    /// The token's `metadata.expires` has passed.
    #[error("join token has expired")]
    TokenExpired,
    /// The token exists and is current, but none of its `allow` rules matches the identity.
    #[error("the AWS identity is not allowed by the join token")]
    NotAllowed,
}

/// A rule violation found while validating one document: the field path and what is wrong.
/// Converted to [`PolicyError::Invalid`] once the document's location is attached.
#[derive(Debug)]
pub(super) struct FieldError {
    pub(super) field: String,
    pub(super) message: String,
}

impl FieldError {
    pub(super) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error with `note` appended to its message.
    pub(super) fn with_note(mut self, note: &str) -> Self {
        self.message.push_str(note);
        self
    }

    pub(super) fn at(self, location: DocumentLocation) -> PolicyError {
        PolicyError::Invalid {
            location,
            field: self.field,
            message: self.message,
        }
    }
}
