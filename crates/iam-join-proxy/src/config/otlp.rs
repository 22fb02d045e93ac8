//! `otlp:`: push the metrics to an OpenTelemetry collector (OTLP over HTTP/protobuf), next to
//! the Prometheus `/metrics` page, which stays.
//!
//! ```yaml
//! otlp:                               # with `audit: {otlp: true}` also the audit events
//!   endpoint: http://127.0.0.1:4318   # default: $OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, then
//!                                     # $OTEL_EXPORTER_OTLP_ENDPOINT, then http://localhost:4318
//!   interval: 30s                     # how often the metrics are pushed (1s..10m)
//! ```
//!
//! Headers (`OTEL_EXPORTER_OTLP_HEADERS`), timeout and compression come from the standard
//! environment variables. Plain HTTP only: a collector on the same host or pod.

use std::time::Duration;

use serde::Deserialize;

use super::raw::RawDuration;
use super::{ConfigError, invalid};

const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);

/// The section as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOtlp {
    #[serde(default)]
    endpoint: Option<String>,
    #[serde(default)]
    interval: Option<RawDuration>,
}

/// The validated `otlp:` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtlpSettings {
    /// The collector's base URL (`/v1/metrics` is added); `None`: the standard variables.
    pub endpoint: Option<String>,
    /// Push interval.
    pub interval: Duration,
}

impl OtlpSettings {
    /// The metrics URL to push to, when the config names the collector.
    pub fn metrics_url(&self) -> Option<String> {
        self.signal_url("metrics")
    }

    /// `{endpoint}/v1/{signal}` (`metrics`, `logs`), when the config names the collector.
    pub fn signal_url(&self, signal: &str) -> Option<String> {
        self.endpoint
            .as_deref()
            .map(|e| format!("{}/v1/{signal}", e.trim_end_matches('/')))
    }
}

/// Checks `otlp:`.
pub(crate) fn validate(raw: RawOtlp) -> Result<OtlpSettings, ConfigError> {
    if let Some(e) = &raw.endpoint {
        let ok = e
            .parse::<http::Uri>()
            .is_ok_and(|u| u.scheme_str() == Some("http") && u.authority().is_some());
        if !ok {
            return Err(invalid(
                "otlp.endpoint",
                "must be an http:// URL of a collector, e.g. http://127.0.0.1:4318",
            ));
        }
    }
    let interval = raw.interval.map_or(DEFAULT_INTERVAL, |d| d.0);
    if !(Duration::from_millis(100)..=Duration::from_secs(600)).contains(&interval) {
        return Err(invalid("otlp.interval", "must be 100ms..10m"));
    }
    Ok(OtlpSettings {
        endpoint: raw.endpoint,
        interval,
    })
}
