//! Placing one block in one NACL direction: the slot the read allows, an
//! eviction when full (under the victim's guard), the create, and a read
//! again when a concurrent writer got there first.

use aws_sdk_ec2::types::{NetworkAclEntry, RuleAction};
use ipnet::IpNet;

use super::slot::{counted, eviction_order, slot, view, Entry, Slot};
use super::{entries_of, BlockSpec, VictimGuard, ATTEMPTS};
use crate::error::{AwsError, Own};
use crate::outcome::Step;
use crate::prior::{self, BlockEntry, Evicted, NaclEntry};

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
