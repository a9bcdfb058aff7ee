//! Storage faults (SECURITY.md matrix R40): the data directory fills up while holders publish.
//! The node answers `507 insufficient-storage` (never a bare 500, never a crash), keeps
//! serving what it has, and publishes again once space returns.
//!
//! The data directory is a small `tmpfs`, so the test needs the right to mount (root, as in
//! this project's CI container); without it the test says so and passes vacuously.

use crate::common::{Options, TestNode, fixture};
use agora::identity::Role;
use std::path::Path;
use std::process::Command;

fn mount_tmpfs(at: &Path, megabytes: u32) -> bool {
    Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
        .arg(at)
        .status()
        .is_ok_and(|s| s.success())
}

/// Unmounts when the test ends, however it ends.
struct Mount<'a>(&'a Path);

impl Drop for Mount<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0).status();
    }
}

fn publish(node: &TestNode, token: &str, n: usize) -> crate::common::Response {
    let body = String::from_utf8(fixture("dataset.ttl"))
        .expect("utf8")
        .replace("grid-load-2024", &format!("full-{n}"));
    node.send(
        "POST",
        "/api/datasets",
        &[
            ("content-type", "text/turtle"),
            ("authorization", &format!("Bearer {token}")),
        ],
        body.as_bytes(),
    )
}

/// Fills the file system at `dir` with one file until the OS refuses a byte more.
fn fill(dir: &Path) -> std::path::PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).expect("filler");
    let block = vec![0u8; 64 << 10];
    while file.write_all(&block).is_ok() {}
    while file.write_all(&block[..512]).is_ok() {}
    let _ = file.sync_all();
    path
}

#[test]
fn a_full_disk_answers_507_and_publishing_resumes_when_space_returns() {
    let root = tempfile::tempdir().expect("temp dir");
    let data = root.path().join("data");
    std::fs::create_dir_all(&data).expect("dir");
    if !mount_tmpfs(&data, 256) {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root); R40 is not exercised");
        return;
    }
    let _mount = Mount(&data);
    let mut node = TestNode::start_in(&data, Options::default());
    let token = node.token("grid-operator", Role::Holder, &[]);
    let first = publish(&node, &token, 0);
    assert_eq!(first.status, 201, "{}", first.text());
    let id =
        |response: &crate::common::Response| response.json()["id"].as_str().expect("id").to_owned();
    let mut acknowledged = vec![id(&first)];

    let filler = fill(&data);
    let mut refused = None;
    for n in 1..200 {
        let response = publish(&node, &token, n);
        match response.status {
            201 => acknowledged.push(id(&response)),
            _ => {
                refused = Some(response);
                break;
            }
        }
    }
    let refused = refused.expect("200 publishes fit on a full disk");
    let problem = refused.assert_problem(507);
    assert_eq!(
        problem["type"]
            .as_str()
            .map(|t| t.ends_with("insufficient-storage")),
        Some(true),
        "{problem}"
    );
    assert!(refused.header("retry-after").is_some());
    assert!(node.is_alive(), "the node died of a full disk");
    assert_eq!(node.get("/health", &[]).status, 200);
    assert_eq!(
        node.get(&format!("/api/datasets/{}", acknowledged[0]), &[])
            .status,
        200
    );

    std::fs::remove_file(&filler).expect("free space");
    // Space is back: publishing works again, at once or after the node is restarted.
    let mut resumed = publish(&node, &token, 1000).status == 201;
    // RocksDB stops writing after a write error until the store is opened again, so today
    // publishing resumes only after a restart (docs/SECURITY.md, R40).
    eprintln!("publishing resumed without a restart: {resumed}");
    if !resumed {
        node.terminate();
        node.start_again();
        resumed = publish(&node, &token, 1001).status == 201;
    }
    assert!(resumed, "publishing does not resume once space returns");
    node.kill9_and_restart();
    for id in &acknowledged {
        assert_eq!(
            node.get(&format!("/api/datasets/{id}"), &[]).status,
            200,
            "dataset {id} acknowledged before the disk filled is gone"
        );
    }
}
