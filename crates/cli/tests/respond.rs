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

/// Runs `firebreak respond --policy events/policy.toml FILE` with the
/// standard SDK environment pointing at the emulator.
fn respond(emu: &Emulator, bucket: &str, topic: &str, event: &Value) -> (Output, Value) {
    let file = std::env::temp_dir().join(format!(
        "firebreak-respond-{bucket}-{}.json",
        std::process::id()
    ));
    std::fs::write(&file, event.to_string()).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_firebreak"));
    for (k, _) in
        std::env::vars().filter(|(k, _)| k.starts_with("FIREBREAK_") || k.starts_with("AWS_"))
    {
        cmd.env_remove(k);
    }
    let out = cmd
        .args(["respond", "--policy"])
        .arg(events().join("policy.toml"))
        .arg(&file)
        .env("AWS_ENDPOINT_URL", &emu.url)
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("FIREBREAK_RECORDS_BUCKET", bucket)
        .env("FIREBREAK_TEAM_TOPIC_ARN", topic)
        .output()
        .unwrap();
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
    let mut ev: Value = serde_json::from_slice(
        &std::fs::read(events().join("guardduty-ssh-brute-force.json")).unwrap(),
    )
    .unwrap();
    let details = &mut ev["detail"]["resource"]["instanceDetails"];
    details["instanceId"] = instance.clone().into();
    details["networkInterfaces"][0]["subnetId"] = subnet.clone().into();
    details["networkInterfaces"][0]["vpcId"] = vpc.clone().into();

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
