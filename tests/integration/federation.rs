//! Federation: three real nodes on loopback harvest each other's catalogues over DSP.
//! Publishing, updating and deleting on one node converges on the others; a node that goes
//! down keeps being served from the last harvest; after a restart the federation converges
//! again; search and SPARQL name each dataset's origin; a harvested dataset is negotiated with
//! its origin node. Every wait polls with a deadline derived from the crawl period (a guard
//! against hanging, not a performance assertion).

use super::common::{Options, Response, TestNode, bearer, fixture};
use agora::identity::Role;
use serde_json::{Value as Json, json};
use std::time::{Duration, Instant};

/// Seconds between two harvests of one peer.
const CRAWL_SECONDS: u64 = 1;

/// The longest a convergence may take: a failed peer backs off up to 16 periods, and the
/// machine is shared; generous so only a real failure to converge fails.
fn deadline() -> Duration {
    Duration::from_secs(CRAWL_SECONDS * 16 * 8)
}

const OPEN: &str = "https://w3id.org/agora/policies/open-data-attribution";

fn node(extra: &[String]) -> TestNode {
    let mut args = vec![
        "--allow-private-addresses".to_owned(),
        "--crawl-interval".to_owned(),
        CRAWL_SECONDS.to_string(),
    ];
    args.extend_from_slice(extra);
    TestNode::start(Options {
        args,
        ..Options::default()
    })
}

fn add_peer(node: &TestNode, id: &str, url: &str) {
    let admin = node.token("operator", Role::Admin, &[]);
    let answer = node.send(
        "POST",
        "/api/peers",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &bearer(&admin)),
        ],
        json!({"id": id, "url": url}).to_string().as_bytes(),
    );
    assert_eq!(answer.status, 201, "{}", answer.text());
}

fn peers(node: &TestNode) -> Json {
    let admin = node.token("operator", Role::Admin, &[]);
    let answer = node.get("/api/peers", &[("Authorization", &bearer(&admin))]);
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()
}

/// The fixture dataset under its own IRI `https://energy.example/datasets/{name}`, offered
/// under the open-data template.
fn description(name: &str, title: &str) -> Vec<u8> {
    let text = String::from_utf8(fixture("dataset.ttl"))
        .expect("utf-8")
        .replace("grid-load-2024", name)
        .replace("Hourly electricity grid load 2024", title);
    format!(
        "{text}\n<https://energy.example/datasets/{name}> <http://www.w3.org/ns/odrl/2/hasPolicy> <{OPEN}> .\n"
    )
    .into_bytes()
}

fn publish(node: &TestNode, name: &str, title: &str) -> String {
    let holder = node.token("grid-operator", Role::Holder, &[]);
    let answer = node.send(
        "POST",
        "/api/datasets",
        &[
            ("Content-Type", "text/turtle"),
            ("Authorization", &bearer(&holder)),
        ],
        &description(name, title),
    );
    assert_eq!(answer.status, 201, "{}", answer.text());
    answer.json()["id"].as_str().expect("id").to_owned()
}

/// The search hits of `node` that come from `origin`, as (id, title).
fn from_origin(node: &TestNode, origin: &str) -> Vec<(String, String)> {
    let answer = node.get(&format!("/api/datasets?origin={origin}&limit=100"), &[]);
    assert_eq!(answer.status, 200, "{}", answer.text());
    let mut hits: Vec<(String, String)> = answer.json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| {
            assert_eq!(item["origin"], origin, "{item}");
            (
                item["id"].as_str().unwrap_or_default().to_owned(),
                item["title"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    hits.sort();
    hits
}

/// Polls until `check` holds, failing with `what` and the last value after the deadline.
fn converge<T: std::fmt::Debug>(
    what: &str,
    mut probe: impl FnMut() -> T,
    check: impl Fn(&T) -> bool,
) {
    let until = Instant::now() + deadline();
    loop {
        let value = probe();
        if check(&value) {
            return;
        }
        assert!(
            Instant::now() < until,
            "{what} did not happen; last seen: {value:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn sparql_origins(node: &TestNode, iri: &str) -> Vec<String> {
    let query = format!(
        "SELECT ?origin WHERE {{ GRAPH ?g {{ ?g <https://w3id.org/agora/ns#origin> ?origin . \
         ?g <http://www.w3.org/ns/dcat#dataset> <{iri}> . <{iri}> a <http://www.w3.org/ns/dcat#Dataset> }} }}"
    );
    let encoded: String = url_encode(&query);
    let answer: Response = node.get(
        &format!("/sparql?query={encoded}"),
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

#[test]
fn three_nodes_converge_survive_a_peer_going_down_and_negotiate_with_the_origin() {
    let mut b = node(&[]);
    // `--peer` on the command line: a and c know b from the start.
    let a = node(&[format!("--peer=b={}", b.url)]);
    let c = node(&[format!("--peer=b={}", b.url)]);
    add_peer(&a, "c", &c.url);
    add_peer(&c, "a", &a.url);
    add_peer(&b, "a", &a.url);
    add_peer(&b, "c", &c.url);

    // Publish on b: a and c see it, named by its origin.
    let first = publish(&b, "fed-one", "Grid load seen by the federation");
    assert!(!first.contains(':'));
    for other in [&a, &c] {
        converge(
            "the harvest of b's new dataset",
            || from_origin(other, "b"),
            |hits| {
                hits == &vec![(
                    "b:fed-one".to_owned(),
                    "Grid load seen by the federation".to_owned(),
                )]
            },
        );
    }
    // b's own search says local; a's SPARQL names b as the origin of b's dataset.
    assert_eq!(from_origin(&b, "local").len(), 1);
    let iri = "https://energy.example/datasets/fed-one";
    assert_eq!(sparql_origins(&a, iri), vec!["b".to_owned()]);
    // Facets count the origin.
    let facets = a.get("/api/datasets?limit=1", &[]).json()["facets"]["origin"].clone();
    assert_eq!(facets["b"], 1, "{facets}");

    // Update on b: the new title reaches a and c.
    let holder = b.token("grid-operator", Role::Holder, &[]);
    let replaced = b.send(
        "PUT",
        &format!("/api/datasets/{first}"),
        &[
            ("Content-Type", "text/turtle"),
            ("Authorization", &bearer(&holder)),
        ],
        &description("fed-one", "Grid load, second edition"),
    );
    assert_eq!(replaced.status, 200, "{}", replaced.text());
    for other in [&a, &c] {
        converge(
            "the update of b's dataset",
            || from_origin(other, "b"),
            |hits| hits.len() == 1 && hits[0].1 == "Grid load, second edition",
        );
    }

    // Delete on b: gone from a and c (search and SPARQL).
    let deleted = b.send(
        "DELETE",
        &format!("/api/datasets/{first}"),
        &[("Authorization", &bearer(&holder))],
        b"",
    );
    assert!(
        deleted.status == 204 || deleted.status == 200,
        "{}",
        deleted.text()
    );
    for other in [&a, &c] {
        converge(
            "the deletion of b's dataset",
            || from_origin(other, "b"),
            Vec::is_empty,
        );
    }
    assert!(sparql_origins(&a, iri).is_empty());

    // b goes down: a and c keep serving its last harvest while their crawls of b fail.
    publish(&b, "fed-two", "Substation outages");
    for other in [&a, &c] {
        converge(
            "the harvest of b's second dataset",
            || from_origin(other, "b"),
            |hits| hits.len() == 1 && hits[0].0 == "b:fed-two",
        );
    }
    b.terminate();
    converge(
        "a failed harvest of the stopped node",
        || peers(&a),
        |list| {
            list.as_array().is_some_and(|l| {
                l.iter()
                    .any(|p| p["id"] == "b" && p["failures"].as_u64().unwrap_or(0) >= 1)
            })
        },
    );
    assert_eq!(
        from_origin(&a, "b"),
        vec![("b:fed-two".to_owned(), "Substation outages".to_owned())],
        "the last good harvest of a stopped peer stays"
    );
    assert_eq!(from_origin(&c, "b").len(), 1);

    // b comes back (on a new port; its peers are told) with one more dataset: convergence.
    b.start_again();
    publish(&b, "fed-three", "Transformer temperatures");
    add_peer(&a, "b", &b.url);
    add_peer(&c, "b", &b.url);
    for other in [&a, &c] {
        converge(
            "convergence after b's restart",
            || from_origin(other, "b"),
            |hits| {
                hits.iter().map(|h| h.0.as_str()).collect::<Vec<_>>()
                    == vec!["b:fed-three", "b:fed-two"]
            },
        );
    }

    // A harvested dataset reads like a local one, as its origin described it.
    let described = a.get("/api/datasets/b:fed-two", &[("Accept", "text/turtle")]);
    assert_eq!(described.status, 200, "{}", described.text());
    assert!(
        described.text().contains("Substation outages"),
        "{}",
        described.text()
    );

    // A researcher on a negotiates a harvested dataset: the negotiation goes to b. b trusts a's
    // token once it has read a's keys (its own crawl of a).
    converge(
        "b's harvest of a (which gives b a's keys)",
        || peers(&b),
        |list| {
            list.as_array().is_some_and(|l| {
                l.iter()
                    .any(|p| p["id"] == "a" && !p["last_harvest"].is_null())
            })
        },
    );
    let alice = a.token(
        "alice",
        Role::Researcher,
        &[("country", "DE"), ("org_type", "university")],
    );
    let answer = a.send(
        "POST",
        "/api/negotiations",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &bearer(&alice)),
        ],
        json!({"dataset": "b:fed-two", "purpose": "dpv:AcademicResearch"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(answer.status, 201, "{}", answer.text());
    let body = answer.json();
    assert_eq!(body["side"], "consumer", "{body}");
    assert_eq!(body["agreement"]["assigner"], b.node_id(), "{body}");
    assert_eq!(body["agreement"]["assignee"], a.node_id(), "{body}");

    // The peers' status names each peer's participant.
    let list = peers(&a);
    let b_status = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "b")
        .unwrap()
        .clone();
    assert_eq!(b_status["participant"], b.node_id(), "{b_status}");

    // The harvest is stored: a restarted a serves it before any new crawl could finish, and
    // remembers the peers added through the API.
    let mut a = a;
    a.kill9_and_restart();
    assert_eq!(from_origin(&a, "b").len(), 2);
    assert_eq!(from_origin(&a, "c").len(), 0);
    let ids: Vec<Json> = peers(&a)
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!("b"), json!("c")]);
}

/// Only admins manage peers; a bad peer is refused with a sentence.
#[test]
fn peers_are_for_admins_and_checked() {
    let a = node(&[]);
    let researcher = a.token("alice", Role::Researcher, &[]);
    a.get("/api/peers", &[("Authorization", &bearer(&researcher))])
        .assert_problem(403);
    a.get("/api/peers", &[]).assert_problem(401);
    let admin = a.token("operator", Role::Admin, &[]);
    for body in [
        json!({"id": "Bad Id", "url": "http://127.0.0.1:1"}),
        json!({"id": "b", "url": "file:///etc/passwd"}),
        json!({"id": "local", "url": "http://127.0.0.1:1"}),
        json!({"url": "http://127.0.0.1:1"}),
    ] {
        a.send(
            "POST",
            "/api/peers",
            &[
                ("Content-Type", "application/json"),
                ("Authorization", &bearer(&admin)),
            ],
            body.to_string().as_bytes(),
        )
        .assert_problem(400);
    }
    assert_eq!(peers(&a), json!([]));
}

/// What the rogue peer answers to catalogue requests.
#[derive(Clone, Copy, PartialEq)]
enum Rogue {
    /// One dataset of its own.
    Honest,
    /// A dataset node `a` already holds.
    ClaimsOthers,
    /// More than the 16 MiB cap.
    Huge,
}

/// A peer on loopback that answers DSP catalogue requests as told.
fn rogue_peer(mode: std::sync::Arc<std::sync::Mutex<Rogue>>) -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let keys = tempfile::tempdir().expect("temp dir");
    let issuer =
        agora::identity::DevIssuer::load_or_create(keys.path(), "urn:agora:node:rogue").unwrap();
    let jwks = json!({"keys": [issuer.public_jwk()]}).to_string();
    let base = url.clone();
    std::thread::spawn(move || {
        let _keys = keys;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let path = line.split(' ').nth(1).unwrap_or_default().to_owned();
            let mut length = 0usize;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = header.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            let mode = *mode.lock().unwrap();
            let answer = if path.starts_with("/.well-known/dspace-version") {
                json!({"participantId": "urn:agora:node:rogue"}).to_string()
            } else if path.starts_with("/.well-known/jwks.json") {
                jwks.clone()
            } else if mode == Rogue::Huge {
                " ".repeat(17 << 20)
            } else {
                let iri = match mode {
                    Rogue::Honest => "https://rogue.example/datasets/rogue-own",
                    _ => "https://energy.example/datasets/fed-own",
                };
                json!({"@context": ["https://w3id.org/dspace/2025/1/context.jsonld"],
                    "@type": "Catalog", "participantId": "urn:agora:node:rogue",
                    "dataset": [{"@id": iri, "@type": "Dataset", "dct:title": "Rogue's own",
                        "distribution": [{"@type": "Distribution", "accessService":
                            {"@type": "DataService", "endpointURL": format!("{base}/dsp")}}]}]})
                .to_string()
            };
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                answer.len()
            );
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    url
}

fn peer_status(node: &TestNode, id: &str) -> Json {
    peers(node)
        .as_array()
        .and_then(|l| l.iter().find(|p| p["id"] == id).cloned())
        .unwrap_or(Json::Null)
}

/// A hostile peer (claiming a dataset the node holds, answering more than 16 MiB) keeps its
/// last good harvest, touches nothing else, and the honest peer's harvest goes on.
#[test]
fn a_rogue_peer_keeps_its_last_good_harvest_and_touches_nothing_else() {
    let a = node(&[]);
    let b = node(&[]);
    publish(&a, "fed-own", "Node a's own dataset");
    publish(&b, "fed-honest", "An honest peer's dataset");
    let mode = std::sync::Arc::new(std::sync::Mutex::new(Rogue::Honest));
    let rogue = rogue_peer(mode.clone());
    // b answers a's crawl once it trusts a's keys: peering is mutual.
    add_peer(&b, "a", &a.url);
    add_peer(&a, "b", &b.url);
    add_peer(&a, "r", &rogue);
    converge(
        "the rogue peer's honest harvest",
        || from_origin(&a, "r"),
        |hits| hits == &vec![("r:rogue-own".to_owned(), "Rogue's own".to_owned())],
    );

    *mode.lock().unwrap() = Rogue::ClaimsOthers;
    add_peer(&a, "r", &rogue);
    converge(
        "the refusal of a harvest claiming a's dataset",
        || peer_status(&a, "r"),
        |status| {
            status["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("https://energy.example/datasets/fed-own"))
        },
    );
    *mode.lock().unwrap() = Rogue::Huge;
    add_peer(&a, "r", &rogue);
    converge(
        "the refusal of an answer over 16 MiB",
        || peer_status(&a, "r"),
        |status| {
            status["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("larger than"))
        },
    );
    // The rogue's last good harvest stays; a's dataset is still only a's; b's is harvested.
    assert_eq!(
        from_origin(&a, "r"),
        vec![("r:rogue-own".to_owned(), "Rogue's own".to_owned())]
    );
    let own = from_origin(&a, "local");
    assert_eq!(own.len(), 1, "{own:?}");
    assert_eq!(own[0].1, "Node a's own dataset");
    converge(
        "the honest peer's harvest",
        || from_origin(&a, "b"),
        |hits| hits.len() == 1 && hits[0].0 == "b:fed-honest",
    );
    assert_eq!(
        sparql_origins(&a, "https://energy.example/datasets/fed-own"),
        Vec::<String>::new(),
        "a's own dataset is in no peer graph"
    );
}
