//! The notices: how the containment of an incident ended, as the short
//! digest a notice is claimed under (a replay that changed nothing sends
//! nothing, a retry that finished what failed before sends one more), and
//! telling the team and the stakeholders once it has.

use firebreak_core::incident::short_digest;
use firebreak_core::{Action, ActionKind, PlannedIncident};

use futures_util::future::{join, join_all};
use serde_json::Value;

use super::action::{Once, CLAIM_HELD};
use super::state::{Ran, Run};
use super::{outcome, Executor};
use crate::actions::notify;
use crate::bucket::claim::Held;
use crate::outcome::{ActionOutcome, Status, Step};

/// How the containment of an incident ended, as a short digest: the name
/// a notice is claimed under. `done` and `already_done` count alike, so a
/// replay that finds everything done matches the run that did it.
pub(super) fn notice_fingerprint(plan: &PlannedIncident, outcomes: &[ActionOutcome]) -> String {
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
pub(super) fn planned_fingerprint(
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

/// What becomes of a notice's claim taken ahead: it is this delivery's to
/// send under when containment ended as guessed (and no other delivery
/// holds a claim on the incident); otherwise it is stale, to be given
/// back. Pure: the notice decision, tested by table.
pub(super) fn ahead_claim<T>(
    ahead: Option<T>,
    as_guessed: bool,
    waiting: bool,
) -> (Option<T>, Option<T>) {
    match ahead {
        Some(held) if as_guessed && !waiting => (Some(held), None),
        other => (None, other),
    }
}

impl Executor {
    /// The topic a notice goes to, if it is configured.
    pub(super) fn topic_of(&self, a: &Action) -> Option<&str> {
        match a.kind {
            ActionKind::NotifyTeam => self.cfg.team_topic_arn.as_deref(),
            ActionKind::NotifyStakeholders => self.cfg.stakeholder_topic_arn.as_deref(),
            _ => None,
        }
    }

    /// Once every action has ended: team and stakeholders are told at once,
    /// each notice under the fingerprint of how containment ended, while
    /// the outcomes not in the bucket yet (the final ones that end the
    /// claims, refusals, failures) are written.
    pub(super) async fn tell_and_keep(
        &self,
        run: &Run<'_>,
        outcomes: &mut [Option<Ran>],
        extra: &[ActionOutcome],
        ahead: Vec<(usize, Option<Held>)>,
        guess: Option<&str>,
    ) {
        let plan = run.plan;
        let mut ahead_held: Vec<Option<Held>> = vec![None; plan.actions.len()];
        for (index, held) in ahead {
            ahead_held[index] = held;
        }
        let ending = Ending::of(plan, outcomes, extra);
        let unwritten: Vec<ActionOutcome> = outcomes
            .iter_mut()
            .flatten()
            .filter(|r| !r.stored)
            .map(|r| {
                r.stored = true;
                r.outcome.clone()
            })
            .collect();
        let as_guessed = guess == Some(ending.fingerprint.as_str());
        let notices = plan.actions.iter().enumerate().filter_map(|(index, a)| {
            if !matches!(
                a.kind,
                ActionKind::NotifyTeam | ActionKind::NotifyStakeholders
            ) {
                return None;
            }
            let (mine, stale) = ahead_claim(ahead_held[index].take(), as_guessed, ending.waiting);
            Some(self.notice(run, (index, a), &ending, mine, stale))
        });
        let keep = self.keep(&run.prefix, &unwritten, &plan.incident.id);
        let (told, ()) = join(join_all(notices), keep).await;
        for (index, r) in told {
            outcomes[index] = Some(r);
        }
    }

    /// One notice: sent once per way containment can end (its claim named
    /// by the fingerprint), or skipped saying why; a claim taken ahead for
    /// another ending (`stale`) is given back meanwhile.
    async fn notice(
        &self,
        run: &Run<'_>,
        (index, a): (usize, &Action),
        ending: &Ending,
        mine: Option<Held>,
        stale: Option<Held>,
    ) -> (usize, Ran) {
        let give_back = async {
            if let (Some(held), Some(claims)) = (&stale, run.claims.as_ref()) {
                let why = "claimed ahead for a containment that ended otherwise";
                claims
                    .release(held, &outcome(index, a, Status::Skipped, why))
                    .await;
            }
        };
        let (r, ()) = join(self.tell(run, (index, a), ending, mine), give_back).await;
        if !r.stored {
            self.keep(
                &run.prefix,
                std::slice::from_ref(&r.outcome),
                &run.plan.incident.id,
            )
            .await;
        }
        (index, Ran::stored(r.outcome))
    }

    /// Publishes the notice once, or says why not.
    async fn tell(
        &self,
        run: &Run<'_>,
        (index, a): (usize, &Action),
        ending: &Ending,
        mine: Option<Held>,
    ) -> Ran {
        let arn = match self.topic_of(a) {
            None if a.kind == ActionKind::NotifyStakeholders => {
                let why = "FIREBREAK_STAKEHOLDER_TOPIC_ARN is not set";
                return Ran::new(outcome(index, a, Status::Skipped, why));
            }
            None => {
                let why = "FIREBREAK_TEAM_TOPIC_ARN is not set";
                return Ran::new(outcome(index, a, Status::Failed, why));
            }
            Some(_) if ending.waiting => {
                let why = "another delivery holds a claim on this incident; it notifies";
                return Ran::new(outcome(index, a, Status::Skipped, why));
            }
            Some(arn) => arn,
        };
        let name = format!("{}-{}", a.kind.as_str(), ending.fingerprint);
        let send = async || {
            notify::publish(
                &self.clients.sns,
                arn,
                self.cfg.notice_format,
                run.plan,
                &ending.so_far,
                run.record_uri.as_deref(),
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
        let once = Once {
            claims: run.claims.as_ref(),
            prefix: &run.prefix,
            name: &name,
            index,
            action: a,
            ahead: mine,
            verb: "sent",
        };
        self.once(once, send).await
    }
}

/// How containment ended, as the notices tell it.
pub(super) struct Ending {
    /// Every outcome so far.
    pub(super) so_far: Vec<ActionOutcome>,
    /// Its fingerprint: the name the notices and the write-back are
    /// claimed under.
    pub(super) fingerprint: String,
    /// Another delivery holds a claim: it notifies and writes back, not
    /// this one.
    pub(super) waiting: bool,
}

impl Ending {
    /// How containment ended once every action has: the outcomes of this
    /// run and `extra` (the blocks a query found, refusals).
    pub(super) fn of(
        plan: &PlannedIncident,
        outcomes: &[Option<Ran>],
        extra: &[ActionOutcome],
    ) -> Ending {
        let mut so_far: Vec<ActionOutcome> = outcomes
            .iter()
            .flatten()
            .map(|r| r.outcome.clone())
            .collect();
        so_far.extend(extra.iter().cloned());
        let fingerprint = notice_fingerprint(plan, &so_far);
        // A delivery that found another one still holding a claim is retried
        // later; the holder tells the team and writes back, this one stays
        // quiet.
        let waiting = so_far.iter().any(|o| {
            o.error
                .as_ref()
                .is_some_and(|e| e.code.as_deref() == Some(CLAIM_HELD))
        });
        Ending {
            so_far,
            fingerprint,
            waiting,
        }
    }
}

#[cfg(test)]
mod tests;
