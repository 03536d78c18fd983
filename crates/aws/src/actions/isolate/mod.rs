//! Instance isolation: each network interface moved through an allow-all
//! group (its tracked connections become untracked) into an empty one, the
//! instance tagged with the incident and its termination protection on;
//! and the undo, from the recorded original groups.

use aws_sdk_ec2::types::{
    AttributeBooleanValue, Filter, InstanceAttributeName, ResourceType, Tag, TagSpecification,
};
use std::collections::BTreeSet;
use std::sync::Arc;

use futures_util::future::join_all;

use super::groups::{managed_groups, ManagedGroups, MANAGED_TAG};
pub use super::groups::{ISOLATION_GROUP, UNTRACK_GROUP};
mod eni;

use eni::{enis_of, isolate_eni, set_groups};

use super::instance::{InstanceReads, LiveEni, LiveInstance};

use crate::error::{AwsError, Own};
use crate::gate::Gate;
use crate::outcome::Step;
use crate::prior::{self, EniPrior, IsolatePrior};

/// The tag Firebreak puts on what it created or isolated.
pub const INCIDENT_TAG: &str = "firebreak:incident";

/// The tag key that protects an instance whatever the configuration says
/// (IAM's protected-instance deny names this key; a configured
/// `FIREBREAK_PROTECTED_TAG` is honoured beside it).
pub const PROTECTED_TAG: &str = "firebreak:protected";

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

pub(crate) fn tags_on(kind: ResourceType, incident_id: &str) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .tags(tag(INCIDENT_TAG, incident_id))
        .tags(tag(MANAGED_TAG, "true"))
        .build()
}

fn attached_to(instance_id: &str) -> Filter {
    Filter::builder()
        .name("attachment.instance-id")
        .values(instance_id)
        .build()
}

async fn termination_protection(
    ec2: &aws_sdk_ec2::Client,
    instance_id: &str,
) -> Result<bool, AwsError> {
    let out = ec2
        .describe_instance_attribute()
        .instance_id(instance_id)
        .attribute(InstanceAttributeName::DisableApiTermination)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("DescribeInstanceAttribute", e))?;
    Ok(out
        .disable_api_termination()
        .and_then(|v| v.value())
        .unwrap_or(false))
}

async fn set_termination_protection(
    ec2: &aws_sdk_ec2::Client,
    instance_id: &str,
    on: bool,
) -> Result<(), AwsError> {
    ec2.modify_instance_attribute()
        .instance_id(instance_id)
        .disable_api_termination(AttributeBooleanValue::builder().value(on).build())
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("ModifyInstanceAttribute", e))?;
    Ok(())
}

/// What isolating an instance reads first, three reads at once: the
/// instance (its interfaces and their groups come with it, shared with the
/// incident's snapshots), its termination protection, and Firebreak's
/// groups in the VPCs the finding names.
struct Live {
    instance: Arc<LiveInstance>,
    protected_before: bool,
    groups: ManagedGroups,
}

/// The calls [`read`] makes.
const READS: [&str; 3] = [
    "DescribeInstances",
    "DescribeInstanceAttribute",
    "DescribeSecurityGroups",
];

/// What to isolate, and where the finding says it is.
pub(crate) struct Subject<'a> {
    /// The instance.
    pub(crate) instance_id: &'a str,
    /// The VPCs of its interfaces, as the finding names them (none: not
    /// known, Firebreak's groups are read in every VPC).
    pub(crate) vpcs: &'a [String],
    /// The incident it is isolated for.
    pub(crate) incident_id: &'a str,
}

async fn read(
    ec2: &aws_sdk_ec2::Client,
    subject: &Subject<'_>,
    reads: &InstanceReads,
) -> Result<(Live, Vec<String>), AwsError> {
    let id = subject.instance_id;
    let (instance, protected_before, groups) = tokio::try_join!(
        reads.get(ec2, id),
        termination_protection(ec2, id),
        managed_groups(ec2, subject.vpcs),
    )?;
    let mut calls: Vec<String> = READS.map(String::from).to_vec();
    // An interface in a VPC the finding did not name (the finding is
    // stale, or wrong): Firebreak's groups there are read before anything
    // is trusted or made, one round trip more, only then.
    let unread: BTreeSet<String> = instance
        .enis
        .iter()
        .filter(|e| !groups.covers(&e.vpc))
        .map(|e| e.vpc.clone())
        .collect();
    let groups = if unread.is_empty() {
        groups
    } else {
        let vpcs: BTreeSet<String> = instance.enis.iter().map(|e| e.vpc.clone()).collect();
        calls.push("DescribeSecurityGroups".into());
        managed_groups(ec2, &vpcs.into_iter().collect::<Vec<_>>()).await?
    };
    let live = Live {
        instance,
        protected_before,
        groups,
    };
    Ok((live, calls))
}

impl Live {
    /// Why the instance is not to be isolated (`Ok(Some)`: refused, its
    /// protected tag), or must not be (`Err`: nothing to isolate, or an
    /// isolation group that would not isolate) — decided before any change.
    fn refusal(&self, instance_id: &str, protected_tag: &str) -> Result<Option<String>, AwsError> {
        let protected = [protected_tag, PROTECTED_TAG];
        if let Some((k, _)) = self
            .instance
            .tags
            .iter()
            .find(|(k, _)| protected.contains(&k.as_str()))
        {
            return Ok(Some(format!(
                "instance {instance_id} carries the protected tag `{k}`"
            )));
        }
        if self.instance.enis.is_empty() {
            return Err(Own::NoNetworkInterface {
                instance: instance_id.to_string(),
            }
            .into());
        }
        let untrusted = self
            .instance
            .enis
            .iter()
            .find_map(|e| self.groups.untrusted.get_key_value(&e.vpc));
        if let Some((vpc, why)) = untrusted {
            return Err(Own::UntrustedIsolationGroup {
                why: why.clone(),
                vpc: vpc.clone(),
            }
            .into());
        }
        Ok(None)
    }

    /// Ours once it holds the isolation group. (In AWS the ENI then holds
    /// nothing else; moto reports the instance's groups alongside.)
    fn isolated(&self, e: &LiveEni) -> bool {
        self.groups
            .id(&e.vpc, ISOLATION_GROUP)
            .is_some_and(|g| e.groups.contains(g))
    }

    fn tagged(&self, incident_id: &str) -> bool {
        self.instance
            .tags
            .iter()
            .any(|(k, v)| k == INCIDENT_TAG && v == incident_id)
    }
}

/// Isolates an instance: per ENI, records its security groups, moves it to
/// the VPC's allow-all group and then to the VPC's empty isolation group;
/// tags the instance with the incident and turns on termination protection
/// (so the evidence is not thrown away). An instance that now carries the
/// protected tag is refused, whatever the signal said.
///
/// Round trips: the three reads go out at once (and alongside the claim);
/// after the gate, the groups (only the first time in a VPC), the tag and
/// termination protection at once, then the two moves of each ENI (all ENIs
/// at once).
pub async fn isolate_instance(
    ec2: &aws_sdk_ec2::Client,
    instance_id: &str,
    incident_id: &str,
    protected_tag: &str,
    gate: &Gate<'_>,
) -> Result<Step, AwsError> {
    let subject = Subject {
        instance_id,
        vpcs: &[],
        incident_id,
    };
    let reads = InstanceReads::default();
    isolate(ec2, &subject, protected_tag, &reads, gate).await
}

/// [`isolate_instance`] of what a finding names, its instance read once
/// with the incident's other actions (`reads`).
pub(crate) async fn isolate(
    ec2: &aws_sdk_ec2::Client,
    subject: &Subject<'_>,
    protected_tag: &str,
    reads: &InstanceReads,
    gate: &Gate<'_>,
) -> Result<Step, AwsError> {
    let (instance_id, incident_id) = (subject.instance_id, subject.incident_id);
    let (live, mut calls) = read(ec2, subject, reads).await?;
    if let Some(why) = live.refusal(instance_id, protected_tag)? {
        return Ok(Step::refused(why, calls));
    }
    let to_move: Vec<&LiveEni> = live
        .instance
        .enis
        .iter()
        .filter(|e| !live.isolated(e))
        .collect();
    let tagged = live.tagged(incident_id);
    let already = to_move.is_empty() && tagged && live.protected_before;
    if !already {
        gate.pass().await?;
    }
    let (tag_calls, protect_calls, moved) = tokio::join!(
        tag_instance(ec2, instance_id, incident_id, tagged),
        protect(ec2, instance_id, live.protected_before),
        join_all(
            to_move
                .iter()
                .map(|eni| isolate_eni(ec2, eni, &live.groups))
        ),
    );
    let mut recorded: Vec<EniPrior> = live
        .instance
        .enis
        .iter()
        .filter(|e| live.isolated(e))
        .map(|eni| EniPrior {
            network_interface_id: eni.id.clone(),
            vpc_id: eni.vpc.clone(),
            groups: None,
            isolation_group: live.groups.id(&eni.vpc, ISOLATION_GROUP).cloned(),
            already_isolated: true,
        })
        .collect();
    for m in moved {
        let (rec, made) = m?;
        recorded.push(rec);
        calls.extend(made);
    }
    calls.extend(tag_calls?);
    calls.extend(protect_calls?);
    let detail = if already {
        format!("instance {instance_id} was already isolated")
    } else {
        format!(
            "instance {instance_id} isolated ({} network interface(s)), tagged, termination protection on",
            live.instance.enis.len()
        )
    };
    let prior = IsolatePrior {
        instance_id: instance_id.to_string(),
        network_interfaces: recorded,
        termination_protection: live.protected_before,
    };
    Ok(Step::new(already, detail, prior::to_json(&prior), calls))
}

/// Tags the instance with the incident, unless it is already.
async fn tag_instance(
    ec2: &aws_sdk_ec2::Client,
    instance_id: &str,
    incident_id: &str,
    tagged: bool,
) -> Result<Vec<String>, AwsError> {
    if tagged {
        return Ok(Vec::new());
    }
    ec2.create_tags()
        .resources(instance_id)
        .tags(tag(INCIDENT_TAG, incident_id))
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("CreateTags", e))?;
    Ok(vec!["CreateTags".to_string()])
}

/// Turns termination protection on, unless it is already.
async fn protect(
    ec2: &aws_sdk_ec2::Client,
    instance_id: &str,
    protected_before: bool,
) -> Result<Vec<String>, AwsError> {
    if protected_before {
        return Ok(Vec::new());
    }
    set_termination_protection(ec2, instance_id, true).await?;
    Ok(vec!["ModifyInstanceAttribute".to_string()])
}

/// Undo of an isolation, from its recorded prior state: each ENI still in
/// the isolation group gets its original groups back; termination protection
/// goes back to what it was. An ENI someone has moved since is left alone.
pub async fn restore_instance(
    ec2: &aws_sdk_ec2::Client,
    prior: &IsolatePrior,
) -> Result<Step, AwsError> {
    let instance_id = prior.instance_id.as_str();
    let live = enis_of(ec2, instance_id).await?;
    let mut calls = vec!["DescribeNetworkInterfaces".to_string()];
    let mut restored = 0;
    for rec in &prior.network_interfaces {
        let (Some(isolation), Some(original)) = (&rec.isolation_group, &rec.groups) else {
            continue;
        };
        let id = rec.network_interface_id.as_str();
        // Still as we left it: the isolation group and nothing but the
        // original groups (moto lists those beside it; AWS does not). A group
        // someone added since means a human took over: leave it alone.
        let still_isolated = live.iter().any(|e| {
            e.id == id
                && e.groups.iter().any(|g| g == isolation)
                && e.groups
                    .iter()
                    .all(|g| g == isolation || original.contains(g))
        });
        if still_isolated && !original.is_empty() {
            set_groups(ec2, id, original).await?;
            calls.push("ModifyNetworkInterfaceAttribute".into());
            restored += 1;
        }
    }
    if !prior.termination_protection {
        set_termination_protection(ec2, instance_id, false).await?;
        calls.push("ModifyInstanceAttribute".into());
    }
    Ok(Step::new(
        restored == 0,
        format!(
            "instance {instance_id}: {restored} network interface(s) back in their original groups"
        ),
        prior::to_json(prior),
        calls,
    ))
}
