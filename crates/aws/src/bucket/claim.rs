//! Exactly-once effects under at-least-once delivery.
//!
//! Before a delivery carries out an action (or sends a notice) it writes
//! `…/claims/<name>.json` with `If-None-Match: *`. Only the delivery whose
//! write created it acts; when it is done it writes the action's final
//! outcome (`…/actions/<name>.json`), which is what every later delivery
//! reads instead of acting. A delivery that finds the claim held and no
//! outcome waits for the outcome (a concurrent delivery is working on it),
//! up to `claim_wait_seconds`; if the claim's expiry has passed, its holder
//! died mid-action and the claim is taken over with an `If-Match` write on
//! the claim's ETag, so only one delivery takes it over. A holder whose
//! action failed releases its claim (again `If-Match`) with how it ended, so
//! the retry does not wait for the expiry.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use tracing::warn;

use super::layout;
use super::{Cond, RecordStore};
use crate::error::AwsError;
use crate::jitter::jittered;
use crate::outcome::ActionOutcome;

/// A waiting delivery looks for the holder's outcome first after
/// `POLL_FIRST`, then twice as long each time up to `POLL_MAX` (with jitter).
/// Ten duplicates of a burst polling at a fixed fast rate drown the store
/// the holder needs to finish (seen: a 2-core CI machine's emulator, where
/// holders then outlived the 20 s wait).
const POLL_FIRST: Duration = Duration::from_millis(100);
const POLL_MAX: Duration = Duration::from_millis(1600);

/// The claim object.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClaimBody {
    /// Which delivery holds it (process and a counter: unique per run).
    pub owner: String,
    /// What it is a claim on (`<kind>-<target>…`).
    pub name: String,
    /// When it was taken (RFC 3339).
    pub claimed_at: String,
    /// When another delivery may take it over (RFC 3339).
    pub expires_at: String,
    /// Set when the holder let go without finishing: how its attempt ended
    /// (failed, refused, held). A delivery that began before that reports
    /// it instead of trying again in turn; a later one takes the claim over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<Box<ActionOutcome>>,
}

/// A claim this delivery holds.
#[derive(Debug, Clone)]
pub struct Held {
    pub(crate) key: String,
    pub(crate) etag: String,
    pub(crate) name: String,
}

/// What trying to claim an action gave.
#[derive(Debug, Clone)]
pub enum Claim {
    /// This delivery carries it out.
    Mine(Held),
    /// An earlier or concurrent delivery finished it: its outcome.
    Finished(Box<ActionOutcome>),
    /// Another delivery holds the claim and has not finished within the
    /// wait: until when its claim runs.
    Busy(String),
    /// The delivery this one waited for tried and did not finish it (it
    /// failed, was refused or was held by the budget): its outcome. That is
    /// reported (and a failure retried by the signal's own redelivery)
    /// rather than every concurrent duplicate trying again in turn.
    EndedMeanwhile(Box<ActionOutcome>),
}

/// Claims of one delivery (one run of one incident).
#[derive(Debug)]
pub struct Claims<'a> {
    store: &'a RecordStore,
    ttl: TimeDelta,
    wait: Duration,
    owner: String,
}

pub(crate) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A name for one delivery (one run of one incident) in this process.
pub(crate) fn owner_id() -> String {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    format!(
        "pid{}-{}-{}",
        std::process::id(),
        Utc::now().timestamp_millis(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    )
}

impl<'a> Claims<'a> {
    /// Claims that hold for `ttl_seconds` and wait at most `wait_seconds`.
    pub fn new(store: &'a RecordStore, ttl_seconds: u32, wait_seconds: u32) -> Claims<'a> {
        Claims {
            store,
            ttl: TimeDelta::seconds(i64::from(ttl_seconds)),
            wait: Duration::from_secs(u64::from(wait_seconds)),
            owner: owner_id(),
        }
    }

    fn body(&self, name: &str) -> ClaimBody {
        let now = Utc::now();
        ClaimBody {
            owner: self.owner.clone(),
            name: name.to_string(),
            claimed_at: rfc3339(now),
            expires_at: rfc3339(now + self.ttl),
            ended: None,
        }
    }

    /// Claims the action `name` under `prefix`, waiting for a concurrent
    /// holder as configured.
    pub async fn acquire(&self, prefix: &str, name: &str) -> Result<Claim, AwsError> {
        let deadline = tokio::time::Instant::now() + self.wait;
        // An attempt that ends after this delivery began is concurrent with
        // it: its end is reported rather than repeated in turn.
        let began = rfc3339(Utc::now());
        let done = layout::done_key(prefix, name);
        let mut pause = POLL_FIRST;
        loop {
            let until = match self.try_once(prefix, name, &began).await? {
                Claim::Busy(until) => until,
                other => return Ok(other),
            };
            // Waiting costs one read per poll (the outcome); the claim
            // itself is looked at every third poll, for a holder that let go
            // (failed) or died (expired).
            for _ in 0..3 {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if left.is_zero() {
                    return Ok(Claim::Busy(until));
                }
                tokio::time::sleep(jittered(pause).min(left)).await;
                pause = (pause * 2).min(POLL_MAX);
                if let Some(o) = self.store.get_json::<ActionOutcome>(&done).await? {
                    return Ok(Claim::Finished(Box::new(o)));
                }
            }
        }
    }

    /// Claims `name` if nobody has yet: one conditional write, no reads and
    /// no waiting. `None` when the claim exists; [`Claims::acquire`] then
    /// goes the whole way (waits, takes over) when the claim is needed.
    pub async fn try_new(&self, prefix: &str, name: &str) -> Result<Option<Held>, AwsError> {
        let key = layout::claim_key(prefix, name);
        let body = self.body(name);
        Ok(self
            .store
            .put_cond(&key, &body, Some(Cond::New))
            .await?
            .map(|etag| Held {
                key,
                etag,
                name: name.to_string(),
            }))
    }

    async fn try_once(&self, prefix: &str, name: &str, began: &str) -> Result<Claim, AwsError> {
        // The common case, the first delivery: one write and it acts.
        if let Some(held) = self.try_new(prefix, name).await? {
            return Ok(Claim::Mine(held));
        }
        let key = layout::claim_key(prefix, name);
        let body = self.body(name);
        let done = layout::done_key(prefix, name);
        if let Some(o) = self.store.get_json::<ActionOutcome>(&done).await? {
            return Ok(Claim::Finished(Box::new(o)));
        }
        Ok(
            match take_over(self.store, &key, &body, Some(began)).await? {
                TakeOver::Taken(held) => Claim::Mine(held),
                TakeOver::Busy(until) => Claim::Busy(until),
                TakeOver::Ended(o) => Claim::EndedMeanwhile(o),
            },
        )
    }

    /// Gives a claim back after an attempt that did not finish the action,
    /// with how it ended, so the next delivery can try at once and the
    /// concurrent ones report it. A claim someone else took over meanwhile
    /// (its ETag changed) is left alone.
    pub async fn release(&self, held: &Held, ended: &ActionOutcome) {
        let now = rfc3339(Utc::now());
        let body = ClaimBody {
            owner: self.owner.clone(),
            name: held.name.clone(),
            claimed_at: now.clone(),
            expires_at: now,
            ended: Some(Box::new(ended.clone())),
        };
        match self
            .store
            .put_cond(&held.key, &body, Some(Cond::Match(&held.etag)))
            .await
        {
            Ok(Some(_)) => {}
            Ok(None) => warn!(claim = %held.key, "claim taken over before it was released"),
            Err(e) => {
                warn!(claim = %held.key, code = e.code.as_deref().unwrap_or("-"), "claim not released: the next taker waits for its expiry")
            }
        }
    }
}

/// What looking at a claim someone else created gave.
pub(crate) enum TakeOver {
    /// It was free (released, expired, gone): now it is ours.
    Taken(Held),
    /// A live holder has it, until then.
    Busy(String),
    /// Its holder let go after an attempt that ended after `began`.
    Ended(Box<ActionOutcome>),
}

/// Takes the object at `key` when it is free or its holder's expiry has
/// passed (the holder died). A claim released with how its attempt ended,
/// after `began`, is reported rather than taken.
pub(crate) async fn take_over(
    store: &RecordStore,
    key: &str,
    body: &ClaimBody,
    began: Option<&str>,
) -> Result<TakeOver, AwsError> {
    let taken = |etag| {
        TakeOver::Taken(Held {
            key: key.to_string(),
            etag,
            name: body.name.clone(),
        })
    };
    // A lock's holder deletes it between our reads: then it is free again;
    // three rounds settle any such race.
    for _ in 0..3 {
        let Some((held, etag)) = store.get_tagged::<ClaimBody>(key).await? else {
            if let Some(etag) = store.put_cond(key, body, Some(Cond::New)).await? {
                return Ok(taken(etag));
            }
            continue;
        };
        if held.owner == body.owner && held.ended.is_none() {
            // Our own write: S3 made it, but its answer was lost and the
            // SDK's retry met our claim (412). It is ours; not someone
            // else's to wait for until its expiry.
            return Ok(taken(etag));
        }
        if let (Some(o), Some(began)) = (&held.ended, began) {
            if o.at.as_str() >= began {
                return Ok(TakeOver::Ended(o.clone()));
            }
        }
        let expired = DateTime::parse_from_rfc3339(&held.expires_at)
            .map(|t| t <= Utc::now())
            // An unreadable expiry is no claim anyone can honour.
            .unwrap_or(true);
        if !expired {
            return Ok(TakeOver::Busy(held.expires_at));
        }
        // Only if nobody else took it over since we read it.
        if let Some(etag) = store.put_cond(key, body, Some(Cond::Match(&etag))).await? {
            if held.ended.is_none() {
                warn!(claim = %key, previous_owner = %held.owner, "claim expired unfinished: taking it over");
            }
            return Ok(taken(etag));
        }
    }
    Ok(TakeOver::Busy(rfc3339(Utc::now())))
}
