//! R22 (docs/SECURITY.md): the agreed policy's row filter and column rules sit below whatever a
//! consumer plans on top of the enforced view, so no consumer query can see a row or a value
//! the policy hides. A seeded generator writes policies (row filters on every column type, with
//! every operator; drops, pseudonyms, time and grid generalisations) and consumer queries, and
//! each query's result on the node's enforced view (`engine::enforce::enforced_view`, the plan
//! the data plane executes, read from a Parquet file with two row groups) is compared with the
//! same query on a `MemTable` that holds only what the policy releases, computed here in plain
//! Rust: the policy's row filter evaluated by hand (a null or NaN never satisfies it, -0.0 is
//! 0.0), pseudonyms with `hmac_sha256` of the value's text, dates and instants truncated by
//! integer arithmetic, coordinates snapped to the grid.
//!
//! Two consumer interfaces are exercised:
//! - the one the data plane has (`Narrowing`: `column:op:value` filters, columns, a limit),
//!   compared in row order, refusals included (a pseudonymised, dropped or unknown column, a
//!   value that is not one of the column's type);
//! - SQL planned over the enforced view as a table (the data plane takes no consumer SQL
//!   today; this is the stronger property, that any plan above the view, after DataFusion's
//!   optimiser has pushed filters down, merged projections and inlined the view, sees what the
//!   `MemTable` sees): comparisons, AND/OR/NOT, `OR 1=1`, IS NULL, IN lists, LIKE, arithmetic
//!   (division by zero included: an error raised on a hidden row would be an oracle), CASE,
//!   UNION, IN/EXISTS/scalar subqueries, CTEs, self-joins, GROUP BY, ORDER BY … LIMIT.
//!
//! Results are compared as sorted multisets of formatted rows (in order for `Narrowing`); an
//! error on one side only is a difference too. `AGORA_R22_QUERIES` sets the number of queries
//! (default 10,000), `AGORA_R22_SEED` replays a run.

use crate::common::Rng;
use agora::clock::ManualClock;
use agora::engine::enforce::{
    ConsumerFilter, Narrowing, Source, agreement_key, enforced_view, hmac_sha256,
};
use agora::policy::{
    ColumnValue, EnforcementPlan, Evaluator, FilterOperator, Generalisation, Granularity, Request,
    RowFilter,
};
use chrono::{Datelike as _, NaiveDate};
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::ScalarValue;
use datafusion::datasource::MemTable;
use datafusion::execution::object_store::DefaultObjectStoreRegistry;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext, col, lit};
use std::sync::Arc;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Text,
    Bool,
    Int,
    Float,
    Date,
    Instant,
}

impl Kind {
    fn data_type(self) -> DataType {
        match self {
            Kind::Text => DataType::Utf8,
            Kind::Bool => DataType::Boolean,
            Kind::Int => DataType::Int64,
            Kind::Float => DataType::Float64,
            Kind::Date => DataType::Date32,
            Kind::Instant => DataType::Timestamp(TimeUnit::Millisecond, None),
        }
    }
}

/// The fixture's columns; the names are those of the health template (plan 0 is compiled
/// from it).
const COLUMNS: [(&str, Kind); 12] = [
    ("patient_id", Kind::Text),
    ("national_id", Kind::Text),
    ("name", Kind::Text),
    ("birth_date", Kind::Date),
    ("postcode", Kind::Text),
    ("consent_secondary_use", Kind::Bool),
    ("sex", Kind::Text),
    ("age", Kind::Int),
    ("hba1c", Kind::Float),
    ("region", Kind::Text),
    ("visited_at", Kind::Instant),
    ("lat", Kind::Float),
];

#[derive(Clone, Debug, PartialEq)]
enum Val {
    Null,
    Text(String),
    Bool(bool),
    Int(i64),
    Float(f64),
    /// Days since 1970-01-01.
    Date(i32),
    /// Milliseconds since 1970-01-01T00:00:00.
    Instant(i64),
}

const SEXES: [&str; 3] = ["F", "M", "X"];
const REGIONS: [&str; 5] = ["Berlin", "Bayern", "bremen", "Île-de-France", "O'Higgins"];

fn fixture_rows(rng: &mut Rng, count: usize) -> Vec<Vec<Val>> {
    (0..count)
        .map(|i| {
            let hba1c = match rng.below(20) {
                0 => Val::Float(f64::NAN),
                1 => Val::Float(-0.0),
                2 => Val::Float(0.0),
                _ => Val::Float(4.0 + rng.below(80) as f64 / 10.0),
            };
            let values = vec![
                Val::Text(format!("N-{}", rng.below(60))),
                Val::Text(format!("Name {}", rng.below(40))),
                Val::Date(-20_000 + rng.below(30_000) as i32),
                Val::Text(format!("{}", 10_000 + rng.below(20) * 5)),
                Val::Bool(rng.chance(60)),
                Val::Text((*rng.pick(&SEXES)).to_owned()),
                Val::Int(rng.below(101) as i64),
                hba1c,
                Val::Text((*rng.pick(&REGIONS)).to_owned()),
                Val::Instant(1_700_000_000_000 + (rng.next() % 100_000_000_000) as i64),
                Val::Float(47.0 + rng.below(10_000) as f64 / 1000.0),
            ];
            // patient_id is never null; every other column sometimes is.
            std::iter::once(Val::Text(format!("P{:05}", i * 7 % 1000)))
                .chain(
                    values
                        .into_iter()
                        .map(|v| if rng.chance(8) { Val::Null } else { v }),
                )
                .collect()
        })
        .collect()
}

fn array(kind: Kind, values: &[&Val]) -> ArrayRef {
    match kind {
        Kind::Text => Arc::new(StringArray::from(
            values
                .iter()
                .map(|v| match v {
                    Val::Text(s) => Some(s.clone()),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        )),
        Kind::Bool => Arc::new(BooleanArray::from(
            values
                .iter()
                .map(|v| match v {
                    Val::Bool(b) => Some(*b),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        )),
        Kind::Int => Arc::new(Int64Array::from(
            values
                .iter()
                .map(|v| match v {
                    Val::Int(i) => Some(*i),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        )),
        Kind::Float => Arc::new(Float64Array::from(
            values
                .iter()
                .map(|v| match v {
                    Val::Float(f) => Some(*f),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        )),
        Kind::Date => Arc::new(Date32Array::from(
            values
                .iter()
                .map(|v| match v {
                    Val::Date(d) => Some(*d),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        )),
        Kind::Instant => Arc::new(TimestampMillisecondArray::from(
            values
                .iter()
                .map(|v| match v {
                    Val::Instant(t) => Some(*t),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        )),
    }
}

fn batch(columns: &[(String, Kind)], rows: &[Vec<Val>]) -> RecordBatch {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, kind)| Field::new(name, kind.data_type(), true))
            .collect::<Vec<_>>(),
    ));
    let arrays = (0..columns.len())
        .map(|c| {
            array(
                columns[c].1,
                &rows.iter().map(|r| &r[c]).collect::<Vec<_>>(),
            )
        })
        .collect();
    RecordBatch::try_new(schema, arrays).expect("fixture batch")
}

fn write_parquet(path: &std::path::Path, rows: &[Vec<Val>]) {
    let columns: Vec<(String, Kind)> = COLUMNS.iter().map(|(n, k)| ((*n).to_owned(), *k)).collect();
    let batch = batch(&columns, rows);
    let file = std::fs::File::create(path).expect("fixture file");
    // Two row groups, so that statistics-based pruning has something to prune.
    let properties = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(rows.len().div_ceil(2)))
        .build();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(properties)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

// ---------------------------------------------------------------------------------------------
// The reference: what the policy releases, in plain Rust.

/// A number's reading for the policy's comparisons (XSD semantics: -0.0 = 0.0; NaN compares
/// with nothing, so it never satisfies a release condition, like a null).
fn number(v: &Val) -> Option<f64> {
    match v {
        Val::Int(i) => Some(*i as f64),
        Val::Float(f) if !f.is_nan() => Some(*f),
        _ => None,
    }
}

fn column_value(v: &ColumnValue) -> Val {
    match v {
        ColumnValue::Boolean(b) => Val::Bool(*b),
        ColumnValue::Integer(i) => Val::Int(*i),
        ColumnValue::Decimal(d) => Val::Float(d.parse().unwrap()),
        ColumnValue::Double(d) => Val::Float(*d),
        ColumnValue::Date(d) => Val::Date(days(*d)),
        ColumnValue::Timestamp(t) => Val::Instant(t.timestamp_millis()),
        ColumnValue::Text(s) => Val::Text(s.clone()),
    }
}

fn days(date: NaiveDate) -> i32 {
    date.signed_duration_since(NaiveDate::default()).num_days() as i32
}

fn compare(a: &Val, b: &Val) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Val::Null, _) | (_, Val::Null) => None,
        (Val::Text(x), Val::Text(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (Val::Bool(x), Val::Bool(y)) => Some(x.cmp(y)),
        (Val::Date(x), Val::Date(y)) => Some(x.cmp(y)),
        (Val::Instant(x), Val::Instant(y)) => Some(x.cmp(y)),
        _ => number(a)?.partial_cmp(&number(b)?),
    }
}

fn satisfies(value: &Val, filter: &RowFilter) -> bool {
    use std::cmp::Ordering::*;
    if matches!(value, Val::Null) || matches!(value, Val::Float(f) if f.is_nan()) {
        return false;
    }
    let values: Vec<Val> = filter.values.iter().map(column_value).collect();
    let order = compare(value, &values[0]);
    match filter.operator {
        FilterOperator::Eq => order == Some(Equal),
        FilterOperator::Neq => order.is_some_and(|o| o != Equal),
        FilterOperator::Lt => order == Some(Less),
        FilterOperator::Lteq => order.is_some_and(|o| o != Greater),
        FilterOperator::Gt => order == Some(Greater),
        FilterOperator::Gteq => order.is_some_and(|o| o != Less),
        FilterOperator::IsAnyOf => values.iter().any(|v| compare(value, v) == Some(Equal)),
        FilterOperator::IsNoneOf => values.iter().all(|v| compare(value, v) != Some(Equal)),
    }
}

fn truncate_days(d: i32, g: Granularity) -> i32 {
    let date = NaiveDate::default() + chrono::Duration::days(i64::from(d));
    let truncated = match g {
        Granularity::Year => NaiveDate::from_ymd_opt(date.year(), 1, 1).unwrap(),
        Granularity::Month => NaiveDate::from_ymd_opt(date.year(), date.month(), 1).unwrap(),
        _ => date,
    };
    days(truncated)
}

fn truncate_millis(t: i64, g: Granularity) -> i64 {
    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;
    match g {
        Granularity::Hour => t - t.rem_euclid(HOUR),
        Granularity::Day => t - t.rem_euclid(DAY),
        year_or_month => {
            let d = truncate_days(t.div_euclid(DAY) as i32, year_or_month);
            i64::from(d) * DAY
        }
    }
}

fn pseudonym(key: &[u8; 32], v: &Val) -> Val {
    let text = match v {
        Val::Null => return Val::Null,
        Val::Text(s) => s.clone(),
        Val::Int(i) => i.to_string(),
        other => panic!("the generator pseudonymises only text and integers, not {other:?}"),
    };
    Val::Text(hex::encode(&hmac_sha256(key, text.as_bytes())[..16]))
}

/// What the policy does to one released column's values.
type Transform = Box<dyn Fn(&Val) -> Val>;

/// The released table: (name, kind) of each released column, and its rows.
fn reference(
    plan: &EnforcementPlan,
    key: &[u8; 32],
    rows: &[Vec<Val>],
) -> (Vec<(String, Kind)>, Vec<Vec<Val>>) {
    let index = |name: &str| COLUMNS.iter().position(|(n, _)| *n == name).unwrap();
    let kept: Vec<&Vec<Val>> = rows
        .iter()
        .filter(|row| {
            plan.row_filters
                .iter()
                .all(|f| satisfies(&row[index(&f.column)], f))
        })
        .collect();
    let mut columns = Vec::new();
    let mut transforms: Vec<Transform> = Vec::new();
    for (name, kind) in &COLUMNS {
        let name = (*name).to_owned();
        if plan.dropped_columns.contains(&name) {
            continue;
        }
        if plan.pseudonymised_columns.contains(&name) {
            columns.push((name, Kind::Text));
            let key = *key;
            transforms.push(Box::new(move |row: &Val| pseudonym(&key, row)));
            continue;
        }
        let generalisation = plan
            .generalisations
            .iter()
            .find(|g| g.column == name)
            .map(|g| g.granularity);
        columns.push((name, *kind));
        transforms.push(match generalisation {
            None => Box::new(Val::clone),
            Some(g) => Box::new(move |v: &Val| match (v, g) {
                (Val::Date(d), g) => Val::Date(truncate_days(*d, g)),
                (Val::Instant(t), g) => Val::Instant(truncate_millis(*t, g)),
                (Val::Float(x), Granularity::Grid { degrees }) => {
                    Val::Float((x / degrees).floor() * degrees)
                }
                (other, _) => other.clone(),
            }),
        });
    }
    let released_index: Vec<usize> = columns.iter().map(|(n, _)| index(n)).collect();
    let released = kept
        .iter()
        .map(|row| {
            released_index
                .iter()
                .zip(&transforms)
                .map(|(c, t)| t(&row[*c]))
                .collect()
        })
        .collect();
    (columns, released)
}

// ---------------------------------------------------------------------------------------------
// Policies.

/// Plan 0: the health template's permission, decided by the evaluator and compiled by the node
/// (consent filter, three pseudonymised identifiers, birth dates to the year, postcode
/// dropped).
fn template_plan() -> EnforcementPlan {
    let document =
        std::fs::read(super::common::repo_root().join("policies/health-secondary-use.jsonld"))
            .unwrap();
    let policy =
        agora::policy::parse(&document, agora::rdf_input::RdfSyntax::JsonLd).expect("template");
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-25T12:00:00Z")
        .unwrap()
        .to_utc();
    let evaluator = Evaluator::new(Arc::new(ManualClock::new(now)));
    let claims = serde_json::json!({"sub": "alice", "country": "DE", "org_type": "university"});
    let request = Request::from_claims(
        claims.as_object().cloned().unwrap(),
        Some(oxigraph::model::NamedNode::new_unchecked(
            "https://w3id.org/dpv#AcademicResearch",
        )),
    );
    let decision = evaluator.evaluate(&policy, &request);
    let plan = decision
        .plan
        .expect("the template permits academic research in Germany");
    assert!(
        plan.row_filters
            .iter()
            .any(|f| f.column == "consent_secondary_use"),
        "{plan:?}"
    );
    plan
}

fn random_row_filter(rng: &mut Rng) -> RowFilter {
    use FilterOperator::*;
    let operators = [Eq, Neq, Lt, Lteq, Gt, Gteq, IsAnyOf, IsNoneOf];
    let (column, values): (&str, Vec<ColumnValue>) = match rng.below(9) {
        0 => ("consent_secondary_use", vec![ColumnValue::Boolean(true)]),
        1 => (
            "age",
            (0..=rng.below(3))
                .map(|_| ColumnValue::Integer(rng.below(110) as i64 - 5))
                .collect(),
        ),
        2 => (
            "hba1c",
            (0..=rng.below(2))
                .map(|_| match rng.below(5) {
                    0 => ColumnValue::Double(0.0),
                    1 => ColumnValue::Decimal("-0.0".into()),
                    2 => ColumnValue::Integer(7),
                    3 => ColumnValue::Decimal(format!("{}.{}", 4 + rng.below(8), rng.below(10))),
                    _ => ColumnValue::Double(4.0 + rng.below(80) as f64 / 10.0),
                })
                .collect(),
        ),
        3 => (
            "sex",
            (0..=rng.below(2))
                .map(|_| ColumnValue::Text((*rng.pick(&SEXES)).to_owned()))
                .collect(),
        ),
        4 => (
            "region",
            (0..=rng.below(2))
                .map(|_| ColumnValue::Text((*rng.pick(&REGIONS)).to_owned()))
                .collect(),
        ),
        5 => (
            "birth_date",
            vec![ColumnValue::Date(
                NaiveDate::from_ymd_opt(1920 + rng.below(80) as i32, 1 + rng.below(12) as u32, 1)
                    .unwrap(),
            )],
        ),
        6 => (
            "visited_at",
            vec![ColumnValue::Timestamp(
                chrono::DateTime::from_timestamp_millis(
                    1_700_000_000_000 + (rng.next() % 100_000_000_000) as i64,
                )
                .unwrap(),
            )],
        ),
        7 => (
            "postcode",
            vec![ColumnValue::Text(format!("{}", 10_000 + rng.below(20) * 5))],
        ),
        _ => (
            "lat",
            vec![ColumnValue::Double(47.0 + rng.below(10) as f64)],
        ),
    };
    let operator = if values.len() > 1 {
        *rng.pick(&[IsAnyOf, IsNoneOf])
    } else if column == "consent_secondary_use" {
        *rng.pick(&[Eq, Eq, Neq, IsAnyOf])
    } else {
        *rng.pick(&operators)
    };
    RowFilter {
        column: column.to_owned(),
        operator,
        values,
    }
}

fn random_plan(rng: &mut Rng) -> EnforcementPlan {
    let mut plan = EnforcementPlan {
        policy: "urn:agora:r22:generated".into(),
        ..EnforcementPlan::default()
    };
    for _ in 0..=rng.below(3) {
        plan.row_filters.push(random_row_filter(rng));
    }
    for (name, kind) in COLUMNS {
        let name = name.to_owned();
        match (rng.below(10), kind) {
            (0 | 1, _) if name != "patient_id" => plan.dropped_columns.push(name),
            (2 | 3, Kind::Text | Kind::Int) => plan.pseudonymised_columns.push(name),
            (4..=6, Kind::Date | Kind::Instant) => plan.generalisations.push(Generalisation {
                column: name,
                granularity: *rng.pick(&[
                    Granularity::Year,
                    Granularity::Month,
                    Granularity::Day,
                    Granularity::Hour,
                ]),
            }),
            (4..=6, Kind::Float) if name == "lat" => plan.generalisations.push(Generalisation {
                column: name,
                granularity: Granularity::Grid {
                    degrees: *rng.pick(&[0.1, 0.5, 0.01]),
                },
            }),
            _ => {}
        }
    }
    plan
}

// ---------------------------------------------------------------------------------------------
// Consumer queries.

fn text_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn literal(rng: &mut Rng, kind: Kind) -> String {
    match kind {
        Kind::Text => text_literal(match rng.below(4) {
            0 => rng.pick::<&str>(&SEXES),
            1 => rng.pick::<&str>(&REGIONS),
            2 => rng.pick::<&str>(&["10005", "N-3", "Name 7", "P00007", "' OR '1'='1"]),
            _ => rng.pick::<&str>(&["", "a", "z", "F%"]),
        }),
        Kind::Bool => rng.pick(&["true", "false"]).to_string(),
        Kind::Int => format!("{}", rng.below(110) as i64 - 5),
        Kind::Float => match rng.below(6) {
            0 => "CAST('NaN' AS DOUBLE)".into(),
            1 => "-0.0".into(),
            _ => format!("{}.{}", rng.below(60), rng.below(10)),
        },
        Kind::Date => format!(
            "DATE '{}-{:02}-01'",
            1920 + rng.below(80),
            1 + rng.below(12)
        ),
        Kind::Instant => format!(
            "TIMESTAMP '20{}-{:02}-{:02} {:02}:00:00'",
            23 + rng.below(4),
            1 + rng.below(12),
            1 + rng.below(28),
            rng.below(24)
        ),
    }
}

/// The released columns, and the qualifier the predicates put before them (`l.` in a join).
struct Columns<'a>(&'a [(String, Kind)], &'a str);

impl Columns<'_> {
    fn any(&self, rng: &mut Rng) -> (String, Kind) {
        let (name, kind) = rng.pick(self.0);
        (format!("{}\"{name}\"", self.1), *kind)
    }
    fn of(&self, rng: &mut Rng, kinds: &[Kind]) -> Option<String> {
        let matching: Vec<_> = self.0.iter().filter(|(_, k)| kinds.contains(k)).collect();
        (!matching.is_empty()).then(|| format!("{}\"{}\"", self.1, rng.pick(&matching).0))
    }
}

fn predicate(rng: &mut Rng, columns: &Columns, depth: usize) -> String {
    let choice = if depth == 0 {
        rng.below(9)
    } else {
        rng.below(14)
    };
    match choice {
        0 | 1 => {
            let (c, kind) = columns.any(rng);
            let op = rng.pick(&["=", "<>", "<", "<=", ">", ">="]);
            format!("{c} {op} {}", literal(rng, kind))
        }
        2 => {
            let (c, _) = columns.any(rng);
            format!("{c} IS {}NULL", if rng.chance(50) { "NOT " } else { "" })
        }
        3 => {
            let (c, kind) = columns.any(rng);
            let list: Vec<String> = (0..=rng.below(3)).map(|_| literal(rng, kind)).collect();
            format!(
                "{c} {}IN ({})",
                if rng.chance(30) { "NOT " } else { "" },
                list.join(", ")
            )
        }
        4 => match columns.of(rng, &[Kind::Text]) {
            Some(c) => format!(
                "{c} {}LIKE {}",
                if rng.chance(25) { "NOT " } else { "" },
                text_literal(
                    rng.pick::<&str>(&["F%", "%e%", "_", "B%", "%0", "N-1%", "%'%", "a%"])
                )
            ),
            None => "1=1".into(),
        },
        5 => match columns.of(rng, &[Kind::Int, Kind::Float]) {
            Some(c) => match rng.below(5) {
                0 => format!(
                    "({c} + {}) * {} > {}",
                    rng.below(9),
                    rng.below(4),
                    rng.below(300)
                ),
                1 => format!("{c} % {} = {}", 2 + rng.below(4), rng.below(2)),
                // An error raised on a row the policy hides would be an oracle.
                2 => format!("100 / ({c} - {}) > {}", rng.below(60), rng.below(5)),
                3 => format!("{c} - {c} = 0"),
                _ => format!("abs({c} - {}) < {}", rng.below(60), 1 + rng.below(10)),
            },
            None => "1=0".into(),
        },
        6 => {
            let inner = predicate(rng, columns, depth + 1);
            format!(
                "CASE WHEN {inner} THEN {} ELSE {} END",
                rng.pick(&["true", "1=1", "false"]),
                rng.pick(&["false", "NULL", "true"])
            )
        }
        7 => rng
            .pick(&["1=1", "1=0", "true", "NULL IS NULL"])
            .to_string(),
        8 => match columns.of(rng, &[Kind::Date, Kind::Instant]) {
            Some(c) => format!(
                "date_part('{}', {c}) {} {}",
                rng.pick(&["year", "month", "hour"]),
                rng.pick(&["=", "<", ">="]),
                rng.below(2000)
            ),
            None => "1=1".into(),
        },
        9 | 10 => format!(
            "({} {} {})",
            predicate(rng, columns, depth + 1),
            rng.pick(&["AND", "OR"]),
            predicate(rng, columns, depth + 1)
        ),
        11 => format!("NOT ({})", predicate(rng, columns, depth + 1)),
        12 => format!("({}) OR 1=1", predicate(rng, columns, depth + 1)),
        _ => format!(
            "({}) {} ({})",
            predicate(rng, columns, depth + 1),
            rng.pick(&["AND", "OR"]),
            predicate(rng, columns, depth + 1)
        ),
    }
}

fn pred(rng: &mut Rng, columns: &Columns) -> String {
    let depth = if rng.chance(30) { 0 } else { 1 };
    predicate(rng, columns, depth)
}

fn selection(rng: &mut Rng, columns: &Columns) -> String {
    if rng.chance(30) {
        return "*".into();
    }
    let mut picked: Vec<String> = (0..=rng.below(3)).map(|_| columns.any(rng).0).collect();
    picked.dedup();
    picked.join(", ")
}

/// One consumer SQL query over table `t` (the enforced view, or the reference).
fn sql_query(rng: &mut Rng, columns: &Columns) -> String {
    let p = pred(rng, columns);
    match rng.below(12) {
        0..=2 => format!("SELECT {} FROM t WHERE {p}", selection(rng, columns)),
        3 => format!("SELECT count(*) AS n FROM t WHERE {p}"),
        4 => {
            let (c, _) = columns.any(rng);
            let q = pred(rng, columns);
            format!(
                "SELECT {c} FROM t WHERE {p} UNION{} SELECT {c} FROM t WHERE {q}",
                if rng.chance(50) { " ALL" } else { "" }
            )
        }
        5 => {
            let (c, _) = columns.any(rng);
            let q = pred(rng, columns);
            match rng.below(3) {
                0 => format!(
                    "SELECT {} FROM t WHERE {c} {}IN (SELECT {c} FROM t WHERE {q})",
                    selection(rng, columns),
                    if rng.chance(30) { "NOT " } else { "" }
                ),
                1 => format!(
                    "SELECT count(*) AS n FROM t AS o WHERE EXISTS (SELECT 1 FROM t AS i WHERE i.{c} = o.{c} AND {q})"
                ),
                _ => {
                    format!("SELECT (SELECT count(*) FROM t WHERE {q}) AS n, {c} FROM t WHERE {p}")
                }
            }
        }
        6 => {
            let q = pred(rng, columns);
            format!(
                "WITH c AS (SELECT * FROM t WHERE {p}) SELECT {} FROM c WHERE {q}",
                selection(rng, columns)
            )
        }
        7 => {
            let (key, _) = columns.any(rng);
            let (a, _) = columns.any(rng);
            let (b, _) = columns.any(rng);
            let on_left = pred(rng, &Columns(columns.0, "l."));
            format!(
                "SELECT l.{a}, r.{b} FROM t AS l {} JOIN t AS r ON l.{key} = r.{key} WHERE {on_left}",
                rng.pick(&["", "LEFT", "FULL"]),
            )
        }
        8 => {
            let (g, _) = columns.any(rng);
            format!("SELECT {g}, count(*) AS n FROM t WHERE {p} GROUP BY {g}")
        }
        9 => {
            let selected = selection(rng, columns);
            let order = if selected == "*" {
                columns
                    .0
                    .iter()
                    .map(|(n, _)| format!("\"{n}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            } else {
                selected.clone()
            };
            format!(
                "SELECT {selected} FROM t WHERE {p} ORDER BY {order} LIMIT {}",
                rng.below(20)
            )
        }
        10 => match columns.of(rng, &[Kind::Int, Kind::Date, Kind::Instant, Kind::Text]) {
            Some(c) => {
                format!("SELECT min({c}) AS lo, max({c}) AS hi, count({c}) AS n FROM t WHERE {p}")
            }
            None => format!("SELECT count(*) AS n FROM t WHERE {p}"),
        },
        _ => format!(
            "SELECT {} FROM (SELECT * FROM t WHERE {p}) AS s WHERE {}",
            selection(rng, columns),
            pred(rng, columns)
        ),
    }
}

/// A `Narrowing` as a consumer sends it (`?where=…&columns=…&limit=…`), with the raw filter
/// texts so that a parse refusal is part of what is compared.
fn narrowing_texts(rng: &mut Rng) -> (Vec<String>, Option<Vec<String>>, Option<usize>) {
    let ops = ["eq", "neq", "lt", "lteq", "gt", "gteq"];
    let filters = (0..rng.below(3))
        .map(|_| {
            let (name, kind) = *rng.pick(&COLUMNS);
            let value = match (rng.below(6), kind) {
                (0, _) => (*rng.pick(&[
                    "1 OR 1=1",
                    "' OR '1'='1",
                    "true OR 1=1",
                    "NaN",
                    "",
                    "1;DROP",
                ]))
                .to_owned(),
                (_, Kind::Text) => {
                    (*rng.pick(&["F", "M", "Berlin", "bremen", "10005", "P00007"])).to_owned()
                }
                (_, Kind::Bool) => (*rng.pick(&["true", "false"])).to_owned(),
                (_, Kind::Int) => format!("{}", rng.below(100)),
                (_, Kind::Float) => format!("{}.{}", rng.below(60), rng.below(10)),
                (_, Kind::Date) => format!("{}-01-01", 1920 + rng.below(80)),
                (_, Kind::Instant) => format!("2025-{:02}-01T00:00:00", 1 + rng.below(12)),
            };
            format!("{name}:{}:{value}", rng.pick(&ops))
        })
        .collect();
    let columns = rng.chance(40).then(|| {
        (0..=rng.below(3))
            .map(|_| rng.pick(&COLUMNS).0.to_owned())
            .collect::<Vec<_>>()
    });
    let limit = rng.chance(30).then(|| rng.below(50));
    (filters, columns, limit)
}

// ---------------------------------------------------------------------------------------------
// Running and comparing.

fn rows_of(batches: &[RecordBatch]) -> Vec<String> {
    let options = FormatOptions::default().with_null("∅");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for row in 0..batch.num_rows() {
            rows.push(
                formatters
                    .iter()
                    .map(|f| f.value(row).to_string())
                    .collect::<Vec<_>>()
                    .join(" | "),
            );
        }
    }
    rows
}

type Outcome = Result<Vec<String>, String>;

async fn outcome(frame: datafusion::common::Result<DataFrame>, sorted: bool) -> Outcome {
    let batches = frame
        .map_err(|e| e.to_string())?
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    let mut rows = rows_of(&batches);
    if sorted {
        rows.sort();
    }
    Ok(rows)
}

fn same(enforced: &Outcome, expected: &Outcome) -> bool {
    match (enforced, expected) {
        (Ok(a), Ok(b)) => a == b,
        (Err(_), Err(_)) => true,
        _ => false,
    }
}

fn reference_context(columns: &[(String, Kind)], rows: &[Vec<Val>]) -> SessionContext {
    let batch = batch(columns, rows);
    let table = MemTable::try_new(batch.schema(), vec![vec![batch]]).unwrap();
    let context = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
    context.register_table("t", Arc::new(table)).unwrap();
    context
}

/// The expected outcome of a `Narrowing` on the reference table: the same refusals the data
/// plane promises (a column that is pseudonymised or not released, a value not of the
/// column's type), else the filters, columns and limit applied to the `MemTable`.
async fn expected_narrowing(
    context: &SessionContext,
    plan: &EnforcementPlan,
    filters: &[String],
    wanted: &Option<Vec<String>>,
    limit: Option<usize>,
) -> Outcome {
    let mut frame = context.table("t").await.map_err(|e| e.to_string())?;
    for text in filters {
        let filter: ConsumerFilter = text
            .parse()
            .map_err(|e: agora::engine::EngineError| e.to_string())?;
        if plan.pseudonymised_columns.contains(&filter.column) {
            return Err("pseudonymised".into());
        }
        let Some(field) = frame
            .schema()
            .fields()
            .iter()
            .find(|f| f.name() == &filter.column)
            .cloned()
        else {
            return Err("not released".into());
        };
        let value = ScalarValue::try_from_string(filter.value.clone(), field.data_type())
            .map_err(|e| e.to_string())?;
        let target = col(datafusion::common::Column::new_unqualified(&filter.column));
        let value = lit(value);
        let condition = match filter.operator {
            FilterOperator::Eq => target.eq(value),
            FilterOperator::Neq => target.not_eq(value),
            FilterOperator::Lt => target.lt(value),
            FilterOperator::Lteq => target.lt_eq(value),
            FilterOperator::Gt => target.gt(value),
            FilterOperator::Gteq => target.gt_eq(value),
            _ => unreachable!("consumer filters are comparisons"),
        };
        frame = frame.filter(condition).map_err(|e| e.to_string())?;
    }
    if let Some(wanted) = wanted {
        for name in wanted {
            if frame.schema().field_with_unqualified_name(name).is_err() {
                return Err("not released".into());
            }
        }
        frame = frame
            .select(
                wanted
                    .iter()
                    .map(|c| col(datafusion::common::Column::new_unqualified(c)))
                    .collect::<Vec<_>>(),
            )
            .map_err(|e| e.to_string())?;
    }
    if let Some(limit) = limit {
        frame = frame.limit(0, Some(limit)).map_err(|e| e.to_string())?;
    }
    outcome(Ok(frame), false).await
}

struct Tally {
    checked: usize,
    sql: usize,
    narrowings: usize,
    both_refused: usize,
    rows_compared: usize,
    diffs: Vec<String>,
}

fn queries_wanted() -> usize {
    std::env::var("AGORA_R22_QUERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

fn seed() -> u64 {
    std::env::var("AGORA_R22_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x0022_5eed)
}

async fn run(plans: usize, queries: usize, seed: u64) -> Tally {
    // Any seed but one gives a distinct, non-zero xorshift state.
    let mut rng = Rng((seed ^ 0x9e37_79b9_7f4a_7c15).max(1));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fixture.parquet");
    let rows = fixture_rows(&mut rng, 240);
    write_parquet(&path, &rows);
    let stores = Arc::new(DefaultObjectStoreRegistry::new());
    let source = Source {
        path: &path,
        format: "parquet",
        stores,
    };
    let key = agreement_key(&[0x22; 32], "urn:uuid:r22-differential");
    let mut tally = Tally {
        checked: 0,
        sql: 0,
        narrowings: 0,
        both_refused: 0,
        rows_compared: 0,
        diffs: Vec::new(),
    };
    let per_plan = queries.div_ceil(plans);
    for p in 0..plans {
        let plan = if p == 0 {
            template_plan()
        } else {
            random_plan(&mut rng)
        };
        let (columns, released) = reference(&plan, &key, &rows);
        let expected_context = reference_context(&columns, &released);
        // The node's enforced view, as a table for SQL, in the node's own session.
        let view = enforced_view(&source, &plan, key, &Narrowing::default())
            .await
            .expect("enforced view");
        let (state, logical) = view.into_parts();
        let node_context = SessionContext::new_with_state(state.clone());
        node_context
            .register_table("t", DataFrame::new(state, logical).into_view())
            .unwrap();
        let names = Columns(&columns, "");
        for _ in 0..per_plan {
            let (enforced, expected, label) = if rng.chance(25) {
                let (filters, wanted, limit) = narrowing_texts(&mut rng);
                let parsed: Result<Vec<ConsumerFilter>, _> =
                    filters.iter().map(|f| f.parse()).collect();
                let enforced = match parsed {
                    Err(e) => Err(format!("{e}")),
                    Ok(filters) => {
                        let narrowing = Narrowing {
                            columns: wanted.clone(),
                            filters,
                            limit,
                        };
                        match enforced_view(&source, &plan, key, &narrowing).await {
                            Err(e) => Err(e.to_string()),
                            Ok(frame) => outcome(Ok(frame), false).await,
                        }
                    }
                };
                let expected =
                    expected_narrowing(&expected_context, &plan, &filters, &wanted, limit).await;
                tally.narrowings += 1;
                (
                    enforced,
                    expected,
                    format!("narrowing where={filters:?} columns={wanted:?} limit={limit:?}"),
                )
            } else {
                let query = sql_query(&mut rng, &names);
                let enforced = outcome(node_context.sql(&query).await, true).await;
                let expected = outcome(expected_context.sql(&query).await, true).await;
                tally.sql += 1;
                (enforced, expected, query)
            };
            tally.checked += 1;
            match (&enforced, &expected) {
                (Err(_), Err(_)) => tally.both_refused += 1,
                (Ok(rows), _) => tally.rows_compared += rows.len(),
                _ => {}
            }
            if !same(&enforced, &expected) && tally.diffs.len() < 10 {
                tally.diffs.push(format!(
                    "plan {p}: {plan:?}\nquery: {label}\nenforced: {}\nexpected: {}",
                    brief(&enforced),
                    brief(&expected)
                ));
            }
        }
    }
    tally
}

fn brief(outcome: &Outcome) -> String {
    match outcome {
        Ok(rows) => format!(
            "{} rows {:?}",
            rows.len(),
            rows.iter().take(6).collect::<Vec<_>>()
        ),
        Err(e) => format!("error: {}", e.chars().take(300).collect::<String>()),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// ≥ 10,000 generated consumer queries (SQL and `Narrowing`) over 40 policies (the health
/// template's compiled plan and 39 generated ones): 0 differences.
#[test]
fn generated_queries_see_only_what_the_policy_releases() {
    let queries = queries_wanted();
    let seed = seed();
    let started = std::time::Instant::now();
    let tally = runtime().block_on(run(40, queries, seed));
    eprintln!(
        "R22 differential: {} queries checked ({} SQL, {} narrowings; {} refused on both sides; {} result rows compared), seed {seed}, {} differences, {:.1} s",
        tally.checked,
        tally.sql,
        tally.narrowings,
        tally.both_refused,
        tally.rows_compared,
        tally.diffs.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        tally.checked >= queries,
        "only {} queries ran",
        tally.checked
    );
    // A generator whose queries all fail, or all return nothing, proves nothing.
    assert!(
        tally.both_refused * 5 < tally.checked,
        "{} of {} queries were refused on both sides",
        tally.both_refused,
        tally.checked
    );
    assert!(tally.rows_compared > tally.checked, "too few rows compared");
    assert!(
        tally.diffs.is_empty(),
        "the enforced view and the reference differ:\n\n{}",
        tally.diffs.join("\n\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Fixed regressions: the generator's first findings (docs/SECURITY.md, R22).

/// A one-column fixture (`hba1c`, `age`) under `plan`: the enforced view as table `t`.
async fn small_view(
    dir: &std::path::Path,
    rows: &[(Option<f64>, i64)],
    plan: &EnforcementPlan,
) -> SessionContext {
    let path = dir.join("small.parquet");
    let batch = RecordBatch::try_from_iter([
        (
            "hba1c",
            Arc::new(Float64Array::from(
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            )) as ArrayRef,
        ),
        (
            "age",
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            )) as ArrayRef,
        ),
    ])
    .unwrap();
    let file = std::fs::File::create(&path).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    let source = Source {
        path: &path,
        format: "parquet",
        stores: Arc::new(DefaultObjectStoreRegistry::new()),
    };
    let view = enforced_view(&source, plan, [1; 32], &Narrowing::default())
        .await
        .unwrap();
    let (state, logical) = view.into_parts();
    let context = SessionContext::new_with_state(state.clone());
    context
        .register_table("t", DataFrame::new(state, logical).into_view())
        .unwrap();
    context
}

fn row_filter(column: &str, operator: FilterOperator, values: Vec<ColumnValue>) -> EnforcementPlan {
    EnforcementPlan {
        row_filters: vec![RowFilter {
            column: column.into(),
            operator,
            values,
        }],
        ..EnforcementPlan::default()
    }
}

/// Finding 1: a policy's numeric row filter compared floats by Arrow's total order, so NaN
/// satisfied `gt`, `gteq`, `neq` and `isNoneOf` (a NaN row was released by
/// `hba1c isNoneOf [0.0]`), -0.0 satisfied `lt 0` and `isNoneOf [0]`, and a comparison with a
/// NaN right operand (`lt NaN`) released every number. Now NaN satisfies nothing (like a
/// null), -0.0 is 0.0, and a NaN operand releases nothing.
#[test]
fn a_policy_float_filter_compares_numbers_not_bit_patterns() {
    use FilterOperator::*;
    let rows = [
        (Some(f64::NAN), 1),
        (Some(-0.0), 2),
        (Some(0.0), 3),
        (Some(5.0), 4),
        (None, 5),
    ];
    let cases: [(FilterOperator, Vec<ColumnValue>, &[i64]); 9] = [
        (Gt, vec![ColumnValue::Double(1.0)], &[4]),
        (Gteq, vec![ColumnValue::Integer(0)], &[2, 3, 4]),
        (Neq, vec![ColumnValue::Double(0.0)], &[4]),
        (IsNoneOf, vec![ColumnValue::Double(0.0)], &[4]),
        (
            IsNoneOf,
            vec![ColumnValue::Integer(0), ColumnValue::Integer(7)],
            &[4],
        ),
        (Lt, vec![ColumnValue::Integer(0)], &[]),
        (Eq, vec![ColumnValue::Decimal("-0.0".into())], &[2, 3]),
        (Lt, vec![ColumnValue::Double(f64::NAN)], &[]),
        (Neq, vec![ColumnValue::Decimal("NaN".into())], &[]),
    ];
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        for (operator, values, released) in cases {
            let plan = row_filter("hba1c", operator, values.clone());
            let context = small_view(dir.path(), &rows, &plan).await;
            let got = outcome(context.sql("SELECT age FROM t").await, true)
                .await
                .unwrap();
            let want: Vec<String> = released.iter().map(i64::to_string).collect();
            assert_eq!(got, want, "hba1c {operator:?} {values:?}");
        }
    });
}

/// Finding 2: the optimiser merged a consumer's filter into the policy's filter, and the
/// conjunction was evaluated on every row of the batch, so `100 / (age - 3)` failed with
/// "Divide by zero" because of the row with age 3 that the policy hides (an oracle for a
/// hidden value). The policy's rows are now fenced off below the consumer's plan.
#[test]
fn a_consumer_expression_never_runs_on_a_hidden_row() {
    let rows = [
        (Some(1.0), 1),
        (Some(2.0), 2),
        (Some(9.0), 3),
        (Some(4.0), 4),
        (Some(5.0), 5),
    ];
    let plan = row_filter("hba1c", FilterOperator::Lt, vec![ColumnValue::Integer(6)]);
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let context = small_view(dir.path(), &rows, &plan).await;
        for (query, released) in [
            ("SELECT age FROM t WHERE 100 / (age - 3) > 0", "4 5"),
            (
                "SELECT age FROM t WHERE NOT (100 / (age - 3) > 1000)",
                "1 2 4 5",
            ),
            (
                "SELECT l.age FROM t AS l JOIN t AS r ON l.age = r.age WHERE 100 / (l.age - 3) > 0",
                "4 5",
            ),
            (
                "WITH c AS (SELECT * FROM t) SELECT age FROM c WHERE 100 / (age - 3) > 0",
                "4 5",
            ),
        ] {
            let got = outcome(context.sql(query).await, true).await;
            let want = released.split(' ').map(str::to_owned).collect::<Vec<_>>();
            assert_eq!(got, Ok(want), "{query}");
        }
    });
}
