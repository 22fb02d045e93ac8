//! Running the proxy: policy hot reload, metrics, health, graceful shutdown.

use bytes::Bytes;
use http::StatusCode;
use iam_join_client::VerifierClient;
use iam_join_e2e::{
    PATIENCE, Stack, StackOptions, Who, audience_proof, bearer, eventually, get_json, request,
};

const ALICE_ONLY: &str = r#"kind: token
version: v2
metadata:
  name: iam-token
spec:
  roles: [Node]
  join_method: iam
  allow:
    - aws_account: "111111111111"
"#;

/// The value of the sample `name{labels}` in Prometheus text, 0 if absent.
fn sample(metrics: &str, name_and_labels: &str) -> f64 {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix(name_and_labels))
        .filter_map(|rest| rest.trim().parse::<f64>().ok())
        .sum()
}

async fn status_of(stack: &Stack, who: Who) -> StatusCode {
    let (k, v) = bearer(&audience_proof(who));
    get_json(&stack.url("/"), &[(k, &v)]).await.0
}

fn replace_file(path: &std::path::Path, text: &str) {
    // As editors and `kubectl` do: write aside, then rename over.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

#[tokio::test]
async fn token_file_edit_applies_without_restart_and_a_broken_edit_keeps_the_old_policy() {
    let stack = Stack::start_with(StackOptions {
        tokens: ALICE_ONLY.to_owned(),
        ..StackOptions::default()
    })
    .await;
    assert_eq!(status_of(&stack, Who::Alice).await, StatusCode::OK);
    assert_eq!(status_of(&stack, Who::Bob).await, StatusCode::FORBIDDEN);

    // Allow bob's account too.
    let with_bob = ALICE_ONLY.replace(
        "    - aws_account: \"111111111111\"\n",
        "    - aws_account: \"111111111111\"\n    - aws_account: \"222222222222\"\n",
    );
    replace_file(&stack.tokens, &with_bob);
    eventually("bob admitted after the edit", || async {
        status_of(&stack, Who::Bob).await == StatusCode::OK
    })
    .await;

    // A misspelt field must not load; everything stays as it was.
    let errors_before = sample(
        &stack.metrics().await,
        "iam_join_policy_reloads_total{result=\"error\"}",
    );
    std::fs::write(
        &stack.tokens,
        with_bob.replace(
            "aws_account: \"222222222222\"",
            "aws_acount: \"222222222222\"",
        ),
    )
    .expect("write broken");
    eventually("the broken edit is counted as a failed reload", || async {
        sample(
            &stack.metrics().await,
            "iam_join_policy_reloads_total{result=\"error\"}",
        ) > errors_before
    })
    .await;
    assert_eq!(status_of(&stack, Who::Bob).await, StatusCode::OK);
    assert_eq!(status_of(&stack, Who::Alice).await, StatusCode::OK);
    assert_eq!(
        status_of(&stack, Who::NodeRole).await,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn a_configmap_style_symlink_swap_is_picked_up() {
    // Kubernetes mounts a ConfigMap as `token.yaml -> ..data/token.yaml`, `..data -> ..v1`, and
    // updates it by pointing `..data` at a new directory.
    let stack = Stack::start_with(StackOptions {
        tokens: ALICE_ONLY.to_owned(),
        ..StackOptions::default()
    })
    .await;
    let dir = stack.tokens.parent().expect("tokens dir").to_owned();
    std::fs::create_dir(dir.join("..v2")).expect("mkdir");
    std::fs::write(
        dir.join("..v2/token.yaml"),
        ALICE_ONLY.replace("111111111111", "222222222222"),
    )
    .expect("write");
    std::os::unix::fs::symlink("..v2", dir.join("..data_tmp")).expect("symlink");
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).expect("swap");
    std::fs::remove_file(&stack.tokens).expect("rm");
    std::os::unix::fs::symlink("..data/token.yaml", &stack.tokens).expect("symlink");
    eventually("bob admitted after the swap", || async {
        status_of(&stack, Who::Bob).await == StatusCode::OK
    })
    .await;
    assert_eq!(status_of(&stack, Who::Alice).await, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn reload_on_demand_reports_the_outcome() {
    let stack = Stack::start().await;
    assert_eq!(
        stack
            .handle
            .reload_policy("test")
            .expect("from disk")
            .expect("loads"),
        1
    );
    std::fs::write(&stack.tokens, "kind: token\nversion: v3\n").expect("write");
    assert!(
        stack
            .handle
            .reload_policy("test")
            .expect("from disk")
            .is_err()
    );
}

#[tokio::test]
async fn metrics_expose_the_design_counters_with_their_exact_names_after_traffic() {
    let stack = Stack::start_with(StackOptions {
        extra_config: "rate_limits: {per_client: {per_second: 1, burst: 2}}\n".into(),
        ..StackOptions::default()
    })
    .await;
    // Admitted, then a cache hit with the same proof, then a denial.
    let node = audience_proof(Who::NodeRole);
    let (k, v) = bearer(&node);
    assert_eq!(
        get_json(&stack.url("/"), &[(k, &v)]).await.0,
        StatusCode::OK
    );
    assert_eq!(
        get_json(&stack.url("/"), &[(k, &v)]).await.0,
        StatusCode::OK
    );
    assert_eq!(
        status_of(&stack, Who::OtherAccount).await,
        StatusCode::FORBIDDEN
    );
    // A challenge.
    let verifier = VerifierClient::new(&stack.url("")).expect("client");
    verifier.fetch_challenge().await.expect("challenge");
    // Fresh proofs beyond the per-client burst are limited.
    let mut limited = false;
    for who in [Who::Alice, Who::Bob, Who::NodeRole2, Who::Alice, Who::Bob] {
        if status_of(&stack, who).await == StatusCode::TOO_MANY_REQUESTS {
            limited = true;
            break;
        }
    }
    assert!(limited, "no request was rate limited");
    stack
        .handle
        .reload_policy("test")
        .expect("from disk")
        .expect("loads");

    let text = stack.metrics().await;
    for name in [
        "iam_join_requests_total{",
        "iam_join_verify_duration_seconds_bucket{",
        "iam_join_verify_duration_seconds_count",
        "iam_join_sts_requests_total{",
        "iam_join_sts_duration_seconds_bucket{",
        "iam_join_cache_lookups_total{",
        "iam_join_cache_entries",
        "iam_join_rate_limited_total{",
        "iam_join_challenges_total{",
        "iam_join_policy_reloads_total{",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(name)),
            "{name} missing from:\n{text}"
        );
    }
    assert!(!text.contains("_total_total"), "doubled suffix:\n{text}");
    assert!(
        sample(
            &text,
            "iam_join_requests_total{binding=\"audience\",code=\"ok\",outcome=\"admitted\"}"
        ) >= 2.0,
        "{text}"
    );
    assert!(
        sample(
            &text,
            "iam_join_requests_total{binding=\"audience\",code=\"not_allowed\",outcome=\"denied\"}"
        ) >= 1.0,
        "{text}"
    );
    assert!(
        sample(&text, "iam_join_cache_lookups_total{result=\"hit\"}") >= 1.0,
        "{text}"
    );
    assert!(
        sample(&text, "iam_join_rate_limited_total{scope=\"client\"}") >= 1.0,
        "{text}"
    );
    assert!(
        sample(&text, "iam_join_challenges_total{result=\"issued\"}") >= 1.0,
        "{text}"
    );
    assert!(
        sample(&text, "iam_join_policy_reloads_total{result=\"ok\"}") >= 1.0,
        "{text}"
    );
    assert!(
        sample(
            &text,
            "iam_join_sts_requests_total{region=\"us-west-2\",status=\"200\"}"
        ) >= 1.0,
        "{text}"
    );
    // Labels never carry ARNs or proofs.
    assert!(!text.contains("arn:aws"), "{text}");
    assert!(!text.contains("iam-join-v1."), "{text}");
}

#[tokio::test]
async fn health_and_readiness_answer_on_the_admin_port() {
    let stack = Stack::start().await;
    let (status, _, body) = request(
        "GET",
        &format!("http://{}/healthz", stack.admin),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&body[..], b"ok\n");
    let (status, _, body) = request(
        "GET",
        &format!("http://{}/readyz", stack.admin),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&body).contains("1 iam join token"));
}

#[tokio::test]
async fn shutdown_drains_an_in_flight_request_before_returning() {
    let mut stack = Stack::start().await;
    let (k, v) = bearer(&audience_proof(Who::NodeRole));
    let url = stack.url("/gate");
    let in_flight =
        tokio::spawn(async move { request("GET", &url, &[(k, &v)], Bytes::new()).await });
    tokio::time::timeout(PATIENCE, stack.upstream.state.gate_entered.notified())
        .await
        .expect("request reached the upstream");

    stack.begin_shutdown();
    // The listener closes: new connections are refused.
    let proxy = stack.proxy;
    eventually("listener closed", || async move {
        tokio::net::TcpStream::connect(proxy).await.is_err()
    })
    .await;
    // Readiness turns off while draining.
    let admin = stack.admin;
    let (status, _, _) = request("GET", &format!("http://{admin}/readyz"), &[], Bytes::new()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    // The in-flight request holds the drain open: it cannot finish before the gate opens.
    assert!(!stack.served.is_finished());
    assert!(!in_flight.is_finished());

    stack.upstream.state.gate_release.notify_one();
    let (status, _, body) = tokio::time::timeout(PATIENCE, in_flight)
        .await
        .expect("request finished")
        .expect("task");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&body[..], b"gate passed");
    tokio::time::timeout(PATIENCE, &mut stack.served)
        .await
        .expect("serve returned after draining")
        .expect("task")
        .expect("clean shutdown");
}

#[tokio::test]
async fn shutdown_closes_what_is_still_running_at_the_drain_deadline() {
    let mut stack = Stack::start_with(StackOptions {
        drain_timeout: "200ms",
        ..StackOptions::default()
    })
    .await;
    let (k, v) = bearer(&audience_proof(Who::NodeRole));
    let url = stack.url("/gate");
    let in_flight = tokio::spawn(async move {
        let client: hyper_util::client::legacy::Client<_, http_body_util::Full<Bytes>> =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
        let req = http::Request::get(url)
            .header(k, v)
            .body(http_body_util::Full::new(Bytes::new()))
            .expect("req");
        client.request(req).await.map(|r| r.status())
    });
    tokio::time::timeout(PATIENCE, stack.upstream.state.gate_entered.notified())
        .await
        .expect("request reached the upstream");
    stack.begin_shutdown();
    tokio::time::timeout(PATIENCE, &mut stack.served)
        .await
        .expect("serve returned at the deadline")
        .expect("task")
        .expect("clean shutdown");
    let outcome = tokio::time::timeout(PATIENCE, in_flight)
        .await
        .expect("client saw the end")
        .expect("task");
    assert!(
        outcome.is_err(),
        "the gated request cannot have succeeded: {outcome:?}"
    );
}
