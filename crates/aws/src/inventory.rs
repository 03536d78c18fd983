//! What Firebreak has done and still holds, read back for the people on
//! call: the incidents in the records bucket, one incident in full, and the
//! deny entries it holds in each network ACL (checked against the NACL
//! itself, which is the truth).
//!
//! A listing answers by when Firebreak handled an incident (recorded it,
//! ran it again, released it, lifted its block), not by the date its record
//! is filed under (the signal's first sighting, which for a recurring
//! GuardDuty finding can be months old). It reads the handling-time index
//! of the window and the records filed in it (two paged `ListObjectsV2`),
//! takes each action's state from its object names alone, and reads only
//! each `incident.json` (sixteen at a time).

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, NaiveDate, SecondsFormat, TimeDelta, Utc};
use firebreak_core::Severity;
use futures_util::future::join;
use futures_util::stream::{self, StreamExt};
use ipnet::IpNet;
use serde::Serialize;
use serde_json::Value;

use crate::bucket::layout;
use crate::bucket::ledger::BlockMarker;
use crate::bucket::RecordStore;
use crate::error::{AwsError, Own};
use crate::outcome::ActionOutcome;
use crate::respond::Executor;

/// Reads in flight at once while listing.
const READS_AT_ONCE: usize = 16;

/// How an incident stands, from its action objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    /// A containment action failed and has not been completed since.
    Failed,
    /// The budget held an action back for a human.
    Held,
    /// A delivery holds a claim and no outcome is recorded yet.
    InProgress,
    /// A responder released (some of) what Firebreak did.
    Released,
    /// Containment is done.
    Contained,
    /// A dry run: nothing was changed.
    DryRun,
    /// Recorded and notified; nothing to contain, or it was refused.
    Recorded,
}

impl IncidentStatus {
    /// The word the table shows and `--status` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentStatus::Failed => "FAILED",
            IncidentStatus::Held => "HELD",
            IncidentStatus::InProgress => "in-progress",
            IncidentStatus::Released => "released",
            IncidentStatus::Contained => "contained",
            IncidentStatus::DryRun => "dry-run",
            IncidentStatus::Recorded => "recorded",
        }
    }

    /// Every status, for parsing and help.
    pub const ALL: [IncidentStatus; 7] = [
        IncidentStatus::Failed,
        IncidentStatus::Held,
        IncidentStatus::InProgress,
        IncidentStatus::Released,
        IncidentStatus::Contained,
        IncidentStatus::DryRun,
        IncidentStatus::Recorded,
    ];

    /// Parses a status word, in any case.
    pub fn parse(s: &str) -> Option<IncidentStatus> {
        IncidentStatus::ALL
            .into_iter()
            .find(|x| x.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

/// One containment action of an incident, as its object names tell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionState {
    /// The action kind (`block_ip`, …).
    pub kind: String,
    /// `done`, `failed`, `held`, `skipped` or `in_progress`.
    pub state: &'static str,
}

/// One line of `firebreak incidents list`.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentSummary {
    /// The incident id.
    pub id: String,
    /// When it was first recorded.
    pub recorded_at: Option<String>,
    /// The last time Firebreak handled it in the listing's window: recorded
    /// it, ran it again on a redelivery, released some of it, or lifted one
    /// of its blocks (the first recording, for records written before the
    /// handling-time index existed).
    pub handled_at: Option<String>,
    /// Its severity.
    pub severity: Option<Severity>,
    /// What it is.
    pub incident_type: String,
    /// `guardduty`, `cloudwatch_alarm` or `manual`.
    pub source: String,
    /// Its account.
    pub account: Option<String>,
    /// Its region.
    pub region: Option<String>,
    /// How it stands.
    pub status: IncidentStatus,
    /// Its containment actions.
    pub actions: Vec<ActionState>,
    /// The releases that undid some of it.
    pub released_by: Vec<String>,
    /// Its record prefix (`s3://bucket/incidents/dt=…/<id>/`).
    pub record: String,
}

/// What a listing keeps.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Handled at or after.
    pub since: Option<DateTime<Utc>>,
    /// Handled before.
    pub until: Option<DateTime<Utc>>,
    /// At least this severe.
    pub min_severity: Option<Severity>,
    /// Only these.
    pub status: Option<IncidentStatus>,
    /// Only this account.
    pub account: Option<String>,
}

impl Filter {
    fn in_window(&self, at: DateTime<Utc>) -> bool {
        self.since.is_none_or(|t| at >= t) && self.until.is_none_or(|t| at < t)
    }

    fn keeps(&self, s: &IncidentSummary) -> bool {
        let at = s
            .handled_at
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        at.is_some_and(|a| self.in_window(a))
            && self
                .min_severity
                .is_none_or(|m| s.severity.is_some_and(|v| v >= m))
            && self.status.is_none_or(|x| x == s.status)
            && self
                .account
                .as_ref()
                .is_none_or(|a| s.account.as_ref() == Some(a))
    }
}

/// One incident in full: `firebreak incidents show`.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentDetail {
    /// The record prefix.
    pub record: String,
    /// `incident.json`.
    pub incident: Value,
    /// Every outcome kept: final ones, failed attempts, refusals, holds.
    pub outcomes: Vec<ActionOutcome>,
    /// The releases of it.
    pub releases: Vec<Value>,
}

/// One deny entry in Firebreak's ledger, and whether the NACL still has it.
#[derive(Debug, Clone, Serialize)]
pub struct HeldBlock {
    /// The ledger entry.
    #[serde(flatten)]
    pub marker: BlockMarker,
    /// `in_place`, `gone` (lifted or replaced outside Firebreak; the
    /// expirer clears the marker) or `unknown` (the NACL could not be read).
    pub state: &'static str,
    /// Why it is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

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

fn summarise(
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
            (!kind.starts_with("notify_")).then_some(ActionState { kind, state })
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

impl Executor {
    fn store(&self) -> Result<&RecordStore, AwsError> {
        self.records().ok_or_else(|| {
            AwsError::from(Own::NoRecords {
                operation: "ListObjectsV2",
                consequence: "there are no records to read",
            })
        })
    }

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
        let store = self.store()?;
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
        // Each incident's last handling in the window, and where it is filed.
        let mut last: HashMap<String, (i64, String)> = HashMap::new();
        for k in handled?.iter().filter_map(|k| layout::parse_handled_key(k)) {
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
        let mut grouped = group(&keys?);
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
            let tails = keys
                .iter()
                .filter_map(|k| k.strip_prefix(&layout::incident_prefix(&filed, &id)))
                .map(str::to_string)
                .collect::<Vec<_>>();
            if !tails.is_empty() {
                grouped.insert((filed, id), tails);
            }
        }
        let total = grouped.len();
        let done = std::sync::atomic::AtomicUsize::new(0);
        let read = stream::iter(grouped.iter().map(|((date, id), tails)| {
            let (done, last) = (&done, &last);
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
        .await;
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

    /// True when the incident is recorded here (one read of its index entry).
    pub async fn incident_exists(&self, id: &str) -> Result<bool, AwsError> {
        Ok(self.store()?.find_prefix(id).await?.is_some())
    }

    /// One incident in full, if it is recorded here.
    pub async fn incident(&self, id: &str) -> Result<Option<IncidentDetail>, AwsError> {
        let store = self.store()?;
        let Some(prefix) = store.find_prefix(id).await? else {
            return Ok(None);
        };
        // Claims are not shown: only the record, the outcomes, the releases.
        let keys: Vec<String> = store
            .list(&prefix)
            .await?
            .into_iter()
            .filter(|k| {
                let rest = &k[prefix.len()..];
                rest == layout::RECORD_FILE
                    || rest.starts_with("actions/")
                    || rest.starts_with("released/")
            })
            .collect();
        let reads = keys.iter().map(|k| async move {
            Ok::<_, AwsError>((k.clone(), store.get_json::<Value>(k).await?))
        });
        let mut incident = Value::Null;
        let mut outcomes = Vec::new();
        let mut releases = Vec::new();
        for r in stream::iter(reads)
            .buffered(READS_AT_ONCE)
            .collect::<Vec<_>>()
            .await
        {
            let (key, body) = r?;
            let Some(body) = body else { continue };
            let rest = &key[prefix.len()..];
            if rest == layout::RECORD_FILE {
                incident = body;
            } else if rest.starts_with("actions/") {
                if let Ok(o) = serde_json::from_value::<ActionOutcome>(body) {
                    outcomes.push(o);
                }
            } else if rest.starts_with("released/") {
                releases.push(body);
            }
        }
        outcomes.sort_by(|a, b| a.index.cmp(&b.index).then(a.at.cmp(&b.at)));
        Ok(Some(IncidentDetail {
            record: format!("s3://{}/{prefix}", store.bucket()),
            incident,
            outcomes,
            releases,
        }))
    }

    /// Every deny entry in the ledger, each checked against its NACL (one
    /// DescribeNetworkAcls per account and region).
    pub async fn blocks(
        &self,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Vec<HeldBlock>, AwsError> {
        let store = self.store()?;
        let markers = store.markers().await?;
        let mut by_place: HashMap<(Option<String>, Option<String>), Vec<BlockMarker>> =
            HashMap::new();
        for (_, m) in markers {
            by_place
                .entry((m.account.clone(), m.region.clone()))
                .or_default()
                .push(m);
        }
        let total = by_place.len();
        let mut out = Vec::new();
        for (n, ((account, region), ms)) in by_place.into_iter().enumerate() {
            let entries = match self
                .for_place(account.as_deref(), region.as_deref(), "blocks")
                .await
            {
                Ok(here) => {
                    let mut ids: Vec<String> =
                        ms.iter().map(|m| m.network_acl_id.clone()).collect();
                    ids.sort();
                    ids.dedup();
                    here.nacl_entries(&ids).await
                }
                Err(why) => Err(why.into_error("DescribeNetworkAcls")),
            };
            for m in ms {
                let (state, error) = match &entries {
                    Ok(e) => {
                        let here = m.cidr.parse::<IpNet>().ok().is_some_and(|c| {
                            e.iter().any(|(acl, egress, rule, cidr)| {
                                *acl == m.network_acl_id
                                    && *egress == m.egress
                                    && *rule == m.rule_number
                                    && *cidr == c
                            })
                        });
                        (if here { "in_place" } else { "gone" }, None)
                    }
                    Err(e) => ("unknown", Some(e.to_string())),
                };
                out.push(HeldBlock {
                    marker: m,
                    state,
                    error,
                });
            }
            progress(n + 1, total);
        }
        out.sort_by(|a, b| {
            (
                &a.marker.network_acl_id,
                a.marker.egress,
                a.marker.rule_number,
            )
                .cmp(&(
                    &b.marker.network_acl_id,
                    b.marker.egress,
                    b.marker.rule_number,
                ))
        });
        Ok(out)
    }
}

/// The date a `--since` like `7d`, `12h`, `30m` or `2026-11-20` names.
pub fn parse_since(s: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Some((n, unit)) = s.find(|c: char| !c.is_ascii_digit()).map(|i| s.split_at(i)) {
        if let Ok(n) = n.parse::<i64>() {
            let d = match unit {
                "d" => TimeDelta::try_days(n),
                "h" => TimeDelta::try_hours(n),
                "m" => TimeDelta::try_minutes(n),
                _ => None,
            };
            if let Some(d) = d {
                return now.checked_sub_signed(d);
            }
        }
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_give_each_action_its_state() {
        let tails: Vec<String> = [
            "incident.json",
            "actions/block_ip-198.51.100.7_32-abc.json",
            "actions/block_ip-198.51.100.7_32-abc.failed-20261122T030000000Z.json",
            "claims/block_ip-198.51.100.7_32-abc.json",
            "actions/isolate_instance-i-0abc-def.failed-20261122T030000000Z.json",
            "claims/isolate_instance-i-0abc-def.json",
            "actions/notify_team-0123.json",
        ]
        .map(String::from)
        .to_vec();
        let record = serde_json::json!({"severity": "HIGH", "type": "UnauthorizedAccess:EC2/SSHBruteForce", "recorded_at": "2026-11-22T03:00:00.000Z", "account": "123456789012"});
        let s = summarise("b", "2026-11-22", "fb-1", &tails, &record);
        assert_eq!(
            s.actions,
            vec![
                ActionState {
                    kind: "block_ip".into(),
                    state: "done"
                },
                ActionState {
                    kind: "isolate_instance".into(),
                    state: "failed"
                },
            ]
        );
        assert_eq!(s.status, IncidentStatus::Failed);
        assert_eq!(s.severity, Some(Severity::High));
        assert_eq!(s.record, "s3://b/incidents/dt=2026-11-22/fb-1/");

        // Once the isolation is done, and then released.
        let mut later = tails.clone();
        later.push("actions/isolate_instance-i-0abc-def.json".into());
        assert_eq!(
            summarise("b", "d", "fb-1", &later, &record).status,
            IncidentStatus::Contained
        );
        later.push("released/fb-2.json".into());
        let s = summarise("b", "d", "fb-1", &later, &record);
        assert_eq!(s.status, IncidentStatus::Released);
        assert_eq!(s.released_by, vec!["fb-2".to_string()]);

        // A claim with nothing else: a delivery is at it (or died at it).
        let busy = vec![
            "incident.json".to_string(),
            "claims/block_ip-x-1.json".to_string(),
        ];
        assert_eq!(
            summarise("b", "d", "fb-3", &busy, &record).status,
            IncidentStatus::InProgress
        );
    }

    #[test]
    fn filters_keep_what_they_say() {
        let record = serde_json::json!({"severity": "MEDIUM", "recorded_at": "2026-11-22T03:00:00.000Z", "account": "111111111111"});
        let s = summarise("b", "d", "fb-1", &["incident.json".to_string()], &record);
        let at = |t: &str| DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc);
        assert!(Filter::default().keeps(&s));
        assert!(Filter {
            min_severity: Some(Severity::Medium),
            ..Filter::default()
        }
        .keeps(&s));
        assert!(!Filter {
            min_severity: Some(Severity::High),
            ..Filter::default()
        }
        .keeps(&s));
        assert!(Filter {
            since: Some(at("2026-11-22T02:00:00Z")),
            ..Filter::default()
        }
        .keeps(&s));
        assert!(!Filter {
            since: Some(at("2026-11-22T04:00:00Z")),
            ..Filter::default()
        }
        .keeps(&s));
        assert!(!Filter {
            until: Some(at("2026-11-22T03:00:00Z")),
            ..Filter::default()
        }
        .keeps(&s));
        assert!(Filter {
            status: Some(IncidentStatus::Recorded),
            ..Filter::default()
        }
        .keeps(&s));
        assert!(!Filter {
            status: Some(IncidentStatus::Failed),
            ..Filter::default()
        }
        .keeps(&s));
        assert!(!Filter {
            account: Some("222222222222".into()),
            ..Filter::default()
        }
        .keeps(&s));
    }

    #[test]
    fn since_takes_durations_dates_and_times() {
        let now = DateTime::parse_from_rfc3339("2026-11-22T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let t = |s: &str| parse_since(s, now).map(|t| t.to_rfc3339());
        assert_eq!(t("7d").as_deref(), Some("2026-11-15T12:00:00+00:00"));
        assert_eq!(t("12h").as_deref(), Some("2026-11-22T00:00:00+00:00"));
        assert_eq!(t("30m").as_deref(), Some("2026-11-22T11:30:00+00:00"));
        assert_eq!(
            t("2026-11-20").as_deref(),
            Some("2026-11-20T00:00:00+00:00")
        );
        assert_eq!(
            t("2026-11-20T05:00:00Z").as_deref(),
            Some("2026-11-20T05:00:00+00:00")
        );
        assert_eq!(t("yesterday"), None);
        assert_eq!(t("7w"), None);
        assert!(IncidentStatus::parse("failed") == Some(IncidentStatus::Failed));
        assert!(IncidentStatus::parse("nope").is_none());
    }
}
