//! An organisation against the local AWS: Firebreak runs in the security
//! account and acts in a member account through the role it assumes there
//! (moto keeps each account's resources apart and honours STS AssumeRole
//! across accounts), in the finding's own region. What it did is listed,
//! checked against the NACLs, and released back to the recorded prior state.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_iam::types::StatusType;
use aws_sdk_sts::config::{Credentials, SharedCredentialsProvider};
use firebreak_aws::account::caller_account;
use firebreak_aws::inventory::{Filter, IncidentStatus};
use firebreak_aws::outcome::{ActionOutcome, Status};
use firebreak_aws::{Clients, Executor, IncidentReport};
use firebreak_core::{plan_event, ActionKind, Config, Severity};
use serde_json::Value;
use support::{Emulator, MOTO_DEFAULT_ACCOUNT as HOME};

/// The member account the findings come from.
const MEMBER: &str = "444455556666";
/// The role `template-member.yaml` deploys there.
const ROLE: &str = "firebreak-member";

fn event(name: &str) -> Value {
    let path = support::workspace_root().join("events").join(name);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Settings from `vars` under events/policy.toml (which makes the brute
/// force HIGH, so it blocks, isolates and snapshots).
fn config(vars: &[(&str, &str)]) -> Arc<Config> {
    let policy =
        std::fs::read_to_string(support::workspace_root().join("events/policy.toml")).unwrap();
    let vars: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Arc::new(Config::load(&vars, Some(("policy.toml", &policy))).unwrap())
}

/// Clients acting in `account`, through the test's own AssumeRole (how the
/// test seeds and inspects the member account, independently of Firebreak).
async fn clients_in(emu: &Emulator, home: &Clients, account: &str) -> Clients {
    let out = home
        .sts
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/{ROLE}"))
        .role_session_name("test-seeding")
        .send()
        .await
        .unwrap();
    let c = out.credentials().unwrap();
    let sdk = emu
        .sdk_config()
        .await
        .to_builder()
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            None,
            "tests",
        )))
        .build();
    Clients::from_config(&sdk)
}

fn action(r: &IncidentReport, k: ActionKind) -> &ActionOutcome {
    r.actions
        .iter()
        .find(|a| a.kind == k)
        .unwrap_or_else(|| panic!("no {} in {r:#?}", k.as_str()))
}

async fn run_one(exec: &Executor, cfg: &Config, event: &Value) -> IncidentReport {
    let plan = plan_event(event.to_string().as_bytes(), cfg).unwrap();
    assert_eq!(plan.incidents.len(), 1);
    exec.run(&plan.incidents[0]).await
}

/// A records bucket and a team topic in the security account.
async fn bookkeeping(home: &Clients, bucket: &str) -> String {
    support::create_bucket(&home.s3, bucket).await;
    home.sns
        .create_topic()
        .name(format!("team-{bucket}"))
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap()
}

async fn record(home: &Clients, bucket: &str, id: &str) -> Value {
    let keys = support::object_keys(&home.s3, bucket, "incidents/").await;
    let key = keys
        .iter()
        .find(|k| k.ends_with(&format!("/{id}/incident.json")))
        .unwrap_or_else(|| panic!("no record of {id} in {keys:?}"));
    serde_json::from_slice(&support::object_bytes(&home.s3, bucket, key).await).unwrap()
}

async fn role_policies(iam: &aws_sdk_iam::Client, role: &str) -> Vec<String> {
    iam.list_role_policies()
        .role_name(role)
        .send()
        .await
        .unwrap()
        .policy_names()
        .to_vec()
}

/// The whole organisation story: three findings from the member account
/// (a leaked key, stolen role credentials, an SSH brute force) received in
/// the security account are contained in the member account through one
/// assumed role session; the security account is untouched; the listing
/// and the block ledger show them; `release` returns every changed resource
/// to its recorded prior state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_accounts_findings_are_contained_there_listed_and_released_back() {
    let emu = Emulator::start_organisation();
    let home = emu.clients().await;
    let bucket = "records-org";
    let team = bookkeeping(&home, bucket).await;
    let member = clients_in(&emu, &home, MEMBER).await;
    assert_eq!(caller_account(member.sts.clone()).await.unwrap(), MEMBER);

    // The same names in both accounts: acting in the wrong one would show.
    let mut keys = Vec::new();
    let mut nacls = Vec::new();
    for c in [&home, &member] {
        keys.push(
            support::user_with_keys(&c.iam, "ci-deployer", 1)
                .await
                .remove(0),
        );
        support::ec2_role(&c.iam, "app-server-role").await;
        nacls.push(support::vpc_with_subnet(&c.ec2).await);
    }
    let (home_key, member_key) = (&keys[0], &keys[1]);
    let (vpc, subnet, member_nacl) = nacls[1].clone();
    let home_nacl = nacls[0].2.clone();
    let (instance, web) = support::instance_with_volume(&member.ec2, &vpc, &subnet).await;
    let groups_before = support::eni_group_ids(&member.ec2, &instance).await;
    assert!(groups_before.contains(&web));

    let cfg = config(&[
        ("FIREBREAK_RECORDS_BUCKET", bucket),
        ("FIREBREAK_TEAM_TOPIC_ARN", &team),
        ("FIREBREAK_MEMBER_ROLE_NAME", ROLE),
        ("FIREBREAK_MEMBER_ACCOUNTS", MEMBER),
    ]);
    let exec = Executor::connect(home.clone(), cfg.clone()).await.unwrap();
    assert_eq!(exec.account(), HOME);

    let mut leaked = event("guardduty-leaked-key.json");
    leaked["detail"]["accountId"] = MEMBER.into();
    leaked["detail"]["resource"]["accessKeyDetails"]["accessKeyId"] = member_key.as_str().into();
    let mut stolen = event("guardduty-temporary-credentials.json");
    stolen["detail"]["accountId"] = MEMBER.into();
    let mut brute = support::brute_force_on(&instance, &subnet, &vpc);
    brute["detail"]["accountId"] = MEMBER.into();

    let mut reports = Vec::new();
    for ev in [&leaked, &stolen, &brute] {
        let r = run_one(&exec, &cfg, ev).await;
        assert!(r.failed().is_empty(), "{r:#?}");
        reports.push(r);
    }
    let kinds = [
        (0, ActionKind::DeactivateAccessKey),
        (1, ActionKind::RevokeRoleSessions),
        (2, ActionKind::BlockIp),
        (2, ActionKind::IsolateInstance),
        (2, ActionKind::SnapshotVolumes),
    ];
    for (n, k) in kinds {
        assert_eq!(
            action(&reports[n], k).status,
            Status::Done,
            "{:#?}",
            reports[n]
        );
    }

    // Contained in the member account…
    let states =
        support::key_states(&member.iam, "ci-deployer", std::slice::from_ref(member_key)).await;
    assert_eq!(states, vec![Some(StatusType::Inactive)]);
    assert_eq!(
        role_policies(&member.iam, "app-server-role").await,
        vec![firebreak_aws::actions::iam::REVOKE_POLICY_NAME.to_string()]
    );
    let denied = support::deny_entries(&member.ec2, &member_nacl, false).await;
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0].1, "198.51.100.77/32");
    assert!(support::termination_protected(&member.ec2, &instance).await);
    assert_ne!(
        support::eni_group_ids(&member.ec2, &instance).await,
        groups_before
    );
    // …and nothing in the security account.
    let states =
        support::key_states(&home.iam, "ci-deployer", std::slice::from_ref(home_key)).await;
    assert_eq!(states, vec![Some(StatusType::Active)]);
    assert!(role_policies(&home.iam, "app-server-role").await.is_empty());
    assert!(support::deny_entries(&home.ec2, &home_nacl, false)
        .await
        .is_empty());

    // Each record says where it acted and through which session; the three
    // incidents share the session the first one opened (kept per account
    // and region, not assumed again).
    let mut sessions = Vec::new();
    for r in &reports {
        let rec = record(&home, bucket, &r.id).await;
        assert_eq!(rec["acted_in"]["account"], MEMBER, "{rec}");
        assert_eq!(rec["acted_in"]["region"], "eu-west-1", "{rec}");
        sessions.push(rec["acted_in"]["session"].as_str().unwrap().to_string());
    }
    let first = format!("assumed-role/{ROLE}/firebreak-{}", reports[0].id);
    assert!(sessions[0].contains(&first), "{sessions:?}");
    assert!(sessions.iter().all(|s| *s == sessions[0]), "{sessions:?}");

    // The listing and the ledger show them.
    let nothing = |_: usize, _: usize| {};
    let listed = exec.incidents(&Filter::default(), &nothing).await.unwrap();
    assert_eq!(listed.len(), 3, "{listed:#?}");
    for s in &listed {
        assert_eq!(s.account.as_deref(), Some(MEMBER));
        assert_eq!(s.status, IncidentStatus::Contained, "{s:#?}");
    }
    let brute_listed = listed.iter().find(|s| s.id == reports[2].id).unwrap();
    let mut kinds: Vec<&str> = brute_listed
        .actions
        .iter()
        .map(|a| a.kind.as_str())
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["block_ip", "isolate_instance", "snapshot_volumes"]);
    let high = Filter {
        min_severity: Some(Severity::Critical),
        ..Filter::default()
    };
    assert!(exec.incidents(&high, &nothing).await.unwrap().is_empty());
    let elsewhere = Filter {
        account: Some(HOME.into()),
        ..Filter::default()
    };
    assert!(exec
        .incidents(&elsewhere, &nothing)
        .await
        .unwrap()
        .is_empty());
    let held = exec.blocks(&nothing).await.unwrap();
    assert_eq!(held.len(), 1, "{held:#?}");
    assert_eq!(held[0].marker.network_acl_id, member_nacl);
    assert_eq!(held[0].marker.account.as_deref(), Some(MEMBER));
    assert_eq!(held[0].marker.incident_id, reports[2].id);
    assert_eq!(held[0].state, "in_place", "{held:#?}");
    let detail = exec.incident(&reports[2].id).await.unwrap().unwrap();
    assert!(detail
        .outcomes
        .iter()
        .any(|o| o.kind == ActionKind::IsolateInstance && o.status == Status::Done));

    // Release: every changed resource back to its recorded prior state.
    let release = |id: &str, force: bool| serde_json::json!({"command": "release", "incident_id": id, "force": force, "requested_by": "oncall-alice", "reason": "org test"});
    // The progress a terminal shows: each step of the undo, then the end.
    let steps = Arc::new(std::sync::Mutex::new(Vec::<(usize, usize)>::new()));
    let seen = steps.clone();
    let releasing = exec
        .clone()
        .with_progress(firebreak_aws::Progress::new(move |n, total, _| {
            seen.lock().unwrap().push((n, total))
        }));
    for (r, force) in reports.iter().zip([true, false, false]) {
        let rel = run_one(&releasing, &cfg, &release(&r.id, force)).await;
        let a = action(&rel, ActionKind::Release);
        assert_eq!(a.status, Status::Done, "{rel:#?}");
        assert_eq!(a.prior_state["acted_in"]["account"], MEMBER, "{a:?}");
        // Through the member role only the release function may assume,
        // never the containment one.
        let session = a.prior_state["acted_in"]["session"].as_str().unwrap();
        assert!(
            session.contains(&format!("assumed-role/{ROLE}-release/")),
            "{session}"
        );
    }
    // Brute force: block, isolation, snapshots (kept as evidence) — three
    // steps and the end; the key and the role policy: one step each.
    assert_eq!(
        *steps.lock().unwrap(),
        vec![
            (0, 1),
            (1, 1),
            (0, 1),
            (1, 1),
            (0, 3),
            (1, 3),
            (2, 3),
            (3, 3)
        ]
    );
    let states =
        support::key_states(&member.iam, "ci-deployer", std::slice::from_ref(member_key)).await;
    assert_eq!(
        states,
        vec![Some(StatusType::Active)],
        "re-enabled with force"
    );
    assert!(role_policies(&member.iam, "app-server-role")
        .await
        .is_empty());
    assert!(support::deny_entries(&member.ec2, &member_nacl, false)
        .await
        .is_empty());
    assert!(!support::termination_protected(&member.ec2, &instance).await);
    assert_eq!(
        support::eni_group_ids(&member.ec2, &instance).await,
        groups_before
    );

    let listed = exec.incidents(&Filter::default(), &nothing).await.unwrap();
    let released: Vec<_> = listed
        .iter()
        .filter(|s| s.status == IncidentStatus::Released)
        .collect();
    assert_eq!(released.len(), 3, "{listed:#?}");
    assert!(exec.blocks(&nothing).await.unwrap().is_empty());
    support::assert_records_match_schema(&home.s3, bucket).await;
}

/// An account outside FIREBREAK_MEMBER_ACCOUNTS is recorded and told only,
/// with the reason; nothing is assumed or changed there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_outside_the_member_list_is_recorded_only() {
    let emu = Emulator::start_organisation();
    let home = emu.clients().await;
    let team = bookkeeping(&home, "records-org-other").await;
    let other = "777788889999";
    let stranger = clients_in(&emu, &home, other).await;
    let key = support::user_with_keys(&stranger.iam, "ci-deployer", 1).await;
    let cfg = config(&[
        ("FIREBREAK_RECORDS_BUCKET", "records-org-other"),
        ("FIREBREAK_TEAM_TOPIC_ARN", &team),
        ("FIREBREAK_MEMBER_ROLE_NAME", ROLE),
        ("FIREBREAK_MEMBER_ACCOUNTS", MEMBER),
    ]);
    let exec = Executor::connect(home.clone(), cfg.clone()).await.unwrap();
    let mut ev = event("guardduty-leaked-key.json");
    ev["detail"]["accountId"] = other.into();
    ev["detail"]["resource"]["accessKeyDetails"]["accessKeyId"] = key[0].as_str().into();
    let r = run_one(&exec, &cfg, &ev).await;
    let d = action(&r, ActionKind::DeactivateAccessKey);
    assert_eq!(d.status, Status::Skipped, "{d:?}");
    assert!(d.detail.contains("FIREBREAK_MEMBER_ACCOUNTS"), "{d:?}");
    assert_eq!(action(&r, ActionKind::RecordIncident).status, Status::Done);
    let rec = record(&home, "records-org-other", &r.id).await;
    assert!(rec.get("acted_in").is_none(), "acted nowhere: {rec}");
    assert_eq!(
        support::key_states(&stranger.iam, "ci-deployer", &key).await,
        vec![Some(StatusType::Active)]
    );
}

/// A finding from another region of the same account is contained in that
/// region (no role assumed), and the expirer lifts the block there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finding_in_another_region_is_contained_and_expired_there() {
    let emu = Emulator::start_organisation();
    let home = emu.clients().await;
    let team = bookkeeping(&home, "records-org-region").await;
    let west = home.in_region("us-west-2");
    let (_vpc, subnet, nacl) = support::vpc_with_subnet(&west.ec2).await;
    let (_, _, home_nacl) = support::vpc_with_subnet(&home.ec2).await;
    let cfg = config(&[
        ("FIREBREAK_RECORDS_BUCKET", "records-org-region"),
        ("FIREBREAK_TEAM_TOPIC_ARN", &team),
    ]);
    let exec = Executor::connect(home.clone(), cfg.clone()).await.unwrap();
    let block = serde_json::json!({"command": "block_ip", "ip": "198.51.100.90", "subnet_ids": [subnet], "account": HOME, "region": "us-west-2", "requested_by": "oncall", "reason": "region test"});
    let r = run_one(&exec, &cfg, &block).await;
    assert_eq!(
        action(&r, ActionKind::BlockIp).status,
        Status::Done,
        "{r:#?}"
    );
    assert_eq!(
        support::deny_entries(&west.ec2, &nacl, false).await.len(),
        1
    );
    assert!(support::deny_entries(&home.ec2, &home_nacl, false)
        .await
        .is_empty());
    let rec = record(&home, "records-org-region", &r.id).await;
    assert_eq!(
        rec["acted_in"],
        serde_json::json!({"account": HOME, "region": "us-west-2"})
    );

    let held = exec.blocks(&|_, _| {}).await.unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].marker.region.as_deref(), Some("us-west-2"));
    assert_eq!(held[0].state, "in_place", "{held:#?}");
    let later = chrono::Utc::now() + chrono::TimeDelta::hours(25);
    let lifted = exec.expire_blocks(later).await.unwrap();
    assert_eq!(lifted.len(), 1, "{lifted:#?}");
    assert_eq!(lifted[0].status, Status::Done, "{lifted:#?}");
    assert!(support::deny_entries(&west.ec2, &nacl, false)
        .await
        .is_empty());
}
