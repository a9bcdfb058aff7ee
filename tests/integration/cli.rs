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

#[test]
fn configuration_comes_from_file_then_environment_then_flags() {
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("agora.toml");
    std::fs::write(
        &config,
        "public_url = \"https://file.example\"\n[sparql]\ntimeout_ms = 5000\n[limits]\nmax_body_bytes = 100000\n",
    )
    .expect("config");
    let file_only = TestNode::start(Options {
        args: vec!["--config".into(), config.display().to_string()],
        ..Options::default()
    });
    let token = file_only.token("h", agora::identity::Role::Holder, &[]);
    let blank = String::from_utf8(crate::common::fixture("dataset.ttl"))
        .expect("utf8")
        .replace(
            "<https://energy.example/datasets/grid-load-2024>\n    a dcat:Dataset",
            "_:d\n    a dcat:Dataset",
        );
    let response = file_only.send(
        "POST",
        "/api/datasets",
        &[
            ("content-type", "text/turtle"),
            ("authorization", &format!("Bearer {token}")),
        ],
        blank.as_bytes(),
    );
    assert_eq!(response.status, 201, "{}", response.text());
    assert!(
        response.json()["iri"]
            .as_str()
            .unwrap_or_default()
            .starts_with("https://file.example/datasets/")
    );
    // The file's body cap applies.
    let big = vec![b' '; 200_000];
    file_only
        .send(
            "POST",
            "/api/datasets",
            &[
                ("content-type", "text/turtle"),
                ("authorization", &format!("Bearer {token}")),
            ],
            &big,
        )
        .assert_problem(413);

    let env_over_file = TestNode::start(Options {
        args: vec!["--config".into(), config.display().to_string()],
        env: vec![("AGORA_PUBLIC_URL".into(), "https://env.example".into())],
        ..Options::default()
    });
    let token = env_over_file.token("h", agora::identity::Role::Holder, &[]);
    let response = env_over_file.send(
        "POST",
        "/api/datasets",
        &[
            ("content-type", "text/turtle"),
            ("authorization", &format!("Bearer {token}")),
        ],
        blank.as_bytes(),
    );
    assert!(
        response.json()["iri"]
            .as_str()
            .unwrap_or_default()
            .starts_with("https://env.example/datasets/")
    );

    let flag_over_env = TestNode::start(Options {
        args: vec![
            "--config".into(),
            config.display().to_string(),
            "--public-url".into(),
            "https://flag.example".into(),
        ],
        env: vec![("AGORA_PUBLIC_URL".into(), "https://env.example".into())],
        ..Options::default()
    });
    let token = flag_over_env.token("h", agora::identity::Role::Holder, &[]);
    let response = flag_over_env.send(
        "POST",
        "/api/datasets",
        &[
            ("content-type", "text/turtle"),
            ("authorization", &format!("Bearer {token}")),
        ],
        blank.as_bytes(),
    );
    assert!(
        response.json()["iri"]
            .as_str()
            .unwrap_or_default()
            .starts_with("https://flag.example/datasets/")
    );

    std::fs::write(&config, "bind = 42\n").expect("config");
    let bad = agora(&["serve", "--config", &config.display().to_string()]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("invalid"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[test]
fn sigterm_shuts_down_gracefully_and_keeps_the_data() {
    let mut node = TestNode::start(Options::default());
    crate::catalog::publish_fixture(&node, "h");
    let status = node.terminate();
    assert!(status.success(), "exit status {status:?}");
}
