//! Signs assertions for verified identities, caches them, and serves the key set.

use std::sync::Arc;

use arc_swap::ArcSwap;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use iam_join_core::VerifiedIdentity;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::claims::{AssertionClaims, Audiences};
use crate::config::AssertionConfig;
use crate::keys::KeySet;

/// Why no assertion could be made.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The proof has already expired, so no assertion may outlive it.
    #[error("the proof has expired; no assertion can be issued for it")]
    ProofExpired,
    /// The crypto library failed to sign.
    #[error("signing the assertion failed")]
    Signing,
}

impl SignError {
    /// A stable error code.
    pub const fn code(&self) -> &'static str {
        match self {
            Self::ProofExpired => "proof_expired",
            Self::Signing => "assertion_unavailable",
        }
    }
}

/// A freshly signed assertion.
#[derive(Clone, Debug)]
pub struct SignedAssertion {
    /// The compact JWS, ready for a header.
    pub value: HeaderValue,
    /// Its claims.
    pub claims: AssertionClaims,
}

/// The keys in force and their JWKS document, swapped together on reload.
struct KeyState {
    keys: KeySet,
    jwks: Bytes,
}

impl KeyState {
    fn new(keys: KeySet) -> Self {
        // A JwkSet of public keys always serialises.
        let jwks = serde_json::to_vec(&keys.jwk_set()).unwrap_or_default();
        Self {
            keys,
            jwks: Bytes::from(jwks),
        }
    }
}

#[derive(Clone)]
struct CachedAssertion {
    value: HeaderValue,
    /// Reused until this instant (unix seconds): when a quarter of its life is left.
    fresh_until: i64,
}

/// Signs identity assertions (DESIGN §4 step 11).
///
/// ```
/// # use iam_join_assertion::{AssertionConfig, AssertionSigner, KeySet, SigningAlgorithm};
/// let config = AssertionConfig::new("https://iam-join.example", ["orders-api"]).unwrap();
/// let signer = AssertionSigner::new(config, KeySet::generate(SigningAlgorithm::Es256).unwrap());
/// assert!(signer.jwks_json().starts_with(b"{\"keys\":["));
/// ```
pub struct AssertionSigner {
    config: AssertionConfig,
    keys: ArcSwap<KeyState>,
    cache: moka::sync::Cache<[u8; 32], CachedAssertion>,
    jwks_cache_control: HeaderValue,
}

impl std::fmt::Debug for AssertionSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionSigner")
            .field("config", &self.config)
            .field("signing_kid", &self.keys.load().keys.signing_key().kid())
            .finish_non_exhaustive()
    }
}

impl AssertionSigner {
    /// A signer with a key set; the key set can be replaced later ([`replace_keys`](Self::replace_keys)).
    pub fn new(config: AssertionConfig, keys: KeySet) -> Self {
        let cache = moka::sync::Cache::builder()
            .max_capacity(config.cache_entries)
            // Entries are checked against `fresh_until` on every read; the TTL only frees memory.
            .time_to_live(config.lifetime)
            .build();
        let jwks_cache_control = HeaderValue::from_str(&format!(
            "public, max-age={}",
            config.jwks_max_age.as_secs()
        ))
        .unwrap_or(HeaderValue::from_static("public, max-age=300"));
        Self {
            config,
            keys: ArcSwap::from_pointee(KeyState::new(keys)),
            cache,
            jwks_cache_control,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &AssertionConfig {
        &self.config
    }

    /// The header the assertion travels in.
    pub fn header_name(&self) -> &HeaderName {
        &self.config.header
    }

    /// Replaces the keys (reload). New assertions are signed with the new signing key at once:
    /// the signing key's id is part of the cache key.
    pub fn replace_keys(&self, keys: KeySet) {
        self.keys.store(Arc::new(KeyState::new(keys)));
    }

    /// The keys in force.
    pub fn keys(&self) -> KeySet {
        self.keys.load().keys.clone()
    }

    /// The RFC 7517 JWKS document of every published key.
    pub fn jwks_json(&self) -> Bytes {
        self.keys.load().jwks.clone()
    }

    /// The whole JWKS response: 200, JSON, `Cache-Control: public, max-age=300`. Public: it
    /// holds only public keys.
    pub fn jwks_response<B: From<Bytes>>(&self) -> http::Response<B> {
        let mut response = http::Response::new(B::from(self.jwks_json()));
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(http::header::CACHE_CONTROL, self.jwks_cache_control.clone());
        response
    }

    /// `Cache-Control` for the JWKS response.
    pub fn jwks_cache_control(&self) -> &HeaderValue {
        &self.jwks_cache_control
    }

    /// The assertion for `identity`: the cached one while more than a quarter of its life is
    /// left, otherwise a freshly signed one. This is what every admitted request calls.
    pub fn assertion_for(
        &self,
        identity: &VerifiedIdentity,
        now: OffsetDateTime,
    ) -> Result<HeaderValue, SignError> {
        let state = self.keys.load();
        let key = cache_key(state.keys.signing_key().kid(), &self.config, identity);
        let now_secs = now.unix_timestamp();
        if let Some(hit) = self.cache.get(&key)
            && now_secs < hit.fresh_until
        {
            return Ok(hit.value);
        }
        let signed = sign_with(&state.keys, &self.config, identity, now)?;
        let life = signed.claims.exp - signed.claims.iat;
        self.cache.insert(
            key,
            CachedAssertion {
                value: signed.value.clone(),
                fresh_until: signed.claims.iat + life * 3 / 4,
            },
        );
        Ok(signed.value)
    }

    /// Signs a new assertion without the cache.
    pub fn sign(
        &self,
        identity: &VerifiedIdentity,
        now: OffsetDateTime,
    ) -> Result<SignedAssertion, SignError> {
        sign_with(&self.keys.load().keys, &self.config, identity, now)
    }

    /// Cached assertions (for metrics).
    pub fn cached_entries(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }
}

fn sign_with(
    keys: &KeySet,
    config: &AssertionConfig,
    identity: &VerifiedIdentity,
    now: OffsetDateTime,
) -> Result<SignedAssertion, SignError> {
    let claims = claims_for(config, identity, now)?;
    let key = keys.signing_key();
    let mut header = jsonwebtoken::Header::new(key.algorithm().jws());
    header.kid = Some(key.kid().to_owned());
    let jws = jsonwebtoken::encode(&header, &claims, key.encoding_key())
        .map_err(|_| SignError::Signing)?;
    // A compact JWS is base64url and dots only, always a valid header value.
    let value = HeaderValue::from_str(&jws).map_err(|_| SignError::Signing)?;
    Ok(SignedAssertion { value, claims })
}

/// The claims: a configured life from now, cut short at the proof's expiry.
fn claims_for(
    config: &AssertionConfig,
    identity: &VerifiedIdentity,
    now: OffsetDateTime,
) -> Result<AssertionClaims, SignError> {
    let iat = now.unix_timestamp();
    let proof_expiry = identity.expires_at.unix_timestamp();
    if proof_expiry <= iat {
        return Err(SignError::ProofExpired);
    }
    let life = i64::try_from(config.lifetime.as_secs()).unwrap_or(i64::MAX);
    let id = &identity.identity;
    Ok(AssertionClaims {
        iss: config.issuer.clone(),
        aud: Audiences::from(config.audiences.as_slice()),
        sub: id.arn().to_owned(),
        iat,
        nbf: iat,
        exp: iat.saturating_add(life).min(proof_expiry),
        jti: new_jti()?,
        aws_account: id.account().to_owned(),
        aws_arn: id.arn().to_owned(),
        aws_user_id: id.user_id().to_owned(),
        aws_region: id.region().to_owned(),
        join_token: identity.token.clone(),
        roles: identity.roles.clone(),
        binding: identity.binding.as_str().to_owned(),
    })
}

fn new_jti() -> Result<String, SignError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| SignError::Signing)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Identity × token × audience (and the signing key, so a rotation re-signs): every input of
/// the claims except the times and `jti`. Fields and lists are length-prefixed so no two inputs collide.
fn cache_key(kid: &str, config: &AssertionConfig, identity: &VerifiedIdentity) -> [u8; 32] {
    let id = &identity.identity;
    let mut hash = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_be_bytes());
        hash.update(bytes);
    };
    field(kid.as_bytes());
    field(&(config.audiences.len() as u64).to_be_bytes());
    for audience in &config.audiences {
        field(audience.as_bytes());
    }
    field(id.account().as_bytes());
    field(id.arn().as_bytes());
    field(id.user_id().as_bytes());
    field(id.region().as_bytes());
    field(identity.token.as_bytes());
    field(&(identity.roles.len() as u64).to_be_bytes());
    for role in &identity.roles {
        field(role.as_bytes());
    }
    field(identity.binding.as_str().as_bytes());
    field(&identity.expires_at.unix_timestamp().to_be_bytes());
    hash.finalize().into()
}
