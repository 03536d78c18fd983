//! What happened to each incident of one event: the shape `firebreak
//! respond` prints, the functions answer with, and a caller turns into an
//! error that says whether a retry can help.

use serde::Serialize;

use crate::outcome::{ActionOutcome, Status};

/// What happened to one incident.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentReport {
    /// The incident id.
    pub id: String,
    /// Its severity class.
    pub severity: firebreak_core::Severity,
    /// What it is (the GuardDuty finding type, the alert type, `COMMAND:…`).
    pub incident_type: String,
    /// Where its record is (`s3://bucket/key`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    /// One outcome per planned action, in plan order, then the blocks the
    /// failed-login query found.
    pub actions: Vec<ActionOutcome>,
}

impl IncidentReport {
    /// Actions that failed.
    pub fn failed(&self) -> Vec<&ActionOutcome> {
        self.actions
            .iter()
            .filter(|a| a.status == Status::Failed)
            .collect()
    }

    /// A sentence naming every failed action (containment first, then the
    /// record or a notice), if any failed: the caller turns it into an error,
    /// so the event is retried and a responder sees what to look at.
    pub fn failure(&self) -> Option<String> {
        let mut failed: Vec<&ActionOutcome> = self.failed();
        failed.sort_by_key(|a| !a.kind.is_containment());
        let named: Vec<String> = failed
            .iter()
            .map(|a| {
                let why = a
                    .error
                    .as_ref()
                    .and_then(|e| e.code.clone())
                    .unwrap_or_else(|| a.detail.clone());
                format!("{} {} ({why})", a.kind.as_str(), a.target)
            })
            .collect();
        (!named.is_empty()).then(|| format!("incident {}: failed: {}", self.id, named.join("; ")))
    }

    /// Actions the blast-radius budget held back for a human.
    pub fn held(&self) -> Vec<&ActionOutcome> {
        self.actions
            .iter()
            .filter(|a| a.status == Status::Held)
            .collect()
    }

    /// True when a retry of the failed actions can help.
    pub fn retryable(&self) -> bool {
        self.failed()
            .iter()
            .any(|a| a.error.as_ref().is_some_and(|e| e.retryable))
    }
}

/// What one input event led to: the shape `firebreak respond` prints and
/// the functions answer with.
#[derive(Debug, Clone, Serialize)]
pub struct Response {
    /// One report per incident.
    pub incidents: Vec<IncidentReport>,
    /// Signals that were deliberately not incidents (an alarm back to OK).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<firebreak_core::incident::Ignored>,
}

impl Response {
    /// Every failed action, in one sentence, if any failed.
    pub fn failure(&self) -> Option<String> {
        let all: Vec<String> = self
            .incidents
            .iter()
            .filter_map(IncidentReport::failure)
            .collect();
        (!all.is_empty()).then(|| all.join(" | "))
    }

    /// True when retrying the event can help.
    pub fn retryable(&self) -> bool {
        self.incidents.iter().any(IncidentReport::retryable)
    }

    /// True when the budget held an action back: a human must decide.
    pub fn needs_a_human(&self) -> bool {
        self.incidents.iter().any(|i| !i.held().is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::ErrorInfo;
    use firebreak_core::ActionKind;
    use serde_json::Value;

    #[test]
    fn any_failed_action_is_a_failure_containment_named_first() {
        let failed =
            |index: usize, kind: ActionKind, target: &str, detail: &str, code: Option<&str>| {
                ActionOutcome {
                    index,
                    kind,
                    target: target.into(),
                    status: Status::Failed,
                    detail: detail.into(),
                    prior_state: Value::Null,
                    calls: Vec::new(),
                    error: code.map(|c| ErrorInfo {
                        operation: "Op".into(),
                        code: Some(c.into()),
                        message: "m".into(),
                        retryable: false,
                    }),
                    at: "2026-11-22T03:00:00.000Z".into(),
                }
            };
        let report = IncidentReport {
            id: "fb-00000000000000000000".into(),
            severity: firebreak_core::Severity::High,
            incident_type: "Recon:EC2/PortProbeUnprotectedPort".into(),
            record: None,
            actions: vec![
                failed(
                    2,
                    ActionKind::NotifyTeam,
                    "team",
                    "FIREBREAK_TEAM_TOPIC_ARN is not set",
                    None,
                ),
                failed(
                    0,
                    ActionKind::BlockIp,
                    "198.51.100.7/32",
                    "…",
                    Some("UnauthorizedOperation"),
                ),
            ],
        };
        assert_eq!(
            report.failure().as_deref(),
            Some("incident fb-00000000000000000000: failed: block_ip 198.51.100.7/32 (UnauthorizedOperation); notify_team team (FIREBREAK_TEAM_TOPIC_ARN is not set)")
        );
        assert!(!report.retryable());
        let fine = IncidentReport {
            actions: Vec::new(),
            ..report
        };
        assert_eq!(fine.failure(), None);
    }
}
