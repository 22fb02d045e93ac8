//! The verification pipeline of DESIGN §4, independent of HTTP plumbing.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use iam_join_core::policy::{OrgInfo, PolicyDenial, Subject, TokenPolicy};
use iam_join_core::{
    Binding, BindingKind, CallerIdentity, ErrorCode, ProofRules, SignedStsRequest, StsFailure,
    VerifiedIdentity, VerifyError, check_proof, parse_sts_response,
};
use moka::future::Cache;
use opentelemetry::KeyValue;
use opentelemetry::trace::SpanKind;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::audit::{AuditEvent, AuditRequest, AuditSink, proof_fingerprint};
use crate::cache::{CachedOutcome, CheckedToken, CheckedTokens, SharedCache, SharedOutcome};
use crate::error::Denial;
use crate::log_summary::{self, LogSummary};
use crate::metrics::Metrics;
use crate::organizations::OrgLookup;
use crate::policy::PolicyHandle;
use crate::ratelimit::{
    KeyIdDigest, LimitScope, REJECTED_KEY_ID_LABEL, RateDecision, RateLimiterBackend,
    RecentVerdicts,
};
use crate::replay::ReplayStore;
use crate::spans::{self, Tracing};
use crate::sts::StsClient;

static LAST_FAIL_OPEN_WARNING: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// STS's answer for an access key id it does not know (remembered per key id).
const INVALID_CLIENT_TOKEN_ID: &str = "InvalidClientTokenId";

/// How long callers are told to wait when STS or the replay store is unavailable.
const UNAVAILABLE_RETRY: Duration = Duration::from_secs(1);

/// Runs the pipeline. Cheap to share (`Arc`); the layer holds one.
pub struct Verifier {
    pub(crate) rules: ProofRules,
    pub(crate) policy: PolicyHandle,
    pub(crate) sts: Arc<dyn StsClient>,
    pub(crate) cache: Cache<[u8; 32], CachedOutcome>,
    pub(crate) checked_tokens: CheckedTokens,
    pub(crate) shared_cache: Option<Arc<dyn SharedCache>>,
    pub(crate) negative_ttl: Duration,
    pub(crate) limiter: Arc<dyn RateLimiterBackend>,
    pub(crate) verdicts: RecentVerdicts,
    pub(crate) replay: Arc<dyn ReplayStore>,
    pub(crate) metrics: Option<Metrics>,
    /// AWS Organizations, for rules with an organization condition (without it they never
    /// match).
    pub(crate) organizations: Option<Arc<dyn OrgLookup>>,
    /// Where audit events go (one per decision), if anywhere.
    pub(crate) audit: Option<Arc<dyn AuditSink>>,
    /// Spans of the pipeline's steps, when a tracer is set.
    pub(crate) tracing: Option<Arc<Tracing>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("audience", &self.rules.audience)
            .field("cache_entries", &self.cache.entry_count())
            .finish_non_exhaustive()
    }
}

/// One proof to verify.
#[derive(Clone, Copy, Debug)]
pub struct VerifyRequest<'a> {
    /// The proof token.
    pub proof: &'a str,
    /// The join token name.
    pub token: &'a str,
    /// The client address (per-client rate limit key).
    pub client: Option<IpAddr>,
    /// Whether this route accepts only challenge-bound proofs.
    pub require_challenge: bool,
    /// The request's method, path and client, for the audit event (`None` without a sink).
    pub audit: Option<&'a AuditRequest>,
}

/// How a decision was reached, for metrics, logs and the audit event.
#[derive(Default)]
struct DecisionTrace {
    binding: Option<BindingKind>,
    /// The SHA-256 of the proof's bytes (taken once, for the fast path; the audit fingerprint).
    proof_sha256: Option<[u8; 32]>,
    /// `cache` (a cached STS answer), `coalesced` (another request's STS call) or `sts`.
    source: Option<&'static str>,
}

fn sts_failure_denial(f: &StsFailure) -> Denial {
    match f {
        StsFailure::Rejected { code } => VerifyError::new(
            ErrorCode::StsRejected,
            format!("STS rejected the proof ({code}); check the credentials, clock and signing"),
        )
        .into(),
        StsFailure::Unavailable { reason } => Denial::retry(
            ErrorCode::StsUnavailable,
            format!("STS is unavailable ({reason}); retry later"),
            UNAVAILABLE_RETRY,
        ),
        _ => Denial::retry(
            ErrorCode::StsUnavailable,
            "STS gave an answer that could not be verified; retry later",
            UNAVAILABLE_RETRY,
        ),
    }
}

impl Verifier {
    /// The token policy handle.
    pub fn policy(&self) -> &PolicyHandle {
        &self.policy
    }

    /// Entries in the local STS cache (approximate).
    pub fn cache_entries(&self) -> u64 {
        self.cache.entry_count()
    }

    /// Verifies a proof end to end: local checks, binding, rate limits, cache or STS, policy.
    /// Records the decision (one metric sample, one `tracing` event; never the proof).
    pub async fn verify(&self, req: VerifyRequest<'_>) -> Result<VerifiedIdentity, Denial> {
        let start = Instant::now();
        let mut trace = DecisionTrace::default();
        let span = spans::child(self.tracing.as_deref(), "iam_join.verify", SpanKind::Internal);
        let result = spans::in_span!(span, self.verify_inner(req, &mut trace));
        let binding = trace.binding.map_or("none", BindingKind::as_str);
        span_decision(&span, &result, binding, trace.source);
        let elapsed = start.elapsed();
        if let Some(m) = &self.metrics {
            m.verify_duration(elapsed.as_secs_f64());
        }
        if let Some(sink) = &self.audit {
            let event = match &result {
                Ok(id) => AuditEvent::admitted(id, binding),
                Err(d) => AuditEvent::denied(d.code(), d.error.message(), Some(req.token), binding),
            };
            sink.record(AuditEvent {
                source: trace.source,
                latency_us: u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
                proof_fingerprint: trace.proof_sha256.as_ref().map(proof_fingerprint),
                ..event.with_request(req.audit)
            });
        }
        match &result {
            Ok(id) => {
                if let Some(m) = &self.metrics {
                    m.request("admitted", "ok", binding);
                }
                tracing::info!(
                    target: "iam_join::decision",
                    outcome = "admitted",
                    account = id.identity.account(),
                    arn = id.identity.arn(),
                    token = id.token.as_str(),
                    binding,
                    region = id.identity.region(),
                );
            }
            Err(d) => self.record_denial(d, binding, Some(req.token), req.client),
        }
        result
    }

    /// Records a denial decided before verification started (no proof, bad token header).
    pub fn deny_early(&self, denial: Denial) -> Denial {
        self.deny_early_audited(denial, None)
    }

    /// [`deny_early`](Self::deny_early), with the request for the audit event.
    pub fn deny_early_audited(&self, denial: Denial, request: Option<&AuditRequest>) -> Denial {
        self.record_denial(&denial, "none", None, request.and_then(|r| r.client));
        self.audit(|| {
            AuditEvent::denied(denial.code(), denial.error.message(), None, "none")
                .with_request(request)
        });
        denial
    }

    /// Records the event `make` builds, when a sink is set (built only then).
    pub(crate) fn audit(&self, make: impl FnOnce() -> AuditEvent) {
        if let Some(sink) = &self.audit {
            sink.record(make());
        }
    }

    /// Whether decisions are audited (so callers build an [`AuditRequest`] only then).
    pub fn audits(&self) -> bool {
        self.audit.is_some()
    }

    /// Records a challenge handed out.
    pub fn audit_challenge_issued(&self, request: Option<&AuditRequest>) {
        self.audit(|| AuditEvent::challenge_issued().with_request(request));
    }

    fn record_denial(
        &self,
        d: &Denial,
        binding: &'static str,
        token: Option<&str>,
        client: Option<IpAddr>,
    ) {
        if let Some(m) = &self.metrics {
            m.request("denied", d.code().as_str(), binding);
        }
        // Denials are what an attacker repeats: one line per code per interval, with a count
        // (the metric above has every one).
        static DENIALS: LogSummary = LogSummary::new(log_summary::DEFAULT_INTERVAL);
        DENIALS.record(d.code().as_str(), |suppressed| {
            tracing::info!(
                target: "iam_join::decision",
                outcome = "denied",
                code = d.code().as_str(),
                reason = d.error.message(),
                token = token.map(printable_name),
                binding,
                client = client.map(|c| c.to_string()),
                suppressed,
            );
        });
    }

    async fn verify_inner(
        &self,
        req: VerifyRequest<'_>,
        trace: &mut DecisionTrace,
    ) -> Result<VerifiedIdentity, Denial> {
        let now = OffsetDateTime::now_utc();
        // Fast path for a reused audience-bound proof: the local checks depend only on the
        // token's bytes and this verifier's fixed rules, except for expiry, so a token that
        // passed them before needs only its expiry checked again.
        let token_digest: [u8; 32] = Sha256::digest(req.proof.as_bytes()).into();
        trace.proof_sha256 = Some(token_digest);
        let lookup_started = spans::now_if(self.tracing.as_deref());
        if !req.require_challenge
            && let Some(fast) = self.checked_tokens.get(&token_digest, now)
            && let Some(CachedOutcome::Identity { identity, .. }) =
                self.cache.get(&fast.cache_key).await
        {
            trace.binding = Some(BindingKind::Audience);
            trace.source = Some("cache");
            self.cache_metric("hit");
            spans::child_since(self.tracing.as_deref(), "iam_join.cache", lookup_started)
                .set(|| vec![KeyValue::new("iam_join.cache.result", "hit")]);
            return self
                .admit(
                    req.token,
                    &identity,
                    BindingKind::Audience,
                    fast.expires_at,
                    now,
                )
                .await;
        }
        let checked = check_proof(req.proof, &self.rules, now)?;
        trace.binding = Some(checked.binding().kind());
        if matches!(checked.binding(), Binding::Audience) {
            self.checked_tokens.insert(
                token_digest,
                CheckedToken {
                    cache_key: checked.cache_key(),
                    expires_at: checked.expires_at(),
                },
                now,
            );
        }
        if req.require_challenge && !matches!(checked.binding(), Binding::Challenge(_)) {
            return Err(VerifyError::new(
                ErrorCode::BindingMissing,
                "this path needs a challenge-bound proof; get one from the challenge endpoint",
            )
            .into());
        }
        let client_key = req
            .client
            .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        let identity = match checked.binding() {
            Binding::Audience => {
                self.audience_identity(&checked, &client_key, req.client, &mut trace.source)
                    .await?
            }
            Binding::Challenge(claims) => {
                self.limit(LimitScope::Client, &client_key).await?;
                self.spend_sts_budget(&checked, req.client).await?;
                let ttl = Duration::try_from(claims.expires_at() - now).unwrap_or(Duration::ZERO)
                    + Duration::from_secs(60);
                let redeem = spans::child(
                    self.tracing.as_deref(),
                    "iam_join.challenge.redeem",
                    SpanKind::Internal,
                );
                let redeemed = spans::in_span!(redeem, self.replay.redeem(&claims.replay_id(), ttl));
                redeem.set(|| vec![KeyValue::new("iam_join.challenge.result", match &redeemed {
                    Ok(true) => "redeemed",
                    Ok(false) => "reused",
                    Err(_) => "store_unavailable",
                })]);
                drop(redeem);
                match redeemed {
                    Ok(true) => self.challenge_metric("redeemed"),
                    Ok(false) => {
                        self.challenge_metric("reused");
                        return Err(VerifyError::new(
                            ErrorCode::ChallengeReused,
                            "this challenge was already used; request a new one",
                        )
                        .into());
                    }
                    Err(_) => {
                        self.challenge_metric("store_unavailable");
                        return Err(Denial::retry(
                            ErrorCode::ReplayStoreUnavailable,
                            "the challenge could not be recorded; retry with a new challenge",
                            UNAVAILABLE_RETRY,
                        ));
                    }
                }
                trace.source = Some("sts");
                Arc::new(self.call_sts(&checked).await.map_err(|f| {
                    let mut d = sts_failure_denial(&f);
                    if d.code() == ErrorCode::StsUnavailable {
                        // The challenge is spent: a retry needs a new one.
                        d.error = VerifyError::new(
                            ErrorCode::StsUnavailable,
                            "STS is unavailable; retry later with a new challenge",
                        );
                    }
                    d
                })?)
            }
        };
        let admitted = self
            .admit(
                req.token,
                &identity,
                checked.binding().kind(),
                checked.expires_at(),
                now,
            )
            .await?;
        self.verdicts
            .record_admitted(KeyIdDigest::of(checked.access_key_id()), req.client);
        Ok(admitted)
    }

    /// Steps 10-11: the proof's own expiry, the token policy, the per-account limit.
    async fn admit(
        &self,
        token_name: &str,
        identity: &Arc<CallerIdentity>,
        binding: BindingKind,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<VerifiedIdentity, Denial> {
        // Never admit past the proof's own expiry, even from the cache.
        if OffsetDateTime::now_utc() > expires_at {
            return Err(VerifyError::new(
                ErrorCode::ProofExpired,
                "proof has expired; sign a new one",
            )
            .into());
        }
        let policy = self.policy.load();
        let subject = Subject {
            account: identity.account(),
            arn: identity.arn(),
            region: identity.region(),
        };
        let org = self.org_info(&policy, token_name, &subject, now).await?;
        let token = policy
            .authorize_with_org(token_name, &subject, org.as_ref(), now)
            .map_err(|d| {
                let (code, msg) = match d {
                    PolicyDenial::UnknownToken => (
                        ErrorCode::UnknownToken,
                        format!("no iam join token named {:?}", printable_name(token_name)),
                    ),
                    PolicyDenial::TokenExpired => (
                        ErrorCode::TokenExpired,
                        format!("join token {:?} has expired", printable_name(token_name)),
                    ),
                    _ => (
                        ErrorCode::NotAllowed,
                        format!(
                            "identity in account {} matches no allow rule of token {:?}",
                            identity.account(),
                            printable_name(token_name)
                        ),
                    ),
                };
                Denial::from(VerifyError::new(code, msg))
            })?;
        self.limit(LimitScope::Account, identity.account()).await?;
        Ok(VerifiedIdentity {
            identity: (**identity).clone(),
            token: token.name().to_owned(),
            roles: token
                .roles()
                .iter()
                .map(|r| r.as_str().to_owned())
                .collect(),
            binding,
            expires_at,
        })
    }

    /// What AWS Organizations says about the subject's account, looked up only when the
    /// decision depends on it: no rule matches without it and an organization rule could match.
    /// A lookup without a definitive answer is a retryable denial, never a match.
    async fn org_info(
        &self,
        policy: &TokenPolicy,
        token_name: &str,
        subject: &Subject<'_>,
        now: OffsetDateTime,
    ) -> Result<Option<OrgInfo>, Denial> {
        let Some(orgs) = &self.organizations else {
            return Ok(None);
        };
        if !policy.needs_org_lookup(token_name, subject, now) {
            return Ok(None);
        }
        let span = spans::child(
            self.tracing.as_deref(),
            "aws.organizations.lookup",
            SpanKind::Client,
        );
        let answer = spans::in_span!(span, orgs.lookup(subject.account));
        let result = match &answer {
            Ok(Some(_)) => "member",
            Ok(None) => "not_member",
            Err(_) => "unavailable",
        };
        span.set(|| vec![KeyValue::new("iam_join.organizations.result", result)]);
        if answer.is_err() {
            span.fail("organizations_unavailable");
        }
        drop(span);
        if let Some(m) = &self.metrics {
            m.org_lookup(result);
        }
        answer.map_err(|e| {
            static ORG_FAILURES: LogSummary = LogSummary::new(log_summary::DEFAULT_INTERVAL);
            ORG_FAILURES.record("org_lookup", |suppressed| {
                tracing::warn!(error = %e, suppressed, "AWS Organizations lookup failed");
            });
            Denial::retry(
                ErrorCode::OrganizationsUnavailable,
                "AWS Organizations could not be asked about this account; retry later",
                UNAVAILABLE_RETRY,
            )
        })
    }

    fn challenge_metric(&self, result: &'static str) {
        if let Some(m) = &self.metrics {
            m.challenge(result);
        }
    }

    /// Spends one cell of `scope` for `key`; a refusal is a counted 429.
    async fn limit(&self, scope: LimitScope, key: &str) -> Result<(), Denial> {
        self.try_limit(scope, key).await.inspect_err(|_| {
            if let Some(m) = &self.metrics {
                m.rate_limited(scope.metric_label(false));
            }
        })
    }

    /// Like [`Self::limit`], but a refusal is not counted: the caller has somewhere else to go.
    async fn try_limit(&self, scope: LimitScope, key: &str) -> Result<(), Denial> {
        match self.limiter.check(scope, key).await {
            RateDecision::Allow => Ok(()),
            RateDecision::Limited(wait) => Err(Denial::retry(
                ErrorCode::RateLimited,
                format!("too many requests ({} limit); retry later", scope.as_str()),
                wait,
            )),
            RateDecision::Unavailable => {
                if let Some(m) = &self.metrics {
                    m.rate_limited(scope.metric_label(true));
                }
                // Warn at most every 10 s: the metric counts every occurrence.
                let now = OffsetDateTime::now_utc().unix_timestamp();
                let last = LAST_FAIL_OPEN_WARNING.load(Ordering::Relaxed);
                if now - last >= 10
                    && LAST_FAIL_OPEN_WARNING
                        .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    tracing::warn!(
                        scope = scope.as_str(),
                        "rate limit backend unavailable; failing open"
                    );
                }
                Ok(())
            }
        }
    }

    /// The STS budget, spent just before an STS call (README "Rate limits"). A key id STS
    /// recently called invalid is refused without asking again. A key id or address the policy
    /// admitted recently spends the reserved share while the key id is within its own limit,
    /// and else the open share; anyone else spends only the open share, and a key id over its
    /// limit is refused. So junk from many addresses can exhaust the open share but not the
    /// reserved one, and one key id cannot take all of either.
    async fn spend_sts_budget(
        &self,
        checked: &SignedStsRequest,
        client: Option<IpAddr>,
    ) -> Result<(), Denial> {
        let key = KeyIdDigest::of(checked.access_key_id());
        if self.verdicts.refuses(credentials_digest(checked), key) {
            if let Some(m) = &self.metrics {
                m.rate_limited(REJECTED_KEY_ID_LABEL);
            }
            return Err(sts_failure_denial(&StsFailure::Rejected {
                code: INVALID_CLIENT_TOKEN_ID.to_owned(),
            }));
        }
        let key_hex = key.to_hex();
        if self.verdicts.admitted_recently(key, client) {
            if self.try_limit(LimitScope::KeyId, &key_hex).await.is_ok()
                && self.try_limit(LimitScope::StsReserved, "sts").await.is_ok()
            {
                return Ok(());
            }
        } else {
            self.limit(LimitScope::KeyId, &key_hex).await?;
        }
        self.limit(LimitScope::StsBudget, "sts").await
    }

    async fn audience_identity(
        &self,
        checked: &SignedStsRequest,
        client_key: &str,
        client: Option<IpAddr>,
        source: &mut Option<&'static str>,
    ) -> Result<Arc<CallerIdentity>, Denial> {
        let span = spans::child(self.tracing.as_deref(), "iam_join.cache", SpanKind::Internal);
        let outcome = spans::in_span!(
            span,
            self.cached_outcome(checked, client_key, client, source)
        );
        span.set(|| {
            vec![KeyValue::new(
                "iam_join.cache.result",
                match *source {
                    Some("cache") => "hit",
                    Some("coalesced") => "coalesced",
                    _ => "miss",
                },
            )]
        });
        match outcome? {
            CachedOutcome::Identity { identity, .. } => Ok(identity),
            CachedOutcome::Rejected { code, .. } => {
                Err(sts_failure_denial(&StsFailure::Rejected {
                    code: code.to_string(),
                }))
            }
        }
    }

    /// The STS answer for `checked`: cached, or fetched once for all concurrent askers.
    async fn cached_outcome(
        &self,
        checked: &SignedStsRequest,
        client_key: &str,
        client: Option<IpAddr>,
        source: &mut Option<&'static str>,
    ) -> Result<CachedOutcome, Denial> {
        let key = checked.cache_key();
        Ok(match self.cache.get(&key).await {
            Some(hit) => {
                *source = Some("cache");
                self.cache_metric("hit");
                hit
            }
            None => {
                // The per-client limit is charged inside the init future, so only the request
                // that really makes the STS call pays; requests coalesced onto it do not. A
                // waiter that got another client's rate-limit answer tries once more on its own.
                let mut retried = false;
                loop {
                    let ran = AtomicBool::new(false);
                    let result = self
                        .cache
                        .try_get_with(key, async {
                            ran.store(true, Ordering::Relaxed);
                            self.limit(LimitScope::Client, client_key).await?;
                            self.fetch_outcome(checked, client).await
                        })
                        .await;
                    let ran = ran.load(Ordering::Relaxed);
                    *source = Some(if ran { "sts" } else { "coalesced" });
                    if ran {
                        self.cache_metric("miss");
                        // Keeps entry_count (the iam_join_cache_entries gauge) current; misses
                        // already paid for an STS call, so this costs nothing noticeable.
                        self.cache.run_pending_tasks().await;
                    } else {
                        self.cache_metric("coalesced");
                    }
                    match result {
                        Err(e) if !ran && !retried && e.code() == ErrorCode::RateLimited => {
                            retried = true;
                        }
                        other => break other.map_err(|e| (*e).clone())?,
                    }
                }
            }
        })
    }

    /// A cache miss: shared second level, then the STS budget and STS itself.
    async fn fetch_outcome(
        &self,
        checked: &SignedStsRequest,
        client: Option<IpAddr>,
    ) -> Result<CachedOutcome, Denial> {
        let shared_key = self
            .shared_cache
            .as_ref()
            .map(|_| hex::encode(checked.cache_key()));
        if let (Some(shared), Some(k)) = (&self.shared_cache, &shared_key)
            && let Some(found) = shared.get(k).await
            && let Some(outcome) = self.outcome_of_shared(found, checked)
        {
            return Ok(outcome);
        }
        let result = self
            .fetch_from_sts(checked, shared_key.as_deref(), client)
            .await;
        if result.is_err()
            && let (Some(cache), Some(k)) = (&self.shared_cache, &shared_key)
        {
            cache.abandon(k).await;
        }
        result
    }

    async fn fetch_from_sts(
        &self,
        checked: &SignedStsRequest,
        shared_key: Option<&str>,
        client: Option<IpAddr>,
    ) -> Result<CachedOutcome, Denial> {
        self.spend_sts_budget(checked, client).await?;
        let (outcome, shared) = match self.call_sts(checked).await {
            Ok(identity) => {
                let shared = SharedOutcome::Identity(iam_join_core::StsAnswer {
                    account: identity.account().to_owned(),
                    arn: identity.arn().to_owned(),
                    user_id: identity.user_id().to_owned(),
                });
                (
                    CachedOutcome::Identity {
                        identity: Arc::new(identity),
                        expires_at: checked.expires_at(),
                    },
                    shared,
                )
            }
            Err(StsFailure::Rejected { code }) => (
                CachedOutcome::Rejected {
                    code: Arc::from(code.as_str()),
                    ttl: self.negative_ttl,
                },
                SharedOutcome::Rejected(code),
            ),
            Err(other) => return Err(sts_failure_denial(&other)),
        };
        if let (Some(cache), Some(k)) = (&self.shared_cache, shared_key) {
            let ttl = outcome.ttl(OffsetDateTime::now_utc());
            if !ttl.is_zero() {
                cache.put(k, &shared, ttl).await;
            }
        }
        Ok(outcome)
    }

    fn outcome_of_shared(
        &self,
        found: SharedOutcome,
        checked: &SignedStsRequest,
    ) -> Option<CachedOutcome> {
        match found {
            SharedOutcome::Identity(answer) => CallerIdentity::from_answer(answer, checked.host())
                .ok()
                .map(|identity| CachedOutcome::Identity {
                    identity: Arc::new(identity),
                    expires_at: checked.expires_at(),
                }),
            SharedOutcome::Rejected(code) => Some(CachedOutcome::Rejected {
                code: Arc::from(code.as_str()),
                ttl: self.negative_ttl,
            }),
        }
    }

    fn cache_metric(&self, result: &'static str) {
        if let Some(m) = &self.metrics {
            m.cache_lookup(result);
        }
    }

    /// One STS call, as a client span. The request is sent exactly as the client signed it:
    /// no trace header is added (STS would refuse a changed signed request, and the trace is
    /// ours, not AWS's).
    async fn call_sts(&self, checked: &SignedStsRequest) -> Result<CallerIdentity, StsFailure> {
        let span = spans::child(
            self.tracing.as_deref(),
            "sts.GetCallerIdentity",
            SpanKind::Client,
        );
        span.set(|| {
            vec![
                KeyValue::new("rpc.system", "aws-api"),
                KeyValue::new("rpc.service", "STS"),
                KeyValue::new("rpc.method", "GetCallerIdentity"),
                KeyValue::new("server.address", checked.host().name().to_owned()),
                KeyValue::new("cloud.region", checked.region().to_owned()),
            ]
        });
        let result = spans::in_span!(span, self.send_to_sts(checked));
        match &result {
            Ok(_) => {}
            Err(StsFailure::Rejected { .. }) => span.fail("sts_rejected"),
            Err(_) => span.fail("sts_unavailable"),
        }
        result
    }

    async fn send_to_sts(&self, checked: &SignedStsRequest) -> Result<CallerIdentity, StsFailure> {
        let start = Instant::now();
        let answer = self.sts.send(checked).await;
        let secs = start.elapsed().as_secs_f64();
        let region = checked.region();
        match answer {
            Err(e) => {
                if let Some(m) = &self.metrics {
                    m.sts_call(region, "error".to_owned(), secs);
                }
                static STS_FAILURES: LogSummary = LogSummary::new(log_summary::DEFAULT_INTERVAL);
                STS_FAILURES.record("sts_call", |suppressed| {
                    tracing::warn!(region, error = %e, suppressed, "STS call failed");
                });
                Err(StsFailure::Unavailable { reason: e.0 })
            }
            Ok(resp) => {
                if let Some(m) = &self.metrics {
                    m.sts_call(region, resp.status.to_string(), secs);
                }
                let parsed = parse_sts_response(
                    resp.status,
                    resp.content_type.as_deref(),
                    &resp.body,
                    checked.host(),
                );
                if let Err(StsFailure::Rejected { code }) = &parsed
                    && code == INVALID_CLIENT_TOKEN_ID
                {
                    self.verdicts
                        .record_invalid_key_id(credentials_digest(checked));
                }
                parsed
            }
        }
    }
}

/// The verify span's attributes: the outcome, and for a denial its stable code as the status.
/// The identity is named as in the audit event (account, ARN, token); never the proof.
fn span_decision(
    span: &spans::SpanScope,
    result: &Result<VerifiedIdentity, Denial>,
    binding: &'static str,
    source: Option<&'static str>,
) {
    span.set(|| {
        let mut attrs = vec![
            KeyValue::new("iam_join.binding", binding),
            KeyValue::new("iam_join.source", source.unwrap_or("none")),
        ];
        match result {
            Ok(id) => attrs.extend([
                KeyValue::new("iam_join.outcome", "admitted"),
                KeyValue::new("iam_join.token", id.token.as_str().to_owned()),
                KeyValue::new("aws.account.id", id.identity.account().to_owned()),
                KeyValue::new("aws.arn", id.identity.arn().to_owned()),
            ]),
            Err(d) => attrs.extend([
                KeyValue::new("iam_join.outcome", "denied"),
                KeyValue::new("iam_join.error", d.code().as_str()),
            ]),
        }
        attrs
    });
    if let Err(d) = result {
        span.fail(d.code().as_str());
    }
}

/// Token names come from a client header: print them bounded.
fn printable_name(s: &str) -> String {
    s.chars().take(64).filter(|c| !c.is_control()).collect()
}

/// The key id and session token of a proof, digested: STS's `InvalidClientTokenId` is a verdict on
/// this pair, not on the key id alone (a forged session token next to a real key id gets it too).
fn credentials_digest(checked: &SignedStsRequest) -> KeyIdDigest {
    let from_header = checked
        .headers()
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("x-amz-security-token"))
        .map(|(_, value)| value.as_str());
    let from_query = || {
        let query = checked.path_and_query().split_once('?')?.1;
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix("X-Amz-Security-Token="))
    };
    let token = from_header.or_else(from_query).unwrap_or("");
    KeyIdDigest::of_credentials(checked.access_key_id(), token)
}
