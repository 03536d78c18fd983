//! A listener action as Elastic Load Balancing describes it, to the typed
//! prior state and back, field for field (see [`crate::prior`]'s
//! `listener` module): what is recorded is exactly what a release sends.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, AuthenticateCognitoActionConditionalBehaviorEnum,
    AuthenticateCognitoActionConfig, AuthenticateOidcActionConditionalBehaviorEnum,
    AuthenticateOidcActionConfig, FixedResponseActionConfig, ForwardActionConfig,
    JwtValidationActionAdditionalClaim, JwtValidationActionAdditionalClaimFormatEnum,
    JwtValidationActionConfig, RedirectActionConfig, RedirectActionStatusCodeEnum,
    TargetGroupStickinessConfig, TargetGroupTuple,
};

use crate::prior::{
    AuthenticateCognito, AuthenticateOidc, FixedResponse, Forward, JwtClaim, JwtValidation,
    ListenerAction, Redirect, Stickiness, WeightedTargetGroup,
};

fn owned(s: Option<&str>) -> Option<String> {
    s.map(str::to_string)
}

fn sorted(m: Option<&HashMap<String, String>>) -> Option<BTreeMap<String, String>> {
    m.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

fn hashed(m: Option<&BTreeMap<String, String>>) -> Option<HashMap<String, String>> {
    m.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// An action as it is recorded.
pub(super) fn recorded(a: &Action) -> ListenerAction {
    ListenerAction {
        action_type: a
            .r#type()
            .map(|t| t.as_str().to_string())
            .unwrap_or_default(),
        order: a.order(),
        target_group_arn: owned(a.target_group_arn()),
        forward: a.forward_config().map(|f| Forward {
            target_groups: f
                .target_groups()
                .iter()
                .map(|t| WeightedTargetGroup {
                    target_group_arn: owned(t.target_group_arn()),
                    weight: t.weight(),
                })
                .collect(),
            stickiness: f.target_group_stickiness_config().map(|s| Stickiness {
                enabled: s.enabled(),
                duration_seconds: s.duration_seconds(),
            }),
        }),
        redirect: a.redirect_config().map(|r| Redirect {
            protocol: owned(r.protocol()),
            port: owned(r.port()),
            host: owned(r.host()),
            path: owned(r.path()),
            query: owned(r.query()),
            status_code: r.status_code().map(|c| c.as_str().to_string()),
        }),
        fixed_response: a.fixed_response_config().map(|f| FixedResponse {
            status_code: owned(f.status_code()),
            content_type: owned(f.content_type()),
            message_body: owned(f.message_body()),
        }),
        authenticate_oidc: a.authenticate_oidc_config().map(oidc_recorded),
        authenticate_cognito: a.authenticate_cognito_config().map(cognito_recorded),
        jwt_validation: a.jwt_validation_config().map(|j| JwtValidation {
            jwks_endpoint: owned(j.jwks_endpoint()),
            issuer: owned(j.issuer()),
            additional_claims: j.additional_claims.as_ref().map(|claims| {
                claims
                    .iter()
                    .map(|c| JwtClaim {
                        format: c.format().map(|f| f.as_str().to_string()),
                        name: owned(c.name()),
                        values: c.values.clone(),
                    })
                    .collect()
            }),
        }),
    }
}

fn oidc_recorded(o: &AuthenticateOidcActionConfig) -> AuthenticateOidc {
    AuthenticateOidc {
        issuer: owned(o.issuer()),
        authorization_endpoint: owned(o.authorization_endpoint()),
        token_endpoint: owned(o.token_endpoint()),
        user_info_endpoint: owned(o.user_info_endpoint()),
        client_id: owned(o.client_id()),
        session_cookie_name: owned(o.session_cookie_name()),
        scope: owned(o.scope()),
        session_timeout: o.session_timeout(),
        authentication_request_extra_params: sorted(o.authentication_request_extra_params()),
        on_unauthenticated_request: o
            .on_unauthenticated_request()
            .map(|b| b.as_str().to_string()),
    }
}

fn cognito_recorded(c: &AuthenticateCognitoActionConfig) -> AuthenticateCognito {
    AuthenticateCognito {
        user_pool_arn: owned(c.user_pool_arn()),
        user_pool_client_id: owned(c.user_pool_client_id()),
        user_pool_domain: owned(c.user_pool_domain()),
        session_cookie_name: owned(c.session_cookie_name()),
        scope: owned(c.scope()),
        session_timeout: c.session_timeout(),
        authentication_request_extra_params: sorted(c.authentication_request_extra_params()),
        on_unauthenticated_request: c
            .on_unauthenticated_request()
            .map(|b| b.as_str().to_string()),
    }
}

/// A recorded action as ModifyListener takes it.
pub(super) fn to_sdk(a: &ListenerAction) -> Action {
    Action::builder()
        .r#type(ActionTypeEnum::from(a.action_type.as_str()))
        .set_order(a.order)
        .set_target_group_arn(a.target_group_arn.clone())
        .set_forward_config(a.forward.as_ref().map(|f| {
            ForwardActionConfig::builder()
                .set_target_groups(Some(
                    f.target_groups
                        .iter()
                        .map(|t| {
                            TargetGroupTuple::builder()
                                .set_target_group_arn(t.target_group_arn.clone())
                                .set_weight(t.weight)
                                .build()
                        })
                        .collect(),
                ))
                .set_target_group_stickiness_config(f.stickiness.as_ref().map(|s| {
                    TargetGroupStickinessConfig::builder()
                        .set_enabled(s.enabled)
                        .set_duration_seconds(s.duration_seconds)
                        .build()
                }))
                .build()
        }))
        .set_redirect_config(a.redirect.as_ref().map(|r| {
            RedirectActionConfig::builder()
                .set_protocol(r.protocol.clone())
                .set_port(r.port.clone())
                .set_host(r.host.clone())
                .set_path(r.path.clone())
                .set_query(r.query.clone())
                .set_status_code(
                    r.status_code
                        .as_deref()
                        .map(RedirectActionStatusCodeEnum::from),
                )
                .build()
        }))
        .set_fixed_response_config(a.fixed_response.as_ref().map(|f| {
            FixedResponseActionConfig::builder()
                .set_status_code(f.status_code.clone())
                .set_content_type(f.content_type.clone())
                .set_message_body(f.message_body.clone())
                .build()
        }))
        .set_authenticate_oidc_config(a.authenticate_oidc.as_ref().map(oidc_to_sdk))
        .set_authenticate_cognito_config(a.authenticate_cognito.as_ref().map(cognito_to_sdk))
        .set_jwt_validation_config(a.jwt_validation.as_ref().map(jwt_to_sdk))
        .build()
}

/// AWS never returns an OIDC client's secret: the release asks it to keep
/// the one it has.
fn oidc_to_sdk(o: &AuthenticateOidc) -> AuthenticateOidcActionConfig {
    AuthenticateOidcActionConfig::builder()
        .set_issuer(o.issuer.clone())
        .set_authorization_endpoint(o.authorization_endpoint.clone())
        .set_token_endpoint(o.token_endpoint.clone())
        .set_user_info_endpoint(o.user_info_endpoint.clone())
        .set_client_id(o.client_id.clone())
        .set_session_cookie_name(o.session_cookie_name.clone())
        .set_scope(o.scope.clone())
        .set_session_timeout(o.session_timeout)
        .set_authentication_request_extra_params(hashed(
            o.authentication_request_extra_params.as_ref(),
        ))
        .set_on_unauthenticated_request(
            o.on_unauthenticated_request
                .as_deref()
                .map(AuthenticateOidcActionConditionalBehaviorEnum::from),
        )
        .use_existing_client_secret(true)
        .build()
}

fn cognito_to_sdk(c: &AuthenticateCognito) -> AuthenticateCognitoActionConfig {
    AuthenticateCognitoActionConfig::builder()
        .set_user_pool_arn(c.user_pool_arn.clone())
        .set_user_pool_client_id(c.user_pool_client_id.clone())
        .set_user_pool_domain(c.user_pool_domain.clone())
        .set_session_cookie_name(c.session_cookie_name.clone())
        .set_scope(c.scope.clone())
        .set_session_timeout(c.session_timeout)
        .set_authentication_request_extra_params(hashed(
            c.authentication_request_extra_params.as_ref(),
        ))
        .set_on_unauthenticated_request(
            c.on_unauthenticated_request
                .as_deref()
                .map(AuthenticateCognitoActionConditionalBehaviorEnum::from),
        )
        .build()
}

fn jwt_to_sdk(j: &JwtValidation) -> JwtValidationActionConfig {
    JwtValidationActionConfig::builder()
        .set_jwks_endpoint(j.jwks_endpoint.clone())
        .set_issuer(j.issuer.clone())
        .set_additional_claims(j.additional_claims.as_ref().map(|claims| {
            claims
                .iter()
                .map(|c| {
                    JwtValidationActionAdditionalClaim::builder()
                        .set_format(
                            c.format
                                .as_deref()
                                .map(JwtValidationActionAdditionalClaimFormatEnum::from),
                        )
                        .set_name(c.name.clone())
                        .set_values(c.values.clone())
                        .build()
                })
                .collect()
        }))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forward() -> Action {
        let tuple = |arn: &str, weight| {
            TargetGroupTuple::builder()
                .target_group_arn(arn)
                .weight(weight)
                .build()
        };
        Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .order(3)
            .forward_config(
                ForwardActionConfig::builder()
                    .target_groups(tuple("arn:tg/blue", 80))
                    .target_groups(tuple("arn:tg/green", 20))
                    .target_group_stickiness_config(
                        TargetGroupStickinessConfig::builder()
                            .enabled(true)
                            .duration_seconds(300)
                            .build(),
                    )
                    .build(),
            )
            .build()
    }

    fn redirect() -> Action {
        Action::builder()
            .r#type(ActionTypeEnum::Redirect)
            .redirect_config(
                RedirectActionConfig::builder()
                    .protocol("HTTPS")
                    .port("443")
                    .host("#{host}")
                    .path("/#{path}")
                    .query("#{query}")
                    .status_code(RedirectActionStatusCodeEnum::Http301)
                    .build(),
            )
            .build()
    }

    fn oidc() -> Action {
        Action::builder()
            .r#type(ActionTypeEnum::AuthenticateOidc)
            .order(1)
            .authenticate_oidc_config(
                AuthenticateOidcActionConfig::builder()
                    .issuer("https://idp")
                    .authorization_endpoint("https://idp/a")
                    .token_endpoint("https://idp/t")
                    .user_info_endpoint("https://idp/u")
                    .client_id("web")
                    .session_cookie_name("c")
                    .scope("openid")
                    .session_timeout(600)
                    .authentication_request_extra_params("prompt", "login")
                    .on_unauthenticated_request(
                        AuthenticateOidcActionConditionalBehaviorEnum::Authenticate,
                    )
                    .use_existing_client_secret(true)
                    .build(),
            )
            .build()
    }

    fn cognito() -> Action {
        Action::builder()
            .r#type(ActionTypeEnum::AuthenticateCognito)
            .authenticate_cognito_config(
                AuthenticateCognitoActionConfig::builder()
                    .user_pool_arn("arn:pool")
                    .user_pool_client_id("client")
                    .user_pool_domain("domain")
                    .session_cookie_name("c")
                    .scope("openid")
                    .session_timeout(60)
                    .authentication_request_extra_params("a", "b")
                    .on_unauthenticated_request(
                        AuthenticateCognitoActionConditionalBehaviorEnum::Deny,
                    )
                    .build(),
            )
            .build()
    }

    fn jwt() -> Action {
        let claim = JwtValidationActionAdditionalClaim::builder()
            .format(JwtValidationActionAdditionalClaimFormatEnum::from(
                "string-array",
            ))
            .name("scope")
            .values("read")
            .build();
        Action::builder()
            .r#type(ActionTypeEnum::from("jwt-validation"))
            .jwt_validation_config(
                JwtValidationActionConfig::builder()
                    .jwks_endpoint("https://idp/jwks")
                    .issuer("https://idp")
                    .additional_claims(claim)
                    .build(),
            )
            .build()
    }

    /// Every kind of action, every field set: recorded and sent back, it is
    /// the action ELB described (the client secret, never described, aside).
    #[test]
    fn every_field_survives_the_round_trip() {
        let fixed = Action::builder()
            .r#type(ActionTypeEnum::FixedResponse)
            .fixed_response_config(
                FixedResponseActionConfig::builder()
                    .status_code("404")
                    .content_type("text/plain")
                    .message_body("no")
                    .build(),
            )
            .build();
        let plain = Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .target_group_arn("arn:tg/blue")
            .build();
        for a in [
            forward(),
            redirect(),
            oidc(),
            cognito(),
            jwt(),
            fixed,
            plain,
        ] {
            assert_eq!(to_sdk(&recorded(&a)), a);
        }
    }
}
