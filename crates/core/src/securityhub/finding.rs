//! One ASFF finding: its identity, severity, the product's own fields, and
//! the activity and traffic it describes.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{null_default, Resource};
use crate::guardduty as native;
use crate::severity::Severity;

/// One ASFF finding.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Finding {
    /// The product's own id for the finding; for GuardDuty the finding ARN
    /// (`arn:aws:guardduty:<region>:<account>:detector/<d>/finding/<id>`).
    pub id: String,
    /// The product that made the finding
    /// (`arn:aws:securityhub:<region>::product/aws/guardduty`).
    pub product_arn: String,
    /// Account the finding is about.
    pub aws_account_id: String,
    /// Region the finding is about (newer findings; older ones only in the
    /// product ARN).
    #[serde(default)]
    pub region: Option<String>,
    /// e.g. `GuardDuty`, `Inspector` (set by Security Hub for AWS products).
    #[serde(default)]
    pub product_name: Option<String>,
    /// e.g. `Amazon`.
    #[serde(default)]
    pub company_name: Option<String>,
    /// `namespace/category/classifier` types.
    #[serde(default, deserialize_with = "null_default")]
    pub types: Vec<String>,
    /// Short title (attacker-influenced text).
    #[serde(default)]
    pub title: Option<String>,
    /// Longer description (attacker-influenced text).
    #[serde(default)]
    pub description: Option<String>,
    /// First sighting of the activity.
    #[serde(default)]
    pub first_observed_at: Option<String>,
    /// Last sighting of the activity.
    #[serde(default)]
    pub last_observed_at: Option<String>,
    /// When the product created the finding.
    #[serde(default)]
    pub created_at: Option<String>,
    /// When the product last updated it.
    #[serde(default)]
    pub updated_at: Option<String>,
    /// The severity as it stands (a customer's automation may have changed it).
    pub severity: AsffSeverity,
    /// What the product itself said, kept even when `Severity` or `Types`
    /// were changed later with `BatchUpdateFindings`.
    #[serde(default)]
    pub finding_provider_fields: Option<FindingProviderFields>,
    /// The product's own fields, flattened to `a/b/c` keys (GuardDuty puts
    /// its `service` object here).
    #[serde(default, deserialize_with = "null_default")]
    pub product_fields: BTreeMap<String, String>,
    /// What the finding is about.
    #[serde(default, deserialize_with = "null_default")]
    pub resources: Vec<Resource>,
    /// Network traffic, for products that describe one connection.
    #[serde(default)]
    pub network: Option<Network>,
    /// The activity, for GuardDuty and products like it.
    #[serde(default)]
    pub action: Option<Action>,
    /// True for sample findings (GuardDuty's `CreateSampleFindings`).
    #[serde(default)]
    pub sample: Option<bool>,
    /// `ACTIVE` or `ARCHIVED`.
    #[serde(default)]
    pub record_state: Option<String>,
    /// The investigation's state.
    #[serde(default)]
    pub workflow: Option<Workflow>,
}

/// ASFF `Severity` (and `FindingProviderFields.Severity`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsffSeverity {
    /// The preferred attribute.
    #[serde(default)]
    pub label: Option<SeverityLabel>,
    /// Deprecated 0–100 score.
    #[serde(default)]
    pub normalized: Option<i64>,
    /// Deprecated: the product's native score (GuardDuty's 0–10).
    #[serde(default)]
    pub product: Option<f64>,
    /// The product's native severity, as text (GuardDuty's score).
    #[serde(default)]
    pub original: Option<String>,
}

/// `Severity.Label`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SeverityLabel {
    /// No issue was found.
    Informational,
    /// Does not require action on its own.
    Low,
    /// Must be addressed, not urgently.
    Medium,
    /// Must be addressed as a priority.
    High,
    /// Must be remediated immediately.
    Critical,
}

impl SeverityLabel {
    /// Firebreak's class for a label: INFORMATIONAL counts as LOW (record
    /// and tell the team), the others are their namesakes.
    pub fn severity(self) -> Severity {
        match self {
            SeverityLabel::Informational | SeverityLabel::Low => Severity::Low,
            SeverityLabel::Medium => Severity::Medium,
            SeverityLabel::High => Severity::High,
            SeverityLabel::Critical => Severity::Critical,
        }
    }
}

/// `FindingProviderFields`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FindingProviderFields {
    /// The product's own severity.
    #[serde(default)]
    pub severity: Option<AsffSeverity>,
    /// The product's own types.
    #[serde(default, deserialize_with = "null_default")]
    pub types: Vec<String>,
}

/// `Workflow`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Workflow {
    /// `NEW`, `NOTIFIED`, `RESOLVED` or `SUPPRESSED`.
    #[serde(default)]
    pub status: Option<String>,
}

/// ASFF `Network`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Network {
    /// `IN` or `OUT`: which side is the remote one.
    #[serde(default)]
    pub direction: Option<String>,
    /// Source address (the remote one when `IN`).
    #[serde(default)]
    pub source_ip_v4: Option<String>,
    /// Source IPv6 address.
    #[serde(default)]
    pub source_ip_v6: Option<String>,
    /// Destination address (the remote one when `OUT`).
    #[serde(default)]
    pub destination_ip_v4: Option<String>,
    /// Destination IPv6 address.
    #[serde(default)]
    pub destination_ip_v6: Option<String>,
}

/// ASFF `Action`: GuardDuty's action, in ASFF's words (IPv4 only).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Action {
    /// `NETWORK_CONNECTION`, `AWS_API_CALL`, `DNS_REQUEST`, `PORT_PROBE`.
    #[serde(default)]
    pub action_type: Option<String>,
    /// A connection.
    #[serde(default)]
    pub network_connection_action: Option<NetworkConnectionAction>,
    /// An API call.
    #[serde(default)]
    pub aws_api_call_action: Option<AwsApiCallAction>,
    /// A DNS query.
    #[serde(default)]
    pub dns_request_action: Option<DnsRequestAction>,
    /// Probes.
    #[serde(default)]
    pub port_probe_action: Option<PortProbeAction>,
}

/// `Action.NetworkConnectionAction`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkConnectionAction {
    /// `IN` or `OUT`.
    #[serde(default)]
    pub connection_direction: Option<String>,
    /// The other end.
    #[serde(default)]
    pub remote_ip_details: Option<RemoteIpDetails>,
}

/// `Action.AwsApiCallAction`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AwsApiCallAction {
    /// The API called.
    #[serde(default)]
    pub api: Option<String>,
    /// The caller.
    #[serde(default)]
    pub remote_ip_details: Option<RemoteIpDetails>,
}

/// `Action.DnsRequestAction`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DnsRequestAction {
    /// The domain (attacker-controlled).
    #[serde(default)]
    pub domain: Option<String>,
}

/// `Action.PortProbeAction`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortProbeAction {
    /// Every probe.
    #[serde(default, deserialize_with = "null_default")]
    pub port_probe_details: Vec<PortProbeDetail>,
}

/// One probe.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortProbeDetail {
    /// The prober.
    #[serde(default)]
    pub remote_ip_details: Option<RemoteIpDetails>,
}

/// `RemoteIpDetails` (ASFF keeps IPv4 only).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RemoteIpDetails {
    /// IPv4 address.
    #[serde(default)]
    pub ip_address_v4: Option<String>,
}

impl Finding {
    /// True when GuardDuty made the finding. Only the product ARN counts:
    /// Security Hub sets it for AWS's own products and a custom
    /// integration cannot claim it, whereas `ProductName` and
    /// `CompanyName` can be written by whoever imports a finding — and a
    /// GuardDuty finding may block, deactivate and isolate on its own.
    pub fn is_guardduty(&self) -> bool {
        // `arn:<partition>:securityhub:<region>::product/aws/guardduty`.
        let arn = self.product_arn.trim();
        arn.split(':').nth(2) == Some("securityhub")
            && arn.starts_with("arn:")
            && arn.ends_with(":product/aws/guardduty")
    }

    /// True when the name fields say GuardDuty but the product ARN does
    /// not: worth a note, never trusted.
    pub fn claims_guardduty(&self) -> bool {
        let said = |v: Option<&str>, want: &str| v.is_some_and(|v| v.eq_ignore_ascii_case(want));
        let field = |k: &str| self.product_fields.get(k).map(String::as_str);
        !self.is_guardduty()
            && (said(self.product_name.as_deref(), "GuardDuty")
                || said(field("aws/securityhub/ProductName"), "GuardDuty"))
    }

    /// An imported finding that a human (or a product) has closed: nothing
    /// to contain. Security Hub sends an "Imported" event for every change
    /// to a finding, including a responder suppressing it as a false
    /// positive; that event must never be what starts containment.
    pub fn closed(&self) -> Option<String> {
        let status = self
            .workflow
            .as_ref()
            .and_then(|w| w.status.as_deref())
            .map(str::to_ascii_uppercase);
        if let Some(s @ ("RESOLVED" | "SUPPRESSED")) = status.as_deref() {
            return Some(format!("workflow status {s}"));
        }
        let archived = self
            .record_state
            .as_deref()
            .is_some_and(|r| r.eq_ignore_ascii_case("ARCHIVED"));
        archived.then(|| "record state ARCHIVED".to_string())
    }

    /// The severity the finding's own label (or normalised score) gives.
    pub fn label_severity(&self) -> Option<Severity> {
        let s = &self.severity;
        s.label
            .map(SeverityLabel::severity)
            .or_else(|| s.normalized.map(Severity::from_normalized))
    }

    /// The region: the finding's own field, else the one in its product ARN.
    pub fn region(&self) -> Option<&str> {
        self.region
            .as_deref()
            .filter(|r| !r.trim().is_empty())
            .or_else(|| self.product_arn.split(':').nth(3).filter(|r| !r.is_empty()))
    }

    /// The resources of one type.
    pub fn resources_of<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Resource> + 'a {
        self.resources
            .iter()
            .filter(move |r| r.resource_type == kind)
    }

    /// The first instance the finding names, in our native shape.
    pub fn instance_details(&self) -> Option<native::InstanceDetails> {
        self.resources_of("AwsEc2Instance")
            .find_map(|r| r.instance_details())
    }

    /// The first access key the finding names, in our native shape.
    pub fn access_key_details(&self) -> Option<native::AccessKeyDetails> {
        self.resources_of("AwsIamAccessKey")
            .find_map(|r| r.access_key_details())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding() -> serde_json::Value {
        serde_json::json!({
            "SchemaVersion": "2018-10-08",
            "Id": "arn:aws:inspector2:eu-west-1:111122223333:finding/0123",
            "ProductArn": "arn:aws:securityhub:eu-west-1::product/aws/inspector",
            "AwsAccountId": "111122223333",
            "Severity": {"Label": "HIGH", "Normalized": 70}
        })
    }

    #[test]
    fn only_the_product_arn_makes_a_finding_guardduty() {
        let mut v = finding();
        v["ProductName"] = "GuardDuty".into();
        v["CompanyName"] = "Amazon".into();
        let f: Finding = serde_json::from_value(v.clone()).unwrap();
        assert!(!f.is_guardduty() && f.claims_guardduty());
        v["ProductArn"] = "arn:aws:securityhub:eu-west-1::product/aws/guardduty".into();
        let f: Finding = serde_json::from_value(v).unwrap();
        assert!(f.is_guardduty() && !f.claims_guardduty());
    }

    #[test]
    fn closed_findings_are_recognised() {
        let mut v = finding();
        v["Workflow"] = serde_json::json!({"Status": "SUPPRESSED"});
        let f: Finding = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(f.closed().as_deref(), Some("workflow status SUPPRESSED"));
        v["Workflow"] = serde_json::json!({"Status": "NOTIFIED"});
        v["RecordState"] = "ARCHIVED".into();
        let f: Finding = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(f.closed().as_deref(), Some("record state ARCHIVED"));
        v["RecordState"] = "ACTIVE".into();
        let f: Finding = serde_json::from_value(v).unwrap();
        assert_eq!(f.closed(), None);
    }
}
