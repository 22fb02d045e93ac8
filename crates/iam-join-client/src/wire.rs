//! The proof token's wire form (DESIGN §3): `iam-join-v1.` + base64url (no padding) of a JSON
//! object `{"method", "url", "headers", "body"}`.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose::URL_SAFE_NO_PAD};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use crate::ClientError;

/// Prefix of an iam-join proof token.
pub const PROOF_TOKEN_PREFIX: &str = "iam-join-v1.";

/// Prefix of an EKS-style token (`aws eks get-token`).
pub const K8S_TOKEN_PREFIX: &str = "k8s-aws-v1.";

/// Decodes base64url with or without padding (for reading tokens only; we always write without).
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A signed `sts:GetCallerIdentity` request that was made but not sent: the content of a proof
/// token.
///
/// Its `Debug` output shows the method, host and header names only, never the signature, the
/// session token or the query string.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedStsRequest {
    /// `POST` or `GET`.
    pub method: String,
    /// `https://<sts host>/`, with the presigned query for `GET`.
    pub url: String,
    /// Lowercase header names and their values, each name once; `host` is not among them (it is
    /// the URL's host).
    pub headers: Vec<(String, String)>,
    /// The form body for `POST`, empty for `GET`.
    pub body: String,
}

impl SignedStsRequest {
    /// The value of a header, by lowercase name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The host of [`SignedStsRequest::url`].
    pub fn host(&self) -> Option<&str> {
        let rest = self.url.strip_prefix("https://")?;
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        Some(&rest[..end])
    }

    /// The path and query of [`SignedStsRequest::url`] (`/` or `/?Action=...`).
    pub fn path_and_query(&self) -> Option<&str> {
        let rest = self.url.strip_prefix("https://")?;
        Some(rest.find('/').map_or("/", |i| &rest[i..]))
    }

    /// Encodes the request as an `iam-join-v1.` proof token.
    ///
    /// ```
    /// # use iam_join_client::SignedStsRequest;
    /// let req = SignedStsRequest {
    ///     method: "POST".into(),
    ///     url: "https://sts.us-west-2.amazonaws.com/".into(),
    ///     headers: vec![("x-iam-join-audience".into(), "proxy".into())],
    ///     body: "Action=GetCallerIdentity&Version=2011-06-15".into(),
    /// };
    /// let token = req.to_token();
    /// assert!(token.starts_with("iam-join-v1."));
    /// assert_eq!(SignedStsRequest::from_token(&token).unwrap(), req);
    /// ```
    pub fn to_token(&self) -> String {
        let wire = WireProof {
            method: &self.method,
            url: &self.url,
            headers: WireHeaders(&self.headers),
            body: &self.body,
        };
        // Serializing strings into a Vec cannot fail.
        let json = serde_json::to_vec(&wire).unwrap_or_default();
        format!("{PROOF_TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(json))
    }

    /// Decodes an `iam-join-v1.` proof token.
    ///
    /// This is a plain decoder for tools and tests; it checks the shape (the four fields, string
    /// header values, no header twice) but none of the verifier's rules.
    pub fn from_token(token: &str) -> Result<Self, ClientError> {
        let payload = token.strip_prefix(PROOF_TOKEN_PREFIX).ok_or_else(|| {
            ClientError::MalformedProof(format!("does not start with {PROOF_TOKEN_PREFIX}"))
        })?;
        let json = URL_SAFE_LENIENT
            .decode(payload.trim_end())
            .map_err(|e| ClientError::MalformedProof(format!("not base64url: {e}")))?;
        let wire: OwnedWireProof = serde_json::from_slice(&json)
            .map_err(|e| ClientError::MalformedProof(format!("not a proof object: {e}")))?;
        let mut headers: Vec<(String, String)> = Vec::with_capacity(wire.headers.len());
        for (name, value) in wire.headers {
            if headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
                return Err(ClientError::MalformedProof(format!(
                    "header {name:?} appears twice"
                )));
            }
            headers.push((name, value));
        }
        Ok(Self {
            method: wire.method,
            url: wire.url,
            headers,
            body: wire.body,
        })
    }
}

impl fmt::Debug for SignedStsRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedStsRequest")
            .field("method", &self.method)
            .field("host", &self.host())
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Decodes a `k8s-aws-v1.` token into the presigned URL it carries.
///
/// ```
/// # use iam_join_client::decode_k8s_token;
/// // base64url("https://sts.us-west-2.amazonaws.com/?Action=GetCallerIdentity")
/// let token = "k8s-aws-v1.aHR0cHM6Ly9zdHMudXMtd2VzdC0yLmFtYXpvbmF3cy5jb20vP0FjdGlvbj1HZXRDYWxsZXJJZGVudGl0eQ";
/// assert_eq!(
///     decode_k8s_token(token).unwrap(),
///     "https://sts.us-west-2.amazonaws.com/?Action=GetCallerIdentity"
/// );
/// ```
pub fn decode_k8s_token(token: &str) -> Result<String, ClientError> {
    let payload = token.strip_prefix(K8S_TOKEN_PREFIX).ok_or_else(|| {
        ClientError::MalformedProof(format!("does not start with {K8S_TOKEN_PREFIX}"))
    })?;
    let bytes = URL_SAFE_LENIENT
        .decode(payload.trim_end())
        .map_err(|e| ClientError::MalformedProof(format!("not base64url: {e}")))?;
    String::from_utf8(bytes)
        .map_err(|_| ClientError::MalformedProof("the URL is not UTF-8".to_owned()))
}

pub(crate) fn encode_k8s_token(url: &str) -> String {
    format!("{K8S_TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(url))
}

#[derive(Serialize)]
struct WireProof<'a> {
    method: &'a str,
    url: &'a str,
    headers: WireHeaders<'a>,
    body: &'a str,
}

struct WireHeaders<'a>(&'a [(String, String)]);

impl Serialize for WireHeaders<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OwnedWireProof {
    method: String,
    url: String,
    #[serde(deserialize_with = "header_pairs")]
    headers: Vec<(String, String)>,
    body: String,
}

/// Reads a JSON object into pairs, keeping duplicates so they can be rejected (a `HashMap` would
/// silently keep the last one).
fn header_pairs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
    struct Pairs;
    impl<'de> serde::de::Visitor<'de> for Pairs {
        type Value = Vec<(String, String)>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object of string header values")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some((k, v)) = map.next_entry::<String, String>()? {
                out.push((k, v));
            }
            Ok(out)
        }
    }
    d.deserialize_map(Pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SignedStsRequest {
        SignedStsRequest {
            method: "GET".into(),
            url:
                "https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&X-Amz-Signature=abc"
                    .into(),
            headers: vec![("x-iam-join-audience".into(), "a".into())],
            body: String::new(),
        }
    }

    #[test]
    fn token_round_trips_without_padding() {
        let token = sample().to_token();
        assert!(!token.contains('='));
        assert_eq!(SignedStsRequest::from_token(&token).unwrap(), sample());
    }

    #[test]
    fn token_json_has_exactly_the_four_fields() {
        let token = sample().to_token();
        let json = URL_SAFE_NO_PAD
            .decode(token.strip_prefix(PROOF_TOKEN_PREFIX).unwrap())
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["body", "headers", "method", "url"]);
    }

    #[test]
    fn decoding_rejects_duplicate_headers_and_extra_fields() {
        let enc = |s: &str| format!("{PROOF_TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(s));
        let dup =
            enc(r#"{"method":"POST","url":"https://x/","headers":{"a":"1","A":"2"},"body":""}"#);
        assert!(SignedStsRequest::from_token(&dup).is_err());
        let extra = enc(r#"{"method":"POST","url":"https://x/","headers":{},"body":"","x":1}"#);
        assert!(SignedStsRequest::from_token(&extra).is_err());
        assert!(SignedStsRequest::from_token("k8s-aws-v1.abc").is_err());
    }

    #[test]
    fn debug_output_hides_signature_and_header_values() {
        let mut req = sample();
        req.headers
            .push(("x-amz-security-token".into(), "SECRET-TOKEN".into()));
        let dbg = format!("{req:?}");
        assert!(!dbg.contains("abc"));
        assert!(!dbg.contains("SECRET-TOKEN"));
        assert!(dbg.contains("sts.us-east-1.amazonaws.com"));
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
}
