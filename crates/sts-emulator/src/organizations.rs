//! A loopback AWS Organizations for organization join rules: `DescribeAccount` and
//! `ListParents` over a configurable tree, in the JSON 1.1 protocol the SDK speaks
//! (`POST /`, `Content-Type: application/x-amz-json-1.1`,
//! `X-Amz-Target: AWSOrganizationsV20161128.<Operation>`), with SigV4 verified exactly as for STS
//! (service `organizations`, region `us-east-1` on the real host names).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use sts_emulator::{Emulator, OrgFault, OrgTree};
//!
//! let aws = Emulator::start().await?;
//! aws.set_org_tree(
//!     OrgTree::new("o-a1b2c3d4e5", "111111111111", "r-ab12")
//!         .with_ou("ou-ab12-11111111", "r-ab12")
//!         .with_account("444444444444", "ou-ab12-11111111"),
//! );
//! aws.set_org_fault(OrgFault::TooManyRequests); // every answer: 400 TooManyRequestsException
//! assert_eq!(aws.org_calls(), 0);
//! aws.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! | Situation | Status | `__type` |
//! |---|---|---|
//! | [`OrgFault::Down`] | 500 | `ServiceException` |
//! | [`OrgFault::TooManyRequests`] | 400 | `TooManyRequestsException` |
//! | SigV4 failures (as for STS) | 400 | `MissingAuthenticationTokenException`, `IncompleteSignatureException`, `UnrecognizedClientException`, `ExpiredTokenException`, `InvalidSignatureException`, `AccessDeniedException` |
//! | no tree set | 400 | `AWSOrganizationsNotInUseException` |
//! | unknown account / child | 400 | `AccountNotFoundException` / `ChildNotFoundException` |
//! | another operation, a body that is not the operation's JSON | 400 | `InvalidAction` / `SerializationException` |

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;

use crate::error::{StsError, StsErrorCode};
use crate::server::{EmulatorHandle, MAX_BODY_BYTES};
use crate::verify::{KeyRecord, ReceivedRequest, verify_sigv4};

/// The `X-Amz-Target` prefix of every Organizations operation.
const TARGET_PREFIX: &str = "AWSOrganizationsV20161128.";
const CONTENT_TYPE_JSON_1_1: &str = "application/x-amz-json-1.1";
const SERVICE: &str = "organizations";

/// A failure injected into every Organizations answer.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OrgFault {
    /// Verify and answer normally.
    #[default]
    None,
    /// Answer 500 `ServiceException`, as when the service fails.
    Down,
    /// Answer 400 `TooManyRequestsException`, as Organizations does over its request rate.
    TooManyRequests,
}

/// An organization: its ID, management account, root, and which OU or root each OU and
/// account sits in.
#[derive(Clone, Debug)]
pub struct OrgTree {
    organization_id: String,
    management_account: String,
    root_id: String,
    /// Child (account or OU ID) → parent (OU or root ID).
    parents: HashMap<String, String>,
}

impl OrgTree {
    /// An organization with only its root.
    pub fn new(
        organization_id: impl Into<String>,
        management_account: impl Into<String>,
        root_id: impl Into<String>,
    ) -> Self {
        Self {
            organization_id: organization_id.into(),
            management_account: management_account.into(),
            root_id: root_id.into(),
            parents: HashMap::new(),
        }
    }

    /// Adds (or moves) the OU `ou_id` under `parent_id` (an OU or the root).
    #[must_use]
    pub fn with_ou(mut self, ou_id: impl Into<String>, parent_id: impl Into<String>) -> Self {
        self.parents.insert(ou_id.into(), parent_id.into());
        self
    }

    /// Adds (or moves) the account `account_id` under `parent_id` (an OU or the root).
    #[must_use]
    pub fn with_account(
        mut self,
        account_id: impl Into<String>,
        parent_id: impl Into<String>,
    ) -> Self {
        self.parents.insert(account_id.into(), parent_id.into());
        self
    }

    fn is_account(&self, id: &str) -> bool {
        !id.starts_with("ou-") && self.parents.contains_key(id)
    }
}

/// The Organizations part of the emulator's state.
#[derive(Debug, Default)]
pub(crate) struct OrgState {
    tree: RwLock<Option<OrgTree>>,
    calls: AtomicU64,
    fault: RwLock<OrgFault>,
}

impl EmulatorHandle {
    /// Serves `tree` to Organizations requests from now on.
    pub fn set_org_tree(&self, tree: OrgTree) {
        *self
            .org_state()
            .tree
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(tree);
    }

    /// Injects `fault` into every Organizations answer from now on.
    pub fn set_org_fault(&self, fault: OrgFault) {
        *self
            .org_state()
            .fault
            .write()
            .unwrap_or_else(PoisonError::into_inner) = fault;
    }

    /// Organizations requests received, whatever their outcome.
    pub fn org_calls(&self) -> u64 {
        self.org_state().calls.load(Ordering::SeqCst)
    }
}

/// Whether a request is for Organizations rather than STS: its `X-Amz-Target` names an
/// Organizations operation.
pub(crate) fn is_organizations_request(headers: &HeaderMap) -> bool {
    headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with(TARGET_PREFIX))
}

/// Answers one Organizations request.
pub(crate) async fn handle(
    req: Request<Incoming>,
    state: &OrgState,
    keys: &RwLock<HashMap<String, KeyRecord>>,
    now: OffsetDateTime,
    request_id: &str,
) -> Response<Full<Bytes>> {
    state.calls.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "SerializationException",
                "The request body could not be read",
                request_id,
            );
        }
    };
    let fault = *state.fault.read().unwrap_or_else(PoisonError::into_inner);
    match fault {
        OrgFault::Down => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ServiceException",
                "AWS Organizations can't complete your request because of an internal service \
                 error. Try again later.",
                request_id,
            );
        }
        OrgFault::TooManyRequests => {
            return error(
                StatusCode::BAD_REQUEST,
                "TooManyRequestsException",
                "You have sent too many requests in too short a period of time.",
                request_id,
            );
        }
        OrgFault::None => {}
    }

    let received = ReceivedRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        authority: parts.uri.authority().map(http::uri::Authority::as_str),
        headers: &parts.headers,
        body: &body,
    };
    let verified = {
        let keys = keys.read().unwrap_or_else(PoisonError::into_inner);
        verify_sigv4(&received, &keys, now, SERVICE, region_of_organizations_host).map(|_| ())
    };
    if let Err(err) = verified {
        let (status, kind) = sigv4_error(&err);
        return error(status, kind, &err.message, request_id);
    }

    let content_type = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if parts.method != http::Method::POST || content_type != CONTENT_TYPE_JSON_1_1 {
        return error(
            StatusCode::BAD_REQUEST,
            "SerializationException",
            "Organizations expects POST with Content-Type application/x-amz-json-1.1",
            request_id,
        );
    }
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix(TARGET_PREFIX))
        .unwrap_or_default()
        .to_owned();
    let tree = state.tree.read().unwrap_or_else(PoisonError::into_inner);
    let Some(tree) = tree.as_ref() else {
        return error(
            StatusCode::BAD_REQUEST,
            "AWSOrganizationsNotInUseException",
            "Your account is not a member of an organization.",
            request_id,
        );
    };
    let answer = match target.as_str() {
        "DescribeAccount" => describe_account(tree, &body),
        "ListParents" => list_parents(tree, &body),
        _ => Err(Failure::new(
            "InvalidAction",
            "The emulator answers DescribeAccount and ListParents only",
        )),
    };
    match answer {
        Ok(value) => {
            let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
            set_headers(&mut response, request_id);
            response
        }
        Err(failure) => error(
            StatusCode::BAD_REQUEST,
            failure.kind,
            &failure.message,
            request_id,
        ),
    }
}

/// A 400 answer's `__type` and message.
struct Failure {
    kind: &'static str,
    message: String,
}

impl Failure {
    fn new(kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, Failure> {
    serde_json::from_slice(body).map_err(|e| Failure::new("SerializationException", e.to_string()))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeAccountInput {
    account_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListParentsInput {
    child_id: String,
    #[serde(default)]
    #[expect(dead_code, reason = "every answer is one page")]
    next_token: Option<String>,
    #[serde(default)]
    #[expect(dead_code, reason = "every answer is one page")]
    max_results: Option<u32>,
}

fn describe_account(tree: &OrgTree, body: &[u8]) -> Result<serde_json::Value, Failure> {
    let input: DescribeAccountInput = parse(body)?;
    if !tree.is_account(&input.account_id) {
        return Err(Failure::new(
            "AccountNotFoundException",
            "You specified an account that doesn't exist.",
        ));
    }
    let id = &input.account_id;
    Ok(json!({
        "Account": {
            "Id": id,
            "Arn": format!(
                "arn:aws:organizations::{}:account/{}/{id}",
                tree.management_account, tree.organization_id
            ),
            "Email": format!("{id}@example.com"),
            "Name": format!("account-{id}"),
            "Status": "ACTIVE",
            "JoinedMethod": "CREATED",
            "JoinedTimestamp": 1_700_000_000,
        }
    }))
}

fn list_parents(tree: &OrgTree, body: &[u8]) -> Result<serde_json::Value, Failure> {
    let input: ListParentsInput = parse(body)?;
    let Some(parent) = tree.parents.get(&input.child_id) else {
        return Err(Failure::new(
            "ChildNotFoundException",
            "We can't find an organizational unit (OU) or AWS account with the ChildId that \
             you specified.",
        ));
    };
    let kind = if *parent == tree.root_id {
        "ROOT"
    } else {
        "ORGANIZATIONAL_UNIT"
    };
    Ok(json!({ "Parents": [{ "Id": parent, "Type": kind }] }))
}

/// `organizations.us-east-1.amazonaws.com` (and the FIPS host) sign for `us-east-1`; any other
/// host (an override URL's) is not checked.
fn region_of_organizations_host(host: &str) -> Option<String> {
    matches!(
        host,
        "organizations.us-east-1.amazonaws.com" | "organizations-fips.us-east-1.amazonaws.com"
    )
    .then(|| "us-east-1".to_owned())
}

/// The JSON-protocol spelling of a SigV4 failure found by the STS checks.
fn sigv4_error(err: &StsError) -> (StatusCode, &'static str) {
    let kind = match err.code {
        StsErrorCode::MissingAuthenticationToken => "MissingAuthenticationTokenException",
        StsErrorCode::IncompleteSignature => "IncompleteSignatureException",
        StsErrorCode::InvalidClientTokenId => "UnrecognizedClientException",
        StsErrorCode::ExpiredToken => "ExpiredTokenException",
        StsErrorCode::AccessDenied => "AccessDeniedException",
        _ => "InvalidSignatureException",
    };
    (StatusCode::BAD_REQUEST, kind)
}

fn error(status: StatusCode, kind: &str, message: &str, request_id: &str) -> Response<Full<Bytes>> {
    let body = json!({ "__type": kind, "message": message });
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    set_headers(&mut response, request_id);
    if let Ok(value) = HeaderValue::from_str(kind) {
        response.headers_mut().insert("x-amzn-errortype", value);
    }
    response
}

fn set_headers(response: &mut Response<Full<Bytes>>, request_id: &str) {
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(CONTENT_TYPE_JSON_1_1),
    );
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", value);
    }
}
