//! The emulator's AWS Organizations: JSON 1.1 requests signed with aws-sigv4 for the
//! `organizations` service, sent over loopback keeping the signed `Host`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::time::SystemTime;

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use sts_emulator::{Emulator, EmulatorHandle, OrgFault, OrgTree, default_identities};

const HOST: &str = "organizations.us-east-1.amazonaws.com";
const JSON_1_1: &str = "application/x-amz-json-1.1";

fn tree() -> OrgTree {
    OrgTree::new("o-a1b2c3d4e5", "111111111111", "r-ab12")
        .with_ou("ou-ab12-11111111", "r-ab12")
        .with_ou("ou-ab12-22222222", "ou-ab12-11111111")
        .with_account("444444444444", "ou-ab12-22222222")
        .with_account("555555555555", "r-ab12")
}

struct Call {
    operation: &'static str,
    body: String,
    service: &'static str,
    secret: Option<&'static str>,
}

impl Call {
    fn new(operation: &'static str, body: &str) -> Self {
        Self {
            operation,
            body: body.to_owned(),
            service: "organizations",
            secret: None,
        }
    }
}

/// Signs `call` as the AWS SDK would and sends it; returns the status and the JSON body.
async fn send(aws: &EmulatorHandle, call: Call) -> (StatusCode, Value) {
    let identity = default_identities()[0].clone();
    let mut creds = identity.credentials();
    if let Some(secret) = call.secret {
        creds = aws_credential_types::Credentials::new(
            creds.access_key_id(),
            secret,
            creds.session_token().map(str::to_owned),
            None,
            "test",
        );
    }
    let target = format!("AWSOrganizationsV20161128.{}", call.operation);
    let headers = [
        ("host", HOST),
        ("content-type", JSON_1_1),
        ("x-amz-target", target.as_str()),
    ];
    let signing_identity: Identity = creds.into();
    let params = v4::SigningParams::builder()
        .identity(&signing_identity)
        .region("us-east-1")
        .name(call.service)
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let url = format!("https://{HOST}/");
    let signable = SignableRequest::new(
        "POST",
        &url,
        headers.iter().copied(),
        SignableBody::Bytes(call.body.as_bytes()),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut builder = Request::post(format!("{}/", aws.url()));
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    let mut request = builder.body(Full::new(Bytes::from(call.body))).unwrap();
    instructions.apply_to_request_http1x(&mut request);
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let response = client.request(request).await.unwrap();
    let status = response.status();
    assert_eq!(response.headers()["content-type"], JSON_1_1);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn describe_account_and_list_parents_walk_the_tree_to_the_root() {
    let aws = Emulator::start().await.unwrap();
    aws.set_org_tree(tree());

    let (status, body) = send(
        &aws,
        Call::new("DescribeAccount", r#"{"AccountId":"444444444444"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["Account"]["Id"], "444444444444");
    assert_eq!(
        body["Account"]["Arn"],
        "arn:aws:organizations::111111111111:account/o-a1b2c3d4e5/444444444444"
    );

    let mut path = Vec::new();
    let mut child = "444444444444".to_owned();
    for _ in 0..5 {
        let (status, body) = send(
            &aws,
            Call::new("ListParents", &format!(r#"{{"ChildId":"{child}"}}"#)),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let parent = &body["Parents"][0];
        path.push(format!(
            "{}:{}",
            parent["Type"].as_str().unwrap(),
            parent["Id"].as_str().unwrap()
        ));
        if parent["Type"] == "ROOT" {
            break;
        }
        child = parent["Id"].as_str().unwrap().to_owned();
    }
    assert_eq!(
        path,
        [
            "ORGANIZATIONAL_UNIT:ou-ab12-22222222",
            "ORGANIZATIONAL_UNIT:ou-ab12-11111111",
            "ROOT:r-ab12"
        ]
    );
    assert_eq!(aws.org_calls(), 4);
    assert_eq!(aws.calls(), 0, "Organizations calls are not STS calls");
    aws.shutdown().await;
}

#[tokio::test]
async fn unknown_accounts_and_children_get_organizations_errors() {
    let aws = Emulator::start().await.unwrap();
    let (status, body) = send(
        &aws,
        Call::new("DescribeAccount", r#"{"AccountId":"444444444444"}"#),
    )
    .await;
    assert_eq!(
        (status, body["__type"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("AWSOrganizationsNotInUseException")
        )
    );

    aws.set_org_tree(tree());
    for (operation, body, expected) in [
        (
            "DescribeAccount",
            r#"{"AccountId":"999999999999"}"#,
            "AccountNotFoundException",
        ),
        (
            "DescribeAccount",
            r#"{"AccountId":"ou-ab12-11111111"}"#,
            "AccountNotFoundException",
        ),
        (
            "ListParents",
            r#"{"ChildId":"999999999999"}"#,
            "ChildNotFoundException",
        ),
        (
            "DescribeAccount",
            r#"{"Account":"1"}"#,
            "SerializationException",
        ),
        ("ListAccounts", "{}", "InvalidAction"),
    ] {
        let (status, answer) = send(&aws, Call::new(operation, body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{operation} {body}");
        assert_eq!(answer["__type"], expected, "{operation} {body}: {answer}");
    }
    aws.shutdown().await;
}

#[tokio::test]
async fn signatures_are_verified_as_for_sts() {
    let aws = Emulator::start().await.unwrap();
    aws.set_org_tree(tree());
    let body = r#"{"AccountId":"444444444444"}"#;

    let mut wrong_secret = Call::new("DescribeAccount", body);
    wrong_secret.secret = Some("not-the-secret-key-at-all-0000000000000000");
    let (status, answer) = send(&aws, wrong_secret).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["__type"], "InvalidSignatureException", "{answer}");

    let mut signed_for_sts = Call::new("DescribeAccount", body);
    signed_for_sts.service = "sts";
    let (status, answer) = send(&aws, signed_for_sts).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["__type"], "InvalidSignatureException", "{answer}");
    assert_eq!(aws.org_calls(), 2);
    aws.shutdown().await;
}

#[tokio::test]
async fn fault_knobs_answer_throttled_or_down_until_cleared() {
    let aws = Emulator::start().await.unwrap();
    aws.set_org_tree(tree());
    let body = r#"{"AccountId":"444444444444"}"#;

    aws.set_org_fault(OrgFault::TooManyRequests);
    let (status, answer) = send(&aws, Call::new("DescribeAccount", body)).await;
    assert_eq!(
        (status, answer["__type"].as_str()),
        (StatusCode::BAD_REQUEST, Some("TooManyRequestsException"))
    );

    aws.set_org_fault(OrgFault::Down);
    let (status, answer) = send(&aws, Call::new("DescribeAccount", body)).await;
    assert_eq!(
        (status, answer["__type"].as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, Some("ServiceException"))
    );

    aws.set_org_fault(OrgFault::None);
    let (status, _) = send(&aws, Call::new("DescribeAccount", body)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(aws.org_calls(), 3);
    aws.shutdown().await;
}
