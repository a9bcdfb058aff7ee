//! Authentication enforced in extractor types: a handler that takes [`Holder`] cannot run
//! without a valid token carrying the `holder` role, so forgetting a check does not compile.

use super::error::ApiError;
use crate::identity::{AuthError, Principal, Role};
use crate::node::Node;
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use std::future::{Ready, ready};

/// The caller's verified principal. Data-plane tokens open the data plane only, never the API
/// or the protocol endpoints.
pub(super) fn principal(request: &HttpRequest) -> Result<Principal, ApiError> {
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
    principal_from_token(node, token)
}

/// The principal of a participant token, however it arrived: the API's `Authorization` header
/// above, or the web UI's session cookie (read only by the UI's routes, never by the API's).
pub(super) fn principal_from_token(node: &Node, token: &str) -> Result<Principal, ApiError> {
    let principal = node.tokens.validate(token.trim())?;
    if principal
        .attributes
        .get("token_use")
        .and_then(|u| u.as_str())
        == Some("data-plane")
    {
        return Err(AuthError::Malformed(
            "a data-plane token opens only /data/{agreement}; use a participant token here".into(),
        )
        .into());
    }
    Ok(principal)
}

/// Any caller with a valid participant token.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(principal(request).map(Caller))
    }
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

/// A caller who may be anonymous: without an `Authorization` header, nobody; with one, the
/// verified principal (a bad token is still refused). Reading the catalogue needs no token, but
/// restricted datasets show only to requesters whose claims satisfy their access policy.
#[derive(Debug, Clone)]
pub struct MaybeCaller(pub Option<Principal>);

impl MaybeCaller {
    /// The caller as the catalogue sees them.
    pub fn viewer(&self) -> crate::catalog::Viewer {
        match &self.0 {
            None => crate::catalog::Viewer::anonymous(),
            Some(principal) => crate::catalog::Viewer::with_claims(principal.claims()),
        }
    }
}

impl FromRequest for MaybeCaller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        if request
            .headers()
            .contains_key(actix_web::http::header::AUTHORIZATION)
        {
            ready(principal(request).map(|p| MaybeCaller(Some(p))))
        } else {
            ready(Ok(MaybeCaller(None)))
        }
    }
}
