//! What the signer needs to know, checked once: issuer, audiences, life, header name; and the
//! serde form a configuration file uses.

use std::path::PathBuf;
use std::time::Duration;

use http::HeaderName;
use serde::Deserialize;

use crate::keys::{KeyError, KeySet, SigningAlgorithm};

/// The header an admitted request carries the assertion in, unless configured otherwise.
pub const DEFAULT_HEADER: &str = "x-iam-join-assertion";
/// An assertion's life unless configured otherwise (never past the proof's expiry).
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);
/// The shortest and longest configurable life. Short enough that a leaked assertion is of
/// little use; long enough that the cache (which re-signs when a quarter is left) pays off.
pub const LIFETIME_RANGE: std::ops::RangeInclusive<u64> = 10..=3600;
/// How long upstreams may cache the JWKS (`Cache-Control: max-age`). Keep a new key published
/// at least this long before it signs.
pub const DEFAULT_JWKS_MAX_AGE: Duration = Duration::from_secs(300);

/// Why a configuration cannot be used.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The issuer is not an absolute `https://` or `http://` URL.
    #[error("assertion issuer must be an absolute https:// or http:// URL, got {0:?}")]
    Issuer(String),
    /// No audience, or an empty one.
    #[error("assertion audiences: at least one, none empty")]
    Audiences,
    /// The life is out of range.
    #[error("assertion lifetime_seconds must be in 10..=3600, got {0}")]
    Lifetime(u64),
    /// The header name is not a valid lowercase HTTP header name.
    #[error("assertion header {0:?} is not a valid HTTP header name")]
    Header(String),
    /// The algorithm name is not `ES256` or `EdDSA`.
    #[error("assertion algorithm must be ES256 or EdDSA, got {0:?}")]
    Algorithm(String),
    /// The configured algorithm is not the signing key's.
    #[error("assertion algorithm {configured} does not match the signing key {kid} ({actual})")]
    AlgorithmMismatch {
        /// The algorithm in the configuration.
        configured: SigningAlgorithm,
        /// The signing key's algorithm.
        actual: SigningAlgorithm,
        /// The signing key's id.
        kid: String,
    },
    /// A key could not be loaded.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// The validated signer configuration.
#[derive(Clone, Debug)]
pub struct AssertionConfig {
    pub(crate) issuer: String,
    pub(crate) audiences: Vec<String>,
    pub(crate) lifetime: Duration,
    pub(crate) header: HeaderName,
    pub(crate) jwks_max_age: Duration,
    pub(crate) cache_entries: u64,
}

impl AssertionConfig {
    /// An issuer URL and the audiences (e.g. the upstream's name); life 5 minutes, header
    /// `x-iam-join-assertion`.
    pub fn new(
        issuer: impl Into<String>,
        audiences: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<Self, ConfigError> {
        let issuer = issuer.into();
        if !is_absolute_http_url(&issuer) {
            return Err(ConfigError::Issuer(issuer));
        }
        let audiences: Vec<String> = audiences.into_iter().map(Into::into).collect();
        if audiences.is_empty() || audiences.iter().any(String::is_empty) {
            return Err(ConfigError::Audiences);
        }
        Ok(Self {
            issuer,
            audiences,
            lifetime: DEFAULT_LIFETIME,
            header: HeaderName::from_static(DEFAULT_HEADER),
            jwks_max_age: DEFAULT_JWKS_MAX_AGE,
            cache_entries: 100_000,
        })
    }

    /// Sets the assertion's life (10 s to 1 h).
    pub fn with_lifetime(mut self, lifetime: Duration) -> Result<Self, ConfigError> {
        let secs = lifetime.as_secs();
        if !LIFETIME_RANGE.contains(&secs) || lifetime.subsec_nanos() != 0 {
            return Err(ConfigError::Lifetime(secs));
        }
        self.lifetime = lifetime;
        Ok(self)
    }

    /// Sets the header name.
    pub fn with_header(mut self, name: &str) -> Result<Self, ConfigError> {
        self.header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ConfigError::Header(name.into()))?;
        Ok(self)
    }

    /// Sets the bound on cached assertions (one per identity × token × audience).
    pub fn with_cache_entries(mut self, entries: u64) -> Self {
        self.cache_entries = entries;
        self
    }

    /// The issuer URL.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
    /// The audiences.
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }
    /// The life of a fresh assertion.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }
    /// The header name.
    pub fn header(&self) -> &HeaderName {
        &self.header
    }
}

fn is_absolute_http_url(url: &str) -> bool {
    match url.parse::<http::Uri>() {
        Ok(uri) => {
            matches!(uri.scheme_str(), Some("https" | "http"))
                && uri.authority().is_some_and(|a| !a.host().is_empty())
                && !uri.authority().is_some_and(|a| a.as_str().contains('@'))
        }
        Err(_) => false,
    }
}

/// The `assertion:` section of a configuration file.
///
/// ```yaml
/// issuer: https://iam-join.example.internal
/// audiences: [orders-api]
/// lifetime_seconds: 300           # default 300; never past the proof's expiry
/// header: x-iam-join-assertion    # default
/// key_files:                      # PKCS#8 PEM; the first signs, all are published
///   - /etc/iam-join/assertion-2026-12.pem
///   - /etc/iam-join/assertion-2026-09.pem
/// # without key_files: a key generated at start (single replica only)
/// algorithm: ES256                # or EdDSA; for a generated key, or checked against the first file
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssertionSettings {
    /// Issuer URL.
    pub issuer: String,
    /// Audiences.
    pub audiences: Vec<String>,
    /// Life in seconds.
    #[serde(default = "default_lifetime_seconds")]
    pub lifetime_seconds: u64,
    /// Header name.
    #[serde(default)]
    pub header: Option<String>,
    /// PEM key files; the first signs.
    #[serde(default)]
    pub key_files: Vec<PathBuf>,
    /// `ES256` or `EdDSA`.
    #[serde(default)]
    pub algorithm: Option<String>,
}

fn default_lifetime_seconds() -> u64 {
    DEFAULT_LIFETIME.as_secs()
}

impl AssertionSettings {
    /// The validated configuration (no I/O).
    pub fn config(&self) -> Result<AssertionConfig, ConfigError> {
        let mut config = AssertionConfig::new(self.issuer.clone(), self.audiences.clone())?
            .with_lifetime(Duration::from_secs(self.lifetime_seconds))?;
        if let Some(header) = &self.header {
            config = config.with_header(header)?;
        }
        Ok(config)
    }

    /// Loads the key files, or generates a key when none are named. Call again on reload.
    pub fn load_keys(&self) -> Result<KeySet, ConfigError> {
        let algorithm = self
            .algorithm
            .as_deref()
            .map(|name| SigningAlgorithm::parse(name).ok_or(ConfigError::Algorithm(name.into())))
            .transpose()?;
        if self.key_files.is_empty() {
            return Ok(KeySet::generate(algorithm.unwrap_or_default())?);
        }
        let keys = KeySet::load(&self.key_files)?;
        let signing = keys.signing_key();
        match algorithm {
            Some(configured) if configured != signing.algorithm() => {
                Err(ConfigError::AlgorithmMismatch {
                    configured,
                    actual: signing.algorithm(),
                    kid: signing.kid().to_owned(),
                })
            }
            _ => Ok(keys),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_must_be_an_absolute_http_url() {
        for good in ["https://iam-join.example", "http://127.0.0.1:8080/x"] {
            assert!(AssertionConfig::new(good, ["a"]).is_ok(), "{good}");
        }
        for bad in [
            "",
            "iam-join",
            "/path",
            "ftp://x",
            "https://",
            "https://user@host",
        ] {
            assert!(
                matches!(
                    AssertionConfig::new(bad, ["a"]),
                    Err(ConfigError::Issuer(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn audiences_lifetime_and_header_are_checked() {
        let none: [&str; 0] = [];
        assert!(matches!(
            AssertionConfig::new("https://i", none),
            Err(ConfigError::Audiences)
        ));
        assert!(matches!(
            AssertionConfig::new("https://i", [""]),
            Err(ConfigError::Audiences)
        ));
        let config = AssertionConfig::new("https://i", ["a"]).unwrap();
        for secs in [0, 9, 3601] {
            assert!(
                config
                    .clone()
                    .with_lifetime(Duration::from_secs(secs))
                    .is_err()
            );
        }
        assert!(
            config
                .clone()
                .with_lifetime(Duration::from_millis(10_500))
                .is_err()
        );
        assert!(config.clone().with_header("bad header").is_err());
        assert_eq!(
            config.with_header("X-Assert").unwrap().header().as_str(),
            "x-assert"
        );
    }

    #[test]
    fn settings_reject_unknown_fields_and_bad_algorithms() {
        let typo = serde_json::from_str::<AssertionSettings>(
            r#"{"issuer":"https://i","audiences":["a"],"lifetime":60}"#,
        );
        assert!(typo.is_err());
        let settings: AssertionSettings =
            serde_json::from_str(r#"{"issuer":"https://i","audiences":["a"],"algorithm":"es256"}"#)
                .unwrap();
        assert!(matches!(
            settings.load_keys(),
            Err(ConfigError::Algorithm(_))
        ));
        let settings: AssertionSettings =
            serde_json::from_str(r#"{"issuer":"https://i","audiences":["a"],"algorithm":"EdDSA"}"#)
                .unwrap();
        let keys = settings.load_keys().unwrap();
        assert_eq!(keys.signing_key().algorithm(), SigningAlgorithm::EdDsa);
        assert_eq!(settings.config().unwrap().lifetime(), DEFAULT_LIFETIME);
    }
}
