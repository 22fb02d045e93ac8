//! # iam-join-core
//!
//! The verification core of IAM join, with no I/O: proof-token parsing and every local check
//! (URL, STS host allow-list, action, SigV4 shape, time window, binding), challenge issue and
//! verification, strict STS response parsing, caller identities, and the token policy with
//! linear-time ARN globs.
//!
//! Everything here is a plain function over plain types so it is easy to test, fuzz and bench.
//!
//! ```
//! use iam_join_core::check::{ProofRules, check_proof};
//! use iam_join_core::error::ErrorCode;
//!
//! let rules = ProofRules { audience: Some("my-cluster".into()), ..ProofRules::default() };
//! let err = check_proof("not-a-proof", &rules, time::OffsetDateTime::now_utc()).unwrap_err();
//! assert_eq!(err.code(), ErrorCode::MalformedProof);
//! ```
#![deny(unsafe_code, unreachable_pub)]
#![warn(missing_docs)]

pub mod challenge;
pub mod check;
pub mod error;
pub mod glob;
pub mod hosts;
pub mod identity;
pub mod names;
pub mod policy;
pub mod response;
pub mod token;
pub mod wire;

pub use challenge::{ChallengeClaims, ChallengeKey};
pub use check::{Binding, BindingKind, ProofRules, SignedStsRequest, SigningForm, check_proof};
pub use error::{ErrorCode, VerifyError};
pub use hosts::{Partition, StsHost, StsHostAllowList};
pub use identity::{CallerIdentity, PrincipalType, StsAnswer, VerifiedIdentity};
pub use names::{Audience, Region, TokenName};
pub use response::{StsFailure, parse_sts_response};
pub use token::{ProofFormat, RawSignedRequest, decode_proof_token};
