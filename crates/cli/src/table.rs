//! What the CLI shows people: fixed-width tables, one screen wide, and a
//! progress counter on stderr while records are read.
//!
//! Everything shown comes from records whose text is partly the attacker's
//! (finding titles, alarm names, user names): control characters are
//! replaced before anything reaches a terminal.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use firebreak_aws::inventory::{HeldBlock, IncidentDetail, IncidentSummary};
use firebreak_aws::Response;

/// A counter on stderr (`reading records 120/500`), only when stderr is a
/// terminal: a pipe or a log gets nothing.
#[derive(Clone)]
pub struct Bar(Option<Arc<BarInner>>);

pub struct BarInner {
    label: &'static str,
    shown: std::sync::Mutex<usize>,
}

impl Bar {
    pub fn new(label: &'static str) -> Bar {
        Bar(std::io::stderr().is_terminal().then(|| {
            Arc::new(BarInner {
                label,
                shown: std::sync::Mutex::new(usize::MAX),
            })
        }))
    }

    /// Shows `done/total`, at most about a hundred times in all.
    pub fn show(&self, done: usize, total: usize) {
        let Some(b) = &self.0 else { return };
        let step = (total / 100).max(1);
        let mut shown = b.shown.lock().unwrap_or_else(|p| p.into_inner());
        if done == *shown || (done % step != 0 && done != total) {
            return;
        }
        *shown = done;
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{} {done}/{total} ", b.label);
        let _ = err.flush();
    }

    /// Clears the line.
    pub fn done(&self) {
        if self.0.is_some() {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}

/// Text safe for a terminal, at most `max` characters.
fn clean(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if out.chars().count() > max {
        out = out.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
    }
    out
}

/// `2026-11-22 03:00` from an RFC 3339 time.
fn minute(t: Option<&str>) -> String {
    t.and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc).format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| "-".into())
}

pub fn incidents(found: &[IncidentSummary]) -> String {
    let mut out = String::new();
    if found.is_empty() {
        out.push_str("no incidents match\n");
        return out;
    }
    let _ = writeln!(
        out,
        "{:<23}  {:<16}  {:<8}  {:<40}  {:<12}  {:<14}  {:<11}  ACTIONS",
        "ID", "HANDLED (UTC)", "SEVERITY", "TYPE", "ACCOUNT", "REGION", "STATUS"
    );
    for s in found {
        let actions: Vec<String> = s
            .actions
            .iter()
            .map(|a| match a.state {
                "done" => a.kind.clone(),
                other => format!("{}({other})", a.kind),
            })
            .collect();
        let _ = writeln!(
            out,
            "{:<23}  {:<16}  {:<8}  {:<40}  {:<12}  {:<14}  {:<11}  {}",
            clean(&s.id, 23),
            minute(s.handled_at.as_deref()),
            s.severity.map(|v| v.as_str()).unwrap_or("-"),
            clean(&s.incident_type, 40),
            clean(s.account.as_deref().unwrap_or("-"), 12),
            clean(s.region.as_deref().unwrap_or("-"), 14),
            s.status.as_str(),
            if actions.is_empty() {
                "-".to_string()
            } else {
                clean(&actions.join(", "), 200)
            }
        );
    }
    let _ = writeln!(out, "{} incident(s)", found.len());
    out
}

pub fn incident(d: &IncidentDetail) -> String {
    let i = &d.incident;
    let text = |k: &str| clean(i[k].as_str().unwrap_or("-"), 200);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Incident {}  {}  {}",
        text("id"),
        text("severity"),
        text("type")
    );
    let _ = writeln!(
        out,
        "Source {}; account {}; region {}; recorded {}{}",
        text("source"),
        text("account"),
        text("region"),
        minute(i["recorded_at"].as_str()),
        if i["dry_run"] == true {
            "; DRY RUN"
        } else {
            ""
        }
    );
    if let Some(at) = i.get("acted_in") {
        let _ = writeln!(
            out,
            "Acted in account {} region {}{}",
            clean(at["account"].as_str().unwrap_or("-"), 20),
            clean(at["region"].as_str().unwrap_or("-"), 20),
            at["session"]
                .as_str()
                .map(|s| format!(" as {}", clean(s, 200)))
                .unwrap_or_default()
        );
    }
    if let Some(t) = i["evidence"]["title"].as_str() {
        let _ = writeln!(out, "What happened: {}", clean(t, 300));
    }
    if let Some(who) = i["evidence"]["requested_by"].as_str() {
        let _ = writeln!(
            out,
            "Requested by {}: {}",
            clean(who, 100),
            clean(i["evidence"]["reason"].as_str().unwrap_or("-"), 300)
        );
    }
    let _ = writeln!(out, "Record: {}", d.record);
    let _ = writeln!(out, "\nActions (newest attempt last):");
    if d.outcomes.is_empty() {
        let _ = writeln!(out, "  none recorded");
    }
    for o in &d.outcomes {
        let _ = writeln!(
            out,
            "  [{}] {:<13} {} {}  {}",
            o.index,
            o.status.word(),
            o.kind.as_str(),
            clean(&o.target, 80),
            minute(Some(&o.at))
        );
        let _ = writeln!(out, "        {}", clean(&o.detail, 300));
        if let Some(e) = &o.error {
            let _ = writeln!(
                out,
                "        error {} {}: {}",
                e.operation,
                e.code.as_deref().unwrap_or("-"),
                clean(&e.message, 200)
            );
        }
        if !o.prior_state.is_null() {
            let _ = writeln!(
                out,
                "        prior state: {}",
                clean(&o.prior_state.to_string(), 300)
            );
        }
    }
    for r in &d.releases {
        let _ = writeln!(
            out,
            "\nReleased by {} at {}",
            clean(r["released_by"].as_str().unwrap_or("-"), 40),
            minute(r["at"].as_str())
        );
    }
    let _ = writeln!(
        out,
        "\nTo undo: firebreak release {} --reason \"…\" [--action N] [--force to re-enable a key]",
        text("id")
    );
    out
}

pub fn blocks(held: &[HeldBlock]) -> String {
    let mut out = String::new();
    if held.is_empty() {
        out.push_str("Firebreak holds no blocks\n");
        return out;
    }
    let _ = writeln!(
        out,
        "{:<21}  {:<7}  {:>5}  {:<43}  {:<23}  {:<16}  {:<16}  {:<12}  {:<14}  STATE",
        "NACL",
        "DIR",
        "RULE",
        "CIDR",
        "INCIDENT",
        "PLACED (UTC)",
        "EXPIRES (UTC)",
        "ACCOUNT",
        "REGION"
    );
    for b in held {
        let m = &b.marker;
        let placed = DateTime::<Utc>::from_timestamp_millis(m.created_ms)
            .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "{:<21}  {:<7}  {:>5}  {:<43}  {:<23}  {:<16}  {:<16}  {:<12}  {:<14}  {}{}",
            clean(&m.network_acl_id, 21),
            if m.egress { "egress" } else { "ingress" },
            m.rule_number,
            clean(&m.cidr, 43),
            clean(&m.incident_id, 23),
            placed,
            m.expires_at
                .as_deref()
                .map(|t| minute(Some(t)))
                .unwrap_or_else(|| "never".into()),
            clean(m.account.as_deref().unwrap_or("(home)"), 12),
            clean(m.region.as_deref().unwrap_or("(home)"), 14),
            b.state,
            b.error
                .as_deref()
                .map(|e| format!(": {}", clean(e, 200)))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(out, "{} block(s)", held.len());
    out
}

pub fn release(r: &Response) -> String {
    let mut out = String::new();
    for i in &r.incidents {
        let _ = writeln!(out, "Release {} ({})", clean(&i.id, 40), i.incident_type);
        for a in &i.actions {
            let _ = writeln!(
                out,
                "  {:<13} {} {}: {}",
                a.status.word(),
                a.kind.as_str(),
                clean(&a.target, 60),
                clean(&a.detail, 400)
            );
        }
        if let Some(rec) = &i.record {
            let _ = writeln!(out, "Record: {rec}");
        }
    }
    out
}
