//! SDK clients, built once per process from the standard configuration chain
//! (so `AWS_ENDPOINT_URL`, `AWS_REGION`, profiles and credentials work as they
//! do for every AWS tool), with bounded timeouts and the standard retry mode.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, Region, SdkConfig};
use aws_sdk_sts::config::{Credentials, SharedCredentialsProvider};

/// The clients Firebreak uses. Cheap to clone (each is an `Arc` inside).
#[derive(Debug, Clone)]
pub struct Clients {
    /// IAM: keys, role policies.
    pub iam: aws_sdk_iam::Client,
    /// EC2: network ACLs, security groups, instances, snapshots.
    pub ec2: aws_sdk_ec2::Client,
    /// S3: incident records.
    pub s3: aws_sdk_s3::Client,
    /// SNS: notices.
    pub sns: aws_sdk_sns::Client,
    /// CloudWatch Logs: retention, Insights queries.
    pub logs: aws_sdk_cloudwatchlogs::Client,
    /// STS: which account the credentials act in; roles in member accounts.
    pub sts: aws_sdk_sts::Client,
    /// Security Hub: the write-back to findings (at home, like the records).
    pub securityhub: aws_sdk_securityhub::Client,
    /// ECS: services scaled to zero by a lockdown.
    pub ecs: aws_sdk_ecs::Client,
    /// Elastic Load Balancing: listeners answering 503 during a lockdown.
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    /// Secrets Manager: secrets a lockdown rotates.
    pub secrets: aws_sdk_secretsmanager::Client,
    /// What they were built from: clients for another region or another
    /// account's credentials are derived from it. Without a region (a
    /// test's mocked clients), they are used as they are wherever the
    /// incident is.
    pub config: SdkConfig,
}

/// How long, and how many times, one AWS call is tried. Every client
/// Firebreak builds uses these: a throttled, failing or hung call is retried
/// (standard mode: exponential backoff with jitter, and a retry quota), and
/// gives up within a known time with an error that names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Opening a connection.
    pub connect: Duration,
    /// One attempt: a call that hangs longer is cut and tried again.
    pub attempt: Duration,
    /// The whole call, every attempt and backoff included.
    pub operation: Duration,
    /// Attempts in all (the first and its retries).
    pub attempts: u32,
}

impl Limits {
    /// What the functions use: at worst about 30 s per call, well inside a
    /// Lambda timeout, so a failure is reported rather than cut off.
    pub const DEFAULT: Limits = Limits {
        connect: Duration::from_secs(3),
        attempt: Duration::from_secs(10),
        operation: Duration::from_secs(30),
        attempts: 4,
    };

    /// `loader` with these limits.
    pub fn apply(&self, loader: ConfigLoader) -> ConfigLoader {
        loader
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(self.connect)
                    .operation_attempt_timeout(self.attempt)
                    .operation_timeout(self.operation)
                    .build(),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(self.attempts))
    }
}

impl Clients {
    /// Loads the standard configuration and builds every client.
    pub async fn from_env() -> Clients {
        let loader = Limits::DEFAULT.apply(aws_config::defaults(BehaviorVersion::latest()));
        Clients::from_config(&loader.load().await)
    }

    /// Builds every client from one SDK configuration.
    pub fn from_config(config: &SdkConfig) -> Clients {
        // A local endpoint (an emulator, a VPC endpoint URL) cannot resolve
        // a DNS name per bucket: use path-style there, AWS's default elsewhere.
        let s3 = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(config.endpoint_url().is_some())
            .build();
        Clients {
            iam: aws_sdk_iam::Client::new(config),
            ec2: aws_sdk_ec2::Client::new(config),
            s3: aws_sdk_s3::Client::from_conf(s3),
            sns: aws_sdk_sns::Client::new(config),
            logs: aws_sdk_cloudwatchlogs::Client::new(config),
            sts: aws_sdk_sts::Client::new(config),
            securityhub: aws_sdk_securityhub::Client::new(config),
            ecs: aws_sdk_ecs::Client::new(config),
            elb: aws_sdk_elasticloadbalancingv2::Client::new(config),
            secrets: aws_sdk_secretsmanager::Client::new(config),
            config: config.clone(),
        }
    }

    /// The region they call (empty when none is configured).
    pub fn region(&self) -> &str {
        self.config.region().map(|r| r.as_ref()).unwrap_or_default()
    }

    /// The same credentials and limits in another region.
    pub fn in_region(&self, region: &str) -> Clients {
        Clients::from_config(
            &self
                .config
                .to_builder()
                .region(Region::new(region.to_string()))
                .build(),
        )
    }

    /// Other credentials (a member account's role), in `region`.
    pub fn with_credentials(&self, credentials: Credentials, region: &str) -> Clients {
        Clients::from_config(
            &self
                .config
                .to_builder()
                .credentials_provider(SharedCredentialsProvider::new(credentials))
                .region(Region::new(region.to_string()))
                .build(),
        )
    }
}
