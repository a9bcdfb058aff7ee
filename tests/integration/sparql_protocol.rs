//! The W3C SPARQL 1.1 Protocol test suite, driven by its own manifest in
//! `../shared/reference/w3c-sparql11-protocol-tests`. Every test runs against a real node that
//! was loaded with the suite's data graphs (`agora load`).
//!
//! Tests that cannot apply, with the reason:
//! - `update_*` (7 tests): they expect SPARQL Update to succeed; the node's public endpoint
//!   answers queries only and refuses every update by design (`SECURITY.md` R16). The
//!   `bad_update_*` tests still run: they expect a 4xx, which the refusal gives.

use crate::common::{Options, TestNode, reference_dir};
use oxigraph::io::{RdfFormat, RdfParser};
use oxigraph::model::vocab::rdf;
use oxigraph::model::{Graph, NamedOrBlankNodeRef, Term, TermRef, Triple};

const MF: &str = "http://www.w3.org/2001/sw/DataAccess/tests/test-manifest#";
const HT: &str = "http://www.w3.org/2011/http#";
const UT: &str = "http://www.w3.org/2009/sparql/tests/test-update#";
const CNT: &str = "http://www.w3.org/2011/content#";
const HTS: &str = "http://www.w3.org/2011/http-statusCodes#";
const RDFS_LABEL: &str = "http://www.w3.org/2000/01/rdf-schema#label";

fn iri(namespace: &str, local: &str) -> oxigraph::model::NamedNode {
    oxigraph::model::NamedNode::new_unchecked(format!("{namespace}{local}"))
}

fn object<'a>(
    graph: &'a Graph,
    subject: NamedOrBlankNodeRef<'_>,
    predicate: &oxigraph::model::NamedNode,
) -> Option<TermRef<'a>> {
    graph.object_for_subject_predicate(subject, predicate)
}

fn subject(term: TermRef<'_>) -> NamedOrBlankNodeRef<'_> {
    match term {
        TermRef::NamedNode(n) => n.into(),
        TermRef::BlankNode(b) => b.into(),
        other => panic!("not a node: {other}"),
    }
}

fn literal(term: Option<TermRef<'_>>) -> Option<String> {
    match term? {
        TermRef::Literal(l) => Some(l.value().to_owned()),
        _ => None,
    }
}

fn list(graph: &Graph, head: TermRef<'_>) -> Vec<Term> {
    let mut items = Vec::new();
    let mut cursor = head.into_owned();
    while cursor != Term::from(rdf::NIL.into_owned()) {
        let node = subject(cursor.as_ref());
        items.push(
            graph
                .object_for_subject_predicate(node, rdf::FIRST)
                .expect("first")
                .into_owned(),
        );
        cursor = graph
            .object_for_subject_predicate(node, rdf::REST)
            .expect("rest")
            .into_owned();
    }
    items
}

struct Expected {
    statuses: Vec<u16>,
    boolean: Option<bool>,
    format: Option<String>,
}

fn check(response: &crate::common::Response, expected: &Expected) -> Result<(), String> {
    if !expected.statuses.contains(&(response.status / 100)) {
        return Err(format!(
            "status {} not in {:?}xx: {}",
            response.status,
            expected.statuses,
            response.text()
        ));
    }
    let content_type = response
        .header("content-type")
        .unwrap_or_default()
        .to_owned();
    if let Some(format) = &expected.format {
        let ok = match format.as_str() {
            "boolean" => content_type.contains("sparql-results"),
            "tabular" => ["sparql-results", "text/csv", "text/tab-separated-values"]
                .iter()
                .any(|t| content_type.contains(t)),
            "RDF" => ["turtle", "n-triples", "rdf+xml", "ld+json"]
                .iter()
                .any(|t| content_type.contains(t)),
            _ => true,
        };
        if !ok {
            return Err(format!("expected {format} results, got {content_type}"));
        }
    }
    if let Some(boolean) = expected.boolean {
        let text = response.text();
        let found = if content_type.contains("json") {
            response.json()["boolean"].as_bool()
        } else {
            Some(text.contains("<boolean>true</boolean>"))
        };
        if found != Some(boolean) {
            return Err(format!("expected boolean {boolean}: {text}"));
        }
    }
    Ok(())
}

#[test]
fn w3c_sparql11_protocol_suite() {
    let Some(reference) = reference_dir("SPARQL 1.1 Protocol suite") else {
        return;
    };
    let folder = reference.join("w3c-sparql11-protocol-tests");
    let manifest_path = folder.join("manifest.ttl");
    let base = format!("file://{}", manifest_path.display());
    let mut manifest = Graph::new();
    let text = std::fs::read(&manifest_path).expect("manifest");
    for quad in RdfParser::from_format(RdfFormat::Turtle)
        .with_base_iri(&base)
        .expect("base")
        .for_slice(&text)
    {
        manifest.insert(&Triple::from(quad.expect("manifest parses")));
    }
    let root = manifest
        .subject_for_predicate_object(rdf::TYPE, &iri(MF, "Manifest"))
        .expect("manifest node");
    let entries = list(
        &manifest,
        object(&manifest, root, &iri(MF, "entries")).expect("entries"),
    );

    // Every data graph any test uses, loaded once.
    let mut preload = Vec::new();
    for triple in manifest.triples_for_predicate(&iri(UT, "graphData")) {
        let data = subject(triple.object);
        let file = match object(&manifest, data, &iri(UT, "graph")) {
            Some(TermRef::NamedNode(n)) => n.as_str().trim_start_matches("file://").to_owned(),
            other => panic!("graph data without a file: {other:?}"),
        };
        let graph = literal(object(
            &manifest,
            data,
            &oxigraph::model::NamedNode::new_unchecked(RDFS_LABEL),
        ))
        .expect("label");
        if !preload
            .iter()
            .any(|(g, _): &(String, std::path::PathBuf)| *g == graph)
        {
            preload.push((graph, file.into()));
        }
    }
    let node = TestNode::start(Options {
        preload,
        ..Options::default()
    });

    let (mut passed, mut skipped, mut failures) = (0, Vec::new(), Vec::new());
    for entry in &entries {
        let test = subject(entry.as_ref());
        let name = literal(object(&manifest, test, &iri(MF, "name"))).unwrap_or_default();
        let id = entry.to_string();
        let local = id
            .rsplit('#')
            .next()
            .unwrap_or_default()
            .trim_end_matches('>')
            .to_owned();
        if local.starts_with("update_") {
            skipped.push(format!("{local}: SPARQL Update is refused by design"));
            continue;
        }
        let action = subject(object(&manifest, test, &iri(MF, "action")).expect("action"));
        let requests = list(
            &manifest,
            object(&manifest, action, &iri(HT, "requests")).expect("requests"),
        );
        let mut outcome = Ok(());
        for request in &requests {
            let request = subject(request.as_ref());
            let method =
                literal(object(&manifest, request, &iri(HT, "methodName"))).expect("method");
            let path = literal(object(&manifest, request, &iri(HT, "absolutePath"))).expect("path");
            let path = path.replacen("/sparql/", "/sparql", 1);
            let mut headers = Vec::new();
            if let Some(list_head) = object(&manifest, request, &iri(HT, "headers")) {
                for header in list(&manifest, list_head) {
                    let header = subject(header.as_ref());
                    headers.push((
                        literal(object(&manifest, header, &iri(HT, "fieldName"))).expect("name"),
                        literal(object(&manifest, header, &iri(HT, "fieldValue"))).expect("value"),
                    ));
                }
            }
            let body = object(&manifest, request, &iri(HT, "body")).map(|b| {
                let b = subject(b);
                let chars = literal(object(&manifest, b, &iri(CNT, "chars"))).unwrap_or_default();
                match literal(object(&manifest, b, &iri(CNT, "characterEncoding"))).as_deref() {
                    Some(encoding) if encoding.eq_ignore_ascii_case("UTF-16") => {
                        let mut bytes = vec![0xff, 0xfe];
                        bytes.extend(chars.encode_utf16().flat_map(u16::to_le_bytes));
                        bytes
                    }
                    _ => chars.into_bytes(),
                }
            });
            let response_node =
                subject(object(&manifest, request, &iri(HT, "resp")).expect("resp"));
            let statuses = manifest
                .objects_for_subject_predicate(response_node, &iri(MF, "expectedStatus"))
                .filter_map(|s| match s {
                    TermRef::NamedNode(n) => n
                        .as_str()
                        .strip_prefix(HTS)
                        .and_then(|c| c.strip_prefix("StatusCode"))
                        .and_then(|c| c[..1].parse().ok()),
                    _ => None,
                })
                .collect();
            let expected = Expected {
                statuses,
                boolean: literal(object(
                    &manifest,
                    response_node,
                    &iri(MF, "expectedBoolean"),
                ))
                .map(|b| b == "true"),
                format: literal(object(&manifest, response_node, &iri(MF, "expectedFormat"))),
            };
            let header_refs: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let response = node.send(&method, &path, &header_refs, &body.unwrap_or_default());
            outcome = check(&response, &expected);
            if outcome.is_err() {
                break;
            }
        }
        match outcome {
            Ok(()) => passed += 1,
            Err(why) => failures.push(format!("{local} ({name}): {why}")),
        }
    }
    eprintln!(
        "SPARQL 1.1 Protocol: {passed} passed, {} failed, {} not applicable of {}\n  not applicable: {}",
        failures.len(),
        skipped.len(),
        entries.len(),
        skipped.join("; ")
    );
    assert!(
        failures.is_empty(),
        "failing protocol tests:\n{}",
        failures.join("\n")
    );
}
