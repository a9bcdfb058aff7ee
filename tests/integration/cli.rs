//! The command line: `token issue`, `publish`, `query`, and clear errors for bad input.

use crate::common::{Options, TestNode, repo_root};
use std::process::Command;

fn agora(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(args)
        .output()
        .expect("runs")
}

#[test]
fn token_publish_and_query_round_trip() {
    let node = TestNode::start(Options::default());
    let data_dir = node.data_dir.display().to_string();
    let issued = agora(&[
        "token",
        "issue",
        "--data-dir",
        &data_dir,
        "--sub",
        "hospital-a",
        "--role",
        "holder",
        "--claim",
        "country=DE",
        "--claim",
        "org_type=hospital",
    ]);
    assert!(
        issued.status.success(),
        "{}",
        String::from_utf8_lossy(&issued.stderr)
    );
    let token = String::from_utf8(issued.stdout)
        .expect("utf8")
        .trim()
        .to_owned();
    assert_eq!(token.split('.').count(), 3);

    let fixture = repo_root().join("tests/fixtures/dataset.ttl");
    let published = agora(&[
        "publish",
        &fixture.display().to_string(),
        "--url",
        &node.url,
        "--token",
        &token,
    ]);
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );
    assert!(String::from_utf8_lossy(&published.stdout).contains("\"id\""));

    let queried = agora(&[
        "query",
        "SELECT ?t WHERE { ?d <http://purl.org/dc/terms/title> ?t }",
        "--url",
        &node.url,
    ]);
    assert!(
        queried.status.success(),
        "{}",
        String::from_utf8_lossy(&queried.stderr)
    );
    assert!(String::from_utf8_lossy(&queried.stdout).contains("Hourly electricity grid load 2024"));
}

#[test]
fn cli_errors_say_what_to_fix() {
    let node = TestNode::start(Options::default());
    let data_dir = node.data_dir.display().to_string();
    let bad_role = agora(&[
        "token",
        "issue",
        "--data-dir",
        &data_dir,
        "--sub",
        "x",
        "--role",
        "emperor",
    ]);
    assert!(!bad_role.status.success());
    assert!(
        String::from_utf8_lossy(&bad_role.stderr).contains("holder, researcher, trainer or admin")
    );
    let bad_claim = agora(&[
        "token",
        "issue",
        "--data-dir",
        &data_dir,
        "--sub",
        "x",
        "--role",
        "holder",
        "--claim",
        "aud=other",
    ]);
    assert!(!bad_claim.status.success());
    assert!(String::from_utf8_lossy(&bad_claim.stderr).contains("invalid claim"));

    let refused = agora(&[
        "publish",
        "/nonexistent/file.ttl",
        "--url",
        &node.url,
        "--token",
        "x",
    ]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("cannot read"));
    let unauthorized = agora(&[
        "publish",
        &repo_root()
            .join("tests/fixtures/dataset.ttl")
            .display()
            .to_string(),
        "--url",
        &node.url,
        "--token",
        "x",
    ]);
    assert!(!unauthorized.status.success());
    assert!(String::from_utf8_lossy(&unauthorized.stderr).contains("401"));
    let bad_query = agora(&["query", "SELEKT", "--url", &node.url]);
    assert!(!bad_query.status.success());
    assert!(String::from_utf8_lossy(&bad_query.stderr).contains("400"));
    let bad_config = agora(&["serve", "--config", "/nonexistent/agora.toml"]);
    assert!(!bad_config.status.success());
    assert!(String::from_utf8_lossy(&bad_config.stderr).contains("configuration file"));
}
