//! The real binary under a low open-files limit (`prlimit`), flooded with idle sockets: the
//! proxy port and the admin port must keep answering (issue 17, finding 1).

#![cfg(target_os = "linux")]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_iam-join-proxy");
/// The proxy's descriptor limit, and how many idle sockets the test opens (well beyond it).
const OPEN_FILES: u32 = 128;
const IDLE_SOCKETS: usize = 200;
const PATIENCE: Duration = Duration::from_secs(30);

fn seed_tokens() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/tokens/token.yaml")
}

/// Kills the child when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Sends one HTTP/1.1 request with `Connection: close`; the status line, or `None` if there
/// was no answer in `PATIENCE`.
fn status_line(addr: SocketAddr, path: &str) -> Option<String> {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        let _ = s.set_read_timeout(Some(PATIENCE));
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        if s.write_all(req.as_bytes()).is_err() {
            continue;
        }
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        if let Some(line) = String::from_utf8_lossy(&answer).lines().next()
            && line.starts_with("HTTP/1.1")
        {
            return Some(line.to_owned());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

#[test]
fn idle_sockets_beyond_the_fd_limit_leave_the_proxy_and_healthz_answering() {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\nupstream: {{url: http://127.0.0.1:9}}\naudience: fd.example.com\n\
             default_token: iam-token\ntokens: {}\nadmin: {{listen: \"{admin}\"}}\n\
             log: {{format: json}}\nconnections: {{handshake_timeout: 1s}}\n",
            seed_tokens().display()
        ),
    )
    .expect("write config");
    let mut child = Command::new("prlimit")
        .arg(format!("--nofile={OPEN_FILES}:{OPEN_FILES}"))
        .arg("--")
        .arg(BIN)
        .args(["run", "--config", config.to_str().expect("utf-8")])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn prlimit (util-linux)");
    let stderr = child.stderr.take().expect("stderr");
    let _running = Running(child);
    let mut lines = BufReader::new(stderr).lines();
    let ready = lines
        .by_ref()
        .take(50)
        .map_while(Result::ok)
        .find(|l| l.contains("iam-join-proxy ready"))
        .expect("the proxy reports ready");
    let listen: SocketAddr =
        serde_json::from_str::<serde_json::Value>(&ready).expect("json")["listen"]
            .as_str()
            .expect("listen field")
            .parse()
            .expect("listen address");
    // Keep draining the log so the proxy never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});

    let idle: Vec<TcpStream> = (0..IDLE_SOCKETS)
        .map(|_| TcpStream::connect(listen).expect("connect (the kernel queues it)"))
        .collect();

    assert_eq!(
        status_line(admin, "/healthz").as_deref(),
        Some("HTTP/1.1 200 OK"),
        "the admin port stopped answering"
    );
    // The proxy itself: a request without a proof is answered 401 once the idle sockets ahead
    // of it in the queue have been closed by the handshake timeout.
    let line = status_line(listen, "/").expect("the proxy port stopped answering");
    assert!(line.starts_with("HTTP/1.1 401"), "{line}");
    drop(idle);
}
