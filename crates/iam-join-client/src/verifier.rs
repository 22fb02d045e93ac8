//! Talking to an iam-join verifier: fetching challenges and asking `whoami`.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, USER_AGENT};
use http::{HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use iam_join_core::TokenName;
use iam_join_core::error::error_chain;
use iam_join_core::wire::{ChallengeBody, ErrorBody, WhoAmIBody};
use serde::Deserialize as _;

use crate::endpoint::truncate;
use crate::proof::CHALLENGE_HEADER;
use crate::{Binding, ClientError};

/// The verifier's default path prefix.
pub const DEFAULT_PREFIX: &str = "/v1/iam-join";
/// The header naming the join token to match (`X-IAM-Join-Token`).
pub use iam_join_core::wire::TOKEN_HEADER as TOKEN_NAME_HEADER;
/// Default limit for a whole request (connect, send, read the answer).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
/// Default limit for connecting (TCP and TLS handshake are both within [`DEFAULT_TIMEOUT`]).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Answers larger than this are refused.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// A challenge from `POST {prefix}/challenge` (DESIGN §3): the verifier's own wire type.
pub type Challenge = ChallengeBody;

impl Binding {
    /// The binding for a proof answering `challenge`.
    ///
    /// Fails if the verifier asked for a header other than `x-teleport-challenge`.
    pub fn for_challenge(challenge: &Challenge) -> Result<Self, ClientError> {
        if challenge.uses_challenge_header() {
            Ok(Self::Challenge(challenge.challenge.clone()))
        } else {
            Err(ClientError::invalid(
                "challenge",
                format!(
                    "the verifier asked for header {:?}; this client signs challenges into {CHALLENGE_HEADER}",
                    truncate(&challenge.header, 64)
                ),
            ))
        }
    }
}

/// The identity a verifier proved from a proof (`GET {prefix}/whoami`, DESIGN §3).
///
/// The well-known fields are picked out; [`WhoAmI::raw`] holds the whole answer.
#[derive(Clone, Debug, PartialEq)]
pub struct WhoAmI {
    /// AWS account ID.
    pub account: String,
    /// Caller ARN as STS reported it.
    pub arn: String,
    /// STS `UserId`.
    pub user_id: Option<String>,
    /// Region of the STS endpoint the proof was signed for.
    pub region: Option<String>,
    /// Join token that matched.
    pub token: Option<String>,
    /// Roles the token grants.
    pub roles: Vec<String>,
    /// The whole JSON answer.
    pub raw: serde_json::Value,
}

impl WhoAmI {
    /// Reads a `whoami` answer: the verifier's [`WhoAmIBody`]; fields this version does not know
    /// are kept in [`WhoAmI::raw`] only.
    pub fn from_json(value: serde_json::Value) -> Result<Self, String> {
        let body = WhoAmIBody::deserialize(&value).map_err(|e| e.to_string())?;
        Ok(Self {
            account: body.account,
            arn: body.arn,
            user_id: Some(body.user_id),
            region: Some(body.region),
            token: Some(body.token),
            roles: body.roles,
            raw: value,
        })
    }
}

/// An HTTP client for one verifier (an iam-join proxy, or any service with the layer).
///
/// TLS uses rustls with the ring provider and the Mozilla (webpki) roots; no process-wide crypto
/// provider is installed. Plain `http://` is allowed only for loopback hosts unless
/// [`VerifierClient::allow_plain_http`] says otherwise, because a proof sent in clear can be
/// replayed by whoever sees it until it expires.
///
/// ```no_run
/// # async fn f(creds: aws_credential_types::Credentials) -> Result<(), iam_join_client::ClientError> {
/// use iam_join_client::{Binding, ProofBuilder, VerifierClient, sts_endpoint};
///
/// let verifier = VerifierClient::new("https://teleport.example.com")?;
/// let challenge = verifier.fetch_challenge().await?;
/// let proof = ProofBuilder::new(sts_endpoint("us-west-2", false)?, Binding::for_challenge(&challenge)?)
///     .build(&creds)?;
/// let me = verifier.whoami(&proof, Some("iam-token")).await?;
/// println!("{} in {}", me.arn, me.account);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct VerifierClient {
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    base: String,
    prefix: String,
    timeout: Duration,
    plain_http_ok: bool,
}

impl std::fmt::Debug for VerifierClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifierClient")
            .field("base", &self.base)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl VerifierClient {
    /// A client for the verifier at `base_url` (`https://host[:port][/path]`), with the default
    /// prefix `/v1/iam-join` and timeouts.
    pub fn new(base_url: &str) -> Result<Self, ClientError> {
        let base = parse_base(base_url)?;
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_connect_timeout(Some(DEFAULT_CONNECT_TIMEOUT));
        tcp.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| ClientError::Http {
                url: base.url.clone(),
                reason: format!("TLS setup failed: {e}"),
            })?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(tcp);
        let http = Client::builder(TokioExecutor::new()).build(https);
        Ok(Self {
            http,
            plain_http_ok: base.loopback,
            base: base.url,
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Uses another path prefix (the verifier's `prefix` setting), e.g. `/iam-join`.
    pub fn with_prefix(mut self, prefix: &str) -> Result<Self, ClientError> {
        self.prefix = normalize_prefix(prefix)?;
        Ok(self)
    }

    /// Limits each request (connect, send, read the answer) to `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Allows `http://` to hosts that are not loopback. Only for networks where nobody else can
    /// read the traffic: the proof in the request is usable by anyone who sees it.
    pub fn allow_plain_http(mut self, allow: bool) -> Self {
        self.plain_http_ok = self.plain_http_ok || allow;
        self
    }

    /// The URL of an endpoint of the verifier, e.g. `endpoint_url("whoami")`.
    pub fn endpoint_url(&self, name: &str) -> String {
        format!("{}{}/{name}", self.base, self.prefix)
    }

    /// `POST {prefix}/challenge`: a fresh single-use challenge.
    pub async fn fetch_challenge(&self) -> Result<Challenge, ClientError> {
        let url = self.endpoint_url("challenge");
        let request = self
            .request(Method::POST, &url)?
            .header(CONTENT_LENGTH, "0")
            .body(Full::new(Bytes::new()))
            .map_err(|e| request_error(&url, &e))?;
        let body = self.send(&url, request).await?;
        let challenge: Challenge =
            serde_json::from_slice(&body).map_err(|e| ClientError::InvalidResponse {
                url: url.clone(),
                reason: format!("not a challenge object: {e}"),
            })?;
        tracing::debug!(
            header = %challenge.header,
            expires_in_seconds = challenge.expires_in_seconds,
            "got a challenge"
        );
        Ok(challenge)
    }

    /// `GET {prefix}/whoami` with the proof as `Authorization: Bearer <proof>` and, when given,
    /// `X-IAM-Join-Token: <token_name>`: the identity the verifier proved.
    ///
    /// A refusal becomes [`ClientError::Server`] with the verifier's code and message.
    pub async fn whoami(
        &self,
        proof_token: &str,
        token_name: Option<&str>,
    ) -> Result<WhoAmI, ClientError> {
        let url = self.endpoint_url("whoami");
        let mut bearer = HeaderValue::try_from(format!("Bearer {proof_token}")).map_err(|_| {
            ClientError::invalid(
                "proof token",
                "has characters not allowed in an HTTP header",
            )
        })?;
        bearer.set_sensitive(true);
        let mut builder = self
            .request(Method::GET, &url)?
            .header(AUTHORIZATION, bearer);
        if let Some(name) = token_name {
            let name: TokenName =
                name.parse()
                    .map_err(|e: iam_join_core::names::InvalidName| {
                        ClientError::invalid("token name", e.to_string())
                    })?;
            builder = builder.header(TOKEN_NAME_HEADER, name.as_str());
        }
        let request = builder
            .body(Full::new(Bytes::new()))
            .map_err(|e| request_error(&url, &e))?;
        let body = self.send(&url, request).await?;
        let value: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| ClientError::InvalidResponse {
                url: url.clone(),
                reason: format!("not JSON: {e}"),
            })?;
        WhoAmI::from_json(value).map_err(|reason| ClientError::InvalidResponse { url, reason })
    }

    fn request(&self, method: Method, url: &str) -> Result<http::request::Builder, ClientError> {
        if url.starts_with("http://") && !self.plain_http_ok {
            return Err(ClientError::invalid(
                "verifier URL",
                format!(
                    "{url} is plain http to a host that is not loopback; a proof sent in clear can \
                     be replayed by anyone who sees it. Use https (or allow plain http explicitly)."
                ),
            ));
        }
        Ok(Request::builder()
            .method(method)
            .uri(url)
            .header(ACCEPT, "application/json")
            .header(USER_AGENT, concat!("iam-join/", env!("CARGO_PKG_VERSION"))))
    }

    async fn send(&self, url: &str, request: Request<Full<Bytes>>) -> Result<Bytes, ClientError> {
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| ClientError::Http {
                    url: url.to_owned(),
                    reason: error_chain(&e),
                })?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| ClientError::Http {
                    url: url.to_owned(),
                    reason: format!("reading the answer failed: {e}"),
                })?
                .to_bytes();
            Ok::<_, ClientError>((status, body))
        };
        let (status, body) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ClientError::Timeout {
                url: url.to_owned(),
                after: self.timeout,
            })??;
        tracing::debug!(%url, status = status.as_u16(), "verifier answered");
        if status == StatusCode::OK {
            Ok(body)
        } else {
            Err(server_error(url, status, &body))
        }
    }
}

/// `POST {proxy_base}{prefix}/challenge` with a default [`VerifierClient`].
///
/// `prefix` is the verifier's path prefix, usually [`DEFAULT_PREFIX`].
pub async fn fetch_challenge(proxy_base: &str, prefix: &str) -> Result<Challenge, ClientError> {
    VerifierClient::new(proxy_base)?
        .with_prefix(prefix)?
        .fetch_challenge()
        .await
}

/// `GET {proxy_base}{prefix}/whoami` with a default [`VerifierClient`]; see
/// [`VerifierClient::whoami`].
pub async fn whoami(
    proxy_base: &str,
    prefix: &str,
    proof_token: &str,
    token_name: Option<&str>,
) -> Result<WhoAmI, ClientError> {
    VerifierClient::new(proxy_base)?
        .with_prefix(prefix)?
        .whoami(proof_token, token_name)
        .await
}

struct Base {
    url: String,
    loopback: bool,
}

fn parse_base(base_url: &str) -> Result<Base, ClientError> {
    let invalid = |reason: &str| {
        ClientError::invalid(
            "verifier URL",
            format!("{:?} {reason}", truncate(base_url, 200)),
        )
    };
    let trimmed = base_url.trim_end_matches('/');
    let uri: Uri = trimmed
        .parse()
        .map_err(|_| invalid("is not a URL like https://proxy.example.com"))?;
    match uri.scheme_str() {
        Some("https" | "http") => {}
        _ => {
            return Err(invalid(
                "must start with https:// (or http:// for loopback)",
            ));
        }
    }
    let authority = uri.authority().ok_or_else(|| invalid("has no host"))?;
    if authority.as_str().contains('@') {
        return Err(invalid("must not contain user info"));
    }
    if uri.query().is_some() || trimmed.contains('#') {
        return Err(invalid("must not have a query or fragment"));
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    Ok(Base {
        url: trimmed.to_owned(),
        loopback,
    })
}

fn normalize_prefix(prefix: &str) -> Result<String, ClientError> {
    let trimmed = prefix.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    let ok = trimmed.starts_with('/')
        && trimmed
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-._~".contains(&b));
    if ok {
        Ok(trimmed.to_owned())
    } else {
        Err(ClientError::invalid(
            "prefix",
            format!(
                "{:?} must be a path like /v1/iam-join",
                truncate(prefix, 100)
            ),
        ))
    }
}

fn request_error(url: &str, e: &http::Error) -> ClientError {
    ClientError::Http {
        url: url.to_owned(),
        reason: format!("could not build the request: {e}"),
    }
}

fn server_error(url: &str, status: StatusCode, body: &[u8]) -> ClientError {
    let (code, message) = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody { error }) => (error.code, error.message),
        Err(_) => (
            format!("http_{}", status.as_u16()),
            String::from_utf8_lossy(body).into_owned(),
        ),
    };
    ClientError::Server {
        url: url.to_owned(),
        status: status.as_u16(),
        code: printable(&code, 100),
        message: printable(&message, 1000),
    }
}

/// Keeps a server-supplied string from messing up the terminal: control characters become
/// spaces, and it is cut at `max` characters.
fn printable(s: &str, max: usize) -> String {
    let cut = truncate(s.trim(), max);
    let mut out: String = cut
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if cut.len() < s.trim().len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_checked_and_trailing_slashes_dropped() {
        let b = parse_base("https://proxy.example.com/").unwrap();
        assert_eq!(b.url, "https://proxy.example.com");
        assert!(!b.loopback);
        assert!(parse_base("http://127.0.0.1:8080").unwrap().loopback);
        assert!(parse_base("http://[::1]:8080").unwrap().loopback);
        assert!(parse_base("http://localhost").unwrap().loopback);
        for bad in [
            "proxy.example.com",
            "ftp://proxy.example.com",
            "https://user:pw@proxy.example.com",
            "https://proxy.example.com/?x=1",
            "https://proxy.example.com/#f",
            "",
        ] {
            assert!(parse_base(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn prefixes_are_normalized() {
        assert_eq!(normalize_prefix("/v1/iam-join/").unwrap(), "/v1/iam-join");
        assert_eq!(normalize_prefix("").unwrap(), "");
        assert!(normalize_prefix("v1").is_err());
        assert!(normalize_prefix("/v1?x").is_err());
    }

    #[tokio::test]
    async fn plain_http_to_a_remote_host_is_refused_before_connecting() {
        let client = VerifierClient::new("http://proxy.example.com").unwrap();
        let err = client.fetch_challenge().await.unwrap_err();
        assert!(matches!(err, ClientError::InvalidInput { .. }), "{err}");
        assert_eq!(
            client.endpoint_url("whoami"),
            "http://proxy.example.com/v1/iam-join/whoami"
        );
    }

    #[test]
    fn error_answers_carry_the_verifiers_code_and_message() {
        let err = server_error(
            "u",
            StatusCode::UNAUTHORIZED,
            br#"{"error":{"code":"audience_mismatch","message":"wrong\naudience"}}"#,
        );
        match err {
            ClientError::Server {
                status,
                code,
                message,
                ..
            } => {
                assert_eq!(status, 401);
                assert_eq!(code, "audience_mismatch");
                assert_eq!(message, "wrong audience");
            }
            other => panic!("{other}"),
        }
        let plain = server_error("u", StatusCode::BAD_GATEWAY, b"upstream down");
        assert_eq!(plain.server_code(), Some("http_502"));
    }

    #[test]
    fn whoami_answers_are_the_verifiers_wire_type() {
        let body = WhoAmIBody {
            account: "111111111111".into(),
            arn: "arn:aws:iam::111111111111:user/alice".into(),
            user_id: "AIDA".into(),
            principal: "user".into(),
            name: "alice".into(),
            session_name: None,
            region: "us-west-2".into(),
            token: "iam-token".into(),
            roles: vec!["Node".into()],
            binding: "audience".into(),
            expires_at: "2026-12-02T20:00:00Z".into(),
        };
        let mut v = serde_json::to_value(&body).unwrap();
        v["added_later"] = "ignored".into();
        let me = WhoAmI::from_json(v).unwrap();
        assert_eq!(me.roles, ["Node"]);
        assert_eq!(me.token.as_deref(), Some("iam-token"));
        assert_eq!(me.raw["added_later"], "ignored");
        assert!(WhoAmI::from_json(serde_json::json!({"account": "1"})).is_err());
    }

    #[tokio::test]
    async fn bad_token_names_are_refused_before_sending() {
        let client = VerifierClient::new("http://127.0.0.1:9").unwrap();
        let err = client.whoami("proof", Some("a b")).await.unwrap_err();
        assert!(matches!(err, ClientError::InvalidInput { .. }), "{err}");
        assert!(err.to_string().contains("token name"), "{err}");
    }

    #[test]
    fn a_challenge_for_another_header_is_refused() {
        let mut c = Challenge {
            challenge: "abc".into(),
            header: "x-teleport-challenge".into(),
            expires_in_seconds: 60,
        };
        assert_eq!(
            Binding::for_challenge(&c).unwrap(),
            Binding::Challenge("abc".into())
        );
        c.header = "x-other".into();
        assert!(Binding::for_challenge(&c).is_err());
    }
}
