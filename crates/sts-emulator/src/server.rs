//! The loopback HTTP server, its shared state and the knobs tests turn.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use time::OffsetDateTime;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::error::{StsError, StsErrorCode};
use crate::identity::{TestIdentity, default_identities};
use crate::organizations::{self, OrgState};
use crate::response::{self, Format};
use crate::verify::{KeyRecord, ReceivedRequest, verify};

/// Request bodies above this are refused with 413; a `GetCallerIdentity` body is 43 bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A failure injected into every `GetCallerIdentity` answer, for testing how callers cope.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Fault {
    /// Verify and answer normally.
    #[default]
    None,
    /// Answer 400 `Throttling` "Rate exceeded", as STS does over its request quota.
    Throttle,
    /// Answer 500 `InternalFailure`.
    ServerError,
    /// Never answer: requests wait until the fault is changed (then are answered by the new
    /// setting) or the emulator shuts down (then their connections are closed).
    Hang,
}

/// Starts emulators. See [`EmulatorBuilder`] for every setting.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let sts = sts_emulator::Emulator::start().await?;
/// assert!(sts.url().starts_with("http://127.0.0.1:"));
/// sts.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Emulator;

impl Emulator {
    /// A builder with the defaults: [`default_identities`], `127.0.0.1:0`, no latency.
    pub fn builder() -> EmulatorBuilder {
        EmulatorBuilder::default()
    }

    /// Starts on `127.0.0.1:0` (a free port) with [`default_identities`].
    pub async fn start() -> io::Result<EmulatorHandle> {
        Self::builder().start().await
    }

    /// Starts on `addr` with exactly `identities` (a later duplicate key id replaces an earlier
    /// one). Fails with [`io::ErrorKind::InvalidInput`] unless `addr` is a loopback address.
    pub async fn start_with(
        identities: Vec<TestIdentity>,
        addr: SocketAddr,
    ) -> io::Result<EmulatorHandle> {
        Self::builder()
            .identities(identities)
            .bind(addr)
            .start()
            .await
    }
}

/// Settings for an emulator, from [`Emulator::builder`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// let sts = sts_emulator::Emulator::builder()
///     .identities(sts_emulator::default_identities())
///     .latency(Duration::from_millis(5))
///     .bind("127.0.0.1:0".parse()?)
///     .start()
///     .await?;
/// sts.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct EmulatorBuilder {
    identities: Vec<TestIdentity>,
    addr: SocketAddr,
    latency: Duration,
    clock_offset_secs: i64,
}

impl Default for EmulatorBuilder {
    fn default() -> Self {
        Self {
            identities: default_identities(),
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            latency: Duration::ZERO,
            clock_offset_secs: 0,
        }
    }
}

impl EmulatorBuilder {
    /// The identities the emulator knows, replacing the defaults.
    #[must_use]
    pub fn identities(mut self, identities: Vec<TestIdentity>) -> Self {
        self.identities = identities;
        self
    }

    /// The address to listen on; must be loopback (`127.0.0.1`, `::1`). Port 0 picks a free port.
    #[must_use]
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Delay added before every `GetCallerIdentity` answer (see [`EmulatorHandle::set_latency`]).
    #[must_use]
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Shift of the emulator's clock (see [`EmulatorHandle::set_clock_offset`]).
    #[must_use]
    pub fn clock_offset(mut self, secs: i64) -> Self {
        self.clock_offset_secs = secs;
        self
    }

    /// Binds and starts serving on the current tokio runtime.
    ///
    /// Fails with [`io::ErrorKind::InvalidInput`] for a non-loopback address, or with the bind
    /// error.
    pub async fn start(self) -> io::Result<EmulatorHandle> {
        if !self.addr.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "sts-emulator listens only on loopback addresses (127.0.0.1, ::1), not {}",
                    self.addr
                ),
            ));
        }
        let listener = TcpListener::bind(self.addr).await?;
        let addr = listener.local_addr()?;
        let keys = self
            .identities
            .into_iter()
            .map(|identity| {
                let key = identity.access_key_id.clone();
                let record = KeyRecord {
                    identity,
                    session_expired: false,
                };
                (key, record)
            })
            .collect();
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos().into())
            ^ u64::from(addr.port()) << 32;
        let state = Arc::new(State {
            addr,
            keys: RwLock::new(keys),
            calls: AtomicU64::new(0),
            header_names: Mutex::default(),
            latency_nanos: AtomicU64::new(duration_to_nanos(self.latency)),
            clock_offset_secs: AtomicI64::new(self.clock_offset_secs),
            fault: watch::Sender::new(Fault::None),
            request_seq: AtomicU64::new(0),
            request_id_seed: seed,
            shutdown: watch::Sender::new(false),
            server_task: Mutex::new(None),
            organizations: OrgState::default(),
        });
        let task = tokio::spawn(serve(listener, Arc::clone(&state)));
        *state
            .server_task
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(task);
        tracing::debug!(%addr, "sts-emulator listening");
        Ok(EmulatorHandle { state })
    }
}

/// A running emulator. Clones share it; it runs until [`EmulatorHandle::shutdown`] (or the end of
/// its tokio runtime), whether or not handles remain.
#[derive(Clone)]
pub struct EmulatorHandle {
    state: Arc<State>,
}

impl std::fmt::Debug for EmulatorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorHandle")
            .field("addr", &self.state.addr)
            .field("calls", &self.calls())
            .finish_non_exhaustive()
    }
}

impl EmulatorHandle {
    pub(crate) fn org_state(&self) -> &OrgState {
        &self.state.organizations
    }

    /// The bound address (with the real port when started on port 0).
    pub fn addr(&self) -> SocketAddr {
        self.state.addr
    }

    /// `http://ADDR`, e.g. `http://127.0.0.1:40123` (IPv6: `http://[::1]:40123`), to use as an
    /// STS override URL. Requests keep their signed `Host` header; the emulator accepts any.
    pub fn url(&self) -> String {
        format!("http://{}", self.state.addr)
    }

    /// Requests received on the STS path `/`, whatever their outcome (faults and rejections
    /// included).
    pub fn calls(&self) -> u64 {
        self.state.calls.load(Ordering::SeqCst)
    }

    /// Every header name (lower-case) any request on the STS path `/` carried so far, for
    /// tests of what callers add to a signed request (e.g. no trace context).
    pub fn header_names_seen(&self) -> std::collections::BTreeSet<String> {
        self.state
            .header_names
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Sets [`calls`](Self::calls) back to 0.
    pub fn reset_calls(&self) {
        self.state.calls.store(0, Ordering::SeqCst);
    }

    /// Delay added before every answer on `/` from now on (0 for none).
    pub fn set_latency(&self, d: Duration) {
        self.state
            .latency_nanos
            .store(duration_to_nanos(d), Ordering::SeqCst);
    }

    /// Injects `f` into every answer from now on; [`Fault::None`] restores normal answers and
    /// releases requests held by [`Fault::Hang`].
    pub fn set_fault(&self, f: Fault) {
        self.state.fault.send_replace(f);
    }

    /// Adds an identity, or replaces the one with the same access key id.
    pub fn add_identity(&self, id: TestIdentity) {
        let key = id.access_key_id.clone();
        let record = KeyRecord {
            identity: id,
            session_expired: false,
        };
        self.state
            .keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, record);
    }

    /// Marks the session of `access_key_id` expired: its requests then get 403 `ExpiredToken`
    /// (once the session token itself matches), as STS answers for an expired session.
    /// Returns whether the key is known. [`add_identity`](Self::add_identity) clears the mark.
    pub fn expire_session(&self, access_key_id: &str) -> bool {
        let mut keys = self
            .state
            .keys
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        keys.get_mut(access_key_id)
            .map(|record| record.session_expired = true)
            .is_some()
    }

    /// Shifts the emulator's "now" by `secs` (negative: into the past), for expiry tests: a
    /// request is checked against `X-Amz-Date` ± 15 minutes and `X-Amz-Expires` from that now.
    pub fn set_clock_offset(&self, secs: i64) {
        self.state.clock_offset_secs.store(secs, Ordering::SeqCst);
    }

    /// Stops accepting, closes every connection (requests held by [`Fault::Hang`] included) and
    /// waits for the server task. Other clones then see a stopped emulator.
    pub async fn shutdown(self) {
        self.state.shutdown.send_replace(true);
        let task = self
            .state
            .server_task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task
            && let Err(err) = task.await
        {
            tracing::warn!(%err, "sts-emulator server task failed");
        }
    }
}

struct State {
    addr: SocketAddr,
    keys: RwLock<HashMap<String, KeyRecord>>,
    calls: AtomicU64,
    /// Every header name received on `/`, lower-case (what a caller added is visible).
    header_names: Mutex<std::collections::BTreeSet<String>>,
    latency_nanos: AtomicU64,
    clock_offset_secs: AtomicI64,
    fault: watch::Sender<Fault>,
    request_seq: AtomicU64,
    request_id_seed: u64,
    shutdown: watch::Sender<bool>,
    server_task: Mutex<Option<JoinHandle<()>>>,
    /// The loopback AWS Organizations (`organizations.rs`), served on the same port.
    organizations: OrgState,
}

impl State {
    fn now(&self) -> OffsetDateTime {
        let now = OffsetDateTime::now_utc();
        let offset = time::Duration::seconds(self.clock_offset_secs.load(Ordering::SeqCst));
        now.checked_add(offset).unwrap_or(now)
    }

    fn latency(&self) -> Duration {
        Duration::from_nanos(self.latency_nanos.load(Ordering::SeqCst))
    }

    /// A UUID-shaped id, unique per emulator, like STS's `RequestId`.
    fn next_request_id(&self) -> String {
        let n = self.request_seq.fetch_add(1, Ordering::Relaxed);
        let x = self.request_id_seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            x >> 32,
            (x >> 16) & 0xffff,
            x & 0xfff,
            (n >> 48) & 0xfff,
            n & 0xffff_ffff_ffff
        )
    }

    /// The current fault, waiting while it is [`Fault::Hang`].
    async fn fault_after_hang(&self) -> Fault {
        let mut fault = self.fault.subscribe();
        loop {
            let current = *fault.borrow_and_update();
            if current != Fault::Hang {
                return current;
            }
            if fault.changed().await.is_err() {
                // Unreachable while `self` holds the sender; hang as asked.
                std::future::pending::<()>().await;
            }
        }
    }
}

fn duration_to_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

async fn serve(listener: TcpListener, state: Arc<State>) {
    let mut shutdown = state.shutdown.subscribe();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            // The watch guard is not Send: drop it inside the branch future.
            () = async { drop(shutdown.wait_for(|stop| *stop).await) } => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    connections.spawn(serve_connection(stream, Arc::clone(&state)));
                }
                Err(err) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    tracing::warn!(%err, "sts-emulator accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
    tracing::debug!(addr = %state.addr, "sts-emulator stopped");
}

async fn serve_connection(stream: TcpStream, state: Arc<State>) {
    let service = service_fn(move |req| {
        let state = Arc::clone(&state);
        async move { Ok::<_, Infallible>(handle(req, &state).await) }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    if let Err(err) = builder
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(%err, "sts-emulator connection ended with an error");
    }
}

async fn handle(req: Request<Incoming>, state: &State) -> Response<Full<Bytes>> {
    let format = Format::from_accept(req.headers());
    let request_id = state.next_request_id();
    if organizations::is_organizations_request(req.headers()) {
        let now = state.now();
        return organizations::handle(req, &state.organizations, &state.keys, now, &request_id)
            .await;
    }
    if req.uri().path() != "/" {
        let err = StsError::new(StsErrorCode::NotFound, "STS answers only on the path /");
        return response::error(&err, &request_id, format);
    }
    state.calls.fetch_add(1, Ordering::SeqCst);
    state
        .header_names
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .extend(req.headers().keys().map(|n| n.as_str().to_owned()));

    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) => {
            let err = if err.is::<http_body_util::LengthLimitError>() {
                StsError::new(
                    StsErrorCode::RequestEntityTooLarge,
                    format!("Request body must not exceed {MAX_BODY_BYTES} bytes"),
                )
            } else {
                StsError::new(
                    StsErrorCode::MalformedInput,
                    "The request body could not be read",
                )
            };
            return response::error(&err, &request_id, format);
        }
    };

    let latency = state.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match state.fault_after_hang().await {
        Fault::Throttle => {
            let err = StsError::new(StsErrorCode::Throttling, "Rate exceeded");
            return response::error(&err, &request_id, format);
        }
        Fault::ServerError => {
            let err = StsError::new(
                StsErrorCode::InternalFailure,
                "An internal error occurred. Please try again.",
            );
            return response::error(&err, &request_id, format);
        }
        Fault::None | Fault::Hang => {}
    }

    let received = ReceivedRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        authority: parts.uri.authority().map(http::uri::Authority::as_str),
        headers: &parts.headers,
        body: &body,
    };
    let outcome = {
        let keys = state.keys.read().unwrap_or_else(PoisonError::into_inner);
        verify(&received, &keys, state.now()).cloned()
    };
    match outcome {
        Ok(identity) => {
            tracing::debug!(
                account = %identity.account,
                arn = %identity.arn,
                %request_id,
                "GetCallerIdentity answered"
            );
            response::identity(&identity, &request_id, format)
        }
        Err(err) => {
            tracing::debug!(code = err.code.as_str(), %request_id, "GetCallerIdentity rejected");
            response::error(&err, &request_id, format)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn non_loopback_bind_is_refused() {
        let addr: SocketAddr = "0.0.0.0:0".parse().expect("addr");
        let err = Emulator::start_with(default_identities(), addr)
            .await
            .expect_err("must refuse");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[tokio::test]
    async fn request_ids_are_uuid_shaped_and_distinct() {
        let sts = Emulator::start().await.expect("start");
        let a = sts.state.next_request_id();
        let b = sts.state.next_request_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36, "{a}");
        assert_eq!(a.matches('-').count(), 4);
        sts.shutdown().await;
    }

    #[tokio::test]
    async fn expire_session_reports_unknown_keys() {
        let sts = Emulator::start().await.expect("start");
        assert!(sts.expire_session(crate::keys::NODE_ROLE_ACCESS_KEY_ID));
        assert!(!sts.expire_session("AKIANOTKNOWN00000000"));
        sts.shutdown().await;
    }
}
