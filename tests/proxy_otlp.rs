//! OTLP push of the metrics (`otlp:`) and of the audit events (`audit: {otlp: true}`): a
//! receiver in the test, decoding what the proxy sends with the reference protobuf types
//! (opentelemetry-proto), gets the DESIGN §9 instruments with their data points and the service
//! name, the audit records with their documented fields, and nothing secret.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use http::StatusCode;
use iam_join_e2e::{Stack, StackOptions, Who, audience_proof, bearer, eventually, get_json};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use prost::Message as _;

#[derive(Clone, Default)]
struct Received {
    bodies: Arc<Mutex<Vec<Bytes>>>,
    logs: Arc<Mutex<Vec<Bytes>>>,
    traces: Arc<Mutex<Vec<Bytes>>>,
}

async fn receive(
    State(r): State<Received>,
    body: Bytes,
) -> (StatusCode, [(&'static str, &'static str); 1]) {
    r.bodies.lock().unwrap().push(body);
    (StatusCode::OK, [("content-type", "application/x-protobuf")])
}

async fn receive_logs(
    State(r): State<Received>,
    body: Bytes,
) -> (StatusCode, [(&'static str, &'static str); 1]) {
    r.logs.lock().unwrap().push(body);
    (StatusCode::OK, [("content-type", "application/x-protobuf")])
}

async fn receive_traces(
    State(r): State<Received>,
    body: Bytes,
) -> (StatusCode, [(&'static str, &'static str); 1]) {
    r.traces.lock().unwrap().push(body);
    (StatusCode::OK, [("content-type", "application/x-protobuf")])
}

async fn start_receiver() -> (String, Received) {
    let received = Received::default();
    let app = Router::new()
        .route("/v1/metrics", post(receive))
        .route("/v1/logs", post(receive_logs))
        .route("/v1/traces", post(receive_traces))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), received)
}

/// The value of the counter data point of `name` whose attribute `key` is `value` (0 if none),
/// in the latest export that has it.
fn counter(requests: &[ExportMetricsServiceRequest], name: &str, key: &str, value: &str) -> f64 {
    let mut latest = 0.0;
    for request in requests {
        for metric in request
            .resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
            .filter(|m| m.name == name)
        {
            if let Some(Data::Sum(sum)) = &metric.data {
                for point in &sum.data_points {
                    let matches = point.attributes.iter().any(|a| {
                        a.key == key
                            && matches!(a.value.as_ref().and_then(|v| v.value.as_ref()),
                                Some(AnyValue::StringValue(s)) if s == value)
                    });
                    if matches {
                        latest = match point.value {
                            Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(i)) => i as f64,
                            Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsDouble(d)) => d,
                            None => latest,
                        };
                    }
                }
            }
        }
    }
    latest
}

fn decoded(received: &Received) -> Vec<ExportMetricsServiceRequest> {
    received
        .bodies
        .lock()
        .unwrap()
        .iter()
        .map(|b| ExportMetricsServiceRequest::decode(b.as_ref()).expect("OTLP protobuf"))
        .collect()
}

#[tokio::test]
async fn metrics_are_pushed_over_otlp_with_their_data_points_and_no_secret() {
    let (endpoint, received) = start_receiver().await;
    let stack = Stack::start_with(StackOptions {
        extra_config: format!("otlp: {{endpoint: \"{endpoint}\", interval: 200ms}}\n"),
        ..StackOptions::default()
    })
    .await;
    let proof = audience_proof(Who::NodeRole);
    let (k, v) = bearer(&proof);
    for _ in 0..3 {
        assert_eq!(
            get_json(&stack.url("/webapi/x"), &[(k, &v)]).await.0,
            StatusCode::OK
        );
    }
    assert_eq!(
        get_json(&stack.url("/webapi/x"), &[]).await.0,
        StatusCode::UNAUTHORIZED
    );

    eventually(
        "an OTLP export with the three admissions and the denial",
        || async {
            let all = decoded(&received);
            counter(&all, "iam_join_requests_total", "outcome", "admitted") >= 3.0
                && counter(&all, "iam_join_requests_total", "code", "missing_proof") >= 1.0
        },
    )
    .await;
    let all = decoded(&received);
    let names: std::collections::BTreeSet<&str> = all
        .iter()
        .flat_map(|r| &r.resource_metrics)
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| m.name.as_str())
        .collect();
    for expected in [
        "iam_join_requests_total",
        "iam_join_verify_duration_seconds",
        "iam_join_sts_requests_total",
        "iam_join_cache_lookups_total",
    ] {
        assert!(names.contains(expected), "{expected} not pushed: {names:?}");
    }
    let service = all[0].resource_metrics[0]
        .resource
        .as_ref()
        .unwrap()
        .attributes
        .iter()
        .find(|a| a.key == "service.name")
        .and_then(|a| a.value.as_ref()?.value.clone());
    assert_eq!(
        service,
        Some(AnyValue::StringValue("iam-join-proxy".to_owned()))
    );
    // What reached the collector holds no proof and no key.
    for body in received.bodies.lock().unwrap().iter() {
        let text = String::from_utf8_lossy(body);
        assert!(!text.contains(&proof[20..60]));
        for id in sts_emulator::default_identities() {
            assert!(!text.contains(&id.secret_access_key));
        }
    }
    // Prometheus stays.
    assert!(stack.metrics().await.contains("iam_join_requests_total"));
}

/// Every log record the receiver got, as (event name, attributes as strings).
fn log_records(received: &Received) -> Vec<(String, std::collections::BTreeMap<String, String>)> {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    let mut out = Vec::new();
    for body in received.logs.lock().unwrap().iter() {
        let request = ExportLogsServiceRequest::decode(body.as_ref()).expect("OTLP logs protobuf");
        for record in request
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .flat_map(|s| &s.log_records)
        {
            let attributes = record
                .attributes
                .iter()
                .map(|a| {
                    let value = match a.value.as_ref().and_then(|v| v.value.as_ref()) {
                        Some(AnyValue::StringValue(s)) => s.clone(),
                        Some(AnyValue::IntValue(i)) => i.to_string(),
                        Some(AnyValue::BoolValue(b)) => b.to_string(),
                        Some(AnyValue::DoubleValue(d)) => d.to_string(),
                        other => format!("{other:?}"),
                    };
                    (a.key.clone(), value)
                })
                .collect();
            out.push((record.event_name.clone(), attributes));
        }
    }
    out
}

#[tokio::test]
async fn audit_events_are_also_otlp_log_records_with_their_fields() {
    let (endpoint, received) = start_receiver().await;
    let stack = Stack::start_with(StackOptions {
        extra_config: format!(
            "otlp: {{endpoint: \"{endpoint}\", interval: 10m}}\n\
             audit: {{file: audit.log, otlp: true, replica: e2e-1}}\n"
        ),
        ..StackOptions::default()
    })
    .await;
    let proof = audience_proof(Who::NodeRole);
    let (k, v) = bearer(&proof);
    assert_eq!(
        get_json(&stack.url("/webapi/x"), &[(k, &v)]).await.0,
        StatusCode::OK
    );
    assert_eq!(
        get_json(&stack.url("/webapi/y"), &[]).await.0,
        StatusCode::UNAUTHORIZED
    );

    eventually("both decisions as OTLP log records", || async {
        log_records(&received).len() >= 2
    })
    .await;
    let records = log_records(&received);
    assert_eq!(records.len(), 2, "{records:#?}");
    let (name, admitted) = &records[0];
    assert_eq!(name, "instance.join");
    assert_eq!(admitted["code"], "TJ002I");
    assert_eq!(admitted["schema"], "iam-join.audit.v1");
    assert_eq!(admitted["identity.account"], "333333333333");
    assert_eq!(admitted["token_name"], "iam-token");
    assert_eq!(admitted["roles"], "Node");
    assert_eq!(admitted["replica"], "e2e-1");
    assert_eq!(admitted["path"], "/webapi/x");
    let (_, denied) = &records[1];
    assert_eq!(denied["code"], "TJ002E");
    assert_eq!(denied["error"], "missing_proof");
    for body in received.logs.lock().unwrap().iter() {
        let text = String::from_utf8_lossy(body);
        assert!(!text.contains(&proof[20..60]), "a proof in the OTLP logs");
    }
}

/// Every span the receiver got, with its resource's `service.name`.
fn received_spans(received: &Received) -> Vec<(String, opentelemetry_proto::tonic::trace::v1::Span)> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    let mut out = Vec::new();
    for body in received.traces.lock().unwrap().iter() {
        let request = ExportTraceServiceRequest::decode(body.as_ref()).expect("OTLP trace protobuf");
        for resource in &request.resource_spans {
            let service = resource
                .resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
                .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                    AnyValue::StringValue(s) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for span in resource.scope_spans.iter().flat_map(|s| &s.spans) {
                out.push((service.clone(), span.clone()));
            }
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn spans_are_pushed_over_otlp_as_one_trace_continued_from_a_trusted_caller() {
    use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
    let (endpoint, received) = start_receiver().await;
    let stack = Stack::start_with(StackOptions {
        extra_config: format!(
            "otlp: {{endpoint: \"{endpoint}\", interval: 10m, traces: {{sample_ratio: 1.0}}}}\n\
             trusted_proxies: [127.0.0.0/8]\n"
        ),
        ..StackOptions::default()
    })
    .await;
    let proof = audience_proof(Who::NodeRole);
    let (k, v) = bearer(&proof);
    let caller_trace = "0af7651916cd43dd8448eb211c80319c";
    let caller_span = "b7ad6b7169203331";
    let traceparent = format!("00-{caller_trace}-{caller_span}-01");
    let (status, echoed) = get_json(
        &stack.url("/webapi/traced"),
        &[(k, &v), ("traceparent", &traceparent)],
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    eventually("the request's five spans at the collector", || async {
        received_spans(&received).len() >= 5
    })
    .await;
    let spans = received_spans(&received);
    assert_eq!(spans.len(), 5, "{:#?}", spans.iter().map(|s| &s.1.name).collect::<Vec<_>>());
    let by_name = |name: &str| {
        &spans
            .iter()
            .find(|(_, s)| s.name == name)
            .unwrap_or_else(|| panic!("no {name} span"))
            .1
    };
    let request = by_name("iam_join.request");
    let verify = by_name("iam_join.verify");
    let cache = by_name("iam_join.cache");
    let sts = by_name("sts.GetCallerIdentity");
    let upstream = by_name("iam_join.upstream");
    for (service, span) in &spans {
        assert_eq!(service, "iam-join-proxy");
        assert_eq!(hex(&span.trace_id), caller_trace, "{} in the caller's trace", span.name);
    }
    assert_eq!(hex(&request.parent_span_id), caller_span);
    assert_eq!(request.kind, SpanKind::Server as i32);
    for (child, parent) in [(verify, request), (cache, verify), (sts, cache), (upstream, request)] {
        assert_eq!(child.parent_span_id, parent.span_id, "{} under {}", child.name, parent.name);
    }
    assert_eq!(sts.kind, SpanKind::Client as i32);
    assert_eq!(upstream.kind, SpanKind::Client as i32);

    // The upstream received the upstream span's traceparent; STS received none.
    let forwarded = &echoed["headers"]["traceparent"];
    assert_eq!(
        forwarded,
        &serde_json::json!([format!("00-{caller_trace}-{}-01", hex(&upstream.span_id))])
    );
    let at_sts = stack.sts.header_names_seen();
    assert!(!at_sts.contains("traceparent") && !at_sts.contains("tracestate"), "{at_sts:?}");

    // Nothing secret reached the collector.
    for body in received.traces.lock().unwrap().iter() {
        let text = String::from_utf8_lossy(body);
        assert!(!text.contains(&proof[20..60]), "a proof in the OTLP spans");
        for id in sts_emulator::default_identities() {
            assert!(!text.contains(&id.secret_access_key));
        }
    }
}
