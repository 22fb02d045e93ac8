//! Reading Teleport agent configs.
#![cfg(feature = "teleport-config")]

use std::path::Path;

use iam_join_client::{ClientError, TeleportAgentConfig};

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn seed_teleport_config_gives_token_name_and_proxy_url() {
    let cfg = TeleportAgentConfig::from_path(&fixture("teleport.yaml")).expect("loads");
    assert_eq!(cfg.token_name, "iam-token");
    assert_eq!(cfg.proxy_url, "https://teleport.example.com:443");
    assert_eq!(cfg.address_key, "teleport.proxy_server");
}

#[test]
fn token_join_method_is_a_clear_error_naming_the_file() {
    let path = fixture("teleport-token-method.yaml");
    let err = TeleportAgentConfig::from_path(&path).unwrap_err();
    assert!(matches!(err, ClientError::TeleportConfig { .. }));
    let text = err.to_string();
    assert!(
        text.contains(
            r#"join_params.method is "token"; iam-join only makes IAM join proofs (method: iam)"#
        ),
        "{text}"
    );
    assert!(text.contains("teleport-token-method.yaml"), "{text}");
}

#[test]
fn missing_config_file_is_an_error_naming_the_file() {
    let err = TeleportAgentConfig::from_path(&fixture("nope.yaml")).unwrap_err();
    assert!(err.to_string().contains("nope.yaml"), "{err}");
}
