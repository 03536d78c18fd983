//! The block ledger: one marker per deny entry Firebreak placed, which the
//! expirer lifts when its time is up and an eviction reads for the oldest.
//! The NACL stays the truth: a marker counts only while its rule number
//! still holds its CIDR.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::layout;
use super::RecordStore;
use crate::error::AwsError;

impl RecordStore {
    /// Records that Firebreak placed a deny entry (the ledger the block
    /// expirer and the eviction order read). The NACL stays the truth: a
    /// marker counts only while its rule number still holds its CIDR.
    pub async fn put_marker(&self, m: &BlockMarker) -> Result<(), AwsError> {
        let prefix = layout::marker_rule_prefix(&m.network_acl_id, m.egress, m.rule_number);
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

    /// The markers of one NACL direction, oldest first, read from the keys
    /// alone (one list call, no reads).
    pub async fn block_ages(
        &self,
        nacl: &str,
        egress: bool,
    ) -> Result<Vec<(i32, IpNet)>, AwsError> {
        let mut found: Vec<(i64, i32, IpNet)> = self
            .list(&layout::marker_direction_prefix(nacl, egress))
            .await?
            .iter()
            .filter_map(|k| layout::parse_marker_key(k))
            .map(|k| (k.created_ms, k.rule, k.cidr))
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
            .list(&layout::marker_rule_prefix(nacl, egress, rule))
            .await?
        {
            if layout::parse_marker_key(&key).is_some_and(|k| k.cidr == cidr) {
                self.delete(&key).await?;
            }
        }
        Ok(())
    }

    /// Every block marker, for the expirer.
    pub async fn markers(&self) -> Result<Vec<(String, BlockMarker)>, AwsError> {
        let mut out = Vec::new();
        for key in self.list(layout::BLOCKS).await? {
            if let Some(m) = self.get_json::<BlockMarker>(&key).await? {
                out.push((key, m));
            }
        }
        Ok(out)
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
    /// Its object key.
    pub fn key(&self) -> String {
        layout::marker_key(
            &self.network_acl_id,
            self.egress,
            self.rule_number,
            self.created_ms,
            &self.cidr,
        )
    }
}
