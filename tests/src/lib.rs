//! The local AWS and the local Lambda service, for the end-to-end tests and
//! `make demo`: moto's server mode seeded with a small account, and the
//! function binaries polling `cargo lambda watch --only-lambda-apis`, which
//! serves the Lambda Invoke API that `cargo lambda invoke` and `aws lambda
//! invoke --endpoint-url` call.
//!
//! The binaries come from [`build_functions`], not from watch: watch would
//! build them with `cargo build -p <function>`, which resolves different
//! features than the workspace test build and compiles the AWS SDK again.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

#[path = "../../crates/aws/tests/support/mod.rs"]
pub mod support;

pub mod proxy;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub use support::{Emulator, ACCOUNT};

/// The five functions, by binary (= function) name.
pub const FUNCTIONS: [&str; 5] = [
    "firebreak-alarm",
    "firebreak-guardduty",
    "firebreak-manual",
    "firebreak-release",
    "firebreak-expirer",
];

/// The workspace root.
pub fn root() -> PathBuf {
    support::workspace_root()
}

/// A tool from the project's venv.
pub fn venv_bin(name: &str) -> PathBuf {
    root().join(".venv/bin").join(name)
}

/// Where cargo put this build's binaries (`target/debug`), found from the
/// running executable so a custom `CARGO_TARGET_DIR` works too.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap();
    // Test binaries live in target/debug/deps; binaries in target/debug.
    if dir.ends_with("deps") {
        dir.parent().unwrap().to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// The build every verb shares: the Makefile's `cargo build $(TARGETS)`
/// (`tests/commands.rs` holds the two equal).
pub const BUILD_ARGS: [&str; 6] = [
    "build",
    "--workspace",
    "--bins",
    "--tests",
    "--benches",
    "--locked",
];

/// Builds the function binaries (once per process). `cargo test` builds
/// test harnesses, not the other packages' binaries, and a binary left from
/// an earlier build would test old code. With everything fresh this is a
/// no-op of a second or two. The target set is the Makefile's `TARGETS`:
/// the same selection keeps the feature set of the test build, so nothing is
/// compiled twice. Under `make test` the clippy wrapper it set is inherited
/// through the environment, so this build matches that one too.
pub fn build_functions() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(BUILD_ARGS)
            .arg("--quiet")
            .current_dir(root())
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build of the functions failed");
    });
}

/// A file name no other invocation in this process (tests run in
/// parallel) or another process uses.
fn temp_file(what: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir().join(format!(
        "firebreak-{what}-{}-{}.json",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The seeded account: what the demo and the end-to-end tests act on.
#[derive(Debug, Clone)]
pub struct Seeded {
    /// Bucket for the records.
    pub bucket: String,
    /// The team and stakeholder topics, and the team's inbox queue.
    pub topics: support::Topics,
    /// The user and its two keys.
    pub user: String,
    /// The keys; the first is the one the leaked-key finding names.
    pub keys: Vec<String>,
    /// VPC, subnet, its NACL.
    pub vpc: String,
    /// Subnet.
    pub subnet: String,
    /// NACL of the subnet.
    pub nacl: String,
    /// The instance with a data volume, and its launch group.
    pub instance: String,
    /// The instance's launch group.
    pub web_group: String,
    /// The application log group for failed logins.
    pub log_group: String,
    /// What `command-lockdown.json` acts on: an ECS service, an ALB
    /// listener, a secret, a bucket of user data.
    pub lockdown: support::lockdown::Targets,
}

impl Seeded {
    /// The `FIREBREAK_*` settings the functions run with against this
    /// account (events/policy.toml as the policy file).
    pub fn settings(&self) -> BTreeMap<String, String> {
        [
            (
                "FIREBREAK_POLICY_FILE",
                root().join("events/policy.toml").display().to_string(),
            ),
            ("FIREBREAK_RECORDS_BUCKET", self.bucket.clone()),
            ("FIREBREAK_TEAM_TOPIC_ARN", self.topics.team.clone()),
            (
                "FIREBREAK_STAKEHOLDER_TOPIC_ARN",
                self.topics.stakeholders.clone(),
            ),
            ("FIREBREAK_LOG_GROUPS", self.log_group.clone()),
            ("FIREBREAK_DEFAULT_NACLS", self.nacl.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// The configuration the functions load from [`Seeded::settings`],
    /// with `extra` on top.
    pub fn config(&self, extra: &[(&str, &str)]) -> std::sync::Arc<firebreak_core::Config> {
        let mut vars = self.settings();
        let path = vars.remove("FIREBREAK_POLICY_FILE").unwrap();
        for (k, v) in extra {
            vars.insert((*k).to_string(), (*v).to_string());
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let cfg = firebreak_core::Config::load(&vars, Some((path.as_str(), text.as_str())));
        std::sync::Arc::new(cfg.unwrap())
    }

    /// A sample event from `events/`, pointed at what this account really
    /// has (the leaked key, the attacked instance and its subnet).
    pub fn event(&self, name: &str) -> serde_json::Value {
        let path = root().join("events").join(name);
        let mut ev: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        match name {
            "guardduty-leaked-key.json" => {
                ev["detail"]["resource"]["accessKeyDetails"]["accessKeyId"] =
                    self.keys[0].clone().into();
            }
            // The same finding wrapped in SNS: the same incident.
            "guardduty-leaked-key-via-sns.json" => {
                let msg = ev["Records"][0]["Sns"]["Message"].as_str().unwrap();
                let mut inner: serde_json::Value = serde_json::from_str(msg).unwrap();
                inner["detail"]["resource"]["accessKeyDetails"]["accessKeyId"] =
                    self.keys[0].clone().into();
                ev["Records"][0]["Sns"]["Message"] = inner.to_string().into();
            }
            "guardduty-ssh-brute-force.json" => {
                let d = &mut ev["detail"]["resource"]["instanceDetails"];
                d["instanceId"] = self.instance.clone().into();
                d["networkInterfaces"][0]["subnetId"] = self.subnet.clone().into();
                d["networkInterfaces"][0]["vpcId"] = self.vpc.clone().into();
            }
            // The same findings delivered by Security Hub: the same
            // incidents, pointed at the same key and instance.
            n if n.starts_with("securityhub-guardduty-leaked-key") => {
                ev = replaced(&ev, &[("AKIAIOSFODNN7EXAMPLE", &self.keys[0])]);
            }
            // The lockdown, pointed at the seeded service, listener (its ARN
            // is the emulator's), secret, log group and bucket.
            "command-lockdown.json" => {
                let t = &self.lockdown;
                ev["ecs_services"] =
                    serde_json::json!([{ "cluster": t.cluster, "service": t.service }]);
                ev["listener_arns"] = serde_json::json!([t.listener_arn]);
                ev["secret_ids"] = serde_json::json!([t.secret_id]);
                ev["log_groups"] = serde_json::json!([t.log_group]);
                ev["evidence"][0]["bucket"] = t.uploads.clone().into();
            }
            n if n.starts_with("securityhub-guardduty-ssh-brute-force") => {
                ev = replaced(
                    &ev,
                    &[
                        ("i-0abc123def4567890", &self.instance),
                        ("subnet-0123456789abcdef0", &self.subnet),
                        ("vpc-0fedcba9876543210", &self.vpc),
                    ],
                );
            }
            _ => {}
        }
        ev
    }
}

/// `ev` with every occurrence of each sample id replaced by the seeded one
/// (an ASFF finding repeats an id in its resources, ARNs and fields).
fn replaced(ev: &serde_json::Value, ids: &[(&str, &String)]) -> serde_json::Value {
    let mut text = ev.to_string();
    for (sample, seeded) in ids {
        text = text.replace(sample, seeded);
    }
    serde_json::from_str(&text).unwrap()
}

/// A seeded local account for the tests that drive the executor directly:
/// the emulator, what was seeded, clients straight to it (to read the
/// account back) and the team's inbox.
#[derive(Debug)]
pub struct Local {
    /// The running emulator (stopped when this is dropped).
    pub emu: Emulator,
    /// What was seeded.
    pub seeded: Seeded,
    /// Firebreak's clients, straight to the emulator.
    pub clients: firebreak_aws::Clients,
    /// SQS, for the team topic's inbox.
    pub sqs: aws_sdk_sqs::Client,
}

impl Local {
    /// Starts an emulator and seeds it.
    pub async fn start() -> Local {
        let emu = Emulator::start();
        let seeded = seed(&emu).await;
        let clients = emu.clients().await;
        let sqs = aws_sdk_sqs::Client::new(&emu.sdk_config().await);
        Local {
            emu,
            seeded,
            clients,
            sqs,
        }
    }

    /// Keys of the records bucket under `prefix`.
    pub async fn keys(&self, prefix: &str) -> Vec<String> {
        support::object_keys(&self.clients.s3, &self.seeded.bucket, prefix).await
    }

    /// One object of the records bucket, as JSON.
    pub async fn object(&self, key: &str) -> serde_json::Value {
        let bytes = support::object_bytes(&self.clients.s3, &self.seeded.bucket, key).await;
        serde_json::from_slice(&bytes).unwrap()
    }

    /// The team's notices so far, per incident id.
    pub async fn notices(&self) -> BTreeMap<String, Vec<serde_json::Value>> {
        let mut per: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
        for n in support::notices(&self.sqs, &self.seeded.topics.queue_url).await {
            let id = n["MessageAttributes"]["incident_id"]["Value"]
                .as_str()
                .unwrap()
                .to_string();
            per.entry(id).or_default().push(n);
        }
        per
    }

    /// Deny entries of the seeded NACL, both directions: (egress, rule, CIDR).
    pub async fn denies(&self) -> Vec<(bool, i32, String)> {
        let mut all = Vec::new();
        for egress in [false, true] {
            for (n, c) in support::deny_entries(&self.clients.ec2, &self.seeded.nacl, egress).await
            {
                all.push((egress, n, c));
            }
        }
        all
    }

    /// State of the leaked key (the first seeded key).
    pub async fn key_state(&self) -> Option<aws_sdk_iam::types::StatusType> {
        let iam = &self.clients.iam;
        support::key_states(iam, &self.seeded.user, &self.seeded.keys).await[0].clone()
    }

    /// The role the temporary-credentials finding names, created (the
    /// seed leaves it out, so that the tests see its revocation refused).
    pub async fn add_app_server_role(&self) {
        let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        let role = self.clients.iam.create_role().role_name("app-server-role");
        role.assume_role_policy_document(trust)
            .send()
            .await
            .unwrap();
    }

    /// The emulator loads each service's code at its first call (STS took
    /// ~70 ms, a first SNS → SQS delivery ~80 ms): a cost of the emulator,
    /// not of AWS or of a responder. Seeding has called IAM, EC2, S3 and
    /// Logs; this calls STS and publishes once to each topic (a message
    /// in the team's inbox), so that what a benchmark times is not the
    /// emulator's start-up.
    pub async fn warm_emulator(&self) {
        let c = &self.clients;
        c.sts.get_caller_identity().send().await.unwrap();
        for topic in [&self.seeded.topics.team, &self.seeded.topics.stakeholders] {
            c.sns
                .publish()
                .topic_arn(topic)
                .message("warm-up")
                .send()
                .await
                .unwrap();
        }
    }

    /// How many volumes the seeded instance has.
    pub async fn volumes(&self) -> usize {
        self.clients
            .ec2
            .describe_volumes()
            .filters(support::filter(
                "attachment.instance-id",
                &self.seeded.instance,
            ))
            .send()
            .await
            .unwrap()
            .volumes()
            .len()
    }
}

/// `--name VALUE` from the command line (the bench binaries' options).
pub fn cli_arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1).cloned()
}

/// One action's outcome on a line: "kind target Status: detail".
pub fn outcome_line(a: &firebreak_aws::outcome::ActionOutcome) -> String {
    let (kind, target, status, detail) = (a.kind.as_str(), &a.target, a.status, &a.detail);
    format!("{kind} {target} {status:?}: {detail}")
}

/// Seeds a small account: a user with two keys, a user without, a VPC with a subnet and its
/// NACL, an instance with a volume, a log group, the bucket and the topics
/// (the team topic with an SQS subscription to read notices back), and what
/// a lockdown acts on (an ECS service, an ALB listener, a secret, a bucket
/// of user data).
pub async fn seed(emu: &Emulator) -> Seeded {
    let c = emu.clients().await;
    let sqs = aws_sdk_sqs::Client::new(&emu.sdk_config().await);
    let bucket = "acme-firebreak-records".to_string();
    support::create_bucket(&c.s3, &bucket).await;
    let topics = support::topics_with_inbox(&c.sns, &sqs).await;
    let user = "ci-deployer".to_string();
    let keys = support::user_with_keys(&c.iam, &user, 2).await;
    // The user the runbook's CRITICAL alert names (manual-compromised-account).
    c.iam
        .create_user()
        .user_name("contractor-jane")
        .send()
        .await
        .unwrap();
    let (vpc, subnet, nacl) = support::vpc_with_subnet(&c.ec2).await;
    let (instance, web_group) = support::instance_with_volume(&c.ec2, &vpc, &subnet).await;
    let log_group = "/prod/auth-service".to_string();
    c.logs
        .create_log_group()
        .log_group_name(&log_group)
        .send()
        .await
        .unwrap();
    c.logs
        .put_retention_policy()
        .log_group_name(&log_group)
        .retention_in_days(30)
        .send()
        .await
        .unwrap();
    let lockdown = support::lockdown::seed(&c, &vpc, &subnet, "acme").await;
    Seeded {
        bucket,
        topics,
        user,
        keys,
        vpc,
        subnet,
        nacl,
        instance,
        web_group,
        log_group,
        lockdown,
    }
}

/// `cargo lambda watch --only-lambda-apis` and the four function binaries
/// polling it. Everything is stopped on drop.
#[derive(Debug)]
pub struct Functions {
    watch: Child,
    functions: Vec<Child>,
    /// The Lambda Invoke API: `http://127.0.0.1:PORT`.
    pub url: String,
    /// The port.
    pub port: u16,
}

impl Drop for Functions {
    fn drop(&mut self) {
        for c in self
            .functions
            .iter_mut()
            .chain(std::iter::once(&mut self.watch))
        {
            support::stop(c);
        }
    }
}

/// Which AWS the functions act on.
#[derive(Debug, Clone, Copy)]
pub enum Aws<'a> {
    /// The local emulator (test credentials, its endpoint, eu-west-1).
    Emulator(&'a Emulator),
    /// Whatever the environment says (`AWS_PROFILE`, `AWS_REGION`,
    /// `AWS_ENDPOINT_URL`, …): `make watch`.
    Inherited,
}

impl Functions {
    /// Starts the Lambda APIs and every function with `settings` (the
    /// `FIREBREAK_*` variables) against the emulator.
    pub fn start(emu: &Emulator, settings: &BTreeMap<String, String>) -> Functions {
        // Before anything starts: the build can take minutes, and the
        // processes below each have a time limit.
        build_functions();
        Functions::launch(free_port(), Aws::Emulator(emu), settings, false)
    }

    /// Starts `cargo lambda watch --only-lambda-apis` on `port` and every
    /// function binary as it was built (see [`build_functions`]) polling
    /// it. `show_logs` passes the functions' logs through to this
    /// process's output.
    pub fn launch(
        port: u16,
        aws: Aws<'_>,
        settings: &BTreeMap<String, String>,
        show_logs: bool,
    ) -> Functions {
        let output = || {
            if show_logs {
                Stdio::inherit()
            } else {
                Stdio::null()
            }
        };
        let watch = Command::new("timeout")
            .arg(if show_logs { "0" } else { "900" })
            .arg(venv_bin("cargo-lambda"))
            .args(["lambda", "watch", "--only-lambda-apis"])
            .args(["--invoke-address", "127.0.0.1"])
            .args(["--invoke-port", &port.to_string()])
            .current_dir(root())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start cargo lambda watch (run `make venv`)");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "cargo lambda watch did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut functions = Vec::new();
        for name in FUNCTIONS {
            let mut cmd = Command::new("timeout");
            cmd.arg(if show_logs { "0" } else { "900" })
                .arg(bin_dir().join(name));
            if let Aws::Emulator(emu) = aws {
                for (k, _) in std::env::vars()
                    .filter(|(k, _)| k.starts_with("FIREBREAK_") || k.starts_with("AWS_"))
                {
                    cmd.env_remove(k);
                }
                cmd.env("AWS_ENDPOINT_URL", &emu.url)
                    .env("AWS_REGION", "eu-west-1")
                    .env("AWS_ACCESS_KEY_ID", "testing")
                    .env("AWS_SECRET_ACCESS_KEY", "testing")
                    .env("AWS_EC2_METADATA_DISABLED", "true");
            }
            cmd.env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{port}/.rt/{name}"),
            )
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .envs(settings)
            .stdout(output())
            .stderr(output());
            functions.push(cmd.spawn().unwrap());
        }
        Functions {
            watch,
            functions,
            url: format!("http://127.0.0.1:{port}"),
            port,
        }
    }

    /// `cargo lambda invoke --data-file FILE FUNCTION`.
    pub fn invoke_file(&self, function: &str, file: &Path) -> Output {
        Command::new(venv_bin("cargo-lambda"))
            .args(["lambda", "invoke", "--invoke-address", "127.0.0.1"])
            .args(["--invoke-port", &self.port.to_string()])
            .arg("--data-file")
            .arg(file)
            .args(["--output-format", "json"])
            .arg(function)
            .current_dir(root())
            .output()
            .unwrap()
    }

    /// The error a failed `cargo lambda invoke` reports, as
    /// `ErrorType: message` (it prints `Error: <type>` and the message in a
    /// box of `×`/`│` lines).
    pub fn error_of(out: &Output) -> String {
        let text = String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout);
        let kind = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Error: "))
            .unwrap_or("")
            .to_string();
        let message: Vec<&str> = text
            .lines()
            .filter_map(|l| {
                let l = l.trim();
                l.strip_prefix('×').or_else(|| l.strip_prefix('│'))
            })
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        format!("{kind}: {}", message.join(" "))
    }

    /// The same with a JSON value (written to a temporary file).
    pub fn invoke(&self, function: &str, payload: &serde_json::Value) -> Output {
        let file = temp_file("payload");
        std::fs::write(&file, payload.to_string()).unwrap();
        let out = self.invoke_file(function, &file);
        let _ = std::fs::remove_file(&file);
        out
    }

    /// The way a responder does it: `aws lambda invoke --endpoint-url …`,
    /// and the answer it wrote; `Err` with what the CLI said when it failed.
    /// This is AWS CLI v1 (the one on PyPI), which sends `--payload` as
    /// is; v2 needs `--cli-binary-format raw-in-base64-out` for the same.
    pub fn aws_cli_invoke(
        &self,
        function: &str,
        payload: &serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        let answer = temp_file("answer");
        let out = Command::new(venv_bin("aws"))
            .args(["lambda", "invoke", "--endpoint-url", &self.url])
            .args(["--region", "eu-west-1", "--function-name", function])
            .arg("--payload")
            .arg(payload.to_string())
            .arg(&answer)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .output()
            .unwrap();
        let body = std::fs::read_to_string(&answer).unwrap_or_default();
        let _ = std::fs::remove_file(&answer);
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))
    }
}
