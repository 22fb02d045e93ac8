//! Proof tokens on the wire (DESIGN §3, §4 step 1): `iam-join-v1.` and `k8s-aws-v1.`.
//!
//! Decoding is strict: a size cap, unpadded base64url with no trailing bits, JSON with exactly
//! the four known fields, no duplicate keys (header names compared ignoring ASCII case), and
//! header names and values that could be sent as HTTP headers.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::error::{ErrorCode, VerifyError, malformed};

/// Prefix of the native proof token (base64url of a JSON signed request).
pub const IAM_JOIN_V1_PREFIX: &str = "iam-join-v1.";
/// Prefix of the EKS token (base64url of a presigned GET URL), as `aws eks get-token` prints it.
pub const K8S_AWS_V1_PREFIX: &str = "k8s-aws-v1.";
/// Largest accepted proof token, in bytes, prefix included.
pub const MAX_PROOF_TOKEN_BYTES: usize = 16 * 1024;

/// Which token format a proof came in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProofFormat {
    /// `iam-join-v1.`: a JSON signed request (signed POST or presigned GET).
    IamJoinV1,
    /// `k8s-aws-v1.`: a presigned GET URL; the binding header `x-k8s-aws-id` is supplied by the
    /// verifier.
    K8sAwsV1,
}

/// The decoded, not yet checked, signed request of a proof token.
///
/// Header names are lowercased; their order is as given.
#[derive(Clone, PartialEq, Eq)]
pub struct RawSignedRequest {
    /// The format the token came in.
    pub format: ProofFormat,
    /// `POST` or `GET`, as given.
    pub method: String,
    /// The full URL, as given.
    pub url: String,
    /// Headers, names lowercased, without duplicates.
    pub headers: Vec<(String, String)>,
    /// The body, as given.
    pub body: String,
}

impl fmt::Debug for RawSignedRequest {
    // Never print header values or the URL's query: they hold signatures and session tokens.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawSignedRequest")
            .field("format", &self.format)
            .field("method", &self.method)
            .field(
                "header_names",
                &self
                    .headers
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl RawSignedRequest {
    /// The value of header `name` (lowercase), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Encodes as an `iam-join-v1.` token (used by clients, tests and benches).
    pub fn to_iam_join_v1_token(&self) -> String {
        let wire = WireRequest {
            method: self.method.clone(),
            url: self.url.clone(),
            headers: HeaderList(self.headers.clone()),
            body: self.body.clone(),
        };
        // Serializing strings and a list of string pairs cannot fail.
        let json = serde_json::to_vec(&wire).unwrap_or_default();
        format!("{IAM_JOIN_V1_PREFIX}{}", URL_SAFE_NO_PAD.encode(json))
    }
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct WireRequest {
    method: String,
    url: String,
    headers: HeaderList,
    body: String,
}

/// A JSON object of headers read in order, rejecting names equal ignoring ASCII case.
struct HeaderList(Vec<(String, String)>);

impl Serialize for HeaderList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

impl<'de> Deserialize<'de> for HeaderList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = HeaderList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of header names to string values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<HeaderList, A::Error> {
                let mut out: Vec<(String, String)> = Vec::new();
                while let Some((name, value)) = map.next_entry::<String, String>()? {
                    if !is_header_name(&name) {
                        return Err(de::Error::custom(format_args!(
                            "header name {:?} is not a valid HTTP header name",
                            crate::hosts::printable(&name)
                        )));
                    }
                    let name = name.to_ascii_lowercase();
                    if out.iter().any(|(n, _)| *n == name) {
                        return Err(de::Error::custom(format_args!(
                            "duplicate header {name:?} (header names are compared ignoring case)"
                        )));
                    }
                    if !is_header_value(&value) {
                        return Err(de::Error::custom(format_args!(
                            "header {name:?} has a value that is not a valid HTTP header value"
                        )));
                    }
                    out.push((name, value));
                }
                Ok(HeaderList(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// An RFC 9110 token. No length limit of its own: the token's size limit bounds it, and length
/// alone never makes an (unsigned, dropped) header a reason to reject a proof (DESIGN §3).
pub(crate) fn is_header_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Visible ASCII, space and tab, no leading or trailing white space. Stricter than RFC 9110
/// (which allows obs-text) because nothing in a SigV4 request needs more. No length limit: a
/// value up to the whole token's 16 KiB is valid (issue 10, finding 7).
pub(crate) fn is_header_value(s: &str) -> bool {
    s.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
        && s.trim_matches([' ', '\t']).len() == s.len()
}

/// Decodes a proof token (the value after `Bearer `, or of `X-IAM-Join-Proof`).
///
/// Only step 1 of the pipeline: size, prefix, base64url, JSON shape. Everything else is checked
/// by [`crate::check::check_proof`].
pub fn decode_proof_token(token: &str) -> Result<RawSignedRequest, VerifyError> {
    if token.is_empty() {
        return Err(VerifyError::new(
            ErrorCode::MissingProof,
            "empty proof token",
        ));
    }
    if token.len() > MAX_PROOF_TOKEN_BYTES {
        return Err(malformed(format!(
            "proof token is too long: {} bytes; the limit is {MAX_PROOF_TOKEN_BYTES}",
            token.len()
        )));
    }
    if let Some(payload) = token.strip_prefix(IAM_JOIN_V1_PREFIX) {
        let json = decode_b64(payload)?;
        let wire: WireRequest = serde_json::from_slice(&json)
            .map_err(|e| malformed(format!("proof JSON: {}", json_error_without_input(&e))))?;
        Ok(RawSignedRequest {
            format: ProofFormat::IamJoinV1,
            method: wire.method,
            url: wire.url,
            headers: wire.headers.0,
            body: wire.body,
        })
    } else if let Some(payload) = token.strip_prefix(K8S_AWS_V1_PREFIX) {
        let url = decode_b64(payload)?;
        let url = String::from_utf8(url)
            .map_err(|_| malformed("k8s-aws-v1 token does not hold a UTF-8 URL"))?;
        Ok(RawSignedRequest {
            format: ProofFormat::K8sAwsV1,
            method: "GET".to_owned(),
            url,
            headers: Vec::new(),
            body: String::new(),
        })
    } else {
        Err(malformed(format!(
            "unknown proof token format; expected a token starting with {IAM_JOIN_V1_PREFIX:?} or {K8S_AWS_V1_PREFIX:?}"
        )))
    }
}

fn decode_b64(payload: &str) -> Result<Vec<u8>, VerifyError> {
    if payload.is_empty() {
        return Err(malformed("proof token has nothing after its prefix"));
    }
    URL_SAFE_NO_PAD.decode(payload).map_err(|_| {
        malformed("proof token is not unpadded base64url (alphabet A-Z a-z 0-9 - _, no '=')")
    })
}

/// serde_json's messages quote the offending input only by position, never by content.
fn json_error_without_input(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    // Custom messages from our visitor are safe; serde's own messages may include an
    // "invalid type: string \"...\"" with content, so keep only the category for those.
    if msg.starts_with("invalid type") || msg.starts_with("invalid value") {
        format!("wrong JSON type at line {} column {}", e.line(), e.column())
    } else {
        msg
    }
}

/// Extracts the proof token from a carrier header value: `Bearer <token>` for
/// `Authorization` (scheme case-insensitive, one space), the bare token for `X-IAM-Join-Proof`.
pub fn token_from_authorization(value: &str) -> Option<&str> {
    let (scheme, rest) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(json: &str) -> String {
        format!("{IAM_JOIN_V1_PREFIX}{}", URL_SAFE_NO_PAD.encode(json))
    }

    #[test]
    fn decodes_a_well_formed_token() {
        let t = enc(
            r#"{"method":"POST","url":"https://sts.amazonaws.com/","headers":{"X-Amz-Date":"x"},"body":"b"}"#,
        );
        let r = decode_proof_token(&t).unwrap();
        assert_eq!(r.method, "POST");
        assert_eq!(r.header("x-amz-date"), Some("x"));
    }

    #[test]
    fn round_trips_through_encoding() {
        let r = RawSignedRequest {
            format: ProofFormat::IamJoinV1,
            method: "POST".into(),
            url: "https://sts.amazonaws.com/".into(),
            headers: vec![("a".into(), "1".into()), ("b".into(), "2".into())],
            body: "x".into(),
        };
        assert_eq!(decode_proof_token(&r.to_iam_join_v1_token()).unwrap(), r);
    }

    #[test]
    fn rejects_case_variant_duplicate_headers() {
        let t = enc(
            r#"{"method":"POST","url":"u","headers":{"x-amz-date":"1","X-Amz-Date":"2"},"body":""}"#,
        );
        let e = decode_proof_token(&t).unwrap_err();
        assert_eq!(e.code(), ErrorCode::MalformedProof);
        assert!(e.message().contains("duplicate header"), "{e}");
    }

    #[test]
    fn rejects_duplicate_top_level_keys() {
        let t = enc(r#"{"method":"POST","method":"GET","url":"u","headers":{},"body":""}"#);
        assert_eq!(
            decode_proof_token(&t).unwrap_err().code(),
            ErrorCode::MalformedProof
        );
    }

    #[test]
    fn rejects_unknown_fields() {
        let t = enc(r#"{"method":"POST","url":"u","headers":{},"body":"","extra":1}"#);
        assert_eq!(
            decode_proof_token(&t).unwrap_err().code(),
            ErrorCode::MalformedProof
        );
    }

    #[test]
    fn rejects_padding_and_standard_alphabet() {
        let good = enc(r#"{"method":"POST","url":"u","headers":{},"body":""}"#);
        assert!(decode_proof_token(&format!("{good}=")).is_err());
        assert!(decode_proof_token(&good.replace('-', "+")).is_err() || !good.contains('-'));
        assert!(decode_proof_token("iam-join-v1.a+b/").is_err());
    }

    #[test]
    fn rejects_oversize_tokens() {
        let t = format!("{IAM_JOIN_V1_PREFIX}{}", "A".repeat(MAX_PROOF_TOKEN_BYTES));
        let e = decode_proof_token(&t).unwrap_err();
        assert!(e.message().contains("too long"), "{e}");
    }

    #[test]
    fn long_header_values_and_names_are_not_a_reason_to_reject() {
        // Issue 10 finding 7: only the token's 16 KiB limit bounds a header.
        let value = "v".repeat(10 * 1024);
        let name = "x".repeat(300);
        let t = enc(&format!(
            r#"{{"method":"POST","url":"u","headers":{{"x-pad":"{value}","{name}":"1"}},"body":""}}"#
        ));
        let r = decode_proof_token(&t).unwrap();
        assert_eq!(r.header("x-pad").map(str::len), Some(10 * 1024));
        assert_eq!(r.header(&name), Some("1"));
    }

    #[test]
    fn rejects_nul_in_header_values() {
        let t = enc(r#"{"method":"POST","url":"u","headers":{"a":"x\u0000y"},"body":""}"#);
        assert!(decode_proof_token(&t).is_err());
    }

    #[test]
    fn rejects_unknown_prefix_and_empty_payload() {
        assert!(decode_proof_token("iam-join-v2.abc").is_err());
        assert!(decode_proof_token("iam-join-v1.").is_err());
        assert_eq!(
            decode_proof_token("").unwrap_err().code(),
            ErrorCode::MissingProof
        );
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(token_from_authorization("Bearer abc"), Some("abc"));
        assert_eq!(token_from_authorization("bearer abc"), Some("abc"));
        assert_eq!(token_from_authorization("Basic abc"), None);
    }
}
