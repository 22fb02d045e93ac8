//! `otlp:`: push the metrics (and, when asked, spans) to an OpenTelemetry collector (OTLP over
//! HTTP/protobuf), next to the Prometheus `/metrics` page, which stays.
//!
//! ```yaml
//! otlp:                               # with `audit: {otlp: true}` also the audit events
//!   endpoint: http://127.0.0.1:4318   # default: $OTEL_EXPORTER_OTLP_{METRICS,TRACES}_ENDPOINT,
//!                                     # then $OTEL_EXPORTER_OTLP_ENDPOINT, then localhost:4318
//!   interval: 30s                     # how often the metrics are pushed (100ms..10m)
//!   traces:                           # spans of every request; off unless this is present
//!     sample_ratio: 1.0               # share of new traces recorded (0..1); a trusted
//!                                     # caller's sampled flag is followed
//! ```
//!
//! Headers (`OTEL_EXPORTER_OTLP_HEADERS`), timeout and compression come from the standard
//! environment variables, and the span batching from `OTEL_BSP_*`. Plain HTTP only: a
//! collector on the same host or pod.

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
    #[serde(default)]
    traces: Option<RawTraces>,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTraces {
    #[serde(default)]
    sample_ratio: Option<f64>,
}

/// The validated `otlp:` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtlpSettings {
    /// The collector's base URL (`/v1/metrics` is added); `None`: the standard variables.
    pub endpoint: Option<String>,
    /// Push interval.
    pub interval: Duration,
    /// Spans, when `traces:` is present.
    pub traces: Option<TraceSettings>,
}

/// The validated `otlp.traces:` section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceSettings {
    /// Share of new traces recorded, in millionths (exact, and `Eq` for the config's
    /// comparisons): 1 000 000 records every one.
    pub sample_ppm: u32,
}

impl TraceSettings {
    /// The share of new traces recorded, 0..=1.
    pub fn sample_ratio(self) -> f64 {
        f64::from(self.sample_ppm) / 1e6
    }
}

impl OtlpSettings {
    /// `{endpoint}/v1/{signal}` (`metrics`, `traces`, `logs`), when the config names the collector.
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
    check_protocol_env(|name| std::env::var(name).ok())?;
    let traces = raw.traces.map(validate_traces).transpose()?;
    Ok(OtlpSettings {
        endpoint: raw.endpoint,
        interval,
        traces,
    })
}

/// The exporters speak OTLP/HTTP protobuf only: a `grpc` or `http/json` asked for in the
/// standard variables is refused here, by name, rather than silently not honoured.
fn check_protocol_env(var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
    for name in [
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
    ] {
        if let Some(value) = var(name)
            && value.trim() != "http/protobuf"
        {
            return Err(invalid(
                "otlp",
                format!(
                    "{name}={value:?} is not supported: the proxy exports OTLP over HTTP/protobuf \
                     (a collector's port 4318); unset it or set http/protobuf"
                ),
            ));
        }
    }
    Ok(())
}

fn validate_traces(raw: RawTraces) -> Result<TraceSettings, ConfigError> {
    let ratio = raw.sample_ratio.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&ratio) {
        return Err(invalid(
            "otlp.traces.sample_ratio",
            "must be between 0 and 1 (1: every request)",
        ));
    }
    // In 0..=1, so the product is in 0..=1e6 and the cast exact to the nearest millionth.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let sample_ppm = (ratio * 1e6).round() as u32;
    Ok(TraceSettings { sample_ppm })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_protobuf_is_accepted_from_the_environment() {
        assert!(check_protocol_env(|_| None).is_ok());
        assert!(check_protocol_env(|_| Some("http/protobuf".into())).is_ok());
        for (var, value) in [
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"),
        ] {
            let err = check_protocol_env(|n| (n == var).then(|| value.to_owned())).unwrap_err();
            assert_eq!(err.field(), Some("otlp"));
            assert!(err.to_string().contains(var), "{err}");
        }
    }
}
