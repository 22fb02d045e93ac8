//! Bodies stream through the proxy in both directions without being buffered, and upgraded
//! (WebSocket) connections are relayed.

use std::convert::Infallible;

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http::StatusCode;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use iam_join_e2e::{PATIENCE, Stack, Who, audience_proof, bearer, sha256_hex, test_bytes};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

const TEN_MIB: usize = 10 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;

type StreamingClient = Client<HttpConnector, BoxBody<Bytes, Infallible>>;

fn client() -> StreamingClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A request body fed chunk by chunk through the returned sender; it ends when the sender is
/// dropped.
fn channel_body() -> (mpsc::Sender<Bytes>, BoxBody<Bytes, Infallible>) {
    let (tx, rx) = mpsc::channel::<Bytes>(2);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    (tx, BodyExt::boxed(StreamBody::new(stream)))
}

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, f)
        .await
        .unwrap_or_else(|_| panic!("gave up waiting: {what}"))
}

#[tokio::test]
async fn ten_mib_upload_passes_through_intact() {
    let stack = Stack::start().await;
    let data = Bytes::from(test_bytes(7, TEN_MIB));
    let (tx, body) = channel_body();
    let (k, v) = bearer(&audience_proof(Who::NodeRole));
    let req = http::Request::post(stack.url("/upload"))
        .header(k, v)
        .body(body)
        .expect("request");
    let sending = {
        let data = data.clone();
        tokio::spawn(async move {
            for i in (0..data.len()).step_by(CHUNK) {
                if tx
                    .send(data.slice(i..(i + CHUNK).min(data.len())))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        })
    };
    let resp = within("upload answer", client().request(req))
        .await
        .expect("upload");
    assert_eq!(resp.status(), StatusCode::OK);
    let body = within("upload body", resp.into_body().collect())
        .await
        .expect("body")
        .to_bytes();
    sending.await.expect("sender");
    let answer: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(answer["len"], TEN_MIB);
    assert_eq!(answer["sha256"], sha256_hex(&data));
}

#[tokio::test]
async fn ten_mib_download_passes_through_intact() {
    let stack = Stack::start().await;
    let (k, v) = bearer(&audience_proof(Who::NodeRole));
    let req = http::Request::get(stack.url(&format!("/download?len={TEN_MIB}&seed=11")))
        .header(k, v)
        .body(BoxBody::default())
        .expect("request");
    let resp = within("download answer", client().request(req))
        .await
        .expect("download");
    assert_eq!(resp.status(), StatusCode::OK);
    let body = within("download body", resp.into_body().collect())
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(body.len(), TEN_MIB);
    assert_eq!(sha256_hex(&body), sha256_hex(&test_bytes(11, TEN_MIB)));
}

#[tokio::test]
async fn upload_reaches_the_upstream_before_the_client_has_finished_sending() {
    let stack = Stack::start().await;
    let (tx, body) = channel_body();
    let (k, v) = bearer(&audience_proof(Who::NodeRole));
    let req = http::Request::post(stack.url("/upload"))
        .header(k, v)
        .body(body)
        .expect("request");
    let answer = tokio::spawn(client().request(req));

    tx.send(Bytes::from_static(b"first chunk;"))
        .await
        .expect("send");
    // Only a proxy that streams can deliver this while the body is still open.
    within(
        "first upload bytes at the upstream",
        stack.upstream.state.upload_started.notified(),
    )
    .await;
    tx.send(Bytes::from_static(b"second chunk"))
        .await
        .expect("send");
    drop(tx);

    let resp = within("upload answer", answer)
        .await
        .expect("task")
        .expect("upload");
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let answer: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(answer["len"], 24);
    assert_eq!(answer["sha256"], sha256_hex(b"first chunk;second chunk"));
}

#[tokio::test]
async fn download_reaches_the_client_before_the_upstream_has_finished_sending() {
    let stack = Stack::start().await;
    let (k, v) = bearer(&audience_proof(Who::NodeRole));
    let req = http::Request::get(stack.url("/stream"))
        .header(k, v)
        .body(BoxBody::default())
        .expect("request");
    let answer = tokio::spawn(client().request(req));

    within(
        "upstream starts streaming",
        stack.upstream.state.stream_started.notified(),
    )
    .await;
    let feed = stack
        .upstream
        .state
        .stream_feed
        .lock()
        .expect("lock")
        .take()
        .expect("feed");
    feed.send(Bytes::from_static(b"part one"))
        .await
        .expect("feed");
    let resp = within("response head", answer)
        .await
        .expect("task")
        .expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let mut got = Vec::new();
    // Only a proxy that streams can deliver this while the upstream's body is still open.
    while got.len() < 8 {
        let frame = within("first part at the client", body.frame())
            .await
            .expect("a frame")
            .expect("ok");
        if let Ok(data) = frame.into_data() {
            got.extend_from_slice(&data);
        }
    }
    assert_eq!(got, b"part one");
    feed.send(Bytes::from_static(b", part two"))
        .await
        .expect("feed");
    drop(feed);
    let rest = within("rest of the body", body.collect())
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(&rest[..], b", part two");
}

#[tokio::test]
async fn websocket_echo_works_through_the_proxy() {
    let stack = Stack::start().await;
    let mut request = format!("ws://{}/ws", stack.proxy)
        .into_client_request()
        .expect("ws request");
    let (k, v) = bearer(&audience_proof(Who::NodeRole));
    request.headers_mut().insert(k, v.parse().expect("header"));
    let tcp = tokio::net::TcpStream::connect(stack.proxy)
        .await
        .expect("connect");
    let (mut ws, resp) = within(
        "websocket handshake",
        tokio_tungstenite::client_async(request, tcp),
    )
    .await
    .expect("handshake");
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);

    for i in 0..3 {
        ws.send(Message::Text(format!("hello {i}").into()))
            .await
            .expect("send");
        let reply = within("echo", ws.next())
            .await
            .expect("a message")
            .expect("ok");
        assert_eq!(
            reply.into_text().expect("text").as_str(),
            format!("echo: hello {i}")
        );
    }
    let blob = test_bytes(3, 100_000);
    ws.send(Message::Binary(blob.clone().into()))
        .await
        .expect("send");
    let reply = within("binary echo", ws.next())
        .await
        .expect("a message")
        .expect("ok");
    assert_eq!(reply.into_data().as_ref(), &blob[..]);
    ws.close(None).await.expect("close");
}

#[tokio::test]
async fn websocket_without_a_proof_is_refused_at_the_handshake() {
    let stack = Stack::start().await;
    let request = format!("ws://{}/ws", stack.proxy)
        .into_client_request()
        .expect("ws request");
    let tcp = tokio::net::TcpStream::connect(stack.proxy)
        .await
        .expect("connect");
    match within(
        "websocket handshake",
        tokio_tungstenite::client_async(request, tcp),
    )
    .await
    {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        }
        other => panic!(
            "expected a 401 handshake, got {:?}",
            other.map(|(_, r)| r.status())
        ),
    }
}
