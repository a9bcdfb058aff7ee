//! Federation: three real nodes on loopback harvest each other's catalogues over DSP.
//! Publishing, updating, hiding and deleting on one node converges on the others through the
//! incremental sync (the change feed), checked on the peers' sync counters; a node killed with
//! SIGKILL keeps being served from the last harvest; after a restart the federation converges
//! again, and a restarted harvester resumes incrementally; search and SPARQL name each
//! dataset's origin; a researcher negotiates a harvested dataset with its origin node and pulls
//! the data from it with `agora negotiate` and `agora pull`. Rogue peers (foreign datasets,
//! oversized answers, a slowloris, a redirect loop) are cut off while honest peers converge.
//! Every wait polls with a deadline derived from the crawl period (a guard against hanging,
//! not a performance assertion).

use super::common::{Options, Response, TestNode, bearer, fixture, researcher};
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

/// A peer's sync counters on `node`: (full harvests, incremental syncs, changes applied,
/// removals applied).
fn syncs(node: &TestNode, id: &str) -> (u64, u64, u64, u64) {
    let status = peer_status(node, id);
    let count = |key: &str| status[key].as_u64().unwrap_or(0);
    (
        count("full_syncs"),
        count("incremental_syncs"),
        count("changes_applied"),
        count("removals_applied"),
    )
}

/// Waits until `node` has synced peer `id` incrementally at least once more than `before`
/// says, and returns the counters then.
fn an_incremental_sync(node: &TestNode, id: &str) -> (u64, u64, u64, u64) {
    let before = syncs(node, id);
    converge(
        "an incremental sync",
        || (syncs(node, id), peer_status(node, id)),
        |(now, status)| now.1 > before.1 && status["last_sync"] == "incremental",
    );
    syncs(node, id)
}

/// Checks that what changed between `before` and now on `node`'s copy of peer `id` came
/// through the change feed: no full harvest in between, and at least `changes` changes (of
/// which `removals` removals) applied.
fn came_incrementally(
    node: &TestNode,
    id: &str,
    before: (u64, u64, u64, u64),
    changes: u64,
    removals: u64,
) {
    let now = syncs(node, id);
    let status = peer_status(node, id);
    assert_eq!(now.0, before.0, "no full harvest happened: {status}");
    assert!(now.2 >= before.2 + changes, "{before:?} -> {status}");
    assert!(now.3 >= before.3 + removals, "{before:?} -> {status}");
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

    // From here on, a and c sync b incrementally: each change moves alone.
    let before_a = an_incremental_sync(&a, "b");
    let before_c = an_incremental_sync(&c, "b");
    assert!(
        peer_status(&a, "b")["full_reason"]
            .as_str()
            .is_some_and(|r| r.contains("first sync")),
        "{}",
        peer_status(&a, "b")
    );

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
    came_incrementally(&a, "b", before_a, 1, 0);
    came_incrementally(&c, "b", before_c, 1, 0);
    let before_a = syncs(&a, "b");
    let before_c = syncs(&c, "b");

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
    came_incrementally(&a, "b", before_a, 1, 1);
    came_incrementally(&c, "b", before_c, 1, 1);

    // Hidden on b: a dataset that gets an access policy a's node cannot satisfy leaves a's
    // view (a tombstone).
    let secret_id = publish(&b, "fed-secret", "Substation inspection reports");
    converge(
        "the harvest of b's dataset to be hidden",
        || from_origin(&a, "b"),
        |hits| hits.len() == 1 && hits[0].0 == "b:fed-secret",
    );
    let before_a = syncs(&a, "b");
    let mut restricted = description("fed-secret", "Substation inspection reports");
    restricted.extend_from_slice(
        b"<https://energy.example/datasets/fed-secret> <https://w3id.org/agora/ns#accessPolicy> <https://w3id.org/agora/policies/eu-only> .\n",
    );
    let hidden = b.send(
        "PUT",
        &format!("/api/datasets/{secret_id}"),
        &[
            ("Content-Type", "text/turtle"),
            ("Authorization", &bearer(&holder)),
        ],
        &restricted,
    );
    assert_eq!(hidden.status, 200, "{}", hidden.text());
    converge(
        "the hiding of b's dataset from a",
        || from_origin(&a, "b"),
        Vec::is_empty,
    );
    came_incrementally(&a, "b", before_a, 1, 1);
    let deleted = b.send(
        "DELETE",
        &format!("/api/datasets/{secret_id}"),
        &[("Authorization", &bearer(&holder))],
        b"",
    );
    assert!(deleted.status < 300, "{}", deleted.text());

    // b goes down: a and c keep serving its last harvest while their crawls of b fail.
    publish(&b, "fed-two", "Substation outages");
    for other in [&a, &c] {
        converge(
            "the harvest of b's second dataset",
            || from_origin(other, "b"),
            |hits| hits.len() == 1 && hits[0].0 == "b:fed-two",
        );
    }
    // SIGKILL: no shutdown code runs on b.
    let pid = i32::try_from(b.pid()).expect("pid");
    // SAFETY: kill(2) on the test's own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    converge("b's death", || b.is_alive(), |alive| !alive);
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
    // It resumes from its stored cursor: the first sync of b after the restart is already
    // incremental, and a change on b arrives through it.
    an_incremental_sync(&a, "b");
    assert_eq!(syncs(&a, "b").0, 0, "{}", peer_status(&a, "b"));
    let before = syncs(&a, "b");
    publish(&b, "fed-four", "Line losses");
    converge(
        "the harvest of a change after a's restart",
        || from_origin(&a, "b"),
        |hits| hits.len() == 3,
    );
    came_incrementally(&a, "b", before, 1, 0);
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
    /// Invalid JSON-LD: a document cut off in the middle.
    Invalid,
    /// Headers, then one byte of the body every 200 ms, forever.
    Slowloris,
    /// `302` to `/loop`, which redirects to itself.
    Redirect,
}

/// A peer on loopback that answers DSP catalogue requests as told (each connection on its own
/// thread, so a trickled answer does not hold up the next call). Returns its URL and how
/// many requests reached `/loop`, the target of its redirects (a client that follows none
/// never asks for it).
fn rogue_peer(
    mode: std::sync::Arc<std::sync::Mutex<Rogue>>,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let keys = tempfile::tempdir().expect("temp dir");
    let issuer =
        agora::identity::DevIssuer::load_or_create(keys.path(), "urn:agora:node:rogue").unwrap();
    let jwks = json!({"keys": [issuer.public_jwk()]}).to_string();
    let base = url.clone();
    let followed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = followed.clone();
    std::thread::spawn(move || {
        let _keys = keys;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let (mode, jwks, base, counter) =
                (mode.clone(), jwks.clone(), base.clone(), counter.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    return;
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
                let metadata = path.starts_with("/.well-known/");
                if path.starts_with("/api/federation/changes") {
                    // A DSP peer without agora's change feed.
                    let _ = write!(
                        stream,
                        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    return;
                }
                if path.starts_with("/loop") {
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                if mode == Rogue::Redirect && !metadata {
                    let _ = write!(
                        stream,
                        "HTTP/1.1 302 Found\r\nLocation: {base}/loop\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    return;
                }
                if mode == Rogue::Slowloris && !metadata {
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\nConnection: close\r\n\r\n"
                    );
                    // Until the client hangs up.
                    while stream.write_all(b" ").and_then(|()| stream.flush()).is_ok() {
                        std::thread::sleep(std::time::Duration::from_millis(200));
                    }
                    return;
                }
                let answer = if path.starts_with("/.well-known/dspace-version") {
                    json!({"participantId": "urn:agora:node:rogue"}).to_string()
                } else if path.starts_with("/.well-known/jwks.json") {
                    jwks.clone()
                } else if mode == Rogue::Huge {
                    " ".repeat(17 << 20)
                } else if mode == Rogue::Invalid {
                    r#"{"@context": ["https://w3id.org/dspace/2025/1/context.jsonld"], "@type": "Catalog", "dataset": [{"@id": "#.to_owned()
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
            });
        }
    });
    (url, followed)
}

fn peer_status(node: &TestNode, id: &str) -> Json {
    peers(node)
        .as_array()
        .and_then(|l| l.iter().find(|p| p["id"] == id).cloned())
        .unwrap_or(Json::Null)
}

/// A hostile peer (claiming a dataset the node holds, answering more than 16 MiB or invalid
/// JSON-LD) keeps its
/// last good harvest, touches nothing else, and the honest peer's harvest goes on.
#[test]
fn a_rogue_peer_keeps_its_last_good_harvest_and_touches_nothing_else() {
    let a = node(&[]);
    let b = node(&[]);
    publish(&a, "fed-own", "Node a's own dataset");
    publish(&b, "fed-honest", "An honest peer's dataset");
    let mode = std::sync::Arc::new(std::sync::Mutex::new(Rogue::Honest));
    let (rogue, _) = rogue_peer(mode.clone());
    // b answers a's crawl once it trusts a's keys: peering is mutual.
    add_peer(&b, "a", &a.url);
    add_peer(&a, "b", &b.url);
    add_peer(&a, "r", &rogue);
    converge(
        "the rogue peer's honest harvest",
        || from_origin(&a, "r"),
        |hits| hits == &vec![("r:rogue-own".to_owned(), "Rogue's own".to_owned())],
    );
    // It has no change feed: it is harvested in full each period, and that is no failure.
    converge(
        "a second full harvest of the peer without a change feed",
        || peer_status(&a, "r"),
        |status| status["full_syncs"].as_u64().unwrap_or(0) >= 2,
    );
    let status = peer_status(&a, "r");
    assert_eq!(status["last_sync"], "full", "{status}");
    assert_eq!(status["incremental_syncs"], 0, "{status}");
    assert!(status["last_error"].is_null(), "{status}");

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
    *mode.lock().unwrap() = Rogue::Invalid;
    add_peer(&a, "r", &rogue);
    converge(
        "the refusal of invalid JSON-LD",
        || peer_status(&a, "r"),
        |status| {
            status["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("not JSON"))
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

/// A slowloris peer (an answer trickled forever) is cut by the 10 s cap and a redirect loop is
/// not followed, while an honest peer's changes keep converging in the same run: each peer is
/// harvested on its own thread, and a failing one only backs off.
#[test]
fn a_slowloris_and_a_redirect_loop_are_cut_off_while_honest_peers_converge() {
    let a = node(&[]);
    let b = node(&[]);
    publish(&b, "fed-steady", "An honest peer's first dataset");
    add_peer(&b, "a", &a.url);
    add_peer(&a, "b", &b.url);
    let (slow, _) = rogue_peer(std::sync::Arc::new(std::sync::Mutex::new(Rogue::Slowloris)));
    let (looping, followed) =
        rogue_peer(std::sync::Arc::new(std::sync::Mutex::new(Rogue::Redirect)));
    add_peer(&a, "slow", &slow);
    add_peer(&a, "loop", &looping);
    converge(
        "the honest peer's harvest",
        || from_origin(&a, "b"),
        |hits| hits.len() == 1 && hits[0].0 == "b:fed-steady",
    );
    // The redirect is refused as an answer, never followed.
    converge(
        "the refusal of the redirecting peer",
        || peer_status(&a, "loop"),
        |status| {
            status["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("302"))
        },
    );
    // While the slowloris trickles, the honest peer's next change still arrives.
    publish(&b, "fed-steady-two", "An honest peer's second dataset");
    converge(
        "the honest peer's change while a slowloris trickles",
        || from_origin(&a, "b"),
        |hits| hits.len() == 2,
    );
    converge(
        "the slowloris cut by the time cap",
        || peer_status(&a, "slow"),
        |status| {
            status["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("timeout"))
        },
    );
    let publish_after = publish(&b, "fed-steady-three", "An honest peer's third dataset");
    assert!(!publish_after.is_empty());
    converge(
        "the honest peer's change after the cut",
        || from_origin(&a, "b"),
        |hits| hits.len() == 3,
    );
    assert_eq!(
        followed.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "no redirect was followed"
    );
    for rogue in ["slow", "loop"] {
        assert!(from_origin(&a, rogue).is_empty(), "{rogue} brought nothing");
        assert!(peer_status(&a, rogue)["failures"].as_u64().unwrap_or(0) >= 1);
    }
    // Nothing of the rogues reached the node's own catalogue.
    assert_eq!(from_origin(&a, "local").len(), 0);
}

/// A researcher on node a negotiates, through a, for a dataset it found in a's federated
/// search and that node b holds (`agora negotiate`: a is the DSP consumer, b the provider), then
/// pulls the enforced data from b (`agora pull` through a's consumer-side transfer).
#[test]
fn a_researcher_on_one_node_negotiates_and_pulls_from_another() {
    let b = TestNode::start(Options {
        demo: true,
        args: vec![
            "--allow-private-addresses".to_owned(),
            "--crawl-interval".to_owned(),
            CRAWL_SECONDS.to_string(),
        ],
        ..Options::default()
    });
    let a = node(&[format!("--peer=b={}", b.url)]);
    add_peer(&b, "a", &a.url);
    // b's health pool, as a's federated search shows it.
    let title = from_origin(&b, "local")
        .into_iter()
        .find(|h| h.0 == "health")
        .map(|h| h.1)
        .expect("b's demo health pool");
    assert!(!title.is_empty());
    converge(
        "a's harvest of b's pools",
        || from_origin(&a, "b"),
        |hits| hits.iter().any(|h| h.1 == title),
    );
    let harvested = from_origin(&a, "b")
        .into_iter()
        .find(|h| h.1 == title)
        .map(|h| h.0)
        .expect("the health pool");
    assert!(harvested.starts_with("b:"), "{harvested}");
    converge(
        "b's harvest of a (which gives b a's keys)",
        || peer_status(&b, "a"),
        |status| !status["last_harvest"].is_null(),
    );

    let alice = researcher(&a, "alice");
    let cli = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_agora"))
            .args(args)
            .args(["--url", &a.url, "--token", &alice])
            .output()
            .expect("agora runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "agora {args:?}: {text}");
        text
    };
    let agreed = cli(&["negotiate", &harvested, "--purpose", "dpv:AcademicResearch"]);
    let agreement = agreed
        .lines()
        .find_map(|l| l.strip_prefix("agreed: agreement "))
        .map(|id| id.trim().to_owned())
        .unwrap_or_else(|| panic!("no agreement in: {agreed}"));
    // The agreement is b's (the origin), signed to a's node as the consumer.
    let record = a.get(
        &format!("/api/agreements/{agreement}"),
        &[("Authorization", &bearer(&alice))],
    );
    assert_eq!(record.status, 200, "{}", record.text());
    let record = record.json();
    assert_eq!(record["assigner"], b.node_id(), "{record}");
    assert_eq!(record["assignee"], a.node_id(), "{record}");

    let out = tempfile::tempdir().expect("temp dir");
    let shards = out.path().join("health");
    let pulled = cli(&[
        "pull",
        "--agreement",
        &agreement,
        "--out",
        shards.to_str().expect("utf-8 path"),
    ]);
    let rows: u64 = pulled
        .split_once(" shards (")
        .and_then(|(_, rest)| rest.split_once(' '))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("no row count in: {pulled}"));
    assert!(rows > 0, "{pulled}");
    let files: Vec<_> = std::fs::read_dir(&shards)
        .expect("the shards folder")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "parquet"))
        .collect();
    assert!(!files.is_empty(), "{pulled}");
    // a holds no data of its own: what was pulled came from b's data plane.
    assert_eq!(from_origin(&a, "local").len(), 0);
}
