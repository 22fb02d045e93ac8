//! Assembling a [`TokenPolicy`] from YAML sources: one string, one file, or a directory.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::error::{DocumentLocation, PolicyError, PolicyWarning};
use super::token::{JoinToken, rule_field};
use super::yaml::{Document, DocumentError, Documents};
use super::{Entry, TokenPolicy};

/// Collects tokens across documents and sources, rejecting duplicate names.
#[derive(Default)]
pub(super) struct PolicyBuilder {
    entries: Vec<Entry>,
    /// Name → index in `entries`.
    by_name: HashMap<String, usize>,
    /// Every token name seen, skipped ones included, and where.
    seen: HashMap<String, DocumentLocation>,
    warnings: Vec<PolicyWarning>,
}

impl PolicyBuilder {
    /// Reads every document of `src`, a YAML stream named `source` in messages.
    pub(super) fn add_yaml(&mut self, src: &str, source: &str) -> Result<(), PolicyError> {
        for document in Documents::new(src) {
            let (index, document) = document.map_err(|(index, error)| {
                let location = DocumentLocation::new(source, index);
                match error {
                    DocumentError::Yaml(message) => PolicyError::Yaml { location, message },
                    DocumentError::Field(error) => error.at(location),
                }
            })?;
            let location = DocumentLocation::new(source, index);
            match document {
                Document::Iam(raw, ignored) => {
                    let token =
                        JoinToken::from_raw(*raw, ignored).map_err(|e| e.at(location.clone()))?;
                    self.claim_name(token.name(), &location)?;
                    for (i, rule) in token.allow().iter().enumerate() {
                        for (field, message) in rule.lints() {
                            let message = format!("{}: {message}", rule_field(i, field));
                            self.warn(PolicyWarning::at(location.clone(), message));
                        }
                    }
                    self.by_name
                        .insert(token.name().to_owned(), self.entries.len());
                    self.entries.push(Entry { token, location });
                }
                Document::Other { name, join_method } => {
                    if let Some(name) = &name {
                        self.claim_name(name, &location)?;
                    }
                    let what = name.map_or_else(|| "token".to_owned(), |n| format!("token `{n}`"));
                    let message = format!(
                        "skipped {what}: join_method `{join_method}` is not verified here (only \
                         `iam` is)"
                    );
                    self.warn(PolicyWarning::at(location, message));
                }
            }
        }
        Ok(())
    }

    /// Reads a file, or the `*.yaml` and `*.yml` files of a directory.
    pub(super) fn add_path(&mut self, path: &Path) -> Result<(), PolicyError> {
        let metadata = fs::metadata(path).map_err(read_error(path))?;
        if !metadata.is_dir() {
            return self.add_file(path);
        }
        let mut files: Vec<(std::ffi::OsString, PathBuf)> = Vec::new();
        for entry in fs::read_dir(path).map_err(read_error(path))? {
            let entry = entry.map_err(read_error(path))?;
            let name = entry.file_name();
            let bytes = name.as_encoded_bytes();
            // Hidden files, and the `..data` links of a mounted Kubernetes ConfigMap.
            if bytes.starts_with(b".") || !(bytes.ends_with(b".yaml") || bytes.ends_with(b".yml")) {
                continue;
            }
            let file = entry.path();
            // `fs::metadata` follows symlinks, as ConfigMap mounts need.
            if fs::metadata(&file).map_err(read_error(&file))?.is_file() {
                files.push((name, file));
            }
        }
        if files.is_empty() {
            self.warn(PolicyWarning::for_source(
                &path.display().to_string(),
                "the directory has no *.yaml or *.yml files".to_owned(),
            ));
        }
        files.sort();
        for (_, file) in files {
            self.add_file(&file)?;
        }
        Ok(())
    }

    fn add_file(&mut self, path: &Path) -> Result<(), PolicyError> {
        let src = fs::read_to_string(path).map_err(read_error(path))?;
        self.add_yaml(&src, &path.display().to_string())
    }

    /// Records that `name` is defined at `location`, or fails if it already was.
    fn claim_name(&mut self, name: &str, location: &DocumentLocation) -> Result<(), PolicyError> {
        if let Some(first) = self.seen.get(name) {
            return Err(PolicyError::DuplicateToken {
                name: name.to_owned(),
                first: first.clone(),
                second: location.clone(),
            });
        }
        self.seen.insert(name.to_owned(), location.clone());
        Ok(())
    }

    fn warn(&mut self, warning: PolicyWarning) {
        tracing::warn!("token policy: {warning}");
        self.warnings.push(warning);
    }

    /// The policy; `source` names what was loaded, for the warning about an empty policy.
    pub(super) fn finish(mut self, source: &str) -> TokenPolicy {
        if self.entries.is_empty() {
            self.warn(PolicyWarning::for_source(
                source,
                "no `join_method: iam` token was loaded: every proof will be denied".to_owned(),
            ));
        }
        TokenPolicy {
            entries: self.entries,
            by_name: self.by_name,
            warnings: self.warnings,
        }
    }
}

fn read_error(path: &Path) -> impl Fn(std::io::Error) -> PolicyError + '_ {
    move |error| PolicyError::Read {
        path: path.to_owned(),
        error,
    }
}
