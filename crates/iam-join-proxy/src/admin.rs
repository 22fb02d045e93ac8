//! The admin listener: `/metrics` (Prometheus text), `/healthz` (alive) and `/readyz` (ready for
//! traffic: the token policy is loaded and the proxy is not shutting down). STS reachability is
//! not part of readiness: a proxy whose STS is down still answers cached proofs and clear
//! `sts_unavailable` errors, which is better than being taken out of rotation. For the same
//! reason a shared Redis that is down is reported in the `/readyz` body but keeps the answer
//! 200: audience-bound proofs still work (challenge joins fail closed until it is back).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use iam_join_tower::PolicyHandle;

use crate::telemetry::Metrics;

/// What the admin endpoints read.
#[derive(Clone, Debug)]
pub struct AdminState {
    pub(crate) metrics: Metrics,
    pub(crate) policy: PolicyHandle,
    pub(crate) draining: Arc<AtomicBool>,
    /// Whether the shared Redis answered its last probe; `None` without Redis.
    pub(crate) redis_reachable: Option<Arc<AtomicBool>>,
}

impl AdminState {
    /// Answers one admin request.
    pub fn handle<B>(&self, req: &Request<B>) -> Response<Full<Bytes>> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
        }
        match req.uri().path() {
            "/metrics" => {
                let mut resp = text(StatusCode::OK, self.metrics.render());
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                resp
            }
            "/healthz" => text(StatusCode::OK, "ok\n"),
            "/readyz" => {
                if self.draining.load(Ordering::Relaxed) {
                    return text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n");
                }
                let tokens = self.policy.load().len();
                let redis = match &self.redis_reachable {
                    None => "",
                    Some(up) if up.load(Ordering::Relaxed) => "; redis reachable",
                    Some(_) => "; redis unreachable (challenge joins fail closed)",
                };
                text(
                    StatusCode::OK,
                    format!("ok: {tokens} iam join token(s) loaded{redis}\n"),
                )
            }
            _ => text(
                StatusCode::NOT_FOUND,
                "not found: try /metrics, /healthz or /readyz\n",
            ),
        }
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
