//! The proxy's configuration: a YAML file read once into validated, typed settings.
//!
//! Every mapping rejects unknown keys, so a misspelt setting is an error naming it rather than a
//! default silently kept. Every error names the field (`upstream.url: ...`). Relative paths
//! (`tokens`, `tls.cert`, `tls.key`, `upstream.ca_file`, `challenge_key_file`) are relative to
//! the directory of the configuration file.
//!
//! ```yaml
//! listen: 0.0.0.0:8443                  # required
//! tls:                                  # optional; without it the proxy speaks plain HTTP
//!   cert: /etc/iam-join-proxy/tls.crt   # PEM chain
//!   key: /etc/iam-join-proxy/tls.key    # PEM private key
//! upstream:
//!   url: https://teleport.internal:3080 # required; http:// or https://, no path
//!   sni: teleport.example.com           # optional: TLS server name to send and verify
//!   ca_file: /etc/iam-join-proxy/upstream-ca.pem  # optional: trust only these roots
//!   timeout: 60s                        # from the end of the request body to the response
//!                                       # headers (default 60s)
//!   client_body_timeout: 30s            # longest pause in a client's request body (408)
//!   max_concurrent_requests: 512        # in flight to the upstream; beyond: 503 upstream_busy
//!   pool_max_idle: 32                   # idle upstream connections kept
//!   pool_idle_timeout: 30s
//!   connect_timeout: 5s                 # default 5s
//!   preserve_host: false                # send the client's Host instead of the upstream's
//! audience: teleport.example.com        # the audience proofs must be bound to (optional
//!                                       # when only challenge-bound proofs are used)
//! default_token: iam-token              # the join token when X-IAM-Join-Token is absent
//! tokens: /etc/iam-join-proxy/tokens    # a token file, or a directory of *.yaml / *.yml
//! prefix: /v1/iam-join                  # where the layer's own endpoints live (default)
//! public_paths: ["/webapi/ping"]        # passed through without a proof (exact, or prefix*)
//! challenge_paths: ["/v1/webapi/host/*"] # accept challenge-bound proofs only
//! sts:
//!   fips: false                         # accept FIPS STS endpoints only
//!   extra_regions: []                   # regions newer than this release
//!   overrides:                          # send proofs for a host to another URL (VPC endpoint)
//!     sts.us-west-2.amazonaws.com: https://vpce-0123.sts.us-west-2.vpce.amazonaws.com
//!   connect_timeout: 2s
//!   timeout: 5s
//! cache:
//!   capacity: 100000                    # STS answers kept
//!   negative_ttl: 10s                   # how long an STS rejection is remembered
//! rate_limits:                          # absent: the default; null: disabled
//!   per_client: {per_second: 20, burst: 40}
//!   per_key_id: {per_second: 20, burst: 40}
//!   sts_budget: {per_second: 200, burst: 400}
//!   sts_reserved_percent: 50            # of sts_budget, for recently admitted clients
//!   per_account: null
//! trusted_proxies: [10.0.0.0/8]         # whose X-Forwarded-For is believed
//! admin:
//!   listen: 127.0.0.1:9090              # /metrics, /healthz, /readyz (optional)
//! log:
//!   format: json                        # json or human (default human)
//!   level: info                         # a tracing filter, e.g. "info,iam_join_tower=debug"
//! challenge_key_file: /etc/iam-join-proxy/challenge.key  # >= 32 bytes; shared by replicas
//!                                       # (only with redis: a shared key needs a shared store)
//! drain_timeout: 30s                    # how long in-flight requests may finish on shutdown
//! connections:                          # hostile or broken clients
//!   max: 480                            # open at once (default: from the open-files limit)
//!   max_per_client: 256                 # from one address (IPv6: one /64)
//!   handshake_timeout: 10s              # TLS handshake + first request's headers
//!   idle_timeout: 60s                   # no request in flight (HTTP/2: GOAWAY)
//!   http2_keep_alive: 30s               # PING interval and answer timeout
//!   http2_max_concurrent_streams: 100
//! redis:                                # only with the `redis` cargo feature; see [`redis`]
//!   url: rediss://redis:6379            # or cluster: [...], or sentinel: {master_name, urls}
//!   username: iam-join                  # ACL user; password_file or password_env, never here
//!   password_file: /run/secrets/redis-password
//! organizations:                        # only with the `organizations` cargo feature
//!   region: us-east-1                   # the Organizations endpoint's region (default)
//!   role_arn: arn:aws:iam::111111111111:role/iam-join-org-reader  # optional AssumeRole
//!   cache_ttl: 10m                      # an account's organization and OU path
//!   negative_ttl: 1m                    # "not in the organization"
//! ```

pub mod assertion;
pub mod audit;
pub mod organizations;
pub mod otlp;
mod raw;
pub mod redis;

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::Uri;
use iam_join_core::{Audience, StsHostAllowList, TokenName};
use iam_join_tower::{Rate, RateLimits};
use ipnet::IpNet;

pub use self::assertion::{AssertionKeys, AssertionSettings};
pub use self::audit::{AuditDestination, AuditSettings};
pub use self::organizations::OrgSettings;
pub use self::otlp::{OtlpSettings, TraceSettings};
use self::raw::{RawConfig, RawDuration, RawRate};
pub use self::redis::{PasswordSource, RedisSettings, RedisTopology};

/// Why a configuration is unusable. Each message names the field.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: io::Error,
    },
    /// Not well-formed YAML, or not the shape of a configuration (unknown or missing field, wrong
    /// type). The message comes from the YAML reader and starts with the field path, e.g.
    /// `upstream: unknown field `urll`, expected one of ...`.
    #[error("{message}")]
    Syntax {
        /// What is wrong.
        message: String,
    },
    /// A field has an unusable value.
    #[error("{field}: {message}")]
    Invalid {
        /// The field, e.g. `upstream.url` or `rate_limits.per_client.burst`.
        field: String,
        /// What is wrong.
        message: String,
    },
}

impl ConfigError {
    /// An error about `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The field the error is about, when it is known.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// Where the token policy comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenSource {
    /// A file or a directory of `*.yaml` / `*.yml` files, watched for changes.
    Path(PathBuf),
    /// YAML held in memory (the demo's embedded policy); `name` names it in messages. Not
    /// reloaded.
    Inline {
        /// The YAML text.
        yaml: String,
        /// A name for messages, like a file name.
        name: String,
    },
}

/// The validated configuration. Build it with [`Config::load`] or [`Config::from_yaml_str`];
/// fields may be adjusted afterwards (tests, the demo).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// Address of the proxy listener.
    pub listen: SocketAddr,
    /// Serve TLS with this certificate and key.
    pub tls: Option<TlsFiles>,
    /// The upstream.
    pub upstream: UpstreamConfig,
    /// The audience proofs must be bound to.
    pub audience: Option<String>,
    /// The join token when a request names none.
    pub default_token: Option<String>,
    /// The token policy.
    pub tokens: TokenSource,
    /// Prefix of the layer's endpoints.
    pub prefix: String,
    /// Paths passed through without a proof.
    pub public_paths: Vec<String>,
    /// Paths that accept challenge-bound proofs only.
    pub challenge_paths: Vec<String>,
    /// STS settings.
    pub sts: StsConfig,
    /// Cache settings.
    pub cache: CacheConfig,
    /// Rate limits.
    pub rate_limits: RateLimits,
    /// Networks of proxies in front of this one whose forwarding headers are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// The admin listener, if any.
    pub admin: Option<AdminConfig>,
    /// Logging.
    pub log: LogConfig,
    /// The challenge HMAC key file.
    pub challenge_key_file: Option<PathBuf>,
    /// How long in-flight requests may take to finish on shutdown.
    pub drain_timeout: Duration,
    /// Limits on client connections (hostile or broken clients).
    pub connections: ConnectionLimits,
    /// Signed identity assertions for the upstream, when configured.
    pub assertion: Option<AssertionSettings>,
    /// The audit trail, when configured.
    pub audit: Option<AuditSettings>,
    /// OTLP push of the metrics, when configured.
    pub otlp: Option<OtlpSettings>,
    /// The Redis backend (shared replay store, rate limits and cache).
    #[cfg(feature = "redis")]
    pub redis: Option<RedisSettings>,
    /// AWS Organizations lookups for organization rules.
    #[cfg(feature = "organizations")]
    pub organizations: Option<OrgSettings>,
}

/// Certificate chain and key files (PEM).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Where requests go once admitted.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct UpstreamConfig {
    /// `http://host[:port]` or `https://host[:port]`.
    pub url: Uri,
    /// TLS server name to send and verify instead of the URL's host.
    pub sni: Option<String>,
    /// PEM roots to trust instead of the Mozilla (webpki) roots.
    pub ca_file: Option<PathBuf>,
    /// Time allowed from the end of the request body until the upstream's response headers
    /// arrive (response bodies and upgraded connections may stream for longer).
    pub timeout: Duration,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Send the client's `Host` instead of the upstream's.
    pub preserve_host: bool,
    /// The longest pause allowed while a client's request body is read; a client that stalls
    /// longer gets `408 request_timeout`. Separate from `timeout`, which only starts once the
    /// whole request has been sent.
    pub client_body_timeout: Duration,
    /// Most requests in flight to the upstream at once; beyond it the proxy answers
    /// `503 upstream_busy` instead of opening more upstream connections.
    pub max_concurrent_requests: usize,
    /// Most idle upstream connections kept for reuse.
    pub pool_max_idle: usize,
    /// How long an idle upstream connection is kept.
    pub pool_idle_timeout: Duration,
}

/// Limits on client connections, so that clients that connect and then send nothing (or
/// nothing more) cannot exhaust file descriptors or hold shutdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionLimits {
    /// Most client connections open at once on the proxy listener; further clients wait in
    /// the kernel's accept queue. Default: from the open-files limit (see
    /// [`ConnectionLimits::from_open_files_limit`]).
    pub max: usize,
    /// Most connections open at once from one client address (IPv6: one /64).
    pub max_per_client: usize,
    /// Time a new connection has to finish the TLS handshake and send its first request's
    /// headers (HTTP/1) or preface (HTTP/2).
    pub handshake_timeout: Duration,
    /// A connection with no request in flight for this long is closed (HTTP/2: GOAWAY).
    pub idle_timeout: Duration,
    /// Interval of HTTP/2 PINGs; a peer that does not answer within the same time is gone.
    pub http2_keep_alive: Duration,
    /// Most concurrent streams (requests) on one HTTP/2 connection.
    pub http2_max_concurrent_streams: u32,
}

/// File descriptors kept back from client connections: the admin listener, token files,
/// STS and Redis connections, logs.
const RESERVED_FILES: u64 = 64;

impl ConnectionLimits {
    /// The default `max` for a process allowed `open_files` descriptors: half of what is left
    /// after [`RESERVED_FILES`], since an admitted request holds a client and an upstream socket.
    pub fn from_open_files_limit(open_files: u64) -> usize {
        let usable = open_files.saturating_sub(RESERVED_FILES) / 2;
        usize::try_from(usable.max(8)).unwrap_or(usize::MAX)
    }
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max: Self::from_open_files_limit(open_files_limit().unwrap_or(1024)),
            max_per_client: 256,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            http2_keep_alive: Duration::from_secs(30),
            http2_max_concurrent_streams: 100,
        }
    }
}

/// The soft open-files limit of this process (`RLIMIT_NOFILE`), where the OS tells it without
/// `unsafe` (Linux `/proc/self/limits`).
pub fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    soft.parse().ok()
}

/// STS settings of the layer.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct StsConfig {
    /// Accept FIPS endpoints only.
    pub fips: bool,
    /// Regions to allow beyond the built-in list.
    pub extra_regions: Vec<String>,
    /// Host → base URL overrides.
    pub overrides: BTreeMap<String, String>,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Total timeout of one STS call.
    pub timeout: Duration,
}

/// STS answer cache settings.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct CacheConfig {
    /// Most entries.
    pub capacity: u64,
    /// How long a definitive STS rejection is kept.
    pub negative_ttl: Duration,
}

/// The admin listener.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct AdminConfig {
    /// Its address.
    pub listen: SocketAddr,
}

/// Log format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    #[default]
    Human,
}

/// Logging settings.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LogConfig {
    /// The format.
    pub format: LogFormat,
    /// A `tracing` filter directive, e.g. `info` or `info,iam_join_tower=debug`.
    pub level: String,
}

impl LogConfig {
    /// Logging in `format`, filtered by `level` (a `tracing` filter directive).
    pub fn new(format: LogFormat, level: impl Into<String>) -> Self {
        Self {
            format,
            level: level.into(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Human,
            level: "info".to_owned(),
        }
    }
}

/// Default upstream timeout (until response headers).
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);
/// Default upstream connect timeout.
pub const DEFAULT_UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default longest pause in a client's request body.
pub const DEFAULT_CLIENT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Default cap on concurrent upstream requests.
pub const DEFAULT_UPSTREAM_MAX_CONCURRENT: usize = 512;
/// Default drain time on shutdown.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

impl Config {
    /// Reads and validates a configuration file.
    ///
    /// # Errors
    ///
    /// The file cannot be read, is not valid YAML of the right shape, or a field has an
    /// unusable value; see [`ConfigError`].
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        Self::from_yaml_str(&text, base)
    }

    /// Validates configuration text; relative paths are taken relative to `base_dir`.
    ///
    /// # Errors
    ///
    /// See [`ConfigError`].
    pub fn from_yaml_str(text: &str, base_dir: &Path) -> Result<Self, ConfigError> {
        let raw: RawConfig = serde_norway::from_str(text).map_err(|e| ConfigError::Syntax {
            message: e.to_string(),
        })?;
        validate(raw, base_dir)
    }

    /// The token file or directory, when the policy comes from disk.
    pub fn tokens_path(&self) -> Option<&Path> {
        match &self.tokens {
            TokenSource::Path(p) => Some(p),
            TokenSource::Inline { .. } => None,
        }
    }
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::invalid(field, message)
}

fn duration(raw: Option<RawDuration>, default: Duration) -> Duration {
    raw.map_or(default, |d| d.0)
}

fn resolve(base: &Path, p: PathBuf) -> PathBuf {
    if p.is_absolute() { p } else { base.join(p) }
}

fn socket_addr(field: &str, s: &str) -> Result<SocketAddr, ConfigError> {
    s.trim().parse().map_err(|_| {
        invalid(
            field,
            format!("{s:?} is not an address like 0.0.0.0:8443 or [::]:8443"),
        )
    })
}

fn positive(field: &str, d: Duration) -> Result<Duration, ConfigError> {
    if d.is_zero() {
        Err(invalid(field, "must be longer than zero"))
    } else {
        Ok(d)
    }
}

fn validate(raw: RawConfig, base: &Path) -> Result<Config, ConfigError> {
    let listen = socket_addr("listen", &raw.listen)?;
    let tls = raw.tls.map(|t| TlsFiles {
        cert: resolve(base, t.cert),
        key: resolve(base, t.key),
    });
    let upstream = validate_upstream(raw.upstream, base)?;

    // The names' rules live in core (iam_join_core::names), shared with the layer's builder
    // and the client.
    if let Some(a) = &raw.audience {
        a.parse::<Audience>()
            .map_err(|e| invalid("audience", e.to_string()))?;
    }
    if let Some(t) = &raw.default_token {
        t.parse::<TokenName>()
            .map_err(|e| invalid("default_token", e.to_string()))?;
    }
    if raw.tokens.as_os_str().is_empty() {
        return Err(invalid("tokens", "must name a token file or directory"));
    }
    let prefix = raw
        .prefix
        .unwrap_or_else(|| iam_join_tower::DEFAULT_PREFIX.to_owned());
    if !prefix.starts_with('/') || prefix.ends_with('/') || prefix.contains(['?', '#', '*']) {
        return Err(invalid(
            "prefix",
            "must be a path starting with '/' and not ending with '/', e.g. /v1/iam-join",
        ));
    }
    validate_paths("public_paths", &raw.public_paths)?;
    validate_paths("challenge_paths", &raw.challenge_paths)?;

    let sts = validate_sts(raw.sts)?;

    let cache = CacheConfig {
        capacity: raw.cache.capacity.unwrap_or(100_000),
        negative_ttl: duration(raw.cache.negative_ttl, Duration::from_secs(10)),
    };
    if cache.capacity == 0 {
        return Err(invalid("cache.capacity", "must be at least 1"));
    }
    if cache.negative_ttl > Duration::from_secs(15 * 60) {
        return Err(invalid("cache.negative_ttl", "must be at most 15m"));
    }

    let defaults = RateLimits::default();
    let rate_limits = RateLimits {
        per_client: rate(
            "rate_limits.per_client",
            raw.rate_limits.per_client,
            defaults.per_client,
        )?,
        per_key_id: rate(
            "rate_limits.per_key_id",
            raw.rate_limits.per_key_id,
            defaults.per_key_id,
        )?,
        sts_budget: rate(
            "rate_limits.sts_budget",
            raw.rate_limits.sts_budget,
            defaults.sts_budget,
        )?,
        sts_reserved_percent: raw
            .rate_limits
            .sts_reserved_percent
            .unwrap_or(defaults.sts_reserved_percent),
        per_account: rate(
            "rate_limits.per_account",
            raw.rate_limits.per_account,
            defaults.per_account,
        )?,
    };
    // The layer's rule, and its wording; the fields are named as in `rate_limits:`.
    rate_limits
        .validate()
        .map_err(|e| invalid(format!("rate_limits.{}", e.field()), e.reason()))?;

    let trusted_proxies = raw
        .trusted_proxies
        .iter()
        .enumerate()
        .map(|(i, s)| {
            parse_net(s).ok_or_else(|| {
                invalid(
                    format!("trusted_proxies[{i}]"),
                    format!("{s:?} is not a network like 10.0.0.0/8 or an address"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;

    let admin = raw
        .admin
        .map(|a| socket_addr("admin.listen", &a.listen).map(|listen| AdminConfig { listen }))
        .transpose()?;
    if let Some(a) = &admin
        && a.listen == listen
        && listen.port() != 0
    {
        return Err(invalid("admin.listen", "must differ from listen"));
    }

    let log = LogConfig {
        format: match raw.log.format {
            Some(raw::RawLogFormat::Json) => LogFormat::Json,
            Some(raw::RawLogFormat::Human) | None => LogFormat::Human,
        },
        level: raw.log.level.unwrap_or_else(|| "info".to_owned()),
    };
    if tracing_subscriber::EnvFilter::try_new(&log.level).is_err() {
        return Err(invalid(
            "log.level",
            format!(
                "{:?} is not a level or filter such as \"info\" or \"info,iam_join_tower=debug\"",
                log.level
            ),
        ));
    }

    let challenge_key_file = raw.challenge_key_file.map(|p| resolve(base, p));
    let drain_timeout = duration(raw.drain_timeout, DEFAULT_DRAIN_TIMEOUT);
    let connections = validate_connections(&raw.connections)?;
    let assertion = raw
        .assertion
        .map(|a| self::assertion::validate(a, base))
        .transpose()?;
    let otlp = raw.otlp.map(self::otlp::validate).transpose()?;
    let audit = raw
        .audit
        .map(|a| self::audit::validate(a, base, std::env::var("HOSTNAME").ok()))
        .transpose()?;

    #[cfg(feature = "redis")]
    let redis = match raw.redis {
        None => None,
        Some(r) => {
            if challenge_key_file.is_none() {
                return Err(invalid(
                    "challenge_key_file",
                    "is required with redis: every replica must sign challenges with the same key",
                ));
            }
            Some(self::redis::validate(r, base)?)
        }
    };
    #[cfg(not(feature = "redis"))]
    if raw.redis.is_some() {
        return Err(invalid(
            "redis",
            "this iam-join-proxy was built without redis support; rebuild with `--features redis`",
        ));
    }
    #[cfg(feature = "organizations")]
    let organizations = raw
        .organizations
        .map(self::organizations::validate)
        .transpose()?;
    #[cfg(not(feature = "organizations"))]
    if raw.organizations.is_some() {
        return Err(invalid(
            "organizations",
            "this iam-join-proxy was built without AWS Organizations support; rebuild with \
             `--features organizations`",
        ));
    }
    #[cfg(feature = "redis")]
    let shared_store = redis.is_some();
    #[cfg(not(feature = "redis"))]
    let shared_store = false;
    if challenge_key_file.is_some() && !shared_store {
        return Err(invalid(
            "challenge_key_file",
            "needs redis: without a shared replay store each process keeps its own record of \
             redeemed challenges, so a challenge signed with a shared key could be redeemed once \
             on every replica; leave it out (each process then makes its own key) or configure redis",
        ));
    }

    Ok(Config {
        listen,
        tls,
        upstream,
        audience: raw.audience,
        default_token: raw.default_token,
        tokens: TokenSource::Path(resolve(base, raw.tokens)),
        prefix,
        public_paths: raw.public_paths,
        challenge_paths: raw.challenge_paths,
        sts,
        cache,
        rate_limits,
        trusted_proxies,
        admin,
        log,
        challenge_key_file,
        drain_timeout,
        connections,
        assertion,
        audit,
        otlp,
        #[cfg(feature = "redis")]
        redis,
        #[cfg(feature = "organizations")]
        organizations,
    })
}

fn validate_upstream(raw: raw::RawUpstream, base: &Path) -> Result<UpstreamConfig, ConfigError> {
    let url: Uri = raw
        .url
        .trim()
        .parse()
        .map_err(|_| invalid("upstream.url", format!("{:?} is not a URL", raw.url)))?;
    let https = match url.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => {
            return Err(invalid(
                "upstream.url",
                "must start with http:// or https://",
            ));
        }
    };
    let Some(authority) = url.authority() else {
        return Err(invalid("upstream.url", "must name a host"));
    };
    if authority.as_str().contains('@') {
        return Err(invalid("upstream.url", "must not contain userinfo"));
    }
    if !matches!(url.path(), "" | "/") || url.query().is_some() {
        return Err(invalid(
            "upstream.url",
            "must not have a path or query: requests keep their own path",
        ));
    }
    if let Some(sni) = &raw.sni {
        if !https {
            return Err(invalid(
                "upstream.sni",
                "only applies to an https:// upstream",
            ));
        }
        if rustls_pki_types::ServerName::try_from(sni.as_str()).is_err() {
            return Err(invalid(
                "upstream.sni",
                format!("{sni:?} is not a DNS name or IP address"),
            ));
        }
    }
    if raw.ca_file.is_some() && !https {
        return Err(invalid(
            "upstream.ca_file",
            "only applies to an https:// upstream",
        ));
    }
    Ok(UpstreamConfig {
        url,
        sni: raw.sni,
        ca_file: raw.ca_file.map(|p| resolve(base, p)),
        timeout: positive(
            "upstream.timeout",
            duration(raw.timeout, DEFAULT_UPSTREAM_TIMEOUT),
        )?,
        connect_timeout: positive(
            "upstream.connect_timeout",
            duration(raw.connect_timeout, DEFAULT_UPSTREAM_CONNECT_TIMEOUT),
        )?,
        preserve_host: raw.preserve_host,
        client_body_timeout: positive(
            "upstream.client_body_timeout",
            duration(raw.client_body_timeout, DEFAULT_CLIENT_BODY_TIMEOUT),
        )?,
        max_concurrent_requests: at_least_one(
            "upstream.max_concurrent_requests",
            raw.max_concurrent_requests
                .unwrap_or(DEFAULT_UPSTREAM_MAX_CONCURRENT),
        )?,
        pool_max_idle: raw.pool_max_idle.unwrap_or(32),
        pool_idle_timeout: duration(raw.pool_idle_timeout, Duration::from_secs(30)),
    })
}

fn at_least_one(field: &str, n: usize) -> Result<usize, ConfigError> {
    if n == 0 {
        Err(invalid(field, "must be at least 1"))
    } else {
        Ok(n)
    }
}

fn validate_connections(raw: &raw::RawConnections) -> Result<ConnectionLimits, ConfigError> {
    let d = ConnectionLimits::default();
    let streams = raw
        .http2_max_concurrent_streams
        .unwrap_or(d.http2_max_concurrent_streams);
    if streams == 0 {
        return Err(invalid(
            "connections.http2_max_concurrent_streams",
            "must be at least 1",
        ));
    }
    Ok(ConnectionLimits {
        max: at_least_one("connections.max", raw.max.unwrap_or(d.max))?,
        max_per_client: at_least_one(
            "connections.max_per_client",
            raw.max_per_client.unwrap_or(d.max_per_client),
        )?,
        handshake_timeout: positive(
            "connections.handshake_timeout",
            duration(raw.handshake_timeout, d.handshake_timeout),
        )?,
        idle_timeout: positive(
            "connections.idle_timeout",
            duration(raw.idle_timeout, d.idle_timeout),
        )?,
        http2_keep_alive: positive(
            "connections.http2_keep_alive",
            duration(raw.http2_keep_alive, d.http2_keep_alive),
        )?,
        http2_max_concurrent_streams: streams,
    })
}

fn validate_sts(raw: raw::RawSts) -> Result<StsConfig, ConfigError> {
    let hosts = StsHostAllowList::new()
        .fips_only(raw.fips)
        .with_extra_regions(&raw.extra_regions)
        .map_err(|e| {
            invalid(
                "sts.extra_regions",
                format!("{:?} is not a region name", e.0),
            )
        })?;
    for (host, url) in &raw.overrides {
        let field = format!("sts.overrides.{host}");
        if hosts.resolve(host).is_err() {
            return Err(invalid(
                field,
                "is not an allowed STS host (check the name, `fips` and `extra_regions`)",
            ));
        }
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
            .ok_or_else(|| invalid(&field, "must be an http:// or https:// URL"))?;
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || rest.contains(['/', '?', '#', '@']) || url.parse::<Uri>().is_err() {
            return Err(invalid(
                &field,
                "must be http(s)://host[:port] without a path",
            ));
        }
    }
    Ok(StsConfig {
        fips: raw.fips,
        extra_regions: raw.extra_regions,
        overrides: raw.overrides,
        connect_timeout: positive(
            "sts.connect_timeout",
            duration(raw.connect_timeout, Duration::from_secs(2)),
        )?,
        timeout: positive("sts.timeout", duration(raw.timeout, Duration::from_secs(5)))?,
    })
}

fn rate(
    field: &str,
    raw: Option<Option<RawRate>>,
    default: Option<Rate>,
) -> Result<Option<Rate>, ConfigError> {
    match raw {
        None => Ok(default),
        Some(None) => Ok(None),
        Some(Some(r)) => {
            if r.per_second == 0 {
                return Err(invalid(
                    format!("{field}.per_second"),
                    "must be at least 1 (write null to disable the limit)",
                ));
            }
            let burst = r.burst.unwrap_or(r.per_second);
            if burst == 0 {
                return Err(invalid(format!("{field}.burst"), "must be at least 1"));
            }
            Ok(Some(Rate {
                per_second: r.per_second,
                burst,
            }))
        }
    }
}

fn validate_paths(field: &str, paths: &[String]) -> Result<(), ConfigError> {
    for (i, p) in paths.iter().enumerate() {
        let star = p.find('*');
        if !p.starts_with('/') || star.is_some_and(|s| s != p.len() - 1) {
            return Err(invalid(
                format!("{field}[{i}]"),
                format!("{p:?} must be an absolute path, optionally ending in '*' for a prefix"),
            ));
        }
    }
    Ok(())
}

fn parse_net(s: &str) -> Option<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "listen: 127.0.0.1:8443\nupstream: {url: http://127.0.0.1:3080}\naudience: my-cluster\ntokens: tokens/\n";

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_yaml_str(text, Path::new("/etc/iam-join-proxy"))
    }

    #[test]
    fn minimal_config_gets_defaults_and_resolves_paths() {
        let c = load(MINIMAL).unwrap();
        assert_eq!(
            c.tokens,
            TokenSource::Path("/etc/iam-join-proxy/tokens/".into())
        );
        assert_eq!(c.prefix, "/v1/iam-join");
        assert_eq!(c.rate_limits, RateLimits::default());
        assert_eq!(c.upstream.timeout, DEFAULT_UPSTREAM_TIMEOUT);
        assert!(c.admin.is_none());
        assert_eq!(c.log.format, LogFormat::Human);
    }

    #[test]
    fn misspelt_nested_field_is_an_error_naming_it() {
        let err = load(&MINIMAL.replace("{url:", "{urll:"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("urll"), "{err}");
        assert!(err.contains("upstream"), "{err}");
        let err = load(&format!("{MINIMAL}cache: {{capacty: 3}}\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("capacty") && err.contains("cache"), "{err}");
    }

    #[test]
    fn null_disables_a_limit_and_absent_keeps_the_default() {
        let c = load(&format!(
            "{MINIMAL}rate_limits: {{per_client: null, per_account: {{per_second: 5}}}}\n"
        ))
        .unwrap();
        assert_eq!(c.rate_limits.per_client, None);
        assert_eq!(c.rate_limits.sts_budget, RateLimits::default().sts_budget);
        assert_eq!(
            c.rate_limits.per_account,
            Some(Rate {
                per_second: 5,
                burst: 5
            })
        );
        let err = load(&format!(
            "{MINIMAL}rate_limits: {{sts_budget: {{per_second: 0}}}}\n"
        ))
        .unwrap_err();
        assert_eq!(err.field(), Some("rate_limits.sts_budget.per_second"));
    }

    #[test]
    fn key_id_limit_and_reserved_share_are_read_and_checked() {
        let c = load(&format!(
            "{MINIMAL}rate_limits: {{per_key_id: null, sts_reserved_percent: 30}}\n"
        ))
        .unwrap();
        assert_eq!(c.rate_limits.per_key_id, None);
        assert_eq!(c.rate_limits.sts_reserved_percent, 30);
        assert_eq!(
            load(MINIMAL).unwrap().rate_limits.per_key_id,
            RateLimits::default().per_key_id
        );
        for (yaml, field) in [
            (
                "{sts_reserved_percent: 0}",
                "rate_limits.sts_reserved_percent",
            ),
            (
                "{sts_reserved_percent: 91}",
                "rate_limits.sts_reserved_percent",
            ),
            (
                "{per_key_id: {per_second: 0}}",
                "rate_limits.per_key_id.per_second",
            ),
        ] {
            let err = load(&format!("{MINIMAL}rate_limits: {yaml}\n")).unwrap_err();
            assert_eq!(err.field(), Some(field), "{yaml}");
        }
    }

    #[test]
    fn bad_values_name_their_field() {
        let cases = [
            (
                MINIMAL.replace("http://127.0.0.1:3080", "ftp://x"),
                "upstream.url",
            ),
            (
                MINIMAL.replace("http://127.0.0.1:3080", "http://x/base"),
                "upstream.url",
            ),
            (MINIMAL.replace("127.0.0.1:8443", "localhost"), "listen"),
            (
                format!("{MINIMAL}trusted_proxies: [10.0.0.0/8, nope]\n"),
                "trusted_proxies[1]",
            ),
            (
                format!("{MINIMAL}otlp: {{traces: {{sample_ratio: 1.5}}}}\n"),
                "otlp.traces.sample_ratio",
            ),
            (
                format!("{MINIMAL}otlp: {{traces: {{sample_ratio: .nan}}}}\n"),
                "otlp.traces.sample_ratio",
            ),
            (
                format!("{MINIMAL}otlp: {{traces: {{sample_ratio: -0.1}}}}\n"),
                "otlp.traces.sample_ratio",
            ),
            (
                format!("{MINIMAL}public_paths: [health]\n"),
                "public_paths[0]",
            ),
            (
                format!("{MINIMAL}sts: {{overrides: {{sts.evil.example: http://127.0.0.1:1}}}}\n"),
                "sts.overrides.sts.evil.example",
            ),
            (
                format!("{MINIMAL}sts: {{overrides: {{sts.amazonaws.com: 'ftp://x'}}}}\n"),
                "sts.overrides.sts.amazonaws.com",
            ),
            (
                format!("{MINIMAL}log: {{level: 'info,[[['}}\n"),
                "log.level",
            ),
            (
                format!("{MINIMAL}default_token: 'bad token'\n"),
                "default_token",
            ),
            (format!("{MINIMAL}upstream_sni: x\n"), ""),
        ];
        for (text, field) in cases {
            let err = load(&text).unwrap_err();
            if field.is_empty() {
                assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
            } else {
                assert_eq!(err.field(), Some(field), "{err}");
            }
        }
    }

    /// The config judges token names and audiences exactly as core's `TokenName` and
    /// `Audience` do (the layer's builder has the same table in tests/layer.rs).
    #[test]
    fn names_follow_cores_rule() {
        let long = "a".repeat(TokenName::MAX_LEN + 1);
        let spellings = [
            "iam-token",
            "bot:ci",
            "ci@example.com",
            "a.b_c-d",
            "has space",
            "tab\there",
            "slash/no",
            "caf\u{e9}",
            long.as_str(),
        ];
        for name in spellings {
            let quoted = serde_json::to_string(name).unwrap();
            let token = load(&format!("{MINIMAL}default_token: {quoted}\n"));
            assert_eq!(token.is_ok(), name.parse::<TokenName>().is_ok(), "{name:?}");
            if let Err(e) = token {
                assert_eq!(e.field(), Some("default_token"), "{e}");
            }
            let text = MINIMAL.replace("audience: my-cluster", &format!("audience: {quoted}"));
            let audience = load(&text);
            assert_eq!(
                audience.is_ok(),
                name.parse::<Audience>().is_ok(),
                "{name:?}"
            );
        }
        assert_eq!(
            load(&format!("{MINIMAL}default_token: bot:ci\n"))
                .unwrap()
                .default_token
                .as_deref(),
            Some("bot:ci")
        );
    }

    #[test]
    fn durations_and_log_format_parse() {
        let c = load(&format!(
            "{MINIMAL}drain_timeout: 5s\ncache: {{negative_ttl: 250ms}}\nlog: {{format: json}}\nsts: {{timeout: 3}}\n"
        ))
        .unwrap();
        assert_eq!(c.drain_timeout, Duration::from_secs(5));
        assert_eq!(c.cache.negative_ttl, Duration::from_millis(250));
        assert_eq!(c.sts.timeout, Duration::from_secs(3));
        assert_eq!(c.log.format, LogFormat::Json);
        let err = load(&format!("{MINIMAL}drain_timeout: soon\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("drain_timeout"), "{err}");
        let err = load(&format!("{MINIMAL}log: {{format: xml}}\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("xml"), "{err}");
    }

    #[cfg(feature = "redis")]
    #[test]
    fn redis_needs_a_shared_challenge_key_and_a_checked_url() {
        let err = load(&format!("{MINIMAL}redis: {{url: redis://r:6379}}\n")).unwrap_err();
        assert_eq!(err.field(), Some("challenge_key_file"));
        let with_key = format!("{MINIMAL}challenge_key_file: key\n");
        let err = load(&format!(
            "{with_key}redis: {{url: 'rediss://r:6379/#insecure'}}\n"
        ))
        .unwrap_err();
        assert_eq!(err.field(), Some("redis.url"));
        let c = load(&format!(
            "{with_key}redis: {{url: redis://r:6379, command_timeout: 100ms}}\n"
        ))
        .unwrap();
        let r = c.redis.unwrap();
        assert_eq!(r.key_prefix, "iam-join:");
        assert_eq!(r.command_timeout, Duration::from_millis(100));
    }

    #[test]
    fn a_shared_challenge_key_without_redis_is_an_error_saying_why() {
        let err = load(&format!("{MINIMAL}challenge_key_file: key\n")).unwrap_err();
        assert_eq!(err.field(), Some("challenge_key_file"));
        let message = err.to_string();
        assert!(
            message.contains("redis") && message.contains("replica"),
            "{message}"
        );
    }

    #[test]
    fn connection_and_upstream_limits_parse_and_refuse_zero() {
        let c = load(&format!(
            "{MINIMAL}connections: {{max: 100, max_per_client: 5, handshake_timeout: 2s, idle_timeout: 1m, http2_keep_alive: 10s, http2_max_concurrent_streams: 7}}\n"
        ))
        .unwrap();
        assert_eq!(c.connections.max, 100);
        assert_eq!(c.connections.max_per_client, 5);
        assert_eq!(c.connections.handshake_timeout, Duration::from_secs(2));
        assert_eq!(c.connections.idle_timeout, Duration::from_secs(60));
        assert_eq!(c.connections.http2_keep_alive, Duration::from_secs(10));
        assert_eq!(c.connections.http2_max_concurrent_streams, 7);
        let c = load(&MINIMAL.replace(
            "{url: http://127.0.0.1:3080}",
            "{url: http://127.0.0.1:3080, client_body_timeout: 3s, max_concurrent_requests: 9, pool_max_idle: 2, pool_idle_timeout: 5s}",
        ))
        .unwrap();
        assert_eq!(c.upstream.client_body_timeout, Duration::from_secs(3));
        assert_eq!(c.upstream.max_concurrent_requests, 9);
        assert_eq!(c.upstream.pool_max_idle, 2);
        assert_eq!(c.upstream.pool_idle_timeout, Duration::from_secs(5));
        for (extra, field) in [
            ("connections: {max: 0}", "connections.max"),
            (
                "connections: {max_per_client: 0}",
                "connections.max_per_client",
            ),
            (
                "connections: {handshake_timeout: 0s}",
                "connections.handshake_timeout",
            ),
            ("connections: {idle_timeout: 0}", "connections.idle_timeout"),
            (
                "connections: {http2_max_concurrent_streams: 0}",
                "connections.http2_max_concurrent_streams",
            ),
        ] {
            let err = load(&format!("{MINIMAL}{extra}\n")).unwrap_err();
            assert_eq!(err.field(), Some(field), "{extra}: {err}");
        }
        let err = load(&MINIMAL.replace(
            "{url: http://127.0.0.1:3080}",
            "{url: http://127.0.0.1:3080, max_concurrent_requests: 0}",
        ))
        .unwrap_err();
        assert_eq!(err.field(), Some("upstream.max_concurrent_requests"));
    }

    #[test]
    fn the_default_connection_cap_follows_the_open_files_limit() {
        assert_eq!(ConnectionLimits::from_open_files_limit(1024), 480);
        assert_eq!(ConnectionLimits::from_open_files_limit(128), 32);
        // Never below a usable minimum, whatever the limit.
        assert_eq!(ConnectionLimits::from_open_files_limit(10), 8);
        assert!(open_files_limit().is_some_and(|n| n > 0));
    }

    #[cfg(not(feature = "redis"))]
    #[test]
    fn redis_without_the_feature_is_a_clear_error() {
        let err = load(&format!("{MINIMAL}redis: {{url: redis://r:6379}}\n")).unwrap_err();
        assert_eq!(err.field(), Some("redis"));
        assert!(err.to_string().contains("built without redis support"));
    }
}
