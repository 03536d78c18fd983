//! The emergency lockdown against a real local AWS (moto over HTTP): it
//! changes exactly its targets, a replay changes and copies nothing, an
//! interrupted evidence copy resumes without copying twice, the protected
//! tag refuses its part live, and a dry run changes nothing. (Its release
//! through `firebreak release` is in crates/cli/tests/respond.rs; a failed
//! part in crates/aws/tests/failures.rs.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use firebreak_aws::actions::elb::maintenance_response;
use firebreak_aws::actions::evidence::{self, Bounds, Destination, Source};
use firebreak_aws::gate::Gate;
use firebreak_aws::outcome::{ActionOutcome, Status};
use firebreak_aws::{Clients, Executor, IncidentReport, Progress};
use firebreak_core::{plan_event, ActionKind, Config};
use serde_json::Value;
use support::lockdown::{self as seeded, Targets};
use support::Emulator;

/// An account with the records bucket, the topics (the team's inbox
/// readable) and a lockdown's targets.
struct Rig {
    emu: Emulator,
    clients: Clients,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    bucket: String,
    targets: Targets,
    vars: BTreeMap<String, String>,
}

async fn rig(name: &str) -> Rig {
    let emu = Emulator::start();
    let sdk = emu.sdk_config().await;
    let clients = Clients::from_config(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let bucket = format!("{name}-records");
    support::create_bucket(&clients.s3, &bucket).await;
    let topics = support::topics_with_inbox(&clients.sns, &sqs).await;
    let (vpc, subnet, _) = support::vpc_with_subnet(&clients.ec2).await;
    let targets = seeded::seed(&clients, &vpc, &subnet, name).await;
    let vars = [
        ("FIREBREAK_RECORDS_BUCKET", bucket.clone()),
        ("FIREBREAK_TEAM_TOPIC_ARN", topics.team),
        ("FIREBREAK_STAKEHOLDER_TOPIC_ARN", topics.stakeholders),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Rig {
        emu,
        clients,
        sqs,
        queue_url: topics.queue_url,
        bucket,
        targets,
        vars,
    }
}

impl Rig {
    fn config(&self, extra: &[(&str, &str)]) -> Arc<Config> {
        let mut vars = self.vars.clone();
        for (k, v) in extra {
            vars.insert(k.to_string(), v.to_string());
        }
        Arc::new(Config::load(&vars, None).unwrap())
    }

    async fn run(&self, cfg: &Arc<Config>, command: &Value) -> IncidentReport {
        let plans = plan_event(command.to_string().as_bytes(), cfg).unwrap();
        let exec = Executor::connect(self.clients.clone(), cfg.clone())
            .await
            .unwrap();
        exec.run(&plans.incidents[0]).await
    }

    /// What the lockdown may change, read through the SDK.
    async fn state(&self) -> Value {
        let (c, t) = (&self.clients, &self.targets);
        serde_json::json!({
            "desired": seeded::desired_count(&c.ecs, &t.cluster, &t.service).await,
            "listener": format!("{:?}", seeded::default_actions(&c.elb, &t.listener_arn).await),
            "rules": format!("{:?}", seeded::other_rules(&c.elb, &t.listener_arn).await),
            "secret": seeded::current_version(&c.secrets, &t.secret_id).await,
            "retention": seeded::retention(&c.logs, &t.log_group).await,
            "evidence": support::object_keys(&c.s3, &self.bucket, "evidence/").await,
            "uploads": support::object_keys(&c.s3, &t.uploads, "").await,
        })
    }
}

fn action(r: &IncidentReport, k: ActionKind) -> &ActionOutcome {
    r.actions
        .iter()
        .find(|a| a.kind == k)
        .unwrap_or_else(|| panic!("no {} in {r:#?}", k.as_str()))
}

fn statuses(r: &IncidentReport) -> Vec<(&str, Status)> {
    r.actions
        .iter()
        .map(|a| (a.kind.as_str(), a.status))
        .collect()
}

/// Every notice of a lockdown says EMERGENCY LOCKDOWN, why, and what a
/// release will and will not undo; other incidents' notices do not.
#[test]
fn a_lockdowns_notices_say_emergency_lockdown_and_what_a_release_keeps() {
    use firebreak_aws::actions::notify::{chatbot, message, subject};
    let cfg = Config::load(&BTreeMap::new(), None).unwrap();
    let plan = |name: &str| {
        let bytes = std::fs::read(support::workspace_root().join("events").join(name)).unwrap();
        plan_event(&bytes, &cfg).unwrap().incidents.remove(0)
    };
    let p = plan("command-lockdown.json");
    assert_eq!(
        subject(&p, &[]),
        "[Firebreak] EMERGENCY LOCKDOWN CRITICAL COMMAND:LOCKDOWN (recorded)"
    );
    let m = message(&p, &[], None);
    assert!(m.contains("EMERGENCY LOCKDOWN: Admin credentials"), "{m}");
    assert!(m.contains("rotated secrets stay rotated"), "{m}");
    let v: Value = serde_json::from_str(&chatbot(&p, &[], None)).unwrap();
    assert!(v["content"]["title"]
        .as_str()
        .unwrap()
        .contains("EMERGENCY LOCKDOWN"));
    let other = plan("command-isolate-instance.json");
    assert!(!subject(&other, &[]).contains("LOCKDOWN"));
    assert!(!message(&other, &[], None).contains("LOCKDOWN"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lockdown_changes_exactly_its_targets_and_a_replay_changes_nothing() {
    let rig = rig("lock").await;
    let (c, t) = (&rig.clients, &rig.targets);
    let cfg = rig.config(&[]);
    let secret_before = seeded::current_version(&c.secrets, &t.secret_id).await;
    let rules_before = seeded::other_rules(&c.elb, &t.listener_arn).await;
    let first = rig.run(&cfg, &seeded::command(t, "users/")).await;
    use Status::{AlreadyDone, Done};
    assert_eq!(
        statuses(&first),
        vec![
            ("scale_service_to_zero", Done),
            ("serve_maintenance_response", Done),
            ("rotate_secret", Done),
            ("increase_monitoring", Done),
            ("copy_evidence", Done),
            ("record_incident", Done),
            ("notify_team", Done),
            ("notify_stakeholders", Done),
        ],
        "{first:#?}"
    );
    // The service, the listener, the secret, the logs.
    assert_eq!(
        seeded::desired_count(&c.ecs, &t.cluster, &t.service).await,
        0
    );
    let scaled = action(&first, ActionKind::ScaleServiceToZero);
    assert_eq!(scaled.prior_state["desired_count"], seeded::DESIRED);
    assert_eq!(
        seeded::default_actions(&c.elb, &t.listener_arn).await,
        vec![maintenance_response()]
    );
    assert_eq!(
        seeded::other_rules(&c.elb, &t.listener_arn).await,
        rules_before,
        "the listener's other rules stay as they are"
    );
    let listener = action(&first, ActionKind::ServeMaintenanceResponse);
    let recorded = &listener.prior_state["default_actions"][0];
    assert_eq!(recorded["type"], "forward");
    assert_eq!(recorded["forward"]["target_groups"][0]["weight"], 80);
    assert_eq!(recorded["forward"]["stickiness"]["duration_seconds"], 300);
    let rotated = action(&first, ActionKind::RotateSecret);
    assert_eq!(
        rotated.prior_state["version_before"],
        secret_before.as_str()
    );
    let after = seeded::current_version(&c.secrets, &t.secret_id).await;
    assert_ne!(after, secret_before, "a new version is current");
    assert_eq!(rotated.prior_state["version_after"], after.as_str());
    assert_eq!(seeded::retention(&c.logs, &t.log_group).await, Some(365));

    // The evidence: every object under users/, nothing else, encrypted,
    // with its source's ETag in the copy and in the record.
    let id = &first.id;
    let prefix = format!("evidence/{id}/{}/", t.uploads);
    let copies = support::object_keys(&c.s3, &rig.bucket, "evidence/").await;
    let mut want: Vec<String> = t
        .user_objects
        .iter()
        .map(|k| format!("{prefix}{k}"))
        .collect();
    want.sort();
    assert_eq!(copies, want);
    let copy = action(&first, ActionKind::CopyEvidence);
    for (o, (key, body)) in copy.prior_state["objects"]
        .as_array()
        .unwrap()
        .iter()
        .zip(seeded::USER_OBJECTS.iter().map(|(k, b)| (k.to_string(), b)))
    {
        let source =
            c.s3.head_object()
                .bucket(&t.uploads)
                .key(&key)
                .send()
                .await
                .unwrap();
        assert_eq!(o["key"], key.as_str());
        assert_eq!(o["etag"], source.e_tag().unwrap());
        let dest = format!("{prefix}{key}");
        let head =
            c.s3.head_object()
                .bucket(&rig.bucket)
                .key(&dest)
                .send()
                .await
                .unwrap();
        assert_eq!(
            head.metadata().unwrap()[evidence::SOURCE_ETAG],
            source.e_tag().unwrap()
        );
        assert_eq!(
            head.server_side_encryption(),
            Some(&aws_sdk_s3::types::ServerSideEncryption::Aes256)
        );
        assert_eq!(
            support::object_bytes(&c.s3, &rig.bucket, &dest).await,
            body.as_bytes()
        );
    }

    // Everyone was told, and told it is a lockdown.
    let notices = support::notices(&rig.sqs, &rig.queue_url).await;
    assert_eq!(notices.len(), 1, "{notices:#?}");
    let subject = notices[0]["Subject"].as_str().unwrap();
    assert!(subject.contains("EMERGENCY LOCKDOWN"), "{subject}");

    // The same command again: nothing changes, nothing is copied twice,
    // nobody is told twice.
    let state = rig.state().await;
    let replay = rig.run(&cfg, &seeded::command(t, "users/")).await;
    assert!(
        replay.actions.iter().all(|a| a.status == AlreadyDone),
        "{replay:#?}"
    );
    assert_eq!(rig.state().await, state);
    assert!(support::notices(&rig.sqs, &rig.queue_url).await.is_empty());
    support::assert_records_match_schema(&c.s3, &rig.bucket).await;
    drop(rig.emu);
}

/// An evidence copy cut short (here: a copy deleted) is finished by the
/// next attempt, which copies only what is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_evidence_copy_resumes_without_copying_twice() {
    let rig = rig("resume").await;
    let (c, t) = (&rig.clients, &rig.targets);
    let from = Source {
        s3: &c.s3,
        bucket: &t.uploads,
        prefix: "users/",
    };
    let to = Destination {
        s3: &c.s3,
        bucket: &rig.bucket,
        prefix: format!("evidence/fb-test/{}/", t.uploads),
        incident_id: "fb-test",
        kms_key_id: None,
    };
    let bounds = Bounds {
        max_objects: 10,
        max_bytes: 1 << 20,
    };
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen_in = seen.clone();
    let progress = Progress::new(move |n, total, key| {
        seen_in.lock().unwrap().push((n, total, key.to_string()));
    });
    let gate = Gate::open();
    let copy = || evidence::copy_evidence(&from, &to, bounds, &progress, &gate);
    let first = copy().await.unwrap();
    assert!(!first.already(), "{first:?}");
    let steps = seen.lock().unwrap().clone();
    assert_eq!(steps.len(), 3, "progress for each object: {steps:?}");
    assert!(steps.iter().all(|(_, total, _)| *total == 3));
    let lost = format!("{}users/2.json", to.prefix);
    let kept = format!("{}users/1.json", to.prefix);
    let records = rig.bucket.as_str();
    let stamp = |key: String| async move {
        c.s3.head_object()
            .bucket(records)
            .key(key)
            .send()
            .await
            .unwrap()
            .last_modified()
            .cloned()
    };
    let kept_at = stamp(kept.clone()).await;
    c.s3.delete_object()
        .bucket(&rig.bucket)
        .key(&lost)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let second = copy().await.unwrap();
    let objects = second.prior_state["objects"].as_array().unwrap();
    let existed: Vec<(&str, bool)> = objects
        .iter()
        .map(|o| (o["key"].as_str().unwrap(), o["existed"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        existed,
        vec![
            ("users/1.json", true),
            ("users/2.json", false),
            ("users/with space+plus.json", true)
        ]
    );
    assert_eq!(stamp(kept).await, kept_at, "not copied a second time");
    let third = copy().await.unwrap();
    assert!(third.already(), "{third:?}");
    // Over a bound: nothing is copied, and the refusal says which.
    let tight = Bounds {
        max_objects: 2,
        max_bytes: 1 << 20,
    };
    let to_elsewhere = Destination {
        prefix: "evidence/fb-tight/".into(),
        ..to.clone()
    };
    let refused = evidence::copy_evidence(&from, &to_elsewhere, tight, &progress, &gate)
        .await
        .unwrap();
    assert!(
        refused
            .detail
            .contains("more than 2 objects (FIREBREAK_EVIDENCE_MAX_OBJECTS)"),
        "{}",
        refused.detail
    );
    assert!(
        support::object_keys(&c.s3, &rig.bucket, "evidence/fb-tight/")
            .await
            .is_empty()
    );
}

/// The protected tag on the cluster, the load balancer or the secret,
/// read right before the change, refuses that part; the rest is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_protected_tag_refuses_its_part_and_the_rest_is_done() {
    let rig = rig("guard").await;
    let (c, t) = (&rig.clients, &rig.targets);
    let cluster_arn = c
        .ecs
        .describe_clusters()
        .clusters(&t.cluster)
        .send()
        .await
        .unwrap()
        .clusters()[0]
        .cluster_arn()
        .unwrap()
        .to_string();
    c.ecs
        .tag_resource()
        .resource_arn(cluster_arn)
        .tags(
            aws_sdk_ecs::types::Tag::builder()
                .key("firebreak:protected")
                .value("true")
                .build(),
        )
        .send()
        .await
        .unwrap();
    c.elb
        .add_tags()
        .resource_arns(&t.load_balancer_arn)
        .tags(
            aws_sdk_elasticloadbalancingv2::types::Tag::builder()
                .key("firebreak:protected")
                .value("true")
                .build(),
        )
        .send()
        .await
        .unwrap();
    // The configured tag counts as well as the fixed one.
    c.secrets
        .tag_resource()
        .secret_id(&t.secret_id)
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key("crown-jewel")
                .value("yes")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let before = rig.state().await;
    let cfg = rig.config(&[("FIREBREAK_PROTECTED_TAG", "crown-jewel")]);
    let r = rig.run(&cfg, &seeded::command(t, "users/")).await;
    use Status::{Done, Skipped};
    let lockdown: Vec<_> = statuses(&r).into_iter().take(5).collect();
    assert_eq!(
        lockdown,
        vec![
            ("scale_service_to_zero", Skipped),
            ("serve_maintenance_response", Skipped),
            ("rotate_secret", Skipped),
            ("increase_monitoring", Done),
            ("copy_evidence", Done),
        ],
        "{r:#?}"
    );
    for (k, why) in [
        (ActionKind::ScaleServiceToZero, "cluster guard-cluster of service guard-api carries the protected tag `firebreak:protected`"),
        (ActionKind::ServeMaintenanceResponse, "carries the protected tag `firebreak:protected`"),
        (ActionKind::RotateSecret, "carries the protected tag `crown-jewel`"),
    ] {
        let d = &action(&r, k).detail;
        assert!(d.contains(why), "{}: {d}", k.as_str());
    }
    let after = rig.state().await;
    for part in ["desired", "listener", "secret"] {
        assert_eq!(after[part], before[part], "{part} was changed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_shows_every_step_and_changes_nothing() {
    let rig = rig("dry").await;
    let cfg = rig.config(&[("FIREBREAK_DRY_RUN", "true")]);
    let before = rig.state().await;
    let r = rig
        .run(&cfg, &seeded::command(&rig.targets, "users/"))
        .await;
    let would: Vec<&str> = r
        .actions
        .iter()
        .filter(|a| a.kind.is_containment())
        .map(|a| {
            assert_eq!(a.status, Status::Skipped, "{a:?}");
            assert!(
                a.detail.starts_with("dry run: would ") && a.detail.contains("emergency lockdown"),
                "{a:?}"
            );
            a.kind.as_str()
        })
        .collect();
    assert_eq!(would.len(), 5, "{would:?}");
    assert_eq!(rig.state().await, before);
}

/// A lockdown in a member account acts there, through the member role
/// (the home account has no such service); its evidence is read and
/// written with that role's credentials, so it goes only into
/// `FIREBREAK_EVIDENCE_BUCKET`, never into the records bucket at home.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lockdown_in_a_member_account_acts_there_and_copies_only_where_that_role_may_write() {
    const MEMBER: &str = "444455556666";
    let emu = Emulator::start_organisation();
    let home = emu.clients().await;
    let out = home
        .sts
        .assume_role()
        .role_arn(format!("arn:aws:iam::{MEMBER}:role/firebreak-member"))
        .role_session_name("test-seeding")
        .send()
        .await
        .unwrap();
    let creds = out.credentials().unwrap();
    let member = Clients::from_config(
        &emu.sdk_config()
            .await
            .to_builder()
            .credentials_provider(aws_sdk_sts::config::SharedCredentialsProvider::new(
                aws_sdk_sts::config::Credentials::new(
                    creds.access_key_id(),
                    creds.secret_access_key(),
                    Some(creds.session_token().to_string()),
                    None,
                    "tests",
                ),
            ))
            .build(),
    );
    support::create_bucket(&home.s3, "org-records").await;
    let (vpc, subnet, _) = support::vpc_with_subnet(&member.ec2).await;
    let t = seeded::seed(&member, &vpc, &subnet, "org").await;
    support::create_bucket(&member.s3, "org-evidence").await;
    let config = |extra: &[(&str, &str)]| {
        let vars: BTreeMap<String, String> = [
            ("FIREBREAK_RECORDS_BUCKET", "org-records"),
            ("FIREBREAK_MEMBER_ROLE_NAME", "firebreak-member"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Arc::new(Config::load(&vars, None).unwrap())
    };
    let run = |cfg: Arc<Config>, command: Value| {
        let home = home.clone();
        async move {
            let plans = plan_event(command.to_string().as_bytes(), &cfg).unwrap();
            let exec = Executor::connect(home, cfg).await.unwrap();
            exec.run(&plans.incidents[0]).await
        }
    };
    let mut command = seeded::command(&t, "users/");
    command["account"] = MEMBER.into();
    let r = run(config(&[]), command.clone()).await;
    assert_eq!(
        action(&r, ActionKind::ScaleServiceToZero).status,
        Status::Done,
        "{r:#?}"
    );
    assert_eq!(
        seeded::desired_count(&member.ecs, &t.cluster, &t.service).await,
        0
    );
    // Through the member role only the manual function may assume, never
    // the containment role a finding's function reaches.
    let uri = r.record.clone().unwrap();
    let key = uri.trim_start_matches("s3://org-records/");
    let record: Value =
        serde_json::from_slice(&support::object_bytes(&home.s3, "org-records", key).await).unwrap();
    let session = record["acted_in"]["session"].as_str().unwrap_or_default();
    assert!(
        session.contains("assumed-role/firebreak-member-lockdown/"),
        "{record}"
    );
    let copy = action(&r, ActionKind::CopyEvidence);
    assert_eq!(copy.status, Status::Skipped, "{copy:?}");
    assert!(
        copy.detail.contains("set FIREBREAK_EVIDENCE_BUCKET"),
        "{copy:?}"
    );
    assert!(support::object_keys(&home.s3, "org-records", "evidence/")
        .await
        .is_empty());

    command["request_id"] = "with an evidence bucket".into();
    // The records' KMS key is for the records bucket: the member's lockdown
    // role has no grant on it, so copies into the EvidenceBucket are SSE-S3.
    let r = run(
        config(&[
            ("FIREBREAK_EVIDENCE_BUCKET", "org-evidence"),
            ("FIREBREAK_RECORDS_KMS_KEY_ID", "alias/firebreak-records"),
        ]),
        command,
    )
    .await;
    let copy = action(&r, ActionKind::CopyEvidence);
    assert_eq!(copy.status, Status::Done, "{copy:?}");
    let kept = support::object_keys(&member.s3, "org-evidence", "evidence/").await;
    assert_eq!(kept.len(), seeded::USER_OBJECTS.len(), "{kept:?}");
    assert!(
        kept.iter()
            .all(|k| k.starts_with(&format!("evidence/{}/org-uploads/users/", r.id))),
        "{kept:?}"
    );
    let head = member
        .s3
        .head_object()
        .bucket("org-evidence")
        .key(&kept[0])
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.server_side_encryption(),
        Some(&aws_sdk_s3::types::ServerSideEncryption::Aes256),
        "{head:?}"
    );
}
