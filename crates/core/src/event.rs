//! The envelopes Firebreak accepts, parsed into types at the edge.
//!
//! Detection looks at the top-level keys once, then deserialises into the one
//! typed shape they announce, so an error names that shape and the JSON path of
//! the offending field ("GuardDuty finding: at `detail.severity`: invalid type:
//! string, expected f64") instead of "data did not match any variant".
//!
//! * SNS events use `aws_lambda_events::sns::SnsEvent`; every record is read,
//!   and a refused record refuses the whole event (nothing is half-applied;
//!   the delivery is retried or dead-lettered).
//! * CloudWatch alarm messages use our own struct: `aws_lambda_events`' alarm
//!   payload types `AlarmDescription` as a `String`, but CloudWatch sends `null`
//!   for an alarm without a description.
//! * EventBridge uses `aws_lambda_events::eventbridge::EventBridgeEvent` with
//!   our GuardDuty model as its `detail`, or our Security Hub model
//!   ([`crate::securityhub`]) for `aws.securityhub`; the source alone picks
//!   the model, so nothing that parsed before parses differently. Either
//!   envelope may come inside SNS.
//! * Manual requests are the team's alert shape or an explicit command.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sns::SnsEvent;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{typed, ParseError};
use crate::guardduty::Finding;
pub use crate::lockdown::{EcsService, EvidenceSource};
use crate::sanitize;
pub use crate::securityhub::SecurityHubEvent;

/// The largest event Firebreak reads (SNS caps messages at 256 KiB and
/// EventBridge events at 256 KiB; 1 MiB leaves room for wrapping).
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;

const EXPECTED: &str = "an SNS event (`Records`), an EventBridge GuardDuty or Security Hub event (`source`, `detail-type`, `detail`), a GuardDuty finding (`schemaVersion`, `type`, `service`), a manual alert (`alert_type`) or a responder command (`command`)";

/// One parsed input event.
#[derive(Debug, Clone)]
pub enum Event {
    /// An SNS delivery: one item per record, in order.
    Sns(Vec<SnsItem>),
    /// A GuardDuty finding from EventBridge (or bare, as the console exports it).
    GuardDuty(Box<GuardDutyEvent>),
    /// Security Hub findings from EventBridge, imported or sent by a
    /// responder's custom action.
    SecurityHub(Box<SecurityHubEvent>),
    /// A request from a human responder.
    Manual(Box<ManualRequest>),
}

/// One record of an SNS event.
#[derive(Debug, Clone)]
pub struct SnsItem {
    /// 0-based position in the event.
    pub index: usize,
    /// SNS message id (not used for identity: a re-publish gets a new one).
    pub message_id: String,
    /// What the record's `Message` held.
    pub body: SnsBody,
}

/// The content of one SNS message.
#[derive(Debug, Clone)]
pub enum SnsBody {
    /// A CloudWatch alarm state change.
    Alarm(Box<Alarm>),
    /// A GuardDuty finding forwarded through SNS.
    GuardDuty(Box<GuardDutyEvent>),
    /// A Security Hub event forwarded through SNS.
    SecurityHub(Box<SecurityHubEvent>),
}

/// What an EventBridge envelope carried.
enum EventBridgeBody {
    GuardDuty(Box<GuardDutyEvent>),
    SecurityHub(Box<SecurityHubEvent>),
}

/// A GuardDuty finding and what its envelope said.
#[derive(Debug, Clone)]
pub struct GuardDutyEvent {
    /// EventBridge event id, when there was an envelope.
    pub event_id: Option<String>,
    /// The finding.
    pub finding: Finding,
}

/// A CloudWatch alarm notification (the JSON inside the SNS `Message`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Alarm {
    /// Alarm name: classified by name patterns.
    pub alarm_name: String,
    /// May be `null`.
    #[serde(default)]
    pub alarm_description: Option<String>,
    /// Account of the alarm.
    #[serde(rename = "AWSAccountId")]
    pub aws_account_id: String,
    /// `ALARM`, `OK` or `INSUFFICIENT_DATA`.
    pub new_state_value: String,
    /// Previous state.
    #[serde(default)]
    pub old_state_value: Option<String>,
    /// CloudWatch's explanation.
    #[serde(default)]
    pub new_state_reason: Option<String>,
    /// e.g. `2024-05-02T03:04:05.123+0000`.
    pub state_change_time: String,
    /// A display name such as "US East (N. Virginia)", not a region code.
    #[serde(default)]
    pub region: Option<String>,
    /// `arn:aws:cloudwatch:<region>:<account>:alarm:<name>`; older
    /// notifications (still sent by some accounts' alarms) have none.
    #[serde(default)]
    pub alarm_arn: Option<String>,
    /// The metric and its evaluation window.
    #[serde(default)]
    pub trigger: Option<AlarmTrigger>,
}

/// `Trigger` of an alarm notification.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AlarmTrigger {
    /// Metric name.
    #[serde(default)]
    pub metric_name: Option<String>,
    /// Metric namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Seconds per period.
    #[serde(default)]
    pub period: Option<i64>,
    /// Periods evaluated.
    #[serde(default)]
    pub evaluation_periods: Option<i64>,
    /// Threshold.
    #[serde(default)]
    pub threshold: Option<f64>,
}

/// A request from a human responder (direct invoke or the CLI).
#[derive(Debug, Clone)]
pub enum ManualRequest {
    /// The team's alert shape.
    Alert(ManualAlert),
    /// An explicit command.
    Command(Command),
}

/// The alert shape the team already uses.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ManualAlert {
    /// `UNAUTHORIZED_ACCESS`, `DATA_EXFILTRATION`, `SYSTEM_COMPROMISE`,
    /// `SUSPICIOUS_ACTIVITY`, `FAILED_LOGIN`, …
    pub alert_type: String,
    /// The attacker's address.
    #[serde(default)]
    pub source_ip: Option<String>,
    /// The user involved.
    #[serde(default)]
    pub user_name: Option<String>,
    /// The access key involved (only this key is ever deactivated).
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// The resource involved (instance, user, role ARN).
    #[serde(default)]
    pub resource_arn: Option<String>,
    /// 0–10.
    #[serde(default)]
    pub threat_level: Option<f64>,
    /// When it was observed.
    #[serde(default)]
    pub timestamp: Option<String>,
    /// Account to act in (default: the responder's own).
    #[serde(default)]
    pub account: Option<String>,
    /// Region to act in (default: the responder's own).
    #[serde(default)]
    pub region: Option<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Who raised it.
    #[serde(default)]
    pub requested_by: Option<String>,
}

/// An explicit responder command, with who asked and why.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Command {
    /// What to do.
    #[serde(flatten)]
    pub op: CommandOp,
    /// Who asked (recorded and notified).
    pub requested_by: String,
    /// Why (recorded and notified).
    pub reason: String,
    /// Account to act in (default: the responder's own).
    #[serde(default)]
    pub account: Option<String>,
    /// Region to act in (default: the responder's own).
    #[serde(default)]
    pub region: Option<String>,
    /// Makes an otherwise identical request a new incident.
    #[serde(default)]
    pub request_id: Option<String>,
}

/// The operations a responder can ask for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum CommandOp {
    /// Block one address (a host: /32 or /128).
    BlockIp {
        /// Address or host CIDR.
        ip: String,
        /// `inbound` (default) or `outbound`.
        #[serde(default)]
        direction: Option<String>,
        /// Subnets whose NACLs get the entry (default: the configured NACLs).
        #[serde(default)]
        subnet_ids: Vec<String>,
    },
    /// Deactivate one long-term access key.
    DeactivateAccessKey {
        /// The key.
        access_key_id: String,
        /// Its user.
        user_name: String,
    },
    /// Revoke a role's sessions issued before now.
    RevokeRoleSessions {
        /// The role.
        role_name: String,
    },
    /// Isolate an instance (and snapshot its volumes).
    IsolateInstance {
        /// The instance.
        instance_id: String,
    },
    /// Lock an IAM user out: an inline deny-all policy on it.
    QuarantineUser {
        /// The user.
        user_name: String,
    },
    /// Undo an earlier incident's actions, or one of them.
    Release {
        /// The incident whose actions to undo.
        incident_id: String,
        /// Index of one action in that incident's plan (default: all).
        #[serde(default)]
        action: Option<u32>,
        /// Needed to re-activate an access key.
        #[serde(default)]
        force: bool,
    },
    /// The emergency lockdown (see [`crate::lockdown`]): every list is
    /// optional, at least one target is required.
    Lockdown {
        /// Services to scale to zero.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ecs_services: Vec<EcsService>,
        /// Application Load Balancer listeners whose default actions
        /// become a fixed 503.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        listener_arns: Vec<String>,
        /// Secrets to rotate now.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        secret_ids: Vec<String>,
        /// Log groups to keep longer.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        log_groups: Vec<String>,
        /// S3 prefixes to copy aside as evidence.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        evidence: Vec<EvidenceSource>,
    },
}

impl CommandOp {
    /// The operation with every string capped and its control characters
    /// escaped: what a record keeps of a request (a responder's input is
    /// still input; a pasted id can carry anything).
    pub fn cleaned(&self) -> CommandOp {
        let name = |s: &String| sanitize::name(s);
        match self {
            CommandOp::BlockIp {
                ip,
                direction,
                subnet_ids,
            } => CommandOp::BlockIp {
                ip: name(ip),
                direction: direction.as_ref().map(name),
                subnet_ids: subnet_ids.iter().map(name).collect(),
            },
            CommandOp::DeactivateAccessKey {
                access_key_id,
                user_name,
            } => CommandOp::DeactivateAccessKey {
                access_key_id: name(access_key_id),
                user_name: name(user_name),
            },
            CommandOp::RevokeRoleSessions { role_name } => CommandOp::RevokeRoleSessions {
                role_name: name(role_name),
            },
            CommandOp::IsolateInstance { instance_id } => CommandOp::IsolateInstance {
                instance_id: name(instance_id),
            },
            CommandOp::QuarantineUser { user_name } => CommandOp::QuarantineUser {
                user_name: name(user_name),
            },
            CommandOp::Release {
                incident_id,
                action,
                force,
            } => CommandOp::Release {
                incident_id: name(incident_id),
                action: *action,
                force: *force,
            },
            // Checked when read (`lockdown::check`): nothing to cut or escape.
            CommandOp::Lockdown { .. } => self.clone(),
        }
    }
}

/// Parses one event from raw bytes. Never panics; every refusal says what was
/// expected.
pub fn parse(bytes: &[u8]) -> Result<Event, ParseError> {
    if bytes.len() > MAX_EVENT_BYTES {
        return Err(ParseError::TooLarge {
            size: bytes.len(),
            limit: MAX_EVENT_BYTES,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| ParseError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let value = parse_json(text)?;
    parse_value(value)
}

fn parse_json(text: &str) -> Result<Value, ParseError> {
    if text.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    serde_json::from_str(text).map_err(|e| ParseError::Json {
        line: e.line(),
        column: e.column(),
        message: strip_position(&e.to_string()),
    })
}

/// serde_json appends " at line L column C"; we report those separately.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Object(map) if map.is_empty() => "an empty object".to_string(),
        Value::Object(map) => {
            let keys: Vec<String> = map
                .keys()
                .take(8)
                .map(|k| format!("`{}`", sanitize::clean(k, 40)))
                .collect();
            let more = if map.len() > 8 { ", …" } else { "" };
            format!("an object with keys {}{more}", keys.join(", "))
        }
        Value::Array(_) => "a JSON array".to_string(),
        Value::String(_) => "a JSON string".to_string(),
        Value::Number(_) => "a JSON number".to_string(),
        Value::Bool(_) => "a JSON boolean".to_string(),
        Value::Null => "null".to_string(),
    }
}

fn parse_value(value: Value) -> Result<Event, ParseError> {
    let Value::Object(obj) = &value else {
        return Err(ParseError::UnknownShape {
            expected: EXPECTED,
            found: describe(&value),
        });
    };
    if obj.contains_key("Records") {
        return parse_sns(value);
    }
    if is_eventbridge(obj) {
        return parse_eventbridge(value).map(|body| match body {
            EventBridgeBody::GuardDuty(g) => Event::GuardDuty(g),
            EventBridgeBody::SecurityHub(s) => Event::SecurityHub(s),
        });
    }
    if is_bare_finding(obj) {
        let finding = parse_finding(value, "")?;
        return Ok(Event::GuardDuty(Box::new(GuardDutyEvent {
            event_id: None,
            finding,
        })));
    }
    if obj.contains_key("command") {
        return parse_command(value).map(|c| Event::Manual(Box::new(ManualRequest::Command(c))));
    }
    if obj.contains_key("alert_type") {
        return parse_alert(value).map(|a| Event::Manual(Box::new(ManualRequest::Alert(a))));
    }
    Err(ParseError::UnknownShape {
        expected: EXPECTED,
        found: describe(&value),
    })
}

fn is_eventbridge(obj: &Map<String, Value>) -> bool {
    obj.contains_key("detail-type") || (obj.contains_key("source") && obj.contains_key("detail"))
}

fn is_bare_finding(obj: &Map<String, Value>) -> bool {
    obj.contains_key("schemaVersion") && obj.contains_key("type") && obj.contains_key("service")
}

fn parse_sns(value: Value) -> Result<Event, ParseError> {
    let event: SnsEvent = typed(value, "SNS event", "")?;
    if event.records.is_empty() {
        return Err(ParseError::Invalid {
            context: "SNS event",
            field: "Records",
            message: "is empty: expected at least one record".into(),
        });
    }
    let mut items = Vec::with_capacity(event.records.len());
    for (index, record) in event.records.into_iter().enumerate() {
        let body = parse_sns_message(&record.sns.message).map_err(|e| ParseError::Record {
            index,
            source: Box::new(e),
        })?;
        items.push(SnsItem {
            index,
            message_id: sanitize::name(&record.sns.message_id),
            body,
        });
    }
    Ok(Event::Sns(items))
}

fn parse_sns_message(message: &str) -> Result<SnsBody, ParseError> {
    const EXPECTED_MESSAGE: &str = "a CloudWatch alarm notification (`AlarmName`, `NewStateValue`, …) or a GuardDuty or Security Hub EventBridge event in the SNS `Message`";
    let value = parse_json(message).map_err(|e| match e {
        ParseError::Json {
            line,
            column,
            message,
        } => ParseError::Json {
            line,
            column,
            message: format!("in SNS `Message`: {message}"),
        },
        ParseError::Empty => ParseError::UnknownShape {
            expected: EXPECTED_MESSAGE,
            found: "an empty SNS `Message`".into(),
        },
        other => other,
    })?;
    let Value::Object(obj) = &value else {
        return Err(ParseError::UnknownShape {
            expected: EXPECTED_MESSAGE,
            found: describe(&value),
        });
    };
    if obj.contains_key("AlarmName") {
        let alarm: Alarm = typed(value, "CloudWatch alarm", "Sns.Message")?;
        validate_alarm(&alarm)?;
        return Ok(SnsBody::Alarm(Box::new(alarm)));
    }
    if is_eventbridge(obj) {
        return parse_eventbridge(value).map(|body| match body {
            EventBridgeBody::GuardDuty(g) => SnsBody::GuardDuty(g),
            EventBridgeBody::SecurityHub(s) => SnsBody::SecurityHub(s),
        });
    }
    if is_bare_finding(obj) {
        let finding = parse_finding(value, "Sns.Message")?;
        return Ok(SnsBody::GuardDuty(Box::new(GuardDutyEvent {
            event_id: None,
            finding,
        })));
    }
    Err(ParseError::UnknownShape {
        expected: EXPECTED_MESSAGE,
        found: describe(&value),
    })
}

fn validate_alarm(alarm: &Alarm) -> Result<(), ParseError> {
    const CTX: &str = "CloudWatch alarm";
    if !matches!(
        alarm.new_state_value.as_str(),
        "ALARM" | "OK" | "INSUFFICIENT_DATA"
    ) {
        return Err(ParseError::Invalid {
            context: CTX,
            field: "NewStateValue",
            message: format!(
                "is `{}`: expected ALARM, OK or INSUFFICIENT_DATA",
                sanitize::clean(&alarm.new_state_value, 40)
            ),
        });
    }
    if alarm.alarm_name.trim().is_empty() {
        return Err(ParseError::Invalid {
            context: CTX,
            field: "AlarmName",
            message: "is empty".into(),
        });
    }
    Ok(())
}

fn parse_eventbridge(value: Value) -> Result<EventBridgeBody, ParseError> {
    // Look at source and detail-type before the detail, so an event of
    // another kind is named as such rather than as a broken finding.
    let source = value
        .get("source")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if source == "aws.securityhub" {
        return crate::securityhub::parse_event(value)
            .map(|s| EventBridgeBody::SecurityHub(Box::new(s)));
    }
    let detail_type = value
        .get("detail-type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if source != "aws.guardduty" || detail_type != "GuardDuty Finding" {
        return Err(ParseError::UnknownShape {
            expected: "an EventBridge event with source `aws.guardduty` and detail-type `GuardDuty Finding`, or source `aws.securityhub` and detail-type `Security Hub Findings - Imported` or `Security Hub Findings - Custom Action`",
            found: format!(
                "source `{}`, detail-type `{}`",
                sanitize::clean(source, 60),
                sanitize::clean(detail_type, 60)
            ),
        });
    }
    let event: EventBridgeEvent<Value> = typed(value, "EventBridge event", "")?;
    let finding = parse_finding(event.detail, "detail")?;
    Ok(EventBridgeBody::GuardDuty(Box::new(GuardDutyEvent {
        event_id: event.id.map(|i| sanitize::name(&i)),
        finding,
    })))
}

fn parse_finding(value: Value, prefix: &str) -> Result<Finding, ParseError> {
    const CTX: &str = "GuardDuty finding";
    let finding: Finding = typed(value, CTX, prefix)?;
    if !(finding.severity.is_finite() && (0.0..=10.0).contains(&finding.severity)) {
        return Err(ParseError::Invalid {
            context: CTX,
            field: "severity",
            message: format!("is {}: expected a number from 0 to 10", finding.severity),
        });
    }
    if finding.id.trim().is_empty() {
        return Err(ParseError::Invalid {
            context: CTX,
            field: "id",
            message: "is empty".into(),
        });
    }
    Ok(finding)
}

fn parse_alert(value: Value) -> Result<ManualAlert, ParseError> {
    const CTX: &str = "manual alert";
    let alert: ManualAlert = typed(value, CTX, "")?;
    if alert.alert_type.trim().is_empty() {
        return Err(ParseError::Invalid {
            context: CTX,
            field: "alert_type",
            message: "is empty: expected e.g. UNAUTHORIZED_ACCESS".into(),
        });
    }
    if let Some(level) = alert.threat_level {
        if !(level.is_finite() && (0.0..=10.0).contains(&level)) {
            return Err(ParseError::Invalid {
                context: CTX,
                field: "threat_level",
                message: format!("is {level}: expected a number from 0 to 10"),
            });
        }
    }
    Ok(alert)
}

fn parse_command(value: Value) -> Result<Command, ParseError> {
    const CTX: &str = "responder command";
    if let Some(name) = value.get("command") {
        let known = [
            "block_ip",
            "deactivate_access_key",
            "revoke_role_sessions",
            "isolate_instance",
            "quarantine_user",
            "release",
            "lockdown",
        ];
        if !name.as_str().is_some_and(|n| known.contains(&n)) {
            return Err(ParseError::Invalid {
                context: CTX,
                field: "command",
                message: format!(
                    "is {}: expected one of {}",
                    sanitize::clean(&name.to_string(), 60),
                    known.join(", ")
                ),
            });
        }
    }
    if value.get("command").and_then(Value::as_str) == Some("lockdown") {
        crate::lockdown::read(&value)?;
    }
    let command: Command = typed(value, CTX, "")?;
    for (field, text) in [
        ("requested_by", &command.requested_by),
        ("reason", &command.reason),
    ] {
        if text.trim().is_empty() {
            return Err(ParseError::Invalid {
                context: CTX,
                field,
                message: "is empty: say who asked and why".into(),
            });
        }
    }
    Ok(command)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_what_was_expected() {
        let err = parse(b"{\"hello\": 1}").unwrap_err().to_string();
        assert!(
            err.contains("unrecognised event") && err.contains("`hello`"),
            "{err}"
        );
        let err = parse(b"{\"Records\": [").unwrap_err().to_string();
        assert!(
            err.starts_with("event is not valid JSON at line 1"),
            "{err}"
        );
        let err = parse(&[b'{', 0xff, b'}']).unwrap_err();
        assert_eq!(err, ParseError::NotUtf8 { offset: 1 });
        let big = vec![b' '; MAX_EVENT_BYTES + 1];
        assert!(matches!(parse(&big), Err(ParseError::TooLarge { .. })));
        assert_eq!(parse(b"  \n").unwrap_err(), ParseError::Empty);
    }

    #[test]
    fn wrong_type_names_the_path() {
        let ev = br#"{"source":"aws.guardduty","detail-type":"GuardDuty Finding","detail":{"id":"x","type":"t","severity":"high","accountId":"123456789012","region":"us-east-1"}}"#;
        let err = parse(ev).unwrap_err().to_string();
        assert!(
            err.contains("GuardDuty finding: at `detail.severity`"),
            "{err}"
        );
    }

    #[test]
    fn other_eventbridge_sources_are_named() {
        let ev = br#"{"source":"aws.ec2","detail-type":"EC2 Instance State-change Notification","detail":{}}"#;
        let err = parse(ev).unwrap_err().to_string();
        assert!(err.contains("source `aws.ec2`"), "{err}");
    }

    #[test]
    fn unknown_command_is_named() {
        let err = parse(br#"{"command":"delete_everything","requested_by":"a","reason":"b"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`command` is \"delete_everything\": expected one of block_ip"),
            "{err}"
        );
        let err = parse(br#"{"command":"isolate_instance","instance_id":"i-12345678","requested_by":" ","reason":"b"}"#).unwrap_err().to_string();
        assert!(err.contains("`requested_by` is empty"), "{err}");
    }
}
