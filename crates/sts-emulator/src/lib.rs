//! # sts-emulator
//!
//! A loopback AWS STS for tests, benches and the demo. It answers `GetCallerIdentity` only, and
//! it really verifies SigV4: the signature of every request is recomputed with aws-sigv4 from the
//! request exactly as received and compared in constant time. Both signing forms STS accepts are
//! supported: a signed `POST` (auth in the `Authorization` header, form body
//! `Action=GetCallerIdentity&Version=2011-06-15`) and a presigned `GET` (auth in the `X-Amz-*`
//! query parameters).
//!
//! The emulator listens only on loopback addresses and accepts any `Host`, so a verifier can keep
//! the signed `Host` (e.g. `sts.us-west-2.amazonaws.com`) while connecting to `127.0.0.1:PORT`.
//! For the AWS STS hostnames it also checks, as STS does, that the credential scope names the
//! host's region.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use sts_emulator::{Emulator, Fault};
//!
//! let sts = Emulator::start().await?; // 127.0.0.1:0, default_identities()
//! let url = sts.url(); // point the verifier's STS override here
//! # let _ = url;
//! sts.set_fault(Fault::Throttle); // every answer is now 400 Throttling
//! sts.set_fault(Fault::None);
//! assert_eq!(sts.calls(), 0);
//! sts.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! The same port also answers AWS Organizations' `DescribeAccount` and `ListParents` (requests
//! whose `X-Amz-Target` names an Organizations operation) over a tree set with
//! [`EmulatorHandle::set_org_tree`], verifying SigV4 the same way; see [`OrgTree`].
//!
//! ## Answers
//!
//! 200 with `Account`, `Arn`, `UserId` in STS's XML (`text/xml`), or in STS's JSON
//! (`application/json`) when the request's `Accept` names `application/json`. Errors use STS's
//! `ErrorResponse` shape in the same format. The codes:
//!
//! | Situation | Status | Code |
//! |---|---|---|
//! | no `Authorization` header and no `X-Amz-Algorithm` query parameter | 403 | `MissingAuthenticationToken` |
//! | both auth forms, malformed header/query auth, bad `X-Amz-Date`, `X-Amz-Expires` not in 1..=604800, `host` not signed | 400 | `IncompleteSignature` |
//! | unknown access key id | 403 | `InvalidClientTokenId` |
//! | temporary key without its session token, with a different one, or a long-term key with one | 403 | `InvalidClientTokenId` |
//! | the key's session was marked expired ([`EmulatorHandle::expire_session`]) | 403 | `ExpiredToken` |
//! | service not `sts`, region not the STS host's, scope date not `X-Amz-Date`'s | 403 | `SignatureDoesNotMatch` |
//! | `X-Amz-Date` more than 15 minutes from the emulator's now | 403 | `SignatureDoesNotMatch` ("Signature expired: ..." / "Signature not yet current: ...") |
//! | presigned request past `X-Amz-Date + X-Amz-Expires` | 403 | `AccessDenied` ("Request has expired") |
//! | recomputed signature differs (a signed header changed, wrong secret, a signed header missing) | 403 | `SignatureDoesNotMatch` |
//! | action not `GetCallerIdentity` or version not `2011-06-15` (checked after the signature) | 400 | `InvalidAction` |
//! | [`Fault::Throttle`] | 400 | `Throttling` ("Rate exceeded") |
//! | [`Fault::ServerError`] | 500 | `InternalFailure` |
//! | body over [`MAX_BODY_BYTES`] | 413 | `RequestEntityTooLarge` |
//! | path other than `/` (not counted in [`EmulatorHandle::calls`]) | 404 | `NotFound` |
//!
//! ## Signature recomputation
//!
//! Only the headers named in `SignedHeaders` are passed to aws-sigv4, with their received values
//! (`host` from the received `Host`, byte for byte: an added `:443` would not match), with
//! `excluded_headers = None`. A presigned request has its seven `X-Amz-*` auth parameters
//! removed and is presigned again with the same `X-Amz-Expires` and an empty body. As aws-sigv4
//! does, a header-signed request from a temporary key must have signed `x-amz-date` and
//! `x-amz-security-token`.
#![deny(unsafe_code, unreachable_pub)]
#![warn(missing_docs)]

mod error;
mod identity;
mod organizations;
mod response;
mod server;
mod verify;

pub use identity::{TestIdentity, default_identities, keys};
pub use organizations::{OrgFault, OrgTree};
pub use server::{Emulator, EmulatorBuilder, EmulatorHandle, Fault, MAX_BODY_BYTES};
