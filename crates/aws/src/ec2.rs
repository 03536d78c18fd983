//! EC2 containment: network ACL deny entries, instance isolation, snapshots.
//!
//! Network ACLs: the NACL itself is the truth. Firebreak reads it, reuses an
//! existing deny entry for the same CIDR, and allocates rule numbers only
//! inside its reserved range. A `NetworkAclEntryAlreadyExists` answer means a
//! concurrent writer took the number: read again and take the next. The
//! per-direction quota (20 entries including the default rule, unless AWS
//! raised it for the account) is planned for: when the range or the quota is
//! full, the oldest Firebreak entry (by its block marker in S3) is evicted.
//! Entries outside the range are never touched.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::future::join_all;

use aws_sdk_ec2::types::{
    AttributeBooleanValue, Filter, InstanceAttributeName, IpPermission, IpRange, Ipv6Range,
    NetworkAcl, NetworkAclEntry, ResourceType, RuleAction, Tag, TagSpecification,
};
use ipnet::IpNet;
use serde_json::json;

use crate::error::AwsError;
use crate::gate::Gate;
use crate::outcome::Step;

/// AWS's default limit of entries per NACL direction, the default rule included.
pub const DEFAULT_QUOTA: usize = 20;
/// Reads and writes per block before giving up: enough for dozens of
/// concurrent writers colliding on the same free numbers.
const ATTEMPTS: u64 = 60;
/// The default rule every NACL has in each direction.
const DEFAULT_RULE: i32 = 32767;

/// How a block should be placed.
#[derive(Debug, Clone, Copy)]
pub struct BlockSpec {
    /// Outbound rules (egress) rather than inbound (ingress).
    pub egress: bool,
    /// Inclusive range of rule numbers Firebreak may use.
    pub range: (u16, u16),
    /// Entries allowed per direction, default rule included.
    pub quota: usize,
}

/// The NACLs `ids` names or, when it is empty, those of `subnets`, each
/// with all its entries, in one call: a block reads them beside its claim
/// and budget, and its first attempt needs no second read.
pub async fn read_nacls(
    ec2: &aws_sdk_ec2::Client,
    subnets: &[String],
    ids: &[String],
) -> Result<Vec<NetworkAcl>, AwsError> {
    let req = ec2.describe_network_acls();
    let req = if ids.is_empty() {
        req.filters(
            Filter::builder()
                .name("association.subnet-id")
                .set_values(Some(subnets.to_vec()))
                .build(),
        )
    } else {
        req.set_network_acl_ids(Some(ids.to_vec()))
    };
    let out = req
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("DescribeNetworkAcls", e))?;
    let mut acls: Vec<NetworkAcl> = out
        .network_acls()
        .iter()
        .filter(|n| n.network_acl_id().is_some())
        .cloned()
        .collect();
    acls.sort_by(|a, b| a.network_acl_id().cmp(&b.network_acl_id()));
    acls.dedup_by(|a, b| a.network_acl_id() == b.network_acl_id());
    if acls.is_empty() {
        let asked = if ids.is_empty() { subnets } else { ids };
        return Err(AwsError::local(
            "DescribeNetworkAcls",
            "NoNetworkAcl",
            format!("no network ACL found for {}", asked.join(", ")),
        ));
    }
    Ok(acls)
}

/// One direction's entries of a NACL.
pub fn direction_entries(acl: &NetworkAcl, egress: bool) -> Vec<NetworkAclEntry> {
    acl.entries()
        .iter()
        .filter(|e| e.egress() == Some(egress))
        .cloned()
        .collect()
}

fn entry_cidr(e: &NetworkAclEntry) -> Option<IpNet> {
    e.cidr_block()
        .or(e.ipv6_cidr_block())
        .and_then(|c| c.parse::<IpNet>().ok())
        .map(|n| n.trunc())
}

/// Every entry of these NACLs, as (NACL, egress, rule number, CIDR).
pub async fn all_entries(
    ec2: &aws_sdk_ec2::Client,
    nacls: &[String],
) -> Result<Vec<(String, bool, i32, IpNet)>, AwsError> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let page = ec2
            .describe_network_acls()
            .set_network_acl_ids(Some(nacls.to_vec()))
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("DescribeNetworkAcls", e))?;
        for acl in page.network_acls() {
            let id = acl.network_acl_id().unwrap_or_default();
            for e in acl.entries() {
                if let (Some(rule), Some(cidr)) = (e.rule_number(), entry_cidr(e)) {
                    out.push((id.to_string(), e.egress() == Some(true), rule, cidr));
                }
            }
        }
        match page.next_token() {
            Some(t) => token = Some(t.to_string()),
            None => return Ok(out),
        }
    }
}

/// One direction's entries of `nacl`, read now.
async fn entries(
    ec2: &aws_sdk_ec2::Client,
    nacl: &str,
    egress: bool,
) -> Result<Vec<NetworkAclEntry>, AwsError> {
    let out = ec2
        .describe_network_acls()
        .network_acl_ids(nacl)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("DescribeNetworkAcls", e))?;
    let acl = out.network_acls().first().ok_or_else(|| {
        AwsError::local(
            "DescribeNetworkAcls",
            "InvalidNetworkAclID.NotFound",
            format!("no network ACL {nacl}"),
        )
    })?;
    Ok(direction_entries(acl, egress))
}

/// The right to delete one entry. AWS deletes a NACL entry by rule number
/// alone, so two writers that chose the same victim would otherwise delete
/// each other's fresh entries: whoever deletes `(rule, CIDR)` holds this
/// for it first, and checks that the rule still holds the CIDR.
pub trait VictimGuard {
    /// Takes the right to delete `rule` holding `cidr`; false while another
    /// writer has it.
    fn take(&self, rule: i32, cidr: IpNet) -> impl std::future::Future<Output = bool> + Send;
    /// Gives it back.
    fn give_back(&self, rule: i32, cidr: IpNet) -> impl std::future::Future<Output = ()> + Send;
}

/// For a single writer (no records bucket to coordinate through).
#[derive(Debug, Clone, Copy)]
pub struct Alone;

impl VictimGuard for Alone {
    async fn take(&self, _rule: i32, _cidr: IpNet) -> bool {
        true
    }
    async fn give_back(&self, _rule: i32, _cidr: IpNet) {}
}

/// Adds (or finds) a deny entry for `cidr` in `nacl`. `age_order` gives
/// Firebreak's markers for this NACL direction from oldest to newest; it is
/// asked only when an entry must be evicted (so the common case costs no
/// ledger read). A marker counts only if its rule number still holds its
/// CIDR. The oldest marked entry goes first; an entry in the range without
/// a marker goes only when no marked one is left (it is most likely being
/// placed right now by a concurrent writer whose marker is not written yet).
///
/// Creating at a free number never removes anything, so any number of
/// writers may do it at once (a collision is retried). Evicting deletes by
/// rule number, so a victim is deleted only under `guard` (see
/// [`VictimGuard`]); concurrent evictors take different victims.
pub async fn block_ip(
    ec2: &aws_sdk_ec2::Client,
    nacl: &str,
    cidr: IpNet,
    spec: BlockSpec,
    guard: &impl VictimGuard,
    age_order: impl AsyncFn() -> Vec<(i32, IpNet)>,
    mut read: Option<Vec<NetworkAclEntry>>,
) -> Result<(Step, i32, Vec<(i32, String)>), AwsError> {
    let direction = if spec.egress { "egress" } else { "ingress" };
    let mut calls = Vec::new();
    let mut evicted: Vec<(i32, String)> = Vec::new();
    let mut quota = spec.quota;
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            // Writers that collided on a number spread out before reading again.
            tokio::time::sleep(crate::jitter::spread(5, 40)).await;
        }
        // The first attempt uses the caller's read (`read`), if any.
        let list = match read.take() {
            Some(list) => list,
            None => entries(ec2, nacl, spec.egress).await?,
        };
        calls.push("DescribeNetworkAcls".to_string());
        if let Some(e) = list
            .iter()
            .find(|e| e.rule_action() == Some(&RuleAction::Deny) && entry_cidr(e) == Some(cidr))
        {
            let n = e.rule_number().unwrap_or_default();
            return Ok((
                Step::new(
                    true,
                    format!("{cidr} already denied ({direction} rule {n} of {nacl})"),
                    json!({ "network_acl_id": nacl, "egress": spec.egress, "cidr": cidr.to_string(), "rule_number": n, "existed": true }),
                    calls,
                ),
                n,
                evicted,
            ));
        }
        let used: BTreeSet<i32> = list.iter().filter_map(|e| e.rule_number()).collect();
        let in_range = |n: i32| n >= i32::from(spec.range.0) && n <= i32::from(spec.range.1);
        // The default rule counts towards the quota even if a reader omits it.
        let counted = list.len() + usize::from(!used.contains(&DEFAULT_RULE));
        let counted_now = counted;
        let free = (i32::from(spec.range.0)..=i32::from(spec.range.1)).find(|n| !used.contains(n));
        let mut guarded = None;
        let number = match free {
            Some(n) if counted < quota => n,
            _ => {
                // Full: evict the oldest Firebreak entry in the range.
                let ours: Vec<i32> = used.iter().copied().filter(|n| in_range(*n)).collect();
                let holds = |n: i32, c: IpNet| {
                    list.iter()
                        .any(|e| e.rule_number() == Some(n) && entry_cidr(e) == Some(c))
                };
                let known: Vec<i32> = age_order()
                    .await
                    .iter()
                    .filter(|(n, c)| ours.contains(n) && holds(*n, *c))
                    .map(|(n, _)| *n)
                    .collect();
                if ours.is_empty() {
                    return Err(AwsError::local(
                        "CreateNetworkAclEntry",
                        "NetworkAclEntryLimitExceeded",
                        format!("{nacl} {direction} is full and holds no Firebreak entry to evict"),
                    ));
                }
                // Oldest marked first, then unmarked ones (most likely being
                // placed right now); the first whose guard we get.
                let candidates = known
                    .iter()
                    .copied()
                    .chain(ours.iter().copied().filter(|n| !known.contains(n)));
                let mut chosen = None;
                for n in candidates {
                    let Some(c) = list
                        .iter()
                        .find(|e| e.rule_number() == Some(n))
                        .and_then(entry_cidr)
                    else {
                        continue;
                    };
                    if guard.take(n, c).await {
                        chosen = Some((n, c));
                        break;
                    }
                }
                let Some((victim, victim_net)) = chosen else {
                    // Every candidate is being evicted by someone else:
                    // read again once they are done.
                    calls.push("evictions elsewhere".into());
                    continue;
                };
                // Under the guard, the rule must still hold what we read.
                let now = entries(ec2, nacl, spec.egress).await?;
                calls.push("DescribeNetworkAcls".to_string());
                let still = now
                    .iter()
                    .any(|e| e.rule_number() == Some(victim) && entry_cidr(e) == Some(victim_net));
                if !still {
                    guard.give_back(victim, victim_net).await;
                    continue;
                }
                let victim_cidr = victim_net.to_string();
                guarded = Some((victim, victim_net));
                if let Err(e) = ec2
                    .delete_network_acl_entry()
                    .network_acl_id(nacl)
                    .rule_number(victim)
                    .egress(spec.egress)
                    .send()
                    .await
                {
                    // Gone already (the expirer or a release lifted it):
                    // read again. Anything else is a real failure.
                    let err = AwsError::from_sdk("DeleteNetworkAclEntry", e);
                    let now = entries(ec2, nacl, spec.egress).await;
                    guard.give_back(victim, victim_net).await;
                    if now?.iter().any(|e| e.rule_number() == Some(victim)) {
                        return Err(err);
                    }
                    calls.push("DeleteNetworkAclEntry (gone)".into());
                    continue;
                }
                calls.push("DeleteNetworkAclEntry".into());
                evicted.push((victim, victim_cidr));
                victim
            }
        };
        let mut req = ec2
            .create_network_acl_entry()
            .network_acl_id(nacl)
            .rule_number(number)
            .egress(spec.egress)
            .protocol("-1")
            .rule_action(RuleAction::Deny);
        req = match cidr {
            IpNet::V4(_) => req.cidr_block(cidr.to_string()),
            IpNet::V6(_) => req.ipv6_cidr_block(cidr.to_string()),
        };
        let created = req.send().await;
        if let Some((n, c)) = guarded {
            guard.give_back(n, c).await;
        }
        match created {
            Ok(_) => {
                calls.push("CreateNetworkAclEntry".into());
                return Ok((
                    Step::new(
                        false,
                        format!("{cidr} denied ({direction} rule {number} of {nacl})"),
                        json!({
                            "network_acl_id": nacl, "egress": spec.egress, "cidr": cidr.to_string(),
                            "rule_number": number, "existed": false,
                            "evicted": evicted.iter().map(|(n, c)| json!({ "rule_number": n, "cidr": c })).collect::<Vec<_>>(),
                        }),
                        calls,
                    ),
                    number,
                    evicted,
                ));
            }
            Err(e) => {
                let err = AwsError::from_sdk("CreateNetworkAclEntry", e);
                if err.is("NetworkAclEntryAlreadyExists") {
                    // A concurrent writer took the number: read again.
                    calls.push("CreateNetworkAclEntry (taken)".into());
                    continue;
                }
                if err.is("NetworkAclEntryLimitExceeded") && quota > 2 {
                    // AWS counts fewer free entries than we did (a writer
                    // outside our range, or a lower quota): plan with what
                    // AWS says and evict.
                    calls.push("CreateNetworkAclEntry (limit)".into());
                    quota = counted_now.min(quota - 1);
                    continue;
                }
                return Err(err);
            }
        }
    }
    Err(AwsError::local(
        "CreateNetworkAclEntry",
        "TooManyCollisions",
        format!("could not find a free rule number in {nacl} after {ATTEMPTS} tries"),
    ))
}

/// Removes a Firebreak deny entry, but only if the rule number still holds
/// the same CIDR as a deny (a later block may have taken the number).
pub async fn unblock(
    ec2: &aws_sdk_ec2::Client,
    nacl: &str,
    egress: bool,
    rule_number: i32,
    cidr: IpNet,
) -> Result<Step, AwsError> {
    let direction = if egress { "egress" } else { "ingress" };
    let list = entries(ec2, nacl, egress).await?;
    let mut calls = vec!["DescribeNetworkAcls".to_string()];
    let prior = json!({ "network_acl_id": nacl, "egress": egress, "cidr": cidr.to_string(), "rule_number": rule_number });
    let ours = list.iter().any(|e| {
        e.rule_number() == Some(rule_number)
            && e.rule_action() == Some(&RuleAction::Deny)
            && entry_cidr(e) == Some(cidr)
    });
    if !ours {
        return Ok(Step::new(
            true,
            format!("{cidr} is no longer denied by {direction} rule {rule_number} of {nacl}"),
            prior,
            calls,
        ));
    }
    ec2.delete_network_acl_entry()
        .network_acl_id(nacl)
        .rule_number(rule_number)
        .egress(egress)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("DeleteNetworkAclEntry", e))?;
    calls.push("DeleteNetworkAclEntry".into());
    Ok(Step::new(
        false,
        format!("{cidr} no longer denied ({direction} rule {rule_number} of {nacl} removed)"),
        prior,
        calls,
    ))
}

/// Name of the per-VPC group with no rules that isolated ENIs end in.
pub const ISOLATION_GROUP: &str = "firebreak-isolation";
/// Name of the per-VPC allow-all group ENIs pass through first: changing to
/// a group that allows all traffic turns tracked connections untracked, so
/// the move to the empty group then cuts them at once instead of letting
/// established sessions live on.
pub const UNTRACK_GROUP: &str = "firebreak-untrack";
/// The tag Firebreak puts on what it created or isolated.
pub const INCIDENT_TAG: &str = "firebreak:incident";

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

fn tags_on(kind: ResourceType, incident_id: &str) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .tags(tag(INCIDENT_TAG, incident_id))
        .tags(tag("firebreak:managed", "true"))
        .build()
}

/// The instance as EC2 describes it now.
struct LiveInstance {
    tags: Vec<(String, String)>,
}

async fn describe_instance(
    ec2: &aws_sdk_ec2::Client,
    instance_id: &str,
) -> Result<LiveInstance, AwsError> {
    let out = ec2
        .describe_instances()
        .instance_ids(instance_id)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("DescribeInstances", e))?;
    let inst = out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .next()
        .ok_or_else(|| {
            AwsError::local(
                "DescribeInstances",
                "InvalidInstanceID.NotFound",
                format!("no instance {instance_id}"),
            )
        })?;
    Ok(LiveInstance {
        tags: inst
            .tags()
            .iter()
            .map(|t| {
                (
                    t.key().unwrap_or_default().to_string(),
                    t.value().unwrap_or_default().to_string(),
                )
            })
            .collect(),
    })
}

/// Why a group named like Firebreak's isolation group cannot be trusted
/// to isolate, if it cannot: it must be Firebreak's (created with the
/// `firebreak:managed` tag) and allow nothing in or out. Anyone who can
/// create security groups could otherwise make a "firebreak-isolation" that
/// allows everything, and isolation would end open.
fn untrustworthy(g: &aws_sdk_ec2::types::SecurityGroup) -> Option<String> {
    let id = g.group_id().unwrap_or_default();
    let managed = g
        .tags()
        .iter()
        .any(|t| t.key() == Some("firebreak:managed") && t.value() == Some("true"));
    if !managed {
        return Some(format!(
            "security group {id} is named {ISOLATION_GROUP} but is not Firebreak's (no firebreak:managed tag)"
        ));
    }
    let rules = g.ip_permissions().len() + g.ip_permissions_egress().len();
    (rules > 0).then(|| {
        format!("security group {id} ({ISOLATION_GROUP}) has {rules} rule(s): it must allow nothing; remove them")
    })
}

/// Firebreak's groups in every VPC, read at once.
#[derive(Debug, Default)]
struct ManagedGroups {
    /// (VPC, name) → id.
    ids: BTreeMap<(String, String), String>,
    /// VPC → why the group named like the isolation group there cannot be
    /// used (see [`untrustworthy`]).
    untrusted: BTreeMap<String, String>,
}

/// Firebreak's groups in every VPC, read at once.
async fn managed_groups(ec2: &aws_sdk_ec2::Client) -> Result<ManagedGroups, AwsError> {
    let found = ec2
        .describe_security_groups()
        .filters(
            Filter::builder()
                .name("group-name")
                .values(ISOLATION_GROUP)
                .values(UNTRACK_GROUP)
                .build(),
        )
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("DescribeSecurityGroups", e))?;
    let mut out = ManagedGroups::default();
    for g in found.security_groups() {
        let (Some(vpc), Some(name), Some(id)) = (g.vpc_id(), g.group_name(), g.group_id()) else {
            continue;
        };
        if name == ISOLATION_GROUP {
            if let Some(why) = untrustworthy(g) {
                out.untrusted.insert(vpc.to_string(), why);
                continue;
            }
        }
        out.ids
            .insert((vpc.to_string(), name.to_string()), id.to_string());
    }
    Ok(out)
}

/// The group named `name` in `vpc`: `known` if it was read already, else
/// created (once per VPC). A concurrent creator is handled by reading again
/// on `InvalidGroup.Duplicate`. Returns the calls it made.
async fn managed_group(
    ec2: &aws_sdk_ec2::Client,
    vpc: &str,
    name: &str,
    known: Option<&String>,
) -> Result<(String, Vec<String>), AwsError> {
    if let Some(id) = known {
        return Ok((id.clone(), Vec::new()));
    }
    let mut calls = Vec::new();
    for round in 0..2 {
        if round > 0 {
            let found = ec2
                .describe_security_groups()
                .filters(Filter::builder().name("vpc-id").values(vpc).build())
                .filters(Filter::builder().name("group-name").values(name).build())
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("DescribeSecurityGroups", e))?;
            calls.push("DescribeSecurityGroups".into());
            if let Some(id) = found.security_groups().first().and_then(|g| g.group_id()) {
                return Ok((id.to_string(), calls));
            }
        }
        let description = if name == ISOLATION_GROUP {
            "Firebreak isolation: no traffic in or out"
        } else {
            "Firebreak: allows all so tracked connections become untracked before isolation"
        };
        let created = ec2
            .create_security_group()
            .vpc_id(vpc)
            .group_name(name)
            .description(description)
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::SecurityGroup)
                    .tags(tag("firebreak:managed", "true"))
                    .build(),
            )
            .send()
            .await;
        let id = match created {
            Ok(o) => o.group_id().unwrap_or_default().to_string(),
            Err(e) => {
                let err = AwsError::from_sdk("CreateSecurityGroup", e);
                if err.is("InvalidGroup.Duplicate") {
                    continue;
                }
                return Err(err);
            }
        };
        calls.push("CreateSecurityGroup".into());
        let all_v4 = IpRange::builder().cidr_ip("0.0.0.0/0").build();
        let all_v6 = Ipv6Range::builder().cidr_ipv6("::/0").build();
        if name == ISOLATION_GROUP {
            // A new group allows all egress by default (IPv4, and IPv6 too
            // in a dual-stack VPC); isolation allows nothing. Outside a
            // default VPC, revoking a rule that is not there is an error,
            // so each goes on its own and "not found" is what we want.
            let revoke = |perm: IpPermission| {
                ec2.revoke_security_group_egress()
                    .group_id(&id)
                    .ip_permissions(perm)
                    .send()
            };
            let v4 = IpPermission::builder()
                .ip_protocol("-1")
                .ip_ranges(all_v4)
                .build();
            let v6 = IpPermission::builder()
                .ip_protocol("-1")
                .ipv6_ranges(all_v6)
                .build();
            let (a, b) = tokio::join!(revoke(v4), revoke(v6));
            for r in [a.map(|_| ()), b.map(|_| ())] {
                if let Err(e) = r {
                    let err = AwsError::from_sdk("RevokeSecurityGroupEgress", e);
                    if !err.is("InvalidPermission.NotFound") {
                        return Err(err);
                    }
                }
            }
            calls.push("RevokeSecurityGroupEgress".into());
            calls.push("RevokeSecurityGroupEgress".into());
        } else {
            let ingress = ec2
                .authorize_security_group_ingress()
                .group_id(&id)
                .ip_permissions(
                    IpPermission::builder()
                        .ip_protocol("-1")
                        .ip_ranges(all_v4)
                        .ipv6_ranges(all_v6.clone())
                        .build(),
                )
                .send();
            let egress = ec2
                .authorize_security_group_egress()
                .group_id(&id)
                .ip_permissions(
                    IpPermission::builder()
                        .ip_protocol("-1")
                        .ipv6_ranges(all_v6)
                        .build(),
                )
                .send();
            let (i, e) = tokio::join!(ingress, egress);
            i.map_err(|e| AwsError::from_sdk("AuthorizeSecurityGroupIngress", e))?;
            e.map_err(|e| AwsError::from_sdk("AuthorizeSecurityGroupEgress", e))?;
            calls.push("AuthorizeSecurityGroupIngress".into());
            calls.push("AuthorizeSecurityGroupEgress".into());
        }
        return Ok((id, calls));
    }
    Err(AwsError::local(
        "CreateSecurityGroup",
        "InvalidGroup.Duplicate",
        format!("group {name} in {vpc} exists but cannot be read"),
    ))
}

fn attached_to(instance_id: &str) -> Filter {
    Filter::builder()
        .name("attachment.instance-id")
        .values(instance_id)
        .build()
}

/// One ENI of an instance as EC2 describes it now.
struct LiveEni {
    id: String,
    vpc: String,
    groups: Vec<String>,
}

async fn enis_of(ec2: &aws_sdk_ec2::Client, instance_id: &str) -> Result<Vec<LiveEni>, AwsError> {
    let out = ec2
        .describe_network_interfaces()
        .filters(attached_to(instance_id))
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("DescribeNetworkInterfaces", e))?;
    Ok(out
        .network_interfaces()
        .iter()
        .map(|n| LiveEni {
            id: n.network_interface_id().unwrap_or_default().to_string(),
            vpc: n.vpc_id().unwrap_or_default().to_string(),
            groups: n
                .groups()
                .iter()
                .filter_map(|g| g.group_id().map(str::to_string))
                .collect(),
        })
        .collect())
}

async fn set_groups(
    ec2: &aws_sdk_ec2::Client,
    eni: &str,
    groups: &[String],
) -> Result<(), AwsError> {
    ec2.modify_network_interface_attribute()
        .network_interface_id(eni)
        .set_groups(Some(groups.to_vec()))
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("ModifyNetworkInterfaceAttribute", e))?;
    Ok(())
}

/// Moves one ENI through the allow-all group (its tracked connections
/// become untracked) into the isolation group, and never leaves it in the
/// allow-all one: that group lets anything in, so a compromised instance
/// with a public address would be open to the world until a retry. A move
/// that fails (after the SDK's own retries) is tried once more at once;
/// then the ENI is put back in its original groups and the failure says
/// so. Only if that fails too is it left where it is, and the error says
/// exactly how to close it by hand.
async fn untrack_then_isolate(
    ec2: &aws_sdk_ec2::Client,
    eni: &LiveEni,
    untrack: &str,
    isolation: &str,
) -> Result<(), AwsError> {
    let failed = match set_groups(ec2, &eni.id, &[untrack.to_string()]).await {
        // The first move may have happened with its answer lost: the ENI's
        // groups are not known, so it is put back as for any failure.
        Err(e) => e,
        Ok(()) => match set_groups(ec2, &eni.id, &[isolation.to_string()]).await {
            Ok(()) => return Ok(()),
            Err(_) => match set_groups(ec2, &eni.id, &[isolation.to_string()]).await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            },
        },
    };
    let back = if eni.groups.is_empty() {
        Err(AwsError::local(
            "ModifyNetworkInterfaceAttribute",
            "NoOriginalGroups",
            "its original groups are not known",
        ))
    } else {
        match set_groups(ec2, &eni.id, &eni.groups).await {
            Ok(()) => Ok(()),
            Err(_) => set_groups(ec2, &eni.id, &eni.groups).await,
        }
    };
    let eni_id = &eni.id;
    let message = match back {
        Ok(()) => format!(
            "{}; {eni_id} was put back in its original groups ({}): not isolated, never left open",
            failed.message,
            eni.groups.join(", ")
        ),
        Err(e) => {
            tracing::error!(eni = %eni_id, group = %untrack, code = failed.code.as_deref().unwrap_or("-"), "isolation left an interface in the allow-all group");
            format!(
                "{}; putting {eni_id} back in its groups failed too ({e}): it may be in {UNTRACK_GROUP} ({untrack}), which allows all traffic. Close it now: aws ec2 modify-network-interface-attribute --network-interface-id {eni_id} --groups {isolation}",
                failed.message
            )
        }
    };
    Err(AwsError { message, ..failed })
}

async fn termination_protection(
    ec2: &aws_sdk_ec2::Client,
    instance_id: &str,
) -> Result<bool, AwsError> {
    let out = ec2
        .describe_instance_attribute()
        .instance_id(instance_id)
        .attribute(InstanceAttributeName::DisableApiTermination)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("DescribeInstanceAttribute", e))?;
    Ok(out
        .disable_api_termination()
        .and_then(|v| v.value())
        .unwrap_or(false))
}

async fn set_termination_protection(
    ec2: &aws_sdk_ec2::Client,
    instance_id: &str,
    on: bool,
) -> Result<(), AwsError> {
    ec2.modify_instance_attribute()
        .instance_id(instance_id)
        .disable_api_termination(AttributeBooleanValue::builder().value(on).build())
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("ModifyInstanceAttribute", e))?;
    Ok(())
}

/// Isolates an instance: per ENI, records its security groups, moves it to
/// the VPC's allow-all group and then to the VPC's empty isolation group;
/// tags the instance with the incident and turns on termination protection
/// (so the evidence is not thrown away). An instance that now carries the
/// protected tag is refused, whatever the signal said.
///
/// Round trips: the four reads go out at once (and alongside the claim);
/// after the gate, the groups (only the first time in a VPC), the tag and
/// termination protection at once, then the two moves of each ENI (all ENIs
/// at once).
pub async fn isolate_instance(
    ec2: &aws_sdk_ec2::Client,
    instance_id: &str,
    incident_id: &str,
    protected_tag: &str,
    gate: &Gate<'_>,
) -> Result<Step, AwsError> {
    let (live, enis, protected_before, groups) = tokio::try_join!(
        describe_instance(ec2, instance_id),
        enis_of(ec2, instance_id),
        termination_protection(ec2, instance_id),
        managed_groups(ec2),
    )?;
    let mut calls: Vec<String> = [
        "DescribeInstances",
        "DescribeNetworkInterfaces",
        "DescribeInstanceAttribute",
        "DescribeSecurityGroups",
    ]
    .map(String::from)
    .to_vec();
    if live.tags.iter().any(|(k, _)| k == protected_tag) {
        return Ok(Step::refused(
            format!("instance {instance_id} carries the protected tag `{protected_tag}`"),
            calls,
        ));
    }
    if enis.is_empty() {
        return Err(AwsError::local(
            "DescribeNetworkInterfaces",
            "NoNetworkInterface",
            format!("instance {instance_id} has no network interface to isolate"),
        ));
    }
    // Never isolate into a group that would not isolate: refused before
    // anything changes.
    if let Some((vpc, why)) = enis
        .iter()
        .find_map(|e| groups.untrusted.get_key_value(&e.vpc))
    {
        return Err(AwsError::local(
            "DescribeSecurityGroups",
            "UntrustedIsolationGroup",
            format!("{why}; nothing was isolated in {vpc}"),
        ));
    }
    let known = |vpc: &str, name: &str| groups.ids.get(&(vpc.to_string(), name.to_string()));
    // Ours once it holds the isolation group. (In AWS the ENI then holds
    // nothing else; moto reports the instance's groups alongside.)
    let isolated =
        |e: &LiveEni| known(&e.vpc, ISOLATION_GROUP).is_some_and(|g| e.groups.contains(g));
    let to_move: Vec<&LiveEni> = enis.iter().filter(|e| !isolated(e)).collect();
    let tagged = live
        .tags
        .iter()
        .any(|(k, v)| k == INCIDENT_TAG && v == incident_id);
    let already = to_move.is_empty() && tagged && protected_before;
    if !already {
        gate.pass().await?;
    }
    let tagging = async {
        if tagged {
            return Ok(Vec::new());
        }
        ec2.create_tags()
            .resources(instance_id)
            .tags(tag(INCIDENT_TAG, incident_id))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("CreateTags", e))?;
        Ok(vec!["CreateTags".to_string()])
    };
    let protecting = async {
        if protected_before {
            return Ok(Vec::new());
        }
        set_termination_protection(ec2, instance_id, true).await?;
        Ok(vec!["ModifyInstanceAttribute".to_string()])
    };
    let moving = join_all(to_move.iter().map(|eni| async {
        let ((isolation, mut made), (untrack, more)) = tokio::try_join!(
            managed_group(ec2, &eni.vpc, ISOLATION_GROUP, known(&eni.vpc, ISOLATION_GROUP)),
            managed_group(ec2, &eni.vpc, UNTRACK_GROUP, known(&eni.vpc, UNTRACK_GROUP)),
        )?;
        made.extend(more);
        untrack_then_isolate(ec2, eni, &untrack, &isolation).await?;
        made.push("ModifyNetworkInterfaceAttribute".into());
        made.push("ModifyNetworkInterfaceAttribute".into());
        let rec = json!({ "network_interface_id": eni.id, "vpc_id": eni.vpc, "groups": eni.groups, "isolation_group": isolation });
        Ok::<_, AwsError>((rec, made))
    }));
    let (tag_calls, protect_calls, moved) = tokio::join!(tagging, protecting, moving);
    let mut recorded = Vec::new();
    for eni in enis.iter().filter(|e| isolated(e)) {
        let isolation = known(&eni.vpc, ISOLATION_GROUP);
        recorded.push(json!({ "network_interface_id": eni.id, "vpc_id": eni.vpc, "isolation_group": isolation, "already_isolated": true }));
    }
    for m in moved {
        let (rec, made) = m?;
        recorded.push(rec);
        calls.extend(made);
    }
    calls.extend(tag_calls?);
    calls.extend(protect_calls?);
    let detail = if already {
        format!("instance {instance_id} was already isolated")
    } else {
        format!(
            "instance {instance_id} isolated ({} network interface(s)), tagged, termination protection on",
            enis.len()
        )
    };
    Ok(Step::new(
        already,
        detail,
        json!({
            "instance_id": instance_id,
            "network_interfaces": recorded,
            "termination_protection": protected_before,
        }),
        calls,
    ))
}

/// Undo of an isolation, from its recorded prior state: each ENI still in
/// the isolation group gets its original groups back; termination protection
/// goes back to what it was. An ENI someone has moved since is left alone.
pub async fn restore_instance(
    ec2: &aws_sdk_ec2::Client,
    prior: &serde_json::Value,
) -> Result<Step, AwsError> {
    let instance_id = prior["instance_id"].as_str().unwrap_or_default();
    let live = enis_of(ec2, instance_id).await?;
    let mut calls = vec!["DescribeNetworkInterfaces".to_string()];
    let mut restored = 0;
    let empty = Vec::new();
    for rec in prior["network_interfaces"].as_array().unwrap_or(&empty) {
        let (Some(id), Some(isolation), Some(groups)) = (
            rec["network_interface_id"].as_str(),
            rec["isolation_group"].as_str(),
            rec["groups"].as_array(),
        ) else {
            continue;
        };
        let original: Vec<String> = groups
            .iter()
            .filter_map(|g| g.as_str().map(str::to_string))
            .collect();
        // Still as we left it: the isolation group and nothing but the
        // original groups (moto lists those beside it; AWS does not). A group
        // someone added since means a human took over: leave it alone.
        let still_isolated = live.iter().any(|e| {
            e.id == id
                && e.groups.iter().any(|g| g == isolation)
                && e.groups
                    .iter()
                    .all(|g| g == isolation || original.contains(g))
        });
        if still_isolated && !original.is_empty() {
            set_groups(ec2, id, &original).await?;
            calls.push("ModifyNetworkInterfaceAttribute".into());
            restored += 1;
        }
    }
    if prior["termination_protection"] == json!(false) {
        set_termination_protection(ec2, instance_id, false).await?;
        calls.push("ModifyInstanceAttribute".into());
    }
    Ok(Step::new(
        restored == 0,
        format!(
            "instance {instance_id}: {restored} network interface(s) back in their original groups"
        ),
        prior.clone(),
        calls,
    ))
}

/// The snapshots tagged with the incident (of `volume` only, if given).
async fn incident_snapshots(
    ec2: &aws_sdk_ec2::Client,
    incident_id: &str,
    volume: Option<&str>,
) -> Result<Vec<aws_sdk_ec2::types::Snapshot>, AwsError> {
    let mut filters = vec![Filter::builder()
        .name(format!("tag:{INCIDENT_TAG}"))
        .values(incident_id)
        .build()];
    if let Some(v) = volume {
        filters.push(Filter::builder().name("volume-id").values(v).build());
    }
    let found = ec2
        .describe_snapshots()
        .owner_ids("self")
        .set_filters(Some(filters))
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("DescribeSnapshots", e))?;
    Ok(found.snapshots.unwrap_or_default())
}

/// How many times [`create_snapshot`] sends CreateSnapshot.
const SNAPSHOT_ATTEMPTS: u32 = 4;

/// One snapshot of `vol`, tagged with the incident. CreateSnapshot takes no
/// client token: when its answer is lost (a reset, a timeout) the snapshot
/// may exist all the same, and the SDK's blind retry would make a second
/// one. So it is sent without the SDK's retries, and after a retryable
/// failure the incident's snapshot of `vol` is looked for before sending it
/// again.
async fn create_snapshot(
    ec2: &aws_sdk_ec2::Client,
    instance_id: &str,
    vol: &str,
    incident_id: &str,
) -> Result<(Option<String>, Vec<String>), AwsError> {
    let mut calls = Vec::new();
    let once = aws_sdk_ec2::config::Builder::default()
        .retry_config(aws_config::retry::RetryConfig::disabled());
    let mut pause = std::time::Duration::from_millis(200);
    let mut attempt = 1;
    loop {
        calls.push("CreateSnapshot".into());
        let sent = ec2
            .create_snapshot()
            .volume_id(vol)
            .description(format!("Firebreak {incident_id}: {instance_id} {vol}"))
            .tag_specifications(tags_on(ResourceType::Snapshot, incident_id))
            .customize()
            .config_override(once.clone())
            .send()
            .await;
        let err = match sent {
            Ok(snap) => return Ok((snap.snapshot_id, calls)),
            Err(e) => AwsError::from_sdk("CreateSnapshot", e),
        };
        if !err.retryable || attempt >= SNAPSHOT_ATTEMPTS {
            return Err(err);
        }
        tokio::time::sleep(pause).await;
        pause *= 2;
        attempt += 1;
        calls.push("DescribeSnapshots".into());
        let found = incident_snapshots(ec2, incident_id, Some(vol)).await?;
        if let Some(s) = found.first() {
            // The lost answer's snapshot: it is the one we asked for.
            return Ok((s.snapshot_id.clone(), calls));
        }
    }
}

/// A snapshot of every EBS volume attached to the instance, tagged with the
/// incident. Volumes that already have this incident's snapshot are skipped.
/// The two reads go out at once, then every snapshot at once.
pub async fn snapshot_volumes(
    ec2: &aws_sdk_ec2::Client,
    instance_id: &str,
    incident_id: &str,
    gate: &Gate<'_>,
) -> Result<Step, AwsError> {
    let volumes = async {
        ec2.describe_volumes()
            .filters(attached_to(instance_id))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("DescribeVolumes", e))
    };
    let (volumes, existing) =
        tokio::try_join!(volumes, incident_snapshots(ec2, incident_id, None))?;
    let mut calls = vec![
        "DescribeVolumes".to_string(),
        "DescribeSnapshots".to_string(),
    ];
    let vols: Vec<&str> = volumes
        .volumes()
        .iter()
        .filter_map(|v| v.volume_id())
        .collect();
    if vols.is_empty() {
        return Ok(Step::refused(
            format!("instance {instance_id} has no EBS volume attached"),
            calls,
        ));
    }
    let had = |vol: &str| existing.iter().find(|s| s.volume_id() == Some(vol));
    let to_make: Vec<&str> = vols.iter().copied().filter(|v| had(v).is_none()).collect();
    if !to_make.is_empty() {
        gate.pass().await?;
    }
    let made = join_all(
        to_make
            .iter()
            .map(|vol| create_snapshot(ec2, instance_id, vol, incident_id)),
    )
    .await;
    let mut new_ids = BTreeMap::new();
    for (vol, m) in to_make.iter().zip(made) {
        let (id, more) = m?;
        calls.extend(more);
        new_ids.insert(*vol, id);
    }
    let snapshots: Vec<serde_json::Value> = vols
        .iter()
        .map(|vol| match had(vol) {
            Some(s) => json!({ "volume_id": vol, "snapshot_id": s.snapshot_id(), "existed": true }),
            None => json!({ "volume_id": vol, "snapshot_id": new_ids.get(vol), "existed": false }),
        })
        .collect();
    let created = to_make.len();
    Ok(Step::new(
        created == 0,
        format!(
            "{} snapshot(s) of the volumes of {instance_id} ({created} new)",
            snapshots.len()
        ),
        json!({ "instance_id": instance_id, "snapshots": snapshots }),
        calls,
    ))
}
