//! A real nginx or Caddy on a free loopback port, for the `/verify` mode tests: the proxy that
//! sits in front of an app and asks the verifier about every request. Tests that use it fail
//! (never skip) when `nginx` or `caddy` is not on `PATH`.
//!
//! The caller supplies the site configuration (usually a committed example from `deploy/` with
//! its addresses replaced); this module wraps it in what a test run needs: a private prefix
//! directory for pid, logs, temp files and Caddy's storage, no daemonizing, no admin endpoint,
//! no automatic HTTPS, nothing outside the directory.

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long to wait for the server to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Attempts with a fresh port when another process takes ours between probe and bind.
const START_ATTEMPTS: usize = 5;

/// Which server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrontKind {
    /// Debian's `nginx` (with `auth_request`).
    Nginx,
    /// Debian's `caddy` (with `forward_auth`).
    Caddy,
}

impl FrontKind {
    fn program(self) -> &'static str {
        match self {
            Self::Nginx => "nginx",
            Self::Caddy => "caddy",
        }
    }

    /// The program on `PATH`, else in `/usr/sbin` (where Debian puts nginx, and which is not
    /// on every user's `PATH`).
    fn command(self) -> Command {
        let name = self.program();
        let on_path = std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()));
        let sbin = Path::new("/usr/sbin").join(name);
        if !on_path && sbin.is_file() {
            Command::new(sbin)
        } else {
            Command::new(name)
        }
    }
}

/// A running nginx or Caddy on `127.0.0.1:<port>`, killed (and its directory removed) on drop.
#[derive(Debug)]
pub struct FrontProxy {
    kind: FrontKind,
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl FrontProxy {
    /// Starts nginx with `site(port)` included inside `http { }`; the site must listen on
    /// `127.0.0.1:<port>`.
    ///
    /// # Panics
    /// If `nginx` is not on `PATH` (the tests are never skipped), rejects the configuration, or
    /// does not listen within 20 seconds. The message holds nginx's error log.
    pub fn nginx(site: impl Fn(u16) -> String) -> Self {
        Self::start(FrontKind::Nginx, &site)
    }

    /// Starts Caddy with the Caddyfile `site(port)` after a global options block (admin
    /// endpoint off, automatic HTTPS off, storage in the private directory); the site must be
    /// `http://:<port>` bound to 127.0.0.1.
    ///
    /// # Panics
    /// As [`FrontProxy::nginx`], for `caddy`.
    pub fn caddy(site: impl Fn(u16) -> String) -> Self {
        Self::start(FrontKind::Caddy, &site)
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Which server this is.
    pub fn kind(&self) -> FrontKind {
        self.kind
    }

    /// The server's log so far (nginx's error log, Caddy's stderr), for failure messages.
    pub fn log(&self) -> String {
        read_log(&self.dir)
    }

    fn start(kind: FrontKind, site: &dyn Fn(u16) -> String) -> Self {
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let dir = private_dir(kind);
            match spawn(kind, &dir, port, &site(port)) {
                Ok(child) => {
                    return Self {
                        kind,
                        port,
                        dir,
                        child: Some(child),
                    };
                }
                Err(e) => {
                    last = e;
                    let _ = fs::remove_dir_all(&dir);
                }
            }
        }
        panic!("could not start {}: {last}", kind.program());
    }
}

impl Drop for FrontProxy {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn private_dir(kind: FrontKind) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "iam-join-{}-{}-{}",
        kind.program(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create the server's directory");
    dir
}

/// nginx's main file: one process (so killing it leaves no workers behind), every path inside
/// `dir`, workers as root only when the tests run as root (nginx would switch to `nobody`).
fn nginx_conf(dir: &Path) -> String {
    let d = dir.display();
    let user = if running_as_root() {
        "user root;\n"
    } else {
        ""
    };
    format!(
        "{user}pid {d}/nginx.pid;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n\
         \x20   access_log off;\n\
         \x20   client_body_temp_path {d}/client_body;\n\
         \x20   proxy_temp_path {d}/proxy;\n\
         \x20   fastcgi_temp_path {d}/fastcgi;\n\
         \x20   uwsgi_temp_path {d}/uwsgi;\n\
         \x20   scgi_temp_path {d}/scgi;\n\
         \x20   include {d}/site.conf;\n\
         }}\n"
    )
}

fn caddy_globals(dir: &Path) -> String {
    format!(
        "{{\n\tadmin off\n\tauto_https off\n\tstorage file_system {}/storage\n}}\n\n",
        dir.display()
    )
}

fn running_as_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|ids| ids.split_whitespace().next() == Some("0"))
        })
        .unwrap_or(false)
}

fn spawn(kind: FrontKind, dir: &Path, port: u16, site: &str) -> Result<Child, String> {
    let mut command = kind.command();
    match kind {
        FrontKind::Nginx => {
            fs::write(dir.join("site.conf"), site).expect("write site.conf");
            fs::write(dir.join("nginx.conf"), nginx_conf(dir)).expect("write nginx.conf");
            command
                .arg("-e")
                .arg(dir.join("error.log"))
                .arg("-p")
                .arg(dir)
                .arg("-c")
                .arg(dir.join("nginx.conf"))
                .args(["-g", "daemon off; master_process off;"]);
        }
        FrontKind::Caddy => {
            let caddyfile = dir.join("Caddyfile");
            fs::write(&caddyfile, format!("{}{site}", caddy_globals(dir)))
                .expect("write Caddyfile");
            command
                .arg("run")
                .arg("--config")
                .arg(&caddyfile)
                .args(["--adapter", "caddyfile"])
                // Caddy writes its autosave and data under these; keep them in `dir`.
                .env("HOME", dir)
                .env("XDG_CONFIG_HOME", dir.join("config"))
                .env("XDG_DATA_HOME", dir.join("data"));
        }
    }
    let log = fs::File::create(dir.join("stderr.log")).expect("create stderr.log");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `{program}` ({e}): the /verify tests need a real {program} on PATH \
                 (Debian/Ubuntu: `apt-get install {program}`; scripts/test.sh installs it); \
                 they are never skipped",
                program = kind.program()
            )
        });
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "{} exited at start ({status}); port {port} taken?\n{}",
                kind.program(),
                read_log(dir)
            ));
        }
        if accepts(port) {
            return Ok(child);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{} did not listen on port {port} within {START_TIMEOUT:?}\n{}",
                kind.program(),
                read_log(dir)
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn accepts(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

fn read_log(dir: &Path) -> String {
    ["error.log", "stderr.log"]
        .iter()
        .filter_map(|name| fs::read_to_string(dir.join(name)).ok())
        .collect::<Vec<_>>()
        .join("\n")
}
