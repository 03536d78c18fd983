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
mod contain;
mod notices;
mod record;

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use chrono::{SecondsFormat, Utc};
use firebreak_core::{Action, ActionKind, Config, PlanStatus, PlannedIncident};
use futures_util::future::{join, join_all};
use ipnet::IpNet;
use serde_json::Value;
use tracing::{instrument, warn};

pub use crate::account::{caller_account, HomeAnswer};
use crate::actions::logs::Polling;
use crate::actions::nacl;
use crate::actions::notify;
use crate::bucket::claim::Claims;
use crate::bucket::claim::Held;
use crate::bucket::layout;
use crate::bucket::RecordStore;
use crate::clients::Clients;
use crate::error::AwsError;
use crate::outcome::{ActionOutcome, ErrorInfo, Status, Step};
use crate::place::{Place, Places, Unreachable};
pub use crate::progress::Progress;
pub use crate::report::{IncidentReport, Response};
use action::Ran;
pub use action::CLAIM_HELD;
use notices::{notice_fingerprint, planned_fingerprint, Early};
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
