//! The pure decisions of a block: where it goes in one read of a NACL
//! direction, and which of Firebreak's entries make room first. No I/O, so
//! each is tested by table.

use std::collections::BTreeSet;

use aws_sdk_ec2::types::{NetworkAclEntry, RuleAction};
use ipnet::IpNet;

use super::{entry_cidr, DEFAULT_RULE};

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

pub(super) fn view(list: &[NetworkAclEntry]) -> Vec<Entry> {
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
pub(super) fn counted(entries: &[Entry]) -> usize {
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

#[cfg(test)]
mod tests;
