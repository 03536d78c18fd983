//! The use case at Firebreak's heart: one planned incident, carried out
//! exactly once however often its signal is delivered. Containment first
//! and concurrently, then the record, then the notices, then the write-back
//! to Security Hub. Every action ends
//! `done`, `already_done`, `skipped`, `held` or `failed`; if any
//! containment failed the caller gets an error naming it, and a retry skips
//! what an earlier run already completed (read back from the record's
//! per-action objects).
//!
//! - here: [`Executor`] (where it acts, with what), [`Executor::run`] and
//!   the two entry points [`respond`] and [`respond_asking`];
//! - `contain`: each action kind to its function in [`crate::actions`], and
//!   the blocks the failed-login query finds; `lockdown`: the emergency
//!   lockdown's kinds, checked where they act;
//! - `action`: one action under its claim, the budget and the gate;
//! - `notices`: how containment ended, as the name a notice is claimed under;
//! - `findings`: the Security Hub write-back, claimed under that name too;
//! - `record`: the incident record and the outcomes kept beside it.

mod action;
mod blocks;
mod contain;
mod entry;
mod findings;
mod lockdown;
mod notices;
mod record;
mod run;
mod state;

use std::sync::Arc;

use chrono::Utc;
use firebreak_core::event::CommandOp;
use firebreak_core::{Action, ActionKind, Config, PlanStatus, PlannedIncident};
use serde_json::Value;
use tracing::instrument;

pub use crate::account::{caller_account, HomeAnswer};
use crate::actions::logs::Polling;
use crate::bucket::RecordStore;
use crate::clients::Clients;
use crate::error::{AwsError, Own};
use crate::inventory::{Filter, HeldBlock, IncidentDetail, IncidentSummary, Inventory};
use crate::outcome::{now, ActionOutcome, ErrorInfo, Status, Step};
use crate::place::{Place, Places, Purpose, Unreachable};
pub use crate::progress::Progress;
pub use crate::report::{IncidentReport, Response};
use crate::undo::Undo;
pub use action::CLAIM_HELD;
pub use entry::{respond, respond_asking, respond_showing};
pub use record::RECORD_SCHEMA;

/// Runs plans. An executor is made in the account its credentials belong
/// to; for each incident it acts in the incident's own account and region
/// (see [`crate::place`]), while the records and notices stay at home.
#[derive(Debug, Clone)]
pub struct Executor {
    /// IAM, EC2 and Logs of the place acted in; S3, SNS, STS and Security
    /// Hub at home.
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

    /// This executor acting in `place`: IAM, EC2, Logs, ECS, Elastic Load
    /// Balancing and Secrets Manager there, the records, notices, STS and
    /// the Security Hub write-back at home (a lockdown's evidence copy
    /// reaches the place's S3 through [`Places`]).
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
                securityhub: home.securityhub.clone(),
                ecs: place.clients.ecs,
                elb: place.clients.elb,
                secrets: place.clients.secrets,
                config: place.clients.config,
            },
            account: place.account,
            region: place.region,
            session: place.session,
            ..self.clone()
        }
    }

    /// The executor for an incident in `account` and `region`, opening a
    /// member role session for `purpose` named after `incident_id` if it
    /// must.
    pub async fn for_place(
        &self,
        purpose: Purpose,
        account: Option<&str>,
        region: Option<&str>,
        incident_id: &str,
    ) -> Result<Executor, Unreachable> {
        let place = self
            .places
            .get_for(purpose, account, region, incident_id)
            .await?;
        Ok(self.at(place))
    }

    /// Undo with this executor's records and places; `operation` and what
    /// it means name the failure when no records bucket is configured.
    pub(crate) fn undo(
        &self,
        operation: &'static str,
        consequence: &'static str,
    ) -> Result<Undo<'_>, AwsError> {
        let store = self.records.as_ref().ok_or_else(|| {
            AwsError::from(Own::NoRecords {
                operation,
                consequence,
            })
        })?;
        Ok(Undo::new(store, &self.places, &self.cfg, &self.progress))
    }

    /// Lifts every block whose time is up, from the block ledger, and files
    /// a record of each lift under `expired/dt=YYYY-MM-DD/`. Blocks without
    /// an expiry, and blocks still running, are left alone (see
    /// [`crate::undo`]).
    pub async fn expire_blocks(
        &self,
        now: chrono::DateTime<Utc>,
    ) -> Result<Vec<crate::undo::Expiry>, AwsError> {
        self.undo("ExpireBlocks", "there is no block ledger")?
            .expire(now)
            .await
    }

    /// What Firebreak recorded and holds, read back (see [`Inventory`]).
    pub fn inventory(&self) -> Result<Inventory<'_>, AwsError> {
        Inventory::new(self.records.as_ref(), &self.places)
    }

    /// The incidents Firebreak handled in the filter's window, newest
    /// handling first (see [`Inventory::incidents`]).
    pub async fn incidents(
        &self,
        filter: &Filter,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Vec<IncidentSummary>, AwsError> {
        self.inventory()?.incidents(filter, progress).await
    }

    /// One incident in full, if it is recorded here.
    pub async fn incident(&self, id: &str) -> Result<Option<IncidentDetail>, AwsError> {
        self.inventory()?.incident(id).await
    }

    /// True when the incident is recorded here.
    pub async fn incident_exists(&self, id: &str) -> Result<bool, AwsError> {
        self.inventory()?.incident_exists(id).await
    }

    /// Every deny entry in the ledger, each checked against its NACL.
    pub async fn blocks(
        &self,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Vec<HeldBlock>, AwsError> {
        self.inventory()?.blocks(progress).await
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
        // A lockdown acts through the member role only the manual
        // function may assume; everything else through the containment one.
        let purpose = match i.command {
            Some(CommandOp::Lockdown { .. }) => Purpose::Lockdown,
            _ => Purpose::Contain,
        };
        match self
            .for_place(purpose, i.account.as_deref(), region, &i.id)
            .await
        {
            Ok(here) => Box::pin(here.run_here(plan, Where::Here)).await,
            Err(why) => Box::pin(self.run_here(plan, Where::Unreachable(why))).await,
        }
    }
}
