//! Every sample event in `events/` planned under `events/policy.toml`, checked
//! against its golden plan in `events/plans/`. The goldens are what
//! `firebreak plan --policy events/policy.toml events/<name>.json` prints,
//! with keys sorted.
//!
//! After an intended change: `make golden`, then review the diff of
//! `events/plans/` like code.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use firebreak_core::{plan_event, Config, PlanStatus};

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

fn policy() -> Config {
    let path = events_dir().join("policy.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    Config::load(&BTreeMap::new(), Some((path.to_str().unwrap(), &text))).unwrap()
}

fn sample_events() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(events_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_event_matches_its_golden_plan() {
    let cfg = policy();
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let plans_dir = events_dir().join("plans");
    let files = sample_events();
    assert!(
        files.len() >= 15,
        "expected at least 15 sample events, found {}",
        files.len()
    );
    let mut mismatches = Vec::new();
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        let plan = plan_event(&bytes, &cfg).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let got = serde_json::to_value(&plan).unwrap();
        let golden = plans_dir.join(file.file_name().unwrap());
        if update {
            std::fs::create_dir_all(&plans_dir).unwrap();
            let text = serde_json::to_string_pretty(&sorted(got)).unwrap();
            std::fs::write(&golden, text + "\n").unwrap();
            continue;
        }
        let want: serde_json::Value = match std::fs::read(&golden) {
            Ok(b) => serde_json::from_slice(&b).unwrap(),
            Err(_) => {
                mismatches.push(format!(
                    "{}: no golden plan (run with UPDATE_GOLDEN=1)",
                    file.display()
                ));
                continue;
            }
        };
        if got != want {
            mismatches.push(format!(
                "{}: plan differs from {}\n got: {}",
                file.display(),
                golden.display(),
                serde_json::to_string_pretty(&got).unwrap()
            ));
        }
    }
    // A golden without its event is a test that silently stopped running.
    for g in std::fs::read_dir(&plans_dir).unwrap() {
        let g = g.unwrap().path();
        if !events_dir().join(g.file_name().unwrap()).exists() {
            mismatches.push(format!("{}: golden without an event", g.display()));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n\n"));
}

/// Keys in sorted order whatever serde_json's features in this build (a
/// dependency may turn on `preserve_order`), so rewritten goldens differ
/// only where the plan does.
fn sorted(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => {
            let m: BTreeMap<String, serde_json::Value> =
                m.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            serde_json::Value::Object(m.into_iter().collect())
        }
        serde_json::Value::Array(a) => a.into_iter().map(sorted).collect(),
        other => other,
    }
}

fn plan_of(name: &str) -> firebreak_core::PlanSet {
    let bytes = std::fs::read(events_dir().join(name)).unwrap();
    plan_event(&bytes, &policy()).unwrap()
}

fn planned(plan: &firebreak_core::PlanSet, idx: usize) -> Vec<(String, String)> {
    plan.incidents[idx]
        .actions
        .iter()
        .filter(|a| a.status == PlanStatus::Planned)
        .map(|a| (a.kind.as_str().to_string(), a.target.clone()))
        .collect()
}

#[test]
fn a_finding_keeps_its_id_through_sns_and_redelivery() {
    let direct = plan_of("guardduty-leaked-key.json");
    let via_sns = plan_of("guardduty-leaked-key-via-sns.json");
    assert_eq!(
        direct.incidents[0].incident.id,
        via_sns.incidents[0].incident.id
    );
    // GuardDuty re-sends a recurring finding with a new count and time: same incident.
    let mut v: serde_json::Value = serde_json::from_slice(
        &std::fs::read(events_dir().join("guardduty-leaked-key.json")).unwrap(),
    )
    .unwrap();
    v["id"] = "another-delivery".into();
    v["detail"]["service"]["count"] = 99.into();
    v["detail"]["updatedAt"] = "2026-11-21T00:00:00.000Z".into();
    let again = plan_event(v.to_string().as_bytes(), &policy()).unwrap();
    assert_eq!(
        direct.incidents[0].incident.id,
        again.incidents[0].incident.id
    );
    // A different finding is a different incident.
    v["detail"]["id"] = "0000000000000000000000000000000f".into();
    let other = plan_event(v.to_string().as_bytes(), &policy()).unwrap();
    assert_ne!(
        direct.incidents[0].incident.id,
        other.incidents[0].incident.id
    );
}

#[test]
fn every_sns_record_is_handled() {
    let plan = plan_of("alarm-batch-three-records.json");
    assert_eq!(
        plan.incidents.len(),
        2,
        "two ALARM records become incidents"
    );
    assert_eq!(
        plan.ignored.len(),
        1,
        "the OK record is ignored, with a reason"
    );
    assert_eq!(plan.ignored[0].record, 1);
    // Region comes from the ARN / display name, never left as a display name.
    assert_eq!(
        plan.incidents[0].incident.region.as_deref(),
        Some("eu-west-1")
    );
    assert_eq!(
        plan.incidents[1].incident.region.as_deref(),
        Some("us-east-1")
    );
    assert!(
        plan.incidents[0].incident.evidence.description.is_none(),
        "null AlarmDescription"
    );
}

#[test]
fn playbooks_by_severity() {
    // CRITICAL: block, deactivate and quarantine the key's user, isolate.
    let p = plan_of("manual-unauthorized-access.json");
    assert_eq!(
        planned(&p, 0),
        vec![
            ("block_ip".into(), "198.51.100.42/32".into()),
            (
                "deactivate_access_key".into(),
                "AKIAIOSFODNN7EXAMPLE".into()
            ),
            ("quarantine_user".into(), "ci-deployer".into()),
            ("isolate_instance".into(), "i-0abc123def4567890".into()),
            ("snapshot_volumes".into(), "i-0abc123def4567890".into()),
            ("record_incident".into(), p.incidents[0].incident.id.clone()),
            ("notify_team".into(), "team".into()),
            ("notify_stakeholders".into(), "stakeholders".into()),
        ]
    );
    // Temporary credentials: revoke the role's sessions, never a key deactivation.
    let p = plan_of("guardduty-temporary-credentials.json");
    let kinds: Vec<String> = planned(&p, 0).into_iter().map(|(k, _)| k).collect();
    assert!(kinds.contains(&"revoke_role_sessions".to_string()));
    assert!(!kinds.contains(&"deactivate_access_key".to_string()));
    // The runbook's CRITICAL alert naming only a user: the user is locked out.
    let p = plan_of("manual-compromised-account.json");
    let id = p.incidents[0].incident.id.clone();
    assert_eq!(
        planned(&p, 0),
        vec![
            ("quarantine_user".into(), "contractor-jane".into()),
            ("record_incident".into(), id),
            ("notify_team".into(), "team".into()),
            ("notify_stakeholders".into(), "stakeholders".into()),
        ]
    );
    // An Identity Center session: never attempted, handed to a human.
    let p = plan_of("guardduty-identity-center-session.json");
    let revoke = p.incidents[0]
        .actions
        .iter()
        .find(|a| a.kind.as_str() == "revoke_role_sessions")
        .unwrap();
    assert_eq!(revoke.status, PlanStatus::Skipped);
    assert!(
        revoke.reason.contains("delete-account-assignment"),
        "{revoke:?}"
    );
    // LOW: record and tell the team, nothing else; a user named is not
    // quarantined below CRITICAL, and the record says so.
    let p = plan_of("manual-low.json");
    let kinds: Vec<String> = planned(&p, 0).into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds, vec!["record_incident", "notify_team"]);
    assert!(p.incidents[0].incident.evidence.notes[0].contains("quarantine_user"));
    // MEDIUM failed-login alarm: query the offenders, raise monitoring.
    let p = plan_of("alarm-failed-login.json");
    let kinds: Vec<String> = planned(&p, 0).into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        kinds,
        vec![
            "query_offending_ips",
            "increase_monitoring",
            "record_incident",
            "notify_team"
        ]
    );
}

#[test]
fn sample_findings_change_nothing() {
    let p = plan_of("guardduty-sample-finding.json");
    let changes: Vec<_> = p.incidents[0]
        .actions
        .iter()
        .filter(|a| a.kind.is_containment() && a.status == PlanStatus::Planned)
        .collect();
    assert!(changes.is_empty(), "{changes:?}");
    assert!(p.incidents[0]
        .actions
        .iter()
        .any(|a| a.reason.contains("sample finding")));
}

#[test]
fn bad_inputs_are_refused_with_what_was_expected() {
    let cases = [
        ("truncated.json", "not valid JSON"),
        (
            "severity-is-text.json",
            "at `detail.severity`: invalid type: string \"HIGH\", expected f64",
        ),
        (
            "unknown-shape.json",
            "unrecognised event: expected an SNS event",
        ),
        ("cidr-too-wide.json", "Firebreak blocks single hosts only"),
        (
            "alarm-bad-state.json",
            "SNS record 0: CloudWatch alarm: `NewStateValue` is `PANIC`",
        ),
        (
            "threat-level-out-of-range.json",
            "`threat_level` is 42: expected a number from 0 to 10",
        ),
        ("other-eventbridge-source.json", "source `aws.ec2`"),
        ("not-utf8.json", "not UTF-8"),
        (
            "securityhub-severity-wrong-type.json",
            "Security Hub finding: at `detail.findings[0].Severity.Label`: invalid type: integer `8`",
        ),
        (
            "securityhub-empty-findings.json",
            "Security Hub finding: `detail.findings` is empty",
        ),
        (
            "securityhub-insight-results.json",
            "detail-type `Security Hub Insight Results`",
        ),
        (
            "securityhub-unknown-custom-action.json",
            "Security Hub custom action: `detail.actionName` is `Send to Jira`: expected one of firebreak-contain, firebreak-quarantine, firebreak-record",
        ),
        (
            "securityhub-guardduty-score-out-of-range.json",
            "at `detail.findings[0].Severity.Product`: is 80: expected GuardDuty's score from 0 to 10",
        ),
    ];
    let dir = events_dir().join("invalid");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let (_, want) = cases
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no expectation for {name}"));
        let err = plan_event(&std::fs::read(&path).unwrap(), &policy())
            .expect_err(&name)
            .to_string();
        assert!(
            err.contains(want),
            "{name}: `{err}` does not contain `{want}`"
        );
        assert!(!err.contains('\n'), "{name}: error is not one line: {err}");
        seen += 1;
    }
    assert_eq!(seen, cases.len());
}

#[test]
fn attacker_text_is_escaped_and_capped() {
    let p = plan_of("guardduty-dns-exfiltration.json");
    let domain = p.incidents[0].incident.evidence.domain.clone().unwrap();
    assert!(
        domain.contains("\\u{1b}[2J") && !domain.contains('\u{1b}'),
        "{domain}"
    );
    let mut v: serde_json::Value = serde_json::from_slice(
        &std::fs::read(events_dir().join("guardduty-dns-exfiltration.json")).unwrap(),
    )
    .unwrap();
    v["detail"]["title"] = "A\n".repeat(10_000).into();
    let p = plan_event(v.to_string().as_bytes(), &policy()).unwrap();
    let title = p.incidents[0].incident.evidence.title.clone().unwrap();
    assert!(
        title.chars().count() <= 513 && !title.contains('\n'),
        "{}",
        title.len()
    );
}

#[test]
fn addresses_found_by_the_failed_login_query_pass_the_same_envelope() {
    let mut cfg = policy();
    cfg.max_blocks_per_incident = 2;
    let plan = plan_of("alarm-failed-login.json");
    let incident = &plan.incidents[0];
    let found: Vec<std::net::IpAddr> = [
        "198.51.100.23", // blockable
        "203.0.113.9",   // on the allow-list of events/policy.toml
        "10.0.0.8",      // private
        "198.51.100.24", // blockable
        "198.51.100.25", // over the cap of 2
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    let blocks = firebreak_core::policy::plan_found_blocks(incident, &found, &cfg);
    let got: Vec<(String, PlanStatus)> = blocks
        .iter()
        .map(|a| (a.target.clone(), a.status))
        .collect();
    assert_eq!(
        got,
        vec![
            ("198.51.100.23/32".to_string(), PlanStatus::Planned),
            ("203.0.113.9/32".to_string(), PlanStatus::Skipped),
            ("10.0.0.8/32".to_string(), PlanStatus::Skipped),
            ("198.51.100.24/32".to_string(), PlanStatus::Planned),
            ("198.51.100.25/32".to_string(), PlanStatus::Skipped),
        ],
        "{blocks:#?}"
    );
    // They go to the configured NACLs (an alarm names no subnet), inbound.
    assert_eq!(blocks[0].params.nacls, cfg.default_nacls);
    assert!(
        blocks[0].reason.contains("failed-login query"),
        "{}",
        blocks[0].reason
    );
    assert!(
        blocks[4]
            .reason
            .contains("FIREBREAK_MAX_BLOCKS_PER_INCIDENT"),
        "{}",
        blocks[4].reason
    );
}
