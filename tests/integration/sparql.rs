//! The SPARQL 1.1 Protocol endpoint: formats, the public-graphs-only view, refused updates,
//! and budgets that really stop a query while the node stays responsive.

use crate::catalog::publish_fixture;
use crate::common::{Options, TestNode};
use std::time::Instant;

const SELECT_TITLES: &str = "PREFIX dct: <http://purl.org/dc/terms/> PREFIX dcat: <http://www.w3.org/ns/dcat#> SELECT ?d ?title WHERE { ?d a dcat:Dataset ; dct:title ?title FILTER(lang(?title) = 'en') } ORDER BY ?title";

fn encode(query: &str) -> String {
    percent_encoding::utf8_percent_encode(query, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[test]
fn select_and_ask_in_every_results_format() {
    let node = TestNode::start(Options::default());
    publish_fixture(&node, "grid-operator");
    let path = format!("/sparql?query={}", encode(SELECT_TITLES));
    for (accept, needle) in [
        ("application/sparql-results+json", "\"bindings\""),
        ("application/sparql-results+xml", "<sparql"),
        ("text/csv", "d,title"),
        ("text/tab-separated-values", "?d\t?title"),
    ] {
        let response = node.get(&path, &[("accept", accept)]);
        assert_eq!(response.status, 200, "{accept}: {}", response.text());
        assert!(
            response
                .header("content-type")
                .is_some_and(|ct| ct.starts_with(accept)),
            "{accept}"
        );
        let text = response.text();
        assert!(text.contains(needle), "{accept}: {text}");
        assert!(
            text.contains("Hourly electricity grid load 2024"),
            "{accept}: {text}"
        );
    }
    let ask = node.send(
        "POST",
        "/sparql",
        &[
            ("content-type", "application/sparql-query"),
            ("accept", "application/sparql-results+json"),
        ],
        b"ASK { ?d a <http://www.w3.org/ns/dcat#Dataset> }",
    );
    assert_eq!(ask.status, 200, "{}", ask.text());
    assert_eq!(ask.json()["boolean"], true);
    let form = node.send(
        "POST",
        "/sparql",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("accept", "application/sparql-results+json"),
        ],
        format!("query={}", encode(SELECT_TITLES)).as_bytes(),
    );
    assert_eq!(form.status, 200, "{}", form.text());
    assert_eq!(
        form.json()["results"]["bindings"].as_array().map(Vec::len),
        Some(1)
    );
}

#[test]
fn construct_and_describe_as_rdf() {
    let node = TestNode::start(Options::default());
    publish_fixture(&node, "grid-operator");
    let construct = "PREFIX dct: <http://purl.org/dc/terms/> CONSTRUCT { ?d dct:title ?t } WHERE { ?d dct:title ?t }";
    for accept in [
        "text/turtle",
        "application/n-triples",
        "application/ld+json",
    ] {
        let response = node.get(
            &format!("/sparql?query={}", encode(construct)),
            &[("accept", accept)],
        );
        assert_eq!(response.status, 200, "{accept}: {}", response.text());
        assert_eq!(response.header("content-type"), Some(accept));
        assert!(
            response
                .text()
                .contains("Hourly electricity grid load 2024"),
            "{accept}"
        );
    }
    let describe = node.get(
        &format!(
            "/sparql?query={}",
            encode("DESCRIBE <https://energy.example/datasets/grid-load-2024>")
        ),
        &[("accept", "text/turtle")],
    );
    assert_eq!(describe.status, 200, "{}", describe.text());
    assert!(describe.text().contains("grid-load-2024"));
}

#[test]
fn private_bookkeeping_is_invisible_and_updates_are_refused() {
    let node = TestNode::start(Options::default());
    publish_fixture(&node, "secret-holder-name");
    for query in [
        "SELECT * WHERE { ?s ?p ?o }",
        "SELECT * WHERE { GRAPH ?g { ?s ?p ?o } }",
        "SELECT * FROM <urn:agora:local:x> WHERE { ?s ?p ?o }",
    ] {
        let response = node.get(
            &format!("/sparql?query={}", encode(query)),
            &[("accept", "text/csv")],
        );
        assert_eq!(response.status, 200, "{}", response.text());
        assert!(
            !response.text().contains("secret-holder-name"),
            "{query} leaks the holder"
        );
        assert!(
            !response
                .text()
                .contains("https://w3id.org/agora/ns#connector"),
            "{query}"
        );
    }
    let count = |node: &TestNode| {
        node.get(
            &format!(
                "/sparql?query={}",
                encode("SELECT (COUNT(*) AS ?n) WHERE { GRAPH ?g { ?s ?p ?o } }")
            ),
            &[("accept", "text/csv")],
        )
        .text()
    };
    let before = count(&node);
    for update in [
        "INSERT DATA { <urn:a> <urn:b> <urn:c> }",
        "DROP ALL",
        "LOAD <http://127.0.0.1:9/x>",
    ] {
        node.get(&format!("/sparql?query={}", encode(update)), &[])
            .assert_problem(403);
        node.send(
            "POST",
            "/sparql",
            &[("content-type", "application/x-www-form-urlencoded")],
            format!("update={}", encode(update)).as_bytes(),
        )
        .assert_problem(403);
        node.send(
            "POST",
            "/sparql",
            &[("content-type", "application/sparql-update")],
            update.as_bytes(),
        )
        .assert_problem(403);
    }
    assert_eq!(before, count(&node));
}

#[test]
fn protocol_errors_are_clear() {
    let node = TestNode::start(Options::default());
    node.get("/sparql", &[]).assert_problem(400);
    node.get(
        &format!(
            "/sparql?query={}&query={}",
            encode("ASK {}"),
            encode("ASK {}")
        ),
        &[],
    )
    .assert_problem(400);
    node.get(
        &format!("/sparql?query={}", encode("SELEKT * WHERE {")),
        &[],
    )
    .assert_problem(400);
    node.send(
        "POST",
        "/sparql",
        &[("content-type", "text/plain")],
        b"ASK {}",
    )
    .assert_problem(415);
    node.send(
        "POST",
        "/sparql",
        &[("content-type", "application/sparql-query")],
        &[0xff, 0xfe, 0x41, 0x00],
    )
    .assert_problem(400);
    node.send(
        "POST",
        "/sparql",
        &[("content-type", "application/sparql-query; charset=utf-16")],
        b"ASK {}",
    )
    .assert_problem(400);
    node.send(
        "PUT",
        "/sparql",
        &[("content-type", "application/sparql-query")],
        b"ASK {}",
    )
    .assert_problem(405);
    let service = node.get(
        &format!(
            "/sparql?query={}",
            encode("SELECT * WHERE { SERVICE <http://169.254.169.254/> { ?s ?p ?o } }")
        ),
        &[],
    );
    assert!(
        service.status == 400,
        "SERVICE to a non-peer must fail: {}",
        service.text()
    );
}

#[test]
fn a_runaway_order_by_is_stopped_and_the_node_stays_responsive() {
    let mut node = TestNode::start(Options {
        demo: true,
        args: vec!["--sparql-timeout-ms".into(), "2000".into()],
        ..Options::default()
    });
    // A four-way cross product of every triple, sorted: Oxigraph's cancellation does not
    // bound ORDER BY, the worker's deadline does.
    let heavy = "SELECT * WHERE { GRAPH ?g1 { ?a ?b ?c } GRAPH ?g2 { ?d ?e ?f } GRAPH ?g3 { ?h ?i ?j } GRAPH ?g4 { ?k ?l ?m } } ORDER BY ?c ?f ?j ?m";
    let url = format!("{}/sparql?query={}", node.url, encode(heavy));
    let pid = node.pid();
    let started = Instant::now();
    let worker = std::thread::spawn(move || {
        let mut response = crate::common::agent().get(&url).call().expect("exchange");
        (
            response.status().as_u16(),
            response.body_mut().read_to_string().unwrap_or_default(),
        )
    });
    // While it runs, health answers.
    std::thread::sleep(std::time::Duration::from_millis(300));
    node.assert_healthy();
    let (status, body) = worker.join().expect("thread");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("budget"), "{body}");
    eprintln!("runaway ORDER BY stopped after {:?}", started.elapsed());
    assert!(node.is_alive());
    assert_eq!(node.pid(), pid);
    // The next query is answered normally.
    let next = node.get(
        &format!("/sparql?query={}", encode("ASK { ?s ?p ?o }")),
        &[("accept", "application/sparql-results+json")],
    );
    assert_eq!(next.status, 200, "{}", next.text());
}

#[test]
fn queries_see_writes_immediately() {
    let node = TestNode::start(Options::default());
    let ask = format!(
        "/sparql?query={}",
        encode("ASK { <https://energy.example/datasets/grid-load-2024> ?p ?o }")
    );
    assert_eq!(
        node.get(&ask, &[("accept", "application/sparql-results+json")])
            .json()["boolean"],
        false
    );
    publish_fixture(&node, "grid-operator");
    assert_eq!(
        node.get(&ask, &[("accept", "application/sparql-results+json")])
            .json()["boolean"],
        true
    );
}

#[test]
fn a_flood_of_heavy_queries_is_admitted_within_bounds() {
    let mut node = TestNode::start(Options {
        demo: true,
        args: vec!["--sparql-timeout-ms".into(), "1000".into()],
        ..Options::default()
    });
    let heavy = "SELECT * WHERE { GRAPH ?g1 { ?a ?b ?c } GRAPH ?g2 { ?d ?e ?f } GRAPH ?g3 { ?h ?i ?j } } ORDER BY ?c ?f ?j";
    let url = format!("{}/sparql?query={}", node.url, encode(heavy));
    let clients: Vec<_> = (0..40)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let response = crate::common::agent().get(&url).call().expect("exchange");
                let retry_after = response.headers().get("retry-after").is_some();
                (response.status().as_u16(), retry_after)
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(200));
    node.assert_healthy();
    let outcomes: Vec<(u16, bool)> = clients
        .into_iter()
        .map(|c| c.join().expect("thread"))
        .collect();
    assert!(
        outcomes.iter().all(|(status, _)| *status == 503),
        "{outcomes:?}"
    );
    let busy = outcomes.iter().filter(|(_, retry)| *retry).count();
    // 2 running + 16 queued are evaluated (and stopped at the deadline); the rest are turned
    // away at once with Retry-After.
    assert!(
        busy >= 40 - 18,
        "only {busy} of 40 were turned away: {outcomes:?}"
    );
    node.assert_healthy();
}

#[test]
fn a_query_over_its_memory_budget_is_stopped() {
    let mut node = TestNode::start(Options {
        demo: true,
        args: vec![
            "--sparql-timeout-ms".into(),
            "60000".into(),
            "--sparql-memory-mib".into(),
            "512".into(),
        ],
        ..Options::default()
    });
    // Sorting a 3-way cross product materialises hundreds of millions of rows: the worker
    // hits its address-space limit long before the (generous) deadline.
    let heavy = "SELECT * WHERE { GRAPH ?g1 { ?a ?b ?c } GRAPH ?g2 { ?d ?e ?f } GRAPH ?g3 { ?h ?i ?j } } ORDER BY ?c ?f ?j";
    let response = node.get(&format!("/sparql?query={}", encode(heavy)), &[]);
    let problem = response.assert_problem(503);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("memory budget"),
        "{problem}"
    );
    node.assert_healthy();
    let next = node.get(
        &format!("/sparql?query={}", encode("ASK { ?s ?p ?o }")),
        &[("accept", "application/sparql-results+json")],
    );
    assert_eq!(next.status, 200, "{}", next.text());
}

#[test]
fn operations_endpoints_describe_the_node() {
    let node = TestNode::start(Options::default());
    let health = node.get("/health", &[]).json();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["version"], agora::VERSION);
    let openapi = node.get("/openapi.json", &[]).json();
    assert!(
        openapi["openapi"]
            .as_str()
            .unwrap_or_default()
            .starts_with("3.1"),
        "{}",
        openapi["openapi"]
    );
    for path in [
        "/api/datasets",
        "/api/datasets/{id}",
        "/api/datasets/batch",
        "/sparql",
        "/catalog",
        "/health",
    ] {
        assert!(
            openapi["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    let metrics = node.get("/metrics", &[]).text();
    assert!(metrics.contains("http_requests_total"), "{metrics}");
    assert!(
        metrics.contains("http_request_duration_seconds"),
        "{metrics}"
    );
}

#[test]
fn vocabularies_are_stored_once_and_joinable() {
    let node = TestNode::start(Options::default());
    let id = publish_fixture(&node, "grid-operator");
    let label = "PREFIX dcat: <http://www.w3.org/ns/dcat#> PREFIX skos: <http://www.w3.org/2004/02/skos/core#> \
                 SELECT ?label WHERE { ?d dcat:theme ?t . ?t skos:prefLabel ?label FILTER(lang(?label) = 'en') }";
    let joined = node
        .get(
            &format!("/sparql?query={}", encode(label)),
            &[("accept", "text/csv")],
        )
        .text();
    assert!(joined.contains("Energy"), "{joined}");
    let copies = format!(
        "ASK {{ GRAPH <urn:agora:local:{id}> {{ <http://publications.europa.eu/resource/authority/data-theme/ENER> ?p ?o }} }}"
    );
    let answer = node.get(
        &format!("/sparql?query={}", encode(&copies)),
        &[("accept", "application/sparql-results+json")],
    );
    assert_eq!(
        answer.json()["boolean"],
        false,
        "the dataset graph holds a copy of the vocabulary"
    );
}
