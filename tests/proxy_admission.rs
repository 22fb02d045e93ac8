//! Who gets through the proxy, and what the upstream learns about them:
//! client → iam-join-proxy → sts-emulator, → test upstream.

use bytes::Bytes;
use http::StatusCode;
use iam_join_client::{Binding, VerifierClient};
use iam_join_e2e::{
    AUDIENCE, JOIN_PATH, PUBLIC_PATH, Stack, StackOptions, Who, audience_proof, bearer, get_json,
    proof, request,
};
use serde_json::Value;

fn header<'a>(echo: &'a Value, name: &str) -> Option<&'a str> {
    echo["headers"][name][0].as_str()
}

fn names(echo: &Value) -> Vec<String> {
    echo["headers"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn allowed_identity_is_admitted_and_upstream_gets_its_verified_identity() {
    let stack = Stack::start().await;
    let (k, v) = bearer(&audience_proof(Who::NodeRole));
    let (status, echo) = get_json(&stack.url("/webapi/sites?x=1"), &[(k, &v)]).await;
    assert_eq!(status, StatusCode::OK, "{echo}");
    assert_eq!(echo["path"], "/webapi/sites");
    assert_eq!(echo["query"], "x=1");
    assert_eq!(header(&echo, "x-iam-join-account"), Some("333333333333"));
    assert_eq!(
        header(&echo, "x-iam-join-arn"),
        Some("arn:aws:sts::333333333333:assumed-role/teleport-node-role/i-0abc123def4567890")
    );
    assert_eq!(header(&echo, "x-iam-join-token"), Some("iam-token"));
    assert_eq!(header(&echo, "x-iam-join-roles"), Some("Node"));
    assert_eq!(header(&echo, "x-iam-join-region"), Some("us-west-2"));
    assert!(header(&echo, "x-iam-join-user-id").is_some());
    assert_eq!(stack.sts.calls(), 1);
}

#[tokio::test]
async fn identities_the_token_does_not_allow_are_denied_and_never_reach_the_upstream() {
    let stack = Stack::start().await;
    for who in [Who::OtherAccount, Who::NodeRole2] {
        let (k, v) = bearer(&audience_proof(who));
        let (status, body) = get_json(&stack.url("/webapi/sites"), &[(k, &v)]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{who:?}: {body}");
        assert_eq!(body["error"]["code"], "not_allowed", "{who:?}");
        // The echo upstream answers with "path"; a denial is the layer's own JSON.
        assert!(body.get("path").is_none());
    }
    let (status, body) = get_json(&stack.url("/webapi/sites"), &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "missing_proof");
}

#[tokio::test]
async fn proof_for_another_audience_is_rejected() {
    let stack = Stack::start().await;
    let other = proof(
        Who::Alice,
        Binding::Audience("someone-else.example.com".into()),
    );
    let (k, v) = bearer(&other);
    let (status, body) = get_json(&stack.url("/"), &[(k, &v)]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "audience_mismatch");
}

#[tokio::test]
async fn spoofed_identity_headers_never_reach_the_upstream() {
    let stack = Stack::start().await;
    let spoofed = [
        ("x-iam-join-account", "999999999999"),
        ("x-iam-join-arn", "arn:aws:iam::999999999999:user/mallory"),
        ("x-iam-join-roles", "Admin"),
        ("X-IAM-Join-Something-Else", "forged"),
    ];

    // Admitted request: the forged values are replaced by the verified ones.
    let (k, v) = bearer(&audience_proof(Who::Alice));
    let mut headers = vec![(k, v.as_str())];
    headers.extend(spoofed);
    let (status, echo) = get_json(&stack.url("/api"), &headers).await;
    assert_eq!(status, StatusCode::OK, "{echo}");
    assert_eq!(
        echo["headers"]["x-iam-join-account"],
        serde_json::json!(["111111111111"])
    );
    assert_eq!(
        echo["headers"]["x-iam-join-arn"],
        serde_json::json!(["arn:aws:iam::111111111111:user/alice"])
    );
    assert_eq!(
        echo["headers"]["x-iam-join-roles"],
        serde_json::json!(["Node"])
    );
    assert!(echo["headers"].get("x-iam-join-something-else").is_none());

    // Public path: no proof needed, and no x-iam-join-* header at all reaches the upstream.
    let (status, echo) = get_json(&stack.url(PUBLIC_PATH), &spoofed).await;
    assert_eq!(status, StatusCode::OK, "{echo}");
    let leaked: Vec<String> = names(&echo)
        .into_iter()
        .filter(|n| n.starts_with("x-iam-join-"))
        .collect();
    assert!(leaked.is_empty(), "leaked: {leaked:?}");
}

#[tokio::test]
async fn the_proof_never_reaches_the_upstream_in_either_carrier() {
    let stack = Stack::start().await;
    let token = audience_proof(Who::Bob);

    let (k, v) = bearer(&token);
    let (status, echo) = get_json(&stack.url("/a"), &[(k, &v)]).await;
    assert_eq!(status, StatusCode::OK, "{echo}");
    assert!(echo["headers"].get("authorization").is_none(), "{echo}");

    let (status, echo) = get_json(&stack.url("/b"), &[("x-iam-join-proof", &token)]).await;
    assert_eq!(status, StatusCode::OK, "{echo}");
    assert!(echo["headers"].get("x-iam-join-proof").is_none(), "{echo}");
    assert!(
        !echo.to_string().contains(&token[token.len() - 40..]),
        "proof text leaked: {echo}"
    );

    // An upstream's own bearer token (not a proof) is left alone when the proof travels in
    // X-IAM-Join-Proof.
    let (status, echo) = get_json(
        &stack.url("/c"),
        &[
            ("x-iam-join-proof", &token),
            ("authorization", "Bearer upstream-session"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        echo["headers"]["authorization"],
        serde_json::json!(["Bearer upstream-session"])
    );
}

#[tokio::test]
async fn challenge_join_is_admitted_once_and_its_replay_is_refused() {
    let stack = Stack::start().await;
    let verifier = VerifierClient::new(&stack.url("")).expect("client");
    let challenge = verifier.fetch_challenge().await.expect("challenge");
    let token = proof(
        Who::NodeRole,
        Binding::for_challenge(&challenge).expect("binding"),
    );
    let (k, v) = bearer(&token);

    let (status, _, body) = request("POST", &stack.url(JOIN_PATH), &[(k, &v)], Bytes::new()).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    let (status, _, body) = request("POST", &stack.url(JOIN_PATH), &[(k, &v)], Bytes::new()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let body: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(body["error"]["code"], "challenge_reused");

    // The join path takes challenge-bound proofs only.
    let (k, v) = bearer(&audience_proof(Who::NodeRole));
    let (status, _, _) = request("POST", &stack.url(JOIN_PATH), &[(k, &v)], Bytes::new()).await;
    assert!(
        status.is_client_error(),
        "audience proof on the join path: {status}"
    );
}

#[tokio::test]
async fn whoami_through_the_proxy_names_the_verified_identity() {
    let stack = Stack::start().await;
    let me = iam_join_client::whoami(
        &stack.url(""),
        "/v1/iam-join",
        &audience_proof(Who::NodeRole),
        None,
    )
    .await
    .expect("whoami");
    assert_eq!(me.account, "333333333333");
    assert_eq!(me.token.as_deref(), Some("iam-token"));
    assert_eq!(AUDIENCE, "e2e.example.com");
}

#[tokio::test]
async fn forwarding_headers_are_set_and_hop_by_hop_headers_are_dropped() {
    let stack = Stack::start().await;
    let (k, v) = bearer(&audience_proof(Who::Alice));
    let (status, echo) = get_json(
        &stack.url("/fwd"),
        &[
            (k, &v),
            ("connection", "keep-alive, x-hop"),
            ("x-hop", "secret"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-host", "evil.example"),
            ("te", "trailers"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{echo}");
    for gone in [
        "x-hop",
        "keep-alive",
        "proxy-authorization",
        "te",
        "upgrade",
    ] {
        assert!(
            echo["headers"].get(gone).is_none(),
            "{gone} forwarded: {echo}"
        );
    }
    // The peer is not a trusted proxy: its forwarding headers are replaced, not believed.
    assert_eq!(
        echo["headers"]["x-forwarded-for"],
        serde_json::json!(["127.0.0.1"])
    );
    assert_eq!(
        echo["headers"]["x-forwarded-proto"],
        serde_json::json!(["http"])
    );
    assert_eq!(
        echo["headers"]["x-forwarded-host"],
        serde_json::json!([stack.proxy.to_string()])
    );
    // The upstream sees its own authority as Host.
    assert_eq!(
        echo["headers"]["host"],
        serde_json::json!([stack.upstream.addr.to_string()])
    );
}

#[tokio::test]
async fn forwarding_headers_from_a_trusted_proxy_are_kept_and_extended() {
    let stack = Stack::start_with(StackOptions {
        extra_config: "trusted_proxies: [127.0.0.0/8]\n".into(),
        ..StackOptions::default()
    })
    .await;
    let (k, v) = bearer(&audience_proof(Who::Alice));
    let (status, echo) = get_json(
        &stack.url("/fwd"),
        &[
            (k, &v),
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "https"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{echo}");
    assert_eq!(
        echo["headers"]["x-forwarded-for"],
        serde_json::json!(["203.0.113.9, 127.0.0.1"])
    );
    assert_eq!(
        echo["headers"]["x-forwarded-proto"],
        serde_json::json!(["https"])
    );
}

#[tokio::test]
async fn preserve_host_sends_the_clients_host_to_the_upstream() {
    let stack = Stack::start_with(StackOptions {
        upstream_extra: "preserve_host: true".into(),
        ..StackOptions::default()
    })
    .await;
    let (k, v) = bearer(&audience_proof(Who::Alice));
    let (status, echo) = get_json(
        &stack.url("/host"),
        &[(k, &v), ("host", "teleport.example.com")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{echo}");
    assert_eq!(
        echo["headers"]["host"],
        serde_json::json!(["teleport.example.com"])
    );
    assert_eq!(
        echo["headers"]["x-forwarded-host"],
        serde_json::json!(["teleport.example.com"])
    );
}

#[tokio::test]
async fn http2_clients_are_served_and_forwarded_over_http11() {
    let stack = Stack::start().await;
    let client: hyper_util::client::legacy::Client<_, http_body_util::Full<Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build_http();
    let (k, v) = bearer(&audience_proof(Who::Alice));
    let req = http::Request::get(stack.url("/h2"))
        .header(k, v)
        .body(http_body_util::Full::new(Bytes::new()))
        .expect("request");
    let resp = client.request(req).await.expect("h2 request");
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), StatusCode::OK);
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .expect("body")
        .to_bytes();
    let echo: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(echo["version"], "HTTP/1.1");
    assert_eq!(
        echo["headers"]["x-iam-join-account"],
        serde_json::json!(["111111111111"])
    );
}

#[tokio::test]
async fn upstream_down_is_a_502_upstream_unavailable() {
    // A port that was free a moment ago: nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let stack = Stack::start_with(StackOptions {
        upstream_url: Some(format!("http://127.0.0.1:{port}")),
        ..StackOptions::default()
    })
    .await;
    let (k, v) = bearer(&audience_proof(Who::Alice));
    let (status, body) = get_json(&stack.url("/"), &[(k, &v)]).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(body["error"]["code"], "upstream_unavailable");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
}

#[tokio::test]
async fn upstream_slower_than_its_timeout_is_a_504() {
    let stack = Stack::start_with(StackOptions {
        upstream_timeout: "300ms",
        ..StackOptions::default()
    })
    .await;
    let (k, v) = bearer(&audience_proof(Who::Alice));
    // /gate never answers unless released.
    let (status, body) = get_json(&stack.url("/gate"), &[(k, &v)]).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(body["error"]["code"], "upstream_timeout");
}
