//! Authentication enforced in extractor types: a handler that takes [`Holder`] cannot run
//! without a valid token carrying the `holder` role, so forgetting a check does not compile.

use super::error::ApiError;
use crate::identity::{AuthError, Principal, Role};
use crate::node::Node;
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use std::future::{Ready, ready};

fn principal(request: &HttpRequest) -> Result<Principal, ApiError> {
    let node = request
        .app_data::<web::Data<Node>>()
        .ok_or_else(|| ApiError::internal("node state missing"))?;
    let header = request
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .ok_or(AuthError::Missing)?;
    let value = header
        .to_str()
        .map_err(|_| AuthError::Malformed("the Authorization header is not ASCII".into()))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or(AuthError::Missing)?;
    Ok(node.tokens.validate(token.trim())?)
}

/// A caller with the `holder` role.
#[derive(Debug, Clone)]
pub struct Holder(pub Principal);

impl FromRequest for Holder {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(principal(request).and_then(|p| {
            if p.has_role(Role::Holder) {
                Ok(Holder(p))
            } else {
                Err(ApiError::forbidden(
                    "publishing needs a token with the `holder` role",
                ))
            }
        }))
    }
}
