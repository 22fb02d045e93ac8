//! What the signer needs to know, checked once: issuer, audiences, life, header name. (The
//! file form is the proxy's `assertion:` section, `iam_join_proxy::config::AssertionSettings`.)

use std::time::Duration;

use http::HeaderName;

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
    #[error("assertion life must be 10s..=1h in whole seconds, got {0}s")]
    Lifetime(u64),
    /// The header name is not a valid lowercase HTTP header name.
    #[error("assertion header {0:?} is not a valid HTTP header name")]
    Header(String),
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
}
