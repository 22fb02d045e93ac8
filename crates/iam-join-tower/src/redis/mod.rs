//! Redis backends so that replicas share state (DESIGN §3, §6, §7), behind the `redis` feature.
//!
//! One [`RedisBackend`] per replica gives the layer three extension points:
//!
//! | Builder call | What replicas share | Redis keys |
//! |---|---|---|
//! | [`replay_store`](crate::IamJoinLayerBuilder::replay_store)`(backend.`[`replay_store()`](RedisBackend::replay_store)`)` | challenge redemptions: one atomic `SET … NX PX` | `{prefix}challenge:{{id}}` |
//! | [`rate_limiter`](crate::IamJoinLayerBuilder::rate_limiter)`(backend.`[`rate_limiter()`](RedisBackend::rate_limiter)`)` | GCRA limits, one Lua script per check, on Redis's clock | `{prefix}rl:{scope}:{{key}}` |
//! | [`shared_cache`](crate::IamJoinLayerBuilder::shared_cache)`(backend.`[`shared_cache()`](RedisBackend::shared_cache)`)` | STS answers (identity or rejection code, never a proof) | `{prefix}sts:{{sha256}}`, `{prefix}sts-lock:{{sha256}}` |
//!
//! Every key expires: a redemption with its challenge, a limit state once it has fully
//! replenished, a cached answer with its proof (or the negative TTL), a fill lock after the
//! fill wait ([`RedisBackend::with_fill_wait`]).
//!
//! # Servers
//!
//! One primary, Redis Cluster, or a Sentinel-managed primary ([`RedisServers`]); `rediss://`
//! for TLS (system roots or a given CA, optional client certificate, server name always
//! checked, [`RedisTls`]); an ACL user and password ([`RedisConfig::username`],
//! [`RedisConfig::password`]). Every key carries a hash tag (`{…}`) and every script and
//! pipeline touches the keys of one tag only, so in a cluster each stays in one slot. Redis ≥ 5
//! (scripts that read `TIME`; older versions are handled with `redis.replicate_commands()`).
//!
//! The ACL user needs: `+get +set +del +evalsha +script|load +time +ping`, plus
//! `+cluster|slots +cluster|shards` in a cluster and `+role +info` behind Sentinel, on keys
//! `~{prefix}*` (see deploy/README.md).
//!
//! **Challenge key.** A challenge issued by one replica is redeemed at whichever replica the load
//! balancer picks, so every replica must be built with the same
//! [`challenge_key`](crate::IamJoinLayerBuilder::challenge_key); with a random per-process key
//! (the default) other replicas answer `challenge_invalid`.
//!
//! # Faults
//!
//! Every command is bounded by [`RedisConfig::command_timeout`]. After a connection failure or a
//! timeout, commands fail at once (no waiting) except one probe every 200 ms, so while Redis is
//! down or hanging a request waits at most one command timeout, and usually not at all.
//!
//! - Challenge redemption **fails closed**: the layer answers 503 `replay_store_unavailable`
//!   (a challenge that cannot be recorded could be replayed).
//! - Rate limits **fail open**: the layer admits, counts
//!   `iam_join_rate_limited_total{scope="…_failed_open"}` and warns.
//! - The shared cache is **bypassed**: a lookup is a miss, a store is skipped; each replica still
//!   has its local cache.
//!
//! Failures are logged at `warn` under the target `iam_join::redis`, at most once per 10 s per
//! kind with a count of the ones not logged, and the return of Redis at `info`. Recovery is
//! automatic: the connection manager reconnects on the next command after Redis is back, and a
//! connection that only times out (a silent network partition) is replaced after a few
//! consecutive timeouts. The backend starts even if Redis is down at boot.
//!
//! # Example
//!
//! ```no_run
//! use iam_join_core::challenge::ChallengeKey;
//! use iam_join_core::policy::TokenPolicy;
//! use iam_join_tower::redis::{RedisBackend, RedisConfig};
//! use iam_join_tower::{IamJoinLayer, RateLimits};
//!
//! # async fn run(shared_key: &[u8], policy: TokenPolicy) -> Result<(), Box<dyn std::error::Error>> {
//! let limits = RateLimits::default();
//! let redis = RedisBackend::connect(
//!     RedisConfig::primary("redis://10.0.0.5:6379/0"),
//!     limits,
//! )
//! .await?;
//! let layer = IamJoinLayer::builder()
//!     .audience("teleport.example.com")
//!     .policy(policy)
//!     .challenge_key(ChallengeKey::from_bytes(shared_key)?) // the same on every replica
//!     .rate_limits(limits)
//!     .replay_store(redis.replay_store())
//!     .rate_limiter(redis.rate_limiter())
//!     .shared_cache(redis.shared_cache())
//!     .build()?;
//! # let _ = layer; Ok(()) }
//! ```

mod cache;
mod connection;
mod connector;
mod ratelimit;
mod replay;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::cache::SharedCache;
use crate::ratelimit::{RateLimiterBackend, RateLimits};
use crate::replay::ReplayStore;

use self::cache::RedisSharedCache;
use self::connection::RedisLink;
use self::connector::Connector;
use self::ratelimit::RedisRateLimiter;
use self::replay::RedisReplayStore;

/// The default [`RedisConfig::key_prefix`].
pub const DEFAULT_KEY_PREFIX: &str = "iam-join:";

/// How often a Sentinel-managed primary's address is checked with the sentinels.
const SENTINEL_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The default [`RedisBackend::with_fill_wait`]: the layer's default total STS timeout.
pub const DEFAULT_FILL_WAIT: Duration = Duration::from_secs(5);

/// Where the Redis servers are. The scheme of every URL decides TLS: `rediss://` speaks TLS
/// (certificate and server name checked, see [`RedisTls`]), `redis://` does not.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedisServers {
    /// One primary: `redis://host[:port][/db]`, `rediss://…`, or `unix:///path/to/redis.sock`
    /// (standalone Redis, an ElastiCache primary endpoint, a failover address).
    Primary(String),
    /// Redis Cluster (ElastiCache or MemoryDB cluster mode, Valkey): one or more node URLs; a
    /// configuration endpoint alone is enough, the other nodes are discovered. Redirections
    /// (`MOVED`, `ASK`), failover and resharding are followed by redis-rs.
    Cluster(Vec<String>),
    /// A primary managed by Redis Sentinel: asked of the sentinels at connect time and again
    /// after a connection failure, so a failover is followed without a restart.
    Sentinel {
        /// The name the sentinels monitor the primary under (`sentinel monitor <name> …`).
        master_name: String,
        /// Sentinel URLs (`redis://host:26379` or `rediss://…`), tried in order. The ACL
        /// credentials of [`RedisConfig`] are for the Redis nodes, not the sentinels.
        sentinels: Vec<String>,
    },
}

impl RedisServers {
    /// Every URL, for checks that apply to all of them.
    fn urls(&self) -> impl Iterator<Item = &str> {
        let urls: &[String] = match self {
            Self::Primary(url) => std::slice::from_ref(url),
            Self::Cluster(urls) => urls,
            Self::Sentinel { sentinels, .. } => sentinels,
        };
        urls.iter().map(String::as_str)
    }

    /// The URLs with any password redacted, for logs and `Debug`.
    fn display(&self) -> String {
        let urls: Vec<String> = self.urls().map(redact_url).collect();
        match self {
            Self::Primary(_) => urls.join(""),
            Self::Cluster(_) => format!("cluster [{}]", urls.join(", ")),
            Self::Sentinel { master_name, .. } => {
                format!("sentinel {master_name:?} via [{}]", urls.join(", "))
            }
        }
    }
}

/// A secret (password, private key): compared and cloned, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisSecret(String);

impl RedisSecret {
    /// Wraps a secret. Surrounding whitespace is kept: strip a file's trailing newline before.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RedisSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RedisSecret(***)")
    }
}

/// TLS settings for `rediss://` URLs. The server certificate is always checked against the
/// roots and the URL's host name; there is no switch to turn that off.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisTls {
    /// PEM roots to trust instead of the system's (e.g. a private CA). `None`: the system roots
    /// (what ElastiCache and MemoryDB certificates chain to).
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate chain and private key (PEM) for mutual TLS.
    pub client_identity: Option<RedisClientIdentity>,
}

/// A client certificate chain and its private key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisClientIdentity {
    /// The chain, leaf first.
    pub cert_pem: Vec<u8>,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key_pem: RedisSecret,
}

impl fmt::Debug for RedisClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisClientIdentity")
            .field("cert_pem", &format_args!("{} bytes", self.cert_pem.len()))
            .field("key_pem", &self.key_pem)
            .finish()
    }
}

/// How to reach Redis.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisConfig {
    /// The servers (one primary, a cluster, or a Sentinel-managed primary). A password inside a
    /// URL works but is better given in [`password`](Self::password); it is never logged.
    pub servers: RedisServers,
    /// ACL user (Redis 6+ `AUTH <user> <password>`); `None` with a password: the `default` user.
    pub username: Option<String>,
    /// ACL password (or `requirepass`). Never logged.
    pub password: Option<RedisSecret>,
    /// TLS settings for `rediss://` URLs.
    pub tls: RedisTls,
    /// Prepended to every key, so several deployments can share one Redis. Default
    /// [`DEFAULT_KEY_PREFIX`]. Replicas of one deployment must use the same prefix. No `{` or
    /// `}`: the backend puts its own hash tags in the keys (Redis Cluster).
    pub key_prefix: String,
    /// Bound on each attempt to (re)connect. Default 1 s.
    pub connect_timeout: Duration,
    /// Bound on each command, including waiting for a connection. This is what a request pays
    /// at most per Redis command when Redis is slow or gone: keep it small. Default 250 ms.
    pub command_timeout: Duration,
}

impl RedisConfig {
    /// The defaults for one primary at `url`.
    pub fn primary(url: impl Into<String>) -> Self {
        Self {
            servers: RedisServers::Primary(url.into()),
            ..Self::default()
        }
    }
}

impl RedisConfig {
    /// Checks everything that can be checked without connecting: URLs, TLS material, settings.
    /// [`RedisBackend::connect`] does the same; this is for configuration checks.
    ///
    /// # Errors
    ///
    /// As [`RedisBackend::connect`], except for the rates.
    pub fn validate(&self) -> Result<(), RedisSetupError> {
        self.connector().map(drop)
    }

    fn connector(&self) -> Result<Connector, RedisSetupError> {
        if self.connect_timeout.is_zero() {
            return Err(RedisSetupError::InvalidConfig(
                "connect_timeout must be more than zero",
            ));
        }
        if self.command_timeout.is_zero() {
            return Err(RedisSetupError::InvalidConfig(
                "command_timeout must be more than zero",
            ));
        }
        if self.key_prefix.contains(['{', '}']) {
            return Err(RedisSetupError::InvalidConfig(
                "key_prefix must not contain '{' or '}' (the backend places the hash tags)",
            ));
        }
        Connector::new(self)
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            servers: RedisServers::Primary("redis://127.0.0.1:6379".to_owned()),
            username: None,
            password: None,
            tls: RedisTls::default(),
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_millis(250),
        }
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("servers", &self.servers.display())
            .field("username", &self.username)
            .field("password", &self.password)
            .field("tls", &self.tls)
            .field("key_prefix", &self.key_prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .finish()
    }
}

/// The backend could not be set up. Redis being unreachable is **not** an error: the backend
/// starts anyway and connects when Redis is there.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RedisSetupError {
    /// The URL is not a Redis URL this build can use (the URL itself is not repeated: it may
    /// hold a password).
    #[error("invalid Redis URL: {0}")]
    InvalidUrl(String),
    /// A setting is out of range.
    #[error("invalid Redis setting: {0}")]
    InvalidConfig(&'static str),
}

/// Redis could not be used; the message says why (never with a secret in it).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Redis unavailable: {0}")]
pub struct RedisUnavailable(String);

/// Redis-backed replay store, rate limiter and shared STS cache for one replica. Cheap to clone;
/// clones share one connection.
///
/// Make one per layer (per replica): the shared cache tells its own in-flight STS calls from
/// other replicas' (see [`with_fill_wait`](Self::with_fill_wait)).
#[derive(Clone)]
pub struct RedisBackend {
    link: Arc<RedisLink>,
    limits: RateLimits,
    fill_wait: Duration,
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("link", &self.link)
            .field("limits", &self.limits)
            .field("fill_wait", &self.fill_wait)
            .finish()
    }
}

impl RedisBackend {
    /// Sets up the backend. `limits` are the rates the shared limiter enforces (pass the same
    /// value to the builder's [`rate_limits`](crate::IamJoinLayerBuilder::rate_limits)).
    ///
    /// Does not wait for Redis: it connects in the background and on first use, so a replica
    /// starts (and serves audience-bound proofs) while Redis is down. Fails only for a bad URL
    /// or out-of-range settings.
    ///
    /// # Errors
    ///
    /// [`RedisSetupError::InvalidUrl`] for a URL redis-rs cannot use,
    /// [`RedisSetupError::InvalidConfig`] for a zero timeout or a rate with a zero field.
    pub async fn connect(config: RedisConfig, limits: RateLimits) -> Result<Self, RedisSetupError> {
        let connector = config.connector()?;
        if limits.validate().is_err() {
            return Err(RedisSetupError::InvalidConfig(
                "every rate needs per_second and burst above zero, sts_reserved_percent 1 to 90",
            ));
        }
        let link = RedisLink::new(
            connector,
            config.key_prefix,
            config.command_timeout,
            config.servers.display(),
        )
        .map_err(|e| RedisSetupError::InvalidUrl(e.to_string()))?;
        let link = Arc::new(link);
        link.watch_failovers(SENTINEL_CHECK_INTERVAL);
        // Connect in the background so the first request does not pay for it, and say at start
        // whether Redis is there.
        let warm = Arc::clone(&link);
        let wait = config.connect_timeout + config.command_timeout;
        tokio::spawn(async move { warm.warm_up(wait).await });
        Ok(Self {
            link,
            limits,
            fill_wait: DEFAULT_FILL_WAIT,
        })
    }

    /// How long a replica that misses the shared cache waits for another replica that is
    /// already asking STS about the same proof, instead of asking STS itself (default
    /// [`DEFAULT_FILL_WAIT`]). Set it to the layer's total STS timeout: shorter may let two
    /// replicas call STS for one proof; longer only matters when the other replica's call fails,
    /// in which case this replica waits up to this long before calling STS itself.
    /// `Duration::ZERO` turns the wait off.
    #[must_use]
    pub fn with_fill_wait(mut self, wait: Duration) -> Self {
        self.fill_wait = wait;
        self
    }

    /// The challenge replay store: `SET {prefix}challenge:{id} 1 NX PX ttl`. Fails closed.
    pub fn replay_store(&self) -> Arc<dyn ReplayStore> {
        Arc::new(RedisReplayStore::new(Arc::clone(&self.link)))
    }

    /// The shared GCRA rate limiter for the limits given to [`connect`](Self::connect), with the
    /// same semantics as the in-memory limiter, on Redis's clock (replicas with skewed clocks
    /// agree). Fails open ([`RateDecision::Unavailable`](crate::ratelimit::RateDecision)).
    pub fn rate_limiter(&self) -> Arc<dyn RateLimiterBackend> {
        Arc::new(RedisRateLimiter::new(Arc::clone(&self.link), self.limits))
    }

    /// The shared second-level STS cache. On a miss it marks the proof as being fetched by this
    /// replica, so other replicas wait for the answer instead of calling STS too (at most
    /// [`with_fill_wait`](Self::with_fill_wait)). Failures are misses.
    ///
    /// Give each layer its own (one call per layer): the instance identifies its replica.
    pub fn shared_cache(&self) -> Arc<dyn SharedCache> {
        Arc::new(RedisSharedCache::new(
            Arc::clone(&self.link),
            self.fill_wait,
        ))
    }

    /// Whether Redis answers `PING` within the command timeout (for readiness checks; the layer
    /// itself works without Redis, with the fault behaviour of the module docs). Right after a
    /// failure this is `false` without asking, until the next probe is due.
    pub async fn is_reachable(&self) -> bool {
        self.ping().await.is_ok()
    }

    /// `PING` within the command timeout; the error says why Redis cannot be used (refused
    /// connection, TLS certificate not trusted or not for the host, wrong password, …), never
    /// with a password in it. Right after a failure it repeats that failure without asking,
    /// until the next probe is due.
    ///
    /// # Errors
    ///
    /// [`RedisUnavailable`] when Redis did not answer `PONG`.
    pub async fn ping(&self) -> Result<(), RedisUnavailable> {
        self.link
            .ping(self.link.command_timeout())
            .await
            .map_err(|e| RedisUnavailable(e.to_string()))
    }

    /// The key prefix.
    pub fn key_prefix(&self) -> &str {
        self.link.prefix()
    }
}

/// `redis://user:secret@host/0` → `redis://***@host/0`, for logs and `Debug`.
fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &url[..scheme_end + 3], &rest[at..]),
        None => url.to_owned(),
    }
}

/// The key of `id` in `kind` (`challenge`, `rl:client`, `sts`, …): `{prefix}{kind}:{<id>}`. The
/// braces are a Redis Cluster hash tag: keys of one `id` (an answer and its fill lock) share a
/// slot, so one script may touch them all.
fn tagged_key(prefix: &str, kind: &str, id: &str) -> String {
    format!("{prefix}{kind}:{{{id}}}")
}

/// Whole milliseconds for `PX`, at least 1 (Redis refuses `PX 0`).
fn px_millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact_url("redis://u:pw@h:6379/0"), "redis://***@h:6379/0");
        assert_eq!(redact_url("redis://:p@ss@h"), "redis://***@h");
        assert_eq!(
            redact_url("redis://h:6379/0?x=a@b"),
            "redis://h:6379/0?x=a@b"
        );
        assert_eq!(
            redact_url("unix:///run/redis.sock"),
            "unix:///run/redis.sock"
        );
        let mut cfg = RedisConfig::primary("redis://admin:hunter2@db/1");
        cfg.password = Some(RedisSecret::new("sw0rdfish"));
        cfg.tls.client_identity = Some(RedisClientIdentity {
            cert_pem: b"-----BEGIN CERTIFICATE-----".to_vec(),
            key_pem: RedisSecret::new("PRIVATEKEYBYTES"),
        });
        let printed = format!("{cfg:?}");
        for secret in ["hunter2", "sw0rdfish", "PRIVATEKEYBYTES"] {
            assert!(!printed.contains(secret), "{printed}");
        }
    }

    #[test]
    fn keys_of_one_id_share_a_hash_tag() {
        assert_eq!(tagged_key("p:", "sts", "ab12"), "p:sts:{ab12}");
        assert_eq!(tagged_key("p:", "sts-lock", "ab12"), "p:sts-lock:{ab12}");
        assert_eq!(
            tagged_key("iam-join:", "rl:client", "2001:db8::/64"),
            "iam-join:rl:client:{2001:db8::/64}"
        );
        // Redis hashes only what lies between the first '{' and the next '}'.
        let tag = |k: &str| {
            let open = k.find('{').unwrap_or(0);
            let close = k[open..].find('}').map_or(k.len(), |c| open + c);
            k[open + 1..close].to_owned()
        };
        assert_eq!(tag(&tagged_key("x:", "sts", "00ff")), "00ff");
        assert_eq!(tag(&tagged_key("x:", "sts-lock", "00ff")), "00ff");
    }

    #[test]
    fn px_is_never_zero() {
        assert_eq!(px_millis(Duration::ZERO), 1);
        assert_eq!(px_millis(Duration::from_micros(1500)), 1);
        assert_eq!(px_millis(Duration::from_secs(60)), 60_000);
    }

    #[tokio::test]
    async fn bad_urls_and_settings_are_refused_but_an_absent_redis_is_not() {
        let limits = RateLimits::default();
        for url in [
            "http://h",
            "not a url",
            "redis://h/notadb",
            "rediss://h/#insecure",
        ] {
            let cfg = RedisConfig::primary(url);
            assert!(matches!(
                RedisBackend::connect(cfg, limits).await,
                Err(RedisSetupError::InvalidUrl(_))
            ));
        }
        let mut tls_on_plain = RedisConfig::primary("redis://h");
        tls_on_plain.tls.ca_pem = Some(b"-----BEGIN CERTIFICATE-----".to_vec());
        let unusable = [
            RedisConfig {
                command_timeout: Duration::ZERO,
                ..RedisConfig::default()
            },
            RedisConfig {
                key_prefix: "{app}:".into(),
                ..RedisConfig::default()
            },
            RedisConfig {
                servers: RedisServers::Cluster(Vec::new()),
                ..RedisConfig::default()
            },
            RedisConfig {
                servers: RedisServers::Cluster(vec!["redis://a".into(), "rediss://b".into()]),
                ..RedisConfig::default()
            },
            RedisConfig {
                servers: RedisServers::Sentinel {
                    master_name: String::new(),
                    sentinels: vec!["redis://s:26379".into()],
                },
                ..RedisConfig::default()
            },
            tls_on_plain,
        ];
        for cfg in unusable {
            assert!(
                matches!(
                    RedisBackend::connect(cfg.clone(), limits).await,
                    Err(RedisSetupError::InvalidConfig(_))
                ),
                "{cfg:?}"
            );
        }
        let bad_rate = RateLimits {
            per_account: Some(crate::Rate {
                per_second: 0,
                burst: 1,
            }),
            ..limits
        };
        assert!(matches!(
            RedisBackend::connect(RedisConfig::default(), bad_rate).await,
            Err(RedisSetupError::InvalidConfig(_))
        ));
        // Nothing listens on port 1: setup still succeeds, the store fails closed.
        let absent = RedisConfig {
            servers: RedisServers::Primary("redis://127.0.0.1:1".into()),
            connect_timeout: Duration::from_millis(100),
            command_timeout: Duration::from_millis(100),
            ..RedisConfig::default()
        };
        let backend = RedisBackend::connect(absent, limits).await.expect("setup");
        assert!(
            backend
                .replay_store()
                .redeem("00", Duration::from_secs(60))
                .await
                .is_err()
        );
        assert_eq!(
            backend
                .rate_limiter()
                .check(crate::LimitScope::Client, "a")
                .await,
            crate::ratelimit::RateDecision::Unavailable
        );
        assert_eq!(backend.shared_cache().get("ab").await, None);
        assert!(!backend.is_reachable().await);
    }
}
