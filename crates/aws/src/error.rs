//! Errors that keep what a responder and a retry loop need: the operation,
//! the error code, the message, and whether trying again can help.
//!
//! [`AwsError`] is what every fallible step returns and what the record
//! keeps. It comes from one of two places: AWS's answer
//! ([`AwsError::from_sdk`], AWS's own code), or a condition Firebreak finds
//! itself ([`Own`]: a claim another delivery holds, a missing record, an
//! isolation group that would not isolate). The latter are a typed enum,
//! kept in [`AwsError::own`], each with the code the record has always
//! shown for it.

use std::error::Error as StdError;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde::Serialize;

/// One failed AWS call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{operation} failed ({}): {message}", code.as_deref().unwrap_or("no error code"))]
pub struct AwsError {
    /// The API operation, e.g. `UpdateAccessKey`.
    pub operation: &'static str,
    /// AWS's error code, e.g. `AccessDenied`, `Throttling`.
    pub code: Option<String>,
    /// AWS's message, or the transport error.
    pub message: String,
    /// True when the same call may succeed later (throttling, 5xx, timeouts).
    pub retryable: bool,
    /// Set when the failure is Firebreak's own finding, not AWS's answer.
    #[serde(skip)]
    pub own: Option<Box<Own>>,
}

/// A failure Firebreak finds itself rather than one AWS answered with.
/// [`Own::code`] is what the record and the notice show (unchanged from
/// when these were plain codes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Own {
    /// Another delivery holds the action's claim and did not finish in the
    /// wait: a retry reads its outcome.
    #[error("another delivery is carrying out {action} (its claim runs until {until}); a retry reads its outcome")]
    ClaimHeld {
        /// `<kind> <target>`.
        action: String,
        /// When its claim runs out.
        until: String,
    },
    /// The gate stayed shut: another delivery has the action, or the
    /// budget holds it.
    #[error("another delivery has it, or the budget holds it")]
    NotCarriedOut,
    /// No records bucket is configured.
    #[error("FIREBREAK_RECORDS_BUCKET is not set: {consequence}")]
    NoRecords {
        /// The operation that needed it.
        operation: &'static str,
        /// What that means here.
        consequence: &'static str,
    },
    /// A release names an incident the bucket has no record of.
    #[error("no record of incident {incident} in {bucket}")]
    NoSuchIncident {
        /// The id asked for.
        incident: String,
        /// The records bucket.
        bucket: String,
    },
    /// The plan lacks something the action needs.
    #[error("{what}")]
    InvalidPlan {
        /// The operation it was for.
        operation: &'static str,
        /// What is missing.
        what: String,
    },
    /// A block's target is not a CIDR.
    #[error("`{target}` is not a CIDR")]
    InvalidTarget {
        /// The target.
        target: String,
    },
    /// The record's prior state of an action cannot be read back.
    #[error("{0}")]
    UnreadableRecord(String),
    /// No network ACL for the subnets or ids asked.
    #[error("no network ACL found for {asked}")]
    NoNetworkAcl {
        /// The subnets or NACL ids.
        asked: String,
    },
    /// A NACL read back is gone.
    #[error("no network ACL {nacl}")]
    NaclNotFound {
        /// The NACL.
        nacl: String,
    },
    /// The NACL direction is full and nothing in it is Firebreak's to evict.
    #[error("{nacl} {direction} is full and holds no Firebreak entry to evict")]
    NaclFull {
        /// The NACL.
        nacl: String,
        /// `ingress` or `egress`.
        direction: &'static str,
    },
    /// Concurrent writers kept taking every free rule number.
    #[error("could not find a free rule number in {nacl} after {attempts} tries")]
    TooManyCollisions {
        /// The NACL.
        nacl: String,
        /// Tries made.
        attempts: u64,
    },
    /// The user has no such access key.
    #[error("user {user} has no access key {key}")]
    NoSuchKey {
        /// The user.
        user: String,
        /// The key.
        key: String,
    },
    /// The instance is gone.
    #[error("no instance {instance}")]
    NoSuchInstance {
        /// The instance.
        instance: String,
    },
    /// The instance has no interface to isolate.
    #[error("instance {instance} has no network interface to isolate")]
    NoNetworkInterface {
        /// The instance.
        instance: String,
    },
    /// A group named like Firebreak's isolation group would not isolate.
    #[error("{why}; nothing was isolated in {vpc}")]
    UntrustedIsolationGroup {
        /// What is wrong with it.
        why: String,
        /// Its VPC.
        vpc: String,
    },
    /// CreateSecurityGroup said the group exists, and it cannot be read.
    #[error("group {name} in {vpc} exists but cannot be read")]
    GroupUnreadable {
        /// The group name.
        name: String,
        /// Its VPC.
        vpc: String,
    },
    /// An interface's original groups are not known: it cannot be put back.
    #[error("its original groups are not known")]
    NoOriginalGroups,
    /// The log group is gone.
    #[error("no log group {group}")]
    NoSuchLogGroup {
        /// The group.
        group: String,
    },
    /// An alarm window's time is not RFC 3339.
    #[error("`{time}` is not an RFC 3339 time")]
    InvalidWindow {
        /// The text.
        time: String,
    },
    /// A Logs Insights query did not finish while it was polled.
    #[error("Insights query {query} did not complete after {polls} polls")]
    QueryTimeout {
        /// The query id.
        query: String,
        /// Polls made.
        polls: u32,
    },
    /// A notice's message attribute cannot be sent.
    #[error("{0}")]
    InvalidAttribute(String),
    /// A record could not be serialised.
    #[error("{0}")]
    Serialization(String),
    /// An object's body could not be read (the connection broke).
    #[error("{0}")]
    ReadBody(String),
    /// A lock stayed held through the wait.
    #[error("{key} stayed locked (until {until})")]
    LockHeld {
        /// The lock's key.
        key: String,
        /// Until when its holder has it.
        until: String,
    },
    /// The budget counter kept changing under every attempt.
    #[error("the budget counter {key} kept changing under 64 attempts")]
    BudgetContention {
        /// The counter's key.
        key: String,
    },
    /// The incident's place is one Firebreak is not configured to act in.
    #[error("{why}")]
    NotReachable {
        /// The operation that needed it.
        operation: &'static str,
        /// Why.
        why: String,
    },
    /// STS answered AssumeRole without credentials.
    #[error("STS answered AssumeRole for {arn} without credentials")]
    NoCredentials {
        /// The role.
        arn: String,
    },
    /// Security Hub has no such finding (yet: it imports a GuardDuty
    /// finding minutes after GuardDuty sends it).
    #[error("Security Hub has no finding {id} of {product_arn} (yet)")]
    FindingNotFound {
        /// Its ASFF `Id`.
        id: String,
        /// Its ASFF `ProductArn`.
        product_arn: String,
    },
    /// ECS knows no active service of that name in the cluster.
    #[error("no active service {service} in cluster {cluster}")]
    NoSuchService {
        /// The cluster.
        cluster: String,
        /// The service.
        service: String,
    },
    /// Elastic Load Balancing described no such listener.
    #[error("no listener {listener}")]
    NoSuchListener {
        /// The listener's ARN.
        listener: String,
    },
    /// An object changed between the listing and its copy: a retry lists
    /// the prefix again.
    #[error("s3://{bucket}/{key} changed while it was copied (its ETag is no longer {etag})")]
    EvidenceChanged {
        /// The source bucket.
        bucket: String,
        /// The key.
        key: String,
        /// The ETag it was listed with.
        etag: String,
    },
}

impl Own {
    /// The code the record shows.
    pub fn code(&self) -> &'static str {
        match self {
            Own::ClaimHeld { .. } => "ClaimHeld",
            Own::NotCarriedOut => "NotCarriedOut",
            Own::NoRecords { .. } => "NoRecords",
            Own::NoSuchIncident { .. } => "NoSuchIncident",
            Own::InvalidPlan { .. } => "InvalidPlan",
            Own::InvalidTarget { .. } => "InvalidTarget",
            Own::UnreadableRecord(_) => "UnreadableRecord",
            Own::NoNetworkAcl { .. } => "NoNetworkAcl",
            Own::NaclNotFound { .. } => "InvalidNetworkAclID.NotFound",
            Own::NaclFull { .. } => "NetworkAclEntryLimitExceeded",
            Own::TooManyCollisions { .. } => "TooManyCollisions",
            Own::NoSuchKey { .. } => "NoSuchEntity",
            Own::NoSuchInstance { .. } => "InvalidInstanceID.NotFound",
            Own::NoNetworkInterface { .. } => "NoNetworkInterface",
            Own::UntrustedIsolationGroup { .. } => "UntrustedIsolationGroup",
            Own::GroupUnreadable { .. } => "InvalidGroup.Duplicate",
            Own::NoOriginalGroups => "NoOriginalGroups",
            Own::NoSuchLogGroup { .. } => "ResourceNotFoundException",
            Own::InvalidWindow { .. } => "InvalidWindow",
            Own::QueryTimeout { .. } => "QueryTimeout",
            Own::InvalidAttribute(_) => "InvalidParameter",
            Own::Serialization(_) => "SerializationError",
            Own::ReadBody(_) => "ReadError",
            Own::LockHeld { .. } => "LockHeld",
            Own::BudgetContention { .. } => "BudgetContention",
            Own::NotReachable { .. } => "NotReachable",
            Own::NoCredentials { .. } => "NoCredentials",
            Own::FindingNotFound { .. } => "FindingNotFound",
            Own::NoSuchService { .. } => "ServiceNotFoundException",
            Own::NoSuchListener { .. } => "ListenerNotFound",
            Own::EvidenceChanged { .. } => "EvidenceChanged",
        }
    }

    /// The operation it is recorded under.
    pub fn operation(&self) -> &'static str {
        match self {
            Own::ClaimHeld { .. } | Own::NotCarriedOut => "Claim",
            Own::NoRecords { operation, .. }
            | Own::InvalidPlan { operation, .. }
            | Own::NotReachable { operation, .. } => operation,
            Own::NoSuchIncident { .. } | Own::UnreadableRecord(_) => "Release",
            Own::InvalidTarget { .. } | Own::NaclFull { .. } | Own::TooManyCollisions { .. } => {
                "CreateNetworkAclEntry"
            }
            Own::NoNetworkAcl { .. } | Own::NaclNotFound { .. } => "DescribeNetworkAcls",
            Own::NoSuchKey { .. } => "ListAccessKeys",
            Own::NoSuchInstance { .. } => "DescribeInstances",
            Own::NoNetworkInterface { .. } => "DescribeInstances",
            Own::UntrustedIsolationGroup { .. } => "DescribeSecurityGroups",
            Own::GroupUnreadable { .. } => "CreateSecurityGroup",
            Own::NoOriginalGroups => "ModifyNetworkInterfaceAttribute",
            Own::NoSuchLogGroup { .. } => "DescribeLogGroups",
            Own::InvalidWindow { .. } => "StartQuery",
            Own::QueryTimeout { .. } => "GetQueryResults",
            Own::InvalidAttribute(_) => "Publish",
            Own::Serialization(_) | Own::BudgetContention { .. } => "PutObject",
            Own::ReadBody(_) => "GetObject",
            Own::LockHeld { .. } => "Lock",
            Own::NoCredentials { .. } => "AssumeRole",
            Own::FindingNotFound { .. } => "GetFindings",
            Own::NoSuchService { .. } => "DescribeServices",
            Own::NoSuchListener { .. } => "DescribeListeners",
            Own::EvidenceChanged { .. } => "CopyObject",
        }
    }

    /// True when trying again later can help.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            Own::ClaimHeld { .. }
                | Own::ReadBody(_)
                | Own::LockHeld { .. }
                | Own::BudgetContention { .. }
                | Own::QueryTimeout { .. }
                | Own::FindingNotFound { .. }
                | Own::EvidenceChanged { .. }
        )
    }
}

impl From<Own> for AwsError {
    fn from(own: Own) -> AwsError {
        AwsError {
            operation: own.operation(),
            code: Some(own.code().to_string()),
            message: own.to_string(),
            retryable: own.retryable(),
            own: Some(Box::new(own)),
        }
    }
}

const RETRYABLE_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "SlowDown",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
    "OperationAborted",
];

impl AwsError {
    /// Converts an SDK error, keeping its code.
    pub fn from_sdk<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> AwsError
    where
        E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    {
        let code = err.code().map(str::to_string);
        let status = err.raw_response().map(|r| r.status().as_u16());
        let retryable = match &err {
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => true,
            SdkError::ServiceError(_) => {
                code.as_deref()
                    .is_some_and(|c| RETRYABLE_CODES.contains(&c))
                    || status.is_some_and(|s| s >= 500 || s == 429)
            }
            _ => false,
        };
        let message = err
            .message()
            .map(str::to_string)
            .unwrap_or_else(|| DisplayErrorContext(&err).to_string());
        AwsError {
            operation,
            code,
            message,
            retryable,
            own: None,
        }
    }

    /// True when the error has this code.
    pub fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}
