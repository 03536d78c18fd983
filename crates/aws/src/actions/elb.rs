//! Elastic Load Balancing, for the emergency lockdown: a listener's default
//! actions replaced by a fixed 503, recorded in full first; the undo puts
//! them back exactly. The listener's other rules are left as they are.

mod convert;

use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, FixedResponseActionConfig, Listener,
};
use firebreak_core::lockdown::{MAINTENANCE_BODY, MAINTENANCE_CONTENT_TYPE, MAINTENANCE_STATUS};

use super::protected_by;
use crate::error::{AwsError, Own};
use crate::gate::Gate;
use crate::outcome::Step;
use crate::prior::{self, ListenerPrior};

/// The calls [`read`] makes.
const READS: [&str; 2] = ["DescribeListeners", "DescribeTags"];

/// The fixed 503 a locked-down listener answers with.
pub fn maintenance_response() -> Action {
    Action::builder()
        .r#type(ActionTypeEnum::FixedResponse)
        .fixed_response_config(
            FixedResponseActionConfig::builder()
                .status_code(MAINTENANCE_STATUS)
                .content_type(MAINTENANCE_CONTENT_TYPE)
                .message_body(MAINTENANCE_BODY)
                .build(),
        )
        .build()
}

/// True when `actions` are the maintenance response alone.
fn is_maintenance(actions: &[Action]) -> bool {
    matches!(actions, [a] if a.fixed_response_config().is_some_and(|f| {
        f.status_code() == Some(MAINTENANCE_STATUS) && f.message_body() == Some(MAINTENANCE_BODY)
    }))
}

/// True when a release could not put `actions` back: an OpenID Connect
/// authentication needs its client secret, which AWS never returns (the
/// restore would have to reuse the existing one, and after the lockdown
/// there is none), so the listener would stay on 503.
fn needs_a_secret_back(actions: &[Action]) -> bool {
    actions
        .iter()
        .any(|a| a.r#type() == Some(&ActionTypeEnum::AuthenticateOidc))
}

/// The load balancer a listener ARN belongs to (`…:listener/app/n/lb/l` →
/// `…:loadbalancer/app/n/lb`), so its tags are read beside the listener.
fn load_balancer_of(listener_arn: &str) -> Option<String> {
    let (lb, _) = listener_arn.rsplit_once('/')?;
    lb.contains(":listener/")
        .then(|| lb.replacen(":listener/", ":loadbalancer/", 1))
}

/// The listener, and the tag keys of it and its load balancer.
struct Live {
    listener: Listener,
    tag_keys: Vec<String>,
}

async fn describe(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    listener_arn: &str,
) -> Result<Listener, AwsError> {
    let out = elb
        .describe_listeners()
        .listener_arns(listener_arn)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("DescribeListeners", e))?;
    out.listeners()
        .iter()
        .find(|l| l.listener_arn() == Some(listener_arn))
        .cloned()
        .ok_or_else(|| {
            AwsError::from(Own::NoSuchListener {
                listener: listener_arn.to_string(),
            })
        })
}

async fn tag_keys(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    arns: Vec<String>,
) -> Result<Vec<String>, AwsError> {
    let out = elb
        .describe_tags()
        .set_resource_arns(Some(arns))
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("DescribeTags", e))?;
    Ok(out
        .tag_descriptions()
        .iter()
        .flat_map(|d| d.tags())
        .filter_map(|t| t.key().map(str::to_string))
        .collect())
}

/// The listener and the tags of it and its load balancer, read at once.
async fn read(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    listener_arn: &str,
) -> Result<Live, AwsError> {
    let mut tagged = vec![listener_arn.to_string()];
    tagged.extend(load_balancer_of(listener_arn));
    let (listener, tag_keys) =
        tokio::try_join!(describe(elb, listener_arn), tag_keys(elb, tagged))?;
    Ok(Live { listener, tag_keys })
}

async fn set_default_actions(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    listener_arn: &str,
    actions: Vec<Action>,
) -> Result<(), AwsError> {
    elb.modify_listener()
        .listener_arn(listener_arn)
        .set_default_actions(Some(actions))
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("ModifyListener", e))?;
    Ok(())
}

/// Replaces a listener's default actions with a fixed 503, recording them
/// in full. A listener answering 503 already is left alone; one whose
/// load balancer (or itself) carries the protected tag, read live, is
/// refused. Its other rules stay as they are.
pub async fn serve_maintenance(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    listener_arn: &str,
    protected_tag: &str,
    gate: &Gate<'_>,
) -> Result<Step, AwsError> {
    let live = read(elb, listener_arn).await?;
    let mut calls: Vec<String> = READS.map(String::from).to_vec();
    if let Some(k) = protected_by(live.tag_keys.iter().map(String::as_str), protected_tag) {
        return Ok(Step::refused(
            format!("listener {listener_arn} or its load balancer carries the protected tag `{k}`"),
            calls,
        ));
    }
    let before = live.listener.default_actions();
    if needs_a_secret_back(before) {
        return Ok(Step::refused(
            format!("listener {listener_arn} authenticates with OpenID Connect: AWS never returns its client secret, so a release could not put its default actions back; take it down by hand (a listener rule) or leave it out of the lockdown"),
            calls,
        ));
    }
    let state = prior::to_json(&ListenerPrior {
        listener_arn: listener_arn.to_string(),
        load_balancer_arn: live.listener.load_balancer_arn().map(str::to_string),
        default_actions: before.iter().map(convert::recorded).collect(),
    });
    if is_maintenance(before) {
        return Ok(Step::new(
            true,
            format!("listener {listener_arn} already answers {MAINTENANCE_STATUS}"),
            state,
            calls,
        ));
    }
    gate.pass().await?;
    set_default_actions(elb, listener_arn, vec![maintenance_response()]).await?;
    calls.push("ModifyListener".into());
    let kinds: Vec<&str> = before
        .iter()
        .filter_map(|a| a.r#type().map(ActionTypeEnum::as_str))
        .collect();
    Ok(Step::new(
        false,
        format!(
            "listener {listener_arn} answers {MAINTENANCE_STATUS} \"{MAINTENANCE_BODY}\" (its default actions were: {}; its other rules are unchanged)",
            kinds.join(", ")
        ),
        state,
        calls,
    ))
}

/// Undo of [`serve_maintenance`]: the recorded default actions back, while
/// the listener still answers with the maintenance response (actions
/// someone set since are theirs, and stay).
pub async fn restore_listener(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    prior: &ListenerPrior,
) -> Result<Step, AwsError> {
    let arn = prior.listener_arn.as_str();
    let now = describe(elb, arn).await?;
    let mut calls = vec!["DescribeListeners".to_string()];
    if !is_maintenance(now.default_actions()) {
        return Ok(Step::new(
            true,
            format!(
                "listener {arn} left as it is: its default actions were changed after the lockdown"
            ),
            prior::to_json(prior),
            calls,
        ));
    }
    let actions = prior.default_actions.iter().map(convert::to_sdk).collect();
    set_default_actions(elb, arn, actions).await?;
    calls.push("ModifyListener".into());
    Ok(Step::new(
        false,
        format!(
            "listener {arn}: its {} default action(s) back",
            prior.default_actions.len()
        ),
        prior::to_json(prior),
        calls,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_arn_names_its_load_balancer() {
        assert_eq!(
            load_balancer_of("arn:aws:elasticloadbalancing:eu-west-1:111122223333:listener/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2").as_deref(),
            Some("arn:aws:elasticloadbalancing:eu-west-1:111122223333:loadbalancer/app/web/50dc6c495c0c9188")
        );
        assert_eq!(
            load_balancer_of("arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/x/y"),
            None
        );
        assert!(is_maintenance(&[maintenance_response()]));
        let oidc = Action::builder()
            .r#type(ActionTypeEnum::AuthenticateOidc)
            .build();
        assert!(needs_a_secret_back(&[oidc, maintenance_response()]));
        assert!(!needs_a_secret_back(&[maintenance_response()]));
        assert!(!is_maintenance(&[
            maintenance_response(),
            maintenance_response()
        ]));
    }
}
