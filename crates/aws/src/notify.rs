//! Notices through SNS: a subject under 100 characters, a message a person
//! can read at 3 a.m. followed by the machine-readable JSON, and message
//! attributes (severity, source, type) for subscription filters. Never over
//! SNS's 256 KiB limit.

use std::fmt::Write;

use aws_sdk_sns::types::MessageAttributeValue;
use firebreak_core::PlannedIncident;
use serde_json::json;

use crate::error::AwsError;
use crate::outcome::{ActionOutcome, Status};

/// SNS's limit for a whole message, attributes included.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// SNS subjects: ASCII, no line breaks, under 100 characters.
pub fn subject(plan: &PlannedIncident, outcomes: &[ActionOutcome]) -> String {
    let i = &plan.incident;
    let failed = outcomes.iter().any(|o| o.status == Status::Failed);
    let done = outcomes
        .iter()
        .any(|o| o.kind.is_containment() && o.status == Status::Done);
    let state = if failed {
        "CONTAINMENT FAILED"
    } else if plan.dry_run {
        "dry run"
    } else if done {
        "contained"
    } else {
        "recorded"
    };
    let raw = format!("[Firebreak] {} {} ({})", i.severity, i.incident_type, state);
    let ascii: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if ascii.len() > 99 {
        format!("{}...", &ascii[..96])
    } else {
        ascii
    }
}

/// The readable part, then the JSON.
pub fn message(plan: &PlannedIncident, outcomes: &[ActionOutcome], record: Option<&str>) -> String {
    let i = &plan.incident;
    let mut m = String::new();
    let _ = writeln!(
        m,
        "Firebreak incident {} — {} {}",
        i.id, i.severity, i.incident_type
    );
    let _ = writeln!(
        m,
        "Source: {}; account {}; region {}{}",
        i.source.as_str(),
        i.account.as_deref().unwrap_or("-"),
        i.region.as_deref().unwrap_or("-"),
        if i.sample {
            " (GuardDuty sample finding)"
        } else {
            ""
        }
    );
    if let Some(t) = &i.evidence.title {
        let _ = writeln!(m, "What happened: {t}");
    }
    if plan.dry_run {
        let _ = writeln!(m, "DRY RUN: nothing in the account was changed.");
    }
    let _ = writeln!(m, "\nWhat Firebreak did:");
    for o in outcomes {
        let status = match o.status {
            Status::Done => "DONE",
            Status::AlreadyDone => "ALREADY DONE",
            Status::Skipped => "skipped",
            Status::Failed => "FAILED",
        };
        let _ = writeln!(
            m,
            "  [{status}] {} {}: {}",
            o.kind.as_str(),
            o.target,
            o.detail
        );
        if let Some(e) = &o.error {
            let _ = writeln!(
                m,
                "      error {}: {}",
                e.code.as_deref().unwrap_or("-"),
                e.message
            );
        }
    }
    if outcomes.iter().any(|o| o.status == Status::Failed) {
        let _ = writeln!(
            m,
            "\nSome containment FAILED: Firebreak will retry; check the account now."
        );
    }
    let _ = writeln!(
        m,
        "\nTo undo, send the manual responder (or `firebreak respond -`):\n  {{\"command\":\"release\",\"incident_id\":\"{}\",\"requested_by\":\"<you>\",\"reason\":\"<why>\"}}\n  (add \"action\": N to undo one action only; re-enabling a key also needs \"force\": true)",
        i.id
    );
    if let Some(r) = record {
        let _ = writeln!(m, "Record: {r}");
    }
    let machine = json!({ "incident": i, "actions": outcomes, "record": record });
    let mut text = serde_json::to_string(&machine).unwrap_or_default();
    let budget = MAX_MESSAGE_BYTES.saturating_sub(4096 + m.len());
    if text.len() > budget {
        // Keep the notice deliverable: the full record is in S3.
        text = serde_json::to_string(&json!({ "incident_id": i.id, "actions": outcomes, "record": record, "truncated": true }))
            .unwrap_or_default();
        if text.len() > budget {
            text = json!({ "incident_id": i.id, "record": record, "truncated": true }).to_string();
        }
    }
    m.push_str("\n---\n");
    m.push_str(&text);
    m
}

fn attr(value: &str) -> Result<MessageAttributeValue, AwsError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| AwsError::local("Publish", "InvalidParameter", e.to_string()))
}

/// Publishes one notice.
pub async fn publish(
    sns: &aws_sdk_sns::Client,
    topic_arn: &str,
    plan: &PlannedIncident,
    outcomes: &[ActionOutcome],
    record: Option<&str>,
) -> Result<String, AwsError> {
    let i = &plan.incident;
    let out = sns
        .publish()
        .topic_arn(topic_arn)
        .subject(subject(plan, outcomes))
        .message(message(plan, outcomes, record))
        .message_attributes("severity", attr(i.severity.as_str())?)
        .message_attributes("source", attr(i.source.as_str())?)
        .message_attributes("type", attr(&i.incident_type)?)
        .message_attributes("incident_id", attr(&i.id)?)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("Publish", e))?;
    Ok(out.message_id().unwrap_or_default().to_string())
}
