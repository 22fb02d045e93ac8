//! Spans of the layer (`IamJoinLayerBuilder::tracer`): one trace per request with the pipeline's
//! steps as children, a trusted caller's `traceparent` continued and an untrusted one replaced,
//! the inner service given the upstream span's `traceparent`, and nothing added to what STS
//! receives. Spans are read back from the SDK's in-memory exporter; STS is the emulator.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::time::SystemTime;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use iam_join_client::{Binding, ProofBuilder, SigningForm, sts_endpoint};
use iam_join_core::policy::TokenPolicy;
use iam_join_tower::{ClientAddr, IamJoinLayer, RateLimits};
use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use sts_emulator::{Emulator, EmulatorHandle, default_identities};
use tower::{Layer, ServiceExt, service_fn};

const AUDIENCE: &str = "teleport.example.com";
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

struct Traced {
    _emulator: EmulatorHandle,
    emulator_headers: Box<dyn Fn() -> std::collections::BTreeSet<String>>,
    layer: IamJoinLayer,
    spans: InMemorySpanExporter,
    _provider: SdkTracerProvider,
}

async fn traced(trusted: &[&str]) -> Traced {
    let emulator = Emulator::start().await.unwrap();
    let spans = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(spans.clone())
        .build();
    let policy = TokenPolicy::from_yaml_str(
        include_str!("../../iam-join-core/tests/fixtures/token.yaml"),
        "seed",
    )
    .unwrap();
    let layer = IamJoinLayer::builder()
        .audience(AUDIENCE)
        .default_token("iam-token")
        .policy(policy)
        .sts_override_all(emulator.url())
        .rate_limits(RateLimits::none())
        .trusted_proxies(trusted.iter().map(|n| n.parse().unwrap()))
        .tracer(provider.tracer("test"))
        .build()
        .unwrap();
    let handle = emulator.clone();
    Traced {
        _emulator: emulator,
        emulator_headers: Box::new(move || handle.header_names_seen()),
        layer,
        spans,
        _provider: provider,
    }
}

fn proof(identity: usize) -> String {
    ProofBuilder::new(
        sts_endpoint("us-west-2", false).unwrap(),
        Binding::Audience(AUDIENCE.into()),
    )
    .form(SigningForm::Post)
    .time(SystemTime::now())
    .build(&default_identities()[identity].credentials())
    .unwrap()
}

/// Sends through the layer from `peer`; the status and the inner service's view of the
/// trace headers (`None` when the inner service was not reached).
async fn send(
    layer: &IamJoinLayer,
    peer: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, Option<Vec<(String, String)>>) {
    let inner = service_fn(|req: Request<Full<Bytes>>| async move {
        let seen: Vec<String> = req
            .headers()
            .iter()
            .filter(|(n, _)| n.as_str().starts_with("trace"))
            .map(|(n, v)| format!("{}={}", n, v.to_str().unwrap_or("")))
            .collect();
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(seen.join("\n")))))
    });
    let mut req = Request::builder()
        .uri("/app")
        .extension(ClientAddr(peer.parse().unwrap()));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = layer
        .layer(inner)
        .oneshot(req.body(Full::default()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let seen = (status == StatusCode::OK).then(|| {
        std::str::from_utf8(&body)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect()
    });
    (status, seen)
}

fn finished(t: &Traced) -> Vec<SpanData> {
    let spans = t.spans.get_finished_spans().unwrap();
    t.spans.reset();
    spans
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    let found: Vec<&SpanData> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "one {name} span: {:#?}", names(spans));
    found[0]
}

fn names(spans: &[SpanData]) -> Vec<&str> {
    spans.iter().map(|s| s.name.as_ref()).collect()
}

fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

fn is_child(child: &SpanData, parent: &SpanData) {
    assert_eq!(
        child.parent_span_id,
        parent.span_context.span_id(),
        "{} under {}",
        child.name,
        parent.name
    );
    assert_eq!(
        child.span_context.trace_id(),
        parent.span_context.trace_id()
    );
}

fn traceparent_of(span: &SpanData) -> String {
    format!(
        "00-{}-{}-01",
        span.span_context.trace_id(),
        span.span_context.span_id()
    )
}

#[tokio::test]
async fn a_verified_request_is_one_trace_with_each_step_as_a_child() {
    let t = traced(&[]).await;
    let p = proof(0);
    let auth = format!("Bearer {p}");
    // An untrusted client's trace context is neither continued nor passed on.
    let forged = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let (status, seen) = send(
        &t.layer,
        "203.0.113.9:40000",
        &[
            ("authorization", &auth),
            ("traceparent", &forged),
            ("tracestate", "evil=1"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let spans = finished(&t);
    let request = named(&spans, "iam_join.request");
    let verify = named(&spans, "iam_join.verify");
    let cache = named(&spans, "iam_join.cache");
    let sts = named(&spans, "sts.GetCallerIdentity");
    let upstream = named(&spans, "iam_join.upstream");
    assert_eq!(spans.len(), 5, "{:?}", names(&spans));

    assert_eq!(request.span_kind, SpanKind::Server);
    assert_eq!(request.parent_span_id, SpanId::INVALID, "a new trace");
    assert_ne!(
        request.span_context.trace_id(),
        TraceId::from_hex(CALLER_TRACE).unwrap()
    );
    is_child(verify, request);
    is_child(cache, verify);
    is_child(sts, cache);
    is_child(upstream, request);
    assert_eq!(sts.span_kind, SpanKind::Client);
    assert_eq!(upstream.span_kind, SpanKind::Client);

    assert_eq!(attr(cache, "iam_join.cache.result").as_deref(), Some("miss"));
    assert_eq!(attr(verify, "iam_join.outcome").as_deref(), Some("admitted"));
    assert_eq!(attr(verify, "aws.account.id").as_deref(), Some("111111111111"));
    assert_eq!(attr(verify, "iam_join.source").as_deref(), Some("sts"));
    assert_eq!(attr(sts, "rpc.method").as_deref(), Some("GetCallerIdentity"));
    assert_eq!(attr(sts, "cloud.region").as_deref(), Some("us-west-2"));
    assert_eq!(
        attr(request, "http.response.status_code").as_deref(),
        Some("200")
    );

    // The inner service got exactly the upstream span's context, not the client's.
    assert_eq!(
        seen.unwrap(),
        vec![("traceparent".to_owned(), traceparent_of(upstream))]
    );
    // STS got the request as signed: no trace context added.
    let at_sts = (t.emulator_headers)();
    assert!(!at_sts.contains("traceparent"), "{at_sts:?}");
    assert!(!at_sts.contains("tracestate"), "{at_sts:?}");

    // No span holds the proof or any part of its signature.
    let signature = p.rsplit_once("Signature").map_or(&p[..], |(_, s)| s);
    for span in &spans {
        for kv in &span.attributes {
            let v = kv.value.to_string();
            let leaked = v.contains(&signature[..signature.len().min(40)])
                || (v.len() >= 20 && p.contains(&v));
            assert!(!leaked, "{}: {} = {v}", span.name, kv.key);
        }
    }

    // The same proof again: answered from the cache, no STS span.
    let (status, _) = send(&t.layer, "203.0.113.9:40000", &[("authorization", &auth)]).await;
    assert_eq!(status, StatusCode::OK);
    let spans = finished(&t);
    assert!(
        !names(&spans).contains(&"sts.GetCallerIdentity"),
        "{:?}",
        names(&spans)
    );
    let cache = named(&spans, "iam_join.cache");
    is_child(cache, named(&spans, "iam_join.verify"));
    assert_eq!(attr(cache, "iam_join.cache.result").as_deref(), Some("hit"));
    assert_eq!(
        attr(named(&spans, "iam_join.verify"), "iam_join.source").as_deref(),
        Some("cache")
    );
}

#[tokio::test]
async fn a_trusted_callers_trace_is_continued_and_passed_on() {
    let t = traced(&["127.0.0.0/8"]).await;
    let auth = format!("Bearer {}", proof(0));
    let caller = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let (status, seen) = send(
        &t.layer,
        "127.0.0.1:40000",
        &[
            ("authorization", &auth),
            ("traceparent", &caller),
            ("tracestate", "vendor=abc"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let spans = finished(&t);
    let request = named(&spans, "iam_join.request");
    assert_eq!(
        request.span_context.trace_id(),
        TraceId::from_hex(CALLER_TRACE).unwrap()
    );
    assert_eq!(request.parent_span_id, SpanId::from_hex(CALLER_SPAN).unwrap());
    assert!(request.parent_span_is_remote);
    let upstream = named(&spans, "iam_join.upstream");
    is_child(upstream, request);
    let seen = seen.unwrap();
    assert!(
        seen.contains(&("traceparent".to_owned(), traceparent_of(upstream))),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("tracestate".to_owned(), "vendor=abc".to_owned())),
        "{seen:?}"
    );
    // Malformed or doubled context from the trusted caller starts a new trace.
    for bad in [
        &caller.to_uppercase()[..],
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ] {
        let (status, _) = send(
            &t.layer,
            "127.0.0.1:40000",
            &[("authorization", &auth), ("traceparent", bad)],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let spans = finished(&t);
        let request = named(&spans, "iam_join.request");
        assert_eq!(request.parent_span_id, SpanId::INVALID, "{bad}");
        assert_ne!(
            request.span_context.trace_id(),
            TraceId::from_hex(CALLER_TRACE).unwrap()
        );
    }
}

#[tokio::test]
async fn a_denial_is_a_failed_verify_span_and_nothing_reaches_the_inner_service() {
    let t = traced(&[]).await;
    // Signed for another audience: refused by the local checks, before STS.
    let other = ProofBuilder::new(
        sts_endpoint("us-west-2", false).unwrap(),
        Binding::Audience("other.example.com".into()),
    )
    .form(SigningForm::Post)
    .time(SystemTime::now())
    .build(&default_identities()[0].credentials())
    .unwrap();
    let auth = format!("Bearer {other}");
    let (status, seen) = send(&t.layer, "203.0.113.9:40000", &[("authorization", &auth)]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(seen.is_none());
    let spans = finished(&t);
    assert_eq!(
        names(&spans).len(),
        2,
        "request and verify only: {:?}",
        names(&spans)
    );
    let verify = named(&spans, "iam_join.verify");
    let code = attr(verify, "iam_join.error").unwrap();
    assert_eq!(verify.status, Status::error(code.clone()));
    assert_eq!(attr(verify, "iam_join.outcome").as_deref(), Some("denied"));
    assert_eq!(
        attr(named(&spans, "iam_join.request"), "http.response.status_code").as_deref(),
        Some("401")
    );
}

#[tokio::test]
async fn without_a_tracer_trace_headers_pass_through_untouched() {
    let emulator = Emulator::start().await.unwrap();
    let policy = TokenPolicy::from_yaml_str(
        include_str!("../../iam-join-core/tests/fixtures/token.yaml"),
        "seed",
    )
    .unwrap();
    let layer = IamJoinLayer::builder()
        .audience(AUDIENCE)
        .default_token("iam-token")
        .policy(policy)
        .sts_override_all(emulator.url())
        .rate_limits(RateLimits::none())
        .build()
        .unwrap();
    let auth = format!("Bearer {}", proof(0));
    let caller = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let (status, seen) = send(
        &layer,
        "203.0.113.9:40000",
        &[("authorization", &auth), ("traceparent", &caller)],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(seen.unwrap(), vec![("traceparent".to_owned(), caller)]);
}
