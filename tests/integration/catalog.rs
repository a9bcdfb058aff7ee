//! Publishing, reading, replacing, deleting and searching datasets.

use crate::common::{Options, TestNode, fixture, parse_graph};
use agora::identity::Role;
use oxigraph::io::RdfFormat;

const TURTLE: (&str, &str) = ("content-type", "text/turtle");
const JSONLD: (&str, &str) = ("content-type", "application/ld+json");

fn bearer(token: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

/// Publishes the Turtle fixture as `holder`, returning the new id.
pub fn publish_fixture(node: &TestNode, holder: &str) -> String {
    let token = node.token(holder, Role::Holder, &[]);
    let auth = bearer(&token);
    let response = node.send(
        "POST",
        "/api/datasets",
        &[TURTLE, (auth.0, &auth.1)],
        &fixture("dataset.ttl"),
    );
    assert_eq!(response.status, 201, "{}", response.text());
    let body = response.json();
    let id = body["id"].as_str().expect("id").to_owned();
    assert_eq!(
        response.header("location"),
        Some(format!("/api/datasets/{id}").as_str())
    );
    id
}

#[test]
fn publish_turtle_then_read_in_every_format() {
    let node = TestNode::start(Options::default());
    let id = publish_fixture(&node, "hospital-a");
    let iri = "https://energy.example/datasets/grid-load-2024";

    for (accept, format) in [
        ("text/turtle", RdfFormat::Turtle),
        ("application/n-triples", RdfFormat::NTriples),
        ("application/rdf+xml", RdfFormat::RdfXml),
        (
            "application/ld+json",
            RdfFormat::JsonLd {
                profile: Default::default(),
            },
        ),
    ] {
        let response = node.get(&format!("/api/datasets/{id}"), &[("accept", accept)]);
        assert_eq!(response.status, 200, "{accept}: {}", response.text());
        assert_eq!(response.header("content-type"), Some(accept));
        let graph = parse_graph(&response.body, format);
        let title = graph
            .iter()
            .find(|t| {
                t.subject.to_string() == format!("<{iri}>")
                    && t.predicate.as_str() == "http://purl.org/dc/terms/title"
            })
            .map(|t| t.object.to_string());
        assert_eq!(
            title.as_deref(),
            Some("\"Hourly electricity grid load 2024\"@en"),
            "{accept}"
        );
        // The export carries the vocabulary facts the shapes need.
        assert!(
            graph.iter().any(|t| t.subject.to_string()
                == "<http://publications.europa.eu/resource/authority/data-theme/ENER>"
                && t.object.to_string() == "<http://www.w3.org/2004/02/skos/core#Concept>"),
            "{accept}: theme not typed"
        );
    }
    // JSON-LD is compacted against the fixed context.
    let jsonld = node.get(&format!("/api/datasets/{id}"), &[]).json();
    assert!(jsonld["@context"]["dcat"].is_string(), "{jsonld}");
    let dataset = jsonld["@graph"]
        .as_array()
        .expect("@graph")
        .iter()
        .find(|n| n["@id"] == iri)
        .expect("dataset node");
    assert!(
        dataset["@type"]
            .as_array()
            .is_some_and(|t| t.contains(&"dcat:Dataset".into())),
        "{dataset}"
    );
    assert_eq!(
        dataset["dct:title"]["@value"],
        "Hourly electricity grid load 2024"
    );

    let html = node.get(&format!("/api/datasets/{id}"), &[("accept", "text/html")]);
    assert_eq!(html.status, 200);
    assert!(html.text().contains("Hourly electricity grid load 2024"));

    let refused = node.get(&format!("/api/datasets/{id}"), &[("accept", "image/png")]);
    refused.assert_problem(406);
    node.get("/api/datasets/does-not-exist", &[])
        .assert_problem(404);
}

#[test]
fn publish_json_ld_and_mint_iri_for_blank_dataset() {
    let node = TestNode::start(Options::default());
    let token = node.token("water-agency", Role::Holder, &[]);
    let auth = bearer(&token);
    let response = node.send(
        "POST",
        "/api/datasets",
        &[JSONLD, (auth.0, &auth.1)],
        &fixture("dataset.jsonld"),
    );
    assert_eq!(response.status, 201, "{}", response.text());
    assert_eq!(
        response.json()["iri"],
        "https://water.example/datasets/river-levels"
    );

    // A blank-node dataset gets an IRI minted under the node.
    let text = String::from_utf8(fixture("dataset.ttl"))
        .expect("utf8")
        .replace(
            "<https://energy.example/datasets/grid-load-2024>\n    a dcat:Dataset",
            "_:dataset\n    a dcat:Dataset",
        );
    let response = node.send(
        "POST",
        "/api/datasets",
        &[TURTLE, (auth.0, &auth.1)],
        text.as_bytes(),
    );
    assert_eq!(response.status, 201, "{}", response.text());
    let body = response.json();
    let id = body["id"].as_str().expect("id");
    assert_eq!(body["iri"], format!("{}/datasets/{id}", node.url));
}

#[test]
fn invalid_description_lists_every_violation() {
    let node = TestNode::start(Options::default());
    let token = node.token("hospital-a", Role::Holder, &[]);
    let auth = bearer(&token);
    let text = String::from_utf8(fixture("dataset.ttl"))
        .expect("utf8")
        .replace("dct:title \"Hourly electricity grid load 2024\"@en ;", "")
        .replace("data-theme/ENER", "data-theme/NOT_A_THEME");
    let response = node.send(
        "POST",
        "/api/datasets",
        &[TURTLE, (auth.0, &auth.1)],
        text.as_bytes(),
    );
    let problem = response.assert_problem(422);
    let violations = problem["violations"].as_array().expect("violations");
    assert!(violations.len() >= 2, "{problem}");
    for violation in violations {
        for field in ["focus_node", "path", "message"] {
            assert!(
                violation[field].as_str().is_some_and(|v| !v.is_empty()),
                "{violation}"
            );
        }
    }
    let paths: Vec<&str> = violations
        .iter()
        .filter_map(|v| v["path"].as_str())
        .collect();
    assert!(
        paths.contains(&"http://purl.org/dc/terms/title"),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"http://www.w3.org/ns/dcat#theme"),
        "{paths:?}"
    );
    // Nothing was stored.
    assert_eq!(node.get("/api/datasets", &[]).json()["total"], 0);
}

#[test]
fn only_the_publishing_holder_may_replace_or_delete() {
    let node = TestNode::start(Options::default());
    let id = publish_fixture(&node, "hospital-a");
    let path = format!("/api/datasets/{id}");
    let other = node.token("hospital-b", Role::Holder, &[]);
    let other = bearer(&other);
    let owner = node.token("hospital-a", Role::Holder, &[]);
    let owner = bearer(&owner);
    let researcher = node.token("uni", Role::Researcher, &[]);
    let researcher = bearer(&researcher);

    node.send(
        "PUT",
        &path,
        &[TURTLE, (other.0, &other.1)],
        &fixture("dataset.ttl"),
    )
    .assert_problem(403);
    node.send("DELETE", &path, &[(other.0, &other.1)], b"")
        .assert_problem(403);
    node.send("DELETE", &path, &[(researcher.0, &researcher.1)], b"")
        .assert_problem(403);
    node.send("DELETE", &path, &[], b"").assert_problem(401);

    // Read once so the export is cached; the replacement below must not be served stale.
    assert!(
        !node
            .get(&path, &[("accept", "text/turtle")])
            .text()
            .contains("revised")
    );
    let changed = String::from_utf8(fixture("dataset.ttl"))
        .expect("utf8")
        .replace(
            "Hourly electricity grid load 2024",
            "Hourly electricity grid load 2024, revised",
        );
    let response = node.send(
        "PUT",
        &path,
        &[TURTLE, (owner.0, &owner.1)],
        changed.as_bytes(),
    );
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(
        node.get(&path, &[("accept", "text/turtle")])
            .text()
            .contains("revised")
    );
    let found = node.get("/api/datasets?q=revised", &[]).json();
    assert_eq!(found["total"], 1, "{found}");

    let response = node.send("DELETE", &path, &[(owner.0, &owner.1)], b"");
    assert_eq!(response.status, 204, "{}", response.text());
    node.get(&path, &[]).assert_problem(404);
    assert_eq!(
        node.get("/api/datasets?q=electricity", &[]).json()["total"],
        0
    );
    node.send(
        "PUT",
        &path,
        &[TURTLE, (owner.0, &owner.1)],
        &fixture("dataset.ttl"),
    )
    .assert_problem(404);
}

#[test]
fn the_same_iri_cannot_be_published_twice() {
    let node = TestNode::start(Options::default());
    publish_fixture(&node, "hospital-a");
    let token = node.token("hospital-b", Role::Holder, &[]);
    let auth = bearer(&token);
    node.send(
        "POST",
        "/api/datasets",
        &[TURTLE, (auth.0, &auth.1)],
        &fixture("dataset.ttl"),
    )
    .assert_problem(409);
}

#[test]
fn search_ranks_filters_counts_facets_and_survives_restart() {
    let mut node = TestNode::start(Options {
        demo: true,
        ..Options::default()
    });
    publish_fixture(&node, "grid-operator");

    let all = node.get("/api/datasets", &[]).json();
    assert_eq!(all["total"], 4, "{all}");
    let themes = &all["facets"]["theme"];
    assert_eq!(
        themes["http://publications.europa.eu/resource/authority/data-theme/HEAL"], 1,
        "{all}"
    );
    assert_eq!(
        themes["http://publications.europa.eu/resource/authority/data-theme/ENER"], 1,
        "{all}"
    );

    let hits = node.get("/api/datasets?q=electricity%20grid", &[]).json();
    assert_eq!(
        hits["items"][0]["title"], "Hourly electricity grid load 2024",
        "{hits}"
    );
    assert_eq!(hits["items"][0]["origin"], "local");

    let health = node
        .get(
            "/api/datasets?theme=http://publications.europa.eu/resource/authority/data-theme/HEAL",
            &[],
        )
        .json();
    assert_eq!(health["total"], 1, "{health}");
    assert_eq!(health["items"][0]["id"], "health");

    let page = node.get("/api/datasets?limit=2&offset=2", &[]).json();
    assert_eq!(page["items"].as_array().map(Vec::len), Some(2), "{page}");
    node.get("/api/datasets?limit=0", &[]).assert_problem(400);
    node.get("/api/datasets?limit=100000", &[])
        .assert_problem(400);
    node.get("/api/datasets?bogus=1", &[]).assert_problem(400);

    node.kill9_and_restart();
    let again = node.get("/api/datasets?q=electricity", &[]).json();
    assert_eq!(again["total"], 1, "{again}");
    assert_eq!(node.get("/api/datasets", &[]).json()["total"], 4);
}

#[test]
fn catalog_is_paged_with_links() {
    let node = TestNode::start(Options {
        demo: true,
        ..Options::default()
    });
    let response = node.get("/catalog?limit=2", &[("accept", "text/turtle")]);
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("x-total-count"), Some("3"));
    let link = response.header("link").expect("Link header");
    assert!(link.contains("rel=\"next\""), "{link}");
    let graph = parse_graph(&response.body, RdfFormat::Turtle);
    let datasets = graph
        .iter()
        .filter(|t| t.predicate.as_str() == "http://www.w3.org/ns/dcat#dataset")
        .count();
    assert_eq!(datasets, 2);
    let last = node.get(
        "/catalog?limit=2&offset=2",
        &[("accept", "application/ld+json")],
    );
    assert_eq!(last.status, 200);
    assert!(
        !last
            .header("link")
            .unwrap_or_default()
            .contains("rel=\"next\"")
    );
}

#[test]
fn batch_publishes_valid_documents_and_reports_the_others() {
    let node = TestNode::start(Options::default());
    let token = node.token("water-agency", Role::Holder, &[]);
    let auth = bearer(&token);
    let valid: serde_json::Value =
        serde_json::from_slice(&fixture("dataset.jsonld")).expect("json");
    let mut second = valid.clone();
    second["@id"] = "https://water.example/datasets/lake-levels".into();
    let mut invalid = valid.clone();
    invalid.as_object_mut().expect("object").remove("dct:title");
    invalid["@id"] = "https://water.example/datasets/untitled".into();
    let body = [valid.clone(), invalid, second, valid]
        .iter()
        .map(|doc| doc.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    let response = node.send(
        "POST",
        "/api/datasets/batch",
        &[("content-type", "application/x-ndjson"), (auth.0, &auth.1)],
        body.as_bytes(),
    );
    assert_eq!(response.status, 200, "{}", response.text());
    let outcome = response.json();
    assert_eq!(outcome["published"], 2, "{outcome}");
    assert_eq!(outcome["failed"], 2, "{outcome}");
    let items = outcome["items"].as_array().expect("items");
    assert!(items[0]["id"].is_string());
    assert_eq!(items[1]["problem"]["status"], 422, "{outcome}");
    assert!(items[2]["id"].is_string());
    // The same IRI twice in one batch: the second is a conflict.
    assert_eq!(items[3]["problem"]["status"], 409, "{outcome}");
    assert_eq!(node.get("/api/datasets", &[]).json()["total"], 2);

    node.send(
        "POST",
        "/api/datasets/batch",
        &[("content-type", "application/x-ndjson"), (auth.0, &auth.1)],
        b"\n\n",
    )
    .assert_problem(400);
    node.send(
        "POST",
        "/api/datasets/batch",
        &[("content-type", "text/turtle"), (auth.0, &auth.1)],
        b"x",
    )
    .assert_problem(415);
    node.send(
        "POST",
        "/api/datasets/batch",
        &[("content-type", "application/x-ndjson")],
        b"{}",
    )
    .assert_problem(401);
    let too_many = "{}\n".repeat(10_001);
    node.send(
        "POST",
        "/api/datasets/batch",
        &[("content-type", "application/x-ndjson"), (auth.0, &auth.1)],
        too_many.as_bytes(),
    )
    .assert_problem(400);
}

#[test]
fn policies_are_filled_from_templates_and_checked_at_publication() {
    let node = TestNode::start(Options::default());
    let token = node.token("grid-operator", Role::Holder, &[]);
    let auth = bearer(&token);
    let with_policy = |extra: &str| {
        String::from_utf8(fixture("dataset.ttl")).expect("utf8").replace(
            "    dcat:distribution <https://energy.example/datasets/grid-load-2024/parquet> .",
            &format!("    dcat:distribution <https://energy.example/datasets/grid-load-2024/parquet> ;\n    {extra} ."),
        )
    };
    // A template referred to by its uid is filled in.
    let template = with_policy(
        "<http://www.w3.org/ns/odrl/2/hasPolicy> <https://w3id.org/agora/policies/research-non-commercial>",
    );
    let response = node.send(
        "POST",
        "/api/datasets",
        &[TURTLE, (auth.0, &auth.1)],
        template.as_bytes(),
    );
    assert_eq!(response.status, 201, "{}", response.text());
    let id = response.json()["id"].as_str().expect("id").to_owned();
    let exported = node
        .get(
            &format!("/api/datasets/{id}"),
            &[("accept", "application/n-triples")],
        )
        .text();
    assert!(exported.contains("<https://w3id.org/agora/policies/research-non-commercial> <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <http://www.w3.org/ns/odrl/2/Offer>"), "{exported}");
    assert!(exported.contains("<http://www.w3.org/ns/odrl/2/permission>"));

    // An unknown policy is refused, naming it.
    let unknown =
        with_policy("<http://www.w3.org/ns/odrl/2/hasPolicy> <https://evil.example/policy>")
            .replace("grid-load-2024>", "grid-load-2024-b>");
    let problem = node
        .send(
            "POST",
            "/api/datasets",
            &[TURTLE, (auth.0, &auth.1)],
            unknown.as_bytes(),
        )
        .assert_problem(422);
    assert!(
        problem.to_string().contains("https://evil.example/policy"),
        "{problem}"
    );

    // A duty the node cannot carry out makes the policy invalid at publication.
    let unenforceable = with_policy(
        "<http://www.w3.org/ns/odrl/2/hasPolicy> <https://energy.example/policies/pay> .\n\
         <https://energy.example/policies/pay> a <http://www.w3.org/ns/odrl/2/Offer> ;\n\
           <http://www.w3.org/ns/odrl/2/permission> [ <http://www.w3.org/ns/odrl/2/action> <http://www.w3.org/ns/odrl/2/use> ;\n\
             <http://www.w3.org/ns/odrl/2/duty> [ <http://www.w3.org/ns/odrl/2/action> <http://www.w3.org/ns/odrl/2/compensate> ] ]",
    )
    .replace("grid-load-2024>", "grid-load-2024-c>");
    let problem = node
        .send(
            "POST",
            "/api/datasets",
            &[TURTLE, (auth.0, &auth.1)],
            unenforceable.as_bytes(),
        )
        .assert_problem(422);
    assert!(problem.to_string().contains("compensate"), "{problem}");
    // Something that is not an ODRL policy cannot stand for one.
    let untyped = with_policy(
        "<http://www.w3.org/ns/odrl/2/hasPolicy> <https://energy.example/policies/none> .\n\
         <https://energy.example/policies/none> <http://purl.org/dc/terms/title> \"not a policy\"",
    )
    .replace("grid-load-2024>", "grid-load-2024-d>");
    let problem = node
        .send(
            "POST",
            "/api/datasets",
            &[TURTLE, (auth.0, &auth.1)],
            untyped.as_bytes(),
        )
        .assert_problem(422);
    assert!(
        problem.to_string().contains("is not an ODRL policy"),
        "{problem}"
    );
    assert_eq!(node.get("/api/datasets", &[]).json()["total"], 1);
}
