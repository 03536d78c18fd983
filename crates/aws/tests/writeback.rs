//! The Security Hub write-back (issue 21). The emulator has no
//! `BatchUpdateFindings`, so Security Hub's answers come from
//! aws-smithy-mocks, as Security Hub sends them (REST-JSON bodies, an
//! unprocessed finding in a 200 answer, `InvalidAccessException` where it
//! is not enabled); everything else — the records, the claims, the notices,
//! IAM — is the emulator, so exactly-once is the real mechanism.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::config::Credentials;
use aws_sdk_securityhub::operation::batch_update_findings::BatchUpdateFindingsInput;
use aws_sdk_securityhub::types::WorkflowStatus;
use aws_smithy_mocks::{create_mock_http_client, mock, MockResponseInterceptor, Rule, RuleMode};
use firebreak_aws::actions::securityhub::{self as hub, NOTE_CAP};
use firebreak_aws::outcome::{ActionOutcome, Status};
use firebreak_aws::{Clients, Executor, IncidentReport};
use firebreak_core::policy::SecurityHubFinding;
use firebreak_core::{plan_event, ActionKind, Config};
use serde_json::{json, Value};
use support::{Emulator, ACCOUNT};

/// GuardDuty's leaked-key finding as Security Hub has it.
const FINDING_ID: &str = "arn:aws:guardduty:eu-west-1:111122223333:detector/5ec2b1f0a7d94c3e8b6f0d2a1c3e5f70/finding/a2c7e1f4b9d8465e9a1b3c5d7e9f0a12";
const PRODUCT_ARN: &str = "arn:aws:securityhub:eu-west-1::product/aws/guardduty";

fn event(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../events")
        .join(name);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The finding as `GetFindings` returns it, with this workflow status.
fn asff(status: &str) -> Value {
    let mut f =
        event("securityhub-guardduty-leaked-key-imported.json")["detail"]["findings"][0].clone();
    f["Workflow"] = json!({ "Status": status });
    f["WorkflowState"] = json!(status);
    f
}

/// What Security Hub's calls answer, and the updates it was sent.
#[derive(Clone)]
struct Hub {
    client: aws_sdk_securityhub::Client,
    get: Arc<Rule>,
    sent: Arc<Mutex<Vec<BatchUpdateFindingsInput>>>,
}

impl Hub {
    fn updates(&self) -> Vec<BatchUpdateFindingsInput> {
        self.sent.lock().unwrap().clone()
    }
}

/// A Security Hub client whose `GetFindings` answers `found` (status, HTTP
/// body) for the leaked-key finding and whose `BatchUpdateFindings`
/// answers `updated` (status, body), keeping every update it is sent.
fn hub(found: (u16, Value), updated: (u16, Value)) -> Hub {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let seen = sent.clone();
    let get = mock!(aws_sdk_securityhub::Client::get_findings)
        .match_requests(|r| {
            let f = r.filters();
            let is = |v: &[aws_sdk_securityhub::types::StringFilter], want: &str| {
                v.len() == 1 && v[0].value() == Some(want)
            };
            f.is_some_and(|f| is(f.id(), FINDING_ID) && is(f.product_arn(), PRODUCT_ARN))
        })
        .sequence()
        .http_status(found.0, Some(found.1.to_string()))
        .repeatedly()
        .build();
    let update = mock!(aws_sdk_securityhub::Client::batch_update_findings)
        .match_requests(move |r| {
            seen.lock().unwrap().push(r.clone());
            true
        })
        .sequence()
        .http_status(updated.0, Some(updated.1.to_string()))
        .repeatedly()
        .build();
    let interceptor = MockResponseInterceptor::new()
        .rule_mode(RuleMode::MatchAny)
        .with_rule(&get)
        .with_rule(&update);
    let client = aws_sdk_securityhub::Client::from_conf(
        aws_sdk_securityhub::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "tests"))
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(2)
                    .with_initial_backoff(Duration::from_millis(1)),
            )
            .http_client(create_mock_http_client())
            .interceptor(interceptor)
            .build(),
    );
    Hub {
        client,
        get: Arc::new(get),
        sent,
    }
}

fn found(status: &str) -> (u16, Value) {
    (200, json!({ "Findings": [asff(status)] }))
}

fn processed() -> (u16, Value) {
    (
        200,
        json!({ "ProcessedFindings": [{ "Id": FINDING_ID, "ProductArn": PRODUCT_ARN }], "UnprocessedFindings": [] }),
    )
}

/// The account of these tests: the records bucket, the topics with the
/// team's inbox, the user whose key leaked.
struct Rig {
    _emu: Emulator,
    clients: Clients,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    vars: BTreeMap<String, String>,
    key: String,
}

async fn rig(bucket: &str) -> Rig {
    let emu = Emulator::start();
    let sdk = emu.sdk_config().await;
    let clients = Clients::from_config(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    support::create_bucket(&clients.s3, bucket).await;
    let topics = support::topics_with_inbox(&clients.sns, &sqs).await;
    let key = support::user_with_keys(&clients.iam, "ci-deployer", 1).await[0].clone();
    let vars = [
        ("FIREBREAK_RECORDS_BUCKET", bucket.to_string()),
        ("FIREBREAK_TEAM_TOPIC_ARN", topics.team),
        ("FIREBREAK_SECURITYHUB_WRITEBACK", "true".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Rig {
        _emu: emu,
        clients,
        sqs,
        queue_url: topics.queue_url,
        vars,
        key,
    }
}

impl Rig {
    fn config(&self, extra: &[(&str, &str)]) -> Config {
        let mut vars = self.vars.clone();
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Config::load(&vars, None).unwrap()
    }

    /// Security Hub's delivery of the leaked-key finding, naming the
    /// seeded key, with the finding's workflow as given.
    fn delivery(&self, finding: Value) -> Value {
        let mut ev = event("securityhub-guardduty-leaked-key-imported.json");
        ev["detail"]["findings"][0] = finding;
        serde_json::from_str(&ev.to_string().replace("AKIAIOSFODNN7EXAMPLE", &self.key)).unwrap()
    }

    /// One delivery with this Security Hub and configuration.
    async fn deliver(&self, hub: &Hub, cfg: Config, ev: &Value) -> IncidentReport {
        let clients = Clients {
            securityhub: hub.client.clone(),
            ..self.clients.clone()
        };
        let plans = plan_event(ev.to_string().as_bytes(), &cfg).unwrap();
        assert_eq!(plans.incidents.len(), 1);
        Executor::for_account(clients, Arc::new(cfg), ACCOUNT)
            .run(&plans.incidents[0])
            .await
    }

    async fn notices(&self) -> usize {
        support::notices(&self.sqs, &self.queue_url).await.len()
    }

    async fn keys(&self, bucket: &str, part: &str) -> Vec<String> {
        support::object_keys(&self.clients.s3, bucket, "incidents/")
            .await
            .into_iter()
            .filter(|k| k.contains(part))
            .collect()
    }
}

fn of(r: &IncidentReport, k: ActionKind) -> &ActionOutcome {
    r.actions
        .iter()
        .find(|a| a.kind == k)
        .unwrap_or_else(|| panic!("no {} in {r:#?}", k.as_str()))
}

fn note_of(u: &BatchUpdateFindingsInput) -> String {
    let note = u.note().unwrap();
    assert_eq!(note.updated_by(), Some("Firebreak"));
    note.text().unwrap().to_string()
}

fn identifiers(u: &BatchUpdateFindingsInput) -> Vec<(String, String)> {
    u.finding_identifiers()
        .iter()
        .map(|i| {
            (
                i.id().unwrap().to_string(),
                i.product_arn().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_finding_goes_to_notified_with_a_note_and_its_own_echo_writes_nothing() {
    let rig = rig("records-writeback").await;
    let hub = hub(found("NEW"), processed());
    let ev = rig.delivery(asff("NEW"));
    let first = rig.deliver(&hub, rig.config(&[]), &ev).await;
    assert_eq!(
        of(&first, ActionKind::DeactivateAccessKey).status,
        Status::Done
    );
    let w = of(&first, ActionKind::UpdateFinding);
    assert_eq!(w.status, Status::Done, "{w:#?}");
    assert_eq!(w.detail, "workflow NEW → NOTIFIED; note added");
    assert_eq!(w.calls, ["GetFindings", "BatchUpdateFindings"]);
    assert_eq!(w.prior_state["workflow_status"], "NEW");
    assert!(first.failure().is_none(), "{first:#?}");
    let sent = hub.updates();
    assert_eq!(sent.len(), 1);
    let u = &sent[0];
    assert_eq!(
        identifiers(u),
        [(FINDING_ID.to_string(), PRODUCT_ARN.to_string())]
    );
    assert_eq!(
        u.workflow().and_then(|w| w.status()),
        Some(&WorkflowStatus::Notified)
    );
    assert!(
        u.severity().is_none() && u.verification_state().is_none() && u.types().is_empty(),
        "the note and the status, nothing else: {u:?}"
    );
    let text = note_of(u);
    assert!(text.len() <= NOTE_CAP, "{text}");
    assert!(
        text.starts_with(&format!(
            "Firebreak incident {} (HIGH): contained.",
            first.id
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("deactivate_access_key {}: done", rig.key)),
        "{text}"
    );
    assert!(
        text.contains("block_ip 198.51.100.23/32: skipped"),
        "{text}"
    );
    let record = first.record.clone().unwrap();
    assert!(text.ends_with(&format!("Record: {record}")), "{text}");
    assert_eq!(hub.get.num_calls(), 1);
    assert_eq!(rig.notices().await, 1);

    // Firebreak's own update comes back as "Security Hub Findings -
    // Imported": NOTIFIED, with its note. The same incident, a replay: it
    // changes nothing, tells nobody and writes nothing.
    let mut echo = asff("NOTIFIED");
    echo["Note"] =
        json!({ "Text": text, "UpdatedBy": "Firebreak", "UpdatedAt": "2026-11-20T03:20:00.000Z" });
    let again = rig
        .deliver(&hub, rig.config(&[]), &rig.delivery(echo))
        .await;
    assert_eq!(again.id, first.id);
    let w = of(&again, ActionKind::UpdateFinding);
    assert_eq!(w.status, Status::AlreadyDone, "{w:#?}");
    assert!(
        w.detail.starts_with("written by an earlier delivery"),
        "{w:?}"
    );
    assert_eq!(
        of(&again, ActionKind::DeactivateAccessKey).status,
        Status::AlreadyDone
    );
    assert_eq!(hub.updates().len(), 1, "no second update");
    assert_eq!(hub.get.num_calls(), 1, "not even a read");
    assert_eq!(rig.notices().await, 0, "no second notice");
    support::assert_records_match_schema(&rig.clients.s3, "records-writeback").await;
}

#[tokio::test]
async fn a_status_someone_set_is_kept_and_only_the_note_is_added() {
    let finding = SecurityHubFinding {
        id: FINDING_ID.into(),
        product_arn: PRODUCT_ARN.into(),
    };
    for status in ["RESOLVED", "NOTIFIED", "SUPPRESSED"] {
        let hub = hub(found(status), processed());
        let step = hub::write_back(&hub.client, &finding, "the note")
            .await
            .unwrap();
        assert_eq!(
            step.detail,
            format!("workflow {status} left as it was; note added")
        );
        assert_eq!(step.prior_state["notified"], false);
        let sent = hub.updates();
        assert_eq!(sent.len(), 1, "{status}");
        assert!(
            sent[0].workflow().is_none(),
            "{status}: the status is not sent at all: {:?}",
            sent[0]
        );
        assert_eq!(note_of(&sent[0]), "the note");
    }
    let hub = hub(found("NEW"), processed());
    hub::write_back(&hub.client, &finding, "n").await.unwrap();
    assert_eq!(
        hub.updates()[0].workflow().and_then(|w| w.status()),
        Some(&WorkflowStatus::Notified)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_back_is_recorded_and_done_by_the_next_delivery() {
    let bucket = "records-writeback-retry";
    let rig = rig(bucket).await;
    let ev = rig.delivery(asff("NEW"));

    // Security Hub has not imported GuardDuty's finding yet.
    let early = hub((200, json!({ "Findings": [] })), processed());
    let r = rig.deliver(&early, rig.config(&[]), &ev).await;
    // Skipped, not failed: the invocation succeeds (no Lambda retries into
    // the failed-events queue) and the claim stays open for the next one.
    let w = of(&r, ActionKind::UpdateFinding);
    assert_eq!(w.status, Status::Skipped, "{w:#?}");
    assert!(
        w.detail.contains("Security Hub has no finding")
            && w.detail
                .contains("the next delivery of this finding writes it"),
        "{w:#?}"
    );
    assert!(
        early.updates().is_empty(),
        "nothing written to a finding not found"
    );
    assert_eq!(r.failure(), None, "{r:#?}");

    // The next delivery: Security Hub answers 200 but lists it unprocessed.
    let busy = hub(
        found("NEW"),
        (
            200,
            json!({ "ProcessedFindings": [], "UnprocessedFindings": [{
                "FindingIdentifier": { "Id": FINDING_ID, "ProductArn": PRODUCT_ARN },
                "ErrorCode": "ConcurrentUpdateError",
                "ErrorMessage": "Finding was updated concurrently; retry the request"
            }] }),
        ),
    );
    let r = rig.deliver(&busy, rig.config(&[]), &ev).await;
    let w = of(&r, ActionKind::UpdateFinding);
    assert_eq!(w.status, Status::Failed, "{w:#?}");
    let e = w.error.as_ref().unwrap();
    assert_eq!(e.code.as_deref(), Some("ConcurrentUpdateError"));
    assert!(e.retryable && r.retryable());
    assert_eq!(busy.updates().len(), 1);
    assert_eq!(
        rig.keys(bucket, "/actions/update_finding-")
            .await
            .iter()
            .filter(|k| k.ends_with(".skipped.json") || k.contains(".failed-"))
            .count(),
        2,
        "each attempt on record"
    );

    // The one after that writes it; containment is not done again and the
    // team is not told again (it ended the same way).
    let ok = hub(found("NEW"), processed());
    let r = rig.deliver(&ok, rig.config(&[]), &ev).await;
    assert_eq!(
        of(&r, ActionKind::UpdateFinding).status,
        Status::Done,
        "{r:#?}"
    );
    assert_eq!(
        of(&r, ActionKind::DeactivateAccessKey).status,
        Status::AlreadyDone
    );
    assert!(r.failure().is_none(), "{r:#?}");
    assert_eq!(ok.updates().len(), 1);
    assert_eq!(rig.notices().await, 1, "one notice in all");
    let finals = rig.keys(bucket, "/actions/update_finding-").await;
    assert_eq!(
        finals
            .iter()
            .filter(|k| !k.contains(".failed-") && !k.ends_with(".skipped.json"))
            .count(),
        1,
        "{finals:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_that_finished_what_was_held_writes_one_more_note() {
    let rig = rig("records-writeback-held").await;
    let ev = rig.delivery(asff("NEW"));
    // The budget holds the deactivation: the finding is told so.
    let first = hub(found("NEW"), processed());
    let r = rig
        .deliver(
            &first,
            rig.config(&[("FIREBREAK_BUDGET", "deactivate_access_key=0")]),
            &ev,
        )
        .await;
    assert_eq!(of(&r, ActionKind::DeactivateAccessKey).status, Status::Held);
    assert_eq!(of(&r, ActionKind::UpdateFinding).status, Status::Done);
    let text = note_of(&first.updates()[0]);
    assert!(text.contains("NEEDS A HUMAN"), "{text}");
    assert!(
        text.contains(&format!(
            "deactivate_access_key {}: HELD for a human",
            rig.key
        )),
        "{text}"
    );

    // Allowed now: the key goes Inactive and the finding gets one more
    // note. It is NOTIFIED since Firebreak's first write: the status is
    // left alone.
    let second = hub(found("NOTIFIED"), processed());
    let r = rig.deliver(&second, rig.config(&[]), &ev).await;
    assert_eq!(of(&r, ActionKind::DeactivateAccessKey).status, Status::Done);
    assert_eq!(of(&r, ActionKind::UpdateFinding).status, Status::Done);
    let sent = second.updates();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].workflow().is_none());
    let text = note_of(&sent[0]);
    assert!(
        text.contains("): contained.") && text.contains(": done"),
        "{text}"
    );

    // Nothing changed since: nothing more is written.
    let third = hub(found("NOTIFIED"), processed());
    let r = rig.deliver(&third, rig.config(&[]), &ev).await;
    assert_eq!(
        of(&r, ActionKind::UpdateFinding).status,
        Status::AlreadyDone
    );
    assert!(third.updates().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_security_hub_the_write_back_is_skipped_not_failed() {
    let rig = rig("records-writeback-off").await;
    let hub = hub(
        (
            401,
            json!({ "__type": "InvalidAccessException", "Code": "InvalidAccessException", "Message": "Account 111122223333 is not subscribed to AWS Security Hub" }),
        ),
        processed(),
    );
    let r = rig
        .deliver(&hub, rig.config(&[]), &rig.delivery(asff("NEW")))
        .await;
    let w = of(&r, ActionKind::UpdateFinding);
    assert_eq!(w.status, Status::Skipped, "{w:#?}");
    assert!(
        w.detail.starts_with("Security Hub is not enabled here"),
        "{w:?}"
    );
    assert!(hub.updates().is_empty());
    assert!(
        r.failure().is_none(),
        "the function does not fail for it: {r:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_adds_a_note_and_leaves_the_status_alone() {
    let rig = rig("records-writeback-release").await;
    let hub = hub(found("NEW"), processed());
    let contained = rig
        .deliver(&hub, rig.config(&[]), &rig.delivery(asff("NEW")))
        .await;
    assert_eq!(
        of(&contained, ActionKind::UpdateFinding).status,
        Status::Done
    );
    let release = json!({"command": "release", "incident_id": contained.id, "force": true,
        "requested_by": "oncall-alice", "reason": "key rotated, SEC-1042"});
    let r = rig.deliver(&hub, rig.config(&[]), &release).await;
    let rel = of(&r, ActionKind::Release);
    assert_eq!(rel.status, Status::Done, "{rel:#?}");
    assert!(
        rel.calls.contains(&"BatchUpdateFindings".to_string()),
        "{rel:?}"
    );
    assert!(
        r.actions
            .iter()
            .all(|a| a.kind != ActionKind::UpdateFinding),
        "a release names no finding of its own"
    );
    let sent = hub.updates();
    assert_eq!(sent.len(), 2, "the write-back, then the release's note");
    let u = &sent[1];
    assert_eq!(
        identifiers(u),
        [(FINDING_ID.to_string(), PRODUCT_ARN.to_string())]
    );
    assert!(u.workflow().is_none(), "a release never changes the status");
    let text = note_of(u);
    assert!(text.starts_with(&format!("Firebreak released incident {} (release {}, asked by oncall-alice: key rotated, SEC-1042):", contained.id, r.id)), "{text}");
    assert!(text.contains(&rig.key), "what was undone: {text}");
    assert_eq!(
        hub.get.num_calls(),
        1,
        "the release does not read the status"
    );
    let states = support::key_states(
        &rig.clients.iam,
        "ci-deployer",
        std::slice::from_ref(&rig.key),
    )
    .await;
    assert_eq!(states, [Some(aws_sdk_iam::types::StatusType::Active)]);
}
