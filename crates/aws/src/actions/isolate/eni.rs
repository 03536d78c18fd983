//! One network interface at a time: read, moved through the allow-all
//! group into the isolation group, never left in the allow-all one.

use super::attached_to;
use crate::actions::groups::{managed_group, ManagedGroups, ISOLATION_GROUP, UNTRACK_GROUP};
use crate::actions::instance::LiveEni;
use crate::error::{AwsError, Own};
use crate::prior::EniPrior;

pub(super) async fn enis_of(
    ec2: &aws_sdk_ec2::Client,
    instance_id: &str,
) -> Result<Vec<LiveEni>, AwsError> {
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

pub(super) async fn set_groups(
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
        Err(AwsError::from(Own::NoOriginalGroups))
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

/// One interface into its VPC's isolation group (the groups made first if
/// the VPC has none yet), and what it records.
pub(super) async fn isolate_eni(
    ec2: &aws_sdk_ec2::Client,
    eni: &LiveEni,
    groups: &ManagedGroups,
) -> Result<(EniPrior, Vec<String>), AwsError> {
    let ((isolation, mut made), (untrack, more)) = tokio::try_join!(
        managed_group(
            ec2,
            &eni.vpc,
            ISOLATION_GROUP,
            groups.id(&eni.vpc, ISOLATION_GROUP)
        ),
        managed_group(
            ec2,
            &eni.vpc,
            UNTRACK_GROUP,
            groups.id(&eni.vpc, UNTRACK_GROUP)
        ),
    )?;
    made.extend(more);
    untrack_then_isolate(ec2, eni, &untrack, &isolation).await?;
    made.push("ModifyNetworkInterfaceAttribute".into());
    made.push("ModifyNetworkInterfaceAttribute".into());
    let rec = EniPrior {
        network_interface_id: eni.id.clone(),
        vpc_id: eni.vpc.clone(),
        groups: Some(eni.groups.clone()),
        isolation_group: Some(isolation),
        already_isolated: false,
    };
    Ok((rec, made))
}
