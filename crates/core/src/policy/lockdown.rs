//! The emergency lockdown's plan: one action per target, in the runbook's
//! order (traffic first, then the credential, the logs, the evidence),
//! each saying what a release will and will not undo. A target named twice
//! is planned once; a target of the wrong shape, or in another account or
//! region than the lockdown acts in, is skipped with the reason.

use std::collections::BTreeSet;

use super::{ActionParams, Planner};
use crate::lockdown::{self, Targets};
use crate::vocabulary::ActionKind;

/// Plans every target of one lockdown.
pub(super) fn plan(p: &mut Planner<'_>, t: &Targets<'_>) {
    services(p, t);
    listeners(p, t);
    secrets(p, t);
    monitoring(p, t);
    evidence(p, t);
}

/// Pushes `kind` on `target` once, however often the command names it.
fn once(
    p: &mut Planner<'_>,
    seen: &mut BTreeSet<String>,
    (kind, target): (ActionKind, String),
    verdict: Result<String, String>,
    params: ActionParams,
) {
    if seen.insert(target.clone()) {
        p.push(kind, target, verdict, params);
    }
}

/// Why an ARN names something outside the lockdown's account or region.
fn elsewhere(p: &Planner<'_>, a: &lockdown::Arn<'_>) -> Result<(), String> {
    let i = p.incident;
    match lockdown::elsewhere(a, i.account.as_deref(), i.region.as_deref()) {
        Some(why) => Err(why),
        None => Ok(()),
    }
}

fn services(p: &mut Planner<'_>, t: &Targets<'_>) {
    let mut seen = BTreeSet::new();
    for s in t.ecs_services {
        let checked = lockdown::service(s).and_then(|target| {
            for given in [&s.cluster, &s.service] {
                if let Some(a) = lockdown::arn(given) {
                    elsewhere(p, &a)?;
                }
            }
            Ok(target)
        });
        let (target, verdict) = match checked {
            Ok(target) => (target, Ok("set its desired count to 0 (emergency lockdown; the count before is recorded and a release restores it; an Application Auto Scaling minimum above 0 would scale it back up)".to_string())),
            Err(why) => (format!("{}/{}", s.cluster, s.service), Err(why)),
        };
        let kind = ActionKind::ScaleServiceToZero;
        once(
            p,
            &mut seen,
            (kind, target),
            verdict,
            ActionParams::default(),
        );
    }
}

fn listeners(p: &mut Planner<'_>, t: &Targets<'_>) {
    let mut seen = BTreeSet::new();
    for arn in t.listener_arns {
        let verdict = lockdown::listener(arn)
            .and_then(|a| elsewhere(p, &a))
            .map(|()| {
                format!(
                    "answer with a fixed {} \"{}\" instead of its default actions (emergency lockdown; they are recorded in full and a release restores them; the listener's other rules stay as they are)",
                    lockdown::MAINTENANCE_STATUS,
                    lockdown::MAINTENANCE_BODY
                )
            });
        let kind = ActionKind::ServeMaintenanceResponse;
        once(
            p,
            &mut seen,
            (kind, arn.clone()),
            verdict,
            ActionParams::default(),
        );
    }
}

fn secrets(p: &mut Planner<'_>, t: &Targets<'_>) {
    let mut seen = BTreeSet::new();
    for id in t.secret_ids {
        let verdict = lockdown::secret(id)
            .and_then(|a| a.map_or(Ok(()), |a| elsewhere(p, &a)))
            .map(|()| "rotate it now with its configured rotation (emergency lockdown; a release does not undo it: a rotated secret stays rotated)".to_string());
        let kind = ActionKind::RotateSecret;
        once(
            p,
            &mut seen,
            (kind, id.clone()),
            verdict,
            ActionParams::default(),
        );
    }
}

fn monitoring(p: &mut Planner<'_>, t: &Targets<'_>) {
    let mut seen = BTreeSet::new();
    let days = p.cfg.log_retention_days;
    for g in t.log_groups {
        let verdict = lockdown::log_group(g).map(|()| {
            format!("keep logs for {days} days (emergency lockdown; a longer retention is left as it is, and a release puts the old one back)")
        });
        let params = ActionParams {
            retention_days: Some(days),
            ..ActionParams::default()
        };
        let kind = ActionKind::IncreaseMonitoring;
        once(p, &mut seen, (kind, g.clone()), verdict, params);
    }
}

fn evidence(p: &mut Planner<'_>, t: &Targets<'_>) {
    let mut seen = BTreeSet::new();
    let cfg = p.cfg;
    let into = match cfg
        .evidence_bucket
        .as_deref()
        .or(cfg.records_bucket.as_deref())
    {
        Some(b) => format!("s3://{b}/evidence/{}/", p.incident.id),
        None => format!(
            "the evidence bucket (FIREBREAK_EVIDENCE_BUCKET, else the records bucket) under evidence/{}/",
            p.incident.id
        ),
    };
    for e in t.evidence {
        let (target, verdict) = match lockdown::evidence(e) {
            Ok(target) => {
                let why = format!(
                    "copy every object under s3://{target} into {into}{}/ (at most {} objects, {}), server-side and encrypted (emergency lockdown; the copies are kept on release)",
                    e.bucket,
                    cfg.evidence_max_objects,
                    bytes(cfg.evidence_max_bytes)
                );
                (target, Ok(why))
            }
            Err(why) => (format!("{}/{}", e.bucket, e.prefix), Err(why)),
        };
        let kind = ActionKind::CopyEvidence;
        once(
            p,
            &mut seen,
            (kind, target),
            verdict,
            ActionParams::default(),
        );
    }
}

/// `1 GiB`, `512 MiB`, or the bytes.
pub(crate) fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 && n % (1 << 30) == 0 => format!("{} GiB", n >> 30),
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n => format!("{n} bytes"),
    }
}
