//! Notices through SNS: a subject under 100 characters, a message a person
//! can read at 3 a.m. followed by the machine-readable JSON, and message
//! attributes (severity, source, type) for subscription filters. Never over
//! SNS's 256 KiB limit.

use std::fmt::Write;

use aws_sdk_sns::types::MessageAttributeValue;
use firebreak_core::config::NoticeFormat;
use firebreak_core::event::CommandOp;
use firebreak_core::PlannedIncident;
use serde_json::json;

use crate::error::{AwsError, Own};
use crate::outcome::{ActionOutcome, Status};

/// SNS's limit for a whole message, attributes included.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// True for a responder's emergency lockdown, which every notice names
/// as such.
fn is_lockdown(plan: &PlannedIncident) -> bool {
    matches!(plan.incident.command, Some(CommandOp::Lockdown { .. }))
}

/// SNS subjects: ASCII, no line breaks, under 100 characters.
pub fn subject(plan: &PlannedIncident, outcomes: &[ActionOutcome]) -> String {
    let i = &plan.incident;
    let failed = outcomes.iter().any(|o| o.status == Status::Failed);
    let done = outcomes
        .iter()
        .any(|o| o.kind.is_containment() && o.status == Status::Done);
    let held = outcomes.iter().any(|o| o.status == Status::Held);
    let state = if failed {
        "CONTAINMENT FAILED"
    } else if held {
        "NEEDS A HUMAN"
    } else if plan.dry_run {
        "dry run"
    } else if done {
        "contained"
    } else {
        "recorded"
    };
    // Only the finding type is attacker-shaped and of any length: it is the
    // part cut, so the severity and the state always show.
    let head = if is_lockdown(plan) {
        format!("[Firebreak] EMERGENCY LOCKDOWN {} ", i.severity)
    } else {
        format!("[Firebreak] {} ", i.severity)
    };
    let tail = format!(" ({state})");
    let room = 99 - head.len() - tail.len();
    let mut kind: String = i
        .incident_type
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if kind.len() > room {
        kind.truncate(room - 3);
        kind.push_str("...");
    }
    format!("{head}{kind}{tail}")
}

/// The readable part, then the JSON.
pub fn message(plan: &PlannedIncident, outcomes: &[ActionOutcome], record: Option<&str>) -> String {
    let mut m = String::new();
    heading(&mut m, plan);
    what_was_done(&mut m, outcomes);
    what_next(&mut m, plan, outcomes, record);
    // The readable part is bounded too (an incident with very many actions
    // must still be deliverable); the record in S3 has everything.
    let readable_cap = MAX_MESSAGE_BYTES / 2;
    if m.len() > readable_cap {
        let mut cut = readable_cap;
        while !m.is_char_boundary(cut) {
            cut -= 1;
        }
        m.truncate(cut);
        m.push_str("\n… (cut: the record has every action)\n");
    }
    let budget = MAX_MESSAGE_BYTES.saturating_sub(4096 + m.len());
    let text = machine(plan, outcomes, record, budget);
    m.push_str("\n---\n");
    m.push_str(&text);
    m
}

/// What the incident is, where, and whether anything could change.
fn heading(m: &mut String, plan: &PlannedIncident) {
    let i = &plan.incident;
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
    if is_lockdown(plan) {
        let _ = writeln!(
            m,
            "EMERGENCY LOCKDOWN: {}",
            i.evidence.reason.as_deref().unwrap_or("-")
        );
    }
    if plan.dry_run {
        let _ = writeln!(m, "DRY RUN: nothing in the account was changed.");
    }
}

/// Each action, how it ended, and any error.
fn what_was_done(m: &mut String, outcomes: &[ActionOutcome]) {
    let _ = writeln!(m, "\nWhat Firebreak did:");
    for o in outcomes {
        let status = o.status.word();
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
}

/// What the reader must do now, how to undo, and where the record is.
fn what_next(
    m: &mut String,
    plan: &PlannedIncident,
    outcomes: &[ActionOutcome],
    record: Option<&str>,
) {
    if outcomes.iter().any(|o| o.status == Status::Failed) {
        let _ = writeln!(
            m,
            "\nSome containment FAILED: Firebreak will retry; check the account now."
        );
    }
    if outcomes.iter().any(|o| o.status == Status::Held) {
        let _ = writeln!(
            m,
            "\nNEEDS A HUMAN: the blast-radius budget held containment back. Decide, then act with the manual responder (its commands are not budgeted)."
        );
    }
    let _ = writeln!(
        m,
        "\nTo undo: `firebreak release {id} --reason <why>`, or send the release function:\n  {{\"command\":\"release\",\"incident_id\":\"{id}\",\"requested_by\":\"<you>\",\"reason\":\"<why>\"}}\n  (add \"action\": N to undo one action only; re-enabling a key also needs \"force\": true)",
        id = plan.incident.id
    );
    if is_lockdown(plan) {
        let _ = writeln!(
            m,
            "A release puts the services' desired counts and the listeners' default actions back; rotated secrets stay rotated, evidence copies stay, log retention goes back."
        );
    }
    if let Some(r) = record {
        let _ = writeln!(m, "Record: {r}");
    }
}

/// The JSON for machines, within `budget` bytes: the incident and every
/// outcome; without the incident, then without the outcomes, when that is
/// too long (the full record is in S3).
fn machine(
    plan: &PlannedIncident,
    outcomes: &[ActionOutcome],
    record: Option<&str>,
    budget: usize,
) -> String {
    let i = &plan.incident;
    let full = json!({ "incident": i, "actions": outcomes, "record": record });
    let mut text = serde_json::to_string(&full).unwrap_or_default();
    if text.len() > budget {
        text = serde_json::to_string(&json!({ "incident_id": i.id, "actions": outcomes, "record": record, "truncated": true }))
            .unwrap_or_default();
        if text.len() > budget {
            text = json!({ "incident_id": i.id, "record": record, "truncated": true }).to_string();
        }
    }
    text
}

/// The longest description Chatbot renders; the record has the rest.
const CHATBOT_DESCRIPTION_CHARS: usize = 7000;

/// Markdown-significant characters of attacker-shaped text, escaped, so a
/// finding cannot format (or link from) the team's channel.
fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\`*_{}[]()<>#+-!|~".contains(c) {
            out.push('\\');
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out
}

/// The notice as an AWS Chatbot (Amazon Q Developer in chat applications)
/// custom notification: it renders in Slack and Microsoft Teams, threaded
/// per incident. The full outcome JSON rides in `additionalContext`.
pub fn chatbot(plan: &PlannedIncident, outcomes: &[ActionOutcome], record: Option<&str>) -> String {
    let i = &plan.incident;
    let mut d = String::new();
    let _ = writeln!(
        d,
        "*{}* `{}` in account {} ({}){}",
        i.severity,
        md(&i.incident_type),
        i.account.as_deref().unwrap_or("-"),
        i.region.as_deref().unwrap_or("-"),
        if i.sample {
            " - GuardDuty sample finding"
        } else {
            ""
        }
    );
    if let Some(t) = &i.evidence.title {
        let _ = writeln!(d, "{}", md(t));
    }
    if plan.dry_run {
        let _ = writeln!(d, "*DRY RUN*: nothing in the account was changed.");
    }
    for o in outcomes {
        let _ = writeln!(
            d,
            "- *{}* {} {}: {}",
            o.status.word(),
            o.kind.as_str(),
            md(&o.target),
            md(&o.detail)
        );
    }
    if d.chars().count() > CHATBOT_DESCRIPTION_CHARS {
        d = d.chars().take(CHATBOT_DESCRIPTION_CHARS).collect();
        d.push_str("\n... (cut: the record has every action)");
    }
    let mut next = Vec::new();
    if outcomes.iter().any(|o| o.status == Status::Failed) {
        next.push("Some containment FAILED: Firebreak retries; check the account now.".to_string());
    }
    if outcomes.iter().any(|o| o.status == Status::Held) {
        next.push("NEEDS A HUMAN: the blast-radius budget held containment back.".to_string());
    }
    next.push(format!("Undo: `firebreak release {}`", i.id));
    if let Some(r) = record {
        next.push(format!("Record: {r}"));
    }
    let mut context = json!({ "incident_id": i.id, "record": record, "actions": outcomes });
    if serde_json::to_string(&context).map_or(0, |s| s.len()) > MAX_MESSAGE_BYTES / 2 {
        context = json!({ "incident_id": i.id, "record": record, "truncated": true });
    }
    json!({
        "version": "1.0",
        "source": "custom",
        "id": i.id,
        "content": {
            "textType": "client-markdown",
            "title": subject(plan, outcomes),
            "description": d,
            "nextSteps": next,
            "keywords": [i.severity.as_str(), i.source.as_str()],
        },
        "metadata": {
            "threadId": i.id,
            "summary": subject(plan, outcomes),
            "eventType": i.incident_type,
            "additionalContext": context,
        },
    })
    .to_string()
}

fn attr(value: &str) -> Result<MessageAttributeValue, AwsError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| Own::InvalidAttribute(e.to_string()).into())
}

/// Publishes one notice.
pub async fn publish(
    sns: &aws_sdk_sns::Client,
    topic_arn: &str,
    format: NoticeFormat,
    plan: &PlannedIncident,
    outcomes: &[ActionOutcome],
    record: Option<&str>,
) -> Result<String, AwsError> {
    let i = &plan.incident;
    let body = match format {
        NoticeFormat::Text => message(plan, outcomes, record),
        NoticeFormat::Chatbot => chatbot(plan, outcomes, record),
    };
    let out = sns
        .publish()
        .topic_arn(topic_arn)
        .subject(subject(plan, outcomes))
        .message(body)
        .message_attributes("severity", attr(i.severity.as_str())?)
        .message_attributes("source", attr(i.source.as_str())?)
        .message_attributes("type", attr(&i.incident_type)?)
        .message_attributes("incident_id", attr(&i.id)?)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("Publish", e))?;
    Ok(out.message_id().unwrap_or_default().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use firebreak_core::{plan_event, ActionKind, Config};
    use std::collections::BTreeMap;

    fn plan() -> PlannedIncident {
        let cfg = Config::load(&BTreeMap::new(), None).unwrap();
        let event = include_bytes!("../../../../events/guardduty-leaked-key.json");
        plan_event(event, &cfg).unwrap().incidents.remove(0)
    }

    fn outcome(index: usize, detail: String) -> ActionOutcome {
        ActionOutcome {
            index,
            kind: ActionKind::BlockIp,
            target: format!("198.51.100.{}/32", index % 250),
            status: Status::Failed,
            detail,
            prior_state: serde_json::Value::Null,
            calls: Vec::new(),
            error: None,
            at: "2026-11-22T03:00:00.000Z".into(),
        }
    }

    #[test]
    fn notices_stay_under_the_sns_limit_and_keep_the_first_lines() {
        let p = plan();
        // 3000 outcomes of ~300 bytes: about 1 MB of readable text alone.
        let many: Vec<ActionOutcome> = (0..3000).map(|n| outcome(n, "é".repeat(150))).collect();
        let m = message(&p, &many, Some("s3://b/k"));
        assert!(m.len() <= MAX_MESSAGE_BYTES - 4096, "{} bytes", m.len());
        assert!(m.starts_with(&format!("Firebreak incident {}", p.incident.id)));
        assert!(m.contains("(cut: the record has every action)"));
        assert!(m.contains("\"truncated\":true"));
        // Small notices are whole: readable part, separator, full JSON.
        let few = vec![outcome(0, "denied".into())];
        let m = message(&p, &few, None);
        let (_, machine) = m.split_once("\n---\n").unwrap();
        let v: serde_json::Value = serde_json::from_str(machine).unwrap();
        assert_eq!(v["incident"]["id"], p.incident.id.as_str());
        assert_eq!(v["actions"][0]["detail"], "denied");
    }

    #[test]
    fn chatbot_notices_are_custom_notifications_with_escaped_text() {
        let mut p = plan();
        p.incident.incident_type = "Recon:*[click](https://evil.example)*".into();
        let few = vec![outcome(0, "denied `x`".into())];
        let v: serde_json::Value =
            serde_json::from_str(&chatbot(&p, &few, Some("s3://b/k"))).unwrap();
        assert_eq!(v["version"], "1.0");
        assert_eq!(v["source"], "custom");
        assert_eq!(v["content"]["textType"], "client-markdown");
        assert_eq!(v["metadata"]["threadId"], p.incident.id.as_str());
        let d = v["content"]["description"].as_str().unwrap();
        assert!(
            d.contains("Recon:\\*\\[click\\]\\(https://evil.example\\)\\*"),
            "{d}"
        );
        assert!(d.contains("*FAILED* block_ip"), "{d}");
        assert!(d.contains("denied \\`x\\`"), "{d}");
        let steps: Vec<&str> = v["content"]["nextSteps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        assert!(steps[0].contains("FAILED"), "{steps:?}");
        assert!(steps
            .iter()
            .any(|s| s.contains(&format!("firebreak release {}", p.incident.id))));
        assert_eq!(
            v["metadata"]["additionalContext"]["actions"][0]["detail"],
            "denied `x`"
        );
        // Many actions: the description is cut, the message still fits SNS.
        let many: Vec<ActionOutcome> = (0..3000).map(|n| outcome(n, "é".repeat(150))).collect();
        let big = chatbot(&p, &many, None);
        assert!(big.len() < MAX_MESSAGE_BYTES - 4096, "{}", big.len());
        let v: serde_json::Value = serde_json::from_str(&big).unwrap();
        assert!(v["content"]["description"]
            .as_str()
            .unwrap()
            .ends_with("(cut: the record has every action)"));
        assert_eq!(v["metadata"]["additionalContext"]["truncated"], true);
    }

    #[test]
    fn subjects_are_short_single_line_ascii() {
        let mut p = plan();
        p.incident.incident_type = format!("Recon:IAMUser/Ünusual\n{}", "X".repeat(300));
        let s = subject(&p, &[outcome(0, String::new())]);
        assert!(s.len() < 100, "{s}");
        assert!(s.chars().all(|c| c.is_ascii_graphic() || c == ' '), "{s}");
        assert!(
            s.ends_with("(CONTAINMENT FAILED)"),
            "the state always shows: {s}"
        );
        assert!(
            s.starts_with("[Firebreak] HIGH Recon:IAMUser/?nusual?XX"),
            "{s}"
        );
    }
}
