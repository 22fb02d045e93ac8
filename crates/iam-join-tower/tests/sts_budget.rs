//! A fair STS budget (issue 17, finding 4): junk proofs from many addresses must not starve
//! genuine clients. The layer runs against the sts-emulator, which really verifies SigV4, so
//! junk costs real STS answers (`InvalidClientTokenId`, `SignatureDoesNotMatch`).
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use http::StatusCode;
use http_body_util::Full;
use iam_join_client::{Binding, ProofBuilder, SigningForm, sts_endpoint};
use iam_join_testkit::http::{Reply, request, send};
use iam_join_testkit::identities::{alice, bob, node};
use iam_join_testkit::policy::seed_policy;
use iam_join_tower::{ClientAddr, IamJoinLayer, Rate, RateLimits};
use sts_emulator::{Emulator, EmulatorHandle};

const AUDIENCE: &str = "teleport.example.com";

/// Distinct addresses the flood comes from (the finding used about 250).
const FLOOD_ADDRESSES: u32 = 250;
/// Flood rounds; the genuine client makes one fresh proof in each.
const ROUNDS: u32 = 100;
/// Junk proofs per round, each from the next flood address.
const JUNK_PER_ROUND: u32 = 25;
/// The least time a round takes, so the genuine client asks at most 10 times a second.
const ROUND_PACE: Duration = Duration::from_millis(100);

/// The finding's shape at a tenth of the default budget, so the flood fits in a test: each
/// flood address stays well inside its per-client limit (25 junk / 250 addresses per 100 ms is
/// 1 a second each) while together they offer 250 proofs a second to a 40-a-second budget.
fn flood_limits() -> RateLimits {
    RateLimits {
        per_client: Some(Rate {
            per_second: 20,
            burst: 40,
        }),
        sts_budget: Some(Rate {
            per_second: 40,
            burst: 40,
        }),
        ..RateLimits::default()
    }
}

async fn layer_with(limits: RateLimits) -> (EmulatorHandle, IamJoinLayer) {
    let emulator = Emulator::start().await.unwrap();
    let layer = IamJoinLayer::builder()
        .audience(AUDIENCE)
        .default_token("iam-token")
        .policy(seed_policy())
        .sts_override_all(emulator.url())
        .sts_timeouts(Duration::from_secs(1), Duration::from_secs(2))
        .rate_limits(limits)
        .build()
        .unwrap();
    (emulator, layer)
}

/// A fresh audience-bound proof: signed `age` seconds ago, so proofs made in the same second
/// differ and none is a cache hit.
fn proof_from(creds: &Credentials, age: u32) -> String {
    ProofBuilder::new(
        sts_endpoint("us-west-2", false).unwrap(),
        Binding::Audience(AUDIENCE.into()),
    )
    .form(SigningForm::Post)
    .time(SystemTime::now() - Duration::from_secs(age.into()))
    .build(creds)
    .unwrap()
}

/// Credentials STS has never issued: a made-up access key id (`InvalidClientTokenId`).
fn unknown_key(n: u32) -> Credentials {
    Credentials::new(
        format!("AKIAJUNK{n:012}"),
        "junk-secret-junk-secret-junk-secret-junk",
        None,
        None,
        "junk",
    )
}

/// A real access key id signed with the wrong secret (`SignatureDoesNotMatch`).
fn wrong_secret(key_id: &str) -> Credentials {
    Credentials::new(
        key_id,
        "wrong-secret-wrong-secret-wrong-secret-0",
        None,
        None,
        "junk",
    )
}

fn flood_address(n: u32) -> IpAddr {
    let i = n % FLOOD_ADDRESSES;
    IpAddr::V4(Ipv4Addr::new(10, 17, (i / 200) as u8, (i % 200 + 1) as u8))
}

const GENUINE_ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));

async fn send_from(layer: &IamJoinLayer, addr: IpAddr, proof: &str) -> Reply {
    let req = request("/app", Some(proof))
        .extension(ClientAddr(SocketAddr::new(addr, 40_000)))
        .body(Full::default())
        .unwrap();
    send(layer, req).await
}

/// What the flood's junk got back.
#[derive(Debug, Default)]
struct JunkTally {
    rejected_by_sts: u32,
    rate_limited: u32,
}

async fn junk_round(layer: &IamJoinLayer, round: u32, tally: &mut JunkTally) {
    let mut tasks = tokio::task::JoinSet::new();
    for j in 0..JUNK_PER_ROUND {
        let n = round * JUNK_PER_ROUND + j;
        let layer = layer.clone();
        tasks.spawn(async move {
            let proof = proof_from(&unknown_key(n), round % 600);
            send_from(&layer, flood_address(n), &proof).await
        });
    }
    while let Some(r) = tasks.join_next().await {
        let r = r.unwrap();
        match (r.status, r.code()) {
            (StatusCode::UNAUTHORIZED, "sts_rejected") => tally.rejected_by_sts += 1,
            (StatusCode::TOO_MANY_REQUESTS, "rate_limited") => tally.rate_limited += 1,
            other => panic!("junk must never be admitted or fail otherwise: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn genuine_fresh_proofs_succeed_during_a_junk_flood_from_many_addresses() {
    let (emulator, layer) = layer_with(flood_limits()).await;
    let genuine = alice().credentials();
    // The workload joined before the flood began, as running workloads have.
    let first = send_from(&layer, GENUINE_ADDRESS, &proof_from(&genuine, 0)).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.json);

    let mut tally = JunkTally::default();
    let mut admitted = 0;
    let mut refusals = Vec::new();
    for round in 0..ROUNDS {
        let paced = tokio::time::sleep(ROUND_PACE);
        junk_round(&layer, round, &mut tally).await;
        let r = send_from(&layer, GENUINE_ADDRESS, &proof_from(&genuine, round + 1)).await;
        if r.status == StatusCode::OK {
            admitted += 1;
        } else {
            refusals.push((round, r.status, r.code().to_owned()));
        }
        paced.await;
    }
    assert!(
        tally.rate_limited > 0 && tally.rejected_by_sts > 0,
        "the flood must reach STS and exhaust its budget: {tally:?}"
    );
    assert!(
        admitted * 100 >= ROUNDS * 99,
        "genuine client admitted {admitted} of {ROUNDS} rounds during the flood ({tally:?}, \
         {} STS calls); refusals: {refusals:?}",
        emulator.calls()
    );
}

#[tokio::test]
async fn an_access_key_id_sts_does_not_know_is_refused_without_asking_sts_again() {
    let (emulator, layer) = layer_with(RateLimits::default()).await;
    let junk = unknown_key(7);
    let first = send_from(&layer, flood_address(1), &proof_from(&junk, 0)).await;
    assert_eq!(
        (first.status, first.code()),
        (StatusCode::UNAUTHORIZED, "sts_rejected")
    );
    assert_eq!(emulator.calls(), 1);
    // Fresh proofs (new signatures) with the same key id from other addresses.
    for age in 1..=5 {
        let r = send_from(&layer, flood_address(age + 1), &proof_from(&junk, age)).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::UNAUTHORIZED, "sts_rejected")
        );
        assert!(!r.message().contains("AKIAJUNK"), "{}", r.message());
    }
    assert_eq!(
        emulator.calls(),
        1,
        "STS was asked again about a key it refused"
    );
    // Genuine clients are untouched.
    let ok = send_from(
        &layer,
        GENUINE_ADDRESS,
        &proof_from(&alice().credentials(), 0),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
}

#[tokio::test]
async fn an_admitted_access_key_id_cannot_be_poisoned_by_invalid_tokens() {
    let (_emulator, layer) = layer_with(RateLimits::default()).await;
    let node = node();
    let joined = send_from(&layer, GENUINE_ADDRESS, &proof_from(&node.credentials(), 0)).await;
    assert_eq!(joined.status, StatusCode::OK, "{}", joined.json);
    // An attacker who learnt the workload's temporary key id sends it with a made-up session
    // token: STS answers InvalidClientTokenId for that key id.
    let forged = Credentials::new(
        node.access_key_id.clone(),
        node.secret_access_key.clone(),
        Some("FwoGZXIvYXdzEJunkSessionToken".to_owned()),
        None,
        "junk",
    );
    let r = send_from(&layer, flood_address(3), &proof_from(&forged, 1)).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "sts_rejected")
    );
    let again = send_from(&layer, GENUINE_ADDRESS, &proof_from(&node.credentials(), 2)).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.json);
}

#[tokio::test]
async fn bad_signatures_on_a_real_key_id_are_not_remembered_against_it() {
    let (_emulator, layer) = layer_with(RateLimits::default()).await;
    let bob = bob();
    // SignatureDoesNotMatch says nothing against the key: whoever knows a key id can cause it.
    let r = send_from(
        &layer,
        flood_address(4),
        &proof_from(&wrong_secret(&bob.access_key_id), 0),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "sts_rejected")
    );
    let ok = send_from(&layer, GENUINE_ADDRESS, &proof_from(&bob.credentials(), 1)).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.json);
}

#[tokio::test]
async fn one_key_id_from_many_addresses_is_limited_per_key_id() {
    let (emulator, layer) = layer_with(RateLimits {
        per_key_id: Some(Rate {
            per_second: 1,
            burst: 3,
        }),
        ..RateLimits::default()
    })
    .await;
    // A real key id with the wrong secret: STS says SignatureDoesNotMatch, which is not
    // remembered, so only the per-key-id limit stops this.
    let junk = wrong_secret(&bob().access_key_id);
    let mut codes = Vec::new();
    for n in 0..6 {
        let r = send_from(&layer, flood_address(n), &proof_from(&junk, n)).await;
        codes.push(r.code().to_owned());
    }
    assert_eq!(
        codes,
        [
            "sts_rejected",
            "sts_rejected",
            "sts_rejected",
            "rate_limited",
            "rate_limited",
            "rate_limited"
        ]
    );
    assert_eq!(emulator.calls(), 3);
    let other = send_from(
        &layer,
        flood_address(9),
        &proof_from(&alice().credentials(), 0),
    )
    .await;
    assert_eq!(
        other.status,
        StatusCode::OK,
        "other key ids are not affected"
    );
}

#[tokio::test]
async fn new_scopes_are_counted_by_name_and_never_by_key_id() {
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();
    let emulator = Emulator::start().await.unwrap();
    let layer = IamJoinLayer::builder()
        .audience(AUDIENCE)
        .default_token("iam-token")
        .policy(seed_policy())
        .sts_override_all(emulator.url())
        .meter(provider.meter("sts-budget-test"))
        .rate_limits(RateLimits {
            per_key_id: Some(Rate {
                per_second: 1,
                burst: 1,
            }),
            ..RateLimits::default()
        })
        .build()
        .unwrap();
    let junk = unknown_key(42);
    send_from(&layer, flood_address(1), &proof_from(&junk, 0)).await; // InvalidClientTokenId
    send_from(&layer, flood_address(2), &proof_from(&junk, 1)).await; // refused locally
    let bob = wrong_secret(&bob().access_key_id);
    send_from(&layer, flood_address(3), &proof_from(&bob, 0)).await;
    send_from(&layer, flood_address(4), &proof_from(&bob, 1)).await; // per key id
    provider.force_flush().unwrap();
    let mut scopes = std::collections::BTreeSet::new();
    for rm in exporter.get_finished_metrics().unwrap() {
        for m in rm.scope_metrics().flat_map(|sm| sm.metrics()) {
            if m.name() != "iam_join_rate_limited_total" {
                continue;
            }
            let AggregatedMetrics::U64(MetricData::Sum(sum)) = m.data() else {
                panic!("rate_limited_total is a u64 counter");
            };
            for point in sum.data_points() {
                for kv in point.attributes() {
                    scopes.insert(kv.value.as_str().into_owned());
                }
            }
        }
    }
    let expected: std::collections::BTreeSet<String> =
        ["key_id", "rejected_key_id"].map(str::to_owned).into();
    assert_eq!(scopes, expected);
}
