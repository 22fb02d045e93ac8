//! The proxy server: listeners, the layer in front of the [`Forwarder`], the admin listener,
//! policy watching and graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use iam_join_core::challenge::ChallengeKey;
use iam_join_core::policy::TokenPolicy;
use iam_join_tower::{BuildError, ClientAddr, IamJoinLayer, IamJoinLayerBuilder, IamJoinService};
use opentelemetry::metrics::Meter;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;
use tower_layer::Layer as _;

use crate::admin::AdminState;
use crate::body::HeldBody;
use crate::config::{Config, ConnectionLimits, TokenSource};
use crate::conn::{AcceptBackoff, Activity, ConnectionBudget, ConnectionTimeouts, InFlight, drive};
use crate::error::ProxyError;
use crate::forward::{ConnectionInfo, Forwarder, ProxyBody, TunnelControl};
use crate::reload::{PolicyReloader, PolicyWatcher};
use crate::telemetry::{Metrics, Traces};
use crate::tls;
use iam_join_assertion::AssertionSigner;

use crate::audit::AuditWriter;

/// How long a client has to send a request's headers (slowloris guard).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// The admin listener's own connection budget: small, and separate from the proxy listener's,
/// so that `/healthz` and `/metrics` keep answering while the proxy port is saturated.
const ADMIN_MAX_CONNECTIONS: usize = 16;
/// Silence allowed on an admin connection (scrapers and probes are quick).
const ADMIN_TIMEOUTS: ConnectionTimeouts = ConnectionTimeouts {
    handshake: Duration::from_secs(5),
    idle: Duration::from_secs(30),
};

type Stack = IamJoinService<Forwarder>;
/// What the proxy answers: the upstream's streamed response or the layer's own.
pub type ResponseBody = Either<ProxyBody, Full<Bytes>>;
/// A response body that keeps its request counted as in flight on its connection.
type TrackedBody = HeldBody<ResponseBody, InFlight>;

/// A bound, ready-to-serve proxy. [`Proxy::bind`] does every check that can fail (policy, TLS
/// files, keys, listeners), so a proxy that binds will serve.
pub struct Proxy {
    listener: TcpListener,
    admin_listener: Option<TcpListener>,
    tls: Option<TlsAcceptor>,
    layer: IamJoinLayer,
    forwarder: Forwarder,
    tunnels: TunnelControl,
    metrics: Metrics,
    draining: Arc<AtomicBool>,
    reloader: Option<PolicyReloader>,
    _watcher: Option<PolicyWatcher>,
    drain_timeout: Duration,
    /// Whether the shared Redis answered its last probe (for `/readyz`); `None` without Redis.
    redis_reachable: Option<Arc<AtomicBool>>,
    connections: ConnectionLimits,
    audit: Option<AuditWriter>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("listen", &self.listener.local_addr().ok())
            .field(
                "admin",
                &self
                    .admin_listener
                    .as_ref()
                    .and_then(|l| l.local_addr().ok()),
            )
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// A handle on a running proxy: reload its policy, look at its layer.
#[derive(Clone, Debug)]
pub struct ProxyHandle {
    layer: IamJoinLayer,
    reloader: Option<PolicyReloader>,
    audit: Option<AuditWriter>,
}

impl ProxyHandle {
    /// Reloads the token policy from its file or directory (as SIGHUP does), after any reload
    /// already running (blocking). Returns the number of tokens loaded; on error the old policy
    /// stays. `None` if the policy is not from disk.
    pub fn reload_policy(
        &self,
        reason: &str,
    ) -> Option<Result<usize, iam_join_core::policy::PolicyError>> {
        Some(self.reloader.as_ref()?.reload(reason))
    }

    /// The IAM join layer (its policy handle, verifier).
    pub fn layer(&self) -> &IamJoinLayer {
        &self.layer
    }

    /// Reopens the audit file (as SIGHUP does, after logrotate renamed it); queued events go to
    /// the old file first. Does nothing without an `audit:` file.
    pub fn reopen_audit(&self) {
        if let Some(a) = &self.audit {
            a.reopen();
        }
    }

    /// Audit events dropped because the queue was full (0 without `audit:`).
    pub fn audit_dropped(&self) -> u64 {
        self.audit.as_ref().map_or(0, AuditWriter::dropped)
    }
}

/// Loads the token policy of `source`, logging its warnings.
///
/// # Errors
///
/// The policy does not load.
pub fn load_policy(source: &TokenSource) -> Result<TokenPolicy, ProxyError> {
    let policy = match source {
        TokenSource::Path(p) => TokenPolicy::load(p)?,
        TokenSource::Inline { yaml, name } => TokenPolicy::from_yaml_str(yaml, name)?,
    };
    for warning in policy.warnings() {
        tracing::warn!(%warning, "token policy warning");
    }
    Ok(policy)
}

/// Reads the challenge key file: its bytes, surrounding whitespace removed, at least 32.
///
/// # Errors
///
/// The file cannot be read or is too short.
pub fn read_challenge_key(path: &Path) -> Result<ChallengeKey, ProxyError> {
    let bytes = std::fs::read(path).map_err(|e| {
        ProxyError::config("challenge_key_file", format!("{}: {e}", path.display()))
    })?;
    ChallengeKey::from_bytes(bytes.trim_ascii()).map_err(|e| {
        ProxyError::config(
            "challenge_key_file",
            format!(
                "{}: {e} (make one with `openssl rand -hex 32`)",
                path.display()
            ),
        )
    })
}

/// The layer builder for `config`, without Redis or a meter.
///
/// # Errors
///
/// The challenge key file is unusable.
pub fn layer_builder(
    config: &Config,
    policy: TokenPolicy,
) -> Result<IamJoinLayerBuilder, ProxyError> {
    let mut b = IamJoinLayer::builder()
        .policy(policy)
        .prefix(config.prefix.clone())
        .public_paths(config.public_paths.iter().cloned())
        .challenge_paths(config.challenge_paths.iter().cloned())
        .fips(config.sts.fips)
        .extra_regions(config.sts.extra_regions.iter().cloned())
        .sts_timeouts(config.sts.connect_timeout, config.sts.timeout)
        .cache_capacity(config.cache.capacity)
        .negative_ttl(config.cache.negative_ttl)
        .rate_limits(config.rate_limits)
        .trusted_proxies(config.trusted_proxies.iter().copied())
        .identity_headers(true);
    for (host, url) in &config.sts.overrides {
        b = b.sts_override(host.clone(), url.clone());
    }
    if let Some(a) = &config.audience {
        b = b.audience(a.clone());
    }
    if let Some(t) = &config.default_token {
        b = b.default_token(t.clone());
    }
    if let Some(path) = &config.challenge_key_file {
        b = b.challenge_key(read_challenge_key(path)?);
    }
    if let Some(a) = &config.assertion {
        let signer = AssertionSigner::new(a.config.clone(), a.load_keys()?);
        b = b.assertion(signer);
    }
    Ok(b)
}

/// Maps a layer build error to the configuration field it is about.
pub fn build_error(e: &BuildError) -> ProxyError {
    let field = match e {
        BuildError::NoBinding => "audience",
        BuildError::BadPrefix(_) => "prefix",
        BuildError::BadAudience(_) => "audience",
        BuildError::BadOverride(_) => "sts.overrides",
        BuildError::BadRegion(_) => "sts.extra_regions",
        // The layer's limits are named as in `rate_limits:`.
        BuildError::BadRate(limit) => {
            return ProxyError::config(format!("rate_limits.{}", limit.field()), limit.reason());
        }
        BuildError::BadTokenName(_) => "default_token",
        _ => "config",
    };
    ProxyError::config(field, e.to_string())
}

/// Everything `check-config` verifies without binding or connecting: the token policy, the
/// challenge key, the TLS files, the upstream CA file, the Redis settings and the files they
/// name (password, CA, client certificate), and the layer settings. Returns the
/// loaded policy.
///
/// # Errors
///
/// The first problem found, naming its field.
pub fn check_config(config: &Config) -> Result<TokenPolicy, ProxyError> {
    let policy = load_policy(&config.tokens)?;
    if let Some(t) = &config.tls {
        tls::server_config(&t.cert, &t.key)?;
    }
    tls::upstream_client_config(config.upstream.ca_file.as_deref())?;
    #[cfg(feature = "redis")]
    if let Some(r) = &config.redis {
        crate::config::redis::backend_config(r)?;
    }
    layer_builder(config, policy.clone())?
        .build()
        .map_err(|e| build_error(&e))?;
    Ok(policy)
}

impl Proxy {
    /// Loads the policy and keys, builds the layer and the upstream client, binds the
    /// listeners and starts watching the token files.
    ///
    /// # Errors
    ///
    /// Any unusable setting or file (naming its field), or a listener that cannot be bound.
    pub async fn bind(config: Config) -> Result<Self, ProxyError> {
        let policy = load_policy(&config.tokens)?;
        let tokens = policy.len();
        let metrics = Metrics::with_otlp(config.otlp.as_ref())?;
        let audit = match &config.audit {
            Some(a) => Some(
                AuditWriter::start(
                    a.destination.clone(),
                    a.queue,
                    a.replica.clone(),
                    Some(&metrics.meter()),
                )
                .map_err(|e| {
                    ProxyError::config("audit.file", format!("cannot open for appending: {e}"))
                })
                .and_then(|w| {
                    if a.otlp {
                        w.with_otlp_logs(config.otlp.as_ref())
                            .map_err(|e| ProxyError::config("audit.otlp", e))
                    } else {
                        Ok(w)
                    }
                })?,
            ),
            None => None,
        };
        let traces = match config.otlp.as_ref().and_then(|o| Some((o, o.traces?))) {
            Some((o, t)) => Some(Traces::start(o, t)?),
            None => None,
        };
        let (layer, redis_reachable) = Self::build_layer(
            &config,
            policy,
            metrics.meter(),
            audit.clone(),
            traces.as_ref(),
        )
        .await?;
        let tls = match &config.tls {
            Some(t) => Some(TlsAcceptor::from(Arc::new(tls::server_config(
                &t.cert, &t.key,
            )?))),
            None => None,
        };
        let (tunnels, tunnel_handle) = TunnelControl::new();
        let forwarder = Forwarder::new(
            &config.upstream,
            config.trusted_proxies.clone(),
            tunnel_handle,
        )?;

        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|error| ProxyError::Bind {
                    field: "listen",
                    addr: config.listen,
                    error,
                })?;
        let admin_listener = match &config.admin {
            Some(a) => {
                Some(
                    TcpListener::bind(a.listen)
                        .await
                        .map_err(|error| ProxyError::Bind {
                            field: "admin.listen",
                            addr: a.listen,
                            error,
                        })?,
                )
            }
            None => None,
        };
        let reloader = config.tokens_path().map(|p| {
            PolicyReloader::new(layer.clone(), p.to_owned())
                .with_assertion_keys(config.assertion.clone())
        });
        let watcher = match &reloader {
            Some(r) => Some(PolicyWatcher::start(r.clone())?),
            None => None,
        };
        tracing::info!(
            listen = %listener.local_addr().map_or_else(|_| config.listen.to_string(), |a| a.to_string()),
            tls = tls.is_some(),
            upstream = %config.upstream.url,
            admin = ?admin_listener.as_ref().and_then(|l| l.local_addr().ok()),
            tokens,
            "iam-join-proxy ready"
        );
        Ok(Self {
            listener,
            admin_listener,
            tls,
            layer,
            forwarder,
            tunnels,
            metrics,
            draining: Arc::new(AtomicBool::new(false)),
            reloader,
            _watcher: watcher,
            drain_timeout: config.drain_timeout,
            redis_reachable,
            connections: config.connections,
            audit,
        })
    }

    /// The layer, and with Redis the flag its reachability probe keeps.
    async fn build_layer(
        config: &Config,
        policy: TokenPolicy,
        meter: Meter,
        audit: Option<AuditWriter>,
        traces: Option<&Traces>,
    ) -> Result<(IamJoinLayer, Option<Arc<AtomicBool>>), ProxyError> {
        let mut builder = layer_builder(config, policy)?.meter(meter);
        if let Some(a) = audit {
            builder = builder.audit(Arc::new(a));
        }
        if let Some(t) = traces {
            builder = builder.tracer(t.tracer());
        }
        #[allow(unused_mut)]
        let mut redis_reachable = None;
        #[cfg(feature = "redis")]
        if let Some(r) = &config.redis {
            use iam_join_tower::redis::RedisBackend;
            let backend =
                RedisBackend::connect(crate::config::redis::backend_config(r)?, config.rate_limits)
                    .await
                    .map_err(|e| ProxyError::Redis(e.to_string()))?
                    // Wait for another replica's STS call about as long as our own could take.
                    .with_fill_wait(config.sts.timeout);
            builder = builder
                .replay_store(backend.replay_store())
                .rate_limiter(backend.rate_limiter())
                .shared_cache(backend.shared_cache());
            redis_reachable = Some(probe_redis(backend));
            tracing::info!("replay store, rate limits and cache shared through redis");
        }
        #[cfg(feature = "organizations")]
        if let Some(o) = &config.organizations {
            builder = builder.organizations(org_lookup(o).await);
        }
        let layer = builder.build().map_err(|e| build_error(&e))?;
        Ok((layer, redis_reachable))
    }

    /// The proxy listener's address (with the real port when `listen` used port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The admin listener's address, if there is one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// A handle for reloading the policy while the proxy serves.
    pub fn handle(&self) -> ProxyHandle {
        ProxyHandle {
            layer: self.layer.clone(),
            reloader: self.reloader.clone(),
            audit: self.audit.clone(),
        }
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets in-flight requests (and
    /// upgraded connections) finish for up to `drain_timeout`, and closes what is left.
    ///
    /// # Errors
    ///
    /// None at present; the result leaves room for fatal serving errors.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), ProxyError> {
        let Self {
            listener,
            admin_listener,
            tls,
            layer,
            forwarder,
            mut tunnels,
            metrics,
            draining,
            reloader: _,
            _watcher,
            drain_timeout,
            redis_reachable,
            connections: limits,
            audit: _,
        } = self;

        let (admin_stop, admin_stop_rx) = tokio::sync::watch::channel(false);
        let admin_task = admin_listener.map(|l| {
            let state = AdminState {
                metrics,
                policy: layer.policy().clone(),
                draining: Arc::clone(&draining),
                redis_reachable,
            };
            tokio::spawn(serve_admin(l, state, admin_stop_rx))
        });

        let stack: Stack = layer.layer(forwarder);
        let builder = connection_builder(&limits);
        let timeouts = ConnectionTimeouts {
            handshake: limits.handshake_timeout,
            idle: limits.idle_timeout,
        };
        let budget = ConnectionBudget::new(limits.max, limits.max_per_client);
        let (drain_tx, drain_rx) = tokio::sync::watch::channel(false);
        let mut backoff = AcceptBackoff::default();
        let mut conns = JoinSet::new();

        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
                // A slot first, then accept: a full proxy leaves clients in the kernel's queue
                // rather than running out of file descriptors.
                (permit, accepted) = async { (budget.reserve().await, listener.accept().await) } => {
                    let (tcp, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            backoff.failed("listen", &e).await;
                            continue;
                        }
                    };
                    backoff.succeeded("listen");
                    let Some(slot) = budget.admit(permit, peer.ip()) else {
                        static PER_CLIENT: iam_join_tower::log_summary::LogSummary =
                            iam_join_tower::log_summary::LogSummary::new(
                                iam_join_tower::log_summary::DEFAULT_INTERVAL,
                            );
                        PER_CLIENT.record("per_client", |suppressed| {
                            tracing::warn!(%peer, suppressed, "connection refused: too many from this client");
                        });
                        continue; // dropping the socket closes it
                    };
                    let _ = tcp.set_nodelay(true);
                    let opened = tokio::time::Instant::now();
                    let activity = Activity::new(opened);
                    let info = ConnectionInfo { peer, tls: tls.is_some() };
                    let service = connection_service(stack.clone(), info, Arc::clone(&activity));
                    let builder = builder.clone();
                    let tls = tls.clone();
                    let drain = drain_rx.clone();
                    conns.spawn(async move {
                        let _slot = slot;
                        let result = match tls {
                            Some(acceptor) => {
                                let handshake = tokio::time::timeout_at(opened + timeouts.handshake, acceptor.accept(tcp));
                                match handshake.await {
                                    Ok(Ok(stream)) => {
                                        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                                        drive(conn, activity, timeouts, drain).await
                                    }
                                    Ok(Err(e)) => {
                                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                        return;
                                    }
                                    Err(_) => {
                                        tracing::debug!(%peer, "TLS handshake timed out");
                                        return;
                                    }
                                }
                            }
                            None => {
                                let conn = builder.serve_connection_with_upgrades(TokioIo::new(tcp), service);
                                drive(conn, activity, timeouts, drain).await
                            }
                        };
                        if let Err(e) = result {
                            tracing::debug!(%peer, error = %e, "connection ended with an error");
                        }
                    });
                }
            }
        }

        // Stop accepting; tell load balancers; let in-flight work finish. Idle connections
        // (HTTP/1 keep-alive, HTTP/2 without streams) are closed at once.
        drop(listener);
        draining.store(true, Ordering::Relaxed);
        tracing::info!(
            connections = conns.len(),
            drain_timeout = ?drain_timeout,
            "shutting down: draining in-flight requests"
        );
        drop(stack);
        let _ = drain_tx.send(true);
        let drain = async {
            while conns.join_next().await.is_some() {}
            tunnels.wait().await;
        };
        if tokio::time::timeout(drain_timeout, drain).await.is_err() {
            tracing::warn!("drain timeout reached: closing the remaining connections");
            tunnels.close_all();
        }
        conns.shutdown().await;
        let _ = admin_stop.send(true);
        if let Some(t) = admin_task {
            let _ = t.await;
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// The HTTP/1 and HTTP/2 settings of client connections.
fn connection_builder(limits: &ConnectionLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.http2_max_concurrent_streams)
        .keep_alive_interval(limits.http2_keep_alive)
        .keep_alive_timeout(limits.http2_keep_alive);
    builder
}

/// The per-connection service: records the peer for the layer (rate limits) and the forwarder
/// (`X-Forwarded-*`), then runs the layer and the forwarder.
fn connection_service(
    stack: Stack,
    info: ConnectionInfo,
    activity: Arc<Activity>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<TrackedBody>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<TrackedBody>, Infallible>> + Send + 'static,
> + Clone {
    hyper::service::service_fn(move |mut req: Request<Incoming>| {
        // In flight until the response body is done: the connection is not idle meanwhile.
        let in_flight = activity.begin();
        req.extensions_mut().insert(ClientAddr(info.peer));
        req.extensions_mut().insert(info);
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let started = Instant::now();
        let call = stack.clone().oneshot(req);
        async move {
            let resp = call.await?;
            tracing::debug!(
                %method,
                path,
                status = resp.status().as_u16(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "request"
            );
            Ok(resp.map(|body| HeldBody::new(body, in_flight)))
        }
    })
}

/// How often the Redis reachability shown by `/readyz` is refreshed.
#[cfg(feature = "redis")]
const REDIS_PROBE_INTERVAL: Duration = Duration::from_secs(2);

/// Pings Redis every [`REDIS_PROBE_INTERVAL`] (each ping bounded by the command timeout) and
/// keeps the answer in the returned flag, for `/readyz`. The probe stops when the flag is
/// dropped (the proxy is gone).
#[cfg(feature = "redis")]
fn probe_redis(backend: iam_join_tower::redis::RedisBackend) -> Arc<AtomicBool> {
    let reachable = Arc::new(AtomicBool::new(false));
    let flag = Arc::downgrade(&reachable);
    tokio::spawn(async move {
        loop {
            let up = backend.is_reachable().await;
            let Some(flag) = flag.upgrade() else { break };
            flag.store(up, std::sync::atomic::Ordering::Relaxed);
            drop(flag);
            tokio::time::sleep(REDIS_PROBE_INTERVAL).await;
        }
    });
    reachable
}

async fn serve_admin(
    listener: TcpListener,
    state: AdminState,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let budget = ConnectionBudget::new(ADMIN_MAX_CONNECTIONS, ADMIN_MAX_CONNECTIONS);
    let mut backoff = AcceptBackoff::default();
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            () = crate::forward::until_true(&mut stop) => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            (permit, accepted) = async { (budget.reserve().await, listener.accept().await) } => {
                let (tcp, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        backoff.failed("admin", &e).await;
                        continue;
                    }
                };
                backoff.succeeded("admin");
                let Some(slot) = budget.admit(permit, peer.ip()) else {
                    continue;
                };
                let state = state.clone();
                let drain = stop.clone();
                conns.spawn(async move {
                    let _slot = slot;
                    let activity = Activity::new(tokio::time::Instant::now());
                    let tracked = Arc::clone(&activity);
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let in_flight = tracked.begin();
                        let resp = state.handle(&req).map(|b| HeldBody::new(b, in_flight));
                        async move { Ok::<_, Infallible>(resp) }
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(HEADER_READ_TIMEOUT)
                        .serve_connection(TokioIo::new(tcp), service);
                    let _ = drive(conn, activity, ADMIN_TIMEOUTS, drain).await;
                });
            }
        }
    }
    conns.shutdown().await;
}

/// AWS Organizations with the proxy's own credentials, behind a cache and a call-rate limit.
#[cfg(feature = "organizations")]
async fn org_lookup(
    settings: &crate::config::OrgSettings,
) -> Arc<dyn iam_join_tower::organizations::OrgLookup> {
    use iam_join_tower::organizations::{
        AwsOrgConfig, AwsOrgLookup, CachedOrgLookup, DEFAULT_CALLS_PER_SECOND,
    };
    let aws = match (&settings.static_credentials, &settings.endpoint_url) {
        (Some(credentials), Some(url)) => {
            AwsOrgLookup::with_credentials(url, &settings.region, credentials.clone())
        }
        _ => {
            AwsOrgLookup::from_config(&AwsOrgConfig {
                region: settings.region.clone(),
                role_arn: settings.role_arn.clone(),
                endpoint_url: settings.endpoint_url.clone(),
            })
            .await
        }
    };
    tracing::info!(
        region = settings.region.as_str(),
        assume_role = settings.role_arn.is_some(),
        "organization rules use AWS Organizations"
    );
    Arc::new(CachedOrgLookup::with_settings(
        Arc::new(aws),
        settings.cache_ttl,
        settings.negative_ttl,
        DEFAULT_CALLS_PER_SECOND,
    ))
}
