//! The four functions end to end: the real binaries under `cargo lambda
//! watch`, invoked with `cargo lambda invoke --data-file events/…` and with
//! the AWS CLI, against a seeded local AWS. Each test asserts the account's
//! state afterwards through the SDK.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_iam::types::StatusType;
use firebreak_e2e::support::{self, statuses};
use firebreak_e2e::{root, seed, Emulator, Functions, Seeded};
use serde_json::{json, Value};

fn event(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(root().join("events").join(name)).unwrap()).unwrap()
}

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
    let iam = aws_sdk_iam::Client::new(&emu.sdk_config().await);
    support::key_states(&iam, &s.user, &s.keys).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guardduty_function_deactivates_the_leaked_key_once_and_refuses_other_events() {
    let emu = Emulator::start();
    let s = seed(&emu).await;
    let fns = Functions::start(&emu, &s.settings());
    let mut ev = event("guardduty-leaked-key.json");
    ev["detail"]["resource"]["accessKeyDetails"]["accessKeyId"] = s.keys[0].clone().into();

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
        for f in ["firebreak-alarm", "firebreak-guardduty", "firebreak-manual"] {
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
    assert!(refused >= 24);
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&emu.sdk_config().await)
            .force_path_style(true)
            .build(),
    );
    let listed = s3.list_objects_v2().bucket(&s.bucket).send().await.unwrap();
    assert!(
        listed.contents().is_empty(),
        "nothing recorded for refused events"
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
    let (out, body) = fns.aws_cli_invoke("firebreak-manual", &isolate);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert!(
        statuses(&answer).contains(&("isolate_instance".into(), "done".into())),
        "{answer:#}"
    );
    let id = answer["incidents"][0]["id"].as_str().unwrap().to_string();

    let release = json!({"command": "release", "incident_id": id, "requested_by": "oncall-alice", "reason": "false positive"});
    let (out, body) = fns.aws_cli_invoke("firebreak-manual", &release);
    assert!(out.status.success());
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert!(
        statuses(&answer).contains(&("release".into(), "done".into())),
        "{answer:#}"
    );
    let ec2 = aws_sdk_ec2::Client::new(&emu.sdk_config().await);
    let enis = support::enis_of(&ec2, &s.instance).await;
    let groups: Vec<&str> = enis[0]
        .groups()
        .iter()
        .filter_map(|g| g.group_id())
        .collect();
    assert_eq!(groups, vec![s.web_group.as_str()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarm_function_keeps_logs_longer_and_the_expirer_answers() {
    let emu = Emulator::start();
    let s = seed(&emu).await;
    let fns = Functions::start(&emu, &s.settings());
    let a = answer(&fns.invoke_file(
        "firebreak-alarm",
        &root().join("events/alarm-failed-login.json"),
    ));
    assert!(
        statuses(&a).contains(&("increase_monitoring".into(), "done".into())),
        "{a:#}"
    );
    let logs = aws_sdk_cloudwatchlogs::Client::new(&emu.sdk_config().await);
    let g = logs
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
    let e = answer(&fns.invoke("firebreak-expirer", &json!({"source": "aws.scheduler"})));
    assert_eq!(e["lifted"], json!([]), "nothing is due yet: {e}");
}
