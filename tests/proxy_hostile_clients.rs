//! Hostile and broken clients (issue 17): silent connections, per-client connection caps, slow
//! uploads and stalled bodies, floods of upstream requests, silent HTTP/2 peers at shutdown, and
//! non-WebSocket upgrades. Every server binds 127.0.0.1; every wait is bounded by `PATIENCE`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use iam_join_e2e::{PATIENCE, PUBLIC_PATH, Stack, StackOptions, Who, audience_proof, test_bytes};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// The HTTP/2 client preface.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame.
const H2_SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];

/// Reads (and discards) until the peer closes; `true` if it did within `PATIENCE`.
async fn closed_by_peer(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(PATIENCE, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn silent_connections_are_closed_after_the_handshake_or_idle_timeout() {
    let stack = Stack::start_with(StackOptions {
        extra_config: "connections: {handshake_timeout: 1s, idle_timeout: 2s}\n".to_owned(),
        ..StackOptions::default()
    })
    .await;
    let head = format!("GET {PUBLIC_PATH} HTTP/1.1\r\nHost: proxy.test\r\n\r\n");
    let mut h2_settled = H2_PREFACE.to_vec();
    h2_settled.extend_from_slice(H2_SETTINGS);
    let cases: [(&str, &[u8]); 5] = [
        ("nothing at all", b""),
        (
            "half an HTTP/1 request head",
            b"GET / HTTP/1.1\r\nHost: x\r\n",
        ),
        ("half an HTTP/2 preface", &H2_PREFACE[..10]),
        ("an HTTP/2 preface and SETTINGS, then silence", &h2_settled),
        (
            "one HTTP/1 request, then keep-alive silence",
            head.as_bytes(),
        ),
    ];
    // All at once, so the test waits for one timeout, not five.
    let mut open = Vec::new();
    for (what, bytes) in cases {
        let mut s = TcpStream::connect(stack.proxy).await.expect("connect");
        s.write_all(bytes).await.expect("write");
        open.push((what, s));
    }
    for (what, mut s) in open {
        assert!(closed_by_peer(&mut s).await, "{what}: still open");
    }
}

#[tokio::test]
async fn a_client_over_its_connection_cap_is_turned_away_and_others_are_served() {
    let stack = Stack::start_with(StackOptions {
        extra_config: "connections: {max_per_client: 3, handshake_timeout: 60s}\n".to_owned(),
        ..StackOptions::default()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(stack.proxy).await.expect("connect"));
    }
    let mut fourth = TcpStream::connect(stack.proxy).await.expect("connect");
    assert!(
        closed_by_peer(&mut fourth).await,
        "the fourth connection from one address must be closed"
    );
    // Another address (all of 127.0.0.0/8 is loopback) is still served.
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.2:0".parse().expect("addr"))
        .expect("bind 127.0.0.2");
    let mut other = socket.connect(stack.proxy).await.expect("connect");
    other
        .write_all(
            format!("GET {PUBLIC_PATH} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, other.read_to_end(&mut answer))
        .await
        .expect("answered in time")
        .expect("read");
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    drop(held);
}

/// A body sent in `chunks` pieces of `size` bytes, `gap` apart, then (if `stall`) never ended.
fn paced_body(
    chunks: usize,
    size: usize,
    gap: Duration,
    stall: bool,
) -> (
    StreamBody<tokio_stream_shim::Receiver>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(1);
    let feeder = tokio::spawn(async move {
        let data = test_bytes(7, chunks * size);
        for piece in data.chunks(size) {
            if tx
                .send(Ok(Frame::data(Bytes::copy_from_slice(piece))))
                .await
                .is_err()
            {
                return;
            }
            tokio::time::sleep(gap).await;
        }
        if stall {
            // Keep the body open without sending anything more.
            tx.closed().await;
        }
    });
    (StreamBody::new(tokio_stream_shim::Receiver(rx)), feeder)
}

/// A `Stream` over an mpsc receiver (what `tokio-stream` would give, without the dependency).
mod tokio_stream_shim {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use bytes::Bytes;
    use hyper::body::Frame;

    pub(crate) struct Receiver(
        pub(crate) tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, std::io::Error>>,
    );

    impl futures_util::Stream for Receiver {
        type Item = Result<Frame<Bytes>, std::io::Error>;

        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.0.poll_recv(cx)
        }
    }
}

async fn upload(
    stack: &Stack,
    body: StreamBody<tokio_stream_shim::Receiver>,
) -> (StatusCode, serde_json::Value) {
    let client: Client<_, StreamBody<tokio_stream_shim::Receiver>> =
        Client::builder(TokioExecutor::new()).build_http();
    let proof = audience_proof(Who::Alice);
    let req = http::Request::post(stack.url("/upload"))
        .header("authorization", format!("Bearer {proof}"))
        .body(body)
        .expect("request");
    let resp = tokio::time::timeout(PATIENCE, client.request(req))
        .await
        .expect("answered in time")
        .expect("request sent");
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn a_slow_upload_is_not_counted_against_the_upstream_timeout() {
    let stack = Stack::start_with(StackOptions {
        upstream_timeout: "1s",
        ..StackOptions::default()
    })
    .await;
    // About 3 s of upload against a 1 s upstream timeout.
    let (body, _feeder) = paced_body(15, 16 * 1024, Duration::from_millis(200), false);
    let (status, json) = upload(&stack, body).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["len"], 15 * 16 * 1024);
}

#[tokio::test]
async fn a_client_that_stalls_its_body_gets_request_timeout() {
    let stack = Stack::start_with(StackOptions {
        upstream_extra: "client_body_timeout: 1s".to_owned(),
        ..StackOptions::default()
    })
    .await;
    let (body, _feeder) = paced_body(1, 1024, Duration::ZERO, true);
    let (status, json) = upload(&stack, body).await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{json}");
    assert_eq!(json["error"]["code"], "request_timeout");
}

/// An upstream that holds every request until released and records how many it held at once.
struct SlowUpstream {
    addr: SocketAddr,
    inside: Arc<AtomicUsize>,
    most_inside: Arc<AtomicUsize>,
    release: tokio::sync::watch::Sender<bool>,
}

async fn slow_upstream() -> SlowUpstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let inside = Arc::new(AtomicUsize::new(0));
    let most_inside = Arc::new(AtomicUsize::new(0));
    let (release, released) = tokio::sync::watch::channel(false);
    let (i, m) = (Arc::clone(&inside), Arc::clone(&most_inside));
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (i, m, released) = (Arc::clone(&i), Arc::clone(&m), released.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_req| {
                    let (i, m, mut released) = (Arc::clone(&i), Arc::clone(&m), released.clone());
                    async move {
                        let now = i.fetch_add(1, Ordering::SeqCst) + 1;
                        m.fetch_max(now, Ordering::SeqCst);
                        let _ = released.wait_for(|r| *r).await;
                        i.fetch_sub(1, Ordering::SeqCst);
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                            Bytes::from_static(b"slow"),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    SlowUpstream {
        addr,
        inside,
        most_inside,
        release,
    }
}

#[tokio::test]
async fn upstream_requests_beyond_the_cap_get_503_upstream_busy() {
    let upstream = slow_upstream().await;
    let stack = Stack::start_with(StackOptions {
        upstream_url: Some(format!("http://{}", upstream.addr)),
        upstream_extra: "max_concurrent_requests: 3".to_owned(),
        ..StackOptions::default()
    })
    .await;
    // One unauthenticated HTTP/2 connection, many streams to a slow public path.
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let client = client.clone();
        let url = stack.url(PUBLIC_PATH);
        calls.spawn(async move {
            let resp = client
                .get(url.parse().expect("url"))
                .await
                .expect("answered");
            let status = resp.status();
            let retry_after = resp.headers().contains_key("retry-after");
            let body = resp.into_body().collect().await.expect("body").to_bytes();
            (status, retry_after, body)
        });
    }
    // The 17 over the cap are answered without waiting for the upstream.
    let mut busy = 0;
    while busy < 17 {
        let (status, retry_after, body) = tokio::time::timeout(PATIENCE, calls.join_next())
            .await
            .expect("busy answers come at once")
            .expect("a call")
            .expect("joined");
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(retry_after);
        let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(json["error"]["code"], "upstream_busy");
        busy += 1;
    }
    let inside = Arc::clone(&upstream.inside);
    iam_join_e2e::eventually("the three admitted requests reach the upstream", || {
        let inside = Arc::clone(&inside);
        async move { inside.load(Ordering::SeqCst) == 3 }
    })
    .await;
    upstream.release.send_replace(true);
    while let Some(done) = tokio::time::timeout(PATIENCE, calls.join_next())
        .await
        .expect("released in time")
    {
        assert_eq!(done.expect("joined").0, StatusCode::OK);
    }
    assert_eq!(upstream.most_inside.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_silent_http2_client_does_not_hold_shutdown() {
    let mut stack = Stack::start_with(StackOptions {
        drain_timeout: "120s",
        // Long silence deadlines: only the drain may close this connection.
        extra_config: "connections: {handshake_timeout: 120s, idle_timeout: 120s}\n".to_owned(),
        ..StackOptions::default()
    })
    .await;
    let mut silent = TcpStream::connect(stack.proxy).await.expect("connect");
    silent.write_all(H2_PREFACE).await.expect("preface");
    silent.write_all(H2_SETTINGS).await.expect("settings");
    let mut first = [0u8; 9];
    silent
        .read_exact(&mut first)
        .await
        .expect("the server's SETTINGS");
    // From here on the client reads nothing and answers nothing.
    stack.begin_shutdown();
    let served = tokio::time::timeout(PATIENCE, &mut stack.served).await;
    assert!(
        served.is_ok(),
        "shutdown waited for an idle HTTP/2 connection"
    );
    drop(silent);
}

/// An upstream that switches to any protocol it is asked for, then echoes bytes: the kind of
/// lenient server an unchecked tunnel would expose. Records the request heads it saw.
async fn lenient_upstream() -> (SocketAddr, Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&heads);
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
                    if tcp.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
                let upgrade = head
                    .lines()
                    .find_map(|l| l.strip_prefix("upgrade:"))
                    .map(|v| v.trim().to_owned());
                seen.lock().expect("lock").push(head);
                let answer = match upgrade {
                    Some(p) => format!(
                        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: {p}\r\n\r\n"
                    ),
                    None => "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                        .to_owned(),
                };
                let _ = tcp.write_all(answer.as_bytes()).await;
                let (mut r, mut w) = tcp.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    (addr, heads)
}

#[tokio::test]
async fn only_websocket_upgrades_are_tunnelled_every_other_spelling_is_forwarded_as_plain_http() {
    let (upstream, heads) = lenient_upstream().await;
    let stack = Stack::start_with(StackOptions {
        upstream_url: Some(format!("http://{upstream}")),
        ..StackOptions::default()
    })
    .await;
    let spellings = [
        "h2c",
        "H2C",
        "websocket, h2c",
        "h2c, websocket",
        "TLS/1.0",
        "HTTP/2.0",
        "websocket/13",
        "IRC/6.9",
    ];
    for spelling in spellings {
        let mut s = TcpStream::connect(stack.proxy).await.expect("connect");
        let req = format!(
            "GET {PUBLIC_PATH} HTTP/1.1\r\nHost: proxy.test\r\nConnection: Upgrade, HTTP2-Settings\r\n\
             Upgrade: {spelling}\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.expect("write");
        let mut answer = Vec::new();
        let mut buf = [0u8; 1024];
        let read = tokio::time::timeout(PATIENCE, async {
            while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
        assert!(read.is_ok(), "{spelling}: no answer");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 200"), "{spelling}: {answer}");
    }
    let heads = heads.lock().expect("lock");
    assert_eq!(heads.len(), spellings.len());
    for head in heads.iter() {
        assert!(
            !head.contains("upgrade:") && !head.contains("http2-settings"),
            "the upstream was offered an upgrade: {head}"
        );
    }
    // WebSocket upgrades are still relayed: proxy_streaming's WebSocket tests.
}
