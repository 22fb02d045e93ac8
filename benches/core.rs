//! The verification core, no I/O: proof decoding and local checks (both signing forms, with and
//! without a session token), ARN globs and token-policy matching, STS answer parsing.
//!
//! `cargo bench -p iam-join-benches --bench core -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, Throughput};
use iam_join_benches::{
    AUDIENCE, Form, ProofKind, REGION, large_policy, large_policy_subject, seed_policy, sign_proof,
    sts_json_answer, sts_xml_answer,
};
use iam_join_core::glob::ArnGlob;
use iam_join_core::policy::Subject;
use iam_join_core::token::decode_proof_token;
use iam_join_core::{ProofRules, StsHostAllowList, check_proof, parse_sts_response};
use time::OffsetDateTime;

fn proof_checks(c: &mut Criterion) {
    let rules = ProofRules {
        audience: Some(AUDIENCE.to_owned()),
        ..ProofRules::default()
    };
    let mut group = c.benchmark_group("proof");
    for form in Form::ALL {
        for kind in ProofKind::ALL {
            let proof = sign_proof(&kind.identity(1), form, SystemTime::now());
            // `now` is fixed here, so the proof stays valid however long the benchmark runs.
            let now = OffsetDateTime::now_utc();
            if let Err(e) = check_proof(&proof, &rules, now) {
                panic!(
                    "bench proof {}/{} is rejected: {e}",
                    form.label(),
                    kind.label()
                );
            }
            println!(
                "proof size {}/{}: {} bytes",
                form.label(),
                kind.label(),
                proof.len()
            );
            let id = format!("{}/{}", form.label(), kind.label());
            group.throughput(Throughput::Bytes(proof.len() as u64));
            group.bench_function(format!("decode/{id}"), |b| {
                b.iter(|| decode_proof_token(black_box(&proof)));
            });
            group.bench_function(format!("check_proof/{id}"), |b| {
                b.iter(|| check_proof(black_box(&proof), &rules, now));
            });
        }
    }
    group.finish();
}

fn policy_matching(c: &mut Criterion) {
    let mut group = c.benchmark_group("policy");
    let node_arn = "arn:aws:sts::333333333333:assumed-role/teleport-node-role/i-0abc123def4567890";
    let look_alike =
        "arn:aws:sts::333333333333:assumed-role/teleport-node-role2/i-0abc123def4567890";

    let seed_glob = ArnGlob::new("arn:aws:sts::333333333333:assumed-role/teleport-node-role/i-*")
        .unwrap_or_else(|e| panic!("{e}"));
    let multi_glob = ArnGlob::new("arn:aws:sts::*:assumed-role/*-node-role/i-*")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(seed_glob.matches(node_arn) && !seed_glob.matches(look_alike));
    assert!(multi_glob.matches(node_arn));
    group.bench_function("glob/one_star/match", |b| {
        b.iter(|| seed_glob.matches(black_box(node_arn)));
    });
    group.bench_function("glob/one_star/look_alike", |b| {
        b.iter(|| seed_glob.matches(black_box(look_alike)));
    });
    group.bench_function("glob/three_stars/match", |b| {
        b.iter(|| multi_glob.matches(black_box(node_arn)));
    });

    let now = OffsetDateTime::now_utc();
    let seed = seed_policy();
    let subject = |account: &'static str, arn: &'static str| Subject {
        account,
        arn,
        region: REGION,
    };
    let cases = [
        (
            "first_rule",
            subject("111111111111", "arn:aws:iam::111111111111:user/alice"),
            true,
        ),
        ("arn_rule", subject("333333333333", node_arn), true),
        (
            "look_alike_denied",
            subject("333333333333", look_alike),
            false,
        ),
        (
            "other_account_denied",
            subject(
                "444444444444",
                "arn:aws:sts::444444444444:assumed-role/teleport-node-role/i-0abc123def4567890",
            ),
            false,
        ),
    ];
    for (name, subject, admitted) in cases {
        assert_eq!(
            seed.authorize("iam-token", &subject, now).is_ok(),
            admitted,
            "{name}"
        );
        group.bench_function(format!("authorize/seed/{name}"), |b| {
            b.iter(|| {
                seed.authorize(black_box("iam-token"), black_box(&subject), now)
                    .is_ok()
            });
        });
    }

    // 100 tokens of 100 rules each; the subject matches only the last rule of its token.
    const TOKENS: usize = 100;
    const RULES: usize = 100;
    let large = large_policy(TOKENS, RULES);
    let (account, arn) = large_policy_subject(RULES);
    let last_rule = Subject {
        account: &account,
        arn: &arn,
        region: REGION,
    };
    let wrong_arn = arn.replace("/i-", "/x-");
    let denied = Subject {
        account: &account,
        arn: &wrong_arn,
        region: REGION,
    };
    let token = "bench-token-57";
    assert!(large.authorize(token, &last_rule, now).is_ok());
    assert!(large.authorize(token, &denied, now).is_err());
    group.bench_function("authorize/100_tokens_x_100_rules/last_rule", |b| {
        b.iter(|| {
            large
                .authorize(black_box(token), black_box(&last_rule), now)
                .is_ok()
        });
    });
    group.bench_function("authorize/100_tokens_x_100_rules/denied", |b| {
        b.iter(|| {
            large
                .authorize(black_box(token), black_box(&denied), now)
                .is_ok()
        });
    });
    group.finish();
}

fn sts_answers(c: &mut Criterion) {
    let hosts = StsHostAllowList::new();
    let host = hosts
        .resolve("sts.us-west-2.amazonaws.com")
        .unwrap_or_else(|e| panic!("{e}"))
        .clone();
    let id = ProofKind::SessionToken.identity(1);
    let json = sts_json_answer(&id);
    let xml = sts_xml_answer(&id);
    for (ct, body) in [("application/json", &json), ("text/xml", &xml)] {
        let parsed = parse_sts_response(200, Some(ct), body.as_bytes(), &host)
            .unwrap_or_else(|e| panic!("{ct}: {e}"));
        assert_eq!(parsed.arn(), id.arn);
    }
    let mut group = c.benchmark_group("sts_response");
    group.throughput(Throughput::Bytes(json.len() as u64));
    group.bench_function("json", |b| {
        b.iter(|| {
            parse_sts_response(
                200,
                Some("application/json"),
                black_box(json.as_bytes()),
                &host,
            )
        });
    });
    group.throughput(Throughput::Bytes(xml.len() as u64));
    group.bench_function("xml", |b| {
        b.iter(|| parse_sts_response(200, Some("text/xml"), black_box(xml.as_bytes()), &host));
    });
    group.finish();
}

fn main() {
    // Modest defaults so a full run takes a few minutes; the command line overrides them
    // (`-- --warm-up-time 1 --measurement-time 3`, a filter, `--list`, ...).
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
        .configure_from_args();
    proof_checks(&mut c);
    policy_matching(&mut c);
    sts_answers(&mut c);
    c.final_summary();
}
