//! Applying an enforcement plan to a dataset's files with DataFusion: the agreed policy becomes
//! the bottom of the logical plan (row filters on the raw columns, then one projection that
//! drops, pseudonymises and generalises), and whatever the consumer asks for (columns, a limit)
//! is planned on top of that projection, so it can only narrow what the policy releases. No SQL
//! text is ever built from policy values: every expression is constructed with the DataFrame
//! API and typed literals.
//!
//! Pseudonyms are HMAC-SHA-256 over the value's text form, keyed per agreement (derived from
//! the node's secret and the agreement id), so one consumer can join its own rows but two
//! consumers cannot link theirs.

use super::EngineError;
use super::generalise::{TruncateTime, Unit};
use crate::policy::{ColumnValue, EnforcementPlan, FilterOperator, Granularity};
use datafusion::arrow::array::{Array, ArrayRef, StringArray};
use datafusion::arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::object_store::ObjectStoreRegistry;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::{
    CsvReadOptions, DataFrame, Expr, JsonReadOptions, ParquetReadOptions, SessionConfig,
    SessionContext, col, lit,
};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;

/// What a consumer adds to a pull: it can only narrow the enforced view.
#[derive(Debug, Clone, Default)]
pub struct Narrowing {
    /// Only these released columns, in this order.
    pub columns: Option<Vec<String>>,
    /// Only rows whose released values satisfy all of these.
    pub filters: Vec<ConsumerFilter>,
    /// At most this many rows.
    pub limit: Option<usize>,
}

/// A condition a consumer puts on released values: `column op value`, written
/// `column:op:value` in a query string (`op` one of eq, neq, lt, lteq, gt, gteq).
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerFilter {
    /// A released column.
    pub column: String,
    /// The comparison.
    pub operator: FilterOperator,
    /// The value as written; it is read as the column's type.
    pub value: String,
}

impl std::str::FromStr for ConsumerFilter {
    type Err = EngineError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut parts = text.splitn(3, ':');
        let (Some(column), Some(operator), Some(value)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(EngineError::BadRequest(format!(
                "a filter is column:op:value (op: eq, neq, lt, lteq, gt, gteq), not `{}`",
                text.chars().take(80).collect::<String>()
            )));
        };
        let operator = match operator {
            "eq" => FilterOperator::Eq,
            "neq" => FilterOperator::Neq,
            "lt" => FilterOperator::Lt,
            "lteq" => FilterOperator::Lteq,
            "gt" => FilterOperator::Gt,
            "gteq" => FilterOperator::Gteq,
            other => {
                return Err(EngineError::BadRequest(format!(
                    "unknown filter operator `{}`; use eq, neq, lt, lteq, gt or gteq",
                    other.chars().take(20).collect::<String>()
                )));
            }
        };
        Ok(Self {
            column: column.to_owned(),
            operator,
            value: value.to_owned(),
        })
    }
}

/// The source files of a dataset: a folder or file, and its format.
#[derive(Debug, Clone)]
pub struct Source<'a> {
    /// The resolved path (already checked to lie inside an allowed root).
    pub path: &'a Path,
    /// `parquet`, `csv` or `ndjson`.
    pub format: &'a str,
    /// The object stores the path may name (the node's S3 sources, the local file system).
    pub stores: Arc<dyn ObjectStoreRegistry>,
}

/// HMAC-SHA-256 (RFC 2104) of `message` under `key`.
pub fn hmac_sha256(key: &[u8; 32], message: &[u8]) -> [u8; 32] {
    Hmac::new(key).mac(message)
}

/// An HMAC-SHA-256 key with its two padded blocks already absorbed: each message then costs
/// two hash compressions fewer, which is most of the work for short values such as the
/// identifiers the data plane pseudonymises row by row.
#[derive(Clone)]
struct Hmac {
    inner: Sha256,
    outer: Sha256,
}

impl Hmac {
    fn new(key: &[u8; 32]) -> Self {
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(key);
        let pad = |byte: u8| block.map(|b| b ^ byte);
        Self {
            inner: Sha256::new().chain_update(pad(0x36)),
            outer: Sha256::new().chain_update(pad(0x5c)),
        }
    }

    fn mac(&self, message: &[u8]) -> [u8; 32] {
        let inner = self.inner.clone().chain_update(message).finalize();
        self.outer.clone().chain_update(inner).finalize().into()
    }
}

/// The pseudonymisation key of one agreement: HMAC of its id under the node's secret.
pub fn agreement_key(secret: &[u8; 32], agreement: &str) -> [u8; 32] {
    hmac_sha256(secret, format!("agora-pseudonym:{agreement}").as_bytes())
}

/// The scalar function that replaces a value by its keyed pseudonym (hex, 32 characters);
/// nulls stay null.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Pseudonymise {
    key: [u8; 32],
    signature: Signature,
}

impl ScalarUDFImpl for Pseudonymise {
    fn name(&self) -> &str {
        "agora_pseudonymise"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        let [value] = args.args.as_slice() else {
            return Err(datafusion::common::DataFusionError::Internal(
                "agora_pseudonymise takes one argument".into(),
            ));
        };
        let keyed = Hmac::new(&self.key);
        let pseudonym = |text: &str| hex::encode(&keyed.mac(text.as_bytes())[..16]);
        match value {
            ColumnarValue::Array(array) => {
                let text = cast(array, &DataType::Utf8)?;
                let text = text.as_any().downcast_ref::<StringArray>().ok_or_else(|| {
                    datafusion::common::DataFusionError::Internal(
                        "cast to Utf8 gave another array type".into(),
                    )
                })?;
                let pseudonyms = pseudonymise_column(&keyed, text)?;
                Ok(ColumnarValue::Array(Arc::new(pseudonyms) as ArrayRef))
            }
            ColumnarValue::Scalar(scalar) => {
                let text = scalar.cast_to(&DataType::Utf8)?;
                Ok(ColumnarValue::Scalar(match text {
                    ScalarValue::Utf8(Some(s)) => ScalarValue::Utf8(Some(pseudonym(&s))),
                    _ => ScalarValue::Utf8(None),
                }))
            }
        }
    }
}

/// Hex digits in one pseudonym (the first 16 bytes of the HMAC).
const PSEUDONYM_LEN: usize = 32;

/// Values below which one thread hashes a whole column: starting a thread (about 20 µs) costs
/// as much as hashing about 150 short identifiers, and a batch that a row filter has thinned
/// (8,192 rows read, some thousands kept) must still be split.
const VALUES_PER_THREAD: usize = 1024;

/// The pseudonyms of a column of text, nulls kept. Every pseudonym has the same length, so the
/// offsets are known before any hashing, and the column's rows are split across the machine's
/// cores, each hashing into its own part of one shared buffer. The column stays in row order and
/// the single query partition (which keeps the files' order for shards and resumes) is not the
/// limit on a pseudonymised pull: the hashing is most of its cost.
fn pseudonymise_column(
    keyed: &Hmac,
    text: &StringArray,
) -> datafusion::common::Result<StringArray> {
    let rows = text.len();
    let mut offsets = Vec::with_capacity(rows + 1);
    let mut end = 0usize;
    offsets.push(0i32);
    for row in 0..rows {
        if text.is_valid(row) {
            end += PSEUDONYM_LEN;
        }
        offsets.push(i32::try_from(end).map_err(|_| {
            datafusion::common::DataFusionError::Execution(
                "a batch too large to pseudonymise in one string column".into(),
            )
        })?);
    }
    let mut digits = vec![0u8; end];
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(rows / VALUES_PER_THREAD)
        .max(1);
    let hash_rows = |first: usize, last: usize, out: &mut [u8]| {
        let mut at = 0;
        for row in first..last {
            if text.is_valid(row) {
                let mac = keyed.mac(text.value(row).as_bytes());
                // 16 bytes always fit 32 hex digits.
                let _ = hex::encode_to_slice(&mac[..16], &mut out[at..at + PSEUDONYM_LEN]);
                at += PSEUDONYM_LEN;
            }
        }
    };
    if threads == 1 {
        hash_rows(0, rows, &mut digits);
    } else {
        let per_thread = rows.div_ceil(threads);
        std::thread::scope(|scope| {
            let mut rest = digits.as_mut_slice();
            let mut first = 0;
            while first < rows {
                let last = (first + per_thread).min(rows);
                let bytes = offsets[last] as usize - offsets[first] as usize;
                let (part, tail) = rest.split_at_mut(bytes);
                rest = tail;
                if last == rows {
                    hash_rows(first, last, part);
                } else {
                    let hash_rows = &hash_rows;
                    scope.spawn(move || hash_rows(first, last, part));
                }
                first = last;
            }
        });
    }
    StringArray::try_new(
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        Buffer::from_vec(digits),
        text.nulls().cloned(),
    )
    .map_err(Into::into)
}

fn literal(value: &ColumnValue) -> Expr {
    match value {
        ColumnValue::Boolean(b) => lit(*b),
        ColumnValue::Integer(i) => lit(*i),
        // + 0.0: -0.0 is 0.0 (policies compare numbers, not bit patterns).
        ColumnValue::Decimal(d) => lit(d.parse::<f64>().unwrap_or(f64::NAN) + 0.0),
        ColumnValue::Double(d) => lit(*d + 0.0),
        ColumnValue::Date(d) => {
            let days = d
                .signed_duration_since(chrono::NaiveDate::default())
                .num_days();
            lit(ScalarValue::Date32(Some(
                i32::try_from(days).unwrap_or(i32::MAX),
            )))
        }
        ColumnValue::Timestamp(t) => lit(ScalarValue::TimestampMillisecond(
            Some(t.timestamp_millis()),
            None,
        )),
        ColumnValue::Text(s) => lit(s.clone()),
    }
}

fn filter_expr(
    column: &str,
    data_type: &DataType,
    operator: FilterOperator,
    values: &[ColumnValue],
) -> Option<Expr> {
    let first = values.first().map(literal)?;
    // A null never satisfies a release condition.
    let mut guard = col(quoted(column)).is_not_null();
    let mut target = col(quoted(column));
    if data_type.is_floating() {
        // Arrow compares floats by IEEE total order: NaN above every number (so `gt`, `gteq`,
        // `neq` and `isNoneOf` would release it) and -0.0 below 0.0 (so `lt 0` would release
        // a zero). A policy's comparison is numeric (XSD): NaN satisfies none, like a null, and
        // -0.0 is 0.0, which adding 0.0 makes it (the simplifier has no rule that drops it).
        guard = guard.and(!datafusion::functions::expr_fn::isnan(col(quoted(column))));
        target = target + lit(0.0_f64);
        // A policy comparing with NaN releases nothing (total order would release everything
        // below it).
        if values.iter().any(is_nan) {
            return Some(lit(false));
        }
    }
    let all: Vec<Expr> = values.iter().map(literal).collect();
    let compared = match operator {
        FilterOperator::Eq => target.eq(first),
        FilterOperator::Neq => target.not_eq(first),
        FilterOperator::Lt => target.lt(first),
        FilterOperator::Lteq => target.lt_eq(first),
        FilterOperator::Gt => target.gt(first),
        FilterOperator::Gteq => target.gt_eq(first),
        FilterOperator::IsAnyOf => target.in_list(all, false),
        FilterOperator::IsNoneOf => target.in_list(all, true),
    };
    Some(guard.and(compared))
}

/// Whether a policy value is a floating-point NaN (`"NaN"^^xsd:double`, or a decimal that
/// does not parse, which [`literal`] reads as NaN).
fn is_nan(value: &ColumnValue) -> bool {
    match value {
        ColumnValue::Double(d) => d.is_nan(),
        ColumnValue::Decimal(d) => match d.parse::<f64>() {
            Ok(v) => v.is_nan(),
            Err(_) => true,
        },
        _ => false,
    }
}

/// A column reference that keeps the name's case and punctuation.
pub(crate) fn quoted(name: &str) -> datafusion::common::Column {
    datafusion::common::Column::new_unqualified(name)
}

fn generalised(column: &str, granularity: Granularity, data_type: &DataType) -> Expr {
    let source = col(quoted(column));
    match granularity {
        Granularity::Grid { degrees } => {
            datafusion::functions::expr_fn::floor(source / lit(degrees)) * lit(degrees)
        }
        time => {
            let (unit, name) = match time {
                Granularity::Year => (Unit::Year, "year"),
                Granularity::Month => (Unit::Month, "month"),
                Granularity::Day => (Unit::Day, "day"),
                _ => (Unit::Hour, "hour"),
            };
            if super::generalise::handles(data_type) {
                return ScalarUDF::from(TruncateTime::new(unit)).call(vec![source]);
            }
            // Timestamps with a time zone: date_trunc knows the zone's rules.
            let truncated = datafusion::functions::expr_fn::date_trunc(lit(name), source);
            Expr::Cast(datafusion::logical_expr::Cast::new(
                Box::new(truncated),
                data_type.clone(),
            ))
        }
    }
}

/// The fence's limit (see `released_view`): more rows than any source has. Not `usize::MAX`,
/// which DataFusion stores as an `i64` literal and then reads back as -1.
const NEVER_BINDS: usize = i64::MAX as usize;

/// The memory one data-plane query may hold (hash tables of an aggregate, sort buffers): past
/// it the query fails with a request error instead of growing the node.
const QUERY_MEMORY_LIMIT: usize = 512 << 20;

/// The enforced view of a source under `plan`, narrowed by the consumer: the DataFrame to
/// execute. `key` is the agreement's pseudonymisation key.
pub async fn enforced_view(
    source: &Source<'_>,
    plan: &EnforcementPlan,
    key: [u8; 32],
    narrowing: &Narrowing,
) -> Result<DataFrame, EngineError> {
    let released = released_view(source, plan, key).await?;
    let mut view = filtered(released.view, &released.plan, &narrowing.filters)?;
    if let Some(wanted) = &narrowing.columns {
        let available: Vec<String> = view
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        if let Some(unknown) = wanted.iter().find(|c| !available.contains(c)) {
            return Err(EngineError::BadRequest(format!(
                "column `{unknown}` is not released under this agreement; released columns: {}",
                available.join(", ")
            )));
        }
        view = view
            .select(wanted.iter().map(|c| col(quoted(c))).collect::<Vec<_>>())
            .map_err(internal)?;
    }
    let budget = released
        .plan
        .row_budget
        .map(|b| usize::try_from(b).unwrap_or(usize::MAX));
    let limit = match (narrowing.limit, budget) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if let Some(limit) = limit {
        view = view.limit(0, Some(limit)).map_err(internal)?;
    }
    Ok(view)
}

/// What the policy releases of a source, before anything the consumer asks for.
pub(crate) struct Released {
    /// Row filters, then one projection (drop, pseudonymise, generalise).
    pub view: DataFrame,
    /// The plan bound to the source's schema.
    pub plan: EnforcementPlan,
}

/// Builds the policy part of every data-plane query: the source's rows filtered by the policy on
/// their raw values, then one projection of what the policy releases, in released form.
pub(crate) async fn released_view(
    source: &Source<'_>,
    plan: &EnforcementPlan,
    key: [u8; 32],
) -> Result<Released, EngineError> {
    // One partition keeps the row order of the files (the shards and resumable pulls rely on
    // it); view types are off so that released columns keep the files' own types (utf8, not
    // utf8view), which every Arrow and Parquet reader understands.
    let mut config = SessionConfig::new().with_target_partitions(1).set_bool(
        "datafusion.execution.parquet.schema_force_view_types",
        false,
    );
    // A hash join's dynamic filter drops the rows of NaN keys from a Parquet probe side
    // (DataFusion 55; the R22 differential found it with a self-join on a float column): a
    // plan over the view would then see fewer rows than the view holds. The data plane plans
    // no join today; the option is off so that no plan above the view ever does.
    config
        .options_mut()
        .optimizer
        .enable_join_dynamic_filter_pushdown = false;
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_limit(QUERY_MEMORY_LIMIT, 1.0)
        .with_object_store_registry(source.stores.clone())
        .build_arc()
        .map_err(internal)?;
    let context = SessionContext::new_with_config_rt(config, runtime);
    let path = source.path.to_string_lossy().into_owned();
    // Hive-partitioned folders (`key=value/…`) give their keys as columns, local or remote.
    let extension = match source.format {
        "parquet" => ".parquet",
        "csv" => ".csv",
        _ => ".json",
    };
    let partitions = super::remote::hive_partitions(&context, &path, extension).await?;
    let raw = match source.format {
        "parquet" => {
            let options = ParquetReadOptions::default().table_partition_cols(partitions);
            context.read_parquet(path, options).await
        }
        "csv" => {
            let options = CsvReadOptions::new().table_partition_cols(partitions);
            context.read_csv(path, options).await
        }
        "ndjson" | "json" => {
            let options = JsonReadOptions::default().table_partition_cols(partitions);
            context.read_json(path, options).await
        }
        other => {
            return Err(EngineError::Source(format!(
                "the connector's format `{other}` is not one the node reads (parquet, csv, ndjson)"
            )));
        }
    }
    .map_err(|e| EngineError::Source(format!("the dataset's files cannot be read: {e}")))?;
    let schema: SchemaRef = Arc::new(raw.schema().as_arrow().clone());
    let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let plan = plan
        .clone()
        .for_schema(&columns)
        .map_err(|e| EngineError::Policy(e.to_string()))?;

    // 1. Row filters, on the raw values, before anything else.
    let mut view = raw;
    for filter in &plan.row_filters {
        let data_type = schema
            .field_with_name(&filter.column)
            .map(|f| f.data_type().clone())
            .map_err(|e| EngineError::Policy(e.to_string()))?;
        if let Some(condition) =
            filter_expr(&filter.column, &data_type, filter.operator, &filter.values)
        {
            view = view.filter(condition).map_err(internal)?;
        }
    }
    // 1b. A fence between the policy's rows and everything planned above: DataFusion's
    // optimiser merges a consumer's filter into the policy's (the conjunction is then evaluated
    // on every row of a batch, hidden ones included, whenever the policy keeps more than a
    // fifth of it), so a consumer expression that fails on some value (`100 / (age - 50)`)
    // would fail because of a row the policy hides: an oracle (R22). No optimiser rule moves a
    // filter below a limit (that would change the result), and a limit that can never bind
    // changes nothing else; the consumer's filters are still pushed below the released
    // projection, so pseudonyms are computed only for the rows they keep.
    view = view.limit(0, Some(NEVER_BINDS)).map_err(internal)?;
    // 2. One projection: what the policy releases, and in which form.
    let udf = ScalarUDF::from(Pseudonymise {
        key,
        signature: Signature::any(1, Volatility::Immutable),
    });
    let mut released = Vec::new();
    for field in schema.fields() {
        let name = field.name();
        if plan.dropped_columns.contains(name) {
            continue;
        }
        let expr = if plan.pseudonymised_columns.contains(name) {
            udf.call(vec![col(quoted(name))])
        } else if let Some(g) = plan.generalisations.iter().find(|g| &g.column == name) {
            generalised(name, g.granularity, field.data_type())
        } else {
            col(quoted(name))
        };
        released.push(expr.alias(name));
    }
    view = view.select(released).map_err(internal)?;
    Ok(Released { view, plan })
}

/// The consumer's filters, above the policy: they compare released values (a generalised date
/// with the generalised date); a pseudonymised column cannot be filtered at all, so no
/// comparison can probe for the value behind a pseudonym.
pub(crate) fn filtered(
    mut view: DataFrame,
    plan: &EnforcementPlan,
    filters: &[ConsumerFilter],
) -> Result<DataFrame, EngineError> {
    for filter in filters {
        if plan.pseudonymised_columns.contains(&filter.column) {
            return Err(EngineError::BadRequest(format!(
                "column `{}` is pseudonymised under this agreement and cannot be filtered",
                filter.column
            )));
        }
        let field = view
            .schema()
            .fields()
            .iter()
            .find(|f| f.name() == &filter.column)
            .cloned()
            .ok_or_else(|| {
                EngineError::BadRequest(format!(
                    "column `{}` is not released under this agreement",
                    filter.column
                ))
            })?;
        let value = ScalarValue::try_from_string(filter.value.clone(), field.data_type()).map_err(
            |_| {
                EngineError::BadRequest(format!(
                    "`{}` is not a value of column `{}` ({})",
                    filter.value.chars().take(80).collect::<String>(),
                    filter.column,
                    field.data_type()
                ))
            },
        )?;
        let target = col(quoted(&filter.column));
        let value = lit(value);
        let condition = match filter.operator {
            FilterOperator::Eq => target.eq(value),
            FilterOperator::Neq => target.not_eq(value),
            FilterOperator::Lt => target.lt(value),
            FilterOperator::Lteq => target.lt_eq(value),
            FilterOperator::Gt => target.gt(value),
            FilterOperator::Gteq => target.gt_eq(value),
            FilterOperator::IsAnyOf | FilterOperator::IsNoneOf => {
                return Err(EngineError::BadRequest(
                    "consumer filters compare with one value".into(),
                ));
            }
        };
        view = view.filter(condition).map_err(internal)?;
    }
    Ok(view)
}

/// Executes a view as a stream of record batches.
///
/// The stream is guarded: a panic while decoding (arrow-rs still panics on some malformed
/// Parquet, SECURITY.md §9) ends this stream with an error instead of unwinding through the
/// HTTP or gRPC worker, for files the child validator never saw (object storage) or that
/// changed after it did.
pub async fn execute(view: DataFrame) -> Result<SendableRecordBatchStream, EngineError> {
    let inner = view
        .execute_stream()
        .await
        .map_err(|e| EngineError::Source(format!("the dataset's files cannot be read: {e}")))?;
    Ok(Box::pin(PanicGuard {
        schema: inner.schema(),
        inner: Some(inner),
    }))
}

/// Collects a view (an aggregate's few rows) with the same guard as [`execute`].
pub async fn collect(
    view: DataFrame,
) -> Result<Vec<datafusion::arrow::array::RecordBatch>, datafusion::common::DataFusionError> {
    use futures_util::FutureExt as _;
    std::panic::AssertUnwindSafe(view.collect())
        .catch_unwind()
        .await
        .unwrap_or_else(|_| Err(decoder_panicked()))
}

fn decoder_panicked() -> datafusion::common::DataFusionError {
    datafusion::common::DataFusionError::Execution(
        "the Parquet decoder failed on a damaged file".into(),
    )
}

/// A record-batch stream that turns a panic of the stream it wraps into an error, then ends.
struct PanicGuard {
    schema: SchemaRef,
    inner: Option<SendableRecordBatchStream>,
}

impl futures_util::Stream for PanicGuard {
    type Item = datafusion::common::Result<datafusion::arrow::array::RecordBatch>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use futures_util::StreamExt as _;
        let Some(inner) = self.inner.as_mut() else {
            return std::task::Poll::Ready(None);
        };
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll_next_unpin(cx))) {
            Ok(poll) => poll,
            Err(_) => {
                tracing::error!("a data-plane stream panicked while decoding; it was ended");
                self.inner = None;
                std::task::Poll::Ready(Some(Err(decoder_panicked())))
            }
        }
    }
}

impl datafusion::physical_plan::RecordBatchStream for PanicGuard {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

pub(crate) fn internal(error: datafusion::common::DataFusionError) -> EngineError {
    EngineError::Internal(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_shape_and_keys_differ() {
        let a = agreement_key(&[7; 32], "urn:uuid:a");
        let b = agreement_key(&[7; 32], "urn:uuid:b");
        assert_ne!(a, b);
        assert_ne!(hmac_sha256(&a, b"P00000042"), hmac_sha256(&b, b"P00000042"));
        assert_eq!(hmac_sha256(&a, b"x"), hmac_sha256(&a, b"x"));
    }

    #[test]
    fn a_panicking_decoder_ends_the_stream_with_an_error() {
        use datafusion::arrow::datatypes::{Field, Schema};
        use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
        use futures_util::StreamExt as _;
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let panicking = futures_util::stream::poll_fn(
            |_| -> std::task::Poll<Option<datafusion::common::Result<_>>> {
                panic!("column start and length should not be negative")
            },
        );
        let mut guarded = PanicGuard {
            schema: schema.clone(),
            inner: Some(Box::pin(RecordBatchStreamAdapter::new(schema, panicking))),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let first = guarded.next().await.unwrap().unwrap_err().to_string();
            assert!(first.contains("damaged file"), "{first}");
            assert!(guarded.next().await.is_none());
        });
    }

    #[test]
    fn a_large_column_is_pseudonymised_in_row_order_with_nulls_kept() {
        let key = agreement_key(&[3; 32], "urn:uuid:c");
        let values: Vec<Option<String>> = (0..3 * VALUES_PER_THREAD + 17)
            .map(|i| (i % 7 != 0).then(|| format!("P{i:08}")))
            .collect();
        let column = StringArray::from(values.clone());
        let pseudonyms = pseudonymise_column(&Hmac::new(&key), &column).unwrap();
        assert_eq!(pseudonyms.len(), values.len());
        for (row, value) in values.iter().enumerate() {
            match value {
                None => assert!(pseudonyms.is_null(row)),
                Some(v) => assert_eq!(
                    pseudonyms.value(row),
                    hex::encode(&hmac_sha256(&key, v.as_bytes())[..16])
                ),
            }
        }
    }

    #[test]
    fn hmac_agrees_with_a_known_vector() {
        // RFC 4231 test case 2 uses a 4-byte key; padded with zeros to 32 bytes it is the same
        // HMAC (keys shorter than the block are zero-padded).
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        let mac = hmac_sha256(&key, b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
