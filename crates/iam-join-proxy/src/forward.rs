//! Forwarding admitted requests to the upstream: streaming bodies both ways, hop-by-hop header
//! removal, `X-Forwarded-*`, an upstream timeout, `Upgrade` (WebSocket) pass-through, and JSON
//! errors when the upstream cannot be reached.
//!
//! Bounds, so that a client cannot make the proxy hold unbounded upstream resources: at most
//! `upstream.max_concurrent_requests` requests in flight to the upstream (then `503
//! upstream_busy`), a bounded idle pool, `upstream.timeout` counted from the end of the request
//! body (a slow upload is not the upstream's fault), and `upstream.client_body_timeout` for a
//! client that pauses its body (`408 request_timeout`).
//!
//! Only WebSocket (RFC 6455) upgrades are relayed. Any other `Upgrade` (`h2c`, `TLS/1.0`, a list
//! naming anything besides `websocket`) is stripped and the request forwarded as plain
//! HTTP/1.1, which RFC 9110 §7.8 allows a server to do: after a 101 the proxy relays bytes
//! unchecked, so a tunnel to an upstream that speaks h2c would carry unverified requests.
//!
//! The upstream is spoken to over HTTP/1.1 (the client side may use HTTP/1.1 or HTTP/2): it is
//! what every web port understands, and it is the only version where `Upgrade` exists.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use iam_join_core::ErrorCode;
use iam_join_core::error::error_chain;
use iam_join_tower::Denial;
use iam_join_tower::hop_by_hop::{connection_tokens, remove_hop_by_hop};
use iam_join_tower::log_summary::{self, LogSummary};
use iam_join_tower::ratelimit::is_trusted;
use ipnet::IpNet;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tower_service::Service;

use crate::body::{HeldBody, WatchedBody};
use crate::config::UpstreamConfig;
use crate::error::ProxyError;
use crate::tls;

/// Errors of bodies passed through.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body of a forwarded response (streamed from the upstream) or of the proxy's own errors.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// Facts about the client connection, added to each request's extensions by the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The client's address (the TCP peer).
    pub peer: SocketAddr,
    /// Whether the client connection is TLS.
    pub tls: bool,
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// Upstream failures can be provoked by clients (slow or failing paths): logged summarised.
static UPSTREAM_LOG: LogSummary = LogSummary::new(log_summary::DEFAULT_INTERVAL);

/// Forwards requests to the upstream. Cheap to clone.
#[derive(Clone)]
pub struct Forwarder {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client<HttpsConnector<HttpConnector>, WatchedBody<Incoming>>,
    scheme: Scheme,
    authority: Authority,
    timeout: Duration,
    client_body_timeout: Duration,
    slots: Arc<Semaphore>,
    preserve_host: bool,
    trusted_proxies: Vec<IpNet>,
    tunnels: Tunnels,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field(
                "upstream",
                &format_args!("{}://{}", self.inner.scheme, self.inner.authority),
            )
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

impl Forwarder {
    /// A forwarder to `upstream`. Loads the custom CA file, if any.
    ///
    /// # Errors
    ///
    /// The CA file cannot be read or holds no certificate.
    pub fn new(
        upstream: &UpstreamConfig,
        trusted_proxies: Vec<IpNet>,
        tunnels: Tunnels,
    ) -> Result<Self, ProxyError> {
        let (scheme, authority) = match (upstream.url.scheme(), upstream.url.authority()) {
            (Some(s), Some(a)) => (s.clone(), a.clone()),
            _ => {
                return Err(ProxyError::config(
                    "upstream.url",
                    "must be http(s)://host[:port]",
                ));
            }
        };
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(upstream.connect_timeout));
        let tls_config = tls::upstream_client_config(upstream.ca_file.as_deref())?;
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config)
            .https_or_http();
        let builder = match &upstream.sni {
            Some(name) => {
                let name = rustls_pki_types::ServerName::try_from(name.clone()).map_err(|_| {
                    ProxyError::config("upstream.sni", "is not a DNS name or IP address")
                })?;
                builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
            }
            None => builder,
        };
        let connector = builder.enable_http1().wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(upstream.pool_idle_timeout)
            .pool_max_idle_per_host(upstream.pool_max_idle)
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .build(connector);
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                scheme,
                authority,
                timeout: upstream.timeout,
                client_body_timeout: upstream.client_body_timeout,
                slots: Arc::new(Semaphore::new(
                    upstream.max_concurrent_requests.min(Semaphore::MAX_PERMITS),
                )),
                preserve_host: upstream.preserve_host,
                trusted_proxies,
                tunnels,
            }),
        })
    }
}

impl Service<Request<Incoming>> for Forwarder {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = futures_util::future::BoxFuture<'static, Result<Response<ProxyBody>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move { Ok(inner.forward(req).await) })
    }
}

impl Inner {
    async fn forward(&self, mut req: Request<Incoming>) -> Response<ProxyBody> {
        let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() else {
            UPSTREAM_LOG.record("busy", |suppressed| {
                tracing::warn!(upstream = %self.authority, suppressed, "upstream request limit reached; answering 503");
            });
            return error_response(
                ErrorCode::UpstreamBusy,
                "too many requests are in flight to the upstream; retry shortly",
            );
        };
        let info = req.extensions().get::<ConnectionInfo>().copied();
        let upgrade = upgrade_protocol(&req);
        let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));

        let (mut parts, body) = req.into_parts();
        let original_host = parts.headers.get(header::HOST).cloned().or_else(|| {
            parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        let path = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let uri = match Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path)
            .build()
        {
            Ok(uri) => uri,
            Err(_) => {
                return error_response(
                    ErrorCode::BadRequest,
                    "the request target cannot be forwarded",
                );
            }
        };
        parts.uri = uri;
        parts.version = Version::HTTP_11;
        remove_hop_by_hop(&mut parts.headers);
        if let Some(protocol) = &upgrade {
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            parts.headers.insert(header::UPGRADE, protocol.clone());
        }
        if self.preserve_host {
            if let Some(h) = &original_host {
                parts.headers.insert(header::HOST, h.clone());
            }
        } else {
            // The client fills in the upstream's authority.
            parts.headers.remove(header::HOST);
        }
        self.set_forwarded(&mut parts.headers, info, original_host);

        let (body, progress) = WatchedBody::new(body, self.client_body_timeout);
        let upstream_req = Request::from_parts(parts, body);
        // `timeout` starts once the whole request is sent: the client's upload speed is not the
        // upstream's delay (that one has its own limit, `client_body_timeout`).
        let deadline = async {
            progress.finished().await;
            tokio::time::sleep(self.timeout).await;
        };
        let result = tokio::select! {
            r = self.client.request(upstream_req) => Ok(r),
            () = deadline => Err(()),
        };
        let mut resp = match result {
            Ok(Ok(resp)) => resp,
            Ok(Err(_)) if progress.stalled() => {
                return error_response(
                    ErrorCode::RequestTimeout,
                    "the request body paused for too long",
                );
            }
            Ok(Err(e)) => {
                UPSTREAM_LOG.record("failed", |suppressed| {
                    tracing::warn!(upstream = %self.authority, error = %error_chain(&e), suppressed, "upstream request failed");
                });
                return error_response(
                    ErrorCode::UpstreamUnavailable,
                    "the upstream could not be reached; retry later",
                );
            }
            Err(()) => {
                UPSTREAM_LOG.record("timeout", |suppressed| {
                    tracing::warn!(upstream = %self.authority, timeout = ?self.timeout, suppressed, "upstream timed out");
                });
                return error_response(
                    ErrorCode::UpstreamTimeout,
                    "the upstream did not answer in time",
                );
            }
        };

        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            if let Some(client_upgrade) = client_upgrade {
                let protocol = resp.headers().get(header::UPGRADE).cloned();
                let upstream_upgrade = hyper::upgrade::on(&mut resp);
                self.tunnels.spawn(client_upgrade, upstream_upgrade, slot);
                remove_hop_by_hop(resp.headers_mut());
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
                if let Some(p) = protocol {
                    resp.headers_mut().insert(header::UPGRADE, p);
                }
                return resp.map(|b| b.map_err(BoxError::from).boxed_unsync());
            }
            // 101 without an upgrade request: refuse to pass a protocol switch we cannot carry.
            return error_response(
                ErrorCode::UpstreamUnavailable,
                "the upstream switched protocols without being asked",
            );
        }
        remove_hop_by_hop(resp.headers_mut());
        // The slot is free once the response body is done (or dropped).
        resp.map(|b| {
            HeldBody::new(b, slot)
                .map_err(BoxError::from)
                .boxed_unsync()
        })
    }

    /// `X-Forwarded-For` / `-Proto` / `-Host`. Values sent by a trusted proxy in front are kept
    /// (and the peer appended to `X-Forwarded-For`); from anyone else they are replaced, so a
    /// client cannot make the upstream believe another address.
    fn set_forwarded(
        &self,
        headers: &mut HeaderMap,
        info: Option<ConnectionInfo>,
        host: Option<HeaderValue>,
    ) {
        let peer: Option<IpAddr> = info.map(|i| i.peer.ip().to_canonical());
        let trusted = peer.is_some_and(|ip| is_trusted(ip, &self.trusted_proxies));
        if !trusted {
            headers.remove(&X_FORWARDED_FOR);
            headers.remove(&X_FORWARDED_PROTO);
            headers.remove(&X_FORWARDED_HOST);
            headers.remove(&FORWARDED);
        }
        if let Some(ip) = peer {
            let prior: Vec<&str> = headers
                .get_all(&X_FORWARDED_FOR)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            let value = if prior.is_empty() {
                ip.to_string()
            } else {
                format!("{}, {ip}", prior.join(", "))
            };
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(&X_FORWARDED_FOR, v);
            }
        }
        if !headers.contains_key(&X_FORWARDED_PROTO) {
            let proto = if info.is_some_and(|i| i.tls) {
                "https"
            } else {
                "http"
            };
            headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static(proto));
        }
        if !headers.contains_key(&X_FORWARDED_HOST)
            && let Some(h) = host
        {
            headers.insert(&X_FORWARDED_HOST, h);
        }
    }
}

/// The protocol of an HTTP/1.1 `Upgrade` request the proxy relays: `Connection: upgrade` and
/// exactly one `Upgrade` header whose only protocol is `websocket` (any case, RFC 6455 §4.2.1).
/// Every other upgrade is ignored, so the request goes on as plain HTTP/1.1.
fn upgrade_protocol<B>(req: &Request<B>) -> Option<HeaderValue> {
    if req.version() != Version::HTTP_11 {
        return None;
    }
    let asks = connection_tokens(req.headers()).any(|t| t.eq_ignore_ascii_case("upgrade"));
    let mut upgrades = req.headers().get_all(header::UPGRADE).iter();
    let (Some(value), None) = (upgrades.next(), upgrades.next()) else {
        return None;
    };
    let websocket = value
        .to_str()
        .is_ok_and(|v| v.trim().eq_ignore_ascii_case("websocket"));
    (asks && websocket).then(|| HeaderValue::from_static("websocket"))
}

/// A JSON error answered by the proxy itself, from the same code → response map as the layer's
/// denials (`Retry-After` for retryable codes, `x-iam-join-error`, `no-store`).
pub fn error_response(code: ErrorCode, message: &'static str) -> Response<ProxyBody> {
    Denial::retry(code, message, Duration::from_secs(1))
        .to_response()
        .map(|b| b.map_err(BoxError::from).boxed_unsync())
}

/// Upgraded connections (WebSockets) relayed by the proxy. They outlive the HTTP exchange that
/// opened them, so shutdown waits for them separately and closes what is left at the deadline.
#[derive(Clone, Debug)]
pub struct Tunnels {
    close: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
}

/// The owner's side of [`Tunnels`]: closes them and waits for them to end.
#[derive(Debug)]
pub struct TunnelControl {
    close: watch::Sender<bool>,
    alive_rx: mpsc::Receiver<()>,
    alive_tx: Option<mpsc::Sender<()>>,
}

impl TunnelControl {
    /// A new, empty set of tunnels and the handle forwarders put them in.
    pub fn new() -> (Self, Tunnels) {
        let (close, close_rx) = watch::channel(false);
        let (alive_tx, alive_rx) = mpsc::channel(1);
        let tunnels = Tunnels {
            close: close_rx,
            alive: alive_tx.clone(),
        };
        (
            Self {
                close,
                alive_rx,
                alive_tx: Some(alive_tx),
            },
            tunnels,
        )
    }

    /// Resolves when every tunnel has ended (every [`Tunnels`] clone must be dropped as well).
    pub async fn wait(&mut self) {
        self.alive_tx = None;
        while self.alive_rx.recv().await.is_some() {}
    }

    /// Closes every tunnel still open.
    pub fn close_all(&self) {
        let _ = self.close.send(true);
    }
}

impl Tunnels {
    fn spawn(
        &self,
        client: hyper::upgrade::OnUpgrade,
        upstream: hyper::upgrade::OnUpgrade,
        slot: OwnedSemaphorePermit,
    ) {
        let alive = self.alive.clone();
        let mut close = self.close.clone();
        tokio::spawn(async move {
            let _alive = alive;
            // The tunnel holds an upstream connection: it counts against the upstream limit.
            let _slot = slot;
            let (client, upstream) = match tokio::try_join!(client, upstream) {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::debug!(error = %e, "upgrade failed");
                    return;
                }
            };
            let mut client = TokioIo::new(client);
            let mut upstream = TokioIo::new(upstream);
            tokio::select! {
                r = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "upgraded connection ended with an error");
                    }
                }
                () = until_true(&mut close) => {
                    tracing::debug!("upgraded connection closed at shutdown");
                }
            }
        });
    }
}

/// Resolves once the watched flag is `true` (or its sender is gone).
pub(crate) async fn until_true(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_removed() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, x-secret-hop"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("proxy-authorization", "Basic x"),
            ("te", "trailers"),
            ("trailer", "x"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("accept", "*/*"),
        ] {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("accept"));
    }

    #[test]
    fn upgrade_needs_connection_upgrade_and_http11() {
        let req = Request::builder()
            .header("connection", "keep-alive, Upgrade")
            .header("upgrade", "websocket")
            .body(())
            .unwrap();
        assert_eq!(
            upgrade_protocol(&req),
            Some(HeaderValue::from_static("websocket"))
        );
        let req = Request::builder()
            .header("upgrade", "websocket")
            .body(())
            .unwrap();
        assert_eq!(upgrade_protocol(&req), None);
    }

    #[test]
    fn only_a_websocket_upgrade_is_relayed() {
        let relayed = ["websocket", "WebSocket", "WEBSOCKET", " websocket "];
        let ignored = [
            "h2c",
            "H2C",
            "websocket, h2c",
            "h2c, websocket",
            "TLS/1.0",
            "HTTP/2.0",
            "websocket/13",
            "websocketx",
            "",
            "IRC/6.9",
        ];
        for (value, expected) in relayed
            .iter()
            .map(|v| (*v, true))
            .chain(ignored.iter().map(|v| (*v, false)))
        {
            let req = Request::builder()
                .header("connection", "Upgrade")
                .header("upgrade", value)
                .body(())
                .unwrap();
            assert_eq!(upgrade_protocol(&req).is_some(), expected, "{value:?}");
        }
        // Two Upgrade headers (one websocket, one not) are not a websocket upgrade.
        let req = Request::builder()
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("upgrade", "h2c")
            .body(())
            .unwrap();
        assert_eq!(upgrade_protocol(&req), None);
    }
}
