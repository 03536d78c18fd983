//! An instance as one `DescribeInstances` answer holds it: its tags, its
//! network interfaces with their VPC and groups, its EBS volumes. Isolation
//! and the snapshots of one incident act on the same instance at the same
//! time; [`InstanceReads`] lets them share that one read, sent once, in the
//! first round trip, instead of each asking again (or reading the
//! interfaces and volumes the answer already lists).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::OnceCell;

use crate::error::{AwsError, Own};

/// One ENI of an instance as EC2 describes it now.
#[derive(Debug, Clone)]
pub(crate) struct LiveEni {
    pub(crate) id: String,
    pub(crate) vpc: String,
    pub(crate) groups: Vec<String>,
}

/// The instance as EC2 describes it now.
#[derive(Debug, Clone)]
pub(crate) struct LiveInstance {
    pub(crate) tags: Vec<(String, String)>,
    pub(crate) enis: Vec<LiveEni>,
    /// The ids of its attached EBS volumes.
    pub(crate) volumes: Vec<String>,
}

fn eni(n: &aws_sdk_ec2::types::InstanceNetworkInterface) -> LiveEni {
    LiveEni {
        id: n.network_interface_id().unwrap_or_default().to_string(),
        vpc: n.vpc_id().unwrap_or_default().to_string(),
        groups: n
            .groups()
            .iter()
            .filter_map(|g| g.group_id().map(str::to_string))
            .collect(),
    }
}

/// `DescribeInstances` of one instance.
pub(crate) async fn describe_instance(
    ec2: &aws_sdk_ec2::Client,
    instance_id: &str,
) -> Result<LiveInstance, AwsError> {
    let out = ec2
        .describe_instances()
        .instance_ids(instance_id)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("DescribeInstances", e))?;
    let inst = out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .next()
        .ok_or_else(|| {
            AwsError::from(Own::NoSuchInstance {
                instance: instance_id.to_string(),
            })
        })?;
    let tag = |t: &aws_sdk_ec2::types::Tag| {
        (
            t.key().unwrap_or_default().to_string(),
            t.value().unwrap_or_default().to_string(),
        )
    };
    Ok(LiveInstance {
        tags: inst.tags().iter().map(tag).collect(),
        enis: inst.network_interfaces().iter().map(eni).collect(),
        volumes: inst
            .block_device_mappings()
            .iter()
            .filter_map(|m| m.ebs().and_then(|e| e.volume_id()))
            .map(str::to_string)
            .collect(),
    })
}

type Cell = Arc<OnceCell<Result<Arc<LiveInstance>, AwsError>>>;

/// The instances one run has read, each read once: the first action to ask
/// sends `DescribeInstances`, the others wait for its answer. Lives as long
/// as one incident's run, so a later event reads afresh.
#[derive(Debug, Default)]
pub(crate) struct InstanceReads {
    cells: Mutex<BTreeMap<String, Cell>>,
}

impl InstanceReads {
    /// The instance `instance_id`, read now or by an action of this run
    /// that asked first.
    pub(crate) async fn get(
        &self,
        ec2: &aws_sdk_ec2::Client,
        instance_id: &str,
    ) -> Result<Arc<LiveInstance>, AwsError> {
        let cell = {
            let mut cells = self.cells.lock().unwrap_or_else(PoisonError::into_inner);
            cells.entry(instance_id.to_string()).or_default().clone()
        };
        cell.get_or_init(|| async { describe_instance(ec2, instance_id).await.map(Arc::new) })
            .await
            .clone()
    }
}
