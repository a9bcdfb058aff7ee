//! `GET /api/peers` and `POST /api/peers`: the federation's peers and how their harvests go,
//! for the node's admins; `GET /api/federation/changes`: the change feed that peers harvesting
//! this node sync from, for any authenticated caller (each sees the changes of its own view).

use super::auth::Caller;
use super::error::ApiError;
use crate::config::PeerConfig;
use crate::federation::FeedError;
use crate::identity::Role;
use crate::node::Node;
use actix_web::http::StatusCode;
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

/// The query of `GET /api/federation/changes`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
pub struct ChangesQuery {
    /// The cursor of the last answer; without it, only a cursor for the current view (taken
    /// before a full harvest).
    since: Option<String>,
}

/// The change feed: what changed in the caller's view of this node's DSP catalogue since a
/// cursor, for the peers that harvest this node (see `federation::feed`).
#[utoipa::path(get, path = "/api/federation/changes", tag = "federation",
    security(("bearer" = [])), params(ChangesQuery),
    responses(
        (status = 200, description = "The datasets new or changed in the caller's view since `since` (DSP JSON, offers as published), a tombstone (`removed`) for each that left it (deleted, withdrawn, or hidden from the caller), the next cursor, and the view's size and digest", body = Object),
        (status = 410, description = "The cursor is unknown or expired, or too many datasets changed: harvest the DSP catalogue in full", body = super::error::Problem),
    ))]
pub async fn changes(
    caller: Caller,
    node: web::Data<Node>,
    query: web::Query<ChangesQuery>,
) -> Result<HttpResponse, ApiError> {
    let federation = node.federation.clone();
    let contracts = node.contracts.clone();
    let since = query.into_inner().since;
    let answer = web::block(move || federation.changes(&contracts, &caller.0, since.as_deref()))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| match e {
            FeedError::Gone(_) => ApiError::new(StatusCode::GONE, "gone", "Gone", e.to_string()),
            FeedError::BadCursor => ApiError::bad_request(e.to_string()),
            FeedError::Storage(_) => ApiError::internal(e),
        })?;
    Ok(HttpResponse::Ok().json(answer))
}
