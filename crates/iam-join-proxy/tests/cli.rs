//! The real `iam-join-proxy` binary: `check-config`, `check-tokens`, `demo`, and `run` stopped
//! by SIGTERM.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_iam-join-proxy");

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn seed_tokens() -> PathBuf {
    workspace().join("deploy/tokens/token.yaml")
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("IAM_JOIN_PROXY_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .expect("run iam-join-proxy")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A config in a temp dir whose `tokens` is `tokens`.
fn config_with(dir: &Path, tokens: &Path, extra: &str) -> PathBuf {
    let path = dir.join("config.yaml");
    std::fs::write(
        &path,
        format!(
            "listen: 127.0.0.1:0\nupstream: {{url: http://127.0.0.1:3080}}\naudience: teleport.example.com\n\
             default_token: iam-token\ntokens: {}\n{extra}",
            tokens.display()
        ),
    )
    .expect("write config");
    path
}

#[test]
fn check_config_accepts_the_seed_token_file_and_prints_what_it_allows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config_with(dir.path(), &seed_tokens(), "");
    let out = run(&["check-config", "--config", config.to_str().expect("utf-8")]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        text(&out.stderr)
    );
    assert!(stdout.contains("configuration is valid"), "{stdout}");
    for expected in [
        "iam-token",
        "111111111111",
        "222222222222",
        "333333333333",
        "teleport-node-role/i-*",
    ] {
        assert!(
            stdout.contains(expected),
            "{expected} missing from:\n{stdout}"
        );
    }
}

#[test]
fn check_config_rejects_a_misspelt_token_field_and_names_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = dir.path().join("token.yaml");
    let seed = std::fs::read_to_string(seed_tokens()).expect("seed");
    std::fs::write(
        &tokens,
        seed.replace(
            "- aws_account: \"222222222222\"",
            "- aws_acount: \"222222222222\"",
        ),
    )
    .expect("write");
    let config = config_with(dir.path(), &tokens, "");
    let out = run(&["check-config", "--config", config.to_str().expect("utf-8")]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("aws_acount"), "{stderr}");
    assert!(stderr.contains("token.yaml"), "{stderr}");
}

#[test]
fn check_config_rejects_a_misspelt_config_field_and_names_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config_with(dir.path(), &seed_tokens(), "cache: {capacityy: 10}\n");
    let out = run(&["check-config", "--config", config.to_str().expect("utf-8")]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("capacityy") && stderr.contains("cache"),
        "{stderr}"
    );

    let config = config_with(
        dir.path(),
        &seed_tokens(),
        "rate_limits: {per_client: {per_second: 0}}\n",
    );
    let out = run(&["check-config", "--config", config.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("rate_limits.per_client.per_second"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn check_tokens_validates_like_tctl_and_names_the_misspelt_field() {
    let out = run(&["check-tokens", seed_tokens().to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("1 iam join token"),
        "{}",
        text(&out.stdout)
    );

    let bad = workspace().join("crates/iam-join-core/tests/fixtures/invalid/misspelt-field.yaml");
    let out = run(&["check-tokens", bad.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("aws_acount"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn deploy_example_config_passes_check_config() {
    let config = workspace().join("deploy/config.yaml");
    let out = run(&["check-config", "--config", config.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn demo_shows_admitted_denied_and_replayed_then_exits_zero() {
    let started = Instant::now();
    let out = run(&["demo"]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        text(&out.stderr)
    );
    for expected in [
        "200 OK",
        "not_allowed",
        "challenge_reused",
        "x-iam-join-account",
        "All steps behaved as expected",
    ] {
        assert!(
            stdout.contains(expected),
            "{expected} missing from:\n{stdout}"
        );
    }
    // Not a timing assertion on the proxy, a guard on the promise "well under a minute".
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[cfg(unix)]
#[test]
fn sigterm_stops_a_running_proxy_cleanly() {
    use std::io::{BufRead as _, BufReader};

    let dir = tempfile::tempdir().expect("tempdir");
    // Port 0: the proxy logs the port it got.
    let config = config_with(dir.path(), &seed_tokens(), "log: {format: json}\n");
    let mut child = Command::new(BIN)
        .args(["run", "--config", config.to_str().expect("utf-8")])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut ready = false;
    for line in lines.by_ref().take(50) {
        let line = line.expect("log line");
        if line.contains("iam-join-proxy ready") {
            ready = true;
            break;
        }
    }
    assert!(ready, "the proxy did not report ready");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = child.try_wait().expect("wait") {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "the proxy did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "exit status {exit:?}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.contains("stopped")), "{rest:?}");
}
