//! The IAM join layer in front of an axum app.
//!
//! ```sh
//! cargo run -p sts-emulator -- --listen 127.0.0.1:9443 &          # or use real AWS STS
//! IAM_JOIN_STS_OVERRIDE=http://127.0.0.1:9443 cargo run -p iam-join-examples --example axum_app
//! curl -H "Authorization: Bearer $(iam-join token --audience example.local)" http://127.0.0.1:3000/
//! ```

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request};
use axum::{Extension, Router, routing::get};
use iam_join_core::VerifiedIdentity;
use iam_join_tower::ClientAddr;

async fn hello(Extension(id): Extension<VerifiedIdentity>) -> String {
    format!(
        "hello {} (account {}, token {}, roles {})\n",
        id.identity.arn(),
        id.identity.account(),
        id.token,
        id.roles.join(",")
    )
}

/// Passes axum's peer address to the layer (for the per-client rate limit).
async fn client_addr(mut req: Request) -> Request {
    if let Some(ConnectInfo(addr)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() {
        req.extensions_mut().insert(ClientAddr(addr));
    }
    req
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().init();
    let layer = iam_join_examples::layer_from_env()?;
    let app = Router::new()
        .route("/", get(hello))
        .layer(layer)
        .layer(axum::middleware::map_request(client_addr));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
