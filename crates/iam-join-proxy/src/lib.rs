//! # iam-join-proxy
//!
//! A reverse proxy that puts the [`IamJoinLayer`](iam_join_tower::IamJoinLayer) in front of an
//! upstream, typically a cluster's web port: every request must carry a proof of AWS identity
//! (a SigV4-signed `sts:GetCallerIdentity` request) that the token policy allows; admitted
//! requests reach the upstream with the verified identity in `x-iam-join-*` headers and without
//! the proof.
//!
//! The binary's subcommands are `run --config FILE`, `check-config --config FILE`,
//! `check-tokens PATH [--format json]` and `demo`. The library is what they are made of, and what end-to-end
//! tests drive:
//!
//! ```no_run
//! # async fn f() -> Result<(), iam_join_proxy::ProxyError> {
//! use iam_join_proxy::{Config, Proxy};
//!
//! let config = Config::load("deploy/config.yaml".as_ref())?;
//! let proxy = Proxy::bind(config).await?;
//! println!("listening on {}", proxy.local_addr());
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! # drop(stop);
//! proxy.serve(async { let _ = stopped.await; }).await?; // returns after draining
//! # Ok(()) }
//! ```
//!
//! What it does to a request:
//! - the layer (DESIGN §4) verifies the proof, strips every incoming `x-iam-join-*` header and
//!   the proof's carrier, and sets `x-iam-join-account`, `-arn`, `-user-id`, `-token`, `-roles`,
//!   `-region`;
//! - the [`Forwarder`](forward::Forwarder) streams the request to the upstream over HTTP/1.1
//!   without buffering, removes hop-by-hop headers, sets `X-Forwarded-For` / `-Proto` / `-Host`,
//!   relays `Upgrade` (WebSocket) connections, and answers `502 upstream_unavailable` or
//!   `504 upstream_timeout` in the DESIGN §8 JSON shape when the upstream fails.
//!
//! Operations: graceful shutdown ([`Proxy::serve`]), policy hot reload on file change
//! ([`reload`]) or on demand ([`ProxyHandle::reload_policy`], SIGHUP in the binary), an admin
//! listener with `/metrics`, `/healthz` and `/readyz` ([`admin`]).
#![deny(unsafe_code, unreachable_pub)]
#![warn(missing_docs)]

pub mod admin;
pub mod audit;
mod body;
pub mod check_tokens;
pub mod config;
mod conn;
pub mod demo;
pub mod error;
pub mod forward;
pub mod proxy;
pub mod reload;
pub mod telemetry;
pub mod tls;

use std::future::Future;

pub use check_tokens::describe_tokens;
pub use config::{Config, ConfigError, TokenSource};
pub use error::ProxyError;
pub use proxy::{Proxy, ProxyHandle, check_config};

/// Binds and serves `config` until `shutdown` resolves, then drains (see [`Proxy::serve`]).
///
/// # Errors
///
/// See [`Proxy::bind`].
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ProxyError> {
    Proxy::bind(config).await?.serve(shutdown).await
}
