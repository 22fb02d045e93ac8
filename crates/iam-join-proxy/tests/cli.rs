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

fn core_fixture(name: &str) -> PathBuf {
    workspace()
        .join("crates/iam-join-core/tests/fixtures")
        .join(name)
}

#[test]
fn check_tokens_json_lists_what_each_token_allows_ignores_and_warns() {
    let path = core_fixture("teleport/tctl-get-tokens.yaml");
    let out = run(&[
        "check-tokens",
        path.to_str().expect("utf-8"),
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(json["valid"], true);
    let tokens = json["tokens"].as_array().expect("tokens");
    let names: Vec<&str> = tokens.iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, ["iam-token", "bot-token"]);
    let iam = &tokens[0];
    assert_eq!(iam["kind"], "token");
    assert_eq!(iam["roles"], serde_json::json!(["Node", "App"]));
    assert_eq!(iam["expires"], "2027-01-01T00:00:00Z");
    assert_eq!(iam["defined_in"]["document"], 1);
    assert_eq!(iam["allow"][1]["aws_account"], "333333333333");
    assert_eq!(
        iam["allow"][1]["aws_arn"],
        "arn:aws:sts::333333333333:assumed-role/teleport-node-role/i-*"
    );
    assert_eq!(iam["allow"][2]["aws_organization_id"], "o-a1b2c3d4e5");
    assert_eq!(
        iam["allow"][2]["aws_organizational_units"]["exclude"],
        serde_json::json!(["ou-ab12-99999999"])
    );
    let ignored: Vec<&str> = iam["ignored"]
        .as_array()
        .expect("ignored")
        .iter()
        .filter_map(|f| f["field"].as_str())
        .collect();
    assert!(ignored.contains(&"spec.suggested_labels"), "{ignored:?}");
    assert_eq!(tokens[1]["bot_name"], "ci");
    let warnings = json["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 2, "the ec2 and github tokens are skipped");
    assert_eq!(warnings[0]["defined_in"]["document"], 3);
}

#[test]
fn check_tokens_json_reports_the_error_with_file_document_and_field() {
    let bad = core_fixture("invalid/misspelt-field.yaml");
    let out = run(&[
        "check-tokens",
        bad.to_str().expect("utf-8"),
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(json["valid"], false);
    assert_eq!(json["error"]["document"], 2);
    assert_eq!(json["error"]["field"], "spec.allow[1].aws_acount");
    assert!(
        json["error"]["source"]
            .as_str()
            .is_some_and(|s| s.ends_with("misspelt-field.yaml")),
        "{json}"
    );
}

#[test]
fn check_tokens_text_shows_operator_manifests_and_ignored_fields() {
    let dir = core_fixture("mixed");
    let out = run(&["check-tokens", dir.to_str().expect("utf-8")]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for expected in [
        "3 iam join token(s)",
        "token `operator-token`",
        "written as: TeleportProvisionToken",
        "ignored here: metadata.annotations",
        "spec.suggested_labels",
        "whose account is in AWS organization o-a1b2c3d4e5 under ou-ab12-11111111",
    ] {
        assert!(
            stdout.contains(expected),
            "{expected} missing from:\n{stdout}"
        );
    }
}

#[test]
fn check_tokens_refuses_a_bot_token_without_bot_name_like_tctl() {
    let bad = core_fixture("invalid/bot-without-bot-name.yaml");
    let out = run(&["check-tokens", bad.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("spec.bot_name"), "{stderr}");
}

#[test]
fn check_tokens_loads_the_kubernetes_token_configmap_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let configmap = std::fs::read_to_string(workspace().join("deploy/kubernetes/configmap.yaml"))
        .expect("configmap");
    let mut files = 0;
    for doc in serde_norway::Deserializer::from_str(&configmap) {
        let value: serde_norway::Value = serde::Deserialize::deserialize(doc).expect("yaml");
        if value["metadata"]["name"] != "iam-join-proxy-tokens" {
            continue;
        }
        for (name, body) in value["data"].as_mapping().expect("data") {
            let (Some(name), Some(body)) = (name.as_str(), body.as_str()) else {
                panic!("string data");
            };
            std::fs::write(dir.path().join(name), body).expect("write");
            files += 1;
        }
    }
    assert!(
        files >= 2,
        "the token ConfigMap holds the seed and an operator manifest"
    );
    let out = run(&[
        "check-tokens",
        dir.path().to_str().expect("utf-8"),
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let kinds: Vec<&str> = json["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .filter_map(|t| t["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"token") && kinds.contains(&"TeleportProvisionToken"),
        "{kinds:?}"
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
