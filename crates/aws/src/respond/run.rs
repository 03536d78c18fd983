//! One run of one incident where the executor acts, as a list of named
//! phases: triage the plan; start the record, the notices' claims and every
//! containment action at once; as each action ends, hand it to the notices;
//! tell the team once the last one has; write back to Security Hub; keep
//! every outcome; report.

use std::sync::atomic::AtomicBool;

use chrono::Utc;
use firebreak_core::{Action, ActionKind, PlanStatus, PlannedIncident};
use futures_util::future::{join, join_all};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tracing::warn;

use super::action::earlier;
use super::notices::planned_fingerprint;
use super::state::{Early, Ran, Run};
use super::{not_acted, outcome, Executor, Where};
use crate::actions::instance::InstanceReads;
use crate::bucket::claim::{ClaimBody, Claims, Held};
use crate::bucket::layout;
use crate::outcome::{ActionOutcome, Status};
use crate::place::Unreachable;
use crate::report::IncidentReport;

/// What the plan decided before any call: outcomes known already (refused
/// by the plan, out of reach, a dry run) and the actions to carry out.
#[derive(Debug)]
pub(crate) struct Triage<'a> {
    /// One slot per planned action; containment known already is filled.
    pub(crate) outcomes: Vec<Option<Ran>>,
    /// Containment to carry out: (index in the plan, action).
    pub(crate) pending: Vec<(usize, &'a Action)>,
}

/// Sorts a plan's containment into what is known without a call and what
/// must be carried out. Pure: the run's first decision, tested by table.
pub(crate) fn triage<'a>(
    plan: &'a PlannedIncident,
    unreachable: Option<&Unreachable>,
) -> Triage<'a> {
    let mut outcomes: Vec<Option<Ran>> = vec![None; plan.actions.len()];
    let mut pending = Vec::new();
    for (index, a) in plan.actions.iter().enumerate() {
        if !a.kind.is_containment() {
            continue;
        }
        let skip = |why: String| Some(Ran::new(outcome(index, a, Status::Skipped, why)));
        if a.status == PlanStatus::Skipped {
            outcomes[index] = skip(a.reason.clone());
        } else if let (Some(why), true) = (unreachable, a.kind != ActionKind::Release) {
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
    Triage { outcomes, pending }
}

impl Executor {
    /// [`Executor::run`] where this executor acts; `at` says whether it
    /// acts here, has nothing to act on, or cannot reach the incident's place.
    pub(super) async fn run_here(&self, plan: &PlannedIncident, at: Where) -> IncidentReport {
        let (unreachable, acted) = match at {
            Where::Here => (None, true),
            Where::Nowhere => (None, false),
            Where::Unreachable(why) => (Some(why), false),
        };
        let run = self.start(plan, acted);
        let Triage {
            mut outcomes,
            pending,
        } = triage(plan, unreachable.as_ref());
        // The notices' claims are taken ahead, beside the first calls, under
        // the fingerprint of the containment ending as planned: when it
        // does, the team is told as soon as the last action ends, one round
        // trip sooner. A claim that turns out to name another ending is
        // given back, and the notice claimed under the right one.
        let guess = run
            .claims
            .as_ref()
            .and_then(|_| planned_fingerprint(plan, &outcomes, &pending));
        // Each action's outcome reaches the notices as soon as it is known;
        // its final write (which a duplicate delivery may be waiting for)
        // goes on meanwhile, and the team is told without waiting for it.
        let (early_tx, early_rx) = unbounded_channel::<Vec<Ran>>();
        let containment = self.contain_all(&run, &pending, &early_tx);
        // Boxed, as are the actions: together they would make the run's
        // future too large for a 2 MiB thread stack in a debug build.
        let after = Box::pin(async {
            let first = join(
                self.record(&run),
                self.claim_notices_ahead(&run, guess.as_deref()),
            );
            let (recorded, ahead) = first.await;
            let replay = recorded.iter().any(|o| o.status == Status::AlreadyDone);
            let earlier = self.earlier_than_plan(&run, &outcomes, replay).await;
            let groups = receive(early_rx, pending.len()).await;
            let extra = settle(&mut outcomes, groups, recorded, earlier);
            self.tell_and_keep(&run, &mut outcomes, &extra, ahead, guess.as_deref())
                .await;
            // After the team is told: the finding in Security Hub (boxed
            // like the rest: the SDK's futures are large in a debug build).
            Box::pin(self.write_back(&run, &mut outcomes, &extra)).await;
            extra
        });
        let ((), extra) = join(containment, after).await;
        self.finish(&run, outcomes, extra).await
    }

    /// Where this run keeps what it does.
    fn start<'a>(&'a self, plan: &'a PlannedIncident, acted: bool) -> Run<'a> {
        let prefix = layout::prefix(&plan.incident, Utc::now());
        let record_uri = self
            .records
            .as_ref()
            .map(|r| format!("s3://{}/{}", r.bucket(), layout::record_key(&prefix)));
        let claims = self
            .records
            .as_ref()
            .map(|r| Claims::new(r, self.cfg.claim_ttl_seconds, self.cfg.claim_wait_seconds));
        Run {
            plan,
            prefix,
            record_uri,
            claims,
            acted,
            instances: InstanceReads::default(),
        }
    }

    /// Every pending action at once, each under its claim; each hands its
    /// outcomes to `early` as soon as they are known.
    async fn contain_all(
        &self,
        run: &Run<'_>,
        pending: &[(usize, &Action)],
        early: &UnboundedSender<Vec<Ran>>,
    ) {
        join_all(pending.iter().map(|(index, a)| {
            let early = Early {
                tx: early,
                sent: AtomicBool::new(false),
            };
            Box::pin(async move {
                let group = self.claimed(run, *index, a, &early).await;
                early.send(&group);
            })
        }))
        .await;
    }

    /// The record (and its indexes), once per plan that asks for it.
    async fn record(&self, run: &Run<'_>) -> Vec<ActionOutcome> {
        let mut out = Vec::new();
        for (index, a) in run.plan.actions.iter().enumerate() {
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
                            run.plan,
                            &run.prefix,
                            (index, a),
                            run.acted,
                            run.record_uri.as_deref(),
                        )
                        .await
                    }
                };
                out.push(o);
            }
        }
        out
    }

    /// Each notice's claim under the fingerprint `guess` of the containment
    /// ending as planned, taken without waiting or reading.
    async fn claim_notices_ahead(
        &self,
        run: &Run<'_>,
        guess: Option<&str>,
    ) -> Vec<(usize, Option<Held>)> {
        let (Some(claims), Some(guess)) = (run.claims.as_ref(), guess) else {
            return Vec::new();
        };
        let prefix = run.prefix.as_str();
        let notices = run.plan.actions.iter().enumerate();
        let notices = notices.filter(|(_, a)| self.topic_of(a).is_some());
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
    }

    /// On a replay, how an earlier delivery left the actions this plan
    /// refuses (a dry run, a "record only" request, a setting changed
    /// since): the account is as that delivery left it — done, or held or
    /// failed as its claim says — and the team is told so, not that nothing
    /// was done. A first delivery (its record new) has nothing earlier.
    async fn earlier_than_plan(
        &self,
        run: &Run<'_>,
        outcomes: &[Option<Ran>],
        replay: bool,
    ) -> Vec<ActionOutcome> {
        let Some(store) = self.records.as_ref().filter(|_| replay) else {
            return Vec::new();
        };
        let refused = outcomes
            .iter()
            .flatten()
            .filter(|r| r.outcome.status == Status::Skipped);
        let reads = refused.map(|r| {
            let name = layout::action_name(r.outcome.kind, &r.outcome.target);
            let done = layout::done_key(&run.prefix, &name);
            let claim = layout::claim_key(&run.prefix, &name);
            async move {
                let (done, claim) = join(
                    store.get_json::<ActionOutcome>(&done),
                    store.get_json::<ClaimBody>(&claim),
                )
                .await;
                match (done, claim) {
                    (Ok(Some(o)), _) => Some(earlier(o, "done")),
                    (_, Ok(Some(ClaimBody { ended: Some(o), .. }))) => Some(left(*o)),
                    _ => None,
                }
            }
        });
        join_all(reads).await.into_iter().flatten().collect()
    }

    /// The final outcomes of every action (the ones not yet written are
    /// written now) and the report.
    async fn finish(
        &self,
        run: &Run<'_>,
        outcomes: Vec<Option<Ran>>,
        extra: Vec<ActionOutcome>,
    ) -> IncidentReport {
        let plan = run.plan;
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
        self.keep(&run.prefix, &unstored, &plan.incident.id).await;
        actions.extend(extra);
        IncidentReport {
            id: plan.incident.id.clone(),
            severity: plan.incident.severity,
            incident_type: plan.incident.incident_type.clone(),
            record: run.record_uri.clone(),
            actions,
        }
    }
}

/// How an earlier delivery's attempt ended (held, failed, refused), as a
/// later one that did not try reports it.
fn left(mut o: ActionOutcome) -> ActionOutcome {
    o.detail = format!("as an earlier delivery left it: {}", o.detail);
    o
}

/// Every action's outcomes, as the actions hand them over.
async fn receive(mut early: UnboundedReceiver<Vec<Ran>>, expected: usize) -> Vec<Vec<Ran>> {
    let mut done = Vec::with_capacity(expected);
    while done.len() < expected {
        match early.recv().await {
            Some(group) => done.push(group),
            None => break,
        }
    }
    done
}

/// Puts what the actions, the record and an earlier delivery said into
/// their plan slots; returns the outcomes beyond the plan (the blocks the
/// failed-login query found).
fn settle(
    outcomes: &mut [Option<Ran>],
    groups: Vec<Vec<Ran>>,
    recorded: Vec<ActionOutcome>,
    earlier_done: Vec<ActionOutcome>,
) -> Vec<ActionOutcome> {
    let mut extra = Vec::new();
    for group in groups {
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
    for prev in earlier_done {
        let slot = outcomes.iter_mut().flatten().find(|r| {
            r.outcome.kind == prev.kind
                && r.outcome.target == prev.target
                && r.outcome.status == Status::Skipped
        });
        if let Some(slot) = slot {
            let index = slot.outcome.index;
            *slot = Ran::stored(ActionOutcome { index, ..prev });
        }
    }
    extra
}

#[cfg(test)]
mod tests;
