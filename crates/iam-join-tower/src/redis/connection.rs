//! The connection every Redis backend shares: bounded commands, fast failure while Redis is
//! known to be unreachable, replacement of a connection that only times out, and throttled
//! warnings.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ::redis::{RedisError, RedisResult};
use arc_swap::ArcSwapOption;

use super::connector::{Conn, Connector};

/// Consecutive timeouts after which the connection is replaced.
const REPLACE_AFTER_TIMEOUTS: u32 = 3;
/// At most one replacement per this interval.
const REPLACE_INTERVAL_MS: u64 = 5_000;
/// At most one warning per kind per this interval.
const WARN_INTERVAL_MS: u64 = 10_000;
/// `replaced_at_ms` before the first replacement.
const NEVER: u64 = u64::MAX;
/// While Redis is unreachable, one command per this interval is let through to probe it; the
/// others fail at once instead of each waiting up to the command timeout.
const PROBE_INTERVAL_MS: u64 = 200;

/// Why a Redis command failed.
#[derive(Debug)]
pub(super) enum LinkError {
    /// No answer within the command timeout (Redis slow, or still (re)connecting).
    Timeout(Duration),
    /// Redis or the connection reported an error.
    Redis(RedisError),
    /// Not sent: Redis was unreachable moments ago (for this reason) and another command is
    /// probing it.
    Unreachable(Arc<String>),
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout(d) => write!(f, "no answer within {} ms", d.as_millis()),
            Self::Redis(e) => write!(f, "{e}"),
            Self::Unreachable(why) => write!(
                f,
                "unreachable moments ago ({why}); waiting for the next probe"
            ),
        }
    }
}

/// A Redis connection (one primary, a cluster, or a Sentinel-managed primary) behind bounded
/// commands.
///
/// A primary's connection manager and a cluster connection reconnect by themselves when a
/// connection drops; a Sentinel-managed primary's connection is dropped after a connection-level
/// failure or a `READONLY` answer (the primary moved) and made anew, asking the sentinels. A
/// connection that silently stops answering (a network partition without resets) is not seen as
/// dropped, so after [`REPLACE_AFTER_TIMEOUTS`] timeouts in a row it is replaced.
///
/// After a connection-level failure (I/O error or timeout) the link is *down*: commands fail at
/// once with [`LinkError::Unreachable`], except one probe per [`PROBE_INTERVAL_MS`], whose
/// success brings the link back up. So a request that needs several commands does not pay the
/// command timeout several times over while Redis is away.
pub(super) struct RedisLink {
    connector: Connector,
    /// The current connection; `None` until the first connect and after a drop.
    conn: ArcSwapOption<Conn>,
    /// Held while connecting, so concurrent commands share one connect.
    connecting: tokio::sync::Mutex<()>,
    prefix: String,
    command_timeout: Duration,
    display_url: String,
    epoch: Instant,
    timeouts_in_a_row: AtomicU32,
    replaced_at_ms: AtomicU64,
    down: AtomicBool,
    probe_at_ms: AtomicU64,
    /// Why the link went down, repeated by the commands not sent meanwhile.
    last_failure: ArcSwapOption<String>,
}

impl fmt::Debug for RedisLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLink")
            .field("url", &self.display_url)
            .field("prefix", &self.prefix)
            .field("command_timeout", &self.command_timeout)
            .field("down", &self.down.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl RedisLink {
    /// A link that connects on first use. `display_url` has any password redacted.
    pub(super) fn new(
        connector: Connector,
        prefix: String,
        command_timeout: Duration,
        display_url: String,
    ) -> RedisResult<Self> {
        let conn = connector.lazy()?.map(Arc::new);
        Ok(Self {
            connector,
            conn: ArcSwapOption::new(conn),
            connecting: tokio::sync::Mutex::new(()),
            prefix,
            command_timeout,
            display_url,
            epoch: Instant::now(),
            timeouts_in_a_row: AtomicU32::new(0),
            replaced_at_ms: AtomicU64::new(NEVER),
            down: AtomicBool::new(false),
            probe_at_ms: AtomicU64::new(0),
            last_failure: ArcSwapOption::empty(),
        })
    }

    /// The key prefix.
    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The bound on each command.
    pub(super) fn command_timeout(&self) -> Duration {
        self.command_timeout
    }

    /// Runs `command` on the current connection, bounded by the command timeout.
    pub(super) async fn run<T, F, Fut>(&self, command: F) -> Result<T, LinkError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        self.run_within(self.command_timeout, command).await
    }

    /// Runs `command` bounded by `limit`.
    async fn run_within<T, F, Fut>(&self, limit: Duration, command: F) -> Result<T, LinkError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        if !self.may_send() {
            let why = self
                .last_failure
                .load_full()
                .unwrap_or_else(|| Arc::new("no answer".to_owned()));
            return Err(LinkError::Unreachable(why));
        }
        let attempt = async {
            let conn = self.connection().await?;
            command(conn).await
        };
        let result = match tokio::time::timeout(limit, attempt).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(LinkError::Redis(e)),
            Err(_) => Err(LinkError::Timeout(limit)),
        };
        if let Err(e) = &result
            && !matches!(e, LinkError::Unreachable(_))
        {
            self.last_failure.store(Some(Arc::new(e.to_string())));
        }
        match &result {
            Ok(_) => self.succeeded(),
            Err(LinkError::Timeout(_)) => self.timed_out(),
            Err(LinkError::Redis(e)) if e.is_timeout() => self.timed_out(),
            Err(LinkError::Redis(e))
                if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() =>
            {
                self.unreachable()
            }
            // A write refused by a demoted primary: a Sentinel failover; ask again where the
            // primary is.
            Err(LinkError::Redis(e))
                if e.kind() == ::redis::ErrorKind::Server(::redis::ServerErrorKind::ReadOnly) =>
            {
                self.forget_connection()
            }
            // A server error (NOSCRIPT, OOM, …) is an answer: Redis is there.
            Err(LinkError::Redis(_) | LinkError::Unreachable(_)) => {}
        }
        result
    }

    /// The current connection, connecting first when there is none.
    async fn connection(&self) -> RedisResult<Conn> {
        if let Some(conn) = self.conn.load_full() {
            return Ok(Conn::clone(&conn));
        }
        let _connecting = self.connecting.lock().await;
        // Another command may have connected while this one waited.
        if let Some(conn) = self.conn.load_full() {
            return Ok(Conn::clone(&conn));
        }
        let conn = self.connector.connect().await?;
        self.conn.store(Some(Arc::new(conn.clone())));
        Ok(conn)
    }

    /// For a Sentinel-managed primary: every `interval`, asks the sentinels where the primary
    /// is and drops the connection if it moved. Ends when the link is dropped.
    pub(super) fn watch_failovers(self: &Arc<Self>, interval: Duration) {
        if !self.connector.reconnects_by_hand() {
            return;
        }
        let link = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(link) = link.upgrade() else { break };
                let limit = link.command_timeout.max(Duration::from_millis(500));
                if let Ok(true) = tokio::time::timeout(limit, link.connector.primary_moved()).await
                {
                    tracing::info!(
                        target: "iam_join::redis",
                        url = %link.display_url,
                        "the sentinels name a new primary; reconnecting"
                    );
                    link.forget_connection();
                }
            }
        });
    }

    /// Drops the connection of a kind that does not reconnect by itself, so the next command
    /// connects anew.
    fn forget_connection(&self) {
        if self.connector.reconnects_by_hand() {
            self.conn.store(None);
        }
    }

    /// Whether a command may go to Redis now: always while up; while down, one probe per
    /// interval.
    fn may_send(&self) -> bool {
        if !self.down.load(Ordering::Relaxed) {
            return true;
        }
        let now = self.now_ms();
        let at = self.probe_at_ms.load(Ordering::Relaxed);
        now >= at
            && self
                .probe_at_ms
                .compare_exchange(
                    at,
                    now.saturating_add(PROBE_INTERVAL_MS),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    /// `PING` bounded by `limit`.
    pub(super) async fn ping(&self, limit: Duration) -> Result<(), LinkError> {
        self.run_within(limit, |mut c| async move {
            ::redis::cmd("PING").query_async::<()>(&mut c).await
        })
        .await
    }

    /// Connects at start and says whether Redis is there.
    pub(super) async fn warm_up(self: Arc<Self>, limit: Duration) {
        match self.ping(limit).await {
            Ok(()) => tracing::info!(
                target: "iam_join::redis",
                url = %self.display_url,
                "connected to Redis"
            ),
            Err(e) => tracing::warn!(
                target: "iam_join::redis",
                url = %self.display_url,
                error = %e,
                "Redis is not reachable at start; retrying on use (challenge joins fail closed, \
                 rate limits fail open, the shared cache is bypassed until it is)"
            ),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    fn succeeded(&self) {
        self.timeouts_in_a_row.store(0, Ordering::Relaxed);
        if self.down.swap(false, Ordering::Relaxed) {
            tracing::info!(target: "iam_join::redis", url = %self.display_url, "Redis is reachable again");
        }
    }

    fn unreachable(&self) {
        self.timeouts_in_a_row.store(0, Ordering::Relaxed);
        self.forget_connection();
        self.mark_down();
    }

    fn mark_down(&self) {
        self.probe_at_ms.store(
            self.now_ms().saturating_add(PROBE_INTERVAL_MS),
            Ordering::Relaxed,
        );
        self.down.store(true, Ordering::Relaxed);
    }

    fn timed_out(&self) {
        self.mark_down();
        let in_a_row = self.timeouts_in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
        if in_a_row < REPLACE_AFTER_TIMEOUTS {
            return;
        }
        let now = self.now_ms();
        let last = self.replaced_at_ms.load(Ordering::Relaxed);
        if last != NEVER && now.saturating_sub(last) < REPLACE_INTERVAL_MS {
            return;
        }
        // One caller wins the right to replace.
        if self
            .replaced_at_ms
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        match self.connector.lazy() {
            Ok(fresh) => {
                self.conn.store(fresh.map(Arc::new));
                self.timeouts_in_a_row.store(0, Ordering::Relaxed);
                tracing::debug!(
                    target: "iam_join::redis",
                    url = %self.display_url,
                    "Redis connection only timed out; replaced it"
                );
            }
            Err(e) => tracing::debug!(
                target: "iam_join::redis",
                error = %e,
                "could not replace the Redis connection"
            ),
        }
    }
}

/// A `warn` for one kind of failure, logged at most once per [`WARN_INTERVAL_MS`] with the number
/// of failures not logged since.
pub(super) struct ThrottledWarning {
    what: &'static str,
    consequence: &'static str,
    epoch: Instant,
    next_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl ThrottledWarning {
    /// A warning about `what` failing, which means `consequence`.
    pub(super) fn new(what: &'static str, consequence: &'static str) -> Self {
        Self {
            what,
            consequence,
            epoch: Instant::now(),
            next_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Records a failure; logs it unless one was logged recently.
    pub(super) fn record(&self, error: &dyn fmt::Display) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let next = self.next_ms.load(Ordering::Relaxed);
        let due = now >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now.saturating_add(WARN_INTERVAL_MS),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok();
        if due {
            let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
            tracing::warn!(
                target: "iam_join::redis",
                operation = self.what,
                error = %error,
                suppressed,
                "Redis unavailable: {}",
                self.consequence
            );
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
        }
    }
}
