//! Each planned action kind to the function in [`crate::actions`] that
//! carries it out, and the blocks the failed-login query finds (they pass
//! the same envelope and budget as planned ones).

use std::net::IpAddr;

use chrono::{SecondsFormat, TimeDelta, Utc};
use firebreak_core::policy::{check_block, plan_found_blocks, TrafficDirection};
use firebreak_core::{Action, ActionKind, PlanStatus, PlannedIncident};
use ipnet::IpNet;
use serde_json::{json, Value};
use tracing::{info, warn};

use super::{failed, from_result, outcome, param, Executor};
use crate::actions::{iam, isolate, logs, nacl, snapshot};
use crate::bucket::ledger::BlockMarker;
use crate::bucket::lock::NaclGuard;
use crate::error::AwsError;
use crate::gate::Gate;
use crate::outcome::{ActionOutcome, Status, Step};

impl Executor {
    pub(super) async fn contain(
        &self,
        plan: &PlannedIncident,
        index: usize,
        a: &Action,
        gate: &Gate<'_>,
    ) -> Vec<ActionOutcome> {
        let i = &plan.incident;
        let result: Result<Step, AwsError> = match a.kind {
            ActionKind::DeactivateAccessKey => {
                match param(a, "user name", a.params.user_name.as_deref()) {
                    Ok(user) => {
                        iam::deactivate_access_key(&self.clients.iam, user, &a.target, gate).await
                    }
                    Err(e) => Err(e),
                }
            }
            ActionKind::RevokeRoleSessions => {
                let now = Utc::now();
                iam::revoke_role_sessions(&self.clients.iam, &a.target, &i.id, now, gate).await
            }
            ActionKind::BlockIp => self.block(plan, a, plan.dry_run, gate).await,
            ActionKind::IsolateInstance => {
                let tag = &self.cfg.protected_tag;
                isolate::isolate_instance(&self.clients.ec2, &a.target, &i.id, tag, gate).await
            }
            ActionKind::SnapshotVolumes => {
                snapshot::snapshot_volumes(&self.clients.ec2, &a.target, &i.id, gate).await
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
                Ok(()) => self.release(a, &i.id).await,
                Err(e) => Err(e),
            },
            ActionKind::RecordIncident
            | ActionKind::NotifyTeam
            | ActionKind::NotifyStakeholders => Err(AwsError::local(
                "Execute",
                "InvalidPlan",
                "bookkeeping is not containment",
            )),
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

    /// Runs the failed-login query and blocks what it finds. The blocks pass
    /// the same envelope as planned ones; they are reported after the plan's
    /// actions and kept inside the query's outcome, so a retry (which runs
    /// the query again) finds the entries already there.
    pub(super) async fn query_and_block(
        &self,
        plan: &PlannedIncident,
        index: usize,
        a: &Action,
        gate: &Gate<'_>,
    ) -> Vec<ActionOutcome> {
        let (Some(window), Some(query)) = (&a.params.window, &a.params.query) else {
            return vec![from_result(
                index,
                a,
                Err(AwsError::local(
                    "StartQuery",
                    "InvalidPlan",
                    "the query has no window or text",
                )),
            )];
        };
        let found = logs::offending_ips(
            &self.clients.logs,
            &a.params.log_groups,
            (&window.start, &window.end),
            query,
            a.params.threshold.unwrap_or(self.cfg.offender_threshold),
            self.polling,
        )
        .await;
        let (offenders, calls) = match found {
            Ok(f) => f,
            Err(e) => return vec![from_result(index, a, Err(e))],
        };
        if let Err(e) = gate.pass().await {
            return vec![from_result(index, a, Err(e))];
        }
        let ips: Vec<IpAddr> = offenders.iter().map(|o| o.ip).collect();
        let blocks = plan_found_blocks(plan, &ips, &self.cfg);
        let mut derived = Vec::new();
        for b in &blocks {
            let o = if b.status == PlanStatus::Skipped {
                outcome(index, b, Status::Skipped, b.reason.clone())
            } else if plan.dry_run {
                from_result(index, b, self.block(plan, b, true, gate).await)
            } else {
                match self.budget(plan, ActionKind::BlockIp, &b.target).await {
                    Ok(Some(why)) => outcome(index, b, Status::Held, why),
                    Err(e) => failed(index, b, &e),
                    Ok(None) => from_result(index, b, self.block(plan, b, false, gate).await),
                }
            };
            derived.push(o);
        }
        let failed = derived
            .iter()
            .filter(|o| o.status == Status::Failed)
            .count();
        let placed = derived
            .iter()
            .filter(|o| matches!(o.status, Status::Done | Status::AlreadyDone))
            .count();
        let summary = offenders
            .iter()
            .map(|o| format!("{} ({} failures)", o.ip, o.failures))
            .collect::<Vec<_>>()
            .join(", ");
        let mut q = ActionOutcome {
            prior_state: json!({ "offenders": summary, "blocks": derived }),
            calls,
            ..outcome(
                index,
                a,
                Status::Done,
                format!(
                    "{} address(es) at or over the threshold{}{}; {placed} blocked",
                    offenders.len(),
                    if summary.is_empty() { "" } else { ": " },
                    summary
                ),
            )
        };
        if failed > 0 {
            q.status = Status::Failed;
            q.error = derived.iter().find_map(|o| o.error.clone());
        }
        let mut out = vec![q];
        out.extend(derived);
        out
    }

    /// Places one block in every NACL it names, re-checking the safety
    /// envelope right before the calls, and notes each new entry in the
    /// block ledger (for the expirer and the eviction order).
    pub(super) async fn block(
        &self,
        plan: &PlannedIncident,
        a: &Action,
        dry_run: bool,
        gate: &Gate<'_>,
    ) -> Result<Step, AwsError> {
        let cidr: IpNet = a.target.parse().map_err(|_| {
            AwsError::local(
                "CreateNetworkAclEntry",
                "InvalidTarget",
                format!("`{}` is not a CIDR", a.target),
            )
        })?;
        if let Err(why) = check_block(cidr, &self.cfg) {
            return Ok(Step::refused(why, Vec::new()));
        }
        // Read with the claim and the budget, not after them.
        let read = nacl::read_nacls(&self.clients.ec2, &a.params.subnets, &a.params.nacls).await?;
        let nacls: Vec<String> = read
            .iter()
            .filter_map(|n| n.network_acl_id().map(str::to_string))
            .collect();
        let egress = a.params.direction == Some(TrafficDirection::Egress);
        if dry_run {
            return Ok(Step::refused(
                format!("dry run: would deny {cidr} in {}", nacls.join(", ")),
                vec!["DescribeNetworkAcls".into()],
            ));
        }
        gate.pass().await?;
        let spec = nacl::BlockSpec {
            egress,
            range: self.cfg.nacl_rule_range,
            quota: nacl::DEFAULT_QUOTA,
        };
        let hours = a
            .params
            .expires_after_hours
            .unwrap_or(self.cfg.block_ttl_hours);
        let mut step = Step::new(true, "", Value::Null, Vec::new());
        let mut placed = Vec::new();
        let mut details = Vec::new();
        for (nacl, acl) in nacls.iter().zip(&read) {
            let entries = Some(nacl::direction_entries(acl, egress));
            let ages = async || match &self.records {
                Some(r) => r.block_ages(nacl, egress).await.unwrap_or_else(|e| {
                    warn!(
                        code = e.code.as_deref().unwrap_or("-"),
                        "block ledger unreadable: entries count as oldest"
                    );
                    Vec::new()
                }),
                None => Vec::new(),
            };
            let ec2 = &self.clients.ec2;
            let (s, number, evicted) = match &self.records {
                Some(r) => {
                    let guard = NaclGuard::new(r, nacl, egress);
                    nacl::block_ip(ec2, nacl, cidr, spec, &guard, &ages, entries).await?
                }
                None => nacl::block_ip(ec2, nacl, cidr, spec, &nacl::Alone, &ages, entries).await?,
            };
            for (rule, victim) in &evicted {
                info!(%nacl, rule, cidr = %victim, by = %plan.incident.id, "evicted the oldest block to make room");
            }
            if !s.already {
                if let Some(r) = &self.records {
                    let created = Utc::now();
                    let marker = BlockMarker {
                        network_acl_id: nacl.clone(),
                        egress,
                        rule_number: number,
                        cidr: cidr.to_string(),
                        incident_id: plan.incident.id.clone(),
                        account: Some(self.account.clone()),
                        region: Some(self.region.clone()).filter(|r| !r.is_empty()),
                        created_ms: created.timestamp_millis(),
                        expires_at: TimeDelta::try_hours(i64::from(hours))
                            .and_then(|d| created.checked_add_signed(d))
                            .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
                    };
                    if let Err(e) = r.put_marker(&marker).await {
                        // The block stands; only its expiry is unknown.
                        warn!(code = e.code.as_deref().unwrap_or("-"), %nacl, number, "block marker not written: the expirer will not lift this entry");
                    }
                }
            }

            step.already &= s.already;
            step.calls.extend(s.calls);
            details.push(s.detail);
            placed.push(s.prior_state);
        }
        step.detail = details.join("; ");
        step.prior_state = json!({ "entries": placed, "expires_after_hours": hours });
        Ok(step)
    }
}
