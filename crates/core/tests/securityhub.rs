//! Security Hub findings (issue 21): a GuardDuty finding that Security Hub
//! delivers is the same incident, with the same plan, as the finding
//! GuardDuty sends itself; other products' findings are recorded and
//! notified, and contained only when a responder asks, and then only by
//! isolating an instance they name.
//!
//! The pairs are real-shaped sample events: `events/guardduty-<name>.json`
//! (GuardDuty's own EventBridge event) and
//! `events/securityhub-guardduty-<name>-imported.json` (the ASFF copy
//! GuardDuty publishes to Security Hub for that same finding).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use firebreak_core::{
    plan_event, ActionKind, Config, CustomAction, PlanSet, PlanStatus, PlannedIncident, Severity,
    Source,
};
use serde_json::{json, Value};

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

fn policy() -> Config {
    let path = events_dir().join("policy.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    Config::load(&BTreeMap::new(), Some((path.to_str().unwrap(), &text))).unwrap()
}

fn event(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(events_dir().join(name)).unwrap()).unwrap()
}

fn plan(v: &Value) -> PlanSet {
    plan_event(v.to_string().as_bytes(), &policy()).unwrap_or_else(|e| panic!("{e}"))
}

fn only(p: &PlanSet) -> &PlannedIncident {
    assert_eq!(p.incidents.len(), 1, "{p:#?}");
    &p.incidents[0]
}

/// The finding inside a Security Hub event.
fn finding(v: &mut Value) -> &mut Value {
    &mut v["detail"]["findings"][0]
}

fn planned_changes(p: &PlannedIncident) -> Vec<(ActionKind, String)> {
    p.actions
        .iter()
        .filter(|a| a.kind.is_containment() && a.status == PlanStatus::Planned)
        .map(|a| (a.kind, a.target.clone()))
        .collect()
}

/// What must be equal between the two paths: the incident's identity, its
/// class and subjects (but for what ASFF does not carry: the instance's
/// security groups and interface ids), the date the record is filed under,
/// and every action with its target, status, reason and parameters.
fn assert_same_incident(native: &PlannedIncident, via_hub: &PlannedIncident, name: &str) {
    let (n, h) = (&native.incident, &via_hub.incident);
    assert_eq!(n.id, h.id, "{name}: incident id");
    assert_eq!(n.key, h.key, "{name}: incident key");
    assert_eq!(n.source, h.source, "{name}: source");
    assert_eq!(n.incident_type, h.incident_type, "{name}: type");
    assert_eq!(n.severity, h.severity, "{name}: severity");
    assert_eq!(
        (&n.account, &n.region, n.sample, &n.observed_at),
        (&h.account, &h.region, h.sample, &h.observed_at),
        "{name}: account, region, sample, observed_at"
    );
    assert_eq!(
        n.subjects.addresses, h.subjects.addresses,
        "{name}: addresses"
    );
    assert_eq!(n.subjects.access_key, h.subjects.access_key, "{name}: key");
    assert_eq!(n.subjects.role, h.subjects.role, "{name}: role");
    let instance = |i: &firebreak_core::Incident| {
        i.subjects.instance.as_ref().map(|x| {
            (
                x.id.clone(),
                x.subnets.clone(),
                x.vpcs.clone(),
                x.tags.clone(),
            )
        })
    };
    assert_eq!(instance(n), instance(h), "{name}: instance");
    // The record is filed under the first sighting: the same date.
    assert_eq!(
        n.evidence.first_seen, h.evidence.first_seen,
        "{name}: first seen"
    );
    assert_eq!(
        (
            &n.evidence.finding_id,
            &n.evidence.finding_arn,
            n.evidence.finding_severity,
            &n.evidence.resource_role,
            n.evidence.count,
            &n.evidence.action_type,
        ),
        (
            &h.evidence.finding_id,
            &h.evidence.finding_arn,
            h.evidence.finding_severity,
            &h.evidence.resource_role,
            h.evidence.count,
            &h.evidence.action_type,
        ),
        "{name}: GuardDuty's evidence"
    );
    assert_eq!(native.actions, via_hub.actions, "{name}: actions");
}

const PAIRS: [&str; 6] = [
    "ssh-brute-force",
    "leaked-key",
    "port-probe-many",
    "c2-outbound",
    "temporary-credentials",
    "sample-finding",
];

#[test]
fn a_guardduty_finding_through_security_hub_plans_exactly_as_the_native_one() {
    for name in PAIRS {
        let native = plan(&event(&format!("guardduty-{name}.json")));
        let via_hub = plan(&event(&format!(
            "securityhub-guardduty-{name}-imported.json"
        )));
        assert_same_incident(only(&native), only(&via_hub), name);
        let e = &only(&via_hub).incident.evidence;
        assert_eq!(
            e.securityhub_product_arn.as_deref(),
            Some("arn:aws:securityhub:eu-west-1::product/aws/guardduty")
        );
        assert_eq!(
            e.securityhub_finding_id,
            only(&native).incident.evidence.finding_arn
        );
        assert_eq!(e.securityhub_custom_action, None);
    }
    // The pairs cover what the issue asks for: an inbound attacker and an
    // instance, a leaked key, several probing addresses, an outbound one.
    let kinds = |name: &str| {
        planned_changes(only(&plan(&event(&format!("guardduty-{name}.json")))))
            .into_iter()
            .map(|(k, _)| k)
            .collect::<Vec<_>>()
    };
    assert!(kinds("ssh-brute-force").contains(&ActionKind::BlockIp));
    assert!(kinds("ssh-brute-force").contains(&ActionKind::IsolateInstance));
    assert!(kinds("leaked-key").contains(&ActionKind::DeactivateAccessKey));
    assert!(
        kinds("port-probe-many")
            .iter()
            .filter(|k| **k == ActionKind::BlockIp)
            .count()
            >= 2
    );
    assert!(kinds("c2-outbound").contains(&ActionKind::IsolateInstance));
    assert!(kinds("temporary-credentials").contains(&ActionKind::RevokeRoleSessions));
    assert!(kinds("sample-finding").is_empty());
}

#[test]
fn imported_and_custom_action_deliveries_of_one_finding_are_one_incident() {
    let imported = plan(&event(
        "securityhub-guardduty-ssh-brute-force-imported.json",
    ));
    let custom = plan(&event(
        "securityhub-guardduty-ssh-brute-force-custom-action.json",
    ));
    let (i, c) = (only(&imported), only(&custom));
    assert_eq!(i.incident.id, c.incident.id);
    // `contain` runs the finding's own playbook at its own severity.
    assert_eq!(i.actions, c.actions);
    assert_eq!(i.incident.severity, c.incident.severity);
    assert_eq!(c.incident.requested, Some(CustomAction::Contain));
    assert_eq!(
        c.incident.evidence.securityhub_custom_action.as_deref(),
        Some("firebreak-contain")
    );
    assert_eq!(i.incident.requested, None);
}

#[test]
fn a_record_custom_action_changes_nothing() {
    let native = plan(&event("guardduty-leaked-key.json"));
    let record = plan(&event(
        "securityhub-guardduty-leaked-key-custom-record.json",
    ));
    let r = only(&record);
    assert_eq!(only(&native).incident.id, r.incident.id);
    assert_eq!(r.incident.requested, Some(CustomAction::Record));
    assert!(planned_changes(r).is_empty(), "{:#?}", r.actions);
    let held: Vec<_> = r
        .actions
        .iter()
        .filter(|a| a.kind.is_containment())
        .collect();
    assert!(!held.is_empty());
    for a in held {
        assert!(
            a.reason.contains("custom action `firebreak-record`"),
            "{}",
            a.reason
        );
    }
    let kinds: Vec<ActionKind> = r.actions.iter().map(|a| a.kind).collect();
    assert!(kinds.contains(&ActionKind::RecordIncident) && kinds.contains(&ActionKind::NotifyTeam));
}

#[test]
fn a_quarantine_custom_action_locks_out_the_findings_user_and_nothing_else() {
    let native = plan(&event("guardduty-leaked-key.json"));
    let q = plan(&event(
        "securityhub-guardduty-leaked-key-custom-quarantine.json",
    ));
    let q = only(&q);
    assert_eq!(
        only(&native).incident.id,
        q.incident.id,
        "the same incident"
    );
    assert_eq!(q.incident.requested, Some(CustomAction::Quarantine));
    assert_eq!(
        planned_changes(q),
        vec![(ActionKind::QuarantineUser, "ci-deployer".to_string())],
        "{:#?}",
        q.actions
    );
    // Another product's finding naming a user (no key): the same, whatever
    // its severity; naming none: skipped, saying so.
    let mut v = event("securityhub-inspector-vulnerability-custom-action.json");
    v["detail"]["actionName"] = "firebreak-quarantine".into();
    finding(&mut v)["Severity"] = json!({"Label": "LOW", "Normalized": 10});
    let without = plan(&v);
    let skipped = &only(&without).actions[0];
    assert_eq!(
        (skipped.kind, skipped.status),
        (ActionKind::QuarantineUser, PlanStatus::Skipped)
    );
    assert!(skipped.reason.contains("names no IAM user"), "{skipped:?}");
    finding(&mut v)["Resources"]
        .as_array_mut()
        .unwrap()
        .push(json!({
            "Type": "AwsIamUser",
            "Id": "arn:aws:iam::111122223333:user/contractors/contractor-jane"
        }));
    let with = plan(&v);
    assert_eq!(
        planned_changes(only(&with)),
        vec![(ActionKind::QuarantineUser, "contractor-jane".to_string())]
    );
    // An assumed role's key names a role, not a user: nothing to lock out.
    let mut v = event("securityhub-guardduty-temporary-credentials-imported.json");
    v["detail-type"] = "Security Hub Findings - Custom Action".into();
    v["detail"]["actionName"] = "firebreak-quarantine".into();
    let role = plan(&v);
    assert!(planned_changes(only(&role)).is_empty());
}

#[test]
fn another_products_finding_is_recorded_and_contained_only_on_request() {
    let imported = plan(&event("securityhub-inspector-vulnerability-imported.json"));
    let i = only(&imported);
    assert_eq!(i.incident.source, Source::SecurityHub);
    assert_eq!(
        i.incident.key,
        "securityhub:arn:aws:securityhub:eu-west-1::product/aws/inspector:arn:aws:inspector2:eu-west-1:111122223333:finding/7d3c1a9e5b2f48c6a0e4d8b1f3c5a7e9"
    );
    assert_eq!(
        i.incident.incident_type,
        "Software and Configuration Checks/Vulnerabilities/CVE"
    );
    assert_eq!(i.incident.severity, Severity::High);
    assert!(planned_changes(i).is_empty(), "{:#?}", i.actions);
    assert!(i
        .actions
        .iter()
        .any(|a| a.kind == ActionKind::IsolateInstance
            && a.reason.contains("only when a responder asks")));
    assert!(i
        .actions
        .iter()
        .any(|a| a.kind == ActionKind::NotifyStakeholders));

    let asked = plan(&event(
        "securityhub-inspector-vulnerability-custom-action.json",
    ));
    let a = only(&asked);
    assert_eq!(a.incident.id, i.incident.id);
    assert_eq!(
        planned_changes(a),
        vec![
            (
                ActionKind::IsolateInstance,
                "i-0abc123def4567890".to_string()
            ),
            (
                ActionKind::SnapshotVolumes,
                "i-0abc123def4567890".to_string()
            ),
        ]
    );
}

#[test]
fn contain_on_another_products_finding_never_blocks_or_touches_credentials() {
    let mut v = event("securityhub-inspector-vulnerability-custom-action.json");
    let f = finding(&mut v);
    f["Severity"] = json!({"Label": "CRITICAL", "Normalized": 90});
    f["Network"] = json!({"Direction": "IN", "SourceIpV4": "198.51.100.50", "DestinationIpV4": "54.216.10.20"});
    f["Resources"].as_array_mut().unwrap().push(json!({
        "Type": "AwsIamAccessKey",
        "Id": "AWS::IAM::AccessKey:AKIAIOSFODNN7EXAMPLE",
        "Details": {"AwsIamAccessKey": {"PrincipalName": "ci-deployer", "PrincipalType": "IAMUser"}}
    }));
    let p = plan(&v);
    let p = only(&p);
    assert_eq!(p.incident.severity, Severity::Critical);
    // Only the remote side of the connection is an address of the incident.
    let ips: Vec<String> = p
        .incident
        .subjects
        .addresses
        .iter()
        .map(|a| a.ip.to_string())
        .collect();
    assert_eq!(ips, vec!["198.51.100.50"]);
    assert_eq!(
        planned_changes(p)
            .into_iter()
            .map(|(k, _)| k)
            .collect::<Vec<_>>(),
        vec![ActionKind::IsolateInstance, ActionKind::SnapshotVolumes]
    );
    for a in p.actions.iter().filter(|a| {
        matches!(
            a.kind,
            ActionKind::BlockIp | ActionKind::DeactivateAccessKey
        )
    }) {
        assert_eq!(a.status, PlanStatus::Skipped);
        assert!(
            a.reason.contains("only by isolating an instance"),
            "{}",
            a.reason
        );
    }
}

#[test]
fn a_security_hub_event_inside_sns_is_the_same_incident() {
    let direct = plan(&event("securityhub-guardduty-leaked-key-imported.json"));
    let wrap = |message: &Value| {
        json!({"Records": [{
            "EventVersion": "1.0",
            "EventSubscriptionArn": "arn:aws:sns:eu-west-1:111122223333:firebreak-findings:6b0e71bd-7e93-4d6c-9b5b-0123456789ab",
            "EventSource": "aws:sns",
            "Sns": {
                "SignatureVersion": "1",
                "Timestamp": "2026-11-20T03:14:53.000Z",
                "Signature": "EXAMPLE",
                "SigningCertUrl": "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem",
                "MessageId": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
                "Message": message.to_string(),
                "MessageAttributes": {},
                "Type": "Notification",
                "UnsubscribeUrl": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe",
                "TopicArn": "arn:aws:sns:eu-west-1:111122223333:firebreak-findings",
                "Subject": null
            }
        }]})
    };
    let via_sns = plan(&wrap(&event(
        "securityhub-guardduty-leaked-key-imported.json",
    )));
    assert_eq!(only(&direct).incident.id, only(&via_sns).incident.id);
    assert_eq!(only(&direct).actions, only(&via_sns).actions);
    assert!(only(&via_sns).incident.evidence.sns_message_id.is_some());
    // A refusal inside SNS names the record and the path.
    let mut bad = event("securityhub-guardduty-leaked-key-imported.json");
    finding(&mut bad)["Severity"]["Label"] = "SEVERE".into();
    let err = plan_event(wrap(&bad).to_string().as_bytes(), &policy())
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("SNS record 0: Security Hub finding: at `detail.findings[0].Severity.Label`: unknown variant `SEVERE`"),
        "{err}"
    );
}

#[test]
fn several_findings_in_one_event_are_one_incident_each() {
    let mut v = event("securityhub-guardduty-ssh-brute-force-imported.json");
    let ssh = finding(&mut v).clone();
    let key =
        event("securityhub-guardduty-leaked-key-imported.json")["detail"]["findings"][0].clone();
    v["detail"]["findings"] = json!([ssh, key, ssh]);
    let p = plan(&v);
    assert_eq!(p.incidents.len(), 2);
    assert_eq!(
        p.incidents[0].incident.id,
        only(&plan(&event("guardduty-ssh-brute-force.json")))
            .incident
            .id
    );
    assert_eq!(
        p.incidents[1].incident.id,
        only(&plan(&event("guardduty-leaked-key.json"))).incident.id
    );
    assert_eq!(p.ignored.len(), 1);
    assert_eq!(p.ignored[0].finding, Some(2));
    assert!(
        p.ignored[0].reason.contains("the same signal as finding 0"),
        "{}",
        p.ignored[0].reason
    );
}

#[test]
fn a_closed_finding_is_set_aside_unless_a_responder_asks() {
    for (field, value) in [
        ("Workflow", json!({"Status": "SUPPRESSED"})),
        ("Workflow", json!({"Status": "RESOLVED"})),
        ("RecordState", json!("ARCHIVED")),
    ] {
        let mut v = event("securityhub-guardduty-ssh-brute-force-imported.json");
        finding(&mut v)[field] = value.clone();
        let p = plan(&v);
        assert!(p.incidents.is_empty(), "{field}={value}");
        assert_eq!(p.ignored[0].finding, Some(0));
        assert!(
            p.ignored[0].reason.contains("closed"),
            "{}",
            p.ignored[0].reason
        );
        // The same finding sent by a responder's custom action is read.
        let mut c = event("securityhub-guardduty-ssh-brute-force-custom-action.json");
        finding(&mut c)[field] = value;
        assert_eq!(plan(&c).incidents.len(), 1);
    }
    // Firebreak's own write-back (NOTIFIED) is not a closed finding.
    let mut v = event("securityhub-guardduty-ssh-brute-force-imported.json");
    finding(&mut v)["Workflow"] = json!({"Status": "NOTIFIED"});
    assert_eq!(plan(&v).incidents.len(), 1);
}

#[test]
fn samples_and_placeholders_through_security_hub_change_nothing() {
    // Security Hub's own `Sample` flag alone is enough.
    let mut v = event("securityhub-guardduty-ssh-brute-force-imported.json");
    finding(&mut v)["Sample"] = true.into();
    let p = plan(&v);
    assert!(only(&p).incident.sample);
    assert!(planned_changes(only(&p)).is_empty());
    // As is GuardDuty's, in ProductFields.
    let mut v = event("securityhub-guardduty-ssh-brute-force-imported.json");
    finding(&mut v)["ProductFields"]["aws/guardduty/service/additionalInfo/sample"] = "true".into();
    assert!(planned_changes(only(&plan(&v))).is_empty());
    // A placeholder identifier holds everything, as on the native path.
    let mut v = event("securityhub-guardduty-leaked-key-imported.json");
    finding(&mut v)["Resources"][0]["Id"] =
        "AWS::IAM::AccessKey:GeneratedFindingAccessKeyId".into();
    let p = plan(&v);
    assert!(planned_changes(only(&p)).is_empty());
    assert!(only(&p)
        .actions
        .iter()
        .any(|a| a.reason.contains("placeholder identifier")));
    // Another product's sample is held in its own words.
    let mut v = event("securityhub-inspector-vulnerability-custom-action.json");
    finding(&mut v)["Sample"] = true.into();
    let p = plan(&v);
    assert!(planned_changes(only(&p)).is_empty());
    assert!(only(&p)
        .actions
        .iter()
        .any(|a| a.reason.starts_with("Security Hub sample finding")));
}

#[test]
fn custom_action_names_come_from_the_configuration() {
    let vars: BTreeMap<String, String> = [(
        "FIREBREAK_SECURITYHUB_ACTIONS".to_string(),
        "Isolate now=contain".to_string(),
    )]
    .into();
    let cfg = Config::load(&vars, None).unwrap();
    let mut v = event("securityhub-guardduty-ssh-brute-force-custom-action.json");
    let err = plan_event(v.to_string().as_bytes(), &cfg)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`detail.actionName` is `firebreak-contain`: expected one of Isolate now (FIREBREAK_SECURITYHUB_ACTIONS)"),
        "{err}"
    );
    v["detail"]["actionName"] = "Isolate now".into();
    let p = plan_event(v.to_string().as_bytes(), &cfg).unwrap();
    assert_eq!(
        p.incidents[0].incident.requested,
        Some(CustomAction::Contain)
    );
    // Imported findings need no custom action at all.
    let none: BTreeMap<String, String> =
        [("FIREBREAK_SECURITYHUB_ACTIONS".to_string(), String::new())].into();
    let cfg = Config::load(&none, None).unwrap();
    let imported = event("securityhub-guardduty-ssh-brute-force-imported.json");
    assert!(plan_event(imported.to_string().as_bytes(), &cfg).is_ok());
    let err = plan_event(v.to_string().as_bytes(), &cfg)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no custom action is configured"), "{err}");
}

#[test]
fn guardduty_keeps_its_own_score_over_security_hubs_label() {
    let native = plan(&event("guardduty-ssh-brute-force.json"));
    let mut v = event("securityhub-guardduty-ssh-brute-force-imported.json");
    finding(&mut v)["Severity"]["Label"] = "CRITICAL".into();
    finding(&mut v)["Severity"]["Normalized"] = 95.into();
    assert_same_incident(
        only(&native),
        only(&plan(&v)),
        "label changed by automation",
    );
    // FindingProviderFields keeps GuardDuty's value when Severity was
    // rewritten with BatchUpdateFindings.
    finding(&mut v)["Severity"] = json!({"Label": "CRITICAL", "Product": 9.5});
    finding(&mut v)["FindingProviderFields"]["Severity"] = json!({"Label": "LOW", "Original": "2"});
    assert_same_incident(only(&native), only(&plan(&v)), "severity rewritten");
    // Without any score the label decides, and the evidence says so.
    finding(&mut v)["Severity"] = json!({"Label": "HIGH"});
    finding(&mut v)["FindingProviderFields"] = json!({});
    let p = plan(&v);
    let i = &only(&p).incident;
    assert_eq!(i.severity, Severity::High);
    assert_eq!(i.evidence.finding_severity, None);
    assert!(i
        .evidence
        .notes
        .iter()
        .any(|n| n.contains("its label decided")));
}

#[test]
fn early_product_fields_without_the_service_prefix_read_the_same() {
    // GuardDuty's first findings in Security Hub had `count`,
    // `resourceRole`, `action/…` keys and `name:n` array items.
    for name in ["ssh-brute-force", "port-probe-many"] {
        let native = plan(&event(&format!("guardduty-{name}.json")));
        let mut v = event(&format!("securityhub-guardduty-{name}-imported.json"));
        let f = finding(&mut v);
        f.as_object_mut().unwrap().remove("Action");
        let fields: serde_json::Map<String, Value> = f["ProductFields"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, val)| {
                let k = k.strip_prefix("aws/guardduty/service/").unwrap_or(k);
                let k = regex_free_item(k);
                (k, val.clone())
            })
            .collect();
        f["ProductFields"] = Value::Object(fields);
        assert_same_incident(only(&native), only(&plan(&v)), name);
    }
}

/// `portProbeDetails.3_/` → `portProbeDetails:3/`.
fn regex_free_item(k: &str) -> String {
    let Some(at) = k.find("portProbeDetails.") else {
        return k.to_string();
    };
    let (head, rest) = k.split_at(at + "portProbeDetails".len());
    let rest = &rest[1..];
    let (n, tail) = rest.split_once("_/").unwrap();
    format!("{head}:{n}/{tail}")
}

#[test]
fn probes_keep_guardduty_order_past_ten_items() {
    let mut v = event("securityhub-guardduty-port-probe-many-imported.json");
    let f = finding(&mut v);
    f.as_object_mut().unwrap().remove("Action");
    let pf = f["ProductFields"].as_object_mut().unwrap();
    pf.retain(|k, _| !k.contains("portProbeDetails"));
    for n in 0..12 {
        pf.insert(
            format!("aws/guardduty/service/action/portProbeAction/portProbeDetails.{n}_/remoteIpDetails/ipAddressV4"),
            format!("198.51.100.{}", 100 + n).into(),
        );
    }
    let p = plan(&v);
    let ips: Vec<String> = only(&p)
        .incident
        .subjects
        .addresses
        .iter()
        .map(|a| a.ip.to_string())
        .collect();
    let want: Vec<String> = (0..12).map(|n| format!("198.51.100.{}", 100 + n)).collect();
    assert_eq!(ips, want);
}

#[test]
fn a_finding_that_only_claims_to_be_guardduty_is_another_products() {
    let mut v = event("securityhub-guardduty-ssh-brute-force-imported.json");
    finding(&mut v)["ProductArn"] =
        "arn:aws:securityhub:eu-west-1:111122223333:product/111122223333/default".into();
    let p = plan(&v);
    let i = only(&p);
    assert_eq!(i.incident.source, Source::SecurityHub);
    assert!(planned_changes(i).is_empty(), "{:#?}", i.actions);
    assert!(i
        .incident
        .evidence
        .notes
        .iter()
        .any(|n| n.contains("ProductName says GuardDuty")));
}

#[test]
fn a_severity_rule_can_name_the_securityhub_source() {
    let text = std::fs::read_to_string(events_dir().join("policy.toml")).unwrap()
        + "\n[[severity.rules]]\nsource = \"securityhub\"\nfinding_type = \"Software and Configuration Checks/Vulnerabilities/*\"\nlower = 1\n";
    let cfg = Config::load(&BTreeMap::new(), Some(("policy.toml", &text))).unwrap();
    let v = event("securityhub-inspector-vulnerability-imported.json");
    let p = plan_event(v.to_string().as_bytes(), &cfg).unwrap();
    assert_eq!(p.incidents[0].incident.severity, Severity::Medium);
    // GuardDuty's findings through Security Hub stay `guardduty`.
    let v = event("securityhub-guardduty-ssh-brute-force-imported.json");
    let p = plan_event(v.to_string().as_bytes(), &cfg).unwrap();
    assert_eq!(p.incidents[0].incident.severity, Severity::High);
}

#[test]
fn attacker_text_in_a_security_hub_finding_is_escaped_and_capped() {
    let mut v = event("securityhub-guardduty-ssh-brute-force-custom-action.json");
    finding(&mut v)["Title"] = "A\u{1b}[2J\n".repeat(5_000).into();
    finding(&mut v)["Types"] = json!(["TTPs/x\u{202e}:y-z"]);
    let p = plan(&v);
    let i = &only(&p).incident;
    let title = i.evidence.title.clone().unwrap();
    assert!(
        !title.contains('\u{1b}') && !title.contains('\n'),
        "{title}"
    );
    assert!(title.chars().count() <= 513, "{}", title.len());
    assert!(
        !i.incident_type.contains('\u{202e}') && i.incident_type.contains("\\u{202e}"),
        "{}",
        i.incident_type
    );
}

/// `events/policy.toml` with the Security Hub write-back on or off.
fn policy_writing_back(on: bool) -> Config {
    let mut cfg = policy();
    cfg.securityhub_writeback = on;
    cfg
}

fn plan_with(v: &Value, cfg: &Config) -> PlanSet {
    plan_event(v.to_string().as_bytes(), cfg).unwrap_or_else(|e| panic!("{e}"))
}

fn write_backs(p: &PlannedIncident) -> Vec<&firebreak_core::Action> {
    p.actions
        .iter()
        .filter(|a| a.kind == ActionKind::UpdateFinding)
        .collect()
}

#[test]
fn the_write_back_is_planned_alike_for_both_deliveries_of_a_guardduty_finding() {
    for on in [false, true] {
        let cfg = policy_writing_back(on);
        for name in PAIRS {
            let native = plan_with(&event(&format!("guardduty-{name}.json")), &cfg);
            let via_hub = plan_with(
                &event(&format!("securityhub-guardduty-{name}-imported.json")),
                &cfg,
            );
            let (n, h) = (only(&native), only(&via_hub));
            // The same incident with the same plan, write-back included.
            assert_same_incident(n, h, name);
            let w = write_backs(n);
            if !on {
                assert!(w.is_empty(), "{name}: off by default: {w:?}");
                continue;
            }
            assert_eq!(w.len(), 1, "{name}: {:#?}", n.actions);
            let w = w[0];
            // GuardDuty's copy in Security Hub: Id is the finding ARN.
            assert_eq!(Some(&w.target), n.incident.evidence.finding_arn.as_ref());
            assert_eq!(
                w.params.product_arn.as_deref(),
                Some("arn:aws:securityhub:eu-west-1::product/aws/guardduty"),
                "{name}"
            );
            assert_eq!(w.status, PlanStatus::Planned, "{name}: {}", w.reason);
            assert!(!w.kind.is_containment());
            // Last, after the record and the notices.
            assert_eq!(
                n.actions.last().map(|a| a.kind),
                Some(ActionKind::UpdateFinding)
            );
        }
    }
}

#[test]
fn a_sample_or_a_record_only_request_still_writes_back_what_was_done() {
    // Bookkeeping is never held: the finding is told that nothing changed.
    let cfg = policy_writing_back(true);
    for name in [
        "securityhub-guardduty-sample-finding-imported.json",
        "securityhub-guardduty-leaked-key-custom-record.json",
    ] {
        let p = plan_with(&event(name), &cfg);
        let w = write_backs(only(&p));
        assert_eq!(w.len(), 1, "{name}");
        assert_eq!(w[0].status, PlanStatus::Planned, "{name}");
        assert!(planned_changes(only(&p)).is_empty(), "{name}");
    }
}

#[test]
fn another_products_finding_is_written_back_under_its_own_id_and_product() {
    let cfg = policy_writing_back(true);
    let v = event("securityhub-inspector-vulnerability-imported.json");
    let p = plan_with(&v, &cfg);
    let w = write_backs(only(&p));
    assert_eq!(w.len(), 1);
    assert_eq!(
        w[0].target,
        v["detail"]["findings"][0]["Id"].as_str().unwrap()
    );
    assert_eq!(
        w[0].params.product_arn.as_deref(),
        v["detail"]["findings"][0]["ProductArn"].as_str()
    );
}

#[test]
fn signals_that_name_no_finding_plan_no_write_back() {
    let cfg = policy_writing_back(true);
    for name in [
        "alarm-failed-login.json",
        "manual-unauthorized-access.json",
        "command-block-ip.json",
        "command-release.json",
    ] {
        let p = plan_with(&event(name), &cfg);
        for i in &p.incidents {
            assert!(write_backs(i).is_empty(), "{name}: {:#?}", i.actions);
        }
    }
    // A GuardDuty finding without its ARN (the console's bare export may
    // lack it) names no finding Security Hub could find.
    let mut v = event("guardduty-leaked-key.json");
    v["detail"].as_object_mut().unwrap().remove("arn");
    assert!(write_backs(only(&plan_with(&v, &cfg))).is_empty());
}
