//! Errors from AWS calls that keep what a responder and a retry loop need:
//! the operation, AWS's error code, the message, and whether trying again can
//! help.

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
        }
    }

    /// An error Firebreak raises itself (a refused call, a missing resource).
    pub fn local(operation: &'static str, code: &str, message: impl Into<String>) -> AwsError {
        AwsError {
            operation,
            code: Some(code.to_string()),
            message: message.into(),
            retryable: false,
        }
    }

    /// True when the error has this code.
    pub fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}
