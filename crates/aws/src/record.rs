//! Incident records in S3. Every write is conditional (`If-None-Match: *`):
//! a replay never overwrites a record, and each action outcome is its own
//! object, so concurrent runs cannot lose each other's results.
//!
//! Layout under the bucket:
//! `incidents/dt=YYYY-MM-DD/<incident id>/incident.json` and
//! `incidents/dt=YYYY-MM-DD/<incident id>/actions/<kind>-<target>.json`, where
//! `<target>` is the action's target made key-safe plus a digest of it (an
//! action is named by what it does to what, not by its place in the plan:
//! a recurring finding may plan more actions, in another order). Failed
//! attempts go to `…/actions/<name>.failed-<time>.json`, so a later success
//! can still take the canonical name. `…/claims/<name>.json` is the claim a
//! delivery holds while it carries the action out (see [`crate::claim`]).

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use chrono::{DateTime, Utc};
use firebreak_core::incident::short_digest;
use firebreak_core::{ActionKind, Incident, Source};
use ipnet::IpNet;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::AwsError;
use crate::outcome::{ActionOutcome, Status};

/// Where and how records are written.
#[derive(Debug, Clone)]
pub struct RecordStore {
    s3: aws_sdk_s3::Client,
    bucket: String,
    kms_key_id: Option<String>,
}

/// Whether a conditional write created the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// This call created it.
    Created,
    /// It was already there (a replay); it was left untouched.
    AlreadyThere,
}

/// The condition of a conditional write.
#[derive(Debug, Clone, Copy)]
pub enum Cond<'a> {
    /// Only if no object is there (`If-None-Match: *`).
    New,
    /// Only if the object is still the one with this ETag (`If-Match`).
    Match(&'a str),
}

/// The date an incident's record is filed under. It must not change when the
/// same incident arrives again, so GuardDuty findings use their first
/// sighting (their update time moves as they recur).
pub fn record_date(incident: &Incident, now: DateTime<Utc>) -> String {
    let stable = match incident.source {
        Source::Guardduty => incident
            .evidence
            .first_seen
            .as_deref()
            .or(incident.observed_at.as_deref()),
        _ => incident.observed_at.as_deref(),
    };
    stable
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(now)
        .format("%Y-%m-%d")
        .to_string()
}

impl RecordStore {
    /// A store in `bucket`, encrypted with AES256 or the given KMS key.
    pub fn new(
        s3: aws_sdk_s3::Client,
        bucket: impl Into<String>,
        kms_key_id: Option<String>,
    ) -> RecordStore {
        RecordStore {
            s3,
            bucket: bucket.into(),
            kms_key_id,
        }
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The prefix of one incident's objects.
    pub fn prefix(incident: &Incident, now: DateTime<Utc>) -> String {
        format!(
            "incidents/dt={}/{}/",
            record_date(incident, now),
            incident.id
        )
    }

    /// Writes `body` as JSON at `key` unless something is already there.
    pub async fn put_new<T: Serialize>(&self, key: &str, body: &T) -> Result<Written, AwsError> {
        self.put(key, body, true).await
    }

    async fn put<T: Serialize>(
        &self,
        key: &str,
        body: &T,
        only_new: bool,
    ) -> Result<Written, AwsError> {
        let written = if only_new {
            self.put_cond(key, body, Some(Cond::New)).await?
        } else {
            self.put_cond(key, body, None).await?
        };
        Ok(match written {
            Some(_) => Written::Created,
            None => Written::AlreadyThere,
        })
    }

    /// Writes `body` as JSON at `key` if the condition holds. `Some(etag)`
    /// when written, `None` when the condition did not hold (412, or a
    /// concurrent conditional write to the same key: 409).
    pub async fn put_cond<T: Serialize>(
        &self,
        key: &str,
        body: &T,
        cond: Option<Cond<'_>>,
    ) -> Result<Option<String>, AwsError> {
        let bytes = serde_json::to_vec_pretty(body)
            .map_err(|e| AwsError::local("PutObject", "SerializationError", e.to_string()))?;
        let (if_none_match, if_match) = match cond {
            Some(Cond::New) => (Some("*".to_string()), None),
            Some(Cond::Match(etag)) => (None, Some(etag.to_string())),
            None => (None, None),
        };
        let mut req = self
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .set_if_none_match(if_none_match)
            .set_if_match(if_match)
            .body(ByteStream::from(bytes));
        req = match &self.kms_key_id {
            Some(k) => req
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(k),
            None => req.server_side_encryption(ServerSideEncryption::Aes256),
        };
        match req.send().await {
            Ok(out) => Ok(Some(out.e_tag().unwrap_or_default().to_string())),
            Err(e) => {
                let err = AwsError::from_sdk("PutObject", e);
                // 412: someone (an earlier delivery) already wrote it, or
                // changed it since we read it; 409: a concurrent conditional
                // write to the same key won; 404 on If-Match: it is gone.
                if err.is("PreconditionFailed")
                    || err.is("ConditionalRequestConflict")
                    || (matches!(cond, Some(Cond::Match(_))) && err.is("NoSuchKey"))
                {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    /// The key-safe name of an action: what it does to what. The target is
    /// kept readable where it can be and a digest makes the name unique.
    pub fn action_name(kind: ActionKind, target: &str) -> String {
        let readable: String = target
            .chars()
            .take(48)
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("{}-{readable}-{}", kind.as_str(), short_digest(target))
    }

    /// Where the final outcome of a named action (or notice) is kept.
    pub fn done_key(prefix: &str, name: &str) -> String {
        format!("{prefix}actions/{name}.json")
    }

    /// Where a failed attempt at a named action (or notice) is kept.
    pub fn attempt_key(prefix: &str, name: &str, at: &str) -> String {
        format!(
            "{prefix}actions/{name}.failed-{}.json",
            at.replace([':', '.'], "")
        )
    }

    /// Where a release of the incident at `prefix` is noted.
    pub fn release_key(prefix: &str, release_id: &str) -> String {
        format!("{prefix}released/{release_id}.json")
    }

    /// Where the claim on a named action (or notice) is kept.
    pub fn claim_key(prefix: &str, name: &str) -> String {
        format!("{prefix}claims/{name}.json")
    }

    /// The key for an action outcome.
    pub fn outcome_key(prefix: &str, outcome: &ActionOutcome) -> String {
        let base = format!(
            "{prefix}actions/{}",
            Self::action_name(outcome.kind, &outcome.target)
        );
        match outcome.status {
            // Final: a later delivery skips the action.
            Status::Done | Status::AlreadyDone => format!("{base}.json"),
            // Kept once for the audit trail; not final (a dry run or a
            // refusal must not stop a later real run).
            Status::Skipped => format!("{base}.skipped.json"),
            // Not final either: the budget may allow it later, or a human.
            Status::Held => format!("{base}.held.json"),
            // Every failed attempt is kept; a retry runs the action again.
            Status::Failed => Self::attempt_key(
                prefix,
                &Self::action_name(outcome.kind, &outcome.target),
                &outcome.at,
            ),
        }
    }

    /// Reads a JSON object; `None` when it is missing or not the expected shape.
    pub async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, AwsError> {
        Ok(self.get_tagged(key).await?.map(|(v, _)| v))
    }

    /// Reads a JSON object with its ETag (for a later `If-Match` write);
    /// `None` when it is missing or not the expected shape.
    pub async fn get_tagged<T: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<(T, String)>, AwsError> {
        let body = match self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(b) => b,
            Err(e) => {
                let err = AwsError::from_sdk("GetObject", e);
                if err.is("NoSuchKey") {
                    return Ok(None);
                }
                return Err(err);
            }
        };
        let etag = body.e_tag().unwrap_or_default().to_string();
        let bytes = body.body.collect().await.map_err(|e| AwsError {
            retryable: true,
            ..AwsError::local("GetObject", "ReadError", e.to_string())
        })?;
        Ok(serde_json::from_slice::<T>(&bytes.into_bytes())
            .ok()
            .map(|v| (v, etag)))
    }

    /// Deletes an object only while it is the one with this ETag (a claim
    /// this delivery holds; not one another delivery took over since).
    pub async fn delete_if(&self, key: &str, etag: &str) -> Result<(), AwsError> {
        match self
            .s3
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .set_if_match((!etag.is_empty()).then(|| etag.to_string()))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = AwsError::from_sdk("DeleteObject", e);
                if err.is("PreconditionFailed") || err.is("NoSuchKey") {
                    Ok(())
                } else {
                    Err(err)
                }
            }
        }
    }

    /// The keys under `prefix`, every page.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, AwsError> {
        self.list_after(prefix, None).await
    }

    /// The keys under `prefix` that sort after `start_after`, every page.
    pub async fn list_after(
        &self,
        prefix: &str,
        start_after: Option<String>,
    ) -> Result<Vec<String>, AwsError> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .s3
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_start_after(start_after.clone())
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ListObjectsV2", e))?;
            out.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string)),
            );
            match page.next_continuation_token() {
                Some(t) => token = Some(t.to_string()),
                None => return Ok(out),
            }
        }
    }

    /// The index entry that finds an incident's prefix from its id alone
    /// (a responder's release names only the id, not the date).
    pub fn index_key(incident_id: &str) -> String {
        format!("index/{incident_id}.json")
    }

    /// Writes the index entry for an incident (once).
    pub async fn put_index(&self, incident_id: &str, prefix: &str) -> Result<Written, AwsError> {
        self.put_new(
            &Self::index_key(incident_id),
            &serde_json::json!({ "incident_id": incident_id, "prefix": prefix }),
        )
        .await
    }

    /// The prefix of an earlier incident's record, if it was recorded here.
    pub async fn find_prefix(&self, incident_id: &str) -> Result<Option<String>, AwsError> {
        let v: Option<serde_json::Value> = self.get_json(&Self::index_key(incident_id)).await?;
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
        self.put_new(&mark.key(at), &mark).await
    }

    /// Records that Firebreak placed a deny entry (the ledger the block
    /// expirer and the eviction order read). The NACL stays the truth: a
    /// marker counts only while its rule number still holds its CIDR.
    pub async fn put_marker(&self, m: &BlockMarker) -> Result<(), AwsError> {
        let prefix = BlockMarker::rule_prefix(&m.network_acl_id, m.egress, m.rule_number);
        // The list and the write go at once: the new key is left out of
        // what the list found, whichever came first.
        let (stale, put) =
            futures_util::future::join(self.list(&prefix), self.put(&m.key(), m, false)).await;
        put?;
        for key in stale?.iter().filter(|k| **k != m.key()) {
            self.delete(key).await?;
        }
        Ok(())
    }

    /// Deletes one object.
    pub async fn delete(&self, key: &str) -> Result<(), AwsError> {
        self.s3
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("DeleteObject", e))?;
        Ok(())
    }

    /// The markers of one NACL direction, oldest first, read from the keys
    /// alone (one list call, no reads).
    pub async fn block_ages(
        &self,
        nacl: &str,
        egress: bool,
    ) -> Result<Vec<(i32, IpNet)>, AwsError> {
        let mut found: Vec<(i64, i32, IpNet)> = self
            .list(&BlockMarker::direction_prefix(nacl, egress))
            .await?
            .iter()
            .filter_map(|k| BlockMarker::parse_key(k))
            .map(|(rule, created, cidr)| (created, rule, cidr))
            .collect();
        found.sort();
        Ok(found
            .into_iter()
            .map(|(_, rule, cidr)| (rule, cidr))
            .collect())
    }

    /// Removes the markers of a lifted entry.
    pub async fn forget_block(
        &self,
        nacl: &str,
        egress: bool,
        rule: i32,
        cidr: IpNet,
    ) -> Result<(), AwsError> {
        for key in self
            .list(&BlockMarker::rule_prefix(nacl, egress, rule))
            .await?
        {
            if BlockMarker::parse_key(&key).is_some_and(|(_, _, c)| c == cidr) {
                self.delete(&key).await?;
            }
        }
        Ok(())
    }

    /// Every block marker, for the expirer.
    pub async fn markers(&self) -> Result<Vec<(String, BlockMarker)>, AwsError> {
        let mut out = Vec::new();
        for key in self.list("blocks/").await? {
            if let Some(m) = self.get_json::<BlockMarker>(&key).await? {
                out.push((key, m));
            }
        }
        Ok(out)
    }

    /// Final outcomes an earlier run recorded (`done` and `already_done`;
    /// skipped and failed attempts are kept under other names and are not
    /// final, so a later run tries those actions again).
    pub async fn completed(&self, prefix: &str) -> Result<Vec<ActionOutcome>, AwsError> {
        let mut out = Vec::new();
        for key in self.list(&format!("{prefix}actions/")).await? {
            if key.contains(".failed-")
                || key.ends_with(".skipped.json")
                || key.ends_with(".held.json")
            {
                continue;
            }
            if let Some(o) = self.get_json::<ActionOutcome>(&key).await? {
                out.push(o);
            }
        }
        Ok(out)
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

/// What a handling-time index key says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandledKey {
    /// When, in milliseconds since the epoch.
    pub at_ms: i64,
    /// The incident.
    pub incident_id: String,
    /// The day its record is filed under (`YYYY-MM-DD`).
    pub filed: String,
}

impl Handled {
    /// Where the index keeps all handlings of one day.
    pub fn day_prefix(day: DateTime<Utc>) -> String {
        format!("handled/dt={}/", day.format("%Y-%m-%d"))
    }

    fn key(&self, at: DateTime<Utc>) -> String {
        let filed = self
            .prefix
            .strip_prefix("incidents/dt=")
            .and_then(|r| r.split('/').next())
            .unwrap_or_default();
        format!(
            "{}{:013}_{}_{filed}.json",
            Handled::day_prefix(at),
            at.timestamp_millis(),
            self.incident_id
        )
    }

    /// Reads a key back; `None` for anything else.
    pub fn parse_key(key: &str) -> Option<HandledKey> {
        let file = key
            .strip_prefix("handled/dt=")?
            .split_once('/')?
            .1
            .strip_suffix(".json")?;
        let mut parts = file.splitn(3, '_');
        let at_ms = parts.next()?.parse().ok()?;
        let incident_id = parts.next()?.to_string();
        let filed = parts.next()?.to_string();
        let ok = incident_id.starts_with("fb-")
            && chrono::NaiveDate::parse_from_str(&filed, "%Y-%m-%d").is_ok();
        ok.then_some(HandledKey {
            at_ms,
            incident_id,
            filed,
        })
    }

    /// The record prefix of the incident a key names.
    pub fn record_prefix(k: &HandledKey) -> String {
        format!("incidents/dt={}/{}/", k.filed, k.incident_id)
    }
}

/// One deny entry Firebreak placed, as the ledger keeps it. The key holds
/// the rule number, the creation time and the CIDR so that one list call
/// gives the eviction order:
/// `blocks/<nacl>/<ingress|egress>/<rule>/<created ms>_<cidr with / as _>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockMarker {
    /// The NACL.
    pub network_acl_id: String,
    /// Outbound rule.
    pub egress: bool,
    /// The rule number.
    pub rule_number: i32,
    /// The denied CIDR.
    pub cidr: String,
    /// The incident that placed it.
    pub incident_id: String,
    /// The NACL's account; the responder's own when absent (older markers).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub account: Option<String>,
    /// The NACL's region; the responder's own when absent.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub region: Option<String>,
    /// Milliseconds since the epoch.
    pub created_ms: i64,
    /// When the expirer lifts it (RFC 3339); never when absent.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub expires_at: Option<String>,
}

impl BlockMarker {
    fn direction_prefix(nacl: &str, egress: bool) -> String {
        let dir = if egress { "egress" } else { "ingress" };
        format!("blocks/{nacl}/{dir}/")
    }

    fn rule_prefix(nacl: &str, egress: bool, rule: i32) -> String {
        format!("{}{rule:05}/", Self::direction_prefix(nacl, egress))
    }

    /// Its object key.
    pub fn key(&self) -> String {
        format!(
            "{}{:013}_{}.json",
            Self::rule_prefix(&self.network_acl_id, self.egress, self.rule_number),
            self.created_ms,
            self.cidr.replace('/', "_")
        )
    }

    fn parse_key(key: &str) -> Option<(i32, i64, IpNet)> {
        let mut parts = key.rsplit('/');
        let file = parts.next()?.strip_suffix(".json")?;
        let rule = parts.next()?.parse().ok()?;
        let (created, cidr) = file.split_once('_')?;
        let cidr = cidr.rsplit_once('_').map(|(a, p)| format!("{a}/{p}"))?;
        Some((rule, created.parse().ok()?, cidr.parse().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handled_keys_carry_time_incident_and_filing_day() {
        let at = DateTime::parse_from_rfc3339("2027-12-04T10:11:12.345Z")
            .unwrap()
            .with_timezone(&Utc);
        let mark = Handled {
            incident_id: "fb-a600cce2b4010f814d5f".into(),
            prefix: "incidents/dt=2026-11-20/fb-a600cce2b4010f814d5f/".into(),
            what: "handled".into(),
            at: at.to_rfc3339(),
        };
        let key = mark.key(at);
        assert_eq!(
            key,
            "handled/dt=2027-12-04/1827915072345_fb-a600cce2b4010f814d5f_2026-11-20.json"
        );
        let parsed = Handled::parse_key(&key).unwrap();
        assert_eq!(parsed.at_ms, at.timestamp_millis());
        assert_eq!(Handled::record_prefix(&parsed), mark.prefix);
        for bad in [
            "handled/dt=2027-12-04/x_fb-1_2026-11-20.json",
            "handled/dt=2027-12-04/1_fb-1_yesterday.json",
            "handled/dt=2027-12-04/1_id_2026-11-20.json",
            "blocks/acl-1/ingress/00001/1_198.51.100.7_32.json",
        ] {
            assert_eq!(Handled::parse_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn marker_keys_carry_rule_time_and_cidr() {
        for cidr in ["198.51.100.7/32", "2001:db8::4/128"] {
            let m = BlockMarker {
                network_acl_id: "acl-0a1b2c3d4e5f60718".into(),
                egress: false,
                rule_number: 7,
                cidr: cidr.into(),
                account: None,
                region: None,
                incident_id: "fb-00000000000000000000".into(),
                created_ms: 1_790_000_000_123,
                expires_at: None,
            };
            let key = m.key();
            assert!(
                key.starts_with("blocks/acl-0a1b2c3d4e5f60718/ingress/00007/"),
                "{key}"
            );
            assert_eq!(
                BlockMarker::parse_key(&key),
                Some((7, 1_790_000_000_123, cidr.parse().unwrap()))
            );
        }
        assert_eq!(
            BlockMarker::parse_key("blocks/acl-1/ingress/x/1_a.json"),
            None
        );
    }
}
