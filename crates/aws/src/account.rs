//! Which account Firebreak's credentials act in: STS GetCallerIdentity,
//! asked once and shared by whoever needs the answer.

use futures_util::future::{BoxFuture, FutureExt};

use crate::error::AwsError;

/// STS's answer to which account the credentials act in: asked once, in
/// the background, and shared by whoever waits for it.
#[derive(Clone)]
pub struct HomeAnswer(futures_util::future::Shared<BoxFuture<'static, Result<String, AwsError>>>);

impl std::fmt::Debug for HomeAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("HomeAnswer").field(&self.0.peek()).finish()
    }
}

impl HomeAnswer {
    /// Sends STS GetCallerIdentity now, without waiting for the answer.
    pub fn ask(sts: aws_sdk_sts::Client) -> HomeAnswer {
        let answer = caller_account(sts).boxed().shared();
        tokio::spawn(answer.clone());
        HomeAnswer(answer)
    }

    /// The answer, when it comes.
    pub async fn get(&self) -> Result<String, AwsError> {
        self.0.clone().await
    }

    /// The answer if it came already.
    pub fn peek(&self) -> Option<&Result<String, AwsError>> {
        self.0.peek()
    }
}

/// The account the credentials act in (STS GetCallerIdentity).
pub async fn caller_account(sts: aws_sdk_sts::Client) -> Result<String, AwsError> {
    let me = sts
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("GetCallerIdentity", e))?;
    Ok(me.account().unwrap_or_default().to_string())
}
