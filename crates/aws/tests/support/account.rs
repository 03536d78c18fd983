//! One emulated account as the adapter tests use it: the records bucket,
//! the topics with an inbox on the team topic, the configuration naming
//! them; and the small readers the tests share.

use std::collections::BTreeMap;
use std::sync::Arc;

use firebreak_aws::outcome::{ActionOutcome, Status};
use firebreak_aws::{Clients, Executor, IncidentReport};
use firebreak_core::{plan_event, ActionKind, Config};
use serde_json::Value;

use super::Emulator;

#[derive(Debug)]
pub struct Account {
    pub clients: Clients,
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub cfg: Arc<Config>,
}

/// Seeds the bucket, the topics and an SQS queue subscribed to the team topic.
pub async fn account(emu: &Emulator, bucket: &str) -> Account {
    let sdk = emu.sdk_config().await;
    let clients = Clients::from_config(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    super::create_bucket(&clients.s3, bucket).await;
    let super::Topics {
        team,
        stakeholders,
        queue_url,
    } = super::topics_with_inbox(&clients.sns, &sqs).await;
    let vars: BTreeMap<String, String> = [
        ("FIREBREAK_RECORDS_BUCKET", bucket.to_string()),
        ("FIREBREAK_TEAM_TOPIC_ARN", team),
        ("FIREBREAK_STAKEHOLDER_TOPIC_ARN", stakeholders),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let cfg = Arc::new(Config::load(&vars, None).unwrap());
    Account {
        clients,
        sqs,
        queue_url,
        cfg,
    }
}

pub fn event(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../events")
        .join(name);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The sample leaked-key finding, naming `key` (a key the test made).
pub fn leaked_key(key: &str) -> Value {
    let mut ev = event("guardduty-leaked-key.json");
    ev["detail"]["resource"]["accessKeyDetails"]["accessKeyId"] = key.into();
    ev
}

pub async fn notices(acct: &Account) -> Vec<Value> {
    super::notices(&acct.sqs, &acct.queue_url).await
}

pub fn action(r: &IncidentReport, k: ActionKind) -> &ActionOutcome {
    r.actions
        .iter()
        .find(|a| a.kind == k)
        .unwrap_or_else(|| panic!("no {} in {r:#?}", k.as_str()))
}

pub fn status_of(r: &IncidentReport, k: ActionKind) -> Status {
    action(r, k).status
}

/// Plans one event (JSON) and runs its only incident.
pub async fn run_one(exec: &Executor, cfg: &Config, event: &Value) -> IncidentReport {
    let plan = plan_event(event.to_string().as_bytes(), cfg).unwrap();
    assert_eq!(plan.incidents.len(), 1);
    exec.run(&plan.incidents[0]).await
}

pub async fn objects(acct: &Account, bucket: &str) -> Vec<String> {
    super::object_keys(&acct.clients.s3, bucket, "").await
}
