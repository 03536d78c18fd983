#![allow(clippy::unwrap_used)]

use super::*;
use crate::respond::outcome;
use firebreak_core::{plan_event, Config};

fn brute_force() -> PlannedIncident {
    let text = include_str!("../../../../../events/policy.toml");
    let cfg = Config::load(
        &std::collections::BTreeMap::new(),
        Some(("policy.toml", text)),
    )
    .unwrap();
    let ev = include_str!("../../../../../events/guardduty-ssh-brute-force.json");
    plan_event(ev.as_bytes(), &cfg).unwrap().incidents.remove(0)
}

/// The plan's containment, each ended with `status`.
fn ended(plan: &PlannedIncident, status: impl Fn(usize) -> Status) -> Vec<ActionOutcome> {
    plan.actions
        .iter()
        .enumerate()
        .filter(|(_, a)| a.kind.is_containment())
        .map(|(i, a)| outcome(i, a, status(i), "…"))
        .collect()
}

#[test]
fn a_fingerprint_names_how_containment_ended_not_who_did_it() {
    let plan = brute_force();
    let done = notice_fingerprint(&plan, &ended(&plan, |_| Status::Done));
    // A replay that finds everything done matches the run that did it.
    assert_eq!(
        done,
        notice_fingerprint(&plan, &ended(&plan, |_| Status::AlreadyDone))
    );
    // The order the actions ended in does not matter.
    let mut reversed = ended(&plan, |_| Status::Done);
    reversed.reverse();
    assert_eq!(done, notice_fingerprint(&plan, &reversed));
    // Bookkeeping does not count.
    let mut with_record = ended(&plan, |_| Status::Done);
    let (ri, ra) = plan
        .actions
        .iter()
        .enumerate()
        .find(|(_, a)| a.kind == ActionKind::RecordIncident)
        .unwrap();
    with_record.push(outcome(ri, ra, Status::Failed, "…"));
    assert_eq!(done, notice_fingerprint(&plan, &with_record));
    // Any other ending is another notice.
    let first = ended(&plan, |_| Status::Done)[0].index;
    let mut seen = vec![done.clone()];
    for other in [Status::Failed, Status::Held, Status::Skipped] {
        let f = notice_fingerprint(
            &plan,
            &ended(&plan, |i| if i == first { other } else { Status::Done }),
        );
        assert!(!seen.contains(&f), "{other:?} must differ from {seen:?}");
        seen.push(f);
    }
    // A dry run is never the same notice as the real thing.
    let mut dry = plan.clone();
    dry.dry_run = true;
    assert_ne!(
        done,
        notice_fingerprint(&dry, &ended(&plan, |_| Status::Done))
    );
}

#[test]
fn the_planned_fingerprint_is_the_ending_as_planned_unless_a_query_decides_it() {
    let plan = brute_force();
    let pending: Vec<(usize, &Action)> = plan
        .actions
        .iter()
        .enumerate()
        .filter(|(_, a)| a.kind.is_containment())
        .collect();
    let known: Vec<Option<Ran>> = vec![None; plan.actions.len()];
    let guess = planned_fingerprint(&plan, &known, &pending).unwrap();
    assert_eq!(
        guess,
        notice_fingerprint(&plan, &ended(&plan, |_| Status::Done))
    );
    // One action known already (refused): the guess carries it as it is.
    let (i, a) = pending[0];
    let mut known = known;
    known[i] = Some(Ran::new(outcome(i, a, Status::Skipped, "refused")));
    let guess = planned_fingerprint(&plan, &known, &pending[1..]).unwrap();
    assert_eq!(
        guess,
        notice_fingerprint(
            &plan,
            &ended(&plan, |j| if j == i {
                Status::Skipped
            } else {
                Status::Done
            })
        )
    );
    // A failed-login query blocks what it finds: no guess.
    let query = firebreak_core::Action {
        kind: ActionKind::QueryOffendingIps,
        ..a.clone()
    };
    assert_eq!(planned_fingerprint(&plan, &[], &[(0, &query)]), None);
}

#[test]
fn a_notice_sends_under_its_ahead_claim_only_when_containment_ended_as_guessed() {
    let cases = [
        // (claimed ahead, ended as guessed, another delivery waiting) → (mine, stale)
        (true, true, false, (true, false)),
        (true, false, false, (false, true)),
        (true, true, true, (false, true)),
        (false, true, false, (false, false)),
        (false, false, true, (false, false)),
    ];
    for (ahead, guessed, waiting, (mine, stale)) in cases {
        let (m, s) = ahead_claim(ahead.then_some("claim"), guessed, waiting);
        assert_eq!(
            (m.is_some(), s.is_some()),
            (mine, stale),
            "ahead {ahead}, guessed {guessed}, waiting {waiting}"
        );
    }
}
