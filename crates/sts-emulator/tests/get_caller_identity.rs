//! End-to-end: requests signed with aws-sigv4, sent over loopback with hyper-util's legacy client
//! to an emulator on 127.0.0.1:0, keeping the signed `Host` header.
#![allow(missing_docs, clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sts_emulator::{Emulator, EmulatorHandle, Fault, TestIdentity, default_identities, keys};

const HOST: &str = "sts.us-west-2.amazonaws.com";
const REGION: &str = "us-west-2";
const BODY: &str = "Action=GetCallerIdentity&Version=2011-06-15";
const AUDIENCE_HEADER: &str = "x-iam-join-audience";
const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";

fn alice() -> TestIdentity {
    default_identities()[0].clone()
}

fn node_role() -> TestIdentity {
    default_identities()[1].clone()
}

/// A request as a verifier would forward it: path and query, headers, body.
#[derive(Clone, Debug)]
struct Signed {
    method: &'static str,
    path_and_query: String,
    headers: Vec<(String, String)>,
    body: Bytes,
}

impl Signed {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn set_header(&mut self, name: &str, value: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value.to_owned()));
    }

    fn remove_header(&mut self, name: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }
}

struct SignOptions {
    time: SystemTime,
    region: &'static str,
    body: &'static str,
    presign_expires: Option<Duration>,
}

impl Default for SignOptions {
    fn default() -> Self {
        Self {
            time: SystemTime::now(),
            region: REGION,
            body: BODY,
            presign_expires: None,
        }
    }
}

/// Signs as a workload would, with aws-sigv4's default settings plus a signed audience header.
fn sign_as(creds: aws_credential_types::Credentials, opts: &SignOptions) -> Signed {
    let identity: Identity = creds.into();
    let mut settings = SigningSettings::default();
    let (method, url, body, extra): (&'static str, String, &'static str, Vec<(&str, &str)>) =
        match opts.presign_expires {
            None => (
                "POST",
                format!("https://{HOST}/"),
                opts.body,
                vec![("content-type", FORM), (AUDIENCE_HEADER, "test-aud")],
            ),
            Some(expires) => {
                settings.signature_location = SignatureLocation::QueryParams;
                settings.expires_in = Some(expires);
                (
                    "GET",
                    format!("https://{HOST}/?{}", opts.body),
                    "",
                    vec![(AUDIENCE_HEADER, "test-aud")],
                )
            }
        };
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(opts.region)
        .name("sts")
        .time(opts.time)
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let signable = SignableRequest::new(
        method,
        url.clone(),
        extra.iter().copied(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .unwrap();
    let (instructions, _signature) = sign(signable, &params).unwrap().into_parts();
    let mut request = Request::builder().method(method).uri(&url);
    for (name, value) in &extra {
        request = request.header(*name, *value);
    }
    let mut request = request.body(()).unwrap();
    instructions.apply_to_request_http1x(&mut request);

    let mut headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect();
    headers.push(("host".to_owned(), HOST.to_owned()));
    Signed {
        method,
        path_and_query: request.uri().path_and_query().unwrap().as_str().to_owned(),
        headers,
        body: Bytes::from_static(body.as_bytes()),
    }
}

fn sign_post(id: &TestIdentity) -> Signed {
    sign_as(id.credentials(), &SignOptions::default())
}

fn presign_get(id: &TestIdentity, expires: Duration) -> Signed {
    sign_as(
        id.credentials(),
        &SignOptions {
            presign_expires: Some(expires),
            ..SignOptions::default()
        },
    )
}

struct Answer {
    status: StatusCode,
    content_type: String,
    body: String,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        assert_eq!(self.content_type, "application/json", "{}", self.body);
        serde_json::from_str(&self.body).unwrap()
    }

    fn xml_error_code(&self) -> &str {
        assert_eq!(self.content_type, "text/xml", "{}", self.body);
        let start = self.body.find("<Code>").unwrap() + "<Code>".len();
        let end = self.body.find("</Code>").unwrap();
        &self.body[start..end]
    }
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn send(sts: &EmulatorHandle, req: &Signed) -> Answer {
    send_with(&client(), sts, req).await
}

async fn send_with(
    client: &Client<HttpConnector, Full<Bytes>>,
    sts: &EmulatorHandle,
    req: &Signed,
) -> Answer {
    let mut builder =
        Request::builder()
            .method(req.method)
            .uri(format!("{}{}", sts.url(), req.path_and_query));
    for (name, value) in &req.headers {
        builder = builder.header(name, HeaderValue::from_str(value).unwrap());
    }
    let request = builder.body(Full::new(req.body.clone())).unwrap();
    let response = client.request(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        content_type,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

fn accept_json(mut req: Signed) -> Signed {
    req.set_header("accept", "application/json");
    req
}

async fn assert_xml_error(sts: &EmulatorHandle, req: &Signed, status: StatusCode, code: &str) {
    let answer = send(sts, req).await;
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.xml_error_code(), code, "{}", answer.body);
}

#[tokio::test]
async fn signed_post_for_long_term_key_answers_identity_as_json_when_accept_json() {
    let sts = Emulator::start().await.unwrap();
    let answer = send(&sts, &accept_json(sign_post(&alice()))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let json = answer.json();
    let result = &json["GetCallerIdentityResponse"]["GetCallerIdentityResult"];
    assert_eq!(result["Account"], "111111111111");
    assert_eq!(result["Arn"], "arn:aws:iam::111111111111:user/alice");
    assert_eq!(result["UserId"], "AIDAEMULATORALICE0001");
    let request_id = &json["GetCallerIdentityResponse"]["ResponseMetadata"]["RequestId"];
    assert!(request_id.as_str().is_some_and(|id| !id.is_empty()));
    sts.shutdown().await;
}

#[tokio::test]
async fn signed_post_for_temporary_key_with_session_token_answers_identity_as_xml() {
    let sts = Emulator::start().await.unwrap();
    let req = sign_post(&node_role());
    assert_eq!(
        req.header("x-amz-security-token"),
        Some(keys::NODE_ROLE_SESSION_TOKEN)
    );
    let answer = send(&sts, &req).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.content_type, "text/xml");
    assert!(answer.body.starts_with(
        "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
    ));
    assert!(answer.body.contains(
        "<Arn>arn:aws:sts::333333333333:assumed-role/teleport-node-role/i-0abc123def4567890</Arn>"
    ));
    assert!(
        answer
            .body
            .contains("<UserId>AROAEMULATORNODE00001:i-0abc123def4567890</UserId>")
    );
    assert!(answer.body.contains("<Account>333333333333</Account>"));
    sts.shutdown().await;
}

#[tokio::test]
async fn every_default_identity_is_answered_with_its_own_arn() {
    let sts = Emulator::start().await.unwrap();
    let client = client();
    for id in default_identities() {
        let answer = send_with(&client, &sts, &accept_json(sign_post(&id))).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        let json = answer.json();
        let result = &json["GetCallerIdentityResponse"]["GetCallerIdentityResult"];
        assert_eq!(result["Arn"], id.arn.as_str());
        assert_eq!(result["Account"], id.account.as_str());
        assert_eq!(result["UserId"], id.user_id.as_str());
    }
    sts.shutdown().await;
}

#[tokio::test]
async fn presigned_get_with_session_token_answers_identity() {
    let sts = Emulator::start().await.unwrap();
    let req = presign_get(&node_role(), Duration::from_secs(300));
    assert!(req.path_and_query.contains("X-Amz-Security-Token="));
    assert!(req.path_and_query.contains("X-Amz-Expires=300"));
    let answer = send(&sts, &accept_json(req)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let json = answer.json();
    assert_eq!(
        json["GetCallerIdentityResponse"]["GetCallerIdentityResult"]["Account"],
        "333333333333"
    );
    sts.shutdown().await;
}

#[tokio::test]
async fn presigned_get_for_long_term_key_answers_identity() {
    let sts = Emulator::start().await.unwrap();
    let answer = send(&sts, &presign_get(&alice(), Duration::from_secs(300))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(answer.body.contains("<Account>111111111111</Account>"));
    sts.shutdown().await;
}

#[tokio::test]
async fn signed_header_changed_after_signing_is_signature_does_not_match() {
    let sts = Emulator::start().await.unwrap();
    let mut post = sign_post(&alice());
    post.set_header(AUDIENCE_HEADER, "other-aud");
    assert_xml_error(&sts, &post, StatusCode::FORBIDDEN, "SignatureDoesNotMatch").await;

    let mut get = presign_get(&node_role(), Duration::from_secs(300));
    get.set_header(AUDIENCE_HEADER, "other-aud");
    assert_xml_error(&sts, &get, StatusCode::FORBIDDEN, "SignatureDoesNotMatch").await;
    sts.shutdown().await;
}

#[tokio::test]
async fn signed_header_missing_is_signature_does_not_match() {
    let sts = Emulator::start().await.unwrap();
    let mut post = sign_post(&alice());
    post.remove_header(AUDIENCE_HEADER);
    assert_xml_error(&sts, &post, StatusCode::FORBIDDEN, "SignatureDoesNotMatch").await;
    sts.shutdown().await;
}

#[tokio::test]
async fn body_changed_after_signing_is_signature_does_not_match() {
    let sts = Emulator::start().await.unwrap();
    let mut post = sign_post(&alice());
    post.body = Bytes::from_static(b"Action=GetCallerIdentity&Version=2011-06-15&X=1");
    assert_xml_error(&sts, &post, StatusCode::FORBIDDEN, "SignatureDoesNotMatch").await;
    sts.shutdown().await;
}

#[tokio::test]
async fn host_with_port_appended_is_signature_does_not_match() {
    let sts = Emulator::start().await.unwrap();
    let mut post = sign_post(&alice());
    post.set_header("host", &format!("{HOST}:443"));
    assert_xml_error(&sts, &post, StatusCode::FORBIDDEN, "SignatureDoesNotMatch").await;
    sts.shutdown().await;
}

#[tokio::test]
async fn wrong_secret_is_signature_does_not_match() {
    let sts = Emulator::start().await.unwrap();
    let mut id = alice();
    id.secret_access_key = "WrongSecretWrongSecretWrongSecretWrong000".to_owned();
    assert_xml_error(
        &sts,
        &sign_post(&id),
        StatusCode::FORBIDDEN,
        "SignatureDoesNotMatch",
    )
    .await;
    let mut id = node_role();
    id.secret_access_key = "WrongSecretWrongSecretWrongSecretWrong000".to_owned();
    assert_xml_error(
        &sts,
        &presign_get(&id, Duration::from_secs(300)),
        StatusCode::FORBIDDEN,
        "SignatureDoesNotMatch",
    )
    .await;
    sts.shutdown().await;
}

#[tokio::test]
async fn unknown_access_key_is_invalid_client_token_id_in_json_when_accept_json() {
    let sts = Emulator::start().await.unwrap();
    let mut id = alice();
    id.access_key_id = "AKIAUNKNOWNKEY000001".to_owned();
    let answer = send(&sts, &accept_json(sign_post(&id))).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    let json = answer.json();
    assert_eq!(json["Error"]["Code"], "InvalidClientTokenId");
    assert_eq!(json["Error"]["Type"], "Sender");
    assert!(json["Error"]["Message"].is_string());
    assert!(json["RequestId"].is_string());
    sts.shutdown().await;
}

#[tokio::test]
async fn date_twenty_minutes_old_is_signature_expired() {
    let sts = Emulator::start().await.unwrap();
    let req = sign_as(
        alice().credentials(),
        &SignOptions {
            time: SystemTime::now() - Duration::from_secs(20 * 60),
            ..SignOptions::default()
        },
    );
    let answer = send(&sts, &req).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.xml_error_code(), "SignatureDoesNotMatch");
    assert!(
        answer.body.contains("Signature expired: "),
        "{}",
        answer.body
    );
    sts.shutdown().await;
}

#[tokio::test]
async fn date_twenty_minutes_ahead_is_signature_not_yet_current() {
    let sts = Emulator::start().await.unwrap();
    let req = sign_as(
        alice().credentials(),
        &SignOptions {
            time: SystemTime::now() + Duration::from_secs(20 * 60),
            ..SignOptions::default()
        },
    );
    let answer = send(&sts, &req).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.xml_error_code(), "SignatureDoesNotMatch");
    assert!(answer.body.contains("Signature not yet current: "));
    sts.shutdown().await;
}

#[tokio::test]
async fn presigned_get_past_its_expiry_is_access_denied() {
    let sts = Emulator::start().await.unwrap();
    let req = sign_as(
        node_role().credentials(),
        &SignOptions {
            time: SystemTime::now() - Duration::from_secs(10 * 60),
            presign_expires: Some(Duration::from_secs(300)),
            ..SignOptions::default()
        },
    );
    let answer = send(&sts, &req).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.xml_error_code(), "AccessDenied");
    assert!(answer.body.contains("Request has expired"));
    sts.shutdown().await;
}

#[tokio::test]
async fn clock_offset_shifts_the_emulators_now() {
    let sts = Emulator::start().await.unwrap();
    let req = sign_post(&alice());
    sts.set_clock_offset(20 * 60);
    let answer = send(&sts, &req).await;
    assert_eq!(answer.xml_error_code(), "SignatureDoesNotMatch");
    assert!(answer.body.contains("Signature expired: "));
    sts.set_clock_offset(0);
    assert_eq!(send(&sts, &req).await.status, StatusCode::OK);
    sts.shutdown().await;
}

#[tokio::test]
async fn wrong_or_missing_session_token_is_invalid_client_token_id() {
    let sts = Emulator::start().await.unwrap();
    // Signed with a token other than the identity's: the signature would match, the token not.
    let mut wrong = node_role();
    wrong.session_token = Some("NotTheRightSessionToken".to_owned());
    let req = sign_post(&wrong);
    assert_xml_error(&sts, &req, StatusCode::FORBIDDEN, "InvalidClientTokenId").await;
    let req = presign_get(&wrong, Duration::from_secs(300));
    assert_xml_error(&sts, &req, StatusCode::FORBIDDEN, "InvalidClientTokenId").await;

    let mut missing = node_role();
    missing.session_token = None;
    let req = sign_post(&missing);
    assert_xml_error(&sts, &req, StatusCode::FORBIDDEN, "InvalidClientTokenId").await;

    // A long-term key presenting a session token.
    let mut extra = alice();
    extra.session_token = Some("UnexpectedToken".to_owned());
    let req = sign_post(&extra);
    assert_xml_error(&sts, &req, StatusCode::FORBIDDEN, "InvalidClientTokenId").await;
    sts.shutdown().await;
}

#[tokio::test]
async fn expired_session_is_expired_token() {
    let sts = Emulator::start().await.unwrap();
    assert!(sts.expire_session(keys::NODE_ROLE_ACCESS_KEY_ID));
    let req = sign_post(&node_role());
    assert_xml_error(&sts, &req, StatusCode::FORBIDDEN, "ExpiredToken").await;
    sts.add_identity(node_role());
    assert_eq!(send(&sts, &req).await.status, StatusCode::OK);
    sts.shutdown().await;
}

#[tokio::test]
async fn credential_scope_for_another_region_than_the_host_is_rejected() {
    let sts = Emulator::start().await.unwrap();
    let req = sign_as(
        alice().credentials(),
        &SignOptions {
            region: "us-east-1",
            ..SignOptions::default()
        },
    );
    assert_xml_error(&sts, &req, StatusCode::FORBIDDEN, "SignatureDoesNotMatch").await;
    sts.shutdown().await;
}

#[tokio::test]
async fn other_action_is_invalid_action() {
    let sts = Emulator::start().await.unwrap();
    let req = sign_as(
        alice().credentials(),
        &SignOptions {
            body: "Action=AssumeRole&Version=2011-06-15",
            ..SignOptions::default()
        },
    );
    assert_xml_error(&sts, &req, StatusCode::BAD_REQUEST, "InvalidAction").await;
    let req = sign_as(
        alice().credentials(),
        &SignOptions {
            body: "Action=GetCallerIdentity&Version=2099-01-01",
            ..SignOptions::default()
        },
    );
    assert_xml_error(&sts, &req, StatusCode::BAD_REQUEST, "InvalidAction").await;
    sts.shutdown().await;
}

#[tokio::test]
async fn request_without_authentication_is_missing_authentication_token() {
    let sts = Emulator::start().await.unwrap();
    let mut req = sign_post(&alice());
    req.remove_header("authorization");
    assert_xml_error(
        &sts,
        &req,
        StatusCode::FORBIDDEN,
        "MissingAuthenticationToken",
    )
    .await;
    sts.shutdown().await;
}

#[tokio::test]
async fn malformed_authorization_header_is_a_client_error() {
    let sts = Emulator::start().await.unwrap();
    let mut req = sign_post(&alice());
    req.set_header("authorization", "AWS4-HMAC-SHA256 Credential=, Signature");
    assert_xml_error(&sts, &req, StatusCode::BAD_REQUEST, "IncompleteSignature").await;
    sts.shutdown().await;
}

#[tokio::test]
async fn added_identity_is_accepted() {
    let sts = Emulator::start_with(Vec::new(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let req = sign_post(&alice());
    assert_xml_error(&sts, &req, StatusCode::FORBIDDEN, "InvalidClientTokenId").await;
    sts.add_identity(alice());
    assert_eq!(send(&sts, &req).await.status, StatusCode::OK);
    sts.shutdown().await;
}

#[tokio::test]
async fn throttle_fault_is_400_throttling_and_server_error_fault_is_500() {
    let sts = Emulator::start().await.unwrap();
    let req = sign_post(&alice());
    sts.set_fault(Fault::Throttle);
    let answer = send(&sts, &req).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.xml_error_code(), "Throttling");
    assert!(answer.body.contains("Rate exceeded"));

    sts.set_fault(Fault::ServerError);
    let answer = send(&sts, &accept_json(req.clone())).await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    let json = answer.json();
    assert_eq!(json["Error"]["Code"], "InternalFailure");
    assert_eq!(json["Error"]["Type"], "Receiver");

    sts.set_fault(Fault::None);
    assert_eq!(send(&sts, &req).await.status, StatusCode::OK);
    sts.shutdown().await;
}

#[tokio::test]
async fn latency_is_added_and_the_answer_still_arrives() {
    let sts = Emulator::builder()
        .latency(Duration::from_millis(20))
        .start()
        .await
        .unwrap();
    assert_eq!(
        send(&sts, &sign_post(&alice())).await.status,
        StatusCode::OK
    );
    sts.set_latency(Duration::from_millis(50));
    assert_eq!(
        send(&sts, &sign_post(&alice())).await.status,
        StatusCode::OK
    );
    sts.shutdown().await;
}

#[tokio::test]
async fn call_counter_counts_every_request_including_failures() {
    let sts = Emulator::start().await.unwrap();
    let client = client();
    assert_eq!(sts.calls(), 0);
    send_with(&client, &sts, &sign_post(&alice())).await;
    let mut bad = sign_post(&alice());
    bad.set_header(AUDIENCE_HEADER, "changed");
    send_with(&client, &sts, &bad).await;
    sts.set_fault(Fault::Throttle);
    send_with(&client, &sts, &sign_post(&alice())).await;
    assert_eq!(sts.calls(), 3);
    sts.reset_calls();
    assert_eq!(sts.calls(), 0);
    sts.shutdown().await;
}

/// Waits (bounded) until the emulator has counted `n` calls.
async fn wait_for_calls(sts: &EmulatorHandle, n: u64) {
    for _ in 0..1000 {
        if sts.calls() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("emulator never saw {n} calls");
}

#[tokio::test]
async fn hang_fault_holds_the_answer_until_the_fault_is_cleared() {
    let sts = Emulator::start().await.unwrap();
    sts.set_fault(Fault::Hang);
    let pending = tokio::spawn({
        let sts = sts.clone();
        async move { send(&sts, &sign_post(&alice())).await.status }
    });
    wait_for_calls(&sts, 1).await;
    assert!(!pending.is_finished());
    sts.set_fault(Fault::None);
    assert_eq!(pending.await.unwrap(), StatusCode::OK);
    sts.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_connections_held_by_hang() {
    let sts = Emulator::start().await.unwrap();
    sts.set_fault(Fault::Hang);
    let req = sign_post(&alice());
    let url = format!("{}/", sts.url());
    let pending = tokio::spawn(async move {
        let mut builder = Request::builder().method("POST").uri(url);
        for (name, value) in &req.headers {
            builder = builder.header(name, value);
        }
        client()
            .request(builder.body(Full::new(req.body.clone())).unwrap())
            .await
    });
    wait_for_calls(&sts, 1).await;
    let addr = sts.addr();
    sts.shutdown().await;
    assert!(pending.await.unwrap().is_err());
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn oversized_body_is_refused() {
    let sts = Emulator::start().await.unwrap();
    let mut req = sign_post(&alice());
    req.body = Bytes::from(vec![b'a'; sts_emulator::MAX_BODY_BYTES + 1]);
    let answer = send(&sts, &req).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    sts.shutdown().await;
}

#[tokio::test]
async fn other_paths_are_not_found_and_not_counted() {
    let sts = Emulator::start().await.unwrap();
    let mut req = sign_post(&alice());
    req.path_and_query = "/other".to_owned();
    assert_xml_error(&sts, &req, StatusCode::NOT_FOUND, "NotFound").await;
    assert_eq!(sts.calls(), 0);
    sts.shutdown().await;
}
