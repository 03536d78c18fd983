//! A user locked out (the runbook's "disable compromised accounts"): an
//! inline deny-all policy of Firebreak's on the user, so neither the
//! console nor any key or session of it can do anything; reversible, and
//! the undo puts back exactly what was there.

use super::{
    protection, quarantine_policy, statement_id, Inline, Principal, QUARANTINE_POLICY_NAME,
};
use crate::error::AwsError;
use crate::gate::Gate;
use crate::outcome::Step;
use crate::prior::{self, QuarantinePrior};

/// Puts the deny-all policy on the user, recording any earlier document of
/// the same name. Already there for this incident: already done.
pub async fn quarantine_user(
    iam: &aws_sdk_iam::Client,
    user: &str,
    incident_id: &str,
    protected_tag: &str,
    gate: &Gate<'_>,
) -> Result<Step, AwsError> {
    let policy = Inline {
        on: Principal::User(user),
        name: QUARANTINE_POLICY_NAME,
    };
    let (previous, protected) = tokio::try_join!(
        policy.get(iam),
        protection(iam, Principal::User(user), protected_tag)
    )?;
    let mut calls = vec!["GetUserPolicy".to_string(), "ListUserTags".to_string()];
    if let Some(tag) = protected {
        let why = format!("user {user} carries the protected tag `{tag}`");
        return Ok(Step::refused(why, calls));
    }
    let prior = prior::to_json(&QuarantinePrior {
        user_name: user.into(),
        policy_name: QUARANTINE_POLICY_NAME.into(),
        previous_document: previous.clone(),
    });
    if previous
        .as_deref()
        .is_some_and(|doc| doc.contains(&statement_id(incident_id)))
    {
        let detail = format!("user {user} was already quarantined for this incident");
        return Ok(Step::new(true, detail, prior, calls));
    }
    gate.pass().await?;
    calls.push(
        policy
            .put(iam, &quarantine_policy(incident_id))
            .await?
            .into(),
    );
    let detail = format!("user {user} quarantined: a deny-all policy stops every key, session and console login of it");
    Ok(Step::new(false, detail, prior, calls))
}

/// Undo of a quarantine (`policy_name` on `user`): while the policy is
/// still the one this incident put, the document it replaced goes back, or
/// the policy goes when there was none.
pub async fn restore_user_policy(
    iam: &aws_sdk_iam::Client,
    (user, policy_name): (&str, &'static str),
    incident_id: &str,
    previous: Option<&str>,
) -> Result<Step, AwsError> {
    let policy = Inline {
        on: Principal::User(user),
        name: policy_name,
    };
    let (changed, calls) = policy.restore(iam, incident_id, previous).await?;
    let detail = if changed {
        format!("user {user}: {policy_name} lifted")
    } else {
        format!("user {user} no longer carries this incident's {policy_name}")
    };
    Ok(Step::new(!changed, detail, serde_json::Value::Null, calls))
}
