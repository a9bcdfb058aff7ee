//! The data plane over HTTP: `GET /data/{agreement}/arrow` streams the enforced view of a
//! dataset as Arrow IPC, to the holder of a data-plane token bound to that agreement.
//!
//! The body is pulled by the client: a batch is read from the files only when the socket took
//! the previous one (back-pressure, constant memory), a client that goes away drops the
//! DataFusion stream, and the stream aborts before any batch past the token's or the agreement's
//! expiry. The audit log records the release before the first byte and its size after the last.

use super::error::ApiError;
use crate::audit::Record;
use crate::engine::EngineError;
use crate::engine::enforce::{self, Narrowing, Source};
use crate::identity::AuthError;
use crate::node::Node;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::execution::SendableRecordBatchStream;
use futures_util::StreamExt as _;
use serde::Deserialize;
use std::sync::Arc;

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

/// What a consumer may add to a pull.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PullParams {
    /// Comma-separated released columns to keep, in order.
    pub columns: Option<String>,
    /// At most this many rows.
    pub limit: Option<usize>,
}

/// The data-plane token of the request, checked against the node's own key.
fn data_token(
    node: &Node,
    request: &HttpRequest,
    agreement: &str,
) -> Result<(String, String, i64), ApiError> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(AuthError::Missing)?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or(AuthError::Missing)?;
    let principal = node.data_tokens.validate(token.trim())?;
    let claim = |name: &str| {
        principal
            .attributes
            .get(name)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    if claim("token_use").as_deref() != Some("data-plane") {
        return Err(AuthError::Malformed(
            "this is not a data-plane token; start a transfer (POST /api/transfers) to get one"
                .into(),
        )
        .into());
    }
    if claim("agreement").as_deref() != Some(agreement) {
        return Err(ApiError::forbidden(
            "the token is bound to another agreement",
        ));
    }
    let transfer =
        claim("transfer").ok_or_else(|| ApiError::forbidden("the token names no transfer"))?;
    Ok((principal.subject, transfer, principal.expires))
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
    let (subject, transfer, token_expires) = data_token(&node, &request, &agreement)?;
    let subject_for_audit = subject.clone();
    let narrowing = Narrowing {
        columns: params.columns.as_ref().map(|c| {
            c.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        }),
        limit: params.limit,
    };
    let shared = node.clone().into_inner();
    let (record, plan, path, format) = web::block(move || -> Result<_, ApiError> {
        let (record, plan) = shared.contracts.release(&subject, &agreement, &transfer)?;
        let connector = shared
            .catalog
            .record(&record.dataset)?
            .and_then(|r| r.connector)
            .ok_or_else(|| EngineError::Source("the dataset has no data on this node".into()))?;
        let path = shared.dataplane.resolve(&connector)?;
        shared
            .audit
            .append(Record {
                event: "release-started".into(),
                who: subject.clone(),
                agreement: record.id.clone(),
                dataset: record.dataset.clone(),
                part: Some(transfer.clone()),
                ..Record::default()
            })
            .map_err(ApiError::internal)?;
        Ok((record, plan, path, connector.format))
    })
    .await??;
    let key = node.dataplane.agreement_key(&record.id);
    let source = Source {
        path: &path,
        format: &format,
    };
    let view = enforce::enforced_view(&source, &plan, key, &narrowing).await?;
    let batches = enforce::execute(view).await?;
    let agreement_expires = record
        .expires
        .as_deref()
        .and_then(|e| DateTime::parse_from_rfc3339(e).ok())
        .map(|e| e.with_timezone(&Utc));
    let token_deadline = DateTime::from_timestamp(token_expires, 0).unwrap_or_else(Utc::now);
    let deadline = agreement_expires.map_or(token_deadline, |a| a.min(token_deadline));
    let pump = Pump::new(
        batches,
        deadline,
        node.into_inner(),
        (subject_for_audit, record.id, record.dataset),
    )?;
    Ok(HttpResponse::Ok()
        .content_type("application/vnd.apache.arrow.stream")
        .streaming(pump.into_stream()))
}

/// Turns record batches into IPC bytes, one batch per chunk.
struct Pump {
    batches: SendableRecordBatchStream,
    writer: StreamWriter<Vec<u8>>,
    started: bool,
    done: bool,
    rows: u64,
    bytes: u64,
    deadline: DateTime<Utc>,
    node: Arc<Node>,
    who: String,
    agreement: String,
    dataset: String,
    recorded: bool,
}

/// Counts what a pull released against the agreement's budgets and audits it.
fn record_release(node: &Node, record: Record) {
    if let Err(error) = node
        .contracts
        .record_released(&record.agreement, record.rows, record.bytes)
    {
        tracing::error!(%error, "could not count a release against its agreement");
    }
    if let Err(error) = node.audit.append(record) {
        tracing::error!(%error, "could not audit a release");
    }
}

impl Drop for Pump {
    /// A stream that ends early (the client went away, the agreement expired, a read failed)
    /// still counts what it sent.
    fn drop(&mut self) {
        if self.recorded {
            return;
        }
        self.recorded = true;
        let (node, mut record) = (self.node.clone(), self.release_record());
        record.event = "release-ended-early".into();
        tokio::task::spawn_blocking(move || record_release(&node, record));
    }
}

type Chunk = Result<Bytes, actix_web::Error>;

impl Pump {
    fn new(
        batches: SendableRecordBatchStream,
        deadline: DateTime<Utc>,
        node: Arc<Node>,
        (who, agreement, dataset): (String, String, String),
    ) -> Result<Self, ApiError> {
        let writer =
            StreamWriter::try_new(Vec::new(), &batches.schema()).map_err(ApiError::internal)?;
        Ok(Self {
            batches,
            writer,
            started: false,
            done: false,
            rows: 0,
            bytes: 0,
            deadline,
            node,
            who,
            agreement,
            dataset,
            recorded: false,
        })
    }

    fn release_record(&self) -> Record {
        Record {
            event: "release".into(),
            who: self.who.clone(),
            agreement: self.agreement.clone(),
            dataset: self.dataset.clone(),
            part: Some("arrow".into()),
            rows: self.rows,
            bytes: self.bytes,
        }
    }

    fn take(&mut self) -> Bytes {
        let bytes = std::mem::take(self.writer.get_mut());
        self.bytes += bytes.len() as u64;
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
                    if pump.node.clock.now() > pump.deadline {
                        tracing::info!(agreement = %pump.agreement, "stream ended: the token or the agreement expired");
                        return Err(actix_web::error::ErrorForbidden(
                            "the data-plane token or the agreement expired during the stream",
                        ));
                    }
                    pump.writer
                        .write(&batch)
                        .map_err(actix_web::error::ErrorInternalServerError)?;
                    pump.rows += batch.num_rows() as u64;
                    let chunk = pump.take();
                    Ok(Some((chunk, pump)))
                }
                Some(Err(error)) => {
                    tracing::warn!(%error, agreement = %pump.agreement, "stream ended by a read error");
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
                    let (node, record) = (pump.node.clone(), pump.release_record());
                    pump.recorded = true;
                    let _ = web::block(move || record_release(&node, record)).await;
                    Ok(Some((end, pump)))
                }
            }
        })
    }
}
