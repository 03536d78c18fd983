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

use crate::error::{AwsError, Own};
use crate::outcome::Step;
use crate::prior::{self, BlockEntry, Evicted, NaclEntry};

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

/// One entry of a NACL direction, as the decisions below need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Its rule number.
    pub rule: i32,
    /// A deny (not an allow).
    pub deny: bool,
    /// Its CIDR, if it has one Firebreak can read.
    pub cidr: Option<IpNet>,
}

fn view(list: &[NetworkAclEntry]) -> Vec<Entry> {
    list.iter()
        .filter_map(|e| {
            Some(Entry {
                rule: e.rule_number()?,
                deny: e.rule_action() == Some(&RuleAction::Deny),
                cidr: entry_cidr(e),
            })
        })
        .collect()
}

/// Where a block goes, as one read of a NACL direction says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// A deny for the CIDR is there already, at this rule.
    Exists(i32),
    /// This number is free and the quota has room.
    Free(i32),
    /// The range or the quota is full: an entry of Firebreak's must go.
    Full,
}

/// Entries counted against the quota: the default rule counts even if a
/// reader omits it.
fn counted(entries: &[Entry]) -> usize {
    entries.len() + usize::from(!entries.iter().any(|e| e.rule == DEFAULT_RULE))
}

/// Where a block of `cidr` goes in `entries` (one direction): the entry
/// that denies it already, else the lowest free number of `range` while
/// the direction holds fewer than `quota` entries, else full. Pure: the
/// slot choice, tested by table.
pub fn slot(entries: &[Entry], cidr: IpNet, range: (u16, u16), quota: usize) -> Slot {
    if let Some(e) = entries.iter().find(|e| e.deny && e.cidr == Some(cidr)) {
        return Slot::Exists(e.rule);
    }
    let used: BTreeSet<i32> = entries.iter().map(|e| e.rule).collect();
    let free = (i32::from(range.0)..=i32::from(range.1)).find(|n| !used.contains(n));
    match free {
        Some(n) if counted(entries) < quota => Slot::Free(n),
        _ => Slot::Full,
    }
}

/// Which of Firebreak's entries (those in `range`) go first when one must:
/// the ones the ledger knows, oldest first (`ages`, oldest first; a marker
/// counts only while its rule still holds its CIDR), then the ones it does
/// not know yet (most likely being placed right now by a concurrent writer
/// whose marker is not written), by rule number. Entries outside the range
/// are never candidates. Pure: the eviction order, tested by table.
pub fn eviction_order(
    entries: &[Entry],
    range: (u16, u16),
    ages: &[(i32, IpNet)],
) -> Vec<(i32, IpNet)> {
    let in_range = |n: i32| n >= i32::from(range.0) && n <= i32::from(range.1);
    let ours: BTreeSet<i32> = entries
        .iter()
        .map(|e| e.rule)
        .filter(|n| in_range(*n))
        .collect();
    let holds = |n: i32, c: IpNet| entries.iter().any(|e| e.rule == n && e.cidr == Some(c));
    let known: Vec<i32> = ages
        .iter()
        .filter(|(n, c)| ours.contains(n) && holds(*n, *c))
        .map(|(n, _)| *n)
        .collect();
    let unknown = ours.iter().copied().filter(|n| !known.contains(n));
    known
        .iter()
        .copied()
        .chain(unknown)
        .filter_map(|n| {
            let cidr = entries.iter().find(|e| e.rule == n).and_then(|e| e.cidr)?;
            Some((n, cidr))
        })
        .collect()
}

/// A block placed (or found) in one NACL.
#[derive(Debug, Clone)]
pub struct Placed {
    /// What happened, and the entry as the record keeps it.
    pub step: Step,
    /// The entry, as the record keeps it.
    pub entry: BlockEntry,
    /// The entry's rule number.
    pub rule_number: i32,
    /// The entries deleted to make room for it.
    pub evicted: Vec<Evicted>,
}

/// How a create at a chosen number went.
enum Created {
    /// The entry is there.
    Yes,
    /// A concurrent writer took the number: read again.
    Taken,
    /// AWS counts fewer free entries than the read did (its answer).
    OverQuota(AwsError),
}

/// One block being placed in one NACL direction.
struct Blocking<'a> {
    ec2: &'a aws_sdk_ec2::Client,
    nacl: &'a str,
    cidr: IpNet,
    spec: BlockSpec,
    calls: Vec<String>,
    evicted: Vec<Evicted>,
}

impl Blocking<'_> {
    fn direction(&self) -> &'static str {
        if self.spec.egress {
            "egress"
        } else {
            "ingress"
        }
    }

    fn entry(&self, rule_number: i32) -> NaclEntry {
        NaclEntry {
            network_acl_id: self.nacl.to_string(),
            egress: self.spec.egress,
            cidr: self.cidr.to_string(),
            rule_number,
        }
    }

    /// The block is there already: nothing changed, nothing to lift later.
    fn found(self, n: i32) -> Placed {
        let (cidr, direction, nacl) = (self.cidr, self.direction(), self.nacl);
        let prior = BlockEntry {
            entry: self.entry(n),
            existed: true,
            evicted: None,
        };
        Placed {
            step: Step::new(
                true,
                format!("{cidr} already denied ({direction} rule {n} of {nacl})"),
                prior::to_json(&prior),
                self.calls,
            ),
            entry: prior,
            rule_number: n,
            evicted: self.evicted,
        }
    }

    /// The block was placed at `number`.
    fn placed(self, number: i32) -> Placed {
        let (cidr, direction, nacl) = (self.cidr, self.direction(), self.nacl);
        let prior = BlockEntry {
            entry: self.entry(number),
            existed: false,
            evicted: Some(self.evicted.clone()),
        };
        Placed {
            step: Step::new(
                false,
                format!("{cidr} denied ({direction} rule {number} of {nacl})"),
                prior::to_json(&prior),
                self.calls,
            ),
            entry: prior,
            rule_number: number,
            evicted: self.evicted,
        }
    }

    /// Deletes the oldest of Firebreak's entries whose guard it gets, under
    /// that guard and only while its rule still holds what was read. `None`
    /// when none could be taken now (read again).
    async fn evict(
        &mut self,
        entries: &[Entry],
        guard: &impl VictimGuard,
        age_order: &impl AsyncFn() -> Vec<(i32, IpNet)>,
    ) -> Result<Option<(i32, IpNet)>, AwsError> {
        let range = self.spec.range;
        let in_range = |n: i32| n >= i32::from(range.0) && n <= i32::from(range.1);
        if !entries.iter().any(|e| in_range(e.rule)) {
            return Err(Own::NaclFull {
                nacl: self.nacl.to_string(),
                direction: self.direction(),
            }
            .into());
        }
        let mut chosen = None;
        for (n, c) in eviction_order(entries, range, &age_order().await) {
            if guard.take(n, c).await {
                chosen = Some((n, c));
                break;
            }
        }
        let Some((victim, net)) = chosen else {
            // Every candidate is being evicted by someone else: read again
            // once they are done.
            self.calls.push("evictions elsewhere".into());
            return Ok(None);
        };
        // Under the guard, the rule must still hold what we read.
        let now = view(&entries_of(self.ec2, self.nacl, self.spec.egress).await?);
        self.calls.push("DescribeNetworkAcls".to_string());
        if !now.iter().any(|e| e.rule == victim && e.cidr == Some(net)) {
            guard.give_back(victim, net).await;
            return Ok(None);
        }
        if !self.delete(victim, net, guard).await? {
            return Ok(None);
        }
        self.evicted.push(Evicted {
            rule_number: victim,
            cidr: net.to_string(),
        });
        Ok(Some((victim, net)))
    }

    /// Deletes the victim (its guard held). `false` when it was gone
    /// already (the expirer or a release lifted it): read again.
    async fn delete(
        &mut self,
        victim: i32,
        net: IpNet,
        guard: &impl VictimGuard,
    ) -> Result<bool, AwsError> {
        let deleted = self
            .ec2
            .delete_network_acl_entry()
            .network_acl_id(self.nacl)
            .rule_number(victim)
            .egress(self.spec.egress)
            .send()
            .await;
        if let Err(e) = deleted {
            // Gone already: read again. Anything else is a real failure.
            let err = AwsError::from_sdk("DeleteNetworkAclEntry", e);
            let now = entries_of(self.ec2, self.nacl, self.spec.egress).await;
            guard.give_back(victim, net).await;
            if now?.iter().any(|e| e.rule_number() == Some(victim)) {
                return Err(err);
            }
            self.calls.push("DeleteNetworkAclEntry (gone)".into());
            return Ok(false);
        }
        self.calls.push("DeleteNetworkAclEntry".into());
        Ok(true)
    }

    /// Creates the deny at `number`; the guard of an evicted entry it
    /// replaces is given back whatever happens.
    async fn create(
        &mut self,
        number: i32,
        guarded: Option<(i32, IpNet)>,
        guard: &impl VictimGuard,
    ) -> Result<Created, AwsError> {
        let mut req = self
            .ec2
            .create_network_acl_entry()
            .network_acl_id(self.nacl)
            .rule_number(number)
            .egress(self.spec.egress)
            .protocol("-1")
            .rule_action(RuleAction::Deny);
        req = match self.cidr {
            IpNet::V4(_) => req.cidr_block(self.cidr.to_string()),
            IpNet::V6(_) => req.ipv6_cidr_block(self.cidr.to_string()),
        };
        let created = req.send().await;
        if let Some((n, c)) = guarded {
            guard.give_back(n, c).await;
        }
        let Err(e) = created else {
            self.calls.push("CreateNetworkAclEntry".into());
            return Ok(Created::Yes);
        };
        let err = AwsError::from_sdk("CreateNetworkAclEntry", e);
        if err.is("NetworkAclEntryAlreadyExists") {
            self.calls.push("CreateNetworkAclEntry (taken)".into());
            return Ok(Created::Taken);
        }
        if err.is("NetworkAclEntryLimitExceeded") {
            return Ok(Created::OverQuota(err));
        }
        Err(err)
    }
}

/// Adds (or finds) a deny entry for `cidr` in `nacl`. `age_order` gives
/// Firebreak's markers for this NACL direction from oldest to newest; it is
/// asked only when an entry must be evicted (so the common case costs no
/// ledger read). A marker counts only if its rule number still holds its
/// CIDR. The oldest marked entry goes first; an entry in the range without
/// a marker goes only when no marked one is left (see [`eviction_order`]).
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
) -> Result<Placed, AwsError> {
    let mut b = Blocking {
        ec2,
        nacl,
        cidr,
        spec,
        calls: Vec::new(),
        evicted: Vec::new(),
    };
    let mut quota = spec.quota;
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            // Writers that collided on a number spread out before reading again.
            tokio::time::sleep(crate::jitter::spread(5, 40)).await;
        }
        // The first attempt uses the caller's read (`read`), if any.
        let list = match read.take() {
            Some(list) => list,
            None => entries_of(ec2, nacl, spec.egress).await?,
        };
        b.calls.push("DescribeNetworkAcls".to_string());
        let entries = view(&list);
        let (number, guarded) = match slot(&entries, cidr, spec.range, quota) {
            Slot::Exists(n) => return Ok(b.found(n)),
            Slot::Free(n) => (n, None),
            Slot::Full => match b.evict(&entries, guard, &age_order).await? {
                Some(victim) => (victim.0, Some(victim)),
                None => continue,
            },
        };
        match b.create(number, guarded, guard).await? {
            Created::Yes => return Ok(b.placed(number)),
            Created::Taken => {}
            // AWS counts fewer free entries than we did (a writer outside
            // our range, or a lower quota): plan with what AWS says and
            // evict.
            Created::OverQuota(_) if quota > 2 => {
                b.calls.push("CreateNetworkAclEntry (limit)".into());
                quota = counted(&entries).min(quota - 1);
            }
            Created::OverQuota(err) => return Err(err),
        }
    }
    Err(Own::TooManyCollisions {
        nacl: nacl.to_string(),
        attempts: ATTEMPTS,
    }
    .into())
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
