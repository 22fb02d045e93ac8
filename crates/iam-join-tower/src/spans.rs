//! OpenTelemetry traces of the layer, when a tracer is set (`IamJoinLayerBuilder::tracer`).
//!
//! One server span per request (`iam_join.request`), with children: `iam_join.verify` (the
//! pipeline), under it `iam_join.cache` (the STS answer cache) and `sts.GetCallerIdentity` (the
//! call to STS, a client span), `iam_join.challenge.redeem`, `aws.organizations.lookup`; and
//! `iam_join.upstream` around the inner service. The W3C `traceparent` of a trusted proxy is
//! the request span's parent; the upstream receives the `iam_join.upstream` span's own
//! `traceparent`, never the client's. Nothing is ever added to the request sent to STS: that
//! request is the client's, signed, and STS must see it byte for byte.
//!
//! Without a tracer every helper here is a branch on `None`: no span, no allocation.

use std::time::SystemTime;

use http::{HeaderMap, HeaderValue};
use opentelemetry::global::BoxedTracer;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceContextExt as _, TraceFlags, TraceId, TraceState,
    Tracer as _,
};
use opentelemetry::{Context, KeyValue};

/// The W3C Trace Context headers (<https://www.w3.org/TR/trace-context/>).
pub(crate) const TRACEPARENT: &str = "traceparent";
/// The vendor part of W3C Trace Context, passed on only with a trusted `traceparent`.
pub(crate) const TRACESTATE: &str = "tracestate";

/// The longest `tracestate` passed on (the W3C limit is 32 members of at most 256 bytes; a
/// longer value is not a trace state but an attempt to make every hop carry it).
const MAX_TRACESTATE: usize = 512;

/// Awaits `$fut` with `$span` as the current span, so spans started inside are its children.
/// Without a span it awaits `$fut` directly: no wrapper future, so the pipeline's large futures
/// are not copied once more per request when tracing is off (a wrapper cost an untraced cache
/// hit about 10 %, benches/RESULTS.md).
macro_rules! in_span {
    ($span:expr, $fut:expr) => {
        match $span.context() {
            Some(cx) => opentelemetry::context::FutureExt::with_context($fut, cx.clone()).await,
            None => $fut.await,
        }
    };
}
pub(crate) use in_span;

/// The tracer the layer's spans come from.
pub(crate) struct Tracing {
    tracer: BoxedTracer,
}

impl std::fmt::Debug for Tracing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tracing")
    }
}

impl Tracing {
    pub(crate) fn new(tracer: BoxedTracer) -> Self {
        Self { tracer }
    }

    /// The request's server span: a child of the trusted caller's `traceparent`, else the root
    /// of a new trace.
    pub(crate) fn request(&self, headers: &HeaderMap, trusted_caller: bool) -> SpanScope {
        let parent = if trusted_caller {
            remote_parent(headers).map_or_else(Context::new, |sc| {
                Context::new().with_remote_span_context(sc)
            })
        } else {
            Context::new()
        };
        self.start("iam_join.request", SpanKind::Server, &parent, None)
    }

    fn start(
        &self,
        name: &'static str,
        kind: SpanKind,
        parent: &Context,
        started: Option<SystemTime>,
    ) -> SpanScope {
        let mut builder = self.tracer.span_builder(name).with_kind(kind);
        if let Some(t) = started {
            builder = builder.with_start_time(t);
        }
        let span = builder.start_with_context(&self.tracer, parent);
        SpanScope(Some(parent.with_span(span)))
    }
}

/// A child of the current span (the one whose future is being polled), or nothing without a
/// tracer.
pub(crate) fn child(tracing: Option<&Tracing>, name: &'static str, kind: SpanKind) -> SpanScope {
    match tracing {
        Some(t) => t.start(name, kind, &Context::current(), None),
        None => SpanScope(None),
    }
}

/// A child of the current span that began at `started` (a step timed before it was known to be
/// worth a span, like a fast-path cache hit).
pub(crate) fn child_since(
    tracing: Option<&Tracing>,
    name: &'static str,
    started: Option<SystemTime>,
) -> SpanScope {
    match tracing {
        Some(t) => t.start(name, SpanKind::Internal, &Context::current(), started),
        None => SpanScope(None),
    }
}

/// The start time to give [`child_since`], taken only when tracing.
pub(crate) fn now_if(tracing: Option<&Tracing>) -> Option<SystemTime> {
    tracing.map(|_| SystemTime::now())
}

/// A started span, ended when dropped. Empty (every method does nothing) without a tracer.
#[must_use = "the span ends when this is dropped"]
pub(crate) struct SpanScope(Option<Context>);

impl SpanScope {
    /// No span (tracing off).
    pub(crate) fn none() -> Self {
        Self(None)
    }

    /// The context whose current span this is ([`in_span!`]), `None` without a tracer.
    pub(crate) fn context(&self) -> Option<&Context> {
        self.0.as_ref()
    }

    /// Sets attributes; `make` runs only when there is a span.
    pub(crate) fn set(&self, make: impl FnOnce() -> Vec<KeyValue>) {
        if let Some(cx) = &self.0 {
            cx.span().set_attributes(make());
        }
    }

    /// Marks the span failed, with a stable code (never a message that could quote input).
    pub(crate) fn fail(&self, code: &'static str) {
        if let Some(cx) = &self.0 {
            cx.span().set_status(Status::error(code));
        }
    }

    /// Records an HTTP answer's status; a 5xx marks the span failed.
    pub(crate) fn http_status(&self, status: http::StatusCode) {
        self.set(|| {
            vec![KeyValue::new(
                "http.response.status_code",
                i64::from(status.as_u16()),
            )]
        });
        if status.is_server_error() {
            self.fail("server_error");
        }
    }

    /// Replaces any `traceparent`/`tracestate` in `headers` with this span's, so the next hop
    /// continues this trace. Without a span the headers are left as they are.
    pub(crate) fn inject(&self, headers: &mut HeaderMap) {
        let Some(cx) = &self.0 else { return };
        headers.remove(TRACEPARENT);
        headers.remove(TRACESTATE);
        let span = cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return;
        }
        let parent = format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        );
        if let Ok(v) = HeaderValue::from_str(&parent) {
            headers.insert(TRACEPARENT, v);
        }
        let state = sc.trace_state().header();
        if !state.is_empty()
            && let Ok(v) = HeaderValue::from_str(&state)
        {
            headers.insert(TRACESTATE, v);
        }
    }
}

impl Drop for SpanScope {
    fn drop(&mut self) {
        if let Some(cx) = &self.0 {
            cx.span().end();
        }
    }
}

/// The caller's span from `traceparent` (and `tracestate`), if it is exactly one well-formed
/// W3C value. Anything else (two headers, upper-case hex, all-zero ids, version `ff`, a
/// version-00 value with a suffix) starts a new trace, as the W3C recommendation says.
pub(crate) fn remote_parent(headers: &HeaderMap) -> Option<SpanContext> {
    let mut values = headers.get_all(TRACEPARENT).iter();
    let value = values.next()?.to_str().ok()?;
    if values.next().is_some() {
        return None;
    }
    let (trace_id, span_id, flags) = parse_traceparent(value)?;
    let state = single(headers, TRACESTATE)
        .filter(|s| s.len() <= MAX_TRACESTATE)
        .and_then(|s| s.parse::<TraceState>().ok())
        .unwrap_or_default();
    Some(SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags & TraceFlags::SAMPLED.to_u8()),
        true,
        state,
    ))
}

fn single<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?.to_str().ok()?;
    values.next().is_none().then_some(first)
}

/// `version-traceid-parentid-flags`, lower-case hex: 2-32-16-2. Versions above 00 may append
/// `-...` fields, which are ignored; version `ff` is invalid.
pub(crate) fn parse_traceparent(value: &str) -> Option<(TraceId, SpanId, u8)> {
    let bytes = value.as_bytes();
    if !value.is_ascii() || bytes.len() < 55 || bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
        return None;
    }
    let version = &value[..2];
    let rest_ok = match bytes.len() {
        55 => true,
        _ => version != "00" && bytes[55] == b'-',
    };
    if !rest_ok || version == "ff" || !lower_hex(version) {
        return None;
    }
    let (trace, span, flags) = (&value[3..35], &value[36..52], &value[53..55]);
    if !(lower_hex(trace) && lower_hex(span) && lower_hex(flags)) {
        return None;
    }
    let trace_id = TraceId::from_hex(trace).ok()?;
    let span_id = SpanId::from_hex(span).ok()?;
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some((trace_id, span_id, flags))
}

fn lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_well_formed_traceparent_parses() {
        let (t, s, f) = parse_traceparent(GOOD).unwrap();
        assert_eq!(t.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(s.to_string(), "00f067aa0ba902b7");
        assert_eq!(f, 1);
        // A later version may carry more fields.
        assert!(parse_traceparent(&format!("01{}-extra", &GOOD[2..])).is_some());
    }

    /// Every malformed spelling starts a new trace instead of being trusted or half-read.
    #[test]
    fn malformed_traceparents_are_refused() {
        let cases = [
            "",
            "00",
            &GOOD[..54],
            &format!("{GOOD}0"),
            &format!("{GOOD}-extra"), // version 00 has exactly four fields
            &GOOD.to_uppercase(),
            &GOOD.replace("4bf9", "4BF9"),
            &format!("ff{}", &GOOD[2..]),
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-+0f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
            " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        ];
        for case in cases {
            assert!(parse_traceparent(case).is_none(), "accepted {case:?}");
        }
    }

    #[test]
    fn two_traceparent_headers_are_no_parent() {
        let mut h = HeaderMap::new();
        h.append(TRACEPARENT, HeaderValue::from_static(GOOD));
        assert!(remote_parent(&h).is_some());
        h.append(TRACEPARENT, HeaderValue::from_static(GOOD));
        assert!(remote_parent(&h).is_none());
    }

    #[test]
    fn tracestate_is_kept_only_when_valid_and_short() {
        let mut h = HeaderMap::new();
        h.insert(TRACEPARENT, HeaderValue::from_static(GOOD));
        h.insert(TRACESTATE, HeaderValue::from_static("vendor=abc"));
        assert_eq!(
            remote_parent(&h).unwrap().trace_state().header(),
            "vendor=abc"
        );
        let long = format!("vendor={}", "a".repeat(MAX_TRACESTATE));
        h.insert(TRACESTATE, HeaderValue::from_str(&long).unwrap());
        assert_eq!(remote_parent(&h).unwrap().trace_state().header(), "");
    }

    proptest::proptest! {
        /// Any string: no panic, and whatever parses prints back to exactly the input's first
        /// 55 bytes (nothing is half-read).
        #[test]
        fn any_traceparent_parses_or_is_refused(s in "\\PC{0,80}") {
            if let Some((t, sp, f)) = parse_traceparent(&s) {
                let printed = format!("{}-{t}-{sp}-{f:02x}", &s[..2]);
                proptest::prop_assert_eq!(printed.as_str(), &s[..55]);
            }
        }

        #[test]
        fn near_misses_of_a_good_value(i in 0usize..55, c in proptest::char::range('!', '~')) {
            let mut s: Vec<char> = GOOD.chars().collect();
            s[i] = c;
            let s: String = s.into_iter().collect();
            if let Some((t, sp, f)) = parse_traceparent(&s) {
                let printed = format!("{}-{t}-{sp}-{f:02x}", &s[..2]);
                proptest::prop_assert_eq!(printed, s);
            }
        }
    }
}
