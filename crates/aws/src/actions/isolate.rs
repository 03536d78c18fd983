//! Instance isolation: each network interface moved through an allow-all
//! group (its tracked connections become untracked) into an empty one, the
//! instance tagged with the incident and its termination protection on;
//! and the undo, from the recorded original groups.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{
    AttributeBooleanValue, Filter, InstanceAttributeName, IpPermission, IpRange, Ipv6Range,
    ResourceType, Tag, TagSpecification,
};
use futures_util::future::join_all;
use serde_json::json;

use crate::error::AwsError;
use crate::gate::Gate;
use crate::outcome::Step;

/// Name of the per-VPC group with no rules that isolated ENIs end in.
pub const ISOLATION_GROUP: &str = "firebreak-isolation";
/// Name of the per-VPC allow-all group ENIs pass through first: changing to
/// a group that allows all traffic turns tracked connections untracked, so
/// the move to the empty group then cuts them at once instead of letting
/// established sessions live on.
pub const UNTRACK_GROUP: &str = "firebreak-untrack";
/// The tag Firebreak puts on what it created or isolated.
pub const INCIDENT_TAG: &str = "firebreak:incident";

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

pub(crate) fn tags_on(kind: ResourceType, incident_id: &str) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .tags(tag(INCIDENT_TAG, incident_id))
        .tags(tag("firebreak:managed", "true"))
        .build()
}

/// The instance as EC2 describes it now.
struct LiveInstance {
    tags: Vec<(String, String)>,
}

async fn describe_instance(
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
            AwsError::local(
                "DescribeInstances",
                "InvalidInstanceID.NotFound",
                format!("no instance {instance_id}"),
            )
        })?;
    Ok(LiveInstance {
        tags: inst
            .tags()
            .iter()
            .map(|t| {
                (
                    t.key().unwrap_or_default().to_string(),
                    t.value().unwrap_or_default().to_string(),
                )
            })
            .collect(),
    })
}

/// Why a group named like Firebreak's isolation group cannot be trusted
/// to isolate, if it cannot: it must be Firebreak's (created with the
/// `firebreak:managed` tag) and allow nothing in or out. Anyone who can
/// create security groups could otherwise make a "firebreak-isolation" that
/// allows everything, and isolation would end open.
fn untrustworthy(g: &aws_sdk_ec2::types::SecurityGroup) -> Option<String> {
    let id = g.group_id().unwrap_or_default();
    let managed = g
        .tags()
        .iter()
        .any(|t| t.key() == Some("firebreak:managed") && t.value() == Some("true"));
    if !managed {
        return Some(format!(
            "security group {id} is named {ISOLATION_GROUP} but is not Firebreak's (no firebreak:managed tag)"
        ));
    }
    let rules = g.ip_permissions().len() + g.ip_permissions_egress().len();
    (rules > 0).then(|| {
        format!("security group {id} ({ISOLATION_GROUP}) has {rules} rule(s): it must allow nothing; remove them")
    })
}

/// Firebreak's groups in every VPC, read at once.
#[derive(Debug, Default)]
struct ManagedGroups {
    /// (VPC, name) → id.
    ids: BTreeMap<(String, String), String>,
    /// VPC → why the group named like the isolation group there cannot be
    /// used (see [`untrustworthy`]).
    untrusted: BTreeMap<String, String>,
}

/// Firebreak's groups in every VPC, read at once.
async fn managed_groups(ec2: &aws_sdk_ec2::Client) -> Result<ManagedGroups, AwsError> {
    let found = ec2
        .describe_security_groups()
        .filters(
            Filter::builder()
                .name("group-name")
                .values(ISOLATION_GROUP)
                .values(UNTRACK_GROUP)
                .build(),
        )
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("DescribeSecurityGroups", e))?;
    let mut out = ManagedGroups::default();
    for g in found.security_groups() {
        let (Some(vpc), Some(name), Some(id)) = (g.vpc_id(), g.group_name(), g.group_id()) else {
            continue;
        };
        if name == ISOLATION_GROUP {
            if let Some(why) = untrustworthy(g) {
                out.untrusted.insert(vpc.to_string(), why);
                continue;
            }
        }
        out.ids
            .insert((vpc.to_string(), name.to_string()), id.to_string());
    }
    Ok(out)
}

/// The group named `name` in `vpc`: `known` if it was read already, else
/// created (once per VPC). A concurrent creator is handled by reading again
/// on `InvalidGroup.Duplicate`. Returns the calls it made.
async fn managed_group(
    ec2: &aws_sdk_ec2::Client,
    vpc: &str,
    name: &str,
    known: Option<&String>,
) -> Result<(String, Vec<String>), AwsError> {
    if let Some(id) = known {
        return Ok((id.clone(), Vec::new()));
    }
    let mut calls = Vec::new();
    for round in 0..2 {
        if round > 0 {
            let found = ec2
                .describe_security_groups()
                .filters(Filter::builder().name("vpc-id").values(vpc).build())
                .filters(Filter::builder().name("group-name").values(name).build())
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("DescribeSecurityGroups", e))?;
            calls.push("DescribeSecurityGroups".into());
            if let Some(id) = found.security_groups().first().and_then(|g| g.group_id()) {
                return Ok((id.to_string(), calls));
            }
        }
        let description = if name == ISOLATION_GROUP {
            "Firebreak isolation: no traffic in or out"
        } else {
            "Firebreak: allows all so tracked connections become untracked before isolation"
        };
        let created = ec2
            .create_security_group()
            .vpc_id(vpc)
            .group_name(name)
            .description(description)
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::SecurityGroup)
                    .tags(tag("firebreak:managed", "true"))
                    .build(),
            )
            .send()
            .await;
        let id = match created {
            Ok(o) => o.group_id().unwrap_or_default().to_string(),
            Err(e) => {
                let err = AwsError::from_sdk("CreateSecurityGroup", e);
                if err.is("InvalidGroup.Duplicate") {
                    continue;
                }
                return Err(err);
            }
        };
        calls.push("CreateSecurityGroup".into());
        let all_v4 = IpRange::builder().cidr_ip("0.0.0.0/0").build();
        let all_v6 = Ipv6Range::builder().cidr_ipv6("::/0").build();
        if name == ISOLATION_GROUP {
            // A new group allows all egress by default (IPv4, and IPv6 too
            // in a dual-stack VPC); isolation allows nothing. Outside a
            // default VPC, revoking a rule that is not there is an error,
            // so each goes on its own and "not found" is what we want.
            let revoke = |perm: IpPermission| {
                ec2.revoke_security_group_egress()
                    .group_id(&id)
                    .ip_permissions(perm)
                    .send()
            };
            let v4 = IpPermission::builder()
                .ip_protocol("-1")
                .ip_ranges(all_v4)
                .build();
            let v6 = IpPermission::builder()
                .ip_protocol("-1")
                .ipv6_ranges(all_v6)
                .build();
            let (a, b) = tokio::join!(revoke(v4), revoke(v6));
            for r in [a.map(|_| ()), b.map(|_| ())] {
                if let Err(e) = r {
                    let err = AwsError::from_sdk("RevokeSecurityGroupEgress", e);
                    if !err.is("InvalidPermission.NotFound") {
                        return Err(err);
                    }
                }
            }
            calls.push("RevokeSecurityGroupEgress".into());
            calls.push("RevokeSecurityGroupEgress".into());
        } else {
            let ingress = ec2
                .authorize_security_group_ingress()
                .group_id(&id)
                .ip_permissions(
                    IpPermission::builder()
                        .ip_protocol("-1")
                        .ip_ranges(all_v4)
                        .ipv6_ranges(all_v6.clone())
                        .build(),
                )
                .send();
            let egress = ec2
                .authorize_security_group_egress()
                .group_id(&id)
                .ip_permissions(
                    IpPermission::builder()
                        .ip_protocol("-1")
                        .ipv6_ranges(all_v6)
                        .build(),
                )
                .send();
            let (i, e) = tokio::join!(ingress, egress);
            i.map_err(|e| AwsError::from_sdk("AuthorizeSecurityGroupIngress", e))?;
            e.map_err(|e| AwsError::from_sdk("AuthorizeSecurityGroupEgress", e))?;
            calls.push("AuthorizeSecurityGroupIngress".into());
            calls.push("AuthorizeSecurityGroupEgress".into());
        }
        return Ok((id, calls));
    }
    Err(AwsError::local(
        "CreateSecurityGroup",
        "InvalidGroup.Duplicate",
        format!("group {name} in {vpc} exists but cannot be read"),
    ))
}

pub(crate) fn attached_to(instance_id: &str) -> Filter {
    Filter::builder()
        .name("attachment.instance-id")
        .values(instance_id)
        .build()
}

/// One ENI of an instance as EC2 describes it now.
struct LiveEni {
    id: String,
    vpc: String,
    groups: Vec<String>,
}

async fn enis_of(ec2: &aws_sdk_ec2::Client, instance_id: &str) -> Result<Vec<LiveEni>, AwsError> {
    let out = ec2
        .describe_network_interfaces()
        .filters(attached_to(instance_id))
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("DescribeNetworkInterfaces", e))?;
    Ok(out
        .network_interfaces()
        .iter()
        .map(|n| LiveEni {
            id: n.network_interface_id().unwrap_or_default().to_string(),
            vpc: n.vpc_id().unwrap_or_default().to_string(),
            groups: n
                .groups()
                .iter()
                .filter_map(|g| g.group_id().map(str::to_string))
                .collect(),
        })
        .collect())
}

async fn set_groups(
    ec2: &aws_sdk_ec2::Client,
    eni: &str,
    groups: &[String],
) -> Result<(), AwsError> {
    ec2.modify_network_interface_attribute()
        .network_interface_id(eni)
        .set_groups(Some(groups.to_vec()))
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("ModifyNetworkInterfaceAttribute", e))?;
    Ok(())
}

/// Moves one ENI through the allow-all group (its tracked connections
/// become untracked) into the isolation group, and never leaves it in the
/// allow-all one: that group lets anything in, so a compromised instance
/// with a public address would be open to the world until a retry. A move
/// that fails (after the SDK's own retries) is tried once more at once;
/// then the ENI is put back in its original groups and the failure says
/// so. Only if that fails too is it left where it is, and the error says
/// exactly how to close it by hand.
async fn untrack_then_isolate(
    ec2: &aws_sdk_ec2::Client,
    eni: &LiveEni,
    untrack: &str,
    isolation: &str,
) -> Result<(), AwsError> {
    let failed = match set_groups(ec2, &eni.id, &[untrack.to_string()]).await {
        // The first move may have happened with its answer lost: the ENI's
        // groups are not known, so it is put back as for any failure.
        Err(e) => e,
        Ok(()) => match set_groups(ec2, &eni.id, &[isolation.to_string()]).await {
            Ok(()) => return Ok(()),
            Err(_) => match set_groups(ec2, &eni.id, &[isolation.to_string()]).await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            },
        },
    };
    let back = if eni.groups.is_empty() {
        Err(AwsError::local(
            "ModifyNetworkInterfaceAttribute",
            "NoOriginalGroups",
            "its original groups are not known",
        ))
    } else {
        match set_groups(ec2, &eni.id, &eni.groups).await {
            Ok(()) => Ok(()),
            Err(_) => set_groups(ec2, &eni.id, &eni.groups).await,
        }
    };
    let eni_id = &eni.id;
    let message = match back {
        Ok(()) => format!(
            "{}; {eni_id} was put back in its original groups ({}): not isolated, never left open",
            failed.message,
            eni.groups.join(", ")
        ),
        Err(e) => {
            tracing::error!(eni = %eni_id, group = %untrack, code = failed.code.as_deref().unwrap_or("-"), "isolation left an interface in the allow-all group");
            format!(
                "{}; putting {eni_id} back in its groups failed too ({e}): it may be in {UNTRACK_GROUP} ({untrack}), which allows all traffic. Close it now: aws ec2 modify-network-interface-attribute --network-interface-id {eni_id} --groups {isolation}",
                failed.message
            )
        }
    };
    Err(AwsError { message, ..failed })
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

/// Isolates an instance: per ENI, records its security groups, moves it to
/// the VPC's allow-all group and then to the VPC's empty isolation group;
/// tags the instance with the incident and turns on termination protection
/// (so the evidence is not thrown away). An instance that now carries the
/// protected tag is refused, whatever the signal said.
///
/// Round trips: the four reads go out at once (and alongside the claim);
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
    let (live, enis, protected_before, groups) = tokio::try_join!(
        describe_instance(ec2, instance_id),
        enis_of(ec2, instance_id),
        termination_protection(ec2, instance_id),
        managed_groups(ec2),
    )?;
    let mut calls: Vec<String> = [
        "DescribeInstances",
        "DescribeNetworkInterfaces",
        "DescribeInstanceAttribute",
        "DescribeSecurityGroups",
    ]
    .map(String::from)
    .to_vec();
    if live.tags.iter().any(|(k, _)| k == protected_tag) {
        return Ok(Step::refused(
            format!("instance {instance_id} carries the protected tag `{protected_tag}`"),
            calls,
        ));
    }
    if enis.is_empty() {
        return Err(AwsError::local(
            "DescribeNetworkInterfaces",
            "NoNetworkInterface",
            format!("instance {instance_id} has no network interface to isolate"),
        ));
    }
    // Never isolate into a group that would not isolate: refused before
    // anything changes.
    if let Some((vpc, why)) = enis
        .iter()
        .find_map(|e| groups.untrusted.get_key_value(&e.vpc))
    {
        return Err(AwsError::local(
            "DescribeSecurityGroups",
            "UntrustedIsolationGroup",
            format!("{why}; nothing was isolated in {vpc}"),
        ));
    }
    let known = |vpc: &str, name: &str| groups.ids.get(&(vpc.to_string(), name.to_string()));
    // Ours once it holds the isolation group. (In AWS the ENI then holds
    // nothing else; moto reports the instance's groups alongside.)
    let isolated =
        |e: &LiveEni| known(&e.vpc, ISOLATION_GROUP).is_some_and(|g| e.groups.contains(g));
    let to_move: Vec<&LiveEni> = enis.iter().filter(|e| !isolated(e)).collect();
    let tagged = live
        .tags
        .iter()
        .any(|(k, v)| k == INCIDENT_TAG && v == incident_id);
    let already = to_move.is_empty() && tagged && protected_before;
    if !already {
        gate.pass().await?;
    }
    let tagging = async {
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
    };
    let protecting = async {
        if protected_before {
            return Ok(Vec::new());
        }
        set_termination_protection(ec2, instance_id, true).await?;
        Ok(vec!["ModifyInstanceAttribute".to_string()])
    };
    let moving = join_all(to_move.iter().map(|eni| async {
        let ((isolation, mut made), (untrack, more)) = tokio::try_join!(
            managed_group(ec2, &eni.vpc, ISOLATION_GROUP, known(&eni.vpc, ISOLATION_GROUP)),
            managed_group(ec2, &eni.vpc, UNTRACK_GROUP, known(&eni.vpc, UNTRACK_GROUP)),
        )?;
        made.extend(more);
        untrack_then_isolate(ec2, eni, &untrack, &isolation).await?;
        made.push("ModifyNetworkInterfaceAttribute".into());
        made.push("ModifyNetworkInterfaceAttribute".into());
        let rec = json!({ "network_interface_id": eni.id, "vpc_id": eni.vpc, "groups": eni.groups, "isolation_group": isolation });
        Ok::<_, AwsError>((rec, made))
    }));
    let (tag_calls, protect_calls, moved) = tokio::join!(tagging, protecting, moving);
    let mut recorded = Vec::new();
    for eni in enis.iter().filter(|e| isolated(e)) {
        let isolation = known(&eni.vpc, ISOLATION_GROUP);
        recorded.push(json!({ "network_interface_id": eni.id, "vpc_id": eni.vpc, "isolation_group": isolation, "already_isolated": true }));
    }
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
            enis.len()
        )
    };
    Ok(Step::new(
        already,
        detail,
        json!({
            "instance_id": instance_id,
            "network_interfaces": recorded,
            "termination_protection": protected_before,
        }),
        calls,
    ))
}

/// Undo of an isolation, from its recorded prior state: each ENI still in
/// the isolation group gets its original groups back; termination protection
/// goes back to what it was. An ENI someone has moved since is left alone.
pub async fn restore_instance(
    ec2: &aws_sdk_ec2::Client,
    prior: &serde_json::Value,
) -> Result<Step, AwsError> {
    let instance_id = prior["instance_id"].as_str().unwrap_or_default();
    let live = enis_of(ec2, instance_id).await?;
    let mut calls = vec!["DescribeNetworkInterfaces".to_string()];
    let mut restored = 0;
    let empty = Vec::new();
    for rec in prior["network_interfaces"].as_array().unwrap_or(&empty) {
        let (Some(id), Some(isolation), Some(groups)) = (
            rec["network_interface_id"].as_str(),
            rec["isolation_group"].as_str(),
            rec["groups"].as_array(),
        ) else {
            continue;
        };
        let original: Vec<String> = groups
            .iter()
            .filter_map(|g| g.as_str().map(str::to_string))
            .collect();
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
            set_groups(ec2, id, &original).await?;
            calls.push("ModifyNetworkInterfaceAttribute".into());
            restored += 1;
        }
    }
    if prior["termination_protection"] == json!(false) {
        set_termination_protection(ec2, instance_id, false).await?;
        calls.push("ModifyInstanceAttribute".into());
    }
    Ok(Step::new(
        restored == 0,
        format!(
            "instance {instance_id}: {restored} network interface(s) back in their original groups"
        ),
        prior.clone(),
        calls,
    ))
}
