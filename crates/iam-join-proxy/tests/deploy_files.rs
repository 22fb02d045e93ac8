//! The files in `deploy/` stay consistent with the code: the seed token, the Kubernetes
//! ConfigMaps, and the Grafana dashboard's metric names.

use std::path::{Path, PathBuf};

use iam_join_core::policy::TokenPolicy;
use iam_join_proxy::Config;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(workspace().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// DESIGN §9.
const DESIGN_METRICS: &[&str] = &[
    "iam_join_requests_total",
    "iam_join_verify_duration_seconds",
    "iam_join_sts_requests_total",
    "iam_join_sts_duration_seconds",
    "iam_join_cache_lookups_total",
    "iam_join_cache_entries",
    "iam_join_rate_limited_total",
    "iam_join_challenges_total",
    "iam_join_policy_reloads_total",
    // Issue 12 (signed assertions) adds these two to §9's list.
    "iam_join_assertions_issued_total",
    "iam_join_key_reloads_total",
    // Issue 16 (audit events).
    "iam_join_audit_events_dropped_total",
];

#[test]
fn demo_and_deploy_token_files_are_the_seed_token_unchanged() {
    let seed = read("crates/iam-join-core/tests/fixtures/token.yaml");
    assert_eq!(read("deploy/tokens/token.yaml"), seed);
    assert_eq!(iam_join_proxy::demo::DEMO_TOKENS, seed);
}

fn configmap_data(key: &str) -> String {
    let text = read("deploy/kubernetes/configmap.yaml");
    for doc in serde_norway::Deserializer::from_str(&text) {
        let value: serde_norway::Value = serde::Deserialize::deserialize(doc).expect("yaml");
        if let Some(s) = value
            .get("data")
            .and_then(|d| d.get(key))
            .and_then(|v| v.as_str())
        {
            return s.to_owned();
        }
    }
    panic!("no ConfigMap holds {key}");
}

#[test]
fn kubernetes_configmaps_hold_a_valid_config_and_the_seed_token() {
    let config = Config::from_yaml_str(
        &configmap_data("config.yaml"),
        Path::new("/etc/iam-join-proxy/config"),
    )
    .expect("the ConfigMap's config.yaml is valid");
    assert_eq!(
        config.tokens_path(),
        Some(Path::new("/etc/iam-join-proxy/tokens"))
    );
    assert_eq!(config.admin.map(|a| a.listen.port()), Some(9090));

    let ours = TokenPolicy::from_yaml_str(&configmap_data("token.yaml"), "x").expect("tokens load");
    let seed =
        TokenPolicy::from_yaml_str(&read("deploy/tokens/token.yaml"), "x").expect("seed loads");
    assert_eq!(ours.describe(), seed.describe());
}

#[test]
fn grafana_dashboard_uses_only_design_metric_names_and_covers_the_required_panels() {
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana/iam-join-proxy.json")).expect("dashboard JSON");
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            exprs.push(target["expr"].as_str().expect("expr").to_owned());
        }
    }
    let mut used = std::collections::BTreeSet::new();
    for expr in &exprs {
        let mut rest = expr.as_str();
        while let Some(i) = rest.find("iam_join_") {
            let name: String = rest[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[i + name.len()..];
            let base = name.strip_suffix("_bucket").unwrap_or(&name).to_owned();
            assert!(
                DESIGN_METRICS.contains(&base.as_str()),
                "{name} is not a DESIGN §9 metric"
            );
            used.insert(base);
        }
    }
    for required in [
        "iam_join_requests_total",
        "iam_join_verify_duration_seconds",
        "iam_join_sts_requests_total",
        "iam_join_sts_duration_seconds",
        "iam_join_cache_lookups_total",
        "iam_join_rate_limited_total",
        "iam_join_assertions_issued_total",
        "iam_join_key_reloads_total",
        "iam_join_audit_events_dropped_total",
    ] {
        assert!(used.contains(required), "no panel uses {required}");
    }
}

#[test]
fn deploy_example_config_loads() {
    let config =
        Config::load(&workspace().join("deploy/config.yaml")).expect("deploy/config.yaml is valid");
    assert!(config.tokens_path().is_some_and(|p| p.ends_with("tokens/")));
}

/// deploy/config.yaml with the commented block starting at `marker` uncommented, as an
/// operator would, loaded.
fn load_uncommented(marker: &str) -> Config {
    let text = read("deploy/config.yaml");
    // At the start of a line: `# otlp:` also appears indented inside the `audit:` example.
    let start = text
        .find(&format!("\n{marker}"))
        .expect("the example block")
        + 1;
    let commented: Vec<&str> = text[start..]
        .lines()
        .take_while(|l| l.starts_with('#'))
        .collect();
    let end = start + commented.iter().map(|l| l.len() + 1).sum::<usize>();
    let block: String = commented
        .iter()
        .map(|l| format!("{}\n", l.strip_prefix("# ").unwrap_or("")))
        .collect();
    let config = format!("{}{block}{}", &text[..start], &text[end..]);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config).expect("write");
    std::fs::create_dir(dir.path().join("tokens")).expect("mkdir");
    Config::load(&path).unwrap_or_else(|e| panic!("{e}\n{block}"))
}

/// The commented `otlp:` block, uncommented, pushes to the collector example's receiver and
/// turns traces on at 100 %.
#[test]
fn deploy_example_otlp_section_loads_when_uncommented() {
    let otlp = load_uncommented("# otlp:").otlp.expect("otlp section");
    assert_eq!(otlp.endpoint.as_deref(), Some("http://127.0.0.1:4318"));
    assert_eq!(otlp.traces.map(|t| t.sample_ppm), Some(1_000_000));
}

/// The commented `assertion:` block, uncommented as an operator would, is a valid section with
/// the keys it documents.
#[test]
fn deploy_example_assertion_section_loads_when_uncommented() {
    let config = load_uncommented("# assertion:");
    let assertion = config.assertion.expect("assertion section");
    assert_eq!(
        assertion.config.issuer(),
        "https://iam-join.example.internal"
    );
    assert_eq!(assertion.config.audiences(), ["teleport-web"]);
    assert_eq!(assertion.config.lifetime().as_secs(), 300);
    match assertion.keys {
        iam_join_proxy::config::AssertionKeys::Files(files) => {
            assert_eq!(files.len(), 2);
            assert!(files[0].0.ends_with("assertion-2026-12.pem"));
        }
        other => panic!("{other:?}"),
    }
}

/// The systemd and Kubernetes examples write the audit trail to a file in a directory they
/// make writable (systemd's LogsDirectory, a Kubernetes volume).
#[test]
fn systemd_and_kubernetes_examples_keep_an_audit_file_where_they_can_write() {
    const DIR: &str = "/var/log/iam-join-proxy";
    let expected = iam_join_proxy::audit::AuditDestination::File(format!("{DIR}/audit.log").into());
    let deploy = Config::load(&workspace().join("deploy/config.yaml")).expect("valid");
    assert_eq!(deploy.audit.expect("audit").destination, expected);
    let unit = read("deploy/systemd/iam-join-proxy.service");
    assert!(
        unit.lines().any(|l| l == "LogsDirectory=iam-join-proxy"),
        "{unit}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, configmap_data("config.yaml")).expect("write");
    let k8s = Config::load(&path).expect("the ConfigMap's config is valid");
    assert_eq!(k8s.audit.expect("audit").destination, expected);
    let deployment = read("deploy/kubernetes/deployment.yaml");
    assert!(
        deployment.contains(&format!("mountPath: {DIR}}}")),
        "{deployment}"
    );
    let image = read("deploy/Containerfile");
    assert!(image.contains(&format!("/out/log {DIR}")), "{image}");
}

/// The collector example is valid YAML, receives OTLP/HTTP on loopback where the proxy's
/// example `otlp:` points, and tails the audit file the example config writes.
#[test]
fn otel_collector_example_receives_the_proxys_metrics_spans_and_audit_file() {
    let text = read("deploy/otel-collector/collector.yaml");
    let doc: serde_norway::Value = serde_norway::from_str(&text).expect("collector YAML");
    let endpoint = &doc["receivers"]["otlp"]["protocols"]["http"]["endpoint"];
    assert_eq!(endpoint.as_str(), Some("127.0.0.1:4318"));
    for pipeline in ["metrics", "traces"] {
        let receivers = &doc["service"]["pipelines"][pipeline]["receivers"];
        assert_eq!(receivers[0].as_str(), Some("otlp"), "{pipeline} pipeline");
    }
    let include = &doc["receivers"]["filelog/iam-join-audit"]["include"][0];
    assert_eq!(include.as_str(), Some("/var/log/iam-join-proxy/audit.log"));
    let config = read("deploy/config.yaml");
    assert!(
        config.contains("#   endpoint: http://127.0.0.1:4318"),
        "deploy/config.yaml otlp example"
    );
}
