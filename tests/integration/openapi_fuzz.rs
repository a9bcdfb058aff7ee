//! Schemathesis against the node's `/openapi.json`: thousands of generated requests (valid
//! and invalid, including stateful sequences along the inferred links), as a researcher, as a
//! holder and, on the data plane, with a real data-plane token and agreement. Every answer
//! must be free of server errors (5xx) and match the documented schema and content type.
//! Schemathesis lives in its own venv (`AGORA_SCHEMATHESIS`, default
//! `~/.cache/agora-venv-schemathesis/bin/schemathesis`, made by `scripts/setup.sh`).

use crate::common::{Options, TestNode, repo_root};
use agora::identity::Role;
use serde_json::json;
use std::path::PathBuf;
use std::process::Command;

/// The checks every generated case must pass: no 5xx; bodies, content types and status codes
/// as documented; 405 with `Allow` for undeclared methods; no operation that ignores a missing
/// or wrong token; nothing answered after its DELETE.
const CHECKS: &str = "not_a_server_error,response_schema_conformance,content_type_conformance,\
     status_code_conformance,unsupported_method,ignored_auth,use_after_free";

/// The data-plane operations fuzzed with a real agreement and token.
const DATA_PLANE: &str = "^/data/";

pub(crate) fn schemathesis() -> Option<PathBuf> {
    let path = std::env::var_os("AGORA_SCHEMATHESIS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| {
                PathBuf::from(home).join(".cache/agora-venv-schemathesis/bin/schemathesis")
            })
        });
    match path {
        Some(p) if p.exists() => Some(p),
        _ => {
            eprintln!(
                "SKIP schemathesis: no schemathesis venv (AGORA_SCHEMATHESIS, or ~/.cache/agora-venv-schemathesis made by scripts/setup.sh)"
            );
            None
        }
    }
}

/// One schemathesis run; answers how many cases it generated, panics on any failure.
fn run(tool: &PathBuf, dir: &std::path::Path, node: &TestNode, name: &str, args: &[&str]) -> u64 {
    let output = Command::new(tool)
        .arg("--config-file")
        .arg(dir.join("schemathesis.toml"))
        .arg("run")
        .arg(format!("{}/openapi.json", node.url))
        // One worker: with several threads, CPython 3.11.7's ast.parse (Hypothesis describes
        // its lambdas with it) fails with "AST constructor recursion depth mismatch".
        .args(["--checks", CHECKS, "--no-color", "--workers", "1"])
        .args(["--generation-database", "none"])
        .args(args)
        .current_dir(dir)
        .env(
            "PYTHONPATH",
            repo_root().join("tests/conformance/schemathesis"),
        )
        .env("SCHEMATHESIS_HOOKS", "agora_hooks")
        .output()
        .expect("schemathesis runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "schemathesis ({name}) found failures ({}):\n{text}",
        output.status
    );
    let generated = text
        .lines()
        .find_map(|l| {
            let (n, _) = l.trim().split_once(" generated,")?;
            n.trim().parse::<u64>().ok()
        })
        .unwrap_or_else(|| panic!("no case count in the output of {name}:\n{text}"));
    eprintln!("schemathesis {name}: {generated} cases, no failures");
    generated
}

#[test]
fn schemathesis_finds_no_server_errors_nor_schema_violations() {
    let Some(tool) = schemathesis() else {
        return;
    };
    let node = TestNode::start(Options {
        demo: true,
        ..Options::default()
    });
    let researcher = node.token(
        "fuzz-researcher",
        Role::Researcher,
        &[("country", "DE"), ("org_type", "university")],
    );
    let holder = node.token(agora::node::DEMO_HOLDER, Role::Holder, &[]);
    // A real agreement and data-plane token for the /data/ operations.
    let bearer = format!("Bearer {researcher}");
    let json_headers = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/json"),
    ];
    let agreed = node.send(
        "POST",
        "/api/negotiations",
        &json_headers,
        json!({"dataset": "mobility", "purpose": "dpv:ScientificResearch"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(agreed.status, 201, "{}", agreed.text());
    let agreement = agreed.json()["agreement"]["id"]
        .as_str()
        .expect("agreement id")
        .to_owned();
    let started = node.send(
        "POST",
        "/api/transfers",
        &json_headers,
        json!({"agreement": agreement}).to_string().as_bytes(),
    );
    assert_eq!(started.status, 201, "{}", started.text());
    let data_token = started.json()["token"].as_str().expect("token").to_owned();

    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("schemathesis.toml"),
        format!(
            "[[operations]]\ninclude-path-regex = \"^/data/\"\nparameters = {{ \"path.agreement\" = \"{agreement}\" }}\nheaders = {{ Authorization = \"Bearer {data_token}\" }}\n"
        ),
    )
    .expect("config");
    let researcher_header = format!("Authorization: Bearer {researcher}");
    let holder_header = format!("Authorization: Bearer {holder}");
    let mut cases = 0;
    cases += run(
        &tool,
        dir.path(),
        &node,
        "data plane",
        &[
            "--include-path-regex",
            DATA_PLANE,
            "-n",
            "40",
            "--seed",
            "1",
        ],
    );
    cases += run(
        &tool,
        dir.path(),
        &node,
        "researcher",
        &[
            "--exclude-path-regex",
            "^/data/",
            "-H",
            &researcher_header,
            "-n",
            "60",
            "--seed",
            "2",
        ],
    );
    // Last: the holder may change and delete the demo datasets.
    cases += run(
        &tool,
        dir.path(),
        &node,
        "holder",
        &[
            "--exclude-path-regex",
            "^/data/",
            "-H",
            &holder_header,
            "-n",
            "60",
            "--seed",
            "3",
        ],
    );
    assert!(cases >= 2000, "only {cases} cases were generated");
    eprintln!("schemathesis: {cases} cases in all, 0 server errors, 0 schema violations");
}

/// The document lists the refusals every operation can answer (the node's shared extractors
/// and error handlers): 400 where it takes input, 401 and 403 where it needs a token, 404 where
/// the path names a resource, 415 where it takes a body. Schemathesis found them missing.
#[test]
fn every_operation_documents_the_refusals_it_can_answer() {
    let node = TestNode::start(Options::default());
    let doc = node.get("/openapi.json", &[]).json();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let Some(responses) = op.get("responses").and_then(|r| r.as_object()) else {
                continue;
            };
            let has = |status: &str| responses.contains_key(status);
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let in_path = params.iter().any(|p| p["in"] == "path");
            let body = op.get("requestBody").is_some();
            let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
            let what = format!("{method} {path}");
            if !params.is_empty() || body {
                assert!(has("400"), "{what} does not document 400");
            }
            if secured {
                assert!(
                    has("401") && has("403"),
                    "{what} does not document 401 and 403"
                );
            }
            if in_path {
                assert!(has("404"), "{what} does not document 404");
            }
            if body {
                assert!(has("415"), "{what} does not document 415");
            }
            let problem = &responses
                .get("401")
                .map(|r| r["content"]["application/problem+json"]["schema"]["$ref"].clone());
            if let Some(reference) = problem {
                assert_eq!(reference, "#/components/schemas/Problem", "{what}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 25, "only {checked} operations");
}

/// Found by Schemathesis: a 405 answered as problem+json lost actix's `Allow` header, which
/// RFC 9110 requires.
#[test]
fn a_405_names_the_allowed_methods() {
    let node = TestNode::start(Options::default());
    let answer = node.send("TRACE", "/health", &[], b"");
    assert_eq!(answer.status, 405, "{}", answer.text());
    assert_eq!(answer.header("Allow"), Some("GET"));
    assert!(
        answer
            .header("Content-Type")
            .is_some_and(|c| c.starts_with("application/problem+json"))
    );
    let answer = node.send("DELETE", "/api/datasets", &[], b"");
    assert_eq!(answer.status, 405);
    let allow = answer.header("Allow").expect("Allow");
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
}

/// Found by Schemathesis: `null`, which the document allows as the optional note's body of the
/// negotiation and transfer actions, was refused with 400.
#[test]
fn a_null_note_is_no_note() {
    let node = TestNode::start(Options {
        demo: true,
        ..Options::default()
    });
    let researcher = node.token(
        "null-note",
        Role::Researcher,
        &[("country", "DE"), ("org_type", "university")],
    );
    let bearer = format!("Bearer {researcher}");
    let headers = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/json"),
    ];
    let agreed = node.send(
        "POST",
        "/api/negotiations",
        &headers,
        json!({"dataset": "mobility", "purpose": "dpv:ScientificResearch"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(agreed.status, 201, "{}", agreed.text());
    let agreement = agreed.json()["agreement"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let started = node.send(
        "POST",
        "/api/transfers",
        &headers,
        json!({ "agreement": agreement }).to_string().as_bytes(),
    );
    assert_eq!(started.status, 201, "{}", started.text());
    let transfer = started.json()["id"].as_str().expect("id").to_owned();
    let completed = node.send(
        "POST",
        &format!("/api/transfers/{transfer}/complete"),
        &headers,
        b"null",
    );
    assert_eq!(completed.status, 200, "{}", completed.text());
    assert_eq!(completed.json()["state"], "COMPLETED");
    let refused = node.send(
        "POST",
        &format!("/api/transfers/{transfer}/terminate"),
        &headers,
        b"[1]",
    );
    assert!(
        refused.status == 400 || refused.status == 409,
        "{}",
        refused.text()
    );
}

/// Found by Schemathesis: an aggregate without `group_by` (one cell, the whole released view)
/// failed in DataFusion's optimizer on its empty ORDER BY and was answered as 422 "the
/// dataset's files cannot be read".
#[test]
fn an_aggregate_without_groups_is_one_cell() {
    let node = TestNode::start(Options {
        demo: true,
        ..Options::default()
    });
    let researcher = node.token(
        "one-cell",
        Role::Researcher,
        &[("country", "DE"), ("org_type", "university")],
    );
    let bearer = format!("Bearer {researcher}");
    let headers = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/json"),
    ];
    let agreed = node.send(
        "POST",
        "/api/negotiations",
        &headers,
        json!({"dataset": "mobility", "purpose": "dpv:ScientificResearch"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(agreed.status, 201, "{}", agreed.text());
    let agreement = agreed.json()["agreement"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let started = node.send(
        "POST",
        "/api/transfers",
        &headers,
        json!({ "agreement": agreement }).to_string().as_bytes(),
    );
    assert_eq!(started.status, 201, "{}", started.text());
    let token = format!(
        "Bearer {}",
        started.json()["token"].as_str().expect("token")
    );
    for query in ["", "?where=", "?measures=sum:distance_km"] {
        let answer = node.get(
            &format!("/data/{agreement}/aggregate{query}"),
            &[("Authorization", &token)],
        );
        assert_eq!(answer.status, 200, "{query}: {}", answer.text());
        let cells = answer.json()["cells"].as_array().expect("cells").clone();
        assert_eq!(cells.len(), 1, "{query}");
        assert_eq!(cells[0]["count"], 300000, "{query}");
    }
}
