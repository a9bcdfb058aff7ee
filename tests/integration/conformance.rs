//! Conformance against the official files in `../shared/reference`: every catalogue export,
//! in every RDF syntax, validates with pySHACL against the SEMIC DCAT-AP 3.0.1 shapes (and the
//! sector profiles for the health and mobility pools).

use crate::common::{Options, TestNode, reference_dir, repo_root};
use std::path::PathBuf;
use std::process::Command;

/// The Python with pySHACL (`AGORA_PYTHON`, set by `scripts/test.sh`), or a skip line.
fn python() -> Option<PathBuf> {
    let python = std::env::var_os("AGORA_PYTHON").map(PathBuf::from);
    match python {
        Some(p) if p.exists() => Some(p),
        _ => {
            eprintln!(
                "SKIP pySHACL conformance: AGORA_PYTHON is not set to a venv with tests/conformance/requirements.txt (scripts/setup.sh makes one)"
            );
            None
        }
    }
}

fn validate(python: &PathBuf, shapes: &str, format: &str, urls: &[String]) -> (bool, String) {
    // Official shapes that no data can satisfy are listed, with reasons, in skips/<set>.txt.
    let skips = repo_root().join(format!("tests/conformance/skips/{shapes}.txt"));
    let output = Command::new(python)
        .arg(repo_root().join("tests/conformance/validate_shacl.py"))
        .args(["--shapes", shapes, "--format", format])
        .args(
            skips
                .exists()
                .then(|| ["--skip-file".into(), skips.display().to_string()])
                .into_iter()
                .flatten(),
        )
        .args(urls)
        .output()
        .expect("python runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn every_export_validates_against_the_official_shapes() {
    let (Some(_reference), Some(python)) = (reference_dir("pySHACL conformance"), python()) else {
        return;
    };
    let node = TestNode::start(Options {
        demo: true,
        ..Options::default()
    });
    crate::catalog::publish_fixture(&node, "grid-operator");
    let ids: Vec<String> = node.get("/api/datasets?limit=100", &[]).json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(ids.len(), 4);
    let mut summary = Vec::new();
    for (format, short) in [
        ("turtle", "ttl"),
        ("json-ld", "jsonld"),
        ("nt", "nt"),
        ("xml", "rdf"),
    ] {
        let mut urls: Vec<String> = ids
            .iter()
            .map(|id| format!("{}/api/datasets/{id}?format={short}", node.url))
            .collect();
        urls.push(format!("{}/catalog?format={short}", node.url));
        let (ok, report) = validate(&python, "dcat-ap", format, &urls);
        assert!(
            ok,
            "DCAT-AP 3.0.1 violations in {format} exports:\n{report}"
        );
        summary.push(report.lines().last().unwrap_or_default().to_owned());
        for (pool, shapes) in [("health", "healthdcat-ap"), ("mobility", "mobilitydcat-ap")] {
            let url = format!("{}/api/datasets/{pool}?format={short}", node.url);
            let (ok, report) = validate(&python, shapes, format, &[url]);
            assert!(
                ok,
                "{shapes} violations in the {pool} {format} export:\n{report}"
            );
            summary.push(report.lines().last().unwrap_or_default().to_owned());
        }
    }
    eprintln!("pySHACL conformance:\n{}", summary.join("\n"));
}
