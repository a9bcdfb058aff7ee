//! ODRL policy decisions per second on the eight shipped templates (`policies/*.jsonld`).
//!
//! Every pull through the data plane and every contract negotiation asks the [`Evaluator`] for a
//! decision, so its cost bounds how many requests a node can govern. For each template this
//! measures, with `Throughput::Elements(1)` so criterion reports decisions/s:
//!
//! - `permit/<template>`: a request the template grants (realistic token claims, a DPV purpose,
//!   usage so far). A permit includes compiling the [`agora::policy::EnforcementPlan`].
//! - `deny/<template>`: a realistic request the template refuses (non-EU country, marketing
//!   purpose, pull budget spent, agreement too old, an action outside `use`), with the sentences
//!   that say why.
//! - `parse_jsonld/<template>`: reading the template from its JSON-LD text with
//!   [`agora::policy::parse`] (the guarded RDF reader, the bundled ODRL context, the typed model),
//!   which catalogue-time evaluation pays when it does not keep the parsed policy.
//! - `serde_json_value/<template>`: `serde_json` parsing the same text into a `Value`. This is the
//!   yardstick, run in the same process on the same bytes: the cheapest thing anyone would do
//!   with the document. The ratios printed at the end ("a decision costs N× a JSON parse of the
//!   policy") compare with it; it is not a competing policy engine.
//!
//! Before anything is timed, each permit case is asserted to be permitted (with a plan) and each
//! deny case to be denied (with a reason), so a bench cannot silently measure the wrong path. The
//! clock is a [`ManualClock`] stopped at 2026-11-25T12:00:00Z, inside every template's window.
//!
//! Run: `cargo bench --bench policy_decisions -- --warm-up-time 1 --measurement-time 3`.
//! Figures and the machine they came from: `BENCHMARKS.md`, "Policy decisions".

use agora::clock::{ManualClock, SharedClock};
use agora::policy::{Evaluator, Policy, Request, TEMPLATES, Usage, parse, validate, vocab};
use agora::rdf_input::RdfSyntax;
use chrono::{DateTime, Utc};
use criterion::{BenchmarkId, Criterion, Throughput};
use oxigraph::model::NamedNode;
use serde_json::{Map, Value, json};
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The instant every decision is taken at.
const NOW: &str = "2026-11-25T12:00:00Z";

/// One template with a request it grants and one it refuses.
struct Case {
    /// The template's file name without `.jsonld`.
    name: &'static str,
    /// Its JSON-LD text.
    text: &'static str,
    policy: Policy,
    permit: Request,
    deny: Request,
}

fn instant(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("an RFC 3339 instant")
        .with_timezone(&Utc)
}

fn dpv(name: &str) -> NamedNode {
    NamedNode::new_unchecked(format!("{}{name}", vocab::DPV))
}

fn agora_term(name: &str) -> NamedNode {
    NamedNode::new_unchecked(format!("{}{name}", vocab::AGORA))
}

/// Verified token claims as the identity layer hands them over: more than the policies read.
fn claims(sub: &str, country: &str, org_type: &str) -> Map<String, Value> {
    let Value::Object(map) = json!({
        "iss": "https://identity.example.eu",
        "sub": sub,
        "aud": "https://node.example.eu",
        "name": "Example participant",
        "country": country,
        "org_type": org_type,
        "iat": 1_795_000_000,
        "exp": 1_795_003_600,
    }) else {
        unreachable!("a JSON object literal")
    };
    map
}

fn university(country: &str) -> Map<String, Value> {
    claims(
        "https://participants.example.eu/tu-berlin",
        country,
        "university",
    )
}

fn company(country: &str) -> Map<String, Value> {
    claims(
        "https://participants.example.eu/acme-ai",
        country,
        "company",
    )
}

fn agency(country: &str) -> Map<String, Value> {
    claims(
        "https://participants.example.eu/transport-agency",
        country,
        "public-authority",
    )
}

/// Usage under an agreement concluded at `agreed_at`.
fn usage(agreed_at: &str, pulls: u64, rows_released: u64) -> Usage {
    Usage {
        agreed_at: Some(instant(agreed_at)),
        pulls,
        rows_released,
        bytes_released: rows_released * 120,
    }
}

fn with_usage(mut request: Request, usage: Usage) -> Request {
    request.usage = usage;
    request
}

fn with_action(mut request: Request, action: &str) -> Request {
    request.action = NamedNode::new_unchecked(format!("{}{action}", vocab::ODRL));
    request
}

/// The permitted and the denied request for each template, by file name.
fn requests(name: &str) -> (Request, Request) {
    let research = || Some(dpv("AcademicResearch"));
    let recent = usage("2026-11-01T09:00:00Z", 2, 40_000);
    match name {
        // Purpose agora:AITraining, at most 10 pulls, at most 50 million rows.
        "ai-training-count" => (
            with_usage(
                Request::from_claims(company("FR"), Some(agora_term("AITraining"))),
                usage("2026-10-01T09:00:00Z", 3, 1_200_000),
            ),
            // The eleventh pull under the agreement.
            with_usage(
                Request::from_claims(company("FR"), Some(agora_term("AITraining"))),
                usage("2026-10-01T09:00:00Z", 10, 4_000_000),
            ),
        ),
        // Use and distribute with attribution; selling is a transfer, not a use.
        "climate-attribution" => (
            Request::from_claims(company("DE"), Some(dpv("CommercialResearch"))),
            with_action(
                Request::from_claims(company("DE"), Some(dpv("CommercialResearch"))),
                "sell",
            ),
        ),
        // EU recipients only.
        "eu-only" => (
            with_usage(Request::from_claims(university("DE"), research()), recent),
            with_usage(Request::from_claims(university("US"), research()), recent),
        ),
        // EHDS purposes, EU country, until mid-2027; marketing is prohibited outright.
        "health-secondary-use" => (
            with_usage(
                Request::from_claims(university("DE"), Some(dpv("ScientificResearch"))),
                recent,
            ),
            with_usage(
                Request::from_claims(company("DE"), Some(dpv("Marketing"))),
                recent,
            ),
        ),
        // Transport purposes inside the EU.
        "mobility-generalised" => (
            with_usage(
                Request::from_claims(agency("NL"), Some(dpv("ImproveTransportMobility"))),
                recent,
            ),
            with_usage(
                Request::from_claims(agency("US"), Some(dpv("ImproveTransportMobility"))),
                recent,
            ),
        ),
        // Any use with attribution; selling is a transfer, not a use.
        "open-data-attribution" => (
            Request::from_claims(company("IT"), Some(dpv("CommercialResearch"))),
            with_action(
                Request::from_claims(company("IT"), Some(dpv("CommercialResearch"))),
                "sell",
            ),
        ),
        // Non-commercial research by research and public organisations.
        "research-non-commercial" => (
            with_usage(Request::from_claims(university("DE"), research()), recent),
            // A company's commercial research: not a listed purpose, not a listed
            // organisation type, and a kind of dpv:CommercialPurpose, which is prohibited.
            with_usage(
                Request::from_claims(company("DE"), Some(dpv("CommercialResearch"))),
                recent,
            ),
        ),
        // During 2026, at most 90 days from the agreement.
        "time-limited" => (
            with_usage(Request::from_claims(university("AT"), research()), recent),
            // Agreed 147 days before now.
            with_usage(
                Request::from_claims(university("AT"), research()),
                usage("2026-07-01T12:00:00Z", 5, 200_000),
            ),
        ),
        other => panic!("no requests written for the template {other}; add them"),
    }
}

fn cases() -> Vec<Case> {
    TEMPLATES
        .iter()
        .map(|(file, text)| {
            let name = file.strip_suffix(".jsonld").expect("a .jsonld template");
            let policy = parse(text.as_bytes(), RdfSyntax::JsonLd)
                .unwrap_or_else(|e| panic!("{name} does not parse: {e}"));
            validate(&policy).unwrap_or_else(|e| panic!("{name} is not enforceable: {e}"));
            let (permit, deny) = requests(name);
            Case {
                name,
                text,
                policy,
                permit,
                deny,
            }
        })
        .collect()
}

/// Outside the timed loops: the permit cases permit and the deny cases deny.
fn check(evaluator: &Evaluator, cases: &[Case]) {
    for case in cases {
        let permit = evaluator.evaluate(&case.policy, &case.permit);
        assert!(
            permit.is_permitted() && permit.plan.is_some(),
            "{}: the permit case is not permitted: {}",
            case.name,
            permit.explanation()
        );
        let deny = evaluator.evaluate(&case.policy, &case.deny);
        assert!(
            !deny.is_permitted() && !deny.reasons.is_empty(),
            "{}: the deny case is not denied with a reason",
            case.name
        );
        eprintln!("{}: deny case {}", case.name, deny.explanation());
    }
}

fn bench(c: &mut Criterion, evaluator: &Evaluator, cases: &[Case]) {
    let mut group = c.benchmark_group("permit");
    group.throughput(Throughput::Elements(1));
    for case in cases {
        group.bench_with_input(BenchmarkId::from_parameter(case.name), case, |b, case| {
            b.iter(|| evaluator.evaluate(black_box(&case.policy), black_box(&case.permit)));
        });
    }
    group.finish();

    let mut group = c.benchmark_group("deny");
    group.throughput(Throughput::Elements(1));
    for case in cases {
        group.bench_with_input(BenchmarkId::from_parameter(case.name), case, |b, case| {
            b.iter(|| evaluator.evaluate(black_box(&case.policy), black_box(&case.deny)));
        });
    }
    group.finish();

    let mut group = c.benchmark_group("parse_jsonld");
    group.throughput(Throughput::Elements(1));
    for case in cases {
        group.bench_with_input(BenchmarkId::from_parameter(case.name), case, |b, case| {
            b.iter(|| parse(black_box(case.text.as_bytes()), RdfSyntax::JsonLd));
        });
    }
    group.finish();

    let mut group = c.benchmark_group("serde_json_value");
    group.throughput(Throughput::Elements(1));
    for case in cases {
        group.bench_with_input(BenchmarkId::from_parameter(case.name), case, |b, case| {
            b.iter(|| serde_json::from_slice::<Value>(black_box(case.text.as_bytes())));
        });
    }
    group.finish();
}

/// Where criterion writes its estimates: `CRITERION_HOME`, else `$CARGO_TARGET_DIR/criterion`,
/// else `target/criterion`.
fn criterion_home() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| PathBuf::from("target"), PathBuf::from)
        .join("criterion")
}

/// The median time per iteration, in nanoseconds, of `group/name` measured by this run (files
/// older than `since` are from an earlier run and are not used).
fn median_ns(group: &str, name: &str, since: SystemTime) -> Option<f64> {
    let path = criterion_home()
        .join(group)
        .join(name)
        .join("new")
        .join("estimates.json");
    let written = std::fs::metadata(&path).ok()?.modified().ok()?;
    if written < since {
        return None;
    }
    let estimates: Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
    estimates["median"]["point_estimate"].as_f64()
}

fn geometric_mean(values: &[f64]) -> f64 {
    (values.iter().map(|v| v.ln()).sum::<f64>() / values.len() as f64).exp()
}

/// The table of BENCHMARKS.md, from this run's medians, with the ratios to the yardstick.
fn report(cases: &[Case], since: SystemTime) {
    let mut rows = Vec::new();
    let mut ratios: [Vec<f64>; 3] = Default::default();
    for case in cases {
        let figures = ["permit", "deny", "parse_jsonld", "serde_json_value"]
            .map(|group| median_ns(group, case.name, since));
        let [Some(permit), Some(deny), Some(parsed), Some(json)] = figures else {
            continue;
        };
        for (ratio, ns) in ratios.iter_mut().zip([permit, deny, parsed]) {
            ratio.push(ns / json);
        }
        rows.push(format!(
            "| `{}` | {:.0} | {:.0} | {:.0} | {:.0} | {:.2} µs | {:.2} | {:.2} | {:.1} |",
            case.name,
            1e9 / permit,
            1e9 / deny,
            1e9 / parsed,
            1e9 / json,
            json / 1e3,
            permit / json,
            deny / json,
            parsed / json,
        ));
    }
    if rows.is_empty() {
        println!(
            "\n(no ratio table: this run measured no complete set of estimates under {})",
            criterion_home().display()
        );
        return;
    }
    println!("\nMedians of this run (per second; ratios are time ÷ the serde_json parse time):\n");
    println!(
        "| template | permit/s | deny/s | JSON-LD parses/s | serde_json parses/s | serde_json parse | permit ÷ JSON | deny ÷ JSON | JSON-LD parse ÷ JSON |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for row in &rows {
        println!("{row}");
    }
    if rows.len() == cases.len() {
        println!(
            "| geometric mean | | | | | | {:.2} | {:.2} | {:.1} |",
            geometric_mean(&ratios[0]),
            geometric_mean(&ratios[1]),
            geometric_mean(&ratios[2]),
        );
    }
}

fn main() {
    // Estimates written from here on are this run's (a second of slack for coarse file times).
    let started = SystemTime::now() - Duration::from_secs(1);
    let clock: SharedClock = Arc::new(ManualClock::new(instant(NOW)));
    let evaluator = Evaluator::new(clock);
    let cases = cases();
    assert_eq!(cases.len(), 8, "the eight templates of policies/");
    check(&evaluator, &cases);

    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion, &evaluator, &cases);
    criterion.final_summary();
    report(&cases, started);
}
