//! Blocks: one planned block placed in every NACL it names and noted in
//! the block ledger, and the blocks the failed-login query finds (they pass
//! the same envelope and budget as planned ones).

use std::net::IpAddr;

use aws_sdk_ec2::types::NetworkAcl;
use chrono::{SecondsFormat, TimeDelta, Utc};
use firebreak_core::policy::{check_block, plan_found_blocks, TrafficDirection};
use firebreak_core::{Action, ActionKind, PlanStatus, PlannedIncident};
use ipnet::IpNet;
use tracing::{info, warn};

use super::{failed, from_result, outcome, Executor};
use crate::actions::logs::{self, Offender};
use crate::actions::nacl::{self, Placed};
use crate::bucket::ledger::BlockMarker;
use crate::bucket::lock::NaclGuard;
use crate::error::{AwsError, Own};
use crate::gate::Gate;
use crate::outcome::{ActionOutcome, Change, Status, Step};
use crate::prior::{self, BlockPrior, QueryPrior};

impl Executor {
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
            AwsError::from(Own::InvalidTarget {
                target: a.target.clone(),
            })
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
        if dry_run {
            return Ok(Step::refused(
                format!("dry run: would deny {cidr} in {}", nacls.join(", ")),
                vec!["DescribeNetworkAcls".into()],
            ));
        }
        gate.pass().await?;
        let egress = a.params.direction == Some(TrafficDirection::Egress);
        let hours = a
            .params
            .expires_after_hours
            .unwrap_or(self.cfg.block_ttl_hours);
        let mut step = Step::new(true, "", serde_json::Value::Null, Vec::new());
        let mut entries = Vec::new();
        let mut details = Vec::new();
        for (nacl, acl) in nacls.iter().zip(&read) {
            let placed = self.block_in(plan, nacl, acl, cidr, egress, hours).await?;
            if !placed.step.already() {
                step.change = Change::Made;
            }
            step.calls.extend(placed.step.calls);
            details.push(placed.step.detail);
            entries.push(placed.entry);
        }
        step.detail = details.join("; ");
        step.prior_state = prior::to_json(&BlockPrior {
            entries,
            expires_after_hours: hours,
        });
        Ok(step)
    }

    /// The block in one NACL (its entries as read beside the claim), and
    /// its marker in the ledger when it is new.
    async fn block_in(
        &self,
        plan: &PlannedIncident,
        nacl: &str,
        acl: &NetworkAcl,
        cidr: IpNet,
        egress: bool,
        hours: u32,
    ) -> Result<Placed, AwsError> {
        let spec = nacl::BlockSpec {
            egress,
            range: self.cfg.nacl_rule_range,
            quota: nacl::DEFAULT_QUOTA,
        };
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
        let placed = match &self.records {
            Some(r) => {
                let guard = NaclGuard::new(r, nacl, egress);
                nacl::block_ip(ec2, nacl, cidr, spec, &guard, &ages, entries).await?
            }
            None => nacl::block_ip(ec2, nacl, cidr, spec, &nacl::Alone, &ages, entries).await?,
        };
        for e in &placed.evicted {
            info!(%nacl, rule = e.rule_number, cidr = %e.cidr, by = %plan.incident.id, "evicted the oldest block to make room");
        }
        if !placed.step.already() {
            self.mark(plan, nacl, egress, placed.rule_number, cidr, hours)
                .await;
        }
        Ok(placed)
    }

    /// Notes a new entry in the block ledger: the expirer lifts it when its
    /// time is up, and an eviction finds the oldest by it.
    async fn mark(
        &self,
        plan: &PlannedIncident,
        nacl: &str,
        egress: bool,
        number: i32,
        cidr: IpNet,
        hours: u32,
    ) {
        let Some(r) = &self.records else {
            return;
        };
        let created = Utc::now();
        let marker = BlockMarker {
            network_acl_id: nacl.to_string(),
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
        let found = match self.offenders(a).await {
            Ok(found) => found,
            Err(e) => return vec![from_result(index, a, Err(e))],
        };
        if let Err(e) = gate.pass().await {
            return vec![from_result(index, a, Err(e))];
        }
        let (offenders, calls) = found;
        let derived = self.block_found(plan, index, &offenders, gate).await;
        let mut out = vec![query_outcome(index, a, &offenders, calls, &derived)];
        out.extend(derived);
        out
    }

    /// The addresses the failed-login query finds over the threshold.
    async fn offenders(&self, a: &Action) -> Result<(Vec<Offender>, Vec<String>), AwsError> {
        let (Some(window), Some(query)) = (&a.params.window, &a.params.query) else {
            return Err(Own::InvalidPlan {
                operation: "StartQuery",
                what: "the query has no window or text".into(),
            }
            .into());
        };
        logs::offending_ips(
            &self.clients.logs,
            &a.params.log_groups,
            (&window.start, &window.end),
            query,
            a.params.threshold.unwrap_or(self.cfg.offender_threshold),
            self.polling,
        )
        .await
    }

    /// A block of each address found, planned and checked like a planned
    /// one, under the budget (a dry run says what it would do).
    async fn block_found(
        &self,
        plan: &PlannedIncident,
        index: usize,
        offenders: &[Offender],
        gate: &Gate<'_>,
    ) -> Vec<ActionOutcome> {
        let ips: Vec<IpAddr> = offenders.iter().map(|o| o.ip).collect();
        let mut derived = Vec::new();
        for b in &plan_found_blocks(plan, &ips, &self.cfg) {
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
        derived
    }
}

/// The query's own outcome: who it found and what became of their blocks
/// (failed if any block failed).
fn query_outcome(
    index: usize,
    a: &Action,
    offenders: &[Offender],
    calls: Vec<String>,
    derived: &[ActionOutcome],
) -> ActionOutcome {
    let placed = derived
        .iter()
        .filter(|o| matches!(o.status, Status::Done | Status::AlreadyDone))
        .count();
    let summary = offenders
        .iter()
        .map(|o| format!("{} ({} failures)", o.ip, o.failures))
        .collect::<Vec<_>>()
        .join(", ");
    let detail = format!(
        "{} address(es) at or over the threshold{}{}; {placed} blocked",
        offenders.len(),
        if summary.is_empty() { "" } else { ": " },
        summary
    );
    let mut q = ActionOutcome {
        prior_state: prior::to_json(&QueryPrior {
            offenders: summary,
            blocks: derived.to_vec(),
        }),
        calls,
        ..outcome(index, a, Status::Done, detail)
    };
    if let Some(f) = derived.iter().find(|o| o.status == Status::Failed) {
        q.status = Status::Failed;
        q.error = f.error.clone();
    }
    q
}
