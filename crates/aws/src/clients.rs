//! SDK clients, built once per process from the standard configuration chain
//! (so `AWS_ENDPOINT_URL`, `AWS_REGION`, profiles and credentials work as they
//! do for every AWS tool), with bounded timeouts and the standard retry mode.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

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
    /// STS: which account the credentials act in.
    pub sts: aws_sdk_sts::Client,
}

impl Clients {
    /// Loads the standard configuration and builds every client.
    pub async fn from_env() -> Clients {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .operation_attempt_timeout(Duration::from_secs(10))
                    .operation_timeout(Duration::from_secs(30))
                    .build(),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(4))
            .load()
            .await;
        Clients::from_config(&config)
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
        }
    }
}
