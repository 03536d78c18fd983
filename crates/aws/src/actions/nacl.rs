//! Network ACL deny entries. The NACL itself is the truth: Firebreak reads
//! it, reuses an existing deny entry for the same CIDR, and allocates rule
//! numbers only inside its reserved range. A `NetworkAclEntryAlreadyExists`
//! answer means a concurrent writer took the number: read again and take
//! the next. The per-direction quota (20 entries including the default
//! rule, unless AWS raised it for the account) is planned for: when the
//! range or the quota is full, the oldest Firebreak entry (by its block
//! marker in S3) is evicted. Entries outside the range are never touched.

use std::collections::BTreeSet;

use aws_sdk_ec2::types::{Filter, NetworkAcl, NetworkAclEntry, RuleAction};
use ipnet::IpNet;
use serde_json::json;

use crate::error::AwsError;
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
