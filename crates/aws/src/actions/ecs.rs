//! ECS, for the emergency lockdown: a service's desired count to zero, and
//! the undo that sets it back.

use aws_sdk_ecs::types::{ClusterField, SchedulingStrategy, Service, ServiceField, Tag};

use super::protected_by;
use crate::error::{AwsError, Own};
use crate::gate::Gate;
use crate::outcome::Step;
use crate::prior::{self, ScalePrior};

/// The calls [`read`] makes.
const READS: [&str; 2] = ["DescribeServices", "DescribeClusters"];

/// The service as ECS describes it now, and its cluster's tags.
struct Live {
    service: Service,
    cluster_tags: Vec<Tag>,
}

/// The service, active (ECS answers a missing service with a failure entry,
/// not an error; a service deleted since keeps answering as INACTIVE).
async fn describe(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
) -> Result<Service, AwsError> {
    let out = ecs
        .describe_services()
        .cluster(cluster)
        .services(service)
        .include(ServiceField::Tags)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("DescribeServices", e))?;
    out.services()
        .iter()
        .find(|s| s.status() != Some("INACTIVE"))
        .cloned()
        .ok_or_else(|| {
            AwsError::from(Own::NoSuchService {
                cluster: cluster.to_string(),
                service: service.to_string(),
            })
        })
}

async fn cluster_tags(ecs: &aws_sdk_ecs::Client, cluster: &str) -> Result<Vec<Tag>, AwsError> {
    let out = ecs
        .describe_clusters()
        .clusters(cluster)
        .include(ClusterField::Tags)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("DescribeClusters", e))?;
    Ok(out
        .clusters()
        .iter()
        .flat_map(|c| c.tags())
        .cloned()
        .collect())
}

/// The service and its cluster's tags, read at once.
async fn read(ecs: &aws_sdk_ecs::Client, cluster: &str, service: &str) -> Result<Live, AwsError> {
    let (service, cluster_tags) =
        tokio::try_join!(describe(ecs, cluster, service), cluster_tags(ecs, cluster))?;
    Ok(Live {
        service,
        cluster_tags,
    })
}

fn keys(tags: &[Tag]) -> impl Iterator<Item = &str> {
    tags.iter().filter_map(|t| t.key())
}

/// Why the service must not be scaled to zero, if it must not: the
/// protected tag on it or its cluster, or a scheduling strategy that has
/// no desired count.
fn refusal(live: &Live, cluster: &str, service: &str, protected_tag: &str) -> Option<String> {
    if let Some(k) = protected_by(keys(live.service.tags()), protected_tag) {
        return Some(format!("service {service} carries the protected tag `{k}`"));
    }
    if let Some(k) = protected_by(keys(&live.cluster_tags), protected_tag) {
        return Some(format!(
            "cluster {cluster} of service {service} carries the protected tag `{k}`"
        ));
    }
    if live.service.scheduling_strategy() == Some(&SchedulingStrategy::Daemon) {
        return Some(format!(
            "service {service} is a DAEMON service (one task per instance, no desired count): drain its instances instead"
        ));
    }
    None
}

/// Sets a service's desired count to 0, recording the count before. A
/// service at 0 already is left alone; one that carries the protected tag
/// (or whose cluster does), read live, is refused.
pub async fn scale_to_zero(
    ecs: &aws_sdk_ecs::Client,
    (cluster, service): (&str, &str),
    protected_tag: &str,
    gate: &Gate<'_>,
) -> Result<Step, AwsError> {
    let live = read(ecs, cluster, service).await?;
    let mut calls: Vec<String> = READS.map(String::from).to_vec();
    if let Some(why) = refusal(&live, cluster, service, protected_tag) {
        return Ok(Step::refused(why, calls));
    }
    let before = live.service.desired_count();
    let state = prior::to_json(&ScalePrior {
        cluster: cluster.to_string(),
        service: service.to_string(),
        desired_count: before,
    });
    if before == 0 {
        return Ok(Step::new(
            true,
            format!("service {cluster}/{service} was already at a desired count of 0"),
            state,
            calls,
        ));
    }
    gate.pass().await?;
    set_desired(ecs, cluster, service, 0).await?;
    calls.push("UpdateService".into());
    Ok(Step::new(
        false,
        format!(
            "service {cluster}/{service} scaled to 0 (was {before} desired, {} running)",
            live.service.running_count()
        ),
        state,
        calls,
    ))
}

async fn set_desired(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
    count: i32,
) -> Result<(), AwsError> {
    ecs.update_service()
        .cluster(cluster)
        .service(service)
        .desired_count(count)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("UpdateService", e))?;
    Ok(())
}

/// Undo of [`scale_to_zero`]: the recorded desired count back, while the
/// service is still at 0 as the lockdown left it (a count someone set
/// since is theirs, and stays).
pub async fn restore_service(
    ecs: &aws_sdk_ecs::Client,
    prior: &ScalePrior,
) -> Result<Step, AwsError> {
    let (cluster, service) = (prior.cluster.as_str(), prior.service.as_str());
    let now = describe(ecs, cluster, service).await?.desired_count();
    let mut calls = vec!["DescribeServices".to_string()];
    if now != 0 {
        return Ok(Step::new(
            true,
            format!("service {cluster}/{service} left at {now}: its count was changed after the lockdown"),
            prior::to_json(prior),
            calls,
        ));
    }
    set_desired(ecs, cluster, service, prior.desired_count).await?;
    calls.push("UpdateService".into());
    Ok(Step::new(
        false,
        format!(
            "service {cluster}/{service} back to a desired count of {}",
            prior.desired_count
        ),
        prior::to_json(prior),
        calls,
    ))
}
