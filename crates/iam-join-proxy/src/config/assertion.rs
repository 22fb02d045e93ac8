//! The `assertion:` section: signed identity assertions for the upstream (DESIGN §4 step 11).
//!
//! ```yaml
//! assertion:
//!   issuer: https://iam-join.example.internal   # the `iss` upstreams check
//!   audiences: [orders-api]                      # the `aud` upstreams check
//!   life: 5m                                     # 10s..1h; never past the proof's expiry
//!   header: x-iam-join-assertion                 # default
//!   keys:                                        # PKCS#8 PEM; all published in the JWKS
//!     - file: keys/assertion-2026-12.pem
//!       alg: ES256                               # optional check: ES256 or EdDSA
//!     - file: keys/assertion-2026-09.pem
//!   signing_key: keys/assertion-2026-12.pem      # default: the first key
//!   # or, for a single replica: generate: true   (a key made at start, lost on restart)
//! ```

use std::path::{Path, PathBuf};

use iam_join_assertion::{AssertionConfig, KeySet, SigningAlgorithm};
use serde::Deserialize;

use super::raw::RawDuration;
use super::{ConfigError, invalid, resolve};

/// The section as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAssertion {
    issuer: String,
    audiences: Vec<String>,
    #[serde(default)]
    life: Option<RawDuration>,
    #[serde(default)]
    header: Option<String>,
    #[serde(default)]
    keys: Vec<RawAssertionKey>,
    #[serde(default)]
    generate: bool,
    #[serde(default)]
    signing_key: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAssertionKey {
    file: PathBuf,
    #[serde(default)]
    alg: Option<String>,
}

/// Where the signing keys come from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AssertionKeys {
    /// PEM files, the signing key first, each with the algorithm it must have (if given).
    /// Re-read on reload (SIGHUP, or a change of the token files).
    Files(Vec<(PathBuf, Option<SigningAlgorithm>)>),
    /// One key made at start (single replica only: others would not know it).
    Generate(SigningAlgorithm),
}

/// The validated `assertion:` section.
#[derive(Clone, Debug)]
pub struct AssertionSettings {
    /// Issuer, audiences, life and header.
    pub config: AssertionConfig,
    /// The keys.
    pub keys: AssertionKeys,
}

impl AssertionSettings {
    /// Loads (or generates) the key set; call again on reload. Errors name the field.
    ///
    /// # Errors
    ///
    /// A key file is unreadable, not a key, a duplicate, or not of its `alg`.
    pub fn load_keys(&self) -> Result<KeySet, ConfigError> {
        match &self.keys {
            AssertionKeys::Generate(alg) => {
                KeySet::generate(*alg).map_err(|e| invalid("assertion.generate", e.to_string()))
            }
            AssertionKeys::Files(files) => {
                let paths: Vec<PathBuf> = files.iter().map(|(p, _)| p.clone()).collect();
                let keys =
                    KeySet::load(&paths).map_err(|e| invalid("assertion.keys", e.to_string()))?;
                for ((path, alg), key) in files.iter().zip(keys.published()) {
                    if let Some(alg) = alg
                        && *alg != key.algorithm()
                    {
                        return Err(invalid(
                            "assertion.keys.alg",
                            format!(
                                "{} is an {} key, not {alg}",
                                path.display(),
                                key.algorithm()
                            ),
                        ));
                    }
                }
                Ok(keys)
            }
        }
    }
}

pub(crate) fn validate(raw: RawAssertion, base: &Path) -> Result<AssertionSettings, ConfigError> {
    let mut config =
        AssertionConfig::new(raw.issuer.clone(), raw.audiences.clone()).map_err(|e| match e {
            iam_join_assertion::ConfigError::Issuer(_) => invalid(
                "assertion.issuer",
                "must be an absolute https:// or http:// URL",
            ),
            _ => invalid("assertion.audiences", "at least one, none empty"),
        })?;
    if let Some(life) = raw.life {
        config = config
            .with_lifetime(life.0)
            .map_err(|_| invalid("assertion.life", "must be whole seconds from 10s to 1h"))?;
    }
    if let Some(header) = &raw.header {
        config = config.with_header(header).map_err(|_| {
            invalid(
                "assertion.header",
                format!("{header:?} is not an HTTP header name"),
            )
        })?;
    }
    let keys = validate_keys(&raw, base)?;
    Ok(AssertionSettings { config, keys })
}

fn validate_keys(raw: &RawAssertion, base: &Path) -> Result<AssertionKeys, ConfigError> {
    let mut files = Vec::with_capacity(raw.keys.len());
    for (i, key) in raw.keys.iter().enumerate() {
        let alg = key
            .alg
            .as_deref()
            .map(|name| {
                SigningAlgorithm::parse(name).ok_or_else(|| {
                    invalid(
                        format!("assertion.keys[{i}].alg"),
                        format!("{name:?} is not ES256 or EdDSA"),
                    )
                })
            })
            .transpose()?;
        files.push((resolve(base, key.file.clone()), alg));
    }
    match (files.is_empty(), raw.generate) {
        (true, false) => Err(invalid(
            "assertion.keys",
            "name key files, or set `generate: true` (single replica only)",
        )),
        (false, true) => Err(invalid(
            "assertion.generate",
            "cannot be combined with assertion.keys",
        )),
        (true, true) => {
            if raw.signing_key.is_some() {
                return Err(invalid(
                    "assertion.signing_key",
                    "names one of assertion.keys; there are none with generate",
                ));
            }
            Ok(AssertionKeys::Generate(SigningAlgorithm::default()))
        }
        (false, false) => {
            if let Some(signing) = &raw.signing_key {
                let signing = resolve(base, signing.clone());
                let at = files
                    .iter()
                    .position(|(p, _)| *p == signing)
                    .ok_or_else(|| {
                        invalid(
                            "assertion.signing_key",
                            format!("{} is not one of assertion.keys", signing.display()),
                        )
                    })?;
                // The key set signs with its first key.
                let first = files.remove(at);
                files.insert(0, first);
            }
            Ok(AssertionKeys::Files(files))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(yaml: &str) -> Result<AssertionSettings, ConfigError> {
        let raw: RawAssertion = serde_norway::from_str(yaml).unwrap();
        validate(raw, Path::new("/etc/iam-join"))
    }

    const BASE: &str = "issuer: https://iam-join.test\naudiences: [orders-api]\n";

    #[test]
    fn each_bad_setting_names_its_field() {
        for (extra, field) in [
            ("", "assertion.keys"),
            (
                "generate: true\nkeys: [{file: a.pem}]\n",
                "assertion.generate",
            ),
            (
                "generate: true\nsigning_key: a.pem\n",
                "assertion.signing_key",
            ),
            (
                "keys: [{file: a.pem}]\nsigning_key: b.pem\n",
                "assertion.signing_key",
            ),
            (
                "keys: [{file: a.pem, alg: es256}]\n",
                "assertion.keys[0].alg",
            ),
            ("generate: true\nlife: 5s\n", "assertion.life"),
            ("generate: true\nlife: 2h\n", "assertion.life"),
            (
                "generate: true\nheader: \"bad header\"\n",
                "assertion.header",
            ),
        ] {
            let err = parse(&format!("{BASE}{extra}")).unwrap_err();
            assert_eq!(err.field(), Some(field), "{extra}: {err}");
        }
        let err = parse("issuer: iam-join\naudiences: [a]\ngenerate: true\n").unwrap_err();
        assert_eq!(err.field(), Some("assertion.issuer"));
        let err = parse("issuer: https://i\naudiences: []\ngenerate: true\n").unwrap_err();
        assert_eq!(err.field(), Some("assertion.audiences"));
    }

    #[test]
    fn signing_key_moves_first_and_paths_resolve_against_the_config_dir() {
        let s = parse(&format!(
            "{BASE}keys: [{{file: old.pem}}, {{file: new.pem, alg: EdDSA}}]\nsigning_key: new.pem\nlife: 2m\n"
        ))
        .unwrap();
        assert_eq!(
            s.keys,
            AssertionKeys::Files(vec![
                (
                    PathBuf::from("/etc/iam-join/new.pem"),
                    Some(SigningAlgorithm::EdDsa)
                ),
                (PathBuf::from("/etc/iam-join/old.pem"), None),
            ])
        );
        assert_eq!(s.config.lifetime().as_secs(), 120);
    }

    #[test]
    fn generate_makes_one_es256_key_and_missing_files_name_the_keys_field() {
        let s = parse(&format!("{BASE}generate: true\n")).unwrap();
        let keys = s.load_keys().unwrap();
        assert_eq!(keys.signing_key().algorithm(), SigningAlgorithm::Es256);
        let s = parse(&format!("{BASE}keys: [{{file: /nonexistent/k.pem}}]\n")).unwrap();
        assert_eq!(s.load_keys().unwrap_err().field(), Some("assertion.keys"));
    }
}
