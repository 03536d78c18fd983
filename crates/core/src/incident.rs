//! One normalised incident per signal, whatever envelope it came in.
//!
//! The id is derived from the incident's identity, never from the delivery:
//! a GuardDuty finding is (account, region, finding id), so a redelivery, the
//! same finding through SNS, or GuardDuty's own re-send of a recurring finding
//! all give the same id; an alarm is (alarm ARN, state change time, new state);
//! a manual request is the hash of its canonical content. A GuardDuty
//! finding that Security Hub delivers is the same (account, region, finding
//! id), so it is the same incident whichever path brings it first; another
//! product's Security Hub finding is (product ARN, finding id).
//!
//! GuardDuty findings are read in `incident/guardduty.rs`, Security Hub events in
//! `incident/securityhub.rs`; alarms and a responder's requests here.

mod guardduty;
mod securityhub;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::error::ParseError;
use crate::event::{Alarm, Command, CommandOp, Event, ManualAlert, ManualRequest, SnsBody};
use crate::guardduty::RemoteIpDetails;
use crate::ids;
use crate::sanitize;
use crate::severity::{Facts, Severity};
pub use crate::vocabulary::{CustomAction, Direction, Source};

/// How the remote address reached the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// Traffic to or from resources in a VPC: a network ACL can stop it.
    Network,
    /// Calls to AWS or Kubernetes API endpoints: a network ACL cannot stop
    /// them; the credential action does.
    Api,
}

/// A remote address and the way its traffic went.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Address {
    /// The address.
    pub ip: IpAddr,
    /// Its direction.
    pub direction: Direction,
    /// How it reached the account.
    pub via: Via,
}

/// The credential named by the incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKey {
    /// `AKIA…` or `ASIA…` (or a placeholder in samples).
    pub id: String,
    /// User name, or role name for assumed roles.
    pub user_name: Option<String>,
    /// `IAMUser`, `AssumedRole`, `Role`, `Root`, …
    pub user_type: Option<String>,
    /// Principal id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<String>,
}

/// One network interface of the instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Eni {
    /// ENI id.
    pub id: Option<String>,
    /// Subnet.
    pub subnet: Option<String>,
    /// VPC.
    pub vpc: Option<String>,
    /// Security groups at the time of the finding.
    pub security_groups: Vec<String>,
}

/// The instance named by the incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// Instance id.
    pub id: String,
    /// Subnets of its ENIs.
    pub subnets: Vec<String>,
    /// VPCs of its ENIs.
    pub vpcs: Vec<String>,
    /// Its ENIs.
    pub enis: Vec<Eni>,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
}

impl Instance {
    /// An instance known only by its id (a responder's request); its
    /// network details are looked up when it is isolated.
    pub fn named(id: &str) -> Instance {
        Instance {
            id: sanitize::name(id),
            subnets: Vec::new(),
            vpcs: Vec::new(),
            enis: Vec::new(),
            tags: BTreeMap::new(),
        }
    }
}

/// What the incident is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subjects {
    /// Every remote address, deduplicated, in order of first appearance.
    pub addresses: Vec<Address>,
    /// The access key.
    pub access_key: Option<AccessKey>,
    /// The instance.
    pub instance: Option<Instance>,
    /// The resource ARN.
    pub resource_arn: Option<String>,
    /// The IAM role whose sessions are involved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// An IAM user named without a key (a responder's alert or command).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user: Option<String>,
    /// Subnets named explicitly (a responder's block command).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub subnets: Vec<String>,
}

/// The alarm's evaluation window, for the offending-address query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Start, RFC 3339.
    pub start: String,
    /// End (the state change), RFC 3339.
    pub end: String,
}

/// What the signal said, capped and escaped: enough for a human to judge.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Short title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Longer text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// GuardDuty finding id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finding_id: Option<String>,
    /// GuardDuty finding ARN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finding_arn: Option<String>,
    /// GuardDuty's score.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finding_severity: Option<f64>,
    /// `TARGET` or `ACTOR`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_role: Option<String>,
    /// GuardDuty's action type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action_type: Option<String>,
    /// How often GuardDuty saw it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// First sighting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<String>,
    /// Last sighting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
    /// Domain queried (DNS findings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// API called.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    /// Caller's user agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Alarm name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alarm_name: Option<String>,
    /// Alarm ARN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alarm_arn: Option<String>,
    /// Why the alarm fired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alarm_reason: Option<String>,
    /// Alarm evaluation window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alarm_window: Option<Window>,
    /// Manual alert's threat level.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threat_level: Option<f64>,
    /// Who asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// Why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// SNS message id and record index, when delivered by SNS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sns_message_id: Option<String>,
    /// The ASFF `Id` of the Security Hub finding (for GuardDuty's, the
    /// finding ARN): with the product ARN, what names the finding to
    /// Security Hub's `BatchUpdateFindings`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub securityhub_finding_id: Option<String>,
    /// The ASFF `ProductArn` of the Security Hub finding.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub securityhub_product_arn: Option<String>,
    /// The name of the Security Hub custom action a responder chose.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub securityhub_custom_action: Option<String>,
    /// Things in the signal that were malformed and therefore not used.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub notes: Vec<String>,
}

/// One normalised incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// `fb-` and 20 hex digits of the SHA-256 of the identity below, as
    /// the event gave it.
    pub id: String,
    /// That identity (`guardduty:<account>:<region>:<finding id>`, …),
    /// control characters escaped and capped.
    pub key: String,
    /// Where it came from.
    pub source: Source,
    /// Finding type, alert type, or the alarm's alert type.
    #[serde(rename = "type")]
    pub incident_type: String,
    /// Its class.
    pub severity: Severity,
    /// Account to act in.
    pub account: Option<String>,
    /// Region to act in.
    pub region: Option<String>,
    /// A GuardDuty sample finding: bookkeeping only.
    pub sample: bool,
    /// When the signal was observed (RFC 3339 where it parsed).
    pub observed_at: Option<String>,
    /// What it is about.
    pub subjects: Subjects,
    /// The explicit command, for responder commands.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandOp>,
    /// What a responder asked for with a Security Hub custom action (its
    /// name is in the evidence): `record` changes nothing; `contain` runs
    /// the finding's own playbook, for other products' findings only as
    /// far as isolating an instance the finding names.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub requested: Option<CustomAction>,
    /// What the signal said.
    pub evidence: Evidence,
    /// SHA-256 of the whole input event.
    pub input_sha256: String,
}

/// A signal that is deliberately not an incident (an alarm back to OK, a
/// Security Hub finding a responder closed, a duplicate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ignored {
    /// SNS record index (0 for an event that came without SNS).
    pub record: usize,
    /// Index of the finding in a Security Hub event.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub finding: Option<usize>,
    /// Why.
    pub reason: String,
}

/// Turns an event into incidents (and the signals deliberately ignored).
pub fn from_event(
    event: &Event,
    input: &[u8],
    cfg: &Config,
) -> Result<(Vec<Incident>, Vec<Ignored>), ParseError> {
    let input_sha256 = hex(&Sha256::digest(input));
    let mut signals = Signals::default();
    match event {
        Event::Sns(items) => {
            for item in items {
                signals.record = Some(item.index);
                signals.sns_message_id =
                    Some(format!("{} (record {})", item.message_id, item.index));
                match &item.body {
                    SnsBody::Alarm(alarm) if alarm.new_state_value != "ALARM" => {
                        signals.ignore(
                            None,
                            format!(
                                "alarm `{}` changed to {}: not an incident to contain",
                                sanitize::name(&alarm.alarm_name),
                                sanitize::clean(&alarm.new_state_value, 20)
                            ),
                        );
                    }
                    SnsBody::Alarm(alarm) => signals.add(None, from_alarm(alarm, cfg)),
                    SnsBody::GuardDuty(g) => {
                        signals.add(None, guardduty::from_guardduty(&g.finding, cfg))
                    }
                    SnsBody::SecurityHub(s) => {
                        securityhub::collect(s, cfg, &mut signals).map_err(|e| {
                            ParseError::Record {
                                index: item.index,
                                source: Box::new(e),
                            }
                        })?
                    }
                }
            }
        }
        Event::GuardDuty(g) => signals.add(None, guardduty::from_guardduty(&g.finding, cfg)),
        Event::SecurityHub(s) => securityhub::collect(s, cfg, &mut signals)?,
        Event::Manual(request) => match request.as_ref() {
            ManualRequest::Alert(a) => signals.add(None, from_alert(a, cfg)?),
            ManualRequest::Command(c) => signals.add(None, from_command(c)?),
        },
    }
    let Signals {
        mut incidents,
        ignored,
        ..
    } = signals;
    for i in &mut incidents {
        i.input_sha256.clone_from(&input_sha256);
    }
    Ok((incidents, ignored))
}

/// The incidents of one event as they are found, and the signals set
/// aside. The same signal twice in one delivery (a re-publish, a fan-in of
/// two subscriptions, a finding listed twice) is one incident.
#[derive(Default)]
struct Signals {
    /// The SNS record being read, if the event came through SNS.
    record: Option<usize>,
    /// Its message id and index, for the evidence.
    sns_message_id: Option<String>,
    incidents: Vec<Incident>,
    ignored: Vec<Ignored>,
    /// Where each incident id was first seen: (record, finding).
    first: BTreeMap<String, (Option<usize>, Option<usize>)>,
}

impl Signals {
    /// Adds an incident, found in finding `finding` of the current record.
    fn add(&mut self, finding: Option<usize>, mut incident: Incident) {
        if let Some(&first) = self.first.get(&incident.id) {
            let reason = format!(
                "the same signal as {}: incident {} is handled once",
                origin_words(first),
                incident.id
            );
            self.ignore(finding, reason);
            return;
        }
        self.first
            .insert(incident.id.clone(), (self.record, finding));
        incident.evidence.sns_message_id = self.sns_message_id.clone();
        self.incidents.push(incident);
    }

    /// Sets a signal of the current record aside, with why.
    fn ignore(&mut self, finding: Option<usize>, reason: String) {
        self.ignored.push(Ignored {
            record: self.record.unwrap_or(0),
            finding,
            reason,
        });
    }
}

fn origin_words(origin: (Option<usize>, Option<usize>)) -> String {
    match origin {
        (Some(r), None) => format!("record {r}"),
        (Some(r), Some(f)) => format!("record {r}, finding {f}"),
        (None, Some(f)) => format!("finding {f}"),
        (None, None) => "an earlier signal".into(),
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The first 16 hex digits of the SHA-256 of `s`: short, stable names for
/// object keys (an action's target may be an ARN or a CIDR).
pub fn short_digest(s: &str) -> String {
    hex(&Sha256::digest(s.as_bytes()))[..16].to_string()
}

/// The incident id for an identity key.
pub fn incident_id(key: &str) -> String {
    format!("fb-{}", &hex(&Sha256::digest(key.as_bytes()))[..20])
}

fn new_incident(
    key: String,
    source: Source,
    incident_type: String,
    severity: Severity,
) -> Incident {
    Incident {
        // The id is derived from the key as the event gave it (so distinct
        // signals stay distinct); what is kept is escaped and capped, since
        // its parts (account, region, alarm ARN) are the event's text.
        id: incident_id(&key),
        key: sanitize::clean(&key, 4 * sanitize::NAME_CAP),
        source,
        incident_type,
        severity,
        account: None,
        region: None,
        sample: false,
        observed_at: None,
        subjects: Subjects::default(),
        command: None,
        requested: None,
        evidence: Evidence::default(),
        input_sha256: String::new(),
    }
}

fn adjust(mut incident: Incident, cfg: &Config, resource_role: Option<&str>) -> Incident {
    let directions: Vec<Direction> = incident
        .subjects
        .addresses
        .iter()
        .map(|a| a.direction)
        .collect();
    let tags: Vec<(String, String)> = incident
        .subjects
        .instance
        .as_ref()
        .map(|i| i.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let facts = Facts {
        source: incident.source,
        incident_type: &incident.incident_type,
        directions: &directions,
        resource_role,
        tags: &tags,
    };
    incident.severity = cfg.severity.adjust(incident.severity, &facts);
    incident
}

fn opt_name(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(sanitize::name)
}

fn opt_text(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .filter(|s| !s.trim().is_empty())
        .map(sanitize::text)
}

#[derive(Default)]
struct Addresses {
    list: Vec<Address>,
}

impl Addresses {
    fn add(
        &mut self,
        details: Option<&RemoteIpDetails>,
        (direction, via): (Direction, Via),
        path: &str,
        notes: &mut Vec<String>,
    ) {
        let Some(d) = details else { return };
        for raw in [&d.ip_address_v4, &d.ip_address_v6].into_iter().flatten() {
            // An IPv4-mapped IPv6 address is its IPv4 address for blocking.
            match raw.trim().parse::<IpAddr>().map(|ip| ip.to_canonical()) {
                Ok(ip) => {
                    let a = Address { ip, direction, via };
                    if !self.list.contains(&a) {
                        self.list.push(a);
                    }
                }
                Err(_) => notes.push(format!(
                    "{path}: `{}` is not an IP address",
                    sanitize::clean(raw, 64)
                )),
            }
        }
    }
}

fn unique(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    items.filter(|s| seen.insert(s.clone())).collect()
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn normalise_time(s: &str) -> String {
    parse_time(s)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| sanitize::name(s))
}

/// The region an alarm is in: from its ARN, else from the display name.
fn alarm_region(alarm: &Alarm) -> Option<String> {
    let from_arn = alarm
        .alarm_arn
        .as_deref()
        .unwrap_or_default()
        .split(':')
        .nth(3)
        .filter(|r| ids::is_region_code(r))
        .map(str::to_string);
    from_arn.or_else(|| {
        alarm.region.as_deref().and_then(|r| {
            if ids::is_region_code(r) {
                Some(r.to_string())
            } else {
                ids::region_from_display_name(r).map(str::to_string)
            }
        })
    })
}

fn from_alarm(alarm: &Alarm, cfg: &Config) -> Incident {
    // The alarm's identity is its ARN; an older notification without one
    // is named by its account, region and name instead.
    let alarm_id = match alarm.alarm_arn.as_deref().filter(|a| !a.trim().is_empty()) {
        Some(arn) => arn.to_string(),
        None => format!(
            "{}:{}:{}",
            alarm.aws_account_id,
            alarm.region.as_deref().unwrap_or_default(),
            alarm.alarm_name
        ),
    };
    let key = format!(
        "alarm:{alarm_id}:{}:{}",
        alarm.state_change_time, alarm.new_state_value
    );
    let (alert_type, severity) = cfg.severity.alarm(&alarm.alarm_name);
    let mut i = new_incident(key, Source::CloudwatchAlarm, alert_type, severity);
    i.account = Some(sanitize::name(&alarm.aws_account_id));
    i.region = alarm_region(alarm);
    i.observed_at = Some(normalise_time(&alarm.state_change_time));
    let mut ev = Evidence {
        title: Some(sanitize::name(&alarm.alarm_name)),
        description: opt_text(&alarm.alarm_description),
        alarm_name: Some(sanitize::name(&alarm.alarm_name)),
        alarm_arn: opt_name(&alarm.alarm_arn),
        alarm_reason: opt_text(&alarm.new_state_reason),
        ..Evidence::default()
    };
    if i.region.is_none() {
        ev.notes.push(format!(
            "region: neither the alarm ARN nor `{}` names a known region",
            sanitize::clean(alarm.region.as_deref().unwrap_or(""), 60)
        ));
    }
    match parse_time(&alarm.state_change_time) {
        Some(end) => {
            let t = alarm.trigger.clone().unwrap_or_default();
            // The window the alarm evaluated; at least five minutes, at most a day.
            // Both numbers come from the event: saturate, never overflow.
            let secs = t
                .period
                .unwrap_or(300)
                .max(1)
                .saturating_mul(t.evaluation_periods.unwrap_or(1).max(1))
                .clamp(300, 86_400);
            if let Some(start) = end.checked_sub_signed(chrono::Duration::seconds(secs)) {
                ev.alarm_window = Some(Window {
                    start: start.to_rfc3339_opts(SecondsFormat::Secs, true),
                    end: end.to_rfc3339_opts(SecondsFormat::Secs, true),
                });
            }
        }
        None => ev.notes.push(format!(
            "StateChangeTime: `{}` is not a timestamp",
            sanitize::clean(&alarm.state_change_time, 60)
        )),
    }
    i.evidence = ev;
    adjust(i, cfg, None)
}

fn canonical_key(prefix: &str, value: &impl Serialize) -> String {
    // Serialising our own struct is deterministic (fixed field order), so the
    // same request always gives the same key.
    let json = serde_json::to_vec(value).unwrap_or_default();
    format!("{prefix}:{}", hex(&Sha256::digest(&json)))
}

fn parse_ip_field(
    context: &'static str,
    field: &'static str,
    raw: &str,
) -> Result<IpAddr, ParseError> {
    let raw = raw.trim();
    if let Ok(ip) = raw.parse::<IpAddr>() {
        return Ok(ip.to_canonical());
    }
    match raw.parse::<ipnet::IpNet>() {
        Ok(net) if net.prefix_len() == net.max_prefix_len() => Ok(net.addr()),
        Ok(net) => Err(ParseError::Invalid {
            context,
            field,
            message: format!("is {net}: Firebreak blocks single hosts only (/32 or /128)"),
        }),
        Err(_) => Err(ParseError::Invalid {
            context,
            field,
            message: format!(
                "is `{}`: expected an IPv4 or IPv6 address",
                sanitize::clean(raw, 60)
            ),
        }),
    }
}

/// Reads the ARN shapes a responder may name.
fn subjects_from_arn(arn: &str, subjects: &mut Subjects) {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() != 6 || parts[0] != "arn" {
        return;
    }
    let (service, resource) = (parts[2], parts[5]);
    match (service, resource.split_once('/')) {
        ("ec2", Some(("instance", id))) => subjects.instance = Some(Instance::named(id)),
        ("iam", Some(("role", name))) => {
            subjects.role = name.rsplit('/').next().map(sanitize::name)
        }
        ("sts", Some(("assumed-role", rest))) => {
            subjects.role = rest.split('/').next().map(sanitize::name)
        }
        _ => {}
    }
}

fn from_alert(a: &ManualAlert, cfg: &Config) -> Result<Incident, ParseError> {
    const CTX: &str = "manual alert";
    let alert_type = sanitize::name(&a.alert_type.trim().to_ascii_uppercase());
    let severity = cfg.severity.manual(&alert_type, a.threat_level);
    let mut i = new_incident(
        canonical_key("manual-alert", a),
        Source::Manual,
        alert_type,
        severity,
    );
    i.account = opt_name(&a.account);
    i.region = opt_name(&a.region);
    i.observed_at = a.timestamp.as_deref().map(normalise_time);
    if let Some(ip) = a.source_ip.as_deref().filter(|s| !s.trim().is_empty()) {
        i.subjects.addresses.push(Address {
            ip: parse_ip_field(CTX, "source_ip", ip)?,
            direction: Direction::Inbound,
            via: Via::Network,
        });
    }
    let user_name = opt_name(&a.user_name);
    if let Some(key) = opt_name(&a.access_key_id) {
        let user_type = if ids::is_temporary_key(&key) {
            "AssumedRole"
        } else {
            "IAMUser"
        };
        i.subjects.access_key = Some(AccessKey {
            id: key,
            user_name: user_name.clone(),
            user_type: Some(user_type.into()),
            principal_id: None,
        });
    }
    if let Some(arn) = opt_name(&a.resource_arn) {
        subjects_from_arn(&arn, &mut i.subjects);
        i.subjects.resource_arn = Some(arn);
    }
    i.evidence = Evidence {
        title: Some(format!("{} reported by a responder", i.incident_type)),
        description: opt_text(&a.description),
        threat_level: a.threat_level,
        requested_by: opt_name(&a.requested_by),
        ..Evidence::default()
    };
    if i.subjects.access_key.is_none() {
        i.subjects.user = user_name;
    }
    let mut i = adjust(i, cfg, None);
    if let Some(u) = i.subjects.user.as_deref() {
        if i.severity < Severity::Critical {
            let note = format!(
                "user `{u}` named without an access key: a user is quarantined at CRITICAL, or by the quarantine_user command"
            );
            i.evidence.notes.push(note);
        }
    }
    Ok(i)
}

fn from_command(c: &Command) -> Result<Incident, ParseError> {
    const CTX: &str = "responder command";
    let (kind, severity) = match &c.op {
        CommandOp::BlockIp { .. } => ("COMMAND:BLOCK_IP", Severity::High),
        CommandOp::DeactivateAccessKey { .. } => ("COMMAND:DEACTIVATE_ACCESS_KEY", Severity::High),
        CommandOp::RevokeRoleSessions { .. } => ("COMMAND:REVOKE_ROLE_SESSIONS", Severity::High),
        CommandOp::IsolateInstance { .. } => ("COMMAND:ISOLATE_INSTANCE", Severity::High),
        CommandOp::QuarantineUser { .. } => ("COMMAND:QUARANTINE_USER", Severity::High),
        CommandOp::Release { .. } => ("COMMAND:RELEASE", Severity::Medium),
        // Everyone is told, stakeholders included: a service is taken down.
        CommandOp::Lockdown { .. } => ("COMMAND:LOCKDOWN", Severity::Critical),
    };
    let mut i = new_incident(
        canonical_key("command", c),
        Source::Manual,
        kind.into(),
        severity,
    );
    i.account = opt_name(&c.account);
    i.region = opt_name(&c.region);
    match &c.op {
        CommandOp::BlockIp {
            ip,
            direction,
            subnet_ids,
        } => {
            let direction = match direction.as_deref().map(str::to_ascii_lowercase).as_deref() {
                None | Some("inbound") | Some("ingress") => Direction::Inbound,
                Some("outbound") | Some("egress") => Direction::Outbound,
                Some(other) => {
                    return Err(ParseError::Invalid {
                        context: CTX,
                        field: "direction",
                        message: format!(
                            "is `{}`: expected inbound or outbound",
                            sanitize::clean(other, 40)
                        ),
                    })
                }
            };
            i.subjects.addresses.push(Address {
                ip: parse_ip_field(CTX, "ip", ip)?,
                direction,
                via: Via::Network,
            });
            i.subjects.subnets = subnet_ids.iter().map(|s| sanitize::name(s)).collect();
        }
        CommandOp::DeactivateAccessKey {
            access_key_id,
            user_name,
        } => {
            i.subjects.access_key = Some(AccessKey {
                id: sanitize::name(access_key_id),
                user_name: Some(sanitize::name(user_name)),
                user_type: Some("IAMUser".into()),
                principal_id: None,
            });
        }
        CommandOp::RevokeRoleSessions { role_name } => {
            i.subjects.role = Some(sanitize::name(role_name))
        }
        CommandOp::IsolateInstance { instance_id } => {
            i.subjects.instance = Some(Instance::named(instance_id))
        }
        CommandOp::QuarantineUser { user_name } => {
            i.subjects.user = Some(sanitize::name(user_name))
        }
        // Its targets are the command's own (see `crate::lockdown`).
        CommandOp::Release { .. } | CommandOp::Lockdown { .. } => {}
    }
    i.command = Some(c.op.cleaned());
    i.evidence = Evidence {
        title: Some(format!(
            "{} requested by {}",
            kind,
            sanitize::name(&c.requested_by)
        )),
        requested_by: Some(sanitize::name(&c.requested_by)),
        reason: Some(sanitize::text(&c.reason)),
        ..Evidence::default()
    };
    Ok(i)
}
