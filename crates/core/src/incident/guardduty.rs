//! A GuardDuty finding as an incident: its identity is (account, region,
//! finding id), its class GuardDuty's score in GuardDuty's bands, its
//! subjects every remote address, the credential and the instance the
//! finding names. Security Hub's copy of a GuardDuty finding is read back
//! into the same native model and comes through here too, so both paths
//! give one incident with one plan.

use super::{
    adjust, new_incident, normalise_time, opt_name, opt_text, unique, AccessKey, Address,
    Addresses, Direction, Eni, Evidence, Incident, Instance, Source, Via,
};
use crate::config::Config;
use crate::guardduty::{AccessKeyDetails, Finding, InstanceDetails, ServiceAction};
use crate::ids;
use crate::sanitize;
use crate::severity::Severity;

/// The incident for a GuardDuty finding, its class adjusted by the rules.
pub(super) fn from_guardduty(f: &Finding, cfg: &Config) -> Incident {
    finish(guardduty_incident(f), cfg)
}

/// Applies the severity rules, which also look at GuardDuty's resource
/// role; last, so that they see every address the incident names.
pub(super) fn finish(i: Incident, cfg: &Config) -> Incident {
    let role = i.evidence.resource_role.clone();
    adjust(i, cfg, role.as_deref())
}

/// The incident for a GuardDuty finding, before the severity rules.
pub(super) fn guardduty_incident(f: &Finding) -> Incident {
    let key = format!("guardduty:{}:{}:{}", f.account_id, f.region, f.id);
    let mut i = new_incident(
        key,
        Source::Guardduty,
        sanitize::name(&f.finding_type),
        Severity::from_guardduty(f.severity),
    );
    i.account = Some(sanitize::name(&f.account_id));
    i.region = Some(sanitize::name(&f.region));
    i.observed_at = f.updated_at.as_deref().map(normalise_time);
    let svc = &f.service;
    i.sample = svc
        .additional_info
        .as_ref()
        .and_then(|a| a.sample)
        .unwrap_or(false);

    let mut ev = Evidence {
        title: opt_text(&f.title),
        description: opt_text(&f.description),
        finding_id: Some(sanitize::name(&f.id)),
        finding_arn: opt_name(&f.arn),
        finding_severity: Some(f.severity),
        resource_role: opt_name(&svc.resource_role),
        count: svc.count,
        first_seen: opt_name(&svc.event_first_seen),
        last_seen: opt_name(&svc.event_last_seen),
        ..Evidence::default()
    };
    if let Some(action) = &svc.action {
        i.subjects.addresses = action_addresses(action, &mut ev);
    }

    let res = &f.resource;
    if let Some((key, role)) = res.access_key_details.as_ref().and_then(credential) {
        i.subjects.role = role;
        i.subjects.access_key = Some(key);
    }
    i.subjects.instance = res.instance_details.as_ref().and_then(instance);
    i.subjects.resource_arn = res
        .s3_bucket_details
        .iter()
        .find_map(|b| opt_name(&b.arn))
        .or_else(|| {
            res.eks_cluster_details
                .as_ref()
                .and_then(|e| opt_name(&e.arn))
        })
        .or_else(|| {
            res.rds_db_instance_details
                .as_ref()
                .and_then(|r| opt_name(&r.db_instance_arn))
        });
    i.evidence = ev;
    i
}

/// Every remote address of the action, in GuardDuty's order, and what
/// the action says for the evidence.
fn action_addresses(action: &ServiceAction, ev: &mut Evidence) -> Vec<Address> {
    let mut addresses = Addresses::default();
    ev.action_type = opt_name(&action.action_type);
    if let Some(n) = &action.network_connection_action {
        let dir = match n
            .connection_direction
            .as_deref()
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            Some("INBOUND") => Direction::Inbound,
            Some("OUTBOUND") => Direction::Outbound,
            _ => Direction::Unknown,
        };
        addresses.add(
            n.remote_ip_details.as_ref(),
            (dir, Via::Network),
            "networkConnectionAction",
            &mut ev.notes,
        );
    }
    if let Some(a) = &action.aws_api_call_action {
        addresses.add(
            a.remote_ip_details.as_ref(),
            (Direction::Inbound, Via::Api),
            "awsApiCallAction",
            &mut ev.notes,
        );
        ev.api = opt_name(&a.api);
        ev.user_agent = opt_text(&a.user_agent);
    }
    if let Some(p) = &action.port_probe_action {
        for d in &p.port_probe_details {
            addresses.add(
                d.remote_ip_details.as_ref(),
                (Direction::Inbound, Via::Network),
                "portProbeAction",
                &mut ev.notes,
            );
        }
    }
    if let Some(k) = &action.kubernetes_api_call_action {
        addresses.add(
            k.remote_ip_details.as_ref(),
            (Direction::Inbound, Via::Api),
            "kubernetesApiCallAction",
            &mut ev.notes,
        );
        ev.user_agent = ev.user_agent.take().or_else(|| opt_text(&k.user_agent));
    }
    if let Some(r) = &action.rds_login_attempt_action {
        addresses.add(
            r.remote_ip_details.as_ref(),
            (Direction::Inbound, Via::Network),
            "rdsLoginAttemptAction",
            &mut ev.notes,
        );
    }
    if let Some(d) = &action.dns_request_action {
        ev.domain = opt_text(&d.domain);
    }
    addresses.list
}

/// The credential a finding names, and the role whose sessions it is
/// (for temporary credentials and assumed roles, never for root).
pub(super) fn credential(k: &AccessKeyDetails) -> Option<(AccessKey, Option<String>)> {
    let id = opt_name(&k.access_key_id)?;
    let user_type = opt_name(&k.user_type);
    let user_name = opt_name(&k.user_name);
    let role = if matches!(user_type.as_deref(), Some("AssumedRole" | "Role"))
        || ids::is_temporary_key(&id)
    {
        user_name
            .clone()
            .filter(|_| !matches!(user_type.as_deref(), Some("Root")))
    } else {
        None
    };
    let key = AccessKey {
        id,
        user_name,
        user_type,
        principal_id: opt_name(&k.principal_id),
    };
    Some((key, role))
}

/// The instance a finding names, with its interfaces and tags.
pub(super) fn instance(d: &InstanceDetails) -> Option<Instance> {
    let id = opt_name(&d.instance_id)?;
    let enis: Vec<Eni> = d
        .network_interfaces
        .iter()
        .map(|n| Eni {
            id: opt_name(&n.network_interface_id),
            subnet: opt_name(&n.subnet_id),
            vpc: opt_name(&n.vpc_id),
            security_groups: n
                .security_groups
                .iter()
                .filter_map(|g| opt_name(&g.group_id))
                .collect(),
        })
        .collect();
    let subnets = unique(enis.iter().filter_map(|e| e.subnet.clone()));
    let vpcs = unique(enis.iter().filter_map(|e| e.vpc.clone()));
    let tags = d
        .tags
        .iter()
        .filter_map(|t| {
            Some((
                sanitize::name(t.key.as_deref()?),
                sanitize::name(t.value.as_deref().unwrap_or("")),
            ))
        })
        .collect();
    Some(Instance {
        id,
        subnets,
        vpcs,
        enis,
        tags,
    })
}
