//! Undo: a responder's release of an earlier incident, from its record, and
//! the expirer's lift of blocks whose time is up.

use chrono::{SecondsFormat, Utc};
use firebreak_core::{Action, ActionKind};
use futures_util::future::join;
use ipnet::IpNet;
use serde::Serialize;
use serde_json::{json, Value};
use tracing::{info, warn};

use crate::actions::{iam, isolate, logs, nacl};
use crate::bucket::layout;
use crate::bucket::ledger::BlockMarker;
use crate::bucket::lock::{self, Lock};
use crate::bucket::RecordStore;
use crate::error::AwsError;
use crate::outcome::{ActionOutcome, ErrorInfo, Status, Step};
use crate::respond::{now, Executor};

impl Executor {
    /// The right to delete one entry (an evictor may hold it briefly).
    pub(crate) async fn victim_lock<'s>(
        &self,
        store: &'s RecordStore,
        nacl: &str,
        egress: bool,
        rule: i32,
        cidr: IpNet,
    ) -> Result<Lock<'s>, AwsError> {
        Lock::take(
            store,
            &layout::victim_key(nacl, egress, rule, cidr),
            lock::VICTIM_LOCK_SECONDS,
            std::time::Duration::from_secs(u64::from(self.cfg.claim_wait_seconds)),
        )
        .await
    }

    /// Undoes an earlier incident's actions from its record.
    pub(crate) async fn release(&self, a: &Action, release_id: &str) -> Result<Step, AwsError> {
        let store = self.records.as_ref().ok_or_else(|| {
            AwsError::local(
                "Release",
                "NoRecords",
                "FIREBREAK_RECORDS_BUCKET is not set: nothing to release from",
            )
        })?;
        let earlier_id = &a.target;
        let prefix = store.find_prefix(earlier_id).await?.ok_or_else(|| {
            AwsError::local(
                "Release",
                "NoSuchIncident",
                format!("no record of incident {earlier_id} in {}", store.bucket()),
            )
        })?;
        let (earlier, record) = join(
            store.completed(&prefix),
            store.get_json::<Value>(&layout::record_key(&prefix)),
        )
        .await;
        let (earlier, record) = (earlier?, record?.unwrap_or_default());
        let mut calls = vec!["GetObject".to_string(), "ListObjectsV2".to_string()];
        let mut undone = Vec::new();
        let mut notes = Vec::new();
        let mut first_error = None;
        // What changed the account (not the record, a notice or a release).
        let wanted = |o: &ActionOutcome| {
            o.status == Status::Done
                && o.kind.is_containment()
                && o.kind != ActionKind::Release
                && a.params
                    .action
                    .is_none_or(|n| usize::try_from(n).is_ok_and(|n| n == o.index))
        };
        let total = earlier.iter().filter(|o| wanted(o)).count();
        // Undone where it was done, as the record says; a record without
        // `acted_in` acted at home (written before there were member
        // accounts) or nowhere. Nothing to undo: no place to reach.
        let here = if total == 0 {
            self.clone()
        } else {
            let at = &record["acted_in"];
            self.for_place(at["account"].as_str(), at["region"].as_str(), release_id)
                .await
                .map_err(|why| why.into_error("Release"))?
        };
        for (n, o) in earlier.iter().filter(|o| wanted(o)).enumerate() {
            self.progress
                .step(n, total, &format!("{} {}", o.kind.as_str(), o.target));
            let steps: Vec<Result<Step, AwsError>> = match o.kind {
                ActionKind::BlockIp => here.unblock_all(store, &o.prior_state).await,
                ActionKind::QueryOffendingIps => {
                    let mut v = Vec::new();
                    for b in o.prior_state["blocks"].as_array().into_iter().flatten() {
                        if b["status"] == "done" {
                            v.extend(here.unblock_all(store, &b["prior_state"]).await);
                        }
                    }
                    v
                }
                ActionKind::DeactivateAccessKey if a.params.force => {
                    let user = o.prior_state["user_name"].as_str().unwrap_or_default();
                    vec![iam::reactivate_access_key(&here.clients.iam, user, &o.target).await]
                }
                ActionKind::DeactivateAccessKey => {
                    notes.push(format!(
                        "key {} left Inactive: a leaked key is rotated, not re-enabled (\"force\": true re-enables it)",
                        o.target
                    ));
                    Vec::new()
                }
                ActionKind::RevokeRoleSessions => vec![
                    iam::restore_role_policy(
                        &here.clients.iam,
                        &o.target,
                        earlier_id,
                        o.prior_state["previous_document"].as_str(),
                    )
                    .await,
                ],
                ActionKind::IsolateInstance => {
                    vec![isolate::restore_instance(&here.clients.ec2, &o.prior_state).await]
                }
                ActionKind::IncreaseMonitoring => vec![
                    logs::restore_retention(
                        &here.clients.logs,
                        &o.target,
                        o.prior_state["retention_in_days"]
                            .as_i64()
                            .and_then(|d| i32::try_from(d).ok()),
                    )
                    .await,
                ],
                ActionKind::SnapshotVolumes => {
                    notes.push(format!("snapshots of {} kept as evidence", o.target));
                    Vec::new()
                }
                ActionKind::Release
                | ActionKind::RecordIncident
                | ActionKind::NotifyTeam
                | ActionKind::NotifyStakeholders => Vec::new(),
            };
            for s in steps {
                match s {
                    Ok(step) => {
                        calls.extend(step.calls);
                        undone.push(json!({ "index": o.index, "kind": o.kind, "target": o.target, "detail": step.detail }));
                    }
                    Err(e) => {
                        warn!(incident_id = %earlier_id, action = o.kind.as_str(), code = e.code.as_deref().unwrap_or("-"), "release step failed");
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        self.progress.step(total, total, "");
        if let Some(e) = first_error {
            return Err(e);
        }
        let detail = if undone.is_empty() && notes.is_empty() {
            format!("incident {earlier_id} has nothing Firebreak changed that is still in place")
        } else {
            let mut parts: Vec<String> = undone
                .iter()
                .filter_map(|u| u["detail"].as_str().map(str::to_string))
                .collect();
            parts.extend(notes);
            parts.join("; ")
        };
        // The earlier incident's own prefix says it was released, so a
        // listing shows it without reading every release.
        if !undone.is_empty() {
            let mark = json!({ "released_by": release_id, "at": now(), "action": a.params.action, "undone": undone });
            let (marked, handled) = join(
                store.put_new(&layout::release_key(&prefix, release_id), &mark),
                store.put_handled(earlier_id, &prefix, "released", Utc::now()),
            )
            .await;
            for (e, what) in [
                (marked.err(), "release mark not written"),
                (handled.err(), "release not indexed by time"),
            ] {
                if let Some(e) = e {
                    warn!(
                        code = e.code.as_deref().unwrap_or("-"),
                        what, "release bookkeeping failed"
                    );
                }
            }
            calls.push("PutObject".into());
        }
        Ok(Step::new(
            undone.is_empty(),
            detail,
            json!({ "released_incident": earlier_id, "record": prefix, "acted_in": { "account": here.account, "region": here.region }, "undone": undone }),
            calls,
        ))
    }

    /// Lifts the entries a block outcome placed (not the ones it found).
    pub(crate) async fn unblock_all(
        &self,
        store: &RecordStore,
        prior: &Value,
    ) -> Vec<Result<Step, AwsError>> {
        let mut out = Vec::new();
        for e in prior["entries"].as_array().into_iter().flatten() {
            if e["existed"] != json!(false) {
                continue;
            }
            let (Some(nacl), Some(egress), Some(rule), Some(cidr)) = (
                e["network_acl_id"].as_str(),
                e["egress"].as_bool(),
                e["rule_number"]
                    .as_i64()
                    .and_then(|n| i32::try_from(n).ok()),
                e["cidr"].as_str().and_then(|c| c.parse::<IpNet>().ok()),
            ) else {
                continue;
            };
            let lock = match self.victim_lock(store, nacl, egress, rule, cidr).await {
                Ok(l) => l,
                Err(e) => {
                    out.push(Err(e));
                    continue;
                }
            };
            let r = nacl::unblock(&self.clients.ec2, nacl, egress, rule, cidr).await;
            lock.release().await;
            if r.is_ok() {
                if let Err(err) = store.forget_block(nacl, egress, rule, cidr).await {
                    warn!(
                        code = err.code.as_deref().unwrap_or("-"),
                        "block marker not removed"
                    );
                }
            }
            out.push(r);
        }
        out
    }
}

/// One block the expirer looked at.
#[derive(Debug, Clone, Serialize)]
pub struct Expiry {
    /// The ledger marker.
    pub marker: BlockMarker,
    /// `done` (lifted), `already_done` (the entry was gone or reused) or `failed`.
    pub status: Status,
    /// What happened.
    pub detail: String,
    /// The failure, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
}

impl Executor {
    /// Lifts every block whose time is up, from the block ledger, and files
    /// a record of each lift under `expired/dt=YYYY-MM-DD/`. Blocks without
    /// an expiry, and blocks still running, are left alone.
    pub async fn expire_blocks(&self, now: chrono::DateTime<Utc>) -> Result<Vec<Expiry>, AwsError> {
        let store = self.records.as_ref().ok_or_else(|| {
            AwsError::local(
                "ExpireBlocks",
                "NoRecords",
                "FIREBREAK_RECORDS_BUCKET is not set: there is no block ledger",
            )
        })?;
        let mut out = Vec::new();
        for (key, marker) in store.markers().await? {
            let due = marker
                .expires_at
                .as_deref()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .is_some_and(|t| t <= now);
            if !due {
                continue;
            }
            let Ok(cidr) = marker.cidr.parse::<IpNet>() else {
                continue;
            };
            // Lifted where it was placed.
            let here = match self
                .for_place(
                    marker.account.as_deref(),
                    marker.region.as_deref(),
                    &marker.incident_id,
                )
                .await
            {
                Ok(here) => here,
                Err(why) => {
                    let err = why.into_error("ExpireBlocks");
                    out.push(Expiry {
                        status: Status::Failed,
                        detail: err.to_string(),
                        error: Some(ErrorInfo::from(&err)),
                        marker,
                    });
                    continue;
                }
            };
            let lifted = match self
                .victim_lock(
                    store,
                    &marker.network_acl_id,
                    marker.egress,
                    marker.rule_number,
                    cidr,
                )
                .await
            {
                Ok(lock) => {
                    let r = nacl::unblock(
                        &here.clients.ec2,
                        &marker.network_acl_id,
                        marker.egress,
                        marker.rule_number,
                        cidr,
                    )
                    .await;
                    lock.release().await;
                    r
                }
                Err(e) => Err(e),
            };
            let e = match lifted {
                Ok(step) => {
                    // The lift is recorded before the marker goes, so a crash
                    // in between leaves a marker the next run finds done.
                    let record = json!({ "lifted_at": now.to_rfc3339_opts(SecondsFormat::Secs, true), "marker": marker, "detail": step.detail, "already": step.already });
                    let rkey = layout::expired_key(now, &key);
                    let recorded = match store.put_new(&rkey, &record).await {
                        Ok(_) => store.delete(&key).await,
                        Err(err) => Err(err),
                    };
                    // The lift is a handling of the incident that placed it.
                    let indexed = match store.find_prefix(&marker.incident_id).await {
                        Ok(Some(prefix)) => store
                            .put_handled(&marker.incident_id, &prefix, "block_lifted", now)
                            .await
                            .map(|_| ()),
                        Ok(None) => Ok(()),
                        Err(err) => Err(err),
                    };
                    if let Err(err) = indexed {
                        warn!(code = err.code.as_deref().unwrap_or("-"), incident_id = %marker.incident_id, "lift not indexed by time");
                    }
                    if let Err(err) = recorded {
                        warn!(code = err.code.as_deref().unwrap_or("-"), %key, "lift not recorded; the next run retries");
                    }
                    info!(nacl = %marker.network_acl_id, rule = marker.rule_number, cidr = %marker.cidr, incident_id = %marker.incident_id, "block expired");
                    Expiry {
                        status: if step.already {
                            Status::AlreadyDone
                        } else {
                            Status::Done
                        },
                        detail: step.detail,
                        marker,
                        error: None,
                    }
                }
                Err(err) => Expiry {
                    status: Status::Failed,
                    detail: err.to_string(),
                    error: Some(ErrorInfo::from(&err)),
                    marker,
                },
            };
            out.push(e);
        }
        Ok(out)
    }
}
