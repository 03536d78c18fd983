//! Exactly-once effects under at-least-once delivery, and the blast-radius
//! budget. Both are conditional writes in the records bucket, so every
//! delivery of every function agrees without any other shared state.
//!
//! **Claims.** Before a delivery carries out an action (or sends a notice)
//! it writes `…/claims/<name>.json` with `If-None-Match: *`. Only the
//! delivery whose write created it acts; when it is done it writes the
//! action's final outcome (`…/actions/<name>.json`), which is what every
//! later delivery reads instead of acting. A delivery that finds the claim
//! held and no outcome waits for the outcome (a concurrent delivery is
//! working on it), up to `claim_wait_seconds`; if the claim's expiry has
//! passed, its holder died mid-action and the claim is taken over with an
//! `If-Match` write on the claim's ETag, so only one delivery takes it over.
//! A holder whose action failed deletes its claim (again `If-Match`), so the
//! retry does not wait for the expiry.
//!
//! **Budget.** One counter object per account, action kind and window,
//! incremented with `If-Match` on the ETag read (or created with
//! `If-None-Match: *`): a lost race re-reads and tries again, so concurrent
//! functions never both take the last unit. It counts distinct actions
//! (incident, kind, target): a retry of the same action, or a redelivery,
//! spends nothing more.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use firebreak_core::ActionKind;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::error::AwsError;
use crate::jitter::{jittered, spread};
use crate::outcome::ActionOutcome;
use crate::record::{Cond, RecordStore};

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
    key: String,
    etag: String,
    name: String,
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

fn rfc3339(t: DateTime<Utc>) -> String {
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
        let done = RecordStore::done_key(prefix, name);
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
        let key = RecordStore::claim_key(prefix, name);
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
        let key = RecordStore::claim_key(prefix, name);
        let body = self.body(name);
        let done = RecordStore::done_key(prefix, name);
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
enum TakeOver {
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
async fn take_over(
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

/// A short exclusive lock (the same object protocol as a claim, without an
/// outcome): the right to delete one NACL entry (see
/// [`crate::ec2::VictimGuard`]).
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
                    return Err(AwsError {
                        retryable: true,
                        ..AwsError::local(
                            "Lock",
                            "LockHeld",
                            format!("{key} stayed locked (until {until})"),
                        )
                    })
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

/// The lock on deleting `rule` of `nacl` while it holds `cidr`.
pub fn victim_key(nacl: &str, egress: bool, rule: i32, cidr: IpNet) -> String {
    let dir = if egress { "egress" } else { "ingress" };
    format!(
        "locks/{nacl}/{dir}/{rule:05}-{}.json",
        cidr.to_string().replace('/', "_")
    )
}

/// [`crate::ec2::VictimGuard`] through locks in the records bucket, so
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

impl crate::ec2::VictimGuard for NaclGuard<'_> {
    async fn take(&self, rule: i32, cidr: IpNet) -> bool {
        let key = victim_key(&self.nacl, self.egress, rule, cidr);
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

/// The counter of one budget window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BudgetCounter {
    /// The account.
    pub account: String,
    /// The action kind counted.
    pub kind: ActionKind,
    /// The window's start (RFC 3339).
    pub window_start: String,
    /// The window's length.
    pub window_minutes: u32,
    /// The limit when the counter was last written.
    pub limit: u32,
    /// Actions taken in the window.
    pub count: u32,
    /// Which: `<incident id>/<action name>` each (at most `limit`).
    pub actions: Vec<String>,
}

/// What spending one unit of a budget gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spent {
    /// Allowed: the unit is counted (this many in the window now).
    Within(u32),
    /// Refused: the window already holds this many.
    Over(u32),
}

/// The start of the window `now` falls in.
pub fn window_start(now: DateTime<Utc>, window_minutes: u32) -> DateTime<Utc> {
    let len = i64::from(window_minutes.max(1)) * 60;
    let start = now.timestamp().div_euclid(len) * len;
    DateTime::from_timestamp(start, 0).unwrap_or(now)
}

/// The counter's key: `budget/<account>/<kind>/<window start>.json`.
pub fn budget_key(account: &str, kind: ActionKind, start: DateTime<Utc>) -> String {
    format!(
        "budget/{account}/{}/{}.json",
        kind.as_str(),
        start.format("%Y-%m-%dT%H%MZ")
    )
}

/// Takes one unit of the budget for `kind` in `account` for `action`
/// (`<incident id>/<action name>`), unless the window already holds `limit`
/// other actions. An action already counted in the window is allowed again
/// without spending.
#[allow(clippy::too_many_arguments)]
pub async fn spend(
    store: &RecordStore,
    account: &str,
    kind: ActionKind,
    limit: u32,
    window_minutes: u32,
    action: &str,
    now: DateTime<Utc>,
) -> Result<Spent, AwsError> {
    let start = window_start(now, window_minutes);
    let key = budget_key(account, kind, start);
    // Every lost race means another writer counted one: with N concurrent
    // writers the last one wins within N rounds.
    let counter = |count: u32, actions: Vec<String>| BudgetCounter {
        account: account.to_string(),
        kind,
        window_start: start.to_rfc3339_opts(SecondsFormat::Secs, true),
        window_minutes,
        limit,
        count,
        actions,
    };
    // The first action of its kind in a window creates the counter; every
    // later one finds it there and needs its ETag. The create and the read
    // go out at once, so spending takes one round trip or two, never three.
    let mut read = None;
    if limit > 0 {
        let first = counter(1, vec![action.to_string()]);
        let (created, current) = futures_util::future::join(
            store.put_cond(&key, &first, Some(Cond::New)),
            store.get_tagged::<BudgetCounter>(&key),
        )
        .await;
        if created?.is_some() {
            return Ok(Spent::Within(1));
        }
        read = Some(current?);
    }
    for _ in 0..64 {
        let current = match read.take() {
            Some(current) => current,
            None => store.get_tagged::<BudgetCounter>(&key).await?,
        };
        let (count, mut actions) = match &current {
            Some((c, _)) => (c.count, c.actions.clone()),
            None => (0, Vec::new()),
        };
        if actions.iter().any(|a| a == action) {
            return Ok(Spent::Within(count));
        }
        if count >= limit {
            return Ok(Spent::Over(count));
        }
        actions.push(action.to_string());
        let body = counter(count + 1, actions);
        let cond = match &current {
            Some((_, etag)) => Cond::Match(etag),
            None => Cond::New,
        };
        if store.put_cond(&key, &body, Some(cond)).await?.is_some() {
            return Ok(Spent::Within(count + 1));
        }
        // Spread the retries of writers that lost together.
        tokio::time::sleep(spread(5, 30)).await;
    }
    Err(AwsError {
        retryable: true,
        ..AwsError::local(
            "PutObject",
            "BudgetContention",
            format!("the budget counter {key} kept changing under 64 attempts"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_aligned_and_keys_name_them() {
        let t = DateTime::parse_from_rfc3339("2026-11-23T10:47:12Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            window_start(t, 60).to_rfc3339(),
            "2026-11-23T10:00:00+00:00"
        );
        assert_eq!(
            window_start(t, 15).to_rfc3339(),
            "2026-11-23T10:45:00+00:00"
        );
        assert_eq!(
            budget_key("111122223333", ActionKind::BlockIp, window_start(t, 60)),
            "budget/111122223333/block_ip/2026-11-23T1000Z.json"
        );
    }
}
