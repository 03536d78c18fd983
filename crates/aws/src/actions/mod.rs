//! What Firebreak does to an account: each module holds one kind of change
//! and its undo, as small async functions over an SDK client that pass the
//! [`Gate`](crate::gate::Gate) before their first change and return the
//! prior state (so the record can undo them). They know the gate, never
//! the records bucket: claims, budgets and ledgers are the use cases' job.
//! Bookkeeping that leaves the account alone lives here too: the notices
//! (`notify`) and the Security Hub write-back (`securityhub`).

pub mod ecs;
pub mod elb;
pub mod evidence;
pub mod groups;
pub mod iam;
pub(crate) mod instance;
pub mod isolate;
pub mod logs;
pub mod nacl;
pub mod notify;
pub mod secrets;
pub mod securityhub;
pub mod snapshot;

/// The first of `keys` that protects a resource: the configured tag key or
/// the fixed [`isolate::PROTECTED_TAG`] (which IAM's denies name), checked
/// live right before a change, as isolation does.
pub(crate) fn protected_by<'a>(
    keys: impl IntoIterator<Item = &'a str>,
    configured: &str,
) -> Option<&'a str> {
    keys.into_iter()
        .find(|k| *k == configured || *k == isolate::PROTECTED_TAG)
}
