//! Client connections: how many may be open (per listener and per client address), how long
//! one may stay silent, and how it ends on shutdown.
//!
//! A connection that sends nothing costs a file descriptor and nothing else, so without these
//! limits a few thousand silent sockets starve every listener of the process (accept fails with
//! `EMFILE`). Each connection is therefore [`drive`]n with a deadline: the handshake timeout
//! until its first request, the idle timeout whenever no request is in flight, and a short grace
//! once it has been asked to close (an HTTP/2 peer that never answers the GOAWAY's PING would
//! otherwise hold it, and shutdown, for ever).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hyper_util::server::graceful::GracefulConnection;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;

/// How long a connection asked to close (idle, or shutting down with nothing in flight) may
/// take to say goodbye (flush a GOAWAY, finish a close) before it is dropped.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_millis(500);

/// The connection slots of one listener: at most `max` connections, at most `max_per_client`
/// from one client address.
#[derive(Debug)]
pub(crate) struct ConnectionBudget {
    permits: Arc<Semaphore>,
    per_client: Mutex<HashMap<IpAddr, usize>>,
    max_per_client: usize,
}

/// One admitted connection's slot; frees it when dropped.
#[derive(Debug)]
pub(crate) struct ConnectionSlot {
    budget: Arc<ConnectionBudget>,
    client: IpAddr,
    _permit: OwnedSemaphorePermit,
}

impl ConnectionBudget {
    pub(crate) fn new(max: usize, max_per_client: usize) -> Arc<Self> {
        Arc::new(Self {
            permits: Arc::new(Semaphore::new(max.min(Semaphore::MAX_PERMITS))),
            per_client: Mutex::new(HashMap::new()),
            max_per_client,
        })
    }

    /// Waits for a free slot on the listener. Taken *before* `accept`, so that a full proxy
    /// leaves new clients in the kernel's queue instead of running out of descriptors.
    pub(crate) async fn reserve(&self) -> OwnedSemaphorePermit {
        Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .unwrap_or_else(|_| unreachable!("the semaphore is never closed"))
    }

    /// Admits a connection from `peer` into a reserved slot, or `None` when that client
    /// already holds `max_per_client` connections.
    pub(crate) fn admit(
        self: &Arc<Self>,
        permit: OwnedSemaphorePermit,
        peer: IpAddr,
    ) -> Option<ConnectionSlot> {
        let client = client_key(peer);
        let mut counts = self
            .per_client
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(client).or_insert(0);
        if *count >= self.max_per_client {
            if *count == 0 {
                counts.remove(&client);
            }
            return None;
        }
        *count += 1;
        Some(ConnectionSlot {
            budget: Arc::clone(self),
            client,
            _permit: permit,
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut counts = self
            .budget
            .per_client
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.client);
            }
        }
    }
}

/// The address a per-client limit counts: IPv4 as is, IPv6 by its /64 (one host usually owns a
/// whole /64, so counting single addresses would be no limit at all).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

/// What a connection is doing: requests in flight, and since when it has been idle.
#[derive(Debug)]
pub(crate) struct Activity {
    in_flight: AtomicUsize,
    requests: AtomicU64,
    /// Milliseconds from `opened` to the end of the last request.
    idle_since_ms: AtomicU64,
    opened: Instant,
    changed: Notify,
}

/// A request in flight on a connection; ends when dropped (with the response body).
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Activity>);

impl Activity {
    pub(crate) fn new(opened: Instant) -> Arc<Self> {
        Arc::new(Self {
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            idle_since_ms: AtomicU64::new(0),
            opened,
            changed: Notify::new(),
        })
    }

    pub(crate) fn begin(self: &Arc<Self>) -> InFlight {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_waiters();
        InFlight(Arc::clone(self))
    }

    fn idle_since(&self) -> Instant {
        self.opened + Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire))
    }

    /// When the connection should be asked to close if nothing changes; `None` while a request
    /// is in flight.
    fn deadline(&self, timeouts: ConnectionTimeouts, closing: Option<Instant>) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        Some(match closing {
            Some(since) => since.max(self.idle_since()) + CLOSE_GRACE,
            None if self.requests.load(Ordering::Relaxed) == 0 => self.opened + timeouts.handshake,
            None => self.idle_since() + timeouts.idle,
        })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let ms = u64::try_from(self.0.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.idle_since_ms.store(ms, Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.changed.notify_waiters();
    }
}

/// The silence a connection is allowed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnectionTimeouts {
    /// From the accept (TLS handshake included) to the first request's headers.
    pub(crate) handshake: Duration,
    /// With no request in flight.
    pub(crate) idle: Duration,
}

/// Runs `conn` until it ends, asking it to close gracefully when it has been silent too long or
/// when `drain` turns true, and dropping it if it has not closed [`CLOSE_GRACE`] after that
/// with nothing in flight. Requests in flight are never cut here (the drain timeout does that).
pub(crate) async fn drive<C>(
    conn: C,
    activity: Arc<Activity>,
    timeouts: ConnectionTimeouts,
    mut drain: watch::Receiver<bool>,
) -> Result<(), C::Error>
where
    C: GracefulConnection,
{
    tokio::pin!(conn);
    let mut closing: Option<Instant> = None;
    loop {
        let changed = activity.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        // A dropped sender (the server is gone) means the same as a drain.
        let draining = *drain.borrow_and_update() || drain.has_changed().is_err();
        if draining && closing.is_none() {
            conn.as_mut().graceful_shutdown();
            closing = Some(Instant::now());
        }
        let deadline = activity.deadline(timeouts, closing);
        let expired = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = conn.as_mut() => return result,
            () = expired => {
                if closing.is_some() {
                    // It had its chance to close politely; dropping it closes the socket.
                    return Ok(());
                }
                conn.as_mut().graceful_shutdown();
                closing = Some(Instant::now());
            }
            () = &mut changed => {}
            _ = drain.changed(), if !draining => {}
        }
    }
}

/// Backs off after failed `accept`s (out of descriptors and the like) instead of spinning, and
/// logs one line when failures start and one when they end, not one per failure.
#[derive(Debug, Default)]
pub(crate) struct AcceptBackoff {
    failures: u64,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_secs(1);

    pub(crate) async fn failed(&mut self, listener: &'static str, error: &std::io::Error) {
        if self.failures == 0 {
            tracing::warn!(listener, %error, "accept failed; backing off until it succeeds");
        }
        self.failures += 1;
        let shift = u32::try_from(self.failures.min(8)).unwrap_or(8) - 1;
        tokio::time::sleep((Self::FIRST * (1 << shift)).min(Self::MAX)).await;
    }

    pub(crate) fn succeeded(&mut self, listener: &'static str) {
        if self.failures > 0 {
            tracing::warn!(
                listener,
                failures = self.failures,
                "accept works again after failures"
            );
            self.failures = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_client_gets_at_most_its_share_and_slots_come_back() {
        let budget = ConnectionBudget::new(10, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = budget.admit(budget.reserve().await, a).unwrap();
        let _second = budget.admit(budget.reserve().await, a).unwrap();
        assert!(budget.admit(budget.reserve().await, a).is_none());
        assert!(budget.admit(budget.reserve().await, b).is_some());
        drop(first);
        assert!(budget.admit(budget.reserve().await, a).is_some());
    }

    #[test]
    fn ipv6_clients_are_counted_per_64_and_mapped_v4_as_v4() {
        let table = [
            ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::"),
            ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::"),
            ("::ffff:192.0.2.7", "192.0.2.7"),
            ("192.0.2.7", "192.0.2.7"),
        ];
        for (ip, key) in table {
            assert_eq!(
                client_key(ip.parse().unwrap()),
                key.parse::<IpAddr>().unwrap(),
                "{ip}"
            );
        }
    }

    #[tokio::test]
    async fn the_listener_budget_waits_when_full() {
        let budget = ConnectionBudget::new(1, 5);
        let peer: IpAddr = "192.0.2.1".parse().unwrap();
        let slot = budget.admit(budget.reserve().await, peer).unwrap();
        assert_eq!(budget.permits.available_permits(), 0);
        drop(slot);
        assert_eq!(budget.permits.available_permits(), 1);
        let _permit = budget.reserve().await;
    }
}
