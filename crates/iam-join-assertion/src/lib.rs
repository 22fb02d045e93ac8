//! Signed identity assertions for requests admitted by IAM join (DESIGN §4 step 11).
//!
//! The verifier side ([`AssertionSigner`]) turns a [`VerifiedIdentity`](iam_join_core::VerifiedIdentity)
//! into a short-lived JWT (compact JWS, ES256 by default or EdDSA) that travels to the upstream
//! in `x-iam-join-assertion`, and publishes the public keys as a JWKS (RFC 7517). Signing is
//! cached per identity × token × audience, so a cache hit on the proof does not sign again.
//!
//! The upstream side (feature `verifier`) checks the assertion against that JWKS:
//! [`AssertionVerifier`], a tower [`AssertionLayer`], and with feature `axum` the
//! [`VerifiedAssertion`] extractor. So an upstream trusts a signature, not the network path.
//!
//! ```
//! # use iam_join_assertion::{AssertionConfig, AssertionSigner, KeySet, SigningAlgorithm};
//! let config = AssertionConfig::new("https://iam-join.example.internal", ["orders-api"])?;
//! let signer = AssertionSigner::new(config, KeySet::generate(SigningAlgorithm::Es256)?);
//! // per admitted request: signer.assertion_for(&verified_identity, now)?
//! // at {prefix}/jwks.json and /.well-known/jwks.json: signer.jwks_json()
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(unsafe_code, unreachable_pub)]
#![warn(missing_docs)]

pub mod claims;
pub mod config;
pub mod keys;
pub mod signer;
#[cfg(feature = "verifier")]
pub mod verify;

pub use claims::{AssertionClaims, Audiences};
pub use config::{AssertionConfig, ConfigError};
pub use keys::{AssertionKey, KeyError, KeySet, SigningAlgorithm};
pub use signer::{AssertionSigner, SignError, SignedAssertion};
#[cfg(feature = "verifier")]
pub use verify::{
    AssertionError, AssertionLayer, AssertionService, AssertionVerifier, HttpJwks, JwksError,
    JwksSource, StaticJwks, VerifiedAssertion,
};
