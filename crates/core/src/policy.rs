//! Policy: the default playbooks and the safety envelope, from an incident to
//! a plan.
//!
//! A plan lists every action the playbook calls for. An action the safety
//! envelope refuses stays in the plan as `skipped` with its reason, so the
//! responder sees what Firebreak would have done and why it did not. The same
//! checks ([`check_block`], [`check_principal`]) run again in the executor
//! right before each AWS call.
//!
//! Security Hub findings go through the same playbooks. GuardDuty's own
//! findings are GuardDuty incidents whichever way they come. Other
//! products' findings (Inspector's vulnerabilities, Config's and Security
//! Hub's control failures, Macie, partners) describe exposure, not an
//! attacker at work, and no other product's word is trusted to block an
//! address or disable a credential: delivered automatically they are
//! recorded and notified only. When a responder asks with a custom action
//! mapped to `contain`, the finding's own playbook runs at its own
//! severity, but only the actions whose subject the finding names
//! precisely: isolating (and snapshotting) an instance named in
//! `Resources[]`, never a block, a credential change or monitoring. A
//! custom action mapped to `record` changes nothing, for any product.
//!
//! With `securityhub_writeback` on, the plan ends with `update_finding` on
//! the Security Hub finding the incident names ([`securityhub_finding`]):
//! bookkeeping, like the record and the notices, carried out after them.

mod lockdown;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::event::CommandOp;
use crate::ids;
use crate::incident::{Address, Direction, Ignored, Incident, Source, Via, Window};
use crate::severity::Severity;
pub use crate::vocabulary::ActionKind;
use crate::vocabulary::CustomAction;

/// Whether an action will run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanStatus {
    /// It will run.
    Planned,
    /// Refused by the playbook or the safety envelope; `reason` says why.
    Skipped,
}

/// A NACL direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrafficDirection {
    /// Inbound rules: for attackers reaching in.
    Ingress,
    /// Outbound rules: for destinations the resource reached (C2, pools).
    Egress,
}

/// Details an action needs beyond its target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ActionParams {
    /// Block direction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<TrafficDirection>,
    /// Subnets whose NACLs get the block.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub subnets: Vec<String>,
    /// NACLs that get the block when no subnet is named.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub nacls: Vec<String>,
    /// Hours until the block is lifted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_after_hours: Option<u32>,
    /// The key's user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// Log groups to query or keep longer.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub log_groups: Vec<String>,
    /// Retention to set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    /// Query window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
    /// Failures from one address that lead to a block.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<u32>,
    /// The Logs Insights query.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// For a release: the action index in the earlier incident.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<u32>,
    /// For a release: re-activating a key needs this.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub force: bool,
    /// For a Security Hub write-back: the finding's `ProductArn` (its `Id`
    /// is the target); the two name the finding to Security Hub.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub product_arn: Option<String>,
}

impl ActionParams {
    fn is_empty(&self) -> bool {
        *self == ActionParams::default()
    }
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    /// What it does.
    pub kind: ActionKind,
    /// What it acts on (a CIDR, a key id, a role, an instance, a log group).
    pub target: String,
    /// Planned or skipped.
    pub status: PlanStatus,
    /// Why it is planned, or why it was refused.
    pub reason: String,
    /// Details.
    #[serde(skip_serializing_if = "ActionParams::is_empty", default)]
    pub params: ActionParams,
}

/// An incident and its plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedIncident {
    /// The incident.
    #[serde(flatten)]
    pub incident: Incident,
    /// Dry-run: the executor records what it would do and changes nothing.
    pub dry_run: bool,
    /// The ordered actions: containment first, then record and notify.
    pub actions: Vec<Action>,
}

/// Everything planned for one input event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanSet {
    /// One entry per incident (an SNS event may carry several).
    pub incidents: Vec<PlannedIncident>,
    /// Signals that are deliberately not incidents.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub ignored: Vec<Ignored>,
}

struct Planner<'a> {
    incident: &'a Incident,
    cfg: &'a Config,
    /// Set when the incident as a whole may change nothing.
    hold: Option<String>,
    actions: Vec<Action>,
}

impl Planner<'_> {
    fn push(
        &mut self,
        kind: ActionKind,
        target: impl Into<String>,
        verdict: Result<String, String>,
        params: ActionParams,
    ) {
        // An incident-wide hold (sample, placeholder, malformed account) is
        // the reason that matters most, so it wins over any per-action one.
        let (status, reason) = match (verdict, &self.hold) {
            (_, Some(hold)) if kind.is_containment() => (PlanStatus::Skipped, hold.clone()),
            (Ok(_), _) if kind.is_containment() && out_of_scope(self.incident, kind) => {
                (PlanStatus::Skipped, scope_reason(self.incident))
            }
            (Ok(why), _) => (PlanStatus::Planned, why),
            (Err(why), _) => (PlanStatus::Skipped, why),
        };
        self.actions.push(Action {
            kind,
            target: target.into(),
            status,
            reason,
            params,
        });
    }
}

/// Plans one incident.
pub fn plan(incident: Incident, cfg: &Config) -> PlannedIncident {
    let mut p = Planner {
        incident: &incident,
        cfg,
        hold: hold_reason(&incident),
        actions: Vec::new(),
    };
    let sev = incident.severity;
    if let Some(op) = &incident.command {
        plan_command(&mut p, op);
    } else if incident.requested == Some(CustomAction::Quarantine) {
        plan_requested_quarantine(&mut p);
    } else {
        match sev {
            Severity::Critical => {
                plan_blocks(&mut p, |_| Ok(()));
                plan_credentials(&mut p);
                plan_instance(&mut p);
            }
            Severity::High => {
                plan_blocks(&mut p, |a| {
                    match (a.direction, a.via) {
                    (Direction::Inbound, Via::Network) => Ok(()),
                    (Direction::Inbound, Via::Api) => Err(
                        "the address called AWS APIs, which a network ACL does not stop (the credential action does); blocked at CRITICAL".to_string(),
                    ),
                    _ => Err("HIGH blocks inbound attackers only; outbound destinations are blocked at CRITICAL".to_string()),
                }
                });
                plan_credentials(&mut p);
                plan_instance(&mut p);
            }
            Severity::Medium => plan_monitoring(&mut p),
            Severity::Low => {}
        }
    }
    let id = incident.id.clone();
    p.push(
        ActionKind::RecordIncident,
        id.clone(),
        Ok("always: the record every action can be undone from".into()),
        ActionParams::default(),
    );
    p.push(
        ActionKind::NotifyTeam,
        "team",
        Ok("always".into()),
        ActionParams::default(),
    );
    if sev >= Severity::High {
        p.push(
            ActionKind::NotifyStakeholders,
            "stakeholders",
            Ok(format!("{sev}: stakeholders are told")),
            ActionParams::default(),
        );
    }
    plan_write_back(&mut p);
    let actions = p.actions;
    PlannedIncident {
        incident,
        dry_run: cfg.dry_run,
        actions,
    }
}

/// A finding as Security Hub knows it: `Id` and `ProductArn` name it to
/// `GetFindings` and `BatchUpdateFindings`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityHubFinding {
    /// The ASFF `Id` (for GuardDuty's findings, the finding ARN).
    pub id: String,
    /// The ASFF `ProductArn`.
    pub product_arn: String,
}

/// The Security Hub finding an incident names, if any: the one it came
/// from, or for a finding GuardDuty sent itself, GuardDuty's copy in
/// Security Hub (`Id` = the finding ARN, `ProductArn` = GuardDuty's product
/// in the finding's region and partition). Both deliveries of one GuardDuty
/// finding name the same one, so they still plan alike.
pub fn securityhub_finding(i: &Incident) -> Option<SecurityHubFinding> {
    let ev = &i.evidence;
    if let (Some(id), Some(product_arn)) = (
        ev.securityhub_finding_id.as_deref(),
        ev.securityhub_product_arn.as_deref(),
    ) {
        return Some(SecurityHubFinding {
            id: id.to_string(),
            product_arn: product_arn.to_string(),
        });
    }
    if i.source != Source::Guardduty {
        return None;
    }
    let arn = ev.finding_arn.as_deref()?;
    let partition = arn.split(':').nth(1).filter(|p| !p.is_empty())?;
    let region = i.region.as_deref().filter(|r| ids::is_region_code(r))?;
    Some(SecurityHubFinding {
        id: arn.to_string(),
        product_arn: format!("arn:{partition}:securityhub:{region}::product/aws/guardduty"),
    })
}

/// The write-back to Security Hub, after the notices: bookkeeping like
/// them, so nothing holds it back; planned only when configured and the
/// incident names a finding.
fn plan_write_back(p: &mut Planner<'_>) {
    if !p.cfg.securityhub_writeback {
        return;
    }
    let Some(f) = securityhub_finding(p.incident) else {
        return;
    };
    let params = ActionParams {
        product_arn: Some(f.product_arn),
        ..ActionParams::default()
    };
    p.push(
        ActionKind::UpdateFinding,
        f.id,
        Ok("Security Hub: workflow NOTIFIED while still NEW, and a note of what was done".into()),
        params,
    );
}

/// Blocks for addresses found while carrying out the plan (the failed-login
/// query's offenders). They pass the same envelope as planned blocks: the
/// incident's hold, the allow-list, refused ranges, the NACLs to use and the
/// per-incident cap (counting blocks the plan already holds).
pub fn plan_found_blocks(plan: &PlannedIncident, found: &[IpAddr], cfg: &Config) -> Vec<Action> {
    let mut incident = plan.incident.clone();
    incident.subjects.addresses = found
        .iter()
        .map(|ip| Address {
            ip: *ip,
            direction: Direction::Inbound,
            via: Via::Network,
        })
        .collect();
    let already = plan
        .actions
        .iter()
        .filter(|a| a.kind == ActionKind::BlockIp && a.status == PlanStatus::Planned)
        .count();
    let mut capped = cfg.clone();
    capped.max_blocks_per_incident = cfg.max_blocks_per_incident.saturating_sub(already);
    let mut p = Planner {
        incident: &incident,
        cfg: &capped,
        hold: hold_reason(&incident),
        actions: Vec::new(),
    };
    plan_blocks(&mut p, |_| Ok(()));
    let mut actions = p.actions;
    for a in &mut actions {
        if a.status == PlanStatus::Planned {
            a.reason = format!(
                "offending address from the failed-login query: {}",
                a.reason
            );
        }
    }
    actions
}

/// The product of a Security Hub finding, in the words of its product ARN
/// (`aws/inspector`), for reasons a responder reads.
fn product(i: &Incident) -> String {
    i.evidence
        .securityhub_product_arn
        .as_deref()
        .and_then(|a| a.split_once("product/"))
        .map(|(_, p)| p.to_string())
        .unwrap_or_else(|| "another product's".into())
}

/// True when a responder's `contain` on another product's finding does
/// not reach this kind of action: only an instance the finding names is
/// isolated (and its volumes kept).
fn out_of_scope(i: &Incident, kind: ActionKind) -> bool {
    let asked_quarantine =
        kind == ActionKind::QuarantineUser && i.requested == Some(CustomAction::Quarantine);
    i.source == Source::SecurityHub
        && !asked_quarantine
        && !matches!(
            kind,
            ActionKind::IsolateInstance | ActionKind::SnapshotVolumes
        )
}

fn scope_reason(i: &Incident) -> String {
    format!(
        "a responder asked to contain this {} finding: Firebreak acts on another product's finding only by isolating an instance it names; blocks, credential and monitoring changes need GuardDuty's evidence or a responder command",
        product(i)
    )
}

/// Why the whole incident may change nothing, if it may not.
fn hold_reason(i: &Incident) -> Option<String> {
    if i.sample {
        return Some(match i.source {
            Source::SecurityHub => "Security Hub sample finding: record and notify only".into(),
            _ => "GuardDuty sample finding: record and notify only".into(),
        });
    }
    if i.requested == Some(CustomAction::Record) {
        return Some(format!(
            "a responder asked to record only (Security Hub custom action `{}`): record and notify, change nothing",
            i.evidence.securityhub_custom_action.as_deref().unwrap_or("?")
        ));
    }
    let mut identifiers: Vec<&str> = Vec::new();
    identifiers.extend(i.evidence.finding_id.as_deref());
    identifiers.extend(i.account.as_deref());
    if let Some(k) = &i.subjects.access_key {
        identifiers.push(&k.id);
        identifiers.extend(k.user_name.as_deref());
        identifiers.extend(k.principal_id.as_deref());
    }
    if let Some(inst) = &i.subjects.instance {
        identifiers.push(&inst.id);
        identifiers.extend(inst.subnets.iter().map(String::as_str));
        identifiers.extend(inst.vpcs.iter().map(String::as_str));
    }
    identifiers.extend(i.subjects.role.as_deref());
    if let Some(id) = identifiers.iter().find(|s| ids::is_placeholder(s)) {
        return Some(format!(
            "placeholder identifier `{id}` (a generated sample): record and notify only"
        ));
    }
    if let Some(acct) = i.account.as_deref().filter(|a| !ids::is_account_id(a)) {
        return Some(format!(
            "account id `{acct}` is not 12 digits: record and notify only"
        ));
    }
    if let Some(region) = i.region.as_deref().filter(|r| !ids::is_region_code(r)) {
        return Some(format!(
            "region `{region}` is not a region code: record and notify only"
        ));
    }
    if i.source == Source::CloudwatchAlarm && i.region.is_none() {
        return Some("the alarm names no region Firebreak knows: record and notify only".into());
    }
    if i.source == Source::SecurityHub && i.requested.is_none() {
        return Some(format!(
            "{} finding through Security Hub: Firebreak contains another product's finding only when a responder asks (a custom action mapped to `contain` or `quarantine`); record and notify only",
            product(i)
        ));
    }
    None
}

/// Special-purpose ranges never blocked unless `allow_private` is set.
/// Documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24,
/// 2001:db8::/32) are deliberately absent: nothing real lives there, so
/// blocking them cannot hurt, and examples use them.
const RESERVED_V4: &[(Ipv4Addr, u8)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8),
    (Ipv4Addr::new(10, 0, 0, 0), 8),
    (Ipv4Addr::new(100, 64, 0, 0), 10),
    (Ipv4Addr::new(127, 0, 0, 0), 8),
    (Ipv4Addr::new(169, 254, 0, 0), 16),
    (Ipv4Addr::new(172, 16, 0, 0), 12),
    (Ipv4Addr::new(192, 0, 0, 0), 24),
    (Ipv4Addr::new(192, 168, 0, 0), 16),
    (Ipv4Addr::new(198, 18, 0, 0), 15),
    (Ipv4Addr::new(224, 0, 0, 0), 4),
    (Ipv4Addr::new(240, 0, 0, 0), 4),
];

const RESERVED_V6: &[(Ipv6Addr, u8)] = &[
    (Ipv6Addr::UNSPECIFIED, 128),
    (Ipv6Addr::LOCALHOST, 128),
    (Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96),
    (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64),
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7),
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10),
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8),
];

/// The reserved range an address falls in, if any.
pub fn reserved_range(ip: IpAddr) -> Option<IpNet> {
    match ip {
        IpAddr::V4(v4) => RESERVED_V4
            .iter()
            .filter_map(|(a, l)| Ipv4Net::new(*a, *l).ok())
            .find(|n| n.contains(&v4))
            .map(IpNet::V4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return reserved_range(IpAddr::V4(v4))
                    .or_else(|| Ipv6Net::new(v6, 96).ok().map(|n| IpNet::V6(n.trunc())));
            }
            RESERVED_V6
                .iter()
                .filter_map(|(a, l)| Ipv6Net::new(*a, *l).ok())
                .find(|n| n.contains(&v6))
                .map(IpNet::V6)
        }
    }
}

/// The safety envelope for one block: returns the host CIDR to block, or why
/// not. Refuses anything wider than one host, allow-listed addresses and
/// (unless configured) private and reserved ones.
pub fn check_block(net: IpNet, cfg: &Config) -> Result<IpNet, String> {
    if net.prefix_len() != net.max_prefix_len() {
        return Err(format!("{net} is wider than one host (/32 or /128)"));
    }
    let ip = net.addr();
    if let Some(entry) = cfg.allowlist.iter().find(|n| n.contains(&ip)) {
        return Err(format!("{ip} is inside the allow-list entry {entry}"));
    }
    if !cfg.allow_private {
        if let Some(range) = reserved_range(ip) {
            return Err(format!("{ip} is a private or reserved address ({range}); FIREBREAK_ALLOW_PRIVATE allows it"));
        }
    }
    Ok(net)
}

/// What a responder does instead for a principal IAM cannot change
/// (`UnmodifiableEntity`): never attempted, handed to a human with the
/// exact steps.
pub fn unmodifiable(name: &str) -> Option<String> {
    if let Some(rest) = name.strip_prefix("AWSReservedSSO_") {
        let set = rest.rsplit_once('_').map_or(rest, |(set, _)| set);
        return Some(format!(
            "`{name}` is an IAM Identity Center role: IAM cannot change it. Contain it in Identity Center: remove the permission set `{set}` from the user's account assignment (aws sso-admin delete-account-assignment), or disable the user in the identity store; its sessions end when they expire"
        ));
    }
    if name.starts_with("AWSServiceRoleFor") {
        return Some(format!(
            "`{name}` is a service-linked role: IAM cannot change it. Stop the service or resource that uses it, and ask AWS Support if it was misused"
        ));
    }
    None
}

/// The safety envelope for an IAM principal (user or role).
pub fn check_principal(name: &str, cfg: &Config) -> Result<(), String> {
    if ids::is_placeholder(name) {
        return Err(format!("`{name}` is a sample placeholder"));
    }
    if !ids::is_iam_name(name) {
        return Err(format!("`{name}` is not a valid IAM name"));
    }
    if let Some(instead) = unmodifiable(name) {
        return Err(instead);
    }
    if cfg.is_protected_principal(name) {
        return Err(format!(
            "`{name}` is a protected principal (FIREBREAK_PROTECTED_PRINCIPALS)"
        ));
    }
    Ok(())
}

fn block_where(p: &Planner<'_>) -> Result<(Vec<String>, Vec<String>), String> {
    let mut subnets: Vec<String> = p.incident.subjects.subnets.clone();
    if let Some(inst) = &p.incident.subjects.instance {
        subnets.extend(
            inst.subnets
                .iter()
                .filter(|s| !subnets.contains(s))
                .cloned()
                .collect::<Vec<_>>(),
        );
    }
    if let Some(bad) = subnets.iter().find(|s| !ids::is_subnet_id(s)) {
        return Err(format!("subnet `{bad}` is not a subnet id"));
    }
    if !subnets.is_empty() {
        return Ok((subnets, Vec::new()));
    }
    if p.cfg.default_nacls.is_empty() {
        return Err("no network ACL to hold the block: the incident names no subnet and FIREBREAK_DEFAULT_NACLS is empty".into());
    }
    Ok((Vec::new(), p.cfg.default_nacls.clone()))
}

fn plan_blocks(p: &mut Planner<'_>, allowed: impl Fn(&Address) -> Result<(), String>) {
    let place = block_where(p);
    let mut planned = 0usize;
    let addresses = p.incident.subjects.addresses.clone();
    for a in addresses {
        let directions: &[TrafficDirection] = match a.direction {
            Direction::Inbound => &[TrafficDirection::Ingress],
            Direction::Outbound => &[TrafficDirection::Egress],
            Direction::Unknown => &[TrafficDirection::Ingress, TrafficDirection::Egress],
        };
        for &dir in directions {
            let net = IpNet::from(a.ip);
            let mut params = ActionParams {
                direction: Some(dir),
                ..ActionParams::default()
            };
            let verdict = allowed(&a)
                .and_then(|()| check_block(net, p.cfg).map(|_| ()))
                .and_then(|()| place.clone())
                .and_then(|(subnets, nacls)| {
                    if planned >= p.cfg.max_blocks_per_incident {
                        return Err(format!(
                            "more than {} blocks for one incident (FIREBREAK_MAX_BLOCKS_PER_INCIDENT): a human decides",
                            p.cfg.max_blocks_per_incident
                        ));
                    }
                    params.subnets = subnets;
                    params.nacls = nacls;
                    params.expires_after_hours = Some(p.cfg.block_ttl_hours);
                    planned += 1;
                    Ok(format!("{} address: {} deny entry", dir_word(a.direction), dir_name(dir)))
                });
            p.push(ActionKind::BlockIp, net.to_string(), verdict, params);
        }
    }
}

fn dir_word(d: Direction) -> &'static str {
    match d {
        Direction::Inbound => "inbound",
        Direction::Outbound => "outbound",
        Direction::Unknown => "direction-unknown",
    }
}

fn dir_name(d: TrafficDirection) -> &'static str {
    match d {
        TrafficDirection::Ingress => "ingress",
        TrafficDirection::Egress => "egress",
    }
}

fn plan_credentials(p: &mut Planner<'_>) {
    let subjects = p.incident.subjects.clone();
    let Some(key) = subjects.access_key.clone() else {
        if let Some(role) = subjects.role {
            plan_revoke(p, &role);
        }
        // The runbook disables a compromised account: at CRITICAL, a user
        // named without a key is locked out.
        if let Some(user) = subjects
            .user
            .filter(|_| p.incident.severity == Severity::Critical)
        {
            plan_quarantine(p, &user);
        }
        return;
    };
    let user_type = key.user_type.as_deref().unwrap_or("IAMUser");
    // An instance's stolen credentials are its role's sessions, whatever
    // user type the finding reports (a sample may say IAMUser).
    let instance_credentials = p
        .incident
        .incident_type
        .contains("InstanceCredentialExfiltration");
    let temporary = ids::is_temporary_key(&key.id)
        || matches!(user_type, "AssumedRole" | "Role")
        || instance_credentials;
    let role = subjects
        .role
        .or_else(|| key.user_name.clone().filter(|_| instance_credentials));
    if user_type == "Root" {
        p.push(
            ActionKind::DeactivateAccessKey,
            key.id,
            Err(
                "root credentials: Firebreak cannot act on them; a human rotates them as root"
                    .into(),
            ),
            ActionParams::default(),
        );
    } else if temporary {
        match role {
            Some(role) => plan_revoke(p, &role),
            None => p.push(
                ActionKind::RevokeRoleSessions,
                key.id,
                Err("temporary credentials, but the signal names no role".into()),
                ActionParams::default(),
            ),
        }
    } else if user_type != "IAMUser" {
        p.push(
            ActionKind::DeactivateAccessKey,
            key.id,
            Err(format!(
                "credentials of a {user_type} principal: nothing Firebreak can deactivate"
            )),
            ActionParams::default(),
        );
    } else {
        let verdict = deactivate_verdict(&key.id, key.user_name.as_deref(), p.cfg);
        let params = ActionParams {
            user_name: key.user_name.clone(),
            ..ActionParams::default()
        };
        p.push(ActionKind::DeactivateAccessKey, key.id, verdict, params);
        // At CRITICAL the user is locked out too, not only the key.
        if let Some(user) = key
            .user_name
            .filter(|_| p.incident.severity == Severity::Critical)
        {
            plan_quarantine(p, &user);
        }
    }
}

/// A responder's Security Hub custom action asking for the quarantine of
/// the IAM user the finding names: that, and no other containment.
fn plan_requested_quarantine(p: &mut Planner<'_>) {
    let s = &p.incident.subjects;
    let of_key = s.access_key.as_ref().filter(|k| {
        k.user_type.as_deref().unwrap_or("IAMUser") == "IAMUser" && !ids::is_temporary_key(&k.id)
    });
    match of_key.and_then(|k| k.user_name.clone()).or(s.user.clone()) {
        Some(user) => plan_quarantine(p, &user),
        None => p.push(
            ActionKind::QuarantineUser,
            "-",
            Err("the finding names no IAM user to quarantine (a role's sessions are revoked by the revoke_role_sessions command)".into()),
            ActionParams::default(),
        ),
    }
}

fn plan_quarantine(p: &mut Planner<'_>, user: &str) {
    let verdict = if user.eq_ignore_ascii_case("root") {
        Err("the root user: Firebreak cannot act on it; a human secures it as root".into())
    } else {
        check_principal(user, p.cfg).map(|()| {
            "deny-all inline policy on the user: no console, key or session of it can act".into()
        })
    };
    p.push(
        ActionKind::QuarantineUser,
        user,
        verdict,
        ActionParams::default(),
    );
}

fn deactivate_verdict(
    key_id: &str,
    user_name: Option<&str>,
    cfg: &Config,
) -> Result<String, String> {
    if ids::is_temporary_key(key_id) {
        return Err(
            "temporary credentials (ASIA…) cannot be deactivated: revoke the role's sessions"
                .into(),
        );
    }
    if !ids::is_access_key_id(key_id) {
        return Err(format!("`{key_id}` is not an access key id"));
    }
    // Without a user name, UpdateAccessKey acts on the caller's own keys.
    let user = user_name.ok_or("the signal names no user for the key; Firebreak will not guess")?;
    check_principal(user, cfg)?;
    Ok(
        "long-term key (AKIA…): deactivate this key only, and deny the sessions it already minted"
            .into(),
    )
}

fn plan_revoke(p: &mut Planner<'_>, role: &str) {
    let verdict = check_principal(role, p.cfg)
        .map(|()| "temporary credentials: deny sessions issued before now".into());
    p.push(
        ActionKind::RevokeRoleSessions,
        role,
        verdict,
        ActionParams::default(),
    );
}

fn plan_instance(p: &mut Planner<'_>) {
    let Some(inst) = p.incident.subjects.instance.clone() else {
        return;
    };
    let verdict = if !ids::is_instance_id(&inst.id) {
        Err(format!("`{}` is not an instance id", inst.id))
    } else if inst.tags.contains_key(&p.cfg.protected_tag) {
        Err(format!(
            "the instance carries the protected tag `{}`",
            p.cfg.protected_tag
        ))
    } else {
        Ok(())
    };
    // The executor reads the instance's interfaces live when it isolates
    // it; what the signal said of them is in the incident's subjects.
    p.push(
        ActionKind::IsolateInstance,
        inst.id.clone(),
        verdict
            .clone()
            .map(|()| "swap to an isolation group, tag, termination protection".into()),
        ActionParams::default(),
    );
    p.push(
        ActionKind::SnapshotVolumes,
        inst.id,
        verdict.map(|()| "preserve the volumes for forensics".into()),
        ActionParams::default(),
    );
}

fn plan_monitoring(p: &mut Planner<'_>) {
    let groups = p.cfg.log_groups.clone();
    if p.incident.source == Source::CloudwatchAlarm && p.incident.incident_type == "FAILED_LOGIN" {
        let verdict = if groups.is_empty() {
            Err("no log groups configured (FIREBREAK_LOG_GROUPS)".to_string())
        } else if p.incident.evidence.alarm_window.is_none() {
            Err("the alarm has no usable time window".to_string())
        } else {
            Ok(format!(
                "block addresses with ≥ {} failed logins in the alarm's window",
                p.cfg.offender_threshold
            ))
        };
        let params = ActionParams {
            log_groups: groups.clone(),
            window: p.incident.evidence.alarm_window.clone(),
            threshold: Some(p.cfg.offender_threshold),
            query: Some(p.cfg.insights_query.clone()),
            ..ActionParams::default()
        };
        p.push(
            ActionKind::QueryOffendingIps,
            groups.join(","),
            verdict,
            params,
        );
    }
    if groups.is_empty() {
        p.push(
            ActionKind::IncreaseMonitoring,
            "log groups",
            Err("no log groups configured (FIREBREAK_LOG_GROUPS)".into()),
            ActionParams::default(),
        );
    }
    for g in groups {
        let params = ActionParams {
            retention_days: Some(p.cfg.log_retention_days),
            ..ActionParams::default()
        };
        let why = format!("keep logs for {} days", p.cfg.log_retention_days);
        p.push(ActionKind::IncreaseMonitoring, g, Ok(why), params);
    }
}

fn plan_command(p: &mut Planner<'_>, op: &CommandOp) {
    match op {
        CommandOp::BlockIp { .. } => plan_blocks(p, |_| Ok(())),
        CommandOp::DeactivateAccessKey {
            access_key_id,
            user_name,
        } => {
            let verdict = deactivate_verdict(access_key_id, Some(user_name), p.cfg);
            let params = ActionParams {
                user_name: Some(user_name.clone()),
                ..ActionParams::default()
            };
            p.push(
                ActionKind::DeactivateAccessKey,
                access_key_id.clone(),
                verdict,
                params,
            );
        }
        CommandOp::RevokeRoleSessions { role_name } => plan_revoke(p, role_name),
        CommandOp::IsolateInstance { .. } => plan_instance(p),
        CommandOp::QuarantineUser { user_name } => plan_quarantine(p, user_name),
        CommandOp::Release {
            incident_id,
            action,
            force,
        } => {
            let valid = incident_id.len() == 23
                && incident_id.starts_with("fb-")
                && incident_id[3..]
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            let verdict = if valid {
                Ok("undo from the record".to_string())
            } else {
                Err(format!(
                    "`{incident_id}` is not a Firebreak incident id (fb-…)"
                ))
            };
            let params = ActionParams {
                action: *action,
                force: *force,
                ..ActionParams::default()
            };
            p.push(ActionKind::Release, incident_id.clone(), verdict, params);
        }
        CommandOp::Lockdown {
            ecs_services,
            listener_arns,
            secret_ids,
            log_groups,
            evidence,
        } => lockdown::plan(
            p,
            &crate::lockdown::Targets {
                ecs_services,
                listener_arns,
                secret_ids,
                log_groups,
                evidence,
            },
        ),
    }
}
