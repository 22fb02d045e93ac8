//! Shared GCRA rate limits: one Lua script per check, on Redis's clock.

use std::sync::Arc;
use std::time::Duration;

use ::redis::Script;

use super::connection::{LinkError, RedisLink, ThrottledWarning};
use super::tagged_key;
use crate::ratelimit::{LimitScope, Rate, RateDecision, RateLimiterBackend, RateLimits};
use crate::sts::BoxFuture;

/// GCRA exactly as governor computes it (`tau = T * (burst - 1)`), in microseconds of Redis's
/// `TIME`, so replicas with skewed clocks agree. The state is the theoretical arrival time
/// (TAT); it expires when it has fully replenished, where a missing key means the same.
///
/// KEYS[1] the state; ARGV[1] T, the emission interval; ARGV[2] tau. Returns `{1, 0}` when
/// allowed, `{0, wait}` when limited.
const GCRA: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local t = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '') or now
local earliest = tat - tau
if now < earliest then
  return {0, earliest - now}
end
local next_tat = math.max(tat, now) + t
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', math.ceil((next_tat - now) / 1000))
return {1, 0}
";

/// [`RateLimiterBackend`] on Redis, shared by replicas. Fails open.
pub(super) struct RedisRateLimiter {
    link: Arc<RedisLink>,
    limits: RateLimits,
    script: Script,
    warning: ThrottledWarning,
}

/// T and tau of a rate, in microseconds (T at least 1).
fn gcra_params(rate: Rate) -> (u64, u64) {
    let t = (1_000_000 / u64::from(rate.per_second.max(1))).max(1);
    (t, t * u64::from(rate.burst.max(1) - 1))
}

impl RedisRateLimiter {
    pub(super) fn new(link: Arc<RedisLink>, limits: RateLimits) -> Self {
        Self {
            link,
            limits,
            script: Script::new(GCRA),
            warning: ThrottledWarning::new("rate limit check", "rate limits fail open"),
        }
    }

    async fn check_inner(
        &self,
        scope: LimitScope,
        key: &str,
        rate: Rate,
    ) -> Result<RateDecision, LinkError> {
        let (t, tau) = gcra_params(rate);
        let kind = format!("rl:{}", scope.as_str());
        let mut invocation = self.script.key(tagged_key(self.link.prefix(), &kind, key));
        invocation.arg(t).arg(tau);
        let (allowed, wait_us) = self
            .link
            .run(|mut c| async move { invocation.invoke_async::<(i64, i64)>(&mut c).await })
            .await?;
        Ok(if allowed == 1 {
            RateDecision::Allow
        } else {
            RateDecision::Limited(Duration::from_micros(
                u64::try_from(wait_us).unwrap_or(0).max(1),
            ))
        })
    }
}

impl RateLimiterBackend for RedisRateLimiter {
    fn check<'a>(&'a self, scope: LimitScope, key: &'a str) -> BoxFuture<'a, RateDecision> {
        Box::pin(async move {
            let Some(rate) = self.limits.rate(scope) else {
                return RateDecision::Allow;
            };
            match self.check_inner(scope, key, rate).await {
                Ok(decision) => decision,
                Err(e) => {
                    self.warning.record(&e);
                    RateDecision::Unavailable
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_parameters_match_governor() {
        assert_eq!(
            gcra_params(Rate {
                per_second: 5,
                burst: 5
            }),
            (200_000, 800_000)
        );
        assert_eq!(
            gcra_params(Rate {
                per_second: 1,
                burst: 1
            }),
            (1_000_000, 0)
        );
        assert_eq!(
            gcra_params(Rate {
                per_second: 3_000_000,
                burst: 2
            }),
            (1, 1)
        );
    }
}
