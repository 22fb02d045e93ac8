//! `/verify` mode end to end, shared by `verify_nginx.rs` and `verify_caddy.rs`: a real nginx or
//! Caddy, configured with the committed example from `deploy/` (only its addresses replaced),
//! in front of the test upstream; iam-join-proxy with the sts-emulator as the verifier.
//!
//! client → nginx / Caddy ─(auth_request / forward_auth)→ iam-join-proxy /v1/iam-join/verify
//!                        └─(admitted)→ test upstream (echoes the headers it received)

#![allow(dead_code)] // each test file uses its own subset

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use iam_join_client::Binding;
use iam_join_e2e::{
    JOIN_PATH, Stack, StackOptions, Who, assert_claims_match_headers, assertion_config,
    audience_proof, bearer, proof, request, verify_assertion,
};
use iam_join_testkit::front_proxy::{FrontKind, FrontProxy};
use serde_json::Value;

/// The committed examples, exactly as an operator would copy them.
pub(crate) const NGINX_SITE: &str = include_str!("../../deploy/nginx/iam-join.conf");
/// See [`NGINX_SITE`].
pub(crate) const CADDY_SITE: &str = include_str!("../../deploy/caddy/Caddyfile");

/// Request headers, name and value.
pub(crate) type Headers<'a> = &'a [(&'a str, &'a str)];

/// The verifier and app addresses the examples name.
const EXAMPLE_VERIFIER: &str = "127.0.0.1:8443";
const EXAMPLE_APP: &str = "127.0.0.1:3080";

/// The identity the seed token admits ([`Who::NodeRole`]), as the app must receive it.
pub(crate) const NODE_IDENTITY: [(&str, &str); 5] = [
    ("x-iam-join-account", "333333333333"),
    (
        "x-iam-join-arn",
        "arn:aws:sts::333333333333:assumed-role/teleport-node-role/i-0abc123def4567890",
    ),
    ("x-iam-join-token", "iam-token"),
    ("x-iam-join-roles", "Node"),
    ("x-iam-join-region", "us-west-2"),
];

/// Replaces each `from` with `to`; panics if a `from` is not in `text`, so an edit of the
/// example that moves an address fails here instead of testing something else.
fn substitute(text: &str, pairs: &[(&str, &str)]) -> String {
    let mut out = text.to_owned();
    for (from, to) in pairs {
        assert!(
            out.contains(from),
            "the example config no longer contains {from:?}"
        );
        out = out.replace(from, to);
    }
    out
}

/// A verifier stack with a real nginx or Caddy in front of its test upstream.
pub(crate) struct Front {
    /// The verifier (iam-join-proxy + sts-emulator) and the test upstream (the app).
    pub(crate) stack: Stack,
    /// nginx or Caddy.
    pub(crate) server: FrontProxy,
}

impl Front {
    /// The default verifier behind `kind`.
    pub(crate) async fn start(kind: FrontKind) -> Self {
        Self::start_with(kind, "").await
    }

    /// A verifier with `extra_config` (top-level YAML) behind `kind`.
    pub(crate) async fn start_with(kind: FrontKind, extra_config: &str) -> Self {
        Self::start_full(kind, extra_config, &[]).await
    }

    /// A verifier that signs assertions (with a generated key) behind `kind`, whose example
    /// config has its assertion line switched on (Caddy's is commented out by default).
    pub(crate) async fn start_with_assertions(kind: FrontKind) -> Self {
        let caddy_line = "# request_header X-Iam-Join-Assertion";
        Self::start_full(
            kind,
            &assertion_config(&[]),
            &[(caddy_line, &caddy_line[2..])],
        )
        .await
    }

    async fn start_full(kind: FrontKind, extra_config: &str, caddy_edits: &[(&str, &str)]) -> Self {
        let stack = Stack::start_with(StackOptions {
            // nginx and Caddy name the client in X-Forwarded-For, as deploy/README.md says.
            extra_config: format!("trusted_proxies: [127.0.0.1/32]\n{extra_config}"),
            ..StackOptions::default()
        })
        .await;
        let verifier = stack.proxy.to_string();
        let app = stack.upstream.addr.to_string();
        let server = match kind {
            FrontKind::Nginx => FrontProxy::nginx(|port| {
                substitute(
                    NGINX_SITE,
                    &[
                        ("listen 80;", &format!("listen 127.0.0.1:{port};")),
                        (EXAMPLE_VERIFIER, &verifier),
                        (EXAMPLE_APP, &app),
                    ],
                )
            }),
            FrontKind::Caddy => FrontProxy::caddy(|port| {
                let site = format!("http://:{port} {{\n\tbind 127.0.0.1");
                let mut edits = vec![
                    ("app.example.com {", site.as_str()),
                    (EXAMPLE_VERIFIER, verifier.as_str()),
                    (EXAMPLE_APP, app.as_str()),
                ];
                edits.extend_from_slice(caddy_edits);
                substitute(CADDY_SITE, &edits)
            }),
        };
        Self { stack, server }
    }

    /// A request through the front proxy.
    pub(crate) async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, Value) {
        let (status, headers, body) =
            request(method, &self.server.url(path), headers, Bytes::new()).await;
        let json = serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
        (status, headers, json)
    }

    /// The same request straight to the verifier's `/verify`, as the front proxy asks it.
    pub(crate) async fn ask_verifier(
        &self,
        original_uri: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, Value) {
        let mut all = headers.to_vec();
        all.push(("x-original-uri", original_uri));
        let (status, headers, body) = request(
            "GET",
            &self.stack.url("/v1/iam-join/verify"),
            &all,
            Bytes::new(),
        )
        .await;
        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
        (status, headers, json)
    }

    /// A single-use challenge fetched through the front proxy, as a workload would.
    pub(crate) async fn challenge(&self) -> Binding {
        let (status, _, body) = self.send("POST", "/v1/iam-join/challenge", &[]).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "challenge through the front: {body}"
        );
        let challenge = body["challenge"].as_str().expect("challenge").to_owned();
        Binding::Challenge(challenge)
    }

    fn context(&self) -> String {
        format!("{:?} log:\n{}", self.server.kind(), self.server.log())
    }
}

/// The values of `name` in an upstream echo.
pub(crate) fn echoed<'a>(echo: &'a Value, name: &str) -> Vec<&'a str> {
    echo["headers"][name]
        .as_array()
        .map(|vs| vs.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Header names as CGI/WSGI/Rack see them: lower case, `_` for `-`.
fn cgi_name(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

/// The app got exactly the verified identity: each identity header once, with the verifier's
/// value, no other `x-iam-join-*` spelling, and no proof anywhere.
pub(crate) fn assert_verified_identity_only(echo: &Value, proof: &str) {
    for (name, value) in NODE_IDENTITY {
        assert_eq!(echoed(echo, name), vec![value], "{name} in {echo}");
    }
    assert_eq!(echoed(echo, "x-iam-join-user-id").len(), 1, "{echo}");
    let names: Vec<&String> = echo["headers"]
        .as_object()
        .expect("echo headers")
        .keys()
        .collect();
    for name in names {
        let cgi = cgi_name(name);
        if cgi.starts_with("x-iam-join") {
            assert!(
                name.as_str() == cgi
                    && (NODE_IDENTITY.iter().any(|(n, _)| *n == cgi)
                        || cgi == "x-iam-join-user-id"),
                "{name} reached the app: {echo}"
            );
        }
    }
    assert!(
        !echo.to_string().contains(proof),
        "the proof reached the app: {echo}"
    );
}

/// An admitted request reaches the app with the verified identity and without the proof, in
/// either carrier; the app's own Authorization passes when the proof is in X-IAM-Join-Proof.
pub(crate) async fn admitted_request_reaches_the_app(front: &Front) {
    let token = audience_proof(Who::NodeRole);
    let (k, v) = bearer(&token);
    let (status, _, echo) = front.send("GET", "/webapi/sites?x=1", &[(k, &v)]).await;
    assert_eq!(status, StatusCode::OK, "{echo}\n{}", front.context());
    assert_eq!(echo["path"], "/webapi/sites");
    assert_eq!(echo["query"], "x=1");
    assert_verified_identity_only(&echo, &token);
    assert!(echoed(&echo, "authorization").is_empty(), "{echo}");

    let (status, _, echo) = front
        .send(
            "POST",
            "/webapi/sessions",
            &[
                ("x-iam-join-proof", &token),
                ("x-iam-join-token", "iam-token"),
                ("authorization", "Bearer upstream-session"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{echo}\n{}", front.context());
    assert_eq!(echo["method"], "POST");
    assert_verified_identity_only(&echo, &token);
    assert_eq!(
        echoed(&echo, "authorization"),
        vec!["Bearer upstream-session"]
    );
}

/// With assertions on, the app gets exactly one: the verifier's (a client-sent one is
/// cleared), verifiable against the JWKS (from the verifier, and through the front proxy), with
/// the identity headers as its claims; a challenge-bound admission says so in `binding`.
pub(crate) async fn assertion_reaches_the_app(kind: FrontKind) {
    let front = Front::start_with_assertions(kind).await;
    let token = audience_proof(Who::NodeRole);
    let (k, v) = bearer(&token);
    let forged = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.";
    let (status, _, echo) = front
        .send(
            "GET",
            "/webapi/sites",
            &[
                (k, &v),
                ("X-IAM-Join-Assertion", forged),
                ("x_iam_join_assertion", forged),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{echo}\n{}", front.context());
    let assertions = echoed(&echo, "x-iam-join-assertion");
    assert_eq!(assertions.len(), 1, "{echo}");
    assert!(!echo.to_string().contains(forged), "{echo}");
    for jwks in [
        front.stack.url("/.well-known/jwks.json"),
        front.server.url("/v1/iam-join/jwks.json"),
    ] {
        let verified = verify_assertion(&jwks, assertions[0])
            .await
            .unwrap_or_else(|e| panic!("{jwks}: {e}"));
        assert_claims_match_headers(&echo, &verified.claims);
        assert_eq!(verified.claims.binding, "audience");
    }
    assert!(
        !echo.to_string().contains(&token),
        "the proof reached the app"
    );

    let challenged = proof(Who::NodeRole, front.challenge().await);
    let (k, v) = bearer(&challenged);
    let (status, _, echo) = front.send("POST", JOIN_PATH, &[(k, &v)]).await;
    assert_eq!(status, StatusCode::OK, "{echo}\n{}", front.context());
    let assertions = echoed(&echo, "x-iam-join-assertion");
    assert_eq!(assertions.len(), 1, "{echo}");
    let verified = verify_assertion(&front.stack.url("/.well-known/jwks.json"), assertions[0])
        .await
        .unwrap();
    assert_eq!(verified.claims.binding, "challenge");

    // Refused requests carry no assertion, whatever the client sent.
    let (status, _, body) = front
        .send("GET", "/webapi/sites", &[("x-iam-join-assertion", forged)])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        body["error"]["code"].is_string(),
        "a refusal, not the app: {body}"
    );
}

/// Identity headers a client might forge, in the spellings an app could read as its own.
pub(crate) const FORGED: &[&str] = &[
    "X-IAM-Join-Account",
    "x-iam-join-arn",
    "X-Iam-Join-User-Id",
    "x-iam-join-roles",
    "X-IAM-JOIN-REGION",
    "x-iam-join-assertion",
    "x_iam_join_account",
    "X_IAM_JOIN_ARN",
    "x-iam_join-user-id",
    "x_iam-join-roles",
    "x-iam-join_region",
    "X-IAM-Join-User_Id",
    "x-iam-join-assertion_",
];

/// Forged identity headers never arrive: not alongside an admitted proof (the verified values
/// replace them), and not at all without one (the request is refused).
pub(crate) async fn forged_identity_headers_never_arrive(front: &Front) {
    let token = audience_proof(Who::NodeRole);
    let (k, v) = bearer(&token);
    let forged: Vec<(&str, &str)> = FORGED
        .iter()
        .map(|name| (*name, "forged"))
        .chain([("X-IAM-Join-Account", "444444444444")])
        .collect();
    let mut headers = forged.clone();
    if front.server.kind() == FrontKind::Caddy {
        // Caddy clears the whole prefix; nginx can clear named headers only (see its config).
        headers.extend([
            ("X-IAM-Join-Extra", "forged"),
            ("x_iam_join_debug", "forged"),
        ]);
    }
    headers.push((k, &v));
    let (status, _, echo) = front.send("GET", "/webapi/sites", &headers).await;
    assert_eq!(status, StatusCode::OK, "{echo}\n{}", front.context());
    assert_verified_identity_only(&echo, &token);
    assert!(!echo.to_string().contains("forged"), "{echo}");
    assert!(!echo.to_string().contains("444444444444"), "{echo}");

    let (status, _, body) = front.send("GET", "/webapi/sites", &forged).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        body["error"]["code"].is_string(),
        "a refusal, not the app: {body}"
    );
}

/// `/verify` learns the original path (X-Original-URI / X-Forwarded-Uri) and applies the
/// challenge paths to it: a reusable proof is refused on the join path in any spelling, a
/// challenge fetched through the front proxy is admitted once.
pub(crate) async fn challenge_path_needs_a_challenge(front: &Front) {
    let (k, v) = bearer(&audience_proof(Who::NodeRole));
    for path in [
        JOIN_PATH,
        "/V1/webapi/host/join/",
        "/v1/webapi//host/join?x=1",
        "/v1/webapi/./host/join",
    ] {
        let (status, _, body) = front.send("POST", path, &[(k, &v)]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(body["error"]["code"], "binding_missing", "{path}: {body}");
    }

    let challenged = proof(Who::NodeRole, front.challenge().await);
    let (k, v) = bearer(&challenged);
    let (status, _, echo) = front.send("POST", JOIN_PATH, &[(k, &v)]).await;
    assert_eq!(status, StatusCode::OK, "{echo}\n{}", front.context());
    assert_eq!(echo["path"], JOIN_PATH);
    assert_verified_identity_only(&echo, &challenged);

    let (status, _, body) = front.send("POST", JOIN_PATH, &[(k, &v)]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "replay: {body}");
    assert_eq!(body["error"]["code"], "challenge_reused");
}

/// A refusal as the client sees it through the front proxy, next to the verifier's own answer
/// to the same question: same status, same Retry-After and WWW-Authenticate, a JSON error.
async fn assert_refusal_passes_through(
    front: &Front,
    what: &str,
    headers: &[(&str, &str)],
    code: &str,
) {
    let (direct_status, direct_headers, direct_body) =
        front.ask_verifier("/webapi/sites", headers).await;
    assert_eq!(
        direct_body["error"]["code"], code,
        "{what}: verifier said {direct_body}"
    );
    assert_eq!(
        direct_headers
            .get("x-iam-join-error")
            .and_then(|v| v.to_str().ok()),
        Some(code),
        "{what}: the verifier names the code in a header: {direct_headers:?}"
    );
    let (status, got, body) = front.send("GET", "/webapi/sites", headers).await;
    assert_refusal_matches(
        front,
        what,
        (direct_status, &direct_headers, code),
        (status, &got, &body),
    );
}

fn assert_refusal_matches(
    front: &Front,
    what: &str,
    (want_status, want_headers, code): (StatusCode, &HeaderMap, &str),
    (status, got, body): (StatusCode, &HeaderMap, &Value),
) {
    assert_eq!(status, want_status, "{what}: {body}\n{}", front.context());
    // The exact code through every front proxy: nginx's auth_request drops the body, so
    // deploy/nginx/iam-join.conf renders it from the verifier's x-iam-join-error header.
    assert_eq!(body["error"]["code"], code, "{what}: {body}");
    assert!(body["error"]["message"].is_string(), "{what}: {body}");
    assert!(
        got.get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json")),
        "{what}: {got:?}"
    );
    for name in ["retry-after", "www-authenticate"] {
        assert_eq!(
            got.get(name).is_some(),
            want_headers.get(name).is_some(),
            "{what}: {name} {got:?} vs the verifier's {want_headers:?}"
        );
    }
    if code == "rate_limited" || code == "sts_unavailable" {
        let secs: u64 = got["retry-after"]
            .to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .expect("Retry-After in seconds");
        assert!(secs >= 1, "{what}: Retry-After {secs}");
    }
}

/// Refusals reach the client with the verifier's status, Retry-After and a JSON error body, and
/// never reach the app.
pub(crate) async fn refusals_pass_through(front: &Front) {
    let nobody = audience_proof(Who::NodeRole2);
    let other_audience = proof(
        Who::NodeRole,
        Binding::Audience("elsewhere.example.com".into()),
    );
    let nobody = format!("Bearer {nobody}");
    let other_audience = format!("Bearer {other_audience}");
    let cases: [(&str, Headers<'_>, &str); 5] = [
        ("no proof", &[], "missing_proof"),
        (
            "malformed",
            &[("authorization", "Bearer iam-join-v1.!!!")],
            "malformed_proof",
        ),
        (
            "not allowed by the token",
            &[("authorization", &nobody)],
            "not_allowed",
        ),
        (
            "another audience",
            &[("authorization", &other_audience)],
            "audience_mismatch",
        ),
        (
            "unknown token",
            &[
                ("authorization", &nobody),
                ("x-iam-join-token", "no-such-token"),
            ],
            "unknown_token",
        ),
    ];
    for (what, headers, code) in cases {
        assert_refusal_passes_through(front, what, headers, code).await;
    }

    // STS throttled: 503 with Retry-After (never cached, so ask with fresh proofs).
    front.stack.sts.set_fault(sts_emulator::Fault::Throttle);
    let direct = audience_proof(Who::Alice);
    let (k, v) = bearer(&direct);
    let (want_status, want_headers, want_body) =
        front.ask_verifier("/webapi/sites", &[(k, &v)]).await;
    assert_eq!(want_body["error"]["code"], "sts_unavailable", "{want_body}");
    let through = proof(Who::Bob, Binding::Audience(iam_join_e2e::AUDIENCE.into()));
    let (k, v) = bearer(&through);
    let (status, got, body) = front.send("GET", "/webapi/sites", &[(k, &v)]).await;
    front.stack.sts.set_fault(sts_emulator::Fault::None);
    assert_refusal_matches(
        front,
        "STS throttled",
        (want_status, &want_headers, "sts_unavailable"),
        (status, &got, &body),
    );
}

/// Past the per-client limit the client gets 429 with Retry-After through the front proxy.
pub(crate) async fn rate_limit_passes_through(kind: FrontKind) {
    let front = Front::start_with(
        kind,
        "rate_limits: {per_client: {per_second: 1, burst: 1}}\n",
    )
    .await;
    // Challenge-bound proofs always need STS work, so each one spends the client's budget
    // (audience proofs signed in the same second are identical and would be cache hits);
    // bounded: the burst is 1, so one of the first few must be limited.
    for attempt in 0..20 {
        let (k, v) = bearer(&proof(Who::NodeRole, front.challenge().await));
        let (status, got, body) = front.send("GET", "/webapi/sites", &[(k, &v)]).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            let mut want = HeaderMap::new();
            want.insert("retry-after", http::HeaderValue::from_static("1"));
            assert_refusal_matches(
                &front,
                "rate limited",
                (StatusCode::TOO_MANY_REQUESTS, &want, "rate_limited"),
                (status, &got, &body),
            );
            return;
        }
        assert_eq!(status, StatusCode::OK, "attempt {attempt}: {body}");
    }
    panic!("20 fresh proofs against a burst of 1 were never rate limited");
}
