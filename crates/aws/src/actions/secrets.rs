//! Secrets Manager, for the emergency lockdown: rotate a secret now, with
//! the rotation it is configured with. There is no undo: a credential that
//! may have leaked stays rotated, and a release says so.

use std::collections::HashMap;

use aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput;
use firebreak_core::incident::short_digest;

use super::protected_by;
use crate::error::AwsError;
use crate::gate::Gate;
use crate::outcome::Step;
use crate::prior::{self, RotatePrior};

/// The version token of this incident's rotation of `secret`: the same on
/// every attempt, so Secrets Manager makes one new version however often
/// the call is sent, and a later attempt finds it (the shape of a UUID,
/// 36 characters: Secrets Manager takes 32 to 64).
pub fn rotation_token(incident_id: &str, secret: &str) -> String {
    let hex = format!(
        "{}{}",
        short_digest(&format!("{incident_id}\n{secret}")),
        short_digest(&format!("{secret}\n{incident_id}"))
    );
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The version a stage label is on.
fn labelled(stages: Option<&HashMap<String, Vec<String>>>, label: &str) -> Option<String> {
    stages?
        .iter()
        .find(|(_, labels)| labels.iter().any(|l| l == label))
        .map(|(v, _)| v.clone())
}

/// Why the secret is not to be rotated, if it is not.
fn refusal(d: &DescribeSecretOutput, secret: &str, protected_tag: &str) -> Option<String> {
    let keys = d.tags().iter().filter_map(|t| t.key());
    if let Some(k) = protected_by(keys, protected_tag) {
        return Some(format!("secret {secret} carries the protected tag `{k}`"));
    }
    if d.rotation_enabled() != Some(true) {
        return Some(format!(
            "secret {secret} has no rotation configured: rotate it by hand (a lockdown runs a secret's own rotation and invents none)"
        ));
    }
    None
}

/// Starts the secret's configured rotation now, recording the version that
/// was current and the one the rotation creates. This incident's rotation
/// found already under way (or done) is not started twice; a secret that
/// carries the protected tag, read live, is refused.
pub async fn rotate_secret(
    secrets: &aws_sdk_secretsmanager::Client,
    secret: &str,
    incident_id: &str,
    protected_tag: &str,
    gate: &Gate<'_>,
) -> Result<Step, AwsError> {
    let d = secrets
        .describe_secret()
        .secret_id(secret)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("DescribeSecret", e))?;
    let mut calls = vec!["DescribeSecret".to_string()];
    if let Some(why) = refusal(&d, secret, protected_tag) {
        return Ok(Step::refused(why, calls));
    }
    let token = rotation_token(incident_id, secret);
    let stages = d.version_ids_to_stages();
    let before = labelled(stages, "AWSCURRENT");
    let arn = d.arn().unwrap_or(secret).to_string();
    if stages.is_some_and(|s| s.contains_key(&token)) {
        let state = RotatePrior {
            secret_arn: arn,
            version_before: None,
            version_after: Some(token.clone()),
        };
        return Ok(Step::new(
            true,
            format!("secret {secret} was already rotated for this incident (version {token})"),
            prior::to_json(&state),
            calls,
        ));
    }
    gate.pass().await?;
    let out = secrets
        .rotate_secret()
        .secret_id(secret)
        .client_request_token(&token)
        .rotate_immediately(true)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("RotateSecret", e))?;
    calls.push("RotateSecret".into());
    let after = out.version_id().map(str::to_string).or(Some(token));
    let detail = format!(
        "secret {secret} rotation started: version {} (was {}); its rotation makes it current",
        after.as_deref().unwrap_or("-"),
        before.as_deref().unwrap_or("-")
    );
    let state = RotatePrior {
        secret_arn: arn,
        version_before: before,
        version_after: after,
    };
    Ok(Step::new(false, detail, prior::to_json(&state), calls))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rotation_token_is_stable_and_what_secrets_manager_takes() {
        let t = rotation_token("fb-0123456789abcdef0123", "prod/admin");
        assert_eq!(t, rotation_token("fb-0123456789abcdef0123", "prod/admin"));
        assert_ne!(t, rotation_token("fb-0123456789abcdef0124", "prod/admin"));
        assert_eq!(t.len(), 36);
        assert_eq!(t.matches('-').count(), 4);
    }
}
