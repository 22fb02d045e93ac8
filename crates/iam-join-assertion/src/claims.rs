//! The assertion's claims: one wire type, written by the signer and read by the verifier.

use serde::{Deserialize, Serialize};

/// The JWT claims of an identity assertion (RFC 7519 registered claims plus the AWS identity).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssertionClaims {
    /// Issuer: the verifier's configured URL.
    pub iss: String,
    /// Audiences: the upstreams this assertion is for.
    pub aud: Audiences,
    /// Subject: the verified ARN.
    pub sub: String,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Not before (seconds since the epoch).
    pub nbf: i64,
    /// Expiry (seconds since the epoch); never after the proof's expiry.
    pub exp: i64,
    /// Unique id of this assertion.
    pub jti: String,
    /// The 12-digit AWS account id.
    pub aws_account: String,
    /// The caller's ARN, as STS returned it.
    pub aws_arn: String,
    /// The caller's unique id (`AIDA…`, `AROA…:session`).
    pub aws_user_id: String,
    /// The region of the STS endpoint the proof was signed for.
    pub aws_region: String,
    /// The join token that admitted the caller.
    pub join_token: String,
    /// The join token's roles.
    pub roles: Vec<String>,
    /// How the proof was bound: `audience` or `challenge`.
    pub binding: String,
}

/// The `aud` claim: one string when there is one audience (what most libraries expect), an
/// array otherwise (RFC 7519 §4.1.3 allows both).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audiences {
    /// A single audience.
    One(String),
    /// Several audiences.
    Many(Vec<String>),
}

impl Audiences {
    /// The audiences as a slice-like iterator.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let slice: &[String] = match self {
            Self::One(one) => std::slice::from_ref(one),
            Self::Many(many) => many,
        };
        slice.iter().map(String::as_str)
    }

    /// Whether `audience` is one of them.
    pub fn contains(&self, audience: &str) -> bool {
        self.iter().any(|a| a == audience)
    }
}

impl From<&[String]> for Audiences {
    fn from(list: &[String]) -> Self {
        match list {
            [one] => Self::One(one.clone()),
            many => Self::Many(many.to_vec()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_audience_is_a_string_several_are_an_array() {
        let one = Audiences::from(&["orders".to_owned()][..]);
        assert_eq!(serde_json::to_string(&one).unwrap(), r#""orders""#);
        let many = Audiences::from(&["a".to_owned(), "b".to_owned()][..]);
        assert_eq!(serde_json::to_string(&many).unwrap(), r#"["a","b"]"#);
        assert!(many.contains("b") && !many.contains("c"));
        let parsed: Audiences = serde_json::from_str(r#""x""#).unwrap();
        assert!(parsed.contains("x"));
    }
}
