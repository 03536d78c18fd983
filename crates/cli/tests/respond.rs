//! `firebreak respond` end to end: the binary, configured only through the
//! environment as a responder would, against the local AWS emulator. It
//! changes exactly what the plan says, and a second run changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../aws/tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use aws_sdk_iam::types::StatusType;
use serde_json::Value;
use support::{statuses, Emulator};

fn events() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

/// Runs `firebreak ARGS…` with the standard SDK environment pointing at
/// the emulator, configured only through the environment.
fn firebreak(emu: &Emulator, bucket: &str, topic: &str, args: &[&std::ffi::OsStr]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_firebreak"));
    for (k, _) in
        std::env::vars().filter(|(k, _)| k.starts_with("FIREBREAK_") || k.starts_with("AWS_"))
    {
        cmd.env_remove(k);
    }
    cmd.args(args)
        .env("AWS_ENDPOINT_URL", &emu.url)
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("FIREBREAK_RECORDS_BUCKET", bucket)
        .env("FIREBREAK_TEAM_TOPIC_ARN", topic)
        .output()
        .unwrap()
}

/// `firebreak` with string arguments; stdout as text, after checking the
/// exit status is `ok`.
fn run_text(
    emu: &Emulator,
    bucket: &str,
    topic: &str,
    args: &[&str],
    ok: bool,
) -> (String, String) {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    let out = firebreak(emu, bucket, topic, &args);
    let (stdout, stderr) = (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    );
    assert_eq!(
        out.status.success(),
        ok,
        "{args:?}\nstdout: {stdout}\nstderr: {stderr}"
    );
    (stdout, stderr)
}

/// Runs `firebreak respond --policy events/policy.toml FILE` with the
/// standard SDK environment pointing at the emulator.
fn respond(emu: &Emulator, bucket: &str, topic: &str, event: &Value) -> (Output, Value) {
    let file = std::env::temp_dir().join(format!(
        "firebreak-respond-{bucket}-{}.json",
        std::process::id()
    ));
    std::fs::write(&file, event.to_string()).unwrap();
    let policy = events().join("policy.toml");
    let out = firebreak(
        emu,
        bucket,
        topic,
        &[
            "respond".as_ref(),
            "--policy".as_ref(),
            policy.as_os_str(),
            file.as_os_str(),
        ],
    );
    let _ = std::fs::remove_file(&file);
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, json)
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

async fn bucket_and_topic(emu: &Emulator, bucket: &str) -> (aws_config::SdkConfig, String) {
    let sdk = emu.sdk_config().await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    support::create_bucket(&s3, bucket).await;
    let topic = aws_sdk_sns::Client::new(&sdk)
        .create_topic()
        .name("team")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    (sdk, topic)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaked_key_finding_deactivates_that_key_and_nothing_else_once() {
    let emu = Emulator::start();
    let (sdk, topic) = bucket_and_topic(&emu, "respond-key").await;
    let iam = aws_sdk_iam::Client::new(&sdk);
    let keys = support::user_with_keys(&iam, "ci-deployer", 2).await;
    let mut ev: Value =
        serde_json::from_slice(&std::fs::read(events().join("guardduty-leaked-key.json")).unwrap())
            .unwrap();
    ev["detail"]["resource"]["accessKeyDetails"]["accessKeyId"] = keys[0].clone().into();

    let (out, first) = respond(&emu, "respond-key", &topic, &ev);
    assert!(
        out.status.success(),
        "{first}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        statuses(&first),
        pairs(&[
            ("block_ip", "skipped"), // an API caller: the key action stops it
            ("deactivate_access_key", "done"),
            ("record_incident", "done"),
            ("notify_team", "done"),
            ("notify_stakeholders", "skipped"), // no stakeholder topic configured
        ]),
        "{first:#}"
    );
    let state = || support::key_states(&iam, "ci-deployer", &keys);
    assert_eq!(
        state().await,
        vec![Some(StatusType::Inactive), Some(StatusType::Active)]
    );

    let (out, second) = respond(&emu, "respond-key", &topic, &ev);
    assert!(out.status.success());
    assert_eq!(
        statuses(&second),
        pairs(&[
            ("block_ip", "skipped"),
            ("deactivate_access_key", "already_done"),
            ("record_incident", "already_done"),
            ("notify_team", "already_done"),
            ("notify_stakeholders", "skipped"),
        ]),
        "{second:#}"
    );
    assert_eq!(
        state().await,
        vec![Some(StatusType::Inactive), Some(StatusType::Active)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_brute_force_is_blocked_and_the_target_isolated_once() {
    let emu = Emulator::start();
    let (sdk, topic) = bucket_and_topic(&emu, "respond-brute").await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let (vpc, subnet, nacl) = support::vpc_with_subnet(&ec2).await;
    let (instance, _web) = support::instance_with_volume(&ec2, &vpc, &subnet).await;
    let ev = support::brute_force_on(&instance, &subnet, &vpc);

    let snapshot = || async {
        // (egress, rule, CIDR) of every deny entry, ingress first.
        let mut denies: Vec<(bool, i32, String)> = Vec::new();
        for egress in [false, true] {
            let entries = support::deny_entries(&ec2, &nacl, egress).await;
            denies.extend(entries.into_iter().map(|(rule, cidr)| (egress, rule, cidr)));
        }
        let snaps =
            support::snapshot_count(&ec2, support::filter("tag-key", "firebreak:incident")).await;
        (denies, snaps)
    };

    let (out, first) = respond(&emu, "respond-brute", &topic, &ev);
    assert!(
        out.status.success(),
        "{first:#}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        statuses(&first),
        pairs(&[
            ("block_ip", "done"),
            ("isolate_instance", "done"),
            ("snapshot_volumes", "done"),
            ("record_incident", "done"),
            ("notify_team", "done"),
            ("notify_stakeholders", "skipped"),
        ]),
        "{first:#}"
    );
    let after = snapshot().await;
    assert_eq!(
        after.0,
        vec![(false, 1, "198.51.100.77/32".to_string())],
        "one ingress deny, first number of the range"
    );
    assert_eq!(after.1, 2, "root and data volume");

    let (out, second) = respond(&emu, "respond-brute", &topic, &ev);
    assert!(out.status.success());
    assert!(
        statuses(&second)
            .iter()
            .all(|(_, s)| s == "already_done" || s == "skipped"),
        "{second:#}"
    );
    assert_eq!(snapshot().await, after, "the second run changed nothing");
}

/// The responder's toolkit on what `respond` did: `incidents list` and
/// `show`, `blocks` (checked against the NACL), and `release`, which
/// returns the NACL, the instance's groups and its termination setting to
/// their recorded prior state and is itself recorded. Bad arguments are
/// refused with one line and nothing on stdout.
///
/// The finding was first seen a year before the clock (GuardDuty re-sends
/// a recurring finding for months): the listing answers by when Firebreak
/// handled it, never by the finding's date, so this test holds on any day.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_blocks_and_release_read_back_and_undo_what_respond_did() {
    let emu = Emulator::start();
    let bucket = "respond-toolkit";
    let (sdk, topic) = bucket_and_topic(&emu, bucket).await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let (vpc, subnet, nacl) = support::vpc_with_subnet(&ec2).await;
    let (instance, _web) = support::instance_with_volume(&ec2, &vpc, &subnet).await;
    let groups = || support::eni_group_ids(&ec2, &instance);
    let before = groups().await;
    let mut ev = support::brute_force_on(&instance, &subnet, &vpc);
    let first_seen = chrono::Utc::now() - chrono::TimeDelta::days(365);
    let original = chrono::DateTime::parse_from_rfc3339(
        ev["detail"]["service"]["eventFirstSeen"].as_str().unwrap(),
    )
    .unwrap();
    support::shift_finding_times(&mut ev, first_seen - original.with_timezone(&chrono::Utc));
    let handled_from = chrono::Utc::now();
    let (out, first) = respond(&emu, bucket, &topic, &ev);
    assert!(out.status.success(), "{first:#}");
    let id = first["incidents"][0]["id"].as_str().unwrap().to_string();
    assert!(
        first["incidents"][0]["record"]
            .as_str()
            .unwrap()
            .contains(&format!("/dt={}/", first_seen.format("%Y-%m-%d"))),
        "filed under the day GuardDuty first saw it: {first:#}"
    );

    // The table: one line per incident, with what a responder scans for.
    let (table, _) = run_text(&emu, bucket, &topic, &["incidents", "list"], true);
    let line = table
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{table}"));
    for word in [
        "HIGH",
        "UnauthorizedAccess:EC2/SSHBruteForce",
        "111122223333",
        "contained",
        "block_ip",
    ] {
        assert!(line.contains(word), "`{word}` not in `{line}`");
    }
    let (json, _) = run_text(
        &emu,
        bucket,
        &topic,
        &["incidents", "list", "--json", "--severity", "high"],
        true,
    );
    let listed: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["status"], "contained");
    // Its time is when Firebreak handled it, and the window goes by that.
    let handled_at =
        chrono::DateTime::parse_from_rfc3339(listed[0]["handled_at"].as_str().unwrap())
            .unwrap()
            .with_timezone(&chrono::Utc);
    assert!(
        handled_at >= handled_from - chrono::TimeDelta::seconds(1),
        "{listed:#}"
    );
    let since = |s: &str| {
        let (json, _) = run_text(
            &emu,
            bucket,
            &topic,
            &["incidents", "list", "--json", "--since", s],
            true,
        );
        serde_json::from_str::<Value>(&json).unwrap()
    };
    assert_eq!(
        since("30m")[0]["id"],
        id.as_str(),
        "handled within the last 30 minutes"
    );
    let before_it = (handled_from - chrono::TimeDelta::hours(1)).to_rfc3339();
    let (json, _) = run_text(
        &emu,
        bucket,
        &topic,
        &[
            "incidents",
            "list",
            "--json",
            "--since",
            "400d",
            "--until",
            &before_it,
        ],
        true,
    );
    assert_eq!(
        json.trim(),
        "[]",
        "not handled before it was handled, whatever its first sighting"
    );
    let (json, _) = run_text(
        &emu,
        bucket,
        &topic,
        &["incidents", "list", "--json", "--severity", "critical"],
        true,
    );
    assert_eq!(json.trim(), "[]");
    let (json, _) = run_text(
        &emu,
        bucket,
        &topic,
        &["incidents", "list", "--json", "--status", "failed"],
        true,
    );
    assert_eq!(json.trim(), "[]");
    let (shown, _) = run_text(&emu, bucket, &topic, &["incidents", "show", &id], true);
    assert!(shown.contains("DONE          isolate_instance"), "{shown}");
    assert!(shown.contains("prior state:"), "{shown}");
    assert!(
        shown.contains(&format!("firebreak release {id}")),
        "{shown}"
    );

    let (held, _) = run_text(&emu, bucket, &topic, &["blocks"], true);
    let row = held
        .lines()
        .find(|l| l.starts_with(&nacl))
        .unwrap_or_else(|| panic!("{held}"));
    for word in ["ingress", "198.51.100.77/32", id.as_str(), "in_place"] {
        assert!(row.contains(word), "`{word}` not in `{row}`");
    }

    // Refusals: one line, nothing on stdout, nothing released.
    let (stdout, stderr) = run_text(
        &emu,
        bucket,
        &topic,
        &["incidents", "list", "--since", "yesterday"],
        false,
    );
    assert!(
        stdout.is_empty() && stderr.trim().lines().count() == 1,
        "{stderr}"
    );
    assert!(stderr.contains("--since `yesterday`"), "{stderr}");
    let (stdout, stderr) = run_text(
        &emu,
        bucket,
        &topic,
        &[
            "release",
            "fb-00000000000000000000",
            "--reason",
            "test",
            "--by",
            "alice",
        ],
        false,
    );
    assert!(
        stderr.contains("no record of incident fb-00000000000000000000"),
        "{stdout}{stderr}"
    );
    assert!(stdout.is_empty(), "{stdout}");
    let (json, _) = run_text(&emu, bucket, &topic, &["incidents", "list", "--json"], true);
    assert_eq!(
        serde_json::from_str::<Value>(&json)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1,
        "nothing recorded for a mistyped id: {json}"
    );
    assert_eq!(support::deny_entries(&ec2, &nacl, false).await.len(), 1);

    let (released, _) = run_text(
        &emu,
        bucket,
        &topic,
        &[
            "release",
            &id,
            "--reason",
            "false positive: pen test",
            "--by",
            "oncall-alice",
        ],
        true,
    );
    assert!(released.contains("DONE"), "{released}");
    assert!(support::deny_entries(&ec2, &nacl, false).await.is_empty());
    assert_eq!(groups().await, before);
    let (json, _) = run_text(&emu, bucket, &topic, &["incidents", "list", "--json"], true);
    let listed: Value = serde_json::from_str(&json).unwrap();
    let find = |id: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(find(&id)["status"], "released", "{listed:#}");
    // The release is an incident of its own, with who asked and why.
    let release = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["incident_type"] == "COMMAND:RELEASE")
        .unwrap_or_else(|| panic!("{listed:#}"));
    let (json, _) = run_text(
        &emu,
        bucket,
        &topic,
        &[
            "incidents",
            "show",
            "--json",
            release["id"].as_str().unwrap(),
        ],
        true,
    );
    let shown: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        shown["incident"]["evidence"]["requested_by"], "oncall-alice",
        "{shown:#}"
    );
    assert_eq!(
        shown["incident"]["evidence"]["reason"], "false positive: pen test",
        "{shown:#}"
    );
    let (held, _) = run_text(&emu, bucket, &topic, &["blocks"], true);
    assert_eq!(held.trim(), "Firebreak holds no blocks");
}

/// The emergency lockdown from the command line and its release: `respond`
/// takes the service to zero, the listener to a 503, rotates the secret
/// and copies the evidence; `release` brings back the service's desired
/// count and the listener's default actions exactly as they were (the
/// whole action list compared), and the retention; the secret stays
/// rotated and the evidence stays, as the release says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lockdown_and_its_release_bring_the_service_and_listener_back_exactly() {
    use support::lockdown as seeded;
    let emu = Emulator::start();
    let bucket = "respond-lockdown";
    let (sdk, topic) = bucket_and_topic(&emu, bucket).await;
    let c = firebreak_aws::Clients::from_config(&sdk);
    let (vpc, subnet, _) = support::vpc_with_subnet(&c.ec2).await;
    let t = seeded::seed(&c, &vpc, &subnet, "cli").await;
    let listener_before = seeded::default_actions(&c.elb, &t.listener_arn).await;
    let rules_before = seeded::other_rules(&c.elb, &t.listener_arn).await;
    let secret_before = seeded::current_version(&c.secrets, &t.secret_id).await;

    let (out, locked) = respond(&emu, bucket, &topic, &seeded::command(&t, "users/"));
    assert!(
        out.status.success(),
        "{locked:#}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        statuses(&locked)[..5],
        pairs(&[
            ("scale_service_to_zero", "done"),
            ("serve_maintenance_response", "done"),
            ("rotate_secret", "done"),
            ("increase_monitoring", "done"),
            ("copy_evidence", "done"),
        ])[..],
        "{locked:#}"
    );
    let id = locked["incidents"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        seeded::desired_count(&c.ecs, &t.cluster, &t.service).await,
        0
    );
    assert_ne!(
        seeded::default_actions(&c.elb, &t.listener_arn).await,
        listener_before
    );
    let evidence = support::object_keys(&c.s3, bucket, "evidence/").await;
    assert_eq!(evidence.len(), seeded::USER_OBJECTS.len(), "{evidence:?}");

    let (released, _) = run_text(
        &emu,
        bucket,
        &topic,
        &[
            "release",
            &id,
            "--reason",
            "paste was a honeypot",
            "--by",
            "oncall-bob",
            "--json",
        ],
        true,
    );
    let released: Value = serde_json::from_str(&released).unwrap();
    let detail = released["incidents"][0]["actions"][0]["detail"]
        .as_str()
        .unwrap();
    assert_eq!(
        seeded::desired_count(&c.ecs, &t.cluster, &t.service).await,
        seeded::DESIRED,
        "{detail}"
    );
    assert_eq!(
        seeded::default_actions(&c.elb, &t.listener_arn).await,
        listener_before,
        "the whole default action list is back: {detail}"
    );
    assert_eq!(
        seeded::other_rules(&c.elb, &t.listener_arn).await,
        rules_before
    );
    assert_eq!(seeded::retention(&c.logs, &t.log_group).await, Some(30));
    // What a release does not undo, and says so.
    assert_ne!(
        seeded::current_version(&c.secrets, &t.secret_id).await,
        secret_before,
        "a rotated secret stays rotated"
    );
    assert_eq!(
        support::object_keys(&c.s3, bucket, "evidence/").await,
        evidence
    );
    for said in [
        format!("secret {} stays rotated", t.secret_id),
        format!("evidence copied from s3://{}/users/ kept", t.uploads),
        format!("back to a desired count of {}", seeded::DESIRED),
        "default action(s) back".to_string(),
    ] {
        assert!(detail.contains(&said), "`{said}` not in `{detail}`");
    }
}
