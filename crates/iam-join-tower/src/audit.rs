//! Audit events: one structured record per join decision, per challenge issued and per policy or
//! assertion key reload, for a SIEM
//! weeks later. The event names and codes are Teleport's where one exists (`instance.join`
//! TJ002I/TJ002E, `bot.join` TJ001I/TJ001E), so the same rules work on both. The schema is
//! versioned (`schema`); a field is only ever added within a version.
//!
//! Never in an event: the proof, a signature, a session token or a key. The proof appears only
//! as a short fingerprint (the first 8 bytes of its SHA-256, hex), enough to correlate the
//! requests of one proof.
//!
//! Recording must never slow or fail a request: [`AuditSink::record`] takes the event and
//! returns at once (a sink queues, and drops and counts when its queue is full).

use std::net::IpAddr;

use iam_join_core::{ErrorCode, VerifiedIdentity};
use serde::Serialize;
use time::OffsetDateTime;

/// The schema id every event carries.
pub const AUDIT_SCHEMA: &str = "iam-join.audit.v1";

/// Where audit events go. Implementations must not block: queue, or drop and count.
pub trait AuditSink: Send + Sync + 'static {
    /// Takes one event.
    fn record(&self, event: AuditEvent);
}

/// The AWS identity STS vouched for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditIdentity {
    /// 12-digit account id.
    pub account: String,
    /// The caller's ARN.
    pub arn: String,
    /// The caller's unique id.
    pub user_id: String,
    /// The region of the STS endpoint the proof was signed for.
    pub region: String,
}

/// One audit record (schema [`AUDIT_SCHEMA`]); serialized as one JSON line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    /// Always [`AUDIT_SCHEMA`].
    pub schema: &'static str,
    /// RFC 3339, UTC.
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// `instance.join`, `bot.join` (Teleport's names), `iam_join.challenge.issued`,
    /// `iam_join.policy.reload` or `iam_join.keys.reload`.
    pub event: &'static str,
    /// Teleport's code for the event and result (`TJ002I`, `TJ002E`, `TJ001I`, `TJ001E`), or
    /// ours (`IJ001I` challenge issued, `IJ002I`/`IJ002E` policy reload, `IJ003I`/`IJ003E` key
    /// reload).
    pub code: &'static str,
    /// Admitted (or issued).
    pub success: bool,
    /// The wire error code of a refusal (`not_allowed`, `proof_expired`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
    /// The refusal's message, as the client got it (never a secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Always `iam`.
    pub method: &'static str,
    /// The join token named (or defaulted), when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_name: Option<String>,
    /// The token's roles, on admission.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// `audience`, `challenge` or `none` (refused before the binding was known).
    pub binding: &'static str,
    /// The verified identity, on admission.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<AuditIdentity>,
    /// First 8 bytes of the proof's SHA-256, hex; absent when there was no proof.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proof_fingerprint: Option<String>,
    /// The client address (after trusted proxies), Teleport's `addr.remote`.
    #[serde(rename = "addr.remote", skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// The request method and path (the original one in `/verify` mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_method: Option<String>,
    /// See `http_method`; the path only, never the query.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `hit` (cache or fast path), `sts` (asked STS), or absent (refused before).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<&'static str>,
    /// Time spent deciding, in microseconds.
    pub latency_us: u64,
    /// Which replica decided (set by the sink from its configuration).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
}

/// What the request said and who sent it, for the event (made only when a sink is set).
#[derive(Clone, Debug, Default)]
pub struct AuditRequest {
    /// The request method.
    pub method: String,
    /// The request path, no query (for `/verify`: the original request's, when named).
    pub path: String,
    /// The client address, after trusted proxies (not the rate limit's /64 bucket).
    pub client: Option<IpAddr>,
}

/// The longest path an event keeps (a hostile client may send a huge one).
const MAX_PATH_CHARS: usize = 512;

/// The short, non-reversible fingerprint of a proof, from the SHA-256 of its bytes that the
/// verifier already took (the fast-path key): the first 8 bytes, hex.
pub fn proof_fingerprint(proof_sha256: &[u8; 32]) -> String {
    hex::encode(&proof_sha256[..8])
}

impl AuditEvent {
    fn base(event: &'static str, code: &'static str, success: bool) -> Self {
        Self {
            schema: AUDIT_SCHEMA,
            time: OffsetDateTime::now_utc(),
            event,
            code,
            success,
            error: None,
            reason: None,
            method: "iam",
            token_name: None,
            roles: Vec::new(),
            binding: "none",
            identity: None,
            proof_fingerprint: None,
            client: None,
            http_method: None,
            path: None,
            source: None,
            latency_us: 0,
            replica: None,
        }
    }

    /// An admission.
    pub fn admitted(id: &VerifiedIdentity, binding: &'static str) -> Self {
        let bot = id.roles.iter().any(|r| r == "Bot");
        let (event, code) = if bot {
            ("bot.join", "TJ001I")
        } else {
            ("instance.join", "TJ002I")
        };
        let who = &id.identity;
        Self {
            token_name: Some(id.token.clone()),
            roles: id.roles.clone(),
            binding,
            identity: Some(AuditIdentity {
                account: who.account().to_owned(),
                arn: who.arn().to_owned(),
                user_id: who.user_id().to_owned(),
                region: who.region().to_owned(),
            }),
            ..Self::base(event, code, true)
        }
    }

    /// A refusal.
    pub fn denied(
        code: ErrorCode,
        reason: &str,
        token: Option<&str>,
        binding: &'static str,
    ) -> Self {
        Self {
            error: Some(code.as_str()),
            reason: Some(reason.to_owned()),
            token_name: token.map(str::to_owned),
            binding,
            ..Self::base("instance.join", "TJ002E", false)
        }
    }

    /// A challenge handed out.
    pub fn challenge_issued() -> Self {
        Self::base("iam_join.challenge.issued", "IJ001I", true)
    }

    /// A token policy reload: `Ok(number of tokens)` or the error (file, document, field).
    pub fn policy_reload(result: Result<usize, String>) -> Self {
        Self::reload("iam_join.policy.reload", ["IJ002I", "IJ002E"], result)
    }

    /// An assertion key reload: `Ok(number of published keys)` or the error (the file, never
    /// key bytes).
    pub fn keys_reload(result: Result<usize, String>) -> Self {
        Self::reload("iam_join.keys.reload", ["IJ003I", "IJ003E"], result)
    }

    fn reload(
        event: &'static str,
        [ok, failed]: [&'static str; 2],
        result: Result<usize, String>,
    ) -> Self {
        match result {
            Ok(count) => Self {
                reason: Some(format!("{count} loaded")),
                ..Self::base(event, ok, true)
            },
            Err(error) => Self {
                error: Some("reload_failed"),
                reason: Some(error),
                ..Self::base(event, failed, false)
            },
        }
    }

    /// Adds what the request said and who sent it.
    pub fn with_request(mut self, request: Option<&AuditRequest>) -> Self {
        if let Some(r) = request {
            self.http_method = Some(r.method.clone());
            self.path = Some(r.path.chars().take(MAX_PATH_CHARS).collect());
            self.client = r.client.map(|c| c.to_string());
        }
        self
    }
}
