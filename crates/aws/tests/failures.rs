//! What the emulator cannot produce: throttling, AccessDenied, timeouts, a
//! NACL at AWS's entry quota, and Logs Insights aggregation. The SDK clients
//! are real; aws-smithy-mocks answers their HTTP calls with responses shaped
//! like AWS's (error codes in AWS's XML and JSON error bodies).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_cloudwatchlogs::types::{QueryStatus, ResultField};
use aws_sdk_ec2::types::{NetworkAcl, NetworkAclEntry, RuleAction};
use aws_sdk_iam::types::{AccessKeyMetadata, StatusType};
use aws_sdk_s3::config::Credentials;
use aws_smithy_mocks::{create_mock_http_client, mock, MockResponseInterceptor, Rule, RuleMode};
use firebreak_aws::actions::logs::{offending_ips, Polling};
use firebreak_aws::actions::nacl::{block_ip, BlockSpec};
use firebreak_aws::gate::Gate;
use firebreak_aws::outcome::Status;
use firebreak_aws::{Clients, Executor};
use firebreak_core::{plan_event, ActionKind, Config};

/// A real SDK client whose HTTP calls the given rules answer, with the
/// standard retry mode and a 1 ms backoff so retries are quick.
macro_rules! mocked {
    ($krate:ident, $mode:expr, [$($rule:expr),* $(,)?]) => {{
        let interceptor = MockResponseInterceptor::new().rule_mode($mode)$(.with_rule($rule))*;
        $krate::Client::from_conf(
            $krate::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("eu-west-1"))
                .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "tests"))
                .retry_config(
                    RetryConfig::standard()
                        .with_max_attempts(3)
                        .with_initial_backoff(Duration::from_millis(1)),
                )
                .http_client(create_mock_http_client())
                .interceptor(interceptor)
                .build(),
        )
    }};
}

/// Clients whose every call fails the test (no rule answers it): a test
/// names the services it answers and takes the rest from here, so a new
/// service in `Clients` touches this one place.
fn unmocked() -> Clients {
    Clients {
        iam: mocked!(aws_sdk_iam, RuleMode::MatchAny, []),
        ec2: mocked!(aws_sdk_ec2, RuleMode::MatchAny, []),
        s3: mocked!(aws_sdk_s3, RuleMode::MatchAny, []),
        sns: mocked!(aws_sdk_sns, RuleMode::MatchAny, []),
        logs: mocked!(aws_sdk_cloudwatchlogs, RuleMode::MatchAny, []),
        sts: mocked!(aws_sdk_sts, RuleMode::MatchAny, []),
        securityhub: mocked!(aws_sdk_securityhub, RuleMode::MatchAny, []),
        ecs: mocked!(aws_sdk_ecs, RuleMode::MatchAny, []),
        elb: mocked!(aws_sdk_elasticloadbalancingv2, RuleMode::MatchAny, []),
        secrets: mocked!(aws_sdk_secretsmanager, RuleMode::MatchAny, []),
        config: aws_config::SdkConfig::builder().build(),
    }
}

/// IAM's query-protocol error body.
fn iam_error(status: u16, code: &str, message: &str) -> (u16, Option<String>) {
    (
        status,
        Some(format!(
            r#"<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>4f3c</RequestId></ErrorResponse>"#
        )),
    )
}

/// The leaked-key deactivation of the tests' key, with nothing to wait for.
async fn deactivate(
    iam: &aws_sdk_iam::Client,
) -> Result<firebreak_aws::outcome::Step, firebreak_aws::AwsError> {
    let key = "AKIAIOSFODNN7EXAMPLE";
    firebreak_aws::actions::iam::deactivate_access_key(
        iam,
        ("ci-deployer", key),
        "inc-1",
        chrono::Utc::now(),
        "firebreak:protected",
        &Gate::open(),
    )
    .await
}

/// The other calls a deactivation makes, answering as for a user with no
/// Firebreak policy and no tags: its sessions are then denied once.
fn user_reads_and_the_sessions_policy() -> [Rule; 3] {
    let (status, body) = iam_error(404, "NoSuchEntity", "The user policy cannot be found");
    [
        mock!(aws_sdk_iam::Client::get_user_policy)
            .sequence()
            .http_status(status, body)
            .repeatedly()
            .build(),
        mock!(aws_sdk_iam::Client::list_user_tags).then_output(|| {
            aws_sdk_iam::operation::list_user_tags::ListUserTagsOutput::builder()
                .set_tags(Some(vec![]))
                .build()
                .unwrap()
        }),
        mock!(aws_sdk_iam::Client::put_user_policy)
            .match_requests(|r| r.policy_name() == Some("FirebreakRevokeOlderSessions"))
            .then_output(|| {
                aws_sdk_iam::operation::put_user_policy::PutUserPolicyOutput::builder().build()
            }),
    ]
}

fn key(id: &str, status: StatusType) -> AccessKeyMetadata {
    AccessKeyMetadata::builder()
        .user_name("ci-deployer")
        .access_key_id(id)
        .status(status)
        .build()
}

#[tokio::test]
async fn throttling_is_retried_and_the_key_still_goes_inactive() {
    let (status, body) = iam_error(400, "Throttling", "Rate exceeded");
    let list = mock!(aws_sdk_iam::Client::list_access_keys)
        .sequence()
        .http_status(status, body)
        .times(2)
        .output(|| {
            aws_sdk_iam::operation::list_access_keys::ListAccessKeysOutput::builder()
                .access_key_metadata(key("AKIAIOSFODNN7EXAMPLE", StatusType::Active))
                .build()
                .unwrap()
        })
        .build();
    let update = mock!(aws_sdk_iam::Client::update_access_key)
        .match_requests(|r| {
            r.access_key_id() == Some("AKIAIOSFODNN7EXAMPLE")
                && r.status() == Some(&StatusType::Inactive)
        })
        .then_output(|| {
            aws_sdk_iam::operation::update_access_key::UpdateAccessKeyOutput::builder().build()
        });
    let [get, tags, put] = user_reads_and_the_sessions_policy();
    let iam = mocked!(
        aws_sdk_iam,
        RuleMode::MatchAny,
        [&list, &update, &get, &tags, &put]
    );
    let step = deactivate(&iam).await.unwrap();
    assert!(!step.already());
    assert_eq!(put.num_calls(), 1, "the sessions the key minted are denied");
    assert_eq!(
        list.num_calls(),
        3,
        "two throttled attempts, then the answer"
    );
    assert_eq!(update.num_calls(), 1);
}

/// The sessions' policy went on, replacing another incident's document of
/// that name, but the deactivation was denied: that document is put back,
/// so the retry reads and records what a release must restore instead of
/// finding only its own statement.
#[tokio::test]
async fn a_failed_deactivation_puts_back_the_sessions_policy_it_replaced() {
    let list = mock!(aws_sdk_iam::Client::list_access_keys).then_output(|| {
        aws_sdk_iam::operation::list_access_keys::ListAccessKeysOutput::builder()
            .access_key_metadata(key("AKIAIOSFODNN7EXAMPLE", StatusType::Active))
            .build()
            .unwrap()
    });
    let (status, body) = iam_error(
        403,
        "AccessDenied",
        "not authorized to perform: iam:UpdateAccessKey",
    );
    let update = mock!(aws_sdk_iam::Client::update_access_key)
        .sequence()
        .http_status(status, body)
        .repeatedly()
        .build();
    let earlier = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Firebreakfbearlier","Effect":"Deny","Action":"*","Resource":"*"}]}"#;
    let get = mock!(aws_sdk_iam::Client::get_user_policy).then_output(move || {
        aws_sdk_iam::operation::get_user_policy::GetUserPolicyOutput::builder()
            .user_name("ci-deployer")
            .policy_name("FirebreakRevokeOlderSessions")
            .policy_document(earlier)
            .build()
            .unwrap()
    });
    let documents = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = documents.clone();
    let put = mock!(aws_sdk_iam::Client::put_user_policy)
        .match_requests(move |r| {
            seen.lock()
                .unwrap()
                .push(r.policy_document().unwrap_or_default().to_string());
            true
        })
        .then_output(|| {
            aws_sdk_iam::operation::put_user_policy::PutUserPolicyOutput::builder().build()
        });
    let [_, tags, _] = user_reads_and_the_sessions_policy();
    let iam = mocked!(
        aws_sdk_iam,
        RuleMode::MatchAny,
        [&list, &update, &get, &tags, &put]
    );
    let err = deactivate(&iam).await.unwrap_err();
    assert_eq!(err.code.as_deref(), Some("AccessDenied"), "{err:?}");
    let documents = documents.lock().unwrap().clone();
    assert_eq!(documents.len(), 2, "{documents:?}");
    assert!(documents[0].contains("Firebreakinc1"), "{documents:?}");
    assert_eq!(documents[1], earlier, "the replaced document is put back");
}

#[tokio::test]
async fn throttling_that_outlasts_the_retries_is_a_retryable_failure() {
    let (status, body) = iam_error(400, "Throttling", "Rate exceeded");
    let list = mock!(aws_sdk_iam::Client::list_access_keys)
        .sequence()
        .http_status(status, body)
        .repeatedly()
        .build();
    let [get, tags, put] = user_reads_and_the_sessions_policy();
    let iam = mocked!(aws_sdk_iam, RuleMode::MatchAny, [&list, &get, &tags, &put]);
    let err = deactivate(&iam).await.unwrap_err();
    assert_eq!(err.code.as_deref(), Some("Throttling"));
    assert!(err.retryable, "{err:?}");
    assert_eq!(list.num_calls(), 3, "the configured attempts, no more");
    assert_eq!(put.num_calls(), 0, "nothing changes when the reads fail");
}

/// The whole executor on mocked clients: UpdateAccessKey is denied; the
/// record and the notices still happen and say so; the caller gets an error
/// naming the failure, marked not retryable.
#[tokio::test]
async fn access_denied_is_recorded_as_failed_while_the_rest_still_runs() {
    let list = mock!(aws_sdk_iam::Client::list_access_keys).then_output(|| {
        aws_sdk_iam::operation::list_access_keys::ListAccessKeysOutput::builder()
            .access_key_metadata(key("AKIAIOSFODNN7EXAMPLE", StatusType::Active))
            .build()
            .unwrap()
    });
    let (status, body) = iam_error(
        403,
        "AccessDenied",
        "User: arn:aws:sts::111122223333:assumed-role/firebreak/fn is not authorized to perform: iam:UpdateAccessKey",
    );
    let update = mock!(aws_sdk_iam::Client::update_access_key)
        .sequence()
        .http_status(status, body)
        .build();
    let listing = mock!(aws_sdk_s3::Client::list_objects_v2).then_output(|| {
        aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output::builder().build()
    });
    let put = mock!(aws_sdk_s3::Client::put_object)
        .then_output(|| aws_sdk_s3::operation::put_object::PutObjectOutput::builder().build());
    // The budget counter does not exist yet.
    let missing = r#"<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>"#;
    let get = mock!(aws_sdk_s3::Client::get_object)
        .sequence()
        .http_status(404, Some(missing.to_string()))
        .repeatedly()
        .build();
    // The failed action gives its claim back (If-Match on the claim's ETag),
    // saying how its attempt ended.
    let released = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen_release = released.clone();
    let release = mock!(aws_sdk_s3::Client::put_object)
        .match_requests(move |r| {
            let claim = r.if_match().is_some() && r.key().is_some_and(|k| k.contains("/claims/"));
            if claim {
                let body = r.body().bytes().unwrap_or_default();
                seen_release
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(body).into_owned());
            }
            claim
        })
        .then_output(|| aws_sdk_s3::operation::put_object::PutObjectOutput::builder().build());
    let messages = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = messages.clone();
    let publish = mock!(aws_sdk_sns::Client::publish)
        .match_requests(move |r| {
            seen.lock()
                .unwrap()
                .push(r.message().unwrap_or_default().to_string());
            true
        })
        .then_output(|| {
            aws_sdk_sns::operation::publish::PublishOutput::builder()
                .message_id("m-1")
                .build()
        });
    let nothing = mock!(aws_sdk_ec2::Client::describe_network_acls).then_output(|| {
        aws_sdk_ec2::operation::describe_network_acls::DescribeNetworkAclsOutput::builder().build()
    });
    let [get_policy, tags, put_policy] = user_reads_and_the_sessions_policy();
    let clients = Clients {
        iam: mocked!(
            aws_sdk_iam,
            RuleMode::MatchAny,
            [&list, &update, &get_policy, &tags, &put_policy]
        ),
        ec2: mocked!(aws_sdk_ec2, RuleMode::MatchAny, [&nothing]),
        s3: mocked!(
            aws_sdk_s3,
            RuleMode::MatchAny,
            [&listing, &release, &put, &get]
        ),
        sns: mocked!(aws_sdk_sns, RuleMode::MatchAny, [&publish]),
        ..unmocked()
    };
    let vars: BTreeMap<String, String> = [
        ("FIREBREAK_RECORDS_BUCKET", "records"),
        (
            "FIREBREAK_TEAM_TOPIC_ARN",
            "arn:aws:sns:eu-west-1:111122223333:team",
        ),
        (
            "FIREBREAK_STAKEHOLDER_TOPIC_ARN",
            "arn:aws:sns:eu-west-1:111122223333:stakeholders",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let cfg = Arc::new(Config::load(&vars, None).unwrap());
    let event = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../events/guardduty-leaked-key.json"),
    )
    .unwrap();
    let mut event: serde_json::Value = serde_json::from_slice(&event).unwrap();
    event["detail"]["resource"]["accessKeyDetails"]["accessKeyId"] = "AKIAIOSFODNN7EXAMPLE".into();
    let plans = plan_event(event.to_string().as_bytes(), &cfg).unwrap();
    let exec = Executor::for_account(clients, cfg, "111122223333");
    let response = firebreak_aws::respond(&exec, &plans).await;
    let report = &response.incidents[0];
    let find = |k: ActionKind| report.actions.iter().find(|a| a.kind == k).unwrap();
    let deact = find(ActionKind::DeactivateAccessKey);
    assert_eq!(deact.status, Status::Failed, "{report:#?}");
    let err = deact.error.as_ref().unwrap();
    assert_eq!(err.code.as_deref(), Some("AccessDenied"));
    assert!(!err.retryable, "AccessDenied does not go away by retrying");
    assert_eq!(update.num_calls(), 1, "not retried");
    let released: Vec<serde_json::Value> = released
        .lock()
        .unwrap()
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    let (action, notices): (Vec<_>, Vec<_>) = released.iter().partition(|c| {
        c["name"]
            .as_str()
            .unwrap()
            .starts_with("deactivate_access_key")
    });
    assert_eq!(action.len(), 1, "the claim is given back for the retry");
    // The notices were claimed ahead for a containment that would succeed;
    // it failed, so those claims are given back and the notices claimed
    // under the ending that happened.
    let names: Vec<&str> = notices
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names.iter().any(|n| n.starts_with("notify_team-")),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.starts_with("notify_stakeholders-")),
        "{names:?}"
    );
    assert!(
        notices.iter().all(|c| c["ended"]["status"] == "skipped"),
        "{notices:?}"
    );
    let ended = action[0];
    assert_eq!(ended["ended"]["status"], "failed", "{ended}");
    assert_eq!(ended["ended"]["error"]["code"], "AccessDenied", "{ended}");
    assert_eq!(find(ActionKind::RecordIncident).status, Status::Done);
    assert_eq!(find(ActionKind::NotifyTeam).status, Status::Done);
    assert_eq!(find(ActionKind::NotifyStakeholders).status, Status::Done);
    // The notice says what failed, with the code, before the JSON.
    let sent = messages.lock().unwrap().clone();
    assert_eq!(sent.len(), 2, "team and stakeholders");
    let readable = sent[0].split("\n---\n").next().unwrap();
    assert!(
        readable.contains("[FAILED] deactivate_access_key"),
        "{readable}"
    );
    assert!(readable.contains("AccessDenied"), "{readable}");
    // The caller gets an error naming it.
    let failure = response.failure().unwrap();
    assert!(
        failure.contains("deactivate_access_key AKIAIOSFODNN7EXAMPLE (AccessDenied)"),
        "{failure}"
    );
    assert!(!response.retryable());
}

#[tokio::test]
async fn a_call_that_never_answers_times_out_as_retryable() {
    // A server that accepts connections and never replies.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming().take(8) {
            held.push(c);
        }
        std::thread::sleep(Duration::from_secs(30));
    });
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .region(Region::new("eu-west-1"))
        .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "tests"))
        .timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(Duration::from_millis(200))
                .operation_timeout(Duration::from_millis(1500))
                .build(),
        )
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(2)
                .with_initial_backoff(Duration::from_millis(1)),
        )
        .load()
        .await;
    let iam = aws_sdk_iam::Client::new(&sdk);
    let started = std::time::Instant::now();
    let err = deactivate(&iam).await.unwrap_err();
    assert!(err.retryable, "{err:?}");
    // The three reads go out at once; whichever times out first is named.
    assert!(
        ["ListAccessKeys", "GetUserPolicy", "ListUserTags"].contains(&err.operation),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "bounded by the operation timeout, not hanging: {:?}",
        started.elapsed()
    );
}

fn entry(n: i32, cidr: &str, action: RuleAction, egress: bool) -> NetworkAclEntry {
    NetworkAclEntry::builder()
        .rule_number(n)
        .cidr_block(cidr)
        .rule_action(action)
        .egress(egress)
        .protocol("-1")
        .build()
}

/// A NACL whose ingress side holds `foreign` deny entries at 101.., an allow
/// at 100, the default rule, and Firebreak's entries at the given numbers.
fn nacl(foreign: i32, ours: &[(i32, &str)]) -> NetworkAcl {
    let mut b = NetworkAcl::builder()
        .network_acl_id("acl-0a1b2c3d4e5f60718")
        .vpc_id("vpc-0fedcba9876543210")
        .entries(entry(100, "0.0.0.0/0", RuleAction::Allow, false))
        .entries(entry(32767, "0.0.0.0/0", RuleAction::Deny, false))
        .entries(entry(100, "0.0.0.0/0", RuleAction::Allow, true))
        .entries(entry(32767, "0.0.0.0/0", RuleAction::Deny, true));
    for i in 0..foreign {
        b = b.entries(entry(
            101 + i,
            &format!("192.0.2.{}/32", i + 1),
            RuleAction::Deny,
            false,
        ));
    }
    for (n, cidr) in ours {
        b = b.entries(entry(*n, cidr, RuleAction::Deny, false));
    }
    b.build()
}

fn described(acl: NetworkAcl) -> Rule {
    mock!(aws_sdk_ec2::Client::describe_network_acls).then_output(move || {
        aws_sdk_ec2::operation::describe_network_acls::DescribeNetworkAclsOutput::builder()
            .network_acls(acl.clone())
            .build()
    })
}

/// DeleteNetworkAclEntry on the ingress side, for one rule number or any.
fn deletes(rule: Option<i32>) -> Rule {
    mock!(aws_sdk_ec2::Client::delete_network_acl_entry)
        .match_requests(move |r| {
            rule.is_none_or(|n| r.rule_number() == Some(n)) && r.egress() == Some(false)
        })
        .then_output(|| {
            aws_sdk_ec2::operation::delete_network_acl_entry::DeleteNetworkAclEntryOutput::builder()
                .build()
        })
}

/// What a block placed, as (step, rule number, evicted (rule, CIDR)).
type Placed = (firebreak_aws::outcome::Step, i32, Vec<(i32, String)>);

fn placed(p: firebreak_aws::actions::nacl::Placed) -> Placed {
    let evicted = p.evicted.into_iter().map(|e| (e.rule_number, e.cidr));
    (p.step, p.rule_number, evicted.collect())
}

/// Blocks 198.51.100.9 in the test NACL with the default spec.
async fn block_9(
    ec2: &aws_sdk_ec2::Client,
    ages: &[(i32, ipnet::IpNet)],
) -> Result<Placed, firebreak_aws::AwsError> {
    block_ip(
        ec2,
        "acl-0a1b2c3d4e5f60718",
        "198.51.100.9/32".parse().unwrap(),
        SPEC,
        &firebreak_aws::actions::nacl::Alone,
        async || ages.to_vec(),
        None,
    )
    .await
    .map(placed)
}

const SPEC: BlockSpec = BlockSpec {
    egress: false,
    range: (1, 90),
    quota: firebreak_aws::actions::nacl::DEFAULT_QUOTA,
};

/// A NACL at AWS's entry quota (16 foreign entries, the allow, the default
/// rule, ours at rules 1 and 2) that answers a delete of rule 2 and a create
/// of 198.51.100.9/32 at rule 2: (client, the delete, the create).
fn full_nacl_making_room_at_rule_2() -> (aws_sdk_ec2::Client, Rule, Rule) {
    let describe = described(nacl(16, &[(1, "198.51.100.1/32"), (2, "198.51.100.2/32")]));
    let delete = deletes(Some(2));
    let create = creates(2, "198.51.100.9/32");
    let ec2 = mocked!(
        aws_sdk_ec2,
        RuleMode::MatchAny,
        [&describe, &delete, &create]
    );
    (ec2, delete, create)
}

#[tokio::test]
async fn at_the_entry_quota_the_oldest_of_ours_is_evicted_though_the_range_has_room() {
    // 16 foreign + the allow + the default rule + ours at 1 and 2 = 20 =
    // AWS's quota, while rule numbers 3..=90 are free: AWS would refuse a
    // 21st entry, so the oldest of ours makes room.
    let (ec2, delete, create) = full_nacl_making_room_at_rule_2();
    // The ledger says rule 2 is older than rule 1.
    let ages = [
        (2, "198.51.100.2/32".parse().unwrap()),
        (1, "198.51.100.1/32".parse().unwrap()),
    ];
    let (step, number, evicted) = block_9(&ec2, &ages).await.unwrap();
    assert_eq!(number, 2);
    assert_eq!(evicted, vec![(2, "198.51.100.2/32".to_string())]);
    assert_eq!(delete.num_calls(), 1);
    assert_eq!(create.num_calls(), 1);
    assert_eq!(
        step.prior_state["evicted"][0]["cidr"], "198.51.100.2/32",
        "recorded for the undo"
    );
}

#[tokio::test]
async fn a_full_nacl_without_entries_of_ours_is_an_error_and_nothing_is_deleted() {
    let describe = described(nacl(18, &[]));
    let delete = deletes(None);
    let ec2 = mocked!(aws_sdk_ec2, RuleMode::MatchAny, [&describe, &delete]);
    let err = block_9(&ec2, &[]).await.unwrap_err();
    assert_eq!(err.code.as_deref(), Some("NetworkAclEntryLimitExceeded"));
    assert_eq!(delete.num_calls(), 0, "foreign entries are never touched");
}

/// CreateNetworkAclEntry accepted only for `cidr` at `rule`.
fn creates(rule: i32, cidr: &'static str) -> Rule {
    mock!(aws_sdk_ec2::Client::create_network_acl_entry)
        .match_requests(move |r| r.rule_number() == Some(rule) && r.cidr_block() == Some(cidr))
        .then_output(|| {
            aws_sdk_ec2::operation::create_network_acl_entry::CreateNetworkAclEntryOutput::builder()
                .build()
        })
}

/// Another writer holds the right to delete rule 1.
struct OneTaken;

impl firebreak_aws::actions::nacl::VictimGuard for OneTaken {
    async fn take(&self, rule: i32, _cidr: ipnet::IpNet) -> bool {
        rule != 1
    }
    async fn give_back(&self, _rule: i32, _cidr: ipnet::IpNet) {}
}

#[tokio::test]
async fn an_evictor_takes_the_oldest_victim_nobody_else_is_evicting() {
    let (ec2, delete, create) = full_nacl_making_room_at_rule_2();
    // Rule 1 is the oldest, but another writer is evicting it.
    let ages = [
        (1, "198.51.100.1/32".parse().unwrap()),
        (2, "198.51.100.2/32".parse().unwrap()),
    ];
    let (_, number, evicted) = block_ip(
        &ec2,
        "acl-0a1b2c3d4e5f60718",
        "198.51.100.9/32".parse().unwrap(),
        SPEC,
        &OneTaken,
        async || ages.to_vec(),
        None,
    )
    .await
    .map(placed)
    .unwrap();
    assert_eq!(number, 2);
    assert_eq!(evicted, vec![(2, "198.51.100.2/32".to_string())]);
    assert_eq!(delete.num_calls(), 1, "rule 1 is left to its evictor");
    assert_eq!(create.num_calls(), 1);
}

#[tokio::test]
async fn aws_saying_the_nacl_is_full_leads_to_an_eviction_not_a_failure() {
    // The account's real quota is lower than assumed: AWS refuses the entry.
    let describe = described(nacl(2, &[(1, "198.51.100.1/32")]));
    let refused = r#"<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>NetworkAclEntryLimitExceeded</Code><Message>The maximum number of entries has been reached.</Message></Error></Errors><RequestID>1f2e</RequestID></Response>"#;
    let create = mock!(aws_sdk_ec2::Client::create_network_acl_entry)
        .sequence()
        .http_status(400, Some(refused.to_string()))
        .output(|| {
            aws_sdk_ec2::operation::create_network_acl_entry::CreateNetworkAclEntryOutput::builder()
                .build()
        })
        .build();
    let delete = deletes(Some(1));
    let ec2 = mocked!(
        aws_sdk_ec2,
        RuleMode::MatchAny,
        [&describe, &create, &delete]
    );
    let (step, number, evicted) = block_9(&ec2, &[]).await.unwrap();
    assert_eq!(number, 1);
    assert_eq!(evicted.iter().map(|e| e.0).collect::<Vec<_>>(), vec![1]);
    assert!(
        step.calls
            .contains(&"CreateNetworkAclEntry (limit)".to_string()),
        "{:?}",
        step.calls
    );
    assert_eq!(create.num_calls(), 2);
}

fn row(ip: &str, failures: &str) -> Vec<ResultField> {
    vec![
        ResultField::builder().field("ip_address").value(ip).build(),
        ResultField::builder()
            .field("failures")
            .value(failures)
            .build(),
    ]
}

#[tokio::test]
async fn insights_counts_over_the_threshold_become_offenders() {
    let start = mock!(aws_sdk_cloudwatchlogs::Client::start_query)
        .match_requests(|r| {
            r.log_group_names() == ["/prod/auth-service".to_string()]
                && r.start_time() == Some(1_795_144_200)
                && r.end_time() == Some(1_795_144_500)
        })
        .then_output(|| {
            aws_sdk_cloudwatchlogs::operation::start_query::StartQueryOutput::builder()
                .query_id("q-1")
                .build()
        });
    let results = mock!(aws_sdk_cloudwatchlogs::Client::get_query_results)
        .sequence()
        .output(|| {
            aws_sdk_cloudwatchlogs::operation::get_query_results::GetQueryResultsOutput::builder()
                .status(QueryStatus::Running)
                .build()
        })
        .output(|| {
            aws_sdk_cloudwatchlogs::operation::get_query_results::GetQueryResultsOutput::builder()
                .status(QueryStatus::Complete)
                .results(row("203.0.113.50", "12"))
                .results(row("198.51.100.23", "212"))
                .results(row("198.51.100.24", "9"))
                // A row without a count (a query that does not aggregate) is ignored.
                .results(vec![ResultField::builder()
                    .field("ip_address")
                    .value("198.51.100.99")
                    .build()])
                .results(row("not-an-address", "500"))
                .build()
        })
        .build();
    let logs = mocked!(
        aws_sdk_cloudwatchlogs,
        RuleMode::MatchAny,
        [&start, &results]
    );
    let (found, calls) = offending_ips(
        &logs,
        &["/prod/auth-service".to_string()],
        ("2026-11-20T03:10:00Z", "2026-11-20T03:15:00Z"),
        firebreak_core::config::DEFAULT_INSIGHTS_QUERY,
        10,
        Polling {
            every: Duration::from_millis(1),
            max_polls: 5,
        },
    )
    .await
    .unwrap();
    let got: Vec<(String, u64)> = found
        .iter()
        .map(|o| (o.ip.to_string(), o.failures))
        .collect();
    assert_eq!(
        got,
        vec![
            ("198.51.100.23".to_string(), 212),
            ("203.0.113.50".to_string(), 12)
        ],
        "at or over 10, most first"
    );
    assert_eq!(calls, ["StartQuery", "GetQueryResults", "GetQueryResults"]);
}

#[tokio::test]
async fn a_query_that_never_completes_is_stopped_and_reported_retryable() {
    let start = mock!(aws_sdk_cloudwatchlogs::Client::start_query).then_output(|| {
        aws_sdk_cloudwatchlogs::operation::start_query::StartQueryOutput::builder()
            .query_id("q-2")
            .build()
    });
    let running = mock!(aws_sdk_cloudwatchlogs::Client::get_query_results).then_output(|| {
        aws_sdk_cloudwatchlogs::operation::get_query_results::GetQueryResultsOutput::builder()
            .status(QueryStatus::Running)
            .build()
    });
    let stop = mock!(aws_sdk_cloudwatchlogs::Client::stop_query)
        .match_requests(|r| r.query_id() == Some("q-2"))
        .then_output(|| {
            aws_sdk_cloudwatchlogs::operation::stop_query::StopQueryOutput::builder().build()
        });
    let logs = mocked!(
        aws_sdk_cloudwatchlogs,
        RuleMode::MatchAny,
        [&start, &running, &stop]
    );
    let err = offending_ips(
        &logs,
        &["/prod/auth-service".to_string()],
        ("2026-11-20T03:10:00Z", "2026-11-20T03:15:00Z"),
        "stats count(*) as failures by ip_address",
        10,
        Polling {
            every: Duration::from_millis(1),
            max_polls: 3,
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.code.as_deref(), Some("QueryTimeout"));
    assert!(err.retryable);
    assert_eq!(running.num_calls(), 3);
    assert_eq!(stop.num_calls(), 1, "the query is not left running");
}

fn group_filter(
    r: &aws_sdk_ec2::operation::describe_security_groups::DescribeSecurityGroupsInput,
    name: &str,
) -> bool {
    r.filters()
        .iter()
        .any(|f| f.name() == Some("group-name") && f.values().iter().any(|v| v == name))
}

/// moto reports an ENI's groups merged with its instance's, so the exact
/// swap is checked here on the requests themselves: per ENI, first the
/// allow-all group alone, then the isolation group alone.
#[tokio::test]
async fn isolation_moves_each_eni_to_allow_all_then_to_the_empty_group_alone() {
    use aws_sdk_ec2::operation as op;
    use aws_sdk_ec2::types::{
        AttributeBooleanValue, GroupIdentifier, Instance, InstanceNetworkInterface, Reservation,
        SecurityGroup,
    };
    // The interfaces and their groups come with the instance: nothing
    // reads them again (DescribeNetworkInterfaces is not mocked here).
    let instances = mock!(aws_sdk_ec2::Client::describe_instances).then_output(|| {
        let eni = |id: &str, sg: &str| {
            InstanceNetworkInterface::builder()
                .network_interface_id(id)
                .vpc_id("vpc-0fedcba9876543210")
                .groups(GroupIdentifier::builder().group_id(sg).build())
                .build()
        };
        op::describe_instances::DescribeInstancesOutput::builder()
            .reservations(
                Reservation::builder()
                    .instances(
                        Instance::builder()
                            .instance_id("i-0abc123def4567890")
                            .network_interfaces(eni("eni-0aaa", "sg-0web"))
                            .network_interfaces(eni("eni-0bbb", "sg-0db"))
                            .build(),
                    )
                    .build(),
            )
            .build()
    });
    let attr = mock!(aws_sdk_ec2::Client::describe_instance_attribute).then_output(|| {
        op::describe_instance_attribute::DescribeInstanceAttributeOutput::builder()
            .disable_api_termination(AttributeBooleanValue::builder().value(false).build())
            .build()
    });
    // Both of Firebreak's groups, in one read.
    let groups = mock!(aws_sdk_ec2::Client::describe_security_groups)
        .match_requests(|r| {
            group_filter(r, "firebreak-isolation") && group_filter(r, "firebreak-untrack")
        })
        .then_output(|| {
            // As Firebreak made them: tagged at creation, the isolation
            // group without rules.
            let group = |id: &str, name: &str| {
                SecurityGroup::builder()
                    .group_id(id)
                    .group_name(name)
                    .vpc_id("vpc-0fedcba9876543210")
                    .tags(
                        aws_sdk_ec2::types::Tag::builder()
                            .key("firebreak:managed")
                            .value("true")
                            .build(),
                    )
                    .build()
            };
            op::describe_security_groups::DescribeSecurityGroupsOutput::builder()
                .security_groups(group("sg-0iso", "firebreak-isolation"))
                .security_groups(group("sg-0all", "firebreak-untrack"))
                .build()
        });
    let swaps = Arc::new(std::sync::Mutex::new(Vec::<(String, Vec<String>)>::new()));
    let seen = swaps.clone();
    let modify = mock!(aws_sdk_ec2::Client::modify_network_interface_attribute)
        .match_requests(move |r| {
            seen.lock().unwrap().push((
                r.network_interface_id().unwrap_or_default().to_string(),
                r.groups().to_vec(),
            ));
            true
        })
        .then_output(|| {
            op::modify_network_interface_attribute::ModifyNetworkInterfaceAttributeOutput::builder()
                .build()
        });
    let tags = mock!(aws_sdk_ec2::Client::create_tags)
        .match_requests(|r| r.resources() == ["i-0abc123def4567890".to_string()])
        .then_output(|| op::create_tags::CreateTagsOutput::builder().build());
    let protect = mock!(aws_sdk_ec2::Client::modify_instance_attribute)
        .match_requests(|r| r.disable_api_termination().and_then(|v| v.value()) == Some(true))
        .then_output(|| {
            op::modify_instance_attribute::ModifyInstanceAttributeOutput::builder().build()
        });
    let ec2 = mocked!(
        aws_sdk_ec2,
        RuleMode::MatchAny,
        [&instances, &attr, &groups, &modify, &tags, &protect]
    );
    let step = firebreak_aws::actions::isolate::isolate_instance(
        &ec2,
        "i-0abc123def4567890",
        "fb-a600cce2b4010f814d5f",
        "firebreak:protected",
        &Gate::open(),
    )
    .await
    .unwrap();
    // The ENIs move at once; each in its own order.
    let mut swaps = swaps.lock().unwrap().clone();
    swaps.sort_by_key(|(eni, _)| eni.clone());
    let g = |s: &str| vec![s.to_string()];
    assert_eq!(
        swaps,
        vec![
            ("eni-0aaa".to_string(), g("sg-0all")),
            ("eni-0aaa".to_string(), g("sg-0iso")),
            ("eni-0bbb".to_string(), g("sg-0all")),
            ("eni-0bbb".to_string(), g("sg-0iso")),
        ]
    );
    assert_eq!(tags.num_calls(), 1);
    assert_eq!(protect.num_calls(), 1);
    assert_eq!(
        step.prior_state["network_interfaces"][1]["groups"],
        serde_json::json!(["sg-0db"])
    );
    assert_eq!(step.prior_state["termination_protection"], false);
}

/// The envelope is checked again right before the calls: a block planned
/// when the address was not allow-listed is refused if it is by the time it
/// runs — and EC2 (whose mock here answers nothing) is never called.
#[tokio::test]
async fn a_block_is_rechecked_against_the_allow_list_before_any_call() {
    let nobody = mock!(aws_sdk_ec2::Client::describe_network_acls).then_output(|| {
        aws_sdk_ec2::operation::describe_network_acls::DescribeNetworkAclsOutput::builder().build()
    });
    let ec2 = mocked!(aws_sdk_ec2, RuleMode::MatchAny, [&nobody]);
    let clients = Clients { ec2, ..unmocked() };
    let when_planned = Config::load(&BTreeMap::new(), None).unwrap();
    let command = serde_json::json!({"command": "block_ip", "ip": "198.51.100.40", "subnet_ids": ["subnet-0123456789abcdef0"], "requested_by": "oncall", "reason": "test"});
    let plans = plan_event(command.to_string().as_bytes(), &when_planned).unwrap();
    assert_eq!(
        plans.incidents[0].actions[0].status,
        firebreak_core::PlanStatus::Planned
    );
    let now: BTreeMap<String, String> = [(
        "FIREBREAK_ALLOWLIST".to_string(),
        "198.51.100.0/24".to_string(),
    )]
    .into();
    let exec = Executor::for_account(
        clients,
        Arc::new(Config::load(&now, None).unwrap()),
        "111122223333",
    );
    let report = exec.run(&plans.incidents[0]).await;
    let block = report
        .actions
        .iter()
        .find(|a| a.kind == ActionKind::BlockIp)
        .unwrap();
    assert_eq!(block.status, Status::Skipped, "{block:?}");
    assert!(block.detail.contains("allow"), "{block:?}");
    assert_eq!(nobody.num_calls(), 0, "no EC2 call for a refused block");
}

/// A member account without Firebreak's role (its stack not deployed, or a
/// trust policy that does not name this responder): STS refuses, and the
/// containment fails there, named, not retryable, with nothing called in
/// IAM; the record is still written at home.
#[tokio::test]
async fn a_member_role_that_cannot_be_assumed_fails_named_and_touches_nothing() {
    let (status, body) = iam_error(
        403,
        "AccessDenied",
        "User: arn:aws:sts::111122223333:assumed-role/firebreak-guardduty/x is not authorized to perform: sts:AssumeRole",
    );
    let refuse = mock!(aws_sdk_sts::Client::assume_role)
        .match_requests(|r| {
            r.role_arn() == Some("arn:aws:iam::444455556666:role/firebreak-member")
                && r.role_session_name()
                    .is_some_and(|n| n.starts_with("firebreak-fb-"))
        })
        .sequence()
        .http_status(status, body)
        .build();
    let any_iam = mock!(aws_sdk_iam::Client::list_access_keys).then_output(|| {
        aws_sdk_iam::operation::list_access_keys::ListAccessKeysOutput::builder()
            .build()
            .unwrap()
    });
    let put = mock!(aws_sdk_s3::Client::put_object)
        .then_output(|| aws_sdk_s3::operation::put_object::PutObjectOutput::builder().build());
    let clients = Clients {
        iam: mocked!(aws_sdk_iam, RuleMode::MatchAny, [&any_iam]),
        s3: mocked!(aws_sdk_s3, RuleMode::MatchAny, [&put]),
        sts: mocked!(aws_sdk_sts, RuleMode::MatchAny, [&refuse]),
        ..unmocked()
    };
    let vars: BTreeMap<String, String> = [
        ("FIREBREAK_MEMBER_ROLE_NAME", "firebreak-member"),
        ("FIREBREAK_RECORDS_BUCKET", "records"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let cfg = Config::load(&vars, None).unwrap();
    let mut ev: serde_json::Value =
        serde_json::from_slice(include_bytes!("../../../events/guardduty-leaked-key.json"))
            .unwrap();
    ev["detail"]["accountId"] = "444455556666".into();
    let plans = plan_event(ev.to_string().as_bytes(), &cfg).unwrap();
    let exec = Executor::for_account(clients, Arc::new(cfg), "111122223333");
    let report = exec.run(&plans.incidents[0]).await;
    let key = report
        .actions
        .iter()
        .find(|a| a.kind == ActionKind::DeactivateAccessKey)
        .unwrap();
    assert_eq!(key.status, Status::Failed, "{key:?}");
    let err = key.error.as_ref().unwrap();
    assert_eq!(err.operation, "AssumeRole");
    assert_eq!(err.code.as_deref(), Some("AccessDenied"));
    assert!(!err.retryable, "{err:?}");
    assert!(
        err.message
            .contains("cannot assume arn:aws:iam::444455556666:role/firebreak-member"),
        "{err:?}"
    );
    assert_eq!(refuse.num_calls(), 1);
    assert_eq!(any_iam.num_calls(), 0, "nothing called in IAM");
    let failure = report.failure().unwrap();
    assert!(failure.contains("deactivate_access_key"), "{failure}");
    let record = report
        .actions
        .iter()
        .find(|a| a.kind == ActionKind::RecordIncident)
        .unwrap();
    assert_eq!(record.status, Status::Done, "{record:?}");
}

/// An emergency lockdown whose UpdateService is denied: the listener still
/// answers 503 and the secret is still rotated, each recorded; the notice
/// names the part that failed with AWS's code, and so does the caller's
/// error.
#[tokio::test]
async fn a_lockdown_part_denied_leaves_the_others_done_recorded_and_named() {
    use aws_sdk_elasticloadbalancingv2::types::{Action, ActionTypeEnum, Listener};
    const LISTENER: &str = "arn:aws:elasticloadbalancing:eu-west-1:111122223333:listener/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2";
    let services = mock!(aws_sdk_ecs::Client::describe_services).then_output(|| {
        aws_sdk_ecs::operation::describe_services::DescribeServicesOutput::builder()
            .services(
                aws_sdk_ecs::types::Service::builder()
                    .service_name("web-api")
                    .status("ACTIVE")
                    .desired_count(4)
                    .build(),
            )
            .build()
    });
    let clusters = mock!(aws_sdk_ecs::Client::describe_clusters).then_output(|| {
        aws_sdk_ecs::operation::describe_clusters::DescribeClustersOutput::builder().build()
    });
    let denied = r#"{"__type":"AccessDeniedException","message":"User: arn:aws:sts::111122223333:assumed-role/firebreak-manual/x is not authorized to perform: ecs:UpdateService"}"#;
    let update = mock!(aws_sdk_ecs::Client::update_service)
        .sequence()
        .http_status(400, Some(denied.to_string()))
        .build();
    let listeners = mock!(aws_sdk_elasticloadbalancingv2::Client::describe_listeners).then_output(
        || {
            aws_sdk_elasticloadbalancingv2::operation::describe_listeners::DescribeListenersOutput::builder()
                .listeners(
                    Listener::builder()
                        .listener_arn(LISTENER)
                        .default_actions(
                            Action::builder()
                                .r#type(ActionTypeEnum::Forward)
                                .target_group_arn("arn:aws:elasticloadbalancing:eu-west-1:111122223333:targetgroup/web/1")
                                .build(),
                        )
                        .build(),
                )
                .build()
        },
    );
    let tags = mock!(aws_sdk_elasticloadbalancingv2::Client::describe_tags).then_output(|| {
        aws_sdk_elasticloadbalancingv2::operation::describe_tags::DescribeTagsOutput::builder()
            .build()
    });
    let modify = mock!(aws_sdk_elasticloadbalancingv2::Client::modify_listener)
        .match_requests(|r| {
            r.default_actions() == [firebreak_aws::actions::elb::maintenance_response()]
        })
        .then_output(|| {
            aws_sdk_elasticloadbalancingv2::operation::modify_listener::ModifyListenerOutput::builder()
                .build()
        });
    let describe_secret =
        mock!(aws_sdk_secretsmanager::Client::describe_secret).then_output(|| {
            aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput::builder()
            .arn("arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/admin-password-AbCdEf")
            .rotation_enabled(true)
            .version_ids_to_stages("v-1", vec!["AWSCURRENT".to_string()])
            .build()
        });
    let rotate = mock!(aws_sdk_secretsmanager::Client::rotate_secret)
        .match_requests(|r| {
            r.rotate_immediately() == Some(true) && r.client_request_token().is_some()
        })
        .then_output(|| {
            aws_sdk_secretsmanager::operation::rotate_secret::RotateSecretOutput::builder()
                .version_id("v-2")
                .build()
        });
    let written = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen_keys = written.clone();
    let put = mock!(aws_sdk_s3::Client::put_object)
        .match_requests(move |r| {
            seen_keys
                .lock()
                .unwrap()
                .push(r.key().unwrap_or_default().to_string());
            true
        })
        .then_output(|| aws_sdk_s3::operation::put_object::PutObjectOutput::builder().build());
    let listing = mock!(aws_sdk_s3::Client::list_objects_v2).then_output(|| {
        aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output::builder().build()
    });
    let missing = r#"<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>"#;
    let get = mock!(aws_sdk_s3::Client::get_object)
        .sequence()
        .http_status(404, Some(missing.to_string()))
        .repeatedly()
        .build();
    let messages = Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
    let seen = messages.clone();
    let publish = mock!(aws_sdk_sns::Client::publish)
        .match_requests(move |r| {
            seen.lock().unwrap().push((
                r.subject().unwrap_or_default().to_string(),
                r.message().unwrap_or_default().to_string(),
            ));
            true
        })
        .then_output(|| {
            aws_sdk_sns::operation::publish::PublishOutput::builder()
                .message_id("m-1")
                .build()
        });
    let clients = Clients {
        s3: mocked!(aws_sdk_s3, RuleMode::MatchAny, [&put, &listing, &get]),
        sns: mocked!(aws_sdk_sns, RuleMode::MatchAny, [&publish]),
        ecs: mocked!(
            aws_sdk_ecs,
            RuleMode::MatchAny,
            [&services, &clusters, &update]
        ),
        elb: mocked!(
            aws_sdk_elasticloadbalancingv2,
            RuleMode::MatchAny,
            [&listeners, &tags, &modify]
        ),
        secrets: mocked!(
            aws_sdk_secretsmanager,
            RuleMode::MatchAny,
            [&describe_secret, &rotate]
        ),
        ..unmocked()
    };
    let vars: BTreeMap<String, String> = [
        ("FIREBREAK_RECORDS_BUCKET", "records"),
        (
            "FIREBREAK_TEAM_TOPIC_ARN",
            "arn:aws:sns:eu-west-1:111122223333:team",
        ),
        (
            "FIREBREAK_STAKEHOLDER_TOPIC_ARN",
            "arn:aws:sns:eu-west-1:111122223333:stakeholders",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let cfg = Arc::new(Config::load(&vars, None).unwrap());
    let command = serde_json::json!({
        "command": "lockdown",
        "ecs_services": [{ "cluster": "prod", "service": "web-api" }],
        "listener_arns": [LISTENER],
        "secret_ids": ["prod/admin-password"],
        "requested_by": "oncall-alice", "reason": "SEC-2077",
        "account": "111122223333", "region": "eu-west-1",
    });
    let plans = plan_event(command.to_string().as_bytes(), &cfg).unwrap();
    let exec = Executor::for_account(clients, cfg, "111122223333");
    let response = firebreak_aws::respond(&exec, &plans).await;
    let report = &response.incidents[0];
    let find = |k: ActionKind| report.actions.iter().find(|a| a.kind == k).unwrap();
    let scaled = find(ActionKind::ScaleServiceToZero);
    assert_eq!(scaled.status, Status::Failed, "{report:#?}");
    let err = scaled.error.as_ref().unwrap();
    assert_eq!(err.operation, "UpdateService");
    assert_eq!(err.code.as_deref(), Some("AccessDeniedException"));
    assert!(!err.retryable);
    assert_eq!(update.num_calls(), 1, "not retried");
    // The other parts are done, and their final outcomes are on record.
    let listener = find(ActionKind::ServeMaintenanceResponse);
    assert_eq!(listener.status, Status::Done, "{listener:?}");
    assert_eq!(modify.num_calls(), 1);
    assert_eq!(
        listener.prior_state["default_actions"][0]["target_group_arn"],
        "arn:aws:elasticloadbalancing:eu-west-1:111122223333:targetgroup/web/1"
    );
    let secret = find(ActionKind::RotateSecret);
    assert_eq!(secret.status, Status::Done, "{secret:?}");
    assert_eq!(secret.prior_state["version_before"], "v-1");
    assert_eq!(secret.prior_state["version_after"], "v-2");
    let keys = written.lock().unwrap().clone();
    for kind in ["serve_maintenance_response", "rotate_secret"] {
        assert!(
            keys.iter()
                .any(|k| k.contains(&format!("/actions/{kind}-")) && !k.contains(".failed-")),
            "{kind} not recorded: {keys:#?}"
        );
    }
    assert!(
        keys.iter()
            .any(|k| k.contains("/actions/scale_service_to_zero-") && k.contains(".failed-")),
        "the failed attempt is recorded: {keys:#?}"
    );
    // Team and stakeholders are told, the failure named first.
    let sent = messages.lock().unwrap().clone();
    assert_eq!(sent.len(), 2, "team and stakeholders");
    for (subject, message) in &sent {
        assert!(
            subject.starts_with("[Firebreak] EMERGENCY LOCKDOWN CRITICAL"),
            "{subject}"
        );
        let readable = message.split("\n---\n").next().unwrap();
        assert!(
            readable.contains("[FAILED] scale_service_to_zero prod/web-api"),
            "{readable}"
        );
        assert!(readable.contains("AccessDeniedException"), "{readable}");
        assert!(
            readable.contains("[DONE] serve_maintenance_response"),
            "{readable}"
        );
        assert!(
            readable.contains("[DONE] rotate_secret prod/admin-password"),
            "{readable}"
        );
    }
    let failure = response.failure().unwrap();
    assert!(
        failure.contains("scale_service_to_zero prod/web-api (AccessDeniedException)"),
        "{failure}"
    );
    assert!(!response.retryable());
}
