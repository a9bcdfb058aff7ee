//! The Python client (`clients/python`, package `agora_client`) against a real demo node: the
//! researcher's journey end to end (search with facets, SPARQL, negotiation and refusal,
//! governed Arrow reads checked with pyarrow, problem details) and interoperability with
//! SPARQLWrapper and rdflib's SPARQLStore, all in one pytest run.

use crate::common::{Options, TestNode, repo_root};
use agora::identity::Role;
use std::path::PathBuf;
use std::process::Command;

/// The venv's Python (`AGORA_PYTHON`, set by `scripts/test.sh`), or a skip line.
fn python() -> Option<PathBuf> {
    match std::env::var_os("AGORA_PYTHON").map(PathBuf::from) {
        Some(p) if p.exists() => Some(p),
        _ => {
            eprintln!(
                "SKIP Python client: AGORA_PYTHON is not set to a venv with tests/conformance/requirements.txt and clients/python installed (scripts/setup.sh makes one)"
            );
            None
        }
    }
}

#[test]
fn the_python_client_passes_its_suite_against_a_demo_node() {
    let Some(python) = python() else {
        return;
    };
    let node = TestNode::start(Options {
        demo: true,
        ..Options::default()
    });
    let researcher = node.token(
        "python-researcher",
        Role::Researcher,
        &[("country", "DE"), ("org_type", "university")],
    );
    let holder = node.token(agora::node::DEMO_HOLDER, Role::Holder, &[]);
    let output = Command::new(&python)
        .args(["-m", "pytest", "clients/python/tests", "-q", "-rs"])
        .args(["-p", "no:cacheprovider"])
        .current_dir(repo_root())
        .env("AGORA_URL", &node.url)
        .env("AGORA_TOKEN", &researcher)
        .env("AGORA_HOLDER_TOKEN", &holder)
        // This checkout's client, even where the venv's editable install points elsewhere.
        .env("PYTHONPATH", repo_root().join("clients/python/src"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("python runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "pytest clients/python/tests failed ({}):\n{text}",
        output.status
    );
    eprintln!(
        "Python client: {}",
        text.lines().last().unwrap_or_default().trim()
    );
}
