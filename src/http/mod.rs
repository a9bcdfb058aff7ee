//! The HTTP front (actix-web): routing, content negotiation, the problem+json contract,
//! request ids, metrics. Handlers parse, call the domain, and render.

mod apidoc;
mod auth;
mod catalog;
mod connection_guard;
mod contracts;
mod data;
mod delta_sharing;
mod dsp;
pub mod error;
mod negotiate;
mod ops;
mod peers;
mod slow_body;
mod sparql;
pub mod ui;

/// The SPARQL protocol's parameter decoding, public for the `sparql_params` fuzz target.
pub use sparql::{
    ParameterError as SparqlParameterError, ProtocolRequest as SparqlProtocolRequest,
    decode_parameters as decode_sparql_parameters,
};

use crate::node::Node;
use actix_web::middleware::{ErrorHandlers, NormalizePath, TrailingSlash};
use actix_web::{App, HttpServer, dev::Service as _, web};
use apidoc::ErrorResponses;
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
        contracts::negotiate, contracts::negotiation, contracts::negotiation_events,
        contracts::approve, contracts::reject, contracts::terminate, contracts::agreement,
        contracts::start_transfer, contracts::transfer, contracts::refresh, contracts::transfer_action,
        contracts::audit, peers::list, peers::upsert, peers::changes, data::index, data::arrow, data::aggregate, data::shard_plan, data::shard,
    ),
    components(schemas(error::Problem, crate::catalog::Published, crate::catalog::FindingView,
        crate::catalog::SearchResults, crate::catalog::SearchItem,
        catalog::BatchOutcome, catalog::BatchItem,
        crate::contract::NegotiationRequest, crate::contract::Event, crate::audit::Entry, contracts::TransferRequest, contracts::Note,
        crate::config::PeerConfig, crate::federation::PeerStatus)),
    modifiers(&BearerScheme, &ErrorResponses),
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
        )
        .service(web::resource("/api/negotiations").post(contracts::negotiate))
        .service(web::resource("/api/negotiations/{id}").get(contracts::negotiation))
        .service(web::resource("/api/negotiations/{id}/events").get(contracts::negotiation_events))
        .service(web::resource("/api/negotiations/{id}/approve").post(contracts::approve))
        .service(web::resource("/api/negotiations/{id}/reject").post(contracts::reject))
        .service(web::resource("/api/negotiations/{id}/terminate").post(contracts::terminate))
        .service(web::resource("/api/agreements/{id}").get(contracts::agreement))
        .service(web::resource("/api/audit").get(contracts::audit))
        .service(
            web::resource("/api/peers")
                .get(peers::list)
                .post(peers::upsert),
        )
        .service(web::resource("/api/federation/changes").get(peers::changes))
        .service(web::resource("/api/transfers").post(contracts::start_transfer))
        .service(web::resource("/api/transfers/{id}").get(contracts::transfer))
        .service(web::resource("/api/transfers/{id}/token").post(contracts::refresh))
        .service(web::resource("/api/transfers/{id}/{action}").post(contracts::transfer_action))
        .service(web::resource("/data/{agreement}").get(data::index))
        .service(web::resource("/data/{agreement}/arrow").get(data::arrow))
        .service(web::resource("/data/{agreement}/aggregate").get(data::aggregate))
        .service(web::resource("/data/{agreement}/shards").get(data::shard_plan))
        .service(
            web::resource("/data/{agreement}/shards/{n}")
                .route(web::get().to(data::shard))
                .route(web::head().to(data::shard)),
        )
        .service(delta_sharing::routes())
        .service(web::resource("/.well-known/dspace-version").get(dsp::version))
        .service(web::resource("/dsp/catalog/request").post(dsp::catalog_request))
        .service(web::resource("/dsp/catalog/datasets/{id}").get(dsp::dataset))
        .service(web::resource("/dsp/negotiations/request").post(dsp::negotiation_request))
        .service(web::resource("/dsp/negotiations/offers").post(dsp::negotiation_offer))
        .service(web::resource("/dsp/negotiations/{pid}").get(dsp::negotiation))
        .service(
            web::resource("/dsp/negotiations/{pid}/{action:.+}").post(dsp::negotiation_message),
        )
        .service(web::resource("/dsp/transfers/request").post(dsp::transfer_request))
        .service(web::resource("/dsp/transfers/{pid}").get(dsp::transfer))
        .service(web::resource("/dsp/transfers/{pid}/{action}").post(dsp::transfer_message))
        .configure(ui::configure);
}

/// Seconds without a catalogue write the export warmer waits for before a round.
const WARMING_QUIET_SECONDS: u32 = 3;

/// Keeps the export cache warm in a thread of its own at the lowest scheduling priority (nice
/// 19), so that readers of the catalogue get its datasets from memory and the warming only
/// takes cores nothing else wants: a full pass at start, then the datasets written since.
/// A round waits for [`WARMING_QUIET_SECONDS`] without writes, however long writes go on:
/// running alongside a 100,000-dataset bulk load (every second, or once a minute) it cut
/// publishing from 1,000 to 692-749 datasets/s, and while writes go on readers fill the cache
/// as they did before the warmer.
fn start_export_warmer(node: std::sync::Arc<Node>) {
    let spawned = std::thread::Builder::new()
        .name("export-warmer".into())
        .spawn(move || {
            // SAFETY: setpriority(2) on this thread's own id; failing leaves the priority as is.
            unsafe {
                let thread = libc::gettid();
                libc::setpriority(libc::PRIO_PROCESS, thread.unsigned_abs(), 19);
            }
            let mut covered = None;
            let (mut seen, mut quiet) = (node.catalog.generation(), 0);
            loop {
                std::thread::sleep(Duration::from_secs(1));
                let generation = node.catalog.generation();
                quiet = if generation == seen { quiet + 1 } else { 0 };
                seen = generation;
                if quiet >= WARMING_QUIET_SECONDS && covered != Some(generation) {
                    covered = node.catalog.warm_exports(covered);
                }
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "the export cache warmer did not start; reads fill it instead");
    }
}

/// Serves `node` on `listener` (and Arrow Flight on `flight`, if given) until SIGINT/SIGTERM,
/// then drains in-flight requests.
pub async fn serve(
    node: Node,
    listener: TcpListener,
    flight: Option<TcpListener>,
    metrics: Option<PrometheusHandle>,
) -> std::io::Result<()> {
    let max_body = node.config.limits.max_body_bytes;
    let node = web::Data::new(node);
    let flight = flight
        .map(|listener| crate::flight::FlightServer::start(node.clone().into_inner(), listener))
        .transpose()
        .map_err(std::io::Error::other)?;
    let metrics = web::Data::new(metrics);
    let flushed = node.clone();
    let sweeper = node.contracts.clone();
    let every = Duration::from_secs(node.config.contracts.expiry_check_seconds.max(1));
    actix_web::rt::spawn(async move {
        let mut ticker = actix_web::rt::time::interval(every);
        loop {
            ticker.tick().await;
            let contracts = sweeper.clone();
            match web::block(move || contracts.end_expired_transfers()).await {
                Ok(Ok(0)) => {}
                Ok(Ok(ended)) => tracing::info!(ended, "transfers ended: agreements expired"),
                Ok(Err(error)) => tracing::warn!(%error, "expiry check failed"),
                Err(error) => tracing::warn!(%error, "expiry check failed"),
            }
        }
    });
    // RocksDB, as Oxigraph configures it, keeps up to 128 MiB of writes per column family in
    // memory before it flushes them (no total cap): under a steady stream of negotiations,
    // transfers and pulls the node's RSS grew by about 60 MiB a minute (benches/load.sh,
    // BENCHMARKS.md "Load"). Flushing the stores every 10 s bounds what the memtables hold
    // to what was written in that time; an idle store's flush is a no-op.
    let flusher = node.clone();
    actix_web::rt::spawn(async move {
        let mut ticker = actix_web::rt::time::interval(Duration::from_secs(10));
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let node = flusher.clone();
            let flushed = web::block(move || {
                node.contracts
                    .flush()
                    .map_err(|e| crate::catalog::CatalogError::Internal(e.to_string()))?;
                node.catalog.flush()
            })
            .await;
            match flushed {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::warn!(%error, "periodic store flush failed"),
                Err(error) => tracing::warn!(%error, "periodic store flush failed"),
            }
        }
    });
    start_export_warmer(node.clone().into_inner());
    node.federation.start()?;
    let served = HttpServer::new(move || {
        App::new()
            .app_data(node.clone())
            .app_data(metrics.clone())
            .app_data(web::PayloadConfig::new(max_body))
            .wrap(ErrorHandlers::new().default_handler(error::problemize))
            // A body must keep arriving (R36): actix bounds the time to send a head, not a body.
            .wrap_fn(|mut request, service| {
                slow_body::guard(&mut request);
                service.call(request)
            })
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
            // A connection with no request in progress for too long is closed (R36).
            .wrap_fn(|request, service| {
                let progress = connection_guard::track(&request);
                let response = service.call(request);
                async move { Ok(connection_guard::finish(response.await?, progress)) }
            })
            .configure(configure)
    })
    .client_request_timeout(connection_guard::CLIENT_REQUEST_TIMEOUT)
    .client_disconnect_timeout(Duration::from_secs(2))
    .keep_alive(connection_guard::KEEP_ALIVE)
    .shutdown_timeout(10)
    .on_connect(connection_guard::on_connect)
    .listen(listener)?
    .run()
    .await;
    if let Some(flight) = flight {
        let _ = web::block(move || flight.stop()).await;
    }
    let catalog = flushed.catalog.clone();
    let contracts = flushed.contracts.clone();
    match web::block(move || {
        contracts
            .flush()
            .map_err(|e| crate::catalog::CatalogError::Internal(e.to_string()))?;
        catalog.flush()
    })
    .await
    {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(%error, "could not flush the stores at shutdown"),
        Err(error) => tracing::warn!(%error, "could not flush the stores at shutdown"),
    }
    served
}
