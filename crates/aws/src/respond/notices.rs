//! How the containment of an incident ended, as the short digest a notice
//! is claimed under: a replay that changed nothing sends nothing, a retry
//! that finished what failed before sends one more.

use std::sync::atomic::{AtomicBool, Ordering};

use firebreak_core::incident::short_digest;
use firebreak_core::{Action, ActionKind, PlannedIncident};

use super::action::Ran;
use crate::outcome::{ActionOutcome, Status};

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

/// Hands an action's outcomes to the notices as soon as they are known,
/// once (the caller sends the final ones if the action did not).
pub(super) struct Early<'a> {
    pub(super) tx: &'a tokio::sync::mpsc::UnboundedSender<Vec<Ran>>,
    pub(super) sent: AtomicBool,
}

impl Early<'_> {
    pub(super) fn send(&self, group: &[Ran]) {
        if !self.sent.swap(true, Ordering::SeqCst) {
            // The receiver lives as long as the run: a send cannot fail.
            let _ = self.tx.send(group.to_vec());
        }
    }
}
