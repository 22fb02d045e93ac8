//! The Envoy example (`deploy/envoy/envoy.yaml`) against the verifier. Envoy is not packaged
//! for the test machine, so this reads the committed config and plays Envoy's part from it:
//! the ext_authz HTTP check request is `path_prefix` + the original path and query, with the
//! original method and only the `allowed_headers`; an admitted request gets the answer's
//! `allowed_upstream_headers`, then loses the route's `request_headers_to_remove`; a refusal is
//! the verifier's status and body with the `allowed_client_headers`.

mod verify_support;

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use iam_join_client::{Binding, VerifierClient};
use iam_join_e2e::{JOIN_PATH, Stack, Who, audience_proof, proof, request};
use serde_json::Value;
use verify_support::{Headers, NODE_IDENTITY};

const ENVOY_EXAMPLE: &str = include_str!("../deploy/envoy/envoy.yaml");

/// An Envoy `StringMatcher` as the example uses them.
#[derive(Debug)]
enum Pattern {
    Exact(String),
    Prefix(String),
}

impl Pattern {
    fn matches(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        match self {
            Self::Exact(e) => name == *e,
            Self::Prefix(p) => name.starts_with(p.as_str()),
        }
    }
}

/// The parts of the example that decide what the verifier and the app see.
#[derive(Debug)]
struct Example {
    path_prefix: String,
    allowed_headers: Vec<Pattern>,
    allowed_upstream_headers: Vec<Pattern>,
    allowed_client_headers: Vec<Pattern>,
    underscores_action: String,
    removed_before_check: Vec<String>,
    removed_after_check: Vec<String>,
}

fn patterns(v: &Value) -> Vec<Pattern> {
    v["patterns"]
        .as_array()
        .expect("patterns")
        .iter()
        .map(|p| match (p["exact"].as_str(), p["prefix"].as_str()) {
            (Some(e), None) => Pattern::Exact(e.to_ascii_lowercase()),
            (None, Some(p)) => Pattern::Prefix(p.to_ascii_lowercase()),
            _ => panic!("unsupported matcher {p}"),
        })
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn example() -> Example {
    let config: Value = serde_norway::from_str(ENVOY_EXAMPLE).expect("envoy.yaml is YAML");
    let hcm = &config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    let filter = |name: &str| -> &Value {
        hcm["http_filters"]
            .as_array()
            .expect("http_filters")
            .iter()
            .find(|f| f["name"] == name)
            .map(|f| &f["typed_config"])
            .unwrap_or_else(|| panic!("no {name} filter"))
    };
    let service = &filter("envoy.filters.http.ext_authz")["http_service"];
    let removed_before_check =
        filter("envoy.filters.http.header_mutation")["mutations"]["request_mutations"]
            .as_array()
            .expect("request_mutations")
            .iter()
            .filter_map(|m| m["remove"].as_str().map(str::to_owned))
            .collect();
    let app_route = hcm["route_config"]["virtual_hosts"][0]["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .find(|r| r["match"]["prefix"] == "/")
        .expect("the app's route");
    Example {
        path_prefix: service["path_prefix"]
            .as_str()
            .expect("path_prefix")
            .to_owned(),
        allowed_headers: patterns(&service["authorization_request"]["allowed_headers"]),
        allowed_upstream_headers: patterns(
            &service["authorization_response"]["allowed_upstream_headers"],
        ),
        allowed_client_headers: patterns(
            &service["authorization_response"]["allowed_client_headers"],
        ),
        underscores_action: hcm["common_http_protocol_options"]["headers_with_underscores_action"]
            .as_str()
            .expect("headers_with_underscores_action")
            .to_owned(),
        removed_before_check,
        removed_after_check: strings(&app_route["request_headers_to_remove"]),
    }
}

/// What Envoy does with a client request.
#[derive(Debug)]
enum Outcome {
    /// Forwarded to the app with these headers (lower-case name → values).
    Admitted(BTreeMap<String, Vec<String>>),
    /// Answered by Envoy: status, the headers the client sees, body.
    Refused(StatusCode, HeaderMap, Value),
}

async fn through_envoy(
    stack: &Stack,
    ex: &Example,
    method: &str,
    path: &str,
    client: &[(&str, &str)],
) -> Outcome {
    let mut headers: Vec<(String, String)> = Vec::new();
    for (k, v) in client {
        if k.contains('_') {
            match ex.underscores_action.as_str() {
                "REJECT_REQUEST" => {
                    return Outcome::Refused(
                        StatusCode::BAD_REQUEST,
                        HeaderMap::new(),
                        Value::Null,
                    );
                }
                "DROP_HEADER" => continue,
                other => panic!("headers_with_underscores_action {other} lets {k} through"),
            }
        }
        headers.push((k.to_ascii_lowercase(), (*v).to_owned()));
    }
    headers.retain(|(k, _)| !ex.removed_before_check.iter().any(|r| r == k));

    let check: Vec<(&str, &str)> = headers
        .iter()
        .filter(|(k, _)| ex.allowed_headers.iter().any(|p| p.matches(k)))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let url = stack.url(&format!("{}{path}", ex.path_prefix));
    let (status, answer, body) = request(method, &url, &check, Bytes::new()).await;
    if !status.is_success() {
        let mut seen = HeaderMap::new();
        for (k, v) in &answer {
            if ex
                .allowed_client_headers
                .iter()
                .any(|p| p.matches(k.as_str()))
            {
                seen.append(k, v.clone());
            }
        }
        let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
        return Outcome::Refused(status, seen, body);
    }
    assert!(
        body.is_empty(),
        "the check answer is /verify's (empty body), not a proxied response: {:?}",
        String::from_utf8_lossy(&body)
    );

    let mut upstream: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in headers {
        upstream.entry(k).or_default().push(v);
    }
    for (k, v) in &answer {
        if ex
            .allowed_upstream_headers
            .iter()
            .any(|p| p.matches(k.as_str()))
        {
            let value = v.to_str().expect("ASCII identity header").to_owned();
            upstream.insert(k.as_str().to_owned(), vec![value]);
        }
    }
    for r in &ex.removed_after_check {
        upstream.remove(r);
    }
    Outcome::Admitted(upstream)
}

fn admitted(outcome: Outcome) -> BTreeMap<String, Vec<String>> {
    match outcome {
        Outcome::Admitted(h) => h,
        Outcome::Refused(status, _, body) => panic!("refused {status}: {body}"),
    }
}

fn refused(outcome: Outcome) -> (StatusCode, HeaderMap, Value) {
    match outcome {
        Outcome::Refused(status, headers, body) => (status, headers, body),
        Outcome::Admitted(h) => panic!("admitted: {h:?}"),
    }
}

fn assert_node_identity_without_proof(app: &BTreeMap<String, Vec<String>>, proof: &str) {
    for (name, value) in NODE_IDENTITY {
        assert_eq!(
            app.get(name),
            Some(&vec![value.to_owned()]),
            "{name}: {app:?}"
        );
    }
    assert!(app.contains_key("x-iam-join-user-id"), "{app:?}");
    assert!(!app.contains_key("authorization"), "{app:?}");
    assert!(!app.contains_key("x-iam-join-proof"), "{app:?}");
    assert!(
        !format!("{app:?}").contains(proof),
        "the proof reached the app: {app:?}"
    );
}

#[test]
fn envoy_example_sends_the_proof_headers_to_verify_and_only_identity_headers_back() {
    let ex = example();
    assert_eq!(ex.path_prefix, "/v1/iam-join/verify");
    for name in ["authorization", "x-iam-join-proof", "x-iam-join-token"] {
        assert!(
            ex.allowed_headers.iter().any(|p| p.matches(name)),
            "{name} must reach /verify"
        );
    }
    for name in [
        "x-iam-join-account",
        "x-iam-join-arn",
        "x-iam-join-assertion",
    ] {
        assert!(ex.allowed_upstream_headers.iter().any(|p| p.matches(name)));
    }
    for name in [
        "authorization",
        "x-iam-join-proof",
        "set-cookie",
        "x-teleport-challenge",
    ] {
        assert!(
            !ex.allowed_upstream_headers.iter().any(|p| p.matches(name)),
            "{name} must not be copied from the check answer"
        );
    }
    assert!(
        ex.removed_after_check
            .iter()
            .any(|h| h == "x-iam-join-proof")
    );
    assert!(ex.removed_after_check.iter().any(|h| h == "authorization"));
    assert!(
        ["REJECT_REQUEST", "DROP_HEADER"].contains(&ex.underscores_action.as_str()),
        "{}",
        ex.underscores_action
    );
}

#[tokio::test]
async fn envoy_check_of_the_original_path_admits_with_the_verified_identity_and_no_proof() {
    let stack = Stack::start().await;
    let ex = example();
    let token = audience_proof(Who::NodeRole);
    let bearer = format!("Bearer {token}");
    let forged = [
        ("authorization", bearer.as_str()),
        ("x-iam-join-arn", "arn:aws:iam::444444444444:user/forged"),
        ("X-IAM-Join-Account", "444444444444"),
        ("x-iam-join-assertion", "forged"),
    ];
    for method in ["GET", "POST", "DELETE"] {
        let app = admitted(through_envoy(&stack, &ex, method, "/webapi/sites?x=1", &forged).await);
        assert_node_identity_without_proof(&app, &token);
        assert!(!format!("{app:?}").contains("forged"), "{app:?}");
        assert!(!format!("{app:?}").contains("444444444444"), "{app:?}");
    }

    let app = admitted(
        through_envoy(
            &stack,
            &ex,
            "GET",
            "/",
            &[
                ("x-iam-join-proof", &token),
                ("x-iam-join-token", "iam-token"),
            ],
        )
        .await,
    );
    assert_node_identity_without_proof(&app, &token);

    let (status, _, _) = refused(
        through_envoy(
            &stack,
            &ex,
            "GET",
            "/webapi/sites",
            &[("authorization", &bearer), ("x_iam_join_arn", "forged")],
        )
        .await,
    );
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "underscore names are refused"
    );
}

#[tokio::test]
async fn envoy_check_of_a_challenge_path_needs_a_challenge() {
    let stack = Stack::start().await;
    let ex = example();
    let bearer = format!("Bearer {}", audience_proof(Who::NodeRole));
    for path in [
        JOIN_PATH,
        "/V1/webapi/host/join/",
        "/v1/webapi//host/join?x=1",
        "/v1/webapi/./host/join",
        "/v1/webapi/host/%6Aoin",
    ] {
        let (status, _, body) =
            refused(through_envoy(&stack, &ex, "POST", path, &[("authorization", &bearer)]).await);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(body["error"]["code"], "binding_missing", "{path}: {body}");
    }

    let verifier = VerifierClient::new(&stack.url("")).expect("client");
    let challenge = verifier.fetch_challenge().await.expect("challenge");
    let token = proof(
        Who::NodeRole,
        Binding::for_challenge(&challenge).expect("binding"),
    );
    let bearer = format!("Bearer {token}");
    let app = admitted(
        through_envoy(
            &stack,
            &ex,
            "POST",
            JOIN_PATH,
            &[("authorization", &bearer)],
        )
        .await,
    );
    assert_node_identity_without_proof(&app, &token);
    let (status, _, body) = refused(
        through_envoy(
            &stack,
            &ex,
            "POST",
            JOIN_PATH,
            &[("authorization", &bearer)],
        )
        .await,
    );
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "challenge_reused");
}

#[tokio::test]
async fn envoy_refusals_carry_the_verifier_status_json_and_headers() {
    let stack = Stack::start().await;
    let ex = example();
    let nobody = format!("Bearer {}", audience_proof(Who::NodeRole2));
    let elsewhere = format!(
        "Bearer {}",
        proof(
            Who::NodeRole,
            Binding::Audience("elsewhere.example.com".into())
        )
    );
    let cases: [(Headers<'_>, StatusCode, &str); 3] = [
        (&[], StatusCode::UNAUTHORIZED, "missing_proof"),
        (
            &[("authorization", &nobody)],
            StatusCode::FORBIDDEN,
            "not_allowed",
        ),
        (
            &[("authorization", &elsewhere)],
            StatusCode::UNAUTHORIZED,
            "audience_mismatch",
        ),
    ];
    for (headers, want, code) in cases {
        let (status, seen, body) =
            refused(through_envoy(&stack, &ex, "GET", "/webapi/sites", headers).await);
        assert_eq!(status, want, "{code}: {body}");
        assert_eq!(body["error"]["code"], code, "{body}");
        assert_eq!(
            seen.get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/json")
        );
        assert_eq!(
            seen.contains_key("www-authenticate"),
            code == "missing_proof",
            "{seen:?}"
        );
    }

    stack.sts.set_fault(sts_emulator::Fault::Throttle);
    let bearer = format!("Bearer {}", audience_proof(Who::Alice));
    let (status, seen, body) = refused(
        through_envoy(
            &stack,
            &ex,
            "GET",
            "/webapi/sites",
            &[("authorization", &bearer)],
        )
        .await,
    );
    stack.sts.set_fault(sts_emulator::Fault::None);
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "sts_unavailable");
    assert!(seen.contains_key("retry-after"), "{seen:?}");
}
