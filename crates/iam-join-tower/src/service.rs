//! [`IamJoinService`]: verification in front of an inner service, and the layer's endpoints.

use std::net::{IpAddr, SocketAddr};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{Either, Full};
use iam_join_core::challenge::{CHALLENGE_HEADER, issue_challenge};
use iam_join_core::token::{IAM_JOIN_V1_PREFIX, K8S_AWS_V1_PREFIX, token_from_authorization};
use iam_join_core::{ErrorCode, VerifiedIdentity, VerifyError};
use time::OffsetDateTime;
use tower_service::Service;

use crate::error::Denial;
use crate::future::ResponseFuture;
use crate::layer::IamJoinLayer;
use crate::ratelimit::client_ip;
use crate::verifier::VerifyRequest;

/// The proof carrier header besides `Authorization: Bearer`.
pub const PROOF_HEADER: &str = "x-iam-join-proof";
/// The header naming the join token.
pub const TOKEN_HEADER: &str = "x-iam-join-token";
/// Every header with this prefix is removed from incoming requests.
pub const IDENTITY_HEADER_PREFIX: &str = "x-iam-join-";

/// The response body: the inner service's, or the layer's own (denials, endpoints).
pub type IamJoinBody<B> = Either<B, Full<Bytes>>;

/// The client's address, inserted as a request extension by the server (a plain
/// [`SocketAddr`] extension is read too; axum's `ConnectInfo` needs a one-line `map_request`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) prefix: String,
    pub(crate) default_token: Option<String>,
    pub(crate) challenge_paths: Vec<String>,
    pub(crate) public_paths: Vec<String>,
    pub(crate) trusted_proxies: Vec<ipnet::IpNet>,
    pub(crate) identity_headers: bool,
}

fn path_matches(patterns: &[String], path: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => p == path,
    })
}

fn original_uri_needs_challenge(headers: &HeaderMap, patterns: &[String]) -> bool {
    if patterns.is_empty() {
        return false;
    }
    ["x-original-uri", "x-forwarded-uri"].iter().any(|name| {
        headers.get_all(*name).iter().any(|v| {
            let Ok(uri) = v.to_str() else { return true };
            let path = uri.split(['?', '#']).next().unwrap_or("");
            match normalize_path(path) {
                Some(n) => {
                    challenge_path_matches(patterns, &n) || challenge_path_matches(patterns, path)
                }
                None => true,
            }
        })
    })
}

fn loose(p: &str) -> String {
    let p = p.to_ascii_lowercase();
    match p.trim_end_matches('/') {
        "" => "/".to_owned(),
        t => t.to_owned(),
    }
}

fn challenge_path_matches(patterns: &[String], path: &str) -> bool {
    let path = loose(path);
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => path.starts_with(&prefix.to_ascii_lowercase()),
        None => loose(p) == path,
    })
}

/// A join token name, as the policy accepts them: 1 to 256 characters of letters, digits,
/// `.`, `_`, `-`, `:`, `@`.
pub(crate) fn is_token_name(s: &str) -> bool {
    (1..=256).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':' | b'@'))
}

/// Verification in front of `S`. See the crate docs.
#[derive(Clone, Debug)]
pub struct IamJoinService<S> {
    inner: S,
    layer: IamJoinLayer,
}

impl<S> IamJoinService<S> {
    pub(crate) fn new(inner: S, layer: IamJoinLayer) -> Self {
        Self { inner, layer }
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
        let layer = self.layer.clone();
        ResponseFuture {
            inner: Box::pin(handle(layer, inner, req)),
        }
    }
}

enum Endpoint {
    Challenge,
    WhoAmI,
    Verify,
}

async fn handle<S, B, ResBody>(
    layer: IamJoinLayer,
    mut inner: S,
    mut req: Request<B>,
) -> Result<Response<IamJoinBody<ResBody>>, S::Error>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    let settings = &layer.settings;
    let path = req.uri().path();
    let endpoint = path
        .strip_prefix(settings.prefix.as_str())
        .and_then(|rest| match rest {
            "/challenge" => Some(Endpoint::Challenge),
            "/whoami" => Some(Endpoint::WhoAmI),
            "/verify" => Some(Endpoint::Verify),
            _ => None,
        });
    let normal = normalize_path(path);
    let public = endpoint.is_none()
        && normal.as_deref() == Some(path)
        && path_matches(&settings.public_paths, path);
    // Challenge paths match loosely (case, trailing slash) so an upstream that routes `/JOIN/`
    // to `/join` cannot be reached with a reusable proof.
    let require_challenge = match &normal {
        Some(n) => {
            challenge_path_matches(&settings.challenge_paths, n)
                || challenge_path_matches(&settings.challenge_paths, path)
        }
        None => !settings.challenge_paths.is_empty(),
    };
    // `/verify` serves nginx `auth_request` and Traefik `ForwardAuth`, which name the original
    // request in `X-Original-URI` / `X-Forwarded-Uri`. It can only add the challenge
    // requirement (a forged header cannot lower it below that of the `/verify` path itself).
    let require_challenge = require_challenge
        || (matches!(endpoint, Some(Endpoint::Verify))
            && original_uri_needs_challenge(req.headers(), &settings.challenge_paths));

    match endpoint {
        Some(Endpoint::Challenge) => {
            return Ok(own(if req.method() == Method::POST {
                issue(&layer)
            } else {
                method_not_allowed("POST")
            }));
        }
        Some(Endpoint::WhoAmI) if req.method() != Method::GET => {
            return Ok(own(method_not_allowed("GET")));
        }
        _ => {}
    }

    // Read the proof and token name before stripping every x-iam-join-* header.
    let proof = extract_proof(req.headers());
    let token = token_name(req.headers(), settings.default_token.as_deref());
    let peer = req
        .extensions()
        .get::<ClientAddr>()
        .map(|c| c.0.ip())
        .or_else(|| req.extensions().get::<SocketAddr>().map(SocketAddr::ip))
        .map(|ip| ip.to_canonical());
    let forwarded_for = joined(req.headers(), "x-forwarded-for");
    strip_identity_headers(req.headers_mut());

    if public {
        remove_proof_authorization(req.headers_mut());
        return inner.call(req).await.map(|r| r.map(Either::Left));
    }

    // IPv6 clients are keyed by /64: one host usually holds a whole /64.
    let client: Option<IpAddr> =
        client_ip(peer, forwarded_for.as_deref(), &settings.trusted_proxies).map(|ip| {
            match ip.to_canonical() {
                IpAddr::V6(v6) => IpAddr::V6(std::net::Ipv6Addr::from_bits(
                    v6.to_bits() & !((1u128 << 64) - 1),
                )),
                v4 => v4,
            }
        });
    let verified = match (proof, token) {
        (Err(d), _) | (_, Err(d)) => Err(layer.verifier.deny_early(d)),
        (Ok((proof, carrier)), Ok(token)) => {
            let result = layer
                .verifier
                .verify(VerifyRequest {
                    proof: &proof,
                    token: &token,
                    client,
                    require_challenge,
                })
                .await;
            if carrier == Carrier::Authorization {
                req.headers_mut().remove(header::AUTHORIZATION);
            }
            result
        }
    };
    let identity = match verified {
        Ok(id) => id,
        Err(denial) => return Ok(own(denial.to_response())),
    };

    match endpoint {
        Some(Endpoint::WhoAmI) => {
            let mut resp = json_response(StatusCode::OK, identity.to_json().to_string());
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(own(resp))
        }
        Some(Endpoint::Verify) => {
            let mut resp = Response::new(Full::new(Bytes::new()));
            set_identity_headers(resp.headers_mut(), &identity);
            Ok(own(resp))
        }
        _ => {
            req.headers_mut().remove(PROOF_HEADER);
            if settings.identity_headers {
                set_identity_headers(req.headers_mut(), &identity);
            }
            req.extensions_mut().insert(identity);
            inner.call(req).await.map(|r| r.map(Either::Left))
        }
    }
}

fn own<L>(resp: Response<Full<Bytes>>) -> Response<Either<L, Full<Bytes>>> {
    resp.map(Either::Right)
}

fn json_response(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn method_not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({"error": {"code": "method_not_allowed", "message": format!("use {allow}")}});
    let mut resp = json_response(StatusCode::METHOD_NOT_ALLOWED, body.to_string());
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}

fn issue(layer: &IamJoinLayer) -> Response<Full<Bytes>> {
    let rules = &layer.verifier.rules;
    let Some(key) = &rules.challenge_key else {
        let body = serde_json::json!({"error": {"code": "not_found", "message": "this verifier does not issue challenges"}});
        return json_response(StatusCode::NOT_FOUND, body.to_string());
    };
    let mut nonce = [0u8; 16];
    if getrandom::fill(&mut nonce).is_err() {
        return Denial::retry(
            ErrorCode::ReplayStoreUnavailable,
            "no randomness for a challenge",
            Duration::from_secs(1),
        )
        .to_response();
    }
    let challenge = issue_challenge(key, nonce, OffsetDateTime::now_utc());
    if let Some(m) = &layer.verifier.metrics {
        m.challenge("issued");
    }
    let body = serde_json::json!({
        "challenge": challenge,
        "header": CHALLENGE_HEADER,
        "expires_in_seconds": rules.challenge_ttl.as_secs(),
    });
    let mut resp = json_response(StatusCode::OK, body.to_string());
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Carrier {
    ProofHeader,
    Authorization,
}

fn malformed(msg: &'static str) -> Denial {
    VerifyError::new(ErrorCode::MalformedProof, msg).into()
}

/// `X-IAM-Join-Proof`, else `Authorization: Bearer` when it holds one of our token formats (an
/// upstream's own bearer tokens are left alone).
fn extract_proof(headers: &HeaderMap) -> Result<(String, Carrier), Denial> {
    let mut proofs = headers.get_all(PROOF_HEADER).iter();
    if let Some(v) = proofs.next() {
        if proofs.next().is_some() {
            return Err(malformed("send exactly one X-IAM-Join-Proof header"));
        }
        let v = v
            .to_str()
            .map_err(|_| malformed("X-IAM-Join-Proof is not ASCII"))?;
        let bearer_proof = headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(token_from_authorization)
            .any(|t| t.starts_with(IAM_JOIN_V1_PREFIX) || t.starts_with(K8S_AWS_V1_PREFIX));
        if bearer_proof {
            return Err(malformed("send exactly one proof"));
        }
        return Ok((v.trim().to_owned(), Carrier::ProofHeader));
    }
    let mut ours = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(token_from_authorization)
        .filter(|t| t.starts_with(IAM_JOIN_V1_PREFIX) || t.starts_with(K8S_AWS_V1_PREFIX));
    match (ours.next(), ours.next()) {
        (Some(t), None) => Ok((t.trim().to_owned(), Carrier::Authorization)),
        (Some(_), Some(_)) => Err(malformed("send exactly one proof")),
        (None, _) => Err(VerifyError::new(
            ErrorCode::MissingProof,
            "no proof: send Authorization: Bearer <iam-join-v1 token> or X-IAM-Join-Proof",
        )
        .into()),
    }
}

fn token_name(headers: &HeaderMap, default: Option<&str>) -> Result<String, Denial> {
    let mut values = headers.get_all(TOKEN_HEADER).iter();
    match (values.next(), values.next()) {
        (Some(_), Some(_)) => Err(VerifyError::new(
            ErrorCode::UnknownToken,
            "send at most one X-IAM-Join-Token header",
        )
        .into()),
        (Some(v), None) => match v.to_str() {
            Ok(name) if is_token_name(name.trim()) => Ok(name.trim().to_owned()),
            _ => Err(VerifyError::new(
                ErrorCode::UnknownToken,
                "X-IAM-Join-Token is not a valid token name",
            )
            .into()),
        },
        (None, _) => default.map(str::to_owned).ok_or_else(|| {
            VerifyError::new(
                ErrorCode::UnknownToken,
                "no join token named: send X-IAM-Join-Token",
            )
            .into()
        }),
    }
}

fn joined(headers: &HeaderMap, name: &str) -> Option<String> {
    let parts: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!parts.is_empty()).then(|| parts.join(","))
}

fn is_identity_header_name(name: &str) -> bool {
    // `_` too: CGI/WSGI/Rack-style upstreams map `x_iam_join_arn` and `x-iam-join-arn` alike.
    name.len() >= IDENTITY_HEADER_PREFIX.len()
        && name.as_bytes()[..IDENTITY_HEADER_PREFIX.len()]
            .iter()
            .zip(IDENTITY_HEADER_PREFIX.as_bytes())
            .all(|(a, b)| a.to_ascii_lowercase() == *b || (*a == b'_' && *b == b'-'))
}

/// Removes every incoming `x-iam-join-*` header (also spelt with `_`), and every mention of one
/// in `Connection` (a proxy would otherwise drop the verified headers as hop-by-hop): only this
/// layer may set them.
pub fn strip_identity_headers(headers: &mut HeaderMap) {
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|n| is_identity_header_name(n.as_str()))
        .cloned()
        .collect();
    for n in names {
        headers.remove(n);
    }
    let connection: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    if connection.iter().any(|t| is_identity_header_name(t)) {
        headers.remove(header::CONNECTION);
        let kept: Vec<String> = connection
            .into_iter()
            .filter(|t| !is_identity_header_name(t))
            .collect();
        if !kept.is_empty()
            && let Ok(v) = HeaderValue::from_str(&kept.join(", "))
        {
            headers.insert(header::CONNECTION, v);
        }
    }
}

/// Removes `Authorization` values that carry one of our proofs (public paths never forward one).
fn remove_proof_authorization(headers: &mut HeaderMap) {
    let values: Vec<HeaderValue> = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .cloned()
        .collect();
    let is_proof = |v: &HeaderValue| {
        v.to_str()
            .ok()
            .and_then(token_from_authorization)
            .is_some_and(|t| t.starts_with(IAM_JOIN_V1_PREFIX) || t.starts_with(K8S_AWS_V1_PREFIX))
    };
    if values.iter().any(is_proof) {
        headers.remove(header::AUTHORIZATION);
        for v in values.into_iter().filter(|v| !is_proof(v)) {
            headers.append(header::AUTHORIZATION, v);
        }
    }
}

/// Sets `x-iam-join-account`, `-arn`, `-user-id`, `-token`, `-roles`, `-region`.
pub fn set_identity_headers(headers: &mut HeaderMap, id: &VerifiedIdentity) {
    let roles = id.roles.join(",");
    for (name, value) in [
        ("x-iam-join-account", id.identity.account()),
        ("x-iam-join-arn", id.identity.arn()),
        ("x-iam-join-user-id", id.identity.user_id()),
        ("x-iam-join-token", id.token.as_str()),
        ("x-iam-join-roles", roles.as_str()),
        ("x-iam-join-region", id.identity.region()),
    ] {
        if let Ok(v) = HeaderValue::from_bytes(value.as_bytes()) {
            headers.insert(HeaderName::from_static(name), v);
        }
    }
}

/// The path as an upstream that normalises would see it: `%XX` of unreserved characters
/// decoded, `.` and `..` resolved, repeated slashes merged. `None` for paths with an encoded or
/// literal separator (`%2f`, `%5c`, `\`) whose meaning depends on the upstream: those are never
/// public and always need a challenge where challenge paths are configured.
fn normalize_path(path: &str) -> Option<String> {
    let lower = path.to_ascii_lowercase();
    // `;` starts path parameters that some servers strip before resolving `..` (`/a/..;/b`).
    if path.contains(['\\', ';'])
        || lower.contains("%2f")
        || lower.contains("%5c")
        || lower.contains("%3b")
    {
        return None;
    }
    let b = path.as_bytes();
    let mut decoded = String::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let h = std::str::from_utf8(&b[i + 1..i + 3]).ok()?;
            let v = u8::from_str_radix(h, 16).ok()?;
            if v.is_ascii_alphanumeric() || b"-._~".contains(&v) {
                decoded.push(v as char);
            } else {
                decoded.push_str(&path[i..i + 3]);
            }
            i += 3;
        } else {
            decoded.push(b[i] as char);
            i += 1;
        }
    }
    let mut segs: Vec<&str> = Vec::new();
    for s in decoded.split('/') {
        match s {
            "" | "." => {}
            ".." => {
                segs.pop();
            }
            s => segs.push(s),
        }
    }
    let mut out = format!("/{}", segs.join("/"));
    if decoded.ends_with('/')
        && out != "/"
        && !decoded.ends_with("/./")
        && !decoded.ends_with("/../")
    {
        out.push('/');
    }
    Some(out)
}
