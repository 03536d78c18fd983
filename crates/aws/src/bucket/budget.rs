//! The blast-radius budget: at most so many containment actions of each
//! kind per account and window. One counter object per account, action kind
//! and window, incremented with `If-Match` on the ETag read (or created with
//! `If-None-Match: *`): a lost race re-reads and tries again, so concurrent
//! functions never both take the last unit. It counts distinct actions
//! (incident, kind, target): a retry of the same action, or a redelivery,
//! spends nothing more.

use chrono::{DateTime, SecondsFormat, Utc};
use firebreak_core::ActionKind;
use serde::{Deserialize, Serialize};

use super::layout;
use super::{Cond, RecordStore};
use crate::error::{AwsError, Own};
use crate::jitter::spread;

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

/// One unit of a budget to spend.
#[derive(Debug, Clone, Copy)]
pub struct Unit<'a> {
    /// The account acted in.
    pub account: &'a str,
    /// The action kind counted.
    pub kind: ActionKind,
    /// Actions of the kind allowed per window.
    pub limit: u32,
    /// The window's length.
    pub window_minutes: u32,
    /// Which action: `<incident id>/<action name>`.
    pub action: &'a str,
    /// Now: the window it falls in.
    pub now: DateTime<Utc>,
}

/// Takes one unit of the budget for its kind in its account for its
/// action, unless the window already holds `limit` other actions. An
/// action already counted in the window is allowed again without spending.
pub async fn spend(store: &RecordStore, unit: Unit<'_>) -> Result<Spent, AwsError> {
    let Unit {
        account,
        kind,
        limit,
        window_minutes,
        action,
        now,
    } = unit;
    let start = window_start(now, window_minutes);
    let key = layout::budget_key(account, kind, start);
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
    Err(Own::BudgetContention { key }.into())
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
            layout::budget_key("111122223333", ActionKind::BlockIp, window_start(t, 60)),
            "budget/111122223333/block_ip/2026-11-23T1000Z.json"
        );
    }
}
