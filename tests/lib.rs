//! Helpers for end-to-end tests: a [`Stack`] of sts-emulator → iam-join-proxy → test upstream,
//! all on 127.0.0.1 with free ports, and a client side that signs proofs with the emulator's
//! test identities.
//!
//! The test upstream ([`upstream_router`]) has routes that make streaming and draining
//! observable without timing: gates the test opens, and notifications when bytes arrive.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use bytes::Bytes;
use futures_util::StreamExt as _;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use iam_join_client::{Binding, ProofBuilder, sts_endpoint};
use iam_join_proxy::{Config, Proxy, ProxyError, ProxyHandle};
use sha2::{Digest as _, Sha256};
use sts_emulator::EmulatorHandle;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

/// The audience every test proxy expects.
pub const AUDIENCE: &str = "e2e.example.com";
/// The region proofs are signed for.
pub const REGION: &str = "us-west-2";
/// The path configured as challenge-only.
pub const JOIN_PATH: &str = "/v1/webapi/host/join";
/// The path configured as public (no proof needed).
pub const PUBLIC_PATH: &str = "/webapi/ping";

/// The seed's `token.yaml` (also `deploy/tokens/token.yaml`).
pub const SEED_TOKENS: &str = include_str!("../deploy/tokens/token.yaml");

/// Upper bound for anything a test waits for; tests poll, they never assert on durations.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The emulator's built-in identities ([`sts_emulator::default_identities`], in order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    /// IAM user alice, account 111111111111.
    Alice,
    /// `teleport-node-role` in 333333333333: allowed by the seed token.
    NodeRole,
    /// `teleport-node-role2` in 333333333333: a look-alike the seed token refuses.
    NodeRole2,
    /// `teleport-node-role` in 444444444444: an account the seed token does not list.
    OtherAccount,
    /// IAM user bob, account 222222222222.
    Bob,
}

impl Who {
    fn index(self) -> usize {
        match self {
            Self::Alice => 0,
            Self::NodeRole => 1,
            Self::NodeRole2 => 2,
            Self::OtherAccount => 3,
            Self::Bob => 4,
        }
    }

    /// The identity's account.
    pub fn account(self) -> &'static str {
        match self {
            Self::Alice => "111111111111",
            Self::NodeRole | Self::NodeRole2 => "333333333333",
            Self::OtherAccount => "444444444444",
            Self::Bob => "222222222222",
        }
    }
}

/// A proof signed by `who`, bound to `binding`, signed now.
pub fn proof(who: Who, binding: Binding) -> String {
    let id = &sts_emulator::default_identities()[who.index()];
    ProofBuilder::new(sts_endpoint(REGION, false).expect("region"), binding)
        .build(&id.credentials())
        .expect("proof")
}

/// A proof signed by `who`, bound to [`AUDIENCE`].
pub fn audience_proof(who: Who) -> String {
    proof(who, Binding::Audience(AUDIENCE.to_owned()))
}

/// `Authorization: Bearer <proof>`.
pub fn bearer(proof: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {proof}"))
}

/// How to build a [`Stack`].
#[derive(Clone, Debug)]
pub struct StackOptions {
    /// The token policy written to `tokens/token.yaml`.
    pub tokens: String,
    /// Extra top-level YAML appended to the generated config.
    pub extra_config: String,
    /// `drain_timeout`.
    pub drain_timeout: &'static str,
    /// Upstream URL instead of the test upstream's.
    pub upstream_url: Option<String>,
    /// `upstream.timeout`.
    pub upstream_timeout: &'static str,
    /// More keys of the `upstream` mapping, e.g. `sni: upstream.test, ca_file: ...`.
    pub upstream_extra: String,
    /// An https upstream (the test certificate) instead of plain http.
    pub upstream_tls: bool,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            tokens: SEED_TOKENS.to_owned(),
            extra_config: String::new(),
            drain_timeout: "10s",
            upstream_url: None,
            upstream_timeout: "20s",
            upstream_extra: String::new(),
            upstream_tls: false,
        }
    }
}

/// sts-emulator → proxy → upstream, on 127.0.0.1.
pub struct Stack {
    /// Holds the config and the tokens.
    pub dir: tempfile::TempDir,
    /// The token file the proxy watches.
    pub tokens: PathBuf,
    /// The emulator.
    pub sts: EmulatorHandle,
    /// The test upstream.
    pub upstream: Upstream,
    /// The proxy's address.
    pub proxy: SocketAddr,
    /// The proxy's admin address.
    pub admin: SocketAddr,
    /// Reload handle.
    pub handle: ProxyHandle,
    stop: Option<oneshot::Sender<()>>,
    /// The proxy's `serve` task.
    pub served: JoinHandle<Result<(), ProxyError>>,
}

impl Stack {
    /// A stack with the seed token and default options.
    pub async fn start() -> Self {
        Self::start_with(StackOptions::default()).await
    }

    /// A stack with `options`.
    pub async fn start_with(options: StackOptions) -> Self {
        let sts = sts_emulator::Emulator::start().await.expect("emulator");
        let upstream = if options.upstream_tls {
            Upstream::start_tls().await
        } else {
            Upstream::start().await
        };
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("tokens")).expect("mkdir");
        let tokens = dir.path().join("tokens/token.yaml");
        std::fs::write(&tokens, &options.tokens).expect("write tokens");
        let upstream_url = options.upstream_url.clone().unwrap_or_else(|| {
            let scheme = if options.upstream_tls {
                "https"
            } else {
                "http"
            };
            format!("{scheme}://{}", upstream.addr)
        });
        let upstream_extra = if options.upstream_extra.is_empty() {
            String::new()
        } else {
            format!(", {}", options.upstream_extra)
        };
        let config = format!(
            "listen: 127.0.0.1:0\n\
             upstream: {{url: \"{upstream_url}\", timeout: {timeout}, connect_timeout: 2s{upstream_extra}}}\n\
             audience: {AUDIENCE}\n\
             default_token: iam-token\n\
             tokens: tokens/token.yaml\n\
             public_paths: [\"{PUBLIC_PATH}\"]\n\
             challenge_paths: [\"{JOIN_PATH}\"]\n\
             sts: {{overrides: {{sts.{REGION}.amazonaws.com: \"{sts}\"}}}}\n\
             admin: {{listen: 127.0.0.1:0}}\n\
             drain_timeout: {drain}\n\
             {extra}",
            timeout = options.upstream_timeout,
            sts = sts.url(),
            drain = options.drain_timeout,
            extra = options.extra_config,
        );
        let config_path = dir.path().join("config.yaml");
        std::fs::write(&config_path, config).expect("write config");
        let config = Config::load(&config_path).expect("valid config");
        let proxy = Proxy::bind(config).await.expect("proxy binds");
        let addr = proxy.local_addr();
        let admin = proxy.admin_addr().expect("admin listener");
        let handle = proxy.handle();
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(proxy.serve(async {
            let _ = stopped.await;
        }));
        Self {
            dir,
            tokens,
            sts,
            upstream,
            proxy: addr,
            admin,
            handle,
            stop: Some(stop),
            served,
        }
    }

    /// `http://<proxy><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.proxy)
    }

    /// Tells the proxy to shut down (it drains; see [`Stack::served`]).
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// The admin `/metrics` text.
    pub async fn metrics(&self) -> String {
        let (status, _, body) = request(
            "GET",
            &format!("http://{}/metrics", self.admin),
            &[],
            Bytes::new(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        String::from_utf8(body.to_vec()).expect("utf-8 metrics")
    }
}

/// The issuer every test verifier signs assertions as.
pub const ASSERTION_ISSUER: &str = "https://iam-join.e2e.test";
/// The audience every test verifier signs assertions for (the app's name).
pub const ASSERTION_AUDIENCE: &str = "e2e-app";

/// The `assertion:` section of a test config, signing with `keys` (PEM paths, the first signs)
/// or, when `keys` is empty, with a key generated at start.
pub fn assertion_config(keys: &[&std::path::Path]) -> String {
    let keys = if keys.is_empty() {
        "generate: true".to_owned()
    } else {
        let files: Vec<String> = keys
            .iter()
            .map(|k| format!("{{file: \"{}\"}}", k.display()))
            .collect();
        format!("keys: [{}]", files.join(", "))
    };
    format!(
        "assertion: {{issuer: \"{ASSERTION_ISSUER}\", audiences: [{ASSERTION_AUDIENCE}], {keys}}}\n"
    )
}

/// Writes a fresh P-256 key (unencrypted PKCS#8 PEM, as `openssl genpkey` writes) to `path`.
pub fn write_assertion_key(path: &std::path::Path) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("P-256 key");
    std::fs::write(path, key.serialize_pem()).expect("write key");
}

/// Verifies `jws` as an app behind the proxy would: against the key set fetched from
/// `jwks_url`, for [`ASSERTION_ISSUER`] and [`ASSERTION_AUDIENCE`].
pub async fn verify_assertion(
    jwks_url: &str,
    jws: &str,
) -> Result<iam_join_assertion::VerifiedAssertion, iam_join_assertion::AssertionError> {
    iam_join_assertion::AssertionVerifier::from_jwks_url(
        ASSERTION_ISSUER,
        ASSERTION_AUDIENCE,
        jwks_url,
    )
    .expect("JWKS URL")
    .verify(jws, time::OffsetDateTime::now_utc())
    .await
}

/// The assertion's claims say exactly what the identity headers in the upstream `echo` say.
pub fn assert_claims_match_headers(
    echo: &serde_json::Value,
    claims: &iam_join_assertion::AssertionClaims,
) {
    let header = |name: &str| {
        echo["headers"][name][0]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header("x-iam-join-account"), claims.aws_account, "{echo}");
    assert_eq!(header("x-iam-join-arn"), claims.aws_arn, "{echo}");
    assert_eq!(header("x-iam-join-user-id"), claims.aws_user_id, "{echo}");
    assert_eq!(header("x-iam-join-token"), claims.join_token, "{echo}");
    assert_eq!(header("x-iam-join-roles"), claims.roles.join(","), "{echo}");
    assert_eq!(header("x-iam-join-region"), claims.aws_region, "{echo}");
    assert_eq!(claims.sub, claims.aws_arn);
    assert!(
        claims.iss == ASSERTION_ISSUER && claims.exp > claims.iat,
        "{claims:?}"
    );
}

/// One HTTP/1.1 request with a buffered body; returns status, headers and the whole body.
pub async fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> (StatusCode, HeaderMap, Bytes) {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut req = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = tokio::time::timeout(
        PATIENCE,
        client.request(req.body(Full::new(body)).expect("request")),
    )
    .await
    .expect("answer in time")
    .expect("request sent");
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    (parts.status, parts.headers, body)
}

/// A GET through the proxy; returns status and the body as JSON (or `Null`).
pub async fn get_json(url: &str, headers: &[(&str, &str)]) -> (StatusCode, serde_json::Value) {
    let (status, _, body) = request("GET", url, headers, Bytes::new()).await;
    (
        status,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    )
}

/// Polls `check` until it is true, at most [`PATIENCE`]; panics with `what` otherwise.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Deterministic test data: `len` bytes from a xorshift generator seeded with `seed`.
pub fn test_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// The test upstream and the knobs its routes expose.
#[derive(Clone)]
pub struct Upstream {
    /// Its address.
    pub addr: SocketAddr,
    /// Shared with its handlers.
    pub state: UpstreamState,
}

/// What the upstream's handlers share with the test.
#[derive(Clone, Default)]
pub struct UpstreamState {
    /// `/gate` has received its request.
    pub gate_entered: Arc<Notify>,
    /// Lets `/gate` answer.
    pub gate_release: Arc<Notify>,
    /// `/upload` has received its first body bytes.
    pub upload_started: Arc<Notify>,
    /// Feeds the body of the current `/stream` answer.
    pub stream_feed: Arc<Mutex<Option<mpsc::Sender<Bytes>>>>,
    /// `/stream` has started answering.
    pub stream_started: Arc<Notify>,
}

/// A test TLS file (`ca.pem`, `server.pem`, `server.key`): a CA and a server certificate for
/// `localhost`, `upstream.test` and `127.0.0.1`.
pub fn tls_fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/tls")
        .join(name)
}

/// A rustls client config trusting only the test CA, offering `alpn`.
pub fn test_client_tls(alpn: &[&[u8]]) -> rustls::ClientConfig {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(tls_fixture("ca.pem")).expect("ca.pem") {
        roots.add(cert.expect("cert")).expect("root");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

fn test_server_tls() -> rustls::ServerConfig {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(tls_fixture("server.pem"))
        .expect("server.pem")
        .collect::<Result<Vec<_>, _>>()
        .expect("certs");
    let key = PrivateKeyDer::from_pem_file(tls_fixture("server.key")).expect("server.key");
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("server config");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

impl Upstream {
    /// Starts the upstream on 127.0.0.1:0 behind TLS with the test server certificate.
    pub async fn start_tls() -> Self {
        let state = UpstreamState::default();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("addr");
        let app = upstream_router(state.clone());
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(test_server_tls()));
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let app = app.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            tower::ServiceExt::oneshot(app.clone(), req)
                        },
                    );
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self { addr, state }
    }

    /// Starts the upstream on 127.0.0.1:0.
    pub async fn start() -> Self {
        let state = UpstreamState::default();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("addr");
        let app = upstream_router(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, state }
    }
}

/// The upstream's routes:
/// - `/ws`: WebSocket echo;
/// - `POST /upload`: reads the body as it streams in, answers `{"len", "sha256"}`;
/// - `GET /download?len=N&seed=S`: streams [`test_bytes`];
/// - `GET /stream`: streams what the test feeds through [`UpstreamState::stream_feed`];
/// - `GET /gate`: answers once the test releases it;
/// - anything else: `{"method", "path", "query", "headers": {name: [values]}}`.
pub fn upstream_router(state: UpstreamState) -> Router {
    Router::new()
        .route("/ws", get(ws))
        .route("/upload", post(upload))
        .route("/download", get(download))
        .route("/stream", get(stream))
        .route("/gate", get(gate))
        .fallback(any(echo))
        .with_state(state)
}

async fn echo(req: axum::extract::Request) -> impl IntoResponse {
    let mut headers = serde_json::Map::new();
    for (name, value) in req.headers() {
        let entry = headers
            .entry(name.as_str().to_owned())
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
        if let serde_json::Value::Array(values) = entry {
            values.push(
                String::from_utf8_lossy(value.as_bytes())
                    .into_owned()
                    .into(),
            );
        }
    }
    axum::Json(serde_json::json!({
        "method": req.method().as_str(),
        "path": req.uri().path(),
        "query": req.uri().query(),
        "version": format!("{:?}", req.version()),
        "headers": headers,
    }))
}

async fn ws(upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(|mut socket: WebSocket| async move {
        while let Some(Ok(msg)) = socket.recv().await {
            let reply = match msg {
                Message::Text(t) => Message::Text(format!("echo: {}", t.as_str()).into()),
                Message::Binary(b) => Message::Binary(b),
                Message::Close(_) => break,
                _ => continue,
            };
            if socket.send(reply).await.is_err() {
                break;
            }
        }
    })
}

async fn upload(State(state): State<UpstreamState>, body: Body) -> impl IntoResponse {
    let mut hasher = Sha256::new();
    let mut len = 0usize;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return (StatusCode::BAD_REQUEST, "body failed").into_response();
        };
        if len == 0 && !chunk.is_empty() {
            state.upload_started.notify_one();
        }
        len += chunk.len();
        hasher.update(&chunk);
    }
    axum::Json(serde_json::json!({"len": len, "sha256": hex(&hasher.finalize())})).into_response()
}

#[derive(serde::Deserialize)]
struct DownloadQuery {
    len: usize,
    seed: u64,
}

async fn download(Query(q): Query<DownloadQuery>) -> impl IntoResponse {
    let data = Bytes::from(test_bytes(q.seed, q.len));
    let chunks: Vec<Result<Bytes, std::convert::Infallible>> = (0..data.len())
        .step_by(64 * 1024)
        .map(|i| Ok(data.slice(i..(i + 64 * 1024).min(data.len()))))
        .collect();
    Body::from_stream(futures_util::stream::iter(chunks))
}

async fn stream(State(state): State<UpstreamState>) -> impl IntoResponse {
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    *state.stream_feed.lock().expect("lock") = Some(tx);
    state.stream_started.notify_one();
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    });
    Body::from_stream(body)
}

async fn gate(State(state): State<UpstreamState>) -> impl IntoResponse {
    state.gate_entered.notify_one();
    state.gate_release.notified().await;
    "gate passed"
}
