//! The upstream side: verify an assertion against the verifier's published key set.

mod error;
mod jwks;
mod layer;

use std::collections::HashSet;
use std::time::Duration;

use jsonwebtoken::{Validation, errors::ErrorKind};
use time::OffsetDateTime;

pub use error::AssertionError;
pub use jwks::{BoxFuture, HttpJwks, JwksError, JwksSource, MAX_JWKS_BYTES, StaticJwks};
pub use layer::{AssertionLayer, AssertionService};

use crate::claims::AssertionClaims;
use crate::keys::SigningAlgorithm;
use jwks::{JwksCache, Lookup};

/// The largest assertion accepted (a real one is well under 2 KiB).
pub const MAX_ASSERTION_BYTES: usize = 8 * 1024;

/// Claims that verified: what a handler reads (request extension set by [`AssertionLayer`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedAssertion {
    /// The claims.
    pub claims: AssertionClaims,
    /// The key that signed.
    pub kid: String,
    /// The algorithm it signed with.
    pub algorithm: SigningAlgorithm,
}

impl VerifiedAssertion {
    /// The 12-digit AWS account.
    pub fn account(&self) -> &str {
        &self.claims.aws_account
    }
    /// The caller's ARN.
    pub fn arn(&self) -> &str {
        &self.claims.aws_arn
    }
    /// The join token that admitted the caller.
    pub fn token(&self) -> &str {
        &self.claims.join_token
    }
    /// The token's roles.
    pub fn roles(&self) -> &[String] {
        &self.claims.roles
    }
}

/// Checks assertions: signature by a key in the JWKS (the key fixes the algorithm), `typ`,
/// `iss`, `aud` and the times with a small leeway.
pub struct AssertionVerifier {
    issuer: String,
    audience: String,
    leeway: Duration,
    keys: JwksCache,
}

impl std::fmt::Debug for AssertionVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionVerifier")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}

impl AssertionVerifier {
    /// Trusts assertions from `issuer` for `audience` signed by a key from `source`. Defaults:
    /// 30 s leeway, key set refreshed after 5 minutes, and at most every 10 s on an unknown
    /// `kid`.
    pub fn new(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        source: impl JwksSource,
    ) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            leeway: Duration::from_secs(30),
            keys: JwksCache::new(
                Box::new(source),
                Duration::from_secs(300),
                Duration::from_secs(10),
            ),
        }
    }

    /// Trusts assertions signed by keys fetched from `jwks_url`.
    pub fn from_jwks_url(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        jwks_url: &str,
    ) -> Result<Self, JwksError> {
        Ok(Self::new(issuer, audience, HttpJwks::new(jwks_url)?))
    }

    /// Sets the clock leeway for `exp`, `nbf` and `iat`.
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Sets how old the cached key set may get, and how often an unknown `kid` may trigger a
    /// refresh.
    pub fn with_refresh(mut self, max_age: Duration, min_interval: Duration) -> Self {
        self.keys.set_refresh(max_age, min_interval);
        self
    }

    /// Verifies `assertion` at `now`.
    pub async fn verify(
        &self,
        assertion: &str,
        now: OffsetDateTime,
    ) -> Result<VerifiedAssertion, AssertionError> {
        if assertion.len() > MAX_ASSERTION_BYTES {
            return Err(AssertionError::Malformed("too long"));
        }
        let header = jsonwebtoken::decode_header(assertion)
            .map_err(|_| AssertionError::Malformed("not a JWS compact serialization"))?;
        if header.typ.as_deref() != Some("JWT") {
            return Err(AssertionError::Malformed("typ is not JWT"));
        }
        let algorithm = SigningAlgorithm::from_jws(header.alg)
            .ok_or(AssertionError::Malformed("alg is not ES256 or EdDSA"))?;
        let kid = header.kid.ok_or(AssertionError::Malformed("no kid"))?;
        let key = match self.keys.key(&kid).await {
            Lookup::Found(key) => key,
            Lookup::Unknown => return Err(AssertionError::UnknownKey),
            Lookup::Unavailable => return Err(AssertionError::JwksUnavailable),
        };
        // The key decides the algorithm; a token naming another one is refused (no confusion).
        if key.algorithm != algorithm {
            return Err(AssertionError::Malformed("alg does not match the key"));
        }
        let claims = jsonwebtoken::decode::<AssertionClaims>(
            assertion,
            &key.key,
            &self.validation(algorithm),
        )
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => AssertionError::SignatureInvalid,
            ErrorKind::InvalidAudience => AssertionError::WrongAudience,
            ErrorKind::InvalidIssuer => AssertionError::WrongIssuer,
            ErrorKind::Base64(_) | ErrorKind::InvalidToken => {
                AssertionError::Malformed("not a JWS compact serialization")
            }
            _ => AssertionError::Malformed("claims are not an identity assertion"),
        })?
        .claims;
        check_times(&claims, now, self.leeway)?;
        Ok(VerifiedAssertion {
            claims,
            kid,
            algorithm,
        })
    }

    fn validation(&self, algorithm: SigningAlgorithm) -> Validation {
        let mut validation = Validation::new(algorithm.jws());
        // Times are checked against the caller's clock in `check_times`; every claim is
        // required by the claims type itself.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims = HashSet::new();
        validation.set_audience(&[&self.audience]);
        validation.set_issuer(&[&self.issuer]);
        validation
    }
}

fn check_times(
    claims: &AssertionClaims,
    now: OffsetDateTime,
    leeway: Duration,
) -> Result<(), AssertionError> {
    let now = now.unix_timestamp();
    let leeway = i64::try_from(leeway.as_secs()).unwrap_or(i64::MAX);
    if now > claims.exp.saturating_add(leeway) {
        return Err(AssertionError::Expired);
    }
    if now.saturating_add(leeway) < claims.nbf.max(claims.iat) {
        return Err(AssertionError::NotYetValid);
    }
    Ok(())
}
