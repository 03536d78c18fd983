//! What an emergency lockdown acts on, seeded in the emulator: an ECS
//! service running two tasks, an Application Load Balancer whose listener
//! forwards to two weighted target groups (and has a rule of its own), an
//! admin secret with rotation configured, a bucket of user data and a log
//! group; and the state a test compares before and after.

use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, FixedResponseActionConfig, ForwardActionConfig, Rule, RuleCondition,
    TargetGroupStickinessConfig, TargetGroupTuple,
};
use aws_sdk_secretsmanager::types::RotationRulesType;

/// The seeded targets.
#[derive(Debug, Clone)]
pub struct Targets {
    /// The cluster.
    pub cluster: String,
    /// The service (desired count [`DESIRED`]).
    pub service: String,
    /// The load balancer.
    pub load_balancer_arn: String,
    /// Its listener.
    pub listener_arn: String,
    /// The secret.
    pub secret_id: String,
    /// The bucket of user data.
    pub uploads: String,
    /// Its objects under `users/` (the evidence), and one outside it.
    pub user_objects: Vec<String>,
    /// The log group.
    pub log_group: String,
}

/// The service's desired count before a lockdown.
pub const DESIRED: i32 = 2;

/// What is under `users/` in the uploads bucket.
pub const USER_OBJECTS: [(&str, &str); 3] = [
    ("users/1.json", r#"{"id":1,"email":"a@example.com"}"#),
    ("users/2.json", r#"{"id":2,"email":"b@example.com"}"#),
    ("users/with space+plus.json", r#"{"id":3}"#),
];

/// Seeds a lockdown's targets in `vpc`/`subnet`, named with `name` (one
/// emulator may hold several sets).
pub async fn seed(c: &firebreak_aws::Clients, vpc: &str, subnet: &str, name: &str) -> Targets {
    let cluster = format!("{name}-cluster");
    let service = format!("{name}-api");
    ecs_service(&c.ecs, &cluster, &service).await;
    let (load_balancer_arn, listener_arn) = load_balancer(&c.elb, vpc, subnet, name).await;
    let secret_id = format!("{name}/admin-password");
    secret(&c.secrets, &secret_id).await;
    let uploads = format!("{name}-uploads");
    super::create_bucket(&c.s3, &uploads).await;
    let mut user_objects = Vec::new();
    for (key, body) in USER_OBJECTS
        .iter()
        .chain([("other/keep-out.json", "{}")].iter())
    {
        c.s3.put_object()
            .bucket(&uploads)
            .key(*key)
            .body(body.as_bytes().to_vec().into())
            .send()
            .await
            .unwrap();
        if key.starts_with("users/") {
            user_objects.push(key.to_string());
        }
    }
    let log_group = format!("/{name}/auth-service");
    c.logs
        .create_log_group()
        .log_group_name(&log_group)
        .send()
        .await
        .unwrap();
    c.logs
        .put_retention_policy()
        .log_group_name(&log_group)
        .retention_in_days(30)
        .send()
        .await
        .unwrap();
    Targets {
        cluster,
        service,
        load_balancer_arn,
        listener_arn,
        secret_id,
        uploads,
        user_objects,
        log_group,
    }
}

async fn ecs_service(ecs: &aws_sdk_ecs::Client, cluster: &str, service: &str) {
    ecs.create_cluster()
        .cluster_name(cluster)
        .send()
        .await
        .unwrap();
    let family = format!("{service}-task");
    ecs.register_task_definition()
        .family(&family)
        .container_definitions(
            aws_sdk_ecs::types::ContainerDefinition::builder()
                .name("app")
                .image("public.ecr.aws/nginx/nginx:latest")
                .memory(256)
                .build(),
        )
        .send()
        .await
        .unwrap();
    ecs.create_service()
        .cluster(cluster)
        .service_name(service)
        .task_definition(&family)
        .desired_count(DESIRED)
        .send()
        .await
        .unwrap();
}

/// The listener's default actions as seeded: a weighted forward with
/// stickiness, what a blue/green deployment leaves behind.
pub fn forward_to(blue: &str, green: &str) -> Action {
    let tuple = |arn: &str, weight| {
        TargetGroupTuple::builder()
            .target_group_arn(arn)
            .weight(weight)
            .build()
    };
    Action::builder()
        .r#type(ActionTypeEnum::Forward)
        .order(1)
        .forward_config(
            ForwardActionConfig::builder()
                .target_groups(tuple(blue, 80))
                .target_groups(tuple(green, 20))
                .target_group_stickiness_config(
                    TargetGroupStickinessConfig::builder()
                        .enabled(true)
                        .duration_seconds(300)
                        .build(),
                )
                .build(),
        )
        .build()
}

async fn load_balancer(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    vpc: &str,
    subnet: &str,
    name: &str,
) -> (String, String) {
    let lb = elb
        .create_load_balancer()
        .name(format!("{name}-web"))
        .subnets(subnet)
        .r#type(aws_sdk_elasticloadbalancingv2::types::LoadBalancerTypeEnum::Application)
        .send()
        .await
        .unwrap()
        .load_balancers()[0]
        .load_balancer_arn()
        .unwrap()
        .to_string();
    let mut groups = Vec::new();
    for color in ["blue", "green"] {
        let tg = elb
            .create_target_group()
            .name(format!("{name}-{color}"))
            .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Http)
            .port(8080)
            .vpc_id(vpc)
            .send()
            .await
            .unwrap();
        groups.push(
            tg.target_groups()[0]
                .target_group_arn()
                .unwrap()
                .to_string(),
        );
    }
    let listener = elb
        .create_listener()
        .load_balancer_arn(&lb)
        .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Http)
        .port(80)
        .default_actions(forward_to(&groups[0], &groups[1]))
        .send()
        .await
        .unwrap()
        .listeners()[0]
        .listener_arn()
        .unwrap()
        .to_string();
    // A rule of its own, which a lockdown leaves as it is.
    elb.create_rule()
        .listener_arn(&listener)
        .priority(10)
        .conditions(
            RuleCondition::builder()
                .field("path-pattern")
                .values("/health")
                .build(),
        )
        .actions(
            Action::builder()
                .r#type(ActionTypeEnum::FixedResponse)
                .fixed_response_config(
                    FixedResponseActionConfig::builder()
                        .status_code("200")
                        .content_type("text/plain")
                        .message_body("ok")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    (lb, listener)
}

async fn secret(secrets: &aws_sdk_secretsmanager::Client, id: &str) {
    secrets
        .create_secret()
        .name(id)
        .secret_string("correct horse battery staple")
        .send()
        .await
        .unwrap();
    // Rotation configured (on AWS: a rotation function or a managed
    // rotation; the emulator takes the schedule alone).
    secrets
        .rotate_secret()
        .secret_id(id)
        .rotation_rules(
            RotationRulesType::builder()
                .automatically_after_days(30)
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// A service's desired count.
pub async fn desired_count(ecs: &aws_sdk_ecs::Client, cluster: &str, service: &str) -> i32 {
    ecs.describe_services()
        .cluster(cluster)
        .services(service)
        .send()
        .await
        .unwrap()
        .services()[0]
        .desired_count()
}

/// A listener's default actions, as ELB describes them.
pub async fn default_actions(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    listener: &str,
) -> Vec<Action> {
    elb.describe_listeners()
        .listener_arns(listener)
        .send()
        .await
        .unwrap()
        .listeners()[0]
        .default_actions()
        .to_vec()
}

/// A listener's rules other than the default one.
pub async fn other_rules(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    listener: &str,
) -> Vec<Rule> {
    elb.describe_rules()
        .listener_arn(listener)
        .send()
        .await
        .unwrap()
        .rules()
        .iter()
        .filter(|r| r.is_default() != Some(true))
        .cloned()
        .collect()
}

/// The version a secret's `AWSCURRENT` label is on.
pub async fn current_version(secrets: &aws_sdk_secretsmanager::Client, id: &str) -> String {
    let d = secrets
        .describe_secret()
        .secret_id(id)
        .send()
        .await
        .unwrap();
    d.version_ids_to_stages()
        .unwrap()
        .iter()
        .find(|(_, labels)| labels.iter().any(|l| l == "AWSCURRENT"))
        .map(|(v, _)| v.clone())
        .unwrap()
}

/// A log group's retention.
pub async fn retention(logs: &aws_sdk_cloudwatchlogs::Client, group: &str) -> Option<i32> {
    logs.describe_log_groups()
        .log_group_name_prefix(group)
        .send()
        .await
        .unwrap()
        .log_groups()
        .iter()
        .find(|g| g.log_group_name() == Some(group))
        .and_then(|g| g.retention_in_days())
}

/// The lockdown command for `t`, as a responder sends it.
pub fn command(t: &Targets, evidence_prefix: &str) -> serde_json::Value {
    serde_json::json!({
        "command": "lockdown",
        "ecs_services": [{ "cluster": t.cluster, "service": t.service }],
        "listener_arns": [t.listener_arn],
        "secret_ids": [t.secret_id],
        "log_groups": [t.log_group],
        "evidence": [{ "bucket": t.uploads, "prefix": evidence_prefix }],
        "requested_by": "oncall-alice",
        "reason": "admin credentials in a public paste, SEC-2077",
        "account": super::ACCOUNT,
        "region": "eu-west-1",
    })
}
