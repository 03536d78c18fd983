//! The four functions end to end: the real binaries under `cargo lambda
//! watch`, invoked with `cargo lambda invoke --data-file events/…` and with
//! the AWS CLI, against a seeded local AWS. Each test asserts the account's
//! state afterwards through the SDK.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_iam::types::StatusType;
use firebreak_aws::actions::isolate::ISOLATION_GROUP;
use firebreak_e2e::support::{self, statuses};
use firebreak_e2e::{root, seed, Emulator, Functions, Seeded};
use serde_json::{json, Value};

fn answer(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "invoke failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn key_states(emu: &Emulator, s: &Seeded) -> Vec<Option<StatusType>> {
    support::key_states(&emu.clients().await.iam, &s.user, &s.keys).await
}

/// `(group id, group name)` of the instance's network interfaces.
async fn groups(emu: &Emulator, s: &Seeded) -> Vec<(String, String)> {
    support::eni_groups(&emu.clients().await.ec2, &s.instance)
        .await
        .iter()
        .map(|g| {
            (
                g.group_id().unwrap_or_default().to_string(),
                g.group_name().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guardduty_function_deactivates_the_leaked_key_once_and_refuses_other_events() {
    let emu = Emulator::start();
    let s = seed(&emu).await;
    let fns = Functions::start(&emu, &s.settings());
    let ev = s.event("guardduty-leaked-key.json");

    let first = answer(&fns.invoke("firebreak-guardduty", &ev));
    assert!(
        statuses(&first).contains(&("deactivate_access_key".into(), "done".into())),
        "{first:#}"
    );
    assert_eq!(
        key_states(&emu, &s).await,
        vec![Some(StatusType::Inactive), Some(StatusType::Active)]
    );
    let again = answer(&fns.invoke("firebreak-guardduty", &ev));
    assert!(
        statuses(&again).contains(&("deactivate_access_key".into(), "already_done".into())),
        "{again:#}"
    );
    // Security Hub's copy of the same finding goes to the same function
    // and is the same incident: nothing is done twice.
    let via_hub = s.event("securityhub-guardduty-leaked-key-imported.json");
    let hub = answer(&fns.invoke("firebreak-guardduty", &via_hub));
    assert_eq!(hub["incidents"][0]["id"], first["incidents"][0]["id"]);
    assert!(
        statuses(&hub).contains(&("deactivate_access_key".into(), "already_done".into())),
        "{hub:#}"
    );
    assert!(
        !statuses(&hub).iter().any(|(_, status)| status == "done"),
        "{hub:#}"
    );

    // An alarm sent to the GuardDuty function is refused; nothing changes.
    let before = key_states(&emu, &s).await;
    let out = fns.invoke_file(
        "firebreak-guardduty",
        &root().join("events/alarm-failed-login.json"),
    );
    assert!(!out.status.success());
    let err = Functions::error_of(&out);
    assert!(
        err.starts_with("Firebreak.BadInput:") && err.contains("cloudwatch_alarm"),
        "{err}"
    );
    assert_eq!(key_states(&emu, &s).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_events_are_errors_and_change_nothing() {
    let emu = Emulator::start();
    let s = seed(&emu).await;
    let fns = Functions::start(&emu, &s.settings());
    let mut refused = 0;
    for entry in std::fs::read_dir(root().join("events/invalid")).unwrap() {
        let path = entry.unwrap().path();
        for f in [
            "firebreak-alarm",
            "firebreak-guardduty",
            "firebreak-manual",
            "firebreak-release",
        ] {
            let out = fns.invoke_file(f, &path);
            assert!(!out.status.success(), "{f} accepted {}", path.display());
            // JSON we can read is refused by Firebreak with what was wrong;
            // bytes that are not JSON never reach it (Lambda refuses them).
            let err = Functions::error_of(&out);
            let is_json = serde_json::from_slice::<Value>(&std::fs::read(&path).unwrap()).is_ok();
            if is_json {
                assert!(
                    err.starts_with("Firebreak.BadInput: refused, nothing was changed:"),
                    "{f} on {}: {err}",
                    path.display()
                );
            }
            refused += 1;
        }
    }
    assert!(refused >= 32);
    let s3 = emu.clients().await.s3;
    let written = support::object_keys(&s3, &s.bucket, "").await;
    assert!(
        written.is_empty(),
        "nothing recorded for refused events: {written:?}"
    );
    assert_eq!(
        key_states(&emu, &s).await,
        vec![Some(StatusType::Active), Some(StatusType::Active)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_responder_isolates_and_releases_through_the_aws_cli() {
    let emu = Emulator::start();
    let s = seed(&emu).await;
    let fns = Functions::start(&emu, &s.settings());
    let isolate = json!({"command": "isolate_instance", "instance_id": s.instance, "requested_by": "oncall-alice", "reason": "mining pool traffic"});
    let answer = fns.aws_cli_invoke("firebreak-manual", &isolate).unwrap();
    assert_eq!(answer["ok"], json!(true), "{answer:#}");
    assert!(
        statuses(&answer).contains(&("isolate_instance".into(), "done".into())),
        "{answer:#}"
    );
    let isolated = groups(&emu, &s).await;
    assert!(
        isolated.iter().any(|(_, name)| name == ISOLATION_GROUP),
        "{isolated:?}"
    );
    let id = answer["incidents"][0]["id"].as_str().unwrap().to_string();

    let release = json!({"command": "release", "incident_id": id, "requested_by": "oncall-alice", "reason": "false positive"});
    // Undo is not the manual responder's: whoever may contain cannot
    // thereby undo. It refuses, and nothing is released or recorded.
    let refused = fns.invoke("firebreak-manual", &release);
    assert!(!refused.status.success());
    let err = Functions::error_of(&refused);
    assert!(
        err.starts_with("Firebreak.BadInput:") && err.contains("release function"),
        "{err}"
    );
    assert!(
        groups(&emu, &s)
            .await
            .iter()
            .any(|(_, name)| name == ISOLATION_GROUP),
        "the refused release changed nothing"
    );
    let answer = fns.aws_cli_invoke("firebreak-release", &release).unwrap();
    assert!(
        statuses(&answer).contains(&("release".into(), "done".into())),
        "{answer:#}"
    );
    assert_eq!(
        groups(&emu, &s).await,
        vec![(s.web_group.clone(), "web".to_string())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarm_function_keeps_logs_longer_and_the_expirer_lifts_what_is_due() {
    let emu = Emulator::start();
    let s = seed(&emu).await;
    let c = emu.clients().await;
    let fns = Functions::start(&emu, &s.settings());
    let a = answer(&fns.invoke_file(
        "firebreak-alarm",
        &root().join("events/alarm-failed-login.json"),
    ));
    assert!(
        statuses(&a).contains(&("increase_monitoring".into(), "done".into())),
        "{a:#}"
    );
    let g = c
        .logs
        .describe_log_groups()
        .log_group_name_prefix(&s.log_group)
        .send()
        .await
        .unwrap();
    assert_eq!(g.log_groups()[0].retention_in_days(), Some(365));
    // SNS may deliver several records at once: every one is handled.
    let batch = answer(&fns.invoke_file(
        "firebreak-alarm",
        &root().join("events/alarm-batch-three-records.json"),
    ));
    assert_eq!(batch["incidents"].as_array().unwrap().len(), 2, "{batch:#}");
    assert_eq!(batch["ignored"].as_array().unwrap().len(), 1, "{batch:#}");

    // A responder's block, not due yet: the expirer leaves it.
    let block = fns
        .aws_cli_invoke("firebreak-manual", &s.event("command-block-ip.json"))
        .unwrap();
    assert_eq!(block["ok"], json!(true), "{block:#}");
    let deny = "198.51.100.99/32";
    let schedule = json!({"source": "aws.scheduler"});
    let e = answer(&fns.invoke("firebreak-expirer", &schedule));
    assert_eq!(e["lifted"], json!([]), "nothing is due yet: {e}");
    assert!(denies(&c, &s).await.contains(&deny.to_string()));
    // Its time is up (the ledger marker says so): the expirer lifts it.
    let markers = support::object_keys(&c.s3, &s.bucket, "blocks/").await;
    assert_eq!(
        markers.len(),
        1,
        "one block, one ledger marker: {markers:?}"
    );
    let marker = &markers[0];
    let body = support::object_bytes(&c.s3, &s.bucket, marker).await;
    let mut m: Value = serde_json::from_slice(&body).unwrap();
    m["expires_at"] = json!("2020-01-01T00:00:00Z");
    c.s3.put_object()
        .bucket(&s.bucket)
        .key(marker)
        .body(m.to_string().into_bytes().into())
        .send()
        .await
        .unwrap();
    let e = answer(&fns.invoke("firebreak-expirer", &schedule));
    let lifted = e["lifted"].as_array().unwrap();
    assert_eq!(lifted.len(), 1, "{e:#}");
    assert_eq!(lifted[0]["marker"]["cidr"], json!(deny), "{e:#}");
    assert!(!denies(&c, &s).await.contains(&deny.to_string()));
}

/// The CIDRs the seeded subnet's NACL denies inbound.
async fn denies(c: &firebreak_aws::Clients, s: &Seeded) -> Vec<String> {
    support::deny_entries(&c.ec2, &s.nacl, false)
        .await
        .into_iter()
        .map(|(_, cidr)| cidr)
        .collect()
}
