//! The `redis:` section: where the shared Redis is (one primary, a cluster, or a
//! Sentinel-managed primary), TLS, and the ACL credentials, which come from a file or the
//! environment and never from the configuration file itself.
//!
//! ```yaml
//! redis:                                   # only with the `redis` cargo feature
//!   url: rediss://master.cache.example:6379   # one primary; or, instead of url:
//!   # cluster: [rediss://clustercfg.cache.example:6379]  # Redis Cluster (a config endpoint is enough)
//!   # sentinel: {master_name: mymaster, urls: [redis://sentinel-0:26379]}
//!   username: iam-join                     # ACL user (Redis 6+); absent: the default user
//!   password_file: /run/secrets/redis-password  # or password_env: REDIS_PASSWORD
//!   tls:                                   # for rediss:// URLs; absent: the system roots
//!     ca_file: /etc/iam-join-proxy/redis-ca.pem
//!     cert: /etc/iam-join-proxy/redis-client.crt   # mutual TLS (both or neither)
//!     key: /etc/iam-join-proxy/redis-client.key
//!   key_prefix: "iam-join:"                # the same on every replica of one deployment
//!   connect_timeout: 1s
//!   command_timeout: 250ms                 # what a request pays at most when Redis is gone
//! ```

use std::path::PathBuf;
#[cfg(feature = "redis")]
use std::{path::Path, time::Duration};

use serde::Deserialize;

use super::raw::RawDuration;
#[cfg(feature = "redis")]
use super::{ConfigError, duration, invalid, positive, resolve};

/// The section as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(not(feature = "redis"), allow(dead_code))] // read only to check its shape
pub(crate) struct RawRedis {
    #[serde(default)]
    pub(crate) url: Option<String>,
    #[serde(default)]
    pub(crate) cluster: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) sentinel: Option<RawSentinel>,
    #[serde(default)]
    pub(crate) username: Option<String>,
    #[serde(default)]
    pub(crate) password_file: Option<PathBuf>,
    #[serde(default)]
    pub(crate) password_env: Option<String>,
    #[serde(default)]
    pub(crate) tls: Option<RawRedisTls>,
    #[serde(default)]
    pub(crate) key_prefix: Option<String>,
    #[serde(default)]
    pub(crate) connect_timeout: Option<RawDuration>,
    #[serde(default)]
    pub(crate) command_timeout: Option<RawDuration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) struct RawSentinel {
    pub(crate) master_name: String,
    pub(crate) urls: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) struct RawRedisTls {
    #[serde(default)]
    pub(crate) ca_file: Option<PathBuf>,
    #[serde(default)]
    pub(crate) cert: Option<PathBuf>,
    #[serde(default)]
    pub(crate) key: Option<PathBuf>,
}

/// Where the servers are.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedisTopology {
    /// `url`: one primary.
    Primary(String),
    /// `cluster`: Redis Cluster node URLs.
    Cluster(Vec<String>),
    /// `sentinel`: a Sentinel-managed primary.
    Sentinel {
        /// `sentinel.master_name`.
        master_name: String,
        /// `sentinel.urls`.
        urls: Vec<String>,
    },
}

/// Where the password comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PasswordSource {
    /// `password_file`: the file's contents without the trailing newline.
    File(PathBuf),
    /// `password_env`: the named environment variable.
    Env(String),
}

/// Redis settings (feature `redis`), validated; files are read when the proxy starts (and by
/// `check-config`).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RedisSettings {
    /// The servers.
    pub topology: RedisTopology,
    /// ACL user.
    pub username: Option<String>,
    /// Where the password comes from.
    pub password: Option<PasswordSource>,
    /// `tls.ca_file`: PEM roots instead of the system's.
    pub ca_file: Option<PathBuf>,
    /// `tls.cert` and `tls.key`: client certificate chain and key for mutual TLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Prefix of every key.
    pub key_prefix: String,
    /// Connect timeout.
    pub connect_timeout: std::time::Duration,
    /// Timeout of one command.
    pub command_timeout: std::time::Duration,
}

/// The field that names the servers, for messages.
#[cfg(feature = "redis")]
fn servers_field(topology: &RedisTopology) -> &'static str {
    match topology {
        RedisTopology::Primary(_) => "redis.url",
        RedisTopology::Cluster(_) => "redis.cluster",
        RedisTopology::Sentinel { .. } => "redis.sentinel.urls",
    }
}

/// Checks the section's shape and values (files are read later, by [`backend_config`]).
#[cfg(feature = "redis")]
pub(crate) fn validate(r: RawRedis, base: &Path) -> Result<RedisSettings, ConfigError> {
    let topology = match (r.url, r.cluster, r.sentinel) {
        (Some(url), None, None) => RedisTopology::Primary(url),
        (None, Some(urls), None) => RedisTopology::Cluster(urls),
        (None, None, Some(s)) => RedisTopology::Sentinel {
            master_name: s.master_name,
            urls: s.urls,
        },
        _ => {
            return Err(invalid(
                "redis",
                "needs exactly one of url (one primary), cluster (node URLs) or sentinel \
                 ({master_name, urls})",
            ));
        }
    };
    let (field, urls): (&str, &[String]) = match &topology {
        RedisTopology::Primary(url) => ("redis.url", std::slice::from_ref(url)),
        RedisTopology::Cluster(urls) => ("redis.cluster", urls),
        RedisTopology::Sentinel { master_name, urls } => {
            if master_name.trim().is_empty() {
                return Err(invalid("redis.sentinel.master_name", "must not be empty"));
            }
            ("redis.sentinel.urls", urls)
        }
    };
    if urls.is_empty() {
        return Err(invalid(field, "needs at least one URL"));
    }
    for (i, url) in urls.iter().enumerate() {
        let field = match &topology {
            RedisTopology::Primary(_) => field.to_owned(),
            _ => format!("{field}[{i}]"),
        };
        check_url(&field, url)?;
    }
    let tls_urls = urls.iter().filter(|u| u.starts_with("rediss://")).count();
    if !matches!(topology, RedisTopology::Primary(_)) && tls_urls != 0 && tls_urls != urls.len() {
        return Err(invalid(field, "must be all rediss:// or all redis://"));
    }
    if let Some(user) = &r.username
        && (user.is_empty() || user.contains(char::is_whitespace) || user.contains(['<', '>']))
    {
        return Err(invalid(
            "redis.username",
            "must be an ACL user name without spaces",
        ));
    }
    let password = match (r.password_file, r.password_env) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "redis.password_file",
                "give password_file or password_env, not both",
            ));
        }
        (Some(file), None) => Some(PasswordSource::File(resolve(base, file))),
        (None, Some(var)) => {
            if var.is_empty() || var.contains('=') || var.contains('\0') {
                return Err(invalid(
                    "redis.password_env",
                    "must name an environment variable",
                ));
            }
            Some(PasswordSource::Env(var))
        }
        (None, None) => None,
    };
    let (ca_file, client_cert) = match r.tls {
        None => (None, None),
        Some(tls) => {
            if tls_urls == 0 {
                return Err(invalid(
                    "redis.tls",
                    format!("only applies to rediss:// URLs; {field} has none"),
                ));
            }
            let client_cert = match (tls.cert, tls.key) {
                (Some(cert), Some(key)) => Some((resolve(base, cert), resolve(base, key))),
                (None, None) => None,
                (Some(_), None) => {
                    return Err(invalid("redis.tls.key", "is required with redis.tls.cert"));
                }
                (None, Some(_)) => {
                    return Err(invalid("redis.tls.cert", "is required with redis.tls.key"));
                }
            };
            (tls.ca_file.map(|p| resolve(base, p)), client_cert)
        }
    };
    let key_prefix = r
        .key_prefix
        .unwrap_or_else(|| iam_join_tower::redis::DEFAULT_KEY_PREFIX.to_owned());
    if key_prefix.contains(['{', '}']) {
        return Err(invalid(
            "redis.key_prefix",
            "must not contain '{' or '}' (the proxy places the Redis Cluster hash tags)",
        ));
    }
    Ok(RedisSettings {
        topology,
        username: r.username,
        password,
        ca_file,
        client_cert,
        key_prefix,
        connect_timeout: positive(
            "redis.connect_timeout",
            duration(r.connect_timeout, Duration::from_secs(1)),
        )?,
        command_timeout: positive(
            "redis.command_timeout",
            duration(r.command_timeout, Duration::from_millis(250)),
        )?,
    })
}

/// One URL: a scheme this build speaks, and no password (passwords come from password_file or
/// password_env, so the configuration file can be shared and logged).
#[cfg(feature = "redis")]
fn check_url(field: &str, url: &str) -> Result<(), ConfigError> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(invalid(
            field,
            "must start with redis://, rediss:// (TLS) or unix://",
        ));
    };
    if !matches!(scheme, "redis" | "rediss" | "unix") {
        return Err(invalid(
            field,
            "must start with redis://, rediss:// (TLS) or unix://",
        ));
    }
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if let Some((userinfo, _)) = authority.rsplit_once('@')
        && userinfo.contains(':')
    {
        return Err(invalid(
            field,
            "must not contain a password: use redis.password_file or redis.password_env \
             (and redis.username for the ACL user)",
        ));
    }
    if url.contains("#insecure") {
        return Err(invalid(
            field,
            "#insecure is refused: the server certificate is always checked; give its CA in \
             redis.tls.ca_file",
        ));
    }
    Ok(())
}

/// Reads the files and the environment the settings name, into the backend's configuration.
/// Every error names its field; no error repeats a secret.
#[cfg(feature = "redis")]
pub(crate) fn backend_config(
    settings: &RedisSettings,
) -> Result<iam_join_tower::redis::RedisConfig, ConfigError> {
    use iam_join_tower::redis::{
        RedisClientIdentity, RedisConfig, RedisSecret, RedisServers, RedisTls,
    };

    let servers = match &settings.topology {
        RedisTopology::Primary(url) => RedisServers::Primary(url.clone()),
        RedisTopology::Cluster(urls) => RedisServers::Cluster(urls.clone()),
        RedisTopology::Sentinel { master_name, urls } => RedisServers::Sentinel {
            master_name: master_name.clone(),
            sentinels: urls.clone(),
        },
    };
    let password = match &settings.password {
        None => None,
        Some(PasswordSource::File(path)) => {
            let text = read_secret("redis.password_file", path)?;
            Some(RedisSecret::new(
                text.strip_suffix('\n')
                    .map(|t| t.strip_suffix('\r').unwrap_or(t))
                    .unwrap_or(&text),
            ))
        }
        Some(PasswordSource::Env(var)) => match std::env::var(var) {
            Ok(value) if !value.is_empty() => Some(RedisSecret::new(value)),
            _ => {
                return Err(invalid(
                    "redis.password_env",
                    format!("the environment variable {var} is not set (or empty)"),
                ));
            }
        },
    };
    if matches!(&password, Some(p) if *p == RedisSecret::new("")) {
        return Err(invalid("redis.password_file", "the file is empty"));
    }
    let ca_pem = settings
        .ca_file
        .as_deref()
        .map(|p| read_pem("redis.tls.ca_file", p, "CERTIFICATE"))
        .transpose()?;
    let client_identity = match &settings.client_cert {
        None => None,
        Some((cert, key)) => Some(RedisClientIdentity {
            cert_pem: read_pem("redis.tls.cert", cert, "CERTIFICATE")?,
            key_pem: RedisSecret::new(read_secret("redis.tls.key", key)?),
        }),
    };
    let mut tls = RedisTls::default();
    tls.ca_pem = ca_pem;
    tls.client_identity = client_identity;
    let mut config = RedisConfig::primary(String::new());
    config.servers = servers;
    config.username = settings.username.clone();
    config.password = password;
    config.tls = tls;
    config.key_prefix = settings.key_prefix.clone();
    config.connect_timeout = settings.connect_timeout;
    config.command_timeout = settings.command_timeout;
    config.validate().map_err(|e| {
        let field = match e {
            iam_join_tower::redis::RedisSetupError::InvalidUrl(_) => {
                servers_field(&settings.topology)
            }
            _ => "redis",
        };
        invalid(field, e.to_string())
    })?;
    Ok(config)
}

#[cfg(feature = "redis")]
fn read_secret(field: &str, path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| invalid(field, format!("{}: {e}", path.display())))
}

#[cfg(feature = "redis")]
fn read_pem(field: &str, path: &Path, label: &str) -> Result<Vec<u8>, ConfigError> {
    let bytes =
        std::fs::read(path).map_err(|e| invalid(field, format!("{}: {e}", path.display())))?;
    if !String::from_utf8_lossy(&bytes).contains(&format!("-----BEGIN {label}-----")) {
        return Err(invalid(
            field,
            format!("{}: no PEM {label} in the file", path.display()),
        ));
    }
    Ok(bytes)
}

#[cfg(all(test, feature = "redis"))]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<RedisSettings, ConfigError> {
        let raw: RawRedis = serde_norway::from_str(yaml).map_err(|e| ConfigError::Syntax {
            message: e.to_string(),
        })?;
        validate(raw, Path::new("/etc/iam-join-proxy"))
    }

    #[test]
    fn each_shape_of_servers_parses() {
        let p = parse("url: rediss://primary.example:6379\nusername: iam-join\npassword_file: pw\ntls: {ca_file: ca.pem}\n")
            .unwrap();
        assert_eq!(
            p.topology,
            RedisTopology::Primary("rediss://primary.example:6379".into())
        );
        assert_eq!(
            p.password,
            Some(PasswordSource::File("/etc/iam-join-proxy/pw".into()))
        );
        assert_eq!(p.ca_file, Some("/etc/iam-join-proxy/ca.pem".into()));
        let c =
            parse("cluster: [rediss://cfg.example:6379]\npassword_env: REDIS_PASSWORD\n").unwrap();
        assert_eq!(
            c.topology,
            RedisTopology::Cluster(vec!["rediss://cfg.example:6379".into()])
        );
        assert_eq!(
            c.password,
            Some(PasswordSource::Env("REDIS_PASSWORD".into()))
        );
        let s = parse(
            "sentinel: {master_name: mymaster, urls: [redis://s0:26379, redis://s1:26379]}\n",
        )
        .unwrap();
        assert!(matches!(s.topology, RedisTopology::Sentinel { .. }));
    }

    #[test]
    fn every_bad_setting_names_its_field() {
        for (yaml, field) in [
            ("{}", "redis"),
            ("url: redis://a\ncluster: [redis://b]\n", "redis"),
            ("url: http://a\n", "redis.url"),
            ("url: redis://user:hunter2@a\n", "redis.url"),
            ("url: redis://:hunter2@a\n", "redis.url"),
            ("url: rediss://a/#insecure\n", "redis.url"),
            ("cluster: []\n", "redis.cluster"),
            ("cluster: [redis://a, ftp://b]\n", "redis.cluster[1]"),
            ("cluster: [redis://a, rediss://b]\n", "redis.cluster"),
            (
                "sentinel: {master_name: '', urls: [redis://s]}\n",
                "redis.sentinel.master_name",
            ),
            (
                "sentinel: {master_name: m, urls: []}\n",
                "redis.sentinel.urls",
            ),
            ("url: redis://a\ntls: {ca_file: ca.pem}\n", "redis.tls"),
            ("url: rediss://a\ntls: {cert: c.crt}\n", "redis.tls.key"),
            ("url: rediss://a\ntls: {key: c.key}\n", "redis.tls.cert"),
            (
                "url: redis://a\npassword_file: f\npassword_env: V\n",
                "redis.password_file",
            ),
            ("url: redis://a\npassword_env: ''\n", "redis.password_env"),
            ("url: redis://a\nusername: 'two words'\n", "redis.username"),
            ("url: redis://a\nkey_prefix: '{x}'\n", "redis.key_prefix"),
            (
                "url: redis://a\ncommand_timeout: 0s\n",
                "redis.command_timeout",
            ),
        ] {
            let err = parse(yaml).expect_err(yaml);
            assert_eq!(err.field(), Some(field), "{yaml}: {err}");
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
        // A misspelt key is refused, not ignored.
        let err = parse("url: redis://a\npassword: hunter2\n").unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }

    #[test]
    fn files_are_read_with_field_named_errors_and_secrets_kept_out_of_them() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "s3cret-pa55\n").unwrap();
        let settings = validate(
            serde_norway::from_str(&format!(
                "url: rediss://localhost:6380\nusername: iam-join\npassword_file: {}\ntls: {{ca_file: missing.pem}}\n",
                pw.display()
            ))
            .unwrap(),
            dir.path(),
        )
        .unwrap();
        let err = backend_config(&settings).unwrap_err();
        assert_eq!(err.field(), Some("redis.tls.ca_file"), "{err}");
        std::fs::write(dir.path().join("missing.pem"), "not a certificate").unwrap();
        let err = backend_config(&settings).unwrap_err();
        assert_eq!(err.field(), Some("redis.tls.ca_file"), "{err}");

        let mut plain = settings.clone();
        plain.ca_file = None;
        let config = backend_config(&plain).unwrap();
        assert_eq!(
            config.password,
            Some(iam_join_tower::redis::RedisSecret::new("s3cret-pa55"))
        );
        assert!(!format!("{config:?}").contains("s3cret"));

        let mut from_env = plain.clone();
        from_env.password = Some(PasswordSource::Env(
            "IAM_JOIN_TEST_SURELY_UNSET_VARIABLE".into(),
        ));
        let err = backend_config(&from_env).unwrap_err();
        assert_eq!(err.field(), Some("redis.password_env"));
    }
}
