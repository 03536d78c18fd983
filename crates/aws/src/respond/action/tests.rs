#![allow(clippy::unwrap_used)]

use super::*;
use crate::outcome::Status;
use firebreak_core::{plan_event, Config};

fn action() -> Action {
    let cmd = br#"{"command":"isolate_instance","instance_id":"i-0abc123def4567890","requested_by":"a","reason":"b"}"#;
    let plan = plan_event(cmd, &Config::default()).unwrap();
    plan.incidents[0].actions[0].clone()
}

fn held() -> Held {
    Held {
        key: "k".into(),
        etag: "e".into(),
        name: "n".into(),
    }
}

fn prev(status: Status) -> Box<ActionOutcome> {
    Box::new(outcome(3, &action(), status, "as it ended"))
}

/// What a verdict says: a word, the status it reports, whether stored.
type Said = (&'static str, Option<Status>, bool);

fn word(v: &Verdict) -> Said {
    match v {
        Verdict::Go(_) => ("go", None, false),
        Verdict::LetGo(_, o) => ("let go", Some(o.status), false),
        Verdict::Report(r) => ("report", Some(r.outcome.status), r.stored),
    }
}

#[test]
fn a_claim_settles_by_who_holds_it_the_budget_and_sts() {
    let a = action();
    let throttled = || AwsError::from(Own::BudgetContention { key: "b".into() });
    let not_here = || Some(Unreachable::NotHere("elsewhere".into()));
    let mine = || Ok(Claim::Mine(held()));
    let cases: Vec<(&str, Verdict, Said)> = vec![
        (
            "mine, within budget",
            settle_claim(0, &a, mine(), Ok(None), None),
            ("go", None, false),
        ),
        (
            "mine, budget spent",
            settle_claim(0, &a, mine(), Ok(Some("held".into())), None),
            ("let go", Some(Status::Held), false),
        ),
        (
            "mine, budget unreadable",
            settle_claim(0, &a, mine(), Err(throttled()), None),
            ("let go", Some(Status::Failed), false),
        ),
        (
            "mine, STS names another account",
            settle_claim(0, &a, mine(), Ok(None), not_here()),
            ("let go", Some(Status::Skipped), false),
        ),
        (
            "STS outranks the budget",
            settle_claim(0, &a, mine(), Ok(Some("held".into())), not_here()),
            ("let go", Some(Status::Skipped), false),
        ),
        (
            "finished earlier",
            settle_claim(
                0,
                &a,
                Ok(Claim::Finished(prev(Status::Done))),
                Ok(None),
                None,
            ),
            ("report", Some(Status::AlreadyDone), true),
        ),
        (
            "ended meanwhile",
            settle_claim(
                0,
                &a,
                Ok(Claim::EndedMeanwhile(prev(Status::Failed))),
                Ok(None),
                None,
            ),
            ("report", Some(Status::Failed), true),
        ),
        (
            "held by a live delivery",
            settle_claim(0, &a, Ok(Claim::Busy("later".into())), Ok(None), None),
            ("report", Some(Status::Failed), false),
        ),
        (
            "claim unreadable",
            settle_claim(0, &a, Err(throttled()), Ok(None), None),
            ("report", Some(Status::Failed), false),
        ),
    ];
    for (case, verdict, want) in cases {
        assert_eq!(word(&verdict), want, "{case}: {verdict:?}");
    }
}

#[test]
fn a_busy_claim_fails_retryably_and_a_finished_one_is_already_done() {
    let a = action();
    // A delivery that found another holding the claim fails retryably,
    // naming it: Lambda's retry comes back for the outcome.
    let Verdict::Report(r) = settle_claim(
        0,
        &a,
        Ok(Claim::Busy("2026-11-22T03:00:00Z".into())),
        Ok(None),
        None,
    ) else {
        panic!("a busy claim is reported");
    };
    let e = r.outcome.error.unwrap();
    assert_eq!(e.code.as_deref(), Some(CLAIM_HELD));
    assert!(
        e.retryable && e.message.contains("2026-11-22T03:00:00Z"),
        "{e:?}"
    );
    // An earlier delivery's success is this one's "already done".
    let Verdict::Report(r) = settle_claim(
        0,
        &a,
        Ok(Claim::Finished(prev(Status::Done))),
        Ok(None),
        None,
    ) else {
        panic!("a finished claim is reported");
    };
    assert!(
        r.outcome
            .detail
            .starts_with("done by an earlier delivery: "),
        "{r:?}"
    );
}
