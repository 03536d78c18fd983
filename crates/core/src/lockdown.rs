//! The emergency lockdown, a responder's command (the runbook's emergency
//! script): ECS services to zero, load balancer listeners to a fixed 503,
//! secrets rotated, logs kept longer, data copied aside as evidence.
//!
//! It is never planned from a finding: only a human decides to take a
//! service down. What a responder names is checked here twice over: its
//! shape when the command is read ([`check`]: nothing empty, nothing a
//! record would have to cut or escape, at least one target, no field the
//! command does not know — a misspelt list must not silently lock down
//! less), and each target's form when it is planned ([`service`],
//! [`listener`], …: a target in another account or region, or one AWS
//! would refuse, is skipped with the reason).
//!
//! Targets are written the way the records name them: `cluster/service`
//! for a service, the listener's ARN, the secret's id, the log group, and
//! `bucket/prefix` for evidence. [`split_service`] and [`split_evidence`]
//! read them back.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{typed, ParseError};
use crate::ids;
use crate::sanitize;

const CTX: &str = "responder command";

/// The status code a locked-down listener answers with.
pub const MAINTENANCE_STATUS: &str = "503";
/// The body it answers with.
pub const MAINTENANCE_BODY: &str = "Service temporarily unavailable";
/// Its content type.
pub const MAINTENANCE_CONTENT_TYPE: &str = "text/plain";

/// The most targets of one kind a lockdown takes: more is a mistake (or a
/// script gone wrong), not an emergency.
pub const MAX_TARGETS: usize = 100;

/// The fields a lockdown command takes, besides its targets.
const COMMON: [&str; 6] = [
    "command",
    "requested_by",
    "reason",
    "account",
    "region",
    "request_id",
];

/// The lists of targets, in the order the plan takes them.
pub const TARGET_FIELDS: [&str; 5] = [
    "ecs_services",
    "listener_arns",
    "secret_ids",
    "log_groups",
    "evidence",
];

/// An ECS service to scale to zero.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EcsService {
    /// The cluster's name or ARN.
    pub cluster: String,
    /// The service's name or ARN.
    pub service: String,
}

/// Objects to copy aside as evidence: everything under `prefix`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceSource {
    /// The bucket.
    pub bucket: String,
    /// The key prefix (empty: the whole bucket, within the bounds).
    #[serde(default)]
    pub prefix: String,
}

/// The lockdown's lists, read on their own (not through the command's
/// flattened envelope, which loses the path of a refused value): an entry
/// of the wrong shape is named by its path, `ecs_services[0]`.
#[derive(Deserialize)]
struct Lists {
    #[serde(default)]
    ecs_services: Vec<EcsService>,
    #[serde(default)]
    listener_arns: Vec<String>,
    #[serde(default)]
    secret_ids: Vec<String>,
    #[serde(default)]
    log_groups: Vec<String>,
    #[serde(default)]
    evidence: Vec<EvidenceSource>,
}

/// Refuses a lockdown command (its raw JSON) that names a field it does
/// not take (`"ecs_service": […]` must not quietly lock down nothing),
/// lists an entry of the wrong shape, or fails [`check`].
pub(crate) fn read(value: &Value) -> Result<(), ParseError> {
    let Some(obj) = value.as_object() else {
        return Ok(());
    };
    if let Some(k) = obj
        .keys()
        .find(|k| !COMMON.contains(&k.as_str()) && !TARGET_FIELDS.contains(&k.as_str()))
    {
        return Err(ParseError::Field {
            context: CTX,
            path: sanitize::clean(k, 60),
            message: format!(
                "a lockdown takes no such field: its targets are {}",
                TARGET_FIELDS.join(", ")
            ),
        });
    }
    let lists: Value = obj
        .iter()
        .filter(|(k, _)| TARGET_FIELDS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect::<serde_json::Map<_, _>>()
        .into();
    let l = typed::<Lists>(lists, CTX, "")?;
    check(&Targets {
        ecs_services: &l.ecs_services,
        listener_arns: &l.listener_arns,
        secret_ids: &l.secret_ids,
        log_groups: &l.log_groups,
        evidence: &l.evidence,
    })
}

/// The targets of one lockdown, as the command lists them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Targets<'a> {
    pub(crate) ecs_services: &'a [EcsService],
    pub(crate) listener_arns: &'a [String],
    pub(crate) secret_ids: &'a [String],
    pub(crate) log_groups: &'a [String],
    pub(crate) evidence: &'a [EvidenceSource],
}

/// Refuses a lockdown that names nothing, too much, or a value a record
/// could not keep as it was given.
fn check(t: &Targets<'_>) -> Result<(), ParseError> {
    let lengths = [
        t.ecs_services.len(),
        t.listener_arns.len(),
        t.secret_ids.len(),
        t.log_groups.len(),
        t.evidence.len(),
    ];
    if lengths.iter().all(|n| *n == 0) {
        return Err(ParseError::Invalid {
            context: CTX,
            field: "lockdown",
            message: format!(
                "names nothing to lock down: give at least one of {}",
                TARGET_FIELDS.join(", ")
            ),
        });
    }
    for (field, n) in TARGET_FIELDS.into_iter().zip(lengths) {
        if n > MAX_TARGETS {
            return Err(ParseError::Invalid {
                context: CTX,
                field,
                message: format!("lists {n} targets: at most {MAX_TARGETS} in one lockdown"),
            });
        }
    }
    let values = t
        .ecs_services
        .iter()
        .flat_map(|s| [("ecs_services", &s.cluster), ("ecs_services", &s.service)])
        .chain(t.listener_arns.iter().map(|a| ("listener_arns", a)))
        .chain(t.secret_ids.iter().map(|s| ("secret_ids", s)))
        .chain(t.log_groups.iter().map(|g| ("log_groups", g)))
        .chain(t.evidence.iter().map(|e| ("evidence", &e.bucket)));
    for (field, v) in values {
        keepable(field, v, false)?;
    }
    for e in t.evidence {
        keepable("evidence", &e.prefix, true)?;
    }
    Ok(())
}

/// A value the record keeps exactly as given (what [`sanitize::name`]
/// leaves alone: no control or direction characters, not too long), and
/// not empty unless allowed.
fn keepable(field: &'static str, v: &str, may_be_empty: bool) -> Result<(), ParseError> {
    let message = if v.trim().is_empty() && !may_be_empty {
        "has an empty entry".to_string()
    } else if sanitize::name(v) != v {
        format!(
            "has `{}`: control characters, or over {} characters",
            sanitize::clean(v, 60),
            sanitize::NAME_CAP
        )
    } else {
        return Ok(());
    };
    Err(ParseError::Invalid {
        context: CTX,
        field,
        message,
    })
}

/// What an ARN says of where its resource is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arn<'a> {
    /// `elasticloadbalancing`, `ecs`, `secretsmanager`, …
    pub service: &'a str,
    /// Its region.
    pub region: &'a str,
    /// Its account.
    pub account: &'a str,
    /// Everything after the account (`listener/app/…`).
    pub resource: &'a str,
}

/// Reads `arn:<partition>:<service>:<region>:<account>:<resource>`.
pub fn arn(s: &str) -> Option<Arn<'_>> {
    let mut parts = s.splitn(6, ':');
    let (Some("arn"), Some(_), Some(service), Some(region), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    Some(Arn {
        service,
        region,
        account,
        resource,
    })
}

/// Why an ARN's resource is not where the lockdown acts, if it is not
/// (`account` and `region` are the incident's, when it names them).
pub fn elsewhere(a: &Arn<'_>, account: Option<&str>, region: Option<&str>) -> Option<String> {
    if let Some(acct) = account.filter(|acct| *acct != a.account) {
        return Some(format!(
            "it is in account {}; the lockdown acts in {acct}",
            a.account
        ));
    }
    if let Some(r) = region.filter(|r| *r != a.region) {
        return Some(format!(
            "it is in region {}; the lockdown acts in {r}",
            a.region
        ));
    }
    None
}

/// An ECS cluster or service name (`[A-Za-z0-9_-]{1,255}`).
fn is_ecs_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The `cluster/service` target of a service, both as names (an ARN is
/// read down to its name), or why it cannot be one.
pub fn service(s: &EcsService) -> Result<String, String> {
    let name = |given: &str, kind: &str| -> Result<String, String> {
        let name = match arn(given) {
            Some(a) if a.service == "ecs" => a.resource.rsplit('/').next().unwrap_or_default(),
            Some(_) => return Err(format!("`{given}` is not an ECS {kind} ARN")),
            None => given,
        };
        if is_ecs_name(name) {
            Ok(name.to_string())
        } else {
            Err(format!("`{given}` is not an ECS {kind} name"))
        }
    };
    Ok(format!(
        "{}/{}",
        name(&s.cluster, "cluster")?,
        name(&s.service, "service")?
    ))
}

/// `(cluster, service)` of a [`service`] target.
pub fn split_service(target: &str) -> Option<(&str, &str)> {
    target
        .split_once('/')
        .filter(|(c, s)| is_ecs_name(c) && is_ecs_name(s))
}

/// Why `s` is not the ARN of an Application Load Balancer's listener, if
/// it is not (only those can answer with a fixed response).
pub fn listener(s: &str) -> Result<Arn<'_>, String> {
    let a = arn(s)
        .filter(|a| a.service == "elasticloadbalancing" && ids::is_account_id(a.account))
        .ok_or_else(|| format!("`{s}` is not a load balancer listener ARN"))?;
    let parts: Vec<&str> = a.resource.split('/').collect();
    match parts.as_slice() {
        ["listener", "app", name, lb, id] if [name, lb, id].iter().all(|p| !p.is_empty()) => Ok(a),
        ["listener", "net" | "gwy", ..] => Err(format!(
            "`{s}` is a Network or Gateway Load Balancer's listener: only an Application Load Balancer answers with a fixed response"
        )),
        _ => Err(format!("`{s}` is not a load balancer listener ARN")),
    }
}

/// Why `s` is not a secret's name or ARN, if it is not.
pub fn secret(s: &str) -> Result<Option<Arn<'_>>, String> {
    match arn(s) {
        Some(a) if a.service == "secretsmanager" && a.resource.starts_with("secret:") => {
            Ok(Some(a))
        }
        Some(_) => Err(format!("`{s}` is not a Secrets Manager secret ARN")),
        None if s.len() <= 512
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b)) =>
        {
            Ok(None)
        }
        None => Err(format!("`{s}` is not a secret name")),
    }
}

/// Why `s` is not a log group name, if it is not.
pub fn log_group(s: &str) -> Result<(), String> {
    let ok = s.len() <= 512
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/#".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!("`{s}` is not a log group name"))
    }
}

/// A general purpose bucket's name: 3 to 63 lower-case letters, digits,
/// dots and hyphens, starting and ending with a letter or digit.
pub fn is_bucket_name(s: &str) -> bool {
    let edge = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (3..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && edge(s.bytes().next())
        && edge(s.bytes().last())
}

/// The `bucket/prefix` target of an evidence copy, or why it cannot be one.
pub fn evidence(e: &EvidenceSource) -> Result<String, String> {
    if !is_bucket_name(&e.bucket) {
        return Err(format!("`{}` is not an S3 bucket name", e.bucket));
    }
    Ok(format!("{}/{}", e.bucket, e.prefix))
}

/// `(bucket, prefix)` of an [`evidence`] target.
pub fn split_evidence(target: &str) -> Option<(&str, &str)> {
    target
        .split_once('/')
        .filter(|(bucket, _)| is_bucket_name(bucket))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn targets_are_written_and_read_back_alike() {
        let by_name = EcsService {
            cluster: "prod".into(),
            service: "web-api".into(),
        };
        let by_arn = EcsService {
            cluster: "arn:aws:ecs:eu-west-1:111122223333:cluster/prod".into(),
            service: "arn:aws:ecs:eu-west-1:111122223333:service/prod/web-api".into(),
        };
        assert_eq!(service(&by_name).unwrap(), "prod/web-api");
        assert_eq!(service(&by_arn).unwrap(), "prod/web-api");
        assert_eq!(split_service("prod/web-api"), Some(("prod", "web-api")));
        assert_eq!(split_service("prod/web api"), None);
        let bad = EcsService {
            cluster: "arn:aws:s3:::bucket".into(),
            service: "x".into(),
        };
        assert!(service(&bad)
            .unwrap_err()
            .contains("not an ECS cluster ARN"));
        let e = EvidenceSource {
            bucket: "app-uploads".into(),
            prefix: "users/".into(),
        };
        assert_eq!(evidence(&e).unwrap(), "app-uploads/users/");
        assert_eq!(
            split_evidence("app-uploads/users/a/b"),
            Some(("app-uploads", "users/a/b"))
        );
        assert_eq!(split_evidence("Bad_Bucket/x"), None);
    }

    #[test]
    fn only_application_load_balancer_listeners_serve_a_fixed_response() {
        let alb = "arn:aws:elasticloadbalancing:eu-west-1:111122223333:listener/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2";
        let a = listener(alb).unwrap();
        assert_eq!((a.region, a.account), ("eu-west-1", "111122223333"));
        assert_eq!(elsewhere(&a, Some("111122223333"), Some("eu-west-1")), None);
        assert!(elsewhere(&a, Some("444455556666"), None)
            .unwrap()
            .contains("account 111122223333"));
        assert!(elsewhere(&a, None, Some("us-east-1"))
            .unwrap()
            .contains("region eu-west-1"));
        let nlb = alb.replace("/app/", "/net/");
        assert!(listener(&nlb).unwrap_err().contains("only an Application"));
        assert!(listener(
            "arn:aws:elasticloadbalancing:eu-west-1:111122223333:loadbalancer/app/web/50dc"
        )
        .is_err());
        assert!(listener("listener/app/web").is_err());
    }

    #[test]
    fn secrets_log_groups_and_buckets_have_their_shapes() {
        assert_eq!(secret("prod/admin-password"), Ok(None));
        assert!(
            secret("arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/admin-AbCdEf")
                .unwrap()
                .is_some()
        );
        assert!(secret("arn:aws:iam::111122223333:role/x").is_err());
        assert!(secret("has space").is_err());
        assert!(log_group("/prod/auth-service").is_ok());
        assert!(log_group("/prod/auth service").is_err());
        assert!(is_bucket_name("acme-firebreak-records"));
        for bad in ["ab", "Upper", "-edge", "edge-", "under_score"] {
            assert!(!is_bucket_name(bad), "{bad}");
        }
    }
}
