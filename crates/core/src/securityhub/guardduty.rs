//! A GuardDuty finding read back out of ASFF into our native GuardDuty
//! model, so that it becomes the same incident, with the same plan, as the
//! finding GuardDuty sends itself.
//!
//! Where GuardDuty puts what in ASFF (AWS GuardDuty User Guide, "Integrating
//! with AWS Security Hub CSPM", its typical finding and its type table; AWS
//! Security Hub API Reference for `Severity`, `Resource`, `Action`):
//!
//! * identity: `Id` is the finding ARN
//!   `arn:aws:guardduty:<region>:<account>:detector/<d>/finding/<id>`;
//!   `AwsAccountId` and `Region` are the fallback.
//! * `ProductFields` holds GuardDuty's `service` object flattened to
//!   `aws/guardduty/service/<path>` keys, array items as `<name>.<n>_`
//!   (`…/portProbeDetails.0_/remoteIpDetails/ipAddressV4`). Findings from
//!   GuardDuty's first years had no `aws/guardduty/service/` prefix and
//!   spelled items `<name>:<n>`; both are read.
//! * the type is not in `ProductFields`: `Types` carries it renamed into
//!   ASFF's taxonomy (`TTPs/Initial Access/UnauthorizedAccess:EC2-SSHBruteForce`
//!   for `UnauthorizedAccess:EC2/SSHBruteForce`); [`native_type`] undoes it.
//! * the score is `Severity.Original` / `Severity.Product` (deprecated, still
//!   sent); `FindingProviderFields.Severity` keeps GuardDuty's own value
//!   when a customer's automation changed `Severity`, so it comes first.
//! * the key, user and instance are `Resources[]` (`AwsIamAccessKey`,
//!   `AwsEc2Instance`); the instance's security groups are not in ASFF.
//! * ASFF's `Action` repeats the action, IPv4 only; it fills in what
//!   `ProductFields` lacks.

use std::collections::BTreeMap;

use super::{Finding, RemoteIpDetails as AsffRemote, SeverityLabel};
use crate::guardduty as native;

/// GuardDuty's `service` fields in ASFF's flattened `ProductFields`.
#[derive(Debug, Clone, Copy)]
pub struct ServiceFields<'a>(&'a BTreeMap<String, String>);

const SERVICE: &str = "aws/guardduty/service/";

impl<'a> ServiceFields<'a> {
    /// The view of a finding's `ProductFields`.
    pub fn of(finding: &'a Finding) -> ServiceFields<'a> {
        ServiceFields(&finding.product_fields)
    }

    /// The value at a path under `service` (`resourceRole`,
    /// `action/networkConnectionAction/connectionDirection`), empty
    /// values counting as absent.
    pub fn get(&self, path: &str) -> Option<&'a str> {
        self.0
            .get(&format!("{SERVICE}{path}"))
            .or_else(|| self.0.get(path))
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    fn remote(&self, action: &str) -> Option<native::RemoteIpDetails> {
        let v4 = self.get(&format!("action/{action}/remoteIpDetails/ipAddressV4"));
        let v6 = self.get(&format!("action/{action}/remoteIpDetails/ipAddressV6"));
        (v4.is_some() || v6.is_some()).then(|| native::RemoteIpDetails {
            ip_address_v4: v4.map(str::to_string),
            ip_address_v6: v6.map(str::to_string),
        })
    }

    /// Every probe's remote address, in GuardDuty's order (by item number,
    /// not by the keys' text order, where 10 sorts before 2).
    fn port_probes(&self) -> Vec<native::PortProbeDetail> {
        const ARRAY: &str = "action/portProbeAction/portProbeDetails";
        let mut items: BTreeMap<usize, native::RemoteIpDetails> = BTreeMap::new();
        for (key, value) in self.0 {
            let path = key.strip_prefix(SERVICE).unwrap_or(key);
            let Some(rest) = path.strip_prefix(ARRAY) else {
                continue;
            };
            let Some((index, field)) = item_index(rest) else {
                continue;
            };
            let slot = items.entry(index).or_default();
            let value = Some(value.clone()).filter(|v| !v.trim().is_empty());
            match field {
                "remoteIpDetails/ipAddressV4" => slot.ip_address_v4 = value,
                "remoteIpDetails/ipAddressV6" => slot.ip_address_v6 = value,
                _ => {}
            }
        }
        items
            .into_values()
            .filter(|r| r.ip_address_v4.is_some() || r.ip_address_v6.is_some())
            .map(|r| native::PortProbeDetail {
                remote_ip_details: Some(r),
            })
            .collect()
    }
}

/// `.3_/rest` (today) or `:3/rest` (early findings) → (3, `rest`).
fn item_index(s: &str) -> Option<(usize, &str)> {
    let (number, rest) = if let Some(s) = s.strip_prefix('.') {
        s.split_once("_/")?
    } else {
        s.strip_prefix(':')?.split_once('/')?
    };
    Some((number.parse().ok()?, rest))
}

/// GuardDuty's score, from where GuardDuty's own value survives first.
/// `Ok(None)`: GuardDuty gave no number (then the label decides);
/// `Err((field, value))`: a number outside GuardDuty's 0–10.
pub fn score(f: &Finding) -> Result<Option<f64>, (&'static str, f64)> {
    let provider = f
        .finding_provider_fields
        .as_ref()
        .and_then(|p| p.severity.as_ref());
    let candidates = [
        (
            "FindingProviderFields.Severity.Original",
            provider
                .and_then(|s| s.original.as_deref())
                .and_then(number),
        ),
        (
            "FindingProviderFields.Severity.Product",
            provider.and_then(|s| s.product),
        ),
        (
            "Severity.Original",
            f.severity.original.as_deref().and_then(number),
        ),
        ("Severity.Product", f.severity.product),
    ];
    match candidates.into_iter().find_map(|(k, v)| Some((k, v?))) {
        Some((_, v)) if v.is_finite() && (0.0..=10.0).contains(&v) => Ok(Some(v)),
        Some((field, v)) => Err((field, v)),
        None => Ok(None),
    }
}

/// `Original` is text: GuardDuty writes its score there ("8"); other
/// products write words ("HIGH"), which are not a score.
fn number(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok()
}

/// The score that stands for a label when GuardDuty gave no number: the
/// bottom of the GuardDuty band with the same name (Security Hub's
/// 0–100 bands are GuardDuty's 0–10 bands times ten).
fn label_score(f: &Finding) -> f64 {
    let label = f.severity.label.or_else(|| {
        f.finding_provider_fields
            .as_ref()
            .and_then(|p| p.severity.as_ref())
            .and_then(|s| s.label)
    });
    match (label, f.severity.normalized) {
        (Some(SeverityLabel::Informational), _) => 0.0,
        (Some(SeverityLabel::Low), _) => 1.0,
        (Some(SeverityLabel::Medium), _) => 4.0,
        (Some(SeverityLabel::High), _) => 7.0,
        (Some(SeverityLabel::Critical), _) => 9.0,
        (None, Some(n)) => n as f64 / 10.0,
        (None, None) => 0.0,
    }
}

/// GuardDuty's identity for the finding: (account, region, finding id),
/// from the finding ARN in `Id`, else `AwsAccountId`, `Region` and the
/// whole `Id`. The second value is false when `Id` was not a GuardDuty
/// finding ARN.
pub fn identity(f: &Finding) -> (String, String, String, bool) {
    let parts: Vec<&str> = f.id.trim().splitn(6, ':').collect();
    if let ["arn", _, "guardduty", region, account, resource] = parts.as_slice() {
        if let Some((_, id)) = resource.rsplit_once("/finding/") {
            if !id.is_empty() && !region.is_empty() && !account.is_empty() {
                return (
                    account.to_string(),
                    region.to_string(),
                    id.to_string(),
                    true,
                );
            }
        }
    }
    (
        f.aws_account_id.clone(),
        f.region().unwrap_or_default().to_string(),
        f.id.clone(),
        false,
    )
}

/// GuardDuty's own finding type for an ASFF `Types` entry, following AWS's
/// table "Interpreting GuardDuty finding names in Security Hub": the
/// classifier is the type with its one `/` written as `-`
/// (`UnauthorizedAccess:EC2-SSHBruteForce`); a few IAM and RDS types lose
/// their purpose, which is then the category before them
/// (`TTPs/Credential Access/IAMUser-AnomalousBehavior`); three DNS types
/// are renamed outright. `None` when the entry is no GuardDuty type.
pub fn native_type(asff: &str) -> Option<String> {
    const RENAMED: [(&str, &str); 3] = [
        (
            "EC2:Unusual-DNS-Resolver",
            "DefenseEvasion:EC2/UnusualDNSResolver",
        ),
        (
            "EC2:Unusual-DoH-Activity",
            "DefenseEvasion:EC2/UnusualDoHActivity",
        ),
        (
            "EC2:Unusual-DoT-Activity",
            "DefenseEvasion:EC2/UnusualDoTActivity",
        ),
    ];
    let segments: Vec<&str> = asff.trim().split('/').collect();
    if let Some(i) = segments.iter().position(|s| s.contains(':')) {
        let classifier = segments[i..].join("/");
        if let Some((_, t)) = RENAMED.iter().find(|(a, _)| *a == classifier) {
            return Some((*t).to_string());
        }
        if classifier.contains('/') {
            // Already GuardDuty's spelling (`PenTest:IAMUser/KaliLinux`).
            return Some(classifier);
        }
        let (purpose, rest) = classifier.split_once(':')?;
        let (resource, family) = rest.split_once('-')?;
        return (!purpose.is_empty() && !resource.is_empty() && !family.is_empty())
            .then(|| format!("{purpose}:{resource}/{family}"));
    }
    let [.., category, last] = segments.as_slice() else {
        return None;
    };
    let (resource, family) = last.split_once('-')?;
    let purpose: String = category.split_whitespace().collect();
    (!purpose.is_empty() && !resource.is_empty() && !family.is_empty())
        .then(|| format!("{purpose}:{resource}/{family}"))
}

/// The finding type: from `Types` (then the provider's own `Types`), else
/// the first type as given, else the title.
fn finding_type(f: &Finding) -> String {
    let provider: &[String] = f
        .finding_provider_fields
        .as_ref()
        .map(|p| p.types.as_slice())
        .unwrap_or_default();
    f.types
        .iter()
        .chain(provider)
        .find_map(|t| native_type(t))
        .or_else(|| f.types.first().cloned())
        .or_else(|| f.title.clone())
        .unwrap_or_else(|| "GuardDuty finding".into())
}

/// Our native model of the GuardDuty finding this ASFF finding carries.
pub fn to_native(f: &Finding) -> native::Finding {
    let (account_id, region, id, is_arn) = identity(f);
    let fields = ServiceFields::of(f);
    let severity = score(f).ok().flatten().unwrap_or_else(|| label_score(f));
    let sample = fields
        .get("additionalInfo/sample")
        .is_some_and(|s| s.trim().eq_ignore_ascii_case("true"))
        || f.sample == Some(true);
    native::Finding {
        id,
        finding_type: finding_type(f),
        severity,
        account_id,
        region,
        arn: is_arn.then(|| f.id.clone()),
        title: f.title.clone(),
        description: f.description.clone(),
        updated_at: f.updated_at.clone(),
        resource: native::Resource {
            resource_type: None,
            access_key_details: access_key(f),
            instance_details: f.instance_details(),
            ..native::Resource::default()
        },
        service: native::Service {
            action: Some(action(f, fields)),
            resource_role: fields.get("resourceRole").map(str::to_string),
            additional_info: Some(native::AdditionalInfo {
                sample: Some(sample),
            }),
            count: fields.get("count").and_then(|c| c.trim().parse().ok()),
            event_first_seen: fields
                .get("eventFirstSeen")
                .map(str::to_string)
                .or_else(|| f.first_observed_at.clone()),
            event_last_seen: fields
                .get("eventLastSeen")
                .map(str::to_string)
                .or_else(|| f.last_observed_at.clone()),
        },
    }
}

/// The key from `Resources[]`, its id also from `ProductFields` where an
/// older finding kept it there.
fn access_key(f: &Finding) -> Option<native::AccessKeyDetails> {
    let mut key = f.access_key_details()?;
    let flat = f
        .product_fields
        .get("aws/guardduty/resource/accessKeyDetails/accessKeyId")
        .filter(|k| !k.trim().is_empty());
    if key.access_key_id.is_none() {
        key.access_key_id = flat.cloned();
    }
    Some(key)
}

/// The action: each part from `ProductFields` (which has IPv6), else from
/// ASFF's `Action`.
fn action(f: &Finding, fields: ServiceFields<'_>) -> native::ServiceAction {
    let asff = f.action.clone().unwrap_or_default();
    let from_asff = |r: Option<&AsffRemote>| {
        r.and_then(|r| r.ip_address_v4.clone())
            .filter(|ip| !ip.trim().is_empty())
            .map(|ip| native::RemoteIpDetails {
                ip_address_v4: Some(ip),
                ip_address_v6: None,
            })
    };
    let connection = asff.network_connection_action.as_ref();
    let network_connection_action = fields
        .remote("networkConnectionAction")
        .or_else(|| from_asff(connection.and_then(|c| c.remote_ip_details.as_ref())))
        .map(|remote| native::NetworkConnectionAction {
            connection_direction: fields
                .get("action/networkConnectionAction/connectionDirection")
                .map(str::to_string)
                .or_else(|| {
                    connection.and_then(|c| direction_word(c.connection_direction.as_deref()))
                }),
            remote_ip_details: Some(remote),
            protocol: fields
                .get("action/networkConnectionAction/protocol")
                .map(str::to_string),
        });
    let api_call = asff.aws_api_call_action.as_ref();
    let aws_api_call_action = fields
        .remote("awsApiCallAction")
        .or_else(|| from_asff(api_call.and_then(|a| a.remote_ip_details.as_ref())))
        .map(|remote| native::RemoteAction {
            remote_ip_details: Some(remote),
            api: fields
                .get("action/awsApiCallAction/api")
                .map(str::to_string)
                .or_else(|| api_call.and_then(|a| a.api.clone())),
            user_agent: fields
                .get("action/awsApiCallAction/userAgent")
                .map(str::to_string),
        });
    let mut probes = fields.port_probes();
    if probes.is_empty() {
        probes = asff
            .port_probe_action
            .iter()
            .flat_map(|p| &p.port_probe_details)
            .filter_map(|d| from_asff(d.remote_ip_details.as_ref()))
            .map(|r| native::PortProbeDetail {
                remote_ip_details: Some(r),
            })
            .collect();
    }
    let remote_only = |action: &str| {
        fields.remote(action).map(|r| native::RemoteAction {
            remote_ip_details: Some(r),
            ..native::RemoteAction::default()
        })
    };
    let domain = fields
        .get("action/dnsRequestAction/domain")
        .map(str::to_string)
        .or_else(|| asff.dns_request_action.and_then(|d| d.domain));
    native::ServiceAction {
        action_type: fields
            .get("action/actionType")
            .map(str::to_string)
            .or(asff.action_type),
        network_connection_action,
        aws_api_call_action,
        port_probe_action: (!probes.is_empty()).then_some(native::PortProbeAction {
            port_probe_details: probes,
        }),
        dns_request_action: domain.map(|d| native::DnsRequestAction { domain: Some(d) }),
        kubernetes_api_call_action: remote_only("kubernetesApiCallAction"),
        rds_login_attempt_action: remote_only("rdsLoginAttemptAction"),
    }
}

/// ASFF writes a connection's direction as `IN`/`OUT`; GuardDuty as
/// `INBOUND`/`OUTBOUND`.
fn direction_word(d: Option<&str>) -> Option<String> {
    match d?.trim().to_ascii_uppercase().as_str() {
        "IN" | "INBOUND" => Some("INBOUND".into()),
        "OUT" | "OUTBOUND" => Some("OUTBOUND".into()),
        _ => Some("UNKNOWN".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_read_back_as_guardduty_spells_them() {
        // Pairs from AWS's table (GuardDuty User Guide, "Interpreting
        // GuardDuty finding names in Security Hub").
        for (asff, want) in [
            (
                "TTPs/Initial Access/UnauthorizedAccess:EC2-SSHBruteForce",
                "UnauthorizedAccess:EC2/SSHBruteForce",
            ),
            (
                "TTPs/UnauthorizedAccess:IAMUser-MaliciousIPCaller.Custom",
                "UnauthorizedAccess:IAMUser/MaliciousIPCaller.Custom",
            ),
            (
                "TTPs/Discovery/Recon:EC2-PortProbeUnprotectedPort",
                "Recon:EC2/PortProbeUnprotectedPort",
            ),
            (
                "TTPs/Command and Control/Backdoor:EC2-C&CActivity.B!DNS",
                "Backdoor:EC2/C&CActivity.B!DNS",
            ),
            (
                "TTPs/Credential Access/IAMUser-AnomalousBehavior",
                "CredentialAccess:IAMUser/AnomalousBehavior",
            ),
            (
                "TTPs/Discovery/RDS-MaliciousIPCaller",
                "Discovery:RDS/MaliciousIPCaller",
            ),
            ("TTPs/PenTest:IAMUser/KaliLinux", "PenTest:IAMUser/KaliLinux"),
            (
                "TTPs/AttackSequence:IAM/CompromisedCredentials",
                "AttackSequence:IAM/CompromisedCredentials",
            ),
            (
                "TTPs/DefenseEvasion/EC2:Unusual-DoH-Activity",
                "DefenseEvasion:EC2/UnusualDoHActivity",
            ),
            (
                "Software and Configuration Checks/AWS Security Best Practices/Policy:Kubernetes-ExposedDashboard",
                "Policy:Kubernetes/ExposedDashboard",
            ),
        ] {
            assert_eq!(native_type(asff).as_deref(), Some(want), "{asff}");
        }
        assert_eq!(
            native_type("Software and Configuration Checks/Vulnerabilities/CVE"),
            None
        );
        assert_eq!(native_type(""), None);
        assert_eq!(native_type("a:-"), None);
    }

    #[test]
    fn item_numbers_in_both_spellings() {
        assert_eq!(
            item_index(".12_/remoteIpDetails/ipAddressV4"),
            Some((12, "remoteIpDetails/ipAddressV4"))
        );
        assert_eq!(
            item_index(":3/remoteIpDetails/ipAddressV6"),
            Some((3, "remoteIpDetails/ipAddressV6"))
        );
        assert_eq!(item_index(".x_/a"), None);
        assert_eq!(item_index("/blocked"), None);
    }
}
