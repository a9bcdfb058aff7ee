//! SPARQL `SERVICE` across the federation: node A, configured with peer B, sends the part of
//! a query under `SERVICE <B/sparql>` to B and gets B's own data (B's local graphs, which A's
//! harvested copy does not have). Any other `SERVICE` IRI — a TCP listener the test binds on
//! loopback, a DCAT-AP portal, a variable — is refused with a 400 problem naming it, and the
//! listener sees zero connections; `SERVICE SILENT` towards it yields no bindings and no
//! connection either. Hostile peer endpoints (an answer over 16 MiB, an answer that trickles,
//! a redirect to another address, which is never followed) end the query with a 502 problem
//! that says what the peer did, and the node stays up.

use super::common::{Options, Response, TestNode, bearer, fixture};
use agora::identity::Role;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const OPEN: &str = "https://w3id.org/agora/policies/open-data-attribution";

fn node(extra: &[String]) -> TestNode {
    let mut args = vec![
        "--allow-private-addresses".to_owned(),
        // The crawler is not what is under test: one harvest at start is enough.
        "--crawl-interval".to_owned(),
        "3600".to_owned(),
    ];
    args.extend_from_slice(extra);
    TestNode::start(Options {
        args,
        ..Options::default()
    })
}

fn publish(node: &TestNode, name: &str, title: &str) {
    let text = String::from_utf8(fixture("dataset.ttl"))
        .expect("utf-8")
        .replace("grid-load-2024", name)
        .replace("Hourly electricity grid load 2024", title);
    let body = format!(
        "{text}\n<https://energy.example/datasets/{name}> <http://www.w3.org/ns/odrl/2/hasPolicy> <{OPEN}> .\n"
    );
    let holder = node.token("grid-operator", Role::Holder, &[]);
    let answer = node.send(
        "POST",
        "/api/datasets",
        &[
            ("Content-Type", "text/turtle"),
            ("Authorization", &bearer(&holder)),
        ],
        body.as_bytes(),
    );
    assert_eq!(answer.status, 201, "{}", answer.text());
}

fn sparql(node: &TestNode, query: &str) -> Response {
    node.send(
        "POST",
        "/sparql",
        &[
            ("Content-Type", "application/sparql-query"),
            ("Accept", "application/sparql-results+json"),
        ],
        query.as_bytes(),
    )
}

fn bindings(answer: &Response) -> Vec<serde_json::Value> {
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()["results"]["bindings"]
        .as_array()
        .expect("bindings")
        .clone()
}

/// A loopback listener that only counts the connections it gets.
struct Counting {
    port: u16,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Counting {
    fn bind() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("non-blocking");
        let port = listener.local_addr().expect("address").port();
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, stopped) = (connections.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stopped.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok(_) => {
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Self {
            port,
            connections,
            stop,
        }
    }

    fn count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Counting {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

const TITLE: &str = "<http://purl.org/dc/terms/title>";
const DATASET: &str = "<http://www.w3.org/ns/dcat#Dataset>";

#[test]
fn service_reaches_configured_peers_only() {
    let b = node(&[]);
    publish(&b, "only-on-b", "Grid load measured on node B");
    let listener = Counting::bind();
    // A port nothing listens on: the DCAT-AP portal's harvests fail without touching the
    // counting listener.
    let closed = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let a = node(&[
        "--peer".into(),
        format!("b={}", b.url),
        "--peer".into(),
        format!("portal=dcat+http://127.0.0.1:{closed}"),
    ]);

    // B's own data, through A: the dataset sits in one of B's local graphs, which A's
    // harvested copy (graph urn:agora:peer:b) does not reproduce.
    let query = format!(
        "SELECT ?g ?title WHERE {{ SERVICE <{}/sparql> {{ GRAPH ?g {{ ?d a {DATASET} ; {TITLE} ?title }} }} }}",
        b.url
    );
    let rows = bindings(&sparql(&a, &query));
    let from_b: Vec<&serde_json::Value> = rows
        .iter()
        .filter(|row| row["title"]["value"] == "Grid load measured on node B")
        .collect();
    assert!(
        !from_b.is_empty(),
        "B's dataset did not come back: {rows:?}"
    );
    for row in &from_b {
        let graph = row["g"]["value"].as_str().unwrap_or_default();
        assert!(graph.starts_with("urn:agora:local:"), "{row}");
    }
    // The same pattern on A alone finds no such graph: the answer came from B.
    let local = bindings(&sparql(
        &a,
        &format!(
            "SELECT ?g WHERE {{ GRAPH ?g {{ ?d a {DATASET} ; {TITLE} ?title }} FILTER(STRSTARTS(STR(?g), \"urn:agora:local:\")) }}"
        ),
    ));
    assert!(local.is_empty(), "{local:?}");
    // A SERVICE joined with A's own patterns (Oxigraph may evaluate it once per solution on
    // its left; identical sub-queries are answered from the first call's copy).
    publish(&a, "only-on-a", "Grid load measured on node A");
    let joined = bindings(&sparql(
        &a,
        &format!(
            "SELECT ?s ?title WHERE {{ ?s a {DATASET} . SERVICE <{}/sparql> {{ ?d {TITLE} ?title }} }} LIMIT 5",
            b.url
        ),
    ));
    assert!(!joined.is_empty());

    // Not a configured peer: refused before any connection.
    let stranger = format!("http://127.0.0.1:{}/sparql", listener.port);
    let refused = sparql(
        &a,
        &format!("SELECT * WHERE {{ SERVICE <{stranger}> {{ ?s ?p ?o }} }}"),
    );
    let problem = refused.assert_problem(400);
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(&stranger), "{problem}");
    assert!(detail.contains("configured peers"), "{problem}");
    assert!(
        problem["type"]
            .as_str()
            .unwrap_or_default()
            .ends_with("sparql-service-refused"),
        "{problem}"
    );
    // Hidden in a FILTER EXISTS, or behind a variable: refused too.
    sparql(
        &a,
        &format!(
            "SELECT * WHERE {{ ?s ?p ?o FILTER EXISTS {{ SERVICE <{stranger}> {{ ?s ?p ?o }} }} }}"
        ),
    )
    .assert_problem(400);
    sparql(
        &a,
        &format!("SELECT * WHERE {{ VALUES ?x {{ <{stranger}> }} SERVICE ?x {{ ?s ?p ?o }} }}"),
    )
    .assert_problem(400);
    // A DCAT-AP portal has no SPARQL endpoint.
    let portal = sparql(
        &a,
        &format!("ASK {{ SERVICE <http://127.0.0.1:{closed}/sparql> {{ ?s ?p ?o }} }}"),
    );
    let problem = portal.assert_problem(400);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("DCAT-AP"),
        "{problem}"
    );

    // SILENT: no bindings, no connection (by IRI, and by a variable bound at run time).
    for query in [
        format!("SELECT ?s ?p ?o WHERE {{ SERVICE SILENT <{stranger}> {{ ?s ?p ?o }} }}"),
        format!(
            "SELECT ?s ?p ?o WHERE {{ VALUES ?x {{ <{stranger}> }} SERVICE SILENT ?x {{ ?s ?p ?o }} }}"
        ),
    ] {
        let rows = bindings(&sparql(&a, &query));
        assert!(
            rows.iter()
                .all(|row| row.as_object().is_some_and(|o| o.is_empty())),
            "{query}: {rows:?}"
        );
    }

    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        listener.count(),
        0,
        "a SERVICE towards an unconfigured address opened a connection"
    );
}

/// A peer endpoint that misbehaves by path: `…/big/sparql` answers more than 16 MiB,
/// `…/slow/sparql` one byte every 200 ms, `…/redirect/sparql` a `307` to `redirect_to`;
/// anything else is 404 (the crawler's calls).
fn hostile_peer(redirect_to: String) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let redirect_to = redirect_to.clone();
            std::thread::spawn(move || misbehave(stream, &redirect_to));
        }
    });
    port
}

fn misbehave(mut stream: TcpStream, redirect_to: &str) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 65536 {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let path = head
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length.min(1 << 20)];
    let _ = stream.read_exact(&mut body);
    if path.ends_with("/big/sparql") {
        let size = (16 << 20) + (1 << 20);
        let header = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/sparql-results+json\r\nContent-Length: {size}\r\n\r\n"
        );
        if stream.write_all(header.as_bytes()).is_err() {
            return;
        }
        let chunk = vec![b' '; 1 << 16];
        for _ in 0..(size / chunk.len()) {
            if stream.write_all(&chunk).is_err() {
                return;
            }
        }
    } else if path.ends_with("/slow/sparql") {
        let header = "HTTP/1.1 200 OK\r\nContent-Type: application/sparql-results+json\r\nContent-Length: 100000\r\n\r\n";
        if stream.write_all(header.as_bytes()).is_err() {
            return;
        }
        for _ in 0..100_000 {
            std::thread::sleep(Duration::from_millis(200));
            if stream.write_all(b" ").is_err() {
                return;
            }
        }
    } else if path.ends_with("/redirect/sparql") {
        let _ = write!(
            stream,
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: {redirect_to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    } else {
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    }
}

#[test]
fn hostile_peer_endpoints_end_with_a_clear_error() {
    let elsewhere = Counting::bind();
    let port = hostile_peer(format!("http://127.0.0.1:{}/sparql", elsewhere.port));
    let budget_ms: u64 = 4000;
    let mut a = node(&[
        "--sparql-timeout-ms".into(),
        budget_ms.to_string(),
        "--peer".into(),
        format!("big=http://127.0.0.1:{port}/big"),
        "--peer".into(),
        format!("slow=http://127.0.0.1:{port}/slow"),
        "--peer".into(),
        format!("redirect=http://127.0.0.1:{port}/redirect"),
    ]);
    for (peer, expected) in [
        ("big", "larger than 16777216 bytes"),
        ("slow", "no complete answer within"),
        ("redirect", "answered HTTP 307"),
    ] {
        let started = Instant::now();
        let answer = sparql(
            &a,
            &format!(
                "SELECT * WHERE {{ SERVICE <http://127.0.0.1:{port}/{peer}/sparql> {{ ?s ?p ?o }} }}"
            ),
        );
        let problem = answer.assert_problem(502);
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(expected), "{peer}: {problem}");
        assert!(detail.contains(&format!("peer `{peer}`")), "{problem}");
        println!(
            "hostile peer `{peer}`: 502 after {} ms (budget {budget_ms} ms): {detail}",
            started.elapsed().as_millis()
        );
        a.assert_healthy();
    }
    // The redirect was not followed.
    assert_eq!(elsewhere.count(), 0, "a peer's redirect was followed");
    // The node still answers queries.
    let rows = bindings(&sparql(&a, "SELECT * WHERE { ?s ?p ?o } LIMIT 1"));
    assert!(rows.len() <= 1);
}
