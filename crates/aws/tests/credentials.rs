//! Credential containment against a real local AWS (moto over HTTP): a
//! user quarantined and released exactly, a leaked key's minted sessions cut
//! with the key, an instance role's sessions revoked and released, and the
//! principals Firebreak must not touch left alone with the reason why.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;

use aws_sdk_iam::types::{StatusType, Tag};
use firebreak_aws::actions::iam::{decode_policy, QUARANTINE_POLICY_NAME, REVOKE_POLICY_NAME};
use firebreak_aws::outcome::Status;
use firebreak_aws::Executor;
use firebreak_core::ActionKind;
use serde_json::{json, Value};
use support::account::{account, action, event, leaked_key, run_one, status_of, Account};
use support::Emulator;

/// Everything IAM says about a user's permissions: inline policy names
/// with their documents (decoded), and the managed policies attached.
async fn permissions(iam: &aws_sdk_iam::Client, user: &str) -> BTreeMap<String, String> {
    let mut all = BTreeMap::new();
    let names = iam
        .list_user_policies()
        .user_name(user)
        .send()
        .await
        .unwrap();
    for name in names.policy_names() {
        let got = iam
            .get_user_policy()
            .user_name(user)
            .policy_name(name)
            .send()
            .await
            .unwrap();
        all.insert(
            format!("inline:{name}"),
            decode_policy(got.policy_document()),
        );
    }
    let attached = iam
        .list_attached_user_policies()
        .user_name(user)
        .send()
        .await
        .unwrap();
    for p in attached.attached_policies() {
        all.insert(
            format!("managed:{}", p.policy_arn().unwrap_or_default()),
            String::new(),
        );
    }
    all
}

/// The user's inline policy `name`, parsed; `None` if it has none.
async fn inline(iam: &aws_sdk_iam::Client, user: &str, name: &str) -> Option<Value> {
    let got = iam
        .get_user_policy()
        .user_name(user)
        .policy_name(name)
        .send()
        .await
        .ok()?;
    Some(serde_json::from_str(&decode_policy(got.policy_document())).unwrap())
}

/// A user with an inline policy and a managed policy of its own, so a
/// release can be seen to put back exactly what was there.
async fn user_with_permissions(iam: &aws_sdk_iam::Client, user: &str) {
    iam.create_user().user_name(user).send().await.unwrap();
    let read = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::reports/*"}]}"#;
    iam.put_user_policy()
        .user_name(user)
        .policy_name("ReadReports")
        .policy_document(read)
        .send()
        .await
        .unwrap();
    let managed = iam
        .create_policy()
        .policy_name(format!("{user}-billing"))
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ce:GetCostAndUsage","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    let arn = managed.policy().unwrap().arn().unwrap();
    iam.attach_user_policy()
        .user_name(user)
        .policy_arn(arn)
        .send()
        .await
        .unwrap();
}

fn release(incident: &str, force: bool) -> Value {
    json!({"command": "release", "incident_id": incident, "force": force,
           "requested_by": "oncall-alice", "reason": "contained, credentials rotated"})
}

async fn executor(acct: &Account) -> Executor {
    Executor::connect(acct.clients.clone(), acct.cfg.clone())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runbook_alert_quarantines_the_user_and_release_restores_it_exactly() {
    let emu = Emulator::start();
    let acct = account(&emu, "records-quarantine").await;
    let iam = &acct.clients.iam;
    user_with_permissions(iam, "contractor-jane").await;
    let before = permissions(iam, "contractor-jane").await;
    let exec = executor(&acct).await;

    let alert = event("manual-compromised-account.json");
    let first = run_one(&exec, &acct.cfg, &alert).await;
    let q = action(&first, ActionKind::QuarantineUser);
    assert_eq!(q.status, Status::Done, "{first:#?}");
    assert_eq!(q.prior_state["previous_document"], Value::Null);
    let deny = inline(iam, "contractor-jane", QUARANTINE_POLICY_NAME)
        .await
        .expect("the quarantine policy is on the user");
    let statement = &deny["Statement"][0];
    assert_eq!(
        (
            &statement["Effect"],
            &statement["Action"],
            &statement["Resource"]
        ),
        (&json!("Deny"), &json!("*"), &json!("*")),
        "{deny}"
    );
    assert!(
        statement.get("Condition").is_none(),
        "unconditional: {deny}"
    );
    let during = permissions(iam, "contractor-jane").await;
    assert_eq!(during.len(), before.len() + 1, "{during:#?}");

    // The same alert again changes nothing.
    let again = run_one(&exec, &acct.cfg, &alert).await;
    assert_eq!(
        status_of(&again, ActionKind::QuarantineUser),
        Status::AlreadyDone
    );
    assert_eq!(permissions(iam, "contractor-jane").await, during);

    // A release (no force needed: nothing leaked is re-enabled) puts the
    // user back exactly as it was.
    let r = run_one(&exec, &acct.cfg, &release(&first.id, false)).await;
    assert_eq!(status_of(&r, ActionKind::Release), Status::Done, "{r:#?}");
    assert_eq!(permissions(iam, "contractor-jane").await, before);
    support::assert_records_match_schema(&acct.clients.s3, "records-quarantine").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quarantine_replacing_a_policy_of_the_same_name_puts_it_back() {
    let emu = Emulator::start();
    let acct = account(&emu, "records-quarantine-prior").await;
    let iam = &acct.clients.iam;
    iam.create_user()
        .user_name("contractor-jane")
        .send()
        .await
        .unwrap();
    // Someone's earlier hand-made lockout of the same name.
    let earlier = r#"{"Version":"2012-10-17","Statement":[{"Sid":"HandMade","Effect":"Deny","Action":"iam:*","Resource":"*"}]}"#;
    iam.put_user_policy()
        .user_name("contractor-jane")
        .policy_name(QUARANTINE_POLICY_NAME)
        .policy_document(earlier)
        .send()
        .await
        .unwrap();
    let before = permissions(iam, "contractor-jane").await;
    let exec = executor(&acct).await;
    let first = run_one(&exec, &acct.cfg, &event("command-quarantine-user.json")).await;
    let q = action(&first, ActionKind::QuarantineUser);
    assert_eq!(q.status, Status::Done, "{first:#?}");
    let recorded: Value =
        serde_json::from_str(q.prior_state["previous_document"].as_str().unwrap()).unwrap();
    assert_eq!(recorded["Statement"][0]["Sid"], "HandMade");
    let now = inline(iam, "contractor-jane", QUARANTINE_POLICY_NAME)
        .await
        .unwrap();
    assert_eq!(now["Statement"][0]["Action"], "*", "{now}");

    let r = run_one(&exec, &acct.cfg, &release(&first.id, false)).await;
    assert_eq!(status_of(&r, ActionKind::Release), Status::Done, "{r:#?}");
    assert_eq!(permissions(iam, "contractor-jane").await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaked_key_goes_inactive_with_its_minted_sessions_denied_and_release_undoes_both() {
    let emu = Emulator::start();
    let acct = account(&emu, "records-key-sessions").await;
    let iam = &acct.clients.iam;
    let keys = support::user_with_keys(iam, "ci-deployer", 2).await;
    let before = permissions(iam, "ci-deployer").await;
    let ev = leaked_key(&keys[0]);
    let exec = executor(&acct).await;

    let first = run_one(&exec, &acct.cfg, &ev).await;
    let d = action(&first, ActionKind::DeactivateAccessKey);
    assert_eq!(d.status, Status::Done, "{first:#?}");
    assert_eq!(
        support::key_states(iam, "ci-deployer", &keys).await,
        vec![Some(StatusType::Inactive), Some(StatusType::Active)]
    );
    let cut = inline(iam, "ci-deployer", REVOKE_POLICY_NAME)
        .await
        .expect("the user's older sessions are denied");
    let issued_before = cut["Statement"][0]["Condition"]["DateLessThan"]["aws:TokenIssueTime"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let issued_before = chrono::DateTime::parse_from_rfc3339(&issued_before)
        .unwrap_or_else(|e| panic!("{cut}: {e}"));
    assert!(issued_before <= chrono::Utc::now(), "{cut}");
    assert_eq!(cut["Statement"][0]["Effect"], "Deny");
    assert_eq!(
        d.prior_state["sessions"]["policy_name"], REVOKE_POLICY_NAME,
        "{:#}",
        d.prior_state
    );

    let again = run_one(&exec, &acct.cfg, &ev).await;
    assert_eq!(
        status_of(&again, ActionKind::DeactivateAccessKey),
        Status::AlreadyDone
    );
    assert_eq!(
        inline(iam, "ci-deployer", REVOKE_POLICY_NAME).await,
        Some(cut)
    );

    // Without force the leaked key stays off and its sessions stay cut.
    let kept = run_one(&exec, &acct.cfg, &release(&first.id, false)).await;
    let said = &action(&kept, ActionKind::Release).detail;
    assert!(said.contains("left Inactive"), "{kept:#?}");
    assert_eq!(
        support::key_states(iam, "ci-deployer", &keys).await[0],
        Some(StatusType::Inactive)
    );
    assert!(inline(iam, "ci-deployer", REVOKE_POLICY_NAME)
        .await
        .is_some());

    // Forced: both undone, the user exactly as before.
    let r = run_one(&exec, &acct.cfg, &release(&first.id, true)).await;
    assert_eq!(status_of(&r, ActionKind::Release), Status::Done, "{r:#?}");
    assert_eq!(
        support::key_states(iam, "ci-deployer", &keys).await,
        vec![Some(StatusType::Active), Some(StatusType::Active)]
    );
    assert_eq!(permissions(iam, "ci-deployer").await, before);
}

/// A human turned the leaked key off before the finding came (or before
/// GuardDuty sent it again): Firebreak still cuts its minted sessions, and
/// even a forced release lifts only that, never turning the key back on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_already_turned_off_stays_off_after_a_forced_release() {
    let emu = Emulator::start();
    let acct = account(&emu, "records-key-off").await;
    let iam = &acct.clients.iam;
    let keys = support::user_with_keys(iam, "ci-deployer", 1).await;
    iam.update_access_key()
        .user_name("ci-deployer")
        .access_key_id(&keys[0])
        .status(StatusType::Inactive)
        .send()
        .await
        .unwrap();
    let before = permissions(iam, "ci-deployer").await;
    let ev = leaked_key(&keys[0]);
    let exec = executor(&acct).await;

    let first = run_one(&exec, &acct.cfg, &ev).await;
    let d = action(&first, ActionKind::DeactivateAccessKey);
    assert_eq!(d.status, Status::Done, "{first:#?}");
    assert!(d.detail.contains("was already Inactive"), "{d:?}");
    assert!(!d.calls.iter().any(|c| c == "UpdateAccessKey"), "{d:?}");
    assert_eq!(d.prior_state["status"], "Inactive", "{:#}", d.prior_state);
    assert!(inline(iam, "ci-deployer", REVOKE_POLICY_NAME)
        .await
        .is_some());

    let r = run_one(&exec, &acct.cfg, &release(&first.id, true)).await;
    let rel = action(&r, ActionKind::Release);
    assert_eq!(rel.status, Status::Done, "{r:#?}");
    assert!(rel.detail.contains("left Inactive"), "{rel:?}");
    assert_eq!(
        support::key_states(iam, "ci-deployer", &keys).await,
        vec![Some(StatusType::Inactive)]
    );
    assert_eq!(permissions(iam, "ci-deployer").await, before);
}

/// A responder's later request on the same incident (the Security Hub
/// custom action firebreak-quarantine on the GuardDuty finding) runs a plan
/// of its own, whose outcomes share the incident and restart at index 0. A
/// release of one action by its index undoes that action of the record's
/// plan only; the whole release undoes everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_by_index_undoes_that_action_of_the_record_alone() {
    let emu = Emulator::start();
    let acct = account(&emu, "records-by-index").await;
    let iam = &acct.clients.iam;
    let keys = support::user_with_keys(iam, "ci-deployer", 1).await;
    let before = permissions(iam, "ci-deployer").await;
    let ev = leaked_key(&keys[0]);
    let exec = executor(&acct).await;
    let found = run_one(&exec, &acct.cfg, &ev).await;
    let asked = run_one(
        &exec,
        &acct.cfg,
        &event("securityhub-guardduty-leaked-key-custom-quarantine.json"),
    )
    .await;
    assert_eq!(asked.id, found.id, "one incident");
    let q = action(&asked, ActionKind::QuarantineUser);
    assert_eq!((q.status, q.index), (Status::Done, 0), "{asked:#?}");
    assert!(inline(iam, "ci-deployer", QUARANTINE_POLICY_NAME)
        .await
        .is_some());

    // Index 0 of the record's plan is the (skipped) block: nothing to undo,
    // and the quarantine, index 0 of the later plan, stays.
    let mut by_index = release(&found.id, true);
    by_index["action"] = 0.into();
    let r = run_one(&exec, &acct.cfg, &by_index).await;
    assert_eq!(
        status_of(&r, ActionKind::Release),
        Status::AlreadyDone,
        "{r:#?}"
    );
    assert!(inline(iam, "ci-deployer", QUARANTINE_POLICY_NAME)
        .await
        .is_some());

    // The whole release undoes the key's sessions' denial, the key (forced)
    // and the quarantine.
    let r = run_one(&exec, &acct.cfg, &release(&found.id, true)).await;
    assert_eq!(status_of(&r, ActionKind::Release), Status::Done, "{r:#?}");
    assert_eq!(
        support::key_states(iam, "ci-deployer", &keys).await,
        vec![Some(StatusType::Active)]
    );
    assert_eq!(permissions(iam, "ci-deployer").await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stolen_instance_credentials_revoke_the_role_and_release_lifts_it() {
    let emu = Emulator::start();
    let acct = account(&emu, "records-instance-creds").await;
    let iam = &acct.clients.iam;
    support::ec2_role(iam, "app-server-role").await;
    let exec = executor(&acct).await;
    let ev = event("guardduty-temporary-credentials.json");
    assert!(ev["detail"]["type"]
        .as_str()
        .unwrap()
        .contains("InstanceCredentialExfiltration"));
    let first = run_one(&exec, &acct.cfg, &ev).await;
    assert_eq!(
        status_of(&first, ActionKind::RevokeRoleSessions),
        Status::Done,
        "{first:#?}"
    );
    let policies = |iam: aws_sdk_iam::Client| async move {
        iam.list_role_policies()
            .role_name("app-server-role")
            .send()
            .await
            .unwrap()
            .policy_names()
            .to_vec()
    };
    assert_eq!(policies(iam.clone()).await, vec![REVOKE_POLICY_NAME]);
    let r = run_one(&exec, &acct.cfg, &release(&first.id, false)).await;
    assert_eq!(status_of(&r, ActionKind::Release), Status::Done, "{r:#?}");
    assert!(policies(iam.clone()).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_and_unmodifiable_principals_are_skipped_with_their_reasons() {
    let emu = Emulator::start();
    let acct = account(&emu, "records-untouchable").await;
    let iam = &acct.clients.iam;
    let exec = executor(&acct).await;

    // Tagged protected: refused when it is about to happen (the command
    // names only the user, so the tag is read then).
    iam.create_user()
        .user_name("contractor-jane")
        .tags(
            Tag::builder()
                .key("firebreak:protected")
                .value("true")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let r = run_one(&exec, &acct.cfg, &event("command-quarantine-user.json")).await;
    let q = action(&r, ActionKind::QuarantineUser);
    assert_eq!(q.status, Status::Skipped, "{r:#?}");
    assert!(q.detail.contains("protected tag"), "{q:#?}");
    assert!(permissions(iam, "contractor-jane").await.is_empty());

    // A protected principal by name: skipped at plan time, never attempted.
    iam.create_user()
        .user_name("break-glass-admin")
        .send()
        .await
        .unwrap();
    let mut cmd = event("command-quarantine-user.json");
    cmd["user_name"] = "break-glass-admin".into();
    let r = run_one(&exec, &acct.cfg, &cmd).await;
    let q = action(&r, ActionKind::QuarantineUser);
    assert_eq!(q.status, Status::Skipped, "{r:#?}");
    assert!(q.detail.contains("protected principal"), "{q:#?}");
    assert!(permissions(iam, "break-glass-admin").await.is_empty());

    // An Identity Center role: handed to a human with what to do instead.
    let sso = "AWSReservedSSO_AdministratorAccess_0123456789abcdef";
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"arn:aws:iam::111122223333:saml-provider/AWSSSO_0123456789abcdef_DO_NOT_DELETE"},"Action":"sts:AssumeRoleWithSAML"}]}"#;
    iam.create_role()
        .role_name(sso)
        .path("/aws-reserved/sso.amazonaws.com/")
        .assume_role_policy_document(trust)
        .send()
        .await
        .unwrap();
    let r = run_one(
        &exec,
        &acct.cfg,
        &event("guardduty-identity-center-session.json"),
    )
    .await;
    let revoke = action(&r, ActionKind::RevokeRoleSessions);
    assert_eq!(revoke.status, Status::Skipped, "{r:#?}");
    assert!(
        revoke.detail.contains("Identity Center"),
        "{:#?}",
        revoke.detail
    );
    assert!(revoke.calls.is_empty(), "never attempted: {revoke:#?}");
    let on_role = iam
        .list_role_policies()
        .role_name(sso)
        .send()
        .await
        .unwrap();
    assert!(on_role.policy_names().is_empty());
}
