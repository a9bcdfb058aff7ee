//! The Delta Sharing open protocol (REST, parquet response format) under `/delta-sharing/`, so
//! that the official clients (`delta_sharing.load_as_pandas`, `SharingClient`) read the
//! enforced view of an agreement's dataset.
//!
//! The bearer is the agreement's data-plane token. Each agreement is one share (named by the
//! uuid part of its id), with one schema `default` holding one table named after the dataset.
//! The table is the agreement's training shards (see [`crate::engine::shards`]): one `file`
//! line per shard, each with a node-signed URL that expires with the token and is served
//! without a bearer (the clients fetch file URLs without one). A query counts the rows and
//! bytes it lists against the agreement; fetching the listed files counts nothing more.

use super::data::{byte_range, data_token, shard_manifest};
use super::error::ApiError;
use crate::audit::Record;
use crate::engine::enforce::hmac_sha256;
use crate::engine::shards::{self, Manifest};
use crate::identity::AuthError;
use crate::node::Node;
use actix_web::http::{Method, StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use chrono::DateTime;
use datafusion::arrow::datatypes::{DataType, Schema};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};

/// The one schema of every share.
const SCHEMA: &str = "default";
/// The table version: an agreement's shards are cut once and never change.
const VERSION: &str = "0";
/// The media type of the table responses.
const NDJSON: &str = "application/x-ndjson; charset=utf-8";
/// The prefix of agreement ids whose uuid part names their share.
const UUID_PREFIX: &str = "urn:uuid:";

/// An error as the Delta Sharing protocol answers it: `{"errorCode", "message"}`.
#[derive(Debug)]
pub struct DeltaError(ApiError);

impl std::fmt::Display for DeltaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.problem().detail)
    }
}

impl From<ApiError> for DeltaError {
    fn from(error: ApiError) -> Self {
        Self(error)
    }
}

impl From<AuthError> for DeltaError {
    fn from(error: AuthError) -> Self {
        Self(error.into())
    }
}

impl From<actix_web::error::BlockingError> for DeltaError {
    fn from(error: actix_web::error::BlockingError) -> Self {
        Self(error.into())
    }
}

impl ResponseError for DeltaError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.0.problem().status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let code = match status {
            StatusCode::UNAUTHORIZED => "UNAUTHENTICATED",
            StatusCode::FORBIDDEN => "PERMISSION_DENIED",
            StatusCode::NOT_FOUND => "RESOURCE_DOES_NOT_EXIST",
            StatusCode::BAD_REQUEST => "INVALID_PARAMETER_VALUE",
            StatusCode::RANGE_NOT_SATISFIABLE => "INVALID_PARAMETER_VALUE",
            s if s.is_server_error() => "INTERNAL_ERROR",
            _ => "FAILED_PRECONDITION",
        };
        let mut response = HttpResponse::build(status);
        if status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        response.json(json!({"errorCode": code, "message": self.0.problem().detail}))
    }
}

type Answer = Result<HttpResponse, DeltaError>;

/// The share name of an agreement: its uuid part, or its id in hex when it is not a uuid URN.
pub fn share_name(agreement: &str) -> String {
    match agreement.strip_prefix(UUID_PREFIX) {
        Some(uuid) if uuid::Uuid::parse_str(uuid).is_ok() => uuid.to_owned(),
        _ => hex::encode(agreement.as_bytes()),
    }
}

/// The agreement a share name stands for (the inverse of [`share_name`]).
fn agreement_of(share: &str) -> Option<String> {
    if uuid::Uuid::parse_str(share).is_ok() && share.contains('-') {
        return Some(format!("{UUID_PREFIX}{share}"));
    }
    hex::decode(share)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
}

/// Who asks, for which agreement, through which transfer.
struct Caller {
    subject: String,
    agreement: String,
    transfer: String,
    token: String,
    expires: i64,
}

/// Checks the data-plane token of the request; the agreement is the one it is bound to.
fn caller(node: &Node, request: &HttpRequest) -> Result<Caller, DeltaError> {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_owned())
        .ok_or(AuthError::Missing)?;
    let principal = node.data_tokens.validate(&token)?;
    let agreement = principal
        .attributes
        .get("agreement")
        .and_then(|v| v.as_str())
        .ok_or_else(|| {
            AuthError::Malformed(
                "this is not a data-plane token; start a transfer (POST /api/transfers) to get one"
                    .into(),
            )
        })?
        .to_owned();
    let (subject, transfer, expires) = data_token(node, request, &agreement)?;
    Ok(Caller {
        subject,
        agreement,
        transfer,
        token,
        expires,
    })
}

/// The caller, its agreement still permitting use, and the dataset (the table's name).
async fn permitted(
    node: &web::Data<Node>,
    request: &HttpRequest,
) -> Result<(Caller, String), DeltaError> {
    let caller = caller(node, request)?;
    let shared = node.clone().into_inner();
    let (who, id, part) = (
        caller.subject.clone(),
        caller.agreement.clone(),
        caller.transfer.clone(),
    );
    let (record, _) = web::block(move || shared.contracts.permit(&who, &id, &part))
        .await?
        .map_err(ApiError::from)?;
    Ok((caller, record.dataset))
}

/// The share in the path must be the caller's own.
fn own_share(caller: &Caller, share: &str) -> Result<String, DeltaError> {
    let name = share_name(&caller.agreement);
    if !share.eq_ignore_ascii_case(&name) {
        return Err(ApiError::not_found(format!(
            "no share `{}` for this token; its share is `{name}`",
            share.chars().take(80).collect::<String>()
        ))
        .into());
    }
    Ok(name)
}

/// The share, schema and table in the path must be the caller's own.
fn own_table(
    caller: &Caller,
    dataset: &str,
    (share, schema, table): &(String, String, String),
) -> Result<String, DeltaError> {
    let name = own_share(caller, share)?;
    if !schema.eq_ignore_ascii_case(SCHEMA) {
        return Err(ApiError::not_found(format!("the share has one schema, `{SCHEMA}`")).into());
    }
    if !table.eq_ignore_ascii_case(dataset) {
        return Err(ApiError::not_found(format!("the schema has one table, `{dataset}`")).into());
    }
    Ok(name)
}

/// The protocol's table object.
fn table_item(share: &str, dataset: &str, agreement: &str) -> Json {
    json!({
        "name": dataset,
        "schema": SCHEMA,
        "share": share,
        "shareId": share,
        "id": table_id(agreement, dataset),
    })
}

/// A stable id of the agreement's table.
fn table_id(agreement: &str, dataset: &str) -> String {
    let digest = Sha256::digest(format!("{agreement}\n{dataset}").as_bytes());
    uuid::Builder::from_random_bytes(digest[..16].try_into().unwrap_or_default())
        .into_uuid()
        .to_string()
}

/// `GET /delta-sharing/profile`: the profile file for the caller's token.
pub async fn profile(node: web::Data<Node>, request: HttpRequest) -> Answer {
    let (caller, _) = permitted(&node, &request).await?;
    let expires = DateTime::from_timestamp(caller.expires, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string());
    Ok(HttpResponse::Ok().json(json!({
        "shareCredentialsVersion": 1,
        "endpoint": format!("{}/delta-sharing", node.config.public_url()),
        "bearerToken": caller.token,
        "expirationTime": expires,
    })))
}

/// `GET /delta-sharing/shares`: the caller's one share.
pub async fn list_shares(node: web::Data<Node>, request: HttpRequest) -> Answer {
    let (caller, _) = permitted(&node, &request).await?;
    let share = share_name(&caller.agreement);
    Ok(HttpResponse::Ok().json(json!({"items": [{"name": share, "id": share}]})))
}

/// `GET /delta-sharing/shares/{share}`.
pub async fn get_share(
    node: web::Data<Node>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Answer {
    let (caller, _) = permitted(&node, &request).await?;
    let share = own_share(&caller, &path)?;
    Ok(HttpResponse::Ok().json(json!({"share": {"name": share, "id": share}})))
}

/// `GET /delta-sharing/shares/{share}/schemas`.
pub async fn list_schemas(
    node: web::Data<Node>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Answer {
    let (caller, _) = permitted(&node, &request).await?;
    let share = own_share(&caller, &path)?;
    Ok(HttpResponse::Ok().json(json!({"items": [{"name": SCHEMA, "share": share}]})))
}

/// `GET /delta-sharing/shares/{share}/schemas/{schema}/tables`.
pub async fn list_tables(
    node: web::Data<Node>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> Answer {
    let (caller, dataset) = permitted(&node, &request).await?;
    let (share, schema) = path.into_inner();
    let share = own_share(&caller, &share)?;
    if !schema.eq_ignore_ascii_case(SCHEMA) {
        return Err(ApiError::not_found(format!("the share has one schema, `{SCHEMA}`")).into());
    }
    Ok(
        HttpResponse::Ok()
            .json(json!({"items": [table_item(&share, &dataset, &caller.agreement)]})),
    )
}

/// `GET /delta-sharing/shares/{share}/all-tables`.
pub async fn list_all_tables(
    node: web::Data<Node>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Answer {
    let (caller, dataset) = permitted(&node, &request).await?;
    let share = own_share(&caller, &path)?;
    Ok(
        HttpResponse::Ok()
            .json(json!({"items": [table_item(&share, &dataset, &caller.agreement)]})),
    )
}

/// `GET|HEAD .../tables/{table}/version`: the version in the `Delta-Table-Version` header.
pub async fn version(
    node: web::Data<Node>,
    request: HttpRequest,
    path: web::Path<(String, String, String)>,
) -> Answer {
    let (caller, dataset) = permitted(&node, &request).await?;
    own_table(&caller, &dataset, &path)?;
    Ok(HttpResponse::Ok()
        .insert_header(("Delta-Table-Version", VERSION))
        .finish())
}

/// The Spark-style type name of an Arrow type, as the protocol's schema string writes it.
fn spark_type(data_type: &DataType) -> Result<String, ApiError> {
    Ok(match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Int64 | DataType::UInt32 => "long".into(),
        DataType::Int32 | DataType::UInt16 => "integer".into(),
        DataType::Int16 | DataType::UInt8 => "short".into(),
        DataType::Int8 => "byte".into(),
        DataType::Float64 => "double".into(),
        DataType::Float32 | DataType::Float16 => "float".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Timestamp(_, _) => "timestamp".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "binary".into(),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("decimal({p},{s})"),
        other => {
            return Err(ApiError::internal(format!(
                "the released column type {other} has no Delta Sharing equivalent"
            )));
        }
    })
}

/// The protocol's `schemaString` of an Arrow schema.
fn schema_string(schema: &Schema) -> Result<String, ApiError> {
    let fields = schema
        .fields()
        .iter()
        .map(|f| {
            Ok(json!({
                "name": f.name(),
                "type": spark_type(f.data_type())?,
                "nullable": f.is_nullable(),
                "metadata": {},
            }))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(json!({"type": "struct", "fields": fields}).to_string())
}

/// The enforced schema, read from the first shard's Parquet footer.
fn enforced_schema(dir: &std::path::Path, manifest: &Manifest) -> Result<Schema, ApiError> {
    if manifest.shards.is_empty() {
        return Ok(Schema::empty());
    }
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let file = std::fs::File::open(shards::shard_path(dir, 0)).map_err(ApiError::internal)?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(ApiError::internal)?;
    Ok(builder.schema().as_ref().clone())
}

/// The protocol and metaData lines of the agreement's table.
async fn head_lines(
    node: &web::Data<Node>,
    caller: &Caller,
    dataset: &str,
) -> Result<(std::sync::Arc<Manifest>, String), DeltaError> {
    let manifest =
        shard_manifest(node, &caller.subject, &caller.agreement, &caller.transfer).await?;
    let dir = node.dataplane.shard_dir(&caller.agreement);
    let cloned = manifest.clone();
    let schema = web::block(move || enforced_schema(&dir, &cloned)).await??;
    let size: u64 = manifest.shards.iter().map(|s| s.bytes).sum();
    let metadata = json!({"metaData": {
        "id": table_id(&caller.agreement, dataset),
        "name": dataset,
        "format": {"provider": "parquet"},
        "schemaString": schema_string(&schema)?,
        "partitionColumns": [],
        "configuration": {},
        "size": size,
        "numFiles": manifest.shards.len(),
    }});
    let lines = format!(
        "{}\n{metadata}\n",
        json!({"protocol": {"minReaderVersion": 1}})
    );
    Ok((manifest, lines))
}

/// `GET .../tables/{table}/metadata`: the protocol and metaData lines (the enforced schema).
pub async fn metadata(
    node: web::Data<Node>,
    request: HttpRequest,
    path: web::Path<(String, String, String)>,
) -> Answer {
    let (caller, dataset) = permitted(&node, &request).await?;
    own_table(&caller, &dataset, &path)?;
    let (_, lines) = head_lines(&node, &caller, &dataset).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Delta-Table-Version", VERSION))
        .content_type(NDJSON)
        .body(lines))
}

/// What a query may carry; the node honours `limitHint` and ignores the rest (no history, no
/// predicate pushdown: the files hold the enforced view already).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryBody {
    limit_hint: Option<u64>,
    version: Option<i64>,
}

/// The signing key of the agreement's file URLs.
fn url_key(node: &Node, agreement: &str) -> [u8; 32] {
    hmac_sha256(
        &node.dataplane.agreement_key(agreement),
        b"delta-sharing-url",
    )
}

/// The signature of one file URL: agreement, shard, expiry (unix seconds), transfer, subject.
pub fn url_signature(
    key: &[u8; 32],
    agreement: &str,
    n: usize,
    expires: i64,
    transfer: &str,
    subject: &str,
) -> String {
    let message = format!("delta-sharing-file\n{agreement}\n{n}\n{expires}\n{transfer}\n{subject}");
    hex::encode(hmac_sha256(key, message.as_bytes()))
}

/// `POST .../tables/{table}/query`: protocol, metaData and one `file` line per shard, each
/// with a signed URL that expires with the token.
pub async fn query(
    node: web::Data<Node>,
    request: HttpRequest,
    path: web::Path<(String, String, String)>,
    body: web::Bytes,
) -> Answer {
    let (caller, dataset) = permitted(&node, &request).await?;
    let share = own_table(&caller, &dataset, &path)?;
    let body: QueryBody = if body.iter().all(u8::is_ascii_whitespace) {
        QueryBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("the query body is not valid: {e}")))?
    };
    if body.version.is_some_and(|v| v.to_string() != VERSION) {
        return Err(ApiError::not_found(format!("this table has one version, {VERSION}")).into());
    }
    let (manifest, mut lines) = head_lines(&node, &caller, &dataset).await?;
    let key = url_key(&node, &caller.agreement);
    let expires = caller.expires;
    let base = format!("{}/delta-sharing/files/{share}", node.config.public_url());
    let (transfer_q, subject_q) = (
        utf8_percent_encode(&caller.transfer, NON_ALPHANUMERIC).to_string(),
        utf8_percent_encode(&caller.subject, NON_ALPHANUMERIC).to_string(),
    );
    let (mut rows, mut bytes) = (0u64, 0u64);
    for shard in &manifest.shards {
        if body.limit_hint.is_some_and(|limit| rows >= limit) {
            break;
        }
        let sig = url_signature(
            &key,
            &caller.agreement,
            shard.n,
            expires,
            &caller.transfer,
            &caller.subject,
        );
        let file = json!({"file": {
            "url": format!("{base}/{}?expires={expires}&transfer={transfer_q}&sub={subject_q}&sig={sig}", shard.n),
            "id": shard.sha256,
            "partitionValues": {},
            "size": shard.bytes,
            "stats": json!({"numRecords": shard.rows}).to_string(),
            "expirationTimestamp": expires.saturating_mul(1000),
        }});
        lines.push_str(&file.to_string());
        lines.push('\n');
        rows += shard.rows as u64;
        bytes += shard.bytes;
    }
    let shared = node.clone().into_inner();
    let (who, id, part) = (
        caller.subject.clone(),
        caller.agreement.clone(),
        caller.transfer.clone(),
    );
    web::block(move || -> Result<(), ApiError> {
        let (record, _) = shared.contracts.permit(&who, &id, &part)?;
        shared
            .audit
            .append(Record {
                event: "release".into(),
                who,
                agreement: id.clone(),
                dataset: record.dataset,
                part: Some(format!("delta-sharing:{part}")),
                rows,
                bytes,
            })
            .map_err(ApiError::internal)?;
        shared.contracts.record_released(&id, rows, bytes)?;
        Ok(())
    })
    .await??;
    Ok(HttpResponse::Ok()
        .insert_header(("Delta-Table-Version", VERSION))
        .content_type(NDJSON)
        .body(lines))
}

/// The signed query of a file URL.
#[derive(Debug, Deserialize)]
pub struct FileParams {
    /// Unix seconds after which the URL no longer works.
    pub expires: i64,
    /// The transfer the URL was issued for.
    pub transfer: String,
    /// The subject the URL was issued to.
    pub sub: String,
    /// The node's signature (hex HMAC-SHA-256).
    pub sig: String,
}

/// `GET|HEAD /delta-sharing/files/{share}/{n}`: one shard's Parquet bytes (single `Range`
/// requests answered `206`), to whoever holds a URL the node signed and that has not expired.
pub async fn file(
    node: web::Data<Node>,
    request: HttpRequest,
    path: web::Path<(String, usize)>,
    params: web::Query<FileParams>,
) -> Answer {
    let (share, n) = path.into_inner();
    let params = params.into_inner();
    let denied = || ApiError::forbidden("the file URL is not one this node signed, or it expired");
    let agreement = agreement_of(&share).ok_or_else(denied)?;
    let expected = url_signature(
        &url_key(&node, &agreement),
        &agreement,
        n,
        params.expires,
        &params.transfer,
        &params.sub,
    );
    let signed = expected.len() == params.sig.len()
        && expected
            .bytes()
            .zip(params.sig.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !signed || node.clock.now().timestamp() > params.expires {
        return Err(denied().into());
    }
    let dir = node.dataplane.shard_dir(&agreement);
    let shared = node.clone().into_inner();
    let body = web::block(move || -> Result<Vec<u8>, ApiError> {
        shared
            .contracts
            .permit(&params.sub, &agreement, &params.transfer)?;
        let manifest = shared
            .dataplane
            .manifest(&agreement)
            .ok_or_else(|| ApiError::not_found("the table's files are gone"))?;
        if n >= manifest.shards.len() {
            return Err(ApiError::not_found(format!("no file {n}")));
        }
        std::fs::read(shards::shard_path(&dir, n)).map_err(ApiError::internal)
    })
    .await??;
    let media = "application/vnd.apache.parquet";
    let range = request
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .filter(|_| request.method() != Method::HEAD);
    match range {
        None => Ok(HttpResponse::Ok()
            .insert_header((header::ACCEPT_RANGES, "bytes"))
            .content_type(media)
            .body(body)),
        Some(range) => {
            let (start, end) = byte_range(range, body.len()).ok_or_else(|| {
                ApiError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "range-not-satisfiable",
                    "Range not satisfiable",
                    format!(
                        "ask for one range within 0-{}",
                        body.len().saturating_sub(1)
                    ),
                )
            })?;
            Ok(HttpResponse::PartialContent()
                .insert_header((
                    header::CONTENT_RANGE,
                    format!("bytes {start}-{end}/{}", body.len()),
                ))
                .insert_header((header::ACCEPT_RANGES, "bytes"))
                .content_type(media)
                .body(body[start..=end].to_vec()))
        }
    }
}

/// Registers the Delta Sharing routes under `/delta-sharing`.
pub fn routes() -> actix_web::Scope {
    let table = "/shares/{share}/schemas/{schema}/tables/{table}";
    web::scope("/delta-sharing")
        .service(web::resource("/profile").get(profile))
        .service(web::resource("/shares").get(list_shares))
        .service(web::resource("/shares/{share}").get(get_share))
        .service(web::resource("/shares/{share}/schemas").get(list_schemas))
        .service(web::resource("/shares/{share}/schemas/{schema}/tables").get(list_tables))
        .service(web::resource("/shares/{share}/all-tables").get(list_all_tables))
        .service(
            web::resource(format!("{table}/version"))
                .route(web::get().to(version))
                .route(web::head().to(version)),
        )
        .service(web::resource(format!("{table}/metadata")).get(metadata))
        .service(web::resource(format!("{table}/query")).post(query))
        .service(
            web::resource("/files/{share}/{n}")
                .route(web::get().to(file))
                .route(web::head().to(file)),
        )
}
