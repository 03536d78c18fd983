//! A responder's release: undo an earlier incident's actions (or one of
//! them) from its record, where they were done, and say so on the
//! released incident's Security Hub finding (a note; its workflow status
//! stays whatever it is).

use chrono::Utc;
use firebreak_core::policy::SecurityHubFinding;
use firebreak_core::{Action, ActionKind, Incident};
use futures_util::future::join;
use ipnet::IpNet;
use serde::Deserialize;
use tracing::warn;

use super::Undo;
use crate::actions::securityhub::{self, Workflow};
use crate::actions::{ecs, elb, iam, isolate, logs};
use crate::bucket::layout;
use crate::error::{AwsError, Own};
use crate::outcome::{ActionOutcome, Status, Step};
use crate::place::{Place, Purpose};
use crate::prior::{
    self, ActedIn, BlockPrior, IsolatePrior, KeyPrior, ListenerPrior, QuarantinePrior, QueryPrior,
    ReleasePrior, RetentionPrior, RevokePrior, ScalePrior, Undone,
};

/// Where the earlier incident acted, and its plan, as its record says.
#[derive(Debug, Default, Deserialize)]
struct Record {
    #[serde(default)]
    acted_in: Option<Acted>,
    /// Read loosely: only the write-backs are needed, and a record of a
    /// newer version (an action kind this one does not know) must still
    /// release.
    #[serde(default)]
    actions: Vec<serde_json::Value>,
}

impl Record {
    /// Whether `o` is the action at `index` of the recorded plan. The
    /// index alone is not enough: a responder's later request on the same
    /// incident (a Security Hub custom action) runs a plan of its own whose
    /// outcomes share the incident's prefix and restart at 0.
    fn is_action(&self, index: usize, o: &ActionOutcome) -> bool {
        o.index == index
            && self
                .actions
                .get(index)
                .is_some_and(|a| a["kind"] == o.kind.as_str() && a["target"] == o.target.as_str())
    }

    /// The Security Hub findings its plan wrote back to.
    fn findings(&self) -> Vec<SecurityHubFinding> {
        self.actions
            .iter()
            .filter(|a| a["kind"] == ActionKind::UpdateFinding.as_str())
            .filter_map(|a| {
                Some(SecurityHubFinding {
                    id: a["target"].as_str()?.to_string(),
                    product_arn: a["params"]["product_arn"].as_str()?.to_string(),
                })
            })
            .collect()
    }
}

#[derive(Debug, Default, Deserialize)]
struct Acted {
    #[serde(default)]
    account: Option<String>,
    #[serde(default)]
    region: Option<String>,
}

/// The earlier incident, as its record has it.
struct Earlier {
    prefix: String,
    /// Its final outcomes.
    outcomes: Vec<ActionOutcome>,
    record: Record,
}

/// What a release did and said so far.
#[derive(Default)]
struct Progressing {
    calls: Vec<String>,
    undone: Vec<Undone>,
    notes: Vec<String>,
    first_error: Option<AwsError>,
}

impl Undo<'_> {
    /// Undoes an earlier incident's actions from its record; `release` is
    /// the release's own incident (who asked, and why).
    pub(crate) async fn release(&self, a: &Action, release: &Incident) -> Result<Step, AwsError> {
        let release_id = release.id.as_str();
        let earlier_id = &a.target;
        let earlier = self.earlier(earlier_id).await?;
        // What changed the account (not the record, a notice or a release).
        let wanted = |o: &&ActionOutcome| {
            o.status == Status::Done
                && o.kind.is_containment()
                && o.kind != ActionKind::Release
                && a.params.action.is_none_or(|n| {
                    usize::try_from(n).is_ok_and(|n| earlier.record.is_action(n, o))
                })
        };
        let todo: Vec<&ActionOutcome> = earlier.outcomes.iter().filter(wanted).collect();
        let here = self
            .place_of(&earlier, !todo.is_empty(), release_id)
            .await?;
        let mut done = Progressing {
            calls: vec!["GetObject".to_string(), "ListObjectsV2".to_string()],
            ..Progressing::default()
        };
        for (n, o) in todo.iter().enumerate() {
            self.progress
                .step(n, todo.len(), &format!("{} {}", o.kind.as_str(), o.target));
            let steps = self
                .undo_one(&here, earlier_id, o, a.params.force, &mut done.notes)
                .await;
            done.note(earlier_id, o, steps);
        }
        self.progress.step(todo.len(), todo.len(), "");
        if let Some(e) = done.first_error.take() {
            return Err(e);
        }
        self.mark(a, release_id, &earlier, &mut done).await;
        self.note_findings(&earlier, earlier_id, release, &mut done)
            .await;
        Ok(done.step(earlier_id, &earlier.prefix, &here))
    }

    /// The earlier incident's record and final outcomes.
    async fn earlier(&self, earlier_id: &str) -> Result<Earlier, AwsError> {
        let store = self.store;
        let prefix = store.find_prefix(earlier_id).await?.ok_or_else(|| {
            AwsError::from(Own::NoSuchIncident {
                incident: earlier_id.to_string(),
                bucket: store.bucket().to_string(),
            })
        })?;
        let (outcomes, record) = join(
            store.completed(&prefix),
            store.get_json::<Record>(&layout::record_key(&prefix)),
        )
        .await;
        Ok(Earlier {
            outcomes: outcomes?,
            record: record?.unwrap_or_default(),
            prefix,
        })
    }

    /// Undone where it was done, as the record says; a record without
    /// `acted_in` acted at home (written before there were member
    /// accounts) or nowhere. Nothing to undo: no place to reach.
    async fn place_of(
        &self,
        earlier: &Earlier,
        reach: bool,
        release_id: &str,
    ) -> Result<Place, AwsError> {
        if !reach {
            return Ok(self.places.home().clone());
        }
        let at = earlier.record.acted_in.as_ref();
        let account = at.and_then(|a| a.account.as_deref());
        let region = at.and_then(|a| a.region.as_deref());
        self.places
            .get_for(Purpose::Release, account, region, release_id)
            .await
            .map_err(|why| why.into_error("Release"))
    }

    /// The undo of one earlier action, by its kind, from its prior state.
    async fn undo_one(
        &self,
        here: &Place,
        earlier_id: &str,
        o: &ActionOutcome,
        force: bool,
        notes: &mut Vec<String>,
    ) -> Vec<Result<Step, AwsError>> {
        let c = &here.clients;
        let read = |e: String| vec![Err(AwsError::from(Own::UnreadableRecord(e)))];
        match o.kind {
            ActionKind::BlockIp => match prior::of::<BlockPrior>(o) {
                Ok(p) => self.unblock_all(here, &p).await,
                Err(e) => read(e),
            },
            ActionKind::QueryOffendingIps => match prior::of::<QueryPrior>(o) {
                Ok(q) => self.unblock_found(here, &q).await,
                Err(e) => read(e),
            },
            ActionKind::DeactivateAccessKey
            | ActionKind::RevokeRoleSessions
            | ActionKind::QuarantineUser => {
                match undo_credentials(&c.iam, earlier_id, o, force, notes).await {
                    Some(r) => vec![r],
                    None => Vec::new(),
                }
            }
            ActionKind::IsolateInstance => match prior::of::<IsolatePrior>(o) {
                Ok(p) => vec![isolate::restore_instance(&c.ec2, &p).await],
                Err(e) => read(e),
            },
            ActionKind::IncreaseMonitoring => match prior::of::<RetentionPrior>(o) {
                Ok(r) => {
                    vec![logs::restore_retention(&c.logs, &o.target, r.retention_in_days).await]
                }
                Err(e) => read(e),
            },
            ActionKind::SnapshotVolumes => {
                notes.push(format!("snapshots of {} kept as evidence", o.target));
                Vec::new()
            }
            ActionKind::Release
            | ActionKind::RecordIncident
            | ActionKind::NotifyTeam
            | ActionKind::NotifyStakeholders
            | ActionKind::UpdateFinding => Vec::new(),
            ActionKind::ScaleServiceToZero | ActionKind::ServeMaintenanceResponse => {
                vec![reopen(here, o).await]
            }
            ActionKind::RotateSecret | ActionKind::CopyEvidence => {
                notes.push(kept(o));
                Vec::new()
            }
        }
    }

    /// Lifts the entries a block placed (not the ones it found there), and
    /// forgets their ledger markers.
    async fn unblock_all(&self, here: &Place, prior: &BlockPrior) -> Vec<Result<Step, AwsError>> {
        let mut out = Vec::new();
        for e in prior.entries.iter().filter(|e| !e.existed) {
            let n = &e.entry;
            let Ok(cidr) = n.cidr.parse::<IpNet>() else {
                continue;
            };
            let at = (n.network_acl_id.as_str(), n.egress, n.rule_number);
            let r = self.lift(&here.clients.ec2, at, cidr).await;
            if r.is_ok() {
                let forgotten = self
                    .store
                    .forget_block(&n.network_acl_id, n.egress, n.rule_number, cidr)
                    .await;
                if let Err(err) = forgotten {
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

    /// Lifts the blocks the failed-login query placed.
    async fn unblock_found(&self, here: &Place, q: &QueryPrior) -> Vec<Result<Step, AwsError>> {
        let mut out = Vec::new();
        for b in q.blocks.iter().filter(|b| b.status == Status::Done) {
            match prior::of::<BlockPrior>(b) {
                Ok(p) => out.extend(self.unblock_all(here, &p).await),
                Err(e) => out.push(Err(Own::UnreadableRecord(e).into())),
            }
        }
        out
    }

    /// The earlier incident's own prefix says it was released (so a listing
    /// shows it without reading every release), and the handling-time
    /// index says when.
    async fn mark(&self, a: &Action, release_id: &str, earlier: &Earlier, done: &mut Progressing) {
        if done.undone.is_empty() {
            return;
        }
        let mark = serde_json::json!({ "released_by": release_id, "at": crate::outcome::now(), "action": a.params.action, "undone": done.undone });
        let (marked, handled) = join(
            self.store
                .put_new(&layout::release_key(&earlier.prefix, release_id), &mark),
            self.store
                .put_handled(&a.target, &earlier.prefix, "released", Utc::now()),
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
        done.calls.push("PutObject".into());
    }
}

/// The undo of an IAM action: a key re-enabled (only when forced: a leaked
/// key is rotated, not re-enabled) with its sessions no longer denied, a
/// role's revocation or a user's quarantine lifted. `None` when nothing is
/// to be done (a note says why).
async fn undo_credentials(
    iam_client: &aws_sdk_iam::Client,
    earlier_id: &str,
    o: &ActionOutcome,
    force: bool,
    notes: &mut Vec<String>,
) -> Option<Result<Step, AwsError>> {
    let read = |e: String| Some(Err(AwsError::from(Own::UnreadableRecord(e))));
    match o.kind {
        ActionKind::DeactivateAccessKey if !force => {
            notes.push(format!(
                "key {} left Inactive and its older sessions denied: a leaked key is rotated, not re-enabled (\"force\": true re-enables it)",
                o.target
            ));
            None
        }
        ActionKind::DeactivateAccessKey => match prior::of::<KeyPrior>(o) {
            Ok(k) => Some(iam::reactivate_access_key(iam_client, &k, earlier_id).await),
            Err(e) => read(e),
        },
        ActionKind::RevokeRoleSessions => match prior::of::<RevokePrior>(o) {
            Ok(r) => {
                let previous = r.previous_document.as_deref();
                Some(iam::restore_role_policy(iam_client, &o.target, earlier_id, previous).await)
            }
            Err(e) => read(e),
        },
        _ => match prior::of::<QuarantinePrior>(o) {
            Ok(q) => {
                let on = (q.user_name.as_str(), iam::QUARANTINE_POLICY_NAME);
                let previous = q.previous_document.as_deref();
                Some(iam::restore_user_policy(iam_client, on, earlier_id, previous).await)
            }
            Err(e) => read(e),
        },
    }
}

impl Undo<'_> {
    /// A note on each Security Hub finding the released incident wrote back
    /// to: what was undone and kept, at whose request. From home, like the
    /// write-back. A note that cannot be written is said in the release's
    /// outcome; the undo stands (it is what was asked, and it is done).
    async fn note_findings(
        &self,
        earlier: &Earlier,
        earlier_id: &str,
        release: &Incident,
        done: &mut Progressing,
    ) {
        let findings = earlier.record.findings();
        if !self.writeback || findings.is_empty() {
            return;
        }
        let what: Vec<String> = done.undone.iter().map(|u| u.detail.clone()).collect();
        let what: Vec<String> = what.into_iter().chain(done.notes.iter().cloned()).collect();
        let ev = &release.evidence;
        let asked = (ev.requested_by.as_deref(), ev.reason.as_deref());
        let text = securityhub::release_note(earlier_id, &release.id, asked, &what);
        let client = &self.places.home().clients.securityhub;
        for f in &findings {
            match securityhub::update(client, f, Workflow::Keep, &text).await {
                Ok(()) => done.calls.push("BatchUpdateFindings".into()),
                Err(e) => {
                    warn!(incident_id = %earlier_id, code = e.code.as_deref().unwrap_or("-"), "Security Hub note not added");
                    done.notes.push(format!(
                        "Security Hub note on {} not added ({})",
                        f.id,
                        e.code.as_deref().unwrap_or("no error code")
                    ));
                }
            }
        }
    }
}

/// The lockdown's undoable half: a service's desired count and a
/// listener's default actions, back as they were recorded.
async fn reopen(here: &Place, o: &ActionOutcome) -> Result<Step, AwsError> {
    let c = &here.clients;
    let unreadable = |e: String| AwsError::from(Own::UnreadableRecord(e));
    match o.kind {
        ActionKind::ScaleServiceToZero => {
            let p = prior::of::<ScalePrior>(o).map_err(unreadable)?;
            ecs::restore_service(&c.ecs, &p).await
        }
        _ => {
            let p = prior::of::<ListenerPrior>(o).map_err(unreadable)?;
            elb::restore_listener(&c.elb, &p).await
        }
    }
}

/// What a release leaves of the lockdown, and why.
fn kept(o: &ActionOutcome) -> String {
    match o.kind {
        ActionKind::RotateSecret => format!(
            "secret {} stays rotated: a release does not undo a rotation",
            o.target
        ),
        _ => format!("evidence copied from s3://{} kept", o.target),
    }
}

impl Progressing {
    /// Keeps what one earlier action's undo did, or its first failure.
    fn note(&mut self, earlier_id: &str, o: &ActionOutcome, steps: Vec<Result<Step, AwsError>>) {
        for s in steps {
            match s {
                Ok(step) => {
                    self.calls.extend(step.calls);
                    self.undone.push(Undone {
                        index: o.index,
                        kind: o.kind,
                        target: o.target.clone(),
                        detail: step.detail,
                    });
                }
                Err(e) => {
                    warn!(incident_id = %earlier_id, action = o.kind.as_str(), code = e.code.as_deref().unwrap_or("-"), "release step failed");
                    self.first_error.get_or_insert(e);
                }
            }
        }
    }

    /// The release's own outcome.
    fn step(self, earlier_id: &str, prefix: &str, here: &Place) -> Step {
        let detail = if self.undone.is_empty() && self.notes.is_empty() {
            format!("incident {earlier_id} has nothing Firebreak changed that is still in place")
        } else {
            let mut parts: Vec<String> = self.undone.iter().map(|u| u.detail.clone()).collect();
            parts.extend(self.notes);
            parts.join("; ")
        };
        let prior = ReleasePrior {
            released_incident: earlier_id.to_string(),
            record: prefix.to_string(),
            acted_in: ActedIn {
                account: here.account.clone(),
                region: here.region.clone(),
                session: here.session.clone(),
            },
            undone: self.undone,
        };
        Step::new(
            prior.undone.is_empty(),
            detail,
            prior::to_json(&prior),
            self.calls,
        )
    }
}
