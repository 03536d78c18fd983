//! IAM containment: deactivate one access key; revoke a role's older sessions.

use aws_sdk_iam::types::StatusType;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

use crate::error::{AwsError, Own};
use crate::gate::Gate;
use crate::outcome::Step;
use crate::prior::{self, KeyPrior, RevokePrior};

/// Name of the inline policy that revokes older sessions.
pub const REVOKE_POLICY_NAME: &str = "FirebreakRevokeOlderSessions";

/// Sets the named key, and only that key, to Inactive. A key that is
/// already Inactive is reported as already done.
pub async fn deactivate_access_key(
    iam: &aws_sdk_iam::Client,
    user: &str,
    key_id: &str,
    gate: &Gate<'_>,
) -> Result<Step, AwsError> {
    let keys = iam
        .list_access_keys()
        .user_name(user)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("ListAccessKeys", e))?;
    let Some(key) = keys
        .access_key_metadata()
        .iter()
        .find(|k| k.access_key_id() == Some(key_id))
    else {
        return Err(Own::NoSuchKey {
            user: user.into(),
            key: key_id.into(),
        }
        .into());
    };
    let prior = key
        .status()
        .map(|s| s.as_str().to_string())
        .unwrap_or_default();
    let mut calls = vec!["ListAccessKeys".to_string()];
    if key.status() == Some(&StatusType::Inactive) {
        return Ok(Step::new(
            true,
            format!("key {key_id} of {user} was already Inactive"),
            prior::to_json(&KeyPrior {
                user_name: user.into(),
                access_key_id: key_id.into(),
                status: prior.clone(),
            }),
            calls,
        ));
    }
    gate.pass().await?;
    iam.update_access_key()
        .user_name(user)
        .access_key_id(key_id)
        .status(StatusType::Inactive)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("UpdateAccessKey", e))?;
    calls.push("UpdateAccessKey".into());
    Ok(Step::new(
        false,
        format!("key {key_id} of {user} set to Inactive"),
        prior::to_json(&KeyPrior {
            user_name: user.into(),
            access_key_id: key_id.into(),
            status: prior.clone(),
        }),
        calls,
    ))
}

/// The statement id that ties a revoke policy to its incident.
fn statement_id(incident_id: &str) -> String {
    format!("Firebreak{incident_id}")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect()
}

/// The AWSRevokeOlderSessions pattern: deny everything to sessions whose
/// token was issued before `now`. New sessions (after the credentials are
/// rotated) are unaffected.
pub fn revoke_policy(now: DateTime<Utc>, incident_id: &str) -> String {
    let sid = statement_id(incident_id);
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": sid,
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": { "DateLessThan": { "aws:TokenIssueTime": now.to_rfc3339_opts(SecondsFormat::Secs, true) } }
        }]
    })
    .to_string()
}

/// Puts the revoke policy on the role, recording any earlier version of it.
/// A policy already put for this incident is already done.
pub async fn revoke_role_sessions(
    iam: &aws_sdk_iam::Client,
    role: &str,
    incident_id: &str,
    now: DateTime<Utc>,
    gate: &Gate<'_>,
) -> Result<Step, AwsError> {
    let mut calls = vec!["GetRolePolicy".to_string()];
    let prior = revoke_policy_of(iam, role).await?;
    let sid = statement_id(incident_id);
    if prior.as_deref().is_some_and(|doc| doc.contains(&sid)) {
        return Ok(Step::new(
            true,
            format!("sessions of role {role} were already revoked for this incident"),
            prior::to_json(&RevokePrior {
                role_name: role.into(),
                policy_name: REVOKE_POLICY_NAME.into(),
                previous_document: prior.clone(),
            }),
            calls,
        ));
    }
    gate.pass().await?;
    iam.put_role_policy()
        .role_name(role)
        .policy_name(REVOKE_POLICY_NAME)
        .policy_document(revoke_policy(now, incident_id))
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("PutRolePolicy", e))?;
    calls.push("PutRolePolicy".into());
    Ok(Step::new(
        false,
        format!(
            "sessions of role {role} issued before {} are denied",
            now.to_rfc3339_opts(SecondsFormat::Secs, true)
        ),
        prior::to_json(&RevokePrior {
            role_name: role.into(),
            policy_name: REVOKE_POLICY_NAME.into(),
            previous_document: prior.clone(),
        }),
        calls,
    ))
}

/// Undo of a deactivation: sets the key Active again. Only a responder's
/// explicit, forced release calls this: a leaked key should be rotated, not
/// re-enabled.
pub async fn reactivate_access_key(
    iam: &aws_sdk_iam::Client,
    user: &str,
    key_id: &str,
) -> Result<Step, AwsError> {
    iam.update_access_key()
        .user_name(user)
        .access_key_id(key_id)
        .status(StatusType::Active)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("UpdateAccessKey", e))?;
    Ok(Step::new(
        false,
        format!("key {key_id} of {user} set to Active again"),
        prior::to_json(&KeyPrior {
            user_name: user.into(),
            access_key_id: key_id.into(),
            status: "Inactive".into(),
        }),
        vec!["UpdateAccessKey".into()],
    ))
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
    let mut calls = vec!["GetRolePolicy".to_string()];
    let current = revoke_policy_of(iam, role).await?;
    let prior =
        json!({ "role_name": role, "policy_name": REVOKE_POLICY_NAME, "document": current });
    if !current
        .as_deref()
        .is_some_and(|d| d.contains(&statement_id(incident_id)))
    {
        return Ok(Step::new(
            true,
            format!("role {role} no longer carries this incident's revoke policy"),
            prior,
            calls,
        ));
    }
    match previous {
        Some(doc) => {
            iam.put_role_policy()
                .role_name(role)
                .policy_name(REVOKE_POLICY_NAME)
                .policy_document(doc)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("PutRolePolicy", e))?;
            calls.push("PutRolePolicy".into());
        }
        None => {
            iam.delete_role_policy()
                .role_name(role)
                .policy_name(REVOKE_POLICY_NAME)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("DeleteRolePolicy", e))?;
            calls.push("DeleteRolePolicy".into());
        }
    }
    Ok(Step::new(
        false,
        format!("sessions of role {role} are no longer denied by this incident"),
        prior,
        calls,
    ))
}

/// The role's revoke policy document as it is now, decoded; `None` if the
/// role has none.
async fn revoke_policy_of(
    iam: &aws_sdk_iam::Client,
    role: &str,
) -> Result<Option<String>, AwsError> {
    match iam
        .get_role_policy()
        .role_name(role)
        .policy_name(REVOKE_POLICY_NAME)
        .send()
        .await
    {
        Ok(p) => Ok(Some(decode_policy(p.policy_document()))),
        Err(e) => {
            let err = AwsError::from_sdk("GetRolePolicy", e);
            if err.is("NoSuchEntity") {
                Ok(None)
            } else {
                Err(err)
            }
        }
    }
}

/// IAM returns policy documents URL-encoded (RFC 3986).
pub fn decode_policy(doc: &str) -> String {
    let bytes = doc.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
