//! One containment action (or notice) under its claim, the blast-radius
//! budget and the gate: of all the deliveries of one signal, one carries it
//! out and the others read its outcome.

use chrono::Utc;
use firebreak_core::{Action, ActionKind, PlannedIncident};
use futures_util::future::{join, join3, join_all, FutureExt};
use tracing::warn;

use super::state::{Early, Ran, Run};
use super::{failed, from_result, not_acted, outcome, Executor};
use crate::bucket::budget::{self, Spent};
use crate::bucket::claim::{Claim, Claims, Held};
use crate::bucket::layout;
use crate::bucket::RecordStore;
use crate::error::{AwsError, Own};
use crate::gate::Gate;
use crate::outcome::{ActionOutcome, Status, Step};
use crate::place::Unreachable;

/// The error code of a delivery that found another one working on an action.
pub const CLAIM_HELD: &str = "ClaimHeld";

pub(super) fn claim_held(a: &Action, until: &str) -> AwsError {
    Own::ClaimHeld {
        action: format!("{} {}", a.kind.as_str(), a.target),
        until: until.to_string(),
    }
    .into()
}

/// An outcome an earlier (or concurrent) delivery recorded, as this one
/// reports it.
pub(super) fn earlier(mut o: ActionOutcome, verb: &str) -> ActionOutcome {
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
pub(super) async fn let_go(
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
pub(super) fn concurrent_end(mut o: ActionOutcome) -> ActionOutcome {
    let how = match o.status {
        Status::Skipped => "refused",
        Status::Held => "held",
        _ => "failed",
    };
    o.detail = format!("{how} in a concurrent delivery: {}", o.detail);
    o
}

/// One containment action of one run, under its claim.
struct One<'a> {
    plan: &'a PlannedIncident,
    claims: &'a Claims<'a>,
    store: &'a RecordStore,
    prefix: &'a str,
    /// Its name in the records bucket (what it does to what).
    name: String,
    index: usize,
    action: &'a Action,
}

/// Something done at most once per name (a notice, a write-back).
pub(super) struct Once<'a> {
    /// This delivery's claims, with a records bucket.
    pub(super) claims: Option<&'a Claims<'a>>,
    /// The incident's record prefix.
    pub(super) prefix: &'a str,
    /// What it is claimed under.
    pub(super) name: &'a str,
    /// Its index in the plan.
    pub(super) index: usize,
    /// Its planned action.
    pub(super) action: &'a Action,
    /// Its claim, when it was taken ahead.
    pub(super) ahead: Option<Held>,
    /// How an earlier delivery's success is reported ("sent").
    pub(super) verb: &'a str,
}

/// What a claim, the budget and STS's answer make of one action, before
/// anything is written: pure, and tested by table.
#[derive(Debug)]
pub(super) enum Verdict {
    /// This delivery carries it out, under this claim.
    Go(Held),
    /// This delivery holds the claim but may not act: it lets the claim go
    /// with this outcome (held by the budget, not here, or a failure).
    LetGo(Held, ActionOutcome),
    /// Not this delivery's: what it reports instead.
    Report(Ran),
}

/// Settles one action's claim (see [`Verdict`]).
pub(super) fn settle_claim(
    index: usize,
    a: &Action,
    claim: Result<Claim, AwsError>,
    budget: Result<Option<String>, AwsError>,
    unconfirmed: Option<Unreachable>,
) -> Verdict {
    let held = match claim {
        Err(e) => return Verdict::Report(Ran::new(failed(index, a, &e))),
        Ok(Claim::Finished(prev)) => return Verdict::Report(Ran::stored(earlier(*prev, "done"))),
        Ok(Claim::EndedMeanwhile(prev)) => {
            return Verdict::Report(Ran::stored(concurrent_end(*prev)))
        }
        Ok(Claim::Busy(until)) => {
            return Verdict::Report(Ran::new(failed(index, a, &claim_held(a, &until))))
        }
        Ok(Claim::Mine(held)) => held,
    };
    match (unconfirmed, budget) {
        // The account was guessed and STS says otherwise: as if it had
        // been known, nothing is done here.
        (Some(why), _) => Verdict::LetGo(held, not_acted(index, a, why)),
        (None, Ok(None)) => Verdict::Go(held),
        (None, Ok(Some(why))) => Verdict::LetGo(held, outcome(index, a, Status::Held, why)),
        (None, Err(e)) => Verdict::LetGo(held, failed(index, a, &e)),
    }
}

/// What an action's claim and budget decided.
#[derive(Debug, Clone)]
pub(super) enum Decided {
    /// This delivery carries it out, under this claim.
    Go(Held),
    /// Not this delivery: what it reports instead.
    Stop(Vec<Ran>),
}

impl Executor {
    /// Writes outcomes not yet in the records bucket, at once: final ones
    /// under `actions/<name>.json`, skipped, held and failed attempts beside
    /// them, each once, for the audit trail. A failed write is logged; the
    /// report still carries the outcome.
    pub(super) async fn keep(&self, prefix: &str, outcomes: &[ActionOutcome], incident_id: &str) {
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

    /// One containment action under its claim and the budget. The claim,
    /// the budget (and, on a cold start, STS) are decided while the action
    /// reads what it needs; only its first change waits for them (the gate).
    pub(super) async fn claimed(
        &self,
        run: &Run<'_>,
        index: usize,
        a: &Action,
        early: &Early<'_>,
    ) -> Vec<Ran> {
        let (Some(claims), Some(store)) = (run.claims.as_ref(), &self.records) else {
            return self.unclaimed(run, index, a).await;
        };
        let one = One {
            plan: run.plan,
            claims,
            store,
            prefix: &run.prefix,
            name: layout::action_name(a.kind, &a.target),
            index,
            action: a,
        };
        let decision = self.decide(&one).boxed().shared();
        let gate = Gate::after(decision.clone().map(|d| match d {
            Decided::Go(_) => Ok(()),
            Decided::Stop(_) => Err(Own::NotCarriedOut.into()),
        }));
        let contained = self.contain(run, index, a, &gate);
        let (decided, contained) = join(decision, contained).await;
        match decided {
            Decided::Stop(reported) => reported,
            Decided::Go(held) => self.end_claim(&one, &held, contained, early).await,
        }
    }

    /// No records bucket: nothing to claim in (a local `respond` without
    /// one); the actions are idempotent by themselves. Without a claim to
    /// decide beside, a guessed account is settled before anything, reads
    /// included.
    async fn unclaimed(&self, run: &Run<'_>, index: usize, a: &Action) -> Vec<Ran> {
        if let Some(why) = self.unconfirmed().await {
            return vec![Ran::new(not_acted(index, a, why))];
        }
        self.contain(run, index, a, &Gate::open())
            .await
            .into_iter()
            .map(Ran::new)
            .collect()
    }

    /// The claim and the budget decided together (the budget counts an
    /// action once, whoever spends for it), and STS's answer on a cold
    /// start; a claim this delivery took but may not act under is let go
    /// with the reason.
    async fn decide(&self, one: &One<'_>) -> Decided {
        let (a, index) = (one.action, one.index);
        let (claim, budget, unconfirmed) = join3(
            one.claims.acquire(one.prefix, &one.name),
            self.budget(one.plan, a.kind, &a.target),
            self.unconfirmed(),
        )
        .await;
        match settle_claim(index, a, claim, budget, unconfirmed) {
            Verdict::Go(held) => Decided::Go(held),
            Verdict::LetGo(held, o) => {
                if o.status == Status::Held {
                    warn!(incident_id = %one.plan.incident.id, action = a.kind.as_str(), target = %a.target, "held: blast-radius budget spent");
                }
                let stored = let_go(one.store, one.claims, &held, one.prefix, &o).await;
                Decided::Stop(vec![Ran { outcome: o, stored }])
            }
            Verdict::Report(r) => Decided::Stop(vec![r]),
        }
    }

    /// After the action under this delivery's claim: its outcome goes to
    /// the notices at once, and its final outcome (what ends the claim, and
    /// what later deliveries read) is written now, not with the rest after
    /// containment — a duplicate delivery holding another of this
    /// incident's claims may be waiting for it while this one waits for
    /// that one's. An attempt that did not finish lets the claim go.
    async fn end_claim(
        &self,
        one: &One<'_>,
        held: &Held,
        contained: Vec<ActionOutcome>,
        early: &Early<'_>,
    ) -> Vec<Ran> {
        let mut out: Vec<Ran> = contained.into_iter().map(Ran::new).collect();
        // The notices may go ahead with it: this delivery writes it next.
        let mut known = out.clone();
        if let Some(first) = known.first_mut() {
            first.stored = true;
        }
        early.send(&known);
        let Some(first) = out.first_mut() else {
            return out;
        };
        if matches!(first.outcome.status, Status::Done | Status::AlreadyDone) {
            let key = layout::done_key(one.prefix, &one.name);
            match one.store.put_new(&key, &first.outcome).await {
                Ok(_) => first.stored = true,
                Err(e) => {
                    warn!(code = e.code.as_deref().unwrap_or("-"), "outcome not recorded: a delivery after the claim's expiry does the (idempotent) action again");
                }
            }
        } else {
            first.stored = let_go(one.store, one.claims, held, one.prefix, &first.outcome).await;
        }
        out
    }

    /// Something done at most once per name (a notice, a write-back),
    /// under a claim (taken ahead already, or taken now).
    pub(super) async fn once(
        &self,
        once: Once<'_>,
        act: impl AsyncFnOnce() -> Result<Step, AwsError>,
    ) -> Ran {
        let (index, a) = (once.index, once.action);
        let (Some(claims), Some(store)) = (once.claims, &self.records) else {
            return Ran::new(from_result(index, a, act().await));
        };
        let acquired = match once.ahead {
            Some(held) => Ok(Claim::Mine(held)),
            None => claims.acquire(once.prefix, once.name).await,
        };
        let held = match acquired {
            Err(e) => return Ran::new(failed(index, a, &e)),
            Ok(Claim::Finished(prev)) => return Ran::stored(earlier(*prev, once.verb)),
            Ok(Claim::EndedMeanwhile(prev)) => return Ran::stored(concurrent_end(*prev)),
            Ok(Claim::Busy(until)) => return Ran::new(failed(index, a, &claim_held(a, &until))),
            Ok(Claim::Mine(held)) => held,
        };
        let o = from_result(index, a, act().await);
        if o.status == Status::Done {
            let done = layout::done_key(once.prefix, once.name);
            if let Err(e) = store.put_new(&done, &o).await {
                warn!(
                    code = e.code.as_deref().unwrap_or("-"),
                    "notice outcome not recorded"
                );
            }
            return Ran::stored(o);
        }
        // A failed attempt, or a refusal found on the way (the write-back
        // where Security Hub is not enabled), under its own name: not final.
        let key = layout::named_outcome_key(once.prefix, once.name, &o);
        let (stored, ()) = join(store.put_cond(&key, &o, None), claims.release(&held, &o)).await;
        Ran {
            outcome: o,
            stored: stored.is_ok(),
        }
    }

    /// `Some(reason)` when the blast-radius budget holds this action back.
    pub(super) async fn budget(
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
        let unit = budget::Unit {
            account: &self.account,
            kind,
            limit,
            window_minutes: window,
            action: &action,
            now: Utc::now(),
        };
        match budget::spend(store, unit).await? {
            Spent::Within(_) => Ok(None),
            Spent::Over(used) => Ok(Some(format!(
                "held for a human: the blast-radius budget allows {limit} {} per {window} minutes in account {} and {used} were taken in this window",
                kind.as_str(),
                self.account
            ))),
        }
    }
}

#[cfg(test)]
mod tests;
