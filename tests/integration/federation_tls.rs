//! `https://` peers: node B runs behind a TLS-terminating reverse proxy (Python's `ssl` and
//! `http.server`, with a throwaway CA and a certificate for 127.0.0.1 made by the `openssl`
//! CLI). Node A, started with `--peer-ca` naming that CA, harvests B over https and converges,
//! and reaches B's SPARQL endpoint through `SERVICE` over https too. Node C, without
//! `--peer-ca`, fails the harvest with a certificate error shown in `/api/peers` and keeps
//! running; node D, with the CA but without `--allow-private-addresses`, is refused by the
//! address policy before connecting, as for an `http://` peer. Skips with one line when `openssl` or a Python is missing. Waits poll with
//! generous deadlines (guards against hanging, not performance assertions).

use super::common::{Options, TestNode, bearer, fixture};
use agora::identity::Role;
use serde_json::Value as Json;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const OPEN: &str = "https://w3id.org/agora/policies/open-data-attribution";

/// A reverse proxy terminating TLS with `cert`/`key` on `port`, forwarding each request to
/// `http://127.0.0.1:{backend}` (whole bodies, `Content-Length`).
const PROXY: &str = r#"
import http.client, http.server, ssl, sys
cert, key, port, backend = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length"}
class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        upstream = http.client.HTTPConnection("127.0.0.1", backend, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        upstream.request(self.command, self.path, body=body, headers=headers)
        answer = upstream.getresponse()
        data = answer.read()
        self.send_response(answer.status)
        for k, v in answer.getheaders():
            if k.lower() not in HOP:
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        upstream.close()
    do_GET = do_POST = do_PUT = do_DELETE = forward
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Proxy)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
print("ready", flush=True)
server.serve_forever()
"#;

fn python() -> Option<PathBuf> {
    let candidate = std::env::var_os("AGORA_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"));
    Command::new(&candidate)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| candidate)
}

fn openssl(dir: &Path, args: &[&str]) -> bool {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A throwaway CA (`ca.pem`) and a server certificate for IP 127.0.0.1 it signed
/// (`server.pem`, `server.key`), or `false` when `openssl` is missing or fails.
fn make_certificates(dir: &Path) -> bool {
    let extensions = "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n";
    if std::fs::write(dir.join("server.ext"), extensions).is_err() {
        return false;
    }
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=agora test federation CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    ) && openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    ) && openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    )
}

struct Proxy(Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_proxy(python: &Path, dir: &Path, port: u16, backend: u16) -> Proxy {
    let script = dir.join("proxy.py");
    std::fs::write(&script, PROXY).expect("proxy script");
    let mut child = Command::new(python)
        .arg(&script)
        .arg(dir.join("server.pem"))
        .arg(dir.join("server.key"))
        .arg(port.to_string())
        .arg(backend.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the proxy starts");
    let stdout = child.stdout.take().expect("proxy stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("the proxy says it is ready");
    assert_eq!(line.trim(), "ready", "the proxy did not start");
    Proxy(child)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
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

fn wait_for(node: &TestNode, id: &str, what: &str, check: impl Fn(&Json) -> bool) -> Json {
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        let status = peer_status(node, id);
        if check(&status) {
            return status;
        }
        assert!(
            Instant::now() < until,
            "{what} did not happen; last seen: {status}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn https_peers_are_harvested_with_the_peer_ca() {
    let Some(python) = python() else {
        println!("SKIP https peers: no Python (AGORA_PYTHON or python3)");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    if !make_certificates(dir.path()) {
        println!("SKIP https peers: the openssl CLI is missing or failed");
        return;
    }
    // B mints its IRIs and DSP endpoint under the https address the proxy serves.
    let port = free_port();
    let public = format!("https://127.0.0.1:{port}");
    let b = TestNode::start(Options {
        args: vec![
            "--public-url".into(),
            public.clone(),
            "--allow-private-addresses".into(),
            "--crawl-interval".into(),
            "1".into(),
        ],
        ..Options::default()
    });
    let backend: u16 = b
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("B's port");
    let _proxy = start_proxy(&python, dir.path(), port, backend);

    let text = String::from_utf8(fixture("dataset.ttl"))
        .expect("utf-8")
        .replace("grid-load-2024", "over-tls")
        .replace("Hourly electricity grid load 2024", "Grid load behind TLS");
    let body = format!(
        "{text}\n<https://energy.example/datasets/over-tls> <http://www.w3.org/ns/odrl/2/hasPolicy> <{OPEN}> .\n"
    );
    let holder = b.token("grid-operator", Role::Holder, &[]);
    let published = b.send(
        "POST",
        "/api/datasets",
        &[
            ("Content-Type", "text/turtle"),
            ("Authorization", &bearer(&holder)),
        ],
        body.as_bytes(),
    );
    assert_eq!(published.status, 201, "{}", published.text());

    let ca = dir.path().join("ca.pem");
    let common = |extra: &[String]| {
        let mut args = vec![
            "--allow-private-addresses".to_owned(),
            "--crawl-interval".to_owned(),
            "1".to_owned(),
            "--peer".to_owned(),
            format!("b={public}"),
        ];
        args.extend_from_slice(extra);
        TestNode::start(Options {
            args,
            ..Options::default()
        })
    };
    let a = common(&["--peer-ca".into(), ca.display().to_string()]);
    let mut c = common(&[]);
    // The address policy holds for https as for http: without --allow-private-addresses a
    // peer on loopback is refused before any connection, CA or not.
    let d = TestNode::start(Options {
        args: vec![
            "--crawl-interval".into(),
            "1".into(),
            "--peer".into(),
            format!("b={public}"),
            "--peer-ca".into(),
            ca.display().to_string(),
        ],
        ..Options::default()
    });
    // B answers A's catalogue request only once it trusts A's key, read from A as its peer.
    let admin = b.token("operator", Role::Admin, &[]);
    let added = b.send(
        "POST",
        "/api/peers",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &bearer(&admin)),
        ],
        serde_json::json!({"id": "a", "url": a.url})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(added.status, 201, "{}", added.text());

    // With the CA: harvested over https.
    let status = wait_for(&a, "b", "a harvest of B over https", |s| {
        s["datasets"].as_u64() >= Some(1) && s["last_error"].is_null()
    });
    println!("A with --peer-ca: {status}");
    let hits = a.get("/api/datasets?origin=b&limit=10", &[]);
    assert_eq!(hits.status, 200, "{}", hits.text());
    assert!(
        hits.text().contains("Grid load behind TLS"),
        "{}",
        hits.text()
    );
    // SERVICE over https uses the same client and CA.
    let query = format!(
        "SELECT ?title WHERE {{ SERVICE <{public}/sparql> {{ ?d <http://purl.org/dc/terms/title> ?title }} }}"
    );
    let answer = a.send(
        "POST",
        "/sparql",
        &[
            ("Content-Type", "application/sparql-query"),
            ("Accept", "application/sparql-results+json"),
        ],
        query.as_bytes(),
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(
        answer.text().contains("Grid load behind TLS"),
        "{}",
        answer.text()
    );

    // Without it: a certificate error in /api/peers, and the node keeps running.
    let status = wait_for(&c, "b", "a certificate error", |s| {
        s["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("certificate"))
    });
    println!("C without --peer-ca: {}", status["last_error"]);
    assert_eq!(status["datasets"], 0, "{status}");
    assert!(
        status["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("--peer-ca"),
        "{status}"
    );
    c.assert_healthy();

    let status = wait_for(&d, "b", "a refusal by the address policy", |s| {
        s["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("refused"))
    });
    println!(
        "D without --allow-private-addresses: {}",
        status["last_error"]
    );
    assert!(
        status["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("loopback"),
        "{status}"
    );
}

#[test]
fn a_peer_ca_without_certificates_stops_the_node_by_flag_or_configuration() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bogus = dir.path().join("bogus.pem");
    std::fs::write(&bogus, "not a certificate\n").expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--peer-ca")
        .arg(&bogus)
        .output()
        .expect("agora runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no PEM certificate"), "{stderr}");
    // The same setting in the configuration file.
    let config = dir.path().join("agora.toml");
    std::fs::write(
        &config,
        format!(
            "[federation]\npeer_ca = {:?}\n",
            bogus.display().to_string()
        ),
    )
    .expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data-2"))
        .arg("--config")
        .arg(&config)
        .output()
        .expect("agora runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no PEM certificate"), "{stderr}");
}
