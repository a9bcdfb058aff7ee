//! Aggregates under an agreement, with statistical disclosure control: counts, sums and means per
//! group of released columns, computed by DataFusion over the enforced view, then cut so that no
//! released cell describes fewer people than the policy's `agora:minGroupSize`.
//!
//! Suppression follows the rule statistical offices apply to published tables (CMS suppresses
//! every cell of 1–10 and every cell from which one can be derived):
//! - *primary*: a cell counting fewer than `k` rows is withheld;
//! - *secondary*: along every line of the table (the cells that differ in one grouping column
//!   only, whose sum a coarser query releases), the withheld cells must not be recoverable by
//!   subtraction, so a line that withholds exactly one cell, or withheld cells that together
//!   count fewer than `k`, withholds its next smallest cell too, until no line changes.
//!
//! What an aggregate may touch is narrower than what a stream may: no grouping by or measure of
//! a pseudonymised column (a group per pseudonym is a group per person), and when the policy sets
//! a minimum group size, no `min`/`max` (each is one person's value) and no consumer filters
//! (two filters that differ by one person are the classic differencing attack).

use super::EngineError;
use super::access::{self, AccessError, Grant};
use super::enforce::{ConsumerFilter, Source, filtered, internal, quoted, released_view};
use crate::audit::Record;
use crate::node::Node;
use crate::policy::EnforcementPlan;
use datafusion::arrow::array::{Array, ArrayRef, Int64Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::functions_aggregate::expr_fn::{avg, count, max, min, sum};
use datafusion::prelude::{Expr, col, lit};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// At most this many grouping columns in one aggregate.
pub const MAX_GROUP_COLUMNS: usize = 4;
/// At most this many measures in one aggregate.
pub const MAX_MEASURES: usize = 8;
/// At most this many cells in one answer: a finer grouping is a row-level release in disguise.
pub const MAX_CELLS: usize = 10_000;

/// An aggregate function of a measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// The sum of a numeric column.
    Sum,
    /// The mean of a numeric column.
    Avg,
    /// The smallest value (refused under a minimum group size).
    Min,
    /// The largest value (refused under a minimum group size).
    Max,
}

/// One measure of a cell, written `function:column` (e.g. `avg:hba1c`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measure {
    /// What is computed.
    pub function: Function,
    /// Over which released column.
    pub column: String,
}

impl Measure {
    /// The name of the measure in answers: the text the consumer wrote.
    pub fn label(&self) -> String {
        let function = match self.function {
            Function::Sum => "sum",
            Function::Avg => "avg",
            Function::Min => "min",
            Function::Max => "max",
        };
        format!("{function}:{}", self.column)
    }
}

impl std::str::FromStr for Measure {
    type Err = EngineError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || {
            EngineError::BadRequest(format!(
                "a measure is function:column with function sum, avg, min or max (e.g. avg:hba1c), not `{}`; the row count of every cell is always given",
                text.chars().take(80).collect::<String>()
            ))
        };
        let (function, column) = text.split_once(':').ok_or_else(bad)?;
        let function = match function {
            "sum" => Function::Sum,
            "avg" | "mean" => Function::Avg,
            "min" => Function::Min,
            "max" => Function::Max,
            _ => return Err(bad()),
        };
        if column.is_empty() {
            return Err(bad());
        }
        Ok(Self {
            function,
            column: column.to_owned(),
        })
    }
}

/// What a consumer asks of an aggregate.
#[derive(Debug, Clone, Default)]
pub struct AggregateRequest {
    /// The released columns whose values make a cell (none: one cell, the total).
    pub group_by: Vec<String>,
    /// What each cell carries besides its row count.
    pub measures: Vec<Measure>,
    /// Conditions on released values (refused under a minimum group size).
    pub filters: Vec<ConsumerFilter>,
}

/// Why a cell was withheld.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Suppression {
    /// It counts fewer rows than the minimum group size.
    Primary,
    /// It would let a primary cell be derived by subtraction.
    Secondary,
}

/// One cell of an aggregate answer.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    /// The grouping columns' values.
    pub group: Map<String, Value>,
    /// The number of rows, unless withheld.
    pub count: Option<u64>,
    /// The measures by label, unless withheld.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub values: Map<String, Value>,
    /// Why the cell is withheld, if it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<Suppression>,
}

/// An aggregate answer after disclosure control.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AggregateTable {
    /// The grouping columns.
    pub group_by: Vec<String>,
    /// The measure labels.
    pub measures: Vec<String>,
    /// The agreed minimum group size, if any.
    pub min_group_size: Option<u64>,
    /// The cells, in the order of the grouping values.
    pub cells: Vec<Cell>,
    /// How many cells were withheld, by reason.
    pub suppressed: SuppressedCounts,
}

/// Counts of withheld cells.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct SuppressedCounts {
    /// Cells under the minimum group size.
    pub primary: usize,
    /// Cells withheld to protect them.
    pub secondary: usize,
}

/// Checks a request against what the plan (bound to the dataset's schema) lets an aggregate do.
fn check(request: &AggregateRequest, plan: &EnforcementPlan) -> Result<(), EngineError> {
    if request.group_by.len() > MAX_GROUP_COLUMNS {
        return Err(EngineError::BadRequest(format!(
            "group by at most {MAX_GROUP_COLUMNS} columns"
        )));
    }
    if request.measures.len() > MAX_MEASURES {
        return Err(EngineError::BadRequest(format!(
            "ask for at most {MAX_MEASURES} measures"
        )));
    }
    let pseudonymised = |column: &String| plan.pseudonymised_columns.contains(column);
    if let Some(column) = request.group_by.iter().find(|c| pseudonymised(c)) {
        return Err(EngineError::BadRequest(format!(
            "column `{column}` is pseudonymised under this agreement: grouping by it would make one group per person"
        )));
    }
    if let Some(measure) = request.measures.iter().find(|m| pseudonymised(&m.column)) {
        return Err(EngineError::BadRequest(format!(
            "column `{}` is pseudonymised under this agreement and cannot be aggregated",
            measure.column
        )));
    }
    if let Some(k) = plan.min_group_size {
        if let Some(measure) = request
            .measures
            .iter()
            .find(|m| matches!(m.function, Function::Min | Function::Max))
        {
            return Err(EngineError::BadRequest(format!(
                "`{}` is refused: the agreement releases aggregates over groups of at least {k}, and a minimum or maximum is one person's value",
                measure.label()
            )));
        }
        if !request.filters.is_empty() {
            return Err(EngineError::BadRequest(format!(
                "aggregates under this agreement cannot be filtered (groups of at least {k}: two filters that differ by one person would reveal that person); group by the column instead"
            )));
        }
    }
    Ok(())
}

/// Answers an aggregate under a data-plane grant: the agreement must permit use (the request
/// counts as a pull), the cells are computed and cut, and the audit log records the release
/// (cells and bytes) before the answer leaves. Returns the answer as JSON bytes.
pub async fn release(
    node: Arc<Node>,
    grant: &Grant,
    request: &AggregateRequest,
) -> Result<Vec<u8>, AccessError> {
    let (record, plan, path, format) =
        access::authorised_source(&node, grant, crate::contract::Contracts::release_aggregate)
            .await?;
    let key = node.dataplane.agreement_key(&record.id);
    let source = node.dataplane.source(&path, &format);
    let table = aggregate(&source, &plan, key, request).await?;
    let body = serde_json::to_vec(&table).map_err(|e| AccessError::Internal(e.to_string()))?;
    let entry = Record {
        event: "release".into(),
        who: grant.subject.clone(),
        agreement: record.id.clone(),
        dataset: record.dataset.clone(),
        part: Some("aggregate".into()),
        rows: table.cells.len() as u64,
        bytes: body.len() as u64,
    };
    tokio::task::spawn_blocking(move || node.audit.append(entry))
        .await
        .map_err(|e| AccessError::Internal(e.to_string()))?
        .map_err(|e| AccessError::Internal(e.to_string()))?;
    Ok(body)
}

/// Computes an aggregate of the enforced view of `source` and applies the plan's minimum group
/// size to it.
pub async fn aggregate(
    source: &Source<'_>,
    plan: &EnforcementPlan,
    key: [u8; 32],
    request: &AggregateRequest,
) -> Result<AggregateTable, EngineError> {
    let released = released_view(source, plan, key).await?;
    check(request, &released.plan)?;
    let view = filtered(released.view, &released.plan, &request.filters)?;
    let schema = view.schema().as_arrow().clone();
    let field = |name: &str| {
        schema.field_with_name(name).map_err(|_| {
            EngineError::BadRequest(format!(
                "column `{name}` is not released under this agreement"
            ))
        })
    };
    let mut groups = Vec::new();
    for name in &request.group_by {
        field(name)?;
        groups.push(col(quoted(name)));
    }
    let mut aggregates: Vec<Expr> = vec![count(lit(1)).alias("__count")];
    for (i, measure) in request.measures.iter().enumerate() {
        let data_type = field(&measure.column)?.data_type().clone();
        let numeric = data_type.is_numeric();
        if !numeric && matches!(measure.function, Function::Sum | Function::Avg) {
            return Err(EngineError::BadRequest(format!(
                "`{}` needs a numeric column; `{}` is {data_type}",
                measure.label(),
                measure.column
            )));
        }
        let target = col(quoted(&measure.column));
        let expr = match measure.function {
            Function::Sum => sum(target),
            Function::Avg => avg(target),
            Function::Min => min(target),
            Function::Max => max(target),
        };
        aggregates.push(expr.alias(format!("__m{i}")));
    }
    let sorted: Vec<_> = groups.iter().map(|g| g.clone().sort(true, true)).collect();
    let mut view = view.aggregate(groups, aggregates).map_err(internal)?;
    // Without groups there is one cell and nothing to order by (an empty ORDER BY makes
    // DataFusion's optimizer fail).
    if !sorted.is_empty() {
        view = view.sort(sorted).map_err(internal)?;
    }
    let view = view.limit(0, Some(MAX_CELLS + 1)).map_err(internal)?;
    let batches =
        super::enforce::collect(view).await.map_err(|error| {
            match error {
        DataFusionError::ResourcesExhausted(_) => EngineError::BadRequest(
            "the grouping makes too many groups to aggregate; group by fewer or coarser columns"
                .into(),
        ),
        other => EngineError::Source(format!("the dataset's files cannot be read: {other}")),
    }
        })?;
    let mut cells = Vec::new();
    for batch in &batches {
        let counts = batch
            .column(request.group_by.len())
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or_else(|| EngineError::Internal("count is not an Int64 column".into()))?;
        for row in 0..batch.num_rows() {
            let mut group = Map::new();
            for (i, name) in request.group_by.iter().enumerate() {
                group.insert(name.clone(), json_value(batch.column(i), row)?);
            }
            let mut values = Map::new();
            for (i, measure) in request.measures.iter().enumerate() {
                let column = batch.column(request.group_by.len() + 1 + i);
                values.insert(measure.label(), json_value(column, row)?);
            }
            cells.push(Cell {
                group,
                count: Some(u64::try_from(counts.value(row)).unwrap_or(0)),
                values,
                suppressed: None,
            });
        }
    }
    if cells.len() > MAX_CELLS {
        return Err(EngineError::BadRequest(format!(
            "the grouping makes more than {MAX_CELLS} cells; group by fewer or coarser columns"
        )));
    }
    let mut table = AggregateTable {
        group_by: request.group_by.clone(),
        measures: request.measures.iter().map(Measure::label).collect(),
        min_group_size: released.plan.min_group_size,
        cells,
        suppressed: SuppressedCounts::default(),
    };
    if let Some(k) = released.plan.min_group_size {
        suppress(&mut table, k)?;
    }
    Ok(table)
}

/// Applies primary and secondary suppression to a table's cells in place.
fn suppress(table: &mut AggregateTable, k: u64) -> Result<(), EngineError> {
    let counts: Vec<u64> = table.cells.iter().map(|c| c.count.unwrap_or(0)).collect();
    let keys: Vec<Vec<String>> = table
        .cells
        .iter()
        .map(|c| {
            table
                .group_by
                .iter()
                .map(|g| c.group.get(g).map(Value::to_string).unwrap_or_default())
                .collect()
        })
        .collect();
    let marks = suppression_pattern(&counts, &keys, k).map_err(|cell| {
        EngineError::BadRequest(format!(
            "grouping by {} is too fine to release under a minimum group size of {k}: the small group {} could be derived from coarser tables whatever is withheld; group by fewer or coarser columns",
            table.group_by.join(", "),
            Value::Object(table.cells[cell].group.clone())
        ))
    })?;
    for (cell, mark) in table.cells.iter_mut().zip(marks) {
        if let Some(reason) = mark {
            cell.count = None;
            cell.values.clear();
            cell.suppressed = Some(reason);
            match reason {
                Suppression::Primary => table.suppressed.primary += 1,
                Suppression::Secondary => table.suppressed.secondary += 1,
            }
        }
    }
    Ok(())
}

/// Which cells to withhold, given each cell's row count and grouping key: the pattern described
/// in the module documentation, or `Err(cell)` when some withheld cell cannot be protected in
/// any table of this shape (the grouping is too fine to release).
pub fn suppression_pattern(
    counts: &[u64],
    keys: &[Vec<String>],
    k: u64,
) -> Result<Vec<Option<Suppression>>, usize> {
    let mut marks: Vec<Option<Suppression>> = counts
        .iter()
        .map(|&c| (c < k).then_some(Suppression::Primary))
        .collect();
    let dimensions = keys.first().map_or(0, Vec::len);
    if dimensions == 0 {
        return Ok(marks);
    }
    let lines: Vec<Vec<usize>> = (0..dimensions)
        .flat_map(|dimension| {
            let mut lines: HashMap<Vec<&String>, Vec<usize>> = HashMap::new();
            for (i, key) in keys.iter().enumerate() {
                let line: Vec<&String> = key
                    .iter()
                    .enumerate()
                    .filter(|&(d, _)| d != dimension)
                    .map(|(_, v)| v)
                    .collect();
                lines.entry(line).or_default().push(i);
            }
            lines.into_values()
        })
        .collect();
    // A cell alone on one of its lines equals that line's total, which a coarser query releases
    // once it reaches k: its value is public, so withholding it protects no other cell.
    let mut public = vec![false; counts.len()];
    for line in &lines {
        if let [only] = line.as_slice() {
            public[*only] = counts[*only] >= k;
        }
    }
    loop {
        let mut changed = false;
        for cells in &lines {
            let withheld: Vec<usize> = cells
                .iter()
                .copied()
                .filter(|&i| marks[i].is_some())
                .collect();
            let Some(&first) = withheld.first() else {
                continue;
            };
            let withheld_rows: u64 = withheld.iter().map(|&i| counts[i]).sum();
            let protected = withheld.len() >= 2 && withheld_rows >= k;
            // A whole line under k has its total withheld by the coarser query too.
            let whole_line_under_k = withheld.len() == cells.len() && withheld_rows < k;
            if protected || whole_line_under_k {
                continue;
            }
            let next = cells
                .iter()
                .copied()
                .filter(|&i| marks[i].is_none() && !public[i])
                .min_by_key(|&i| counts[i]);
            match next {
                Some(i) => {
                    marks[i] = Some(Suppression::Secondary);
                    changed = true;
                }
                None => return Err(first),
            }
        }
        if !changed {
            return Ok(marks);
        }
    }
}

/// A grouping value or measure as JSON: numbers as numbers, text as text, dates and the rest in
/// their usual text form.
fn json_value(array: &ArrayRef, row: usize) -> Result<Value, EngineError> {
    if array.is_null(row) {
        return Ok(Value::Null);
    }
    let scalar = ScalarValue::try_from_array(array, row).map_err(internal)?;
    Ok(match array.data_type() {
        DataType::Boolean => match scalar {
            ScalarValue::Boolean(Some(b)) => Value::Bool(b),
            other => Value::String(other.to_string()),
        },
        t if t.is_integer() => match scalar.cast_to(&DataType::Int64) {
            Ok(ScalarValue::Int64(Some(i))) => Value::from(i),
            _ => Value::String(scalar.to_string()),
        },
        t if t.is_floating()
            || matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..)) =>
        {
            match scalar.cast_to(&DataType::Float64) {
                Ok(ScalarValue::Float64(Some(f))) => {
                    serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
                }
                _ => Value::String(scalar.to_string()),
            }
        }
        _ => Value::String(scalar.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(rows: &[&[&str]]) -> Vec<Vec<String>> {
        rows.iter()
            .map(|r| r.iter().map(|s| (*s).to_owned()).collect())
            .collect()
    }

    #[test]
    fn a_single_small_cell_takes_the_next_smallest_with_it() {
        let marks = suppression_pattern(
            &[5, 40, 30, 100],
            &keys(&[&["a"], &["b"], &["c"], &["d"]]),
            11,
        )
        .unwrap();
        assert_eq!(
            marks,
            vec![
                Some(Suppression::Primary),
                None,
                Some(Suppression::Secondary),
                None
            ]
        );
    }

    #[test]
    fn two_small_cells_that_together_stay_under_k_take_a_third() {
        let marks = suppression_pattern(
            &[3, 4, 50, 60],
            &keys(&[&["a"], &["b"], &["c"], &["d"]]),
            11,
        )
        .unwrap();
        assert_eq!(marks.iter().filter(|m| m.is_some()).count(), 3);
        assert_eq!(marks[3], None);
    }

    #[test]
    fn no_line_of_a_two_way_table_leaves_a_withheld_cell_derivable() {
        // sex × chapter; one small cell.
        let k = 11;
        let grid = keys(&[
            &["F", "I"],
            &["F", "II"],
            &["F", "III"],
            &["M", "I"],
            &["M", "II"],
            &["M", "III"],
        ]);
        let counts = [4, 30, 50, 25, 35, 60];
        let marks = suppression_pattern(&counts, &grid, k).unwrap();
        for dimension in 0..2 {
            let mut lines: HashMap<String, Vec<usize>> = HashMap::new();
            for (i, key) in grid.iter().enumerate() {
                lines.entry(key[1 - dimension].clone()).or_default().push(i);
            }
            for cells in lines.values() {
                let withheld: Vec<usize> = cells
                    .iter()
                    .copied()
                    .filter(|&i| marks[i].is_some())
                    .collect();
                let rows: u64 = withheld.iter().map(|&i| counts[i]).sum();
                assert!(withheld.is_empty() || (withheld.len() >= 2 && rows >= k));
            }
        }
        assert_eq!(marks[0], Some(Suppression::Primary));
    }

    #[test]
    fn a_small_total_is_withheld() {
        assert_eq!(
            suppression_pattern(&[7], &[vec![]], 11),
            Ok(vec![Some(Suppression::Primary)])
        );
        assert_eq!(suppression_pattern(&[70], &[vec![]], 11), Ok(vec![None]));
    }

    #[test]
    fn a_small_cell_whose_only_partners_are_public_makes_the_grouping_unreleasable() {
        // (F, I) is small; its line along sex holds (M, I), which is alone in its line along
        // chapter, so its value is the coarser total for M and public.
        let grid = keys(&[&["F", "I"], &["M", "I"], &["F", "II"], &["F", "III"]]);
        let refused = suppression_pattern(&[4, 30, 50, 60], &grid, 11);
        assert!(refused.is_err(), "{refused:?}");
    }

    #[test]
    fn measures_parse_and_refuse_nonsense() {
        let m: Measure = "avg:hba1c".parse().unwrap();
        assert_eq!(m.label(), "avg:hba1c");
        assert!("median:x".parse::<Measure>().is_err());
        assert!("sum:".parse::<Measure>().is_err());
        assert!("count".parse::<Measure>().is_err());
    }
}
