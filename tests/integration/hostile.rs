//! Hostile input on the catalogue (`SECURITY.md` §1–2, matrix R9–R12, R37): each gets a clear
//! 4xx, nothing is stored, no connection leaves the node, and the process stays up.

use crate::common::{Options, TestNode, fixture};
use agora::identity::Role;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

fn holder(node: &TestNode) -> String {
    format!("Bearer {}", node.token("mallory", Role::Holder, &[]))
}

fn post(node: &TestNode, content_type: &str, body: &[u8]) -> crate::common::Response {
    let auth = holder(node);
    node.send(
        "POST",
        "/api/datasets",
        &[("content-type", content_type), ("authorization", &auth)],
        body,
    )
}

/// A loopback listener that counts the connections it receives.
fn counting_listener() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            if stream.is_ok() {
                seen.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    (port, count)
}

#[test]
fn json_ld_nesting_bombs_are_refused_before_parsing() {
    let mut node = TestNode::start(Options::default());
    for depth in [1_000usize, 100_000] {
        let body = format!("{}{}", "{\"a\":".repeat(depth), "}".repeat(depth));
        let problem = post(&node, "application/ld+json", body.as_bytes()).assert_problem(400);
        assert!(
            problem["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("nested"),
            "{problem}"
        );
        let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        post(&node, "application/ld+json", arrays.as_bytes()).assert_problem(400);
        node.assert_healthy();
    }
}

#[test]
fn rdf_xml_uploads_are_refused_even_billion_laughs() {
    let mut node = TestNode::start(Options::default());
    let mut entities = String::from("<!ENTITY a0 \"lol\">");
    for level in 1..=9 {
        let previous = format!("&a{};", level - 1).repeat(10);
        entities.push_str(&format!("<!ENTITY a{level} \"{previous}\">"));
    }
    let body = format!(
        "<?xml version=\"1.0\"?><!DOCTYPE rdf:RDF [{entities}]><rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\" xmlns:dct=\"http://purl.org/dc/terms/\"><rdf:Description rdf:about=\"urn:x\"><dct:title>&a9;</dct:title></rdf:Description></rdf:RDF>"
    );
    let problem = post(&node, "application/rdf+xml", body.as_bytes()).assert_problem(415);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("text/turtle"),
        "{problem}"
    );
    node.assert_healthy();
    assert_eq!(node.get("/api/datasets", &[]).json()["total"], 0);
}

#[test]
fn oversized_bodies_are_refused_with_413() {
    let mut node = TestNode::start(Options::default());
    let big = vec![b' '; 5 << 20];
    post(&node, "text/turtle", &big).assert_problem(413);
    // A huge literal inside an otherwise valid document.
    let literal = format!("<urn:x> <urn:p> \"{}\" .", "x".repeat(6 << 20));
    post(&node, "text/turtle", literal.as_bytes()).assert_problem(413);
    node.assert_healthy();
}

#[test]
fn too_many_triples_are_refused() {
    let mut node = TestNode::start(Options::default());
    let mut body = String::new();
    for i in 0..60_000 {
        body.push_str(&format!("<urn:s{i}> <urn:p> <urn:o> .\n"));
    }
    post(&node, "application/n-triples", body.as_bytes()).assert_problem(413);
    node.assert_healthy();
}

#[test]
fn remote_contexts_are_never_fetched() {
    let mut node = TestNode::start(Options::default());
    let (port, connections) = counting_listener();
    for context in [
        format!("\"http://127.0.0.1:{port}/context.jsonld\""),
        "\"file:///etc/passwd\"".to_owned(),
        format!("[\"http://127.0.0.1:{port}/a\", \"http://127.0.0.1:{port}/b\"]"),
    ] {
        let body = format!(
            "{{\"@context\": {context}, \"@id\": \"urn:x\", \"@type\": \"http://www.w3.org/ns/dcat#Dataset\"}}"
        );
        let response = post(&node, "application/ld+json", body.as_bytes());
        let problem = response.assert_problem(400);
        assert!(
            problem["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("remote contexts are never fetched"),
            "{problem}"
        );
        assert!(
            !response.text().contains("root:x:0:0"),
            "file content leaked"
        );
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "the node connected out"
    );
    node.assert_healthy();
}

#[test]
fn malformed_bodies_get_clear_errors() {
    let mut node = TestNode::start(Options::default());
    let mut invalid_utf8 = fixture("dataset.ttl");
    invalid_utf8.extend_from_slice(&[0xff, 0xfe, 0xfd]);
    let problem = post(&node, "text/turtle", &invalid_utf8).assert_problem(400);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("UTF-8"),
        "{problem}"
    );
    post(&node, "text/turtle", b"<urn:a> <urn:b> .").assert_problem(400);
    post(&node, "application/ld+json", b"{\"@id\": ").assert_problem(400);
    post(&node, "application/x-yaml", b"a: b").assert_problem(415);
    post(&node, "", b"<urn:a> <urn:b> <urn:c> .").assert_problem(415);
    post(&node, "text/turtle", b"").assert_problem(422);
    let two = format!(
        "{}\n<urn:second> a <http://www.w3.org/ns/dcat#Dataset> .",
        String::from_utf8(fixture("dataset.ttl")).expect("utf8")
    );
    let problem = post(&node, "text/turtle", two.as_bytes()).assert_problem(422);
    assert!(
        problem["violations"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("one dataset"),
        "{problem}"
    );
    let named = b"{\"@graph\": [], \"@id\": \"urn:g\"}";
    let _ = post(&node, "application/ld+json", named);
    node.assert_healthy();
}

#[test]
fn file_distributions_must_stay_inside_allowed_roots() {
    let root = tempfile::tempdir().expect("root");
    let data = root.path().join("trips.parquet");
    std::fs::write(&data, b"PAR1").expect("file");
    let outside = tempfile::tempdir().expect("outside");
    std::fs::write(outside.path().join("secret.csv"), b"a,b").expect("file");
    std::os::unix::fs::symlink(
        outside.path().join("secret.csv"),
        root.path().join("link.csv"),
    )
    .expect("symlink");
    let mut node = TestNode::start(Options {
        args: vec!["--allow-root".into(), root.path().display().to_string()],
        ..Options::default()
    });
    let with_url = |url: &str| {
        String::from_utf8(fixture("dataset.ttl"))
            .expect("utf8")
            .replace(
                "dcat:accessURL <https://energy.example/datasets/grid-load-2024/files/>",
                &format!("dcat:downloadURL <{url}>"),
            )
    };
    let accepted = post(
        &node,
        "text/turtle",
        with_url(&format!("file://{}", data.display())).as_bytes(),
    );
    assert_eq!(accepted.status, 201, "{}", accepted.text());
    let id = accepted.json()["id"].as_str().expect("id").to_owned();
    // The file path never appears in the public description.
    let exported = node
        .get(&format!("/api/datasets/{id}"), &[("accept", "text/turtle")])
        .text();
    assert!(
        !exported.contains(&root.path().display().to_string()),
        "{exported}"
    );
    assert!(exported.contains("/dsp"), "{exported}");

    for url in [
        format!(
            "file://{}/../{}",
            root.path().display(),
            outside.path().join("secret.csv").display()
        ),
        format!("file://{}", outside.path().join("secret.csv").display()),
        format!("file://{}/link.csv", root.path().display()),
        format!("file://{}/%2e%2e/etc/passwd", root.path().display()),
        "file:///etc/passwd".to_owned(),
        "file:relative/path.csv".to_owned(),
    ] {
        let response = post(&node, "text/turtle", with_url(&url).as_bytes());
        let problem = response.assert_problem(422);
        assert!(!response.text().contains("root:x:0:0"), "{problem}");
    }
    node.assert_healthy();
}

#[test]
fn unknown_routes_and_methods_answer_problem_json() {
    let node = TestNode::start(Options::default());
    node.get("/no/such/route", &[]).assert_problem(404);
    node.send("PATCH", "/api/datasets", &[], b"{}")
        .assert_problem(405);
}
