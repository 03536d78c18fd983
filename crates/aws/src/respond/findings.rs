//! The Security Hub write-back, the phase after the notices: once every
//! action has ended, the finding the incident came from is told how, once
//! per way containment can end — under a claim named, like the notices',
//! by the fingerprint of that ending. A replay that changed nothing writes
//! nothing (its claim is finished); a retry that finished what failed
//! writes one more note. Firebreak's own update comes back as another
//! "Imported" event for the same finding: the same incident, a replay.

use firebreak_core::policy::SecurityHubFinding;
use firebreak_core::{Action, ActionKind};
use futures_util::future::join_all;

use super::action::Once;
use super::notices::Ending;
use super::state::{Ran, Run};
use super::{outcome, param, Executor};
use crate::actions::securityhub;
use crate::bucket::layout;
use crate::outcome::{ActionOutcome, Status};

impl Executor {
    /// Every `update_finding` of the plan, at once; each outcome is kept.
    pub(super) async fn write_back(
        &self,
        run: &Run<'_>,
        outcomes: &mut [Option<Ran>],
        extra: &[ActionOutcome],
    ) {
        let plan = run.plan;
        let wanted: Vec<(usize, &Action)> = plan
            .actions
            .iter()
            .enumerate()
            .filter(|(_, a)| a.kind == ActionKind::UpdateFinding)
            .collect();
        if wanted.is_empty() {
            return;
        }
        // Every outcome so far, the notices' included.
        let ended = Ending::of(plan, outcomes, extra);
        let writes = wanted
            .into_iter()
            .map(|(index, a)| Box::pin(self.update_finding(run, (index, a), &ended)));
        for (index, r) in join_all(writes).await {
            outcomes[index] = Some(r);
        }
    }

    /// One finding's write-back, its outcome kept in the records bucket.
    async fn update_finding(
        &self,
        run: &Run<'_>,
        (index, a): (usize, &Action),
        ended: &Ending,
    ) -> (usize, Ran) {
        let r = self.write_once(run, (index, a), ended).await;
        if !r.stored {
            let one = std::slice::from_ref(&r.outcome);
            self.keep(&run.prefix, one, &run.plan.incident.id).await;
        }
        (index, Ran::stored(r.outcome))
    }

    /// Writes back once per ending of containment, or says why not.
    async fn write_once(&self, run: &Run<'_>, (index, a): (usize, &Action), ended: &Ending) -> Ran {
        if ended.waiting {
            let why = "another delivery holds a claim on this incident; it writes back";
            return Ran::new(outcome(index, a, Status::Skipped, why));
        }
        let product_arn = match param(a, "product ARN", a.params.product_arn.as_deref()) {
            Ok(p) => p,
            Err(e) => return Ran::new(super::failed(index, a, &e)),
        };
        let finding = SecurityHubFinding {
            id: a.target.clone(),
            product_arn: product_arn.to_string(),
        };
        let text = securityhub::note(run.plan, &ended.so_far, run.record_uri.as_deref());
        let name = format!(
            "{}-{}",
            layout::action_name(a.kind, &a.target),
            ended.fingerprint
        );
        let once = Once {
            claims: run.claims.as_ref(),
            prefix: &run.prefix,
            name: &name,
            index,
            action: a,
            ahead: None,
            verb: "written",
        };
        let client = &self.clients.securityhub;
        // Boxed: the SDK's futures are large in a debug build.
        let write = Box::pin(securityhub::write_back(client, &finding, &text));
        Box::pin(self.once(once, async || write.await)).await
    }
}
