//! Each planned action kind to the function in [`crate::actions`] that
//! carries it out, and the blocks the failed-login query finds (they pass
//! the same envelope and budget as planned ones).

use chrono::Utc;
use firebreak_core::{Action, ActionKind, PlannedIncident};
use tracing::{info, warn};

use super::state::Run;
use super::{from_result, param, Executor};
use crate::actions::{iam, isolate, logs, snapshot};
use crate::error::{AwsError, Own};
use crate::gate::Gate;
use crate::outcome::{ActionOutcome, Status, Step};

impl Executor {
    pub(super) async fn contain(
        &self,
        run: &Run<'_>,
        index: usize,
        a: &Action,
        gate: &Gate<'_>,
    ) -> Vec<ActionOutcome> {
        let plan = run.plan;
        let i = &plan.incident;
        let ec2 = &self.clients.ec2;
        let result: Result<Step, AwsError> = match a.kind {
            ActionKind::DeactivateAccessKey
            | ActionKind::RevokeRoleSessions
            | ActionKind::QuarantineUser => self.credentials(&i.id, a, gate).await,
            ActionKind::BlockIp => self.block(plan, a, plan.dry_run, gate).await,
            ActionKind::IsolateInstance => {
                let subject = isolate::Subject {
                    instance_id: &a.target,
                    vpcs: finding_vpcs(plan, &a.target),
                    incident_id: &i.id,
                };
                let tag = &self.cfg.protected_tag;
                isolate::isolate(ec2, &subject, tag, &run.instances, gate).await
            }
            ActionKind::SnapshotVolumes => {
                let reads = &run.instances;
                snapshot::snapshot_volumes_read(ec2, &a.target, &i.id, reads, gate).await
            }
            ActionKind::IncreaseMonitoring => {
                let days = a
                    .params
                    .retention_days
                    .unwrap_or(self.cfg.log_retention_days);
                logs::increase_retention(&self.clients.logs, &a.target, days, gate).await
            }
            ActionKind::QueryOffendingIps => {
                return self.query_and_block(plan, index, a, gate).await
            }
            ActionKind::Release => match gate.pass().await {
                Ok(()) => match self.undo("Release", "nothing to release from") {
                    Ok(undo) => undo.release(a, i).await,
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            },
            ActionKind::ScaleServiceToZero
            | ActionKind::ServeMaintenanceResponse
            | ActionKind::RotateSecret
            | ActionKind::CopyEvidence => self.lockdown(&i.id, a, gate).await,
            ActionKind::RecordIncident
            | ActionKind::NotifyTeam
            | ActionKind::NotifyStakeholders
            | ActionKind::UpdateFinding => Err(Own::InvalidPlan {
                operation: "Execute",
                what: "bookkeeping is not containment".into(),
            }
            .into()),
        };
        let o = from_result(index, a, result);
        match o.status {
            Status::Failed => {
                warn!(incident_id = %i.id, action = a.kind.as_str(), target = %a.target, code = o.error.as_ref().and_then(|e| e.code.as_deref()).unwrap_or("-"), "containment failed")
            }
            s => {
                info!(incident_id = %i.id, action = a.kind.as_str(), target = %a.target, status = ?s, "contained")
            }
        }
        vec![o]
    }

    /// The IAM actions: a key deactivated (and its minted sessions cut), a
    /// role's sessions revoked, a user quarantined.
    async fn credentials(
        &self,
        incident_id: &str,
        a: &Action,
        gate: &Gate<'_>,
    ) -> Result<Step, AwsError> {
        let (iam, tag, now) = (&self.clients.iam, &self.cfg.protected_tag, Utc::now());
        match a.kind {
            ActionKind::DeactivateAccessKey => {
                let user = param(a, "user name", a.params.user_name.as_deref())?;
                let key = (user, a.target.as_str());
                iam::deactivate_access_key(iam, key, incident_id, now, tag, gate).await
            }
            ActionKind::RevokeRoleSessions => {
                iam::revoke_role_sessions(iam, &a.target, incident_id, now, tag, gate).await
            }
            _ => iam::quarantine_user(iam, &a.target, incident_id, tag, gate).await,
        }
    }
}

/// The VPCs the finding names for `instance` (none when it names another
/// instance or no network details, as a responder's request by id does).
fn finding_vpcs<'a>(plan: &'a PlannedIncident, instance: &str) -> &'a [String] {
    match &plan.incident.subjects.instance {
        Some(i) if i.id == instance => &i.vpcs,
        _ => &[],
    }
}
