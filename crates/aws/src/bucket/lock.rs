//! Short exclusive locks in the records bucket (the claim's object protocol
//! without an outcome): the right to delete one NACL entry, so two
//! functions that evict at once never take the same victim.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use ipnet::IpNet;
use tracing::warn;

use super::claim::{owner_id, rfc3339, take_over, ClaimBody, Held, TakeOver};
use super::layout;
use super::{Cond, RecordStore};
use crate::error::{AwsError, Own};
use crate::jitter::spread;

/// A short exclusive lock (the same object protocol as a claim, without an
/// outcome): the right to delete one NACL entry (see
/// [`crate::actions::nacl::VictimGuard`]).
#[derive(Debug)]
pub struct Lock<'a> {
    store: &'a RecordStore,
    held: Held,
}

impl<'a> Lock<'a> {
    /// Takes `key`, waiting up to `wait` for a live holder; a holder that
    /// died is taken over after `ttl_seconds`.
    pub async fn take(
        store: &'a RecordStore,
        key: &str,
        ttl_seconds: u32,
        wait: Duration,
    ) -> Result<Lock<'a>, AwsError> {
        let deadline = tokio::time::Instant::now() + wait;
        let owner = owner_id();
        loop {
            let now = Utc::now();
            let body = ClaimBody {
                owner: owner.clone(),
                name: key.to_string(),
                claimed_at: rfc3339(now),
                expires_at: rfc3339(now + TimeDelta::seconds(i64::from(ttl_seconds))),
                ended: None,
            };
            match lock_once(store, key, &body).await? {
                Ok(held) => return Ok(Lock { store, held }),
                Err(until) if tokio::time::Instant::now() >= deadline => {
                    return Err(Own::LockHeld {
                        key: key.to_string(),
                        until,
                    }
                    .into())
                }
                Err(_) => {
                    // Not faster: every poll is a request to S3, and the
                    // holder needs S3 to finish.
                    tokio::time::sleep(spread(100, 100)).await;
                }
            }
        }
    }

    /// Takes `key` if it is free (or its holder died), without waiting.
    pub async fn try_take(
        store: &'a RecordStore,
        key: &str,
        ttl_seconds: u32,
    ) -> Result<Option<Lock<'a>>, AwsError> {
        let now = Utc::now();
        let body = ClaimBody {
            owner: owner_id(),
            name: key.to_string(),
            claimed_at: rfc3339(now),
            expires_at: rfc3339(now + TimeDelta::seconds(i64::from(ttl_seconds))),
            ended: None,
        };
        Ok(lock_once(store, key, &body)
            .await?
            .ok()
            .map(|held| Lock { store, held }))
    }

    /// Lets go.
    pub async fn release(self) {
        if let Err(e) = self.store.delete_if(&self.held.key, &self.held.etag).await {
            warn!(lock = %self.held.key, code = e.code.as_deref().unwrap_or("-"), "lock not released: the next taker waits for its expiry");
        }
    }
}

/// One try at a lock: `Err(until)` while a live holder has it.
async fn lock_once(
    store: &RecordStore,
    key: &str,
    body: &ClaimBody,
) -> Result<Result<Held, String>, AwsError> {
    if let Some(etag) = store.put_cond(key, body, Some(Cond::New)).await? {
        return Ok(Ok(Held {
            key: key.to_string(),
            etag,
            name: body.name.clone(),
        }));
    }
    Ok(match take_over(store, key, body, None).await? {
        TakeOver::Taken(held) => Ok(held),
        TakeOver::Busy(until) => Err(until),
        // Locks are deleted, never released with an outcome.
        TakeOver::Ended(_) => Err(rfc3339(Utc::now())),
    })
}

/// How long a lock on a NACL entry holds: a delete and a re-read take
/// seconds; a holder that died is passed over after this.
pub const VICTIM_LOCK_SECONDS: u32 = 60;

/// [`crate::actions::nacl::VictimGuard`] through locks in the records bucket, so
/// evictors in different functions take different victims.
#[derive(Debug)]
pub struct NaclGuard<'a> {
    store: &'a RecordStore,
    nacl: String,
    egress: bool,
    held: std::sync::Mutex<Vec<(i32, IpNet, Lock<'a>)>>,
}

impl<'a> NaclGuard<'a> {
    /// Guards for one NACL direction.
    pub fn new(store: &'a RecordStore, nacl: &str, egress: bool) -> NaclGuard<'a> {
        NaclGuard {
            store,
            nacl: nacl.to_string(),
            egress,
            held: std::sync::Mutex::new(Vec::new()),
        }
    }
}

impl crate::actions::nacl::VictimGuard for NaclGuard<'_> {
    async fn take(&self, rule: i32, cidr: IpNet) -> bool {
        let key = layout::victim_key(&self.nacl, self.egress, rule, cidr);
        match Lock::try_take(self.store, &key, VICTIM_LOCK_SECONDS).await {
            Ok(Some(lock)) => {
                if let Ok(mut held) = self.held.lock() {
                    held.push((rule, cidr, lock));
                }
                true
            }
            Ok(None) => false,
            Err(e) => {
                // Without the lock nothing is deleted.
                warn!(code = e.code.as_deref().unwrap_or("-"), %key, "eviction lock unavailable");
                false
            }
        }
    }

    async fn give_back(&self, rule: i32, cidr: IpNet) {
        let lock = self.held.lock().ok().and_then(|mut held| {
            let i = held.iter().position(|(r, c, _)| *r == rule && *c == cidr)?;
            Some(held.swap_remove(i).2)
        });
        if let Some(lock) = lock {
            lock.release().await;
        }
    }
}
