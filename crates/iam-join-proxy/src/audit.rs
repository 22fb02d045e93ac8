//! The audit sink: JSON lines to a file or to stdout, written by a thread of its own behind a
//! bounded queue. A request never waits for the disk or for a slow stdout reader: when the
//! queue is full the event is dropped and counted (`iam_join_audit_events_dropped_total`, and a
//! warning at the 1st, 2nd, 4th, 8th, … drop, so a flood of drops cannot flood the log). The
//! writes block only the writer thread, never an async worker.
//!
//! The file is opened in append mode and reopened on SIGHUP (and [`AuditWriter::reopen`]), so
//! logrotate's default `create` mode works: rename the file, signal, and the next event goes to
//! a new file. Events queued before the reopen end up in the renamed file; none is lost.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use iam_join_tower::audit::{AuditEvent, AuditSink};
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::metrics::{Counter, Meter};
use opentelemetry_sdk::logs::{SdkLogger, SdkLoggerProvider};

pub use crate::config::AuditDestination;
use crate::config::OtlpSettings;

/// What the writer thread is asked to do.
enum Message {
    Event(Box<AuditEvent>),
    Reopen,
}

/// A running audit sink. Cheap to clone; the writer thread ends when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct AuditWriter {
    queue: SyncSender<Message>,
    /// A reopen asked for while the queue was full; the thread looks at it after each event.
    reopen_pending: Arc<AtomicBool>,
    replica: Option<String>,
    dropped: Arc<AtomicU64>,
    dropped_metric: Option<Counter<u64>>,
    otlp: Option<OtlpAuditLogs>,
}

impl AuditWriter {
    /// Opens `destination` (so a bad path fails at start, naming it) and starts the writer
    /// thread.
    ///
    /// # Errors
    ///
    /// The file cannot be opened for appending, or the thread cannot be started.
    pub fn start(
        destination: AuditDestination,
        capacity: usize,
        replica: Option<String>,
        meter: Option<&Meter>,
    ) -> std::io::Result<Self> {
        let out = Output::open(&destination)?;
        let (queue, messages) = sync_channel(capacity.max(1));
        let reopen_pending = Arc::new(AtomicBool::new(false));
        let pending = Arc::clone(&reopen_pending);
        std::thread::Builder::new()
            .name("iam-join-audit".to_owned())
            .spawn(move || write_events(&messages, out, &destination, &pending))?;
        Ok(Self {
            queue,
            reopen_pending,
            replica,
            dropped: Arc::new(AtomicU64::new(0)),
            dropped_metric: meter.map(|m| {
                m.u64_counter("iam_join_audit_events_dropped_total")
                    .with_description("Audit events dropped because the audit queue was full")
                    .build()
            }),
            otlp: None,
        })
    }

    /// Also sends every event as an OTLP log record (event name, time, severity, and the event's
    /// fields as attributes, `identity.account` and so on) to the collector of `settings`, or of
    /// the standard `OTEL_EXPORTER_OTLP_*` variables. The SDK's batch processor sends from a
    /// thread of its own and drops rather than blocks when its queue is full.
    ///
    /// # Errors
    ///
    /// The exporter cannot be built (a bad endpoint in the environment).
    pub fn with_otlp_logs(mut self, settings: Option<&OtlpSettings>) -> Result<Self, String> {
        self.otlp = Some(OtlpAuditLogs::start(settings)?);
        Ok(self)
    }

    /// Reopens the file (after logrotate renamed it); queued events are written first.
    pub fn reopen(&self) {
        if let Err(TrySendError::Full(_)) = self.queue.try_send(Message::Reopen) {
            self.reopen_pending.store(true, Ordering::Release);
        }
    }

    /// Events dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl AuditSink for AuditWriter {
    fn record(&self, mut event: AuditEvent) {
        event.replica.clone_from(&self.replica);
        if let Some(otlp) = &self.otlp {
            otlp.emit(&event);
        }
        if self
            .queue
            .try_send(Message::Event(Box::new(event)))
            .is_err()
        {
            let total = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if let Some(m) = &self.dropped_metric {
                m.add(1, &[]);
            }
            warn_dropped(total);
        }
    }
}
enum Output {
    File(std::io::BufWriter<std::fs::File>),
    Stdout(std::io::Stdout),
}

impl Output {
    fn open(destination: &AuditDestination) -> std::io::Result<Self> {
        match destination {
            AuditDestination::File(path) => {
                Ok(Self::File(std::io::BufWriter::new(open_append(path)?)))
            }
            AuditDestination::Stdout => Ok(Self::Stdout(std::io::stdout())),
        }
    }

    fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        match self {
            Self::File(f) => {
                f.write_all(line)?;
                f.write_all(b"\n")
            }
            Self::Stdout(s) => {
                let mut s = s.lock();
                s.write_all(line)?;
                s.write_all(b"\n")
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::File(f) => f.flush(),
            Self::Stdout(s) => s.flush(),
        }
    }
}

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        // Audit records name identities and clients: readable by the proxy's user only.
        options.mode(0o600);
    }
    options.open(path)
}

/// The writer thread: writes each event as one line, flushes whenever the queue runs dry, and
/// reopens the file when asked. A failed write is logged (without the event) and the thread
/// goes on. Ends when every [`AuditWriter`] is gone.
fn write_events(
    messages: &Receiver<Message>,
    mut out: Output,
    destination: &AuditDestination,
    reopen_pending: &AtomicBool,
) {
    while let Ok(first) = messages.recv() {
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                Message::Event(event) => {
                    // An event is plain strings and numbers: it always serializes.
                    let line = serde_json::to_vec(&event).unwrap_or_default();
                    if let Err(e) = out.write_line(&line) {
                        tracing::warn!(error = %e, "audit write failed");
                    }
                }
                Message::Reopen => reopen(&mut out, destination),
            }
            if reopen_pending.swap(false, Ordering::AcqRel) {
                reopen(&mut out, destination);
            }
            next = messages.try_recv().ok();
        }
        if let Err(e) = out.flush() {
            tracing::warn!(error = %e, "audit flush failed");
        }
    }
    let _ = out.flush();
}

/// Flushes what was written to the old file, then opens the path again (a new file after a
/// rename); on failure keeps writing to the old one.
fn reopen(out: &mut Output, destination: &AuditDestination) {
    let _ = out.flush();
    match Output::open(destination) {
        Ok(new) => *out = new,
        Err(e) => tracing::warn!(error = %e, "audit file reopen failed; keeping the old one"),
    }
}

/// Audit events as OTLP log records.
#[derive(Clone)]
struct OtlpAuditLogs {
    /// Kept so the batch processor lives as long as the writer.
    _provider: SdkLoggerProvider,
    logger: SdkLogger,
}

impl std::fmt::Debug for OtlpAuditLogs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OtlpAuditLogs")
    }
}

impl OtlpAuditLogs {
    fn start(settings: Option<&OtlpSettings>) -> Result<Self, String> {
        let exporter = crate::telemetry::to_collector(
            opentelemetry_otlp::LogExporter::builder().with_http(),
            settings.and_then(|s| s.signal_url("logs")),
        )
        .build()
        .map_err(|e| e.to_string())?;
        let provider = SdkLoggerProvider::builder()
            .with_resource(crate::telemetry::resource())
            .with_batch_exporter(exporter)
            .build();
        let logger = provider.logger("iam-join-audit");
        Ok(Self {
            _provider: provider,
            logger,
        })
    }

    fn emit(&self, event: &AuditEvent) {
        let mut record = self.logger.create_log_record();
        record.set_event_name(event.event);
        record.set_timestamp(event.time.into());
        record.set_severity_number(if event.success {
            Severity::Info
        } else {
            Severity::Warn
        });
        record.set_body(AnyValue::from(event.event));
        if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(event) {
            add_attributes(&mut record, "", &fields);
        }
        self.logger.emit(record);
    }
}

/// The event's JSON fields as attributes; nested objects as `parent.child`, lists joined by `,`.
fn add_attributes(
    record: &mut opentelemetry_sdk::logs::SdkLogRecord,
    prefix: &str,
    fields: &serde_json::Map<String, serde_json::Value>,
) {
    use serde_json::Value;
    for (name, value) in fields {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        match value {
            Value::String(s) => record.add_attribute(key, s.clone()),
            Value::Bool(b) => record.add_attribute(key, *b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => record.add_attribute(key, i),
                None => record.add_attribute(key, n.as_f64().unwrap_or_default()),
            },
            Value::Array(items) => {
                let joined: Vec<String> = items
                    .iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                    .collect();
                record.add_attribute(key, joined.join(","));
            }
            Value::Object(inner) => add_attributes(record, &key, inner),
            Value::Null => {}
        }
    }
}

/// Warns at the 1st, 2nd, 4th, … dropped event: visible at once, bounded under a flood.
fn warn_dropped(total: u64) {
    if total.is_power_of_two() {
        tracing::warn!(
            dropped_total = total,
            "audit queue full; audit events dropped"
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A reader that never reads: the writer thread blocks on a full pipe, the queue fills, and
    /// `record` keeps returning at once, dropping and counting.
    #[cfg(unix)]
    #[test]
    fn a_stalled_destination_never_blocks_record_it_drops_and_counts() {
        use std::os::unix::fs::OpenOptionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("audit.fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // Hold the read end open (without reading) so opening for writing succeeds.
        let _reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc_o_nonblock())
            .open(&fifo)
            .unwrap();
        let writer = AuditWriter::start(AuditDestination::File(fifo), 16, None, None).unwrap();
        // ~20 000 events of ~150 bytes: far more than the pipe (64 KiB) and the queue hold.
        for _ in 0..20_000 {
            writer.record(AuditEvent::challenge_issued());
        }
        assert!(writer.dropped() > 10_000, "dropped {}", writer.dropped());
        writer.reopen(); // never blocks either, even with the queue full
    }

    /// `O_NONBLOCK` on Linux and the BSDs.
    #[cfg(unix)]
    fn libc_o_nonblock() -> i32 {
        if cfg!(target_os = "linux") {
            0o4000
        } else {
            0x0004
        }
    }

    #[test]
    fn queued_events_reach_the_file_with_the_replica() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let writer = AuditWriter::start(
            AuditDestination::File(path.clone()),
            64,
            Some("r1".into()),
            None,
        )
        .unwrap();
        for _ in 0..4 {
            writer.record(AuditEvent::challenge_issued());
        }
        for _ in 0..500 {
            let text = std::fs::read_to_string(&path).unwrap();
            if text.lines().count() == 4 {
                assert!(
                    text.lines().all(|l| l.contains("\"replica\":\"r1\"")),
                    "{text}"
                );
                assert_eq!(writer.dropped(), 0);
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("the queued events never reached the file");
    }

    #[test]
    fn a_file_that_cannot_be_opened_fails_at_start() {
        let err = AuditWriter::start(
            AuditDestination::File("/nonexistent-dir/audit.log".into()),
            8,
            None,
            None,
        )
        .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    }
}
