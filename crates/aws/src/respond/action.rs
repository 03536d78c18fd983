//! One containment action (or notice) under its claim, the blast-radius
//! budget and the gate: of all the deliveries of one signal, one carries it
//! out and the others read its outcome.

use chrono::Utc;
use firebreak_core::{Action, ActionKind, PlannedIncident};
use futures_util::future::{join, join3, join_all, FutureExt};
use tracing::warn;

use super::notices::Early;
use super::{failed, from_result, not_acted, outcome, Executor};
use crate::bucket::budget::{self, Spent};
use crate::bucket::claim::{Claim, Claims, Held};
use crate::bucket::layout;
use crate::bucket::RecordStore;
use crate::error::{AwsError, Own};
use crate::gate::Gate;
use crate::outcome::{ActionOutcome, Status, Step};

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

/// What an action's claim and budget decided.
#[derive(Debug, Clone)]
pub(super) enum Decided {
    /// This delivery carries it out, under this claim.
    Go(Held),
    /// Not this delivery: what it reports instead.
    Stop(Vec<Ran>),
}

/// An outcome and whether it is already in the records bucket.
#[derive(Debug, Clone)]
pub(super) struct Ran {
    pub(super) outcome: ActionOutcome,
    pub(super) stored: bool,
}

impl Ran {
    pub(super) fn new(outcome: ActionOutcome) -> Ran {
        Ran {
            outcome,
            stored: false,
        }
    }

    pub(super) fn stored(outcome: ActionOutcome) -> Ran {
        Ran {
            outcome,
            stored: true,
        }
    }
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

    /// One containment action under its claim and the budget.
    pub(super) async fn claimed(
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
            Decided::Stop(_) => Err(Own::NotCarriedOut.into()),
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
    pub(super) async fn once(
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
        match budget::spend(store, &self.account, kind, limit, window, &action, Utc::now()).await? {
            Spent::Within(_) => Ok(None),
            Spent::Over(used) => Ok(Some(format!(
                "held for a human: the blast-radius budget allows {limit} {} per {window} minutes in account {} and {used} were taken in this window",
                kind.as_str(),
                self.account
            ))),
        }
    }
}
