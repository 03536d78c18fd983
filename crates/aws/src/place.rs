//! Where an incident's containment runs: the incident's own account and
//! region. In an organisation Firebreak runs in the security account and
//! acts in a member account through a role it assumes there (deployed by
//! `template-member.yaml`); the records, the budget's counters and the
//! notices stay in the security account.
//!
//! Credentials and clients are kept per account and region for the life of
//! the process (a warm Lambda reuses them), and assumed again shortly
//! before they expire. The session name says which incident opened it, so
//! the member account's CloudTrail leads back to the record; each record
//! names the role session it acted through.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_sdk_sts::config::Credentials;
use firebreak_core::Config;

use crate::clients::Clients;
use crate::error::{AwsError, Own};

/// Credentials are assumed again when less than this is left of them: more
/// than a function's longest run, so none expires halfway through.
const RENEW_BEFORE: Duration = Duration::from_secs(15 * 60);

/// How long an assumed session lasts (STS's default, and the longest a
/// role allows unless its maximum is raised).
const SESSION_SECONDS: i32 = 3600;

/// One account and region, and the clients that act there.
#[derive(Debug, Clone)]
pub struct Place {
    /// The account.
    pub account: String,
    /// The region.
    pub region: String,
    /// IAM, EC2, Logs, ECS, ELB and Secrets Manager act here, and a
    /// lockdown's evidence copy uses this S3; records and notices use the
    /// home S3 and SNS.
    pub clients: Clients,
    /// The assumed role session (`arn:aws:sts::…:assumed-role/…`), when not
    /// the home account.
    pub session: Option<String>,
}

/// Why an incident is not acted on where it is.
#[derive(Debug, Clone)]
pub enum Unreachable {
    /// Not configured to act there: recorded and notified only.
    NotHere(String),
    /// The role could not be assumed (the member stack is missing, STS
    /// refused or was unreachable).
    Failed(AwsError),
}

impl Unreachable {
    /// As the error of `operation`, for callers that cannot go on without
    /// the place (a release, the expirer, the block listing).
    pub fn into_error(self, operation: &'static str) -> AwsError {
        match self {
            Unreachable::Failed(e) => e,
            Unreachable::NotHere(why) => Own::NotReachable { operation, why }.into(),
        }
    }
}

/// What Firebreak does in a member account, which names the role it
/// assumes there: `template-member.yaml` deploys one role per purpose, so
/// the function a finding triggers can neither lock a service down nor
/// undo containment in a member account, as at home.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// Containment, a finding's or a responder's: the configured role.
    Contain,
    /// An emergency lockdown (the manual function): `<role>-lockdown`.
    Lockdown,
    /// A release (the release function): `<role>-release`.
    Release,
}

impl Purpose {
    /// The member role's name for this purpose, from the configured one.
    pub fn role_name(self, configured: &str) -> String {
        match self {
            Purpose::Contain => configured.to_string(),
            Purpose::Lockdown => format!("{configured}-lockdown"),
            Purpose::Release => format!("{configured}-release"),
        }
    }
}

/// One place's entry, locked while its role is assumed.
type Slot = Arc<tokio::sync::Mutex<Option<Cached>>>;

#[derive(Debug)]
struct Cached {
    place: Place,
    renew_at: Option<SystemTime>,
}

/// The home place and the places reached from it, shared by every clone of
/// an executor.
#[derive(Debug)]
pub struct Places {
    home: Place,
    role: Option<String>,
    accounts: Vec<String>,
    cache: Mutex<HashMap<(String, String, Purpose), Slot>>,
}

/// Why an incident in `account` is not acted on with credentials that act
/// in `home`, when no member role is configured.
pub(crate) fn not_here(account: &str, home: &str) -> String {
    format!(
        "the incident is in account {account}; Firebreak's credentials act in {home} and no member role is configured (FIREBREAK_MEMBER_ROLE_NAME)"
    )
}

impl Places {
    /// Places reached from `home` (the account the credentials act in).
    pub fn new(home: Clients, account: String, cfg: &Config) -> Places {
        Places {
            home: Place {
                account,
                region: home.region().to_string(),
                clients: home,
                session: None,
            },
            role: cfg.member_role_name.clone(),
            accounts: cfg.member_accounts.clone(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The account and region the credentials act in.
    pub fn home(&self) -> &Place {
        &self.home
    }

    /// The place for containing an incident in `account` and `region` (the
    /// home ones when the incident does not say). `opened_by` names the
    /// session.
    pub async fn get(
        &self,
        account: Option<&str>,
        region: Option<&str>,
        opened_by: &str,
    ) -> Result<Place, Unreachable> {
        self.get_for(Purpose::Contain, account, region, opened_by)
            .await
    }

    /// [`Places::get`] for `purpose`: in a member account, through the
    /// role for that purpose.
    pub async fn get_for(
        &self,
        purpose: Purpose,
        account: Option<&str>,
        region: Option<&str>,
        opened_by: &str,
    ) -> Result<Place, Unreachable> {
        let account = account
            .filter(|a| !a.is_empty())
            .unwrap_or(&self.home.account);
        // Clients without a region (mocked ones) are used as they are.
        let region = match region.filter(|r| !r.is_empty()) {
            Some(r) if !self.home.region.is_empty() => r,
            _ => self.home.region.as_str(),
        };
        if account == self.home.account && region == self.home.region {
            return Ok(self.home.clone());
        }
        if account != self.home.account {
            if self.role.is_none() {
                return Err(Unreachable::NotHere(not_here(account, &self.home.account)));
            }
            if !self.accounts.is_empty() && !self.accounts.iter().any(|a| a == account) {
                return Err(Unreachable::NotHere(format!(
                    "account {account} is not one Firebreak may act in (FIREBREAK_MEMBER_ACCOUNTS)"
                )));
            }
        }
        let slot = {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            cache
                .entry((account.to_string(), region.to_string(), purpose))
                .or_default()
                .clone()
        };
        // One lookup per place at a time: a burst of findings from a new
        // account assumes its role once.
        let mut slot = slot.lock().await;
        if let Some(c) = slot.as_ref() {
            if c.renew_at.is_none_or(|t| SystemTime::now() < t) {
                return Ok(c.place.clone());
            }
        }
        let cached = if account == self.home.account {
            Cached {
                place: Place {
                    account: account.to_string(),
                    region: region.to_string(),
                    clients: self.home.clients.in_region(region),
                    session: None,
                },
                renew_at: None,
            }
        } else {
            self.assume(account, region, purpose, opened_by).await?
        };
        let place = cached.place.clone();
        *slot = Some(cached);
        Ok(place)
    }

    async fn assume(
        &self,
        account: &str,
        region: &str,
        purpose: Purpose,
        opened_by: &str,
    ) -> Result<Cached, Unreachable> {
        let role = purpose.role_name(self.role.as_deref().unwrap_or_default());
        let arn = format!("arn:{}:iam::{account}:role/{role}", partition(region));
        let out = self
            .home
            .clients
            .sts
            .assume_role()
            .role_arn(&arn)
            .role_session_name(session_name(opened_by))
            .duration_seconds(SESSION_SECONDS)
            .send()
            .await
            .map_err(|e| {
                let mut err = AwsError::from_sdk("AssumeRole", e);
                err.message = format!("cannot assume {arn}: {}", err.message);
                Unreachable::Failed(err)
            })?;
        let Some(c) = out.credentials() else {
            return Err(Unreachable::Failed(Own::NoCredentials { arn }.into()));
        };
        let expires = SystemTime::try_from(*c.expiration()).ok();
        let credentials = Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            expires,
            "firebreak-member-role",
        );
        let session = out
            .assumed_role_user()
            .map(|u| u.arn().to_string())
            .unwrap_or(arn);
        Ok(Cached {
            place: Place {
                account: account.to_string(),
                region: region.to_string(),
                clients: self.home.clients.with_credentials(credentials, region),
                session: Some(session),
            },
            renew_at: expires.and_then(|t| t.checked_sub(RENEW_BEFORE)),
        })
    }
}

/// The ARN partition a region belongs to.
fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// `firebreak-<incident>`, in the characters and length STS accepts
/// (`[\w+=,.@-]{2,64}`).
pub fn session_name(opened_by: &str) -> String {
    let clean: String = opened_by
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+=,.@_-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut name = format!("firebreak-{clean}");
    name.truncate(64);
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_purpose_has_its_own_member_role() {
        let names: Vec<String> = [Purpose::Contain, Purpose::Lockdown, Purpose::Release]
            .iter()
            .map(|p| p.role_name("firebreak-member"))
            .collect();
        assert_eq!(
            names,
            [
                "firebreak-member",
                "firebreak-member-lockdown",
                "firebreak-member-release"
            ]
        );
    }

    #[test]
    fn session_names_are_what_sts_accepts() {
        assert_eq!(session_name("fb-1234abcd"), "firebreak-fb-1234abcd");
        let odd = session_name(&format!("a/b c:{}", "x".repeat(100)));
        assert_eq!(odd.len(), 64);
        assert!(odd.starts_with("firebreak-a_b_c_x"));
        assert!(odd
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)));
    }

    #[test]
    fn partitions_follow_the_region() {
        assert_eq!(partition("eu-west-1"), "aws");
        assert_eq!(partition("cn-north-1"), "aws-cn");
        assert_eq!(partition("us-gov-west-1"), "aws-us-gov");
    }
}
