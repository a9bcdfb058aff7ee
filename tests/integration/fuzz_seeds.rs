//! The fuzz targets' bodies (`fuzz/src/bodies.rs`, shared with `cargo fuzz`) in the ordinary
//! test build: every committed seed (`fuzz/seeds/<target>/`) must hold, and a deterministic
//! mutation loop (not coverage-guided; `cargo fuzz` is) runs each target on mutants of its
//! seeds. `AGORA_FUZZ_EXECS` sets the mutants per target (default 500); `AGORA_FUZZ_SEED`
//! replays a run. A failing input is written to `$CARGO_TARGET_TMPDIR/fuzz-failures/`.
//! `AGORA_FUZZ_WRITE_SEEDS=1` (re)writes the computed seeds into `fuzz/seeds/`.

#[path = "../../fuzz/src/bodies.rs"]
#[allow(dead_code)]
mod bodies;

use crate::common::Rng;
use std::path::{Path, PathBuf};

fn seeds_dir() -> PathBuf {
    crate::common::repo_root().join("fuzz/seeds")
}

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(seeds_dir().join(target)) {
        for entry in entries.flatten() {
            if let Ok(bytes) = std::fs::read(entry.path()) {
                found.push((entry.file_name().to_string_lossy().into_owned(), bytes));
            }
        }
    }
    for (name, file, bytes) in bodies::generated_seeds() {
        if name == target {
            found.push((file.to_owned(), bytes));
        }
    }
    found.sort();
    found
}

/// Runs `body` on `input`; on a panic, keeps the input and fails with where it is.
fn run(target: &str, label: &str, body: fn(&[u8]), input: &[u8]) {
    if let Err(panic) = std::panic::catch_unwind(|| body(input)) {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(format!("{target}-{label}"));
        let _ = std::fs::write(&path, input);
        // Back to the default hook, so that this message is printed.
        let _ = std::panic::take_hook();
        panic!(
            "fuzz target `{target}` failed on {label}: {message}\ninput kept in {} \
             (replay: cargo fuzz run {target} {0})",
            path.display()
        );
    }
}

#[test]
fn fuzz_seeds_hold_for_every_target() {
    if std::env::var("AGORA_FUZZ_WRITE_SEEDS").is_ok_and(|v| v == "1") {
        for (target, file, bytes) in bodies::generated_seeds() {
            let dir = seeds_dir().join(target);
            std::fs::create_dir_all(&dir).expect("seed dir");
            std::fs::write(dir.join(file), bytes).expect("seed");
        }
    }
    for (target, body) in bodies::TARGETS {
        let seeds = seeds(target);
        assert!(
            !seeds.is_empty(),
            "no seeds for `{target}` in fuzz/seeds/{target}"
        );
        for (name, bytes) in &seeds {
            run(target, name, body, bytes);
        }
    }
}

/// The new targets' seeds are not vacuous: the portal pages are read (with datasets), the
/// injected agora statements are what is dropped, and the protocol seeds reach both a
/// decoded request and every refusal.
#[test]
fn dcat_page_and_sparql_params_seeds_reach_their_code() {
    use agora::harvest_dcat::{PageSyntax, parse_page};
    use agora::rdf_input::RdfSyntax;
    let mut read = 0;
    for (name, bytes) in &seeds("dcat_page") {
        let syntax = match bytes[0] % 4 {
            0 => PageSyntax::Guarded(RdfSyntax::Turtle),
            1 => PageSyntax::Guarded(RdfSyntax::JsonLd),
            2 => PageSyntax::RdfXml,
            _ => PageSyntax::Guarded(RdfSyntax::NTriples),
        };
        let page = parse_page(
            &bytes[1..],
            syntax,
            "https://portal.fuzz.example/catalog.ttl?page=2",
            "https://portal.fuzz.example/",
        );
        if name.starts_with("ckan-") || name.starts_with("piveau-") || name.contains("injection") {
            let page = page.unwrap_or_else(|e| panic!("seed {name} is not read: {e}"));
            assert!(!page.datasets.is_empty(), "seed {name} lists no dataset");
            read += 1;
        }
    }
    assert_eq!(read, 6);
    let mut outcomes = std::collections::BTreeSet::new();
    for (_, bytes) in seeds("sparql_params") {
        let (query_string, form) = if bytes[0] % 2 == 0 {
            (&bytes[1..], None)
        } else {
            let rest = &bytes[1..];
            let at = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
            (&rest[..at], Some(rest.get(at + 1..).unwrap_or_default()))
        };
        outcomes.insert(
            match agora::http::decode_sparql_parameters(query_string, form) {
                Ok(request) => format!("ok {}", request.default_graphs.len().min(1)),
                Err(e) => format!("{e:?}"),
            },
        );
    }
    assert_eq!(
        outcomes.into_iter().collect::<Vec<_>>(),
        ["NotUtf8", "SeveralQueries", "Update", "ok 0", "ok 1"]
    );
}

/// Tokens worth splicing in, for text formats.
const DICTIONARY: [&str; 21] = [
    "\"",
    "{",
    "}",
    "[",
    "]",
    "@context",
    "@id",
    "<http://127.0.0.1/>",
    "alg",
    "none",
    "\n",
    "9223372036854775807",
    "-1",
    "::ffff:127.0.0.1",
    "SERVICE",
    "\\u0000",
    "%",
    "&query=",
    "update=",
    " a <http://www.w3.org/ns/dcat#Dataset> ",
    "https://w3id.org/agora/ns#",
];

fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(7) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] = rng.next() as u8;
            }
            2 => out.insert(at, rng.next() as u8),
            3 if !out.is_empty() => {
                let end = (at + 1 + rng.below(16)).min(out.len());
                out.drain(at.min(end)..end);
            }
            4 if !other.is_empty() => {
                let from = rng.below(other.len());
                let end = (from + 1 + rng.below(64)).min(other.len());
                out.splice(at..at, other[from..end].iter().copied());
            }
            5 => {
                let word = DICTIONARY[rng.below(DICTIONARY.len())].as_bytes();
                out.splice(at..at, word.iter().copied());
            }
            _ if !out.is_empty() => {
                let end = (at + 1 + rng.below(32)).min(out.len());
                let copy = out[at.min(end)..end].to_vec();
                out.splice(at..at, copy);
            }
            _ => {}
        }
    }
    out
}

#[test]
fn fuzz_mutants_hold_for_every_target() {
    let execs: usize = std::env::var("AGORA_FUZZ_EXECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let seed: u64 = std::env::var("AGORA_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_1234);
    let only = std::env::var("AGORA_FUZZ_TARGET").ok();
    // Parquet decoding panics on some mutants by design of arrow-rs; `decode_fully` catches
    // them, and the default hook would print each one.
    std::panic::set_hook(Box::new(|_| {}));
    for (target, body) in bodies::TARGETS {
        if only.as_deref().is_some_and(|t| t != target) {
            continue;
        }
        let seeds = seeds(target);
        let mut rng = Rng(seed ^ target.len() as u64 ^ 0x9e37_79b9_7f4a_7c15);
        let started = std::time::Instant::now();
        for n in 0..execs {
            let input = &seeds[rng.below(seeds.len())].1;
            let other = &seeds[rng.below(seeds.len())].1;
            let mutant = mutate(&mut rng, input, other);
            run(target, &format!("mutant-{seed}-{n}"), body, &mutant);
        }
        eprintln!(
            "fuzz {target}: {execs} mutants, seed {seed}, {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
}
