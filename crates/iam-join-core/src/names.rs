//! Names whose rule is checked once, when they are made: [`TokenName`], [`Audience`] and
//! [`Region`]. Every place that takes one from configuration, a header or the command line
//! parses it with `FromStr` (or deserializes it), so the rule cannot drift between copies.
//!
//! ```
//! use iam_join_core::{Audience, Region, TokenName};
//!
//! let token: TokenName = "iam-token".parse()?;
//! let audience: Audience = "teleport.example.com".parse()?;
//! let region: Region = "us-west-2".parse()?;
//! assert_eq!((token.as_str(), audience.as_str(), region.as_str()),
//!            ("iam-token", "teleport.example.com", "us-west-2"));
//! assert!("us-west-2.evil.example".parse::<Region>().is_err());
//! # Ok::<(), iam_join_core::names::InvalidName>(())
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::hosts::Partition;

/// A name that breaks its type's rule: what was expected, never the rejected text itself
/// (it may come from a client header).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {problem}")]
pub struct InvalidName {
    kind: &'static str,
    problem: &'static str,
}

impl InvalidName {
    /// What kind of name it was, e.g. `"token name"`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }
}

macro_rules! checked_name {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $check:path) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = InvalidName;
            fn from_str(s: &str) -> Result<Self, InvalidName> {
                Self::try_from(s.to_owned())
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidName;
            fn try_from(s: String) -> Result<Self, InvalidName> {
                match $check(&s) {
                    Ok(()) => Ok(Self(s)),
                    Err(problem) => Err(InvalidName { kind: $kind, problem }),
                }
            }
        }

        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

checked_name!(
    /// A join token's name: 1 to [`TokenName::MAX_LEN`] ASCII letters, digits, `-`, `_`, `.`,
    /// `:` or `@` (Teleport's token names, including the `name@domain` and `a:b` forms). It
    /// travels in the `X-IAM-Join-Token` header, so nothing else is allowed.
    TokenName,
    "token name",
    check_token_name
);

checked_name!(
    /// A verifier's audience (the value of `x-iam-join-audience`, or the EKS cluster id of
    /// `x-k8s-aws-id`): 1 to [`Audience::MAX_LEN`] printable ASCII characters with no white
    /// space at either end, so it can be sent in a header byte for byte.
    Audience,
    "audience",
    check_audience
);

checked_name!(
    /// An AWS region name such as `us-west-2`, `us-gov-west-1` or `us-isob-east-1`: at most
    /// [`Region::MAX_LEN`] bytes, at least three dash-separated parts of lowercase ASCII letters
    /// and digits, the first all letters, the last all digits. Safe to put into a host name.
    /// Whether the region exists is the STS host allow-list's business.
    Region,
    "region",
    check_region
);

impl TokenName {
    /// The longest token name.
    pub const MAX_LEN: usize = 256;
}

impl Audience {
    /// The longest audience.
    pub const MAX_LEN: usize = 256;
}

impl Region {
    /// The longest region name.
    pub const MAX_LEN: usize = 32;

    /// The partition the region belongs to (from its prefix).
    pub fn partition(&self) -> Partition {
        Partition::of_region(&self.0)
    }
}

fn check_token_name(s: &str) -> Result<(), &'static str> {
    if s.is_empty() {
        Err("must not be empty")
    } else if s.len() > TokenName::MAX_LEN {
        Err("is too long (at most 256 characters)")
    } else if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'@'))
    {
        Err("may hold only ASCII letters, digits, `-`, `_`, `.`, `:` and `@`")
    } else {
        Ok(())
    }
}

fn check_audience(s: &str) -> Result<(), &'static str> {
    if s.is_empty() {
        Err("must not be empty")
    } else if s.len() > Audience::MAX_LEN {
        Err("is too long (at most 256 characters)")
    } else if !s.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        Err("may hold only printable ASCII characters")
    } else if s.trim_matches(' ') != s {
        Err("must not start or end with a space")
    } else {
        Ok(())
    }
}

fn check_region(s: &str) -> Result<(), &'static str> {
    let parts: Vec<&str> = s.split('-').collect();
    let lower_alnum = |p: &&str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    if s.len() > Region::MAX_LEN {
        Err("is too long (at most 32 characters)")
    } else if parts.len() < 3 || !parts.iter().all(lower_alnum) {
        Err("must be lowercase letters and digits in dash-separated parts, like us-west-2")
    } else if !parts[0].bytes().all(|b| b.is_ascii_lowercase())
        || !parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
    {
        Err("must start with letters and end with a number, like us-west-2")
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn token_names_follow_the_policy_rule() {
        for ok in [
            "iam-token",
            "a",
            "bot:ci@example.com",
            "x.y_z-1",
            &"t".repeat(256),
        ] {
            let name: TokenName = ok.parse().unwrap();
            assert_eq!(name, *ok);
        }
        let cases = [
            ("", "empty"),
            (&"t".repeat(257) as &str, "too long"),
            ("a b", "letters"),
            ("a/b", "letters"),
            ("é", "letters"),
            ("a\nb", "letters"),
        ];
        for (bad, says) in cases {
            let e = bad.parse::<TokenName>().unwrap_err();
            assert!(e.to_string().contains(says), "{bad:?}: {e}");
            assert_eq!(e.kind(), "token name");
        }
    }

    #[test]
    fn audiences_are_printable_ascii_without_outer_spaces() {
        for ok in ["teleport.example.com", "my cluster", "a", &"a".repeat(256)] {
            assert_eq!(ok.parse::<Audience>().unwrap().as_str(), ok);
        }
        for (bad, says) in [
            ("", "empty"),
            (&"a".repeat(257) as &str, "too long"),
            ("tab\there", "printable"),
            ("é", "printable"),
            (" lead", "space"),
            ("trail ", "space"),
        ] {
            let e = bad.parse::<Audience>().unwrap_err();
            assert!(e.to_string().contains(says), "{bad:?}: {e}");
        }
    }

    #[test]
    fn regions_are_shaped_like_aws_regions() {
        for ok in [
            "us-west-2",
            "us-gov-west-1",
            "cn-north-1",
            "us-isob-east-1",
            "eu-isoe-west-1",
            "eusc-de-east-1",
        ] {
            assert_eq!(ok.parse::<Region>().unwrap().as_str(), ok);
        }
        for bad in [
            "",
            "us",
            "us-west",
            "US-WEST-2",
            "us_west_2",
            "us--west-2",
            "-us-west-2",
            "us-west-2-",
            "1s-west-2",
            "us-west-x",
            "us-west-2.evil.com",
            "us-west-2/",
            "us-west-2 ",
            "evil.com/x-y-1",
        ] {
            assert!(bad.parse::<Region>().is_err(), "{bad:?} accepted");
        }
        let e = "a-b-1".repeat(10).parse::<Region>().unwrap_err();
        assert!(e.to_string().contains("too long"), "{e}");
    }

    #[test]
    fn region_knows_its_partition() {
        let p = |r: &str| r.parse::<Region>().unwrap().partition();
        assert_eq!(p("us-west-2"), Partition::Aws);
        assert_eq!(p("cn-north-1"), Partition::AwsCn);
        assert_eq!(p("us-gov-east-1"), Partition::AwsUsGov);
        assert_eq!(p("us-iso-east-1"), Partition::AwsIso);
        assert_eq!(p("us-isob-east-1"), Partition::AwsIsoB);
    }

    #[test]
    fn names_deserialize_through_their_rule() {
        let t: TokenName = serde_json::from_str(r#""iam-token""#).unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), r#""iam-token""#);
        assert!(serde_json::from_str::<TokenName>(r#""a b""#).is_err());
        let a: Audience = serde_json::from_str(r#""teleport.example.com""#).unwrap();
        assert_eq!(a, "teleport.example.com");
        assert!(serde_json::from_str::<Audience>(r#"" x""#).is_err());
        let r: Region = serde_norway::from_str("us-west-2").unwrap();
        assert_eq!(r, "us-west-2");
        assert!(serde_norway::from_str::<Region>("us-west").is_err());
    }
}
