//! The two ways in: [`respond`] with an executor that knows its account, and
//! [`respond_asking`] while STS is still being asked (a CLI run, a cold
//! start's first event).

use std::collections::BTreeMap;
use std::sync::Arc;

use firebreak_core::{ActionKind, Config, PlannedIncident};
use futures_util::future::join_all;

use super::{Executor, HomeAnswer, Progress, Response};
use crate::clients::Clients;
use crate::error::AwsError;

/// Carries out every incident of one event, concurrently.
pub async fn respond(executor: &Executor, plans: &firebreak_core::PlanSet) -> Response {
    let incidents = join_all(plans.incidents.iter().map(|p| executor.run(p))).await;
    Response {
        incidents,
        ignored: plans.ignored.clone(),
    }
}

/// [`respond`] while STS is still being asked which account the
/// credentials act in (`home`): a CLI run, or a function's first event.
///
/// An incident that names its account starts at once, as if that were the
/// credentials' account: its reads, claims, budget and record go out beside
/// the STS call instead of one round trip after it, and each action's first
/// change waits for STS to agree (see `Executor::unconfirmed`). Where STS
/// names another account, the actions end as they would have with the
/// account known: skipped, "not here" (a failed STS call fails them, to be
/// retried). Incidents that cannot start so wait for the answer, as with
/// [`respond`]: those that name no account, any release (it resolves the
/// place it undoes), and all of them when member roles are configured
/// (another account is then reached through a role).
///
/// `Err` only when an incident that waited for STS could not have its
/// answer.
pub async fn respond_asking(
    clients: &Clients,
    cfg: &Arc<Config>,
    home: &HomeAnswer,
    plans: &firebreak_core::PlanSet,
) -> Result<Response, AwsError> {
    respond_showing(clients, cfg, home, plans, &Progress::default()).await
}

/// [`respond_asking`], telling `progress` of each step of a long action (a
/// lockdown's evidence copy, object by object): `firebreak respond` on a
/// terminal.
pub async fn respond_showing(
    clients: &Clients,
    cfg: &Arc<Config>,
    home: &HomeAnswer,
    plans: &firebreak_core::PlanSet,
    progress: &Progress,
) -> Result<Response, AwsError> {
    // One executor per account guessed (its places and clients shared by
    // that account's incidents), one for those that wait.
    let mut guessed: BTreeMap<&str, Executor> = BTreeMap::new();
    for account in plans.incidents.iter().filter_map(|p| guessable(p, cfg)) {
        guessed.entry(account).or_insert_with(|| {
            Executor::guessing(clients.clone(), cfg.clone(), account, home.clone())
                .with_progress(progress.clone())
        });
    }
    let known = tokio::sync::OnceCell::new();
    let runs = plans.incidents.iter().map(|p| {
        let (known, guessed) = (&known, &guessed);
        async move {
            if let Some(exec) = guessable(p, cfg).and_then(|a| guessed.get(a)) {
                return Ok::<_, AwsError>(exec.run(p).await);
            }
            let exec = known
                .get_or_try_init(|| async {
                    let account = home.get().await?;
                    let exec = Executor::for_account(clients.clone(), cfg.clone(), account);
                    Ok::<_, AwsError>(exec.with_progress(progress.clone()))
                })
                .await?;
            Ok(exec.run(p).await)
        }
    });
    let incidents = join_all(runs).await.into_iter().collect::<Result<_, _>>()?;
    Ok(Response {
        incidents,
        ignored: plans.ignored.clone(),
    })
}

/// The account an incident may start in before STS answers (see
/// [`respond_asking`]).
fn guessable<'p>(plan: &'p PlannedIncident, cfg: &Config) -> Option<&'p str> {
    let releases = plan.actions.iter().any(|a| a.kind == ActionKind::Release);
    if releases || cfg.member_role_name.is_some() {
        return None;
    }
    plan.incident.account.as_deref().filter(|a| !a.is_empty())
}
