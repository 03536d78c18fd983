//! A role's sessions revoked: the AWSRevokeOlderSessions pattern as an
//! inline policy of Firebreak's, and its undo.

use chrono::{DateTime, SecondsFormat, Utc};

use super::{protection, revoke_policy, statement_id, Inline, Principal, REVOKE_POLICY_NAME};
use crate::error::AwsError;
use crate::gate::Gate;
use crate::outcome::Step;
use crate::prior::{self, RevokePrior};

/// Puts the revoke policy on the role, recording any earlier version of it.
/// A policy already put for this incident is already done.
pub async fn revoke_role_sessions(
    iam: &aws_sdk_iam::Client,
    role: &str,
    incident_id: &str,
    now: DateTime<Utc>,
    protected_tag: &str,
    gate: &Gate<'_>,
) -> Result<Step, AwsError> {
    let policy = Inline {
        on: Principal::Role(role),
        name: REVOKE_POLICY_NAME,
    };
    let (previous, protected) = tokio::try_join!(
        policy.get(iam),
        protection(iam, Principal::Role(role), protected_tag)
    )?;
    let mut calls = vec!["GetRolePolicy".to_string(), "ListRoleTags".to_string()];
    if let Some(tag) = protected {
        let why = format!("role {role} carries the protected tag `{tag}`");
        return Ok(Step::refused(why, calls));
    }
    let prior = prior::to_json(&RevokePrior {
        role_name: role.into(),
        policy_name: REVOKE_POLICY_NAME.into(),
        previous_document: previous.clone(),
    });
    if previous
        .as_deref()
        .is_some_and(|doc| doc.contains(&statement_id(incident_id)))
    {
        let detail = format!("sessions of role {role} were already revoked for this incident");
        return Ok(Step::new(true, detail, prior, calls));
    }
    gate.pass().await?;
    calls.push(
        policy
            .put(iam, &revoke_policy(now, incident_id))
            .await?
            .into(),
    );
    let detail = format!(
        "sessions of role {role} issued before {} are denied",
        now.to_rfc3339_opts(SecondsFormat::Secs, true)
    );
    Ok(Step::new(false, detail, prior, calls))
}

/// Undo of a revoke: if the role's revoke policy is still the one this
/// incident put, restore the document it replaced, or delete it when there
/// was none. A policy a later incident replaced is left alone.
pub async fn restore_role_policy(
    iam: &aws_sdk_iam::Client,
    role: &str,
    incident_id: &str,
    previous: Option<&str>,
) -> Result<Step, AwsError> {
    let policy = Inline {
        on: Principal::Role(role),
        name: REVOKE_POLICY_NAME,
    };
    let (changed, calls) = policy.restore(iam, incident_id, previous).await?;
    let detail = if changed {
        format!("sessions of role {role} are no longer denied by this incident")
    } else {
        format!("role {role} no longer carries this incident's revoke policy")
    };
    Ok(Step::new(!changed, detail, serde_json::Value::Null, calls))
}
