//! `sts-emulator`: a loopback AWS STS (`GetCallerIdentity` only) that really verifies SigV4.
//!
//! ```text
//! sts-emulator [--listen 127.0.0.1:9443] [--identities FILE] [--latency-ms N]
//! ```
//!
//! Prints `listening on http://ADDR` and the key ids it knows (never secrets), then serves until
//! Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use sts_emulator::{Emulator, TestIdentity, default_identities};

/// A loopback AWS STS that answers GetCallerIdentity and really verifies SigV4 signatures.
#[derive(Debug, Parser)]
#[command(name = "sts-emulator", version)]
struct Args {
    /// Loopback address to listen on (127.0.0.1 or ::1; port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:9443")]
    listen: SocketAddr,
    /// JSON file with a list of identities ({"access_key_id", "secret_access_key",
    /// "session_token"?, "account", "arn", "user_id"}); default: the built-in test identities.
    #[arg(long, value_name = "FILE")]
    identities: Option<PathBuf>,
    /// Delay added before every answer, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    latency_ms: u64,
}

fn load_identities(path: Option<&PathBuf>) -> Result<Vec<TestIdentity>, String> {
    let Some(path) = path else {
        return Ok(default_identities());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|err| format!("invalid identities in {}: {err}", path.display()))
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("sts_emulator=info"))
                // aws-sigv4 logs the canonical request (session tokens) at debug/trace.
                .add_directive(
                    "aws_sigv4=info"
                        .parse()
                        .unwrap_or_else(|_| unreachable!("a valid directive")),
                ),
        )
        .with_writer(std::io::stderr)
        .init();

    let args = Args::parse();
    if !args.listen.ip().is_loopback() {
        eprintln!(
            "sts-emulator: refusing to listen on {}: only loopback addresses (127.0.0.1, ::1)",
            args.listen
        );
        return ExitCode::from(2);
    }
    let identities = match load_identities(args.identities.as_ref()) {
        Ok(identities) => identities,
        Err(err) => {
            eprintln!("sts-emulator: {err}");
            return ExitCode::from(2);
        }
    };
    let key_list: Vec<(String, String)> = identities
        .iter()
        .map(|id| (id.access_key_id.clone(), id.arn.clone()))
        .collect();

    let sts = match Emulator::builder()
        .identities(identities)
        .latency(Duration::from_millis(args.latency_ms))
        .bind(args.listen)
        .start()
        .await
    {
        Ok(sts) => sts,
        Err(err) => {
            eprintln!("sts-emulator: cannot listen on {}: {err}", args.listen);
            return ExitCode::FAILURE;
        }
    };

    println!("listening on {}", sts.url());
    for (key, arn) in &key_list {
        println!("  {key}  {arn}");
    }

    if let Err(err) = tokio::signal::ctrl_c().await {
        eprintln!("sts-emulator: cannot wait for Ctrl-C: {err}");
    }
    sts.shutdown().await;
    ExitCode::SUCCESS
}
