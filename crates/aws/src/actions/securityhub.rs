//! The write-back to Security Hub: the finding an incident came from is
//! told what Firebreak did, in a note, and its workflow goes to `NOTIFIED`
//! — only while it is still `NEW`. A status someone set (a responder's
//! `RESOLVED`, `SUPPRESSED`, their own `NOTIFIED`) is never overwritten,
//! and Firebreak never resolves a finding: it reads the status first
//! (`GetFindings`) and otherwise adds the note alone. A release adds a note
//! and leaves the status alone.
//!
//! `BatchUpdateFindings` answers 200 even when it updated nothing: a
//! finding in `UnprocessedFindings` is a failure like any other, with the
//! code Security Hub gave. Where Security Hub is not enabled
//! (`InvalidAccessException`) there is nothing to write back: the action
//! ends `skipped`, saying so.

use std::fmt::Write;

use aws_sdk_securityhub::types::{
    AwsSecurityFindingFilters, AwsSecurityFindingIdentifier, NoteUpdate, StringFilter,
    StringFilterComparison, WorkflowStatus, WorkflowUpdate,
};
use firebreak_core::policy::SecurityHubFinding;
use firebreak_core::PlannedIncident;

use crate::error::{AwsError, Own};
use crate::outcome::{ActionOutcome, Status, Step};
use crate::prior::{self, FindingPrior};

/// ASFF's limit on a note's text (characters; the note is kept to as many
/// bytes, so it fits however it is counted).
pub const NOTE_CAP: usize = 512;

/// Who the notes say wrote them.
pub const UPDATED_BY: &str = "Firebreak";

/// The code Security Hub answers with where it is not enabled.
const NOT_ENABLED: &str = "InvalidAccessException";

/// What the write-back does to the workflow, given the status it found.
/// Pure: the rule AWS's own responder broke, tested by table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workflow {
    /// Still `NEW`: Firebreak sets `NOTIFIED` (the team was told).
    Notify,
    /// Someone (a person, an automation, Firebreak earlier) set it: the
    /// note alone is added.
    Keep,
}

impl Workflow {
    /// The decision for a status as `GetFindings` gave it.
    pub fn for_status(status: Option<&str>) -> Workflow {
        match status {
            Some(s) if s.eq_ignore_ascii_case("NEW") => Workflow::Notify,
            _ => Workflow::Keep,
        }
    }
}

/// The finding's workflow status now; `Ok(None)` when it has none,
/// [`Own::FindingNotFound`] when Security Hub does not have it (yet).
pub async fn workflow_status(
    client: &aws_sdk_securityhub::Client,
    finding: &SecurityHubFinding,
) -> Result<Option<String>, AwsError> {
    let equals = |v: &str| {
        StringFilter::builder()
            .value(v)
            .comparison(StringFilterComparison::Equals)
            .build()
    };
    let filters = AwsSecurityFindingFilters::builder()
        .id(equals(&finding.id))
        .product_arn(equals(&finding.product_arn))
        .build();
    let out = client
        .get_findings()
        .filters(filters)
        .max_results(1)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("GetFindings", e))?;
    let found = out.findings().first().ok_or_else(|| {
        AwsError::from(Own::FindingNotFound {
            id: finding.id.clone(),
            product_arn: finding.product_arn.clone(),
        })
    })?;
    Ok(found
        .workflow()
        .and_then(|w| w.status())
        .map(|s| s.as_str().to_string()))
}

/// `BatchUpdateFindings` of one finding: the note, and `NOTIFIED` when
/// `workflow` says so. A finding Security Hub lists as unprocessed is an
/// error carrying its code.
pub async fn update(
    client: &aws_sdk_securityhub::Client,
    finding: &SecurityHubFinding,
    workflow: Workflow,
    text: &str,
) -> Result<(), AwsError> {
    let id = AwsSecurityFindingIdentifier::builder()
        .id(&finding.id)
        .product_arn(&finding.product_arn)
        .build();
    let note = NoteUpdate::builder()
        .text(text)
        .updated_by(UPDATED_BY)
        .build();
    let mut req = client
        .batch_update_findings()
        .finding_identifiers(id)
        .note(note);
    if workflow == Workflow::Notify {
        req = req.workflow(
            WorkflowUpdate::builder()
                .status(WorkflowStatus::Notified)
                .build(),
        );
    }
    let out = req
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("BatchUpdateFindings", e))?;
    match out.unprocessed_findings().first() {
        None => Ok(()),
        Some(u) => Err(unprocessed(
            u.error_code().unwrap_or("UnprocessedFinding"),
            u.error_message()
                .unwrap_or("Security Hub did not update the finding"),
        )),
    }
}

/// An unprocessed finding as the error it is: a concurrent update, a
/// finding not there yet or Security Hub's own failure can pass; bad input
/// will not.
fn unprocessed(code: &str, message: &str) -> AwsError {
    let retryable = matches!(
        code,
        "ConcurrentUpdateError" | "FindingNotFound" | "InternalFailure" | "InternalException"
    );
    AwsError {
        operation: "BatchUpdateFindings",
        code: Some(code.to_string()),
        message: message.to_string(),
        retryable,
        own: None,
    }
}

/// The write-back after a run: reads the status, sets `NOTIFIED` only over
/// `NEW`, adds the note. Where Security Hub is not enabled it is refused
/// (`skipped`), not failed.
pub async fn write_back(
    client: &aws_sdk_securityhub::Client,
    finding: &SecurityHubFinding,
    text: &str,
) -> Result<Step, AwsError> {
    let status = match workflow_status(client, finding).await {
        Err(e) if e.is(NOT_ENABLED) => {
            return Ok(Step::refused(
                format!(
                    "Security Hub is not enabled here ({}): nothing to write back",
                    e.message
                ),
                vec!["GetFindings".into()],
            ))
        }
        // GuardDuty's own event usually comes minutes before Security Hub
        // imports the finding. Not a failure of the incident (that would
        // fail the invocation and, after Lambda's retries, fill the
        // failed-events queue): skipped, its claim left open, so the next
        // delivery of the finding writes back.
        Err(e) if e.is("FindingNotFound") => {
            return Ok(Step::refused(
                format!(
                    "{}: not written back now; the next delivery of this finding writes it (GuardDuty's update of a recurring finding, or Security Hub's Imported event where SecurityHubImportedGuardDuty routes it)",
                    e.message
                ),
                vec!["GetFindings".into()],
            ))
        }
        other => other?,
    };
    let workflow = Workflow::for_status(status.as_deref());
    update(client, finding, workflow, text).await?;
    let was = status.as_deref().unwrap_or("none");
    let detail = match workflow {
        Workflow::Notify => format!("workflow {was} → NOTIFIED; note added"),
        Workflow::Keep => format!("workflow {was} left as it was; note added"),
    };
    let prior = FindingPrior {
        finding_id: finding.id.clone(),
        product_arn: finding.product_arn.clone(),
        workflow_status: status,
        notified: workflow == Workflow::Notify,
    };
    Ok(Step::new(
        false,
        detail,
        prior::to_json(&prior),
        vec!["GetFindings".into(), "BatchUpdateFindings".into()],
    ))
}

/// How an action ended, in a note's words.
fn ended(o: &ActionOutcome) -> String {
    match o.status {
        Status::Done | Status::AlreadyDone => "done".into(),
        Status::Skipped => "skipped".into(),
        Status::Held => "HELD for a human".into(),
        Status::Failed => {
            let code = o.error.as_ref().and_then(|e| e.code.as_deref());
            format!("FAILED ({})", code.unwrap_or("see the record"))
        }
    }
}

/// The note after a run: the incident, how containment ended, each
/// containment action and how it ended, and where the record is — within
/// [`NOTE_CAP`]; actions that do not fit are counted, the record has them.
pub fn note(plan: &PlannedIncident, outcomes: &[ActionOutcome], record: Option<&str>) -> String {
    let i = &plan.incident;
    let any = |s: Status| outcomes.iter().any(|o| o.status == s);
    let changed = outcomes
        .iter()
        .any(|o| o.kind.is_containment() && o.status == Status::Done);
    let state = if any(Status::Failed) {
        "containment FAILED (Firebreak retries; check the account)"
    } else if any(Status::Held) {
        "NEEDS A HUMAN (the blast-radius budget held containment)"
    } else if plan.dry_run {
        "dry run, nothing in the account was changed"
    } else if changed {
        "contained"
    } else {
        "recorded, nothing in the account was changed"
    };
    let head = format!("Firebreak incident {} ({}): {state}.", i.id, i.severity);
    let items: Vec<String> = outcomes
        .iter()
        .filter(|o| o.kind.is_containment())
        .map(|o| format!("{} {}: {}", o.kind.as_str(), o.target, ended(o)))
        .collect();
    let tail = record.map(|r| format!(" Record: {r}")).unwrap_or_default();
    fit(&head, &items, &tail)
}

/// The note a release adds to the released incident's finding: what was
/// undone (and what was kept), at whose request and why. The workflow
/// status is not touched.
pub fn release_note(
    released: &str,
    release_id: &str,
    asked: (Option<&str>, Option<&str>),
    what: &[String],
) -> String {
    let (by, why) = asked;
    let mut head = format!("Firebreak released incident {released} (release {release_id}");
    if let Some(by) = by {
        let _ = write!(head, ", asked by {by}");
    }
    if let Some(why) = why {
        let why: String = why.chars().take(160).collect();
        let _ = write!(head, ": {why}");
    }
    head.push_str("):");
    let tail = if what.is_empty() {
        " nothing Firebreak changed was still in place."
    } else {
        ""
    };
    fit(&head, what, tail)
}

/// `head items; …. tail` within [`NOTE_CAP`] bytes: the head and the tail
/// always (they name the incident and the record), as many items as fit,
/// and how many did not.
fn fit(head: &str, items: &[String], tail: &str) -> String {
    let mut out = head.to_string();
    let mut shown = 0;
    for (n, item) in items.iter().enumerate() {
        let sep = if n == 0 { " " } else { "; " };
        let left = items.len() - n - 1;
        // Room for this item, and for saying how many more there are.
        let more = if left > 0 { 40 } else { 1 };
        if out.len() + sep.len() + item.len() + more + tail.len() > NOTE_CAP {
            break;
        }
        out.push_str(sep);
        out.push_str(item);
        shown += 1;
    }
    if shown < items.len() {
        let _ = write!(
            out,
            "{}… {} more in the record",
            if shown == 0 { " " } else { "; " },
            items.len() - shown
        );
    }
    if !items.is_empty() {
        out.push('.');
    }
    out.push_str(tail);
    cap(out)
}

/// Cut to [`NOTE_CAP`] bytes on a character boundary (only ever needed for
/// a head and tail that are themselves too long).
fn cap(mut s: String) -> String {
    if s.len() > NOTE_CAP {
        let mut cut = NOTE_CAP;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use firebreak_core::{plan_event, ActionKind, Config};

    fn plan() -> PlannedIncident {
        let cfg = Config::default();
        let event = include_bytes!("../../../../events/guardduty-ssh-brute-force.json");
        plan_event(event, &cfg)
            .unwrap_or_else(|e| panic!("{e}"))
            .incidents
            .remove(0)
    }

    use crate::outcome::fixture as outcome;

    #[test]
    fn only_a_new_finding_is_set_to_notified() {
        for (status, want) in [
            (Some("NEW"), Workflow::Notify),
            (Some("new"), Workflow::Notify),
            (Some("NOTIFIED"), Workflow::Keep),
            (Some("RESOLVED"), Workflow::Keep),
            (Some("SUPPRESSED"), Workflow::Keep),
            (None, Workflow::Keep),
        ] {
            assert_eq!(Workflow::for_status(status), want, "{status:?}");
        }
    }

    #[test]
    fn a_note_names_the_incident_each_action_and_the_record() {
        let p = plan();
        let outcomes = vec![
            outcome(ActionKind::BlockIp, "198.51.100.77/32", Status::Done),
            outcome(
                ActionKind::IsolateInstance,
                "i-0abc123def4567890",
                Status::Held,
            ),
            outcome(ActionKind::RecordIncident, &p.incident.id, Status::Done),
        ];
        let record = "s3://acme-firebreak-records/incidents/dt=2026-11-20/fb-x/incident.json";
        let n = note(&p, &outcomes, Some(record));
        assert!(
            n.starts_with(&format!("Firebreak incident {} (", p.incident.id)),
            "{n}"
        );
        assert!(n.contains("NEEDS A HUMAN"), "{n}");
        assert!(n.contains("block_ip 198.51.100.77/32: done"), "{n}");
        assert!(
            n.contains("isolate_instance i-0abc123def4567890: HELD"),
            "{n}"
        );
        assert!(
            !n.contains("record_incident"),
            "bookkeeping is not listed: {n}"
        );
        assert!(n.ends_with(&format!("Record: {record}")), "{n}");
    }

    #[test]
    fn a_long_note_keeps_its_head_and_record_and_counts_the_rest() {
        let p = plan();
        let many: Vec<ActionOutcome> = (0..60)
            .map(|n| {
                outcome(
                    ActionKind::BlockIp,
                    &format!("198.51.100.{n}/32"),
                    Status::Done,
                )
            })
            .collect();
        let record = format!(
            "s3://{}/incidents/dt=2026-11-20/{}/incident.json",
            "b".repeat(63),
            p.incident.id
        );
        let n = note(&p, &many, Some(&record));
        assert!(n.len() <= NOTE_CAP, "{} bytes", n.len());
        assert!(n.starts_with("Firebreak incident"), "{n}");
        assert!(n.ends_with(&record), "{n}");
        assert!(n.contains("more in the record"), "{n}");
        let r = release_note(
            "fb-1",
            "fb-2",
            (Some("alice"), Some(&"x".repeat(900))),
            &["a".repeat(600)],
        );
        assert!(r.len() <= NOTE_CAP && r.contains("asked by alice"), "{r}");
    }
}
