//! The client's side of the proof-token wire form (DESIGN §3).
//!
//! Encoding and decoding `iam-join-v1.` tokens belongs to [`iam_join_core::token`], so the client
//! and the verifier share one definition of the format and one strict decoder. This module adds
//! only what the core does not have: URL accessors for a signed request and the `k8s-aws-v1.`
//! encoder.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use iam_join_core::token::{K8S_AWS_V1_PREFIX, RawSignedRequest};

/// The host and the path of a [`SignedStsRequest`](crate::SignedStsRequest)'s URL, e.g. to send
/// the request yourself (with the signed `Host`) or to see which endpoint it was signed for.
///
/// ```
/// use iam_join_client::{ProofFormat, SignedStsRequest, SignedStsRequestExt};
///
/// let req = SignedStsRequest {
///     format: ProofFormat::IamJoinV1,
///     method: "GET".into(),
///     url: "https://sts.us-west-2.amazonaws.com/?Action=GetCallerIdentity".into(),
///     headers: Vec::new(),
///     body: String::new(),
/// };
/// assert_eq!(req.host(), Some("sts.us-west-2.amazonaws.com"));
/// assert_eq!(req.path_and_query(), Some("/?Action=GetCallerIdentity"));
/// ```
pub trait SignedStsRequestExt {
    /// The host of the URL; `None` unless the URL starts with `https://`.
    fn host(&self) -> Option<&str>;

    /// The path and query of the URL (`/` or `/?Action=...`); `None` unless the URL starts with
    /// `https://`.
    fn path_and_query(&self) -> Option<&str>;
}

impl SignedStsRequestExt for RawSignedRequest {
    fn host(&self) -> Option<&str> {
        let rest = self.url.strip_prefix("https://")?;
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        Some(&rest[..end])
    }

    fn path_and_query(&self) -> Option<&str> {
        let rest = self.url.strip_prefix("https://")?;
        Some(rest.find('/').map_or("/", |i| &rest[i..]))
    }
}

/// Encodes a presigned URL as a `k8s-aws-v1.` token (base64url without padding, as
/// `aws eks get-token` prints it). The core only decodes this format.
pub(crate) fn encode_k8s_token(url: &str) -> String {
    format!("{K8S_AWS_V1_PREFIX}{}", URL_SAFE_NO_PAD.encode(url))
}

#[cfg(test)]
mod tests {
    use iam_join_core::token::{ProofFormat, decode_proof_token};

    use super::*;

    fn sample() -> RawSignedRequest {
        RawSignedRequest {
            format: ProofFormat::IamJoinV1,
            method: "GET".into(),
            url:
                "https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&X-Amz-Signature=abc"
                    .into(),
            headers: vec![("x-iam-join-audience".into(), "a".into())],
            body: String::new(),
        }
    }

    #[test]
    fn url_parts_are_split_at_the_path() {
        let req = sample();
        assert_eq!(req.host(), Some("sts.us-east-1.amazonaws.com"));
        assert_eq!(
            req.path_and_query(),
            Some("/?Action=GetCallerIdentity&X-Amz-Signature=abc")
        );
    }

    #[test]
    fn url_parts_need_an_https_url() {
        let req = RawSignedRequest {
            url: "http://sts.us-east-1.amazonaws.com/".into(),
            ..sample()
        };
        assert_eq!(req.host(), None);
        assert_eq!(req.path_and_query(), None);
    }

    #[test]
    fn k8s_tokens_are_unpadded_and_decode_with_the_cores_strict_decoder() {
        // 61 bytes, so padded base64 would end in "=".
        let url = "https://sts.us-west-2.amazonaws.com/?Action=GetCallerIdentity";
        let token = encode_k8s_token(url);
        assert!(token.starts_with("k8s-aws-v1."));
        assert!(!token.contains('='));
        let decoded = decode_proof_token(&token).unwrap();
        assert_eq!(decoded.format, ProofFormat::K8sAwsV1);
        assert_eq!(decoded.url, url);
    }

    #[test]
    fn debug_output_hides_signature_and_header_values() {
        // The crate docs promise this of `SignedStsRequest`; it is the core's `Debug` now.
        let mut req = sample();
        req.headers
            .push(("x-amz-security-token".into(), "SECRET-TOKEN".into()));
        let dbg = format!("{req:?}");
        assert!(!dbg.contains("abc"));
        assert!(!dbg.contains("SECRET-TOKEN"));
        assert!(dbg.contains("x-amz-security-token"));
    }
}
