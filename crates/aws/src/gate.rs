//! The moment an action may change the account. Its claim and its budget
//! are decided in the records bucket (and, on a cold start, STS confirms
//! the account: see [`crate::respond::respond_asking`]) while the action
//! reads what it needs from AWS (the key's status, the instance's
//! interfaces, the volumes): each takes a round trip, so running them side
//! by side saves one or more on the way to containment. Every containment function awaits
//! [`Gate::pass`] right before its first change, and nothing else waits.

use std::future::Future;
use std::pin::Pin;

use futures_util::future::{FutureExt, Shared};

use crate::error::AwsError;

type Decision<'a> = Pin<Box<dyn Future<Output = Result<(), AwsError>> + Send + 'a>>;

/// Whether the action may go ahead; cheap to clone.
#[derive(Clone)]
pub struct Gate<'a>(Option<Shared<Decision<'a>>>);

impl std::fmt::Debug for Gate<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.0 {
            None => "open",
            Some(d) if d.peek().is_some() => "decided",
            Some(_) => "deciding",
        };
        f.debug_tuple("Gate").field(&state).finish()
    }
}

impl<'a> Gate<'a> {
    /// Already open: nothing to wait for (no records bucket, a dry run, a
    /// direct call in a test).
    pub fn open() -> Gate<'static> {
        Gate(None)
    }

    /// Opens when `decision` says `Ok`; an `Err` is what a caller that
    /// passes gets instead of going ahead.
    pub fn after(decision: impl Future<Output = Result<(), AwsError>> + Send + 'a) -> Gate<'a> {
        Gate(Some(decision.boxed().shared()))
    }

    /// Waits for the decision: `Ok` to go ahead and change the account.
    pub async fn pass(&self) -> Result<(), AwsError> {
        match &self.0 {
            None => Ok(()),
            Some(d) => d.clone().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_holder_gets_the_one_decision() {
        let g = Gate::after(async { Err(AwsError::from(crate::error::Own::NotCarriedOut)) });
        let (a, b) = (g.clone(), g);
        let (ra, rb) = tokio::join!(a.pass(), b.pass());
        assert_eq!(ra.unwrap_err().code.as_deref(), Some("NotCarriedOut"));
        assert_eq!(rb.unwrap_err().code.as_deref(), Some("NotCarriedOut"));
        assert!(Gate::open().pass().await.is_ok());
    }
}
