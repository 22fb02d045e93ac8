//! The `sts-emulator` binary: prints where it listens and refuses non-loopback addresses.
#![allow(missing_docs, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_sts-emulator");

#[test]
fn binary_prints_listen_url_and_key_ids_but_not_secrets() {
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--latency-ms", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let printed: Vec<String> = lines.by_ref().take(5).map(Result::unwrap).collect();
    child.kill().unwrap();
    child.wait().unwrap();

    assert!(
        first.starts_with("listening on http://127.0.0.1:"),
        "{first}"
    );
    let all = printed.join("\n");
    for id in sts_emulator::default_identities() {
        assert!(all.contains(&id.access_key_id), "{all}");
        assert!(!all.contains(&id.secret_access_key));
    }
}

#[test]
fn binary_refuses_a_non_loopback_listen_address() {
    let output = Command::new(BIN)
        .args(["--listen", "0.0.0.0:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("loopback"));
}

#[test]
fn binary_rejects_an_identities_file_with_unknown_fields() {
    let path = std::env::temp_dir().join(format!("sts-emulator-ids-{}.json", std::process::id()));
    std::fs::write(&path, r#"[{"access_key_id":"AKIAX","secret":"s"}]"#).unwrap();
    let output = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--identities"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("invalid identities"));
}
