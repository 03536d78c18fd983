//! Our serde model of a GuardDuty finding: only the fields Firebreak uses.
//!
//! `aws_lambda_events` has no GuardDuty type, so this follows the API's
//! camelCase shape (the `detail` of an EventBridge "GuardDuty Finding" event).
//! Unknown fields are ignored because GuardDuty adds them over time; fields
//! that GuardDuty sends as `null` instead of an empty list are accepted.

use serde::{Deserialize, Deserializer};

/// `null` or absent → the type's default (GuardDuty sends `"tags": null`).
fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// One GuardDuty finding.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// The finding id; GuardDuty keeps it across re-sends of a recurring finding.
    pub id: String,
    /// e.g. `UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS`.
    #[serde(rename = "type")]
    pub finding_type: String,
    /// 1.0–10.0 (bands: Low < 4, Medium < 7, High < 9, Critical ≥ 9).
    pub severity: f64,
    /// Account the finding is about.
    pub account_id: String,
    /// Region the finding is about.
    pub region: String,
    /// The finding's ARN.
    #[serde(default)]
    pub arn: Option<String>,
    /// Short title (attacker-influenced text).
    #[serde(default)]
    pub title: Option<String>,
    /// Longer description (attacker-influenced text).
    #[serde(default)]
    pub description: Option<String>,
    /// Last update time.
    #[serde(default)]
    pub updated_at: Option<String>,
    /// The affected resource.
    #[serde(default, deserialize_with = "null_default")]
    pub resource: Resource,
    /// What GuardDuty observed.
    #[serde(default, deserialize_with = "null_default")]
    pub service: Service,
}

/// `resource` of a finding.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    /// `AccessKey`, `Instance`, `S3Bucket`, `EKSCluster`, …
    #[serde(default)]
    pub resource_type: Option<String>,
    /// The credential that was used.
    #[serde(default)]
    pub access_key_details: Option<AccessKeyDetails>,
    /// The instance involved.
    #[serde(default)]
    pub instance_details: Option<InstanceDetails>,
    /// Buckets involved (S3 findings).
    #[serde(default, deserialize_with = "null_default")]
    pub s3_bucket_details: Vec<ArnHolder>,
    /// Cluster involved (EKS findings).
    #[serde(default)]
    pub eks_cluster_details: Option<ArnHolder>,
    /// Database involved (RDS findings).
    #[serde(default)]
    pub rds_db_instance_details: Option<RdsInstance>,
}

/// Something with an ARN.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArnHolder {
    /// Its ARN.
    #[serde(default)]
    pub arn: Option<String>,
}

/// `rdsDbInstanceDetails`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RdsInstance {
    /// The database instance ARN.
    #[serde(default)]
    pub db_instance_arn: Option<String>,
}

/// `resource.accessKeyDetails`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessKeyDetails {
    /// `AKIA…` (long-term) or `ASIA…` (temporary).
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// Principal id (`AIDA…`, `AROA…:session`).
    #[serde(default)]
    pub principal_id: Option<String>,
    /// User name, or the role name for assumed roles.
    #[serde(default)]
    pub user_name: Option<String>,
    /// `IAMUser`, `AssumedRole`, `Role`, `Root`, `FederatedUser`, `AWSService`.
    #[serde(default)]
    pub user_type: Option<String>,
}

/// `resource.instanceDetails`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceDetails {
    /// The instance id.
    #[serde(default)]
    pub instance_id: Option<String>,
    /// Its network interfaces.
    #[serde(default, deserialize_with = "null_default")]
    pub network_interfaces: Vec<NetworkInterface>,
    /// Its tags.
    #[serde(default, deserialize_with = "null_default")]
    pub tags: Vec<Tag>,
}

/// One ENI of an instance.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInterface {
    /// ENI id.
    #[serde(default)]
    pub network_interface_id: Option<String>,
    /// Subnet id.
    #[serde(default)]
    pub subnet_id: Option<String>,
    /// VPC id.
    #[serde(default)]
    pub vpc_id: Option<String>,
    /// Security groups attached to the ENI.
    #[serde(default, deserialize_with = "null_default")]
    pub security_groups: Vec<SecurityGroup>,
}

/// A security group reference.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityGroup {
    /// Group id.
    #[serde(default)]
    pub group_id: Option<String>,
}

/// A resource tag.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Tag {
    /// Tag key.
    #[serde(default)]
    pub key: Option<String>,
    /// Tag value.
    #[serde(default)]
    pub value: Option<String>,
}

/// `service` of a finding.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    /// What was seen.
    #[serde(default)]
    pub action: Option<ServiceAction>,
    /// `TARGET` or `ACTOR`: whether the resource was attacked or attacking.
    #[serde(default)]
    pub resource_role: Option<String>,
    /// Holds the `sample` flag.
    #[serde(default)]
    pub additional_info: Option<AdditionalInfo>,
    /// How many times GuardDuty has seen this activity.
    #[serde(default)]
    pub count: Option<u64>,
    /// First sighting.
    #[serde(default)]
    pub event_first_seen: Option<String>,
    /// Last sighting.
    #[serde(default)]
    pub event_last_seen: Option<String>,
}

/// `service.additionalInfo`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AdditionalInfo {
    /// True for findings made by `CreateSampleFindings`.
    #[serde(default)]
    pub sample: Option<bool>,
}

/// `service.action`: one of several action shapes, each with its own path to
/// the remote address.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAction {
    /// `NETWORK_CONNECTION`, `AWS_API_CALL`, `PORT_PROBE`, `DNS_REQUEST`, …
    #[serde(default)]
    pub action_type: Option<String>,
    /// A network connection from or to the instance.
    #[serde(default)]
    pub network_connection_action: Option<NetworkConnectionAction>,
    /// An AWS API call made with the credential.
    #[serde(default)]
    pub aws_api_call_action: Option<RemoteAction>,
    /// Probes of the instance's ports, possibly from many addresses.
    #[serde(default)]
    pub port_probe_action: Option<PortProbeAction>,
    /// A DNS query: a domain, no address.
    #[serde(default)]
    pub dns_request_action: Option<DnsRequestAction>,
    /// A Kubernetes API call.
    #[serde(default)]
    pub kubernetes_api_call_action: Option<RemoteAction>,
    /// A database login attempt.
    #[serde(default)]
    pub rds_login_attempt_action: Option<RemoteAction>,
}

/// `networkConnectionAction`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkConnectionAction {
    /// `INBOUND`, `OUTBOUND` or `UNKNOWN`.
    #[serde(default)]
    pub connection_direction: Option<String>,
    /// The other end.
    #[serde(default)]
    pub remote_ip_details: Option<RemoteIpDetails>,
    /// e.g. `TCP`.
    #[serde(default)]
    pub protocol: Option<String>,
}

/// An action with one remote address (`awsApiCallAction`, …).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoteAction {
    /// The caller.
    #[serde(default)]
    pub remote_ip_details: Option<RemoteIpDetails>,
    /// The API called, where there is one.
    #[serde(default)]
    pub api: Option<String>,
    /// The caller's user agent (attacker-controlled).
    #[serde(default)]
    pub user_agent: Option<String>,
}

/// `portProbeAction`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortProbeAction {
    /// Every probe; each has its own remote address.
    #[serde(default, deserialize_with = "null_default")]
    pub port_probe_details: Vec<PortProbeDetail>,
}

/// One probe.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortProbeDetail {
    /// The prober.
    #[serde(default)]
    pub remote_ip_details: Option<RemoteIpDetails>,
}

/// `dnsRequestAction`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DnsRequestAction {
    /// The domain queried (attacker-controlled).
    #[serde(default)]
    pub domain: Option<String>,
}

/// `remoteIpDetails`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoteIpDetails {
    /// IPv4 address.
    #[serde(default)]
    pub ip_address_v4: Option<String>,
    /// IPv6 address.
    #[serde(default)]
    pub ip_address_v6: Option<String>,
}
