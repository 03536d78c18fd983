//! The emergency lockdown in the core: how the command is read (refusals
//! that say what to fix), how it is planned (one action per target, each
//! checked for its shape and place), and that nothing but the command ever
//! plans it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use firebreak_core::{plan_event, ActionKind, Config, PlanStatus, PlannedIncident, Severity};
use serde_json::{json, Value};

const LOCKDOWN_KINDS: [ActionKind; 4] = [
    ActionKind::ScaleServiceToZero,
    ActionKind::ServeMaintenanceResponse,
    ActionKind::RotateSecret,
    ActionKind::CopyEvidence,
];

const LISTENER: &str = "arn:aws:elasticloadbalancing:eu-west-1:111122223333:listener/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2";

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

fn cfg() -> Config {
    Config::load(&BTreeMap::new(), None).unwrap()
}

fn lockdown(extra: Value) -> Value {
    let mut v = json!({
        "command": "lockdown",
        "requested_by": "oncall-alice",
        "reason": "SEC-2077",
        "account": "111122223333",
        "region": "eu-west-1",
    });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

fn refused(v: &Value) -> String {
    plan_event(v.to_string().as_bytes(), &cfg())
        .unwrap_err()
        .to_string()
}

fn planned(v: &Value) -> PlannedIncident {
    plan_event(v.to_string().as_bytes(), &cfg())
        .unwrap_or_else(|e| panic!("{e}"))
        .incidents
        .remove(0)
}

/// `(kind, target, status)` of every action.
fn steps(p: &PlannedIncident) -> Vec<(&str, &str, PlanStatus)> {
    p.actions
        .iter()
        .map(|a| (a.kind.as_str(), a.target.as_str(), a.status))
        .collect()
}

#[test]
fn a_lockdown_that_names_nothing_or_too_much_is_refused_saying_what_to_give() {
    let err = refused(&lockdown(json!({})));
    assert!(
        err.contains("`lockdown` names nothing to lock down: give at least one of ecs_services, listener_arns, secret_ids, log_groups, evidence"),
        "{err}"
    );
    let err = refused(&lockdown(json!({ "ecs_services": [], "secret_ids": [] })));
    assert!(err.contains("names nothing to lock down"), "{err}");
    // A misspelt list must not lock down less than was asked.
    let err = refused(&lockdown(
        json!({ "ecs_service": [{ "cluster": "a", "service": "b" }] }),
    ));
    assert!(
        err.contains("at `ecs_service`: a lockdown takes no such field"),
        "{err}"
    );
    let err = refused(&lockdown(
        json!({ "ecs_services": [{ "cluster": "a", "servic": "b" }] }),
    ));
    assert!(
        err.contains("ecs_services[0]") && err.contains("servic"),
        "{err}"
    );
    let err = refused(&lockdown(json!({ "secret_ids": ["prod/a", " "] })));
    assert!(err.contains("`secret_ids` has an empty entry"), "{err}");
    let err = refused(&lockdown(json!({ "log_groups": ["/a\n/b"] })));
    assert!(err.contains("`log_groups` has `/a\\n/b`"), "{err}");
    let many: Vec<String> = (0..101).map(|n| format!("s{n}")).collect();
    let err = refused(&lockdown(json!({ "secret_ids": many })));
    assert!(err.contains("lists 101 targets: at most 100"), "{err}");
    let err = refused(&lockdown(
        json!({ "secret_ids": ["x"], "requested_by": "" }),
    ));
    assert!(err.contains("`requested_by` is empty"), "{err}");
}

#[test]
fn every_target_is_one_planned_step_and_the_plan_says_what_a_release_keeps() {
    let v: Value =
        serde_json::from_slice(&std::fs::read(events_dir().join("command-lockdown.json")).unwrap())
            .unwrap();
    let p = planned(&v);
    assert_eq!(p.incident.incident_type, "COMMAND:LOCKDOWN");
    assert_eq!(p.incident.severity, Severity::Critical);
    assert_eq!(
        steps(&p),
        vec![
            ("scale_service_to_zero", "prod/web-api", PlanStatus::Planned),
            ("serve_maintenance_response", LISTENER, PlanStatus::Planned),
            ("rotate_secret", "prod/admin-password", PlanStatus::Planned),
            (
                "increase_monitoring",
                "/prod/auth-service",
                PlanStatus::Planned
            ),
            (
                "copy_evidence",
                "acme-app-uploads/users/",
                PlanStatus::Planned
            ),
            (
                "record_incident",
                p.incident.id.as_str(),
                PlanStatus::Planned
            ),
            ("notify_team", "team", PlanStatus::Planned),
            ("notify_stakeholders", "stakeholders", PlanStatus::Planned),
        ]
    );
    let reason = |k: ActionKind| {
        p.actions
            .iter()
            .find(|a| a.kind == k)
            .unwrap()
            .reason
            .clone()
    };
    assert!(reason(ActionKind::ServeMaintenanceResponse)
        .contains("the listener's other rules stay as they are"));
    assert!(reason(ActionKind::RotateSecret).contains("a release does not undo it"));
    assert!(reason(ActionKind::CopyEvidence).contains("the copies are kept on release"));
    assert!(reason(ActionKind::CopyEvidence).contains("at most 1000 objects, 1 GiB"));
    let monitoring = p
        .actions
        .iter()
        .find(|a| a.kind == ActionKind::IncreaseMonitoring)
        .unwrap();
    assert_eq!(monitoring.params.retention_days, Some(365));
}

#[test]
fn targets_of_the_wrong_shape_or_place_are_skipped_with_the_reason() {
    let elsewhere = LISTENER.replace("111122223333", "444455556666");
    let other_region = LISTENER.replace("eu-west-1", "us-east-1");
    let nlb = LISTENER.replace("/app/", "/net/");
    let p = planned(&lockdown(json!({
        "ecs_services": [
            { "cluster": "arn:aws:ecs:eu-west-1:111122223333:cluster/prod",
              "service": "arn:aws:ecs:eu-west-1:111122223333:service/prod/web-api" },
            { "cluster": "prod", "service": "web-api" },
            { "cluster": "prod", "service": "web api" }
        ],
        "listener_arns": [LISTENER, elsewhere, other_region, nlb, "not-an-arn"],
        "secret_ids": ["arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/x-AbCdEf"],
        "log_groups": ["/prod/auth service"],
        "evidence": [{ "bucket": "Bad_Bucket" }],
    })));
    let lockdown: Vec<_> = steps(&p)
        .into_iter()
        .filter(|(k, _, _)| !["record_incident", "notify_team", "notify_stakeholders"].contains(k))
        .collect();
    use PlanStatus::{Planned, Skipped};
    assert_eq!(
        lockdown,
        vec![
            // The ARNs name the same service as the names: planned once.
            ("scale_service_to_zero", "prod/web-api", Planned),
            ("scale_service_to_zero", "prod/web api", Skipped),
            ("serve_maintenance_response", LISTENER, Planned),
            ("serve_maintenance_response", elsewhere.as_str(), Skipped),
            ("serve_maintenance_response", other_region.as_str(), Skipped),
            ("serve_maintenance_response", nlb.as_str(), Skipped),
            ("serve_maintenance_response", "not-an-arn", Skipped),
            (
                "rotate_secret",
                "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/x-AbCdEf",
                Skipped
            ),
            ("increase_monitoring", "/prod/auth service", Skipped),
            ("copy_evidence", "Bad_Bucket/", Skipped),
        ]
    );
    let reasons: Vec<&str> = p
        .actions
        .iter()
        .filter(|a| a.status == Skipped)
        .map(|a| a.reason.as_str())
        .collect();
    for needle in [
        "is not an ECS service name",
        "it is in account 444455556666; the lockdown acts in 111122223333",
        "it is in region us-east-1; the lockdown acts in eu-west-1",
        "only an Application Load Balancer answers with a fixed response",
        "is not a load balancer listener ARN",
        "is not a log group name",
        "is not an S3 bucket name",
    ] {
        assert!(
            reasons.iter().any(|r| r.contains(needle)),
            "{needle}: {reasons:#?}"
        );
    }
}

#[test]
fn a_dry_run_plans_every_step_and_the_evidence_bucket_is_named_when_known() {
    let vars: BTreeMap<String, String> = [
        ("FIREBREAK_DRY_RUN", "true"),
        ("FIREBREAK_RECORDS_BUCKET", "acme-firebreak-records"),
        ("FIREBREAK_EVIDENCE_MAX_OBJECTS", "50"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let cfg = Config::load(&vars, None).unwrap();
    let v = lockdown(json!({ "evidence": [{ "bucket": "acme-app-uploads", "prefix": "users/" }] }));
    let p = plan_event(v.to_string().as_bytes(), &cfg)
        .unwrap()
        .incidents
        .remove(0);
    assert!(p.dry_run);
    let copy = &p.actions[0];
    assert_eq!(copy.status, PlanStatus::Planned);
    assert!(
        copy.reason.contains(&format!(
            "into s3://acme-firebreak-records/evidence/{}/acme-app-uploads/ (at most 50 objects",
            p.incident.id
        )),
        "{}",
        copy.reason
    );
}

/// Only a responder's command takes a service down: no sample event, of
/// any source or severity, plans a lockdown action.
#[test]
fn nothing_but_the_command_plans_a_lockdown() {
    let cfg = cfg();
    let mut seen = 0;
    for entry in std::fs::read_dir(events_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with(".json") || name == "command-lockdown.json" {
            continue;
        }
        for p in plan_event(&std::fs::read(&path).unwrap(), &cfg)
            .unwrap()
            .incidents
        {
            seen += 1;
            let planned: Vec<&str> = p
                .actions
                .iter()
                .filter(|a| LOCKDOWN_KINDS.contains(&a.kind))
                .map(|a| a.kind.as_str())
                .collect();
            assert!(planned.is_empty(), "{name}: {planned:?}");
        }
    }
    assert!(seen >= 30, "{seen}");
}
