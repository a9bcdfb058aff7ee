//! Aggregates under an agreement (`GET /data/{agreement}/aggregate`): the cells equal an
//! independent count over the raw health files (consenting rows only); no released cell counts fewer than the policy's minimum group size (11), and no
//! withheld cell can be recovered by subtraction along any line of the table; pseudonymised
//! columns, minima, maxima and filters that would enable differencing are refused.

use super::common::{Options, TestNode, bearer, pull_rights};
use datafusion::arrow::array::{Array, BooleanArray, Float64Array, Int64Array, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value as Json;
use std::collections::HashMap;

/// One consenting row of the raw health pool, read independently of the node.
struct RawRow {
    sex: String,
    chapter: String,
    systolic_bp: i64,
    hba1c: Option<f64>,
}

fn raw_rows(node: &TestNode) -> Vec<RawRow> {
    let mut rows = Vec::new();
    for entry in std::fs::read_dir(node.data_dir.join("pools/health")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "parquet") {
            continue;
        }
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let column = |name: &str| batch.column_by_name(name).unwrap().clone();
            let consent = column("consent_secondary_use");
            let consent = consent.as_any().downcast_ref::<BooleanArray>().unwrap();
            let sex = column("sex");
            let sex = sex.as_any().downcast_ref::<StringArray>().unwrap();
            let chapter = column("icd10_chapter");
            let chapter = chapter.as_any().downcast_ref::<StringArray>().unwrap();
            let systolic = column("systolic_bp");
            let systolic = systolic.as_any().downcast_ref::<Int64Array>().unwrap();
            let hba1c = column("hba1c");
            let hba1c = hba1c.as_any().downcast_ref::<Float64Array>().unwrap();
            for i in 0..batch.num_rows() {
                if consent.is_valid(i) && consent.value(i) && systolic.is_valid(i) {
                    rows.push(RawRow {
                        sex: sex.value(i).to_owned(),
                        chapter: chapter.value(i).to_owned(),
                        systolic_bp: systolic.value(i),
                        hba1c: hba1c.is_valid(i).then(|| hba1c.value(i)),
                    });
                }
            }
        }
    }
    rows
}

fn aggregate(
    node: &TestNode,
    agreement: &str,
    token: &str,
    query: &str,
) -> super::common::Response {
    node.get(
        &format!("/data/{agreement}/aggregate{query}"),
        &[("Authorization", &bearer(token))],
    )
}

/// Along every line of the table (cells equal in all grouping columns but one), the withheld
/// cells are either none, at least two that together count at least `k`, or the whole line when
/// it counts fewer than `k` in all.
fn assert_no_cell_derivable(table: &Json, raw: &HashMap<Vec<String>, u64>, k: u64) {
    let group_by: Vec<String> = table["groupBy"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap().to_owned())
        .collect();
    let cells: Vec<(Vec<String>, bool)> = table["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let key = group_by.iter().map(|g| c["group"][g].to_string()).collect();
            (key, c.get("suppressed").is_some())
        })
        .collect();
    for (dimension, along) in group_by.iter().enumerate() {
        let mut lines: HashMap<Vec<String>, Vec<&(Vec<String>, bool)>> = HashMap::new();
        for cell in &cells {
            let mut line = cell.0.clone();
            line.remove(dimension);
            lines.entry(line).or_default().push(cell);
        }
        for (line, members) in lines {
            let withheld: Vec<_> = members.iter().filter(|c| c.1).collect();
            if withheld.is_empty() {
                continue;
            }
            let rows: u64 = withheld.iter().map(|c| raw[&c.0]).sum();
            // Safe: two or more withheld cells that together reach k, or a whole line under k
            // (its total, released by a coarser query, is withheld there too).
            let whole_line_under_k = withheld.len() == members.len() && rows < k;
            assert!(
                (withheld.len() >= 2 && rows >= k) || whole_line_under_k,
                "line {line:?} along {along} leaves a withheld cell derivable: {} withheld, {rows} rows",
                withheld.len()
            );
        }
    }
}

#[test]
fn health_aggregates_equal_the_raw_counts_with_small_cells_suppressed() {
    let node = TestNode::start(Options {
        demo: true,
        ..Options::default()
    });
    let (agreement, _, token) = pull_rights(&node, "alice", "health");
    let raw = raw_rows(&node);

    // A coarse table: every cell is large, nothing is withheld, counts and means are exact.
    let coarse = aggregate(
        &node,
        &agreement,
        &token,
        "?group_by=sex,icd10_chapter&measures=avg:hba1c",
    );
    assert_eq!(coarse.status, 200, "{}", coarse.text());
    let coarse = coarse.json();
    assert_eq!(coarse["minGroupSize"], 11);
    let mut expected: HashMap<(String, String), (u64, f64)> = HashMap::new();
    let mut hba1c_counts: HashMap<(String, String), u64> = HashMap::new();
    for row in &raw {
        let key = (row.sex.clone(), row.chapter.clone());
        let cell = expected.entry(key.clone()).or_default();
        cell.0 += 1;
        if let Some(v) = row.hba1c {
            cell.1 += v;
            *hba1c_counts.entry(key).or_default() += 1;
        }
    }
    let cells = coarse["cells"].as_array().unwrap();
    assert_eq!(cells.len(), expected.len());
    for cell in cells {
        let key = (
            cell["group"]["sex"].as_str().unwrap().to_owned(),
            cell["group"]["icd10_chapter"].as_str().unwrap().to_owned(),
        );
        let (n, sum) = expected[&key];
        if n >= 11 && cell.get("suppressed").is_none() {
            assert_eq!(cell["count"].as_u64().unwrap(), n, "{key:?}");
            let mean = cell["values"]["avg:hba1c"].as_f64().unwrap();
            let measured = hba1c_counts[&key] as f64;
            assert!((mean - sum / measured).abs() < 1e-6, "{key:?}: {mean}");
        }
    }

    // A fine table (sex × blood pressure) has small cells in its tails: withheld, and protected.
    let fine = aggregate(&node, &agreement, &token, "?group_by=sex,systolic_bp");
    assert_eq!(fine.status, 200, "{}", fine.text());
    let fine = fine.json();
    let smallest = fine["cells"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["count"].as_u64())
        .min();
    assert!(
        fine["suppressed"]["primary"].as_u64().unwrap() > 0,
        "{} of {} cells, smallest {smallest:?}: {}",
        fine["suppressed"],
        fine["cells"].as_array().unwrap().len(),
        fine["cells"][0]
    );
    let mut by_key = HashMap::new();
    for row in &raw {
        *by_key
            .entry(vec![
                Json::from(row.sex.clone()).to_string(),
                Json::from(row.systolic_bp).to_string(),
            ])
            .or_insert(0) += 1;
    }
    for cell in fine["cells"].as_array().unwrap() {
        let key: Vec<String> = ["sex", "systolic_bp"]
            .iter()
            .map(|g| cell["group"][g].to_string())
            .collect();
        let n = by_key[&key];
        match cell.get("suppressed") {
            None => {
                assert!(n >= 11, "a cell of {n} was released: {cell}");
                assert_eq!(cell["count"].as_u64().unwrap(), n);
            }
            Some(_) => assert!(cell["count"].is_null(), "{cell}"),
        }
        if n < 11 {
            assert_eq!(cell["suppressed"], "primary", "{cell}");
        }
    }
    assert_no_cell_derivable(&fine, &by_key, 11);

    // A grouping so fine that a small group would be derivable from coarser tables whatever
    // is withheld is not released at all.
    let too_fine = aggregate(
        &node,
        &agreement,
        &token,
        "?group_by=sex,icd10_chapter,systolic_bp",
    )
    .assert_problem(400);
    assert!(
        too_fine["detail"].as_str().unwrap().contains("too fine"),
        "{too_fine}"
    );

    // Whatever could single out a person is refused with a reason.
    for (query, reason) in [
        ("?group_by=patient_id", "pseudonymised"),
        ("?measures=avg:patient_id", "pseudonymised"),
        ("?group_by=postcode", "not released"),
        ("?measures=max:hba1c", "one person's value"),
        ("?group_by=sex&where=hba1c:gt:60", "cannot be filtered"),
        ("?measures=median:hba1c", "function:column"),
        ("?measures=sum:sex", "numeric"),
        ("?group_by=a,b,c,d,e", "at most 4"),
        ("?bogus=1", ""),
    ] {
        let refused = aggregate(&node, &agreement, &token, query).assert_problem(400);
        assert!(
            refused["detail"]
                .as_str()
                .unwrap_or_default()
                .contains(reason),
            "{query}: {refused}"
        );
    }

    // Another agreement's token opens nothing here, and the audit log records the release.
    let (_, _, other) = pull_rights(&node, "bob", "health");
    aggregate(&node, &agreement, &other, "?group_by=sex").assert_problem(403);
    let audit = std::fs::read_to_string(node.data_dir.join("audit/log.jsonl")).unwrap();
    assert!(
        audit
            .lines()
            .any(|l| l.contains("\"aggregate\"") && l.contains(&agreement)),
        "no audit entry for the aggregate"
    );
}
