//! The governed data plane: `GET /data/{agreement}/arrow` releases exactly what the agreed
//! policy allows, checked against an independent reading of the raw Parquet files (row
//! filters, dropped, pseudonymised and generalised columns), with pseudonyms keyed per
//! agreement, consumer narrowing that cannot widen the view, and tokens that open only their
//! own agreement while its transfer runs.

use super::common::{Options, Response, TestNode, bearer, pull_rights, researcher};
use agora::identity::Role;
use datafusion::arrow::array::{Array, BooleanArray, Date32Array, RecordBatch, StringArray};
use datafusion::arrow::ipc::reader::StreamReader;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Value as Json, json};
use std::collections::HashSet;

fn pull(node: &TestNode, agreement: &str, token: &str, query: &str) -> Response {
    node.get(
        &format!("/data/{agreement}/arrow{query}"),
        &[("Authorization", &bearer(token))],
    )
}

fn batches(response: &Response) -> Vec<RecordBatch> {
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        response.header("content-type"),
        Some("application/vnd.apache.arrow.stream")
    );
    StreamReader::try_new(std::io::Cursor::new(response.body.clone()), None)
        .expect("an Arrow IPC stream")
        .collect::<Result<Vec<_>, _>>()
        .expect("complete batches")
}

fn strings(batches: &[RecordBatch], column: &str) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let array = b
                .column_by_name(column)
                .unwrap_or_else(|| panic!("no column {column}"));
            let array = array
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("utf8")
                .clone();
            (0..array.len())
                .map(move |i| array.value(i).to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The raw health pool, read independently of the node: (patient ids with consent, rows with
/// consent, every raw direct identifier).
fn raw_health(node: &TestNode) -> (usize, HashSet<String>) {
    let mut consenting = 0;
    let mut identifiers = HashSet::new();
    let dir = node.data_dir.join("pools/health");
    for entry in std::fs::read_dir(&dir).unwrap() {
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
            let consent = batch
                .column_by_name("consent_secondary_use")
                .unwrap()
                .as_any()
                .downcast_ref::<BooleanArray>()
                .unwrap()
                .clone();
            consenting += (0..consent.len())
                .filter(|&i| consent.is_valid(i) && consent.value(i))
                .count();
            for column in ["patient_id", "national_id", "name"] {
                let values = batch
                    .column_by_name(column)
                    .unwrap()
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .unwrap()
                    .clone();
                identifiers.extend((0..values.len().min(200)).map(|i| values.value(i).to_owned()));
            }
        }
    }
    (consenting, identifiers)
}

/// The health pool under the EHDS-style template: only consenting patients, no postcode,
/// direct identifiers pseudonymised, birth dates reduced to the year — equal to an independent
/// reading of the raw files, and no raw identifier anywhere in the bytes sent.
#[test]
fn the_health_stream_is_exactly_what_the_policy_releases() {
    let node = TestNode::start(Options {
        demo: true,
        ..Options::default()
    });
    let (agreement, _, token) = pull_rights(&node, "alice", "health");
    let response = pull(&node, &agreement, &token, "");
    let released = batches(&response);
    let schema = released[0].schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert!(!names.contains(&"postcode"), "{names:?}");
    assert!(
        names.contains(&"patient_id") && names.contains(&"birth_date"),
        "{names:?}"
    );

    let (consenting, raw_identifiers) = raw_health(&node);
    let rows: usize = released.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(
        rows, consenting,
        "released rows = consenting rows of the raw files"
    );
    for batch in &released {
        let consent = batch
            .column_by_name("consent_secondary_use")
            .unwrap()
            .as_any()
            .downcast_ref::<BooleanArray>()
            .unwrap();
        assert!((0..consent.len()).all(|i| consent.value(i)));
        let births = batch
            .column_by_name("birth_date")
            .unwrap()
            .as_any()
            .downcast_ref::<Date32Array>()
            .unwrap();
        for i in 0..births.len() {
            let date = births.value_as_date(i).unwrap();
            assert_eq!(
                (chrono::Datelike::month(&date), chrono::Datelike::day(&date)),
                (1, 1),
                "birth dates are generalised to the year"
            );
        }
    }
    for column in ["patient_id", "national_id", "name"] {
        let values = strings(&released, column);
        assert!(
            values
                .iter()
                .all(|v| v.len() == 32 && v.chars().all(|c| c.is_ascii_hexdigit())),
            "{column}: {:?}",
            &values[..3]
        );
    }
    // No raw identifier in any released text column (the IPC body holds nothing else).
    let mut released_text = HashSet::new();
    for field in schema.fields() {
        if field.data_type() == &datafusion::arrow::datatypes::DataType::Utf8 {
            released_text.extend(strings(&released, field.name()));
        }
    }
    let leaked: Vec<&String> = raw_identifiers
        .intersection(&released_text)
        .take(3)
        .collect();
    assert!(
        leaked.is_empty(),
        "raw identifiers in the stream: {leaked:?}"
    );
}

/// The same patient gets the same pseudonym within one agreement and different ones under two
/// agreements, so consumers cannot link their data.
#[test]
fn pseudonyms_are_keyed_per_agreement() {
    let node = TestNode::start(Options {
        demo: true,
        ..Options::default()
    });
    let (a, _, token_a) = pull_rights(&node, "alice", "health");
    let (b, _, token_b) = pull_rights(&node, "bob", "health");
    let first = strings(
        &batches(&pull(&node, &a, &token_a, "?columns=patient_id&limit=50")),
        "patient_id",
    );
    let again = strings(
        &batches(&pull(&node, &a, &token_a, "?columns=patient_id&limit=50")),
        "patient_id",
    );
    let other = strings(
        &batches(&pull(&node, &b, &token_b, "?columns=patient_id&limit=50")),
        "patient_id",
    );
    assert_eq!(first, again);
    assert_eq!(first.len(), 50);
    let a_set: HashSet<&String> = first.iter().collect();
    assert!(
        other.iter().all(|p| !a_set.contains(p)),
        "pseudonyms link across agreements"
    );
}

/// A consumer narrows the view (columns, limit) but cannot name a column the policy withholds.
#[test]
fn narrowing_cannot_widen_the_view() {
    let node = TestNode::start(Options {
        demo: true,
        ..Options::default()
    });
    let (agreement, _, token) = pull_rights(&node, "alice", "health");
    let narrowed = batches(&pull(
        &node,
        &agreement,
        &token,
        "?columns=sex,icd10_code&limit=10",
    ));
    assert_eq!(
        narrowed.iter().map(RecordBatch::num_rows).sum::<usize>(),
        10
    );
    let schema = narrowed[0].schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["sex", "icd10_code"]);
    let withheld = pull(&node, &agreement, &token, "?columns=postcode");
    let problem = withheld.assert_problem(400);
    assert!(
        problem["detail"].as_str().unwrap().contains("not released"),
        "{problem}"
    );
    assert!(
        !problem["detail"].as_str().unwrap().contains("postcode,"),
        "{problem}"
    );
    pull(&node, &agreement, &token, "?limit=-1").assert_problem(400);
    pull(&node, &agreement, &token, "?sql=select").assert_problem(400);
}

/// Tokens open only their own agreement, only as data-plane tokens, only while the transfer
/// runs; every release is audited.
#[test]
fn data_plane_tokens_open_only_their_agreement() {
    let node = TestNode::start(Options {
        demo: true,
        ..Options::default()
    });
    let (a, transfer_a, token_a) = pull_rights(&node, "alice", "climate");
    let (b, _, _) = pull_rights(&node, "bob", "climate");
    pull(&node, &b, &token_a, "?limit=1").assert_problem(403);
    node.get(&format!("/data/{a}/arrow"), &[])
        .assert_problem(401);
    let participant = researcher(&node, "alice");
    pull(&node, &a, &participant, "").assert_problem(401);
    pull(&node, &a, "not.a.jwt", "").assert_problem(401);
    assert_eq!(
        batches(&pull(&node, &a, &token_a, "?limit=5"))
            .iter()
            .map(RecordBatch::num_rows)
            .sum::<usize>(),
        5
    );

    let holder = node.token("demo-holder", Role::Holder, &[]);
    let trail = node
        .get(
            "/api/audit?dataset=climate",
            &[("Authorization", &bearer(&holder))],
        )
        .json();
    let events: Vec<(String, u64)> = trail["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["agreement"] == a.as_str())
        .map(|e| {
            (
                e["event"].as_str().unwrap().to_owned(),
                e["rows"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(
        events.contains(&("release-started".into(), 0)),
        "{events:?}"
    );
    assert!(events.contains(&("release".into(), 5)), "{events:?}");

    let completed = node.send(
        "POST",
        &format!("/api/transfers/{transfer_a}/complete"),
        &[("Authorization", &bearer(&participant))],
        b"",
    );
    assert_eq!(completed.status, 200, "{}", completed.text());
    let after: Json = pull(&node, &a, &token_a, "").assert_problem(403);
    assert!(
        after["detail"].as_str().unwrap().contains("COMPLETED"),
        "{after}"
    );
}

/// A holder's own Parquet file under an allowed root, offered with a pull count and a row
/// budget: pulls are counted and rows are capped across pulls, also after a `kill -9`.
#[test]
fn pull_counts_and_row_budgets_hold_across_pulls_and_restarts() {
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("readings.parquet");
    let schema = std::sync::Arc::new(Schema::new(vec![Field::new(
        "reading",
        DataType::Int64,
        false,
    )]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![std::sync::Arc::new(Int64Array::from_iter_values(0..100))],
    )
    .unwrap();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&file).unwrap(), schema, None)
            .unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();

    let mut node = TestNode::start(Options {
        args: vec!["--allow-root".into(), root.path().display().to_string()],
        ..Options::default()
    });
    let holder = node.token("grid-operator", Role::Holder, &[]);
    let description = String::from_utf8(super::common::fixture("dataset.ttl"))
        .unwrap()
        .replace(
            "dcat:accessURL <https://energy.example/datasets/grid-load-2024/files/>",
            &format!("dcat:downloadURL <file://{}>", file.display()),
        )
        + "@prefix odrl: <http://www.w3.org/ns/odrl/2/> .\n\
         <https://energy.example/datasets/grid-load-2024> odrl:hasPolicy <urn:test:budgeted> .\n\
         <urn:test:budgeted> a odrl:Offer ; odrl:profile <https://w3id.org/agora/profile> ;\n\
           odrl:permission [ odrl:action odrl:use ; odrl:constraint\n\
             [ odrl:leftOperand odrl:count ; odrl:operator odrl:lteq ; odrl:rightOperand 3 ] ,\n\
             [ odrl:leftOperand <https://w3id.org/agora/ns#rowBudget> ; odrl:operator odrl:lteq ; odrl:rightOperand 150 ] ] .\n";
    let published = node.send(
        "POST",
        "/api/datasets",
        &[
            ("Content-Type", "text/turtle"),
            ("Authorization", &bearer(&holder)),
        ],
        description.as_bytes(),
    );
    assert_eq!(published.status, 201, "{}", published.text());
    let dataset = published.json()["id"].as_str().unwrap().to_owned();

    let rows = |response: Response| {
        batches(&response)
            .iter()
            .map(RecordBatch::num_rows)
            .sum::<usize>()
    };
    let (agreement, _, token) = pull_rights(&node, "alice", &dataset);
    assert_eq!(rows(pull(&node, &agreement, &token, "")), 100);
    node.kill9_and_restart();
    assert_eq!(
        rows(pull(&node, &agreement, &token, "")),
        50,
        "only what is left of the 150-row budget"
    );
    let spent = pull(&node, &agreement, &token, "").assert_problem(403);
    assert!(
        spent["detail"].as_str().unwrap().contains("row budget"),
        "{spent}"
    );

    let (agreement, _, token) = pull_rights(&node, "bob", &dataset);
    for _ in 0..3 {
        assert_eq!(rows(pull(&node, &agreement, &token, "?limit=1")), 1);
    }
    let counted = pull(&node, &agreement, &token, "?limit=1").assert_problem(403);
    assert!(
        counted["detail"]
            .as_str()
            .unwrap()
            .contains("number of pulls"),
        "{counted}"
    );
}

/// `agora negotiate` and `agora pull --out` do the researcher's journey from a terminal: the
/// file written is the enforced Arrow stream.
#[test]
fn the_cli_negotiates_and_pulls() {
    let node = TestNode::start(Options {
        demo: true,
        ..Options::default()
    });
    let token = researcher(&node, "alice");
    let agora = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_agora"))
            .args(args)
            .args(["--url", &node.url, "--token", &token])
            .output()
            .expect("agora runs")
    };
    let refused = agora(&["negotiate", "health", "--purpose", "dpv:Marketing"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("Marketing"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let agreed = agora(&["negotiate", "climate", "--purpose", "dpv:AcademicResearch"]);
    let text = String::from_utf8_lossy(&agreed.stdout).into_owned();
    assert!(
        agreed.status.success(),
        "{}",
        String::from_utf8_lossy(&agreed.stderr)
    );
    let agreement = text
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("agreed: agreement ")
        .to_owned();
    let out = node.data_dir.join("climate.arrows");
    let pulled = agora(&[
        "pull",
        "--agreement",
        &agreement,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        pulled.status.success(),
        "{}",
        String::from_utf8_lossy(&pulled.stderr)
    );
    let reader = StreamReader::try_new(std::fs::File::open(&out).unwrap(), None).unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 262_080, "the whole climate pool");
}

/// `agora pull --out DIR` writes the agreement's Parquet shards, each checked against its
/// SHA-256; run again after an interruption (a shard missing, one half-written, one corrupted)
/// it keeps what is whole, continues the partial file with a Range request, fetches the corrupt
/// one again, and ends with the same verified set.
#[test]
fn the_cli_pull_resumes_and_verifies_shards() {
    use sha2::Digest as _;
    let node = TestNode::start(Options {
        demo: true,
        ..Options::default()
    });
    let token = researcher(&node, "alice");
    let (agreement, _, _) = pull_rights(&node, "alice", "climate");
    let dir = node.data_dir.join("climate-shards");
    let pull = || {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_agora"))
            .args(["pull", "--agreement", &agreement, "--out"])
            .arg(&dir)
            .args(["--url", &node.url, "--token", &token])
            .output()
            .expect("agora runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let first = pull();
    assert!(first.contains("0 kept"), "{first}");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    let digests: Vec<String> = files
        .iter()
        .map(|f| hex::encode(sha2::Sha256::digest(std::fs::read(f).unwrap())))
        .collect();
    let rows = |files: &[std::path::PathBuf]| -> usize {
        files
            .iter()
            .map(|f| {
                ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(f).unwrap())
                    .unwrap()
                    .metadata()
                    .file_metadata()
                    .num_rows() as usize
            })
            .sum()
    };
    assert_eq!(rows(&files), 262_080, "the whole climate pool");

    // Interrupt: one shard gone, one half-written, one corrupted in place.
    std::fs::remove_file(&files[0]).unwrap();
    let whole = std::fs::read(&files[1]).unwrap();
    std::fs::remove_file(&files[1]).unwrap();
    std::fs::write(
        files[1].with_extension("parquet.part"),
        &whole[..whole.len() / 2],
    )
    .unwrap();
    let mut corrupt = std::fs::read(&files[2]).unwrap();
    corrupt[100] ^= 0xff;
    std::fs::write(&files[2], &corrupt).unwrap();

    let second = pull();
    let kept = files.len() - 3;
    assert!(
        second.contains(&format!("3 fetched, {kept} kept")),
        "{second}"
    );
    let again: Vec<String> = files
        .iter()
        .map(|f| hex::encode(sha2::Sha256::digest(std::fs::read(f).unwrap())))
        .collect();
    assert_eq!(again, digests, "the resumed set is the same verified set");
    assert!(!files[1].with_extension("parquet.part").exists());
}

/// The shard plan gives every rank of any world size the same number of samples, disjoint and
/// together complete, in a global order that does not depend on the world size; shards are
/// Parquet files whose SHA-256 the plan states, served with HEAD, Range and as Arrow IPC.
#[test]
fn shards_are_deterministic_disjoint_complete_and_verifiable() {
    use sha2::Digest as _;
    let node = TestNode::start(Options {
        demo: true,
        ..Options::default()
    });
    let (agreement, _, token) = pull_rights(&node, "alice", "health");
    let plan = |world: usize, rank: usize, epoch: u64| -> Json {
        let answer = node.get(
            &format!(
                "/data/{agreement}/shards?world_size={world}&rank={rank}&epoch={epoch}&seed=7"
            ),
            &[("Authorization", &bearer(&token))],
        );
        assert_eq!(answer.status, 200, "{}", answer.text());
        answer.json()
    };
    let samples = |plan: &Json| -> Vec<(u64, u64)> {
        plan["shards"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| {
                let (n, offset, rows) = (
                    s["n"].as_u64().unwrap(),
                    s["offset"].as_u64().unwrap(),
                    s["rows"].as_u64().unwrap(),
                );
                (offset..offset + rows).map(move |r| (n, r))
            })
            .collect()
    };
    let total = plan(1, 0, 0)["total_rows"].as_u64().unwrap();
    let mut global4 = Vec::new();
    let mut sizes = HashSet::new();
    for rank in 0..4 {
        let part = plan(4, rank, 1);
        sizes.insert(part["rows"].as_u64().unwrap());
        global4.extend(samples(&part));
    }
    assert_eq!(sizes.len(), 1, "equal ranks: {sizes:?}");
    assert_eq!(global4.len() as u64, total - total % 4);
    assert_eq!(
        global4.iter().collect::<HashSet<_>>().len(),
        global4.len(),
        "disjoint"
    );
    let global3: Vec<(u64, u64)> = (0..3).flat_map(|rank| samples(&plan(3, rank, 1))).collect();
    let shorter = global3.len().min(global4.len());
    assert_eq!(
        global3[..shorter],
        global4[..shorter],
        "the global order is the same for any world size"
    );
    assert_ne!(
        samples(&plan(1, 0, 1))[..100],
        samples(&plan(1, 0, 2))[..100],
        "each epoch has its own order"
    );

    // Every shard verifies and, in shard order, they hold the enforced stream.
    let whole = plan(1, 0, 0);
    let mut shard_rows = 0;
    let mut seen = HashSet::new();
    for segment in whole["shards"].as_array().unwrap() {
        let n = segment["n"].as_u64().unwrap();
        if !seen.insert(n) {
            continue;
        }
        let url = segment["url"].as_str().unwrap();
        assert!(url.ends_with(&format!("/data/{agreement}/shards/{n}")));
        let body = node.get(
            &format!("/data/{agreement}/shards/{n}"),
            &[("Authorization", &bearer(&token))],
        );
        assert_eq!(body.status, 200, "{}", body.text());
        assert_eq!(
            hex::encode(sha2::Sha256::digest(&body.body)),
            segment["sha256"].as_str().unwrap()
        );
        let reader =
            ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(body.body.clone()))
                .unwrap()
                .build()
                .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            assert!(batch.column_by_name("postcode").is_none());
            shard_rows += batch.num_rows();
        }
    }
    assert_eq!(shard_rows as u64, total);
    let streamed: usize = batches(&pull(&node, &agreement, &token, ""))
        .iter()
        .map(RecordBatch::num_rows)
        .sum();
    assert_eq!(
        streamed as u64, total,
        "shards and stream release the same rows"
    );

    let head = node.send(
        "HEAD",
        &format!("/data/{agreement}/shards/0"),
        &[("Authorization", &bearer(&token))],
        b"",
    );
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let length: usize = head.header("content-length").unwrap().parse().unwrap();
    let ranged = node.get(
        &format!("/data/{agreement}/shards/0"),
        &[("Authorization", &bearer(&token)), ("Range", "bytes=0-99")],
    );
    assert_eq!(ranged.status, 206);
    assert_eq!(ranged.body.len(), 100);
    assert_eq!(
        ranged.header("content-range"),
        Some(format!("bytes 0-99/{length}").as_str())
    );
    let arrow = node.get(
        &format!("/data/{agreement}/shards/0?format=arrow"),
        &[("Authorization", &bearer(&token))],
    );
    assert_eq!(
        batches(&arrow)
            .iter()
            .map(RecordBatch::num_rows)
            .sum::<usize>(),
        16_384
    );

    node.get(
        &format!("/data/{agreement}/shards?world_size=2&rank=2"),
        &[("Authorization", &bearer(&token))],
    )
    .assert_problem(400);
    node.get(
        &format!("/data/{agreement}/shards/9999"),
        &[("Authorization", &bearer(&token))],
    )
    .assert_problem(404);
    node.get(
        &format!("/data/{agreement}/shards/0?format=xml"),
        &[("Authorization", &bearer(&token))],
    )
    .assert_problem(400);
    node.get(
        &format!("/data/{agreement}/shards/0"),
        &[
            ("Authorization", &bearer(&token)),
            ("Range", "bytes=999999999-"),
        ],
    )
    .assert_problem(416);
    node.get(&format!("/data/{agreement}/shards"), &[])
        .assert_problem(401);
}

/// The endpoint a transfer hands out answers: it links the stream and the shard plan and says
/// what the agreement releases.
#[test]
fn the_transfer_endpoint_describes_the_release() {
    let node = TestNode::start(Options {
        demo: true,
        ..Options::default()
    });
    let (agreement, _, token) = pull_rights(&node, "alice", "health");
    let index = node.get(
        &format!("/data/{agreement}"),
        &[("Authorization", &bearer(&token))],
    );
    assert_eq!(index.status, 200, "{}", index.text());
    let index = index.json();
    assert!(index["arrow"].as_str().unwrap().ends_with("/arrow"));
    assert_eq!(index["dropped_columns"], json!(["postcode"]));
    assert!(
        index["pseudonymised_columns"]
            .as_array()
            .unwrap()
            .contains(&json!("patient_id"))
    );
}

/// Consumer filters work on released values only: on generalised columns they see the
/// generalised value, a pseudonymised column cannot be filtered, a withheld one does not exist.
#[test]
fn consumer_filters_cannot_probe_what_the_policy_hides() {
    use datafusion::arrow::array::Float64Array;
    let node = TestNode::start(Options {
        demo: true,
        ..Options::default()
    });
    let (agreement, _, token) = pull_rights(&node, "alice", "health");
    let filtered = batches(&pull(
        &node,
        &agreement,
        &token,
        "?where=sex:eq:F,hba1c:gt:7.5&columns=sex,hba1c",
    ));
    let rows: usize = filtered.iter().map(RecordBatch::num_rows).sum();
    assert!(rows > 0);
    for batch in &filtered {
        assert!(
            strings(std::slice::from_ref(batch), "sex")
                .iter()
                .all(|s| s == "F")
        );
        let hba1c = batch
            .column_by_name("hba1c")
            .unwrap()
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        assert!((0..hba1c.len()).all(|i| hba1c.value(i) > 7.5));
    }
    let count = |query: &str| {
        batches(&pull(&node, &agreement, &token, query))
            .iter()
            .map(RecordBatch::num_rows)
            .sum::<usize>()
    };
    assert!(
        count("?where=birth_date:gteq:1960-01-01,birth_date:lteq:1960-01-01&columns=birth_date")
            > 0
    );
    assert_eq!(
        count("?where=birth_date:eq:1960-03-15&columns=birth_date"),
        0,
        "only generalised dates exist"
    );
    let masked =
        pull(&node, &agreement, &token, "?where=patient_id:eq:P00000042").assert_problem(400);
    assert!(
        masked["detail"].as_str().unwrap().contains("pseudonymised"),
        "{masked}"
    );
    pull(&node, &agreement, &token, "?where=postcode:eq:10115").assert_problem(400);
    pull(&node, &agreement, &token, "?where=hba1c:gt:lots").assert_problem(400);
    pull(&node, &agreement, &token, "?where=hba1c:like:7").assert_problem(400);
    pull(&node, &agreement, &token, "?where=hba1c").assert_problem(400);
}

/// Parallel streams cannot together exceed a row budget: an open stream holds what is left of
/// it, a second stream meanwhile is refused, and what the first did not send (the client went
/// away) comes back for the next pull.
#[test]
fn parallel_streams_share_one_row_budget() {
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::io::{Read as _, Write as _};
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("big.parquet");
    let schema = std::sync::Arc::new(Schema::new(vec![Field::new(
        "reading",
        DataType::Int64,
        false,
    )]));
    let mut writer = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&file).unwrap(),
        schema.clone(),
        None,
    )
    .unwrap();
    for chunk in 0..40 {
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![std::sync::Arc::new(Int64Array::from_iter_values(
                chunk * 50_000..(chunk + 1) * 50_000,
            ))],
        )
        .unwrap();
        writer.write(&batch).unwrap();
    }
    writer.close().unwrap();
    let node = TestNode::start(Options {
        args: vec!["--allow-root".into(), root.path().display().to_string()],
        ..Options::default()
    });
    let holder = node.token("grid-operator", Role::Holder, &[]);
    let description = String::from_utf8(super::common::fixture("dataset.ttl"))
        .unwrap()
        .replace(
            "dcat:accessURL <https://energy.example/datasets/grid-load-2024/files/>",
            &format!("dcat:downloadURL <file://{}>", file.display()),
        )
        + "@prefix odrl: <http://www.w3.org/ns/odrl/2/> .\n\
         <https://energy.example/datasets/grid-load-2024> odrl:hasPolicy <urn:test:budget> .\n\
         <urn:test:budget> a odrl:Offer ; odrl:profile <https://w3id.org/agora/profile> ;\n\
           odrl:permission [ odrl:action odrl:use ; odrl:constraint\n\
             [ odrl:leftOperand <https://w3id.org/agora/ns#rowBudget> ; odrl:operator odrl:lteq ; odrl:rightOperand 1500000 ] ] .\n";
    let published = node.send(
        "POST",
        "/api/datasets",
        &[
            ("Content-Type", "text/turtle"),
            ("Authorization", &bearer(&holder)),
        ],
        description.as_bytes(),
    );
    assert_eq!(published.status, 201, "{}", published.text());
    let dataset = published.json()["id"].as_str().unwrap().to_owned();
    let (agreement, _, token) = pull_rights(&node, "alice", &dataset);

    // A slow client: asks for the stream and reads only its first bytes.
    let address = node.url.trim_start_matches("http://").to_owned();
    let mut slow = std::net::TcpStream::connect(&address).unwrap();
    write!(slow, "GET /data/{agreement}/arrow HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\r\n").unwrap();
    let mut first = [0u8; 1024];
    slow.read_exact(&mut first).unwrap();
    assert!(String::from_utf8_lossy(&first).starts_with("HTTP/1.1 200"));

    let meanwhile = pull(&node, &agreement, &token, "");
    let problem = meanwhile.assert_problem(403);
    assert!(
        problem["detail"].as_str().unwrap().contains("row budget"),
        "{problem}"
    );

    drop(slow);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let rest = loop {
        let next = pull(&node, &agreement, &token, "");
        if next.status == 200 {
            break batches(&next)
                .iter()
                .map(RecordBatch::num_rows)
                .sum::<usize>();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the slow stream's reservation never came back: {}",
            next.text()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(
        rest > 0 && rest < 1_500_000,
        "the next pull gets what the first did not send: {rest}"
    );
}
