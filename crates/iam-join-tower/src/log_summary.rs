//! Summarised logging for events an attacker can repeat at will (denials, upstream and STS
//! failures): the first event of a kind in each interval is logged, with the number of events of
//! that kind left unlogged since the previous line; the rest are only counted. Log volume is then
//! bounded by the number of kinds per interval, whatever the request rate, while metrics keep
//! the exact counts.
//!
//! ```
//! use std::time::Duration;
//! use iam_join_tower::log_summary::LogSummary;
//!
//! static DENIALS: LogSummary = LogSummary::new(Duration::from_secs(10));
//! for _ in 0..1000 {
//!     DENIALS.record("missing_proof", |suppressed| {
//!         tracing::info!(code = "missing_proof", suppressed, "request denied");
//!     });
//! }
//! // One line was written; the next one, after 10 s, will say `suppressed=999`.
//! ```

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Default interval between two log lines of one kind.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// Counts repeated events per kind and lets one through per interval. `const`-constructible,
/// so it can be a `static` next to the call site.
#[derive(Debug)]
pub struct LogSummary {
    interval: Duration,
    // A handful of kinds (error codes): a vector is smaller and faster than a map here.
    kinds: Mutex<Vec<(&'static str, Window)>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    suppressed: u64,
}

impl LogSummary {
    /// A summary that logs each kind at most once per `interval`.
    pub const fn new(interval: Duration) -> Self {
        Self {
            interval,
            kinds: Mutex::new(Vec::new()),
        }
    }

    /// Records one event of `kind`: calls `log` with the number of events of that kind not
    /// logged since its last line, if the interval allows a line now; otherwise only counts.
    pub fn record(&self, kind: &'static str, log: impl FnOnce(u64)) {
        if let Some(suppressed) = self.admit(kind, Instant::now()) {
            log(suppressed);
        }
    }

    /// `Some(suppressed)` when an event of `kind` at `now` should be logged.
    fn admit(&self, kind: &'static str, now: Instant) -> Option<u64> {
        let mut kinds = self.kinds.lock().unwrap_or_else(PoisonError::into_inner);
        let window = match kinds.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, w)) => w,
            None => {
                kinds.push((
                    kind,
                    Window {
                        started: now,
                        suppressed: 0,
                    },
                ));
                return Some(0);
            }
        };
        if now.saturating_duration_since(window.started) < self.interval {
            window.suppressed += 1;
            return None;
        }
        let suppressed = window.suppressed;
        *window = Window {
            started: now,
            suppressed: 0,
        };
        Some(suppressed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_kind_per_interval_carrying_the_count_of_the_rest() {
        let s = LogSummary::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(s.admit("a", t0), Some(0));
        for i in 1..=999u64 {
            assert_eq!(s.admit("a", t0 + Duration::from_millis(i)), None);
        }
        // Another kind has its own window.
        assert_eq!(s.admit("b", t0 + Duration::from_secs(1)), Some(0));
        assert_eq!(s.admit("a", t0 + Duration::from_secs(10)), Some(999));
        assert_eq!(s.admit("a", t0 + Duration::from_secs(11)), None);
        assert_eq!(s.admit("a", t0 + Duration::from_secs(25)), Some(1));
    }

    #[test]
    fn lines_are_bounded_by_elapsed_intervals_and_no_event_is_lost() {
        // Many pseudo-random event sequences (a small LCG keeps the test dependency-free).
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..200 {
            let s = LogSummary::new(Duration::from_secs(1));
            let t0 = Instant::now();
            let mut now = t0;
            let (mut lines, mut reported) = (0u64, 0u64);
            let events = 1 + seed % 500;
            for _ in 0..events {
                seed = seed
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                now += Duration::from_millis((seed >> 33) % 3_000);
                if let Some(suppressed) = s.admit("k", now) {
                    lines += 1;
                    reported += suppressed + 1;
                }
            }
            assert!(lines <= now.duration_since(t0).as_secs() + 1);
            let pending = s.kinds.lock().unwrap()[0].1.suppressed;
            assert_eq!(reported + pending, events);
        }
    }
}
