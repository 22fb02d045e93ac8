//! Helpers shared by the attack corpus and the log test: proofs (through the client's
//! `ProofBuilder`, or signed by hand with aws-sigv4 for shapes the client refuses to make), a layer
//! in front of the sts-emulator, a stub [`StsClient`] returning crafted answers, and a raw TCP
//! "STS" on 127.0.0.1 for answers a stub cannot express (redirects, huge or slow bodies).
// Each of the two test crates that include this module uses a part of it, re-exports included.
#![allow(dead_code, unreachable_pub, unused_imports)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use iam_join_client::{Binding, ProofBuilder, SigningForm, sts_endpoint};
use iam_join_core::SignedStsRequest;
use iam_join_core::policy::TokenPolicy;
use iam_join_core::token::{RawSignedRequest, decode_proof_token};
use iam_join_testkit::policy::{EXPIRED_TOKEN_YAML, seed_policy_with};
use iam_join_tower::sts::{BoxFuture, StsHttpResponse, StsTransportError};
use iam_join_tower::{IamJoinLayer, IamJoinLayerBuilder, RateLimits, StsClient};
use sts_emulator::{Emulator, EmulatorHandle, TestIdentity};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// This verifier's audience.
pub const AUDIENCE: &str = "teleport.example.com";
pub use iam_join_testkit::sign::{FORM, GCI, HOST, REGION};

/// The seed policy plus an expired token `old-token`.
pub fn policy() -> TokenPolicy {
    seed_policy_with(EXPIRED_TOKEN_YAML, "attack-corpus")
}

pub use iam_join_testkit::identities::{alice, bob, node, node2, other_account};

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

/// An audit sink that keeps what it gets, for the test to take.
#[derive(Default)]
pub struct AuditLog(std::sync::Mutex<Vec<iam_join_tower::audit::AuditEvent>>);

impl AuditLog {
    /// Everything recorded since the last call.
    pub fn take(&self) -> Vec<iam_join_tower::audit::AuditEvent> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl iam_join_tower::audit::AuditSink for AuditLog {
    fn record(&self, event: iam_join_tower::audit::AuditEvent) {
        self.0.lock().unwrap().push(event);
    }
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

pub use iam_join_testkit::sign::HandSigned;

/// A hand-made signature for `id`'s credentials bound to [`AUDIENCE`] (see [`HandSigned`]).
pub fn hand_signed(id: &TestIdentity) -> HandSigned<'static> {
    HandSigned::new(id.credentials(), AUDIENCE)
}

// ---------------------------------------------------------------------------------------------
// Sending requests through the layer.
// ---------------------------------------------------------------------------------------------

/// `GET path` with `proof` as a bearer token.
pub use iam_join_testkit::http::get as get_with;
pub use iam_join_testkit::http::{Reply, echo_service, request, send};

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
