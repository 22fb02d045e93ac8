//! [`IamJoinLayer`] and its builder.

use std::sync::Arc;
use std::time::Duration;

use iam_join_assertion::AssertionSigner;
use iam_join_core::challenge::ChallengeKey;
use iam_join_core::policy::TokenPolicy;
use iam_join_core::{Audience, ProofRules, StsHostAllowList, TokenName};
use opentelemetry::metrics::Meter;
use tower_layer::Layer;

use crate::audit::{AuditEvent, AuditSink};
use crate::cache::{CheckedTokens, OutcomeExpiry, SharedCache};
use crate::error::BuildError;
use crate::metrics::Metrics;
use crate::organizations::OrgLookup;
use crate::policy::PolicyHandle;
use crate::ratelimit::{
    ADMITTED_TTL, MemoryRateLimiter, RateLimiterBackend, RateLimits, RecentVerdicts,
};
use crate::replay::{MemoryReplayStore, ReplayStore};
use crate::service::IamJoinService;
use crate::service::routes::{PathPattern, Routes};
use crate::service::shared::Shared;
use crate::spans::Tracing;
use crate::sts::{HyperStsClient, StsClient, StsClientConfig};
use crate::verifier::Verifier;

/// Default prefix of the layer's own endpoints.
pub const DEFAULT_PREFIX: &str = "/v1/iam-join";

/// Puts IAM-join verification in front of a service. Cheap to clone; every clone shares the
/// cache, limits, replay store and policy.
#[derive(Clone, Debug)]
pub struct IamJoinLayer {
    shared: Arc<Shared>,
}

impl IamJoinLayer {
    /// Starts a builder.
    pub fn builder() -> IamJoinLayerBuilder {
        IamJoinLayerBuilder::default()
    }

    /// The policy handle: [`PolicyHandle::store`] or [`PolicyHandle::reload`] swap the policy
    /// for the next request.
    pub fn policy(&self) -> &PolicyHandle {
        self.shared.verifier.policy()
    }

    /// Reloads the policy from `path`, keeping the old one on error, and counts the reload in
    /// `iam_join_policy_reloads_total`.
    pub fn reload_policy(
        &self,
        path: &std::path::Path,
    ) -> Result<Arc<TokenPolicy>, iam_join_core::policy::PolicyError> {
        let verifier = &self.shared.verifier;
        let result = verifier.policy().reload(path);
        if let Some(m) = &verifier.metrics {
            m.policy_reload(if result.is_ok() { "ok" } else { "error" });
        }
        verifier.audit(|| {
            AuditEvent::policy_reload(match &result {
                Ok(policy) => Ok(policy.len()),
                Err(e) => Err(e.to_string()),
            })
        });
        result
    }

    /// The verification pipeline, for callers that verify outside a tower stack (benches,
    /// custom servers).
    pub fn verifier(&self) -> &Arc<Verifier> {
        &self.shared.verifier
    }

    /// Replaces the assertion keys with what `load` returns, keeping the old keys on error, and
    /// counts the reload in `iam_join_key_reloads_total{result}`. `None` without a signer.
    pub fn reload_assertion_keys<E: std::fmt::Display>(
        &self,
        load: impl FnOnce() -> Result<iam_join_assertion::KeySet, E>,
    ) -> Option<Result<(), E>> {
        let signer = self.shared.signer.as_ref()?;
        let verifier = &self.shared.verifier;
        let result = load().map(|keys| {
            let published = keys.published().len();
            signer.replace_keys(keys);
            published
        });
        if let Some(m) = &verifier.metrics {
            m.key_reload(if result.is_ok() { "ok" } else { "error" });
        }
        verifier.audit(|| {
            AuditEvent::keys_reload(match &result {
                Ok(published) => Ok(*published),
                Err(e) => Err(e.to_string()),
            })
        });
        Some(result.map(|_| ()))
    }

    /// The assertion signer, when one is set (to rotate its keys on reload).
    pub fn assertion_signer(&self) -> Option<&Arc<AssertionSigner>> {
        self.shared.signer.as_ref()
    }
}

impl<S> Layer<S> for IamJoinLayer {
    type Service = IamJoinService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        IamJoinService::new(inner, Arc::clone(&self.shared))
    }
}

/// Builds an [`IamJoinLayer`], validating everything once.
#[derive(Default)]
pub struct IamJoinLayerBuilder {
    audience: Option<String>,
    policy: Option<PolicyHandle>,
    default_token: Option<String>,
    prefix: Option<String>,
    hosts: Option<StsHostAllowList>,
    fips: bool,
    extra_regions: Vec<String>,
    sts_client: Option<Arc<dyn StsClient>>,
    sts_config: StsClientConfig,
    challenge_key: Option<ChallengeKey>,
    challenges: Option<bool>,
    challenge_ttl: Option<Duration>,
    challenge_paths: Vec<String>,
    public_paths: Vec<String>,
    cache_capacity: Option<u64>,
    negative_ttl: Option<Duration>,
    limits: Option<RateLimits>,
    limiter: Option<Arc<dyn RateLimiterBackend>>,
    replay: Option<Arc<dyn ReplayStore>>,
    shared_cache: Option<Arc<dyn SharedCache>>,
    trusted_proxies: Vec<ipnet::IpNet>,
    identity_headers: bool,
    signer: Option<Arc<AssertionSigner>>,
    meter: Option<Meter>,
    organizations: Option<Arc<dyn OrgLookup>>,
    audit: Option<Arc<dyn AuditSink>>,
    tracing: Option<Arc<Tracing>>,
}

impl IamJoinLayerBuilder {
    /// This verifier's audience (`x-iam-join-audience`, and `x-k8s-aws-id` for EKS tokens).
    /// Pick a value unique to this deployment, e.g. the cluster's public name.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// The token policy (a handle lets the caller swap it later).
    pub fn policy(mut self, policy: impl Into<PolicyHandle>) -> Self {
        self.policy = Some(policy.into());
        self
    }

    /// The join token used when a request sends no `X-IAM-Join-Token`.
    pub fn default_token(mut self, name: impl Into<String>) -> Self {
        self.default_token = Some(name.into());
        self
    }

    /// Prefix of the layer's endpoints (default `/v1/iam-join`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// Replaces the STS host allow-list.
    pub fn hosts(mut self, hosts: StsHostAllowList) -> Self {
        self.hosts = Some(hosts);
        self
    }

    /// Accept only FIPS STS endpoints.
    pub fn fips(mut self, on: bool) -> Self {
        self.fips = on;
        self
    }

    /// Regions to allow beyond the built-in list.
    pub fn extra_regions<I: IntoIterator<Item = S>, S: Into<String>>(mut self, regions: I) -> Self {
        self.extra_regions
            .extend(regions.into_iter().map(Into::into));
        self
    }

    /// Sends proofs for `host` to `base_url` instead (VPC endpoint, emulator); the signed
    /// `Host` is kept.
    pub fn sts_override(mut self, host: impl Into<String>, base_url: impl Into<String>) -> Self {
        self.sts_config
            .overrides
            .insert(host.into(), base_url.into());
        self
    }

    /// Overrides for every allowed host at once (tests, demos).
    pub fn sts_override_all(mut self, base_url: impl Into<String>) -> Self {
        let url = base_url.into();
        let hosts = self.hosts.clone().unwrap_or_default();
        for h in hosts.hosts() {
            self.sts_config
                .overrides
                .insert(h.name().to_owned(), url.clone());
        }
        self
    }

    /// STS connect and total timeouts (defaults 2 s and 5 s).
    pub fn sts_timeouts(mut self, connect: Duration, total: Duration) -> Self {
        self.sts_config.connect_timeout = connect;
        self.sts_config.timeout = total;
        self
    }

    /// A custom STS transport (tests, benches). Overrides and timeouts are then its business.
    pub fn sts_client(mut self, client: Arc<dyn StsClient>) -> Self {
        self.sts_client = Some(client);
        self
    }

    /// The key that signs challenges, shared by replicas that redeem each other's challenges.
    /// It needs a shared [`replay_store`](Self::replay_store) (Redis): with a per-process store
    /// every replica would accept each challenge once, so [`build`](Self::build) refuses it
    /// ([`BuildError::ChallengeKeyNeedsSharedStore`]). Without a key, a random one is made that
    /// lives and dies with the process, so no other process accepts its challenges.
    pub fn challenge_key(mut self, key: ChallengeKey) -> Self {
        self.challenge_key = Some(key);
        self.challenges = Some(true);
        self
    }

    /// Turns challenge issue and redemption on or off (default on).
    pub fn challenges(mut self, on: bool) -> Self {
        self.challenges = Some(on);
        self
    }

    /// How long an issued challenge is valid (default 60 s).
    pub fn challenge_ttl(mut self, ttl: Duration) -> Self {
        self.challenge_ttl = Some(ttl);
        self
    }

    /// Paths (exact, or a prefix ending in `*`) that accept only challenge-bound proofs; see
    /// [`PathPattern`]. Matched in any spelling an upstream could normalise onto them (case,
    /// repeated and trailing slashes, dot segments, percent-encoded unreserved characters).
    pub fn challenge_paths<I: IntoIterator<Item = S>, S: Into<String>>(mut self, paths: I) -> Self {
        self.challenge_paths
            .extend(paths.into_iter().map(Into::into));
        self
    }

    /// Paths (exact, or a prefix ending in `*`) passed through without a proof (health checks);
    /// see [`PathPattern`]. Matched strictly: only a path already in normal form, written as
    /// the pattern is, and not a challenge path, is public. Incoming `x-iam-join-*` headers and
    /// proofs are still removed.
    pub fn public_paths<I: IntoIterator<Item = S>, S: Into<String>>(mut self, paths: I) -> Self {
        self.public_paths.extend(paths.into_iter().map(Into::into));
        self
    }

    /// Most STS outcomes cached (default 100 000). Measured at about 0.9 KiB
    /// per entry (benches/RESULTS.md), so the default costs up to about 85 MiB.
    pub fn cache_capacity(mut self, entries: u64) -> Self {
        self.cache_capacity = Some(entries);
        self
    }

    /// How long a definitive STS rejection is cached (default 10 s). Longer saves STS calls on
    /// a flood of bad proofs; shorter lets a fixed clock or credential work sooner.
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = Some(ttl);
        self
    }

    /// Rate limits (defaults: [`RateLimits::default`]).
    pub fn rate_limits(mut self, limits: RateLimits) -> Self {
        self.limits = Some(limits);
        self
    }

    /// A rate limit backend shared by replicas (Redis); its limits are its own.
    pub fn rate_limiter(mut self, limiter: Arc<dyn RateLimiterBackend>) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// The replay store for challenges (default: in memory).
    pub fn replay_store(mut self, store: Arc<dyn ReplayStore>) -> Self {
        self.replay = Some(store);
        self
    }

    /// AWS Organizations, asked only when a token's organization rule could admit an identity
    /// no other rule admits. Used as given: wrap it in a
    /// [`CachedOrgLookup`](crate::organizations::CachedOrgLookup) to cache and limit lookups.
    /// Without it, rules with `aws_organization_id` never match.
    pub fn organizations(mut self, lookup: Arc<dyn OrgLookup>) -> Self {
        self.organizations = Some(lookup);
        self
    }

    /// Sends one audit event per decision (admitted or denied) and per challenge issued to
    /// `sink` ([`crate::audit`]); the sink must not block.
    pub fn audit(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.audit = Some(sink);
        self
    }

    /// A second-level cache shared by replicas (Redis).
    pub fn shared_cache(mut self, cache: Arc<dyn SharedCache>) -> Self {
        self.shared_cache = Some(cache);
        self
    }

    /// Networks of proxies whose `X-Forwarded-For` is believed for the per-client limit.
    pub fn trusted_proxies<I: IntoIterator<Item = ipnet::IpNet>>(mut self, nets: I) -> Self {
        self.trusted_proxies.extend(nets);
        self
    }

    /// Also pass the identity to the inner service as `x-iam-join-*` headers (for proxies).
    pub fn identity_headers(mut self, on: bool) -> Self {
        self.identity_headers = on;
        self
    }

    /// Sign an identity assertion (JWT) for every admitted request and hand it on in the
    /// signer's header (default `x-iam-join-assertion`), from `/verify` as a header and from
    /// `/whoami` as the field `assertion`; serve the public keys at `GET {prefix}/jwks.json`
    /// and `GET /.well-known/jwks.json`. Keep the `Arc` to rotate keys
    /// ([`AssertionSigner::replace_keys`]). A cached assertion is reused until a quarter of its
    /// life is left, so a cache hit on the proof does not sign.
    pub fn assertion(mut self, signer: impl Into<Arc<AssertionSigner>>) -> Self {
        self.signer = Some(signer.into());
        self
    }

    /// Record OpenTelemetry spans with this tracer: a server span per request, with children
    /// for the verification, the cache, the STS call and the inner service; a trusted proxy's
    /// W3C `traceparent` is the parent, and the inner service gets the trace's `traceparent`
    /// (never STS). Off (no span, no cost) unless set. See DESIGN §9 and the README.
    pub fn tracer<T>(mut self, tracer: T) -> Self
    where
        T: opentelemetry::trace::Tracer + Send + Sync + 'static,
        T::Span: Send + Sync + 'static,
    {
        self.tracing = Some(Arc::new(Tracing::new(
            opentelemetry::global::BoxedTracer::new(Box::new(tracer)),
        )));
        self
    }

    /// Record metrics on this meter (no exporter is installed).
    pub fn meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// Validates and builds the layer.
    pub fn build(self) -> Result<IamJoinLayer, BuildError> {
        let policy = self.policy.ok_or(BuildError::MissingPolicy)?;
        let prefix = self.prefix.unwrap_or_else(|| DEFAULT_PREFIX.to_owned());
        if !prefix.starts_with('/') || prefix.ends_with('/') {
            return Err(BuildError::BadPrefix(prefix));
        }
        // The names' rules live in core (iam_join_core::names), shared with the proxy's
        // configuration and the client.
        if let Some(a) = &self.audience
            && a.parse::<Audience>().is_err()
        {
            return Err(BuildError::BadAudience(a.clone()));
        }
        if let Some(t) = &self.default_token
            && t.parse::<TokenName>().is_err()
        {
            return Err(BuildError::BadTokenName(t.clone()));
        }
        let challenges = self.challenges.unwrap_or(true);
        if self.audience.is_none() && !challenges {
            return Err(BuildError::NoBinding);
        }
        let limits = self.limits.unwrap_or_default();
        limits.validate().map_err(BuildError::BadRate)?;
        let hosts = self
            .hosts
            .unwrap_or_default()
            .fips_only(self.fips)
            .with_extra_regions(&self.extra_regions)?;
        let routes = Routes::new(
            prefix,
            parse_patterns("public_paths", &self.public_paths)?,
            parse_patterns("challenge_paths", &self.challenge_paths)?,
        )
        .with_jwks(self.signer.is_some());
        let challenge_ttl = self.challenge_ttl.unwrap_or(Duration::from_secs(60));
        let replay = self
            .replay
            .unwrap_or_else(|| Arc::new(MemoryReplayStore::new(1_000_000, challenge_ttl)));
        if challenges && self.challenge_key.is_some() && !replay.is_shared() {
            return Err(BuildError::ChallengeKeyNeedsSharedStore);
        }
        let challenge_key = if challenges {
            Some(match self.challenge_key {
                Some(k) => k,
                None => {
                    let mut bytes = [0u8; 32];
                    getrandom::fill(&mut bytes).map_err(|_| BuildError::NoBinding)?;
                    ChallengeKey::from_bytes(&bytes)
                        .unwrap_or_else(|_| unreachable!("32 bytes is long enough"))
                }
            })
        } else {
            None
        };
        let sts: Arc<dyn StsClient> = match self.sts_client {
            Some(c) => c,
            None => Arc::new(HyperStsClient::new(self.sts_config)?),
        };
        let capacity = self.cache_capacity.unwrap_or(100_000);
        let cache = moka::future::Cache::builder()
            .max_capacity(capacity)
            .expire_after(OutcomeExpiry)
            .build();
        let checked_tokens = CheckedTokens::new(capacity);
        let metrics = self.meter.as_ref().map(|m| {
            let c = cache.clone();
            Metrics::new(m, Some(Arc::new(move || c.entry_count())))
        });
        let negative_ttl = self.negative_ttl.unwrap_or(Duration::from_secs(10));
        let verifier = Verifier {
            rules: ProofRules {
                hosts,
                audience: self.audience,
                challenge_key,
                challenge_ttl,
                ..ProofRules::default()
            },
            policy,
            sts,
            cache,
            checked_tokens,
            shared_cache: self.shared_cache,
            negative_ttl,
            limiter: self
                .limiter
                .unwrap_or_else(|| Arc::new(MemoryRateLimiter::new(limits))),
            verdicts: RecentVerdicts::new(ADMITTED_TTL, negative_ttl),
            replay,
            metrics,
            organizations: self.organizations,
            audit: self.audit,
            tracing: self.tracing.clone(),
        };
        Ok(IamJoinLayer {
            shared: Arc::new(Shared {
                verifier: Arc::new(verifier),
                routes,
                default_token: self.default_token,
                trusted_proxies: self.trusted_proxies,
                identity_headers: self.identity_headers,
                signer: self.signer,
                tracing: self.tracing,
            }),
        })
    }
}

fn parse_patterns(
    field: &'static str,
    patterns: &[String],
) -> Result<Vec<PathPattern>, BuildError> {
    patterns
        .iter()
        .map(|p| p.parse())
        .collect::<Result<_, _>>()
        .map_err(|source| BuildError::BadPathPattern { field, source })
}

impl From<TokenPolicy> for PolicyHandle {
    fn from(p: TokenPolicy) -> Self {
        PolicyHandle::new(p)
    }
}
