//! Firebreak's two security groups per VPC: `firebreak-untrack`, which
//! allows everything (an interface moved into it has its tracked
//! connections turned untracked), and `firebreak-isolation`, which allows
//! nothing. Made once per VPC, tagged at creation, and trusted only while
//! they are what Firebreak made.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{
    Filter, IpPermission, IpRange, Ipv6Range, ResourceType, Tag, TagSpecification,
};

use crate::error::{AwsError, Own};

/// Name of the per-VPC group with no rules that isolated ENIs end in.
pub const ISOLATION_GROUP: &str = "firebreak-isolation";
/// Name of the per-VPC allow-all group ENIs pass through first: changing to
/// a group that allows all traffic turns tracked connections untracked, so
/// the move to the empty group then cuts them at once instead of letting
/// established sessions live on.
pub const UNTRACK_GROUP: &str = "firebreak-untrack";
/// The tag (value `true`) on what Firebreak created; IAM lets Firebreak
/// change rules only of groups that carry it, and only at creation.
pub const MANAGED_TAG: &str = "firebreak:managed";

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
        .any(|t| t.key() == Some(MANAGED_TAG) && t.value() == Some("true"));
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

/// Firebreak's groups in the VPCs read, read at once.
#[derive(Debug, Default)]
pub(crate) struct ManagedGroups {
    /// The VPCs read (none: every VPC).
    pub(crate) vpcs: Vec<String>,
    /// (VPC, name) → id.
    pub(crate) ids: BTreeMap<(String, String), String>,
    /// VPC → why the group named like the isolation group there cannot be
    /// used (see [`untrustworthy`]).
    pub(crate) untrusted: BTreeMap<String, String>,
}

/// Firebreak's groups in `vpcs` (in every VPC when none is named), read
/// at once.
pub(crate) async fn managed_groups(
    ec2: &aws_sdk_ec2::Client,
    vpcs: &[String],
) -> Result<ManagedGroups, AwsError> {
    let mut read = ec2.describe_security_groups().filters(
        Filter::builder()
            .name("group-name")
            .values(ISOLATION_GROUP)
            .values(UNTRACK_GROUP)
            .build(),
    );
    if !vpcs.is_empty() {
        read = read.filters(
            Filter::builder()
                .name("vpc-id")
                .set_values(Some(vpcs.to_vec()))
                .build(),
        );
    }
    let found = read
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("DescribeSecurityGroups", e))?;
    let mut out = ManagedGroups {
        vpcs: vpcs.to_vec(),
        ..ManagedGroups::default()
    };
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

impl ManagedGroups {
    /// True when the read covered `vpc`: what it holds about `vpc`, groups
    /// or none, is what is there.
    pub(crate) fn covers(&self, vpc: &str) -> bool {
        self.vpcs.is_empty() || self.vpcs.iter().any(|v| v == vpc)
    }

    /// The id of the group `name` in `vpc`, if it exists (and, for the
    /// isolation group, can be trusted).
    pub(crate) fn id(&self, vpc: &str, name: &str) -> Option<&String> {
        self.ids.get(&(vpc.to_string(), name.to_string()))
    }
}

/// The group named `name` in `vpc`: `known` if it was read already, else
/// created (once per VPC). A concurrent creator is handled by reading again
/// on `InvalidGroup.Duplicate`. Returns the calls it made.
pub(crate) async fn managed_group(
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
            calls.push("DescribeSecurityGroups".into());
            if let Some(id) = find_group(ec2, vpc, name).await? {
                return Ok((id, calls));
            }
        }
        let Some(id) = create_group(ec2, vpc, name).await? else {
            // A concurrent creator was first: read it.
            continue;
        };
        calls.push("CreateSecurityGroup".into());
        if name == ISOLATION_GROUP {
            close_all(ec2, &id).await?;
            calls.push("RevokeSecurityGroupEgress".into());
            calls.push("RevokeSecurityGroupEgress".into());
        } else {
            open_all(ec2, &id).await?;
            calls.push("AuthorizeSecurityGroupIngress".into());
            calls.push("AuthorizeSecurityGroupEgress".into());
        }
        return Ok((id, calls));
    }
    Err(Own::GroupUnreadable {
        name: name.to_string(),
        vpc: vpc.to_string(),
    }
    .into())
}

/// The id of the group `name` in `vpc`, read now.
async fn find_group(
    ec2: &aws_sdk_ec2::Client,
    vpc: &str,
    name: &str,
) -> Result<Option<String>, AwsError> {
    let found = ec2
        .describe_security_groups()
        .filters(Filter::builder().name("vpc-id").values(vpc).build())
        .filters(Filter::builder().name("group-name").values(name).build())
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("DescribeSecurityGroups", e))?;
    Ok(found
        .security_groups()
        .first()
        .and_then(|g| g.group_id())
        .map(str::to_string))
}

/// Creates the group, tagged as Firebreak's; `None` when a concurrent
/// creator made it first (`InvalidGroup.Duplicate`).
async fn create_group(
    ec2: &aws_sdk_ec2::Client,
    vpc: &str,
    name: &str,
) -> Result<Option<String>, AwsError> {
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
                .tags(Tag::builder().key(MANAGED_TAG).value("true").build())
                .build(),
        )
        .send()
        .await;
    match created {
        Ok(o) => Ok(Some(o.group_id().unwrap_or_default().to_string())),
        Err(e) => {
            let err = AwsError::from_sdk("CreateSecurityGroup", e);
            if err.is("InvalidGroup.Duplicate") {
                Ok(None)
            } else {
                Err(err)
            }
        }
    }
}

/// Everything from anywhere, IPv4 and IPv6.
fn all(v4: bool, v6: bool) -> IpPermission {
    let mut p = IpPermission::builder().ip_protocol("-1");
    if v4 {
        p = p.ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build());
    }
    if v6 {
        p = p.ipv6_ranges(Ipv6Range::builder().cidr_ipv6("::/0").build());
    }
    p.build()
}

/// A new group allows all egress by default (IPv4, and IPv6 too in a
/// dual-stack VPC); the isolation group allows nothing. Outside a default
/// VPC, revoking a rule that is not there is an error, so each goes on its
/// own and "not found" is what we want.
async fn close_all(ec2: &aws_sdk_ec2::Client, id: &str) -> Result<(), AwsError> {
    let revoke = |perm: IpPermission| {
        ec2.revoke_security_group_egress()
            .group_id(id)
            .ip_permissions(perm)
            .send()
    };
    let (a, b) = tokio::join!(revoke(all(true, false)), revoke(all(false, true)));
    for r in [a.map(|_| ()), b.map(|_| ())] {
        if let Err(e) = r {
            let err = AwsError::from_sdk("RevokeSecurityGroupEgress", e);
            if !err.is("InvalidPermission.NotFound") {
                return Err(err);
            }
        }
    }
    Ok(())
}

/// The untrack group allows everything in, and (beside the default IPv4
/// egress rule) IPv6 out.
async fn open_all(ec2: &aws_sdk_ec2::Client, id: &str) -> Result<(), AwsError> {
    let ingress = ec2
        .authorize_security_group_ingress()
        .group_id(id)
        .ip_permissions(all(true, true))
        .send();
    let egress = ec2
        .authorize_security_group_egress()
        .group_id(id)
        .ip_permissions(all(false, true))
        .send();
    let (i, e) = tokio::join!(ingress, egress);
    i.map_err(|e| AwsError::from_sdk("AuthorizeSecurityGroupIngress", e))?;
    e.map_err(|e| AwsError::from_sdk("AuthorizeSecurityGroupEgress", e))?;
    Ok(())
}
