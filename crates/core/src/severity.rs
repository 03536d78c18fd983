//! Severity: one base class per source, then an ordered list of adjustments.
//!
//! * GuardDuty findings use GuardDuty's documented bands.
//! * Manual alerts use the team's playbook: `UNAUTHORIZED_ACCESS` or threat
//!   level ≥ 9 → CRITICAL; `DATA_EXFILTRATION`, `SYSTEM_COMPROMISE` or ≥ 7 →
//!   HIGH; `SUSPICIOUS_ACTIVITY`, `FAILED_LOGIN` or ≥ 5 → MEDIUM; else LOW.
//! * CloudWatch alarms are classified by name patterns (first match wins).
//! * Security Hub findings of other products use their `Severity.Label`
//!   (INFORMATIONAL and LOW → LOW, MEDIUM, HIGH, CRITICAL), else the
//!   deprecated `Normalized` score in Security Hub's bands (0–39 LOW,
//!   40–69 MEDIUM, 70–89 HIGH, 90–100 CRITICAL). GuardDuty's findings
//!   through Security Hub keep GuardDuty's own score and bands.
//!
//! Adjustments (`[[severity.rules]]` in the policy file) then raise, lower or
//! set the class by finding type, direction, resource role, tags or source.

use std::fmt;

use globset::{GlobBuilder, GlobMatcher};
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::vocabulary::{Direction, Source};

/// How bad an incident is; decides the playbook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    /// Record and tell the team.
    Low,
    /// Raise monitoring.
    Medium,
    /// Isolate what the incident names.
    High,
    /// Block, deactivate, isolate.
    Critical,
}

impl Severity {
    const ALL: [Severity; 4] = [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// GuardDuty's documented bands: Low 1.0–3.9, Medium 4.0–6.9, High
    /// 7.0–8.9, Critical 9.0–10.0.
    pub fn from_guardduty(score: f64) -> Severity {
        if score >= 9.0 {
            Severity::Critical
        } else if score >= 7.0 {
            Severity::High
        } else if score >= 4.0 {
            Severity::Medium
        } else {
            Severity::Low
        }
    }

    /// Security Hub's documented bands for the deprecated `Normalized`
    /// score: 0 INFORMATIONAL and 1–39 LOW (both LOW here), 40–69 MEDIUM,
    /// 70–89 HIGH, 90–100 CRITICAL.
    pub fn from_normalized(score: i64) -> Severity {
        if score >= 90 {
            Severity::Critical
        } else if score >= 70 {
            Severity::High
        } else if score >= 40 {
            Severity::Medium
        } else {
            Severity::Low
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    fn shifted(self, by: i64) -> Severity {
        let i = (self.index() as i64 + by).clamp(0, 3);
        Severity::ALL[i as usize]
    }

    /// The class a name means, in any case (`high`, `HIGH`).
    pub fn parse(name: &str) -> Option<Severity> {
        Severity::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(name.trim()))
    }

    /// The uppercase name used in plans, records and notices.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name pattern for CloudWatch alarms, as written in the policy file.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlarmPatternSpec {
    /// Glob over the alarm name, case-insensitive (`*failed-login*`).
    pub pattern: String,
    /// The alert type the alarm stands for (`FAILED_LOGIN` triggers the
    /// offending-address query).
    pub alert_type: String,
    /// Its class.
    pub severity: Severity,
}

/// A manual alert type and its class.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlertTypeSpec {
    /// e.g. `DATA_EXFILTRATION`.
    pub alert_type: String,
    /// Its class.
    pub severity: Severity,
}

/// An adjustment, as written in the policy file. Every condition given must
/// hold; exactly one of `set`, `raise`, `lower`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// `guardduty` (native, or through Security Hub), `securityhub` (other
    /// products' findings through Security Hub), `cloudwatch_alarm` or
    /// `manual`.
    #[serde(default)]
    pub source: Option<Source>,
    /// Glob over the incident type (finding type, alert type).
    #[serde(default)]
    pub finding_type: Option<String>,
    /// `INBOUND` or `OUTBOUND`: some address of the incident has it.
    #[serde(default)]
    pub direction: Option<Direction>,
    /// `TARGET` or `ACTOR` (GuardDuty's `service.resourceRole`).
    #[serde(default)]
    pub resource_role: Option<String>,
    /// `key=value`, or `key` alone, on the instance's tags.
    #[serde(default)]
    pub tag: Option<String>,
    /// Set the class.
    #[serde(default)]
    pub set: Option<Severity>,
    /// Raise by this many classes.
    #[serde(default)]
    pub raise: Option<u8>,
    /// Lower by this many classes.
    #[serde(default)]
    pub lower: Option<u8>,
}

/// An adjustment ready to evaluate.
#[derive(Debug, Clone)]
pub struct Rule {
    spec: RuleSpec,
    finding_type: Option<GlobMatcher>,
    effect: Effect,
}

#[derive(Debug, Clone, Copy)]
enum Effect {
    Set(Severity),
    Shift(i64),
}

/// What the adjustment rules may look at.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// Where the incident came from.
    pub source: Source,
    /// Its type.
    pub incident_type: &'a str,
    /// Directions of its addresses.
    pub directions: &'a [Direction],
    /// GuardDuty's resource role.
    pub resource_role: Option<&'a str>,
    /// The instance's tags.
    pub tags: &'a [(String, String)],
}

impl Rule {
    /// Compiles a rule, refusing ambiguous ones.
    pub fn new(spec: RuleSpec, index: usize) -> Result<Rule, ConfigError> {
        let name = format!("severity.rules[{index}]");
        let effect = match (spec.set, spec.raise, spec.lower) {
            (Some(s), None, None) => Effect::Set(s),
            (None, Some(n), None) => Effect::Shift(i64::from(n)),
            (None, None, Some(n)) => Effect::Shift(-i64::from(n)),
            _ => {
                return Err(ConfigError::Value {
                    name,
                    message: "needs exactly one of `set`, `raise`, `lower`".into(),
                });
            }
        };
        let finding_type = match &spec.finding_type {
            Some(p) => Some(glob(p).map_err(|message| ConfigError::Value {
                name: name.clone(),
                message,
            })?),
            None => None,
        };
        Ok(Rule {
            spec,
            finding_type,
            effect,
        })
    }

    fn matches(&self, facts: &Facts<'_>) -> bool {
        let s = &self.spec;
        s.source.is_none_or(|src| src == facts.source)
            && self
                .finding_type
                .as_ref()
                .is_none_or(|g| g.is_match(facts.incident_type))
            && s.direction.is_none_or(|d| facts.directions.contains(&d))
            && s.resource_role.as_deref().is_none_or(|r| {
                facts
                    .resource_role
                    .is_some_and(|f| f.eq_ignore_ascii_case(r))
            })
            && s.tag.as_deref().is_none_or(|t| tag_matches(t, facts.tags))
    }
}

fn tag_matches(spec: &str, tags: &[(String, String)]) -> bool {
    match spec.split_once('=') {
        Some((k, v)) => tags.iter().any(|(tk, tv)| tk == k && tv == v),
        None => tags.iter().any(|(tk, _)| tk == spec),
    }
}

/// Case-insensitive glob, literal separators off (types contain `/` and `:`).
pub(crate) fn glob(pattern: &str) -> Result<GlobMatcher, String> {
    GlobBuilder::new(pattern)
        .case_insensitive(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| format!("bad pattern `{pattern}`: {e}"))
}

/// The whole severity configuration.
#[derive(Debug, Clone)]
pub struct SeverityConfig {
    /// Manual alert types and their classes.
    pub alert_types: Vec<AlertTypeSpec>,
    /// Threat levels: (minimum, class), highest first.
    pub threat_levels: Vec<(f64, Severity)>,
    /// Alarm name patterns, first match wins.
    pub alarm_patterns: Vec<(GlobMatcher, AlarmPatternSpec)>,
    /// Class of an alarm no pattern matches.
    pub alarm_default: Severity,
    /// Adjustments, in order.
    pub rules: Vec<Rule>,
}

impl SeverityConfig {
    /// The team's defaults.
    pub fn defaults() -> SeverityConfig {
        let alert = |t: &str, s| AlertTypeSpec {
            alert_type: t.into(),
            severity: s,
        };
        let alarm = |p: &str, t: &str, s| AlarmPatternSpec {
            pattern: p.into(),
            alert_type: t.into(),
            severity: s,
        };
        SeverityConfig {
            alert_types: vec![
                alert("UNAUTHORIZED_ACCESS", Severity::Critical),
                alert("DATA_EXFILTRATION", Severity::High),
                alert("SYSTEM_COMPROMISE", Severity::High),
                alert("SUSPICIOUS_ACTIVITY", Severity::Medium),
                alert("FAILED_LOGIN", Severity::Medium),
            ],
            threat_levels: vec![
                (9.0, Severity::Critical),
                (7.0, Severity::High),
                (5.0, Severity::Medium),
            ],
            alarm_patterns: Self::compile_patterns(vec![
                alarm("*failed-login*", "FAILED_LOGIN", Severity::Medium),
                alarm("*failed_login*", "FAILED_LOGIN", Severity::Medium),
                alarm("*unusual-api-access*", "UNUSUAL_API_ACCESS", Severity::High),
                alarm("*unusual_api_access*", "UNUSUAL_API_ACCESS", Severity::High),
            ])
            .unwrap_or_default(),
            alarm_default: Severity::Medium,
            rules: Vec::new(),
        }
    }

    pub(crate) fn compile_patterns(
        specs: Vec<AlarmPatternSpec>,
    ) -> Result<Vec<(GlobMatcher, AlarmPatternSpec)>, ConfigError> {
        specs
            .into_iter()
            .map(|s| {
                glob(&s.pattern)
                    .map(|g| (g, s))
                    .map_err(|message| ConfigError::Value {
                        name: "severity.alarm_patterns".into(),
                        message,
                    })
            })
            .collect()
    }

    /// The team's rules for a manual alert: the highest class that either the
    /// alert type or the threat level reaches.
    pub fn manual(&self, alert_type: &str, threat_level: Option<f64>) -> Severity {
        let by_type = self
            .alert_types
            .iter()
            .find(|a| a.alert_type.eq_ignore_ascii_case(alert_type))
            .map(|a| a.severity)
            .unwrap_or(Severity::Low);
        let by_level = threat_level
            .and_then(|l| {
                self.threat_levels
                    .iter()
                    .find(|(min, _)| l >= *min)
                    .map(|(_, s)| *s)
            })
            .unwrap_or(Severity::Low);
        by_type.max(by_level)
    }

    /// The alert type and class of an alarm, by name.
    pub fn alarm(&self, alarm_name: &str) -> (String, Severity) {
        self.alarm_patterns
            .iter()
            .find(|(g, _)| g.is_match(alarm_name))
            .map(|(_, s)| (s.alert_type.clone(), s.severity))
            .unwrap_or_else(|| ("ALARM".to_string(), self.alarm_default))
    }

    /// Applies the adjustments in order to a base class.
    pub fn adjust(&self, base: Severity, facts: &Facts<'_>) -> Severity {
        self.rules
            .iter()
            .filter(|r| r.matches(facts))
            .fold(base, |s, r| match r.effect {
                Effect::Set(to) => to,
                Effect::Shift(by) => s.shifted(by),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_in_any_case_and_round_trip() {
        for s in Severity::ALL {
            assert_eq!(Severity::parse(s.as_str()), Some(s));
            assert_eq!(Severity::parse(&s.as_str().to_lowercase()), Some(s));
        }
        assert_eq!(Severity::parse(" high "), Some(Severity::High));
        assert_eq!(Severity::parse("severe"), None);
    }

    #[test]
    fn guardduty_bands() {
        for (score, want) in [
            (1.0, Severity::Low),
            (3.9, Severity::Low),
            (4.0, Severity::Medium),
            (6.9, Severity::Medium),
            (7.0, Severity::High),
            (8.9, Severity::High),
            (9.0, Severity::Critical),
            (10.0, Severity::Critical),
        ] {
            assert_eq!(Severity::from_guardduty(score), want, "score {score}");
        }
    }

    #[test]
    fn security_hub_bands() {
        for (score, want) in [
            (0, Severity::Low),
            (39, Severity::Low),
            (40, Severity::Medium),
            (69, Severity::Medium),
            (70, Severity::High),
            (89, Severity::High),
            (90, Severity::Critical),
            (100, Severity::Critical),
        ] {
            assert_eq!(Severity::from_normalized(score), want, "score {score}");
        }
    }

    #[test]
    fn a_rule_can_name_the_securityhub_source() {
        let file = "source = \"securityhub\"\nfinding_type = \"Software and Configuration Checks/*\"\nlower = 1\n";
        let spec: RuleSpec = toml::from_str(file).unwrap();
        assert_eq!(spec.source, Some(Source::SecurityHub));
        let mut c = SeverityConfig::defaults();
        c.rules = vec![Rule::new(spec, 0).unwrap()];
        let mut facts = Facts {
            source: Source::SecurityHub,
            incident_type: "Software and Configuration Checks/Vulnerabilities/CVE",
            directions: &[],
            resource_role: None,
            tags: &[],
        };
        assert_eq!(c.adjust(Severity::High, &facts), Severity::Medium);
        facts.source = Source::Guardduty;
        assert_eq!(c.adjust(Severity::High, &facts), Severity::High);
    }

    #[test]
    fn manual_rules_follow_the_playbook() {
        let c = SeverityConfig::defaults();
        let table = [
            ("UNAUTHORIZED_ACCESS", None, Severity::Critical),
            ("SUSPICIOUS_ACTIVITY", Some(9.0), Severity::Critical),
            ("DATA_EXFILTRATION", Some(1.0), Severity::High),
            ("system_compromise", None, Severity::High),
            ("OTHER", Some(7.5), Severity::High),
            ("FAILED_LOGIN", Some(2.0), Severity::Medium),
            ("OTHER", Some(5.0), Severity::Medium),
            ("OTHER", Some(4.9), Severity::Low),
            ("OTHER", None, Severity::Low),
        ];
        for (t, l, want) in table {
            assert_eq!(c.manual(t, l), want, "{t} {l:?}");
        }
    }

    #[test]
    fn alarm_patterns_and_default() {
        let c = SeverityConfig::defaults();
        assert_eq!(
            c.alarm("prod-FAILED-LOGIN-spike"),
            ("FAILED_LOGIN".into(), Severity::Medium)
        );
        assert_eq!(
            c.alarm("unusual-api-access-prod"),
            ("UNUSUAL_API_ACCESS".into(), Severity::High)
        );
        assert_eq!(c.alarm("cpu-high"), ("ALARM".into(), Severity::Medium));
    }

    #[test]
    fn adjustments_apply_in_order() {
        let mut c = SeverityConfig::defaults();
        let raise = RuleSpec {
            finding_type: Some("UnauthorizedAccess:EC2/*BruteForce".into()),
            direction: Some(Direction::Inbound),
            tag: Some("Environment=production".into()),
            raise: Some(2),
            ..RuleSpec::default()
        };
        let cap = RuleSpec {
            resource_role: Some("ACTOR".into()),
            lower: Some(3),
            ..RuleSpec::default()
        };
        c.rules = vec![Rule::new(raise, 0).unwrap(), Rule::new(cap, 1).unwrap()];
        let tags = vec![("Environment".to_string(), "production".to_string())];
        let mut facts = Facts {
            source: Source::Guardduty,
            incident_type: "UnauthorizedAccess:EC2/SSHBruteForce",
            directions: &[Direction::Inbound],
            resource_role: Some("TARGET"),
            tags: &tags,
        };
        assert_eq!(c.adjust(Severity::Low, &facts), Severity::High);
        facts.resource_role = Some("ACTOR");
        assert_eq!(c.adjust(Severity::Low, &facts), Severity::Low);
        facts.tags = &[];
        facts.resource_role = Some("TARGET");
        assert_eq!(c.adjust(Severity::Low, &facts), Severity::Low);
        assert!(Rule::new(
            RuleSpec {
                raise: Some(1),
                lower: Some(1),
                ..RuleSpec::default()
            },
            0
        )
        .is_err());
    }
}
