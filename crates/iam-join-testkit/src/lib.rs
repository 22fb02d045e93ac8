//! Test harness shared by the iam-join workspace's tests and benchmarks, so that each test file
//! does not write it again:
//!
//! - [`policy`]: the seed token policy (`crates/iam-join-core/tests/fixtures/token.yaml`);
//! - [`identities`]: the sts-emulator's default identities by name;
//! - [`sign`]: proofs signed by hand with aws-sigv4, for shapes the client library refuses to
//!   make;
//! - [`http`]: an echo inner service and a one-shot sender through an `IamJoinLayer`;
//! - [`redis_server`]: a real `redis-server` on a free loopback port, killed on drop;
//! - [`front_proxy`]: a real nginx or Caddy on a free loopback port, for `/verify` mode.
//!
//! Dev-only: used as a dev-dependency (or by the test-only and bench-only crates), never
//! published. Helpers panic with a message instead of returning errors.
#![deny(unsafe_code, unreachable_pub)]
#![warn(missing_docs)]

pub mod front_proxy;
pub mod http;
pub mod identities;
pub mod policy;
pub mod redis_server;
pub mod sign;
