//! Our serde model of AWS Security Hub's EventBridge events and the findings
//! they carry, in the AWS Security Finding Format (ASFF): only the fields
//! Firebreak uses, PascalCase as ASFF spells them.
//!
//! Two detail-types are accepted: "Security Hub Findings - Imported" (every
//! new or updated finding, sent automatically) and "Security Hub Findings -
//! Custom Action" (a responder chose a custom action on findings in the
//! console; `detail.actionName` says which). Both carry `detail.findings[]`.
//! Others of `aws.securityhub` ("Security Hub Insight Results", "Findings
//! Imported V2" in OCSF) are refused by name: Firebreak would misread them.
//!
//! ASFF makes few fields mandatory and products fill them unevenly, so
//! everything but the finding's identity (`Id`, `ProductArn`,
//! `AwsAccountId`) and its `Severity` is optional here. Bad input is refused
//! with the JSON path of the offending field, as for GuardDuty.
//!
//! A GuardDuty finding that arrives this way is read back into our native
//! GuardDuty model ([`guardduty`] below) so that it becomes the same
//! incident as the finding GuardDuty sends itself.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::error::ParseError;
use crate::sanitize;

mod finding;
pub mod guardduty;
mod resource;

pub use finding::{
    Action, AsffSeverity, AwsApiCallAction, DnsRequestAction, Finding, FindingProviderFields,
    Network, NetworkConnectionAction, PortProbeAction, PortProbeDetail, RemoteIpDetails,
    SeverityLabel, Workflow,
};
pub use resource::{
    Ec2InstanceDetails, Ec2NetworkInterface, IamAccessKeyDetails, Resource, ResourceDetails,
};

/// `detail-type` of the findings Security Hub sends on its own.
pub const IMPORTED: &str = "Security Hub Findings - Imported";
/// `detail-type` of the findings a responder sends with a custom action.
pub const CUSTOM_ACTION: &str = "Security Hub Findings - Custom Action";

const CTX: &str = "Security Hub finding";

/// `null` or absent → the type's default (ASFF products send `null` for an
/// empty list or map).
fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// One Security Hub event: its findings and how they were sent.
#[derive(Debug, Clone)]
pub struct SecurityHubEvent {
    /// EventBridge event id.
    pub event_id: Option<String>,
    /// The custom action a responder chose; `None` for imported findings.
    pub custom_action: Option<CustomActionRequest>,
    /// The findings, in order; each is one incident.
    pub findings: Vec<Finding>,
}

/// What the "Custom Action" event says about the action chosen.
#[derive(Debug, Clone)]
pub struct CustomActionRequest {
    /// `detail.actionName`: chooses what Firebreak does (as the event gave
    /// it; it is matched against the configuration, then sanitised).
    pub name: String,
    /// `detail.actionDescription`, capped and escaped.
    pub description: Option<String>,
    /// The custom action's ARN (`arn:aws:securityhub:<region>:<account>:
    /// action/custom/<id>`), from the event's `resources`, capped and escaped.
    pub arn: Option<String>,
}

/// `detail` of both accepted detail-types.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Detail {
    findings: Vec<Finding>,
    #[serde(default)]
    action_name: Option<String>,
    #[serde(default)]
    action_description: Option<String>,
}
/// Reads an EventBridge event whose source is `aws.securityhub`. The
/// detail-type is checked before the detail, so an event Firebreak does
/// not handle is named as such rather than as a broken finding.
pub(crate) fn parse_event(value: Value) -> Result<SecurityHubEvent, ParseError> {
    let detail_type = value
        .get("detail-type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if detail_type != IMPORTED && detail_type != CUSTOM_ACTION {
        return Err(ParseError::UnknownShape {
            expected: "a Security Hub event with detail-type `Security Hub Findings - Imported` or `Security Hub Findings - Custom Action`",
            found: format!(
                "source `aws.securityhub`, detail-type `{}`",
                sanitize::clean(detail_type, 60)
            ),
        });
    }
    let custom = detail_type == CUSTOM_ACTION;
    let event: aws_lambda_events::eventbridge::EventBridgeEvent<Value> =
        crate::error::typed(value, "EventBridge event", "")?;
    let detail: Detail = crate::error::typed(event.detail, CTX, "detail")?;
    if detail.findings.is_empty() {
        return Err(ParseError::Invalid {
            context: CTX,
            field: "detail.findings",
            message: "is empty: expected at least one finding".into(),
        });
    }
    for (index, f) in detail.findings.iter().enumerate() {
        validate(f, index)?;
    }
    let custom_action = if custom {
        let name =
            detail
                .action_name
                .filter(|n| !n.trim().is_empty())
                .ok_or(ParseError::Invalid {
                    context: "Security Hub custom action",
                    field: "detail.actionName",
                    message: "is missing or empty: the action's name says what to do".into(),
                })?;
        Some(CustomActionRequest {
            name,
            description: detail.action_description.as_deref().map(sanitize::text),
            arn: event
                .resources
                .unwrap_or_default()
                .first()
                .map(|a| sanitize::name(a)),
        })
    } else {
        None
    };
    Ok(SecurityHubEvent {
        event_id: event.id.map(|i| sanitize::name(&i)),
        custom_action,
        findings: detail.findings,
    })
}

/// The checks serde cannot make: non-empty identity, scores in range, and
/// a severity Firebreak can read.
fn validate(f: &Finding, index: usize) -> Result<(), ParseError> {
    let at = |field: &str, message: String| ParseError::Field {
        context: CTX,
        path: format!("detail.findings[{index}].{field}"),
        message,
    };
    for (field, value) in [
        ("Id", &f.id),
        ("ProductArn", &f.product_arn),
        ("AwsAccountId", &f.aws_account_id),
    ] {
        if value.trim().is_empty() {
            return Err(at(field, "is empty".into()));
        }
    }
    let severities = [
        ("Severity", Some(&f.severity)),
        (
            "FindingProviderFields.Severity",
            f.finding_provider_fields
                .as_ref()
                .and_then(|p| p.severity.as_ref()),
        ),
    ];
    for (field, s) in severities {
        let Some(s) = s else { continue };
        if let Some(n) = s.normalized.filter(|n| !(0..=100).contains(n)) {
            return Err(at(
                &format!("{field}.Normalized"),
                format!("is {n}: expected 0 to 100"),
            ));
        }
        if let Some(p) = s.product.filter(|p| !p.is_finite()) {
            return Err(at(
                &format!("{field}.Product"),
                format!("is {p}: not a number"),
            ));
        }
    }
    if f.is_guardduty() {
        // GuardDuty's own score decides, as it does for the native finding.
        return match guardduty::score(f) {
            Ok(Some(_)) => Ok(()),
            Ok(None) if f.label_severity().is_some() => Ok(()),
            Ok(None) => Err(at(
                "Severity",
                "has no GuardDuty score, Label or Normalized value".into(),
            )),
            Err((field, score)) => Err(at(
                field,
                format!("is {score}: expected GuardDuty's score from 0 to 10"),
            )),
        };
    }
    if f.label_severity().is_none() {
        return Err(at("Severity", "has neither Label nor Normalized".into()));
    }
    Ok(())
}
#[cfg(test)]
mod tests {
    use super::*;

    fn event(detail_type: &str, detail: Value) -> Value {
        serde_json::json!({
            "version": "0", "id": "e", "detail-type": detail_type,
            "source": "aws.securityhub", "account": "111122223333",
            "time": "2026-11-20T03:15:02Z", "region": "eu-west-1",
            "resources": ["arn:aws:securityhub:eu-west-1:111122223333:action/custom/contain"],
            "detail": detail
        })
    }

    fn finding() -> Value {
        serde_json::json!({
            "SchemaVersion": "2018-10-08",
            "Id": "arn:aws:inspector2:eu-west-1:111122223333:finding/0123",
            "ProductArn": "arn:aws:securityhub:eu-west-1::product/aws/inspector",
            "AwsAccountId": "111122223333",
            "Severity": {"Label": "HIGH", "Normalized": 70}
        })
    }

    #[test]
    fn refusals_name_the_path() {
        let mut f = finding();
        f["Severity"]["Label"] = 8.into();
        let err = parse_event(event(
            IMPORTED,
            serde_json::json!({"findings": [finding(), f]}),
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with(
                "Security Hub finding: at `detail.findings[1].Severity.Label`: invalid type"
            ),
            "{err}"
        );
        let err = parse_event(event(IMPORTED, serde_json::json!({"findings": []})))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`detail.findings` is empty"), "{err}");
        let mut f = finding();
        f["Severity"] = serde_json::json!({"Normalized": 700});
        let err = parse_event(event(IMPORTED, serde_json::json!({"findings": [f]})))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("at `detail.findings[0].Severity.Normalized`: is 700"),
            "{err}"
        );
        let err = parse_event(event("Security Hub Insight Results", serde_json::json!({})))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("detail-type `Security Hub Insight Results`"),
            "{err}"
        );
        let err = parse_event(event(
            CUSTOM_ACTION,
            serde_json::json!({"findings": [finding()]}),
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("`detail.actionName` is missing"), "{err}");
    }

    #[test]
    fn a_custom_action_keeps_its_name_and_arn() {
        let ev = parse_event(event(
            CUSTOM_ACTION,
            serde_json::json!({"actionName": "firebreak-contain", "actionDescription": "a\nb", "findings": [finding()]}),
        ))
        .unwrap();
        let a = ev.custom_action.unwrap();
        assert_eq!(a.name, "firebreak-contain");
        assert_eq!(a.description.as_deref(), Some("a\\nb"));
        assert_eq!(
            a.arn.as_deref(),
            Some("arn:aws:securityhub:eu-west-1:111122223333:action/custom/contain")
        );
    }
}
