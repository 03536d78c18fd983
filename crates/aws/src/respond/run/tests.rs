#![allow(clippy::unwrap_used)]

use super::*;
use firebreak_core::{plan_event, Config};

/// The sample policy: the brute force on a production instance is HIGH.
fn policy() -> Config {
    let text = include_str!("../../../../../events/policy.toml");
    Config::load(
        &std::collections::BTreeMap::new(),
        Some(("policy.toml", text)),
    )
    .unwrap()
}

fn plan(event: &str, cfg: &Config) -> PlannedIncident {
    plan_event(event.as_bytes(), cfg)
        .unwrap()
        .incidents
        .remove(0)
}

fn known(t: &Triage<'_>) -> Vec<(usize, Status)> {
    t.outcomes
        .iter()
        .flatten()
        .map(|r| (r.outcome.index, r.outcome.status))
        .collect()
}

#[test]
fn triage_sorts_what_is_known_from_what_must_be_done() {
    let cfg = policy();
    let brute = include_str!("../../../../../events/guardduty-ssh-brute-force.json");
    let p = plan(brute, &cfg);
    let planned: Vec<usize> = p
        .actions
        .iter()
        .enumerate()
        .filter(|(_, a)| a.kind.is_containment() && a.status == PlanStatus::Planned)
        .map(|(i, _)| i)
        .collect();
    let refused: Vec<(usize, Status)> = p
        .actions
        .iter()
        .enumerate()
        .filter(|(_, a)| a.kind.is_containment() && a.status == PlanStatus::Skipped)
        .map(|(i, _)| (i, Status::Skipped))
        .collect();
    assert!(planned.len() >= 3, "{p:#?}");

    // Here: the plan's refusals are known, the rest is carried out.
    let t = triage(&p, None);
    assert_eq!(
        t.pending.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        planned
    );
    assert_eq!(known(&t), refused);
    // Bookkeeping is never triaged: the record and notices have no slot yet.
    for (i, a) in p.actions.iter().enumerate() {
        if !a.kind.is_containment() {
            assert!(t.outcomes[i].is_none(), "{a:?}");
        }
    }
}

#[test]
fn triage_knows_refusals_unreachable_places_and_dry_runs_without_a_call() {
    let cfg = policy();
    let brute = include_str!("../../../../../events/guardduty-ssh-brute-force.json");
    let p = plan(brute, &cfg);
    let planned: Vec<usize> = triage(&p, None).pending.iter().map(|(i, _)| *i).collect();
    // A plan's own refusal (an API caller is not blocked by a NACL) is
    // known at once; the key is carried out.
    let key = plan(
        include_str!("../../../../../events/guardduty-leaked-key.json"),
        &cfg,
    );
    let t = triage(&key, None);
    assert_eq!(
        t.pending.iter().map(|(_, a)| a.kind).collect::<Vec<_>>(),
        vec![ActionKind::DeactivateAccessKey]
    );
    let k = known(&t);
    assert_eq!(k.len(), 1);
    assert_eq!(key.actions[k[0].0].kind, ActionKind::BlockIp);
    assert_eq!(k[0].1, Status::Skipped);

    // Out of reach: nothing is carried out; each planned action says why.
    let away = Unreachable::NotHere("not configured there".into());
    let t = triage(&p, Some(&away));
    assert!(t.pending.is_empty());
    let got: Vec<usize> = known(&t).iter().map(|(i, _)| *i).collect();
    assert_eq!(
        got, planned,
        "the brute force's plan refuses nothing itself"
    );
    assert!(known(&t).iter().all(|(_, s)| *s == Status::Skipped));

    // A dry run: only the (read-only) failed-login query would run.
    let mut dry = p.clone();
    dry.dry_run = true;
    let t = triage(&dry, None);
    assert!(t.pending.is_empty());
    assert!(t
        .outcomes
        .iter()
        .flatten()
        .filter(|r| planned.contains(&r.outcome.index))
        .all(|r| r.outcome.detail.starts_with("dry run: would ")));
    let alarm = include_str!("../../../../../events/alarm-failed-login.json");
    let mut q = plan(alarm, &cfg);
    q.dry_run = true;
    let t = triage(&q, None);
    assert_eq!(
        t.pending.iter().map(|(_, a)| a.kind).collect::<Vec<_>>(),
        vec![ActionKind::QueryOffendingIps]
    );
}

#[test]
fn settling_puts_each_outcome_in_its_slot_and_keeps_the_query_blocks_apart() {
    let cfg = policy();
    let p = plan(
        include_str!("../../../../../events/guardduty-ssh-brute-force.json"),
        &cfg,
    );
    let mut outcomes = triage(&p, None).outcomes;
    let (first, a) = p
        .actions
        .iter()
        .enumerate()
        .find(|(_, a)| a.kind.is_containment() && a.status == PlanStatus::Planned)
        .unwrap();
    let done = Ran::new(outcome(first, a, Status::Done, "done"));
    let found = Ran::new(outcome(first, a, Status::Done, "a block the query found"));
    let (rec_index, rec) = p
        .actions
        .iter()
        .enumerate()
        .find(|(_, a)| a.kind == ActionKind::RecordIncident)
        .unwrap();
    let recorded = vec![outcome(rec_index, rec, Status::Done, "s3://…")];
    let extra = settle(&mut outcomes, vec![vec![done, found]], recorded, Vec::new());
    assert_eq!(outcomes[first].as_ref().unwrap().outcome.detail, "done");
    assert!(outcomes[rec_index].as_ref().unwrap().stored);
    assert_eq!(extra.len(), 1);
    assert_eq!(extra[0].detail, "a block the query found");
}

#[test]
fn what_an_earlier_delivery_did_replaces_this_plans_refusal() {
    let cfg = policy();
    let mut p = plan(
        include_str!("../../../../../events/guardduty-ssh-brute-force.json"),
        &cfg,
    );
    p.dry_run = true;
    let mut outcomes = triage(&p, None).outcomes;
    let (i, a) = p
        .actions
        .iter()
        .enumerate()
        .find(|(_, a)| a.kind == ActionKind::IsolateInstance)
        .unwrap();
    let prev = earlier(outcome(99, a, Status::Done, "instance isolated"), "done");
    settle(&mut outcomes, Vec::new(), Vec::new(), vec![prev]);
    let now = &outcomes[i].as_ref().unwrap().outcome;
    assert_eq!(now.status, Status::AlreadyDone);
    assert_eq!(now.index, i, "the slot's index, not the earlier plan's");
    assert!(
        now.detail.starts_with("done by an earlier delivery"),
        "{now:?}"
    );
    assert!(
        outcomes[i].as_ref().unwrap().stored,
        "nothing to write again"
    );
}
