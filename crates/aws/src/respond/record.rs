//! The incident record: the plan and where it acted, written once.

use chrono::Utc;
use firebreak_core::{Action, PlannedIncident};
use futures_util::future::join3;
use serde::Serialize;
use serde_json::{json, Value};
use tracing::warn;

use super::{outcome, Executor};
use crate::bucket::claim;
use crate::bucket::layout;
use crate::bucket::{RecordStore, Written};
use crate::outcome::now;
use crate::outcome::{ActionOutcome, ErrorInfo, Status};

/// The version tag of the incident record (see `crates/aws/schema/`).
pub const RECORD_SCHEMA: &str = "firebreak.incident.v1";

/// The incident record body.
#[derive(Debug, Serialize)]
struct Record<'a> {
    schema: &'static str,
    recorded_at: String,
    /// The delivery that wrote it: after a lost answer, the retry's 412
    /// is told apart from an earlier delivery's record by this.
    recorded_by: String,
    /// Where the containment ran.
    #[serde(skip_serializing_if = "Value::is_null")]
    acted_in: Value,
    #[serde(flatten)]
    plan: &'a PlannedIncident,
}

impl Executor {
    pub(super) async fn write_record(
        &self,
        store: &RecordStore,
        plan: &PlannedIncident,
        prefix: &str,
        (index, a): (usize, &Action),
        acted: bool,
        record_uri: Option<&str>,
    ) -> ActionOutcome {
        // Where it acted; nowhere when its place could not be reached.
        let mut acted_in = Value::Null;
        if acted {
            acted_in = json!({ "account": self.account, "region": self.region });
            if let Some(s) = &self.session {
                acted_in["session"] = json!(s);
            }
        }
        let body = Record {
            schema: RECORD_SCHEMA,
            recorded_at: now(),
            recorded_by: claim::owner_id(),
            acted_in,
            plan,
        };
        let key = layout::record_key(prefix);
        // The record, its index entry and this handling's entry in the
        // handling-time index at once: one round trip, not three. A replay
        // is a handling too: "what did Firebreak do today" lists it.
        let (written, index_written, handled) = join3(
            store.put_new(&key, &body),
            store.put_index(&plan.incident.id, prefix),
            store.put_handled(&plan.incident.id, prefix, "handled", Utc::now()),
        )
        .await;
        if let Err(e) = handled {
            warn!(
                code = e.code.as_deref().unwrap_or("-"),
                "handling not indexed: a listing by time may miss this run"
            );
        }
        let written = match written {
            // S3 wrote it but the answer was lost, and the SDK's retry met
            // our own object: it is this delivery's record.
            Ok(Written::AlreadyThere) => match store.get_json::<Value>(&key).await {
                Ok(Some(v)) if v["recorded_by"] == body.recorded_by.as_str() => {
                    Ok(Written::Created)
                }
                _ => Ok(Written::AlreadyThere),
            },
            other => other,
        };
        match written.and_then(|w| index_written.map(|_| w)) {
            Ok(Written::Created) => outcome(index, a, Status::Done, record_uri.unwrap_or_default()),
            Ok(Written::AlreadyThere) => outcome(
                index,
                a,
                Status::AlreadyDone,
                "record already written by an earlier delivery",
            ),
            Err(e) => ActionOutcome {
                error: Some(ErrorInfo::from(&e)),
                ..outcome(index, a, Status::Failed, e.to_string())
            },
        }
    }
}
