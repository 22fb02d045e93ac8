//! Organization rules end to end: `AwsOrgLookup` (the AWS SDK) against the sts-emulator's
//! Organizations (SigV4 verified), behind `CachedOrgLookup`, inside the layer.
#![cfg(feature = "organizations")]
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::future::join_all;
use http::StatusCode;
use http_body_util::Full;
use iam_join_client::{Binding, ProofBuilder, SigningForm, sts_endpoint};
use iam_join_core::policy::{OrgInfo, TokenPolicy};
use iam_join_testkit::http::{Reply, request, send};
use iam_join_testkit::identities::{alice, bob, node, other_account};
use iam_join_tower::organizations::{AwsOrgLookup, CachedOrgLookup, OrgLookup};
use iam_join_tower::{IamJoinLayer, RateLimits, TOKEN_HEADER};
use sts_emulator::{Emulator, EmulatorHandle, OrgFault, OrgTree, TestIdentity};

const AUDIENCE: &str = "teleport.example.com";
const ORG: &str = "o-a1b2c3d4e5";
const ROOT: &str = "r-ab12";
const OU_PARENT: &str = "ou-ab12-11111111";
const OU_CHILD: &str = "ou-ab12-22222222";

/// alice's 111111111111 is the management account, under the root; node's 333333333333 sits in
/// the child OU; other_account's 444444444444 directly in the parent OU; bob's 222222222222 is
/// outside the organization.
fn tree() -> OrgTree {
    OrgTree::new(ORG, "111111111111", ROOT)
        .with_ou(OU_PARENT, ROOT)
        .with_ou(OU_CHILD, OU_PARENT)
        .with_account("111111111111", ROOT)
        .with_account("333333333333", OU_CHILD)
        .with_account("444444444444", OU_PARENT)
}

const POLICY: &str = r#"
kind: token
version: v2
metadata: {name: org-only}
spec:
  roles: [Node]
  join_method: iam
  allow:
    - aws_organization_id: o-a1b2c3d4e5
---
kind: token
version: v2
metadata: {name: ou-include}
spec:
  roles: [Node]
  join_method: iam
  allow:
    - aws_organization_id: o-a1b2c3d4e5
      aws_organizational_units:
        include: [ou-ab12-11111111]
---
kind: token
version: v2
metadata: {name: ou-exclude-child}
spec:
  roles: [Node]
  join_method: iam
  allow:
    - aws_organization_id: o-a1b2c3d4e5
      aws_organizational_units:
        include: [ou-ab12-11111111]
        exclude: [ou-ab12-22222222]
---
kind: token
version: v2
metadata: {name: account-or-org}
spec:
  roles: [Node]
  join_method: iam
  allow:
    - aws_account: "111111111111"
    - aws_organization_id: o-a1b2c3d4e5
"#;

async fn emulator() -> EmulatorHandle {
    let aws = Emulator::start().await.unwrap();
    aws.set_org_tree(tree());
    aws
}

/// The SDK client, signed with alice's key (the emulator checks the signature).
fn aws_lookup(aws: &EmulatorHandle) -> AwsOrgLookup {
    AwsOrgLookup::with_credentials(&aws.url(), "us-east-1", alice().credentials())
}

fn cached(aws: &EmulatorHandle) -> Arc<CachedOrgLookup> {
    Arc::new(CachedOrgLookup::with_settings(
        Arc::new(aws_lookup(aws)),
        Duration::from_secs(600),
        Duration::from_secs(60),
        1000,
    ))
}

fn layer(aws: &EmulatorHandle, orgs: Arc<dyn OrgLookup>) -> IamJoinLayer {
    IamJoinLayer::builder()
        .audience(AUDIENCE)
        .policy(TokenPolicy::from_yaml_str(POLICY, "org-policy").unwrap())
        .sts_override_all(aws.url())
        .sts_timeouts(Duration::from_secs(1), Duration::from_secs(2))
        .rate_limits(RateLimits::none())
        .organizations(orgs)
        .build()
        .unwrap()
}

fn proof(id: &TestIdentity) -> String {
    ProofBuilder::new(
        sts_endpoint("us-west-2", false).unwrap(),
        Binding::Audience(AUDIENCE.into()),
    )
    .form(SigningForm::Post)
    .time(SystemTime::now())
    .build(&id.credentials())
    .unwrap()
}

async fn join(layer: &IamJoinLayer, token: &str, id: &TestIdentity) -> Reply {
    let req = request("/app", Some(&proof(id)))
        .header(TOKEN_HEADER, token)
        .body(Full::default())
        .unwrap();
    send(layer, req).await
}

#[tokio::test]
async fn aws_lookup_reads_the_organization_and_the_path_to_the_root() {
    let aws = emulator().await;
    let lookup = aws_lookup(&aws);
    assert_eq!(
        lookup.lookup("333333333333").await.unwrap(),
        Some(OrgInfo {
            organization_id: ORG.to_owned(),
            ou_path: vec![OU_CHILD.into(), OU_PARENT.into(), ROOT.into()],
        })
    );
    assert_eq!(
        lookup.lookup("111111111111").await.unwrap(),
        Some(OrgInfo {
            organization_id: ORG.to_owned(),
            ou_path: vec![ROOT.into()],
        })
    );
    // Outside the organization: a definitive "no", not an error.
    assert_eq!(lookup.lookup("222222222222").await.unwrap(), None);
    aws.shutdown().await;
}

#[tokio::test]
async fn concurrent_lookups_of_one_new_account_make_one_chain_of_calls_then_hits_make_none() {
    let aws = emulator().await;
    let lookup = cached(&aws);
    let answers = join_all((0..1000).map(|_| lookup.lookup("333333333333"))).await;
    assert!(
        answers
            .iter()
            .all(|a| matches!(a, Ok(Some(info)) if info.organization_id == ORG))
    );
    // One DescribeAccount and one ListParents per level (child OU → parent OU → root).
    assert_eq!(aws.org_calls(), 4);
    for _ in 0..100 {
        lookup.lookup("333333333333").await.unwrap();
    }
    assert_eq!(aws.org_calls(), 4, "cache hits call nothing");
    // "Not in the organization" is cached too (one DescribeAccount).
    assert_eq!(lookup.lookup("222222222222").await.unwrap(), None);
    assert_eq!(lookup.lookup("222222222222").await.unwrap(), None);
    assert_eq!(aws.org_calls(), 5);
    aws.shutdown().await;
}

#[tokio::test]
async fn a_thousand_concurrent_proofs_from_one_new_account_make_one_describe_account() {
    let aws = emulator().await;
    let layer = layer(&aws, cached(&aws));
    let id = node();
    let replies = join_all((0..1000).map(|_| join(&layer, "org-only", &id))).await;
    for r in &replies {
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    }
    assert_eq!(aws.org_calls(), 4);
    aws.shutdown().await;
}

#[tokio::test]
async fn organization_and_ou_rules_admit_and_deny_as_teleport_does() {
    let aws = emulator().await;
    let layer = layer(&aws, cached(&aws));
    // (token, identity, admitted)
    let cases: [(&str, TestIdentity, bool); 9] = [
        ("org-only", node(), true),
        ("org-only", alice(), true),
        ("org-only", bob(), false),
        ("ou-include", node(), true),
        ("ou-include", other_account(), true),
        ("ou-include", alice(), false),
        ("ou-exclude-child", other_account(), true),
        ("ou-exclude-child", node(), false),
        ("ou-exclude-child", bob(), false),
    ];
    for (token, id, admitted) in cases {
        let r = join(&layer, token, &id).await;
        if admitted {
            assert_eq!(r.status, StatusCode::OK, "{token} {}: {}", id.arn, r.json);
        } else {
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{token} {}", id.arn);
            assert_eq!(r.code(), "not_allowed", "{token} {}", id.arn);
        }
    }
    aws.shutdown().await;
}

async fn assert_unavailable(fault: OrgFault) {
    let aws = emulator().await;
    aws.set_org_fault(fault);
    let layer = layer(&aws, cached(&aws));
    for attempt in 1..=2 {
        let r = join(&layer, "org-only", &node()).await;
        assert_eq!(
            r.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{fault:?}: {}",
            r.json
        );
        assert_eq!(r.code(), "organizations_unavailable");
        assert!(r.headers.contains_key(http::header::RETRY_AFTER));
        // Nothing was cached: every attempt asks again.
        assert!(aws.org_calls() >= attempt, "{fault:?}");
    }
    let before = aws.org_calls();
    // A rule that needs no lookup still admits, and asks nothing.
    let r = join(&layer, "account-or-org", &alice()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(aws.org_calls(), before);
    // Once Organizations answers again, the same account is looked up afresh.
    aws.set_org_fault(OrgFault::None);
    let r = join(&layer, "org-only", &node()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let r = join(&layer, "org-only", &bob()).await;
    assert_eq!(r.code(), "not_allowed");
    aws.shutdown().await;
}

#[tokio::test]
async fn organizations_down_is_a_retryable_503_and_never_a_match() {
    assert_unavailable(OrgFault::Down).await;
}

#[tokio::test]
async fn organizations_throttling_is_a_retryable_503_and_never_a_match() {
    assert_unavailable(OrgFault::TooManyRequests).await;
}

#[tokio::test]
async fn without_an_organizations_lookup_org_rules_never_match() {
    let aws = emulator().await;
    let layer = IamJoinLayer::builder()
        .audience(AUDIENCE)
        .policy(TokenPolicy::from_yaml_str(POLICY, "org-policy").unwrap())
        .sts_override_all(aws.url())
        .rate_limits(RateLimits::none())
        .build()
        .unwrap();
    let r = join(&layer, "org-only", &node()).await;
    assert_eq!(r.code(), "not_allowed");
    assert_eq!(aws.org_calls(), 0);
    aws.shutdown().await;
}

/// An account that moves OU or leaves the organization is judged on its new place once the
/// cached answer expires, and only then (a lookup per TTL, not per request).
#[tokio::test]
async fn an_account_that_moves_or_leaves_is_judged_afresh_after_the_ttl() {
    let aws = emulator().await;
    let ttl = Duration::from_millis(400);
    let orgs = Arc::new(CachedOrgLookup::with_settings(
        Arc::new(aws_lookup(&aws)),
        ttl,
        ttl,
        1000,
    ));
    let layer = layer(&aws, orgs);
    // other_account sits in the parent OU: included, not under the excluded child.
    assert_eq!(
        join(&layer, "ou-exclude-child", &other_account())
            .await
            .status,
        StatusCode::OK
    );

    // Moved into the excluded child OU: still admitted from the cache, refused after the TTL.
    aws.set_org_tree(tree().with_account("444444444444", OU_CHILD));
    let calls = aws.org_calls();
    assert_eq!(
        join(&layer, "ou-exclude-child", &other_account())
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(aws.org_calls(), calls, "a cache hit asked Organizations");
    tokio::time::sleep(ttl * 3).await;
    let r = join(&layer, "ou-exclude-child", &other_account()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.json);
    assert_eq!(r.code(), "not_allowed");

    // Left the organization: no org rule matches it any more once the TTL has passed.
    aws.set_org_tree(
        OrgTree::new(ORG, "111111111111", ROOT)
            .with_ou(OU_PARENT, ROOT)
            .with_ou(OU_CHILD, OU_PARENT)
            .with_account("111111111111", ROOT)
            .with_account("333333333333", OU_CHILD),
    );
    tokio::time::sleep(ttl * 3).await;
    let r = join(&layer, "org-only", &other_account()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.json);
    assert_eq!(r.code(), "not_allowed");
    aws.shutdown().await;
}
