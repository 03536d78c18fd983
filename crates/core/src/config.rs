//! One typed configuration: defaults, then an optional policy file (TOML),
//! then `FIREBREAK_*` environment variables, each overriding the one before.
//!
//! Unknown keys in the policy file and unknown `FIREBREAK_*` variables are
//! errors: a mistyped allow-list must stop Firebreak at start-up, not leave it
//! running with an empty one.

use std::collections::BTreeMap;

use globset::GlobMatcher;
use ipnet::IpNet;
use serde::Deserialize;

use crate::error::ConfigError;
use crate::severity::{
    glob, AlarmPatternSpec, AlertTypeSpec, Rule, RuleSpec, Severity, SeverityConfig,
};
use crate::vocabulary::{ActionKind, CustomAction};

/// The Logs Insights query for failed-login alarms. It follows the security
/// event shape the applications log (`event_type`, `success`, `ip_address`).
pub const DEFAULT_INSIGHTS_QUERY: &str = "fields @timestamp, ip_address\n| filter event_type = \"authentication_attempt\" and success = 0\n| stats count(*) as failures by ip_address\n| sort failures desc\n| limit 50";

/// Retention values CloudWatch Logs accepts, in days.
pub const RETENTION_DAYS: &[u32] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// Every environment variable Firebreak reads, with what it sets.
pub const SETTINGS: &[(&str, &str)] = &[
    ("FIREBREAK_POLICY_FILE", "path of the TOML policy file"),
    (
        "FIREBREAK_ALLOWLIST",
        "CIDRs never blocked, comma-separated",
    ),
    (
        "FIREBREAK_ALLOW_PRIVATE",
        "allow blocking private and reserved addresses",
    ),
    (
        "FIREBREAK_PROTECTED_PRINCIPALS",
        "user or role names or patterns never touched",
    ),
    (
        "FIREBREAK_PROTECTED_TAG",
        "tag key that protects an instance or principal",
    ),
    (
        "FIREBREAK_DEFAULT_NACLS",
        "network ACLs for blocks when the incident names no subnet",
    ),
    (
        "FIREBREAK_NACL_RULE_RANGE",
        "rule numbers Firebreak may use, e.g. 1-90",
    ),
    (
        "FIREBREAK_MAX_BLOCKS_PER_INCIDENT",
        "addresses blocked for one incident at most",
    ),
    ("FIREBREAK_BLOCK_TTL_HOURS", "hours until a block is lifted"),
    (
        "FIREBREAK_LOG_GROUPS",
        "log groups to query and to keep longer",
    ),
    (
        "FIREBREAK_LOG_RETENTION_DAYS",
        "retention set when raising monitoring",
    ),
    (
        "FIREBREAK_OFFENDER_THRESHOLD",
        "failed logins from one address that lead to a block",
    ),
    (
        "FIREBREAK_INSIGHTS_QUERY",
        "Logs Insights query for failed-login alarms",
    ),
    (
        "FIREBREAK_DRY_RUN",
        "plan, record and notify, change nothing",
    ),
    (
        "FIREBREAK_BUDGET",
        "automatic actions allowed per window, e.g. block_ip=50,isolate_instance=5",
    ),
    (
        "FIREBREAK_BUDGET_WINDOW_MINUTES",
        "length of the blast-radius budget's window",
    ),
    (
        "FIREBREAK_CLAIM_TTL_SECONDS",
        "how long a claim on an action holds before a redelivery may take it over",
    ),
    (
        "FIREBREAK_CLAIM_WAIT_SECONDS",
        "how long a delivery waits for a concurrent one that holds a claim",
    ),
    ("FIREBREAK_RECORDS_BUCKET", "S3 bucket for incident records"),
    (
        "FIREBREAK_RECORDS_KMS_KEY_ID",
        "KMS key for the records (SSE-KMS); AES256 when unset",
    ),
    ("FIREBREAK_TEAM_TOPIC_ARN", "SNS topic for the team"),
    (
        "FIREBREAK_STAKEHOLDER_TOPIC_ARN",
        "SNS topic for HIGH and CRITICAL",
    ),
    (
        "FIREBREAK_NOTICE_FORMAT",
        "`text` (e-mail, SMS, SQS) or `chatbot` (AWS Chatbot: Slack, Teams)",
    ),
    (
        "FIREBREAK_MEMBER_ROLE_NAME",
        "role Firebreak assumes to act in another account of the organisation",
    ),
    (
        "FIREBREAK_MEMBER_ACCOUNTS",
        "accounts it may act in through that role (all when unset)",
    ),
    (
        "FIREBREAK_SECURITYHUB_ACTIONS",
        "Security Hub custom action names and what they do, e.g. firebreak-contain=contain,firebreak-record=record",
    ),
    (
        "FIREBREAK_SECURITYHUB_WRITEBACK",
        "write back to the Security Hub finding: workflow NOTIFIED while NEW, and a note of what was done",
    ),
    (
        "FIREBREAK_EVIDENCE_BUCKET",
        "bucket a lockdown copies evidence into (the records bucket when unset)",
    ),
    (
        "FIREBREAK_EVIDENCE_MAX_OBJECTS",
        "objects one evidence copy takes at most",
    ),
    (
        "FIREBREAK_EVIDENCE_MAX_BYTES",
        "bytes one evidence copy takes at most",
    ),
];

/// Objects one evidence copy takes unless configured otherwise.
pub const DEFAULT_EVIDENCE_MAX_OBJECTS: u64 = 1000;
/// Bytes one evidence copy takes unless configured otherwise (1 GiB).
pub const DEFAULT_EVIDENCE_MAX_BYTES: u64 = 1 << 30;
/// The most either bound may be set to: a copy is a Lambda function's
/// minutes, not a migration (1 TiB; 100,000 objects).
const EVIDENCE_BYTES_CEILING: u64 = 1 << 40;
const EVIDENCE_OBJECTS_CEILING: u64 = 100_000;

/// The Security Hub custom actions Firebreak knows unless configured
/// otherwise: one to contain, one to record only, one to quarantine the
/// finding's IAM user.
pub const DEFAULT_SECURITYHUB_ACTIONS: [(&str, CustomAction); 3] = [
    ("firebreak-contain", CustomAction::Contain),
    ("firebreak-record", CustomAction::Record),
    ("firebreak-quarantine", CustomAction::Quarantine),
];

/// How notices are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoticeFormat {
    /// A subject and a plain-text body: e-mail, SMS, a queue.
    #[default]
    Text,
    /// AWS Chatbot's custom notification (JSON), which it renders in Slack,
    /// Microsoft Teams and Amazon Chime.
    Chatbot,
}

impl NoticeFormat {
    fn parse(name: &str, s: &str) -> Result<NoticeFormat, ConfigError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(NoticeFormat::Text),
            "chatbot" => Ok(NoticeFormat::Chatbot),
            other => Err(ConfigError::Value {
                name: name.into(),
                message: format!("`{other}` is not a notice format (text or chatbot)"),
            }),
        }
    }
}

/// Principals Firebreak never touches, whatever the configuration says
/// (case-insensitive globs): break-glass access, the organisation's
/// administration roles (Organizations, Control Tower, StackSets),
/// service-linked roles, IAM Identity Center's roles and Firebreak's own
/// principals. Configuration adds patterns to these, never removes one: a
/// policy file that lists only its own names must not quietly expose the
/// break-glass role.
pub const BUILTIN_PROTECTED_PRINCIPALS: [&str; 11] = [
    "*break-glass*",
    "*breakglass*",
    "*break_glass*",
    "firebreak-*",
    "firebreak_*",
    "OrganizationAccountAccessRole",
    "AWSControlTowerExecution",
    "AWSCloudFormationStackSetExecutionRole",
    "stacksets-exec-*",
    "AWSServiceRoleFor*",
    "AWSReservedSSO_*",
];

/// Firebreak's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Addresses inside these are never blocked.
    pub allowlist: Vec<IpNet>,
    /// Allow blocking private and reserved addresses (off by default).
    pub allow_private: bool,
    /// Patterns of user and role names never touched, on top of
    /// [`BUILTIN_PROTECTED_PRINCIPALS`] (which always apply).
    pub protected_principals: Vec<String>,
    /// The built-in patterns and the configured ones, compiled.
    protected_matchers: Vec<GlobMatcher>,
    /// An instance or principal with this tag key is never touched.
    pub protected_tag: String,
    /// Network ACLs for blocks when the incident names no subnet.
    pub default_nacls: Vec<String>,
    /// Inclusive range of NACL rule numbers Firebreak may use.
    pub nacl_rule_range: (u16, u16),
    /// At most this many addresses blocked for one incident.
    pub max_blocks_per_incident: usize,
    /// Hours a block lasts before the expirer lifts it.
    pub block_ttl_hours: u32,
    /// Log groups for queries and longer retention.
    pub log_groups: Vec<String>,
    /// Retention set on those log groups when monitoring is raised.
    pub log_retention_days: u32,
    /// Failed logins from one address that lead to a block.
    pub offender_threshold: u32,
    /// The Logs Insights query for failed-login alarms.
    pub insights_query: String,
    /// Plan, record and notify; change nothing.
    pub dry_run: bool,
    /// S3 bucket for incident records.
    pub records_bucket: Option<String>,
    /// KMS key id or ARN for the records; SSE-S3 (AES256) when unset.
    pub records_kms_key_id: Option<String>,
    /// SNS topic for the team.
    pub team_topic_arn: Option<String>,
    /// SNS topic for stakeholders (HIGH and CRITICAL).
    pub stakeholder_topic_arn: Option<String>,
    /// How notices are written.
    pub notice_format: NoticeFormat,
    /// The role (name, optionally with a path) Firebreak assumes in an
    /// incident's own account when that is not the account it runs in.
    /// Unset: incidents elsewhere are recorded and notified only.
    pub member_role_name: Option<String>,
    /// The accounts it may assume that role in; empty means any.
    pub member_accounts: Vec<String>,
    /// Security Hub custom action names (`detail.actionName`, matched
    /// exactly) and what each asks for. A name not listed is refused, so a
    /// new button in the console does nothing until it is given a meaning.
    pub securityhub_actions: BTreeMap<String, CustomAction>,
    /// Write back to the Security Hub finding an incident came from (or,
    /// for GuardDuty's own findings, GuardDuty's copy in Security Hub):
    /// workflow `NOTIFIED` while it is `NEW`, and a note of what was done.
    /// Off unless configured, so that a plan changes only when asked.
    pub securityhub_writeback: bool,
    /// The blast-radius budget.
    pub budget: Budget,
    /// Seconds a claim on an action holds before another delivery may take
    /// it over (longer than the function's timeout, so a live holder keeps it).
    pub claim_ttl_seconds: u32,
    /// Seconds a delivery waits for a concurrent one that holds a claim
    /// before it gives up with a retryable error.
    pub claim_wait_seconds: u32,
    /// Severity rules.
    pub severity: SeverityConfig,
    /// Where a lockdown copies evidence; the records bucket when unset.
    pub evidence_bucket: Option<String>,
    /// Objects one evidence copy takes at most (more: nothing is copied).
    pub evidence_max_objects: u64,
    /// Bytes one evidence copy takes at most (more: nothing is copied).
    pub evidence_max_bytes: u64,
}

/// At most `limits[kind]` automatic actions of a kind per account in each
/// window of `window_minutes` (fixed windows aligned to the epoch, so at
/// most twice the limit in any span of one window). Kinds without a limit
/// (snapshots, monitoring, the failed-login query itself) are not counted.
/// A responder's explicit command is not counted either: a human decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// The window length.
    pub window_minutes: u32,
    /// The limit per action kind.
    pub limits: BTreeMap<ActionKind, u32>,
}

impl Default for Budget {
    fn default() -> Budget {
        Budget {
            window_minutes: 60,
            limits: BTreeMap::from([
                (ActionKind::BlockIp, 50),
                (ActionKind::DeactivateAccessKey, 10),
                (ActionKind::RevokeRoleSessions, 10),
                (ActionKind::IsolateInstance, 5),
                // Locking a user out entirely is the heaviest action:
                // beyond a few an hour, a human looks first.
                (ActionKind::QuarantineUser, 3),
            ]),
        }
    }
}

impl Budget {
    /// The limit for a kind, if it is counted.
    pub fn limit(&self, kind: ActionKind) -> Option<u32> {
        self.limits.get(&kind).copied()
    }

    /// Kinds a budget may name.
    const KINDS: [ActionKind; 5] = [
        ActionKind::BlockIp,
        ActionKind::DeactivateAccessKey,
        ActionKind::RevokeRoleSessions,
        ActionKind::IsolateInstance,
        ActionKind::QuarantineUser,
    ];

    fn set(&mut self, name: &str, kind: &str, n: u32) -> Result<(), ConfigError> {
        let k = Budget::KINDS
            .iter()
            .find(|k| k.as_str() == kind)
            .ok_or_else(|| ConfigError::Value {
                name: name.into(),
                message: format!(
                    "`{kind}` is not a budgeted action (one of {})",
                    Budget::KINDS.map(ActionKind::as_str).join(", ")
                ),
            })?;
        self.limits.insert(*k, n);
        Ok(())
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            allowlist: Vec::new(),
            allow_private: false,
            protected_matchers: BUILTIN_PROTECTED_PRINCIPALS
                .iter()
                .filter_map(|p| glob(p).ok())
                .collect(),
            protected_principals: Vec::new(),
            protected_tag: "firebreak:protected".into(),
            default_nacls: Vec::new(),
            nacl_rule_range: (1, 90),
            max_blocks_per_incident: 10,
            block_ttl_hours: 24,
            log_groups: Vec::new(),
            log_retention_days: 365,
            offender_threshold: 10,
            insights_query: DEFAULT_INSIGHTS_QUERY.into(),
            dry_run: false,
            records_bucket: None,
            records_kms_key_id: None,
            team_topic_arn: None,
            stakeholder_topic_arn: None,
            notice_format: NoticeFormat::Text,
            member_role_name: None,
            member_accounts: Vec::new(),
            securityhub_actions: DEFAULT_SECURITYHUB_ACTIONS
                .iter()
                .map(|(n, a)| (n.to_string(), *a))
                .collect(),
            securityhub_writeback: false,
            budget: Budget::default(),
            claim_ttl_seconds: 120,
            claim_wait_seconds: 20,
            severity: SeverityConfig::defaults(),
            evidence_bucket: None,
            evidence_max_objects: DEFAULT_EVIDENCE_MAX_OBJECTS,
            evidence_max_bytes: DEFAULT_EVIDENCE_MAX_BYTES,
        }
    }
}

/// The policy file: every setting may appear, and severity rules.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    allowlist: Option<Vec<String>>,
    allow_private: Option<bool>,
    protected_principals: Option<Vec<String>>,
    protected_tag: Option<String>,
    default_nacls: Option<Vec<String>>,
    nacl_rule_range: Option<String>,
    max_blocks_per_incident: Option<usize>,
    block_ttl_hours: Option<u32>,
    log_groups: Option<Vec<String>>,
    log_retention_days: Option<u32>,
    offender_threshold: Option<u32>,
    insights_query: Option<String>,
    dry_run: Option<bool>,
    records_bucket: Option<String>,
    records_kms_key_id: Option<String>,
    team_topic_arn: Option<String>,
    stakeholder_topic_arn: Option<String>,
    notice_format: Option<NoticeFormat>,
    member_role_name: Option<String>,
    member_accounts: Option<Vec<String>>,
    securityhub_actions: Option<BTreeMap<String, CustomAction>>,
    securityhub_writeback: Option<bool>,
    budget: Option<BTreeMap<String, u32>>,
    claim_ttl_seconds: Option<u32>,
    claim_wait_seconds: Option<u32>,
    severity: Option<SeverityFile>,
    evidence_bucket: Option<String>,
    evidence_max_objects: Option<u64>,
    evidence_max_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeverityFile {
    alarm_default: Option<Severity>,
    alarm_patterns: Option<Vec<AlarmPatternSpec>>,
    alert_types: Option<Vec<AlertTypeSpec>>,
    threat_levels: Option<ThreatLevels>,
    #[serde(default)]
    rules: Vec<RuleSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThreatLevels {
    critical: f64,
    high: f64,
    medium: f64,
}

impl Config {
    /// Reads the process environment and, if `FIREBREAK_POLICY_FILE` (or
    /// `policy_path`) names one, the policy file.
    pub fn from_env(policy_path: Option<&str>) -> Result<Config, ConfigError> {
        let vars: BTreeMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("FIREBREAK_"))
            .collect();
        let path = policy_path
            .map(str::to_string)
            .or_else(|| vars.get("FIREBREAK_POLICY_FILE").cloned());
        let policy = match path {
            Some(p) => {
                let text = std::fs::read_to_string(&p).map_err(|e| ConfigError::PolicyFile {
                    path: p.clone(),
                    message: e.to_string(),
                })?;
                Some((p, text))
            }
            None => None,
        };
        Config::load(
            &vars,
            policy.as_ref().map(|(p, t)| (p.as_str(), t.as_str())),
        )
    }

    /// Builds the configuration from `FIREBREAK_*` variables and the text of
    /// a policy file (path, contents). Pure: no I/O.
    pub fn load(
        vars: &BTreeMap<String, String>,
        policy: Option<(&str, &str)>,
    ) -> Result<Config, ConfigError> {
        for name in vars.keys() {
            if name.starts_with("FIREBREAK_") && !SETTINGS.iter().any(|(n, _)| n == name) {
                return Err(ConfigError::Unknown { name: name.clone() });
            }
        }
        let mut cfg = Config::default();
        if let Some((path, text)) = policy {
            let file: PolicyFile = toml::from_str(text).map_err(|e| ConfigError::PolicyFile {
                path: path.into(),
                message: one_line(&e.to_string()),
            })?;
            cfg.apply_file(file).map_err(|e| match e {
                ConfigError::Value { name, message } => ConfigError::PolicyFile {
                    path: path.into(),
                    message: format!("{name}: {message}"),
                },
                other => other,
            })?;
        }
        cfg.apply_env(vars)?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn apply_file(&mut self, f: PolicyFile) -> Result<(), ConfigError> {
        if let Some(v) = f.allowlist {
            self.allowlist = v
                .iter()
                .map(|s| parse_cidr("allowlist", s))
                .collect::<Result<_, _>>()?;
        }
        set(&mut self.allow_private, f.allow_private);
        if let Some(v) = f.protected_principals {
            self.set_protected(v, "protected_principals")?;
        }
        set(&mut self.protected_tag, f.protected_tag);
        set(&mut self.default_nacls, f.default_nacls);
        if let Some(r) = f.nacl_rule_range {
            self.nacl_rule_range = parse_range("nacl_rule_range", &r)?;
        }
        set(&mut self.max_blocks_per_incident, f.max_blocks_per_incident);
        set(&mut self.block_ttl_hours, f.block_ttl_hours);
        set(&mut self.log_groups, f.log_groups);
        set(&mut self.log_retention_days, f.log_retention_days);
        set(&mut self.offender_threshold, f.offender_threshold);
        set(&mut self.insights_query, f.insights_query);
        set(&mut self.dry_run, f.dry_run);
        for (k, n) in f.budget.unwrap_or_default() {
            if k == "window_minutes" {
                self.budget.window_minutes = n;
            } else {
                self.budget.set("budget", &k, n)?;
            }
        }
        set(&mut self.claim_ttl_seconds, f.claim_ttl_seconds);
        set(&mut self.claim_wait_seconds, f.claim_wait_seconds);
        self.records_bucket = f.records_bucket.or(self.records_bucket.take());
        self.records_kms_key_id = f.records_kms_key_id.or(self.records_kms_key_id.take());
        self.team_topic_arn = f.team_topic_arn.or(self.team_topic_arn.take());
        self.stakeholder_topic_arn = f
            .stakeholder_topic_arn
            .or(self.stakeholder_topic_arn.take());
        set(&mut self.notice_format, f.notice_format);
        self.member_role_name = f.member_role_name.or(self.member_role_name.take());
        set(&mut self.member_accounts, f.member_accounts);
        set(&mut self.securityhub_actions, f.securityhub_actions);
        set(&mut self.securityhub_writeback, f.securityhub_writeback);
        if let Some(s) = f.severity {
            set(&mut self.severity.alarm_default, s.alarm_default);
            if let Some(p) = s.alarm_patterns {
                self.severity.alarm_patterns = SeverityConfig::compile_patterns(p)?;
            }
            set(&mut self.severity.alert_types, s.alert_types);
            if let Some(t) = s.threat_levels {
                self.severity.threat_levels = vec![
                    (t.critical, Severity::Critical),
                    (t.high, Severity::High),
                    (t.medium, Severity::Medium),
                ];
            }
            self.severity.rules = s
                .rules
                .into_iter()
                .enumerate()
                .map(|(i, r)| Rule::new(r, i))
                .collect::<Result<_, _>>()?;
        }
        self.evidence_bucket = f.evidence_bucket.or(self.evidence_bucket.take());
        set(&mut self.evidence_max_objects, f.evidence_max_objects);
        set(&mut self.evidence_max_bytes, f.evidence_max_bytes);
        Ok(())
    }

    fn apply_env(&mut self, vars: &BTreeMap<String, String>) -> Result<(), ConfigError> {
        let get = |k: &str| vars.get(k).map(|v| v.trim().to_string());
        if let Some(v) = get("FIREBREAK_ALLOWLIST") {
            self.allowlist = list(&v)
                .iter()
                .map(|s| parse_cidr("FIREBREAK_ALLOWLIST", s))
                .collect::<Result<_, _>>()?;
        }
        if let Some(v) = get("FIREBREAK_ALLOW_PRIVATE") {
            self.allow_private = parse_bool("FIREBREAK_ALLOW_PRIVATE", &v)?;
        }
        if let Some(v) = get("FIREBREAK_PROTECTED_PRINCIPALS") {
            self.set_protected(list(&v), "FIREBREAK_PROTECTED_PRINCIPALS")?;
        }
        if let Some(v) = get("FIREBREAK_PROTECTED_TAG") {
            self.protected_tag = v;
        }
        if let Some(v) = get("FIREBREAK_DEFAULT_NACLS") {
            self.default_nacls = list(&v);
        }
        if let Some(v) = get("FIREBREAK_NACL_RULE_RANGE") {
            self.nacl_rule_range = parse_range("FIREBREAK_NACL_RULE_RANGE", &v)?;
        }
        if let Some(v) = get("FIREBREAK_MAX_BLOCKS_PER_INCIDENT") {
            self.max_blocks_per_incident = parse_num("FIREBREAK_MAX_BLOCKS_PER_INCIDENT", &v)?;
        }
        if let Some(v) = get("FIREBREAK_BLOCK_TTL_HOURS") {
            self.block_ttl_hours = parse_num("FIREBREAK_BLOCK_TTL_HOURS", &v)?;
        }
        if let Some(v) = get("FIREBREAK_LOG_GROUPS") {
            self.log_groups = list(&v);
        }
        if let Some(v) = get("FIREBREAK_LOG_RETENTION_DAYS") {
            self.log_retention_days = parse_num("FIREBREAK_LOG_RETENTION_DAYS", &v)?;
        }
        if let Some(v) = get("FIREBREAK_OFFENDER_THRESHOLD") {
            self.offender_threshold = parse_num("FIREBREAK_OFFENDER_THRESHOLD", &v)?;
        }
        if let Some(v) = vars.get("FIREBREAK_INSIGHTS_QUERY") {
            self.insights_query = v.clone();
        }
        if let Some(v) = get("FIREBREAK_DRY_RUN") {
            self.dry_run = parse_bool("FIREBREAK_DRY_RUN", &v)?;
        }
        if let Some(v) = get("FIREBREAK_BUDGET") {
            for pair in list(&v) {
                let (k, n) = pair.split_once('=').ok_or_else(|| ConfigError::Value {
                    name: "FIREBREAK_BUDGET".into(),
                    message: format!("`{pair}` is not kind=number"),
                })?;
                let n = parse_num("FIREBREAK_BUDGET", n.trim())?;
                self.budget.set("FIREBREAK_BUDGET", k.trim(), n)?;
            }
        }
        if let Some(v) = get("FIREBREAK_BUDGET_WINDOW_MINUTES") {
            self.budget.window_minutes = parse_num("FIREBREAK_BUDGET_WINDOW_MINUTES", &v)?;
        }
        if let Some(v) = get("FIREBREAK_CLAIM_TTL_SECONDS") {
            self.claim_ttl_seconds = parse_num("FIREBREAK_CLAIM_TTL_SECONDS", &v)?;
        }
        if let Some(v) = get("FIREBREAK_CLAIM_WAIT_SECONDS") {
            self.claim_wait_seconds = parse_num("FIREBREAK_CLAIM_WAIT_SECONDS", &v)?;
        }
        let opt = |v: Option<String>| v.filter(|s| !s.is_empty());
        self.records_bucket = opt(get("FIREBREAK_RECORDS_BUCKET")).or(self.records_bucket.take());
        self.records_kms_key_id =
            opt(get("FIREBREAK_RECORDS_KMS_KEY_ID")).or(self.records_kms_key_id.take());
        self.team_topic_arn = opt(get("FIREBREAK_TEAM_TOPIC_ARN")).or(self.team_topic_arn.take());
        self.stakeholder_topic_arn =
            opt(get("FIREBREAK_STAKEHOLDER_TOPIC_ARN")).or(self.stakeholder_topic_arn.take());
        if let Some(v) = get("FIREBREAK_NOTICE_FORMAT") {
            self.notice_format = NoticeFormat::parse("FIREBREAK_NOTICE_FORMAT", &v)?;
        }
        self.member_role_name =
            opt(get("FIREBREAK_MEMBER_ROLE_NAME")).or(self.member_role_name.take());
        if let Some(v) = get("FIREBREAK_MEMBER_ACCOUNTS") {
            self.member_accounts = list(&v);
        }
        if let Some(v) = get("FIREBREAK_SECURITYHUB_ACTIONS") {
            self.securityhub_actions = parse_custom_actions("FIREBREAK_SECURITYHUB_ACTIONS", &v)?;
        }
        if let Some(v) = get("FIREBREAK_SECURITYHUB_WRITEBACK") {
            self.securityhub_writeback = parse_bool("FIREBREAK_SECURITYHUB_WRITEBACK", &v)?;
        }
        self.evidence_bucket =
            opt(get("FIREBREAK_EVIDENCE_BUCKET")).or(self.evidence_bucket.take());
        if let Some(v) = get("FIREBREAK_EVIDENCE_MAX_OBJECTS") {
            self.evidence_max_objects = parse_num("FIREBREAK_EVIDENCE_MAX_OBJECTS", &v)?;
        }
        if let Some(v) = get("FIREBREAK_EVIDENCE_MAX_BYTES") {
            self.evidence_max_bytes = parse_num("FIREBREAK_EVIDENCE_MAX_BYTES", &v)?;
        }
        Ok(())
    }

    fn set_protected(&mut self, patterns: Vec<String>, name: &str) -> Result<(), ConfigError> {
        self.protected_matchers = BUILTIN_PROTECTED_PRINCIPALS
            .iter()
            .map(|p| p.to_string())
            .chain(patterns.iter().cloned())
            .map(|p| {
                glob(&p).map_err(|message| ConfigError::Value {
                    name: name.into(),
                    message,
                })
            })
            .collect::<Result<_, _>>()?;
        self.protected_principals = patterns;
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |name: &str, message: String| {
            Err(ConfigError::Value {
                name: name.into(),
                message,
            })
        };
        for nacl in &self.default_nacls {
            if !crate::ids::is_nacl_id(nacl) {
                return bad(
                    "default_nacls",
                    format!("`{nacl}` is not a network ACL id (acl-…)"),
                );
            }
        }
        if !RETENTION_DAYS.contains(&self.log_retention_days) {
            return bad(
                "log_retention_days",
                format!(
                    "{} is not a retention CloudWatch Logs accepts ({:?})",
                    self.log_retention_days, RETENTION_DAYS
                ),
            );
        }
        if let Some(role) = &self.member_role_name {
            // A name, or path/name: what goes after `:role/` in the ARN.
            let name = role.rsplit('/').next().unwrap_or_default();
            let path_ok = role
                .split('/')
                .all(|p| !p.is_empty() && crate::ids::is_iam_name(p));
            if !path_ok || name.len() > 64 {
                return bad(
                    "member_role_name",
                    format!("`{role}` is not an IAM role name (or path/name)"),
                );
            }
        }
        for acct in &self.member_accounts {
            if !crate::ids::is_account_id(acct) {
                return bad(
                    "member_accounts",
                    format!("`{acct}` is not a 12-digit account id"),
                );
            }
        }
        for name in self.securityhub_actions.keys() {
            if name.trim().is_empty() || name.trim() != name {
                return bad(
                    "securityhub_actions",
                    format!("`{name}` is not a custom action name (empty, or spaces around it)"),
                );
            }
        }
        if self.max_blocks_per_incident == 0 {
            return bad("max_blocks_per_incident", "must be at least 1".into());
        }
        if self.block_ttl_hours == 0 || self.block_ttl_hours > 24 * 366 {
            return bad(
                "block_ttl_hours",
                "must be between 1 and 8784 (a year): blocks are temporary by design".into(),
            );
        }
        if self.protected_tag.trim().is_empty() {
            return bad("protected_tag", "must not be empty".into());
        }
        if self.budget.window_minutes == 0 || self.budget.window_minutes > 24 * 60 {
            return bad(
                "budget window_minutes",
                "must be between 1 and 1440 (a day)".into(),
            );
        }
        if self.claim_ttl_seconds < 10 || self.claim_ttl_seconds > 3600 {
            return bad(
                "claim_ttl_seconds",
                "must be between 10 and 3600; longer than the function's timeout".into(),
            );
        }
        if self.claim_wait_seconds > self.claim_ttl_seconds {
            return bad(
                "claim_wait_seconds",
                "must not be longer than claim_ttl_seconds".into(),
            );
        }
        self.validate_evidence()
    }

    fn validate_evidence(&self) -> Result<(), ConfigError> {
        let bad = |name: &str, message: String| {
            Err(ConfigError::Value {
                name: name.into(),
                message,
            })
        };
        if let Some(b) = self
            .evidence_bucket
            .as_deref()
            .filter(|b| !crate::lockdown::is_bucket_name(b))
        {
            return bad("evidence_bucket", format!("`{b}` is not an S3 bucket name"));
        }
        if !(1..=EVIDENCE_OBJECTS_CEILING).contains(&self.evidence_max_objects) {
            return bad(
                "evidence_max_objects",
                format!("must be between 1 and {EVIDENCE_OBJECTS_CEILING}"),
            );
        }
        if !(1..=EVIDENCE_BYTES_CEILING).contains(&self.evidence_max_bytes) {
            return bad(
                "evidence_max_bytes",
                format!("must be between 1 and {EVIDENCE_BYTES_CEILING} (1 TiB)"),
            );
        }
        Ok(())
    }

    /// What a Security Hub custom action of this name asks for, if it is
    /// one Firebreak knows.
    pub fn custom_action(&self, name: &str) -> Option<CustomAction> {
        self.securityhub_actions.get(name).copied()
    }

    /// True when a user or role name matches a protected pattern.
    pub fn is_protected_principal(&self, name: &str) -> bool {
        self.protected_matchers.iter().any(|m| m.is_match(name))
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn parse_cidr(name: &str, s: &str) -> Result<IpNet, ConfigError> {
    let s = s.trim();
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map(|n| n.trunc())
        .map_err(|_| ConfigError::Value {
            name: name.into(),
            message: format!("`{s}` is not a CIDR or an address"),
        })
}

fn parse_bool(name: &str, s: &str) -> Result<bool, ConfigError> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(ConfigError::Value {
            name: name.into(),
            message: format!("`{s}` is not true or false"),
        }),
    }
}

fn parse_num<T: std::str::FromStr>(name: &str, s: &str) -> Result<T, ConfigError> {
    s.parse().map_err(|_| ConfigError::Value {
        name: name.into(),
        message: format!("`{s}` is not a whole number"),
    })
}

/// `name=meaning,…`; an empty value knows no custom action at all.
fn parse_custom_actions(
    setting: &str,
    v: &str,
) -> Result<BTreeMap<String, CustomAction>, ConfigError> {
    list(v)
        .iter()
        .map(|pair| {
            let err = |message: String| ConfigError::Value {
                name: setting.into(),
                message,
            };
            let (name, word) = pair.split_once('=').ok_or_else(|| {
                err(format!(
                    "`{pair}` is not name=contain, name=record or name=quarantine"
                ))
            })?;
            let meaning = CustomAction::parse(word).ok_or_else(|| {
                err(format!(
                    "`{}` is not what a custom action can do (contain, record or quarantine)",
                    word.trim()
                ))
            })?;
            Ok((name.trim().to_string(), meaning))
        })
        .collect()
}

fn parse_range(name: &str, s: &str) -> Result<(u16, u16), ConfigError> {
    let err = || ConfigError::Value {
        name: name.into(),
        message: format!("`{s}` is not a range like 1-90 within 1-32766"),
    };
    let (a, b) = s.split_once('-').ok_or_else(err)?;
    let (a, b): (u16, u16) = (
        a.trim().parse().map_err(|_| err())?,
        b.trim().parse().map_err(|_| err())?,
    );
    if a == 0 || a > b || b > 32766 {
        return Err(err());
    }
    Ok((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn organisation_and_notice_settings_are_read_and_checked() {
        let file = "member_role_name = \"firebreak-member\"\nmember_accounts = [\"444455556666\"]\nnotice_format = \"chatbot\"\n";
        let cfg = Config::load(&vars(&[]), Some(("p.toml", file))).unwrap();
        assert_eq!(cfg.member_role_name.as_deref(), Some("firebreak-member"));
        assert_eq!(cfg.member_accounts, vec!["444455556666".to_string()]);
        assert_eq!(cfg.notice_format, NoticeFormat::Chatbot);
        let cfg = Config::load(
            &vars(&[
                ("FIREBREAK_MEMBER_ROLE_NAME", "security/firebreak-member"),
                ("FIREBREAK_MEMBER_ACCOUNTS", "111111111111, 222222222222"),
                ("FIREBREAK_NOTICE_FORMAT", "TEXT"),
            ]),
            Some(("p.toml", file)),
        )
        .unwrap();
        assert_eq!(
            cfg.member_role_name.as_deref(),
            Some("security/firebreak-member")
        );
        assert_eq!(cfg.member_accounts.len(), 2);
        assert_eq!(cfg.notice_format, NoticeFormat::Text);
        let defaults = Config::load(&vars(&[]), None).unwrap();
        assert_eq!(defaults.member_role_name, None);
        assert_eq!(defaults.notice_format, NoticeFormat::Text);
        for (k, v, needle) in [
            (
                "FIREBREAK_MEMBER_ROLE_NAME",
                "has space",
                "not an IAM role name",
            ),
            ("FIREBREAK_MEMBER_ROLE_NAME", "a//b", "not an IAM role name"),
            (
                "FIREBREAK_MEMBER_ACCOUNTS",
                "12345",
                "not a 12-digit account id",
            ),
            ("FIREBREAK_NOTICE_FORMAT", "slack", "not a notice format"),
        ] {
            let err = Config::load(&vars(&[(k, v)]), None)
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{k}={v}: {err}");
        }
    }

    #[test]
    fn security_hub_custom_actions_from_defaults_file_and_env() {
        let defaults = Config::load(&vars(&[]), None).unwrap();
        assert_eq!(
            defaults.custom_action("firebreak-contain"),
            Some(CustomAction::Contain)
        );
        assert_eq!(
            defaults.custom_action("firebreak-record"),
            Some(CustomAction::Record)
        );
        assert_eq!(
            defaults.custom_action("firebreak-quarantine"),
            Some(CustomAction::Quarantine)
        );
        assert_eq!(defaults.custom_action("Firebreak-Contain"), None);
        let file = "[securityhub_actions]\n\"Isolate now\" = \"contain\"\n";
        let cfg = Config::load(&vars(&[]), Some(("p.toml", file))).unwrap();
        assert_eq!(
            cfg.custom_action("Isolate now"),
            Some(CustomAction::Contain)
        );
        assert_eq!(
            cfg.custom_action("firebreak-contain"),
            None,
            "a file replaces the defaults"
        );
        let cfg = Config::load(
            &vars(&[(
                "FIREBREAK_SECURITYHUB_ACTIONS",
                "sh-contain = CONTAIN, sh-note=record",
            )]),
            Some(("p.toml", file)),
        )
        .unwrap();
        assert_eq!(cfg.securityhub_actions.len(), 2);
        assert_eq!(cfg.custom_action("sh-note"), Some(CustomAction::Record));
        let none = Config::load(&vars(&[("FIREBREAK_SECURITYHUB_ACTIONS", "")]), None).unwrap();
        assert!(none.securityhub_actions.is_empty());
        for (v, needle) in [
            (
                "firebreak-contain",
                "not name=contain, name=record or name=quarantine",
            ),
            (
                "firebreak-contain=isolate",
                "`isolate` is not what a custom action can do",
            ),
            ("=contain", "is not a custom action name"),
        ] {
            let err = Config::load(&vars(&[("FIREBREAK_SECURITYHUB_ACTIONS", v)]), None)
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{v}: {err}");
        }
        let err = Config::load(
            &vars(&[]),
            Some(("p.toml", "[securityhub_actions]\nx = \"delete\"\n")),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown variant `delete`"), "{err}");
    }

    #[test]
    fn security_hub_write_back_is_off_unless_set_and_read_strictly() {
        assert!(
            !Config::load(&vars(&[]), None)
                .unwrap()
                .securityhub_writeback
        );
        let file = "securityhub_writeback = true\n";
        let cfg = Config::load(&vars(&[]), Some(("p.toml", file))).unwrap();
        assert!(cfg.securityhub_writeback);
        let cfg = Config::load(
            &vars(&[("FIREBREAK_SECURITYHUB_WRITEBACK", "false")]),
            Some(("p.toml", file)),
        )
        .unwrap();
        assert!(!cfg.securityhub_writeback, "the environment wins");
        let err = Config::load(&vars(&[("FIREBREAK_SECURITYHUB_WRITEBACK", "maybe")]), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`maybe` is not true or false"), "{err}");
        let err = Config::load(
            &vars(&[]),
            Some(("p.toml", "securityhub_writeback = \"yes\"\n")),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("securityhub_writeback"), "{err}");
    }

    #[test]
    fn env_overrides_file_overrides_defaults() {
        let file = "allowlist = [\"203.0.113.0/24\"]\nnacl_rule_range = \"10-40\"\nlog_groups = [\"/a\"]\n";
        let cfg = Config::load(
            &vars(&[("FIREBREAK_LOG_GROUPS", "/b, /c")]),
            Some(("p.toml", file)),
        )
        .unwrap();
        assert_eq!(
            cfg.allowlist,
            vec!["203.0.113.0/24".parse::<IpNet>().unwrap()]
        );
        assert_eq!(cfg.nacl_rule_range, (10, 40));
        assert_eq!(cfg.log_groups, vec!["/b", "/c"]);
        assert_eq!(cfg.max_blocks_per_incident, 10);
    }

    #[test]
    fn mistakes_stop_start_up() {
        let err = Config::load(&vars(&[("FIREBREAK_ALLOWLST", "1.2.3.4")]), None).unwrap_err();
        assert!(err
            .to_string()
            .contains("unknown setting FIREBREAK_ALLOWLST"));
        let err =
            Config::load(&vars(&[("FIREBREAK_ALLOWLIST", "1.2.3.4, nonsense")]), None).unwrap_err();
        assert!(err.to_string().contains("`nonsense` is not a CIDR"));
        let err = Config::load(&vars(&[]), Some(("p.toml", "allow_list = []"))).unwrap_err();
        assert!(
            err.to_string().contains("unknown field `allow_list`"),
            "{err}"
        );
        let err = Config::load(&vars(&[("FIREBREAK_NACL_RULE_RANGE", "50-10")]), None).unwrap_err();
        assert!(err.to_string().contains("not a range"));
        let err = Config::load(&vars(&[("FIREBREAK_LOG_RETENTION_DAYS", "42")]), None).unwrap_err();
        assert!(err.to_string().contains("42 is not a retention"));
    }

    #[test]
    fn budget_from_file_and_env() {
        let file = "[budget]\nwindow_minutes = 30\nisolate_instance = 2\n";
        let cfg = Config::load(
            &vars(&[("FIREBREAK_BUDGET", "block_ip=7, deactivate_access_key=0")]),
            Some(("p.toml", file)),
        )
        .unwrap();
        assert_eq!(cfg.budget.window_minutes, 30);
        assert_eq!(cfg.budget.limit(ActionKind::IsolateInstance), Some(2));
        assert_eq!(cfg.budget.limit(ActionKind::BlockIp), Some(7));
        assert_eq!(cfg.budget.limit(ActionKind::DeactivateAccessKey), Some(0));
        assert_eq!(cfg.budget.limit(ActionKind::RevokeRoleSessions), Some(10));
        assert_eq!(cfg.budget.limit(ActionKind::SnapshotVolumes), None);
        let err =
            Config::load(&vars(&[("FIREBREAK_BUDGET", "snapshot_volumes=3")]), None).unwrap_err();
        assert!(err.to_string().contains("not a budgeted action"), "{err}");
        let err = Config::load(&vars(&[("FIREBREAK_BUDGET", "block_ip")]), None).unwrap_err();
        assert!(err.to_string().contains("not kind=number"), "{err}");
        let err =
            Config::load(&vars(&[("FIREBREAK_CLAIM_WAIT_SECONDS", "500")]), None).unwrap_err();
        assert!(err.to_string().contains("claim_wait_seconds"), "{err}");
    }

    #[test]
    fn evidence_settings_are_read_and_bounded() {
        let d = Config::load(&vars(&[]), None).unwrap();
        assert_eq!(d.evidence_bucket, None);
        assert_eq!(
            (d.evidence_max_objects, d.evidence_max_bytes),
            (1000, 1 << 30)
        );
        let file = "evidence_bucket = \"acme-evidence\"\nevidence_max_objects = 50\n";
        let cfg = Config::load(
            &vars(&[("FIREBREAK_EVIDENCE_MAX_BYTES", "1048576")]),
            Some(("p.toml", file)),
        )
        .unwrap();
        assert_eq!(cfg.evidence_bucket.as_deref(), Some("acme-evidence"));
        assert_eq!(
            (cfg.evidence_max_objects, cfg.evidence_max_bytes),
            (50, 1 << 20)
        );
        let cfg = Config::load(
            &vars(&[("FIREBREAK_EVIDENCE_BUCKET", "other-evidence")]),
            Some(("p.toml", file)),
        )
        .unwrap();
        assert_eq!(cfg.evidence_bucket.as_deref(), Some("other-evidence"));
        for (k, v, needle) in [
            (
                "FIREBREAK_EVIDENCE_BUCKET",
                "Bad_Bucket",
                "not an S3 bucket name",
            ),
            (
                "FIREBREAK_EVIDENCE_MAX_OBJECTS",
                "0",
                "between 1 and 100000",
            ),
            ("FIREBREAK_EVIDENCE_MAX_BYTES", "0", "between 1 and"),
            ("FIREBREAK_EVIDENCE_MAX_BYTES", "1099511627777", "1 TiB"),
            (
                "FIREBREAK_EVIDENCE_MAX_OBJECTS",
                "many",
                "not a whole number",
            ),
        ] {
            let err = Config::load(&vars(&[(k, v)]), None)
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{k}={v}: {err}");
        }
    }

    #[test]
    fn protected_principals_are_case_insensitive_globs() {
        let cfg = Config::load(
            &vars(&[("FIREBREAK_PROTECTED_PRINCIPALS", "*break-glass*,admin")]),
            None,
        )
        .unwrap();
        assert!(cfg.is_protected_principal("Prod-Break-Glass-Role"));
        assert!(cfg.is_protected_principal("admin"));
        assert!(!cfg.is_protected_principal("alice"));
    }

    #[test]
    fn configuration_adds_to_the_built_in_protections_never_replaces_them() {
        let only_ours = vars(&[("FIREBREAK_PROTECTED_PRINCIPALS", "payments-admin")]);
        let from_file = "protected_principals = [\"payments-admin\"]";
        for cfg in [
            Config::default(),
            Config::load(&only_ours, None).unwrap(),
            Config::load(&BTreeMap::new(), Some(("policy.toml", from_file))).unwrap(),
        ] {
            for name in [
                "BreakGlassAdmin",
                "prod-break_glass",
                "OrganizationAccountAccessRole",
                "AWSControlTowerExecution",
                "AWSCloudFormationStackSetExecutionRole",
                "stacksets-exec-0123456789abcdef",
                "AWSServiceRoleForAmazonGuardDuty",
                "AWSReservedSSO_AdministratorAccess_0123456789abcdef",
                "firebreak-member",
                "Firebreak-GuardDutyRole-ABC",
            ] {
                assert!(cfg.is_protected_principal(name), "{name} in {cfg:?}");
            }
            assert!(!cfg.is_protected_principal("ci-deployer"));
        }
        assert!(Config::load(&only_ours, None)
            .unwrap()
            .is_protected_principal("Payments-Admin"));
    }
}
