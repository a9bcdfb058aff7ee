//! S3-compatible object storage connectors: a real S3 server (`s3s-fs`, which checks SigV4
//! signatures) holds the health pool's Parquet files; a node whose connector manifest points at
//! the bucket releases, streams and shards exactly what a node reading the same files locally
//! does; wrong credentials fail the request with a clear error (the node stays up, no secret in
//! the answer); a prefix that climbs out of its folder is refused when the manifest loads.

use super::common::{Options, Response, TestNode, bearer, pull_rights, repo_root};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::Value as Json;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const KEY: &str = "agora-test-key";
const SECRET: &str = "agora-test-secret-0123456789";
const BUCKET: &str = "agora-pools";

/// The `s3s-fs` binary (`AGORA_S3S_FS`, or the one scripts/setup.sh installs), or a skip line.
fn s3s_fs() -> Option<PathBuf> {
    let binary = std::env::var_os("AGORA_S3S_FS")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin/s3s-fs")));
    match binary {
        Some(b) if b.exists() => Some(b),
        _ => {
            eprintln!(
                "SKIP S3 connector: no s3s-fs (scripts/setup.sh installs it into ~/.cargo/bin; or set AGORA_S3S_FS)"
            );
            None
        }
    }
}

/// A running `s3s-fs` serving a folder: each subfolder is a bucket.
struct S3Server {
    child: Child,
    endpoint: String,
    root: tempfile::TempDir,
}

impl S3Server {
    fn start(binary: &Path) -> Self {
        let root = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(root.path().join(BUCKET)).expect("bucket");
        let mut child = Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(["--access-key", KEY, "--secret-key", SECRET])
            .arg(root.path())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("s3s-fs starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let endpoint = loop {
            let line = lines
                .next()
                .expect("s3s-fs announces its address before exiting")
                .expect("a line");
            if let Some(url) = line.split("server is running at ").nth(1) {
                break url.trim().to_owned();
            }
        };
        // Keep draining its log so that it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        Self {
            child,
            endpoint,
            root,
        }
    }

    /// Puts a file into the bucket (s3s-fs keeps objects as files under `root/bucket/key`).
    fn put(&self, key: &str, bytes: &[u8]) {
        let path = self.root.path().join(BUCKET).join(key);
        std::fs::create_dir_all(path.parent().expect("a folder")).expect("folders");
        std::fs::write(path, bytes).expect("object written");
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ipc(response: &Response) -> Vec<RecordBatch> {
    assert_eq!(response.status, 200, "{}", response.text());
    StreamReader::try_new(std::io::Cursor::new(response.body.clone()), None)
        .expect("an Arrow IPC stream")
        .collect::<Result<Vec<_>, _>>()
        .expect("complete batches")
}

/// The rows as sorted text, without the columns in `skip` (pseudonyms are keyed per agreement
/// and per node, so they differ between two nodes by design).
fn rows(batches: &[RecordBatch], skip: &[String]) -> (Vec<String>, Vec<String>) {
    let options = FormatOptions::default().with_null("∅");
    let mut names = Vec::new();
    let mut out = Vec::new();
    for batch in batches {
        let schema = batch.schema();
        let kept: Vec<usize> = (0..batch.num_columns())
            .filter(|&i| !skip.contains(schema.field(i).name()))
            .collect();
        names = kept
            .iter()
            .map(|&i| schema.field(i).name().clone())
            .collect();
        let formatters: Vec<_> = kept
            .iter()
            .map(|&i| ArrayFormatter::try_new(batch.column(i).as_ref(), &options).expect("fmt"))
            .collect();
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = formatters
                .iter()
                .map(|f| f.value(row).to_string())
                .collect();
            out.push(cells.join("\u{1f}"));
        }
    }
    out.sort();
    (names, out)
}

/// What one node releases of `dataset`: the Arrow stream, the union of all shards, and the
/// columns it pseudonymises.
fn release(
    node: &TestNode,
    sub: &str,
    dataset: &str,
) -> (Vec<RecordBatch>, Vec<RecordBatch>, Vec<String>) {
    let (agreement, _, token) = pull_rights(node, sub, dataset);
    let auth = bearer(&token);
    let headers = [("Authorization", auth.as_str())];
    let index = node.get(&format!("/data/{agreement}"), &headers);
    assert_eq!(index.status, 200, "{}", index.text());
    let pseudonymised: Vec<String> = index.json()["pseudonymised_columns"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    let stream = ipc(&node.get(&format!("/data/{agreement}/arrow"), &headers));
    let plan = node.get(&format!("/data/{agreement}/shards"), &headers);
    assert_eq!(plan.status, 200, "{}", plan.text());
    let plan: Json = plan.json();
    let mut shards = Vec::new();
    for segment in plan["shards"].as_array().expect("shards") {
        let n = segment["n"].as_u64().unwrap();
        shards.extend(ipc(&node.get(
            &format!("/data/{agreement}/shards/{n}?format=arrow"),
            &headers,
        )));
    }
    (stream, shards, pseudonymised)
}

/// A connectors folder with the health pool in the bucket (prefix `health`), the mobility pool
/// hive-partitioned under `mobility/batch=…/`, and the climate pool behind wrong credentials.
fn s3_connectors(endpoint: &str, health_prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo_root().join("connectors");
    for (pool, s3) in [
        (
            "health",
            format!(
                "endpoint = \"{endpoint}\"\nbucket = \"{BUCKET}\"\nprefix = \"{health_prefix}\"\nregion = \"us-east-1\"\naccess_key_id_env = \"AGORA_TEST_S3_KEY\"\nsecret_access_key_env = \"AGORA_TEST_S3_SECRET\"\nallow_http = true\n"
            ),
        ),
        (
            "mobility",
            format!(
                "endpoint = \"{endpoint}\"\nbucket = \"{BUCKET}\"\nprefix = \"mobility\"\naccess_key_id_env = \"AGORA_TEST_S3_KEY\"\nsecret_access_key_env = \"AGORA_TEST_S3_SECRET\"\nallow_http = true\n"
            ),
        ),
        (
            "climate",
            format!(
                "endpoint = \"{endpoint}\"\nbucket = \"{BUCKET}\"\nprefix = \"climate\"\naccess_key_id = \"{KEY}\"\nsecret_access_key = \"not-the-secret-xyzzy\"\nallow_http = true\n"
            ),
        ),
    ] {
        let manifest = std::fs::read_to_string(repo.join(format!("{pool}.toml"))).unwrap();
        let policies = repo_root().join("policies");
        let manifest = manifest.replace(
            "policy = \"../policies/",
            &format!("policy = \"{}/", policies.display()),
        );
        let manifest = format!("{manifest}\n[data.s3]\n{s3}");
        std::fs::write(dir.path().join(format!("{pool}.toml")), manifest).unwrap();
        std::fs::copy(
            repo.join(format!("{pool}.ttl")),
            dir.path().join(format!("{pool}.ttl")),
        )
        .unwrap();
    }
    dir
}

#[test]
fn an_s3_connector_releases_what_the_same_local_files_release() {
    let Some(binary) = s3s_fs() else {
        return;
    };
    // The reference: the demo node reading its generated files locally.
    let local = TestNode::start(Options {
        demo: true,
        ..Options::default()
    });
    let server = S3Server::start(&binary);
    let pool = local.data_dir.join("pools/health");
    let mut uploaded = 0;
    for entry in std::fs::read_dir(&pool).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "parquet") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            server.put(&format!("health/{name}"), &std::fs::read(&path).unwrap());
            uploaded += 1;
        }
    }
    assert!(uploaded > 1, "the health pool has several files");
    // The mobility pool, hive-partitioned: its files split between two `batch=` folders.
    let mut files: Vec<PathBuf> = std::fs::read_dir(local.data_dir.join("pools/mobility"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    assert!(files.len() > 1, "the mobility pool has several files");
    for (i, path) in files.iter().enumerate() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let batch = i % 2;
        server.put(
            &format!("mobility/batch={batch}/{name}"),
            &std::fs::read(path).unwrap(),
        );
    }
    // A file beside the prefix that the connector must never see.
    server.put(
        "healthcare-other/private.parquet",
        b"not for this connector",
    );
    let connectors = s3_connectors(&server.endpoint, "health");
    let remote = TestNode::start(Options {
        demo: true,
        args: vec![
            "--connectors".into(),
            connectors.path().display().to_string(),
        ],
        env: vec![
            ("AGORA_TEST_S3_KEY".into(), KEY.into()),
            ("AGORA_TEST_S3_SECRET".into(), SECRET.into()),
        ],
        ..Options::default()
    });

    let (local_stream, local_shards, pseudonymised) = release(&local, "s3-alice", "health");
    let (remote_stream, remote_shards, remote_pseudonymised) =
        release(&remote, "s3-alice", "health");
    assert_eq!(pseudonymised, remote_pseudonymised);
    assert!(!pseudonymised.is_empty(), "the health policy pseudonymises");
    let expected = rows(&local_stream, &pseudonymised);
    assert!(expected.1.len() > 20_000, "the whole enforced view");
    let streamed = rows(&remote_stream, &pseudonymised);
    assert_eq!(streamed.0, expected.0, "the same released columns");
    assert!(
        streamed.1 == expected.1,
        "the S3 stream differs from the local one"
    );
    let sharded = rows(&remote_shards, &pseudonymised);
    assert!(
        sharded.1 == expected.1,
        "the S3 shards differ from the local stream"
    );
    assert!(
        rows(&local_shards, &pseudonymised).1 == expected.1,
        "local shards"
    );
    // Pseudonyms are there (and of the same form), only keyed differently.
    let all = rows(&remote_stream, &[]);
    assert_eq!(all.0.len(), expected.0.len() + pseudonymised.len());

    // Hive partitions: the folder key becomes a released column, the rest is the local view.
    let (local_mobility, _, mobility_pseudonymised) = release(&local, "s3-carol", "mobility");
    let (remote_mobility, remote_mobility_shards, _) = release(&remote, "s3-carol", "mobility");
    let mut skip = mobility_pseudonymised.clone();
    let expected = rows(&local_mobility, &skip);
    skip.push("batch".to_owned());
    let streamed = rows(&remote_mobility, &skip);
    assert_eq!(streamed.0, expected.0, "the files' columns");
    assert!(
        streamed.1 == expected.1,
        "the hive-partitioned S3 stream differs from the local one"
    );
    assert!(rows(&remote_mobility_shards, &skip).1 == expected.1);
    let mut batches: Vec<String> = remote_mobility
        .iter()
        .flat_map(|b| {
            let column = b.column_by_name("batch").expect("the partition column");
            let options = FormatOptions::default();
            let format = ArrayFormatter::try_new(column.as_ref(), &options).expect("fmt");
            (0..b.num_rows())
                .map(|i| format.value(i).to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    batches.sort();
    batches.dedup();
    assert_eq!(batches, ["0", "1"]);

    // Wrong credentials: the request fails with a clear source error, no secret in it, and the
    // node keeps serving.
    let (agreement, _, token) = pull_rights(&remote, "s3-bob", "climate");
    let refused = remote.get(
        &format!("/data/{agreement}/arrow"),
        &[("Authorization", &bearer(&token))],
    );
    let problem = refused.assert_problem(422);
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("cannot be read"), "{detail}");
    assert!(
        !detail.contains("not-the-secret-xyzzy"),
        "a secret leaked: {detail}"
    );
    assert!(!detail.contains(SECRET), "a secret leaked: {detail}");
    let mut remote = remote;
    remote.assert_healthy();
}

#[test]
fn an_s3_prefix_that_climbs_out_of_its_folder_is_refused() {
    // Refused when the manifest loads, before anything is contacted: no server needed.
    let connectors = s3_connectors("http://127.0.0.1:9", "health/../healthcare-other");
    let data = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_agora"))
        .args([
            "serve",
            "--demo",
            "--bind",
            "127.0.0.1:0",
            "--log-format",
            "text",
        ])
        .arg("--data-dir")
        .arg(data.path())
        .arg("--connectors")
        .arg(connectors.path())
        .env("AGORA_TEST_S3_KEY", KEY)
        .env("AGORA_TEST_S3_SECRET", SECRET)
        .stdin(Stdio::null())
        .output()
        .expect("agora runs");
    assert!(
        !output.status.success(),
        "a node started on an escaping prefix"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("prefix") && stderr.contains(".."),
        "the refusal names the prefix: {stderr}"
    );
    assert!(!stderr.contains(SECRET), "a secret leaked: {stderr}");
}
