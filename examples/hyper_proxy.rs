//! The IAM join layer in front of a plain hyper reverse proxy (streaming both ways).
//!
//! ```sh
//! UPSTREAM=http://127.0.0.1:8081 IAM_JOIN_STS_OVERRIDE=http://127.0.0.1:9443 \
//!   cargo run -p iam-join-examples --example hyper_proxy
//! ```
//! The upstream receives `x-iam-join-account`, `-arn`, `-user-id`, `-token`, `-roles`, `-region`;
//! never the proof, never a client-sent `x-iam-join-*` header. For a production proxy (TLS,
//! WebSockets, hop-by-hop headers, hot reload, metrics) use `iam-join-proxy`.

use hyper::body::Incoming;
use hyper::{Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use iam_join_tower::ClientAddr;
use tower::{Layer, ServiceBuilder};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().init();
    let upstream: Uri = std::env::var("UPSTREAM")
        .unwrap_or_else(|_| "http://127.0.0.1:8081".into())
        .parse()?;
    let layer = iam_join_examples::layer_from_env()?.clone();
    let client: Client<_, Incoming> = Client::builder(TokioExecutor::new()).build_http();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    println!(
        "listening on http://{} -> {upstream}",
        listener.local_addr()?
    );
    loop {
        let (stream, peer) = listener.accept().await?;
        let (client, upstream, layer) = (client.clone(), upstream.clone(), layer.clone());
        let forward = tower::service_fn(move |mut req: Request<Incoming>| {
            let (client, upstream) = (client.clone(), upstream.clone());
            async move {
                let mut parts = upstream.into_parts();
                parts.path_and_query = req.uri().path_and_query().cloned();
                if let Ok(uri) = Uri::from_parts(parts) {
                    *req.uri_mut() = uri;
                }
                req.headers_mut().remove(hyper::header::HOST);
                client.request(req).await
            }
        });
        let svc = ServiceBuilder::new()
            .map_request(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(ClientAddr(peer));
                req
            })
            .service(layer.layer(forward));
        tokio::spawn(async move {
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
                .await;
        });
    }
}
