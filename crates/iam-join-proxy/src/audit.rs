//! The audit sink: JSON lines to a file or to stdout, written by one task behind a bounded
//! queue. A request never waits for the disk: when the queue is full the event is dropped and
//! counted (`iam_join_audit_events_dropped_total`, and a warning at the 1st, 2nd, 4th, 8th, …
//! drop, so a flood of drops cannot flood the log).
//!
//! The file is opened in append mode and reopened on SIGHUP (and [`AuditWriter::reopen`]), so
//! logrotate's default `create` mode works: rename the file, signal, and the next event goes to
//! a new file. Events queued before the reopen end up in the renamed file; none is lost.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use iam_join_tower::audit::{AuditEvent, AuditSink};
use opentelemetry::metrics::{Counter, Meter};
use tokio::sync::{Notify, mpsc};

/// Where the events go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuditDestination {
    /// Appended to this file (created if missing, mode 0600 on unix).
    File(PathBuf),
    /// One line per event on stdout (diagnostic logs go to stderr).
    Stdout,
}

/// A running audit sink. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AuditWriter {
    queue: mpsc::Sender<AuditEvent>,
    reopen: Arc<Notify>,
    replica: Option<String>,
    dropped: Arc<AtomicU64>,
    dropped_metric: Option<Counter<u64>>,
}

impl AuditWriter {
    /// Opens `destination` (so a bad path fails at start, naming it) and starts the writer
    /// task. Must be called inside a Tokio runtime.
    ///
    /// # Errors
    ///
    /// The file cannot be opened for appending.
    pub fn start(
        destination: AuditDestination,
        capacity: usize,
        replica: Option<String>,
        meter: Option<&Meter>,
    ) -> std::io::Result<Self> {
        let out = Output::open(&destination)?;
        let (queue, events) = mpsc::channel(capacity.max(1));
        let reopen = Arc::new(Notify::new());
        tokio::spawn(write_events(events, out, destination, Arc::clone(&reopen)));
        Ok(Self {
            queue,
            reopen,
            replica,
            dropped: Arc::new(AtomicU64::new(0)),
            dropped_metric: meter.map(|m| {
                m.u64_counter("iam_join_audit_events_dropped_total")
                    .with_description("Audit events dropped because the audit queue was full")
                    .build()
            }),
        })
    }

    /// Reopens the file (after logrotate renamed it); queued events are written first.
    pub fn reopen(&self) {
        self.reopen.notify_one();
    }

    /// Events dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl AuditSink for AuditWriter {
    fn record(&self, mut event: AuditEvent) {
        event.replica.clone_from(&self.replica);
        if self.queue.try_send(event).is_err() {
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

/// The writer task: drains the queue in batches, flushing when it runs dry, and reopens the
/// file when asked. Writes are blocking but short (buffered, a local file); a failed write is
/// logged (without the event) and the task goes on.
async fn write_events(
    mut events: mpsc::Receiver<AuditEvent>,
    mut out: Output,
    destination: AuditDestination,
    reopen: Arc<Notify>,
) {
    let mut batch = Vec::with_capacity(256);
    loop {
        tokio::select! {
            biased;
            n = events.recv_many(&mut batch, 256) => {
                if n == 0 {
                    let _ = out.flush();
                    return;
                }
                for event in batch.drain(..) {
                    // An event is plain strings and numbers: it always serializes.
                    let line = serde_json::to_vec(&event).unwrap_or_default();
                    if let Err(e) = out.write_line(&line) {
                        tracing::warn!(error = %e, "audit write failed");
                    }
                }
                if events.is_empty()
                    && let Err(e) = out.flush()
                {
                    tracing::warn!(error = %e, "audit flush failed");
                }
            }
            () = reopen.notified() => {
                // What is already queued belongs to the old file.
                while let Ok(event) = events.try_recv() {
                    let line = serde_json::to_vec(&event).unwrap_or_default();
                    let _ = out.write_line(&line);
                }
                let _ = out.flush();
                match Output::open(&destination) {
                    Ok(new) => out = new,
                    Err(e) => tracing::warn!(error = %e, "audit file reopen failed; keeping the old one"),
                }
            }
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

    /// On a current-thread runtime the writer task cannot run while `record` is called in a
    /// loop: the queue fills, and every event beyond it is dropped and counted, at once.
    #[tokio::test(flavor = "current_thread")]
    async fn a_full_queue_drops_and_counts_instead_of_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let writer = AuditWriter::start(
            AuditDestination::File(path.clone()),
            4,
            Some("r1".into()),
            None,
        )
        .unwrap();
        for _ in 0..100 {
            writer.record(AuditEvent::challenge_issued());
        }
        assert_eq!(writer.dropped(), 96);
        // Once the writer runs, the four queued events reach the file, with the replica.
        for _ in 0..200 {
            tokio::task::yield_now().await;
            let text = std::fs::read_to_string(&path).unwrap();
            if text.lines().count() == 4 {
                assert!(
                    text.lines().all(|l| l.contains("\"replica\":\"r1\"")),
                    "{text}"
                );
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the queued events never reached the file");
    }

    #[test]
    fn a_file_that_cannot_be_opened_fails_at_start() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let _guard = rt.enter();
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
