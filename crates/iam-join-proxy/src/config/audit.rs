//! `audit:`: one JSON line per join decision and per challenge issued (schema
//! `iam-join.audit.v1`, README "Audit events").
//!
//! ```yaml
//! audit:
//!   file: /var/log/iam-join-proxy/audit.log   # or: stdout: true (diagnostic logs stay on stderr)
//!   queue: 8192                               # events waiting for the disk; beyond: dropped, counted
//!   replica: proxy-0                          # default: $HOSTNAME (the pod name on Kubernetes)
//!   otlp: true                                # also as OTLP log records (see `otlp:`)
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ConfigError, invalid, resolve};

const DEFAULT_QUEUE: usize = 8192;
const MAX_QUEUE: usize = 1 << 20;

/// The section as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAudit {
    #[serde(default)]
    file: Option<PathBuf>,
    #[serde(default)]
    stdout: bool,
    #[serde(default)]
    queue: Option<usize>,
    #[serde(default)]
    replica: Option<String>,
    #[serde(default)]
    otlp: bool,
}

/// Where the events go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuditDestination {
    /// Appended to this file (created if missing, mode 0600 on unix).
    File(PathBuf),
    /// One line per event on stdout (diagnostic logs go to stderr).
    Stdout,
}

/// The validated `audit:` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditSettings {
    /// File or stdout.
    pub destination: AuditDestination,
    /// Queue capacity, in events.
    pub queue: usize,
    /// The replica name every event carries.
    pub replica: Option<String>,
    /// Also send the events as OTLP log records (to the `otlp:` section's collector).
    pub otlp: bool,
}

/// Checks `audit:`; `hostname` is the default replica name.
pub(crate) fn validate(
    raw: RawAudit,
    base: &Path,
    hostname: Option<String>,
) -> Result<AuditSettings, ConfigError> {
    let destination = match (raw.file, raw.stdout) {
        (Some(file), false) => AuditDestination::File(resolve(base, file)),
        (None, true) => AuditDestination::Stdout,
        (Some(_), true) => {
            return Err(invalid(
                "audit.stdout",
                "give either audit.file or audit.stdout, not both",
            ));
        }
        (None, false) => {
            return Err(invalid(
                "audit.file",
                "name a file, or set audit.stdout: true",
            ));
        }
    };
    let queue = raw.queue.unwrap_or(DEFAULT_QUEUE);
    if !(1..=MAX_QUEUE).contains(&queue) {
        return Err(invalid(
            "audit.queue",
            format!("must be 1..={MAX_QUEUE} events"),
        ));
    }
    let replica = raw.replica.or(hostname).filter(|r| !r.is_empty());
    if let Some(r) = &replica
        && (r.len() > 253 || r.chars().any(|c| c.is_control()))
    {
        return Err(invalid("audit.replica", "at most 253 printable characters"));
    }
    Ok(AuditSettings {
        destination,
        queue,
        replica,
        otlp: raw.otlp,
    })
}
