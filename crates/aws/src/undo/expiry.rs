//! The expirer: lifts every block whose time is up, from the block ledger,
//! where it was placed, and files a record of each lift.

use chrono::{DateTime, SecondsFormat, Utc};
use ipnet::IpNet;
use serde::Serialize;
use tracing::{info, warn};

use super::Undo;
use crate::bucket::layout;
use crate::bucket::ledger::BlockMarker;
use crate::error::AwsError;
use crate::outcome::{ErrorInfo, Status, Step};

/// One block the expirer looked at.
#[derive(Debug, Clone, Serialize)]
pub struct Expiry {
    /// The ledger marker.
    pub marker: BlockMarker,
    /// `done` (lifted), `already_done` (the entry was gone or reused) or `failed`.
    pub status: Status,
    /// What happened.
    pub detail: String,
    /// The failure, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
}

impl Expiry {
    fn failed(marker: BlockMarker, err: &AwsError) -> Expiry {
        Expiry {
            status: Status::Failed,
            detail: err.to_string(),
            error: Some(ErrorInfo::from(err)),
            marker,
        }
    }
}

/// True when the marker's block is due at `now` (a block without an
/// expiry never is).
pub(crate) fn due(marker: &BlockMarker, now: DateTime<Utc>) -> bool {
    marker
        .expires_at
        .as_deref()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .is_some_and(|t| t <= now)
}

impl Undo<'_> {
    /// Lifts every block whose time is up, from the block ledger, and files
    /// a record of each lift under `expired/dt=YYYY-MM-DD/`. Blocks without
    /// an expiry, and blocks still running, are left alone.
    pub(crate) async fn expire(&self, now: DateTime<Utc>) -> Result<Vec<Expiry>, AwsError> {
        let mut out = Vec::new();
        for (key, marker) in self.store.markers().await? {
            if !due(&marker, now) {
                continue;
            }
            let Ok(cidr) = marker.cidr.parse::<IpNet>() else {
                continue;
            };
            out.push(self.expire_one(&key, marker, cidr, now).await);
        }
        Ok(out)
    }

    /// Lifts one block where it was placed, and records the lift.
    async fn expire_one(
        &self,
        key: &str,
        marker: BlockMarker,
        cidr: IpNet,
        now: DateTime<Utc>,
    ) -> Expiry {
        let here = self
            .places
            .get(
                marker.account.as_deref(),
                marker.region.as_deref(),
                &marker.incident_id,
            )
            .await;
        let here = match here {
            Ok(here) => here,
            Err(why) => return Expiry::failed(marker, &why.into_error("ExpireBlocks")),
        };
        let at = (
            marker.network_acl_id.as_str(),
            marker.egress,
            marker.rule_number,
        );
        match self.lift(&here.clients.ec2, at, cidr).await {
            Ok(step) => {
                self.record_lift(key, &marker, &step, now).await;
                info!(nacl = %marker.network_acl_id, rule = marker.rule_number, cidr = %marker.cidr, incident_id = %marker.incident_id, "block expired");
                Expiry {
                    status: step.change.status(),
                    detail: step.detail,
                    marker,
                    error: None,
                }
            }
            Err(err) => Expiry::failed(marker, &err),
        }
    }

    /// The lift is recorded before the marker goes, so a crash in between
    /// leaves a marker the next run finds done; and it is a handling of the
    /// incident that placed the block.
    async fn record_lift(&self, key: &str, marker: &BlockMarker, step: &Step, now: DateTime<Utc>) {
        let store = self.store;
        let record = serde_json::json!({ "lifted_at": now.to_rfc3339_opts(SecondsFormat::Secs, true), "marker": marker, "detail": step.detail, "already": step.already() });
        let recorded = match store.put_new(&layout::expired_key(now, key), &record).await {
            Ok(_) => store.delete(key).await,
            Err(err) => Err(err),
        };
        let indexed = match store.find_prefix(&marker.incident_id).await {
            Ok(Some(prefix)) => store
                .put_handled(&marker.incident_id, &prefix, "block_lifted", now)
                .await
                .map(|_| ()),
            Ok(None) => Ok(()),
            Err(err) => Err(err),
        };
        if let Err(err) = indexed {
            warn!(code = err.code.as_deref().unwrap_or("-"), incident_id = %marker.incident_id, "lift not indexed by time");
        }
        if let Err(err) = recorded {
            warn!(code = err.code.as_deref().unwrap_or("-"), %key, "lift not recorded; the next run retries");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_block_is_due_when_its_expiry_has_come_and_never_without_one() {
        let at = |t: &str| DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc);
        let marker = |expires: Option<&str>| BlockMarker {
            network_acl_id: "acl-1".into(),
            egress: false,
            rule_number: 1,
            cidr: "198.51.100.7/32".into(),
            incident_id: "fb-1".into(),
            account: None,
            region: None,
            created_ms: 0,
            expires_at: expires.map(str::to_string),
        };
        let now = at("2026-11-24T12:00:00Z");
        for (expires, want) in [
            (Some("2026-11-24T11:59:59Z"), true),
            (Some("2026-11-24T12:00:00Z"), true),
            (Some("2026-11-24T12:00:01Z"), false),
            (Some("not a time"), false),
            (None, false),
        ] {
            assert_eq!(due(&marker(expires), now), want, "{expires:?}");
        }
    }
}
