//! Carrying out a plan: containment first and concurrently, then the record,
//! then the notices. Every action ends `done`, `already_done`, `skipped` or
//! `failed`; if any containment failed the caller gets an error naming it,
//! and a retry skips what an earlier run already completed (read back from
//! the record's per-action objects).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::{SecondsFormat, TimeDelta, Utc};
use firebreak_core::incident::short_digest;
use firebreak_core::policy::{check_block, plan_found_blocks, TrafficDirection};
use firebreak_core::{Action, ActionKind, Config, PlanStatus, PlannedIncident};
use futures_util::future::{join, join3, join_all, FutureExt};
use ipnet::IpNet;
use serde::Serialize;
use serde_json::{json, Value};
use tracing::{info, instrument, warn};

pub use crate::account::{caller_account, HomeAnswer};
use crate::actions::logs::Polling;
use crate::actions::{iam, isolate, logs, nacl, notify, snapshot};
use crate::bucket::budget::{self, Spent};
use crate::bucket::claim::{self, Claim, Claims, Held};
use crate::bucket::layout;
use crate::bucket::ledger::BlockMarker;
use crate::bucket::lock::{self, Lock, NaclGuard};
use crate::bucket::{RecordStore, Written};
use crate::clients::Clients;
use crate::error::AwsError;
use crate::gate::Gate;
use crate::outcome::{ActionOutcome, ErrorInfo, Status, Step};
use crate::place::{Place, Places, Unreachable};
pub use crate::progress::Progress;
pub use crate::report::{IncidentReport, Response};

/// The version tag of the incident record (see `crates/aws/schema/`).
pub const RECORD_SCHEMA: &str = "firebreak.incident.v1";

/// Runs plans. An executor is made in the account its credentials belong
/// to; for each incident it acts in the incident's own account and region
/// (see [`crate::place`]), while the records and notices stay at home.
#[derive(Debug, Clone)]
pub struct Executor {
    /// IAM, EC2 and Logs of the place acted in; S3, SNS and STS at home.
    clients: Clients,
    cfg: Arc<Config>,
    records: Option<RecordStore>,
    /// The account acted in.
    account: String,
    /// The region acted in (empty when the clients name none).
    region: String,
    /// The member role session acted through, if any.
    session: Option<String>,
    places: Arc<Places>,
    polling: Polling,
    progress: Progress,
    /// Set when `account` is the incident's, taken to be the credentials'
    /// own before STS answered (see [`respond_asking`]): every action's
    /// first change waits for this answer to agree.
    guessed: Option<HomeAnswer>,
}

/// The incident record body.
#[derive(Debug, Serialize)]
struct Record<'a> {
    schema: &'static str,
    recorded_at: String,
    /// The delivery that wrote it: after a lost answer, the retry's 412
    /// is told apart from an earlier delivery's record by this.
    recorded_by: String,
    /// Where the containment ran.
    #[serde(skip_serializing_if = "Value::is_null")]
    acted_in: Value,
    #[serde(flatten)]
    plan: &'a PlannedIncident,
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn outcome(index: usize, a: &Action, status: Status, detail: impl Into<String>) -> ActionOutcome {
    ActionOutcome {
        index,
        kind: a.kind,
        target: a.target.clone(),
        status,
        detail: detail.into(),
        prior_state: Value::Null,
        calls: Vec::new(),
        error: None,
        at: now(),
    }
}

fn from_result(index: usize, a: &Action, result: Result<Step, AwsError>) -> ActionOutcome {
    match result {
        Ok(step) => {
            let status = match (&step.refused, step.already) {
                (Some(_), _) => Status::Skipped,
                (None, true) => Status::AlreadyDone,
                (None, false) => Status::Done,
            };
            ActionOutcome {
                prior_state: step.prior_state,
                calls: step.calls,
                ..outcome(index, a, status, step.detail)
            }
        }
        Err(e) => ActionOutcome {
            error: Some(ErrorInfo::from(&e)),
            ..outcome(index, a, Status::Failed, e.to_string())
        },
    }
}

/// A failed action's outcome.
fn failed(index: usize, a: &Action, e: &AwsError) -> ActionOutcome {
    ActionOutcome {
        error: Some(ErrorInfo::from(e)),
        ..outcome(index, a, Status::Failed, e.to_string())
    }
}

/// An action not carried out because its place is out of reach: skipped
/// when Firebreak is not configured to act there, failed (and retried)
/// when it could not get there.
fn not_acted(index: usize, a: &Action, why: Unreachable) -> ActionOutcome {
    match why {
        Unreachable::NotHere(why) => outcome(index, a, Status::Skipped, why),
        Unreachable::Failed(e) => failed(index, a, &e),
    }
}

/// The error code of a delivery that found another one working on an action.
pub const CLAIM_HELD: &str = "ClaimHeld";

fn claim_held(a: &Action, until: &str) -> AwsError {
    AwsError {
        retryable: true,
        ..AwsError::local(
            "Claim",
            CLAIM_HELD,
            format!(
                "another delivery is carrying out {} {} (its claim runs until {until}); a retry reads its outcome",
                a.kind.as_str(),
                a.target
            ),
        )
    }
}

/// An outcome an earlier (or concurrent) delivery recorded, as this one
/// reports it.
fn earlier(mut o: ActionOutcome, verb: &str) -> ActionOutcome {
    if o.status == Status::Done {
        o.status = Status::AlreadyDone;
        o.detail = format!("{verb} by an earlier delivery: {}", o.detail);
    }
    o
}

/// Ends an attempt that did not finish its action: the attempt goes on
/// record (the latest refusal or hold replaces an older one) while the claim
/// is released carrying the same outcome, which is what concurrent
/// deliveries read. `true` when the attempt was recorded.
async fn let_go(
    store: &RecordStore,
    claims: &Claims<'_>,
    held: &Held,
    prefix: &str,
    o: &ActionOutcome,
) -> bool {
    let key = layout::outcome_key(prefix, o);
    let (written, ()) = join(store.put_cond(&key, o, None), claims.release(held, o)).await;
    if let Err(e) = &written {
        warn!(
            code = e.code.as_deref().unwrap_or("-"),
            "attempt not recorded"
        );
    }
    written.is_ok()
}

/// How the attempt of the delivery this one waited for ended, as this one
/// reports it.
fn concurrent_end(mut o: ActionOutcome) -> ActionOutcome {
    let how = match o.status {
        Status::Skipped => "refused",
        Status::Held => "held",
        _ => "failed",
    };
    o.detail = format!("{how} in a concurrent delivery: {}", o.detail);
    o
}

/// How the containment of an incident ended, as a short digest: the name
/// a notice is claimed under. `done` and `already_done` count alike, so a
/// replay that finds everything done matches the run that did it.
fn notice_fingerprint(plan: &PlannedIncident, outcomes: &[ActionOutcome]) -> String {
    fingerprint(
        plan,
        outcomes
            .iter()
            .filter(|o| o.kind.is_containment())
            .map(|o| (o.kind, o.target.as_str(), o.status)),
    )
}

/// The fingerprint of the containment ending as planned: every action
/// still to run done, the others as they already ended. `None` when that
/// cannot be known ahead (a query blocks what it finds).
fn planned_fingerprint(
    plan: &PlannedIncident,
    known: &[Option<Ran>],
    pending: &[(usize, &Action)],
) -> Option<String> {
    if pending
        .iter()
        .any(|(_, a)| a.kind == ActionKind::QueryOffendingIps)
    {
        return None;
    }
    let ended = known.iter().flatten().map(|r| &r.outcome);
    let ended = ended
        .filter(|o| o.kind.is_containment())
        .map(|o| (o.kind, o.target.as_str(), o.status));
    let planned = pending
        .iter()
        .map(|(_, a)| (a.kind, a.target.as_str(), Status::Done));
    Some(fingerprint(plan, ended.chain(planned)))
}

fn fingerprint<'a>(
    plan: &PlannedIncident,
    ended: impl Iterator<Item = (ActionKind, &'a str, Status)>,
) -> String {
    let mut parts: Vec<String> = ended
        .map(|(kind, target, status)| {
            let state = match status {
                Status::Done | Status::AlreadyDone => "ok",
                Status::Skipped => "skipped",
                Status::Held => "held",
                Status::Failed => "failed",
            };
            format!("{}|{target}|{state}", kind.as_str())
        })
        .collect();
    parts.sort();
    parts.push(format!("dry_run={}", plan.dry_run));
    short_digest(&parts.join("\n"))
}

/// Hands an action's outcomes to the notices as soon as they are known,
/// once (the caller sends the final ones if the action did not).
struct Early<'a> {
    tx: &'a tokio::sync::mpsc::UnboundedSender<Vec<Ran>>,
    sent: AtomicBool,
}

impl Early<'_> {
    fn send(&self, group: &[Ran]) {
        if !self.sent.swap(true, Ordering::SeqCst) {
            // The receiver lives as long as the run: a send cannot fail.
            let _ = self.tx.send(group.to_vec());
        }
    }
}

/// Where an incident's containment runs, as `run` found it.
#[derive(Debug)]
enum Where {
    /// In this executor's place (the incident's own).
    Here,
    /// Nowhere: nothing in the plan changes an account.
    Nowhere,
    /// Its place cannot be acted in, for this reason.
    Unreachable(Unreachable),
}

/// What an action's claim and budget decided.
#[derive(Debug, Clone)]
enum Decided {
    /// This delivery carries it out, under this claim.
    Go(Held),
    /// Not this delivery: what it reports instead.
    Stop(Vec<Ran>),
}

/// An outcome and whether it is already in the records bucket.
#[derive(Debug, Clone)]
struct Ran {
    outcome: ActionOutcome,
    stored: bool,
}

impl Ran {
    fn new(outcome: ActionOutcome) -> Ran {
        Ran {
            outcome,
            stored: false,
        }
    }

    fn stored(outcome: ActionOutcome) -> Ran {
        Ran {
            outcome,
            stored: true,
        }
    }
}

fn param<'a>(a: &'a Action, what: &'static str, v: Option<&'a str>) -> Result<&'a str, AwsError> {
    v.ok_or_else(|| {
        AwsError::local(
            "Execute",
            "InvalidPlan",
            format!("{} {} has no {what}", a.kind.as_str(), a.target),
        )
    })
}

impl Executor {
    /// An executor with clients built once per process. Asks STS which
    /// account the credentials belong to, so an incident from another
    /// account is never acted on here.
    pub async fn connect(clients: Clients, cfg: Arc<Config>) -> Result<Executor, AwsError> {
        let account = caller_account(clients.sts.clone()).await?;
        Ok(Executor::for_account(clients, cfg, account))
    }

    /// An executor for an account already known (a Lambda function knows
    /// its own from the ARN it was invoked as), without asking STS.
    pub fn for_account(clients: Clients, cfg: Arc<Config>, account: impl Into<String>) -> Executor {
        let records = cfg.records_bucket.as_ref().map(|b| {
            RecordStore::new(
                clients.s3.clone(),
                b.clone(),
                cfg.records_kms_key_id.clone(),
            )
        });
        let account = account.into();
        let places = Arc::new(Places::new(clients.clone(), account.clone(), &cfg));
        Executor {
            region: clients.region().to_string(),
            clients,
            cfg,
            records,
            account,
            session: None,
            places,
            polling: Polling::default(),
            progress: Progress::default(),
            guessed: None,
        }
    }

    /// An executor that takes `account` (an incident's) to be the one the
    /// credentials act in while `home` is still being asked of STS.
    fn guessing(clients: Clients, cfg: Arc<Config>, account: &str, home: HomeAnswer) -> Executor {
        Executor {
            guessed: Some(home),
            ..Executor::for_account(clients, cfg, account)
        }
    }

    /// `None` when this executor acts in the credentials' own account (it
    /// always does, unless its account was guessed: then STS must agree).
    async fn unconfirmed(&self) -> Option<Unreachable> {
        match self.guessed.as_ref()?.get().await {
            Ok(home) if home == self.account => None,
            Ok(home) => Some(Unreachable::NotHere(crate::place::not_here(
                &self.account,
                &home,
            ))),
            Err(e) => Some(Unreachable::Failed(e)),
        }
    }

    /// This executor acting in `place`: IAM, EC2 and Logs there, the
    /// records, notices and STS at home.
    fn at(&self, place: Place) -> Executor {
        let home = &self.places.home().clients;
        Executor {
            clients: Clients {
                iam: place.clients.iam,
                ec2: place.clients.ec2,
                logs: place.clients.logs,
                s3: home.s3.clone(),
                sns: home.sns.clone(),
                sts: home.sts.clone(),
                config: place.clients.config,
            },
            account: place.account,
            region: place.region,
            session: place.session,
            ..self.clone()
        }
    }

    /// The executor for an incident in `account` and `region`, opening a
    /// member role session named after `incident_id` if it must.
    pub async fn for_place(
        &self,
        account: Option<&str>,
        region: Option<&str>,
        incident_id: &str,
    ) -> Result<Executor, Unreachable> {
        Ok(self.at(self.places.get(account, region, incident_id).await?))
    }

    /// Reports each step of a long operation to `progress`.
    pub fn with_progress(mut self, progress: Progress) -> Executor {
        self.progress = progress;
        self
    }

    /// Changes how long the failed-login query is waited for.
    pub fn with_polling(mut self, polling: Polling) -> Executor {
        self.polling = polling;
        self
    }

    /// The account the executor acts in.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The records bucket, if one is configured.
    pub(crate) fn records(&self) -> Option<&RecordStore> {
        self.records.as_ref()
    }

    /// Every entry of these NACLs where this executor acts, as
    /// (NACL, egress, rule number, CIDR).
    pub(crate) async fn nacl_entries(
        &self,
        ids: &[String],
    ) -> Result<Vec<(String, bool, i32, IpNet)>, AwsError> {
        nacl::all_entries(&self.clients.ec2, ids).await
    }

    async fn contain(
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
    async fn query_and_block(
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
    async fn block(
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

    /// The right to delete one entry (an evictor may hold it briefly).
    async fn victim_lock<'s>(
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
    async fn release(&self, a: &Action, release_id: &str) -> Result<Step, AwsError> {
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
    async fn unblock_all(&self, store: &RecordStore, prior: &Value) -> Vec<Result<Step, AwsError>> {
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

    /// Runs one planned incident to the end and reports every outcome.
    ///
    /// Containment and the incident record go first and concurrently; each
    /// containment action is claimed (see [`crate::claim`]) so that of all
    /// the deliveries of one signal, one carries it out and the others read
    /// its outcome. Then the notices, claimed under a fingerprint of how the
    /// containment ended: a replay that changes nothing sends none, a retry
    /// that completes what failed before sends one more. (They are claimed
    /// ahead, beside the first calls, under the fingerprint of the planned
    /// ending; see `run_here`.)
    #[instrument(skip_all, fields(incident_id = %plan.incident.id))]
    pub async fn run(&self, plan: &PlannedIncident) -> IncidentReport {
        let i = &plan.incident;
        // A release acts where the incident it releases was; everything
        // else where its own incident is (once per process per place: the
        // role and clients are kept).
        let acts = plan.actions.iter().any(|a| {
            a.kind.is_containment()
                && a.kind != ActionKind::Release
                && a.status == PlanStatus::Planned
        });
        if !acts {
            return Box::pin(self.run_here(plan, Where::Nowhere)).await;
        }
        // An alarm's actions name configured resources (log groups, default
        // NACLs), which are in Firebreak's own region, not the alarm's.
        let region = match i.source {
            firebreak_core::Source::CloudwatchAlarm => None,
            _ => i.region.as_deref(),
        };
        match self.for_place(i.account.as_deref(), region, &i.id).await {
            Ok(here) => Box::pin(here.run_here(plan, Where::Here)).await,
            Err(why) => Box::pin(self.run_here(plan, Where::Unreachable(why))).await,
        }
    }

    /// [`Executor::run`] where this executor acts; `at` says whether it
    /// acts here, has nothing to act on, or cannot reach the incident's place.
    async fn run_here(&self, plan: &PlannedIncident, at: Where) -> IncidentReport {
        let (unreachable, acted) = match at {
            Where::Here => (None, true),
            Where::Nowhere => (None, false),
            Where::Unreachable(why) => (Some(why), false),
        };
        let i = &plan.incident;
        let prefix = layout::prefix(i, Utc::now());
        let record_uri = self
            .records
            .as_ref()
            .map(|r| format!("s3://{}/{}", r.bucket(), layout::record_key(&prefix)));
        let claims = self
            .records
            .as_ref()
            .map(|r| Claims::new(r, self.cfg.claim_ttl_seconds, self.cfg.claim_wait_seconds));

        let mut outcomes: Vec<Option<Ran>> = vec![None; plan.actions.len()];
        let mut pending = Vec::new();
        for (index, a) in plan.actions.iter().enumerate() {
            if !a.kind.is_containment() {
                continue;
            }
            let skip = |why: String| Some(Ran::new(outcome(index, a, Status::Skipped, why)));
            if a.status == PlanStatus::Skipped {
                outcomes[index] = skip(a.reason.clone());
            } else if let (Some(why), true) = (&unreachable, a.kind != ActionKind::Release) {
                // Recorded and notified only; a role that could not be
                // assumed is a failure the next delivery tries again.
                outcomes[index] = Some(Ran::new(not_acted(index, a, why.clone())));
            } else if plan.dry_run && a.kind != ActionKind::QueryOffendingIps {
                // The query only reads; a dry run shows what it would block.
                outcomes[index] = skip(format!("dry run: would {}", a.reason));
            } else {
                pending.push((index, a));
            }
        }
        // The notices' claims are taken ahead, beside the first calls, under
        // the fingerprint of the containment ending as planned: when it
        // does, the team is told as soon as the last action ends, one round
        // trip sooner. A claim that turns out to name another ending is
        // given back, and the notice claimed under the right one.
        let topic_of = |a: &Action| match a.kind {
            ActionKind::NotifyTeam => self.cfg.team_topic_arn.as_deref(),
            ActionKind::NotifyStakeholders => self.cfg.stakeholder_topic_arn.as_deref(),
            _ => None,
        };
        let guess = claims
            .as_ref()
            .and_then(|_| planned_fingerprint(plan, &outcomes, &pending));
        let ahead = async {
            let (Some(claims), Some(guess)) = (claims.as_ref(), guess.as_deref()) else {
                return Vec::new();
            };
            let prefix = prefix.as_str();
            let notices = plan.actions.iter().enumerate();
            let notices = notices.filter(|(_, a)| topic_of(a).is_some());
            join_all(notices.map(|(index, a)| async move {
                let name = format!("{}-{guess}", a.kind.as_str());
                match claims.try_new(prefix, &name).await {
                    Ok(held) => (index, held),
                    Err(e) => {
                        warn!(code = e.code.as_deref().unwrap_or("-"), notice = %name, "notice not claimed ahead: claimed after containment");
                        (index, None)
                    }
                }
            }))
            .await
        };
        let record = async {
            let mut out = Vec::new();
            for (index, a) in plan.actions.iter().enumerate() {
                if a.kind == ActionKind::RecordIncident {
                    let o = match &self.records {
                        None => outcome(
                            index,
                            a,
                            Status::Failed,
                            "FIREBREAK_RECORDS_BUCKET is not set",
                        ),
                        Some(store) => {
                            self.write_record(
                                store,
                                plan,
                                &prefix,
                                (index, a),
                                acted,
                                record_uri.as_deref(),
                            )
                            .await
                        }
                    };
                    out.push(o);
                }
            }
            out
        };
        // Each action's outcome reaches the notices as soon as it is known;
        // its final write (which a duplicate delivery may be waiting for)
        // goes on meanwhile, and the team is told without waiting for it.
        let (early_tx, mut early_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<Ran>>();
        let containment = join_all(pending.iter().map(|(index, a)| {
            let early = Early {
                tx: &early_tx,
                sent: AtomicBool::new(false),
            };
            let claims = claims.as_ref();
            let prefix = prefix.as_str();
            Box::pin(async move {
                let group = self.claimed(plan, claims, prefix, *index, a, &early).await;
                early.send(&group);
                group
            })
        }));
        let expected = pending.len();
        let mut extra = Vec::new();
        // Boxed, as are the actions below: together they would make the
        // run's future too large for a 2 MiB thread stack in a debug build.
        let after = Box::pin(async {
            let (recorded, ahead) = join(record, ahead).await;
            let mut ahead_held: Vec<Option<Held>> = vec![None; plan.actions.len()];
            for (index, held) in ahead {
                ahead_held[index] = held;
            }
            let mut done = Vec::with_capacity(expected);
            while done.len() < expected {
                match early_rx.recv().await {
                    Some(group) => done.push(group),
                    None => break,
                }
            }
            for group in done {
                let mut group = group.into_iter();
                if let Some(o) = group.next() {
                    let idx = o.outcome.index;
                    outcomes[idx] = Some(o);
                }
                extra.extend(group.map(|r| r.outcome));
            }
            for o in recorded {
                let idx = o.index;
                // The record itself is incident.json, not an action object.
                outcomes[idx] = Some(Ran::stored(o));
            }

            // Notices, with what happened so far.
            let mut so_far: Vec<ActionOutcome> = outcomes
                .iter()
                .flatten()
                .map(|r| r.outcome.clone())
                .collect();
            so_far.extend(extra.iter().cloned());
            let fingerprint = notice_fingerprint(plan, &so_far);
            // A delivery that found another one still holding a claim is retried
            // later; the holder tells the team, this one stays quiet.
            let waiting = so_far.iter().any(|o| {
                o.error
                    .as_ref()
                    .is_some_and(|e| e.code.as_deref() == Some(CLAIM_HELD))
            });
            // What is not in the bucket yet (the final outcomes that end the
            // claims, refusals, failures) is written while the team is told.
            let unwritten: Vec<ActionOutcome> = outcomes
                .iter_mut()
                .flatten()
                .filter(|r| !r.stored)
                .map(|r| {
                    r.stored = true;
                    r.outcome.clone()
                })
                .collect();
            // Team and stakeholders are told at once.
            let (so_far, claims, prefix) = (&so_far, claims.as_ref(), prefix.as_str());
            let (fingerprint, record_uri) = (&fingerprint, record_uri.as_deref());
            let as_guessed = guess.as_deref() == Some(fingerprint.as_str());
            let notices = plan.actions.iter().enumerate().filter_map(|(index, a)| {
                if !matches!(
                    a.kind,
                    ActionKind::NotifyTeam | ActionKind::NotifyStakeholders
                ) {
                    return None;
                }
                let topic = topic_of(a);
                let (mine, stale) = match ahead_held[index].take() {
                    Some(held) if as_guessed && !waiting => (Some(held), None),
                    other => (None, other),
                };
                Some(async move {
                    let give_back = async {
                        if let (Some(held), Some(claims)) = (&stale, claims) {
                            let why = "claimed ahead for a containment that ended otherwise";
                            claims
                                .release(held, &outcome(index, a, Status::Skipped, why))
                                .await;
                        }
                    };
                    let tell = async {
                        match topic {
                            None if a.kind == ActionKind::NotifyStakeholders => Ran::new(outcome(
                                index,
                                a,
                                Status::Skipped,
                                "FIREBREAK_STAKEHOLDER_TOPIC_ARN is not set",
                            )),
                            None => Ran::new(outcome(
                                index,
                                a,
                                Status::Failed,
                                "FIREBREAK_TEAM_TOPIC_ARN is not set",
                            )),
                            Some(_) if waiting => Ran::new(outcome(
                                index,
                                a,
                                Status::Skipped,
                                "another delivery holds a claim on this incident; it notifies",
                            )),
                            Some(arn) => {
                                let name = format!("{}-{fingerprint}", a.kind.as_str());
                                let send = async || {
                                    notify::publish(
                                        &self.clients.sns,
                                        arn,
                                        self.cfg.notice_format,
                                        plan,
                                        so_far,
                                        record_uri,
                                    )
                                    .await
                                    .map(|id| {
                                        Step::new(
                                            false,
                                            format!("published message {id}"),
                                            Value::Null,
                                            vec!["Publish".into()],
                                        )
                                    })
                                };
                                self.once(claims, prefix, &name, (index, a), mine, send, "sent")
                                    .await
                            }
                        }
                    };
                    let (r, ()) = join(tell, give_back).await;
                    if !r.stored {
                        self.keep(prefix, std::slice::from_ref(&r.outcome), &i.id)
                            .await;
                    }
                    (index, Ran::stored(r.outcome))
                })
            });
            let (told, ()) = join(join_all(notices), self.keep(prefix, &unwritten, &i.id)).await;
            for (index, r) in told {
                outcomes[index] = Some(r);
            }
        });
        let (_, ()) = join(containment, after).await;

        let mut actions = Vec::with_capacity(plan.actions.len());
        let mut unstored = Vec::new();
        for (index, r) in outcomes.into_iter().enumerate() {
            let r = r.unwrap_or_else(|| {
                Ran::new(outcome(
                    index,
                    &plan.actions[index],
                    Status::Skipped,
                    "not run",
                ))
            });
            if !r.stored {
                unstored.push(r.outcome.clone());
            }
            actions.push(r.outcome);
        }
        self.keep(&prefix, &unstored, &i.id).await;
        actions.extend(extra);
        IncidentReport {
            id: i.id.clone(),
            severity: i.severity,
            incident_type: i.incident_type.clone(),
            record: record_uri,
            actions,
        }
    }

    /// Writes outcomes not yet in the records bucket, at once: final ones
    /// under `actions/<name>.json`, skipped, held and failed attempts beside
    /// them, each once, for the audit trail. A failed write is logged; the
    /// report still carries the outcome.
    async fn keep(&self, prefix: &str, outcomes: &[ActionOutcome], incident_id: &str) {
        let Some(store) = &self.records else {
            return;
        };
        let keys: Vec<String> = outcomes
            .iter()
            .map(|o| layout::outcome_key(prefix, o))
            .collect();
        let writes = outcomes.iter().zip(&keys).map(|(o, k)| store.put_new(k, o));
        for (o, w) in outcomes.iter().zip(join_all(writes).await) {
            if let Err(e) = w {
                warn!(incident_id = %incident_id, action = o.kind.as_str(), code = e.code.as_deref().unwrap_or("-"), "outcome not recorded");
            }
        }
    }

    /// One containment action under its claim and the budget.
    async fn claimed(
        &self,
        plan: &PlannedIncident,
        claims: Option<&Claims<'_>>,
        prefix: &str,
        index: usize,
        a: &Action,
        early: &Early<'_>,
    ) -> Vec<Ran> {
        let (Some(claims), Some(store)) = (claims, &self.records) else {
            // No records bucket: nothing to claim in (a local `respond`
            // without one); the actions are idempotent by themselves.
            // Without a claim to decide beside, a guessed account is
            // settled before anything, reads included.
            if let Some(why) = self.unconfirmed().await {
                return vec![Ran::new(not_acted(index, a, why))];
            }
            return self
                .contain(plan, index, a, &Gate::open())
                .await
                .into_iter()
                .map(Ran::new)
                .collect();
        };
        let name = layout::action_name(a.kind, &a.target);
        // The claim and the budget are decided together (the budget counts
        // an action once, whoever spends for it), while the action reads
        // what it needs; only its first change waits for them.
        let decision = async {
            let (claim, budget, unconfirmed) = join3(
                claims.acquire(prefix, &name),
                self.budget(plan, a.kind, &a.target),
                self.unconfirmed(),
            )
            .await;
            let held = match claim {
                Err(e) => return Decided::Stop(vec![Ran::new(failed(index, a, &e))]),
                Ok(Claim::Finished(prev)) => {
                    return Decided::Stop(vec![Ran::stored(earlier(*prev, "done"))])
                }
                Ok(Claim::EndedMeanwhile(prev)) => {
                    return Decided::Stop(vec![Ran::stored(concurrent_end(*prev))])
                }
                Ok(Claim::Busy(until)) => {
                    return Decided::Stop(vec![Ran::new(failed(index, a, &claim_held(a, &until)))])
                }
                Ok(Claim::Mine(held)) => held,
            };
            if let Some(why) = unconfirmed {
                // The account was guessed and STS says otherwise: as if it
                // had been known, nothing is done here.
                let o = not_acted(index, a, why);
                let stored = let_go(store, claims, &held, prefix, &o).await;
                return Decided::Stop(vec![Ran { outcome: o, stored }]);
            }
            let o = match budget {
                Ok(None) => return Decided::Go(held),
                Ok(Some(why)) => {
                    warn!(incident_id = %plan.incident.id, action = a.kind.as_str(), target = %a.target, "held: blast-radius budget spent");
                    outcome(index, a, Status::Held, why)
                }
                Err(e) => failed(index, a, &e),
            };
            let stored = let_go(store, claims, &held, prefix, &o).await;
            Decided::Stop(vec![Ran { outcome: o, stored }])
        }
        .boxed()
        .shared();
        let gate = Gate::after(decision.clone().map(|d| match d {
            Decided::Go(_) => Ok(()),
            Decided::Stop(_) => Err(AwsError::local(
                "Claim",
                "NotCarriedOut",
                "another delivery has it, or the budget holds it",
            )),
        }));
        let (decided, contained) = join(decision, self.contain(plan, index, a, &gate)).await;
        let held = match decided {
            Decided::Stop(reported) => return reported,
            Decided::Go(held) => held,
        };
        let mut out: Vec<Ran> = contained.into_iter().map(Ran::new).collect();
        // The notices may go ahead with it: this delivery writes it next.
        let mut known = out.clone();
        if let Some(first) = known.first_mut() {
            first.stored = true;
        }
        early.send(&known);
        // A final outcome is what ends the claim: later deliveries read it.
        // It is written now, not with the rest after containment: a
        // duplicate delivery holding another of this incident's claims may
        // be waiting for it while this one waits for that one's.
        if let Some(first) = out.first_mut() {
            if matches!(first.outcome.status, Status::Done | Status::AlreadyDone) {
                let key = layout::done_key(prefix, &name);
                match store.put_new(&key, &first.outcome).await {
                    Ok(_) => first.stored = true,
                    Err(e) => {
                        warn!(code = e.code.as_deref().unwrap_or("-"), "outcome not recorded: a delivery after the claim's expiry does the (idempotent) action again");
                    }
                }
            } else {
                first.stored = let_go(store, claims, &held, prefix, &first.outcome).await;
            }
        }
        out
    }

    /// Something done at most once per name (a notice), under a claim:
    /// `ahead` when it was taken already.
    #[allow(clippy::too_many_arguments)]
    async fn once(
        &self,
        claims: Option<&Claims<'_>>,
        prefix: &str,
        name: &str,
        (index, a): (usize, &Action),
        ahead: Option<Held>,
        act: impl AsyncFnOnce() -> Result<Step, AwsError>,
        verb: &str,
    ) -> Ran {
        let (Some(claims), Some(store)) = (claims, &self.records) else {
            return Ran::new(from_result(index, a, act().await));
        };
        let acquired = match ahead {
            Some(held) => Ok(Claim::Mine(held)),
            None => claims.acquire(prefix, name).await,
        };
        let held = match acquired {
            Err(e) => return Ran::new(failed(index, a, &e)),
            Ok(Claim::Finished(prev)) => return Ran::stored(earlier(*prev, verb)),
            Ok(Claim::EndedMeanwhile(prev)) => return Ran::stored(concurrent_end(*prev)),
            Ok(Claim::Busy(until)) => return Ran::new(failed(index, a, &claim_held(a, &until))),
            Ok(Claim::Mine(held)) => held,
        };
        let o = from_result(index, a, act().await);
        if o.status == Status::Done {
            if let Err(e) = store.put_new(&layout::done_key(prefix, name), &o).await {
                warn!(
                    code = e.code.as_deref().unwrap_or("-"),
                    "notice outcome not recorded"
                );
            }
            return Ran::stored(o);
        }
        let (stored, ()) = join(
            store.put_new(&layout::attempt_key(prefix, name, &o.at), &o),
            claims.release(&held, &o),
        )
        .await;
        Ran {
            outcome: o,
            stored: stored.is_ok(),
        }
    }

    /// `Some(reason)` when the blast-radius budget holds this action back.
    async fn budget(
        &self,
        plan: &PlannedIncident,
        kind: ActionKind,
        target: &str,
    ) -> Result<Option<String>, AwsError> {
        // A responder's explicit command is a human's decision.
        if plan.incident.incident_type.starts_with("COMMAND:") {
            return Ok(None);
        }
        let (Some(limit), Some(store)) = (self.cfg.budget.limit(kind), &self.records) else {
            return Ok(None);
        };
        let window = self.cfg.budget.window_minutes;
        let action = format!("{}/{}", plan.incident.id, layout::action_name(kind, target));
        match budget::spend(store, &self.account, kind, limit, window, &action, Utc::now()).await? {
            Spent::Within(_) => Ok(None),
            Spent::Over(used) => Ok(Some(format!(
                "held for a human: the blast-radius budget allows {limit} {} per {window} minutes in account {} and {used} were taken in this window",
                kind.as_str(),
                self.account
            ))),
        }
    }

    async fn write_record(
        &self,
        store: &RecordStore,
        plan: &PlannedIncident,
        prefix: &str,
        (index, a): (usize, &Action),
        acted: bool,
        record_uri: Option<&str>,
    ) -> ActionOutcome {
        // Where it acted; nowhere when its place could not be reached.
        let mut acted_in = Value::Null;
        if acted {
            acted_in = json!({ "account": self.account, "region": self.region });
            if let Some(s) = &self.session {
                acted_in["session"] = json!(s);
            }
        }
        let body = Record {
            schema: RECORD_SCHEMA,
            recorded_at: now(),
            recorded_by: claim::owner_id(),
            acted_in,
            plan,
        };
        let key = layout::record_key(prefix);
        // The record, its index entry and this handling's entry in the
        // handling-time index at once: one round trip, not three. A replay
        // is a handling too: "what did Firebreak do today" lists it.
        let (written, index_written, handled) = join3(
            store.put_new(&key, &body),
            store.put_index(&plan.incident.id, prefix),
            store.put_handled(&plan.incident.id, prefix, "handled", Utc::now()),
        )
        .await;
        if let Err(e) = handled {
            warn!(
                code = e.code.as_deref().unwrap_or("-"),
                "handling not indexed: a listing by time may miss this run"
            );
        }
        let written = match written {
            // S3 wrote it but the answer was lost, and the SDK's retry met
            // our own object: it is this delivery's record.
            Ok(Written::AlreadyThere) => match store.get_json::<Value>(&key).await {
                Ok(Some(v)) if v["recorded_by"] == body.recorded_by.as_str() => {
                    Ok(Written::Created)
                }
                _ => Ok(Written::AlreadyThere),
            },
            other => other,
        };
        match written.and_then(|w| index_written.map(|_| w)) {
            Ok(Written::Created) => outcome(index, a, Status::Done, record_uri.unwrap_or_default()),
            Ok(Written::AlreadyThere) => outcome(
                index,
                a,
                Status::AlreadyDone,
                "record already written by an earlier delivery",
            ),
            Err(e) => ActionOutcome {
                error: Some(ErrorInfo::from(&e)),
                ..outcome(index, a, Status::Failed, e.to_string())
            },
        }
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

/// Carries out every incident of one event, concurrently.
pub async fn respond(executor: &Executor, plans: &firebreak_core::PlanSet) -> Response {
    let incidents = join_all(plans.incidents.iter().map(|p| executor.run(p))).await;
    Response {
        incidents,
        ignored: plans.ignored.clone(),
    }
}

/// [`respond`] while STS is still being asked which account the
/// credentials act in (`home`): a CLI run, or a function's first event.
///
/// An incident that names its account starts at once, as if that were the
/// credentials' account: its reads, claims, budget and record go out beside
/// the STS call instead of one round trip after it, and each action's first
/// change waits for STS to agree (see `Executor::unconfirmed`). Where STS
/// names another account, the actions end as they would have with the
/// account known: skipped, "not here" (a failed STS call fails them, to be
/// retried). Incidents that cannot start so wait for the answer, as with
/// [`respond`]: those that name no account, any release (it resolves the
/// place it undoes), and all of them when member roles are configured
/// (another account is then reached through a role).
///
/// `Err` only when an incident that waited for STS could not have its
/// answer.
pub async fn respond_asking(
    clients: &Clients,
    cfg: &Arc<Config>,
    home: &HomeAnswer,
    plans: &firebreak_core::PlanSet,
) -> Result<Response, AwsError> {
    // One executor per account guessed (its places and clients shared by
    // that account's incidents), one for those that wait.
    let mut guessed: BTreeMap<&str, Executor> = BTreeMap::new();
    for account in plans.incidents.iter().filter_map(|p| guessable(p, cfg)) {
        guessed.entry(account).or_insert_with(|| {
            Executor::guessing(clients.clone(), cfg.clone(), account, home.clone())
        });
    }
    let known = tokio::sync::OnceCell::new();
    let runs = plans.incidents.iter().map(|p| {
        let (known, guessed) = (&known, &guessed);
        async move {
            if let Some(exec) = guessable(p, cfg).and_then(|a| guessed.get(a)) {
                return Ok(exec.run(p).await);
            }
            let exec = known
                .get_or_try_init(|| async {
                    let account = home.get().await?;
                    Ok::<_, AwsError>(Executor::for_account(clients.clone(), cfg.clone(), account))
                })
                .await?;
            Ok(exec.run(p).await)
        }
    });
    let incidents = join_all(runs).await.into_iter().collect::<Result<_, _>>()?;
    Ok(Response {
        incidents,
        ignored: plans.ignored.clone(),
    })
}

/// The account an incident may start in before STS answers (see
/// [`respond_asking`]).
fn guessable<'p>(plan: &'p PlannedIncident, cfg: &Config) -> Option<&'p str> {
    let releases = plan.actions.iter().any(|a| a.kind == ActionKind::Release);
    if releases || cfg.member_role_name.is_some() {
        return None;
    }
    plan.incident.account.as_deref().filter(|a| !a.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

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
                    at: now(),
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
