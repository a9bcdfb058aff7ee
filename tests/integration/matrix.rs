//! Rows of the security matrix (`docs/SECURITY.md`, issue 9 "Hardening") that no other module
//! proves: slow and idle connections (R36), error hygiene over every route family (R37), mass
//! assignment (R23) and key-selecting token headers with an outbound-connection counter (R3).

use crate::common::{Options, Response, TestNode, bearer, fixture, parse_graph, repo_root};
use agora::identity::Role;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::Signer as _;
use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use oxigraph::io::RdfFormat;
use oxigraph::model::vocab::rdf;
use oxigraph::model::{NamedNodeRef, Term, TripleRef};
use serde_json::{Value, json};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// The node's `host:port`.
fn address(node: &TestNode) -> String {
    node.url
        .strip_prefix("http://")
        .expect("an http URL")
        .to_owned()
}

// ------------------------------------------------------------------------------------ R36

/// What a slow or idle client does with its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slow {
    /// Connects and sends nothing.
    Idle,
    /// Sends the first request's line and headers one byte a second, never finishing them.
    TrickledHead,
    /// Completes one request, reads the answer, then sends nothing (keep-alive).
    IdleAfterRequest,
    /// Completes one request, reads the answer, then sends the next request's head one byte a
    /// second.
    TrickledSecondHead,
    /// Sends a whole head announcing a body, then the body one byte a second.
    TrickledBody,
}

/// One slow connection and when the node closed it.
struct SlowConnection {
    kind: Slow,
    stream: TcpStream,
    closed: Option<Duration>,
    /// The first bytes the node sent after the set-up exchange (its `408`/`400`, if any).
    answer: Vec<u8>,
}

/// Reads one whole response (head and `Content-Length` body) from a blocking stream.
fn read_response(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&received[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if received.len() >= end + 4 + length {
                return received;
            }
        }
        let n = stream.read(&mut buffer).expect("the response arrives");
        assert!(n > 0, "the node closed before answering: {received:?}");
        received.extend_from_slice(&buffer[..n]);
    }
}

impl SlowConnection {
    /// Opens a connection to `node` and starts behaving as `kind`.
    fn open(node: &TestNode, kind: Slow) -> Self {
        let mut stream = TcpStream::connect(address(node)).expect("connect");
        // A hang guard for the set-up exchange, not a speed assertion.
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        let host = address(node);
        match kind {
            Slow::Idle => {}
            Slow::TrickledHead => {
                write!(stream, "GET /health HTTP/1.1\r\nHost: {host}\r\nX-Slow: ").expect("write");
            }
            Slow::IdleAfterRequest | Slow::TrickledSecondHead => {
                write!(stream, "GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n").expect("write");
                let answer = read_response(&mut stream);
                assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
                if kind == Slow::TrickledSecondHead {
                    write!(stream, "GET /health HTTP/1.1\r\nHost: {host}\r\nX-Slow: ")
                        .expect("write");
                }
            }
            Slow::TrickledBody => {
                write!(
                    stream,
                    "POST /sparql HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/sparql-query\r\nContent-Length: 4096\r\n\r\nSELECT"
                )
                .expect("write");
            }
        }
        stream.set_nonblocking(true).expect("non-blocking");
        Self {
            kind,
            stream,
            closed: None,
            answer: Vec::new(),
        }
    }

    /// Sends one more byte if this client trickles; notes when the node has closed the
    /// connection (end of stream, reset, or a refused write).
    fn step(&mut self, elapsed: Duration) {
        if self.closed.is_some() {
            return;
        }
        let trickles = matches!(
            self.kind,
            Slow::TrickledHead | Slow::TrickledSecondHead | Slow::TrickledBody
        );
        if trickles {
            match self.stream.write(b"a") {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => {
                    self.closed = Some(elapsed);
                    return;
                }
            }
        }
        let mut buffer = [0u8; 1024];
        loop {
            match self.stream.read(&mut buffer) {
                // The node's `408` (or any answer) is read and the loop goes on to the close.
                Ok(n) if n > 0 => {
                    let room = 64usize.saturating_sub(self.answer.len());
                    self.answer.extend_from_slice(&buffer[..n.min(room)]);
                }
                Ok(_) => {
                    self.closed = Some(elapsed);
                    return;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.closed = Some(elapsed);
                    return;
                }
            }
        }
    }
}

/// Opens the connections of `plan` against a fresh node, keeps trickling and serving a normal
/// client (which must get 200 all along) until the node has closed every slow connection or
/// the hang guard runs out, and answers the kinds left open with how many.
fn attack(plan: &[(Slow, usize)]) -> Vec<String> {
    let mut node = TestNode::start(Options::default());
    let mut slow: Vec<SlowConnection> = plan
        .iter()
        .flat_map(|(kind, n)| (0..*n).map(|_| *kind))
        .map(|kind| SlowConnection::open(&node, kind))
        .collect();
    let started = Instant::now();
    // A hang guard, not a speed claim: well past the longest bound configured (40 s, no
    // request in progress on a connection).
    let guard = Duration::from_secs(90);
    let mut served = 0;
    while started.elapsed() < guard && slow.iter().any(|c| c.closed.is_none()) {
        for connection in &mut slow {
            connection.step(started.elapsed());
        }
        // Another client is served normally all along.
        let health = node.get("/health", &[]);
        assert_eq!(health.status, 200, "health during the attack");
        let listing = node.get("/api/datasets", &[]);
        assert_eq!(listing.status, 200, "listing during the attack");
        served += 2;
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(served > 0);
    let mut open = Vec::new();
    for (kind, _) in plan {
        let of_kind: Vec<&SlowConnection> = slow.iter().filter(|c| c.kind == *kind).collect();
        let still_open = of_kind.iter().filter(|c| c.closed.is_none()).count();
        let latest = of_kind.iter().filter_map(|c| c.closed).max();
        eprintln!(
            "{kind:?}: {} of {} closed by the node (last after {latest:?})",
            of_kind.len() - still_open,
            of_kind.len()
        );
        if still_open > 0 {
            open.push(format!("{still_open} {kind:?}"));
        }
        // A client that sent part of a request is told why before the close.
        if matches!(kind, Slow::TrickledHead | Slow::TrickledBody) {
            for connection in of_kind.iter().filter(|c| c.closed.is_some()) {
                let answer = String::from_utf8_lossy(&connection.answer);
                assert!(
                    answer.starts_with("HTTP/1.1 400") || answer.starts_with("HTTP/1.1 408"),
                    "{kind:?} closed without a 400/408: {answer:?}"
                );
            }
        }
    }
    node.assert_healthy();
    open
}

/// Matrix R36: 64 connections that send nothing, trickle the first request's head, the second
/// request's head or a body one byte a second, or fall idle after a request, do not keep a
/// normal client from being served, and the node closes every one of them: a first head not
/// sent within `client_request_timeout` gets `408`, a body arriving below the minimum rate
/// (`http::slow_body`) gets `400`, an idle keep-alive connection is closed after `keep_alive`,
/// and a connection with no request in progress for longer than both together
/// (`http::connection_guard`) is closed. Before those two guards the 12 trickled bodies and
/// the 12 trickled second heads were all still open when the hang guard ran out.
#[test]
fn slow_and_idle_connections_are_closed_and_others_are_served_meanwhile() {
    let open = attack(&[
        (Slow::Idle, 14),
        (Slow::TrickledHead, 14),
        (Slow::IdleAfterRequest, 12),
        (Slow::TrickledSecondHead, 12),
        (Slow::TrickledBody, 12),
    ]);
    assert!(
        open.is_empty(),
        "still open after the guard: {}",
        open.join(", ")
    );
}

// ------------------------------------------------------------------------------------ R37

/// A JWT-shaped token no issuer signed (it must not be echoed either).
const FORGED: &str =
    "eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJtYWxsb3J5In0.Zm9yZ2VkLXNpZ25hdHVyZQ";

/// A token signed with the node's development key whose `exp` is an hour ago.
fn expired_token(node: &TestNode) -> String {
    let pem = std::fs::read(node.data_dir.join("keys/dev-issuer.pem")).expect("key");
    let key = jsonwebtoken::EncodingKey::from_ed_pem(&pem).expect("pem");
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "iss": format!("{}/dev-issuer", node.node_id()), "sub": "hospital",
        "aud": node.node_id(), "exp": now - 3600, "nbf": now - 7200, "roles": ["holder"],
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA),
        &claims,
        &key,
    )
    .expect("sign")
}

/// What no answer may contain, and why.
struct Needles {
    /// Secrets: every token the battery sends.
    tokens: Vec<String>,
    /// Paths and stack-trace markers.
    leaks: Vec<String>,
}

impl Needles {
    /// The problem with `response` to `what`, if any.
    fn find(&self, what: &str, response: &Response) -> Option<String> {
        let headers: String = response
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}\n"))
            .collect();
        let text = format!("{headers}\n{}", response.text());
        // The Delta Sharing profile is the one answer that hands the caller its own token back
        // (the protocol's profile file); anywhere else a token in an answer is a leak.
        let hands_back_token =
            what.contains("/delta-sharing/profile") && (200..300).contains(&response.status);
        if !hands_back_token {
            if let Some(token) = self.tokens.iter().find(|t| text.contains(t.as_str())) {
                return Some(format!(
                    "{what} -> {}: echoes a token ({}...)",
                    response.status,
                    &token[..12]
                ));
            }
            if response.status >= 400 && text.contains("eyJ") {
                return Some(format!(
                    "{what} -> {}: a JWT-looking string in an error",
                    response.status
                ));
            }
        }
        self.leaks
            .iter()
            .find(|needle| text.contains(needle.as_str()))
            .map(|needle| {
                let at = text.find(needle.as_str()).unwrap_or(0);
                let context: String = text[at.saturating_sub(80)..].chars().take(200).collect();
                format!(
                    "{what} -> {}: contains `{needle}`: …{context}…",
                    response.status
                )
            })
    }
}

/// Matrix R37: a battery of hostile, malformed and unauthorised requests over every route
/// family — catalogue, SPARQL, DSP, the contract API, the data plane, Delta Sharing, peers,
/// the web UI, operations and unknown routes — each sent with no token, a forged one, an
/// expired one, and valid tokens of each role (also as the UI's session cookie). No answer's
/// body or headers contains any of those tokens (a JWT-looking string in no error), the data
/// directory, the repository path, `/root/`, `/home/`, `/tmp/`, `src/`, `.rs:`, `panicked` or
/// `RUST_BACKTRACE`; and no answer is a 500 (or another 5xx than 502, 503, 504 and 507).
#[test]
fn error_answers_never_carry_tokens_paths_or_stack_traces() {
    let node = TestNode::start(Options {
        demo: true,
        env: vec![("RUST_BACKTRACE".into(), "1".into())],
        ..Options::default()
    });
    let researcher = node.token(
        "alice",
        Role::Researcher,
        &[("country", "DE"), ("org_type", "university")],
    );
    let holder = node.token("demo-holder", Role::Holder, &[]);
    let admin = node.token("root-admin", Role::Admin, &[]);
    let expired = expired_token(&node);
    // A real agreement and data-plane token, so the data plane and Delta Sharing answer past
    // their authentication.
    let (agreement, transfer, data_token) = crate::common::pull_rights(&node, "alice", "health");

    let data_dir = node.data_dir.display().to_string();
    let temp_root = node
        .data_dir
        .parent()
        .expect("the data directory is in a temporary one")
        .display()
        .to_string();
    let needles = Needles {
        tokens: vec![
            researcher.clone(),
            holder.clone(),
            admin.clone(),
            expired.clone(),
            data_token.clone(),
            FORGED.to_owned(),
        ],
        leaks: [
            data_dir.as_str(),
            temp_root.as_str(),
            &repo_root().display().to_string(),
            "panicked",
            "RUST_BACKTRACE",
            ".rs:",
            "src/",
            "/root/",
            "/home/",
            "/tmp/",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect(),
    };

    let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_json = format!("{}1{}", "{\"a\":".repeat(5_000), "}".repeat(5_000));
    let a = agreement.as_str();
    let t = transfer.as_str();
    let table = format!("/delta-sharing/shares/x/schemas/y/tables/{a}");
    let routes: Vec<(&str, String, &str, Vec<u8>)> = vec![
        // Operations and unknown routes.
        ("GET", "/health".into(), "", vec![]),
        ("GET", "/metrics".into(), "", vec![]),
        ("GET", "/.well-known/jwks.json".into(), "", vec![]),
        ("GET", "/no/such/route".into(), "", vec![]),
        ("PATCH", "/api/datasets".into(), "", vec![]),
        ("GET", "/%2e%2e/%2e%2e/etc/passwd".into(), "", vec![]),
        // Catalogue.
        ("POST", "/api/datasets".into(), "text/turtle", b"@prefix : <".to_vec()),
        ("POST", "/api/datasets".into(), "application/ld+json", deep_json.clone().into_bytes()),
        ("POST", "/api/datasets".into(), "application/ld+json", nested.clone().into_bytes()),
        ("POST", "/api/datasets".into(), "application/rdf+xml",
            b"<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"b\">]><x>&a;</x>".to_vec()),
        ("POST", "/api/datasets".into(), "application/x-unknown", b"\x00\xff".to_vec()),
        ("POST", "/api/datasets".into(), "text/turtle",
            b"<urn:x> a <http://www.w3.org/ns/dcat#Dataset> ; <http://www.w3.org/ns/dcat#distribution> [ <http://www.w3.org/ns/dcat#downloadURL> <file:///etc/shadow> ] .".to_vec()),
        ("POST", "/api/datasets".into(), "text/turtle", fixture("dataset.ttl")),
        ("POST", "/api/datasets/batch".into(), "application/json", b"{\"not\": \"a batch\"}".to_vec()),
        ("GET", "/api/datasets/no-such-dataset".into(), "", vec![]),
        ("GET", "/api/datasets/%00%ff".into(), "", vec![]),
        ("GET", "/api/datasets/health?format=nope".into(), "", vec![]),
        ("PUT", "/api/datasets/health".into(), "text/turtle", b"garbage".to_vec()),
        ("DELETE", "/api/datasets/no-such-dataset".into(), "", vec![]),
        ("GET", "/api/datasets?q=%22((((&limit=-1&offset=x".into(), "", vec![]),
        ("GET", "/api/datasets?limit=99999999999999999999".into(), "", vec![]),
        ("GET", "/catalog?page=-3&format=xml".into(), "", vec![]),
        // SPARQL.
        ("GET", "/sparql?query=SELEKT%20*".into(), "", vec![]),
        ("GET", "/sparql".into(), "", vec![]),
        ("POST", "/sparql".into(), "application/sparql-query", b"SELECT * WHERE { ?s ?p".to_vec()),
        ("POST", "/sparql".into(), "application/sparql-update", b"DROP ALL".to_vec()),
        ("POST", "/sparql".into(), "application/x-www-form-urlencoded", b"update=DROP%20ALL".to_vec()),
        ("POST", "/sparql".into(), "application/sparql-query",
            b"SELECT * WHERE { SERVICE <http://127.0.0.1:9/sparql> { ?s ?p ?o } }".to_vec()),
        ("POST", "/sparql".into(), "application/sparql-query",
            b"SELECT * WHERE { ?s ?p ?o } ORDER BY (1/0)".to_vec()),
        // DSP.
        ("GET", "/.well-known/dspace-version".into(), "", vec![]),
        ("POST", "/dsp/catalog/request".into(), "application/json", b"[1,2".to_vec()),
        ("POST", "/dsp/catalog/request".into(), "application/json",
            br#"{"@context":["https://evil.example/context"],"@type":"CatalogRequestMessage"}"#.to_vec()),
        ("GET", "/dsp/catalog/datasets/no-such".into(), "", vec![]),
        ("POST", "/dsp/negotiations/request".into(), "application/json", b"\"not an object\"".to_vec()),
        ("POST", "/dsp/negotiations/request".into(), "application/json",
            br#"{"@context":["https://w3id.org/dspace/2025/1/context.jsonld"],"@type":"ContractRequestMessage","consumerPid":"urn:uuid:c","offer":{"@id":"urn:x"},"callbackAddress":"file:///etc/passwd"}"#.to_vec()),
        ("POST", "/dsp/negotiations/offers".into(), "application/json", b"{}".to_vec()),
        ("GET", "/dsp/negotiations/urn:uuid:nope".into(), "", vec![]),
        ("POST", "/dsp/negotiations/urn:uuid:nope/agreement/verification".into(), "application/json", b"{}".to_vec()),
        ("POST", "/dsp/negotiations/urn:uuid:nope/../../x".into(), "application/json", b"{}".to_vec()),
        ("POST", "/dsp/transfers/request".into(), "application/json", deep_json.clone().into_bytes()),
        ("GET", "/dsp/transfers/urn:uuid:nope".into(), "", vec![]),
        ("POST", "/dsp/transfers/urn:uuid:nope/start".into(), "application/json", b"{}".to_vec()),
        // Contract API.
        ("POST", "/api/negotiations".into(), "application/json", b"{\"dataset\": ".to_vec()),
        ("POST", "/api/negotiations".into(), "application/json", br#"{"dataset":"health","provider":"file:///etc/passwd"}"#.to_vec()),
        ("POST", "/api/negotiations".into(), "application/json", br#"{"dataset":"health","purpose":"dpv:Marketing"}"#.to_vec()),
        ("GET", "/api/negotiations/urn:uuid:nope".into(), "", vec![]),
        ("GET", "/api/negotiations/urn:uuid:nope/events".into(), "", vec![]),
        ("POST", "/api/negotiations/urn:uuid:nope/approve".into(), "", vec![]),
        ("POST", "/api/negotiations/urn:uuid:nope/reject".into(), "application/json", b"{\"reason\": 5}".to_vec()),
        ("POST", "/api/negotiations/urn:uuid:nope/terminate".into(), "", vec![]),
        ("GET", "/api/agreements/urn:uuid:nope".into(), "", vec![]),
        ("GET", format!("/api/agreements/{a}"), "", vec![]),
        ("GET", "/api/audit?dataset=../../etc".into(), "", vec![]),
        ("GET", "/api/audit".into(), "", vec![]),
        ("POST", "/api/transfers".into(), "application/json", b"[]".to_vec()),
        ("POST", "/api/transfers".into(), "application/json", br#"{"agreement":"urn:uuid:nope"}"#.to_vec()),
        ("GET", format!("/api/transfers/{t}"), "", vec![]),
        ("GET", "/api/transfers/urn:uuid:nope".into(), "", vec![]),
        ("POST", "/api/transfers/urn:uuid:nope/token".into(), "", vec![]),
        ("POST", "/api/transfers/urn:uuid:nope/explode".into(), "", vec![]),
        // Data plane.
        ("GET", "/data/urn:uuid:nope".into(), "", vec![]),
        ("GET", format!("/data/{a}"), "", vec![]),
        ("GET", format!("/data/{a}/arrow?columns=no_such_column"), "", vec![]),
        ("GET", format!("/data/{a}/arrow?filter=%27%20OR%201%3D1%20--"), "", vec![]),
        ("GET", format!("/data/{a}/aggregate?group_by=no_such&measure=x"), "", vec![]),
        ("GET", format!("/data/{a}/aggregate?sql=SELECT%20*%20FROM%20read_parquet('/etc/passwd')"), "", vec![]),
        ("GET", format!("/data/{a}/shards"), "", vec![]),
        ("GET", format!("/data/{a}/shards/999999"), "", vec![]),
        ("GET", format!("/data/{a}/shards/..%2f..%2fetc%2fpasswd"), "", vec![]),
        ("HEAD", format!("/data/{a}/shards/-1"), "", vec![]),
        // Delta Sharing.
        ("GET", "/delta-sharing/profile".into(), "", vec![]),
        ("GET", "/delta-sharing/shares".into(), "", vec![]),
        ("GET", "/delta-sharing/shares/nope".into(), "", vec![]),
        ("GET", "/delta-sharing/shares/nope/schemas".into(), "", vec![]),
        ("GET", "/delta-sharing/shares/nope/schemas/x/tables".into(), "", vec![]),
        ("GET", "/delta-sharing/shares/nope/all-tables".into(), "", vec![]),
        ("GET", format!("{table}/version?startingTimestamp=garbage"), "", vec![]),
        ("GET", format!("{table}/metadata"), "", vec![]),
        ("POST", format!("{table}/query"), "application/json", b"{\"predicateHints\": [\"' OR 1=1\"], \"limitHint\": -5}".to_vec()),
        ("POST", format!("{table}/query"), "application/json", b"not json".to_vec()),
        ("GET", "/delta-sharing/files/nope/0".into(), "", vec![]),
        ("GET", "/delta-sharing/files/x/99999999999999999999".into(), "", vec![]),
        // Peers and the change feed.
        ("GET", "/api/peers".into(), "", vec![]),
        ("POST", "/api/peers".into(), "application/json", b"{\"id\": \"x\"".to_vec()),
        ("POST", "/api/peers".into(), "application/json", br#"{"id":"evil","url":"file:///etc/passwd"}"#.to_vec()),
        ("POST", "/api/peers".into(), "application/json", br#"{"id":"meta","url":"http://169.254.169.254"}"#.to_vec()),
        ("POST", "/api/peers".into(), "application/json", br#"{"id":"../../x","url":"https://peer.example"}"#.to_vec()),
        ("GET", "/api/federation/changes?since=garbage%00".into(), "", vec![]),
        // Web UI.
        ("GET", "/".into(), "", vec![]),
        ("GET", "/datasets/no-such".into(), "", vec![]),
        ("GET", "/datasets/health".into(), "", vec![]),
        ("POST", "/datasets/health/request".into(), "application/x-www-form-urlencoded", b"purpose=x&csrf=wrong".to_vec()),
        ("GET", "/negotiations/urn:uuid:nope".into(), "", vec![]),
        ("GET", "/negotiations/urn:uuid:nope/status".into(), "", vec![]),
        ("GET", "/sparql-editor?query=SELEKT".into(), "", vec![]),
        ("GET", "/publish".into(), "", vec![]),
        ("POST", "/publish".into(), "application/x-www-form-urlencoded", b"turtle=%40prefix&csrf=x".to_vec()),
        ("GET", "/holder".into(), "", vec![]),
        ("POST", "/holder/negotiations/urn:uuid:nope/approve".into(), "application/x-www-form-urlencoded", b"csrf=x".to_vec()),
        ("GET", "/holder/audit/../../etc/passwd".into(), "", vec![]),
        ("GET", "/holder/audit/no-such".into(), "", vec![]),
        ("GET", "/sign-in?next=//evil.example".into(), "", vec![]),
        ("POST", "/sign-in".into(), "application/x-www-form-urlencoded", format!("token={expired}&next=/").into_bytes()),
        ("POST", "/sign-in".into(), "application/x-www-form-urlencoded", format!("token={FORGED}&next=/").into_bytes()),
        ("POST", "/sign-in".into(), "application/x-www-form-urlencoded", b"token=%ff%fe&next=/".to_vec()),
        ("POST", "/sign-out".into(), "application/x-www-form-urlencoded", b"csrf=x".to_vec()),
        ("GET", "/ui/assets/..%2f..%2fCargo.toml".into(), "", vec![]),
        ("GET", "/ui/assets/no-such.css".into(), "", vec![]),
    ];
    let tokens: [(&str, Option<&str>); 7] = [
        ("no token", None),
        ("forged", Some(FORGED)),
        ("expired", Some(expired.as_str())),
        ("researcher", Some(researcher.as_str())),
        ("holder", Some(holder.as_str())),
        ("admin", Some(admin.as_str())),
        ("data token", Some(data_token.as_str())),
    ];
    let mut findings = Vec::new();
    let mut sent = 0;
    for (method, path, content_type, body) in &routes {
        for (who, token) in &tokens {
            let authorization = token.map(bearer);
            let cookie = token.map(|t| format!("agora_session={t}"));
            let origin = node.url.clone();
            let mut headers: Vec<(&str, &str)> = vec![("Origin", &origin)];
            if let Some(value) = &authorization {
                headers.push(("Authorization", value));
            }
            if let Some(value) = &cookie {
                headers.push(("Cookie", value));
            }
            if !content_type.is_empty() {
                headers.push(("Content-Type", content_type));
            }
            let response = node.send(method, path, &headers, body);
            sent += 1;
            let what = format!("{method} {path} ({who})");
            // Gateway, unavailable and full-storage answers are documented operational
            // refusals (a peer or the disk, not the node's code); any other 5xx is a bug.
            if response.status >= 500 && ![502, 503, 504, 507].contains(&response.status) {
                findings.push(format!(
                    "{what} -> {}: a server error: {}",
                    response.status,
                    response.text().chars().take(300).collect::<String>()
                ));
            }
            findings.extend(needles.find(&what, &response));
        }
    }
    eprintln!("{sent} requests over {} routes", routes.len());
    assert!(sent >= 700, "the battery shrank: {sent}");
    assert!(
        findings.is_empty(),
        "{} findings:\n{}",
        findings.len(),
        findings.join("\n")
    );
    // The needles do find what they look for (so the test can fail): the profile hands the
    // data token back, and a body naming the data directory would be caught.
    let profile = node.get(
        "/delta-sharing/profile",
        &[("Authorization", &bearer(&data_token))],
    );
    assert_eq!(profile.status, 200, "{}", profile.text());
    assert!(
        needles
            .find("the profile's answer, were it another route's", &profile)
            .is_some()
    );
    let planted = Response {
        status: 404,
        headers: vec![],
        body: format!("not found: {data_dir}/catalog").into_bytes(),
    };
    assert!(needles.find("planted", &planted).is_some());
}

// ------------------------------------------------------------------------------------ R23

const RECORD_OVERRIDES: &str = "
@prefix dcat: <http://www.w3.org/ns/dcat#> .
@prefix dct:  <http://purl.org/dc/terms/> .
@prefix foaf: <http://xmlns.com/foaf/0.1/> .
@prefix xsd:  <http://www.w3.org/2001/XMLSchema#> .
@prefix agora: <https://w3id.org/agora/ns#> .
<#record> a dcat:CatalogRecord ;
    foaf:primaryTopic <https://energy.example/datasets/grid-load-2024> ;
    dct:issued \"1999-01-01T00:00:00Z\"^^xsd:dateTime ;
    dct:created \"1999-01-01T00:00:00Z\"^^xsd:dateTime ;
    dct:modified \"1999-01-01T00:00:00Z\"^^xsd:dateTime ;
    agora:origin \"peer-b\" .
<https://energy.example/datasets/grid-load-2024> agora:holder \"mallory\" .
";

const DCT_ISSUED: NamedNodeRef<'static> =
    NamedNodeRef::new_unchecked("http://purl.org/dc/terms/issued");
const DCT_CREATED: NamedNodeRef<'static> =
    NamedNodeRef::new_unchecked("http://purl.org/dc/terms/created");
const DCT_MODIFIED: NamedNodeRef<'static> =
    NamedNodeRef::new_unchecked("http://purl.org/dc/terms/modified");
const AGORA_ORIGIN: NamedNodeRef<'static> =
    NamedNodeRef::new_unchecked("https://w3id.org/agora/ns#origin");
const AGORA_HOLDER: NamedNodeRef<'static> =
    NamedNodeRef::new_unchecked("https://w3id.org/agora/ns#holder");

/// The values of `predicate` in the dataset as the node serves it: on its catalogue records
/// (subjects typed `dcat:CatalogRecord`), or with `anywhere` on any subject.
fn values(node: &TestNode, id: &str, predicate: NamedNodeRef<'_>, anywhere: bool) -> Vec<String> {
    let answer = node.get(&format!("/api/datasets/{id}"), &[("Accept", "text/turtle")]);
    assert_eq!(answer.status, 200, "{}", answer.text());
    let graph = parse_graph(&answer.body, RdfFormat::Turtle);
    let record = NamedNodeRef::new_unchecked("http://www.w3.org/ns/dcat#CatalogRecord");
    let mut out: Vec<String> = graph
        .triples_for_predicate(predicate)
        .filter(|t| anywhere || graph.contains(TripleRef::new(t.subject, rdf::TYPE, record)))
        .map(|t| match t.object.into_owned() {
            Term::Literal(l) => l.value().to_owned(),
            other => other.to_string(),
        })
        .collect();
    out.sort();
    out
}

/// `method path` with a Turtle body as `token`'s bearer.
fn publish(node: &TestNode, token: &str, method: &str, path: &str, body: &[u8]) -> Response {
    node.send(
        method,
        path,
        &[
            ("Authorization", &bearer(token)),
            ("Content-Type", "text/turtle"),
        ],
        body,
    )
}

/// Matrix R23, ownership: a description naming another holder (`agora:holder "mallory"`)
/// next to claims about its own catalogue record does not make that holder its owner: the
/// named holder can neither replace nor delete it, and the publisher can. (That the served
/// description still states the named holder is part of the defect of the next test.)
#[test]
fn a_description_cannot_name_its_holder() {
    let node = TestNode::start(Options::default());
    let hospital = node.token("hospital", Role::Holder, &[]);
    let mallory = node.token("mallory", Role::Holder, &[]);
    let mut body = fixture("dataset.ttl");
    body.extend_from_slice(RECORD_OVERRIDES.as_bytes());
    let published = publish(&node, &hospital, "POST", "/api/datasets", &body);
    assert_eq!(published.status, 201, "{}", published.text());
    let id = published.json()["id"].as_str().expect("id").to_owned();
    let path = format!("/api/datasets/{id}");
    publish(&node, &mallory, "PUT", &path, &fixture("dataset.ttl")).assert_problem(403);
    node.send(
        "DELETE",
        &path,
        &[("Authorization", &bearer(&mallory))],
        b"",
    )
    .assert_problem(403);
    let replaced = publish(&node, &hospital, "PUT", &path, &fixture("dataset.ttl"));
    assert_eq!(replaced.status, 200, "{}", replaced.text());
    let deleted = node.send(
        "DELETE",
        &path,
        &[("Authorization", &bearer(&hospital))],
        b"",
    );
    assert!(
        deleted.status == 204 || deleted.status == 200,
        "{}",
        deleted.text()
    );
}

/// Matrix R23, the catalogue: a description cannot set what the node records about it. Its
/// own catalogue record (`<#record>`, the node's record IRI) claiming `dct:issued`,
/// `dct:created`, `dct:modified` and `agora:origin`, and an `agora:holder` naming another
/// holder: either the publish is refused, or the node's values are the only ones served and
/// ownership stays with the caller — on publish and on replace.
#[test]
fn a_description_cannot_set_the_catalogue_record_or_the_holder() {
    let node = TestNode::start(Options::default());
    let hospital = node.token("hospital", Role::Holder, &[]);
    let mallory = node.token("mallory", Role::Holder, &[]);
    let mut body = fixture("dataset.ttl");
    body.extend_from_slice(RECORD_OVERRIDES.as_bytes());

    let published = publish(&node, &hospital, "POST", "/api/datasets", &body);
    let id = if published.status == 201 {
        published.json()["id"].as_str().expect("id").to_owned()
    } else {
        published.assert_problem(published.status);
        assert!((400..500).contains(&published.status));
        // Refused: the same description without the overrides is what gets published.
        let plain = publish(
            &node,
            &hospital,
            "POST",
            "/api/datasets",
            &fixture("dataset.ttl"),
        );
        assert_eq!(plain.status, 201, "{}", plain.text());
        plain.json()["id"].as_str().expect("id").to_owned()
    };
    // Every way the description got through, collected, so a failure names them all.
    let check = |when: &str, issued_before: Option<&str>| -> Vec<String> {
        let mut wrong = Vec::new();
        for predicate in [DCT_ISSUED, DCT_CREATED, DCT_MODIFIED] {
            let found = values(&node, &id, predicate, false);
            if found.len() != 1 || found[0].starts_with("1999") {
                wrong.push(format!(
                    "{when}: the record's {predicate} should be the node's one value, is {found:?}"
                ));
            }
        }
        if let Some(issued) = issued_before {
            let found = values(&node, &id, DCT_ISSUED, false);
            if found != [issued] {
                wrong.push(format!(
                    "{when}: dct:issued should stay {issued}, is {found:?}"
                ));
            }
        }
        let origin = values(&node, &id, AGORA_ORIGIN, false);
        if origin != ["local"] {
            wrong.push(format!(
                "{when}: agora:origin should be \"local\", is {origin:?}"
            ));
        }
        let holder = values(&node, &id, AGORA_HOLDER, true);
        if holder.contains(&"mallory".to_owned()) {
            wrong.push(format!(
                "{when}: the description states agora:holder {holder:?}"
            ));
        }
        wrong
    };
    let mut wrong = check("after publishing", None);
    // The node's own stamp (the description's, if it got in, is from 1999).
    let issued = values(&node, &id, DCT_ISSUED, false)
        .into_iter()
        .rfind(|v| !v.starts_with("1999"))
        .expect("the node stamped dct:issued");

    // Ownership is the caller's, whatever the description said.
    publish(
        &node,
        &mallory,
        "PUT",
        &format!("/api/datasets/{id}"),
        &fixture("dataset.ttl"),
    )
    .assert_problem(403);
    node.send(
        "DELETE",
        &format!("/api/datasets/{id}"),
        &[("Authorization", &bearer(&mallory))],
        b"",
    )
    .assert_problem(403);

    // A replace carrying the overrides keeps the first publication date.
    let replaced = publish(
        &node,
        &hospital,
        "PUT",
        &format!("/api/datasets/{id}"),
        &body,
    );
    if replaced.status != 200 && replaced.status != 201 {
        replaced.assert_problem(replaced.status);
        assert!((400..500).contains(&replaced.status));
    }
    wrong.extend(check("after replacing", Some(&issued)));
    assert!(
        wrong.is_empty(),
        "the description set what the node records:\n{}",
        wrong.join("\n")
    );
}

/// A demo node, a German university researcher's token, and the health pool's first offer as
/// the DSP catalogue shows it.
fn health_offer(node: &TestNode, token: &str) -> (Value, String) {
    let entry = node.get(
        "/dsp/catalog/datasets/health",
        &[("Authorization", &bearer(token))],
    );
    assert_eq!(entry.status, 200, "{}", entry.text());
    let entry = entry.json();
    let offer = match &entry["hasPolicy"] {
        Value::Array(offers) => offers[0].clone(),
        one => one.clone(),
    };
    assert!(offer["@id"].is_string(), "{entry}");
    (
        offer,
        entry["@id"].as_str().expect("dataset IRI").to_owned(),
    )
}

/// `POST /api/negotiations` with `body` as `token`'s bearer.
fn negotiate(node: &TestNode, token: &str, body: &Value) -> Response {
    node.send(
        "POST",
        "/api/negotiations",
        &[
            ("Authorization", &bearer(token)),
            ("Content-Type", "application/json"),
        ],
        body.to_string().as_bytes(),
    )
}

/// Matrix R23, contracts and peers: a request cannot name the privileged fields the node owns.
/// The contract API refuses `assigner`, `assignee`, `target`, `state` and `agreement` outright
/// (400); an offer object naming another `assigner` and another `target` yields an agreement
/// whose assigner is the node, whose target is the negotiated dataset and whose assignee is
/// the caller; an offer with the catalogue's id but weaker terms (no constraint) does not get
/// a caller the policy refuses an agreement; a transfer request cannot carry a state or a
/// party; and peer fields the node keeps (participant, harvest state) cannot be posted, nor
/// can a non-admin register a peer.
#[test]
fn requests_cannot_set_the_fields_the_node_owns() {
    let node = TestNode::start(Options {
        demo: true,
        ..Options::default()
    });
    let alice = node.token(
        "alice",
        Role::Researcher,
        &[("country", "DE"), ("org_type", "university")],
    );
    for (field, value) in [
        ("assigner", json!("mallory")),
        ("assignee", json!("mallory")),
        ("target", json!("urn:other")),
        ("state", json!("FINALIZED")),
        ("agreement", json!({"id": "urn:uuid:forged"})),
    ] {
        let mut body = json!({"dataset": "health", "purpose": "dpv:AcademicResearch"});
        body[field] = value;
        let problem = negotiate(&node, &alice, &body).assert_problem(400);
        assert!(
            problem["detail"]
                .as_str()
                .unwrap_or_default()
                .contains(field),
            "{field}: {problem}"
        );
    }

    let (offer, health_iri) = health_offer(&node, &alice);
    let mut forged = offer.clone();
    forged["assigner"] = json!("mallory");
    forged["target"] = json!("https://elsewhere.example/datasets/secret");
    let answer = negotiate(
        &node,
        &alice,
        &json!({"dataset": "health", "purpose": "dpv:AcademicResearch", "offer": forged}),
    );
    if answer.status == 201 {
        let agreement = &answer.json()["agreement"];
        assert_eq!(agreement["assigner"], node.node_id(), "{agreement}");
        assert_eq!(agreement["assignee"], "alice", "{agreement}");
        assert_eq!(agreement["target"], health_iri, "{agreement}");
        assert_eq!(
            agreement["policy"]["assigner"],
            node.node_id(),
            "{agreement}"
        );
        assert_eq!(agreement["policy"]["target"], health_iri, "{agreement}");
    } else {
        answer.assert_problem(answer.status);
        assert!((400..500).contains(&answer.status), "{}", answer.text());
    }

    // The catalogue's offer id with its constraints dropped: a US researcher, whom the real
    // terms refuse, must not get an agreement.
    let bob = node.token(
        "bob",
        Role::Researcher,
        &[("country", "US"), ("org_type", "university")],
    );
    let mut weakened = offer.clone();
    weakened["permission"] = json!([{"action": "use"}]);
    weakened
        .as_object_mut()
        .expect("offer")
        .remove("prohibition");
    weakened
        .as_object_mut()
        .expect("offer")
        .remove("obligation");
    let answer = negotiate(
        &node,
        &bob,
        &json!({"dataset": "health", "purpose": "dpv:AcademicResearch", "offer": weakened}),
    );
    let state = answer.json()["state"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        answer.status != 201 && state != "FINALIZED",
        "weakened terms were agreed: {}",
        answer.text()
    );
    assert!(answer.status < 500, "{}", answer.text());

    // Transfers: only the agreement comes from the body.
    for field in ["state", "assignee", "format", "token"] {
        let mut body = json!({"agreement": "urn:uuid:00000000-0000-0000-0000-000000000000"});
        body[field] = json!("STARTED");
        node.send(
            "POST",
            "/api/transfers",
            &[
                ("Authorization", &bearer(&alice)),
                ("Content-Type", "application/json"),
            ],
            body.to_string().as_bytes(),
        )
        .assert_problem(400);
    }

    // Peers: an admin-only route, and the harvest state is the node's.
    let holder = node.token("demo-holder", Role::Holder, &[]);
    let admin = node.token("root-admin", Role::Admin, &[]);
    let peer = json!({"id": "b", "url": "https://peer-b.example"});
    node.send(
        "POST",
        "/api/peers",
        &[
            ("Authorization", &bearer(&holder)),
            ("Content-Type", "application/json"),
        ],
        peer.to_string().as_bytes(),
    )
    .assert_problem(403);
    for (field, value) in [
        ("participant", json!("urn:agora:node:forged")),
        ("last_harvest", json!("2099-01-01T00:00:00Z")),
        ("datasets", json!(1000)),
        ("trusted", json!(true)),
    ] {
        let mut body = peer.clone();
        body[field] = value;
        node.send(
            "POST",
            "/api/peers",
            &[
                ("Authorization", &bearer(&admin)),
                ("Content-Type", "application/json"),
            ],
            body.to_string().as_bytes(),
        )
        .assert_problem(400);
    }
    let peers = node.get("/api/peers", &[("Authorization", &bearer(&admin))]);
    assert_eq!(peers.status, 200);
    assert_eq!(peers.json(), json!([]), "no peer was registered");
}

// ------------------------------------------------------------------------------------- R3

/// A loopback listener whose URL goes into the hostile headers; non-blocking so the test can
/// count, after the requests, every connection the node may have opened to it.
fn trap() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("non-blocking");
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().expect("addr")
    );
    (listener, url)
}

/// Connections waiting on `listener` (accepted one by one until none is left).
fn accepted(listener: &TcpListener) -> usize {
    let mut count = 0;
    loop {
        match listener.accept() {
            Ok(_) => count += 1,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return count,
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// A compact JWS over `header` and `claims`, signed with the Ed25519 key `signer` for real
/// (so that only the header parameter can be the reason for a refusal).
fn signed(header: &Value, claims: &Value, signer: &ed25519_dalek::SigningKey) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = signer.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

/// Matrix R3: tokens whose header names a key to fetch or to trust — `jku`, `x5u`, `jwk`
/// (itself carrying an `x5u`), `x5c` — or an unknown `crit` extension are refused with 401,
/// whether signed with the node's issuer key or with the attacker's key the header points to;
/// and the loopback listener whose URL they carry has accepted no connection afterwards. The
/// same claims without the parameter are accepted, so the parameter is the reason.
#[test]
fn key_selecting_token_headers_are_refused_without_any_outbound_connection() {
    let node = TestNode::start(Options::default());
    let (listener, url) = trap();
    let pem = std::fs::read_to_string(node.data_dir.join("keys/dev-issuer.pem")).expect("key");
    let issuer = ed25519_dalek::SigningKey::from_pkcs8_pem(&pem).expect("issuer key");
    let attacker = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
    let attacker_x = URL_SAFE_NO_PAD.encode(attacker.verifying_key().to_bytes());
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "iss": format!("{}/dev-issuer", node.node_id()), "sub": "mallory",
        "aud": node.node_id(), "exp": now + 600, "nbf": now - 10, "iat": now,
        "roles": ["holder"],
    });
    let publish_with = |token: &str| {
        node.send(
            "POST",
            "/api/datasets",
            &[
                ("Content-Type", "text/turtle"),
                ("Authorization", &bearer(token)),
            ],
            &fixture("dataset.ttl"),
        )
    };
    let plain = json!({"alg": "EdDSA", "typ": "JWT"});
    assert_eq!(
        publish_with(&signed(&plain, &claims, &issuer)).status,
        201,
        "the claims and the signing are right"
    );

    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": attacker_x, "x5u": url});
    // A self-signed certificate is not needed: the value's presence is what must be refused.
    let x5c = json!([URL_SAFE_NO_PAD.encode(b"attacker certificate")]);
    let parameters = [
        ("jku", json!(url)),
        ("x5u", json!(url)),
        ("jwk", jwk),
        ("x5c", x5c),
        ("crit", json!(["exp-extension"])),
    ];
    let mut refused = 0;
    for (name, value) in &parameters {
        for (signer_name, signer) in [("issuer", &issuer), ("attacker", &attacker)] {
            let mut header = plain.clone();
            header[*name] = value.clone();
            header["kid"] = json!("attacker-key");
            let token = signed(&header, &claims, signer);
            let response = publish_with(&token);
            let problem = response.assert_problem(401);
            assert!(
                !response.text().contains(&token),
                "{name}/{signer_name}: the token is echoed"
            );
            assert!(
                response.header("www-authenticate").is_some(),
                "{name}/{signer_name}: {problem}"
            );
            refused += 1;
        }
    }
    assert_eq!(refused, 10);
    // Any fetch would have been made while the requests were answered: they are all answered.
    assert_eq!(
        accepted(&listener),
        0,
        "the node connected to the URL in a token header"
    );
    // The counter works: a connection made now is counted.
    let _probe = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(accepted(&listener), 1, "the trap counts connections");
}
