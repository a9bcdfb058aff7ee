//! Matrix R14 (`SECURITY.md`, issue 9 "Hardening"): the SPARQL shapes Oxigraph's own
//! cancellation handles worst — a 3-way cross product under `COUNT`, a `(:p|^:p)*` closure
//! with both ends open and nested property paths — are stopped at the query budget, answered
//! as a problem within budget + 1.5 s, and the node keeps serving while they run.
//!
//! The 1.5 s bound is not a performance figure: it is the correctness property of
//! cancellation (a query the node claims to stop must stop), so it is asserted as the matrix
//! states it. The data is a generated graph preloaded into a public named graph (10,000
//! triples: a ring on `:p`, chords on `:q`), on which each query needs far longer than the
//! budget; a query that completes instead fails the test, since it proves nothing.

use crate::common::{Options, Response, TestNode, agent};
use std::time::{Duration, Instant};

/// The query budget the node runs with (`[sparql] timeout_ms`).
const BUDGET: Duration = Duration::from_millis(2000);
/// What the matrix allows past the budget before the answer arrives.
const SLACK: Duration = Duration::from_millis(1500);
/// Nodes of the generated ring.
const RING: usize = 5000;

/// The heavy queries, by name. Each one's cost grows with the square (or cube) of the ring.
const HEAVY: [(&str, &str); 4] = [
    (
        "3-way cross product with COUNT",
        "SELECT (COUNT(*) AS ?n) WHERE { GRAPH ?g1 { ?a ?b ?c } GRAPH ?g2 { ?d ?e ?f } GRAPH ?g3 { ?h ?i ?j } }",
    ),
    (
        "(:p|^:p)* closure",
        "SELECT (COUNT(*) AS ?n) WHERE { ?x (<urn:r14:p>|^<urn:r14:p>)* ?y }",
    ),
    (
        "nested property paths",
        "SELECT (COUNT(*) AS ?n) WHERE { ?x ((<urn:r14:p>|^<urn:r14:q>)+/(<urn:r14:q>/^<urn:r14:p>)*)* ?y }",
    ),
    (
        "closure under DISTINCT with a negated property set",
        "SELECT (COUNT(DISTINCT ?y) AS ?n) WHERE { ?x (!<urn:r14:none>|^!<urn:r14:none>)*/(<urn:r14:q>|^<urn:r14:p>)+ ?y }",
    ),
];

/// A node with the generated graph and a config of `BUDGET`, and enough workers that the
/// heavy queries run at once (none waits in the admission queue, which is R15's subject) with
/// one left for a cheap query.
fn node() -> (TestNode, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let graph = dir.path().join("ring.nt");
    let mut triples = String::new();
    for i in 0..RING {
        triples.push_str(&format!(
            "<urn:r14:n{i}> <urn:r14:p> <urn:r14:n{}> .\n<urn:r14:n{i}> <urn:r14:q> <urn:r14:n{}> .\n",
            (i + 1) % RING,
            (i * 7 + 3) % RING
        ));
    }
    std::fs::write(&graph, triples).expect("graph file");
    let config = dir.path().join("agora.toml");
    std::fs::write(
        &config,
        format!(
            "[sparql]\ntimeout_ms = {}\nworkers = {}\nqueue = 16\n",
            BUDGET.as_millis(),
            HEAVY.len() + 1
        ),
    )
    .expect("config");
    let node = TestNode::start(Options {
        args: vec!["--config".into(), config.display().to_string()],
        preload: vec![("urn:r14:graph".into(), graph)],
        ..Options::default()
    });
    (node, dir)
}

/// `POST /sparql` with a direct query body, read whole.
fn query(url: &str, text: &str) -> Response {
    Response::from_result(
        agent()
            .post(format!("{url}/sparql"))
            .header("Content-Type", "application/sparql-query")
            .header("Accept", "application/sparql-results+json")
            .send(text.as_bytes()),
    )
}

/// The states (`/proc/<pid>/stat`, third field) of `parent`'s child processes.
fn child_states(parent: u32) -> Vec<(u32, char)> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`: the command may hold spaces, so read after its `)`.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().and_then(|s| s.chars().next()).unwrap_or('?');
        if fields.next().and_then(|s| s.parse::<u32>().ok()) == Some(parent) {
            children.push((pid, state));
        }
    }
    children
}

/// Matrix R14: the heavy queries, sent at once, each come back within budget + 1.5 s as a 503
/// problem+json of type `sparql-budget` saying the budget was exceeded; while they run,
/// `/health` answers within 1 s every time and a cheap SPARQL query is answered; afterwards
/// the same process answers the next query, and no query worker is left running (a stopped
/// query whose evaluation went on would show as a child in state `R`).
#[test]
fn r14_heavy_sparql_is_stopped_at_the_budget_and_the_node_stays_responsive() {
    let (mut node, _dir) = node();
    let pid = node.pid();
    // Warm up: the first query takes the store's checkpoint, which is not the evaluation
    // under test.
    let warm = query(&node.url, "ASK { <urn:r14:n0> <urn:r14:p> <urn:r14:n1> }");
    assert_eq!(warm.status, 200, "{}", warm.text());
    assert_eq!(warm.json()["boolean"], true);

    let heavy: Vec<_> = HEAVY
        .iter()
        .map(|(name, text)| {
            let url = node.url.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                let answer = query(&url, text);
                (*name, started.elapsed(), answer)
            })
        })
        .collect();

    // While they run: health every 100 ms, and once a cheap query.
    let mut health = Vec::new();
    let mut cheap = None;
    let until = Instant::now() + BUDGET;
    while Instant::now() < until {
        let started = Instant::now();
        let answer = node.get("/health", &[]);
        health.push((started.elapsed(), answer.status));
        if cheap.is_none() && started.elapsed() < BUDGET / 2 {
            let started = Instant::now();
            let answer = query(&node.url, "SELECT ?o WHERE { <urn:r14:n1> <urn:r14:q> ?o }");
            cheap = Some((started.elapsed(), answer));
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    for worker in heavy {
        let (name, took, answer) = worker.join().expect("query thread");
        let problem = answer.assert_problem(503);
        assert_eq!(
            problem["type"], "https://w3id.org/agora/problems/sparql-budget",
            "{name}: {problem}"
        );
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains("budget") && d.contains("stopped")),
            "{name}: {problem}"
        );
        eprintln!("R14 {name}: stopped after {took:?}");
        assert!(
            took <= BUDGET + SLACK,
            "{name}: answered after {took:?}, more than the {BUDGET:?} budget + {SLACK:?}"
        );
    }
    assert!(!health.is_empty());
    for (took, status) in &health {
        assert_eq!(*status, 200, "health during the heavy queries");
        assert!(
            *took <= Duration::from_secs(1),
            "health took {took:?} during the heavy queries: {health:?}"
        );
    }
    let (took, cheap) = cheap.expect("a cheap query was sent");
    assert_eq!(cheap.status, 200, "{}", cheap.text());
    assert_eq!(
        cheap.json()["results"]["bindings"][0]["o"]["value"],
        "urn:r14:n10"
    );
    eprintln!("R14 cheap query during the heavy ones: {took:?}");

    node.assert_healthy();
    assert_eq!(node.pid(), pid, "the node process is the same");
    // Stopped workers are gone; those left idle in the pool wait for work.
    std::thread::sleep(Duration::from_millis(500));
    let running: Vec<_> = child_states(pid)
        .into_iter()
        .filter(|(_, state)| *state == 'R')
        .collect();
    assert!(
        running.is_empty(),
        "query workers still evaluating after their queries were stopped: {running:?}"
    );
    let next = query(
        &node.url,
        "SELECT (COUNT(*) AS ?n) WHERE { ?s <urn:r14:p> ?o }",
    );
    assert_eq!(next.status, 200, "{}", next.text());
    assert_eq!(
        next.json()["results"]["bindings"][0]["n"]["value"],
        RING.to_string()
    );
}
