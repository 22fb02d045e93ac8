//! Self-verifying single-use challenges (DESIGN §3 "challenge" binding).
//!
//! A challenge is `base64url(version ‖ nonce ‖ issued_at ‖ HMAC-SHA256(key, …))`, so any replica
//! holding the key can check it without shared state. Whether it was already redeemed is *not*
//! decided here: the layer records [`ChallengeClaims::replay_id`] in its replay store.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::OffsetDateTime;

use crate::error::{ErrorCode, VerifyError};

type HmacSha256 = Hmac<Sha256>;

/// The header that carries a challenge in a challenge-bound proof.
pub use crate::wire::CHALLENGE_HEADER;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 16;
const MAC_LEN: usize = 32;
const RAW_LEN: usize = 1 + NONCE_LEN + 8 + MAC_LEN;
const DOMAIN: &[u8] = b"iam-join-challenge";
/// Clock skew tolerated between replicas for a challenge's issue time.
const MAX_ISSUE_SKEW_SECS: i64 = 30;

/// The HMAC key that signs challenges. Every replica that redeems challenges needs the same key.
#[derive(Clone)]
pub struct ChallengeKey(Vec<u8>);

impl fmt::Debug for ChallengeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChallengeKey(…)")
    }
}

/// A challenge key that is too short.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("challenge key must be at least 32 bytes, got {0}")]
pub struct WeakChallengeKey(pub usize);

impl ChallengeKey {
    /// A key from raw bytes (at least 32).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WeakChallengeKey> {
        if bytes.len() < 32 {
            return Err(WeakChallengeKey(bytes.len()));
        }
        Ok(Self(bytes.to_vec()))
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(DOMAIN);
        mac
    }
}

/// What a valid challenge says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChallengeClaims {
    nonce: [u8; NONCE_LEN],
    issued_at: OffsetDateTime,
    expires_at: OffsetDateTime,
}

impl ChallengeClaims {
    /// A stable id for the replay store (hex of the nonce); not a secret.
    pub fn replay_id(&self) -> String {
        hex::encode(self.nonce)
    }

    /// When the challenge was issued.
    pub fn issued_at(&self) -> OffsetDateTime {
        self.issued_at
    }

    /// When the challenge stops being accepted; the replay record must live at least this long.
    pub fn expires_at(&self) -> OffsetDateTime {
        self.expires_at
    }
}

/// Issues a challenge for `nonce` (16 random bytes from the caller) at `now`.
pub fn issue_challenge(key: &ChallengeKey, nonce: [u8; NONCE_LEN], now: OffsetDateTime) -> String {
    let mut raw = Vec::with_capacity(RAW_LEN);
    raw.push(VERSION);
    raw.extend_from_slice(&nonce);
    raw.extend_from_slice(&now.unix_timestamp().to_be_bytes());
    let mut mac = key.mac();
    mac.update(&raw);
    raw.extend_from_slice(&mac.finalize().into_bytes());
    URL_SAFE_NO_PAD.encode(raw)
}

fn invalid(message: &'static str) -> VerifyError {
    VerifyError::new(ErrorCode::ChallengeInvalid, message)
}

/// Checks a challenge's MAC (in constant time) and age. `ttl` is how long a challenge lives.
pub fn verify_challenge(
    key: &ChallengeKey,
    value: &str,
    now: OffsetDateTime,
    ttl: Duration,
) -> Result<ChallengeClaims, VerifyError> {
    if value.len() > 128 {
        return Err(invalid(
            "challenge is too long to be one this verifier issued",
        ));
    }
    let raw = URL_SAFE_NO_PAD
        .decode(value)
        .map_err(|_| invalid("challenge is not one this verifier issued"))?;
    if raw.len() != RAW_LEN || raw[0] != VERSION {
        return Err(invalid("challenge is not one this verifier issued"));
    }
    let (body, tag) = raw.split_at(RAW_LEN - MAC_LEN);
    let mut mac = key.mac();
    mac.update(body);
    mac.verify_slice(tag)
        .map_err(|_| invalid("challenge was not issued by this verifier or was altered"))?;
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&body[1..1 + NONCE_LEN]);
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&body[1 + NONCE_LEN..]);
    let issued_at = OffsetDateTime::from_unix_timestamp(i64::from_be_bytes(ts))
        .map_err(|_| invalid("challenge has an impossible issue time"))?;
    let ttl = time::Duration::try_from(ttl).unwrap_or(time::Duration::MAX);
    let expires_at = issued_at.saturating_add(ttl);
    if issued_at > now + time::Duration::seconds(MAX_ISSUE_SKEW_SECS) {
        return Err(invalid(
            "challenge is dated in the future; check the verifier clocks",
        ));
    }
    if now > expires_at {
        return Err(invalid("challenge has expired; request a new one"));
    }
    Ok(ChallengeClaims {
        nonce,
        issued_at,
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ChallengeKey {
        ChallengeKey::from_bytes(&[7u8; 32]).unwrap()
    }

    const TTL: Duration = Duration::from_secs(60);

    #[test]
    fn issued_challenge_verifies_with_the_same_key() {
        let now = OffsetDateTime::now_utc();
        let c = issue_challenge(&key(), [1; 16], now);
        let claims = verify_challenge(&key(), &c, now, TTL).unwrap();
        assert_eq!(claims.replay_id(), hex::encode([1u8; 16]));
    }

    #[test]
    fn tampered_challenge_is_invalid() {
        let now = OffsetDateTime::now_utc();
        let c = issue_challenge(&key(), [1; 16], now);
        let mut bytes = URL_SAFE_NO_PAD.decode(&c).unwrap();
        bytes[3] ^= 1;
        let t = URL_SAFE_NO_PAD.encode(bytes);
        let e = verify_challenge(&key(), &t, now, TTL).unwrap_err();
        assert_eq!(e.code(), ErrorCode::ChallengeInvalid);
    }

    #[test]
    fn other_key_is_invalid() {
        let now = OffsetDateTime::now_utc();
        let c = issue_challenge(&key(), [1; 16], now);
        let other = ChallengeKey::from_bytes(&[8u8; 32]).unwrap();
        assert!(verify_challenge(&other, &c, now, TTL).is_err());
    }

    #[test]
    fn stale_challenge_is_invalid() {
        let now = OffsetDateTime::now_utc();
        let c = issue_challenge(&key(), [1; 16], now - time::Duration::seconds(61));
        let e = verify_challenge(&key(), &c, now, TTL).unwrap_err();
        assert!(e.message().contains("expired"));
    }

    #[test]
    fn future_dated_challenge_is_invalid() {
        let now = OffsetDateTime::now_utc();
        let c = issue_challenge(&key(), [1; 16], now + time::Duration::minutes(5));
        assert!(verify_challenge(&key(), &c, now, TTL).is_err());
    }

    #[test]
    fn garbage_is_invalid_not_a_panic() {
        let now = OffsetDateTime::now_utc();
        for g in ["", "x", "====", &"A".repeat(76), &"A".repeat(500)] {
            assert!(verify_challenge(&key(), g, now, TTL).is_err());
        }
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(ChallengeKey::from_bytes(&[0; 31]).is_err());
    }
}
