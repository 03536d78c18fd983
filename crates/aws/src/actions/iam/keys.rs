//! A leaked long-term key: deactivated, and the sessions it already minted
//! (`GetSessionToken`, `GetFederationToken`: attackers mint them first so
//! that a deactivation does not stop them) denied by a policy on its user.
//! The deactivation is done only when both are.

use aws_sdk_iam::types::{AccessKeyMetadata, StatusType};
use chrono::{DateTime, SecondsFormat, Utc};
use tracing::warn;

use super::{protection, revoke_policy, statement_id, Inline, Principal, REVOKE_POLICY_NAME};
use crate::error::{AwsError, Own};
use crate::gate::Gate;
use crate::outcome::Step;
use crate::prior::{self, KeyPrior, SessionsPrior};

/// What deactivating a key reads first, at once.
struct Read {
    key: AccessKeyMetadata,
    sessions: Option<String>,
    protected: Option<String>,
}

async fn read(
    iam: &aws_sdk_iam::Client,
    user: &str,
    key_id: &str,
    protected_tag: &str,
) -> Result<Read, AwsError> {
    let sessions = Inline {
        on: Principal::User(user),
        name: REVOKE_POLICY_NAME,
    };
    let keys = async {
        iam.list_access_keys()
            .user_name(user)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ListAccessKeys", e))
    };
    let (keys, sessions, protected) = tokio::try_join!(
        keys,
        sessions.get(iam),
        protection(iam, Principal::User(user), protected_tag),
    )?;
    let key = keys
        .access_key_metadata()
        .iter()
        .find(|k| k.access_key_id() == Some(key_id))
        .cloned()
        .ok_or_else(|| {
            AwsError::from(Own::NoSuchKey {
                user: user.into(),
                key: key_id.into(),
            })
        })?;
    Ok(Read {
        key,
        sessions,
        protected,
    })
}

/// Sets the named key, and only that key, to Inactive, and denies its
/// user's sessions issued before now. Both found done already is reported
/// as already done; what is missing of the two is done.
pub async fn deactivate_access_key(
    iam: &aws_sdk_iam::Client,
    (user, key_id): (&str, &str),
    incident_id: &str,
    now: DateTime<Utc>,
    protected_tag: &str,
    gate: &Gate<'_>,
) -> Result<Step, AwsError> {
    let r = read(iam, user, key_id, protected_tag).await?;
    let mut calls: Vec<String> = ["ListAccessKeys", "GetUserPolicy", "ListUserTags"]
        .map(String::from)
        .to_vec();
    if let Some(tag) = &r.protected {
        let why = format!("user {user} carries the protected tag `{tag}`");
        return Ok(Step::refused(why, calls));
    }
    let status = r
        .key
        .status()
        .map(|s| s.as_str().to_string())
        .unwrap_or_default();
    let inactive = r.key.status() == Some(&StatusType::Inactive);
    let cut = r
        .sessions
        .as_deref()
        .is_some_and(|d| d.contains(&statement_id(incident_id)));
    let prior = prior::to_json(&KeyPrior {
        user_name: user.into(),
        access_key_id: key_id.into(),
        status,
        sessions: Some(SessionsPrior {
            policy_name: REVOKE_POLICY_NAME.into(),
            previous_document: if cut { None } else { r.sessions.clone() },
        }),
    });
    if inactive && cut {
        let detail = format!("key {key_id} of {user} was already Inactive, its sessions denied");
        return Ok(Step::new(true, detail, prior, calls));
    }
    gate.pass().await?;
    let sessions = Inline {
        on: Principal::User(user),
        name: REVOKE_POLICY_NAME,
    };
    let (deactivated, denied) = tokio::join!(
        async {
            if inactive {
                return Ok(None);
            }
            set_status(iam, user, key_id, StatusType::Inactive).await?;
            Ok::<_, AwsError>(Some("UpdateAccessKey"))
        },
        async {
            if cut {
                return Ok(None);
            }
            let put: &'static str = sessions.put(iam, &revoke_policy(now, incident_id)).await?;
            Ok::<_, AwsError>(Some(put))
        },
    );
    if let (Err(_), Ok(Some(_)), Some(doc)) = (&deactivated, &denied, r.sessions.as_deref()) {
        // The deactivation failed but the sessions' policy replaced another
        // document of that name: put it back, so the retry finds it and
        // records it (a retry that found only its own statement would
        // record nothing to restore, and a release would delete the policy
        // another incident placed). Where there was none, the retry finds
        // its own statement and records "none before", which is right; the
        // containing roles may not delete an inline policy anyway.
        if let Err(e) = sessions.put(iam, doc).await {
            warn!(
                user,
                code = e.code.as_deref().unwrap_or("-"),
                "the sessions' policy could not be put back after a failed deactivation"
            );
        }
    }
    calls.extend(deactivated?.into_iter().map(String::from));
    calls.extend(denied?.into_iter().map(String::from));
    let issued = now.to_rfc3339_opts(SecondsFormat::Secs, true);
    let detail = if inactive {
        format!("key {key_id} of {user} was already Inactive; its sessions issued before {issued} are now denied")
    } else {
        format!("key {key_id} of {user} set to Inactive; its sessions issued before {issued} are denied")
    };
    Ok(Step::new(false, detail, prior, calls))
}

async fn set_status(
    iam: &aws_sdk_iam::Client,
    user: &str,
    key_id: &str,
    status: StatusType,
) -> Result<(), AwsError> {
    iam.update_access_key()
        .user_name(user)
        .access_key_id(key_id)
        .status(status)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("UpdateAccessKey", e))?;
    Ok(())
}

/// Undo of a deactivation: sets the key Active again (only if it was
/// Active before: a key someone else had already turned off stays off) and
/// lifts the denial of its sessions (when the record says it was placed).
/// Only a responder's explicit, forced release calls this: a leaked key
/// should be rotated, not re-enabled.
pub async fn reactivate_access_key(
    iam: &aws_sdk_iam::Client,
    prior: &KeyPrior,
    incident_id: &str,
) -> Result<Step, AwsError> {
    let (user, key_id) = (prior.user_name.as_str(), prior.access_key_id.as_str());
    let mut calls = Vec::new();
    // Recorded Inactive: someone had turned it off, or an earlier attempt of
    // Firebreak's did and failed on the sessions' policy. Either way turning
    // a leaked key on is a human's call, with the AWS CLI.
    let reactivate = prior.status != StatusType::Inactive.as_str();
    let mut detail = if reactivate {
        set_status(iam, user, key_id, StatusType::Active).await?;
        calls.push("UpdateAccessKey".to_string());
        format!("key {key_id} of {user} set to Active again")
    } else {
        format!("key {key_id} of {user} left Inactive: it was Inactive when Firebreak read it (aws iam update-access-key --user-name {user} --access-key-id {key_id} --status Active turns it on)")
    };
    let mut lifted_any = false;
    if let Some(s) = &prior.sessions {
        let sessions = Inline {
            on: Principal::User(user),
            name: REVOKE_POLICY_NAME,
        };
        let (lifted, more) = sessions
            .restore(iam, incident_id, s.previous_document.as_deref())
            .await?;
        calls.extend(more);
        if lifted {
            lifted_any = true;
            detail.push_str("; its older sessions are no longer denied");
        }
    }
    Ok(Step::new(
        !reactivate && !lifted_any,
        detail,
        prior::to_json(&KeyPrior {
            status: "Inactive".into(),
            ..prior.clone()
        }),
        calls,
    ))
}
