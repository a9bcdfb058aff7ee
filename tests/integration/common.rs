//! The harness: a real `agora serve` process on an ephemeral port, its data directory, tokens
//! from its development issuer, and a blocking HTTP client.

#![allow(dead_code)]

use agora::identity::{DevIssuer, Role, TokenRequest};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The repository root, for `connectors/` and fixtures.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The official reference files, or `None` (and one skip line) when absent.
pub fn reference_dir(what: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("AGORA_REFERENCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/reference"));
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIP {what}: reference files not found at {} (set AGORA_REFERENCE_DIR)",
            dir.display()
        );
        None
    }
}

/// A fixture file's bytes.
pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(repo_root().join("tests/fixtures").join(name)).expect("fixture exists")
}

/// How to start a node.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Load the demo pools.
    pub demo: bool,
    /// Extra flags.
    pub args: Vec<String>,
    /// RDF files loaded (`agora load`) into named graphs before the node starts.
    pub preload: Vec<(String, PathBuf)>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
}

/// A running node and its data directory.
pub struct TestNode {
    pub url: String,
    pub data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    child: Child,
    options: Options,
    pub stdout_lines: Vec<String>,
}

impl TestNode {
    /// Starts a node on a fresh data directory.
    pub fn start(options: Options) -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let data_dir = temp.path().join("data");
        for (graph, file) in &options.preload {
            let output = Command::new(env!("CARGO_BIN_EXE_agora"))
                .arg("load")
                .arg(file)
                .arg("--data-dir")
                .arg(&data_dir)
                .args(["--graph", graph])
                .output()
                .expect("agora load runs");
            assert!(
                output.status.success(),
                "agora load: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let (child, url, lines) = spawn(&data_dir, &options);
        Self {
            url,
            data_dir,
            _temp: Some(temp),
            child,
            options,
            stdout_lines: lines,
        }
    }

    /// Starts a node on a data directory the test owns (e.g. on a file system it mounted).
    pub fn start_in(data_dir: &Path, options: Options) -> Self {
        let (child, url, lines) = spawn(data_dir, &options);
        Self {
            url,
            data_dir: data_dir.to_path_buf(),
            _temp: None,
            child,
            options,
            stdout_lines: lines,
        }
    }

    /// Kills the process with SIGKILL (no shutdown code runs) and starts it again on the
    /// same data directory.
    pub fn kill9_and_restart(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
        let (child, url, lines) = spawn(&self.data_dir, &self.options);
        self.child = child;
        self.url = url;
        self.stdout_lines = lines;
    }

    /// Starts the node again on the same data directory after it exited.
    pub fn start_again(&mut self) {
        assert!(!self.is_alive(), "the node is still running");
        let (child, url, lines) = spawn(&self.data_dir, &self.options);
        self.child = child;
        self.url = url;
        self.stdout_lines = lines;
    }

    /// Stops the node (SIGTERM) and starts it again on the same data directory with more
    /// flags.
    pub fn restart_with(&mut self, args: &[String]) {
        self.terminate();
        self.options.args.extend_from_slice(args);
        self.start_again();
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = i32::try_from(self.child.id()).expect("pid");
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        self.child.wait().expect("exits")
    }

    /// Whether the process is still running.
    pub fn is_alive(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A development token for `sub` with `role` and extra claims.
    pub fn token(&self, sub: &str, role: Role, claims: &[(&str, &str)]) -> String {
        let node_id = std::fs::read_to_string(self.data_dir.join("node-id")).expect("node id");
        let issuer = DevIssuer::load_or_create(&self.data_dir, node_id.trim()).expect("issuer");
        let pairs: Vec<String> = claims.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let request = TokenRequest {
            subject: sub.into(),
            roles: vec![role],
            claims: Default::default(),
            lifetime: Duration::from_secs(600),
        }
        .with_claim_pairs(pairs.iter().map(String::as_str))
        .expect("claims");
        issuer
            .issue(&request, node_id.trim(), chrono::Utc::now())
            .expect("token")
    }

    /// The Arrow Flight address of a node started with `--flight-bind`, as
    /// `grpc+tcp://host:port` (the line it prints before its HTTP address).
    pub fn flight_location(&self) -> String {
        self.stdout_lines
            .iter()
            .find_map(|line| line.split("arrow flight on ").nth(1))
            .unwrap_or_else(|| panic!("no Flight address in {:?}", self.stdout_lines))
            .trim()
            .to_owned()
    }

    /// The node id (audience of its tokens).
    pub fn node_id(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("node-id"))
            .expect("node id")
            .trim()
            .to_owned()
    }

    /// `GET path` with optional headers.
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut request = agent().get(format!("{}{path}", self.url));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        Response::from(request.call())
    }

    /// A request with a body.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let url = format!("{}{path}", self.url);
        let builder = ureq::http::Request::builder().method(method).uri(url);
        let builder = headers.iter().fold(builder, |b, (k, v)| b.header(*k, *v));
        let request = builder.body(body.to_vec()).expect("request");
        Response::from(agent().run(request))
    }

    /// Checks the node answers `/health`.
    pub fn assert_healthy(&mut self) {
        assert!(self.is_alive(), "the node process died");
        let health = self.get("/health", &[]);
        assert_eq!(health.status, 200, "health: {}", health.text());
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `agora` binary the nodes run: Cargo's, or `AGORA_TEST_BIN` — a private copy, so that a
/// long soak is not broken by a concurrent build relinking the shared one.
pub fn agora_binary() -> PathBuf {
    std::env::var_os("AGORA_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_agora")))
}

fn spawn(data_dir: &Path, options: &Options) -> (Child, String, Vec<String>) {
    let mut command = Command::new(agora_binary());
    command
        .arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--bind")
        .arg("127.0.0.1:0")
        .arg("--log-format")
        .arg("text")
        .args(&options.args)
        .envs(options.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AGORA_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if options.demo {
        command.arg("--demo");
    }
    // The repository's pools, unless the test brings its own connectors folder.
    if !options.args.iter().any(|a| a == "--connectors") {
        command
            .arg("--connectors")
            .arg(repo_root().join("connectors"));
    }
    let mut child = command.spawn().expect("agora binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        // Drain stdout for the life of the process, even once nobody listens: a closed pipe
        // must not be what ends the node.
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = sender.send(line);
        }
    });
    let mut lines = Vec::new();
    // A guard against a node that never starts, not a performance assertion.
    let url = loop {
        match receiver.recv_timeout(Duration::from_secs(300)) {
            Ok(line) => {
                let found = line.split("listening on ").nth(1).map(str::to_owned);
                lines.push(line);
                if let Some(url) = found {
                    break url;
                }
            }
            Err(e) => panic!("the node did not start: {e}; output so far: {lines:?}"),
        }
    };
    // Keep reading the token lines that follow in demo mode.
    if options.demo {
        while let Ok(line) = receiver.recv_timeout(Duration::from_millis(500)) {
            lines.push(line);
        }
    }
    (child, url, lines)
}

/// A shared agent that reports every status instead of failing on 4xx/5xx.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

/// A response, read whole.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// Reads an exchange made outside the harness (e.g. on another thread).
    pub fn from_result(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Self {
        Self::from(result)
    }

    fn from(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Self {
        let mut response = result.expect("HTTP exchange");
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let body = response
            .body_mut()
            .with_config()
            .limit(512 << 20)
            .read_to_vec()
            .unwrap_or_default();
        Self {
            status,
            headers,
            body,
        }
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// Asserts a problem+json answer with `status`, returning its body.
    pub fn assert_problem(&self, status: u16) -> serde_json::Value {
        assert_eq!(
            self.status,
            status,
            "expected {status}, got {}: {}",
            self.status,
            self.text()
        );
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "not problem+json: {}",
            self.text()
        );
        let problem = self.json();
        for field in ["type", "title", "detail"] {
            assert!(
                problem[field].is_string(),
                "problem without {field}: {problem}"
            );
        }
        problem
    }
}

/// Parses an RDF response into a graph.
pub fn parse_graph(body: &[u8], format: oxigraph::io::RdfFormat) -> oxigraph::model::Graph {
    let mut graph = oxigraph::model::Graph::new();
    for quad in oxigraph::io::RdfParser::from_format(format).for_slice(body) {
        graph.insert(&oxigraph::model::Triple::from(quad.expect("valid RDF")));
    }
    graph
}

/// The `Authorization` value of a bearer token.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A researcher's token with the claims the demo policies test (an EU university).
pub fn researcher(node: &TestNode, sub: &str) -> String {
    node.token(
        sub,
        Role::Researcher,
        &[("country", "DE"), ("org_type", "university")],
    )
}

/// Negotiates `dataset` for `sub` and starts a transfer: (agreement, transfer, data token).
pub fn pull_rights(node: &TestNode, sub: &str, dataset: &str) -> (String, String, String) {
    let token = researcher(node, sub);
    let agreed = node.send(
        "POST",
        "/api/negotiations",
        &[
            ("Authorization", &bearer(&token)),
            ("Content-Type", "application/json"),
        ],
        serde_json::json!({"dataset": dataset, "purpose": "dpv:AcademicResearch"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(agreed.status, 201, "{}", agreed.text());
    let agreement = agreed.json()["agreement"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let started = node.send(
        "POST",
        "/api/transfers",
        &[
            ("Authorization", &bearer(&token)),
            ("Content-Type", "application/json"),
        ],
        serde_json::json!({"agreement": agreement})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(started.status, 201, "{}", started.text());
    let body = started.json();
    (
        agreement,
        body["id"].as_str().unwrap().to_owned(),
        body["token"].as_str().unwrap().to_owned(),
    )
}

/// A small deterministic generator (xorshift64*): a randomised test replays from its seed.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// A number in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    /// One of `items` (which must not be empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}
