//! Plain DCAT-AP peers: a real `agora serve` harvests open-data portals served by a fixture
//! HTTP server in the test — a CKAN portal (ckanext-dcat's `/catalog.ttl`, three Hydra pages,
//! added with `--peer ckan=dcat+URL`), a piveau hub (JSON-LD, `hydra:PartialCollectionView`,
//! added through `POST /api/peers` with `kind` and `catalog`) and CKAN's RDF/XML page — and
//! refuses a portal that lists another portal's dataset, one whose pages loop, and RDF/XML with
//! a DTD. Search, facets and SPARQL show the harvested datasets with the portal as their
//! origin, negotiation is refused without calling the portal, and each harvested dataset's
//! export validates against the official DCAT-AP 3.0.1 shapes with pySHACL. Waits poll with
//! generous deadlines (guards against hanging, not performance assertions).

use super::common::{Options, TestNode, bearer, fixture, reference_dir, repo_root, researcher};
use agora::identity::Role;
use serde_json::{Value as Json, json};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CKAN_PATH: &str = "/ckan";
const PIVEAU_PATH: &str = "/piveau";
const PIVEAU_CATALOGUE: &str = "/api/hub/repo/catalogues/exampleburg-mobility";

/// One document the fixture server answers: its media type and body.
type Route = (&'static str, Vec<u8>);

/// What the fixture server was asked for (path and query of each request).
type Requests = Arc<Mutex<Vec<String>>>;

/// A tiny HTTP/1.1 server on loopback answering GETs from a fixed table (path and query as
/// sent), 404 otherwise; one thread per connection, `Connection: close`.
fn serve(listener: TcpListener, routes: HashMap<String, Route>) -> Requests {
    let routes = Arc::new(routes);
    let requests = Requests::default();
    let log = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let routes = routes.clone();
            let log = log.clone();
            std::thread::spawn(move || answer(stream, &routes, &log));
        }
    });
    requests
}

fn answer(mut stream: TcpStream, routes: &HashMap<String, Route>, log: &Requests) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut request = Vec::new();
    let mut chunk = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 65_536 {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&request);
    let target = text.split_whitespace().nth(1).unwrap_or_default();
    if let Ok(mut log) = log.lock() {
        log.push(target.to_owned());
    }
    let (status, media, body) = match routes.get(target) {
        Some((media, body)) => ("200 OK", *media, body.as_slice()),
        None => ("404 Not Found", "text/plain", &b"not found"[..]),
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {media}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(body);
}

/// A fixture with `{BASE}` replaced by the portal's base URL.
fn templated(name: &str, base: &str) -> Vec<u8> {
    String::from_utf8(fixture(name))
        .expect("utf-8 fixture")
        .replace("{BASE}", base)
        .into_bytes()
}

/// The four portals on one server: CKAN, piveau, one listing CKAN's dataset as its own, one
/// whose second page points back at the first. Returns the server's root URL and the log of
/// what it was asked.
fn portals() -> (String, Requests) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let root = format!("http://{}", listener.local_addr().expect("address"));
    let ckan = format!("{root}{CKAN_PATH}");
    let piveau = format!("{root}{PIVEAU_PATH}");
    let turtle = "text/turtle; charset=utf-8";
    let mut routes: HashMap<String, Route> = HashMap::new();
    // ckanext-dcat answers the first page without `?page=`.
    let first = templated("ckan/catalog-page-1.ttl", &ckan);
    routes.insert(format!("{CKAN_PATH}/catalog.ttl"), (turtle, first.clone()));
    for page in 1..=3 {
        routes.insert(
            format!("{CKAN_PATH}/catalog.ttl?page={page}"),
            (
                turtle,
                templated(&format!("ckan/catalog-page-{page}.ttl"), &ckan),
            ),
        );
    }
    for page in 0..=1 {
        routes.insert(
            format!("{PIVEAU_PATH}{PIVEAU_CATALOGUE}?page={page}&limit=2"),
            (
                "application/ld+json",
                templated(&format!("piveau/catalogue-page-{page}.jsonld"), &piveau),
            ),
        );
    }
    // The last CKAN page again, as RDF/XML (ckanext-dcat's `/catalog.rdf`), on its own portal;
    // and a portal answering RDF/XML with a DTD (entity expansion).
    routes.insert(
        "/rdfxml/catalog.rdf?page=3".into(),
        (
            "application/rdf+xml",
            templated("ckan/catalog-page-3.rdf", &format!("{root}/rdfxml")),
        ),
    );
    let laughs = "<?xml version=\"1.0\"?>\n<!DOCTYPE rdf:RDF [<!ENTITY a \"aaaaaaaaaa\"> <!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">]>\n\
        <rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\" xmlns:dct=\"http://purl.org/dc/terms/\">\n\
        <rdf:Description rdf:about=\"http://x/d\"><dct:title>&b;</dct:title></rdf:Description></rdf:RDF>\n";
    routes.insert(
        "/laughs/catalog.rdf".into(),
        ("application/rdf+xml", laughs.as_bytes().to_vec()),
    );
    // A portal that lists, besides its own dataset, one of the CKAN portal's.
    let foreign = format!(
        "@prefix dcat: <http://www.w3.org/ns/dcat#> . @prefix dct: <http://purl.org/dc/terms/> .\n\
         <{root}/foreign/dataset/own> a dcat:Dataset ; dct:title \"Own\" ; dct:description \"Ours\" .\n\
         <{ckan}/dataset/0b7c3f52-8d5e-4a5b-b2a9-5d1f4c7e9a01> a dcat:Dataset ;\n\
             dct:title \"Air quality measurements 2024 (copy)\" ; dct:description \"Not ours\" .\n"
    );
    routes.insert(
        "/foreign/catalog.ttl".into(),
        (turtle, foreign.into_bytes()),
    );
    // A portal whose page 2 names page 1 as its next page.
    let page = |n: u32, next: &str| {
        format!(
            "@prefix hydra: <http://www.w3.org/ns/hydra/core#> . @prefix dcat: <http://www.w3.org/ns/dcat#> .\n\
             <{root}/loop/catalog.ttl?page={n}> a hydra:PagedCollection ; hydra:nextPage \"{next}\" .\n\
             <{root}/loop/dataset/d{n}> a dcat:Dataset .\n"
        )
        .into_bytes()
    };
    routes.insert(
        "/loop/catalog.ttl?page=1".into(),
        (turtle, page(1, &format!("{root}/loop/catalog.ttl?page=2"))),
    );
    routes.insert(
        "/loop/catalog.ttl?page=2".into(),
        (turtle, page(2, &format!("{root}/loop/catalog.ttl?page=1"))),
    );
    let requests = serve(listener, routes);
    (root, requests)
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(180)
}

/// Polls until `check` holds, failing with `what` and the last value after the deadline.
fn converge<T: std::fmt::Debug>(
    what: &str,
    mut probe: impl FnMut() -> T,
    check: impl Fn(&T) -> bool,
) -> T {
    let until = deadline();
    loop {
        let value = probe();
        if check(&value) {
            return value;
        }
        assert!(
            Instant::now() < until,
            "{what} did not happen; last seen: {value:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn search(node: &TestNode, query: &str) -> Json {
    let answer = node.get(&format!("/api/datasets?limit=100&{query}"), &[]);
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()
}

fn titles(results: &Json) -> Vec<String> {
    let mut titles: Vec<String> = results["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["title"].as_str().map(str::to_owned))
        .collect();
    titles.sort();
    titles
}

fn peer_status(node: &TestNode, id: &str) -> Json {
    let admin = node.token("operator", Role::Admin, &[]);
    let answer = node.get("/api/peers", &[("Authorization", &bearer(&admin))]);
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer
        .json()
        .as_array()
        .and_then(|peers| peers.iter().find(|p| p["id"] == id).cloned())
        .unwrap_or(Json::Null)
}

fn add_peer(node: &TestNode, peer: Json) {
    let admin = node.token("operator", Role::Admin, &[]);
    let answer = node.send(
        "POST",
        "/api/peers",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &bearer(&admin)),
        ],
        peer.to_string().as_bytes(),
    );
    assert_eq!(answer.status, 201, "{}", answer.text());
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The origins SPARQL names for the dataset `iri` (the `agora:origin` of the graph holding it).
fn sparql_origins(node: &TestNode, iri: &str) -> Vec<String> {
    let query = format!(
        "SELECT ?origin WHERE {{ GRAPH ?g {{ ?g <https://w3id.org/agora/ns#origin> ?origin . \
         ?g <http://www.w3.org/ns/dcat#dataset> <{iri}> . <{iri}> a <http://www.w3.org/ns/dcat#Dataset> }} }}"
    );
    let answer = node.get(
        &format!("/sparql?query={}", url_encode(&query)),
        &[("Accept", "application/sparql-results+json")],
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()["results"]["bindings"]
        .as_array()
        .expect("bindings")
        .iter()
        .filter_map(|b| b["origin"]["value"].as_str().map(str::to_owned))
        .collect()
}

/// The Python with pySHACL (`AGORA_PYTHON`), or a skip line.
fn python() -> Option<PathBuf> {
    match std::env::var_os("AGORA_PYTHON").map(PathBuf::from) {
        Some(p) if p.exists() => Some(p),
        _ => {
            eprintln!(
                "SKIP DCAT-AP shapes of harvested portals: AGORA_PYTHON is not set to a venv with tests/conformance/requirements.txt (scripts/setup.sh makes one)"
            );
            None
        }
    }
}

#[test]
fn dcat_portals_are_harvested_into_peer_graphs_that_validate_against_dcat_ap_3() {
    let (root, requests) = portals();
    let node = TestNode::start(Options {
        args: vec![
            "--allow-private-addresses".into(),
            "--crawl-interval".into(),
            "1".into(),
            format!("--peer=ckan=dcat+{root}{CKAN_PATH}"),
        ],
        ..Options::default()
    });
    add_peer(
        &node,
        json!({"id": "piveau", "url": format!("{root}{PIVEAU_PATH}"), "kind": "dcat",
               "catalog": format!("{root}{PIVEAU_PATH}{PIVEAU_CATALOGUE}?page=0&limit=2")}),
    );
    add_peer(
        &node,
        json!({"id": "foreign", "url": format!("{root}/foreign"), "kind": "dcat"}),
    );
    add_peer(
        &node,
        json!({"id": "loop", "url": format!("{root}/loop"), "kind": "dcat",
               "catalog": format!("{root}/loop/catalog.ttl?page=1")}),
    );
    add_peer(
        &node,
        json!({"id": "rdfxml", "url": format!("{root}/rdfxml"), "kind": "dcat",
               "catalog": format!("{root}/rdfxml/catalog.rdf?page=3")}),
    );
    add_peer(
        &node,
        json!({"id": "laughs", "url": format!("{root}/laughs"), "kind": "dcat",
               "catalog": format!("{root}/laughs/catalog.rdf")}),
    );

    // All five CKAN datasets, from three Hydra pages, with CKAN as their origin.
    let ckan = converge(
        "the CKAN portal's harvest",
        || search(&node, "origin=ckan"),
        |r| r["total"] == 5,
    );
    assert_eq!(
        titles(&ckan),
        [
            "Air quality measurements 2024",
            "Bicycle counts",
            "Public parking spaces",
            "Strategic noise map",
            "Street tree register"
        ]
    );
    for item in ckan["items"].as_array().expect("items") {
        assert_eq!(item["origin"], "ckan", "{item}");
        assert!(
            item["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("ckan:")),
            "{item}"
        );
    }
    // The facets have the portal's values, in the EU vocabularies' IRIs.
    let facets = &ckan["facets"];
    let count = |facet: &str, value: &str| facets[facet][value].as_u64().unwrap_or(0);
    let eu = "http://publications.europa.eu/resource/authority";
    assert_eq!(
        count("theme", &format!("{eu}/data-theme/ENVI")),
        3,
        "{facets}"
    );
    assert_eq!(
        count("theme", &format!("{eu}/data-theme/TRAN")),
        2,
        "{facets}"
    );
    assert_eq!(
        count("format", &format!("{eu}/file-type/CSV")),
        2,
        "{facets}"
    );
    assert_eq!(
        count("format", &format!("{eu}/file-type/JSON")),
        2,
        "{facets}"
    );
    assert_eq!(
        count("format", &format!("{eu}/file-type/GEOJSON")),
        1,
        "{facets}"
    );
    assert_eq!(
        count("format", &format!("{eu}/file-type/ZIP")),
        1,
        "{facets}"
    );
    assert_eq!(
        count("license", &format!("{eu}/licence/CC_BY_4_0")),
        3,
        "{facets}"
    );
    assert_eq!(
        count("license", &format!("{eu}/licence/CC0")),
        2,
        "{facets}"
    );
    let environment =
        format!("{root}{CKAN_PATH}/organization/3c1d2b4e-6d41-4f0e-9a55-0e8f0c6b7a11");
    assert_eq!(count("publisher", &environment), 3, "{facets}");
    // A facet filter finds the portal's datasets.
    let filtered = search(
        &node,
        &format!("format={}", url_encode(&format!("{eu}/file-type/GEOJSON"))),
    );
    assert!(
        titles(&filtered).contains(&"Strategic noise map".to_owned()),
        "{filtered}"
    );

    // The piveau hub's JSON-LD pages.
    let piveau = converge(
        "the piveau hub's harvest",
        || search(&node, "origin=piveau"),
        |r| r["total"] == 3,
    );
    assert_eq!(
        titles(&piveau),
        [
            "Bus stops",
            "Electric vehicle charging points",
            "Park and ride occupancy"
        ]
    );
    assert_eq!(
        piveau["facets"]["publisher"]
            [format!("{root}{PIVEAU_PATH}/id/organization/regional-transport-authority")],
        3,
        "{piveau}"
    );

    // RDF/XML is read too, but never with a DTD.
    let rdfxml = converge(
        "the RDF/XML portal's harvest",
        || search(&node, "origin=rdfxml"),
        |r| r["total"] == 1,
    );
    assert_eq!(titles(&rdfxml), ["Public parking spaces"]);
    assert_eq!(
        rdfxml["facets"]["format"][format!("{eu}/file-type/JSON")],
        1,
        "{rdfxml}"
    );
    let laughs = converge(
        "the refusal of RDF/XML with a DTD",
        || peer_status(&node, "laughs"),
        |s| s["failures"].as_u64().unwrap_or(0) >= 1,
    );
    assert!(
        laughs["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("DTD")),
        "{laughs}"
    );

    // SPARQL names each dataset's origin.
    let air = format!("{root}{CKAN_PATH}/dataset/0b7c3f52-8d5e-4a5b-b2a9-5d1f4c7e9a01");
    assert_eq!(sparql_origins(&node, &air), ["ckan"]);
    assert_eq!(
        sparql_origins(&node, &format!("{root}{PIVEAU_PATH}/set/data/bus-stops")),
        ["piveau"]
    );

    // A portal listing another portal's dataset is refused as a whole, and one whose pages
    // loop stops with an error; neither brings anything, and both keep being retried.
    let foreign = converge(
        "the refusal of the foreign portal",
        || peer_status(&node, "foreign"),
        |s| s["failures"].as_u64().unwrap_or(0) >= 1,
    );
    assert!(
        foreign["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("not under its base URL")),
        "{foreign}"
    );
    assert_eq!(search(&node, "origin=foreign")["total"], 0);
    assert_eq!(sparql_origins(&node, &air), ["ckan"]);
    let looping = converge(
        "the end of the looping portal's harvest",
        || peer_status(&node, "loop"),
        |s| s["failures"].as_u64().unwrap_or(0) >= 1,
    );
    assert!(
        looping["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("loop back")),
        "{looping}"
    );
    assert_eq!(search(&node, "origin=loop")["total"], 0);
    let ckan_status = peer_status(&node, "ckan");
    assert_eq!(ckan_status["kind"], "dcat", "{ckan_status}");
    assert_eq!(ckan_status["datasets"], 5, "{ckan_status}");
    assert_eq!(
        ckan_status["participant"],
        format!("{root}{CKAN_PATH}/"),
        "{ckan_status}"
    );

    // A harvested dataset reads as its portal described it, distributions included.
    let air_id = ckan["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["title"] == "Air quality measurements 2024")
        .and_then(|i| i["id"].as_str())
        .expect("the air quality dataset")
        .to_owned();
    let described = node.get(&format!("/api/datasets/{air_id}?format=ttl"), &[]);
    assert_eq!(described.status, 200, "{}", described.text());
    let turtle = described.text();
    for expected in [
        "resource/7a1b2c3d-0001-4e5f-8a9b-000000000001",
        "Air monitoring desk",
        "file-type/CSV",
        "media-types/text/csv",
        "language/ENG",
    ] {
        assert!(
            turtle.contains(expected),
            "{expected} missing in:\n{turtle}"
        );
    }
    assert!(
        !turtle.contains("hydra"),
        "paging controls are not part of a description:\n{turtle}"
    );

    // The page for people shows the portal's distributions too.
    let page = node.get(&format!("/datasets/{air_id}"), &[]);
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(
        page.text().contains("Measurements 2024 (CSV)"),
        "{}",
        page.text()
    );

    // A portal is read-only: its datasets have no offers, and nothing asks it for DSP or keys.
    let token = researcher(&node, "researcher-1");
    let refused = node.send(
        "POST",
        "/api/negotiations",
        &[
            ("Authorization", &bearer(&token)),
            ("Content-Type", "application/json"),
        ],
        json!({"dataset": air_id, "purpose": "dpv:AcademicResearch"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(refused.status, 404, "{}", refused.text());
    assert!(refused.text().contains("read-only"), "{}", refused.text());
    let asked = requests.lock().map(|r| r.clone()).unwrap_or_default();
    assert!(
        asked
            .iter()
            .any(|p| p.starts_with("/ckan/catalog.ttl?page=3")),
        "{asked:?}"
    );
    assert!(
        !asked
            .iter()
            .any(|p| p.contains("/dsp") || p.contains("/.well-known/")),
        "a DCAT-AP portal is never asked for DSP or keys: {asked:?}"
    );

    // Every harvested dataset's export validates against the official DCAT-AP 3.0.1 shapes.
    let (Some(_reference), Some(python)) = (
        reference_dir("DCAT-AP shapes of harvested portals"),
        python(),
    ) else {
        return;
    };
    let mut ids: Vec<String> = [&ckan, &piveau, &rdfxml]
        .iter()
        .flat_map(|r| r["items"].as_array().expect("items").iter())
        .filter_map(|i| i["id"].as_str().map(str::to_owned))
        .collect();
    ids.sort();
    assert_eq!(ids.len(), 9);
    for (format, short) in [("turtle", "ttl"), ("json-ld", "jsonld")] {
        let urls: Vec<String> = ids
            .iter()
            .map(|id| {
                format!(
                    "{}/api/datasets/{}?format={short}",
                    node.url,
                    url_encode(id)
                )
            })
            .collect();
        let output = Command::new(&python)
            .arg(repo_root().join("tests/conformance/validate_shacl.py"))
            .args(["--shapes", "dcat-ap", "--format", format])
            .args(&urls)
            .output()
            .expect("python runs");
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success(),
            "DCAT-AP 3.0.1 violations in harvested {format} exports:\n{report}"
        );
        eprintln!("{}", report.lines().last().unwrap_or_default());
    }
}
