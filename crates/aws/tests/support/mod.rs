//! A real local AWS for tests: moto's server mode, from the project's venv,
//! on a free 127.0.0.1 port, one per test, stopped when the test ends (and by
//! `timeout` should the test process die first).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod account;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod lockdown;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::Credentials;

/// A role EC2 instances may assume, as the instance-credential findings
/// name one.
pub async fn ec2_role(iam: &aws_sdk_iam::Client, name: &str) {
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    iam.create_role()
        .role_name(name)
        .assume_role_policy_document(trust)
        .send()
        .await
        .unwrap();
}

/// The emulated account: the one the sample events in `events/` name.
pub const ACCOUNT: &str = "111122223333";

/// The account moto acts in for credentials it did not issue.
pub const MOTO_DEFAULT_ACCOUNT: &str = "123456789012";

/// A running moto server.
#[derive(Debug)]
pub struct Emulator {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// Stops a server started under `timeout`: SIGTERM, which `timeout` passes
/// on to the server (SIGKILL would end `timeout` alone and orphan the
/// server), then waits for it.
pub fn stop(child: &mut Child) {
    let stopped = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .is_ok_and(|s| s.success());
    if !stopped {
        let _ = child.kill();
    }
    let _ = child.wait();
}

/// The workspace root (where `Cargo.lock` and `.venv` are), whichever
/// member's test includes this module.
pub fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .find(|d| d.join("Cargo.lock").exists())
        .unwrap_or(&here)
        .to_path_buf()
}

fn moto_server() -> PathBuf {
    if let Some(p) = std::env::var_os("FIREBREAK_TEST_MOTO_SERVER") {
        return PathBuf::from(p);
    }
    let p = workspace_root().join(".venv/bin/moto_server");
    assert!(
        p.exists(),
        "the local AWS emulator is not installed: run `make venv` (installs moto[server]==5.2.5 into .venv), \
         or point FIREBREAK_TEST_MOTO_SERVER at a moto_server binary"
    );
    p
}

fn answers_http(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 12];
    matches!(s.read(&mut buf), Ok(n) if n >= 12 && buf.starts_with(b"HTTP/1."))
}

/// The project's venv Python (it has `jsonschema`, installed with moto).
pub fn venv_python() -> PathBuf {
    moto_server().with_file_name("python3")
}

/// moto's server, one request at a time. Its threaded server checks an S3
/// `If-None-Match`/`If-Match` condition and then writes, without a lock, so
/// two concurrent conditional writes could both pass; real S3 decides them
/// atomically, and the claims and the budget rely on that. A lock around
/// the WSGI app gives the emulator S3's (and EC2's) atomic semantics; it
/// keeps HTTP keep-alive and concurrent connections.
const SERIAL_MOTO: &str = r#"
import sys, threading
import moto.server as server
lock = threading.Lock()
def serial(app):
    def call(environ, start_response):
        with lock:
            return list(app(environ, start_response))
    return call
run = server.run_simple
server.run_simple = lambda host, port, app, **kw: run(host, port, serial(app), **kw)
server.main(sys.argv[1:])
"#;

fn moto_command() -> Vec<std::ffi::OsString> {
    if let Some(p) = std::env::var_os("FIREBREAK_TEST_MOTO_SERVER") {
        return vec![p];
    }
    let python = moto_server().with_file_name("python3");
    vec![python.into(), "-c".into(), SERIAL_MOTO.into()]
}

impl Emulator {
    /// Firebreak's own clients on this emulator (S3 path-style, as for any
    /// endpoint override).
    pub async fn clients(&self) -> firebreak_aws::Clients {
        firebreak_aws::Clients::from_config(&self.sdk_config().await)
    }

    /// Starts moto and waits until it answers HTTP. A port another test's
    /// server took between our probe and moto's bind makes moto exit: then
    /// it is started again on a new port.
    pub fn start() -> Emulator {
        Emulator::start_with(Some(ACCOUNT))
    }

    /// An emulator of several accounts: requests act in the account their
    /// access key belongs to (an assumed role's key: the role's account),
    /// and in [`MOTO_DEFAULT_ACCOUNT`] otherwise. (A fixed MOTO_ACCOUNT_ID
    /// would override every key.)
    pub fn start_organisation() -> Emulator {
        Emulator::start_with(None)
    }

    fn start_with(account: Option<&str>) -> Emulator {
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut cmd = Command::new("timeout");
            cmd.arg("900")
                .args(moto_command())
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env_remove("MOTO_ACCOUNT_ID");
            if let Some(a) = account {
                // The account of the sample events, so they run unchanged.
                cmd.env("MOTO_ACCOUNT_ID", a);
            }
            let mut child = cmd
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start moto_server");
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if child.try_wait().ok().flatten().is_some() {
                    break; // exited: the port was taken; try another
                }
                if answers_http(port) {
                    return Emulator {
                        child,
                        url: format!("http://127.0.0.1:{port}"),
                    };
                }
                assert!(
                    Instant::now() < deadline,
                    "moto_server did not answer on port {port} within 60 s"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        panic!("moto_server exited on five ports in a row");
    }

    /// SDK configuration pointing at this emulator, as account [`ACCOUNT`].
    pub async fn sdk_config(&self) -> SdkConfig {
        self.loader(&self.url).load().await
    }

    /// SDK configuration for this emulator's account reached through
    /// `endpoint` (a proxy in front of it), with Firebreak's call limits.
    pub async fn sdk_config_through(
        &self,
        endpoint: &str,
        limits: firebreak_aws::clients::Limits,
    ) -> SdkConfig {
        limits.apply(self.loader(endpoint)).load().await
    }

    fn loader(&self, endpoint: &str) -> aws_config::ConfigLoader {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(Region::new("eu-west-1"))
            .credentials_provider(Credentials::new(
                "testing",
                "testing",
                None,
                None,
                "firebreak-tests",
            ))
    }
}

/// A VPC with one subnet: (vpc, subnet, the subnet's network ACL).
pub async fn vpc_with_subnet(ec2: &aws_sdk_ec2::Client) -> (String, String, String) {
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.20.0.0/16")
        .send()
        .await
        .unwrap()
        .vpc
        .unwrap()
        .vpc_id
        .unwrap();
    let subnet = ec2
        .create_subnet()
        .vpc_id(&vpc)
        .cidr_block("10.20.1.0/24")
        .send()
        .await
        .unwrap()
        .subnet
        .unwrap()
        .subnet_id
        .unwrap();
    let nacls = firebreak_aws::actions::nacl::read_nacls(ec2, std::slice::from_ref(&subnet), &[])
        .await
        .unwrap();
    let nacl = nacls[0].network_acl_id().unwrap().to_string();
    (vpc, subnet, nacl)
}

/// An instance in `subnet` with a launch group `web` and a second EBS
/// volume attached: (instance, web group).
pub async fn instance_with_volume(
    ec2: &aws_sdk_ec2::Client,
    vpc: &str,
    subnet: &str,
) -> (String, String) {
    let web = ec2
        .create_security_group()
        .vpc_id(vpc)
        .group_name("web")
        .description("web servers")
        .send()
        .await
        .unwrap()
        .group_id
        .unwrap();
    (instance_in(ec2, subnet, &web).await, web)
}

/// An instance in `subnet` with `group`, and a data volume attached.
pub async fn instance_in(ec2: &aws_sdk_ec2::Client, subnet: &str, group: &str) -> String {
    let image = ec2.describe_images().send().await.unwrap().images()[0]
        .image_id()
        .unwrap()
        .to_string();
    let inst = ec2
        .run_instances()
        .image_id(image)
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .subnet_id(subnet)
        .security_group_ids(group)
        .send()
        .await
        .unwrap()
        .instances()[0]
        .clone();
    let id = inst.instance_id().unwrap().to_string();
    let az = inst
        .placement()
        .unwrap()
        .availability_zone()
        .unwrap()
        .to_string();
    let vol = ec2
        .create_volume()
        .availability_zone(az)
        .size(8)
        .send()
        .await
        .unwrap()
        .volume_id
        .unwrap();
    ec2.attach_volume()
        .volume_id(vol)
        .instance_id(&id)
        .device("/dev/sdf")
        .send()
        .await
        .unwrap();
    id
}

/// An IAM user with `n` access keys; returns the key ids.
pub async fn user_with_keys(iam: &aws_sdk_iam::Client, user: &str, n: usize) -> Vec<String> {
    iam.create_user().user_name(user).send().await.unwrap();
    let mut keys = Vec::new();
    for _ in 0..n {
        let key = iam
            .create_access_key()
            .user_name(user)
            .send()
            .await
            .unwrap()
            .access_key
            .unwrap();
        keys.push(key.access_key_id().to_string());
    }
    keys
}

/// A bucket in the emulator's region.
pub async fn create_bucket(s3: &aws_sdk_s3::Client, bucket: &str) {
    s3.create_bucket()
        .bucket(bucket)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// `(rule number, CIDR)` of the deny entries of one direction of `nacl`,
/// sorted; AWS's catch-all deny (rule 32767) left out.
pub async fn deny_entries(
    ec2: &aws_sdk_ec2::Client,
    nacl: &str,
    egress: bool,
) -> Vec<(i32, String)> {
    let out = ec2
        .describe_network_acls()
        .network_acl_ids(nacl)
        .send()
        .await
        .unwrap();
    let mut v: Vec<(i32, String)> = out.network_acls()[0]
        .entries()
        .iter()
        .filter(|e| {
            e.egress() == Some(egress)
                && e.rule_action() == Some(&aws_sdk_ec2::types::RuleAction::Deny)
        })
        .filter(|e| e.rule_number() != Some(32767))
        .map(|e| {
            (
                e.rule_number().unwrap(),
                e.cidr_block().or(e.ipv6_cidr_block()).unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

/// The keys of every object in `bucket` under `prefix`, every page.
pub async fn object_keys(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let r = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_continuation_token(token)
            .send()
            .await
            .unwrap();
        out.extend(
            r.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
        match r.next_continuation_token() {
            Some(t) => token = Some(t.to_string()),
            None => return out,
        }
    }
}

/// One object's body.
pub async fn object_bytes(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    let o = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    o.body.collect().await.unwrap().into_bytes().to_vec()
}

/// `(kind, status)` of every action of the first incident in an answer
/// (`firebreak respond`'s output, a function's response).
pub fn statuses(answer: &serde_json::Value) -> Vec<(String, String)> {
    answer["incidents"][0]["actions"]
        .as_array()
        .unwrap_or_else(|| panic!("no actions in {answer:#}"))
        .iter()
        .map(|a| {
            (
                a["kind"].as_str().unwrap().to_string(),
                a["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// An EC2 filter with one value.
pub fn filter(name: &str, value: &str) -> aws_sdk_ec2::types::Filter {
    aws_sdk_ec2::types::Filter::builder()
        .name(name)
        .values(value)
        .build()
}

/// The security groups of every network interface attached to `instance`.
pub async fn eni_groups(
    ec2: &aws_sdk_ec2::Client,
    instance: &str,
) -> Vec<aws_sdk_ec2::types::GroupIdentifier> {
    ec2.describe_network_interfaces()
        .filters(filter("attachment.instance-id", instance))
        .send()
        .await
        .unwrap()
        .network_interfaces()
        .iter()
        .flat_map(|n| n.groups().iter().cloned())
        .collect()
}

/// How many of the account's own snapshots match `filter`.
pub async fn snapshot_count(
    ec2: &aws_sdk_ec2::Client,
    filter: aws_sdk_ec2::types::Filter,
) -> usize {
    ec2.describe_snapshots()
        .owner_ids("self")
        .filters(filter)
        .send()
        .await
        .unwrap()
        .snapshots()
        .len()
}

/// The status of each of `keys` of `user`, in order (`None`: no such key).
pub async fn key_states(
    iam: &aws_sdk_iam::Client,
    user: &str,
    keys: &[String],
) -> Vec<Option<aws_sdk_iam::types::StatusType>> {
    let listed = iam.list_access_keys().user_name(user).send().await.unwrap();
    keys.iter()
        .map(|k| {
            listed
                .access_key_metadata()
                .iter()
                .find(|m| m.access_key_id() == Some(k))
                .and_then(|m| m.status().cloned())
        })
        .collect()
}

/// The team and stakeholder topics, and an SQS queue subscribed to the
/// team topic so a test can read the notices back.
#[derive(Debug, Clone)]
pub struct Topics {
    /// Team topic ARN.
    pub team: String,
    /// Stakeholder topic ARN.
    pub stakeholders: String,
    /// The team inbox.
    pub queue_url: String,
}

/// Creates [`Topics`].
pub async fn topics_with_inbox(sns: &aws_sdk_sns::Client, sqs: &aws_sdk_sqs::Client) -> Topics {
    let topic = |name: &'static str| async move {
        sns.create_topic()
            .name(name)
            .send()
            .await
            .unwrap()
            .topic_arn
            .unwrap()
    };
    let team = topic("firebreak-team").await;
    let stakeholders = topic("firebreak-stakeholders").await;
    let queue_url = sqs
        .create_queue()
        .queue_name("team-inbox")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let arn = aws_sdk_sqs::types::QueueAttributeName::QueueArn;
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(arn.clone())
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&arn]
        .clone();
    sns.subscribe()
        .topic_arn(&team)
        .protocol("sqs")
        .endpoint(queue_arn)
        .attributes("RawMessageDelivery", "false")
        .send()
        .await
        .unwrap();
    Topics {
        team,
        stakeholders,
        queue_url,
    }
}

/// Every notice in the team inbox (SNS envelopes), reading until empty.
pub async fn notices(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for _ in 0..100 {
        let r = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        for m in r.messages() {
            out.push(serde_json::from_str(m.body().unwrap()).unwrap());
        }
        if r.messages().is_empty() {
            break;
        }
    }
    out
}

/// Validates every object in the bucket against the published schema with
/// a real JSON Schema validator (the venv's `jsonschema`).
pub async fn assert_records_match_schema(s3: &aws_sdk_s3::Client, bucket: &str) {
    let dir =
        std::env::temp_dir().join(format!("firebreak-schema-{bucket}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A lockdown's evidence copies are the account's data, not records.
    let keys: Vec<String> = object_keys(s3, bucket, "")
        .await
        .into_iter()
        .filter(|k| !k.starts_with("evidence/"))
        .collect();
    assert!(!keys.is_empty());
    for (n, key) in keys.iter().enumerate() {
        let body = object_bytes(s3, bucket, key).await;
        std::fs::write(dir.join(format!("{n:03}.json")), &body).unwrap();
    }
    let schema = workspace_root().join("crates/aws/schema/incident-record.v1.schema.json");
    let script = r#"
import glob, json, sys
import jsonschema
schema = json.load(open(sys.argv[1]))
v = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
files = sorted(glob.glob(sys.argv[2] + "/*.json"))
bad = 0
for f in files:
    for e in v.iter_errors(json.load(open(f))):
        bad += 1
        print(f, e.message[:300])
print("checked", len(files))
sys.exit(1 if bad else 0)
"#;
    let out = std::process::Command::new(venv_python())
        .args(["-c", script])
        .arg(&schema)
        .arg(&dir)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "records do not match the schema:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("checked {}", keys.len())));
}

/// The SSH brute-force sample finding, aimed at `instance` in `subnet` of `vpc`.
pub fn brute_force_on(instance: &str, subnet: &str, vpc: &str) -> serde_json::Value {
    let path = workspace_root().join("events/guardduty-ssh-brute-force.json");
    let mut ev: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let details = &mut ev["detail"]["resource"]["instanceDetails"];
    details["instanceId"] = instance.into();
    details["networkInterfaces"][0]["subnetId"] = subnet.into();
    details["networkInterfaces"][0]["vpcId"] = vpc.into();
    ev
}

/// Moves every time in a GuardDuty EventBridge event `by` into the past
/// (or the future), keeping their order: a test states how old the finding
/// is relative to the clock instead of depending on today's date.
pub fn shift_finding_times(ev: &mut serde_json::Value, by: chrono::TimeDelta) {
    fn shift(v: &mut serde_json::Value, by: chrono::TimeDelta) {
        if let Some(t) = v
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        {
            *v = (t.with_timezone(&chrono::Utc) + by)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                .into();
        }
    }
    shift(&mut ev["time"], by);
    let d = &mut ev["detail"];
    shift(&mut d["createdAt"], by);
    shift(&mut d["updatedAt"], by);
    shift(&mut d["service"]["eventFirstSeen"], by);
    shift(&mut d["service"]["eventLastSeen"], by);
}

/// The ids of every security group named `name`, in any VPC.
pub async fn security_group_ids(ec2: &aws_sdk_ec2::Client, name: &str) -> Vec<String> {
    ec2.describe_security_groups()
        .filters(filter("group-name", name))
        .send()
        .await
        .unwrap()
        .security_groups()
        .iter()
        .filter_map(|g| g.group_id().map(str::to_string))
        .collect()
}

/// The ids of the security groups of `instance`'s interfaces, sorted.
pub async fn eni_group_ids(ec2: &aws_sdk_ec2::Client, instance: &str) -> Vec<String> {
    let mut g: Vec<String> = eni_groups(ec2, instance)
        .await
        .iter()
        .filter_map(|g| g.group_id().map(str::to_string))
        .collect();
    g.sort();
    g
}

/// Whether `instance` has termination protection on.
pub async fn termination_protected(ec2: &aws_sdk_ec2::Client, instance: &str) -> bool {
    ec2.describe_instance_attribute()
        .instance_id(instance)
        .attribute(aws_sdk_ec2::types::InstanceAttributeName::DisableApiTermination)
        .send()
        .await
        .unwrap()
        .disable_api_termination()
        .unwrap()
        .value()
        .unwrap()
}
