//! Operations: health, Prometheus metrics, the OpenAPI document and the node's JWKS.

use super::error::ApiError;
use crate::node::Node;
use actix_web::{HttpResponse, web};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use utoipa::OpenApi as _;

/// Liveness and version.
#[utoipa::path(get, path = "/health", tag = "node",
    responses((status = 200, description = "The node is up", body = serde_json::Value)))]
pub async fn health(node: web::Data<Node>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "status": "ok",
        "version": crate::VERSION,
        "node": node.id,
    }))
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "node",
    responses((status = 200, description = "Prometheus metrics", content_type = "text/plain")))]
pub async fn metrics(handle: web::Data<Option<PrometheusHandle>>) -> HttpResponse {
    let body = handle
        .as_ref()
        .as_ref()
        .map(|h| h.render())
        .unwrap_or_default();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(body)
}

/// The OpenAPI 3.1 description of the JSON API, generated from the handlers.
#[utoipa::path(get, path = "/openapi.json", tag = "node",
    responses((status = 200, description = "OpenAPI 3.1 document", body = serde_json::Value)))]
pub async fn openapi() -> Result<HttpResponse, ApiError> {
    let document = super::ApiDoc::openapi()
        .to_json()
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(document))
}

/// The public keys the node signs with, so peers can verify what it signs as itself.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "node",
    responses((status = 200, description = "JSON Web Key Set", body = serde_json::Value)))]
pub async fn jwks(node: web::Data<Node>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "keys": [node.dev_issuer.public_jwk()] }))
}
