//! Evidence: a snapshot of every volume of an instance, tagged with the
//! incident, made once even when an answer is lost.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Filter, ResourceType};
use futures_util::future::join_all;

use super::instance::InstanceReads;
use super::isolate::{tags_on, INCIDENT_TAG};
use crate::error::AwsError;
use crate::gate::Gate;
use crate::outcome::Step;
use crate::prior::{self, SnapshotPrior, SnapshotRef};

/// The snapshots tagged with the incident (of `volume` only, if given).
async fn incident_snapshots(
    ec2: &aws_sdk_ec2::Client,
    incident_id: &str,
    volume: Option<&str>,
) -> Result<Vec<aws_sdk_ec2::types::Snapshot>, AwsError> {
    let mut filters = vec![Filter::builder()
        .name(format!("tag:{INCIDENT_TAG}"))
        .values(incident_id)
        .build()];
    if let Some(v) = volume {
        filters.push(Filter::builder().name("volume-id").values(v).build());
    }
    let found = ec2
        .describe_snapshots()
        .owner_ids("self")
        .set_filters(Some(filters))
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("DescribeSnapshots", e))?;
    Ok(found.snapshots.unwrap_or_default())
}

/// How many times [`create_snapshot`] sends CreateSnapshot.
const SNAPSHOT_ATTEMPTS: u32 = 4;

/// One snapshot of `vol`, tagged with the incident. CreateSnapshot takes no
/// client token: when its answer is lost (a reset, a timeout) the snapshot
/// may exist all the same, and the SDK's blind retry would make a second
/// one. So it is sent without the SDK's retries, and after a retryable
/// failure the incident's snapshot of `vol` is looked for before sending it
/// again.
async fn create_snapshot(
    ec2: &aws_sdk_ec2::Client,
    instance_id: &str,
    vol: &str,
    incident_id: &str,
) -> Result<(Option<String>, Vec<String>), AwsError> {
    let mut calls = Vec::new();
    let once = aws_sdk_ec2::config::Builder::default()
        .retry_config(aws_config::retry::RetryConfig::disabled());
    let mut pause = std::time::Duration::from_millis(200);
    let mut attempt = 1;
    loop {
        calls.push("CreateSnapshot".into());
        let sent = ec2
            .create_snapshot()
            .volume_id(vol)
            .description(format!("Firebreak {incident_id}: {instance_id} {vol}"))
            .tag_specifications(tags_on(ResourceType::Snapshot, incident_id))
            .customize()
            .config_override(once.clone())
            .send()
            .await;
        let err = match sent {
            Ok(snap) => return Ok((snap.snapshot_id, calls)),
            Err(e) => AwsError::from_sdk("CreateSnapshot", e),
        };
        if !err.retryable || attempt >= SNAPSHOT_ATTEMPTS {
            return Err(err);
        }
        tokio::time::sleep(pause).await;
        pause *= 2;
        attempt += 1;
        calls.push("DescribeSnapshots".into());
        let found = incident_snapshots(ec2, incident_id, Some(vol)).await?;
        if let Some(s) = found.first() {
            // The lost answer's snapshot: it is the one we asked for.
            return Ok((s.snapshot_id.clone(), calls));
        }
    }
}

/// A snapshot of every EBS volume attached to the instance, tagged with the
/// incident. Volumes that already have this incident's snapshot are skipped.
/// The two reads go out at once, then every snapshot at once.
pub async fn snapshot_volumes(
    ec2: &aws_sdk_ec2::Client,
    instance_id: &str,
    incident_id: &str,
    gate: &Gate<'_>,
) -> Result<Step, AwsError> {
    let reads = InstanceReads::default();
    snapshot_volumes_read(ec2, instance_id, incident_id, &reads, gate).await
}

/// [`snapshot_volumes`], the instance's volumes taken from its one
/// `DescribeInstances` of this run (`reads`, shared with its isolation),
/// read beside this incident's snapshots.
pub(crate) async fn snapshot_volumes_read(
    ec2: &aws_sdk_ec2::Client,
    instance_id: &str,
    incident_id: &str,
    reads: &InstanceReads,
    gate: &Gate<'_>,
) -> Result<Step, AwsError> {
    let (instance, existing) = tokio::try_join!(
        reads.get(ec2, instance_id),
        incident_snapshots(ec2, incident_id, None)
    )?;
    let mut calls = vec![
        "DescribeInstances".to_string(),
        "DescribeSnapshots".to_string(),
    ];
    let vols: Vec<&str> = instance.volumes.iter().map(String::as_str).collect();
    if vols.is_empty() {
        return Ok(Step::refused(
            format!("instance {instance_id} has no EBS volume attached"),
            calls,
        ));
    }
    let had = |vol: &str| existing.iter().find(|s| s.volume_id() == Some(vol));
    let to_make: Vec<&str> = vols.iter().copied().filter(|v| had(v).is_none()).collect();
    if !to_make.is_empty() {
        gate.pass().await?;
    }
    let made = join_all(
        to_make
            .iter()
            .map(|vol| create_snapshot(ec2, instance_id, vol, incident_id)),
    )
    .await;
    let mut new_ids = BTreeMap::new();
    for (vol, m) in to_make.iter().zip(made) {
        let (id, more) = m?;
        calls.extend(more);
        new_ids.insert(*vol, id);
    }
    let snapshots: Vec<SnapshotRef> = vols
        .iter()
        .map(|vol| match had(vol) {
            Some(s) => SnapshotRef {
                volume_id: vol.to_string(),
                snapshot_id: s.snapshot_id().map(str::to_string),
                existed: true,
            },
            None => SnapshotRef {
                volume_id: vol.to_string(),
                snapshot_id: new_ids.get(vol).cloned().flatten(),
                existed: false,
            },
        })
        .collect();
    let created = to_make.len();
    Ok(Step::new(
        created == 0,
        format!(
            "{} snapshot(s) of the volumes of {instance_id} ({created} new)",
            snapshots.len()
        ),
        prior::to_json(&SnapshotPrior {
            instance_id: instance_id.into(),
            snapshots,
        }),
        calls,
    ))
}
