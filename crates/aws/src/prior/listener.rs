//! `serve_maintenance_response`: a listener's default actions as they were,
//! in full, so a release puts back exactly what the lockdown replaced —
//! forward (weighted target groups and stickiness), redirect, fixed
//! response, authenticate-oidc, authenticate-cognito and JWT validation,
//! each field Elastic Load Balancing describes. The SDK's types are not
//! serialisable, so these mirror them field for field (`actions::elb`
//! converts both ways); enumerations are kept as the strings AWS uses.
//!
//! One field is not here because AWS never returns it: an OIDC client's
//! secret. A release sends `UseExistingClientSecret` in its place.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The listener and its default actions before the lockdown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerPrior {
    /// The listener.
    pub listener_arn: String,
    /// Its load balancer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_arn: Option<String>,
    /// Its default actions, in order.
    pub default_actions: Vec<ListenerAction>,
}

/// One default action.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerAction {
    /// `forward`, `redirect`, `fixed-response`, `authenticate-oidc`, …
    #[serde(rename = "type")]
    pub action_type: String,
    /// Its order among the listener's actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<i32>,
    /// The one target group of a plain forward.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_group_arn: Option<String>,
    /// A forward's target groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward: Option<Forward>,
    /// A redirect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<Redirect>,
    /// A fixed response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_response: Option<FixedResponse>,
    /// OpenID Connect authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticate_oidc: Option<AuthenticateOidc>,
    /// Amazon Cognito authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticate_cognito: Option<AuthenticateCognito>,
    /// JWT validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_validation: Option<JwtValidation>,
}

/// A forward to one or more weighted target groups.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forward {
    /// The target groups and their weights.
    #[serde(default)]
    pub target_groups: Vec<WeightedTargetGroup>,
    /// Stickiness across them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stickiness: Option<Stickiness>,
}

/// One target group of a forward.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightedTargetGroup {
    /// The target group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_group_arn: Option<String>,
    /// Its weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
}

/// Target group stickiness of a forward.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stickiness {
    /// On or off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// How long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<i32>,
}

/// A redirect.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redirect {
    /// Protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    /// Host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// `HTTP_301` or `HTTP_302`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<String>,
}

/// A fixed response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixedResponse {
    /// Status code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<String>,
    /// Content type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_body: Option<String>,
}

/// OpenID Connect authentication (without the client secret, which AWS
/// does not return).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthenticateOidc {
    /// Issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Authorization endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<String>,
    /// Token endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    /// User info endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_info_endpoint: Option<String>,
    /// Client id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Session cookie name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_cookie_name: Option<String>,
    /// Scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Session timeout, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_timeout: Option<i64>,
    /// Extra query parameters of the authentication request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication_request_extra_params: Option<BTreeMap<String, String>>,
    /// `deny`, `allow` or `authenticate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_unauthenticated_request: Option<String>,
}

/// Amazon Cognito authentication.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthenticateCognito {
    /// User pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_pool_arn: Option<String>,
    /// User pool client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_pool_client_id: Option<String>,
    /// User pool domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_pool_domain: Option<String>,
    /// Session cookie name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_cookie_name: Option<String>,
    /// Scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Session timeout, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_timeout: Option<i64>,
    /// Extra query parameters of the authentication request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication_request_extra_params: Option<BTreeMap<String, String>>,
    /// `deny`, `allow` or `authenticate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_unauthenticated_request: Option<String>,
}

/// JWT validation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwtValidation {
    /// Where the keys are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_endpoint: Option<String>,
    /// Issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Claims required besides the standard ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_claims: Option<Vec<JwtClaim>>,
}

/// One required claim.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwtClaim {
    /// `single-string`, `string-array` or `space-separated-values`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// The claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
}
