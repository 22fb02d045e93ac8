//! The shared second-level STS cache, with a fill lock so that one proof arriving at several
//! replicas at once makes one STS call.
//!
//! The layer's local cache already coalesces concurrent misses inside a replica into one
//! [`SharedCache::get`]. Across replicas, `get` runs one script: the answer if Redis has it;
//! else, if no other replica holds the fill lock `{prefix}sts-lock:{{key}}`, take it and report a
//! miss (this replica calls STS and [`SharedCache::put`]s the answer, which releases the lock);
//! else poll until the answer appears, the lock is released or expires (then take it), or the
//! fill wait is over (then report a miss). A lock held by this same instance means its own
//! earlier attempt ended without an answer (STS unavailable, rate limited): it is taken again at
//! once rather than waited for.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ::redis::Script;
use iam_join_core::StsAnswer;
use serde::{Deserialize, Serialize};

use super::connection::{LinkError, RedisLink, ThrottledWarning};
use super::{px_millis, tagged_key};
use crate::cache::{SharedCache, SharedOutcome};
use crate::sts::BoxFuture;

/// A stored value larger than this is not ours; it is ignored (a miss).
const MAX_VALUE_BYTES: usize = 8 * 1024;
/// First pause between polls while another replica fills; doubles up to [`MAX_POLL`].
const FIRST_POLL: Duration = Duration::from_millis(5);
/// Longest pause between polls.
const MAX_POLL: Duration = Duration::from_millis(50);

/// KEYS[1] the answer, KEYS[2] the fill lock; ARGV[1] this instance's token, ARGV[2] the lock's
/// lifetime in ms. Returns `{1, answer}`, `{2, ''}` (lock taken: fill it) or `{3, ''}` (another
/// replica is filling).
const LOOKUP_OR_LOCK: &str = r"
local answer = redis.call('GET', KEYS[1])
if answer then
  return {1, answer}
end
local owner = redis.call('GET', KEYS[2])
if (not owner) or owner == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
  return {2, ''}
end
return {3, ''}
";

/// What is stored: STS's answer or its rejection code. Never the proof.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum StoredOutcome {
    Identity {
        account: String,
        arn: String,
        user_id: String,
    },
    Rejected {
        code: String,
    },
}

impl From<&SharedOutcome> for StoredOutcome {
    fn from(o: &SharedOutcome) -> Self {
        match o {
            SharedOutcome::Identity(a) => Self::Identity {
                account: a.account.clone(),
                arn: a.arn.clone(),
                user_id: a.user_id.clone(),
            },
            SharedOutcome::Rejected(code) => Self::Rejected { code: code.clone() },
        }
    }
}

impl From<StoredOutcome> for SharedOutcome {
    fn from(s: StoredOutcome) -> Self {
        match s {
            StoredOutcome::Identity {
                account,
                arn,
                user_id,
            } => Self::Identity(StsAnswer {
                account,
                arn,
                user_id,
            }),
            StoredOutcome::Rejected { code } => Self::Rejected(code),
        }
    }
}

/// Decodes a stored answer; `None` for anything that is not one (the layer then asks STS and
/// overwrites it). The layer re-checks an identity against the proof's host before use.
fn decode(bytes: &[u8]) -> Option<SharedOutcome> {
    if bytes.len() > MAX_VALUE_BYTES {
        return None;
    }
    serde_json::from_slice::<StoredOutcome>(bytes)
        .ok()
        .map(Into::into)
}

enum Lookup {
    Found(Vec<u8>),
    Locked,
    Filling,
}

/// [`SharedCache`] on Redis. Failures are misses (lookups) or skipped (stores).
pub(super) struct RedisSharedCache {
    link: Arc<RedisLink>,
    fill_wait: Duration,
    token: String,
    script: Script,
    warning: ThrottledWarning,
}

impl RedisSharedCache {
    pub(super) fn new(link: Arc<RedisLink>, fill_wait: Duration) -> Self {
        Self {
            link,
            fill_wait,
            token: instance_token(),
            script: Script::new(LOOKUP_OR_LOCK),
            warning: ThrottledWarning::new("shared STS cache", "the shared cache is bypassed"),
        }
    }

    fn keys(&self, key: &str) -> (String, String) {
        // One hash tag: the lookup script and the store pipeline touch both in one slot.
        let prefix = self.link.prefix();
        (
            tagged_key(prefix, "sts", key),
            tagged_key(prefix, "sts-lock", key),
        )
    }

    async fn lookup_or_lock(&self, answer_key: &str, lock_key: &str) -> Result<Lookup, LinkError> {
        let mut invocation = self.script.key(answer_key);
        invocation
            .key(lock_key)
            .arg(&self.token)
            .arg(px_millis(self.fill_wait));
        let (status, value) = self
            .link
            .run(|mut c| async move { invocation.invoke_async::<(i64, Vec<u8>)>(&mut c).await })
            .await?;
        Ok(match status {
            1 => Lookup::Found(value),
            3 => Lookup::Filling,
            _ => Lookup::Locked,
        })
    }

    async fn plain_get(&self, answer_key: &str) -> Result<Option<Vec<u8>>, LinkError> {
        let mut get = ::redis::cmd("GET");
        get.arg(answer_key);
        self.link
            .run(|mut c| async move { get.query_async::<Option<Vec<u8>>>(&mut c).await })
            .await
    }

    async fn get_inner(&self, key: &str) -> Result<Option<SharedOutcome>, LinkError> {
        let (answer_key, lock_key) = self.keys(key);
        if self.fill_wait.is_zero() {
            return Ok(self
                .plain_get(&answer_key)
                .await?
                .as_deref()
                .and_then(decode));
        }
        let deadline = Instant::now() + self.fill_wait;
        let mut pause = FIRST_POLL;
        loop {
            match self.lookup_or_lock(&answer_key, &lock_key).await? {
                Lookup::Found(bytes) => return Ok(decode(&bytes)),
                Lookup::Locked => return Ok(None),
                Lookup::Filling => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            tokio::time::sleep(pause.min(left)).await;
            pause = (pause * 2).min(MAX_POLL);
        }
    }

    async fn put_inner(
        &self,
        key: &str,
        value: &SharedOutcome,
        ttl: Duration,
    ) -> Result<(), LinkError> {
        let (answer_key, lock_key) = self.keys(key);
        let Ok(json) = serde_json::to_vec(&StoredOutcome::from(value)) else {
            return Ok(());
        };
        let mut pipe = ::redis::pipe();
        pipe.cmd("SET")
            .arg(&answer_key)
            .arg(json)
            .arg("PX")
            .arg(px_millis(ttl))
            .ignore()
            .cmd("DEL")
            .arg(&lock_key)
            .ignore();
        self.link
            .run(|mut c| async move { pipe.query_async::<()>(&mut c).await })
            .await
    }
}

/// Deletes the fill lock only if this instance still owns it.
const RELEASE_IF_OWNER: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

impl RedisSharedCache {
    async fn abandon_inner(&self, key: &str) -> Result<(), LinkError> {
        let (_, lock_key) = self.keys(key);
        let script = Script::new(RELEASE_IF_OWNER);
        let mut invocation = script.key(lock_key);
        invocation.arg(&self.token);
        self.link
            .run(|mut c| async move { invocation.invoke_async::<i64>(&mut c).await })
            .await
            .map(|_| ())
    }
}

impl SharedCache for RedisSharedCache {
    fn abandon<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if self.fill_wait.is_zero() {
                return;
            }
            if let Err(e) = self.abandon_inner(key).await {
                self.warning.record(&e);
            }
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Option<SharedOutcome>> {
        Box::pin(async move {
            self.get_inner(key).await.unwrap_or_else(|e| {
                self.warning.record(&e);
                None
            })
        })
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        value: &'a SharedOutcome,
        ttl: Duration,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if ttl.is_zero() {
                return;
            }
            if let Err(e) = self.put_inner(key, value, ttl).await {
                self.warning.record(&e);
            }
        })
    }
}

/// A random token naming this instance as a fill-lock owner.
fn instance_token() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut bytes = [0u8; 12];
    if getrandom::fill(&mut bytes).is_ok() {
        return hex::encode(bytes);
    }
    // Without randomness, still distinct between processes and instances.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{:x}-{nanos:x}-{:x}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_round_trip_as_small_json() {
        let identity = SharedOutcome::Identity(StsAnswer {
            account: "111111111111".into(),
            arn: "arn:aws:iam::111111111111:user/alice".into(),
            user_id: "AIDAEXAMPLE".into(),
        });
        let json = serde_json::to_string(&StoredOutcome::from(&identity)).unwrap_or_default();
        assert_eq!(
            json,
            r#"{"kind":"identity","account":"111111111111","arn":"arn:aws:iam::111111111111:user/alice","user_id":"AIDAEXAMPLE"}"#
        );
        assert_eq!(decode(json.as_bytes()), Some(identity));
        let rejected = SharedOutcome::Rejected("SignatureDoesNotMatch".into());
        let json = serde_json::to_vec(&StoredOutcome::from(&rejected)).unwrap_or_default();
        assert_eq!(decode(&json), Some(rejected));
    }

    #[test]
    fn foreign_values_are_misses() {
        assert_eq!(decode(b"1"), None);
        assert_eq!(decode(b"{\"kind\":\"other\"}"), None);
        assert_eq!(decode(&vec![b' '; MAX_VALUE_BYTES + 1]), None);
    }

    #[test]
    fn instance_tokens_differ() {
        assert_ne!(instance_token(), instance_token());
    }
}
