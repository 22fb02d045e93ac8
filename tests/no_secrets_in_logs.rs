//! No secrets in the verifier's logs (issue 7, DESIGN §9): every kind of flow through the layer
//! (admitted, cache hit, denied by policy, challenge issue, redemption and reuse, STS rejection,
//! STS unavailable, malformed proofs, the whoami and verify endpoints) runs under a `tracing`
//! subscriber at TRACE that writes into a buffer; the buffer must then hold none of the proof
//! tokens (nor any long piece of one), no signature, no emulator secret key or session token (plain
//! or percent-encoded), and no challenge value.
//!
//! How the capture is scoped: the subscriber is the thread-local default (`with_default`) of the
//! test thread, which drives a current-thread runtime, so every task the layer and its STS
//! client spawn runs, and logs, inside the capture. Two things run outside it on purpose:
//! - the sts-emulator, on its own multi-thread runtime: it is test infrastructure standing in for
//!   AWS, and it recomputes signatures with aws-sigv4, whose TRACE events print the signed request;
//! - signing the proofs: that is the workload's side (the client library), not the verifier's.
//!
//! This binary holds a single test so that nothing else in the process logs concurrently.
//! `scripts/check-logs.sh` is the complementary, whole-suite check.

#![allow(clippy::unwrap_used)]

mod attack;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use attack::*;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use iam_join_client::{Binding, SigningForm};
use iam_join_tower::IamJoinLayer;
use sts_emulator::{Emulator, EmulatorHandle, Fault, TestIdentity, default_identities};

/// An `io::Write` into a shared buffer.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Everything that must not appear in the log.
#[derive(Default)]
struct Secrets {
    /// (what, value)
    items: Vec<(String, String)>,
}

impl Secrets {
    fn add(&mut self, what: impl Into<String>, value: &str) {
        let what = what.into();
        let encoded: String = value
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        if encoded != value {
            self.items
                .push((format!("{what} (percent-encoded)"), encoded));
        }
        self.items.push((what, value.to_owned()));
    }

    /// A proof token: the whole token, a few windows of its payload, and its signature.
    fn add_proof(&mut self, what: &str, token: &str) {
        self.add(format!("proof {what}"), token);
        let payload = token.split_once('.').map_or(token, |(_, p)| p);
        for (i, window) in payload.as_bytes().chunks(48).enumerate().take(8) {
            if window.len() == 48 {
                self.items.push((
                    format!("proof {what}, payload bytes {}..", i * 48),
                    String::from_utf8_lossy(window).into_owned(),
                ));
            }
        }
        if let Some(sig) = signature_of(token) {
            self.add(format!("signature of proof {what}"), &sig);
        }
    }
}

/// The 64-hex signature in a proof (header or query form), if it has one.
fn signature_of(token: &str) -> Option<String> {
    let text = if let Some(p) = token.strip_prefix("k8s-aws-v1.") {
        use base64::Engine as _;
        String::from_utf8(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()?,
        )
        .ok()?
    } else {
        let raw = iam_join_core::token::decode_proof_token(token).ok()?;
        format!("{} {}", raw.url, raw.header("authorization").unwrap_or(""))
    };
    let at = text.find("Signature=")? + "Signature=".len();
    text.get(at..at + 64).map(str::to_owned)
}

fn identity_secrets(secrets: &mut Secrets, ids: &[TestIdentity]) {
    for id in ids {
        secrets.add(
            format!("secret key of {}", id.access_key_id),
            &id.secret_access_key,
        );
        if let Some(t) = &id.session_token {
            secrets.add(format!("session token of {}", id.access_key_id), t);
        }
    }
}

struct Flows {
    layer: IamJoinLayer,
    unreachable: IamJoinLayer,
    emulator: EmulatorHandle,
}

fn at(secs_ago: u64) -> SystemTime {
    SystemTime::now() - Duration::from_secs(secs_ago)
}

async fn get_token(layer: &IamJoinLayer, path: &str, proof: &str, token: &str) -> StatusCode {
    let req = request(path, Some(proof))
        .header("x-iam-join-token", token)
        .body(Full::<Bytes>::default())
        .unwrap();
    send(layer, req).await.status
}

/// Runs every kind of flow; returns the proofs and challenges it used.
async fn run_flows(f: &Flows, proofs: &[(&str, String)], secrets: &mut Secrets) {
    let by = |name: &str| {
        proofs
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| t.as_str())
            .unwrap()
    };
    let expect = |what: &str, got: StatusCode, want: StatusCode| {
        assert_eq!(got, want, "flow {what}");
    };
    let l = &f.layer;

    // Admitted, then from the cache; both forms, the EKS token, the endpoints.
    for name in [
        "post node",
        "post node",
        "get node",
        "k8s node",
        "post alice",
    ] {
        expect(
            name,
            get_with(l, "/app", Some(by(name))).await.status,
            StatusCode::OK,
        );
    }
    expect(
        "whoami",
        get_with(l, "/v1/iam-join/whoami", Some(by("post node")))
            .await
            .status,
        StatusCode::OK,
    );
    expect(
        "verify",
        get_with(l, "/v1/iam-join/verify", Some(by("post alice")))
            .await
            .status,
        StatusCode::OK,
    );
    let carried = request("/app", None)
        .header("x-iam-join-proof", by("get node"))
        .body(Full::default())
        .unwrap();
    expect(
        "X-IAM-Join-Proof carrier",
        send(l, carried).await.status,
        StatusCode::OK,
    );

    // Denied by policy.
    expect(
        "other account",
        get_with(l, "/app", Some(by("post other account")))
            .await
            .status,
        StatusCode::FORBIDDEN,
    );
    expect(
        "look-alike role",
        get_with(l, "/app", Some(by("post node2"))).await.status,
        StatusCode::FORBIDDEN,
    );
    expect(
        "unknown token",
        get_token(l, "/app", by("post alice"), "no-such-token").await,
        StatusCode::FORBIDDEN,
    );
    expect(
        "expired token",
        get_token(l, "/app", by("post alice"), "old-token").await,
        StatusCode::FORBIDDEN,
    );

    // Denied locally.
    for name in [
        "audience mismatch",
        "old proof",
        "look-alike host",
        "other action",
        "unsigned binding",
        "duplicate query parameter",
        "tampered base64",
        "duplicate header",
    ] {
        let r = get_with(l, "/app", Some(by(name))).await;
        assert!(r.status.is_client_error(), "flow {name}: {}", r.status);
    }
    expect(
        "no proof",
        get_with(l, "/app", None).await.status,
        StatusCode::UNAUTHORIZED,
    );
    expect(
        "garbage",
        get_with(l, "/app", Some("iam-join-v1.garbage!"))
            .await
            .status,
        StatusCode::BAD_REQUEST,
    );

    // Challenges: issue, redeem, reuse, tamper.
    let c = challenge(l).await;
    secrets.add("challenge", &c);
    let t = proof_with(
        &node(),
        Binding::Challenge(c.clone()),
        SigningForm::Post,
        SystemTime::now(),
    );
    secrets.add_proof("challenge-bound", &t);
    expect(
        "challenge redeemed",
        get_with(l, "/join", Some(&t)).await.status,
        StatusCode::OK,
    );
    expect(
        "challenge reused",
        get_with(l, "/join", Some(&t)).await.status,
        StatusCode::UNAUTHORIZED,
    );
    let mut bad = c.clone().into_bytes();
    bad[3] = if bad[3] == b'A' { b'B' } else { b'A' };
    let bad = String::from_utf8(bad).unwrap();
    secrets.add("tampered challenge", &bad);
    let t = proof_with(
        &node(),
        Binding::Challenge(bad),
        SigningForm::presigned_get(),
        SystemTime::now(),
    );
    secrets.add_proof("tampered-challenge", &t);
    expect(
        "challenge invalid",
        get_with(l, "/join", Some(&t)).await.status,
        StatusCode::UNAUTHORIZED,
    );
    expect(
        "audience proof on a challenge path",
        get_with(l, "/join", Some(by("post alice"))).await.status,
        StatusCode::BAD_REQUEST,
    );

    // STS says no.
    expect(
        "wrong secret",
        get_with(l, "/app", Some(by("forged secret"))).await.status,
        StatusCode::UNAUTHORIZED,
    );
    expect(
        "wrong secret, cached",
        get_with(l, "/app", Some(by("forged secret"))).await.status,
        StatusCode::UNAUTHORIZED,
    );
    expect(
        "tampered signature",
        get_with(l, "/app", Some(by("tampered signature")))
            .await
            .status,
        StatusCode::UNAUTHORIZED,
    );

    // STS unavailable: throttled, failing, unreachable.
    f.emulator.set_fault(Fault::Throttle);
    expect(
        "throttled",
        get_with(l, "/app", Some(by("fresh node"))).await.status,
        StatusCode::SERVICE_UNAVAILABLE,
    );
    f.emulator.set_fault(Fault::ServerError);
    expect(
        "server error",
        get_with(l, "/app", Some(by("fresh node"))).await.status,
        StatusCode::SERVICE_UNAVAILABLE,
    );
    f.emulator.set_fault(Fault::None);
    expect(
        "recovered",
        get_with(l, "/app", Some(by("fresh node"))).await.status,
        StatusCode::OK,
    );
    expect(
        "unreachable",
        get_with(&f.unreachable, "/app", Some(by("post bob")))
            .await
            .status,
        StatusCode::SERVICE_UNAVAILABLE,
    );
}

#[test]
fn verifier_logs_hold_no_proof_signature_secret_or_challenge() {
    // The emulator: its own runtime and threads, outside the capture.
    let emulator_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let emulator = emulator_runtime.block_on(Emulator::start()).unwrap();

    // Proofs are signed outside the capture too (the workload's side).
    let mut forged = alice();
    forged.secret_access_key = "ForgedSecretThatMustNotBeLogged/0000000".into();
    let aud = || Binding::Audience(AUDIENCE.into());
    let proofs: Vec<(&str, String)> = vec![
        ("post node", post(&node())),
        ("get node", get(&node())),
        (
            "k8s node",
            iam_join_client::k8s_token(&node().credentials(), REGION, AUDIENCE, SystemTime::now())
                .unwrap(),
        ),
        ("post alice", post(&alice())),
        ("post bob", post(&bob())),
        (
            "fresh node",
            proof_with(&node(), aud(), SigningForm::presigned_get(), at(1)),
        ),
        ("post other account", post(&other_account())),
        ("post node2", post(&node2())),
        (
            "audience mismatch",
            proof_with(
                &node(),
                Binding::Audience("other.example.com".into()),
                SigningForm::Post,
                SystemTime::now(),
            ),
        ),
        (
            "old proof",
            proof_with(&node(), aud(), SigningForm::Post, at(20 * 60)),
        ),
        (
            "look-alike host",
            reencode(&post(&node()), |r| {
                r.url = "https://sts.us-west-2.amazonaws.com.evil.example/".into()
            }),
        ),
        (
            "other action",
            reencode(&post(&node()), |r| {
                r.body = "Action=AssumeRole&Version=2011-06-15".into()
            }),
        ),
        ("unsigned binding", {
            let mut h = hand_signed(&node());
            h.headers = vec![("content-type", FORM)];
            let mut r = h.post();
            r.headers
                .push(("x-iam-join-audience".into(), AUDIENCE.into()));
            r.to_iam_join_v1_token()
        }),
        (
            "duplicate query parameter",
            reencode(&get(&node()), |r| r.url.push_str("&x-amz-security-token=x")),
        ),
        ("tampered base64", format!("{}=", post(&node()))),
        ("duplicate header", {
            let t = post(&node());
            let json =
                payload_json(&t).replacen("\"headers\":{", "\"headers\":{\"X-Amz-Date\":\"1\",", 1);
            token_of(json)
        }),
        ("forged secret", post(&forged)),
        (
            "tampered signature",
            reencode(&post(&node()), |r| {
                map_header(r, "authorization", |v| {
                    let (h, _) = v.split_once("Signature=").unwrap();
                    format!("{h}Signature={}", "0f".repeat(32))
                })
            }),
        ),
    ];
    let mut secrets = Secrets::default();
    for (name, token) in &proofs {
        secrets.add_proof(name, token);
    }
    identity_secrets(&mut secrets, &default_identities());
    identity_secrets(&mut secrets, &[forged]);
    secrets.add("signature marker", "Signature=");
    secrets.add("presigned signature marker", "X-Amz-Signature=");
    secrets.add("session token header value", "x-amz-security-token: F");

    // The verifier: a current-thread runtime driven inside the capture.
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_target(true)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL)
        .with_writer(move || writer.clone())
        .finish();
    let url = emulator.url();
    tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let layer = base_builder()
                .challenge_paths(["/join"])
                .sts_override_all(&url)
                .build()
                .unwrap();
            let refused = {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let u = format!("http://{}", l.local_addr().unwrap());
                drop(l);
                u
            };
            let unreachable = base_builder().sts_override_all(refused).build().unwrap();
            let flows = Flows {
                layer,
                unreachable,
                emulator: emulator.clone(),
            };
            run_flows(&flows, &proofs, &mut secrets).await;
        });
    });
    emulator_runtime.block_on(emulator.shutdown());

    let log = capture.text();
    // For a look at what the verifier logs: IAM_JOIN_LOG_DUMP=/tmp/verifier.log
    if let Some(path) = std::env::var_os("IAM_JOIN_LOG_DUMP") {
        std::fs::write(path, &log).unwrap();
    }
    // Not vacuous: one decision event per admitted request, and the first denial of each kind
    // (repeated denials are summarised, one line per kind and interval with `suppressed=N`).
    let decisions = log.matches("iam_join::decision").count();
    assert!(
        decisions >= 20,
        "only {decisions} decision events were captured:\n{log}"
    );
    for needle in [
        "outcome=\"admitted\"",
        "outcome=\"denied\"",
        "sts_rejected",
        "sts_unavailable",
        "challenge_reused",
        "STS call failed",
    ] {
        assert!(
            log.contains(needle),
            "the log lacks {needle:?}; is the capture working?\n{log}"
        );
    }
    let leaks: Vec<String> = secrets
        .items
        .iter()
        .filter(|(_, v)| log.contains(v.as_str()))
        .map(|(what, v)| {
            let line = log.lines().find(|l| l.contains(v.as_str())).unwrap_or("");
            format!("{what}: {line}")
        })
        .collect();
    assert!(
        leaks.is_empty(),
        "the verifier logged secrets ({} of {} checked):\n  {}",
        leaks.len(),
        secrets.items.len(),
        leaks.join("\n  ")
    );
    eprintln!(
        "{} log lines, {decisions} decision events, {} secrets checked, none found",
        log.lines().count(),
        secrets.items.len()
    );
}
