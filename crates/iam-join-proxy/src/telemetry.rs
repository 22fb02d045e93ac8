//! Metrics (OpenTelemetry, exported as Prometheus text and optionally OTLP), spans (OTLP, when
//! `otlp.traces` is set) and logs (tracing-subscriber).
//!
//! The exporter is configured so the Prometheus names are exactly DESIGN §9's: the layer's
//! instruments already carry `_total` and `_seconds`, so the exporter's own counter and unit
//! suffixes are turned off, and the `otel_scope_*` labels are left out.

use std::io::IsTerminal as _;

use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use prometheus::{Encoder as _, TextEncoder};

use crate::config::{LogConfig, LogFormat, OtlpSettings, TraceSettings};
use crate::error::ProxyError;

/// A meter provider whose instruments are read by a private Prometheus registry. No global
/// provider is installed, so several proxies can live in one process (tests).
#[derive(Clone)]
pub struct Metrics {
    registry: prometheus::Registry,
    provider: SdkMeterProvider,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// A new registry, exporter and provider.
    ///
    /// # Errors
    ///
    /// The exporter could not be registered.
    pub fn new() -> Result<Self, ProxyError> {
        Self::with_otlp(None)
    }

    /// As [`new`](Self::new), and with `otlp` also pushing every metric to a collector.
    ///
    /// # Errors
    ///
    /// An exporter could not be built.
    pub fn with_otlp(otlp: Option<&OtlpSettings>) -> Result<Self, ProxyError> {
        let registry = prometheus::Registry::new();
        let exporter = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .without_counter_suffixes()
            .without_units()
            .scope_info_enabled(false)
            .build()
            .map_err(|e| ProxyError::Metrics(e.to_string()))?;
        let mut provider = SdkMeterProvider::builder()
            .with_resource(resource())
            .with_reader(exporter);
        if let Some(o) = otlp {
            provider = provider.with_reader(otlp_reader(o)?);
        }
        let provider = provider.build();
        Ok(Self { registry, provider })
    }

    /// The meter to hand to the layer.
    pub fn meter(&self) -> Meter {
        self.provider.meter("iam-join-proxy")
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "encoding metrics failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// A reader that pushes every `interval` over OTLP/HTTP (protobuf). The exporter runs on the
/// reader's own thread, never on the request path.
fn otlp_reader(
    o: &OtlpSettings,
) -> Result<
    opentelemetry_sdk::metrics::PeriodicReader<opentelemetry_otlp::MetricExporter>,
    ProxyError,
> {
    let exporter = to_collector(
        opentelemetry_otlp::MetricExporter::builder().with_http(),
        o.signal_url("metrics"),
    )
    .build()
        .map_err(|e| ProxyError::config("otlp", format!("OTLP metrics exporter: {e}")))?;
    Ok(
        opentelemetry_sdk::metrics::PeriodicReader::builder(exporter)
            .with_interval(o.interval)
            .build(),
    )
}

/// Who sends: the resource of every metric, span and log record.
pub(crate) fn resource() -> Resource {
    Resource::builder()
        .with_service_name("iam-join-proxy")
        .build()
}

/// An OTLP exporter builder set to HTTP/protobuf and to `url` when the config names the
/// collector (else the standard `OTEL_EXPORTER_OTLP_*` variables decide).
pub(crate) fn to_collector<B: opentelemetry_otlp::WithExportConfig>(
    builder: B,
    url: Option<String>,
) -> B {
    let builder = builder.with_protocol(opentelemetry_otlp::Protocol::HttpBinary);
    match url {
        Some(url) => builder.with_endpoint(url),
        None => builder,
    }
}

/// Spans of every request, pushed over OTLP/HTTP by a batch processor on its own thread (a
/// slow collector fills its bounded queue and spans are dropped, never a request held).
/// Dropping the last clone flushes and shuts the exporter down.
#[derive(Clone)]
pub struct Traces {
    provider: SdkTracerProvider,
}

impl std::fmt::Debug for Traces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Traces")
    }
}

impl Traces {
    /// A provider exporting to the `otlp:` collector, sampling new traces at `settings`'s
    /// ratio and following a trusted caller's sampled flag.
    ///
    /// # Errors
    ///
    /// The exporter could not be built.
    pub fn start(otlp: &OtlpSettings, settings: TraceSettings) -> Result<Self, ProxyError> {
        let exporter = to_collector(
            opentelemetry_otlp::SpanExporter::builder().with_http(),
            otlp.signal_url("traces"),
        )
        .build()
        .map_err(|e| ProxyError::config("otlp.traces", format!("OTLP span exporter: {e}")))?;
        let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            settings.sample_ratio(),
        )));
        let provider = SdkTracerProvider::builder()
            .with_resource(resource())
            .with_sampler(sampler)
            .with_batch_exporter(exporter)
            .build();
        Ok(Self { provider })
    }

    /// The tracer to hand to the layer.
    pub fn tracer(&self) -> SdkTracer {
        self.provider.tracer("iam-join")
    }
}

/// Installs the global `tracing` subscriber for the binary: JSON or human lines on stderr,
/// filtered by `RUST_LOG` if set, else by `log.level`. Does nothing if one is installed.
pub fn init_logging(log: &LogConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
        // Signing libraries log header values at debug/trace; proofs must never reach logs.
        .add_directive(
            "aws_sigv4=info"
                .parse()
                .unwrap_or_else(|_| unreachable!("a valid directive")),
        );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match log.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Human => builder.try_init(),
    };
}
