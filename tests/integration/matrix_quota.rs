//! Matrix R32: agreement farming. A participant that negotiates the same offer a thousand
//! times gets no more rows, bytes or pulls than one agreement gives: the budgets of a policy
//! are counted per participant over all its agreements for the dataset, on every channel
//! (streams and shards), while another participant keeps its own budget.

use super::common::{Options, TestNode, bearer, pull_rights, researcher};
use agora::identity::Role;
use datafusion::arrow::array::{Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::ipc::reader::StreamReader;
use std::sync::Arc;

/// Rows in the dataset, and the row budget of its offer: two agreements' worth of full pulls
/// would exceed it.
const ROWS: i64 = 1_000;
const ROW_BUDGET: u64 = 1_500;
/// Negotiations the farming participant makes.
const NEGOTIATIONS: usize = 1_000;

fn rows_of(response: &super::common::Response) -> u64 {
    assert_eq!(response.status, 200, "{}", response.text());
    StreamReader::try_new(std::io::Cursor::new(response.body.clone()), None)
        .expect("an Arrow IPC stream")
        .map(|batch| batch.expect("a batch").num_rows() as u64)
        .sum()
}

fn negotiate(node: &TestNode, token: &str, dataset: &str) -> String {
    let agreed = node.send(
        "POST",
        "/api/negotiations",
        &[
            ("Authorization", &bearer(token)),
            ("Content-Type", "application/json"),
        ],
        serde_json::json!({"dataset": dataset, "purpose": "dpv:AcademicResearch"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(agreed.status, 201, "{}", agreed.text());
    agreed.json()["agreement"]["id"]
        .as_str()
        .expect("an agreement id")
        .to_owned()
}

fn start_transfer(node: &TestNode, token: &str, agreement: &str) -> String {
    let started = node.send(
        "POST",
        "/api/transfers",
        &[
            ("Authorization", &bearer(token)),
            ("Content-Type", "application/json"),
        ],
        serde_json::json!({"agreement": agreement})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(started.status, 201, "{}", started.text());
    started.json()["token"]
        .as_str()
        .expect("a data-plane token")
        .to_owned()
}

#[test]
fn r32_budgets_hold_per_participant_across_a_thousand_agreements() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("readings.parquet");
    let schema = Arc::new(Schema::new(vec![Field::new(
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
    let batch = RecordBatch::try_new(
        schema,
        vec![Arc::new(Int64Array::from_iter_values(0..ROWS))],
    )
    .unwrap();
    writer.write(&batch).unwrap();
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
        + &format!(
            "@prefix odrl: <http://www.w3.org/ns/odrl/2/> .\n\
             <https://energy.example/datasets/grid-load-2024> odrl:hasPolicy <urn:test:quota> .\n\
             <urn:test:quota> a odrl:Offer ; odrl:profile <https://w3id.org/agora/profile> ;\n\
               odrl:permission [ odrl:action odrl:use ; odrl:constraint\n\
                 [ odrl:leftOperand <https://w3id.org/agora/ns#rowBudget> ; odrl:operator odrl:lteq ; odrl:rightOperand {ROW_BUDGET} ] ] .\n"
        );
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

    // The farmer negotiates the offer a thousand times, eight requests in flight.
    let farmer = researcher(&node, "farmer");
    let agreements: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..8)
            .map(|worker| {
                let (node, farmer, dataset) = (&node, &farmer, &dataset);
                scope.spawn(move || {
                    (worker..NEGOTIATIONS)
                        .step_by(8)
                        .map(|_| negotiate(node, farmer, dataset))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a negotiating worker"))
            .collect()
    });
    let distinct: std::collections::HashSet<&String> = agreements.iter().collect();
    assert_eq!(
        distinct.len(),
        NEGOTIATIONS,
        "each negotiation concluded its own agreement"
    );

    // Whole pulls under one agreement after another: together they release the budget, once.
    let mut released = 0u64;
    let mut refused = None;
    for agreement in agreements.iter().take(5) {
        let token = start_transfer(&node, &farmer, agreement);
        let pulled = node.get(
            &format!("/data/{agreement}/arrow"),
            &[("Authorization", &bearer(&token))],
        );
        if pulled.status == 200 {
            released += rows_of(&pulled);
        } else {
            let problem = pulled.assert_problem(403);
            let detail = problem["detail"].as_str().unwrap_or_default().to_owned();
            assert!(detail.contains("row budget"), "{problem}");
            refused = Some(detail);
        }
    }
    assert_eq!(
        released, ROW_BUDGET,
        "five agreements of the same participant released the budget of one"
    );
    let refused = refused.expect("a pull past the participant's budget is refused");
    assert!(
        refused.contains("farmer"),
        "the refusal names whose budget: {refused}"
    );

    // Shards under yet another agreement: nothing left to charge either.
    let agreement = &agreements[NEGOTIATIONS - 1];
    let token = start_transfer(&node, &farmer, agreement);
    let plan = node.get(
        &format!("/data/{agreement}/shards"),
        &[("Authorization", &bearer(&token))],
    );
    assert_eq!(
        plan.status,
        403,
        "cutting shards past the budget: {}",
        plan.text()
    );
    assert!(plan.text().contains("row budget"), "{}", plan.text());

    // Another participant's budget is its own.
    let (agreement, _, token) = pull_rights(&node, "honest", &dataset);
    let pulled = node.get(
        &format!("/data/{agreement}/arrow"),
        &[("Authorization", &bearer(&token))],
    );
    assert_eq!(
        rows_of(&pulled),
        ROWS as u64,
        "the honest researcher's full pull"
    );
}
