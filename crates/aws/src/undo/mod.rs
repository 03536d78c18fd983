//! Undo, the second use case: a responder's release of an earlier incident
//! from its record (`release`), and the expirer's lift of blocks whose time
//! is up (`expiry`). Both lift a deny entry the same way: under the entry's
//! eviction lock, and only while its rule still holds the CIDR ([`Undo::lift`]).
//!
//! Undo acts where the undone action acted (the record and the ledger say
//! which account and region), reads the prior state each action recorded
//! as its type ([`crate::prior`]), and never needs a claim: a release is a
//! responder's one-off request, and lifting what is gone already is a
//! no-op.

mod expiry;
mod release;

use std::time::Duration;

use firebreak_core::Config;
use ipnet::IpNet;

pub use expiry::Expiry;

use crate::actions::nacl;
use crate::bucket::layout;
use crate::bucket::lock::{self, Lock};
use crate::bucket::RecordStore;
use crate::error::AwsError;
use crate::outcome::Step;
use crate::place::Places;
use crate::progress::Progress;

/// What undo needs of an executor: the records, the places it reaches, how
/// long to wait for a lock, and where to report progress.
#[derive(Debug)]
pub(crate) struct Undo<'a> {
    store: &'a RecordStore,
    places: &'a Places,
    wait: Duration,
    progress: &'a Progress,
    /// A release notes itself on the released incident's Security Hub
    /// finding (`FIREBREAK_SECURITYHUB_WRITEBACK`).
    writeback: bool,
}

impl<'a> Undo<'a> {
    /// Undo over these records and places, waiting for locks as `cfg` says.
    pub(crate) fn new(
        store: &'a RecordStore,
        places: &'a Places,
        cfg: &Config,
        progress: &'a Progress,
    ) -> Undo<'a> {
        Undo {
            store,
            places,
            wait: Duration::from_secs(u64::from(cfg.claim_wait_seconds)),
            progress,
            writeback: cfg.securityhub_writeback,
        }
    }

    /// Lifts one deny entry: under the lock an evictor takes too (so the
    /// two never delete each other's entries), and only while the rule
    /// still holds `cidr` (a later block may have taken the number).
    async fn lift(
        &self,
        ec2: &aws_sdk_ec2::Client,
        entry: (&str, bool, i32),
        cidr: IpNet,
    ) -> Result<Step, AwsError> {
        let (nacl_id, egress, rule) = entry;
        let lock = Lock::take(
            self.store,
            &layout::victim_key(nacl_id, egress, rule, cidr),
            lock::VICTIM_LOCK_SECONDS,
            self.wait,
        )
        .await?;
        let lifted = nacl::unblock(ec2, nacl_id, egress, rule, cidr).await;
        lock.release().await;
        lifted
    }
}
