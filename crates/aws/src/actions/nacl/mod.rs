//! Network ACL deny entries. The NACL itself is the truth: Firebreak reads
//! it, reuses an existing deny entry for the same CIDR, and allocates rule
//! numbers only inside its reserved range. A `NetworkAclEntryAlreadyExists`
//! answer means a concurrent writer took the number: read again and take
//! the next. The per-direction quota (20 entries including the default
//! rule, unless AWS raised it for the account) is planned for: when the
//! range or the quota is full, the oldest Firebreak entry (by its block
//! marker in S3) is evicted. Entries outside the range are never touched.

use aws_sdk_ec2::types::{Filter, NetworkAcl, NetworkAclEntry, RuleAction};
use ipnet::IpNet;

mod place;
mod slot;

pub use place::{block_ip, Placed};
pub use slot::{eviction_order, slot, Entry, Slot};

use crate::error::{AwsError, Own};
use crate::outcome::Step;
use crate::prior::{self, NaclEntry};

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
        return Err(Own::NoNetworkAcl {
            asked: asked.join(", "),
        }
        .into());
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

/// One entry of a NACL, wherever it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclEntry {
    /// The NACL.
    pub nacl: String,
    /// Outbound.
    pub egress: bool,
    /// Its rule number.
    pub rule: i32,
    /// Its CIDR.
    pub cidr: IpNet,
}

/// Every entry of these NACLs.
pub async fn all_entries(
    ec2: &aws_sdk_ec2::Client,
    nacls: &[String],
) -> Result<Vec<AclEntry>, AwsError> {
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
                    out.push(AclEntry {
                        nacl: id.to_string(),
                        egress: e.egress() == Some(true),
                        rule,
                        cidr,
                    });
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
async fn entries_of(
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
        AwsError::from(Own::NaclNotFound {
            nacl: nacl.to_string(),
        })
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
    let list = entries_of(ec2, nacl, egress).await?;
    let mut calls = vec!["DescribeNetworkAcls".to_string()];
    let prior = prior::to_json(&NaclEntry {
        network_acl_id: nacl.to_string(),
        egress,
        cidr: cidr.to_string(),
        rule_number,
    });
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
