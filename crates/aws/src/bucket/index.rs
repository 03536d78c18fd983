//! Finding an incident's record: from its id alone (a responder's release
//! names only the id), and by when Firebreak handled it (the listing).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::layout;
use super::{RecordStore, Written};
use crate::error::AwsError;

impl RecordStore {
    /// Writes the index entry for an incident (once).
    pub async fn put_index(&self, incident_id: &str, prefix: &str) -> Result<Written, AwsError> {
        self.put_new(
            &layout::index_key(incident_id),
            &serde_json::json!({ "incident_id": incident_id, "prefix": prefix }),
        )
        .await
    }

    /// The prefix of an earlier incident's record, if it was recorded here.
    pub async fn find_prefix(&self, incident_id: &str) -> Result<Option<String>, AwsError> {
        let v: Option<serde_json::Value> = self.get_json(&layout::index_key(incident_id)).await?;
        Ok(v.and_then(|v| v["prefix"].as_str().map(str::to_string)))
    }

    /// Notes in the handling-time index that Firebreak handled an incident
    /// (recorded it, ran it again, released some of it, lifted a block of
    /// it) at `at`, so a listing by time finds it whatever date its record
    /// is filed under (see [`Handled`]).
    pub async fn put_handled(
        &self,
        incident_id: &str,
        prefix: &str,
        what: &str,
        at: DateTime<Utc>,
    ) -> Result<Written, AwsError> {
        let mark = Handled {
            incident_id: incident_id.to_string(),
            prefix: prefix.to_string(),
            what: what.to_string(),
            at: at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        };
        self.put_new(&layout::handled_key(incident_id, prefix, at), &mark)
            .await
    }
}

/// One handling of an incident, as the handling-time index keeps it. The
/// record is filed under the date its signal was first seen (so GuardDuty's
/// re-sends of a finding land in one place), which can be months before a
/// responder asks "what did Firebreak do today?"; this index answers by
/// when Firebreak handled it. The key holds everything a listing needs
/// (one list call, no reads):
/// `handled/dt=<day handled>/<ms since the epoch, 13 digits>_<incident id>_<day filed>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handled {
    /// The incident.
    pub incident_id: String,
    /// Its record prefix (`incidents/dt=…/<id>/`).
    pub prefix: String,
    /// `handled` (a delivery ran it), `released` or `block_lifted`.
    pub what: String,
    /// When (RFC 3339).
    pub at: String,
}
