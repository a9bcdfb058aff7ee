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

/// Publishes a blank-node dataset and returns the IRI the node minted for it.
fn minted_iri(node: &TestNode) -> String {
    let token = node.token("h", agora::identity::Role::Holder, &[]);
    let blank = String::from_utf8(crate::common::fixture("dataset.ttl"))
        .expect("utf8")
        .replace(
            "<https://energy.example/datasets/grid-load-2024>\n    a dcat:Dataset",
            "_:d\n    a dcat:Dataset",
        );
    let response = node.send(
        "POST",
        "/api/datasets",
        &[
            ("content-type", "text/turtle"),
            ("authorization", &format!("Bearer {token}")),
        ],
        blank.as_bytes(),
    );
    assert_eq!(response.status, 201, "{}", response.text());
    response.json()["iri"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
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
    let with_config = |extra: &[&str], env: &[(&str, &str)]| {
        let mut args = vec!["--config".to_owned(), config.display().to_string()];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        TestNode::start(Options {
            args,
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..Options::default()
        })
    };

    let file_only = with_config(&[], &[]);
    assert!(minted_iri(&file_only).starts_with("https://file.example/datasets/"));
    // The file's body cap applies.
    let token = file_only.token("h", agora::identity::Role::Holder, &[]);
    file_only
        .send(
            "POST",
            "/api/datasets",
            &[
                ("content-type", "text/turtle"),
                ("authorization", &format!("Bearer {token}")),
            ],
            &vec![b' '; 200_000],
        )
        .assert_problem(413);

    let env = [("AGORA_PUBLIC_URL", "https://env.example")];
    let env_over_file = with_config(&[], &env);
    assert!(minted_iri(&env_over_file).starts_with("https://env.example/datasets/"));
    let flag_over_env = with_config(&["--public-url", "https://flag.example"], &env);
    assert!(minted_iri(&flag_over_env).starts_with("https://flag.example/datasets/"));

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
    let id = crate::catalog::publish_fixture(&node, "h");
    let status = node.terminate();
    assert!(status.success(), "exit status {status:?}");
    node.start_again();
    let response = node.get(&format!("/api/datasets/{id}"), &[("accept", "text/turtle")]);
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        node.get("/api/datasets?q=electricity", &[]).json()["total"],
        1
    );
}
