//! `check-tokens`: what a token policy allows, for people (plain words) or for CI pipelines
//! (JSON, stable field names, so a change to the token files can be diffed).
//!
//! ```
//! use iam_join_core::policy::TokenPolicy;
//! use iam_join_proxy::check_tokens::{Format, render};
//!
//! let yaml = "kind: token\nversion: v2\nmetadata: {name: t, labels: {a: b}}\nspec:\n  roles: [Node]\n  join_method: iam\n  allow: [{aws_account: \"111111111111\"}]\n";
//! let policy = TokenPolicy::from_yaml_str(yaml, "t.yaml").unwrap();
//! let json: serde_json::Value = serde_json::from_str(&render(&policy, Format::Json)).unwrap();
//! assert_eq!(json["tokens"][0]["allow"][0]["aws_account"], "111111111111");
//! assert_eq!(json["tokens"][0]["ignored"][0]["field"], "metadata.labels");
//! ```

use iam_join_core::policy::{
    AllowRule, DocumentLocation, JoinToken, PolicyError, PolicyWarning, TokenPolicy,
};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

/// How `check-tokens` prints its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Plain words, one token after another, then the warnings.
    #[default]
    Text,
    /// One JSON object: `{"valid": true, "tokens": [...], "warnings": [...]}`.
    Json,
}

/// What each token of `policy` allows, and the warnings, in `format`.
pub fn render(policy: &TokenPolicy, format: Format) -> String {
    match format {
        Format::Text => policy.describe(),
        Format::Json => pretty(&policy_json(policy)),
    }
}

/// Why the policy did not load, in `format`. JSON: `{"valid": false, "error": {...}}` with
/// the file, document and field when the error names them.
pub fn render_error(error: &PolicyError, format: Format) -> String {
    match format {
        Format::Text => format!("invalid token policy: {error}\n"),
        Format::Json => {
            let mut body = json!({ "message": error.to_string() });
            if let Some(location) = error.location() {
                body["source"] = json!(location.source());
                body["document"] = json!(location.document());
            }
            if let PolicyError::Invalid { field, .. } = error {
                body["field"] = json!(field);
            }
            pretty(&json!({ "valid": false, "error": body }))
        }
    }
}

/// What each token of a YAML token policy allows, as `check-tokens` prints it (`name` stands for
/// the file name in messages); or the error.
pub fn describe_tokens(yaml: &str, name: &str) -> String {
    match TokenPolicy::from_yaml_str(yaml, name) {
        Ok(policy) => render(&policy, Format::Text),
        Err(e) => render_error(&e, Format::Text),
    }
}

fn pretty(value: &Value) -> String {
    // A `Value` always serializes.
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

fn policy_json(policy: &TokenPolicy) -> Value {
    let tokens: Vec<Value> = policy
        .tokens()
        .map(|token| token_json(token, policy.location(token.name())))
        .collect();
    let warnings: Vec<Value> = policy.warnings().iter().map(warning_json).collect();
    json!({ "valid": true, "tokens": tokens, "warnings": warnings })
}

fn token_json(token: &JoinToken, location: Option<&DocumentLocation>) -> Value {
    json!({
        "name": token.name(),
        "kind": token.form().kind(),
        "defined_in": location.map(location_json),
        "description": token.description(),
        "roles": token.roles().iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        "bot_name": token.bot_name(),
        "expires": token.expires().and_then(|t| t.format(&Rfc3339).ok()),
        "allow": token.allow().iter().map(rule_json).collect::<Vec<_>>(),
        "ignored": token
            .ignored_fields()
            .iter()
            .map(|f| json!({ "field": f.path(), "reason": f.reason() }))
            .collect::<Vec<_>>(),
    })
}

fn rule_json(rule: &AllowRule) -> Value {
    let organization = rule.organization();
    json!({
        "in_words": rule.to_string(),
        "aws_account": rule.aws_account(),
        "aws_arn": rule.aws_arn().map(|glob| glob.as_str()),
        "aws_regions": rule.aws_regions(),
        "aws_organization_id": organization.map(|o| o.organization_id()),
        "aws_organizational_units": organization.map(|o| json!({
            "include": o.include(),
            "exclude": o.exclude(),
        })),
    })
}

fn warning_json(warning: &PolicyWarning) -> Value {
    json!({
        "message": warning.message(),
        "defined_in": warning.location().map(location_json),
        "text": warning.to_string(),
    })
}

fn location_json(location: &DocumentLocation) -> Value {
    json!({ "source": location.source(), "document": location.document() })
}
