//! What happened to each planned action, in the words the record, the notice
//! and the caller share.

use firebreak_core::ActionKind;
use serde::{Deserialize, Serialize};

use crate::error::AwsError;

/// Now, as outcomes and records write it (RFC 3339, milliseconds, UTC).
pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The result of one action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Firebreak changed the account.
    Done,
    /// The account was already in the wanted state; nothing changed.
    AlreadyDone,
    /// Not carried out; `detail` says why.
    Skipped,
    /// An AWS call failed; `error` has its code.
    Failed,
    /// Not carried out because the blast-radius budget for its kind is
    /// spent: a human decides (`detail` says which budget).
    Held,
}

impl Status {
    /// How a notice or a table shows it: upper case where a person must look.
    pub fn word(self) -> &'static str {
        match self {
            Status::Done => "DONE",
            Status::AlreadyDone => "ALREADY DONE",
            Status::Skipped => "skipped",
            Status::Failed => "FAILED",
            Status::Held => "HELD",
        }
    }
}

/// The outcome of one action, enough to undo it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActionOutcome {
    /// Position in the plan.
    pub index: usize,
    /// What it did.
    pub kind: ActionKind,
    /// What it acted on.
    pub target: String,
    /// How it ended.
    pub status: Status,
    /// A sentence for people.
    pub detail: String,
    /// The state before the change (for undo).
    #[serde(skip_serializing_if = "serde_json::Value::is_null", default)]
    pub prior_state: serde_json::Value,
    /// The AWS operations called, in order.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub calls: Vec<String>,
    /// The failure, when it failed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<ErrorInfo>,
    /// When it finished (RFC 3339).
    pub at: String,
}

/// A failed call as it is recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// The operation.
    pub operation: String,
    /// AWS's error code.
    pub code: Option<String>,
    /// The message.
    pub message: String,
    /// Whether a retry can help.
    pub retryable: bool,
}

impl From<&AwsError> for ErrorInfo {
    fn from(e: &AwsError) -> ErrorInfo {
        ErrorInfo {
            operation: e.operation.to_string(),
            code: e.code.clone(),
            message: e.message.clone(),
            retryable: e.retryable,
        }
    }
}

/// What an action did to the account.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Change {
    /// It changed the account.
    #[default]
    Made,
    /// The account already was as wanted: nothing changed.
    AlreadyThere,
    /// A check at execution time refused the change (the account moved
    /// since the plan, e.g. the instance gained the protected tag): the
    /// action ends `skipped` with this reason, not `failed`.
    Refused(String),
}

impl Change {
    /// `AlreadyThere` when `already`, else `Made`.
    pub fn unless(already: bool) -> Change {
        if already {
            Change::AlreadyThere
        } else {
            Change::Made
        }
    }

    /// The status an action that ended so reports.
    pub fn status(&self) -> Status {
        match self {
            Change::Made => Status::Done,
            Change::AlreadyThere => Status::AlreadyDone,
            Change::Refused(_) => Status::Skipped,
        }
    }
}

/// What a successful action reports back to the executor.
#[derive(Debug, Clone, Default)]
pub struct Step {
    /// What it did.
    pub change: Change,
    /// A sentence for people.
    pub detail: String,
    /// The state before.
    pub prior_state: serde_json::Value,
    /// Operations called.
    pub calls: Vec<String>,
}

impl Step {
    /// A change made (or, with `already`, found made).
    pub fn new(
        already: bool,
        detail: impl Into<String>,
        prior_state: serde_json::Value,
        calls: Vec<String>,
    ) -> Step {
        Step {
            change: Change::unless(already),
            detail: detail.into(),
            prior_state,
            calls,
        }
    }

    /// A change refused at execution time.
    pub fn refused(reason: impl Into<String>, calls: Vec<String>) -> Step {
        let reason = reason.into();
        Step {
            detail: reason.clone(),
            change: Change::Refused(reason),
            calls,
            ..Step::default()
        }
    }

    /// True when the account already was as wanted.
    pub fn already(&self) -> bool {
        self.change == Change::AlreadyThere
    }
}

/// An outcome for unit tests: index 0, no detail, state or calls, at a
/// fixed time.
#[cfg(test)]
pub(crate) fn fixture(kind: ActionKind, target: &str, status: Status) -> ActionOutcome {
    ActionOutcome {
        index: 0,
        kind,
        target: target.into(),
        status,
        detail: String::new(),
        prior_state: serde_json::Value::Null,
        calls: Vec::new(),
        error: None,
        at: "2026-11-22T03:00:00.000Z".into(),
    }
}
