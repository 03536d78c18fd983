//! Security Hub findings as incidents, one per finding.
//!
//! * A GuardDuty finding (by its product ARN) is read back into our native
//!   GuardDuty model and becomes the very incident GuardDuty's own event
//!   makes: key `guardduty:<account>:<region>:<finding id>`, the same id,
//!   source, type, class, subjects and plan. Only the evidence differs: it
//!   also names the Security Hub finding, its product and the custom
//!   action, if any. Addresses that only ASFF's `Network` names are added
//!   (the remote side only).
//! * Another product's finding is [`Source::SecurityHub`], key
//!   `securityhub:<ProductArn>:<Id>`, its type the first of `Types` (else
//!   the title), its class from `Severity.Label`, its subjects what
//!   `Resources[]` and `Network` name precisely. What the policy may do
//!   with it is narrower (see [`crate::policy`]).
//! * A custom action's name is looked up in the configuration; a name it
//!   does not know refuses the event, naming the ones it does.
//! * An imported finding that is resolved, suppressed or archived is set
//!   aside: Security Hub sends an event for every change to a finding, and
//!   a responder closing one must never be what starts containment. A
//!   custom action is a responder's explicit request and is always read.

use super::guardduty::{credential, finish, guardduty_incident, instance};
use super::{
    adjust, new_incident, normalise_time, opt_name, opt_text, Addresses, Direction, Evidence,
    Incident, Signals, Source, Via,
};
use crate::config::Config;
use crate::error::ParseError;
use crate::guardduty::RemoteIpDetails;
use crate::sanitize;
use crate::securityhub::{
    guardduty as asff_guardduty, CustomActionRequest, Finding, SecurityHubEvent,
};
use crate::severity::Severity;
use crate::vocabulary::CustomAction;

/// ASFF's limit for `Id` and `ProductArn`.
const ASFF_ID_CAP: usize = 512;

/// Adds the incidents of a Security Hub event (and the findings set aside)
/// to `signals`.
pub(super) fn collect(
    ev: &SecurityHubEvent,
    cfg: &Config,
    signals: &mut Signals,
) -> Result<(), ParseError> {
    let requested = ev
        .custom_action
        .as_ref()
        .map(|a| meaning(a, cfg))
        .transpose()?;
    for (index, f) in ev.findings.iter().enumerate() {
        if let (None, Some(why)) = (requested, f.closed()) {
            signals.ignore(
                Some(index),
                format!(
                    "Security Hub finding {index} is closed ({why}): not an incident to contain"
                ),
            );
            continue;
        }
        let mut i = if f.is_guardduty() {
            from_guardduty_product(f, cfg)
        } else {
            from_other_product(f, cfg)
        };
        i.requested = requested;
        // What the write-back names the finding by: kept whole (ASFF caps
        // both at 512 characters), only control characters escaped.
        i.evidence.securityhub_finding_id = Some(sanitize::clean(&f.id, ASFF_ID_CAP));
        i.evidence.securityhub_product_arn = Some(sanitize::clean(&f.product_arn, ASFF_ID_CAP));
        i.evidence.securityhub_custom_action =
            ev.custom_action.as_ref().map(|a| sanitize::name(&a.name));
        signals.add(Some(index), i);
    }
    Ok(())
}

/// What the configuration says a custom action of this name does.
fn meaning(a: &CustomActionRequest, cfg: &Config) -> Result<CustomAction, ParseError> {
    cfg.custom_action(&a.name).ok_or_else(|| {
        let known: Vec<String> = cfg
            .securityhub_actions
            .keys()
            .map(|k| sanitize::clean(k, 40))
            .collect();
        let expected = if known.is_empty() {
            "no custom action is configured".to_string()
        } else {
            format!("expected one of {}", known.join(", "))
        };
        ParseError::Invalid {
            context: "Security Hub custom action",
            field: "detail.actionName",
            message: format!(
                "is `{}`: {expected} (FIREBREAK_SECURITYHUB_ACTIONS)",
                sanitize::clean(&a.name, 60)
            ),
        }
    })
}

/// GuardDuty's finding through Security Hub: the native incident.
fn from_guardduty_product(f: &Finding, cfg: &Config) -> Incident {
    let native = asff_guardduty::to_native(f);
    let mut i = guardduty_incident(&native);
    let mut addresses = Addresses {
        list: std::mem::take(&mut i.subjects.addresses),
    };
    network_addresses(f, &mut addresses, &mut i.evidence.notes);
    i.subjects.addresses = addresses.list;
    if !matches!(asff_guardduty::score(f), Ok(Some(_))) {
        // The class came from Security Hub's label, not GuardDuty's score.
        i.evidence.finding_severity = None;
        i.evidence
            .notes
            .push("Severity: GuardDuty's score is not in the finding; its label decided".into());
    }
    if !asff_guardduty::identity(f).3 {
        i.evidence.notes.push(
            "Id: not a GuardDuty finding ARN; the incident is named by AwsAccountId, Region and Id"
                .into(),
        );
    }
    finish(i, cfg)
}

/// Another product's finding.
fn from_other_product(f: &Finding, cfg: &Config) -> Incident {
    let key = format!("securityhub:{}:{}", f.product_arn, f.id);
    let incident_type = f
        .types
        .iter()
        .find(|t| !t.trim().is_empty())
        .or(f.title.as_ref().filter(|t| !t.trim().is_empty()))
        .map(|t| sanitize::name(t))
        .unwrap_or_else(|| "Security Hub finding".into());
    // Validated on parsing: a finding without a label or score is refused.
    let severity = f.label_severity().unwrap_or(Severity::Low);
    let mut i = new_incident(key, Source::SecurityHub, incident_type, severity);
    i.account = Some(sanitize::name(&f.aws_account_id));
    i.region = f.region().map(sanitize::name);
    i.observed_at = f.updated_at.as_deref().map(normalise_time);
    i.sample = f.sample == Some(true);
    let mut ev = Evidence {
        title: opt_text(&f.title),
        description: opt_text(&f.description),
        first_seen: opt_name(&f.first_observed_at.clone().or_else(|| f.created_at.clone())),
        last_seen: opt_name(&f.last_observed_at.clone().or_else(|| f.updated_at.clone())),
        ..Evidence::default()
    };
    if let Some((key, role)) = f.access_key_details().as_ref().and_then(credential) {
        i.subjects.role = role;
        i.subjects.access_key = Some(key);
    }
    i.subjects.instance = f.instance_details().as_ref().and_then(instance);
    // A user named without a key (`AwsIamUser`): what a responder's
    // quarantine custom action locks out.
    if i.subjects.access_key.is_none() {
        i.subjects.user = f.resources_of("AwsIamUser").find_map(|r| r.user_name());
    }
    i.subjects.resource_arn = f
        .resources
        .iter()
        .filter(|r| r.resource_type != "AwsEc2Instance" && r.resource_type != "AwsIamAccessKey")
        .find_map(|r| opt_name(&Some(r.id.clone()).filter(|id| id.starts_with("arn:"))));
    let mut addresses = Addresses::default();
    network_addresses(f, &mut addresses, &mut ev.notes);
    i.subjects.addresses = addresses.list;
    if f.claims_guardduty() {
        ev.notes.push(format!(
            "ProductName says GuardDuty but ProductArn is `{}`: read as that product's finding",
            sanitize::clean(&f.product_arn, 120)
        ));
    }
    i.evidence = ev;
    adjust(i, cfg, None)
}

/// The remote address of ASFF's `Network`: the source of inbound traffic,
/// the destination of outbound. Without a direction neither side is
/// known to be remote (one of them is the account's own resource), so
/// neither is used.
fn network_addresses(f: &Finding, addresses: &mut Addresses, notes: &mut Vec<String>) {
    let Some(n) = &f.network else { return };
    let direction = n
        .direction
        .as_deref()
        .map(|d| d.trim().to_ascii_uppercase());
    let (dir, v4, v6) = match direction.as_deref() {
        Some("IN") => (Direction::Inbound, &n.source_ip_v4, &n.source_ip_v6),
        Some("OUT") => (
            Direction::Outbound,
            &n.destination_ip_v4,
            &n.destination_ip_v6,
        ),
        _ => {
            let any = [
                &n.source_ip_v4,
                &n.source_ip_v6,
                &n.destination_ip_v4,
                &n.destination_ip_v6,
            ]
            .iter()
            .any(|a| a.is_some());
            if any {
                notes.push(
                    "Network: no Direction (IN or OUT), so its addresses are not used".into(),
                );
            }
            return;
        }
    };
    let remote = RemoteIpDetails {
        ip_address_v4: v4.clone(),
        ip_address_v6: v6.clone(),
    };
    addresses.add(Some(&remote), (dir, Via::Network), "Network", notes);
}
