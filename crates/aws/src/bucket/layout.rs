//! Every key Firebreak writes in the records bucket, and the parser of each
//! key it reads back, side by side: a key's shape is decided here once, and
//! a renamed part breaks a round-trip test, not a listing in production.
//!
//! ```text
//! incidents/dt=YYYY-MM-DD/<id>/incident.json                  the record, written once
//! incidents/dt=YYYY-MM-DD/<id>/actions/<name>.json            an action's final outcome
//! incidents/dt=YYYY-MM-DD/<id>/actions/<name>.failed-<t>.json every failed attempt
//! incidents/dt=YYYY-MM-DD/<id>/actions/<name>.skipped.json    the latest refusal
//! incidents/dt=YYYY-MM-DD/<id>/actions/<name>.held.json       held back by the budget
//! incidents/dt=YYYY-MM-DD/<id>/claims/<name>.json             a delivery's claim
//! incidents/dt=YYYY-MM-DD/<id>/released/<release id>.json     a release undid some of it
//! index/<id>.json                                             finds the date from the id
//! handled/dt=YYYY-MM-DD/<ms>_<id>_<day filed>.json            the handling-time index
//! blocks/<nacl>/<ingress|egress>/<rule>/<ms>_<cidr>.json      the block ledger
//! expired/dt=YYYY-MM-DD/<nacl>-<dir>-<rule>-<ms>_<cidr>.json  a lifted block
//! budget/<account>/<kind>/<window start>.json                 the budget counters
//! locks/<nacl>/<ingress|egress>/<rule>-<cidr>.json            eviction locks
//! ```
//!
//! `<name>` is `<kind>-<target made key-safe>-<digest of the target>`: an
//! action is named by what it does to what, not by its place in the plan (a
//! recurring finding can plan more actions, in another order).

use chrono::{DateTime, Utc};
use firebreak_core::incident::short_digest;
use firebreak_core::{ActionKind, Incident, Source};
use ipnet::IpNet;

use crate::outcome::{ActionOutcome, Status};

/// The date an incident's record is filed under. It must not change when the
/// same incident arrives again, so GuardDuty findings use their first
/// sighting (their update time moves as they recur).
pub fn record_date(incident: &Incident, now: DateTime<Utc>) -> String {
    let stable = match incident.source {
        Source::Guardduty => incident
            .evidence
            .first_seen
            .as_deref()
            .or(incident.observed_at.as_deref()),
        _ => incident.observed_at.as_deref(),
    };
    stable
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(now)
        .format("%Y-%m-%d")
        .to_string()
}

/// The prefix of one incident's objects.
pub fn prefix(incident: &Incident, now: DateTime<Utc>) -> String {
    incident_prefix(&record_date(incident, now), &incident.id)
}

/// `incidents/dt=<day>/<id>/`.
pub fn incident_prefix(day: &str, incident_id: &str) -> String {
    format!("incidents/dt={day}/{incident_id}/")
}

/// Every incident's objects are under this.
pub const INCIDENTS: &str = "incidents/";
/// The handling-time index is under this.
pub const HANDLED: &str = "handled/";
/// The block ledger is under this.
pub const BLOCKS: &str = "blocks/";
/// The name of an incident's record under its prefix.
pub const RECORD_FILE: &str = "incident.json";

/// Where an incident's record (its plan) is.
pub fn record_key(prefix: &str) -> String {
    format!("{prefix}{RECORD_FILE}")
}

/// The key a listing of the incidents filed from `day` on starts after.
pub fn incidents_from(day: &str) -> String {
    format!("{INCIDENTS}dt={day}")
}

/// One object under an incident, as its key says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentObject {
    /// The day it is filed under.
    pub day: String,
    /// The incident.
    pub incident_id: String,
    /// The rest of the key after `incidents/dt=<day>/<id>/`.
    pub tail: String,
}

/// Reads `incidents/dt=<day>/<id>/<tail>`; `None` for anything else.
pub fn parse_incident_key(key: &str) -> Option<IncidentObject> {
    let rest = key.strip_prefix("incidents/dt=")?;
    let mut parts = rest.splitn(3, '/');
    let (day, id, tail) = (parts.next()?, parts.next()?, parts.next()?);
    Some(IncidentObject {
        day: day.to_string(),
        incident_id: id.to_string(),
        tail: tail.to_string(),
    })
}

/// The key-safe name of an action: what it does to what. The target is
/// kept readable where it can be and a digest makes the name unique.
pub fn action_name(kind: ActionKind, target: &str) -> String {
    let readable: String = target
        .chars()
        .take(48)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{}-{readable}-{}", kind.as_str(), short_digest(target))
}

/// Where the final outcome of a named action (or notice) is kept.
pub fn done_key(prefix: &str, name: &str) -> String {
    format!("{prefix}actions/{name}.json")
}

/// Where a failed attempt at a named action (or notice) is kept.
pub fn attempt_key(prefix: &str, name: &str, at: &str) -> String {
    format!(
        "{prefix}actions/{name}.failed-{}.json",
        at.replace([':', '.'], "")
    )
}

/// Where a release of the incident at `prefix` is noted.
pub fn release_key(prefix: &str, release_id: &str) -> String {
    format!("{prefix}released/{release_id}.json")
}

/// Where the claim on a named action (or notice) is kept.
pub fn claim_key(prefix: &str, name: &str) -> String {
    format!("{prefix}claims/{name}.json")
}

/// The key for an action outcome.
pub fn outcome_key(prefix: &str, outcome: &ActionOutcome) -> String {
    let name = action_name(outcome.kind, &outcome.target);
    let base = format!("{prefix}actions/{name}");
    match outcome.status {
        // Final: a later delivery skips the action.
        Status::Done | Status::AlreadyDone => format!("{base}.json"),
        // Kept once for the audit trail; not final (a dry run or a
        // refusal must not stop a later real run).
        Status::Skipped => format!("{base}.skipped.json"),
        // Not final either: the budget may allow it later, or a human.
        Status::Held => format!("{base}.held.json"),
        // Every failed attempt is kept; a retry runs the action again.
        Status::Failed => attempt_key(prefix, &name, &outcome.at),
    }
}

/// What an object under an incident says of an action, by its name alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionObject {
    /// `actions/<name>.json`: its final outcome.
    Done,
    /// `actions/<name>.failed-<time>.json`: a failed attempt.
    Failed,
    /// `actions/<name>.held.json`: the budget held it.
    Held,
    /// `actions/<name>.skipped.json`: refused (envelope, dry run).
    Skipped,
    /// `claims/<name>.json`: a delivery holds (or held) its claim.
    Claimed,
}

impl ActionObject {
    /// The word a listing shows for it.
    pub fn state(self) -> &'static str {
        match self {
            ActionObject::Done => "done",
            ActionObject::Failed => "failed",
            ActionObject::Held => "held",
            ActionObject::Skipped => "skipped",
            ActionObject::Claimed => "in_progress",
        }
    }
}

/// Reads an incident's object name after its prefix (`actions/…`,
/// `claims/…`) as (action name, what it is); `None` for anything else.
pub fn parse_action_object(tail: &str) -> Option<(String, ActionObject)> {
    if let Some(file) = tail.strip_prefix("actions/") {
        let file = file.strip_suffix(".json")?;
        if let Some((name, _)) = file.split_once(".failed-") {
            return Some((name.to_string(), ActionObject::Failed));
        }
        if let Some(name) = file.strip_suffix(".held") {
            return Some((name.to_string(), ActionObject::Held));
        }
        if let Some(name) = file.strip_suffix(".skipped") {
            return Some((name.to_string(), ActionObject::Skipped));
        }
        return Some((file.to_string(), ActionObject::Done));
    }
    let name = tail.strip_prefix("claims/")?.strip_suffix(".json")?;
    Some((name.to_string(), ActionObject::Claimed))
}

/// The release id a `released/<id>.json` tail names.
pub fn parse_release_tail(tail: &str) -> Option<&str> {
    tail.strip_prefix("released/")?.strip_suffix(".json")
}

/// The index entry that finds an incident's prefix from its id alone
/// (a responder's release names only the id, not the date).
pub fn index_key(incident_id: &str) -> String {
    format!("index/{incident_id}.json")
}

/// Where the handling-time index keeps all handlings of one day.
pub fn handled_day_prefix(day: DateTime<Utc>) -> String {
    format!("{HANDLED}dt={}/", day.format("%Y-%m-%d"))
}

/// The key a listing of the handlings from `day` on starts after.
pub fn handled_from(day: DateTime<Utc>) -> String {
    format!("{HANDLED}dt={}", day.format("%Y-%m-%d"))
}

/// One handling of an incident in the handling-time index, as its key says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandledKey {
    /// When, in milliseconds since the epoch.
    pub at_ms: i64,
    /// The incident.
    pub incident_id: String,
    /// The day its record is filed under (`YYYY-MM-DD`).
    pub filed: String,
}

impl HandledKey {
    /// The record prefix of the incident it names.
    pub fn record_prefix(&self) -> String {
        incident_prefix(&self.filed, &self.incident_id)
    }
}

/// `handled/dt=<day handled>/<ms since the epoch, 13 digits>_<id>_<day filed>.json`
/// for the incident whose record is at `prefix`.
pub fn handled_key(incident_id: &str, prefix: &str, at: DateTime<Utc>) -> String {
    let filed = prefix
        .strip_prefix("incidents/dt=")
        .and_then(|r| r.split('/').next())
        .unwrap_or_default();
    format!(
        "{}{:013}_{incident_id}_{filed}.json",
        handled_day_prefix(at),
        at.timestamp_millis(),
    )
}

/// Reads a handling-time index key back; `None` for anything else.
pub fn parse_handled_key(key: &str) -> Option<HandledKey> {
    let file = key
        .strip_prefix("handled/dt=")?
        .split_once('/')?
        .1
        .strip_suffix(".json")?;
    let mut parts = file.splitn(3, '_');
    let at_ms = parts.next()?.parse().ok()?;
    let incident_id = parts.next()?.to_string();
    let filed = parts.next()?.to_string();
    let ok = incident_id.starts_with("fb-")
        && chrono::NaiveDate::parse_from_str(&filed, "%Y-%m-%d").is_ok();
    ok.then_some(HandledKey {
        at_ms,
        incident_id,
        filed,
    })
}

fn direction(egress: bool) -> &'static str {
    if egress {
        "egress"
    } else {
        "ingress"
    }
}

/// Where the block ledger keeps one NACL direction's markers.
pub fn marker_direction_prefix(nacl: &str, egress: bool) -> String {
    format!("blocks/{nacl}/{}/", direction(egress))
}

/// Where the block ledger keeps the markers of one rule number.
pub fn marker_rule_prefix(nacl: &str, egress: bool, rule: i32) -> String {
    format!("{}{rule:05}/", marker_direction_prefix(nacl, egress))
}

/// A block marker's key: rule, creation time and CIDR in the name, so one
/// list call gives the eviction order.
pub fn marker_key(nacl: &str, egress: bool, rule: i32, created_ms: i64, cidr: &str) -> String {
    format!(
        "{}{created_ms:013}_{}.json",
        marker_rule_prefix(nacl, egress, rule),
        cidr.replace('/', "_")
    )
}

/// What a block marker's key says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerKey {
    /// The rule number.
    pub rule: i32,
    /// When it was placed (ms since the epoch).
    pub created_ms: i64,
    /// The denied CIDR.
    pub cidr: IpNet,
}

/// Reads a block marker's key back; `None` for anything else.
pub fn parse_marker_key(key: &str) -> Option<MarkerKey> {
    let mut parts = key.rsplit('/');
    let file = parts.next()?.strip_suffix(".json")?;
    let rule = parts.next()?.parse().ok()?;
    let (created, cidr) = file.split_once('_')?;
    let cidr = cidr.rsplit_once('_').map(|(a, p)| format!("{a}/{p}"))?;
    Some(MarkerKey {
        rule,
        created_ms: created.parse().ok()?,
        cidr: cidr.parse().ok()?,
    })
}

/// Where the lift of the block whose marker was at `marker_key` is filed.
pub fn expired_key(now: DateTime<Utc>, marker_key: &str) -> String {
    let name = marker_key.trim_start_matches("blocks/").replace('/', "-");
    format!("expired/dt={}/{name}", now.format("%Y-%m-%d"))
}

/// The budget counter's key: `budget/<account>/<kind>/<window start>.json`.
pub fn budget_key(account: &str, kind: ActionKind, start: DateTime<Utc>) -> String {
    format!(
        "budget/{account}/{}/{}.json",
        kind.as_str(),
        start.format("%Y-%m-%dT%H%MZ")
    )
}

/// The lock on deleting `rule` of `nacl` while it holds `cidr`.
pub fn victim_key(nacl: &str, egress: bool, rule: i32, cidr: IpNet) -> String {
    format!(
        "locks/{nacl}/{}/{rule:05}-{}.json",
        direction(egress),
        cidr.to_string().replace('/', "_")
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn at(t: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc)
    }

    fn outcome(kind: ActionKind, target: &str, status: Status) -> ActionOutcome {
        ActionOutcome {
            index: 0,
            kind,
            target: target.into(),
            status,
            detail: String::new(),
            prior_state: serde_json::Value::Null,
            calls: Vec::new(),
            error: None,
            at: "2026-11-22T03:00:00.000Z".into(),
        }
    }

    #[test]
    fn incident_objects_round_trip() {
        let prefix = incident_prefix("2026-11-20", "fb-a600cce2b4010f814d5f");
        assert_eq!(prefix, "incidents/dt=2026-11-20/fb-a600cce2b4010f814d5f/");
        let parsed = parse_incident_key(&record_key(&prefix)).unwrap();
        assert_eq!(
            incident_prefix(&parsed.day, &parsed.incident_id),
            prefix,
            "{parsed:?}"
        );
        assert_eq!(parsed.tail, "incident.json");
        assert_eq!(parse_incident_key("index/fb-1.json"), None);
        assert_eq!(parse_incident_key("incidents/dt=2026-11-20/fb-1"), None);
    }

    #[test]
    fn action_objects_round_trip_for_every_status() {
        let prefix = incident_prefix("2026-11-20", "fb-1");
        for (kind, target) in [
            (ActionKind::BlockIp, "198.51.100.7/32"),
            (ActionKind::IsolateInstance, "i-0abc123def4567890"),
            (
                ActionKind::RevokeRoleSessions,
                "arn:aws:iam::111122223333:role/a very long role name with spaces and more",
            ),
        ] {
            let name = action_name(kind, target);
            assert!(name.starts_with(kind.as_str()), "{name}");
            assert!(!name.contains(['/', ' ', ':']), "{name}");
            for (status, want) in [
                (Status::Done, ActionObject::Done),
                (Status::AlreadyDone, ActionObject::Done),
                (Status::Failed, ActionObject::Failed),
                (Status::Held, ActionObject::Held),
                (Status::Skipped, ActionObject::Skipped),
            ] {
                let key = outcome_key(&prefix, &outcome(kind, target, status));
                let tail = parse_incident_key(&key).unwrap().tail;
                assert_eq!(
                    parse_action_object(&tail),
                    Some((name.clone(), want)),
                    "{key}"
                );
            }
            let claim = parse_incident_key(&claim_key(&prefix, &name)).unwrap();
            assert_eq!(
                parse_action_object(&claim.tail),
                Some((name.clone(), ActionObject::Claimed))
            );
            assert_eq!(
                done_key(&prefix, &name),
                outcome_key(&prefix, &outcome(kind, target, Status::Done))
            );
        }
        let release = parse_incident_key(&release_key(&prefix, "fb-2")).unwrap();
        assert_eq!(parse_release_tail(&release.tail), Some("fb-2"));
        assert_eq!(parse_action_object("incident.json"), None);
    }

    #[test]
    fn handled_keys_carry_time_incident_and_filing_day() {
        let at = at("2027-12-04T10:11:12.345Z");
        let prefix = "incidents/dt=2026-11-20/fb-a600cce2b4010f814d5f/";
        let key = handled_key("fb-a600cce2b4010f814d5f", prefix, at);
        assert_eq!(
            key,
            "handled/dt=2027-12-04/1827915072345_fb-a600cce2b4010f814d5f_2026-11-20.json"
        );
        let parsed = parse_handled_key(&key).unwrap();
        assert_eq!(parsed.at_ms, at.timestamp_millis());
        assert_eq!(parsed.record_prefix(), prefix);
        assert!(key.starts_with(&handled_day_prefix(at)));
        for bad in [
            "handled/dt=2027-12-04/x_fb-1_2026-11-20.json",
            "handled/dt=2027-12-04/1_fb-1_yesterday.json",
            "handled/dt=2027-12-04/1_id_2026-11-20.json",
            "blocks/acl-1/ingress/00001/1_198.51.100.7_32.json",
        ] {
            assert_eq!(parse_handled_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn marker_keys_carry_rule_time_and_cidr() {
        for cidr in ["198.51.100.7/32", "2001:db8::4/128"] {
            let key = marker_key("acl-0a1b2c3d4e5f60718", false, 7, 1_790_000_000_123, cidr);
            assert!(
                key.starts_with("blocks/acl-0a1b2c3d4e5f60718/ingress/00007/"),
                "{key}"
            );
            assert!(key.starts_with(&marker_rule_prefix("acl-0a1b2c3d4e5f60718", false, 7)));
            assert_eq!(
                parse_marker_key(&key),
                Some(MarkerKey {
                    rule: 7,
                    created_ms: 1_790_000_000_123,
                    cidr: cidr.parse().unwrap()
                })
            );
            let lifted = expired_key(at("2026-11-24T00:00:00Z"), &key);
            assert!(
                lifted.starts_with("expired/dt=2026-11-24/acl-0a1b2c3d4e5f60718-ingress-00007-"),
                "{lifted}"
            );
        }
        assert_eq!(parse_marker_key("blocks/acl-1/ingress/x/1_a.json"), None);
    }

    #[test]
    fn budget_and_lock_keys_name_what_they_count_and_hold() {
        assert_eq!(
            budget_key(
                "111122223333",
                ActionKind::BlockIp,
                at("2026-11-23T10:00:00Z")
            ),
            "budget/111122223333/block_ip/2026-11-23T1000Z.json"
        );
        assert_eq!(
            victim_key("acl-1", true, 7, "198.51.100.7/32".parse().unwrap()),
            "locks/acl-1/egress/00007-198.51.100.7_32.json"
        );
        assert_eq!(index_key("fb-1"), "index/fb-1.json");
    }
}
