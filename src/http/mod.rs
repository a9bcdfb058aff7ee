//! The HTTP front (actix-web): routing, content negotiation, the problem+json contract,
//! request ids, metrics. Handlers parse, call the domain, and render.

mod auth;
mod catalog;
pub mod error;
mod negotiate;
mod ops;
pub mod pages;
mod sparql;

use crate::node::Node;
use actix_web::middleware::{ErrorHandlers, NormalizePath, TrailingSlash};
use actix_web::{App, HttpServer, dev::Service as _, web};
use metrics_exporter_prometheus::PrometheusHandle;
use std::net::TcpListener;
use std::time::{Duration, Instant};
use tracing_actix_web::TracingLogger;
use utoipa::OpenApi;

/// The OpenAPI document of the JSON API.
#[derive(OpenApi)]
#[openapi(
    info(title = "agora", description = "One node of a European data space: DCAT-AP catalogue, SPARQL, governed data."),
    paths(
        ops::health, ops::metrics, ops::openapi, ops::jwks,
        catalog::publish, catalog::publish_batch, catalog::read, catalog::replace, catalog::remove, catalog::search, catalog::catalog_page,
        sparql::query_get, sparql::query_post,
    ),
    components(schemas(error::Problem, crate::catalog::Published, crate::catalog::FindingView,
        crate::catalog::SearchResults, crate::catalog::SearchItem,
        catalog::BatchOutcome, catalog::BatchItem)),
    modifiers(&BearerScheme),
)]
pub struct ApiDoc;

struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Registers every route; shared by the server and in-process tests.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(web::resource("/health").get(ops::health))
        .service(web::resource("/metrics").get(ops::metrics))
        .service(web::resource("/openapi.json").get(ops::openapi))
        .service(web::resource("/.well-known/jwks.json").get(ops::jwks))
        .service(
            web::resource("/api/datasets")
                .get(catalog::search)
                .post(catalog::publish),
        )
        .service(
            web::resource("/api/datasets/batch")
                .app_data(web::PayloadConfig::new(catalog::MAX_BATCH_BYTES))
                .post(catalog::publish_batch),
        )
        .service(
            web::resource("/api/datasets/{id}")
                .get(catalog::read)
                .put(catalog::replace)
                .delete(catalog::remove),
        )
        .service(web::resource("/catalog").get(catalog::catalog_page))
        .service(
            web::resource("/sparql")
                .get(sparql::query_get)
                .post(sparql::query_post),
        );
}

/// Serves `node` on `listener` until SIGINT/SIGTERM, then drains in-flight requests.
pub async fn serve(
    node: Node,
    listener: TcpListener,
    metrics: Option<PrometheusHandle>,
) -> std::io::Result<()> {
    let max_body = node.config.limits.max_body_bytes;
    let node = web::Data::new(node);
    let metrics = web::Data::new(metrics);
    let flushed = node.clone();
    let served = HttpServer::new(move || {
        App::new()
            .app_data(node.clone())
            .app_data(metrics.clone())
            .app_data(web::PayloadConfig::new(max_body))
            .wrap(ErrorHandlers::new().default_handler(error::problemize))
            .wrap_fn(|request, service| {
                let started = Instant::now();
                let method = request.method().to_string();
                let route = request.match_pattern().unwrap_or_else(|| "unmatched".into());
                let response = service.call(request);
                async move {
                    let response = response.await?;
                    let status = response.status().as_u16().to_string();
                    metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status).increment(1);
                    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
                        .record(started.elapsed().as_secs_f64());
                    Ok(response)
                }
            })
            .wrap(TracingLogger::default())
            .wrap(NormalizePath::new(TrailingSlash::Trim))
            .configure(configure)
    })
    .client_request_timeout(Duration::from_secs(10))
    .client_disconnect_timeout(Duration::from_secs(2))
    .keep_alive(Duration::from_secs(30))
    .shutdown_timeout(10)
    .listen(listener)?
    .run()
    .await;
    let catalog = flushed.catalog.clone();
    match web::block(move || catalog.flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(%error, "could not flush the stores at shutdown"),
        Err(error) => tracing::warn!(%error, "could not flush the stores at shutdown"),
    }
    served
}
