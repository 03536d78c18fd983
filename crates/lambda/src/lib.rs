//! What every Firebreak Lambda function shares: start-up (logs, settings and
//! AWS clients once per cold start), the handler for each kind of function,
//! and errors that tell Lambda — and the people reading its logs — whether a
//! retry can help.
//!
//! Each function crate's `main` is one line: [`run`] with its [`Function`].

use std::sync::Arc;

use firebreak_aws::{AwsError, Clients, Executor, HomeAnswer, Response};
use firebreak_core::{plan_event, sanitize, Config, PlanSet, Source};
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde_json::{json, Value};
use tracing::info;

/// The five functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// SNS events carrying CloudWatch alarms.
    Alarm,
    /// The findings function: EventBridge "GuardDuty Finding" events and
    /// Security Hub's "Imported" and "Custom Action" events, or the same
    /// inside SNS (a GuardDuty finding through Security Hub is the same
    /// incident as GuardDuty's own event, so one function takes both).
    GuardDuty,
    /// A responder's direct invocation: the team's alert shape or a
    /// containment command. Never a release: undo is granted separately.
    Manual,
    /// A responder's release command, and nothing else: the undo half
    /// (re-enabling a key, lifting a session revocation, restoring groups)
    /// in its own function with its own role and invoke permission, so
    /// whoever may contain is not thereby allowed to undo.
    Release,
    /// On a schedule: lifts blocks whose time is up.
    Expirer,
}

impl Function {
    fn name(self) -> &'static str {
        match self {
            Function::Alarm => "alarm responder",
            Function::GuardDuty => "GuardDuty responder",
            Function::Manual => "manual responder",
            Function::Release => "release function",
            Function::Expirer => "block expirer",
        }
    }

    /// The sources it takes; empty: anything (the expirer ignores its event).
    fn accepts(self) -> &'static [Source] {
        match self {
            Function::Alarm => &[Source::CloudwatchAlarm],
            Function::GuardDuty => &[Source::Guardduty, Source::SecurityHub],
            Function::Manual | Function::Release => &[Source::Manual],
            Function::Expirer => &[],
        }
    }
}

/// The longest message text a failure keeps (the event's or AWS's words);
/// a failure's fixed prefix, if any, comes on top.
const MESSAGE_CAP: usize = 4096;

/// Why an invocation failed, in the words Lambda shows: the error type says
/// whether a retry can help (`Firebreak.RetryableFailure`) or not.
///
/// Made only through [`Failure::new`]: parts of a message can come from the
/// event (an attacker's text) or an AWS error, and the runtime logs the
/// failure as it is and returns it to the caller, so it is cleaned once,
/// here — control characters escaped (no forged log lines), length capped.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The event is not one this function handles; nothing was changed.
    #[error("refused, nothing was changed: {0}")]
    BadInput(String),
    /// Containment failed in a way a retry may fix (throttling, timeouts).
    #[error("{0}")]
    Retryable(String),
    /// Containment failed in a way a retry will not fix (AccessDenied, a
    /// missing resource): a human must look.
    #[error("{0}")]
    NeedsAHuman(String),
}

impl Failure {
    fn new(kind: fn(String) -> Failure, message: impl std::fmt::Display) -> Failure {
        kind(sanitize::clean(&message.to_string(), MESSAGE_CAP))
    }

    /// An AWS call that failed: retryable or for a human, as AWS's answer says.
    fn from_aws(e: AwsError) -> Failure {
        let kind = if e.retryable {
            Failure::Retryable
        } else {
            Failure::NeedsAHuman
        };
        Failure::new(kind, e)
    }
}

impl From<Failure> for Diagnostic {
    fn from(f: Failure) -> Diagnostic {
        let error_type = match f {
            Failure::BadInput(_) => "Firebreak.BadInput",
            Failure::Retryable(_) => "Firebreak.RetryableFailure",
            Failure::NeedsAHuman(_) => "Firebreak.NeedsAHuman",
        };
        Diagnostic {
            error_type: error_type.into(),
            error_message: f.to_string(),
        }
    }
}

/// Built once per cold start.
pub struct State {
    function: Function,
    cfg: Arc<Config>,
    clients: Clients,
    /// The account the credentials act in: asked of STS at start-up
    /// without waiting for the answer. An event that comes before it
    /// starts without it (see [`firebreak_aws::respond_asking`]).
    account: HomeAnswer,
    /// Made at the first event and kept: the member-account roles and
    /// clients it opens last as long as the process.
    executor: tokio::sync::OnceCell<Executor>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("function", &self.function)
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

impl State {
    /// Reads the settings (`FIREBREAK_*`, the policy file) and builds the
    /// clients. A settings error stops the cold start with its message.
    pub async fn init(function: Function) -> Result<State, lambda_runtime::Error> {
        let cfg = Arc::new(Config::from_env(None)?);
        let clients = Clients::from_env().await;
        // No round trip before the function is ready: STS is asked now, in
        // the background, while Lambda brings the first event.
        let account = HomeAnswer::ask(clients.sts.clone());
        info!(function = function.name(), dry_run = cfg.dry_run, "ready");
        Ok(State {
            function,
            cfg,
            clients,
            account,
            executor: tokio::sync::OnceCell::new(),
        })
    }

    /// The executor for this invocation. A failed STS answer at start-up
    /// is asked again (per invocation) rather than kept.
    async fn executor(&self) -> Result<&Executor, Failure> {
        self.executor
            .get_or_try_init(|| async {
                let account = match self.account.get().await {
                    Ok(a) => a,
                    Err(_) => firebreak_aws::account::caller_account(self.clients.sts.clone())
                        .await
                        .map_err(Failure::from_aws)?,
                };
                Ok(Executor::for_account(
                    self.clients.clone(),
                    self.cfg.clone(),
                    account,
                ))
            })
            .await
    }

    /// One invocation.
    pub async fn handle(&self, payload: &Value) -> Result<Value, Failure> {
        if self.function == Function::Expirer {
            return self.expire().await;
        }
        // The runtime logs a returned failure; no second log line here.
        let bytes = serde_json::to_vec(payload).map_err(|e| Failure::new(Failure::BadInput, e))?;
        let plans =
            plan_event(&bytes, &self.cfg).map_err(|e| Failure::new(Failure::BadInput, e))?;
        check_source(self.function, &plans)?;
        let response = if self.executor.get().is_none() && self.account.peek().is_none() {
            // The first event of a cold start, before STS answered.
            firebreak_aws::respond_asking(&self.clients, &self.cfg, &self.account, &plans)
                .await
                .map_err(Failure::from_aws)?
        } else {
            firebreak_aws::respond(self.executor().await?, &plans).await
        };
        for r in &response.incidents {
            info!(incident_id = %r.id, actions = r.actions.len(), failed = r.failed().len(), "incident handled");
        }
        answer(self.function, &response)
    }

    async fn expire(&self) -> Result<Value, Failure> {
        let lifted = self
            .executor()
            .await?
            .expire_blocks(chrono::Utc::now())
            .await
            .map_err(Failure::from_aws)?;
        let failed: Vec<String> = lifted
            .iter()
            .filter(|l| l.status == firebreak_aws::outcome::Status::Failed)
            .map(|l| {
                format!(
                    "{} rule {} ({}): {}",
                    l.marker.network_acl_id, l.marker.rule_number, l.marker.cidr, l.detail
                )
            })
            .collect();
        info!(lifted = lifted.len(), failed = failed.len(), "expiry run");
        if !failed.is_empty() {
            return Err(Failure::new(
                Failure::Retryable,
                format!("could not lift: {}", failed.join("; ")),
            ));
        }
        Ok(json!({ "lifted": lifted }))
    }
}

/// Each function takes only its own source: an alarm sent to the GuardDuty
/// function is a wiring mistake, refused before anything is done. Of a
/// responder's requests, releases go to the release function alone and
/// everything else to the manual one.
fn check_source(function: Function, plans: &PlanSet) -> Result<(), Failure> {
    let want = function.accepts();
    if want.is_empty() {
        return Ok(());
    }
    let releases = |p: &firebreak_core::PlannedIncident| {
        matches!(
            p.incident.command,
            Some(firebreak_core::event::CommandOp::Release { .. })
        )
    };
    if function == Function::Manual && plans.incidents.iter().any(releases) {
        return Err(Failure::new(
            Failure::BadInput,
            "the manual responder contains; a release goes to the release function (the stack's ReleaseFunctionName), whose invoke permission is granted separately",
        ));
    }
    if function == Function::Release {
        if let Some(other) = plans.incidents.iter().find(|p| !releases(p)) {
            return Err(Failure::new(
                Failure::BadInput,
                format!(
                    "the release function takes only {{\"command\": \"release\", …}}; this is {} — send it to the manual responder",
                    sanitize::clean(&other.incident.incident_type, 80)
                ),
            ));
        }
    }
    match plans
        .incidents
        .iter()
        .find(|p| !want.contains(&p.incident.source))
    {
        Some(other) => Err(Failure::new(
            Failure::BadInput,
            format!(
                "the {} handles {} events; this one is from {} — send it to that function",
                function.name(),
                want.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" and "),
                other.incident.source.as_str()
            ),
        )),
        None => Ok(()),
    }
}

/// What the invocation returns. The manual responder always answers with
/// the outcome (`"ok"` says whether everything succeeded); the others fail
/// the invocation when an action failed, so Lambda retries or dead-letters it.
fn answer(function: Function, response: &Response) -> Result<Value, Failure> {
    let mut body = serde_json::to_value(response).unwrap_or(Value::Null);
    let failure = response.failure();
    match failure {
        // A responder invoked us and waits for the answer: show them
        // everything, including what failed; they decide on a retry.
        _ if matches!(function, Function::Manual | Function::Release) => {
            body["ok"] = json!(failure.is_none());
            body["needs_a_human"] = json!(response.needs_a_human());
            if let Some(failure) = failure {
                body["failure"] = json!(failure);
                body["retryable"] = json!(response.retryable());
            }
            Ok(body)
        }
        None => Ok(body),
        // SNS and EventBridge retry a failed invocation; that is what a
        // throttled or timed-out containment needs. Completed actions
        // are not done again on the retry.
        Some(failure) if response.retryable() => Err(Failure::new(Failure::Retryable, failure)),
        Some(failure) => Err(Failure::new(Failure::NeedsAHuman, failure)),
    }
}

/// Runs one function: logs (JSON when `AWS_LAMBDA_LOG_FORMAT=JSON`), state
/// once, then the Lambda runtime loop.
pub async fn run(function: Function) -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let state = Arc::new(State::init(function).await?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let state = state.clone();
        async move { state.handle(&event.payload).await }
    }))
    .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use firebreak_aws::outcome::{ActionOutcome, ErrorInfo, Status};
    use firebreak_aws::IncidentReport;
    use firebreak_core::ActionKind;

    fn plans(event: &[u8]) -> PlanSet {
        plan_event(event, &Config::default()).unwrap()
    }

    fn response(error: Option<(&str, bool)>) -> Response {
        let action = ActionOutcome {
            index: 0,
            kind: ActionKind::DeactivateAccessKey,
            target: "AKIAEXAMPLE".into(),
            status: if error.is_some() {
                Status::Failed
            } else {
                Status::Done
            },
            detail: "d".into(),
            prior_state: Value::Null,
            calls: vec![],
            error: error.map(|(code, retryable)| ErrorInfo {
                operation: "UpdateAccessKey".into(),
                code: Some(code.into()),
                message: "m".into(),
                retryable,
            }),
            at: "2026-11-22T00:00:00.000Z".into(),
        };
        Response {
            incidents: vec![IncidentReport {
                id: "inc-1".into(),
                severity: firebreak_core::Severity::High,
                incident_type:
                    "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS".into(),
                record: None,
                actions: vec![action],
            }],
            ignored: vec![],
        }
    }

    #[test]
    fn each_function_takes_only_its_own_source() {
        let alarm = plans(include_bytes!("../../../events/alarm-failed-login.json"));
        let finding = plans(include_bytes!("../../../events/guardduty-leaked-key.json"));
        let wrapped = plans(include_bytes!(
            "../../../events/guardduty-leaked-key-via-sns.json"
        ));
        let command = plans(include_bytes!("../../../events/command-block-ip.json"));
        assert!(check_source(Function::Alarm, &alarm).is_ok());
        assert!(check_source(Function::GuardDuty, &finding).is_ok());
        assert!(check_source(Function::GuardDuty, &wrapped).is_ok());
        assert!(check_source(Function::Manual, &command).is_ok());
        let Err(Failure::BadInput(why)) = check_source(Function::GuardDuty, &alarm) else {
            panic!("an alarm was accepted by the GuardDuty function");
        };
        assert!(why.contains("cloudwatch_alarm"), "{why}");
        assert!(check_source(Function::Alarm, &finding).is_err());
        assert!(check_source(Function::Manual, &finding).is_err());
        // Undo is its own function: the manual responder refuses a
        // release, the release function everything else.
        let release = plans(include_bytes!("../../../events/command-release.json"));
        let Err(Failure::BadInput(why)) = check_source(Function::Manual, &release) else {
            panic!("the manual responder accepted a release");
        };
        assert!(why.contains("release function"), "{why}");
        assert!(check_source(Function::Release, &release).is_ok());
        assert!(check_source(Function::Release, &command).is_err());
        assert!(check_source(Function::Release, &finding).is_err());
        // Security Hub's findings go to the findings function: GuardDuty's
        // through it, and other products' alike; nowhere else.
        let hub = plans(include_bytes!(
            "../../../events/securityhub-guardduty-ssh-brute-force-imported.json"
        ));
        let inspector = plans(include_bytes!(
            "../../../events/securityhub-inspector-vulnerability-custom-action.json"
        ));
        assert_eq!(inspector.incidents[0].incident.source, Source::SecurityHub);
        for p in [&hub, &inspector] {
            assert!(check_source(Function::GuardDuty, p).is_ok());
            assert!(check_source(Function::Alarm, p).is_err());
            assert!(check_source(Function::Manual, p).is_err());
            assert!(check_source(Function::Release, p).is_err());
        }
        let Err(Failure::BadInput(why)) = check_source(Function::GuardDuty, &command) else {
            panic!("the findings function accepted a command");
        };
        assert!(why.contains("guardduty and securityhub"), "{why}");
    }

    #[test]
    fn failures_say_whether_a_retry_can_help() {
        assert!(answer(Function::GuardDuty, &response(None)).is_ok());
        assert!(matches!(
            answer(Function::GuardDuty, &response(Some(("Throttling", true)))),
            Err(Failure::Retryable(_))
        ));
        let Err(Failure::NeedsAHuman(why)) =
            answer(Function::Alarm, &response(Some(("AccessDenied", false))))
        else {
            panic!("AccessDenied must not look retryable");
        };
        assert!(
            why.contains("AccessDenied") && why.contains("AKIAEXAMPLE"),
            "{why}"
        );
        let d = Diagnostic::from(Failure::NeedsAHuman(why));
        assert_eq!(d.error_type, "Firebreak.NeedsAHuman");
    }

    #[test]
    fn the_manual_responder_always_answers_with_the_outcome() {
        let ok = answer(Function::Manual, &response(None)).unwrap();
        assert_eq!(ok["ok"], json!(true));
        assert_eq!(ok["incidents"][0]["actions"][0]["status"], json!("done"));
        let failed = answer(Function::Manual, &response(Some(("Throttling", true)))).unwrap();
        assert_eq!(failed["ok"], json!(false));
        assert_eq!(failed["retryable"], json!(true));
        assert!(failed["failure"].as_str().unwrap().contains("Throttling"));
    }

    #[test]
    fn error_messages_cannot_forge_log_lines() {
        let forged = "bad\n{\"level\":\"INFO\",\"msg\":\"all clear\"}\u{1b}[2J".repeat(500);
        let f = Failure::new(Failure::BadInput, forged);
        // What the runtime logs (Debug) and what it returns are both clean.
        let logged = format!("{f:?}");
        assert!(!logged.contains('\n') && !logged.contains('\u{1b}'));
        let d = Diagnostic::from(f);
        assert_eq!(d.error_type, "Firebreak.BadInput");
        assert!(!d.error_message.contains('\n') && !d.error_message.contains('\u{1b}'));
        assert!(d.error_message.contains("\\n"));
        // The capped text plus the ellipsis clean() adds, after the prefix.
        let prefix = "refused, nothing was changed: ";
        assert!(d.error_message.starts_with(prefix));
        assert!(d.error_message.chars().count() <= prefix.len() + MESSAGE_CAP + 1);
    }
}
