//! The data plane's checks and accounting, one copy for every transport that releases data
//! (the HTTP routes of `http::data`, Delta Sharing, Arrow Flight): which data-plane token opens
//! which agreement, when a stream must stop because the token or the agreement expired, and
//! what is counted and audited, before release, for a stream and for a shard. A transport only
//! parses its request and frames the bytes; a second copy of these rules would drift.

use super::EngineError;
use super::enforce::{self, Narrowing};
use super::shards::{self, Manifest, Shard};
use crate::audit::Record;
use crate::catalog::CatalogError;
use crate::contract::{AgreementRecord, ContractError};
use crate::identity::AuthError;
use crate::node::Node;
use crate::policy::EnforcementPlan;
use chrono::{DateTime, Utc};
use datafusion::execution::SendableRecordBatchStream;
use std::path::PathBuf;
use std::sync::Arc;

/// Why the data plane refuses or fails a request, whichever transport carried it; each
/// variant says whose fault it is (the caller's token, the agreement, the dataset, the node).
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// No valid data-plane token: the caller must present one (HTTP 401, gRPC UNAUTHENTICATED).
    #[error(transparent)]
    Unauthenticated(#[from] AuthError),
    /// A valid token that does not open this (HTTP 403, gRPC PERMISSION_DENIED).
    #[error("{0}")]
    Forbidden(String),
    /// The agreement or transfer refuses the release (ended, expired, over its budget, not ours).
    #[error(transparent)]
    Contract(#[from] ContractError),
    /// The catalogue could not say where the dataset is.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The request, the policy or the dataset's files.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// No such shard.
    #[error("{0}")]
    NotFound(String),
    /// A fault of the node (the audit log, a worker thread).
    #[error("internal data-plane error: {0}")]
    Internal(String),
}

impl AccessError {
    fn internal(error: impl std::fmt::Display) -> Self {
        Self::Internal(error.to_string())
    }
}

/// What a valid data-plane token grants: pulls by `subject` under `agreement` while
/// `transfer` runs, until `expires` (Unix seconds).
#[derive(Debug, Clone)]
pub struct Grant {
    /// The consumer the token was issued to.
    pub subject: String,
    /// The one agreement it opens.
    pub agreement: String,
    /// The transfer process it belongs to; it must still be STARTED.
    pub transfer: String,
    /// When the token expires (Unix seconds): streams stop there too.
    pub expires: i64,
}

/// The token of an `Authorization: Bearer <token>` value (HTTP header or gRPC metadata).
pub fn bearer(authorization: Option<&str>) -> Result<&str, AuthError> {
    let value = authorization.ok_or(AuthError::Missing)?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or(AuthError::Missing)?;
    Ok(token.trim())
}

/// Checks a data-plane token against the node's own key and binds it to `agreement`: it must
/// be a data-plane token (not a participant's), name this agreement and a transfer.
/// Whether the transfer still runs is checked by the contract calls that follow.
pub fn grant(node: &Node, token: &str, agreement: &str) -> Result<Grant, AccessError> {
    let principal = node.data_tokens.validate(token)?;
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
        return Err(AccessError::Forbidden(
            "the token is bound to another agreement".into(),
        ));
    }
    let transfer = claim("transfer")
        .ok_or_else(|| AccessError::Forbidden("the token names no transfer".into()))?;
    Ok(Grant {
        subject: principal.subject,
        agreement: agreement.to_owned(),
        transfer,
        expires: principal.expires,
    })
}

/// Runs blocking store or file work off the async executor.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, AccessError> + Send + 'static,
) -> Result<T, AccessError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(AccessError::internal)?
}

/// Where a dataset's files are (re-checked against the allowed roots, every Parquet file
/// validated in a confined child before first use) and their format. Blocking.
pub fn dataset_source(node: &Node, dataset: &str) -> Result<(PathBuf, String), AccessError> {
    let connector = node
        .catalog
        .record(dataset)?
        .and_then(|r| r.connector)
        .ok_or_else(|| EngineError::Source("the dataset has no data on this node".into()))?;
    let path = node.dataplane.resolve(&connector)?;
    node.dataplane.check_source(&path, &connector.format)?;
    Ok((path, connector.format))
}

/// A contract check of the agreement behind a grant (`Contracts::release`, `permit`, …).
pub(crate) type Check = fn(
    &crate::contract::Contracts,
    &str,
    &str,
    &str,
) -> crate::contract::Result<(AgreementRecord, EnforcementPlan)>;

/// Runs `check` for the grant's subject, agreement and transfer, then resolves (and validates)
/// the dataset's files, off the async executor: the first step of every release.
pub(crate) async fn authorised_source(
    node: &Arc<Node>,
    grant: &Grant,
    check: Check,
) -> Result<(AgreementRecord, EnforcementPlan, PathBuf, String), AccessError> {
    let shared = node.clone();
    let (who, id, part) = (
        grant.subject.clone(),
        grant.agreement.clone(),
        grant.transfer.clone(),
    );
    blocking(move || {
        let (record, plan) = check(&shared.contracts, &who, &id, &part)?;
        let (path, format) = dataset_source(&shared, &record.dataset)?;
        Ok((record, plan, path, format))
    })
    .await
}

/// The instant a release must stop: the token's expiry or the agreement's, whichever is first.
pub fn deadline(grant: &Grant, record: &AgreementRecord) -> DateTime<Utc> {
    let agreement_expires = record
        .expires
        .as_deref()
        .and_then(|e| DateTime::parse_from_rfc3339(e).ok())
        .map(|e| e.with_timezone(&Utc));
    let token_deadline = DateTime::from_timestamp(grant.expires, 0).unwrap_or_else(Utc::now);
    agreement_expires.map_or(token_deadline, |a| a.min(token_deadline))
}

/// The message of a stream stopped by [`Meter::check`].
pub const EXPIRED_DURING_STREAM: &str =
    "the data-plane token or the agreement expired during the stream";

/// A stream of the enforced view, opened under a grant, and the meter that accounts for it.
pub struct Opened {
    /// The enforced record batches.
    pub batches: SendableRecordBatchStream,
    /// Counts what is sent, stops at the deadline, settles and audits at the end.
    pub meter: Meter,
}

/// Opens a stream of the enforced view: the contract counts the pull and reserves the row
/// budget (transfer STARTED, agreement in force), the audit log records `release-started`
/// before any row is read, and a stream that fails to open gives its reservation back.
pub async fn open_stream(
    node: Arc<Node>,
    grant: &Grant,
    narrowing: &Narrowing,
    part: &str,
) -> Result<Opened, AccessError> {
    let (record, plan, path, format) =
        authorised_source(&node, grant, crate::contract::Contracts::release).await?;
    let (shared, started) = (
        node.clone(),
        Record {
            event: "release-started".into(),
            who: grant.subject.clone(),
            agreement: record.id.clone(),
            dataset: record.dataset.clone(),
            part: Some(grant.transfer.clone()),
            ..Record::default()
        },
    );
    blocking(move || shared.audit.append(started).map_err(AccessError::internal)).await?;
    let key = node.dataplane.agreement_key(&record.id);
    let source = node.dataplane.source(&path, &format);
    // The stream holds a reservation of the row budget; a pull that fails before it starts
    // gives it back.
    let reserved = plan.row_budget.unwrap_or(0);
    let opened = match enforce::enforced_view(&source, &plan, key, narrowing).await {
        Ok(view) => enforce::execute(view).await,
        Err(error) => Err(error),
    };
    let batches = match opened {
        Ok(batches) => batches,
        Err(error) => {
            let (shared, id) = (node.clone(), record.id.clone());
            let _ = blocking(move || Ok(shared.contracts.settle(&id, reserved, 0, 0)?)).await;
            return Err(error.into());
        }
    };
    let meter = Meter::new(
        node,
        deadline(grant, &record),
        (grant.subject.clone(), record.id, record.dataset),
        part,
        reserved,
    );
    Ok(Opened { batches, meter })
}

/// The accounting of one stream: rows and bytes sent, the deadline, and the row reservation it
/// holds. Finishing settles the reservation against what was sent and audits `release`; a meter
/// dropped before that (client gone, expiry, read error) still settles and audits
/// `release-ended-early`.
pub struct Meter {
    node: Arc<Node>,
    deadline: DateTime<Utc>,
    who: String,
    agreement: String,
    dataset: String,
    part: String,
    reserved: u64,
    rows: u64,
    bytes: u64,
    recorded: bool,
}

impl Meter {
    /// A meter for a stream released to `who` under `agreement` of `dataset`.
    pub fn new(
        node: Arc<Node>,
        deadline: DateTime<Utc>,
        (who, agreement, dataset): (String, String, String),
        part: &str,
        reserved: u64,
    ) -> Self {
        Self {
            node,
            deadline,
            who,
            agreement,
            dataset,
            part: part.to_owned(),
            reserved,
            rows: 0,
            bytes: 0,
            recorded: false,
        }
    }

    /// The agreement it releases under.
    pub fn agreement(&self) -> &str {
        &self.agreement
    }

    /// Refuses to send more once the token or the agreement expired.
    pub fn check(&self) -> Result<(), AccessError> {
        if self.node.clock.now() > self.deadline {
            tracing::info!(agreement = %self.agreement, "stream ended: the token or the agreement expired");
            return Err(AccessError::Forbidden(EXPIRED_DURING_STREAM.into()));
        }
        Ok(())
    }

    /// Counts rows about to be sent.
    pub fn add_rows(&mut self, rows: u64) {
        self.rows += rows;
    }

    /// Counts bytes about to be sent.
    pub fn add_bytes(&mut self, bytes: u64) {
        self.bytes += bytes;
    }

    fn record(&self, event: &str) -> Record {
        Record {
            event: event.into(),
            who: self.who.clone(),
            agreement: self.agreement.clone(),
            dataset: self.dataset.clone(),
            part: Some(self.part.clone()),
            rows: self.rows,
            bytes: self.bytes,
        }
    }

    /// The stream ended normally: settle and audit `release`.
    pub async fn finish(mut self) {
        self.recorded = true;
        let (node, record, reserved) = (self.node.clone(), self.record("release"), self.reserved);
        let _ = tokio::task::spawn_blocking(move || settle(&node, record, reserved)).await;
    }
}

/// Settles what a stream released against the reservation it held, and audits it.
fn settle(node: &Node, record: Record, reserved: u64) {
    if let Err(error) =
        node.contracts
            .settle(&record.agreement, reserved, record.rows, record.bytes)
    {
        tracing::error!(%error, "could not count a release against its agreement");
    }
    if let Err(error) = node.audit.append(record) {
        tracing::error!(%error, "could not audit a release");
    }
}

impl Drop for Meter {
    /// A stream that ends early (the client went away, the agreement expired, a read failed)
    /// still counts what it sent.
    fn drop(&mut self) {
        if self.recorded {
            return;
        }
        self.recorded = true;
        let (node, record, reserved) = (
            self.node.clone(),
            self.record("release-ended-early"),
            self.reserved,
        );
        tokio::task::spawn_blocking(move || settle(&node, record, reserved));
    }
}

/// The agreement's shards, cut on first use (that first cut is the counted pull); reading them
/// again needs the agreement in force and the transfer STARTED, and counts nothing.
pub async fn shard_manifest(node: &Arc<Node>, grant: &Grant) -> Result<Arc<Manifest>, AccessError> {
    let shared = node.clone();
    let (who, id, part) = (
        grant.subject.clone(),
        grant.agreement.clone(),
        grant.transfer.clone(),
    );
    blocking(move || Ok(shared.contracts.permit(&who, &id, &part)?)).await?;
    cut_shards(node, grant).await
}

/// The manifest for a request that checks the agreement itself before it sends anything (a
/// shard fetch charges or permits in the same step that reads the file): once the shards are
/// cut, the manifest comes from memory without a second agreement check; before, cutting them
/// checks it as [`shard_manifest`] does.
pub async fn manifest_for_release(
    node: &Arc<Node>,
    grant: &Grant,
) -> Result<Arc<Manifest>, AccessError> {
    match node.dataplane.manifest(&grant.agreement) {
        Some(manifest) => Ok(manifest),
        None => shard_manifest(node, grant).await,
    }
}

/// The manifest, cutting the shards if no request has yet; the caller checked the agreement.
async fn cut_shards(node: &Arc<Node>, grant: &Grant) -> Result<Arc<Manifest>, AccessError> {
    if let Some(manifest) = node.dataplane.manifest(&grant.agreement) {
        return Ok(manifest);
    }
    let _cutting = node.dataplane.shard_lock.lock().await;
    if let Some(manifest) = node.dataplane.manifest(&grant.agreement) {
        return Ok(manifest);
    }
    let (record, plan, path, format) =
        authorised_source(node, grant, crate::contract::Contracts::release_for_shards).await?;
    let key = node.dataplane.agreement_key(&record.id);
    let source = node.dataplane.source(&path, &format);
    let view = enforce::enforced_view(&source, &plan, key, &Narrowing::default()).await?;
    let batches = enforce::execute(view).await?;
    let dir = node.dataplane.shard_dir(&grant.agreement);
    shards::materialise(batches, &dir).await?;
    node.dataplane.manifest(&grant.agreement).ok_or_else(|| {
        AccessError::internal("the shards were cut but their manifest cannot be read")
    })
}

/// How a shard is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardForm {
    /// The Parquet file as cut (its SHA-256 is the manifest's).
    Parquet,
    /// Its rows as an Arrow IPC stream.
    ArrowIpc,
}

/// What one shard request sends.
#[derive(Debug)]
pub struct ReleasedShard {
    /// The shard, as the manifest lists it.
    pub shard: Shard,
    /// Its bytes in the requested form.
    pub body: Vec<u8>,
}

/// Reads shard `n` for one request, with one agreement check. A request that sends the shard
/// from its first byte (`charged`: a whole `GET`, or a range from 0) is audited and counted
/// before the bytes leave ([`charge_shard`]); `HEAD` and later ranges of a fetch already
/// charged are checked only.
pub async fn release_shard(
    node: &Arc<Node>,
    grant: &Grant,
    n: usize,
    form: ShardForm,
    charged: bool,
) -> Result<ReleasedShard, AccessError> {
    let manifest = manifest_for_release(node, grant).await?;
    let shard = shard(&manifest, n)?;
    let file = shards::shard_path(&node.dataplane.shard_dir(&grant.agreement), n);
    let (node, grant) = (node.clone(), grant.clone());
    blocking(move || {
        let bytes = std::fs::read(&file).map_err(AccessError::internal)?;
        let body = match form {
            ShardForm::Parquet => bytes,
            ShardForm::ArrowIpc => parquet_to_ipc(bytes)?,
        };
        if charged {
            let part = format!("shard-{n}");
            charge_shard(&node, &grant, part, shard.rows as u64, body.len() as u64)?;
        } else {
            node.contracts
                .permit(&grant.subject, &grant.agreement, &grant.transfer)?;
        }
        Ok(ReleasedShard { shard, body })
    })
    .await
}

/// A shard's Parquet bytes as an Arrow IPC stream.
fn parquet_to_ipc(bytes: Vec<u8>) -> Result<Vec<u8>, AccessError> {
    use datafusion::arrow::ipc::writer::StreamWriter;
    use datafusion::arrow::record_batch::RecordBatchReader as _;
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
        .and_then(|b| b.build())
        .map_err(AccessError::internal)?;
    let schema = reader.schema();
    let mut writer = StreamWriter::try_new(Vec::new(), &schema).map_err(AccessError::internal)?;
    for batch in reader {
        writer
            .write(&batch.map_err(AccessError::internal)?)
            .map_err(AccessError::internal)?;
    }
    writer.finish().map_err(AccessError::internal)?;
    writer.into_inner().map_err(AccessError::internal)
}

/// The schema of the enforced view, planned without reading a row or counting anything (the
/// agreement must still permit use).
pub async fn enforced_schema(
    node: &Arc<Node>,
    grant: &Grant,
) -> Result<datafusion::arrow::datatypes::SchemaRef, AccessError> {
    let (record, plan, path, format) =
        authorised_source(node, grant, crate::contract::Contracts::permit).await?;
    let key = node.dataplane.agreement_key(&record.id);
    let source = node.dataplane.source(&path, &format);
    let view = enforce::enforced_view(&source, &plan, key, &Narrowing::default()).await?;
    Ok(Arc::new(view.schema().as_arrow().clone()))
}

/// Shard `n` of a manifest, or a not-found that says how many there are.
pub fn shard(manifest: &Manifest, n: usize) -> Result<Shard, AccessError> {
    manifest.shards.get(n).cloned().ok_or_else(|| {
        AccessError::NotFound(format!(
            "shard {n} does not exist; this agreement has {} shards",
            manifest.shards.len()
        ))
    })
}

/// Charges a shard (or part of one) about to be sent: the agreement must still permit use
/// (transfer STARTED, in force), the audit log records the `release` of `part` before a byte
/// leaves, and the rows and bytes count against the agreement's budgets. Blocking: call it
/// off the async executor.
pub fn charge_shard(
    node: &Node,
    grant: &Grant,
    part: String,
    rows: u64,
    bytes: u64,
) -> Result<(AgreementRecord, EnforcementPlan), AccessError> {
    let (record, plan) =
        node.contracts
            .permit(&grant.subject, &grant.agreement, &grant.transfer)?;
    node.audit
        .append(Record {
            event: "release".into(),
            who: grant.subject.clone(),
            agreement: grant.agreement.clone(),
            dataset: record.dataset.clone(),
            part: Some(part),
            rows,
            bytes,
        })
        .map_err(AccessError::internal)?;
    node.contracts
        .record_released(&grant.agreement, rows, bytes)?;
    Ok((record, plan))
}
