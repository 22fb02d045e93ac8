//! The STS client (DESIGN §4 step 8): sends a checked proof to the STS host it names, or to a
//! configured override URL for that host, keeping the signed `Host` header byte for byte.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use iam_join_core::SignedStsRequest;
use iam_join_core::response::MAX_STS_RESPONSE_BYTES;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What STS answered, before parsing.
#[derive(Clone, Debug)]
pub struct StsHttpResponse {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The body (at most 64 KiB).
    pub body: Bytes,
}

/// STS could not be asked: connection, TLS, timeout or an oversize answer. Always retryable.
#[derive(Clone, Debug, thiserror::Error)]
#[error("STS transport error: {0}")]
pub struct StsTransportError(pub String);

/// Sends a checked proof to STS. A trait so tests and benches can swap the transport.
pub trait StsClient: Send + Sync + 'static {
    /// Sends `request` and returns STS's raw answer.
    fn send<'a>(
        &'a self,
        request: &'a SignedStsRequest,
    ) -> BoxFuture<'a, Result<StsHttpResponse, StsTransportError>>;
}

impl<T: StsClient + ?Sized> StsClient for Arc<T> {
    fn send<'a>(
        &'a self,
        request: &'a SignedStsRequest,
    ) -> BoxFuture<'a, Result<StsHttpResponse, StsTransportError>> {
        (**self).send(request)
    }
}

/// Settings of [`HyperStsClient`].
#[derive(Clone, Debug)]
pub struct StsClientConfig {
    /// Per-host base URLs (`http://127.0.0.1:9443`, `https://vpce-….sts.us-west-2.vpce.amazonaws.com`)
    /// used instead of `https://<host>` (VPC endpoints, emulators, tests). The signed `Host`
    /// header is still sent unchanged.
    pub overrides: HashMap<String, String>,
    /// TCP connect timeout. Default 2 s.
    pub connect_timeout: Duration,
    /// Total time for one STS call, body included. Default 5 s.
    pub timeout: Duration,
}

impl Default for StsClientConfig {
    fn default() -> Self {
        Self {
            overrides: HashMap::new(),
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(5),
        }
    }
}

/// An override URL that is not `http(s)://host[:port]` with no path.
#[derive(Clone, Debug, thiserror::Error)]
#[error(
    "STS override URL {0:?} must be http:// or https:// with a host, optional port and no path"
)]
pub struct InvalidOverride(pub String);

/// The production STS client: hyper-util's pooled client over rustls with the webpki roots.
/// No redirects are followed; answers over 64 KiB are refused.
pub struct HyperStsClient {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    overrides: HashMap<String, String>,
    timeout: Duration,
}

impl fmt::Debug for HyperStsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HyperStsClient")
            .field("overrides", &self.overrides)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl HyperStsClient {
    /// Builds the client. Uses rustls with the ring provider (no global provider is installed).
    pub fn new(config: StsClientConfig) -> Result<Self, InvalidOverride> {
        let mut overrides = HashMap::new();
        for (host, url) in config.overrides {
            let base = url.trim_end_matches('/').to_owned();
            let rest = base
                .strip_prefix("http://")
                .or_else(|| base.strip_prefix("https://"))
                .ok_or_else(|| InvalidOverride(url.clone()))?;
            if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
                return Err(InvalidOverride(url));
            }
            base.parse::<http::Uri>()
                .map_err(|_| InvalidOverride(url.clone()))?;
            overrides.insert(host, base);
        }
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(config.connect_timeout));
        http.set_nodelay(true);
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| InvalidOverride(format!("TLS setup: {e}")))?
        .with_root_certificates(rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        })
        .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(https);
        Ok(Self {
            client,
            overrides,
            timeout: config.timeout,
        })
    }

    async fn send_inner(
        &self,
        request: &SignedStsRequest,
    ) -> Result<StsHttpResponse, StsTransportError> {
        let host = request.host().name();
        let base = match self.overrides.get(host) {
            Some(b) => b.clone(),
            None => format!("https://{host}"),
        };
        let uri = format!("{base}{}", request.path_and_query());
        let mut builder = Request::builder().method(request.method()).uri(&uri);
        let headers = builder
            .headers_mut()
            .ok_or_else(|| StsTransportError("bad request URI".into()))?;
        let bad = |_| StsTransportError("proof header could not be sent".into());
        headers.insert(header::HOST, HeaderValue::from_str(host).map_err(bad)?);
        for (name, value) in request.headers() {
            headers.append(
                HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| StsTransportError("proof header could not be sent".into()))?,
                HeaderValue::from_str(value).map_err(bad)?,
            );
        }
        if !request.accept_is_signed() {
            headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        }
        let req = builder
            .body(Full::new(Bytes::copy_from_slice(request.body().as_bytes())))
            .map_err(|_| StsTransportError("request could not be built".into()))?;
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| StsTransportError(connect_reason(&e)))?;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = Limited::new(resp.into_body(), MAX_STS_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|_| StsTransportError("answer body too large or cut off".into()))?
            .to_bytes();
        Ok(StsHttpResponse {
            status,
            content_type,
            body,
        })
    }
}

fn connect_reason(e: &hyper_util::client::legacy::Error) -> String {
    if e.is_connect() {
        "could not connect".into()
    } else {
        "request failed".into()
    }
}

impl StsClient for HyperStsClient {
    fn send<'a>(
        &'a self,
        request: &'a SignedStsRequest,
    ) -> BoxFuture<'a, Result<StsHttpResponse, StsTransportError>> {
        Box::pin(async move {
            tokio::time::timeout(self.timeout, self.send_inner(request))
                .await
                .map_err(|_| StsTransportError("timed out".into()))?
        })
    }
}
