//! IAM containment, and its undo: one access key deactivated and the
//! sessions it minted cut (`keys`); a role's older sessions revoked
//! (`roles`); a user locked out (`users`). Each places an inline policy of
//! Firebreak's own name, tied to its incident by the statement id, and
//! records the document it replaced; the undo puts that back (or deletes
//! the policy) only while the policy is still the one the incident put.

mod keys;
mod roles;
mod users;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

pub use keys::{deactivate_access_key, reactivate_access_key};
pub use roles::{restore_role_policy, revoke_role_sessions};
pub use users::{quarantine_user, restore_user_policy};

use crate::error::AwsError;

/// Name of the inline policy that revokes older sessions (of a role, or of
/// the user whose key was deactivated).
pub const REVOKE_POLICY_NAME: &str = "FirebreakRevokeOlderSessions";

/// Name of the inline policy that locks a user out.
pub const QUARANTINE_POLICY_NAME: &str = "FirebreakQuarantine";

/// The tag that protects a principal whatever the configuration says (the
/// templates' IAM denies name it too).
pub const PROTECTED_TAG: &str = "firebreak:protected";

/// The statement id that ties a Firebreak policy to its incident.
fn statement_id(incident_id: &str) -> String {
    format!("Firebreak{incident_id}")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect()
}

/// The AWSRevokeOlderSessions pattern: deny everything to sessions whose
/// token was issued before `now`. New sessions (after the credentials are
/// rotated) are unaffected, and so are calls signed with a long-term key
/// (they carry no token issue time).
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

/// Deny everything, to everyone acting as the user.
pub fn quarantine_policy(incident_id: &str) -> String {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": statement_id(incident_id),
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*"
        }]
    })
    .to_string()
}

/// An IAM principal an inline policy goes on.
#[derive(Debug, Clone, Copy)]
enum Principal<'a> {
    User(&'a str),
    Role(&'a str),
}

/// One inline policy of Firebreak's on one principal.
#[derive(Debug, Clone, Copy)]
struct Inline<'a> {
    on: Principal<'a>,
    name: &'static str,
}

impl Inline<'_> {
    /// Its document as it is now, decoded; `None` if there is none.
    async fn get(&self, iam: &aws_sdk_iam::Client) -> Result<Option<String>, AwsError> {
        let got = match self.on {
            Principal::User(u) => iam
                .get_user_policy()
                .user_name(u)
                .policy_name(self.name)
                .send()
                .await
                .map(|p| p.policy_document().to_string())
                .map_err(|e| AwsError::from_sdk("GetUserPolicy", e)),
            Principal::Role(r) => iam
                .get_role_policy()
                .role_name(r)
                .policy_name(self.name)
                .send()
                .await
                .map(|p| p.policy_document().to_string())
                .map_err(|e| AwsError::from_sdk("GetRolePolicy", e)),
        };
        match got {
            Ok(doc) => Ok(Some(decode_policy(&doc))),
            // No such policy (or principal): nothing there to replace.
            Err(err) if err.is("NoSuchEntity") => Ok(None),
            Err(err) => Err(err),
        }
    }

    async fn put(&self, iam: &aws_sdk_iam::Client, doc: &str) -> Result<&'static str, AwsError> {
        match self.on {
            Principal::User(u) => {
                iam.put_user_policy()
                    .user_name(u)
                    .policy_name(self.name)
                    .policy_document(doc)
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("PutUserPolicy", e))?;
                Ok("PutUserPolicy")
            }
            Principal::Role(r) => {
                iam.put_role_policy()
                    .role_name(r)
                    .policy_name(self.name)
                    .policy_document(doc)
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("PutRolePolicy", e))?;
                Ok("PutRolePolicy")
            }
        }
    }

    async fn delete(&self, iam: &aws_sdk_iam::Client) -> Result<&'static str, AwsError> {
        match self.on {
            Principal::User(u) => {
                iam.delete_user_policy()
                    .user_name(u)
                    .policy_name(self.name)
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("DeleteUserPolicy", e))?;
                Ok("DeleteUserPolicy")
            }
            Principal::Role(r) => {
                iam.delete_role_policy()
                    .role_name(r)
                    .policy_name(self.name)
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("DeleteRolePolicy", e))?;
                Ok("DeleteRolePolicy")
            }
        }
    }

    fn get_call(&self) -> &'static str {
        match self.on {
            Principal::User(_) => "GetUserPolicy",
            Principal::Role(_) => "GetRolePolicy",
        }
    }

    /// The undo: while the policy is still the one `incident_id` put, the
    /// document it replaced goes back, or the policy goes when there was
    /// none. One a later incident replaced is left alone. `(changed, calls)`.
    async fn restore(
        &self,
        iam: &aws_sdk_iam::Client,
        incident_id: &str,
        previous: Option<&str>,
    ) -> Result<(bool, Vec<String>), AwsError> {
        let mut calls = vec![self.get_call().to_string()];
        let current = self.get(iam).await?;
        if !current
            .as_deref()
            .is_some_and(|d| d.contains(&statement_id(incident_id)))
        {
            return Ok((false, calls));
        }
        let call = match previous {
            Some(doc) => self.put(iam, doc).await?,
            None => self.delete(iam).await?,
        };
        calls.push(call.to_string());
        Ok((true, calls))
    }
}

/// The tag, if any, that protects the principal (`firebreak:protected`, or
/// the configured key): read with its policy, so a protected principal is
/// refused cleanly instead of failing on the templates' explicit deny.
async fn protection(
    iam: &aws_sdk_iam::Client,
    on: Principal<'_>,
    protected_tag: &str,
) -> Result<Option<String>, AwsError> {
    let keys: Vec<String> = match on {
        Principal::User(u) => iam
            .list_user_tags()
            .user_name(u)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ListUserTags", e))?
            .tags()
            .iter()
            .map(|t| t.key().to_string())
            .collect(),
        Principal::Role(r) => iam
            .list_role_tags()
            .role_name(r)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ListRoleTags", e))?
            .tags()
            .iter()
            .map(|t| t.key().to_string())
            .collect(),
    };
    Ok(keys
        .into_iter()
        .find(|k| k == PROTECTED_TAG || k == protected_tag))
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
