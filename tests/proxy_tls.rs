//! TLS on both sides of the proxy: the listener (rustls, ALPN h2 and http/1.1) and an https
//! upstream verified with a custom CA and a server-name override.

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use iam_join_e2e::{
    Stack, StackOptions, Who, audience_proof, bearer, get_json, test_client_tls, tls_fixture,
};
use serde_json::Value;

fn tls_listener() -> String {
    format!(
        "tls: {{cert: \"{}\", key: \"{}\"}}\n",
        tls_fixture("server.pem").display(),
        tls_fixture("server.key").display()
    )
}

async fn https_get(
    url: &str,
    http2: bool,
    headers: &[(&str, &str)],
) -> (StatusCode, http::Version, Value) {
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(test_client_tls(&[]))
        .https_only();
    let connector = if http2 {
        builder.enable_all_versions().build()
    } else {
        builder.enable_http1().build()
    };
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let mut req = http::Request::get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = tokio::time::timeout(
        iam_join_e2e::PATIENCE,
        client.request(req.body(Full::new(Bytes::new())).expect("request")),
    )
    .await
    .expect("in time")
    .expect("https request");
    let (status, version) = (resp.status(), resp.version());
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        version,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn tls_listener_serves_http2_and_http11_and_tells_the_upstream_it_was_https() {
    let stack = Stack::start_with(StackOptions {
        extra_config: tls_listener(),
        ..StackOptions::default()
    })
    .await;
    let url = format!("https://127.0.0.1:{}/over-tls", stack.proxy.port());
    let (k, v) = bearer(&audience_proof(Who::NodeRole));
    for http2 in [true, false] {
        let (status, version, echo) = https_get(&url, http2, &[(k, &v)]).await;
        assert_eq!(status, StatusCode::OK, "{echo}");
        assert_eq!(
            version,
            if http2 {
                http::Version::HTTP_2
            } else {
                http::Version::HTTP_11
            }
        );
        assert_eq!(
            echo["headers"]["x-forwarded-proto"],
            serde_json::json!(["https"])
        );
        assert_eq!(
            echo["headers"]["x-iam-join-account"],
            serde_json::json!(["333333333333"])
        );
    }
}

#[tokio::test]
async fn https_upstream_is_verified_with_the_configured_ca_and_server_name() {
    let stack = Stack::start_with(StackOptions {
        upstream_tls: true,
        upstream_extra: format!(
            "sni: upstream.test, ca_file: \"{}\"",
            tls_fixture("ca.pem").display()
        ),
        ..StackOptions::default()
    })
    .await;
    let (k, v) = bearer(&audience_proof(Who::Alice));
    let (status, echo) = get_json(&stack.url("/to-https"), &[(k, &v)]).await;
    assert_eq!(status, StatusCode::OK, "{echo}");
    assert_eq!(echo["path"], "/to-https");
    assert_eq!(
        echo["headers"]["x-iam-join-account"],
        serde_json::json!(["111111111111"])
    );
}

#[tokio::test]
async fn https_upstream_with_a_certificate_for_another_name_is_a_502() {
    let stack = Stack::start_with(StackOptions {
        upstream_tls: true,
        upstream_extra: format!(
            "sni: other.test, ca_file: \"{}\"",
            tls_fixture("ca.pem").display()
        ),
        ..StackOptions::default()
    })
    .await;
    let (k, v) = bearer(&audience_proof(Who::Alice));
    let (status, body) = get_json(&stack.url("/"), &[(k, &v)]).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["error"]["code"], "upstream_unavailable");
}

#[tokio::test]
async fn https_upstream_signed_by_an_unknown_ca_is_a_502_with_the_default_roots() {
    let stack = Stack::start_with(StackOptions {
        upstream_tls: true,
        ..StackOptions::default()
    })
    .await;
    let (k, v) = bearer(&audience_proof(Who::Alice));
    let (status, body) = get_json(&stack.url("/"), &[(k, &v)]).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["error"]["code"], "upstream_unavailable");
}
