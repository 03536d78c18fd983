//! What the phases of one run hand each other: the run itself ([`Run`]),
//! an outcome and whether it is stored yet ([`Ran`]), and the channel an
//! action's outcomes reach the notices by ([`Early`]). A leaf of
//! `respond`: its siblings depend on it, it on none of them.

use std::sync::atomic::{AtomicBool, Ordering};

use firebreak_core::PlannedIncident;

use crate::actions::instance::InstanceReads;
use crate::bucket::claim::Claims;
use crate::outcome::ActionOutcome;

/// What every phase of one run shares.
pub(crate) struct Run<'a> {
    pub(crate) plan: &'a PlannedIncident,
    /// The incident's record prefix.
    pub(crate) prefix: String,
    /// Where its record is (`s3://…/incident.json`), with a records bucket.
    pub(crate) record_uri: Option<String>,
    /// This delivery's claims, with a records bucket.
    pub(crate) claims: Option<Claims<'a>>,
    /// Whether it acts in its place (the record says where).
    pub(crate) acted: bool,
    /// The instances its actions read, each read once for all of them.
    pub(crate) instances: InstanceReads,
}

/// An outcome and whether it is already in the records bucket.
#[derive(Debug, Clone)]
pub(crate) struct Ran {
    pub(crate) outcome: ActionOutcome,
    pub(crate) stored: bool,
}

impl Ran {
    pub(crate) fn new(outcome: ActionOutcome) -> Ran {
        Ran {
            outcome,
            stored: false,
        }
    }

    pub(crate) fn stored(outcome: ActionOutcome) -> Ran {
        Ran {
            outcome,
            stored: true,
        }
    }
}

/// Hands an action's outcomes to the notices as soon as they are known,
/// once (the caller sends the final ones if the action did not).
pub(crate) struct Early<'a> {
    pub(crate) tx: &'a tokio::sync::mpsc::UnboundedSender<Vec<Ran>>,
    pub(crate) sent: AtomicBool,
}

impl Early<'_> {
    pub(crate) fn send(&self, group: &[Ran]) {
        if !self.sent.swap(true, Ordering::SeqCst) {
            // The receiver lives as long as the run: a send cannot fail.
            let _ = self.tx.send(group.to_vec());
        }
    }
}
