//! The Python client (`clients/python`, package `agora_client`) against a real demo node: the
//! researcher's journey end to end (search with facets, SPARQL, negotiation and refusal,
//! governed Arrow reads checked with pyarrow, problem details), the training side (shard
//! plans, verified resumable downloads, 4 ranks x 2 workers seeing every sample once per epoch,
//! exact resume), the examples, and interoperability with SPARQLWrapper, rdflib's SPARQLStore
//! and Hugging Face `datasets` streaming the shard URLs, all in one pytest run; then the PyTorch
//! integration (a real DataLoader with 2 worker processes) in the torch venv.

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

/// The torch venv's Python (`AGORA_TORCH_PYTHON`, default `~/.cache/agora-venv-torch`, made by
/// `scripts/setup.sh`), or a skip line.
fn torch_python() -> Option<PathBuf> {
    let path = std::env::var_os("AGORA_TORCH_PYTHON")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|home| PathBuf::from(home).join(".cache/agora-venv-torch/bin/python"))
        });
    match path {
        Some(p) if p.exists() => Some(p),
        _ => {
            eprintln!(
                "SKIP Python client with torch: no torch venv (AGORA_TORCH_PYTHON, or ~/.cache/agora-venv-torch made by scripts/setup.sh)"
            );
            None
        }
    }
}

/// Runs pytest on `tests` with `python` against a fresh demo node; panics with its output
/// when it fails.
fn pytest(python: &PathBuf, tests: &str) -> String {
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
    let output = Command::new(python)
        .args(["-m", "pytest", tests, "-q", "-rs"])
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
        "pytest {tests} failed ({}):\n{text}",
        output.status
    );
    text.lines().last().unwrap_or_default().trim().to_owned()
}

#[test]
fn the_python_client_passes_its_suite_against_a_demo_node() {
    let Some(python) = python() else {
        return;
    };
    eprintln!("Python client: {}", pytest(&python, "clients/python/tests"));
}

#[test]
fn the_python_client_feeds_a_torch_dataloader_with_two_workers() {
    let Some(python) = torch_python() else {
        return;
    };
    let summary = pytest(&python, "clients/python/tests/test_torch.py");
    // Without torch the module is skipped whole: then nothing passes.
    assert!(
        summary.contains(" passed"),
        "torch tests did not run: {summary}"
    );
    eprintln!("Python client with torch: {summary}");
}
