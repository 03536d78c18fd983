//! `incidents list`: the incidents Firebreak handled in a window.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, SecondsFormat, TimeDelta};
use firebreak_core::Severity;
use futures_util::future::join;
use futures_util::stream::{self, StreamExt};
use serde_json::Value;

use super::{ActionState, Filter, IncidentStatus, IncidentSummary, Inventory, READS_AT_ONCE};
use crate::bucket::layout;
use crate::error::AwsError;

/// The state of one action name from the object names under its incident.
fn name_state(names: &BTreeMap<String, Vec<&'static str>>) -> Vec<(String, &'static str)> {
    names
        .iter()
        .map(|(name, seen)| {
            let state = ["done", "failed", "held", "skipped", "in_progress"]
                .into_iter()
                .find(|s| seen.contains(s))
                .unwrap_or("in_progress");
            (name.clone(), state)
        })
        .collect()
}

/// The incident's objects, grouped: `(date, id) → names after the id`.
type Grouped = BTreeMap<(String, String), Vec<String>>;

fn group(keys: &[String]) -> Grouped {
    let mut out: Grouped = BTreeMap::new();
    for o in keys.iter().filter_map(|k| layout::parse_incident_key(k)) {
        out.entry((o.day, o.incident_id)).or_default().push(o.tail);
    }
    out
}

pub(super) fn summarise(
    bucket: &str,
    date: &str,
    id: &str,
    tails: &[String],
    record: &Value,
) -> IncidentSummary {
    let mut names: BTreeMap<String, Vec<&'static str>> = BTreeMap::new();
    let mut released_by = Vec::new();
    for t in tails {
        if let Some(r) = layout::parse_release_tail(t) {
            released_by.push(r.to_string());
        } else if let Some((name, what)) = layout::parse_action_object(t) {
            names.entry(name).or_default().push(what.state());
        }
    }
    let actions: Vec<ActionState> = name_state(&names)
        .into_iter()
        .filter_map(|(name, state)| {
            let kind = name.split('-').next().unwrap_or_default().to_string();
            // Containment only: notices and the Security Hub write-back are
            // bookkeeping, not what the incident's status is about.
            let bookkeeping = kind.starts_with("notify_") || kind == "update_finding";
            (!bookkeeping).then_some(ActionState { kind, state })
        })
        .collect();
    let has = |s: &str| actions.iter().any(|a| a.state == s);
    let dry_run = record["dry_run"].as_bool().unwrap_or(false);
    let status = if has("failed") {
        IncidentStatus::Failed
    } else if has("held") {
        IncidentStatus::Held
    } else if has("in_progress") {
        IncidentStatus::InProgress
    } else if !released_by.is_empty() {
        IncidentStatus::Released
    } else if has("done") {
        IncidentStatus::Contained
    } else if dry_run {
        IncidentStatus::DryRun
    } else {
        IncidentStatus::Recorded
    };
    let text = |k: &str| record[k].as_str().map(str::to_string);
    IncidentSummary {
        id: id.to_string(),
        recorded_at: text("recorded_at"),
        handled_at: text("recorded_at"),
        severity: record["severity"].as_str().and_then(Severity::parse),
        incident_type: text("type").unwrap_or_else(|| "-".into()),
        source: text("source").unwrap_or_else(|| "-".into()),
        account: text("account"),
        region: text("region"),
        status,
        actions,
        released_by,
        record: format!("s3://{bucket}/incidents/dt={date}/{id}/"),
    }
}

/// Each incident's last handling in the window (ms since the epoch) and
/// the day its record is filed under, from the handling-time index.
type Handlings = HashMap<String, (i64, String)>;

/// The index's handlings inside the window, latest per incident. Pure.
fn last_handlings(keys: &[String], filter: &Filter) -> Handlings {
    let mut last: Handlings = HashMap::new();
    for k in keys.iter().filter_map(|k| layout::parse_handled_key(k)) {
        let in_window =
            DateTime::from_timestamp_millis(k.at_ms).is_some_and(|t| filter.in_window(t));
        if !in_window {
            continue;
        }
        let e = last
            .entry(k.incident_id.clone())
            .or_insert((k.at_ms, k.filed.clone()));
        e.0 = e.0.max(k.at_ms);
    }
    last
}

impl Inventory<'_> {
    /// The incidents Firebreak handled in the filter's window, newest
    /// handling first. `progress(done, total)` is called as each record is
    /// read.
    ///
    /// Two listings go out at once: the handling-time index of the window's
    /// days (every incident recorded, run again, released or with a block
    /// lifted then, whatever date its record is filed under), and the
    /// records filed from the window's start (the records written before
    /// that index existed). An incident the index names whose record is
    /// filed earlier than that is listed on its own.
    pub async fn incidents(
        &self,
        filter: &Filter,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Vec<IncidentSummary>, AwsError> {
        let (last, mut grouped) = self.window(filter).await?;
        self.filed_earlier(&last, &mut grouped).await?;
        let read = self.summaries(&grouped, &last, progress).await;
        let mut out = Vec::with_capacity(read.len());
        for r in read {
            let s = r?;
            if filter.keeps(&s) {
                out.push(s);
            }
        }
        out.sort_by(|a, b| b.handled_at.cmp(&a.handled_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// The two listings of the window: its handlings, and the objects of
    /// the records filed in it.
    async fn window(&self, filter: &Filter) -> Result<(Handlings, Grouped), AwsError> {
        let store = self.store;
        // Records are filed by the incident's (first-seen) date, which may
        // be a little before it was recorded: list from the day before.
        let filed_from = filter
            .since
            .map(|t| (t - TimeDelta::days(1)).format("%Y-%m-%d").to_string());
        let handled_from = filter.since.map(layout::handled_from);
        let (handled, keys) = join(
            store.list_after(layout::HANDLED, handled_from),
            store.list_after(
                layout::INCIDENTS,
                filed_from.as_deref().map(layout::incidents_from),
            ),
        )
        .await;
        Ok((last_handlings(&handled?, filter), group(&keys?)))
    }

    /// The objects of each incident handled in the window whose record is
    /// filed before it, listed on their own (sixteen at a time).
    async fn filed_earlier(&self, last: &Handlings, grouped: &mut Grouped) -> Result<(), AwsError> {
        let store = self.store;
        let listed: HashSet<&str> = grouped.keys().map(|(_, id)| id.as_str()).collect();
        let older: Vec<(String, String)> = last
            .iter()
            .filter(|(id, _)| !listed.contains(id.as_str()))
            .map(|(id, (_, filed))| (filed.clone(), id.clone()))
            .collect();
        let more = stream::iter(older.into_iter().map(|(filed, id)| async move {
            let prefix = layout::incident_prefix(&filed, &id);
            Ok::<_, AwsError>(((filed, id), store.list(&prefix).await?))
        }))
        .buffer_unordered(READS_AT_ONCE)
        .collect::<Vec<_>>()
        .await;
        for r in more {
            let ((filed, id), keys) = r?;
            let prefix = layout::incident_prefix(&filed, &id);
            let tails: Vec<String> = keys
                .iter()
                .filter_map(|k| k.strip_prefix(&prefix))
                .map(str::to_string)
                .collect();
            if !tails.is_empty() {
                grouped.insert((filed, id), tails);
            }
        }
        Ok(())
    }

    /// One summary per incident: its record read, its actions' states from
    /// its object names, its last handling in the window.
    async fn summaries(
        &self,
        grouped: &Grouped,
        last: &Handlings,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Vec<Result<IncidentSummary, AwsError>> {
        let store = self.store;
        let total = grouped.len();
        let done = std::sync::atomic::AtomicUsize::new(0);
        stream::iter(grouped.iter().map(|((date, id), tails)| {
            let done = &done;
            async move {
                let key = layout::record_key(&layout::incident_prefix(date, id));
                let record = if tails.iter().any(|t| t == layout::RECORD_FILE) {
                    store.get_json::<Value>(&key).await?.unwrap_or_default()
                } else {
                    Value::Null
                };
                let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                progress(n, total);
                let mut s = summarise(store.bucket(), date, id, tails, &record);
                if let Some(t) = last
                    .get(id)
                    .and_then(|(ms, _)| DateTime::from_timestamp_millis(*ms))
                {
                    s.handled_at = Some(t.to_rfc3339_opts(SecondsFormat::Millis, true));
                }
                Ok::<_, AwsError>(s)
            }
        }))
        .buffer_unordered(READS_AT_ONCE)
        .collect::<Vec<_>>()
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use chrono::Utc;

    #[test]
    fn a_listing_keeps_each_incidents_last_handling_inside_the_window() {
        let at = |t: &str| DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc);
        let key = |t: &str, id: &str| {
            layout::handled_key(id, &format!("incidents/dt=2025-12-01/{id}/"), at(t))
        };
        let keys = vec![
            key("2026-12-04T09:00:00Z", "fb-00000000000000000001"),
            key("2026-12-04T15:00:00Z", "fb-00000000000000000001"),
            key("2026-12-05T01:00:00Z", "fb-00000000000000000001"),
            key("2026-12-03T23:00:00Z", "fb-00000000000000000002"),
            "handled/dt=2026-12-04/not-a-key.json".to_string(),
        ];
        let filter = Filter {
            since: Some(at("2026-12-04T00:00:00Z")),
            until: Some(at("2026-12-05T00:00:00Z")),
            ..Filter::default()
        };
        let last = last_handlings(&keys, &filter);
        assert_eq!(
            last.len(),
            1,
            "the other was handled before the window: {last:?}"
        );
        let (ms, filed) = &last["fb-00000000000000000001"];
        assert_eq!(
            *ms,
            at("2026-12-04T15:00:00Z").timestamp_millis(),
            "the latest in the window, not after it"
        );
        assert_eq!(filed, "2025-12-01", "where its record is, a year before");
    }
}
