//! Hostile data files (SECURITY.md R29, R30): a data holder's Parquet may be truncated,
//! mutated or a decompression bomb. Each file is decoded in a confined child before the engine
//! reads it, so a bad file ends only the request that needed it, with a 422 that names the file
//! (never its place on the node's disk), and the node stays up and keeps serving good data.

use super::common::{Options, Response, TestNode, bearer, pull_rights};
use agora::identity::Role;
use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use std::path::Path;
use std::sync::Arc;

/// Writes a small valid Parquet file: `reading` 0..rows and a text column.
fn write_valid(path: &Path, rows: i64) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("reading", DataType::Int64, false),
        Field::new("label", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(0..rows)),
            Arc::new(StringArray::from_iter_values(
                (0..rows).map(|i| format!("meter-{}", i % 17)),
            )),
        ],
    )
    .unwrap();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, None)
            .unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

/// A decompression bomb: a few kilobytes on disk, 1.5 GiB of text once decoded.
fn write_bomb(path: &Path) {
    use parquet::basic::{Compression, ZstdLevel};
    use parquet::file::properties::WriterProperties;
    let schema = Arc::new(Schema::new(vec![Field::new("blob", DataType::Utf8, false)]));
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap()))
        .set_dictionary_enabled(false)
        .build();
    let mut writer = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(path).unwrap(),
        schema.clone(),
        Some(properties),
    )
    .unwrap();
    let megabyte = "a".repeat(1 << 20);
    for _ in 0..24 {
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(StringArray::from_iter_values(
                std::iter::repeat_n(megabyte.as_str(), 64),
            ))],
        )
        .unwrap();
        writer.write(&batch).unwrap();
    }
    writer.close().unwrap();
}

/// Publishes a dataset whose files are `folder`, under an unconstrained `use` policy.
fn publish(node: &TestNode, holder: &str, name: &str, folder: &Path) -> String {
    let iri = format!("https://energy.example/datasets/{name}");
    let description = String::from_utf8(super::common::fixture("dataset.ttl"))
        .unwrap()
        .replace("https://energy.example/datasets/grid-load-2024", &iri)
        .replace(
            &format!("dcat:accessURL <{iri}/files/>"),
            &format!("dcat:downloadURL <file://{}>", folder.display()),
        )
        + &format!(
            "@prefix odrl: <http://www.w3.org/ns/odrl/2/> .\n\
             <{iri}> odrl:hasPolicy <urn:test:{name}> .\n\
             <urn:test:{name}> a odrl:Offer ; odrl:profile <https://w3id.org/agora/profile> ;\n\
               odrl:permission [ odrl:action odrl:use ] .\n"
        );
    let published = node.send(
        "POST",
        "/api/datasets",
        &[
            ("Content-Type", "text/turtle"),
            ("Authorization", &bearer(holder)),
        ],
        description.as_bytes(),
    );
    assert_eq!(published.status, 201, "{}", published.text());
    published.json()["id"].as_str().unwrap().to_owned()
}

fn pull(node: &TestNode, agreement: &str, token: &str, what: &str) -> Response {
    node.get(
        &format!("/data/{agreement}/{what}"),
        &[("Authorization", &bearer(token))],
    )
}

#[test]
fn a_damaged_or_hostile_parquet_file_ends_only_its_request() {
    let root = tempfile::tempdir().unwrap();
    let (good, damaged, bomb) = (
        root.path().join("good"),
        root.path().join("damaged"),
        root.path().join("bomb"),
    );
    for folder in [&good, &damaged, &bomb] {
        std::fs::create_dir(folder).unwrap();
    }
    write_valid(&good.join("part-0.parquet"), 1000);
    write_valid(&damaged.join("part-0.parquet"), 1000);
    // A truncated footer: the last bytes of a valid file are gone.
    write_valid(&damaged.join("part-1.parquet"), 1000);
    let bytes = std::fs::read(damaged.join("part-1.parquet")).unwrap();
    std::fs::write(damaged.join("part-1.parquet"), &bytes[..bytes.len() - 9]).unwrap();
    write_bomb(&bomb.join("blob.parquet"));
    assert!(std::fs::metadata(bomb.join("blob.parquet")).unwrap().len() < 4 << 20);

    let mut node = TestNode::start(Options {
        args: vec!["--allow-root".into(), root.path().display().to_string()],
        ..Options::default()
    });
    let holder = node.token("grid-operator", Role::Holder, &[]);
    let good_id = publish(&node, &holder, "good", &good);
    let damaged_id = publish(&node, &holder, "damaged", &damaged);
    let bomb_id = publish(&node, &holder, "bomb", &bomb);

    let (agreement, _, token) = pull_rights(&node, "alice", &damaged_id);
    for what in ["arrow", "shards", "aggregate"] {
        let refused = pull(&node, &agreement, &token, what).assert_problem(422);
        let detail = refused["detail"].as_str().unwrap();
        assert!(
            detail.contains("`part-1.parquet` is damaged"),
            "{what}: {refused}"
        );
        assert!(
            !detail.contains(&root.path().display().to_string()),
            "{what} leaks the path: {detail}"
        );
    }
    node.assert_healthy();

    let (agreement_bomb, _, token_bomb) = pull_rights(&node, "alice", &bomb_id);
    let refused = pull(&node, &agreement_bomb, &token_bomb, "arrow").assert_problem(422);
    eprintln!("bomb: {}", refused["detail"]);
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("`blob.parquet`"),
        "{refused}"
    );
    node.assert_healthy();

    // Good data still flows beside the bad.
    let (agreement_good, _, token_good) = pull_rights(&node, "bob", &good_id);
    let streamed = pull(&node, &agreement_good, &token_good, "arrow");
    assert_eq!(streamed.status, 200, "{}", streamed.text());

    // The holder replaces the damaged file: the new version is validated, and it is served.
    write_valid(&damaged.join("part-1.parquet"), 500);
    let healed = pull(&node, &agreement, &token, "arrow");
    assert_eq!(healed.status, 200, "{}", healed.text());
    node.assert_healthy();
}

/// Byte mutants of a valid file, swapped in one after another under a published dataset: every
/// pull ends in a 200 or a clear 422 (no 500, no hang), and the node stays up throughout.
#[test]
fn mutated_parquet_files_never_take_the_node_down() {
    let root = tempfile::tempdir().unwrap();
    let folder = root.path().join("mutants");
    std::fs::create_dir(&folder).unwrap();
    let file = folder.join("part-0.parquet");
    write_valid(&file, 2000);
    let original = std::fs::read(&file).unwrap();

    let mut node = TestNode::start(Options {
        args: vec!["--allow-root".into(), root.path().display().to_string()],
        ..Options::default()
    });
    let holder = node.token("grid-operator", Role::Holder, &[]);
    let dataset = publish(&node, &holder, "mutants", &folder);
    let (agreement, _, token) = pull_rights(&node, "alice", &dataset);

    // A seeded xorshift, so a failure can be replayed.
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut served, mut refused) = (0, 0);
    for round in 0..200 {
        let mut mutant = original.clone();
        let flips = 1 + next() % 8;
        for _ in 0..flips {
            let at = usize::try_from(next() % mutant.len() as u64).unwrap();
            mutant[at] = u8::try_from(next() % 256).unwrap();
        }
        std::fs::write(&file, &mutant).unwrap();
        let answer = pull(&node, &agreement, &token, "arrow");
        match answer.status {
            200 => served += 1,
            422 => refused += 1,
            other => panic!("round {round}: {other} {}", answer.text()),
        }
    }
    node.assert_healthy();
    assert!(refused > 0, "no mutant was refused ({served} served)");
    eprintln!("200 mutants: {served} served, {refused} refused");
}
