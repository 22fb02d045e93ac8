//! The upstream's copy of the verifier's key set: fetched over HTTP, cached, refreshed when it
//! is old or when an assertion names a key it does not have (at most once per interval).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};

use crate::keys::SigningAlgorithm;

/// The largest JWKS document accepted.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a key set could not be fetched.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// The JWKS URL is not an absolute `http://` or `https://` URL.
    #[error("JWKS URL must be an absolute http:// or https:// URL, got {0:?}")]
    Url(String),
    /// TLS could not be set up.
    #[error("JWKS client TLS setup: {0}")]
    Tls(String),
    /// Connecting, sending or reading failed, or timed out.
    #[error("JWKS fetch failed: {0}")]
    Fetch(String),
    /// Not 200.
    #[error("JWKS fetch answered {0}")]
    Status(http::StatusCode),
    /// Not a JWKS document.
    #[error("JWKS document is not valid: {0}")]
    Document(String),
}

/// Where the key set comes from.
pub trait JwksSource: Send + Sync + 'static {
    /// Fetches the current key set document.
    fn fetch(&self) -> BoxFuture<'_, Result<Bytes, JwksError>>;
}

/// A key set fetched with `GET` from a URL (`{prefix}/jwks.json` or `/.well-known/jwks.json`
/// on the verifier's listener).
#[derive(Clone, Debug)]
pub struct HttpJwks {
    url: http::Uri,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>,
    timeout: Duration,
}

impl HttpJwks {
    /// A source for `url`, with a 5 s timeout; `https://` uses the webpki roots.
    pub fn new(url: &str) -> Result<Self, JwksError> {
        let uri: http::Uri = url.parse().map_err(|_| JwksError::Url(url.into()))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
            return Err(JwksError::Url(url.into()));
        }
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(3)));
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| JwksError::Tls(e.to_string()))?
        .with_root_certificates(rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        })
        .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Self {
            url: uri,
            client: Client::builder(TokioExecutor::new()).build(https),
            timeout: Duration::from_secs(5),
        })
    }

    async fn get(&self) -> Result<Bytes, JwksError> {
        let request = http::Request::get(self.url.clone())
            .header(http::header::ACCEPT, "application/json")
            .body(Empty::new())
            .map_err(|e| JwksError::Fetch(e.to_string()))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| JwksError::Fetch(e.to_string()))?;
        if response.status() != http::StatusCode::OK {
            return Err(JwksError::Status(response.status()));
        }
        let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
            .collect()
            .await
            .map_err(|e| JwksError::Fetch(e.to_string()))?;
        Ok(body.to_bytes())
    }
}

impl JwksSource for HttpJwks {
    fn fetch(&self) -> BoxFuture<'_, Result<Bytes, JwksError>> {
        Box::pin(async move {
            tokio::time::timeout(self.timeout, self.get())
                .await
                .map_err(|_| JwksError::Fetch("timed out".into()))?
        })
    }
}

/// A fixed key set (e.g. read from a file the upstream trusts); never changes.
#[derive(Clone, Debug)]
pub struct StaticJwks(pub Bytes);

impl JwksSource for StaticJwks {
    fn fetch(&self) -> BoxFuture<'_, Result<Bytes, JwksError>> {
        let document = self.0.clone();
        Box::pin(async move { Ok(document) })
    }
}

/// A usable public key: the algorithm is fixed by the key, never taken from a token.
#[derive(Clone)]
pub(crate) struct TrustedKey {
    pub(crate) algorithm: SigningAlgorithm,
    pub(crate) key: DecodingKey,
}

struct Snapshot {
    keys: HashMap<String, TrustedKey>,
    fetched: Instant,
}

/// Keeps the key set: fetched once, refreshed when older than `max_age` or when a `kid` is
/// unknown, with at most one fetch per `min_refresh_interval` so a stream of forged `kid`s
/// cannot turn the upstream into a load generator against the verifier.
pub(crate) struct JwksCache {
    source: Box<dyn JwksSource>,
    current: ArcSwapOption<Snapshot>,
    last_attempt: tokio::sync::Mutex<Option<Instant>>,
    max_age: Duration,
    min_refresh_interval: Duration,
}

pub(crate) enum Lookup {
    Found(TrustedKey),
    Unknown,
    Unavailable,
}

impl JwksCache {
    pub(crate) fn new(
        source: Box<dyn JwksSource>,
        max_age: Duration,
        min_refresh_interval: Duration,
    ) -> Self {
        Self {
            source,
            current: ArcSwapOption::empty(),
            last_attempt: tokio::sync::Mutex::new(None),
            max_age,
            min_refresh_interval,
        }
    }

    pub(crate) fn set_refresh(&mut self, max_age: Duration, min_refresh_interval: Duration) {
        self.max_age = max_age;
        self.min_refresh_interval = min_refresh_interval;
    }

    pub(crate) async fn key(&self, kid: &str) -> Lookup {
        if let Some(snapshot) = self.current.load_full()
            && snapshot.fetched.elapsed() < self.max_age
            && let Some(key) = snapshot.keys.get(kid)
        {
            return Lookup::Found(key.clone());
        }
        self.refresh_then_find(kid).await
    }

    async fn refresh_then_find(&self, kid: &str) -> Lookup {
        // One refresh at a time; whoever waited re-reads what the winner fetched.
        let mut last_attempt = self.last_attempt.lock().await;
        let recent = last_attempt.is_some_and(|at| at.elapsed() < self.min_refresh_interval);
        let current = self.current.load_full();
        let fresh = current
            .as_ref()
            .is_some_and(|s| s.fetched.elapsed() < self.max_age);
        if let Some(key) = current.as_ref().and_then(|s| s.keys.get(kid))
            && (fresh || recent)
        {
            return Lookup::Found(key.clone());
        }
        if recent {
            return match current {
                Some(_) => Lookup::Unknown,
                None => Lookup::Unavailable,
            };
        }
        *last_attempt = Some(Instant::now());
        match self.source.fetch().await.and_then(|doc| parse_jwks(&doc)) {
            Ok(keys) => {
                let found = keys.get(kid).cloned();
                self.current.store(Some(Arc::new(Snapshot {
                    keys,
                    fetched: Instant::now(),
                })));
                found.map_or(Lookup::Unknown, Lookup::Found)
            }
            // A failed refresh keeps the old set: better a stale key than an outage.
            Err(_) => match current.as_ref().map(|s| s.keys.get(kid)) {
                Some(Some(key)) => Lookup::Found(key.clone()),
                Some(None) => Lookup::Unknown,
                None => Lookup::Unavailable,
            },
        }
    }
}

/// Reads a JWKS document, keeping the keys this verifier can use (P-256 for ES256, Ed25519 for
/// EdDSA, with a `kid`, and an `alg` that agrees if present); others are ignored so a set that
/// also publishes, say, RSA keys still works.
pub(crate) fn parse_jwks(document: &[u8]) -> Result<HashMap<String, TrustedKey>, JwksError> {
    #[derive(serde::Deserialize)]
    struct Document {
        keys: Vec<serde_json::Value>,
    }
    let doc: Document =
        serde_json::from_slice(document).map_err(|e| JwksError::Document(e.to_string()))?;
    Ok(doc
        .keys
        .into_iter()
        .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
        .filter_map(|jwk| {
            let kid = jwk.common.key_id.clone()?;
            let algorithm = match &jwk.algorithm {
                AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
                    SigningAlgorithm::Es256
                }
                AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
                    SigningAlgorithm::EdDsa
                }
                _ => return None,
            };
            if let Some(alg) = jwk.common.key_algorithm
                && alg.to_string() != algorithm.as_str()
            {
                return None;
            }
            let key = DecodingKey::from_jwk(&jwk).ok()?;
            Some((kid, TrustedKey { algorithm, key }))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting {
        fetches: Arc<AtomicUsize>,
        document: Bytes,
    }

    impl JwksSource for Counting {
        fn fetch(&self) -> BoxFuture<'_, Result<Bytes, JwksError>> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            let document = self.document.clone();
            Box::pin(async move { Ok(document) })
        }
    }

    fn jwks_of(keys: &[crate::AssertionKey]) -> Bytes {
        let set = jsonwebtoken::jwk::JwkSet {
            keys: keys.iter().map(|k| k.public_jwk().clone()).collect(),
        };
        Bytes::from(serde_json::to_vec(&set).unwrap())
    }

    #[tokio::test]
    async fn unknown_kid_refreshes_at_most_once_per_interval() {
        let key = crate::AssertionKey::generate(SigningAlgorithm::Es256).unwrap();
        let fetches = Arc::new(AtomicUsize::new(0));
        let cache = JwksCache::new(
            Box::new(Counting {
                fetches: fetches.clone(),
                document: jwks_of(std::slice::from_ref(&key)),
            }),
            Duration::from_secs(300),
            Duration::from_secs(60),
        );
        assert!(matches!(cache.key(key.kid()).await, Lookup::Found(_)));
        assert!(matches!(cache.key(key.kid()).await, Lookup::Found(_)));
        assert_eq!(
            fetches.load(Ordering::SeqCst),
            1,
            "known kid: served from cache"
        );
        for forged in ["a", "b", "c", "d"] {
            assert!(matches!(cache.key(forged).await, Lookup::Unknown));
        }
        assert_eq!(
            fetches.load(Ordering::SeqCst),
            1,
            "unknown kids within the interval: no refetch"
        );
    }

    #[test]
    fn unusable_keys_are_ignored_not_fatal() {
        let key = crate::AssertionKey::generate(SigningAlgorithm::EdDsa).unwrap();
        let good = serde_json::to_value(key.public_jwk()).unwrap();
        let mut lying_alg = good.clone();
        lying_alg["alg"] = "ES256".into();
        lying_alg["kid"] = "lying".into();
        let mut no_kid = good.clone();
        no_kid.as_object_mut().unwrap().remove("kid");
        let rsa = serde_json::json!({"kty": "RSA", "kid": "rsa", "n": "AQAB", "e": "AQAB"});
        let hmac = serde_json::json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"});
        let doc = serde_json::json!({"keys": [good, lying_alg, no_kid, rsa, hmac, {"kty": "??"}]});
        let keys = parse_jwks(doc.to_string().as_bytes()).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), [key.kid()]);
        assert!(parse_jwks(b"[]").is_err());
    }
}
