//! `iam-join-proxy`: admits AWS workloads by IAM join in front of an upstream.
//!
//! ```text
//! iam-join-proxy demo                          # the whole flow on 127.0.0.1, then exit
//! iam-join-proxy run --config FILE             # serve (SIGTERM/SIGINT drain, SIGHUP reloads tokens)
//! iam-join-proxy check-config --config FILE    # validate everything, print what tokens allow
//! iam-join-proxy check-tokens PATH [--format json]  # validate a token file or directory
//! ```
//!
//! Exit status: 0 on success, 1 when the configuration or tokens are invalid or serving failed,
//! 2 on a usage error.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use iam_join_core::policy::TokenPolicy;
use iam_join_proxy::check_tokens::{Format, render, render_error};
use iam_join_proxy::config::{Config, LogConfig, LogFormat};
use iam_join_proxy::{Proxy, ProxyHandle, telemetry};

/// A reverse proxy that admits AWS workloads by IAM join (signed sts:GetCallerIdentity proofs
/// matched against Teleport-style join tokens) in front of an upstream.
#[derive(Debug, Parser)]
#[command(name = "iam-join-proxy", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve with a configuration file. SIGTERM or SIGINT drain and stop; SIGHUP reloads the
    /// token policy (which is also reloaded when its files change).
    Run {
        /// The configuration file (YAML).
        #[arg(long, short, env = "IAM_JOIN_PROXY_CONFIG", value_name = "FILE")]
        config: PathBuf,
    },
    /// Validate a configuration file and everything it names (tokens, TLS files, keys), then
    /// print what each token allows. Binds nothing and calls nothing.
    CheckConfig {
        /// The configuration file (YAML).
        #[arg(long, short, env = "IAM_JOIN_PROXY_CONFIG", value_name = "FILE")]
        config: PathBuf,
    },
    /// Validate a token file or directory the way `tctl create` would, and print what each
    /// token allows, the fields ignored here, and the warnings.
    CheckTokens {
        /// A token file, or a directory of *.yaml / *.yml files (Teleport `kind: token`
        /// resources and operator `TeleportProvisionToken` manifests).
        path: PathBuf,
        /// `text` for people; `json` for CI pipelines that diff what a change allows.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Run the sts-emulator, an echo upstream and the proxy on 127.0.0.1, show an admitted, a
    /// denied and a replayed request, and exit.
    Demo,
}

fn main() -> ExitCode {
    // Every TLS config here names ring explicitly; installing it as the process default too
    // keeps any library that asks for "the default provider" on the same one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("iam-join-proxy: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match cli.command {
            Command::Run { config } => run(&config).await,
            Command::CheckConfig { config } => check_config(&config),
            Command::CheckTokens { path, format } => check_tokens(&path, format.into()),
            Command::Demo => demo().await,
        }
    })
}

fn load_config(path: &Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        match e {
            iam_join_proxy::ConfigError::Read { .. } => eprintln!("iam-join-proxy: {e}"),
            _ => eprintln!("iam-join-proxy: {}: {e}", path.display()),
        }
        ExitCode::FAILURE
    })
}

async fn run(path: &Path) -> ExitCode {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    telemetry::init_logging(&config.log);
    // Before bind: bind logs "ready", and a signal after that must meet our handler.
    let signals = StopSignals::install();
    let proxy = match Proxy::bind(config).await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            eprintln!("iam-join-proxy: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    reload_on_sighup(proxy.handle());
    match proxy.serve(shutdown_signal(signals)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "serving failed");
            ExitCode::FAILURE
        }
    }
}

/// SIGTERM/SIGINT handlers, installed before the proxy reports ready so that a signal sent
/// right after "ready" is never met by the default action (terminate without draining).
#[cfg(unix)]
struct StopSignals(Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>);

#[cfg(unix)]
impl StopSignals {
    fn install() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(term), Ok(int)) => Self(Some((term, int))),
            _ => {
                tracing::error!("cannot listen for SIGTERM/SIGINT; falling back to Ctrl-C");
                Self(None)
            }
        }
    }

    async fn next(&mut self) {
        match &mut self.0 {
            Some((term, int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}

#[cfg(not(unix))]
struct StopSignals;

#[cfg(not(unix))]
impl StopSignals {
    fn install() -> Self {
        Self
    }

    async fn next(&mut self) {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Resolves on the first SIGTERM or SIGINT; a second one exits at once.
async fn shutdown_signal(mut signals: StopSignals) {
    signals.next().await;
    tracing::info!("stop signal received; a second one stops without draining");
    tokio::spawn(async move {
        signals.next().await;
        tracing::warn!("second stop signal: exiting without draining");
        std::process::exit(1);
    });
}

#[cfg(unix)]
fn reload_on_sighup(handle: ProxyHandle) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; reload on file change only");
            return;
        }
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            handle.reopen_audit();
            // Reloads are serialized and read files: off the async workers.
            let h = handle.clone();
            let reloaded = tokio::task::spawn_blocking(move || h.reload_policy("SIGHUP").is_some());
            if matches!(reloaded.await, Ok(false)) {
                tracing::warn!("SIGHUP: the token policy is not read from disk; nothing to reload");
            }
        }
    });
}

#[cfg(not(unix))]
fn reload_on_sighup(_handle: ProxyHandle) {}

fn check_config(path: &Path) -> ExitCode {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let policy = match iam_join_proxy::check_config(&config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("iam-join-proxy: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    println!("{}: configuration is valid", path.display());
    println!(
        "  listen {}{}, upstream {}",
        config.listen,
        if config.tls.is_some() { " (TLS)" } else { "" },
        config.upstream.url
    );
    if let Some(a) = &config.admin {
        println!("  admin {} (/metrics, /healthz, /readyz)", a.listen);
    }
    println!(
        "  audience {}, default token {}",
        config
            .audience
            .as_deref()
            .unwrap_or("(none: challenge-bound proofs only)"),
        config
            .default_token
            .as_deref()
            .unwrap_or("(none: clients send X-IAM-Join-Token)")
    );
    if let Some(p) = config.tokens_path() {
        println!("  tokens {}", p.display());
    }
    println!();
    print!("{}", policy.describe());
    ExitCode::SUCCESS
}

/// `check-tokens --format`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum OutputFormat {
    Text,
    Json,
}

impl From<OutputFormat> for Format {
    fn from(format: OutputFormat) -> Self {
        match format {
            OutputFormat::Text => Format::Text,
            OutputFormat::Json => Format::Json,
        }
    }
}

/// Text goes to stdout, errors to stderr; JSON always to stdout (one object, valid or not), so
/// a pipeline reads one stream. The exit status says whether the tokens load.
fn check_tokens(path: &Path, format: Format) -> ExitCode {
    match (TokenPolicy::load(path), format) {
        (Ok(policy), Format::Text) => {
            println!("{}: {} iam join token(s)\n", path.display(), policy.len());
            print!("{}", render(&policy, format));
            ExitCode::SUCCESS
        }
        (Ok(policy), Format::Json) => {
            print!("{}", render(&policy, format));
            ExitCode::SUCCESS
        }
        (Err(e), Format::Text) => {
            eprintln!("iam-join-proxy: {e}");
            ExitCode::FAILURE
        }
        (Err(e), Format::Json) => {
            print!("{}", render_error(&e, format));
            ExitCode::FAILURE
        }
    }
}

async fn demo() -> ExitCode {
    telemetry::init_logging(&LogConfig::new(LogFormat::Human, "warn"));
    match iam_join_proxy::demo::run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("iam-join-proxy: {e}");
            ExitCode::FAILURE
        }
    }
}
