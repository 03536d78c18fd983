//! The adapter against a real local AWS (moto over HTTP), asserting the
//! account's state afterwards through the SDK.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_iam::types::StatusType;
use firebreak_aws::outcome::Status;
use firebreak_aws::Executor;
use firebreak_core::{plan_event, ActionKind, Config};
use serde_json::Value;
use support::account::{account, action, event, notices, objects, run_one, status_of, Account};
use support::{filter, Emulator};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaked_key_only_the_named_key_goes_inactive_once() {
    let emu = Emulator::start();
    let acct = account(&emu, "records-leaked-key").await;
    let iam = &acct.clients.iam;
    let keys = support::user_with_keys(iam, "ci-deployer", 2).await;
    let (k1, k2) = (keys[0].as_str(), keys[1].as_str());

    let mut ev = event("guardduty-leaked-key.json");
    ev["detail"]["resource"]["accessKeyDetails"]["accessKeyId"] = k1.into();
    let bytes = ev.to_string();
    let plan = plan_event(bytes.as_bytes(), &acct.cfg).unwrap();
    let exec = Executor::connect(acct.clients.clone(), acct.cfg.clone())
        .await
        .unwrap();

    let first = exec.run(&plan.incidents[0]).await;
    assert_eq!(
        status_of(&first, ActionKind::DeactivateAccessKey),
        Status::Done,
        "{first:#?}"
    );
    assert_eq!(status_of(&first, ActionKind::RecordIncident), Status::Done);
    assert_eq!(status_of(&first, ActionKind::NotifyTeam), Status::Done);
    assert!(first.failed().is_empty(), "{first:#?}");

    let keys = iam
        .list_access_keys()
        .user_name("ci-deployer")
        .send()
        .await
        .unwrap();
    let status = |id: &str| {
        keys.access_key_metadata()
            .iter()
            .find(|k| k.access_key_id() == Some(id))
            .unwrap()
            .status()
            .cloned()
    };
    assert_eq!(status(k1), Some(StatusType::Inactive), "the named key");
    assert_eq!(
        status(k2),
        Some(StatusType::Active),
        "the user's other key is untouched"
    );
    let deact = action(&first, ActionKind::DeactivateAccessKey);
    assert_eq!(
        deact.prior_state["status"], "Active",
        "prior state recorded for undo"
    );

    let notes = notices(&acct).await;
    assert_eq!(notes.len(), 1, "one notice to the team");
    assert_eq!(notes[0]["MessageAttributes"]["severity"]["Value"], "HIGH");
    assert_eq!(
        notes[0]["MessageAttributes"]["source"]["Value"],
        "guardduty"
    );
    assert!(notes[0]["Subject"].as_str().unwrap().len() < 100);
    assert!(notes[0]["Message"]
        .as_str()
        .unwrap()
        .contains("\"command\":\"release\""));

    // The same event again: nothing changes, no second record, no second notice.
    let objects_before = objects(&acct, "records-leaked-key").await;
    // Records are encrypted at rest (SSE-S3 unless a KMS key is configured).
    let record_key = objects_before
        .iter()
        .find(|k| k.ends_with("/incident.json"))
        .unwrap();
    let head = acct
        .clients
        .s3
        .head_object()
        .bucket("records-leaked-key")
        .key(record_key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.server_side_encryption(),
        Some(&aws_sdk_s3::types::ServerSideEncryption::Aes256)
    );
    let second = exec.run(&plan.incidents[0]).await;
    assert_eq!(
        status_of(&second, ActionKind::DeactivateAccessKey),
        Status::AlreadyDone
    );
    assert_eq!(
        status_of(&second, ActionKind::RecordIncident),
        Status::AlreadyDone
    );
    assert_eq!(
        status_of(&second, ActionKind::NotifyTeam),
        Status::AlreadyDone
    );
    // A replay writes nothing new but its line in the handling-time index
    // (so "what did Firebreak handle today" lists it).
    let after = objects(&acct, "records-leaked-key").await;
    let handled = |keys: &[String]| keys.iter().filter(|k| k.starts_with("handled/")).count();
    let rest = |keys: &[String]| -> Vec<String> {
        keys.iter()
            .filter(|k| !k.starts_with("handled/"))
            .cloned()
            .collect()
    };
    assert_eq!(
        rest(&after),
        rest(&objects_before),
        "a replay writes nothing new"
    );
    assert_eq!(handled(&objects_before), 1, "{objects_before:#?}");
    assert_eq!(handled(&after), 2, "{after:#?}");
    assert!(
        objects_before
            .iter()
            .filter(|k| k.ends_with("/incident.json"))
            .count()
            == 1
    );
    assert!(
        notices(&acct).await.is_empty(),
        "a replay sends no second notice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_credentials_revoke_the_roles_older_sessions() {
    let emu = Emulator::start();
    let acct = account(&emu, "records-temp-creds").await;
    let iam = &acct.clients.iam;
    support::ec2_role(iam, "app-server-role").await;
    let ev = event("guardduty-temporary-credentials.json");
    let plan = plan_event(ev.to_string().as_bytes(), &acct.cfg).unwrap();
    let exec = Executor::connect(acct.clients.clone(), acct.cfg.clone())
        .await
        .unwrap();
    let report = exec.run(&plan.incidents[0]).await;
    let revoke = action(&report, ActionKind::RevokeRoleSessions);
    assert_eq!(revoke.status, Status::Done, "{report:#?}");
    let policy = iam
        .get_role_policy()
        .role_name("app-server-role")
        .policy_name(firebreak_aws::actions::iam::REVOKE_POLICY_NAME)
        .send()
        .await
        .unwrap();
    // IAM returns the document URL-encoded.
    let doc: Value = serde_json::from_str(&firebreak_aws::actions::iam::decode_policy(
        policy.policy_document(),
    ))
    .unwrap();
    let statement = &doc["Statement"][0];
    assert_eq!(statement["Effect"], "Deny");
    assert_eq!(statement["Action"], "*");
    assert!(
        statement["Condition"]["DateLessThan"]["aws:TokenIssueTime"].is_string(),
        "{doc}"
    );
    let again = exec.run(&plan.incidents[0]).await;
    assert_eq!(
        status_of(&again, ActionKind::RevokeRoleSessions),
        Status::AlreadyDone
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sample_finding_changes_nothing_but_is_recorded() {
    let emu = Emulator::start();
    let acct = account(&emu, "records-sample").await;
    let plan = plan_event(
        event("guardduty-sample-finding.json")
            .to_string()
            .as_bytes(),
        &acct.cfg,
    )
    .unwrap();
    let report = Executor::connect(acct.clients.clone(), acct.cfg.clone())
        .await
        .unwrap()
        .run(&plan.incidents[0])
        .await;
    for a in &report.actions {
        if a.kind.is_containment() {
            assert_eq!(a.status, Status::Skipped, "{a:?}");
            assert!(a.calls.is_empty());
        }
    }
    let keys = objects(&acct, "records-sample").await;
    assert!(
        keys.iter().any(|k| k.ends_with("/incident.json")),
        "{keys:?}"
    );
    assert_eq!(notices(&acct).await.len(), 1);
}

/// The brute-force sample aimed at a new VPC's subnet: (event, its NACL).
async fn brute_force_on_new_subnet(acct: &Account) -> (Value, String) {
    let (vpc, subnet, nacl) = support::vpc_with_subnet(&acct.clients.ec2).await;
    let mut ev = event("guardduty-ssh-brute-force.json");
    let eni = &mut ev["detail"]["resource"]["instanceDetails"]["networkInterfaces"][0];
    eni["subnetId"] = subnet.into();
    eni["vpcId"] = vpc.into();
    (ev, nacl)
}

/// Settings from `vars` under events/policy.toml, whose production-tag rule
/// makes the brute-force sample HIGH.
fn policy_config(vars: &[(&str, &str)]) -> Config {
    let policy = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/policy.toml"),
    )
    .unwrap();
    let vars: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::load(&vars, Some(("policy.toml", &policy))).unwrap()
}

async fn deny_entries(acct: &Account, nacl: &str, egress: bool) -> Vec<(i32, String)> {
    support::deny_entries(&acct.clients.ec2, nacl, egress).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_brute_force_is_denied_at_the_subnets_nacl_once() {
    let emu = Emulator::start();
    let acct = account(&emu, "records-brute-force").await;
    let (ev, nacl) = brute_force_on_new_subnet(&acct).await;
    let team = acct.cfg.team_topic_arn.clone().unwrap();
    let cfg = Arc::new(policy_config(&[
        ("FIREBREAK_RECORDS_BUCKET", "records-brute-force"),
        ("FIREBREAK_TEAM_TOPIC_ARN", &team),
    ]));
    let plan = plan_event(ev.to_string().as_bytes(), &cfg).unwrap();
    let exec = Executor::connect(acct.clients.clone(), cfg.clone())
        .await
        .unwrap();
    let report = exec.run(&plan.incidents[0]).await;
    let block = action(&report, ActionKind::BlockIp);
    assert_eq!(block.status, Status::Done, "{block:?}");
    let entries = deny_entries(&acct, &nacl, false).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].1, "198.51.100.77/32");
    assert!(
        (1..=90).contains(&entries[0].0),
        "inside the reserved range"
    );
    assert!(
        deny_entries(&acct, &nacl, true).await.is_empty(),
        "nothing on egress"
    );
    // Again: the NACL is the truth, nothing is added.
    let exec2 = Executor::connect(acct.clients.clone(), Arc::new(policy_config(&[])))
        .await
        .unwrap();
    let again = exec2.run(&plan.incidents[0]).await;
    assert_eq!(status_of(&again, ActionKind::BlockIp), Status::AlreadyDone);
    assert_eq!(deny_entries(&acct, &nacl, false).await, entries);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_range_evicts_its_oldest_entry_and_never_a_foreign_one() {
    let emu = Emulator::start();
    let acct = account(&emu, "records-range").await;
    let (_vpc, subnet, nacl) = support::vpc_with_subnet(&acct.clients.ec2).await;
    let ec2 = &acct.clients.ec2;
    // Someone else's deny entries, just outside Firebreak's range.
    for (n, cidr) in [(4, "192.0.2.1/32"), (50, "192.0.2.2/32")] {
        ec2.create_network_acl_entry()
            .network_acl_id(&nacl)
            .rule_number(n)
            .egress(false)
            .protocol("-1")
            .rule_action(aws_sdk_ec2::types::RuleAction::Deny)
            .cidr_block(cidr)
            .send()
            .await
            .unwrap();
    }
    let mut vars = BTreeMap::new();
    vars.insert("FIREBREAK_NACL_RULE_RANGE".to_string(), "1-3".to_string());
    vars.insert(
        "FIREBREAK_RECORDS_BUCKET".to_string(),
        "records-range".to_string(),
    );
    let cfg = Config::load(&vars, None).unwrap();
    let exec = Executor::connect(acct.clients.clone(), Arc::new(cfg.clone()))
        .await
        .unwrap();
    let block = |ip: &str| serde_json::json!({"command": "block_ip", "ip": ip, "subnet_ids": [subnet], "requested_by": "test", "reason": "range test"});
    let mut ids = BTreeMap::new();
    for ip in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        let r = run_one(&exec, &cfg, &block(ip)).await;
        assert_eq!(
            status_of(&r, ActionKind::BlockIp),
            Status::Done,
            "{ip}: {r:#?}"
        );
        ids.insert(ip, r.id.clone());
    }
    // Free rule 1 (the oldest) and fill it again: rule 1 is now the newest,
    // so a number-order eviction and an age-order eviction differ.
    let release = serde_json::json!({"command": "release", "incident_id": ids["198.51.100.1"], "requested_by": "test", "reason": "free rule 1"});
    let r = run_one(&exec, &cfg, &release).await;
    assert_eq!(status_of(&r, ActionKind::Release), Status::Done, "{r:#?}");
    for ip in ["198.51.100.4", "198.51.100.5", "2001:db8::6"] {
        let r = run_one(&exec, &cfg, &block(ip)).await;
        assert_eq!(
            status_of(&r, ActionKind::BlockIp),
            Status::Done,
            "{ip}: {r:#?}"
        );
    }
    let entries = deny_entries(&acct, &nacl, false).await;
    let ours: BTreeMap<i32, &str> = entries
        .iter()
        .filter(|(n, _)| (1..=3).contains(n))
        .map(|(n, c)| (*n, c.as_str()))
        .collect();
    // .4 took free rule 1; .5 evicted .2 (rule 2, the oldest); ::6 evicted
    // .3 (rule 3) — never .4 in rule 1, which is newer.
    assert_eq!(
        ours,
        BTreeMap::from([
            (1, "198.51.100.4/32"),
            (2, "198.51.100.5/32"),
            (3, "2001:db8::6/128")
        ]),
        "{entries:?}"
    );
    assert!(
        entries.contains(&(4, "192.0.2.1/32".to_string()))
            && entries.contains(&(50, "192.0.2.2/32".to_string())),
        "foreign entries untouched: {entries:?}"
    );
    assert_eq!(entries.len(), 5, "nothing else: {entries:?}");
    // The ledger has exactly one marker per entry in the range.
    let markers: Vec<String> = objects(&acct, "records-range")
        .await
        .into_iter()
        .filter(|k| k.starts_with("blocks/"))
        .collect();
    assert_eq!(markers.len(), 3, "{markers:?}");
}

async fn eni_groups(acct: &Account, instance: &str) -> Vec<String> {
    support::eni_groups(&acct.clients.ec2, instance)
        .await
        .iter()
        .filter_map(|g| g.group_id().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_swaps_groups_protects_snapshots_and_release_restores() {
    let emu = Emulator::start();
    let acct = account(&emu, "records-isolation").await;
    let (vpc, subnet, _nacl) = support::vpc_with_subnet(&acct.clients.ec2).await;
    let (instance, web) = support::instance_with_volume(&acct.clients.ec2, &vpc, &subnet).await;
    let ec2 = &acct.clients.ec2;
    let exec = Executor::connect(acct.clients.clone(), acct.cfg.clone())
        .await
        .unwrap();
    let cmd = serde_json::json!({"command": "isolate_instance", "instance_id": instance, "requested_by": "oncall-alice", "reason": "mining pool traffic", "account": support::ACCOUNT, "region": "eu-west-1"});
    let report = run_one(&exec, &acct.cfg, &cmd).await;
    assert_eq!(
        status_of(&report, ActionKind::IsolateInstance),
        Status::Done,
        "{report:#?}"
    );
    assert_eq!(
        status_of(&report, ActionKind::SnapshotVolumes),
        Status::Done,
        "{report:#?}"
    );

    // The ENI is in the isolation group, and that group allows nothing.
    // (moto lists the instance's launch groups beside the ENI's own, so
    // "alone" is asserted on the exact calls in tests/failures.rs.)
    let iso_group = ec2
        .describe_security_groups()
        .filters(filter(
            "group-name",
            firebreak_aws::actions::isolate::ISOLATION_GROUP,
        ))
        .send()
        .await
        .unwrap()
        .security_groups()[0]
        .clone();
    assert!(iso_group.ip_permissions().is_empty(), "{iso_group:?}");
    assert!(
        iso_group.ip_permissions_egress().is_empty(),
        "{iso_group:?}"
    );
    let groups = eni_groups(&acct, &instance).await;
    assert!(
        groups.contains(&iso_group.group_id().unwrap().to_string()),
        "{groups:?}"
    );
    // The original groups are recorded for the undo.
    let iso = action(&report, ActionKind::IsolateInstance);
    assert_eq!(
        iso.prior_state["network_interfaces"][0]["groups"],
        serde_json::json!([web])
    );
    assert!(
        iso.calls
            .iter()
            .filter(|c| *c == "ModifyNetworkInterfaceAttribute")
            .count()
            >= 2,
        "allow-all first, then isolation: {:?}",
        iso.calls
    );
    assert!(support::termination_protected(&acct.clients.ec2, &instance).await);
    let tags = ec2
        .describe_tags()
        .filters(filter("resource-id", &instance))
        .send()
        .await
        .unwrap();
    assert!(tags.tags().iter().any(|t| t.key() == Some("firebreak:incident") && t.value() == Some(report.id.as_str())), "{tags:?}");
    // A snapshot of every attached volume, tagged with the incident.
    let volumes = ec2
        .describe_volumes()
        .filters(filter("attachment.instance-id", &instance))
        .send()
        .await
        .unwrap()
        .volumes()
        .len();
    let snapshots = || support::snapshot_count(ec2, filter("tag:firebreak:incident", &report.id));
    assert!(volumes >= 2, "root and data volume: {volumes}");
    assert_eq!(snapshots().await, volumes);

    // Idempotent on their own, not only through the record.
    let open = firebreak_aws::gate::Gate::open();
    let again = firebreak_aws::actions::isolate::isolate_instance(
        ec2,
        &instance,
        &report.id,
        "firebreak:protected",
        &open,
    )
    .await
    .unwrap();
    assert!(again.already(), "{again:?}");
    let again =
        firebreak_aws::actions::snapshot::snapshot_volumes(ec2, &instance, &report.id, &open)
            .await
            .unwrap();
    assert!(again.already(), "{again:?}");
    assert_eq!(snapshots().await, volumes, "no second snapshot");

    // Release: the original groups and the termination setting come back;
    // the snapshots stay (evidence).
    let release = serde_json::json!({"command": "release", "incident_id": report.id, "requested_by": "oncall-alice", "reason": "false positive"});
    let r = run_one(&exec, &acct.cfg, &release).await;
    assert_eq!(status_of(&r, ActionKind::Release), Status::Done, "{r:#?}");
    assert_eq!(eni_groups(&acct, &instance).await, vec![web]);
    assert!(!support::termination_protected(&acct.clients.ec2, &instance).await);
    assert_eq!(snapshots().await, volumes);
    support::assert_records_match_schema(&acct.clients.s3, "records-isolation").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protected_instance_is_refused_at_execution_time() {
    let emu = Emulator::start();
    let acct = account(&emu, "records-protected").await;
    let (vpc, subnet, _nacl) = support::vpc_with_subnet(&acct.clients.ec2).await;
    let (instance, web) = support::instance_with_volume(&acct.clients.ec2, &vpc, &subnet).await;
    // The responder names the instance only; its tags are read live.
    acct.clients
        .ec2
        .create_tags()
        .resources(&instance)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("firebreak:protected")
                .value("true")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let exec = Executor::connect(acct.clients.clone(), acct.cfg.clone())
        .await
        .unwrap();
    let cmd = serde_json::json!({"command": "isolate_instance", "instance_id": instance, "requested_by": "oncall-alice", "reason": "test"});
    let r = run_one(&exec, &acct.cfg, &cmd).await;
    let iso = action(&r, ActionKind::IsolateInstance);
    assert_eq!(iso.status, Status::Skipped, "{iso:?}");
    assert!(iso.detail.contains("protected"), "{iso:?}");
    assert_eq!(eni_groups(&acct, &instance).await, vec![web]);
    assert!(!support::termination_protected(&acct.clients.ec2, &instance).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_login_alarm_keeps_the_logs_longer_and_queries_its_window() {
    let emu = Emulator::start();
    let acct = account(&emu, "records-logs").await;
    let logs = &acct.clients.logs;
    logs.create_log_group()
        .log_group_name("/prod/auth-service")
        .send()
        .await
        .unwrap();
    logs.put_retention_policy()
        .log_group_name("/prod/auth-service")
        .retention_in_days(7)
        .send()
        .await
        .unwrap();
    let mut vars = BTreeMap::new();
    vars.insert(
        "FIREBREAK_RECORDS_BUCKET".to_string(),
        "records-logs".to_string(),
    );
    vars.insert(
        "FIREBREAK_LOG_GROUPS".to_string(),
        "/prod/auth-service".to_string(),
    );
    vars.insert(
        "FIREBREAK_DEFAULT_NACLS".to_string(),
        "acl-0a1b2c3d4e5f60718".to_string(),
    );
    let cfg = Config::load(&vars, None).unwrap();
    let exec = Executor::connect(acct.clients.clone(), Arc::new(cfg.clone()))
        .await
        .unwrap();
    let r = run_one(&exec, &cfg, &event("alarm-failed-login.json")).await;
    let more = action(&r, ActionKind::IncreaseMonitoring);
    assert_eq!(more.status, Status::Done, "{r:#?}");
    assert_eq!(more.prior_state["retention_in_days"], 7);
    let retention = || async {
        logs.describe_log_groups()
            .log_group_name_prefix("/prod/auth-service")
            .send()
            .await
            .unwrap()
            .log_groups()[0]
            .retention_in_days()
    };
    assert_eq!(retention().await, Some(365));
    // moto runs the query but not its `stats` aggregation, so no row has a
    // count and nothing is blocked; the counting is tested with real-shaped
    // responses in tests/failures.rs.
    let q = action(&r, ActionKind::QueryOffendingIps);
    assert_eq!(q.status, Status::Done, "{q:?}");
    assert!(
        q.calls.contains(&"StartQuery".to_string())
            && q.calls.contains(&"GetQueryResults".to_string()),
        "{q:?}"
    );

    let again = run_one(&exec, &cfg, &event("alarm-failed-login.json")).await;
    assert_eq!(
        status_of(&again, ActionKind::IncreaseMonitoring),
        Status::AlreadyDone
    );
    let release = serde_json::json!({"command": "release", "incident_id": r.id, "requested_by": "oncall-bob", "reason": "done investigating"});
    let rel = run_one(&exec, &cfg, &release).await;
    assert_eq!(
        status_of(&rel, ActionKind::Release),
        Status::Done,
        "{rel:#?}"
    );
    assert_eq!(retention().await, Some(7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_and_foreign_accounts_change_nothing() {
    let emu = Emulator::start();
    let acct = account(&emu, "records-dry").await;
    let (ev, nacl) = brute_force_on_new_subnet(&acct).await;
    let team = acct.cfg.team_topic_arn.clone().unwrap();
    let cfg = policy_config(&[
        ("FIREBREAK_RECORDS_BUCKET", "records-dry"),
        ("FIREBREAK_TEAM_TOPIC_ARN", &team),
        ("FIREBREAK_DRY_RUN", "true"),
    ]);
    let exec = Executor::connect(acct.clients.clone(), Arc::new(cfg.clone()))
        .await
        .unwrap();
    let r = run_one(&exec, &cfg, &ev).await;
    for a in r.actions.iter().filter(|a| a.kind.is_containment()) {
        assert_eq!(a.status, Status::Skipped, "{a:?}");
    }
    assert!(
        action(&r, ActionKind::BlockIp).detail.contains("dry run"),
        "{r:#?}"
    );
    assert!(deny_entries(&acct, &nacl, false).await.is_empty());
    assert_eq!(status_of(&r, ActionKind::RecordIncident), Status::Done);
    let notes = notices(&acct).await;
    assert_eq!(notes.len(), 1);
    assert!(
        notes[0]["Subject"].as_str().unwrap().contains("dry run"),
        "{:?}",
        notes[0]["Subject"]
    );

    // An incident in another account: recorded and told, never acted on.
    let iam = &acct.clients.iam;
    let key = support::user_with_keys(iam, "ci-deployer", 1)
        .await
        .remove(0);
    let mut ev = event("guardduty-leaked-key.json");
    ev["detail"]["accountId"] = "999988887777".into();
    ev["detail"]["resource"]["accessKeyDetails"]["accessKeyId"] = key.into();
    let exec = Executor::connect(acct.clients.clone(), acct.cfg.clone())
        .await
        .unwrap();
    let r = run_one(&exec, &acct.cfg, &ev).await;
    let d = action(&r, ActionKind::DeactivateAccessKey);
    assert_eq!(d.status, Status::Skipped, "{d:?}");
    assert!(d.detail.contains("999988887777"), "{d:?}");
    let keys = iam
        .list_access_keys()
        .user_name("ci-deployer")
        .send()
        .await
        .unwrap();
    assert_eq!(
        keys.access_key_metadata()[0].status(),
        Some(&StatusType::Active)
    );
    assert_eq!(status_of(&r, ActionKind::RecordIncident), Status::Done);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_expirer_lifts_blocks_whose_time_is_up_and_records_it() {
    let emu = Emulator::start();
    let acct = account(&emu, "records-expiry").await;
    let (_vpc, subnet, nacl) = support::vpc_with_subnet(&acct.clients.ec2).await;
    let mut vars = BTreeMap::new();
    vars.insert(
        "FIREBREAK_RECORDS_BUCKET".to_string(),
        "records-expiry".to_string(),
    );
    let short = Config::load(&vars, None).unwrap();
    vars.insert("FIREBREAK_BLOCK_TTL_HOURS".to_string(), "48".to_string());
    let long = Config::load(&vars, None).unwrap();
    let block = |ip: &str| serde_json::json!({"command": "block_ip", "ip": ip, "subnet_ids": [subnet], "requested_by": "test", "reason": "expiry test"});
    for (cfg, ip) in [(&short, "198.51.100.31"), (&long, "198.51.100.32")] {
        let exec = Executor::connect(acct.clients.clone(), Arc::new(cfg.clone()))
            .await
            .unwrap();
        let r = run_one(&exec, cfg, &block(ip)).await;
        assert_eq!(status_of(&r, ActionKind::BlockIp), Status::Done, "{r:#?}");
    }
    let exec = Executor::connect(acct.clients.clone(), Arc::new(short.clone()))
        .await
        .unwrap();
    // Nothing is due yet.
    assert!(exec
        .expire_blocks(chrono::Utc::now())
        .await
        .unwrap()
        .is_empty());
    assert_eq!(deny_entries(&acct, &nacl, false).await.len(), 2);
    // 25 hours later: the 24-hour block goes, the 48-hour one stays.
    let later = chrono::Utc::now() + chrono::TimeDelta::hours(25);
    let lifted = exec.expire_blocks(later).await.unwrap();
    assert_eq!(lifted.len(), 1, "{lifted:#?}");
    assert_eq!(lifted[0].status, Status::Done);
    assert_eq!(lifted[0].marker.cidr, "198.51.100.31/32");
    let left = deny_entries(&acct, &nacl, false).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].1, "198.51.100.32/32");
    let keys = objects(&acct, "records-expiry").await;
    assert_eq!(
        keys.iter().filter(|k| k.starts_with("expired/")).count(),
        1,
        "{keys:?}"
    );
    assert_eq!(
        keys.iter().filter(|k| k.starts_with("blocks/")).count(),
        1,
        "{keys:?}"
    );
    // The lift is a handling of the incident that placed the block: a
    // listing of the day it happened names it.
    let lifted_day = format!("handled/dt={}/", later.format("%Y-%m-%d"));
    let lift_handled: Vec<&String> = keys
        .iter()
        .filter(|k| k.starts_with(&lifted_day) && k.contains(&lifted[0].marker.incident_id))
        .collect();
    assert_eq!(lift_handled.len(), 1, "{keys:#?}");
    let listed = exec
        .incidents(
            &firebreak_aws::inventory::Filter {
                since: Some(later - chrono::TimeDelta::minutes(1)),
                ..Default::default()
            },
            &|_, _| {},
        )
        .await
        .unwrap();
    assert_eq!(
        listed.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        vec![lifted[0].marker.incident_id.as_str()],
        "{listed:#?}"
    );
    // Running again lifts nothing more.
    assert!(exec.expire_blocks(later).await.unwrap().is_empty());
    support::assert_records_match_schema(&acct.clients.s3, "records-expiry").await;
}

/// With FIREBREAK_NOTICE_FORMAT=chatbot the team topic carries AWS Chatbot
/// custom notifications: what a Slack or Teams channel subscribed through
/// Chatbot renders, threaded per incident.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chatbot_notices_arrive_as_custom_notifications() {
    let emu = Emulator::start();
    let acct = account(&emu, "records-chatbot").await;
    let key = support::user_with_keys(&acct.clients.iam, "ci-deployer", 1)
        .await
        .remove(0);
    let mut cfg = (*acct.cfg).clone();
    cfg.notice_format = firebreak_core::config::NoticeFormat::Chatbot;
    let exec = Executor::connect(acct.clients.clone(), Arc::new(cfg.clone()))
        .await
        .unwrap();
    let mut ev = event("guardduty-leaked-key.json");
    ev["detail"]["resource"]["accessKeyDetails"]["accessKeyId"] = key.into();
    let r = run_one(&exec, &cfg, &ev).await;
    assert!(r.failed().is_empty(), "{r:#?}");
    let notes = notices(&acct).await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    let m: Value = serde_json::from_str(notes[0]["Message"].as_str().unwrap()).unwrap();
    assert_eq!(m["version"], "1.0");
    assert_eq!(m["source"], "custom");
    assert_eq!(m["content"]["textType"], "client-markdown");
    assert_eq!(m["metadata"]["threadId"], r.id.as_str());
    let d = m["content"]["description"].as_str().unwrap();
    assert!(d.contains("*DONE* deactivate_access_key"), "{d}");
    assert!(
        m["content"]["title"]
            .as_str()
            .unwrap()
            .contains("contained"),
        "{m:#}"
    );
}

/// A group named like Firebreak's isolation group that is not Firebreak's
/// (anyone who may create security groups can make one, allowing all) is
/// never isolated into: the isolation fails, saying why, and the instance
/// keeps its groups.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolation_group_that_would_not_isolate_is_never_used() {
    let emu = Emulator::start();
    let acct = account(&emu, "records-fake-isolation").await;
    let ec2 = &acct.clients.ec2;
    let (vpc, subnet, _nacl) = support::vpc_with_subnet(ec2).await;
    let (instance, web) = support::instance_with_volume(ec2, &vpc, &subnet).await;
    let fake = ec2
        .create_security_group()
        .vpc_id(&vpc)
        .group_name(firebreak_aws::actions::isolate::ISOLATION_GROUP)
        .description("looks like Firebreak's, allows everything")
        .send()
        .await
        .unwrap()
        .group_id
        .unwrap();
    ec2.authorize_security_group_ingress()
        .group_id(&fake)
        .ip_permissions(
            aws_sdk_ec2::types::IpPermission::builder()
                .ip_protocol("-1")
                .ip_ranges(
                    aws_sdk_ec2::types::IpRange::builder()
                        .cidr_ip("0.0.0.0/0")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let before = eni_groups(&acct, &instance).await;
    let exec = Executor::connect(acct.clients.clone(), acct.cfg.clone())
        .await
        .unwrap();
    let cmd = serde_json::json!({"command": "isolate_instance", "instance_id": instance, "requested_by": "oncall-alice", "reason": "test", "account": support::ACCOUNT, "region": "eu-west-1"});
    let report = run_one(&exec, &acct.cfg, &cmd).await;
    let iso = action(&report, ActionKind::IsolateInstance);
    assert_eq!(iso.status, Status::Failed, "{report:#?}");
    let err = iso.error.as_ref().unwrap();
    assert_eq!(err.code.as_deref(), Some("UntrustedIsolationGroup"));
    assert!(err.message.contains(&fake), "{err:?}");
    assert_eq!(eni_groups(&acct, &instance).await, before);
    assert!(before.contains(&web), "{before:?}");
}
