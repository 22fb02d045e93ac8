//! ARN globs: the patterns of a join token's `aws_arn` rules.
//!
//! A glob is compiled once, when the policy is loaded, and then matched against the ARN that STS
//! reported for the caller. The syntax is deliberately tiny:
//!
//! - `*` matches any run of characters, possibly empty, **including** `/` and `:`;
//! - `?` matches exactly one character (one Unicode scalar value);
//! - every other character, `.` included, matches itself. There are no escapes and no character
//!   classes.
//!
//! Matching is anchored (the whole ARN must match, not a part of it) and case-sensitive, as ARNs
//! are. It never backtracks more than to the last `*` seen, so it runs in `O(pattern × input)`
//! time in the worst case and usually in linear time: a hostile or careless pattern cannot make a
//! request slow.
//!
//! ```
//! use iam_join_core::glob::ArnGlob;
//!
//! let glob = ArnGlob::new("arn:aws:sts::333333333333:assumed-role/teleport-node-role/i-*")?;
//! assert!(glob.matches("arn:aws:sts::333333333333:assumed-role/teleport-node-role/i-0abc"));
//! assert!(!glob.matches("arn:aws:sts::333333333333:assumed-role/teleport-node-role2/i-0abc"));
//! # Ok::<(), iam_join_core::glob::GlobError>(())
//! ```

use std::fmt;
use std::str::FromStr;

/// A compiled ARN glob (see the [module documentation](self) for the syntax).
///
/// Two globs are equal when their patterns are equal.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ArnGlob {
    pattern: String,
    /// The pattern split into tokens, with runs of `*` collapsed into one.
    tokens: Vec<Token>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Token {
    /// `*`: any run of characters.
    Star,
    /// `?`: exactly one character.
    One,
    /// A character that matches itself.
    Literal(char),
}

/// Why a pattern is not a valid [`ArnGlob`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GlobError {
    /// The pattern is the empty string (which would only match an empty ARN).
    #[error("empty ARN pattern")]
    Empty,
    /// The pattern is longer than [`ArnGlob::MAX_LEN`] bytes.
    #[error("ARN pattern is {len} bytes long; the limit is {max}")]
    TooLong {
        /// Length of the pattern in bytes.
        len: usize,
        /// The limit, [`ArnGlob::MAX_LEN`].
        max: usize,
    },
    /// The pattern contains a control character (for example a newline or a tab).
    #[error("ARN pattern contains a control character at byte {position}")]
    ControlCharacter {
        /// Byte offset of the control character in the pattern.
        position: usize,
    },
}

impl ArnGlob {
    /// The longest pattern accepted, in bytes. ARNs are at most 2048 characters; a pattern for
    /// them has no reason to be longer than this.
    pub const MAX_LEN: usize = 1024;

    /// Compiles `pattern`.
    ///
    /// # Errors
    ///
    /// The pattern is empty, longer than [`ArnGlob::MAX_LEN`] bytes, or contains a control
    /// character.
    pub fn new(pattern: &str) -> Result<Self, GlobError> {
        if pattern.is_empty() {
            return Err(GlobError::Empty);
        }
        if pattern.len() > Self::MAX_LEN {
            return Err(GlobError::TooLong {
                len: pattern.len(),
                max: Self::MAX_LEN,
            });
        }
        let mut tokens = Vec::with_capacity(pattern.len());
        for (position, c) in pattern.char_indices() {
            let token = match c {
                '*' => Token::Star,
                '?' => Token::One,
                c if c.is_control() => return Err(GlobError::ControlCharacter { position }),
                c => Token::Literal(c),
            };
            // `**` means the same as `*`; collapsing keeps the matcher's backtracking minimal.
            if !(token == Token::Star && tokens.last() == Some(&Token::Star)) {
                tokens.push(token);
            }
        }
        Ok(Self {
            pattern: pattern.to_owned(),
            tokens,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether the pattern contains a wildcard (`*` or `?`). A pattern without one matches
    /// exactly one string: itself.
    pub fn has_wildcards(&self) -> bool {
        self.tokens.iter().any(|t| !matches!(t, Token::Literal(_)))
    }

    /// Whether the whole of `s` matches the pattern.
    ///
    /// Greedy two-pointer matching with a single backtrack point (the last `*`): on a mismatch the
    /// last `*` absorbs one more character and matching resumes after it. Earlier stars never need
    /// to be revisited, because anything a later segment could match after an earlier star
    /// absorbed more, it can also match with the last star absorbing it instead.
    pub fn matches(&self, s: &str) -> bool {
        if !self.has_wildcards() {
            return self.pattern == s;
        }
        let tokens = &self.tokens;
        // Next token to match, and byte offset (always on a char boundary) into `s`.
        let mut t = 0;
        let mut i = 0;
        // After the last `*` seen: the token following it, and where in `s` its match ends.
        let mut backtrack: Option<(usize, usize)> = None;
        loop {
            let rest = s.get(i..).unwrap_or_default();
            match tokens.get(t) {
                Some(Token::Star) => {
                    backtrack = Some((t + 1, i));
                    t += 1;
                    continue;
                }
                Some(Token::One) => {
                    if let Some(c) = rest.chars().next() {
                        i += c.len_utf8();
                        t += 1;
                        continue;
                    }
                }
                Some(Token::Literal(want)) if rest.starts_with(*want) => {
                    i += want.len_utf8();
                    t += 1;
                    continue;
                }
                Some(Token::Literal(_)) => {}
                None if rest.is_empty() => return true,
                None => {}
            }
            // Mismatch: let the last `*` absorb one more character, or fail if there is none.
            let Some((after_star, star_end)) = backtrack else {
                return false;
            };
            let Some(c) = s.get(star_end..).and_then(|r| r.chars().next()) else {
                return false;
            };
            let star_end = star_end + c.len_utf8();
            backtrack = Some((after_star, star_end));
            t = after_star;
            i = star_end;
        }
    }
}

impl FromStr for ArnGlob {
    type Err = GlobError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for ArnGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pattern)
    }
}

impl fmt::Debug for ArnGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ArnGlob").field(&self.pattern).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NODE_ROLE: &str = "arn:aws:sts::333333333333:assumed-role/teleport-node-role/i-*";

    fn glob(p: &str) -> ArnGlob {
        ArnGlob::new(p).unwrap()
    }

    /// Obviously-correct reference matcher (dynamic programming over chars).
    fn reference_match(pattern: &str, s: &str) -> bool {
        let p: Vec<char> = pattern.chars().collect();
        let s: Vec<char> = s.chars().collect();
        // dp[j] = pattern[..i] matches s[..j]
        let mut dp = vec![false; s.len() + 1];
        dp[0] = true;
        for &pc in &p {
            let mut next = vec![false; s.len() + 1];
            for j in 0..=s.len() {
                next[j] = match pc {
                    '*' => dp[j] || (j > 0 && next[j - 1]),
                    '?' => j > 0 && dp[j - 1],
                    c => j > 0 && dp[j - 1] && s[j - 1] == c,
                };
            }
            dp = next;
        }
        dp[s.len()]
    }

    #[test]
    fn trailing_star_matches_instance_sessions_of_the_role() {
        let g = glob(NODE_ROLE);
        assert!(g.matches("arn:aws:sts::333333333333:assumed-role/teleport-node-role/i-0abc"));
        assert!(g.matches(
            "arn:aws:sts::333333333333:assumed-role/teleport-node-role/i-0abc123def4567890"
        ));
        assert!(g.matches("arn:aws:sts::333333333333:assumed-role/teleport-node-role/i-"));
    }

    #[test]
    fn trailing_star_does_not_match_a_longer_role_name() {
        let g = glob(NODE_ROLE);
        assert!(!g.matches("arn:aws:sts::333333333333:assumed-role/teleport-node-role2/i-0abc"));
        assert!(!g.matches("arn:aws:sts::333333333333:assumed-role/teleport-node-role/j-0abc"));
        assert!(!g.matches("arn:aws:sts::444444444444:assumed-role/teleport-node-role/i-0abc"));
    }

    #[test]
    fn question_mark_matches_exactly_one_character() {
        let g = glob("arn:aws:iam::111111111111:user/bo?");
        assert!(g.matches("arn:aws:iam::111111111111:user/bob"));
        assert!(g.matches("arn:aws:iam::111111111111:user/bo\u{e9}"));
        assert!(!g.matches("arn:aws:iam::111111111111:user/bo"));
        assert!(!g.matches("arn:aws:iam::111111111111:user/bobb"));
    }

    #[test]
    fn dot_is_literal() {
        let g = glob("arn:aws:iam::111111111111:user/a.b");
        assert!(g.matches("arn:aws:iam::111111111111:user/a.b"));
        assert!(!g.matches("arn:aws:iam::111111111111:user/axb"));
    }

    #[test]
    fn star_crosses_slashes_and_colons() {
        let g = glob("arn:aws:*:assumed-role/*");
        assert!(g.matches("arn:aws:sts::333333333333:assumed-role/a/b/c"));
        assert!(glob("arn:*").matches("arn:aws:iam::1:user/x/y:z"));
    }

    #[test]
    fn matching_is_anchored_at_both_ends() {
        let g = glob("arn:aws:iam::111111111111:user/alice");
        assert!(g.matches("arn:aws:iam::111111111111:user/alice"));
        assert!(!g.matches("xarn:aws:iam::111111111111:user/alice"));
        assert!(!g.matches("arn:aws:iam::111111111111:user/alice2"));
        assert!(!g.matches("arn:aws:iam::111111111111:user/alic"));
        let g = glob("arn:*:user/alice");
        assert!(!g.matches("arn:aws:iam::1:user/alice/x"));
        assert!(!g.matches(" arn:aws:iam::1:user/alice"));
    }

    #[test]
    fn matching_is_case_sensitive() {
        let g = glob("arn:aws:iam::111111111111:user/Alice");
        assert!(!g.matches("arn:aws:iam::111111111111:user/alice"));
    }

    #[test]
    fn star_matches_the_empty_string_and_everything() {
        let g = glob("*");
        assert!(g.matches(""));
        assert!(g.matches("anything/at:all"));
        assert!(glob("a**b").matches("ab"));
        assert!(glob("a*b*c").matches("abc"));
        assert!(glob("a*b*c").matches("aXbYbZc"));
        assert!(!glob("a*b*c").matches("aXbYbZ"));
    }

    #[test]
    fn pathological_pattern_finishes_and_does_not_match() {
        let g = glob("a*a*a*a*a*a*a*a*b");
        let input = "a".repeat(10_000);
        assert!(!g.matches(&input));
        let g = glob("*a*a*a*a*a*a*a*a*a*a*a*a*?b");
        assert!(!g.matches(&input));
    }

    #[test]
    fn invalid_patterns_are_rejected() {
        assert_eq!(ArnGlob::new(""), Err(GlobError::Empty));
        assert_eq!(
            ArnGlob::new(&"a".repeat(ArnGlob::MAX_LEN + 1)),
            Err(GlobError::TooLong {
                len: ArnGlob::MAX_LEN + 1,
                max: ArnGlob::MAX_LEN
            })
        );
        assert!(ArnGlob::new(&"a".repeat(ArnGlob::MAX_LEN)).is_ok());
        assert_eq!(
            ArnGlob::new("arn:aws\n"),
            Err(GlobError::ControlCharacter { position: 7 })
        );
        assert!(ArnGlob::new("arn:\taws").is_err());
        assert!(ArnGlob::new("arn:\u{7f}").is_err());
    }

    #[test]
    fn display_debug_and_as_str_show_the_pattern() {
        let g: ArnGlob = NODE_ROLE.parse().unwrap();
        assert_eq!(g.as_str(), NODE_ROLE);
        assert_eq!(g.to_string(), NODE_ROLE);
        assert_eq!(format!("{g:?}"), format!("ArnGlob({NODE_ROLE:?})"));
        assert!(g.has_wildcards());
        assert!(!glob("arn:aws:iam::1:user/x").has_wildcards());
    }

    proptest! {
        #[test]
        fn a_wildcard_free_pattern_matches_itself(s in "[^*?\\p{Cc}]{1,200}") {
            let g = ArnGlob::new(&s).unwrap();
            prop_assert!(g.matches(&s));
            let longer = format!("{s}x");
            prop_assert!(!g.matches(&longer));
        }

        #[test]
        fn a_lone_star_matches_everything(s in any::<String>()) {
            prop_assert!(glob("*").matches(&s));
        }

        #[test]
        fn matcher_agrees_with_reference(p in "[ab*?]{1,12}", s in "[ab]{0,16}") {
            prop_assert_eq!(glob(&p).matches(&s), reference_match(&p, &s));
        }

        #[test]
        fn matcher_agrees_with_reference_on_unicode(p in "[a\u{e9}/:*?]{1,10}", s in "[a\u{e9}/:]{0,12}") {
            prop_assert_eq!(glob(&p).matches(&s), reference_match(&p, &s));
        }
    }
}
