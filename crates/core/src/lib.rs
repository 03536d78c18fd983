//! The pure core of Firebreak: from the bytes of one signal to incidents and
//! their containment plans.
//!
//! Nothing here talks to AWS, spawns tasks or reads the clock, so every
//! decision Firebreak makes can be tested table-style, fuzzed and benchmarked
//! alone, and `firebreak plan` shows a responder exactly what would happen to
//! an event without touching an account.
//!
//! The flow is [`event::parse`] (one of the known envelopes, typed, never
//! panicking: CloudWatch alarms and GuardDuty findings through SNS or
//! EventBridge, Security Hub findings, a responder's requests) →
//! [`incident::from_event`] (one normalised [`Incident`] per
//! signal, with a deterministic id and its severity) → [`policy::plan`] (the
//! playbook for that severity, filtered by the safety envelope). Refused
//! actions stay in the plan as `skipped` with their reason.
//!
//! Severity rules, the allow-list, protected principals and the other
//! settings live in one [`Config`], read from `FIREBREAK_*` variables and an
//! optional TOML policy file.

pub mod config;
pub mod error;
pub mod event;
pub mod guardduty;
pub mod ids;
pub mod incident;
pub mod lockdown;
pub mod policy;
pub mod sanitize;
pub mod securityhub;
pub mod severity;
pub mod vocabulary;

pub use config::Config;
pub use error::{ConfigError, ParseError};
pub use incident::{CustomAction, Direction, Incident, Source};
pub use policy::{Action, ActionKind, PlanSet, PlanStatus, PlannedIncident};
pub use severity::Severity;

/// Parses one event and plans every incident in it.
pub fn plan_event(bytes: &[u8], cfg: &Config) -> Result<PlanSet, ParseError> {
    let event = event::parse(bytes)?;
    let (incidents, ignored) = incident::from_event(&event, bytes, cfg)?;
    Ok(PlanSet {
        incidents: incidents
            .into_iter()
            .map(|i| policy::plan(i, cfg))
            .collect(),
        ignored,
    })
}
