//! The words every part of the core shares — where a signal came from, which
//! way its traffic went, what an action does — in a leaf module of their
//! own, so the modules that use them (`config`, `incident`, `severity`,
//! `policy`) depend on it and never on each other in a circle.

use serde::{Deserialize, Serialize};

/// Where an incident came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A GuardDuty finding.
    Guardduty,
    /// A CloudWatch alarm delivered by SNS.
    CloudwatchAlarm,
    /// A human responder.
    Manual,
    /// A finding of another product (Inspector, Macie, Config, Security
    /// Hub's own controls, a partner) delivered by Security Hub. GuardDuty's
    /// findings through Security Hub are [`Source::Guardduty`]: the same
    /// incident as the native finding.
    #[serde(rename = "securityhub")]
    SecurityHub,
}

impl Source {
    /// The name used in plans and message attributes.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Guardduty => "guardduty",
            Source::CloudwatchAlarm => "cloudwatch_alarm",
            Source::Manual => "manual",
            Source::SecurityHub => "securityhub",
        }
    }
}

/// What a Security Hub custom action (a responder's button in the Security
/// Hub console) asks Firebreak to do; which action name means which is
/// configured (`FIREBREAK_SECURITYHUB_ACTIONS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CustomAction {
    /// Run the finding's own playbook at its own severity. A button press
    /// is a responder's go-ahead, not a new severity: it neither raises
    /// nor lowers the class, so a GuardDuty finding plans exactly as its
    /// imported delivery did (the same incident, with one plan and one
    /// record). For other products' findings it allows only the isolation
    /// of an instance the finding names (see [`crate::policy`]); anything
    /// further is a responder command.
    Contain,
    /// Record and notify only; change nothing.
    Record,
    /// Quarantine the IAM user the finding names, at any severity and
    /// from any product (a responder's explicit request, like the
    /// `quarantine_user` command), and nothing else.
    Quarantine,
}

impl CustomAction {
    /// Every meaning, in the order error messages list them.
    pub const ALL: [CustomAction; 3] = [
        CustomAction::Contain,
        CustomAction::Record,
        CustomAction::Quarantine,
    ];

    /// The name used in configuration and plans.
    pub fn as_str(self) -> &'static str {
        match self {
            CustomAction::Contain => "contain",
            CustomAction::Record => "record",
            CustomAction::Quarantine => "quarantine",
        }
    }

    /// The meaning a configured word names, in any case.
    pub fn parse(word: &str) -> Option<CustomAction> {
        CustomAction::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(word.trim()))
    }
}

/// Which way the traffic went, from the account's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Direction {
    /// The remote address reached in (attack, probe, login attempt, API call).
    Inbound,
    /// The resource reached out (C2, mining pool, exfiltration).
    Outbound,
    /// GuardDuty could not tell.
    Unknown,
}

/// What an action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// A network ACL deny entry for one host.
    BlockIp,
    /// `UpdateAccessKey` to Inactive for the named key only.
    DeactivateAccessKey,
    /// A deny-all policy for sessions issued before now.
    RevokeRoleSessions,
    /// Security-group swap, tag, termination protection.
    IsolateInstance,
    /// A snapshot of every attached volume.
    SnapshotVolumes,
    /// Logs Insights: failed logins by source address.
    QueryOffendingIps,
    /// Longer retention on a log group.
    IncreaseMonitoring,
    /// Undo an earlier incident's actions.
    Release,
    /// The incident record in S3.
    RecordIncident,
    /// SNS notice to the team.
    NotifyTeam,
    /// SNS notice to stakeholders.
    NotifyStakeholders,
    /// An inline deny-all policy on an IAM user: neither the console nor
    /// any key or session of the user can do anything.
    QuarantineUser,
    /// Security Hub write-back: workflow `NOTIFIED` (only while `NEW`) and
    /// a note of what was done, on the finding the incident came from.
    UpdateFinding,
    /// An ECS service's desired count to 0 (the emergency lockdown).
    ScaleServiceToZero,
    /// A load balancer listener's default actions replaced by a fixed 503
    /// (the emergency lockdown).
    ServeMaintenanceResponse,
    /// A Secrets Manager secret rotated now, with its configured rotation
    /// (the emergency lockdown; not undone by a release).
    RotateSecret,
    /// Every object under an S3 prefix copied aside as evidence (the
    /// emergency lockdown; kept on release).
    CopyEvidence,
}

impl ActionKind {
    /// True for actions that change the account (as opposed to bookkeeping).
    pub fn is_containment(self) -> bool {
        !matches!(
            self,
            ActionKind::RecordIncident
                | ActionKind::NotifyTeam
                | ActionKind::NotifyStakeholders
                | ActionKind::UpdateFinding
        )
    }

    /// The snake_case name used in plans, records and keys.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::BlockIp => "block_ip",
            ActionKind::DeactivateAccessKey => "deactivate_access_key",
            ActionKind::RevokeRoleSessions => "revoke_role_sessions",
            ActionKind::IsolateInstance => "isolate_instance",
            ActionKind::SnapshotVolumes => "snapshot_volumes",
            ActionKind::QueryOffendingIps => "query_offending_ips",
            ActionKind::IncreaseMonitoring => "increase_monitoring",
            ActionKind::Release => "release",
            ActionKind::RecordIncident => "record_incident",
            ActionKind::NotifyTeam => "notify_team",
            ActionKind::NotifyStakeholders => "notify_stakeholders",
            ActionKind::QuarantineUser => "quarantine_user",
            ActionKind::UpdateFinding => "update_finding",
            ActionKind::ScaleServiceToZero => "scale_service_to_zero",
            ActionKind::ServeMaintenanceResponse => "serve_maintenance_response",
            ActionKind::RotateSecret => "rotate_secret",
            ActionKind::CopyEvidence => "copy_evidence",
        }
    }
}
