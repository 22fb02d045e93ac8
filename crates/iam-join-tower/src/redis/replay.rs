//! Challenge redemptions in Redis: one atomic `SET key 1 NX PX ttl` per redemption.

use std::sync::Arc;
use std::time::Duration;

use ::redis::Value;

use super::connection::{LinkError, RedisLink, ThrottledWarning};
use super::{px_millis, tagged_key};
use crate::replay::{ReplayStore, ReplayStoreError};
use crate::sts::BoxFuture;

/// [`ReplayStore`] on Redis, shared by replicas. Fails closed.
pub(super) struct RedisReplayStore {
    link: Arc<RedisLink>,
    warning: ThrottledWarning,
}

impl RedisReplayStore {
    pub(super) fn new(link: Arc<RedisLink>) -> Self {
        Self {
            link,
            warning: ThrottledWarning::new(
                "challenge redemption",
                "challenge joins fail closed (503 replay_store_unavailable)",
            ),
        }
    }

    async fn redeem_inner(&self, id: &str, ttl: Duration) -> Result<bool, LinkError> {
        let mut set = ::redis::cmd("SET");
        set.arg(tagged_key(self.link.prefix(), "challenge", id))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(px_millis(ttl));
        let reply = self
            .link
            .run(|mut c| async move { set.query_async::<Value>(&mut c).await })
            .await?;
        match reply {
            Value::Okay => Ok(true),
            Value::SimpleString(s) if s == "OK" => Ok(true),
            Value::Nil => Ok(false),
            other => Err(LinkError::Redis(::redis::RedisError::from((
                ::redis::ErrorKind::UnexpectedReturnType,
                "unexpected reply to SET NX",
                format!("{other:?}"),
            )))),
        }
    }
}

impl ReplayStore for RedisReplayStore {
    fn redeem<'a>(
        &'a self,
        id: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, ReplayStoreError>> {
        Box::pin(async move {
            self.redeem_inner(id, ttl).await.map_err(|e| {
                self.warning.record(&e);
                ReplayStoreError(e.to_string())
            })
        })
    }

    fn is_shared(&self) -> bool {
        true
    }
}
