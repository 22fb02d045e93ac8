//! Real `redis-server`s on free loopback ports, for the Redis backend tests: a plain server, a
//! TLS server (with a test CA made by [`TestPki`], optionally requiring client certificates),
//! ACL users, a three-master Redis Cluster ([`RedisCluster`]) and a primary, replica and
//! sentinel ([`RedisSentinelSet`]). Tests that use them fail (never skip) when `redis-server`
//! or `redis-cli` is not on `PATH`. Every process is killed on drop.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use tempfile::TempDir;

/// How long to wait for `redis-server` to answer `PING`.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long to wait for a cluster to agree on its slots, or a sentinel to see its primary.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A test CA and the certificates it signed, as PEM files in a temporary directory (removed on
/// drop).
#[derive(Debug)]
pub struct TestPki {
    dir: TempDir,
}

impl TestPki {
    /// A CA, a server certificate for `localhost` and `127.0.0.1`, and a client certificate.
    /// Also a second, unrelated CA (`other-ca.pem`), for "wrong CA" tests, and a server
    /// certificate for another name (`wrong-name.crt`/`.key`).
    ///
    /// # Panics
    /// If a certificate cannot be made or written.
    pub fn generate() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let ca = ca("iam-join test CA");
        let other = ca_params("unrelated test CA");
        let other = CertifiedIssuer::self_signed(other, KeyPair::generate().expect("key"))
            .expect("other CA");
        let write = |name: &str, pem: &str| {
            std::fs::write(dir.path().join(name), pem).expect("write a PEM file");
        };
        write("ca.pem", &ca.pem());
        write("other-ca.pem", &other.pem());
        for (name, sans, usage) in [
            (
                "server",
                vec!["localhost".to_owned(), "127.0.0.1".to_owned()],
                ExtendedKeyUsagePurpose::ServerAuth,
            ),
            (
                "wrong-name",
                vec!["redis.elsewhere.example".to_owned()],
                ExtendedKeyUsagePurpose::ServerAuth,
            ),
            (
                "client",
                vec!["iam-join-proxy".to_owned()],
                ExtendedKeyUsagePurpose::ClientAuth,
            ),
        ] {
            let key = KeyPair::generate().expect("key");
            let mut params = CertificateParams::new(sans).expect("names");
            params.distinguished_name.push(DnType::CommonName, name);
            params.extended_key_usages = vec![usage];
            let cert = params.signed_by(&key, &ca).expect("sign");
            write(&format!("{name}.crt"), &cert.pem());
            write(&format!("{name}.key"), &key.serialize_pem());
        }
        Self { dir }
    }

    /// The path of a file: `ca.pem`, `other-ca.pem`, `server.crt`, `server.key`,
    /// `wrong-name.crt`, `wrong-name.key`, `client.crt`, `client.key`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The contents of [`path`](Self::path)`(name)`.
    ///
    /// # Panics
    /// If the file cannot be read.
    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).expect("read a PEM file")
    }
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    CertifiedIssuer::self_signed(ca_params(name), KeyPair::generate().expect("key")).expect("CA")
}

/// How a server serves TLS.
#[derive(Clone, Debug)]
pub struct ServerTls {
    /// The PKI (kept alive as long as the server).
    pub pki: Arc<TestPki>,
    /// `server` (certificate for localhost/127.0.0.1) or `wrong-name`.
    pub cert: &'static str,
    /// Require a client certificate signed by the test CA (mutual TLS).
    pub require_client_cert: bool,
}

/// What a server is started with, beyond a plain standalone primary.
#[derive(Clone, Debug, Default)]
pub struct RedisOptions {
    /// Serve TLS only (the plain port is off).
    pub tls: Option<ServerTls>,
    /// ACL rules, one `user …` line each (without the `user` word), e.g.
    /// `"iam-join on >secret ~iam-join:* +get"`. The `default` user stays as configured by
    /// `default_password`.
    pub users: Vec<String>,
    /// A password for the `default` user (`requirepass`); the admin connection of the tests.
    pub default_password: Option<String>,
    /// `cluster-enabled yes`.
    pub cluster: bool,
    /// `replicaof 127.0.0.1 <port>`.
    pub replica_of: Option<u16>,
}

/// A `redis-server` on `127.0.0.1:<port>`, killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    options: RedisOptions,
    dir: Arc<TempDir>,
}

impl RedisServer {
    /// Starts a plain server on a free loopback port.
    ///
    /// # Panics
    /// If `redis-server` is not on `PATH` (the tests are never skipped) or does not start.
    pub fn start() -> Self {
        Self::start_with(RedisOptions::default())
    }

    /// Starts a server with `options` on a free loopback port.
    ///
    /// # Panics
    /// As [`start`](Self::start).
    pub fn start_with(options: RedisOptions) -> Self {
        let dir = Arc::new(tempfile::tempdir().expect("a temporary directory"));
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            match spawn_redis(port, &options, dir.path()) {
                Ok(child) => {
                    return Self {
                        port,
                        child: Some(child),
                        options,
                        dir,
                    };
                }
                // Another process may have taken the port between our probe and the server's bind.
                Err(e) => last = e,
            }
        }
        panic!("could not start redis-server: {last}");
    }

    /// `redis://127.0.0.1:<port>`, or `rediss://localhost:<port>` for a TLS server (the name
    /// its certificate is for).
    pub fn url(&self) -> String {
        match self.options.tls {
            Some(_) => format!("rediss://localhost:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs `redis-cli` against this server as the `default` user (TLS and password as
    /// configured) with `args`, and returns its standard output.
    ///
    /// # Panics
    /// If `redis-cli` cannot be run or fails.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = self.cli_output(args);
        assert!(
            out.status.success(),
            "redis-cli {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn cli_output(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(tls) = &self.options.tls {
            cmd.arg("--tls")
                .arg("--cacert")
                .arg(tls.pki.path("ca.pem"))
                .arg("--cert")
                .arg(tls.pki.path("client.crt"))
                .arg("--key")
                .arg(tls.pki.path("client.key"))
                .arg("--sni")
                .arg("localhost");
        }
        if let Some(pw) = &self.options.default_password {
            cmd.args(["--no-auth-warning", "-a", pw]);
        }
        cmd.args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run `redis-cli` ({e}); it comes with redis-server"))
    }

    /// Kills the server (SIGKILL: no clean shutdown, like a crash).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open but nothing answers, like a hung or
    /// overloaded Redis.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a [`pause`](Self::pause)d server (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("redis-server is running").id();
        let status = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {sig} {pid} failed");
    }

    /// Starts the server again on the same port (a cluster node keeps its node file, so it
    /// rejoins; any other server comes back empty).
    ///
    /// # Panics
    /// If the server does not come back within 15 seconds.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match spawn_redis(self.port, &self.options, self.dir.path()) {
                Ok(child) => {
                    self.child = Some(child);
                    return;
                }
                Err(e) if Instant::now() >= deadline => {
                    panic!("could not restart redis-server on port {}: {e}", self.port)
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A paused server must be thawed to die promptly.
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
        }
        self.kill();
    }
}

/// Three Redis Cluster masters on free loopback ports, slots assigned by
/// `redis-cli --cluster create`.
#[derive(Debug)]
pub struct RedisCluster {
    /// The masters.
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three masters (with `options`, `cluster` forced on) and joins them.
    ///
    /// # Panics
    /// If the servers do not start or the cluster does not come up within 30 seconds.
    pub fn start(options: &RedisOptions) -> Self {
        let options = RedisOptions {
            cluster: true,
            ..options.clone()
        };
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| RedisServer::start_with(options.clone()))
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let mut args: Vec<&str> = vec!["--cluster", "create"];
        args.extend(addrs.iter().map(String::as_str));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        nodes[0].cli(&args);
        let cluster = Self { nodes };
        cluster.wait_until_ok();
        cluster
    }

    /// The node URLs.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// Waits until every running node says `cluster_state:ok`.
    ///
    /// # Panics
    /// After 30 seconds.
    pub fn wait_until_ok(&self) {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        for node in self.nodes.iter().filter(|n| n.child.is_some()) {
            loop {
                let out = node.cli_output(&["CLUSTER", "INFO"]);
                if String::from_utf8_lossy(&out.stdout).contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the cluster did not reach cluster_state:ok on port {}",
                    node.port()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// A primary, a replica of it and one sentinel monitoring it as [`SENTINEL_MASTER`].
#[derive(Debug)]
pub struct RedisSentinelSet {
    /// The primary at start.
    pub primary: RedisServer,
    /// Its replica at start.
    pub replica: RedisServer,
    sentinel_port: u16,
    sentinel: Option<Child>,
    dir: TempDir,
}

/// The name the sentinel monitors the primary under.
pub const SENTINEL_MASTER: &str = "iam-join-primary";

impl RedisSentinelSet {
    /// Starts the three and waits until the sentinel knows the replica.
    ///
    /// # Panics
    /// If a server does not start or the sentinel does not see the replica within 30 seconds.
    pub fn start() -> Self {
        let primary = RedisServer::start();
        let replica = RedisServer::start_with(RedisOptions {
            replica_of: Some(primary.port()),
            ..RedisOptions::default()
        });
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let conf = dir.path().join("sentinel.conf");
            // Sentinel rewrites its configuration file, so it must be a writable file.
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                     sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {primary} 1\n\
                     sentinel down-after-milliseconds {SENTINEL_MASTER} 1000\n\
                     sentinel failover-timeout {SENTINEL_MASTER} 5000\n",
                    dir = dir.path().display(),
                    primary = primary.port()
                ),
            )
            .expect("write sentinel.conf");
            let mut child = Command::new("redis-server")
                .arg(&conf)
                .arg("--sentinel")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("run redis-server --sentinel");
            match wait_for_ping(&mut child, port) {
                Ok(()) => {
                    let set = Self {
                        primary,
                        replica,
                        sentinel_port: port,
                        sentinel: Some(child),
                        dir,
                    };
                    set.wait_for_replica();
                    return set;
                }
                Err(e) => last = e,
            }
        }
        panic!("could not start the sentinel: {last}");
    }

    /// `redis://127.0.0.1:<sentinel port>`.
    pub fn sentinel_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.sentinel_port)
    }

    /// Runs `redis-cli` against the sentinel.
    ///
    /// # Panics
    /// If `redis-cli` fails.
    pub fn sentinel_cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.sentinel_port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli");
        assert!(out.status.success(), "redis-cli {args:?} failed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The port of the primary the sentinel reports now.
    pub fn current_primary_port(&self) -> u16 {
        let out = self.sentinel_cli(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", SENTINEL_MASTER]);
        out.lines()
            .nth(1)
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("no primary address in {out:?}"))
    }

    /// `SENTINEL FAILOVER`, then waits until the sentinel reports the replica as primary, the
    /// replica says it is one and the old primary says it is a replica.
    ///
    /// # Panics
    /// After 30 seconds without a completed failover.
    pub fn failover(&self) {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            let out = self.sentinel_cli(&["SENTINEL", "FAILOVER", SENTINEL_MASTER]);
            if out.contains("OK") {
                break;
            }
            // "NOGOODSLAVE" until the sentinel has seen the replica healthy for a while.
            assert!(
                Instant::now() < deadline,
                "SENTINEL FAILOVER refused: {out}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        // Done when the sentinel names the replica, it is primary, and the old primary has
        // been turned into its replica (until then both accept writes).
        loop {
            let role = self.replica.cli(&["ROLE"]);
            let old_role = self.primary.cli(&["ROLE"]);
            if self.current_primary_port() == self.replica.port()
                && role.starts_with("master")
                && old_role.starts_with("slave")
            {
                return;
            }
            assert!(Instant::now() < deadline, "the failover did not complete");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_for_replica(&self) {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            let out = self.sentinel_cli(&["SENTINEL", "REPLICAS", SENTINEL_MASTER]);
            let synced = self.replica.cli(&["INFO", "replication"]);
            if out.contains(&self.replica.port().to_string())
                && synced.contains("master_link_status:up")
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the sentinel did not see the replica"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for RedisSentinelSet {
    fn drop(&mut self) {
        if let Some(mut child) = self.sentinel.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = &self.dir;
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn spawn_redis(port: u16, options: &RedisOptions, dir: &Path) -> Result<Child, String> {
    let mut cmd = Command::new("redis-server");
    if !options.users.is_empty() {
        // ACL rules are read from a file: on the command line a rule is one argument, which
        // Redis would take for a user name with spaces.
        let conf = dir.join(format!("users-{port}.conf"));
        let lines: String = options
            .users
            .iter()
            .map(|u| format!("user {u}\n"))
            .collect();
        std::fs::write(&conf, lines).map_err(|e| format!("write {}: {e}", conf.display()))?;
        cmd.arg(conf);
    }
    cmd.args(["--bind", "127.0.0.1"])
        .args(["--save", ""])
        .args(["--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    match &options.tls {
        None => {
            cmd.args(["--port", &port.to_string()]);
        }
        Some(tls) => {
            cmd.args(["--port", "0", "--tls-port", &port.to_string()])
                .arg("--tls-cert-file")
                .arg(tls.pki.path(&format!("{}.crt", tls.cert)))
                .arg("--tls-key-file")
                .arg(tls.pki.path(&format!("{}.key", tls.cert)))
                .arg("--tls-ca-cert-file")
                .arg(tls.pki.path("ca.pem"))
                .args([
                    "--tls-auth-clients",
                    if tls.require_client_cert { "yes" } else { "no" },
                ]);
            if options.cluster {
                cmd.args(["--tls-cluster", "yes", "--tls-replication", "yes"]);
            }
        }
    }
    if let Some(pw) = &options.default_password {
        cmd.args(["--requirepass", pw]);
        if options.cluster {
            cmd.args(["--masterauth", pw]);
        }
    }
    if options.cluster {
        cmd.args(["--cluster-enabled", "yes"])
            .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
            .args(["--cluster-node-timeout", "2000"]);
    }
    if let Some(primary) = options.replica_of {
        cmd.args(["--replicaof", "127.0.0.1", &primary.to_string()]);
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| {
        panic!(
            "cannot run `redis-server` ({e}): the Redis tests need a real Redis server on PATH \
             (Debian/Ubuntu: `apt-get install redis-server`; scripts/test.sh installs it); \
             they are never skipped"
        )
    });
    let ready = if options.tls.is_some() {
        wait_for_listener(&mut child, port)
    } else {
        wait_for_ping(&mut child, port)
    };
    ready.map(|()| child)
}

/// Waits until the server answers `PING` (`+PONG`, or `-NOAUTH` when it needs a password).
fn wait_for_ping(child: &mut Child, port: u16) -> Result<(), String> {
    wait_until(child, port, || answers_ping(port))
}

/// Waits until a TLS server accepts connections.
fn wait_for_listener(child: &mut Child, port: u16) -> Result<(), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_until(child, port, || {
        TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
    })
}

fn wait_until(child: &mut Child, port: u16, ready: impl Fn() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "redis-server exited at start ({status}); port {port} taken?"
            ));
        }
        if ready() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "redis-server did not answer on port {port} within {START_TIMEOUT:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn answers_ping(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && (&buf == b"+PONG\r\n" || buf.starts_with(b"-NOAUTH"))
}
