//! Crash safety (SECURITY.md matrix R39): writers publish datasets, negotiate agreements and
//! start transfers, and pull data while the node is killed with SIGKILL at random moments;
//! after every restart nothing the node acknowledged is lost, no record is half-written, both
//! RocksDB stores pass `Store::validate()`, `agora audit verify` accepts the log, and the
//! agreement's pull counter never falls below the pulls that were answered.
//!
//! The CI run does `AGORA_CRASH_CYCLES` cycles (default 25, a few minutes on two cores);
//! `AGORA_SOAK=1` runs the matrix's 200. `AGORA_CRASH_SEED` replays a run (the seed is printed).
//! For a soak on a machine where others build, point `AGORA_TEST_BIN` at a copy of `agora`.

use crate::common::{Rng, TestNode, agent, bearer, fixture};
use agora::identity::Role;
use serde_json::{Value as Json, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// What the node answered with a success, recorded before the kill that follows it.
#[derive(Default)]
struct Ledger {
    /// Dataset ids answered 201.
    published: Vec<String>,
    /// Publishes attempted (answered or not): the store may hold up to this many.
    attempted: u64,
    /// Negotiation id → agreement id, answered 201.
    negotiated: Vec<(String, String)>,
    /// Transfers answered 201 (each audited before the answer).
    transfers: u64,
    /// Pulls answered 200 with the whole stream read.
    pulls: u64,
}

/// One request; `None` when the node was not there to answer (killed mid-exchange), which
/// is never counted as acknowledged.
fn exchange(
    method: &str,
    url: &str,
    token: &str,
    body: Option<(&str, &[u8])>,
) -> Option<(u16, Vec<u8>)> {
    let mut builder = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", bearer(token));
    if let Some((content_type, _)) = body {
        builder = builder.header("content-type", content_type);
    }
    let request = builder
        .body(body.map(|(_, b)| b.to_vec()).unwrap_or_default())
        .ok()?;
    let mut response = agent().run(request).ok()?;
    let status = response.status().as_u16();
    // A stream cut by the kill is an error here, so a torn pull is never counted.
    let bytes = response
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_vec()
        .ok()?;
    Some((status, bytes))
}

/// A development token valid for a day.
fn long_token(node: &TestNode, sub: &str, role: Role, claims: &[(&str, &str)]) -> String {
    let node_id = node.node_id();
    let issuer =
        agora::identity::DevIssuer::load_or_create(&node.data_dir, &node_id).expect("issuer");
    let pairs: Vec<String> = claims.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let request = agora::identity::TokenRequest {
        subject: sub.into(),
        roles: vec![role],
        claims: Default::default(),
        lifetime: Duration::from_secs(86_400),
    }
    .with_claim_pairs(pairs.iter().map(String::as_str))
    .expect("claims");
    issuer
        .issue(&request, &node_id, chrono::Utc::now())
        .expect("token")
}

fn json_of(bytes: &[u8]) -> Json {
    serde_json::from_slice(bytes).unwrap_or(Json::Null)
}

/// A Parquet file of 20 rows under an allowed root, offered with a pull count high enough
/// never to run out: the agreement's counter is what the test watches.
fn counted_dataset(root: &Path) -> (PathBuf, String) {
    use datafusion::arrow::array::{Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let file = root.join("readings.parquet");
    let schema = Arc::new(Schema::new(vec![Field::new(
        "reading",
        DataType::Int64,
        false,
    )]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(Int64Array::from_iter_values(0..20))],
    )
    .expect("batch");
    let mut writer = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&file).expect("file"),
        schema,
        None,
    )
    .expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
    let description = String::from_utf8(fixture("dataset.ttl"))
        .expect("utf8")
        .replace(
            "dcat:accessURL <https://energy.example/datasets/grid-load-2024/files/>",
            &format!("dcat:downloadURL <file://{}>", file.display()),
        )
        + "@prefix odrl: <http://www.w3.org/ns/odrl/2/> .\n\
         <https://energy.example/datasets/grid-load-2024> odrl:hasPolicy <urn:test:counted> .\n\
         <urn:test:counted> a odrl:Offer ; odrl:profile <https://w3id.org/agora/profile> ;\n\
           odrl:permission [ odrl:action odrl:use ; odrl:constraint\n\
             [ odrl:leftOperand odrl:count ; odrl:operator odrl:lteq ; odrl:rightOperand 1000000 ] ] .\n";
    (file, description)
}

/// The records of the contracts store, read in-process while the node is down (this also
/// proves the store opens and validates after the kill).
fn contract_records(data_dir: &Path) -> HashMap<String, Json> {
    let store =
        oxigraph::store::Store::open(data_dir.join("contracts")).expect("contracts store opens");
    store.validate().expect("contracts store validates");
    let mut records = HashMap::new();
    let predicate =
        oxigraph::model::NamedNodeRef::new_unchecked("https://w3id.org/agora/ns#record");
    let graph = oxigraph::model::NamedNodeRef::new_unchecked("urn:agora:contracts");
    // An agreement's usage is kept apart from its record (it moves on every release) and
    // wins over the record's own copy, as the node reads it.
    let counters =
        oxigraph::model::NamedNodeRef::new_unchecked("https://w3id.org/agora/ns#counters");
    for quad in store.quads_for_pattern(None, Some(predicate), None, Some(graph.into())) {
        let quad = quad.expect("quad");
        if let oxigraph::model::Term::Literal(literal) = quad.object {
            let mut record: Json = serde_json::from_str(literal.value()).expect("record JSON");
            let usage = store
                .quads_for_pattern(
                    Some(quad.subject.as_ref()),
                    Some(counters),
                    None,
                    Some(graph.into()),
                )
                .next()
                .map(|q| q.expect("quad").object);
            if let Some(oxigraph::model::Term::Literal(usage)) = usage {
                record["usage"] = serde_json::from_str(usage.value()).expect("usage JSON");
            }
            if let Some(id) = record["id"].as_str() {
                records.insert(id.to_owned(), record);
            }
        }
    }
    records
}

fn validate_catalog(data_dir: &Path) {
    for name in ["catalog", "catalog-private"] {
        let store = oxigraph::store::Store::open(data_dir.join(name))
            .unwrap_or_else(|e| panic!("{name} store opens after kill -9: {e}"));
        store
            .validate()
            .unwrap_or_else(|e| panic!("{name} store validates after kill -9: {e}"));
    }
}

/// `agora audit verify`: the number of entries, or the verifier's complaint.
fn audit_entries(data_dir: &Path) -> u64 {
    let output = std::process::Command::new(crate::common::agora_binary())
        .args(["audit", "verify", "--data-dir"])
        .arg(data_dir)
        .output()
        .expect("agora audit verify runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "audit log rejected after kill -9: {text}"
    );
    text.split("intact: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected verifier output: {text}"))
}

#[test]
fn crash_safety_under_random_sigkill() {
    let soak = std::env::var("AGORA_SOAK").is_ok_and(|v| v == "1");
    let cycles: u64 = std::env::var("AGORA_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if soak { 200 } else { 25 });
    let seed: u64 = std::env::var("AGORA_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| u64::from(std::process::id()) | 1);
    eprintln!("crash harness: {cycles} cycles, AGORA_CRASH_SEED={seed}");
    let mut rng = Rng(seed);

    let root = tempfile::tempdir().expect("root");
    let (_file, description) = counted_dataset(root.path());
    let mut node = TestNode::start(crate::common::Options {
        args: vec!["--allow-root".into(), root.path().display().to_string()],
        ..crate::common::Options::default()
    });
    // A soak outlives the harness's ten-minute tokens.
    let holder = long_token(&node, "grid-operator", Role::Holder, &[]);
    let researcher = long_token(
        &node,
        "alice",
        Role::Researcher,
        &[("country", "DE"), ("org_type", "university")],
    );
    let published = node.send(
        "POST",
        "/api/datasets",
        &[
            ("content-type", "text/turtle"),
            ("authorization", &bearer(&holder)),
        ],
        description.as_bytes(),
    );
    assert_eq!(published.status, 201, "{}", published.text());
    let dataset = published.json()["id"].as_str().expect("id").to_owned();
    let agreed = node.send(
        "POST",
        "/api/negotiations",
        &[
            ("authorization", &bearer(&researcher)),
            ("content-type", "application/json"),
        ],
        json!({"dataset": dataset, "purpose": "dpv:AcademicResearch"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(agreed.status, 201, "{}", agreed.text());
    let pulled_agreement = agreed.json()["agreement"]["id"]
        .as_str()
        .expect("agreement")
        .to_owned();
    let started = node.send(
        "POST",
        "/api/transfers",
        &[
            ("authorization", &bearer(&researcher)),
            ("content-type", "application/json"),
        ],
        json!({"agreement": pulled_agreement})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(started.status, 201, "{}", started.text());
    let pulled_transfer = started.json()["id"].as_str().expect("transfer").to_owned();
    let data_token = Arc::new(Mutex::new(
        started.json()["token"].as_str().expect("token").to_owned(),
    ));

    let url = Arc::new(RwLock::new(node.url.clone()));
    let ledger = Arc::new(Mutex::new(Ledger {
        transfers: 1,
        ..Ledger::default()
    }));
    let stop = Arc::new(AtomicBool::new(false));
    let current = |url: &Arc<RwLock<String>>| url.read().unwrap_or_else(|p| p.into_inner()).clone();
    let pause = || std::thread::sleep(Duration::from_millis(5));

    let mut writers = Vec::new();
    // Publisher: each dataset under its own IRI.
    {
        let (url, ledger, stop, holder) =
            (url.clone(), ledger.clone(), stop.clone(), holder.clone());
        writers.push(std::thread::spawn(move || {
            let template = String::from_utf8(fixture("dataset.ttl")).expect("utf8");
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let body = template.replace("grid-load-2024", &format!("crash-{n}"));
                ledger.lock().expect("ledger").attempted += 1;
                let base = current(&url);
                match exchange(
                    "POST",
                    &format!("{base}/api/datasets"),
                    &holder,
                    Some(("text/turtle", body.as_bytes())),
                ) {
                    Some((201, bytes)) => {
                        let id = json_of(&bytes)["id"].as_str().expect("id").to_owned();
                        ledger.lock().expect("ledger").published.push(id);
                    }
                    Some((status, bytes)) if status < 500 => {
                        panic!(
                            "publish answered {status}: {}",
                            String::from_utf8_lossy(&bytes)
                        )
                    }
                    _ => pause(),
                }
            }
        }));
    }
    // Negotiator: an agreement, then a transfer under it (audited before the 201).
    {
        let (url, ledger, stop, researcher, dataset) = (
            url.clone(),
            ledger.clone(),
            stop.clone(),
            researcher.clone(),
            dataset.clone(),
        );
        writers.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let base = current(&url);
                let body =
                    json!({"dataset": dataset, "purpose": "dpv:AcademicResearch"}).to_string();
                let Some((201, bytes)) = exchange(
                    "POST",
                    &format!("{base}/api/negotiations"),
                    &researcher,
                    Some(("application/json", body.as_bytes())),
                ) else {
                    pause();
                    continue;
                };
                let answer = json_of(&bytes);
                let id = answer["id"].as_str().expect("negotiation id").to_owned();
                let agreement = answer["agreement"]["id"]
                    .as_str()
                    .expect("agreement id")
                    .to_owned();
                ledger
                    .lock()
                    .expect("ledger")
                    .negotiated
                    .push((id, agreement.clone()));
                let body = json!({"agreement": agreement}).to_string();
                if let Some((201, _)) = exchange(
                    "POST",
                    &format!("{base}/api/transfers"),
                    &researcher,
                    Some(("application/json", body.as_bytes())),
                ) {
                    ledger.lock().expect("ledger").transfers += 1;
                }
            }
        }));
    }
    // Puller: whole streams only; a token that expired is refreshed (counted as a transfer
    // audit entry, since refreshing issues a token).
    {
        let (url, ledger, stop, researcher, token) = (
            url.clone(),
            ledger.clone(),
            stop.clone(),
            researcher.clone(),
            data_token.clone(),
        );
        let (agreement, transfer) = (pulled_agreement.clone(), pulled_transfer.clone());
        writers.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let base = current(&url);
                let bearer_token = token.lock().expect("token").clone();
                match exchange(
                    "GET",
                    &format!("{base}/data/{agreement}/arrow?limit=5"),
                    &bearer_token,
                    None,
                ) {
                    Some((200, _)) => ledger.lock().expect("ledger").pulls += 1,
                    Some((401, _)) => {
                        if let Some((200, bytes)) = exchange(
                            "POST",
                            &format!("{base}/api/transfers/{transfer}/token"),
                            &researcher,
                            None,
                        ) {
                            ledger.lock().expect("ledger").transfers += 1;
                            if let Some(fresh) = json_of(&bytes)["token"].as_str() {
                                *token.lock().expect("token") = fresh.to_owned();
                            }
                        }
                    }
                    Some((status, bytes)) if status < 500 => {
                        panic!(
                            "pull answered {status}: {}",
                            String::from_utf8_lossy(&bytes)
                        )
                    }
                    _ => pause(),
                }
            }
        }));
    }

    let mut audit_floor = 0u64;
    let mut verified_publishes = 0usize;
    let mut verified_negotiations = 0usize;
    for cycle in 0..cycles {
        std::thread::sleep(Duration::from_millis(rng.between(50, 1500)));
        // Kill; from here on, a success the writers record was answered before the kill or
        // is the answer of the restarted node.
        let data_dir = node.data_dir.clone();
        let pid = i32::try_from(node.pid()).expect("pid");
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
        // Snapshot of what was acknowledged before the node died.
        let (acked_pulls, acked_transfers) = {
            while node.is_alive() {
                std::thread::sleep(Duration::from_millis(5));
            }
            let ledger = ledger.lock().expect("ledger");
            (ledger.pulls, ledger.transfers)
        };
        validate_catalog(&data_dir);
        let records = contract_records(&data_dir);
        let counted = records
            .get(&pulled_agreement)
            .and_then(|r| r["usage"]["pulls"].as_u64())
            .unwrap_or(0);
        assert!(
            counted >= acked_pulls,
            "cycle {cycle}: the agreement counts {counted} pulls, {acked_pulls} were served"
        );
        let entries = audit_entries(&data_dir);
        assert!(
            entries >= audit_floor && entries >= acked_pulls + acked_transfers,
            "cycle {cycle}: the audit log has {entries} entries, {audit_floor} before, \
             {acked_pulls} pulls and {acked_transfers} token issues acknowledged"
        );
        audit_floor = entries;

        node.start_again();
        *url.write().unwrap_or_else(|p| p.into_inner()) = node.url.clone();

        // What was acknowledged since the last check is there, whole.
        let (published, negotiated) = {
            let ledger = ledger.lock().expect("ledger");
            (
                ledger.published[verified_publishes..].to_vec(),
                ledger.negotiated[verified_negotiations..].to_vec(),
            )
        };
        for id in &published {
            let response = node.get(&format!("/api/datasets/{id}"), &[("accept", "text/turtle")]);
            assert_eq!(
                response.status, 200,
                "cycle {cycle}: acknowledged dataset {id} lost"
            );
        }
        verified_publishes += published.len();
        for (id, agreement) in &negotiated {
            check_negotiation(&node, &researcher, id, agreement, cycle);
        }
        verified_negotiations += negotiated.len();
        if (cycle + 1) % 25 == 0 {
            eprintln!("crash harness: {} kills survived", cycle + 1);
        }
    }
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.join().expect("writer thread");
    }

    // Everything acknowledged over the whole run, once more, and no half-published dataset:
    // the search index and the store agree after every crash.
    let ledger = ledger.lock().expect("ledger");
    for id in &ledger.published {
        let response = node.get(&format!("/api/datasets/{id}"), &[]);
        assert_eq!(response.status, 200, "acknowledged dataset {id} lost");
    }
    for (id, agreement) in &ledger.negotiated {
        check_negotiation(&node, &researcher, id, agreement, cycles);
    }
    let total = node.get("/api/datasets?q=electricity", &[]).json()["total"]
        .as_u64()
        .expect("total");
    let in_store = sparql_dataset_count(&node);
    assert_eq!(
        total, in_store,
        "search index and store disagree after the crashes"
    );
    assert!(
        in_store > ledger.published.len() as u64 && in_store <= ledger.attempted + 1,
        "{in_store} datasets stored, {} acknowledged, {} attempted",
        ledger.published.len(),
        ledger.attempted
    );
    eprintln!(
        "crash harness: {cycles} kills; acknowledged {} publishes ({} attempted), {} negotiations, \
         {} transfers/token issues, {} pulls; 0 lost, 0 torn",
        ledger.published.len(),
        ledger.attempted,
        ledger.negotiated.len(),
        ledger.transfers,
        ledger.pulls
    );
    node.assert_healthy();
}

/// An acknowledged negotiation is still FINALIZED with its agreement, and its state and its
/// event log agree (they are written in one transaction).
fn check_negotiation(node: &TestNode, token: &str, id: &str, agreement: &str, cycle: u64) {
    let auth = bearer(token);
    let record = node.get(
        &format!("/api/negotiations/{id}"),
        &[("authorization", &auth)],
    );
    assert_eq!(
        record.status, 200,
        "cycle {cycle}: acknowledged negotiation {id} lost"
    );
    let record = record.json();
    assert_eq!(record["state"], "FINALIZED", "cycle {cycle}: {record}");
    assert_eq!(
        record["agreement"]["id"], agreement,
        "cycle {cycle}: {record}"
    );
    let events = node
        .get(
            &format!("/api/negotiations/{id}/events"),
            &[("authorization", &auth)],
        )
        .json();
    let last = events["events"]
        .as_array()
        .and_then(|e| e.last())
        .cloned()
        .unwrap_or(Json::Null);
    assert_eq!(
        last["state"], "FINALIZED",
        "cycle {cycle}: torn negotiation {id}: {events}"
    );
    let agreement_record = node.get(
        &format!("/api/agreements/{agreement}"),
        &[("authorization", &auth)],
    );
    assert_eq!(
        agreement_record.status, 200,
        "cycle {cycle}: agreement {agreement} lost"
    );
}

fn sparql_dataset_count(node: &TestNode) -> u64 {
    let query =
        "SELECT (COUNT(DISTINCT ?d) AS ?n) WHERE { ?d a <http://www.w3.org/ns/dcat#Dataset> }";
    let encoded: String = query
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let response = node.get(
        &format!("/sparql?query={encoded}"),
        &[("accept", "application/sparql-results+json")],
    );
    assert_eq!(response.status, 200, "{}", response.text());
    response.json()["results"]["bindings"][0]["n"]["value"]
        .as_str()
        .and_then(|n| n.parse().ok())
        .expect("count")
}
