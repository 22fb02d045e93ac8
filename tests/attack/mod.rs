//! Helpers shared by the attack corpus and the log test: proofs (through the client's
//! `ProofBuilder`, or signed by hand with aws-sigv4 for shapes the client refuses to make), a layer
//! in front of the sts-emulator, a stub [`StsClient`] returning crafted answers, and a raw TCP
//! "STS" on 127.0.0.1 for answers a stub cannot express (redirects, huge or slow bodies).
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use iam_join_client::{Binding, ProofBuilder, SigningForm, sts_endpoint};
use iam_join_core::policy::TokenPolicy;
use iam_join_core::token::{ProofFormat, RawSignedRequest, decode_proof_token};
use iam_join_core::{SignedStsRequest, VerifiedIdentity};
use iam_join_tower::sts::{BoxFuture, StsHttpResponse, StsTransportError};
use iam_join_tower::{ClientAddr, IamJoinLayer, IamJoinLayerBuilder, RateLimits, StsClient};
use sts_emulator::{Emulator, EmulatorHandle, TestIdentity, default_identities};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tower::{Layer, Service, ServiceExt, service_fn};

/// This verifier's audience.
pub const AUDIENCE: &str = "teleport.example.com";
/// The STS host proofs are signed for.
pub const HOST: &str = "sts.us-west-2.amazonaws.com";
/// Its region.
pub const REGION: &str = "us-west-2";
/// The only POST body (and presigned query head) a proof may have.
pub const GCI: &str = "Action=GetCallerIdentity&Version=2011-06-15";
/// The content type a signed POST proof signs.
pub const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// The seed's `token.yaml` (accounts 111…, 222…, and 333… with an `aws_arn` glob on
/// `teleport-node-role`).
pub const SEED: &str = include_str!("../../crates/iam-join-core/tests/fixtures/token.yaml");
const EXTRA: &str = r#"
kind: token
version: v2
metadata:
  name: old-token
  expires: 2020-01-01T00:00:00Z
spec:
  roles: [Node]
  join_method: iam
  allow:
    - aws_account: "111111111111"
"#;

/// The seed policy plus an expired token `old-token`.
pub fn policy() -> TokenPolicy {
    TokenPolicy::from_yaml_str(&format!("{SEED}\n---\n{EXTRA}"), "attack-corpus").unwrap()
}

/// Emulator identity 1: IAM user alice in 111111111111 (long-term key).
pub fn alice() -> TestIdentity {
    default_identities()[0].clone()
}
/// Identity 2: `teleport-node-role` in 333333333333 (temporary key).
pub fn node() -> TestIdentity {
    default_identities()[1].clone()
}
/// Identity 3: the look-alike role `teleport-node-role2` in 333333333333.
pub fn node2() -> TestIdentity {
    default_identities()[2].clone()
}
/// Identity 4: `teleport-node-role` (same role and session names as identity 2) in
/// 444444444444, an account the seed token does not allow.
pub fn other_account() -> TestIdentity {
    default_identities()[3].clone()
}
/// Identity 5: IAM user bob in 222222222222.
pub fn bob() -> TestIdentity {
    default_identities()[4].clone()
}

/// An emulator on 127.0.0.1:0 and a layer in front of it, without rate limits.
pub struct Harness {
    pub emulator: EmulatorHandle,
    pub layer: IamJoinLayer,
}

/// The layer's common settings: audience, default token, seed policy, no rate limits, short STS
/// timeouts.
pub fn base_builder() -> IamJoinLayerBuilder {
    IamJoinLayer::builder()
        .audience(AUDIENCE)
        .default_token("iam-token")
        .policy(policy())
        .identity_headers(true)
        .sts_timeouts(Duration::from_secs(1), Duration::from_millis(700))
        .rate_limits(RateLimits::none())
}

pub async fn harness(
    configure: impl FnOnce(IamJoinLayerBuilder) -> IamJoinLayerBuilder,
) -> Harness {
    let emulator = Emulator::start().await.unwrap();
    let layer = configure(base_builder().sts_override_all(emulator.url()))
        .build()
        .unwrap();
    Harness { emulator, layer }
}

// ---------------------------------------------------------------------------------------------
// Proofs.
// ---------------------------------------------------------------------------------------------

/// A proof made by the client library.
pub fn proof_with(
    id: &TestIdentity,
    binding: Binding,
    form: SigningForm,
    at: SystemTime,
) -> String {
    ProofBuilder::new(sts_endpoint(REGION, false).unwrap(), binding)
        .form(form)
        .time(at)
        .build(&id.credentials())
        .unwrap()
}

/// A signed POST bound to [`AUDIENCE`], signed now.
pub fn post(id: &TestIdentity) -> String {
    proof_with(
        id,
        Binding::Audience(AUDIENCE.into()),
        SigningForm::Post,
        SystemTime::now(),
    )
}

/// A presigned GET (300 s) bound to [`AUDIENCE`], signed now.
pub fn get(id: &TestIdentity) -> String {
    proof_with(
        id,
        Binding::Audience(AUDIENCE.into()),
        SigningForm::presigned_get(),
        SystemTime::now(),
    )
}

pub fn decode(token: &str) -> RawSignedRequest {
    decode_proof_token(token).unwrap()
}

/// Decodes `token`, edits it, and encodes it again (the signature is not renewed).
pub fn reencode(token: &str, edit: impl FnOnce(&mut RawSignedRequest)) -> String {
    let mut raw = decode(token);
    edit(&mut raw);
    raw.to_iam_join_v1_token()
}

/// Replaces the value of header `name` (lowercase) in a raw request.
pub fn set_header(raw: &mut RawSignedRequest, name: &str, value: &str) {
    match raw.headers.iter_mut().find(|(n, _)| n == name) {
        Some(h) => h.1 = value.to_owned(),
        None => raw.headers.push((name.to_owned(), value.to_owned())),
    }
}

/// Edits the value of header `name` with `f`.
pub fn map_header(raw: &mut RawSignedRequest, name: &str, f: impl FnOnce(&str) -> String) {
    if let Some(h) = raw.headers.iter_mut().find(|(n, _)| n == name) {
        h.1 = f(&h.1);
    }
}

/// The JSON text of a proof token's payload.
pub fn payload_json(token: &str) -> String {
    use base64::Engine as _;
    let b64 = token.strip_prefix("iam-join-v1.").unwrap();
    String::from_utf8(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(b64)
            .unwrap(),
    )
    .unwrap()
}

/// An `iam-join-v1.` token of arbitrary payload bytes.
pub fn token_of(json: impl AsRef<[u8]>) -> String {
    use base64::Engine as _;
    format!(
        "iam-join-v1.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    )
}

/// What a hand-made signature covers (for proofs the client library refuses to make).
#[derive(Clone, Debug)]
pub struct HandSigned<'a> {
    pub creds: Credentials,
    pub host: &'a str,
    /// The credential scope's region.
    pub region: &'a str,
    /// The credential scope's service.
    pub service: &'a str,
    /// Headers signed besides `host` (and, for a POST, `x-amz-date` and the session token, which
    /// aws-sigv4 adds).
    pub headers: Vec<(&'a str, &'a str)>,
    pub at: SystemTime,
}

impl<'a> HandSigned<'a> {
    pub fn new(id: &TestIdentity) -> Self {
        Self {
            creds: id.credentials(),
            host: HOST,
            region: REGION,
            service: "sts",
            headers: vec![("content-type", FORM), ("x-iam-join-audience", AUDIENCE)],
            at: SystemTime::now(),
        }
    }

    fn params<'p>(
        &'p self,
        identity: &'p aws_smithy_runtime_api::client::identity::Identity,
        settings: SigningSettings,
    ) -> aws_sigv4::http_request::SigningParams<'p> {
        v4::SigningParams::builder()
            .identity(identity)
            .region(self.region)
            .name(self.service)
            .time(self.at)
            .settings(settings)
            .build()
            .unwrap()
            .into()
    }

    /// A signed POST of `body` with `self.headers` signed.
    pub fn post_with_body(&self, body: &str) -> RawSignedRequest {
        let identity = self.creds.clone().into();
        let url = format!("https://{}/", self.host);
        let signable = SignableRequest::new(
            "POST",
            &url,
            self.headers.iter().copied(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .unwrap();
        let mut settings = SigningSettings::default();
        settings.excluded_headers = None;
        let p = self.params(&identity, settings);
        let (instructions, _) = sign(signable, &p).unwrap().into_parts();
        let mut out: Vec<(String, String)> = self
            .headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        for (n, v) in instructions.headers() {
            let n = n.to_ascii_lowercase();
            match out.iter_mut().find(|(k, _)| *k == n) {
                Some(slot) => slot.1 = v.to_owned(),
                None => out.push((n, v.to_owned())),
            }
        }
        RawSignedRequest {
            format: ProofFormat::IamJoinV1,
            method: "POST".into(),
            url,
            headers: out,
            body: body.into(),
        }
    }

    pub fn post(&self) -> RawSignedRequest {
        self.post_with_body(GCI)
    }

    /// A presigned GET of `query` with `self.headers` signed, valid `expires` seconds.
    pub fn presign_query(&self, query: &str, expires: u64) -> RawSignedRequest {
        let identity = self.creds.clone().into();
        let url = format!("https://{}/?{query}", self.host);
        let signable = SignableRequest::new(
            "GET",
            &url,
            self.headers.iter().copied(),
            SignableBody::Bytes(&[]),
        )
        .unwrap();
        let mut settings = SigningSettings::default();
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(Duration::from_secs(expires));
        settings.excluded_headers = None;
        let p = self.params(&identity, settings);
        let (instructions, _) = sign(signable, &p).unwrap().into_parts();
        let mut req = http::Request::builder().uri(&url).body(()).unwrap();
        instructions.apply_to_request_http1x(&mut req);
        RawSignedRequest {
            format: ProofFormat::IamJoinV1,
            method: "GET".into(),
            url: format!(
                "https://{}{}",
                self.host,
                req.uri().path_and_query().unwrap()
            ),
            headers: self
                .headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            body: String::new(),
        }
    }

    pub fn presign(&self, expires: u64) -> RawSignedRequest {
        self.presign_query(GCI, expires)
    }

    /// For presigned GETs: only the binding header is signed besides `host`.
    pub fn audience_only(mut self) -> Self {
        self.headers = vec![("x-iam-join-audience", AUDIENCE)];
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Sending requests through the layer.
// ---------------------------------------------------------------------------------------------

/// The inner service: echoes the headers it received and the verified ARN.
pub fn echo_service() -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    service_fn(|req: Request<Full<Bytes>>| async move {
        let headers: serde_json::Map<String, serde_json::Value> = req
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    serde_json::Value::String(v.to_str().unwrap_or("").to_owned()),
                )
            })
            .collect();
        let identity = req.extensions().get::<VerifiedIdentity>().map(
            |id| serde_json::json!({"account": id.identity.account(), "arn": id.identity.arn()}),
        );
        let body = serde_json::json!({"headers": headers, "identity": identity});
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body.to_string()))))
    })
}

/// A response, its body read as JSON (`Null` if empty or not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub json: serde_json::Value,
}

impl Reply {
    /// `error.code`, or `""` for a success.
    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }
    /// `error.message`.
    pub fn message(&self) -> &str {
        self.json["error"]["message"].as_str().unwrap_or("")
    }
    /// The account the inner service saw, if admitted.
    pub fn account(&self) -> Option<&str> {
        self.json["identity"]["account"].as_str()
    }
}

/// A request to `path` from 127.0.0.1, with the proof as `Authorization: Bearer`.
pub fn request(path: &str, proof: Option<&str>) -> http::request::Builder {
    let mut b = Request::builder().uri(path);
    if let Some(p) = proof {
        b = b.header("authorization", format!("Bearer {p}"));
    }
    b.extension(ClientAddr("127.0.0.1:40000".parse().unwrap()))
}

pub async fn send(layer: &IamJoinLayer, req: Request<Full<Bytes>>) -> Reply {
    let resp = layer.layer(echo_service()).oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    Reply {
        status,
        headers,
        json,
    }
}

/// `GET path` with `proof` as a bearer token.
pub async fn get_with(layer: &IamJoinLayer, path: &str, proof: Option<&str>) -> Reply {
    send(layer, request(path, proof).body(Full::default()).unwrap()).await
}

/// A fresh challenge from the layer's endpoint.
pub async fn challenge(layer: &IamJoinLayer) -> String {
    let req = request("/v1/iam-join/challenge", None)
        .method("POST")
        .body(Full::default())
        .unwrap();
    let r = send(layer, req).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
    r.json["challenge"].as_str().unwrap().to_owned()
}

// ---------------------------------------------------------------------------------------------
// Crafted STS answers.
// ---------------------------------------------------------------------------------------------

/// A valid XML answer for emulator identity 2 (`teleport-node-role` in 333333333333).
pub const XML_NODE: &str = "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  \
<GetCallerIdentityResult>\n    <Arn>arn:aws:sts::333333333333:assumed-role/teleport-node-role/i-0abc123def4567890</Arn>\n    \
<UserId>AROAEMULATORNODE00001:i-0abc123def4567890</UserId>\n    <Account>333333333333</Account>\n  </GetCallerIdentityResult>\n  \
<ResponseMetadata>\n    <RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId>\n  </ResponseMetadata>\n\
</GetCallerIdentityResponse>\n";

/// The same answer in STS's JSON.
pub const JSON_NODE: &str = r#"{"GetCallerIdentityResponse":{"GetCallerIdentityResult":{"Account":"333333333333","Arn":"arn:aws:sts::333333333333:assumed-role/teleport-node-role/i-0abc123def4567890","UserId":"AROAEMULATORNODE00001:i-0abc123def4567890"},"ResponseMetadata":{"RequestId":"01234567-89ab-cdef-0123-456789abcdef"}}}"#;

/// An STS `ErrorResponse` in XML.
pub fn xml_error(code: &str) -> String {
    format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>\
         <Code>{code}</Code><Message>no</Message></Error><RequestId>1</RequestId></ErrorResponse>"
    )
}

/// An STS error in JSON.
pub fn json_error(code: &str) -> String {
    format!(r#"{{"Error":{{"Code":"{code}","Message":"no","Type":"Sender"}},"RequestId":"1"}}"#)
}

/// An [`StsClient`] that answers every proof with one crafted answer and counts calls.
pub struct StubSts {
    answer: Result<StsHttpResponse, StsTransportError>,
    calls: AtomicU64,
    /// The headers of every request it was asked to send.
    pub seen: Mutex<Vec<Vec<(String, String)>>>,
}

impl StubSts {
    pub fn new(status: u16, content_type: Option<&str>, body: impl Into<Bytes>) -> Arc<Self> {
        Arc::new(Self {
            answer: Ok(StsHttpResponse {
                status,
                content_type: content_type.map(str::to_owned),
                body: body.into(),
            }),
            calls: AtomicU64::new(0),
            seen: Mutex::new(Vec::new()),
        })
    }

    pub fn failing(reason: &str) -> Arc<Self> {
        Arc::new(Self {
            answer: Err(StsTransportError(reason.to_owned())),
            calls: AtomicU64::new(0),
            seen: Mutex::new(Vec::new()),
        })
    }

    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
}

impl StsClient for StubSts {
    fn send<'a>(
        &'a self,
        request: &'a SignedStsRequest,
    ) -> BoxFuture<'a, Result<StsHttpResponse, StsTransportError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.seen.lock().unwrap().push(request.headers().to_vec());
        let answer = self.answer.clone();
        Box::pin(async move { answer })
    }
}

/// A layer whose STS is `stub`.
pub fn stub_layer(stub: &Arc<StubSts>) -> IamJoinLayer {
    base_builder()
        .sts_client(Arc::clone(stub) as Arc<dyn StsClient>)
        .build()
        .unwrap()
}

/// What the raw TCP "STS" does with each request it reads.
#[derive(Clone, Debug)]
pub enum Crafted {
    /// Writes these bytes (a whole HTTP response), then closes.
    Raw(Vec<u8>),
    /// Waits, then writes the bytes.
    Delay(Duration, Vec<u8>),
    /// Writes `head` at once, then `pieces` copies of `piece`, one every `every`.
    Trickle {
        head: Vec<u8>,
        piece: Vec<u8>,
        every: Duration,
        pieces: usize,
    },
    /// Closes the connection without answering.
    Close,
}

/// An HTTP/1.1 response with `Content-Length` and `Connection: close`.
pub fn http_response(status_line: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status_line}\r\n");
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// A raw TCP server on 127.0.0.1:0 that plays STS badly. Stops when dropped.
pub struct CraftedSts {
    url: String,
    calls: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl CraftedSts {
    pub async fn start(behavior: Crafted) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let calls = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&calls);
        let task = tokio::spawn(async move {
            // Dropping the set (when this task is aborted) aborts every connection.
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    // E.g. out of file descriptors: back off rather than spin.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let (behavior, counter) = (behavior.clone(), Arc::clone(&counter));
                connections.spawn(async move {
                    serve_crafted(stream, behavior, counter).await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Self { url, calls, task }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Requests read so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Drop for CraftedSts {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn read_request(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + length.min(65_536) {
                return Some(buf);
            }
        }
        if buf.len() > 128 * 1024 {
            return None;
        }
        let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn serve_crafted(mut stream: TcpStream, behavior: Crafted, calls: Arc<AtomicU64>) {
    if read_request(&mut stream).await.is_none() {
        return;
    }
    calls.fetch_add(1, Ordering::SeqCst);
    match behavior {
        Crafted::Raw(bytes) => {
            let _ = stream.write_all(&bytes).await;
        }
        Crafted::Delay(wait, bytes) => {
            tokio::time::sleep(wait).await;
            let _ = stream.write_all(&bytes).await;
        }
        Crafted::Trickle {
            head,
            piece,
            every,
            pieces,
        } => {
            if stream.write_all(&head).await.is_err() {
                return;
            }
            for _ in 0..pieces {
                tokio::time::sleep(every).await;
                if stream.write_all(&piece).await.is_err() {
                    return;
                }
            }
        }
        Crafted::Close => {}
    }
    let _ = stream.shutdown().await;
}

/// A layer whose STS override for every host is `url`.
pub fn override_layer(url: &str) -> IamJoinLayer {
    base_builder().sts_override_all(url).build().unwrap()
}
