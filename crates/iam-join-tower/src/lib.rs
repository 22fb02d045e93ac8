//! # iam-join-tower
//!
//! A tower layer that admits AWS workloads by **IAM join**: the client sends a SigV4-signed
//! `sts:GetCallerIdentity` request (a *proof*) that it made with its own credentials; the layer
//! checks it locally, forwards it to AWS STS, reads the identity STS vouches for, and matches it
//! against Teleport-style join tokens. No shared secret, no AWS credentials on the verifier.
//!
//! ```no_run
//! use iam_join_core::policy::TokenPolicy;
//! use iam_join_tower::IamJoinLayer;
//! use iam_join_core::VerifiedIdentity;
//! use axum::{Router, routing::get, Extension};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let policy = TokenPolicy::load("tokens/".as_ref())?;
//! let layer = IamJoinLayer::builder()
//!     .audience("teleport.example.com")
//!     .default_token("iam-token")
//!     .policy(policy)
//!     .build()?;
//! let app: Router = Router::new()
//!     .route("/", get(|Extension(id): Extension<VerifiedIdentity>| async move {
//!         format!("hello {}", id.identity.arn())
//!     }))
//!     .layer(layer);
//! # Ok(()) }
//! ```
//!
//! Pipeline (DESIGN §4): carrier and token → URL, host, action, SigV4 shape, time → binding
//! (audience, or a single-use challenge recorded in a [`ReplayStore`]) → rate limits on work
//! that needs STS → cache (audience-bound proofs; concurrent misses coalesced into one STS
//! call) or STS → token policy → the inner service, with a [`VerifiedIdentity`] extension.
//! A denial is an ordinary response: `{"error": {"code", "message"}}` with the status of
//! [`iam_join_core::ErrorCode::http_status`].
//!
//! [`VerifiedIdentity`]: iam_join_core::VerifiedIdentity
#![deny(unsafe_code, unreachable_pub)]
#![warn(missing_docs)]

// Modules named in paths by other crates stay public; the rest are private, with the items
// callers need re-exported below.
pub mod audit;
pub mod cache;
mod error;
mod future;
pub mod hop_by_hop;
mod layer;
pub mod log_summary;
pub mod metrics;
pub mod organizations;
mod policy;
pub mod ratelimit;
#[cfg(feature = "redis")]
pub mod redis;
mod replay;
mod service;
mod spans;
pub mod sts;
pub mod verifier;

pub use error::{BuildError, Denial};
pub use future::ResponseFuture;
pub use layer::{DEFAULT_PREFIX, IamJoinLayer, IamJoinLayerBuilder};
pub use policy::PolicyHandle;
pub use ratelimit::{LimitScope, Rate, RateLimits};
pub use replay::{MemoryReplayStore, ReplayStore, ReplayStoreError};
pub use service::carrier::{
    IDENTITY_HEADER_PREFIX, PROOF_HEADER, TOKEN_HEADER, strip_identity_headers,
};
pub use service::endpoints::set_identity_headers;
pub use service::routes::{InvalidPathPattern, PathPattern};
pub use service::{ClientAddr, IamJoinBody, IamJoinService};
pub use sts::{HyperStsClient, StsClient, StsClientConfig};
pub use verifier::{Verifier, VerifyRequest};
