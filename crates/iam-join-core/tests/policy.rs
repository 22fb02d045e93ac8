//! Token policy: loading Teleport token resources and authorizing verified identities.

use std::path::{Path, PathBuf};

use iam_join_core::policy::{
    OrgInfo, PolicyDenial, PolicyError, Role, Subject, TokenForm, TokenPolicy,
};
use proptest::prelude::*;
use time::OffsetDateTime;
use time::macros::datetime;

/// Teleport's documented `token.yaml`, which must load unchanged.
const SEED_TOKEN_YAML: &str = r#"# token.yaml
kind: token
version: v2
metadata:
  # the token name is not a secret because instances must prove that they are
  # running in your AWS account to use this token
  name: iam-token
spec:
  # use the minimal set of roles required
  roles: [Node]
  # set the join method allowed for this token
  join_method: iam
  allow:
  # specify the AWS account which Nodes may join from
  - aws_account: "111111111111"
  # multiple allow rules are supported
  - aws_account: "222222222222"
  # aws_arn is optional and allows you to restrict the IAM role of joining Nodes
  - aws_account: "333333333333"
    aws_arn: "arn:aws:sts::333333333333:assumed-role/teleport-node-role/i-*"
"#;

const NOW: OffsetDateTime = datetime!(2026-11-23 10:15 UTC);
const NODE_SESSION: &str =
    "arn:aws:sts::333333333333:assumed-role/teleport-node-role/i-0abc123def4567890";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn load(name: &str) -> TokenPolicy {
    TokenPolicy::load(&fixture(name)).unwrap_or_else(|e| panic!("{name} should load: {e}"))
}

fn load_err(name: &str) -> PolicyError {
    match TokenPolicy::load(&fixture(name)) {
        Ok(policy) => panic!("{name} should not load, got {policy:?}"),
        Err(e) => e,
    }
}

fn subject<'a>(account: &'a str, arn: &'a str) -> Subject<'a> {
    Subject {
        account,
        arn,
        region: "us-west-2",
    }
}

/// Asserts the error message mentions every needle; returns it.
fn assert_message(err: &PolicyError, needles: &[&str]) -> String {
    let message = err.to_string();
    for needle in needles {
        assert!(message.contains(needle), "{needle:?} not in {message:?}");
    }
    message
}

// --- the seed token ---------------------------------------------------------------------------

#[test]
fn seed_token_fixture_is_teleports_example_verbatim() {
    let on_disk = std::fs::read_to_string(fixture("token.yaml")).unwrap();
    assert_eq!(on_disk, SEED_TOKEN_YAML);
}

#[test]
fn seed_token_loads_unchanged_with_three_rules() {
    let policy = load("token.yaml");
    assert_eq!(policy.len(), 1);
    assert!(policy.warnings().is_empty(), "{:?}", policy.warnings());
    let token = policy.get("iam-token").unwrap();
    assert_eq!(token.name(), "iam-token");
    assert_eq!(token.roles(), &[Role::Node]);
    assert_eq!(token.expires(), None);
    assert_eq!(token.allow().len(), 3);
    assert_eq!(token.allow()[0].aws_account(), Some("111111111111"));
    assert!(token.allow()[0].aws_arn().is_none());
    assert_eq!(
        token.allow()[2].aws_arn().map(|g| g.as_str()),
        Some("arn:aws:sts::333333333333:assumed-role/teleport-node-role/i-*")
    );
    assert_eq!(token.allow()[2].aws_regions(), None);
    assert_eq!(
        policy.location("iam-token").unwrap().to_string(),
        format!("{}: document 1", fixture("token.yaml").display())
    );
}

#[test]
fn seed_token_admits_any_identity_in_account_111111111111() {
    let policy = load("token.yaml");
    for arn in [
        "arn:aws:iam::111111111111:user/alice",
        "arn:aws:sts::111111111111:assumed-role/anything/session",
    ] {
        let token = policy
            .authorize("iam-token", &subject("111111111111", arn), NOW)
            .unwrap();
        assert_eq!(token.name(), "iam-token");
    }
}

#[test]
fn seed_token_admits_any_identity_in_account_222222222222() {
    let policy = load("token.yaml");
    let s = subject("222222222222", "arn:aws:sts::222222222222:assumed-role/x/y");
    assert!(policy.authorize("iam-token", &s, NOW).is_ok());
}

#[test]
fn seed_token_admits_the_node_role_instance_session_in_333333333333() {
    let policy = load("token.yaml");
    let s = subject("333333333333", NODE_SESSION);
    assert!(policy.authorize("iam-token", &s, NOW).is_ok());
}

#[test]
fn seed_token_denies_a_longer_role_name_in_333333333333() {
    let policy = load("token.yaml");
    let arn = "arn:aws:sts::333333333333:assumed-role/teleport-node-role2/i-0abc123def4567890";
    assert_eq!(
        policy.authorize("iam-token", &subject("333333333333", arn), NOW),
        Err(PolicyDenial::NotAllowed)
    );
}

#[test]
fn seed_token_denies_another_role_in_333333333333() {
    let policy = load("token.yaml");
    let arn = "arn:aws:iam::333333333333:user/alice";
    assert_eq!(
        policy.authorize("iam-token", &subject("333333333333", arn), NOW),
        Err(PolicyDenial::NotAllowed)
    );
}

#[test]
fn seed_token_denies_account_444444444444_with_the_same_role_path() {
    let policy = load("token.yaml");
    let arn = "arn:aws:sts::444444444444:assumed-role/teleport-node-role/i-0abc123def4567890";
    assert_eq!(
        policy.authorize("iam-token", &subject("444444444444", arn), NOW),
        Err(PolicyDenial::NotAllowed)
    );
}

#[test]
fn unknown_token_name_is_denied_as_unknown_token() {
    let policy = load("token.yaml");
    let s = subject("111111111111", "arn:aws:iam::111111111111:user/alice");
    assert_eq!(
        policy.authorize("no-such-token", &s, NOW),
        Err(PolicyDenial::UnknownToken)
    );
    assert_eq!(
        policy.authorize("IAM-TOKEN", &s, NOW),
        Err(PolicyDenial::UnknownToken),
        "token names are case-sensitive"
    );
}

// --- expiry -----------------------------------------------------------------------------------

#[test]
fn expired_token_loads_but_is_denied_as_token_expired() {
    let policy = load("multi.yaml");
    let token = policy.get("expired-token").unwrap();
    assert_eq!(token.expires(), Some(datetime!(2020-01-01 00:00 UTC)));
    let s = subject("111111111111", "arn:aws:iam::111111111111:user/alice");
    assert_eq!(
        policy.authorize("expired-token", &s, NOW),
        Err(PolicyDenial::TokenExpired)
    );
    // Before its expiry the same identity was admitted; at the instant of expiry it is not.
    assert!(
        policy
            .authorize("expired-token", &s, datetime!(2019-12-31 23:59:59 UTC))
            .is_ok()
    );
    assert!(token.is_expired(datetime!(2020-01-01 00:00 UTC)));
}

#[test]
fn expiry_is_checked_before_the_rules() {
    let policy = load("multi.yaml");
    let stranger = subject("999999999999", "arn:aws:iam::999999999999:user/eve");
    assert_eq!(
        policy.authorize("expired-token", &stranger, NOW),
        Err(PolicyDenial::TokenExpired)
    );
}

#[test]
fn malformed_expiry_is_rejected() {
    let err = load_err("invalid/bad-expires.yaml");
    assert_message(&err, &["metadata.expires", "next tuesday", "RFC 3339"]);
}

// --- strictness -------------------------------------------------------------------------------

#[test]
fn misspelt_field_fails_naming_the_field_the_file_and_the_document() {
    let err = load_err("invalid/misspelt-field.yaml");
    let message = assert_message(
        &err,
        &[
            "aws_acount",
            "invalid/misspelt-field.yaml",
            "document 2",
            "spec.allow[1]",
        ],
    );
    assert!(
        matches!(&err, PolicyError::Invalid { field, .. } if field == "spec.allow[1].aws_acount"),
        "{message}"
    );
    assert_eq!(err.location().unwrap().document(), 2);
}

#[test]
fn unknown_top_level_field_is_rejected() {
    let err = load_err("invalid/unknown-top-level-field.yaml");
    assert_message(&err, &["stauts", "document 1", "unknown field"]);
}

#[test]
fn wrong_kind_is_rejected() {
    let err = load_err("invalid/wrong-kind.yaml");
    assert_message(&err, &["kind", "token", "\"role\""]);
}

#[test]
fn wrong_version_is_rejected() {
    let err = load_err("invalid/wrong-version.yaml");
    assert_message(&err, &["version", "v2", "\"v1\""]);
}

#[test]
fn iam_token_without_allow_is_rejected() {
    let err = load_err("invalid/missing-allow.yaml");
    assert_message(&err, &["spec.allow", "at least one allow rule"]);
}

#[test]
fn iam_token_with_empty_allow_is_rejected() {
    let err = load_err("invalid/empty-allow.yaml");
    assert_message(&err, &["spec.allow", "at least one allow rule"]);
}

#[test]
fn allow_rule_without_account_or_arn_is_rejected() {
    let err = load_err("invalid/empty-rule.yaml");
    assert_message(&err, &["spec.allow[1]", "neither aws_account nor aws_arn"]);
}

#[test]
fn account_with_11_digits_is_rejected() {
    let err = load_err("invalid/account-11-digits.yaml");
    assert_message(
        &err,
        &["spec.allow[0].aws_account", "12 digits", "11111111111"],
    );
}

#[test]
fn unquoted_numeric_account_is_rejected_asking_for_quotes() {
    let err = load_err("invalid/account-unquoted.yaml");
    assert_message(
        &err,
        &["spec.allow[0].aws_account", "quoted", "111111111111"],
    );
}

#[test]
fn arn_pattern_must_start_with_arn() {
    let err = load_err("invalid/arn-without-prefix.yaml");
    assert_message(&err, &["spec.allow[0].aws_arn", "arn:"]);
}

#[test]
fn implausible_region_is_rejected() {
    let err = load_err("invalid/bad-region.yaml");
    assert_message(&err, &["spec.allow[0].aws_regions[1]", "US_EAST_1"]);
}

#[test]
fn empty_region_list_is_rejected() {
    let err = load_err("invalid/empty-regions.yaml");
    assert_message(&err, &["spec.allow[0].aws_regions", "at least one region"]);
}

#[test]
fn duplicate_roles_are_rejected_after_normalisation() {
    let err = load_err("invalid/duplicate-roles.yaml");
    assert_message(&err, &["spec.roles[2]", "duplicate role `Node`"]);
}

#[test]
fn unknown_role_is_rejected_naming_it() {
    let err = load_err("invalid/unknown-role.yaml");
    assert_message(&err, &["spec.roles[1]", "unknown role `Nodes`"]);
}

#[test]
fn empty_role_list_is_rejected() {
    let err = load_err("invalid/empty-roles.yaml");
    assert_message(&err, &["spec.roles", "at least one role"]);
}

#[test]
fn missing_join_method_is_rejected() {
    let err = load_err("invalid/missing-join-method.yaml");
    assert_message(&err, &["spec.join_method", "missing"]);
}

#[test]
fn upper_case_join_method_is_rejected_not_skipped() {
    let err = load_err("invalid/uppercase-join-method.yaml");
    assert_message(&err, &["spec.join_method", "lower case"]);
}

#[test]
fn empty_token_name_is_rejected() {
    let err = load_err("invalid/empty-name.yaml");
    assert_message(&err, &["metadata.name", "must not be empty"]);
}

#[test]
fn duplicate_token_names_in_one_file_name_both_documents() {
    let err = load_err("invalid/duplicate-names.yaml");
    assert!(matches!(err, PolicyError::DuplicateToken { .. }), "{err}");
    assert_message(&err, &["`twice`", "document 1", "document 2"]);
}

#[test]
fn lower_case_role_is_normalised_to_the_canonical_spelling() {
    let policy = load("multi.yaml");
    let token = policy.get("regional-token").unwrap();
    assert_eq!(token.roles(), &[Role::Node, Role::Db]);
    assert_eq!(token.roles()[0].as_str(), "Node");
}

#[test]
fn yaml_1_2_keeps_yes_and_on_as_strings() {
    let src = r#"
kind: token
version: v2
metadata:
  name: on
  description: yes
spec:
  roles: [Node]
  join_method: iam
  allow:
    - aws_account: "111111111111"
"#;
    let policy = TokenPolicy::from_yaml_str(src, "inline").unwrap();
    assert_eq!(policy.get("on").unwrap().description(), Some("yes"));
}

#[test]
fn teleport_metadata_and_bot_name_are_accepted() {
    let src = r#"
kind: token
version: v2
metadata:
  name: bot-token
  description: "for the CI bot"
  labels: {team: infra}
  revision: 3b8b6f0e-6d0e-4f0e-9b9c-1f1a5f3e7a11
spec:
  roles: [Bot]
  bot_name: ci
  join_method: iam
  allow:
    - aws_account: "111111111111"
"#;
    let policy = TokenPolicy::from_yaml_str(src, "inline").unwrap();
    let token = policy.get("bot-token").unwrap();
    assert_eq!(token.bot_name(), Some("ci"));
    assert_eq!(token.description(), Some("for the CI bot"));
}

#[test]
fn yaml_syntax_error_names_the_source_and_document() {
    let src = format!("{SEED_TOKEN_YAML}---\nkind: [\n");
    let err = TokenPolicy::from_yaml_str(&src, "tokens/inline.yaml").unwrap_err();
    assert!(matches!(err, PolicyError::Yaml { .. }), "{err}");
    assert_message(&err, &["tokens/inline.yaml", "document 2"]);
}

#[test]
fn a_document_that_is_not_a_mapping_is_rejected() {
    let err = TokenPolicy::from_yaml_str("- kind: token\n", "inline").unwrap_err();
    assert_message(&err, &["inline: document 1", "a sequence"]);
}

#[test]
fn error_location_is_the_given_source_name() {
    let err = TokenPolicy::from_yaml_str("kind: role\nversion: v2\n", "my-policy").unwrap_err();
    let location = err.location().unwrap();
    assert_eq!(location.source(), "my-policy");
    assert_eq!(location.document(), 1);
    assert_eq!(
        err.to_string(),
        "my-policy: document 1: kind: must be `token` (Teleport's token resource) or \
         `TeleportProvisionToken` (the Teleport Kubernetes operator's), got \"role\""
    );
}

// --- several documents and files --------------------------------------------------------------

#[test]
fn multi_document_file_loads_every_iam_token_and_ignores_the_trailing_empty_document() {
    let policy = load("multi.yaml");
    let names: Vec<&str> = policy.tokens().map(|t| t.name()).collect();
    assert_eq!(names, ["regional-token", "expired-token"]);
    assert_eq!(
        policy.location("expired-token").unwrap().document(),
        3,
        "skipped documents still count"
    );
}

#[test]
fn non_iam_token_is_skipped_with_a_warning() {
    let policy = load("multi.yaml");
    assert!(policy.get("ec2-token").is_none());
    let s = subject(
        "555555555555",
        "arn:aws:sts::555555555555:assumed-role/teleport-ec2/i-1",
    );
    assert_eq!(
        policy.authorize("ec2-token", &s, NOW),
        Err(PolicyDenial::UnknownToken)
    );
    let warnings: Vec<String> = policy.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("ec2-token"), "{warnings:?}");
    assert!(warnings[0].contains("join_method `ec2`"), "{warnings:?}");
    assert_eq!(policy.warnings()[0].location().unwrap().document(), 2);
}

#[test]
fn aws_regions_restrict_the_sts_region_of_the_proof() {
    let policy = load("multi.yaml");
    let rule = &policy.get("regional-token").unwrap().allow()[0];
    assert_eq!(
        rule.aws_regions(),
        Some(&["us-west-1".to_owned(), "us-west-2".to_owned()][..])
    );
    for (region, admitted) in [
        ("us-west-1", true),
        ("us-west-2", true),
        ("us-east-1", false),
        ("eu-west-1", false),
    ] {
        let s = Subject {
            account: "333333333333",
            arn: NODE_SESSION,
            region,
        };
        assert_eq!(
            policy.authorize("regional-token", &s, NOW).is_ok(),
            admitted,
            "{region}"
        );
    }
}

#[test]
fn directory_is_read_in_name_order_with_yml_and_yaml_and_hidden_files_ignored() {
    let policy = load("dir-ordered");
    let names: Vec<&str> = policy.tokens().map(|t| t.name()).collect();
    assert_eq!(names, ["first", "second"]);
    assert!(
        policy
            .location("first")
            .unwrap()
            .source()
            .ends_with("10-first.yml")
    );
    assert!(policy.warnings().is_empty(), "{:?}", policy.warnings());
}

#[test]
fn duplicate_token_names_across_files_of_a_directory_name_both_files() {
    let err = load_err("dir-duplicate");
    match &err {
        PolicyError::DuplicateToken {
            name,
            first,
            second,
            ..
        } => {
            assert_eq!(name, "shared-name");
            assert!(first.source().ends_with("a.yaml"), "{err}");
            assert_eq!(first.document(), 1);
            assert!(second.source().ends_with("b.yml"), "{err}");
            assert_eq!(second.document(), 2);
        }
        other => panic!("expected a duplicate name, got {other}"),
    }
    assert_message(&err, &["a.yaml: document 1", "b.yml: document 2"]);
}

#[test]
fn duplicate_name_of_a_skipped_token_is_still_an_error() {
    let src = format!(
        "{SEED_TOKEN_YAML}---\nkind: token\nversion: v2\nmetadata: {{name: iam-token}}\nspec: {{join_method: token, roles: [Node]}}\n"
    );
    let err = TokenPolicy::from_yaml_str(&src, "inline").unwrap_err();
    assert!(matches!(err, PolicyError::DuplicateToken { .. }), "{err}");
}

#[test]
fn empty_directory_loads_with_no_tokens_and_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let policy = TokenPolicy::load(dir.path()).unwrap();
    assert!(policy.is_empty());
    assert_eq!(policy.len(), 0);
    assert!(!policy.warnings().is_empty());
    let s = subject("111111111111", "arn:aws:iam::111111111111:user/alice");
    assert_eq!(
        policy.authorize("iam-token", &s, NOW),
        Err(PolicyDenial::UnknownToken)
    );
}

#[test]
fn policy_without_iam_tokens_loads_with_a_warning() {
    let src = "kind: token\nversion: v2\nmetadata: {name: t}\nspec: {join_method: token, roles: [Node]}\n---\n";
    let policy = TokenPolicy::from_yaml_str(src, "inline").unwrap();
    assert!(policy.is_empty());
    assert_eq!(policy.warnings().len(), 2, "{:?}", policy.warnings());
    assert!(
        policy.warnings()[1]
            .message()
            .contains("every proof will be denied")
    );
}

#[cfg(unix)]
#[test]
fn symlinked_files_are_followed_and_configmap_data_entries_ignored() {
    use std::os::unix::fs::symlink;

    // The layout of a mounted Kubernetes ConfigMap.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("..2026_11_23_10_15_00.1");
    std::fs::create_dir(&data).unwrap();
    std::fs::copy(fixture("token.yaml"), data.join("token.yaml")).unwrap();
    symlink("..2026_11_23_10_15_00.1", dir.path().join("..data")).unwrap();
    symlink("..data/token.yaml", dir.path().join("token.yaml")).unwrap();

    let policy = TokenPolicy::load(dir.path()).unwrap();
    assert_eq!(policy.len(), 1);
    assert!(policy.get("iam-token").is_some());
}

#[test]
fn missing_path_is_a_read_error() {
    let err = load_err("does-not-exist.yaml");
    assert!(matches!(err, PolicyError::Read { .. }), "{err}");
    assert_message(&err, &["does-not-exist.yaml"]);
}

// --- describe ---------------------------------------------------------------------------------

#[test]
fn describe_states_each_token_and_rule_in_plain_words() {
    let text = load("token.yaml").describe();
    for needle in [
        "token `iam-token`",
        "roles: Node",
        "expires: never",
        "1. any identity in AWS account 111111111111",
        "2. any identity in AWS account 222222222222",
        "3. an identity in AWS account 333333333333 whose ARN matches \
         `arn:aws:sts::333333333333:assumed-role/teleport-node-role/i-*`",
        "token.yaml: document 1",
    ] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }

    let text = load("multi.yaml").describe();
    for needle in [
        "expires: 2099-01-01T00:00:00Z",
        "roles: Node, Db",
        "proof signed for STS region us-west-1 or us-west-2",
        "warnings:",
        "ec2-token",
    ] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
}

#[test]
fn suspicious_rules_load_with_warnings() {
    let src = r#"
kind: token
version: v2
metadata: {name: odd}
spec:
  roles: [Node]
  join_method: iam
  allow:
    - aws_arn: "arn:aws:sts::*:assumed-role/teleport-node-role/*"
    - aws_account: "111111111111"
      aws_arn: "arn:aws:iam::111111111111:role/teleport-node-role"
    - aws_account: "111111111111"
      aws_arn: "arn:aws:sts::222222222222:assumed-role/teleport-node-role/*"
"#;
    let policy = TokenPolicy::from_yaml_str(src, "inline").unwrap();
    let warnings: Vec<String> = policy.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(warnings.len(), 3, "{warnings:#?}");
    assert!(
        warnings[0].contains("spec.allow[0].aws_arn") && warnings[0].contains("any AWS account")
    );
    assert!(warnings[1].contains("spec.allow[1].aws_arn") && warnings[1].contains("assumed-role"));
    assert!(warnings[2].contains("spec.allow[2].aws_arn") && warnings[2].contains("never match"));
}

// --- Teleport's own exports: tctl, the Kubernetes operator, Terraform -------------------------

/// Identities and organization answers to compare decisions with; `None` = not looked up.
fn decision_table() -> Vec<(Subject<'static>, Option<OrgInfo>)> {
    let org = |id: &str, path: &[&str]| {
        Some(OrgInfo {
            organization_id: id.to_owned(),
            ou_path: path.iter().map(|s| (*s).to_owned()).collect(),
        })
    };
    let in_ou = org(
        "o-a1b2c3d4e5",
        &["ou-ab12-22222222", "ou-ab12-11111111", "r-ab12"],
    );
    let excluded = org(
        "o-a1b2c3d4e5",
        &["ou-ab12-99999999", "ou-ab12-11111111", "r-ab12"],
    );
    let other_ou = org("o-a1b2c3d4e5", &["ou-ab12-33333333", "r-ab12"]);
    let other_org = org("o-zzzzzzzzzz", &["ou-ab12-11111111", "r-ab12"]);
    let outsider = subject("444444444444", "arn:aws:sts::444444444444:assumed-role/r/s");
    vec![
        (
            subject("111111111111", "arn:aws:iam::111111111111:user/a"),
            None,
        ),
        (subject("333333333333", NODE_SESSION), None),
        (
            subject(
                "333333333333",
                "arn:aws:sts::333333333333:assumed-role/other/i-1",
            ),
            None,
        ),
        (outsider, None),
        (outsider, in_ou),
        (outsider, excluded),
        (outsider, other_ou),
        (outsider, other_org),
    ]
}

#[test]
fn tctl_export_with_every_teleport_field_loads_and_lists_what_it_ignores() {
    let policy = load("teleport/tctl-get-tokens.yaml");
    let names: Vec<&str> = policy.tokens().map(|t| t.name()).collect();
    assert_eq!(
        names,
        ["iam-token", "bot-token"],
        "ec2 and github tokens are skipped"
    );
    assert_eq!(policy.warnings().len(), 2, "{:?}", policy.warnings());

    let token = policy.get("iam-token").unwrap();
    assert_eq!(token.form(), TokenForm::Resource);
    assert_eq!(token.description(), Some("Nodes of the platform team"));
    assert_eq!(token.roles(), [Role::Node, Role::App]);
    let ignored: Vec<&str> = token.ignored_fields().iter().map(|f| f.path()).collect();
    assert_eq!(
        ignored,
        [
            "metadata.labels",
            "metadata.namespace",
            "metadata.revision",
            "spec.aws_iid_ttl",
            "spec.integration",
            "spec.suggested_agent_matcher_labels",
            "spec.suggested_labels",
            "sub_kind",
        ]
    );
    assert!(
        token
            .ignored_fields()
            .iter()
            .all(|f| !f.reason().is_empty())
    );
    let text = policy.describe();
    assert!(
        text.contains("ignored here: metadata.labels, metadata.namespace"),
        "{text}"
    );
    assert!(text.contains("spec.suggested_labels"), "{text}");

    let bot = policy.get("bot-token").unwrap();
    assert_eq!(bot.bot_name(), Some("ci"));
}

#[test]
fn operator_manifest_loads_with_kubernetes_metadata_ignored() {
    let policy = load("teleport/operator.yaml");
    let token = policy.get("iam-token").unwrap();
    assert_eq!(token.form(), TokenForm::Operator);
    assert_eq!(token.expires(), None);
    let ignored: Vec<&str> = token.ignored_fields().iter().map(|f| f.path()).collect();
    for expected in [
        "metadata.annotations",
        "metadata.uid",
        "metadata.namespace",
        "spec.suggested_labels",
        "status",
    ] {
        assert!(ignored.contains(&expected), "{expected} not in {ignored:?}");
    }
    assert!(
        policy.describe().contains("TeleportProvisionToken"),
        "{}",
        policy.describe()
    );
}

#[test]
fn the_same_identity_gets_the_same_decision_whichever_form_holds_the_token() {
    let resource = load("teleport/tctl-get-tokens.yaml");
    let operator = load("teleport/operator.yaml");
    // Before its expiry, so only the rules decide.
    let now = datetime!(2026-12-01 00:00 UTC);
    let mut admitted = 0;
    for (subject, org) in decision_table() {
        let a = resource.authorize_with_org("iam-token", &subject, org.as_ref(), now);
        let b = operator.authorize_with_org("iam-token", &subject, org.as_ref(), now);
        assert_eq!(a.is_ok(), b.is_ok(), "{subject:?} {org:?}");
        assert_eq!(
            resource.needs_org_lookup("iam-token", &subject, now),
            operator.needs_org_lookup("iam-token", &subject, now),
            "{subject:?}"
        );
        admitted += usize::from(a.is_ok());
    }
    assert_eq!(
        admitted, 3,
        "account 111, the node role, and the included OU"
    );
}

#[test]
fn a_directory_may_mix_tctl_exports_and_operator_manifests() {
    let policy = load("mixed");
    let forms: Vec<(&str, TokenForm)> = policy.tokens().map(|t| (t.name(), t.form())).collect();
    assert_eq!(
        forms,
        [
            ("iam-token", TokenForm::Resource),
            ("bot-token", TokenForm::Resource),
            ("operator-token", TokenForm::Operator),
        ]
    );
}

#[test]
fn terraform_values_transcribed_to_yaml_load() {
    let policy = load("teleport/terraform.yaml");
    let token = policy.get("iam-token").unwrap();
    assert_eq!(
        token.allow()[1].aws_regions(),
        Some(&["us-west-1".to_owned(), "us-west-2".to_owned()][..])
    );
    assert_eq!(
        policy.get("iam-bot-token").unwrap().bot_name(),
        Some("mybot")
    );
}

/// Every field name of every `iam` document of `src` (at the levels Teleport defines: the
/// document, metadata, spec, each allow rule and its OU filter), as (document index, path).
fn field_names(src: &str) -> Vec<(usize, Vec<String>)> {
    use serde::Deserialize;
    use serde_norway::Value;
    fn keys(v: &Value) -> Vec<String> {
        v.as_mapping()
            .map(|m| {
                m.keys()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
    let mut out = Vec::new();
    for (i, doc) in serde_norway::Deserializer::from_str(src).enumerate() {
        let v = Value::deserialize(doc).expect("fixture documents are YAML");
        if v["spec"]["join_method"].as_str() != Some("iam") {
            continue;
        }
        let mut paths: Vec<Vec<String>> = keys(&v).into_iter().map(|k| vec![k]).collect();
        for section in ["metadata", "spec"] {
            paths.extend(
                keys(&v[section])
                    .into_iter()
                    .map(|k| vec![section.to_owned(), k]),
            );
        }
        if let Some(rules) = v["spec"]["allow"].as_sequence() {
            for (r, rule) in rules.iter().enumerate() {
                let at = |k: String| vec!["spec".into(), "allow".into(), r.to_string(), k];
                paths.extend(keys(rule).into_iter().map(at));
                for k in keys(&rule["aws_organizational_units"]) {
                    paths.push(
                        at("aws_organizational_units".into())
                            .into_iter()
                            .chain([k])
                            .collect(),
                    );
                }
            }
        }
        out.extend(paths.into_iter().map(|p| (i + 1, p)));
    }
    out
}

#[test]
fn a_typo_in_any_field_name_fails_naming_file_document_and_field() {
    use serde::Deserialize;
    use serde_norway::Value;
    for fixture_name in ["teleport/tctl-get-tokens.yaml", "teleport/operator.yaml"] {
        let src = std::fs::read_to_string(fixture(fixture_name)).unwrap();
        let fields = field_names(&src);
        assert!(fields.len() > 20, "{fixture_name}: {}", fields.len());
        for (document, path) in fields {
            // Rename the one key in a re-serialized copy of the stream.
            let mut docs: Vec<Value> = serde_norway::Deserializer::from_str(&src)
                .map(|d| Value::deserialize(d).unwrap())
                .collect();
            let (last, parents) = path.split_last().unwrap();
            let mut node = &mut docs[document - 1];
            for p in parents {
                node = match p.parse::<usize>() {
                    Ok(i) => &mut node[i],
                    Err(_) => &mut node[p.as_str()],
                };
            }
            let map = node.as_mapping_mut().unwrap();
            let value = map.remove(last.as_str()).unwrap();
            let typo = format!("{last}_");
            map.insert(Value::String(typo.clone()), value);
            let text = docs
                .iter()
                .map(|d| serde_norway::to_string(d).unwrap())
                .collect::<Vec<_>>()
                .join("---\n");
            let err = TokenPolicy::from_yaml_str(&text, fixture_name).unwrap_err();
            let field = path[..path.len() - 1].iter().fold(String::new(), |acc, p| {
                match p.parse::<usize>() {
                    Ok(i) => format!("{acc}[{i}]"),
                    Err(_) if acc.is_empty() => p.clone(),
                    Err(_) => format!("{acc}.{p}"),
                }
            });
            let field = if field.is_empty() {
                typo.clone()
            } else {
                format!("{field}.{typo}")
            };
            assert_message(
                &err,
                &[fixture_name, &format!("document {document}"), &field],
            );
        }
    }
}

#[test]
fn aws_role_is_refused_on_an_iam_token_as_teleport_does() {
    let src = SEED_TOKEN_YAML.replace(
        "  - aws_account: \"222222222222\"",
        "  - aws_account: \"222222222222\"\n    aws_role: arn:aws:iam::222222222222:role/r",
    );
    let err = TokenPolicy::from_yaml_str(&src, "inline").unwrap_err();
    assert_message(&err, &["spec.allow[1].aws_role", "ec2"]);
}

#[test]
fn kind_and_version_spellings_are_checked_per_form() {
    for (needle, replacement, expected) in [
        ("kind: token", "kind: Token", "kind"),
        ("version: v2", "version: v3", "version"),
        (
            "version: v2",
            "apiVersion: resources.teleport.dev/v2",
            "version",
        ),
        ("kind: token", "kind: TeleportProvisionToken", "apiVersion"),
    ] {
        let src = SEED_TOKEN_YAML.replace(needle, replacement);
        let err = TokenPolicy::from_yaml_str(&src, "inline").unwrap_err();
        assert_message(&err, &["inline: document 1", expected]);
    }
    let operator = std::fs::read_to_string(fixture("teleport/operator.yaml")).unwrap();
    for (needle, replacement, expected) in [
        (
            "apiVersion: resources.teleport.dev/v2",
            "apiVersion: resources.teleport.dev/v1",
            "apiVersion",
        ),
        ("kind: TeleportProvisionToken", "kind: token", "version"),
    ] {
        let err =
            TokenPolicy::from_yaml_str(&operator.replace(needle, replacement), "op").unwrap_err();
        assert_message(&err, &["op: document 1", expected]);
    }
}

// --- Bot tokens (Teleport's ProvisionTokenV2.CheckAndSetDefaults) ------------------------------

#[test]
fn bot_role_without_bot_name_is_refused() {
    let err = load_err("invalid/bot-without-bot-name.yaml");
    assert_message(&err, &["document 1", "spec.bot_name", "Bot"]);
    let empty = std::fs::read_to_string(fixture("invalid/bot-without-bot-name.yaml"))
        .unwrap()
        .replace("roles: [Bot]", "roles: [Bot]\n  bot_name: \"\"");
    let err = TokenPolicy::from_yaml_str(&empty, "inline").unwrap_err();
    assert_message(&err, &["spec.bot_name"]);
}

#[test]
fn bot_name_without_bot_role_is_refused() {
    let err = load_err("invalid/bot-name-without-bot-role.yaml");
    assert_message(&err, &["document 1", "spec.bot_name", "\"ci\"", "Bot"]);
}

// --- AWS Organizations rules ------------------------------------------------------------------

const ORG_TOKEN: &str = r#"
kind: token
version: v2
metadata: {name: org-token}
spec:
  roles: [Node]
  join_method: iam
  allow:
    - aws_account: "111111111111"
    - aws_organization_id: o-a1b2c3d4e5
      aws_arn: "arn:aws:sts::*:assumed-role/teleport-node-role/*"
      aws_organizational_units:
        include: [ou-ab12-11111111]
        exclude: [ou-ab12-99999999]
"#;

#[test]
fn org_rule_matches_only_with_a_matching_lookup_and_asks_for_one_only_when_needed() {
    let policy = TokenPolicy::from_yaml_str(ORG_TOKEN, "inline").unwrap();
    let node = subject(
        "444444444444",
        "arn:aws:sts::444444444444:assumed-role/teleport-node-role/i-1",
    );
    let other_role = subject(
        "444444444444",
        "arn:aws:sts::444444444444:assumed-role/x/i-1",
    );
    let plain = subject(
        "111111111111",
        "arn:aws:sts::111111111111:assumed-role/x/i-1",
    );

    assert!(policy.needs_org_lookup("org-token", &node, NOW));
    assert!(
        !policy.needs_org_lookup("org-token", &plain, NOW),
        "a plain rule already admits"
    );
    assert!(
        !policy.needs_org_lookup("org-token", &other_role, NOW),
        "the ARN already fails"
    );
    assert!(!policy.needs_org_lookup("no-such-token", &node, NOW));

    assert_eq!(
        policy.authorize("org-token", &node, NOW).unwrap_err(),
        PolicyDenial::NotAllowed,
        "without a lookup an org rule never matches"
    );
    let info = |path: &[&str]| OrgInfo {
        organization_id: "o-a1b2c3d4e5".to_owned(),
        ou_path: path.iter().map(|s| (*s).to_owned()).collect(),
    };
    for (path, admitted) in [
        (&["ou-ab12-11111111", "r-ab12"][..], true),
        (
            &["ou-ab12-22222222", "ou-ab12-11111111", "r-ab12"][..],
            true,
        ),
        (
            &["ou-ab12-99999999", "ou-ab12-11111111", "r-ab12"][..],
            false,
        ),
        (&["ou-ab12-22222222", "r-ab12"][..], false),
        (&[][..], false),
    ] {
        let org = info(path);
        assert_eq!(
            policy
                .authorize_with_org("org-token", &node, Some(&org), NOW)
                .is_ok(),
            admitted,
            "{path:?}"
        );
        assert!(
            policy
                .authorize_with_org("org-token", &other_role, Some(&org), NOW)
                .is_err(),
            "every other field of the rule still applies"
        );
    }
    let text = policy.describe();
    assert!(
        text.contains(
            "whose account is in AWS organization o-a1b2c3d4e5 under ou-ab12-11111111 but not \
             under ou-ab12-99999999"
        ),
        "{text}"
    );
}

#[test]
fn malformed_org_fields_fail_naming_file_document_and_field() {
    for (needle, replacement, field) in [
        ("o-a1b2c3d4e5", "o-123", "spec.allow[1].aws_organization_id"),
        (
            "o-a1b2c3d4e5",
            "O-A1B2C3D4E5",
            "spec.allow[1].aws_organization_id",
        ),
        (
            "include: [ou-ab12-11111111]",
            "include: []",
            "spec.allow[1].aws_organizational_units.include",
        ),
        (
            "exclude: [ou-ab12-99999999]",
            "exclude: []",
            "spec.allow[1].aws_organizational_units.exclude",
        ),
        (
            "include: [ou-ab12-11111111]",
            "include: [ou-ab12]",
            "spec.allow[1].aws_organizational_units.include[0]",
        ),
        (
            "exclude: [ou-ab12-99999999]",
            "exclude: [\"*\"]",
            "spec.allow[1].aws_organizational_units.exclude",
        ),
        (
            "include: [ou-ab12-11111111]",
            "inclde: [ou-ab12-11111111]",
            "spec.allow[1].aws_organizational_units.inclde",
        ),
        (
            "- aws_organization_id: o-a1b2c3d4e5\n",
            "- aws_account: \"444444444444\"\n",
            "spec.allow[1].aws_organizational_units",
        ),
    ] {
        assert!(ORG_TOKEN.contains(needle), "{needle}");
        let src = ORG_TOKEN.replace(needle, replacement);
        let err = TokenPolicy::from_yaml_str(&src, "org.yaml").unwrap_err();
        assert_message(&err, &["org.yaml: document 1", field]);
    }
}

// --- robustness -------------------------------------------------------------------------------

proptest! {
    #[test]
    fn arbitrary_text_never_panics(src in any::<String>()) {
        let _ = TokenPolicy::from_yaml_str(&src, "fuzz");
    }

    #[test]
    fn yaml_like_text_never_panics(src in "[a-z_:\\- \\n\\[\\]{}\"'*&!|>#0-9.]{0,300}") {
        let _ = TokenPolicy::from_yaml_str(&src, "fuzz");
    }

    #[test]
    fn mutated_seed_never_panics(cut in 0..SEED_TOKEN_YAML.len(), insert in "[ -~\\n]{0,8}") {
        let mut src = SEED_TOKEN_YAML.to_owned();
        if src.is_char_boundary(cut) {
            src.insert_str(cut, &insert);
        }
        let _ = TokenPolicy::from_yaml_str(&src, "fuzz");
    }
}
