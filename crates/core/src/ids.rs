//! Shapes of AWS identifiers. An identifier that does not have its documented
//! shape (or carries GuardDuty's `GeneratedFinding…` placeholder) never reaches
//! an AWS call: the action that would use it is skipped with the reason.

/// Marker GuardDuty puts in every identifier of a generated sample finding.
pub const PLACEHOLDER_MARKER: &str = "GeneratedFinding";

/// True when `s` is one of GuardDuty's sample placeholders.
pub fn is_placeholder(s: &str) -> bool {
    s.contains(PLACEHOLDER_MARKER)
}

fn is_upper_alnum(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `prefix-` followed by 8 or 17 lowercase hex digits (EC2's two id lengths).
fn is_ec2_id(s: &str, prefix: &str) -> bool {
    match s.strip_prefix(prefix).and_then(|r| r.strip_prefix('-')) {
        Some(hex) => (hex.len() == 8 || hex.len() == 17) && is_lower_hex(hex),
        None => false,
    }
}

/// A twelve-digit AWS account id.
pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// A long-term (`AKIA…`) or temporary (`ASIA…`) access key id.
pub fn is_access_key_id(s: &str) -> bool {
    (s.starts_with("AKIA") || s.starts_with("ASIA")) && s.len() == 20 && is_upper_alnum(s)
}

/// A temporary credential issued by STS.
pub fn is_temporary_key(s: &str) -> bool {
    s.starts_with("ASIA")
}

/// An EC2 instance id.
pub fn is_instance_id(s: &str) -> bool {
    is_ec2_id(s, "i")
}

/// A subnet id.
pub fn is_subnet_id(s: &str) -> bool {
    is_ec2_id(s, "subnet")
}

/// A VPC id.
pub fn is_vpc_id(s: &str) -> bool {
    is_ec2_id(s, "vpc")
}

/// A network ACL id.
pub fn is_nacl_id(s: &str) -> bool {
    is_ec2_id(s, "acl")
}

/// An ENI id.
pub fn is_eni_id(s: &str) -> bool {
    is_ec2_id(s, "eni")
}

/// A security group id.
pub fn is_security_group_id(s: &str) -> bool {
    is_ec2_id(s, "sg")
}

/// An IAM user or role name (`[\w+=,.@-]{1,64}`).
pub fn is_iam_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

/// An AWS region code such as `eu-west-1` or `us-gov-west-1`.
pub fn is_region_code(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts.len() <= 4
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

/// The region code for a CloudWatch display name ("US East (N. Virginia)").
/// CloudWatch alarm notifications carry the display name, not the code; the
/// alarm ARN is preferred and this table is the fallback.
pub fn region_from_display_name(name: &str) -> Option<&'static str> {
    const TABLE: &[(&str, &str)] = &[
        ("US East (N. Virginia)", "us-east-1"),
        ("US East (Ohio)", "us-east-2"),
        ("US West (N. California)", "us-west-1"),
        ("US West (Oregon)", "us-west-2"),
        ("Africa (Cape Town)", "af-south-1"),
        ("Asia Pacific (Hong Kong)", "ap-east-1"),
        ("Asia Pacific (Hyderabad)", "ap-south-2"),
        ("Asia Pacific (Jakarta)", "ap-southeast-3"),
        ("Asia Pacific (Melbourne)", "ap-southeast-4"),
        ("Asia Pacific (Mumbai)", "ap-south-1"),
        ("Asia Pacific (Osaka)", "ap-northeast-3"),
        ("Asia Pacific (Seoul)", "ap-northeast-2"),
        ("Asia Pacific (Singapore)", "ap-southeast-1"),
        ("Asia Pacific (Sydney)", "ap-southeast-2"),
        ("Asia Pacific (Tokyo)", "ap-northeast-1"),
        ("Canada (Central)", "ca-central-1"),
        ("Canada West (Calgary)", "ca-west-1"),
        ("EU (Frankfurt)", "eu-central-1"),
        ("EU (Ireland)", "eu-west-1"),
        ("EU (London)", "eu-west-2"),
        ("EU (Milan)", "eu-south-1"),
        ("EU (Paris)", "eu-west-3"),
        ("EU (Spain)", "eu-south-2"),
        ("EU (Stockholm)", "eu-north-1"),
        ("EU (Zurich)", "eu-central-2"),
        ("Europe (Frankfurt)", "eu-central-1"),
        ("Europe (Ireland)", "eu-west-1"),
        ("Europe (London)", "eu-west-2"),
        ("Europe (Milan)", "eu-south-1"),
        ("Europe (Paris)", "eu-west-3"),
        ("Europe (Spain)", "eu-south-2"),
        ("Europe (Stockholm)", "eu-north-1"),
        ("Europe (Zurich)", "eu-central-2"),
        ("Israel (Tel Aviv)", "il-central-1"),
        ("Middle East (Bahrain)", "me-south-1"),
        ("Middle East (UAE)", "me-central-1"),
        ("South America (Sao Paulo)", "sa-east-1"),
        ("South America (São Paulo)", "sa-east-1"),
        ("AWS GovCloud (US-West)", "us-gov-west-1"),
        ("AWS GovCloud (US-East)", "us-gov-east-1"),
    ];
    TABLE.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifier_shapes() {
        assert!(is_access_key_id("AKIAIOSFODNN7EXAMPLE"));
        assert!(is_access_key_id("ASIAJZ3DXJKMP7MG3EKA"));
        assert!(!is_access_key_id("GeneratedFindingAccessKeyId"));
        assert!(!is_access_key_id("AKIAiosfodnn7example"));
        assert!(is_instance_id("i-0abc123def4567890"));
        assert!(is_instance_id("i-99999999"));
        assert!(!is_instance_id("i-abcdefgz"));
        assert!(!is_instance_id("i-123"));
        assert!(is_account_id("123456789012"));
        assert!(!is_account_id("123456789"));
        assert!(is_region_code("us-east-1"));
        assert!(is_region_code("us-gov-west-1"));
        assert!(!is_region_code("US East (N. Virginia)"));
        assert_eq!(region_from_display_name("EU (Ireland)"), Some("eu-west-1"));
        assert!(is_iam_name("break-glass_admin"));
        assert!(!is_iam_name("has space"));
        assert!(is_placeholder("GeneratedFindingUserName"));
    }
}
