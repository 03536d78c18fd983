//! The use case at Firebreak's heart: one planned incident, carried out
//! exactly once however often its signal is delivered. Containment first
//! and concurrently, then the record, then the notices. Every action ends
//! `done`, `already_done`, `skipped`, `held` or `failed`; if any
//! containment failed the caller gets an error naming it, and a retry skips
//! what an earlier run already completed (read back from the record's
//! per-action objects).
//!
//! - here: [`Executor`] (where it acts, with what), [`Executor::run`] and
//!   the two entry points [`respond`] and [`respond_asking`];
//! - `contain`: each action kind to its function in [`crate::actions`], and
//!   the blocks the failed-login query finds;
//! - `action`: one action under its claim, the budget and the gate;
//! - `notices`: how containment ended, as the name a notice is claimed under;
//! - `record`: the incident record and the outcomes kept beside it.

mod action;
mod blocks;
mod contain;
mod notices;
mod record;
mod run;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{SecondsFormat, Utc};
use firebreak_core::{Action, ActionKind, Config, PlanStatus, PlannedIncident};
use futures_util::future::join_all;
use ipnet::IpNet;
use serde_json::Value;
use tracing::instrument;

pub use crate::account::{caller_account, HomeAnswer};
use crate::actions::logs::Polling;
use crate::actions::nacl;
use crate::bucket::RecordStore;
use crate::clients::Clients;
use crate::error::{AwsError, Own};
use crate::outcome::{ActionOutcome, ErrorInfo, Status, Step};
use crate::place::{Place, Places, Unreachable};
pub use crate::progress::Progress;
pub use crate::report::{IncidentReport, Response};
use crate::undo::Undo;
pub use action::CLAIM_HELD;
pub use record::RECORD_SCHEMA;

/// Runs plans. An executor is made in the account its credentials belong
/// to; for each incident it acts in the incident's own account and region
/// (see [`crate::place`]), while the records and notices stay at home.
#[derive(Debug, Clone)]
pub struct Executor {
    /// IAM, EC2 and Logs of the place acted in; S3, SNS and STS at home.
    pub(crate) clients: Clients,
    pub(crate) cfg: Arc<Config>,
    pub(crate) records: Option<RecordStore>,
    /// The account acted in.
    pub(crate) account: String,
    /// The region acted in (empty when the clients name none).
    pub(crate) region: String,
    /// The member role session acted through, if any.
    pub(crate) session: Option<String>,
    pub(crate) places: Arc<Places>,
    pub(crate) polling: Polling,
    pub(crate) progress: Progress,
    /// Set when `account` is the incident's, taken to be the credentials'
    /// own before STS answered (see [`respond_asking`]): every action's
    /// first change waits for this answer to agree.
    pub(crate) guessed: Option<HomeAnswer>,
}

pub(crate) fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(crate) fn outcome(
    index: usize,
    a: &Action,
    status: Status,
    detail: impl Into<String>,
) -> ActionOutcome {
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

pub(crate) fn from_result(
    index: usize,
    a: &Action,
    result: Result<Step, AwsError>,
) -> ActionOutcome {
    match result {
        Ok(step) => {
            let status = step.change.status();
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
pub(crate) fn failed(index: usize, a: &Action, e: &AwsError) -> ActionOutcome {
    ActionOutcome {
        error: Some(ErrorInfo::from(e)),
        ..outcome(index, a, Status::Failed, e.to_string())
    }
}

/// An action not carried out because its place is out of reach: skipped
/// when Firebreak is not configured to act there, failed (and retried)
/// when it could not get there.
pub(crate) fn not_acted(index: usize, a: &Action, why: Unreachable) -> ActionOutcome {
    match why {
        Unreachable::NotHere(why) => outcome(index, a, Status::Skipped, why),
        Unreachable::Failed(e) => failed(index, a, &e),
    }
}

/// Where an incident's containment runs, as `run` found it.
#[derive(Debug)]
pub(crate) enum Where {
    /// In this executor's place (the incident's own).
    Here,
    /// Nowhere: nothing in the plan changes an account.
    Nowhere,
    /// Its place cannot be acted in, for this reason.
    Unreachable(Unreachable),
}

pub(crate) fn param<'a>(
    a: &'a Action,
    what: &'static str,
    v: Option<&'a str>,
) -> Result<&'a str, AwsError> {
    v.ok_or_else(|| {
        AwsError::from(Own::InvalidPlan {
            operation: "Execute",
            what: format!("{} {} has no {what}", a.kind.as_str(), a.target),
        })
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

    /// Lifts every block whose time is up, from the block ledger, and files
    /// a record of each lift under `expired/dt=YYYY-MM-DD/`. Blocks without
    /// an expiry, and blocks still running, are left alone (see
    /// [`crate::undo`]).
    pub async fn expire_blocks(
        &self,
        now: chrono::DateTime<Utc>,
    ) -> Result<Vec<crate::undo::Expiry>, AwsError> {
        Undo::of(self, "ExpireBlocks", "there is no block ledger")?
            .expire(now)
            .await
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

    /// Runs one planned incident to the end and reports every outcome.
    ///
    /// Containment and the incident record go first and concurrently; each
    /// containment action is claimed (see [`crate::bucket::claim`]) so that of all
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
                return Ok::<_, AwsError>(exec.run(p).await);
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
