//! `GET /api/peers` and `POST /api/peers`: the federation's peers and how their harvests go,
//! for the node's admins.

use super::auth::Caller;
use super::error::ApiError;
use crate::config::PeerConfig;
use crate::identity::Role;
use crate::node::Node;
use actix_web::{HttpResponse, web};

fn admin(caller: &Caller) -> Result<(), ApiError> {
    if caller.0.has_role(Role::Admin) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "the federation's peers are managed with a token with the `admin` role",
        ))
    }
}

/// Every peer, its participant id, its last good harvest and its last failure.
#[utoipa::path(get, path = "/api/peers", tag = "federation", security(("bearer" = [])),
    responses((status = 200, description = "The peers", body = [crate::federation::PeerStatus])))]
pub async fn list(caller: Caller, node: web::Data<Node>) -> Result<HttpResponse, ApiError> {
    admin(&caller)?;
    Ok(HttpResponse::Ok().json(node.federation.peers()))
}

/// Adds a peer (`id`, `url`, optional `issuer`) or changes one, and harvests it at once.
#[utoipa::path(post, path = "/api/peers", tag = "federation", security(("bearer" = [])),
    request_body = crate::config::PeerConfig,
    responses((status = 201, description = "The peer, harvest pending", body = crate::federation::PeerStatus)))]
pub async fn upsert(
    caller: Caller,
    node: web::Data<Node>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    admin(&caller)?;
    let peer: PeerConfig = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body must be JSON {{\"id\", \"url\", \"issuer\" (optional)}}: {e}"
        ))
    })?;
    let mut peer = peer;
    peer.url = peer.url.trim_end_matches('/').to_owned();
    let federation = node.federation.clone();
    let status = web::block(move || federation.upsert(peer))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| match e {
            crate::config::ConfigError::Invalid { .. } => ApiError::bad_request(e.to_string()),
            other => ApiError::internal(other),
        })?;
    Ok(HttpResponse::Created().json(status))
}
