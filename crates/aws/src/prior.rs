//! What each kind of action records of the account before it changed it:
//! the `prior_state` of its outcome, from which a release undoes it.
//!
//! One type per action kind, written by the action and read back by the
//! undo, so a renamed field is a compile error or a failed round-trip test,
//! never an undo that silently finds nothing. The JSON is exactly what
//! records have always held: old records still release.
//!
//! A listener's default actions, which a lockdown records in full, are
//! typed in `listener` (re-exported here).

mod listener;

use firebreak_core::ActionKind;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use listener::{
    AuthenticateCognito, AuthenticateOidc, FixedResponse, Forward, JwtClaim, JwtValidation,
    ListenerAction, ListenerPrior, Redirect, Stickiness, WeightedTargetGroup,
};

use crate::outcome::ActionOutcome;

/// A prior state as its JSON; `Null` if it cannot be written (it always can:
/// these are plain data).
pub fn to_json(prior: &impl Serialize) -> Value {
    serde_json::to_value(prior).unwrap_or(Value::Null)
}

/// Reads an outcome's prior state as the type its kind records.
pub fn of<T: DeserializeOwned>(o: &ActionOutcome) -> Result<T, String> {
    serde_json::from_value(o.prior_state.clone()).map_err(|e| {
        format!(
            "the record of {} {} holds a prior state that cannot be read ({e})",
            o.kind.as_str(),
            o.target
        )
    })
}

/// `deactivate_access_key`: the key and its status before, and the policy
/// on its user that denies the sessions it minted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPrior {
    /// Its user.
    pub user_name: String,
    /// The key.
    pub access_key_id: String,
    /// `Active` or `Inactive`.
    pub status: String,
    /// The user's session-revocation policy it replaced (absent in records
    /// written before keys' sessions were cut).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<SessionsPrior>,
}

/// The inline policy that denies a user's older sessions, before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionsPrior {
    /// `FirebreakRevokeOlderSessions`.
    pub policy_name: String,
    /// The document it replaced; `null` when there was none.
    pub previous_document: Option<String>,
}

/// `quarantine_user`: the user's quarantine policy before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantinePrior {
    /// The user.
    pub user_name: String,
    /// `FirebreakQuarantine`.
    pub policy_name: String,
    /// The document it replaced; `null` when there was none.
    pub previous_document: Option<String>,
}

/// `revoke_role_sessions`: the revocation policy the role had before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokePrior {
    /// The role.
    pub role_name: String,
    /// `FirebreakRevokeOlderSessions`.
    pub policy_name: String,
    /// The document it replaced; `null` when there was none.
    pub previous_document: Option<String>,
}

/// One deny entry, where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NaclEntry {
    /// The NACL.
    pub network_acl_id: String,
    /// Outbound rule.
    pub egress: bool,
    /// The denied CIDR.
    pub cidr: String,
    /// Its rule number.
    pub rule_number: i32,
}

/// An entry Firebreak deleted to make room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evicted {
    /// Its rule number.
    pub rule_number: i32,
    /// The CIDR it denied.
    pub cidr: String,
}

/// One NACL's part of a block: the entry, whether it was there already
/// (then it is not Firebreak's to lift), and what was evicted for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockEntry {
    /// The entry.
    #[serde(flatten)]
    pub entry: NaclEntry,
    /// It was there before this block.
    pub existed: bool,
    /// Evicted to make room (a new entry only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evicted: Option<Vec<Evicted>>,
}

/// `block_ip`: the entry in each NACL, and when it is lifted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockPrior {
    /// One per NACL.
    pub entries: Vec<BlockEntry>,
    /// Hours until the expirer lifts it.
    pub expires_after_hours: u32,
}

/// One network interface of an isolated instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EniPrior {
    /// The interface.
    pub network_interface_id: String,
    /// Its VPC.
    pub vpc_id: String,
    /// Its groups before (absent when it was isolated already).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    /// The isolation group it was moved to.
    pub isolation_group: Option<String>,
    /// It was in the isolation group already: nothing to restore.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub already_isolated: bool,
}

/// `isolate_instance`: each interface's groups and the termination setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsolatePrior {
    /// The instance.
    pub instance_id: String,
    /// Its interfaces.
    pub network_interfaces: Vec<EniPrior>,
    /// Termination protection before.
    pub termination_protection: bool,
}

/// One volume's evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRef {
    /// The volume.
    pub volume_id: String,
    /// Its snapshot (`null` if EC2 did not say).
    pub snapshot_id: Option<String>,
    /// This incident's snapshot of it existed already.
    pub existed: bool,
}

/// `snapshot_volumes`: the snapshots (kept on release: evidence).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotPrior {
    /// The instance.
    pub instance_id: String,
    /// One per attached volume.
    pub snapshots: Vec<SnapshotRef>,
}

/// `increase_monitoring`: the log group's retention before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPrior {
    /// The log group.
    pub log_group: String,
    /// Days; `null` for "never expire".
    pub retention_in_days: Option<i32>,
}

/// `query_offending_ips`: who the query found and the blocks it led to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueryPrior {
    /// "address (n failures), …".
    pub offenders: String,
    /// The outcome of each block, with its own prior state.
    pub blocks: Vec<ActionOutcome>,
}

/// Where a release undid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActedIn {
    /// The account.
    pub account: String,
    /// The region.
    pub region: String,
    /// The member role session the release acted through (absent at home,
    /// and in releases recorded before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

/// One action a release undid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Undone {
    /// Its index in the released incident's plan.
    pub index: usize,
    /// Its kind.
    pub kind: ActionKind,
    /// Its target.
    pub target: String,
    /// What the undo did.
    pub detail: String,
}

/// `release`: what it undid of which incident, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleasePrior {
    /// The released incident.
    pub released_incident: String,
    /// Its record prefix.
    pub record: String,
    /// Where the undo acted.
    pub acted_in: ActedIn,
    /// Each action undone.
    pub undone: Vec<Undone>,
}

/// `update_finding`: the finding's workflow status as Firebreak found it,
/// and whether it set `NOTIFIED` (only over `NEW`). Nothing is undone: a
/// release adds a note and leaves the status to whoever set it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingPrior {
    /// Its ASFF `Id`.
    pub finding_id: String,
    /// Its ASFF `ProductArn`.
    pub product_arn: String,
    /// `NEW`, `NOTIFIED`, `RESOLVED`, `SUPPRESSED` (`null`: Security Hub
    /// gave none).
    pub workflow_status: Option<String>,
    /// Firebreak set `NOTIFIED`.
    pub notified: bool,
}

/// `scale_service_to_zero`: the service's desired count before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScalePrior {
    /// The cluster's name.
    pub cluster: String,
    /// The service's name.
    pub service: String,
    /// Its desired count before; a release sets it back.
    pub desired_count: i32,
}

/// `rotate_secret`: the version that was current and the one the rotation
/// makes (a release keeps it: a rotated secret stays rotated).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotatePrior {
    /// The secret's ARN.
    pub secret_arn: String,
    /// The version labelled `AWSCURRENT` before.
    pub version_before: Option<String>,
    /// The version the rotation creates (`AWSPENDING` until its function
    /// finishes).
    pub version_after: Option<String>,
}

/// One object of an evidence copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceObject {
    /// Its key in the source bucket.
    pub key: String,
    /// The source's ETag, as listed (and kept in the copy's metadata).
    pub etag: String,
    /// Its size in bytes.
    pub size: u64,
    /// The copy was there already (an earlier attempt made it).
    pub existed: bool,
}

/// `copy_evidence`: what was copied where (kept on release: evidence).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidencePrior {
    /// `s3://bucket/prefix`.
    pub source: String,
    /// `s3://evidence bucket/evidence/<incident>/<bucket>/`.
    pub destination: String,
    /// Every object under the prefix.
    pub objects: Vec<EvidenceObject>,
    /// Their bytes in all.
    pub bytes: u64,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    /// The JSON a record holds reads as its type and writes back the same.
    fn round_trip<T: Serialize + DeserializeOwned>(recorded: Value) {
        let typed: T = serde_json::from_value(recorded.clone()).unwrap();
        assert_eq!(to_json(&typed), recorded);
    }

    #[test]
    fn every_kinds_prior_state_round_trips_as_records_hold_it() {
        // Records written before keys' sessions were cut still read.
        round_trip::<KeyPrior>(json!({
            "user_name": "ci-deployer", "access_key_id": "AKIAIOSFODNN7EXAMPLE", "status": "Active"
        }));
        round_trip::<KeyPrior>(json!({
            "user_name": "ci-deployer", "access_key_id": "AKIAIOSFODNN7EXAMPLE", "status": "Active",
            "sessions": { "policy_name": "FirebreakRevokeOlderSessions", "previous_document": null }
        }));
        round_trip::<QuarantinePrior>(json!({
            "user_name": "legacy-admin", "policy_name": "FirebreakQuarantine", "previous_document": null
        }));
        round_trip::<RevokePrior>(json!({
            "role_name": "app-server", "policy_name": "FirebreakRevokeOlderSessions", "previous_document": null
        }));
        round_trip::<RevokePrior>(json!({
            "role_name": "app-server", "policy_name": "FirebreakRevokeOlderSessions",
            "previous_document": "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
        }));
        round_trip::<BlockPrior>(json!({
            "entries": [
                { "network_acl_id": "acl-1", "egress": false, "cidr": "198.51.100.77/32",
                  "rule_number": 1, "existed": false,
                  "evicted": [{ "rule_number": 2, "cidr": "198.51.100.1/32" }] },
                { "network_acl_id": "acl-2", "egress": false, "cidr": "198.51.100.77/32",
                  "rule_number": 7, "existed": true }
            ],
            "expires_after_hours": 24
        }));
        round_trip::<IsolatePrior>(json!({
            "instance_id": "i-0abc123def4567890",
            "network_interfaces": [
                { "network_interface_id": "eni-0aaa", "vpc_id": "vpc-1", "groups": ["sg-web"],
                  "isolation_group": "sg-iso" },
                { "network_interface_id": "eni-0bbb", "vpc_id": "vpc-1",
                  "isolation_group": "sg-iso", "already_isolated": true }
            ],
            "termination_protection": false
        }));
        round_trip::<SnapshotPrior>(json!({
            "instance_id": "i-0abc123def4567890",
            "snapshots": [
                { "volume_id": "vol-1", "snapshot_id": "snap-1", "existed": false },
                { "volume_id": "vol-2", "snapshot_id": null, "existed": true }
            ]
        }));
        round_trip::<RetentionPrior>(json!({ "log_group": "/prod/auth", "retention_in_days": 30 }));
        round_trip::<RetentionPrior>(
            json!({ "log_group": "/prod/auth", "retention_in_days": null }),
        );
        round_trip::<FindingPrior>(json!({
            "finding_id": "arn:aws:guardduty:eu-west-1:111122223333:detector/d/finding/f",
            "product_arn": "arn:aws:securityhub:eu-west-1::product/aws/guardduty",
            "workflow_status": "NEW", "notified": true
        }));
        round_trip::<ReleasePrior>(json!({
            "released_incident": "fb-a600cce2b4010f814d5f",
            "record": "incidents/dt=2026-11-20/fb-a600cce2b4010f814d5f/",
            "acted_in": { "account": "111122223333", "region": "eu-west-1" },
            "undone": [{ "index": 0, "kind": "block_ip", "target": "198.51.100.77/32",
                          "detail": "198.51.100.77/32 no longer denied" }]
        }));
    }

    #[test]
    fn the_lockdowns_prior_states_round_trip() {
        round_trip::<ScalePrior>(
            json!({ "cluster": "prod", "service": "web-api", "desired_count": 3 }),
        );
        round_trip::<RotatePrior>(json!({
            "secret_arn": "arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/admin-AbCdEf",
            "version_before": "a1b2c3d4-0000-4000-8000-000000000001",
            "version_after": "fb0a1b2c-3d4e-4f50-8617-28394a5b6c7d"
        }));
        round_trip::<EvidencePrior>(json!({
            "source": "s3://app-uploads/users/",
            "destination": "s3://acme-firebreak-records/evidence/fb-0123456789abcdef0123/app-uploads/",
            "objects": [{ "key": "users/1.json", "etag": "\"9a0364b9e99bb480dd25e1f0284c8555\"",
                          "size": 7, "existed": false }],
            "bytes": 7
        }));
        round_trip::<ListenerPrior>(json!({
            "listener_arn": "arn:aws:elasticloadbalancing:eu-west-1:111122223333:listener/app/web/50dc/f2f7",
            "load_balancer_arn": "arn:aws:elasticloadbalancing:eu-west-1:111122223333:loadbalancer/app/web/50dc",
            "default_actions": [
                { "type": "authenticate-oidc", "order": 1,
                  "authenticate_oidc": { "issuer": "https://idp.example", "authorization_endpoint": "https://idp.example/a",
                    "token_endpoint": "https://idp.example/t", "user_info_endpoint": "https://idp.example/u",
                    "client_id": "web", "session_cookie_name": "AWSELBAuthSessionCookie", "scope": "openid",
                    "session_timeout": 604800, "authentication_request_extra_params": { "prompt": "login" },
                    "on_unauthenticated_request": "authenticate" } },
                { "type": "forward", "order": 2,
                  "forward": { "target_groups": [
                      { "target_group_arn": "arn:aws:elasticloadbalancing:eu-west-1:111122223333:targetgroup/blue/1", "weight": 80 },
                      { "target_group_arn": "arn:aws:elasticloadbalancing:eu-west-1:111122223333:targetgroup/green/2", "weight": 20 }],
                    "stickiness": { "enabled": true, "duration_seconds": 300 } } }
            ]
        }));
        round_trip::<ListenerPrior>(json!({
            "listener_arn": "arn:aws:elasticloadbalancing:eu-west-1:111122223333:listener/app/web/50dc/f2f7",
            "default_actions": [
                { "type": "redirect", "order": 1,
                  "redirect": { "protocol": "HTTPS", "port": "443", "host": "#{host}", "path": "/#{path}",
                                "query": "#{query}", "status_code": "HTTP_301" } },
                { "type": "fixed-response",
                  "fixed_response": { "status_code": "404", "content_type": "text/plain", "message_body": "no" } },
                { "type": "authenticate-cognito",
                  "authenticate_cognito": { "user_pool_arn": "arn:aws:cognito-idp:eu-west-1:111122223333:userpool/p",
                    "user_pool_client_id": "c", "user_pool_domain": "d", "on_unauthenticated_request": "deny" } },
                { "type": "jwt-validation",
                  "jwt_validation": { "jwks_endpoint": "https://idp.example/jwks", "issuer": "https://idp.example",
                    "additional_claims": [{ "format": "string-array", "name": "scope", "values": ["read"] }] } },
                { "type": "forward", "target_group_arn": "arn:aws:elasticloadbalancing:eu-west-1:111122223333:targetgroup/blue/1" }
            ]
        }));
    }

    #[test]
    fn a_prior_state_that_cannot_be_read_says_which_action() {
        let o = ActionOutcome {
            index: 0,
            kind: ActionKind::IsolateInstance,
            target: "i-0abc123def4567890".into(),
            status: crate::outcome::Status::Done,
            detail: String::new(),
            prior_state: json!({ "instance": "i-0abc123def4567890" }),
            calls: Vec::new(),
            error: None,
            at: "2026-11-22T03:00:00.000Z".into(),
        };
        let err = of::<IsolatePrior>(&o).unwrap_err();
        assert!(
            err.contains("isolate_instance i-0abc123def4567890") && err.contains("instance_id"),
            "{err}"
        );
    }
}
