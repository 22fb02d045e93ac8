//! Log volume under attack (issue 17, finding 6): repeated denials and upstream failures are
//! logged summarised, while the metrics keep the exact counts. The only test in its binary, as it
//! installs the global log subscriber.

use std::io::Write;
use std::sync::{Arc, Mutex};

use http::StatusCode;
use iam_join_e2e::{Stack, StackOptions, get_json};

const DENIED: usize = 300;
const UPSTREAM_FAILURES: usize = 100;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn lines_with(&self, needle: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().expect("lock"))
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }
}

fn sample(metrics: &str, name: &str, label: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn a_flood_of_denials_and_upstream_failures_writes_a_bounded_number_of_lines() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    // The upstream refuses connections: every admitted request is an upstream failure.
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    let stack = Stack::start_with(StackOptions {
        upstream_url: Some(refused),
        ..StackOptions::default()
    })
    .await;
    for _ in 0..DENIED {
        let (status, _) = get_json(&stack.url("/"), &[]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    for _ in 0..UPSTREAM_FAILURES {
        let (status, _) = get_json(&stack.url(iam_join_e2e::PUBLIC_PATH), &[]).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
    }

    let metrics = stack.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            "iam_join_requests_total",
            "code=\"missing_proof\""
        ),
        DENIED as f64,
        "the metric counts every denial"
    );
    // One line per kind per 10 s interval: a handful, whatever the request count.
    let denial_lines = capture.lines_with("missing_proof");
    let failure_lines = capture.lines_with("upstream request failed");
    assert!(
        (1..=10).contains(&denial_lines),
        "{denial_lines} denial lines"
    );
    assert!(
        (1..=10).contains(&failure_lines),
        "{failure_lines} upstream failure lines"
    );
}
