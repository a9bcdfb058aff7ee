//! Differential tests of the data plane: for each demo pool under its policy template, what the
//! node delivers — as an Arrow stream and as Parquet shards — equals an independent computation
//! of what the policy allows, done here with arrow-rs over the raw files (no DataFusion, no
//! policy compiler): the consent filter, dropped columns, keyed HMAC pseudonyms (the key derived
//! from the node's secret and the agreement id), dates reduced to the year, times to the hour and
//! coordinates to a 0.01° grid. Rows are compared as multisets of formatted values, so the test
//! does not depend on the order files are read in. Flight and Delta Sharing are compared with the
//! Arrow stream in their own tests.

use super::common::{Options, TestNode, bearer, pull_rights};
use agora::engine::enforce::{agreement_key, hmac_sha256};
use chrono::Datelike as _;
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Date32Array, Float64Array, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::sync::Arc;

/// What a pool's template does to each column, written out by hand from `policies/`.
#[derive(Clone, Copy)]
enum Treatment {
    Keep,
    Drop,
    Pseudonymise,
    Year,
    Hour,
    Grid,
}

fn treatment(pool: &str, column: &str) -> Treatment {
    use Treatment::*;
    match (pool, column) {
        ("health", "postcode") => Drop,
        ("health", "patient_id" | "national_id" | "name") => Pseudonymise,
        ("health", "birth_date") => Year,
        ("mobility", "vehicle_id") => Pseudonymise,
        ("mobility", "start_time" | "end_time") => Hour,
        ("mobility", "origin_lat" | "origin_lon" | "dest_lat" | "dest_lon") => Grid,
        _ => Keep,
    }
}

/// Formats every row of `batches` as one string per column, sorted.
fn rows(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let options = FormatOptions::default().with_null("∅");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for i in 0..batch.num_rows() {
            rows.push(formatters.iter().map(|f| f.value(i).to_string()).collect());
        }
    }
    rows.sort();
    rows
}

/// The pool's raw files, read with arrow-rs, with the template applied by hand.
fn expected(node: &TestNode, pool: &str, agreement: &str) -> (Vec<String>, Vec<RecordBatch>) {
    let secret: [u8; 32] = std::fs::read(node.data_dir.join("keys/pseudonym.key"))
        .unwrap()
        .try_into()
        .unwrap();
    let key = agreement_key(&secret, agreement);
    let pseudonym = |text: &str| hex::encode(&hmac_sha256(&key, text.as_bytes())[..16]);
    let mut names = Vec::new();
    let mut batches = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(node.data_dir.join("pools").join(pool))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    for path in files {
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let mut batch = batch.unwrap();
            if pool == "health" {
                let consent = batch
                    .column_by_name("consent_secondary_use")
                    .unwrap()
                    .as_any()
                    .downcast_ref::<BooleanArray>()
                    .unwrap();
                let keep: BooleanArray = consent.iter().map(|v| Some(v == Some(true))).collect();
                batch = filter_record_batch(&batch, &keep).unwrap();
            }
            let schema = batch.schema();
            let mut columns: Vec<ArrayRef> = Vec::new();
            names.clear();
            for (field, column) in schema.fields().iter().zip(batch.columns()) {
                let released: ArrayRef = match treatment(pool, field.name()) {
                    Treatment::Drop => continue,
                    Treatment::Keep => column.clone(),
                    Treatment::Pseudonymise => {
                        let text = column.as_any().downcast_ref::<StringArray>().unwrap();
                        Arc::new(
                            text.iter()
                                .map(|v| v.map(pseudonym))
                                .collect::<StringArray>(),
                        )
                    }
                    Treatment::Year => {
                        let dates = column.as_any().downcast_ref::<Date32Array>().unwrap();
                        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
                        Arc::new(
                            dates
                                .iter()
                                .map(|v| {
                                    v.map(|days| {
                                        let date = epoch + chrono::Duration::days(i64::from(days));
                                        let first =
                                            chrono::NaiveDate::from_ymd_opt(date.year(), 1, 1)
                                                .unwrap();
                                        (first - epoch).num_days() as i32
                                    })
                                })
                                .collect::<Date32Array>(),
                        )
                    }
                    Treatment::Hour => {
                        let times = column
                            .as_any()
                            .downcast_ref::<TimestampMillisecondArray>()
                            .unwrap();
                        Arc::new(
                            times
                                .iter()
                                .map(|v| v.map(|ms| ms - ms.rem_euclid(3_600_000)))
                                .collect::<TimestampMillisecondArray>()
                                .with_timezone_opt(times.timezone()),
                        )
                    }
                    Treatment::Grid => {
                        let values = column.as_any().downcast_ref::<Float64Array>().unwrap();
                        Arc::new(
                            values
                                .iter()
                                .map(|v| v.map(|x| (x / 0.01).floor() * 0.01))
                                .collect::<Float64Array>(),
                        )
                    }
                };
                names.push(field.name().clone());
                columns.push(released);
            }
            let fields: Vec<_> = names
                .iter()
                .zip(&columns)
                .map(|(n, c)| {
                    datafusion::arrow::datatypes::Field::new(n, c.data_type().clone(), true)
                })
                .collect();
            batches.push(
                RecordBatch::try_new(
                    Arc::new(datafusion::arrow::datatypes::Schema::new(fields)),
                    columns,
                )
                .unwrap(),
            );
        }
    }
    (names, batches)
}

fn streamed(node: &TestNode, agreement: &str, token: &str) -> Vec<RecordBatch> {
    let response = node.get(
        &format!("/data/{agreement}/arrow"),
        &[("Authorization", &bearer(token))],
    );
    assert_eq!(response.status, 200, "{}", response.text());
    StreamReader::try_new(std::io::Cursor::new(response.body), None)
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn sharded(node: &TestNode, agreement: &str, token: &str) -> Vec<RecordBatch> {
    let auth = bearer(token);
    let plan = node.get(
        &format!("/data/{agreement}/shards?world_size=1"),
        &[("Authorization", &auth)],
    );
    assert_eq!(plan.status, 200, "{}", plan.text());
    let mut batches = Vec::new();
    for shard in plan.json()["shards"].as_array().unwrap() {
        let n = shard["n"].as_u64().unwrap();
        let file = node.get(
            &format!("/data/{agreement}/shards/{n}"),
            &[("Authorization", &auth)],
        );
        assert_eq!(file.status, 200, "{}", file.text());
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(file.body))
            .unwrap()
            .build()
            .unwrap();
        batches.extend(reader.map(Result::unwrap));
    }
    batches
}

fn column_names(batches: &[RecordBatch]) -> Vec<String> {
    batches
        .first()
        .map(|b| {
            b.schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect()
        })
        .unwrap_or_default()
}

fn data_types(batches: &[RecordBatch]) -> Vec<DataType> {
    batches
        .first()
        .map(|b| {
            b.schema()
                .fields()
                .iter()
                .map(|f| f.data_type().clone())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_pool_delivers_exactly_what_its_template_allows_on_every_channel() {
    let node = TestNode::start(Options {
        demo: true,
        ..Options::default()
    });
    for pool in ["health", "mobility", "climate"] {
        let (agreement, _, token) = pull_rights(&node, "alice", pool);
        let (names, reference) = expected(&node, pool, &agreement);
        let want = rows(&reference);
        for (channel, delivered) in [
            ("arrow", streamed(&node, &agreement, &token)),
            ("shards", sharded(&node, &agreement, &token)),
        ] {
            assert_eq!(column_names(&delivered), names, "{pool} over {channel}");
            assert_eq!(
                data_types(&delivered),
                data_types(&reference),
                "{pool} over {channel}"
            );
            let got = rows(&delivered);
            assert_eq!(got.len(), want.len(), "{pool} over {channel}: row count");
            if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
                panic!(
                    "{pool} over {channel}: first difference\n got  {:?}\n want {:?}",
                    got[i], want[i]
                );
            }
        }
    }
}
