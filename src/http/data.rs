//! The data plane over HTTP: `GET /data/{agreement}/arrow` streams the enforced view of a
//! dataset as Arrow IPC, to the holder of a data-plane token bound to that agreement.
//!
//! The body is pulled by the client: a batch is read from the files only when the socket took
//! the previous one (back-pressure, constant memory), a client that goes away drops the
//! DataFusion stream, and the stream aborts before any batch past the token's or the agreement's
//! expiry. The audit log records the release before the first byte and its size after the last.

use super::error::ApiError;
use crate::engine::EngineError;
use crate::engine::access::{self, AccessError};
use crate::engine::enforce::Narrowing;
use crate::node::Node;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use chrono::DateTime;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::execution::SendableRecordBatchStream;
use futures_util::StreamExt as _;
use serde::Deserialize;

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        let detail = error.to_string();
        match error {
            EngineError::BadRequest(_) => Self::bad_request(detail),
            EngineError::Policy(_) => Self::new(
                StatusCode::CONFLICT,
                "policy-not-applicable",
                "The agreed policy cannot be applied",
                detail,
            ),
            EngineError::Source(_) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "source-unreadable",
                "The dataset's files cannot be served",
                detail,
            ),
            EngineError::Internal(message) => Self::internal(message),
        }
    }
}

impl From<AccessError> for ApiError {
    fn from(error: AccessError) -> Self {
        match error {
            AccessError::Unauthenticated(error) => error.into(),
            AccessError::Forbidden(detail) => Self::forbidden(detail),
            AccessError::Contract(error) => error.into(),
            AccessError::Catalog(error) => error.into(),
            AccessError::Engine(error) => error.into(),
            AccessError::NotFound(detail) => Self::not_found(detail),
            AccessError::Internal(message) => Self::internal(message),
        }
    }
}

/// What a consumer may add to a pull.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PullParams {
    /// Comma-separated released columns to keep, in order.
    pub columns: Option<String>,
    /// Comma-separated conditions on released values, each `column:op:value`
    /// (op: eq, neq, lt, lteq, gt, gteq); pseudonymised columns cannot be filtered.
    #[serde(rename = "where")]
    #[param(rename = "where")]
    pub filter: Option<String>,
    /// At most this many rows.
    pub limit: Option<usize>,
}

/// The data-plane token of the request, checked against the node's own key.
pub(super) fn data_token(
    node: &Node,
    request: &HttpRequest,
    agreement: &str,
) -> Result<(String, String, i64), ApiError> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let grant = access::grant(node, access::bearer(value)?, agreement)?;
    Ok((grant.subject, grant.transfer, grant.expires))
}

/// Stream the enforced view of the agreement's dataset as Arrow IPC.
#[utoipa::path(get, path = "/data/{agreement}/arrow", tag = "data",
    params(("agreement" = String, Path, description = "The agreement id"), PullParams),
    responses(
        (status = 200, description = "An Arrow IPC stream of the released rows and columns", content_type = "application/vnd.apache.arrow.stream"),
        (status = 400, description = "A column the agreement does not release", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid data-plane token", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The agreement no longer permits use, or the transfer is not running", body = super::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn arrow(
    node: web::Data<Node>,
    request: HttpRequest,
    agreement: web::Path<String>,
    params: web::Query<PullParams>,
) -> Result<HttpResponse, ApiError> {
    let agreement = agreement.into_inner();
    let (subject, transfer, expires) = data_token(&node, &request, &agreement)?;
    let narrowing = Narrowing {
        columns: params.columns.as_ref().map(|c| {
            c.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        }),
        filters: params
            .filter
            .as_deref()
            .map(|f| {
                f.split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(str::parse)
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default(),
        limit: params.limit,
    };
    let grant = access::Grant {
        subject,
        agreement,
        transfer,
        expires,
    };
    let opened = access::open_stream(node.into_inner(), &grant, &narrowing, "arrow").await?;
    let pump = Pump::new(opened.batches, opened.meter)?;
    Ok(HttpResponse::Ok()
        .content_type("application/vnd.apache.arrow.stream")
        .streaming(pump.into_stream()))
}

/// Turns record batches into IPC bytes, one batch per chunk; its meter counts what is sent,
/// stops at the deadline, and settles and audits the release however the stream ends.
struct Pump {
    batches: SendableRecordBatchStream,
    writer: StreamWriter<Vec<u8>>,
    started: bool,
    done: bool,
    meter: Option<access::Meter>,
}

type Chunk = Result<Bytes, actix_web::Error>;

impl Pump {
    fn new(batches: SendableRecordBatchStream, meter: access::Meter) -> Result<Self, ApiError> {
        let writer =
            StreamWriter::try_new(Vec::new(), &batches.schema()).map_err(ApiError::internal)?;
        Ok(Self {
            batches,
            writer,
            started: false,
            done: false,
            meter: Some(meter),
        })
    }

    fn take(&mut self) -> Bytes {
        let bytes = std::mem::take(self.writer.get_mut());
        if let Some(meter) = &mut self.meter {
            meter.add_bytes(bytes.len() as u64);
        }
        Bytes::from(bytes)
    }

    fn into_stream(self) -> impl futures_util::Stream<Item = Chunk> {
        futures_util::stream::try_unfold(self, |mut pump| async move {
            if pump.done {
                return Ok(None);
            }
            if !pump.started {
                pump.started = true;
                let schema = pump.take();
                return Ok(Some((schema, pump)));
            }
            match pump.batches.next().await {
                Some(Ok(batch)) => {
                    if let Some(meter) = &mut pump.meter {
                        meter
                            .check()
                            .map_err(|e| actix_web::error::ErrorForbidden(e.to_string()))?;
                        meter.add_rows(batch.num_rows() as u64);
                    }
                    pump.writer
                        .write(&batch)
                        .map_err(actix_web::error::ErrorInternalServerError)?;
                    let chunk = pump.take();
                    Ok(Some((chunk, pump)))
                }
                Some(Err(error)) => {
                    let agreement = pump.meter.as_ref().map(|m| m.agreement().to_owned());
                    tracing::warn!(%error, ?agreement, "stream ended by a read error");
                    Err(actix_web::error::ErrorUnprocessableEntity(
                        "the dataset's files could not be read to the end",
                    ))
                }
                None => {
                    pump.writer
                        .finish()
                        .map_err(actix_web::error::ErrorInternalServerError)?;
                    pump.done = true;
                    let end = pump.take();
                    if let Some(meter) = pump.meter.take() {
                        meter.finish().await;
                    }
                    Ok(Some((end, pump)))
                }
            }
        })
    }
}

/// Which rank of which job asks, for which epoch.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ShardParams {
    /// Ranks in the job (default 1).
    pub world_size: Option<usize>,
    /// This rank, from 0 (default 0).
    pub rank: Option<usize>,
    /// The epoch: each has its own shard order (default 0).
    pub epoch: Option<u64>,
    /// The seed of the shard permutation (default 0).
    pub seed: Option<u64>,
}

/// The shard plan of one rank for one epoch.
#[utoipa::path(get, path = "/data/{agreement}/shards", tag = "data",
    params(("agreement" = String, Path, description = "The agreement id"), ShardParams),
    responses(
        (status = 200, description = "`shards`: this rank's segments (shard `url`, `sha256`, `offset`, `rows`), equal in rows for every rank", body = serde_json::Value),
        (status = 400, description = "rank not below world_size", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid data-plane token", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The agreement no longer permits use", body = super::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn shard_plan(
    node: web::Data<Node>,
    request: HttpRequest,
    agreement: web::Path<String>,
    params: web::Query<ShardParams>,
) -> Result<HttpResponse, ApiError> {
    let agreement = agreement.into_inner();
    let (subject, transfer, _) = data_token(&node, &request, &agreement)?;
    let (world_size, rank) = (params.world_size.unwrap_or(1), params.rank.unwrap_or(0));
    let (epoch, seed) = (params.epoch.unwrap_or(0), params.seed.unwrap_or(0));
    if world_size == 0 || rank >= world_size {
        return Err(ApiError::bad_request(format!(
            "rank must be below world_size (got rank {rank} of {world_size})"
        )));
    }
    let manifest = shard_manifest(&node, &subject, &agreement, &transfer).await?;
    let mut segments = crate::engine::shards::plan(&manifest, world_size, rank, epoch, seed)?;
    let base = format!("{}/data/{}/shards", node.config.public_url(), agreement);
    for segment in &mut segments {
        segment.url = format!("{base}/{}", segment.n);
    }
    let rows: usize = segments.iter().map(|s| s.rows).sum();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "agreement": agreement,
        "world_size": world_size,
        "rank": rank,
        "epoch": epoch,
        "seed": seed,
        "rows": rows,
        "total_rows": manifest.rows,
        "shard_count": manifest.shards.len(),
        "shards": segments,
    })))
}

/// The agreement's shards, cut on first use (that first cut is the counted pull).
pub(super) async fn shard_manifest(
    node: &web::Data<Node>,
    subject: &str,
    agreement: &str,
    transfer: &str,
) -> Result<std::sync::Arc<crate::engine::shards::Manifest>, ApiError> {
    let grant = access::Grant {
        subject: subject.to_owned(),
        agreement: agreement.to_owned(),
        transfer: transfer.to_owned(),
        expires: 0,
    };
    Ok(access::shard_manifest(&node.clone().into_inner(), &grant).await?)
}

/// Which form a shard is sent in.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ShardFormat {
    /// `parquet` (default) or `arrow` (an Arrow IPC stream).
    pub format: Option<String>,
}

/// One shard, as Parquet (with `HEAD` and single `Range` requests) or Arrow IPC.
#[utoipa::path(get, path = "/data/{agreement}/shards/{n}", tag = "data",
    params(("agreement" = String, Path, description = "The agreement id"), ("n" = usize, Path, description = "The shard number"), ShardFormat),
    responses(
        (status = 200, description = "The shard (`ETag` is its SHA-256)", content_type = "application/vnd.apache.parquet"),
        (status = 206, description = "The requested byte range of the shard"),
        (status = 404, description = "No such shard", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 416, description = "Range not satisfiable", body = super::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn shard(
    node: web::Data<Node>,
    request: HttpRequest,
    path: web::Path<(String, usize)>,
    query: web::Query<ShardFormat>,
) -> Result<HttpResponse, ApiError> {
    let (agreement, n) = path.into_inner();
    let (subject, transfer, _) = data_token(&node, &request, &agreement)?;
    let arrow = match query.format.as_deref() {
        None | Some("parquet") => false,
        Some("arrow") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "format is parquet or arrow, not `{}`",
                other.chars().take(40).collect::<String>()
            )));
        }
    };
    let range = request
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let head = request.method() == actix_web::http::Method::HEAD;
    let charged = !head && range.as_deref().is_none_or(|r| r.starts_with("bytes=0-"));
    let grant = access::Grant {
        subject,
        agreement,
        transfer,
        expires: 0,
    };
    let form = if arrow {
        access::ShardForm::ArrowIpc
    } else {
        access::ShardForm::Parquet
    };
    let access::ReleasedShard { shard, body } =
        access::release_shard(&node.clone().into_inner(), &grant, n, form, charged).await?;
    let media = if arrow {
        "application/vnd.apache.arrow.stream"
    } else {
        "application/vnd.apache.parquet"
    };
    let etag = format!("\"{}\"", shard.sha256);
    let mut response = match range.as_deref().filter(|_| !arrow) {
        None => {
            let mut ok = HttpResponse::Ok();
            ok.insert_header((header::ACCEPT_RANGES, "bytes"));
            ok
        }
        Some(range) => {
            let (start, end) = byte_range(range, body.len()).ok_or_else(|| {
                ApiError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "range-not-satisfiable",
                    "Range not satisfiable",
                    format!(
                        "ask for one range within 0-{} (e.g. bytes=0-1023)",
                        body.len().saturating_sub(1)
                    ),
                )
            })?;
            let mut partial = HttpResponse::PartialContent();
            partial.insert_header((
                header::CONTENT_RANGE,
                format!("bytes {start}-{end}/{}", body.len()),
            ));
            let slice = body[start..=end].to_vec();
            return Ok(partial
                .insert_header((header::ETAG, etag))
                .content_type(media)
                .body(slice));
        }
    };
    response
        .insert_header((header::ETAG, etag))
        .insert_header(("X-Shard-Rows", shard.rows.to_string()))
        .insert_header(("X-Shard-SHA256", shard.sha256.clone()))
        .content_type(media);
    // For HEAD, actix sends the headers of this body (its length included) and not the body.
    Ok(response.body(body))
}

/// One `bytes=a-b`, `bytes=a-` or `bytes=-n` range within `len` bytes, as inclusive bounds.
pub(super) fn byte_range(header: &str, len: usize) -> Option<(usize, usize)> {
    let spec = header.strip_prefix("bytes=")?;
    if spec.contains(',') || len == 0 {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (start, end) = match (first.trim(), last.trim()) {
        ("", suffix) => {
            let n: usize = suffix.parse().ok()?;
            (len.checked_sub(n.min(len))?, len - 1)
        }
        (a, "") => (a.parse().ok()?, len - 1),
        (a, b) => (a.parse().ok()?, b.parse::<usize>().ok()?.min(len - 1)),
    };
    (start <= end && start < len).then_some((start, end))
}

/// What the data-plane endpoint of a transfer offers: links to the stream and the shard plan.
#[utoipa::path(get, path = "/data/{agreement}", tag = "data",
    params(("agreement" = String, Path, description = "The agreement id")),
    responses((status = 200, description = "`arrow` and `shards` URLs, and what is released", body = serde_json::Value),
        (status = 401, description = "No valid data-plane token", body = super::error::Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn index(
    node: web::Data<Node>,
    request: HttpRequest,
    agreement: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let agreement = agreement.into_inner();
    let (subject, transfer, expires) = data_token(&node, &request, &agreement)?;
    let shared = node.clone().into_inner();
    let id = agreement.clone();
    let (record, plan) =
        web::block(move || shared.contracts.permit(&subject, &id, &transfer)).await??;
    let base = format!("{}/data/{}", node.config.public_url(), agreement);
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "agreement": agreement,
        "dataset": record.dataset,
        "arrow": format!("{base}/arrow"),
        "shards": format!("{base}/shards?world_size=1&rank=0&epoch=0&seed=0"),
        "token_expires": DateTime::from_timestamp(expires, 0).map(|t| t.to_rfc3339()),
        "agreement_expires": record.expires,
        "dropped_columns": plan.dropped_columns,
        "pseudonymised_columns": plan.pseudonymised_columns,
        "generalised_columns": plan.generalisations.iter().map(|g| g.column.clone()).collect::<Vec<_>>(),
        "row_budget_left": plan.row_budget,
    })))
}

/// What a consumer asks of an aggregate.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AggregateParams {
    /// Comma-separated released columns whose values make a cell; none gives the total.
    pub group_by: Option<String>,
    /// Comma-separated measures, each `function:column` with function sum, avg, min or max
    /// (min and max are refused under a minimum group size). Every cell also has its row count.
    pub measures: Option<String>,
    /// Comma-separated conditions on released values, as for `/arrow` (refused under a minimum
    /// group size).
    #[serde(rename = "where")]
    #[param(rename = "where")]
    pub filter: Option<String>,
}

fn comma_list(text: Option<&str>) -> Vec<&str> {
    text.map(|t| {
        t.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect()
    })
    .unwrap_or_default()
}

/// Counts, sums and means per group of released columns, with cells under the agreement's
/// minimum group size withheld (and the cells from which they could be derived).
#[utoipa::path(get, path = "/data/{agreement}/aggregate", tag = "data",
    params(("agreement" = String, Path, description = "The agreement id"), AggregateParams),
    responses(
        (status = 200, description = "The cells (JSON: `groupBy`, `measures`, `minGroupSize`, `cells`, `suppressed`)", content_type = "application/json"),
        (status = 400, description = "A column the agreement does not release or may not be aggregated, or a refused measure or filter", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid data-plane token", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The agreement no longer permits use, or the transfer is not running", body = super::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn aggregate(
    node: web::Data<Node>,
    request: HttpRequest,
    agreement: web::Path<String>,
    params: web::Query<AggregateParams>,
) -> Result<HttpResponse, ApiError> {
    use crate::engine::aggregate::{self, AggregateRequest};
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let grant = access::grant(&node, access::bearer(authorization)?, &agreement)?;
    let wanted = AggregateRequest {
        group_by: comma_list(params.group_by.as_deref())
            .into_iter()
            .map(str::to_owned)
            .collect(),
        measures: comma_list(params.measures.as_deref())
            .into_iter()
            .map(str::parse)
            .collect::<Result<_, _>>()?,
        filters: comma_list(params.filter.as_deref())
            .into_iter()
            .map(str::parse)
            .collect::<Result<_, _>>()?,
    };
    let body = aggregate::release(node.into_inner(), &grant, &wanted).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(body))
}
