//! [`IamJoinService`]: verification in front of an inner service, and the layer's endpoints.
//!
//! Arrows point one way: the layer builds a [`Shared`] that the service owns; the service
//! classifies the request ([`routes`]), takes the credentials out of it ([`carrier`]), answers
//! the layer's own endpoints ([`endpoints`]) and asks the [`Verifier`](crate::Verifier).

pub(crate) mod carrier;
pub(crate) mod endpoints;
pub(crate) mod routes;
pub(crate) mod shared;

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full};
use iam_join_core::VerifiedIdentity;
use opentelemetry::KeyValue;
use opentelemetry::trace::SpanKind;
use tower_service::Service;

use self::carrier::{Presented, strip_header_spellings, take_presented};
use self::endpoints::{Assertion, answer_before_verifying, answer_verified, set_identity_headers};
use self::routes::{Endpoint, Route, original_path};
use self::shared::Shared;
use crate::audit::AuditRequest;
use crate::error::Denial;
use crate::future::ResponseFuture;
use crate::ratelimit::{client_ip, is_trusted};
use crate::spans::{self, SpanScope};
use crate::verifier::VerifyRequest;

/// The response body: the inner service's, or the layer's own (denials, endpoints).
pub type IamJoinBody<B> = Either<B, Full<Bytes>>;

/// The client's address, inserted as a request extension by the server (a plain
/// [`SocketAddr`] extension is read too; axum's `ConnectInfo` needs a one-line `map_request`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// Verification in front of `S`. See the crate docs.
#[derive(Clone, Debug)]
pub struct IamJoinService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> IamJoinService<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, ResBody> Service<Request<B>> for IamJoinService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<IamJoinBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // Use the service that was driven to readiness; leave a fresh clone in its place.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let shared = Arc::clone(&self.shared);
        ResponseFuture {
            // Untraced, the request span's wrapper is left out of the future altogether.
            inner: match shared.tracing {
                Some(_) => Box::pin(handle(shared, inner, req)),
                None => Box::pin(route_and_answer(shared, inner, req)),
            },
        }
    }
}

/// [`route_and_answer`] in the request's span (only called when tracing).
async fn handle<S, B, ResBody>(
    shared: Arc<Shared>,
    inner: S,
    req: Request<B>,
) -> Result<Response<IamJoinBody<ResBody>>, S::Error>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    let span = match &shared.tracing {
        Some(t) => t.request(req.headers(), trusted_caller(&shared, &req)),
        None => SpanScope::none(),
    };
    span.set(|| {
        let mut attrs = vec![
            KeyValue::new("http.request.method", req.method().as_str().to_owned()),
            // The path only: a query can carry anything, including a proof.
            KeyValue::new("url.path", req.uri().path().to_owned()),
        ];
        if let Some(ip) = peer_ip(&req) {
            attrs.push(KeyValue::new("network.peer.address", ip.to_string()));
        }
        attrs
    });
    let response = spans::in_span!(span, route_and_answer(Arc::clone(&shared), inner, req));
    if let Ok(r) = &response {
        span.http_status(r.status());
    }
    response
}

/// Route → endpoint answers that need no proof → take the credentials out of the request →
/// public pass-through, or verify → the endpoint's answer or the inner service.
async fn route_and_answer<S, B, ResBody>(
    shared: Arc<Shared>,
    mut inner: S,
    mut req: Request<B>,
) -> Result<Response<IamJoinBody<ResBody>>, S::Error>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    let shared: &Shared = &shared;
    let route = shared.routes.route(req.uri().path(), req.headers());
    let audit = audit_request(shared, &route, &req);
    if let Some(answer) = route
        .endpoint
        .and_then(|e| answer_before_verifying(e, req.method(), shared))
    {
        if route.endpoint == Some(Endpoint::Challenge) && answer.status() == StatusCode::OK {
            shared.verifier.audit_challenge_issued(audit.as_ref());
        }
        return Ok(own(answer));
    }
    let client = client_key(shared, &req);
    let presented = take_presented(req.headers_mut(), shared.default_token.as_deref());
    if let Some(signer) = &shared.signer {
        strip_header_spellings(req.headers_mut(), signer.header_name());
    }
    if route.public {
        return forward(shared, &mut inner, req).await;
    }
    let asked = Asked {
        client,
        require_challenge: route.require_challenge,
        audit: audit.as_ref(),
    };
    let identity = match verify(shared, presented, asked).await {
        Ok(identity) => identity,
        Err(denial) => return Ok(own(denial.to_response())),
    };
    let assertion = match Assertion::for_identity(shared.signer.as_deref(), &identity) {
        Ok(assertion) => assertion,
        Err(denial) => return Ok(own(denial.to_response())),
    };
    if let (Some(_), Some(m)) = (&assertion, &shared.verifier.metrics) {
        m.assertion_issued();
    }
    match route.endpoint {
        Some(endpoint) => Ok(own(answer_verified(
            endpoint,
            &identity,
            assertion.as_ref(),
        ))),
        None => {
            hand_off(shared, &mut req, identity, assertion.as_ref());
            forward(shared, &mut inner, req).await
        }
    }
}

/// What the verifier is asked besides the proof.
struct Asked<'a> {
    /// The rate-limit key of the client.
    client: Option<IpAddr>,
    require_challenge: bool,
    audit: Option<&'a AuditRequest>,
}

async fn verify(
    shared: &Shared,
    presented: Presented,
    asked: Asked<'_>,
) -> Result<VerifiedIdentity, Denial> {
    let verifier = &shared.verifier;
    let (proof, token) = match (presented.proof, presented.token) {
        (Ok(proof), Ok(token)) => (proof, token),
        (Err(d), _) | (_, Err(d)) => return Err(verifier.deny_early_audited(d, asked.audit)),
    };
    verifier
        .verify(VerifyRequest {
            proof: &proof,
            token: &token,
            client: asked.client,
            require_challenge: asked.require_challenge,
            audit: asked.audit,
        })
        .await
}

/// The request as the audit event names it; `None` (and no allocation) without a sink.
fn audit_request<B>(shared: &Shared, route: &Route, req: &Request<B>) -> Option<AuditRequest> {
    if !shared.verifier.audits() {
        return None;
    }
    let original = (route.endpoint == Some(Endpoint::Verify))
        .then(|| original_path(req.headers()))
        .flatten();
    Some(AuditRequest {
        method: req.method().as_str().to_owned(),
        path: original.unwrap_or_else(|| req.uri().path()).to_owned(),
        client: client_addr(shared, req),
    })
}

/// The client's address: the peer, or the first untrusted hop of `X-Forwarded-For` when the
/// peer is a trusted proxy.
fn client_addr<B>(shared: &Shared, req: &Request<B>) -> Option<IpAddr> {
    let forwarded_for = joined(req, "x-forwarded-for");
    client_ip(peer_ip(req), forwarded_for.as_deref(), &shared.trusted_proxies)
}

/// The address of the connection's other end, as the server recorded it.
fn peer_ip<B>(req: &Request<B>) -> Option<IpAddr> {
    req.extensions()
        .get::<ClientAddr>()
        .map(|c| c.0.ip())
        .or_else(|| req.extensions().get::<SocketAddr>().map(SocketAddr::ip))
        .map(|ip| ip.to_canonical())
}

/// Whether the peer is a trusted proxy, whose trace context is continued.
fn trusted_caller<B>(shared: &Shared, req: &Request<B>) -> bool {
    peer_ip(req).is_some_and(|ip| is_trusted(ip, &shared.trusted_proxies))
}

/// Gives the inner service the identity: an extension, headers when configured, and the
/// signed assertion when a signer is set.
fn hand_off<B>(
    shared: &Shared,
    req: &mut Request<B>,
    identity: VerifiedIdentity,
    assertion: Option<&Assertion>,
) {
    if shared.identity_headers {
        set_identity_headers(req.headers_mut(), &identity);
    }
    if let Some(a) = assertion {
        a.insert_into(req.headers_mut());
    }
    req.extensions_mut().insert(identity);
}

/// The per-client rate-limit key: the peer, or the `X-Forwarded-For` client a trusted proxy
/// names. IPv6 clients are keyed by /64, since one host usually holds a whole /64.
fn client_key<B>(shared: &Shared, req: &Request<B>) -> Option<IpAddr> {
    let ip = client_addr(shared, req)?;
    Some(match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !(u128::MAX >> 64))),
        v4 => v4,
    })
}

fn joined<B>(req: &Request<B>, name: &str) -> Option<String> {
    let parts: Vec<&str> = req
        .headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!parts.is_empty()).then(|| parts.join(","))
}

/// The inner service's answer, in the upstream span when tracing (whose `traceparent` the
/// inner service receives in place of any the client sent).
async fn forward<S, B, ResBody>(
    shared: &Shared,
    inner: &mut S,
    mut req: Request<B>,
) -> Result<Response<IamJoinBody<ResBody>>, S::Error>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    let span = spans::child(
        shared.tracing.as_deref(),
        "iam_join.upstream",
        SpanKind::Client,
    );
    span.inject(req.headers_mut());
    let response = spans::in_span!(span, inner.call(req));
    if let Ok(r) = &response {
        span.http_status(r.status());
    }
    response.map(|r| r.map(Either::Left))
}

fn own<L>(resp: Response<Full<Bytes>>) -> Response<Either<L, Full<Bytes>>> {
    resp.map(Either::Right)
}
