//! End-to-end load benchmark: `iam-join-proxy` (the library the binary runs, in this process)
//! in front of a trivial upstream, with the sts-emulator as STS, everything on 127.0.0.1.
//!
//! `cargo run --release -p iam-join-benches --bin load [-- --rounds 4 --seconds 4 --connections 32]`
//!
//! 1. **Verification on vs off**, alternating in one run. Each round measures, in turn (the
//!    order rotates every round so drift does not favour one mode):
//!    - `on`: `GET /app` with `Authorization: Bearer <proof>`: one audience-bound proof reused
//!      by every request, so after the round's warm-up request every request is a cache hit;
//!    - `off`: `GET /public/app`, a `public_paths` entry of the same proxy, carrying the same
//!      header: the same listener, layer instance and forwarder, minus verification;
//!    - `direct`: the upstream itself, without the proxy (what the proxy costs at all).
//!
//!    Each phase runs `--connections` HTTP/1.1 keep-alive connections, each sending one request
//!    at a time, for `--seconds` (and at most `--max-requests` requests); latency is measured
//!    per request from sending to the end of the response body.
//! 2. **1000-way concurrency on one new proof**: `--burst` connections are opened first, then
//!    each sends one request carrying the same never-seen proof at once; the emulator counts the
//!    STS calls. Run twice: with rate limits off, and with the default limits (per client 20/s,
//!    burst 40; every request comes from 127.0.0.1).
//!
//! The load generator shares the machine with the proxy, the upstream and the emulator: on a
//! small machine the absolute figures are mostly a measure of the machine. Compare modes within
//! one run only.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use iam_join_benches::{
    AUDIENCE, Form, ProofKind, SEED_POLICY_YAML, machine_description, sign_proof,
};
use iam_join_proxy::config::{LogConfig, LogFormat};
use iam_join_proxy::{Config, Proxy, ProxyHandle, TokenSource};
use iam_join_tower::RateLimits;
use sts_emulator::{Emulator, EmulatorHandle, default_identities};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Barrier, oneshot};

/// Identities the emulator knows beyond its defaults; proof `n` of a run uses `identity(n)`.
const BENCH_IDENTITIES: u64 = 64;

struct Options {
    rounds: u32,
    seconds: f64,
    connections: usize,
    max_requests: u64,
    burst: usize,
    server_threads: usize,
    /// Install the proxy binary's log subscriber (`json` or `human`, level info, on stderr), so
    /// the per-decision log events cost what they cost in production.
    log: Option<LogFormat>,
    /// Only start the servers, print their addresses and a warmed proof, and serve this long
    /// (for an external load generator: `benches/wrk.sh`).
    serve: Option<u64>,
    /// Write the measured proxy's audit events to this file (`audit: {file: …}`), and report
    /// how many were dropped.
    audit: Option<String>,
}

impl Options {
    fn parse() -> Self {
        let mut o = Self {
            rounds: 4,
            seconds: 4.0,
            connections: 32,
            max_requests: 5_000_000,
            burst: 1000,
            server_threads: 2,
            serve: None,
            log: None,
            audit: None,
        };
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
            fn num<T: std::str::FromStr>(flag: &str, value: &str) -> T {
                value
                    .parse()
                    .unwrap_or_else(|_| panic!("{flag}: {value:?} is not a number"))
            }
            match flag.as_str() {
                "--rounds" => o.rounds = num(flag, value),
                "--seconds" => o.seconds = num(flag, value),
                "--connections" => o.connections = num(flag, value),
                "--max-requests" => o.max_requests = num(flag, value),
                "--burst" => o.burst = num(flag, value),
                "--server-threads" => o.server_threads = num(flag, value),
                "--serve" => o.serve = Some(num(flag, value)),
                "--audit" => o.audit = Some(value.clone()),
                "--log" => {
                    o.log = match value.as_str() {
                        "json" => Some(LogFormat::Json),
                        "human" => Some(LogFormat::Human),
                        "off" => None,
                        _ => panic!("--log must be json, human or off"),
                    }
                }
                _ => panic!(
                    "unknown option {flag}; options: --rounds N --seconds S --connections N \
                     --max-requests N --burst N --server-threads N --log json|human|off --serve SECONDS --audit FILE"
                ),
            }
        }
        // Every loop is bounded: at most 60 s a phase, 20 rounds, 5000 connections.
        assert!(o.rounds >= 1 && o.rounds <= 20, "--rounds must be 1..=20");
        assert!(
            o.seconds > 0.0 && o.seconds <= 60.0,
            "--seconds must be in (0, 60]"
        );
        assert!(
            (1..=1000).contains(&o.connections),
            "--connections must be 1..=1000"
        );
        assert!((1..=5000).contains(&o.burst), "--burst must be 1..=5000");
        // A proof lives 15 minutes; serving is bounded well inside that.
        assert!(
            o.serve.is_none_or(|s| (1..=600).contains(&s)),
            "--serve must be 1..=600 seconds"
        );
        o
    }
}

/// The trivial upstream: 200 `ok` to everything, HTTP/1.1 keep-alive.
async fn start_upstream() -> SocketAddr {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap_or_else(|e| panic!("upstream bind: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("upstream addr: {e}"));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let svc = service_fn(|_req| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// Starts the proxy in front of `upstream`, with `sts` as the STS of us-west-2, and `limits`.
async fn start_proxy(
    upstream: SocketAddr,
    sts: &EmulatorHandle,
    limits: RateLimits,
    audit: Option<&str>,
) -> (SocketAddr, oneshot::Sender<()>, ProxyHandle) {
    let audit = audit.map_or_else(String::new, |f| format!("audit: {{file: \"{f}\"}}\n"));
    // Every connection of the benchmark comes from 127.0.0.1: lift the per-client connection
    // cap (256 by default, against one hostile client) above the 1000-way burst.
    let yaml = format!(
        "listen: 127.0.0.1:0\n\
         upstream:\n  url: http://{upstream}\n\
         audience: {AUDIENCE}\n\
         default_token: iam-token\n\
         tokens: token.yaml\n\
         public_paths: [\"/public/*\"]\n\
         sts:\n  overrides:\n    sts.us-west-2.amazonaws.com: {}\n\
         connections: {{max_per_client: 4096}}\n\
         {audit}",
        sts.url()
    );
    let mut config = Config::from_yaml_str(&yaml, Path::new("."))
        .unwrap_or_else(|e| panic!("proxy config: {e}"));
    config.tokens = TokenSource::Inline {
        yaml: SEED_POLICY_YAML.to_owned(),
        name: "token.yaml".to_owned(),
    };
    config.rate_limits = limits;
    let proxy = Proxy::bind(config)
        .await
        .unwrap_or_else(|e| panic!("proxy bind: {e}"));
    let addr = proxy.local_addr();
    let handle = proxy.handle();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        if let Err(e) = proxy
            .serve(async {
                let _ = stopped.await;
            })
            .await
        {
            eprintln!("proxy stopped with an error: {e}");
        }
    });
    (addr, stop, handle)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Mode {
    On,
    Off,
    Direct,
}

impl Mode {
    const fn label(self) -> &'static str {
        match self {
            Self::On => "on (verified, cache hit)",
            Self::Off => "off (public path)",
            Self::Direct => "direct (no proxy)",
        }
    }
}

struct Target {
    addr: SocketAddr,
    path: &'static str,
    authorization: HeaderValue,
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn connect(addr: SocketAddr) -> Sender {
    let stream = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap_or_else(|e| panic!("handshake {addr}: {e}"));
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender
}

fn request(target: &Target) -> Request<Empty<Bytes>> {
    let mut req = Request::new(Empty::new());
    *req.uri_mut() = http::Uri::from_static(target.path);
    let host = HeaderValue::from_str(&target.addr.to_string())
        .unwrap_or_else(|e| panic!("host header: {e}"));
    req.headers_mut().insert(header::HOST, host);
    req.headers_mut()
        .insert(header::AUTHORIZATION, target.authorization.clone());
    req
}

/// Sends one request; returns its status, or `None` on a connection error.
async fn send(sender: &mut Sender, target: &Target) -> Option<StatusCode> {
    sender.ready().await.ok()?;
    let resp = sender.send_request(request(target)).await.ok()?;
    let status = resp.status();
    resp.into_body().collect().await.ok()?;
    Some(status)
}

/// CPU time (user + system) of the server threads (proxy, upstream, emulator), in clock ticks,
/// from `/proc/self/task/*/stat`. Ticks are USER_HZ, 100 a second on Linux.
fn server_cpu_ticks() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    let mut ticks = 0;
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ...`: the name may hold spaces, so split after the last ')'.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if !head.contains("(server") {
            continue;
        }
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // Fields 14 and 15 of stat are utime and stime; `rest` starts at field 3.
        for i in [11, 12] {
            ticks += fields
                .get(i)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    ticks
}

const TICKS_PER_SECOND: f64 = 100.0;

struct PhaseResult {
    requests: u64,
    errors: u64,
    elapsed: Duration,
    /// Server-thread CPU time during the phase.
    server_cpu: Duration,
    /// Sorted latencies, microseconds.
    latencies: Vec<u32>,
}

impl PhaseResult {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
    /// Server-thread CPU time per request, microseconds.
    fn cpu_per_request(&self) -> f64 {
        self.server_cpu.as_secs_f64() * 1e6 / self.requests.max(1) as f64
    }
    fn percentile(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies.len() as f64 * p) as usize).min(self.latencies.len() - 1);
        f64::from(self.latencies[i])
    }
}

async fn phase(target: Arc<Target>, o: &Options, seconds: f64) -> PhaseResult {
    let mut senders = Vec::with_capacity(o.connections);
    for _ in 0..o.connections {
        senders.push(connect(target.addr).await);
    }
    let barrier = Arc::new(Barrier::new(o.connections + 1));
    let budget = Arc::new(AtomicU64::new(o.max_requests));
    let run_for = Duration::from_secs_f64(seconds);
    let mut tasks = Vec::with_capacity(o.connections);
    for mut sender in senders {
        let (target, barrier, budget) = (
            Arc::clone(&target),
            Arc::clone(&barrier),
            Arc::clone(&budget),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(1 << 14);
            let mut errors = 0u64;
            barrier.wait().await;
            let deadline = Instant::now() + run_for;
            while Instant::now() < deadline
                && budget
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                    .is_ok()
            {
                let t = Instant::now();
                match send(&mut sender, &target).await {
                    Some(StatusCode::OK) => {
                        latencies.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX))
                    }
                    Some(_) => errors += 1,
                    None => {
                        errors += 1;
                        break;
                    }
                }
            }
            (latencies, errors)
        }));
    }
    barrier.wait().await;
    let start = Instant::now();
    let cpu_start = server_cpu_ticks();
    let mut result = PhaseResult {
        requests: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        server_cpu: Duration::ZERO,
        latencies: Vec::new(),
    };
    for task in tasks {
        let (lat, errors) = task.await.unwrap_or_else(|e| panic!("load task: {e}"));
        result.latencies.extend(lat);
        result.errors += errors;
    }
    result.elapsed = start.elapsed();
    result.server_cpu = Duration::from_secs_f64(
        server_cpu_ticks().saturating_sub(cpu_start) as f64 / TICKS_PER_SECOND,
    );
    result.requests = result.latencies.len() as u64;
    result.latencies.sort_unstable();
    result
}

fn bearer(proof: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("Bearer {proof}")).unwrap_or_else(|e| panic!("{e}"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// `n` connections each send one request with `proof` at the same moment; returns the count of
/// each status (0 = connection error) and the STS calls made meanwhile.
async fn burst(
    addr: SocketAddr,
    n: usize,
    proof: &str,
    emulator: &EmulatorHandle,
) -> (BTreeMap<u16, u64>, u64, Duration) {
    let target = Arc::new(Target {
        addr,
        path: "/app",
        authorization: bearer(proof),
    });
    let mut senders = Vec::with_capacity(n);
    for _ in 0..n {
        senders.push(connect(addr).await);
    }
    let barrier = Arc::new(Barrier::new(n + 1));
    let calls_before = emulator.calls();
    let mut tasks = Vec::with_capacity(n);
    for mut sender in senders {
        let (target, barrier) = (Arc::clone(&target), Arc::clone(&barrier));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            tokio::time::timeout(Duration::from_secs(30), send(&mut sender, &target))
                .await
                .ok()
                .flatten()
                .map_or(0, |s| s.as_u16())
        }));
    }
    barrier.wait().await;
    let start = Instant::now();
    let mut statuses = BTreeMap::new();
    for task in tasks {
        let status = task.await.unwrap_or_else(|e| panic!("burst task: {e}"));
        *statuses.entry(status).or_insert(0) += 1;
    }
    let took = start.elapsed();
    (statuses, emulator.calls() - calls_before, took)
}

fn main() {
    let o = Options::parse();
    if let Some(format) = o.log {
        iam_join_proxy::telemetry::init_logging(&LogConfig::new(format, "info"));
    }
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(o.server_threads)
        .thread_name("server")
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("server runtime: {e}"));
    // The load generator gets its own single thread.
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("client runtime: {e}"));

    let (emulator, upstream, proxy, proxy_stop, limited, limited_stop) = server.block_on(async {
        let mut identities = default_identities();
        for kind in ProofKind::ALL {
            identities.extend((0..BENCH_IDENTITIES).map(|n| kind.identity(n)));
        }
        let emulator = Emulator::builder()
            .identities(identities)
            .start()
            .await
            .unwrap_or_else(|e| panic!("sts-emulator: {e}"));
        let upstream = start_upstream().await;
        let (proxy, stop, handle) =
            start_proxy(upstream, &emulator, RateLimits::none(), o.audit.as_deref()).await;
        let (limited, limited_stop, _) =
            start_proxy(upstream, &emulator, RateLimits::default(), None).await;
        (
            emulator,
            upstream,
            (proxy, handle),
            stop,
            limited,
            limited_stop,
        )
    });
    let (proxy, proxy_handle) = proxy;
    let date = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    println!("# iam-join load benchmark, {date}");
    println!("machine: {}", machine_description());
    println!(
        "proxy with {} server threads, load generator on 1 thread, same machine; {} connections, \
         {} s per phase, {} rounds; proxy logs: {}",
        o.server_threads,
        o.connections,
        o.seconds,
        o.rounds,
        match o.log {
            Some(LogFormat::Json) => "json at info, on stderr",
            Some(_) => "human at info, on stderr",
            None => "none (no subscriber)",
        }
    );
    let kind = ProofKind::SessionToken;
    if let Some(seconds) = o.serve {
        let proof = sign_proof(&kind.identity(0), Form::Post, SystemTime::now());
        let warm = Target {
            addr: proxy,
            path: "/app",
            authorization: bearer(&proof),
        };
        let status = client.block_on(async { send(&mut connect(proxy).await, &warm).await });
        assert_eq!(status, Some(StatusCode::OK), "the proof was not admitted");
        println!("PROXY={proxy}");
        println!("UPSTREAM={upstream}");
        println!("PROOF={proof}");
        println!("SERVING_SECONDS={seconds}");
        std::thread::sleep(Duration::from_secs(seconds));
        println!("STS_CALLS={}", emulator.calls());
        return;
    }
    let mut next_identity = 0u64;
    let mut new_proof = || {
        let n = next_identity % BENCH_IDENTITIES;
        next_identity += 1;
        sign_proof(&kind.identity(n), Form::Post, SystemTime::now())
    };

    let mut results: BTreeMap<Mode, Vec<PhaseResult>> = BTreeMap::new();
    let modes = [Mode::On, Mode::Off, Mode::Direct];
    client.block_on(async {
        for round in 0..=o.rounds {
            // A fresh proof each round (a proof lives 15 minutes), verified once before timing.
            let proof = new_proof();
            let authorization = bearer(&proof);
            let warm = Target {
                addr: proxy,
                path: "/app",
                authorization: authorization.clone(),
            };
            let status = send(&mut connect(proxy).await, &warm).await;
            assert_eq!(status, Some(StatusCode::OK), "the round's proof was not admitted");
            let mut order = modes;
            order.rotate_left(round as usize % modes.len());
            for mode in order {
                let target = Arc::new(Target {
                    addr: if mode == Mode::Direct { upstream } else { proxy },
                    path: if mode == Mode::Off { "/public/app" } else { "/app" },
                    authorization: authorization.clone(),
                });
                // Round 0 is a short warm-up and is not reported.
                let seconds = if round == 0 { o.seconds.min(1.0) } else { o.seconds };
                let calls = emulator.calls();
                let r = phase(target, &o, seconds).await;
                assert_eq!(emulator.calls(), calls, "a cache-hit phase called STS");
                if round == 0 {
                    continue;
                }
                println!(
                    "round {round} {:<26} {:>9.0} req/s  p50 {:>6.0} us  p99 {:>6.0} us  server CPU {:>5.1} us/req  ({} requests, {} errors)",
                    mode.label(),
                    r.rps(),
                    r.percentile(0.50),
                    r.percentile(0.99),
                    r.cpu_per_request(),
                    r.requests,
                    r.errors
                );
                results.entry(mode).or_default().push(r);
            }
        }
    });

    println!();
    println!(
        "| mode | req/s (median of rounds) | p50 µs | p99 µs | server CPU µs/request | errors |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let summary = |mode: Mode| {
        let rs = &results[&mode];
        (
            median(rs.iter().map(PhaseResult::rps).collect()),
            median(rs.iter().map(|r| r.percentile(0.50)).collect()),
            median(rs.iter().map(|r| r.percentile(0.99)).collect()),
            median(rs.iter().map(PhaseResult::cpu_per_request).collect()),
            rs.iter().map(|r| r.errors).sum::<u64>(),
        )
    };
    for mode in modes {
        let (rps, p50, p99, cpu, errors) = summary(mode);
        println!(
            "| {} | {rps:.0} | {p50:.0} | {p99:.0} | {cpu:.1} | {errors} |",
            mode.label()
        );
    }
    // Ratios are paired by round (the two phases of a round ran back to back), then the median
    // of the rounds is taken; min and max show the spread.
    let paired = |a: Mode, b: Mode, f: fn(&PhaseResult) -> f64| {
        let mut r: Vec<f64> = results[&a]
            .iter()
            .zip(&results[&b])
            .map(|(x, y)| f(x) / f(y))
            .collect();
        r.sort_by(f64::total_cmp);
        let text = r
            .iter()
            .map(|v| format!("{v:.2}"))
            .collect::<Vec<_>>()
            .join(", ");
        (median(r), text)
    };
    let rps: fn(&PhaseResult) -> f64 = PhaseResult::rps;
    let p50: fn(&PhaseResult) -> f64 = |r| r.percentile(0.50);
    let p99: fn(&PhaseResult) -> f64 = |r| r.percentile(0.99);
    let cpu: fn(&PhaseResult) -> f64 = PhaseResult::cpu_per_request;
    println!();
    println!("| ratio, median of rounds (each round's values, sorted) | value |");
    println!("|---|---:|");
    for (label, a, b, f) in [
        ("on/off throughput", Mode::On, Mode::Off, rps),
        ("on/off p50 latency", Mode::On, Mode::Off, p50),
        ("on/off p99 latency", Mode::On, Mode::Off, p99),
        ("on/off server CPU per request", Mode::On, Mode::Off, cpu),
        (
            "off/direct throughput (the proxy itself)",
            Mode::Off,
            Mode::Direct,
            rps,
        ),
        (
            "off/direct server CPU per request",
            Mode::Off,
            Mode::Direct,
            cpu,
        ),
    ] {
        let (m, all) = paired(a, b, f);
        println!("| {label} ({all}) | {m:.2}x |");
    }
    let delta: Vec<f64> = results[&Mode::On]
        .iter()
        .zip(&results[&Mode::Off])
        .map(|(on, off)| on.cpu_per_request() - off.cpu_per_request())
        .collect();
    println!(
        "\nverification adds {:+.1} us of server CPU per request (median of rounds)",
        median(delta)
    );

    println!();
    for (trial, label, addr) in (1..=3).flat_map(|trial| {
        [
            (trial, "rate limits off", proxy),
            (
                trial,
                "default rate limits (per client 20/s, burst 40)",
                limited,
            ),
        ]
    }) {
        // Let the limited proxy's per-client bucket refill (burst 40 at 20/s) between trials.
        std::thread::sleep(Duration::from_millis(2500));
        let proof = new_proof();
        let (statuses, calls, took) = client.block_on(burst(addr, o.burst, &proof, &emulator));
        let statuses = statuses
            .iter()
            .map(|(s, n)| {
                if *s == 0 {
                    format!("{n} x connection error")
                } else {
                    format!("{n} x {s}")
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        println!(
            "trial {trial}: {} concurrent requests, one new proof, {label}: {calls} STS call(s); {statuses}; {:.0} ms",
            o.burst,
            took.as_secs_f64() * 1000.0
        );
    }

    if let Some(file) = &o.audit {
        let lines = std::fs::read_to_string(file).map_or(0, |t| t.lines().count());
        println!(
            "audit: {} event(s) dropped by the measured proxy; {lines} line(s) in {file} so far",
            proxy_handle.audit_dropped()
        );
    }
    server.block_on(async {
        let _ = proxy_stop.send(());
        let _ = limited_stop.send(());
        tokio::time::sleep(Duration::from_millis(100)).await;
        emulator.shutdown().await;
    });
}
