//! From a [`RedisConfig`] to connections: URL checks, ACL credentials and TLS applied the same
//! way to a primary, every cluster node and a Sentinel-managed primary.

use std::time::Duration;

use ::redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use ::redis::cluster::{ClusterClient, ClusterClientBuilder};
use ::redis::cluster_async::ClusterConnection;
use ::redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use ::redis::{
    AsyncConnectionConfig, Client, ClientTlsConfig, Cmd, ConnectionAddr, ConnectionInfo,
    IntoConnectionInfo, Pipeline, RedisFuture, RedisResult, TlsCertificates, TlsMode, Value,
};

use super::{RedisConfig, RedisServers, RedisSetupError, RedisTls};

/// How new connections are made; built once, checked at setup.
pub(super) enum Connector {
    /// One primary behind a connection manager (reconnects by itself).
    Primary {
        client: Client,
        config: ConnectionManagerConfig,
    },
    /// Redis Cluster; the connection follows the topology by itself.
    Cluster(ClusterClient),
    /// A Sentinel-managed primary; each connect asks the sentinels where it is.
    Sentinel {
        client: tokio::sync::Mutex<SentinelClient>,
        config: AsyncConnectionConfig,
        /// Where the current connection goes, to notice a failover.
        connected_to: std::sync::Mutex<Option<ConnectionAddr>>,
    },
}

/// One connection of any kind; cheap to clone (all share one multiplexed socket set).
#[derive(Clone)]
pub(super) enum Conn {
    Primary(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(MultiplexedConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Primary(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
            Self::Sentinel(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Primary(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Sentinel(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Primary(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
            Self::Sentinel(c) => c.get_db(),
        }
    }
}

impl Connector {
    /// Checks `config` and prepares the clients. Connects to nothing.
    pub(super) fn new(config: &RedisConfig) -> Result<Self, RedisSetupError> {
        let tls = tls_certificates(&config.tls)?;
        let mut any_tls = false;
        let mut infos = Vec::new();
        for url in config.servers.urls() {
            let info = parse_url(url)?;
            any_tls |= matches!(info.addr(), ConnectionAddr::TcpTls { .. });
            infos.push(info);
        }
        if tls.is_some() && !any_tls {
            return Err(RedisSetupError::InvalidConfig(
                "TLS settings (CA, client certificate) need rediss:// URLs",
            ));
        }
        match &config.servers {
            RedisServers::Primary(_) => {
                let info = infos
                    .pop()
                    .ok_or(RedisSetupError::InvalidConfig("no Redis URL given"))?;
                let info = with_credentials(info, config);
                let client = match tls {
                    Some(certs) if matches!(info.addr(), ConnectionAddr::TcpTls { .. }) => {
                        Client::build_with_tls(info, certs)
                    }
                    _ => Client::open(info),
                }
                .map_err(invalid_url)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(config.connect_timeout))
                    .set_response_timeout(Some(config.command_timeout))
                    // Each (re)connection tries a few times quickly; commands are failed
                    // meanwhile by our own timeout, and the next command after a failed round
                    // starts a new one.
                    .set_number_of_retries(2)
                    .set_min_delay(Duration::from_millis(20))
                    .set_max_delay(Duration::from_millis(500));
                Ok(Self::Primary { client, config })
            }
            RedisServers::Cluster(_) => {
                if infos.is_empty() {
                    return Err(RedisSetupError::InvalidConfig(
                        "a cluster needs at least one node URL",
                    ));
                }
                if infos
                    .iter()
                    .any(|i| matches!(i.addr(), ConnectionAddr::Unix(_)))
                {
                    return Err(RedisSetupError::InvalidConfig(
                        "cluster nodes are reached over TCP (redis:// or rediss://)",
                    ));
                }
                if any_tls
                    && infos
                        .iter()
                        .any(|i| !matches!(i.addr(), ConnectionAddr::TcpTls { .. }))
                {
                    return Err(RedisSetupError::InvalidConfig(
                        "cluster node URLs must all be rediss:// or all redis://",
                    ));
                }
                let mut builder = ClusterClientBuilder::new(infos)
                    .connection_timeout(config.connect_timeout)
                    .response_timeout(config.command_timeout);
                if let Some(user) = &config.username {
                    builder = builder.username(user);
                }
                if let Some(password) = &config.password {
                    builder = builder.password(password.expose());
                }
                if any_tls {
                    builder = builder.tls(TlsMode::Secure);
                    if let Some(certs) = tls {
                        builder = builder.certs(certs);
                    }
                }
                Ok(Self::Cluster(builder.build().map_err(invalid_url)?))
            }
            RedisServers::Sentinel { master_name, .. } => {
                if master_name.is_empty() {
                    return Err(RedisSetupError::InvalidConfig(
                        "the sentinel master_name must not be empty",
                    ));
                }
                if infos.is_empty() {
                    return Err(RedisSetupError::InvalidConfig(
                        "sentinel needs at least one sentinel URL",
                    ));
                }
                let addrs = infos.iter().map(|i| i.addr().clone());
                let mut builder =
                    SentinelClientBuilder::new(addrs, master_name, SentinelServerType::Master)
                        .map_err(invalid_url)?;
                if let Some(user) = &config.username {
                    builder = builder.set_client_to_redis_username(user);
                }
                if let Some(password) = &config.password {
                    builder = builder.set_client_to_redis_password(password.expose());
                }
                if any_tls {
                    // The primary is reached the way the sentinels are.
                    builder = builder
                        .set_client_to_redis_tls_mode(TlsMode::Secure)
                        .set_client_to_sentinel_tls_mode(TlsMode::Secure);
                    if let Some(certs) = tls {
                        builder = builder
                            .set_client_to_redis_certificates(certs.clone())
                            .set_client_to_sentinel_certificates(certs);
                    }
                }
                let client = builder.build().map_err(invalid_url)?;
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(config.connect_timeout))
                    .set_response_timeout(Some(config.command_timeout));
                Ok(Self::Sentinel {
                    client: tokio::sync::Mutex::new(client),
                    config,
                    connected_to: std::sync::Mutex::new(None),
                })
            }
        }
    }

    /// A connection that connects on first use, when the kind allows one (a primary); `None`
    /// otherwise, and [`connect`](Self::connect) makes one when needed.
    pub(super) fn lazy(&self) -> RedisResult<Option<Conn>> {
        match self {
            Self::Primary { client, config } => Ok(Some(Conn::Primary(
                ConnectionManager::new_lazy_with_config(client.clone(), config.clone())?,
            ))),
            Self::Cluster(_) | Self::Sentinel { .. } => Ok(None),
        }
    }

    /// Connects now (cluster: to the nodes; sentinel: asks where the primary is, then
    /// connects to it).
    pub(super) async fn connect(&self) -> RedisResult<Conn> {
        match self {
            Self::Primary { client, config } => Ok(Conn::Primary(
                ConnectionManager::new_lazy_with_config(client.clone(), config.clone())?,
            )),
            Self::Cluster(client) => Ok(Conn::Cluster(client.get_async_connection().await?)),
            Self::Sentinel {
                client,
                config,
                connected_to,
            } => {
                let primary = client.lock().await.async_get_client().await?;
                let conn = primary
                    .get_multiplexed_async_connection_with_config(config)
                    .await?;
                if let Ok(mut to) = connected_to.lock() {
                    *to = Some(primary.get_connection_info().addr().clone());
                }
                Ok(Conn::Sentinel(conn))
            }
        }
    }

    /// Whether the sentinels now name another primary than the one connected to (a failover
    /// happened). Between a failover and the old primary's demotion both accept writes; a
    /// redemption written to the old one would be lost, so the link asks regularly instead of
    /// waiting for a `READONLY`.
    pub(super) async fn primary_moved(&self) -> bool {
        let Self::Sentinel {
            client,
            connected_to,
            ..
        } = self
        else {
            return false;
        };
        let Some(current) = connected_to.lock().ok().and_then(|to| to.clone()) else {
            return false;
        };
        match client.lock().await.async_get_client().await {
            Ok(primary) => *primary.get_connection_info().addr() != current,
            // The sentinels are unreachable: keep the connection we have.
            Err(_) => false,
        }
    }

    /// Whether a connection that failed at the connection level should be dropped and made
    /// anew: a Sentinel-managed primary may have moved. (The manager and the cluster client
    /// reconnect by themselves.)
    pub(super) fn reconnects_by_hand(&self) -> bool {
        matches!(self, Self::Sentinel { .. })
    }
}

/// Parses one URL and refuses what would weaken TLS.
fn parse_url(url: &str) -> Result<ConnectionInfo, RedisSetupError> {
    let info = url.into_connection_info().map_err(invalid_url)?;
    if let ConnectionAddr::TcpTls { insecure: true, .. } = info.addr() {
        return Err(RedisSetupError::InvalidUrl(
            "rediss:// with #insecure: the server certificate is always checked; give the CA \
             that signed it instead"
                .to_owned(),
        ));
    }
    Ok(info)
}

/// The ACL user and password of `config`, over any in the URL.
fn with_credentials(info: ConnectionInfo, config: &RedisConfig) -> ConnectionInfo {
    let mut settings = info.redis_settings().clone();
    if let Some(user) = &config.username {
        settings = settings.set_username(user);
    }
    if let Some(password) = &config.password {
        settings = settings.set_password(password.expose());
    }
    info.set_redis_settings(settings)
}

/// The TLS material redis-rs takes, or `None` for the system roots and no client certificate.
fn tls_certificates(tls: &RedisTls) -> Result<Option<TlsCertificates>, RedisSetupError> {
    if tls.ca_pem.is_none() && tls.client_identity.is_none() {
        return Ok(None);
    }
    if let Some(ca) = &tls.ca_pem
        && !String::from_utf8_lossy(ca).contains("-----BEGIN CERTIFICATE-----")
    {
        return Err(RedisSetupError::InvalidConfig(
            "the Redis CA holds no PEM certificate",
        ));
    }
    Ok(Some(TlsCertificates {
        client_tls: tls.client_identity.as_ref().map(|id| ClientTlsConfig {
            client_cert: id.cert_pem.clone(),
            client_key: id.key_pem.expose().as_bytes().to_vec(),
        }),
        root_cert: tls.ca_pem.clone(),
    }))
}

/// A redis-rs URL error, without repeating the URL (it may hold a password).
fn invalid_url(e: ::redis::RedisError) -> RedisSetupError {
    RedisSetupError::InvalidUrl(e.to_string())
}
