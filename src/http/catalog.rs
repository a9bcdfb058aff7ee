//! Catalogue routes: publish, read, replace and delete datasets, search, and the catalogue.

use super::auth::{Holder, MaybeCaller};
use super::error::{ApiError, Problem};
use super::negotiate::choose;
use crate::catalog::{
    Catalog, CatalogError, ExportFormat, FACETS, Published, SearchQuery, SearchResults, Viewer,
    serialize,
};
use crate::node::Node;
use crate::rdf_input::RdfSyntax;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

/// Largest page of search results or catalogue datasets.
const MAX_PAGE: usize = 500;

fn content_type(request: &HttpRequest) -> Option<&str> {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
}

/// The syntax of an uploaded description, from its `Content-Type`.
fn upload_syntax(request: &HttpRequest) -> Result<RdfSyntax, ApiError> {
    let found = content_type(request).unwrap_or("none");
    RdfSyntax::from_content_type(found).ok_or_else(|| {
        CatalogError::UnsupportedMediaType {
            found: found.chars().take(100).collect(),
        }
        .into()
    })
}

fn accept(request: &HttpRequest) -> Option<&str> {
    request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
}

/// Publish a dataset (holder role). The body is one `dcat:Dataset` with its distributions.
#[utoipa::path(post, path = "/api/datasets", tag = "catalogue",
    request_body(content = String, description = "A DCAT-AP 3 dataset", content_type = "text/turtle"),
    responses(
        (status = 201, description = "Published", body = Published, headers(("Location" = String, description = "The dataset's URL"))),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a holder", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Unsupported syntax", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "DCAT-AP violations", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn publish(
    holder: Holder,
    node: web::Data<Node>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let syntax = upload_syntax(&request)?;
    let catalog = node.catalog.clone();
    let published =
        web::block(move || catalog.publish(&holder.0.subject, &body, syntax, None)).await??;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/datasets/{}", published.id)))
        .json(published))
}

/// Most documents in one batch.
pub const MAX_BATCH_DOCUMENTS: usize = 10_000;
/// Largest batch body.
pub const MAX_BATCH_BYTES: usize = 64 << 20;

/// The outcome of one document of a batch.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct BatchItem {
    /// The document's line number (from 1).
    line: usize,
    /// The new dataset's id, when it was published.
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    /// The dataset IRI, when it was published.
    #[serde(skip_serializing_if = "Option::is_none")]
    iri: Option<String>,
    /// Why it was refused, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<Problem>,
}

/// The outcome of a batch.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct BatchOutcome {
    /// Documents published.
    published: usize,
    /// Documents refused.
    failed: usize,
    /// One entry per document, in order.
    items: Vec<BatchItem>,
}

/// Publish many datasets at once (holder role): one JSON-LD dataset document per line. Valid
/// documents are stored in one commit; each refused one is answered with its problem.
#[utoipa::path(post, path = "/api/datasets/batch", tag = "catalogue",
    request_body(content = String, description = "NDJSON: one JSON-LD DCAT-AP dataset per line (at most 10,000 lines, 64 MiB)", content_type = "application/x-ndjson"),
    responses(
        (status = 200, description = "Every document processed", body = BatchOutcome),
        (status = 400, description = "Empty or too many documents", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a holder", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not NDJSON", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn publish_batch(
    holder: Holder,
    node: web::Data<Node>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let essence = content_type(&request)
        .and_then(|ct| ct.split(';').next())
        .map(|ct| ct.trim().to_ascii_lowercase());
    if !matches!(
        essence.as_deref(),
        Some("application/x-ndjson") | Some("application/jsonl")
    ) {
        return Err(ApiError::new(
            actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            "send one JSON-LD dataset per line as application/x-ndjson",
        ));
    }
    let lines: Vec<(usize, &[u8])> = body
        .split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
        .map(|(n, line)| (n + 1, line))
        .collect();
    if lines.is_empty() {
        return Err(ApiError::bad_request(
            "the batch is empty: send one JSON-LD dataset per line",
        ));
    }
    if lines.len() > MAX_BATCH_DOCUMENTS {
        return Err(ApiError::bad_request(format!(
            "the batch has {} documents; send at most {MAX_BATCH_DOCUMENTS} per request",
            lines.len()
        )));
    }
    let numbers: Vec<usize> = lines.iter().map(|(n, _)| *n).collect();
    let owned: Vec<Vec<u8>> = lines.iter().map(|(_, l)| l.to_vec()).collect();
    let catalog = node.catalog.clone();
    let outcomes = web::block(move || {
        let documents: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
        catalog.publish_batch(&holder.0.subject, &documents, RdfSyntax::JsonLd)
    })
    .await??;
    let mut published = 0;
    let items: Vec<BatchItem> = numbers
        .into_iter()
        .zip(outcomes)
        .map(|(line, outcome)| match outcome {
            Ok(done) => {
                published += 1;
                BatchItem {
                    line,
                    id: Some(done.id),
                    iri: Some(done.iri),
                    problem: None,
                }
            }
            Err(error) => BatchItem {
                line,
                id: None,
                iri: None,
                problem: Some(ApiError::from(error).problem()),
            },
        })
        .collect();
    let failed = items.len() - published;
    Ok(HttpResponse::Ok().json(BatchOutcome {
        published,
        failed,
        items,
    }))
}

/// Replace a dataset (its holder only).
#[utoipa::path(put, path = "/api/datasets/{id}", tag = "catalogue",
    params(("id" = String, Path, description = "Dataset id")),
    request_body(content = String, description = "A DCAT-AP 3 dataset", content_type = "text/turtle"),
    responses(
        (status = 200, description = "Replaced", body = Published),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not its holder", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dataset", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "DCAT-AP violations", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn replace(
    holder: Holder,
    node: web::Data<Node>,
    id: web::Path<String>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let syntax = upload_syntax(&request)?;
    let catalog = node.catalog.clone();
    let id = id.into_inner();
    let published = web::block(move || {
        catalog
            .replace(&holder.0.subject, &id, &body, syntax)
            .map_err(|e| unseen_is_missing(&catalog, &holder, e))
    })
    .await??;
    Ok(HttpResponse::Ok().json(published))
}

/// Delete a dataset (its holder only).
#[utoipa::path(delete, path = "/api/datasets/{id}", tag = "catalogue",
    params(("id" = String, Path, description = "Dataset id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not its holder", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dataset", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn remove(
    holder: Holder,
    node: web::Data<Node>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let catalog = node.catalog.clone();
    let id = id.into_inner();
    web::block(move || {
        catalog
            .delete(&holder.0.subject, &id)
            .map_err(|e| unseen_is_missing(&catalog, &holder, e))
    })
    .await??;
    Ok(HttpResponse::NoContent().finish())
}

/// Another holder's refusal to change a dataset (`NotOwner`, 403) tells the caller it exists:
/// fine for a dataset the catalogue shows them, a leak for one its access policy hides from
/// them. For those the answer is the missing dataset's own 404 (matrix R19: indistinguishable
/// from missing), so PUT and DELETE are no probe for hidden ids.
fn unseen_is_missing(catalog: &Catalog, holder: &Holder, error: CatalogError) -> CatalogError {
    let CatalogError::NotOwner { id } = error else {
        return error;
    };
    match catalog.is_visible(&id, &Viewer::with_claims(holder.0.claims())) {
        Ok(true) => CatalogError::NotOwner { id },
        Ok(false) => CatalogError::NotFound { id },
        Err(e) => e,
    }
}

#[derive(Debug, Clone, Copy)]
enum Representation {
    Rdf(ExportFormat),
    Html,
}

const REPRESENTATIONS: [(Representation, &str); 5] = [
    (
        Representation::Rdf(ExportFormat::JsonLd),
        "application/ld+json",
    ),
    (Representation::Rdf(ExportFormat::Turtle), "text/turtle"),
    (
        Representation::Rdf(ExportFormat::NTriples),
        "application/n-triples",
    ),
    (
        Representation::Rdf(ExportFormat::RdfXml),
        "application/rdf+xml",
    ),
    (Representation::Html, "text/html"),
];

#[derive(Debug, Deserialize, utoipa::IntoParams)]
/// The `?format=` override of `Accept`.
pub struct FormatParam {
    /// Overrides `Accept`: `jsonld`, `ttl`, `nt`, `rdf` or `html`.
    #[param(pattern = "^(jsonld|ttl|nt|rdf|html)$")]
    format: Option<String>,
}

fn negotiate(request: &HttpRequest, format: Option<&str>) -> Result<Representation, ApiError> {
    let available: Vec<&str> = REPRESENTATIONS.iter().map(|(_, m)| *m).collect();
    if let Some(name) = format {
        if name == "html" {
            return Ok(Representation::Html);
        }
        return ExportFormat::from_name(name)
            .map(Representation::Rdf)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "unknown format `{}`; use jsonld, ttl, nt, rdf or html",
                    name.chars().take(40).collect::<String>()
                ))
            });
    }
    choose(accept(request), &REPRESENTATIONS).ok_or_else(|| ApiError::not_acceptable(&available))
}

/// Read a dataset, content-negotiated.
#[utoipa::path(get, path = "/api/datasets/{id}", tag = "catalogue",
    params(("id" = String, Path, description = "Dataset id"), FormatParam),
    responses(
        (status = 200, description = "The dataset in the negotiated syntax (`Accept` or `?format=`)", content(
            (serde_json::Value = "application/ld+json"),
            (String = "text/turtle"),
            (String = "application/n-triples"),
            (String = "application/rdf+xml"),
            (String = "text/html"),
        )),
        (status = 404, description = "No such dataset", body = Problem, content_type = "application/problem+json"),
        (status = 406, description = "No acceptable syntax", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn read(
    caller: MaybeCaller,
    node: web::Data<Node>,
    id: web::Path<String>,
    query: web::Query<FormatParam>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let representation = negotiate(&request, query.format.as_deref())?;
    let id = id.into_inner();
    if !node.catalog.is_visible(&id, &caller.viewer())? {
        return Err(CatalogError::NotFound { id }.into());
    }
    let response = match representation {
        Representation::Rdf(format) => {
            let body = match node.catalog.cached_export(&id, format) {
                Some(bytes) => bytes,
                None => {
                    let catalog = node.catalog.clone();
                    web::block(move || catalog.export(&id, format)).await??
                }
            };
            HttpResponse::Ok()
                .content_type(format.media_type())
                .insert_header((header::VARY, "Accept"))
                .body(body)
        }
        Representation::Html => {
            let catalog = node.catalog.clone();
            let page_id = id.clone();
            let graph = web::block(move || catalog.describe(&id)).await??;
            HttpResponse::Ok()
                .content_type("text/html; charset=utf-8")
                .insert_header((header::VARY, "Accept"))
                .body(crate::http::ui::dataset_page(&node.id, &page_id, &graph))
        }
    };
    Ok(response)
}

/// Search parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// Free text.
    q: Option<String>,
    /// Theme IRI.
    theme: Option<String>,
    /// Publisher IRI.
    publisher: Option<String>,
    /// Format IRI.
    format: Option<String>,
    /// Licence IRI.
    license: Option<String>,
    /// Origin node (`local` for this node).
    origin: Option<String>,
    /// Page size (1–500, default 20).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
    /// Items to skip (default 0, at most 100,000).
    #[param(maximum = 100000)]
    offset: Option<usize>,
}

/// Full-text search with facets.
#[utoipa::path(get, path = "/api/datasets", tag = "catalogue",
    params(SearchParams),
    responses(
        (status = 200, description = "Hits and facet counts", body = SearchResults),
        (status = 400, description = "Bad parameters", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn search(
    caller: MaybeCaller,
    node: web::Data<Node>,
    params: web::Query<SearchParams>,
) -> Result<HttpResponse, ApiError> {
    let params = params.into_inner();
    let limit = params.limit.unwrap_or(20);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let offset = params.offset.unwrap_or(0);
    if offset > 100_000 {
        return Err(ApiError::bad_request(
            "offset must be at most 100000; narrow the search instead",
        ));
    }
    let q = params.q.unwrap_or_default();
    if q.len() > 1000 {
        return Err(ApiError::bad_request("q must be at most 1000 bytes"));
    }
    let filters = FACETS
        .iter()
        .zip([
            params.theme,
            params.publisher,
            params.format,
            params.license,
            params.origin,
        ])
        .filter_map(|(facet, value)| value.map(|v| ((*facet).to_owned(), v)))
        .collect();
    let query = SearchQuery {
        text: q,
        filters,
        limit,
        offset,
    };
    let catalog = node.catalog.clone();
    let viewer = caller.viewer();
    let results = web::block(move || catalog.search(&query, &viewer)).await??;
    Ok(HttpResponse::Ok().json(results))
}

/// Catalogue paging.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct CatalogParams {
    /// Datasets per page (1–500, default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
    /// Datasets to skip.
    offset: Option<usize>,
    /// Overrides `Accept`: `jsonld`, `ttl`, `nt` or `rdf`.
    #[param(pattern = "^(jsonld|ttl|nt|rdf)$")]
    format: Option<String>,
}

/// The whole catalogue as a `dcat:Catalog`, paged; `Link` headers point to the other pages.
#[utoipa::path(get, path = "/catalog", tag = "catalogue",
    params(CatalogParams),
    responses(
        (status = 200, description = "A page of the catalogue in the negotiated syntax (`Accept` or `?format=`)", content(
            (serde_json::Value = "application/ld+json"),
            (String = "text/turtle"),
            (String = "application/n-triples"),
            (String = "application/rdf+xml"),
        )),
        (status = 406, description = "No acceptable syntax", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn catalog_page(
    caller: MaybeCaller,
    node: web::Data<Node>,
    params: web::Query<CatalogParams>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let format = match negotiate(&request, params.format.as_deref())? {
        Representation::Rdf(format) => format,
        Representation::Html => ExportFormat::Turtle,
    };
    let limit = params.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let offset = params.offset.unwrap_or(0);
    let catalog = node.catalog.clone();
    let viewer = caller.viewer();
    let (graph, total) = web::block(move || catalog.catalog_page(limit, offset, &viewer)).await??;
    let mut links = Vec::new();
    let page = |offset: usize| {
        format!(
            "</catalog?limit={limit}&offset={offset}&format={}>",
            format.short_name()
        )
    };
    links.push(format!("{}; rel=\"first\"", page(0)));
    if offset + limit < total {
        links.push(format!("{}; rel=\"next\"", page(offset + limit)));
    }
    if offset > 0 {
        links.push(format!(
            "{}; rel=\"prev\"",
            page(offset.saturating_sub(limit))
        ));
    }
    Ok(HttpResponse::Ok()
        .content_type(format.media_type())
        .insert_header((header::LINK, links.join(", ")))
        .insert_header(("X-Total-Count", total.to_string()))
        .insert_header((header::VARY, "Accept"))
        .body(serialize(&graph, format, node.catalog.context())))
}
