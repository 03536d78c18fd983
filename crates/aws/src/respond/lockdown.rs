//! The emergency lockdown's actions, each checked once more where it acts:
//! a target the plan could not place (the command named no account or
//! region) is refused when its ARN says it is elsewhere, and the protected
//! tag is read live by each action before its change.
//!
//! The evidence copy runs with the credentials of the account the lockdown
//! acts in (a member account's bucket is that account's to read), into the
//! evidence bucket in Firebreak's home region. The records bucket takes
//! writes from Firebreak's own roles alone, so a lockdown in a member
//! account copies only into `FIREBREAK_EVIDENCE_BUCKET`, a bucket that
//! account's Firebreak role may write.

use firebreak_core::lockdown::{self as targets, split_evidence, split_service};
use firebreak_core::{Action, ActionKind};

use super::Executor;
use crate::actions::evidence::{self, Bounds, Destination, Source};
use crate::actions::{ecs, elb, secrets};
use crate::error::{AwsError, Own};
use crate::gate::Gate;
use crate::outcome::Step;
use crate::place::Purpose;

fn invalid(a: &Action, what: &str) -> AwsError {
    Own::InvalidPlan {
        operation: "Execute",
        what: format!("{} {}: {what}", a.kind.as_str(), a.target),
    }
    .into()
}

impl Executor {
    /// One lockdown action.
    pub(super) async fn lockdown(
        &self,
        incident_id: &str,
        a: &Action,
        gate: &Gate<'_>,
    ) -> Result<Step, AwsError> {
        let tag = self.cfg.protected_tag.as_str();
        if let Some(why) = self.elsewhere(a) {
            return Ok(Step::refused(why, Vec::new()));
        }
        match a.kind {
            ActionKind::ScaleServiceToZero => {
                let Some(service) = split_service(&a.target) else {
                    return Err(invalid(a, "not cluster/service"));
                };
                ecs::scale_to_zero(&self.clients.ecs, service, tag, gate).await
            }
            ActionKind::ServeMaintenanceResponse => {
                elb::serve_maintenance(&self.clients.elb, &a.target, tag, gate).await
            }
            ActionKind::RotateSecret => {
                let secrets = &self.clients.secrets;
                secrets::rotate_secret(secrets, &a.target, incident_id, tag, gate).await
            }
            ActionKind::CopyEvidence => self.copy_evidence(incident_id, a, gate).await,
            _ => Err(invalid(a, "not a lockdown action")),
        }
    }

    /// Why an ARN target is not where this executor acts, if it is not.
    fn elsewhere(&self, a: &Action) -> Option<String> {
        let arn = match a.kind {
            ActionKind::ServeMaintenanceResponse | ActionKind::RotateSecret => {
                targets::arn(&a.target)?
            }
            _ => return None,
        };
        let region = Some(self.region.as_str()).filter(|r| !r.is_empty());
        targets::elsewhere(&arn, Some(&self.account), region)
    }

    /// The evidence copy: read with this place's S3, written with the same
    /// credentials in the evidence bucket's (the home) region.
    async fn copy_evidence(
        &self,
        incident_id: &str,
        a: &Action,
        gate: &Gate<'_>,
    ) -> Result<Step, AwsError> {
        let Some((bucket, prefix)) = split_evidence(&a.target) else {
            return Err(invalid(a, "not bucket/prefix"));
        };
        let home = self.places.home();
        let into = match (&self.cfg.evidence_bucket, &self.cfg.records_bucket) {
            (Some(b), _) => b.as_str(),
            (None, Some(_)) if self.account != home.account => {
                return Ok(Step::refused(
                    format!("the lockdown acts in account {}, whose Firebreak role the records bucket does not accept: set FIREBREAK_EVIDENCE_BUCKET to a bucket that role may write", self.account),
                    Vec::new(),
                ));
            }
            (None, Some(b)) => b.as_str(),
            (None, None) => {
                return Err(Own::NoRecords {
                    operation: "CopyObject",
                    consequence: "no evidence bucket to copy into (nor FIREBREAK_EVIDENCE_BUCKET)",
                }
                .into())
            }
        };
        let reach = |region: String| async move {
            self.places
                .get_for(
                    Purpose::Lockdown,
                    Some(&self.account),
                    Some(&region),
                    incident_id,
                )
                .await
                .map_err(|why| why.into_error("CopyObject"))
        };
        let (here, there) =
            tokio::try_join!(reach(self.region.clone()), reach(home.region.clone()))?;
        let from = Source {
            s3: &here.clients.s3,
            bucket,
            prefix,
        };
        let to = Destination {
            s3: &there.clients.s3,
            bucket: into,
            prefix: format!("evidence/{incident_id}/{bucket}/"),
            incident_id,
            // The records' KMS key for copies into the records bucket; an
            // EvidenceBucket (possibly written from a member account, whose
            // role has no grant on that key) keeps them with SSE-S3.
            kms_key_id: self
                .cfg
                .records_kms_key_id
                .as_deref()
                .filter(|_| self.cfg.evidence_bucket.is_none()),
        };
        let bounds = Bounds {
            max_objects: self.cfg.evidence_max_objects,
            max_bytes: self.cfg.evidence_max_bytes,
        };
        evidence::copy_evidence(&from, &to, bounds, &self.progress, gate).await
    }
}
