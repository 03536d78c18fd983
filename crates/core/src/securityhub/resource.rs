//! `Resources[]`: what a finding is about, and the parts of it Firebreak
//! can act on (an instance, an access key) in our native GuardDuty shape.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::null_default;
use crate::guardduty as native;

/// One of `Resources[]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Resource {
    /// `AwsEc2Instance`, `AwsIamAccessKey`, `AwsS3Bucket`, …
    #[serde(rename = "Type")]
    pub resource_type: String,
    /// Its id: an ARN for most types; GuardDuty names a key
    /// `AWS::IAM::AccessKey:<key id>`.
    pub id: String,
    /// Its tags.
    #[serde(default, deserialize_with = "null_default")]
    pub tags: BTreeMap<String, String>,
    /// Type-specific details.
    #[serde(default)]
    pub details: Option<ResourceDetails>,
}

/// `Resources[].Details`: the types Firebreak can act on.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResourceDetails {
    /// For `AwsEc2Instance`.
    #[serde(default)]
    pub aws_ec2_instance: Option<Ec2InstanceDetails>,
    /// For `AwsIamAccessKey`.
    #[serde(default)]
    pub aws_iam_access_key: Option<IamAccessKeyDetails>,
}

/// `Details.AwsEc2Instance`: one subnet and VPC (the primary interface's),
/// the interfaces by id only; no security groups.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ec2InstanceDetails {
    /// Subnet of the primary interface.
    #[serde(default)]
    pub subnet_id: Option<String>,
    /// VPC.
    #[serde(default)]
    pub vpc_id: Option<String>,
    /// The network interfaces.
    #[serde(default, deserialize_with = "null_default")]
    pub network_interfaces: Vec<Ec2NetworkInterface>,
}

/// `Details.AwsEc2Instance.NetworkInterfaces[]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ec2NetworkInterface {
    /// ENI id.
    #[serde(default)]
    pub network_interface_id: Option<String>,
}

/// `Details.AwsIamAccessKey`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IamAccessKeyDetails {
    /// The key id.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// `AIDA…`, `AROA…:session`, or the account for root.
    #[serde(default)]
    pub principal_id: Option<String>,
    /// `IAMUser`, `AssumedRole`, `Root`, … (GuardDuty's `userType`).
    #[serde(default)]
    pub principal_type: Option<String>,
    /// User name, or role name for assumed roles (GuardDuty's `userName`).
    #[serde(default)]
    pub principal_name: Option<String>,
    /// Deprecated spelling of the user name.
    #[serde(default)]
    pub user_name: Option<String>,
}

impl Resource {
    /// The user an `AwsIamUser` resource names: its ARN's last path
    /// segment (`arn:aws:iam::<account>:user/<path>/<name>`), if that is
    /// an IAM name.
    pub fn user_name(&self) -> Option<String> {
        let (_, rest) = self.id.trim().split_once(":user/")?;
        let name = rest.rsplit('/').next()?;
        crate::ids::is_iam_name(name).then(|| name.to_string())
    }

    /// The instance, when this resource names one by id or ARN
    /// (`arn:aws:ec2:<region>:<account>:instance/i-…`). ASFF keeps the
    /// primary interface's subnet and VPC and the interfaces' ids; the
    /// security groups are not in ASFF.
    pub fn instance_details(&self) -> Option<native::InstanceDetails> {
        let id = self.id.trim();
        let id = match id.split_once(":instance/") {
            Some((_, rest)) if id.starts_with("arn:") => rest,
            _ => id,
        };
        if id.is_empty() {
            return None;
        }
        let d = self
            .details
            .as_ref()
            .and_then(|d| d.aws_ec2_instance.clone())
            .unwrap_or_default();
        let mut enis: Vec<native::NetworkInterface> = d
            .network_interfaces
            .iter()
            .map(|n| native::NetworkInterface {
                network_interface_id: n.network_interface_id.clone(),
                ..native::NetworkInterface::default()
            })
            .collect();
        if enis.is_empty() && (d.subnet_id.is_some() || d.vpc_id.is_some()) {
            enis.push(native::NetworkInterface::default());
        }
        // The subnet and VPC are the primary interface's; ASFF does not say
        // which interface that is, so they go with the first listed.
        if let Some(first) = enis.first_mut() {
            first.subnet_id = d.subnet_id.clone();
            first.vpc_id = d.vpc_id.clone();
        }
        Some(native::InstanceDetails {
            instance_id: Some(id.to_string()),
            network_interfaces: enis,
            tags: self
                .tags
                .iter()
                .map(|(k, v)| native::Tag {
                    key: Some(k.clone()),
                    value: Some(v.clone()),
                })
                .collect(),
        })
    }

    /// The access key, when this resource names one: the key id from the
    /// details, else from GuardDuty's `AWS::IAM::AccessKey:<id>` resource id.
    pub fn access_key_details(&self) -> Option<native::AccessKeyDetails> {
        let d = self
            .details
            .as_ref()
            .and_then(|d| d.aws_iam_access_key.clone())
            .unwrap_or_default();
        let from_id = self
            .id
            .trim()
            .strip_prefix("AWS::IAM::AccessKey:")
            .map(str::to_string);
        let key = d
            .access_key_id
            .filter(|k| !k.trim().is_empty())
            .or(from_id)?;
        Some(native::AccessKeyDetails {
            access_key_id: Some(key),
            principal_id: d.principal_id,
            user_name: d.principal_name.or(d.user_name),
            user_type: d.principal_type,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_in_our_native_shape() {
        let r: Resource = serde_json::from_value(serde_json::json!({
            "Type": "AwsEc2Instance",
            "Id": "arn:aws:ec2:eu-west-1:111122223333:instance/i-0abc123def4567890",
            "Tags": {"Environment": "production"},
            "Details": {"AwsEc2Instance": {"SubnetId": "subnet-0123456789abcdef0", "VpcId": "vpc-0fedcba9876543210",
                "NetworkInterfaces": [{"NetworkInterfaceId": "eni-0a1b2c3d4e5f60718"}]}}
        }))
        .unwrap();
        let d = r.instance_details().unwrap();
        assert_eq!(d.instance_id.as_deref(), Some("i-0abc123def4567890"));
        assert_eq!(
            d.network_interfaces[0].subnet_id.as_deref(),
            Some("subnet-0123456789abcdef0")
        );
        assert_eq!(d.tags[0].key.as_deref(), Some("Environment"));
        let r: Resource = serde_json::from_value(serde_json::json!({
            "Type": "AwsIamAccessKey",
            "Id": "AWS::IAM::AccessKey:AKIAIOSFODNN7EXAMPLE",
            "Details": {"AwsIamAccessKey": {"PrincipalName": "ci-deployer", "PrincipalType": "IAMUser"}}
        }))
        .unwrap();
        let k = r.access_key_details().unwrap();
        assert_eq!(k.access_key_id.as_deref(), Some("AKIAIOSFODNN7EXAMPLE"));
        assert_eq!(k.user_name.as_deref(), Some("ci-deployer"));
        assert_eq!(k.user_type.as_deref(), Some("IAMUser"));
    }
}
