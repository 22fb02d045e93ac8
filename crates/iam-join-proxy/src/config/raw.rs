//! The configuration file as written: serde types with `deny_unknown_fields` everywhere, so a
//! misspelt key is an error that names it, never a silently ignored setting.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

pub(crate) use super::assertion::RawAssertion;
pub(crate) use super::audit::RawAudit;
pub(crate) use super::organizations::RawOrganizations;
pub(crate) use super::otlp::RawOtlp;
pub(crate) use super::redis::RawRedis;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub(crate) listen: String,
    #[serde(default)]
    pub(crate) tls: Option<RawTls>,
    pub(crate) upstream: RawUpstream,
    #[serde(default)]
    pub(crate) audience: Option<String>,
    #[serde(default)]
    pub(crate) default_token: Option<String>,
    pub(crate) tokens: PathBuf,
    #[serde(default)]
    pub(crate) prefix: Option<String>,
    #[serde(default)]
    pub(crate) public_paths: Vec<String>,
    #[serde(default)]
    pub(crate) challenge_paths: Vec<String>,
    #[serde(default)]
    pub(crate) sts: RawSts,
    #[serde(default)]
    pub(crate) cache: RawCache,
    #[serde(default)]
    pub(crate) rate_limits: RawRateLimits,
    #[serde(default)]
    pub(crate) trusted_proxies: Vec<String>,
    #[serde(default)]
    pub(crate) admin: Option<RawAdmin>,
    #[serde(default)]
    pub(crate) log: RawLog,
    #[serde(default)]
    pub(crate) challenge_key_file: Option<PathBuf>,
    #[serde(default)]
    pub(crate) drain_timeout: Option<RawDuration>,
    #[serde(default)]
    pub(crate) redis: Option<RawRedis>,
    #[serde(default)]
    pub(crate) connections: RawConnections,
    #[serde(default)]
    pub(crate) assertion: Option<RawAssertion>,
    #[serde(default)]
    pub(crate) audit: Option<RawAudit>,
    #[serde(default)]
    pub(crate) otlp: Option<RawOtlp>,
    pub(crate) organizations: Option<RawOrganizations>,
}

/// Limits on client connections (`connections:`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConnections {
    #[serde(default)]
    pub(crate) max: Option<usize>,
    #[serde(default)]
    pub(crate) max_per_client: Option<usize>,
    #[serde(default)]
    pub(crate) handshake_timeout: Option<RawDuration>,
    #[serde(default)]
    pub(crate) idle_timeout: Option<RawDuration>,
    #[serde(default)]
    pub(crate) http2_keep_alive: Option<RawDuration>,
    #[serde(default)]
    pub(crate) http2_max_concurrent_streams: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpstream {
    pub(crate) url: String,
    #[serde(default)]
    pub(crate) sni: Option<String>,
    #[serde(default)]
    pub(crate) ca_file: Option<PathBuf>,
    #[serde(default)]
    pub(crate) timeout: Option<RawDuration>,
    #[serde(default)]
    pub(crate) connect_timeout: Option<RawDuration>,
    #[serde(default)]
    pub(crate) preserve_host: bool,
    #[serde(default)]
    pub(crate) client_body_timeout: Option<RawDuration>,
    #[serde(default)]
    pub(crate) max_concurrent_requests: Option<usize>,
    #[serde(default)]
    pub(crate) pool_max_idle: Option<usize>,
    #[serde(default)]
    pub(crate) pool_idle_timeout: Option<RawDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSts {
    #[serde(default)]
    pub(crate) fips: bool,
    #[serde(default)]
    pub(crate) extra_regions: Vec<String>,
    #[serde(default)]
    pub(crate) overrides: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) connect_timeout: Option<RawDuration>,
    #[serde(default)]
    pub(crate) timeout: Option<RawDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCache {
    #[serde(default)]
    pub(crate) capacity: Option<u64>,
    #[serde(default)]
    pub(crate) negative_ttl: Option<RawDuration>,
}

/// Each limit: absent means the default, `null` disables it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRateLimits {
    #[serde(default, deserialize_with = "present")]
    pub(crate) per_client: Option<Option<RawRate>>,
    #[serde(default, deserialize_with = "present")]
    pub(crate) per_key_id: Option<Option<RawRate>>,
    #[serde(default, deserialize_with = "present")]
    pub(crate) sts_budget: Option<Option<RawRate>>,
    #[serde(default)]
    pub(crate) sts_reserved_percent: Option<u8>,
    #[serde(default, deserialize_with = "present")]
    pub(crate) per_account: Option<Option<RawRate>>,
}

/// Tells a key written as `null` (`Some(None)`) from an absent one (`None`, via `default`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRate {
    pub(crate) per_second: u32,
    #[serde(default)]
    pub(crate) burst: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    pub(crate) listen: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLog {
    #[serde(default)]
    pub(crate) format: Option<RawLogFormat>,
    #[serde(default)]
    pub(crate) level: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RawLogFormat {
    Json,
    Human,
}

/// A duration written as whole seconds (`30`) or with a unit: `250ms`, `10s`, `5m`, `1h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawDuration(pub(crate) Duration);

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawDuration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a duration such as \"250ms\", \"10s\", \"5m\", \"1h\" or whole seconds",
                )
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawDuration, E> {
                Ok(RawDuration(Duration::from_secs(v)))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawDuration, E> {
                u64::try_from(v)
                    .map(|v| RawDuration(Duration::from_secs(v)))
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawDuration, E> {
                parse_duration(v)
                    .map(RawDuration)
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        d.deserialize_any(V)
    }
}

/// Parses `250ms`, `10s`, `5m`, `1h` or a bare number of seconds.
pub(crate) fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    if digits.is_empty() {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    match unit.trim() {
        "ms" => Some(Duration::from_millis(n)),
        "" | "s" => Some(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit_or_whole_seconds() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("10"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1.5s"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("10 years"), None);
        assert_eq!(parse_duration("-1s"), None);
    }
}
