//! The third use case: what Firebreak has done and still holds, read back
//! for the people on call — the incidents it handled in a time range, one
//! incident in full, and the deny entries it holds in each network ACL
//! (checked against the NACL itself, which is the truth). [`Inventory`]
//! reads the records bucket and reaches each NACL's account and region.
//!
//! A listing answers by when Firebreak handled an incident (recorded it,
//! ran it again, released it, lifted its block), not by the date its record
//! is filed under (the signal's first sighting, which for a recurring
//! GuardDuty finding can be months old). It reads the handling-time index
//! of the window and the records filed in it (two paged `ListObjectsV2`),
//! takes each action's state from its object names alone, and reads only
//! each `incident.json` (sixteen at a time).

mod blocks;
mod listing;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use firebreak_core::Severity;
use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use serde_json::Value;

use crate::bucket::layout;
use crate::bucket::ledger::BlockMarker;
use crate::bucket::RecordStore;
use crate::error::{AwsError, Own};
use crate::outcome::ActionOutcome;
use crate::place::Places;

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

/// Reads back what Firebreak recorded and holds.
#[derive(Debug, Clone, Copy)]
pub struct Inventory<'a> {
    store: &'a RecordStore,
    places: &'a Places,
}

impl<'a> Inventory<'a> {
    /// The records in `store`; NACLs reached through `places`.
    pub fn new(
        store: Option<&'a RecordStore>,
        places: &'a Places,
    ) -> Result<Inventory<'a>, AwsError> {
        let store = store.ok_or_else(|| {
            AwsError::from(Own::NoRecords {
                operation: "ListObjectsV2",
                consequence: "there are no records to read",
            })
        })?;
        Ok(Inventory { store, places })
    }

    /// True when the incident is recorded here (one read of its index entry).
    pub async fn incident_exists(&self, id: &str) -> Result<bool, AwsError> {
        Ok(self.store.find_prefix(id).await?.is_some())
    }

    /// One incident in full, if it is recorded here.
    pub async fn incident(&self, id: &str) -> Result<Option<IncidentDetail>, AwsError> {
        let store = self.store;
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
    use super::listing::summarise;
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
            "actions/update_finding-arn_aws_guardduty_eu-west-1_111122223333_detect-0123-4567.failed-20261122T030000000Z.json",
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
