//! Shared by the integration tests and the benchmark: identities and key files.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use iam_join_core::{BindingKind, CallerIdentity, StsAnswer, StsHostAllowList, VerifiedIdentity};
use time::OffsetDateTime;

/// An assumed-role identity as the layer hands it over, its proof expiring at `expires_at`.
pub fn identity(session: &str, expires_at: OffsetDateTime) -> VerifiedIdentity {
    let hosts = StsHostAllowList::new();
    let host = hosts.resolve("sts.us-west-2.amazonaws.com").unwrap();
    let caller = CallerIdentity::from_answer(
        StsAnswer {
            account: "333333333333".into(),
            arn: format!("arn:aws:sts::333333333333:assumed-role/teleport-node-role/{session}"),
            user_id: format!("AROAEXAMPLE:{session}"),
        },
        host,
    )
    .unwrap();
    VerifiedIdentity {
        identity: caller,
        token: "iam-token".into(),
        roles: vec!["Node".into(), "Bot".into()],
        binding: BindingKind::Audience,
        expires_at,
    }
}

/// Writes a PKCS#8 PEM private key for `algorithm`, as `openssl genpkey` would, and returns its
/// path. `v1` chooses the PKCS#8 v1 form for Ed25519 (what OpenSSL writes).
pub fn write_key(dir: &Path, name: &str, algorithm: &str, v1: bool) -> PathBuf {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let der = match (algorithm, v1) {
        ("ES256", _) => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng),
        ("EdDSA", true) => Ed25519KeyPair::generate_pkcs8v1(&rng),
        ("EdDSA", false) => Ed25519KeyPair::generate_pkcs8(&rng),
        _ => panic!("unknown algorithm {algorithm}"),
    }
    .unwrap();
    let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec()));
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap();
    path
}

/// Serves the signer's JWKS at `/.well-known/jwks.json` and `/v1/iam-join/jwks.json` on a
/// loopback port, as the layer will; returns the base URL.
pub async fn serve_jwks(signer: std::sync::Arc<iam_join_assertion::AssertionSigner>) -> String {
    use axum::routing::get;
    let jwks = move || {
        let signer = signer.clone();
        async move { signer.jwks_response::<axum::body::Body>() }
    };
    let app = axum::Router::new()
        .route("/.well-known/jwks.json", get(jwks.clone()))
        .route("/v1/iam-join/jwks.json", get(jwks));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// A plain HTTP/1.1 GET over a TCP stream (no HTTP library), returning status line, headers
/// (lowercased names) and body.
pub async fn raw_get(base: &str, path: &str) -> (String, Vec<(String, String)>, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut raw),
    )
    .await
    .unwrap()
    .unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, raw[split + 4..].to_vec())
}
