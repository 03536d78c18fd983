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
    named_outcome_key(prefix, &action_name(outcome.kind, &outcome.target), outcome)
}

/// The key for an outcome of what is claimed under `name` (an action, or
/// a notice or write-back under the fingerprint of how containment ended).
pub fn named_outcome_key(prefix: &str, name: &str, outcome: &ActionOutcome) -> String {
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
        Status::Failed => attempt_key(prefix, name, &outcome.at),
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
mod tests;
