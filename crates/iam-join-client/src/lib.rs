//! # iam-join-client
//!
//! The joining side of IAM join: load AWS credentials, sign an `sts:GetCallerIdentity` request
//! with aws-sigv4 **without sending it**, and hand it to a verifier as a proof token
//! (`iam-join-v1.…`, DESIGN §3). The verifier sends it to STS, which checks the signature and
//! names the caller.
//!
//! ```
//! use std::time::SystemTime;
//! use aws_credential_types::Credentials;
//! use iam_join_client::{Binding, ProofBuilder, SigningForm, decode_proof_token, sts_endpoint};
//!
//! let creds = Credentials::from_keys("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", None);
//! let token = ProofBuilder::new(
//!     sts_endpoint("us-west-2", false)?,
//!     Binding::Audience("teleport.example.com".into()),
//! )
//! .form(SigningForm::presigned_get())
//! .time(SystemTime::now())
//! .build(&creds)?;
//!
//! let signed = decode_proof_token(&token)?;
//! assert_eq!(signed.method, "GET");
//! assert_eq!(signed.header("x-iam-join-audience"), Some("teleport.example.com"));
//! # Ok::<(), iam_join_client::ClientError>(())
//! ```
//!
//! The token format itself, [`SignedStsRequest`] and [`decode_proof_token`] come from
//! [`iam_join_core::token`], so the client writes exactly what the verifier reads; the decoder
//! is the verifier's strict one (unpadded base64url, the four JSON fields only, header names
//! lowercased and never repeated, a size cap).
//!
//! With the `aws-config` feature (default), [`load_credentials`] reads credentials from the
//! standard AWS sources (environment, shared files, IRSA, ECS/EKS Pod Identity, IMDSv2).
//! [`VerifierClient`] (or the [`fetch_challenge`] and [`whoami`] shortcuts) talks to a verifier.
//! The `iam-join` binary (features `cli` and `aws-config`) wraps all of it.
//!
//! Nothing here logs or displays credentials, signatures or session tokens; `Debug` of
//! [`SignedStsRequest`] shows the method and header names only. The library installs no global
//! TLS crypto provider: its HTTP client uses rustls' ring provider explicitly.
#![deny(unsafe_code, unreachable_pub)]
#![warn(missing_docs)]

mod endpoint;
mod error;
mod proof;
mod verifier;
mod wire;

#[cfg(feature = "aws-config")]
mod credentials;
#[cfg(feature = "teleport-config")]
mod teleport_config;

pub use endpoint::{DEFAULT_REGION, StsEndpoint, sts_endpoint};
pub use error::ClientError;
pub use proof::{
    AUDIENCE_HEADER, Binding, CHALLENGE_HEADER, DEFAULT_PRESIGN_EXPIRY, FORM_CONTENT_TYPE,
    GET_CALLER_IDENTITY_QUERY, K8S_CLUSTER_ID_HEADER, K8S_TOKEN_EXPIRY, MAX_PRESIGN_EXPIRY,
    ProofBuilder, SigningForm, k8s_token, k8s_token_for_endpoint,
};
pub use verifier::{
    Challenge, DEFAULT_CONNECT_TIMEOUT, DEFAULT_PREFIX, DEFAULT_TIMEOUT, TOKEN_NAME_HEADER,
    VerifierClient, WhoAmI, fetch_challenge, whoami,
};
pub use wire::SignedStsRequestExt;

/// Prefix of an iam-join proof token.
#[doc(inline)]
pub use iam_join_core::token::IAM_JOIN_V1_PREFIX as PROOF_TOKEN_PREFIX;
/// Prefix of an EKS-style token (`aws eks get-token`).
#[doc(inline)]
pub use iam_join_core::token::K8S_AWS_V1_PREFIX as K8S_TOKEN_PREFIX;
/// A signed `sts:GetCallerIdentity` request that was made but not sent: the content of a proof
/// token. [`ProofBuilder::sign`] makes one, [`SignedStsRequest::to_iam_join_v1_token`] encodes
/// it and [`decode_proof_token`] reads it back.
///
/// Its `Debug` output shows the format, the method and the header names only, never the
/// signature, the session token or the URL.
#[doc(inline)]
pub use iam_join_core::token::RawSignedRequest as SignedStsRequest;
#[doc(inline)]
pub use iam_join_core::token::{ProofFormat, decode_proof_token};
/// The verifier's wire types and checked names, shared so client and server cannot drift.
#[doc(inline)]
pub use iam_join_core::wire::{ErrorBody, WhoAmIBody};
#[doc(inline)]
pub use iam_join_core::{Audience, Partition, Region, TokenName};

#[cfg(feature = "aws-config")]
pub use credentials::load_credentials;
#[cfg(feature = "teleport-config")]
pub use teleport_config::TeleportAgentConfig;

/// The region to sign for: `explicit` if given, else `loaded` (from [`load_credentials`]),
/// else [`DEFAULT_REGION`] with a warning, as Teleport does.
///
/// ```
/// assert_eq!(iam_join_client::region_or_default(Some("eu-west-1"), Some("us-west-2")), "eu-west-1");
/// assert_eq!(iam_join_client::region_or_default(None, Some("us-west-2")), "us-west-2");
/// assert_eq!(iam_join_client::region_or_default(None, None), "us-east-1");
/// ```
pub fn region_or_default(explicit: Option<&str>, loaded: Option<&str>) -> String {
    if let Some(region) = explicit.or(loaded) {
        return region.to_owned();
    }
    tracing::warn!(
        "no AWS region found (AWS_REGION, AWS_DEFAULT_REGION, profile, instance metadata); \
         signing for {DEFAULT_REGION}. This fails outside the aws partition: set AWS_REGION or pass --region"
    );
    DEFAULT_REGION.to_owned()
}
