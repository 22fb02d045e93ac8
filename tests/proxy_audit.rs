//! The audit trail through the proxy (`audit:` to a file): exactly one event per decision and
//! per challenge issued, with the documented fields and codes; nothing secret in any event;
//! rotation by rename + reopen (what SIGHUP does) loses no event.

use std::path::Path;

use http::StatusCode;
use iam_join_client::VerifierClient;
use iam_join_e2e::{
    JOIN_PATH, PUBLIC_PATH, Stack, StackOptions, Who, audience_proof, bearer, eventually, get_json,
    proof, request,
};
use serde_json::Value;

fn events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

async fn wait_for(path: &Path, count: usize) -> Vec<Value> {
    eventually(
        &format!("{count} audit events in {}", path.display()),
        || async { events(path).len() >= count },
    )
    .await;
    let all = events(path);
    assert_eq!(all.len(), count, "{all:#?}");
    all
}

async fn audited_stack() -> Stack {
    Stack::start_with(StackOptions {
        extra_config: "audit: {file: audit.log, replica: e2e-0}\n".to_owned(),
        ..StackOptions::default()
    })
    .await
}

/// Every secret a test identity has, and the proofs sent: none may appear in the trail.
fn assert_no_secrets(text: &str, proofs: &[&str]) {
    for id in sts_emulator::default_identities() {
        assert!(
            !text.contains(&id.secret_access_key),
            "a secret key in the audit trail"
        );
        if let Some(token) = &id.session_token {
            assert!(
                !text.contains(token.as_str()),
                "a session token in the audit trail"
            );
        }
    }
    for p in proofs {
        assert!(!text.contains(p), "a proof in the audit trail");
        // No piece of it either (e.g. the signature inside the base64url body).
        for chunk in p.as_bytes().chunks(24).skip(1) {
            assert!(!text.contains(std::str::from_utf8(chunk).unwrap_or("")));
        }
    }
    assert!(
        !text.contains("Signature="),
        "a signature in the audit trail"
    );
}

#[tokio::test]
async fn each_decision_and_challenge_is_one_event_with_teleport_names_and_no_secret() {
    let stack = audited_stack().await;
    let file = stack.dir.path().join("audit.log");
    let admitted = audience_proof(Who::NodeRole);
    let refused = audience_proof(Who::OtherAccount);
    let (k, v) = bearer(&admitted);

    // 1, 2: admitted (STS, then the cache); 3: not_allowed; 4: missing_proof;
    // 5: malformed_proof; no event for the public path.
    assert_eq!(
        get_json(&stack.url("/webapi/a?secret=x"), &[(k, &v)])
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        get_json(&stack.url("/webapi/b"), &[(k, &v)]).await.0,
        StatusCode::OK
    );
    let (k2, v2) = bearer(&refused);
    assert_eq!(
        get_json(&stack.url("/webapi/c"), &[(k2, &v2)]).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get_json(&stack.url("/webapi/d"), &[]).await.0,
        StatusCode::UNAUTHORIZED
    );
    let garbage = "Bearer iam-join-v1.bm90LWEtcHJvb2Y";
    let (status, _) = get_json(&stack.url("/webapi/e"), &[("authorization", garbage)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        get_json(&stack.url(PUBLIC_PATH), &[]).await.0,
        StatusCode::OK
    );
    // 6: a challenge issued; 7: redeemed on the join path; 8: replayed.
    let verifier = VerifierClient::new(&stack.url("")).unwrap();
    let challenge = verifier.fetch_challenge().await.unwrap();
    let challenged = proof(
        Who::NodeRole,
        iam_join_client::Binding::for_challenge(&challenge).unwrap(),
    );
    let (k3, v3) = bearer(&challenged);
    for expected in [StatusCode::OK, StatusCode::UNAUTHORIZED] {
        let (status, _, _) = request(
            "POST",
            &stack.url(JOIN_PATH),
            &[(k3, &v3)],
            bytes::Bytes::new(),
        )
        .await;
        assert_eq!(status, expected);
    }

    let all = wait_for(&file, 8).await;
    let summary: Vec<(&str, &str, Option<&str>, &str)> = all
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap(),
                e["code"].as_str().unwrap(),
                e["error"].as_str(),
                e["binding"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("instance.join", "TJ002I", None, "audience"),
            ("instance.join", "TJ002I", None, "audience"),
            ("instance.join", "TJ002E", Some("not_allowed"), "audience"),
            ("instance.join", "TJ002E", Some("missing_proof"), "none"),
            ("instance.join", "TJ002E", Some("malformed_proof"), "none"),
            ("iam_join.challenge.issued", "IJ001I", None, "none"),
            ("instance.join", "TJ002I", None, "challenge"),
            (
                "instance.join",
                "TJ002E",
                Some("challenge_reused"),
                "challenge"
            ),
        ]
    );
    let first = &all[0];
    assert_eq!(first["schema"], "iam-join.audit.v1");
    assert_eq!(first["success"], true);
    assert_eq!(first["method"], "iam");
    assert_eq!(first["token_name"], "iam-token");
    assert_eq!(first["roles"], serde_json::json!(["Node"]));
    assert_eq!(first["identity"]["account"], "333333333333");
    assert_eq!(
        first["identity"]["arn"],
        "arn:aws:sts::333333333333:assumed-role/teleport-node-role/i-0abc123def4567890"
    );
    assert_eq!(first["identity"]["region"], "us-west-2");
    assert_eq!(first["addr.remote"], "127.0.0.1");
    assert_eq!(first["http_method"], "GET");
    assert_eq!(first["path"], "/webapi/a", "the path, never the query");
    assert_eq!(first["source"], "sts");
    assert_eq!(all[1]["source"], "cache");
    assert_eq!(first["replica"], "e2e-0");
    assert_eq!(first["proof_fingerprint"].as_str().unwrap().len(), 16);
    assert_eq!(first["proof_fingerprint"], all[1]["proof_fingerprint"]);
    assert_ne!(first["proof_fingerprint"], all[2]["proof_fingerprint"]);
    assert!(first["time"].as_str().unwrap().ends_with('Z'));
    assert!(all[2]["identity"].is_null() && all[2]["reason"].is_string());
    assert!(all[3]["proof_fingerprint"].is_null());

    let text = std::fs::read_to_string(&file).unwrap();
    assert_no_secrets(&text, &[&admitted, &refused, &challenged]);
    assert!(!text.contains("secret=x"));
    assert_eq!(stack.handle.audit_dropped(), 0);
}

#[tokio::test]
async fn rotation_by_rename_and_reopen_loses_no_event() {
    let stack = audited_stack().await;
    let file = stack.dir.path().join("audit.log");
    let rotated = stack.dir.path().join("audit.log.1");
    let (k, v) = bearer(&audience_proof(Who::NodeRole));
    for _ in 0..20 {
        assert_eq!(
            get_json(&stack.url("/webapi/x"), &[(k, &v)]).await.0,
            StatusCode::OK
        );
    }
    std::fs::rename(&file, &rotated).unwrap();
    // Written after the rename but before the reopen: still the old (renamed) file.
    for _ in 0..5 {
        assert_eq!(
            get_json(&stack.url("/webapi/y"), &[(k, &v)]).await.0,
            StatusCode::OK
        );
    }
    wait_for(&rotated, 25).await;
    stack.handle.reopen_audit();
    eventually("the audit file reopened", || async { file.exists() }).await;
    for _ in 0..10 {
        assert_eq!(
            get_json(&stack.url("/webapi/z"), &[(k, &v)]).await.0,
            StatusCode::OK
        );
    }
    let new = wait_for(&file, 10).await;
    assert!(new.iter().all(|e| e["path"] == "/webapi/z"));
    assert_eq!(events(&rotated).len(), 25);
    assert_eq!(stack.handle.audit_dropped(), 0);
}

#[tokio::test]
async fn policy_reloads_are_audited_with_their_result() {
    let stack = audited_stack().await;
    let file = stack.dir.path().join("audit.log");
    let reload = |handle: iam_join_proxy::ProxyHandle| async move {
        tokio::task::spawn_blocking(move || handle.reload_policy("test"))
            .await
            .unwrap()
    };
    assert!(matches!(reload(stack.handle.clone()).await, Some(Ok(1))));
    std::fs::write(&stack.tokens, "kind: token\nversion: v2\nmetadata: {name: x}\nspec: {roles: [Node], join_method: iam, allow: [{aws_acount: \"1\"}]}\n").unwrap();
    assert!(matches!(reload(stack.handle.clone()).await, Some(Err(_))));
    // The file watcher may add reloads of its own; the two asked for are there, in order.
    eventually("both reloads audited", || async {
        let all = events(&file);
        all.iter().any(|e| e["code"] == "IJ002E")
    })
    .await;
    let reloads: Vec<Value> = events(&file)
        .into_iter()
        .filter(|e| e["event"] == "iam_join.policy.reload")
        .collect();
    let first = &reloads[0];
    assert_eq!(
        (first["code"].as_str(), first["success"].as_bool()),
        (Some("IJ002I"), Some(true))
    );
    assert_eq!(first["reason"], "1 loaded");
    let failed = reloads.iter().find(|e| e["code"] == "IJ002E").unwrap();
    assert_eq!(failed["error"], "reload_failed");
    assert!(
        failed["reason"].as_str().unwrap().contains("aws_acount"),
        "{failed}"
    );
}
